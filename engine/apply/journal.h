/*
 * journal.h (internal): the apply journal (<state dir>/apply.journal, a small SQLite DB,
 * journal.c) and the recovery of an interrupted apply (recover.c). journal.c explains the design
 * and why recovery is all-or-nothing; apply.c drives it step by step.
 */
#ifndef PB_JOURNAL_H
#define PB_JOURNAL_H

#include <stdint.h>
#include <sys/stat.h>
#include <sqlite3.h>
#include "plexburst/apply.h"

#define PB_JOURNAL_NAME  "apply.journal"
#define PB_MARKER_NAME   "apply.marker"
#define PB_JOURNAL_LOCK  "apply.lock"
#define PB_MARKER_TABLE  "pb_apply_marker"
#define PB_MARKER_SCHEMA "pbmark" /* the name the marker DB is attached under in the merge */

/* Journal states of a run, in order. */
#define PB_JST_STAGING   "staging"  /* files are being staged; nothing visible has changed */
#define PB_JST_STAGED    "staged"   /* every file staged and durable */
#define PB_JST_MERGING   "merging"  /* Plex stopped, journal modes recorded, the merge may commit */
#define PB_JST_SWAPPING  "swapping" /* the merged copies replace the live pair (premerge.c) */
#define PB_JST_MERGED    "merged"   /* the rows are committed: only forward from here */
#define PB_JST_INSTALLED "installed" /* every staged file renamed into place */

/** File kinds recorded per staged record. */
#define PB_JF_STAGED    'S' /* a stage file waits beside its target */
#define PB_JF_UNCHANGED 'U' /* the target already held the content: nothing staged */

typedef struct pb_journal pb_journal;

/**
 * Takes the apply lock of `state_dir` (flock on apply.lock; PB_EBUSY when another process holds
 * it) and opens (creating) the journal DB. `plex_dir` is the data dir's real path.
 */
int pb_journal__open(pb_journal **out, const char *state_dir, const char *plex_dir, pb_error *err);
/** Closes the journal and releases the lock; accepts NULL. */
void pb_journal__close(pb_journal *j);

/** The journal DB's path and connection; the marker DB's path (attached into the merge). */
const char *pb_journal__path(const pb_journal *j);
const char *pb_journal__marker_path(const pb_journal *j);
sqlite3 *pb_journal__db(pb_journal *j);
/** The fd holding the apply lock (flock): handed to Plex's engine so that the lock outlives this
 * process while the engine may still commit (apply.c). */
int pb_journal__lock_fd(const pb_journal *j);
/** Whether the marker row of the current run is in the marker DB (opening it rolls back what an
 * interrupted transaction left): *yes = 1 when the run's merge committed a row. */
int pb_journal__marker_present(pb_journal *j, int *yes, pb_error *err);
/** The same for a marker DB at `path` (created with its table when missing): the scratch marker
 * of a merge into copies (premerge.c). `run_id` NULL only creates it. */
int pb_journal__marker_at(const char *path, const char *run_id, int *yes, pb_error *err);

/** Starts a run (state staging): fails with PB_EBUSY when a run is recorded. */
int pb_journal__begin(pb_journal *j, const char *run_id, const char *bundle, int online,
                      const pb_bundle_info *info, pb_error *err);
/** Sets the state (committed, durable). */
int pb_journal__set_state(pb_journal *j, const char *state, pb_error *err);
/** Records that Plex was stopped (1) or started again (0), committed. */
int pb_journal__set_plex(pb_journal *j, int stopped, pb_error *err);
/** The name of the copy of live DB `live` (k 0: main, 1: blobs) that run `run_id` merges before
 * the stop: a stage file beside it (premerge.c). */
void pb_journal__copy_path(char *out, size_t cap, const char *live, const char *run_id, int k);
/** State swapping (committed, durable): the merged copies are about to replace the live files,
 * whose identity (`blobs` NULL: main only) is recorded for the recovery. */
int pb_journal__set_swapping(pb_journal *j, const struct stat *main, const struct stat *blobs,
                             pb_error *err);
/** Recovery of state swapping: each copy still waiting is renamed over its live file while the
 * live main DB is the one recorded (*committed = 1); when it changed since (nothing was swapped
 * yet, and something wrote to it), *committed = 0: the caller rolls back. */
int pb_journal__swap_forward(pb_journal *j, int *committed, pb_error *err);

/** Records the live DBs' journal modes before the merge switches them (with state merging). */
int pb_journal__set_merging(pb_journal *j, const char *main_mode, const char *blobs_mode,
                            pb_error *err);

/** Records a directory about to be created (durable at the next flush, which must come before
 * the mkdir). */
int pb_journal__add_dir(pb_journal *j, const char *rel, pb_error *err);
/** Records a directory about to receive stage files (durable at the next flush, which must come
 * before the first stage file); 1 when it was new, 0 when already recorded. */
int pb_journal__add_stagedir(pb_journal *j, const char *rel, pb_error *err);
/** Records a staged record (batched: durable at the next flush or commit). */
int pb_journal__add_file(pb_journal *j, uint64_t n, const char *path, const char *stage, int kind,
                         const uint8_t hash[16], pb_error *err);
/** Commits the batch. */
int pb_journal__flush(pb_journal *j, pb_error *err);
/**
 * Looks up a recorded path (hard-link leaders): 1 with its kind and stage name, 0 when absent.
 */
int pb_journal__lookup(pb_journal *j, const char *path, int *kind, char *stage, size_t cap,
                       pb_error *err);

/** Online merges: the probe file lives beside the journal. */
const char *pb_journal__probes_path(const pb_journal *j);

/**
 * Recovery of whatever run the journal holds (roll back or forward, see journal.c), then the
 * run's rows are removed. With no run recorded it does nothing.
 */
int pb_journal__recover(pb_journal *j, pb_recover_result *out, pb_error *err);

/** Roll back the current run (staged files, created dirs; journal modes); clears the run. */
int pb_journal__rollback(pb_journal *j, pb_recover_result *out, pb_error *err);
/** Before Plex is stopped: renames every staged file whose target does not exist into place
 * (renameat2 RENAME_NOREPLACE: a new file at a new path, which no row of the live DB names yet,
 * so Plex cannot see it before the merge commits), then syncfs. Journaled (files.done: 2 = a
 * rename may have happened, 1 = renamed and durable) so that a rollback removes them again
 * (a target holding the recorded hash) and a roll forward skips them. A staged file whose
 * target exists is left for the install after the merge. *moved = files renamed. */
int pb_journal__preinstall(pb_journal *j, uint64_t *moved, pb_error *err);
/** Roll forward: rename the remaining staged files into place, restore modes; keeps the run
 * (state installed) so that the caller can finish (start Plex, baseline) and clear it. */
int pb_journal__forward(pb_journal *j, pb_recover_result *out, pb_error *err);
/** Ends the run: records the baseline (the bundle's target ids) and deletes the run's rows. */
int pb_journal__finish(pb_journal *j, pb_error *err);

/** Reads (`want` NULL) or sets the journal mode of the DB at `db_path` through a short-lived
 * connection; `now` gets the mode it is in after ("" when the file does not exist). */
int pb_journal__mode(const char *db_path, const char *want, char *now, size_t cap, pb_error *err);
/** Restores the recorded journal modes of the live DB pair (when the run recorded them). */
int pb_journal__restore_modes(pb_journal *j, int *restored, pb_error *err);

/**
 * Test hook: when the environment variable PB_TEST_CRASH_AT names `step` (optionally "step:k"
 * for its k-th occurrence, 1-based), the process raises SIGKILL here.
 */
void pb_journal__crash_point(const char *step);

/** Paths of the live DBs inside the data dir. */
void pb_journal__live_paths(const char *plex_dir, char *main_db, char *blobs_db, size_t cap);

#endif

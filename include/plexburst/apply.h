/*
 * plexburst/apply.h: the crash-safe journaled apply that installs a bundle (plexburst/bundle.h)
 * into a home Plex data directory, and the recovery of an interrupted one.
 * pb_apply: recover, verify the bundle (once: or take the caller's pb_bundle_verified), check
 * its baseline, guards, stage files beside their targets, stop Plex, merge the rows in one
 * transaction (written by Plex's own engine when it is found, else in-process), rename the
 * staged files into place, start Plex; every step journaled in <state dir>/apply.journal so that
 * a crash at any instant is completed or rolled back by pb_apply_recover() (engine/apply/journal.c
 * explains why this is all-or-nothing).
 */
#ifndef PLEXBURST_APPLY_H
#define PLEXBURST_APPLY_H

#include <stdint.h>
#include "plexburst/baseline.h"
#include "plexburst/bundle.h"
#include "plexburst/errors.h"
#include "plexburst/merge.h"
#include "plexburst/plexmerge.h"

/** Phases of an apply, in order (the CLI prints them as PHASE n). */
typedef enum pb_apply_phase {
    PB_APPLY_RECOVER = 1,
    PB_APPLY_VERIFY = 2,
    PB_APPLY_GUARDS = 3,
    PB_APPLY_STAGE = 4,
    PB_APPLY_STOP = 5,
    PB_APPLY_MERGE = 6,
    PB_APPLY_INSTALL = 7,
    PB_APPLY_START = 8,
    PB_APPLY_DONE = 9
} pb_apply_phase;

/** "RECOVER", "VERIFY BUNDLE", "GUARDS", "STAGE FILES", "STOP PLEX", "MERGE ROWS", ... */
PB_EXTERN(const char *) pb_apply_phase_name(int phase);

/** What a recovery did. */
typedef enum pb_recover_action {
    PB_RECOVER_NONE = 0,          /* no interrupted apply */
    PB_RECOVER_ROLLED_BACK = 1,   /* the DB commit had not happened: staged files removed */
    PB_RECOVER_ROLLED_FORWARD = 2 /* it had: the remaining files were installed */
} pb_recover_action;

typedef struct pb_recover_result {
    int action;               /* pb_recover_action */
    char run_id[40];          /* the interrupted run */
    char state[16];           /* the journal state it was found in */
    uint64_t files_removed;   /* staged files deleted (roll back) */
    uint64_t dirs_removed;    /* created directories removed (roll back) */
    uint64_t files_installed; /* staged files renamed into place (roll forward) */
    int plex_stopped;         /* the interrupted run had stopped Plex: it may need a start */
    int modes_restored;       /* journal_mode set back to the recorded modes */
    char detail[512];         /* one line: what was found and decided */
} pb_recover_result;

/**
 * Completes or rolls back an interrupted apply of `plex_dir` (state dir NULL: the default).
 * Cheap when there is none (one stat). Call it first in every command that touches a data dir.
 * @return 0; PB_EBUSY (another apply runs), PB_ECONFLICT (the journal cannot tell whether the
 *         rows were committed: manual recovery, the message says how), PB_EIO, PB_ESQLITE.
 */
PB_EXTERN(int) pb_apply_recover(const char *plex_dir, const char *state_dir, pb_error *err);
/** pb_apply_recover with a report of what was done. */
PB_EXTERN(int)
pb_apply_recover_ex(pb_recover_result *out, const char *plex_dir, const char *state_dir,
                    pb_error *err);

typedef struct pb_apply_options {
    unsigned version;           /* PB_APPLY_OPTIONS_VERSION */
    const char *plex_dir;       /* the home Plex data dir D */
    const char *bundle;         /* the bundle file */
    const char *state_dir;      /* NULL: <D>.plexburst */
    int dry_run;                /* stop after the guards: print the report, write nothing */
    int online;                 /* merge while Plex runs (no stop/start; probes in the journal) */
    const char *plex_stop_cmd;  /* shell command stopping Plex (optional) */
    const char *plex_start_cmd; /* shell command starting it again (optional) */
    double max_delete_pct;      /* deletion guard threshold (default 5) */
    const char *path_map;       /* path_mappings.json (cloud -> home) for the rows */
    const char *base_db;        /* optional: a copy of the baseline main DB (checked, and used
                                   as the base of the guards and the report) */
    const char *base_blobs;
    pb_bundle_limits limits; /* zero fields take the defaults */
    /**
     * Optional: the bundle, verified once by the caller (pb_bundle_verified_make against this
     * data dir): the apply then stages it without a verify pass of its own and uses the
     * changesets it extracted. `bundle` may then be NULL (else it must name the same file).
     */
    const pb_bundle_verified *verified;
    /**
     * Optional: the baseline ids the caller vouches for: the live DB pair derives from them
     * (e.g. the sync's snapshot), so the bundle must be based on them, and `base_db` (when given)
     * is taken to hold them without being checksummed again. NULL: the baseline recorded in the
     * state dir (pb_baseline_read), or the ids of `base_db`.
     */
    const pb_baseline *base;
    /** Optional: called when a phase starts (progress display). */
    void (*on_phase)(int phase, void *payload);
    void *phase_payload;
    /**
     * Who writes the rows (pb_plex_engine_choice, plexburst/plexmerge.h): AUTO (the default)
     * writes through Plex's own engine when pb_plex_engine_find() finds one, else in-process
     * through the compatibility layer; PATH uses the engine at plex_sqlite (a Plex SQLite, or a
     * sqlite3 stand-in with compat_extension loaded); IN_PROCESS never uses an engine. --online
     * always merges in-process (the commit probes need the merge's connection): PATH with
     * online is refused.
     */
    int engine;
    const char *plex_sqlite;
    const char *compat_extension;
    /** Seconds --plex-stop-cmd and --plex-start-cmd may each run (0: the default,
     * PB_APPLY_PLEX_CMD_TIMEOUT); past it the command's process group is ended and the apply
     * fails (rolled back before the merge). */
    double plex_cmd_timeout;
    /** The caller holds the sync's run lock of this data dir (pb_run): the apply does not take
     * it. 0 (a standalone apply): the apply takes it, so that it never runs beside a sync. */
    int holds_run_lock;
    /** Optional: polled between steps up to the row commit (and while --plex-stop-cmd runs);
     * non-zero stops the apply cleanly: rolled back, PB_ECANCELLED. After the commit the apply
     * completes. */
    int (*cancelled)(void *payload);
    void *cancel_payload;
    /** 0 (the default): the rows are merged into a copy of the live pair while Plex still runs,
     * and the copy replaces the live files during the stop when Plex wrote nothing since the copy
     * (else, or when no copy can be made, the merge happens in place, Plex stopped). 1: always
     * in place. */
    int merge_in_place;
} pb_apply_options;

/** The default timeout of the Plex stop and start commands, in seconds. */
#define PB_APPLY_PLEX_CMD_TIMEOUT 300

#define PB_APPLY_OPTIONS_VERSION 1
#define PB_APPLY_OPTIONS_INIT                                                                      \
    {                                                                                              \
        .version = PB_APPLY_OPTIONS_VERSION, .max_delete_pct = 5.0                                 \
    }

/** Fills the defaults (version, max_delete_pct 5). */
PB_EXTERN(void) pb_apply_options_init(pb_apply_options *opts);

typedef struct pb_apply_result {
    int ok;         /* the apply completed (or the dry run passed the guards) */
    int phase;      /* pb_apply_phase: last reached, the failing one on error */
    int error_code; /* PB_E* of the failure (its message is in the pb_error) */
    int dry_run;
    char run_id[40];
    char *state_dir;             /* the state dir used (owned) */
    pb_recover_result recovered; /* phase 1 */
    pb_bundle_info bundle;       /* phase 2 */
    pb_plex_report report;       /* phase 3 (guards, diff report); owned, see dispose */
    int have_report;
    uint64_t files_new, files_patched, files_linked, files_unchanged;
    uint64_t dirs_created;
    uint64_t bytes_bundle, bytes_written;
    pb_merge_counts rows; /* the merge's totals */
    int atomic_pair;      /* main + blobs + journal marker committed atomically */
    /* who writes (wrote) the rows: "plex-sqlite: /path", "in-process compatibility layer", or
     * "none (dry run; would write with ...)"; owned, "" until decided */
    char *engine;
    int plex_was_running, plex_stopped, plex_started;
    int committed; /* the rows were committed (a failure after it is completed, not undone) */
    /* a failure before the commit was rolled back, but not completely (stage files or created
     * directories may remain until the next recovery): rollback_error says why */
    int rollback_incomplete;
    char rollback_error[256];
    struct {
        double recover, verify, guards, stage, merge, install, apply, downtime;
        double premerge; /* the merge into the copies, before the stop (0: none) */
    } ms;
    /* the rows were merged into copies before the stop and swapped in during it; else, when a
     * merge into copies was tried or not possible, swap_note says why it happened in place */
    int swapped;
    char swap_note[512];
} pb_apply_result;

/**
 * Applies the bundle to the data dir (see the top of this header). On failure before the
 * commit nothing is changed (staged files and created directories are removed); a failure after
 * it is completed by the next pb_apply_recover(). `out` is zeroed first and filled in every
 * case; release with pb_apply_result_dispose() (also after a failure).
 * @return 0; PB_EREFUSED (wrong baseline, deletion guard, Plex running); PB_ESCHEMA (schema
 *         guard); PB_ECORRUPT / PB_EUNSAFE (bundle); PB_ECONFLICT (a home file changed since
 *         the answer); PB_EBUSY (another apply, or a sync, works on the data dir); PB_EIO;
 *         PB_ESQLITE; PB_ERROR (stop/start command failed or timed out); PB_ECANCELLED.
 */
PB_EXTERN(int) pb_apply(pb_apply_result *out, const pb_apply_options *opts, pb_error *err);

/** Releases what the result owns; accepts NULL. */
PB_EXTERN(void) pb_apply_result_dispose(pb_apply_result *r);

#endif

/*
 * journal_int.h (private to engine/apply/journal.c and recover.c): the journal's struct, the run
 * row as recorded, and the SQL helpers both files use.
 */
#ifndef PB_JOURNAL_INT_H
#define PB_JOURNAL_INT_H

#include <limits.h>
#include "bundle_int.h"
#include "journal.h"

#define PB_JOURNAL_BATCH 256 /* rows per journal transaction while staging */

struct pb_journal {
    sqlite3 *db;
    int lock_fd;
    int in_batch;
    unsigned batch;
    char state_dir[PATH_MAX];
    char path[PATH_MAX + 32];
    char marker[PATH_MAX + 32];
    char probes[PATH_MAX + 32];
    char plex_dir[PATH_MAX];
    char last_stagedir[PB_BUNDLE_PATH_MAX + 1];
    /* the run, once loaded */
    char run_id[40];
};

typedef struct pb_journal_run {
    int have;
    char run_id[40];
    char state[16];
    char plex_dir[PATH_MAX];
    int online, plex_stopped, has_blobs;
    char main_mode[16], blobs_mode[16];
    uint8_t target_main[16], target_blobs[16];
} pb_journal_run;

/** Sets err from a SQLite failure on the journal ("apply journal: <what>: <sqlite message>"). */
int pb_journal__sqlerr(pb_journal *j, int rc, const char *what, pb_error *err);
/** Runs SQL on the journal. */
int pb_journal__jexec(pb_journal *j, const char *sql, const char *what, pb_error *err);
/** Commits the open batch (when one is open). */
int pb_journal__commit(pb_journal *j, pb_error *err);
/** Opens a batch transaction unless one is open. */
int pb_journal__batch_begin(pb_journal *j, pb_error *err);
/** Loads the recorded run (r->have = 0 when none). */
int pb_journal__load_run(pb_journal *j, pb_journal_run *r, pb_error *err);
/** Whether the marker DB holds `run_id`. */
int pb_journal__run_marker(pb_journal *j, const char *run_id, int *yes, pb_error *err);

#endif

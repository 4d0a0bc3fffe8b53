/*
 * probes.h (internal): the commit probes of an online merge (probes.c; the scheme is explained
 * atop journal.c).
 */
#ifndef PB_PROBES_H
#define PB_PROBES_H

#include <sqlite3.h>
#include "plexburst/errors.h"

typedef struct pb_probes pb_probes;

/** Installs the preupdate and commit hooks on `db`; the commit hook writes the probes to `path`
 * durably before the commit proceeds (a failed write turns the commit into a rollback). */
int pb_probes__install(pb_probes **out, sqlite3 *db, const char *path, pb_error *err);
/** Removes the hooks and frees; accepts NULL. */
void pb_probes__free(pb_probes *p, sqlite3 *db);

/**
 * Reads the probe file at `probes_path` against the live DBs of `plex_dir` and decides whether
 * the interrupted merge committed: *committed = 1 or 0; PB_ECONFLICT when the probes cannot tell
 * (the message names `run_id` and the journal at `journal_path` to remove after a manual check).
 * No probe file means nothing was committed.
 */
int pb_probes__decide(const char *probes_path, const char *plex_dir, int has_blobs,
                      const char *run_id, const char *journal_path, int *committed, pb_error *err);

#endif

/*
 * backup.h (internal): consistent backups of the live Plex DB pair before a merge, with rotation.
 * Role: phase 4 of pb_plex_merge(); the backups are what an operator restores by hand.
 */
#ifndef PB_BACKUP_H
#define PB_BACKUP_H

#include <stddef.h>
#include <sqlite3.h>
#include "plexburst/errors.h"

/**
 * Copies the main DB of `src` onto `dst` with SQLite's online backup API, in one step inside one
 * read transaction on `src` (the state of one commit, however often others write meanwhile;
 * waits out BUSY and LOCKED before the copy starts), then sets dst's journal mode to DELETE (a
 * self-contained file: no -wal left next to the copy). `src` must not be in a transaction.
 * `what` starts the error message.
 * @return 0 or PB_ESQLITE.
 */
int pb_backup_db_copy(sqlite3 *dst, sqlite3 *src, const char *what, pb_error *err);

/**
 * Copies `live` (and `blobs_live` when non-NULL) with SQLite's online backup API into a new
 * directory `<dir>/<UTC timestamp YYYYMMDDTHHMMSSZ>/` (mode 0700, a -N suffix when it exists),
 * keeping the files' base names, then removes the oldest timestamped directories of `dir` so
 * that `keep` remain (only directories named like ours, and only the files in them).
 * @param made     OUT: the directory made (cap bytes).
 * @param removed  OUT, optional: how many old backups were removed.
 * @return 0, PB_EIO, PB_ESQLITE, PB_EINVALID; on failure the partial backup is removed.
 */
int pb_plex_backup(char *made, size_t cap, unsigned *removed, const char *dir, const char *live,
                   const char *blobs_live, int keep, pb_error *err);

#endif

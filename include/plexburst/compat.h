/*
 * plexburst/compat.h: the Plex-SQLite compatibility layer.
 *
 * Real Plex DBs use an `icu_root` collation, the legacy `naturalsort` collation, the FTS4
 * tokenizer `collating` and `spellfix1` virtual tables, which stock SQLite lacks: without them
 * most writes to metadata_items and tags, PRAGMA integrity_check and FTS MATCH fail. This layer
 * registers them on a connection, built on ICU. The same code is built as the loadable extension
 * `plexcompat` for the sqlite3 shell (`.load build/plexcompat`). Plex's own SQLite engine (the
 * "Plex SQLite" executable) is found through plexburst/plex_engine.h.
 *
 * spellfix1 tables are read-only here: plexburst never writes them.
 */
#ifndef PLEXBURST_COMPAT_H
#define PLEXBURST_COMPAT_H

#include "plexburst/errors.h"

typedef struct sqlite3 sqlite3;

/**
 * Registers `icu_root`, `naturalsort`, the `collating` FTS3/4 tokenizer and the read-only
 * `spellfix1` module on `db`. Call it right after opening, before the schema is used.
 * @return 0, or PB_ESQLITE / PB_ERROR with detail in `err`.
 */
PB_EXTERN(int) pb_compat_register(sqlite3 *db, pb_error *err);

/** Flags for pb_compat_open. */
#define PB_OPEN_READONLY 0x1 /* open read-only */
#define PB_OPEN_CREATE   0x2 /* create the file if missing */
#define PB_OPEN_NOMUTEX  0x4 /* the connection is used by one thread only: no per-call mutex */

/** The busy timeout pb_compat_open sets, in milliseconds. */
#define PB_COMPAT_BUSY_MS 30000

/**
 * Opens a Plex DB with the compatibility layer registered, a busy timeout, and the pragmas Plex
 * itself uses (foreign_keys=OFF). The caller closes it with sqlite3_close().
 * @param out   OUT: the connection, NULL on failure.
 * @return 0, or PB_ENOTFOUND / PB_ESQLITE with detail in `err`.
 */
PB_EXTERN(int) pb_compat_open(sqlite3 **out, const char *path, int flags, pb_error *err);

/**
 * pb_compat_open(PB_OPEN_READONLY | PB_OPEN_NOMUTEX) in the shape of a pb_sqldiff_open_fn
 * (plexburst/sqldiff.h): the opener to give pb_diff_options.open and pb_expand_options.open when
 * the DBs are Plex DBs. `payload` is unused.
 */
PB_EXTERN(int)
pb_compat_open_reader(sqlite3 **out, const char *path, void *payload, pb_error *err);

#endif

/*
 * plexburst/compat.h: the Plex-SQLite compatibility layer and Plex's own SQLite engine.
 *
 * Real Plex DBs use an `icu_root` collation, the legacy `naturalsort` collation, the FTS4
 * tokenizer `collating` and `spellfix1` virtual tables, which stock SQLite lacks: without them
 * most writes to metadata_items and tags, PRAGMA integrity_check and FTS MATCH fail. This layer
 * registers them on a connection, built on ICU. The same code is built as the loadable extension
 * `plexcompat` for the sqlite3 shell (`.load build/plexcompat`).
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

/**
 * Opens a Plex DB with the compatibility layer registered, a busy timeout, and the pragmas Plex
 * itself uses (foreign_keys=OFF). The caller closes it with sqlite3_close().
 * @param out   OUT: the connection, NULL on failure.
 * @return 0, or PB_ENOTFOUND / PB_ESQLITE with detail in `err`.
 */
PB_EXTERN(int) pb_compat_open(sqlite3 **out, const char *path, int flags, pb_error *err);

/** How Plex's own engine is invoked. */
typedef enum pb_plex_engine_kind {
    PB_ENGINE_NONE = 0,
    PB_ENGINE_PLEX_SQLITE = 1, /* the "Plex SQLite" shell: `Plex SQLite` DB */
    PB_ENGINE_PMS_SQLITE = 2, /* the server binary in shell mode: `Plex Media Server` --sqlite DB */
    PB_ENGINE_SQLITE3_SHELL =
        3, /* a sqlite3-compatible shell given explicitly (tests, stand-ins) */
} pb_plex_engine_kind;

typedef struct pb_plex_engine {
    pb_plex_engine_kind kind;
    char path[4096]; /* absolute path of the executable */
} pb_plex_engine;

/**
 * Finds Plex's own SQLite engine: at `configured` when non-NULL (a file, or a directory holding
 * `Plex SQLite` or `Plex Media Server`), else in the standard install locations (Debian/Ubuntu
 * package, Docker images, Synology, QNAP, Snap, macOS).
 * @return 0 with `out` filled, PB_ENOTFOUND when there is none (detail in `err`).
 */
PB_EXTERN(int) pb_plex_engine_find(pb_plex_engine *out, const char *configured, pb_error *err);

#endif

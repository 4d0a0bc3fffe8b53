/*
 * plexburst/plex_engine.h: finding Plex's own SQLite engine, the executable that writes a Plex DB
 * with Plex's exact collations and modules ("Plex SQLite", or the server binary in shell mode).
 * The merge writes the live DB through it when it is installed (plexburst/plexmerge.h), and
 * `plexburst check` reports it (plexburst/plex.h).
 */
#ifndef PLEXBURST_PLEX_ENGINE_H
#define PLEXBURST_PLEX_ENGINE_H

#include "plexburst/errors.h"

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

/** A short stable name for an engine kind: "plex_sqlite", "pms_sqlite", "sqlite3_shell", "none". */
PB_EXTERN(const char *) pb_plex_engine_kind_name(pb_plex_engine_kind kind);

#endif

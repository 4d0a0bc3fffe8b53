/*
 * plexburst/plex.h: checking a Plex data directory (`plexburst check`): the library DBs' schema,
 * integrity, row counts, full-text search, and which Plex SQLite engine is available.
 * Reads only: the DBs are opened read-only through the compatibility layer (compat.h).
 */
#ifndef PLEXBURST_PLEX_H
#define PLEXBURST_PLEX_H

#include <stdint.h>
#include "plexburst/plex_engine.h"

/** The library DBs, relative to a Plex data dir ("…/Plex Media Server"). */
#define PB_PLEX_DB_REL    "Plug-in Support/Databases/com.plexapp.plugins.library.db"
#define PB_PLEX_BLOBS_REL "Plug-in Support/Databases/com.plexapp.plugins.library.blobs.db"

/** The tables whose rows pb_plex_check counts, in this order. */
#define PB_PLEX_CHECK_NCOUNTS 3

typedef enum pb_plex_fts_state {
    PB_FTS_SKIPPED = 0, /* no FTS table, or no titled item to look for */
    PB_FTS_OK = 1,      /* an item was found by its title */
    PB_FTS_FAILED = 2,  /* MATCH failed, or did not find the item */
} pb_plex_fts_state;

/** The result of pb_plex_check; release it with pb_plex_check_result_dispose. */
typedef struct pb_plex_check_result {
    int ok;                    /* 1 when every check below passed */
    char *main_path;           /* the main DB checked (under the data dir's real path) */
    int has_blobs;             /* 1 when the blobs DB exists */
    char *blobs_path;          /* where the blobs DB is (or would be) */
    int tables;                /* tables in the main DB (sqlite_master) */
    char schema_version[64];   /* newest schema_migrations.version, "" when none */
    char integrity_main[256];  /* "ok", or the first problems PRAGMA integrity_check reports */
    char integrity_blobs[256]; /* same for the blobs DB, "" when it is absent */
    struct {
        const char *table; /* static: library_sections, metadata_items, media_parts */
        int64_t rows;      /* -1 when the table is missing or unreadable */
    } counts[PB_PLEX_CHECK_NCOUNTS];
    pb_plex_fts_state fts;
    char fts_table[64];    /* the FTS table queried */
    char fts_title[256];   /* the title searched for */
    int64_t fts_matches;   /* rows the MATCH returned */
    char fts_detail[256];  /* why FTS was skipped or failed, "" when ok */
    pb_plex_engine engine; /* kind PB_ENGINE_NONE when none was found */
    int engine_configured; /* 1 when a path was given (argument or PLEXBURST_PLEX_SQLITE) */
    char *engine_detail;   /* why no engine was found; NULL when one was */
} pb_plex_check_result;

/**
 * Checks the Plex data dir `plex_dir`: opens the main DB (and the blobs DB when present)
 * read-only, counts tables, reads the newest schema migration, runs PRAGMA integrity_check on
 * both, counts rows of the main tables, searches one title with FTS MATCH, and looks for Plex's
 * engine (`plex_sqlite` as in pb_plex_engine_find). A configured engine that is not found, a
 * missing table, a failed integrity check or FTS search make `out->ok` 0. `out` is filled (and
 * must be disposed) in every case.
 * @return 0 when the check ran (see out->ok), PB_ENOTFOUND when the main DB does not exist,
 *         PB_ESQLITE when it cannot be opened, PB_EINVALID; detail in `err`.
 */
PB_EXTERN(int)
pb_plex_check(pb_plex_check_result *out, const char *plex_dir, const char *plex_sqlite,
              pb_error *err);

/** Frees what the result owns (its strings) and zeroes it; accepts NULL. */
PB_EXTERN(void) pb_plex_check_result_dispose(pb_plex_check_result *r);

#endif

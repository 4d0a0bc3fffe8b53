/*
 * plexburst/plexmerge.h: merging a cloud run's rows into the live home Plex DB pair, the Plex way.
 *
 * pb_plex_merge() takes three states of the library DB (and optionally of the blobs DB): the
 * baseline both sides agreed on, the cloud's analysed DB (or a precomputed base -> cloud
 * changeset) and the live home DB, and runs five phases:
 *   1. CHECK SCHEMAS  schema guard: same schema_migrations and the same tables/columns everywhere;
 *   2. DIFF           base -> cloud row changeset (derived tables excluded), raw and zstd sizes,
 *                     and the report's per-table / per-section / analysis figures;
 *   3. GUARDS         deletion guard: no library table, nor a section within one, may lose more
 *                     than max_delete_pct of its rows;
 *   4. BACKUP         the live pair copied with SQLite's backup API, the last N kept;
 *   5. MERGE          the 3-way merge (plexburst/merge.h) under the Plex policy: written by Plex's
 *                     own engine (a generated script) when it is installed, else in-process
 *                     through the compatibility layer; main + blobs atomic together.
 * pb_plex_diff() runs phases 1-3 (read-only); with a live DB it adds a dry-run merge (the 3-way
 * view: conflicts, remaps). Both fill a pb_plex_report that the CLI renders; the bundle apply
 * reuses it.
 *
 * Path mapping (plexburst/pathmap.h) rewrites cloud paths into home paths in the four Plex path
 * columns (section_locations.root_path, media_parts.file, media_streams.url, file:// guids).
 */
#ifndef PLEXBURST_PLEXMERGE_H
#define PLEXBURST_PLEXMERGE_H

#include <stdint.h>
#include "plexburst/errors.h"
#include "plexburst/merge.h"
#include "plexburst/pathmap.h"

/* ---------------------------------------------------------------------------------------------
 * The report
 */

/** The phases, in order (report.phase: the last phase reached, the failing one on error). */
typedef enum pb_plex_phase {
    PB_PHASE_NONE = 0,
    PB_PHASE_SCHEMA = 1, /* CHECK SCHEMAS */
    PB_PHASE_DIFF = 2,   /* DIFF */
    PB_PHASE_GUARDS = 3, /* GUARDS */
    PB_PHASE_BACKUP = 4, /* BACKUP */
    PB_PHASE_MERGE = 5,  /* MERGE (or the dry-run merge of a 3-way diff) */
    PB_PHASE_DONE = 6
} pb_plex_phase;

/** "CHECK SCHEMAS", "DIFF", "GUARDS", "BACKUP", "MERGE", ... */
PB_EXTERN(const char *) pb_plex_phase_name(int phase);

#define PB_PLEX_REPORT_TITLES 10 /* new titles listed */
#define PB_PLEX_REPORT_LISTED 10 /* conflicts and remaps listed */

typedef struct pb_plex_table_report {
    char schema[16]; /* "main" or "blobs" */
    char table[112];
    int table_class;                              /* pb_table_class */
    uint64_t cs_inserted, cs_updated, cs_deleted; /* records in the changeset */
    pb_merge_counts merge;                        /* the merge's decisions (zero without a merge) */
} pb_plex_table_report;

typedef struct pb_plex_section_report {
    int64_t id; /* library_sections.id (base/cloud numbering); 0 = items without a section */
    char name[128];
    int section_type;
    uint64_t items, parts; /* metadata_items / media_parts of the section in the base DB */
    uint64_t items_inserted, items_updated, items_deleted; /* metadata_items records */
    uint64_t parts_inserted, parts_updated, parts_deleted; /* media_parts records */
} pb_plex_section_report;

typedef struct pb_plex_new_title {
    int64_t id; /* in the changeset (the cloud's numbering) */
    int64_t section_id;
    int metadata_type;
    char type[16]; /* "movie", "episode", "track", ... */
    char title[192];
} pb_plex_new_title;

/** Analysis progress carried by the changeset (rows that gained the marker). */
typedef struct pb_plex_analysis {
    uint64_t sonic_tracks;     /* tracks gaining ms:musicAnalysisVersion */
    uint64_t loudness_items;   /* metadata_items gaining ln: keys */
    uint64_t loudness_streams; /* media_streams gaining ln: keys */
    uint64_t preview_parts;    /* media_parts gaining "mi:indexes" (preview thumbnails) */
    uint64_t markers;          /* new marker taggings (tag_type 12) */
    uint64_t intro_markers, credits_markers; /* of which text = intro / credits */
    uint64_t media_analyzed;                 /* media_items whose media_analysis_version rose */
    uint64_t blobs; /* new blobs rows (fingerprints, voice activity, subtitles) */
} pb_plex_analysis;

/** One merge decision kept for the report (conflicts and remaps). */
typedef struct pb_plex_listed {
    char schema[16];
    char table[112];
    char column[64]; /* empty for row-level decisions */
    int op;          /* SQLITE_INSERT / SQLITE_UPDATE / SQLITE_DELETE */
    int resolution;  /* pb_merge_resolution */
    int64_t old_id, new_id;
} pb_plex_listed;

typedef struct pb_plex_deletion_verdict {
    int checked; /* the guard ran */
    int ok;
    double max_pct;
    /* the worst share lost (a section's, or a whole table's when section_id is 0), even when ok */
    int64_t section_id;
    char section_name[128];
    char what[112]; /* "items", "parts" or a table name ("taggings", "blobs", ...) */
    uint64_t deleted, total;
    double pct;
    char message[512]; /* the refusal, or a one-line summary */
} pb_plex_deletion_verdict;

typedef struct pb_plex_schema_verdict {
    int checked;
    int ok;
    char base_version[64], cloud_version[64], live_version[64]; /* newest schema_migrations */
    uint64_t nversions;         /* schema_migrations rows of the base */
    uint64_t ntables;           /* tables compared (main + blobs) */
    char first_difference[256]; /* "column metadata_items.foo only in cloud", ... */
    char message[512];
} pb_plex_schema_verdict;

typedef struct pb_plex_report {
    int ok;                /* the operation completed */
    int phase;             /* pb_plex_phase: the last reached, or the failing one */
    int error_code;        /* PB_E* of the failure, 0 when ok */
    char error[512];       /* its message */
    int dry_run;           /* nothing was written */
    int merged;            /* the live DB was written */
    int three_way;         /* a live DB was involved (merge or 3-way diff) */
    int with_blobs;        /* the blobs DB was part of it */
    char engine[4200];     /* "plex-sqlite: /path", "in-process compatibility layer", ... */
    int atomic_pair;       /* main + blobs committed atomically (journal_mode=DELETE) */
    char backup_dir[4096]; /* the backup made, empty when none */
    unsigned backups_removed;

    uint64_t bytes_changeset;                     /* raw changesets (main + blobs) */
    uint64_t bytes_changeset_zstd;                /* the same, zstd-compressed */
    uint64_t cs_inserted, cs_updated, cs_deleted; /* changeset records, all tables */
    pb_merge_counts merge;                        /* merge totals (zero without a merge) */

    size_t ntables;
    pb_plex_table_report *tables; /* tables the changesets touch; owned by the report */
    size_t nsections;
    pb_plex_section_report *sections; /* owned by the report */
    uint64_t new_items;               /* metadata_items inserted */
    size_t ntitles;
    pb_plex_new_title titles[PB_PLEX_REPORT_TITLES];
    pb_plex_analysis analysis;
    size_t nconflicts;
    pb_plex_listed conflicts[PB_PLEX_REPORT_LISTED];
    size_t nremaps;
    pb_plex_listed remaps[PB_PLEX_REPORT_LISTED];
    size_t nunknown;             /* tables of unknown class, treated as user state */
    char unknown_tables[8][112]; /* the first of them */

    pb_plex_schema_verdict schema;
    pb_plex_deletion_verdict deletion;

    struct {
        double schema, diff, guards, backup, merge, total;
    } ms;
} pb_plex_report;

/** "insert", "update", "delete" for a changeset op (SQLITE_INSERT, ...); "?" otherwise. */
PB_EXTERN(const char *) pb_plex_op_name(int op);

/** "applied", "remapped", "natkey", "kept_live", "cloud_won", "dropped_user", "notfound",
 * "same" for a pb_merge_resolution. */
PB_EXTERN(const char *) pb_plex_resolution_name(int resolution);

/** "library", "user", "derived" for a pb_table_class. */
PB_EXTERN(const char *) pb_plex_class_name(int cls);

/** Releases what the report owns (tables, sections) and zeroes it; accepts NULL. */
PB_EXTERN(void) pb_plex_report_dispose(pb_plex_report *report);

/* ---------------------------------------------------------------------------------------------
 * Diff and merge
 */

/** How the merge writes the live DB. */
typedef enum pb_plex_engine_choice {
    PB_PLEX_ENGINE_AUTO =
        0, /* Plex's engine when installed (pb_plex_engine_find), else in-process */
    PB_PLEX_ENGINE_PATH = 1, /* the engine at plex_sqlite (a Plex SQLite, or a sqlite3 stand-in) */
    PB_PLEX_ENGINE_IN_PROCESS = 2 /* always the in-process compatibility layer */
} pb_plex_engine_choice;

typedef struct pb_plex_merge_options {
    unsigned version; /* PB_PLEX_MERGE_OPTIONS_VERSION */
    /* the library DB: base and live paths, and either cloud or changeset */
    const char *base, *cloud, *live;
    /** Instead of `cloud`: a base -> cloud changeset file (raw or zstd), as a bundle carries. */
    const char *changeset;
    /* the blobs DB (all optional; blobs_live is required when either blobs input is given) */
    const char *blobs_base, *blobs_cloud, *blobs_live, *blobs_changeset;
    const char *path_map;         /* path_mappings.json (cloud -> home), optional */
    const pb_pathmap *pathmap;    /* or an already loaded set (not freed) */
    double max_delete_pct;        /* deletion guard threshold in percent (default 5; 100 = off) */
    int dry_run;                  /* decide and report everything, write nothing */
    int engine;                   /* pb_plex_engine_choice */
    const char *plex_sqlite;      /* PB_PLEX_ENGINE_PATH: the engine executable or its directory */
    const char *compat_extension; /* for a sqlite3 stand-in engine: `.load` this extension */
    const char *backup_dir;       /* default: <dir of live>/plexburst-backups */
    int keep_backups;             /* backups kept in backup_dir (default 3; 0 = no backup) */
    const char *work_dir;         /* temporary files (default: $TMPDIR); removed unless keep_work */
    int keep_work;
    int zstd_level; /* for the bytes.changeset_zstd figure (default 19; the window is capped at
                       1 MiB and the size pledged: at most ~18 MB of memory, docs/cli.md) */
    /** Optional: every decision of the merge (the CLI's --list). */
    void (*on_action)(const pb_merge_action *a, void *payload);
    void *action_payload;
    /** Optional: called when a phase starts (progress display). */
    void (*on_phase)(int phase, void *payload);
    void *phase_payload;
} pb_plex_merge_options;

#define PB_PLEX_MERGE_OPTIONS_VERSION 1
/* The defaults: max_delete_pct 5, keep_backups 3, zstd level 19, everything else 0/NULL. */
#define PB_PLEX_MERGE_OPTIONS_INIT                                                                 \
    {                                                                                              \
        .version = PB_PLEX_MERGE_OPTIONS_VERSION, .max_delete_pct = 5.0, .keep_backups = 3,        \
        .zstd_level = 19                                                                           \
    }

/** Sets `*opts` to PB_PLEX_MERGE_OPTIONS_INIT. */
PB_EXTERN(void) pb_plex_merge_options_init(pb_plex_merge_options *opts);

/**
 * Read-only inspection: schema guard, base -> cloud diff, deletion guard verdict (reported, not
 * enforced), and with opts->live a dry-run merge (conflicts, remaps). Never writes a DB.
 * `report` is caller-allocated (zeroed by the call) and filled in every case; release it with
 * pb_plex_report_dispose().
 * @return 0, PB_ESCHEMA (the schema guard failed: report->schema says why), PB_ENOTFOUND,
 *         PB_ECORRUPT, PB_ESQLITE, PB_EINVALID, ...
 */
PB_EXTERN(int)
pb_plex_diff(const pb_plex_merge_options *opts, pb_plex_report *report, pb_error *err);

/**
 * The five phases above. On any failure the live DBs are unchanged.
 * @return 0; PB_ESCHEMA (schema guard), PB_EREFUSED (deletion guard), PB_ECORRUPT (bad
 *         changeset or DB), PB_ENOTFOUND, PB_EBUSY, PB_ESQLITE, PB_EIO, PB_ERROR (the engine
 *         failed: its message in err). `report` as for pb_plex_diff.
 */
PB_EXTERN(int)
pb_plex_merge(const pb_plex_merge_options *opts, pb_plex_report *report, pb_error *err);

#endif

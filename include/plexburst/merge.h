/*
 * plexburst/merge.h: the generic 3-way row merge of sqldiff/.
 *
 * A changeset computed as base -> cloud (SQLite session CHANGESET format, see sqldiff.h) is
 * applied onto a live DB that has diverged from the base since. Nothing here knows Plex: the
 * caller passes a policy that classifies tables, decides per column, declares the reference
 * graph and natural keys, and maps values (paths). engine/ holds the Plex policy.
 *
 * Semantics, per changeset record (old = base values carried by the changeset):
 *   - table class PB_CLASS_LIBRARY:
 *       INSERT  the row is inserted; when its integer primary key is already used in the live DB
 *               (the live side inserted since the base), it is renumbered above every id in use
 *               (live max, sqlite_sequence, and every id the changeset inserts) and every reference
 *               to it in the changeset follows (refs below, across the attached DBs too); when a
 *               natural key matches a live row, the insert maps onto that row instead.
 *       UPDATE  per changed column: the cloud value is written when the live value still equals
 *               the base value; when the live side changed that column too, the live value stays
 *               (a conflict, counted and listed); a row the live DB no longer has is skipped
 *               (counted as notfound).
 *       DELETE  the live row is deleted (a conflict is counted when the live side changed it).
 *     Reference columns in INSERT and UPDATE values follow the remaps.
 *   - PB_CLASS_USER: live wins; every record is dropped and counted as user_state_dropped.
 *   - PB_CLASS_DERIVED: never shipped; a changeset touching such a table is refused (PB_ECORRUPT).
 *   - Tables without a primary key (every column flagged as key in the changeset) are row
 * multisets: INSERT adds the row unless an identical live row exists, DELETE removes one identical
 * row. Everything runs in one transaction (BEGIN IMMEDIATE, busy timeout): all or nothing.
 */
#ifndef PLEXBURST_MERGE_H
#define PLEXBURST_MERGE_H

#include <stdint.h>
#include <stdio.h>
#include "plexburst/errors.h"

typedef struct sqlite3 sqlite3;

typedef enum pb_table_class {
    PB_CLASS_LIBRARY = 1, /* 3-way per column: cloud wins unless the live side changed the column */
    PB_CLASS_USER = 2,    /* live wins: changes are dropped and counted */
    PB_CLASS_DERIVED = 3, /* never shipped: refused when present */
} pb_table_class;

typedef enum pb_column_rule {
    PB_COL_DEFAULT = 0,   /* the 3-way rule above */
    PB_COL_KEEP_LIVE = 1, /* never written from the changeset */
    PB_COL_TAKE_CLOUD = 2 /* written from the changeset even when the live side changed it */
} pb_column_rule;

/**
 * A reference: `schema.table.column` holds an id of `target_schema.target_table`'s integer
 * primary key. With `when_column`, the reference applies only to rows whose `when_column` equals
 * `when_value` (text), e.g. blobs.linked_id -> media_parts when linked_type = 'media_part'.
 * Schemas are the names of the attached DBs in the live connection ("main", "blobs").
 */
typedef struct pb_merge_ref {
    const char *schema, *table, *column;
    const char *target_schema, *target_table;
    const char *when_column, *when_value; /* optional, NULL when unconditional */
} pb_merge_ref;

/** A natural key: an insert whose values in `columns` equal a live row's maps onto that row. */
typedef struct pb_merge_natkey {
    const char *schema, *table;
    const char *columns[8]; /* NULL-terminated */
} pb_merge_natkey;

typedef struct pb_merge_policy {
    unsigned version; /* PB_MERGE_POLICY_VERSION */
    /** Class of `schema.table` (a pb_table_class). Required. */
    int (*table_class)(const char *schema, const char *table, void *payload);
    /** Optional: a pb_column_rule for a column of a library table. */
    int (*column_rule)(const char *schema, const char *table, const char *column, void *payload);
    /**
     * Optional value mapping applied to text values of the changeset (old and new) before any
     * comparison or write, e.g. cloud paths -> home paths. Returns 1 and sets *out to a malloc'd
     * string (length in *out_n) when the value changes, 0 when it does not, negative on error.
     */
    int (*map_text)(const char *schema, const char *table, const char *column, const char *in,
                    size_t n, char **out, size_t *out_n, void *payload);
    const pb_merge_ref *refs;
    size_t nrefs;
    const pb_merge_natkey *natkeys;
    size_t nnatkeys;
    void *payload;
} pb_merge_policy;

#define PB_MERGE_POLICY_VERSION 1

/** One decision of the merge, reported through pb_merge_options.on_action. */
typedef enum pb_merge_resolution {
    PB_RES_APPLIED = 1,      /* written as the changeset says */
    PB_RES_REMAPPED = 2,     /* inserted under a new id (old_id -> new_id) */
    PB_RES_NATKEY = 3,       /* insert mapped onto an existing live row (old_id -> new_id) */
    PB_RES_KEPT_LIVE = 4,    /* conflict: the live value of `column` was kept */
    PB_RES_CLOUD_WON = 5,    /* conflict: the cloud value was written (delete of a changed row) */
    PB_RES_DROPPED_USER = 6, /* user-state change dropped */
    PB_RES_NOTFOUND = 7,     /* the live DB no longer has the row: skipped */
    PB_RES_SAME = 8,         /* the live DB already holds the cloud value */
} pb_merge_resolution;

typedef struct pb_merge_action {
    const char *schema, *table;
    int op;             /* SQLITE_INSERT, SQLITE_UPDATE or SQLITE_DELETE */
    int64_t old_id;     /* primary key in the changeset (0 when not an integer key) */
    int64_t new_id;     /* primary key in the live DB after the merge */
    const char *column; /* for column-level resolutions, else NULL */
    pb_merge_resolution resolution;
} pb_merge_action;

/** A changeset to merge: a file holding a raw (uncompressed) changeset, applied to `schema`. */
typedef struct pb_merge_input {
    const char *schema; /* "main" or the name the DB is attached under ("blobs") */
    const char *path;   /* read twice: once to plan ids, once to apply */
} pb_merge_input;

typedef struct pb_merge_options {
    unsigned version; /* PB_MERGE_OPTIONS_VERSION */
    int dry_run;      /* decide and count everything, write nothing (rolls back) */
    int busy_timeout_ms;
    /**
     * When non-NULL the merge writes nothing into the live connection (opened read-only is fine):
     * it decides by reading it and writes an equivalent SQL script here (BEGIN IMMEDIATE; ...;
     * COMMIT;), to be run by Plex's own engine.
     */
    FILE *script;
    void (*on_action)(const pb_merge_action *a, void *payload); /* optional listing */
    void *action_payload;
} pb_merge_options;

#define PB_MERGE_OPTIONS_VERSION 1
#define PB_MERGE_OPTIONS_INIT                                                                      \
    {                                                                                              \
        PB_MERGE_OPTIONS_VERSION, 0, 30000, NULL, NULL, NULL                                       \
    }

typedef struct pb_merge_counts {
    uint64_t inserted, updated, deleted; /* rows written */
    uint64_t conflicts;                  /* columns or rows where both sides changed */
    uint64_t remapped;                   /* inserts renumbered */
    uint64_t natkey_mapped;              /* inserts mapped onto an existing row */
    uint64_t user_state_dropped;         /* user-state records dropped */
    uint64_t notfound;                   /* updates/deletes of rows the live DB no longer has */
    uint64_t same;                       /* records the live DB already reflected */
} pb_merge_counts;

#define PB_MERGE_MAX_TABLES 256

typedef struct pb_merge_table_counts {
    char schema[16];
    char table[112];
    pb_merge_counts c;
} pb_merge_table_counts;

typedef struct pb_merge_stats {
    pb_merge_counts total;
    unsigned ntables;
    pb_merge_table_counts tables[PB_MERGE_MAX_TABLES]; /* tables the changesets touched */
    double ms;
} pb_merge_stats;

/**
 * Merges `ninputs` changesets into the live connection `live` (with the other DBs already
 * attached under the schema names the inputs and the policy use), in one transaction.
 * @return 0, PB_ECORRUPT (changeset malformed or touching a derived/unknown table), PB_ESCHEMA
 *         (a table or column the live DB lacks), PB_EBUSY, PB_ESQLITE; on any error nothing is
 *         written. `stats` is filled in every case (partially on error).
 */
PB_EXTERN(int)
pb_merge_apply(sqlite3 *live, const pb_merge_input *inputs, size_t ninputs,
               const pb_merge_policy *policy, const pb_merge_options *opts, pb_merge_stats *stats,
               pb_error *err);

#endif

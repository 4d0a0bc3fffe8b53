/*
 * plexburst/merge.h: the generic 3-way row merge of sqldiff/.
 *
 * A changeset computed as base -> cloud (SQLite session CHANGESET format, see sqldiff.h) is
 * applied onto a live DB that has diverged from the base since. Nothing here knows Plex: the
 * caller passes a policy that classifies tables, decides per column, declares the reference
 * graph and natural keys, and maps values (paths). engine/ holds the Plex policy.
 *
 * Semantics, per changeset record (old = base values carried by the changeset; text values, old
 * and new, first go through the policy's map_text):
 *   - table class PB_CLASS_LIBRARY:
 *     INSERT  the row is inserted; when its integer primary key is already used in the live DB
 *             (the live side inserted since the base), it is renumbered above every id in use
 *             (live max, sqlite_sequence, every id the changeset inserts, and every id that a
 *             reference written by the changeset names, dangling ones included) and every
 *             reference to it in the changeset follows (refs below, across the attached DBs
 *             too); when a natural key matches a live row, the insert maps onto that row instead
 *             (nothing is written; references follow). Renumbered ids are handed out in
 *             ascending order of the changeset ids. In a table keyed otherwise (composite or
 *             non-integer key), an insert whose key the live DB already holds is decided column
 *             by column against that row, without base: equal columns are `same`, differing ones
 *             conflicts (live kept unless PB_COL_TAKE_CLOUD).
 *     UPDATE  per changed column: the cloud value is written when the live value still equals
 *             the base value; when the live side changed that column too, the policy's
 *             merge_column (when given) may merge the three values into a new one (written,
 *             counted as `merged`, resolution PB_RES_MERGED); otherwise, or when it declines,
 *             the live value stays (a conflict, counted and listed); a row the live DB no longer
 * has is skipped (counted as notfound). A column whose cloud value equals the base value is no
 *             change; a column already holding the cloud value is `same`. PB_COL_KEEP_LIVE
 *             columns are ignored; PB_COL_TAKE_CLOUD columns are written even over a live
 *             change (a conflict resolved PB_RES_CLOUD_WON). The record counts as `updated`
 *             when a column was written, else as `same` when no column conflicted.
 *     DELETE  the live row is deleted (a conflict is counted when the live side changed it,
 *             resolved PB_RES_CLOUD_WON); a row the live DB no longer has counts as notfound.
 *     Reference columns in INSERT and UPDATE values follow the remaps (old values and the keys of
 *     UPDATE/DELETE are base ids, used as they are). For a conditional ref in an UPDATE, the
 *     condition column comes from the record when it carries it, else from the live row.
 *   - PB_CLASS_USER: live wins; every record is dropped and counted as user_state_dropped (the
 *     live DB need not have the table).
 *   - PB_CLASS_DERIVED: never shipped; a changeset touching such a table is refused (PB_ECORRUPT),
 *     as is a table the policy does not classify. Records of `sqlite_sequence` are skipped: the
 *     merge maintains it (seq = max(seq, max(id)) for every AUTOINCREMENT table it inserted into).
 *   - Tables without a primary key (every column flagged as key in the changeset; also a table
 *     keyed by non-INTEGER columns that our diff sent that way for NULLs in its key) are row
 *     multisets: INSERT adds the row unless an identical live row exists (`IS` on every column,
 *     so identical inserts collapse into one row), DELETE removes one identical row. A live
 *     UNIQUE constraint an INSERT would violate fails the merge (PB_ECONFLICT).
 * map_text may be called more than once for a value (it must be deterministic).
 * Values are equal when SQL `IS` with binary collation says so (1 and 1.0 are equal, text and blob
 * never are); natural keys and keys are looked up with the columns' own collations (as the live
 * DB's indexes are). Refs and natural keys naming a column the live table lacks are ignored
 * (application schemas vary by version). Natural keys apply to tables keyed by one INTEGER column;
 * a natural key containing a ref column is matched once the refs it depends on are planned (refs
 * into tables whose own natural key contains refs are followed in changeset order).
 *
 * Everything runs in one transaction (BEGIN IMMEDIATE, busy timeout): all or nothing. Planning
 * (natural keys, renumbering) reads the live DB inside that transaction, before the first write.
 * With several files attached (main + blobs), SQLite commits them atomically only in a rollback
 * journal mode (DELETE, TRUNCATE, PERSIST: a super-journal ties the files together); in WAL mode
 * each file commits on its own and a crash between the two commits leaves one file merged and the
 * other not. The merge never changes journal modes: pb_merge_commit_is_atomic() tells the caller
 * which case it is in, and the caller switches modes or keeps its own journal.
 */
#ifndef PLEXBURST_MERGE_H
#define PLEXBURST_MERGE_H

#include <stdint.h>
#include <stdio.h>
#include "plexburst/errors.h"

typedef struct sqlite3 sqlite3;
typedef struct sqlite3_value sqlite3_value;

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
    /**
     * Version 2, optional: a 3-way merge of one column's values, called for an UPDATE of a
     * library table when both sides changed the column (PB_COL_DEFAULT columns; base, cloud and
     * live all differ), instead of keeping the live value. `base` and `cloud` are the record's
     * values (after map_text), `live` the live row's; they are valid during the call only.
     * Returns 1 with *out a malloc'd text value (length in *out_n; the merge frees it) that is
     * written in place of the cloud value; 2 likewise, when part of the value both sides changed
     * kept the live side's version (also counted as a conflict); 0 to apply the default rule
     * (the live value stays, a conflict); negative (a PB_E* code) to fail the merge. A merged
     * value equal to the live value is the default rule. Must be deterministic (script mode and
     * in-process decide alike).
     */
    int (*merge_column)(const char *schema, const char *table, const char *column,
                        sqlite3_value *base, sqlite3_value *cloud, sqlite3_value *live, char **out,
                        size_t *out_n, void *payload);
    /**
     * Version 3, optional: same-row keys. An INSERT whose values in a same key's columns equal
     * those of a live row the home added since the base (none of them NULL; "added": its id is
     * at least the smallest id the changesets insert into the table, as both sides number new
     * rows past the base's) is the same thing added on both sides: it
     * maps onto that row as a natural key does (references follow; listed PB_RES_NATKEY, counted
     * natkey_mapped) and its values are then written into the row, per column: a value the cloud
     * leaves NULL or that the live row already holds changes nothing; over a live NULL the cloud's
     * value is written; otherwise merge_column (when given; base NULL) may merge the two, else the
     * cloud's value wins (a conflict, PB_RES_CLOUD_WON). PB_COL_KEEP_LIVE columns are left alone.
     * Natural keys are tried first. A same key containing a ref column is matched once refs are
     * planned, as natural keys are.
     */
    const pb_merge_natkey *same_keys;
    size_t nsame_keys;
    /**
     * Version 3, optional: refs along which a same-row identity propagates (when_column is not
     * supported: such refs are ignored). When an insert of `table` maps onto a live row by a same
     * key (or by this propagation), the row its `column` names, when that is an insert of the
     * changesets not mapped otherwise, maps onto the row the live row's `column` names and is
     * written into it the same way; repeated until nothing changes (a part -> its media -> its
     * item -> the item's parent).
     */
    const pb_merge_ref *same_refs;
    size_t nsame_refs;
} pb_merge_policy;

/* Version 2 added merge_column, version 3 same_keys and same_refs; older structures (without
 * them) are still accepted. */
#define PB_MERGE_POLICY_VERSION 3

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
    PB_RES_MERGED = 9,       /* both sides changed `column`: the policy merged the values */
} pb_merge_resolution;

typedef struct pb_merge_action {
    const char *schema, *table;
    int op;             /* SQLITE_INSERT, SQLITE_UPDATE or SQLITE_DELETE */
    int64_t old_id;     /* primary key in the changeset (0 when not an integer key) */
    int64_t new_id;     /* primary key in the live DB after the merge (0 as for old_id) */
    const char *column; /* for column-level resolutions, else NULL */
    pb_merge_resolution resolution;
} pb_merge_action; /* the strings are valid during the callback only */

/**
 * A changeset to merge: a file holding a raw (uncompressed) changeset, applied to `schema`. The
 * inputs are changesets of one base -> cloud step, one per schema (the keys of their UPDATE and
 * DELETE records are base ids: an input cannot update rows another input inserts).
 */
typedef struct pb_merge_input {
    const char *schema; /* "main" or the name the DB is attached under ("blobs") */
    const char *path;   /* read twice: once to plan ids, once to apply */
} pb_merge_input;

typedef struct pb_merge_options {
    unsigned version;    /* PB_MERGE_OPTIONS_VERSION */
    int dry_run;         /* decide and count everything, write nothing (rolls back) */
    int busy_timeout_ms; /* set on `live` for the merge (the previous value is restored) */
    /**
     * When non-NULL the merge writes nothing into the live connection (opened read-only is fine;
     * it uses TEMP tables only): it decides by reading it and writes an equivalent SQL script here
     * (BEGIN IMMEDIATE; ...; COMMIT;), to be run by another engine (e.g. Plex's own) with the same
     * DBs attached under the same schema names. Values are exact SQL literals, ids already
     * remapped. On error the script is incomplete (no COMMIT) and must be discarded. dry_run does
     * not apply here. The decisions are those of an in-process merge as long as no trigger of the
     * live DB writes into a table the changesets touch.
     */
    FILE *script;
    void (*on_action)(const pb_merge_action *a, void *payload); /* optional listing */
    void *action_payload;
    /**
     * Version 2. Script mode only: SQL written into the script just before its COMMIT when the
     * merge writes at least one row (nothing otherwise), so that it commits in the merge's own
     * transaction, e.g. a commit marker in another attached DB (the journaled apply). NULL for
     * none. It must be complete statements ending with a newline.
     */
    const char *script_before_commit;
    /**
     * Version 3, optional: called right after each record written (insert, update or delete
     * executed, or rendered into the script, which is flushed first), with the number written so
     * far. A test hook: crash tests kill the process here to check recovery by SQLite's journal.
     */
    void (*after_write)(uint64_t writes, void *payload);
    void *write_payload;
    /**
     * Version 4, optional: SQL run inside the merge's transaction just before its COMMIT when
     * the merge writes at least one row or sql_before_writes is set (in-process: executed, a
     * failure aborts the merge; script mode: written before script_before_commit). E.g. deferred
     * index maintenance. NULL for none. Complete statements ending with a newline.
     */
    const char *sql_before_commit;
    /**
     * Version 4, optional: SQL run inside the merge's transaction before its first write
     * (in-process: executed; script mode: written right after BEGIN IMMEDIATE). NULL for none.
     */
    const char *sql_before_writes;
} pb_merge_options;

/* Version 2 added script_before_commit, version 3 after_write, version 4 sql_before_commit and
 * sql_before_writes;
 * older structures (without them) are still accepted. */
#define PB_MERGE_OPTIONS_VERSION 4
#define PB_MERGE_OPTIONS_INIT                                                                      \
    {                                                                                              \
        PB_MERGE_OPTIONS_VERSION, 0, 30000, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL         \
    }

/** Sets `*opts` to PB_MERGE_OPTIONS_INIT. */
PB_EXTERN(void) pb_merge_options_init(pb_merge_options *opts);

typedef struct pb_merge_counts {
    uint64_t inserted, updated, deleted; /* rows written */
    uint64_t conflicts;                  /* columns or rows where both sides changed */
    uint64_t remapped;                   /* inserts renumbered */
    uint64_t natkey_mapped;              /* inserts mapped onto an existing row */
    uint64_t user_state_dropped;         /* user-state records dropped */
    uint64_t notfound;                   /* updates/deletes of rows the live DB no longer has */
    uint64_t same;                       /* records the live DB already reflected */
    uint64_t merged;                     /* columns both sides changed, merged by the policy */
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
 * `live` must not be inside a transaction. Memory stays bounded whatever the changeset size: the
 * inputs are streamed (twice) and the id plan lives in a TEMP table of `live` (temp.pb_remap).
 * @return 0, PB_ECORRUPT (changeset malformed or touching a derived/unknown table), PB_ESCHEMA
 *         (a table the live DB lacks, a column count or key that differs), PB_ECONFLICT (a write
 *         violates a constraint of the live DB, e.g. a UNIQUE index no natural key covers),
 *         PB_EINVALID (bad arguments, a schema not attached), PB_ENOTFOUND / PB_EIO (an input
 *         file, the script), PB_EBUSY, PB_ESQLITE, or a negative code returned by map_text; on
 *         any error nothing is written and the message (one line) names the table and record.
 *         `stats` is filled in every case (partially on error).
 */
PB_EXTERN(int)
pb_merge_apply(sqlite3 *live, const pb_merge_input *inputs, size_t ninputs,
               const pb_merge_policy *policy, const pb_merge_options *opts, pb_merge_stats *stats,
               pb_error *err);

/**
 * Whether one COMMIT on `live` is atomic across the files of the schemas `inputs` write to: 1 when
 * they are one schema, or when the main DB is a file and every one of them is in a rollback journal
 * mode (DELETE, TRUNCATE, PERSIST); 0 otherwise (WAL, MEMORY, OFF). Reads pragmas only.
 * @param out  OUT: 1 or 0.
 * @return 0, or PB_ESQLITE / PB_EINVALID with detail in `err`.
 */
PB_EXTERN(int)
pb_merge_commit_is_atomic(int *out, sqlite3 *live, const pb_merge_input *inputs, size_t ninputs,
                          pb_error *err);

#endif

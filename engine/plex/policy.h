/*
 * policy.h (internal): the Plex merge policy (a pb_merge_policy, plexburst/merge.h) built from
 * the live schema: table classes, the reference graph, natural keys and path mapping.
 * Role: plexmerge.c hands it to pb_merge_apply() and uses its classes for the diff's table
 * filter and the report. docs/cli.md documents the decisions (class table, defaults).
 */
#ifndef PB_PLEXPOLICY_H
#define PB_PLEXPOLICY_H

#include <sqlite3.h>
#include "plexburst/merge.h"
#include "plexburst/plexmerge.h"
#include "plexburst/sqldiff.h"

typedef struct pb_plex_policy pb_plex_policy;

/**
 * The class of a Plex table from its name alone (no schema at hand): PB_CLASS_LIBRARY,
 * PB_CLASS_USER or PB_CLASS_DERIVED. `*known` (optional) is set to 0 when the name is not one
 * plexburst knows, in which case the safe default PB_CLASS_USER (home wins) is returned.
 */
int pb_plex_class_by_name(const char *table, int *known);
/** The table a reference column whose target is not its name's stem points at (`table` itself
 * for a tree column such as parent_id), or NULL when `column` is no such alias. */
const char *pb_plex_ref_alias(const char *table, const char *column);

/**
 * Reads `sqlite_master` and the table shapes of each schema in `schemas` ("main", "blobs", ...
 * attached on `db`) and builds the policy: classes (virtual tables and their shadow tables are
 * derived whatever their names), references (from column names, only between library tables
 * with an integer primary key; blobs.linked_id conditionally to main.media_parts /
 * main.media_streams), natural keys (the fixed list plus every UNIQUE index of a library table
 * over NOT NULL columns only: natural keys compare with `IS`, so a nullable column would map
 * an insert onto an unrelated row whose value is NULL too)
 * and path mapping through `pm` (may be NULL; borrowed, must outlive the policy).
 * @return 0, PB_ESQLITE, PB_ENOMEM.
 */
int pb_plex_policy_new(pb_plex_policy **out, sqlite3 *db, const char *const *schemas,
                       size_t nschemas, const pb_pathmap *pm, pb_error *err);

/** The pb_merge_policy view (valid as long as the policy). */
const pb_merge_policy *pb_plex_policy_merge(const pb_plex_policy *p);

/** The class of `schema.table` (as the merge sees it). */
int pb_plex_policy_class(const pb_plex_policy *p, const char *schema, const char *table);

/** 1 when `table` of `schema` takes part in a diff (every class but derived). */
int pb_plex_policy_include(const pb_plex_policy *p, const char *schema, const char *table);

/**
 * Diffs `base` -> `cloud` (sqldiff, compat reader) into the file `raw`, keeping the tables of
 * `schema` the policy includes. `what` starts the error messages ("export", "merge"); `ds`
 * (optional) receives the row counts.
 * @return 0 or a sqldiff error; PB_EIO when `raw` cannot be written.
 */
int pb_plex_policy_diff_file(const pb_plex_policy *p, const char *schema, const char *base,
                             const char *cloud, const char *raw, const char *what,
                             pb_diff_stats *ds, pb_error *err);

/** Position of `column` in `schema.table` as the policy read it, or -1. */
int pb_plex_policy_column(const pb_plex_policy *p, const char *schema, const char *table,
                          const char *column);

/** Number of columns of `schema.table`, or -1 when the table is unknown. */
int pb_plex_policy_ncolumns(const pb_plex_policy *p, const char *schema, const char *table);

/** Tables of `schema` whose class fell to the default (unknown names); NULL past the end. */
const char *pb_plex_policy_unknown(const pb_plex_policy *p, size_t i);

/** Frees the policy; accepts NULL. */
void pb_plex_policy_free(pb_plex_policy *p);

#endif

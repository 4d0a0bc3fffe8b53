/*
 * guards.h (internal): the two guards of a Plex merge, each returning a verdict for the report
 * whether it passes or not.
 * - schema guard: every DB involved is at the same Plex schema (schema_migrations: newest version
 *   and the whole set) and has the same tables and columns (in order, with types and PK flags);
 * - deletion guard: no library table, and no library section within one, loses more than
 *   max_delete_pct of its rows (a cloud mount that failed makes Plex delete most of a section; a
 *   broken cloud run may drop every tagging, stream or blob).
 * Role: plexmerge.c runs them before anything is written.
 */
#ifndef PB_GUARDS_H
#define PB_GUARDS_H

#include "plexburst/plexmerge.h"

/** The DBs of a merge; any may be NULL (not involved). */
typedef struct pb_plex_db_set {
    const char *base, *cloud, *live;
    const char *blobs_base, *blobs_cloud, *blobs_live;
} pb_plex_db_set;

/**
 * Compares the library DBs among themselves and the blobs DBs among themselves (all opened
 * read-only). Internal `sqlite_*` tables are not compared.
 * @return 0 (v->ok = 1); PB_ESCHEMA with the one-line verdict in `err` and v->message, e.g.
 *         "schema guard: cloud is at 500000000001.231, home at 500000000001.229"; PB_ENOTFOUND /
 *         PB_ECORRUPT / PB_ESQLITE when a DB cannot be read.
 */
int pb_plex_guard_schema(pb_plex_schema_verdict *v, const pb_plex_db_set *dbs, pb_error *err);

/**
 * Evaluates the per-section figures of a changeset (pb_plex_report.sections: base counts and
 * deletions) against `max_pct`. Items without a section (id 0, playlists) are not guarded.
 * @return 0 (v->ok = 1, v names the worst section anyway), or PB_EREFUSED with the verdict in
 *         `err` and v->message, e.g. `deletion guard: section "Movies" (id 1) would lose 221 of
 *         224 items (98.7 % > 5 %)`.
 */
int pb_plex_guard_deletion(pb_plex_deletion_verdict *v, const pb_plex_section_report *sections,
                           size_t nsections, double max_pct, pb_error *err);

/** What the deletion guard over every library table reads. */
typedef struct pb_plex_deletion_input {
    const pb_plex_report *report; /* tables (cs_deleted, class) and sections (items, parts) */
    const char *base;             /* the base library DB */
    const char *blobs_base;       /* the base blobs DB, NULL when blobs take no part */
    const char *main_cs;          /* the raw base -> cloud changesets (blobs_cs may be NULL) */
    const char *blobs_cs;
} pb_plex_deletion_input;

/**
 * The deletion guard over every library table (guards.c says which tables and why): the
 * sections' items and parts as pb_plex_guard_deletion, and for each library table with deletions
 * its share of the base's rows, table-wide and per library section where its rows lead to one.
 * Counts are SQL queries on the base (opened read-only) and one streamed pass per changeset.
 * A section losing more than the limit of its items or parts is the verdict when there is one;
 * otherwise the worst share of all.
 * @return 0 (v->ok = 1, v names the worst share), PB_EREFUSED with the one-line verdict, e.g.
 *         `deletion guard: table taggings would lose 1419 of 1500 rows (94.6 % > 5 %)`, or an
 *         error reading the base or a changeset.
 */
int pb_plex_guard_deletion_all(pb_plex_deletion_verdict *v, const pb_plex_deletion_input *in,
                               double max_pct, pb_error *err);

#endif

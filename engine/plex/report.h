/*
 * report.h (internal): filling a pb_plex_report (plexburst/plexmerge.h) from changesets: per-table
 * record counts, per-section items and parts, new titles, analysis progress.
 * Role: plexmerge.c scans each changeset once after the diff (or as received in a bundle);
 * the deletion guard then reads the per-section figures.
 */
#ifndef PB_REPORT_H
#define PB_REPORT_H

#include <sqlite3.h>
#include "plexburst/merge.h"
#include "plexburst/plexmerge.h"
#include "policy.h"

typedef struct pb_plex_scan pb_plex_scan;

/**
 * Starts a scan into `r`: reads the base DB's sections and their item/part counts and the marker
 * tags (tag_type 12). `base` is a connection on the base library DB (read-only is fine); `pol`
 * gives the table classes and column positions (the live shape, equal to the base's).
 * @return 0, PB_ESQLITE, PB_ENOMEM.
 */
int pb_plex_scan_new(pb_plex_scan **out, pb_plex_report *r, sqlite3 *base,
                     const pb_plex_policy *pol, pb_error *err);

/**
 * Scans the raw changeset at `path`, applied to `schema` ("main" or "blobs").
 * @return 0; PB_ECORRUPT (malformed changeset), PB_ESCHEMA (a table the DBs do not have, or
 *         another column count), PB_EIO, PB_ENOMEM, PB_ESQLITE.
 */
int pb_plex_scan_changeset(pb_plex_scan *s, const char *schema, const char *path, pb_error *err);

/** Frees the scan (the report keeps what it gathered); accepts NULL. */
void pb_plex_scan_free(pb_plex_scan *s);

/** The report's entry for `schema.table`, added (with `cls`) when missing; NULL on ENOMEM. */
pb_plex_table_report *pb_plex_report_table(pb_plex_report *r, const char *schema, const char *table,
                                           int cls);

/** Adds the merge's per-table and total counts to the report. */
int pb_plex_report_add_merge(pb_plex_report *r, const pb_merge_stats *st,
                             const pb_plex_policy *pol);

/** Keeps a merge decision in the report's lists (conflicts, remaps) and counts nothing. */
void pb_plex_report_note_action(pb_plex_report *r, const pb_merge_action *a);

#endif

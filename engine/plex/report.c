/*
 * report.c: the pb_plex_report's own helpers (see report.h): phase, op, resolution and class
 * names, the per-table entries, the merge's counts and listed decisions, dispose.
 * Role: what the diff and merge commands show; the figures gathered from the changesets are
 * report_scan.c's.
 * Prerequisites: none beyond libc.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "report.h"

const char *pb_plex_phase_name(int phase)
{
    switch (phase) {
    case PB_PHASE_SCHEMA:
        return "CHECK SCHEMAS";
    case PB_PHASE_DIFF:
        return "DIFF";
    case PB_PHASE_GUARDS:
        return "GUARDS";
    case PB_PHASE_BACKUP:
        return "BACKUP";
    case PB_PHASE_MERGE:
        return "MERGE";
    case PB_PHASE_DONE:
        return "DONE";
    default:
        return "START";
    }
}

const char *pb_plex_op_name(int op)
{
    switch (op) {
    case SQLITE_INSERT:
        return "insert";
    case SQLITE_UPDATE:
        return "update";
    case SQLITE_DELETE:
        return "delete";
    default:
        return "?";
    }
}

const char *pb_plex_resolution_name(int res)
{
    switch (res) {
    case PB_RES_APPLIED:
        return "applied";
    case PB_RES_REMAPPED:
        return "remapped";
    case PB_RES_NATKEY:
        return "natkey";
    case PB_RES_KEPT_LIVE:
        return "kept_live";
    case PB_RES_CLOUD_WON:
        return "cloud_won";
    case PB_RES_DROPPED_USER:
        return "dropped_user";
    case PB_RES_NOTFOUND:
        return "notfound";
    case PB_RES_SAME:
        return "same";
    case PB_RES_MERGED:
        return "merged";
    default:
        return "?";
    }
}

const char *pb_plex_class_name(int cls)
{
    switch (cls) {
    case PB_CLASS_LIBRARY:
        return "library";
    case PB_CLASS_USER:
        return "user";
    case PB_CLASS_DERIVED:
        return "derived";
    default:
        return "?";
    }
}

void pb_plex_report_dispose(pb_plex_report *r)
{
    if (!r)
        return;
    free(r->tables);
    free(r->sections);
    memset(r, 0, sizeof(*r));
}

pb_plex_table_report *pb_plex_report_table(pb_plex_report *r, const char *schema, const char *table,
                                           int cls)
{
    for (size_t i = 0; i < r->ntables; i++)
        if (strcmp(r->tables[i].table, table) == 0 && strcmp(r->tables[i].schema, schema) == 0)
            return &r->tables[i];
    pb_plex_table_report *t = realloc(r->tables, (r->ntables + 1) * sizeof(*t));
    if (!t)
        return NULL;
    r->tables = t;
    t = &r->tables[r->ntables++];
    memset(t, 0, sizeof(*t));
    snprintf(t->schema, sizeof(t->schema), "%s", schema);
    snprintf(t->table, sizeof(t->table), "%s", table);
    t->table_class = cls;
    return t;
}

static void counts_add(pb_merge_counts *a, const pb_merge_counts *b)
{
    a->inserted += b->inserted;
    a->updated += b->updated;
    a->deleted += b->deleted;
    a->conflicts += b->conflicts;
    a->remapped += b->remapped;
    a->natkey_mapped += b->natkey_mapped;
    a->user_state_dropped += b->user_state_dropped;
    a->notfound += b->notfound;
    a->same += b->same;
    a->merged += b->merged;
}

int pb_plex_report_add_merge(pb_plex_report *r, const pb_merge_stats *st, const pb_plex_policy *pol)
{
    for (unsigned i = 0; i < st->ntables && i < PB_MERGE_MAX_TABLES; i++) {
        const pb_merge_table_counts *tc = &st->tables[i];
        pb_plex_table_report *t = pb_plex_report_table(
            r, tc->schema, tc->table, pb_plex_policy_class(pol, tc->schema, tc->table));
        if (!t)
            return PB_ENOMEM;
        counts_add(&t->merge, &tc->c);
    }
    counts_add(&r->merge, &st->total);
    return 0;
}

static void keep_listed(pb_plex_listed *list, size_t *n, const pb_merge_action *a)
{
    if (*n >= PB_PLEX_REPORT_LISTED)
        return;
    pb_plex_listed *l = &list[(*n)++];
    memset(l, 0, sizeof(*l));
    snprintf(l->schema, sizeof(l->schema), "%s", a->schema ? a->schema : "");
    snprintf(l->table, sizeof(l->table), "%s", a->table ? a->table : "");
    snprintf(l->column, sizeof(l->column), "%s", a->column ? a->column : "");
    l->op = a->op;
    l->resolution = (int)a->resolution;
    l->old_id = a->old_id;
    l->new_id = a->new_id;
}

void pb_plex_report_note_action(pb_plex_report *r, const pb_merge_action *a)
{
    switch (a->resolution) {
    case PB_RES_KEPT_LIVE:
    case PB_RES_CLOUD_WON:
    case PB_RES_MERGED:
        keep_listed(r->conflicts, &r->nconflicts, a);
        break;
    case PB_RES_REMAPPED:
    case PB_RES_NATKEY:
        keep_listed(r->remaps, &r->nremaps, a);
        break;
    default:
        break;
    }
}

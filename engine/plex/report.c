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

/* names[v], or dflt when v has no name there. */
static const char *name_in(const char *const *names, size_t n, int v, const char *dflt)
{
    return v >= 0 && (size_t)v < n && names[v] ? names[v] : dflt;
}

#define NAME_IN(names, v, dflt) name_in(names, sizeof(names) / sizeof(names[0]), v, dflt)

const char *pb_plex_phase_name(int phase)
{
    static const char *const names[] = {
        [PB_PHASE_SCHEMA] = "CHECK SCHEMAS", [PB_PHASE_DIFF] = "DIFF",
        [PB_PHASE_GUARDS] = "GUARDS",        [PB_PHASE_BACKUP] = "BACKUP",
        [PB_PHASE_MERGE] = "MERGE",          [PB_PHASE_DONE] = "DONE",
    };
    return NAME_IN(names, phase, "START");
}

const char *pb_plex_op_name(int op)
{
    static const char *const names[] = {
        [SQLITE_INSERT] = "insert",
        [SQLITE_UPDATE] = "update",
        [SQLITE_DELETE] = "delete",
    };
    return NAME_IN(names, op, "?");
}

const char *pb_plex_resolution_name(int res)
{
    static const char *const names[] = {
        [PB_RES_APPLIED] = "applied",     [PB_RES_REMAPPED] = "remapped",
        [PB_RES_NATKEY] = "natkey",       [PB_RES_KEPT_LIVE] = "kept_live",
        [PB_RES_CLOUD_WON] = "cloud_won", [PB_RES_DROPPED_USER] = "dropped_user",
        [PB_RES_NOTFOUND] = "notfound",   [PB_RES_SAME] = "same",
        [PB_RES_MERGED] = "merged",
    };
    return NAME_IN(names, res, "?");
}

const char *pb_plex_class_name(int cls)
{
    static const char *const names[] = {
        [PB_CLASS_LIBRARY] = "library",
        [PB_CLASS_USER] = "user",
        [PB_CLASS_DERIVED] = "derived",
    };
    return NAME_IN(names, cls, "?");
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

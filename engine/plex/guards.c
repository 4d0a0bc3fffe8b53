/*
 * guards.c: the schema guard and the deletion guard of a Plex merge (see guards.h).
 * Role: the checks that stop a merge before anything is written, with a one-line verdict that
 * names what differs (versions, table, column) or which section would lose what.
 * Prerequisites: the DBs are readable; the schema guard opens them read-only in one connection
 * (attached), through pb_compat_open so that Plex's virtual tables are understood.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sqlite3.h>

#include "plexburst/compat.h"
#include "guards.h"

/* ---------------------------------------------------------------------------------------------
 * Schema guard
 */

typedef struct sg_db {
    const char *path;
    const char *schema; /* attached as */
    const char *label;  /* "base", "cloud", "home", "cloud blobs", ... */
    char newest[64];
    uint64_t nversions;
} sg_db;

static int sg_sqlerr(pb_error *err, sqlite3 *db, int rc, const char *label, const char *path)
{
    int code = PB_ESQLITE;
    rc = db ? sqlite3_extended_errcode(db) : rc;
    if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT)
        code = PB_ECORRUPT;
    return pb_error_setd(err, code, rc, "schema guard: cannot read the %s DB %s: %s", label, path,
                         db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

/* Prepares `sql` (sqlite3_mprintf'ed, NULL when out of memory; freed here) into *st and steps
 * to its first row. */
static int sg_row(sqlite3 *db, const sg_db *d, char *sql, sqlite3_stmt **st, pb_error *err)
{
    if (!sql)
        return pb_error_set(err, PB_ENOMEM, "schema guard: out of memory");
    int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK || sqlite3_step(*st) != SQLITE_ROW)
        return sg_sqlerr(err, db, rc, d->label, d->path);
    return 0;
}

/* Newest schema_migrations version (the last row, Plex appends) and the row count. */
static int sg_versions(sqlite3 *db, sg_db *d, pb_error *err)
{
    int error = 0;
    sqlite3_stmt *st = NULL;
    char *sql = sqlite3_mprintf("SELECT count(*) FROM \"%w\".sqlite_master WHERE type = 'table' "
                                "AND name = 'schema_migrations'",
                                d->schema);
    if ((error = sg_row(db, d, sql, &st, err)) != 0)
        goto done;
    if (sqlite3_column_int(st, 0) == 0) {
        error = pb_error_set(err, PB_ESCHEMA,
                             "schema guard: the %s DB %s has no schema_migrations table (not a "
                             "Plex library DB)",
                             d->label, d->path);
        goto done;
    }
    sqlite3_finalize(st);
    st = NULL;
    sql =
        sqlite3_mprintf("SELECT (SELECT version FROM \"%w\".schema_migrations ORDER BY rowid DESC "
                        "LIMIT 1), (SELECT count(*) FROM \"%w\".schema_migrations)",
                        d->schema, d->schema);
    if ((error = sg_row(db, d, sql, &st, err)) != 0)
        goto done;
    const char *v = (const char *)sqlite3_column_text(st, 0);
    snprintf(d->newest, sizeof(d->newest), "%s", v ? v : "(none)");
    d->nversions = (uint64_t)sqlite3_column_int64(st, 1);
done:
    sqlite3_finalize(st);
    return error;
}

/* Runs `sql` (sqlite3_mprintf'd, freed here) and copies the first column of its first row into
 * `out`; 1 when there is a row, 0 when none, -1 on error (*rc_out = SQLite's code). */
static int sg_first(sqlite3 *db, char *sql, char *out, size_t cap, int *rc_out)
{
    sqlite3_stmt *st = NULL;
    int found = 0;
    *rc_out = SQLITE_NOMEM;
    if (!sql)
        return -1;
    *rc_out = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    sqlite3_free(sql);
    if (*rc_out != SQLITE_OK)
        return -1;
    *rc_out = sqlite3_step(st);
    if (*rc_out == SQLITE_ROW) {
        const char *s = (const char *)sqlite3_column_text(st, 0);
        snprintf(out, cap, "%s", s ? s : "");
        found = 1;
        *rc_out = SQLITE_OK;
    } else if (*rc_out == SQLITE_DONE) {
        *rc_out = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return *rc_out == SQLITE_OK ? found : -1;
}

/* A schema_migrations version in `a` and not in `b`. */
static int sg_first_version(sqlite3 *db, const char *a, const char *b, char *out, size_t cap,
                            int *rc)
{
    return sg_first(db,
                    sqlite3_mprintf("SELECT 'schema_migrations version ' || version FROM "
                                    "\"%w\".schema_migrations EXCEPT SELECT 'schema_migrations "
                                    "version ' || version FROM \"%w\".schema_migrations ORDER BY 1 "
                                    "LIMIT 1",
                                    a, b),
                    out, cap, rc);
}

/* A table in `a` and not in `b` (internal sqlite_* tables aside). */
static int sg_first_table(sqlite3 *db, const char *a, const char *b, char *out, size_t cap, int *rc)
{
    return sg_first(db,
                    sqlite3_mprintf("SELECT 'table ' || name FROM \"%w\".sqlite_master WHERE type "
                                    "= 'table' AND name NOT LIKE 'sqlite\\_%%' ESCAPE '\\' EXCEPT "
                                    "SELECT 'table ' || name FROM \"%w\".sqlite_master WHERE type "
                                    "= 'table' AND name NOT LIKE 'sqlite\\_%%' ESCAPE '\\' ORDER "
                                    "BY 1 LIMIT 1",
                                    a, b),
                    out, cap, rc);
}

/* A column of `a` (name, position, declared type, PK flag) that `b` does not have the same, over
 * the tables both have; virtual tables are compared as tables only. */
static int sg_first_column(sqlite3 *db, const char *a, const char *b, char *out, size_t cap,
                           int *rc)
{
#define SG_COLS(S)                                                                                 \
    "SELECT m.name AS t, m.name || char(1) || printf('%%05d', p.cid) AS k, 'column ' || m.name "   \
    "|| '.' || p.name || ' (' || p.type || CASE WHEN p.pk THEN ', pk' ELSE '' END || ', "          \
    "position ' || (p.cid + 1) || ')' AS d FROM \"%w\".sqlite_master m, "                          \
    "pragma_table_info(m.name, "                                                                   \
    "%Q) p WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%%' ESCAPE '\\' AND m.sql NOT "    \
    "LIKE 'CREATE VIRTUAL%%'"
    return sg_first(
        db,
        sqlite3_mprintf("WITH c AS (" SG_COLS(a) "), o AS (" SG_COLS(
                            b) ") SELECT d FROM (SELECT t, k, d FROM c WHERE t IN (SELECT t "
                               "FROM o) EXCEPT SELECT t, k, d FROM o) ORDER BY k LIMIT 1",
                        a, a, b, b),
        out, cap, rc);
#undef SG_COLS
}

/* Compares two attached DBs; 0 when identical, PB_ESCHEMA with the verdict, or an error. */
static int sg_compare(sqlite3 *db, const sg_db *a, const sg_db *b, pb_plex_schema_verdict *v,
                      pb_error *err)
{
    char what[200] = "";
    const char *only = NULL;
    int rc = SQLITE_OK, found = 0;
    int (*const checks[3])(sqlite3 *, const char *, const char *, char *, size_t,
                           int *) = {sg_first_version, sg_first_table, sg_first_column};

    for (int pass = 0; !found && pass < 3; pass++) {
        for (int dir = 0; !found && dir < 2; dir++) {
            const sg_db *x = dir ? b : a, *y = dir ? a : b;
            found = checks[pass](db, x->schema, y->schema, what, sizeof(what), &rc);
            if (found < 0)
                return sg_sqlerr(err, db, rc, x->label, x->path);
            if (found)
                only = x->label;
        }
    }
    int newest_differs = strcmp(a->newest, b->newest) != 0;
    if (!found && !newest_differs)
        return 0;
    if (found)
        snprintf(v->first_difference, sizeof(v->first_difference), "%s only in %s", what, only);
    else
        snprintf(v->first_difference, sizeof(v->first_difference),
                 "newest schema_migrations version");
    if (newest_differs)
        snprintf(v->message, sizeof(v->message), "schema guard: %s is at %s, %s at %s%s%s",
                 a->label, a->newest, b->label, b->newest, found ? "; first difference: " : "",
                 found ? v->first_difference : "");
    else
        snprintf(v->message, sizeof(v->message),
                 "schema guard: %s and %s are both at %s but differ: %s", a->label, b->label,
                 a->newest, v->first_difference);
    return pb_error_set(err, PB_ESCHEMA, "%s", v->message);
}

static int sg_attach(sqlite3 *db, const sg_db *d, pb_error *err)
{
    struct stat st;
    if (stat(d->path, &st) != 0) {
        if (errno == ENOENT)
            return pb_error_set(err, PB_ENOTFOUND, "schema guard: the %s DB %s does not exist",
                                d->label, d->path);
        return pb_error_errno(err, "schema guard: the %s DB %s", d->label, d->path);
    }
    if (!S_ISREG(st.st_mode))
        return pb_error_set(err, PB_EINVALID, "schema guard: the %s DB %s is not a file", d->label,
                            d->path);
    char *sql = sqlite3_mprintf("ATTACH %Q AS \"%w\"", d->path, d->schema);
    if (!sql)
        return pb_error_set(err, PB_ENOMEM, "schema guard: out of memory");
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK)
        return sg_sqlerr(err, db, rc, d->label, d->path);
    return 0;
}

/* Runs the guard over one group (library DBs or blobs DBs). */
static int sg_group(sqlite3 *db, sg_db *dbs, size_t n, pb_plex_schema_verdict *v, int main_group,
                    pb_error *err)
{
    int error = 0;
    size_t used = 0;
    sg_db *u[3];
    for (size_t i = 0; i < n; i++) {
        if (!dbs[i].path)
            continue;
        if ((error = sg_attach(db, &dbs[i], err)) != 0)
            return error;
        if ((error = sg_versions(db, &dbs[i], err)) != 0) {
            if (error == PB_ESCHEMA && err)
                snprintf(v->message, sizeof(v->message), "%s", err->msg);
            return error;
        }
        u[used++] = &dbs[i];
    }
    if (main_group)
        for (size_t i = 0; i < used; i++) {
            char *slot = NULL;
            if (strcmp(u[i]->label, "base") == 0)
                slot = v->base_version;
            else if (strcmp(u[i]->label, "cloud") == 0)
                slot = v->cloud_version;
            else
                slot = v->live_version;
            snprintf(slot, 64, "%s", u[i]->newest);
            if (i == 0)
                v->nversions = u[i]->nversions;
        }
    /* cloud vs home first (the pair that matters), then base vs the others */
    static const int order[3][2] = {{1, 2}, {0, 1}, {0, 2}};
    for (int k = 0; k < 3; k++) {
        sg_db *a = &dbs[order[k][0]], *b = &dbs[order[k][1]];
        if (!a->path || !b->path)
            continue;
        if ((error = sg_compare(db, a, b, v, err)) != 0)
            return error;
    }
    return 0;
}

int pb_plex_guard_schema(pb_plex_schema_verdict *v, const pb_plex_db_set *dbs, pb_error *err)
{
    int error = 0;
    sqlite3 *db = NULL;
    pb_plex_schema_verdict tmp;

    if (!v)
        v = &tmp;
    memset(v, 0, sizeof(*v));
    if (!dbs || !dbs->base)
        return pb_error_set(err, PB_EINVALID, "schema guard: no base DB");
    sg_db lib[3] = {{dbs->base, "sg_base", "base", "", 0},
                    {dbs->cloud, "sg_cloud", "cloud", "", 0},
                    {dbs->live, "sg_home", "home", "", 0}};
    sg_db blobs[3] = {{dbs->blobs_base, "sg_bbase", "base blobs", "", 0},
                      {dbs->blobs_cloud, "sg_bcloud", "cloud blobs", "", 0},
                      {dbs->blobs_live, "sg_bhome", "home blobs", "", 0}};

    if ((error = pb_compat_open(&db, ":memory:", 0, err)) != 0)
        goto done;
    sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 10);
    if ((error = sg_group(db, lib, 3, v, 1, err)) != 0)
        goto done;
    if ((error = sg_group(db, blobs, 3, v, 0, err)) != 0)
        goto done;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT count(*) FROM sg_base.sqlite_master WHERE type = 'table' AND "
                           "name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v->ntables = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    v->ok = 1;
    snprintf(v->message, sizeof(v->message), "schema guard: all DBs at %s, same tables and columns",
             lib[0].newest);
done:
    v->checked = 1;
    if (error && !v->message[0] && err)
        snprintf(v->message, sizeof(v->message), "%s", err->msg);
    sqlite3_close(db);
    return error;
}

/* ---------------------------------------------------------------------------------------------
 * Deletion guard
 */

static void dg_consider(pb_plex_deletion_verdict *v, const pb_plex_section_report *s,
                        const char *what, uint64_t deleted, uint64_t total, int *have)
{
    if (total == 0 || deleted == 0)
        return;
    double pct = 100.0 * (double)deleted / (double)total;
    if (*have && (pct < v->pct || (pct == v->pct && deleted <= v->deleted)))
        return;
    *have = 1;
    v->section_id = s->id;
    snprintf(v->section_name, sizeof(v->section_name), "%s", s->name);
    snprintf(v->what, sizeof(v->what), "%s", what);
    v->deleted = deleted;
    v->total = total;
    v->pct = pct;
}

int pb_plex_guard_deletion(pb_plex_deletion_verdict *v, const pb_plex_section_report *sections,
                           size_t nsections, double max_pct, pb_error *err)
{
    pb_plex_deletion_verdict tmp;
    int have = 0;

    if (!v)
        v = &tmp;
    memset(v, 0, sizeof(*v));
    v->checked = 1;
    v->max_pct = max_pct;
    for (size_t i = 0; i < nsections; i++) {
        const pb_plex_section_report *s = &sections[i];
        if (s->id <= 0)
            continue;
        uint64_t items_total = s->items, parts_total = s->parts;
        /* a changeset can only delete rows the base has; never report above 100 % */
        if (items_total < s->items_deleted)
            items_total = s->items_deleted;
        if (parts_total < s->parts_deleted)
            parts_total = s->parts_deleted;
        dg_consider(v, s, "items", s->items_deleted, items_total, &have);
        dg_consider(v, s, "parts", s->parts_deleted, parts_total, &have);
    }
    if (!have) {
        v->ok = 1;
        snprintf(v->message, sizeof(v->message), "deletion guard: no section loses anything");
        return 0;
    }
    if (v->pct > max_pct) {
        snprintf(v->message, sizeof(v->message),
                 "deletion guard: section \"%s\" (id %lld) would lose %llu of %llu %s (%.1f %% > "
                 "%g %%)",
                 v->section_name, (long long)v->section_id, (unsigned long long)v->deleted,
                 (unsigned long long)v->total, v->what, v->pct, max_pct);
        return pb_error_set(err, PB_EREFUSED, "%s", v->message);
    }
    v->ok = 1;
    snprintf(v->message, sizeof(v->message),
             "deletion guard: at most %.1f %% of a section (\"%s\", %llu of %llu %s), limit %g %%",
             v->pct, v->section_name, (unsigned long long)v->deleted, (unsigned long long)v->total,
             v->what, max_pct);
    return 0;
}

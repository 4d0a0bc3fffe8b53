/*
 * guards.c: the schema guard and the deletion guard of a Plex merge (see guards.h).
 * Role: the checks that stop a merge before anything is written, with a one-line verdict that
 * names what differs (versions, table, column) or which section would lose what.
 * Prerequisites: the DBs are readable; the schema guard opens them read-only in one connection
 * (attached), through pb_compat_open so that Plex's virtual tables are understood.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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

static void dg_consider(pb_plex_deletion_verdict *v, int64_t section_id, const char *section_name,
                        const char *what, uint64_t deleted, uint64_t total, int *have)
{
    /* a changeset can only delete rows the base has; never report above 100 % */
    if (total < deleted)
        total = deleted;
    if (total == 0 || deleted == 0)
        return;
    double pct = 100.0 * (double)deleted / (double)total;
    if (*have && (pct < v->pct || (pct == v->pct && deleted <= v->deleted)))
        return;
    *have = 1;
    v->section_id = section_id;
    snprintf(v->section_name, sizeof(v->section_name), "%s", section_name ? section_name : "");
    snprintf(v->what, sizeof(v->what), "%s", what);
    v->deleted = deleted;
    v->total = total;
    v->pct = pct;
}

static void dg_sections(pb_plex_deletion_verdict *v, const pb_plex_section_report *sections,
                        size_t nsections, int *have)
{
    for (size_t i = 0; i < nsections; i++) {
        const pb_plex_section_report *s = &sections[i];
        if (s->id <= 0)
            continue;
        dg_consider(v, s->id, s->name, "items", s->items_deleted, s->items, have);
        dg_consider(v, s->id, s->name, "parts", s->parts_deleted, s->parts, have);
    }
}

/* The verdict over what dg_consider gathered: the worst share against `max_pct`. */
static int dg_verdict(pb_plex_deletion_verdict *v, int have, double max_pct, pb_error *err)
{
    char where[200];
    if (!have) {
        v->ok = 1;
        snprintf(v->message, sizeof(v->message), "deletion guard: no section loses anything");
        return 0;
    }
    if (v->section_id > 0)
        snprintf(where, sizeof(where), "section \"%.128s\" (id %lld)", v->section_name,
                 (long long)v->section_id);
    else
        snprintf(where, sizeof(where), "table %.112s", v->what);
    const char *unit = v->section_id > 0 ? v->what : "rows";
    if (v->pct > max_pct) {
        snprintf(v->message, sizeof(v->message),
                 "deletion guard: %s would lose %llu of %llu %s (%.1f %% > %g %%)", where,
                 (unsigned long long)v->deleted, (unsigned long long)v->total, unit, v->pct,
                 max_pct);
        return pb_error_set(err, PB_EREFUSED, "%s", v->message);
    }
    v->ok = 1;
    if (v->section_id > 0)
        snprintf(v->message, sizeof(v->message),
                 "deletion guard: at most %.1f %% of a section (\"%.128s\", %llu of %llu %s), "
                 "limit %g %%",
                 v->pct, v->section_name, (unsigned long long)v->deleted,
                 (unsigned long long)v->total, v->what, max_pct);
    else
        snprintf(v->message, sizeof(v->message),
                 "deletion guard: at most %.1f %% of a table (%.112s, %llu of %llu rows), limit "
                 "%g %%",
                 v->pct, v->what, (unsigned long long)v->deleted, (unsigned long long)v->total,
                 max_pct);
    return 0;
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
    dg_sections(v, sections, nsections, &have);
    return dg_verdict(v, have, max_pct, err);
}

/* ---------------------------------------------------------------------------------------------
 * Deletion guard over every library table
 *
 * Guarded: every table the policy classes as library content, in the library and the blobs DB.
 * Not guarded:
 *   - user-state tables (views, settings, play queues, accounts, statistics ...): the merge drops
 *     every cloud change to them (home wins), so their deletions never reach the home;
 *   - derived tables (FTS/spellfix indexes and their shadows, sqlite_*): never shipped;
 *   - library-class caches and bookkeeping whose rows Plex itself throws away and rebuilds:
 *     library_timeline_entries (an event log Plex prunes), stream_types (a fixed lookup table),
 *     media_provider_resources (online providers' resources, refreshed from plex.tv) and
 *     metadata_agent_provider* (the agent registry, rewritten at start-up).
 * Counting stays in SQLite: the changesets are streamed (a DELETE record's section is looked up by
 * its id in the base), the base totals are count(*) queries, per table and, where a row leads to a
 * library section (its library_section_id, its metadata item's or its media item's, a blob's
 * media part or stream), per section. A row deleted with the item or media it belongs to (the
 * taggings, streams and blobs of a movie the cloud removed) is that item's deletion, which the
 * items' own counts judge: only rows deleted while their owner stays count against their table.
 * The deleted owners' ids are gathered first, in TEMP tables of the guard's connection.
 */

static const char *const dg_unguarded[] = {"library_timeline_entries", "stream_types",
                                           "media_provider_resources", NULL};

/* One table with deletions. */
typedef struct dg_table {
    const char *schema, *name; /* the report's strings */
    uint64_t deleted, total;
    char *sec_expr;      /* SQL: the section of row `r` (sqlite3_malloc'd), NULL when none */
    sqlite3_stmt *q_sec; /* the section of one base row by id, and whether its owner goes too */
    int id_col;
    uint64_t with_owner; /* deletions of rows whose item or media is deleted too */
} dg_table;

/* Deletions per (table, section). */
typedef struct dg_cell {
    size_t table;
    int64_t section;
    uint64_t deleted, total;
} dg_cell;

typedef struct dg_state {
    sqlite3 *db;
    dg_table *t;
    size_t nt;
    dg_cell *cells;
    size_t ncells, ccells;
    pb_error *err;
} dg_state;

static int dg_guarded(const pb_plex_table_report *tr)
{
    if (tr->table_class != PB_CLASS_LIBRARY)
        return 0;
    for (const char *const *u = dg_unguarded; *u; u++)
        if (strcmp(*u, tr->table) == 0)
            return 0;
    return strncmp(tr->table, "metadata_agent_provider", 23) != 0;
}

static int dg_sqlerr(dg_state *s, const char *what)
{
    return pb_error_setd(s->err, PB_ESQLITE, sqlite3_extended_errcode(s->db),
                         "deletion guard: %s: %s", what, sqlite3_errmsg(s->db));
}

static int dg_has_col(sqlite3 *db, const char *schema, const char *table, const char *col)
{
    return sqlite3_table_column_metadata(db, schema, table, col, NULL, NULL, NULL, NULL, NULL) ==
           SQLITE_OK;
}

/* The SQL expression giving the library section of row `r` of the table, or NULL (no section
 * known, or metadata_items / media_parts whose sections the report already counts). */
static char *dg_section_expr(sqlite3 *db, const char *schema, const char *t)
{
    if (strcmp(t, "metadata_items") == 0 || strcmp(t, "media_parts") == 0 ||
        strcmp(t, "library_sections") == 0)
        return NULL;
    if (strcmp(schema, "main") == 0) {
        if (dg_has_col(db, schema, t, "library_section_id"))
            return sqlite3_mprintf("r.library_section_id");
        if (dg_has_col(db, schema, t, "metadata_item_id"))
            return sqlite3_mprintf("(SELECT library_section_id FROM main.metadata_items WHERE id "
                                   "= r.metadata_item_id)");
        if (dg_has_col(db, schema, t, "media_item_id"))
            return sqlite3_mprintf("(SELECT library_section_id FROM main.media_items WHERE id = "
                                   "r.media_item_id)");
        return NULL;
    }
    if (strcmp(t, "blobs") == 0 && dg_has_col(db, schema, t, "linked_type") &&
        dg_has_col(db, schema, t, "linked_id") && dg_has_col(db, "main", "media_parts", "id") &&
        dg_has_col(db, "main", "media_streams", "media_item_id"))
        return sqlite3_mprintf(
            "CASE r.linked_type WHEN 'media_part' THEN (SELECT mi.library_section_id FROM "
            "main.media_parts p JOIN main.media_items mi ON mi.id = p.media_item_id WHERE p.id = "
            "r.linked_id) WHEN 'media_stream' THEN (SELECT mi.library_section_id FROM "
            "main.media_streams ms JOIN main.media_items mi ON mi.id = ms.media_item_id WHERE "
            "ms.id = r.linked_id) END");
    return NULL;
}

/* stdio reader for sqlite3changeset_start_strm. */
static int dg_read(void *payload, void *data, int *n)
{
    FILE *f = payload;
    size_t got = fread(data, 1, (size_t)*n, f);
    if (got == 0 && ferror(f))
        return SQLITE_IOERR;
    *n = (int)got;
    return SQLITE_OK;
}

/* The SQL expression telling that row `r`'s owner (its metadata item, its media item, a blob's
 * part or stream's media) is deleted too (temp.dg_gone_items / temp.dg_gone_media). */
static char *dg_owner_gone_expr(sqlite3 *db, const char *schema, const char *t)
{
    if (strcmp(schema, "main") == 0) {
        if (dg_has_col(db, schema, t, "metadata_item_id"))
            return sqlite3_mprintf("r.metadata_item_id IN temp.dg_gone_items");
        if (dg_has_col(db, schema, t, "media_item_id"))
            return sqlite3_mprintf("r.media_item_id IN temp.dg_gone_media");
        return sqlite3_mprintf("0");
    }
    if (strcmp(t, "blobs") == 0 && dg_has_col(db, schema, t, "linked_type"))
        return sqlite3_mprintf(
            "CASE r.linked_type WHEN 'media_part' THEN (SELECT p.media_item_id FROM "
            "main.media_parts p WHERE p.id = r.linked_id) IN temp.dg_gone_media WHEN "
            "'media_stream' THEN (SELECT ms.media_item_id FROM main.media_streams ms WHERE ms.id "
            "= r.linked_id) IN temp.dg_gone_media ELSE 0 END");
    return sqlite3_mprintf("0");
}

/* Fills temp.dg_gone_items and temp.dg_gone_media with the ids the main changeset deletes. */
static int dg_gone(dg_state *s, const char *path)
{
    int error = 0, rc;
    sqlite3_changeset_iter *it = NULL;
    sqlite3_stmt *add[2] = {NULL, NULL};
    static const char *const tabs[2] = {"metadata_items", "media_items"};
    if (sqlite3_exec(s->db,
                     "CREATE TEMP TABLE dg_gone_items(id INTEGER PRIMARY KEY);"
                     "CREATE TEMP TABLE dg_gone_media(id INTEGER PRIMARY KEY);",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "INSERT OR IGNORE INTO temp.dg_gone_items VALUES(?1)", -1,
                           &add[0], NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "INSERT OR IGNORE INTO temp.dg_gone_media VALUES(?1)", -1,
                           &add[1], NULL) != SQLITE_OK) {
        error = dg_sqlerr(s, "gathering the deleted items");
        goto done;
    }
    if (!path)
        goto done;
    FILE *f = fopen(path, "rb");
    if (!f) {
        error = pb_error_errno(s->err, "deletion guard: cannot read %s", path);
        goto done;
    }
    if ((rc = sqlite3changeset_start_strm(&it, dg_read, f)) != SQLITE_OK)
        error = pb_error_setd(s->err, PB_ECORRUPT, rc, "deletion guard: changeset %s: %s", path,
                              sqlite3_errstr(rc));
    while (!error && (rc = sqlite3changeset_next(it)) == SQLITE_ROW) {
        const char *tab;
        int ncol, op, indirect, k = -1;
        sqlite3_value *idv = NULL;
        if (sqlite3changeset_op(it, &tab, &ncol, &op, &indirect) != SQLITE_OK ||
            op != SQLITE_DELETE)
            continue;
        for (int i = 0; i < 2; i++)
            if (strcmp(tab, tabs[i]) == 0)
                k = i;
        /* Plex's id is the first column of both tables */
        if (k < 0 || ncol < 1 || sqlite3changeset_old(it, 0, &idv) != SQLITE_OK || !idv)
            continue;
        sqlite3_bind_value(add[k], 1, idv);
        if (sqlite3_step(add[k]) != SQLITE_DONE)
            error = dg_sqlerr(s, "gathering the deleted items");
        sqlite3_reset(add[k]);
    }
    if (!error && it && rc != SQLITE_DONE)
        error = pb_error_setd(s->err, PB_ECORRUPT, rc, "deletion guard: changeset %s: %s", path,
                              sqlite3_errstr(rc));
    if (it)
        sqlite3changeset_finalize(it);
    fclose(f);
done:
    sqlite3_finalize(add[0]);
    sqlite3_finalize(add[1]);
    return error;
}

static int dg_cell_add(dg_state *s, size_t table, int64_t section, uint64_t deleted, uint64_t total)
{
    for (size_t i = 0; i < s->ncells; i++)
        if (s->cells[i].table == table && s->cells[i].section == section) {
            s->cells[i].deleted += deleted;
            s->cells[i].total += total;
            return 0;
        }
    if (s->ncells == s->ccells) {
        size_t ncap = s->ccells ? s->ccells * 2 : 32;
        dg_cell *nc = realloc(s->cells, ncap * sizeof(*nc));
        if (!nc)
            return pb_error_set(s->err, PB_ENOMEM, "deletion guard: out of memory");
        s->cells = nc;
        s->ccells = ncap;
    }
    s->cells[s->ncells++] = (dg_cell){table, section, deleted, total};
    return 0;
}

static dg_table *dg_find(dg_state *s, const char *schema, const char *name, size_t *idx)
{
    for (size_t i = 0; i < s->nt; i++)
        if (strcmp(s->t[i].schema, schema) == 0 && strcmp(s->t[i].name, name) == 0) {
            *idx = i;
            return &s->t[i];
        }
    return NULL;
}

/* Streams one changeset: every DELETE of a table with a section expression counted against the
 * section its base row belongs to. */
static int dg_walk(dg_state *s, const char *schema, const char *path)
{
    int error = 0, rc;
    sqlite3_changeset_iter *it = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return pb_error_errno(s->err, "deletion guard: cannot read %s", path);
    if ((rc = sqlite3changeset_start_strm(&it, dg_read, f)) != SQLITE_OK) {
        error = pb_error_setd(s->err, PB_ECORRUPT, rc, "deletion guard: changeset %s: %s", path,
                              sqlite3_errstr(rc));
        goto done;
    }
    while (!error && (rc = sqlite3changeset_next(it)) == SQLITE_ROW) {
        const char *tab;
        int ncol, op, indirect;
        size_t idx;
        dg_table *t;
        sqlite3_value *idv = NULL;
        if (sqlite3changeset_op(it, &tab, &ncol, &op, &indirect) != SQLITE_OK ||
            op != SQLITE_DELETE || !(t = dg_find(s, schema, tab, &idx)) || !t->q_sec ||
            t->id_col < 0 || t->id_col >= ncol ||
            sqlite3changeset_old(it, t->id_col, &idv) != SQLITE_OK || !idv)
            continue;
        int64_t sec = 0;
        int owner_gone = 0;
        sqlite3_reset(t->q_sec);
        sqlite3_bind_value(t->q_sec, 1, idv);
        if ((rc = sqlite3_step(t->q_sec)) == SQLITE_ROW) {
            sec = sqlite3_column_int64(t->q_sec, 0);
            owner_gone = sqlite3_column_int(t->q_sec, 1);
        } else if (rc != SQLITE_DONE)
            error = dg_sqlerr(s, "reading the base DB");
        sqlite3_reset(t->q_sec);
        if (owner_gone)
            t->with_owner++;
        else if (!error && sec > 0)
            error = dg_cell_add(s, idx, sec, 1, 0);
    }
    if (!error && rc != SQLITE_DONE)
        error = pb_error_setd(s->err, PB_ECORRUPT, rc, "deletion guard: changeset %s: %s", path,
                              sqlite3_errstr(rc));
done:
    if (it)
        sqlite3changeset_finalize(it);
    fclose(f);
    return error;
}

/* Runs `sql` (sqlite3_mprintf'd, freed here) and hands each row to `fn`. */
static int dg_rows(dg_state *s, char *sql, size_t table,
                   int (*fn)(dg_state *s, size_t table, sqlite3_stmt *st))
{
    sqlite3_stmt *st = NULL;
    int error = 0, rc;
    if (!sql)
        return pb_error_set(s->err, PB_ENOMEM, "deletion guard: out of memory");
    rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK)
        return dg_sqlerr(s, "counting the base DB");
    while (!error && (rc = sqlite3_step(st)) == SQLITE_ROW)
        error = fn(s, table, st);
    if (!error && rc != SQLITE_DONE)
        error = dg_sqlerr(s, "counting the base DB");
    sqlite3_finalize(st);
    return error;
}

static int dg_row_total(dg_state *s, size_t table, sqlite3_stmt *st)
{
    int64_t sec = sqlite3_column_int64(st, 0);
    for (size_t i = 0; i < s->ncells; i++)
        if (s->cells[i].table == table && s->cells[i].section == sec)
            s->cells[i].total = (uint64_t)sqlite3_column_int64(st, 1);
    return 0;
}

static int dg_row_count(dg_state *s, size_t table, sqlite3_stmt *st)
{
    s->t[table].total = (uint64_t)sqlite3_column_int64(st, 0);
    return 0;
}

/* Sets up the tables of the report with deletions; `nwalk` = how many need the changeset walk. */
static int dg_tables(dg_state *s, const pb_plex_report *r, int with_blobs, size_t *nwalk)
{
    *nwalk = 0;
    if (!(s->t = calloc(r->ntables ? r->ntables : 1, sizeof(*s->t))))
        return pb_error_set(s->err, PB_ENOMEM, "deletion guard: out of memory");
    for (size_t i = 0; i < r->ntables; i++) {
        const pb_plex_table_report *tr = &r->tables[i];
        if (!tr->cs_deleted || !dg_guarded(tr) ||
            (strcmp(tr->schema, "main") != 0 && (strcmp(tr->schema, "blobs") != 0 || !with_blobs)))
            continue;
        dg_table *t = &s->t[s->nt++];
        t->schema = tr->schema;
        t->name = tr->table;
        t->deleted = tr->cs_deleted;
        t->id_col = -1;
        if (!dg_has_col(s->db, t->schema, t->name, "id") ||
            !(t->sec_expr = dg_section_expr(s->db, t->schema, t->name)))
            continue;
        /* the id column's position, for the DELETE records' old values */
        char *sql = sqlite3_mprintf("SELECT cid FROM pragma_table_info(%Q, %Q) WHERE name = 'id'",
                                    t->name, t->schema);
        sqlite3_stmt *st = NULL;
        if (!sql || sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
            sqlite3_free(sql);
            return sql ? dg_sqlerr(s, t->name)
                       : pb_error_set(s->err, PB_ENOMEM, "deletion guard: out of memory");
        }
        sqlite3_free(sql);
        if (sqlite3_step(st) == SQLITE_ROW)
            t->id_col = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        char *gone = dg_owner_gone_expr(s->db, t->schema, t->name);
        sql = gone ? sqlite3_mprintf("SELECT coalesce(%s, 0), coalesce(%s, 0) FROM \"%w\".\"%w\" "
                                     "r WHERE r.id = ?1",
                                     t->sec_expr, gone, t->schema, t->name)
                   : NULL;
        int rc = sql ? sqlite3_prepare_v2(s->db, sql, -1, &t->q_sec, NULL) : SQLITE_NOMEM;
        sqlite3_free(gone);
        sqlite3_free(sql);
        if (rc != SQLITE_OK)
            return dg_sqlerr(s, t->name);
        (*nwalk)++;
    }
    return 0;
}

int pb_plex_guard_deletion_all(pb_plex_deletion_verdict *v, const pb_plex_deletion_input *in,
                               double max_pct, pb_error *err)
{
    int error = 0, have = 0;
    pb_plex_deletion_verdict tmp;
    dg_state s = {0};
    size_t nwalk = 0;

    if (!v)
        v = &tmp;
    memset(v, 0, sizeof(*v));
    v->checked = 1;
    v->max_pct = max_pct;
    if (!in || !in->report || !in->base)
        return pb_error_set(err, PB_EINVALID, "deletion guard: no base DB or report");
    const pb_plex_report *r = in->report;
    s.err = err;
    /* a section losing its items or parts is the clearest verdict: it comes first */
    dg_sections(v, r->sections, r->nsections, &have);
    if (have && v->pct > max_pct) {
        error = dg_verdict(v, have, max_pct, err);
        goto done;
    }
    if ((error = pb_compat_open(&s.db, in->base, PB_OPEN_READONLY, err)) != 0)
        goto done;
    if (in->blobs_base) {
        char *sql = sqlite3_mprintf("ATTACH %Q AS blobs", in->blobs_base);
        int rc = sql ? sqlite3_exec(s.db, sql, NULL, NULL, NULL) : SQLITE_NOMEM;
        sqlite3_free(sql);
        if (rc != SQLITE_OK) {
            error = dg_sqlerr(&s, "attaching the base blobs DB");
            goto done;
        }
    }
    if ((error = dg_gone(&s, in->main_cs)) != 0 ||
        (error = dg_tables(&s, r, in->blobs_base != NULL, &nwalk)) != 0)
        goto done;
    /* the DELETE records, per section where the rows lead to one, apart from those whose owner
     * goes with them */
    if (nwalk && in->main_cs && (error = dg_walk(&s, "main", in->main_cs)) != 0)
        goto done;
    if (nwalk && in->blobs_cs && in->blobs_base &&
        (error = dg_walk(&s, "blobs", in->blobs_cs)) != 0)
        goto done;
    /* per table: deletions against the base's rows */
    for (size_t i = 0; i < s.nt; i++) {
        if ((error = dg_rows(
                 &s,
                 sqlite3_mprintf("SELECT count(*) FROM \"%w\".\"%w\"", s.t[i].schema, s.t[i].name),
                 i, dg_row_count)) != 0)
            goto done;
        dg_consider(v, 0, "", s.t[i].name, s.t[i].deleted - s.t[i].with_owner, s.t[i].total, &have);
    }
    for (size_t i = 0; i < s.nt; i++) {
        int any = 0;
        for (size_t k = 0; k < s.ncells; k++)
            any |= s.cells[k].table == i;
        if (any && (error = dg_rows(&s,
                                    sqlite3_mprintf("SELECT coalesce(%s, 0), count(*) FROM "
                                                    "\"%w\".\"%w\" r GROUP BY 1",
                                                    s.t[i].sec_expr, s.t[i].schema, s.t[i].name),
                                    i, dg_row_total)) != 0)
            goto done;
    }
    for (size_t k = 0; k < s.ncells; k++) {
        const dg_cell *c = &s.cells[k];
        const char *name = "";
        for (size_t i = 0; i < r->nsections; i++)
            if (r->sections[i].id == c->section)
                name = r->sections[i].name;
        dg_consider(v, c->section, name, s.t[c->table].name, c->deleted, c->total, &have);
    }
    error = dg_verdict(v, have, max_pct, err);
done:
    if (error && !v->message[0] && err)
        snprintf(v->message, sizeof(v->message), "%s", err->msg);
    for (size_t i = 0; i < s.nt; i++) {
        sqlite3_finalize(s.t[i].q_sec);
        sqlite3_free(s.t[i].sec_expr);
    }
    free(s.t);
    free(s.cells);
    sqlite3_close(s.db);
    return error;
}

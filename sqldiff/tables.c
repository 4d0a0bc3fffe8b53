/*
 * tables.c: enumerates the tables a diff or checksum covers, reads their columns and primary
 * keys, checks that two DBs agree on them, and builds the ordered SELECTs both read through.
 * Role: the schema side of sqldiff/; the row side is rowsrc.c. Prerequisites: SQLite >= 3.37.
 * Every DB is opened through the caller's pb_sqldiff_open_fn (default: a plain read-only open),
 * so that a DB whose schema needs collations or modules registered can be read.
 *
 * Candidates are the ordinary tables of the main schema except the internal `sqlite_*` tables
 * (sqlite_sequence and sqlite_stat1 among them), virtual tables, and their shadow tables:
 * those PRAGMA table_list reports as "shadow" (modules that are registered), and tables named
 * <virtual table>_<suffix> for the suffixes of FTS3/4/5, R*Tree and spellfix1 (modules that
 * are not). Columns are those of PRAGMA table_info: generated columns are left out, as the
 * session extension does.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fs.h"
#include "rowsrc.h"
#include "tables.h"

/* Page cache of each read-only connection: the scans are sequential, so a small cache does, and
 * a small one is faster: its page buffers stay in the CPU's caches (8 MB was ~10 % slower per
 * CPU-second on the medium fixture). */
#define PB_READ_CACHE_KIB 1024

static int sql_error(pb_error *err, sqlite3 *db, int rc, const char *what)
{
    return pb_error_setd(err, PB_ESQLITE, rc, "sqldiff: %s: %s", what,
                         db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

int pb_sqldiff_open_default(sqlite3 **out, const char *path, void *payload, pb_error *err)
{
    (void)payload;
    *out = NULL;
    if (!pb_fs_exists(path))
        return pb_error_set(err, PB_ENOTFOUND, "sqldiff: %s does not exist", path);
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(db, PB_SQLDIFF_BUSY_MS);
    if (rc != SQLITE_OK) {
        int error = sql_error(err, db, rc, path);
        sqlite3_close(db);
        return error;
    }
    *out = db;
    return 0;
}

void pb_diff_options_init(pb_diff_options *opts)
{
    const pb_diff_options init = PB_DIFF_OPTIONS_INIT;
    *opts = init;
}

int pb_tables__open(sqlite3 **out, int *utf8, const char *path, const pb_diff_options *opts,
                    int utf8_only, pb_error *err)
{
    int error = 0, rc;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char pragma[64];
    pb_sqldiff_open_fn open_fn = pb_sqldiff_open_default;
    void *open_payload = NULL;

    *out = NULL;
    if (opts && opts->version >= 2 && opts->open) {
        open_fn = opts->open;
        open_payload = opts->open_payload;
    }
    if ((error = open_fn(&db, path, open_payload, err)) < 0)
        goto done;
    snprintf(pragma, sizeof(pragma), "PRAGMA cache_size=-%d", PB_READ_CACHE_KIB);
    rc = sqlite3_exec(db, pragma, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "PRAGMA main.encoding", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        error = sql_error(err, db, rc, path);
        goto done;
    }
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        error = sql_error(err, db, rc, path);
        goto done;
    }
    *utf8 = strcmp((const char *)sqlite3_column_text(st, 0), "UTF-8") == 0;
    if (utf8_only && !*utf8) {
        error = pb_error_set(err, PB_EINVALID, "sqldiff: %s: text encoding %s is not supported",
                             path, (const char *)sqlite3_column_text(st, 0));
        goto done;
    }
    /* The first read starts the transaction's snapshot; make it happen now. */
    sqlite3_finalize(st);
    st = NULL;
    rc = sqlite3_exec(db, "SELECT count(*) FROM main.sqlite_master", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        error = sql_error(err, db, rc, path);
        goto done;
    }
    *out = db;
    db = NULL;
done:
    sqlite3_finalize(st);
    pb_tables__close(db);
    return error;
}

void pb_tables__close(sqlite3 *db)
{
    if (db) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(db);
    }
}

static void table_dispose(pb_table *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->ncol; i++)
        free(t->cols[i]);
    free(t->cols);
    free(t->pkpos);
    free(t->pkcol);
    free(t->name);
    memset(t, 0, sizeof(*t));
}

void pb_tables__dispose(pb_tablelist *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        table_dispose(&l->t[i]);
    free(l->t);
    memset(l, 0, sizeof(*l));
}

/* Suffixes of the shadow tables of FTS3/4 (content segments segdir docsize stat), FTS5 (data
 * idx content docsize config), R*Tree (node rowid parent) and spellfix1 (vocab). */
static const char *const shadow_suffixes[] = {"content", "segments", "segdir", "docsize", "stat",
                                              "data",    "idx",      "config", "node",    "rowid",
                                              "parent",  "vocab",    NULL};

typedef struct strlist {
    char **v;
    size_t n, cap;
} strlist;

static int strlist_add(strlist *l, const char *s, pb_error *err)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return pb_error_set(err, PB_ENOMEM, "sqldiff: out of memory");
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s)))
        return pb_error_set(err, PB_ENOMEM, "sqldiff: out of memory");
    l->n++;
    return 0;
}

static void strlist_dispose(strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

static int is_shadow_name(const char *name, const strlist *vtabs)
{
    for (size_t i = 0; i < vtabs->n; i++) {
        size_t k = strlen(vtabs->v[i]);
        if (strncasecmp(name, vtabs->v[i], k) != 0 || name[k] != '_')
            continue;
        for (const char *const *s = shadow_suffixes; *s; s++)
            if (strcasecmp(name + k + 1, *s) == 0)
                return 1;
    }
    return 0;
}

static int read_columns(pb_table *t, sqlite3 *db, pb_error *err)
{
    int error = 0, rc;
    sqlite3_stmt *st = NULL;
    int cap = 0;

    rc = sqlite3_prepare_v2(db, "SELECT name, \"notnull\", pk FROM pragma_table_info(?1, 'main')",
                            -1, &st, NULL);
    if (rc != SQLITE_OK) {
        error = sql_error(err, db, rc, "table_info");
        goto done;
    }
    sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
    int any_nullable_pk = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (t->ncol == cap) {
            cap = cap ? cap * 2 : 16;
            char **c = realloc(t->cols, (size_t)cap * sizeof(*c));
            int *p = c ? realloc(t->pkpos, (size_t)cap * sizeof(*p)) : NULL;
            if (c)
                t->cols = c;
            if (p)
                t->pkpos = p;
            if (!c || !p) {
                error = pb_error_set(err, PB_ENOMEM, "sqldiff: out of memory");
                goto done;
            }
        }
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (!(t->cols[t->ncol] = strdup(name ? name : ""))) {
            error = pb_error_set(err, PB_ENOMEM, "sqldiff: out of memory");
            goto done;
        }
        t->pkpos[t->ncol] = sqlite3_column_int(st, 2);
        if (t->pkpos[t->ncol] > 0) {
            t->npk++;
            if (!sqlite3_column_int(st, 1))
                any_nullable_pk = 1;
        }
        t->ncol++;
    }
    if (rc != SQLITE_DONE) {
        error = sql_error(err, db, rc, t->name);
        goto done;
    }
    if (t->ncol == 0) {
        error = pb_error_set(err, PB_ESCHEMA, "sqldiff: table %s has no columns", t->name);
        goto done;
    }
    if (t->npk) {
        if (!(t->pkcol = calloc((size_t)t->npk, sizeof(int)))) {
            error = pb_error_set(err, PB_ENOMEM, "sqldiff: out of memory");
            goto done;
        }
        for (int i = 0; i < t->ncol; i++) {
            int k = t->pkpos[i];
            if (k > t->npk) {
                error = pb_error_set(err, PB_ESCHEMA, "sqldiff: table %s: bad PK position %d",
                                     t->name, k);
                goto done;
            }
            if (k > 0)
                t->pkcol[k - 1] = i;
        }
    }
    t->pk_may_be_null = t->npk && !t->without_rowid && any_nullable_pk;
done:
    sqlite3_finalize(st);
    return error;
}

static int table_cmp(const void *a, const void *b)
{
    return strcmp(((const pb_table *)a)->name, ((const pb_table *)b)->name);
}

int pb_tables__list(pb_tablelist *out, sqlite3 *db, const pb_diff_options *opts, pb_error *err)
{
    int error = 0, rc;
    sqlite3_stmt *st = NULL;
    strlist vtabs = {0}, names = {0}, shadows = {0};
    int *wr = NULL;
    size_t wr_cap = 0;

    memset(out, 0, sizeof(*out));
    rc = sqlite3_prepare_v2(db, "SELECT name, type, wr FROM pragma_table_list WHERE schema='main'",
                            -1, &st, NULL);
    if (rc != SQLITE_OK) {
        error = sql_error(err, db, rc, "table_list");
        goto done;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        const char *type = (const char *)sqlite3_column_text(st, 1);
        if (!name || !type)
            continue;
        if (strcmp(type, "virtual") == 0) {
            error = strlist_add(&vtabs, name, err);
            out->skipped++;
        } else if (strcmp(type, "shadow") == 0) {
            error = strlist_add(&shadows, name, err);
        } else if (strcmp(type, "table") == 0) {
            if (strcasecmp(name, "sqlite_schema") == 0 || strcasecmp(name, "sqlite_master") == 0)
                continue;
            if (names.n == wr_cap) {
                wr_cap = wr_cap ? wr_cap * 2 : 64;
                int *w = realloc(wr, wr_cap * sizeof(int));
                if (!w) {
                    error = pb_error_set(err, PB_ENOMEM, "sqldiff: out of memory");
                    goto done;
                }
                wr = w;
            }
            wr[names.n] = sqlite3_column_int(st, 2);
            error = strlist_add(&names, name, err);
        }
        if (error < 0)
            goto done;
    }
    if (rc != SQLITE_DONE) {
        error = sql_error(err, db, rc, "table_list");
        goto done;
    }
    out->skipped += (unsigned)shadows.n;
    if (names.n && !(out->t = calloc(names.n, sizeof(pb_table)))) {
        error = pb_error_set(err, PB_ENOMEM, "sqldiff: out of memory");
        goto done;
    }
    for (size_t i = 0; i < names.n; i++) {
        const char *name = names.v[i];
        if (strncasecmp(name, "sqlite_", 7) == 0 || is_shadow_name(name, &vtabs) ||
            (opts && opts->include && !opts->include(name, opts->include_payload))) {
            out->skipped++;
            continue;
        }
        pb_table *t = &out->t[out->n++];
        if (!(t->name = strdup(name))) {
            error = pb_error_set(err, PB_ENOMEM, "sqldiff: out of memory");
            goto done;
        }
        t->without_rowid = wr[i];
        if ((error = read_columns(t, db, err)) < 0)
            goto done;
    }
    if (out->n > 1)
        qsort(out->t, out->n, sizeof(pb_table), table_cmp);
done:
    sqlite3_finalize(st);
    strlist_dispose(&vtabs);
    strlist_dispose(&names);
    strlist_dispose(&shadows);
    free(wr);
    if (error)
        pb_tables__dispose(out);
    return error;
}

int pb_tables__match(const pb_tablelist *a, const pb_tablelist *b, pb_error *err)
{
    size_t i = 0, j = 0;
    while (i < a->n || j < b->n) {
        int c = i == a->n ? 1 : j == b->n ? -1 : strcmp(a->t[i].name, b->t[j].name);
        if (c < 0)
            return pb_error_set(err, PB_ESCHEMA, "sqldiff: table %s exists only in the base DB",
                                a->t[i].name);
        if (c > 0)
            return pb_error_set(err, PB_ESCHEMA, "sqldiff: table %s exists only in the target DB",
                                b->t[j].name);
        const pb_table *x = &a->t[i++], *y = &b->t[j++];
        if (x->ncol != y->ncol)
            return pb_error_set(err, PB_ESCHEMA,
                                "sqldiff: table %s has %d columns in the base DB, %d in the target",
                                x->name, x->ncol, y->ncol);
        for (int k = 0; k < x->ncol; k++) {
            if (strcmp(x->cols[k], y->cols[k]) != 0)
                return pb_error_set(err, PB_ESCHEMA,
                                    "sqldiff: table %s: column %d is %s in the base DB, %s in the "
                                    "target",
                                    x->name, k + 1, x->cols[k], y->cols[k]);
            if (x->pkpos[k] != y->pkpos[k])
                return pb_error_set(err, PB_ESCHEMA,
                                    "sqldiff: table %s: primary key differs at column %s", x->name,
                                    x->cols[k]);
        }
        if (x->without_rowid != y->without_rowid)
            return pb_error_set(err, PB_ESCHEMA,
                                "sqldiff: table %s is WITHOUT ROWID on one side only", x->name);
    }
    return 0;
}

static int select_sql(sqlite3_stmt **out, sqlite3 *db, const pb_table *t, int order, int packed,
                      pb_error *err)
{
    int error = 0, rc;
    sqlite3_str *s = sqlite3_str_new(db);
    char *sql = NULL;

    *out = NULL;
    sqlite3_str_appendall(s, packed ? "SELECT " PB_ROWSRC_FN "(" : "SELECT ");
    for (int i = 0; i < t->ncol; i++)
        sqlite3_str_appendf(s, "%s\"%w\"", i ? "," : "", t->cols[i]);
    sqlite3_str_appendf(s, "%s FROM main.\"%w\"", packed ? ")" : "", t->name);
    if (order == PB_ORDER_PK) {
        for (int k = 0; k < t->npk; k++)
            sqlite3_str_appendf(s, "%s\"%w\" COLLATE BINARY", k ? "," : " ORDER BY ",
                                t->cols[t->pkcol[k]]);
    } else if (order == PB_ORDER_ALL) {
        for (int i = 0; i < t->ncol; i++)
            sqlite3_str_appendf(s, "%s\"%w\" COLLATE BINARY", i ? "," : " ORDER BY ", t->cols[i]);
    }
    sql = sqlite3_str_finish(s);
    if (!sql) {
        error = pb_error_set(err, PB_ENOMEM, "sqldiff: out of memory");
        goto done;
    }
    rc = sqlite3_prepare_v2(db, sql, -1, out, NULL);
    if (rc != SQLITE_OK)
        error = sql_error(err, db, rc, t->name);
done:
    sqlite3_free(sql);
    return error;
}

int pb_tables__select(sqlite3_stmt **out, sqlite3 *db, const pb_table *t, int order, pb_error *err)
{
    return select_sql(out, db, t, order, 0, err);
}

/* Sets `*sorts` when the plan of `st` builds a temporary b-tree (a sort). */
static int plan_sorts(int *sorts, sqlite3 *db, sqlite3_stmt *st, pb_error *err)
{
    sqlite3_stmt *q = NULL;
    char *sql = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", sqlite3_sql(st));
    int rc = sql ? sqlite3_prepare_v2(db, sql, -1, &q, NULL) : SQLITE_NOMEM;
    *sorts = 0;
    while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *d = (const char *)sqlite3_column_text(q, 3);
        if (d && strstr(d, "TEMP B-TREE"))
            *sorts = 1;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(q);
    sqlite3_free(sql);
    return rc == SQLITE_DONE ? 0 : sql_error(err, db, rc, "query plan");
}

int pb_tables__select_packed(sqlite3_stmt **out, int *packed, sqlite3 *db, const pb_table *t,
                             int order, pb_error *err)
{
    int error, sorts = 0;
    *packed = 0;
    if (t->ncol > sqlite3_limit(db, SQLITE_LIMIT_FUNCTION_ARG, -1))
        return select_sql(out, db, t, order, 0, err);
    if ((error = select_sql(out, db, t, order, 1, err)) < 0 ||
        (error = plan_sorts(&sorts, db, *out, err)) < 0)
        goto done;
    if (sorts) { /* a sort would call the row function for every row before the first */
        sqlite3_finalize(*out);
        *out = NULL;
        return select_sql(out, db, t, order, 0, err);
    }
    *packed = 1;
done:
    if (error) {
        sqlite3_finalize(*out);
        *out = NULL;
    }
    return error;
}

int pb_tables__pk_has_null(int *found, sqlite3 *db, const pb_table *t, pb_error *err)
{
    int error = 0, rc;
    sqlite3_stmt *st = NULL;
    sqlite3_str *s = sqlite3_str_new(db);
    char *sql;

    *found = 0;
    sqlite3_str_appendf(s, "SELECT 1 FROM main.\"%w\" WHERE ", t->name);
    for (int k = 0; k < t->npk; k++)
        sqlite3_str_appendf(s, "%s\"%w\" IS NULL", k ? " OR " : "", t->cols[t->pkcol[k]]);
    sqlite3_str_appendall(s, " LIMIT 1");
    if (!(sql = sqlite3_str_finish(s)))
        return pb_error_set(err, PB_ENOMEM, "sqldiff: out of memory");
    rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            *found = 1;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        error = sql_error(err, db, rc, t->name);
    sqlite3_finalize(st);
    sqlite3_free(sql);
    return error;
}

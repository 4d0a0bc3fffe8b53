/*
 * ftsdefer.c: deferred, set-based maintenance of Plex's FTS4 title indexes during a merge
 * (ftsdefer.h says why and how). Recognises Plex's FTS triggers by their normalised text,
 * builds the TEMP triggers that replace them on the merge's connection and the one re-indexing
 * statement per FTS table run before COMMIT.
 * Role: called by the two write paths of a merge (apply_merge.c, plexmerge.c).
 * Prerequisites: SQLite >= 3.35 (TEMP triggers fire with SQLITE_DBCONFIG_ENABLE_TRIGGER off).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftsdefer.h"

enum { EV_BU = 1, EV_BD = 2, EV_AU = 4, EV_AI = 8, EV_ALL = 15 };

typedef struct fts_table {
    char *name, *content; /* the FTS table and its content table, as sqlite_master spells them */
    char **cols;
    int ncols, events;
    /* the first FTS table of a content table: the content columns an UPDATE must set for the
     * FTS entry to change (the indexed ones and the rowid alias), as positions for read_keys and
     * as the "OF ..." list of the update triggers; nwatch -1: any update (not resolved) */
    int *watch, nwatch;
    char *of;
} fts_table;

struct pb_ftsdefer {
    fts_table *t;
    int n;
    char *setup, *before, *finish;
};

/* Lower case, quotes (" ` [ ]) dropped, whitespace collapsed, none around ( ) , = ; */
static char *normalise(const char *s)
{
    size_t n = strlen(s), o = 0;
    char *r = malloc(n + 1);
    if (!r)
        return NULL;
    int space = 0;
    for (const char *p = s; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '`' || ch == '[' || ch == ']')
            continue;
        if (isspace(ch)) {
            space = 1;
            continue;
        }
        int punct = strchr("(),=;", ch) != NULL;
        if (space && o && !punct && !strchr("(),=;", r[o - 1]))
            r[o++] = ' ';
        space = 0;
        r[o++] = (char)tolower(ch);
    }
    r[o] = '\0';
    return r;
}

/* The FTS4 arguments of `sql` ("CREATE VIRTUAL TABLE x USING fts4(...)"): content= and the
 * columns. Returns 0 when it is an external-content FTS4 table, -1 otherwise (or on ENOMEM). */
static int parse_fts(fts_table *f, const char *sql)
{
    char *n = normalise(sql);
    const char *p = n ? strstr(n, " using fts4(") : NULL;
    int rc = -1;
    if (!p)
        goto done;
    p += strlen(" using fts4(");
    const char *end = strrchr(p, ')');
    if (!end)
        goto done;
    while (p < end) {
        const char *a = p;
        int q = 0, eq = 0;
        for (; p < end && (q || *p != ','); p++) {
            if (*p == '\'')
                q = !q;
            else if (!q && *p == '=')
                eq = 1;
        }
        size_t len = (size_t)(p - a);
        if (eq && len > 8 && strncmp(a, "content=", 8) == 0) {
            const char *v = a + 8;
            size_t vl = len - 8;
            if (vl >= 2 && v[0] == '\'' && v[vl - 1] == '\'')
                v++, vl -= 2;
            free(f->content);
            f->content = strndup(v, vl);
        } else if (!eq && len) {
            size_t wl = 0;
            while (wl < len && a[wl] != ' ')
                wl++;
            char **nc = realloc(f->cols, (size_t)(f->ncols + 1) * sizeof(*nc));
            if (!nc)
                goto done;
            f->cols = nc;
            if (!(f->cols[f->ncols] = strndup(a, wl)))
                goto done;
            f->ncols++;
        }
        if (p < end)
            p++;
    }
    rc = f->content && *f->content && f->ncols ? 0 : -1;
done:
    free(n);
    return rc;
}

static void table_dispose(fts_table *f)
{
    free(f->name);
    free(f->content);
    for (int i = 0; i < f->ncols; i++)
        free(f->cols[i]);
    free(f->cols);
    free(f->watch);
    sqlite3_free(f->of);
}

void pb_ftsdefer_free(pb_ftsdefer *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->n; i++)
        table_dispose(&d->t[i]);
    free(d->t);
    sqlite3_free(d->setup);
    sqlite3_free(d->before);
    sqlite3_free(d->finish);
    free(d);
}

/* The normalised bodies Plex's triggers have for `f`: delete of the old row, insert of the new. */
static int expected_bodies(const fts_table *f, char **del, char **ins)
{
    char *cols = sqlite3_mprintf("docid"), *vals = sqlite3_mprintf("new.rowid");
    for (int i = 0; i < f->ncols && cols && vals; i++) {
        cols = sqlite3_mprintf("%z,%s", cols, f->cols[i]);
        vals = vals ? sqlite3_mprintf("%z,new.%s", vals, f->cols[i]) : NULL;
    }
    char *d = sqlite3_mprintf("DELETE FROM %s WHERE docid=old.rowid; END", f->name);
    char *s = cols && vals
                  ? sqlite3_mprintf("INSERT INTO %s(%s) VALUES(%s); END", f->name, cols, vals)
                  : NULL;
    *del = d ? normalise(d) : NULL;
    *ins = s ? normalise(s) : NULL;
    sqlite3_free(cols);
    sqlite3_free(vals);
    sqlite3_free(d);
    sqlite3_free(s);
    return *del && *ins ? 0 : -1;
}

/* Marks the event of one trigger on its FTS table; 0 when recognised, 1 when not, -1 ENOMEM. */
static int recognise(pb_ftsdefer *d, const char *tbl, const char *sql)
{
    char *n = normalise(sql);
    if (!n)
        return -1;
    int rc = 1;
    char *b = strstr(n, " begin ");
    if (!b || strstr(n, " when ") || strstr(n, " instead of "))
        goto done;
    *b = '\0';
    const char *body = b + strlen(" begin ");
    int del_ev = strstr(n, " before update ") ? EV_BU : strstr(n, " before delete ") ? EV_BD : 0;
    int ins_ev = strstr(n, " after update ") ? EV_AU : strstr(n, " after insert ") ? EV_AI : 0;
    for (int i = 0; i < d->n && rc == 1; i++) {
        fts_table *f = &d->t[i];
        if (strcasecmp(f->content, tbl) != 0)
            continue;
        char *del = NULL, *ins = NULL;
        if (expected_bodies(f, &del, &ins) != 0)
            rc = -1;
        else if (del_ev && strcmp(body, del) == 0)
            f->events |= del_ev, rc = 0;
        else if (ins_ev && strcmp(body, ins) == 0)
            f->events |= ins_ev, rc = 0;
        free(del);
        free(ins);
    }
done:
    free(n);
    return rc;
}

static int sqlerr(sqlite3 *db, int rc, pb_error *err)
{
    if (rc == SQLITE_NOMEM)
        return pb_error_set(err, PB_ENOMEM, "merge: out of memory");
    return pb_error_setd(err, PB_ESQLITE, rc, "merge: reading the triggers: %s",
                         sqlite3_errmsg(db));
}

static int read_file(void *in, void *data, int *n)
{
    *n = (int)fread(data, 1, (size_t)*n, (FILE *)in);
    return ferror((FILE *)in) ? SQLITE_IOERR : SQLITE_OK;
}

/* 1 when the changeset at `path` has a record on a table of `schema` that has a trigger. */
static int touches_triggered(sqlite3 *db, const char *schema, const char *path, int *yes)
{
    FILE *f = fopen(path, "rb");
    sqlite3_changeset_iter *it = NULL;
    sqlite3_stmt *st = NULL;
    char *q = sqlite3_mprintf("SELECT 1 FROM \"%w\".sqlite_master WHERE type = 'trigger' AND "
                              "tbl_name = ?1 COLLATE NOCASE",
                              schema);
    int rc = q ? sqlite3_prepare_v2(db, q, -1, &st, NULL) : SQLITE_NOMEM, any = 0;
    sqlite3_free(q);
    q = sqlite3_mprintf("SELECT 1 FROM \"%w\".sqlite_master WHERE type = 'trigger'", schema);
    sqlite3_stmt *c = NULL;
    if (rc == SQLITE_OK &&
        (rc = q ? sqlite3_prepare_v2(db, q, -1, &c, NULL) : SQLITE_NOMEM) == SQLITE_OK)
        any = sqlite3_step(c) == SQLITE_ROW;
    sqlite3_finalize(c);
    sqlite3_free(q);
    if (rc == SQLITE_OK && any) /* the changeset is read only when the DB has a trigger */
        rc = f ? sqlite3changeset_start_strm(&it, read_file, f) : SQLITE_CANTOPEN;
    char last[256] = "";
    while (rc == SQLITE_OK && it && !*yes && sqlite3changeset_next(it) == SQLITE_ROW) {
        const char *tab;
        int ncol, op, indirect;
        if (sqlite3changeset_op(it, &tab, &ncol, &op, &indirect) != SQLITE_OK ||
            strcmp(tab, last) == 0)
            continue;
        snprintf(last, sizeof(last), "%s", tab);
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, tab, -1, SQLITE_TRANSIENT);
        *yes = sqlite3_step(st) == SQLITE_ROW;
    }
    sqlite3changeset_finalize(it);
    sqlite3_finalize(st);
    if (f)
        fclose(f);
    return rc;
}

/* 1 when an attached DB (not main, not temp) has a trigger on a table its input writes: the
 * switch would silence it. */
static int other_triggers(sqlite3 *db, const pb_merge_input *in, size_t nin, int *yes)
{
    int rc = SQLITE_OK;
    *yes = 0;
    for (size_t i = 0; i < nin && rc == SQLITE_OK && !*yes; i++)
        if (strcmp(in[i].schema, "main") != 0)
            rc = touches_triggered(db, in[i].schema, in[i].path, yes);
    return rc;
}

/* Loads the external-content FTS4 tables of main. */
static int load_tables(pb_ftsdefer *d, sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT name, sql FROM main.sqlite_master WHERE type = 'table' "
                                "AND sql LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name",
                                -1, &st, NULL);
    while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        fts_table f;
        memset(&f, 0, sizeof(f));
        const char *name = (const char *)sqlite3_column_text(st, 0);
        const char *sql = (const char *)sqlite3_column_text(st, 1);
        if (!name || !sql || parse_fts(&f, sql) != 0 || !(f.name = strdup(name))) {
            table_dispose(&f);
            continue;
        }
        fts_table *nt = realloc(d->t, (size_t)(d->n + 1) * sizeof(*nt));
        if (!nt) {
            table_dispose(&f);
            rc = SQLITE_NOMEM;
            break;
        }
        d->t = nt;
        d->t[d->n++] = f;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Reads main's triggers: 1 when each is a recognised FTS trigger, 0 when one is not. */
static int check_triggers(pb_ftsdefer *d, sqlite3 *db, int *ok)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT tbl_name, sql FROM main.sqlite_master WHERE type = "
                                "'trigger'",
                                -1, &st, NULL),
        ntrig = 0;
    *ok = 1;
    while (rc == SQLITE_OK && *ok && sqlite3_step(st) == SQLITE_ROW) {
        const char *tbl = (const char *)sqlite3_column_text(st, 0);
        const char *sql = (const char *)sqlite3_column_text(st, 1);
        int r = tbl && sql ? recognise(d, tbl, sql) : 1;
        if (r < 0)
            rc = SQLITE_NOMEM;
        *ok = r == 0;
        ntrig++;
    }
    sqlite3_finalize(st);
    for (int i = 0; i < d->n && *ok; i++)
        *ok = d->t[i].events == 0 || d->t[i].events == EV_ALL;
    *ok = *ok && ntrig > 0;
    return rc;
}

/* The TEMP objects of one content table `k` and the re-indexing SQL of its FTS tables. */
static char *content_setup(const pb_ftsdefer *d, const char *tbl, int k)
{
    const char *of = d->t[k].of ? d->t[k].of : "";
    char *dels = sqlite3_mprintf("%s", "");
    for (int i = 0; i < d->n && dels; i++)
        if (d->t[i].events && strcasecmp(d->t[i].content, tbl) == 0)
            dels = sqlite3_mprintf("%z DELETE FROM \"%w\" WHERE docid = old.rowid;", dels,
                                   d->t[i].name);
    if (!dels)
        return NULL;
    char *s = sqlite3_mprintf(
        "DROP TABLE IF EXISTS temp.pb_fts_ids_%d;\n"
        "CREATE TEMP TABLE pb_fts_ids_%d(id INTEGER PRIMARY KEY);\n"
        "DROP TABLE IF EXISTS temp.pb_fts_pre_%d;\n"
        "CREATE TEMP TABLE pb_fts_pre_%d(id INTEGER PRIMARY KEY);\n"
        "CREATE TEMP TRIGGER pb_fts_bu_%d BEFORE UPDATE%s ON main.\"%w\" WHEN NOT EXISTS (SELECT 1 "
        "FROM pb_fts_ids_%d WHERE id = old.rowid) BEGIN%s INSERT INTO pb_fts_ids_%d(id) "
        "VALUES(old.rowid); END;\n"
        "CREATE TEMP TRIGGER pb_fts_bd_%d BEFORE DELETE ON main.\"%w\" WHEN NOT EXISTS (SELECT 1 "
        "FROM pb_fts_ids_%d WHERE id = old.rowid) BEGIN%s INSERT INTO pb_fts_ids_%d(id) "
        "VALUES(old.rowid); END;\n"
        "CREATE TEMP TRIGGER pb_fts_ai_%d AFTER INSERT ON main.\"%w\" BEGIN INSERT OR IGNORE "
        "INTO pb_fts_ids_%d(id) VALUES(new.rowid); END;\n"
        "CREATE TEMP TRIGGER pb_fts_au_%d AFTER UPDATE%s ON main.\"%w\" WHEN new.rowid <> "
        "old.rowid BEGIN INSERT OR IGNORE INTO pb_fts_ids_%d(id) VALUES(new.rowid); END;\n",
        k, k, k, k, k, of, tbl, k, dels, k, k, tbl, k, dels, k, k, tbl, k, k, of, tbl, k);
    sqlite3_free(dels);
    return s;
}

static char *fts_finish(const fts_table *f, int k)
{
    char *cols = sqlite3_mprintf("docid"), *vals = sqlite3_mprintf("t.rowid");
    for (int i = 0; i < f->ncols && cols && vals; i++) {
        cols = sqlite3_mprintf("%z, \"%w\"", cols, f->cols[i]);
        vals = vals ? sqlite3_mprintf("%z, t.\"%w\"", vals, f->cols[i]) : NULL;
    }
    char *s = cols && vals ? sqlite3_mprintf("INSERT INTO main.\"%w\"(%s) SELECT %s FROM "
                                             "temp.pb_fts_ids_%d AS p JOIN main.\"%w\" AS t ON "
                                             "t.rowid = p.id ORDER BY p.id;\n",
                                             f->name, cols, vals, k, f->content)
                           : NULL;
    sqlite3_free(cols);
    sqlite3_free(vals);
    return s;
}

/* The number of the content table of FTS table i: the first maintained FTS table naming it. */
static int content_index(const pb_ftsdefer *d, int i)
{
    int k = 0;
    while (k < i && !(d->t[k].events && strcasecmp(d->t[k].content, d->t[i].content) == 0))
        k++;
    return k;
}

/* Adds the column `name` of the content table (columns `names`, n of them) to f's watch list;
 * -1 when the content table has no such column. */
static int watch_add(fts_table *f, char **names, int n, const char *name)
{
    int c = 0;
    while (c < n && strcasecmp(names[c], name) != 0)
        c++;
    if (c == n)
        return -1;
    for (int w = 0; w < f->nwatch; w++)
        if (f->watch[w] == c)
            return 0;
    f->watch[f->nwatch++] = c;
    f->of = f->of ? sqlite3_mprintf("%z, \"%w\"", f->of, names[c])
                  : sqlite3_mprintf(" OF \"%w\"", names[c]);
    return f->of ? 0 : -1;
}

/* The watch list of the content table of d->t[k] (its first maintained FTS table): the columns
 * of every FTS table over it and its INTEGER PRIMARY KEY. An UPDATE that sets none of them
 * leaves the FTS entries as they are (external content: an entry is the tokens of those columns
 * at that rowid), so its row is neither deleted from nor re-added to the index. Left at -1 (any
 * update) when a column cannot be resolved. */
static int resolve_watch(pb_ftsdefer *d, sqlite3 *db, int k)
{
    fts_table *f = &d->t[k];
    sqlite3_stmt *st = NULL;
    char **names = NULL, *ipk = NULL;
    int n = 0, cap = 0, npk = 0, rc = SQLITE_OK, ok = 0;
    char *q =
        sqlite3_mprintf("SELECT name, type, pk FROM pragma_table_info(%Q, 'main')", f->content);
    f->nwatch = -1;
    if (!q || sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK)
        goto done;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        const char *type = (const char *)sqlite3_column_text(st, 1);
        if (!name)
            goto done;
        if (n == cap) {
            char **nn = realloc(names, (size_t)(cap = cap ? 2 * cap : 64) * sizeof(*nn));
            if (!nn)
                goto done;
            names = nn;
        }
        if (!(names[n++] = strdup(name)))
            goto done;
        if (sqlite3_column_int(st, 2) > 0 && ++npk == 1 && type && strcasecmp(type, "INTEGER") == 0)
            ipk = names[n - 1];
    }
    if (rc != SQLITE_DONE || !n || !(f->watch = malloc(sizeof(int) * (size_t)(n + 1))))
        goto done;
    f->nwatch = 0;
    ok = 1;
    for (int i = k; i < d->n && ok; i++)
        if (d->t[i].events && strcasecmp(d->t[i].content, f->content) == 0)
            for (int c = 0; c < d->t[i].ncols && ok; c++)
                ok = watch_add(f, names, n, d->t[i].cols[c]) == 0;
    if (ok && npk == 1 && ipk)
        ok = watch_add(f, names, n, ipk) == 0;
done:
    if (!ok) { /* any update: the triggers without a column list, every key read */
        f->nwatch = -1;
        sqlite3_free(f->of);
        f->of = NULL;
    }
    sqlite3_finalize(st);
    sqlite3_free(q);
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return 0;
}

/* setup, before and finish over every maintained content table. */
static int build_sql(pb_ftsdefer *d)
{
    d->setup = sqlite3_mprintf("%s", "");
    d->finish = sqlite3_mprintf("%s", "");
    for (int i = 0; i < d->n && d->setup && d->finish; i++) {
        if (!d->t[i].events)
            continue;
        int k = content_index(d, i);
        if (k == i) {
            char *s = content_setup(d, d->t[i].content, k);
            d->setup = s ? sqlite3_mprintf("%z%z", d->setup, s) : NULL;
        }
        char *f = fts_finish(&d->t[i], k);
        d->finish = f ? sqlite3_mprintf("%z%z", d->finish, f) : NULL;
    }
    d->before = sqlite3_mprintf("%s", "");
    for (int i = 0; i < d->n && d->before; i++) {
        if (!d->t[i].events)
            continue;
        int k = content_index(d, i);
        if (k == i)
            d->before = sqlite3_mprintf(
                "%zINSERT INTO temp.pb_fts_ids_%d(id) SELECT p.id FROM temp.pb_fts_pre_%d AS p "
                "WHERE EXISTS (SELECT 1 FROM main.\"%w\" AS t WHERE t.rowid = p.id);\n",
                d->before, k, k, d->t[i].content);
        if (d->before)
            d->before = sqlite3_mprintf("%zDELETE FROM main.\"%w\" WHERE docid IN (SELECT id FROM "
                                        "temp.pb_fts_ids_%d);\n",
                                        d->before, d->t[i].name, k);
    }
    for (int i = 0; i < d->n && d->finish; i++) {
        int first = d->t[i].events != 0;
        for (int k = 0; k < i && first; k++)
            first = !(d->t[k].events && strcasecmp(d->t[k].content, d->t[i].content) == 0);
        if (first)
            d->finish = sqlite3_mprintf("%zDELETE FROM temp.pb_fts_ids_%d;\n", d->finish, i);
    }
    return d->setup && d->finish && d->before ? 0 : -1;
}

/* Whether the UPDATE record at `it` (ncol columns) sets a watched column of f's content table. */
static int sets_watched(const fts_table *f, sqlite3_changeset_iter *it, int ncol)
{
    if (f->nwatch < 0)
        return 1;
    for (int w = 0; w < f->nwatch; w++) {
        sqlite3_value *v = NULL;
        if (f->watch[w] < ncol && sqlite3changeset_new(it, f->watch[w], &v) == SQLITE_OK && v)
            return 1;
    }
    return 0;
}

/* The keys of the changeset's UPDATE and DELETE records on the maintained content tables, as
 * INSERTs into their temp.pb_fts_pre_<k> tables appended to the setup SQL: the rows whose FTS
 * entries the before SQL removes in one statement. A row the merge writes without such a record
 * (an insert mapped onto a live row) is still handled, row by row, by the TEMP triggers. */
static int read_keys(pb_ftsdefer *d, const char *changeset, pb_error *err)
{
    FILE *f = fopen(changeset, "rb");
    if (!f)
        return pb_error_errno(err, "merge: cannot read %s", changeset);
    sqlite3_changeset_iter *it = NULL;
    sqlite3_str *s = sqlite3_str_new(NULL);
    int error = 0, rc, open = -1, cnt = 0;
    sqlite3_str_appendall(s, d->setup);
    if ((rc = sqlite3changeset_start_strm(&it, read_file, f)) != SQLITE_OK) {
        error = pb_error_setd(err, PB_ECORRUPT, rc, "merge: reading %s", changeset);
        goto done;
    }
    while ((rc = sqlite3changeset_next(it)) == SQLITE_ROW) {
        const char *tab;
        int ncol, op, indirect, i;
        unsigned char *pk;
        sqlite3_value *v = NULL;
        if (sqlite3changeset_op(it, &tab, &ncol, &op, &indirect) != SQLITE_OK ||
            (op != SQLITE_UPDATE && op != SQLITE_DELETE))
            continue;
        for (i = 0; i < d->n; i++)
            if (d->t[i].events && content_index(d, i) == i && strcasecmp(d->t[i].content, tab) == 0)
                break;
        if (i == d->n || sqlite3changeset_pk(it, &pk, &ncol) != SQLITE_OK)
            continue;
        if (op == SQLITE_UPDATE && !sets_watched(&d->t[i], it, ncol))
            continue; /* no indexed column written: the FTS entry stays */
        int c = 0;
        while (c < ncol && !pk[c])
            c++;
        if (c == ncol || sqlite3changeset_old(it, c, &v) != SQLITE_OK || !v ||
            sqlite3_value_type(v) != SQLITE_INTEGER)
            continue;
        if (open != i || cnt == 500) { /* one statement per table and 500 keys */
            sqlite3_str_appendf(s, "%sINSERT OR IGNORE INTO temp.pb_fts_pre_%d(id) VALUES",
                                open >= 0 ? ";\n" : "", i);
            open = i;
            cnt = 0;
        }
        sqlite3_str_appendf(s, "%s(%lld)", cnt++ ? "," : "", (long long)sqlite3_value_int64(v));
    }
    if (rc != SQLITE_DONE) {
        error = pb_error_setd(err, PB_ECORRUPT, rc, "merge: reading %s", changeset);
        goto done;
    }
    if (open >= 0)
        sqlite3_str_appendall(s, ";\n");
    if (sqlite3_str_errcode(s) != SQLITE_OK) {
        error = pb_error_set(err, PB_ENOMEM, "merge: out of memory");
        goto done;
    }
    sqlite3_free(d->setup);
    d->setup = sqlite3_str_finish(s);
    s = NULL;
done:
    sqlite3changeset_finalize(it);
    sqlite3_free(s ? sqlite3_str_finish(s) : NULL);
    fclose(f);
    return error;
}

int pb_ftsdefer_new(pb_ftsdefer **out, sqlite3 *db, const pb_merge_input *inputs, size_t ninputs,
                    pb_error *err)
{
    const char *changeset = NULL;
    for (size_t i = 0; i < ninputs; i++)
        if (strcmp(inputs[i].schema, "main") == 0)
            changeset = inputs[i].path;
    int error = 0, rc, other = 0, ok = 0;
    pb_ftsdefer *d = calloc(1, sizeof(*d));
    *out = NULL;
    if (!d)
        return pb_error_set(err, PB_ENOMEM, "merge: out of memory");
    if ((rc = other_triggers(db, inputs, ninputs, &other)) != SQLITE_OK ||
        (!other && ((rc = load_tables(d, db)) != SQLITE_OK ||
                    (rc = check_triggers(d, db, &ok)) != SQLITE_OK))) {
        error = sqlerr(db, rc, err);
        goto done;
    }
    if (other || !ok)
        goto done;
    for (int i = 0; i < d->n; i++)
        if (d->t[i].events && content_index(d, i) == i)
            resolve_watch(d, db, i);
    if (build_sql(d) != 0) {
        error = pb_error_set(err, PB_ENOMEM, "merge: out of memory");
        goto done;
    }
    if (changeset && (error = read_keys(d, changeset, err)) < 0)
        goto done;
    *out = d;
    d = NULL;
done:
    pb_ftsdefer_free(d);
    return error;
}

const char *pb_ftsdefer_setup_sql(const pb_ftsdefer *d)
{
    return d->setup;
}

const char *pb_ftsdefer_before_sql(const pb_ftsdefer *d)
{
    return d->before;
}

const char *pb_ftsdefer_finish_sql(const pb_ftsdefer *d)
{
    return d->finish;
}

const char *pb_ftsdefer_conn_sql(void)
{
    return "PRAGMA temp_store=MEMORY;\n";
}

const char *pb_ftsdefer_script_switch(void)
{
    return ".dbconfig enable_trigger off\n";
}

int pb_ftsdefer_install(pb_ftsdefer *d, sqlite3 *db, pb_error *err)
{
    int on = -1;
    if (sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, &on) != SQLITE_OK || on != 0)
        return pb_error_set(err, PB_ESQLITE, "merge: cannot switch the DB's triggers off");
    char *msg = NULL;
    int rc = sqlite3_exec(db, d->setup, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        pb_error_setd(err, PB_ESQLITE, rc, "merge: deferring the FTS maintenance: %s",
                      msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        pb_ftsdefer_uninstall(d, db);
        return PB_ESQLITE;
    }
    return 0;
}

void pb_ftsdefer_uninstall(pb_ftsdefer *d, sqlite3 *db)
{
    if (!d || !db)
        return;
    static const char *const kinds[] = {"bu", "bd", "ai", "au"};
    for (int i = 0; i < d->n; i++) {
        for (int k = 0; k < 4; k++) {
            char *sql = sqlite3_mprintf("DROP TRIGGER IF EXISTS temp.pb_fts_%s_%d", kinds[k], i);
            if (sql)
                sqlite3_exec(db, sql, NULL, NULL, NULL);
            sqlite3_free(sql);
        }
        char *sql = sqlite3_mprintf("DROP TABLE IF EXISTS temp.pb_fts_ids_%d; DROP TABLE IF EXISTS "
                                    "temp.pb_fts_pre_%d",
                                    i, i);
        if (sql)
            sqlite3_exec(db, sql, NULL, NULL, NULL);
        sqlite3_free(sql);
    }
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 1, (int *)0);
}

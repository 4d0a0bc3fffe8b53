/*
 * test_merge.c: pb_merge_apply() (sqldiff/merge.c), the generic 3-way row merge, on small schemas
 * shaped like Plex's: items with a self-referencing parent_id, media -> parts -> streams, tags and
 * taggings with a natural key, a composite-key table, an attached "blobs" DB with conditional
 * cross-schema refs, a user-state table, a table without key and a derived table.
 * Each scenario builds base, cloud (base mutated as a cloud run would) and live (base diverged as a
 * home server would) DBs, produces the base -> cloud changesets with sqlite3session_diff (plus a
 * hand-encoded section for the keyless table, as our diff encodes them), merges them into a copy
 * of live and checks the result against a hand-checked scenario and, over many seeds, against an
 * independent oracle that works row by row from the three DBs (not from the changesets).
 * Also: dry run, errors leave the live DB unchanged, crash recovery (fork + the after_write hook),
 * and, with the argument `script`, script mode run by the stock sqlite3 shell with the plexcompat
 * extension; with `bench`, a timing against sqlite3changeset_apply_v2 on a ~20k record change.
 * Prerequisites: cmocka, the session extension; for `script`, /usr/bin/sqlite3 and the built
 * plexcompat extension (skipped otherwise).
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>

#include "testutil.h"
#include "plexburst/compat.h"
#include "plexburst/merge.h"
#include "plexburst/sqldiff.h"

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 */

static sqlite3 *xopen(const char *path)
{
    sqlite3 *db = NULL;
    pb_error e = PB_ERROR_INIT;
    if (pb_compat_open(&db, path, PB_OPEN_CREATE, &e) != 0)
        fail_msg("open %s: %s", path, e.msg);
    /* no fsync: the tests kill processes, never machines (the crash test's child opens its own) */
    sqlite3_exec(db, "PRAGMA synchronous=OFF", NULL, NULL, NULL);
    return db;
}

static void xexec(sqlite3 *db, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = sqlite3_vmprintf(fmt, ap);
    va_end(ap);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("SQL failed: %s: %s", msg, sql);
    sqlite3_free(sql);
}

/* Runs printf-style SQL (SQLite's format) on the DB at path. */
static void xexec_at(const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = sqlite3_vmprintf(fmt, ap);
    va_end(ap);
    sqlite3 *db = xopen(path);
    xexec(db, "%s", sql);
    sqlite3_close(db);
    sqlite3_free(sql);
}

/* Prepares printf-style SQL (SQLite's format); fails the test when it does not compile. */
static sqlite3_stmt *vprep(sqlite3 *db, const char *fmt, va_list ap)
{
    char *sql = sqlite3_vmprintf(fmt, ap);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("prepare: %s: %s", sqlite3_errmsg(db), sql);
    sqlite3_free(sql);
    return st;
}

static int64_t qint(sqlite3 *db, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sqlite3_stmt *st = vprep(db, fmt, ap);
    va_end(ap);
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : INT64_MIN;
    sqlite3_finalize(st);
    return v;
}

static char *qtext(sqlite3 *db, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sqlite3_stmt *st = vprep(db, fmt, ap);
    va_end(ap);
    char *v = NULL;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return v;
}

static void copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    assert_non_null(a);
    assert_non_null(b);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), a)) > 0)
        assert_int_equal(fwrite(buf, 1, n, b), n);
    fclose(a);
    assert_int_equal(fclose(b), 0);
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Content dump of main and (when attached) blobs: every table, sqlite_sequence included, every
 * value with its type, rows sorted. Equal dumps = equal content. */
static char *dump_db(sqlite3 *db)
{
    tu_buf out = {0};
    const char *schemas[] = {"main", "blobs"};
    tu_buf_str(&out, "");
    for (int s = 0; s < 2; s++) {
        if (qint(db, "SELECT count(*) FROM pragma_database_list WHERE name = %Q", schemas[s]) == 0)
            continue;
        sqlite3_stmt *tl = NULL;
        char *sql = sqlite3_mprintf("SELECT name FROM \"%w\".sqlite_master WHERE type = 'table' "
                                    "AND name NOT LIKE 'sqlite_stat%%' ORDER BY name",
                                    schemas[s]);
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &tl, NULL), SQLITE_OK);
        sqlite3_free(sql);
        while (sqlite3_step(tl) == SQLITE_ROW) {
            const char *t = (const char *)sqlite3_column_text(tl, 0);
            sqlite3_str *q = sqlite3_str_new(db);
            sqlite3_str_appendall(q, "SELECT ''");
            sqlite3_stmt *cl = NULL;
            char *csql = sqlite3_mprintf("SELECT name FROM pragma_table_info(%Q, %Q) ORDER BY cid",
                                         t, schemas[s]);
            assert_int_equal(sqlite3_prepare_v2(db, csql, -1, &cl, NULL), SQLITE_OK);
            sqlite3_free(csql);
            while (sqlite3_step(cl) == SQLITE_ROW) {
                const char *c = (const char *)sqlite3_column_text(cl, 0);
                sqlite3_str_appendf(
                    q,
                    "||'|'||CASE typeof(\"%w\") WHEN 'real' THEN 'r'||printf('%%.17g', \"%w\") "
                    "WHEN 'text' THEN 't'||hex(\"%w\") WHEN 'blob' THEN 'b'||hex(\"%w\") WHEN "
                    "'integer' THEN 'i'||\"%w\" ELSE 'n' END",
                    c, c, c, c, c);
            }
            sqlite3_finalize(cl);
            sqlite3_str_appendf(q, " AS r FROM \"%w\".\"%w\" ORDER BY r", schemas[s], t);
            char *rsql = sqlite3_str_finish(q);
            sqlite3_stmt *rs = NULL;
            assert_int_equal(sqlite3_prepare_v2(db, rsql, -1, &rs, NULL), SQLITE_OK);
            sqlite3_free(rsql);
            char head[256];
            snprintf(head, sizeof(head), "== %s.%s\n", schemas[s], t);
            tu_buf_str(&out, head);
            while (sqlite3_step(rs) == SQLITE_ROW) {
                tu_buf_str(&out, (const char *)sqlite3_column_text(rs, 0));
                tu_buf_str(&out, "\n");
            }
            sqlite3_finalize(rs);
        }
        sqlite3_finalize(tl);
    }
    return out.p;
}

static char *dump_files(const char *main_db, const char *blobs_db)
{
    sqlite3 *db = xopen(main_db);
    if (blobs_db)
        xexec(db, "ATTACH %Q AS blobs", blobs_db);
    char *d = dump_db(db);
    sqlite3_close(db);
    return d;
}

static void assert_dump_equal(const char *got, const char *want, const char *what)
{
    if (strcmp(got, want) == 0)
        return;
    const char *a = got, *b = want;
    int line = 1;
    while (*a && *a == *b) {
        if (*a == '\n')
            line++;
        a++;
        b++;
    }
    const char *la = a, *lb = b;
    while (la > got && la[-1] != '\n')
        la--;
    while (lb > want && lb[-1] != '\n')
        lb--;
    fail_msg("%s: dumps differ at line %d:\n got: %.200s\nwant: %.200s", what, line, la, lb);
}

/* ---------------------------------------------------------------------------------------------
 * The schemas and the policy
 */

static const char *MAIN_SCHEMA =
    "CREATE TABLE sections(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, uuid TEXT);"
    "CREATE TABLE items(id INTEGER PRIMARY KEY AUTOINCREMENT, section_id INTEGER, parent_id "
    "INTEGER, title TEXT COLLATE icu_root, guid TEXT, rating REAL, extra BLOB, user_fields TEXT, "
    "updated_at INTEGER);"
    "CREATE INDEX items_parent ON items(parent_id);"
    "CREATE TABLE media(id INTEGER PRIMARY KEY AUTOINCREMENT, item_id INTEGER, duration INTEGER, "
    "codec TEXT);"
    "CREATE TABLE parts(id INTEGER PRIMARY KEY AUTOINCREMENT, media_id INTEGER, file TEXT, hash "
    "TEXT, size INTEGER);"
    "CREATE TABLE streams(id INTEGER PRIMARY KEY AUTOINCREMENT, part_id INTEGER, media_id "
    "INTEGER, kind INTEGER, url TEXT, extra TEXT);"
    "CREATE TABLE tags(id INTEGER PRIMARY KEY AUTOINCREMENT, tag_type INTEGER, tag TEXT, key "
    "TEXT);"
    "CREATE INDEX tags_nat ON tags(tag, tag_type);"
    "CREATE TABLE taggings(id INTEGER PRIMARY KEY AUTOINCREMENT, item_id INTEGER, tag_id INTEGER, "
    "idx INTEGER);"
    "CREATE TABLE relations(item_id INTEGER, related_id INTEGER, kind TEXT, PRIMARY KEY(item_id, "
    "related_id));"
    "CREATE TABLE settings(id INTEGER PRIMARY KEY AUTOINCREMENT, account_id INTEGER, guid TEXT, "
    "view_count INTEGER);"
    "CREATE TABLE loose(item_id INTEGER, note TEXT);"
    "CREATE TABLE vals(id INTEGER PRIMARY KEY, v);"
    "CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT, item_id INTEGER);"
    "CREATE TABLE fts_shadow(docid INTEGER PRIMARY KEY, content TEXT);";

static const char *BLOBS_SCHEMA =
    "CREATE TABLE blobs(id INTEGER PRIMARY KEY AUTOINCREMENT, linked_type TEXT, linked_id "
    "INTEGER, blob_type INTEGER, blob BLOB);"
    "CREATE UNIQUE INDEX blobs_nat ON blobs(linked_type, linked_id, blob_type);";

/* keyed tables given to sqlite3session_diff, and the keyless ones encoded by hand */
static const char *MAIN_KEYED[] = {"sections", "items",     "media",    "parts", "streams", "tags",
                                   "taggings", "relations", "settings", "vals",  NULL};
/* kv has a key, but NULLs in it: our diff sends it as a multiset */
static const char *MAIN_NOPK[] = {"loose", "kv", NULL};
static const char *BLOBS_KEYED[] = {"blobs", NULL};

static int g_map_fail; /* map_text fails on the text "FAIL" */

static int t_class(const char *schema, const char *table, void *p)
{
    (void)schema;
    (void)p;
    if (strcmp(table, "settings") == 0)
        return PB_CLASS_USER;
    if (strcmp(table, "fts_shadow") == 0)
        return PB_CLASS_DERIVED;
    return PB_CLASS_LIBRARY;
}

static int t_rule(const char *schema, const char *table, const char *column, void *p)
{
    (void)schema;
    (void)p;
    if (strcmp(table, "items") == 0 && strcmp(column, "user_fields") == 0)
        return PB_COL_KEEP_LIVE;
    if (strcmp(table, "items") == 0 && strcmp(column, "updated_at") == 0)
        return PB_COL_TAKE_CLOUD;
    return PB_COL_DEFAULT;
}

static int t_map(const char *schema, const char *table, const char *column, const char *in,
                 size_t n, char **out, size_t *out_n, void *p)
{
    (void)schema;
    (void)table;
    (void)column;
    (void)p;
    if (g_map_fail && n == 4 && memcmp(in, "FAIL", 4) == 0)
        return PB_EINVALID;
    if (n < 7 || memcmp(in, "/cloud/", 7) != 0)
        return 0;
    *out = malloc(n - 7 + 6 + 1);
    memcpy(*out, "/home/", 6);
    memcpy(*out + 6, in + 7, n - 7);
    (*out)[n - 1] = '\0';
    *out_n = n - 1;
    return 1;
}

static const pb_merge_ref T_REFS[] = {
    {"main", "items", "section_id", "main", "sections", NULL, NULL},
    {"main", "items", "parent_id", "main", "items", NULL, NULL},
    {"main", "media", "item_id", "main", "items", NULL, NULL},
    {"main", "parts", "media_id", "main", "media", NULL, NULL},
    {"main", "streams", "part_id", "main", "parts", NULL, NULL},
    {"main", "streams", "media_id", "main", "media", NULL, NULL},
    {"main", "taggings", "item_id", "main", "items", NULL, NULL},
    {"main", "taggings", "tag_id", "main", "tags", NULL, NULL},
    {"main", "relations", "item_id", "main", "items", NULL, NULL},
    {"main", "relations", "related_id", "main", "items", NULL, NULL},
    {"main", "loose", "item_id", "main", "items", NULL, NULL},
    {"main", "kv", "item_id", "main", "items", NULL, NULL},
    {"main", "items", "no_such_column", "main", "items", NULL, NULL}, /* ignored */
    {"blobs", "blobs", "linked_id", "main", "parts", "linked_type", "media_part"},
    {"blobs", "blobs", "linked_id", "main", "streams", "linked_type", "media_stream"},
};
static const pb_merge_natkey T_NAT[] = {
    {"main", "tags", {"tag_type", "tag", "key", NULL}},
    {"main", "sections", {"uuid", NULL}},
    {"blobs", "blobs", {"linked_type", "linked_id", "blob_type", NULL}},
};

static pb_merge_policy t_policy(void)
{
    pb_merge_policy p = {PB_MERGE_POLICY_VERSION,
                         t_class,
                         t_rule,
                         t_map,
                         T_REFS,
                         sizeof(T_REFS) / sizeof(T_REFS[0]),
                         T_NAT,
                         sizeof(T_NAT) / sizeof(T_NAT[0]),
                         NULL,
                         NULL,
                         NULL,
                         0,
                         NULL,
                         0};
    return p;
}

/* ---------------------------------------------------------------------------------------------
 * Scenarios: files, changesets
 */

typedef struct scen {
    char dir[1024];
    char base[PATH_MAX], base_b[PATH_MAX], cloud[PATH_MAX], cloud_b[PATH_MAX];
    char live[PATH_MAX], live_b[PATH_MAX], cs[PATH_MAX], cs_b[PATH_MAX];
    char work[PATH_MAX], work_b[PATH_MAX]; /* the copy of live that is merged into */
} scen;

static void scen_init(scen *s, const char *tag)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "%s", tu_tmpdir(tag));
#define P(f, name) snprintf(s->f, sizeof(s->f), "%s/%s", s->dir, name)
    P(base, "base.db");
    P(base_b, "base_blobs.db");
    P(cloud, "cloud.db");
    P(cloud_b, "cloud_blobs.db");
    P(live, "live.db");
    P(live_b, "live_blobs.db");
    P(cs, "main.changeset");
    P(cs_b, "blobs.changeset");
    P(work, "work.db");
    P(work_b, "work_blobs.db");
#undef P
    xexec_at(s->base, "%s", MAIN_SCHEMA);
    xexec_at(s->base_b, "%s", BLOBS_SCHEMA);
}

/* base -> cloud and live copies */
static void scen_fork(scen *s)
{
    copy_file(s->base, s->cloud);
    copy_file(s->base_b, s->cloud_b);
    copy_file(s->base, s->live);
    copy_file(s->base_b, s->live_b);
}

/* Opens main with blobs attached. */
static sqlite3 *open_pair(const char *main_db, const char *blobs_db)
{
    sqlite3 *db = xopen(main_db);
    xexec(db, "ATTACH %Q AS blobs; PRAGMA blobs.synchronous=OFF", blobs_db);
    return db;
}

static int xoutput(void *p, const void *data, int n)
{
    return fwrite(data, 1, (size_t)n, (FILE *)p) == (size_t)n ? SQLITE_OK : SQLITE_IOERR;
}

static void put_varint(FILE *f, uint64_t v)
{
    unsigned char buf[10];
    int n = 0;
    if (v & ((uint64_t)0xff000000 << 32)) {
        unsigned char p[9];
        p[8] = (unsigned char)v;
        v >>= 8;
        for (int i = 7; i >= 0; i--) {
            p[i] = (unsigned char)((v & 0x7f) | 0x80);
            v >>= 7;
        }
        fwrite(p, 1, 9, f);
        return;
    }
    do {
        buf[n++] = (unsigned char)((v & 0x7f) | 0x80);
        v >>= 7;
    } while (v);
    buf[0] &= 0x7f;
    for (int i = n - 1; i >= 0; i--)
        fputc(buf[i], f);
}

static void put_value(FILE *f, sqlite3_value *v)
{
    unsigned char b[8];
    uint64_t u;
    switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER:
        u = (uint64_t)sqlite3_value_int64(v);
        fputc(1, f);
        for (int i = 0; i < 8; i++)
            b[i] = (unsigned char)(u >> (56 - 8 * i));
        fwrite(b, 1, 8, f);
        break;
    case SQLITE_FLOAT: {
        double d = sqlite3_value_double(v);
        memcpy(&u, &d, 8);
        fputc(2, f);
        for (int i = 0; i < 8; i++)
            b[i] = (unsigned char)(u >> (56 - 8 * i));
        fwrite(b, 1, 8, f);
        break;
    }
    case SQLITE_TEXT: {
        const unsigned char *t = sqlite3_value_text(v);
        int n = sqlite3_value_bytes(v);
        fputc(3, f);
        put_varint(f, (uint64_t)n);
        fwrite(t, 1, (size_t)n, f);
        break;
    }
    case SQLITE_BLOB: {
        const void *t = sqlite3_value_blob(v);
        int n = sqlite3_value_bytes(v);
        fputc(4, f);
        put_varint(f, (uint64_t)n);
        if (n)
            fwrite(t, 1, (size_t)n, f);
        break;
    }
    default:
        fputc(5, f);
    }
}

/* Appends the changeset section of a keyless table, encoded as our diff does: every column flagged
 * as key, one INSERT per surplus copy of a row in main, one DELETE per surplus copy in base. */
static void encode_multiset(sqlite3 *db, const char *table, FILE *f)
{
    sqlite3_str *cols = sqlite3_str_new(db);
    sqlite3_stmt *st = NULL;
    char *sql = sqlite3_mprintf("SELECT name FROM pragma_table_info(%Q) ORDER BY cid", table);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_free(sql);
    int ncol = 0;
    while (sqlite3_step(st) == SQLITE_ROW)
        sqlite3_str_appendf(cols, "%s\"%w\"", ncol++ ? "," : "", sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    char *c = sqlite3_str_finish(cols);
    /* DELETEs first, then INSERTs (as sqldiff/diff.c emits multisets) */
    sql = sqlite3_mprintf("SELECT %s, sum(n) FROM (SELECT %s, 1 AS n FROM main.\"%w\" UNION ALL "
                          "SELECT %s, -1 FROM base.\"%w\") GROUP BY %s HAVING sum(n) <> 0 "
                          "ORDER BY sum(n) > 0",
                          c, c, table, c, table, c);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_free(sql);
    sqlite3_free(c);
    int header = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (!header) {
            fputc('T', f);
            put_varint(f, (uint64_t)ncol);
            for (int i = 0; i < ncol; i++)
                fputc(1, f);
            fwrite(table, 1, strlen(table) + 1, f);
            header = 1;
        }
        int64_t k = sqlite3_column_int64(st, ncol);
        for (int64_t j = 0; j < (k < 0 ? -k : k); j++) {
            fputc(k > 0 ? SQLITE_INSERT : SQLITE_DELETE, f);
            fputc(0, f);
            for (int i = 0; i < ncol; i++)
                put_value(f, sqlite3_column_value(st, i));
        }
    }
    sqlite3_finalize(st);
}

/* The base -> target changeset of the listed tables into `out`. */
static void make_changeset(const char *base, const char *target, const char *out,
                           const char **keyed, const char **nopk)
{
    sqlite3 *db = xopen(target);
    xexec(db, "ATTACH %Q AS base", base);
    sqlite3_session *s = NULL;
    assert_int_equal(sqlite3session_create(db, "main", &s), SQLITE_OK);
    for (int i = 0; keyed && keyed[i]; i++) {
        char *msg = NULL;
        assert_int_equal(sqlite3session_attach(s, keyed[i]), SQLITE_OK);
        if (sqlite3session_diff(s, "base", keyed[i], &msg) != SQLITE_OK)
            fail_msg("session diff %s: %s", keyed[i], msg);
    }
    FILE *f = fopen(out, "wb");
    assert_non_null(f);
    assert_int_equal(sqlite3session_changeset_strm(s, xoutput, f), SQLITE_OK);
    sqlite3session_delete(s);
    for (int i = 0; nopk && nopk[i]; i++)
        encode_multiset(db, nopk[i], f);
    assert_int_equal(fclose(f), 0);
    sqlite3_close(db);
}

static int g_ourdiff; /* produce the changesets with pb_sqldiff_diff instead of the session */

static int not_derived(const char *table, void *p)
{
    (void)p;
    return strcmp(table, "fts_shadow") != 0;
}

static void ourdiff(const char *base, const char *target, const char *out)
{
    FILE *f = fopen(out, "wb");
    assert_non_null(f);
    pb_diff_options o = PB_DIFF_OPTIONS_INIT;
    o.include = not_derived;
    pb_error e = PB_ERROR_INIT;
    if (pb_sqldiff_diff(NULL, base, target, &o, pb_sqldiff_write_file, f, &e) != 0)
        fail_msg("pb_sqldiff_diff: %s", e.msg);
    assert_int_equal(fclose(f), 0);
}

static void scen_changesets(scen *s)
{
    if (g_ourdiff) {
        ourdiff(s->base, s->cloud, s->cs);
        ourdiff(s->base_b, s->cloud_b, s->cs_b);
        return;
    }
    make_changeset(s->base, s->cloud, s->cs, MAIN_KEYED, MAIN_NOPK);
    make_changeset(s->base_b, s->cloud_b, s->cs_b, BLOBS_KEYED, NULL);
}

/* Collected actions. */
typedef struct alist {
    struct act {
        char table[32];
        int op;
        int64_t old_id, new_id;
        char column[32];
        int res;
    } * a;
    size_t n, cap;
} alist;

static void on_act(const pb_merge_action *a, void *p)
{
    alist *l = p;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->a = realloc(l->a, l->cap * sizeof(*l->a));
    }
    struct act *x = &l->a[l->n++];
    snprintf(x->table, sizeof(x->table), "%s", a->table);
    x->op = a->op;
    x->old_id = a->old_id;
    x->new_id = a->new_id;
    snprintf(x->column, sizeof(x->column), "%s", a->column ? a->column : "");
    x->res = a->resolution;
}

static int has_act(const alist *l, const char *table, int op, int64_t old_id, int64_t new_id,
                   const char *column, int res)
{
    for (size_t i = 0; i < l->n; i++) {
        const struct act *x = &l->a[i];
        if (strcmp(x->table, table) == 0 && x->op == op && x->old_id == old_id &&
            x->new_id == new_id && strcmp(x->column, column ? column : "") == 0 && x->res == res)
            return 1;
    }
    return 0;
}

/* Copies live to work and merges into work (script: into the FILE, work opened read-only). */
static int merge_into(const char *main_db, const char *blobs_db, const char *cs, const char *cs_b,
                      pb_merge_options *o, pb_merge_stats *st, pb_error *e)
{
    sqlite3 *db = open_pair(main_db, blobs_db);
    pb_merge_input in[2] = {{"main", cs}, {"blobs", cs_b}};
    pb_merge_policy pol = t_policy();
    int rc = pb_merge_apply(db, in, cs_b ? 2 : 1, &pol, o, st, e);
    sqlite3_close(db);
    return rc;
}

static int scen_merge(scen *s, pb_merge_options *o, pb_merge_stats *st, pb_error *e)
{
    copy_file(s->live, s->work);
    copy_file(s->live_b, s->work_b);
    return merge_into(s->work, s->work_b, s->cs, s->cs_b, o, st, e);
}

static const pb_merge_counts *table_counts(const pb_merge_stats *st, const char *table)
{
    for (unsigned i = 0; i < st->ntables; i++)
        if (strcmp(st->tables[i].table, table) == 0)
            return &st->tables[i].c;
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * The hand-checked scenario
 */

static void build_fixed(scen *s)
{
    scen_init(s, "merge-fixed");
    sqlite3 *db = open_pair(s->base, s->base_b);
    xexec(db,
          "INSERT INTO sections VALUES(1,'Movies','uuid-m'),(2,'Shows','uuid-s');"
          "INSERT INTO items VALUES(1,2,NULL,'Show A','g-a',7.5,X'01','uf0',100),"
          "(2,2,1,'Season 1','g-a1',NULL,NULL,'uf0',100),(3,2,2,'Ep 1','g-a11',NULL,NULL,NULL,100),"
          "(4,1,NULL,'Movie B','g-b',5.0,X'01',NULL,100),(5,1,NULL,'Movie C','g-c',5.0,NULL,NULL,"
          "100);"
          "INSERT INTO media VALUES(1,3,1000,'h264'),(2,4,2000,'hevc'),(3,5,3000,'av1');"
          "INSERT INTO parts VALUES(1,1,'/home/a.mkv','h1',10),(2,2,'/home/b.mkv','h2',20),"
          "(3,3,'/home/c.mkv','h3',30);"
          "INSERT INTO streams VALUES(1,1,1,1,NULL,'s1'),(2,2,2,1,NULL,'s2');"
          "INSERT INTO tags VALUES(1,1,'Drama',NULL),(2,4,'Actor X','imdb-x');"
          "INSERT INTO taggings VALUES(1,4,1,0);"
          "INSERT INTO relations VALUES(4,5,'similar');"
          "INSERT INTO settings VALUES(1,1,'g-a',3);"
          "INSERT INTO loose VALUES(4,'note b'),(4,'note b'),(5,'note c');"
          "INSERT INTO vals VALUES(1,'v1');"
          "INSERT INTO blobs.blobs VALUES(1,'media_part',1,1,X'AA'),(2,'media_stream',1,2,X'BB');");
    sqlite3_close(db);
    scen_fork(s);

    db = open_pair(s->cloud, s->cloud_b);
    xexec(
        db,
        /* new episode of season 2 (base), new show 7 -> season 8 -> episode 9 */
        "INSERT INTO items VALUES(6,2,2,'Ep 2','g-a12',NULL,NULL,NULL,300),"
        "(7,3,NULL,'Show D','g-d',NULL,NULL,NULL,300),(8,2,7,'Season D1','g-d1',NULL,NULL,NULL,"
        "300),(9,2,8,'Ep D1','g-d11',NULL,NULL,NULL,300);"
        "INSERT INTO sections VALUES(3,'Cloud New','uuid-n');" /* = live 4 by uuid */
        "INSERT INTO media VALUES(4,9,4000,'h264');"
        "INSERT INTO parts VALUES(4,4,'/cloud/d.mkv','h4',40);"
        "INSERT INTO streams VALUES(3,4,4,1,NULL,'s3'),(4,4,4,2,NULL,'s4'),"
        "(5,5,4,3,NULL,'dangling');" /* part 5: inserted and deleted by the cloud run */
        "INSERT INTO blobs.blobs VALUES(3,'media_part',4,1,X'CC'),(4,'media_stream',3,2,X'DD'),"
        "(5,'media_part',1,3,X'EE'),(6,'media_stream',4,2,X'FF');"
        "INSERT INTO tags VALUES(3,4,'Actor Y','imdb-y'),(4,1,'Comedy',NULL);"
        "INSERT INTO taggings VALUES(2,9,3,0),(3,7,4,0),(4,4,3,1);"
        "INSERT INTO relations VALUES(7,9,'x'),(4,1,'y');"
        "INSERT INTO loose VALUES(9,'new note');"
        "DELETE FROM loose WHERE rowid IN (SELECT rowid FROM loose WHERE note = 'note b' LIMIT 1);"
        "UPDATE items SET title = 'Movie B (2001)', extra = X'02' WHERE id = 4;"
        "UPDATE items SET rating = 8.0 WHERE id = 5;"
        "UPDATE items SET user_fields = 'uf-cloud', updated_at = 200 WHERE id = 1;"
        "UPDATE items SET title = 'Season One' WHERE id = 2;"
        "UPDATE parts SET file = '/cloud/b2.mkv' WHERE id = 2;"
        "UPDATE parts SET file = '/cloud/c.mkv' WHERE id = 3;" /* maps back to the base value */
        "DELETE FROM streams WHERE id = 2;"
        "DELETE FROM taggings WHERE id = 1;"
        "DELETE FROM media WHERE id = 3;"
        "UPDATE settings SET view_count = 4 WHERE id = 1;"
        "INSERT INTO settings VALUES(2,1,'g-d',1);");
    sqlite3_close(db);

    db = open_pair(s->live, s->live_b);
    xexec(db, "INSERT INTO sections VALUES(3,'Other','uuid-o'),(4,'Home New','uuid-n');"
              "INSERT INTO items VALUES(6,NULL,NULL,'Live Playlist','g-pl',NULL,NULL,NULL,150),"
              "(7,NULL,NULL,'Live Collection','g-col',NULL,NULL,NULL,150);"
              "INSERT INTO parts VALUES(4,2,'/home/b-live.mkv','h4l',41);"
              "INSERT INTO tags VALUES(3,1,'Horror',NULL),(4,4,'Actor Y','imdb-y');"
              "INSERT INTO blobs.blobs VALUES(3,'media_part',2,1,X'11'),(4,'media_part',1,3,X'EE');"
              "UPDATE items SET rating = 6.0 WHERE id = 5;"
              "UPDATE items SET updated_at = 150, user_fields = 'uf-live' WHERE id = 1;"
              "UPDATE items SET extra = X'02' WHERE id = 4;"
              "UPDATE streams SET extra = 's2-live' WHERE id = 2;"
              "DELETE FROM items WHERE id = 2;"
              "DELETE FROM media WHERE id = 3;"
              "UPDATE settings SET view_count = 9 WHERE id = 1;");
    sqlite3_close(db);
    scen_changesets(s);
}

/* Merges the scenario listing the actions into acts; fails the test (message after prefix) when
 * the merge fails. */
static void merge_listed(scen *s, alist *acts, pb_merge_stats *st, const char *prefix)
{
    pb_merge_options o = PB_MERGE_OPTIONS_INIT;
    o.on_action = on_act;
    o.action_payload = acts;
    pb_error e = PB_ERROR_INIT;
    int rc = scen_merge(s, &o, st, &e);
    if (rc)
        fail_msg("%smerge: %d %s", prefix, rc, e.msg);
}

static void test_fixed_scenario(void **state)
{
    (void)state;
    scen s;
    build_fixed(&s);
    alist acts = {0};
    pb_merge_stats st;
    merge_listed(&s, &acts, &st, "");

    sqlite3 *db = open_pair(s.work, s.work_b);
    /* items: cloud 6,7 collide with live 6,7 -> 10,11 (above live max 7 and cloud max 9) */
    assert_int_equal(qint(db, "SELECT count(*) FROM items"), 10);
    assert_int_equal(qint(db, "SELECT parent_id FROM items WHERE guid = 'g-a12'"), 2);
    assert_int_equal(qint(db, "SELECT id FROM items WHERE guid = 'g-a12'"), 10);
    assert_int_equal(qint(db, "SELECT id FROM items WHERE guid = 'g-d'"), 11);
    /* section 3 of the cloud is the live's section 4 by natural key (uuid, no index: looked up
     * in the indexed temp copy) */
    assert_int_equal(qint(db, "SELECT section_id FROM items WHERE id = 11"), 4);
    assert_int_equal(qint(db, "SELECT count(*) FROM sections"), 4);
    assert_int_equal(qint(db, "SELECT parent_id FROM items WHERE id = 8"), 11);
    assert_int_equal(qint(db, "SELECT parent_id FROM items WHERE id = 9"), 8);
    assert_int_equal(qint(db, "SELECT count(*) FROM items WHERE id IN (6,7) AND guid IN "
                              "('g-pl','g-col')"),
                     2);
    /* update applied, conflict kept live, same value, keep-live column, take-cloud column */
    char *title = qtext(db, "SELECT title FROM items WHERE id = 4");
    assert_string_equal(title, "Movie B (2001)");
    free(title);
    assert_true(qint(db, "SELECT rating = 6.0 FROM items WHERE id = 5") == 1);
    char *uf = qtext(db, "SELECT user_fields FROM items WHERE id = 1");
    assert_string_equal(uf, "uf-live");
    free(uf);
    assert_int_equal(qint(db, "SELECT updated_at FROM items WHERE id = 1"), 200);
    assert_int_equal(qint(db, "SELECT count(*) FROM items WHERE id = 2"), 0);
    /* media -> parts -> streams chain; parts 4 collides -> 6 (5 is named by a dangling reference
     * of the cloud, which must not end up pointing at the renumbered row); path mapped */
    assert_int_equal(qint(db, "SELECT item_id FROM media WHERE id = 4"), 9);
    assert_int_equal(qint(db, "SELECT media_id FROM parts WHERE id = 6"), 4);
    assert_int_equal(qint(db, "SELECT count(*) FROM parts WHERE id = 5"), 0);
    assert_int_equal(qint(db, "SELECT part_id FROM streams WHERE id = 5"), 5);
    char *file = qtext(db, "SELECT file FROM parts WHERE id = 6");
    assert_string_equal(file, "/home/d.mkv");
    free(file);
    file = qtext(db, "SELECT file FROM parts WHERE id = 2");
    assert_string_equal(file, "/home/b2.mkv");
    free(file);
    file = qtext(db, "SELECT file FROM parts WHERE id = 4");
    assert_string_equal(file, "/home/b-live.mkv");
    free(file);
    assert_int_equal(qint(db, "SELECT part_id FROM streams WHERE id = 3"), 6);
    assert_int_equal(qint(db, "SELECT part_id FROM streams WHERE id = 4"), 6);
    assert_int_equal(qint(db, "SELECT media_id FROM streams WHERE id = 3"), 4);
    /* stream 2 deleted although live changed it */
    assert_int_equal(qint(db, "SELECT count(*) FROM streams WHERE id = 2"), 0);
    /* tags: cloud 3 'Actor Y' = live 4 by natural key; cloud 4 collides -> 5 */
    assert_int_equal(qint(db, "SELECT count(*) FROM tags"), 5);
    assert_int_equal(qint(db, "SELECT count(*) FROM tags WHERE tag = 'Actor Y'"), 1);
    assert_int_equal(qint(db, "SELECT id FROM tags WHERE tag = 'Comedy'"), 5);
    assert_int_equal(qint(db, "SELECT tag_id FROM taggings WHERE id = 2"), 4);
    assert_int_equal(qint(db, "SELECT item_id FROM taggings WHERE id = 2"), 9);
    assert_int_equal(qint(db, "SELECT tag_id FROM taggings WHERE id = 3"), 5);
    assert_int_equal(qint(db, "SELECT item_id FROM taggings WHERE id = 3"), 11);
    assert_int_equal(qint(db, "SELECT tag_id FROM taggings WHERE id = 4"), 4);
    assert_int_equal(qint(db, "SELECT count(*) FROM taggings WHERE id = 1"), 0);
    /* composite key follows the remap */
    assert_int_equal(qint(db, "SELECT count(*) FROM relations WHERE item_id = 11 AND related_id "
                              "= 9"),
                     1);
    assert_int_equal(qint(db, "SELECT count(*) FROM relations"), 3);
    /* keyless table: one 'note b' removed, the new note references the item */
    assert_int_equal(qint(db, "SELECT count(*) FROM loose WHERE note = 'note b'"), 1);
    assert_int_equal(qint(db, "SELECT item_id FROM loose WHERE note = 'new note'"), 9);
    /* user state untouched */
    assert_int_equal(qint(db, "SELECT view_count FROM settings WHERE id = 1"), 9);
    assert_int_equal(qint(db, "SELECT count(*) FROM settings"), 1);
    /* blobs: cross-schema conditional refs; cloud 3,4 collide -> 7,8 (cloud max 6); cloud 5 maps
     * onto live 4 by natural key; cloud 6 keeps its id and points at stream 4, not at the part
     * that was 4 (renumbered 6) */
    assert_int_equal(qint(db, "SELECT count(*) FROM blobs.blobs"), 7);
    assert_int_equal(qint(db, "SELECT linked_id FROM blobs.blobs WHERE id = 7"), 6);
    assert_int_equal(qint(db, "SELECT linked_id FROM blobs.blobs WHERE id = 8"), 3);
    assert_int_equal(qint(db, "SELECT hex(blob) = 'DD' FROM blobs.blobs WHERE id = 8"), 1);
    assert_int_equal(qint(db, "SELECT linked_id FROM blobs.blobs WHERE id = 6"), 4);
    assert_int_equal(qint(db, "SELECT count(*) FROM blobs.blobs WHERE id = 5"), 0);
    /* sqlite_sequence follows */
    assert_int_equal(qint(db, "SELECT seq FROM sqlite_sequence WHERE name = 'items'"), 11);
    assert_int_equal(qint(db, "SELECT seq FROM sqlite_sequence WHERE name = 'parts'"), 6);
    assert_int_equal(qint(db, "SELECT seq FROM sqlite_sequence WHERE name = 'tags'"), 5);
    assert_int_equal(qint(db, "SELECT seq FROM blobs.sqlite_sequence WHERE name = 'blobs'"), 8);
    sqlite3_close(db);

    /* stats */
    const pb_merge_counts *c = table_counts(&st, "items");
    assert_non_null(c);
    assert_int_equal(c->inserted, 4);
    assert_int_equal(c->remapped, 2);
    assert_int_equal(c->updated, 2);   /* items 4 (title) and 1 (updated_at) */
    assert_int_equal(c->conflicts, 2); /* 5.rating kept live, 1.updated_at cloud won */
    assert_int_equal(c->notfound, 1);  /* item 2 */
    c = table_counts(&st, "sections");
    assert_int_equal(c->natkey_mapped, 1);
    assert_int_equal(c->inserted, 0);
    c = table_counts(&st, "tags");
    assert_int_equal(c->natkey_mapped, 1);
    assert_int_equal(c->inserted, 1);
    assert_int_equal(c->remapped, 1);
    c = table_counts(&st, "parts");
    assert_int_equal(c->inserted, 1);
    assert_int_equal(c->updated, 1);
    assert_int_equal(c->same, 1); /* part 3: the mapped path is the base path */
    c = table_counts(&st, "streams");
    assert_int_equal(c->deleted, 1);
    assert_int_equal(c->conflicts, 1);
    c = table_counts(&st, "media");
    assert_int_equal(c->notfound, 1);
    c = table_counts(&st, "settings");
    assert_int_equal(c->user_state_dropped, 2);
    c = table_counts(&st, "blobs");
    assert_int_equal(c->inserted, 3);
    assert_int_equal(c->remapped, 2);
    assert_int_equal(c->natkey_mapped, 1);
    c = table_counts(&st, "loose");
    assert_int_equal(c->inserted, 1);
    assert_int_equal(c->deleted, 1);
    assert_int_equal(st.total.inserted, 4 + 1 + 1 + 3 + 1 + 3 + 2 + 3 + 1);
    assert_int_equal(st.total.user_state_dropped, 2);
    assert_true(st.ms >= 0);

    /* the listing */
    assert_true(has_act(&acts, "items", SQLITE_INSERT, 6, 10, NULL, PB_RES_REMAPPED));
    assert_true(has_act(&acts, "items", SQLITE_INSERT, 7, 11, NULL, PB_RES_REMAPPED));
    assert_true(has_act(&acts, "items", SQLITE_INSERT, 8, 8, NULL, PB_RES_APPLIED));
    assert_true(has_act(&acts, "tags", SQLITE_INSERT, 3, 4, NULL, PB_RES_NATKEY));
    assert_true(has_act(&acts, "sections", SQLITE_INSERT, 3, 4, NULL, PB_RES_NATKEY));
    assert_true(has_act(&acts, "blobs", SQLITE_INSERT, 5, 4, NULL, PB_RES_NATKEY));
    assert_true(has_act(&acts, "items", SQLITE_UPDATE, 5, 5, "rating", PB_RES_KEPT_LIVE));
    assert_true(has_act(&acts, "items", SQLITE_UPDATE, 1, 1, "updated_at", PB_RES_CLOUD_WON));
    assert_true(has_act(&acts, "items", SQLITE_UPDATE, 2, 2, NULL, PB_RES_NOTFOUND));
    assert_true(has_act(&acts, "streams", SQLITE_DELETE, 2, 2, NULL, PB_RES_CLOUD_WON));
    assert_true(has_act(&acts, "taggings", SQLITE_DELETE, 1, 1, NULL, PB_RES_APPLIED));
    assert_true(has_act(&acts, "settings", SQLITE_UPDATE, 1, 1, NULL, PB_RES_DROPPED_USER));
    assert_true(has_act(&acts, "parts", SQLITE_UPDATE, 3, 3, NULL, PB_RES_SAME));
    assert_false(has_act(&acts, "items", SQLITE_UPDATE, 1, 1, "user_fields", PB_RES_KEPT_LIVE));
    free(acts.a);
}

/* ---------------------------------------------------------------------------------------------
 * Random scenarios
 */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rnext(rng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return r->s;
}

static int rn(rng *r, int n)
{
    return n <= 0 ? 0 : (int)(rnext(r) % (uint64_t)n);
}

/* Choices both sides share, so that they collide on purpose. */
typedef struct shared {
    int part;           /* a base part both give a blob of type 3 */
    int item_a, item_b; /* a base item pair both relate */
    int loose_item;     /* both add loose(loose_item, 'shared') */
} shared;

/* A random row id of `table`; half of the time among its first rows, so that both sides meet. */
static int64_t pick(sqlite3 *db, rng *r, const char *table)
{
    int64_t n = qint(db, "SELECT count(*) FROM %s", table);
    if (n <= 0)
        return 0;
    if (n > 6 && rn(r, 2))
        n = 6;
    return qint(db, "SELECT id FROM %s ORDER BY id LIMIT 1 OFFSET %d", table, rn(r, (int)n));
}

static void gen_base(sqlite3 *db, rng *r, int nitems)
{
    xexec(db, "BEGIN; INSERT INTO sections VALUES(1,'Movies','sec-1'),(2,'Shows','sec-2');");
    for (int i = 1; i <= nitems; i++) {
        int parent = i > 3 && rn(r, 3) == 0 ? 1 + rn(r, i - 1) : 0;
        xexec(db,
              "INSERT INTO items(section_id,parent_id,title,guid,rating,extra,user_fields,"
              "updated_at) VALUES(%d,%s,'title %d','g-%d',%s,%s,'uf',%d)",
              1 + rn(r, 2), parent ? sqlite3_mprintf("%d", parent) : "NULL", i, i,
              rn(r, 4) ? sqlite3_mprintf("%d.5", rn(r, 3)) : "NULL", rn(r, 2) ? "X'0102'" : "NULL",
              i * 10);
        if (rn(r, 10) < 8) {
            xexec(db, "INSERT INTO media(item_id,duration,codec) VALUES(%d,%d,'c%d')", i,
                  100 * (1 + rn(r, 3)), rn(r, 3));
            int64_t m = sqlite3_last_insert_rowid(db);
            xexec(
                db,
                "INSERT INTO parts(media_id,file,hash,size) VALUES(%lld,'/home/f%d.mkv','h%d',%d)",
                (long long)m, i, i, rn(r, 1000));
            int64_t p = sqlite3_last_insert_rowid(db);
            int ns = 1 + rn(r, 3);
            for (int k = 0; k < ns; k++) {
                xexec(db,
                      "INSERT INTO streams(part_id,media_id,kind,url,extra) VALUES(%lld,%lld,%d,"
                      "%s,'e%d')",
                      (long long)p, (long long)m, 1 + k, rn(r, 2) ? "NULL" : "'/home/sub.srt'",
                      rn(r, 3));
                if (rn(r, 4) == 0)
                    xexec(db,
                          "INSERT INTO blobs.blobs(linked_type,linked_id,blob_type,blob) "
                          "VALUES('media_stream',%lld,2,X'5A')",
                          (long long)sqlite3_last_insert_rowid(db));
            }
            if (rn(r, 3) == 0)
                xexec(db,
                      "INSERT INTO blobs.blobs(linked_type,linked_id,blob_type,blob) "
                      "VALUES('media_part',%lld,1,X'5B')",
                      (long long)p);
        }
    }
    for (int k = 1; k <= 8; k++)
        xexec(db, "INSERT INTO tags(tag_type,tag,key) VALUES(%d,'tag%d',%s)", 1 + rn(r, 3), k,
              rn(r, 2) ? sqlite3_mprintf("'k%d'", k) : "NULL");
    for (int k = 0; k < nitems; k++)
        xexec(db, "INSERT INTO taggings(item_id,tag_id,idx) VALUES(%d,%d,%d)", 1 + rn(r, nitems),
              1 + rn(r, 8), rn(r, 3));
    for (int k = 0; k < 8; k++)
        xexec(db, "INSERT OR IGNORE INTO relations VALUES(%d,%d,'k%d')", 1 + rn(r, nitems),
              1 + rn(r, nitems), rn(r, 2));
    for (int k = 0; k < 8; k++)
        xexec(db, "INSERT INTO settings(account_id,guid,view_count) VALUES(%d,'g-%d',%d)",
              1 + rn(r, 2), 1 + rn(r, nitems), rn(r, 5));
    for (int k = 0; k < 10; k++)
        xexec(db, "INSERT INTO loose VALUES(%d,'n%d')", 1 + rn(r, 4), rn(r, 3));
    xexec(db,
          "INSERT INTO vals VALUES(1,'a'),(2,2),(3,3.25),(4,X'00'),(5,NULL);"
          "INSERT INTO kv VALUES('a','1',1),('b','2',2),(NULL,'n1',1),(NULL,'n1',1),(NULL,'n2',3);"
          "COMMIT;");
}

static const char *rating_val(rng *r)
{
    static const char *v[] = {"1.5", "2.5", "NULL", "2"};
    return v[rn(r, 4)];
}

/* Updates and deletes that both sides draw from, on small value domains so that they meet. */
static void mutate_common(sqlite3 *db, rng *r, int cloud)
{
    for (int k = 0; k < 12; k++) {
        int64_t id;
        switch (rn(r, 10)) {
        case 0:
            if ((id = pick(db, r, "items")))
                xexec(db, "UPDATE items SET title = 'title %s%d' WHERE id = %lld",
                      cloud ? "c" : "l", rn(r, 2), (long long)id);
            break;
        case 1:
            if ((id = pick(db, r, "items")))
                xexec(db, "UPDATE items SET rating = %s WHERE id = %lld", rating_val(r),
                      (long long)id);
            break;
        case 2:
            if ((id = pick(db, r, "items")))
                xexec(db, "UPDATE items SET user_fields = 'uf-%s', updated_at = %d WHERE id = %lld",
                      cloud ? "c" : "l", rn(r, 3), (long long)id);
            break;
        case 3:
            if ((id = pick(db, r, "parts")))
                xexec(db, "UPDATE parts SET file = '%s/p%d.mkv', size = %d WHERE id = %lld",
                      cloud ? "/cloud" : "/home", rn(r, 2), rn(r, 2), (long long)id);
            break;
        case 4:
            if ((id = pick(db, r, "streams")))
                xexec(db, "UPDATE streams SET extra = 'x%d' WHERE id = %lld", rn(r, 2),
                      (long long)id);
            break;
        case 5:
            if ((id = pick(db, r, "streams")))
                xexec(db, "DELETE FROM streams WHERE id = %lld", (long long)id);
            break;
        case 6:
            if ((id = pick(db, r, "taggings")))
                xexec(db, "DELETE FROM taggings WHERE id = %lld", (long long)id);
            break;
        case 7:
            if ((id = pick(db, r, "blobs.blobs")))
                xexec(db, "UPDATE blobs.blobs SET blob = X'%02X' WHERE id = %lld", rn(r, 2),
                      (long long)id);
            break;
        case 8:
            if ((id = pick(db, r, "settings")))
                xexec(db, "UPDATE settings SET view_count = view_count + 1 WHERE id = %lld",
                      (long long)id);
            break;
        default:
            if ((id = pick(db, r, "media")))
                xexec(db, "UPDATE media SET duration = %d WHERE id = %lld", 100 * rn(r, 2),
                      (long long)id);
            break;
        }
    }
    if (rn(r, 3) == 0)
        xexec(db, "DELETE FROM items WHERE id = %lld", (long long)pick(db, r, "items"));
    if (rn(r, 3) == 0)
        xexec(db, "DELETE FROM media WHERE id = %lld", (long long)pick(db, r, "media"));
    if (rn(r, 2) == 0)
        xexec(db,
              "DELETE FROM relations WHERE rowid IN (SELECT rowid FROM relations LIMIT 1 "
              "OFFSET %d)",
              rn(r, 4));
    if (rn(r, 2) == 0)
        xexec(db, "DELETE FROM loose WHERE rowid IN (SELECT rowid FROM loose LIMIT 1 OFFSET %d)",
              rn(r, 8));
}

static void mutate_cloud(sqlite3 *db, rng *r, const shared *sh)
{
    xexec(db, "BEGIN");
    int64_t sec = rn(r, 4) == 0 ? (xexec(db, "INSERT INTO sections(name,uuid) VALUES('New','sec-"
                                             "new')"),
                                   sqlite3_last_insert_rowid(db))
                                : 1;
    int nnew = 2 + rn(r, 6);
    int64_t first = 0;
    for (int i = 0; i < nnew; i++) {
        int64_t parent = i && rn(r, 2) ? first + rn(r, i) : (rn(r, 2) ? pick(db, r, "items") : 0);
        xexec(db,
              "INSERT INTO items(section_id,parent_id,title,guid,rating,user_fields,updated_at) "
              "VALUES(%lld,%s,'new %d','g-new-%d',%s,'uf',1)",
              (long long)sec, parent ? sqlite3_mprintf("%lld", (long long)parent) : "NULL", i, i,
              rating_val(r));
        int64_t it = sqlite3_last_insert_rowid(db);
        if (!first)
            first = it;
        xexec(db, "INSERT INTO media(item_id,duration,codec) VALUES(%lld,100,'c')", (long long)it);
        int64_t m = sqlite3_last_insert_rowid(db);
        xexec(db,
              "INSERT INTO parts(media_id,file,hash,size) VALUES(%lld,'/cloud/n%d.mkv','hn%d',"
              "1)",
              (long long)m, i, i);
        int64_t p = sqlite3_last_insert_rowid(db);
        xexec(db,
              "INSERT INTO streams(part_id,media_id,kind,url,extra) VALUES(%lld,%lld,1,NULL,"
              "'n')",
              (long long)p, (long long)m);
        int64_t s = sqlite3_last_insert_rowid(db);
        xexec(db,
              "INSERT INTO blobs.blobs(linked_type,linked_id,blob_type,blob) VALUES('media_part',"
              "%lld,1,X'C1'),('media_stream',%lld,2,X'C2')",
              (long long)p, (long long)s);
        xexec(db, "INSERT INTO taggings(item_id,tag_id,idx) VALUES(%lld,%lld,0)", (long long)it,
              (long long)pick(db, r, "tags"));
        if (rn(r, 2))
            xexec(db, "INSERT INTO loose VALUES(%lld,'new')", (long long)it);
        if (i && rn(r, 2))
            xexec(db, "INSERT OR IGNORE INTO relations VALUES(%lld,%lld,'c')", (long long)it,
                  (long long)first);
        if (rn(r, 2) == 0)
            xexec(db, "UPDATE items SET parent_id = %lld WHERE id = %lld", (long long)it,
                  (long long)pick(db, r, "items"));
    }
    xexec(db, "INSERT INTO tags(tag_type,tag,key) VALUES(2,'shared','ks'),(1,'cloud-only',NULL)");
    int64_t tag = sqlite3_last_insert_rowid(db);
    xexec(db, "INSERT INTO taggings(item_id,tag_id,idx) VALUES(%lld,%lld,1),(%lld,%lld,2)",
          (long long)first, (long long)tag, (long long)pick(db, r, "items"), (long long)tag - 1);
    xexec(db,
          "INSERT INTO blobs.blobs(linked_type,linked_id,blob_type,blob) VALUES('media_part',"
          "%d,3,X'D3')",
          sh->part);
    xexec(db, "INSERT OR REPLACE INTO relations VALUES(%d,%d,'cloud')", sh->item_a, sh->item_b);
    xexec(db, "INSERT INTO loose VALUES(%d,'shared'),(%d,'shared')", sh->loose_item,
          sh->loose_item);
    xexec(db, "INSERT INTO settings(account_id,guid,view_count) VALUES(1,'g-new-0',1)");
    xexec(db,
          "UPDATE kv SET v = 'c%d' WHERE k = 'a'; INSERT INTO kv VALUES('c%d','x',%lld),"
          "(NULL,'n3',%lld),(NULL,'n3',%lld);"
          "DELETE FROM kv WHERE rowid IN (SELECT rowid FROM kv WHERE v = 'n%d' LIMIT 1)",
          rn(r, 2), rn(r, 1000), (long long)first, (long long)first, (long long)first,
          1 + rn(r, 2));
    xexec(db, "INSERT INTO vals VALUES(10, CAST(X'610062' AS TEXT)),(11,'it''s\r\nok'),"
              "(12,-9223372036854775808),(13,9223372036854775807),(14,9e999),(15,-9e999),"
              "(16,1.0000000000000002),(17,X''),(18,''),(19,2.2250738585072014e-308),"
              "(20,4.9406564584124654e-324),(21,'é€😀'),(22,-0.0),(23,0.1),(24,1e300),"
              "(25,'line1\nline2'),(26,'FAIL?');"
              "UPDATE vals SET v = 3.5 WHERE id = 3;");
    mutate_common(db, r, 1);
    xexec(db, "COMMIT");
}

static void mutate_live(sqlite3 *db, rng *r, const shared *sh)
{
    xexec(db, "BEGIN");
    if (rn(r, 4) == 0)
        xexec(db, "INSERT INTO sections(name,uuid) VALUES('Home new','sec-new')");
    int nnew = 1 + rn(r, 4);
    for (int i = 0; i < nnew; i++) {
        xexec(db,
              "INSERT INTO items(section_id,parent_id,title,guid,user_fields,updated_at) "
              "VALUES(NULL,NULL,'live %d','g-live-%d','uf',2)",
              i, i);
        if (rn(r, 2))
            xexec(db,
                  "INSERT INTO parts(media_id,file,hash,size) VALUES(%lld,'/home/l%d.mkv','hl',"
                  "2)",
                  (long long)pick(db, r, "media"), i);
    }
    for (int i = rn(r, 3); i > 0; i--)
        xexec(db, "INSERT INTO streams(part_id,media_id,kind,url,extra) VALUES(1,1,9,NULL,'l')");
    xexec(db, "INSERT INTO tags(tag_type,tag,key) VALUES(1,'live-only',NULL)");
    if (rn(r, 3))
        xexec(db, "INSERT INTO tags(tag_type,tag,key) VALUES(2,'shared','ks')");
    if (rn(r, 3))
        xexec(db,
              "INSERT INTO blobs.blobs(linked_type,linked_id,blob_type,blob) VALUES('media_"
              "part',%d,3,X'E3')",
              sh->part);
    xexec(db, "INSERT INTO blobs.blobs(linked_type,linked_id,blob_type,blob) VALUES('media_part',"
              "1,7,X'E7')");
    if (rn(r, 2))
        xexec(db, "INSERT OR REPLACE INTO relations VALUES(%d,%d,'%s')", sh->item_a, sh->item_b,
              rn(r, 2) ? "cloud" : "live");
    if (rn(r, 2))
        xexec(db, "INSERT INTO loose VALUES(%d,'shared')", sh->loose_item);
    xexec(db, "INSERT INTO settings(account_id,guid,view_count) VALUES(2,'g-live',7)");
    xexec(db,
          "INSERT INTO kv VALUES('l%d','y',1),(NULL,'n%d',2);"
          "DELETE FROM kv WHERE rowid IN (SELECT rowid FROM kv WHERE v = 'n%d' LIMIT 1)",
          rn(r, 1000), 1 + rn(r, 3), 1 + rn(r, 2));
    mutate_common(db, r, 0);
    xexec(db, "COMMIT");
}

static void build_random(scen *s, uint64_t seed, int nitems)
{
    rng r = {seed * 0x9E3779B97F4A7C15ull + 1};
    scen_init(s, "merge-rand");
    sqlite3 *db = open_pair(s->base, s->base_b);
    gen_base(db, &r, nitems);
    shared sh;
    sh.part = (int)pick(db, &r, "parts");
    sh.item_a = (int)pick(db, &r, "items");
    sh.item_b = (int)pick(db, &r, "items");
    sh.loose_item = 1 + rn(&r, 4);
    sqlite3_close(db);
    scen_fork(s);
    db = open_pair(s->cloud, s->cloud_b);
    mutate_cloud(db, &r, &sh);
    sqlite3_close(db);
    db = open_pair(s->live, s->live_b);
    mutate_live(db, &r, &sh);
    sqlite3_close(db);
    scen_changesets(s);
}

/* ---------------------------------------------------------------------------------------------
 * The oracle: the merge.h rules, row by row over the base, cloud and live DBs
 */

typedef struct orow {
    sqlite3_value **raw; /* as stored */
    sqlite3_value **v;   /* text mapped (base and cloud) */
    int64_t id;          /* the integer key (IPK tables) */
} orow;

typedef struct otab {
    const char *schema, *name;
    int cls;
    int ncol, ipk, npk, keyless;
    char cols[16][32];
    int pk[16];
    orow *b, *c, *l;
    int nb, nc, nl;
} otab;

typedef struct oplan {
    const char *schema, *table;
    int64_t old, new_id;
    int kind; /* 0 ident, 1 renumber, 2 natural key */
} oplan;

typedef struct oracle {
    sqlite3 *eq; /* a scratch connection answering `?1 IS ?2` */
    sqlite3_stmt *is;
    otab t[16];
    int nt;
    oplan *plan;
    int nplan, capplan;
    pb_merge_counts n;
} oracle;

static int veq(oracle *o, sqlite3_value *a, sqlite3_value *b)
{
    sqlite3_bind_value(o->is, 1, a);
    sqlite3_bind_value(o->is, 2, b);
    assert_int_equal(sqlite3_step(o->is), SQLITE_ROW);
    int r = sqlite3_column_int(o->is, 0);
    sqlite3_reset(o->is);
    return r;
}

static sqlite3_value *map_value(const otab *t, int col, sqlite3_value *v)
{
    char *out = NULL;
    size_t on = 0;
    if (sqlite3_value_type(v) == SQLITE_TEXT &&
        t_map(t->schema, t->name, t->cols[col], (const char *)sqlite3_value_text(v),
              (size_t)sqlite3_value_bytes(v), &out, &on, NULL) == 1) {
        /* a mapped text value, through a scratch statement */
        sqlite3 *m;
        sqlite3_open(":memory:", &m);
        sqlite3_stmt *st;
        sqlite3_prepare_v2(m, "SELECT ?1", -1, &st, NULL);
        sqlite3_bind_text(st, 1, out, (int)on, SQLITE_TRANSIENT);
        sqlite3_step(st);
        sqlite3_value *r = sqlite3_value_dup(sqlite3_column_value(st, 0));
        sqlite3_finalize(st);
        sqlite3_close(m);
        free(out);
        return r;
    }
    return sqlite3_value_dup(v);
}

static void load_rows(otab *t, sqlite3 *db, const char *schema, orow **rows, int *n, int map)
{
    sqlite3_stmt *st = NULL;
    char *sql = sqlite3_mprintf("SELECT * FROM \"%w\".\"%w\" ORDER BY rowid", schema, t->name);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_free(sql);
    *rows = NULL;
    *n = 0;
    int cap = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            *rows = realloc(*rows, sizeof(orow) * (size_t)cap);
        }
        orow *r = &(*rows)[(*n)++];
        r->raw = calloc((size_t)t->ncol, sizeof(*r->raw));
        r->v = calloc((size_t)t->ncol, sizeof(*r->v));
        for (int i = 0; i < t->ncol; i++) {
            r->raw[i] = sqlite3_value_dup(sqlite3_column_value(st, i));
            r->v[i] = map ? map_value(t, i, r->raw[i]) : sqlite3_value_dup(r->raw[i]);
        }
        r->id = t->ipk >= 0 ? sqlite3_value_int64(r->raw[t->ipk]) : 0;
    }
    sqlite3_finalize(st);
}

static void free_rows(otab *t, orow *rows, int n)
{
    for (int k = 0; k < n; k++) {
        for (int i = 0; i < t->ncol; i++) {
            sqlite3_value_free(rows[k].raw[i]);
            sqlite3_value_free(rows[k].v[i]);
        }
        free(rows[k].raw);
        free(rows[k].v);
    }
    free(rows);
}

/* Row of `rows` whose key equals `key`'s (values `kv`), or NULL. */
static orow *find_key(oracle *o, otab *t, orow *rows, int n, sqlite3_value **kv)
{
    for (int k = 0; k < n; k++) {
        int same = 1;
        for (int i = 0; i < t->ncol && same; i++)
            if (t->pk[i])
                same = veq(o, rows[k].raw[i], kv[i]);
        if (same)
            return &rows[k];
    }
    return NULL;
}

static int rows_equal(oracle *o, otab *t, sqlite3_value **a, sqlite3_value **b)
{
    for (int i = 0; i < t->ncol; i++)
        if (!veq(o, a[i], b[i]))
            return 0;
    return 1;
}

static oplan *plan_find(oracle *o, const char *schema, const char *table, int64_t old)
{
    for (int i = 0; i < o->nplan; i++)
        if (o->plan[i].old == old && strcmp(o->plan[i].table, table) == 0 &&
            strcmp(o->plan[i].schema, schema) == 0)
            return &o->plan[i];
    return NULL;
}

static int64_t remap(oracle *o, const char *schema, const char *table, int64_t old)
{
    oplan *p = plan_find(o, schema, table, old);
    return p ? p->new_id : old;
}

/* Remapped copy of the integer `v` in column `col` of a row whose condition column values come
 * from `when` (the cloud row, or the live row for an update not changing it). */
static int64_t ref_value(oracle *o, otab *t, int col, int64_t v, sqlite3_value **when)
{
    for (size_t k = 0; k < sizeof(T_REFS) / sizeof(T_REFS[0]); k++) {
        const pb_merge_ref *r = &T_REFS[k];
        if (strcmp(r->schema, t->schema) || strcmp(r->table, t->name) ||
            strcmp(r->column, t->cols[col]))
            continue;
        if (r->when_column) {
            int wc = -1;
            for (int i = 0; i < t->ncol; i++)
                if (strcmp(t->cols[i], r->when_column) == 0)
                    wc = i;
            if (wc < 0 || !when || sqlite3_value_type(when[wc]) != SQLITE_TEXT ||
                strcmp((const char *)sqlite3_value_text(when[wc]), r->when_value) != 0)
                continue;
        }
        return remap(o, r->target_schema, r->target_table, v);
    }
    return v;
}

static int is_ref(otab *t, int col)
{
    for (size_t k = 0; k < sizeof(T_REFS) / sizeof(T_REFS[0]); k++)
        if (!strcmp(T_REFS[k].schema, t->schema) && !strcmp(T_REFS[k].table, t->name) &&
            !strcmp(T_REFS[k].column, t->cols[col]))
            return 1;
    return 0;
}

/* Values of a cloud row with its refs remapped (the own integer key excepted), into `out`. */
/* A protected integer value v (sqlite3_value_dup of a SELECT on scratch; free with
 * sqlite3_value_free). */
static sqlite3_value *int_value(sqlite3 *scratch, int64_t v)
{
    sqlite3_stmt *st;
    sqlite3_prepare_v2(scratch, "SELECT ?1", -1, &st, NULL);
    sqlite3_bind_int64(st, 1, v);
    sqlite3_step(st);
    sqlite3_value *out = sqlite3_value_dup(sqlite3_column_value(st, 0));
    sqlite3_finalize(st);
    return out;
}

static void remapped_row(oracle *o, otab *t, sqlite3 *scratch, sqlite3_value **src,
                         sqlite3_value **out)
{
    for (int i = 0; i < t->ncol; i++) {
        if (i != t->ipk && is_ref(t, i) && sqlite3_value_type(src[i]) == SQLITE_INTEGER) {
            out[i] = int_value(scratch, ref_value(o, t, i, sqlite3_value_int64(src[i]), src));
        } else {
            out[i] = sqlite3_value_dup(src[i]);
        }
    }
}

static void plan_add(oracle *o, otab *t, int64_t old, int64_t to, int kind)
{
    if (o->nplan == o->capplan) {
        o->capplan = o->capplan ? o->capplan * 2 : 64;
        o->plan = realloc(o->plan, sizeof(oplan) * (size_t)o->capplan);
    }
    oplan p = {t->schema, t->name, old, to, kind};
    o->plan[o->nplan++] = p;
}

/* The live row matching the natural key `nk` of cloud values `v`: its id or 0. */
static int64_t natkey_live(oracle *o, otab *t, const pb_merge_natkey *nk, sqlite3_value **v)
{
    int64_t best = 0;
    for (int k = 0; k < t->nl; k++) {
        int same = 1;
        for (int j = 0; nk->columns[j] && same; j++)
            for (int i = 0; i < t->ncol; i++)
                if (strcmp(t->cols[i], nk->columns[j]) == 0)
                    same = veq(o, t->l[k].raw[i], v[i]);
        if (same && (!best || t->l[k].id < best))
            best = t->l[k].id;
    }
    return best;
}

static int natkey_has_ref(otab *t, const pb_merge_natkey *nk)
{
    for (int j = 0; nk->columns[j]; j++)
        for (int i = 0; i < t->ncol; i++)
            if (strcmp(t->cols[i], nk->columns[j]) == 0 && is_ref(t, i))
                return 1;
    return 0;
}

static const pb_merge_natkey *natkey_of(otab *t)
{
    for (size_t k = 0; k < sizeof(T_NAT) / sizeof(T_NAT[0]); k++)
        if (!strcmp(T_NAT[k].schema, t->schema) && !strcmp(T_NAT[k].table, t->name))
            return &T_NAT[k];
    return NULL;
}

/* The largest id that a written cloud value (inserted row, changed column) of any ref column
 * pointing at `target` names, whatever the ref's condition. */
static int64_t oracle_refmax(oracle *o, otab *target)
{
    int64_t mx = 0;
    for (int si = 0; si < o->nt; si++) {
        otab *s = &o->t[si];
        if (s->cls != PB_CLASS_LIBRARY)
            continue;
        for (size_t k = 0; k < sizeof(T_REFS) / sizeof(T_REFS[0]); k++) {
            const pb_merge_ref *r = &T_REFS[k];
            if (strcmp(r->schema, s->schema) || strcmp(r->table, s->name) ||
                strcmp(r->target_schema, target->schema) || strcmp(r->target_table, target->name))
                continue;
            int col = -1;
            for (int i = 0; i < s->ncol; i++)
                if (!strcmp(s->cols[i], r->column))
                    col = i;
            if (col < 0)
                continue;
            for (int j = 0; j < s->nc; j++) {
                orow *c = &s->c[j];
                orow *b = find_key(o, s, s->b, s->nb, c->raw);
                if ((!b && col == s->ipk) || (b && veq(o, b->raw[col], c->raw[col])) ||
                    sqlite3_value_type(c->raw[col]) != SQLITE_INTEGER)
                    continue;
                int64_t v = sqlite3_value_int64(c->raw[col]);
                mx = v > mx ? v : mx;
            }
        }
    }
    return mx;
}

static void oracle_plan(oracle *o, sqlite3 *live, sqlite3 *scratch)
{
    /* non-deferred natural keys, collisions */
    for (int ti = 0; ti < o->nt; ti++) {
        otab *t = &o->t[ti];
        if (t->cls != PB_CLASS_LIBRARY || t->ipk < 0)
            continue;
        const pb_merge_natkey *nk = natkey_of(t);
        int64_t maxins = 0, next;
        int npend = 0;
        for (int k = 0; k < t->nc; k++) {
            orow *c = &t->c[k];
            if (find_key(o, t, t->b, t->nb, c->raw))
                continue;
            maxins = c->id > maxins ? c->id : maxins;
            int64_t m = nk && !natkey_has_ref(t, nk) ? natkey_live(o, t, nk, c->v) : 0;
            if (m)
                plan_add(o, t, c->id, m, 2);
            else if (find_key(o, t, t->l, t->nl, c->raw))
                plan_add(o, t, c->id, 0, 1), npend++;
        }
        if (!npend)
            continue;
        next = maxins;
        int64_t lmax =
            qint(live, "SELECT coalesce(max(id), 0) FROM \"%w\".\"%w\"", t->schema, t->name);
        int64_t seq = qint(live,
                           "SELECT coalesce((SELECT seq FROM \"%w\".sqlite_sequence WHERE "
                           "name = %Q), 0)",
                           t->schema, t->name);
        int64_t refmax = oracle_refmax(o, t);
        next = lmax > next ? lmax : next;
        next = seq > next ? seq : next;
        next = refmax > next ? refmax : next;
        for (int k = 0; k < t->nc; k++) { /* cloud rows come in id order */
            oplan *p = plan_find(o, t->schema, t->name, t->c[k].id);
            if (p && p->kind == 1 && !find_key(o, t, t->b, t->nb, t->c[k].raw))
                p->new_id = ++next;
        }
    }
    /* natural keys containing refs, once the refs are planned */
    for (int ti = 0; ti < o->nt; ti++) {
        otab *t = &o->t[ti];
        const pb_merge_natkey *nk = natkey_of(t);
        if (t->cls != PB_CLASS_LIBRARY || t->ipk < 0 || !nk || !natkey_has_ref(t, nk))
            continue;
        for (int k = 0; k < t->nc; k++) {
            orow *c = &t->c[k];
            if (find_key(o, t, t->b, t->nb, c->raw))
                continue;
            sqlite3_value *rv[16];
            remapped_row(o, t, scratch, c->v, rv);
            int64_t m = natkey_live(o, t, nk, rv);
            for (int i = 0; i < t->ncol; i++)
                sqlite3_value_free(rv[i]);
            if (!m)
                continue;
            oplan *p = plan_find(o, t->schema, t->name, c->id);
            if (p) {
                p->kind = 2;
                p->new_id = m;
            } else {
                plan_add(o, t, c->id, m, 2);
            }
        }
    }
}

static void bind_row(sqlite3_stmt *st, int first, sqlite3_value **v, int n)
{
    for (int i = 0; i < n; i++)
        sqlite3_bind_value(st, first + i, v[i]);
}

static void exp_exec_row(sqlite3 *exp, otab *t, const char *verb, sqlite3_value **v)
{
    sqlite3_str *s = sqlite3_str_new(exp);
    if (!strcmp(verb, "insert")) {
        sqlite3_str_appendf(s, "INSERT INTO \"%w\".\"%w\" VALUES(", t->schema, t->name);
        for (int i = 0; i < t->ncol; i++)
            sqlite3_str_appendf(s, "%s?%d", i ? "," : "", i + 1);
        sqlite3_str_appendall(s, ")");
    } else if (t->keyless) {
        sqlite3_str_appendf(s,
                            "DELETE FROM \"%w\".\"%w\" WHERE rowid = (SELECT rowid FROM "
                            "\"%w\".\"%w\" WHERE ",
                            t->schema, t->name, t->schema, t->name);
        for (int i = 0; i < t->ncol; i++)
            sqlite3_str_appendf(s, "%s\"%w\" IS ?%d", i ? " AND " : "", t->cols[i], i + 1);
        sqlite3_str_appendall(s, " LIMIT 1)");
    } else {
        sqlite3_str_appendf(s, "DELETE FROM \"%w\".\"%w\" WHERE ", t->schema, t->name);
        int n = 0;
        for (int i = 0; i < t->ncol; i++)
            if (t->pk[i])
                sqlite3_str_appendf(s, "%s\"%w\" = ?%d", n++ ? " AND " : "", t->cols[i], i + 1);
    }
    char *sql = sqlite3_str_finish(s);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(exp, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("oracle: %s: %s", sqlite3_errmsg(exp), sql);
    sqlite3_free(sql);
    bind_row(st, 1, v, t->ncol);
    if (sqlite3_step(st) != SQLITE_DONE)
        fail_msg("oracle write %s.%s: %s", t->schema, t->name, sqlite3_errmsg(exp));
    sqlite3_finalize(st);
}

static void exp_set(sqlite3 *exp, otab *t, int col, sqlite3_value *v, sqlite3_value **key)
{
    sqlite3_str *s = sqlite3_str_new(exp);
    sqlite3_str_appendf(s, "UPDATE \"%w\".\"%w\" SET \"%w\" = ?1 WHERE ", t->schema, t->name,
                        t->cols[col]);
    int n = 0;
    for (int i = 0; i < t->ncol; i++)
        if (t->pk[i])
            sqlite3_str_appendf(s, "%s\"%w\" = ?%d", n++ ? " AND " : "", t->cols[i], i + 2);
    char *sql = sqlite3_str_finish(s);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(exp, sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_free(sql);
    sqlite3_bind_value(st, 1, v);
    bind_row(st, 2, key, t->ncol);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

static int64_t exp_count(sqlite3 *exp, otab *t, sqlite3_value **v)
{
    sqlite3_str *s = sqlite3_str_new(exp);
    sqlite3_str_appendf(s, "SELECT count(*) FROM \"%w\".\"%w\" WHERE ", t->schema, t->name);
    for (int i = 0; i < t->ncol; i++)
        sqlite3_str_appendf(s, "%s\"%w\" IS ?%d", i ? " AND " : "", t->cols[i], i + 1);
    char *sql = sqlite3_str_finish(s);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(exp, sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_free(sql);
    bind_row(st, 1, v, t->ncol);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* Per-column decision of a cloud row `cv` (remapped) against live `lv`, base `bv` (NULL for an
 * insert onto an existing key); `changed[i]` says which columns the changeset carries. */
static void oracle_columns(oracle *o, sqlite3 *exp, otab *t, sqlite3_value **cv, sqlite3_value **bv,
                           sqlite3_value **lv, const int *changed)
{
    int nset = 0, nconf = 0;
    for (int i = 0; i < t->ncol; i++) {
        if (t->pk[i] || !changed[i])
            continue;
        int rule = t_rule(t->schema, t->name, t->cols[i], NULL);
        if (rule == PB_COL_KEEP_LIVE)
            continue;
        if (bv && veq(o, cv[i], bv[i]))
            continue;
        if (veq(o, lv[i], cv[i]))
            continue;
        int live_is_base = bv && veq(o, lv[i], bv[i]);
        if (live_is_base || rule == PB_COL_TAKE_CLOUD) {
            exp_set(exp, t, i, cv[i], lv);
            nset++;
            if (!live_is_base)
                nconf++;
        } else {
            nconf++;
        }
    }
    o->n.conflicts += (uint64_t)nconf;
    if (nset)
        o->n.updated++;
    else if (!nconf)
        o->n.same++;
}

/* The live row the change of base row b applies to; NULL, counted as dropped user state or as
 * not found, when there is none to change. */
static orow *live_row_for(oracle *o, otab *t, orow *b)
{
    if (t->cls == PB_CLASS_USER) {
        o->n.user_state_dropped++;
        return NULL;
    }
    orow *l = find_key(o, t, t->l, t->nl, b->v);
    if (!l)
        o->n.notfound++;
    return l;
}

static void oracle_table(oracle *o, sqlite3 *exp, sqlite3 *scratch, otab *t)
{
    if (t->keyless) {
        /* surplus copies: cloud minus base by identical raw rows */
        for (int pass = 0; pass < 2; pass++) {
            orow *from = pass ? t->c : t->b, *other = pass ? t->b : t->c;
            int nfrom = pass ? t->nc : t->nb, nother = pass ? t->nb : t->nc;
            for (int k = 0; k < nfrom; k++) {
                int before = 0, in_from = 0, in_other = 0;
                for (int j = 0; j < k; j++)
                    before += rows_equal(o, t, from[j].raw, from[k].raw);
                if (before)
                    continue; /* handle each distinct row once */
                for (int j = 0; j < nfrom; j++)
                    in_from += rows_equal(o, t, from[j].raw, from[k].raw);
                for (int j = 0; j < nother; j++)
                    in_other += rows_equal(o, t, other[j].raw, from[k].raw);
                for (int x = 0; x < in_from - in_other; x++) {
                    if (pass == 0) { /* delete */
                        if (exp_count(exp, t, from[k].v) > 0) {
                            exp_exec_row(exp, t, "delete", from[k].v);
                            o->n.deleted++;
                        } else {
                            o->n.notfound++;
                        }
                    } else {
                        sqlite3_value *rv[16];
                        remapped_row(o, t, scratch, from[k].v, rv);
                        if (exp_count(exp, t, rv) > 0) {
                            o->n.same++;
                        } else {
                            exp_exec_row(exp, t, "insert", rv);
                            o->n.inserted++;
                        }
                        for (int i = 0; i < t->ncol; i++)
                            sqlite3_value_free(rv[i]);
                    }
                }
            }
        }
        return;
    }
    /* deletes */
    for (int k = 0; k < t->nb; k++) {
        orow *b = &t->b[k];
        if (find_key(o, t, t->c, t->nc, b->raw))
            continue;
        orow *l = live_row_for(o, t, b);
        if (!l)
            continue;
        if (!rows_equal(o, t, l->raw, b->v))
            o->n.conflicts++;
        exp_exec_row(exp, t, "delete", b->v);
        o->n.deleted++;
    }
    /* updates and inserts */
    for (int k = 0; k < t->nc; k++) {
        orow *c = &t->c[k];
        orow *b = find_key(o, t, t->b, t->nb, c->raw);
        if (b) {
            if (rows_equal(o, t, b->raw, c->raw))
                continue; /* no record */
            orow *l = live_row_for(o, t, b);
            if (!l)
                continue;
            int changed[16];
            sqlite3_value *when[16], *cv[16];
            for (int i = 0; i < t->ncol; i++) {
                changed[i] = !veq(o, b->raw[i], c->raw[i]);
                when[i] = changed[i] ? c->v[i] : l->raw[i];
            }
            for (int i = 0; i < t->ncol; i++) {
                if (i != t->ipk && is_ref(t, i) && sqlite3_value_type(c->v[i]) == SQLITE_INTEGER &&
                    changed[i]) {
                    cv[i] =
                        int_value(scratch, ref_value(o, t, i, sqlite3_value_int64(c->v[i]), when));
                } else {
                    cv[i] = sqlite3_value_dup(c->v[i]);
                }
            }
            oracle_columns(o, exp, t, cv, b->v, l->raw, changed);
            for (int i = 0; i < t->ncol; i++)
                sqlite3_value_free(cv[i]);
            continue;
        }
        if (t->cls == PB_CLASS_USER) {
            o->n.user_state_dropped++;
            continue;
        }
        sqlite3_value *rv[16];
        remapped_row(o, t, scratch, c->v, rv);
        if (t->ipk >= 0) {
            oplan *p = plan_find(o, t->schema, t->name, c->id);
            if (p && p->kind == 2) {
                o->n.natkey_mapped++;
            } else {
                if (p) {
                    sqlite3_stmt *st;
                    sqlite3_prepare_v2(scratch, "SELECT ?1", -1, &st, NULL);
                    sqlite3_bind_int64(st, 1, p->new_id);
                    sqlite3_step(st);
                    sqlite3_value_free(rv[t->ipk]);
                    rv[t->ipk] = sqlite3_value_dup(sqlite3_column_value(st, 0));
                    sqlite3_finalize(st);
                    o->n.remapped++;
                }
                exp_exec_row(exp, t, "insert", rv);
                o->n.inserted++;
            }
        } else {
            orow *l = find_key(o, t, t->l, t->nl, rv);
            if (l) {
                int changed[16];
                for (int i = 0; i < t->ncol; i++)
                    changed[i] = 1;
                oracle_columns(o, exp, t, rv, NULL, l->raw, changed);
            } else {
                exp_exec_row(exp, t, "insert", rv);
                o->n.inserted++;
            }
        }
        for (int i = 0; i < t->ncol; i++)
            sqlite3_value_free(rv[i]);
    }
}

/* Builds the expected merge result into exp.db/exp_blobs.db (copies of live) and its counts. */
static void oracle_run(scen *s, const char *exp_path, const char *exp_b, pb_merge_counts *counts)
{
    oracle o;
    memset(&o, 0, sizeof(o));
    sqlite3_open(":memory:", &o.eq);
    assert_int_equal(sqlite3_prepare_v2(o.eq, "SELECT ?1 IS ?2", -1, &o.is, NULL), SQLITE_OK);
    sqlite3 *base = open_pair(s->base, s->base_b), *cloud = open_pair(s->cloud, s->cloud_b),
            *live = open_pair(s->live, s->live_b);
    const char *names[] = {"sections",  "items",    "media", "parts", "streams", "tags", "taggings",
                           "relations", "settings", "loose", "vals",  "kv",      NULL};
    for (int i = 0; names[i] || o.nt == i; i++) {
        otab *t = &o.t[o.nt++];
        t->schema = names[i] ? "main" : "blobs";
        t->name = names[i] ? names[i] : "blobs";
        t->cls = t_class(t->schema, t->name, NULL);
        t->ipk = -1;
        sqlite3_stmt *st;
        char *sql = sqlite3_mprintf("SELECT name, type, pk FROM pragma_table_info(%Q, %Q) ORDER "
                                    "BY cid",
                                    t->name, t->schema);
        assert_int_equal(sqlite3_prepare_v2(live, sql, -1, &st, NULL), SQLITE_OK);
        sqlite3_free(sql);
        while (sqlite3_step(st) == SQLITE_ROW) {
            snprintf(t->cols[t->ncol], 32, "%s", sqlite3_column_text(st, 0));
            t->pk[t->ncol] = sqlite3_column_int(st, 2) > 0;
            t->npk += t->pk[t->ncol];
            if (t->pk[t->ncol] && !strcmp((const char *)sqlite3_column_text(st, 1), "INTEGER"))
                t->ipk = t->ncol;
            t->ncol++;
        }
        sqlite3_finalize(st);
        if (t->npk != 1)
            t->ipk = -1;
        t->keyless = t->npk == 0;
        for (int k = 0; names[i] && MAIN_NOPK[k]; k++)
            t->keyless |= strcmp(MAIN_NOPK[k], names[i]) == 0;
        if (t->keyless)
            for (int c = 0; c < t->ncol; c++)
                t->pk[c] = 1;
        load_rows(t, base, t->schema, &t->b, &t->nb, 1);
        load_rows(t, cloud, t->schema, &t->c, &t->nc, 1);
        load_rows(t, live, t->schema, &t->l, &t->nl, 0);
        if (!names[i])
            break;
    }
    oracle_plan(&o, live, o.eq);
    sqlite3_close(base);
    sqlite3_close(cloud);
    sqlite3_close(live);

    copy_file(s->live, exp_path);
    copy_file(s->live_b, exp_b);
    sqlite3 *exp = open_pair(exp_path, exp_b);
    xexec(exp, "BEGIN");
    for (int i = 0; i < o.nt; i++)
        oracle_table(&o, exp, o.eq, &o.t[i]);
    xexec(exp, "COMMIT");
    sqlite3_close(exp);
    *counts = o.n;
    for (int i = 0; i < o.nt; i++) {
        free_rows(&o.t[i], o.t[i].b, o.t[i].nb);
        free_rows(&o.t[i], o.t[i].c, o.t[i].nc);
        free_rows(&o.t[i], o.t[i].l, o.t[i].nl);
    }
    free(o.plan);
    sqlite3_finalize(o.is);
    sqlite3_close(o.eq);
}

static void check_counts(const pb_merge_counts *got, const pb_merge_counts *want, uint64_t seed)
{
#define C(f)                                                                                       \
    if (got->f != want->f)                                                                         \
    fail_msg("seed %llu: %s = %llu, oracle %llu", (unsigned long long)seed, #f,                    \
             (unsigned long long)got->f, (unsigned long long)want->f)
    C(inserted);
    C(updated);
    C(deleted);
    C(conflicts);
    C(remapped);
    C(natkey_mapped);
    C(user_state_dropped);
    C(notfound);
    C(same);
#undef C
}

/* The listing agrees with the counts; the per-table counts add up to the totals. */
static void check_listing(const alist *l, const pb_merge_stats *st)
{
    uint64_t n[9] = {0}, written = 0;
    for (size_t i = 0; i < l->n; i++) {
        n[l->a[i].res]++;
        if (l->a[i].res == PB_RES_APPLIED || l->a[i].res == PB_RES_REMAPPED ||
            (l->a[i].res == PB_RES_CLOUD_WON && !l->a[i].column[0]))
            written++;
    }
    const pb_merge_counts *t = &st->total;
    assert_int_equal(n[PB_RES_REMAPPED], t->remapped);
    assert_int_equal(n[PB_RES_NATKEY], t->natkey_mapped);
    assert_int_equal(n[PB_RES_NOTFOUND], t->notfound);
    assert_int_equal(n[PB_RES_SAME], t->same);
    assert_int_equal(n[PB_RES_DROPPED_USER], t->user_state_dropped);
    assert_int_equal(n[PB_RES_KEPT_LIVE] + n[PB_RES_CLOUD_WON], t->conflicts);
    assert_int_equal(written, t->inserted + t->updated + t->deleted);
    pb_merge_counts sum;
    memset(&sum, 0, sizeof(sum));
    for (unsigned i = 0; i < st->ntables; i++) {
        const pb_merge_counts *c = &st->tables[i].c;
        sum.inserted += c->inserted;
        sum.updated += c->updated;
        sum.deleted += c->deleted;
        sum.conflicts += c->conflicts;
        sum.same += c->same;
        sum.notfound += c->notfound;
    }
    assert_int_equal(sum.inserted, t->inserted);
    assert_int_equal(sum.updated, t->updated);
    assert_int_equal(sum.deleted, t->deleted);
    assert_int_equal(sum.conflicts, t->conflicts);
    assert_int_equal(sum.same, t->same);
    assert_int_equal(sum.notfound, t->notfound);
}

/* Runs the oracle into <dir>/exp.db and exp_blobs.db: its counts in want, the content dumps of
 * the merged pair (got) and of the oracle's (wantd), both the caller's to free. */
static void oracle_dumps(scen *s, pb_merge_counts *want, char **got, char **wantd)
{
    char exp[PATH_MAX], exp_b[PATH_MAX];
    snprintf(exp, sizeof(exp), "%s/exp.db", s->dir);
    snprintf(exp_b, sizeof(exp_b), "%s/exp_blobs.db", s->dir);
    oracle_run(s, exp, exp_b, want);
    *got = dump_files(s->work, s->work_b);
    *wantd = dump_files(exp, exp_b);
}

static void test_oracle_fixed(void **state)
{
    (void)state;
    scen s;
    build_fixed(&s);
    pb_merge_options o = PB_MERGE_OPTIONS_INIT;
    pb_merge_stats st;
    pb_error e = PB_ERROR_INIT;
    assert_int_equal(scen_merge(&s, &o, &st, &e), 0);
    pb_merge_counts want;
    char *got, *wantd;
    oracle_dumps(&s, &want, &got, &wantd);
    assert_dump_equal(got, wantd, "fixed scenario vs oracle");
    check_counts(&st.total, &want, 0);
    free(got);
    free(wantd);
}

static void random_vs_oracle(int seeds)
{
    uint64_t totals[9] = {0};
    for (int seed = 1; seed <= seeds; seed++) {
        scen s;
        build_random(&s, (uint64_t)seed, 20 + seed % 40);
        alist acts = {0};
        pb_merge_stats st;
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "seed %d: ", seed);
        merge_listed(&s, &acts, &st, prefix);
        pb_merge_counts want;
        char *got, *wantd;
        oracle_dumps(&s, &want, &got, &wantd);
        char what[1200];
        snprintf(what, sizeof(what), "seed %d (%s)", seed, s.dir);
        assert_dump_equal(got, wantd, what);
        check_counts(&st.total, &want, (uint64_t)seed);
        check_listing(&acts, &st);
        totals[0] += st.total.remapped;
        totals[1] += st.total.natkey_mapped;
        totals[2] += st.total.conflicts;
        totals[3] += st.total.notfound;
        totals[4] += st.total.same;
        totals[5] += st.total.inserted + st.total.updated + st.total.deleted;
        free(got);
        free(wantd);
        free(acts.a);
        tu_sh("rm -rf '%s'", s.dir);
    }
    printf("random: %d seeds, %llu remapped, %llu natkey, %llu conflicts, %llu notfound, %llu "
           "same, %llu written\n",
           seeds, (unsigned long long)totals[0], (unsigned long long)totals[1],
           (unsigned long long)totals[2], (unsigned long long)totals[3],
           (unsigned long long)totals[4], (unsigned long long)totals[5]);
    /* the generator does reach every path */
    for (int i = 0; i < 6; i++)
        assert_true(totals[i] > 0);
}

static void test_random_vs_oracle(void **state)
{
    (void)state;
    random_vs_oracle(getenv("PB_MERGE_SEEDS") ? atoi(getenv("PB_MERGE_SEEDS")) : 60);
}

/* The same with the changesets of our own diff (sqldiff/diff.c): the real pipeline. */
static void test_random_ourdiff(void **state)
{
    (void)state;
    g_ourdiff = 1;
    random_vs_oracle(getenv("PB_MERGE_SEEDS") ? atoi(getenv("PB_MERGE_SEEDS")) / 2 : 30);
    g_ourdiff = 0;
}

/* ---------------------------------------------------------------------------------------------
 * Dry run and errors: nothing written
 */

static void test_dry_run(void **state)
{
    (void)state;
    scen s;
    build_fixed(&s);
    pb_merge_options o = PB_MERGE_OPTIONS_INIT;
    pb_merge_stats real, dry;
    pb_error e = PB_ERROR_INIT;
    assert_int_equal(scen_merge(&s, &o, &real, &e), 0);
    char *before = dump_files(s.live, s.live_b);
    copy_file(s.live, s.work);
    copy_file(s.live_b, s.work_b);
    o.dry_run = 1;
    assert_int_equal(merge_into(s.work, s.work_b, s.cs, s.cs_b, &o, &dry, &e), 0);
    char *after = dump_files(s.work, s.work_b);
    assert_dump_equal(after, before, "dry run");
    assert_memory_equal(&dry.total, &real.total, sizeof(real.total));
    assert_int_equal(dry.ntables, real.ntables);
    /* and the temp plan is gone: a second merge on the same connection works */
    sqlite3 *db = open_pair(s.work, s.work_b);
    pb_merge_input in[2] = {{"main", s.cs}, {"blobs", s.cs_b}};
    pb_merge_policy pol = t_policy();
    assert_int_equal(pb_merge_apply(db, in, 2, &pol, &o, &dry, &e), 0);
    o.dry_run = 0;
    assert_int_equal(pb_merge_apply(db, in, 2, &pol, &o, &dry, &e), 0);
    assert_int_equal(qint(db, "SELECT count(*) FROM temp.sqlite_master WHERE name LIKE 'pb%%'"), 0);
    sqlite3_close(db);
    free(before);
    free(after);
}

/* Script mode's script_before_commit: written just before the COMMIT when a row is written,
 * not at all otherwise; version-1 options (without the field) are still accepted. */
static void test_script_before_commit(void **state)
{
    (void)state;
    scen s;
    build_fixed(&s);
    char script[PATH_MAX], empty[PATH_MAX];
    snprintf(script, sizeof(script), "%s/before.sql", s.dir);
    snprintf(empty, sizeof(empty), "%s/empty.changeset", s.dir);
    FILE *f = fopen(empty, "wb");
    assert_non_null(f);
    fclose(f);
    const char *mark = "INSERT INTO marker VALUES(1);\n";
    for (int round = 0; round < 3; round++) {
        pb_merge_options o = PB_MERGE_OPTIONS_INIT;
        pb_merge_stats st;
        pb_error e = PB_ERROR_INIT;
        assert_non_null(f = fopen(script, "w"));
        o.script = f;
        o.script_before_commit = mark;
        if (round == 2)
            o.version = 1; /* an older caller: the field is not read */
        sqlite3 *db = open_pair(s.live, s.live_b);
        pb_merge_input in[2] = {{"main", round == 1 ? empty : s.cs}, {"blobs", s.cs_b}};
        pb_merge_policy pol = t_policy();
        int rc = pb_merge_apply(db, in, round == 1 ? 1 : 2, &pol, &o, &st, &e);
        sqlite3_close(db);
        assert_int_equal(fclose(f), 0);
        if (rc)
            fail_msg("round %d: %s", round, e.msg);
        char *text = tu_slurp(script);
        const char *at = strstr(text, mark);
        if (round == 0) {
            assert_true(st.total.inserted + st.total.updated + st.total.deleted > 0);
            assert_non_null(at);
            assert_string_equal(at + strlen(mark), "COMMIT;\n");
        } else {
            assert_null(at);
            assert_non_null(strstr(text, "COMMIT;\n"));
        }
        free(text);
    }
}

/* merge_column for test_merge_column: items.rating, both sides changed, gives
 * "<mode>:base|cloud|live" (2 with mode "conflict"); the text "FAIL" fails; others decline. */
static const char *g_mc_mode = "merged";
static int t_merge_column(const char *schema, const char *table, const char *column,
                          sqlite3_value *base, sqlite3_value *cloud, sqlite3_value *live,
                          char **out, size_t *out_n, void *p)
{
    (void)schema, (void)p;
    if (strcmp(table, "items") != 0 || strcmp(column, "rating") != 0)
        return 0;
    if (strcmp(g_mc_mode, "fail") == 0)
        return PB_EINVALID;
    if (strcmp(g_mc_mode, "same") == 0) { /* the live value itself: the default rule */
        *out = strdup((const char *)sqlite3_value_text(live));
        *out_n = strlen(*out);
        return 1;
    }
    char buf[128];
    snprintf(buf, sizeof(buf), "%s:%.1f|%.1f|%.1f", g_mc_mode, sqlite3_value_double(base),
             sqlite3_value_double(cloud), sqlite3_value_double(live));
    *out = strdup(buf);
    *out_n = strlen(buf);
    return strcmp(g_mc_mode, "conflict") == 0 ? 2 : 1;
}

static int merge_with(scen *s, pb_merge_policy *pol, pb_merge_options *o, pb_merge_stats *st,
                      pb_error *e)
{
    copy_file(s->live, s->work);
    copy_file(s->live_b, s->work_b);
    sqlite3 *db = open_pair(s->work, s->work_b);
    pb_merge_input in[2] = {{"main", s->cs}, {"blobs", s->cs_b}};
    int rc = pb_merge_apply(db, in, 2, pol, o, st, e);
    sqlite3_close(db);
    return rc;
}

/* The policy's merge_column: called where both sides changed a column (items 5 rating: base 5.0,
 * cloud 8.0, live 6.0), its value written and counted as merged instead of a conflict (2: both);
 * declining or giving the live value back is the default rule; an error fails the merge with the
 * live DB unchanged; a version-1 policy is never asked; script mode writes the same value. */
static void test_merge_column(void **state)
{
    (void)state;
    scen s;
    build_fixed(&s);
    pb_merge_policy pol = t_policy();
    pb_merge_stats plain, st;
    pb_error e = PB_ERROR_INIT;
    pb_merge_options o = PB_MERGE_OPTIONS_INIT;
    assert_int_equal(merge_with(&s, &pol, &o, &plain, &e), 0);
    assert_int_equal(plain.total.merged, 0);
    sqlite3 *db = xopen(s.work);
    char *text = qtext(db, "SELECT rating FROM items WHERE id = 5");
    assert_string_equal(text, "6.0");
    free(text);
    sqlite3_close(db);

    pol.merge_column = t_merge_column;
    alist acts = {0};
    o.on_action = on_act;
    o.action_payload = &acts;
    g_mc_mode = "merged";
    assert_int_equal(merge_with(&s, &pol, &o, &st, &e), 0);
    assert_int_equal(st.total.merged, 1);
    assert_int_equal(st.total.conflicts, plain.total.conflicts - 1);
    assert_int_equal(st.total.updated, plain.total.updated + 1);
    assert_true(has_act(&acts, "items", SQLITE_UPDATE, 5, 5, "rating", PB_RES_MERGED));
    assert_false(has_act(&acts, "items", SQLITE_UPDATE, 5, 5, "rating", PB_RES_KEPT_LIVE));
    db = xopen(s.work);
    text = qtext(db, "SELECT rating FROM items WHERE id = 5");
    assert_string_equal(text, "merged:5.0|8.0|6.0");
    free(text);
    sqlite3_close(db);
    free(acts.a);
    o.on_action = NULL;

    g_mc_mode = "conflict";
    assert_int_equal(merge_with(&s, &pol, &o, &st, &e), 0);
    assert_int_equal(st.total.merged, 1);
    assert_int_equal(st.total.conflicts, plain.total.conflicts);

    pol.version = 1; /* an older policy: the field is not read */
    g_mc_mode = "merged";
    assert_int_equal(merge_with(&s, &pol, &o, &st, &e), 0);
    assert_memory_equal(&st.total, &plain.total, sizeof(plain.total));
    pol.version = PB_MERGE_POLICY_VERSION;

    g_mc_mode = "fail";
    char *before = dump_files(s.live, s.live_b);
    assert_int_equal(merge_with(&s, &pol, &o, &st, &e), PB_EINVALID);
    assert_non_null(strstr(e.msg, "merge_column failed on main.items.rating"));
    char *after = dump_files(s.work, s.work_b);
    assert_dump_equal(after, before, "merge_column failure");
    free(before);
    free(after);

    /* script mode decides the same and writes the merged literal */
    g_mc_mode = "merged";
    char script[PATH_MAX];
    snprintf(script, sizeof(script), "%s/mc.sql", s.dir);
    FILE *f = fopen(script, "w");
    assert_non_null(f);
    o.script = f;
    pb_error_clear(&e);
    db = NULL;
    assert_int_equal(pb_compat_open(&db, s.live, PB_OPEN_READONLY, &e), 0);
    xexec(db, "ATTACH %Q AS blobs", s.live_b);
    pb_merge_input in[2] = {{"main", s.cs}, {"blobs", s.cs_b}};
    assert_int_equal(pb_merge_apply(db, in, 2, &pol, &o, &st, &e), 0);
    sqlite3_close(db);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(st.total.merged, 1);
    text = tu_slurp(script);
    assert_non_null(strstr(text, "'merged:5.0|8.0|6.0'"));
    free(text);
    o.script = NULL;

    /* a merged value equal to the live one is the default rule (a text live value here: the
     * hook's values are text) */
    xexec_at(s.live, "UPDATE items SET rating = 'six' WHERE id = 5");
    g_mc_mode = "same";
    assert_int_equal(merge_with(&s, &pol, &o, &st, &e), 0);
    assert_memory_equal(&st.total, &plain.total, sizeof(plain.total));
    g_mc_mode = "merged";
}

/* Merges into a copy of live expecting `code`; checks the content did not change and the message
 * is one line naming `needle`. */
static void expect_failure(scen *s, const char *cs, const char *cs_b, int code, const char *needle)
{
    copy_file(s->live, s->work);
    copy_file(s->live_b, s->work_b);
    char *before = dump_files(s->work, s->work_b);
    pb_merge_options o = PB_MERGE_OPTIONS_INIT;
    pb_merge_stats st;
    pb_error e = PB_ERROR_INIT;
    int rc = merge_into(s->work, s->work_b, cs, cs_b, &o, &st, &e);
    if (rc != code)
        fail_msg("expected %d, got %d (%s)", code, rc, e.msg);
    assert_null(strchr(e.msg, '\n'));
    if (needle && !strstr(e.msg, needle))
        fail_msg("message lacks '%s': %s", needle, e.msg);
    char *after = dump_files(s->work, s->work_b);
    assert_dump_equal(after, before, e.msg);
    free(before);
    free(after);
}

/* Merges the changeset cs alone into a fresh copy of the live pair; *before: the copy's content
 * dump before the merge (the caller's to free). */
static int merge_fresh(scen *s, const char *cs, char **before, pb_error *e)
{
    copy_file(s->live, s->work);
    copy_file(s->live_b, s->work_b);
    *before = dump_files(s->work, s->work_b);
    pb_merge_options o = PB_MERGE_OPTIONS_INIT;
    pb_merge_stats st;
    return merge_into(s->work, s->work_b, cs, NULL, &o, &st, e);
}

static void test_errors_leave_live_unchanged(void **state)
{
    (void)state;
    scen s;
    build_fixed(&s);
    char cs[PATH_MAX];

    /* a derived table in the changeset (after library records) */
    snprintf(cs, sizeof(cs), "%s/derived.changeset", s.dir);
    xexec_at(s.cloud, "INSERT INTO fts_shadow VALUES(1,'x')");
    const char *with_fts[] = {"items", "fts_shadow", NULL};
    make_changeset(s.base, s.cloud, cs, with_fts, NULL);
    expect_failure(&s, cs, NULL, PB_ECORRUPT, "fts_shadow");

    /* a table the live DB lacks */
    xexec_at(s.live, "DROP TABLE loose");
    expect_failure(&s, s.cs, s.cs_b, PB_ESCHEMA, "loose");

    /* a column count that differs */
    xexec_at(s.live,
             "CREATE TABLE loose(item_id INTEGER, note TEXT); ALTER TABLE media ADD COLUMN x");
    expect_failure(&s, s.cs, s.cs_b, PB_ESCHEMA, "media");
    xexec_at(s.live, "ALTER TABLE media DROP COLUMN x");

    /* a constraint violated late, after many writes: rolled back */
    sqlite3 *db = xopen(s.live);
    xexec(db, "CREATE UNIQUE INDEX taggings_u ON taggings(item_id, tag_id)");
    xexec(db, "INSERT INTO taggings(item_id, tag_id, idx) VALUES(4, 4, 9)");
    sqlite3_close(db);
    expect_failure(&s, s.cs, s.cs_b, PB_ECONFLICT, "taggings");
    xexec_at(s.live, "DROP INDEX taggings_u; DELETE FROM taggings WHERE idx = 9");

    /* map_text fails */
    xexec_at(s.cloud, "UPDATE vals SET v = 'FAIL' WHERE id = 1");
    snprintf(cs, sizeof(cs), "%s/mapfail.changeset", s.dir);
    make_changeset(s.base, s.cloud, cs, MAIN_KEYED, MAIN_NOPK);
    g_map_fail = 1;
    expect_failure(&s, cs, s.cs_b, PB_EINVALID, "vals");
    g_map_fail = 0;

    /* corrupt and truncated changesets: at every offset tried the merge fails or applies a
     * well-formed prefix; never a partial write */
    long n = file_size(s.cs);
    assert_true(n > 100);
    int failed = 0;
    for (int k = 1; k <= 24; k++) {
        long off = n * k / 25;
        if (k == 24)
            off = n - 1;
        snprintf(cs, sizeof(cs), "%s/trunc.changeset", s.dir);
        copy_file(s.cs, cs);
        assert_int_equal(truncate(cs, off), 0);
        char *before;
        pb_error e = PB_ERROR_INIT;
        int rc = merge_fresh(&s, cs, &before, &e);
        if (rc) {
            assert_int_equal(rc, PB_ECORRUPT);
            assert_null(strchr(e.msg, '\n'));
            assert_non_null(strstr(e.msg, "trunc.changeset"));
            char *after = dump_files(s.work, s.work_b);
            assert_dump_equal(after, before, e.msg);
            free(after);
            failed++;
        }
        free(before);
    }
    printf("truncation: %d of 24 offsets detected as corrupt (the others end on a record "
           "boundary)\n",
           failed);
    assert_true(failed >= 12);
    /* a bad op byte in the middle */
    FILE *f = fopen(cs, "wb");
    FILE *src = fopen(s.cs, "rb");
    for (long i = 0; i < n; i++) {
        int ch = fgetc(src);
        fputc(i == n / 2 ? 0x63 : ch, f);
    }
    fclose(src);
    fclose(f);
    {
        char *before;
        pb_error e = PB_ERROR_INIT;
        int rc = merge_fresh(&s, cs, &before, &e);
        char *after = dump_files(s.work, s.work_b);
        if (rc)
            assert_dump_equal(after, before, e.msg);
        free(before);
        free(after);
    }
    /* a schema that is not attached, a missing file, an open transaction */
    {
        sqlite3 *w = xopen(s.work);
        pb_merge_input in[1] = {{"blobs", s.cs_b}};
        pb_merge_policy pol = t_policy();
        pb_merge_options o = PB_MERGE_OPTIONS_INIT;
        pb_merge_stats st;
        pb_error e = PB_ERROR_INIT;
        assert_int_equal(pb_merge_apply(w, in, 1, &pol, &o, &st, &e), PB_EINVALID);
        pb_error_clear(&e);
        in[0].schema = "main";
        in[0].path = "/nonexistent/x.changeset";
        assert_int_equal(pb_merge_apply(w, in, 1, &pol, &o, &st, &e), PB_ENOTFOUND);
        pb_error_clear(&e);
        xexec(w, "BEGIN");
        in[0].path = s.cs;
        assert_int_equal(pb_merge_apply(w, in, 1, &pol, &o, &st, &e), PB_EINVALID);
        xexec(w, "ROLLBACK");
        sqlite3_close(w);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Crash recovery
 */

/* Runs a merge in a child killed after `k` writes; returns 1 when the kill left changes in the
 * files for SQLite to roll back (main DB file modified, or a WAL with frames). */
/* The crash hook: SIGKILL right after the k-th record written. */
static uint64_t g_crash_k;

static void crash_after_write(uint64_t writes, void *payload)
{
    (void)payload;
    if (writes == g_crash_k)
        raise(SIGKILL);
}

static int crash_run(scen *s, const char *mode, uint64_t k, const char *want_dump,
                     const char *merged_dump)
{
    int dirty = 0;
    char m[PATH_MAX], b[PATH_MAX];
    snprintf(m, sizeof(m), "%s/crash.db", s->dir);
    snprintf(b, sizeof(b), "%s/crash_blobs.db", s->dir);
    tu_sh("rm -f '%s' '%s' '%s'-* '%s'-*", m, b, m, b);
    copy_file(s->live, m);
    copy_file(s->live_b, b);
    {
        sqlite3 *db = open_pair(m, b);
        xexec(db, "PRAGMA main.journal_mode=%s; PRAGMA blobs.journal_mode=%s", mode, mode);
        sqlite3_close(db);
    }
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        g_crash_k = k;
        sqlite3 *db = NULL;
        pb_error e = PB_ERROR_INIT;
        if (pb_compat_open(&db, m, 0, &e) != 0)
            _exit(2);
        char *sql = sqlite3_mprintf("ATTACH %Q AS blobs; PRAGMA main.cache_size=10; PRAGMA "
                                    "blobs.cache_size=10",
                                    b);
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
            _exit(3);
        pb_merge_input in[2] = {{"main", s->cs}, {"blobs", s->cs_b}};
        pb_merge_policy pol = t_policy();
        pb_merge_options o = PB_MERGE_OPTIONS_INIT;
        o.after_write = crash_after_write;
        pb_merge_stats st;
        int rc = pb_merge_apply(db, in, 2, &pol, &o, &st, &e);
        sqlite3_close(db);
        _exit(rc == 0 ? 0 : 4);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    char *got;
    if (merged_dump) { /* k beyond the last write: the merge completes */
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        got = dump_files(m, b);
        assert_dump_equal(got, merged_dump, "crash hook beyond the last write");
    } else {
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
            fail_msg("child for k=%llu did not die by SIGKILL (status %d)", (unsigned long long)k,
                     status);
        char wal[PATH_MAX + 8];
        snprintf(wal, sizeof(wal), "%s-wal", m);
        dirty = strcmp(mode, "WAL") == 0 ? file_size(wal) > 0
                                         : tu_sh("cmp -s '%s' '%s'", m, s->live) != 0;
        got = dump_files(m, b); /* recovers from the hot journal / ignores the WAL tail */
        char what[64];
        snprintf(what, sizeof(what), "crash after %llu writes (%s)", (unsigned long long)k, mode);
        assert_dump_equal(got, want_dump, what);
    }
    free(got);
    return dirty;
}

static void test_crash_recovery(void **state)
{
    (void)state;
    scen s;
    build_random(&s, 4242, 1500);
    sqlite3 *cdb = open_pair(s.cloud, s.cloud_b);
    xexec(cdb, "UPDATE streams SET extra = extra || 'x' WHERE id %% 3 = 0;"
               "UPDATE blobs.blobs SET blob = X'0F' WHERE id %% 2 = 0");
    sqlite3_close(cdb);
    scen_changesets(&s);
    pb_merge_options o = PB_MERGE_OPTIONS_INIT;
    pb_merge_stats st;
    pb_error e = PB_ERROR_INIT;
    assert_int_equal(scen_merge(&s, &o, &st, &e), 0);
    uint64_t writes = st.total.inserted + st.total.updated + st.total.deleted;
    assert_true(writes > 20);
    char *merged = dump_files(s.work, s.work_b);
    char *before = dump_files(s.live, s.live_b);
    const char *modes[] = {"DELETE", "WAL"};
    for (int mi = 0; mi < 2; mi++) {
        uint64_t ks[] = {1, 2, writes / 3, writes / 2, writes - 1, writes};
        int dirty = 0;
        for (size_t i = 0; i < sizeof(ks) / sizeof(ks[0]); i++)
            dirty += crash_run(&s, modes[mi], ks[i], before, NULL);
        crash_run(&s, modes[mi], writes + 1, NULL, merged);
        printf("crash (%s): %llu writes, killed at 6 points, %d of them with changes on disk "
               "that SQLite rolled back\n",
               modes[mi], (unsigned long long)writes, dirty);
        assert_true(dirty > 0); /* recovery was exercised, not just an untouched file */
    }
    free(merged);
    free(before);
}

static void test_commit_is_atomic(void **state)
{
    (void)state;
    scen s;
    scen_init(&s, "merge-atomic");
    scen_fork(&s);
    sqlite3 *db = open_pair(s.live, s.live_b);
    pb_merge_input in[2] = {{"main", s.cs}, {"blobs", s.cs_b}};
    int atomic = -1;
    pb_error e = PB_ERROR_INIT;
    assert_int_equal(pb_merge_commit_is_atomic(&atomic, db, in, 2, &e), 0);
    assert_int_equal(atomic, 1);
    assert_int_equal(pb_merge_commit_is_atomic(&atomic, db, in, 1, &e), 0);
    assert_int_equal(atomic, 1);
    xexec(db, "PRAGMA blobs.journal_mode=WAL");
    assert_int_equal(pb_merge_commit_is_atomic(&atomic, db, in, 2, &e), 0);
    assert_int_equal(atomic, 0);
    assert_int_equal(pb_merge_commit_is_atomic(&atomic, db, in, 1, &e), 0);
    assert_int_equal(atomic, 1);
    sqlite3_close(db);
}

/* ---------------------------------------------------------------------------------------------
 * Script mode (argument `script`)
 */

static const char *plexcompat_or_skip(void)
{
    static char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s", tu_build_path("plexcompat"));
    char so[PATH_MAX + 4];
    snprintf(so, sizeof(so), "%s.so", path);
    if (access(so, R_OK) != 0)
        tu_skip("the plexcompat extension is not built");
    if (tu_sh("sqlite3 -version >/dev/null 2>&1") != 0)
        tu_skip("no sqlite3 shell");
    return path;
}

/* In-process merge vs script run by the stock shell: same content, same counts. */
static void script_equivalence(scen *s, const char *ext, const char *what)
{
    pb_merge_options o = PB_MERGE_OPTIONS_INIT;
    pb_merge_stats in_st, sc_st;
    pb_error e = PB_ERROR_INIT;
    int rc = scen_merge(s, &o, &in_st, &e);
    if (rc)
        fail_msg("%s: merge: %s", what, e.msg);
    char *want = dump_files(s->work, s->work_b);

    char sm[PATH_MAX], sb[PATH_MAX], script[PATH_MAX];
    snprintf(sm, sizeof(sm), "%s/script.db", s->dir);
    snprintf(sb, sizeof(sb), "%s/script_blobs.db", s->dir);
    snprintf(script, sizeof(script), "%s/merge.sql", s->dir);
    copy_file(s->live, sm);
    copy_file(s->live_b, sb);
    char *before = dump_files(sm, sb);
    FILE *f = fopen(script, "w");
    assert_non_null(f);
    o.script = f;
    sqlite3 *db = NULL; /* read-only: blobs is attached read-only as well */
    assert_int_equal(pb_compat_open(&db, sm, PB_OPEN_READONLY, &e), 0);
    xexec(db, "ATTACH %Q AS blobs", sb);
    pb_merge_input in[2] = {{"main", s->cs}, {"blobs", s->cs_b}};
    pb_merge_policy pol = t_policy();
    rc = pb_merge_apply(db, in, 2, &pol, &o, &sc_st, &e);
    sqlite3_close(db);
    assert_int_equal(fclose(f), 0);
    if (rc)
        fail_msg("%s: script merge: %s", what, e.msg);
    char *unchanged = dump_files(sm, sb);
    assert_dump_equal(unchanged, before, "script mode wrote into the live DB");
    assert_memory_equal(&sc_st.total, &in_st.total, sizeof(in_st.total));

    char out[4096];
    rc = tu_sh_out(out, sizeof(out),
                   "sqlite3 -bail -cmd '.load %s' -cmd \"ATTACH '%s' AS blobs\" '%s' < '%s' 2>&1",
                   ext, sb, sm, script);
    if (rc != 0)
        fail_msg("%s: the shell failed (%d): %s", what, rc, out);
    char *got = dump_files(sm, sb);
    assert_dump_equal(got, want, what);
    free(want);
    free(before);
    free(unchanged);
    free(got);
}

static void test_script_fixed(void **state)
{
    (void)state;
    const char *ext = plexcompat_or_skip();
    scen s;
    build_fixed(&s);
    script_equivalence(&s, ext, "script, fixed scenario");
}

static void test_script_random(void **state)
{
    (void)state;
    const char *ext = plexcompat_or_skip();
    for (int seed = 1; seed <= 25; seed++) {
        scen s;
        build_random(&s, (uint64_t)seed + 1000, 20 + seed);
        char what[64];
        snprintf(what, sizeof(what), "script, seed %d", seed);
        script_equivalence(&s, ext, what);
        tu_sh("rm -rf '%s'", s.dir);
    }
}

/* Exact literals: random doubles, extremes, odd text, through the shell. */
static void test_script_values(void **state)
{
    (void)state;
    const char *ext = plexcompat_or_skip();
    scen s;
    scen_init(&s, "merge-values");
    scen_fork(&s);
    sqlite3 *db = xopen(s.cloud);
    rng r = {77};
    sqlite3_stmt *st;
    xexec(db, "BEGIN");
    assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO vals VALUES(?1, ?2)", -1, &st, NULL),
                     SQLITE_OK);
    for (int i = 1; i <= 3000; i++) {
        sqlite3_bind_int(st, 1, i);
        uint64_t bits = rnext(&r);
        double d;
        memcpy(&d, &bits, 8);
        switch (i % 5) {
        case 0:
            d = ldexp((double)(bits >> 11), -(int)(bits % 1100)); /* tiny and subnormal */
            break;
        case 1:
            d = (double)(bits % 1000000) / 1000.0;
            break;
        default:
            break;
        }
        if (i % 7 == 0) {
            char txt[64];
            int n = snprintf(txt, sizeof(txt), "a'b\r\n%c\x01z", 0);
            txt[6] = '\0';
            sqlite3_bind_text(st, 2, txt, n, SQLITE_TRANSIENT);
        } else if (i % 11 == 0) {
            sqlite3_bind_int64(st, 2, (int64_t)bits);
        } else {
            sqlite3_bind_double(st, 2, d);
        }
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    xexec(db, "COMMIT");
    sqlite3_close(db);
    scen_changesets(&s);
    script_equivalence(&s, ext, "script, values");
}

/* ---------------------------------------------------------------------------------------------
 * Bench (argument `bench`): a nightly change of ~20k records on a 100k-item library
 */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int conflict_omit(void *p, int reason, sqlite3_changeset_iter *it)
{
    (void)p;
    (void)reason;
    (void)it;
    return SQLITE_CHANGESET_OMIT;
}

static int xinput(void *p, void *data, int *n)
{
    *n = (int)fread(data, 1, (size_t)*n, (FILE *)p);
    return SQLITE_OK;
}

static void test_bench(void **state)
{
    (void)state;
    int nitems = getenv("PB_MERGE_BENCH_ITEMS") ? atoi(getenv("PB_MERGE_BENCH_ITEMS")) : 100000;
    scen s;
    scen_init(&s, "merge-bench");
    double t0 = now_ms();
    sqlite3 *db = open_pair(s.base, s.base_b);
    xexec(db,
          "BEGIN;"
          "INSERT INTO sections VALUES(1,'Movies','sec-1'),(2,'Shows','sec-2');"
          "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < %d) "
          "INSERT INTO items SELECT i, 1 + i %% 2, CASE WHEN i %% 10 > 0 THEN i - i %% 10 END, "
          "'title ' || i, 'g-' || i, (i %% 50) / 10.0, randomblob(8), 'uf', i FROM n;"
          "INSERT INTO media SELECT id, id, 1000 + id, 'h264' FROM items;"
          "INSERT INTO parts SELECT id, id, '/home/f' || id || '.mkv', 'h' || id, id * 7 FROM "
          "media;"
          "INSERT INTO streams(part_id, media_id, kind, url, extra) SELECT id, id, k, NULL, "
          "'{\"ln:loudness\":' || (id %% 30) || '}' FROM parts, (SELECT 1 AS k UNION ALL SELECT "
          "2 UNION ALL SELECT 3);"
          "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 5000) "
          "INSERT INTO tags SELECT i, 1 + i %% 4, 'tag' || i, 'k' || i FROM n;"
          "INSERT INTO taggings(item_id, tag_id, idx) SELECT id, 1 + id %% 5000, 0 FROM items;"
          "INSERT INTO blobs.blobs(linked_type, linked_id, blob_type, blob) SELECT 'media_part', "
          "id, 1, randomblob(32) FROM parts WHERE id %% 4 = 0;"
          "COMMIT;",
          nitems);
    sqlite3_close(db);
    scen_fork(&s);
    double t1 = now_ms();
    int nnew = nitems / 50;
    db = open_pair(s.cloud, s.cloud_b);
    xexec(db,
          "BEGIN;"
          /* new items with media, part, 3 streams, a tagging and a blob each */
          "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < %d) "
          "INSERT INTO items(section_id, parent_id, title, guid, rating, extra, user_fields, "
          "updated_at) SELECT 2, NULL, 'new ' || i, 'g-new-' || i, 1.5, NULL, 'uf', 1 FROM n;"
          "INSERT INTO media(item_id, duration, codec) SELECT id, 1, 'hevc' FROM items WHERE id > "
          "%d;"
          "INSERT INTO parts(media_id, file, hash, size) SELECT id, '/cloud/n' || id, 'hn', 1 "
          "FROM media WHERE id > %d;"
          "INSERT INTO streams(part_id, media_id, kind, url, extra) SELECT id, id, 1, NULL, 'n' "
          "FROM parts WHERE id > %d;"
          "INSERT INTO taggings(item_id, tag_id, idx) SELECT id, 1, 1 FROM items WHERE id > %d;"
          "INSERT INTO blobs.blobs(linked_type, linked_id, blob_type, blob) SELECT 'media_part', "
          "id, 1, X'01' FROM parts WHERE id > %d;"
          /* analysis output on existing rows */
          "UPDATE streams SET extra = extra || ',\"ln:peak\":1' WHERE id %% 40 = 0;"
          "UPDATE items SET rating = 4.5, updated_at = 2 WHERE id %% 100 = 0;"
          "DELETE FROM taggings WHERE id %% 200 = 1;"
          "COMMIT;",
          nnew, nitems, nitems, nitems, nitems, nitems);
    sqlite3_close(db);
    db = open_pair(s.live, s.live_b);
    xexec(db,
          "BEGIN;"
          "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 50) "
          "INSERT INTO items(title, guid, user_fields, updated_at) SELECT 'live ' || i, 'g-l' || "
          "i, 'uf', 3 FROM n;"
          "UPDATE items SET rating = 0.5 WHERE id %% 1000 = 0;"
          "DELETE FROM streams WHERE id %% 5000 = 0;"
          "COMMIT;");
    sqlite3_close(db);
    scen_changesets(&s);
    double t2 = now_ms();

    pb_merge_options o = PB_MERGE_OPTIONS_INIT;
    pb_merge_stats st;
    pb_error e = PB_ERROR_INIT;
    copy_file(s.live, s.work);
    copy_file(s.live_b, s.work_b);
    db = open_pair(s.work, s.work_b);
    xexec(db, "PRAGMA main.synchronous=FULL; PRAGMA blobs.synchronous=FULL");
    pb_merge_input in[2] = {{"main", s.cs}, {"blobs", s.cs_b}};
    pb_merge_policy pol = t_policy();
    double m0 = now_ms(), mc0 = cpu_ms();
    int rc = pb_merge_apply(db, in, 2, &pol, &o, &st, &e);
    double m1 = now_ms(), mc1 = cpu_ms();
    sqlite3_close(db);
    if (rc)
        fail_msg("bench merge: %s", e.msg);
    uint64_t records = st.total.inserted + st.total.updated + st.total.deleted + st.total.notfound +
                       st.total.same + st.total.natkey_mapped;
    pb_merge_stats merged = st;

    /* sqlite3changeset_apply_v2 on the same change (conflicts omitted, no remapping) */
    copy_file(s.live, s.work);
    copy_file(s.live_b, s.work_b);
    double a0 = now_ms(), ac0 = cpu_ms();
    db = xopen(s.work);
    xexec(db, "PRAGMA synchronous=FULL");
    xexec(db, "BEGIN");
    FILE *f = fopen(s.cs, "rb");
    rc = sqlite3changeset_apply_v2_strm(db, xinput, f, NULL, conflict_omit, NULL, NULL, NULL, 0);
    fclose(f);
    xexec(db, "COMMIT");
    sqlite3_close(db);
    db = xopen(s.work_b);
    xexec(db, "PRAGMA synchronous=FULL");
    xexec(db, "BEGIN");
    f = fopen(s.cs_b, "rb");
    int rc2 =
        sqlite3changeset_apply_v2_strm(db, xinput, f, NULL, conflict_omit, NULL, NULL, NULL, 0);
    fclose(f);
    xexec(db, "COMMIT");
    sqlite3_close(db);
    double a1 = now_ms(), ac1 = cpu_ms();
    assert_int_equal(rc, SQLITE_OK);
    assert_int_equal(rc2, SQLITE_OK);

    /* script mode on the same change */
    char script[PATH_MAX];
    snprintf(script, sizeof(script), "%s/bench.sql", s.dir);
    f = fopen(script, "w");
    o.script = f;
    db = open_pair(s.live, s.live_b);
    double s0 = now_ms();
    rc = pb_merge_apply(db, in, 2, &pol, &o, &st, &e);
    double s1 = now_ms();
    sqlite3_close(db);
    fclose(f);
    assert_int_equal(rc, 0);

    printf("bench: %d items (built in %.0f ms, changes in %.0f ms); changesets %ld + %ld bytes; "
           "%llu records (%llu ins, %llu upd, %llu del, %llu remapped, %llu conflicts)\n"
           "bench: pb_merge_apply %.0f ms (%.0f ms reported, %.0f ms CPU), script mode %.0f ms, "
           "sqlite3changeset_apply_v2 %.0f ms (%.0f ms CPU)\n",
           nitems, t1 - t0, t2 - t1, file_size(s.cs), file_size(s.cs_b),
           (unsigned long long)records, (unsigned long long)merged.total.inserted,
           (unsigned long long)merged.total.updated, (unsigned long long)merged.total.deleted,
           (unsigned long long)merged.total.remapped, (unsigned long long)merged.total.conflicts,
           m1 - m0, merged.ms, mc1 - mc0, s1 - s0, a1 - a0, ac1 - ac0);
    assert_memory_equal(&st.total, &merged.total, sizeof(merged.total));
    assert_true(m1 - m0 < 5000);
    tu_sh("rm -rf '%s'", s.dir);
}

int main(int argc, char **argv)
{
    if (getenv("PB_TEST_FILTER")) /* e.g. PB_TEST_FILTER=test_dry_run */
        cmocka_set_test_filter(getenv("PB_TEST_FILTER"));
    if (argc > 1 && strcmp(argv[1], "script") == 0) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_script_fixed),
            cmocka_unit_test(test_script_values),
            cmocka_unit_test(test_script_random),
        };
        return cmocka_run_group_tests_name("merge_script", tests, NULL, NULL);
    }
    if (argc > 1 && strcmp(argv[1], "bench") == 0) {
        const struct CMUnitTest tests[] = {cmocka_unit_test(test_bench)};
        return cmocka_run_group_tests_name("merge_bench", tests, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_scenario),
        cmocka_unit_test(test_oracle_fixed),
        cmocka_unit_test(test_dry_run),
        cmocka_unit_test(test_errors_leave_live_unchanged),
        cmocka_unit_test(test_commit_is_atomic),
        cmocka_unit_test(test_random_vs_oracle),
        cmocka_unit_test(test_random_ourdiff),
        cmocka_unit_test(test_crash_recovery),
        cmocka_unit_test(test_script_before_commit),
        cmocka_unit_test(test_merge_column),
    };
    return cmocka_run_group_tests_name("merge", tests, NULL, NULL);
}

/*
 * test_sqldiff.c: the generic row diff, the logical checksum and the changeset validator of
 * sqldiff/, over DBs built here with plain SQL (no Plex fixtures): random schemas and rows over
 * many seeds (integer, text, composite, WITHOUT ROWID, untyped and nullable PKs, tables without
 * PK holding duplicates, NULLs, blobs, -0.0 / inf / NaN, large text), random mutations, then
 *  - the changeset is valid (our validator and SQLite's iterator) and its summary matches;
 *  - applied to a copy of the base (sqlite3changeset_apply for PK tables, a small multiset
 *    applier for the others) it yields the target: equal checksums and equal independent dumps;
 *  - it holds the same changes as sqlite3session_diff's, up to the documented strictness;
 *  - patchsets, single-threaded reading and the output chunking behave;
 * plus comparator order vs SQLite, byte-exact records vs the session module, checksum
 * order-independence and sensitivity, schema errors, and validator truncation / corruption.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "plexburst/sqldiff.h"
#include "record.h"

/* ---- small helpers ----------------------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static unsigned rn(unsigned n)
{
    return (unsigned)(rnd() % n);
}

static void exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fail_msg("SQL failed (%s): %s", msg ? msg : "?", sql);
}

static sqlite3 *open_db(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    return db;
}

static void copy_db(const char *from, const char *to)
{
    sqlite3 *db = open_db(from);
    char *sql = sqlite3_mprintf("VACUUM INTO %Q", to);
    remove(to);
    exec(db, sql);
    sqlite3_free(sql);
    sqlite3_close(db);
}

typedef struct membuf {
    uint8_t *p;
    size_t n, cap;
    size_t max_chunk;
    int calls;
} membuf;

static int mem_out(void *payload, const void *data, size_t n, pb_error *err)
{
    (void)err;
    membuf *m = payload;
    if (m->n + n > m->cap) {
        m->cap = (m->n + n) * 2;
        m->p = realloc(m->p, m->cap);
    }
    memcpy(m->p + m->n, data, n);
    m->n += n;
    if (n > m->max_chunk)
        m->max_chunk = n;
    m->calls++;
    return 0;
}

static void diff_or_fail(membuf *m, pb_diff_stats *st, const char *a, const char *b, unsigned flags)
{
    pb_error err = PB_ERROR_INIT;
    pb_diff_options o = PB_DIFF_OPTIONS_INIT;
    o.flags = flags;
    memset(m, 0, sizeof(*m));
    int rc = pb_sqldiff_diff(st, a, b, &o, mem_out, m, &err);
    if (rc != 0)
        fail_msg("diff failed: %d %s", rc, err.msg);
    assert_int_equal(st->bytes, m->n);
    assert_true(m->max_chunk <= PB_SQLDIFF_CHUNK);
}

static pb_checksum checksum_or_fail(const char *path)
{
    pb_error err = PB_ERROR_INIT;
    pb_checksum c;
    int rc = pb_sqldiff_checksum(&c, path, NULL, &err);
    if (rc != 0)
        fail_msg("checksum failed: %d %s", rc, err.msg);
    return c;
}

/* ---- value rendering, independent of sqldiff/ ---------------------------------------------- */

static void hex_append(char **s, size_t *n, size_t *cap, const void *p, size_t len)
{
    static const char d[] = "0123456789abcdef";
    if (*n + 2 * len + 64 > *cap) {
        *cap = (*n + 2 * len + 64) * 2;
        *s = realloc(*s, *cap);
    }
    for (size_t i = 0; i < len; i++) {
        (*s)[(*n)++] = d[((const uint8_t *)p)[i] >> 4];
        (*s)[(*n)++] = d[((const uint8_t *)p)[i] & 15];
    }
    (*s)[*n] = '\0';
}

static void str_append(char **s, size_t *n, size_t *cap, const char *t)
{
    size_t k = strlen(t);
    if (*n + k + 1 > *cap) {
        *cap = (*n + k + 1) * 2 + 64;
        *s = realloc(*s, *cap);
    }
    memcpy(*s + *n, t, k + 1);
    *n += k;
}

/* Renders a value as type letter + exact payload (reals bitwise via %a). */
static void render_value(char **s, size_t *n, size_t *cap, sqlite3_value *v)
{
    char tmp[64];
    if (!v) {
        str_append(s, n, cap, "U");
        return;
    }
    switch (sqlite3_value_type(v)) {
    case SQLITE_NULL:
        str_append(s, n, cap, "N");
        break;
    case SQLITE_INTEGER:
        snprintf(tmp, sizeof(tmp), "I%lld", (long long)sqlite3_value_int64(v));
        str_append(s, n, cap, tmp);
        break;
    case SQLITE_FLOAT:
        snprintf(tmp, sizeof(tmp), "R%a", sqlite3_value_double(v));
        str_append(s, n, cap, tmp);
        break;
    case SQLITE_TEXT: {
        const unsigned char *z = sqlite3_value_text(v);
        str_append(s, n, cap, "T");
        hex_append(s, n, cap, z, (size_t)sqlite3_value_bytes(v));
        break;
    }
    default: {
        const void *z = sqlite3_value_blob(v);
        str_append(s, n, cap, "B");
        hex_append(s, n, cap, z, (size_t)sqlite3_value_bytes(v));
        break;
    }
    }
}

typedef struct strvec {
    char **v;
    size_t n, cap;
} strvec;

static void vec_push(strvec *l, char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = realloc(l->v, l->cap * sizeof(char *));
    }
    l->v[l->n++] = s;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int vec_has(const strvec *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return 1;
    return 0;
}

static void vec_free(strvec *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* Every row of every ordinary user table, rendered and sorted: a dump not made by sqldiff/. */
static char *dump_db(const char *path)
{
    sqlite3 *db = open_db(path);
    sqlite3_stmt *tl = NULL;
    strvec lines = {0};
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT name FROM sqlite_master WHERE type='table' AND "
                                        "name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND sql NOT LIKE "
                                        "'CREATE VIRTUAL%' AND name NOT LIKE 't\\_fts\\_%' "
                                        "ESCAPE '\\'",
                                        -1, &tl, NULL),
                     SQLITE_OK);
    while (sqlite3_step(tl) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(tl, 0);
        char *sql = sqlite3_mprintf("SELECT * FROM \"%w\"", t);
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW) {
            char *s = NULL;
            size_t n = 0, cap = 0;
            str_append(&s, &n, &cap, t);
            for (int i = 0; i < sqlite3_column_count(st); i++) {
                str_append(&s, &n, &cap, "|");
                render_value(&s, &n, &cap, sqlite3_column_value(st, i));
            }
            vec_push(&lines, s);
        }
        sqlite3_finalize(st);
        sqlite3_free(sql);
    }
    sqlite3_finalize(tl);
    sqlite3_close(db);
    qsort(lines.v, lines.n, sizeof(char *), cmp_str);
    char *out = NULL;
    size_t n = 0, cap = 0;
    str_append(&out, &n, &cap, "");
    for (size_t i = 0; i < lines.n; i++) {
        str_append(&out, &n, &cap, lines.v[i]);
        str_append(&out, &n, &cap, "\n");
    }
    vec_free(&lines);
    return out;
}

/* ---- random databases ------------------------------------------------------------------- */

static const char *const schema_sql =
    "CREATE TABLE t_int(id INTEGER PRIMARY KEY, a INT, b TEXT, c REAL, d BLOB, e);"
    "CREATE TABLE t_text(k TEXT PRIMARY KEY NOT NULL, v, w INT);"
    "CREATE TABLE t_comp(a INT NOT NULL, b TEXT COLLATE NOCASE NOT NULL, c, d, PRIMARY KEY(b, a));"
    "CREATE TABLE t_wr(x TEXT, y INT, z, PRIMARY KEY(x, y)) WITHOUT ROWID;"
    "CREATE TABLE t_nopk(a, b, c);"
    "CREATE TABLE t_mixed(k PRIMARY KEY NOT NULL, v);"
    "CREATE TABLE t_big(id INTEGER PRIMARY KEY, big TEXT, bb BLOB);"
    "CREATE TABLE t_gen(id INTEGER PRIMARY KEY, p INT, q AS (p * 2));"
    "CREATE TABLE t_nullpk(k INT PRIMARY KEY, v);"
    "CREATE TABLE t_auto(id INTEGER PRIMARY KEY AUTOINCREMENT, v);"
    "CREATE TABLE \"we\"\"ird name\"(id INTEGER PRIMARY KEY, \"col \"\"x\"\"\" TEXT);"
    "CREATE INDEX t_int_a ON t_int(a);"
    "CREATE VIRTUAL TABLE t_fts USING fts4(body);";

/*
 * Tables sqlite3session_diff handles like we do (PK, no NULL in it). Not t_gen: with a
 * generated column, SQLite 3.40.1's sqlite3session_changeset() fails with SQLITE_SCHEMA.
 */
static const char *const session_tables[] = {"t_int", "t_text", "t_comp",       "t_wr", "t_mixed",
                                             "t_big", "t_auto", "we\"ird name", NULL};

static void bind_random(sqlite3_stmt *st, int i)
{
    static const double specials[] = {-0.0,
                                      0.0,
                                      INFINITY,
                                      -INFINITY,
                                      NAN,
                                      1e308,
                                      5e-324,
                                      9223372036854775808.0,
                                      -9223372036854775808.0,
                                      0.5};
    static const int64_t ints[] = {
        0, 1, -1, INT64_MAX, INT64_MIN, 9007199254740993LL, -9007199254740993LL, 3};
    static const char *const texts[] = {
        "", "a", "A", "b", "abc", "\xc3\xa9t\xc3\xa9", "\xf0\x9f\x8e\xac movie", "Z", "zz", "3"};
    uint8_t blob[40];
    switch (rn(12)) {
    case 0:
        sqlite3_bind_null(st, i);
        break;
    case 1:
        sqlite3_bind_int64(st, i, (int64_t)rn(1000) - 500);
        break;
    case 2:
        sqlite3_bind_int64(st, i, ints[rn(8)]);
        break;
    case 3:
        sqlite3_bind_double(st, i, (double)(int64_t)(rnd() % 2000000) / 7.0 - 1000.0);
        break;
    case 4:
        sqlite3_bind_double(st, i, specials[rn(10)]);
        break;
    case 5:
        sqlite3_bind_double(st, i, (double)rn(5));
        break;
    case 6:
        sqlite3_bind_text(st, i, texts[rn(10)], -1, SQLITE_TRANSIENT);
        break;
    case 7: {
        char t[64];
        int n = 1 + (int)rn(40);
        for (int k = 0; k < n; k++)
            t[k] = (char)(rn(5) == 0 ? 0 : 'a' + rn(26)); /* embedded NULs too */
        sqlite3_bind_text(st, i, t, n, SQLITE_TRANSIENT);
        break;
    }
    case 8:
        sqlite3_bind_text(st, i, "", 0, SQLITE_STATIC);
        break;
    case 9: {
        int n = (int)rn(40);
        for (int k = 0; k < n; k++)
            blob[k] = (uint8_t)rnd();
        sqlite3_bind_blob(st, i, blob, n, SQLITE_TRANSIENT);
        break;
    }
    case 10:
        sqlite3_bind_zeroblob(st, i, 0);
        break;
    default:
        sqlite3_bind_int64(st, i, (int64_t)rn(5));
        break;
    }
}

static void run_insert(sqlite3 *db, const char *sql, int nrandom, void (*keys)(sqlite3_stmt *, int),
                       int key)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    int first = 1;
    if (keys)
        first = 1 + (keys(st, key), sqlite3_bind_parameter_count(st) - nrandom);
    for (int i = 0; i < nrandom; i++)
        bind_random(st, first + i);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && (rc & 0xff) != SQLITE_CONSTRAINT)
        fail_msg("insert failed: %s (%s)", sqlite3_errmsg(db), sql);
    sqlite3_finalize(st);
}

static void text_key(char *out, size_t cap, int n)
{
    /* distinct for distinct n even case-insensitively; the case pattern depends on n */
    snprintf(out, cap, "key%05d", n);
    for (size_t i = 0; out[i]; i++)
        if ((n >> (i % 5)) & 1)
            out[i] = (char)(out[i] >= 'a' && out[i] <= 'z' ? out[i] - 32 : out[i]);
}

static void keys_int(sqlite3_stmt *st, int k)
{
    sqlite3_bind_int(st, 1, k);
}

static void keys_text(sqlite3_stmt *st, int k)
{
    char t[64];
    /* multi-byte and varying lengths, ordered bytewise */
    snprintf(t, sizeof(t), "%s%d\xc3\xa9", k % 3 ? "k" : "K\xe2\x82\xac", k * 7919 % 10007);
    sqlite3_bind_text(st, 1, t, -1, SQLITE_TRANSIENT);
}

static void keys_comp(sqlite3_stmt *st, int k)
{
    char t[32];
    text_key(t, sizeof(t), k / 3);
    sqlite3_bind_int(st, 1, k % 3);
    sqlite3_bind_text(st, 2, t, -1, SQLITE_TRANSIENT);
}

static void keys_wr(sqlite3_stmt *st, int k)
{
    char t[32];
    snprintf(t, sizeof(t), "w%d", k / 4);
    sqlite3_bind_text(st, 1, t, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, k % 4 - 2);
}

static void keys_mixed(sqlite3_stmt *st, int k)
{
    char t[32];
    uint8_t b[4] = {(uint8_t)(k >> 8), (uint8_t)k, 0, 0xff};
    switch (k % 5) {
    case 0:
        sqlite3_bind_int64(st, 1, (int64_t)k * 10 - 3000);
        break;
    case 1:
        sqlite3_bind_double(st, 1, (double)k * 10 + 0.5 - 3000);
        break;
    case 2:
        snprintf(t, sizeof(t), "s%d", k);
        sqlite3_bind_text(st, 1, t, -1, SQLITE_TRANSIENT);
        break;
    case 3:
        sqlite3_bind_blob(st, 1, b, (int)(k % 4), SQLITE_TRANSIENT);
        break;
    default: /* huge integers and the reals next to them, never equal to each other */
        sqlite3_bind_int64(st, 1, k % 2 ? INT64_MAX - k : INT64_MIN + k);
        break;
    }
}

static void keys_nullpk(sqlite3_stmt *st, int k)
{
    if (k % 17 == 5)
        sqlite3_bind_null(st, 1); /* only inserted when the seed wants NULL PKs */
    else
        sqlite3_bind_int(st, 1, k);
}

static int with_null_pk;

static void insert_row(sqlite3 *db, const char *table, int k)
{
    if (strcmp(table, "t_int") == 0)
        run_insert(db, "INSERT OR IGNORE INTO t_int VALUES(?1,?2,?3,?4,?5,?6)", 5, keys_int, k);
    else if (strcmp(table, "t_text") == 0)
        run_insert(db, "INSERT OR IGNORE INTO t_text VALUES(?1,?2,?3)", 2, keys_text, k);
    else if (strcmp(table, "t_comp") == 0)
        run_insert(db, "INSERT OR IGNORE INTO t_comp VALUES(?1,?2,?3,?4)", 2, keys_comp, k);
    else if (strcmp(table, "t_wr") == 0)
        run_insert(db, "INSERT OR IGNORE INTO t_wr VALUES(?1,?2,?3)", 1, keys_wr, k);
    else if (strcmp(table, "t_nopk") == 0) {
        /* a small domain, so that duplicates are common */
        sqlite3_stmt *st = NULL;
        assert_int_equal(
            sqlite3_prepare_v2(db, "INSERT INTO t_nopk VALUES(?1,?2,?3)", -1, &st, NULL),
            SQLITE_OK);
        sqlite3_bind_int(st, 1, (int)rn(4));
        if (rn(3))
            sqlite3_bind_text(st, 2, rn(2) ? "x" : "y", -1, SQLITE_STATIC);
        else
            bind_random(st, 2);
        if (rn(4))
            sqlite3_bind_null(st, 3);
        else
            bind_random(st, 3);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_finalize(st);
    } else if (strcmp(table, "t_mixed") == 0)
        run_insert(db, "INSERT OR IGNORE INTO t_mixed VALUES(?1,?2)", 1, keys_mixed, k);
    else if (strcmp(table, "t_big") == 0) {
        sqlite3_stmt *st = NULL;
        size_t n = 1000 + rn(150000);
        char *t = malloc(n);
        for (size_t i = 0; i < n; i++)
            t[i] = (char)('a' + rn(26));
        assert_int_equal(
            sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO t_big VALUES(?1,?2,?3)", -1, &st, NULL),
            SQLITE_OK);
        sqlite3_bind_int(st, 1, k);
        sqlite3_bind_text(st, 2, t, (int)n, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 3, t, (int)(n / 3), SQLITE_TRANSIENT);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_finalize(st);
        free(t);
    } else if (strcmp(table, "t_gen") == 0)
        run_insert(db, "INSERT OR IGNORE INTO t_gen(id, p) VALUES(?1,?2)", 1, keys_int, k);
    else if (strcmp(table, "t_nullpk") == 0) {
        if (k % 17 == 5 && !with_null_pk)
            return;
        run_insert(db, "INSERT OR IGNORE INTO t_nullpk VALUES(?1,?2)", 1, keys_nullpk, k);
    } else if (strcmp(table, "t_auto") == 0)
        run_insert(db, "INSERT INTO t_auto(v) VALUES(?1)", 1, NULL, k);
    else if (strcmp(table, "we\"ird name") == 0)
        run_insert(db, "INSERT OR IGNORE INTO \"we\"\"ird name\" VALUES(?1,?2)", 1, keys_int, k);
}

static const char *const all_tables[] = {"t_int",    "t_text",  "t_comp",       "t_wr",
                                         "t_nopk",   "t_mixed", "t_big",        "t_gen",
                                         "t_nullpk", "t_auto",  "we\"ird name", NULL};

static int table_rows(const char *t)
{
    if (strcmp(t, "t_big") == 0)
        return 6;
    return 60 + (int)rn(140);
}

static void make_base(const char *path, unsigned seed)
{
    rng_state = seed * 7919ull + 1;
    with_null_pk = seed % 3 == 0;
    remove(path);
    sqlite3 *db = open_db(path);
    exec(db, schema_sql);
    exec(db, "BEGIN");
    for (const char *const *t = all_tables; *t; t++) {
        int n = table_rows(*t);
        for (int k = 0; k < n; k++)
            insert_row(db, *t, k);
    }
    exec(db, "INSERT INTO t_fts(body) VALUES('hello world'),('other words')");
    exec(db, "COMMIT");
    sqlite3_close(db);
}

/* A WHERE clause picking one pseudo-random row of `t` (deterministic for a seed). */
static char *pick_row(const char *t)
{
    unsigned off = rn(1u << 20);
    if (strcmp(t, "t_wr") == 0)
        return sqlite3_mprintf("(x,y) IN (SELECT x,y FROM t_wr ORDER BY x,y LIMIT 1 OFFSET "
                               "(%u %% (SELECT max(count(*),1) FROM t_wr)))",
                               off);
    return sqlite3_mprintf("rowid IN (SELECT rowid FROM \"%w\" ORDER BY rowid LIMIT 1 OFFSET "
                           "(%u %% (SELECT max(count(*),1) FROM \"%w\")))",
                           t, off, t);
}

/* Random UPDATEs, DELETEs and INSERTs on every table of `path`. */
static void mutate(const char *path, unsigned seed)
{
    rng_state = seed * 104729ull + 17;
    sqlite3 *db = open_db(path);
    exec(db, "BEGIN");
    for (const char *const *t = all_tables; *t; t++) {
        int changes = 1 + (int)rn(12);
        for (int c = 0; c < changes; c++) {
            int what = (int)rn(10);
            char *where = pick_row(*t), *sql;
            sqlite3_stmt *st = NULL;
            if (what < 3) { /* delete a row */
                sql = sqlite3_mprintf("DELETE FROM \"%w\" WHERE %s", *t, where);
                exec(db, sql);
                sqlite3_free(sql);
            } else if (what < 5) { /* insert new keys, or a duplicate in the multiset */
                insert_row(db, *t, 1000 + (int)rn(400));
                if (strcmp(*t, "t_nopk") == 0 && rn(2)) {
                    sql =
                        sqlite3_mprintf("INSERT INTO t_nopk SELECT * FROM t_nopk WHERE %s", where);
                    exec(db, sql);
                    sqlite3_free(sql);
                }
            } else { /* update one non-PK column of a row */
                sql = sqlite3_mprintf("SELECT name FROM pragma_table_info(%Q) WHERE pk=0 LIMIT 1 "
                                      "OFFSET (%u %% (SELECT max(count(*),1) FROM "
                                      "pragma_table_info(%Q) WHERE pk=0))",
                                      *t, rn(1000), *t);
                assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
                sqlite3_free(sql);
                if (sqlite3_step(st) != SQLITE_ROW) {
                    sqlite3_finalize(st);
                    sqlite3_free(where);
                    continue;
                }
                char col[128];
                snprintf(col, sizeof(col), "%s", (const char *)sqlite3_column_text(st, 0));
                sqlite3_finalize(st);
                int mode = (int)rn(6);
                if (mode == 0) /* same value, other storage class, or the other zero */
                    sql = sqlite3_mprintf(
                        "UPDATE \"%w\" SET \"%w\" = CASE WHEN typeof(\"%w\")='integer' THEN "
                        "CAST(\"%w\" AS REAL) WHEN \"%w\" = 0.0 AND typeof(\"%w\")='real' "
                        "THEN -0.0 ELSE \"%w\" END WHERE %s",
                        *t, col, col, col, col, col, col, where);
                else
                    sql = sqlite3_mprintf("UPDATE \"%w\" SET \"%w\" = ?1 WHERE %s", *t, col, where);
                assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
                if (mode != 0)
                    bind_random(st, 1);
                int rc = sqlite3_step(st);
                if (rc != SQLITE_DONE && (rc & 0xff) != SQLITE_CONSTRAINT)
                    fail_msg("update failed: %s (%s)", sqlite3_errmsg(db), sql);
                sqlite3_finalize(st);
                sqlite3_free(sql);
            }
            sqlite3_free(where);
        }
    }
    exec(db, "INSERT INTO t_fts(body) VALUES('changed')");
    exec(db, "COMMIT");
    sqlite3_close(db);
}

/* ---- changeset iteration ------------------------------------------------------------------ */

static int in_list(const char *t, const char *const *list)
{
    for (; list && *list; list++)
        if (strcmp(*list, t) == 0)
            return 1;
    return 0;
}

/* Byte inequality of two text/blob values (empty ones have NULL pointers). */
static int bytes_differ(sqlite3_value *a, sqlite3_value *b)
{
    int n = sqlite3_value_bytes(a);
    if (n != sqlite3_value_bytes(b))
        return 1;
    return n > 0 && memcmp(sqlite3_value_blob(a), sqlite3_value_blob(b), (size_t)n) != 0;
}

static int val_type(sqlite3_value *v)
{
    return v ? sqlite3_value_type(v) : -1;
}

static int num_class(int t)
{
    return t == SQLITE_INTEGER || t == SQLITE_FLOAT ? SQLITE_INTEGER : t;
}

/* SQL "a IS NOT b" for two values without affinity. */
static int sql_differs(sqlite3_value *a, sqlite3_value *b)
{
    int ta = val_type(a), tb = val_type(b);
    if (num_class(ta) != num_class(tb))
        return 1;
    if (ta == SQLITE_NULL)
        return 0;
    if (ta == SQLITE_INTEGER && tb == SQLITE_INTEGER)
        return sqlite3_value_int64(a) != sqlite3_value_int64(b);
    if (num_class(ta) == SQLITE_INTEGER) {
        if (ta == SQLITE_INTEGER || tb == SQLITE_INTEGER) { /* exact int/real comparison */
            int64_t i = ta == SQLITE_INTEGER ? sqlite3_value_int64(a) : sqlite3_value_int64(b);
            double r = ta == SQLITE_FLOAT ? sqlite3_value_double(a) : sqlite3_value_double(b);
            if (r < -9223372036854775808.0 || r >= 9223372036854775808.0)
                return 1;
            return (double)(int64_t)r != r || (int64_t)r != i;
        }
        return sqlite3_value_double(a) != sqlite3_value_double(b);
    }
    return bytes_differ(a, b);
}

/* The session module's per-column test: other type, or other value (reals with ==). */
static int session_changed(sqlite3_value *a, sqlite3_value *b)
{
    int ta = val_type(a), tb = val_type(b);
    if (ta != tb)
        return 1;
    switch (ta) {
    case SQLITE_NULL:
        return 0;
    case SQLITE_INTEGER:
        return sqlite3_value_int64(a) != sqlite3_value_int64(b);
    case SQLITE_FLOAT:
        return sqlite3_value_double(a) != sqlite3_value_double(b);
    default:
        return bytes_differ(a, b);
    }
}

/* An iterator over the changeset cs (n bytes); asserts that it starts. */
static sqlite3_changeset_iter *changes_of(const void *cs, size_t n)
{
    sqlite3_changeset_iter *it = NULL;
    assert_int_equal(sqlite3changeset_start(&it, (int)n, (void *)cs), SQLITE_OK);
    return it;
}

/*
 * Lists the changes of a changeset as sorted strings "table|op|values". With `session_view`,
 * UPDATEs are reduced to what sqlite3session_diff would report (see diff.c).
 */
static void list_changes(strvec *out, const void *cs, size_t n, const char *const *only,
                         int session_view, int patchset)
{
    sqlite3_changeset_iter *it = changes_of(cs, n);
    while (sqlite3changeset_next(it) == SQLITE_ROW) {
        const char *tab;
        int ncol, op, ind;
        unsigned char *pk;
        assert_int_equal(sqlite3changeset_op(it, &tab, &ncol, &op, &ind), SQLITE_OK);
        assert_int_equal(sqlite3changeset_pk(it, &pk, NULL), SQLITE_OK);
        if (only && !in_list(tab, only))
            continue;
        char *s = NULL, tmp[32];
        size_t sn = 0, cap = 0;
        snprintf(tmp, sizeof(tmp), "|%d", op);
        str_append(&s, &sn, &cap, tab);
        str_append(&s, &sn, &cap, tmp);
        int keep = 1;
        if (op == SQLITE_UPDATE && session_view) {
            int found = 0;
            for (int i = 0; i < ncol; i++) {
                sqlite3_value *o = NULL, *nw = NULL;
                sqlite3changeset_old(it, i, &o);
                sqlite3changeset_new(it, i, &nw);
                if (!pk[i] && nw && sql_differs(o, nw))
                    found = 1;
            }
            keep = found;
        }
        for (int i = 0; i < ncol && keep; i++) {
            sqlite3_value *o = NULL, *nw = NULL;
            if (op != SQLITE_INSERT && !(patchset && op == SQLITE_UPDATE))
                sqlite3changeset_old(it, i, &o);
            if (op != SQLITE_DELETE)
                sqlite3changeset_new(it, i, &nw);
            str_append(&s, &sn, &cap, "|");
            if (op == SQLITE_UPDATE && !pk[i]) {
                if (!nw || (session_view && !session_changed(o, nw))) {
                    str_append(&s, &sn, &cap, "-");
                    continue;
                }
                if (!patchset) {
                    render_value(&s, &sn, &cap, o);
                    str_append(&s, &sn, &cap, ">");
                }
                render_value(&s, &sn, &cap, nw);
            } else if (op == SQLITE_UPDATE) {
                render_value(&s, &sn, &cap, patchset ? nw : o);
            } else {
                render_value(&s, &sn, &cap, op == SQLITE_INSERT ? nw : o);
            }
        }
        if (keep)
            vec_push(out, s);
        else
            free(s);
    }
    assert_int_equal(sqlite3changeset_finalize(it), SQLITE_OK);
    qsort(out->v, out->n, sizeof(char *), cmp_str);
}

static void session_changes(uint8_t **out, int *n, const char *base, const char *target,
                            int patchset)
{
    sqlite3 *db = open_db(target);
    sqlite3_session *s = NULL;
    char *sql = sqlite3_mprintf("ATTACH %Q AS aux", base);
    exec(db, sql);
    sqlite3_free(sql);
    assert_int_equal(sqlite3session_create(db, "main", &s), SQLITE_OK);
    for (const char *const *t = session_tables; *t; t++) {
        char *msg = NULL;
        assert_int_equal(sqlite3session_attach(s, *t), SQLITE_OK);
        int rc = sqlite3session_diff(s, "aux", *t, &msg);
        if (rc != SQLITE_OK)
            fail_msg("session diff %s: %d %s", *t, rc, msg ? msg : "");
        sqlite3_free(msg);
    }
    if (patchset)
        assert_int_equal(sqlite3session_patchset(s, n, (void **)out), SQLITE_OK);
    else
        assert_int_equal(sqlite3session_changeset(s, n, (void **)out), SQLITE_OK);
    sqlite3session_delete(s);
    sqlite3_close(db);
}

/* ---- applying --------------------------------------------------------------------------- */

typedef struct apply_ctx {
    strvec multiset; /* tables whose header does not match the DB's primary key */
    int conflicts;
} apply_ctx;

static int filter_pk_tables(void *p, const char *tab)
{
    return !vec_has(&((apply_ctx *)p)->multiset, tab);
}

static int on_conflict(void *p, int reason, sqlite3_changeset_iter *it)
{
    (void)reason;
    (void)it;
    ((apply_ctx *)p)->conflicts++;
    return SQLITE_CHANGESET_ABORT;
}

/* Strict equality of a stored value and a changeset value. */
static int same_value(sqlite3_value *a, sqlite3_value *b)
{
    if (val_type(a) != val_type(b))
        return 0;
    if (val_type(a) == SQLITE_FLOAT) {
        double x = sqlite3_value_double(a), y = sqlite3_value_double(b);
        return memcmp(&x, &y, 8) == 0;
    }
    return !session_changed(a, b);
}

/* Applies the changes of multiset tables: DELETE removes one identical row, INSERT adds one. */
static void apply_multiset(sqlite3 *db, const void *cs, size_t n, apply_ctx *ctx)
{
    sqlite3_changeset_iter *it = changes_of(cs, n);
    while (sqlite3changeset_next(it) == SQLITE_ROW) {
        const char *tab;
        int ncol, op, ind;
        assert_int_equal(sqlite3changeset_op(it, &tab, &ncol, &op, &ind), SQLITE_OK);
        if (!vec_has(&ctx->multiset, tab))
            continue;
        assert_int_not_equal(op, SQLITE_UPDATE);
        sqlite3_str *q = sqlite3_str_new(db);
        sqlite3_stmt *st = NULL;
        sqlite3_stmt *names = NULL;
        char *nsql = sqlite3_mprintf("SELECT name FROM pragma_table_info(%Q)", tab);
        assert_int_equal(sqlite3_prepare_v2(db, nsql, -1, &names, NULL), SQLITE_OK);
        sqlite3_free(nsql);
        char cols[64][64];
        int nc = 0;
        while (sqlite3_step(names) == SQLITE_ROW)
            snprintf(cols[nc++], 64, "%s", (const char *)sqlite3_column_text(names, 0));
        sqlite3_finalize(names);
        assert_int_equal(nc, ncol);
        if (op == SQLITE_INSERT) {
            sqlite3_str_appendf(q, "INSERT INTO \"%w\"(", tab);
            for (int i = 0; i < ncol; i++)
                sqlite3_str_appendf(q, "%s\"%w\"", i ? "," : "", cols[i]);
            sqlite3_str_appendall(q, ") VALUES(");
            for (int i = 0; i < ncol; i++)
                sqlite3_str_appendf(q, "%s?%d", i ? "," : "", i + 1);
            sqlite3_str_appendall(q, ")");
        } else {
            sqlite3_str_appendf(q, "SELECT rowid");
            for (int i = 0; i < ncol; i++)
                sqlite3_str_appendf(q, ",\"%w\"", cols[i]);
            sqlite3_str_appendf(q, " FROM \"%w\" WHERE 1", tab);
            for (int i = 0; i < ncol; i++)
                sqlite3_str_appendf(q, " AND \"%w\" IS ?%d", cols[i], i + 1);
        }
        char *sql = sqlite3_str_finish(q);
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        sqlite3_free(sql);
        for (int i = 0; i < ncol; i++) {
            sqlite3_value *v = NULL;
            if (op == SQLITE_INSERT)
                sqlite3changeset_new(it, i, &v);
            else
                sqlite3changeset_old(it, i, &v);
            assert_non_null(v);
            sqlite3_bind_value(st, i + 1, v);
        }
        if (op == SQLITE_INSERT) {
            assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        } else {
            int64_t victim = -1;
            while (victim < 0 && sqlite3_step(st) == SQLITE_ROW) {
                int ok = 1;
                for (int i = 0; i < ncol && ok; i++) {
                    sqlite3_value *v = NULL;
                    sqlite3changeset_old(it, i, &v);
                    ok = same_value(sqlite3_column_value(st, i + 1), v);
                }
                if (ok)
                    victim = sqlite3_column_int64(st, 0);
            }
            if (victim < 0)
                fail_msg("multiset DELETE in %s matches no row", tab);
            char *del =
                sqlite3_mprintf("DELETE FROM \"%w\" WHERE rowid=%lld", tab, (long long)victim);
            exec(db, del);
            sqlite3_free(del);
        }
        sqlite3_finalize(st);
    }
    assert_int_equal(sqlite3changeset_finalize(it), SQLITE_OK);
}

/* Applies a changeset or patchset to the DB at `path`. */
static void apply_changeset(const char *path, const void *cs, size_t n)
{
    sqlite3 *db = open_db(path);
    apply_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    /* find the tables whose header PK bytes differ from the DB's primary key */
    sqlite3_changeset_iter *it = changes_of(cs, n);
    while (sqlite3changeset_next(it) == SQLITE_ROW) {
        const char *tab;
        int ncol, op, ind;
        unsigned char *pk;
        sqlite3changeset_op(it, &tab, &ncol, &op, &ind);
        sqlite3changeset_pk(it, &pk, NULL);
        if (vec_has(&ctx.multiset, tab))
            continue;
        char *sql = sqlite3_mprintf("SELECT pk FROM pragma_table_info(%Q)", tab);
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        sqlite3_free(sql);
        int i = 0, same = 1;
        while (sqlite3_step(st) == SQLITE_ROW) {
            if (i >= ncol || sqlite3_column_int(st, 0) != pk[i])
                same = 0;
            i++;
        }
        sqlite3_finalize(st);
        if (!same || i != ncol) {
            for (int k = 0; k < ncol; k++)
                assert_true(pk[k] != 0); /* multisets flag every column */
            vec_push(&ctx.multiset, strdup(tab));
        }
    }
    assert_int_equal(sqlite3changeset_finalize(it), SQLITE_OK);
    exec(db, "BEGIN");
    int rc = sqlite3changeset_apply(db, (int)n, (void *)cs, filter_pk_tables, on_conflict, &ctx);
    if (rc != SQLITE_OK)
        fail_msg("apply failed: %d %s", rc, sqlite3_errmsg(db));
    assert_int_equal(ctx.conflicts, 0);
    apply_multiset(db, cs, n, &ctx);
    exec(db, "COMMIT");
    vec_free(&ctx.multiset);
    sqlite3_close(db);
}

/* The paths <scratch>/b.db (base) and <scratch>/<other_name> (other) in a fresh scratch dir
 * `tag`; base written by make_base(seed) when seed is not 0. */
static void scratch_pair(const char *tag, char base[512], char other[512], const char *other_name,
                         unsigned seed)
{
    const char *dir = tu_tmpdir(tag);
    snprintf(base, 512, "%s/b.db", dir);
    snprintf(other, 512, "%s/%s", dir, other_name);
    if (seed)
        make_base(base, seed);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void check_round_trip(const char *dir, unsigned seed)
{
    char base[512], target[512], applied[512], patched[512];
    snprintf(base, sizeof(base), "%s/base.db", dir);
    snprintf(target, sizeof(target), "%s/target.db", dir);
    snprintf(applied, sizeof(applied), "%s/applied.db", dir);
    snprintf(patched, sizeof(patched), "%s/patched.db", dir);
    make_base(base, seed);
    copy_db(base, target);
    mutate(target, seed);

    membuf cs, cs1, ps;
    pb_diff_stats st, st1, pst;
    diff_or_fail(&cs, &st, base, target, 0);
    assert_true(st.inserted + st.updated + st.deleted > 0);
    assert_int_equal(st.tables, 11);
    assert_true(st.tables_without_pk >= 1);
    assert_true(st.tables_skipped >= 3); /* sqlite_sequence, t_fts and its shadow tables */

    /* single-threaded reading gives the same bytes */
    diff_or_fail(&cs1, &st1, base, target, PB_DIFF_SINGLE_THREAD);
    assert_int_equal(cs1.n, cs.n);
    assert_memory_equal(cs1.p, cs.p, cs.n);

    /* valid, and the summary agrees with the stats */
    pb_error err = PB_ERROR_INIT;
    pb_changeset_summary sum;
    pb_changeset_check_options co = PB_CHANGESET_CHECK_OPTIONS_INIT;
    co.expect_bytes = cs.n;
    if (pb_changeset_validate_mem(&sum, cs.p, cs.n, &co, &err) != 0)
        fail_msg("seed %u: own changeset rejected: %s", seed, err.msg);
    assert_int_equal(sum.inserted, st.inserted);
    assert_int_equal(sum.updated, st.updated);
    assert_int_equal(sum.deleted, st.deleted);
    assert_int_equal(sum.tables, st.tables_changed);
    assert_int_equal(sum.patchset, 0);

    /* applied to the base it gives the target */
    copy_db(base, applied);
    apply_changeset(applied, cs.p, cs.n);
    pb_checksum ct = checksum_or_fail(target), ca = checksum_or_fail(applied),
                cb = checksum_or_fail(base);
    char h1[PB_CHECKSUM_HEX_SIZE], h2[PB_CHECKSUM_HEX_SIZE];
    if (!pb_checksum_equal(&ct, &ca))
        fail_msg("seed %u: checksum after apply %s != target %s", seed, pb_checksum_hex(h1, &ca),
                 pb_checksum_hex(h2, &ct));
    assert_false(pb_checksum_equal(&ct, &cb));
    char *dt = dump_db(target), *da = dump_db(applied);
    assert_string_equal(dt, da);
    free(dt);
    free(da);

    /* the same changes as sqlite3session_diff, up to the documented strictness */
    uint8_t *sess = NULL;
    int sn = 0;
    session_changes(&sess, &sn, base, target, 0);
    strvec mine = {0}, theirs = {0};
    list_changes(&mine, cs.p, cs.n, session_tables, 1, 0);
    list_changes(&theirs, sess, (size_t)sn, NULL, 0, 0);
    if (mine.n != theirs.n)
        fail_msg("seed %u: %zu changes vs %zu from the session module", seed, mine.n, theirs.n);
    for (size_t i = 0; i < mine.n; i++)
        if (strcmp(mine.v[i], theirs.v[i]) != 0)
            fail_msg("seed %u: change differs:\n  ours:    %.300s\n  session: %.300s", seed,
                     mine.v[i], theirs.v[i]);
    vec_free(&mine);
    vec_free(&theirs);
    sqlite3_free(sess);

    /* patchset: valid, applies to the same result */
    diff_or_fail(&ps, &pst, base, target, PB_DIFF_PATCHSET);
    assert_true(ps.n < cs.n);
    assert_int_equal(pst.inserted, st.inserted);
    assert_int_equal(pst.updated, st.updated);
    co.expect_bytes = ps.n;
    if (pb_changeset_validate_mem(&sum, ps.p, ps.n, &co, &err) != 0)
        fail_msg("seed %u: own patchset rejected: %s", seed, err.msg);
    assert_int_equal(sum.patchset, 1);
    copy_db(base, patched);
    apply_changeset(patched, ps.p, ps.n);
    pb_checksum cp = checksum_or_fail(patched);
    assert_true(pb_checksum_equal(&ct, &cp));

    /* the patchset plus the base gives back exactly the changeset (what the home rebuilds) */
    {
        char pspath[512];
        snprintf(pspath, sizeof(pspath), "%s/patch.bin", dir);
        FILE *f = fopen(pspath, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(ps.p, 1, ps.n, f), ps.n);
        fclose(f);
        membuf ex;
        memset(&ex, 0, sizeof(ex));
        pb_error_clear(&err);
        if (pb_changeset_expand(NULL, pspath, base, NULL, mem_out, &ex, &err) != 0)
            fail_msg("seed %u: expand failed: %s", seed, err.msg);
        assert_int_equal(ex.n, cs.n);
        assert_memory_equal(ex.p, cs.p, cs.n);
        free(ex.p);
        /* against another base (the target lacks the deleted rows): refused, one line */
        if (st.deleted > 0) {
            memset(&ex, 0, sizeof(ex));
            pb_error_clear(&err);
            assert_int_equal(pb_changeset_expand(NULL, pspath, target, NULL, mem_out, &ex, &err),
                             PB_ECORRUPT);
            assert_non_null(strstr(err.msg, "the base lacks"));
            free(ex.p);
        }
    }

    /* the reverse diff, applied to the target, gives the base back */
    membuf rv;
    pb_diff_stats rst;
    diff_or_fail(&rv, &rst, target, base, 0);
    assert_int_equal(rst.inserted, st.deleted);
    assert_int_equal(rst.deleted, st.inserted);
    assert_int_equal(rst.updated, st.updated);
    copy_db(target, applied);
    apply_changeset(applied, rv.p, rv.n);
    ca = checksum_or_fail(applied);
    assert_true(pb_checksum_equal(&cb, &ca));

    free(cs.p);
    free(cs1.p);
    free(ps.p);
    free(rv.p);
}

static void test_random_round_trips(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("sqldiff-rt");
    unsigned seeds = getenv("PB_SQLDIFF_SEEDS") ? (unsigned)atoi(getenv("PB_SQLDIFF_SEEDS")) : 40;
    for (unsigned seed = 1; seed <= seeds; seed++)
        check_round_trip(dir, seed);
}

/* Our comparator orders values exactly like SQLite (bound values: no affinity, BINARY). */
static void test_comparator_matches_sqlite(void **state)
{
    (void)state;
    sqlite3 *db = open_db(":memory:");
    sqlite3_stmt *cmp = NULL, *enc = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT ?1 < ?2, ?1 = ?2, ?1 > ?2", -1, &cmp, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT ?1, ?2", -1, &enc, NULL), SQLITE_OK);
    rng_state = 42;
    pb_error err = PB_ERROR_INIT;
    for (int k = 0; k < 20000; k++) {
        sqlite3_reset(enc);
        if (rn(4) == 0) { /* big integers against reals next to them */
            int64_t i = (int64_t)(rnd() >> rn(64));
            if (rn(2))
                i = -i;
            sqlite3_bind_int64(enc, 1, i);
            double r = (double)i;
            r = rn(3) == 0 ? r : rn(2) ? nextafter(r, INFINITY) : nextafter(r, -INFINITY);
            sqlite3_bind_double(enc, 2, r);
        } else {
            bind_random(enc, 1);
            bind_random(enc, 2);
        }
        assert_int_equal(sqlite3_step(enc), SQLITE_ROW);
        pb_rbuf b = {0};
        assert_int_equal(pb_rec__append_row(&b, enc, 2, 1, &err), 0);
        const uint32_t *off = (const uint32_t *)(const void *)b.p;
        const uint8_t *rec = b.p + PB_ROW_HDR(2);
        pb_val x, y;
        pb_rec__decode(rec + off[0], &x);
        pb_rec__decode(rec + off[1], &y);
        int mine = pb_rec__cmp(&x, &y);
        sqlite3_reset(cmp);
        sqlite3_bind_value(cmp, 1, sqlite3_column_value(enc, 0));
        sqlite3_bind_value(cmp, 2, sqlite3_column_value(enc, 1));
        assert_int_equal(sqlite3_step(cmp), SQLITE_ROW);
        int lt = sqlite3_column_int(cmp, 0), eq = sqlite3_column_int(cmp, 1);
        int gt = sqlite3_column_int(cmp, 2);
        if (sqlite3_column_type(cmp, 0) == SQLITE_NULL) { /* NULL operand: compare classes */
            int nx = x.type == PB_REC_NULL, ny = y.type == PB_REC_NULL;
            assert_int_equal(mine, nx && ny ? 0 : nx ? -1 : ny ? 1 : mine);
        } else {
            if ((mine < 0) != lt || (mine == 0) != eq || (mine > 0) != gt)
                fail_msg("comparator disagrees at %d: %d vs lt=%d eq=%d gt=%d (types %d %d)", k,
                         mine, lt, eq, gt, x.type, y.type);
        }
        /* and the encoding round-trips through decode's length */
        assert_int_equal(pb_rec__field_len(rec + off[0]), off[1] - off[0]);
        pb_rbuf__dispose(&b);
    }
    /* ORDER BY on an untyped column: our comparator sees a non-decreasing sequence */
    exec(db, "CREATE TABLE m(v)");
    sqlite3_stmt *ins = NULL, *sel = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO m VALUES(?1)", -1, &ins, NULL), SQLITE_OK);
    for (int k = 0; k < 3000; k++) {
        sqlite3_reset(ins);
        bind_random(ins, 1);
        assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
    }
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT v FROM m ORDER BY v COLLATE BINARY", -1, &sel, NULL),
        SQLITE_OK);
    pb_rbuf prev = {0}, cur = {0};
    int have = 0;
    while (sqlite3_step(sel) == SQLITE_ROW) {
        cur.n = 0;
        assert_int_equal(pb_rec__append_row(&cur, sel, 1, 1, &err), 0);
        if (have) {
            pb_val a, b;
            pb_rec__decode(prev.p + PB_ROW_HDR(1), &a);
            pb_rec__decode(cur.p + PB_ROW_HDR(1), &b);
            assert_true(pb_rec__cmp(&a, &b) <= 0);
        }
        pb_rbuf t = prev;
        prev = cur;
        cur = t;
        have = 1;
    }
    pb_rbuf__dispose(&prev);
    pb_rbuf__dispose(&cur);
    sqlite3_finalize(ins);
    sqlite3_finalize(sel);
    sqlite3_finalize(cmp);
    sqlite3_finalize(enc);
    sqlite3_close(db);
}

/* Single changes are byte-identical to what the session module writes. */
static void test_bytes_match_session(void **state)
{
    (void)state;
    char base[512], target[512];
    scratch_pair("sqldiff-bytes", base, target, "t.db", 0);
    static const char *const edits[] = {
        "INSERT INTO c VALUES(7, 'new', 2.5, x'00ff', NULL)",
        "DELETE FROM c WHERE a=1 AND b='one'",
        "UPDATE c SET c=-1.0, e='changed' WHERE a=2 AND b='two'",
        "UPDATE c SET d=NULL WHERE a=2 AND b='two'",
        "INSERT INTO i VALUES(5, 'five')",
        "UPDATE i SET v='x' WHERE id=1",
        "DELETE FROM i WHERE id=2",
    };
    for (size_t k = 0; k < sizeof(edits) / sizeof(edits[0]); k++) {
        remove(base);
        sqlite3 *db = open_db(base);
        exec(db, "CREATE TABLE c(e TEXT, c REAL, b TEXT, a INT, d BLOB, PRIMARY KEY(a, b));"
                 "INSERT INTO c VALUES('x', 1.5, 'one', 1, x'01'), ('y', 0.0, 'two', 2, x'');"
                 "CREATE TABLE i(id INTEGER PRIMARY KEY, v);"
                 "INSERT INTO i VALUES(1, 'one'), (2, 2), (3, 3.25)");
        sqlite3_close(db);
        copy_db(base, target);
        db = open_db(target);
        exec(db, edits[k]);
        sqlite3_close(db);
        membuf m;
        pb_diff_stats st;
        diff_or_fail(&m, &st, base, target, 0);
        uint8_t *s = NULL;
        int sn = 0;
        db = open_db(target);
        char *sql = sqlite3_mprintf("ATTACH %Q AS aux", base);
        exec(db, sql);
        sqlite3_free(sql);
        sqlite3_session *ses = NULL;
        assert_int_equal(sqlite3session_create(db, "main", &ses), SQLITE_OK);
        /* tables in our (name) order */
        assert_int_equal(sqlite3session_attach(ses, "c"), SQLITE_OK);
        assert_int_equal(sqlite3session_attach(ses, "i"), SQLITE_OK);
        assert_int_equal(sqlite3session_diff(ses, "aux", "c", NULL), SQLITE_OK);
        assert_int_equal(sqlite3session_diff(ses, "aux", "i", NULL), SQLITE_OK);
        assert_int_equal(sqlite3session_changeset(ses, &sn, (void **)&s), SQLITE_OK);
        if ((size_t)sn != m.n || memcmp(s, m.p, m.n) != 0)
            fail_msg("edit %zu: %zu bytes vs %d from the session module", k, m.n, sn);
        sqlite3session_delete(ses);
        sqlite3_close(db);
        sqlite3_free(s);
        free(m.p);
    }
}

static int count_tables(const pb_diff_table_stats *ts, void *payload)
{
    int *n = payload;
    (*n)++;
    assert_int_equal(ts->inserted + ts->updated + ts->deleted, 0);
    assert_int_equal(ts->bytes, 0);
    assert_int_equal(ts->rows_base, ts->rows_target);
    return 0;
}

/* Identical DBs: zero bytes, every table visited. */
static void test_identical_is_empty(void **state)
{
    (void)state;
    char base[512], copy[512];
    scratch_pair("sqldiff-same", base, copy, "c.db", 3);
    copy_db(base, copy);
    pb_error err = PB_ERROR_INIT;
    pb_diff_options o = PB_DIFF_OPTIONS_INIT;
    int tables = 0;
    o.table_done = count_tables;
    o.table_payload = &tables;
    membuf m;
    memset(&m, 0, sizeof(m));
    pb_diff_stats st;
    assert_int_equal(pb_sqldiff_diff(&st, base, copy, &o, mem_out, &m, &err), 0);
    assert_int_equal(m.n, 0);
    assert_int_equal(m.calls, 0);
    assert_int_equal(st.bytes, 0);
    assert_int_equal(tables, 11);
    assert_int_equal(st.tables, 11);
    assert_int_equal(st.tables_changed, 0);
    assert_true(st.rows_compared > 0);
    assert_int_equal(pb_changeset_validate_mem(NULL, "", 0, NULL, &err), 0);
    free(m.p);
}

static void make_simple(const char *path, const char *sql)
{
    remove(path);
    sqlite3 *db = open_db(path);
    exec(db, sql);
    sqlite3_close(db);
}

static int skip_extra(const char *table, void *payload)
{
    (void)payload;
    return strcmp(table, "extra") != 0;
}

static int failing_out(void *payload, const void *data, size_t n, pb_error *err)
{
    (void)data;
    (void)n;
    (void)err;
    return *(int *)payload;
}

static void test_schema_and_errors(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("sqldiff-schema");
    char a[512], b[512], c[512], u16[512];
    snprintf(a, sizeof(a), "%s/a.db", dir);
    snprintf(b, sizeof(b), "%s/b.db", dir);
    snprintf(c, sizeof(c), "%s/c.db", dir);
    snprintf(u16, sizeof(u16), "%s/u16.db", dir);
    make_simple(a, "CREATE TABLE t(id INTEGER PRIMARY KEY, v); INSERT INTO t VALUES(1,'a');");
    make_simple(b, "CREATE TABLE t(id INTEGER PRIMARY KEY, v); INSERT INTO t VALUES(1,'b');"
                   "CREATE TABLE extra(x);");
    make_simple(c, "CREATE TABLE t(id INTEGER PRIMARY KEY, w);");
    membuf m;
    memset(&m, 0, sizeof(m));
    pb_error err = PB_ERROR_INIT;
    assert_int_equal(pb_sqldiff_diff(NULL, a, b, NULL, mem_out, &m, &err), PB_ESCHEMA);
    assert_non_null(strstr(err.msg, "extra"));
    assert_int_equal(m.n, 0); /* checked before any output */
    pb_error_clear(&err);
    assert_int_equal(pb_sqldiff_diff(NULL, a, c, NULL, mem_out, &m, &err), PB_ESCHEMA);
    assert_non_null(strstr(err.msg, "t"));
    /* the filter takes the extra table out */
    pb_diff_options o = PB_DIFF_OPTIONS_INIT;
    o.include = skip_extra;
    pb_diff_stats st;
    pb_error_clear(&err);
    assert_int_equal(pb_sqldiff_diff(&st, a, b, &o, mem_out, &m, &err), 0);
    assert_int_equal(st.updated, 1);
    assert_int_equal(st.tables_skipped, 0); /* counted on the base side, which has no extra */
    /* missing file, bad options */
    pb_error_clear(&err);
    char nope[600];
    snprintf(nope, sizeof(nope), "%s/nope.db", dir);
    assert_int_equal(pb_sqldiff_diff(NULL, nope, b, NULL, mem_out, &m, &err), PB_ENOTFOUND);
    o.version = 99;
    pb_error_clear(&err);
    assert_int_equal(pb_sqldiff_diff(NULL, a, b, &o, mem_out, &m, &err), PB_EINVALID);
    /* the output callback's errors come back */
    int code = PB_EIO;
    pb_error_clear(&err);
    assert_int_equal(pb_sqldiff_diff(NULL, a, b,
                                     &(pb_diff_options){.version = 1, .include = skip_extra},
                                     failing_out, &code, &err),
                     PB_EIO);
    code = 1;
    pb_error_clear(&err);
    assert_int_equal(pb_sqldiff_diff(NULL, a, b,
                                     &(pb_diff_options){.version = 1, .include = skip_extra},
                                     failing_out, &code, &err),
                     PB_ECANCELLED);
    /* UTF-16: no diff (ORDER BY would not be bytewise UTF-8), but a checksum */
    make_simple(u16, "PRAGMA encoding='UTF-16le'; CREATE TABLE t(id INTEGER PRIMARY KEY, v);"
                     "INSERT INTO t VALUES(1,'a');");
    pb_error_clear(&err);
    assert_int_equal(pb_sqldiff_diff(NULL, u16, a, NULL, mem_out, &m, &err), PB_EINVALID);
    pb_checksum x, y;
    pb_error_clear(&err);
    assert_int_equal(pb_sqldiff_checksum(&x, u16, NULL, &err), 0);
    assert_int_equal(pb_sqldiff_checksum(&y, a, NULL, &err), 0);
    assert_true(pb_checksum_equal(&x, &y)); /* same rows, other encoding */
    free(m.p);
}

/* Rebuilds `from` into `to` table by table, rows inserted in reverse order. */
static void rebuild_reversed(const char *from, const char *to)
{
    remove(to);
    sqlite3 *db = open_db(to);
    exec(db, "PRAGMA page_size=1024");
    exec(db, schema_sql);
    char *sql = sqlite3_mprintf("ATTACH %Q AS src", from);
    exec(db, sql);
    sqlite3_free(sql);
    exec(db, "BEGIN");
    for (const char *const *t = all_tables; *t; t++) {
        sqlite3_str *q = sqlite3_str_new(db);
        sqlite3_stmt *st = NULL;
        char *cs = sqlite3_mprintf("SELECT group_concat('\"' || replace(name, '\"', '\"\"') || "
                                   "'\"', ',') FROM pragma_table_info(%Q)",
                                   *t);
        assert_int_equal(sqlite3_prepare_v2(db, cs, -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        const char *cols = (const char *)sqlite3_column_text(st, 0);
        /* t_auto's ids are kept, so that its rows compare */
        sqlite3_str_appendf(q,
                            "INSERT INTO main.\"%w\"(%s) SELECT %s FROM src.\"%w\" ORDER BY "
                            "rowid DESC",
                            *t, cols, cols, *t);
        if (strcmp(*t, "t_wr") == 0) {
            sqlite3_free(sqlite3_str_finish(q));
            q = sqlite3_str_new(db);
            sqlite3_str_appendf(q, "INSERT INTO main.t_wr SELECT * FROM src.t_wr ORDER BY x DESC, "
                                   "y DESC");
        }
        char *ins = sqlite3_str_finish(q);
        exec(db, ins);
        sqlite3_free(ins);
        sqlite3_finalize(st);
        sqlite3_free(cs);
    }
    exec(db, "COMMIT");
    sqlite3_close(db);
}

static void expect_changed(const char *path, const char *sql, const pb_checksum *orig)
{
    char copy[600];
    snprintf(copy, sizeof(copy), "%s.mod", path);
    copy_db(path, copy);
    sqlite3 *db = open_db(copy);
    exec(db, sql);
    sqlite3_close(db);
    pb_checksum c = checksum_or_fail(copy);
    if (pb_checksum_equal(&c, orig))
        fail_msg("checksum unchanged by: %s", sql);
}

static int record_table(const pb_table_checksum *tc, void *payload)
{
    (*(unsigned *)payload)++;
    assert_non_null(tc->table);
    return 0;
}

static void test_checksum(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("sqldiff-ck");
    char base[512], vac[512], rev[512];
    snprintf(base, sizeof(base), "%s/b.db", dir);
    snprintf(vac, sizeof(vac), "%s/v.db", dir);
    snprintf(rev, sizeof(rev), "%s/r.db", dir);
    make_base(base, 6); /* with NULL PKs and duplicates */
    pb_checksum c0 = checksum_or_fail(base);
    char hex[PB_CHECKSUM_HEX_SIZE];
    assert_int_equal(strlen(pb_checksum_hex(hex, &c0)), 32);
    assert_int_equal(c0.tables, 11);
    assert_true(c0.rows > 500);

    /* layout-independent: VACUUM INTO, in-place VACUUM, reversed insertion, other page size */
    copy_db(base, vac);
    pb_checksum c1 = checksum_or_fail(vac);
    assert_true(pb_checksum_equal(&c0, &c1));
    sqlite3 *db = open_db(vac);
    exec(db, "DELETE FROM t_fts; PRAGMA page_size=8192; VACUUM");
    sqlite3_close(db);
    c1 = checksum_or_fail(vac);
    assert_true(pb_checksum_equal(&c0, &c1));
    rebuild_reversed(base, rev);
    c1 = checksum_or_fail(rev);
    assert_true(pb_checksum_equal(&c0, &c1));
    assert_int_equal(c1.rows, c0.rows);
    /* single-threaded reading agrees */
    pb_diff_options o = PB_DIFF_OPTIONS_INIT;
    unsigned nt = 0;
    o.flags = PB_DIFF_SINGLE_THREAD;
    o.table_checksum = record_table;
    o.table_payload = &nt;
    pb_error err = PB_ERROR_INIT;
    assert_int_equal(pb_sqldiff_checksum(&c1, base, &o, &err), 0);
    assert_true(pb_checksum_equal(&c0, &c1));
    assert_int_equal(nt, 11);

    /* sensitive to every kind of change */
    expect_changed(base,
                   "UPDATE t_int SET a = CASE WHEN a IS 12345 THEN 12346 ELSE 12345 END WHERE "
                   "id = (SELECT min(id) FROM t_int)",
                   &c0);
    expect_changed(base, "UPDATE t_int SET e = 0.0 WHERE id = (SELECT min(id) FROM t_int)", &c0);
    db = open_db(base);
    exec(db, "UPDATE t_int SET e = 0.0 WHERE id = (SELECT min(id) FROM t_int)");
    sqlite3_close(db);
    c0 = checksum_or_fail(base);
    expect_changed(base, "UPDATE t_int SET e = -0.0 WHERE id = (SELECT min(id) FROM t_int)", &c0);
    expect_changed(base, "UPDATE t_int SET e = 0 WHERE id = (SELECT min(id) FROM t_int)", &c0);
    expect_changed(base,
                   "UPDATE t_text SET v = CAST(v AS BLOB) WHERE typeof(v)='text' AND "
                   "rowid = (SELECT min(rowid) FROM t_text WHERE typeof(v)='text')",
                   &c0);
    expect_changed(base, "INSERT INTO t_nopk SELECT * FROM t_nopk LIMIT 1", &c0);
    expect_changed(base, "DELETE FROM t_nopk WHERE rowid = (SELECT min(rowid) FROM t_nopk)", &c0);
    expect_changed(base, "UPDATE t_big SET big = big || 'x' WHERE id = 0", &c0);
    expect_changed(base, "DELETE FROM t_wr WHERE x = (SELECT min(x) FROM t_wr)", &c0);
    /* two values swapped between rows: same multiset of values, different rows */
    expect_changed(base,
                   "UPDATE t_gen SET p = CASE id WHEN 0 THEN (SELECT p FROM t_gen WHERE id=1) "
                   "ELSE (SELECT p FROM t_gen WHERE id=0) END WHERE id IN (0,1) AND "
                   "(SELECT p FROM t_gen WHERE id=0) IS NOT (SELECT p FROM t_gen WHERE id=1)",
                   &c0);
    expect_changed(base, "ALTER TABLE t_int RENAME COLUMN e TO e2", &c0);
    expect_changed(base, "CREATE TABLE newtab(x)", &c0);
}

/* ---- validator ------------------------------------------------------------------------- */

typedef struct strm_in {
    const uint8_t *p;
    size_t n, chunk;
} strm_in;

static int sqlite_in(void *payload, void *data, int *n)
{
    strm_in *s = payload;
    size_t take = s->n < (size_t)*n ? s->n : (size_t)*n;
    if (take > s->chunk)
        take = s->chunk;
    memcpy(data, s->p, take);
    s->p += take;
    s->n -= take;
    *n = (int)take;
    return SQLITE_OK;
}

/* SQLite's own verdict: 0 when its streaming iterator reads it all, else its error. */
static int sqlite_verdict(const uint8_t *p, size_t n, int *changes)
{
    strm_in in = {p, n, 7};
    sqlite3_changeset_iter *it = NULL;
    int rc = sqlite3changeset_start_strm(&it, sqlite_in, &in);
    *changes = 0;
    if (rc != SQLITE_OK)
        return rc;
    while ((rc = sqlite3changeset_next(it)) == SQLITE_ROW) {
        sqlite3_value *v;
        const char *tab;
        int ncol, op, ind;
        sqlite3changeset_op(it, &tab, &ncol, &op, &ind);
        for (int i = 0; i < ncol; i++) { /* touch the values, as an applier would */
            if (op != SQLITE_INSERT)
                sqlite3changeset_old(it, i, &v);
            if (op != SQLITE_DELETE)
                sqlite3changeset_new(it, i, &v);
        }
        (*changes)++;
    }
    int frc = sqlite3changeset_finalize(it);
    return rc == SQLITE_DONE ? frc : rc;
}

/*
 * SQLite's verdict run in a child, because SQLite 3.40.1's iterator (start and start_strm)
 * loops forever on a changeset cut inside a table header: 0 read fine, 1 rejected, 2 hung.
 */
static int sqlite_verdict_safe(const uint8_t *p, size_t n)
{
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* 0.3 s of CPU time: ample for a few KB, robust on a loaded machine */
        int changes;
        struct itimerval cpu = {{0, 0}, {0, 300000}};
        setitimer(ITIMER_PROF, &cpu, NULL);
        _exit(sqlite_verdict(p, n, &changes) == SQLITE_OK ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGPROF)
        return 2;
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* Documents the SQLite behaviour that makes pb_changeset_validate mandatory before apply. */
static void test_sqlite_hangs_on_cut_header(void **state)
{
    (void)state;
    static const uint8_t cs[] = {'T', 2, 1, 0, 't', 0, 9, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 5};
    for (size_t cut = 1; cut < 5; cut++) {
        pb_error err = PB_ERROR_INIT;
        assert_int_equal(pb_changeset_validate_mem(NULL, cs, cut, NULL, &err), PB_ECORRUPT);
        int v = sqlite_verdict_safe(cs, cut);
        printf("cut %zu: SQLite %s\n", cut, v == 2 ? "hangs" : v ? "rejects" : "accepts");
        assert_int_not_equal(v, 0);
    }
    /* a header without changes: SQLite accepts it as empty, we do not */
    pb_error err = PB_ERROR_INIT;
    assert_int_equal(sqlite_verdict_safe(cs, 6), 0);
    assert_int_equal(pb_changeset_validate_mem(NULL, cs, 6, NULL, &err), PB_ECORRUPT);
}

static void test_validator(void **state)
{
    (void)state;
    char base[512], target[512];
    scratch_pair("sqldiff-val", base, target, "t.db", 4);
    sqlite3 *db = open_db(base);
    exec(db, "DELETE FROM t_big"); /* keep it small: every prefix is validated */
    sqlite3_close(db);
    copy_db(base, target);
    mutate(target, 4);
    membuf cs;
    pb_diff_stats st;
    diff_or_fail(&cs, &st, base, target, 0);
    size_t n = cs.n;
    uint64_t changes = st.inserted + st.updated + st.deleted;
    assert_true(n > 500);

    /* every truncation: rejected, unless cut exactly between changes */
    unsigned accepted = 0;
    for (size_t cut = 0; cut < n; cut++) {
        pb_error err = PB_ERROR_INIT;
        int rc = pb_changeset_validate_mem(NULL, cs.p, cut, NULL, &err);
        if (rc == 0) { /* SQLite also reads such prefixes, and as many changes */
            int sc;
            accepted++;
            assert_int_equal(sqlite_verdict(cs.p, cut, &sc), SQLITE_OK);
            assert_int_equal(sc, accepted - 1);
        } else {
            assert_int_equal(rc, PB_ECORRUPT);
            assert_non_null(strstr(err.msg, "byte "));
        }
        /* with the expected length, no truncation passes */
        pb_changeset_check_options co = PB_CHANGESET_CHECK_OPTIONS_INIT;
        co.expect_bytes = n;
        pb_error_clear(&err);
        assert_int_equal(pb_changeset_validate_mem(NULL, cs.p, cut, &co, &err), PB_ECORRUPT);
    }
    assert_int_equal(accepted, changes); /* offset 0 and the end of every change but the last */

    /* random corruption: whatever SQLite's iterator rejects (or hangs on), we reject too; what
     * we accept, SQLite reads */
    rng_state = 99;
    uint8_t *bad = malloc(n);
    unsigned ours = 0, sqlite_rej = 0, sqlite_hung = 0;
    for (int k = 0; k < 2000; k++) {
        memcpy(bad, cs.p, n);
        int flips = 1 + (int)rn(3);
        for (int f = 0; f < flips; f++)
            bad[rn((unsigned)n)] ^= (uint8_t)(1 + rn(255));
        pb_error err = PB_ERROR_INIT;
        int rc = pb_changeset_validate_mem(NULL, bad, n, NULL, &err);
        int theirs = sqlite_verdict_safe(bad, n);
        if (rc)
            ours++;
        sqlite_rej += theirs == 1;
        sqlite_hung += theirs == 2;
        if (theirs && rc != PB_ECORRUPT)
            fail_msg("flip %d: SQLite %s but we accept", k, theirs == 2 ? "hangs" : "rejects");
        assert_true(rc == 0 || rc == PB_ECORRUPT);
    }
    printf("corruptions: %u of 2000 rejected by us; SQLite's iterator rejected %u, hung on %u\n",
           ours, sqlite_rej, sqlite_hung);
    free(bad);

    /* FILE input and the per-table summary */
    FILE *f = tmpfile();
    assert_int_equal(fwrite(cs.p, 1, n, f), n);
    rewind(f);
    pb_changeset_summary sum;
    pb_error err = PB_ERROR_INIT;
    assert_int_equal(pb_changeset_validate_file(&sum, f, NULL, &err), 0);
    assert_int_equal(sum.bytes, n);
    assert_int_equal(sum.inserted + sum.updated + sum.deleted, changes);
    fclose(f);
    free(cs.p);
}

typedef struct crafted {
    const char *what;
    const uint8_t *p;
    size_t n;
    const char *needle;
} crafted;

static void test_validator_crafted(void **state)
{
    (void)state;
    /* T, 2 columns, PK flags {1,0}, "t", INSERT (1, 'ab') */
    static const uint8_t good[] = {'T', 2, 1, 0, 't', 0, 18, 0, 1,   0,  0,
                                   0,   0, 0, 0, 0,   1, 3,  2, 'a', 'b'};
    static const uint8_t bad_type[] = {'T', 2, 1, 0, 't', 0, 18, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 7};
    static const uint8_t overflow[] = {'T',  2,    1,    0,    't',  0,    18,   0,    1,
                                       0,    0,    0,    0,    0,    0,    0,    1,    3,
                                       0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t ncol_mismatch[] = {'T', 2, 1, 0, 't', 0, 9, 0, 5, 5, 'T',
                                            3,   1, 0, 0, 't', 0, 9, 0, 5, 5, 5};
    static const uint8_t bad_op[] = {'T', 1, 1, 't', 0, 0x42, 0, 5};
    static const uint8_t undef_insert[] = {'T', 2, 1, 0, 't', 0, 18, 0, 5, 0};
    static const uint8_t empty_group[] = {'T', 1, 1, 'a', 0, 'T', 1, 1, 'b', 0, 9, 0, 5};
    static const uint8_t no_pk[] = {'T', 1, 0, 't', 0, 9, 0, 5};
    static const uint8_t bad_indirect[] = {'T', 1, 1, 't', 0, 9, 2, 5};
    static const uint8_t noop_update[] = {'T', 2, 1, 0, 't', 0, 23, 0, 5, 0, 0, 0};
    static const uint8_t unpaired[] = {'T', 2, 1, 0, 't', 0, 23, 0, 5, 5, 0, 0};
    static const uint8_t nan[] = {'T', 1, 1, 't', 0, 9, 0, 2, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0};
    static const uint8_t mixed[] = {'T', 1, 1, 'a', 0, 9, 0, 5, 'P', 1, 1, 'b', 0, 9, 0, 5};
    static const uint8_t ncol_zero[] = {'T', 0, 't', 0};
    static const uint8_t no_header[] = {9, 0, 5};
    const crafted cases[] = {
        {"bad type byte", bad_type, sizeof(bad_type), "type byte 0x07"},
        {"varint overflow", overflow, sizeof(overflow), "varint overflow"},
        {"column count mismatch", ncol_mismatch, sizeof(ncol_mismatch), "column count mismatch"},
        {"unknown op", bad_op, sizeof(bad_op), "unknown op 0x42"},
        {"undefined in INSERT", undef_insert, sizeof(undef_insert), "undefined"},
        {"empty table group", empty_group, sizeof(empty_group), "without changes"},
        {"no PK column", no_pk, sizeof(no_pk), "primary key"},
        {"indirect flag", bad_indirect, sizeof(bad_indirect), "indirect"},
        {"no-op UPDATE", noop_update, sizeof(noop_update), "changes nothing"},
        {"unpaired UPDATE", unpaired, sizeof(unpaired), "pair"},
        {"NaN", nan, sizeof(nan), "NaN"},
        {"mixed T/P", mixed, sizeof(mixed), "mixed"},
        {"zero columns", ncol_zero, sizeof(ncol_zero), "column count 0"},
        {"no header", no_header, sizeof(no_header), "expected a table header"},
        {"truncated value", good, sizeof(good) - 1, "truncated text value"},
        {"truncated integer", good, 12, "truncated integer value"},
        {"truncated name", good, 5, "truncated table name"},
    };
    pb_error err = PB_ERROR_INIT;
    pb_changeset_summary sum;
    assert_int_equal(pb_changeset_validate_mem(&sum, good, sizeof(good), NULL, &err), 0);
    assert_int_equal(sum.inserted, 1);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pb_error_clear(&err);
        int rc = pb_changeset_validate_mem(NULL, cases[i].p, cases[i].n, NULL, &err);
        if (rc != PB_ECORRUPT || !strstr(err.msg, cases[i].needle))
            fail_msg("%s: rc %d, message \"%s\"", cases[i].what, rc, err.msg);
        assert_non_null(strstr(err.msg, "byte "));
    }
    /* trailing bytes against an expected length */
    pb_changeset_check_options co = PB_CHANGESET_CHECK_OPTIONS_INIT;
    co.expect_bytes = sizeof(good) - 2;
    pb_error_clear(&err);
    assert_int_equal(pb_changeset_validate_mem(NULL, good, sizeof(good), &co, &err), PB_ECORRUPT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_comparator_matches_sqlite),
        cmocka_unit_test(test_bytes_match_session),
        cmocka_unit_test(test_identical_is_empty),
        cmocka_unit_test(test_schema_and_errors),
        cmocka_unit_test(test_checksum),
        cmocka_unit_test(test_validator_crafted),
        cmocka_unit_test(test_sqlite_hangs_on_cut_header),
        cmocka_unit_test(test_validator),
        cmocka_unit_test(test_random_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

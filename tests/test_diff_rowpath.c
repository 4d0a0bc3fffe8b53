/*
 * test_diff_rowpath.c: the diff's fast row path, the row function of sqldiff/rowsrc.c
 * (PB_ROWSRC_FN), over DBs built here with plain SQL:
 *  - rows read through it are byte-identical to the per-column encoder (pb_rec__append_row) for
 *    every value type, large text spanning overflow pages and batches, and both reading modes;
 *  - the path is left (packed = 0) where the plan sorts (a PK with another collation, the
 *    multiset order) or the table has more columns than an SQL function takes;
 *  - a sort that would run the row function for every row before the first step is caught
 *    (PB_ECORRUPT), never turned into wrong rows;
 *  - whole diffs give the same bytes threaded and on one thread, and identical DBs give none.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "testutil.h"
#include "plexburst/sqldiff.h"
#include "record.h"
#include "rowsrc.h"
#include "tables.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Binds a random value of a random type (large text now and then) to parameter i. */
static void bind_any(sqlite3_stmt *st, int i)
{
    static char big[300000];
    unsigned k = (unsigned)(rnd() % 9);
    if (k == 0) {
        sqlite3_bind_null(st, i);
    } else if (k == 1) {
        sqlite3_bind_int64(st, i, (int64_t)rnd());
    } else if (k == 2) {
        sqlite3_bind_double(st, i, (double)(int64_t)rnd() / 7.0);
    } else if (k == 3) {
        sqlite3_bind_double(st, i, rnd() % 2 ? -0.0 : 1.0);
    } else if (k == 4) {
        uint8_t b[40];
        for (size_t j = 0; j < sizeof(b); j++)
            b[j] = (uint8_t)rnd();
        sqlite3_bind_blob(st, i, b, (int)(rnd() % sizeof(b)), SQLITE_TRANSIENT);
    } else if (k == 5 && rnd() % 8 == 0) { /* overflow pages, and more than one batch */
        size_t n = 1000 + (size_t)(rnd() % (sizeof(big) - 1000));
        for (size_t j = 0; j < n; j++)
            big[j] = (char)('a' + j % 26);
        sqlite3_bind_text(st, i, big, (int)n, SQLITE_STATIC);
    } else {
        const char *w[] = {"", "é", "plex", "Ünïcødé title", "x\xe2\x82\xac", "a b c d e f g"};
        sqlite3_bind_text(st, i, w[rnd() % 6], -1, SQLITE_STATIC);
    }
}

/* Fills table `t` (ncol columns, the first an INTEGER PRIMARY KEY unless `keyless`) with n
 * random rows. */
static void fill(sqlite3 *db, const char *t, int ncol, int n, int keyless)
{
    tu_buf sql = {0};
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "INSERT INTO \"%s\" VALUES(", t);
    tu_buf_str(&sql, tmp);
    for (int i = 0; i < ncol; i++)
        tu_buf_str(&sql, i ? ",?" : "?");
    tu_buf_str(&sql, ")");
    sqlite3_stmt *st = tu_prepare(db, sql.p);
    for (int r = 0; r < n; r++) {
        for (int i = 1; i <= ncol; i++) {
            if (i == 1 && !keyless)
                sqlite3_bind_int64(st, 1, r * 3 + 1);
            else
                bind_any(st, i);
        }
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    free(sql.p);
}

static void create_wide(sqlite3 *db, const char *t, int ncol)
{
    tu_buf sql = {0};
    char tmp[96];
    snprintf(tmp, sizeof(tmp), "CREATE TABLE \"%s\"(c0 INTEGER PRIMARY KEY", t);
    tu_buf_str(&sql, tmp);
    for (int i = 1; i < ncol; i++) {
        snprintf(tmp, sizeof(tmp), ", c%d", i);
        tu_buf_str(&sql, tmp);
    }
    tu_buf_str(&sql, ")");
    tu_exec_ok(db, sql.p);
    free(sql.p);
}

static void build_base(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    tu_exec_ok(db, "PRAGMA journal_mode=DELETE; BEGIN;"
                   "CREATE TABLE items(id INTEGER PRIMARY KEY, a, b TEXT, c REAL, d BLOB, e INT);"
                   "CREATE TABLE pairs(k1 INT, k2 TEXT, v, PRIMARY KEY(k1, k2)) WITHOUT ROWID;"
                   "CREATE TABLE named(name TEXT COLLATE NOCASE PRIMARY KEY, v);"
                   "CREATE TABLE loose(a, b, c);");
    fill(db, "items", 6, 3000, 0);
    sqlite3_stmt *st = tu_prepare(db, "INSERT OR IGNORE INTO pairs VALUES(?1, ?2, ?3)");
    for (int r = 0; r < 2000; r++) {
        char k[32];
        snprintf(k, sizeof(k), "k%d", (int)(rnd() % 500));
        sqlite3_bind_int(st, 1, (int)(rnd() % 40));
        sqlite3_bind_text(st, 2, k, -1, SQLITE_TRANSIENT);
        bind_any(st, 3);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    st = tu_prepare(db, "INSERT OR IGNORE INTO named VALUES(?1, ?2)");
    for (int r = 0; r < 500; r++) {
        char k[32];
        snprintf(k, sizeof(k), "%s%d", rnd() % 2 ? "Name" : "name", (int)(rnd() % 400));
        sqlite3_bind_text(st, 1, k, -1, SQLITE_TRANSIENT);
        bind_any(st, 2);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    fill(db, "loose", 3, 300, 1);
    tu_exec_ok(db, "INSERT INTO loose SELECT * FROM loose WHERE rowid % 7 = 0");
    create_wide(db, "wide", 140); /* more columns than a function takes (127 by default) */
    fill(db, "wide", 140, 50, 0);
    create_wide(db, "wide100", 100);
    fill(db, "wide100", 100, 200, 0);
    tu_exec_ok(db, "COMMIT");
    sqlite3_close(db);
}

static void build_target(const char *base, const char *target)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(base, &db), SQLITE_OK);
    char *sql = sqlite3_mprintf("VACUUM INTO %Q", target);
    tu_exec_ok(db, sql);
    sqlite3_free(sql);
    sqlite3_close(db);
    assert_int_equal(sqlite3_open(target, &db), SQLITE_OK);
    tu_exec_ok(db, "BEGIN;"
                   "UPDATE items SET b = b || ' (cut)' WHERE id % 11 = 1;"
                   "UPDATE items SET c = -0.0 WHERE id % 13 = 1;"
                   "DELETE FROM items WHERE id % 17 = 1;"
                   "INSERT INTO items(id, a, b) VALUES(100000, 'new', 'row'), (100003, x'00', 1);"
                   "UPDATE pairs SET v = 42 WHERE k1 = 3;"
                   "DELETE FROM pairs WHERE k1 = 5;"
                   "UPDATE named SET v = 'changed' WHERE rowid % 5 = 0;"
                   "DELETE FROM loose WHERE rowid % 9 = 0;"
                   "INSERT INTO loose SELECT * FROM loose WHERE rowid % 10 = 0;"
                   "UPDATE wide SET c139 = 'last' WHERE c0 % 4 = 1;"
                   "UPDATE wide100 SET c99 = 'last', c50 = NULL WHERE c0 % 4 = 1;"
                   "COMMIT");
    sqlite3_close(db);
}

/* Reads every row of `t` through both paths (both reading modes) and compares the bytes; each
 * path has its own connection (a source's reader thread owns its connection). `expect_packed`:
 * whether the fast path is taken, -1 for either. */
static void compare_paths(sqlite3 *dr, sqlite3 *db, const pb_table *t, int order, int expect_packed)
{
    pb_error err = PB_ERROR_INIT;
    for (int threaded = 0; threaded < 2; threaded++) {
        pb_rowsrc ref, fast;
        sqlite3_stmt *sr = NULL, *sf = NULL;
        int packed = -1;
        assert_int_equal(pb_rowsrc__register(&fast, db, &err), 0);
        assert_int_equal(pb_tables__select(&sr, dr, t, order, &err), 0);
        assert_int_equal(pb_tables__select_packed(&sf, &packed, db, t, order, &err), 0);
        if (expect_packed >= 0 && packed != expect_packed)
            fail_msg("table %s: packed %d, expected %d", t->name, packed, expect_packed);
        assert_int_equal(pb_rowsrc__open(&ref, sr, t->ncol, 1, threaded, &err), 0);
        if (packed)
            assert_int_equal(pb_rowsrc__open_packed(&fast, sf, t->ncol, threaded, &err), 0);
        else
            assert_int_equal(pb_rowsrc__open(&fast, sf, t->ncol, 1, threaded, &err), 0);
        uint64_t rows = 0;
        for (;;) {
            assert_int_equal(pb_rowsrc__next(&ref, &err), 0);
            if (pb_rowsrc__next(&fast, &err) != 0)
                fail_msg("table %s: %s", t->name, err.msg);
            assert_int_equal(ref.eof, fast.eof);
            if (ref.eof)
                break;
            uint32_t len = ref.row.off[t->ncol];
            assert_int_equal(len, fast.row.off[t->ncol]);
            assert_memory_equal(ref.row.off, fast.row.off, PB_ROW_HDR(t->ncol));
            assert_memory_equal(ref.row.rec, fast.row.rec, len);
            rows++;
        }
        assert_true(rows > 0);
        pb_rowsrc__close(&ref);
        pb_rowsrc__close(&fast);
        sqlite3_finalize(sr);
        sqlite3_finalize(sf);
        pb_rowsrc__unregister(db);
    }
}

static void test_row_function_matches_encoder(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("rowpath");
    char base[4096];
    snprintf(base, sizeof(base), "%s/base.db", dir);
    build_base(base);
    pb_error err = PB_ERROR_INIT;
    sqlite3 *db = NULL, *dr = NULL;
    pb_tablelist l = {0};
    int utf8 = 0;
    assert_int_equal(pb_tables__open(&db, &utf8, base, NULL, 1, &err), 0);
    assert_int_equal(pb_tables__open(&dr, &utf8, base, NULL, 1, &err), 0);
    assert_int_equal(pb_tables__list(&l, db, NULL, &err), 0);
    assert_int_equal(l.n, 6);
    for (size_t i = 0; i < l.n; i++) {
        const pb_table *t = &l.t[i];
        int sorted_pk = strcmp(t->name, "named") == 0; /* NOCASE: SQLite sorts */
        int too_wide = strcmp(t->name, "wide") == 0;
        if (t->npk)
            compare_paths(dr, db, t, PB_ORDER_PK, !sorted_pk && !too_wide);
        /* every column: a sort unless a unique key leads (SQLite sees the rest is moot) */
        int keyless = strcmp(t->name, "loose") == 0;
        compare_paths(dr, db, t, PB_ORDER_ALL, keyless || sorted_pk || too_wide ? 0 : -1);
        compare_paths(dr, db, t, PB_ORDER_NONE, !too_wide);
    }
    pb_tables__dispose(&l);
    pb_tables__close(db);
    pb_tables__close(dr);
}

/* A plan that sorts runs the row function for every row during the first step: caught. */
static void test_sort_is_caught(void **state)
{
    (void)state;
    sqlite3 *db = NULL;
    pb_error err = PB_ERROR_INIT;
    pb_rowsrc s;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    tu_exec_ok(db, "CREATE TABLE t(a, b); INSERT INTO t VALUES(1, 'x'), (2, 'y'), (3, 'a')");
    for (int threaded = 0; threaded < 2; threaded++) {
        pb_error e = PB_ERROR_INIT;
        assert_int_equal(pb_rowsrc__register(&s, db, &err), 0);
        sqlite3_stmt *st = tu_prepare(db, "SELECT " PB_ROWSRC_FN "(a, b) FROM t ORDER BY b");
        assert_int_equal(pb_rowsrc__open_packed(&s, st, 2, threaded, &e), 0);
        int rc = pb_rowsrc__next(&s, &e);
        assert_int_equal(rc, PB_ECORRUPT);
        assert_non_null(strstr(e.msg, PB_ROWSRC_FN));
        pb_rowsrc__close(&s);
        sqlite3_finalize(st);
        pb_rowsrc__unregister(db);
    }
    /* direct use only: a view cannot call it */
    assert_int_equal(pb_rowsrc__register(&s, db, &err), 0);
    tu_exec_ok(db, "CREATE VIEW v AS SELECT " PB_ROWSRC_FN "(a, b) FROM t");
    sqlite3_stmt *st = NULL;
    assert_int_not_equal(sqlite3_prepare_v2(db, "SELECT * FROM v", -1, &st, NULL), SQLITE_OK);
    sqlite3_finalize(st);
    pb_rowsrc__unregister(db);
    sqlite3_close(db);
}

typedef struct mem {
    uint8_t *p;
    size_t n;
} mem;

static int mem_sink(void *payload, const void *data, size_t n, pb_error *err)
{
    (void)err;
    mem *m = payload;
    uint8_t *p = realloc(m->p, m->n + n);
    if (!p)
        return PB_ENOMEM;
    memcpy(p + m->n, data, n);
    m->p = p;
    m->n += n;
    return 0;
}

static mem diff_of(const char *a, const char *b, unsigned flags, pb_diff_stats *st)
{
    pb_error err = PB_ERROR_INIT;
    pb_diff_options o = PB_DIFF_OPTIONS_INIT;
    mem m = {NULL, 0};
    o.flags = flags;
    if (pb_sqldiff_diff(st, a, b, &o, mem_sink, &m, &err) != 0)
        fail_msg("diff: %s", err.msg);
    return m;
}

static void test_diffs_agree(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("rowpath-diff");
    char base[4096], target[4096];
    snprintf(base, sizeof(base), "%s/base.db", dir);
    snprintf(target, sizeof(target), "%s/target.db", dir);
    build_base(base);
    build_target(base, target);
    pb_diff_stats s1, s2, s3;
    mem threaded = diff_of(base, target, 0, &s1);
    mem single = diff_of(base, target, PB_DIFF_SINGLE_THREAD, &s2);
    assert_true(threaded.n > 0);
    assert_int_equal(threaded.n, single.n);
    assert_memory_equal(threaded.p, single.p, threaded.n);
    assert_int_equal(s1.rows_compared, s2.rows_compared);
    assert_true(s1.updated > 0 && s1.inserted > 0 && s1.deleted > 0);
    mem same = diff_of(target, target, 0, &s3);
    assert_int_equal(same.n, 0);
    assert_int_equal(s3.rows_compared, s3.rows_target);
    free(threaded.p);
    free(single.p);
    free(same.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_row_function_matches_encoder),
        cmocka_unit_test(test_sort_is_caught),
        cmocka_unit_test(test_diffs_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

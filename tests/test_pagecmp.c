/*
 * test_pagecmp.c: pb_sqldiff_same_pages() and the checksum's reuse of per-table sums
 * (sqldiff/pagecmp.c, sqldiff/checksum.c).
 * The rule under test: a table is reported the same only when its rows are the same. Each case
 * makes a DB, copies it, changes the copy in one place (a row, only an overflow page, a deep
 * leaf, the schema, the page size, a WAL left beside it) and checks which tables are reported;
 * a randomised round checks every report against the per-table checksums (the oracle), and the
 * checksum built from reused sums against the full one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plexburst/sqldiff.h"
#include "testutil.h"

static char dir[4096], a_path[4200], b_path[4200];

typedef struct names {
    char n[16][32];
    int count;
} names;

static int on_same(const char *table, void *payload)
{
    names *s = payload;
    if (s->count < 16)
        snprintf(s->n[s->count++], sizeof(s->n[0]), "%s", table);
    return 0;
}

static int has(const names *s, const char *t)
{
    for (int i = 0; i < s->count; i++)
        if (strcmp(s->n[i], t) == 0)
            return 1;
    return 0;
}

static names same_of(const char *base, const char *target)
{
    names s;
    pb_error e = PB_ERROR_INIT;
    memset(&s, 0, sizeof(s));
    assert_int_equal(pb_sqldiff_same_pages(NULL, base, target, NULL, on_same, &s, &e), 0);
    return s;
}

static sqlite3 *open_rw(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    return db;
}

/* A: big (rowid, multi-level, blobs on overflow pages), keyed (WITHOUT ROWID), small (one page),
 * with an index; B: a byte copy of A. */
static void make_pair(void)
{
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("pagecmp"));
    snprintf(a_path, sizeof(a_path), "%s/a.db", dir);
    snprintf(b_path, sizeof(b_path), "%s/b.db", dir);
    sqlite3 *db = open_rw(a_path);
    tu_exec_ok(db, "PRAGMA page_size=4096; PRAGMA journal_mode=DELETE;"
                   "CREATE TABLE big(id INTEGER PRIMARY KEY, name TEXT, data BLOB);"
                   "CREATE INDEX big_name ON big(name);"
                   "CREATE TABLE keyed(k TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID;"
                   "CREATE TABLE small(x);"
                   "BEGIN;"
                   "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000)"
                   " INSERT INTO big SELECT i, 'name ' || i,"
                   " CASE WHEN i % 100 = 0 THEN randomblob(20000) ELSE randomblob(40) END FROM n;"
                   "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)"
                   " INSERT INTO keyed SELECT printf('key %06d', i), i FROM n;"
                   "INSERT INTO small VALUES (1), (2), (3);"
                   "COMMIT;");
    sqlite3_close(db);
    assert_int_equal(tu_sh("cp '%s' '%s'", a_path, b_path), 0);
}

static void change(const char *sql)
{
    sqlite3 *db = open_rw(b_path);
    tu_exec_ok(db, sql);
    sqlite3_close(db);
}

static void test_copy_is_same(void **state)
{
    (void)state;
    make_pair();
    names s = same_of(a_path, b_path);
    assert_int_equal(s.count, 3);
    assert_true(has(&s, "big") && has(&s, "keyed") && has(&s, "small"));
    tu_sh("rm -rf '%s'", dir);
}

static void test_one_change_each(void **state)
{
    (void)state;
    /* one row of the WITHOUT ROWID table */
    make_pair();
    change("UPDATE keyed SET v = -1 WHERE k = 'key 001500'");
    names s = same_of(a_path, b_path);
    assert_false(has(&s, "keyed"));
    assert_true(has(&s, "big") && has(&s, "small"));
    /* only an overflow page of one row: the last bytes of a 20000-byte blob */
    make_pair();
    change("UPDATE big SET data = substr(data, 1, 19999) || x'00' WHERE id = 2000"
           " AND substr(data, 20000, 1) <> x'00';"
           "UPDATE big SET data = substr(data, 1, 19999) || x'01' WHERE id = 2000"
           " AND changes() = 0");
    s = same_of(a_path, b_path);
    assert_false(has(&s, "big"));
    assert_true(has(&s, "keyed") && has(&s, "small"));
    /* a row deep in the tree, same length (no page moves) */
    make_pair();
    change("UPDATE big SET name = 'name X' WHERE id = 3777 AND length(name) = 9");
    s = same_of(a_path, b_path);
    assert_false(has(&s, "big"));
    /* the schema of one table (its SQL differs) */
    make_pair();
    change("ALTER TABLE small ADD COLUMN y DEFAULT 0");
    s = same_of(a_path, b_path);
    assert_false(has(&s, "small"));
    assert_true(has(&s, "big") && has(&s, "keyed"));
    tu_sh("rm -rf '%s'", dir);
}

static void test_not_at_rest(void **state)
{
    (void)state;
    /* another page size: nothing can be compared */
    make_pair();
    assert_int_equal(tu_sh("rm -f '%s' && sqlite3 '%s' 'PRAGMA page_size=8192; VACUUM INTO \"%s\"'",
                           b_path, a_path, b_path),
                     0);
    names s = same_of(a_path, b_path);
    assert_int_equal(s.count, 0);
    /* a WAL with frames beside the target: its file is not its content */
    make_pair();
    sqlite3 *db = open_rw(b_path);
    tu_exec_ok(db, "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;"
                   "UPDATE small SET x = 9 WHERE x = 1");
    s = same_of(a_path, b_path); /* while the writer keeps the WAL */
    assert_int_equal(s.count, 0);
    sqlite3_close(db);
    tu_sh("rm -rf '%s'", dir);
}

/* The per-table sums of a DB (name order), through the checksum's callback. */
typedef struct sums {
    char name[16][32];
    uint64_t rows[16];
    uint8_t sum[16][16];
    int n;
} sums;

static int on_sum(const pb_table_checksum *c, void *payload)
{
    sums *s = payload;
    if (s->n < 16) {
        snprintf(s->name[s->n], sizeof(s->name[0]), "%s", c->table);
        s->rows[s->n] = c->rows;
        memcpy(s->sum[s->n], c->sum, 16);
        s->n++;
    }
    return 0;
}

static int reuse_from(const char *table, uint64_t *rows, uint8_t sum[16], void *payload)
{
    const sums *s = payload;
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->name[i], table) == 0) {
            *rows = s->rows[i];
            memcpy(sum, s->sum[i], 16);
            return 1;
        }
    return 0;
}

static pb_checksum checksum_of(const char *path, sums *out, const sums *reuse)
{
    pb_checksum c;
    pb_error e = PB_ERROR_INIT;
    pb_diff_options o = PB_DIFF_OPTIONS_INIT;
    if (out) {
        memset(out, 0, sizeof(*out));
        o.table_checksum = on_sum;
        o.table_payload = out;
    }
    if (reuse) {
        o.reuse = reuse_from;
        o.reuse_payload = (void *)reuse;
    }
    assert_int_equal(pb_sqldiff_checksum(&c, path, &o, &e), 0);
    return c;
}

/* Random changes to random tables of the copy; every table reported the same has the same sum,
 * and the checksum built from the base's sums for those tables equals the full one. */
static void test_random_against_checksums(void **state)
{
    (void)state;
    static const char *const edits[] = {
        "UPDATE big SET name = name || 'x' WHERE id = abs(random()) % 4000 + 1",
        "DELETE FROM big WHERE id = abs(random()) % 4000 + 1",
        "INSERT INTO big(name, data) VALUES ('new', randomblob(abs(random()) % 30000))",
        "UPDATE big SET data = randomblob(20000) WHERE id = (abs(random()) % 40 + 1) * 100",
        "UPDATE keyed SET v = v + 1 WHERE k = printf('key %06d', abs(random()) % 3000 + 1)",
        "INSERT OR REPLACE INTO keyed VALUES (printf('key %06d', abs(random()) % 6000), 7)",
        "INSERT INTO small VALUES (random())",
        "UPDATE small SET x = x WHERE rowid = 1",
    };
    srand(7);
    for (int round = 0; round < 24; round++) {
        make_pair();
        for (int k = 0, m = 1 + rand() % 3; k < m; k++)
            change(edits[rand() % (int)(sizeof(edits) / sizeof(edits[0]))]);
        names s = same_of(a_path, b_path);
        sums sa, sb, reused;
        pb_checksum full = checksum_of(b_path, &sb, NULL);
        checksum_of(a_path, &sa, NULL);
        assert_int_equal(sa.n, sb.n);
        memset(&reused, 0, sizeof(reused));
        for (int i = 0; i < sb.n; i++) {
            if (!has(&s, sb.name[i]))
                continue;
            assert_string_equal(sa.name[i], sb.name[i]);
            assert_true(sa.rows[i] == sb.rows[i]);
            assert_memory_equal(sa.sum[i], sb.sum[i], 16);
            reused.rows[reused.n] = sa.rows[i];
            memcpy(reused.sum[reused.n], sa.sum[i], 16);
            snprintf(reused.name[reused.n++], sizeof(reused.name[0]), "%s", sa.name[i]);
        }
        pb_checksum via = checksum_of(b_path, NULL, &reused);
        assert_true(pb_checksum_equal(&full, &via));
        tu_sh("rm -rf '%s'", dir);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_is_same),
        cmocka_unit_test(test_one_change_each),
        cmocka_unit_test(test_not_at_rest),
        cmocka_unit_test(test_random_against_checksums),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

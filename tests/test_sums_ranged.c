/*
 * test_sums_ranged.c: a table's checksum share computed from the reference's share and the rows
 * of the leaves that differ (sqldiff/pagecmp.c pb_sqldiff_leaf_ranges, checksum.c
 * pb_sqldiff_sum_ranges, engine/run/sums.c). The oracle is the checksum read in full: after
 * random changes to a copy of a DB (updates in place, inserts in the middle that split leaves,
 * deletes, rows spilling to overflow pages, a WITHOUT ROWID table, now and then a VACUUM), the
 * digest and every table's share must equal the full read's, and most rounds must actually take
 * the ranged path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagecmp.h"
#include "sums.h"
#include "testutil.h"

#define SERIES(n)                                                                                  \
    "WITH RECURSIVE g(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM g " SERIES_END(n)
#define SERIES_END(n) "WHERE value < " #n ") "

static void make_base(const char *path)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    tu_exec_ok(db, "PRAGMA page_size=1024; "
                   "CREATE TABLE items(id INTEGER PRIMARY KEY, title TEXT, extra BLOB); "
                   "CREATE TABLE tags(tag TEXT, n INTEGER); "
                   "CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID; "
                   "CREATE INDEX tags_tag ON tags(tag); " SERIES(
                       4000) "INSERT INTO items SELECT value * 10, printf('title %d', value), "
                             "CASE WHEN value % 97 = 0 THEN randomblob(3000) ELSE randomblob(60) "
                             "END FROM g; " SERIES(3000) "INSERT INTO tags SELECT printf('t%d', "
                                                         "value % 300), value FROM g; " SERIES(
                                                             500) "INSERT INTO kv SELECT "
                                                                  "printf('k%05d', value), "
                                                                  "hex(randomblob(20)) FROM g");
    sqlite3_close(db);
}

static void change(const char *path, unsigned seed)
{
    sqlite3 *db;
    char sql[512];
    srand(seed);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    int n = 1 + rand() % 12;
    for (int i = 0; i < n; i++) {
        int id = (1 + rand() % 4000) * 10;
        switch (rand() % 7) {
        case 0:
            snprintf(sql, sizeof(sql), "UPDATE items SET title = 'changed %d' WHERE id = %d", i,
                     id);
            break;
        case 1: /* in the middle: splits a full leaf */
            snprintf(sql, sizeof(sql),
                     "INSERT OR REPLACE INTO items VALUES (%d, 'new', randomblob(%d))", id + 3,
                     rand() % 2 ? 50 : 2500);
            break;
        case 2:
            snprintf(sql, sizeof(sql), "DELETE FROM items WHERE id BETWEEN %d AND %d", id,
                     id + 10 * (rand() % 30));
            break;
        case 3:
            snprintf(sql, sizeof(sql), "UPDATE items SET extra = randomblob(2900) WHERE id = %d",
                     id);
            break;
        case 4:
            snprintf(sql, sizeof(sql), "INSERT INTO tags VALUES ('t%d', %d)", rand() % 300, i);
            break;
        case 5:
            snprintf(sql, sizeof(sql), "UPDATE kv SET v = 'x%d' WHERE k = 'k%05d'", i,
                     1 + rand() % 500);
            break;
        default:
            snprintf(sql, sizeof(sql), "INSERT INTO items VALUES (%d, 'end', randomblob(40))",
                     100000 + (int)(seed * 100) + i);
            break;
        }
        tu_exec_ok(db, sql);
    }
    if (rand() % 10 == 0)
        tu_exec_ok(db, "VACUUM");
    sqlite3_close(db);
}

static void test_ranged_against_full(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("sumsrng");
    char base[4200], copy[4200];
    pb_error e = PB_ERROR_INIT;
    int ranged_rounds = 0;
    snprintf(base, sizeof(base), "%s/base.db", dir);
    snprintf(copy, sizeof(copy), "%s/copy.db", dir);
    make_base(base);
    pb_sums bs = {0};
    uint8_t bd[16];
    assert_int_equal(pb_sums_checksum(bd, &bs, NULL, base, NULL, NULL, &e), 0);
    for (unsigned round = 1; round <= 40; round++) {
        pb_sums full = {0}, part = {0};
        uint8_t fd[16], pd[16];
        unsigned reused = 0;
        assert_int_equal(tu_sh("cp '%s' '%s'", base, copy), 0);
        change(copy, round);
        assert_int_equal(pb_sums_checksum(fd, &full, NULL, copy, NULL, NULL, &e), 0);
        assert_int_equal(pb_sums_checksum(pd, &part, &reused, copy, base, &bs, &e), 0);
        assert_memory_equal(fd, pd, 16);
        assert_int_equal(full.n, part.n);
        int ranged = 0;
        for (size_t i = 0; i < part.n; i++) {
            const pb_sums_entry *p = &part.e[i];
            const pb_sums_entry *f = NULL;
            for (size_t k = 0; k < full.n; k++)
                if (strcmp(full.e[k].table, p->table) == 0)
                    f = &full.e[k];
            assert_non_null(f);
            assert_int_equal(f->rows, p->rows);
            assert_memory_equal(f->sum, p->sum, 16);
            assert_false(p->ranged && strcmp(p->table, "kv") == 0); /* WITHOUT ROWID: read */
            ranged += p->ranged;
        }
        ranged_rounds += ranged > 0;
        pb_sums_dispose(&full);
        pb_sums_dispose(&part);
    }
    fprintf(stderr, "%d of 40 rounds summed a table from its changed leaves\n", ranged_rounds);
    assert_true(ranged_rounds >= 20);
    pb_sums_dispose(&bs);
    tu_sh("rm -rf '%s'", dir);
}

/* The ranges themselves: a copy changed in one row has one short range around it. */
static void test_one_row_one_range(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("sumsrng");
    char base[4200], copy[4200];
    pb_error e = PB_ERROR_INIT;
    pb_rowid_ranges rb = {0}, rt = {0};
    int found = 0;
    sqlite3 *db;
    snprintf(base, sizeof(base), "%s/base.db", dir);
    snprintf(copy, sizeof(copy), "%s/copy.db", dir);
    make_base(base);
    assert_int_equal(tu_sh("cp '%s' '%s'", base, copy), 0);
    assert_int_equal(sqlite3_open(copy, &db), SQLITE_OK);
    tu_exec_ok(db, "UPDATE items SET title = 'x' WHERE id = 20000");
    sqlite3_close(db);
    assert_int_equal(pb_sqldiff_leaf_ranges(&found, &rb, &rt, base, copy, "items", NULL, &e), 0);
    assert_int_equal(found, 1);
    /* the leaves holding rows that spill to overflow pages are never shared: one range each
     * (rows 970, 1940, ...), and one more around the changed row */
    assert_int_equal(rb.n, rt.n);
    int covers = 0;
    for (size_t i = 0; i < rt.n; i++) {
        assert_true(rt.r[i].hi - rt.r[i].lo < 1000);
        covers += rt.r[i].lo <= 20000 && rt.r[i].hi >= 20000;
    }
    assert_int_equal(covers, 1);
    assert_true(rt.n <= 4000 / 97 + 2);
    pb_rowid_ranges_dispose(&rb);
    pb_rowid_ranges_dispose(&rt);
    /* a WAL beside the copy: not at rest, nothing told */
    assert_int_equal(tu_sh("printf x > '%s-wal'", copy), 0);
    assert_int_equal(pb_sqldiff_leaf_ranges(&found, &rb, &rt, base, copy, "items", NULL, &e), 0);
    assert_int_equal(found, 0);
    tu_sh("rm -rf '%s'", dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_row_one_range),
        cmocka_unit_test(test_ranged_against_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_sums_equal.c: the diff's second filter, tables whose pages moved but whose rows are the
 * same (engine/run/sums.c pb_sums_mark_equal, used by the sync's SNAPSHOT for UPLOAD DELTA).
 * The case of a first idle night after a real one: the baseline copy and the snapshot hold the
 * same rows written in another order (other pages). Such tables must be flagged, a table with
 * one changed value or a changed schema must not, and the changeset made with the flags must
 * still rebuild the snapshot from the baseline (checksums equal after applying it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_int.h"
#include "sums.h"
#include "testutil.h"

/* The numbers 1..n as the rows of g(value). */
#define SERIES(n)                                                                                  \
    "WITH RECURSIVE g(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM g " SERIES_END(n)
#define SERIES_END(n) "WHERE value < " #n ") "

static void fill(const char *path, int reverse, int change, int schema)
{
    sqlite3 *db;
    char sql[1024];
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    tu_exec_ok(db, "PRAGMA page_size=1024");
    snprintf(sql, sizeof(sql),
             "CREATE TABLE same_rows(id INTEGER PRIMARY KEY, v TEXT); "
             "CREATE TABLE changed(id INTEGER PRIMARY KEY, v TEXT); "
             "CREATE TABLE nopk(a TEXT, b INTEGER); "
             "CREATE TABLE reshaped(id INTEGER PRIMARY KEY, v TEXT%s); "
             "CREATE TABLE untouched(id INTEGER PRIMARY KEY, v TEXT); " SERIES(
                 300) "INSERT INTO untouched SELECT value, printf('u%%d', value) FROM g",
             schema ? ", w TEXT" : "");
    tu_exec_ok(db, sql);
    for (int k = 0; k < 4; k++) {
        const char *t[4] = {"same_rows", "changed", "nopk", "reshaped"};
        if (k == 2)
            snprintf(sql, sizeof(sql),
                     SERIES(2000) "INSERT INTO nopk SELECT printf('%%0200d', value), value FROM g "
                                  "ORDER BY value %s",
                     reverse ? "DESC" : "ASC");
        else
            snprintf(sql, sizeof(sql),
                     SERIES(2000) "INSERT INTO %s(id, v) SELECT value, printf('%%0200d', value) "
                                  "FROM g ORDER BY value %s",
                     t[k], reverse ? "DESC" : "ASC");
        tu_exec_ok(db, sql);
    }
    if (change)
        tu_exec_ok(db, "UPDATE changed SET v = 'x' WHERE id = 777");
    sqlite3_close(db);
}

static void test_mark_equal(void **state)
{
    (void)state;
    const char *dir = tu_tmpdir("sumseq");
    char base[4200], snap[4200], cs[4200];
    pb_error e = PB_ERROR_INIT;
    pb_sums bs = {0}, ss = {0}, after = {0};
    uint8_t bd[16], sd[16], ad[16];
    unsigned reused = 0, marked = 0;
    uint64_t bytes = 0, records = 0;
    snprintf(base, sizeof(base), "%s/base.db", dir);
    snprintf(snap, sizeof(snap), "%s/snap.db", dir);
    snprintf(cs, sizeof(cs), "%s/up.changeset", dir);
    fill(base, 0, 0, 0);
    fill(snap, 1, 1, 1);
    assert_int_equal(pb_sums_checksum(bd, &bs, NULL, base, NULL, NULL, &e), 0);
    assert_int_equal(pb_sums_checksum(sd, &ss, &reused, snap, base, &bs, &e), 0);
    /* written in another order: only `untouched` kept its pages */
    assert_int_equal(pb_sums_same(&ss, "untouched"), 1);
    assert_int_equal(pb_sums_same(&ss, "same_rows"), 0);
    assert_int_equal(pb_sums_mark_equal(&ss, &marked, snap, base, &bs, &e), 0);
    assert_int_equal(marked, 2);
    assert_int_equal(pb_sums_same(&ss, "same_rows"), 1);
    assert_int_equal(pb_sums_same(&ss, "nopk"), 1);
    assert_int_equal(pb_sums_same(&ss, "changed"), 0);
    assert_int_equal(pb_sums_same(&ss, "reshaped"), 0);
    assert_int_equal(pb_sums_same(&ss, "untouched"), 1);
    /* the changeset with both filters still rebuilds the snapshot's rows; `reshaped` cannot be
     * diffed (another schema): left out of this check */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(snap, &db), SQLITE_OK);
    tu_exec_ok(
        db, "DROP TABLE reshaped; CREATE TABLE reshaped(id INTEGER PRIMARY KEY, v TEXT); " SERIES(
                2000) "INSERT INTO reshaped SELECT value, printf('%0200d', value) "
                      "FROM g ORDER BY value DESC; VACUUM");
    sqlite3_close(db);
    pb_sums_dispose(&ss);
    assert_int_equal(pb_sums_checksum(sd, &ss, &reused, snap, base, &bs, &e), 0);
    assert_int_equal(pb_sums_mark_equal(&ss, &marked, snap, base, &bs, &e), 0);
    /* VACUUM moved the pages; every table but `changed` sums the same */
    assert_true(marked >= 3);
    assert_int_equal(pb_sums_same(&ss, "same_rows"), 1);
    assert_int_equal(pb_sums_same(&ss, "nopk"), 1);
    assert_int_equal(pb_sums_same(&ss, "reshaped"), 1);
    assert_int_equal(pb_sums_same(&ss, "untouched"), 1);
    assert_int_equal(pb_sums_same(&ss, "changed"), 0);
    assert_int_equal(pb_run__diff(&bytes, &records, base, snap, &ss, cs, &e), 0);
    assert_int_equal(records, 1);
    assert_int_equal(pb_run__apply_changeset(base, cs, &e), 0);
    assert_int_equal(pb_sums_checksum(ad, &after, NULL, base, NULL, NULL, &e), 0);
    assert_memory_equal(ad, sd, 16);
    pb_sums_dispose(&bs);
    pb_sums_dispose(&ss);
    pb_sums_dispose(&after);
    tu_sh("rm -rf '%s'", dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mark_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

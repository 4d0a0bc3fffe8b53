/*
 * test_ftsdefer.c: a Plex merge maintains the FTS4 title indexes set-based, after the rows, in
 * the merge's own transaction (engine/plex/ftsdefer.c), on both write paths: in-process and
 * through the engine (the sqlite3 stand-in running the generated script). Checks on an mkplex
 * merge with retitled and new items, tags and deletions:
 *   - the FTS4 integrity-check of both ICU indexes passes and every title written is found;
 *   - the row triggers did not run per row: the merge adds at most 2 FTS segments per index
 *     (one batch of deletes, one INSERT ... SELECT ... ORDER BY id), where Plex's triggers write
 *     about one segment per row;
 *   - the engine's script switches the triggers off and re-indexes before its COMMIT;
 *   - both paths leave the same rows (logical checksums) and the same FTS answers.
 * Prerequisites: mkplex and plexcompat built (skipped otherwise); /usr/bin/sqlite3 for the engine
 * path (that part skipped without it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sqlite3.h>

#include "testutil.h"
#include "plexburst/compat.h"
#include "plexburst/plexmerge.h"
#include "test_plexmerge_util.h"

#define DBREL  "/Plug-in Support/Databases/com.plexapp.plugins.library.db"
#define BDBREL "/Plug-in Support/Databases/com.plexapp.plugins.library.blobs.db"

static char dir[4096];

static void build_fixture(void)
{
    const char *mk = tu_build_path("mkplex");
    if (access(mk, X_OK) != 0 || access(tu_build_path("plexcompat.so"), R_OK) != 0)
        tu_skip("mkplex or plexcompat is not built");
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("ftsdefer"));
    const char *d = dir;
    if (tu_sh("'%s' init --dir '%s/base' --no-tree --seed 31 --movies 400 --shows 10 --seasons 2 "
              "--episodes 8 --artists 20 --albums 3 --tracks 8 --photos 20 >/dev/null",
              mk, d) != 0 ||
        tu_sh("cp -a '%s/base' '%s/cloud' && cp -a '%s/base' '%s/home'", d, d, d, d) != 0 ||
        tu_sh("'%s' analyze --dir '%s/cloud' --no-tree --seed 32 --analyze-pct 30 --new-movies 40 "
              "--new-episodes 10 --new-tracks 12 --retitle 60 --delete 5 --regen 4 >/dev/null",
              mk, d) != 0 ||
        tu_sh("'%s' stream --dir '%s/home' --no-tree --seed 33 --plays 30 --edit-title 3 "
              ">/dev/null",
              mk, d) != 0)
        fail_msg("mkplex failed in %s", d);
}

/* FTS segments of an index (rows of its segdir). */
static int64_t segments(const char *db, const char *fts)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s_segdir", fts);
    return pm_int(db, sql);
}

/* The FTS4 integrity-check of both ICU indexes, and every item title found through MATCH. */
static void check_fts(const char *path, char *answers, size_t cap)
{
    sqlite3 *db = NULL;
    pb_error err = PB_ERROR_INIT;
    if (pb_compat_open(&db, path, 0, &err) != 0)
        fail_msg("open %s: %s", path, err.msg);
    char *msg = NULL;
    if (sqlite3_exec(db,
                     "SAVEPOINT ic; INSERT INTO fts4_metadata_titles_icu(fts4_metadata_titles_icu) "
                     "VALUES('integrity-check'); INSERT INTO fts4_tag_titles_icu("
                     "fts4_tag_titles_icu) VALUES('integrity-check')",
                     NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("FTS integrity-check of %s: %s", path, msg);
    sqlite3_exec(db, "ROLLBACK TO ic; RELEASE ic", NULL, NULL, NULL);
    /* a digest of the index's answers: docids matching the first word of every title */
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT count(*), total(docid) FROM "
                                        "fts4_metadata_titles_icu WHERE fts4_metadata_titles_icu "
                                        "MATCH 'title:a* OR title:the OR title:e*'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(answers, cap, "%lld/%.0f", (long long)sqlite3_column_int64(st, 0),
             sqlite3_column_double(st, 1));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* One merge of cloud into a copy of home; returns the merged main DB's path (static). */
static const char *merge_once(const char *tag, int engine, uint64_t *writes)
{
    static char live[2][4400];
    char work[4300], blive[4400], base[4300], cloud[4300], bbase[4300], bcloud[4300];
    snprintf(work, sizeof(work), "%s/%s", dir, tag);
    char *l = live[engine != 0];
    snprintf(l, sizeof(live[0]), "%s/live.db", work);
    snprintf(blive, sizeof(blive), "%s/live.blobs.db", work);
    snprintf(base, sizeof(base), "%s/base" DBREL, dir);
    snprintf(cloud, sizeof(cloud), "%s/cloud" DBREL, dir);
    snprintf(bbase, sizeof(bbase), "%s/base" BDBREL, dir);
    snprintf(bcloud, sizeof(bcloud), "%s/cloud" BDBREL, dir);
    if (tu_sh("mkdir -p '%s' && cp '%s/home" DBREL "' '%s' && cp '%s/home" BDBREL "' '%s'", work,
              dir, l, dir, blive) != 0)
        fail_msg("cannot copy the home pair");
    int64_t seg_items = segments(l, "fts4_metadata_titles_icu");
    int64_t seg_tags = segments(l, "fts4_tag_titles_icu");

    pb_plex_merge_options o;
    pb_plex_report r;
    pb_error err = PB_ERROR_INIT;
    pm_merge_options(&o, base, cloud, l, bbase, bcloud, blive);
    pm_stress_options(&o, work, engine);
    o.keep_work = 1;
    if (pb_plex_merge(&o, &r, &err) != 0)
        fail_msg("%s merge: %s", tag, err.msg);
    *writes = r.merge.inserted + r.merge.updated + r.merge.deleted;
    pb_plex_report_dispose(&r);

    int64_t add_items = segments(l, "fts4_metadata_titles_icu") - seg_items;
    int64_t add_tags = segments(l, "fts4_tag_titles_icu") - seg_tags;
    printf("%s: %llu records written, FTS segments added: items %lld, tags %lld\n", tag,
           (unsigned long long)*writes, (long long)add_items, (long long)add_tags);
    assert_true(*writes > 100);
    assert_in_range(add_items, 1, 2);
    assert_in_range(add_tags, 0, 2);
    return l;
}

static void test_in_process_and_engine(void **state)
{
    (void)state;
    build_fixture();
    uint64_t w0 = 0, w1 = 0;
    char a0[64], a1[64], s0[33], s1[33];
    const char *l0 = merge_once("inproc", 0, &w0);
    check_fts(l0, a0, sizeof(a0));
    pm_checksum(l0, s0);
    if (access(PM_STAND_IN, X_OK) != 0) {
        printf("engine path skipped: %s is not installed\n", PM_STAND_IN);
        return;
    }
    const char *l1 = merge_once("engine", 1, &w1);
    check_fts(l1, a1, sizeof(a1));
    pm_checksum(l1, s1);
    char script[256];
    tu_sh_out(script, sizeof(script),
              "cat '%s'/engine/plexburst-merge-*/merge.sql | grep -c -e '^.dbconfig enable_trigger "
              "off' -e '^INSERT INTO main.\"fts4_metadata_titles_icu\"'",
              dir);
    assert_int_equal(atoi(script), 2);
    assert_int_equal(w0, w1);
    assert_string_equal(s0, s1);
    assert_string_equal(a0, a1);
}

static int teardown(void **state)
{
    (void)state;
    if (dir[0])
        tu_sh("rm -rf '%s'", dir);
    return 0;
}

int main(void)
{
    tu_asan_allow_stock_host();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_in_process_and_engine, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

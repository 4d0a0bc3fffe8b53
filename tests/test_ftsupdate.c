/*
 * test_ftsupdate.c: a merge whose updates leave the indexed title columns alone does not touch
 * Plex's FTS4 title index (engine/plex/ftsdefer.c: the update triggers fire only for an UPDATE
 * that sets an indexed column or the id, and only such UPDATE records are re-indexed). On an
 * mkplex library whose cloud changes extra_data and changed_at of 60 items (what an analysis
 * night writes), merged in-process and through the engine stand-in:
 *   - every update is applied;
 *   - the FTS index of the items gains no segment (each re-indexed row would be deleted and
 *     added again: at least one segment) and passes its integrity-check.
 * Prerequisites: mkplex and plexcompat built (skipped otherwise); /usr/bin/sqlite3 for the
 * engine path (that part skipped without it).
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
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("ftsupdate"));
    const char *d = dir;
    if (tu_sh("'%s' init --dir '%s/base' --no-tree --seed 41 --movies 200 --shows 4 --seasons 2 "
              "--episodes 6 --artists 5 --albums 2 --tracks 5 --photos 5 >/dev/null",
              mk, d) != 0 ||
        tu_sh("cp -a '%s/base' '%s/cloud' && cp -a '%s/base' '%s/home'", d, d, d, d) != 0)
        fail_msg("mkplex failed in %s", d);
    char cloud[4300];
    snprintf(cloud, sizeof(cloud), "%s/cloud" DBREL, d);
    pm_exec(cloud, "UPDATE metadata_items SET extra_data = 'pb_ftsupdate', changed_at = "
                   "coalesce(changed_at, 0) + 1 WHERE id IN (SELECT id FROM metadata_items "
                   "WHERE title IS NOT NULL AND title <> '' ORDER BY id LIMIT 60)");
}

static int64_t segments(const char *db)
{
    return pm_int(db, "SELECT count(*) FROM fts4_metadata_titles_icu_segdir");
}

static void integrity(const char *path)
{
    sqlite3 *db = NULL;
    pb_error err = PB_ERROR_INIT;
    if (pb_compat_open(&db, path, 0, &err) != 0)
        fail_msg("open %s: %s", path, err.msg);
    char *msg = NULL;
    if (sqlite3_exec(db,
                     "SAVEPOINT ic; INSERT INTO fts4_metadata_titles_icu(fts4_metadata_titles_icu) "
                     "VALUES('integrity-check')",
                     NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("FTS integrity-check of %s: %s", path, msg);
    sqlite3_exec(db, "ROLLBACK TO ic; RELEASE ic", NULL, NULL, NULL);
    sqlite3_close(db);
}

static void merge_once(const char *tag, int engine)
{
    char work[4300], live[4400], blive[4400], base[4300], cloud[4300], bbase[4300], bcloud[4300];
    snprintf(work, sizeof(work), "%s/%s", dir, tag);
    snprintf(live, sizeof(live), "%s/live.db", work);
    snprintf(blive, sizeof(blive), "%s/live.blobs.db", work);
    snprintf(base, sizeof(base), "%s/base" DBREL, dir);
    snprintf(cloud, sizeof(cloud), "%s/cloud" DBREL, dir);
    snprintf(bbase, sizeof(bbase), "%s/base" BDBREL, dir);
    snprintf(bcloud, sizeof(bcloud), "%s/cloud" BDBREL, dir);
    if (tu_sh("mkdir -p '%s' && cp '%s/home" DBREL "' '%s' && cp '%s/home" BDBREL "' '%s'", work,
              dir, live, dir, blive) != 0)
        fail_msg("cannot copy the home pair");
    int64_t seg0 = segments(live);

    pb_plex_merge_options o;
    pb_plex_report r;
    pb_error err = PB_ERROR_INIT;
    pm_merge_options(&o, base, cloud, live, bbase, bcloud, blive);
    pm_stress_options(&o, work, engine);
    if (pb_plex_merge(&o, &r, &err) != 0)
        fail_msg("%s merge: %s", tag, err.msg);
    uint64_t updated = r.merge.updated;
    pb_plex_report_dispose(&r);

    int64_t added = segments(live) - seg0;
    printf("%s: %llu updates, FTS segments added: %lld\n", tag, (unsigned long long)updated,
           (long long)added);
    assert_int_equal(updated, 60);
    assert_int_equal(pm_int(live, "SELECT count(*) FROM metadata_items WHERE extra_data = "
                                  "'pb_ftsupdate'"),
                     60);
    assert_int_equal(added, 0);
    integrity(live);
}

static void test_updates_leave_fts(void **state)
{
    (void)state;
    build_fixture();
    merge_once("inproc", 0);
    if (access(PM_STAND_IN, X_OK) != 0) {
        printf("engine path skipped: %s is not installed\n", PM_STAND_IN);
        return;
    }
    merge_once("engine", 1);
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
        cmocka_unit_test_teardown(test_updates_leave_fts, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

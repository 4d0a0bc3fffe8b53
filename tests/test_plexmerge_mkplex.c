/*
 * test_plexmerge_mkplex.c: `plexburst merge` over data dirs written by the fixture tool mkplex: a
 * cloud analysis run merged into a home that streamed meanwhile (library and blobs DBs), and a
 * cloud run whose mount failed (mkplex analyze --mass-delete-section Movies) refused by the
 * deletion guard with the live DB unchanged.
 * Prerequisites: mkplex and plexburst in PB_BUILD_DIR (skipped, with the reason, without mkplex).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>

#include "testutil.h"
#include "test_plexmerge_util.h"

static void test_mkplex_merge(void **state)
{
    (void)state;
    const char *mk = tu_build_path("mkplex");
    char err[4096], args[32768], dir[4096], before[33], after[33];
    if (access(mk, X_OK) != 0)
        tu_skip("mkplex is not built yet");
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("pmcli-mkplex"));
    char base_dir[4300], cloud_dir[4300], home_dir[4300];
    snprintf(base_dir, sizeof(base_dir), "%s/base", dir);
    snprintf(cloud_dir, sizeof(cloud_dir), "%s/cloud", dir);
    snprintf(home_dir, sizeof(home_dir), "%s/home", dir);
    if (tu_sh("'%s' init --dir '%s' --scale tiny >/dev/null 2>&1", mk, base_dir) != 0)
        tu_skip("mkplex init failed (fixture tool not ready)");
    assert_int_equal(
        tu_sh("cp -a '%s' '%s' && cp -a '%s' '%s'", base_dir, cloud_dir, base_dir, home_dir), 0);
    if (tu_sh("'%s' analyze --dir '%s' --seed 7 >/dev/null 2>&1", mk, cloud_dir) != 0 ||
        tu_sh("'%s' stream --dir '%s' --seed 8 --edit-title 2 >/dev/null 2>&1", mk, home_dir) != 0)
        tu_skip("mkplex analyze/stream failed (fixture tool not ready)");
#define DB  "/Plug-in Support/Databases/com.plexapp.plugins.library.db"
#define BDB "/Plug-in Support/Databases/com.plexapp.plugins.library.blobs.db"
    char live[4400], blive[4400], live2[4400], blive2[4400];
    snprintf(live, sizeof(live), "%s" DB, home_dir);
    snprintf(blive, sizeof(blive), "%s" BDB, home_dir);
    snprintf(live2, sizeof(live2), "%s/live2.db", dir);
    snprintf(blive2, sizeof(blive2), "%s/live2.blobs.db", dir);
    pm_copy(live, live2);
    pm_copy(blive, blive2);
    pm_checksum(live, before);
    snprintf(args, sizeof(args),
             "merge --base '%s" DB "' --cloud '%s" DB "' --live '%s' --blobs-base '%s" BDB
             "' --blobs-cloud '%s" BDB "' --blobs-live '%s' --in-process --json --zstd-level 3",
             base_dir, cloud_dir, live, base_dir, cloud_dir, blive);
    int rc = pm_cli(err, sizeof(err), dir, args);
    if (rc != 0)
        fail_msg("merge of an mkplex run: exit %d: %s", rc, err);
    json_t *j = pm_json();
    pm_contract(j, 1);
    assert_true(json_integer_value(pm_path(j, "rows.updated")) +
                    json_integer_value(pm_path(j, "rows.inserted")) >
                0);
    json_int_t inserted = json_integer_value(pm_path(j, "rows.inserted"));
    json_int_t conflicts = json_integer_value(pm_path(j, "rows.conflicts"));
    json_decref(j);
    pm_checksum(live, after);
    assert_true(strcmp(before, after) != 0);

    /* the same merge through the engine path (stock sqlite3 + plexcompat standing in for Plex
     * SQLite): the same decisions and the same rows, in both DBs */
    if (access("/usr/bin/sqlite3", X_OK) == 0) {
        char h1[33], h2[33];
        snprintf(args, sizeof(args),
                 "merge --base '%s" DB "' --cloud '%s" DB "' --live '%s' --blobs-base '%s" BDB
                 "' --blobs-cloud '%s" BDB "' --blobs-live '%s' --plex-sqlite /usr/bin/sqlite3 "
                 "--compat-extension '%s' --keep-backups 0 --json --zstd-level 3",
                 base_dir, cloud_dir, live2, base_dir, cloud_dir, blive2,
                 tu_build_path("plexcompat"));
        rc = pm_cli(err, sizeof(err), dir, args);
        if (rc != 0)
            fail_msg("engine merge of an mkplex run: exit %d: %s", rc, err);
        j = pm_json();
        assert_true(strncmp(json_string_value(pm_path(j, "engine")),
                            "plex-sqlite: /usr/bin/sqlite3", 29) == 0);
        assert_int_equal(json_integer_value(pm_path(j, "rows.inserted")), inserted);
        assert_int_equal(json_integer_value(pm_path(j, "rows.conflicts")), conflicts);
        assert_true(json_is_true(pm_path(j, "atomic_pair")));
        json_decref(j);
        pm_checksum(live, h1);
        pm_checksum(live2, h2);
        assert_string_equal(h1, h2);
        pm_checksum(blive, h1);
        pm_checksum(blive2, h2);
        assert_string_equal(h1, h2);
    }

    /* a mass deletion on the cloud is refused */
    char cloud2[4300];
    snprintf(cloud2, sizeof(cloud2), "%s/cloud2", dir);
    assert_int_equal(tu_sh("cp -a '%s' '%s'", base_dir, cloud2), 0);
    if (tu_sh("'%s' analyze --dir '%s' --seed 9 --mass-delete-section Movies >/dev/null 2>&1", mk,
              cloud2) != 0)
        tu_skip("mkplex --mass-delete-section failed (fixture tool not ready)");
    pm_checksum(live, before);
    snprintf(args, sizeof(args),
             "merge --base '%s" DB "' --cloud '%s" DB "' --live '%s' --in-process", base_dir,
             cloud2, live);
    assert_int_equal(pm_cli(err, sizeof(err), dir, args), 3);
    assert_true(pm_one_line(err));
    assert_non_null(strstr(err, "deletion guard: section \"Movies\""));
    pm_checksum(live, after);
    assert_string_equal(before, after);
#undef DB
#undef BDB
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PB_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define PB_TEST_ASAN 1
#endif

int main(void)
{
#ifdef PB_TEST_ASAN
    /* An ASan build of plexcompat is loaded into the uninstrumented stock sqlite3 (the engine
     * stand-in): let it start, and leave its leaks alone. */
    char opts[1024];
    const char *old = getenv("ASAN_OPTIONS");
    snprintf(opts, sizeof(opts), "%s%sverify_asan_link_order=0:detect_leaks=0", old ? old : "",
             old && *old ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mkplex_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

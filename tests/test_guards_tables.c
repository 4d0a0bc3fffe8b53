/*
 * test_guards_tables.c: the deletion guard covers every library table, not only metadata_items
 * and media_parts. Over an mkplex library (tiny, seed 1), a cloud run that deletes every tagging,
 * every media stream or every blob (sections keep all their items and parts) is refused by
 * `plexburst merge` with exit 3 and a one-line verdict naming the table, the home pair unchanged;
 * a run that empties one section's taggings is refused per section; a normal night (mkplex
 * analyze --seed 7) still passes.
 * Prerequisites: mkplex and plexburst in PB_BUILD_DIR (skipped, with the reason, without them).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "test_plexmerge_util.h"

#define DB  "/Plug-in Support/Databases/com.plexapp.plugins.library.db"
#define BDB "/Plug-in Support/Databases/com.plexapp.plugins.library.blobs.db"

static char g_dir[4096];
static const char *g_mk;

/* base (mkplex init --scale tiny --seed 1) and a home copy of it, once for the file */
static int setup(void **state)
{
    (void)state;
    g_mk = tu_build_path("mkplex");
    if (access(g_mk, X_OK) != 0)
        tu_skip("mkplex is not built yet");
    snprintf(g_dir, sizeof(g_dir), "%s", tu_tmpdir("guards-tables"));
    if (tu_sh("'%s' init --dir '%s/base' --scale tiny --seed 1 >/dev/null 2>&1", g_mk, g_dir) != 0)
        tu_skip("mkplex init failed (fixture tool not ready)");
    if (tu_sh("cp -a '%s/base' '%s/home'", g_dir, g_dir) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (g_dir[0])
        tu_sh("rm -rf '%s'", g_dir);
    return 0;
}

/* A cloud copy of the base named `name`, with `sql` run on its library (blobs = 0) or blobs DB. */
static void cloud_with(const char *name, int blobs, const char *sql)
{
    char path[4600];
    assert_int_equal(
        tu_sh("rm -rf '%s/%s' && cp -a '%s/base' '%s/%s'", g_dir, name, g_dir, g_dir, name), 0);
    snprintf(path, sizeof(path), "%s/%s%s", g_dir, name, blobs ? BDB : DB);
    if (sql)
        pm_exec(path, sql);
}

/* `plexburst merge` of cloud `name` into the home pair; the exit code, stderr in err. */
static int merge(const char *name, char *err, size_t cap)
{
    char args[32768];
    snprintf(args, sizeof(args),
             "merge --base '%s/base" DB "' --cloud '%s/%s" DB "' --live '%s/home" DB
             "' --blobs-base '%s/base" BDB "' --blobs-cloud '%s/%s" BDB
             "' --blobs-live '%s/home" BDB "' --in-process --keep-backups 0 --zstd-level 1",
             g_dir, g_dir, name, g_dir, g_dir, g_dir, name, g_dir);
    return pm_cli(err, cap, g_dir, args);
}

/* A merge of the cloud `name` must be refused with `verdict`, the home pair untouched. */
static void refused(const char *name, const char *verdict)
{
    char err[4096], live[4300], blive[4300], h1[33], h2[33], b1[33], b2[33];
    snprintf(live, sizeof(live), "%s/home" DB, g_dir);
    snprintf(blive, sizeof(blive), "%s/home" BDB, g_dir);
    pm_checksum(live, h1);
    pm_checksum(blive, b1);
    int rc = merge(name, err, sizeof(err));
    if (rc != 3 || !strstr(err, verdict))
        fail_msg("%s: exit %d, expected 3 with \"%s\"; stderr: %s; stdout: %.2000s", name, rc,
                 verdict, err, pm_out);
    assert_true(pm_one_line(err));
    assert_null(strstr(pm_out, "✅ deletion guard"));
    pm_checksum(live, h2);
    pm_checksum(blive, b2);
    assert_string_equal(h1, h2);
    assert_string_equal(b1, b2);
}

static void test_all_taggings(void **state)
{
    (void)state;
    cloud_with("no-taggings", 0, "DELETE FROM taggings");
    refused("no-taggings", "deletion guard: table taggings would lose ");
}

static void test_all_streams(void **state)
{
    (void)state;
    cloud_with("no-streams", 0, "DELETE FROM media_streams");
    refused("no-streams", "deletion guard: table media_streams would lose ");
}

static void test_all_blobs(void **state)
{
    (void)state;
    cloud_with("no-blobs", 1, "DELETE FROM blobs");
    refused("no-blobs", "deletion guard: table blobs would lose ");
}

/* One section's taggings gone: below the limit for neither the table nor that section. */
static void test_section_taggings(void **state)
{
    (void)state;
    cloud_with("no-tv-taggings", 0,
               "DELETE FROM taggings WHERE metadata_item_id IN (SELECT id FROM metadata_items "
               "WHERE library_section_id = (SELECT id FROM library_sections WHERE name = 'TV "
               "Shows'))");
    refused("no-tv-taggings", "deletion guard: section \"TV Shows\" (id ");
    assert_non_null(strstr(pm_out, "taggings"));
}

/* A normal night still passes (and is merged). */
static void test_normal_night(void **state)
{
    (void)state;
    char err[4096];
    cloud_with("night", 0, NULL);
    if (tu_sh("'%s' analyze --dir '%s/night' --seed 7 >/dev/null 2>&1", g_mk, g_dir) != 0)
        tu_skip("mkplex analyze failed (fixture tool not ready)");
    int rc = merge("night", err, sizeof(err));
    if (rc != 0)
        fail_msg("normal night: exit %d: %s", rc, err);
    assert_non_null(strstr(pm_out, "✅ deletion guard"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_taggings), cmocka_unit_test(test_all_streams),
        cmocka_unit_test(test_all_blobs),    cmocka_unit_test(test_section_taggings),
        cmocka_unit_test(test_normal_night),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

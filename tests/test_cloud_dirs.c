/*
 * test_cloud_dirs.c: a local cloud dir never costs the home anything (issue 10, item 1), driving
 * the real `plexburst` binary with mkplex as the runner:
 *   - --cloud local:X with the home at X/plex, or a cloud dir that is, holds or lies inside the
 *     home data dir or its state dir: refused (non-zero exit, one line naming which), the home
 *     data dir byte-identical, nothing created inside it;
 *   - a cloud dir whose plex/ holds files without the agent's marker: refused, the files intact;
 *   - the default cloud (<state dir>/cloud) still bootstraps and syncs, and the marker the agent
 *     leaves in its plex/ never reaches home.
 * Prerequisites: build/plexburst and build/mkplex (skipped, not passed, when missing).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

static char pb[4096], mk[4096];

/* A fresh scratch dir with the home at <dir>/X/plex (mkplex tiny, seed 1), bootstrapped through
 * the default cloud, and a copy of the home data dir in <dir>/before. */
static const char *setup_home(const char *tag, char *home, size_t cap)
{
    static char dir[4096];
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir(tag));
    snprintf(home, cap, "%s/X/plex", dir);
    assert_int_equal(tu_sh("'%s' init --dir '%s' --scale tiny --seed 1 >/dev/null", mk, home), 0);
    assert_int_equal(tu_sh("'%s' bootstrap --plex-dir '%s' --runner \"'%s' init --dir "
                           "{plex_dir} --scale tiny --seed 1\" >'%s/boot.out' 2>&1",
                           pb, home, mk, dir),
                     0);
    assert_int_equal(tu_sh("cp -a '%s' '%s/before'", home, dir), 0);
    return dir;
}

/* A sync through `cloud`; its exit code, stderr in <dir>/err. */
static int sync_via(const char *dir, const char *home, const char *cloud)
{
    return tu_sh("'%s' sync --plex-dir '%s' --cloud '%s' --runner \"'%s' analyze --dir "
                 "{plex_dir} --seed 7\" >'%s/out' 2>'%s/err'",
                 pb, home, cloud, mk, dir, dir);
}

/* The home data dir equals <dir>/before, file by file (Preferences.xml, Logs/, Cache/, ...). */
static void assert_home_intact(const char *dir, const char *home)
{
    assert_int_equal(tu_sh("diff -r --no-dereference '%s/before' '%s' >&2", dir, home), 0);
    assert_int_equal(tu_sh("test -f '%s/Preferences.xml' && test -d '%s/Logs'", home, home), 0);
}

static void test_cloud_holds_or_is_inside_home(void **state)
{
    (void)state;
    char home[4200], cloud[4400];
    const char *dir = setup_home("cloud-overlap", home, sizeof(home));
    static const struct {
        const char *rel, *says;
    } cases[] = {
        {"X", "contains the home Plex data dir"},
        {"X/plex", "is the home Plex data dir"},
        {"X/plex/Logs", "lies inside the home Plex data dir"},
        {"X/plex/new/deeper", "lies inside the home Plex data dir"},
        {"X/plex.plexburst", "is the home state dir"},
        {"X/plex.plexburst/sync", "lies inside the home state dir"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(cloud, sizeof(cloud), "local:%s/%s", dir, cases[i].rel);
        int rc = sync_via(dir, home, cloud);
        print_message("--cloud %s: exit %d\n", cloud, rc);
        tu_sh("tail -n 1 '%s/err' >&2", dir);
        assert_int_not_equal(rc, 0);
        assert_int_equal(tu_sh("tail -n 1 '%s/err' | grep -q '%s'", dir, cases[i].says), 0);
        assert_home_intact(dir, home);
    }
    assert_int_equal(tu_sh("test -e '%s/new'", home), 1);
    /* the default cloud, named explicitly, is plexburst's own: allowed */
    snprintf(cloud, sizeof(cloud), "local:%s/X/plex.plexburst/cloud", dir);
    assert_int_equal(sync_via(dir, home, cloud), 0);
    tu_sh("rm -rf '%s'", dir);
}

static void test_foreign_files_in_cloud_plex(void **state)
{
    (void)state;
    char home[4200], cloud[4400];
    const char *dir = setup_home("cloud-foreign", home, sizeof(home));
    assert_int_equal(tu_sh("mkdir -p '%s/C/plex/sub' && echo mine >'%s/C/plex/notes.txt' && "
                           "echo also >'%s/C/plex/sub/keep'",
                           dir, dir, dir),
                     0);
    snprintf(cloud, sizeof(cloud), "local:%s/C", dir);
    assert_int_not_equal(sync_via(dir, home, cloud), 0);
    assert_int_equal(tu_sh("grep -q '.plexburst-cloud' '%s/err'", dir), 0);
    assert_int_equal(tu_sh("grep -qx mine '%s/C/plex/notes.txt' && grep -qx also "
                           "'%s/C/plex/sub/keep'",
                           dir, dir),
                     0);
    assert_home_intact(dir, home);
    /* an empty plex/ is taken over (and marked); the next sync may then empty it */
    assert_int_equal(tu_sh("rm -rf '%s/C/plex' && mkdir '%s/C/plex'", dir, dir), 0);
    assert_int_equal(sync_via(dir, home, cloud), 0);
    assert_int_equal(tu_sh("test -f '%s/C/plex/.plexburst-cloud'", dir), 0);
    assert_int_equal(sync_via(dir, home, cloud), 0);
    tu_sh("rm -rf '%s'", dir);
}

static void test_default_cloud_marker_stays(void **state)
{
    (void)state;
    char home[4200];
    const char *dir = setup_home("cloud-default", home, sizeof(home));
    assert_int_equal(tu_sh("'%s' sync --plex-dir '%s' --runner \"'%s' analyze --dir "
                           "{plex_dir} --seed 7\" >'%s/out' 2>&1",
                           pb, home, mk, dir),
                     0);
    assert_int_equal(tu_sh("test -f '%s.plexburst/cloud/plex/.plexburst-cloud'", home), 0);
    assert_int_equal(tu_sh("find '%s' -name .plexburst-cloud | grep -q .", home), 1);
    /* a cloud dir an older agent made (no marker, its baseline cache there) is still ours */
    assert_int_equal(tu_sh("rm '%s.plexburst/cloud/plex/.plexburst-cloud'", home), 0);
    assert_int_equal(tu_sh("'%s' sync --plex-dir '%s' --runner \"'%s' analyze --dir "
                           "{plex_dir} --seed 8\" >'%s/out' 2>&1",
                           pb, home, mk, dir),
                     0);
    assert_int_equal(tu_sh("test -f '%s.plexburst/cloud/plex/.plexburst-cloud'", home), 0);
    tu_sh("rm -rf '%s'", dir);
}

int main(void)
{
    snprintf(pb, sizeof(pb), "%s", tu_build_path("plexburst"));
    snprintf(mk, sizeof(mk), "%s", tu_build_path("mkplex"));
    if (access(pb, X_OK) != 0 || access(mk, X_OK) != 0)
        tu_skip("needs build/plexburst and build/mkplex");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cloud_holds_or_is_inside_home),
        cmocka_unit_test(test_foreign_files_in_cloud_plex),
        cmocka_unit_test(test_default_cloud_marker_stays),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

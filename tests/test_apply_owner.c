/*
 * test_apply_owner.c: what plexburst writes into a Plex data dir owned by another user keeps
 * that user's ownership. Run as root (as `systemctl stop plexmediaserver` requires), against a
 * home chowned to uid/gid 65534 with 0755 directories and 0644 files: after a bootstrap (the DB
 * pair installed, the former pair backed up in the data dir) and after a sync that brings new
 * Metadata files and directories, every path in the data dir has that uid/gid, the DBs are
 * still 0644, directories 0755 and the other files 0644.
 * Skipped (exit 77) when not root or when mkplex is not built.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plexburst/plex.h"
#include "testutil.h"

#define OWNER 65534

static char root[512], home[1024], mk[1024], pb[1024];

/* Paths in the data dir that are not OWNER:OWNER, or (with modes) not 0755 dirs / 0644 files. */
static int strays(const char *what)
{
    char out[4096] = "";
    tu_sh_out(out, sizeof(out),
              "find '%s' \\( ! -uid %d -o ! -gid %d -o \\( -type d ! -perm 0755 \\) -o \\( "
              "-type f ! -perm 0644 \\) \\) -printf '%%u:%%g %%m %%P\\n' | head -20",
              home, OWNER, OWNER);
    if (out[0])
        print_message("%s: paths with another owner or mode:\n%s", what, out);
    return out[0] != 0;
}

static void test_owner_kept(void **state)
{
    (void)state;
    char cloud[1100], db[1200], out[256] = "";
    snprintf(cloud, sizeof(cloud), "%s/cloud", root);
    snprintf(db, sizeof(db), "%s/%s", home, PB_PLEX_DB_REL);
    assert_int_equal(tu_sh("'%s' init --dir '%s' --scale tiny --seed 1 >/dev/null && chown -R "
                           "%d:%d '%s' && chmod -R u=rwX,go=rX '%s'",
                           mk, home, OWNER, OWNER, home, home),
                     0);
    assert_int_equal(strays("before"), 0);
    /* the bootstrap replaces the DB pair and backs the former one up in the data dir */
    int rc = tu_sh("cd '%s' && '%s' bootstrap --plex-dir '%s' --cloud 'local:%s' --runner \"'%s' "
                   "init --dir {plex_dir} --scale tiny --seed 1\" >'%s/bootstrap.log' 2>&1",
                   root, pb, home, cloud, mk, root);
    if (rc != 0)
        tu_sh("cat '%s/bootstrap.log' >&2", root);
    assert_int_equal(rc, 0);
    assert_int_equal(tu_sh("test -d '%s/Plug-in Support/Databases/plexburst-backups'", home), 0);
    assert_int_equal(strays("after the bootstrap"), 0);
    /* home plays, then a sync whose cloud analysis writes new Metadata paths */
    assert_int_equal(tu_sh("'%s' stream --dir '%s' --seed 4 >/dev/null && chown -R %d:%d '%s' && "
                           "chmod -R u=rwX,go=rX '%s'",
                           mk, home, OWNER, OWNER, home, home),
                     0);
    tu_sh_out(out, sizeof(out), "find '%s/Metadata' | wc -l", home);
    long before = atol(out);
    rc = tu_sh("cd '%s' && '%s' sync --plex-dir '%s' --cloud 'local:%s' --runner \"'%s' analyze "
               "--dir {plex_dir} --seed 7\" >'%s/sync.log' 2>&1",
               root, pb, home, cloud, mk, root);
    if (rc != 0)
        tu_sh("cat '%s/sync.log' >&2", root);
    assert_int_equal(rc, 0);
    tu_sh_out(out, sizeof(out), "find '%s/Metadata' | wc -l", home);
    print_message("Metadata paths: %ld before the sync, %ld after\n", before, atol(out));
    assert_true(atol(out) > before);
    assert_int_equal(strays("after the sync"), 0);
}

int main(void)
{
    if (geteuid() != 0)
        tu_skip("needs root: the test writes as root into a data dir owned by uid 65534");
    snprintf(mk, sizeof(mk), "%s", tu_build_path("mkplex"));
    snprintf(pb, sizeof(pb), "%s", tu_build_path("plexburst"));
    if (access(mk, X_OK) != 0)
        tu_skip("mkplex is not built");
    snprintf(root, sizeof(root), "%s", tu_tmpdir("owner"));
    chmod(root, 0755);
    snprintf(home, sizeof(home), "%s/plex", root);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_owner_kept)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (!getenv("PB_KEEP_TMP"))
        tu_sh("rm -rf '%s'", root);
    return rc;
}

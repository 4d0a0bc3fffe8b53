/*
 * test_plex_runner_client.c: the stand-in Plex Media Server (scripts/plex-test-server) read by an
 * independent client from the npm registry, @ctrl/plex (a TypeScript port of python-plexapi):
 * identity, the server root, the library sections with their locations, a scan started by the
 * client and the activity it shows (tests/plex/client-check.mjs). The package is installed once
 * into the build tree (npm install --prefix); when node/npm or the package cannot be had here
 * the test skips with 77 and says why.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define PKG "@ctrl/plex@3.12.1"

static char dir[4096];

static void test_client(void **state)
{
    (void)state;
    char out[64] = "";
    assert_int_equal(tu_sh_out(out, sizeof(out),
                               "'%s' start --dir '%s/plex' --mkplex '%s' --startup-ms 0 "
                               "--step-ms 100 --gap-ms 300 --owner %ld",
                               tu_source_path("scripts/plex-test-server"), dir,
                               tu_build_path("mkplex"), (long)getpid()),
                     0);
    int rc = tu_sh("node '%s' '%s/node_modules' %d '%s/media/Films'",
                   tu_source_path("tests/plex/client-check.mjs"), tu_build_path("plexclient"),
                   atoi(out), dir);
    tu_sh("'%s' stop --dir '%s/plex'", tu_source_path("scripts/plex-test-server"), dir);
    assert_int_equal(rc, 0);
}

int main(void)
{
    if (tu_sh("node -e 'process.exit(0)' >/dev/null 2>&1 && npm --version >/dev/null 2>&1") != 0)
        tu_skip("node and npm cannot run here (apt-get install nodejs npm)");
    const char *cache = tu_build_path("plexclient");
    if (tu_sh("mkdir -p '%s' && cd '%s' && ( flock 9; [ -f package.json ] || echo "
              "'{\"name\":\"pb-plex-client\",\"private\":true}' >package.json; "
              "[ -f node_modules/@ctrl/plex/package.json ] || npm install --no-audit --no-fund "
              "--loglevel=error '%s' >&2 ) 9>.install.lock",
              cache, cache, PKG) != 0)
        tu_skip("npm install " PKG " failed (no access to the npm registry?)");
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("plexclient"));
    if (tu_sh("mkdir -p '%s/plex' '%s/media/Films' && head -c 5000 /dev/urandom "
              ">'%s/media/Films/Alpha (2001).mkv' && '%s' scan --dir '%s/plex' --create-db "
              ">/dev/null && '%s' scan --dir '%s/plex' --add-section --name Films --type movie "
              "--location '%s/media/Films' >/dev/null",
              dir, dir, dir, tu_build_path("mkplex"), dir, tu_build_path("mkplex"), dir, dir) != 0)
        fail_msg("set-up failed");
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_client)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rc)
        tu_sh("cat '%s/plex.pts.log' >&2", dir);
    tu_sh("rm -rf '%s'", dir);
    return rc;
}

/*
 * test_scaleway_cloudinit.c: the scaleway instance's user data is a valid #cloud-config for
 * cloud-init itself: `cloud-init schema --config-file` (the Debian package's schema check) accepts
 * it with and without the self-destruct key. The tool is `cloud-init` on PATH, or the command
 * line in PB_TEST_CLOUD_INIT (e.g. a wrapper around an unpacked package); without either the
 * test is skipped (exit 77) saying so.
 * Prerequisites: cloud-init (Debian: apt-get install cloud-init, which also installs its boot
 * services: not for a development host; a scratch unpack works, see docs/scaleway.md "Tests").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cloud_scaleway.h"
#include "testutil.h"

static char dir[4096], tool[4096];

static void check(const char *secret)
{
    pb_scw_keys k;
    pb_error err = PB_ERROR_INIT;
    char key[4300], file[4300], out[8192];
    snprintf(key, sizeof(key), "%s/client_ed25519", dir);
    snprintf(file, sizeof(file), "%s/user-data.yaml", dir);
    assert_int_equal(pb_scw_keys_generate(&k, key, "20261207-120000-abcd", &err), 0);
    pb_scw_userdata u = {
        &k,     "20261207-120000-abcd",     "/var/lib/plexburst", 12,
        secret, "https://api.scaleway.com", "fr-par-2",           "1.40.0.7998-c29d4c0c8"};
    char *ud = pb_scw_userdata_build(&u);
    assert_non_null(ud);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fputs(ud, f);
    fclose(f);
    free(ud);
    pb_scw_keys_wipe(&k);
    int rc = tu_sh_out(out, sizeof(out), "%s schema --config-file '%s' 2>&1", tool, file);
    print_message("%s", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "Valid cloud-config"));
}

static void test_user_data_schema(void **state)
{
    (void)state;
    check(NULL);
    check("55555555-sd00-5555-5555-555555555555");
}

int main(void)
{
    const char *given = getenv("PB_TEST_CLOUD_INIT");
    if (given && *given)
        snprintf(tool, sizeof(tool), "%s", given);
    else if (tu_sh("command -v cloud-init >/dev/null 2>&1") == 0)
        snprintf(tool, sizeof(tool), "cloud-init");
    else
        tu_skip("cloud-init is not installed (Debian package cloud-init, or PB_TEST_CLOUD_INIT): "
                "the user data's schema check is skipped");
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("scwci"));
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_user_data_schema)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tu_sh("rm -rf '%s'", dir);
    return rc;
}

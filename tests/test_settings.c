/*
 * test_settings.c: strict numbers and known settings. Every numeric option of the CLI and every
 * numeric PLEXBURST_* setting (command line, environment, --config file) is decimal, whole-string,
 * finite and in range, else a usage error (exit 2, one line naming the option or setting and the
 * value); a --config file with an unknown PLEXBURST_* key is an error naming the key and file.
 * Prerequisites: the built plexburst CLI (PB_BUILD_DIR).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const char *dir;
static char err[4096];

/* Runs `ENV plexburst ARGS` in the scratch dir; stderr in err; returns the exit status. */
static int cli(const char *env, const char *args)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/stderr.txt", dir);
    int rc = tu_sh("cd '%s' && env -u PLEXBURST_MAX_DELETE_PCT -u PLEXBURST_CONFIG %s '%s' %s "
                   ">/dev/null 2>'%s'",
                   dir, env ? env : "", tu_build_path("plexburst"), args, path);
    char *e = tu_slurp(path);
    snprintf(err, sizeof(err), "%s", e ? e : "");
    free(e);
    return rc;
}

/* A usage error: exit 2 and one line of stderr holding `what` and `value`. */
static void usage_error(int rc, const char *what, const char *value)
{
    if (rc != 2 || !strstr(err, what) || !strstr(err, value) ||
        strchr(err, '\n') != strrchr(err, '\n'))
        fail_msg("expected exit 2 naming %s and '%s', got %d: %s", what, value, rc, err);
}

static void write_env(const char *name, const char *text)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

#define SYNC "sync --plex-dir home --runner true"

static const char *const bad_pct[] = {"nan", "-5", "0x10", "1e999", "12abc", "101", " 5", NULL};

static void test_option(void **state)
{
    (void)state;
    char args[256];
    for (int i = 0; bad_pct[i]; i++) {
        snprintf(args, sizeof(args), SYNC " --max-delete-pct '%s'", bad_pct[i]);
        usage_error(cli(NULL, args), "--max-delete-pct", bad_pct[i]);
    }
    usage_error(cli(NULL, "diff --max-delete-pct nan"), "--max-delete-pct", "nan");
    usage_error(cli(NULL, "diff --zstd-level 0x3"), "--zstd-level", "0x3");
    usage_error(cli(NULL, SYNC " --zstd-level 0x3"), "--zstd-level", "0x3");
    usage_error(cli(NULL, "merge --keep-backups -1"), "--keep-backups", "-1");
}

static void test_environment(void **state)
{
    (void)state;
    char env[256];
    for (int i = 0; bad_pct[i]; i++) {
        snprintf(env, sizeof(env), "PLEXBURST_MAX_DELETE_PCT='%s'", bad_pct[i]);
        usage_error(cli(env, SYNC), "PLEXBURST_MAX_DELETE_PCT", bad_pct[i]);
    }
}

static void test_config_file(void **state)
{
    (void)state;
    char text[256];
    for (int i = 0; bad_pct[i]; i++) {
        snprintf(text, sizeof(text), "PLEXBURST_MAX_DELETE_PCT='%s'\n", bad_pct[i]);
        write_env("bad.env", text);
        usage_error(cli(NULL, SYNC " --config bad.env"), "PLEXBURST_MAX_DELETE_PCT", bad_pct[i]);
        assert_non_null(strstr(err, "bad.env"));
    }
    write_env("typo.env", "PLEXBURST_MAX_DELET_PCT=10\n");
    usage_error(cli(NULL, SYNC " --config typo.env"), "PLEXBURST_MAX_DELET_PCT", "typo.env");
    assert_non_null(strstr(err, "did you mean PLEXBURST_MAX_DELETE_PCT"));
    write_env("ssh.env", "PLEXBURST_SSH_KEEPALIVE=0x10\n");
    usage_error(cli(NULL, SYNC " --config ssh.env"), "PLEXBURST_SSH_KEEPALIVE", "0x10");
}

/* Valid values reach the run, which fails later for another reason (no library DB). */
static void test_valid(void **state)
{
    (void)state;
    int rc = cli(NULL, SYNC " --max-delete-pct 7.5 --zstd-level 3");
    if (rc == 2 || rc == 0 || strstr(err, "max-delete-pct"))
        fail_msg("--max-delete-pct 7.5: %d %s", rc, err);
    rc = cli("PLEXBURST_MAX_DELETE_PCT=0", SYNC);
    if (rc == 2 || rc == 0 || strstr(err, "MAX_DELETE_PCT"))
        fail_msg("PLEXBURST_MAX_DELETE_PCT=0: %d %s", rc, err);
    write_env("good.env", "# ok\nPLEXBURST_MAX_DELETE_PCT=100\nPLEXBURST_S3_RETRIES=3\nOTHER=x\n");
    rc = cli(NULL, SYNC " --config good.env");
    if (rc == 2 || rc == 0 || strstr(err, "good.env"))
        fail_msg("good.env: %d %s", rc, err);
}

int main(void)
{
    dir = tu_tmpdir("settings");
    if (tu_sh("mkdir -p '%s/home'", dir) != 0)
        tu_skip("cannot make the scratch dir");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_option),
        cmocka_unit_test(test_environment),
        cmocka_unit_test(test_config_file),
        cmocka_unit_test(test_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

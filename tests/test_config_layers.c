/*
 * test_config_layers.c: the configuration's layers through the plexburst CLI. The system file
 * (PLEXBURST_SYSCONFDIR/plexburst/plexburst.env), the user file
 * ($XDG_CONFIG_HOME/plexburst/plexburst.env), --config FILE (or PLEXBURST_CONFIG) and the
 * environment, each later one over the earlier; `plexburst config --json` names where each value
 * came from (file and line); no secret appears in any output; --config is taken by every
 * command; a typo, a bad number or an unreadable file in any layer is one line naming the file
 * and the line, exit 2, nothing done.
 * Prerequisites: the built plexburst and mkplex (PB_BUILD_DIR). Each command runs under `env -i`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "testutil.h"

static char dir[4096];
static char out[65536], err[8192];

static const char *const secrets[] = {
    "SYS-SECRET-1", "USER-SECRET-2", "claim-SECRET-3", "URLPASS-4",
    "TOKEN-5",      "ENV-SECRET-6",  "ENV-SECRET-7",   NULL};

static void write_file(const char *rel, const char *text)
{
    char path[4300];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Runs `env -i ... ENV plexburst ARGS` in dir; stdout in out, stderr in err; the exit status. */
static int cli(const char *env, const char *args)
{
    char o[4300], e[4300];
    snprintf(o, sizeof(o), "%s/out.txt", dir);
    snprintf(e, sizeof(e), "%s/err.txt", dir);
    int rc = tu_sh("cd '%s' && env -i PATH=\"$PATH\" HOME='%s/home' PLEXBURST_SYSCONFDIR='%s/etc' "
                   "XDG_CONFIG_HOME='%s/xdg' %s '%s' %s >'%s' 2>'%s'",
                   dir, dir, dir, dir, env ? env : "", tu_build_path("plexburst"), args, o, e);
    char *so = tu_slurp(o), *se = tu_slurp(e);
    snprintf(out, sizeof(out), "%s", so ? so : "");
    snprintf(err, sizeof(err), "%s", se ? se : "");
    free(so);
    free(se);
    return rc;
}

static void no_secret_shown(const char *what)
{
    for (int i = 0; secrets[i]; i++)
        if (strstr(out, secrets[i]) || strstr(err, secrets[i]))
            fail_msg("%s shows the secret %s:\n%s\n%s", what, secrets[i], out, err);
}

#define ENV                                                                                        \
    "PLEXBURST_CLOUD=local:/env/cloud PLEXBURST_SSH_KEY_PASSPHRASE=ENV-SECRET-6 "                  \
    "AWS_SECRET_ACCESS_KEY=ENV-SECRET-7"

static void layers_files(void)
{
    write_file("etc/plexburst/plexburst.env", "# the system file\n"
                                              "PLEXBURST_PLEX_DIR=/sys/plex\n"
                                              "PLEXBURST_RUNNER=sysrunner\n"
                                              "PLEXBURST_MAX_DELETE_PCT=7\n"
                                              "PLEXBURST_S3_SECRET_KEY=SYS-SECRET-1\n"
                                              "PLEXBURST_STORE=/sys/store\n");
    write_file("xdg/plexburst/plexburst.env", "PLEXBURST_PLEX_DIR=plex\n"
                                              "export PLEXBURST_STORE='/user/store'\n"
                                              "SCW_SECRET_KEY=USER-SECRET-2\n");
    write_file("cli.env", "PLEXBURST_STORE=/cli/store\n"
                          "\n"
                          "PLEXBURST_PLEX_CLAIM=claim-SECRET-3\n"
                          "PLEXBURST_PLEX_URL=https://me:URLPASS-4@plex.example/x?X-Plex-Token="
                          "TOKEN-5\n");
}

/* The item of `key` in the JSON of `config --json`. */
static json_t *item(json_t *root, const char *key)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(root, "settings"), i, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "key")), key) == 0)
            return v;
    }
    fail_msg("no %s in the output", key);
    return NULL;
}

static void expect(json_t *root, const char *key, const char *value, const char *source,
                   const char *file_end, int line)
{
    json_t *v = item(root, key);
    const char *val = json_string_value(json_object_get(v, "value"));
    const char *src = json_string_value(json_object_get(v, "source"));
    const char *file = json_string_value(json_object_get(v, "file"));
    if (!val || strcmp(val, value) || strcmp(src, source))
        fail_msg("%s: got %s from %s, expected %s from %s", key, val ? val : "null", src, value,
                 source);
    if (file_end) {
        size_t fl = file ? strlen(file) : 0, el = strlen(file_end);
        if (!file || fl < el || strcmp(file + fl - el, file_end) ||
            json_integer_value(json_object_get(v, "line")) != line)
            fail_msg("%s: from %s:%lld, expected ...%s:%d", key, file ? file : "null",
                     (long long)json_integer_value(json_object_get(v, "line")), file_end, line);
    }
}

static json_t *config_json(const char *env, const char *args)
{
    char a[512];
    snprintf(a, sizeof(a), "config --json %s", args);
    int rc = cli(env, a);
    if (rc != 0)
        fail_msg("config --json %s: exit %d: %s", args, rc, err);
    json_error_t je;
    json_t *root = json_loads(out, 0, &je);
    if (!root)
        fail_msg("config --json: not JSON (%s): %s", je.text, out);
    no_secret_shown("config --json");
    return root;
}

static void test_layers(void **state)
{
    (void)state;
    layers_files();
    json_t *r = config_json(ENV, "--config cli.env");
    expect(r, "PLEXBURST_PLEX_DIR", "plex", "user", "xdg/plexburst/plexburst.env", 1);
    expect(r, "PLEXBURST_RUNNER", "sysrunner", "system", "etc/plexburst/plexburst.env", 3);
    expect(r, "PLEXBURST_MAX_DELETE_PCT", "7", "system", "etc/plexburst/plexburst.env", 4);
    expect(r, "PLEXBURST_STORE", "/cli/store", "--config", "cli.env", 1);
    expect(r, "PLEXBURST_CLOUD", "local:/env/cloud", "environment", NULL, 0);
    expect(r, "PLEXBURST_ONLINE", "0", "default", NULL, 0);
    expect(r, "PLEXBURST_S3_SECRET_KEY", "********", "system", "etc/plexburst/plexburst.env", 5);
    expect(r, "SCW_SECRET_KEY", "********", "user", "xdg/plexburst/plexburst.env", 3);
    expect(r, "PLEXBURST_PLEX_CLAIM", "********", "--config", "cli.env", 3);
    expect(r, "PLEXBURST_SSH_KEY_PASSPHRASE", "********", "environment", NULL, 0);
    expect(r, "AWS_SECRET_ACCESS_KEY", "********", "environment", NULL, 0);
    assert_true(json_is_true(json_object_get(item(r, "PLEXBURST_PLEX_CLAIM"), "secret")));
    json_decref(r);

    /* --config=FILE, PLEXBURST_CONFIG, none: the user file's store */
    r = config_json(NULL, "--config=cli.env");
    expect(r, "PLEXBURST_STORE", "/cli/store", "--config", "cli.env", 1);
    expect(r, "PLEXBURST_CLOUD", "local", "default", NULL, 0);
    json_decref(r);
    r = config_json("PLEXBURST_CONFIG=cli.env", "");
    expect(r, "PLEXBURST_STORE", "/cli/store", "--config", "cli.env", 1);
    json_decref(r);
    r = config_json(NULL, "");
    expect(r, "PLEXBURST_STORE", "/user/store", "user", "xdg/plexburst/plexburst.env", 2);
    json_decref(r);
    /* the environment over every file */
    r = config_json("PLEXBURST_STORE=/env/store", "--config cli.env");
    expect(r, "PLEXBURST_STORE", "/env/store", "environment", NULL, 0);
    json_decref(r);

    /* the text says the same, masked */
    assert_int_equal(cli(ENV, "config --all --config cli.env"), 0);
    no_secret_shown("config");
    assert_non_null(strstr(out, "xdg/plexburst/plexburst.env:1)"));
    assert_non_null(strstr(out, "(--config cli.env:1)"));
    assert_non_null(strstr(out, "(environment)"));
    assert_non_null(strstr(out, "(default)"));
    /* a PLEXBURST_* name of the environment that is no setting is pointed out */
    assert_int_equal(cli("PLEXBURST_RUNER=x", "config"), 0);
    assert_non_null(strstr(out, "PLEXBURST_RUNER is in the environment but is no setting"));
}

/* --config is taken by every command; the store and the plex dir reach them. */
static void test_every_command(void **state)
{
    (void)state;
    layers_files();
    static const char *const cmds[] = {"status",
                                       "check --offline",
                                       "fingerprint --plex-dir plex",
                                       "config",
                                       "diff",
                                       "cloud status",
                                       NULL};
    write_file("typo.env", "# fine\nPLEXBURST_STOER=/x\n");
    for (int i = 0; cmds[i]; i++) {
        char a[256];
        snprintf(a, sizeof(a), "%s --config typo.env", cmds[i]);
        int rc = cli(NULL, a);
        if (rc != 2 || !strstr(err, "typo.env:2: unknown setting PLEXBURST_STOER") ||
            !strstr(err, "did you mean PLEXBURST_STORE") || strchr(err, '\n') != strrchr(err, '\n'))
            fail_msg("%s: exit %d: %s", a, rc, err);
        snprintf(a, sizeof(a), "%s --config missing.env", cmds[i]);
        rc = cli(NULL, a);
        if (rc != 2 || !strstr(err, "missing.env"))
            fail_msg("%s: exit %d: %s", a, rc, err);
    }
    /* a good --config is no unknown option of any command (cloud status: no network here) */
    for (int i = 0; cmds[i + 1]; i++) {
        char a[256];
        snprintf(a, sizeof(a), "%s --config cli.env", cmds[i]);
        cli(ENV, a);
        if (strstr(err, "--config") || strstr(err, "unknown option"))
            fail_msg("%s: %s", a, err);
        no_secret_shown(a);
    }
    /* status finds the data dir of the user file */
    int st = cli(NULL, "status --config cli.env");
    if (st != 0 || !strstr(out, "plex.plexburst"))
        fail_msg("status: exit %d: %s\n%s", st, out, err);
    assert_int_equal(cli(NULL, "config --config cli.env --config cli.env"), 2);
    assert_non_null(strstr(err, "twice"));
    /* check finds the data dir of the user file, and the runner of the system file missing */
    int rc = cli(ENV, "check --offline --config cli.env");
    if (rc != 1 || !strstr(out, "Plex data dir: plex") || !strstr(out, "disk: ") ||
        !strstr(out, "❌ runner: the command's program 'sysrunner' is not found"))
        fail_msg("check --offline: exit %d: %s\n%s", rc, out, err);
    no_secret_shown("check");
    rc = cli(ENV, "check --offline --json --config cli.env");
    no_secret_shown("check --json");
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    assert_true(json_array_size(json_object_get(j, "setup")) >= 6);
    json_decref(j);
}

/* A typo, a bad number or an unreadable file in each layer: one line naming it, exit 2, nothing
 * done (sync makes no state dir). */
static void layer_refused(const char *env, const char *args, const char *what)
{
    char a[512];
    snprintf(a, sizeof(a), "sync --plex-dir plex --runner true %s", args);
    int rc = cli(env, a);
    if (rc != 2 || !strstr(err, what) || strchr(err, '\n') != strrchr(err, '\n'))
        fail_msg("%s: exit %d, expected 2 and one line with %s: %s", a, rc, what, err);
    if (tu_sh("test ! -e '%s/plex.plexburst'", dir) != 0)
        fail_msg("%s: the state dir was made", a);
    rc = cli(env, strstr(args, "--config") ? "config --config cli.env" : "config");
    if (rc != 2 || !strstr(err, what))
        fail_msg("config %s: exit %d: %s", args, rc, err);
}

static void test_refused(void **state)
{
    (void)state;
    layers_files();
    assert_int_equal(tu_sh("rm -rf '%s/plex.plexburst'", dir), 0); /* made by the commands above */
    write_file("etc/plexburst/plexburst.env", "PLEXBURST_PLEX_DIR=/x\nPLEXBURST_RUNER=true\n");
    layer_refused(NULL, "", "etc/plexburst/plexburst.env:2: unknown setting PLEXBURST_RUNER");
    write_file("etc/plexburst/plexburst.env", "PLEXBURST_MAX_DELETE_PCT=nan\n");
    layer_refused(NULL, "", "etc/plexburst/plexburst.env:1: PLEXBURST_MAX_DELETE_PCT");
    write_file("etc/plexburst/plexburst.env", "PLEXBURST_PLEX_DIR=/x\n");

    write_file("xdg/plexburst/plexburst.env", "\n\nPLEXBURST_ONLNE=1\n");
    layer_refused(NULL, "", "xdg/plexburst/plexburst.env:3: unknown setting PLEXBURST_ONLNE");
    write_file("xdg/plexburst/plexburst.env", "PLEXBURST_STORE=\"open\n");
    layer_refused(NULL, "", "xdg/plexburst/plexburst.env:1: unterminated quote");
    assert_int_equal(tu_sh("rm -f '%s/xdg/plexburst/plexburst.env' && mkdir "
                           "'%s/xdg/plexburst/plexburst.env'",
                           dir, dir),
                     0);
    layer_refused(NULL, "", "xdg/plexburst/plexburst.env");
    assert_int_equal(tu_sh("rmdir '%s/xdg/plexburst/plexburst.env'", dir), 0);

    write_file("cli.env", "PLEXBURST_SSH_KEEPALIVE=0x10\n");
    layer_refused(NULL, "--config cli.env", "cli.env:1: PLEXBURST_SSH_KEEPALIVE");
    layer_refused("PLEXBURST_SSH_KEEPALIVE=-1", "",
                  "environment: PLEXBURST_SSH_KEEPALIVE: expected a decimal whole number");
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("cfglayers"));
    if (tu_sh("cd '%s' && mkdir -p etc/plexburst xdg/plexburst home && '%s' init --dir plex "
              "--scale tiny --no-tree >/dev/null",
              dir, tu_build_path("mkplex")) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_sh("rm -rf '%s'", dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layers),
        cmocka_unit_test(test_every_command),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

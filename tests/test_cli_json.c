/*
 * test_cli_json.c: the --json contract of the small commands (export, sigs, status, fingerprint,
 * check, diff; sync and bootstrap for usage errors): every output is one object jansson parses,
 * paths with a quote, a backslash and a tab come back byte for byte, and a failure (bad option,
 * missing data dir, unreadable input) prints one object too, with exit_code equal to the process's
 * exit status and error {code, name, message}. Prerequisites: the built plexburst and mkplex
 * (PB_BUILD_DIR).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "testutil.h"

#define DB_DIR "Plug-in Support/Databases"

static struct {
    char dir[4096], plexburst[4096], mkplex[4096];
} g;

/* Runs `args` through plexburst; parses stdout as one JSON object (fails the test otherwise) and
 * returns it with the exit status in *status. */
static json_t *run_json(int *status, const char *what, const char *args)
{
    static char out[1 << 20];
    json_error_t je;
    *status =
        tu_sh_out(out, sizeof(out), "cd '%s' && '%s' %s 2>/dev/null", g.dir, g.plexburst, args);
    json_t *j = json_loads(out, 0, &je);
    if (!j || !json_is_object(j))
        fail_msg("%s: stdout is not one JSON object (%s at %d): '%s'", what, je.text, je.position,
                 out);
    return j;
}

/* A failed command's object: ok false, exit_code the exit status, error {code, name, message}. */
static void check_failure(const char *what, const char *args, int want_status)
{
    int status;
    json_t *j = run_json(&status, what, args);
    json_t *err = json_object_get(j, "error");
    if (status != want_status)
        fail_msg("%s: exit %d, expected %d", what, status, want_status);
    if (!json_is_false(json_object_get(j, "ok")) ||
        json_integer_value(json_object_get(j, "exit_code")) != status || !json_is_object(err) ||
        !json_is_integer(json_object_get(err, "code")) ||
        !json_string_value(json_object_get(err, "name")) ||
        !json_string_value(json_object_get(err, "message")))
        fail_msg("%s: not the failure shape: %s", what, json_dumps(j, JSON_COMPACT));
    json_decref(j);
}

static const char *str(json_t *j, const char *key)
{
    const char *s = json_string_value(json_object_get(j, key));
    return s ? s : "";
}

/* Output paths with a quote, a backslash and a tab: the objects parse and give them back. */
static void test_paths_quoted(void **state)
{
    (void)state;
    /* the file names as the shell sees them (inside single quotes) and as bytes */
    const char *list_sh = "li\"st\\1\t.pbl", *answer_sh = "an\"sw\\er";
    int status;
    char args[8192];

    snprintf(args, sizeof(args), "export --cloud-dir cloud --list-only -o '%s' --json", list_sh);
    json_t *j = run_json(&status, "export --list-only", args);
    assert_int_equal(status, 0);
    assert_string_equal(str(j, "list"), list_sh);
    assert_true(json_is_true(json_object_get(j, "ok")));
    assert_int_equal(json_integer_value(json_object_get(j, "exit_code")), 0);
    assert_true(json_integer_value(json_object_get(j, "files")) > 0);
    json_decref(j);

    snprintf(args, sizeof(args), "sigs --plex-dir home --wanted '%s' -o '%s' --json", list_sh,
             answer_sh);
    j = run_json(&status, "sigs", args);
    assert_int_equal(status, 0);
    assert_string_equal(str(j, "answer"), answer_sh);
    assert_string_equal(str(j, "command"), "sigs");
    json_decref(j);

    /* the home's manifest, then the wanted LIST against it */
    j = run_json(&status, "fingerprint", "fingerprint --plex-dir home --json");
    assert_int_equal(status, 0);
    assert_true(json_is_true(json_object_get(j, "ok")));
    char manifest[4096];
    snprintf(manifest, sizeof(manifest), "%s", str(j, "manifest"));
    json_decref(j);
    snprintf(args, sizeof(args),
             "export --cloud-dir cloud --list-only --base-dir '%s' -o 'wa\"n\\t' --json", manifest);
    j = run_json(&status, "export --list-only --base-dir", args);
    assert_int_equal(status, 0);
    assert_string_equal(str(j, "wanted"), "wa\"n\\t");
    json_decref(j);

    j = run_json(&status, "status", "status --plex-dir home --json");
    assert_int_equal(status, 0);
    assert_true(json_is_true(json_object_get(j, "ok")));
    json_decref(j);
}

/* Every failure prints one object with exit_code. */
static void test_failures(void **state)
{
    (void)state;
    check_failure("export, no cloud dir", "export --cloud-dir nowhere --list-only -o x --json", 1);
    check_failure("export, bad option", "export --json --cloud-dir cloud --frobnicate", 2);
    check_failure("export, option before --json", "export --frobnicate --json", 2);
    check_failure("export, missing -o", "export --cloud-dir cloud --list-only --json", 2);
    check_failure("export, no base", "export --cloud-dir cloud -o b --json", 2);
    check_failure("export, no baseline blobs",
                  "export --cloud-dir cloud --base-db cloud/nothing.db --sigs nothing -o b --json",
                  2);
    check_failure("export, corrupt answer",
                  "export --cloud-dir cloud --base-db 'home/" DB_DIR
                  "/com.plexapp.plugins.library.db' "
                  "--base-blobs 'home/" DB_DIR "/com.plexapp.plugins.library.blobs.db' "
                  "--sigs garbage -o b --json",
                  1);
    check_failure("sigs, no home", "sigs --plex-dir nowhere --wanted x -o y --json", 1);
    check_failure("sigs, missing option", "sigs --plex-dir home --json", 2);
    check_failure("status, no home", "status --plex-dir nowhere --json", 1);
    check_failure("status, bad option", "status --json --plex-dir home --verbose", 2);
    check_failure("fingerprint, no home", "fingerprint --plex-dir nowhere --json", 1);
    check_failure("fingerprint, missing option", "fingerprint --json", 2);
    check_failure("check, no home", "check --plex-dir nowhere --json", 1);
    check_failure("diff, missing option", "diff --json --base x.db", 2);
    check_failure("sync, bad option", "sync --json --frobnicate", 2);
    check_failure("bootstrap, bad option", "bootstrap --frobnicate --json", 2);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g.dir, sizeof(g.dir), "%s", tu_tmpdir("clijson"));
    snprintf(g.plexburst, sizeof(g.plexburst), "%s", tu_build_path("plexburst"));
    snprintf(g.mkplex, sizeof(g.mkplex), "%s", tu_build_path("mkplex"));
    if (tu_sh("cd '%s' && '%s' init --dir cloud --scale tiny --seed 1 >/dev/null && cp -a cloud "
              "home && '%s' analyze --dir cloud --seed 7 >/dev/null && echo garbage >garbage",
              g.dir, g.mkplex, g.mkplex) != 0)
        return -1;
    return 0;
}

int main(void)
{
    if (access(tu_build_path("plexburst"), X_OK) != 0 || access(tu_build_path("mkplex"), X_OK) != 0)
        tu_skip("plexburst or mkplex is not built");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths_quoted),
        cmocka_unit_test(test_failures),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

/*
 * test_run_units.c: the small pieces of the runs: `.env` configuration and the environment
 * (engine/run/config.h), plex_libraries.json, the detached command runner (engine/runner:
 * substitution with shell quoting, line relay, exit status, a stop through the watched fd, the
 * redaction of a command line in every form, and a bootstrap through the local cloud whose runner
 * line's secrets reach no output, log or state), the cloud table (selection by scheme, a cloud not
 * built yet, the local cloud's checks).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cloud.h"
#include "config.h"
#include "runner.h"
#include "testutil.h"
#include "transfer_util.h"

static char dir[4096];

static void write_file(const char *name, const char *text, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_config(void **state)
{
    (void)state;
    char path[4200];
    pb_error err = PB_ERROR_INIT;
    pb_config *c = NULL;
    write_file("a.env",
               "# plexburst configuration\n"
               "PLEXBURST_PLEX_DIR=/srv/plex   # trailing comment\n"
               "export PLEXBURST_RUNNER='mkplex analyze --dir {plex_dir} # not a comment'\n"
               "PLEXBURST_PLEX_STOP_CMD=\"systemctl stop \\\"plex\\\"\"\n"
               "PLEXBURST_S3_SECRET_KEY=hunter2\n"
               "PLEXBURST_PLEX_START_CMD=\"curl -H 'X-Plex-Token: hunter3' http://h/\"\n"
               "\n"
               "PLEXBURST_MAX_DELETE_PCT=10\n"
               "PLEXBURST_MAX_DELETE_PCT=12\n",
               path, sizeof(path));
    unsetenv("PLEXBURST_PLEX_DIR");
    assert_int_equal(pb_config_load(&c, path, &err), 0);
    assert_string_equal(pb_config_get(c, "PLEXBURST_PLEX_DIR"), "/srv/plex");
    assert_string_equal(pb_config_get(c, "PLEXBURST_RUNNER"),
                        "mkplex analyze --dir {plex_dir} # not a comment");
    assert_string_equal(pb_config_get(c, "PLEXBURST_PLEX_STOP_CMD"), "systemctl stop \"plex\"");
    assert_string_equal(pb_config_get(c, "PLEXBURST_MAX_DELETE_PCT"), "12");
    assert_null(pb_config_get(c, "PLEXBURST_NOPE"));
    /* the environment wins over the file */
    setenv("PLEXBURST_PLEX_DIR", "/from/env", 1);
    assert_string_equal(pb_config_get(c, "PLEXBURST_PLEX_DIR"), "/from/env");
    unsetenv("PLEXBURST_PLEX_DIR");
    /* secrets never shown */
    char line[2048];
    pb_config_describe(c, line, sizeof(line));
    assert_null(strstr(line, "hunter2"));
    assert_null(strstr(line, "hunter3"));
    assert_non_null(strstr(line, "PLEXBURST_PLEX_START_CMD=curl -H 'X-Plex-Token: <secret>'"));
    assert_non_null(strstr(line, "PLEXBURST_S3_SECRET_KEY=<secret>"));
    assert_true(pb_config_is_secret("AWS_SECRET_ACCESS_KEY"));
    assert_false(pb_config_is_secret("PLEXBURST_STORE"));
    pb_config_free(c);

    /* bad lines name the file and line */
    write_file("b.env", "OK=1\nthis is not an assignment\n", path, sizeof(path));
    assert_int_equal(pb_config_load(&c, path, &err), PB_EINVALID);
    assert_non_null(strstr(err.msg, "b.env:2"));
    pb_error_clear(&err);
    write_file("c.env", "A=\"open\n", path, sizeof(path));
    assert_int_equal(pb_config_load(&c, path, &err), PB_EINVALID);
    assert_non_null(strstr(err.msg, "unterminated"));
    pb_error_clear(&err);
    assert_int_equal(pb_config_load(&c, "/nonexistent/.env", &err), PB_ENOTFOUND);
    /* no file: the environment only */
    assert_int_equal(pb_config_load(&c, NULL, &err), 0);
    setenv("PLEXBURST_CLOUD", "local:/x", 1);
    assert_string_equal(pb_config_get(c, "PLEXBURST_CLOUD"), "local:/x");
    unsetenv("PLEXBURST_CLOUD");
    pb_config_free(c);
}

static void test_libraries(void **state)
{
    (void)state;
    char path[4200];
    pb_error err = PB_ERROR_INIT;
    pb_plex_library *l = NULL;
    size_t n = 0;
    write_file("libs.json",
               "{\"libraries\": [{\"name\": \"Movies\", \"type\": \"movie\", \"locations\": "
               "[\"/data/movies\", \"/data/4k\"], \"agent\": \"tv.plex.agents.movie\"},"
               "{\"name\": \"Music\", \"type\": \"artist\", \"location\": \"/data/music\"}]}",
               path, sizeof(path));
    assert_int_equal(pb_plex_libraries_load(&l, &n, path, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(l[0].name, "Movies");
    assert_int_equal(l[0].nlocations, 2);
    assert_string_equal(l[0].locations[1], "/data/4k");
    assert_string_equal(l[1].locations[0], "/data/music");
    free(l);
    write_file("bad.json", "[{\"name\": \"X\", \"type\": \"movie\"}]", path, sizeof(path));
    assert_int_equal(pb_plex_libraries_load(&l, &n, path, &err), PB_EINVALID);
    assert_non_null(strstr(err.msg, "no locations"));
    pb_error_clear(&err);
    write_file("bad2.json", "{\"libraries\": 3", path, sizeof(path));
    assert_int_equal(pb_plex_libraries_load(&l, &n, path, &err), PB_EINVALID);
}

typedef struct lines {
    int n;
    char last[256];
    char all[4096];
} lines;

static int on_line(const char *text, void *payload)
{
    lines *l = payload;
    l->n++;
    snprintf(l->last, sizeof(l->last), "%s", text);
    strncat(l->all, text, sizeof(l->all) - strlen(l->all) - 2);
    strcat(l->all, "|");
    return 0;
}

static int stop_now(void *payload)
{
    (void)payload;
    return PB_ECANCELLED;
}

/* Starts the detached command runner of run `id` in `dir` and follows it with `io`. */
static int run_command(int *status, const char *id, const char *cmd, const pb_runner_io *io,
                       pb_error *err)
{
    char state[4200];
    pb_runner *r = NULL;
    pb_runner_options ro = PB_RUNNER_OPTIONS_INIT;
    snprintf(state, sizeof(state), "%s/runner-state", dir);
    tu_sh("mkdir -p '%s'", state);
    ro.plex_dir = dir;
    ro.state_dir = state;
    ro.run_id = id;
    assert_int_equal(pb_runner_open(&r, &ro, err), 0);
    assert_int_equal(pb_runner_state(r, status), PB_RUNNER_NONE);
    char shown[512];
    assert_int_equal(pb_runner_start(r, cmd, shown, sizeof(shown), err), 0);
    int rc = pb_runner_follow(r, io, status, err);
    if (rc == PB_ECANCELLED) {
        /* stopped: the whole process group goes (nothing works for the run any more) */
        double t0 = (double)time(NULL);
        while (pb_runner_state(r, status) == PB_RUNNER_WORKING && (double)time(NULL) - t0 < 10)
            usleep(20000);
        assert_int_not_equal(pb_runner_state(r, status), PB_RUNNER_WORKING);
    }
    pb_runner_free(r);
    return rc;
}

static void test_runner(void **state)
{
    (void)state;
    pb_error err = PB_ERROR_INIT;
    char *x = NULL;
    assert_int_equal(pb_runner_expand(&x, "{mkplex} analyze --dir {plex_dir} {other}", "/a b/it's",
                                      "/bin/mk", &err),
                     0);
    assert_string_equal(x, "'/bin/mk' analyze --dir '/a b/it'\\''s' {other}");
    free(x);
    assert_int_equal(pb_runner_expand(&x, "{mkplex} init", "/p", NULL, &err), PB_ENOTFOUND);

    /* output relayed line by line (stdout and stderr), the exit status kept, in plex_dir */
    lines l = {0};
    pb_runner_io io = {on_line, -1, NULL, &l};
    int status = -1;
    assert_int_equal(run_command(&status, "r1",
                                 "echo one; echo two >&2; printf 'no newline'; "
                                 "test \"$PWD\" = \"$PLEX_DIR\" || echo wrongdir; exit 5",
                                 &io, &err),
                     0);
    assert_int_equal(status, 5);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.all, "one|two|no newline|");

    /* a watched fd that becomes readable stops the whole process group */
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    pb_runner_io io2 = {on_line, p[0], stop_now, &l};
    double t0 = (double)time(NULL);
    pb_error_clear(&err);
    assert_int_equal(run_command(&status, "r2", "sleep 30 & sleep 30; echo late", &io2, &err),
                     PB_ECANCELLED);
    assert_true((double)time(NULL) - t0 < 10);
    close(p[0]);
    close(p[1]);

    /* secrets masked in what is logged */
    char shown[512];
    pb_runner_redact(shown, sizeof(shown),
                     "curl -s 'http://h:32400/library?X-Plex-Token=abc123' PLEX_TOKEN=zz "
                     "--password hunter2 --dir /x");
    print_message("redacted: %s\n", shown);
    assert_null(strstr(shown, "abc123"));
    assert_null(strstr(shown, "zz "));
    assert_null(strstr(shown, "hunter2"));
    assert_non_null(strstr(shown, "--dir /x"));
}

/* One redaction: the exact line shown, the marker absent. */
static void redacts(const char *line, const char *want)
{
    char shown[1024];
    pb_runner_redact(shown, sizeof(shown), line);
    print_message("redacted: %s\n", shown);
    assert_string_equal(shown, want);
    assert_null(strstr(shown, "QZMARK"));
}

static void test_runner_redact(void **state)
{
    (void)state;
    /* argv[0] kept, plain arguments re-quoted only where needed */
    redacts("'/opt/mk plex' init --dir '/srv/plex' --seed 1",
            "'/opt/mk plex' init --dir /srv/plex --seed 1");
    /* a header naming a secret, quoted either way */
    redacts("curl -H 'X-Plex-Token: QZMARK1' -H \"Authorization: Bearer QZMARK2\" "
            "-H 'Accept: text/xml' http://h/x",
            "curl -H 'X-Plex-Token: <secret>' -H 'Authorization: <secret>' -H 'Accept: text/xml' "
            "http://h/x");
    /* the word after a secret-looking option, and --opt=value */
    redacts("tool --apikey QZMARK1 -p QZMARK2 --token=QZMARK3 --api-key QZMARK4 --key QZMARK5 "
            "--dir /x -v",
            "tool --apikey <secret> -p <secret> --token=<secret> --api-key <secret> --key <secret> "
            "--dir /x -v");
    /* URL userinfo (a lone user kept) and query parameters */
    redacts("fetch 'https://user:QZMARK1@host:8443/a/b?X-Plex-Token=QZMARK2&page=2' "
            "sftp://bob@host/x 's3://h/p?apikey=QZMARK3#access_token=QZMARK4'",
            "fetch 'https://user:<secret>@host:8443/a/b?X-Plex-Token=<secret>&page=2' "
            "sftp://bob@host/x 's3://h/p?apikey=<secret>#access_token=<secret>'");
    /* KEY=value: before the command and as an argument; a URL as a value */
    redacts("PLEX_TOKEN=QZMARK1 LANG=C mkplex PASSWORD=QZMARK2 url=https://u:QZMARK3@h mode=fast",
            "PLEX_TOKEN=<secret> LANG=C mkplex PASSWORD=<secret> url=https://u:<secret>@h "
            "mode=fast");
    /* quoted values and backslashes, each command of the line, any secret-looking argument */
    redacts("a \"my password QZMARK1\" 'don'\\''t' b\\ c ; true plain && sh -c 'x --token "
            "QZMARK3' | cat bearer:QZMARK4",
            "a <secret> 'don'\\''t' 'b c' ; true plain && sh -c <secret> | cat <secret>");
    /* nothing of the marker survives, truncation included */
    char small[24];
    pb_runner_redact(small, sizeof(small), "x --password QZMARK1 y");
    assert_string_equal(small, "x --password <secret> y");
    pb_runner_redact(small, 10, "x --password QZMARK1 y");
    assert_string_equal(small, "x --passw");
}

/* A bootstrap through the local cloud with secrets on the runner line: none reaches stdout,
 * stderr, the home's state (logs, runs, sync) or the cloud's dir. */
static void test_runner_secrets_e2e(void **state)
{
    (void)state;
    char pb[4200], mk[4200], out[1 << 16];
    snprintf(pb, sizeof(pb), "%s", tu_build_path("plexburst"));
    snprintf(mk, sizeof(mk), "%s", tu_build_path("mkplex"));
    if (access(pb, X_OK) != 0 || access(mk, X_OK) != 0)
        skip();
    assert_int_equal(tu_sh("'%s' init --scale tiny --dir '%s/sh' --seed 1 >/dev/null", mk, dir), 0);
    /* the marker in every form; `true` takes what mkplex would refuse */
    int rc = tu_sh_out(out, sizeof(out),
                       "cd '%s' && PLEXBURST_RUNNER= '%s' bootstrap --plex-dir '%s/sh' --cloud "
                       "'local:%s/sc' --runner \"{mkplex} init --dir {plex_dir} --scale tiny "
                       "--seed 1 ; true -H 'X-Plex-Token: QZMARK123' --apikey QZMARK123 -p "
                       "QZMARK123 https://u:QZMARK123@h/x?api_key=QZMARK123 'Authorization: "
                       "Bearer QZMARK123'\" >'%s/stdout.txt' 2>'%s/stderr.txt'; echo $?",
                       dir, pb, dir, dir, dir, dir);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "0\n");
    assert_int_equal(tu_sh("grep -q 'runner: .*mkplex init' '%s/stdout.txt'", dir), 0);
    assert_int_equal(tu_sh("grep -q \"X-Plex-Token: <secret>\" '%s'/sh.plexburst/logs/*.log", dir),
                     0);
    /* the marker nowhere: stdout, stderr, the home's state dir, the cloud's dir */
    rc = tu_sh_out(out, sizeof(out),
                   "grep -rl QZMARK123 '%s/stdout.txt' '%s/stderr.txt' "
                   "'%s/sh.plexburst' '%s/sc'",
                   dir, dir, dir, dir);
    print_message("files with the marker: %s\n", out);
    assert_int_equal(rc, 1);
    assert_string_equal(out, "");
}

static int open_cloud(pb_cloud **c, const char *url, const char *store, pb_error *err)
{
    char state[4200], plex[4200];
    snprintf(state, sizeof(state), "%s/home.plexburst", dir);
    snprintf(plex, sizeof(plex), "%s/home", dir);
    pb_cloud_options co = PB_CLOUD_OPTIONS_INIT;
    co.url = url;
    co.home_state = state;
    co.home_plex = plex;
    co.store = store;
    co.agent_program = "/bin/false";
    pb_error_clear(err);
    int rc = pb_cloud_open(c, &co, err);
    if (rc < 0) {
        pb_cloud_free(*c);
        *c = NULL;
    }
    return rc;
}

static void test_clouds(void **state)
{
    (void)state;
    pb_error err = PB_ERROR_INIT;
    pb_cloud *c = NULL;
    char line[4400], want[4400];
    /* local: DIR defaults to <state>/cloud, the store to DIR/store */
    assert_int_equal(open_cloud(&c, NULL, NULL, &err), 0);
    snprintf(want, sizeof(want), "%s/home.plexburst/cloud", dir);
    assert_string_equal(c->workdir, want);
    snprintf(want, sizeof(want), "%s/home.plexburst/cloud/store", dir);
    assert_string_equal(c->store, want);
    pb_cloud_describe(c, line, sizeof(line));
    assert_non_null(strstr(line, "local cloud in"));
    assert_false(pb_cloud_can_reconnect(c));
    pb_cloud_result res;
    pb_cloud_release(c, &res);
    assert_string_equal(res.provider, "local");
    assert_true(res.cost == 0);
    pb_cloud_free(c);
    /* local:DIR is created; inside the home data dir it is refused */
    snprintf(line, sizeof(line), "local:%s/elsewhere", dir);
    assert_int_equal(open_cloud(&c, line, "/x/store", &err), 0);
    assert_string_equal(c->store, "/x/store");
    pb_cloud_free(c);
    tu_sh("mkdir -p '%s/home'", dir);
    snprintf(line, sizeof(line), "local:%s/home/cloud", dir);
    assert_int_equal(open_cloud(&c, line, NULL, &err), PB_EINVALID);
    assert_non_null(strstr(err.msg, "lies inside the home Plex data dir"));
    /* ssh:// needs a store both sides reach; scaleway needs an account (docs/scaleway.md) */
    assert_int_equal(open_cloud(&c, "ssh://u@h.example/srv/pb", NULL, &err), PB_EINVALID);
    assert_non_null(strstr(err.msg, "needs a store"));
    assert_int_equal(open_cloud(&c, "ssh://u@h.example/srv/pb", "s3://b/p", &err), 0);
    assert_string_equal(c->workdir, "/srv/pb");
    assert_true(pb_cloud_can_reconnect(c) && pb_cloud_is_remote(c));
    pb_cloud_free(c);
    setenv("SCW_CONFIG_PATH", "/nonexistent/scw.yaml", 1);
    unsetenv("SCW_SECRET_KEY");
    assert_int_equal(open_cloud(&c, "scaleway:fr-par-1", NULL, &err), PB_EINVALID);
    assert_non_null(strstr(err.msg, "no Scaleway secret key"));
    assert_int_equal(open_cloud(&c, "ftp://h", NULL, &err), PB_EINVALID);
    assert_non_null(strstr(err.msg, "unknown --cloud"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_libraries),
        cmocka_unit_test(test_runner),
        cmocka_unit_test(test_runner_redact),
        cmocka_unit_test(test_runner_secrets_e2e),
        cmocka_unit_test(test_clouds),
    };
    return XU_RUN_IN_SCRATCH(dir, "runu", tests);
}

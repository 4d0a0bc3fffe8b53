/*
 * test_scaleway_life.c: the scaleway cloud's life around a run, against the Scaleway API stand-in
 * (scripts/scaleway-test-server, real sshd per server; shared pieces in scw_testutil.c):
 *   - the instance choice: --profile and --instance-type reach the instance (and the JSON's
 *     cloud.type), a bad profile and another cloud are refused;
 *   - the cost: the spend reaching PLEXBURST_MAX_COST mid-run stops the run cleanly (the
 *     instance destroyed, the home unchanged, the reported cost equal to the stand-in's billing);
 *   - resume: a home killed (SIGKILL) while its instance runs re-attaches to it on the next run
 *     (no second server), or destroys it when it no longer runs (powered off);
 *   - Ctrl-C at each lifecycle step, made deterministic by the stand-in's `hold` fault (the step's
 *     request waits until the test released it, after the SIGINT), and while waiting for SSH;
 *   - a dropped link mid-run (the stand-in kills every SSH connection) and the API going down
 *     mid-run (the teardown cannot reach it: the record stays and `cloud reap` removes it all).
 * After each: nothing of the run is left on the stand-in and the home is unchanged or synced.
 * Prerequisites: build/plexburst, build/mkplex, node, /usr/sbin/sshd (skipped without them).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <jansson.h>

#include "scw_testutil.h"

#define TOKEN "11111111-2222-3333-4444-555555555555"

static const char *json_str(json_t *j, const char *a, const char *b)
{
    return json_string_value(json_object_get(b ? json_object_get(j, a) : j, b ? b : a));
}

static json_int_t servers_created(void)
{
    json_t *s = scwt_ctl_call("/_control/state", NULL);
    json_int_t n = json_integer_value(json_object_get(s, "servers_created"));
    json_decref(s);
    return n;
}

/* A run refused before anything was created (`args` after `sync`): its error and type. */
static void refused(const char *env, const char *args, const char *expect, const char *type)
{
    char mode[256];
    int rc;
    snprintf(mode, sizeof(mode), "sync %s", args);
    json_int_t before = servers_created();
    json_t *j = scwt_run(mode, "analyze --dir {plex_dir} --seed 3", env, &rc);
    assert_int_not_equal(rc, 0);
    const char *e = json_str(j, "error", "message");
    print_message("%s: %s\n", args, e ? e : scwt_out);
    assert_non_null(e);
    assert_non_null(strstr(e, expect));
    if (type)
        assert_string_equal(json_str(j, "cloud", "type"), type);
    json_decref(j);
    assert_int_equal(servers_created(), before);
    scwt_assert_nothing_left();
}

static void test_instance_choice(void **state)
{
    (void)state;
    const char *tiny = "PLEXBURST_MAX_COST=0.0001";
    refused(tiny, "--profile lite", "DEV1-S", "DEV1-S");
    refused(tiny, "--profile superpower", "GP1-M", "GP1-M");
    refused(tiny, "--instance-type GP1-S", "GP1-S", "GP1-S");
    refused(tiny, "--profile lite --instance-type GP1-S", "GP1-S", "GP1-S");
    refused("PLEXBURST_MAX_COST=0.0001 PLEXBURST_SCW_TYPE=DEV1-S", "--instance-type DEV1-M",
            "DEV1-M", "DEV1-M"); /* the option wins over the setting */
    refused("", "--profile giant", "--profile: expected lite, standard, power or superpower", NULL);
    /* another cloud refuses them */
    int rc = tu_sh_out(scwt_out, SCWT_OUTCAP,
                       "'%s' sync --plex-dir '%s' --cloud local --instance-type GP1-S --runner "
                       "true 2>&1",
                       scwt_pb, scwt_home);
    print_message("%s", scwt_out);
    assert_int_not_equal(rc, 0);
    assert_non_null(
        strstr(scwt_out, "--instance-type and --profile choose the instance of --cloud scaleway"));
    scwt_assert_home_is_oracle();
}

/* The spend reaches PLEXBURST_MAX_COST while the runner works: a clean stop. */
static void test_cost_stop(void **state)
{
    (void)state;
    int rc;
    char env[256], runner[512];
    /* 0.002 h at DEV1-M's 0.02556 EUR/h: the guard lets it start, the spend reaches it at ~7 s */
    snprintf(env, sizeof(env), "PLEXBURST_MAX_HOURS=0.002 PLEXBURST_MAX_COST=%.8f",
             0.02556 * 0.002 * 1.02);
    /* the runner works for up to a minute (a build without the stop finishes, and fails below) */
    snprintf(runner, sizeof(runner),
             "analyze --dir {plex_dir} --seed 41 && i=0 && while [ \\$i -lt 600 ]; do sleep 0.1; "
             "i=\\$((i+1)); done"); /* \\$: the shell of scwt_run leaves it to the runner's */
    json_t *j = scwt_run("sync", runner, env, &rc);
    const char *e = json_str(j, "error", "message");
    print_message("exit %d: %s\n", rc, e ? e : scwt_out);
    assert_int_not_equal(rc, 0);
    assert_non_null(e);
    assert_non_null(strstr(e, "the spend reached PLEXBURST_MAX_COST"));
    assert_string_equal(json_str(j, "error", "name"), "cancelled");
    scwt_assert_nothing_left();
    scwt_assert_cost(j);
    double cost = json_number_value(json_object_get(json_object_get(j, "cloud"), "cost_eur"));
    assert_true(cost >= 0.02556 * 0.002 * 1.02);
    json_decref(j);
    scwt_assert_home_is_oracle();
}

/* A sync in the background whose runner touches `mark` then waits for `go`; killed with SIGKILL
 * once it works. Returns the server's id (static). */
static const char *killed_mid_run(const char *mark, const char *go, int seed)
{
    static char id[64];
    char runner[10000];
    snprintf(runner, sizeof(runner),
             "analyze --dir {plex_dir} --seed %d && touch '%s' && while [ ! -e '%s' ]; do sleep "
             "0.1; done",
             seed, mark, go);
    pid_t pid = scwt_start_sync(NULL, runner);
    assert_true(scwt_wait_for(NULL, mark));
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    json_t *s = scwt_ctl_call("/_control/state", NULL);
    json_t *srv = json_array_get(json_object_get(s, "servers"), 0);
    assert_int_equal(json_array_size(json_object_get(s, "servers")), 1);
    assert_string_equal(json_str(srv, "state", NULL), "running");
    snprintf(id, sizeof(id), "%s", json_str(srv, "id", NULL));
    json_decref(s);
    return id;
}

static void test_resume(void **state)
{
    (void)state;
    char mark[4300], go[4300];
    snprintf(mark, sizeof(mark), "%s/resume.mark", scwt_dir);
    snprintf(go, sizeof(go), "%s/resume.go", scwt_dir);
    scwt_faults("{}");
    /* still running: the next run re-attaches to it, no second server */
    json_int_t n0 = servers_created();
    const char *id = killed_mid_run(mark, go, 51);
    char server[64];
    snprintf(server, sizeof(server), "%s", id);
    assert_int_equal(tu_sh("touch '%s'", go), 0);
    json_t *j = scwt_sync_ok(52, NULL);
    assert_string_equal(json_str(j, "cloud", "server_id"), server);
    assert_int_equal(servers_created(), n0 + 1);
    scwt_assert_nothing_left();
    scwt_assert_cost(j);
    json_decref(j);
    scwt_assert_home_is_oracle();
    /* no longer running (powered off): destroyed, a new server for the run */
    unlink(mark);
    unlink(go);
    id = killed_mid_run(mark, go, 53);
    assert_int_equal(tu_sh("curl -fsS -X POST -H 'X-Auth-Token: " TOKEN "' -H 'Content-Type: "
                           "application/json' -d '{\"action\":\"poweroff\"}' "
                           "'%s/instance/v1/zones/fr-par-1/servers/%s/action' >/dev/null",
                           scwt_ctl, id),
                     0);
    assert_true(scwt_wait_for("stopped", NULL));
    assert_int_equal(tu_sh("touch '%s'", go), 0);
    j = scwt_sync_ok(54, NULL);
    assert_string_not_equal(json_str(j, "cloud", "server_id"), id);
    assert_int_equal(servers_created(), n0 + 3);
    scwt_assert_nothing_left();
    json_decref(j);
    scwt_assert_home_is_oracle();
}

/* Ctrl-C at each lifecycle step: the step's request held by the stand-in until after the
 * SIGINT; then nothing left, the home unchanged. */
static void test_ctrl_c_each_step(void **state)
{
    (void)state;
    static const char *const steps[] = {"list_servers", "availability", "products",   "create",
                                        "user_data",    "poweron",      "get_server", "terminate"};
    char bg[4300];
    snprintf(bg, sizeof(bg), "%s/bg.log", scwt_dir);
    for (size_t i = 0; i < sizeof(steps) / sizeof(*steps); i++) {
        char f[128];
        print_message("Ctrl-C at %s\n", steps[i]);
        snprintf(f, sizeof(f), "{\"hold\":\"%s\"}", steps[i]);
        scwt_faults(f);
        pid_t pid = scwt_start_sync(NULL, NULL);
        int held = 0;
        for (int k = 0; k < 1200 && !held; k++) {
            json_t *s = scwt_ctl_call("/_control/state", NULL);
            const char *h = json_str(s, "held", NULL);
            held = h && !strcmp(h, steps[i]);
            json_decref(s);
            if (!held)
                usleep(50000);
        }
        assert_true(held);
        kill(pid, SIGINT);
        json_decref(scwt_ctl_call("/_control", "{\"release\":true}"));
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        scwt_faults("{}");
        assert_true(WIFEXITED(st));
        if (strcmp(steps[i], "terminate") != 0)
            assert_int_not_equal(WEXITSTATUS(st), 0);
        else if (WEXITSTATUS(st) == 0) /* the run was over: the teardown ran to its end */
            assert_int_equal(scwt_mkplex("analyze", scwt_oracle, 98), 0);
        scwt_assert_nothing_left();
        scwt_assert_home_is_oracle();
    }
    /* while waiting for SSH (no API request there): the wait gives up at once */
    scwt_faults("{\"ssh_never\":1}");
    assert_int_equal(truncate(bg, 0), 0);
    pid_t pid = scwt_start_sync(NULL, NULL);
    assert_true(scwt_wait_text(bg, "Scaleway step 8/10"));
    kill(pid, SIGINT);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    scwt_faults("{}");
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    scwt_assert_nothing_left();
    scwt_assert_home_is_oracle();
}

/* A dropped link while the runner works: the run reconnects and ends synced, nothing left. */
static void test_dropped_link(void **state)
{
    (void)state;
    char mark[4300], go[4300], runner[10000];
    snprintf(mark, sizeof(mark), "%s/drop.mark", scwt_dir);
    snprintf(go, sizeof(go), "%s/drop.go", scwt_dir);
    snprintf(runner, sizeof(runner),
             "analyze --dir {plex_dir} --seed 61 && touch '%s' && while [ ! -e '%s' ]; do sleep "
             "0.1; done",
             mark, go);
    scwt_faults("{}");
    pid_t pid = scwt_start_sync(NULL, runner);
    assert_true(scwt_wait_for(NULL, mark));
    json_t *d = scwt_ctl_call("/_control", "{\"drop_links\":true}");
    print_message("dropped %lld SSH processes\n",
                  (long long)json_integer_value(json_object_get(d, "dropped")));
    assert_true(json_integer_value(json_object_get(d, "dropped")) > 0);
    json_decref(d);
    assert_int_equal(tu_sh("touch '%s'", go), 0);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    scwt_assert_nothing_left();
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        assert_int_equal(scwt_mkplex("analyze", scwt_oracle, 61), 0);
    else
        print_message("the run failed after the dropped link (exit %d)\n",
                      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    scwt_assert_home_is_oracle();
}

/* The API down from the middle of the run to after its end: the teardown cannot reach it, the
 * record stays; `cloud reap` with the API back removes it all. */
static void test_api_down(void **state)
{
    (void)state;
    char mark[4300], go[4300], runner[10000];
    snprintf(mark, sizeof(mark), "%s/down.mark", scwt_dir);
    snprintf(go, sizeof(go), "%s/down.go", scwt_dir);
    snprintf(runner, sizeof(runner),
             "analyze --dir {plex_dir} --seed 71 && touch '%s' && while [ ! -e '%s' ]; do sleep "
             "0.1; done",
             mark, go);
    scwt_faults("{}");
    pid_t pid = scwt_start_sync("PLEXBURST_SCW_API_TIMEOUT_S=2", runner);
    assert_true(scwt_wait_for(NULL, mark));
    scwt_faults("{\"down\":1}");
    assert_int_equal(tu_sh("touch '%s'", go), 0);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    scwt_faults("{}");
    print_message("exit %d after the API went down\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    json_t *s = scwt_ctl_call("/_control/state", NULL);
    assert_int_equal(json_array_size(json_object_get(s, "servers")), 1); /* left: reap's job */
    json_decref(s);
    int rc = tu_sh_out(scwt_out, SCWT_OUTCAP, "'%s' cloud reap --plex-dir '%s' 2>&1", scwt_pb,
                       scwt_home);
    print_message("%s", scwt_out);
    assert_int_equal(rc, 0);
    scwt_assert_nothing_left();
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        assert_int_equal(scwt_mkplex("analyze", scwt_oracle, 71), 0);
    scwt_assert_home_is_oracle();
}

int main(void)
{
    scwt_main_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_instance_choice), cmocka_unit_test(test_cost_stop),
        cmocka_unit_test(test_resume),          cmocka_unit_test(test_ctrl_c_each_step),
        cmocka_unit_test(test_dropped_link),    cmocka_unit_test(test_api_down),
    };
    int rc = cmocka_run_group_tests(tests, scwt_setup, scwt_teardown);
    free(scwt_out);
    return rc;
}

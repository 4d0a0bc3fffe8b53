/*
 * test_scaleway.c: the `scaleway` cloud end to end against the Scaleway API stand-in
 * (scripts/scaleway-test-server, replaying recorded real traffic; a real sshd per running server
 * on its own loopback address with the host key and authorized key of the user data):
 *   - bootstrap and a nightly `sync --cloud scaleway --runner '{mkplex} analyze ...'`: the home
 *     equals the oracle, nothing is left on the stand-in (servers, IPs, volumes), the reported
 *     cost equals the stand-in's billing within one second's price; with
 *     PLEXBURST_SCW_SELFDESTRUCT_APP the user data's timer holds a per-run IAM key at the cap,
 *     and the key is deleted after the run;
 *   - faults, each followed by "nothing left" and the home unchanged or fully synced: 429s with no
 *     Retry-After, a shortage and an out_of_stock zone, transient_state on terminate, an IP that
 *     appears late, the API down for a while mid-run (all still succeed); quota exceeded, SSH
 *     never coming up, the cost guard (all fail cleanly);
 *   - Ctrl-C with the server just created (stopped: deleted, not terminated), Ctrl-C while it
 *     boots, SIGTERM during the run: nothing left;
 *   - a home that died (SIGKILL) leaves a record: the next run's sweep removes it all; again,
 *     then `plexburst cloud status` shows its server, `cloud reap --dry-run` keeps it, `cloud
 *     reap` removes it all; `cloud prices` shows the live table.
 * Prerequisites: build/plexburst, build/mkplex, node, /usr/sbin/sshd (skipped, not passed,
 * without them), libcurl (the stand-in's control endpoint).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <jansson.h>

#include "scw_testutil.h"

/* ---- tests */

static void test_bootstrap_and_sync(void **state)
{
    (void)state;
    int rc;
    json_t *j = scwt_run("bootstrap", "init --dir {plex_dir} --scale tiny --seed 1", NULL, &rc);
    if (rc != 0)
        print_message("bootstrap exit %d: %.3000s\n", rc, scwt_out);
    assert_int_equal(rc, 0);
    scwt_assert_nothing_left();
    scwt_assert_cost(j);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "cloud"), "type")),
                        "DEV1-M");
    json_decref(j);
    scwt_assert_home_is_oracle();
    /* with a self-destruct application: a per-run API key in the user data, deleted after */
    j = scwt_sync_ok(7, "PLEXBURST_SCW_SELFDESTRUCT_APP=5e1f0000-0000-4000-8000-00000000a991 "
                        "PLEXBURST_MAX_HOURS=3");
    scwt_assert_nothing_left();
    scwt_assert_cost(j);
    json_t *s = scwt_ctl_call("/_control/state", NULL);
    const char *id = json_string_value(json_object_get(json_object_get(j, "cloud"), "server_id"));
    json_t *sd = json_object_get(json_object_get(s, "self_destruct"), id);
    assert_non_null(json_string_value(json_object_get(sd, "api_key")));
    assert_int_equal(json_integer_value(json_object_get(sd, "on_boot_min")), 180);
    assert_int_equal(json_integer_value(json_object_get(s, "api_keys_created")), 1);
    assert_int_equal(json_array_size(json_object_get(s, "api_keys")), 0);
    json_decref(s);
    json_decref(j);
    scwt_assert_home_is_oracle();
}

/* Faults the scwt_run survives: it succeeds, the scwt_home synced, nothing left. */
static void test_faults_survived(void **state)
{
    (void)state;
    static const struct {
        const char *faults, *zone;
        int seed;
    } cases[] = {
        {"{\"rate_limit\":6}", "fr-par-1", 11},
        {"{\"shortage\":\"fr-par-1\"}", "fr-par-2", 12},
        {"{\"out_of_stock\":\"fr-par-1\"}", "fr-par-2", 13},
        {"{\"transient_terminate\":2}", "fr-par-1", 14},
        {"{\"ip_late\":4}", "fr-par-1", 15},
        {"{\"api_down_after\":9,\"api_down_ms\":2500}", "fr-par-1", 16},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        print_message("fault %s\n", cases[i].faults);
        scwt_faults(cases[i].faults);
        json_t *j = scwt_sync_ok(cases[i].seed, NULL);
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "cloud"), "zone")),
                            cases[i].zone);
        scwt_faults("{}");
        scwt_assert_nothing_left();
        scwt_assert_cost(j);
        json_decref(j);
        scwt_assert_home_is_oracle();
    }
}

/* Faults the scwt_run fails on: a clean failure, the scwt_home unchanged, nothing left. */
static void test_faults_failed(void **state)
{
    (void)state;
    static const struct {
        const char *faults, *env, *expect;
    } cases[] = {
        {"{\"quota\":1}", "", "quota exceeded"},
        {"{\"ssh_never\":1}", "PLEXBURST_SCW_SSH_TIMEOUT_S=2", "no SSH"},
        {"{}", "PLEXBURST_MAX_COST=0.01 PLEXBURST_MAX_HOURS=12", "exceeds PLEXBURST_MAX_COST"},
        {"{}", "PLEXBURST_SCW_PROFILE=giant", "PLEXBURST_SCW_PROFILE"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        int rc;
        print_message("fault %s %s\n", cases[i].faults, cases[i].env);
        scwt_faults(cases[i].faults);
        json_t *j = scwt_run("sync", "analyze --dir {plex_dir} --seed 99", cases[i].env, &rc);
        scwt_faults("{}");
        assert_int_not_equal(rc, 0);
        const char *e = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        if (!e || !strstr(e, cases[i].expect))
            print_message("error: %s\n", e ? e : scwt_out);
        assert_non_null(e);
        assert_non_null(strstr(e, cases[i].expect));
        json_decref(j);
        scwt_assert_nothing_left();
        scwt_assert_home_is_oracle();
    }
}

static void test_signals(void **state)
{
    (void)state;
    char installed[4400];
    snprintf(installed, sizeof(installed), "%s/cloud/bin/plexburst", scwt_dir);
    static const struct {
        const char *faults, *state;
        int sig, file;
    } cases[] = {
        {"{\"slow_ms\":400}", "stopped", SIGINT, 0},  /* just created: deleted, not terminated */
        {"{\"slow_ms\":100}", "starting", SIGINT, 0}, /* booting */
        {"{}", NULL, SIGTERM, 1},                     /* the agent installed and working */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        print_message("signal %d at %s\n", cases[i].sig,
                      cases[i].state ? cases[i].state : "agent installed");
        tu_sh("rm -f '%s'", installed);
        scwt_faults(cases[i].faults);
        pid_t pid = scwt_start_sync(NULL, NULL);
        assert_true(scwt_wait_for(cases[i].state, cases[i].file ? installed : NULL));
        kill(pid, cases[i].sig);
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        scwt_faults("{}");
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) != 0);
        scwt_assert_nothing_left();
        scwt_assert_home_is_oracle();
    }
    /* a scwt_home that dies (SIGKILL) leaves its record: the next scwt_run sweeps it all */
    scwt_faults("{}");
    pid_t pid = scwt_start_sync(NULL, NULL);
    assert_true(scwt_wait_for("running", NULL));
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    json_t *s = scwt_ctl_call("/_control/state", NULL);
    assert_true(json_array_size(json_object_get(s, "servers")) == 1);
    json_decref(s);
    json_t *j = scwt_sync_ok(21, NULL);
    json_decref(j);
    scwt_assert_nothing_left();
    scwt_assert_home_is_oracle();
}

/* `plexburst cloud status|reap|prices` after a scwt_home died (SIGKILL) with its server running. */
static void test_cloud_commands(void **state)
{
    (void)state;
    scwt_faults("{}");
    pid_t pid = scwt_start_sync(NULL, NULL);
    assert_true(scwt_wait_for("running", NULL));
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    int rc = tu_sh_out(scwt_out, SCWT_OUTCAP, "'%s' cloud status 2>&1", scwt_pb);
    print_message("%s", scwt_out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(scwt_out, "1 server(s) tagged plexburst"));
    assert_non_null(strstr(scwt_out, "DEV1-M"));
    rc = tu_sh_out(scwt_out, SCWT_OUTCAP, "'%s' cloud reap --dry-run --plex-dir '%s' 2>&1", scwt_pb,
                   scwt_home);
    print_message("%s", scwt_out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(scwt_out, "would remove"));
    json_t *s = scwt_ctl_call("/_control/state", NULL);
    assert_int_equal(json_array_size(json_object_get(s, "servers")), 1);
    json_decref(s);
    rc = tu_sh_out(scwt_out, SCWT_OUTCAP, "'%s' cloud reap --plex-dir '%s' 2>&1", scwt_pb,
                   scwt_home);
    print_message("%s", scwt_out);
    assert_int_equal(rc, 0);
    scwt_assert_nothing_left();
    rc = tu_sh_out(scwt_out, SCWT_OUTCAP, "'%s' cloud prices --zone fr-par-2 2>&1", scwt_pb);
    print_message("%s", scwt_out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(scwt_out, "DEV1-S"));
    assert_non_null(strstr(scwt_out, "0.0137 EUR/h"));
    assert_non_null(strstr(scwt_out, "GP1-M"));
    /* the scwt_home is as before (the killed scwt_run never applied anything) */
    scwt_assert_home_is_oracle();
}

int main(void)
{
    scwt_main_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bootstrap_and_sync), cmocka_unit_test(test_faults_survived),
        cmocka_unit_test(test_faults_failed),      cmocka_unit_test(test_signals),
        cmocka_unit_test(test_cloud_commands),
    };
    int rc = cmocka_run_group_tests(tests, scwt_setup, scwt_teardown);
    free(scwt_out);
    return rc;
}

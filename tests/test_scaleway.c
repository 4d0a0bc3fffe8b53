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
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>

#include "plexburst/plex.h"
#include "plexburst/sqldiff.h"
#include "testutil.h"

static char pb[4096], mk[4096], dir[4096], work[4200], home[4200], oracle[4200], ctl[256];
static char *outbuf;
#define OUTCAP (4 << 20)

/* ---- the stand-in's control endpoint */

static size_t on_body(char *p, size_t size, size_t n, void *payload)
{
    tu_buf_add(payload, p, size * n);
    return size * n;
}

static json_t *ctl_call(const char *path, const char *post)
{
    char url[512];
    tu_buf b = {0};
    snprintf(url, sizeof(url), "%s%s", ctl, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (post)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    assert_int_equal(rc, CURLE_OK);
    json_error_t je;
    json_t *j = json_loadb(b.p ? b.p : "", b.n, 0, &je);
    free(b.p);
    assert_non_null(j);
    return j;
}

static void faults(const char *json)
{
    char body[512];
    snprintf(body, sizeof(body), "{\"reset\":true,\"faults\":%s}", json);
    json_decref(ctl_call("/_control", body));
}

/* Nothing of any run is left on the stand-in: no server, no IP, no volume. */
static void assert_nothing_left(void)
{
    json_t *s = ctl_call("/_control/state", NULL);
    size_t ns = json_array_size(json_object_get(s, "servers")),
           ni = json_array_size(json_object_get(s, "ips")),
           nv = json_array_size(json_object_get(s, "volumes"));
    if (ns + ni + nv)
        print_message("left: %zu servers, %zu IPs, %zu volumes\n", ns, ni, nv);
    assert_int_equal(ns + ni + nv, 0);
    json_decref(s);
}

/* ---- runs */

static int mkplex(const char *cmd, const char *d, int seed)
{
    return tu_sh("'%s' %s --dir '%s' --seed %d >/dev/null", mk, cmd, d, seed);
}

/* `plexburst <mode> ... --cloud scaleway` with `env` before it; its JSON (caller decrefs). */
static json_t *run(const char *mode, const char *runner, const char *env, int *rc)
{
    char cmd[32768];
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && %s '%s' %s --plex-dir '%s' --cloud scaleway --store '%s/store' --runner "
             "\"'%s' %s\" --json 2>>'%s/stderr.log'",
             dir, env ? env : "", pb, mode, home, dir, mk, runner, dir);
    *rc = tu_sh_out(outbuf, OUTCAP, "%s", cmd);
    json_error_t je;
    return json_loads(outbuf, 0, &je);
}

static json_t *sync_ok(int seed, const char *env)
{
    char runner[128];
    int rc;
    snprintf(runner, sizeof(runner), "analyze --dir {plex_dir} --seed %d", seed);
    json_t *j = run("sync", runner, env, &rc);
    if (rc != 0)
        print_message("sync exit %d: %.3000s\n", rc, outbuf);
    assert_int_equal(rc, 0);
    assert_non_null(j);
    assert_int_equal(mkplex("analyze", oracle, seed), 0);
    return j;
}

typedef struct sums {
    size_t n;
    char name[256][112];
    uint8_t sum[256][16];
} sums;

static int on_sum(const pb_table_checksum *t, void *payload)
{
    sums *s = payload;
    if (s->n < 256) {
        snprintf(s->name[s->n], sizeof(s->name[0]), "%s", t->table);
        memcpy(s->sum[s->n], t->sum, 16);
        s->n++;
    }
    return 0;
}

static int db_diff(const char *a, const char *b)
{
    sums *sa = calloc(1, sizeof(*sa)), *sb = calloc(1, sizeof(*sb));
    pb_diff_options o = PB_DIFF_OPTIONS_INIT;
    pb_checksum ca, cb;
    pb_error err = PB_ERROR_INIT;
    o.table_checksum = on_sum;
    o.table_payload = sa;
    assert_int_equal(pb_sqldiff_checksum(&ca, a, &o, &err), 0);
    o.table_payload = sb;
    assert_int_equal(pb_sqldiff_checksum(&cb, b, &o, &err), 0);
    int bad = sa->n != sb->n;
    for (size_t i = 0; i < sa->n && i < sb->n; i++)
        if (strcmp(sa->name[i], sb->name[i]) || memcmp(sa->sum[i], sb->sum[i], 16)) {
            print_message("   table %s differs\n", sa->name[i]);
            bad++;
        }
    free(sa);
    free(sb);
    return bad;
}

static void assert_home_is_oracle(void)
{
    char a[4300], b[4300];
    snprintf(a, sizeof(a), "%s/" PB_PLEX_DB_REL, home);
    snprintf(b, sizeof(b), "%s/" PB_PLEX_DB_REL, oracle);
    int bad = db_diff(a, b);
    snprintf(a, sizeof(a), "%s/" PB_PLEX_BLOBS_REL, home);
    snprintf(b, sizeof(b), "%s/" PB_PLEX_BLOBS_REL, oracle);
    bad += db_diff(a, b);
    bad += tu_sh("diff -r --no-dereference '%s/Metadata' '%s/Metadata' >&2 && diff -r "
                 "--no-dereference '%s/Media' '%s/Media' >&2",
                 home, oracle, home, oracle) != 0;
    assert_int_equal(bad, 0);
}

/* The run's reported cost equals the stand-in's billing of its server within a second's price. */
static void assert_cost(json_t *j)
{
    json_t *cl = json_object_get(j, "cloud");
    assert_string_equal(json_string_value(json_object_get(cl, "provider")), "scaleway");
    const char *id = json_string_value(json_object_get(cl, "server_id"));
    assert_non_null(id);
    json_t *s = ctl_call("/_control/state", NULL);
    json_t *bill = json_object_get(json_object_get(s, "billing"), id);
    assert_non_null(bill);
    double hourly = json_number_value(json_object_get(bill, "hourly_price"));
    double billed = json_number_value(json_object_get(bill, "cost_eur"));
    double reported = json_number_value(json_object_get(cl, "cost_eur"));
    print_message("cost: reported %.8f EUR (%.2f s), billed %.8f EUR (%.2f s), one second %.8f\n",
                  reported, json_number_value(json_object_get(cl, "seconds")), billed,
                  json_number_value(json_object_get(bill, "seconds")), hourly / 3600);
    assert_true(hourly > 0 && billed > 0);
    assert_true(reported - billed <= hourly / 3600 && billed - reported <= hourly / 3600);
    assert_true(json_number_value(json_object_get(cl, "hourly_price_eur")) == hourly);
    json_decref(s);
}

/* ---- set-up */

static char env_line[2048];

static int setup(void **state)
{
    (void)state;
    char port[64];
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("scw"));
    snprintf(work, sizeof(work), "%s/standin", dir);
    snprintf(home, sizeof(home), "%s/home", dir);
    snprintf(oracle, sizeof(oracle), "%s/oracle", dir);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    int ssh_port = 20000 + rand() % 40000;
    int rc = tu_sh_out(port, sizeof(port),
                       "SCW_TEST_SSH_PORT=%d SCW_TEST_BOOT_MS=300 '%s' start '%s' %ld", ssh_port,
                       tu_source_path("scripts/scaleway-test-server"), work, (long)getpid());
    if (rc != 0) {
        tu_sh("rm -rf '%s'", dir);
        tu_skip("the Scaleway stand-in does not start here (node?)");
    }
    snprintf(ctl, sizeof(ctl), "http://127.0.0.1:%d", atoi(port));
    setenv("SCW_API_URL", ctl, 1);
    setenv("SCW_SECRET_KEY", "11111111-2222-3333-4444-555555555555", 1);
    setenv("SCW_DEFAULT_PROJECT_ID", "0b3f4ad0-0000-4000-8000-00000000beef", 1);
    setenv("SCW_CONFIG_PATH", "/nonexistent/scw-config.yaml", 1);
    unsetenv("SCW_DEFAULT_ZONE");
    unsetenv("SCW_PROFILE");
    snprintf(port, sizeof(port), "%d", ssh_port);
    setenv("PLEXBURST_SCW_SSH_PORT", port, 1);
    setenv("PLEXBURST_SCW_POLL_MS", "150", 1);
    setenv("PLEXBURST_SCW_BACKOFF_MAX_MS", "300", 1);
    setenv("PLEXBURST_SCW_API_TIMEOUT_S", "30", 1);
    setenv("PLEXBURST_SCW_SSH_TIMEOUT_S", "30", 1);
    setenv("PLEXBURST_SCW_BOOT_TIMEOUT_S", "60", 1);
    char cd[4300];
    snprintf(cd, sizeof(cd), "%s/cloud", dir);
    setenv("PLEXBURST_CLOUD_DIR", cd, 1);
    env_line[0] = '\0';
    assert_int_equal(mkplex("init --scale tiny", home, 1), 0);
    assert_int_equal(mkplex("init --scale tiny", oracle, 1), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_sh("'%s' stop '%s'", tu_source_path("scripts/scaleway-test-server"), work);
    tu_sh("rm -rf '%s'", dir);
    return 0;
}

/* ---- tests */

static void test_bootstrap_and_sync(void **state)
{
    (void)state;
    int rc;
    json_t *j = run("bootstrap", "init --dir {plex_dir} --scale tiny --seed 1", NULL, &rc);
    if (rc != 0)
        print_message("bootstrap exit %d: %.3000s\n", rc, outbuf);
    assert_int_equal(rc, 0);
    assert_nothing_left();
    assert_cost(j);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "cloud"), "type")),
                        "DEV1-M");
    json_decref(j);
    assert_home_is_oracle();
    /* with a self-destruct application: a per-run API key in the user data, deleted after */
    j = sync_ok(7, "PLEXBURST_SCW_SELFDESTRUCT_APP=5e1f0000-0000-4000-8000-00000000a991 "
                   "PLEXBURST_MAX_HOURS=3");
    assert_nothing_left();
    assert_cost(j);
    json_t *s = ctl_call("/_control/state", NULL);
    const char *id = json_string_value(json_object_get(json_object_get(j, "cloud"), "server_id"));
    json_t *sd = json_object_get(json_object_get(s, "self_destruct"), id);
    assert_non_null(json_string_value(json_object_get(sd, "api_key")));
    assert_int_equal(json_integer_value(json_object_get(sd, "on_boot_min")), 180);
    assert_int_equal(json_integer_value(json_object_get(s, "api_keys_created")), 1);
    assert_int_equal(json_array_size(json_object_get(s, "api_keys")), 0);
    json_decref(s);
    json_decref(j);
    assert_home_is_oracle();
}

/* Faults the run survives: it succeeds, the home synced, nothing left. */
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
        faults(cases[i].faults);
        json_t *j = sync_ok(cases[i].seed, NULL);
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "cloud"), "zone")),
                            cases[i].zone);
        faults("{}");
        assert_nothing_left();
        assert_cost(j);
        json_decref(j);
        assert_home_is_oracle();
    }
}

/* Faults the run fails on: a clean failure, the home unchanged, nothing left. */
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
        faults(cases[i].faults);
        json_t *j = run("sync", "analyze --dir {plex_dir} --seed 99", cases[i].env, &rc);
        faults("{}");
        assert_int_not_equal(rc, 0);
        const char *e = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        if (!e || !strstr(e, cases[i].expect))
            print_message("error: %s\n", e ? e : outbuf);
        assert_non_null(e);
        assert_non_null(strstr(e, cases[i].expect));
        json_decref(j);
        assert_nothing_left();
        assert_home_is_oracle();
    }
}

/* Starts a sync in the background; returns its pid. */
static pid_t start_sync(const char *env)
{
    char cmd[32768];
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && exec env %s '%s' sync --plex-dir '%s' --cloud scaleway --store "
             "'%s/store' --runner \"'%s' analyze --dir {plex_dir} --seed 98\" >>'%s/bg.log' "
             "2>&1",
             dir, env ? env : "", pb, home, dir, mk, dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Waits (up to 60 s) until a server of the stand-in is in `st`, or `file` exists. */
static int wait_for(const char *st, const char *file)
{
    for (int i = 0; i < 1200; i++) {
        if (file && access(file, F_OK) == 0)
            return 1;
        if (st) {
            json_t *s = ctl_call("/_control/state", NULL);
            json_t *srv = json_array_get(json_object_get(s, "servers"), 0);
            int hit = srv && !strcmp(json_string_value(json_object_get(srv, "state")), st);
            json_decref(s);
            if (hit)
                return 1;
        }
        usleep(50000);
    }
    return 0;
}

static void test_signals(void **state)
{
    (void)state;
    char installed[4400];
    snprintf(installed, sizeof(installed), "%s/cloud/bin/plexburst", dir);
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
        faults(cases[i].faults);
        pid_t pid = start_sync(NULL);
        assert_true(wait_for(cases[i].state, cases[i].file ? installed : NULL));
        kill(pid, cases[i].sig);
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        faults("{}");
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) != 0);
        assert_nothing_left();
        assert_home_is_oracle();
    }
    /* a home that dies (SIGKILL) leaves its record: the next run sweeps it all */
    faults("{}");
    pid_t pid = start_sync(NULL);
    assert_true(wait_for("running", NULL));
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    json_t *s = ctl_call("/_control/state", NULL);
    assert_true(json_array_size(json_object_get(s, "servers")) == 1);
    json_decref(s);
    json_t *j = sync_ok(21, NULL);
    json_decref(j);
    assert_nothing_left();
    assert_home_is_oracle();
}

/* `plexburst cloud status|reap|prices` after a home died (SIGKILL) with its server running. */
static void test_cloud_commands(void **state)
{
    (void)state;
    faults("{}");
    pid_t pid = start_sync(NULL);
    assert_true(wait_for("running", NULL));
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    int rc = tu_sh_out(outbuf, OUTCAP, "'%s' cloud status 2>&1", pb);
    print_message("%s", outbuf);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(outbuf, "1 server(s) tagged plexburst"));
    assert_non_null(strstr(outbuf, "DEV1-M"));
    rc = tu_sh_out(outbuf, OUTCAP, "'%s' cloud reap --dry-run --plex-dir '%s' 2>&1", pb, home);
    print_message("%s", outbuf);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(outbuf, "would remove"));
    json_t *s = ctl_call("/_control/state", NULL);
    assert_int_equal(json_array_size(json_object_get(s, "servers")), 1);
    json_decref(s);
    rc = tu_sh_out(outbuf, OUTCAP, "'%s' cloud reap --plex-dir '%s' 2>&1", pb, home);
    print_message("%s", outbuf);
    assert_int_equal(rc, 0);
    assert_nothing_left();
    rc = tu_sh_out(outbuf, OUTCAP, "'%s' cloud prices --zone fr-par-2 2>&1", pb);
    print_message("%s", outbuf);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(outbuf, "DEV1-S"));
    assert_non_null(strstr(outbuf, "0.0137 EUR/h"));
    assert_non_null(strstr(outbuf, "GP1-M"));
    /* the home is as before (the killed run never applied anything) */
    assert_home_is_oracle();
}

int main(void)
{
    snprintf(pb, sizeof(pb), "%s", tu_build_path("plexburst"));
    snprintf(mk, sizeof(mk), "%s", tu_build_path("mkplex"));
    if (access(pb, X_OK) != 0 || access(mk, X_OK) != 0)
        tu_skip("needs build/plexburst and build/mkplex");
    if (access("/usr/sbin/sshd", X_OK) != 0)
        tu_skip("needs /usr/sbin/sshd (openssh-server) for the stand-in's servers");
    if (tu_sh("node -e 'process.exit(0)' >/dev/null 2>&1") != 0)
        tu_skip("needs node for the Scaleway API stand-in");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    outbuf = malloc(OUTCAP);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bootstrap_and_sync), cmocka_unit_test(test_faults_survived),
        cmocka_unit_test(test_faults_failed),      cmocka_unit_test(test_signals),
        cmocka_unit_test(test_cloud_commands),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    free(outbuf);
    return rc;
}

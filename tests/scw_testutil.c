/*
 * scw_testutil.c: what the scaleway cloud's end-to-end tests share (scw_testutil.h): the
 * Scaleway API stand-in (scripts/scaleway-test-server) started per test program with a home and
 * an oracle data dir, its control endpoint, `plexburst sync|bootstrap --cloud scaleway` runs, and
 * the checks: nothing left on the stand-in, the home equal to the oracle, the reported cost equal
 * to the stand-in's billing.
 * Prerequisites: build/plexburst, build/mkplex, node, /usr/sbin/sshd, libcurl.
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
#include "scw_testutil.h"

char scwt_pb[4096], scwt_mk[4096], scwt_dir[4096], scwt_work[4200], scwt_home[4200],
    scwt_oracle[4200], scwt_ctl[256];
char *scwt_out;

/* ---- the stand-in's control endpoint */

static size_t on_body(char *p, size_t size, size_t n, void *payload)
{
    tu_buf_add(payload, p, size * n);
    return size * n;
}

json_t *scwt_ctl_call(const char *path, const char *post)
{
    char url[512];
    tu_buf b = {0};
    snprintf(url, sizeof(url), "%s%s", scwt_ctl, path);
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

void scwt_faults(const char *json)
{
    char body[512];
    snprintf(body, sizeof(body), "{\"reset\":true,\"faults\":%s}", json);
    json_decref(scwt_ctl_call("/_control", body));
}

/* Nothing of any run is left on the stand-in: no server, no IP, no volume. */
void scwt_assert_nothing_left(void)
{
    json_t *s = scwt_ctl_call("/_control/state", NULL);
    size_t ns = json_array_size(json_object_get(s, "servers")),
           ni = json_array_size(json_object_get(s, "ips")),
           nv = json_array_size(json_object_get(s, "volumes"));
    if (ns + ni + nv)
        print_message("left: %zu servers, %zu IPs, %zu volumes\n", ns, ni, nv);
    assert_int_equal(ns + ni + nv, 0);
    json_decref(s);
}

/* ---- runs */

int scwt_mkplex(const char *cmd, const char *d, int seed)
{
    return tu_sh("'%s' %s --dir '%s' --seed %d >/dev/null", scwt_mk, cmd, d, seed);
}

/* `plexburst <mode> ... --cloud scaleway` with `env` before it; its JSON (caller decrefs). */
json_t *scwt_run(const char *mode, const char *runner, const char *env, int *rc)
{
    char cmd[32768];
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && %s '%s' %s --plex-dir '%s' --cloud scaleway --store '%s/store' --runner "
             "\"'%s' %s\" --json 2>>'%s/stderr.log'",
             scwt_dir, env ? env : "", scwt_pb, mode, scwt_home, scwt_dir, scwt_mk, runner,
             scwt_dir);
    *rc = tu_sh_out(scwt_out, SCWT_OUTCAP, "%s", cmd);
    json_error_t je;
    return json_loads(scwt_out, 0, &je);
}

json_t *scwt_sync_ok(int seed, const char *env)
{
    char runner[128];
    int rc;
    snprintf(runner, sizeof(runner), "analyze --dir {plex_dir} --seed %d", seed);
    json_t *j = scwt_run("sync", runner, env, &rc);
    if (rc != 0)
        print_message("sync exit %d: %.3000s\n", rc, scwt_out);
    assert_int_equal(rc, 0);
    assert_non_null(j);
    assert_int_equal(scwt_mkplex("analyze", scwt_oracle, seed), 0);
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

void scwt_assert_home_is_oracle(void)
{
    char a[4300], b[4300];
    snprintf(a, sizeof(a), "%s/" PB_PLEX_DB_REL, scwt_home);
    snprintf(b, sizeof(b), "%s/" PB_PLEX_DB_REL, scwt_oracle);
    int bad = db_diff(a, b);
    snprintf(a, sizeof(a), "%s/" PB_PLEX_BLOBS_REL, scwt_home);
    snprintf(b, sizeof(b), "%s/" PB_PLEX_BLOBS_REL, scwt_oracle);
    bad += db_diff(a, b);
    bad += tu_sh("diff -r --no-dereference '%s/Metadata' '%s/Metadata' >&2 && diff -r "
                 "--no-dereference '%s/Media' '%s/Media' >&2",
                 scwt_home, scwt_oracle, scwt_home, scwt_oracle) != 0;
    assert_int_equal(bad, 0);
}

/* The scwt_run's reported cost equals the stand-in's billing of its server within a second's price.
 */
void scwt_assert_cost(json_t *j)
{
    json_t *cl = json_object_get(j, "cloud");
    assert_string_equal(json_string_value(json_object_get(cl, "provider")), "scaleway");
    const char *id = json_string_value(json_object_get(cl, "server_id"));
    assert_non_null(id);
    json_t *s = scwt_ctl_call("/_control/state", NULL);
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

int scwt_setup(void **state)
{
    (void)state;
    char port[64];
    snprintf(scwt_dir, sizeof(scwt_dir), "%s", tu_tmpdir("scw"));
    snprintf(scwt_work, sizeof(scwt_work), "%s/standin", scwt_dir);
    snprintf(scwt_home, sizeof(scwt_home), "%s/home", scwt_dir);
    snprintf(scwt_oracle, sizeof(scwt_oracle), "%s/oracle", scwt_dir);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    int ssh_port = 20000 + rand() % 40000;
    int rc = tu_sh_out(port, sizeof(port),
                       "SCW_TEST_SSH_PORT=%d SCW_TEST_BOOT_MS=300 '%s' start '%s' %ld", ssh_port,
                       tu_source_path("scripts/scaleway-test-server"), scwt_work, (long)getpid());
    if (rc != 0) {
        tu_sh("rm -rf '%s'", scwt_dir);
        tu_skip("the Scaleway stand-in does not start here (node?)");
    }
    snprintf(scwt_ctl, sizeof(scwt_ctl), "http://127.0.0.1:%d", atoi(port));
    setenv("SCW_API_URL", scwt_ctl, 1);
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
    snprintf(cd, sizeof(cd), "%s/cloud", scwt_dir);
    setenv("PLEXBURST_CLOUD_DIR", cd, 1);
    assert_int_equal(scwt_mkplex("init --scale tiny", scwt_home, 1), 0);
    assert_int_equal(scwt_mkplex("init --scale tiny", scwt_oracle, 1), 0);
    return 0;
}

int scwt_teardown(void **state)
{
    (void)state;
    tu_sh("'%s' stop '%s'", tu_source_path("scripts/scaleway-test-server"), scwt_work);
    tu_sh("rm -rf '%s'", scwt_dir);
    return 0;
}

/* Starts a sync in the background (the runner `mkplex <runner>`); returns its pid. */
pid_t scwt_start_sync(const char *env, const char *runner)
{
    char cmd[32768];
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && exec env %s '%s' sync --plex-dir '%s' --cloud scaleway --store "
             "'%s/store' --runner \"'%s' %s\" >>'%s/bg.log' 2>&1",
             scwt_dir, env ? env : "", scwt_pb, scwt_home, scwt_dir, scwt_mk,
             runner ? runner : "analyze --dir {plex_dir} --seed 98", scwt_dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Waits (up to 60 s) until a server of the stand-in is in `st`, or `file` exists. */
int scwt_wait_for(const char *st, const char *file)
{
    for (int i = 0; i < 1200; i++) {
        if (file && access(file, F_OK) == 0)
            return 1;
        if (st) {
            json_t *s = scwt_ctl_call("/_control/state", NULL);
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

void scwt_main_init(void)
{
    snprintf(scwt_pb, sizeof(scwt_pb), "%s", tu_build_path("plexburst"));
    snprintf(scwt_mk, sizeof(scwt_mk), "%s", tu_build_path("mkplex"));
    if (access(scwt_pb, X_OK) != 0 || access(scwt_mk, X_OK) != 0)
        tu_skip("needs build/plexburst and build/mkplex");
    if (access("/usr/sbin/sshd", X_OK) != 0)
        tu_skip("needs /usr/sbin/sshd (openssh-server) for the stand-in's servers");
    if (tu_sh("node -e 'process.exit(0)' >/dev/null 2>&1") != 0)
        tu_skip("needs node for the Scaleway API stand-in");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    scwt_out = malloc(SCWT_OUTCAP);
    assert_non_null(scwt_out);
}

int scwt_wait_text(const char *file, const char *text)
{
    for (int i = 0; i < 1200; i++) {
        FILE *f = fopen(file, "r");
        char line[4096];
        int hit = 0;
        while (f && !hit && fgets(line, sizeof(line), f))
            hit = strstr(line, text) != NULL;
        if (f)
            fclose(f);
        if (hit)
            return 1;
        usleep(50000);
    }
    return 0;
}

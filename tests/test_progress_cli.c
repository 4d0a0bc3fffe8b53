/*
 * test_progress_cli.c: how a run shows itself and tells others, through the real `plexburst`
 * binary and the local cloud (mkplex as the runner):
 *   - the one byte formatter (pb_units_bytes) and the masked notification URL (pb_notify_mask);
 *   - --quiet prints one line; --json-stream prints only JSON events, one per line (start,
 *     phase_start/phase_end, progress, log, a heartbeat during ANALYSIS, the summary last);
 *   - PLEXBURST_NOTIFY_URL pings a local HTTP server (tests/notify_server.py): URL/start and URL
 *     on success, URL/fail with the POST-MORTEM's first lines on failure; a URL that fails is one
 *     warning and the run still succeeds; the URL's token never shows; --on-success and
 *     --on-failure get the run's JSON on stdin;
 *   - --dry-run says up front that the cloud analysis runs and nothing changes at home;
 *   - a run that finds the lock held exits 5 naming the holder's pid and command; a Ctrl-C'd
 *     run's POST-MORTEM does not send the user to the runner; the next run, which rolls the
 *     stopped one back, does not end "finished (rolled_back)";
 *   - the demo's transfer table lines up although its arrows are three bytes long.
 * Prerequisites: build/plexburst, build/mkplex, python3 (skipped, not passed, when missing).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>

#include "plexburst/notify.h"
#include "plexburst/units.h"
#include "testutil.h"

static char pb[4096], mk[4096], dir[4096], home[4200], srv_pid[32], url_base[128];
static char *out;
#define OUTCAP (4 << 20)

static void test_units(void **state)
{
    (void)state;
    char b[PB_UNITS_BYTES_MAX];
    assert_string_equal(pb_units_bytes(b, sizeof(b), 0), "0 B");
    assert_string_equal(pb_units_bytes(b, sizeof(b), 1023), "1023 B");
    assert_string_equal(pb_units_bytes(b, sizeof(b), 1024), "1.0 KiB");
    assert_string_equal(pb_units_bytes(b, sizeof(b), 1536 * 1024), "1.5 MiB");
    assert_string_equal(pb_units_bytes(b, sizeof(b), 1048575), "1.0 MiB");
    assert_string_equal(pb_units_bytes(b, sizeof(b), 5ull << 40), "5.0 TiB");
    assert_string_equal(pb_units_bytes(b, sizeof(b), UINT64_MAX), "16.0 EiB");
    char m[128];
    assert_string_equal(pb_notify_mask(m, sizeof(m), "https://u:pw@hc-ping.com/0f1e-uuid?x=1"),
                        "https://***@hc-ping.com/***");
    assert_string_equal(pb_notify_mask(m, sizeof(m), "http://127.0.0.1:8080/ping/SECRET"),
                        "http://127.0.0.1:8080/***");
    assert_string_equal(pb_notify_mask(m, sizeof(m), "ntfy+https://ntfy.sh/mytopic"),
                        "ntfy+https://ntfy.sh/***");
    assert_string_equal(pb_notify_mask(m, sizeof(m), "https://hc-ping.com"), "https://hc-ping.com");
    assert_string_equal(pb_notify_mask(m, sizeof(m), "not a url SECRET"), "***");
    /* a ping nobody answers is an error for the caller to warn about, with the URL masked */
    pb_error e = PB_ERROR_INIT;
    assert_int_equal(
        pb_notify_send("http://127.0.0.1:1/SECRET", PB_NOTIFY_SUCCESS, "t", "b", 5, &e), PB_ENET);
    assert_null(strstr(e.msg, "SECRET"));
    pb_error e2 = PB_ERROR_INIT;
    assert_int_equal(pb_notify_send("ftp://h/SECRET", PB_NOTIFY_SUCCESS, "t", "b", 5, &e2),
                     PB_EINVALID);
    assert_null(strstr(e2.msg, "SECRET"));
}

/* The requests the server recorded (one JSON object per line), then cleared. */
static json_t *requests(void)
{
    json_t *a = json_array();
    char path[4200], line[8192];
    snprintf(path, sizeof(path), "%s/requests.log", dir);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof(line), f)) {
        json_t *o = json_loads(line, 0, NULL);
        if (o)
            json_array_append_new(a, o);
    }
    if (f)
        fclose(f);
    unlink(path);
    return a;
}

static const char *req(json_t *a, size_t i, const char *key)
{
    return json_string_value(json_object_get(json_array_get(a, i), key));
}

static int sync_cmd(const char *env, const char *opts, const char *runner)
{
    return tu_sh_out(out, OUTCAP,
                     "cd '%s' && env %s '%s' sync --plex-dir '%s' --runner \"%s\" %s 2>err.txt",
                     dir, env, pb, home, runner, opts);
}

static void start_server(void)
{
    char port[32] = "";
    const char *py = tu_source_path("tests/notify_server.py");
    assert_int_equal(tu_sh("cd '%s' && (python3 '%s' requests.log port.txt >/dev/null 2>&1 & echo "
                           "$! >srv.pid)",
                           dir, py),
                     0);
    for (int i = 0; i < 200 && tu_sh("test -s '%s/port.txt'", dir) != 0; i++)
        usleep(50000);
    tu_sh_out(port, sizeof(port), "cat '%s/port.txt'", dir);
    tu_sh_out(srv_pid, sizeof(srv_pid), "cat '%s/srv.pid'", dir);
    assert_true(atoi(port) > 0);
    snprintf(url_base, sizeof(url_base), "http://127.0.0.1:%d", atoi(port));
}

static void test_output_and_notify(void **state)
{
    (void)state;
    char analyze[4400], env[512];
    snprintf(analyze, sizeof(analyze), "'%s' analyze --dir {plex_dir} --seed 2", mk);

    /* --quiet: one line, the result */
    assert_int_equal(tu_sh_out(out, OUTCAP,
                               "cd '%s' && '%s' bootstrap --plex-dir '%s' --runner \"'%s' init "
                               "--dir {plex_dir} --scale tiny --seed 1\" --quiet 2>err.txt",
                               dir, pb, home, mk),
                     0);
    assert_true(!strncmp(out, "✅ bootstrap ", strlen("✅ bootstrap ")));
    assert_non_null(strstr(out, " ok in "));
    assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);

    /* --json-stream with a heartbeat during ANALYSIS, the ping and the success hook */
    start_server();
    snprintf(env, sizeof(env), "PLEXBURST_HEARTBEAT_S=0.5 PLEXBURST_NOTIFY_URL=%s/ping/SECRET-1",
             url_base);
    char runner[4600];
    snprintf(runner, sizeof(runner), "sleep 2; %s", analyze);
    assert_int_equal(sync_cmd(env, "--json-stream --on-success 'cat >hook.json'", runner), 0);
    int starts = 0, ends = 0, beats = 0, progress = 0, logs = 0, summary = 0, lines = 0;
    int build_bar = 0;
    for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n"), lines++) {
        json_t *o = json_loads(l, 0, NULL);
        if (!o)
            print_message("not JSON: %s\n", l);
        assert_non_null(o);
        const char *t = json_string_value(json_object_get(o, "type"));
        assert_non_null(t);
        assert_non_null(json_string_value(json_object_get(o, "time")));
        assert_int_equal(summary, 0); /* the summary is the last event */
        starts += !strcmp(t, "phase_start");
        ends += !strcmp(t, "phase_end");
        progress += !strcmp(t, "progress");
        if (!strcmp(t, "progress") &&
            !strcmp(json_string_value(json_object_get(o, "what")), "cloud build"))
            build_bar++;
        logs += !strcmp(t, "log");
        if (!strcmp(t, "heartbeat") &&
            !strcmp(json_string_value(json_object_get(o, "name")), "ANALYSIS"))
            beats++;
        if (!strcmp(t, "summary")) {
            summary = 1;
            assert_true(json_is_true(json_object_get(o, "ok")));
        }
        json_decref(o);
    }
    print_message("json-stream: %d lines, %d phases, %d heartbeats, %d progress, %d log\n", lines,
                  starts, beats, progress, logs);
    assert_int_equal(starts, 9);
    assert_int_equal(ends, 9);
    assert_true(beats >= 1);
    assert_true(progress >= 1);
    assert_true(build_bar >= 1); /* the EXPORT's bundle build has its bar */
    assert_true(logs >= 5);
    assert_int_equal(summary, 1);
    /* every transfer's last word in the log is its average rate, never "0 B/s ETA --" */
    assert_int_equal(tu_sh("grep -rq 'ETA --' '%s.plexburst/logs'", home), 1);
    assert_int_equal(
        tu_sh("grep -rqE '✅ download: .*(on average|at once)' '%s.plexburst/logs'", home), 0);
    json_t *rq = requests();
    assert_int_equal(json_array_size(rq), 2);
    assert_string_equal(req(rq, 0, "path"), "/ping/SECRET-1/start");
    assert_string_equal(req(rq, 1, "path"), "/ping/SECRET-1");
    assert_string_equal(req(rq, 1, "method"), "POST");
    assert_string_equal(req(rq, 1, "title"), "plexburst sync ok");
    json_decref(rq);
    char hookp[4200];
    snprintf(hookp, sizeof(hookp), "%s/hook.json", dir);
    json_t *h = json_load_file(hookp, 0, NULL);
    assert_non_null(h);
    assert_true(json_is_true(json_object_get(h, "ok")));
    json_decref(h);

    /* a failing runner: URL/fail with the POST-MORTEM's first lines; the failure hook */
    snprintf(env, sizeof(env), "PLEXBURST_NOTIFY_URL=%s/ping/SECRET-2", url_base);
    assert_int_equal(sync_cmd(env, "--on-failure 'cat >fail.json'", "echo boom >&2; exit 3"), 1);
    assert_null(strstr(out, "SECRET"));
    rq = requests();
    assert_int_equal(json_array_size(rq), 2);
    assert_string_equal(req(rq, 1, "path"), "/ping/SECRET-2/fail");
    assert_non_null(strstr(req(rq, 1, "body"), "phase 5 (ANALYSIS) failed"));
    assert_null(strstr(req(rq, 1, "body"), "════"));
    json_decref(rq);
    snprintf(hookp, sizeof(hookp), "%s/fail.json", dir);
    h = json_load_file(hookp, 0, NULL);
    assert_non_null(h);
    assert_true(json_is_false(json_object_get(h, "ok")));
    json_decref(h);

    /* a notification that fails: one warning, the run's outcome stands; the token never shows */
    snprintf(env, sizeof(env), "PLEXBURST_NOTIFY_URL=%s/broken/SECRET-3", url_base);
    assert_int_equal(sync_cmd(env, "--quiet", "true"), 0);
    assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
    char err[8192] = "";
    tu_sh_out(err, sizeof(err), "cat '%s/err.txt'", dir);
    assert_non_null(strstr(err, "⚠️ notification to http://127.0.0.1:"));
    assert_null(strstr(err, "SECRET"));
    assert_int_equal(tu_sh("grep -rq SECRET '%s.plexburst/logs'", home), 1);
    json_decref(requests());

    /* ntfy: no start message; one POST to the topic itself with a Title */
    char ntfy[256];
    snprintf(ntfy, sizeof(ntfy), "ntfy+%s/mytopic", url_base);
    pb_error e = PB_ERROR_INIT;
    assert_int_equal(pb_notify_send(ntfy, PB_NOTIFY_START, "plexburst sync started", "s", 5, &e),
                     0);
    assert_int_equal(pb_notify_send(ntfy, PB_NOTIFY_FAILURE, "plexburst sync failed", "why", 5, &e),
                     0);
    rq = requests();
    assert_int_equal(json_array_size(rq), 1);
    assert_string_equal(req(rq, 0, "path"), "/mytopic");
    assert_string_equal(req(rq, 0, "title"), "plexburst sync failed");
    assert_string_equal(req(rq, 0, "body"), "why");
    json_decref(rq);
    /* healthchecks style with a query string: the suffix goes before it */
    char hc[256];
    snprintf(hc, sizeof(hc), "%s/ping/K/?create=1", url_base);
    assert_int_equal(pb_notify_send(hc, PB_NOTIFY_START, "t", NULL, 5, &e), 0);
    rq = requests();
    assert_string_equal(req(rq, 0, "path"), "/ping/K/start?create=1");
    json_decref(rq);
    tu_sh("kill %d", atoi(srv_pid));

    /* --dry-run says what it does before it does it */
    assert_int_equal(sync_cmd("", "--dry-run", "true"), 0);
    char *said = strstr(out, "dry run: the cloud analysis runs");
    assert_non_null(said);
    assert_true(said < strstr(out, "PHASE 1"));
    assert_non_null(strstr(said, "nothing changes at home"));
}

static void test_lock_stop_rollback(void **state)
{
    (void)state;
    char pid[64] = "", rcs[16] = "", cur[4300];
    /* a run that holds the lock, in its analysis */
    assert_int_equal(tu_sh("cd '%s' && ( '%s' sync --plex-dir '%s' --runner 'sleep 60' >int.out "
                           "2>int.err & echo $! >int.pid; wait $!; echo $? >int.rc ) >/dev/null "
                           "2>&1 &",
                           dir, pb, home),
                     0);
    for (int i = 0; i < 100 && tu_sh("test -s '%s/int.pid'", dir) != 0; i++)
        usleep(50000);
    tu_sh_out(pid, sizeof(pid), "cat '%s/int.pid'", dir);
    assert_true(atoi(pid) > 0);
    snprintf(cur, sizeof(cur), "%s.plexburst/sync/current.json", home);
    int waited = 0;
    while (tu_sh("grep -q injected '%s' 2>/dev/null", cur) != 0 && waited++ < 600)
        usleep(100000);
    assert_true(waited < 600);

    /* another run: exit 5, the holder named */
    int rc = tu_sh_out(out, OUTCAP, "cd '%s' && '%s' sync --plex-dir '%s' --runner true 2>&1", dir,
                       pb, home);
    print_message("%s", out);
    assert_int_equal(rc, 5);
    char want[96];
    snprintf(want, sizeof(want), "pid %d (", atoi(pid));
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "plexburst sync)"));

    /* Ctrl-C: the POST-MORTEM says it was stopped and does not send the user to the runner */
    assert_int_equal(tu_sh("kill -INT %d", atoi(pid)), 0);
    waited = 0;
    while (tu_sh("test -s '%s/int.rc'", dir) != 0 && waited++ < 600)
        usleep(100000);
    assert_true(waited < 600);
    tu_sh_out(rcs, sizeof(rcs), "cat '%s/int.rc'", dir);
    assert_int_equal(atoi(rcs), 4);
    tu_sh_out(out, OUTCAP, "cat '%s/int.out'", dir);
    assert_non_null(strstr(out, "POST-MORTEM"));
    assert_non_null(strstr(out, "stopped on request"));
    assert_null(strstr(out, "check the runner"));
    assert_null(strstr(out, "the runner's last lines"));

    /* the next run rolls the stopped one back and succeeds: its summary says so in words */
    assert_int_equal(sync_cmd("", "", "true"), 0);
    assert_null(strstr(out, "(rolled_back)"));
    assert_non_null(strstr(out, "was rolled back first"));
}

/* Columns on screen of the line at s (to its newline): one per UTF-8 character. */
static int cols(const char *s)
{
    int n = 0;
    for (; *s && *s != '\n'; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* The demo's transfer table: its rows (with the multi-byte arrows) line up with its header. */
static void test_demo_table(void **state)
{
    (void)state;
    assert_int_equal(tu_sh_out(out, OUTCAP,
                               "cd '%s' && '%s' demo --mkplex '%s' --workdir '%s/demo' --scale "
                               "tiny 2>demo.err",
                               dir, pb, mk, dir),
                     0);
    char *t = strstr(out, "the nightly sync over the home link:");
    assert_non_null(t);
    const char *row[4];
    row[0] = strchr(t, '\n') + 1;
    for (int i = 1; i < 4; i++)
        row[i] = strchr(row[i - 1], '\n') + 1;
    assert_true(!strncmp(row[1], "   home → cloud", strlen("   home → cloud")));
    assert_true(!strncmp(row[3], "   total", 8));
    for (int i = 0; i < 4; i++) {
        print_message("%.*s\n", (int)(strchr(row[i], '\n') - row[i]), row[i]);
        assert_int_equal(cols(row[i]), cols(row[0]));
    }
    tu_sh("rm -rf '%s/demo'", dir);
}

int main(void)
{
    snprintf(pb, sizeof(pb), "%s", tu_build_path("plexburst"));
    snprintf(mk, sizeof(mk), "%s", tu_build_path("mkplex"));
    if (access(pb, X_OK) != 0 || access(mk, X_OK) != 0)
        tu_skip("needs build/plexburst and build/mkplex");
    if (tu_sh("python3 -c 'import http.server' >/dev/null 2>&1") != 0)
        tu_skip("needs python3 (the notification server)");
    unsetenv("PLEXBURST_NOTIFY_URL");
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("progress"));
    snprintf(home, sizeof(home), "%s/home", dir);
    if (tu_sh("'%s' init --dir '%s' --scale tiny --seed 1 >/dev/null", mk, home) != 0)
        tu_skip("mkplex init failed");
    out = malloc(OUTCAP);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_units),
        cmocka_unit_test(test_output_and_notify),
        cmocka_unit_test(test_lock_stop_rollback),
        cmocka_unit_test(test_demo_table),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    /* a failed test may leave the background run: stopped cleanly, then waited for */
    if (tu_sh("test -s '%s/int.pid' && ! test -s '%s/int.rc'", dir, dir) == 0) {
        tu_sh("kill -INT $(cat '%s/int.pid') 2>/dev/null", dir);
        for (int i = 0; i < 600 && tu_sh("test -s '%s/int.rc'", dir) != 0; i++)
            usleep(100000);
    }
    if (srv_pid[0])
        tu_sh("kill %d 2>/dev/null", atoi(srv_pid));
    free(out);
    return rc;
}

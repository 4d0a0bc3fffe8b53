/*
 * test_plex_runner_standin.c: the stand-in Plex Media Server (scripts/plex-test-server) the plex
 * runner's tests drive: "starting up" 503 before /identity answers, 400 on an unknown
 * preference, XML by default and JSON on Accept: application/json, a section created with its
 * location and scanned at once from the files on disk (one item per media file, through
 * `mkplex scan`), activities with a gap between the scan and the analysis that follows it, the
 * token checked when claimed, and autoEmptyTrash: on (Plex's default) a rescan deletes the items
 * whose files vanished, off it only puts them in the trash.
 * Prerequisites: node (skips with 77 when it cannot run here), curl, the built mkplex.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

static char dir[4096], base[4200];
static int port;

#define MK() tu_build_path("mkplex")

/* The section's counters (mkplex scan --counts) into out. */
static void counts(char *out, size_t cap)
{
    assert_int_equal(
        tu_sh_out(out, cap, "'%s' scan --dir '%s/plex' --section 1 --counts", MK(), dir), 0);
}

/* Waits (bounded polling) until the section has no work left of `todo_key` and nothing shows in
 * /activities, held for more than two gaps of the stand-in (a gap alone is not the end). */
static void wait_idle(const char *todo_key)
{
    int64_t idle_since = 0;
    for (int i = 0; i < 2400; i++) {
        char c[1024], act[4096], want[64];
        tu_sh_out(act, sizeof(act), "curl -s -H 'Accept: application/json' %s/activities", base);
        counts(c, sizeof(c));
        snprintf(want, sizeof(want), "\"%s\":0", todo_key);
        int idle = strstr(act, "\"size\":0") && strstr(c, want);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        if (!idle)
            idle_since = 0;
        else if (!idle_since)
            idle_since = now;
        else if (now - idle_since > 1500)
            return;
        usleep(50 * 1000);
    }
    fail_msg("the stand-in never became idle");
}

/* The longest pause (ms) in the event journal between an activity's end and the next start. */
static long longest_gap(void)
{
    char path[4300];
    snprintf(path, sizeof(path), "%s/plex.pts.events", dir);
    char *text = tu_slurp(path);
    long best = 0, ended = -1;
    for (char *l = strtok(text, "\n"); l; l = strtok(NULL, "\n")) {
        long t = atol(strstr(l, "\"t\":") + 4);
        if (strstr(l, "\"what\":\"ended\""))
            ended = t;
        else if (strstr(l, "\"what\":\"started\"") && ended >= 0 && t - ended > best)
            best = t - ended;
    }
    free(text);
    return best;
}

static void test_standin(void **state)
{
    (void)state;
    char out[8192];
    /* 503 while starting up, then the identity */
    assert_int_equal(
        tu_sh_out(out, sizeof(out), "curl -s -o /dev/null -w '%%{http_code}' %s/identity", base),
        0);
    assert_string_equal(out, "503");
    int ok = 0;
    for (int i = 0; i < 600 && !ok; i++) {
        tu_sh_out(out, sizeof(out), "curl -s %s/identity", base);
        ok = strstr(out, "<MediaContainer") && strstr(out, "version=\"1.40.0.7998-c29d4c0c8\"");
        if (!ok)
            usleep(50 * 1000);
    }
    assert_true(ok);
    tu_sh_out(out, sizeof(out), "curl -s -H 'Accept: application/json' %s/identity", base);
    assert_non_null(strstr(out, "{\"MediaContainer\":{"));
    assert_non_null(strstr(out, "\"claimed\":false"));

    /* preferences: Plex's defaults, 400 on an unknown one */
    tu_sh_out(out, sizeof(out), "curl -s %s/:/prefs", base);
    assert_non_null(strstr(out, "<Setting id=\"autoEmptyTrash\""));
    tu_sh_out(out, sizeof(out),
              "curl -s -o /dev/null -w '%%{http_code}' -X PUT '%s/:/prefs?nope=1'", base);
    assert_string_equal(out, "400");

    /* a section with its location, scanned at once: one item per media file */
    tu_sh_out(out, sizeof(out),
              "curl -s -X POST '%s/library/sections?name=Films&type=movie&agent=tv.plex.agents."
              "movie&scanner=Plex%%20Movie&language=en-US&location=%s/media/Films'",
              base, dir);
    assert_non_null(strstr(out, "title=\"Films\""));
    wait_idle("deep_todo");
    assert_true(longest_gap() >= 600); /* nothing between the scan and the analysis it queued */
    counts(out, sizeof(out));
    assert_non_null(strstr(out, "\"items\":3"));
    tu_sh_out(out, sizeof(out), "grep -c '\"what\":\"analyzed\"' '%s/plex.pts.events'", dir);
    assert_int_equal(atoi(out), 3);

    /* autoEmptyTrash off: a vanished file puts its item in the trash */
    assert_int_equal(tu_sh("rm '%s/media/Films/b/Beta (2002).mkv'", dir), 0);
    assert_int_equal(
        tu_sh("curl -sf -X PUT '%s/:/prefs?autoEmptyTrash=0' && curl -sf '%s/library/sections/1/"
              "refresh' >/dev/null",
              base, base),
        0);
    wait_idle("deep_todo");
    tu_sh_out(out, sizeof(out), "grep '\"what\":\"scan\"' '%s/plex.pts.events' | tail -1", dir);
    assert_non_null(strstr(out, "\"trashed\":1,\"deleted\":0"));
    counts(out, sizeof(out));
    assert_non_null(strstr(out, "\"items\":2"));

    /* on (Plex's default): the scan deletes it */
    assert_int_equal(tu_sh("curl -sf -X PUT '%s/:/prefs?autoEmptyTrash=1' && curl -sf -X PUT "
                           "'%s/library/sections/1/refresh' >/dev/null",
                           base, base),
                     0);
    wait_idle("deep_todo");
    tu_sh_out(out, sizeof(out), "grep '\"what\":\"scan\"' '%s/plex.pts.events' | tail -1", dir);
    assert_non_null(strstr(out, "\"trashed\":0,\"deleted\":1"));

    /* butler tasks: known ones run, unknown ones are 404 */
    tu_sh_out(out, sizeof(out), "curl -s -o /dev/null -w '%%{http_code}' -X POST %s/butler/Nope",
              base);
    assert_string_equal(out, "404");
    assert_int_equal(tu_sh("curl -sf -X POST %s/butler/LoudnessAnalysis", base), 0);
    wait_idle("loudness_todo");

    /* claimed: the token is needed everywhere but /identity */
    assert_int_equal(tu_sh("'%s' stop --dir '%s/plex' && printf '<Preferences "
                           "PlexOnlineToken=\"tok-123\"/>' >'%s/plex/Preferences.xml'",
                           tu_source_path("scripts/plex-test-server"), dir, dir),
                     0);
    assert_int_equal(
        tu_sh_out(out, sizeof(out),
                  "'%s' start --dir '%s/plex' --mkplex '%s' --startup-ms 0 --owner %ld",
                  tu_source_path("scripts/plex-test-server"), dir, MK(), (long)getpid()),
        0);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", atoi(out));
    tu_sh_out(out, sizeof(out), "curl -s -o /dev/null -w '%%{http_code}' %s/library/sections",
              base);
    assert_string_equal(out, "401");
    tu_sh_out(out, sizeof(out),
              "curl -s -o /dev/null -w '%%{http_code}' -H 'X-Plex-Token: tok-123' "
              "%s/library/sections",
              base);
    assert_string_equal(out, "200");
}

int main(void)
{
    if (tu_sh("node -e 'process.exit(0)' >/dev/null 2>&1 && command -v curl >/dev/null") != 0)
        tu_skip("node or curl cannot run here (apt-get install nodejs curl)");
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("plexstandin"));
    if (tu_sh("mkdir -p '%s/plex' '%s/media/Films/a' '%s/media/Films/b' && "
              "head -c 5000 /dev/urandom >'%s/media/Films/a/Alpha (2001).mkv' && "
              "head -c 6000 /dev/urandom >'%s/media/Films/b/Beta (2002).mkv' && "
              "head -c 7000 /dev/urandom >'%s/media/Films/Gamma (2003).mp4' && "
              "echo notes >'%s/media/Films/notes.txt' && "
              "'%s' scan --dir '%s/plex' --create-db >/dev/null",
              dir, dir, dir, dir, dir, dir, dir, MK(), dir) != 0)
        fail_msg("set-up failed");
    char out[64] = "";
    if (tu_sh_out(out, sizeof(out),
                  "'%s' start --dir '%s/plex' --mkplex '%s' --startup-ms 3000 --step-ms 100 "
                  "--gap-ms 600 --owner %ld",
                  tu_source_path("scripts/plex-test-server"), dir, MK(), (long)getpid()) != 0) {
        tu_sh("cat '%s/plex.pts.log' >&2; rm -rf '%s'", dir, dir);
        fail_msg("the stand-in did not start");
    }
    port = atoi(out);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_standin)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tu_sh("'%s' stop --dir '%s/plex'", tu_source_path("scripts/plex-test-server"), dir);
    if (rc)
        tu_sh("cat '%s/plex.pts.log' >&2", dir);
    tu_sh("rm -rf '%s'", dir);
    return rc;
}

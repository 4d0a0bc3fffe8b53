/*
 * test_perf_guards.c: guards of issue 14's home-side costs, end to end through the local cloud
 * (the real `plexburst` binary, the agent as its child, the fixture tool mkplex as the runner):
 *   - back-to-back syncs: a sync started right after another is not refused ("another agent
 *     works in ..."), and the agent's trash (the trees it renames away, and what a deleter
 *     killed by a reboot left there) is emptied eventually: no litter in the cloud dir;
 *   - an idle night (nothing new in the cloud: the runner `true`) ends ok without running the
 *     Plex stop and start commands, while a normal night runs each once; a second one reads no
 *     table of the DB and looks up no path of the tree (its cost follows the change: none);
 *   - the home's peak RSS of a sync (`--json` home.max_rss_kb) stays within 64 MB.
 * Nothing here assumes a duration: waits poll with a generous bound.
 * Prerequisites: build/plexburst and build/mkplex (skipped, not passed, when missing).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>

#include "testutil.h"

#define OUTCAP     (4 << 20)
#define RSS_CAP_KB (64 * 1024)

static char pb[4096], mk[4096], dir[4096], home[4200], ctl[4200];
static char *outbuf;

static json_int_t jint(json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(o, a);
    return b ? json_integer_value(json_object_get(v, b)) : json_integer_value(v);
}

static double jnum(json_t *o, const char *a, const char *b)
{
    return json_number_value(json_object_get(json_object_get(o, a), b));
}

/* Runs `plexburst <args> --json` (stderr appended to DIR/stderr.log); parses its stdout. */
static int run_json(json_t **out, const char *args)
{
    json_error_t je;
    int rc = tu_sh_out(outbuf, OUTCAP, "cd '%s' && '%s' %s --json 2>>'%s/stderr.log'", dir, pb,
                       args, dir);
    *out = json_loads(outbuf, 0, &je);
    return rc;
}

/* Lines of the Plex control log (each stop or start command appends one). */
static int ctl_lines(const char *word)
{
    char n[32] = "";
    tu_sh_out(n, sizeof(n), "grep -c '^%s$' '%s' 2>/dev/null || true", word, ctl);
    return atoi(n);
}

/* One sync with `runner` and Plex stop/start commands that append to the control log; asserts
 * it ends ok (printing its output and the stderr tail when not) and returns its JSON. */
static json_t *sync_ok(const char *runner, const char *what)
{
    json_t *j = NULL;
    char args[16384];
    snprintf(args, sizeof(args),
             "sync --plex-dir '%s' --runner \"%s\" --plex-stop-cmd 'echo stop >> %s' "
             "--plex-start-cmd 'echo start >> %s'",
             home, runner, ctl, ctl);
    int rc = run_json(&j, args);
    int refused = strstr(outbuf, "another agent works in") != NULL;
    if (rc != 0 || !j || refused) {
        print_message("%s: exit %d: %.3000s\n", what, rc, outbuf);
        tu_sh("tail -n 30 '%s/stderr.log' >&2", dir);
    }
    assert_false(refused);
    assert_int_equal(rc, 0);
    assert_non_null(j);
    assert_true(json_is_true(json_object_get(j, "ok")));
    json_int_t rss = jint(j, "home", "max_rss_kb");
    print_message("%s: home CPU %lld ms, peak RSS %lld KB; rows +%lld ~%lld -%lld; files %lld "
                  "new; downtime %.0f ms\n",
                  what, (long long)(jnum(j, "home", "cpu_user_ms") + jnum(j, "home", "cpu_sys_ms")),
                  (long long)rss, (long long)jint(j, "rows", "inserted"),
                  (long long)jint(j, "rows", "updated"), (long long)jint(j, "rows", "deleted"),
                  (long long)jint(j, "files", "new"),
                  json_number_value(json_object_get(json_object_get(j, "timings_ms"), "downtime")));
    /* the home process alone (getrusage of the CLI), bounded by design */
    assert_true(rss > 0);
    assert_true(rss <= RSS_CAP_KB);
    return j;
}

static void test_back_to_back(void **state)
{
    (void)state;
    char runner[4400], args[16384], trash[4400];
    json_t *j = NULL;
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("perf-guards"));
    snprintf(home, sizeof(home), "%s/home", dir);
    snprintf(ctl, sizeof(ctl), "%s/plexctl.log", dir);
    /* the default local cloud: HOME.plexburst/cloud; the agent's state in its agent/ */
    snprintf(trash, sizeof(trash), "%s.plexburst/cloud/agent/trash", home);

    assert_int_equal(tu_sh("'%s' init --scale tiny --dir '%s' --seed 1 >/dev/null", mk, home), 0);
    snprintf(args, sizeof(args),
             "bootstrap --plex-dir '%s' --runner \"'%s' init --dir {plex_dir} --scale tiny "
             "--seed 1\"",
             home, mk);
    int rc = run_json(&j, args);
    if (rc != 0)
        print_message("bootstrap: exit %d: %.3000s\n", rc, outbuf);
    assert_int_equal(rc, 0);
    json_decref(j);

    /* a normal night: Plex stopped once and started once */
    assert_int_equal(tu_sh("'%s' stream --dir '%s' --seed 101 >/dev/null", mk, home), 0);
    snprintf(runner, sizeof(runner), "'%s' analyze --dir {plex_dir} --seed 201", mk);
    j = sync_ok(runner, "night 1");
    assert_true(jint(j, "rows", "inserted") + jint(j, "rows", "updated") > 0);
    json_decref(j);
    assert_int_equal(ctl_lines("stop"), 1);
    assert_int_equal(ctl_lines("start"), 1);

    /* what a deleter killed by a reboot leaves in the agent's trash: the next agent empties it */
    assert_int_equal(tu_sh("mkdir -p '%s/1-0-0/a/b' && touch '%s/1-0-0/a/b/f' '%s/1-0-0/g'", trash,
                           trash, trash),
                     0);

    /* right after: not refused (the previous agent's cleanup holds no lock) */
    snprintf(runner, sizeof(runner), "'%s' analyze --dir {plex_dir} --seed 202", mk);
    j = sync_ok(runner, "night 2 (right after night 1)");
    json_decref(j);
    assert_int_equal(ctl_lines("stop"), 2);
    assert_int_equal(ctl_lines("start"), 2);

    /* an idle night right after: nothing comes home, Plex is neither stopped nor started */
    j = sync_ok("true", "idle night (right after night 2)");
    assert_int_equal(
        jint(j, "rows", "inserted") + jint(j, "rows", "updated") + jint(j, "rows", "deleted"), 0);
    json_decref(j);
    assert_int_equal(ctl_lines("stop"), 2);
    assert_int_equal(ctl_lines("start"), 2);

    /* a second idle night: the home reads no table (all pages equal the baseline copy's, which
     * the first idle night linked from its snapshot) and looks up no path of its tree */
    j = sync_ok("true", "second idle night");
    json_decref(j);
    assert_int_equal(tu_sh("log=$(ls -t '%s.plexburst/logs/'*.log | head -1) && "
                           "grep -q 'tables unchanged since the baseline copy (same pages), 0 "
                           "summed from their changed leaves, 0 read whole' "
                           "\"$log\" && grep -q 'the 0 listed paths looked up' \"$log\"",
                           home),
                     0);

    /* the trash is emptied in the background: poll, bounded generously (10 min;
     * PB_TEST_TRASH_WAIT_S shortens it when checking the test against an agent that leaks) */
    const char *w = getenv("PB_TEST_TRASH_WAIT_S");
    int bound = (w && atoi(w) > 0 ? atoi(w) : 600) * 10, polls = 0;
    while (tu_sh("test -e '%s'", trash) == 0 && polls++ < bound)
        usleep(100000);
    if (polls >= bound)
        tu_sh("find '%s' | head -20 >&2", trash);
    print_message("agent trash gone after %d polls of 100 ms\n", polls);
    assert_true(polls < bound);
    /* no other litter of the agent's work: only the current run's work dir may remain */
    char n[32] = "";
    tu_sh_out(n, sizeof(n), "ls '%s.plexburst/cloud/work' 2>/dev/null | wc -l", home);
    print_message("cloud work dirs left: %d\n", atoi(n));
    assert_true(atoi(n) <= 1);
    tu_sh("rm -rf '%s' '%s.plexburst'", dir, home);
}

int main(void)
{
    snprintf(pb, sizeof(pb), "%s", tu_build_path("plexburst"));
    snprintf(mk, sizeof(mk), "%s", tu_build_path("mkplex"));
    if (access(pb, X_OK) != 0 || access(mk, X_OK) != 0)
        tu_skip("needs build/plexburst and build/mkplex");
    outbuf = malloc(OUTCAP);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_back_to_back),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(outbuf);
    return rc;
}

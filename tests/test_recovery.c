/*
 * test_recovery.c: what a broken store, a damaged baseline, a guard or a closed terminal must not
 * cost the nightly sync (issue 10, items 3, 4 and three of item 10), driving the real
 * `plexburst sync` through the local cloud after a bootstrap (mkplex init --scale tiny --seed 1,
 * mkplex stream --seed 4 at home, the runner `mkplex analyze --seed 7`):
 *   - a run interrupted at bundle_ready whose stored bundle is then corrupted, or lost, is rolled
 *     back by the next sync (also --dry-run), which says so and completes a new run;
 *   - a flipped byte in the store's baseline, a tampered or damaged home baseline copy: the sync
 *     falls back to a full upload, says so, and succeeds;
 *   - a run refused by the deletion guard is kept refused: the next sync stops in RECOVER with
 *     exit 3 and says how to decide; --discard-refused drops it, --retry-refused with a higher
 *     --max-delete-pct applies it;
 *   - SIGHUP (twice, as a closing terminal and its shell send it) stops the sync cleanly (exit 4)
 *     and leaves neither the agent nor the runner behind;
 *   - symlinks in the cloud's tree are skipped with a warning naming their count.
 * One bootstrapped template is copied for each case. Prerequisites: build/plexburst and
 * build/mkplex (skipped, not passed, when missing).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include <sqlite3.h>

#include "testutil.h"

static char pb[4096], mk[4096], tmpl[4096];
static char made[16][4200]; /* the copies, removed by the teardown too (a failed case leaves its) */
static int nmade;

/* A fresh copy of the template in `w` (its own dir under the template's parent). */
static void fresh(char *w, size_t cap, const char *tag)
{
    snprintf(w, cap, "%s", tu_tmpdir(tag));
    if (nmade < 16)
        snprintf(made[nmade++], sizeof(made[0]), "%s", w);
    assert_int_equal(tu_sh("cp -a '%s/.' '%s/'", tmpl, w), 0);
}

/* `plexburst sync` in `w` (extra options, an optional environment prefix): its exit status; stdout
 * (the JSON) in w/out.json, the human output in w/out.log. */
static int sync_in(const char *w, const char *env, const char *runner, const char *extra)
{
    char run[4300];
    if (!runner) {
        snprintf(run, sizeof(run), "'%s' analyze --dir {plex_dir} --seed 7", mk);
        runner = run;
    }
    return tu_sh("cd '%s' && %s '%s' sync --plex-dir '%s/home' --cloud 'local:%s/cloud' "
                 "--runner \"%s\" %s --json >'%s/out.json' 2>'%s/out.log'",
                 w, env ? env : "", pb, w, w, runner, extra ? extra : "", w, w);
}

/* `text` in what the last sync in `w` said: stderr, or its log file (named in its JSON). */
static int log_has(const char *w, const char *text)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/out.json", w);
    json_t *j = json_load_file(path, 0, NULL);
    const char *log = json_string_value(json_object_get(j, "log"));
    int rc =
        tu_sh("grep -qF -- '%s' '%s/out.log' '%s' 2>/dev/null", text, w, log ? log : "/dev/null");
    json_decref(j);
    return rc == 0;
}

static json_t *result(const char *w)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/out.json", w);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j)
        tu_sh("cat '%s/out.log' >&2", w);
    assert_non_null(j);
    return j;
}

static const char *jstr(json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(o, a);
    return json_string_value(b ? json_object_get(v, b) : v);
}

static void show_on_failure(const char *w, int rc, int want)
{
    if (rc != want) {
        print_message("sync exit %d, expected %d; its output:\n", rc, want);
        tu_sh("grep -v '^\\s*[+~-] ' '%s/out.log' | tail -40 >&2; cat '%s/out.json' >&2", w, w);
    }
}

static int mkplex_stream(const char *w, int seed)
{
    return tu_sh("'%s' stream --dir '%s/home' --seed %d >/dev/null", mk, w, seed);
}

/* A sync killed when DOWNLOAD starts: its bundle is stored, current.json says bundle_ready.
 * `bundle` gets the stored bundle's path. */
static void interrupted_at_bundle_ready(const char *w, char *bundle, size_t cap)
{
    char cur[4300];
    int rc = sync_in(w, "PLEXBURST_FAULT=kill:DOWNLOAD", NULL, NULL);
    assert_int_not_equal(rc, 0);
    snprintf(cur, sizeof(cur), "%s/home.plexburst/sync/current.json", w);
    json_t *c = json_load_file(cur, 0, NULL);
    assert_non_null(c);
    assert_string_equal(jstr(c, "state", NULL), "bundle_ready");
    snprintf(bundle, cap, "%s/cloud/store/%s", w, jstr(c, "bundle", NULL));
    json_decref(c);
    assert_int_equal(access(bundle, R_OK), 0);
}

static void flip_byte(const char *path, long at)
{
    assert_int_equal(
        tu_sh("printf '\\377' | dd of='%s' bs=1 seek=%ld conv=notrunc 2>/dev/null", path, at), 0);
}

/* Item 3: a stored bundle corrupted (then one lost, met by --dry-run) after bundle_ready. */
static void test_lost_or_corrupt_bundle(void **state)
{
    (void)state;
    char w[4200], bundle[8400];
    fresh(w, sizeof(w), "rec-bundle");
    interrupted_at_bundle_ready(w, bundle, sizeof(bundle));
    flip_byte(bundle, 100);
    int rc = sync_in(w, NULL, NULL, NULL);
    show_on_failure(w, rc, 0);
    assert_int_equal(rc, 0);
    assert_true(log_has(w, "stored bundle is lost or corrupt"));
    assert_true(log_has(w, "starting a new run"));
    json_t *j = result(w);
    assert_string_equal(jstr(j, "resume_action", NULL), "rolled_back");
    json_decref(j);
    assert_int_not_equal(tu_sh("test -e '%s/home.plexburst/sync/current.json'", w), 0);

    /* a lost one, met by a dry run (and then by --full-upload): rolled back as well */
    assert_int_equal(mkplex_stream(w, 5), 0);
    interrupted_at_bundle_ready(w, bundle, sizeof(bundle));
    assert_int_equal(unlink(bundle), 0);
    rc = sync_in(w, NULL, NULL, "--dry-run");
    show_on_failure(w, rc, 0);
    assert_int_equal(rc, 0);
    assert_true(log_has(w, "stored bundle is lost or corrupt"));
    interrupted_at_bundle_ready(w, bundle, sizeof(bundle));
    assert_int_equal(unlink(bundle), 0);
    rc = sync_in(w, NULL, NULL, "--full-upload");
    show_on_failure(w, rc, 0);
    assert_int_equal(rc, 0);
    assert_true(log_has(w, "stored bundle is lost or corrupt"));
    tu_sh("rm -rf '%s'", w);
}

/* Runs SQL on a DB file. */
static void sql_on(const char *db, const char *sql)
{
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    tu_exec_ok(h, sql);
    sqlite3_close(h);
}

/* Item 4: a damaged baseline on either side means a full upload, said, and a good run. */
static void test_corrupt_baseline(void **state)
{
    (void)state;
    char w[4200], path[4400];
    /* a flipped byte in the store's baseline (the cloud's cache gone: a fresh cloud) */
    fresh(w, sizeof(w), "rec-base");
    assert_int_equal(tu_sh("rm -rf '%s/cloud/agent/baseline' && for f in "
                           "'%s'/cloud/store/baseline/*/main.db.zst; do printf '\\377\\377' | "
                           "dd of=\"$f\" bs=1 seek=2000 conv=notrunc 2>/dev/null; done",
                           w, w),
                     0);
    int rc = sync_in(w, NULL, NULL, NULL);
    show_on_failure(w, rc, 0);
    assert_int_equal(rc, 0);
    assert_true(log_has(w, "uploading it whole"));
    json_t *j = result(w);
    assert_true(json_integer_value(
                    json_object_get(json_object_get(j, "bytes"), "baseline_full_upload")) > 0);
    json_decref(j);
    tu_sh("rm -rf '%s'", w);

    /* a tampered home baseline copy (rows gone) */
    fresh(w, sizeof(w), "rec-base");
    snprintf(path, sizeof(path), "%s/home.plexburst/baseline.db", w);
    sql_on(path, "DELETE FROM taggings WHERE id IN (SELECT id FROM taggings LIMIT 3)");
    rc = sync_in(w, NULL, NULL, NULL);
    show_on_failure(w, rc, 0);
    assert_int_equal(rc, 0);
    assert_true(log_has(w, "uploading it whole"));
    tu_sh("rm -rf '%s'", w);

    /* a damaged home baseline copy (its header overwritten) */
    fresh(w, sizeof(w), "rec-base");
    snprintf(path, sizeof(path), "%s/home.plexburst/baseline.db", w);
    for (long at = 40; at < 48; at++)
        flip_byte(path, at);
    rc = sync_in(w, NULL, NULL, NULL);
    show_on_failure(w, rc, 0);
    assert_int_equal(rc, 0);
    assert_true(log_has(w, "uploading the whole snapshot"));
    /* and the next sync is a plain changeset again */
    assert_int_equal(mkplex_stream(w, 5), 0);
    rc = sync_in(w, NULL, NULL, NULL);
    show_on_failure(w, rc, 0);
    assert_int_equal(rc, 0);
    j = result(w);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "bytes"), "baseline_full_upload")),
        0);
    json_decref(j);
    tu_sh("rm -rf '%s'", w);
}

/* Item 10: a run the deletion guard refused stays refused until the user decides. */
static void test_refused_kept(void **state)
{
    (void)state;
    char w[4200], db[4400], sum0[64] = "", sum1[64] = "";
    fresh(w, sizeof(w), "rec-refused");
    snprintf(db, sizeof(db), "%s/home/Plug-in Support/Databases/com.plexapp.plugins.library.db", w);
    tu_sh_out(sum0, sizeof(sum0), "md5sum < '%s'", db);
    int rc = sync_in(w, NULL, NULL, "--max-delete-pct 1");
    show_on_failure(w, rc, 3);
    assert_int_equal(rc, 3);
    assert_int_equal(tu_sh("grep -q '\"refused\"' '%s/home.plexburst/sync/current.json'", w), 0);
    /* the next night: stopped at once, exit 3, how to decide said; nothing redone */
    rc = sync_in(w, NULL, NULL, "--max-delete-pct 1");
    show_on_failure(w, rc, 3);
    assert_int_equal(rc, 3);
    json_t *j = result(w);
    assert_string_equal(jstr(j, "error", "phase_name"), "RECOVER");
    json_decref(j);
    assert_true(log_has(w, "--retry-refused"));
    assert_true(log_has(w, "--discard-refused"));
    assert_false(log_has(w, "PHASE 2: SNAPSHOT"));
    tu_sh_out(sum1, sizeof(sum1), "md5sum < '%s'", db);
    assert_string_equal(sum0, sum1);
    /* both decisions at once: a usage error */
    assert_int_equal(sync_in(w, NULL, NULL, "--retry-refused --discard-refused"), 2);
    /* discarded: a new run starts (and is refused on its own) */
    rc = sync_in(w, NULL, NULL, "--discard-refused --max-delete-pct 1");
    show_on_failure(w, rc, 3);
    assert_int_equal(rc, 3);
    assert_true(log_has(w, "is discarded"));
    assert_true(log_has(w, "PHASE 2: SNAPSHOT"));
    /* retried with a higher limit: applied */
    rc = sync_in(w, NULL, NULL, "--retry-refused --max-delete-pct 10");
    show_on_failure(w, rc, 0);
    assert_int_equal(rc, 0);
    j = result(w);
    assert_string_equal(jstr(j, "resume_action", NULL), "resumed");
    json_decref(j);
    tu_sh_out(sum1, sizeof(sum1), "md5sum < '%s'", db);
    assert_string_not_equal(sum0, sum1);
    assert_int_not_equal(tu_sh("test -e '%s/home.plexburst/sync/current.json'", w), 0);
    tu_sh("rm -rf '%s'", w);
}

/* Item 10: a closed terminal (SIGHUP, twice) stops the sync cleanly; no agent or runner stays. */
static void test_sighup(void **state)
{
    (void)state;
    char w[4200], pid[64] = "", rcs[16] = "";
    fresh(w, sizeof(w), "rec-hup");
    assert_int_equal(tu_sh("cd '%s' && ( '%s' sync --plex-dir '%s/home' --cloud 'local:%s/cloud' "
                           "--runner 'sleep 73' --json >out.json 2>out.log & echo $! >pid; "
                           "wait $!; echo $? >rc ) >/dev/null 2>&1 &",
                           w, pb, w, w),
                     0);
    int waited = 0;
    while (tu_sh("grep -q injected '%s/home.plexburst/sync/current.json' 2>/dev/null", w) != 0 &&
           waited++ < 600)
        usleep(100000);
    assert_true(waited < 600);
    /* the runner started (its log exists) */
    waited = 0;
    while (tu_sh("ls '%s'/cloud/agent/runner-*.pid >/dev/null 2>&1", w) != 0 && waited++ < 300)
        usleep(100000);
    tu_sh_out(pid, sizeof(pid), "cat '%s/pid'", w);
    assert_true(atoi(pid) > 0);
    tu_sh("kill -HUP %d; kill -HUP %d", atoi(pid), atoi(pid));
    waited = 0;
    while (tu_sh("test -s '%s/rc'", w) != 0 && waited++ < 600)
        usleep(100000);
    assert_true(waited < 600);
    /* no agent and no runner of this run left (a runner found is stopped, by its pid) */
    const char *runners = "for p in $(pgrep -x sleep); do readlink /proc/$p/cwd | grep -q "
                          "'^%s/cloud' && echo $p; done";
    char found[256] = "";
    waited = 0;
    while ((tu_sh("pgrep -f '[a]gent --workdir %s/cloud' >/dev/null", w) == 0 ||
            (tu_sh_out(found, sizeof(found), runners, w), found[0])) &&
           waited++ < 100)
        usleep(100000);
    if (found[0])
        tu_sh("kill %s", found);
    tu_sh_out(rcs, sizeof(rcs), "cat '%s/rc'", w);
    print_message("SIGHUP: exit %d\n", atoi(rcs));
    assert_int_equal(atoi(rcs), 4);
    assert_string_equal(found, "");
    assert_int_equal(tu_sh("pgrep -f '[a]gent --workdir %s/cloud' >/dev/null", w), 1);
    tu_sh("rm -rf '%s'", w);
}

/* Item 10: symlinks in the cloud's tree are skipped with a warning, the sync succeeds. */
static void test_cloud_symlinks(void **state)
{
    (void)state;
    char w[4200], runner[8400];
    fresh(w, sizeof(w), "rec-link");
    snprintf(runner, sizeof(runner),
             "'%s' analyze --dir {plex_dir} --seed 7 && ln -s /etc/passwd "
             "{plex_dir}/Metadata/pb-link && mkdir -p {plex_dir}/Media/pb && ln -s ../.. "
             "{plex_dir}/Media/pb/loop",
             mk);
    int rc = sync_in(w, NULL, runner, NULL);
    show_on_failure(w, rc, 0);
    assert_int_equal(rc, 0);
    assert_true(log_has(w, "holds 2 symlinks the home lacks: skipped"));
    assert_int_not_equal(tu_sh("test -e '%s/home/Metadata/pb-link' || test -L "
                               "'%s/home/Metadata/pb-link'",
                               w, w),
                         0);
    tu_sh("rm -rf '%s'", w);
}

/* The template: a bootstrapped home that streamed since. */
static int setup(void **state)
{
    (void)state;
    snprintf(tmpl, sizeof(tmpl), "%s", tu_tmpdir("rec-tmpl"));
    if (tu_sh("'%s' init --scale tiny --seed 1 --dir '%s/home' >/dev/null", mk, tmpl) != 0 ||
        tu_sh("cd '%s' && '%s' bootstrap --plex-dir '%s/home' --cloud 'local:%s/cloud' --runner "
              "\"'%s' init --dir {plex_dir} --scale tiny --seed 1\" >boot.log 2>&1",
              tmpl, pb, tmpl, tmpl, mk) != 0 ||
        mkplex_stream(tmpl, 4) != 0) {
        tu_sh("tail -20 '%s/boot.log' >&2; rm -rf '%s'", tmpl, tmpl);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_sh("rm -rf '%s'", tmpl);
    for (int i = 0; i < nmade; i++)
        tu_sh("rm -rf '%s'", made[i]);
    return 0;
}

int main(void)
{
    snprintf(pb, sizeof(pb), "%s", tu_build_path("plexburst"));
    snprintf(mk, sizeof(mk), "%s", tu_build_path("mkplex"));
    if (access(pb, X_OK) != 0 || access(mk, X_OK) != 0)
        tu_skip("needs build/plexburst and build/mkplex");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lost_or_corrupt_bundle), cmocka_unit_test(test_corrupt_baseline),
        cmocka_unit_test(test_refused_kept),           cmocka_unit_test(test_sighup),
        cmocka_unit_test(test_cloud_symlinks),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    return rc;
}

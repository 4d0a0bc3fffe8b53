/*
 * test_run.c: the runs end to end through the local cloud, driving the real `plexburst` binary
 * (bootstrap, sync, status; the agent as its child) with the fixture tool as the runner:
 *   - bootstrap then three nightly syncs with mkplex stream (home) and analyze (cloud) between
 *     them: the home library ends equal, table by table and file by file, to an oracle built from
 *     the same seeds in one directory; after the bootstrap the up-link carries row changesets
 *     only; a sync with nothing new moves almost nothing (bytes printed);
 *   - a sync killed at the start of every phase, just before and after the apply, and inside the
 *     apply (journal crash points) is resumed or rolled back by the next sync, ending equal to
 *     the oracle;
 *   - a failing runner ends with the POST-MORTEM and leaves home untouched; a cloud agent that
 *     dies mid-run likewise; --dry-run writes nothing; status lists the runs.
 * Prerequisites: build/plexburst and build/mkplex (skipped, not passed, when missing).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>

#include "plexburst/plex.h"
#include "plexburst/sqldiff.h"
#include "testutil.h"

static char pb[4096], mk[4096], dir[4096];
static char *outbuf;
#define OUTCAP (4 << 20)

/* Runs `plexburst <args> --json` and parses its stdout (NULL when it is not JSON). */
static int run_json(json_t **out, const char *args)
{
    json_error_t je;
    int rc = tu_sh_out(outbuf, OUTCAP, "cd '%s' && '%s' %s --json 2>>'%s/stderr.log'", dir, pb,
                       args, dir);
    *out = json_loads(outbuf, 0, &je);
    return rc;
}

static int mkplex(const char *cmd, const char *d, int seed)
{
    return tu_sh("'%s' %s --dir '%s' --seed %d >/dev/null", mk, cmd, d, seed);
}

static json_int_t jint(json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(o, a);
    return b ? json_integer_value(json_object_get(v, b)) : json_integer_value(v);
}

typedef struct sums {
    size_t n;
    char name[256][112];
    uint8_t sum[256][16];
    uint64_t rows[256];
} sums;

static int on_sum(const pb_table_checksum *t, void *payload)
{
    sums *s = payload;
    if (s->n < 256) {
        snprintf(s->name[s->n], sizeof(s->name[0]), "%s", t->table);
        memcpy(s->sum[s->n], t->sum, 16);
        s->rows[s->n] = t->rows;
        s->n++;
    }
    return 0;
}

/* Tables whose logical checksums differ between two DBs (printed). */
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
    int bad = 0;
    for (size_t i = 0; i < sa->n; i++) {
        size_t j = 0;
        while (j < sb->n && strcmp(sa->name[i], sb->name[j]) != 0)
            j++;
        if (j == sb->n || memcmp(sa->sum[i], sb->sum[j], 16) != 0) {
            print_message("   table %s differs (%llu vs %llu rows)\n", sa->name[i],
                          (unsigned long long)sa->rows[i],
                          (unsigned long long)(j < sb->n ? sb->rows[j] : 0));
            bad++;
        }
    }
    if (sa->n != sb->n)
        bad++;
    free(sa);
    free(sb);
    return bad;
}

/* The home equals the oracle: both DBs table by table, Metadata/ and Media/ file by file. */
static void assert_equal_library(const char *home, const char *oracle)
{
    char a[4300], b[4300];
    snprintf(a, sizeof(a), "%s/" PB_PLEX_DB_REL, home);
    snprintf(b, sizeof(b), "%s/" PB_PLEX_DB_REL, oracle);
    int bad = db_diff(a, b);
    snprintf(a, sizeof(a), "%s/" PB_PLEX_BLOBS_REL, home);
    snprintf(b, sizeof(b), "%s/" PB_PLEX_BLOBS_REL, oracle);
    bad += db_diff(a, b);
    int trees = tu_sh("diff -r --no-dereference '%s/Metadata' '%s/Metadata' >&2 && diff -r "
                      "--no-dereference '%s/Media' '%s/Media' >&2",
                      home, oracle, home, oracle);
    assert_int_equal(bad, 0);
    assert_int_equal(trees, 0);
}

static void setup_paths(const char *tag)
{
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir(tag));
}

static void bootstrap(const char *home, const char *oracle)
{
    json_t *j = NULL;
    assert_int_equal(mkplex("init --scale tiny", home, 1), 0);
    assert_int_equal(mkplex("init --scale tiny", oracle, 1), 0);
    char args[8192];
    snprintf(args, sizeof(args),
             "bootstrap --plex-dir '%s' --runner \"'%s' init --dir {plex_dir} --scale tiny "
             "--seed 1\"",
             home, mk);
    int rc = run_json(&j, args);
    if (rc != 0)
        print_message("%s\n", outbuf);
    assert_int_equal(rc, 0);
    assert_non_null(j);
    assert_true(json_is_true(json_object_get(j, "ok")));
    print_message("bootstrap: up %lld B, down %lld B (DB pair + bundle)\n",
                  (long long)jint(j, "bytes", "up"), (long long)jint(j, "bytes", "down"));
    json_decref(j);
}

/* One nightly sync with `analyze --seed a`; returns the JSON (caller decrefs). */
static json_t *sync_with(const char *home, int a, const char *extra_env, int expect_rc)
{
    json_t *j = NULL;
    char args[8192];
    snprintf(args, sizeof(args),
             "sync --plex-dir '%s' --runner \"'%s' analyze --dir {plex_dir} --seed %d\"", home, mk,
             a);
    int rc;
    if (extra_env) {
        char full[16384];
        snprintf(full, sizeof(full), "cd '%s' && %s '%s' %s --json 2>>'%s/stderr.log'", dir,
                 extra_env, pb, args, dir);
        rc = tu_sh_out(outbuf, OUTCAP, "%s", full);
        json_error_t je;
        j = json_loads(outbuf, 0, &je);
    } else {
        rc = run_json(&j, args);
    }
    if (rc != expect_rc)
        print_message("sync exit %d (expected %d): %.2000s\n", rc, expect_rc, outbuf);
    assert_int_equal(rc, expect_rc);
    return j;
}

static void test_nightly(void **state)
{
    (void)state;
    char home[4200], oracle[4200];
    setup_paths("run-nightly");
    snprintf(home, sizeof(home), "%s/home", dir);
    snprintf(oracle, sizeof(oracle), "%s/oracle", dir);
    bootstrap(home, oracle);

    for (int night = 1; night <= 3; night++) {
        int s = 100 + night, a = 200 + night;
        assert_int_equal(mkplex("stream", home, s), 0);
        assert_int_equal(mkplex("stream", oracle, s), 0);
        json_t *j = sync_with(home, a, NULL, 0);
        assert_int_equal(mkplex("analyze", oracle, a), 0);
        assert_true(json_is_true(json_object_get(j, "ok")));
        assert_string_equal(json_string_value(json_object_get(j, "mode")), "sync");
        /* after the bootstrap: a row changeset up, never the whole DB */
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(j, "upload"), "kind")), "changeset");
        assert_int_equal(jint(j, "bytes", "baseline_full_upload"), 0);
        assert_true(jint(j, "bytes", "up") < 64 * 1024);
        assert_true(jint(j, "rows", "inserted") > 0);
        assert_true(json_array_size(json_object_get(j, "phases")) == 9);
        print_message(
            "night %d: up %lld B (changeset %lld B, %lld rows), down %lld B (bundle %lld "
            "B); rows +%lld ~%lld -%lld; files %lld new, %lld patched; %.0f ms\n",
            night, (long long)jint(j, "bytes", "up"), (long long)jint(j, "bytes", "changeset_up"),
            (long long)jint(j, "upload", "changeset_rows"), (long long)jint(j, "bytes", "down"),
            (long long)jint(j, "bytes", "bundle_down"), (long long)jint(j, "rows", "inserted"),
            (long long)jint(j, "rows", "updated"), (long long)jint(j, "rows", "deleted"),
            (long long)jint(j, "files", "new"), (long long)jint(j, "files", "patched"),
            json_number_value(json_object_get(json_object_get(j, "timings_ms"), "total")));
        json_decref(j);
        assert_equal_library(home, oracle);
    }

    /* nothing new on either side: almost nothing moves */
    json_t *j = NULL;
    char args[4400];
    snprintf(args, sizeof(args), "sync --plex-dir '%s' --runner true", home);
    assert_int_equal(run_json(&j, args), 0);
    long long up = jint(j, "bytes", "up"), down = jint(j, "bytes", "down");
    print_message("idle sync: up %lld B, down %lld B, rows %lld\n", up, down,
                  (long long)(jint(j, "rows", "inserted") + jint(j, "rows", "updated")));
    assert_true(up + down < 16 * 1024);
    assert_int_equal(
        jint(j, "rows", "inserted") + jint(j, "rows", "updated") + jint(j, "rows", "deleted"), 0);
    json_decref(j);
    assert_equal_library(home, oracle);

    /* status lists them, newest first */
    snprintf(args, sizeof(args), "status --plex-dir '%s'", home);
    assert_int_equal(run_json(&j, args), 0);
    assert_true(json_array_size(json_object_get(j, "runs")) >= 5);
    json_t *r0 = json_array_get(json_object_get(j, "runs"), 0);
    assert_string_equal(json_string_value(json_object_get(r0, "state")), "ok");
    assert_true(json_is_null(json_object_get(j, "interrupted_run")));
    json_decref(j);
    tu_sh("rm -rf '%s'", dir);
}

static void test_kill_every_phase(void **state)
{
    (void)state;
    /* the start of each phase (SNAPSHOT falls in the same case as UPLOAD_DELTA:
     * nothing stored yet), around the apply, and inside it (the journal's crash points: the
     * rows merged into the copies, the swap's commit point, the installs) */
    static const char *const faults[] = {
        "PLEXBURST_FAULT=kill:UPLOAD_DELTA", "PLEXBURST_FAULT=kill:INJECT_DB",
        "PLEXBURST_FAULT=kill:ANALYSIS",     "PLEXBURST_FAULT=kill:EXPORT",
        "PLEXBURST_FAULT=kill:DOWNLOAD",     "PLEXBURST_FAULT=kill:after_record",
        "PB_TEST_CRASH_AT=premerged",        "PB_TEST_CRASH_AT=swapping",
        "PB_TEST_CRASH_AT=finish",           "PLEXBURST_FAULT=kill:after_apply",
        "PLEXBURST_FAULT=kill:FINALIZE",
    };
    char home[4200], oracle[4200];
    setup_paths("run-kill");
    snprintf(home, sizeof(home), "%s/home", dir);
    snprintf(oracle, sizeof(oracle), "%s/oracle", dir);
    bootstrap(home, oracle);
    for (size_t i = 0; i < sizeof(faults) / sizeof(*faults); i++) {
        int s = 300 + (int)i, a = 400 + (int)i;
        assert_int_equal(mkplex("stream", home, s), 0);
        assert_int_equal(mkplex("stream", oracle, s), 0);
        /* killed: the process dies by SIGKILL (the shell reports 137; tu_sh_out -1 or 137) */
        json_t *j = NULL;
        int rc = tu_sh("cd '%s' && %s '%s' sync --plex-dir '%s' --runner \"'%s' analyze --dir "
                       "{plex_dir} --seed %d\" --json >/dev/null 2>>'%s/stderr.log'",
                       dir, faults[i], pb, home, mk, a, dir);
        assert_true(rc != 0);
        /* the next sync resumes (bundle stored) or rolls back (then analyses again) */
        j = sync_with(home, a, NULL, 0);
        const char *action = json_string_value(json_object_get(j, "resume_action"));
        print_message("killed at %-34s -> next sync: %s (mode %s)\n", faults[i],
                      action && *action ? action : "nothing to do",
                      json_string_value(json_object_get(j, "mode")));
        json_decref(j);
        assert_int_equal(mkplex("analyze", oracle, a), 0);
        assert_equal_library(home, oracle);
    }
    tu_sh("rm -rf '%s'", dir);
}

/* Per-table checksum of one table of a DB (hex into out). */
static void table_sum(char out[33], const char *db, const char *table)
{
    sums *s = calloc(1, sizeof(*s));
    pb_diff_options o = PB_DIFF_OPTIONS_INIT;
    pb_checksum c;
    pb_error err = PB_ERROR_INIT;
    o.table_checksum = on_sum;
    o.table_payload = s;
    assert_int_equal(pb_sqldiff_checksum(&c, db, &o, &err), 0);
    snprintf(out, 33, "-");
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->name[i], table))
            for (int k = 0; k < 16; k++)
                snprintf(out + 2 * k, 3, "%02x", s->sum[i][k]);
    free(s);
}

static void test_bootstrap_carry(void **state)
{
    (void)state;
    static const char *const user[] = {"metadata_item_settings", "metadata_item_views", "accounts"};
    char home[4200], cloud[4200], db[4300], cdb[4300], args[16384], before[3][33], after[33];
    setup_paths("run-boot");
    snprintf(home, sizeof(home), "%s/home", dir);
    snprintf(cloud, sizeof(cloud), "%s/cloudref", dir);
    snprintf(db, sizeof(db), "%s/" PB_PLEX_DB_REL, home);
    snprintf(cdb, sizeof(cdb), "%s/" PB_PLEX_DB_REL, cloud);
    /* a home that has lived: plays, settings, a playlist; its own Preferences.xml */
    assert_int_equal(mkplex("init --scale tiny", home, 1), 0);
    assert_int_equal(mkplex("stream", home, 3), 0);
    assert_int_equal(mkplex("stream", home, 4), 0);
    assert_int_equal(tu_sh("echo '<Preferences MachineIdentifier=\"home-id\"/>' > "
                           "'%s/Preferences.xml'",
                           home),
                     0);
    for (int i = 0; i < 3; i++)
        table_sum(before[i], db, user[i]);
    /* the cloud builds the library anew (what the home's library tables become) */
    assert_int_equal(mkplex("init --scale tiny", cloud, 1), 0);
    json_t *j = NULL;
    snprintf(args, sizeof(args),
             "bootstrap --plex-dir '%s' --runner \"'%s' init --dir {plex_dir} --scale tiny "
             "--seed 1\"",
             home, mk);
    assert_int_equal(run_json(&j, args), 0);
    print_message("bootstrap over a lived-in home: carried %lld accounts, %lld settings, %lld "
                  "plays\n",
                  (long long)jint(j, "carried", "accounts"),
                  (long long)jint(j, "carried", "settings"),
                  (long long)jint(j, "carried", "views"));
    assert_true(jint(j, "carried", "settings") > 0);
    json_decref(j);
    /* user state: the home's, row for row */
    for (int i = 0; i < 3; i++) {
        table_sum(after, db, user[i]);
        if (strcmp(after, before[i]) != 0)
            print_message("   %s changed\n", user[i]);
        assert_string_equal(after, before[i]);
    }
    /* media tables: the cloud's (metadata_items, tags and taggings also keep the home's
     * playlists, collections, labels and locked edits: test_bootstrap_force) */
    static const char *const lib[] = {"media_items", "media_parts", "media_streams"};
    for (int i = 0; i < 3; i++) {
        char a[33], b[33];
        table_sum(a, db, lib[i]);
        table_sum(b, cdb, lib[i]);
        assert_string_equal(a, b);
    }
    /* Preferences.xml untouched, the former DBs backed up */
    assert_int_equal(tu_sh("grep -q home-id '%s/Preferences.xml'", home), 0);
    assert_int_equal(
        tu_sh("ls '%s/Plug-in Support/Databases/plexburst-backups/' | grep -q .", home), 0);
    /* and the first sync after it uploads a row changeset */
    j = sync_with(home, 5, NULL, 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "upload"), "kind")),
                        "changeset");
    json_decref(j);
    tu_sh("rm -rf '%s'", dir);
}

/* Home paths /data/media, cloud paths /mnt/s3/media: the cloud's Plex sees only its own paths
 * (the runner checks), the home only its own after the merge. */
static void test_path_map(void **state)
{
    (void)state;
    char home[4200], oracle[4200], map[4300], db[4300], args[16384], out[256];
    setup_paths("run-pathmap");
    snprintf(home, sizeof(home), "%s/home", dir);
    snprintf(oracle, sizeof(oracle), "%s/oracle", dir);
    snprintf(map, sizeof(map), "%s/path_mappings.json", dir);
    snprintf(db, sizeof(db), "%s/" PB_PLEX_DB_REL, home);
    assert_int_equal(
        tu_sh("echo '{\"mappings\": {\"/mnt/s3/media\": \"/data/media\"}}' > '%s'", map), 0);
    bootstrap(home, oracle);
    json_t *j = NULL;
    snprintf(args, sizeof(args),
             "sync --plex-dir '%s' --path-map '%s' --runner \"test \\$(sqlite3 "
             "'{plex_dir}/Plug-in Support/Databases/com.plexapp.plugins.library.db' \\\"select "
             "count(*) from section_locations where root_path like '/mnt/s3/media/%%'\\\") -gt 0 "
             "&& test \\$(sqlite3 '{plex_dir}/Plug-in Support/Databases/"
             "com.plexapp.plugins.library.db' \\\"select count(*) from media_parts where file "
             "like '/data/%%'\\\") -eq 0 && '%s' analyze --dir {plex_dir} --seed 21\"",
             home, map, mk);
    int rc = run_json(&j, args);
    if (rc)
        tu_sh("tail -20 '%s/stderr.log' >&2", dir);
    assert_int_equal(rc, 0);
    assert_true(jint(j, "rows", "inserted") > 0);
    json_decref(j);
    /* no cloud path reached home, the new parts carry home paths */
    assert_int_equal(tu_sh_out(out, sizeof(out),
                               "sqlite3 '%s' \"select (select count(*) from media_parts where file "
                               "like '/mnt/%%') + (select count(*) from section_locations where "
                               "root_path like '/mnt/%%') + (select count(*) from media_streams "
                               "where url like 'file:///mnt/%%') + (select count(*) from "
                               "metadata_items where guid like 'file:///mnt/%%')\"",
                               db),
                     0);
    assert_int_equal(atoi(out), 0);
    assert_int_equal(tu_sh_out(out, sizeof(out),
                               "sqlite3 '%s' \"select count(*) from media_parts where file like "
                               "'/data/media/%%'\"",
                               db),
                     0);
    assert_true(atoi(out) > 0);
    tu_sh("rm -rf '%s'", dir);
}

static void test_failures(void **state)
{
    (void)state;
    char home[4200], oracle[4200], before[4200], args[16384];
    setup_paths("run-fail");
    snprintf(home, sizeof(home), "%s/home", dir);
    snprintf(oracle, sizeof(oracle), "%s/oracle", dir);
    snprintf(before, sizeof(before), "%s/before", dir);
    bootstrap(home, oracle);
    assert_int_equal(mkplex("stream", home, 7), 0);
    assert_int_equal(tu_sh("cp -a '%s' '%s'", home, before), 0);

    /* a failing runner: POST-MORTEM naming the phase and the log, home untouched */
    snprintf(
        args, sizeof(args),
        "cd '%s' && '%s' sync --plex-dir '%s' --runner 'echo analysing; echo boom >&2; exit 3' "
        "2>&1",
        dir, pb, home);
    int rc = tu_sh_out(outbuf, OUTCAP, "%s", args);
    print_message("failing runner: exit %d\n", rc);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(outbuf, "POST-MORTEM"));
    assert_non_null(strstr(outbuf, "(ANALYSIS) failed"));
    assert_non_null(strstr(outbuf, "status 3"));
    assert_non_null(strstr(outbuf, "│ boom"));
    assert_non_null(strstr(outbuf, "home: untouched"));
    const char *lp = strstr(outbuf, "full log: ");
    assert_non_null(lp);
    char logpath[4200];
    sscanf(lp + 10, "%4199s", logpath);
    assert_int_equal(access(logpath, R_OK), 0);
    assert_equal_library(home, before);

    /* the agent dies in the middle of the analysis */
    snprintf(args, sizeof(args),
             "cd '%s' && '%s' sync --plex-dir '%s' --runner 'kill -9 $PPID' "
             "--json 2>/dev/null",
             dir, pb, home);
    rc = tu_sh_out(outbuf, OUTCAP, "%s", args);
    json_error_t je;
    json_t *j = json_loads(outbuf, 0, &je);
    assert_int_equal(rc, 1);
    assert_non_null(j);
    assert_false(json_is_true(json_object_get(j, "ok")));
    print_message("agent killed: %s\n",
                  json_string_value(json_object_get(json_object_get(j, "error"), "message")));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "error"), "phase_name")), "ANALYSIS");
    json_decref(j);
    assert_equal_library(home, before);

    /* --dry-run: the report, nothing applied; then the real run */
    snprintf(args, sizeof(args),
             "sync --plex-dir '%s' --dry-run --runner \"'%s' analyze --dir {plex_dir} --seed 9\"",
             home, mk);
    assert_int_equal(run_json(&j, args), 0);
    assert_true(json_is_true(json_object_get(j, "dry_run")));
    assert_non_null(json_object_get(j, "report"));
    json_decref(j);
    assert_equal_library(home, before);
    assert_int_equal(mkplex("stream", oracle, 7), 0);
    j = sync_with(home, 9, NULL, 0);
    json_decref(j);
    assert_int_equal(mkplex("analyze", oracle, 9), 0);
    assert_equal_library(home, oracle);

    /* Ctrl-C during the analysis: a clean stop (exit 4), the agent and its runner gone, home
     * untouched, and the next sync rolls the run back */
    tu_sh("rm -rf '%s' && cp -a '%s' '%s'", before, home, before);
    char pid[64] = "";
    assert_int_equal(tu_sh("cd '%s' && ( '%s' sync --plex-dir '%s' --runner 'sleep 60' --json "
                           ">int.json 2>int.err & echo $! >int.pid; wait $!; echo $? >int.rc ) "
                           ">/dev/null 2>&1 &",
                           dir, pb, home),
                     0);
    int waited = 0;
    while (tu_sh("test -s '%s/int.pid'", dir) != 0 && waited++ < 100)
        usleep(50000);
    tu_sh_out(pid, sizeof(pid), "cat '%s/int.pid'", dir);
    assert_true(atoi(pid) > 0);
    char cur[4300];
    snprintf(cur, sizeof(cur), "%s.plexburst/sync/current.json", home);
    waited = 0;
    while (tu_sh("grep -q injected '%s' 2>/dev/null", cur) != 0 && waited++ < 300)
        usleep(100000);
    assert_true(waited < 300);
    usleep(300000);
    assert_int_equal(tu_sh("kill -INT %d", atoi(pid)), 0);
    waited = 0;
    while (tu_sh("test -s '%s/int.rc'", dir) != 0 && waited++ < 300)
        usleep(100000);
    assert_true(waited < 300);
    char rcs[16] = "";
    tu_sh_out(rcs, sizeof(rcs), "cat '%s/int.rc'", dir);
    print_message("Ctrl-C during the analysis: exit %d after %.1f s\n", atoi(rcs), waited / 10.0);
    assert_int_equal(atoi(rcs), 4);
    assert_int_equal(tu_sh("grep -q '\"cancelled\\|ECANCELLED\\|cancelled' '%s/int.json'", dir), 0);
    /* no agent or runner of this run survives */
    usleep(500000);
    assert_int_equal(tu_sh("pgrep -f '[a]gent --workdir %s.plexburst' >/dev/null", home), 1);
    assert_int_equal(tu_sh("for p in $(pgrep -x sleep); do readlink /proc/$p/cwd; done | grep -q "
                           "'%s.plexburst/cloud'",
                           home),
                     1);
    assert_equal_library(home, before);

    /* usage errors: exit 2 */
    assert_int_equal(tu_sh("'%s' sync --bogus >/dev/null 2>&1", pb), 2);
    assert_int_equal(tu_sh("'%s' sync --plex-dir '%s' --cloud ftp://x --runner true >/dev/null "
                           "2>&1",
                           pb, home),
                     2);
    tu_sh("rm -rf '%s'", dir);
}

int main(void)
{
    snprintf(pb, sizeof(pb), "%s", tu_build_path("plexburst"));
    snprintf(mk, sizeof(mk), "%s", tu_build_path("mkplex"));
    if (access(pb, X_OK) != 0 || access(mk, X_OK) != 0)
        tu_skip("needs build/plexburst and build/mkplex");
    outbuf = malloc(OUTCAP);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nightly),  cmocka_unit_test(test_bootstrap_carry),
        cmocka_unit_test(test_path_map), cmocka_unit_test(test_kill_every_phase),
        cmocka_unit_test(test_failures),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(outbuf);
    return rc;
}

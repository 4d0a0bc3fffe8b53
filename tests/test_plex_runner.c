/*
 * test_plex_runner.c: the plex runner end to end. Media files uploaded to the loopback S3 server
 * (scripts/s3-test-server) are mounted read-only by the real rclone through FUSE
 * (PLEXBURST_MEDIA=s3://...), scanned through the mount by the stand-in Plex Media Server
 * (scripts/plex-test-server, started by PLEXBURST_CLOUD_PLEX_START) with sections from a
 * plex_libraries.json in the seed scripts' own format, and the results come home with
 * `plexburst sync --cloud local:DIR --runner plex`:
 *   night 1: the section created from the file, the media scanned and analysed, as the oracle;
 *   night 2: a new file, and a runner that stops at the first empty /activities
 *            (PLEXBURST_IDLE_SECONDS=0, the stand-in's gap 10 s): the home differs from the
 *            oracle (the check catches a runner that ends a phase in a gap);
 *   night 3: the real window: every media file of the bucket is an item at home with its deep
 *            analysis (equal to the oracle computed from the uploaded files), autoEmptyTrash set
 *            off before the first scan, no forced refresh, the mount gone afterwards;
 *   night 4: the S3 server killed at the start of the scan (the mount degrades): the run is
 *            refused, the home DB byte for byte unchanged.
 * Skips (77) when node, rclone, FUSE (fusermount, /dev/fuse) or the S3 server cannot run here.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "plexburst/plex.h"
#include "testutil.h"
#include "transfer_util.h"

#define VERSION "1.40.0.7998-c29d4c0c8"

static char dir[4096], work[4200], out[65536];
static int s3port, sshport;
/* where the nights run: --cloud and the settings the home gets for it (the ssh night's) */
static char cloud[4400], cloud_env[16384];
static const char *json_flag = ""; /* " --json": stdout to night.json */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    socklen_t l = sizeof(a);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* rclone as the test's own S3 client (the upload), configured by environment variables. */
static int upload(void)
{
    return tu_sh("env -u AWS_CA_BUNDLE RCLONE_CONFIG_PBT_TYPE=s3 RCLONE_CONFIG_PBT_PROVIDER=Other "
                 "RCLONE_CONFIG_PBT_ACCESS_KEY_ID=PBTESTKEY0001 "
                 "RCLONE_CONFIG_PBT_SECRET_ACCESS_KEY=pbtest-secret-0001 "
                 "RCLONE_CONFIG_PBT_ENDPOINT=http://127.0.0.1:%d RCLONE_CONFIG_PBT_REGION=fr-par "
                 "RCLONE_CONFIG_PBT_FORCE_PATH_STYLE=true rclone --config /dev/null copy "
                 "'%s/up' pbt:plexburst-test/media >&2",
                 s3port, dir);
}

/* One sync with the plex runner; `extra`: more environment; returns its exit status. */
static int night(const char *extra, int gap_ms, const char *on_scan)
{
    char start[4096];
    snprintf(start, sizeof(start),
             "'%s' start --dir {plex_dir} --mkplex '%s' --port {port} --version {version} "
             "--startup-ms 500 --step-ms 100 --gap-ms %d%s%s%s",
             tu_source_path("scripts/plex-test-server"), tu_build_path("mkplex"), gap_ms,
             on_scan ? " --on-scan '" : "", on_scan ? on_scan : "", on_scan ? "'" : "");
    return tu_sh_out(
        out, sizeof(out),
        "cd '%s' && env PLEXBURST_MEDIA=s3://plexburst-test/media "
        "PLEXBURST_MEDIA_S3_ENDPOINT=http://127.0.0.1:%d PLEXBURST_MEDIA_S3_REGION=fr-par "
        "PLEXBURST_MEDIA_S3_ACCESS_KEY=PBTESTKEY0001 "
        "PLEXBURST_MEDIA_S3_SECRET_KEY=pbtest-secret-0001 "
        "PLEXBURST_MEDIA_MOUNT='%s/mnt' PLEXBURST_MEDIA_CACHE_DIR='%s/rclone-cache' "
        "PLEXBURST_MEDIA_RCLONE_FLAGS='--low-level-retries 1 --retries 1 --contimeout 2s "
        "--timeout 5s' PLEXBURST_CLOUD_PLEX_START=\"%s\" "
        "PLEXBURST_CLOUD_PLEX_STOP=\"'%s' stop --dir {plex_dir}\" PLEXBURST_PLEX_VERSION=%s "
        "PLEXBURST_PLEX_LIBRARIES='%s/plex_libraries.json' PLEXBURST_CLOUD_PLEX_PORT=%d "
        "PLEXBURST_PROGRESS_SECONDS=1 %s %s '%s' sync --plex-dir '%s/home' --cloud '%s' "
        "--runner plex%s >'%s/night.out' 2>'%s/night.log'; rc=$?; cat '%s/night.out' >>"
        "'%s/night.log'; cat '%s/night.log'; exit $rc",
        dir, s3port, dir, dir, start, tu_source_path("scripts/plex-test-server"), VERSION, dir,
        free_port(), cloud_env, extra, tu_build_path("plexburst"), dir, cloud, json_flag, dir, dir,
        dir, dir, dir);
}

/* The runner's lines of the last night (on failure). */
static void show_night(void)
{
    tu_sh("grep -E '│|❌|🚨' '%s/night.log' | grep -v '📊' | tail -40 >&2", dir);
}

/* The home's Films section as "title|size|analysed" lines, sorted. */
static void home_listing(char *buf, size_t cap)
{
    assert_int_equal(
        tu_sh_out(buf, cap,
                  "sqlite3 'file:%s/home/" PB_PLEX_DB_REL "?mode=ro' \"SELECT m.title || '|' || "
                  "mp.size || '|' || (mi.media_analysis_version >= 6) FROM metadata_items m JOIN "
                  "library_sections s ON s.id = m.library_section_id JOIN media_items mi ON "
                  "mi.metadata_item_id = m.id JOIN media_parts mp ON mp.media_item_id = mi.id "
                  "WHERE s.name = 'Films' AND m.deleted_at IS NULL ORDER BY 1\"",
                  dir),
        0);
}

/* The oracle: what one night with its analysis must bring home for the uploaded files. */
static void oracle_listing(char *buf, size_t cap)
{
    assert_int_equal(tu_sh_out(buf, cap,
                               "cd '%s/up/Films' && find . -type f -printf '%%f|%%s|1\\n' | sed "
                               "'s/[.][^.|]*|/|/' | LC_ALL=C sort",
                               dir),
                     0);
}

/* --json's "runner" (night.json): the scan and the analysis of Films with the oracle's count. */
static void check_json_runner(const char *oracle)
{
    char path[4300];
    long n = 0;
    for (const char *p = oracle; *p; p++)
        n += *p == '\n';
    snprintf(path, sizeof(path), "%s/night.out", dir);
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je), *ph;
    if (!o)
        print_message("night.out: %s\n", je.text);
    assert_non_null(o);
    json_t *r = json_object_get(o, "runner");
    assert_string_equal(json_string_value(json_object_get(r, "kind")), "plex");
    int scan = 0, analyze = 0;
    size_t i;
    json_array_foreach(json_object_get(r, "phases"), i, ph)
    {
        const char *name = json_string_value(json_object_get(ph, "phase"));
        const char *sec = json_string_value(json_object_get(ph, "section"));
        if (!name || !sec || strcmp(sec, "Films") != 0)
            continue;
        if (!strcmp(name, "scan"))
            scan = json_integer_value(json_object_get(ph, "items")) == n;
        if (!strcmp(name, "analyze"))
            analyze = json_integer_value(json_object_get(ph, "parts_analysed")) == n;
        assert_true(json_is_number(json_object_get(ph, "seconds")));
        assert_true(json_is_integer(json_object_get(ph, "sonic_total")));
    }
    if (!scan || !analyze)
        print_message("runner: %s\n", json_dumps(r, JSON_COMPACT));
    assert_true(scan && analyze);
    json_decref(o);
}

static int mounted(void)
{
    return tu_sh("grep -q ' %s/mnt ' /proc/self/mountinfo", dir) == 0;
}

static void test_plex_runner(void **state)
{
    (void)state;
    char home[65536], want[65536];
    /* the library and the media */
    /* the S3 test server's quirks: no parentheses in folder names (it miscomputes the signature
     * of a listing whose prefix holds them), and a folder must hold a file of its own to be
     * listed in its parent; file names may hold anything */
    assert_int_equal(tu_sh("mkdir -p '%s/up/Films/Alpha 2001' && head -c 300000 /dev/urandom "
                           ">'%s/up/Films/Alpha 2001/Alpha (2001).mkv' && head -c 200000 "
                           "/dev/urandom >'%s/up/Films/Beta (2002).mp4'",
                           dir, dir, dir),
                     0);
    assert_int_equal(upload(), 0);
    assert_int_equal(tu_sh("'%s' init --dir '%s/home' --scale tiny --seed 1 >/dev/null && cd '%s' "
                           "&& '%s' bootstrap --plex-dir '%s/home' --cloud 'local:%s/cloud' "
                           "--runner \"'%s' init --dir {plex_dir} --scale tiny --seed 1\" "
                           ">'%s/boot.log' 2>&1",
                           tu_build_path("mkplex"), dir, dir, tu_build_path("plexburst"), dir, dir,
                           tu_build_path("mkplex"), dir),
                     0);
    /* the seed scripts' own plex_libraries.json, paths as the cloud's Plex sees them */
    char libs[4300];
    snprintf(libs, sizeof(libs), "%s/plex_libraries.json", dir);
    FILE *f = fopen(libs, "w");
    assert_non_null(f);
    fprintf(
        f,
        "[{\"title\": \"Films\", \"type\": \"movie\", \"agent\": \"tv.plex.agents.movie\", "
        "\"scanner\": \"Plex Movie\", \"language\": \"en-US\", \"paths\": [\"%s/mnt/Films\"]}]\n",
        dir);
    fclose(f);

    /* night 1: the section created, the bucket's media scanned and analysed */
    int rc = night("PLEXBURST_ANALYSIS=scan,analyze PLEXBURST_IDLE_SECONDS=2", 600, NULL);
    if (rc)
        show_night();
    assert_int_equal(rc, 0);
    home_listing(home, sizeof(home));
    oracle_listing(want, sizeof(want));
    print_message("night 1: home\n%soracle\n%s", home, want);
    assert_string_equal(home, want);
    assert_false(mounted());
    /* the runner's progress reached the home as bars with elapsed time (not only as lines) */
    assert_non_null(strstr(out, "📊 runner: scan Films: "));
    assert_non_null(strstr(out, "📊 runner: analyze Films ["));
    assert_non_null(strstr(out, "parts analysed, elapsed "));

    /* night 2: a new file; a runner that stops at the first quiet moment (the gap after the
     * scan, before the analysis Plex queues) brings home less than the oracle */
    assert_int_equal(tu_sh("head -c 100000 /dev/urandom >'%s/up/Films/Gamma (2003).avi'", dir), 0);
    assert_int_equal(upload(), 0);
    rc = night("PLEXBURST_ANALYSIS=scan PLEXBURST_IDLE_SECONDS=0", 10000, NULL);
    if (rc)
        show_night();
    assert_int_equal(rc, 0);
    home_listing(home, sizeof(home));
    oracle_listing(want, sizeof(want));
    print_message("night 2 (early stop): home\n%s", home);
    assert_true(strcmp(home, want) != 0); /* the oracle check catches it */
    assert_false(mounted());

    /* night 3: the stability window outlasts the gaps: everything, analysed */
    json_flag = " --json";
    rc = night("PLEXBURST_ANALYSIS=scan,analyze PLEXBURST_IDLE_SECONDS=2", 600, NULL);
    json_flag = "";
    if (rc)
        show_night();
    assert_int_equal(rc, 0);
    check_json_runner(want);
    home_listing(home, sizeof(home));
    print_message("night 3: home\n%soracle\n%s", home, want);
    assert_string_equal(home, want);
    assert_false(mounted());
    /* autoEmptyTrash off before the first scan of each night; never a forced refresh */
    assert_int_equal(
        tu_sh("j=$(find '%s/cloud' -name '*.pts.events' | head -1) && [ -n \"$j\" ] && "
              "! grep -q forced-refresh \"$j\" && awk '/\"what\":\"listening\"/ {ok=0} "
              "/\"id\":\"autoEmptyTrash\",\"value\":false/ {ok=1} "
              "/\"what\":\"started\",\"type\":\"library.update.section\"/ {if (!ok) bad=1} "
              "END {exit bad}' \"$j\"",
              dir),
        0);

    /* night 3b: over ssh://, the runner's settings only in the home's environment (sshd
     * forwards none): they reach the agent in RUN, secrets nowhere on the cloud's disk */
    if (sshport) {
        assert_int_equal(tu_sh("head -c 70000 /dev/urandom >'%s/up/Films/Epsilon (2005).mkv'", dir),
                         0);
        assert_int_equal(upload(), 0);
        snprintf(cloud, sizeof(cloud), "ssh://root@127.0.0.1:%d%s/sshcloud", sshport, dir);
        snprintf(cloud_env, sizeof(cloud_env),
                 "PLEXBURST_SSH_KEY='%s/sshd/client_ed25519' "
                 "PLEXBURST_KNOWN_HOSTS='%s/sshd/known_hosts' PLEXBURST_STORE='%s/sshstore'",
                 dir, dir, dir);
        rc = night("PLEXBURST_ANALYSIS=scan,analyze PLEXBURST_IDLE_SECONDS=2", 600, NULL);
        if (rc)
            show_night();
        assert_int_equal(rc, 0);
        home_listing(home, sizeof(home));
        oracle_listing(want, sizeof(want));
        print_message("night 3b (ssh): home\n%soracle\n%s", home, want);
        assert_string_equal(home, want);
        assert_false(mounted());
        assert_int_equal(tu_sh("ls '%s'/sshcloud/agent/runner-*.libraries.json >/dev/null && "
                               "[ -z \"$(find '%s/sshcloud/agent' -name 'runner-*.libraries.json' "
                               "-perm /077)\" ]",
                               dir, dir),
                         0);
        assert_int_not_equal(tu_sh("grep -rqsF pbtest-secret-0001 '%s/night.log' '%s/sshcloud' "
                                   "'%s/home.plexburst'",
                                   dir, dir, dir),
                             0);
        snprintf(cloud, sizeof(cloud), "local:%s/cloud", dir);
        cloud_env[0] = '\0';
    } else {
        print_message("no loopback sshd here: the ssh:// night is not covered\n");
    }

    /* night 4: the bucket's server dies as the scan starts: refused, home unchanged */
    assert_int_equal(tu_sh("head -c 50000 /dev/urandom >'%s/up/Films/Delta (2004).mkv'", dir), 0);
    assert_int_equal(upload(), 0);
    char before[256], after[256], kill[4400];
    assert_int_equal(tu_sh_out(before, sizeof(before), "md5sum <'%s/home/" PB_PLEX_DB_REL "'", dir),
                     0);
    snprintf(kill, sizeof(kill), "%s stop %s", tu_source_path("scripts/s3-test-server"), work);
    rc = night("PLEXBURST_ANALYSIS=scan,analyze PLEXBURST_IDLE_SECONDS=2 "
               "PLEXBURST_MEDIA_TIMEOUT=15",
               600, kill);
    assert_int_not_equal(rc, 0);
    if (!strstr(out, "the media mount looks degraded"))
        print_message("%s\n", out);
    assert_non_null(strstr(out, "the media mount looks degraded"));
    /* the cloud Plex's and rclone's logs came home with the run log, without secrets */
    assert_non_null(strstr(out, "the last lines of Plex's log"));
    assert_non_null(strstr(out, "Plex: "));
    assert_non_null(strstr(out, "the last lines of rclone's log"));
    assert_int_equal(tu_sh("grep -rqsF pbtest-secret-0001 '%s/night.log' '%s/home.plexburst' "
                           "'%s/cloud/agent'",
                           dir, dir, dir),
                     1);
    assert_int_equal(tu_sh_out(after, sizeof(after), "md5sum <'%s/home/" PB_PLEX_DB_REL "'", dir),
                     0);
    assert_string_equal(before, after);
    assert_false(mounted());
}

int main(void)
{
    if (tu_sh("node -e 'process.exit(0)' >/dev/null 2>&1") != 0)
        tu_skip("node cannot run here (apt-get install nodejs npm)");
    if (tu_sh("command -v rclone && command -v fusermount && command -v sqlite3") != 0)
        tu_skip("rclone, fusermount or sqlite3 is missing (apt-get install rclone fuse3 sqlite3)");
    int fd = open("/dev/fuse", O_RDWR);
    if (fd < 0)
        tu_skip("/dev/fuse cannot be opened here (no FUSE)");
    close(fd);
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("plexrunner"));
    snprintf(work, sizeof(work), "%s/s3", dir);
    char log[4300];
    snprintf(log, sizeof(log), "%s/s3-start.log", dir);
    tu_sh("mkdir -p '%s'", work);
    int rc = xu_s3_start(&s3port, work, log);
    if (rc == 77) {
        char why[2048] = "";
        tu_sh_out(why, sizeof(why), "tail -3 '%s'", log);
        tu_sh("rm -rf '%s'", dir);
        tu_skip(why[0] ? why : "the S3 test server cannot run here");
    }
    if (rc != 0) {
        tu_sh("rm -rf '%s'", dir);
        fail_msg("the S3 test server did not start");
    }
    snprintf(cloud, sizeof(cloud), "local:%s/cloud", dir);
    char sshd[4300], sshlog[4300];
    snprintf(sshd, sizeof(sshd), "%s/sshd", dir);
    snprintf(sshlog, sizeof(sshlog), "%s/sshd-start.log", dir);
    tu_sh("mkdir -p '%s'", sshd);
    if (xu_sshd_start(&sshport, sshd, sshlog) != 0)
        sshport = 0;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_plex_runner)};
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    xu_s3_stop(work);
    if (sshport)
        xu_sshd_stop(sshd);
    tu_sh("fusermount -uz '%s/mnt' 2>/dev/null; for p in $(find '%s/cloud' '%s/sshcloud' -name "
          "'*.pts.pid' 2>/dev/null); do kill $(cat \"$p\") 2>/dev/null; done; true",
          dir, dir, dir);
    tu_sh("rm -rf '%s'", dir);
    return rc;
}

/*
 * test_scaleway_plex.c: issue 12's acceptance over the scaleway cloud. `plexburst bootstrap
 * --cloud scaleway`, then one `plexburst sync --cloud scaleway` with no --runner (so the scaleway
 * cloud's default, the plex runner) against the Scaleway API stand-in
 * (scripts/scaleway-test-server: a real sshd per server on loopback), the stand-in Plex Media
 * Server (scripts/plex-test-server, started by PLEXBURST_CLOUD_PLEX_START) scanning media of the
 * loopback S3 bucket (scripts/s3-test-server) mounted by the real rclone through FUSE. The
 * runner's settings are only in the home's environment: they reach the instance in RUN.
 * Checks: every media file of the bucket is an item of the home's Films section with its
 * analysis (equal to the oracle of test_plex_runner.c, computed from the uploaded files), the
 * mount gone, nothing left on the stand-in (servers, IPs, volumes), the reported cost equal to
 * the stand-in's billing, `--json` with its `runner` (kind plex) and `cloud` (scaleway) objects,
 * the Plex image pre-pulled in the user data for the plex runner (the bootstrap's runner: not).
 * Skips (77) when node, sshd, rclone, FUSE (fusermount, /dev/fuse), sqlite3 or the S3 server
 * cannot run here.
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
#include "scw_testutil.h"
#include "transfer_util.h"

#define VERSION "1.40.0.7998-c29d4c0c8"

static char s3work[4300];
static int s3port;

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

/* rclone as the test's own S3 client (the upload of <dir>/up). */
static int upload(void)
{
    return tu_sh("env -u AWS_CA_BUNDLE RCLONE_CONFIG_PBT_TYPE=s3 RCLONE_CONFIG_PBT_PROVIDER=Other "
                 "RCLONE_CONFIG_PBT_ACCESS_KEY_ID=PBTESTKEY0001 "
                 "RCLONE_CONFIG_PBT_SECRET_ACCESS_KEY=pbtest-secret-0001 "
                 "RCLONE_CONFIG_PBT_ENDPOINT=http://127.0.0.1:%d RCLONE_CONFIG_PBT_REGION=fr-par "
                 "RCLONE_CONFIG_PBT_FORCE_PATH_STYLE=true rclone --config /dev/null copy "
                 "'%s/up' pbt:plexburst-test/media >&2",
                 s3port, scwt_dir);
}

/* The home's Films section as "title|size|analysed" lines, sorted. */
static void home_listing(char *buf, size_t cap)
{
    assert_int_equal(
        tu_sh_out(buf, cap,
                  "sqlite3 'file:%s/" PB_PLEX_DB_REL "?mode=ro' \"SELECT m.title || '|' || "
                  "mp.size || '|' || (mi.media_analysis_version >= 6) FROM metadata_items m JOIN "
                  "library_sections s ON s.id = m.library_section_id JOIN media_items mi ON "
                  "mi.metadata_item_id = m.id JOIN media_parts mp ON mp.media_item_id = mi.id "
                  "WHERE s.name = 'Films' AND m.deleted_at IS NULL ORDER BY 1\"",
                  scwt_home),
        0);
}

/* The oracle: what one night with its analysis must bring home for the uploaded files. */
static void oracle_listing(char *buf, size_t cap)
{
    assert_int_equal(tu_sh_out(buf, cap,
                               "cd '%s/up/Films' && find . -type f -printf '%%f|%%s|1\\n' | sed "
                               "'s/[.][^.|]*|/|/' | LC_ALL=C sort",
                               scwt_dir),
                     0);
}

static int mounted(void)
{
    return tu_sh("grep -q ' %s/mnt ' /proc/self/mountinfo", scwt_dir) == 0;
}

/* `plexburst sync --cloud scaleway --json` with no --runner; the plex runner's settings in the
 * environment only. Its JSON (caller decrefs), the exit status in *rc. */
static json_t *sync_plex(int *rc)
{
    static char start[9000], cmd[1 << 17];
    /* the start names the official image at {version}, as the default does: the user data
     * pre-pulls it (the stand-in runs no runcmd; the step's line says so) */
    snprintf(start, sizeof(start),
             "'%s' start --dir {plex_dir} --mkplex '%s' --port {port} --version {version} "
             "--startup-ms 500 --step-ms 100 --gap-ms 600 && : plexinc/pms-docker:{version}",
             tu_source_path("scripts/plex-test-server"), scwt_mk);
    snprintf(
        cmd, sizeof(cmd),
        "cd '%s' && env PLEXBURST_MEDIA=s3://plexburst-test/media "
        "PLEXBURST_MEDIA_S3_ENDPOINT=http://127.0.0.1:%d PLEXBURST_MEDIA_S3_REGION=fr-par "
        "PLEXBURST_MEDIA_S3_ACCESS_KEY=PBTESTKEY0001 "
        "PLEXBURST_MEDIA_S3_SECRET_KEY=pbtest-secret-0001 "
        "PLEXBURST_MEDIA_MOUNT='%s/mnt' PLEXBURST_MEDIA_CACHE_DIR='%s/rclone-cache' "
        "PLEXBURST_MEDIA_RCLONE_FLAGS='--low-level-retries 1 --retries 1 --contimeout 2s "
        "--timeout 5s' PLEXBURST_CLOUD_PLEX_START=\"%s\" "
        "PLEXBURST_CLOUD_PLEX_STOP=\"'%s' stop --dir {plex_dir}\" PLEXBURST_PLEX_VERSION=%s "
        "PLEXBURST_PLEX_LIBRARIES='%s/plex_libraries.json' PLEXBURST_CLOUD_PLEX_PORT=%d "
        "PLEXBURST_ANALYSIS=scan,analyze PLEXBURST_IDLE_SECONDS=2 PLEXBURST_PROGRESS_SECONDS=1 "
        "'%s' sync --plex-dir '%s' --cloud scaleway --store '%s/store' --json "
        "2>'%s/sync.log'",
        scwt_dir, s3port, scwt_dir, scwt_dir, start, tu_source_path("scripts/plex-test-server"),
        VERSION, scwt_dir, free_port(), scwt_pb, scwt_home, scwt_dir, scwt_dir);
    *rc = tu_sh_out(scwt_out, SCWT_OUTCAP, "%s", cmd);
    json_error_t je;
    return json_loads(scwt_out, 0, &je);
}

static void test_bootstrap_and_plex_sync(void **state)
{
    (void)state;
    int rc;
    char home[65536], want[65536];
    /* the media (the S3 test server lists a folder only when it holds a file of its own) */
    assert_int_equal(tu_sh("mkdir -p '%s/up/Films/Alpha 2001' && head -c 300000 /dev/urandom "
                           ">'%s/up/Films/Alpha 2001/Alpha (2001).mkv' && head -c 200000 "
                           "/dev/urandom >'%s/up/Films/Beta (2002).mp4' && head -c 100000 "
                           "/dev/urandom >'%s/up/Films/Gamma (2003).avi'",
                           scwt_dir, scwt_dir, scwt_dir, scwt_dir),
                     0);
    assert_int_equal(upload(), 0);
    /* the seed scripts' own plex_libraries.json, paths as the cloud's Plex sees them */
    char libs[4300];
    snprintf(libs, sizeof(libs), "%s/plex_libraries.json", scwt_dir);
    FILE *f = fopen(libs, "w");
    assert_non_null(f);
    fprintf(
        f,
        "[{\"title\": \"Films\", \"type\": \"movie\", \"agent\": \"tv.plex.agents.movie\", "
        "\"scanner\": \"Plex Movie\", \"language\": \"en-US\", \"paths\": [\"%s/mnt/Films\"]}]\n",
        scwt_dir);
    fclose(f);

    json_t *j = scwt_run("bootstrap", "init --dir {plex_dir} --scale tiny --seed 1", NULL, &rc);
    if (rc != 0)
        print_message("bootstrap exit %d: %.3000s\n", rc, scwt_out);
    assert_int_equal(rc, 0);
    json_decref(j);
    scwt_assert_nothing_left();

    j = sync_plex(&rc);
    if (rc != 0) {
        print_message("sync exit %d: %.3000s\n", rc, scwt_out);
        tu_sh("grep -E '│|❌|🚨|⚠️' '%s/sync.log' | tail -60 >&2", scwt_dir);
    }
    assert_int_equal(rc, 0);
    assert_non_null(j);
    /* every media file of the bucket an item at home, analysed */
    home_listing(home, sizeof(home));
    oracle_listing(want, sizeof(want));
    print_message("home\n%soracle\n%s", home, want);
    assert_string_equal(home, want);
    assert_false(mounted());
    scwt_assert_nothing_left();
    /* --json: the cloud (scaleway, its cost as billed) and the runner (plex, per phase) */
    scwt_assert_cost(j);
    json_t *r = json_object_get(j, "runner");
    assert_true(json_is_object(r));
    assert_string_equal(json_string_value(json_object_get(r, "kind")), "plex");
    assert_true(json_array_size(json_object_get(r, "phases")) > 0);
    json_decref(j);
    /* the plex runner's run pre-pulled the Plex image in the user data, the bootstrap's not */
    char n[64];
    assert_int_equal(tu_sh_out(n, sizeof(n),
                               "grep -rl 'Scaleway step .*user data' '%s/home.plexburst' | wc -l; "
                               "grep -rl 'Scaleway step .*the Plex image' '%s/home.plexburst' | "
                               "wc -l",
                               scwt_dir, scwt_dir),
                     0);
    if (strcmp(n, "2\n1\n") != 0)
        tu_sh("grep -r 'Scaleway step' '%s/home.plexburst' >&2", scwt_dir);
    assert_string_equal(n, "2\n1\n");
    /* the secrets went nowhere on disk nor in the log */
    assert_int_not_equal(tu_sh("grep -rqsF pbtest-secret-0001 '%s/sync.log' '%s/cloud' "
                               "'%s/home.plexburst'",
                               scwt_dir, scwt_dir, scwt_dir),
                         0);
}

static int setup(void **state)
{
    int rc = scwt_setup(state);
    if (rc)
        return rc;
    char log[4300];
    snprintf(s3work, sizeof(s3work), "%s/s3", scwt_dir);
    snprintf(log, sizeof(log), "%s/s3-start.log", scwt_dir);
    tu_sh("mkdir -p '%s'", s3work);
    rc = xu_s3_start(&s3port, s3work, log);
    if (rc == 77) {
        char why[2048] = "";
        tu_sh_out(why, sizeof(why), "tail -3 '%s'", log);
        scwt_teardown(state);
        tu_skip(why[0] ? why : "the S3 test server cannot run here");
    }
    if (rc != 0) {
        print_message("the S3 test server did not start\n");
        s3work[0] = '\0';
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    if (s3work[0])
        xu_s3_stop(s3work);
    tu_sh("fusermount -uz '%s/mnt' 2>/dev/null; for p in $(find '%s' -name '*.pts.pid' "
          "2>/dev/null); do kill $(cat \"$p\") 2>/dev/null; done; true",
          scwt_dir, scwt_dir);
    return scwt_teardown(state);
}

int main(void)
{
    if (tu_sh("command -v rclone && command -v fusermount && command -v sqlite3") != 0)
        tu_skip("rclone, fusermount or sqlite3 is missing (apt-get install rclone fuse3 sqlite3)");
    int fd = open("/dev/fuse", O_RDWR);
    if (fd < 0)
        tu_skip("/dev/fuse cannot be opened here (no FUSE)");
    close(fd);
    scwt_main_init();
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_bootstrap_and_plex_sync)};
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    free(scwt_out);
    return rc;
}

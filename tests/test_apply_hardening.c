/*
 * test_apply_hardening.c: the apply against a careless user and a hostile environment, over
 * mkplex libraries (a base, a cloud copy mutated by `mkplex analyze`, a home copy mutated by
 * `mkplex stream`, the bundle between them):
 *   - a full disk while staging (a small tmpfs, root only): every stage file and created
 *     directory is removed, and the report says what is true;
 *   - the main and blobs changesets swapped, a header with zero target ids: refused;
 *   - a --base-db that matches the bundle but not the home (no baseline recorded): refused;
 *   - --plex-stop-cmd hanging: ended with its process group after the timeout, rolled back;
 *   - SIGINT during the apply (CLI): clean stop, rolled back, one line, exit 4;
 *   - a stale plexmediaserver.pid naming a live process that is not Plex: not a running Plex;
 *   - a sync holding the data dir's run lock: a standalone apply is refused (busy);
 *   - `apply --json` on a failure: exit_code and error.name.
 * Skipped (exit 77) when mkplex is not built; the disk-full case is skipped alone without root.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle_int.h"
#include "plexburst/apply.h"
#include "plexburst/export.h"
#include "plexburst/plex.h"
#include "plexburst/sqldiff.h"
#include "testutil.h"

#define P 4200

/* snprintf that fails the test on truncation (and keeps -Wformat-truncation quiet). */
static void pathf(char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void pathf(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap)
        fail_msg("path too long: %.80s...", out);
}

static struct {
    char root[512], mkplex[1024], pb[1024];
    char base[1024], cloud[1024], home0[1024], bundle[1024];
    char base_db[1100], base_blobs[1100];
} g;

static void home_copy(char *out, size_t cap, const char *tag)
{
    pathf(out, cap, "%s/%s", g.root, tag);
    assert_int_equal(tu_sh("rm -rf '%s' '%s.plexburst' && cp -a '%s' '%s'", out, out, g.home0, out),
                     0);
}

static void opts(pb_apply_options *o, const char *dir, const char *bundle)
{
    pb_apply_options_init(o);
    o->plex_dir = dir;
    o->bundle = bundle;
    o->base_db = g.base_db;
    o->base_blobs = g.base_blobs;
    o->engine = PB_PLEX_ENGINE_IN_PROCESS;
}

static int apply_with(const pb_apply_options *o, pb_error *e, pb_apply_result *keep)
{
    pb_apply_result r;
    int rc = pb_apply(&r, o, e);
    if (keep)
        *keep = r;
    else
        pb_apply_result_dispose(&r);
    return rc;
}

/* The logical checksum of the home's main DB and a listing of its tree (names, file sizes; not
 * SQLite's own -wal/-shm files). */
static void home_state(const char *dir, char *out, size_t cap)
{
    char db[P];
    pb_checksum c;
    pb_error e = PB_ERROR_INIT;
    pathf(db, sizeof(db), "%s/%s", dir, PB_PLEX_DB_REL);
    assert_int_equal(pb_sqldiff_checksum(&c, db, NULL, &e), 0);
    char h[33];
    for (int i = 0; i < 16; i++)
        sprintf(h + 2 * i, "%02x", c.digest[i]);
    char tree[64] = "";
    tu_sh_out(tree, sizeof(tree),
              "cd '%s' && find . \\( -type f -printf '%%P %%s\\n' \\) -o -printf '%%P %%y\\n' | "
              "grep -v -e '-wal [0-9]*$' -e '-shm [0-9]*$' | sort | md5sum | cut -c1-32",
              dir);
    pathf(out, cap, "%s %s", h, tree);
}

static int stage_leftovers(const char *dir)
{
    char out[64] = "";
    tu_sh_out(out, sizeof(out), "find '%s' -name '.pb-stage-*' | wc -l", dir);
    return atoi(out);
}

static int group_setup(void **state)
{
    (void)state;
    pathf(g.mkplex, sizeof(g.mkplex), "%s", tu_build_path("mkplex"));
    pathf(g.pb, sizeof(g.pb), "%s", tu_build_path("plexburst"));
    if (access(g.mkplex, X_OK) != 0)
        return 0;
    pathf(g.root, sizeof(g.root), "%s", tu_tmpdir("hardening"));
    pathf(g.base, sizeof(g.base), "%s/base", g.root);
    pathf(g.cloud, sizeof(g.cloud), "%s/cloud", g.root);
    pathf(g.home0, sizeof(g.home0), "%s/home0", g.root);
    pathf(g.bundle, sizeof(g.bundle), "%s/local.bundle", g.root);
    pathf(g.base_db, sizeof(g.base_db), "%s/%s", g.base, PB_PLEX_DB_REL);
    pathf(g.base_blobs, sizeof(g.base_blobs), "%s/%s", g.base, PB_PLEX_BLOBS_REL);
    if (tu_sh("'%s' init --dir '%s' --scale tiny --seed 1 >/dev/null", g.mkplex, g.base) != 0 ||
        tu_sh("cp -a '%s' '%s' && cp -a '%s' '%s'", g.base, g.cloud, g.base, g.home0) != 0 ||
        tu_sh("'%s' analyze --dir '%s' --seed 7 >/dev/null", g.mkplex, g.cloud) != 0 ||
        tu_sh("'%s' stream --dir '%s' --seed 4 >/dev/null", g.mkplex, g.home0) != 0)
        return -1;
    pb_export_options o;
    pb_export_stats st;
    pb_error e = PB_ERROR_INIT;
    pb_export_options_init(&o);
    o.cloud_dir = g.cloud;
    o.base_db = g.base_db;
    o.base_blobs = g.base_blobs;
    o.work_dir = g.root;
    o.zstd_level = 3;
    o.home_dir = g.home0;
    if (pb_export_build(&st, g.bundle, &o, &e) != 0) {
        fprintf(stderr, "export: %s\n", e.msg);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (g.root[0] && !getenv("PB_KEEP_TMP")) {
        tu_sh("umount '%s/full' 2>/dev/null", g.root);
        tu_sh("rm -rf '%s'", g.root);
    }
    return 0;
}

static void need_fixture(void)
{
    if (!g.root[0])
        skip();
}

/* ---- changesets swapped, zero ids ---- */

static int out_fd(void *payload, const void *data, size_t n, pb_error *err)
{
    return pb_bundle__fd_out(payload, data, n, err);
}

/* Copies the fixture bundle to `out`: 's' swaps the changeset records' types, 'z' zeroes the
 * target ids of the header. */
static void rewrite_bundle(const char *out, int how)
{
    pb_error e = PB_ERROR_INIT;
    pb_bundle_reader *r = NULL;
    pb_bundle_writer *w = NULL;
    const pb_bundle_rec *rec;
    int in = open(g.bundle, O_RDONLY), fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644), rc;
    assert_true(in >= 0 && fd >= 0);
    assert_int_equal(pb_bundle__reader_new(&r, pb_bundle__fd_in, &in, NULL, &e), 0);
    pb_bundle_header h = *pb_bundle__reader_header(r);
    if (how == 'z') {
        memset(h.target_main, 0, 16);
        memset(h.target_blobs, 0, 16);
    }
    assert_int_equal(pb_bundle__writer_new(&w, &h, 3, out_fd, &fd, &e), 0);
    static char buf[1 << 16];
    int swapped = 0;
    while ((rc = pb_bundle__reader_next(r, &rec, &e)) == 1) {
        pb_bundle_rec c = *rec;
        if (how == 's' && (c.type == PB_REC_MAIN_CS || c.type == PB_REC_BLOBS_CS)) {
            c.type = c.type == PB_REC_MAIN_CS ? PB_REC_BLOBS_CS : PB_REC_MAIN_CS;
            swapped++;
        }
        assert_int_equal(pb_bundle__writer_begin(w, &c, &e), 0);
        if (c.type == PB_REC_LINK)
            continue;
        size_t got;
        do {
            assert_int_equal(pb_bundle__reader_read(r, buf, sizeof(buf), &got, &e), 0);
            if (got)
                assert_int_equal(pb_bundle__writer_data(w, buf, got, &e), 0);
        } while (got);
        assert_int_equal(pb_bundle__writer_end(w, &e), 0);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(pb_bundle__writer_finish(w, &e), 0);
    if (how == 's')
        assert_true(swapped > 0);
    pb_bundle__writer_free(w);
    pb_bundle__reader_free(r);
    close(in);
    close(fd);
}

static void test_swapped_and_zero_ids(void **state)
{
    (void)state;
    need_fixture();
    char d[P], b[P], pre[128], post[128];
    pb_apply_options o;
    pb_error e = PB_ERROR_INIT;
    home_copy(d, sizeof(d), "swap");
    home_state(d, pre, sizeof(pre));
    const int kinds[] = {'s', 'z'};
    const char *needles[] = {"swapped", "zero"};
    for (int i = 0; i < 2; i++) {
        pathf(b, sizeof(b), "%s/rewritten-%c.bundle", g.root, kinds[i]);
        rewrite_bundle(b, kinds[i]);
        opts(&o, d, b);
        pb_error_clear(&e);
        int rc = apply_with(&o, &e, NULL);
        print_message("%c: %d %s\n", kinds[i], rc, e.msg);
        assert_int_equal(rc, PB_ECORRUPT);
        assert_non_null(strstr(e.msg, needles[i]));
    }
    home_state(d, post, sizeof(post));
    assert_string_equal(pre, post);
}

/* ---- a --base-db of another library ---- */

static void test_wrong_base_db(void **state)
{
    (void)state;
    need_fixture();
    char other[P], ocloud[P], odb[P], oblobs[P], ob[P], d[P], pre[128], post[128];
    pb_error e = PB_ERROR_INIT;
    /* another library and a bundle computed against it: --base-db matches the bundle */
    pathf(other, sizeof(other), "%s/other", g.root);
    pathf(ocloud, sizeof(ocloud), "%s/other-cloud", g.root);
    pathf(ob, sizeof(ob), "%s/other.bundle", g.root);
    pathf(odb, sizeof(odb), "%s/%s", other, PB_PLEX_DB_REL);
    pathf(oblobs, sizeof(oblobs), "%s/%s", other, PB_PLEX_BLOBS_REL);
    assert_int_equal(tu_sh("'%s' init --dir '%s' --scale tiny --seed 99 >/dev/null && cp -a '%s' "
                           "'%s' && '%s' analyze --dir '%s' --seed 7 >/dev/null",
                           g.mkplex, other, other, ocloud, g.mkplex, ocloud),
                     0);
    pb_export_options xo;
    pb_export_stats st;
    pb_export_options_init(&xo);
    xo.cloud_dir = ocloud;
    xo.base_db = odb;
    xo.base_blobs = oblobs;
    xo.work_dir = g.root;
    xo.zstd_level = 3;
    xo.home_dir = other;
    assert_int_equal(pb_export_build(&st, ob, &xo, &e), 0);
    home_copy(d, sizeof(d), "wrongbase");
    home_state(d, pre, sizeof(pre));
    pb_apply_options o;
    opts(&o, d, ob);
    o.base_db = odb;
    o.base_blobs = oblobs;
    int rc = apply_with(&o, &e, NULL);
    print_message("wrong --base-db: %d %s\n", rc, e.msg);
    assert_int_equal(rc, PB_EREFUSED);
    assert_non_null(strstr(e.msg, "does not derive from --base-db"));
    home_state(d, post, sizeof(post));
    assert_string_equal(pre, post);
    /* the right one still applies */
    opts(&o, d, g.bundle);
    pb_error_clear(&e);
    assert_int_equal(apply_with(&o, &e, NULL), 0);
}

/* ---- stop command timeout ---- */

static void test_stop_cmd_timeout(void **state)
{
    (void)state;
    need_fixture();
    char d[P], cmd[P], pidf[P], pre[128], post[128], pid[32] = "";
    pb_error e = PB_ERROR_INIT;
    home_copy(d, sizeof(d), "timeout");
    home_state(d, pre, sizeof(pre));
    pathf(pidf, sizeof(pidf), "%s/hang.pid", g.root);
    /* a stop command that hangs, with a child of its own */
    pathf(cmd, sizeof(cmd), "sleep 120 & echo $! >'%s'; wait", pidf);
    pb_apply_options o;
    opts(&o, d, g.bundle);
    o.plex_stop_cmd = cmd;
    o.plex_cmd_timeout = 1;
    int rc = apply_with(&o, &e, NULL);
    print_message("hanging stop command: %d %s\n", rc, e.msg);
    assert_int_equal(rc, PB_ERROR);
    assert_non_null(strstr(e.msg, "did not end within 1 s"));
    tu_sh_out(pid, sizeof(pid), "cat '%s'", pidf);
    assert_true(atoi(pid) > 0);
    /* the command's child is gone (or a zombie waiting for init) */
    char st[8] = "";
    tu_sh_out(st, sizeof(st), "awk '{print $3}' /proc/%d/stat 2>/dev/null", atoi(pid));
    assert_true(st[0] == '\0' || st[0] == 'Z');
    home_state(d, post, sizeof(post));
    assert_string_equal(pre, post);
    assert_int_equal(stage_leftovers(d), 0);
}

/* ---- SIGINT ---- */

static void test_sigint(void **state)
{
    (void)state;
    need_fixture();
    char d[P], pre[128], post[128], out[4096] = "";
    home_copy(d, sizeof(d), "sigint");
    home_state(d, pre, sizeof(pre));
    /* the stop command interrupts the apply (its parent) and waits to be stopped with it */
    int rc =
        tu_sh_out(out, sizeof(out),
                  "cd '%s' && '%s' apply --plex-dir '%s' '%s' --base-db '%s' --base-blobs '%s' "
                  "--in-process --plex-stop-cmd 'kill -INT $PPID; sleep 60' 2>'%s/sigint.err'",
                  g.root, g.pb, d, g.bundle, g.base_db, g.base_blobs, g.root);
    print_message("SIGINT: exit %d\n%s", rc, out);
    assert_int_equal(rc, 4);
    assert_non_null(strstr(out, "apply stopped by a signal"));
    assert_non_null(strstr(out, "rolled back, nothing was changed"));
    assert_null(strstr(out, "POST-MORTEM"));
    home_state(d, post, sizeof(post));
    assert_string_equal(pre, post);
    assert_int_equal(stage_leftovers(d), 0);
    /* the lock is released: the apply runs now */
    pb_apply_options o;
    pb_error e = PB_ERROR_INIT;
    opts(&o, d, g.bundle);
    assert_int_equal(apply_with(&o, &e, NULL), 0);
}

/* ---- a stale pid file ---- */

static void test_stale_pid(void **state)
{
    (void)state;
    need_fixture();
    char d[P], pidf[P];
    pb_error e = PB_ERROR_INIT;
    home_copy(d, sizeof(d), "stalepid");
    pathf(pidf, sizeof(pidf), "%s/plexmediaserver.pid", d);
    FILE *f = fopen(pidf, "w");
    assert_non_null(f);
    fprintf(f, "%d\n", (int)getpid()); /* a live process, but not Plex: a reused pid */
    fclose(f);
    pb_apply_options o;
    opts(&o, d, g.bundle);
    int rc = apply_with(&o, &e, NULL);
    print_message("stale pid file: %d %s\n", rc, e.msg);
    assert_int_equal(rc, 0);
}

/* ---- a sync running ---- */

static void test_sync_lock(void **state)
{
    (void)state;
    need_fixture();
    char d[P], lock[P], pre[128], post[128];
    pb_error e = PB_ERROR_INIT;
    home_copy(d, sizeof(d), "synclock");
    home_state(d, pre, sizeof(pre));
    pathf(lock, sizeof(lock), "%s.plexburst/sync", d);
    assert_int_equal(tu_sh("mkdir -p '%s'", lock), 0);
    pathf(lock, sizeof(lock), "%s.plexburst/sync/run.lock", d);
    int fd = open(lock, O_RDWR | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0); /* as a running sync holds it */
    pb_apply_options o;
    opts(&o, d, g.bundle);
    int rc = apply_with(&o, &e, NULL);
    print_message("sync running: %d %s\n", rc, e.msg);
    assert_int_equal(rc, PB_EBUSY);
    assert_non_null(strstr(e.msg, "sync is running"));
    home_state(d, post, sizeof(post));
    assert_string_equal(pre, post);
    close(fd);
    pb_error_clear(&e);
    assert_int_equal(apply_with(&o, &e, NULL), 0);
}

/* ---- --json on a failure ---- */

static void test_json_failure(void **state)
{
    (void)state;
    need_fixture();
    char d[P], out[1 << 16] = "";
    home_copy(d, sizeof(d), "json");
    /* no baseline recorded, no --base-db: refused (exit 3) */
    int rc = tu_sh_out(out, sizeof(out), "'%s' apply --plex-dir '%s' '%s' --json 2>/dev/null", g.pb,
                       d, g.bundle);
    assert_int_equal(rc, 3);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "exit_code")), 3);
    json_t *err = json_object_get(j, "error");
    assert_true(json_is_object(err));
    assert_string_equal(json_string_value(json_object_get(err, "name")), "refused by a guard");
    assert_int_equal(json_integer_value(json_object_get(err, "code")), PB_EREFUSED);
    json_decref(j);
}

/* ---- a full disk while staging ---- */

static void test_disk_full(void **state)
{
    (void)state;
    need_fixture();
    char full[P], d[P], out[8192] = "", pre[128], post[128], dirs[64] = "", sz[64] = "";
    int staged_failures = 0;
    if (geteuid() != 0) {
        print_message("skipped: mounting a small tmpfs needs root\n");
        skip();
    }
    pathf(full, sizeof(full), "%s/full", g.root);
    pathf(d, sizeof(d), "%s/plex", full);
    tu_sh_out(sz, sizeof(sz), "du -sk '%s' | cut -f1", g.home0);
    if (tu_sh("mkdir -p '%s' && mount -t tmpfs -o size=%ldk tmpfs '%s' 2>/dev/null", full,
              atol(sz) + 4096, full) != 0) {
        print_message("skipped: cannot mount a tmpfs here\n");
        skip();
    }
    tu_sh_out(dirs, sizeof(dirs), "find '%s' -type d | wc -l", g.home0);
    /* the data dir and its state dir on the full tmpfs, with a little room left: the space
     * runs out at different steps of the staging (the journal's own writes included) */
    for (int free_kb = 200; free_kb <= 400; free_kb += 20) {
        assert_int_equal(
            tu_sh("rm -rf '%s'/* '%s'/.pb* && cp -a '%s' '%s'", full, full, g.home0, d), 0);
        if (free_kb == 200)
            home_state(d, pre, sizeof(pre));
        assert_int_equal(tu_sh("fallocate -l $(( ($(df --output=avail -k '%s' | tail -1) - %d) * "
                               "1024 )) '%s/filler'",
                               full, free_kb, full),
                         0);
        int rc = tu_sh_out(out, sizeof(out),
                           "cd '%s' && '%s' apply --plex-dir '%s' '%s' --base-db '%s' --base-blobs "
                           "'%s' --in-process 2>&1",
                           g.root, g.pb, d, g.bundle, g.base_db, g.base_blobs);
        assert_int_not_equal(rc, 0);
        if (strstr(out, "PHASE 4 (STAGE FILES) failed"))
            staged_failures++;
        if (stage_leftovers(d) != 0 || !strstr(out, "nothing was changed"))
            fail_msg("%d KiB free: stage files left, or the report says otherwise:\n%s", free_kb,
                     out);
        char dirs2[64] = "";
        tu_sh_out(dirs2, sizeof(dirs2), "find '%s' -type d | wc -l", d);
        assert_string_equal(dirs, dirs2);
        unlink(strcat(strcpy(out, full), "/filler"));
        home_state(d, post, sizeof(post));
        assert_string_equal(pre, post);
    }
    print_message("a full disk while staging: %d of 11 runs failed in STAGE FILES\n",
                  staged_failures);
    assert_true(staged_failures > 0);
    tu_sh("umount '%s'", full);
}

int main(void)
{
    if (access(tu_build_path("mkplex"), X_OK) != 0)
        tu_skip("mkplex is not built");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swapped_and_zero_ids),
        cmocka_unit_test(test_wrong_base_db),
        cmocka_unit_test(test_stop_cmd_timeout),
        cmocka_unit_test(test_sigint),
        cmocka_unit_test(test_stale_pid),
        cmocka_unit_test(test_sync_lock),
        cmocka_unit_test(test_json_failure),
        cmocka_unit_test(test_disk_full),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

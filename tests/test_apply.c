/*
 * test_apply.c: integration tests of export + the journaled apply (engine/bundle/export_*.c,
 * engine/apply/) over mkplex libraries: a base library, a cloud copy mutated by `mkplex analyze`, a
 * home copy mutated by `mkplex stream`.
 *   - round trip: the three export routes (local home dir; LIST -> ANSWER -> bundle; home
 *     manifest + ANSWER) give the same bundle content; apply makes every file the cloud wrote
 *     equal at home, keeps home-only files (the uploaded poster), preserves hard links, merges
 *     the rows (cloud items present, home user state intact); a second apply is refused;
 *   - crash safety: SIGKILL at every journal step (PB_TEST_CRASH_AT), inside the merge
 *     (PB_TEST_CRASH_AFTER), during recovery itself, and at random instants; after recovery the
 *     tree (fingerprint root) and the DB pair (logical checksums) are both pre- or both
 *     post-apply, and the journal is empty; the same online (probes);
 *   - hostile bundles against a real data dir: traversal, symlinked component, truncation at
 *     every record boundary and inside records, flipped bytes, oversized lengths, wrong
 *     baseline, a home file changed under us, a running Plex: clear error, nothing changed;
 *   - the CLI: export, sigs, apply --dry-run (the same diff report as `plexburst diff`) / --json,
 *     stop/start commands, exit 3 on a guard;
 *   - the rows written through Plex's engine (the stock sqlite3 shell with plexcompat standing
 *     in, behind a wrapper script that can die on cue): the same DB content as in-process, the
 *     report and the JSON say which writer; auto-detection ($PLEXBURST_PLEX_SQLITE); the engine
 *     killed inside the transaction or right after its COMMIT, failing, or exiting 0 without
 *     committing; the apply killed at each step around the engine, and killed by the engine
 *     itself while the orphaned engine goes on to commit (recovery must wait for it: the engine
 *     holds the apply lock): all recover to all-or-nothing.
 * Skipped (exit 77) when mkplex is not built; the engine tests need /usr/bin/sqlite3.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "bundle_int.h"
#include "hex.h"
#include "journal.h"
#include "solid.h"
#include "plexburst/apply.h"
#include "plexburst/bundle.h"
#include "plexburst/export.h"
#include "plexburst/compat.h"
#include "plexburst/fingerprint.h"
#include "plexburst/plex.h"
#include "plexburst/sqldiff.h"
#include "testutil.h"

#define P 4200 /* local paths, derived from the ones below */
#define Q 1024 /* the fixture's paths */

typedef struct tstate {
    uint8_t tree[16];
    uint8_t db[16], blobs[16];
} tstate;

#define STAND_IN "/usr/bin/sqlite3"

static struct {
    char root[512], mkplex[Q], plexburst[Q];
    char base[Q], cloud[Q], home0[Q], bundle[Q];
    char base_db[Q], base_blobs[Q];
    char engine[Q], compat[Q]; /* the stand-in engine wrapper (sqlite3-*) and plexcompat */
    int use_engine;            /* apply_opts: write through g.engine (else in-process) */
    int swap; /* apply_opts: merge into a copy before the stop (else in place: the tests of the
                 merge in place, which a swap falls back to, and g.post, the oracle of a swap) */
    tstate pre, post;
    double apply_ms;
    int nfp;
} g;

/* Export options of the shared cloud run: base DBs, work dir, zstd level 3 (the caller adds the
 * home side). */
static void export_options(pb_export_options *o)
{
    pb_export_options_init(o);
    o->cloud_dir = g.cloud;
    o->base_db = g.base_db;
    o->base_blobs = g.base_blobs;
    o->work_dir = g.root;
    o->zstd_level = 3;
}

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

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void state_of(tstate *s, const char *dir)
{
    pb_fingerprint_options fo = PB_FINGERPRINT_OPTIONS_INIT;
    pb_fingerprint_result fr;
    pb_error e = PB_ERROR_INIT;
    char sd[P], db[P], blobs[P];
    pathf(sd, sizeof(sd), "%s/fp-%d", g.root, g.nfp++);
    fo.state_dir = sd;
    mkdir(sd, 0700);
    if (pb_fingerprint_run(&fr, dir, &fo, &e) != 0)
        fail_msg("fingerprint %s: %s", dir, e.msg);
    memcpy(s->tree, fr.root, 16);
    tu_sh("rm -rf '%s'", sd);
    pathf(db, sizeof(db), "%s/%s", dir, PB_PLEX_DB_REL);
    pathf(blobs, sizeof(blobs), "%s/%s", dir, PB_PLEX_BLOBS_REL);
    pb_checksum c;
    if (pb_sqldiff_checksum(&c, db, NULL, &e) != 0)
        fail_msg("checksum %s: %s", db, e.msg);
    memcpy(s->db, c.digest, 16);
    if (pb_sqldiff_checksum(&c, blobs, NULL, &e) != 0)
        fail_msg("checksum %s: %s", blobs, e.msg);
    memcpy(s->blobs, c.digest, 16);
}

static int same_tree(const tstate *a, const tstate *b)
{
    return memcmp(a->tree, b->tree, 16) == 0;
}

static int same_db(const tstate *a, const tstate *b)
{
    return memcmp(a->db, b->db, 16) == 0 && memcmp(a->blobs, b->blobs, 16) == 0;
}

/* 'A' pre, 'B' post, or fails: tree and DB must agree. */
static int outcome(const char *dir, const char *what)
{
    tstate s;
    state_of(&s, dir);
    int tree_pre = same_tree(&s, &g.pre), tree_post = same_tree(&s, &g.post);
    int db_pre = same_db(&s, &g.pre), db_post = same_db(&s, &g.post);
    if (tree_pre && db_pre)
        return 'A';
    if (tree_post && db_post)
        return 'B';
    fail_msg("%s: inconsistent state: tree %s, DB %s", what,
             tree_pre    ? "pre"
             : tree_post ? "post"
                         : "neither",
             db_pre    ? "pre"
             : db_post ? "post"
                       : "neither");
    return 0;
}

static void copy_home(const char *dst)
{
    assert_int_equal(tu_sh("rm -rf '%s' '%s.plexburst' && cp -a '%s' '%s'", dst, dst, g.home0, dst),
                     0);
}

static void apply_opts(pb_apply_options *o, const char *dir, const char *bundle)
{
    pb_apply_options_init(o);
    o->plex_dir = dir;
    o->bundle = bundle;
    o->base_db = g.base_db;
    o->base_blobs = g.base_blobs;
    o->engine = g.use_engine ? PB_PLEX_ENGINE_PATH : PB_PLEX_ENGINE_IN_PROCESS;
    o->plex_sqlite = g.use_engine ? g.engine : NULL;
    o->compat_extension = g.use_engine ? g.compat : NULL;
    o->merge_in_place = !g.swap;
}

static int do_apply(const char *dir, const char *bundle, pb_apply_result *r, pb_error *e)
{
    pb_apply_options o;
    apply_opts(&o, dir, bundle);
    int rc = pb_apply(r, &o, e);
    pb_apply_result_dispose(r);
    return rc;
}

/* The journal holds no run: a second recovery does nothing. */
static void journal_empty(const char *dir)
{
    pb_recover_result rr;
    pb_error e = PB_ERROR_INIT;
    assert_int_equal(pb_apply_recover_ex(&rr, dir, NULL, &e), 0);
    assert_int_equal(rr.action, PB_RECOVER_NONE);
}

static int group_setup(void **state)
{
    (void)state;
    if (access("/dev/shm", W_OK) == 0 && !getenv("PB_TEST_DISK"))
        setenv("TMPDIR", "/dev/shm", 1); /* fsync-heavy: keep the suite fast */
    pathf(g.mkplex, sizeof(g.mkplex), "%s", tu_build_path("mkplex"));
    pathf(g.plexburst, sizeof(g.plexburst), "%s", tu_build_path("plexburst"));
    if (access(g.mkplex, X_OK) != 0)
        return 0;
    pathf(g.root, sizeof(g.root), "%s", tu_tmpdir("apply"));
    pathf(g.base, sizeof(g.base), "%s/base", g.root);
    pathf(g.cloud, sizeof(g.cloud), "%s/cloud", g.root);
    pathf(g.home0, sizeof(g.home0), "%s/home0", g.root);
    pathf(g.bundle, sizeof(g.bundle), "%s/local.bundle", g.root);
    pathf(g.base_db, sizeof(g.base_db), "%s/%s", g.base, PB_PLEX_DB_REL);
    pathf(g.base_blobs, sizeof(g.base_blobs), "%s/%s", g.base, PB_PLEX_BLOBS_REL);
    if (tu_sh("'%s' init --dir '%s' --scale tiny --seed 7 >/dev/null", g.mkplex, g.base) != 0 ||
        tu_sh("cp -a '%s' '%s' && cp -a '%s' '%s'", g.base, g.cloud, g.base, g.home0) != 0 ||
        tu_sh("'%s' analyze --dir '%s' --seed 8 >/dev/null", g.mkplex, g.cloud) != 0 ||
        tu_sh("'%s' stream --dir '%s' --seed 9 >/dev/null", g.mkplex, g.home0) != 0)
        return -1;
    pb_export_options o;
    pb_export_stats st;
    pb_error e = PB_ERROR_INIT;
    export_options(&o);
    o.home_dir = g.home0;
    o.whole_below = 1024; /* deltas for the regenerated files of a tiny library */
    if (pb_export_build(&st, g.bundle, &o, &e) != 0) {
        fprintf(stderr, "export: %s\n", e.msg);
        return -1;
    }
    state_of(&g.pre, g.home0);
    char post[P];
    pathf(post, sizeof(post), "%s/post", g.root);
    copy_home(post);
    pb_apply_result r;
    double t0 = now_ms();
    if (do_apply(post, g.bundle, &r, &e) != 0) {
        fprintf(stderr, "apply: %s\n", e.msg);
        return -1;
    }
    g.apply_ms = now_ms() - t0;
    state_of(&g.post, post);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (g.root[0] && !getenv("PB_KEEP_TMP"))
        tu_sh("rm -rf '%s' '%s'/*.plexburst", g.root, g.root);
    return 0;
}

static void need_fixture(void)
{
    if (!g.root[0])
        skip();
}

/* ---------------------------------------------------------------------------------------- */
/* round trip                                                                                */

typedef struct cmp_ctx {
    const char *home;
    int bad, only_home, links, checked;
} cmp_ctx;

static int cloud_vs_home(pb_cmp_kind kind, const pb_manifest_entry *home,
                         const pb_manifest_entry *other, int subtree, void *payload)
{
    cmp_ctx *c = payload;
    (void)subtree;
    if (kind == PB_CMP_ONLY_HOME && home->type == PB_ENTRY_FILE)
        c->only_home++;
    if (!other || other->type != PB_ENTRY_FILE)
        return 0;
    if (kind == PB_CMP_NEW ||
        (kind == PB_CMP_CHANGED && (!home || memcmp(home->hash, other->hash, 16) != 0))) {
        fprintf(stderr, "cloud file %s: %s at home\n", other->path,
                kind == PB_CMP_NEW ? "missing" : "different");
        c->bad++;
    }
    if (kind != PB_CMP_ONLY_HOME && other->link_leader) {
        char a[P], b[P];
        struct stat sa, sb;
        pathf(a, sizeof(a), "%s/%s", c->home, other->path);
        pathf(b, sizeof(b), "%s/%s", c->home, other->link_leader);
        if (stat(a, &sa) != 0 || stat(b, &sb) != 0 || sa.st_ino != sb.st_ino) {
            fprintf(stderr, "hard link %s -> %s not preserved\n", other->path, other->link_leader);
            c->bad++;
        }
        c->links++;
    }
    c->checked++;
    return 0;
}

static void manifest_of(const char *dir, const char *out)
{
    pb_fingerprint_options fo = PB_FINGERPRINT_OPTIONS_INIT;
    pb_fingerprint_result fr;
    pb_error e = PB_ERROR_INIT;
    char sd[P];
    pathf(sd, sizeof(sd), "%s/fp-%d", g.root, g.nfp++);
    mkdir(sd, 0700);
    fo.state_dir = sd;
    fo.manifest_path = out;
    if (pb_fingerprint_run(&fr, dir, &fo, &e) != 0)
        fail_msg("fingerprint %s: %s", dir, e.msg);
}

static int64_t sql_count(const char *db, const char *attach, const char *sql)
{
    sqlite3 *d = NULL;
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    char *a = sqlite3_mprintf("ATTACH %Q AS other", attach);
    assert_int_equal(sqlite3_open_v2(db, &d, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(d, a, NULL, NULL, NULL), SQLITE_OK);
    if (sqlite3_prepare_v2(d, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    else
        fail_msg("%s: %s", sql, sqlite3_errmsg(d));
    sqlite3_finalize(st);
    sqlite3_close(d);
    sqlite3_free(a);
    return n;
}

static void test_roundtrip(void **state)
{
    (void)state;
    need_fixture();
    char list[P], answer[P], b2[P], b3[P], hm[P], rt[P], cm[P], rtm[P], sd[P];
    pb_error e = PB_ERROR_INIT;
    pb_export_stats st;
    pathf(list, sizeof(list), "%s/cloud.list", g.root);
    pathf(answer, sizeof(answer), "%s/home.answer", g.root);
    pathf(b2, sizeof(b2), "%s/protocol.bundle", g.root);
    pathf(b3, sizeof(b3), "%s/manifest.bundle", g.root);
    pathf(hm, sizeof(hm), "%s/home.manifest", g.root);
    pathf(sd, sizeof(sd), "%s/cloud-state", g.root);
    mkdir(sd, 0700);

    /* (a) the cloud lists, (b) the home answers, (c) the cloud builds */
    assert_int_equal(pb_export_list(&st, g.cloud, sd, list, &e), 0);
    assert_true(st.listed > 100);
    pb_answer_options ao = {PB_ANSWER_OPTIONS_VERSION, NULL, sd, 1024};
    pathf(sd, sizeof(sd), "%s/home-state", g.root);
    mkdir(sd, 0700);
    ao.state_dir = sd;
    assert_int_equal(pb_export_answer(&st, g.home0, list, answer, &ao, &e), 0);
    assert_true(st.answers > 0);
    assert_true(st.answers < 100); /* only what the home lacks or holds otherwise */
    pb_export_options o;
    export_options(&o);
    o.list = list;
    o.answer = answer;
    pb_export_stats s2, s3;
    assert_int_equal(pb_export_build(&s2, b2, &o, &e), 0);
    /* the manifest route: verdicts from the home manifest, signatures from the answer */
    manifest_of(g.home0, hm);
    o.answer = answer;
    o.home_manifest = hm;
    assert_int_equal(pb_export_build(&s3, b3, &o, &e), 0);
    /* the wanted route: only the paths that differ from the home manifest are exchanged */
    char wanted[P], wans[P], b4[P];
    pathf(wanted, sizeof(wanted), "%s/wanted.txt", g.root);
    pathf(wans, sizeof(wans), "%s/wanted.answer", g.root);
    pathf(b4, sizeof(b4), "%s/wanted.bundle", g.root);
    pathf(sd, sizeof(sd), "%s/cloud-state", g.root);
    assert_int_equal(pb_export_wanted(&st, g.cloud, sd, hm, wanted, &e), 0);
    assert_int_equal(st.answers, s2.files_new + s2.files_delta + s2.files_link);
    assert_int_equal(pb_export_answer(&st, g.home0, wanted, wans, &ao, &e), 0);
    o.answer = wans;
    pb_export_stats s4;
    assert_int_equal(pb_export_build(&s4, b4, &o, &e), 0);
    pb_bundle_info i1, i2, i3, i4;
    assert_int_equal(pb_bundle_verify(&i4, b4, NULL, &e), 0);
    assert_int_equal(pb_bundle_verify(&i1, g.bundle, NULL, &e), 0);
    assert_int_equal(pb_bundle_verify(&i2, b2, NULL, &e), 0);
    assert_int_equal(pb_bundle_verify(&i3, b3, NULL, &e), 0);
    assert_int_equal(i1.files_new, i2.files_new);
    assert_int_equal(i1.files_delta, i2.files_delta);
    assert_int_equal(i1.files_link, i2.files_link);
    assert_int_equal(i1.files_new, i3.files_new);
    assert_int_equal(i1.files_delta, i3.files_delta);
    assert_int_equal(i1.files_link, i3.files_link);
    assert_int_equal(i1.files_new, i4.files_new);
    assert_int_equal(i1.files_delta, i4.files_delta);
    assert_int_equal(i1.files_link, i4.files_link);
    assert_true(i1.files_new > 0);
    assert_true(i1.files_link > 0);
    assert_true(i1.has_cs_main);
    assert_memory_equal(i1.base_main, i2.base_main, 16);
    printf("bundle: %llu bytes, %llu new, %llu deltas, %llu links, changesets %llu + %llu "
           "bytes, content %llu bytes\n",
           (unsigned long long)i1.bytes, (unsigned long long)i1.files_new,
           (unsigned long long)i1.files_delta, (unsigned long long)i1.files_link,
           (unsigned long long)i1.cs_main_bytes, (unsigned long long)i1.cs_blobs_bytes,
           (unsigned long long)i1.content_bytes);

    /* apply the protocol-route bundle */
    pathf(rt, sizeof(rt), "%s/rt", g.root);
    copy_home(rt);
    pb_apply_result *r = calloc(1, sizeof(*r));
    pb_apply_options ap;
    apply_opts(&ap, rt, b2);
    if (pb_apply(r, &ap, &e) != 0)
        fail_msg("apply: %s", e.msg);
    assert_true(r->ok);
    assert_true(r->rows.inserted > 0);
    assert_int_equal(r->files_new + r->files_patched + r->files_linked + r->files_unchanged,
                     i2.files_new + i2.files_delta + i2.files_link);
    pb_apply_result_dispose(r);
    free(r);
    assert_int_equal(outcome(rt, "round trip"), 'B');
    journal_empty(rt);

    /* every cloud file is at home, hard links kept, home-only files kept */
    pathf(cm, sizeof(cm), "%s/cloud.manifest", g.root);
    pathf(rtm, sizeof(rtm), "%s/rt.manifest", g.root);
    manifest_of(g.cloud, cm);
    manifest_of(rt, rtm);
    pb_manifest *mh = NULL, *mc = NULL;
    cmp_ctx c = {rt, 0, 0, 0, 0};
    assert_int_equal(pb_manifest_open(&mh, rtm, &e), 0);
    assert_int_equal(pb_manifest_open(&mc, cm, &e), 0);
    assert_int_equal(pb_manifest_compare(mh, mc, cloud_vs_home, &c, NULL, &e), 0);
    pb_manifest_free(mh);
    pb_manifest_free(mc);
    assert_int_equal(c.bad, 0);
    /* hard links: every follower of the cloud shares its leader's inode at home */
    assert_int_equal(pb_manifest_open(&mc, cm, &e), 0);
    const pb_manifest_entry *me;
    while (pb_manifest_next(mc, &me, &e) == 1) {
        if (me->type != PB_ENTRY_FILE || !me->link_leader)
            continue;
        char a[P], bb[P];
        struct stat sa, sb;
        pathf(a, sizeof(a), "%s/%s", rt, me->path);
        pathf(bb, sizeof(bb), "%s/%s", rt, me->link_leader);
        if (stat(a, &sa) != 0 || stat(bb, &sb) != 0 || sa.st_ino != sb.st_ino)
            fail_msg("hard link %s -> %s not preserved", me->path, me->link_leader);
        c.links++;
    }
    pb_manifest_free(mc);
    assert_true(c.links > 0);
    assert_true(c.only_home >= 1); /* the poster uploaded at home */
    assert_int_equal(
        tu_sh("test -n \"$(find '%s/Metadata' -path '*Uploads/posters/*' -type f)\"", rt), 0);

    /* rows: the cloud's new items are there, the home's user state is intact */
    char live[P], cloud_db[P], home_db[P];
    pathf(live, sizeof(live), "%s/%s", rt, PB_PLEX_DB_REL);
    pathf(cloud_db, sizeof(cloud_db), "%s/%s", g.cloud, PB_PLEX_DB_REL);
    pathf(home_db, sizeof(home_db), "%s/%s", g.home0, PB_PLEX_DB_REL);
    int64_t new_items = sql_count(cloud_db, g.base_db,
                                  "SELECT count(*) FROM metadata_items WHERE guid NOT IN "
                                  "(SELECT guid FROM other.metadata_items)");
    assert_true(new_items > 0);
    char sql[1024];
    pathf(sql, sizeof(sql),
          "SELECT count(*) FROM other.metadata_items WHERE guid NOT IN (SELECT guid FROM "
          "main.metadata_items) AND guid NOT IN (SELECT guid FROM metadata_items)");
    /* cloud items missing at home after the merge */
    int64_t missing = sql_count(live, cloud_db,
                                "SELECT count(*) FROM other.metadata_items WHERE guid NOT IN "
                                "(SELECT guid FROM main.metadata_items)");
    assert_int_equal(missing, 0);
    const char *user[] = {"metadata_item_views", "metadata_item_settings"};
    for (int i = 0; i < 2; i++) {
        pathf(sql, sizeof(sql),
              "SELECT count(*) FROM (SELECT * FROM other.%s EXCEPT SELECT * FROM main.%s)", user[i],
              user[i]);
        assert_int_equal(sql_count(live, home_db, sql), 0);
        pathf(sql, sizeof(sql), "SELECT count(*) FROM other.%s", user[i]);
        assert_true(sql_count(live, home_db, sql) > 0);
    }

    /* applying it again is refused: the home's baseline moved on */
    r = calloc(1, sizeof(*r));
    pb_error_clear(&e);
    apply_opts(&ap, rt, b2);
    ap.base_db = NULL;
    assert_int_equal(pb_apply(r, &ap, &e), PB_EREFUSED);
    assert_non_null(strstr(e.msg, "wrong baseline"));
    pb_apply_result_dispose(r);
    free(r);
    assert_int_equal(outcome(rt, "second apply"), 'B');
}

/* One reading at home: a bundle verified once (pb_bundle_verified_make) is applied without a
 * second verify pass, against base ids the caller vouches for (no recorded baseline, no
 * --base-db); a token of another data dir and a wrong base are refused. The solid form written
 * alongside the bundle decodes back to a bundle, its checksum checked while it is read. */
static void test_verified_handoff(void **state)
{
    (void)state;
    need_fixture();
    char dir[P], other[P], csm[P], csb[P], solid[P], back[P], hex[33];
    pb_error e = PB_ERROR_INIT;
    pathf(dir, sizeof(dir), "%s/handoff", g.root);
    pathf(other, sizeof(other), "%s/handoff-other", g.root);
    pathf(csm, sizeof(csm), "%s/handoff.main.cs", g.root);
    pathf(csb, sizeof(csb), "%s/handoff.blobs.cs", g.root);
    copy_home(dir);
    copy_home(other);

    pb_bundle_verified v;
    assert_int_equal(pb_bundle_verified_make(&v, g.bundle, dir, csm, csb, NULL, &e), 0);
    assert_non_null(v.plex_dir);
    assert_int_equal(v.size, v.info.bytes);
    pb_baseline base, wrong;
    assert_int_equal(pb_baseline_compute(&base, g.base_db, g.base_blobs, &e), 0);
    wrong = base;
    wrong.main[0] ^= 1;

    pb_apply_options o;
    pb_apply_result *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    apply_opts(&o, other, NULL);
    o.base_db = o.base_blobs = NULL;
    o.verified = &v;
    o.base = &base;
    assert_int_equal(pb_apply(r, &o, &e), PB_EINVALID); /* verified against another dir */
    pb_apply_result_dispose(r);
    o.plex_dir = dir;
    o.base = &wrong;
    e = (pb_error)PB_ERROR_INIT;
    assert_int_equal(pb_apply(r, &o, &e), PB_EREFUSED);
    assert_non_null(strstr(e.msg, "wrong baseline"));
    pb_apply_result_dispose(r);
    o.base = &base;
    e = (pb_error)PB_ERROR_INIT;
    int rc = pb_apply(r, &o, &e);
    if (rc != 0)
        fail_msg("apply: %s", e.msg);
    assert_true(r->ok);
    assert_true(r->files_new + r->files_patched + r->files_linked > 0);
    assert_int_equal(r->bytes_bundle, v.info.bytes);
    pb_apply_result_dispose(r);
    free(r);
    journal_empty(dir);
    pb_baseline rec;
    char sd[P];
    pathf(sd, sizeof(sd), "%s.plexburst", dir);
    assert_int_equal(pb_baseline_read(&rec, sd, &e), 0);
    assert_memory_equal(rec.main, v.info.target_main, 16);
    /* the changesets are the caller's: still there */
    if (v.cs_main)
        assert_int_equal(access(v.cs_main, F_OK), 0);
    pb_bundle_verified_dispose(&v);
    pb_bundle_verified_dispose(NULL);
    unlink(csm);
    unlink(csb);

    /* the solid form, written while the bundle is built */
    pb_export_options eo;
    pb_export_stats st;
    pathf(solid, sizeof(solid), "%s/handoff.solid", g.root);
    pathf(back, sizeof(back), "%s/handoff.back.bundle", g.root);
    export_options(&eo);
    eo.home_dir = g.home0;
    eo.solid = solid;
    eo.solid_level = 3;
    char b2[P];
    pathf(b2, sizeof(b2), "%s/handoff.bundle", g.root);
    assert_int_equal(pb_export_build(&st, b2, &eo, &e), 0);
    struct stat sst;
    assert_int_equal(stat(solid, &sst), 0);
    assert_int_equal(st.solid_bytes, (uint64_t)sst.st_size);
    pb_hex_encode(hex, st.solid_xxh3, 16);
    assert_int_equal(pb_solid_decode(solid, hex, back, 3, NULL, NULL, &e), 0);
    pb_bundle_info i1, i2, i3;
    assert_int_equal(pb_bundle_verify(&i1, b2, NULL, &e), 0);
    assert_int_equal(pb_bundle_verify(&i2, back, NULL, &e), 0);
    assert_int_equal(i1.records, i2.records);
    assert_int_equal(i1.content_bytes, i2.content_bytes);
    assert_memory_equal(i1.target_main, i2.target_main, 16);
    /* decoding and verifying in one pass gives what a separate verify pass gives */
    pb_bundle_verify_options vo;
    pb_bundle_verify_options_init(&vo);
    vo.extract_main = csm;
    vo.extract_blobs = csb;
    vo.plex_dir = dir;
    assert_int_equal(pb_solid_decode(solid, hex, back, 3, &vo, &i3, &e), 0);
    assert_int_equal(i3.records, i2.records);
    assert_int_equal(i3.bytes, i2.bytes);
    assert_memory_equal(i3.checksum, i2.checksum, 16);
    assert_int_equal(i3.has_cs_main, access(csm, F_OK) == 0);
    unlink(csm);
    unlink(csb);
    hex[0] = hex[0] == '0' ? '1' : '0';
    e = (pb_error)PB_ERROR_INIT;
    assert_int_equal(pb_solid_decode(solid, hex, back, 3, &vo, &i3, &e), PB_ECORRUPT);
    assert_non_null(strstr(e.msg, "checksum"));
    assert_int_equal(access(back, F_OK), -1);
    unlink(solid);
    unlink(b2);
}

static void test_dry_run(void **state)
{
    (void)state;
    need_fixture();
    char d[P];
    pathf(d, sizeof(d), "%s/dry", g.root);
    copy_home(d);
    pb_apply_result *r = calloc(1, sizeof(*r));
    pb_apply_options o;
    pb_error e = PB_ERROR_INIT;
    apply_opts(&o, d, g.bundle);
    o.dry_run = 1;
    assert_int_equal(pb_apply(r, &o, &e), 0);
    assert_true(r->ok);
    assert_true(r->have_report);
    assert_true(r->report.cs_inserted > 0);
    assert_int_equal(r->phase, PB_APPLY_GUARDS);
    pb_apply_result_dispose(r);
    free(r);
    assert_int_equal(outcome(d, "dry run"), 'A');
    journal_empty(d);
}

/* ---------------------------------------------------------------------------------------- */
/* crash safety                                                                              */

/* Runs pb_apply in a child with `env` set (NAME=VALUE or NULL); kill_after_ms >= 0 kills it
 * from here. Returns 1 when the child was killed, 0 when it exited. */
static int child_apply(const char *dir, const char *bundle, const char *env, double kill_after_ms,
                       int online)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (env) {
            char name[64];
            const char *eq = strchr(env, '=');
            pathf(name, sizeof(name), "%.*s", (int)(eq - env), env);
            setenv(name, eq + 1, 1);
        }
        pb_apply_result *r = calloc(1, sizeof(*r));
        pb_apply_options o;
        pb_error e = PB_ERROR_INIT;
        apply_opts(&o, dir, bundle);
        o.online = online;
        int rc = pb_apply(r, &o, &e);
        if (rc != 0)
            fprintf(stderr, "child apply (%s): %s\n", env ? env : "no crash point", e.msg);
        _exit(rc == 0 ? 0 : 1);
    }
    if (kill_after_ms >= 0) {
        struct timespec ts = {(time_t)(kill_after_ms / 1000),
                              (long)((kill_after_ms - 1000 * (long)(kill_after_ms / 1000)) * 1e6)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        return 1;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    return 0;
}

/* Recovery in a child with a crash point of its own; 1 when killed. */
static int child_recover(const char *dir, const char *env)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("PB_TEST_CRASH_AT", env, 1);
        pb_error e = PB_ERROR_INIT;
        _exit(pb_apply_recover(dir, NULL, &e) == 0 ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

/* Waits for every process the test started and for all their descendants: main() makes the
 * test the subreaper of its descendants, so an orphan (the stand-in engine's pipeline after its
 * apply was killed, which holds the apply lock as Plex's engine does) becomes its child and is
 * waited for here. Returns when none is left, that is when no process can hold the lock. */
static void reap_descendants(void)
{
    int status;
    while (waitpid(-1, &status, 0) > 0 || errno == EINTR)
        ;
}

static void recover_and_check(const char *dir, int expect, const char *what)
{
    pb_recover_result rr;
    pb_error e = PB_ERROR_INIT;
    /* the killed apply's last processes gone, a recovery that finds the lock held has a bug */
    reap_descendants();
    int rc = pb_apply_recover_ex(&rr, dir, NULL, &e);
    if (rc != 0)
        fail_msg("%s: recovery failed: %s", what, e.msg);
    int got = outcome(dir, what);
    if (expect && got != expect)
        fail_msg("%s: recovered to %s, expected %s (%s)", what, got == 'A' ? "pre" : "post",
                 expect == 'A' ? "pre" : "post", rr.detail);
    journal_empty(dir);
    /* the live pair is back in WAL mode */
    const char *rel[2] = {PB_PLEX_DB_REL, PB_PLEX_BLOBS_REL};
    for (int i = 0; i < 2; i++) {
        char db[P], mode[32] = "";
        sqlite3 *d = NULL;
        sqlite3_stmt *st = NULL;
        pathf(db, sizeof(db), "%s/%s", dir, rel[i]);
        assert_int_equal(sqlite3_open_v2(db, &d, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        if (sqlite3_prepare_v2(d, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            pathf(mode, sizeof(mode), "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        sqlite3_close(d);
        if (strcmp(mode, "wal") != 0)
            fail_msg("%s: %s left in journal_mode %s", what, rel[i], mode);
    }
    char out[256] = "";
    tu_sh_out(out, sizeof(out), "find '%s' -name '.pb-stage-*' | head -3", dir);
    if (out[0])
        fail_msg("%s: stage files left: %s", what, out);
}

static void test_crash_points(void **state)
{
    (void)state;
    need_fixture();
    static const struct {
        const char *env;
        int expect;   /* 'A' pre, 'B' post */
        int required; /* the point must be reached */
    } points[] = {
        {"PB_TEST_CRASH_AT=begin", 'A', 1},
        {"PB_TEST_CRASH_AT=dir:1", 'A', 1},
        {"PB_TEST_CRASH_AT=dir:4", 'A', 1},
        {"PB_TEST_CRASH_AT=stagedir:1", 'A', 0},
        {"PB_TEST_CRASH_AT=stage:1", 'A', 1},
        {"PB_TEST_CRASH_AT=stage:9", 'A', 1},
        {"PB_TEST_CRASH_AT=stage:20", 'A', 1},
        {"PB_TEST_CRASH_AT=staged", 'A', 1},
        /* the new files at new paths, renamed into place before Plex is stopped */
        {"PB_TEST_CRASH_AT=preinstall-begin", 'A', 1},
        {"PB_TEST_CRASH_AT=preinstall:1", 'A', 1},
        {"PB_TEST_CRASH_AT=preinstall:15", 'A', 1},
        {"PB_TEST_CRASH_AT=preinstalled", 'A', 1},
        {"PB_TEST_CRASH_AT=merging", 'A', 1},
        {"PB_TEST_CRASH_AT=modes", 'A', 1},
        {"PB_TEST_CRASH_AFTER=1", 'A', 1},
        {"PB_TEST_CRASH_AFTER=40", 'A', 1},
        {"PB_TEST_CRASH_AT=commit", 'A', 1},
        {"PB_TEST_CRASH_AT=committed", 'B', 1},
        {"PB_TEST_CRASH_AT=merged", 'B', 1},
        {"PB_TEST_CRASH_AT=wal", 'B', 1},
        /* every staged file was renamed before the stop (new paths, and replaced files kept as
         * backup links): nothing is left to install, the backups go at the end */
        {"PB_TEST_CRASH_AT=install:1", 'B', 0},
        {"PB_TEST_CRASH_AT=installed", 'B', 1},
        {"PB_TEST_CRASH_AT=finish", 'B', 1},
    };
    char d[P];
    pathf(d, sizeof(d), "%s/crash", g.root);
    for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++) {
        copy_home(d);
        int killed = child_apply(d, g.bundle, points[i].env, -1, 0);
        if (!killed && points[i].required)
            fail_msg("%s: the crash point was not reached", points[i].env);
        recover_and_check(d, killed ? points[i].expect : 'B', points[i].env);
    }
    /* a crash during recovery is recovered by the next one */
    copy_home(d);
    assert_true(child_apply(d, g.bundle, "PB_TEST_CRASH_AT=stage:12", -1, 0));
    assert_true(child_recover(d, "recover-unlink:3"));
    recover_and_check(d, 'A', "crash while rolling back");
    /* ... also when the files installed before the stop are being removed */
    copy_home(d);
    assert_true(child_apply(d, g.bundle, "PB_TEST_CRASH_AT=preinstalled", -1, 0));
    assert_true(child_recover(d, "recover-unlink:3"));
    recover_and_check(d, 'A', "crash while removing the pre-installed files");
    copy_home(d);
    assert_true(child_apply(d, g.bundle, "PB_TEST_CRASH_AT=merged", -1, 0));
    assert_true(child_recover(d, "finish"));
    recover_and_check(d, 'B', "crash while rolling forward");
    /* and the next command touching the data dir recovers: here the CLI's fingerprint */
    copy_home(d);
    assert_true(child_apply(d, g.bundle, "PB_TEST_CRASH_AT=installed", -1, 0));
    char out[2048] = "";
    tu_sh_out(out, sizeof(out), "'%s' fingerprint --plex-dir '%s' 2>&1", g.plexburst, d);
    assert_non_null(strstr(out, "recovered an interrupted apply"));
    assert_int_equal(outcome(d, "CLI recovery"), 'B');
    journal_empty(d);
}

static void test_random_kills(void **state)
{
    (void)state;
    need_fixture();
    char d[P];
    int outcomes[2] = {0, 0};
    unsigned seed = (unsigned)time(NULL);
    const char *s = getenv("PB_TEST_SEED");
    if (s)
        seed = (unsigned)strtoul(s, NULL, 10);
    srand(seed);
    pathf(d, sizeof(d), "%s/random", g.root);
    /* the duration of an apply in a child, the window of the kills */
    copy_home(d);
    double t0 = now_ms();
    assert_int_equal(child_apply(d, g.bundle, NULL, -1, 0), 0);
    double window = now_ms() - t0;
    assert_int_equal(outcome(d, "child apply"), 'B');
    for (int i = 0; i < 10; i++) {
        copy_home(d);
        double at = window * 1.1 * (double)rand() / RAND_MAX;
        char what[64];
        pathf(what, sizeof(what), "kill at %.1f ms (seed %u)", at, seed);
        child_apply(d, g.bundle, NULL, at, 0);
        reap_descendants();
        pb_recover_result rr;
        pb_error e = PB_ERROR_INIT;
        if (pb_apply_recover_ex(&rr, d, NULL, &e) != 0)
            fail_msg("%s: recovery failed: %s", what, e.msg);
        outcomes[outcome(d, what) == 'B']++;
        journal_empty(d);
    }
    printf("random kills (seed %u, apply %.0f ms): %d pre, %d post\n", seed, window, outcomes[0],
           outcomes[1]);
}

static void test_online(void **state)
{
    (void)state;
    need_fixture();
    char d[P], marker[P];
    pathf(d, sizeof(d), "%s/online", g.root);
    /* a clean online apply reaches the same state */
    copy_home(d);
    assert_int_equal(child_apply(d, g.bundle, NULL, -1, 1), 0);
    assert_int_equal(outcome(d, "online apply"), 'B');
    /* killed in the commit hook before the probes: nothing committed */
    copy_home(d);
    assert_true(child_apply(d, g.bundle, "PB_TEST_CRASH_AT=commit", -1, 1));
    recover_and_check(d, 'A', "online, commit hook");
    /* killed after the probes were written, before SQLite committed: the probes say pre */
    copy_home(d);
    assert_true(child_apply(d, g.bundle, "PB_TEST_CRASH_AT=probes", -1, 1));
    recover_and_check(d, 'A', "online, probes written");
    /* killed after the commit, the marker removed (main committed, marker not): probes say
     * post */
    copy_home(d);
    assert_true(child_apply(d, g.bundle, "PB_TEST_CRASH_AT=committed", -1, 1));
    pathf(marker, sizeof(marker), "%s.plexburst/%s", d, PB_MARKER_NAME);
    sqlite3 *m = NULL;
    assert_int_equal(sqlite3_open(marker, &m), SQLITE_OK);
    assert_int_equal(sqlite3_exec(m, "DELETE FROM " PB_MARKER_TABLE, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(m);
    recover_and_check(d, 'B', "online, marker lost, probes");
}

/* ---------------------------------------------------------------------------------------- */
/* hostile bundles against a data dir                                                        */

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static uint8_t *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(*n + 1);
    assert_int_equal(fread(p, 1, *n, f), *n);
    fclose(f);
    return p;
}

static int out_fd(void *payload, const void *data, size_t n, pb_error *err)
{
    return pb_bundle__fd_out(payload, data, n, err);
}

/* A one-record bundle (valid checksums, the real baseline ids) with a file at `path`. */
static void crafted_bundle(const char *out, const char *path)
{
    pb_bundle_info info;
    pb_error e = PB_ERROR_INIT;
    pb_bundle_header h;
    pb_bundle_rec *r = calloc(1, sizeof(*r));
    pb_bundle_writer *w = NULL;
    assert_int_equal(pb_bundle_verify(&info, g.bundle, NULL, &e), 0);
    memset(&h, 0, sizeof(h));
    h.version = 1;
    h.flags = info.flags;
    memcpy(h.base_main, info.base_main, 16);
    memcpy(h.base_blobs, info.base_blobs, 16);
    memcpy(h.target_main, info.target_main, 16);
    memcpy(h.target_blobs, info.target_blobs, 16);
    pathf(h.creator, sizeof(h.creator), "hostile");
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(pb_bundle__writer_new(&w, &h, 3, out_fd, &fd, &e), 0);
    r->type = PB_REC_NEW;
    pathf(r->path, sizeof(r->path), "%s", path);
    r->path_len = strlen(path);
    r->mode = 0644;
    r->size = 4;
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits("pwn!", 4));
    memcpy(r->hash, c.digest, 16);
    assert_int_equal(pb_bundle__writer_begin(w, r, &e), 0);
    assert_int_equal(pb_bundle__writer_data(w, "pwn!", 4, &e), 0);
    assert_int_equal(pb_bundle__writer_end(w, &e), 0);
    assert_int_equal(pb_bundle__writer_finish(w, &e), 0);
    pb_bundle__writer_free(w);
    close(fd);
    free(r);
}

static void expect_fail(const char *dir, const char *bundle, int code, const char *needle,
                        const char *what)
{
    pb_apply_result r;
    pb_error e = PB_ERROR_INIT;
    int rc = do_apply(dir, bundle, &r, &e);
    if (rc != code || (needle && !strstr(e.msg, needle)) || strchr(e.msg, '\n'))
        fail_msg("%s: got %d '%s', expected %d with '%s'", what, rc, e.msg, code,
                 needle ? needle : "");
}

static void test_hostile(void **state)
{
    (void)state;
    need_fixture();
    char d[P], b[P], outside[P], listing[256];
    pathf(d, sizeof(d), "%s/hostile", g.root);
    pathf(b, sizeof(b), "%s/hostile.bundle", g.root);
    pathf(outside, sizeof(outside), "%s/outside", g.root);
    copy_home(d);
    mkdir(outside, 0755);

    /* traversal and absolute paths, a path outside the synced part */
    crafted_bundle(b, "Metadata/../../outside/pwn");
    expect_fail(d, b, PB_EUNSAFE, "record 0 at offset", "traversal");
    crafted_bundle(b, "/tmp/pwn");
    expect_fail(d, b, PB_EUNSAFE, "absolute path", "absolute");
    crafted_bundle(b, "Preferences.xml");
    expect_fail(d, b, PB_EUNSAFE, "outside the synced part", "Preferences.xml");

    /* an existing symlinked directory in D pointing outside, and a path through it */
    assert_int_equal(tu_sh("ln -s '%s' '%s/Metadata/Movies/evil'", outside, d), 0);
    tstate before, after;
    state_of(&before, d);
    crafted_bundle(b, "Metadata/Movies/evil/pwn.jpg");
    expect_fail(d, b, PB_EUNSAFE, "symlink", "symlinked component");
    state_of(&after, d);
    assert_true(same_tree(&before, &after) && same_db(&before, &after));
    listing[0] = '\0';
    tu_sh_out(listing, sizeof(listing), "ls -A '%s'", outside);
    assert_string_equal(listing, "");
    assert_int_equal(tu_sh("rm '%s/Metadata/Movies/evil'", d), 0);

    /* truncation at every record boundary and inside records */
    size_t n;
    uint8_t *bytes = read_file(g.bundle, &n);
    {
        int fd = open(g.bundle, O_RDONLY);
        pb_bundle_reader *rd = NULL;
        const pb_bundle_rec *rec;
        pb_error e = PB_ERROR_INIT;
        uint64_t offs[4096];
        int no = 0;
        assert_int_equal(pb_bundle__reader_new(&rd, pb_bundle__fd_in, &fd, NULL, &e), 0);
        while (pb_bundle__reader_next(rd, &rec, &e) == 1 && no < 4000)
            offs[no++] = rec->offset;
        offs[no++] = n - PB_BUNDLE_TRAILER_SIZE; /* the trailer */
        pb_bundle__reader_free(rd);
        close(fd);
        int cases = 0;
        for (int i = 0; i < no; i++) {
            uint64_t cuts[3] = {offs[i], offs[i] + 9, offs[i] + 70};
            for (int k = 0; k < 3; k++) {
                if (cuts[k] >= n)
                    continue;
                write_file(b, bytes, cuts[k]);
                char what[64];
                pathf(what, sizeof(what), "truncated at %llu", (unsigned long long)cuts[k]);
                expect_fail(d, b, PB_ECORRUPT, "bundle: ", what);
                cases++;
            }
        }
        printf("truncations: %d cases over %d records\n", cases, no - 1);
    }
    /* flipped bytes */
    for (int i = 0; i < 16; i++) {
        size_t at = (size_t)((double)n * i / 16.0) + 3;
        bytes[at] ^= 0x40;
        write_file(b, bytes, n);
        bytes[at] ^= 0x40;
        char what[64];
        pathf(what, sizeof(what), "byte %zu flipped", at);
        pb_apply_result r;
        pb_error e = PB_ERROR_INIT;
        int rc = do_apply(d, b, &r, &e);
        if (rc != PB_ECORRUPT && rc != PB_EUNSAFE)
            fail_msg("%s: got %d '%s'", what, rc, e.msg);
    }
    /* oversized lengths: a declared size of 2^50, a 4 GiB chunk */
    {
        size_t first = PB_BUNDLE_HEADER_FIXED + (size_t)bytes[104] + 16;
        uint8_t save[80];
        memcpy(save, bytes + first, sizeof(save));
        bytes[first + 24 + 6] = 4;
        write_file(b, bytes, n);
        expect_fail(d, b, PB_ECORRUPT, "declared size", "declared size 2^50");
        memcpy(bytes + first, save, sizeof(save));
        memset(bytes + first + 64, 0xff, 4);
        write_file(b, bytes, n);
        expect_fail(d, b, PB_ECORRUPT, "chunk of", "4 GiB chunk");
        memcpy(bytes + first, save, sizeof(save));
    }
    free(bytes);
    assert_int_equal(outcome(d, "after hostile bundles"), 'A');
    journal_empty(d);

    /* wrong baseline: given, recorded, none */
    {
        pb_apply_result r;
        pb_apply_options o;
        pb_error e = PB_ERROR_INIT;
        char cloud_db[P], cloud_blobs[P];
        pathf(cloud_db, sizeof(cloud_db), "%s/%s", g.cloud, PB_PLEX_DB_REL);
        pathf(cloud_blobs, sizeof(cloud_blobs), "%s/%s", g.cloud, PB_PLEX_BLOBS_REL);
        apply_opts(&o, d, g.bundle);
        o.base_db = cloud_db;
        o.base_blobs = cloud_blobs;
        assert_int_equal(pb_apply(&r, &o, &e), PB_EREFUSED);
        assert_non_null(strstr(e.msg, "wrong baseline"));
        pb_apply_result_dispose(&r);
        pb_error_clear(&e);
        o.base_db = o.base_blobs = NULL;
        assert_int_equal(pb_apply(&r, &o, &e), PB_EREFUSED);
        assert_non_null(strstr(e.msg, "no baseline recorded"));
        pb_apply_result_dispose(&r);
        pb_error_clear(&e);
        char sd[P];
        pb_baseline bl;
        memset(&bl, 0x5a, sizeof(bl));
        bl.has_blobs = 1;
        pathf(sd, sizeof(sd), "%s.plexburst", d);
        assert_int_equal(pb_baseline_write(sd, &bl, &e), 0);
        assert_int_equal(pb_apply(&r, &o, &e), PB_EREFUSED);
        assert_non_null(strstr(e.msg, "wrong baseline"));
        pb_apply_result_dispose(&r);
        assert_int_equal(tu_sh("rm -f '%s/baseline'", sd), 0);
    }
    assert_int_equal(outcome(d, "after wrong baselines"), 'A');

    /* a running Plex (the pid file names a live "Plex Media Server": a copy of sleep, whose
     * argv[0] hides it from the scan of the process names): refused before the merge, staging
     * undone */
    {
        char pidf[P], pid[32] = "";
        pathf(pidf, sizeof(pidf), "%s/plexmediaserver.pid", d);
        assert_int_equal(tu_sh("cp /bin/sleep '%s/Plex Media Server'", g.root), 0);
        tu_sh_out(pid, sizeof(pid),
                  "bash -c \"(exec -a sleep '%s/Plex Media Server' 60 >/dev/null 2>&1 & echo "
                  "\\$!)\" | tee '%s'",
                  g.root, pidf);
        assert_true(atoi(pid) > 0);
        expect_fail(d, g.bundle, PB_EREFUSED, "Plex appears to be running", "running Plex");
        kill(atoi(pid), SIGKILL);
        unlink(pidf);
        assert_int_equal(outcome(d, "running Plex"), 'A');
        journal_empty(d);
    }

    /* a home file changed under us (the delta basis): conflict at staging, all undone */
    {
        pb_bundle_info info;
        pb_error e = PB_ERROR_INIT;
        assert_int_equal(pb_bundle_verify(&info, g.bundle, NULL, &e), 0);
        if (info.files_delta) {
            int fd = open(g.bundle, O_RDONLY);
            pb_bundle_reader *rd = NULL;
            const pb_bundle_rec *rec;
            char target[P] = "";
            assert_int_equal(pb_bundle__reader_new(&rd, pb_bundle__fd_in, &fd, NULL, &e), 0);
            while (pb_bundle__reader_next(rd, &rec, &e) == 1)
                if (rec->type == PB_REC_DELTA && !target[0])
                    pathf(target, sizeof(target), "%s/%s", d, rec->path);
            pb_bundle__reader_free(rd);
            close(fd);
            assert_int_equal(tu_sh("printf x >> '%s'", target), 0);
            tstate b4, af;
            state_of(&b4, d);
            expect_fail(d, g.bundle, PB_ECONFLICT, "changed since the answer", "basis changed");
            state_of(&af, d);
            assert_true(same_tree(&b4, &af) && same_db(&b4, &af));
            journal_empty(d);
        } else {
            printf("no delta record in this bundle: basis test skipped\n");
        }
    }
}

/* ---------------------------------------------------------------------------------------- */
/* the CLI                                                                                   */

static void test_cli(void **state)
{
    (void)state;
    need_fixture();
    char d[P], out[65536], list[P], ans[P], b[P], flag[P];
    pathf(d, sizeof(d), "%s/cli", g.root);
    pathf(list, sizeof(list), "%s/cli.list", g.root);
    pathf(ans, sizeof(ans), "%s/cli.answer", g.root);
    pathf(b, sizeof(b), "%s/cli.bundle", g.root);
    pathf(flag, sizeof(flag), "%s/plex-flag", g.root);
    copy_home(d);

    /* the protocol by hand: LIST, ANSWER, bundle */
    assert_int_equal(tu_sh("'%s' export --cloud-dir '%s' --list-only -o '%s' >/dev/null",
                           g.plexburst, g.cloud, list),
                     0);
    assert_int_equal(
        tu_sh("'%s' sigs --plex-dir '%s' --wanted '%s' --whole-below 1024 -o '%s' >/dev/null",
              g.plexburst, d, list, ans),
        0);
    assert_int_equal(tu_sh("'%s' export --cloud-dir '%s' --base-db '%s' --base-blobs '%s' "
                           "--list '%s' --sigs '%s' --work-dir '%s' --zstd-level 3 -o '%s' "
                           ">/dev/null",
                           g.plexburst, g.cloud, g.base_db, g.base_blobs, list, ans, g.root, b),
                     0);

    /* --dry-run prints the phases and changes nothing */
    out[0] = '\0';
    assert_int_equal(tu_sh_out(out, sizeof(out),
                               "'%s' apply --plex-dir '%s' '%s' --base-db '%s' --base-blobs '%s' "
                               "--dry-run 2>&1",
                               g.plexburst, d, b, g.base_db, g.base_blobs),
                     0);
    assert_non_null(strstr(out, "PHASE 2: VERIFY BUNDLE"));
    assert_non_null(strstr(out, "PHASE 3: GUARDS"));
    assert_null(strstr(out, "PHASE 4"));
    assert_int_equal(outcome(d, "CLI dry run"), 'A');
    /* ... and the bundle's diff report, as `plexburst diff` prints it for the same change */
    {
        static char dout[65536];
        char live[P], blive[P], cdb[P], cblobs[P];
        pathf(live, sizeof(live), "%s/%s", d, PB_PLEX_DB_REL);
        pathf(blive, sizeof(blive), "%s/%s", d, PB_PLEX_BLOBS_REL);
        pathf(cdb, sizeof(cdb), "%s/%s", g.cloud, PB_PLEX_DB_REL);
        pathf(cblobs, sizeof(cblobs), "%s/%s", g.cloud, PB_PLEX_BLOBS_REL);
        dout[0] = '\0';
        assert_int_equal(tu_sh_out(dout, sizeof(dout),
                                   "'%s' diff --base '%s' --cloud '%s' --blobs-base '%s' "
                                   "--blobs-cloud '%s' --live '%s' --blobs-live '%s' --in-process "
                                   "2>&1",
                                   g.plexburst, g.base_db, cdb, g.base_blobs, cblobs, live, blive),
                         0);
        const char *starts[] = {"📦 changeset: ", "📊 per table",      "📊 per library section",
                                "📊 analysis: ",  "✅ deletion guard", "📊 rows: "};
        for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
            const char *at = strstr(dout, starts[i]);
            if (!at)
                fail_msg("plexburst diff lacks '%s':\n%s", starts[i], dout);
            char line[1024];
            size_t n = strcspn(at, "\n");
            pathf(line, sizeof(line), "%.*s", (int)n, at);
            /* the zstd figure is an estimate at level 3 in the apply (19 in `diff`) */
            char *raw = i == 0 ? strstr(line, " raw, ") : NULL;
            if (raw)
                raw[4] = '\0';
            if (!strstr(out, line))
                fail_msg("apply --dry-run lacks the diff report's line '%s':\n%s", line, out);
        }
    }

    /* apply --json with stop/start commands */
    out[0] = '\0';
    int rc = tu_sh_out(out, sizeof(out),
                       "'%s' apply --plex-dir '%s' '%s' --base-db '%s' --base-blobs '%s' --json "
                       "--plex-stop-cmd 'echo stopped > \"%s\"' --plex-start-cmd 'echo started "
                       ">> \"%s\"'",
                       g.plexburst, d, b, g.base_db, g.base_blobs, flag, flag);
    if (rc != 0)
        fail_msg("apply --json: %d\n%s", rc, out);
    const char *keys[] = {"\"ok\": true",   "\"files\"",     "\"new\"",
                          "\"patched\"",    "\"unchanged\"", "\"bytes\"",
                          "\"bundle\"",     "\"rows\"",      "\"inserted\"",
                          "\"conflicts\"",  "\"remapped\"",  "\"user_state_dropped\"",
                          "\"timings_ms\"", "\"downtime\"",  "\"apply\"",
                          "\"engine\"",     "\"guards\""};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (!strstr(out, keys[i]))
            fail_msg("apply --json lacks %s", keys[i]);
    char flags[64] = "";
    tu_sh_out(flags, sizeof(flags), "cat '%s'", flag);
    assert_string_equal(flags, "stopped\nstarted\n");
    assert_int_equal(outcome(d, "CLI apply"), 'B');

    /* a guard refusal exits 3 with a POST-MORTEM: a cloud run that lost most of a section */
    char cloud2[P], b2[P], d2[P];
    pathf(cloud2, sizeof(cloud2), "%s/cloud-massdel", g.root);
    pathf(b2, sizeof(b2), "%s/massdel.bundle", g.root);
    pathf(d2, sizeof(d2), "%s/cli2", g.root);
    copy_home(d2);
    assert_int_equal(tu_sh("cp -a '%s' '%s'", g.base, cloud2), 0);
    {
        /* a failed mount: most of the movies gone (through the compatibility layer, which the
         * FTS triggers of metadata_items need) */
        char db[P];
        sqlite3 *c = NULL;
        pb_error e = PB_ERROR_INIT;
        pathf(db, sizeof(db), "%s/%s", cloud2, PB_PLEX_DB_REL);
        assert_int_equal(pb_compat_open(&c, db, 0, &e), 0);
        assert_int_equal(sqlite3_exec(c,
                                      "DELETE FROM metadata_items WHERE metadata_type = 1 AND "
                                      "id % 10 <> 0",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        assert_true(sqlite3_changes(c) > 5);
        sqlite3_close(c);
    }
    assert_int_equal(tu_sh("'%s' export --cloud-dir '%s' --base-db '%s' --base-blobs '%s' "
                           "--base-dir '%s' --work-dir '%s' --zstd-level 3 -o '%s' >/dev/null",
                           g.plexburst, cloud2, g.base_db, g.base_blobs, d2, g.root, b2),
                     0);
    out[0] = '\0';
    rc = tu_sh_out(out, sizeof(out),
                   "'%s' apply --plex-dir '%s' '%s' --base-db '%s' --base-blobs '%s' 2>&1",
                   g.plexburst, d2, b2, g.base_db, g.base_blobs);
    assert_int_equal(rc, 3);
    assert_non_null(strstr(out, "POST-MORTEM"));
    assert_non_null(strstr(out, "deletion guard"));
    assert_int_equal(outcome(d2, "CLI guard refusal"), 'A');

    /* a hostile bundle: one line on stderr, exit 1 */
    crafted_bundle(b2, "Metadata/../../x");
    out[0] = '\0';
    rc = tu_sh_out(out, sizeof(out),
                   "'%s' apply --plex-dir '%s' '%s' --base-db '%s' --base-blobs '%s' 2>&1 "
                   ">/dev/null",
                   g.plexburst, d2, b2, g.base_db, g.base_blobs);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "plexburst: bundle: record 0 at offset"));
}

/* ---------------------------------------------------------------------------------------- */
/* the rows written through Plex's engine (a sqlite3 stand-in)                               */

/* The wrapper: named sqlite3-* so that it runs as a sqlite3-compatible shell; PB_TEST_ENGINE
 * tells it how to die. `$PPID` inside `.shell` is the sqlite3 process itself. */
static const char WRAPPER[] =
    "#!/bin/sh\n"
    "# a stand-in for Plex SQLite that dies on cue (tests/test_apply.c)\n"
    "case \"$PB_TEST_ENGINE\" in\n"
    "before) sed '/^COMMIT;$/,$d' | { cat; echo '.shell kill -9 $PPID'; } |"
    " exec " STAND_IN " \"$@\" ;;\n"
    "after) sed '/^COMMIT;$/a .shell kill -9 $PPID' | exec " STAND_IN " \"$@\" ;;\n"
    "orphan) kill -9 $PPID; read go <\"$PB_TEST_FIFO\"; exec " STAND_IN " \"$@\" ;;\n"
    "fail) echo 'Error: simulated engine failure' >&2; exit 1 ;;\n"
    "noop) cat >/dev/null; exit 0 ;;\n"
    "*) exec " STAND_IN " \"$@\" ;;\n"
    "esac\n";

static void need_engine(void)
{
    need_fixture();
    if (access(STAND_IN, X_OK) != 0)
        skip();
    if (!g.engine[0]) {
        pathf(g.engine, sizeof(g.engine), "%s/sqlite3-standin", g.root);
        pathf(g.compat, sizeof(g.compat), "%s", tu_build_path("plexcompat"));
        write_file(g.engine, WRAPPER, strlen(WRAPPER));
        assert_int_equal(chmod(g.engine, 0755), 0);
    }
}

/* The apply with PB_TEST_ENGINE=mode (NULL: run the script), in a child; 1 when killed. */
static int engine_apply(const char *dir, const char *mode, const char *env)
{
    if (mode)
        setenv("PB_TEST_ENGINE", mode, 1);
    else
        unsetenv("PB_TEST_ENGINE");
    g.use_engine = 1;
    int killed = child_apply(dir, g.bundle, env, -1, 0);
    g.use_engine = 0;
    unsetenv("PB_TEST_ENGINE");
    return killed;
}

static void test_engine_roundtrip(void **state)
{
    (void)state;
    need_engine();
    char d[P], out[65536];
    pathf(d, sizeof(d), "%s/engine", g.root);

    /* the same rows as the in-process apply of the group setup (g.post), the engine named */
    copy_home(d);
    pb_apply_result *r = calloc(1, sizeof(*r));
    pb_apply_options o;
    pb_error e = PB_ERROR_INIT;
    g.use_engine = 1;
    apply_opts(&o, d, g.bundle);
    g.use_engine = 0;
    if (pb_apply(r, &o, &e) != 0)
        fail_msg("apply through the engine: %s", e.msg);
    assert_true(r->ok);
    assert_true(r->atomic_pair);
    assert_true(r->rows.inserted > 0);
    if (strncmp(r->engine, "plex-sqlite: ", 13) != 0 || !strstr(r->engine, "sqlite3-standin"))
        fail_msg("engine reported as '%s'", r->engine);
    pb_apply_result_dispose(r);
    assert_int_equal(outcome(d, "engine apply"), 'B');
    recover_and_check(d, 'B', "after the engine apply");

    /* auto-detection: $PLEXBURST_PLEX_SQLITE names the engine */
    copy_home(d);
    memset(r, 0, sizeof(*r));
    apply_opts(&o, d, g.bundle);
    o.engine = PB_PLEX_ENGINE_AUTO;
    o.compat_extension = g.compat;
    setenv("PLEXBURST_PLEX_SQLITE", g.engine, 1);
    int rc = pb_apply(r, &o, &e);
    unsetenv("PLEXBURST_PLEX_SQLITE");
    if (rc != 0)
        fail_msg("apply, engine found through PLEXBURST_PLEX_SQLITE: %s", e.msg);
    assert_non_null(strstr(r->engine, "sqlite3-standin"));
    pb_apply_result_dispose(r);
    assert_int_equal(outcome(d, "auto-detected engine"), 'B');

    /* a dry run names the writer it would use */
    copy_home(d);
    memset(r, 0, sizeof(*r));
    g.use_engine = 1;
    apply_opts(&o, d, g.bundle);
    g.use_engine = 0;
    o.dry_run = 1;
    assert_int_equal(pb_apply(r, &o, &e), 0);
    assert_true(strncmp(r->engine, "none (dry run; would write with plex-sqlite: ", 45) == 0);
    pb_apply_result_dispose(r);
    free(r);
    assert_int_equal(outcome(d, "engine dry run"), 'A');

    /* the CLI: --plex-sqlite / --compat-extension, and the JSON says which writer */
    out[0] = '\0';
    rc = tu_sh_out(out, sizeof(out),
                   "'%s' apply --plex-dir '%s' '%s' --base-db '%s' --base-blobs '%s' --json "
                   "--plex-sqlite '%s' --compat-extension '%s'",
                   g.plexburst, d, g.bundle, g.base_db, g.base_blobs, g.engine, g.compat);
    if (rc != 0)
        fail_msg("apply --plex-sqlite --json: %d\n%s", rc, out);
    if (!strstr(out, "\"engine\": \"plex-sqlite: ") || !strstr(out, "sqlite3-standin"))
        fail_msg("apply --json does not name the engine:\n%.2000s", out);
    assert_int_equal(outcome(d, "CLI engine apply"), 'B');
    /* and --in-process says so */
    copy_home(d);
    out[0] = '\0';
    rc = tu_sh_out(out, sizeof(out),
                   "'%s' apply --plex-dir '%s' '%s' --base-db '%s' --base-blobs '%s' --in-process "
                   "2>&1",
                   g.plexburst, d, g.bundle, g.base_db, g.base_blobs);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "written by in-process compatibility layer"));
    assert_int_equal(outcome(d, "CLI in-process apply"), 'B');
    /* --online with an explicit engine is a usage error */
    rc = tu_sh("'%s' apply --plex-dir '%s' '%s' --online --plex-sqlite '%s' 2>/dev/null",
               g.plexburst, d, g.bundle, g.engine);
    assert_int_equal(rc, 2);
}

static void test_engine_crashes(void **state)
{
    (void)state;
    need_engine();
    char d[P];
    pathf(d, sizeof(d), "%s/engine-crash", g.root);

    /* the apply killed at each step around the engine */
    static const struct {
        const char *env;
        int expect;
    } points[] = {
        {"PB_TEST_CRASH_AFTER=1", 'A'},        /* while the script is generated */
        {"PB_TEST_CRASH_AFTER=40", 'A'},       /* the same, later */
        {"PB_TEST_CRASH_AT=merging", 'A'},     /* the state recorded, no engine yet */
        {"PB_TEST_CRASH_AT=engine", 'A'},      /* the script complete, the engine not run */
        {"PB_TEST_CRASH_AT=engine-done", 'B'}, /* the engine committed, not yet looked at */
        {"PB_TEST_CRASH_AT=committed", 'B'},   /* the marker seen */
        {"PB_TEST_CRASH_AT=merged", 'B'},      /* the journal says merged */
        {"PB_TEST_CRASH_AT=wal", 'B'},         /* the modes restored */
        {"PB_TEST_CRASH_AT=installed", 'B'},   /* installed */
    };
    for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++) {
        copy_home(d);
        if (!engine_apply(d, NULL, points[i].env))
            fail_msg("engine path, %s: the crash point was not reached", points[i].env);
        char what[96];
        pathf(what, sizeof(what), "engine path, %s", points[i].env);
        recover_and_check(d, points[i].expect, what);
    }

    /* the engine killed inside the transaction, before its COMMIT: the apply fails, the hot
     * journals roll back, nothing was applied */
    copy_home(d);
    pb_error e = PB_ERROR_INIT;
    {
        pb_apply_result *r = calloc(1, sizeof(*r));
        pb_apply_options o;
        setenv("PB_TEST_ENGINE", "before", 1);
        g.use_engine = 1;
        apply_opts(&o, d, g.bundle);
        g.use_engine = 0;
        int rc = pb_apply(r, &o, &e);
        unsetenv("PB_TEST_ENGINE");
        if (rc != PB_ERROR || !strstr(e.msg, "the engine")) /* killed by signal, exit 137 */
            fail_msg("engine killed before COMMIT: got %d '%s'", rc, e.msg);
        pb_apply_result_dispose(r);
        free(r);
    }
    recover_and_check(d, 'A', "engine killed before its COMMIT");
    /* the same with the apply killed as well, right after (the engine's hot journals left for
     * the recovery of the next start) */
    copy_home(d);
    assert_true(engine_apply(d, "before", "PB_TEST_CRASH_AT=engine-done"));
    recover_and_check(d, 'A', "engine killed before its COMMIT, apply killed");

    /* the engine killed right after its COMMIT: the marker says committed, the apply completes
     * (the journal modes it left are restored) */
    copy_home(d);
    assert_false(engine_apply(d, "after", NULL));
    recover_and_check(d, 'B', "engine killed after its COMMIT");
    copy_home(d);
    assert_true(engine_apply(d, "after", "PB_TEST_CRASH_AT=engine-done"));
    recover_and_check(d, 'B', "engine killed after its COMMIT, apply killed");

    /* an engine that fails, or exits 0 without committing: the marker decides, nothing applied */
    const char *bad[2] = {"fail", "noop"};
    for (int i = 0; i < 2; i++) {
        copy_home(d);
        pb_apply_result *r = calloc(1, sizeof(*r));
        pb_apply_options o;
        pb_error_clear(&e);
        setenv("PB_TEST_ENGINE", bad[i], 1);
        g.use_engine = 1;
        apply_opts(&o, d, g.bundle);
        g.use_engine = 0;
        int rc = pb_apply(r, &o, &e);
        unsetenv("PB_TEST_ENGINE");
        if (rc != PB_ERROR ||
            !strstr(e.msg, i ? "without committing" : "simulated engine failure") ||
            strchr(e.msg, '\n'))
            fail_msg("engine '%s': got %d '%s'", bad[i], rc, e.msg);
        pb_apply_result_dispose(r);
        free(r);
        recover_and_check(d, 'A', bad[i]);
    }

    /* the apply killed (by the engine) while the engine runs on, and commits: a recovery must
     * wait for the orphaned engine (it holds the apply lock), then rolls forward. The engine
     * waits on a FIFO until the test has seen the recovery refused. */
    copy_home(d);
    char fifo[P];
    pathf(fifo, sizeof(fifo), "%s/orphan.fifo", g.root);
    unlink(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    setenv("PB_TEST_FIFO", fifo, 1);
    assert_true(engine_apply(d, "orphan", NULL));
    pb_recover_result rr;
    pb_error_clear(&e);
    int rc = pb_apply_recover_ex(&rr, d, NULL, &e);
    if (rc != PB_EBUSY)
        fail_msg("a recovery ran while the orphaned engine could still commit: %d '%s'", rc, e.msg);
    int fd = open(fifo, O_WRONLY); /* blocks until the engine opened it: then let it run */
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "go\n", 3), 3);
    close(fd);
    unsetenv("PB_TEST_FIFO");
    unlink(fifo);
    recover_and_check(d, 'B', "apply killed, orphaned engine committed");
}

/* ---------------------------------------------------------------------------------------- */
/* the merge into a copy before the stop, swapped in during it (engine/apply/premerge.c)     */

/* One apply with the swap on; `stop_cmd` stands in for Plex's stop. */
static void swap_apply(const char *d, const char *stop_cmd, int engine, pb_apply_result *r)
{
    pb_apply_options o;
    pb_error e = PB_ERROR_INIT;
    g.swap = 1;
    g.use_engine = engine;
    apply_opts(&o, d, g.bundle);
    g.swap = g.use_engine = 0;
    o.plex_stop_cmd = stop_cmd;
    o.plex_start_cmd = stop_cmd ? "true" : NULL;
    if (pb_apply(r, &o, &e) != 0)
        fail_msg("apply with the swap%s: %s", engine ? " (engine)" : "", e.msg);
}

static void test_swap(void **state)
{
    (void)state;
    need_fixture();
    char d[P], db[P], out[256];
    pathf(d, sizeof(d), "%s/swap", g.root);
    pathf(db, sizeof(db), "%s/%s", d, PB_PLEX_DB_REL);
    for (int engine = 0; engine < 2; engine++) {
        if (engine && access(STAND_IN, X_OK) != 0) {
            fprintf(stderr, "swap through the engine skipped: no %s\n", STAND_IN);
            break;
        }
        if (engine)
            need_engine();
        /* the same DB pair and tree as the merge in place (g.post), the live file's mode kept */
        copy_home(d);
        assert_int_equal(chmod(db, 0640), 0);
        pb_apply_result *r = calloc(1, sizeof(*r));
        swap_apply(d, "true", engine, r);
        if (!r->swapped)
            fail_msg("no swap%s: %s", engine ? " (engine)" : "", r->swap_note);
        assert_true(r->ms.premerge > 0);
        assert_true(r->rows.inserted > 0);
        pb_apply_result_dispose(r);
        free(r);
        assert_int_equal(outcome(d, engine ? "swap (engine)" : "swap"), 'B');
        struct stat st;
        assert_int_equal(stat(db, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0640);
        recover_and_check(d, 'B', "after a swap");
    }
    /* Plex writes after the copy (here: while it stops): the copy is dropped, the merge happens
     * in place, and the home's write is kept */
    copy_home(d);
    char cmd[P + 256];
    pathf(cmd, sizeof(cmd),
          "%s '%s' \"PRAGMA busy_timeout=5000; UPDATE accounts SET name = 'renamed-at-stop' WHERE "
          "id = 1\"",
          STAND_IN, db);
    if (access(STAND_IN, X_OK) == 0) {
        pb_apply_result *r = calloc(1, sizeof(*r));
        swap_apply(d, cmd, 0, r);
        assert_false(r->swapped);
        if (!strstr(r->swap_note, "changed while the rows were merged into a copy"))
            fail_msg("swap note: '%s'", r->swap_note);
        assert_true(r->committed && r->rows.inserted > 0);
        pb_apply_result_dispose(r);
        free(r);
        tu_sh_out(out, sizeof(out), "%s '%s' \"SELECT name FROM accounts WHERE id = 1\"", STAND_IN,
                  db);
        if (!strstr(out, "renamed-at-stop"))
            fail_msg("the home's write at the stop was lost: '%s'", out);
        tu_sh_out(out, sizeof(out), "find '%s' -name '.pb-stage-*' | head -3", d);
        if (out[0])
            fail_msg("copies left after the fallback: %s", out);
    }
}

static void test_swap_crashes(void **state)
{
    (void)state;
    need_fixture();
    static const struct {
        const char *env;
        int expect; /* 'A' pre, 'B' post */
    } points[] = {
        {"PB_TEST_CRASH_AT=premerge", 'A'},   /* the copies made */
        {"PB_TEST_CRASH_AFTER=40", 'A'},      /* inside the merge into the copies */
        {"PB_TEST_CRASH_AT=premerged", 'A'},  /* the copies merged and durable */
        {"PB_TEST_CRASH_AT=merging", 'A'},    /* Plex stopped, the live modes recorded */
        {"PB_TEST_CRASH_AT=swapping", 'B'},   /* the commit point: nothing renamed yet */
        {"PB_TEST_CRASH_AT=swap-main", 'B'},  /* main renamed, blobs not */
        {"PB_TEST_CRASH_AT=swap-blobs", 'B'}, /* both renamed */
        {"PB_TEST_CRASH_AT=merged", 'B'},     {"PB_TEST_CRASH_AT=finish", 'B'},
    };
    char d[P];
    pathf(d, sizeof(d), "%s/swap-crash", g.root);
    g.swap = 1;
    for (int engine = 0; engine < 2; engine++) {
        if (engine && access(STAND_IN, X_OK) != 0)
            break;
        if (engine)
            need_engine();
        for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++) {
            char what[128];
            pathf(what, sizeof(what), "swap%s, %s", engine ? " (engine)" : "", points[i].env);
            copy_home(d);
            g.use_engine = engine;
            int killed = child_apply(d, g.bundle, points[i].env, -1, 0);
            g.use_engine = 0;
            if (!killed)
                fail_msg("%s: the crash point was not reached", what);
            recover_and_check(d, points[i].expect, what);
        }
    }
    /* killed at the commit point, then the live DB changed before the recovery (Plex started
     * at boot and wrote): nothing was swapped yet, so the run rolls back and keeps that file */
    copy_home(d);
    assert_true(child_apply(d, g.bundle, "PB_TEST_CRASH_AT=swapping", -1, 0));
    char db[P];
    pathf(db, sizeof(db), "%s/%s", d, PB_PLEX_DB_REL);
    struct timespec ts[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
    assert_int_equal(utimensat(AT_FDCWD, db, ts, 0), 0);
    recover_and_check(d, 'A', "swap interrupted, the live DB changed before the recovery");
    g.swap = 0;
}

int main(void)
{
    tu_asan_allow_stock_host();
    /* orphans of the applies the tests start become children of the test (reap_descendants) */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
        tu_skip("prctl(PR_SET_CHILD_SUBREAPER) failed");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_dry_run),
        cmocka_unit_test(test_verified_handoff),
        cmocka_unit_test(test_crash_points),
        cmocka_unit_test(test_random_kills),
        cmocka_unit_test(test_online),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_engine_roundtrip),
        cmocka_unit_test(test_engine_crashes),
        cmocka_unit_test(test_swap),
        cmocka_unit_test(test_swap_crashes),
    };
    if (access(tu_build_path("mkplex"), X_OK) != 0)
        tu_skip("mkplex is not built");
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

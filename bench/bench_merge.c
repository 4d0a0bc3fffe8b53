/*
 * bench_merge.c: benchmark of the Plex merge path against its anchors,
 * on mkplex fixtures with a nightly-sized change, all measured in one run so that ratios hold:
 *   - our diff base -> cloud (main + blobs DBs): wall and CPU ms, rows/s (rows of the cloud DBs),
 *     changeset bytes raw and zstd -3 / -19;
 *   - the anchor for bytes: a session PATCHSET of the same change (sqlite3session_diff over the
 *     same tables), zstd -19;
 *   - the merge: pb_plex_merge() in-process into a copy of the home pair (the changeset files
 *     given as a bundle carries them, and the cloud DBs given), per-phase ms; the same changeset
 *     merged into a copy of the base; the anchor: sqlite3changeset_apply_v2 of the same
 *     changesets onto a copy of the base pair, in the journal mode our merge writes in (DELETE:
 *     the rollback journal ties main and blobs together);
 *   - peak RSS (ru_maxrss of a child process per measurement) of diff and merge, on every fixture
 *     given (small and medium: RSS must not grow with the DB size);
 *   - /usr/bin/sqldiff --changeset (Debian's sqlite3-tools): ms, bytes, zstd -19;
 *   - shipping the whole cloud DB pair with zstd -3 and -19 (bytes, ms; libzstd, all cores).
 * Targets (largest fixture): diff >= 1 M rows/s, our zstd -19 changeset <= 1.0x the session
 * patchset's zstd -19, merge (phase 5 of pb_plex_merge) <= 1 s, peak RSS of diff and merge
 * <= 64 MB and not growing with the DB size. Prints one JSON object on stdout (with `table`, the
 * human summary, also printed on stderr).
 *
 * usage: bench_merge [--work DIR] [--runs R] [--no-whole] [--no-sqldiff] [--merge-only]
 *                    FIXTURE...
 *   FIXTURE  an mkplex triple: FIXTURE/base, FIXTURE/cloud (base + mkplex analyze) and
 *            FIXTURE/home (base + mkplex stream), DB-only is enough (bench/run builds them);
 *            list the smaller first: targets are judged on the last one
 *   --work   scratch directory (default $TMPDIR); copies of the home and base pairs go there
 *   --runs   repetitions of the diff and merge timings, the best is reported (default 3; the
 *            merge's medians too)
 *   --merge-only  only the merge of our changeset into the home pair (phase 5's figures)
 * Wall-clock figures on a shared machine vary: the load average and CPU times are reported.
 * Run on demand only (bench/run).
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <plexburst/plexburst.h>

#include "bench_util.h"
#include "zstream.h"

extern char **environ;

#define DBREL  "/Plug-in Support/Databases/com.plexapp.plugins.library.db"
#define BDBREL "/Plug-in Support/Databases/com.plexapp.plugins.library.blobs.db"

static int g_runs = 3;
static int g_merge_only; /* --merge-only: the merge of the changeset into the home pair only */
static const char *g_work;

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_merge: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void sh(const char *fmt, ...)
{
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (system(cmd) != 0)
        die("command failed: %s", cmd);
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* The paths of one fixture. */
typedef struct fx {
    char dir[4096], name[256];
    char base[4300], cloud[4300], home[4300];    /* main DBs */
    char bbase[4300], bcloud[4300], bhome[4300]; /* blobs DBs */
    char cs[4400], bcs[4400];                    /* our changesets (raw) */
    char work[4300];                             /* scratch for this fixture */
    json_t *tables;                              /* the tables our diff compared (main, blobs) */
} fx;

/* ---- zstd --------------------------------------------------------------------------------- */

/* zstd of a file at `level` with `threads` workers (0: single-threaded): {bytes, ms}. */
static json_t *zstd_file(const char *path, int level, int threads)
{
    FILE *in = fopen(path, "rb"), *sink = fopen("/dev/null", "wb");
    uint64_t nin = 0, nout = 0;
    pb_error err = PB_ERROR_INIT;
    if (!in || !sink)
        die("cannot open %s", path);
    double t0 = bench_now_ms();
    if (pb_zstd_compress_stream(in, sink, level, threads, &nin, &nout, &err))
        die("zstd: %s", err.msg);
    double ms = bench_now_ms() - t0;
    fclose(in);
    fclose(sink);
    return json_pack("{s:I, s:f}", "bytes", (json_int_t)nout, "ms", ms);
}

static double jreal(json_t *o, const char *a, const char *b)
{
    json_t *x = json_object_get(o, a);
    if (x && b)
        x = json_object_get(x, b);
    return x ? json_number_value(x) : 0;
}

/* Sums {bytes, ms} of two zstd results into a new object. */
static json_t *zsum(json_t *a, json_t *b)
{
    json_t *j = json_pack("{s:I, s:f}", "bytes",
                          bench_jint(a, "bytes", NULL) + bench_jint(b, "bytes", NULL), "ms",
                          jreal(a, "ms", NULL) + jreal(b, "ms", NULL));
    json_decref(a);
    json_decref(b);
    return j;
}

/* ---- measurements in child processes (peak RSS per measurement) ---------------------------- */

typedef struct fx_call {
    json_t *(*fn)(fx *);
    fx *f;
} fx_call;

static json_t *fx_call_run(void *p)
{
    fx_call *c = p;
    return c->fn(c->f);
}

static json_t *in_child(json_t *(*fn)(fx *), fx *f)
{
    fx_call call = {fn, f};
    char why[512];
    json_t *j = bench_in_child(fx_call_run, &call, "peak_rss_kib", why, sizeof(why));
    if (!j)
        die("%s on %s", why, f->name);
    return j;
}

/* ---- our diff ------------------------------------------------------------------------------- */

static int note_table(const pb_diff_table_stats *s, void *payload)
{
    json_array_append_new(payload, json_string(s->table));
    return 0;
}

/* One diff into `out_path`; fills stats and the table list. */
static double diff_once(const char *base, const char *target, const char *out_path,
                        pb_diff_stats *st, json_t *tables, double *cms)
{
    pb_error err = PB_ERROR_INIT;
    pb_diff_options o = PB_DIFF_OPTIONS_INIT;
    bench_counter c = {fopen(out_path, "wb"), 0};
    if (!c.f)
        die("cannot write %s", out_path);
    o.table_done = tables ? note_table : NULL;
    o.table_payload = tables;
    double t0 = bench_now_ms(), c0 = bench_cpu_ms();
    if (pb_sqldiff_diff(st, base, target, &o, bench_count_out, &c, &err))
        die("pb_sqldiff_diff %s: %s", target, err.msg);
    double ms = bench_now_ms() - t0;
    *cms = bench_cpu_ms() - c0;
    if (fclose(c.f) != 0)
        die("cannot write %s", out_path);
    return ms;
}

static json_t *run_diff(fx *f)
{
    pb_diff_stats sm, sb;
    double best = 0, best_cpu = 0;
    json_t *tables = NULL;
    for (int run = 0; run < g_runs; run++) {
        json_t *tm = json_array(), *tb = json_array();
        double cm, cb;
        double ms = diff_once(f->base, f->cloud, f->cs, &sm, tm, &cm);
        ms += diff_once(f->bbase, f->bcloud, f->bcs, &sb, tb, &cb);
        if (run == 0 || ms < best) {
            best = ms;
            best_cpu = cm + cb;
        }
        json_decref(tables);
        tables = json_pack("{s:o, s:o}", "main", tm, "blobs", tb);
    }
    uint64_t rows = sm.rows_target + sb.rows_target;
    json_t *j = json_pack(
        "{s:f, s:f, s:I, s:I, s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:o}", "ms", best, "cpu_ms",
        best_cpu, "rows_base", (json_int_t)(sm.rows_base + sb.rows_base), "rows_target",
        (json_int_t)rows, "rows_per_s", best > 0 ? rows / (best / 1e3) : 0.0, "rows_per_cpu_s",
        best_cpu > 0 ? rows / (best_cpu / 1e3) : 0.0, "inserted",
        (json_int_t)(sm.inserted + sb.inserted), "updated", (json_int_t)(sm.updated + sb.updated),
        "deleted", (json_int_t)(sm.deleted + sb.deleted), "bytes",
        (json_int_t)(sm.bytes + sb.bytes), "tables_changed",
        (json_int_t)(sm.tables_changed + sb.tables_changed), "tables", tables);
    return j;
}

/* ---- the session patchset anchor ------------------------------------------------------------ */

/* sqlite3session_diff base -> target over `tables`; writes the patchset and the changeset. */
static void session_one(const char *base, const char *target, json_t *tables, const char *ps_path,
                        const char *cs_path, double *ms, uint64_t *ps_bytes, uint64_t *cs_bytes)
{
    sqlite3 *db = NULL;
    sqlite3_session *s = NULL;
    pb_error err = PB_ERROR_INIT;
    double t0 = bench_now_ms();
    if (pb_compat_open(&db, target, PB_OPEN_READONLY, &err) != 0)
        die("open %s: %s", target, err.msg);
    char *sql = sqlite3_mprintf("ATTACH %Q AS aux", base);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        die("attach %s: %s", base, sqlite3_errmsg(db));
    sqlite3_free(sql);
    if (sqlite3session_create(db, "main", &s) != SQLITE_OK)
        die("sqlite3session_create: %s", sqlite3_errmsg(db));
    size_t i;
    json_t *t;
    json_array_foreach(tables, i, t)
    {
        char *msg = NULL;
        const char *name = json_string_value(t);
        if (sqlite3session_attach(s, name) != SQLITE_OK ||
            sqlite3session_diff(s, "aux", name, &msg) != SQLITE_OK)
            die("sqlite3session_diff %s: %s", name, msg ? msg : sqlite3_errmsg(db));
    }
    bench_counter ps = {fopen(ps_path, "wb"), 0}, cs = {fopen(cs_path, "wb"), 0};
    if (sqlite3session_patchset_strm(s, bench_sess_out, &ps) != SQLITE_OK ||
        sqlite3session_changeset_strm(s, bench_sess_out, &cs) != SQLITE_OK)
        die("session output failed");
    *ms = bench_now_ms() - t0;
    fclose(ps.f);
    fclose(cs.f);
    *ps_bytes = ps.n;
    *cs_bytes = cs.n;
    sqlite3session_delete(s);
    sqlite3_close(db);
}

static json_t *run_session(fx *f)
{
    char ps[4400], cs[4400], bps[4400], bcs[4400];
    double ms1, ms2;
    uint64_t p1, c1, p2, c2;
    snprintf(ps, sizeof(ps), "%s/session.patchset", f->work);
    snprintf(cs, sizeof(cs), "%s/session.changeset", f->work);
    snprintf(bps, sizeof(bps), "%s/session.blobs.patchset", f->work);
    snprintf(bcs, sizeof(bcs), "%s/session.blobs.changeset", f->work);
    session_one(f->base, f->cloud, json_object_get(f->tables, "main"), ps, cs, &ms1, &p1, &c1);
    session_one(f->bbase, f->bcloud, json_object_get(f->tables, "blobs"), bps, bcs, &ms2, &p2, &c2);
    json_t *j = json_pack("{s:f, s:I, s:I}", "ms", ms1 + ms2, "patchset_bytes",
                          (json_int_t)(p1 + p2), "changeset_bytes", (json_int_t)(c1 + c2));
    json_object_set_new(j, "patchset_zstd19", zsum(zstd_file(ps, 19, 0), zstd_file(bps, 19, 0)));
    json_object_set_new(j, "patchset_zstd3", zsum(zstd_file(ps, 3, 0), zstd_file(bps, 3, 0)));
    json_object_set_new(j, "changeset_zstd19", zsum(zstd_file(cs, 19, 0), zstd_file(bcs, 19, 0)));
    remove(ps);
    remove(cs);
    remove(bps);
    remove(bcs);
    return j;
}

/* ---- the merge ------------------------------------------------------------------------------ */

static void copy_pair(const char *main_src, const char *blobs_src, const char *main_dst,
                      const char *blobs_dst)
{
    sh("rm -f '%s' '%s' '%s'-* '%s'-* && cp '%s' '%s' && cp '%s' '%s'", main_dst, blobs_dst,
       main_dst, blobs_dst, main_src, main_dst, blobs_src, blobs_dst);
}

/* pb_plex_merge in-process into copies of (live, blives); `from_cloud`: the cloud DBs are
 * given (the merge diffs), else our changeset files (as a bundle apply gives them). */
/* CPU time when the merge phase started and when the next one did (phase 5's CPU). */
static double g_cpu_merge_start, g_cpu_merge_end;

static void on_phase(int phase, void *payload)
{
    (void)payload;
    if (phase == PB_PHASE_MERGE)
        g_cpu_merge_start = bench_cpu_ms();
    else if (phase > PB_PHASE_MERGE && g_cpu_merge_end <= 0)
        g_cpu_merge_end = bench_cpu_ms();
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of a JSON array of numbers (0 when empty). */
static double median(json_t *a)
{
    size_t n = json_array_size(a);
    double v[64];
    if (n == 0)
        return 0;
    if (n > 64)
        n = 64;
    for (size_t i = 0; i < n; i++)
        v[i] = json_number_value(json_array_get(a, i));
    qsort(v, n, sizeof(v[0]), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static json_t *merge_into(fx *f, const char *live_src, const char *blive_src, int from_cloud)
{
    char live[4400], blive[4400];
    snprintf(live, sizeof(live), "%s/merge.db", f->work);
    snprintf(blive, sizeof(blive), "%s/merge.blobs.db", f->work);
    pb_plex_report best;
    double best_ms = -1, best_cpu = 0, best_merge_cpu = 0;
    json_t *runs_cpu = json_array(), *runs_ms = json_array();
    memset(&best, 0, sizeof(best));
    for (int run = 0; run < g_runs; run++) {
        copy_pair(live_src, blive_src, live, blive);
        pb_plex_merge_options o;
        pb_plex_report r;
        pb_error err = PB_ERROR_INIT;
        pb_plex_merge_options_init(&o);
        o.base = f->base;
        o.blobs_base = f->bbase;
        if (from_cloud) {
            o.cloud = f->cloud;
            o.blobs_cloud = f->bcloud;
        } else {
            o.changeset = f->cs;
            o.blobs_changeset = f->bcs;
        }
        o.live = live;
        o.blobs_live = blive;
        o.engine = PB_PLEX_ENGINE_IN_PROCESS;
        o.keep_backups = 0;
        o.max_delete_pct = 100;
        o.zstd_level = 3;
        o.work_dir = f->work;
        o.on_phase = on_phase;
        g_cpu_merge_start = g_cpu_merge_end = 0;
        double c0 = bench_cpu_ms();
        if (pb_plex_merge(&o, &r, &err) != 0)
            die("pb_plex_merge (%s): %s", f->name, err.msg);
        double cms = bench_cpu_ms() - c0;
        if (g_cpu_merge_end <= 0)
            g_cpu_merge_end = bench_cpu_ms();
        double mcpu = g_cpu_merge_end - g_cpu_merge_start;
        json_array_append_new(runs_cpu, json_real(mcpu));
        json_array_append_new(runs_ms, json_real(r.ms.merge));
        if (best_ms < 0 || mcpu < best_merge_cpu) {
            pb_plex_report_dispose(&best);
            best = r;
            best_ms = r.ms.merge;
            best_cpu = cms;
            best_merge_cpu = mcpu;
        } else {
            pb_plex_report_dispose(&r);
        }
    }
    json_t *j = json_pack(
        "{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "merge_ms",
        best.ms.merge, "merge_cpu_ms", best_merge_cpu, "total_ms", best.ms.total, "schema_ms",
        best.ms.schema, "diff_ms", best.ms.diff, "guards_ms", best.ms.guards, "cpu_ms", best_cpu,
        "backup_ms", best.ms.backup, "inserted", (json_int_t)best.merge.inserted, "updated",
        (json_int_t)best.merge.updated, "deleted", (json_int_t)best.merge.deleted, "conflicts",
        (json_int_t)best.merge.conflicts, "remapped", (json_int_t)best.merge.remapped,
        "changeset_zstd_bytes", (json_int_t)best.bytes_changeset_zstd, "atomic_pair",
        best.atomic_pair);
    json_object_set_new(j, "merge_cpu_ms_median", json_real(median(runs_cpu)));
    json_object_set_new(j, "merge_ms_median", json_real(median(runs_ms)));
    json_object_set_new(j, "runs_merge_cpu_ms", runs_cpu);
    json_object_set_new(j, "runs_merge_ms", runs_ms);
    pb_plex_report_dispose(&best);
    remove(live);
    remove(blive);
    return j;
}

static json_t *run_merge_cloud(fx *f)
{
    return merge_into(f, f->home, f->bhome, 1);
}

static json_t *run_merge_changeset(fx *f)
{
    return merge_into(f, f->home, f->bhome, 0);
}

static json_t *run_merge_onto_base(fx *f)
{
    return merge_into(f, f->base, f->bbase, 0);
}

/* ---- the sqlite3changeset_apply_v2 anchor -----------------------------------------------------
 */

typedef struct apply_ctx {
    uint64_t conflicts;
} apply_ctx;

static int on_conflict(void *p, int type, sqlite3_changeset_iter *it)
{
    (void)type;
    (void)it;
    ((apply_ctx *)p)->conflicts++;
    return SQLITE_CHANGESET_OMIT;
}

static int xin(void *p, void *data, int *n)
{
    *n = (int)fread(data, 1, (size_t)*n, p);
    return SQLITE_OK;
}

/* Applies `cs` onto the DB at `path` (compat layer: Plex's FTS triggers fire). */
static double apply_one(const char *path, const char *cs, apply_ctx *ac)
{
    sqlite3 *db = NULL;
    pb_error err = PB_ERROR_INIT;
    double t0 = bench_now_ms();
    if (pb_compat_open(&db, path, 0, &err) != 0)
        die("open %s: %s", path, err.msg);
    FILE *f = fopen(cs, "rb");
    if (!f)
        die("cannot read %s", cs);
    int rc = sqlite3changeset_apply_v2_strm(db, xin, f, NULL, on_conflict, ac, NULL, NULL, 0);
    if (rc != SQLITE_OK)
        die("sqlite3changeset_apply_v2 %s: %s", path, sqlite3_errmsg(db));
    fclose(f);
    sqlite3_close(db);
    return bench_now_ms() - t0;
}

static void journal_delete(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK ||
        sqlite3_exec(db, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL) != SQLITE_OK)
        die("journal_mode=DELETE on %s: %s", path, sqlite3_errmsg(db));
    sqlite3_close(db);
}

static json_t *run_apply_v2(fx *f)
{
    char m[4400], b[4400];
    snprintf(m, sizeof(m), "%s/apply.db", f->work);
    snprintf(b, sizeof(b), "%s/apply.blobs.db", f->work);
    double best = -1, best_cpu = 0;
    apply_ctx ac = {0};
    for (int run = 0; run < g_runs; run++) {
        copy_pair(f->base, f->bbase, m, b);
        /* the journal mode our merge writes the pair in (rollback journal, for the pair's
         * atomicity), so that both pay the same journaling */
        journal_delete(m);
        journal_delete(b);
        ac.conflicts = 0;
        double c0 = bench_cpu_ms();
        double ms = apply_one(m, f->cs, &ac) + apply_one(b, f->bcs, &ac);
        double cms = bench_cpu_ms() - c0;
        if (best < 0 || ms < best) {
            best = ms;
            best_cpu = cms;
        }
    }
    remove(m);
    remove(b);
    return json_pack("{s:f, s:f, s:I}", "ms", best, "cpu_ms", best_cpu, "conflicts",
                     (json_int_t)ac.conflicts);
}

/* ---- Debian's sqldiff -------------------------------------------------------------------------
 */

static json_t *sqldiff_one(const char *base, const char *target, const char *out, double *ms,
                           long *rss, int *exit_code)
{
    const char *tool = "/usr/bin/sqldiff";
    char *argv[] = {(char *)tool, "--changeset", (char *)out, (char *)base, (char *)target, NULL};
    pid_t pid;
    int status = 0;
    struct rusage ru;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    double t0 = bench_now_ms();
    if (posix_spawn(&pid, tool, &fa, NULL, argv, environ) != 0)
        die("cannot run %s", tool);
    wait4(pid, &status, 0, &ru);
    *ms += bench_now_ms() - t0;
    posix_spawn_file_actions_destroy(&fa);
    *rss = ru.ru_maxrss > *rss ? ru.ru_maxrss : *rss;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return zstd_file(out, 19, 0);
}

static json_t *run_sqldiff(fx *f)
{
    if (access("/usr/bin/sqldiff", X_OK) != 0)
        return json_pack("{s:s}", "skipped", "/usr/bin/sqldiff not installed (sqlite3-tools)");
    char a[4400], b[4400];
    snprintf(a, sizeof(a), "%s/sqldiff.changeset", f->work);
    snprintf(b, sizeof(b), "%s/sqldiff.blobs.changeset", f->work);
    double ms = 0;
    long rss = 0;
    int code = 0;
    json_t *z = zsum(sqldiff_one(f->base, f->cloud, a, &ms, &rss, &code),
                     sqldiff_one(f->bbase, f->bcloud, b, &ms, &rss, &code));
    json_t *j = json_pack("{s:f, s:I, s:I, s:i, s:o}", "ms", ms, "changeset_bytes",
                          (json_int_t)(file_size(a) + file_size(b)), "peak_rss_kib",
                          (json_int_t)rss, "exit", code, "zstd19", z);
    remove(a);
    remove(b);
    return j;
}

/* ---- one fixture ---------------------------------------------------------------------------- */

static json_t *bench_fixture(fx *f, int whole, int sqldiff)
{
    fprintf(stderr, "bench_merge: %s: diff\n", f->name);
    json_t *r = json_pack("{s:s, s:I, s:I}", "fixture", f->dir, "main_db_bytes",
                          (json_int_t)file_size(f->cloud), "blobs_db_bytes",
                          (json_int_t)file_size(f->bcloud));
    /* our diff runs in the parent too (untimed) for the changeset files and the table list the
     * other measurements use; the timed run is in a child */
    pb_diff_stats st;
    double cms;
    f->tables = json_pack("{s:o, s:o}", "main", json_array(), "blobs", json_array());
    diff_once(f->base, f->cloud, f->cs, &st, json_object_get(f->tables, "main"), &cms);
    diff_once(f->bbase, f->bcloud, f->bcs, &st, json_object_get(f->tables, "blobs"), &cms);
    if (g_merge_only) {
        fprintf(stderr, "bench_merge: %s: merge\n", f->name);
        json_object_set_new(r, "merge", in_child(run_merge_changeset, f));
        goto done;
    }
    json_t *d = in_child(run_diff, f);
    json_object_del(d, "tables");
    json_object_set_new(d, "zstd3", zsum(zstd_file(f->cs, 3, 0), zstd_file(f->bcs, 3, 0)));
    json_object_set_new(d, "zstd19", zsum(zstd_file(f->cs, 19, 0), zstd_file(f->bcs, 19, 0)));
    json_object_set_new(r, "diff", d);
    fprintf(stderr, "bench_merge: %s: session patchset\n", f->name);
    json_object_set_new(r, "session", in_child(run_session, f));
    fprintf(stderr, "bench_merge: %s: merge\n", f->name);
    json_object_set_new(r, "merge", in_child(run_merge_changeset, f));
    json_object_set_new(r, "merge_with_diff", in_child(run_merge_cloud, f));
    json_object_set_new(r, "merge_onto_base", in_child(run_merge_onto_base, f));
    fprintf(stderr, "bench_merge: %s: sqlite3changeset_apply_v2\n", f->name);
    json_object_set_new(r, "apply_v2", in_child(run_apply_v2, f));
    if (sqldiff) {
        fprintf(stderr, "bench_merge: %s: sqldiff\n", f->name);
        json_object_set_new(r, "sqldiff", run_sqldiff(f));
    }
    if (whole) {
        fprintf(stderr, "bench_merge: %s: whole DB pair with zstd\n", f->name);
        int threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
        json_t *w =
            json_pack("{s:I, s:i}", "bytes",
                      (json_int_t)(file_size(f->cloud) + file_size(f->bcloud)), "threads", threads);
        json_object_set_new(
            w, "zstd3", zsum(zstd_file(f->cloud, 3, threads), zstd_file(f->bcloud, 3, threads)));
        json_object_set_new(
            w, "zstd19", zsum(zstd_file(f->cloud, 19, threads), zstd_file(f->bcloud, 19, threads)));
        json_object_set_new(r, "whole_db", w);
    }
done:
    json_decref(f->tables);
    f->tables = NULL;
    remove(f->cs);
    remove(f->bcs);
    return r;
}

static void fx_init(fx *f, const char *dir)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "%s", dir);
    const char *slash = strrchr(dir, '/');
    snprintf(f->name, sizeof(f->name), "%s", slash && slash[1] ? slash + 1 : dir);
    snprintf(f->base, sizeof(f->base), "%s/base" DBREL, dir);
    snprintf(f->cloud, sizeof(f->cloud), "%s/cloud" DBREL, dir);
    snprintf(f->home, sizeof(f->home), "%s/home" DBREL, dir);
    snprintf(f->bbase, sizeof(f->bbase), "%s/base" BDBREL, dir);
    snprintf(f->bcloud, sizeof(f->bcloud), "%s/cloud" BDBREL, dir);
    snprintf(f->bhome, sizeof(f->bhome), "%s/home" BDBREL, dir);
    snprintf(f->work, sizeof(f->work), "%s/bench_merge-%s-%d", g_work, f->name, (int)getpid());
    snprintf(f->cs, sizeof(f->cs), "%s/ours.changeset", f->work);
    snprintf(f->bcs, sizeof(f->bcs), "%s/ours.blobs.changeset", f->work);
    const char *need[] = {f->base, f->cloud, f->home, f->bbase, f->bcloud, f->bhome};
    for (int i = 0; i < 6; i++)
        if (access(need[i], R_OK) != 0)
            die("%s: missing (an mkplex base/cloud/home triple is expected)", need[i]);
    sh("mkdir -p '%s'", f->work);
}

/* ---- the human table --------------------------------------------------------------------------
 */

static void line(json_t *table, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    json_array_append_new(table, json_string(buf));
    fprintf(stderr, "%s\n", buf);
}

static const char *ok(int yes)
{
    return yes ? "ok  " : "MISS";
}

/* --merge-only: phase 5's figures of the last fixture (best and medians), then the JSON. */
static int merge_only_summary(json_t *r, json_t *L, double load)
{
    json_t *m = json_object_get(L, "merge"), *table = json_array();
    line(table, "bench_merge --merge-only (%s; load %.1f on %ld cpus; %d runs)",
         json_string_value(json_object_get(L, "name")), load, sysconf(_SC_NPROCESSORS_ONLN),
         g_runs);
    line(table, "  %-44s %12.0f ms %11.0f ms  %s", "merge (phase 5) CPU best vs target 1 s",
         jreal(m, "merge_cpu_ms", NULL), 1000.0, ok(jreal(m, "merge_cpu_ms", NULL) <= 1000));
    line(table, "  %-44s %12.0f ms %11.0f ms  (CPU / wall)", "merge (phase 5) medians",
         jreal(m, "merge_cpu_ms_median", NULL), jreal(m, "merge_ms_median", NULL));
    line(table, "  %-44s %9.1f MB", "peak RSS of the merge",
         bench_jint(m, "peak_rss_kib", NULL) / 1024.0);
    json_object_set_new(r, "table", table);
    json_dumpf(r, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
    putchar('\n');
    json_decref(r);
    return 0;
}

int main(int argc, char **argv)
{
    int whole = 1, sqldiff = 1, i = 1;
    const char *tmp = getenv("TMPDIR");
    g_work = tmp && *tmp ? tmp : "/tmp";
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--work") && i + 1 < argc)
            g_work = argv[++i];
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            g_runs = atoi(argv[++i]) > 0 ? atoi(argv[i]) : 1;
        else if (!strcmp(argv[i], "--no-whole"))
            whole = 0;
        else if (!strcmp(argv[i], "--no-sqldiff"))
            sqldiff = 0;
        else if (!strcmp(argv[i], "--merge-only"))
            g_merge_only = 1;
        else
            die("unknown option %s", argv[i]);
    }
    if (i >= argc) {
        fprintf(stderr, "usage: bench_merge [--work DIR] [--runs R] [--no-whole] [--no-sqldiff] "
                        "[--merge-only] "
                        "FIXTURE...\n");
        return 2;
    }
    sh("mkdir -p '%s'", g_work);
    double load[3] = {0, 0, 0};
    getloadavg(load, 3);
    json_t *r = json_pack("{s:s, s:s, s:f, s:i, s:i, s:[]}", "benchmark", "bench_merge", "sqlite",
                          sqlite3_libversion(), "loadavg", load[0], "cpus",
                          (int)sysconf(_SC_NPROCESSORS_ONLN), "runs", g_runs, "fixtures");
    json_t *all = json_object_get(r, "fixtures");
    int nfx = argc - i;
    for (int k = i; k < argc; k++) {
        fx f;
        fx_init(&f, argv[k]);
        /* warm the page cache so that the first measurement is not penalised */
        pb_checksum c;
        pb_error err = PB_ERROR_INIT;
        pb_sqldiff_checksum(&c, f.base, NULL, &err);
        pb_sqldiff_checksum(&c, f.cloud, NULL, &err);
        pb_sqldiff_checksum(&c, f.home, NULL, &err);
        json_t *one = bench_fixture(&f, whole && k == argc - 1, sqldiff);
        json_object_set_new(one, "name", json_string(f.name));
        json_array_append_new(all, one);
        sh("rm -rf '%s'", f.work);
    }

    /* targets, judged on the last (largest) fixture */
    json_t *L = json_array_get(all, (size_t)nfx - 1), *S = json_array_get(all, 0);
    if (g_merge_only)
        return merge_only_summary(r, L, load[0]);
    json_t *d = json_object_get(L, "diff"), *m = json_object_get(L, "merge"),
           *s = json_object_get(L, "session");
    double rps = jreal(d, "rows_per_s", NULL);
    double ratio = (double)bench_jint(d, "zstd19", "bytes") /
                   (double)bench_jint(s, "patchset_zstd19", "bytes");
    double merge_ms = jreal(m, "merge_ms", NULL), merge_cpu = jreal(m, "merge_cpu_ms", NULL);
    json_int_t rss_diff = bench_jint(d, "peak_rss_kib", NULL),
               rss_merge = bench_jint(m, "peak_rss_kib", NULL);
    double g_diff =
        (double)rss_diff / (double)bench_jint(json_object_get(S, "diff"), "peak_rss_kib", NULL);
    double g_merge =
        (double)rss_merge / (double)bench_jint(json_object_get(S, "merge"), "peak_rss_kib", NULL);
    double g_size =
        (double)bench_jint(L, "main_db_bytes", NULL) / (double)bench_jint(S, "main_db_bytes", NULL);
    json_t *t = json_pack(
        "{s:b, s:f, s:b, s:f, s:f, s:b, s:b, s:f, s:f, s:f}", "diff_rows_per_s_ge_1M", rps >= 1e6,
        "changeset_zstd19_vs_session_patchset_zstd19", ratio, "changeset_le_1x", ratio <= 1.0,
        "merge_ms", merge_ms, "merge_cpu_ms", merge_cpu, "merge_le_1s", merge_cpu <= 1000,
        "peak_rss_le_64MB", rss_diff <= 64 * 1024 && rss_merge <= 64 * 1024, "db_size_growth",
        g_size, "diff_rss_growth", g_diff, "merge_rss_growth", g_merge);
    json_object_set_new(r, "targets", t);

    json_t *table = json_array();
    line(table, "bench_merge (%s; load %.1f on %ld cpus; best of %d)",
         json_string_value(json_object_get(L, "name")), load[0], sysconf(_SC_NPROCESSORS_ONLN),
         g_runs);
    line(table, "  %-44s %14s %14s  %s", "measure", "ours", "anchor / target", "");
    line(table, "  %-44s %11.2f M/s %14s  %s", "diff rows/s (main+blobs)", rps / 1e6, ">= 1 M/s",
         ok(rps >= 1e6));
    line(table, "  %-44s %12.0f ms %11.0f ms  %.2f M rows/CPU-s", "diff wall / CPU (all threads)",
         jreal(d, "ms", NULL), jreal(d, "cpu_ms", NULL), jreal(d, "rows_per_cpu_s", NULL) / 1e6);
    line(table, "  %-44s %12lld B %12lld B  %.2fx %s",
         "changeset zstd-19 vs session patchset zstd-19",
         (long long)bench_jint(d, "zstd19", "bytes"),
         (long long)bench_jint(s, "patchset_zstd19", "bytes"), ratio, ok(ratio <= 1.0));
    line(table, "  %-44s %12lld B %12lld B", "changeset raw vs session patchset raw",
         (long long)bench_jint(d, "bytes", NULL), (long long)bench_jint(s, "patchset_bytes", NULL));
    line(table, "  %-44s %12.0f ms %11.0f ms  %s", "merge (phase 5) CPU vs target 1 s", merge_cpu,
         1000.0, ok(merge_cpu <= 1000));
    line(table, "  %-44s %12.0f ms %11.0f ms  %s", "merge (phase 5) wall (loaded machine)",
         merge_ms, 1000.0, ok(merge_ms <= 1000));
    line(table, "  %-44s %12.0f ms %11.0f ms  (CPU / wall)", "merge (phase 5) medians",
         jreal(m, "merge_cpu_ms_median", NULL), jreal(m, "merge_ms_median", NULL));
    line(table, "  %-44s %12.0f ms %11.0f ms", "same changeset onto base: ours vs apply_v2",
         jreal(json_object_get(L, "merge_onto_base"), "merge_ms", NULL),
         jreal(json_object_get(L, "apply_v2"), "ms", NULL));
    line(table, "  %-44s %12.0f ms %11.0f ms  (wall / CPU)",
         "pb_plex_merge total (changeset given)", jreal(m, "total_ms", NULL),
         jreal(m, "cpu_ms", NULL));
    line(table, "  %-44s %12.0f ms %11.0f ms  (wall / CPU)",
         "pb_plex_merge total (cloud DBs, diff inside)",
         jreal(json_object_get(L, "merge_with_diff"), "total_ms", NULL),
         jreal(json_object_get(L, "merge_with_diff"), "cpu_ms", NULL));
    for (int k = 0; k < nfx; k++) {
        json_t *F = json_array_get(all, (size_t)k);
        line(table, "  peak RSS %-35s %9.1f MB %11.1f MB  %s",
             json_string_value(json_object_get(F, "name")),
             bench_jint(json_object_get(F, "diff"), "peak_rss_kib", NULL) / 1024.0,
             bench_jint(json_object_get(F, "merge"), "peak_rss_kib", NULL) / 1024.0,
             "(diff / merge)");
    }
    line(table, "  %-44s %12.2fx %12.2fx  DB %.1fx larger; <= 64 MB %s", "RSS growth diff / merge",
         g_diff, g_merge, g_size, ok(rss_diff <= 64 * 1024 && rss_merge <= 64 * 1024));
    json_t *q = json_object_get(L, "sqldiff");
    if (q && !json_object_get(q, "skipped"))
        line(table, "  %-44s %12.0f ms %12lld B  zstd-19 %lld B", "sqldiff --changeset",
             jreal(q, "ms", NULL), (long long)bench_jint(q, "changeset_bytes", NULL),
             (long long)bench_jint(q, "zstd19", "bytes"));
    json_t *w = json_object_get(L, "whole_db");
    if (w) {
        line(table, "  %-44s %12lld B %11.0f ms", "whole DB pair zstd -3",
             (long long)bench_jint(w, "zstd3", "bytes"), jreal(w, "zstd3", "ms"));
        line(table, "  %-44s %12lld B %11.0f ms", "whole DB pair zstd -19",
             (long long)bench_jint(w, "zstd19", "bytes"), jreal(w, "zstd19", "ms"));
    }
    json_object_set_new(r, "table", table);
    json_dumpf(r, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
    putchar('\n');
    json_decref(r);
    return 0;
}

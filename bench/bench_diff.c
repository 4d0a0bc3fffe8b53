/*
 * bench_diff.c: benchmark of the row diff (sqldiff/) against its anchors:
 * on one (base, target) DB pair, in one run: our diff (ms, rows/s, changeset bytes raw, zstd -3
 * and zstd -19, validation time), the same on one thread, our patchset, our checksum,
 * sqlite3session_diff over attached DBs producing a changeset and a patchset (ms, bytes, zstd -19
 * in-process), and /usr/bin/sqldiff
 * --changeset when installed (Debian package sqlite3-tools). Each measurement runs in its own
 * child process, so peak RSS (getrusage ru_maxrss) is per measurement. Prints one JSON object.
 * Targets (issue, `medium` fixture, ~1 % of rows changed): diff >= 1 M rows/s; our zstd'd
 * changeset <= 1.0x zstd -19 of the session patchset; peak RSS <= 64 MB, flat in DB size.
 *
 * usage: bench_diff [--runs R] [--single-thread] [--no-session] [--no-sqldiff] [--quick]
 *                   [--no-warm] [--out FILE] BASE TARGET
 *        bench_diff --synthetic DIR [--rows N] [--change PCT]
 *   --runs R     repetitions of our diff timings: the best and the medians are reported
 *                (default 3)
 *   --quick      only our diff, threaded and on one thread (medians; no zstd, no anchors)
 *   --out FILE   also writes our (threaded) changeset to FILE, to compare two builds with cmp
 *   --no-warm    no checksum pass first to warm the page cache (for profiling the diff alone)
 *   --synthetic  writes DIR/base.db and DIR/target.db: `items` (N rows, default 1.5 M, 10
 *                columns of mixed types, UNIQUE guid, 2 more indexes), `tags` (N/5), `taggings`
 *                (composite PK, WITHOUT ROWID, N/3) and `settings` (no PK, with duplicates);
 *                target = base with PCT % (default 1) of each table's rows changed: 60 % of
 *                them updated (1-2 columns), 25 % inserted, 15 % deleted.
 * Rows/s counts the target's rows (each is read twice: once per DB); cpu_ms is user + system
 * time of all threads, so rows_per_cpu_s is what one core does, whatever else the machine runs:
 * the target (>= 1 M rows/s per core) is judged on rows_per_cpu_s_median.
 * The load average is printed too: wall-clock numbers on a busy machine mean little.
 * Run on demand only.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <spawn.h>
#include <sqlite3.h>
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

static long self_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "bench_diff: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

/* ---- synthetic data ---------------------------------------------------------------------- */

static uint64_t rs = 88172645463325252ull;

static uint64_t rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

static const char *const words[] = {
    "the",   "night", "of",    "a",      "return", "star", "king",   "last",  "love",  "war",
    "house", "dark",  "light", "city",   "story",  "man",  "woman",  "blue",  "river", "game",
    "lost",  "world", "time",  "secret", "home",   "girl", "summer", "black", "road",  "dream"};

static int words_into(char *out, int max_words)
{
    int n = 0, k = 1 + (int)(rnd() % (uint64_t)max_words);
    for (int i = 0; i < k; i++)
        n += sprintf(out + n, "%s%s", i ? " " : "", words[rnd() % 30]);
    return n;
}

static void exec_or_die(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        die(sql, msg);
}

static void bind_item(sqlite3_stmt *st, int64_t id)
{
    char guid[64], title[400], summary[1400];
    uint8_t thumb[16];
    for (int i = 0; i < 16; i++)
        thumb[i] = (uint8_t)rnd();
    snprintf(guid, sizeof(guid), "plex://movie/%016llx%08x", (unsigned long long)rnd(),
             (unsigned)id);
    int tn = words_into(title, 6);
    int sn = words_into(summary, 40);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, guid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, title, tn, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 4, 1950 + (int)(rnd() % 75));
    if (rnd() % 5)
        sqlite3_bind_double(st, 5, (double)(rnd() % 100) / 10.0);
    else
        sqlite3_bind_null(st, 5);
    sqlite3_bind_int64(st, 6, 1500000000 + (int64_t)(rnd() % 200000000));
    sqlite3_bind_int(st, 7, (int)(rnd() % 10800000));
    sqlite3_bind_text(st, 8, summary, sn, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 9, thumb, 16, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 10, (int)(rnd() % 16));
}

static void step_or_die(sqlite3 *db, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_CONSTRAINT)
        die("insert", sqlite3_errmsg(db));
    sqlite3_reset(st);
}

static void make_synthetic(const char *dir, int64_t rows, double pct)
{
    char base[4096], target[4096];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    double t0 = bench_now_ms();

    mkdir(dir, 0755);
    snprintf(base, sizeof(base), "%s/base.db", dir);
    snprintf(target, sizeof(target), "%s/target.db", dir);
    remove(base);
    remove(target);
    if (sqlite3_open(base, &db) != SQLITE_OK)
        die("cannot create", base);
    exec_or_die(db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-262144;"
                    "CREATE TABLE items(id INTEGER PRIMARY KEY, guid TEXT NOT NULL, title TEXT, "
                    "year INT, rating REAL, added_at INT, duration INT, summary TEXT, thumb BLOB,"
                    " flags INT);"
                    "CREATE UNIQUE INDEX items_guid ON items(guid);"
                    "CREATE INDEX items_added ON items(added_at);"
                    "CREATE INDEX items_title ON items(title);"
                    "CREATE TABLE tags(id INTEGER PRIMARY KEY, tag TEXT, kind INT, item_id INT);"
                    "CREATE INDEX tags_item ON tags(item_id);"
                    "CREATE TABLE taggings(tag_id INT, item_id INT, idx INT, extra TEXT, "
                    "PRIMARY KEY(tag_id, item_id)) WITHOUT ROWID;"
                    "CREATE TABLE settings(name TEXT, value TEXT, updated INT);"
                    "BEGIN");
    sqlite3_prepare_v2(db, "INSERT INTO items VALUES(?,?,?,?,?,?,?,?,?,?)", -1, &st, NULL);
    for (int64_t i = 1; i <= rows; i++) {
        bind_item(st, i);
        step_or_die(db, st);
    }
    sqlite3_finalize(st);
    sqlite3_prepare_v2(db, "INSERT INTO tags VALUES(?,?,?,?)", -1, &st, NULL);
    for (int64_t i = 1; i <= rows / 5; i++) {
        char t[64];
        sqlite3_bind_int64(st, 1, i);
        sqlite3_bind_text(st, 2, t, words_into(t, 2), SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 3, (int)(rnd() % 12));
        sqlite3_bind_int64(st, 4, 1 + (int64_t)(rnd() % (uint64_t)rows));
        step_or_die(db, st);
    }
    sqlite3_finalize(st);
    sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO taggings VALUES(?,?,?,?)", -1, &st, NULL);
    for (int64_t i = 1; i <= rows / 3; i++) {
        sqlite3_bind_int64(st, 1, 1 + (int64_t)(rnd() % (uint64_t)(rows / 5 + 1)));
        sqlite3_bind_int64(st, 2, 1 + (int64_t)(rnd() % (uint64_t)rows));
        sqlite3_bind_int(st, 3, (int)(rnd() % 20));
        if (rnd() % 4)
            sqlite3_bind_null(st, 4);
        else
            sqlite3_bind_text(st, 4, "x", 1, SQLITE_STATIC);
        step_or_die(db, st);
    }
    sqlite3_finalize(st);
    sqlite3_prepare_v2(db, "INSERT INTO settings VALUES(?,?,?)", -1, &st, NULL);
    for (int i = 0; i < 1000; i++) {
        char n[32];
        snprintf(n, sizeof(n), "setting%d", i % 900); /* some duplicates */
        sqlite3_bind_text(st, 1, n, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 2, (int)(rnd() % 100));
        sqlite3_bind_int(st, 3, i);
        step_or_die(db, st);
    }
    sqlite3_finalize(st);
    exec_or_die(db, "COMMIT");
    sqlite3_close(db);
    /* the target: a copy with pct % of each table's rows changed */
    if (sqlite3_open(base, &db) != SQLITE_OK)
        die("cannot open", base);
    char *sql = sqlite3_mprintf("VACUUM INTO %Q", target);
    exec_or_die(db, sql);
    sqlite3_free(sql);
    sqlite3_close(db);
    if (sqlite3_open(target, &db) != SQLITE_OK)
        die("cannot open", target);
    exec_or_die(db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-262144;"
                    "BEGIN");
    struct {
        const char *name;
        int64_t n;
    } tabs[] = {{"items", rows}, {"tags", rows / 5}, {"taggings", rows / 3}, {"settings", 1000}};
    for (size_t k = 0; k < 4; k++) {
        int64_t changes = (int64_t)((double)tabs[k].n * pct / 100.0);
        for (int64_t c = 0; c < changes; c++) {
            int what = (int)(rnd() % 20); /* 12 update, 5 insert, 3 delete */
            int64_t id = 1 + (int64_t)(rnd() % (uint64_t)tabs[k].n);
            if (k == 0) {
                if (what < 12) {
                    const char *q = rnd() % 2
                                        ? "UPDATE items SET title = title || ' (director''s cut)',"
                                          " flags = flags + 1 WHERE id = ?"
                                        : "UPDATE items SET rating = coalesce(rating, 0) + 0.5 "
                                          "WHERE id = ?";
                    sqlite3_prepare_v2(db, q, -1, &st, NULL);
                    sqlite3_bind_int64(st, 1, id);
                } else if (what < 17) {
                    sqlite3_prepare_v2(db, "INSERT INTO items VALUES(?,?,?,?,?,?,?,?,?,?)", -1, &st,
                                       NULL);
                    bind_item(st, rows + 1 + c);
                } else {
                    sqlite3_prepare_v2(db, "DELETE FROM items WHERE id = ?", -1, &st, NULL);
                    sqlite3_bind_int64(st, 1, id);
                }
            } else if (k == 1) {
                const char *q = what < 12   ? "UPDATE tags SET kind = kind + 1 WHERE id = ?"
                                : what < 17 ? "INSERT INTO tags VALUES(NULL, 'new tag', 1, ?)"
                                            : "DELETE FROM tags WHERE id = ?";
                sqlite3_prepare_v2(db, q, -1, &st, NULL);
                sqlite3_bind_int64(st, 1, id);
            } else if (k == 2) {
                const char *q =
                    what < 12   ? "UPDATE taggings SET idx = idx + 1 WHERE rowid IS NULL OR "
                                  "(tag_id, item_id) = (SELECT tag_id, item_id FROM taggings "
                                  "WHERE tag_id >= ?1 % (SELECT max(tag_id) FROM taggings) LIMIT 1)"
                    : what < 17 ? "INSERT OR IGNORE INTO taggings VALUES(?1 + 10000000, ?1, 0, "
                                  "'new')"
                                : "DELETE FROM taggings WHERE (tag_id, item_id) = (SELECT "
                                  "tag_id, item_id FROM taggings WHERE tag_id >= ?1 % (SELECT "
                                  "max(tag_id) FROM taggings) LIMIT 1)";
                /* taggings has no rowid: use the first form without the rowid test */
                if (what < 12)
                    q = "UPDATE taggings SET idx = idx + 1 WHERE (tag_id, item_id) = (SELECT "
                        "tag_id, item_id FROM taggings WHERE tag_id >= ?1 % (SELECT max(tag_id) "
                        "FROM taggings) LIMIT 1)";
                sqlite3_prepare_v2(db, q, -1, &st, NULL);
                sqlite3_bind_int64(st, 1, id);
            } else {
                const char *q = what < 12 ? "UPDATE settings SET value = value + 1 WHERE rowid = ?"
                                : what < 17 ? "INSERT INTO settings SELECT * FROM settings WHERE "
                                              "rowid = ?"
                                            : "DELETE FROM settings WHERE rowid = ?";
                sqlite3_prepare_v2(db, q, -1, &st, NULL);
                sqlite3_bind_int64(st, 1, id);
            }
            step_or_die(db, st);
            sqlite3_finalize(st);
        }
    }
    exec_or_die(db, "COMMIT");
    sqlite3_close(db);
    printf("{\"synthetic\": \"%s\", \"rows\": %lld, \"change_pct\": %g, \"ms\": %.0f}\n", dir,
           (long long)rows, pct, bench_now_ms() - t0);
}

/* ---- measurements, each in a child process ---------------------------------------------- */

/* zstd of the rest of `f` at `level` (streaming, libzstd via transfer/zstream.h). */
static json_t *zstd_of(FILE *f, int level)
{
    FILE *sink = fopen("/dev/null", "wb");
    uint64_t nin = 0, nout = 0;
    pb_error err = PB_ERROR_INIT;
    double t0 = bench_now_ms();
    rewind(f);
    int rc = pb_zstd_compress_stream(f, sink, level, 0, &nin, &nout, &err);
    fclose(sink);
    if (rc)
        die("zstd", err.msg);
    return json_pack("{s:I, s:f}", "bytes", (json_int_t)nout, "ms", bench_now_ms() - t0);
}

static int g_runs = 3;           /* --runs: repetitions of our timings */
static int g_quick = 0;          /* --quick: our diff only, no zstd, no validation */
static const char *g_out = NULL; /* --out: where our (threaded) changeset is written */
static int g_warm = 1;           /* --no-warm: no checksum pass to warm the page cache first */

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), dbl_cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static json_t *run_ours(const char *base, const char *target, unsigned flags)
{
    pb_error err = PB_ERROR_INIT;
    pb_diff_options o = PB_DIFF_OPTIONS_INIT;
    pb_diff_stats st;
    bench_counter c = {NULL, 0};
    double ms = 0, cms = 0, wv[64], cv[64];
    int nruns = g_runs < 64 ? g_runs : 64;
    o.flags = flags;
    for (int run = 0; run < nruns; run++) {
        if (c.f)
            fclose(c.f);
        c.f = tmpfile();
        c.n = 0;
        double t0 = bench_now_ms(), c0 = bench_cpu_ms();
        int rc = pb_sqldiff_diff(&st, base, target, &o, bench_count_out, &c, &err);
        double w = bench_now_ms() - t0, cw = bench_cpu_ms() - c0;
        if (rc)
            die("pb_sqldiff_diff", err.msg);
        if (run == 0 || w < ms) {
            ms = w;
            cms = cw;
        }
        wv[run] = w;
        cv[run] = cw;
    }
    double mw = median(wv, nruns), mc = median(cv, nruns);
    if (g_out && !(flags & (PB_DIFF_SINGLE_THREAD | PB_DIFF_PATCHSET))) {
        FILE *f = fopen(g_out, "wb");
        char buf[65536];
        size_t n;
        fflush(c.f);
        rewind(c.f);
        while (f && (n = fread(buf, 1, sizeof(buf), c.f)) > 0)
            if (fwrite(buf, 1, n, f) != n)
                break;
        if (!f || fclose(f) != 0)
            die("cannot write", g_out);
    }
    if (g_quick) {
        fclose(c.f);
        return json_pack("{s:i, s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:I}", "runs", nruns,
                         "ms_median", mw, "cpu_ms_median", mc, "rows_per_s_median",
                         mw > 0 ? st.rows_target / (mw / 1e3) : 0.0, "rows_per_cpu_s_median",
                         mc > 0 ? st.rows_target / (mc / 1e3) : 0.0, "rows_target",
                         (json_int_t)st.rows_target, "bytes", (json_int_t)st.bytes, "inserted",
                         (json_int_t)st.inserted, "updated", (json_int_t)st.updated, "deleted",
                         (json_int_t)st.deleted, "peak_rss_kib", (json_int_t)self_rss_kib());
    }
    long rss = self_rss_kib();
    fflush(c.f);
    /* validation of what we produced */
    pb_changeset_summary sum;
    pb_changeset_check_options co = PB_CHANGESET_CHECK_OPTIONS_INIT;
    co.expect_bytes = c.n;
    rewind(c.f);
    double v0 = bench_now_ms();
    if (pb_changeset_validate_file(&sum, c.f, &co, &err))
        die("pb_changeset_validate", err.msg);
    double vms = bench_now_ms() - v0;
    json_t *j =
        json_pack("{s:f, s:I, s:I, s:I, s:f, s:I, s:I, s:I, s:I, s:i, s:i, s:I, s:f}", "ms", ms,
                  "rows_base", (json_int_t)st.rows_base, "rows_target", (json_int_t)st.rows_target,
                  "rows_compared", (json_int_t)st.rows_compared, "rows_per_s",
                  ms > 0 ? st.rows_target / (ms / 1e3) : 0.0, "inserted", (json_int_t)st.inserted,
                  "updated", (json_int_t)st.updated, "deleted", (json_int_t)st.deleted, "bytes",
                  (json_int_t)st.bytes, "tables", (int)st.tables, "tables_without_pk",
                  (int)st.tables_without_pk, "peak_rss_kib", (json_int_t)rss, "validate_ms", vms);
    json_object_set_new(j, "cpu_ms", json_real(cms));
    json_object_set_new(j, "rows_per_cpu_s", json_real(cms > 0 ? st.rows_target / (cms / 1e3) : 0));
    json_object_set_new(j, "runs", json_integer(nruns));
    json_object_set_new(j, "ms_median", json_real(mw));
    json_object_set_new(j, "cpu_ms_median", json_real(mc));
    json_object_set_new(j, "rows_per_s_median",
                        json_real(mw > 0 ? st.rows_target / (mw / 1e3) : 0));
    json_object_set_new(j, "rows_per_cpu_s_median",
                        json_real(mc > 0 ? st.rows_target / (mc / 1e3) : 0));
    json_object_set_new(j, "zstd3", zstd_of(c.f, 3));
    json_object_set_new(j, "zstd19", zstd_of(c.f, 19));
    fclose(c.f);
    return j;
}

static json_t *run_checksum(const char *path)
{
    pb_error err = PB_ERROR_INIT;
    pb_checksum c;
    char hex[PB_CHECKSUM_HEX_SIZE];
    double t0 = bench_now_ms(), c0 = bench_cpu_ms();
    if (pb_sqldiff_checksum(&c, path, NULL, &err))
        die("pb_sqldiff_checksum", err.msg);
    double ms = bench_now_ms() - t0, cms = bench_cpu_ms() - c0;
    return json_pack("{s:f, s:f, s:I, s:f, s:s, s:I}", "ms", ms, "cpu_ms", cms, "rows",
                     (json_int_t)c.rows, "rows_per_s", ms > 0 ? c.rows / (ms / 1e3) : 0.0, "digest",
                     pb_checksum_hex(hex, &c), "peak_rss_kib", (json_int_t)self_rss_kib());
}

static json_t *run_session(const char *base, const char *target)
{
    sqlite3 *db = NULL;
    sqlite3_session *s = NULL;
    sqlite3_stmt *st = NULL;
    double t0 = bench_now_ms(), c0 = bench_cpu_ms();
    if (sqlite3_open_v2(target, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        die("cannot open", target);
    char *sql = sqlite3_mprintf("ATTACH %Q AS aux", base);
    exec_or_die(db, sql);
    sqlite3_free(sql);
    if (sqlite3session_create(db, "main", &s) != SQLITE_OK)
        die("sqlite3session_create", sqlite3_errmsg(db));
    sqlite3_prepare_v2(db,
                       "SELECT name FROM main.sqlite_master WHERE type='table' AND name NOT LIKE "
                       "'sqlite\\_%' ESCAPE '\\' AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name",
                       -1, &st, NULL);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        char *msg = NULL;
        sqlite3session_attach(s, t);
        if (sqlite3session_diff(s, "aux", t, &msg) != SQLITE_OK)
            die("sqlite3session_diff", msg);
    }
    sqlite3_finalize(st);
    double diff_ms = bench_now_ms() - t0, diff_cpu = bench_cpu_ms() - c0;
    bench_counter cs = {tmpfile(), 0}, ps = {tmpfile(), 0};
    t0 = bench_now_ms();
    if (sqlite3session_changeset_strm(s, bench_sess_out, &cs) != SQLITE_OK)
        die("sqlite3session_changeset_strm", NULL);
    double cs_ms = bench_now_ms() - t0;
    t0 = bench_now_ms();
    if (sqlite3session_patchset_strm(s, bench_sess_out, &ps) != SQLITE_OK)
        die("sqlite3session_patchset_strm", NULL);
    double ps_ms = bench_now_ms() - t0;
    long rss = self_rss_kib();
    sqlite3session_delete(s);
    sqlite3_close(db);
    fflush(cs.f);
    fflush(ps.f);
    json_t *j = json_pack("{s:f, s:f, s:f, s:I, s:I, s:I}", "diff_ms", diff_ms, "changeset_ms",
                          cs_ms, "patchset_ms", ps_ms, "changeset_bytes", (json_int_t)cs.n,
                          "patchset_bytes", (json_int_t)ps.n, "peak_rss_kib", (json_int_t)rss);
    json_object_set_new(j, "diff_cpu_ms", json_real(diff_cpu));
    json_object_set_new(j, "changeset_zstd19", zstd_of(cs.f, 19));
    json_object_set_new(j, "patchset_zstd3", zstd_of(ps.f, 3));
    json_object_set_new(j, "patchset_zstd19", zstd_of(ps.f, 19));
    fclose(cs.f);
    fclose(ps.f);
    return j;
}

/* One measurement: fn(a, b, flags) in a child, with its peak RSS as child_maxrss_kib. */
typedef struct pair_call {
    json_t *(*fn)(const char *, const char *, unsigned);
    const char *a, *b;
    unsigned flags;
} pair_call;

static json_t *pair_call_run(void *p)
{
    pair_call *c = p;
    return c->fn(c->a, c->b, c->flags);
}

static json_t *in_child(json_t *(*fn)(const char *, const char *, unsigned), const char *a,
                        const char *b, unsigned flags)
{
    pair_call call = {fn, a, b, flags};
    char why[512];
    json_t *j = bench_in_child(pair_call_run, &call, "child_maxrss_kib", why, sizeof(why));
    if (!j)
        die(why, NULL);
    return j;
}

static json_t *ours_fn(const char *a, const char *b, unsigned flags)
{
    return run_ours(a, b, flags);
}

static json_t *patch_fn(const char *a, const char *b, unsigned flags)
{
    return run_ours(a, b, flags | PB_DIFF_PATCHSET);
}

static json_t *session_fn(const char *a, const char *b, unsigned flags)
{
    (void)flags;
    return run_session(a, b);
}

static json_t *checksum_fn(const char *a, const char *b, unsigned flags)
{
    (void)a;
    (void)flags;
    return run_checksum(b);
}

static json_t *run_sqldiff_tool(const char *base, const char *target)
{
    const char *tool = "/usr/bin/sqldiff";
    if (access(tool, X_OK) != 0)
        return json_pack("{s:s}", "skipped", "/usr/bin/sqldiff not installed (sqlite3-tools)");
    char out[] = "/tmp/bench_diff_sqldiff_XXXXXX";
    int fd = mkstemp(out);
    if (fd < 0)
        die("mkstemp", strerror(errno));
    close(fd);
    char *argv[] = {(char *)tool, "--changeset", out, (char *)base, (char *)target, NULL};
    pid_t pid;
    double t0 = bench_now_ms();
    if (posix_spawn(&pid, tool, NULL, NULL, argv, environ) != 0)
        die("posix_spawn", tool);
    int status;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    double ms = bench_now_ms() - t0;
    struct stat sb;
    stat(out, &sb);
    FILE *f = fopen(out, "rb");
    pb_changeset_summary sum;
    pb_error err = PB_ERROR_INIT;
    int valid = pb_changeset_validate_file(&sum, f, NULL, &err);
    json_t *j = json_pack("{s:f, s:I, s:I, s:i, s:s}", "ms", ms, "changeset_bytes",
                          (json_int_t)sb.st_size, "peak_rss_kib", (json_int_t)ru.ru_maxrss, "exit",
                          WIFEXITED(status) ? WEXITSTATUS(status) : -1, "our_validator",
                          valid ? err.msg : "valid");
    json_object_set_new(j, "cpu_ms",
                        json_real((ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
                                  (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3));
    json_object_set_new(j, "zstd19", zstd_of(f, 19));
    fclose(f);
    remove(out);
    return j;
}

int main(int argc, char **argv)
{
    unsigned flags = 0;
    int session = 1, tool = 1;
    const char *synth = NULL;
    int64_t rows = 1500000;
    double pct = 1.0;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--single-thread") == 0)
            flags |= PB_DIFF_SINGLE_THREAD;
        else if (strcmp(argv[i], "--no-session") == 0)
            session = 0;
        else if (strcmp(argv[i], "--no-sqldiff") == 0)
            tool = 0;
        else if (strcmp(argv[i], "--quick") == 0)
            g_quick = 1;
        else if (strcmp(argv[i], "--no-warm") == 0)
            g_warm = 0;
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            g_out = argv[++i];
        else if (strcmp(argv[i], "--synthetic") == 0 && i + 1 < argc)
            synth = argv[++i];
        else if (strcmp(argv[i], "--rows") == 0 && i + 1 < argc)
            rows = strtoll(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            g_runs = atoi(argv[++i]);
            if (g_runs < 1)
                g_runs = 1;
        } else if (strcmp(argv[i], "--change") == 0 && i + 1 < argc)
            pct = strtod(argv[++i], NULL);
        else
            die("unknown option", argv[i]);
    }
    if (synth) {
        make_synthetic(synth, rows > 10 ? rows : 10, pct);
        return 0;
    }
    if (argc - i != 2) {
        fprintf(stderr, "usage: bench_diff [--runs R] [--single-thread] [--no-session] "
                        "[--no-sqldiff] [--quick] [--no-warm] [--out FILE] BASE TARGET\n       "
                        "bench_diff --synthetic DIR [--rows N] "
                        "[--change PCT]\n");
        return 2;
    }
    const char *base = argv[i], *target = argv[i + 1];
    struct stat sb, st;
    if (stat(base, &sb) != 0 || stat(target, &st) != 0)
        die("cannot stat the DBs", strerror(errno));

    double load[3] = {0, 0, 0};
    getloadavg(load, 3);
    json_t *r = json_pack("{s:s, s:s, s:I, s:I, s:s, s:f, s:i}", "base", base, "target", target,
                          "base_bytes", (json_int_t)sb.st_size, "target_bytes",
                          (json_int_t)st.st_size, "sqlite", sqlite3_libversion(), "loadavg",
                          load[0], "cpus", (int)sysconf(_SC_NPROCESSORS_ONLN));
    /* warm the page cache so that the first measurement is not penalised */
    if (g_warm)
        in_child(checksum_fn, base, base, flags);
    if (g_quick) { /* our diff only: threaded, then on one thread, medians of the runs */
        if (g_warm)
            in_child(checksum_fn, target, target, flags);
        if (!(flags & PB_DIFF_SINGLE_THREAD))
            json_object_set_new(r, "threaded", in_child(ours_fn, base, target, flags));
        json_object_set_new(r, "single_thread",
                            in_child(ours_fn, base, target, flags | PB_DIFF_SINGLE_THREAD));
        json_dumpf(r, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        putchar('\n');
        json_decref(r);
        return 0;
    }
    json_t *ours = in_child(ours_fn, base, target, flags);
    json_object_set_new(r, "plexburst", ours);
    json_object_set_new(r, "plexburst_patchset", in_child(patch_fn, base, target, flags));
    if (!(flags & PB_DIFF_SINGLE_THREAD))
        json_object_set_new(r, "plexburst_single_thread",
                            in_child(ours_fn, base, target, flags | PB_DIFF_SINGLE_THREAD));
    json_object_set_new(r, "checksum", in_child(checksum_fn, base, target, flags));
    json_t *ses = NULL;
    if (session) {
        ses = in_child(session_fn, base, target, flags);
        json_object_set_new(r, "session", ses);
    }
    if (tool)
        json_object_set_new(r, "sqldiff", run_sqldiff_tool(base, target));

    /* the targets of the issue */
    json_t *o = json_object_get(r, "plexburst");
    double rps = json_real_value(json_object_get(o, "rows_per_s"));
    double rpc = json_real_value(json_object_get(o, "rows_per_cpu_s_median"));
    json_int_t rss = bench_jint(o, "peak_rss_kib", NULL);
    json_t *t = json_pack("{s:b, s:b, s:b}", "rows_per_cpu_s_ge_1M", rpc >= 1e6, "rows_per_s_ge_1M",
                          rps >= 1e6, "peak_rss_le_64MB", rss <= 64 * 1024);
    if (ses) {
        json_int_t ref = bench_jint(ses, "patchset_zstd19", "bytes");
        if (ref > 0) {
            json_object_set_new(t, "changeset_zstd19_vs_session_patchset_zstd19",
                                json_real((double)bench_jint(o, "zstd19", "bytes") / (double)ref));
            json_object_set_new(t, "changeset_zstd3_vs_session_patchset_zstd19",
                                json_real((double)bench_jint(o, "zstd3", "bytes") / (double)ref));
            json_object_set_new(
                t, "patchset_zstd19_vs_session_patchset_zstd19",
                json_real((double)bench_jint(json_object_get(r, "plexburst_patchset"), "zstd19",
                                             "bytes") /
                          (double)ref));
        }
    }
    json_object_set_new(r, "targets", t);
    json_dumpf(r, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
    putchar('\n');
    json_decref(r);
    return 0;
}

/*
 * runner_plex_idle.c: "done means done" for the plex runner. A phase ends only when every signal
 * says idle at once and keeps saying it for the stability window (PLEXBURST_IDLE_SECONDS):
 *   - no activity in /activities (for the section, and no global one such as a butler task);
 *   - the section's `refreshing` flag off (any section's for a global phase);
 *   - the DB's counters (items, analysed media, loudness, sonic, preview and marker rows) no
 *     longer moving;
 *   - no "Plex Media Scanner" process where it can be seen (/proc).
 * Plex leaves gaps between its activities (a scan, then the analysis it queues): a gap shorter
 * than the window does not end a phase. Past PLEXBURST_PHASE_TIMEOUT the phase fails. Progress
 * lines (counts, current activity, elapsed, a rate-based ETA) go out at the phase's first poll,
 * then every progress_s (60 s by default), each with a progress record for the home
 * (PB_RUNNER_PROGRESS_PREFIX: the phase's done/total, ETA, every counter), and one more when the
 * phase ends.
 * Role: engine/runner (runner_plex.h). Prerequisites: SQLite through the compat layer, /proc.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>

#include "plexburst/compat.h"
#include "plexburst/plex.h"
#include "runner_plex.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

enum { C_ITEMS, C_DEEP, C_LOUD, C_SONIC, C_SONIC_ALL, C_BIF, C_MARKERS, C_N };

static const char *const count_names[C_N] = {"items",  "analysed",   "loudness", "sonic",
                                             "tracks", "thumbnails", "markers"};

/* The counters of the library DB, section `sec` (0: all). -1 each when it cannot be read. */
static void db_counts(const char *plex_dir, long sec, long long v[C_N])
{
    static const char *const sql[C_N] = {
        "SELECT count(*) FROM metadata_items WHERE metadata_type IN (1,4,10,13) AND deleted_at"
        " IS NULL AND (?1=0 OR library_section_id=?1)",
        "SELECT count(*) FROM media_items mi JOIN metadata_items m ON m.id=mi.metadata_item_id"
        " WHERE mi.media_analysis_version >= 6 AND (?1=0 OR m.library_section_id=?1)",
        "SELECT count(*) FROM metadata_items WHERE extra_data LIKE '%ln:loudnessAnalysisVersion%'"
        " AND (?1=0 OR library_section_id=?1)",
        "SELECT count(*) FROM metadata_items WHERE metadata_type=10 AND extra_data LIKE"
        " '%ms:musicAnalysisVersion%' AND (?1=0 OR library_section_id=?1)",
        "SELECT count(*) FROM metadata_items WHERE metadata_type=10 AND (?1=0 OR"
        " library_section_id=?1)",
        "SELECT count(*) FROM media_parts mp JOIN media_items mi ON mi.id=mp.media_item_id JOIN"
        " metadata_items m ON m.id=mi.metadata_item_id WHERE mp.extra_data LIKE"
        " '%\"mi:indexes\"%' AND (?1=0 OR m.library_section_id=?1)",
        "SELECT count(*) FROM taggings t JOIN tags g ON g.id=t.tag_id JOIN metadata_items m ON"
        " m.id=t.metadata_item_id WHERE g.tag_type=12 AND (?1=0 OR m.library_section_id=?1)",
    };
    char path[4200];
    sqlite3 *db = NULL;
    pb_error e = PB_ERROR_INIT;
    for (int i = 0; i < C_N; i++)
        v[i] = -1;
    snprintf(path, sizeof(path), "%s/" PB_PLEX_DB_REL, plex_dir);
    if (access(path, F_OK) != 0 || pb_compat_open(&db, path, PB_OPEN_READONLY, &e) != 0)
        return;
    sqlite3_busy_timeout(db, 5000);
    for (int i = 0; i < C_N; i++) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, sql[i], -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, sec);
            if (sqlite3_step(st) == SQLITE_ROW)
                v[i] = sqlite3_column_int64(st, 0);
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
}

/* 1 when a "Plex Media Scanner" process runs (its comm is cut to 15 bytes). */
static int scanner_running(void)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int found = 0;
    while (d && !found && (e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char p[300], comm[64] = "";
        snprintf(p, sizeof(p), "/proc/%s/comm", e->d_name);
        FILE *f = fopen(p, "r");
        if (f) {
            if (fgets(comm, sizeof(comm), f))
                found = strncmp(comm, "Plex Media Scan", 15) == 0;
            fclose(f);
        }
    }
    if (d)
        closedir(d);
    return found;
}

/* Busy signals of Plex's API: *acts activities (the first one's title into title), *refreshing
 * when the section (any, for 0) is refreshing. PB_ENET when Plex does not answer. */
static int api_signals(pb_runner_plex_http *h, long sec, int *acts, int *refreshing, char *title,
                       size_t cap, int *progress, pb_error *err)
{
    long code;
    json_t *o = NULL;
    int error = pb_runner_plex_call(h, "GET", "/activities", &code, &o, err);
    *acts = 0;
    *refreshing = 0;
    *progress = -1;
    if (error)
        return error;
    if (code != 200) {
        json_decref(o);
        return pb_error_set(err, PB_ENET, "plex: GET /activities answered %ld", code);
    }
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(json_object_get(o, "MediaContainer"), "Activity"), i, a)
    {
        if (!*acts) {
            const char *t = json_string_value(json_object_get(a, "title"));
            snprintf(title, cap, "%s", t ? t : "");
            json_t *pr = json_object_get(a, "progress");
            *progress = json_is_number(pr) ? (int)json_number_value(pr) : -1;
        }
        (*acts)++;
    }
    json_decref(o);
    o = NULL;
    if ((error = pb_runner_plex_call(h, "GET", "/library/sections", &code, &o, err)) != 0)
        return error;
    json_t *d;
    json_array_foreach(json_object_get(json_object_get(o, "MediaContainer"), "Directory"), i, d)
    {
        json_t *k = json_object_get(d, "key"), *r = json_object_get(d, "refreshing");
        long id = json_is_string(k) ? atol(json_string_value(k)) : (long)json_integer_value(k);
        int on = json_is_true(r) || (json_is_integer(r) && json_integer_value(r)) ||
                 (json_is_string(r) && strcmp(json_string_value(r), "1") == 0);
        if (on && (sec == 0 || id == sec))
            *refreshing = 1;
    }
    json_decref(o);
    return 0;
}

static void hms(char *out, size_t cap, double s)
{
    long t = (long)s;
    snprintf(out, cap, "%02ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
}

/* What a phase's bar counts: *done of *total (0: unknown) and its unit. */
static const char *phase_metric(const char *phase, const long long v[C_N], long long *done,
                                long long *total)
{
    *total = 0;
    if (!strcmp(phase, "scan")) {
        *done = v[C_ITEMS];
        return "items scanned";
    }
    if (!strcmp(phase, "sonic")) {
        *done = v[C_SONIC];
        *total = v[C_SONIC_ALL];
        return "tracks with sonic analysis";
    }
    if (strstr(phase, "markers")) {
        *done = v[C_MARKERS];
        return "markers";
    }
    *total = v[C_ITEMS];
    if (!strcmp(phase, "thumbnails")) {
        *done = v[C_BIF];
        return "parts with thumbnails";
    }
    if (!strcmp(phase, "loudness")) {
        *done = v[C_LOUD];
        return "items with loudness";
    }
    *done = v[C_DEEP];
    return "parts analysed";
}

/* The counters as the home's --json names them (docs/cli.md, "runner"). */
static json_t *counts_json(const long long v[C_N])
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "items", (json_int_t)v[C_ITEMS],
                     "parts_analysed", (json_int_t)v[C_DEEP], "loudness_done",
                     (json_int_t)v[C_LOUD], "sonic_done", (json_int_t)v[C_SONIC], "sonic_total",
                     (json_int_t)v[C_SONIC_ALL], "thumbnails_done", (json_int_t)v[C_BIF], "markers",
                     (json_int_t)v[C_MARKERS]);
}

/* One progress record for the home (PB_RUNNER_PROGRESS_PREFIX + JSON, see runner.h): the
 * phase's bar (done of total, the rate-based ETA, -1 unknown) and every counter; `final`: the
 * phase is over (then seconds is its duration). */
static void progress_record(FILE *log, const pb_runner_plex_phase *p, const long long cur[C_N],
                            const long long first[C_N], double elapsed, int final,
                            const char *status)
{
    long long done, total, d0, t0;
    const char *unit = phase_metric(p->name, cur, &done, &total);
    phase_metric(p->name, first, &d0, &t0);
    double eta = -1;
    if (!final && done > d0 && total > done && elapsed > 0)
        eta = elapsed / (double)(done - d0) * (double)(total - done);
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:I, s:I, s:f, s:f, s:b, s:s, s:o}", "phase", p->name, "section",
                  p->section_title ? p->section_title : "", "unit", unit, "done", (json_int_t)done,
                  "total", (json_int_t)total, "elapsed_s", elapsed, "eta_s", eta, "final", final,
                  "status", status ? status : "", "counts", counts_json(cur));
    char *txt = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    if (txt)
        pb_runner_plex_say(log, PB_RUNNER_PROGRESS_PREFIX "%s", txt);
    free(txt);
    json_decref(o);
}

int pb_runner_plex_wait(pb_runner_plex_http *h, const pb_runner_plex_cfg *c,
                        const pb_runner_plex_phase *p, json_t *counts_out, FILE *log, pb_error *err)
{
    double t0 = now_s(), idle_since = 0, last_progress = t0;
    long long prev[C_N], cur[C_N], first[C_N];
    int have_prev = 0, net_fail = 0, said = 0;
    char where[300];
    snprintf(where, sizeof(where), "%s%s%s", p->name, p->section_title ? " " : "",
             p->section_title ? p->section_title : "");
    for (;;) {
        int acts = 0, refreshing = 0, progress = -1;
        char title[256] = "";
        pb_error e = PB_ERROR_INIT;
        int rc =
            api_signals(h, p->section, &acts, &refreshing, title, sizeof(title), &progress, &e);
        if (rc) {
            /* Plex busy enough not to answer is not idle; a few misses are tolerated */
            if (++net_fail > 10)
                return pb_error_set(err, PB_ENET, "%s", e.msg);
        } else {
            net_fail = 0;
        }
        db_counts(c->plex_dir, p->section, cur);
        if (!have_prev)
            memcpy(first, cur, sizeof(cur));
        int moving = have_prev && memcmp(prev, cur, sizeof(cur)) != 0;
        memcpy(prev, cur, sizeof(cur));
        have_prev = 1;
        int scanner = scanner_running();
        int busy = rc != 0 || acts > 0 || refreshing || moving || scanner;
        double t = now_s();
        if (busy)
            idle_since = 0;
        else if (idle_since == 0)
            idle_since = t;
        if (t - last_progress >= c->progress_s || !said) {
            char el[32], eta[64] = "", pct[16] = "", st[300];
            if (acts && progress >= 0)
                snprintf(pct, sizeof(pct), " %d%%", progress);
            hms(el, sizeof(el), t - t0);
            long long done, total, d0, t1;
            phase_metric(p->name, cur, &done, &total);
            phase_metric(p->name, first, &d0, &t1);
            if (done > d0 && total > done) {
                char e2[32];
                hms(e2, sizeof(e2), (t - t0) / (double)(done - d0) * (double)(total - done));
                snprintf(eta, sizeof(eta), ", ETA ~%s", e2);
            }
            snprintf(st, sizeof(st), "%s%s%s", acts ? "working: " : (busy ? "busy" : "idle"),
                     acts ? title : "", pct);
            progress_record(log, p, cur, first, t - t0, 0, st);
            said = 1;
            pb_runner_plex_say(log,
                               "📊 %s: items %lld, analysed %lld/%lld, loudness %lld, sonic "
                               "%lld/%lld, thumbnails %lld, markers %lld; %s%s%s; elapsed %s%s",
                               where, cur[C_ITEMS], cur[C_DEEP], cur[C_ITEMS], cur[C_LOUD],
                               cur[C_SONIC], cur[C_SONIC_ALL], cur[C_BIF], cur[C_MARKERS],
                               acts ? "working: " : (busy ? "busy" : "idle"), acts ? title : "",
                               pct, el, eta);
            last_progress = t;
        }
        if (idle_since && t - idle_since >= c->idle_s)
            break;
        if (t - t0 > c->phase_timeout_s)
            return pb_error_set(err, PB_EREFUSED,
                                "plex: %s still working after %.0f s (PLEXBURST_PHASE_TIMEOUT)",
                                where, c->phase_timeout_s);
        usleep((useconds_t)(c->poll_s * 1e6));
    }
    char el[32];
    hms(el, sizeof(el), now_s() - t0);
    pb_runner_plex_say(log,
                       "✅ %s done in %s: items %lld, analysed %lld, loudness %lld, sonic %lld, "
                       "thumbnails %lld, markers %lld",
                       where, el, cur[C_ITEMS], cur[C_DEEP], cur[C_LOUD], cur[C_SONIC], cur[C_BIF],
                       cur[C_MARKERS]);
    progress_record(log, p, cur, first, now_s() - t0, 1, "done");
    if (counts_out)
        for (int i = 0; i < C_N; i++)
            json_object_set_new(counts_out, count_names[i], json_integer(cur[i]));
    return 0;
}

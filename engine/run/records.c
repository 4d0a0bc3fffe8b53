/*
 * records.c: the run records of a home data dir (<state dir>/runs/<run-id>.json, written as a
 * run goes and at its end) and `plexburst status` (pb_run_status_read): the baseline (the apply's
 * record <state dir>/baseline), the last runs, an interrupted run waiting in
 * <state dir>/sync/current.json, a pending apply journal.
 * Role: engine/run (run.c writes, the CLI's status command reads). Prerequisites: jansson,
 * SQLite (the apply journal is read read-only), pb_plexdir.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>

#include "fs.h"
#include "plexdir.h"
#include "run_int.h"

int pb_run__record(const char *state_dir, const pb_run_result *r, const char *state, pb_error *err)
{
    char dir[PATH_MAX + 16], path[PATH_MAX + 80];
    snprintf(dir, sizeof(dir), "%s/" PB_HOME_RUNS_DIR, state_dir);
    int error = pb_fs_mkdirs(dir, 0700, err);
    if (error < 0)
        return error;
    snprintf(path, sizeof(path), "%s/%s.json", dir, r->run_id);
    json_t *phases = json_array();
    for (size_t i = 0; i < r->nphases; i++)
        json_array_append_new(phases, json_pack("{s:s, s:b, s:f}", "name", r->phases[i].name, "ok",
                                                r->phases[i].ok, "ms", r->phases[i].ms));
    const char *last = r->nphases ? r->phases[r->nphases - 1].name : "";
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:{s:I, s:I, s:I}, s:{s:f, s:f}, "
                  "s:o, s:s, s:s, s:s}",
                  "run_id", r->run_id, "mode", r->mode_name, "state", state, "phase",
                  r->failed_phase ? r->failed_phase_name : last, "error", r->error, "started",
                  (json_int_t)time(NULL), "pid", (json_int_t)getpid(), "bytes", "up",
                  (json_int_t)r->bytes.up, "down", (json_int_t)r->bytes.down,
                  "baseline_full_upload", (json_int_t)r->bytes.baseline_full_upload, "timings_ms",
                  "total", r->ms.total, "downtime", r->ms.downtime, "phases", phases, "log",
                  r->log_path, "baseline", r->baseline_id, "resumed_run", r->resumed_run);
    if (!o)
        return pb_error_set(err, PB_ENOMEM, "out of memory");
    if (r->cloud.provider[0]) /* the cloud, as --json names it (cost at the end of the run) */
        json_object_set_new(o, "cloud",
                            json_pack("{s:s, s:s, s:s, s:f, s:f, s:f, s:s}", "provider",
                                      r->cloud.provider, "zone", r->cloud.zone, "type",
                                      r->cloud.type, "hourly_price_eur", r->cloud.hourly_price,
                                      "seconds", r->cloud.seconds, "cost_eur", r->cloud.cost,
                                      "server_id", r->cloud.server_id));
    /* keep the first start time */
    json_t *old = NULL;
    pb_error e = PB_ERROR_INIT;
    if (pb_run__read_json(&old, path, &e) == 0) {
        json_t *st = json_object_get(old, "started");
        if (json_is_integer(st))
            json_object_set(o, "started", st);
        json_decref(old);
    }
    error = pb_run__write_json(path, o, err);
    json_decref(o);
    return error;
}

typedef struct name_vec {
    char (*v)[64];
    size_t n, cap;
} name_vec;

static int cmp_desc(const void *a, const void *b)
{
    return strcmp((const char *)b, (const char *)a);
}

/* Run ids of <state>/runs, newest first (ids sort by time). */
static int list_runs(name_vec *out, const char *state_dir)
{
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof(dir), "%s/" PB_HOME_RUNS_DIR, state_dir);
    memset(out, 0, sizeof(*out));
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 6 || l >= 60 || strcmp(e->d_name + l - 5, ".json") != 0)
            continue;
        if (out->n == out->cap) {
            size_t cap = out->cap ? out->cap * 2 : 32;
            void *p = realloc(out->v, cap * sizeof(*out->v));
            if (!p)
                break;
            out->v = p;
            out->cap = cap;
        }
        snprintf(out->v[out->n], 64, "%.*s", (int)(l - 5), e->d_name);
        out->n++;
    }
    closedir(d);
    if (out->n)
        qsort(out->v, out->n, sizeof(*out->v), cmp_desc);
    return 0;
}

void pb_run__prune_records(const char *state_dir, size_t keep)
{
    name_vec v;
    list_runs(&v, state_dir);
    for (size_t i = keep; i < v.n; i++) {
        char p[PATH_MAX + 128];
        snprintf(p, sizeof(p), "%s/" PB_HOME_RUNS_DIR "/%s.json", state_dir, v.v[i]);
        unlink(p);
        snprintf(p, sizeof(p), "%s/" PB_HOME_LOGS_DIR "/%s.log", state_dir, v.v[i]);
        unlink(p);
    }
    free(v.v);
}

static void copy_str(char *dst, size_t cap, json_t *v)
{
    const char *s = json_string_value(v);
    snprintf(dst, cap, "%s", s ? s : "");
}

int pb_run_status_read(pb_run_status *out, const char *plex_dir, const char *state_dir,
                       pb_error *err)
{
    memset(out, 0, sizeof(*out));
    pb_plexdir pd;
    int error = pb_plexdir_open(&pd, plex_dir, err);
    if (!error)
        error = pb_plexdir_state(&pd, state_dir, 0, err);
    if (!error)
        snprintf(out->state_dir, sizeof(out->state_dir), "%s", pd.state_dir);
    pb_plexdir_dispose(&pd);
    if (error < 0)
        return error;
    const char *s = out->state_dir;
    char path[PATH_MAX + 128];
    json_t *o = NULL;
    pb_error e = PB_ERROR_INIT;
    pb_baseline rec;
    if (pb_baseline_read(&rec, s, &e) == 0) {
        out->have_baseline = 1;
        pb_run__id_hex(out->baseline_id, &rec);
    }
    snprintf(path, sizeof(path), "%s/" PB_HOME_SYNC_DIR "/current.json", s);
    if (pb_run__read_json(&o, path, &e) == 0) {
        out->interrupted_run = 1;
        copy_str(out->interrupted_id, sizeof(out->interrupted_id), json_object_get(o, "run_id"));
        copy_str(out->interrupted_phase, sizeof(out->interrupted_phase),
                 json_object_get(o, "state"));
        json_int_t pid = json_integer_value(json_object_get(o, "pid"));
        if (pid > 0 && kill((pid_t)pid, 0) == 0)
            out->interrupted_run = 0; /* still running */
        json_decref(o);
    }

    name_vec v;
    list_runs(&v, s);
    for (size_t i = 0; i < v.n && out->nruns < PB_STATUS_MAX_RUNS; i++) {
        snprintf(path, sizeof(path), "%s/" PB_HOME_RUNS_DIR "/%s.json", s, v.v[i]);
        if (pb_run__read_json(&o, path, &e) != 0)
            continue;
        pb_run_record *r = &out->runs[out->nruns++];
        copy_str(r->run_id, sizeof(r->run_id), json_object_get(o, "run_id"));
        copy_str(r->mode, sizeof(r->mode), json_object_get(o, "mode"));
        copy_str(r->state, sizeof(r->state), json_object_get(o, "state"));
        copy_str(r->phase, sizeof(r->phase), json_object_get(o, "phase"));
        copy_str(r->error, sizeof(r->error), json_object_get(o, "error"));
        copy_str(r->log_path, sizeof(r->log_path), json_object_get(o, "log"));
        r->started = json_integer_value(json_object_get(o, "started"));
        json_t *b = json_object_get(o, "bytes"), *t = json_object_get(o, "timings_ms");
        r->bytes_up = (uint64_t)json_integer_value(json_object_get(b, "up"));
        r->bytes_down = (uint64_t)json_integer_value(json_object_get(b, "down"));
        r->ms_total = json_number_value(json_object_get(t, "total"));
        r->ms_downtime = json_number_value(json_object_get(t, "downtime"));
        json_int_t pid = json_integer_value(json_object_get(o, "pid"));
        if (strcmp(r->state, "running") == 0 && !(pid > 0 && kill((pid_t)pid, 0) == 0))
            snprintf(r->state, sizeof(r->state), "interrupted");
        json_decref(o);
    }
    free(v.v);

    /* an apply journal with a run in it */
    snprintf(path, sizeof(path), "%s/apply.journal", s);
    if (pb_fs_exists(path)) {
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
            sqlite3_prepare_v2(db, "SELECT run_id, state FROM run LIMIT 1", -1, &st, NULL) ==
                SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW) {
            out->pending_apply = 1;
            snprintf(out->pending_apply_run, sizeof(out->pending_apply_run), "%s",
                     sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st, 0) : "");
            snprintf(out->pending_apply_state, sizeof(out->pending_apply_state), "%s",
                     sqlite3_column_text(st, 1) ? (const char *)sqlite3_column_text(st, 1) : "");
        }
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
    return 0;
}

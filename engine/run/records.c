/*
 * records.c: the run records of a home data dir (<state dir>/runs/<run-id>.json, written as a
 * run goes and at its end, replaced atomically) and `plexburst status` (pb_run_status_read,
 * pb_run_record_read): the baseline (the apply's record <state dir>/baseline), the last runs, an
 * interrupted run waiting in <state dir>/sync/current.json, a pending apply journal.
 * A record keeps the summary of the run's report, bounded: the phases, the rows by table (the
 * busiest PB_RECORD_MAX_TABLES), the new titles (the first PB_RECORD_MAX_TITLES, with their
 * section), the analysis counts, the files, the bytes, Plex's downtime and the cloud's cost.
 * Records written before the summary existed read with have_summary 0.
 * Role: engine/run (run.c writes, the CLI's status and report commands read). Prerequisites:
 * jansson, SQLite (the apply journal is read read-only), pb_plexdir.
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

#define RECORD_MAX_BYTES (1u << 20) /* a record larger than this is not one of ours */

/* A JSON string of `s`, at most cap-1 bytes, cut on a character boundary; bytes that are not
 * UTF-8 become '?' (jansson refuses them, and a title may hold anything). */
static json_t *jstr(const char *s, size_t cap)
{
    char buf[512];
    if (cap > sizeof(buf))
        cap = sizeof(buf);
    size_t n = 0;
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p && n + 1 < cap) {
        size_t len = *p < 0x80             ? 1
                     : (*p & 0xE0) == 0xC0 ? 2
                     : (*p & 0xF0) == 0xE0 ? 3
                     : (*p & 0xF8) == 0xF0 ? 4
                                           : 0;
        size_t k = 1;
        while (len > 1 && k < len && (p[k] & 0xC0) == 0x80)
            k++;
        if (len == 0 || k < len) { /* a stray byte */
            buf[n++] = '?';
            p++;
            continue;
        }
        if (n + len + 1 > cap)
            break;
        memcpy(buf + n, p, len);
        n += len;
        p += len;
    }
    buf[n] = 0;
    json_t *j = json_string(buf);
    return j ? j : json_string("?");
}

static int cmp_table_busy(const void *a, const void *b)
{
    const pb_plex_table_report *x = a, *y = b;
    uint64_t nx = x->cs_inserted + x->cs_updated + x->cs_deleted;
    uint64_t ny = y->cs_inserted + y->cs_updated + y->cs_deleted;
    return nx < ny ? 1 : nx > ny ? -1 : strcmp(x->table, y->table);
}

/* The rows by table of the report, the busiest first, bounded. */
static json_t *summary_tables(const pb_plex_report *rep)
{
    json_t *a = json_array();
    pb_plex_table_report *t = NULL;
    if (rep->ntables && (t = malloc(rep->ntables * sizeof(*t))) != NULL) {
        memcpy(t, rep->tables, rep->ntables * sizeof(*t));
        qsort(t, rep->ntables, sizeof(*t), cmp_table_busy);
    }
    for (size_t i = 0; t && i < rep->ntables && i < PB_RECORD_MAX_TABLES; i++) {
        char name[240];
        snprintf(name, sizeof(name), "%s%s%s", strcmp(t[i].schema, "main") ? t[i].schema : "",
                 strcmp(t[i].schema, "main") ? "." : "", t[i].table);
        json_t *o = json_pack("{s:o, s:I, s:I, s:I}", "name", jstr(name, 112), "inserted",
                              (json_int_t)t[i].cs_inserted, "updated", (json_int_t)t[i].cs_updated,
                              "deleted", (json_int_t)t[i].cs_deleted);
        if (o)
            json_array_append_new(a, o);
    }
    free(t);
    return a;
}

/* The new titles with their section's name, bounded. */
static json_t *summary_titles(const pb_plex_report *rep)
{
    json_t *a = json_array();
    for (size_t i = 0; i < rep->ntitles && i < PB_RECORD_MAX_TITLES; i++) {
        const pb_plex_new_title *t = &rep->titles[i];
        const char *section = "";
        for (size_t k = 0; k < rep->nsections; k++)
            if (rep->sections[k].id == t->section_id)
                section = rep->sections[k].name;
        json_t *o = json_pack("{s:o, s:o, s:o}", "type", jstr(t->type, 16), "title",
                              jstr(t->title, 192), "section", jstr(section, 128));
        if (o)
            json_array_append_new(a, o);
    }
    return a;
}

/* The summary of the run's report (rows, titles, analysis, files): {} before the apply. */
static json_t *summary_report(const pb_run_result *r)
{
    if (!r->have_apply || !r->apply.have_report)
        return json_object();
    const pb_plex_report *rep = &r->apply.report;
    const pb_plex_analysis *an = &rep->analysis;
    const pb_apply_result *ap = &r->apply;
    return json_pack(
        "{s:{s:I, s:I, s:I, s:I, s:I, s:I, s:o}, s:I, s:o, "
        "s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I}}",
        "rows", "inserted", (json_int_t)rep->cs_inserted, "updated", (json_int_t)rep->cs_updated,
        "deleted", (json_int_t)rep->cs_deleted, "written",
        (json_int_t)(rep->merge.inserted + rep->merge.updated + rep->merge.deleted), "conflicts",
        (json_int_t)rep->merge.conflicts, "tables_total", (json_int_t)rep->ntables, "tables",
        summary_tables(rep), "new_items", (json_int_t)rep->new_items, "new_titles",
        summary_titles(rep), "analysis", "sonic_tracks", (json_int_t)an->sonic_tracks,
        "loudness_items", (json_int_t)an->loudness_items, "loudness_streams",
        (json_int_t)an->loudness_streams, "preview_parts", (json_int_t)an->preview_parts, "markers",
        (json_int_t)an->markers, "intro_markers", (json_int_t)an->intro_markers, "credits_markers",
        (json_int_t)an->credits_markers, "media_analyzed", (json_int_t)an->media_analyzed, "blobs",
        (json_int_t)an->blobs, "files", "new", (json_int_t)ap->files_new, "patched",
        (json_int_t)ap->files_patched, "linked", (json_int_t)ap->files_linked, "bytes_written",
        (json_int_t)ap->bytes_written);
}

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
    time_t now = time(NULL);
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:b, s:{s:I, s:I, s:I, s:I}, s:{s:f, s:f}, "
        "s:o, s:o, s:s, s:s, s:s, s:s, s:o, "
        "s:{s:s, s:s, s:s, s:s, s:f, s:f, s:f}}",
        "run_id", r->run_id, "mode", r->mode_name, "state", state, "phase",
        r->failed_phase ? r->failed_phase_name : last, "error", jstr(r->error, 256), "started",
        (json_int_t)now, "finished", (json_int_t)now, "pid", (json_int_t)getpid(), "dry_run",
        r->dry_run, "bytes", "up", (json_int_t)r->bytes.up, "down", (json_int_t)r->bytes.down,
        "baseline_full_upload", (json_int_t)r->bytes.baseline_full_upload, "snapshot_raw",
        (json_int_t)r->bytes.snapshot_raw, "timings_ms", "total", r->ms.total, "downtime",
        r->ms.downtime, "phases", phases, "log", jstr(r->log_path, 4096), "baseline",
        r->baseline_id, "resumed_run", r->resumed_run, "resume_action", r->resume_action,
        "upload_kind", r->upload_kind, "summary", summary_report(r), "cloud", "provider",
        r->cloud.provider, "zone", r->cloud.zone, "type", r->cloud.type, "server_id",
        r->cloud.server_id, "hourly_price_eur", r->cloud.hourly_price, "seconds", r->cloud.seconds,
        "cost_eur", r->cloud.cost);
    if (!o)
        return pb_error_set(err, PB_ENOMEM, "run record: cannot encode run %s", r->run_id);
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

/* Copies a JSON string, cut on a character boundary (the writer kept it UTF-8). */
static void copy_str(char *dst, size_t cap, json_t *v)
{
    const char *s = json_string_value(v);
    size_t n = s ? strlen(s) : 0;
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, s ? s : "", n);
    dst[n] = 0;
}

static uint64_t jget_u(json_t *o, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(o, key));
    return v > 0 ? (uint64_t)v : 0;
}

/* The summary part of a record (absent from records written before it existed). */
static void parse_summary(pb_run_record *r, json_t *o)
{
    json_t *sum = json_object_get(o, "summary"), *c = json_object_get(o, "cloud");
    json_t *ph = json_object_get(o, "phases");
    r->have_summary = json_is_object(sum);
    copy_str(r->resumed_run, sizeof(r->resumed_run), json_object_get(o, "resumed_run"));
    copy_str(r->resume_action, sizeof(r->resume_action), json_object_get(o, "resume_action"));
    copy_str(r->upload_kind, sizeof(r->upload_kind), json_object_get(o, "upload_kind"));
    r->snapshot_raw = jget_u(json_object_get(o, "bytes"), "snapshot_raw");
    for (size_t i = 0; i < json_array_size(ph) && r->nphases < PB_RECORD_MAX_PHASES; i++) {
        json_t *p = json_array_get(ph, i);
        pb_run_phase *x = &r->phases[r->nphases++];
        copy_str(x->name, sizeof(x->name), json_object_get(p, "name"));
        x->ok = json_is_true(json_object_get(p, "ok"));
        x->ms = json_number_value(json_object_get(p, "ms"));
    }
    json_t *rows = json_object_get(sum, "rows"), *an = json_object_get(sum, "analysis");
    json_t *files = json_object_get(sum, "files");
    r->rows_inserted = jget_u(rows, "inserted");
    r->rows_updated = jget_u(rows, "updated");
    r->rows_deleted = jget_u(rows, "deleted");
    r->rows_written = jget_u(rows, "written");
    r->conflicts = jget_u(rows, "conflicts");
    r->ntables_total = jget_u(rows, "tables_total");
    json_t *t = json_object_get(rows, "tables");
    for (size_t i = 0; i < json_array_size(t) && r->ntables < PB_RECORD_MAX_TABLES; i++) {
        json_t *e = json_array_get(t, i);
        pb_run_record_table *x = &r->tables[r->ntables++];
        copy_str(x->name, sizeof(x->name), json_object_get(e, "name"));
        x->inserted = jget_u(e, "inserted");
        x->updated = jget_u(e, "updated");
        x->deleted = jget_u(e, "deleted");
    }
    r->new_items = jget_u(sum, "new_items");
    t = json_object_get(sum, "new_titles");
    for (size_t i = 0; i < json_array_size(t) && r->ntitles < PB_RECORD_MAX_TITLES; i++) {
        json_t *e = json_array_get(t, i);
        pb_run_record_title *x = &r->titles[r->ntitles++];
        copy_str(x->type, sizeof(x->type), json_object_get(e, "type"));
        copy_str(x->title, sizeof(x->title), json_object_get(e, "title"));
        copy_str(x->section, sizeof(x->section), json_object_get(e, "section"));
    }
    pb_plex_analysis *a = &r->analysis;
    a->sonic_tracks = jget_u(an, "sonic_tracks");
    a->loudness_items = jget_u(an, "loudness_items");
    a->loudness_streams = jget_u(an, "loudness_streams");
    a->preview_parts = jget_u(an, "preview_parts");
    a->markers = jget_u(an, "markers");
    a->intro_markers = jget_u(an, "intro_markers");
    a->credits_markers = jget_u(an, "credits_markers");
    a->media_analyzed = jget_u(an, "media_analyzed");
    a->blobs = jget_u(an, "blobs");
    r->files_new = jget_u(files, "new");
    r->files_patched = jget_u(files, "patched");
    r->files_linked = jget_u(files, "linked");
    r->bytes_written = jget_u(files, "bytes_written");
    copy_str(r->cloud.provider, sizeof(r->cloud.provider), json_object_get(c, "provider"));
    copy_str(r->cloud.zone, sizeof(r->cloud.zone), json_object_get(c, "zone"));
    copy_str(r->cloud.type, sizeof(r->cloud.type), json_object_get(c, "type"));
    copy_str(r->cloud.server_id, sizeof(r->cloud.server_id), json_object_get(c, "server_id"));
    r->cloud.hourly_price = json_number_value(json_object_get(c, "hourly_price_eur"));
    r->cloud.seconds = json_number_value(json_object_get(c, "seconds"));
    r->cloud.cost = json_number_value(json_object_get(c, "cost_eur"));
}

/* Reads <state>/runs/<id>.json into `r` (zeroed first); bounded in size. */
static int read_record(pb_run_record *r, const char *state_dir, const char *id, pb_error *err)
{
    char path[PATH_MAX + 128], *text = NULL;
    size_t n = 0;
    json_error_t je;
    memset(r, 0, sizeof(*r));
    snprintf(path, sizeof(path), "%s/" PB_HOME_RUNS_DIR "/%s.json", state_dir, id);
    int error = pb_fs_read_file(&text, &n, path, RECORD_MAX_BYTES, err);
    if (error == PB_ENOMEM)
        return pb_error_set(err, PB_ECORRUPT, "run record %s: larger than %u bytes", id,
                            RECORD_MAX_BYTES);
    if (error < 0)
        return error;
    json_t *o = json_loadb(text, n, 0, &je);
    free(text);
    if (!json_is_object(o)) {
        json_decref(o);
        return pb_error_set(err, PB_ECORRUPT, "run record %s: not a JSON object (%s)", id, je.text);
    }
    copy_str(r->run_id, sizeof(r->run_id), json_object_get(o, "run_id"));
    copy_str(r->mode, sizeof(r->mode), json_object_get(o, "mode"));
    copy_str(r->state, sizeof(r->state), json_object_get(o, "state"));
    copy_str(r->phase, sizeof(r->phase), json_object_get(o, "phase"));
    copy_str(r->error, sizeof(r->error), json_object_get(o, "error"));
    copy_str(r->log_path, sizeof(r->log_path), json_object_get(o, "log"));
    r->started = json_integer_value(json_object_get(o, "started"));
    r->finished = json_integer_value(json_object_get(o, "finished"));
    r->dry_run = json_is_true(json_object_get(o, "dry_run"));
    json_t *b = json_object_get(o, "bytes"), *t = json_object_get(o, "timings_ms");
    r->bytes_up = jget_u(b, "up");
    r->bytes_down = jget_u(b, "down");
    r->ms_total = json_number_value(json_object_get(t, "total"));
    r->ms_downtime = json_number_value(json_object_get(t, "downtime"));
    parse_summary(r, o);
    json_int_t pid = json_integer_value(json_object_get(o, "pid"));
    if (strcmp(r->state, "running") == 0 && !(pid > 0 && kill((pid_t)pid, 0) == 0))
        snprintf(r->state, sizeof(r->state), "interrupted");
    json_decref(o);
    return 0;
}

/* The state dir of `plex_dir` (state_dir NULL: the default) into out. */
static int state_of(char *out, size_t cap, const char *plex_dir, const char *state_dir,
                    pb_error *err)
{
    pb_plexdir pd;
    int error = pb_plexdir_open(&pd, plex_dir, err);
    if (!error)
        error = pb_plexdir_state(&pd, state_dir, 0, err);
    if (!error)
        snprintf(out, cap, "%s", pd.state_dir);
    pb_plexdir_dispose(&pd);
    return error;
}

int pb_run_record_read(pb_run_record *out, const char *plex_dir, const char *state_dir,
                       const char *run_id, pb_error *err)
{
    char state[PATH_MAX];
    memset(out, 0, sizeof(*out));
    size_t n = run_id ? strlen(run_id) : 0;
    if (n == 0 || n >= sizeof(out->run_id) || strspn(run_id, "0123456789abcdefABCDEF-") != n)
        return pb_error_set(err, PB_EINVALID, "'%.60s' is not a run id (YYYYMMDD-HHMMSS-xxxx)",
                            run_id ? run_id : "");
    int error = state_of(state, sizeof(state), plex_dir, state_dir, err);
    if (error < 0)
        return error;
    char path[PATH_MAX + 128];
    snprintf(path, sizeof(path), "%s/" PB_HOME_RUNS_DIR "/%s.json", state, run_id);
    if (!pb_fs_exists(path))
        return pb_error_set(err, PB_ENOTFOUND, "no run %s in %s", run_id, state);
    return read_record(out, state, run_id, err);
}

int pb_run_status_read(pb_run_status *out, const char *plex_dir, const char *state_dir,
                       pb_error *err)
{
    memset(out, 0, sizeof(*out));
    int error = state_of(out->state_dir, sizeof(out->state_dir), plex_dir, state_dir, err);
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
        pb_error re = PB_ERROR_INIT;
        if (read_record(&out->runs[out->nruns], s, v.v[i], &re) == 0)
            out->nruns++;
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

/*
 * progress.c: how the CLI shows a run (see progress.h): phases, state and monitoring lines,
 * progress bars driven by the library's progress events, the bundle's diff report, the summary
 * or POST-MORTEM, the --json object, the run's log file, and Ctrl-C.
 * Role: display only; the figures come from libplexburst (plexburst/run.h).
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "progress.h"
#include "report_view.h"

typedef unsigned long long ull;

void rv_init(runview *v, const char *command, int json)
{
    memset(v, 0, sizeof(*v));
    v->command = command;
    v->json = json;
    v->tty = isatty(2) && !json;
}

int rv_open_log(runview *v, const char *path)
{
    if (v->log)
        fclose(v->log);
    v->log = fopen(path, "a");
    if (!v->log)
        return -1;
    snprintf(v->log_path, sizeof(v->log_path), "%s", path);
    return 0;
}

static void open_run_log(runview *v, const char *path)
{
    if (v->run_log)
        fclose(v->run_log);
    v->run_log = fopen(path, "a");
}

void rv_close_log(runview *v)
{
    if (v->log)
        fclose(v->log);
    if (v->run_log)
        fclose(v->run_log);
    v->log = v->run_log = NULL;
}

static void to_logs(runview *v, const char *line)
{
    FILE *f[2] = {v->log, v->run_log};
    for (int i = 0; i < 2; i++)
        if (f[i]) {
            fputs(line, f[i]);
            fputc('\n', f[i]);
            fflush(f[i]);
        }
}

/* Clears a redrawn bar before printing a line. */
static void bar_clear(runview *v)
{
    if (v->bar_on) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        v->bar_on = 0;
    }
}

/* One line to stdout (unless --json) and the log. */
static void out_line(runview *v, const char *line)
{
    bar_clear(v);
    if (!v->json) {
        fputs(line, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    }
    to_logs(v, line);
}

/* A line for the log only. */
static void log_line(runview *v, const char *line)
{
    to_logs(v, line);
}

/* cli_banner() through the view: a title between separator lines. */
static void banner(runview *v, const char *title)
{
    out_line(v, "");
    out_line(v, CLI_SEPARATOR);
    out_line(v, title);
    out_line(v, CLI_SEPARATOR);
}

void rv_phase(runview *v, int n, const char *title)
{
    char line[256];
    snprintf(line, sizeof(line), "PHASE %d: %s", n, title);
    banner(v, line);
}

static void vstate(runview *v, int stamp, const char *emoji, const char *fmt, va_list ap)
{
    char line[2048];
    size_t n = 0;
    if (stamp) {
        char ts[16];
        n += (size_t)snprintf(line, sizeof(line), "[%s] ", cli_clock(ts, sizeof(ts)));
    }
    if (emoji)
        n += (size_t)snprintf(line + n, sizeof(line) - n, "%s ", emoji);
    vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    out_line(v, line);
}

void rv_state(runview *v, const char *emoji, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vstate(v, 0, emoji, fmt, ap);
    va_end(ap);
}

void rv_monitor(runview *v, const char *emoji, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vstate(v, 1, emoji, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------------------------------- */
/* Progress bars                                                                              */

static void fmt_eta(char *buf, size_t cap, double s)
{
    if (s < 0 || s > 360000)
        snprintf(buf, cap, "--");
    else if (s >= 3600)
        snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else if (s >= 60)
        snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else
        snprintf(buf, cap, "%ds", (int)(s + 0.5));
}

static void bar_line(runview *v, char *line, size_t cap, int with_bar)
{
    char d[32], t[32], rate[32], eta[16];
    double el = cli_now() - v->bar_t0;
    double bps = el > 0.05 ? (double)v->bar_done / el : 0;
    cli_bytes(d, sizeof(d), v->bar_done);
    cli_bytes(t, sizeof(t), v->bar_total);
    cli_bytes(rate, sizeof(rate), (uint64_t)bps);
    fmt_eta(eta, sizeof(eta),
            bps > 0 && v->bar_total >= v->bar_done ? (double)(v->bar_total - v->bar_done) / bps
                                                   : -1);
    if (v->bar_total && with_bar) {
        char bar[32];
        int w = 24, fill = (int)((double)w * (double)v->bar_done / (double)v->bar_total);
        if (fill > w)
            fill = w;
        for (int i = 0; i < w; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[w] = '\0';
        snprintf(line, cap, "⏳ %-10s [%s] %s / %s  %s/s  ETA %s", v->bar_what, bar, d, t, rate,
                 eta);
    } else if (v->bar_total) {
        snprintf(line, cap, "⏳ %s: %s of %s (%.0f%%), %s/s, ETA %s", v->bar_what, d, t,
                 100.0 * (double)v->bar_done / (double)v->bar_total, rate, eta);
    } else {
        snprintf(line, cap, "⏳ %s: %s, %s/s", v->bar_what, d, rate);
    }
}

/* The cloud runner's phase (items done of total, p->path: unit, elapsed, ETA), one line a
 * record (they come every minute or so): a bar when the total is known. */
static void runner_bar(runview *v, const pb_progress *p)
{
    unsigned long long d = p->items_done, t = p->items_total;
    if (!t) {
        rv_monitor(v, "📊", "%s: %llu %s", p->phase, d, p->path ? p->path : "");
        return;
    }
    char bar[32];
    int w = 24, fill = d >= t ? w : (int)((double)w * (double)d / (double)t);
    for (int i = 0; i < w; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[w] = '\0';
    rv_monitor(v, "📊", "%s [%s] %llu/%llu %s", p->phase, bar, d, t, p->path ? p->path : "");
}

static void on_progress(runview *v, const pb_progress *p)
{
    char what[48];
    int final = strcmp(p->phase, "done") == 0;
    if (strncmp(p->phase, "runner: ", 8) == 0) {
        runner_bar(v, p);
        return;
    }
    if (final) {
        if (v->bar_what[0] && v->bar_done) {
            char line[256];
            bar_line(v, line, sizeof(line), 0);
            log_line(v, line);
        }
        bar_clear(v);
        v->bar_what[0] = '\0';
        return;
    }
    if (strcmp(p->phase, "scan") == 0)
        return; /* a stat walk: too quick and without a total to be worth a bar */
    snprintf(what, sizeof(what), "%s", p->phase);
    double now = cli_now();
    int fresh = strcmp(what, v->bar_what) != 0 || p->bytes_done < v->bar_done;
    if (fresh) {
        if (v->bar_what[0] && v->bar_done) { /* the previous transfer's last figure */
            char line[256];
            bar_line(v, line, sizeof(line), 0);
            log_line(v, line);
        }
        snprintf(v->bar_what, sizeof(v->bar_what), "%s", what);
        v->bar_t0 = now;
        v->bar_last = 0;
    }
    v->bar_done = p->bytes_done;
    v->bar_total = p->bytes_total;
    int complete = p->bytes_total && p->bytes_done >= p->bytes_total;
    double interval = v->tty ? 0.2 : 2.0;
    if (!complete && now - v->bar_last < interval)
        return;
    if (!v->tty && (now - v->bar_t0 < 1.0))
        return; /* plain lines only for transfers that take a while */
    v->bar_last = now;
    char line[256];
    bar_line(v, line, sizeof(line), v->tty);
    if (v->tty) {
        fprintf(stderr, "\r\033[K%s", line);
        fflush(stderr);
        v->bar_on = 1;
    } else {
        fprintf(stderr, "%s\n", line);
        fflush(stderr);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Events                                                                                     */

static void show_report(runview *v, const pb_run_result *r)
{
    if (v->report_shown || !r->have_apply || !r->apply.have_report)
        return;
    v->report_shown = 1;
    const pb_plex_report *p = &r->apply.report;
    char b1[32];
    rv_state(v, "📊", "diff report of the bundle (cloud changes against the home snapshot):");
    rv_state(v, p->schema.ok ? "✅" : "❌", "%s",
             p->schema.message[0] ? p->schema.message : "schema guard: same Plex schema");
    rv_state(v, p->deletion.ok ? "✅" : "🚨", "%s",
             p->deletion.message[0] ? p->deletion.message : "deletion guard: no deletions");
    rv_state(v, "📊", "rows: %llu inserts, %llu updates, %llu deletes in %zu tables (%s zstd)",
             (ull)p->cs_inserted, (ull)p->cs_updated, (ull)p->cs_deleted, p->ntables,
             cli_bytes(b1, sizeof(b1), p->bytes_changeset_zstd));
    for (size_t i = 0; i < p->nsections; i++) {
        const pb_plex_section_report *s = &p->sections[i];
        if (!s->items_inserted && !s->items_updated && !s->items_deleted && !s->parts_inserted)
            continue;
        rv_state(v, NULL, "   section %-22.22s items +%llu ~%llu -%llu, parts +%llu ~%llu -%llu",
                 s->name[0] ? s->name : "(none)", (ull)s->items_inserted, (ull)s->items_updated,
                 (ull)s->items_deleted, (ull)s->parts_inserted, (ull)s->parts_updated,
                 (ull)s->parts_deleted);
    }
    const pb_plex_analysis *a = &p->analysis;
    rv_state(v, "📊",
             "analysis: %llu media analysed, %llu preview thumbnails, %llu markers (%llu intro, "
             "%llu credits), %llu loudness, %llu sonic",
             (ull)a->media_analyzed, (ull)a->preview_parts, (ull)a->markers, (ull)a->intro_markers,
             (ull)a->credits_markers, (ull)(a->loudness_items + a->loudness_streams),
             (ull)a->sonic_tracks);
    if (p->new_items) {
        rv_state(v, "📦", "%llu new items, among them:", (ull)p->new_items);
        for (size_t i = 0; i < p->ntitles; i++)
            rv_state(v, NULL, "   + %s \"%s\"", p->titles[i].type, p->titles[i].title);
    }
    rv_state(v, "📊",
             "3-way view: %llu conflicts (home kept), %llu ids remapped, %llu user-state changes "
             "dropped",
             (ull)p->merge.conflicts, (ull)p->merge.remapped, (ull)p->merge.user_state_dropped);
}

void rv_show_report(runview *v, const pb_run_result *r)
{
    v->report_shown = 0;
    show_report(v, r);
}

void rv_on_event(const pb_run_event *ev, void *payload)
{
    runview *v = payload;
    char line[1200];
    switch (ev->kind) {
    case PB_EV_START:
        open_run_log(v, ev->log_path);
        snprintf(line, sizeof(line), "plexburst %s: run %s (log %s)", v->command, ev->run_id,
                 ev->log_path);
        log_line(v, line);
        if (!v->quiet_phases)
            rv_state(v, "🔄", "%s %s started; full log: %s", v->command, ev->run_id, ev->log_path);
        break;
    case PB_EV_PHASE:
        if (v->quiet_phases)
            rv_monitor(v, "🔄", "%s step %d: %s", v->command, ev->phase, ev->name);
        else
            rv_phase(v, ev->phase + v->phase_offset, ev->name);
        break;
    case PB_EV_PHASE_END:
        if (ev->ok)
            rv_state(v, "✅", "%s done in %.1f s", ev->name, ev->ms / 1000);
        else
            rv_state(v, "❌", "%s failed after %.1f s", ev->name, ev->ms / 1000);
        break;
    case PB_EV_LOG:
        if (!strcmp(ev->level, "runner")) {
            rv_monitor(v, NULL, "  │ %s", ev->text);
            snprintf(v->tail[v->ntail % RV_TAIL], sizeof(v->tail[0]), "%s", ev->text);
            v->ntail++;
        } else if (!strcmp(ev->level, "agent")) {
            rv_monitor(v, NULL, "cloud: %s", ev->text);
        } else if (!strcmp(ev->level, "warn")) {
            rv_monitor(v, "⚠️", "%s", ev->text);
        } else if (!strcmp(ev->level, "error")) {
            rv_monitor(v, "❌", "%s", ev->text);
        } else if (!strcmp(ev->level, "detail")) {
            char ts[16];
            snprintf(line, sizeof(line), "[%s] %s", cli_clock(ts, sizeof(ts)), ev->text);
            log_line(v, line);
        } else {
            rv_monitor(v, NULL, "%s", ev->text);
        }
        break;
    case PB_EV_PROGRESS:
        on_progress(v, ev->progress);
        break;
    case PB_EV_REPORT:
        show_report(v, ev->result);
        break;
    default:
        break;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* The end                                                                                    */

/* --json "bytes": what crossed the home link, by kind. */
static json_t *bytes_json(const pb_run_result *r)
{
    return json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "up", (json_int_t)r->bytes.up, "down",
        (json_int_t)r->bytes.down, "baseline_full_upload",
        (json_int_t)r->bytes.baseline_full_upload, "changeset_up",
        (json_int_t)r->bytes.changeset_up, "changeset_raw", (json_int_t)r->bytes.changeset_raw,
        "answer_up", (json_int_t)r->bytes.answer_up, "list_down", (json_int_t)r->bytes.list_down,
        "bundle_down", (json_int_t)r->bytes.bundle_down, "control", (json_int_t)r->bytes.control,
        "snapshot_raw", (json_int_t)r->bytes.snapshot_raw);
}

/* --json "files": what the apply did to the home's files (zeros without an apply). */
static json_t *files_json(const pb_run_result *r)
{
    const pb_apply_result *a = &r->apply;
    int on = r->have_apply;
    return json_pack("{s:I, s:I, s:I, s:I, s:I}", "new", (json_int_t)(on ? a->files_new : 0),
                     "patched", (json_int_t)(on ? a->files_patched : 0), "linked",
                     (json_int_t)(on ? a->files_linked : 0), "unchanged",
                     (json_int_t)(on ? a->files_unchanged : 0), "dirs_created",
                     (json_int_t)(on ? a->dirs_created : 0));
}

/* --json "export": the agent's bundle build, as it reported it. */
static json_t *export_json(const pb_export_stats *e)
{
    return json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "listed", (json_int_t)e->listed,
        "files_new", (json_int_t)e->files_new, "files_delta", (json_int_t)e->files_delta,
        "files_link", (json_int_t)e->files_link, "files_unchanged", (json_int_t)e->files_unchanged,
        "content_bytes", (json_int_t)e->content_bytes, "delta_bytes", (json_int_t)e->delta_bytes,
        "sig_bytes", (json_int_t)e->sig_bytes, "bundle_bytes", (json_int_t)e->bundle_bytes, "rows",
        (json_int_t)(e->rows_inserted + e->rows_updated + e->rows_deleted));
}

json_t *rv_result_json(const pb_run_result *r, int rc, const pb_error *err)
{
    json_t *o = json_object();
    json_object_set_new(o, "command",
                        json_string(r->mode == PB_RUN_BOOTSTRAP ? "bootstrap" : "sync"));
    json_object_set_new(o, "ok", json_boolean(rc == 0 && r->ok));
    json_object_set_new(o, "exit_code", json_integer(cli_exit_code(rc)));
    json_object_set_new(o, "mode", json_string(r->mode_name));
    json_object_set_new(o, "dry_run", json_boolean(r->dry_run));
    json_object_set_new(o, "run_id", json_string(r->run_id));
    if (rc < 0)
        json_object_set_new(o, "error",
                            json_pack("{s:i, s:s, s:s, s:i, s:s}", "code", rc, "name",
                                      pb_strerror(rc), "message",
                                      err && err->msg[0] ? err->msg : r->error, "phase",
                                      r->failed_phase, "phase_name", r->failed_phase_name));
    else
        json_object_set_new(o, "error", json_null());
    json_object_set_new(o, "resumed_run",
                        r->resumed_run[0] ? json_string(r->resumed_run) : json_null());
    json_object_set_new(o, "resume_action", json_string(r->resume_action));
    json_object_set_new(o, "upload",
                        json_pack("{s:s, s:s, s:I}", "kind", r->upload_kind, "full_reason",
                                  r->full_upload_reason, "changeset_rows",
                                  (json_int_t)r->up.changeset_rows));
    json_object_set_new(o, "bytes", bytes_json(r));
    pb_merge_counts zero;
    memset(&zero, 0, sizeof(zero));
    const pb_apply_result *a = &r->apply;
    json_object_set_new(o, "rows", report_counts_json(r->have_apply ? &a->rows : &zero));
    json_object_set_new(o, "files", files_json(r));
    json_object_set_new(o, "export", export_json(&r->exported));
    json_object_set_new(o, "timings_ms",
                        json_pack("{s:f, s:f}", "total", r->ms.total, "downtime", r->ms.downtime));
    json_t *ph = json_array();
    for (size_t i = 0; i < r->nphases; i++)
        json_array_append_new(ph, json_pack("{s:s, s:b, s:f}", "name", r->phases[i].name, "ok",
                                            r->phases[i].ok, "ms", r->phases[i].ms));
    json_object_set_new(o, "phases", ph);
    json_object_set_new(o, "home",
                        json_pack("{s:f, s:f, s:I}", "cpu_user_ms", r->home.cpu_user_ms,
                                  "cpu_sys_ms", r->home.cpu_sys_ms, "max_rss_kb",
                                  (json_int_t)r->home.max_rss_kb));
    json_object_set_new(o, "runner_status", json_integer(r->runner_status));
    json_object_set_new(o, "runner",
                        r->runner_json ? json_loads(r->runner_json, 0, NULL) : json_null());
    json_object_set_new(o, "snapshot", json_string(r->snapshot_id));
    json_object_set_new(o, "baseline", json_string(r->baseline_id));
    if (r->mode == PB_RUN_BOOTSTRAP)
        json_object_set_new(
            o, "carried",
            json_pack("{s:I, s:I, s:I}", "accounts", (json_int_t)r->carried.accounts, "settings",
                      (json_int_t)r->carried.settings, "views", (json_int_t)r->carried.views));
    json_object_set_new(o, "log", json_string(r->log_path));
    json_object_set_new(o, "state_dir", json_string(r->state_dir));
    json_object_set_new(o, "cloud_dir", json_string(r->cloud_dir));
    json_object_set_new(o, "store", json_string(r->store));
    json_object_set_new(o, "cloud",
                        json_pack("{s:s, s:s, s:s, s:f, s:f, s:f, s:s}", "provider",
                                  r->cloud.provider, "zone", r->cloud.zone, "type", r->cloud.type,
                                  "hourly_price_eur", r->cloud.hourly_price, "seconds",
                                  r->cloud.seconds, "cost_eur", r->cloud.cost, "server_id",
                                  r->cloud.server_id));
    if (r->have_apply && a->have_report) {
        report_view rv;
        report_view_init(&rv, "diff", &a->report, 0, 1, 0);
        json_t *rep = report_to_json(&rv, 0);
        if (rep)
            json_object_set_new(o, "report", rep);
    }
    return o;
}

static const char *advice(int code, const pb_run_result *r)
{
    if (code == PB_ECANCELLED)
        return "stopped on request; the next run resumes or rolls back what is left";
    if (!strcmp(r->failed_phase_name, "ANALYSIS") || !strcmp(r->failed_phase_name, "BUILD LIBRARY"))
        return "check the runner command and its output above (and in the log), then run the "
               "command again";
    if (r->mode == PB_RUN_SYNC && code != PB_ECANCELLED && code != PB_EBUSY && code != PB_ENET &&
        code != PB_EINVALID && code != PB_EREFUSED &&
        (!strcmp(r->failed_phase_name, "UPLOAD DELTA") ||
         !strcmp(r->failed_phase_name, "INJECT DB") || !strcmp(r->failed_phase_name, "SNAPSHOT")))
        return "read the log; when the home's baseline copy or the stored baseline is in doubt, "
               "`plexburst sync --full-upload` uploads the whole snapshot and records a new "
               "baseline on both sides";
    switch (code) {
    case PB_ECANCELLED:
        return "stopped on request; the next run resumes or rolls back what is left";
    case PB_EREFUSED:
        if (!strcmp(r->failed_phase_name, "RECOVER"))
            return "`plexburst sync --retry-refused` applies that run's bundle again (with a "
                   "higher --max-delete-pct, or --plex-stop-cmd, to accept it); `plexburst sync "
                   "--discard-refused` drops it and starts a new run";
        return "a guard refused the bundle: read the report above; the run is kept refused until "
               "you decide: `plexburst sync --retry-refused` applies it again (with a higher "
               "--max-delete-pct, or --plex-stop-cmd), `plexburst sync --discard-refused` drops "
               "it and starts a new run";
    case PB_ESCHEMA:
        return "home and cloud run different Plex versions: run the same Plex build on both";
    case PB_ENET:
        return "the agent went away: run the command again (the store keeps what was done)";
    case PB_EBUSY:
        return "another plexburst run or apply holds the lock: wait for it, or check "
               "`plexburst status`";
    case PB_EINVALID:
        return "fix the options or the configuration (see --help)";
    default:
        return "read the log, fix the cause, and run the command again";
    }
}

/* The instance a cloud created for the run and what it cost (nothing for local and ssh). */
static void cloud_cost(runview *v, const char *emoji, const pb_run_result *r)
{
    if (!r->cloud.type[0])
        return;
    if (r->cloud.server_id[0])
        rv_state(v, emoji, "%scloud %s %s in %s: %.0f s billed at %.4f EUR/h, %.4f EUR (server %s)",
                 emoji ? "" : "   ", r->cloud.provider, r->cloud.type, r->cloud.zone,
                 r->cloud.seconds, r->cloud.hourly_price, r->cloud.cost, r->cloud.server_id);
    else
        rv_state(v, emoji, "%scloud %s %s in %s at %.4f EUR/h: no instance created, 0 EUR",
                 emoji ? "" : "   ", r->cloud.provider, r->cloud.type, r->cloud.zone,
                 r->cloud.hourly_price);
}

static void post_mortem(runview *v, int rc, const pb_error *err, const pb_run_result *r)
{
    banner(v, "🚨 POST-MORTEM");
    if (r->failed_phase)
        rv_state(v, "❌", "phase %d (%s) failed: %s", r->failed_phase + v->phase_offset,
                 r->failed_phase_name, err && err->msg[0] ? err->msg : pb_strerror(rc));
    else
        rv_state(v, "❌", "the %s could not start: %s", v->command,
                 err && err->msg[0] ? err->msg : pb_strerror(rc));
    int applied_phase = 0;
    for (size_t i = 0; i < r->nphases; i++)
        if (!strcmp(r->phases[i].name, "APPLY") || !strcmp(r->phases[i].name, "INSTALL"))
            applied_phase = 1;
    if (r->have_apply && r->apply.phase >= PB_APPLY_MERGE && !r->ok)
        rv_state(v, "⚠️",
                 "home: the apply stopped at %s; its journal completes or rolls it back on the "
                 "next run (all of the bundle or none of it)",
                 pb_apply_phase_name(r->apply.phase));
    else if (!applied_phase || !r->have_apply)
        rv_state(v, "✅", "home: untouched (nothing was applied)");
    else
        rv_state(v, "✅", "home: unchanged (the apply stopped before writing)");
    if (v->ntail && (!strcmp(r->failed_phase_name, "ANALYSIS") ||
                     !strcmp(r->failed_phase_name, "BUILD LIBRARY"))) {
        rv_state(v, "🔍", "the runner's last lines:");
        int n = v->ntail < RV_TAIL ? v->ntail : RV_TAIL;
        for (int i = v->ntail - n; i < v->ntail; i++)
            rv_state(v, NULL, "   │ %s", v->tail[i % RV_TAIL]);
    }
    cloud_cost(v, "📊", r);
    rv_state(v, "🔍", "what to do: %s", advice(rc, r));
    rv_state(v, "📦", "full log: %s",
             r->log_path[0] ? r->log_path : "(none: the run did not start)");
}

static void summary(runview *v, const pb_run_result *r)
{
    char b1[32], b2[32], b3[32], b4[32], b5[32], b6[32];
    banner(v, "📊 SUMMARY");
    rv_state(v, "✅", "%s %s finished%s (%s)", r->mode_name, r->run_id,
             r->dry_run ? " (dry run: nothing applied)" : "",
             r->resume_action[0] ? r->resume_action : "fresh run");
    if (r->mode == PB_RUN_SYNC)
        rv_state(v, NULL, "   up   %s  (row changeset %s, full snapshot %s, answer %s, control %s)",
                 cli_bytes(b1, sizeof(b1), r->bytes.up),
                 cli_bytes(b2, sizeof(b2), r->bytes.changeset_up),
                 cli_bytes(b3, sizeof(b3), r->bytes.baseline_full_upload),
                 cli_bytes(b4, sizeof(b4), r->bytes.answer_up),
                 cli_bytes(b5, sizeof(b5), r->bytes.control));
    else
        rv_state(v, NULL, "   up   %s  (answer %s, control %s)",
                 cli_bytes(b1, sizeof(b1), r->bytes.up),
                 cli_bytes(b4, sizeof(b4), r->bytes.answer_up),
                 cli_bytes(b5, sizeof(b5), r->bytes.control));
    rv_state(v, NULL, "   down %s  (%s %s, cloud list %s)",
             cli_bytes(b1, sizeof(b1), r->bytes.down),
             r->mode == PB_RUN_BOOTSTRAP ? "DB pair + bundle" : "bundle",
             cli_bytes(b2, sizeof(b2), r->bytes.bundle_down),
             cli_bytes(b6, sizeof(b6), r->bytes.list_down));
    if (r->have_apply) {
        const pb_apply_result *a = &r->apply;
        rv_state(v, NULL,
                 "   rows %llu inserted, %llu updated, %llu deleted; %llu conflicts (home kept), "
                 "%llu remapped",
                 (ull)a->rows.inserted, (ull)a->rows.updated, (ull)a->rows.deleted,
                 (ull)a->rows.conflicts, (ull)a->rows.remapped);
        rv_state(v, NULL, "   files %llu new, %llu patched, %llu linked, %llu already in place",
                 (ull)a->files_new, (ull)a->files_patched, (ull)a->files_linked,
                 (ull)a->files_unchanged);
    }
    if (r->mode == PB_RUN_BOOTSTRAP)
        rv_state(v, NULL, "   home user state carried: %llu accounts, %llu settings, %llu plays",
                 (ull)r->carried.accounts, (ull)r->carried.settings, (ull)r->carried.views);
    rv_state(v, NULL, "   time %.1f s in all, Plex down %.2f s", r->ms.total / 1000,
             r->ms.downtime / 1000);
    cloud_cost(v, NULL, r);
    if (r->baseline_id[0])
        rv_state(v, NULL, "   baseline %.16s", r->baseline_id);
    rv_state(v, "📦", "full log: %s", r->log_path);
}

int rv_finish(runview *v, int rc, const pb_error *err, const pb_run_result *r)
{
    bar_clear(v);
    if (!v->no_summary)
        show_report(v, r);
    if (rc < 0)
        post_mortem(v, rc, err, r);
    else if (!v->no_summary)
        summary(v, r);
    if (v->json && !v->no_summary) {
        json_t *o = rv_result_json(r, rc, err);
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s) {
            puts(s);
            fflush(stdout);
            log_line(v, s);
            free(s);
        }
        json_decref(o);
    }
    if (rc < 0)
        fprintf(stderr, "plexburst: %s\n", err && err->msg[0] ? err->msg : pb_strerror(rc));
    rv_close_log(v);
    return cli_exit_code(rc);
}

/* ---------------------------------------------------------------------------------------- */
/* Signals                                                                                    */

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    /* a closed terminal (SIGHUP, often twice: the kernel and the shell) stops cleanly: the agent
     * is told to cancel its runner, nothing is orphaned; only Ctrl-C or SIGTERM again is hard */
    if (sig == SIGHUP) {
        g_stop = 1;
        return;
    }
    if (g_stop) {
        static const char msg[] = "\nplexburst: stopped hard (the next run recovers)\n";
        ssize_t w = write(2, msg, sizeof(msg) - 1);
        (void)w;
        _exit(130);
    }
    g_stop = 1;
    static const char msg[] = "\n⚠️ stopping cleanly (Ctrl-C again to stop at once)\n";
    ssize_t w = write(2, msg, sizeof(msg) - 1);
    (void)w;
}

void rv_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

int rv_cancelled(void *payload)
{
    (void)payload;
    return g_stop != 0;
}

int rv_run(runview *v, pb_run_options *o, pb_run_result *r)
{
    pb_error err = PB_ERROR_INIT;
    rv_install_signals();
    o->on_event = rv_on_event;
    o->event_payload = v;
    o->cancelled = rv_cancelled;
    int rc = pb_run(r, o, &err);
    return rv_finish(v, rc, &err, r);
}

int rv_command(int mode, const char *command, const char *usage, const char *epilog, int argc,
               char **argv)
{
    pb_run_options o;
    pb_run_result r;
    runview v;
    int json = 0, retry_refused = 0, discard_refused = 0;
    pb_run_options_init(&o);
    o.mode = mode;
    const cli_opt common[] = {RV_COMMON_OPTS(o)};
    const cli_opt sync_only[] = {
        {"dry-run", CLI_OPT_FLAG, &o.dry_run, NULL,
         "stop after the bundle's diff report: nothing is applied"},
        {"full-upload", CLI_OPT_FLAG, &o.full_upload, NULL,
         "upload the whole snapshot instead of a row changeset"},
        {"retry-refused", CLI_OPT_FLAG, &retry_refused, NULL,
         "apply the bundle of the run a guard refused again (with this command's guards)"},
        {"discard-refused", CLI_OPT_FLAG, &discard_refused, NULL,
         "drop the run a guard refused and start a new one"},
    };
    const cli_opt bootstrap_only[] = {
        {"force", CLI_OPT_FLAG, &o.force, NULL,
         "rebuild a home that already syncs (its user state and edits are kept)"},
    };
    enum {
        NCOMMON = sizeof(common) / sizeof(common[0]),
        NSYNC = sizeof(sync_only) / sizeof(sync_only[0]),
        NBOOT = sizeof(bootstrap_only) / sizeof(bootstrap_only[0])
    };
    cli_opt opts[NCOMMON + NSYNC + NBOOT + 2];
    size_t n = 0;
    for (size_t i = 0; i < NCOMMON; i++)
        opts[n++] = common[i];
    for (size_t i = 0; mode == PB_RUN_SYNC && i < NSYNC; i++)
        opts[n++] = sync_only[i];
    for (size_t i = 0; mode == PB_RUN_BOOTSTRAP && i < NBOOT; i++)
        opts[n++] = bootstrap_only[i];
    opts[n++] = (cli_opt){"json", CLI_OPT_FLAG, &json, NULL, "print one JSON object at the end"};
    opts[n] = (cli_opt){NULL, 0, NULL, NULL, NULL};

    int rc = cli_parse(command, usage, opts, argc, argv, NULL, 0, NULL);
    if (rc > 0) {
        if (epilog)
            printf("%s", epilog);
        return CLI_EXIT_OK;
    }
    if (rc < 0)
        return cli_usage_exit(command, json, argc, argv);
    if (retry_refused && discard_refused) {
        cli_usage_error(command, "--retry-refused and --discard-refused exclude each other");
        return cli_usage_exit(command, json, 0, NULL);
    }
    o.refused_action = retry_refused     ? PB_RUN_REFUSED_RETRY
                       : discard_refused ? PB_RUN_REFUSED_DISCARD
                                         : PB_RUN_REFUSED_KEEP;
    rv_init(&v, command, json);
    rc = rv_run(&v, &o, &r);
    pb_run_result_dispose(&r);
    return rc;
}

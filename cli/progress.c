/*
 * progress.c: how the CLI shows a run (see progress.h): phases, state and monitoring lines,
 * progress bars driven by the library's progress events, the bundle's diff report, the summary
 * or POST-MORTEM, the run's log file, and Ctrl-C (the --json object: run_json.c).
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
#include "cli_config.h"
#include "progress.h"
#include "report_view.h"

typedef unsigned long long ull;

void rv_init(runview *v, const char *command, int json)
{
    memset(v, 0, sizeof(*v));
    v->command = command;
    v->json = json;
    v->tty = isatty(2) && !json;
    v->hb_interval = 60;
    /* the interval of the heartbeat lines (a test's shortcut; the default suits a log) */
    const char *hb = cli_config_get("PLEXBURST_HEARTBEAT_S");
    double d;
    if (hb && pb_number_parse(&d, hb, 0, 0.1, 86400) == 0)
        v->hb_interval = d;
}

/* The wall clock as ISO 8601 UTC with milliseconds (the "time" of a --json-stream event). */
static const char *iso_now(char *buf, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%03ldZ", ts.tv_nsec / 1000000);
    return buf;
}

/* One --json-stream event on stdout: {"type", "time", ...fields of `o` (stolen)}. */
void rv_stream_event(runview *v, const char *type, json_t *o)
{
    if (!v->stream) {
        json_decref(o);
        return;
    }
    char t[40];
    json_t *e = json_pack("{s:s, s:s}", "type", type, "time", iso_now(t, sizeof(t)));
    if (e && o)
        json_object_update(e, o);
    json_decref(o);
    char *line = e ? json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (line) {
        fputs(line, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        free(line);
    }
    json_decref(e);
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
void rv_bar_clear(runview *v)
{
    if (v->bar_on) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        v->bar_on = 0;
    }
}

/* The human lines go to stdout and stderr (not with --json, --json-stream or --quiet). */
static int human(const runview *v)
{
    return !v->json && !v->stream && !v->quiet;
}

/* One line to stdout (unless --json, --json-stream or --quiet) and the log. */
static void out_line(runview *v, const char *line)
{
    rv_bar_clear(v);
    if (v->pm_capture) {
        size_t n = strlen(v->pm);
        if (n + strlen(line) + 2 < sizeof(v->pm) && line[0] && strcmp(line, CLI_SEPARATOR))
            snprintf(v->pm + n, sizeof(v->pm) - n, "%s\n", line);
    }
    if (human(v)) {
        fputs(line, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    }
    to_logs(v, line);
}

/* A line for the log only. */
void rv_log_line(runview *v, const char *line)
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

/* A duration as "45s", "12m04s" or "3h07m" ("--" when unknown). */
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

/* The current bar as a line: redrawn with a bar (`with_bar`), plain, or (`final`) its last word:
 * what was done, in how long, at which average rate. */
static void bar_line(runview *v, char *line, size_t cap, int with_bar, int final)
{
    char d[32], t[32], rate[32], eta[16], took[16];
    double el = cli_now() - v->bar_t0;
    double bps = el > 0.05 ? (double)v->bar_done / el : 0;
    cli_bytes(d, sizeof(d), v->bar_done);
    cli_bytes(t, sizeof(t), v->bar_total);
    cli_bytes(rate, sizeof(rate), (uint64_t)bps);
    fmt_eta(took, sizeof(took), el);
    if (final) {
        if (!v->bar_done && v->bar_items)
            snprintf(line, cap, "✅ %s: %llu entries in %s", v->bar_what, (ull)v->bar_items, took);
        else if (el > 0.05)
            snprintf(line, cap, "✅ %s: %s in %s, %s/s on average", v->bar_what, d, took, rate);
        else
            snprintf(line, cap, "✅ %s: %s at once", v->bar_what, d);
        return;
    }
    fmt_eta(eta, sizeof(eta),
            bps > 0 && v->bar_total >= v->bar_done ? (double)(v->bar_total - v->bar_done) / bps
                                                   : -1);
    if (!v->bar_total && !v->bar_done) {
        snprintf(line, cap, "⏳ %s: %llu entries, %s", v->bar_what, (ull)v->bar_items, took);
    } else if (v->bar_total && with_bar) {
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
        snprintf(line, cap, "⏳ %s: %s, %s/s, %s", v->bar_what, d, rate, took);
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

/* A --json-stream "progress" event of the current bar (`final`: its last one). */
static void stream_progress(runview *v, int final)
{
    double el = cli_now() - v->bar_t0;
    rv_stream_event(v, "progress",
                    json_pack("{s:s, s:I, s:I, s:I, s:f, s:f, s:b}", "what", v->bar_what,
                              "bytes_done", (json_int_t)v->bar_done, "bytes_total",
                              (json_int_t)v->bar_total, "items_done", (json_int_t)v->bar_items,
                              "elapsed_s", el, "bytes_per_s",
                              el > 0.05 ? (double)v->bar_done / el : 0.0, "done", final));
}

/* The current bar ends: its last word (average rate) in the log, and on stderr when it was on
 * screen; the bar state cleared. */
static void bar_end(runview *v)
{
    if (!v->bar_what[0])
        return;
    char line[256];
    bar_line(v, line, sizeof(line), 0, 1);
    if (v->bar_done || v->bar_items)
        rv_log_line(v, line);
    if (v->stream && (v->bar_done || v->bar_items))
        stream_progress(v, 1);
    if (v->bar_shown && human(v)) {
        if (v->bar_on)
            fputs("\r\033[K", stderr);
        fprintf(stderr, "%s\n", line);
        fflush(stderr);
        v->bar_on = 0;
    }
    rv_bar_clear(v);
    v->bar_what[0] = '\0';
    v->bar_done = v->bar_total = v->bar_items = 0;
    v->bar_shown = 0;
}

static void on_progress(runview *v, const pb_progress *p)
{
    if (strncmp(p->phase, "runner: ", 8) == 0) {
        runner_bar(v, p);
        return;
    }
    if (!strcmp(p->phase, "done")) {
        bar_end(v);
        return;
    }
    double now = cli_now();
    int fresh = strcmp(p->phase, v->bar_what) != 0 || p->bytes_done < v->bar_done ||
                (!p->bytes_done && p->items_done < v->bar_items);
    if (fresh) {
        bar_end(v); /* the previous transfer's last figure */
        snprintf(v->bar_what, sizeof(v->bar_what), "%s", p->phase);
        v->bar_t0 = now;
        v->bar_last = now;
        v->bar_stream = now;
    }
    v->bar_done = p->bytes_done;
    v->bar_total = p->bytes_total;
    v->bar_items = p->items_done;
    int complete = p->bytes_total && p->bytes_done >= p->bytes_total;
    if (v->stream && !complete && now - v->bar_stream >= 1.0) {
        v->bar_stream = now;
        stream_progress(v, 0); /* the last one comes from bar_end */
    }
    /* on a terminal a redrawn bar from the first half second on, a few times a second; in a log
     * a line a minute: either way a transfer too quick to watch leaves only its last word */
    double interval = v->tty ? 0.2 : v->hb_interval;
    double wait = v->bar_shown ? interval : v->tty ? 0.5 : interval;
    if (!human(v) || now - v->bar_last < wait) {
        if (complete)
            bar_end(v);
        return;
    }
    v->bar_last = now;
    v->bar_shown = 1;
    char line[256];
    bar_line(v, line, sizeof(line), v->tty, 0);
    if (complete) {
        bar_end(v);
    } else if (v->tty) {
        fprintf(stderr, "\r\033[K%s", line);
        fflush(stderr);
        v->bar_on = 1;
    } else {
        char ts[16];
        fprintf(stderr, "[%s] %s\n", cli_clock(ts, sizeof(ts)), line);
        fflush(stderr);
    }
}

/* The heartbeat of the phase in progress: on a terminal a redrawn line with its elapsed time
 * (when no bar is on screen), and every hb_interval a stamped line (stdout when not on a
 * terminal, always the log and the --json-stream). Driven by the run's cancel polling. */
static void heartbeat(runview *v)
{
    if (!v->ph_name[0])
        return;
    double now = cli_now(), el = now - v->ph_t0;
    char took[16], line[160];
    fmt_eta(took, sizeof(took), el);
    if (v->tty && human(v) && !v->bar_what[0] && el >= 2 && now - v->hb_draw >= 1) {
        v->hb_draw = now;
        snprintf(line, sizeof(line), "⏳ %s: %s elapsed", v->ph_name, took);
        fprintf(stderr, "\r\033[K%s", line);
        fflush(stderr);
        v->bar_on = 1;
    }
    if (now - v->hb_last < v->hb_interval)
        return;
    v->hb_last = now;
    char ts[16];
    snprintf(line, sizeof(line), "[%s] ⏳ %s running for %s", cli_clock(ts, sizeof(ts)), v->ph_name,
             took);
    if (v->tty || !human(v))
        rv_log_line(v, line);
    else
        out_line(v, line);
    rv_stream_event(
        v, "heartbeat",
        json_pack("{s:i, s:s, s:f}", "phase", v->ph_num, "name", v->ph_name, "elapsed_s", el));
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

/* A LOG event as a line of the view. */
static void on_log(runview *v, const pb_run_event *ev)
{
    char line[1200];
    rv_stream_event(v, "log", json_pack("{s:s, s:s}", "level", ev->level, "text", ev->text));
    if (v->quiet && !strcmp(ev->level, "error")) {
        fprintf(stderr, "❌ %s\n", ev->text); /* --quiet: errors still show */
        fflush(stderr);
    }
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
        rv_log_line(v, line);
    } else {
        rv_monitor(v, NULL, "%s", ev->text);
    }
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
        rv_log_line(v, line);
        rv_stream_event(v, "start",
                        json_pack("{s:s, s:s, s:s, s:b}", "command", v->command, "run_id",
                                  ev->run_id, "log", ev->log_path, "dry_run", v->dry_run));
        if (!v->quiet_phases)
            rv_state(v, "🔄", "%s %s started; full log: %s", v->command, ev->run_id, ev->log_path);
        if (v->dry_run)
            rv_state(v, "🔍",
                     "dry run: the cloud analysis runs (and is billed) and its bundle is "
                     "downloaded and checked; nothing changes at home");
        break;
    case PB_EV_PHASE:
        bar_end(v);
        snprintf(v->ph_name, sizeof(v->ph_name), "%s", ev->name);
        v->ph_num = ev->phase + v->phase_offset;
        v->ph_t0 = v->hb_last = v->hb_draw = cli_now();
        rv_stream_event(v, "phase_start",
                        json_pack("{s:i, s:s}", "phase", v->ph_num, "name", ev->name));
        if (v->quiet_phases)
            rv_monitor(v, "🔄", "%s step %d: %s", v->command, ev->phase, ev->name);
        else
            rv_phase(v, ev->phase + v->phase_offset, ev->name);
        break;
    case PB_EV_PHASE_END:
        bar_end(v);
        v->ph_name[0] = '\0';
        rv_stream_event(v, "phase_end",
                        json_pack("{s:i, s:s, s:b, s:f}", "phase", ev->phase + v->phase_offset,
                                  "name", ev->name, "ok", ev->ok, "ms", ev->ms));
        if (ev->ok)
            rv_state(v, "✅", "%s done in %.1f s", ev->name, ev->ms / 1000);
        else
            rv_state(v, "❌", "%s failed after %.1f s", ev->name, ev->ms / 1000);
        break;
    case PB_EV_LOG:
        on_log(v, ev);
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

/* The run was stopped on request (Ctrl-C, SIGTERM, SIGHUP): whatever error the stop caused (a
 * runner killed by it fails its phase too), the words are those of a stop. */
int rv_stopped(int code)
{
    return code == PB_ECANCELLED || rv_cancelled(NULL);
}

static const char *advice(int code, const pb_run_result *r)
{
    if (rv_stopped(code))
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
    v->pm[0] = '\0';
    v->pm_capture = 1;
    if (r->failed_phase && rv_stopped(rc))
        rv_state(v, "⚠️", "phase %d (%s) stopped on request (Ctrl-C, SIGTERM or SIGHUP)",
                 r->failed_phase + v->phase_offset, r->failed_phase_name);
    else if (r->failed_phase)
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
    if (v->ntail && !rv_stopped(rc) &&
        (!strcmp(r->failed_phase_name, "ANALYSIS") ||
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
    v->pm_capture = 0;
}

static void summary(runview *v, const pb_run_result *r)
{
    char b1[32], b2[32], b3[32], b4[32], b5[32], b6[32];
    banner(v, "📊 SUMMARY");
    /* resume_action names what happened to an older, interrupted run, not this run's outcome */
    char how[160];
    if (!strcmp(r->resume_action, "resumed"))
        snprintf(how, sizeof(how), " (resumed the interrupted run %s)", r->resumed_run);
    else if (!strcmp(r->resume_action, "rolled_back"))
        snprintf(how, sizeof(how), "; the interrupted run %s was rolled back first",
                 r->resumed_run[0] ? r->resumed_run : "before it");
    else
        how[0] = '\0';
    rv_state(v, "✅", "%s %s finished%s%s", r->mode_name, r->run_id,
             r->dry_run ? " (dry run: nothing applied)" : "", how);
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

/* --quiet: the one line of the result on stdout. */
static void quiet_line(runview *v, int rc, const pb_error *err, const pb_run_result *r)
{
    char b1[32], b2[32], line[1400];
    if (rc < 0)
        snprintf(line, sizeof(line), "%s %s %s %s%s%s: %s; log: %s",
                 rv_stopped(rc) ? "⚠️" : "❌", r->mode_name[0] ? r->mode_name : v->command,
                 r->run_id, rv_stopped(rc) ? "stopped" : "failed",
                 r->failed_phase_name[0] ? " in " : "", r->failed_phase_name,
                 err && err->msg[0] ? err->msg : pb_strerror(rc),
                 r->log_path[0] ? r->log_path : "(none)");
    else
        snprintf(line, sizeof(line),
                 "✅ %s %s ok%s in %.1f s: up %s, down %s, %llu rows, %llu files, Plex down %.2f s",
                 r->mode_name, r->run_id, r->dry_run ? " (dry run: nothing applied)" : "",
                 r->ms.total / 1000, cli_bytes(b1, sizeof(b1), r->bytes.up),
                 cli_bytes(b2, sizeof(b2), r->bytes.down),
                 (ull)(r->apply.rows.inserted + r->apply.rows.updated + r->apply.rows.deleted),
                 (ull)(r->apply.files_new + r->apply.files_patched + r->apply.files_linked),
                 r->ms.downtime / 1000);
    puts(line);
    fflush(stdout);
    rv_log_line(v, line);
}

int rv_finish(runview *v, int rc, const pb_error *err, const pb_run_result *r)
{
    bar_end(v);
    rv_bar_clear(v);
    v->ph_name[0] = '\0';
    if (!v->no_summary)
        show_report(v, r);
    if (rc < 0)
        post_mortem(v, rc, err, r);
    else if (!v->no_summary)
        summary(v, r);
    if ((v->json || v->stream) && !v->no_summary) {
        json_t *o = rv_result_json(r, rc, err);
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s && !v->stream) {
            puts(s);
            fflush(stdout);
        }
        if (s)
            rv_log_line(v, s);
        free(s);
        if (v->stream)
            rv_stream_event(v, "summary", json_incref(o));
        json_decref(o);
    }
    if (v->quiet && !v->no_summary)
        quiet_line(v, rc, err, r);
    if (rc < 0)
        fprintf(stderr, "plexburst: %s\n", err && err->msg[0] ? err->msg : pb_strerror(rc));
    if (!v->no_summary) {
        rv_notify(v, rc < 0 ? rc : 0, err, r);
        rv_hook(v, rc, err, r);
    }
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
    if (payload)
        heartbeat(payload);
    return g_stop != 0;
}

int rv_run(runview *v, pb_run_options *o, pb_run_result *r)
{
    pb_error err = PB_ERROR_INIT;
    rv_install_signals();
    o->on_event = rv_on_event;
    o->event_payload = v;
    o->cancelled = rv_cancelled;
    o->cancel_payload = v;
    v->dry_run = o->dry_run;
    rv_notify(v, 1, NULL, NULL);
    int rc = pb_run(r, o, &err);
    return rv_finish(v, rc, &err, r);
}

int rv_command(int mode, const char *command, const char *usage, const char *epilog, int argc,
               char **argv)
{
    pb_run_options o;
    pb_run_result r;
    runview v;
    int json = 0, retry_refused = 0, discard_refused = 0, quiet = 0, stream = 0;
    const char *on_success = NULL, *on_failure = NULL;
    pb_run_options_init(&o);
    o.mode = mode;
    const cli_opt common[] = {RV_COMMON_OPTS(o)};
    const cli_opt sync_only[] = {
        {"dry-run", CLI_OPT_FLAG, &o.dry_run, NULL,
         "run the cloud analysis, download the bundle, stop after its report: home unchanged"},
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
    const cli_opt output[] = {
        {"json", CLI_OPT_FLAG, &json, NULL, "print one JSON object at the end"},
        {"json-stream", CLI_OPT_FLAG, &stream, NULL, "print one JSON event per line (docs/cli.md)"},
        {"quiet", CLI_OPT_FLAG, &quiet, NULL,
         "print only errors and one line with the result (for timers)"},
        {"on-success", CLI_OPT_STRING, &on_success, "CMD",
         "run CMD after a successful run, the run's JSON on its stdin"},
        {"on-failure", CLI_OPT_STRING, &on_failure, "CMD",
         "run CMD after a failed run, the run's JSON on its stdin"},
    };
    enum { NOUT = sizeof(output) / sizeof(output[0]) };
    cli_opt opts[NCOMMON + NSYNC + NBOOT + NOUT + 1];
    size_t n = 0;
    for (size_t i = 0; i < NCOMMON; i++)
        opts[n++] = common[i];
    for (size_t i = 0; mode == PB_RUN_SYNC && i < NSYNC; i++)
        opts[n++] = sync_only[i];
    for (size_t i = 0; mode == PB_RUN_BOOTSTRAP && i < NBOOT; i++)
        opts[n++] = bootstrap_only[i];
    for (size_t i = 0; i < NOUT; i++)
        opts[n++] = output[i];
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
    if (json + stream + quiet > 1) {
        cli_usage_error(command, "--json, --json-stream and --quiet exclude each other");
        return cli_usage_exit(command, json, 0, NULL);
    }
    o.refused_action = retry_refused     ? PB_RUN_REFUSED_RETRY
                       : discard_refused ? PB_RUN_REFUSED_DISCARD
                                         : PB_RUN_REFUSED_KEEP;
    rv_init(&v, command, json || stream);
    v.json = json;
    v.stream = stream;
    v.quiet = quiet;
    v.on_success = on_success;
    v.on_failure = on_failure;
    v.notify_url = cli_config_get("PLEXBURST_NOTIFY_URL"); /* the environment, then the files */
    rc = rv_run(&v, &o, &r);
    pb_run_result_dispose(&r);
    return rc;
}

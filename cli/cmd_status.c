/*
 * cmd_status.c: `plexburst status --plex-dir HOME [--limit N] [--run ID] [--json]`: the baseline,
 * the last runs (date, mode, dry runs marked, phase, bytes, durations, what each brought), an
 * interrupted run waiting to resume or roll back, and a pending apply journal; with --run one
 * night in full (phases, rows by table, new titles, analyses, files, cloud cost).
 * Role: option parsing over pb_run_status_read() and pb_run_record_read() (plexburst/run.h);
 * reads only. A record's date, JSON and analysis sum are shared with `report` (report_html.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>

#include "cli.h"
#include "cli_config.h"
#include "progress.h"
#include "report_html.h"

#define STATUS_DEFAULT_LIMIT 10

/* "YYYY-MM-DD HH:MM" in local time ("-" when unknown); returns buf. */
const char *cli_record_date(char *buf, size_t cap, int64_t epoch, int seconds)
{
    time_t t = (time_t)epoch;
    struct tm tm;
    if (epoch <= 0 || !localtime_r(&t, &tm) ||
        !strftime(buf, cap, seconds ? "%Y-%m-%d %H:%M:%S" : "%Y-%m-%d %H:%M", &tm))
        snprintf(buf, cap, "-");
    return buf;
}

/* The sum of the analyses a run brought (markers, loudness, sonic, previews, media). */
uint64_t cli_record_analyses(const pb_run_record *r)
{
    const pb_plex_analysis *a = &r->analysis;
    return a->sonic_tracks + a->loudness_items + a->preview_parts + a->markers + a->media_analyzed;
}

/* One record as JSON; `full` adds the phases, tables and titles. */
json_t *cli_record_json(const pb_run_record *r, int full)
{
    char date[32];
    cli_record_date(date, sizeof(date), r->started, 1);
    const pb_plex_analysis *a = &r->analysis;
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:b, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:f, s:f, s:s, s:b, "
        "s:{s:I, s:I, s:I, s:I, s:I}, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}, "
        "s:{s:I, s:I, s:I, s:I}, s:{s:s, s:s, s:s, s:s, s:f, s:f, s:f}}",
        "run_id", r->run_id, "date", date, "mode", r->mode, "dry_run", r->dry_run, "state",
        r->state, "phase", r->phase, "error", r->error, "started", (json_int_t)r->started,
        "finished", (json_int_t)r->finished, "bytes_up", (json_int_t)r->bytes_up, "bytes_down",
        (json_int_t)r->bytes_down, "ms_total", r->ms_total, "ms_downtime", r->ms_downtime, "log",
        r->log_path, "have_summary", r->have_summary, "rows", "inserted",
        (json_int_t)r->rows_inserted, "updated", (json_int_t)r->rows_updated, "deleted",
        (json_int_t)r->rows_deleted, "written", (json_int_t)r->rows_written, "conflicts",
        (json_int_t)r->conflicts, "new_items", (json_int_t)r->new_items, "analysis", "sonic_tracks",
        (json_int_t)a->sonic_tracks, "loudness_items", (json_int_t)a->loudness_items,
        "loudness_streams", (json_int_t)a->loudness_streams, "preview_parts",
        (json_int_t)a->preview_parts, "markers", (json_int_t)a->markers, "intro_markers",
        (json_int_t)a->intro_markers, "credits_markers", (json_int_t)a->credits_markers,
        "media_analyzed", (json_int_t)a->media_analyzed, "blobs", (json_int_t)a->blobs, "files",
        "new", (json_int_t)r->files_new, "patched", (json_int_t)r->files_patched, "linked",
        (json_int_t)r->files_linked, "bytes_written", (json_int_t)r->bytes_written, "cloud",
        "provider", r->cloud.provider, "zone", r->cloud.zone, "type", r->cloud.type, "server_id",
        r->cloud.server_id, "hourly_price_eur", r->cloud.hourly_price, "seconds", r->cloud.seconds,
        "cost_eur", r->cloud.cost);
    if (!o || !full)
        return o;
    json_t *ph = json_array(), *tb = json_array(), *ti = json_array();
    for (size_t i = 0; i < r->nphases; i++)
        json_array_append_new(ph, json_pack("{s:s, s:b, s:f}", "name", r->phases[i].name, "ok",
                                            r->phases[i].ok, "ms", r->phases[i].ms));
    for (size_t i = 0; i < r->ntables; i++)
        json_array_append_new(tb, json_pack("{s:s, s:I, s:I, s:I}", "name", r->tables[i].name,
                                            "inserted", (json_int_t)r->tables[i].inserted,
                                            "updated", (json_int_t)r->tables[i].updated, "deleted",
                                            (json_int_t)r->tables[i].deleted));
    for (size_t i = 0; i < r->ntitles; i++)
        json_array_append_new(ti, json_pack("{s:s, s:s, s:s}", "type", r->titles[i].type, "title",
                                            r->titles[i].title, "section", r->titles[i].section));
    json_object_set_new(o, "phases", ph);
    json_object_set_new(o, "tables", tb);
    json_object_set_new(o, "tables_total", json_integer((json_int_t)r->ntables_total));
    json_object_set_new(o, "new_titles", ti);
    json_object_set_new(o, "snapshot_raw", json_integer((json_int_t)r->snapshot_raw));
    json_object_set_new(o, "upload_kind", json_string(r->upload_kind));
    json_object_set_new(o, "resumed_run", json_string(r->resumed_run));
    json_object_set_new(o, "resume_action", json_string(r->resume_action));
    return o;
}

static int print_or_fail(json_t *o)
{
    int rc = o ? cli_print_json(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : CLI_EXIT_ERROR;
    json_decref(o);
    if (rc) {
        pb_error err = PB_ERROR_INIT;
        pb_error_set(&err, PB_ECORRUPT, "status: a recorded run holds text that is not UTF-8");
        return cli_fail_json("status", 1, &err, PB_ECORRUPT);
    }
    return CLI_EXIT_OK;
}

/* The status as one JSON object. */
static int print_json(const pb_run_status *s, size_t limit)
{
    json_t *runs = json_array();
    for (size_t i = 0; i < s->nruns && i < limit; i++)
        json_array_append_new(runs, cli_record_json(&s->runs[i], 0));
    json_t *o =
        json_pack("{s:s, s:b, s:i, s:n, s:s, s:s?, s:o, s:o, s:o}", "command", "status", "ok", 1,
                  "exit_code", CLI_EXIT_OK, "error", "state_dir", s->state_dir, "baseline",
                  s->have_baseline ? s->baseline_id : NULL, "runs", runs, "interrupted_run",
                  s->interrupted_run ? json_pack("{s:s, s:s}", "run_id", s->interrupted_id, "state",
                                                 s->interrupted_phase)
                                     : json_null(),
                  "pending_apply",
                  s->pending_apply ? json_pack("{s:s, s:s}", "run_id", s->pending_apply_run,
                                               "state", s->pending_apply_state)
                                   : json_null());
    return print_or_fail(o);
}

static const char *state_emoji(const pb_run_record *r)
{
    return !strcmp(r->state, "ok")                                              ? "✅"
           : !strcmp(r->state, "running")                                       ? "⏳"
           : !strcmp(r->state, "interrupted") || !strcmp(r->state, "cancelled") ? "⚠️"
                                                                                : "❌";
}

/* The baseline, what waits to be completed, and the table of the last runs. */
static void print_human(const pb_run_status *s, size_t limit)
{
    char b1[32], b2[32], date[32];
    printf("state dir: %s\n", s->state_dir);
    if (s->have_baseline)
        cli_state("✅", "baseline %.16s recorded", s->baseline_id);
    else
        cli_state("⚠️", "no baseline yet: run plexburst bootstrap (or a first sync uploads the "
                            "whole DB)");
    if (s->pending_apply)
        cli_state("🚨",
                  "an apply of run %s stopped in state %s: the next sync completes or rolls "
                  "it back",
                  s->pending_apply_run, s->pending_apply_state);
    if (s->interrupted_run)
        cli_state("⚠️", "run %s was interrupted (%s): the next sync resumes or rolls it back",
                  s->interrupted_id, s->interrupted_phase);
    if (!s->nruns) {
        cli_state("🔍", "no runs yet");
        return;
    }
    printf("\n   %-16s %-21s %-9s %-12s %-14s %10s %10s %8s %8s %6s %8s\n", "date", "run", "mode",
           "state", "phase", "up", "down", "time", "Plex off", "items", "analyses");
    size_t shown = 0;
    for (size_t i = 0; i < s->nruns && i < limit; i++, shown++) {
        const pb_run_record *r = &s->runs[i];
        char items[24] = "-", an[24] = "-";
        if (r->have_summary) {
            snprintf(items, sizeof(items), "%llu", (unsigned long long)r->new_items);
            snprintf(an, sizeof(an), "%llu", (unsigned long long)cli_record_analyses(r));
        }
        printf("%s %-16s %-21s %-9s %-12s %-14s %10s %10s %7.1fs %7.2fs %6s %8s\n", state_emoji(r),
               cli_record_date(date, sizeof(date), r->started, 0), r->run_id,
               r->dry_run ? "dry-run" : r->mode, r->state, r->phase,
               cli_bytes(b1, sizeof(b1), r->bytes_up), cli_bytes(b2, sizeof(b2), r->bytes_down),
               r->ms_total / 1000, r->ms_downtime / 1000, items, an);
        if (r->error[0])
            printf("   %s\n", r->error);
    }
    if (shown < s->nruns)
        printf("\n%zu older runs not shown (--limit N)\n", s->nruns - shown);
    if (s->runs[0].log_path[0])
        printf("\nlast log: %s\n", s->runs[0].log_path);
    printf("one night in full: plexburst status --run %s\n", s->runs[0].run_id);
}

/* One night in full. */
static void print_run(const pb_run_record *r)
{
    char b1[32], b2[32], date[32];
    cli_state(state_emoji(r), "run %s: %s%s, %s (phase %s)", r->run_id, r->mode,
              r->dry_run ? " (dry run: nothing applied)" : "", r->state, r->phase);
    printf("   started    %s, took %.1f s\n", cli_record_date(date, sizeof(date), r->started, 1),
           r->ms_total / 1000);
    if (r->error[0])
        printf("   error      %s\n", r->error);
    if (r->resume_action[0])
        printf("   before it  run %s %s\n", r->resumed_run,
               !strcmp(r->resume_action, "resumed") ? "completed" : "rolled back");
    printf("   bytes      %s up, %s down (upload: %s)\n", cli_bytes(b1, sizeof(b1), r->bytes_up),
           cli_bytes(b2, sizeof(b2), r->bytes_down), r->upload_kind[0] ? r->upload_kind : "-");
    printf("   Plex off   %.2f s\n", r->ms_downtime / 1000);
    if (r->cloud.provider[0])
        printf("   cloud      %s%s%s%s%s, %.0f s, %.4f EUR%s%s\n", r->cloud.provider,
               r->cloud.zone[0] ? " " : "", r->cloud.zone, r->cloud.type[0] ? " " : "",
               r->cloud.type, r->cloud.seconds, r->cloud.cost,
               r->cloud.server_id[0] ? ", server " : "", r->cloud.server_id);
    if (r->log_path[0])
        printf("   log        %s\n", r->log_path);
    if (r->nphases) {
        cli_banner("PHASES");
        for (size_t i = 0; i < r->nphases; i++)
            printf("%s %2zu %-16s %9.1f s\n", r->phases[i].ok ? "✅" : "❌", i + 1, r->phases[i].name,
                   r->phases[i].ms / 1000);
    }
    if (!r->have_summary) {
        printf("\nthis record was written before runs kept their summary\n");
        return;
    }
    cli_banner("WHAT IT BROUGHT");
    printf("   rows       %llu inserted, %llu updated, %llu deleted in %zu tables; %llu %s, "
           "%llu conflicts\n",
           (unsigned long long)r->rows_inserted, (unsigned long long)r->rows_updated,
           (unsigned long long)r->rows_deleted, r->ntables_total,
           (unsigned long long)r->rows_written, r->dry_run ? "would be written" : "written",
           (unsigned long long)r->conflicts);
    printf("   files      %llu new, %llu patched, %llu linked (%s written)\n",
           (unsigned long long)r->files_new, (unsigned long long)r->files_patched,
           (unsigned long long)r->files_linked, cli_bytes(b1, sizeof(b1), r->bytes_written));
    const pb_plex_analysis *a = &r->analysis;
    printf("   analyses   %llu sonic tracks, %llu loudness items (%llu streams), %llu preview "
           "parts,\n              %llu markers (%llu intro, %llu credits), %llu media analysed, "
           "%llu blobs\n",
           (unsigned long long)a->sonic_tracks, (unsigned long long)a->loudness_items,
           (unsigned long long)a->loudness_streams, (unsigned long long)a->preview_parts,
           (unsigned long long)a->markers, (unsigned long long)a->intro_markers,
           (unsigned long long)a->credits_markers, (unsigned long long)a->media_analyzed,
           (unsigned long long)a->blobs);
    if (r->ntables) {
        printf("\n   %-40s %10s %10s %10s\n", "table", "inserted", "updated", "deleted");
        for (size_t i = 0; i < r->ntables; i++)
            printf("   %-40s %10llu %10llu %10llu\n", r->tables[i].name,
                   (unsigned long long)r->tables[i].inserted,
                   (unsigned long long)r->tables[i].updated,
                   (unsigned long long)r->tables[i].deleted);
        if (r->ntables_total > r->ntables)
            printf("   ... and %zu more tables\n", r->ntables_total - r->ntables);
    }
    printf("\n   %llu new items", (unsigned long long)r->new_items);
    printf(r->ntitles ? ", among them:\n" : "\n");
    for (size_t i = 0; i < r->ntitles; i++)
        printf("   %-8s %s%s%s%s\n", r->titles[i].type, r->titles[i].title,
               r->titles[i].section[0] ? " (" : "", r->titles[i].section,
               r->titles[i].section[0] ? ")" : "");
}

int cmd_status(int argc, char **argv)
{
    const char *plex = NULL, *state = NULL, *run = NULL;
    int json = 0, limit = STATUS_DEFAULT_LIMIT;
    const cli_opt opts[] = {
        {"plex-dir", CLI_OPT_STRING, &plex, "DIR", "the home Plex data dir"},
        {"state-dir", CLI_OPT_STRING, &state, "DIR", "default: <plex dir>.plexburst"},
        {"limit", CLI_OPT_INT, &limit, "N", "show the last N runs (default 10, at most 30 kept)"},
        {"run", CLI_OPT_STRING, &run, "ID", "show one run in full"},
        {"json", CLI_OPT_FLAG, &json, NULL, "print one JSON object"},
        {NULL, 0, NULL, NULL, NULL},
    };
    int rc = cli_parse("status", "--plex-dir HOME [--limit N] [--run ID] [--json]", opts, argc,
                       argv, NULL, 0, NULL);
    if (rc > 0)
        return CLI_EXIT_OK;
    if (rc < 0)
        return cli_usage_exit("status", json, argc, argv);
    if (!plex)
        plex = cli_config_get("PLEXBURST_PLEX_DIR"); /* the environment, then the files */
    if (!plex || limit < 1) {
        cli_usage_error("status", !plex ? "--plex-dir is required" : "--limit needs 1 or more");
        return cli_usage_exit("status", json, 0, NULL);
    }
    if ((rc = cli_recover_json("status", json, plex, state)) != 0)
        return rc;
    pb_error err = PB_ERROR_INIT;
    if (run) {
        pb_run_record *r = calloc(1, sizeof(*r));
        if (!r)
            return cli_fail_json("status", json, &err, PB_ENOMEM);
        rc = pb_run_record_read(r, plex, state, run, &err);
        if (rc < 0) {
            free(r);
            return cli_fail_json("status", json, &err, rc);
        }
        rc = CLI_EXIT_OK;
        if (json) {
            json_t *o = json_pack("{s:s, s:b, s:i, s:n, s:o}", "command", "status", "ok", 1,
                                  "exit_code", CLI_EXIT_OK, "error", "run", cli_record_json(r, 1));
            rc = print_or_fail(o);
        } else
            print_run(r);
        free(r);
        return rc;
    }
    pb_run_status *s = calloc(1, sizeof(*s));
    if (!s)
        return cli_fail_json("status", json, &err, PB_ENOMEM);
    rc = pb_run_status_read(s, plex, state, &err);
    if (rc < 0) {
        free(s);
        return cli_fail_json("status", json, &err, rc);
    }
    rc = CLI_EXIT_OK;
    if (json)
        rc = print_json(s, (size_t)limit);
    else
        print_human(s, (size_t)limit);
    free(s);
    return rc;
}

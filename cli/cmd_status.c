/*
 * cmd_status.c: `plexburst status --plex-dir HOME [--state-dir DIR] [--json]`: the baseline, the
 * last runs (phase, bytes, durations, log), an interrupted run waiting to resume or roll back,
 * and a pending apply journal.
 * Role: option parsing over pb_run_status_read() (plexburst/run.h); reads only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>

#include "cli.h"
#include "cli_config.h"
#include "progress.h"

/* The status as one JSON object. */
static int print_json(const pb_run_status *s)
{
    json_t *runs = json_array();
    for (size_t i = 0; i < s->nruns; i++) {
        const pb_run_record *r = &s->runs[i];
        json_array_append_new(
            runs,
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:f, s:f, s:s}", "run_id",
                      r->run_id, "mode", r->mode, "state", r->state, "phase", r->phase, "error",
                      r->error, "started", (json_int_t)r->started, "bytes_up",
                      (json_int_t)r->bytes_up, "bytes_down", (json_int_t)r->bytes_down, "ms_total",
                      r->ms_total, "ms_downtime", r->ms_downtime, "log", r->log_path));
    }
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
    int rc = cli_print_json(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (rc) {
        pb_error err = PB_ERROR_INIT;
        pb_error_set(&err, PB_ECORRUPT, "status: a recorded run holds text that is not UTF-8");
        return cli_fail_json("status", 1, &err, PB_ECORRUPT);
    }
    return CLI_EXIT_OK;
}

/* The baseline, what waits to be completed, and the table of the last runs. */
static void print_human(const pb_run_status *s)
{
    char b1[32], b2[32];
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
    if (!s->nruns)
        cli_state("🔍", "no runs yet");
    else
        printf("\n%-24s %-9s %-12s %-14s %10s %10s %9s %8s\n", "run", "mode", "state", "phase",
               "up", "down", "time", "Plex off");
    for (size_t i = 0; i < s->nruns; i++) {
        const pb_run_record *r = &s->runs[i];
        const char *emoji = !strcmp(r->state, "ok")        ? "✅"
                            : !strcmp(r->state, "running") ? "⏳"
                            : !strcmp(r->state, "interrupted") || !strcmp(r->state, "cancelled")
                                ? "⚠️"
                                : "❌";
        printf("%s %-21s %-9s %-12s %-14s %10s %10s %8.1fs %7.2fs\n", emoji, r->run_id, r->mode,
               r->state, r->phase, cli_bytes(b1, sizeof(b1), r->bytes_up),
               cli_bytes(b2, sizeof(b2), r->bytes_down), r->ms_total / 1000, r->ms_downtime / 1000);
        if (r->error[0])
            printf("   %s\n", r->error);
    }
    if (s->nruns && s->runs[0].log_path[0])
        printf("\nlast log: %s\n", s->runs[0].log_path);
}

int cmd_status(int argc, char **argv)
{
    const char *plex = NULL, *state = NULL;
    int json = 0;
    const cli_opt opts[] = {
        {"plex-dir", CLI_OPT_STRING, &plex, "DIR", "the home Plex data dir"},
        {"state-dir", CLI_OPT_STRING, &state, "DIR", "default: <plex dir>.plexburst"},
        {"json", CLI_OPT_FLAG, &json, NULL, "print one JSON object"},
        {NULL, 0, NULL, NULL, NULL},
    };
    int rc = cli_parse("status", "--plex-dir HOME [--json]", opts, argc, argv, NULL, 0, NULL);
    if (rc > 0)
        return CLI_EXIT_OK;
    if (rc < 0)
        return cli_usage_exit("status", json, argc, argv);
    if (!plex)
        plex = cli_config_get("PLEXBURST_PLEX_DIR"); /* the environment, then the files */
    if (!plex) {
        cli_usage_error("status", "--plex-dir is required");
        return cli_usage_exit("status", json, 0, NULL);
    }
    if ((rc = cli_recover_json("status", json, plex, state)) != 0)
        return rc;
    pb_run_status *s = calloc(1, sizeof(*s));
    pb_error err = PB_ERROR_INIT;
    if (!s)
        return cli_fail_json("status", json, &err, PB_ENOMEM);
    rc = pb_run_status_read(s, plex, state, &err);
    if (rc < 0) {
        free(s);
        return cli_fail_json("status", json, &err, rc);
    }
    rc = CLI_EXIT_OK;
    if (json)
        rc = print_json(s);
    else
        print_human(s);
    free(s);
    return rc;
}

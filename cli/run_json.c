/*
 * run_json.c: the `--json` object of a sync or bootstrap (rv_result_json, progress.h): outcome,
 * bytes over the home link, files, rows, the export, phases with their wall and CPU times, the
 * home process's CPU and peak memory, the cloud and the runner.
 * Role: display only, beside progress.c (the text view); the figures come from libplexburst.
 */
#include <string.h>

#include "cli.h"
#include "progress.h"
#include "report_view.h"

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
                        json_pack("{s:f, s:f, s:f}", "total", r->ms.total, "downtime",
                                  r->ms.downtime, "premerge",
                                  r->have_apply ? a->ms.premerge : 0.0));
    json_object_set_new(o, "swap",
                        json_pack("{s:b, s:s}", "swapped", r->have_apply && a->swapped, "note",
                                  r->have_apply ? a->swap_note : ""));
    json_t *ph = json_array();
    for (size_t i = 0; i < r->nphases; i++)
        json_array_append_new(ph, json_pack("{s:s, s:b, s:f, s:f}", "name", r->phases[i].name, "ok",
                                            r->phases[i].ok, "ms", r->phases[i].ms, "cpu_ms",
                                            r->phases[i].cpu_ms));
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

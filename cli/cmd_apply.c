/*
 * cmd_apply.c: `plexburst apply --plex-dir D BUNDLE [...]`: applies a bundle to a home Plex data
 * directory, all or nothing (pb_apply, plexburst/apply.h), printing the numbered phases
 * RECOVER, VERIFY BUNDLE, GUARDS, STAGE FILES, STOP PLEX, MERGE ROWS, INSTALL FILES, START PLEX,
 * a POST-MORTEM on failure, or one JSON object with --json. --dry-run stops after the guards and
 * prints the bundle's diff report as `plexburst diff` does (report_view.c).
 * The rows are written by Plex's own engine when it is found (--plex-sqlite PATH, else
 * $PLEXBURST_PLEX_SQLITE or the standard install locations), else in-process (--in-process).
 * Role: step 5 of a nightly sync run by hand. Exit codes: 0, 1 error, 2 usage, 3 refused.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <plexburst/bundle.h>
#include "cli.h"
#include "progress.h"
#include "report_view.h"

#define SEP CLI_SEPARATOR

typedef unsigned long long ull;

typedef struct view {
    const pb_apply_result *r;
    const pb_apply_options *o;
    int json;
    int headed; /* the phase whose header is printed */
    int shown;  /* the last phase whose results are printed */
} view;

static void hex16(char out[33], const uint8_t h[16])
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static void show_verify(const pb_apply_result *r)
{
    char b1[32], b2[32], h[33];
    cli_bytes(b1, sizeof(b1), r->bundle.bytes);
    hex16(h, r->bundle.checksum);
    cli_state("✅", "bundle verified: %llu records, %s, checksum %s", (ull)r->bundle.records, b1, h);
    cli_bytes(b2, sizeof(b2), r->bundle.content_bytes);
    cli_state("📦", "files: %llu new, %llu deltas, %llu hard links (%s of content)",
              (ull)r->bundle.files_new, (ull)r->bundle.files_delta, (ull)r->bundle.files_link, b2);
    cli_state("📦", "rows: main changeset %s, blobs changeset %s",
              cli_bytes(b1, sizeof(b1), r->bundle.cs_main_bytes),
              cli_bytes(b2, sizeof(b2), r->bundle.cs_blobs_bytes));
    hex16(h, r->bundle.base_main);
    cli_state("✅", "baseline %s matches this home", h);
}

static void show_guards(const view *v)
{
    const pb_apply_result *r = v->r;
    const pb_plex_report *p = &r->report;
    if (!r->have_report)
        return;
    if (v->o->dry_run) { /* the whole diff report, as `plexburst diff` prints it */
        report_view rv;
        report_view_init(&rv, "diff", p, 0, 0, 0);
        report_print_body(&rv);
        cli_state("🛠️", "writer: %s", r->engine);
        cli_state("⚠️", "dry run: nothing was written");
        return;
    }
    cli_state(p->schema.ok ? "✅" : "❌", "%s",
              p->schema.message[0] ? p->schema.message : "schema guard: same schema");
    cli_state(p->deletion.ok ? "✅" : "🚨", "%s",
              p->deletion.message[0] ? p->deletion.message : "deletion guard: no deletions");
    cli_state("📊", "changesets: %llu inserts, %llu updates, %llu deletes in %zu tables",
              (ull)p->cs_inserted, (ull)p->cs_updated, (ull)p->cs_deleted, p->ntables);
    cli_state("📊",
              "3-way view: %llu conflicts (home kept), %llu ids remapped, %llu user-state "
              "changes dropped",
              (ull)p->merge.conflicts, (ull)p->merge.remapped, (ull)p->merge.user_state_dropped);
    if (p->new_items)
        cli_state("📊", "new items: %llu", (ull)p->new_items);
}

static void show_merge(const pb_apply_result *r)
{
    cli_state("✅",
              "rows merged in one transaction: %llu inserted, %llu updated, %llu deleted, %llu "
              "conflicts, %llu columns merged key by key, %llu remapped, %llu user-state "
              "changes dropped",
              (ull)r->rows.inserted, (ull)r->rows.updated, (ull)r->rows.deleted,
              (ull)r->rows.conflicts, (ull)r->rows.merged, (ull)r->rows.remapped,
              (ull)r->rows.user_state_dropped);
    cli_state("🛠️", "written by %s", r->engine);
    if (r->swapped)
        cli_state("✅", "merged into a copy while Plex ran (%.1f s); the stop only swapped it in",
                  r->ms.premerge / 1000);
    else if (r->swap_note[0])
        cli_state("⚠️", "%s", r->swap_note);
    cli_state(r->atomic_pair ? "✅" : "⚠️", "%s",
              r->atomic_pair ? "main + blobs + journal marker committed atomically"
                             : "online: commit recorded by probes (main and blobs commit "
                               "one after the other)");
}

static void show(view *v, int phase)
{
    const pb_apply_result *r = v->r;
    char b1[32];
    switch (phase) {
    case PB_APPLY_RECOVER:
        if (r->recovered.action == PB_RECOVER_NONE)
            cli_state("✅", "no interrupted apply to recover");
        else
            cli_state("🔄", "%s", r->recovered.detail);
        if (r->recovered.action && r->recovered.plex_stopped)
            cli_state("⚠️", "the interrupted apply had stopped Plex%s",
                      v->o->plex_start_cmd ? ": started it again" : ": start it again");
        break;
    case PB_APPLY_VERIFY:
        show_verify(r);
        break;
    case PB_APPLY_GUARDS:
        show_guards(v);
        break;
    case PB_APPLY_STAGE:
        cli_bytes(b1, sizeof(b1), r->bytes_written);
        cli_state("✅",
                  "staged beside their targets: %llu new, %llu patched, %llu hard links, %llu "
                  "already in place (%s written, %llu dirs created)",
                  (ull)r->files_new, (ull)r->files_patched, (ull)r->files_linked,
                  (ull)r->files_unchanged, b1, (ull)r->dirs_created);
        break;
    case PB_APPLY_STOP:
        if (v->o->online)
            cli_state("⚠️", "--online: Plex keeps running (rows merged under its feet, probes "
                                "journaled)");
        else if (r->plex_stopped)
            cli_state("✅", "Plex stopped (--plex-stop-cmd); downtime clock started");
        else
            cli_state("✅", "Plex is not running");
        break;
    case PB_APPLY_MERGE:
        show_merge(r);
        break;
    case PB_APPLY_INSTALL:
        cli_state("✅", "%llu files renamed into place",
                  (ull)(r->files_new + r->files_patched + r->files_linked));
        break;
    case PB_APPLY_START:
        if (r->plex_started)
            cli_state("✅", "Plex started; downtime %.0f ms", r->ms.downtime);
        else if (r->plex_stopped)
            cli_state("⚠️", "Plex was stopped but no --plex-start-cmd was given: start it");
        else
            cli_state("✅", "nothing to start");
        break;
    default:
        break;
    }
    v->shown = phase;
}

static void on_phase(int phase, void *payload)
{
    view *v = payload;
    if (v->json)
        return;
    if (v->headed && v->shown < v->headed)
        show(v, v->headed);
    if (phase >= PB_APPLY_DONE)
        return;
    cli_phase(phase, pb_apply_phase_name(phase));
    v->headed = phase;
}

static const char *advice(int code, const pb_apply_result *r)
{
    switch (code) {
    case PB_EREFUSED:
        return "a guard refused: read the message (baseline, deletion guard or a running Plex)";
    case PB_ESCHEMA:
        return "run the same Plex build on both sides and take a new baseline";
    case PB_ECORRUPT:
        return r->phase >= PB_APPLY_MERGE
                   ? "the rows are committed: the next plexburst start completes the files"
                   : "the bundle is truncated, altered or malformed: fetch it again";
    case PB_EUNSAFE:
        return "the bundle names a path outside the synced tree or through a symlink: do not "
               "use it";
    case PB_ECONFLICT:
        return "a home file changed since the cloud computed the bundle: run the sync again";
    case PB_EBUSY:
        return "another process holds the DB or the journal: stop Plex or wait, then run again";
    default:
        return "read the message above; the journal makes a new attempt safe";
    }
}

static json_t *counts(const pb_merge_counts *c)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "inserted",
                     (json_int_t)c->inserted, "updated", (json_int_t)c->updated, "deleted",
                     (json_int_t)c->deleted, "conflicts", (json_int_t)c->conflicts, "remapped",
                     (json_int_t)c->remapped, "user_state_dropped",
                     (json_int_t)c->user_state_dropped, "natkey_mapped",
                     (json_int_t)c->natkey_mapped, "merged", (json_int_t)c->merged);
}

static int print_json(const pb_apply_result *r, const pb_apply_options *o, int rc,
                      const pb_error *err)
{
    char h[33];
    json_t *j = json_object();
    hex16(h, r->bundle.base_main);
    json_object_set_new(j, "ok", json_boolean(rc == 0));
    json_object_set_new(j, "exit_code", json_integer(cli_exit_code(rc)));
    json_object_set_new(j, "command", json_string("apply"));
    json_object_set_new(j, "dry_run", json_boolean(o->dry_run));
    json_object_set_new(j, "run_id", json_string(r->run_id));
    json_object_set_new(j, "phase", json_string(pb_apply_phase_name(r->phase)));
    json_object_set_new(j, "engine", json_string(r->engine));
    json_object_set_new(j, "online", json_boolean(o->online));
    json_object_set_new(j, "atomic_pair", json_boolean(r->atomic_pair));
    json_object_set_new(j, "baseline", json_string(h));
    json_object_set_new(j, "recovered",
                        json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "action",
                                  r->recovered.action == PB_RECOVER_ROLLED_BACK ? "rolled_back"
                                  : r->recovered.action == PB_RECOVER_ROLLED_FORWARD
                                      ? "rolled_forward"
                                      : "none",
                                  "run_id", r->recovered.run_id, "state", r->recovered.state,
                                  "files_removed", (json_int_t)r->recovered.files_removed,
                                  "files_installed", (json_int_t)r->recovered.files_installed,
                                  "dirs_removed", (json_int_t)r->recovered.dirs_removed));
    json_object_set_new(
        j, "files",
        json_pack("{s:I, s:I, s:I, s:I, s:I}", "new", (json_int_t)r->files_new, "patched",
                  (json_int_t)r->files_patched, "linked", (json_int_t)r->files_linked, "unchanged",
                  (json_int_t)r->files_unchanged, "dirs_created", (json_int_t)r->dirs_created));
    json_object_set_new(
        j, "bytes",
        json_pack("{s:I, s:I, s:I, s:I, s:I}", "bundle", (json_int_t)r->bytes_bundle, "written",
                  (json_int_t)r->bytes_written, "content", (json_int_t)r->bundle.content_bytes,
                  "changeset_main", (json_int_t)r->bundle.cs_main_bytes, "changeset_blobs",
                  (json_int_t)r->bundle.cs_blobs_bytes));
    json_object_set_new(j, "rows", counts(&r->rows));
    json_object_set_new(j, "guards",
                        json_pack("{s:{s:b, s:b, s:s}, s:{s:b, s:b, s:f, s:s}}", "schema",
                                  "checked", r->report.schema.checked, "ok", r->report.schema.ok,
                                  "message", r->report.schema.message, "deletion", "checked",
                                  r->report.deletion.checked, "ok", r->report.deletion.ok,
                                  "max_pct", o->max_delete_pct, "message",
                                  r->report.deletion.message));
    json_object_set_new(j, "plex",
                        json_pack("{s:b, s:b, s:b}", "was_running", r->plex_was_running, "stopped",
                                  r->plex_stopped, "started", r->plex_started));
    json_object_set_new(j, "swap",
                        json_pack("{s:b, s:s, s:f}", "swapped", r->swapped, "note", r->swap_note,
                                  "premerge_ms", r->ms.premerge));
    json_object_set_new(j, "timings_ms",
                        json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "recover",
                                  r->ms.recover, "verify", r->ms.verify, "guards", r->ms.guards,
                                  "stage", r->ms.stage, "merge", r->ms.merge, "install",
                                  r->ms.install, "apply", r->ms.apply, "downtime", r->ms.downtime));
    if (r->have_report) {
        report_view rv;
        report_view_init(&rv, "diff", &r->report, 0, 1, 0);
        json_t *rep = report_to_json(&rv, 0);
        if (rep)
            json_object_set_new(j, "report", rep);
    }
    if (rc)
        json_object_set_new(j, "error",
                            json_pack("{s:i, s:s, s:s, s:i, s:s}", "code", rc, "name",
                                      pb_strerror(rc), "message",
                                      err && err->msg[0] ? err->msg : pb_strerror(rc), "phase",
                                      r->phase, "phase_name", pb_apply_phase_name(r->phase)));
    else
        json_object_set_new(j, "error", json_null());
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_ENSURE_ASCII);
    if (s)
        printf("%s\n", s);
    free(s);
    json_decref(j);
    return 0;
}

/* After pb_apply(): the --json object, or the timings, or the POST-MORTEM. */
static void show_end(view *v, int rc, const pb_error *err)
{
    const pb_apply_result *r = v->r;
    if (v->json) {
        print_json(r, v->o, rc, err);
        if (rc)
            fprintf(stderr, "plexburst: %s\n", err->msg[0] ? err->msg : pb_strerror(rc));
    } else if (rc == 0) {
        if (v->headed && v->shown < v->headed)
            show(v, v->headed);
        printf("\n");
        cli_state("📊",
                  "timings: recover %.0f ms, verify %.0f ms, guards %.0f ms, stage %.0f ms, merge "
                  "%.0f ms, install %.0f ms, total %.0f ms, downtime %.0f ms",
                  r->ms.recover, r->ms.verify, r->ms.guards, r->ms.stage, r->ms.merge,
                  r->ms.install, r->ms.apply, r->ms.downtime);
        cli_state("✅", "%s",
                  v->o->dry_run ? "dry run complete: the bundle can be applied"
                                : "bundle applied: home tree and rows updated together");
    } else if (rc == PB_ECANCELLED && !r->committed) {
        printf("\n");
        cli_state("⚠️", "apply stopped by a signal in PHASE %d (%s): %s", r->phase,
                  pb_apply_phase_name(r->phase),
                  r->rollback_incomplete ? "the roll back is incomplete, the next plexburst start "
                                           "completes it"
                                         : "rolled back, nothing was changed");
    } else {
        if (v->headed == r->phase && v->shown < r->phase && r->phase == PB_APPLY_GUARDS)
            show(v, r->phase);
        else
            cli_state("❌", "%s", err->msg[0] ? err->msg : pb_strerror(rc));
        printf("\n%s\nPOST-MORTEM\n%s\n", SEP, SEP);
        cli_state("❌", "PHASE %d (%s) failed: %s", r->phase, pb_apply_phase_name(r->phase),
                  err->msg[0] ? err->msg : pb_strerror(rc));
        if (!r->committed && !r->rollback_incomplete)
            cli_state("📊", "nothing was changed: staged files and created directories were "
                           "removed, the DB was not written");
        else if (!r->committed)
            cli_state("🚨",
                      "the DB was not written, but the roll back is incomplete (%s): the next "
                      "plexburst start in %s removes what is left",
                      r->rollback_error[0] ? r->rollback_error : "see the journal",
                      r->state_dir ? r->state_dir : "the state dir");
        else
            cli_state("📊",
                      "the journal in %s decides: before the row commit everything is "
                      "rolled back, after it the next plexburst start completes the files",
                      r->state_dir ? r->state_dir : "the state dir");
        cli_state("🔍", "%s", advice(rc, r));
        fprintf(stderr, "plexburst: %s\n", err->msg[0] ? err->msg : pb_strerror(rc));
    }
}

int cmd_apply(int argc, char **argv)
{
    const char *plex_dir = NULL, *state_dir = NULL, *stop = NULL, *start = NULL, *path_map = NULL;
    const char *base_db = NULL, *base_blobs = NULL, *plex_sqlite = NULL, *compat = NULL;
    double max_pct = 5, cmd_timeout = PB_APPLY_PLEX_CMD_TIMEOUT;
    int dry = 0, json = 0, online = 0, npos = 0, in_process = 0;
    char *pos[1];
    const cli_opt opts[] = {
        {"plex-dir", CLI_OPT_STRING, &plex_dir, "DIR", "the home Plex data dir (required)"},
        {"dry-run", CLI_OPT_FLAG, &dry, NULL,
         "verify, check the guards and print the report; write nothing"},
        {"json", CLI_OPT_FLAG, &json, NULL, "print one JSON object"},
        {"plex-stop-cmd", CLI_OPT_STRING, &stop, "CMD", "shell command stopping Plex"},
        {"plex-start-cmd", CLI_OPT_STRING, &start, "CMD", "shell command starting Plex"},
        {"plex-cmd-timeout", CLI_OPT_DOUBLE, &cmd_timeout, "S",
         "seconds each of --plex-stop-cmd and --plex-start-cmd may run; past it its process "
         "group is killed and the apply fails (default 300)"},
        {"online", CLI_OPT_FLAG, &online, NULL,
         "merge while Plex runs (no stop/start; commit probes journaled)"},
        {"max-delete-pct", CLI_OPT_DOUBLE, &max_pct, "P",
         "deletion guard: largest share of a section's items deleted (default 5)"},
        {"path-map", CLI_OPT_STRING, &path_map, "FILE", "path_mappings.json (cloud -> home)"},
        {"state-dir", CLI_OPT_STRING, &state_dir, "DIR", "state dir (default <DIR>.plexburst)"},
        {"base-db", CLI_OPT_STRING, &base_db, "DB",
         "a copy of the baseline DB (needed when none is recorded yet)"},
        {"base-blobs", CLI_OPT_STRING, &base_blobs, "DB", "the baseline blobs DB"},
        {"plex-sqlite", CLI_OPT_STRING, &plex_sqlite, "PATH",
         "write the rows through this engine (Plex SQLite, or its directory; default: found "
         "automatically)"},
        {"in-process", CLI_OPT_FLAG, &in_process, NULL,
         "write the rows in-process through the compatibility layer, even if Plex SQLite is "
         "installed"},
        {"compat-extension", CLI_OPT_STRING, &compat, "PATH",
         "with a sqlite3 stand-in as --plex-sqlite: .load this extension (plexcompat)"},
        {NULL, 0, NULL, NULL, NULL}};
    int rc = cli_parse("apply", "--plex-dir DIR BUNDLE [options]", opts, argc, argv, pos, 1, &npos);
    if (rc)
        return rc > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    if (!plex_dir || npos != 1) {
        cli_usage_error("apply", "%s",
                        !plex_dir ? "--plex-dir is required" : "give exactly one BUNDLE");
        return CLI_EXIT_USAGE;
    }
    if (plex_sqlite && (in_process || online)) {
        cli_usage_error("apply", "%s",
                        in_process ? "--in-process and --plex-sqlite exclude each other"
                                   : "--online merges in-process: drop --plex-sqlite");
        return CLI_EXIT_USAGE;
    }
    if (!(cmd_timeout > 0 && cmd_timeout <= 86400)) {
        cli_usage_error("apply", "--plex-cmd-timeout must be more than 0 and at most 86400 s");
        return CLI_EXIT_USAGE;
    }
    pb_apply_options o;
    pb_apply_result *r = calloc(1, sizeof(*r));
    pb_error err = PB_ERROR_INIT;
    view v = {r, &o, json, 0, 0};
    if (!r) {
        fprintf(stderr, "plexburst: out of memory\n");
        return CLI_EXIT_ERROR;
    }
    pb_apply_options_init(&o);
    o.plex_dir = plex_dir;
    o.bundle = pos[0];
    o.state_dir = state_dir;
    o.dry_run = dry;
    o.online = online;
    o.plex_stop_cmd = stop;
    o.plex_start_cmd = start;
    o.max_delete_pct = max_pct;
    o.path_map = path_map;
    o.base_db = base_db;
    o.base_blobs = base_blobs;
    o.on_phase = on_phase;
    o.phase_payload = &v;
    o.engine = in_process    ? PB_PLEX_ENGINE_IN_PROCESS
               : plex_sqlite ? PB_PLEX_ENGINE_PATH
                             : PB_PLEX_ENGINE_AUTO;
    o.plex_sqlite = plex_sqlite;
    o.compat_extension = compat;
    o.plex_cmd_timeout = cmd_timeout;
    rv_install_signals(); /* SIGINT/SIGTERM: stop cleanly (rolled back), exit 4 as a sync does */
    o.cancelled = rv_cancelled;
    rc = pb_apply(r, &o, &err);
    int code = cli_exit_code(rc);
    show_end(&v, rc, &err);
    pb_apply_result_dispose(r);
    free(r);
    return code;
}

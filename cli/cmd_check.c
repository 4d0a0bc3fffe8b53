/*
 * cmd_check.c: `plexburst check [--plex-dir D] [--plex-sqlite PATH] [--offline] [--json]`: checks
 * a Plex data dir read-only (schema version, integrity of both library DBs, row counts, FTS
 * search), reports which Plex SQLite engine was found, then whether this host is ready to sync:
 * the store and the cloud answer with their credentials, the runner, the Plex stop/start commands,
 * the data dir's owner, the free disk for a baseline (plexburst/setup.h). D defaults to
 * PLEXBURST_PLEX_DIR of the configuration.
 * Role: CLI front end of pb_plex_check() (plexburst/plex.h) and pb_setup_check(); exit 0 when no
 * check failed (warnings allowed), 1 otherwise, 2 for a usage or configuration error.
 * --json prints one JSON object (built with jansson) on stdout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <plexburst/settings.h>
#include <plexburst/setup.h>

#include "cli.h"
#include "cli_config.h"

static json_t *int_or_null(int64_t v)
{
    return v < 0 ? json_null() : json_integer((json_int_t)v);
}

static json_t *str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

static const char *fts_state_name(pb_plex_fts_state s)
{
    return s == PB_FTS_OK ? "ok" : s == PB_FTS_FAILED ? "failed" : "skipped";
}

static int print_json(json_t *obj)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!text) {
        fprintf(stderr, "plexburst: check: cannot build the JSON output\n");
        return CLI_EXIT_ERROR;
    }
    printf("%s\n", text);
    free(text);
    return CLI_EXIT_OK;
}

static const char *const status_names[] = {"ok", "warn", "fail"};

static json_t *setup_json(const pb_setup_report *s)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < s->n; i++)
        json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "check", s->items[i].name, "status",
                                           status_names[s->items[i].status], "message",
                                           s->items[i].message));
    return a;
}

static int report_json(const pb_plex_check_result *r, const pb_setup_report *s)
{
    json_t *counts = json_object();
    for (int i = 0; counts && i < PB_PLEX_CHECK_NCOUNTS; i++)
        json_object_set_new(counts, r->counts[i].table, int_or_null(r->counts[i].rows));
    int has_engine = r->engine.kind != PB_ENGINE_NONE;
    json_t *obj = json_pack(
        "{s:b, s:s, s:i, s:o, s:{s:s, s:o}, s:o, s:{s:s, s:o, s:o, s:I, s:o}, s:{s:s, s:o, s:o}}",
        "ok", r->ok, "db", r->main_path, "tables", r->tables, "schema_version",
        str_or_null(r->schema_version), "integrity", "main", r->integrity_main, "blobs",
        r->has_blobs ? json_string(r->integrity_blobs) : json_null(), "counts", counts, "fts",
        "status", fts_state_name(r->fts), "table", str_or_null(r->fts_table), "title",
        str_or_null(r->fts_title), "matches", (json_int_t)r->fts_matches, "detail",
        str_or_null(r->fts_detail), "engine", "kind", pb_plex_engine_kind_name(r->engine.kind),
        "path", has_engine ? json_string(r->engine.path) : json_null(), "detail",
        has_engine ? json_null() : str_or_null(r->engine_detail));
    int ok = r->ok && !s->failed;
    if (obj) {
        json_object_set_new(obj, "ok", json_boolean(ok));
        json_object_set_new(obj, "setup", setup_json(s));
        json_object_set_new(obj, "disk",
                            json_pack("{s:I, s:I}", "free", (json_int_t)s->disk_free,
                                      "baseline_need", (json_int_t)s->baseline_need));
    }
    if (print_json(obj) != CLI_EXIT_OK)
        return CLI_EXIT_ERROR;
    return ok ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}

static const char *mark(int ok)
{
    return ok ? "✅" : "❌";
}

static int report_human(const char *dir, const pb_plex_check_result *r, const pb_setup_report *s)
{
    int main_ok = r->integrity_main[0] && strcmp(r->integrity_main, "ok") == 0;
    cli_state("🔍", "Plex data dir: %s", dir);
    cli_state(mark(r->tables > 0 && r->schema_version[0]), "main DB: %d tables, schema version %s",
              r->tables, r->schema_version[0] ? r->schema_version : "unknown");
    cli_state(mark(main_ok), "main DB integrity: %s", r->integrity_main);
    if (r->has_blobs)
        cli_state(mark(strcmp(r->integrity_blobs, "ok") == 0), "blobs DB integrity: %s",
                  r->integrity_blobs);
    else
        cli_state("⚠️", "blobs DB: not present");
    for (int i = 0; i < PB_PLEX_CHECK_NCOUNTS; i++) {
        if (r->counts[i].rows < 0)
            cli_state("❌", "%s: missing", r->counts[i].table);
        else
            cli_state("✅", "%s: %lld rows", r->counts[i].table, (long long)r->counts[i].rows);
    }
    if (r->fts == PB_FTS_OK)
        cli_state("✅", "FTS: %s finds \"%s\" (%lld matches)", r->fts_table, r->fts_title,
                  (long long)r->fts_matches);
    else if (r->fts == PB_FTS_FAILED)
        cli_state("❌", "FTS: %s on \"%s\": %s", r->fts_table, r->fts_title, r->fts_detail);
    else
        cli_state("⚠️", "FTS: skipped (%s)", r->fts_detail);
    if (r->engine.kind != PB_ENGINE_NONE)
        cli_state("✅", "Plex engine: %s (%s)", r->engine.path,
                  pb_plex_engine_kind_name(r->engine.kind));
    else if (r->engine_configured)
        cli_state("❌", "Plex engine: %s", r->engine_detail ? r->engine_detail : "not found");
    else
        cli_state("⚠️", "Plex engine: none (in-process compatibility layer will be used)");
    for (size_t i = 0; i < s->n; i++)
        cli_state(pb_setup_status_mark(s->items[i].status), "%s", s->items[i].message);
    int ok = r->ok && !s->failed;
    cli_state(mark(ok), "check %s", ok ? "passed" : "failed");
    return ok ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}

int cmd_check(int argc, char **argv)
{
    const char *dir = NULL, *engine = NULL;
    char *dir_set = NULL;
    int json = 0, offline = 0, rc;
    const cli_opt opts[] = {
        {"plex-dir", CLI_OPT_STRING, &dir, "DIR",
         "the Plex data dir (\"…/Plex Media Server\"; default: PLEXBURST_PLEX_DIR)"},
        {"plex-sqlite", CLI_OPT_STRING, &engine, "PATH",
         "Plex's SQLite engine: a file or its directory (default: $PLEXBURST_PLEX_SQLITE, then "
         "the standard install locations)"},
        {"offline", CLI_OPT_FLAG, &offline, NULL,
         "do not contact the store or the cloud (their credentials are not checked)"},
        {"json", CLI_OPT_FLAG, &json, NULL, "print one JSON object instead of text"},
        {NULL, 0, NULL, NULL, NULL},
    };
    pb_plex_check_result *r = NULL;
    pb_setup_report setup = {0};
    pb_setup_options so = PB_SETUP_OPTIONS_INIT;
    pb_error err = PB_ERROR_INIT;

    rc = cli_parse("check", "[--plex-dir DIR] [--plex-sqlite PATH] [--offline] [--json]", opts,
                   argc, argv, NULL, 0, NULL);
    if (rc != 0)
        return rc > 0 ? CLI_EXIT_OK : cli_usage_exit("check", json, argc, argv);
    if (!dir &&
        (rc = pb_settings_get(&dir_set, "PLEXBURST_PLEX_DIR", cli_config_file(), &err)) < 0) {
        cli_fail_json("check", json, &err, rc);
        return CLI_EXIT_USAGE;
    }
    if (!dir)
        dir = dir_set;
    if (!dir) {
        cli_usage_error("check", "--plex-dir (or PLEXBURST_PLEX_DIR) is required");
        return cli_usage_exit("check", json, 0, NULL);
    }
    if ((rc = cli_recover_json("check", json, dir, NULL)) != 0)
        goto out;
    r = malloc(sizeof(*r)); /* ~13 KB: keep it off the stack */
    if (!r) {
        fprintf(stderr, "plexburst: out of memory\n");
        rc = CLI_EXIT_ERROR;
        goto out;
    }
    so.plex_dir = dir;
    so.config_file = cli_config_file();
    so.offline = offline;
    rc = pb_plex_check(r, dir, engine, &err);
    if (rc == 0)
        rc = pb_setup_check(&setup, &so, &err);
    if (rc != 0) {
        rc = cli_fail_json("check", json, &err, rc);
    } else {
        rc = json ? report_json(r, &setup) : report_human(dir, r, &setup);
    }
    pb_setup_report_dispose(&setup);
    pb_plex_check_result_dispose(r);
    free(r);
out:
    free(dir_set);
    return rc;
}

/*
 * cmd_check.c: `plexburst check --plex-dir D [--plex-sqlite PATH] [--json]`: checks a Plex data
 * dir read-only (schema version, integrity of both library DBs, row counts, FTS search) and
 * reports which Plex SQLite engine was found.
 * Role: CLI front end of pb_plex_check() (include/plexburst/plex.h); exit 0 when everything
 * passed, 1 otherwise. --json prints one JSON object (built with jansson) on stdout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

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

static int report_json(const pb_plex_check_result *r)
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
    if (print_json(obj) != CLI_EXIT_OK)
        return CLI_EXIT_ERROR;
    return r->ok ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}

static const char *mark(int ok)
{
    return ok ? "✅" : "❌";
}

static int report_human(const char *dir, const pb_plex_check_result *r)
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
    cli_state(mark(r->ok), "check %s", r->ok ? "passed" : "failed");
    return r->ok ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}

int cmd_check(int argc, char **argv)
{
    const char *dir = NULL, *engine = NULL;
    int json = 0, rc;
    const cli_opt opts[] = {
        {"plex-dir", CLI_OPT_STRING, &dir, "DIR", "the Plex data dir (\"…/Plex Media Server\")"},
        {"plex-sqlite", CLI_OPT_STRING, &engine, "PATH",
         "Plex's SQLite engine: a file or its directory (default: $PLEXBURST_PLEX_SQLITE, then "
         "the standard install locations)"},
        {"json", CLI_OPT_FLAG, &json, NULL, "print one JSON object instead of text"},
        {NULL, 0, NULL, NULL, NULL},
    };
    pb_plex_check_result *r = NULL;
    pb_error err = PB_ERROR_INIT;

    rc = cli_parse("check", "--plex-dir DIR [--plex-sqlite PATH] [--json]", opts, argc, argv, NULL,
                   0, NULL);
    if (rc != 0)
        return rc > 0 ? CLI_EXIT_OK : cli_usage_exit("check", json, argc, argv);
    if (!dir) {
        cli_usage_error("check", "--plex-dir is required");
        return cli_usage_exit("check", json, 0, NULL);
    }
    if ((rc = cli_recover_json("check", json, dir, NULL)) != 0)
        return rc;
    r = malloc(sizeof(*r)); /* ~13 KB: keep it off the stack */
    if (!r) {
        fprintf(stderr, "plexburst: out of memory\n");
        return CLI_EXIT_ERROR;
    }
    rc = pb_plex_check(r, dir, engine, &err);
    if (rc != 0) {
        rc = cli_fail_json("check", json, &err, rc);
    } else {
        rc = json ? report_json(r) : report_human(dir, r);
    }
    pb_plex_check_result_dispose(r);
    free(r);
    return rc;
}

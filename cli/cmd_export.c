/*
 * cmd_export.c: `plexburst export`: builds a bundle on the cloud side (plexburst/export.h),
 * or with --list-only writes step (a) of the protocol, the cloud's LIST (its manifest; with
 * --base-dir MANIFEST only the paths that differ from the home manifest, as text).
 *   plexburst export --cloud-dir C --list-only [--base-dir MANIFEST] -o LIST
 *   plexburst export --cloud-dir C --base-db B.db [--base-blobs BB.db] WHAT-HOME-HOLDS -o BUNDLE
 * where WHAT-HOME-HOLDS is --base-dir HOME (a readable home data dir or snapshot: the answer is
 * computed locally), --base-dir MANIFEST [--sigs ANSWER] (a home manifest, signatures optional),
 * or --sigs ANSWER alone (the home's answer to the LIST, from `plexburst sigs`).
 * Role: the cloud half of step 4 of a nightly sync, run by hand or by the agent.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <plexburst/bundle.h>
#include "cli.h"

typedef unsigned long long ull;

/* "-o X" is accepted for "--output X". */
static char **translate(int argc, char **argv)
{
    char **v = calloc((size_t)argc + 1, sizeof(*v));
    for (int i = 0; v && i < argc; i++)
        v[i] = strcmp(argv[i], "-o") == 0 ? "--output" : argv[i];
    return v;
}

static int is_manifest(const char *path)
{
    char m[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t n = fread(m, 1, 8, f);
    fclose(f);
    return n == 8 && memcmp(m, "PBMANIF1", 8) == 0;
}

/* One JSON object on stdout: {"command": "export", "ok": true, "exit_code": 0, "error": null,
 * key: path, count_key: n}. */
static int list_json(const char *key, const char *path, const char *count_key, ull n)
{
    json_t *j = json_pack("{s:s, s:b, s:i, s:n, s:s, s:I}", "command", "export", "ok", 1,
                          "exit_code", CLI_EXIT_OK, "error", key, path, count_key, (json_int_t)n);
    int rc = cli_print_json(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    return rc;
}

/* --list-only: the cloud's LIST, or with --base-dir MANIFEST the paths that differ. */
static int export_list(const char *cloud, const char *base_dir, const char *output, int json)
{
    pb_error err = PB_ERROR_INIT;
    pb_export_stats st;
    int rc;
    if (base_dir && is_manifest(base_dir)) {
        rc = pb_export_wanted(&st, cloud, NULL, base_dir, output, &err);
        if (rc)
            return cli_fail_json("export", json, &err, rc);
        if (json)
            return list_json("wanted", output, "paths", (ull)st.answers);
        cli_state("✅", "wanted LIST: %llu paths that differ from the home manifest, in %s",
                  (ull)st.answers, output);
        return CLI_EXIT_OK;
    }
    rc = pb_export_list(&st, cloud, NULL, output, &err);
    if (rc)
        return cli_fail_json("export", json, &err, rc);
    if (json)
        return list_json("list", output, "files", (ull)st.listed);
    cli_state("✅", "LIST of %llu cloud files written to %s", (ull)st.listed, output);
    return CLI_EXIT_OK;
}

/* What the home holds (--base-dir HOME or MANIFEST, --sigs) into o; 0 or CLI_EXIT_USAGE. */
static int home_holds(pb_export_options *o, const char *base_dir, const char *sigs, int json)
{
    struct stat sb;
    if (!base_dir) {
        o->answer = sigs;
        return 0;
    }
    if (stat(base_dir, &sb) != 0) {
        cli_usage_error("export", "--base-dir %s does not exist", base_dir);
        return cli_usage_exit("export", json, 0, NULL);
    }
    if (S_ISDIR(sb.st_mode)) {
        o->home_dir = base_dir;
        if (sigs) {
            cli_usage_error("export", "--sigs goes with a manifest, not a home dir");
            return cli_usage_exit("export", json, 0, NULL);
        }
    } else if (is_manifest(base_dir)) {
        o->home_manifest = base_dir;
        o->answer = sigs;
    } else {
        cli_usage_error("export", "--base-dir %s is neither a directory nor a manifest", base_dir);
        return cli_usage_exit("export", json, 0, NULL);
    }
    return 0;
}

/* The built bundle's figures, as lines or one JSON object. */
static int show_built(const pb_export_stats *st, const char *output, int json)
{
    if (json) {
        json_t *j = json_pack(
            "{s:b, s:s, s:s, s:{s:I, s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I, s:I, s:I}, "
            "s:{s:I, s:I, s:I}, s:{s:f}, s:i, s:n}",
            "ok", 1, "command", "export", "bundle", output, "files", "listed",
            (json_int_t)st->listed, "new", (json_int_t)st->files_new, "delta",
            (json_int_t)st->files_delta, "link", (json_int_t)st->files_link, "unchanged",
            (json_int_t)st->files_unchanged, "whole_changed", (json_int_t)st->files_whole_changed,
            "bytes", "bundle", (json_int_t)st->bundle_bytes, "content",
            (json_int_t)st->content_bytes, "delta", (json_int_t)st->delta_bytes, "signatures",
            (json_int_t)st->sig_bytes, "changeset_main", (json_int_t)st->cs_main_bytes,
            "changeset_blobs", (json_int_t)st->cs_blobs_bytes, "rows", "inserted",
            (json_int_t)st->rows_inserted, "updated", (json_int_t)st->rows_updated, "deleted",
            (json_int_t)st->rows_deleted, "timings_ms", "export", st->ms, "exit_code", CLI_EXIT_OK,
            "error");
        int rc = cli_print_json(j, JSON_INDENT(2));
        json_decref(j);
        return rc;
    }
    cli_state("📦",
              "files: %llu listed, %llu new (%llu of them replacing small home files), %llu "
              "deltas, %llu hard links, %llu unchanged",
              (ull)st->listed, (ull)st->files_new, (ull)st->files_whole_changed,
              (ull)st->files_delta, (ull)st->files_link, (ull)st->files_unchanged);
    char b1[32], b2[32];
    cli_state("📦", "rows: %llu inserts, %llu updates, %llu deletes (changesets %s + %s)",
              (ull)st->rows_inserted, (ull)st->rows_updated, (ull)st->rows_deleted,
              cli_bytes(b1, sizeof(b1), st->cs_main_bytes),
              cli_bytes(b2, sizeof(b2), st->cs_blobs_bytes));
    cli_state("✅", "bundle %s: %s (content %s) in %.0f ms", output,
              cli_bytes(b1, sizeof(b1), st->bundle_bytes),
              cli_bytes(b2, sizeof(b2), st->content_bytes), st->ms);
    return CLI_EXIT_OK;
}

int cmd_export(int argc, char **argv)
{
    const char *cloud = NULL, *base_db = NULL, *base_blobs = NULL, *base_dir = NULL, *sigs = NULL;
    const char *output = NULL, *list = NULL, *cloud_db = NULL, *cloud_blobs = NULL, *work = NULL;
    int list_only = 0, json = 0, level = 19, keep = 0, whole = 0;
    const cli_opt opts[] = {
        {"cloud-dir", CLI_OPT_STRING, &cloud, "DIR", "the cloud's Plex data dir (required)"},
        {"base-db", CLI_OPT_STRING, &base_db, "DB", "the baseline library DB"},
        {"base-blobs", CLI_OPT_STRING, &base_blobs, "DB", "the baseline blobs DB"},
        {"base-dir", CLI_OPT_STRING, &base_dir, "DIR|MANIFEST",
         "what the home holds: its data dir (or a snapshot), or its manifest"},
        {"sigs", CLI_OPT_STRING, &sigs, "ANSWER",
         "the home's answer with signatures (plexburst sigs)"},
        {"output", CLI_OPT_STRING, &output, "FILE", "the bundle (or LIST) to write; also -o"},
        {"list-only", CLI_OPT_FLAG, &list_only, NULL,
         "step (a): write the cloud's LIST only (with --base-dir MANIFEST: just what differs)"},
        {"list", CLI_OPT_STRING, &list, "LIST", "the LIST already made by --list-only"},
        {"cloud-db", CLI_OPT_STRING, &cloud_db, "DB", "the cloud library DB (default: in DIR)"},
        {"cloud-blobs", CLI_OPT_STRING, &cloud_blobs, "DB", "the cloud blobs DB (default: in DIR)"},
        {"zstd-level", CLI_OPT_INT, &level, "N", "compression level of the payloads (1..19)"},
        {"whole-below", CLI_OPT_INT, &whole, "BYTES",
         "with --base-dir HOME: send files smaller than this whole (default 65536)"},
        {"work-dir", CLI_OPT_STRING, &work, "DIR", "temporary files (default $TMPDIR)"},
        {"keep-work", CLI_OPT_FLAG, &keep, NULL, "keep the temporary files"},
        {"json", CLI_OPT_FLAG, &json, NULL, "print one JSON object"},
        {NULL, 0, NULL, NULL, NULL}};
    char **av = translate(argc, argv);
    if (!av)
        return CLI_EXIT_ERROR;
    int rc = cli_parse("export",
                       "--cloud-dir C --base-db B.db [--base-blobs BB.db] (--base-dir HOME | "
                       "--base-dir MANIFEST [--sigs ANSWER] | --sigs ANSWER) -o BUNDLE\n"
                       "       plexburst export --cloud-dir C --list-only [--base-dir MANIFEST] "
                       "-o LIST",
                       opts, argc, av, NULL, 0, NULL);
    free(av);
    if (rc)
        return rc > 0 ? CLI_EXIT_OK : cli_usage_exit("export", json, argc, argv);
    if (!cloud || !output) {
        cli_usage_error("export", "--cloud-dir and -o are required");
        return cli_usage_exit("export", json, 0, NULL);
    }
    if (list_only)
        return export_list(cloud, base_dir, output, json);
    if (!base_db) {
        cli_usage_error("export", "--base-db is required");
        return cli_usage_exit("export", json, 0, NULL);
    }
    if (!base_dir && !sigs) {
        cli_usage_error("export", "say what the home holds: --base-dir or --sigs");
        return cli_usage_exit("export", json, 0, NULL);
    }
    pb_export_options o;
    pb_export_options_init(&o);
    o.cloud_dir = cloud;
    o.cloud_db = cloud_db;
    o.cloud_blobs = cloud_blobs;
    o.base_db = base_db;
    o.base_blobs = base_blobs;
    o.list = list;
    o.work_dir = work;
    o.keep_work = keep;
    o.zstd_level = level;
    o.whole_below = whole > 0 ? (uint64_t)whole : 0;
    if ((rc = home_holds(&o, base_dir, sigs, json)) != 0)
        return rc;
    if (!json)
        cli_phase(1, "EXPORT BUNDLE");
    pb_error err = PB_ERROR_INIT;
    pb_export_stats st;
    rc = pb_export_build(&st, output, &o, &err);
    if (rc) {
        if (!json)
            cli_state("❌", "%s", err.msg[0] ? err.msg : pb_strerror(rc));
        return cli_fail_json("export", json, &err, rc);
    }
    return show_built(&st, output, json);
}

/*
 * cmd_diff.c: `plexburst diff`: read-only inspection of what a cloud run changed (base -> cloud):
 * per table and per section rows, new titles, analysis progress, guard verdicts, sizes; with
 * --live, the 3-way view (a dry-run merge: conflicts, remaps). docs/cli.md.
 * Role: option parsing over pb_plex_diff() (plexburst/plexmerge.h); rendering in report.c.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "report.h"

#define DIFF_USAGE                                                                                 \
    "--base B.db --cloud C.db [--live L.db] [--blobs-base B --blobs-cloud C [--blobs-live L]] "    \
    "[--path-map FILE] [--max-delete-pct P] [--json] [--list]"

int cmd_diff(int argc, char **argv)
{
    const char *base = NULL, *cloud = NULL, *live = NULL, *changeset = NULL;
    const char *bbase = NULL, *bcloud = NULL, *blive = NULL, *bchangeset = NULL;
    const char *path_map = NULL, *plex_sqlite = NULL, *compat = NULL, *work_dir = NULL;
    double max_pct = 5.0;
    int json = 0, list = 0, in_process = 0, keep_work = 0, zstd_level = 19;
    const cli_opt opts[] = {
        {"base", CLI_OPT_STRING, &base, "B.db", "the baseline library DB"},
        {"cloud", CLI_OPT_STRING, &cloud, "C.db", "the cloud's analysed library DB"},
        {"live", CLI_OPT_STRING, &live, "L.db",
         "the live home DB: adds the 3-way view (a dry-run merge; nothing written)"},
        {"changeset", CLI_OPT_STRING, &changeset, "FILE",
         "instead of --cloud: a base->cloud changeset (raw or zstd)"},
        {"blobs-base", CLI_OPT_STRING, &bbase, "B", "the baseline blobs DB"},
        {"blobs-cloud", CLI_OPT_STRING, &bcloud, "C", "the cloud's blobs DB"},
        {"blobs-live", CLI_OPT_STRING, &blive, "L", "the live home blobs DB (with --live)"},
        {"blobs-changeset", CLI_OPT_STRING, &bchangeset, "FILE",
         "instead of --blobs-cloud: a blobs changeset"},
        {"path-map", CLI_OPT_STRING, &path_map, "FILE",
         "path_mappings.json for the 3-way view (cloud -> home paths)"},
        {"max-delete-pct", CLI_OPT_DOUBLE, &max_pct, "P",
         "deletion guard threshold reported (default 5)"},
        {"json", CLI_OPT_FLAG, &json, NULL, "print one JSON object (docs/cli.md)"},
        {"list", CLI_OPT_FLAG, &list, NULL, "with --live: print every merge decision"},
        {"plex-sqlite", CLI_OPT_STRING, &plex_sqlite, "PATH",
         "with --live: the engine a merge would use (reported only)"},
        {"in-process", CLI_OPT_FLAG, &in_process, NULL,
         "with --live: report the in-process writer"},
        {"compat-extension", CLI_OPT_STRING, &compat, "PATH", "with a sqlite3 stand-in engine"},
        {"work-dir", CLI_OPT_STRING, &work_dir, "DIR", "temporary files (default $TMPDIR)"},
        {"keep-work", CLI_OPT_FLAG, &keep_work, NULL, "keep the changesets"},
        {"zstd-level", CLI_OPT_INT, &zstd_level, "N",
         "level for the compressed size figure (default 19; window capped at 1 MiB)"},
        {NULL, 0, NULL, NULL, NULL},
    };

    int rc = cli_parse("diff", DIFF_USAGE, opts, argc, argv, NULL, 0, NULL);
    if (rc > 0) {
        printf(REPORT_EXIT_CODES);
        return CLI_EXIT_OK;
    }
    if (rc < 0)
        return CLI_EXIT_USAGE;
    if (!base || (!cloud && !changeset)) {
        cli_usage_error("diff", "--base and --cloud (or --changeset) are required");
        return CLI_EXIT_USAGE;
    }
    if ((rc = cli_recover_live(live)) != 0)
        return rc;
    if (cloud && changeset) {
        cli_usage_error("diff", "--cloud and --changeset exclude each other");
        return CLI_EXIT_USAGE;
    }
    if (in_process && plex_sqlite) {
        cli_usage_error("diff", "--in-process and --plex-sqlite exclude each other");
        return CLI_EXIT_USAGE;
    }
    if (max_pct < 0 || zstd_level < 1 || zstd_level > 19) {
        cli_usage_error("diff", "--max-delete-pct cannot be negative, --zstd-level is 1..19");
        return CLI_EXIT_USAGE;
    }

    pb_plex_merge_options o;
    pb_plex_merge_options_init(&o);
    o.base = base;
    o.cloud = cloud;
    o.live = live;
    o.changeset = changeset;
    o.blobs_base = bbase;
    o.blobs_cloud = bcloud;
    o.blobs_live = blive;
    o.blobs_changeset = bchangeset;
    o.path_map = path_map;
    o.max_delete_pct = max_pct;
    o.dry_run = 1;
    o.engine = in_process    ? PB_PLEX_ENGINE_IN_PROCESS
               : plex_sqlite ? PB_PLEX_ENGINE_PATH
                             : PB_PLEX_ENGINE_AUTO;
    o.plex_sqlite = plex_sqlite;
    o.compat_extension = compat;
    o.work_dir = work_dir;
    o.keep_work = keep_work;
    o.zstd_level = zstd_level;
    return report_run("diff", 0, &o, json, list);
}

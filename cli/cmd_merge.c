/*
 * cmd_merge.c: `plexburst merge`: merges the cloud's rows (base -> cloud) into the live home Plex
 * DB pair: schema guard, diff, deletion guard, backup, 3-way merge (docs/cli.md).
 * Role: option parsing over pb_plex_merge() (plexburst/plexmerge.h); rendering in report.c.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "report.h"

#define MERGE_USAGE                                                                                \
    "--base B.db --cloud C.db --live L.db [--blobs-base B --blobs-cloud C --blobs-live L] "        \
    "[--path-map FILE] [--max-delete-pct P] [--dry-run] [--json] [--list] [--plex-sqlite PATH | "  \
    "--in-process] [--backup-dir DIR] [--keep-backups N]"

int cmd_merge(int argc, char **argv)
{
    const char *base = NULL, *cloud = NULL, *live = NULL, *changeset = NULL;
    const char *bbase = NULL, *bcloud = NULL, *blive = NULL, *bchangeset = NULL;
    const char *path_map = NULL, *plex_sqlite = NULL, *compat = NULL, *backup_dir = NULL;
    const char *work_dir = NULL;
    double max_pct = 5.0;
    int dry_run = 0, json = 0, list = 0, in_process = 0, keep_backups = 3, keep_work = 0;
    int zstd_level = 19;
    const cli_opt opts[] = {
        {"base", CLI_OPT_STRING, &base, "B.db", "the baseline library DB both sides agreed on"},
        {"cloud", CLI_OPT_STRING, &cloud, "C.db", "the cloud's analysed library DB"},
        {"live", CLI_OPT_STRING, &live, "L.db", "the live home library DB (written)"},
        {"changeset", CLI_OPT_STRING, &changeset, "FILE",
         "instead of --cloud: a base->cloud changeset (raw or zstd)"},
        {"blobs-base", CLI_OPT_STRING, &bbase, "B", "the baseline blobs DB"},
        {"blobs-cloud", CLI_OPT_STRING, &bcloud, "C", "the cloud's blobs DB"},
        {"blobs-live", CLI_OPT_STRING, &blive, "L", "the live home blobs DB (written)"},
        {"blobs-changeset", CLI_OPT_STRING, &bchangeset, "FILE",
         "instead of --blobs-cloud: a blobs changeset"},
        {"path-map", CLI_OPT_STRING, &path_map, "FILE",
         "path_mappings.json: {\"mappings\": {\"/cloud\": \"/home\"}}"},
        {"max-delete-pct", CLI_OPT_DOUBLE, &max_pct, "P",
         "refuse deleting more than P % of a section's items or parts (default 5)"},
        {"dry-run", CLI_OPT_FLAG, &dry_run, NULL, "decide and report everything, write nothing"},
        {"json", CLI_OPT_FLAG, &json, NULL, "print one JSON object (docs/cli.md)"},
        {"list", CLI_OPT_FLAG, &list, NULL, "print every merge decision"},
        {"plex-sqlite", CLI_OPT_STRING, &plex_sqlite, "PATH",
         "Plex's engine (file or directory); default: auto-detected"},
        {"in-process", CLI_OPT_FLAG, &in_process, NULL,
         "write in-process through the compatibility layer, even when Plex's engine is there"},
        {"compat-extension", CLI_OPT_STRING, &compat, "PATH",
         "with a sqlite3 stand-in as --plex-sqlite: .load this plexcompat extension"},
        {"backup-dir", CLI_OPT_STRING, &backup_dir, "DIR",
         "backups of the live DBs (default: <dir of live>/plexburst-backups)"},
        {"keep-backups", CLI_OPT_INT, &keep_backups, "N", "backups kept (default 3; 0 = none)"},
        {"work-dir", CLI_OPT_STRING, &work_dir, "DIR", "temporary files (default $TMPDIR)"},
        {"keep-work", CLI_OPT_FLAG, &keep_work, NULL, "keep the changesets and the SQL script"},
        {"zstd-level", CLI_OPT_INT, &zstd_level, "N",
         "level for the compressed size figure (default 19; window capped at 1 MiB)"},
        {NULL, 0, NULL, NULL, NULL},
    };

    int rc = cli_parse("merge", MERGE_USAGE, opts, argc, argv, NULL, 0, NULL);
    if (rc > 0) {
        printf(REPORT_EXIT_CODES);
        return CLI_EXIT_OK;
    }
    if (rc < 0)
        return CLI_EXIT_USAGE;
    if (!base || !live || (!cloud && !changeset)) {
        cli_usage_error("merge", "--base, --live and --cloud (or --changeset) are required");
        return CLI_EXIT_USAGE;
    }
    if ((rc = cli_recover_live(live)) != 0)
        return rc;
    if (cloud && changeset) {
        cli_usage_error("merge", "--cloud and --changeset exclude each other");
        return CLI_EXIT_USAGE;
    }
    if (in_process && plex_sqlite) {
        cli_usage_error("merge", "--in-process and --plex-sqlite exclude each other");
        return CLI_EXIT_USAGE;
    }
    if (max_pct < 0 || keep_backups < 0 || zstd_level < 1 || zstd_level > 19) {
        cli_usage_error("merge", "--max-delete-pct and --keep-backups cannot be negative, "
                                 "--zstd-level is 1..19");
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
    o.dry_run = dry_run;
    o.engine = in_process    ? PB_PLEX_ENGINE_IN_PROCESS
               : plex_sqlite ? PB_PLEX_ENGINE_PATH
                             : PB_PLEX_ENGINE_AUTO;
    o.plex_sqlite = plex_sqlite;
    o.compat_extension = compat;
    o.backup_dir = backup_dir;
    o.keep_backups = keep_backups;
    o.work_dir = work_dir;
    o.keep_work = keep_work;
    o.zstd_level = zstd_level;
    return report_run("merge", 1, &o, json, list);
}

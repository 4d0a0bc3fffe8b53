/*
 * cmd_merge.c: `plexburst merge`: merges the cloud's rows (base -> cloud) into the live home Plex
 * DB pair: schema guard, diff, deletion guard, backup, 3-way merge (docs/cli.md).
 * Role: the options (shared with `diff`, plexdb_opts.c) over pb_plex_merge()
 * (plexburst/plexmerge.h); rendering in report_view.c.
 */
#include "cli.h"
#include "plexdb_opts.h"

int cmd_merge(int argc, char **argv)
{
    static const plexdb_cmd merge = {
        "merge",
        "--base B.db --cloud C.db --live L.db [--blobs-base B --blobs-cloud C --blobs-live L] "
        "[--path-map FILE] [--max-delete-pct P] [--dry-run] [--json] [--list] [--plex-sqlite PATH "
        "| --in-process] [--backup-dir DIR] [--keep-backups N]",
        1,
    };
    return plexdb_run(&merge, argc, argv);
}

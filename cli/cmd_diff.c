/*
 * cmd_diff.c: `plexburst diff`: read-only inspection of what a cloud run changed (base -> cloud):
 * per table and per section rows, new titles, analysis progress, guard verdicts, sizes; with
 * --live, the 3-way view (a dry-run merge: conflicts, remaps). docs/cli.md.
 * Role: the options (shared with `merge`, plexdb_opts.c) over pb_plex_diff()
 * (plexburst/plexmerge.h); rendering in report_view.c.
 */
#include "cli.h"
#include "plexdb_opts.h"

int cmd_diff(int argc, char **argv)
{
    static const plexdb_cmd diff = {
        "diff",
        "--base B.db --cloud C.db [--live L.db] [--blobs-base B --blobs-cloud C [--blobs-live L]] "
        "[--path-map FILE] [--max-delete-pct P] [--json] [--list]",
        0,
    };
    return plexdb_run(&diff, argc, argv);
}

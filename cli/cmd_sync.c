/*
 * cmd_sync.c: `plexburst sync --plex-dir HOME [--cloud local[:DIR]|ssh://HOST[/DIR]]
 * [--store DIR|s3://BUCKET/PREFIX] [--runner 'CMD'] [--dry-run] [--full-upload]
 * [--retry-refused|--discard-refused] [--json]`: the nightly run: the home's row changeset up,
 * the cloud's analysis, a bundle down, merged by the journaled apply. Apply options
 * (--plex-stop-cmd, --plex-start-cmd, --online, --max-delete-pct, --path-map) pass through. A run
 * a guard refused is kept until --retry-refused or --discard-refused decides (docs/cli.md).
 * Role: option parsing over pb_run() (plexburst/run.h); rendering in progress.c.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "progress.h"

#define SYNC_USAGE                                                                                 \
    "--plex-dir HOME [--cloud local[:DIR]|ssh://[USER@]HOST[:PORT][/DIR]] "                        \
    "[--store DIR|file://DIR|s3://BUCKET/PREFIX] [--runner 'CMD'] [--dry-run] [--full-upload] "    \
    "[--retry-refused|--discard-refused] [--json] [apply options]"

int cmd_sync(int argc, char **argv)
{
    return rv_command(
        PB_RUN_SYNC, "sync", SYNC_USAGE,
        "\nexit codes: 0 ok, 1 error (home untouched unless the apply committed), 2 usage,\n"
        "3 refused by a guard (kept until --retry-refused or --discard-refused),\n"
        "4 cancelled (Ctrl-C, SIGTERM, SIGHUP), 5 busy (another run holds the lock)\n",
        argc, argv);
}

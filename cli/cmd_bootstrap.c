/*
 * cmd_bootstrap.c: `plexburst bootstrap --plex-dir HOME [--cloud local[:DIR]|ssh://HOST[/DIR]]
 * [--store DIR|s3://BUCKET/PREFIX] [--runner 'CMD']`: the first run (or a rebuild): the runner
 * builds the library in the cloud, the whole result comes home (DB pair zstd, resumable, plus the
 * files the home lacks), installed with Plex stopped, keeping Preferences.xml, carrying the home's
 * user state and edits over (play state, playlists, collections, locked edits; matched by file and
 * guid); both sides record the baseline. A home that already syncs is refused (exit 2) unless
 * --force. Role: option parsing over pb_run() (plexburst/run.h); rendering in progress.c.
 */
#include <stdio.h>

#include "cli.h"
#include "progress.h"

#define BOOTSTRAP_USAGE                                                                            \
    "--plex-dir HOME [--cloud local[:DIR]|ssh://[USER@]HOST[:PORT][/DIR]] "                        \
    "[--store DIR|file://DIR|s3://BUCKET/PREFIX] [--runner 'CMD'] [--force] [--json] "             \
    "[apply options]"

int cmd_bootstrap(int argc, char **argv)
{
    return rv_command(PB_RUN_BOOTSTRAP, "bootstrap", BOOTSTRAP_USAGE, NULL, argc, argv);
}

/*
 * cmd_sync.c: `plexburst sync --plex-dir HOME [--cloud local[:DIR]|ssh://HOST[/DIR]]
 * [--store DIR|s3://BUCKET/PREFIX] [--runner 'CMD'] [--dry-run] [--json]`: the nightly run: the
 * home's row changeset up,
 * the cloud's analysis, a bundle down, merged by the journaled apply. Apply options
 * (--plex-stop-cmd, --plex-start-cmd, --online, --max-delete-pct, --path-map) pass through.
 * Role: option parsing over pb_run() (plexburst/run.h); rendering in progress.c.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "progress.h"

#define SYNC_USAGE                                                                                 \
    "--plex-dir HOME [--cloud local[:DIR]|ssh://[USER@]HOST[:PORT][/DIR]] "                        \
    "[--store DIR|file://DIR|s3://BUCKET/PREFIX] [--runner 'CMD'] [--dry-run] [--json] "           \
    "[apply options]"

int cmd_sync(int argc, char **argv)
{
    pb_run_options o;
    pb_run_result r;
    int json = 0;
    pb_run_options_init(&o);
    o.mode = PB_RUN_SYNC;
    const cli_opt opts[] = {
        RV_COMMON_OPTS(o),
        {"dry-run", CLI_OPT_FLAG, &o.dry_run, NULL,
         "stop after the bundle's diff report: nothing is applied"},
        {"full-upload", CLI_OPT_FLAG, &o.full_upload, NULL,
         "upload the whole snapshot instead of a row changeset"},
        {"json", CLI_OPT_FLAG, &json, NULL, "print one JSON object at the end"},
        {NULL, 0, NULL, NULL, NULL},
    };
    int rc = cli_parse("sync", SYNC_USAGE, opts, argc, argv, NULL, 0, NULL);
    if (rc > 0) {
        printf("\nexit codes: 0 ok, 1 error (home untouched unless the apply committed), 2 usage,"
               " 3 refused by a guard, 4 cancelled\n");
        return CLI_EXIT_OK;
    }
    if (rc < 0)
        return CLI_EXIT_USAGE;
    runview v;
    rv_init(&v, "sync", json);
    rc = rv_run(&v, &o, &r);
    pb_run_result_dispose(&r);
    return rc;
}

/*
 * cmd_bootstrap.c: `plexburst bootstrap --plex-dir HOME [--cloud local[:DIR]|ssh://HOST[/DIR]]
 * [--store DIR|s3://BUCKET/PREFIX] [--runner 'CMD']`: the first run (or a rebuild): the runner
 * builds the library in the cloud, the whole result comes home (DB pair zstd, resumable, plus the
 * files the home lacks), installed with Plex stopped, keeping Preferences.xml, carrying the home's
 * user state over by (account_id, guid); both sides record the baseline. Role: option parsing over
 * pb_run() (plexburst/run.h); rendering in progress.c.
 */
#include <stdio.h>

#include "cli.h"
#include "progress.h"

int cmd_bootstrap(int argc, char **argv)
{
    pb_run_options o;
    pb_run_result r;
    int json = 0;
    pb_run_options_init(&o);
    o.mode = PB_RUN_BOOTSTRAP;
    const cli_opt opts[] = {
        RV_COMMON_OPTS(o),
        {"json", CLI_OPT_FLAG, &json, NULL, "print one JSON object at the end"},
        {NULL, 0, NULL, NULL, NULL},
    };
    int rc = cli_parse("bootstrap",
                       "--plex-dir HOME [--cloud local[:DIR]|ssh://[USER@]HOST[:PORT][/DIR]] "
                       "[--store DIR|file://DIR|s3://BUCKET/PREFIX] [--runner 'CMD'] [--json] "
                       "[apply options]",
                       opts, argc, argv, NULL, 0, NULL);
    if (rc > 0)
        return CLI_EXIT_OK;
    if (rc < 0)
        return CLI_EXIT_USAGE;
    runview v;
    rv_init(&v, "bootstrap", json);
    rc = rv_run(&v, &o, &r);
    pb_run_result_dispose(&r);
    return rc;
}

/*
 * cmd_agent.c: `plexburst agent --workdir DIR [--store DIR|s3://BUCKET/PREFIX]`: the cloud side
 * of bootstrap and sync. It speaks the framed protocol (docs/protocol.md) on stdin/stdout, so it
 * prints nothing there; the home side starts it (a local cloud as a child process, an ssh:// cloud
 * over SSH).
 * Role: option parsing over pb_agent_serve() (plexburst/run.h).
 */
#include <stdio.h>
#include <unistd.h>

#include "cli.h"
#include <plexburst/run.h>

int cmd_agent(int argc, char **argv)
{
    const char *workdir = NULL, *store = NULL, *mkplex = NULL;
    const cli_opt opts[] = {
        {"workdir", CLI_OPT_STRING, &workdir, "DIR",
         "the cloud directory: DIR/plex is the cloud's Plex data dir, DIR/agent its state"},
        {"store", CLI_OPT_STRING, &store, "URL",
         "the store (DIR, file://DIR or s3://BUCKET/PREFIX), unless the home names one"},
        {"mkplex", CLI_OPT_STRING, &mkplex, "PATH",
         "the fixture tool for {mkplex} in runner lines (default: beside this binary)"},
        {NULL, 0, NULL, NULL, NULL},
    };
    int rc = cli_parse("agent", "--workdir DIR [--store DIR|s3://BUCKET/PREFIX]", opts, argc, argv,
                       NULL, 0, NULL);
    if (rc > 0)
        return CLI_EXIT_OK;
    if (rc < 0)
        return CLI_EXIT_USAGE;
    if (!workdir) {
        cli_usage_error("agent", "--workdir is required");
        return CLI_EXIT_USAGE;
    }
    if (isatty(0) && isatty(1))
        fprintf(stderr, "plexburst agent: speaks the plexburst protocol on stdin/stdout; it is "
                        "started by `plexburst sync` or `bootstrap`, not by hand\n");
    pb_agent_options o = PB_AGENT_OPTIONS_INIT;
    o.workdir = workdir;
    o.store = store;
    o.mkplex = mkplex;
    pb_error err = PB_ERROR_INIT;
    rc = pb_agent_serve(&o, &err);
    if (rc < 0 && rc != PB_ECANCELLED)
        fprintf(stderr, "plexburst agent: %s\n", err.msg[0] ? err.msg : pb_strerror(rc));
    return cli_exit_code(rc);
}

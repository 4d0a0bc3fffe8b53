/*
 * cmd_cloud.c: `plexburst cloud status|reap [--dry-run]|prices [--zone Z]` (docs/scaleway.md):
 * the Scaleway account as plexburst sees it: the servers tagged plexburst now (with what they
 * cost so far), the removal of what earlier runs left (this home's records with --plex-dir or
 * --state-dir, and the tagged leftovers of dead or expired runs), the live price table of the
 * instance profiles. The account is read as for `--cloud scaleway` (SCW_*, the scw config file).
 * Role: cli. Prerequisites: plexburst/scaleway.h.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "plexburst/scaleway.h"

static void on_log(void *payload, const char *level, const char *line)
{
    (void)payload;
    if (!strcmp(level, "warn"))
        cli_monitor("⚠️", "%s", line);
    else if (strcmp(level, "detail") != 0)
        cli_monitor(NULL, "%s", line);
}

static int on_server(const pb_scaleway_server *s, void *payload)
{
    (void)payload;
    cli_state(NULL, "%s  %s  %s  %s  run %s  %.4f EUR/h, %.1f h since created: about %.4f EUR",
              s->zone, s->id ? s->id : "?", s->type ? s->type : "?", s->state ? s->state : "?",
              s->run_id[0] ? s->run_id : "?", s->hourly_price, s->hours, s->cost);
    return 0;
}

static int on_price(const pb_scaleway_price *p, void *payload)
{
    (void)payload;
    cli_state(NULL, "%-11s %-8s %3d GB root  %.4f EUR/h  %7.2f EUR for 12 h  %s", p->profile,
              p->type, p->root_gb, p->hourly_price, p->hourly_price * 12,
              p->availability[0] ? p->availability : "?");
    return 0;
}

int cmd_cloud(int argc, char **argv)
{
    const char *zone = NULL, *plex = NULL, *state = NULL;
    int dry = 0;
    char *pos[1];
    int npos = 0;
    const cli_opt opts[] = {
        {"zone", CLI_OPT_STRING, &zone, "ZONE", "a Scaleway zone (default: SCW_DEFAULT_ZONE)"},
        {"plex-dir", CLI_OPT_STRING, &plex, "DIR", "reap: also this home's records of runs"},
        {"state-dir", CLI_OPT_STRING, &state, "DIR", "reap: the state dir (<plex dir>.plexburst)"},
        {"dry-run", CLI_OPT_FLAG, &dry, NULL, "reap: list what would be removed"},
        {NULL, 0, NULL, NULL, NULL},
    };
    const char *usage = "status|reap|prices [--zone Z] [--dry-run] [--plex-dir DIR]";
    int rc = cli_parse("cloud", usage, opts, argc, argv, pos, 1, &npos);
    if (rc > 0)
        return CLI_EXIT_OK;
    if (rc < 0)
        return CLI_EXIT_USAGE;
    if (npos != 1 ||
        (strcmp(pos[0], "status") && strcmp(pos[0], "reap") && strcmp(pos[0], "prices"))) {
        cli_usage_error("cloud", "expected status, reap or prices");
        return CLI_EXIT_USAGE;
    }
    char sd[4200];
    if (!state && plex) {
        snprintf(sd, sizeof(sd), "%s.plexburst", plex);
        state = sd;
    }
    pb_scaleway_options o = PB_SCALEWAY_OPTIONS_INIT;
    o.zone = zone;
    o.state_dir = state;
    o.dry_run = dry;
    o.log = on_log;
    pb_error err = PB_ERROR_INIT;
    int error;
    unsigned n = 0;
    if (!strcmp(pos[0], "status")) {
        cli_banner("Scaleway: servers tagged plexburst");
        error = pb_scaleway_status(&o, on_server, NULL, &n, &err);
        if (error == 0)
            cli_state(n ? "📊" : "✅", "%u server(s) tagged plexburst", n);
    } else if (!strcmp(pos[0], "reap")) {
        cli_banner(dry ? "Scaleway: what a reap would remove" : "Scaleway: reap");
        error = pb_scaleway_reap(&o, &n, &err);
        if (error == 0)
            cli_state(n ? (dry ? "🔍" : "✅") : "✅", "%u leftover(s) %s", n,
                      dry ? "found (nothing removed: --dry-run)" : "removed");
    } else {
        cli_banner("Scaleway: live prices of the profiles");
        error = pb_scaleway_prices(&o, on_price, NULL, &err);
    }
    if (error < 0) {
        fprintf(stderr, "plexburst: %s\n", err.msg[0] ? err.msg : pb_strerror(error));
        return cli_exit_code(error);
    }
    return CLI_EXIT_OK;
}

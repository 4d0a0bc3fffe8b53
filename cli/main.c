/*
 * main.c: entry point of the plexburst CLI: the command table, `help` and `version`.
 * Role: dispatches to cmd_<name>() in the other cli/ files; each command parses its options,
 * calls libplexburst's public API and renders the result. Nothing else lives in cli/.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int cmd_version(int argc, char **argv)
{
    printf("plexburst %s\n", pb_version());
    return CLI_EXIT_OK;
}

static int cmd_help(int argc, char **argv);

static const cli_cmd commands[] = {
    {"check", cmd_check, "check a Plex data dir: schema, integrity, Plex's own SQLite engine"},
    {"fingerprint", cmd_fingerprint, "fingerprint the synced part of a Plex data dir (manifest)"},
    {"diff", cmd_diff, "what a cloud run changed: per table and section, guards, 3-way view"},
    {"merge", cmd_merge,
     "merge a cloud run's rows into the live Plex DB pair (guarded, backed up)"},
    {"export", cmd_export, "cloud side: build a bundle (rows + new files + deltas), or its LIST"},
    {"sigs", cmd_sigs, "home side: answer a LIST with what home lacks, with rsync signatures"},
    {"apply", cmd_apply, "apply a bundle to a home data dir, all or nothing (journaled)"},
    {"bootstrap", cmd_bootstrap, "first run: the cloud builds the library, all of it comes home"},
    {"sync", cmd_sync, "the nightly run: row changeset up, cloud analysis, bundle down, merged"},
    {"status", cmd_status, "the last runs, their phases, bytes and durations, pending work"},
    {"demo", cmd_demo, "the whole story here: mkplex library, bootstrap, a nightly sync"},
    {"agent", cmd_agent, "cloud side of bootstrap/sync (started by them; speaks on stdin/stdout)"},
    {"version", cmd_version, "print the version"},
    {"help", cmd_help, "list the commands"},
    {NULL, NULL, NULL},
};

static int cmd_help(int argc, char **argv)
{
    printf("plexburst %s: a Plex-aware delta sync engine for cloud bursting\n\n", pb_version());
    printf("usage: plexburst <command> [options]   (plexburst <command> --help for details)\n\n");
    for (const cli_cmd *c = commands; c->name; c++)
        printf("  %-12s %s\n", c->name, c->summary);
    printf("\nexit codes: 0 ok, 1 error, 2 usage, 3 refused by a guard, 4 cancelled\n");
    return CLI_EXIT_OK;
}

/* Every command touching a Plex data dir (--plex-dir D, or --live D/<library DB>) first completes
 * or rolls back an interrupted apply (pb_apply_recover); apply does it as its own phase 1. */
static int recover_first(const char *cmd, int argc, char **argv)
{
    const char *dir = NULL, *state = NULL;
    static char buf[4096];
    size_t rel = strlen(PB_PLEX_DB_REL);
    if (strcmp(cmd, "apply") == 0)
        return 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        for (int k = 0; k < 3; k++) {
            const char *name = k == 0 ? "--plex-dir" : k == 1 ? "--state-dir" : "--live";
            size_t n = strlen(name);
            if (strncmp(a, name, n) != 0 || (a[n] != '\0' && a[n] != '='))
                continue;
            v = a[n] == '=' ? a + n + 1 : (i + 1 < argc ? argv[i + 1] : NULL);
            if (!v)
                continue;
            if (k == 0)
                dir = v;
            else if (k == 1)
                state = v;
            else if (!dir && strlen(v) > rel + 1 &&
                     strcmp(v + strlen(v) - rel, PB_PLEX_DB_REL) == 0 &&
                     v[strlen(v) - rel - 1] == '/') {
                snprintf(buf, sizeof(buf), "%.*s", (int)(strlen(v) - rel - 1), v);
                dir = buf;
            }
        }
    }
    if (!dir)
        return 0;
    pb_recover_result r;
    pb_error err = PB_ERROR_INIT;
    int rc = pb_apply_recover_ex(&r, dir, state, &err);
    if (rc) {
        fprintf(stderr, "plexburst: cannot recover the interrupted apply of %s: %s\n", dir,
                err.msg[0] ? err.msg : pb_strerror(rc));
        return cli_exit_code(rc) ? cli_exit_code(rc) : CLI_EXIT_ERROR;
    }
    if (r.action)
        fprintf(stderr, "plexburst: recovered an interrupted apply: %s\n", r.detail);
    if (r.action && r.plex_stopped)
        fprintf(stderr, "plexburst: the interrupted apply had stopped Plex: start it again\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        cmd_help(0, NULL);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
        return cmd_help(0, NULL);
    if (strcmp(argv[1], "--version") == 0)
        return cmd_version(0, NULL);
    for (const cli_cmd *c = commands; c->name; c++)
        if (strcmp(c->name, argv[1]) == 0) {
            int rc = recover_first(c->name, argc - 2, argv + 2);
            return rc ? rc : c->fn(argc - 2, argv + 2);
        }
    fprintf(stderr, "plexburst: unknown command '%s' (see plexburst help)\n", argv[1]);
    return CLI_EXIT_USAGE;
}

/*
 * main.c: entry point of the plexburst CLI: the command table, `help` and `version`.
 * `__generate DIR` (hidden) writes the man page and completions from the option tables.
 * Role: dispatches to cmd_<name>() in the other cli/ files; each command parses its options,
 * calls libplexburst's public API and renders the result (a command touching a home data dir
 * first recovers an interrupted apply: cli_recover() in ui.c, or the library call itself).
 */
#include <stdio.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "cli.h"
#include "plexburst/versions.h"
#include "cli_config.h"

/* The first line is the version alone (the SSH agent install compares it); then the libraries
 * in use, as they report themselves at run time. */
static int cmd_version(int argc, char **argv)
{
    pb_dep_version v[16];
    size_t n = pb_versions_deps(v, sizeof(v) / sizeof(*v));
    printf("plexburst %s\n", pb_version());
    for (size_t i = 0; i < n && i < sizeof(v) / sizeof(*v); i++)
        printf("  %-9s %s\n", v[i].name, v[i].version);
    return CLI_EXIT_OK;
}

static int cmd_generate(int argc, char **argv);
static int cmd_help(int argc, char **argv);

static const cli_cmd commands[] = {
    {"config", cmd_config, "every effective setting, its value and where it came from"},
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
    {"report", cmd_report, "what each night brought, as one HTML page with plots (--html FILE)"},
    {"cloud", cmd_cloud, "the Scaleway account: servers tagged plexburst, reap, live prices"},
    {"demo", cmd_demo, "the whole story here: mkplex library, bootstrap, a nightly sync"},
    {"agent", cmd_agent, "cloud side of bootstrap/sync (started by them; speaks on stdin/stdout)"},
    {"version", cmd_version, "print the version"},
    {"help", cmd_help, "list the commands"},
    {"__generate", cmd_generate, NULL},
    {NULL, NULL, NULL},
};

/* Hidden: `plexburst __generate DIR` writes the man page and the completions (cli/CMakeLists). */
static int cmd_generate(int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "usage: plexburst __generate DIR\n");
        return CLI_EXIT_USAGE;
    }
    return cli_generate(commands, argv[0]);
}

static int cmd_help(int argc, char **argv)
{
    printf("plexburst %s: a Plex-aware delta sync engine for cloud bursting\n\n", pb_version());
    printf("usage: plexburst <command> [options]   (plexburst <command> --help for details)\n\n");
    for (const cli_cmd *c = commands; c->name; c++)
        if (c->summary)
            printf("  %-12s %s\n", c->name, c->summary);
    printf("\nexit codes: 0 ok, 1 error, 2 usage, 3 refused by a guard, 4 cancelled, 5 busy\n");
    return CLI_EXIT_OK;
}

int main(int argc, char **argv)
{
#ifdef __GLIBC__
    /* large buffers (zstd windows and contexts) go back to the system when freed: a fixed mmap
     * threshold stops glibc from raising it at the first free, which kept each phase's buffers
     * in the heap after the phase (home peak RSS of a sync at medium: 61 MB -> 44 MB) */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
#endif
    if (argc < 2) {
        cmd_help(0, NULL);
        return CLI_EXIT_USAGE;
    }
    int rc = cli_config_take(&argc, argv); /* --config FILE, for every command */
    if (rc != 0 || argc < 2)
        return rc ? rc : (cmd_help(0, NULL), CLI_EXIT_USAGE);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
        return cmd_help(0, NULL);
    if (strcmp(argv[1], "--version") == 0)
        return cmd_version(0, NULL);
    for (const cli_cmd *c = commands; c->name; c++)
        if (strcmp(c->name, argv[1]) == 0) {
            rc = c->fn(argc - 2, argv + 2);
            cli_help_finish(); /* after a --help: its examples and environment names */
            return rc;
        }
    fprintf(stderr, "plexburst: unknown command '%s' (see plexburst help)\n", argv[1]);
    return CLI_EXIT_USAGE;
}

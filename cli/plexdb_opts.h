/*
 * plexdb_opts.h: the command line shared by `plexburst diff` and `plexburst merge`: one option
 * table (the DB trio and the blobs trio, path map, guard, engine, work files) with each
 * command's own help texts, the checks both commands make, and the pb_plex_merge_options they
 * fill. Role: cli/, over plexburst/plexmerge.h only.
 */
#ifndef PB_CLI_PLEXDB_OPTS_H
#define PB_CLI_PLEXDB_OPTS_H

#include "cli.h"

/** What differs between the two commands. */
typedef struct plexdb_cmd {
    const char *name;  /* "diff" or "merge" */
    const char *usage; /* the usage line */
    int writes;        /* 1: merge (writes the live DBs: --live required, backups, --dry-run) */
} plexdb_cmd;

/** Parses argv for `cmd`, checks it, and runs the report (report_run). Returns the exit code. */
int plexdb_run(const plexdb_cmd *cmd, int argc, char **argv);

#endif

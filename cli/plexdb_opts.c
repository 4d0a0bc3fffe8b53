/*
 * plexdb_opts.c: the option table and checks shared by `plexburst diff` and `plexburst merge`
 * (cli/plexdb_opts.h): one table whose entries carry the help text of each command (an option of
 * one command only has no text for the other), so that the two commands cannot drift apart.
 * Role: cli/; renders through report_view.c. Prerequisites: the public headers only.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "plexdb_opts.h"
#include "report_view.h"

typedef struct plexdb_args {
    const char *base, *cloud, *live, *changeset;
    const char *bbase, *bcloud, *blive, *bchangeset;
    const char *path_map, *plex_sqlite, *compat, *backup_dir, *work_dir;
    double max_pct;
    int dry_run, json, list, in_process, keep_backups, keep_work, zstd_level;
} plexdb_args;

/* One option with the help of `diff` and of `merge` (NULL: not an option of that command). */
typedef struct plexdb_opt {
    const char *name;
    cli_opt_type type;
    size_t offset; /* of the value in plexdb_args */
    const char *arg;
    const char *diff_help, *merge_help;
} plexdb_opt;

#define A(field) offsetof(plexdb_args, field)

static const plexdb_opt k_opts[] = {
    {"base", CLI_OPT_STRING, A(base), "B.db", "the baseline library DB",
     "the baseline library DB both sides agreed on"},
    {"cloud", CLI_OPT_STRING, A(cloud), "C.db", "the cloud's analysed library DB",
     "the cloud's analysed library DB"},
    {"live", CLI_OPT_STRING, A(live), "L.db",
     "the live home DB: adds the 3-way view (a dry-run merge; nothing written)",
     "the live home library DB (written)"},
    {"changeset", CLI_OPT_STRING, A(changeset), "FILE",
     "instead of --cloud: a base->cloud changeset (raw or zstd)",
     "instead of --cloud: a base->cloud changeset (raw or zstd)"},
    {"blobs-base", CLI_OPT_STRING, A(bbase), "B", "the baseline blobs DB", "the baseline blobs DB"},
    {"blobs-cloud", CLI_OPT_STRING, A(bcloud), "C", "the cloud's blobs DB", "the cloud's blobs DB"},
    {"blobs-live", CLI_OPT_STRING, A(blive), "L", "the live home blobs DB (with --live)",
     "the live home blobs DB (written)"},
    {"blobs-changeset", CLI_OPT_STRING, A(bchangeset), "FILE",
     "instead of --blobs-cloud: a blobs changeset", "instead of --blobs-cloud: a blobs changeset"},
    {"path-map", CLI_OPT_STRING, A(path_map), "FILE",
     "path_mappings.json for the 3-way view (cloud -> home paths)",
     "path_mappings.json: {\"mappings\": {\"/cloud\": \"/home\"}}"},
    {"max-delete-pct", CLI_OPT_DOUBLE, A(max_pct), "P",
     "deletion guard threshold reported (default 5)",
     "refuse deleting more than P % of a library table's rows, whole or per section (default 5)"},
    {"dry-run", CLI_OPT_FLAG, A(dry_run), NULL, NULL,
     "decide and report everything, write nothing"},
    {"json", CLI_OPT_FLAG, A(json), NULL, "print one JSON object (docs/cli.md)",
     "print one JSON object (docs/cli.md)"},
    {"list", CLI_OPT_FLAG, A(list), NULL, "with --live: print every merge decision",
     "print every merge decision"},
    {"plex-sqlite", CLI_OPT_STRING, A(plex_sqlite), "PATH",
     "with --live: the engine a merge would use (reported only)",
     "Plex's engine (file or directory); default: auto-detected"},
    {"in-process", CLI_OPT_FLAG, A(in_process), NULL, "with --live: report the in-process writer",
     "write in-process through the compatibility layer, even when Plex's engine is there"},
    {"compat-extension", CLI_OPT_STRING, A(compat), "PATH", "with a sqlite3 stand-in engine",
     "with a sqlite3 stand-in as --plex-sqlite: .load this plexcompat extension"},
    {"backup-dir", CLI_OPT_STRING, A(backup_dir), "DIR", NULL,
     "backups of the live DBs (default: <dir of live>/plexburst-backups)"},
    {"keep-backups", CLI_OPT_INT, A(keep_backups), "N", NULL, "backups kept (default 3; 0 = none)"},
    {"work-dir", CLI_OPT_STRING, A(work_dir), "DIR", "temporary files (default $TMPDIR)",
     "temporary files (default $TMPDIR)"},
    {"keep-work", CLI_OPT_FLAG, A(keep_work), NULL, "keep the changesets",
     "keep the changesets and the SQL script"},
    {"zstd-level", CLI_OPT_INT, A(zstd_level), "N",
     "level for the compressed size figure (default 19; window capped at 1 MiB)",
     "level for the compressed size figure (default 19; window capped at 1 MiB)"},
};

#define NOPTS (sizeof(k_opts) / sizeof(k_opts[0]))

/* The cli_opt table of `cmd` over `a` (terminated by a NULL entry). */
static void build_table(cli_opt *out, const plexdb_cmd *cmd, plexdb_args *a)
{
    size_t n = 0;
    for (size_t i = 0; i < NOPTS; i++) {
        const char *help = cmd->writes ? k_opts[i].merge_help : k_opts[i].diff_help;
        if (!help)
            continue;
        cli_opt o = {k_opts[i].name, k_opts[i].type, (char *)a + k_opts[i].offset, k_opts[i].arg,
                     help};
        out[n++] = o;
    }
    memset(&out[n], 0, sizeof(out[n]));
}

/* The usage checks; 0, or -1 after printing the error. */
static int check_args(const plexdb_cmd *cmd, const plexdb_args *a)
{
    const char *name = cmd->name;
    if (!a->base || (cmd->writes && !a->live) || (!a->cloud && !a->changeset)) {
        cli_usage_error(name, cmd->writes
                                  ? "--base, --live and --cloud (or --changeset) are required"
                                  : "--base and --cloud (or --changeset) are required");
        return -1;
    }
    if (a->cloud && a->changeset) {
        cli_usage_error(name, "--cloud and --changeset exclude each other");
        return -1;
    }
    if (a->in_process && a->plex_sqlite) {
        cli_usage_error(name, "--in-process and --plex-sqlite exclude each other");
        return -1;
    }
    if (a->max_pct < 0 || a->keep_backups < 0 || a->zstd_level < 1 || a->zstd_level > 19) {
        cli_usage_error(name, cmd->writes
                                  ? "--max-delete-pct and --keep-backups cannot be negative, "
                                    "--zstd-level is 1..19"
                                  : "--max-delete-pct cannot be negative, --zstd-level is 1..19");
        return -1;
    }
    return 0;
}

static void fill_options(pb_plex_merge_options *o, const plexdb_cmd *cmd, const plexdb_args *a)
{
    pb_plex_merge_options_init(o);
    o->base = a->base;
    o->cloud = a->cloud;
    o->live = a->live;
    o->changeset = a->changeset;
    o->blobs_base = a->bbase;
    o->blobs_cloud = a->bcloud;
    o->blobs_live = a->blive;
    o->blobs_changeset = a->bchangeset;
    o->path_map = a->path_map;
    o->max_delete_pct = a->max_pct;
    o->dry_run = cmd->writes ? a->dry_run : 1;
    o->engine = a->in_process    ? PB_PLEX_ENGINE_IN_PROCESS
                : a->plex_sqlite ? PB_PLEX_ENGINE_PATH
                                 : PB_PLEX_ENGINE_AUTO;
    o->plex_sqlite = a->plex_sqlite;
    o->compat_extension = a->compat;
    if (cmd->writes) {
        o->backup_dir = a->backup_dir;
        o->keep_backups = a->keep_backups;
    }
    o->work_dir = a->work_dir;
    o->keep_work = a->keep_work;
    o->zstd_level = a->zstd_level;
}

int plexdb_run(const plexdb_cmd *cmd, int argc, char **argv)
{
    plexdb_args a;
    cli_opt opts[NOPTS + 1];
    memset(&a, 0, sizeof(a));
    a.max_pct = 5.0;
    a.keep_backups = 3;
    a.zstd_level = 19;
    build_table(opts, cmd, &a);

    int rc = cli_parse(cmd->name, cmd->usage, opts, argc, argv, NULL, 0, NULL);
    if (rc > 0) {
        printf(REPORT_EXIT_CODES);
        return CLI_EXIT_OK;
    }
    if (rc < 0 || check_args(cmd, &a) < 0)
        return cli_usage_exit(cmd->name, a.json, argc, argv);
    if ((rc = cli_recover_live(a.live)) != 0)
        return rc;
    pb_plex_merge_options o;
    fill_options(&o, cmd, &a);
    return report_run(cmd->name, cmd->writes, &o, a.json, a.list);
}

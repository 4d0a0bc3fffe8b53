/*
 * cmd_demo.c: `plexburst demo [--workdir DIR] [--scale tiny|small] [--json]`: the main job on
 * the embedded default, for a newcomer (what `make demo` runs): builds a home library with the
 * fixture tool mkplex, bootstraps it through the local cloud (the agent as a child process, a
 * store directory), lets the home "stream" (mkplex stream) while the cloud "analyses" new media
 * (mkplex analyze), runs a nightly sync, and ends with the bundle's diff report and a transfer
 * summary comparing the bytes moved with shipping whole archives (the prior scripts' way). The
 * Plex analysis is simulated, and the demo says so.
 * mkplex is found beside this binary (dirname(/proc/self/exe)/mkplex), or PLEXBURST_MKPLEX, or
 * --mkplex. Role: a CLI command over pb_run() and pb_archive_estimate() (plexburst/run.h).
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "progress.h"

extern char **environ;

typedef unsigned long long ull;

typedef struct demo {
    runview v;
    char mkplex[PATH_MAX];
    char home[PATH_MAX + 16];
    const char *scale;
    pid_t stream_pid;
    int stream_status;
    double stream_ms;
    /* the demo's own state, step to step */
    int json;
    int exit; /* the exit code once a step stopped the demo */
    double t0, ms_init;
    char dir[PATH_MAX], logp[PATH_MAX + 32], cloud[PATH_MAX + 16], store[PATH_MAX + 16];
    char runner[PATH_MAX + 128];
    pb_error err;
    pb_run_result rb, rs; /* the bootstrap's and the sync's results */
    uint64_t arch_up, arch_down, raw_up, raw_down;
} demo;

/* Runs mkplex with `args` (NULL-terminated after argv[1]), its output as monitoring lines. */
static int run_mkplex(demo *d, char *const args[])
{
    char cmd[8192];
    size_t n = (size_t)snprintf(cmd, sizeof(cmd), "'%s'", d->mkplex);
    for (int i = 0; args[i]; i++)
        n += (size_t)snprintf(cmd + n, sizeof(cmd) - n, " '%s'", args[i]);
    snprintf(cmd + n, sizeof(cmd) - n, " 2>&1");
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    char line[1024];
    while (fgets(line, sizeof(line), p)) {
        line[strcspn(line, "\n")] = '\0';
        rv_monitor(&d->v, NULL, "  │ %s", line);
    }
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The home streams while the cloud analyses: mkplex stream starts with the ANALYSIS phase. */
static void demo_event(const pb_run_event *ev, void *payload)
{
    demo *d = payload;
    rv_on_event(ev, &d->v);
    if (ev->kind == PB_EV_PHASE && !strcmp(ev->name, "ANALYSIS") && !d->stream_pid) {
        char *argv[] = {d->mkplex, "stream", "--dir", d->home, "--seed", "5", NULL};
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", 0, 0);
        d->stream_ms = cli_now();
        if (posix_spawn(&d->stream_pid, d->mkplex, &fa, NULL, argv, environ) != 0)
            d->stream_pid = 0;
        posix_spawn_file_actions_destroy(&fa);
        rv_monitor(&d->v, "🔄",
                   "meanwhile at home: Plex streams (mkplex stream --seed 5: plays, "
                   "resume positions, a playlist, a collection, edited titles)");
    }
    if (ev->kind == PB_EV_PHASE_END && !strcmp(ev->name, "ANALYSIS") && d->stream_pid > 0) {
        int st = 0;
        waitpid(d->stream_pid, &st, 0);
        d->stream_pid = -1;
        d->stream_status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        rv_monitor(&d->v, d->stream_status == 0 ? "✅" : "❌",
                   "home streaming finished while the cloud worked (status %d)", d->stream_status);
    }
}

static int prepare_workdir(char *out, size_t cap, const char *given)
{
    if (!given) {
        const char *t = getenv("TMPDIR");
        snprintf(out, cap, "%s/plexburst-demo.XXXXXX", t && *t ? t : "/tmp");
        return mkdtemp(out) ? 0 : -1;
    }
    if (mkdir(given, 0700) != 0 && errno != EEXIST)
        return -1;
    if (!realpath(given, out))
        return -1;
    /* a previous demo's leftovers go; anything else is refused */
    char marker[PATH_MAX + 32], cmd[PATH_MAX * 4 + 64];
    snprintf(marker, sizeof(marker), "%s/.plexburst-demo", out);
    snprintf(cmd, sizeof(cmd), "[ -z \"$(ls -A '%s')\" ]", out);
    if (access(marker, F_OK) == 0) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s/home' '%s/home.plexburst' '%s/cloud' '%s/store'",
                 out, out, out, out);
        if (system(cmd) != 0)
            return -1;
    } else if (system(cmd) != 0) {
        errno = ENOTEMPTY;
        return -1;
    }
    return 0;
}

static int do_run(demo *d, pb_run_options *o, pb_run_result *r, pb_error *err)
{
    o->on_event = demo_event;
    o->event_payload = d;
    o->cancelled = rv_cancelled;
    o->cancel_payload = &d->v;
    return pb_run(r, o, err);
}

/* Stops the demo with the POST-MORTEM of `rc` (the run result r); returns -1. */
static int demo_fail(demo *d, int rc, const pb_run_result *r)
{
    d->exit = rv_finish(&d->v, rc, &d->err, r);
    return -1;
}

/* mkplex, the work dir, the log and the opening words; -1 (d->exit set) when it cannot start. */
static int demo_setup(demo *d, const char *workdir, const char *mkplex)
{
    if (pb_agent_find_mkplex(d->mkplex, sizeof(d->mkplex), mkplex) != 0) {
        fprintf(stderr,
                "plexburst demo: the fixture tool mkplex was not found at %s (build it, or "
                "give --mkplex / PLEXBURST_MKPLEX)\n",
                d->mkplex);
        d->exit = CLI_EXIT_ERROR;
        return -1;
    }
    if (prepare_workdir(d->dir, sizeof(d->dir), workdir) != 0) {
        fprintf(stderr, "plexburst demo: cannot use %s as the work dir: %s\n",
                workdir ? workdir : "$TMPDIR", strerror(errno));
        d->exit = CLI_EXIT_ERROR;
        return -1;
    }
    char marker[PATH_MAX + 32];
    snprintf(marker, sizeof(marker), "%s/.plexburst-demo", d->dir);
    FILE *mf = fopen(marker, "w");
    if (mf)
        fclose(mf);
    snprintf(d->home, sizeof(d->home), "%s/home", d->dir);
    snprintf(d->logp, sizeof(d->logp), "%s/demo.log", d->dir);
    rv_open_log(&d->v, d->logp);

    rv_state(&d->v, "⚠️",
             "The Plex analysis in this demo is SIMULATED: no Plex server runs. The "
             "fixture tool");
    rv_state(&d->v, NULL,
             "   mkplex writes the DB rows and metadata files that Plex's scanner "
             "and analysers would");
    rv_state(&d->v, NULL,
             "   write (scans, deep analysis, preview thumbnails, markers, loudness, "
             "sonic). Everything");
    rv_state(&d->v, NULL,
             "   else is the real thing: agent, protocol, store, deltas, journaled "
             "merge.");
    rv_state(&d->v, "🔍", "work dir: %s (scale %s)", d->dir, d->scale);
    return 0;
}

/* 1: the home library. */
static int demo_home(demo *d)
{
    rv_phase(&d->v, 1, "BUILD A HOME LIBRARY (mkplex init)");
    double ti = cli_now();
    char *init_args[] = {"init",           "--dir",  d->home, "--scale",
                         (char *)d->scale, "--seed", "1",     NULL};
    if (run_mkplex(d, init_args) != 0) {
        pb_error_set(&d->err, PB_ERROR, "mkplex init failed");
        return demo_fail(d, PB_ERROR, &d->rb);
    }
    d->ms_init = (cli_now() - ti) * 1000;
    rv_state(&d->v, "✅", "home Plex data dir ready in %.1f s: %s", d->ms_init / 1000, d->home);
    return 0;
}

/* 2: bootstrap. */
static int demo_bootstrap(demo *d)
{
    pb_run_options o;
    char b1[32];
    rv_phase(&d->v, 2, "BOOTSTRAP THROUGH THE LOCAL CLOUD");
    rv_state(&d->v, "🔍",
             "the cloud builds the same library from scratch (mkplex init in the "
             "agent's sandbox); the home receives the DB pair and only the files it "
             "lacks");
    pb_run_options_init(&o);
    o.mode = PB_RUN_BOOTSTRAP;
    o.plex_dir = d->home;
    snprintf(d->cloud, sizeof(d->cloud), "local:%s/cloud", d->dir);
    snprintf(d->store, sizeof(d->store), "%s/store", d->dir);
    o.cloud = d->cloud;
    o.store = d->store;
    snprintf(d->runner, sizeof(d->runner), "{mkplex} init --dir {plex_dir} --scale %s --seed 1",
             d->scale);
    o.runner = d->runner;
    setenv("PLEXBURST_MKPLEX", d->mkplex, 1);
    int rc = do_run(d, &o, &d->rb, &d->err);
    if (rc < 0)
        return demo_fail(d, rc, &d->rb);
    rv_state(&d->v, "✅",
             "bootstrap done in %.1f s: %s down (DB pair zstd + bundle), baseline "
             "%.16s recorded on both sides",
             d->rb.ms.total / 1000, cli_bytes(b1, sizeof(b1), d->rb.bytes.down), d->rb.baseline_id);
    return 0;
}

/* 3: the nightly sync, with the home streaming while the cloud analyses. */
static int demo_sync(demo *d)
{
    pb_run_options o;
    rv_phase(&d->v, 3, "NIGHTLY SYNC: HOME STREAMS WHILE THE CLOUD ANALYSES");
    rv_state(&d->v, "🔍",
             "home → cloud: a row changeset against the baseline; the cloud runs "
             "mkplex analyze (new media, analysis, regenerated metadata); cloud → "
             "home: a bundle, merged");
    /* the day before: plays and edits at home, which go up as a row changeset tonight */
    char *day_args[] = {"stream", "--dir", d->home, "--seed", "4", NULL};
    rv_monitor(&d->v, "🔄", "during the day the home Plex streams (mkplex stream --seed 4)");
    if (run_mkplex(d, day_args) != 0) {
        pb_error_set(&d->err, PB_ERROR, "mkplex stream failed");
        return demo_fail(d, PB_ERROR, &d->rb);
    }
    pb_run_options_init(&o);
    o.mode = PB_RUN_SYNC;
    o.plex_dir = d->home;
    o.cloud = d->cloud;
    o.store = d->store;
    o.runner = "{mkplex} analyze --dir {plex_dir} --seed 7";
    /* no Plex runs here: no-op stop/start commands let the apply measure the downtime a real
     * Plex would see (stopped around the merge and the file renames only) */
    o.plex_stop_cmd = "true";
    o.plex_start_cmd = "true";
    int rc = do_run(d, &o, &d->rs, &d->err);
    return rc < 0 ? demo_fail(d, rc, &d->rs) : 0;
}

/* 4: the report. */
static void demo_report(demo *d)
{
    rv_phase(&d->v, 4, "DIFF REPORT");
    rv_show_report(&d->v, &d->rs);
    const pb_apply_result *a = &d->rs.apply;
    rv_state(&d->v, "✅",
             "merged: %llu rows inserted, %llu updated, %llu deleted; %llu new files, %llu "
             "patched by delta",
             (ull)a->rows.inserted, (ull)a->rows.updated, (ull)a->rows.deleted, (ull)a->files_new,
             (ull)a->files_patched);
    rv_state(&d->v, "✅",
             "nothing written at home during the cloud run was lost: %llu cloud inserts "
             "renumbered around the home's, %llu columns kept the home's edit, %llu cloud "
             "user-state changes dropped",
             (ull)a->rows.remapped, (ull)a->rows.conflicts, (ull)a->rows.user_state_dropped);
}

/* Columns on screen of a UTF-8 string: one per character (the table's arrows are one column
 * wide but three bytes long, which printf's widths count as three). */
static int text_cols(const char *t)
{
    int n = 0;
    for (; *t; t++)
        n += ((unsigned char)*t & 0xC0) != 0x80;
    return n;
}

/* `t` padded with spaces to `w` columns, left- (`left` 1) or right-aligned, into out. */
static const char *text_pad(char *out, size_t cap, const char *t, int w, int left)
{
    int pad = w - text_cols(t);
    if (pad < 0)
        pad = 0;
    snprintf(out, cap, "%*s%s%*s", left ? 0 : pad, "", t, left ? pad : 0, "");
    return out;
}

/* One row of the transfer table: a label and two right-aligned figures. */
static void table_row(demo *d, const char *label, const char *ours, const char *theirs)
{
    char c1[64], c2[64], c3[96];
    rv_state(&d->v, NULL, "   %s %s %s", text_pad(c1, sizeof(c1), label, 16, 1),
             text_pad(c2, sizeof(c2), ours, 14, 0), text_pad(c3, sizeof(c3), theirs, 34, 0));
}

/* 5: the bytes, against whole archives. */
static int demo_transfer(demo *d)
{
    const pb_run_result *rs = &d->rs;
    char b1[32], b2[32], b3[32], b4[32];
    rv_phase(&d->v, 5, "TRANSFER SUMMARY");
    if (pb_archive_estimate(&d->arch_up, &d->raw_up, d->home, PB_ARCHIVE_DB, 3, &d->err) < 0 ||
        pb_archive_estimate(&d->arch_down, &d->raw_down, d->home, PB_ARCHIVE_LIBRARY, 3, &d->err) <
            0) {
        fprintf(stderr, "plexburst demo: %s\n", d->err.msg);
        d->exit = CLI_EXIT_ERROR;
        return -1;
    }
    uint64_t ours = rs->bytes.up + rs->bytes.down, theirs = d->arch_up + d->arch_down;
    rv_state(&d->v, "📊", "the nightly sync over the home link:");
    table_row(d, "", "plexburst", "whole archives (tar | zstd -3)");
    table_row(d, "home → cloud", cli_bytes(b1, sizeof(b1), rs->bytes.up),
              cli_bytes(b2, sizeof(b2), d->arch_up));
    table_row(d, "cloud → home", cli_bytes(b1, sizeof(b1), rs->bytes.down),
              cli_bytes(b2, sizeof(b2), d->arch_down));
    table_row(d, "total", cli_bytes(b3, sizeof(b3), ours), cli_bytes(b4, sizeof(b4), theirs));
    rv_state(&d->v, "📊",
             "%.0f× fewer bytes than whole archives; up: a %s row changeset (%llu "
             "rows) instead of the %s DB (%s as a zstd archive)",
             ours ? (double)theirs / (double)ours : 0.0,
             cli_bytes(b1, sizeof(b1), rs->bytes.changeset_up), (ull)rs->up.changeset_rows,
             cli_bytes(b2, sizeof(b2), d->raw_up), cli_bytes(b3, sizeof(b3), d->arch_up));
    rv_state(&d->v, "📊",
             "home Plex down %.2f s for the merge (the scripts stop it for the whole "
             "copy and replace the library, losing the plays made meanwhile)",
             rs->ms.downtime / 1000);
    rv_state(&d->v, "✅", "demo finished in %.1f s; everything is in %s", cli_now() - d->t0, d->dir);
    rv_state(&d->v, "📦", "logs: %s/home.plexburst/logs/, the demo's own: %s", d->dir, d->logp);
    rv_state(&d->v, "🔍", "try: plexburst status --plex-dir %s", d->home);
    return 0;
}

/* The --json object at the end. */
static void demo_json(const demo *d)
{
    const pb_run_result *rs = &d->rs;
    uint64_t ours = rs->bytes.up + rs->bytes.down, theirs = d->arch_up + d->arch_down;
    json_t *j = json_object();
    json_object_set_new(j, "command", json_string("demo"));
    json_object_set_new(j, "ok", json_true());
    json_object_set_new(j, "simulated", json_true());
    json_object_set_new(j, "scale", json_string(d->scale));
    json_object_set_new(j, "workdir", json_string(d->dir));
    json_object_set_new(j, "home", json_string(d->home));
    json_object_set_new(j, "bootstrap", rv_result_json(&d->rb, 0, NULL));
    json_object_set_new(j, "sync", rv_result_json(rs, 0, NULL));
    json_object_set_new(j, "home_stream_status", json_integer(d->stream_status));
    json_object_set_new(j, "transfer",
                        json_pack("{s:{s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:i, s:I, s:I}, s:f}",
                                  "plexburst", "up", (json_int_t)rs->bytes.up, "down",
                                  (json_int_t)rs->bytes.down, "total", (json_int_t)ours, "archives",
                                  "up", (json_int_t)d->arch_up, "down", (json_int_t)d->arch_down,
                                  "total", (json_int_t)theirs, "zstd_level", 3, "raw_up",
                                  (json_int_t)d->raw_up, "raw_down", (json_int_t)d->raw_down,
                                  "ratio", ours ? (double)theirs / (double)ours : 0.0));
    json_object_set_new(j, "timings_ms",
                        json_pack("{s:f, s:f, s:f, s:f}", "total", (cli_now() - d->t0) * 1000,
                                  "home_init", d->ms_init, "bootstrap", d->rb.ms.total, "sync",
                                  rs->ms.total));
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s)
        puts(s);
    free(s);
    json_decref(j);
}

int cmd_demo(int argc, char **argv)
{
    const char *workdir = NULL, *scale = "small", *mkplex = NULL;
    int json = 0, rc = 0;
    const cli_opt opts[] = {
        {"workdir", CLI_OPT_STRING, &workdir, "DIR",
         "where to build everything (default: a new $TMPDIR/plexburst-demo.XXXXXX)"},
        {"scale", CLI_OPT_STRING, &scale, "tiny|small", "library size (default small)"},
        {"mkplex", CLI_OPT_STRING, &mkplex, "PATH", "the fixture tool (default: beside plexburst)"},
        {"json", CLI_OPT_FLAG, &json, NULL, "print one JSON object at the end"},
        {NULL, 0, NULL, NULL, NULL},
    };
    rc = cli_parse("demo", "[--workdir DIR] [--scale tiny|small] [--json]", opts, argc, argv, NULL,
                   0, NULL);
    if (rc > 0)
        return CLI_EXIT_OK;
    if (rc < 0)
        return CLI_EXIT_USAGE;
    if (strcmp(scale, "tiny") != 0 && strcmp(scale, "small") != 0) {
        cli_usage_error("demo", "--scale is tiny or small");
        return CLI_EXIT_USAGE;
    }
    demo *d = calloc(1, sizeof(*d));
    if (!d) {
        fprintf(stderr, "plexburst demo: out of memory\n");
        return CLI_EXIT_ERROR;
    }
    rv_init(&d->v, "demo", json);
    d->v.quiet_phases = 1;
    d->v.no_summary = 1;
    d->scale = scale;
    d->json = json;
    d->t0 = cli_now();
    d->err = (pb_error)PB_ERROR_INIT;
    rv_install_signals();

    if (demo_setup(d, workdir, mkplex) == 0 && demo_home(d) == 0 && demo_bootstrap(d) == 0 &&
        demo_sync(d) == 0) {
        demo_report(d);
        if (demo_transfer(d) == 0) {
            if (json)
                demo_json(d);
            d->exit = CLI_EXIT_OK;
            rv_close_log(&d->v);
        }
    }
    rc = d->exit;
    if (d->stream_pid > 0)
        waitpid(d->stream_pid, NULL, 0);
    pb_run_result_dispose(&d->rb);
    pb_run_result_dispose(&d->rs);
    free(d);
    return rc;
}

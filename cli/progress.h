/*
 * progress.h: rendering of the runs (bootstrap, sync, demo) for the CLI: the event callback of
 * plexburst/run.h turned into numbered phases between separator lines, state lines with an
 * emoji at the start, [HH:MM:SS] monitoring lines, progress bars (bytes, rate, ETA, redrawn a
 * few times a second on a terminal; a line a minute otherwise; a finished bar's last word is its
 * average rate), a heartbeat with the phase's elapsed time (redrawn on a terminal, a stamped line
 * every minute otherwise), the diff report, the summary or the POST-MORTEM, the --json object,
 * --quiet (one line at the end), --json-stream (one JSON event per line, docs/cli.md), and after
 * the run the notification (PLEXBURST_NOTIFY_URL) and the --on-success/--on-failure hooks. Every
 * line also goes to the run's log file (<state dir>/logs/<run-id>.log). Ctrl-C handling (a clean
 * stop) lives here too.
 * Role: shared by cmd_sync.c, cmd_bootstrap.c and cmd_demo.c; prints only.
 */
#ifndef PB_CLI_PROGRESS_H
#define PB_CLI_PROGRESS_H

#include <stdio.h>
#include <jansson.h>
#include <plexburst/run.h>

#define RV_TAIL 8 /* runner lines kept for the post-mortem */

typedef struct runview {
    const char *command; /* "sync", "bootstrap", "demo" */
    int json;            /* --json: stdout carries only the final object */
    int tty;             /* stderr is a terminal: redrawn progress bars */
    int quiet_phases;    /* compact: the run's phases as monitoring lines (the demo) */
    int no_summary;      /* rv_finish prints only a POST-MORTEM (the demo sums up itself) */
    int phase_offset;    /* added to the run's phase numbers (the demo's own phases first) */
    int quiet;           /* --quiet: stdout gets only the final one-line result */
    int stream;          /* --json-stream: stdout carries one JSON event per line */
    int dry_run;         /* the run is a dry run (said up front) */
    double hb_interval;  /* s between heartbeat lines when not on a terminal (60) */
    /* after the run (rv_command only): notification and hooks */
    const char *notify_url; /* PLEXBURST_NOTIFY_URL, or NULL */
    const char *on_success, *on_failure;
    int pm_capture; /* the POST-MORTEM is being printed: its lines go to pm too */
    char pm[1024];  /* its first lines (the failure notification's body) */
    /* the phase in progress (heartbeat) */
    char ph_name[32];
    int ph_num;
    double ph_t0, hb_last, hb_draw;
    FILE *log;     /* the command's own log (the demo's), or NULL */
    FILE *run_log; /* the current run's log file, opened at START */
    char log_path[4200];
    /* progress bar state */
    int bar_on;      /* a redrawn bar is on screen */
    double bar_last; /* last draw (s) */
    double bar_t0;   /* start of the current transfer (s) */
    char bar_what[48];
    uint64_t bar_done, bar_total, bar_items;
    int bar_shown;     /* the current bar was drawn at least once */
    double bar_stream; /* last --json-stream progress event (s) */
    int report_shown;
    char tail[RV_TAIL][240];
    int ntail;
} runview;

void rv_init(runview *v, const char *command, int json);
/** pb_run_options.on_event. */
void rv_on_event(const pb_run_event *ev, void *payload);
/** Prints the summary (or the POST-MORTEM), or the --json object; closes the log.
 * @return the exit code. */
int rv_finish(runview *v, int rc, const pb_error *err, const pb_run_result *r);
/** Prints the bundle's diff report of `r` (again, if it was shown). */
void rv_show_report(runview *v, const pb_run_result *r);
/** The --json object of a run (the contract of README.md, "Runs"); caller decrefs. */
json_t *rv_result_json(const pb_run_result *r, int rc, const pb_error *err);

/* Output helpers: stdout (unless --json) and the log. */
void rv_phase(runview *v, int n, const char *title);
void rv_state(runview *v, const char *emoji, const char *fmt, ...) PB_PRINTF(3, 4);
void rv_monitor(runview *v, const char *emoji, const char *fmt, ...) PB_PRINTF(3, 4);
/** Opens the log file at `path` (directories must exist); 0 or -1. */
int rv_open_log(runview *v, const char *path);
void rv_close_log(runview *v);

/** SIGINT/SIGTERM set a flag (a second Ctrl-C exits at once with status 130). */
void rv_install_signals(void);
/** pb_run_options.cancelled, with the view (or NULL) as its payload: also draws the heartbeat. */
int rv_cancelled(void *payload);

/** Registers the run options shared by bootstrap and sync (the apply options passed through). */
#define RV_COMMON_OPTS(o)                                                                          \
    {"plex-dir", CLI_OPT_STRING, &(o).plex_dir, "DIR", "the home Plex data dir"},                  \
        {"cloud", CLI_OPT_STRING, &(o).cloud, "CLOUD",                                             \
         "where the agent runs: local[:DIR] (default, DIR <state dir>/cloud), "                    \
         "ssh://[user@]host[:port][/DIR] or scaleway[:ZONE]"},                                     \
        {"instance-type", CLI_OPT_STRING, &(o).instance_type, "TYPE",                              \
         "scaleway: the instance's commercial type, e.g. GP1-S (PLEXBURST_SCW_TYPE)"},             \
        {"profile", CLI_OPT_STRING, &(o).profile, "NAME",                                          \
         "scaleway: lite, standard (default), power or superpower (PLEXBURST_SCW_PROFILE)"},       \
        {"store", CLI_OPT_STRING, &(o).store, "STORE",                                             \
         "a directory or s3://BUCKET/PREFIX (default: <cloud dir>/store)"},                        \
        {"runner", CLI_OPT_STRING, &(o).runner, "'CMD'",                                           \
         "analysis runner: a command line ({plex_dir}, {mkplex} substituted)"},                    \
        {"state-dir", CLI_OPT_STRING, &(o).state_dir, "DIR", "default: <plex dir>.plexburst"},     \
        {"config", CLI_OPT_STRING, &(o).config_file, "FILE",                                       \
         ".env-style configuration (PLEXBURST_* keys)"},                                           \
        {"plex-stop-cmd", CLI_OPT_STRING, &(o).plex_stop_cmd, "CMD", "stops the home Plex"},       \
        {"plex-start-cmd", CLI_OPT_STRING, &(o).plex_start_cmd, "CMD", "starts it again"},         \
        {"online", CLI_OPT_FLAG, &(o).online, NULL, "merge while Plex runs (no stop/start)"},      \
        {"max-delete-pct", CLI_OPT_DOUBLE, &(o).max_delete_pct, "P",                               \
         "deletion guard: refuse losing more than P % of a section (default 5)"},                  \
        {"path-map", CLI_OPT_STRING, &(o).path_map, "FILE",                                        \
         "path_mappings.json: {\"mappings\": {\"/cloud\": \"/home\"}}"},                           \
        {"plex-libraries", CLI_OPT_STRING, &(o).plex_libraries, "FILE",                            \
         "plex_libraries.json (sections for the plex runner)"},                                    \
        {"zstd-level", CLI_OPT_INT, &(o).zstd_level, "N", "compression level (default 19)"},       \
        {"keep-work", CLI_OPT_FLAG, &(o).keep_work, NULL, "keep the run's work files"},            \
    {                                                                                              \
        "agent", CLI_OPT_STRING, &(o).agent_program, "PATH", "the plexburst binary for the agent"  \
    }

/* Shared with run_notify.c. */
/** A --json-stream event {"type", "time", ...the fields of `o` (stolen)} on stdout. */
void rv_stream_event(runview *v, const char *type, json_t *o);
/** A line for the logs only. */
void rv_log_line(runview *v, const char *line);
/** Clears a redrawn bar before something else is printed. */
void rv_bar_clear(runview *v);
/** The run ended because it was asked to stop (Ctrl-C, SIGTERM, SIGHUP), whatever `code`. */
int rv_stopped(int code);
/** PLEXBURST_NOTIFY_URL (v->notify_url): the run's start (`rc` 1; r NULL), its success (0) or
 * its failure (< 0, with the POST-MORTEM captured in v->pm); a failure is one warning. */
void rv_notify(runview *v, int rc, const pb_error *err, const pb_run_result *r);
/** v->on_success / v->on_failure with the run's JSON on stdin; a failure is one warning. */
void rv_hook(runview *v, int rc, const pb_error *err, const pb_run_result *r);

/** Runs `o` with the view and returns the exit code (signals, log, finish). */
int rv_run(runview *v, pb_run_options *o, pb_run_result *r);

/** `plexburst bootstrap` and `plexburst sync`: parses argv (the options of RV_COMMON_OPTS, for
 * PB_RUN_SYNC --dry-run and --full-upload, and --json; the --help text followed by `epilog` when
 * not NULL), runs pb_run() in `mode` with a view named `command` and returns the exit code. */
int rv_command(int mode, const char *command, const char *usage, const char *epilog, int argc,
               char **argv);

#endif

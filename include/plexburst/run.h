/*
 * plexburst/run.h: the runs a user starts: `bootstrap` (the cloud builds the
 * library, the whole result comes home), `sync` (the nightly delta run: home -> cloud as a row
 * changeset against the baseline, cloud -> home as a bundle merged by the journaled apply), the
 * agent (`plexburst agent`, the cloud side of both, driven over the framed protocol of
 * docs/protocol.md), and `status` (the last runs and any interrupted one).
 *
 * Places: the home Plex data dir D and its state dir (default `<D>.plexburst`, holding the
 * baseline copy, run records, work files and `logs/`); the cloud, where the agent works in a
 * directory DIR (DIR/plex is the cloud's Plex data dir, DIR/agent its own state): `local[:DIR]`
 * (the agent as a child process, DIR default `<state dir>/cloud`), `ssh://[user@]host[:port][/DIR]`
 * (the agent over SSH, docs/ssh.md), `scaleway[:ZONE]` (not built yet); the store (a directory,
 * file:// or s3:// URL, default `DIR/store` of a local cloud; layout in docs/store.md). The library
 * never prints: everything a user sees comes through the event callback, which the CLI renders
 * (numbered phases, monitoring lines, progress bars) and writes to the run's log file.
 *
 * Configuration: every option left NULL/zero is taken from the environment (PLEXBURST_*), then
 * from the `.env`-style file `config_file` (or `PLEXBURST_CONFIG`), then from the defaults
 * (docs in README "Runs").
 */
#ifndef PLEXBURST_RUN_H
#define PLEXBURST_RUN_H

#include <stdint.h>
#include "plexburst/apply.h"
#include "plexburst/export.h"
#include "plexburst/errors.h"
#include "plexburst/fingerprint.h"

/** The kinds of run. */
typedef enum pb_run_mode {
    PB_RUN_SYNC = 1,
    PB_RUN_BOOTSTRAP = 2,
} pb_run_mode;

/** Event kinds handed to pb_run_options.on_event. */
typedef enum pb_run_event_kind {
    PB_EV_START = 1,     /* the run has an id and a log path (nothing printed before this) */
    PB_EV_PHASE = 2,     /* a numbered phase starts (phase, name) */
    PB_EV_PHASE_END = 3, /* it ended (ok, ms) */
    PB_EV_LOG = 4,       /* a line: level "info", "warn", "error", "detail", "agent", "runner" */
    PB_EV_PROGRESS = 5,  /* progress of hashing or a transfer (progress) */
    PB_EV_REPORT = 6,    /* the diff report of the bundle is ready (apply.report) */
} pb_run_event_kind;

typedef struct pb_run_event {
    int kind;                    /* pb_run_event_kind */
    int phase;                   /* 1-based number of the current phase */
    const char *name;            /* PHASE / PHASE_END: "SNAPSHOT", ... */
    int ok;                      /* PHASE_END */
    double ms;                   /* PHASE_END: the phase's wall time */
    const char *level;           /* LOG */
    const char *text;            /* LOG: one line, no newline; secrets never appear */
    const pb_progress *progress; /* PROGRESS: phase "scan", "hash", "upload", "download", ... */
    const char *run_id;          /* START */
    const char *log_path;        /* START: where the CLI writes the run's log */
    const char *state_dir;       /* START */
    const struct pb_run_result *result; /* REPORT (and every event: the result so far) */
} pb_run_event;

typedef void (*pb_run_event_fn)(const pb_run_event *ev, void *payload);

typedef struct pb_run_options {
    unsigned version;        /* PB_RUN_OPTIONS_VERSION */
    int mode;                /* pb_run_mode */
    const char *plex_dir;    /* the home Plex data dir D (required) */
    const char *state_dir;   /* NULL: <D>.plexburst */
    const char *cloud;       /* "local", "local:DIR", "ssh://[user@]host[:port][/DIR]" or
                                "scaleway[:ZONE]" (NULL: PLEXBURST_CLOUD, else "local") */
    const char *store;       /* a directory, file:// or s3:// URL (NULL: PLEXBURST_STORE, else
                                the local cloud's DIR/store; an ssh cloud needs one both sides
                                reach) */
    const char *runner;      /* command runner line, `{plex_dir}` and `{mkplex}` substituted
                                (NULL: PLEXBURST_RUNNER; required) */
    const char *config_file; /* .env-style file (NULL: PLEXBURST_CONFIG, else none) */
    int dry_run;             /* sync: stop after the diff report (nothing applied) */
    int online;              /* merge while Plex runs (no stop/start) */
    const char *plex_stop_cmd, *plex_start_cmd;
    double max_delete_pct;      /* deletion guard (0: PLEXBURST_MAX_DELETE_PCT, else 5) */
    const char *path_map;       /* path_mappings.json (cloud -> home) */
    const char *plex_libraries; /* plex_libraries.json (bootstrap: sections to create) */
    const char *agent_program;  /* the plexburst binary to run as agent (NULL: this one) */
    int zstd_level;             /* uploads and bundles (0: 19) */
    int full_upload;            /* sync: upload the whole snapshot even when a baseline exists */
    int keep_work;              /* keep the run's work files */
    int refused_action;         /* sync: a run a guard refused is kept until this says what to do:
                                   PB_RUN_REFUSED_RETRY applies its bundle again (under this run's
                                   guards), PB_RUN_REFUSED_DISCARD drops it; 0 stops (PB_EREFUSED) */
    /** Optional: events (see above). Called on the calling thread. */
    pb_run_event_fn on_event;
    void *event_payload;
    /** Optional: polled a few times a second; non-zero stops the run cleanly (PB_ECANCELLED):
     * the agent is stopped, nothing is applied (an apply in progress finishes or rolls back). */
    int (*cancelled)(void *payload);
    void *cancel_payload;
    /** bootstrap: rebuild a home that already syncs (refused otherwise, PB_EINVALID); the home's
     * user state and edits are carried into the new library either way. */
    int force;
    /** scaleway: the instance's commercial type (NULL: PLEXBURST_SCW_TYPE, else the profile's)
     * and the profile lite|standard|power|superpower (NULL: PLEXBURST_SCW_PROFILE, else
     * standard); another cloud refuses them (PB_EINVALID). */
    const char *instance_type, *profile;
} pb_run_options;

/** pb_run_options.refused_action. */
enum { PB_RUN_REFUSED_KEEP = 0, PB_RUN_REFUSED_RETRY = 1, PB_RUN_REFUSED_DISCARD = 2 };

#define PB_RUN_OPTIONS_VERSION 1
#define PB_RUN_OPTIONS_INIT                                                                        \
    {                                                                                              \
        .version = PB_RUN_OPTIONS_VERSION                                                          \
    }

/** Zeroes the options and sets the version (as PB_RUN_OPTIONS_INIT). */
PB_EXTERN(void) pb_run_options_init(pb_run_options *opts);

#define PB_RUN_MAX_PHASES 16

typedef struct pb_run_phase {
    char name[32];
    int ok;
    double ms;
    double cpu_ms; /* the home process's CPU time in the phase (user + system, all threads) */
} pb_run_phase;

typedef struct pb_run_result {
    int ok;
    int mode;           /* pb_run_mode */
    char mode_name[16]; /* "sync", "bootstrap", "resume" (an interrupted run completed) */
    int dry_run;
    char run_id[40];
    char resumed_run[40];   /* the interrupted run that was completed or rolled back, "" if none */
    char resume_action[16]; /* "", "resumed", "rolled_back" */
    char *state_dir;        /* these five are owned (never NULL after pb_run; "" when unknown) */
    char *log_path;
    char *cloud_dir; /* the agent's DIR (remote for an ssh cloud) */
    char *store;     /* the store URL both sides used */
    int error_code;
    char *error;
    int failed_phase; /* 0 when ok */
    char failed_phase_name[32];
    char upload_kind[16]; /* "changeset", "full", "none" */
    char full_upload_reason[160];
    struct {
        uint64_t up, down;             /* everything over the home link */
        uint64_t baseline_full_upload; /* the full snapshot upload (0 on a delta run) */
        uint64_t changeset_up;         /* the zstd row changeset uploaded */
        uint64_t answer_up;            /* the ANSWER (signatures) sent */
        uint64_t list_down;            /* the cloud's LIST received */
        uint64_t bundle_down;          /* the bundle (and bootstrap DB pair) downloaded */
        uint64_t control;              /* other protocol frames, both ways */
        uint64_t changeset_raw;        /* the uploaded changeset before zstd */
        uint64_t snapshot_raw;         /* the snapshot DB pair's size */
    } bytes;
    struct {
        uint64_t changeset_rows; /* records of the uploaded changeset */
    } up;
    struct {
        double total, downtime;
    } ms;
    size_t nphases;
    pb_run_phase phases[PB_RUN_MAX_PHASES];
    int runner_status;        /* the runner's exit status (-1 when it did not run) */
    char snapshot_id[33];     /* the home snapshot the cloud started from */
    char baseline_id[33];     /* the baseline recorded at the end (both sides) */
    pb_export_stats exported; /* the agent's bundle build, as it reported it */
    int have_apply;
    pb_apply_result apply; /* the apply (rows, files, report, downtime); owned */
    struct {
        uint64_t accounts, settings, views; /* bootstrap: home user state carried over */
    } carried;
    struct {
        char provider[32];                      /* "local", "ssh", ... */
        char zone[32], type[32], server_id[64]; /* "" for local and ssh */
        double hourly_price, seconds, cost;     /* 0 for local and ssh */
    } cloud;
    struct {
        double cpu_user_ms, cpu_sys_ms; /* this (home) process, the agent not included */
        uint64_t max_rss_kb;            /* its peak resident set */
    } home;
    /* owned, NULL when none: the runner's per-phase counts, one JSON object (the plex runner:
     * {"kind", "phases": [...]}, docs/cli.md "runner") */
    char *runner_json;
} pb_run_result;

/**
 * Runs a sync or a bootstrap (opts->mode) to the end. `out` is zeroed first and filled in every
 * case (phases, bytes, the failing phase and its message); release it with
 * pb_run_result_dispose(). Before anything else an interrupted apply is recovered and an
 * interrupted run is completed (its bundle applied) or rolled back.
 * @return 0; PB_ECANCELLED; PB_EREFUSED / PB_ESCHEMA (a guard); PB_EINVALID (options); or the
 *         failing phase's code (PB_ENET, PB_ERROR for a failed runner, ...); home is unchanged
 *         unless the apply committed.
 */
PB_EXTERN(int) pb_run(pb_run_result *out, const pb_run_options *opts, pb_error *err);

/** Releases what the result owns; accepts NULL. */
PB_EXTERN(void) pb_run_result_dispose(pb_run_result *r);

/* ---------------------------------------------------------------------------------------------
 * The agent
 */

typedef struct pb_agent_options {
    unsigned version;    /* PB_AGENT_OPTIONS_VERSION */
    const char *workdir; /* the cloud directory DIR (plex/ and agent/ inside); required */
    const char *store;   /* default store when PREPARE names none (optional) */
    int in_fd, out_fd;   /* the protocol stream (stdin and stdout) */
    const char *mkplex;  /* `{mkplex}` of runner lines (NULL: beside the binary, or
                            PLEXBURST_MKPLEX) */
} pb_agent_options;

#define PB_AGENT_OPTIONS_VERSION 1
#define PB_AGENT_OPTIONS_INIT                                                                      \
    {                                                                                              \
        PB_AGENT_OPTIONS_VERSION, NULL, NULL, 0, 1, NULL                                           \
    }

/** Sets the defaults (PB_AGENT_OPTIONS_INIT: stdin and stdout). */
PB_EXTERN(void) pb_agent_options_init(pb_agent_options *opts);

/**
 * Finds the fixture tool mkplex: `given` (may be NULL), else $PLEXBURST_MKPLEX, else beside the
 * running binary; made absolute when it can be (a runner works in another directory).
 * @return 0 when `out` names an executable file; -1 otherwise.
 */
PB_EXTERN(int) pb_agent_find_mkplex(char *out, size_t cap, const char *given);

/**
 * Serves one conversation of the framed protocol on in_fd/out_fd until BYE or the end of the
 * stream (the home went away: the runner is stopped). Writes nothing else to out_fd; diagnostics
 * go into the conversation as LOG frames (and to stderr only before the HELLO).
 * @return 0 after BYE; PB_ENET when the stream ended early; the failing step's code.
 */
PB_EXTERN(int) pb_agent_serve(const pb_agent_options *opts, pb_error *err);

/* ---------------------------------------------------------------------------------------------
 * Comparison with whole archives
 */

/** What pb_archive_estimate() packs. */
typedef enum pb_archive_kind {
    PB_ARCHIVE_DB = 1,      /* the library DB pair (what the prior scripts shipped up) */
    PB_ARCHIVE_LIBRARY = 2, /* the DB pair + Metadata/ + Media/ (what they shipped down) */
} pb_archive_kind;

/**
 * The size of a whole archive of `plex_dir` as the prior scripts shipped it: a tar-like stream
 * (512-byte headers, hard links stored once) compressed with zstd at `level` (0: 3, zstd's and
 * tar's default), counted, never written. *raw (optional) gets the uncompressed stream size.
 */
PB_EXTERN(int)
pb_archive_estimate(uint64_t *zbytes, uint64_t *raw, const char *plex_dir, int what, int level,
                    pb_error *err);

/* ---------------------------------------------------------------------------------------------
 * Status
 */

#define PB_STATUS_MAX_RUNS   30 /* records kept (older ones are pruned with their logs) */
#define PB_RECORD_MAX_TITLES 50 /* new titles a record keeps */
#define PB_RECORD_MAX_TABLES 48 /* tables a record keeps (the busiest first) */
#define PB_RECORD_MAX_PHASES 16

/** Rows of one table a run brought (changeset records: what the cloud changed). */
typedef struct pb_run_record_table {
    char name[112]; /* "metadata_items", "blobs.blobs" for the blobs DB */
    uint64_t inserted, updated, deleted;
} pb_run_record_table;

/** A title the run added, with its library section. */
typedef struct pb_run_record_title {
    char type[16]; /* "movie", "episode", "track", ... */
    char title[192];
    char section[128]; /* "" when unknown */
} pb_run_record_title;

/**
 * One run as its record keeps it (<state dir>/runs/<run-id>.json). Records written before the
 * summary was kept read with have_summary 0 and the summary's fields zero.
 */
typedef struct pb_run_record {
    char run_id[40];
    char mode[16];
    char state[24]; /* "running", "ok", "failed", "cancelled", "interrupted", ... */
    char phase[32]; /* the last phase reached */
    char error[256];
    int64_t started;  /* epoch seconds */
    int64_t finished; /* epoch seconds of the last write (0 in older records) */
    double ms_total, ms_downtime;
    uint64_t bytes_up, bytes_down;
    char log_path[4200];
    int dry_run;
    /* the summary of the report */
    int have_summary;
    char resumed_run[40], resume_action[16]; /* an interrupted run it completed or rolled back */
    char upload_kind[16];                    /* "changeset", "full", "none" */
    uint64_t snapshot_raw;                   /* the home DB pair's size */
    size_t nphases;
    pb_run_phase phases[PB_RECORD_MAX_PHASES];
    uint64_t rows_inserted, rows_updated, rows_deleted; /* changeset records, all tables */
    uint64_t rows_written;                              /* rows the merge wrote (0: dry run) */
    uint64_t conflicts;
    size_t ntables; /* kept in tables[]; ntables_total: all the tables touched */
    size_t ntables_total;
    pb_run_record_table tables[PB_RECORD_MAX_TABLES];
    uint64_t new_items; /* metadata_items inserted */
    size_t ntitles;     /* kept in titles[] (new_items may be more) */
    pb_run_record_title titles[PB_RECORD_MAX_TITLES];
    pb_plex_analysis analysis;
    uint64_t files_new, files_patched, files_linked, bytes_written;
    struct {
        char provider[32], zone[32], type[32], server_id[64];
        double hourly_price, seconds, cost; /* EUR; 0 for local and ssh */
    } cloud;
} pb_run_record;

typedef struct pb_run_status {
    char state_dir[4096];
    int have_baseline;
    char baseline_id[33];
    size_t nruns;
    pb_run_record runs[PB_STATUS_MAX_RUNS]; /* newest first */
    int interrupted_run; /* a run stopped before its end waits to resume or roll back */
    char interrupted_id[40];
    char interrupted_phase[32];
    int pending_apply; /* an apply journal holds an unfinished run */
    char pending_apply_state[32];
    char pending_apply_run[40];
} pb_run_status;

/**
 * Reads the state of the home data dir `plex_dir` (state dir NULL: the default): the baseline,
 * the last runs (newest first), an interrupted run and a pending apply. Reads only.
 * @return 0; PB_ENOTFOUND when the data dir does not exist.
 */
PB_EXTERN(int)
pb_run_status_read(pb_run_status *out, const char *plex_dir, const char *state_dir, pb_error *err);

/**
 * Reads the record of one run `run_id` of the home data dir `plex_dir` (state dir NULL: the
 * default) into `out` (zeroed first; a run still marked running whose process is gone reads as
 * "interrupted"). Reads only.
 * @return 0; PB_ENOTFOUND (no such data dir or run); PB_EINVALID (not a run id); PB_ECORRUPT.
 */
PB_EXTERN(int)
pb_run_record_read(pb_run_record *out, const char *plex_dir, const char *state_dir,
                   const char *run_id, pb_error *err);

#endif

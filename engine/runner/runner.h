/*
 * runner.h (internal): the runner seam: what makes the cloud's Plex (or the fixture tool standing
 * in for it) do the analysis on the cloud's Plex data dir. A runner is detached from the process
 * that starts it: it survives a dropped link, and a later agent of the same run finds it again
 * (working, or finished with its recorded exit status) and follows it.
 * Kinds (a table in runner.c, versioned pb_runner_ops like the store's):
 *   `command` (runner_command.c): a command line run by /bin/sh with `{plex_dir}` and `{mkplex}`
 *   substituted (shell-quoted), in its own session, its output kept in a log file and relayed
 *   line by line; `plex` (runner_plex*.c, docs/plex-runner.md): the cloud's real Plex Media Server
 *   started, driven over its HTTP API and waited for until it is really done, then stopped; a
 *   command line that is exactly "plex" selects it.
 * Role: engine/runner, used by the agent's RUN step (engine/run/agent.c). Prerequisites: POSIX.
 */
#ifndef PB_RUNNER_H
#define PB_RUNNER_H

#include <stddef.h>
#include <sys/types.h>
#include <jansson.h>
#include "plexburst/errors.h"

typedef struct pb_runner pb_runner;

/** What pb_runner_state() finds. */
typedef enum pb_runner_state_kind {
    PB_RUNNER_NONE = 0,    /* never started for this run (or forgotten) */
    PB_RUNNER_WORKING = 1, /* started, still working */
    PB_RUNNER_DONE = 2,    /* finished: its exit status is recorded */
} pb_runner_state_kind;

typedef struct pb_runner_options {
    unsigned version;      /* PB_RUNNER_OPTIONS_VERSION */
    const char *kind;      /* "command" or "plex" (NULL: command) */
    const char *plex_dir;  /* the Plex data dir it works on (required) */
    const char *state_dir; /* where it keeps its files (required) */
    const char *run_id;    /* the run it works for (required) */
    const char *mkplex;    /* `{mkplex}` of command lines (NULL: none) */
} pb_runner_options;

#define PB_RUNNER_OPTIONS_VERSION 1
#define PB_RUNNER_OPTIONS_INIT                                                                     \
    {                                                                                              \
        PB_RUNNER_OPTIONS_VERSION, NULL, NULL, NULL, NULL, NULL                                    \
    }
void pb_runner_options_init(pb_runner_options *o);

/** How the follower hears from the runner and from whoever it works for. */
typedef struct pb_runner_io {
    /** Per output line (stdout and stderr merged), without the newline. A non-zero return: the
     * reader is gone (pb_runner_follow returns PB_ENET, the runner goes on). */
    int (*line)(const char *text, void *payload);
    /** Optional (-1: none): an fd watched while the runner works; when readable, `on_watch` says
     * 0 (go on), PB_ECANCELLED (stop the runner) or PB_ENET (gone: leave it working). */
    int watch_fd;
    int (*on_watch)(void *payload);
    void *payload;
} pb_runner_io;

#define PB_RUNNER_OPS_VERSION 1

/** One kind of runner. */
typedef struct pb_runner_ops {
    unsigned version; /* PB_RUNNER_OPS_VERSION */
    const char *name;
    /** PB_RUNNER_NONE, _WORKING or _DONE (then *status: the exit status). */
    int (*state)(pb_runner *r, int *status);
    /** Starts it detached for `spec` (command: the command line); `shown` gets a description
     * fit for logs (secrets masked). PB_EBUSY when it works already. */
    int (*start)(pb_runner *r, const char *spec, char *shown, size_t cap, pb_error *err);
    /** Relays its output from the start until it finishes (*status), see pb_runner_io. */
    int (*follow)(pb_runner *r, const pb_runner_io *io, int *status, pb_error *err);
    /** Asks it to stop (it then finishes with a status). */
    void (*stop)(pb_runner *r);
    /** Optional: stops the runners of every run still working in `state_dir` and removes their
     * files (before a fresh run). */
    void (*forget)(const char *state_dir, void (*stopping)(const char *run_id, void *payload),
                   void *payload);
    /** Optional: releases `impl`. */
    void (*release)(pb_runner *r);
} pb_runner_ops;

/** An open runner of one run (the struct is the kinds' business). */
struct pb_runner {
    const pb_runner_ops *ops;
    char *plex_dir, *state_dir, *run_id, *mkplex;
    pid_t child; /* command: the monitor this process started (reaped by follow), else 0 */
    void *impl;
};

/** A runner's work, run in the detached monitor with its output fd; returns the exit status. */
typedef int (*pb_runner_work_fn)(pb_runner *r, int logfd, void *arg);
/** For the kinds (runner_command.c): takes the run's runner lock, opens its log and starts a
 * detached monitor (its own session, so that a stop reaches the whole group) that runs `work`
 * and records its status in the runner's files, which state, follow and stop read. */
int pb_runner__spawn(pb_runner *r, pb_runner_work_fn work, void *arg, pb_error *err);

extern const pb_runner_ops pb_runner_command_ops;
extern const pb_runner_ops pb_runner_plex_ops;

/** Opens the runner of a run (nothing starts). PB_EINVALID for an unknown or unbuilt kind. */
int pb_runner_open(pb_runner **out, const pb_runner_options *o, pb_error *err);
int pb_runner_state(pb_runner *r, int *status);
int pb_runner_start(pb_runner *r, const char *spec, char *shown, size_t cap, pb_error *err);
/**
 * Follows it until it finishes.
 * @return 0 and *status; PB_ECANCELLED (on_watch asked: the runner was told to stop); PB_ENET
 *         (the reader went away: the runner goes on); PB_ERROR when it ended without a status.
 */
int pb_runner_follow(pb_runner *r, const pb_runner_io *io, int *status, pb_error *err);
void pb_runner_stop(pb_runner *r);
/** Every kind's forget (see pb_runner_ops). */
void pb_runner_forget(const char *state_dir, void (*stopping)(const char *run_id, void *payload),
                      void *payload);
/** Accepts NULL. A working runner goes on. */
void pb_runner_free(pb_runner *r);

/**
 * Substitutes `{plex_dir}` and `{mkplex}` in `cmdline` with shell-quoted values (a `{` not
 * starting one of these is kept). *out is malloc'd.
 */
int pb_runner_expand(char **out, const char *cmdline, const char *plex_dir, const char *mkplex,
                     pb_error *err);

/**
 * A copy of a command line fit for logs and output, the one redaction every place that shows a
 * runner or Plex command uses. The line is split as /bin/sh would (quotes, backslashes, `;` `&&`
 * `|` starting a new command; nothing is executed) and written back word by word, quoted where
 * needed: each command's argv[0] as it is, then its arguments, where `<secret>` replaces
 *   - a word that follows a secret-looking option (-p, and any option whose name names a secret or
 *     ends in "key": --apikey V, --token V, --password V);
 *   - the value of `KEY=value` / `--opt=value` whose key names one (the key is kept);
 *   - the value of a header `Name: value` that names one (-H 'X-Plex-Token: T', Authorization);
 *   - in a URL, the password of the userinfo (`scheme://user:<secret>@host`; `user@` keeps the
 *     user) and the values of query parameters that name one; the whole URL when its host or
 *     path does;
 *   - any other argument that names one.
 * Names a secret: contains token, secret, pass (password, passwd, passphrase), pwd, apikey,
 * api-key, api_key, key=, auth, credential, bearer, access_key, cookie or private,
 * case-insensitive. Writes at most cap bytes (NUL included), truncating.
 */
void pb_runner_redact(char *out, size_t cap, const char *cmdline);

/**
 * The settings of the `plex` runner (docs/plex-runner.md), NULL-terminated: the names the home
 * resolves (environment, then its config file) and sends in RUN's `settings`, and the only ones
 * the agent takes from there (docs/protocol.md). PLEXBURST_PLEX_LIBRARIES is not among them: the
 * file's content travels in RUN's `libraries`.
 */
extern const char *const pb_runner_plex_settings[];

/**
 * The home Plex server's version: `/identity` of `url` (NULL: http://127.0.0.1:32400), within a
 * few seconds. 0 and out filled; PB_ENET when it does not answer with a version.
 */
int pb_runner_plex_version_of(char *out, size_t cap, const char *url, pb_error *err);

/**
 * Reads a plex_libraries.json of either shape (the project's {"libraries":[{"name","type",
 * "locations"}]} or the seed scripts' bare list of {"title","type","agent","scanner","language",
 * "paths"}), every location kept, normalised to a list of {"title","type","paths"[,"agent",
 * "scanner","language"]} (*out, a new jansson reference: json_decref). PB_EINVALID naming the
 * entry.
 */
int pb_runner_plex_libraries_load(json_t **out, const char *path, pb_error *err);

/**
 * A runner's output line that starts with this prefix is a progress record, not a log line: the
 * rest is one JSON object that the agent sends home in a PROGRESS frame (docs/protocol.md).
 */
#define PB_RUNNER_PROGRESS_PREFIX "@progress "

/**
 * A copy of a log line fit for the home's logs: the text kept as it is, except the value of every
 * `KEY=value` or `KEY: value` whose key names a secret (as pb_runner_redact judges them: a query
 * parameter X-Plex-Token=T, a header Authorization: Bearer T, secret_key=...), replaced with
 * `<secret>`. Writes at most cap bytes (NUL included), truncating.
 */
void pb_runner_redact_text(char *out, size_t cap, const char *text);

/** The mkplex beside this executable (dirname(/proc/self/exe)/mkplex) or PLEXBURST_MKPLEX. */
int pb_runner_default_mkplex(char *out, size_t cap);

#endif

/*
 * runner.h (internal): analysis runners on the agent side: what makes the cloud's Plex (or the
 * fixture tool standing in for it) do the work on the cloud's Plex data dir.
 * `command` (now): a command line run by /bin/sh with `{plex_dir}` and `{mkplex}` substituted
 * (shell-quoted), in its own process group, its output relayed line by line; `plex` (the HTTP
 * API runner) comes with the cloud issue.
 * Role: engine/agent.c runs it between PREPARE and LIST. Prerequisites: POSIX.
 */
#ifndef PB_RUNNER_H
#define PB_RUNNER_H

#include "plexburst/errors.h"

typedef struct pb_runner_io {
    /** Called per output line (stdout and stderr merged), without the newline. */
    void (*line)(const char *text, void *payload);
    /** Optional: an fd to watch while the runner works (the agent's protocol stream); when it is
     * readable `on_watch` is called, and a non-zero return stops the runner (PB_ECANCELLED). */
    int watch_fd;
    int (*on_watch)(void *payload);
    void *payload;
} pb_runner_io;

/**
 * Substitutes `{plex_dir}` and `{mkplex}` in `cmdline` with shell-quoted values (a `{` not
 * starting one of these is kept). *out is malloc'd.
 */
int pb_runner_expand(char **out, const char *cmdline, const char *plex_dir, const char *mkplex,
                     pb_error *err);

/**
 * Runs the expanded command line with /bin/sh -c in `plex_dir` (environment: PLEX_DIR and
 * PLEXBURST_PLEX_DIR set to it). *status gets its exit code (128+N when killed by signal N).
 * @return 0 when it ran to its end (whatever its status); PB_ECANCELLED when stopped through
 *         on_watch (the process group was terminated); PB_EIO when it could not start.
 */
int pb_runner_command(int *status, const char *expanded, const char *plex_dir,
                      const pb_runner_io *io, pb_error *err);

/**
 * A copy of a command line fit for logs: values of `KEY=value` words whose key names a secret
 * (TOKEN, SECRET, PASSWORD, PASSPHRASE, ACCESS_KEY, case-insensitive; URL query parameters
 * included) and the word after --token / --password / --secret / --passphrase are replaced by
 * `<secret>`. Writes at most cap bytes (NUL included).
 */
void pb_runner_redact(char *out, size_t cap, const char *cmdline);

/** The mkplex beside this executable (dirname(/proc/self/exe)/mkplex) or PLEXBURST_MKPLEX. */
int pb_runner_default_mkplex(char *out, size_t cap);

#endif

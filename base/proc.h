/*
 * proc.h: child processes, set up once: a shell command run to its end (or to a time limit) with
 * its exit status, and
 * the detachment of a forked child from its parent (its own session, default signals, stdio on
 * /dev/null, no inherited descriptors) for work that must outlive the parent or not hold its
 * pipes open.
 * Role: base layer. Prerequisites: POSIX (posix_spawn, setsid).
 */
#ifndef PB_PROC_H
#define PB_PROC_H

#include <stddef.h>
#include "plexburst/errors.h"

/** How long pb_proc_shell_for lets a command run, and how its caller stops it early. */
typedef struct pb_proc_limits {
    double timeout_s;            /* 0: no limit */
    int (*cancelled)(void *arg); /* polled while waiting; nonzero ends the command */
    void *cancelled_arg;
} pb_proc_limits;

/**
 * Runs `/bin/sh -c cmd` with this process's environment in a process group of its own and waits
 * for it. *status gets its exit status, 128+N when killed by signal N. When the limit passes or
 * the caller cancels, the whole group gets SIGTERM, then SIGKILL 2 s later.
 * @return 0 when it ran to its end (whatever its status); PB_EIO when it could not start;
 * PB_ECANCELLED when cancelled; PB_ERROR (message naming the limit) on the timeout.
 */
int pb_proc_shell_for(int *status, const char *cmd, const pb_proc_limits *limits, pb_error *err);

/** pb_proc_shell_for without a limit. */
int pb_proc_shell(int *status, const char *cmd, pb_error *err);

/**
 * In a child just forked: a new session (no controlling terminal; a group of its own that a
 * kill(-pid) reaches whole), SIGINT/SIGTERM/SIGPIPE at their defaults, SIGHUP ignored, no signal
 * blocked, stdin/stdout/stderr on /dev/null, and every other descriptor below 1024 closed except
 * the `n` of `keep`. Async-signal-safe calls only.
 */
void pb_proc_detach(const int *keep, size_t n);

#endif

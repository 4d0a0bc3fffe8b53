/*
 * proc.h: child processes, set up once: a shell command run to its end with its exit status, and
 * the detachment of a forked child from its parent (its own session, default signals, stdio on
 * /dev/null, no inherited descriptors) for work that must outlive the parent or not hold its
 * pipes open.
 * Role: base layer. Prerequisites: POSIX (posix_spawn, setsid).
 */
#ifndef PB_PROC_H
#define PB_PROC_H

#include <stddef.h>
#include "plexburst/errors.h"

/**
 * Runs `/bin/sh -c cmd` with this process's environment and waits for it. *status gets its exit
 * status, 128+N when killed by signal N.
 * @return 0 when it ran (whatever its status); PB_EIO when it could not start.
 */
int pb_proc_shell(int *status, const char *cmd, pb_error *err);

/**
 * In a child just forked: a new session (no controlling terminal; a group of its own that a
 * kill(-pid) reaches whole), SIGINT/SIGTERM/SIGPIPE at their defaults, SIGHUP ignored, no signal
 * blocked, stdin/stdout/stderr on /dev/null, and every other descriptor below 1024 closed except
 * the `n` of `keep`. Async-signal-safe calls only.
 */
void pb_proc_detach(const int *keep, size_t n);

#endif

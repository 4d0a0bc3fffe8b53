/*
 * plexctl.c: Plex around an apply (engine/apply/apply_int.h): is it running for this data dir
 * (its pid file, or a process named "Plex Media Server"), stop it with --plex-stop-cmd before the
 * merge (phase 5) and start it again after the install (phase 8), each step journaled so that a
 * recovery knows Plex may need a start.
 * Role: pb_apply's phases 5 and 8. Prerequisites: /proc, posix_spawn.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apply_int.h"
#include "clock.h"

extern char **environ;

static int pid_alive(pid_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* 1 when Plex appears to be running for this data dir: a live plexmediaserver.pid in it, or a
 * process named "Plex Media Server". `why` says which. */
static int plex_running(const char *plex_dir, char *why, size_t cap)
{
    char path[PATH_MAX + 64], buf[4096];
    FILE *f;
    DIR *d;
    struct dirent *e;

    snprintf(path, sizeof(path), "%s/plexmediaserver.pid", plex_dir);
    if ((f = fopen(path, "r"))) {
        long pid = 0;
        int ok = fscanf(f, "%ld", &pid) == 1;
        fclose(f);
        if (ok && pid_alive((pid_t)pid)) {
            snprintf(why, cap, "%.200s names the live process %ld", path, pid);
            return 1;
        }
    }
    if (!(d = opendir("/proc")))
        return 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        const char *base = strrchr(buf, '/');
        base = base ? base + 1 : buf;
        if (strcmp(base, "Plex Media Server") == 0) {
            snprintf(why, cap, "process %s is \"Plex Media Server\"", e->d_name);
            closedir(d);
            return 1;
        }
    }
    closedir(d);
    return 0;
}

int pb_apply__run_shell(const char *what, const char *cmd, pb_error *err)
{
    pid_t pid;
    int status = 0;
    char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
    int rc = posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ);
    if (rc != 0) {
        errno = rc;
        return pb_error_errno(err, "cannot run the %s command", what);
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return pb_error_errno(err, "waiting for the %s command failed", what);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return pb_error_set(err, PB_ERROR, "the %s command failed (%s %d)", what,
                            WIFEXITED(status) ? "exit status" : "signal",
                            WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    return 0;
}

int pb_apply__stop_plex(apply_run *x)
{
    const pb_apply_options *o = x->o;
    pb_apply_result *out = x->out;
    char why[300];
    int error;
    if (o->online)
        return 0;
    if (!o->plex_stop_cmd) {
        if (!plex_running(x->plex, why, sizeof(why)))
            return 0;
        out->plex_was_running = 1;
        return pb_error_set(x->err, PB_EREFUSED,
                            "Plex appears to be running (%s): give --plex-stop-cmd and "
                            "--plex-start-cmd, stop it first, or use --online",
                            why);
    }
    if ((error = pb_journal__set_plex(x->j, 1, x->err)) < 0)
        return error;
    x->stopped = 1;
    x->t_stop = pb_clock_ms();
    out->plex_was_running = plex_running(x->plex, why, sizeof(why));
    if ((error = pb_apply__run_shell("--plex-stop-cmd", o->plex_stop_cmd, x->err)) < 0)
        return error;
    out->plex_stopped = 1;
    pb_journal__crash_point("stopped");
    if (plex_running(x->plex, why, sizeof(why)))
        return pb_error_set(x->err, PB_EREFUSED, "Plex is still running after --plex-stop-cmd (%s)",
                            why);
    return 0;
}

int pb_apply__start_plex(apply_run *x)
{
    int error;
    if (!x->stopped)
        return 0;
    if (x->o->plex_start_cmd) {
        if ((error = pb_apply__run_shell("--plex-start-cmd", x->o->plex_start_cmd, x->err)) < 0)
            return error;
        x->out->plex_started = 1;
    }
    x->out->ms.downtime = pb_clock_ms() - x->t_stop;
    x->stopped = 0;
    if ((error = pb_journal__set_plex(x->j, 0, x->err)) < 0)
        return error;
    pb_journal__crash_point("started");
    return 0;
}

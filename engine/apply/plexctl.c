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
#include <time.h>
#include <unistd.h>

#include "apply_int.h"
#include "clock.h"
#include "proc.h"

extern char **environ;

static int pid_alive(pid_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* 1 when the live process `pid` is Plex Media Server: its executable's name, else its command
 * name (the kernel's 15-character copy), says so. A pid file outliving Plex may name a reused
 * pid: any other process is not Plex. */
static int pid_is_plex(pid_t pid)
{
    char path[64], buf[PATH_MAX];
    snprintf(path, sizeof(path), "/proc/%ld/exe", (long)pid);
    ssize_t n = readlink(path, buf, sizeof(buf) - 1);
    if (n > 0) {
        buf[n] = '\0';
        char *del = strstr(buf, " (deleted)"); /* Plex updated under the running server */
        if (del && del[10] == '\0')
            *del = '\0';
        const char *base = strrchr(buf, '/');
        return strcmp(base ? base + 1 : buf, "Plex Media Server") == 0;
    }
    snprintf(path, sizeof(path), "/proc/%ld/comm", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    return strcmp(buf, "Plex Media Serv") == 0;
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
        if (ok && pid_alive((pid_t)pid) && pid_is_plex((pid_t)pid)) {
            snprintf(why, cap, "%.200s names the live Plex Media Server process %ld", path, pid);
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

int pb_apply__run_shell(const char *what, const char *cmd, const pb_apply_options *o, apply_run *x,
                        pb_error *err)
{
    pb_proc_limits limits = {o->plex_cmd_timeout > 0 ? o->plex_cmd_timeout
                                                     : PB_APPLY_PLEX_CMD_TIMEOUT,
                             x ? o->cancelled : NULL, o->cancel_payload};
    pb_error e = PB_ERROR_INIT;
    int status = 0, rc = pb_proc_shell_for(&status, cmd, &limits, &e);
    if (rc == PB_ECANCELLED)
        return pb_apply__cancelled(x);
    if (rc == PB_ERROR)
        return pb_error_set(err, PB_ERROR,
                            "the %s command %s (raise --plex-cmd-timeout if it needs longer)", what,
                            e.msg);
    if (rc < 0)
        return pb_error_set(err, rc, "cannot run the %s command: %s", what, e.msg);
    if (status != 0)
        return pb_error_set(err, PB_ERROR, "the %s command failed (exit status %d)", what, status);
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
    if ((error = pb_apply__run_shell("--plex-stop-cmd", o->plex_stop_cmd, o, x, x->err)) < 0)
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
        if ((error = pb_apply__run_shell("--plex-start-cmd", x->o->plex_start_cmd, x->o, NULL,
                                         x->err)) < 0)
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

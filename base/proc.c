/*
 * proc.c: child processes (proc.h).
 * Role: base layer. Prerequisites: POSIX.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "proc.h"

extern char **environ;

/* Ends a command's process group: SIGTERM, then SIGKILL after 2 s; reaps the shell. */
static void kill_group(pid_t pid)
{
    int ws;
    kill(-pid, SIGTERM);
    double until = pb_clock_ms() + 2000;
    while (waitpid(pid, &ws, WNOHANG) == 0) {
        if (pb_clock_ms() > until) {
            kill(-pid, SIGKILL);
            while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
                ;
            break;
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(-pid, SIGKILL); /* what the shell left behind */
}

int pb_proc_shell_for(int *status, const char *cmd, const pb_proc_limits *limits, pb_error *err)
{
    static const pb_proc_limits none = {0, NULL, NULL};
    const pb_proc_limits *l = limits ? limits : &none;
    pid_t pid;
    int ws = 0, rc;
    char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
    posix_spawnattr_t attr;
    if ((rc = posix_spawnattr_init(&attr)) == 0) {
        rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
        if (rc == 0)
            rc = posix_spawnattr_setpgroup(&attr, 0);
        if (rc == 0)
            rc = posix_spawn(&pid, "/bin/sh", NULL, &attr, argv, environ);
        posix_spawnattr_destroy(&attr);
    }
    if (rc != 0) {
        errno = rc;
        return pb_error_errno(err, "cannot run /bin/sh");
    }
    double until = l->timeout_s > 0 ? pb_clock_ms() + l->timeout_s * 1000.0 : 0, pause_ms = 5;
    for (;;) {
        pid_t w = waitpid(pid, &ws, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            int e = errno;
            kill_group(pid);
            errno = e;
            return pb_error_errno(err, "waiting for /bin/sh failed");
        }
        if (l->cancelled && l->cancelled(l->cancelled_arg)) {
            kill_group(pid);
            return pb_error_set(err, PB_ECANCELLED, "cancelled");
        }
        if (until > 0 && pb_clock_ms() >= until) {
            kill_group(pid);
            return pb_error_set(err, PB_ERROR, "did not end within %.0f s: stopped it",
                                l->timeout_s);
        }
        struct timespec ts = {0, (long)(pause_ms * 1e6)};
        nanosleep(&ts, NULL);
        if (pause_ms < 100)
            pause_ms *= 2;
    }
    *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : WIFSIGNALED(ws) ? 128 + WTERMSIG(ws) : -1;
    return 0;
}

int pb_proc_shell(int *status, const char *cmd, pb_error *err)
{
    return pb_proc_shell_for(status, cmd, NULL, err);
}

void pb_proc_detach(const int *keep, size_t n)
{
    setsid();
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGHUP, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int dn = open("/dev/null", O_RDWR);
    if (dn >= 0) {
        dup2(dn, 0);
        dup2(dn, 1);
        dup2(dn, 2);
    }
    for (int fd = 3; fd < 1024; fd++) {
        size_t i = 0;
        while (i < n && keep[i] != fd)
            i++;
        if (i == n)
            close(fd);
    }
}

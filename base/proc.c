/*
 * proc.c: child processes (proc.h).
 * Role: base layer. Prerequisites: POSIX.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proc.h"

extern char **environ;

int pb_proc_shell(int *status, const char *cmd, pb_error *err)
{
    pid_t pid;
    int ws = 0;
    char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
    int rc = posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ);
    if (rc != 0) {
        errno = rc;
        return pb_error_errno(err, "cannot run /bin/sh");
    }
    while (waitpid(pid, &ws, 0) < 0)
        if (errno != EINTR)
            return pb_error_errno(err, "waiting for /bin/sh failed");
    *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : WIFSIGNALED(ws) ? 128 + WTERMSIG(ws) : -1;
    return 0;
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

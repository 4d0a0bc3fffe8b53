/*
 * channel_local.c: the `local` channel: the agent started as a child process on this machine,
 * speaking the framed protocol over its stdin/stdout (two pipes).
 * Role: the embedded default's transport (`--cloud local`), and what the tests drive; the `ssh`
 * channel (channel_ssh.c) has the same shape. Prerequisites: POSIX fork/exec.
 * The child runs in its own process group: a Ctrl-C in the terminal reaches only the home side,
 * which then ends the conversation itself (close: EOF on the child's stdin, bounded wait, then
 * SIGTERM and SIGKILL to the group, so the agent's runner goes too).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"
#include "channel_int.h"

typedef struct local_channel {
    pb_channel base;
    pid_t pid;
    int to_child, from_child;
    int exited, status;
    int close_timeout_ms;
} local_channel;

static int local_read(pb_channel *ch, void *buf, size_t cap, size_t *got, pb_error *err)
{
    local_channel *c = (local_channel *)ch;
    return pb_chan__read_fd(ch, c->from_child, buf, cap, got, err);
}

static int local_write(pb_channel *ch, const void *buf, size_t n, pb_error *err)
{
    local_channel *c = (local_channel *)ch;
    if (c->to_child < 0)
        return pb_error_set(err, PB_EINVALID, "channel %s: closed for writing", ch->desc);
    return pb_chan__write_fd(ch, c->to_child, buf, n, err);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits up to `ms` for the child; 1 when it has exited. */
static int reap(local_channel *c, int ms)
{
    if (c->exited)
        return 1;
    for (int waited = 0;; waited += 20) {
        int st = 0;
        pid_t r = waitpid(c->pid, &st, WNOHANG);
        if (r == c->pid || (r < 0 && errno == ECHILD)) {
            c->exited = 1;
            c->status = r == c->pid && WIFEXITED(st)     ? WEXITSTATUS(st)
                        : r == c->pid && WIFSIGNALED(st) ? 128 + WTERMSIG(st)
                                                         : -1;
            return 1;
        }
        if (waited >= ms)
            return 0;
        sleep_ms(20);
    }
}

/* Ends the child: EOF first (done by the caller), then TERM, then KILL, to its whole group. */
static void stop_child(local_channel *c, int grace_ms)
{
    if (c->pid <= 0 || reap(c, grace_ms))
        return;
    kill(-c->pid, SIGTERM);
    if (reap(c, 3000))
        return;
    kill(-c->pid, SIGKILL);
    reap(c, 5000);
}

static int local_close(pb_channel *ch, int *status, pb_error *err)
{
    local_channel *c = (local_channel *)ch;
    if (c->to_child >= 0) {
        close(c->to_child);
        c->to_child = -1;
    }
    int timed_out = !reap(c, c->close_timeout_ms);
    if (timed_out)
        stop_child(c, 0);
    *status = c->exited ? c->status : -1;
    if (timed_out)
        return pb_error_set(err, PB_ENET,
                            "channel %s: the agent did not exit within %d ms "
                            "(stopped)",
                            ch->desc, c->close_timeout_ms);
    return 0;
}

static void local_free(pb_channel *ch)
{
    local_channel *c = (local_channel *)ch;
    if (c->to_child >= 0)
        close(c->to_child);
    c->to_child = -1;
    stop_child(c, 2000);
    if (c->from_child >= 0)
        close(c->from_child);
    free(c);
}

static const pb_channel_ops local_ops = {
    PB_CHANNEL_OPS_VERSION, "local", local_read, local_write, local_close, local_free,
};

void pb_spawn_options_init(pb_spawn_options *o)
{
    pb_spawn_options init = PB_SPAWN_OPTIONS_INIT;
    *o = init;
}

pid_t pb_chan__local_pid(const pb_channel *ch)
{
    return ((const local_channel *)ch)->pid;
}

/* In the child: own process group, default signals, the pipes on 0 and 1, then exec; a
 * failure's errno goes to the parent through `status_fd` (close-on-exec: silence means exec). */
static void child_exec(char *const argv[], const pb_spawn_options *opts, int in_fd, int out_fd,
                       int status_fd)
{
    setpgid(0, 0);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (dup2(in_fd, 0) >= 0 && dup2(out_fd, 1) >= 0 &&
        !(opts && opts->stderr_fd >= 0 && dup2(opts->stderr_fd, 2) < 0) &&
        !(opts && opts->cwd && chdir(opts->cwd) != 0))
        execv(argv[0], argv);
    int e = errno;
    ssize_t w = write(status_fd, &e, sizeof(e));
    (void)w;
    _exit(127);
}

/* The child's exec failure (its errno), or 0 when the exec succeeded. */
static int child_exec_errno(int status_fd)
{
    int child_errno = 0;
    ssize_t n;
    do
        n = read(status_fd, &child_errno, sizeof(child_errno));
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof(child_errno) ? child_errno : 0;
}

int pb_channel_spawn(pb_channel **out, char *const argv[], const pb_spawn_options *opts,
                     pb_error *err)
{
    int error = 0;
    int in_p[2] = {-1, -1}, out_p[2] = {-1, -1}, st_p[2] = {-1, -1};
    local_channel *c = NULL;
    *out = NULL;
    if (!argv || !argv[0] || argv[0][0] != '/')
        return pb_error_set(err, PB_EINVALID,
                            "channel: the agent program must be an absolute "
                            "path");
    if (pipe2(in_p, O_CLOEXEC) || pipe2(out_p, O_CLOEXEC) || pipe2(st_p, O_CLOEXEC)) {
        error = pb_error_errno(err, "channel: pipe");
        goto done;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        error = pb_error_set(err, PB_ENOMEM, "channel: out of memory");
        goto done;
    }
    c->to_child = c->from_child = -1;
    c->close_timeout_ms = opts && opts->close_timeout_ms > 0 ? opts->close_timeout_ms : 30000;
    pid_t pid = fork();
    if (pid < 0) {
        error = pb_error_errno(err, "channel: fork");
        goto done;
    }
    if (pid == 0)
        child_exec(argv, opts, in_p[0], out_p[1], st_p[1]);
    setpgid(pid, pid); /* both sides set it: no race with an early kill */
    c->pid = pid;
    close(in_p[0]);
    in_p[0] = -1;
    close(out_p[1]);
    out_p[1] = -1;
    close(st_p[1]);
    st_p[1] = -1;
    c->to_child = in_p[1];
    in_p[1] = -1;
    c->from_child = out_p[0];
    out_p[0] = -1;
    c->base.ops = &local_ops;
    snprintf(c->base.desc, sizeof(c->base.desc), "local agent (pid %ld)", (long)pid);

    int child_errno = child_exec_errno(st_p[0]);
    if (child_errno) {
        reap(c, 5000);
        error = pb_error_setd(err, child_errno == ENOENT ? PB_ENOTFOUND : PB_EIO, child_errno,
                              "channel: cannot start %s: %s", argv[0], strerror(child_errno));
        goto done;
    }
    *out = &c->base;
    c = NULL;
done:
    if (c) {
        if (c->pid > 0 && !c->exited)
            local_free(&c->base);
        else {
            if (c->to_child >= 0)
                close(c->to_child);
            if (c->from_child >= 0)
                close(c->from_child);
            free(c);
        }
    }
    for (int i = 0; i < 2; i++) {
        if (in_p[i] >= 0)
            close(in_p[i]);
        if (out_p[i] >= 0)
            close(out_p[i]);
        if (st_p[i] >= 0)
            close(st_p[i]);
    }
    return error;
}

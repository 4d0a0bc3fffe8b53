/*
 * runner.c: the `command` analysis runner (engine/runner.h): substitution, a child /bin/sh in
 * its own process group with stdin from /dev/null and stdout+stderr relayed line by line, and a
 * clean stop (SIGTERM to the group, then SIGKILL) when the agent's stream asks for it.
 * Role: the agent's analysis step (engine/agent.c). Prerequisites: POSIX.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runner.h"

#define LINE_MAX_BYTES 4096

/* Appends `s` single-quoted for /bin/sh. */
static int put_quoted(char **buf, size_t *n, size_t *cap, const char *s)
{
    size_t need = *n + 3 + 4 * strlen(s) + 1;
    if (need > *cap) {
        size_t c = need * 2;
        char *p = realloc(*buf, c);
        if (!p)
            return -1;
        *buf = p;
        *cap = c;
    }
    (*buf)[(*n)++] = '\'';
    for (; *s; s++) {
        if (*s == '\'') {
            memcpy(*buf + *n, "'\\''", 4);
            *n += 4;
        } else {
            (*buf)[(*n)++] = *s;
        }
    }
    (*buf)[(*n)++] = '\'';
    return 0;
}

int pb_runner_expand(char **out, const char *cmdline, const char *plex_dir, const char *mkplex,
                     pb_error *err)
{
    size_t n = 0, cap = strlen(cmdline) + 64;
    char *buf = malloc(cap);
    *out = NULL;
    if (!buf)
        return pb_error_set(err, PB_ENOMEM, "runner: out of memory");
    for (const char *p = cmdline; *p;) {
        const char *val = NULL;
        size_t skip = 0;
        if (strncmp(p, "{plex_dir}", 10) == 0) {
            val = plex_dir;
            skip = 10;
        } else if (strncmp(p, "{mkplex}", 8) == 0) {
            val = mkplex;
            skip = 8;
            if (!val || !*val) {
                free(buf);
                return pb_error_set(err, PB_ENOTFOUND,
                                    "runner: {mkplex} used but no mkplex was found (set "
                                    "PLEXBURST_MKPLEX)");
            }
        }
        if (val) {
            if (put_quoted(&buf, &n, &cap, val) != 0) {
                free(buf);
                return pb_error_set(err, PB_ENOMEM, "runner: out of memory");
            }
            p += skip;
            continue;
        }
        if (n + 2 > cap) {
            cap *= 2;
            char *q = realloc(buf, cap);
            if (!q) {
                free(buf);
                return pb_error_set(err, PB_ENOMEM, "runner: out of memory");
            }
            buf = q;
        }
        buf[n++] = *p++;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

static int secret_word(const char *s, size_t n)
{
    static const char *const words[] = {"token",      "secret",     "password",
                                        "passphrase", "access_key", "passwd"};
    for (size_t w = 0; w < sizeof(words) / sizeof(*words); w++) {
        size_t wl = strlen(words[w]);
        for (size_t i = 0; i + wl <= n; i++)
            if (strncasecmp(s + i, words[w], wl) == 0)
                return 1;
    }
    return 0;
}

void pb_runner_redact(char *out, size_t cap, const char *cmdline)
{
    size_t n = 0;
    int mask_next = 0;
    const char *p = cmdline;
    if (!cap)
        return;
#define PUT(str, len)                                                                              \
    do {                                                                                           \
        size_t l_ = (len);                                                                         \
        if (n + l_ >= cap)                                                                         \
            l_ = cap - 1 - n;                                                                      \
        memcpy(out + n, (str), l_);                                                                \
        n += l_;                                                                                   \
    } while (0)
    while (*p) {
        size_t sp = strspn(p, " \t");
        PUT(p, sp);
        p += sp;
        size_t wl = strcspn(p, " \t");
        if (!wl)
            break;
        const char *eq = memchr(p, '=', wl);
        if (mask_next) {
            PUT("<secret>", 8);
            mask_next = 0;
        } else if (eq && secret_word(p, (size_t)(eq - p))) {
            PUT(p, (size_t)(eq - p) + 1);
            PUT("<secret>", 8);
        } else {
            PUT(p, wl);
            if (wl > 2 && p[0] == '-' && secret_word(p, wl) && !eq)
                mask_next = 1;
        }
        p += wl;
    }
#undef PUT
    out[n] = '\0';
}

int pb_runner_default_mkplex(char *out, size_t cap)
{
    const char *e = getenv("PLEXBURST_MKPLEX");
    if (e && *e) {
        char real[PATH_MAX];
        snprintf(out, cap, "%s", realpath(e, real) ? real : e);
        return 0;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    if (snprintf(out, cap, "%s/mkplex", self) >= (int)cap)
        return -1;
    return access(out, X_OK) == 0 ? 0 : -1;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void stop_group(pid_t pid, int *status)
{
    kill(-pid, SIGTERM);
    for (int i = 0; i < 150; i++) {
        if (waitpid(pid, status, WNOHANG) == pid)
            goto reaped;
        sleep_ms(20);
    }
    kill(-pid, SIGKILL);
    waitpid(pid, status, 0);
reaped:
    kill(-pid, SIGKILL); /* whatever the shell left behind */
}

/* Emits complete lines of buf[0..*n), keeping a partial tail; `flush` emits the tail too. */
static void emit_lines(char *buf, size_t *n, int flush, const pb_runner_io *io)
{
    size_t start = 0;
    for (size_t i = 0; i < *n; i++) {
        if (buf[i] == '\n' || i - start >= LINE_MAX_BYTES - 1) {
            int nl = buf[i] == '\n';
            size_t end = nl ? i : i + 1;
            char save = buf[end];
            buf[end] = '\0';
            if (end > start && buf[end - 1] == '\r')
                buf[end - 1] = '\0';
            if (io && io->line)
                io->line(buf + start, io->payload);
            buf[end] = save;
            start = nl ? i + 1 : i + 1;
        }
    }
    if (flush && start < *n) {
        buf[*n] = '\0';
        if (io && io->line)
            io->line(buf + start, io->payload);
        start = *n;
    }
    memmove(buf, buf + start, *n - start);
    *n -= start;
}

int pb_runner_command(int *status, const char *expanded, const char *plex_dir,
                      const pb_runner_io *io, pb_error *err)
{
    int error = 0, p[2] = {-1, -1}, st = 0;
    char *buf = NULL;
    size_t n = 0;
    *status = -1;
    if (pipe2(p, O_CLOEXEC) != 0)
        return pb_error_errno(err, "runner: pipe");
    buf = malloc(2 * LINE_MAX_BYTES + 1);
    if (!buf) {
        close(p[0]);
        close(p[1]);
        return pb_error_set(err, PB_ENOMEM, "runner: out of memory");
    }
    pid_t pid = fork();
    if (pid < 0) {
        error = pb_error_errno(err, "runner: fork");
        goto done;
    }
    if (pid == 0) {
        setpgid(0, 0);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(p[1], 1);
        dup2(p[1], 2);
        if (plex_dir) {
            setenv("PLEX_DIR", plex_dir, 1);
            setenv("PLEXBURST_PLEX_DIR", plex_dir, 1);
            if (chdir(plex_dir) != 0)
                _exit(126);
        }
        execl("/bin/sh", "sh", "-c", expanded, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    close(p[1]);
    p[1] = -1;
    for (;;) {
        struct pollfd fds[2] = {{.fd = p[0], .events = POLLIN},
                                {.fd = io ? io->watch_fd : -1, .events = POLLIN}};
        int nf = io && io->watch_fd >= 0 && io->on_watch ? 2 : 1;
        int r = poll(fds, (nfds_t)nf, 500);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            error = pb_error_errno(err, "runner: poll");
            stop_group(pid, &st);
            goto done;
        }
        if (nf == 2 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) &&
            io->on_watch(io->payload)) {
            stop_group(pid, &st);
            error = pb_error_set(err, PB_ECANCELLED, "runner: stopped");
            goto done;
        }
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t k = read(p[0], buf + n, 2 * LINE_MAX_BYTES - n);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                break; /* every writer closed: the command (and its children) ended */
            n += (size_t)k;
            emit_lines(buf, &n, 0, io);
        }
    }
    emit_lines(buf, &n, 1, io);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
done:
    free(buf);
    if (p[0] >= 0)
        close(p[0]);
    if (p[1] >= 0)
        close(p[1]);
    return error;
}

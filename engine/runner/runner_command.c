/*
 * runner_command.c: the `command` runner (runner.h), detached. A monitor process in its own
 * session holds <state>/runner-<run>.lock, runs /bin/sh -c `the expanded line` in the Plex data
 * dir (PLEX_DIR and PLEXBURST_PLEX_DIR set to it) with its output appended to runner-<run>.log,
 * and writes its exit status (128+N when killed by signal N) to runner-<run>.json;
 * runner-<run>.pid names the monitor (the runner's process group). Whoever follows reads the log
 * from its start, so a follower after a dropped link misses nothing.
 * Role: engine/runner. Prerequisites: POSIX (fork, setsid, flock).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>
#include <jansson.h>

#include "proc.h"
#include "runner.h"

/* <state>/runner-<run>.<ext>: log, json, lock, pid. */
static void runner_path(pb_runner *r, char *out, size_t cap, const char *ext)
{
    snprintf(out, cap, "%s/runner-%s.%s", r->state_dir, r->run_id, ext);
}

/* Writes `text` to `path` through a temporary file and a rename, without allocating (the
 * monitor calls it after fork). 0 or -1. */
static int write_atomic(const char *path, const char *text)
{
    char tmp[PATH_MAX + 220];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    size_t n = strlen(text);
    int ok = write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static pid_t read_pid(const char *path)
{
    char buf[32] = "";
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    if (!fgets(buf, sizeof(buf), f))
        buf[0] = '\0';
    fclose(f);
    return (pid_t)atol(buf);
}

/* The runners of abandoned runs that still work are stopped (they would write into the Plex
 * data dir) and the runner files of every run go. */
static void cmd_forget(const char *state_dir, void (*stopping)(const char *run_id, void *payload),
                       void *payload)
{
    char p[PATH_MAX + 300], id[256];
    DIR *d = opendir(state_dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "runner-", 7) != 0 || n < 12 || n - 12 >= sizeof(id) ||
            strcmp(e->d_name + n - 5, ".lock") != 0)
            continue;
        snprintf(id, sizeof(id), "%.*s", (int)(n - 12), e->d_name + 7);
        snprintf(p, sizeof(p), "%s/%s", state_dir, e->d_name);
        int fd = open(p, O_RDWR | O_CLOEXEC);
        if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) {
            snprintf(p, sizeof(p), "%s/runner-%s.pid", state_dir, id);
            pid_t pg = read_pid(p);
            if (pg > 0) {
                if (stopping)
                    stopping(id, payload);
                kill(-pg, SIGTERM);
            }
        }
        if (fd >= 0)
            close(fd);
    }
    if (d)
        rewinddir(d);
    while (d && (e = readdir(d)))
        if (strncmp(e->d_name, "runner-", 7) == 0) {
            snprintf(p, sizeof(p), "%s/%s", state_dir, e->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
}

/* 0 and *status when the runner of this run recorded its exit status; -1 otherwise. */
static int recorded_status(pb_runner *r, int *status)
{
    char p[PATH_MAX + 96];
    runner_path(r, p, sizeof(p), "json");
    json_t *o = json_load_file(p, 0, NULL);
    json_t *st = json_object_get(o, "status");
    int rc = json_is_integer(st) ? 0 : -1;
    if (!rc)
        *status = (int)json_integer_value(st);
    json_decref(o);
    return rc;
}

/* 1 while a monitor holds the runner's lock (the runner works), else 0. */
static int alive(pb_runner *r)
{
    char p[PATH_MAX + 96];
    runner_path(r, p, sizeof(p), "lock");
    int fd = open(p, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int busy = flock(fd, LOCK_EX | LOCK_NB) != 0;
    close(fd);
    return busy;
}

static int cmd_state(pb_runner *r, int *status)
{
    if (recorded_status(r, status) == 0)
        return PB_RUNNER_DONE;
    return alive(r) ? PB_RUNNER_WORKING : PB_RUNNER_NONE;
}

/* The monitor, after fork: its own session, nothing of its parent's (stdio, locks) kept; runs
 * the work and records its status. Never returns. */
static void monitor(pb_runner *r, int lfd, int logfd, int ready, const char *stf,
                    pb_runner_work_fn work, void *arg)
{
    const int keep[] = {lfd, logfd, ready};
    pb_proc_detach(keep, 3);
    /* the starter waits for this: from now on a stop reaches the whole group */
    if (write(ready, "1", 1) != 1)
        _exit(1);
    close(ready);
    int status = work(r, logfd, arg);
    char text[64];
    snprintf(text, sizeof(text), "{\"status\": %d}\n", status);
    write_atomic(stf, text);
    _exit(0);
}

int pb_runner__spawn(pb_runner *r, pb_runner_work_fn work, void *arg, pb_error *err)
{
    int error = 0, lfd = -1, logfd = -1, ready[2] = {-1, -1};
    char lock[PATH_MAX + 96], log[PATH_MAX + 96], stf[PATH_MAX + 96], pidf[PATH_MAX + 96];
    runner_path(r, lock, sizeof(lock), "lock");
    runner_path(r, log, sizeof(log), "log");
    runner_path(r, stf, sizeof(stf), "json");
    runner_path(r, pidf, sizeof(pidf), "pid");
    unlink(stf);
    if ((lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
        error = pb_error_errno(err, "runner: cannot open %s", lock);
        goto done;
    }
    if (flock(lfd, LOCK_EX | LOCK_NB) != 0) {
        error =
            pb_error_set(err, PB_EBUSY, "runner: the runner of run %s works already", r->run_id);
        goto done;
    }
    if ((logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
        error = pb_error_errno(err, "runner: cannot open %s", log);
        goto done;
    }
    if (pipe(ready) != 0) {
        error = pb_error_errno(err, "runner: pipe");
        goto done;
    }
    fflush(NULL);
    r->child = fork();
    if (r->child < 0) {
        r->child = 0;
        error = pb_error_errno(err, "runner: fork");
        goto done;
    }
    if (r->child == 0)
        monitor(r, lfd, logfd, ready[1], stf, work, arg);
    close(ready[1]);
    ready[1] = -1;
    char one;
    while (read(ready[0], &one, 1) < 0 && errno == EINTR)
        ;
    char text[32];
    snprintf(text, sizeof(text), "%ld\n", (long)r->child);
    write_atomic(pidf, text);
done:
    for (int i = 0; i < 2; i++)
        if (ready[i] >= 0)
            close(ready[i]);
    if (logfd >= 0)
        close(logfd);
    if (lfd >= 0)
        close(lfd); /* the monitor holds the lock now */
    return error;
}

/* The command runner's work, in the monitor: the shell line in the Plex dir, its output into
 * the log; its exit status (128+N when killed by signal N). */
static int cmd_work(pb_runner *r, int logfd, void *arg)
{
    const char *expanded = arg;
    pid_t c = fork();
    if (c == 0) {
        signal(SIGHUP, SIG_DFL);
        dup2(logfd, 1);
        dup2(logfd, 2);
        setenv("PLEX_DIR", r->plex_dir, 1);
        setenv("PLEXBURST_PLEX_DIR", r->plex_dir, 1);
        if (chdir(r->plex_dir) != 0)
            _exit(126);
        execl("/bin/sh", "sh", "-c", expanded, (char *)NULL);
        _exit(127);
    }
    int ws = 0;
    if (c < 0)
        return 127;
    while (waitpid(c, &ws, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : WIFSIGNALED(ws) ? 128 + WTERMSIG(ws) : -1;
}

static int cmd_start(pb_runner *r, const char *spec, char *shown, size_t cap, pb_error *err)
{
    char *expanded = NULL;
    if (!spec || !*spec)
        return pb_error_set(err, PB_EINVALID, "runner: no command");
    int error = pb_runner_expand(&expanded, spec, r->plex_dir, r->mkplex, err);
    if (error < 0)
        return error;
    pb_runner_redact(shown, cap, expanded);
    error = pb_runner__spawn(r, cmd_work, expanded, err);
    free(expanded);
    return error;
}

static void cmd_stop(pb_runner *r)
{
    char p[PATH_MAX + 96];
    runner_path(r, p, sizeof(p), "pid");
    pid_t pg = read_pid(p);
    if (pg > 0)
        kill(-pg, SIGTERM);
}

/* Relays complete lines of buf[0..*n) through io->line; `flush` sends the tail too. -1 when
 * the reader is gone. */
static int relay_lines(const pb_runner_io *io, char *buf, size_t *n, int flush)
{
    size_t start = 0;
    int rc = 0;
    for (size_t i = 0; i <= *n; i++) {
        int cut = i < *n ? buf[i] == '\n' : (flush || i - start >= 4096) && i > start;
        if (!cut)
            continue;
        char save = buf[i];
        buf[i] = '\0';
        if (i > start && buf[i - 1] == '\r')
            buf[i - 1] = '\0';
        if (rc == 0 && io->line && io->line(buf + start, io->payload) != 0)
            rc = -1;
        buf[i] = save;
        start = i + 1;
    }
    if (start > *n)
        start = *n;
    memmove(buf, buf + start, *n - start);
    *n -= start;
    return rc;
}

/* One look at the watched fd (200 ms at most): 0 go on, else what on_watch said. */
static int watch(pb_runner *r, const pb_runner_io *io, pb_error *err)
{
    struct pollfd pfd = {io->watch_fd, POLLIN, 0};
    if (io->watch_fd < 0 || !io->on_watch) {
        poll(NULL, 0, 200);
        return 0;
    }
    if (poll(&pfd, 1, 200) <= 0)
        return 0;
    int rc = io->on_watch(io->payload);
    if (rc == PB_ECANCELLED) {
        cmd_stop(r);
        return pb_error_set(err, PB_ECANCELLED, "the runner was cancelled");
    }
    if (rc < 0)
        return pb_error_set(err, PB_ENET, "the reader went away; the runner goes on");
    return 0;
}

static int cmd_follow(pb_runner *r, const pb_runner_io *io, int *status, pb_error *err)
{
    int error = 0, lfd = -1, finished = 0;
    char log[PATH_MAX + 96], buf[8193];
    size_t n = 0;
    runner_path(r, log, sizeof(log), "log");
    for (;;) {
        if (lfd < 0)
            lfd = open(log, O_RDONLY | O_CLOEXEC);
        while (lfd >= 0) {
            ssize_t got = read(lfd, buf + n, sizeof(buf) - 1 - n);
            if (got <= 0)
                break;
            n += (size_t)got;
            if (relay_lines(io, buf, &n, n == sizeof(buf) - 1) < 0) {
                error = pb_error_set(err, PB_ENET, "the reader went away; the runner goes on");
                goto done;
            }
        }
        if (finished) {
            relay_lines(io, buf, &n, 1);
            break;
        }
        if (r->child > 0 && waitpid(r->child, NULL, WNOHANG) == r->child)
            r->child = 0;
        if (recorded_status(r, status) == 0) {
            finished = 1; /* one more pass for the log's last lines */
            continue;
        }
        if (!alive(r) && recorded_status(r, status) != 0) {
            error = pb_error_set(err, PB_ERROR, "the runner of run %s stopped without a status",
                                 r->run_id);
            goto done;
        }
        if ((error = watch(r, io, err)) < 0)
            goto done;
    }
done:
    if (r->child > 0 && error != PB_ECANCELLED) {
        if (waitpid(r->child, NULL, WNOHANG) == r->child)
            r->child = 0;
    } else if (r->child > 0) {
        while (waitpid(r->child, NULL, 0) < 0 && errno == EINTR)
            ;
        r->child = 0;
    }
    if (lfd >= 0)
        close(lfd);
    return error;
}

const pb_runner_ops pb_runner_command_ops = {
    PB_RUNNER_OPS_VERSION, "command", cmd_state, cmd_start, cmd_follow, cmd_stop, cmd_forget, NULL,
};

/*
 * bench_util.c: the measuring code bench_diff and bench_merge share (see bench_util.h).
 * Role: bench/ only. Prerequisites: jansson, SQLite, plexburst (pb_error).
 */
#include "bench_util.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double bench_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

double bench_cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

int bench_count_out(void *payload, const void *data, size_t n, pb_error *err)
{
    (void)err;
    bench_counter *c = payload;
    c->n += n;
    return c->f && fwrite(data, 1, n, c->f) != n ? PB_EIO : 0;
}

int bench_sess_out(void *payload, const void *data, int n)
{
    return bench_count_out(payload, data, (size_t)n, NULL) ? SQLITE_IOERR : SQLITE_OK;
}

json_int_t bench_jint(json_t *o, const char *a, const char *b)
{
    json_t *x = json_object_get(o, a);
    if (x && b)
        x = json_object_get(x, b);
    return x ? json_integer_value(x) : 0;
}

/* The child's side: fn's JSON, compact, down the pipe; exit status 2 when it cannot. */
static void child_run(json_t *(*fn)(void *), void *arg, int fd)
{
    json_t *j = fn(arg);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (!s)
        _exit(2);
    size_t n = strlen(s), off = 0;
    while (off < n) {
        ssize_t k = write(fd, s + off, n - off);
        if (k <= 0)
            _exit(2);
        off += (size_t)k;
    }
    _exit(0);
}

json_t *bench_in_child(json_t *(*fn)(void *), void *arg, const char *rss_key, char *why, size_t cap)
{
    int fd[2];
    if (pipe(fd) != 0) {
        snprintf(why, cap, "pipe: %s", strerror(errno));
        return NULL;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, cap, "fork: %s", strerror(errno));
        close(fd[0]);
        close(fd[1]);
        return NULL;
    }
    if (pid == 0) {
        close(fd[0]);
        child_run(fn, arg, fd[1]);
    }
    close(fd[1]);
    size_t bcap = 1 << 16, n = 0;
    char *buf = malloc(bcap);
    ssize_t k;
    while (buf && (k = read(fd[0], buf + n, bcap - n - 1)) > 0) {
        n += (size_t)k;
        if (n + 1 == bcap) {
            char *nb = realloc(buf, bcap *= 2);
            if (!nb)
                free(buf);
            buf = nb;
        }
    }
    close(fd[0]);
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        !buf) {
        free(buf);
        snprintf(why, cap, "a measurement failed");
        return NULL;
    }
    buf[n] = '\0';
    json_error_t je;
    json_t *j = json_loads(buf, 0, &je);
    free(buf);
    if (!j) {
        snprintf(why, cap, "bad child output: %s", je.text);
        return NULL;
    }
    json_object_set_new(j, rss_key, json_integer(ru.ru_maxrss));
    return j;
}

/*
 * testutil.c: scratch directories, shell helpers, skip handling, the AddressSanitizer set-up and
 * the file, SQL, buffer and memory-stream helpers of the cmocka tests (testutil.h). Compiled into
 * every test with the test's own flags.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fs.h"
#include "testutil.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TU_ASAN 1
#endif

/* The scratch dirs this process made, removed when it exits: after a pass or a skip (exit 0
 * or 77) with the state dir beside each (<dir>.plexburst); after a failure kept for inspection
 * and listed on stderr. PB_KEEP_TMP=1 keeps them always. Only the process that made a dir
 * removes it (a forked child that calls exit() leaves them alone). */
static struct {
    char **dirs;
    size_t n;
    pid_t owner;
} scratch;

static void scratch_cleanup(int status, void *arg)
{
    (void)arg;
    if (getpid() != scratch.owner)
        return;
    int keep = (status != 0 && status != 77) || getenv("PB_KEEP_TMP");
    for (size_t i = 0; i < scratch.n; i++) {
        char beside[PATH_MAX + 16];
        if (keep) {
            fprintf(stderr, "scratch dir kept: %s\n", scratch.dirs[i]);
            continue;
        }
        snprintf(beside, sizeof(beside), "%s.plexburst", scratch.dirs[i]);
        pb_fs_rmtree(beside);
        if (pb_fs_rmtree(scratch.dirs[i]) != 0 && errno != ENOENT) {
            /* a test that left a directory without write permission: open it up, retry */
            char cmd[PATH_MAX + 64];
            snprintf(cmd, sizeof(cmd), "chmod -R u+rwx '%s' 2>/dev/null", scratch.dirs[i]);
            if (system(cmd) != -1)
                pb_fs_rmtree(scratch.dirs[i]);
        }
    }
    for (size_t i = 0; i < scratch.n; i++)
        free(scratch.dirs[i]);
    free(scratch.dirs);
    scratch.dirs = NULL;
    scratch.n = 0;
}

const char *tu_tmpdir(const char *tag)
{
    static char path[PATH_MAX];
    const char *base = getenv("TMPDIR");
    snprintf(path, sizeof(path), "%s/pbtest-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    if (!mkdtemp(path)) {
        perror("mkdtemp");
        exit(1);
    }
    if (scratch.owner != getpid()) { /* first dir of this process (or of a forked child) */
        for (size_t i = 0; i < scratch.n; i++)
            free(scratch.dirs[i]);
        free(scratch.dirs);
        scratch.dirs = NULL;
        scratch.n = 0;
        scratch.owner = getpid();
        on_exit(scratch_cleanup, NULL);
    }
    char **grown = realloc(scratch.dirs, (scratch.n + 1) * sizeof(*grown));
    char *copy = strdup(path);
    if (!grown || !copy) {
        perror("tu_tmpdir");
        exit(1);
    }
    scratch.dirs = grown;
    scratch.dirs[scratch.n++] = copy;
    return path;
}

static const char *env_path(const char *var, const char *name)
{
    static char path[8][PATH_MAX];
    static int slot;
    const char *base = getenv(var);
    char *p = path[slot++ % 8];
    snprintf(p, PATH_MAX, "%s/%s", base ? base : ".", name);
    return p;
}

const char *tu_build_path(const char *name)
{
    return env_path("PB_BUILD_DIR", name);
}

const char *tu_source_path(const char *name)
{
    return env_path("PB_SOURCE_DIR", name);
}

static int vsh(char *out, size_t cap, const char *fmt, va_list ap)
{
    char cmd[8192];
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = 0;
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof(buf), p)) > 0) {
        if (out && n + 1 < cap) {
            size_t take = got < cap - 1 - n ? got : cap - 1 - n;
            memcpy(out + n, buf, take);
            n += take;
        }
    }
    if (out && cap)
        out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int tu_sh(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vsh(NULL, 0, fmt, ap);
    va_end(ap);
    return rc;
}

int tu_sh_out(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vsh(out, cap, fmt, ap);
    va_end(ap);
    return rc;
}

void tu_skip(const char *why)
{
    printf("SKIPPED: %s\n", why);
    fflush(stdout);
    exit(77);
}

void tu_asan_allow_stock_host(void)
{
#ifdef TU_ASAN
    char opts[1024];
    const char *old = getenv("ASAN_OPTIONS");
    snprintf(opts, sizeof(opts), "%s%sverify_asan_link_order=0:detect_leaks=0", old ? old : "",
             old && *old ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
#endif
}

char *tu_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

sqlite3_stmt *tu_prepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    return st;
}

void tu_exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : "?");
}

void tu_buf_add(tu_buf *b, const void *d, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2 + 256;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
    b->p[b->n] = '\0';
}

void tu_buf_str(tu_buf *b, const char *s)
{
    tu_buf_add(b, s, strlen(s));
}

int tu_mem_in(void *payload, void *buf, size_t cap, size_t *got, pb_error *err)
{
    tu_memin *m = payload;
    (void)err;
    size_t k = m->n - m->pos;
    if (k > cap)
        k = cap;
    if (m->step && k > m->step)
        k = m->step;
    memcpy(buf, m->p + m->pos, k);
    m->pos += k;
    *got = k;
    return 0;
}

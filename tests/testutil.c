/*
 * testutil.c: scratch directories, shell helpers, skip handling and the AddressSanitizer set-up
 * for the cmocka tests (testutil.h). Compiled into every test with the test's own flags.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TU_ASAN 1
#endif

const char *tu_tmpdir(const char *tag)
{
    static char path[PATH_MAX];
    const char *base = getenv("TMPDIR");
    snprintf(path, sizeof(path), "%s/pbtest-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    if (!mkdtemp(path)) {
        perror("mkdtemp");
        exit(1);
    }
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

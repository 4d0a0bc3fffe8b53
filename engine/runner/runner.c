/*
 * runner.c: the runner seam (runner.h): the table of runner kinds and the calls that dispatch to
 * them, and what every kind shares: `{plex_dir}` / `{mkplex}` substitution with shell quoting,
 * secrets masked for the logs, the default mkplex.
 * Role: engine/runner, used by the agent (engine/run/agent.c). Prerequisites: POSIX.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "runner.h"

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

/* ---------------------------------------------------------------------------------------- */
/* The table of kinds and the dispatch                                                        */

static const pb_runner_ops *const kinds[] = {&pb_runner_command_ops};

void pb_runner_options_init(pb_runner_options *o)
{
    *o = (pb_runner_options)PB_RUNNER_OPTIONS_INIT;
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

int pb_runner_open(pb_runner **out, const pb_runner_options *o, pb_error *err)
{
    const char *kind = o && o->kind ? o->kind : "command";
    *out = NULL;
    if (!o || o->version != PB_RUNNER_OPTIONS_VERSION || !o->plex_dir || !o->state_dir ||
        !o->run_id)
        return pb_error_set(err, PB_EINVALID, "runner: bad options");
    const pb_runner_ops *ops = NULL;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(*kinds); i++)
        if (strcmp(kinds[i]->name, kind) == 0)
            ops = kinds[i];
    if (!ops && strcmp(kind, "plex") == 0)
        return pb_error_set(err, PB_EINVALID,
                            "runner: the plex runner is not built yet (use "
                            "command)");
    if (!ops)
        return pb_error_set(err, PB_EINVALID, "runner: unknown kind '%s' (command)", kind);
    if (ops->version != PB_RUNNER_OPS_VERSION)
        return pb_error_set(err, PB_EINVALID, "runner %s: ops version %u", kind, ops->version);
    pb_runner *r = calloc(1, sizeof(*r));
    if (!r)
        return pb_error_set(err, PB_ENOMEM, "runner: out of memory");
    r->ops = ops;
    r->plex_dir = dup_or_empty(o->plex_dir);
    r->state_dir = dup_or_empty(o->state_dir);
    r->run_id = dup_or_empty(o->run_id);
    r->mkplex = dup_or_empty(o->mkplex);
    if (!r->plex_dir || !r->state_dir || !r->run_id || !r->mkplex) {
        pb_runner_free(r);
        return pb_error_set(err, PB_ENOMEM, "runner: out of memory");
    }
    *out = r;
    return 0;
}

int pb_runner_state(pb_runner *r, int *status)
{
    return r->ops->state(r, status);
}

int pb_runner_start(pb_runner *r, const char *spec, char *shown, size_t cap, pb_error *err)
{
    return r->ops->start(r, spec, shown, cap, err);
}

int pb_runner_follow(pb_runner *r, const pb_runner_io *io, int *status, pb_error *err)
{
    return r->ops->follow(r, io, status, err);
}

void pb_runner_stop(pb_runner *r)
{
    r->ops->stop(r);
}

void pb_runner_forget(const char *state_dir, void (*stopping)(const char *run_id, void *payload),
                      void *payload)
{
    for (size_t i = 0; i < sizeof(kinds) / sizeof(*kinds); i++)
        if (kinds[i]->forget)
            kinds[i]->forget(state_dir, stopping, payload);
}

void pb_runner_free(pb_runner *r)
{
    if (!r)
        return;
    if (r->ops && r->ops->release)
        r->ops->release(r);
    free(r->plex_dir);
    free(r->state_dir);
    free(r->run_id);
    free(r->mkplex);
    free(r);
}

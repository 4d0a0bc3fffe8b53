/*
 * runner.c: the runner seam (runner.h): the table of runner kinds and the calls that dispatch to
 * them, and what every kind shares: `{plex_dir}` / `{mkplex}` substitution with shell quoting,
 * the redaction of a command line for the logs, the default mkplex.
 * Role: engine/runner, used by the agent (engine/run/agent.c). Prerequisites: POSIX.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "runner.h"
#include "runner_plex.h"

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

/* ---------------------------------------------------------------------------------------- */
/* Redaction: the line split shell-like (never executed), each argument judged on its own      */

/* Case-insensitive: does s[0..n) contain a word that names a secret? ("pass" covers password,
 * passwd, passphrase.) */
static int looks_secret(const char *s, size_t n)
{
    static const char *const words[] = {"token",   "secret",     "pass",   "pwd",    "apikey",
                                        "api-key", "api_key",    "key=",   "auth",   "credential",
                                        "bearer",  "access_key", "cookie", "private"};
    for (size_t w = 0; w < sizeof(words) / sizeof(*words); w++) {
        size_t wl = strlen(words[w]);
        for (size_t i = 0; i + wl <= n; i++)
            if (strncasecmp(s + i, words[w], wl) == 0)
                return 1;
    }
    return 0;
}

/* A KEY (of KEY=value, --KEY=value or a query parameter) that names a secret. */
static int secret_key(const char *s, size_t n)
{
    return looks_secret(s, n) || (n >= 3 && strncasecmp(s + n - 3, "key", 3) == 0);
}

/* An option whose value is a secret: -p, or a name that names one (--apikey, --token, --key). */
static int secret_option(const char *w)
{
    const char *name = w + strspn(w, "-");
    return strcmp(w, "-p") == 0 || secret_key(name, strlen(name));
}

typedef struct {
    char *s;
    size_t n, cap; /* cap: room, NUL included; what does not fit is dropped */
} outbuf;

static void put(outbuf *o, const char *s, size_t len)
{
    if (o->n + 1 >= o->cap)
        return;
    if (len > o->cap - 1 - o->n)
        len = o->cap - 1 - o->n;
    memcpy(o->s + o->n, s, len);
    o->n += len;
    o->s[o->n] = '\0';
}

static void puts_(outbuf *o, const char *s)
{
    put(o, s, strlen(s));
}

#define SECRET "<secret>"

static void redact_value(outbuf *o, const char *w);

/* `scheme://user:PW@host/path?k=v#f`: the password of the userinfo, the values of parameters
 * that name a secret; the whole URL when its host or path names one. */
static void redact_url(outbuf *o, const char *w, const char *sep)
{
    const char *auth = sep + 3, *end = auth + strcspn(auth, "/?#");
    const char *at = NULL, *colon = NULL;
    for (const char *p = auth; p < end; p++)
        if (*p == '@')
            at = p;
    const char *host = at ? at + 1 : auth, *rest = host + strcspn(host, "?#");
    if (looks_secret(host, (size_t)(rest - host))) {
        puts_(o, SECRET);
        return;
    }
    put(o, w, (size_t)(auth - w));
    if (at) {
        colon = memchr(auth, ':', (size_t)(at - auth));
        put(o, auth, (size_t)((colon ? colon : at) - auth));
        puts_(o, colon ? ":" SECRET "@" : "@");
    }
    put(o, host, (size_t)(rest - host));
    while (*rest) {
        put(o, rest, 1); /* ? # & ; */
        rest++;
        size_t pl = strcspn(rest, "&;#");
        const char *eq = memchr(rest, '=', pl);
        if (eq && (secret_key(rest, (size_t)(eq - rest)) || looks_secret(eq, pl - (eq - rest)))) {
            put(o, rest, (size_t)(eq - rest) + 1);
            puts_(o, SECRET);
        } else if (!eq && looks_secret(rest, pl)) {
            puts_(o, SECRET);
        } else {
            put(o, rest, pl);
        }
        rest += pl;
    }
}

/* One value: a URL, KEY=value, a header `Name: value`, or a plain word masked whole. */
static void redact_value(outbuf *o, const char *w)
{
    const char *sep = strstr(w, "://");
    size_t sl = strspn(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
    if (sep && sl && w + sl == sep) {
        redact_url(o, w, sep);
        return;
    }
    size_t kl = strspn(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-");
    if (kl && w[kl] == '=') {
        put(o, w, kl + 1);
        if (secret_key(w, kl))
            puts_(o, SECRET);
        else
            redact_value(o, w + kl + 1);
        return;
    }
    if (kl && w[kl] == ':' && (w[kl + 1] == ' ' || w[kl + 1] == '\t') &&
        looks_secret(w, strlen(w))) {
        put(o, w, kl + 1);
        puts_(o, " " SECRET);
        return;
    }
    puts_(o, looks_secret(w, strlen(w)) ? SECRET : w);
}

/* An argument: `--opt=value` keeps the option, other options are kept whole. */
static void redact_arg(outbuf *o, const char *w)
{
    const char *eq = strchr(w, '=');
    if (w[0] == '-' && w[1] && eq) {
        size_t dashes = strspn(w, "-");
        put(o, w, (size_t)(eq - w) + 1);
        if (secret_key(w + dashes, (size_t)(eq - w) - dashes))
            puts_(o, SECRET);
        else
            redact_value(o, eq + 1);
    } else if (w[0] == '-' && w[1]) {
        puts_(o, w);
    } else {
        redact_value(o, w);
    }
}

/* Appends a redacted word, single-quoted when it holds anything /bin/sh would read (the marker
 * aside). */
static void put_word(outbuf *o, const char *w)
{
    static const char safe[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                               "_@%+=:,./-";
    int quote = !*w;
    for (const char *p = w; *p && !quote;)
        if (strncmp(p, SECRET, 8) == 0)
            p += 8;
        else if (!strchr(safe, *p++))
            quote = 1;
    if (!quote) {
        puts_(o, w);
        return;
    }
    puts_(o, "'");
    for (const char *p = w; *p; p++)
        if (*p == '\'')
            puts_(o, "'\\''");
        else
            put(o, p, 1);
    puts_(o, "'");
}

/* Next token of `*pp` into tok (as the shell would read it: quotes and backslashes removed).
 * Returns 0 at the end, 'w' for a word, 'o' for an operator that starts a new command, 'r' for
 * a redirection. */
static int next_token(const char **pp, char *tok)
{
    const char *p = *pp;
    size_t n = 0;
    p += strspn(p, " \t");
    if (!*p)
        return 0;
    if (strchr(";&|()\n", *p) || strchr("<>", *p)) {
        int kind = strchr("<>", *p) ? 'r' : 'o';
        size_t l = strspn(p, kind == 'r' ? "<>&" : ";&|()\n");
        memcpy(tok, p, l);
        tok[l] = '\0';
        for (size_t i = 0; i < l; i++)
            if (tok[i] == '\n')
                tok[i] = ';';
        *pp = p + l;
        return kind;
    }
    while (*p && !strchr(" \t\n;&|()<>", *p)) {
        if (*p == '\'') {
            for (p++; *p && *p != '\''; p++)
                tok[n++] = *p;
            if (*p)
                p++;
        } else if (*p == '"') {
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && p[1] && strchr("\"\\$`\n", p[1]))
                    p++;
                tok[n++] = *p;
            }
            if (*p)
                p++;
        } else if (*p == '\\' && p[1]) {
            tok[n++] = p[1];
            p += 2;
        } else {
            tok[n++] = *p++;
        }
    }
    tok[n] = '\0';
    *pp = p;
    return 'w';
}

void pb_runner_redact(char *out, size_t cap, const char *cmdline)
{
    outbuf o = {out, 0, cap};
    if (!cap)
        return;
    out[0] = '\0';
    size_t len = strlen(cmdline);
    char *tok = malloc(len + 1), *word = malloc(9 * len + 16);
    if (!tok || !word) {
        puts_(&o, SECRET);
        goto done;
    }
    outbuf wo = {word, 0, 9 * len + 16};
    int kind, at_start = 1, mask_next = 0;
    for (const char *p = cmdline; (kind = next_token(&p, tok)) != 0;) {
        if (o.n)
            puts_(&o, " ");
        if (kind != 'w') {
            puts_(&o, tok);
            at_start = at_start || kind == 'o';
            mask_next = 0;
            continue;
        }
        wo.n = 0;
        word[0] = '\0';
        size_t kl = strspn(tok, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
        if (at_start && kl && tok[kl] == '=') {
            redact_value(&wo, tok); /* an assignment before the command */
        } else if (at_start) {
            puts_(&wo, tok); /* argv[0] */
            at_start = 0;
        } else if (mask_next) {
            puts_(&wo, SECRET);
            mask_next = 0;
        } else {
            redact_arg(&wo, tok);
            mask_next = tok[0] == '-' && tok[1] && !strchr(tok, '=') && secret_option(tok);
        }
        put_word(&o, word);
    }
done:
    free(tok);
    free(word);
}

#undef SECRET

void pb_runner_redact_text(char *out, size_t cap, const char *text)
{
    size_t n = 0;
    if (!cap)
        return;
    for (const char *p = text; *p && n + 1 < cap;) {
        /* a key: [A-Za-z0-9_.-]+ followed by '=' or ':' */
        size_t k = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-");
        if (k && (p[k] == '=' || p[k] == ':') && secret_key(p, k)) {
            const char *v = p + k + 1;
            v += strspn(v, " ");
            size_t vl = strcspn(v, " \t&\"',;");
            if (vl && (strncasecmp(v, "Bearer", vl) == 0 || strncasecmp(v, "Basic", vl) == 0) &&
                v[vl] == ' ') { /* an Authorization scheme: the credential follows */
                v += vl + 1;
                vl = strcspn(v, " \t&\"',;");
            }
            int w = snprintf(out + n, cap - n, "%.*s<secret>", (int)(v - p), p);
            n = w < 0 || (size_t)w >= cap - n ? cap - 1 : n + (size_t)w;
            p = v + vl;
            continue;
        }
        if (!k)
            k = 1;
        for (size_t i = 0; i < k && n + 1 < cap; i++)
            out[n++] = p[i];
        p += k;
    }
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

static const pb_runner_ops *const kinds[] = {&pb_runner_command_ops, &pb_runner_plex_ops};

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
    if (!ops)
        return pb_error_set(err, PB_EINVALID, "runner: unknown kind '%s' (command, plex)", kind);
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
    /* `--runner plex` reaches the agent as the command line "plex": the plex runner (both kinds
     * share their files, so state, follow and stop are the same) */
    if (r->ops == &pb_runner_command_ops && spec && strcmp(spec, "plex") == 0)
        return pb_runner_plex_ops.start(r, spec, shown, cap, err);
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

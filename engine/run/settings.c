/*
 * settings.c: the effective configuration for the command line (plexburst/settings.h): the
 * layered files and the environment loaded by config.c, each setting listed with its value as
 * shown (secrets masked) and where it came from.
 * Role: `plexburst config`, the check of `--config FILE` by every command, and the settings
 * `plexburst check` reads. Prerequisites: config.c (the table of settings, the files' reader),
 * runner.h (pb_runner_redact for commands and URLs).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "plexburst/settings.h"
#include "runner.h"

extern char **environ;

#define MASK "********"

/* Credentials of the cloud and the store read from the environment by their own names. */
static const char *const foreign[] = {
    "SCW_ACCESS_KEY",
    "SCW_SECRET_KEY",
    "SCW_DEFAULT_PROJECT_ID",
    "SCW_DEFAULT_ORGANIZATION_ID",
    "SCW_DEFAULT_ZONE",
    "SCW_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    NULL,
};

const char *pb_settings_source_name(pb_settings_source s)
{
    switch (s) {
    case PB_SETTINGS_FROM_SYSTEM:
        return "system";
    case PB_SETTINGS_FROM_USER:
        return "user";
    case PB_SETTINGS_FROM_FILE:
        return "--config";
    case PB_SETTINGS_FROM_ENV:
        return "environment";
    case PB_SETTINGS_FROM_DEFAULT:
        return "default";
    default:
        return "unset";
    }
}

/* A notification URL carries its credential in its path (a ping UUID, a topic): only the
 * scheme and the host are shown. */
static void mask_url(char *out, size_t cap, const char *v)
{
    const char *host = strstr(v, "://");
    host = host ? host + 3 : v;
    const char *at = strchr(host, '@'), *slash = strchr(host, '/');
    if (at && (!slash || at < slash))
        host = at + 1;
    size_t hn = strcspn(host, "/?#");
    const char *scheme_end = strstr(v, "://");
    int sn = scheme_end ? (int)(scheme_end - v) + 3 : 0;
    snprintf(out, cap, "%.*s%.*s%s", sn, v, (int)hn, host, host[hn] ? "/" MASK : "");
}

/* 1 when a query parameter's name (n bytes) names a credential. */
static int secret_param(const char *name, size_t n)
{
    static const char *const words[] = {"token", "key", "secret", "pass", "auth", "sig", "cred"};
    char low[64];
    if (n >= sizeof(low))
        return 1;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    low[n] = '\0';
    for (size_t i = 0; i < sizeof(words) / sizeof(*words); i++)
        if (strstr(low, words[i]))
            return 1;
    return 0;
}

/* A URL with the password of its userinfo and the values of credential parameters masked. */
static void redact_url(char *out, size_t cap, const char *v)
{
    size_t n = 0;
    const char *host = strstr(v, "://") + 3, *p = v;
    const char *at = strchr(host, '@'), *end = host + strcspn(host, "/?#");
    const char *colon = at && at < end ? memchr(host, ':', (size_t)(at - host)) : NULL;
#define PUT(s, len)                                                                                \
    do {                                                                                           \
        size_t l_ = (len);                                                                         \
        if (n + l_ + 1 > cap)                                                                      \
            l_ = n + 1 < cap ? cap - n - 1 : 0;                                                    \
        memcpy(out + n, (s), l_);                                                                  \
        n += l_;                                                                                   \
    } while (0)
    if (colon) {
        PUT(p, (size_t)(colon - p) + 1);
        PUT(MASK, strlen(MASK));
        p = at;
    }
    const char *q = strchr(p, '?');
    if (!q) {
        PUT(p, strlen(p));
    } else {
        PUT(p, (size_t)(q - p) + 1);
        for (q++; *q;) {
            size_t pn = strcspn(q, "&#"), kn = strcspn(q, "=&#");
            if (kn < pn && secret_param(q, kn)) {
                PUT(q, kn + 1);
                PUT(MASK, strlen(MASK));
            } else {
                PUT(q, pn);
            }
            q += pn;
            if (*q == '&')
                PUT(q++, 1);
            else if (*q) {
                PUT(q, strlen(q));
                break;
            }
        }
    }
#undef PUT
    out[n] = '\0';
}

/* The value as shown. */
static void shown(char *out, size_t cap, const char *key, const char *v, int *secret)
{
    size_t kl = strlen(key);
    *secret = pb_config_is_secret(key);
    if (*secret)
        snprintf(out, cap, "%s", MASK);
    else if (kl > 4 && !strcmp(key + kl - 4, "_URL") && strstr(key, "NOTIFY"))
        mask_url(out, cap, v);
    else if (strstr(v, "://") && !strpbrk(v, " \t"))
        redact_url(out, cap, v);
    else
        pb_runner_redact(out, cap, v); /* credentials in commands and the URLs in them */
}

static int add(pb_settings_list *l, size_t *cap, const pb_config *c, const char *key, int unknown)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i].key, key) == 0)
            return 0;
    if (l->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        pb_settings_item *p = realloc(l->items, nc * sizeof(*p));
        if (!p)
            return PB_ENOMEM;
        l->items = p;
        *cap = nc;
    }
    pb_settings_item *it = &l->items[l->n];
    memset(it, 0, sizeof(*it));
    const char *file = NULL, *v = pb_config_get(c, key);
    pb_config_layer from = pb_config_origin(c, key, &file, &it->line);
    it->source = (pb_settings_source)from;
    it->unknown = unknown;
    if (!v && from == PB_CONFIG_DEFAULT)
        v = pb_config_default(key);
    char buf[4096];
    if (v)
        shown(buf, sizeof(buf), key, v, &it->secret);
    else
        it->secret = pb_config_is_secret(key);
    l->n++; /* counted now: dispose frees what was set */
    if (!(it->key = strdup(key)) || (v && !(it->value = strdup(buf))) ||
        (file && !(it->file = strdup(file))))
        return PB_ENOMEM;
    return 0;
}

static int list_all(pb_settings_list *l, const pb_config *c)
{
    size_t cap = 0;
    int error = 0;
    for (size_t i = 0; !error && pb_config_known(i); i++)
        if (strcmp(pb_config_known(i), "PLEXBURST_CONFIG") != 0) /* the file itself: above */
            error = add(l, &cap, c, pb_config_known(i), 0);
    for (size_t i = 0; !error && pb_config_key(c, i); i++)
        error = add(l, &cap, c, pb_config_key(c, i), 0);
    for (size_t i = 0; !error && foreign[i]; i++)
        if (getenv(foreign[i]) && *getenv(foreign[i]))
            error = add(l, &cap, c, foreign[i], 0);
    for (char **e = environ; !error && e && *e; e++) {
        size_t kn = strcspn(*e, "=");
        char key[128];
        if (strncmp(*e, "PLEXBURST_", 10) != 0 || kn >= sizeof(key) || !(*e)[kn + 1])
            continue;
        memcpy(key, *e, kn);
        key[kn] = '\0';
        /* the two that name files, not settings */
        int known = !strcmp(key, "PLEXBURST_SYSCONFDIR") || !strcmp(key, "PLEXBURST_CONFIG");
        for (size_t i = 0; pb_config_known(i) && !known; i++)
            known = strcmp(pb_config_known(i), key) == 0;
        if (!known)
            error = add(l, &cap, c, key, 1);
    }
    return error;
}

/* The configuration: the files and the environment, checked. */
static int load(pb_config **c, const char *config_file, pb_error *err)
{
    if (!config_file)
        config_file = getenv("PLEXBURST_CONFIG");
    int error = pb_config_load(c, config_file && *config_file ? config_file : NULL, err);
    if (error == 0 && (error = pb_config_check_env(err)) < 0) {
        pb_config_free(*c);
        *c = NULL;
    }
    return error;
}

int pb_settings_load(pb_settings_list *out, const char *config_file, pb_error *err)
{
    pb_config *c = NULL;
    int error;
    memset(out, 0, sizeof(*out));
    if ((error = load(&c, config_file, err)) < 0)
        return error;
    char where[PATH_MAX];
    const char *given = config_file ? config_file : getenv("PLEXBURST_CONFIG");
    for (int i = 0; i < 3; i++) {
        const char *p = i == 2 ? (given && *given ? given : NULL)
                               : pb_config_path((pb_config_layer)i, where, sizeof(where));
        if (p && !(out->paths[i] = strdup(p))) {
            error = pb_error_set(err, PB_ENOMEM, "config: out of memory");
            goto done;
        }
    }
    if ((error = list_all(out, c)) < 0) {
        error = pb_error_set(err, PB_ENOMEM, "config: out of memory");
        goto done;
    }
    for (int i = 0; i < 3; i++)
        out->read[i] = pb_config_file(c, (pb_config_layer)i) != NULL;
done:
    if (error < 0)
        pb_settings_list_dispose(out);
    pb_config_free(c);
    return error;
}

void pb_settings_list_dispose(pb_settings_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].key);
        free(l->items[i].value);
        free(l->items[i].file);
    }
    free(l->items);
    for (int i = 0; i < 3; i++)
        free(l->paths[i]);
    memset(l, 0, sizeof(*l));
}

int pb_settings_check(const char *config_file, pb_error *err)
{
    pb_config *c = NULL;
    int error = load(&c, config_file, err);
    pb_config_free(c);
    return error;
}

int pb_settings_get(char **out, const char *key, const char *config_file, pb_error *err)
{
    pb_config *c = NULL;
    *out = NULL;
    int error = load(&c, config_file, err);
    if (error < 0)
        return error;
    const char *v = pb_config_get(c, key);
    if (v && !(*out = strdup(v)))
        error = pb_error_set(err, PB_ENOMEM, "config: out of memory");
    pb_config_free(c);
    return error;
}

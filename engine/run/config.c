/*
 * config.c: `.env`-style configuration files and the environment (PLEXBURST_*), the settings of a
 * run resolved from them (defaults included), and the plex_libraries.json reader (config.h).
 * Role: the runs (engine/run/run.c) fill unset options from here. Prerequisites: jansson.
 * The file is small and read once; values are kept in a flat list.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <jansson.h>

#include "config.h"
#include "plexburst/number.h"
#include "plexburst/settings.h"
#include "runner.h"
#include "plexburst/plexmerge.h"

#ifndef PB_SYSCONFDIR
#define PB_SYSCONFDIR "/etc" /* the system file: PB_SYSCONFDIR/plexburst/plexburst.env */
#endif

typedef struct kv {
    char *key, *value;
    const char *file; /* the file that set it (one of the config's paths) */
    unsigned line;
    pb_config_layer layer;
} kv;

struct pb_config {
    kv *v;
    size_t n, cap;
    char *paths[3]; /* the files read, by layer (system, user, --config); NULL: none */
};

void pb_config_free(pb_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->v[i].key);
        free(c->v[i].value);
    }
    for (size_t i = 0; i < 3; i++)
        free(c->paths[i]);
    free(c->v);
    free(c);
}

static int set(pb_config *c, const char *key, size_t kn, const char *val, const char *file,
               unsigned line, pb_config_layer layer)
{
    for (size_t i = 0; i < c->n; i++)
        if (strlen(c->v[i].key) == kn && strncmp(c->v[i].key, key, kn) == 0) {
            char *v = strdup(val);
            if (!v)
                return PB_ENOMEM;
            free(c->v[i].value);
            c->v[i].value = v; /* the last assignment wins, as in a shell; later files too */
            c->v[i].file = file;
            c->v[i].line = line;
            c->v[i].layer = layer;
            return 0;
        }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        kv *p = realloc(c->v, cap * sizeof(*p));
        if (!p)
            return PB_ENOMEM;
        c->v = p;
        c->cap = cap;
    }
    c->v[c->n].key = strndup(key, kn);
    c->v[c->n].value = strdup(val);
    if (!c->v[c->n].key || !c->v[c->n].value) {
        free(c->v[c->n].key);
        free(c->v[c->n].value);
        return PB_ENOMEM;
    }
    c->v[c->n].file = file;
    c->v[c->n].line = line;
    c->v[c->n].layer = layer;
    c->n++;
    return 0;
}

/* Parses the value part of a line into out (cap bytes); returns NULL or an error text. */
static const char *parse_value(const char *p, char *out, size_t cap)
{
    size_t n = 0;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '"' || *p == '\'') {
        char q = *p++;
        while (*p && *p != q) {
            char c = *p++;
            if (q == '"' && c == '\\' && *p) {
                c = *p++;
                c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
            }
            if (n + 1 >= cap)
                return "value too long";
            out[n++] = c;
        }
        if (*p != q)
            return "unterminated quote";
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p && *p != '#')
            return "text after the closing quote";
    } else {
        const char *end = p;
        while (*end && !(*end == '#' && end > p && (end[-1] == ' ' || end[-1] == '\t')))
            end++;
        while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if ((size_t)(end - p) + 1 > cap)
            return "value too long";
        memcpy(out, p, (size_t)(end - p));
        n = (size_t)(end - p);
    }
    out[n] = '\0';
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* The known settings: one table for the check of a file's keys and the parse of the numbers    */

typedef enum { SET_TEXT, SET_INT, SET_NUMBER } set_kind;

static const struct setting {
    const char *name;
    set_kind kind;
    double lo, hi; /* SET_INT and SET_NUMBER */
} settings[] = {
    {"PLEXBURST_PLEX_DIR", SET_TEXT, 0, 0},
    {"PLEXBURST_STATE_DIR", SET_TEXT, 0, 0},
    {"PLEXBURST_CLOUD", SET_TEXT, 0, 0},
    {"PLEXBURST_STORE", SET_TEXT, 0, 0},
    {"PLEXBURST_RUNNER", SET_TEXT, 0, 0},
    {"PLEXBURST_PLEX_STOP_CMD", SET_TEXT, 0, 0},
    {"PLEXBURST_PLEX_START_CMD", SET_TEXT, 0, 0},
    {"PLEXBURST_ONLINE", SET_TEXT, 0, 0},
    {"PLEXBURST_MAX_DELETE_PCT", SET_NUMBER, 0, 100},
    {"PLEXBURST_PATH_MAP", SET_TEXT, 0, 0},
    {"PLEXBURST_PLEX_LIBRARIES", SET_TEXT, 0, 0},
    {"PLEXBURST_CONFIG", SET_TEXT, 0, 0},
    {"PLEXBURST_AGENT", SET_TEXT, 0, 0},
    {"PLEXBURST_MKPLEX", SET_TEXT, 0, 0},
    {"PLEXBURST_FAULT", SET_TEXT, 0, 0},
    {"PLEXBURST_PLEX_SQLITE", SET_TEXT, 0, 0},
    {"PLEXBURST_KNOWN_HOSTS", SET_TEXT, 0, 0},
    {"PLEXBURST_SSH_KEY", SET_TEXT, 0, 0},
    {"PLEXBURST_SSH_KEY_PASSPHRASE", SET_TEXT, 0, 0},
    {"PLEXBURST_SSH_HOST_KEY", SET_TEXT, 0, 0},
    {"PLEXBURST_SSH_AGENT", SET_TEXT, 0, 0},
    {"PLEXBURST_SSH_TOFU", SET_TEXT, 0, 0},
    {"PLEXBURST_SSH_USE_USER_KNOWN_HOSTS", SET_TEXT, 0, 0},
    {"PLEXBURST_SSH_KEEPALIVE", SET_INT, 0, 3600},
    {"PLEXBURST_SSH_RECONNECT_TRIES", SET_INT, 0, 3600},
    {"PLEXBURST_S3_ENDPOINT", SET_TEXT, 0, 0},
    {"PLEXBURST_S3_REGION", SET_TEXT, 0, 0},
    {"PLEXBURST_S3_ACCESS_KEY", SET_TEXT, 0, 0},
    {"PLEXBURST_S3_SECRET_KEY", SET_TEXT, 0, 0},
    {"PLEXBURST_S3_PART_SIZE", SET_TEXT, 0, 0},
    {"PLEXBURST_S3_MULTIPART_THRESHOLD", SET_TEXT, 0, 0},
    {"PLEXBURST_S3_RETRIES", SET_INT, 1, 20},
    {"PLEXBURST_S3_LIST_MAX_KEYS", SET_INT, 1, 1000},
    /* the plex runner (engine/runner/runner_plex*.c, docs/plex-runner.md), read on the cloud */
    {"PLEXBURST_MEDIA", SET_TEXT, 0, 0},
    {"PLEXBURST_MEDIA_MOUNT", SET_TEXT, 0, 0},
    {"PLEXBURST_MEDIA_SENTINEL", SET_TEXT, 0, 0},
    {"PLEXBURST_MEDIA_S3_ENDPOINT", SET_TEXT, 0, 0},
    {"PLEXBURST_MEDIA_S3_REGION", SET_TEXT, 0, 0},
    {"PLEXBURST_MEDIA_S3_ACCESS_KEY", SET_TEXT, 0, 0},
    {"PLEXBURST_MEDIA_S3_SECRET_KEY", SET_TEXT, 0, 0},
    {"PLEXBURST_MEDIA_S3_PROVIDER", SET_TEXT, 0, 0},
    {"PLEXBURST_MEDIA_CACHE_DIR", SET_TEXT, 0, 0},
    {"PLEXBURST_MEDIA_UID", SET_INT, 0, 4294967294.0},
    {"PLEXBURST_MEDIA_GID", SET_INT, 0, 4294967294.0},
    {"PLEXBURST_MEDIA_RCLONE_FLAGS", SET_TEXT, 0, 0},
    {"PLEXBURST_MEDIA_TIMEOUT", SET_NUMBER, 1, 3600},
    {"PLEXBURST_CLOUD_PLEX_START", SET_TEXT, 0, 0},
    {"PLEXBURST_CLOUD_PLEX_STOP", SET_TEXT, 0, 0},
    {"PLEXBURST_CLOUD_PLEX_PORT", SET_INT, 1, 65535},
    {"PLEXBURST_PLEX_VERSION", SET_TEXT, 0, 0},
    {"PLEXBURST_PLEX_URL", SET_TEXT, 0, 0},
    {"PLEXBURST_PLEX_CLAIM", SET_TEXT, 0, 0},
    {"PLEXBURST_PLEX_SCANNER_CMD", SET_TEXT, 0, 0},
    {"PLEXBURST_PLEX_START_TIMEOUT", SET_NUMBER, 1, 86400},
    {"PLEXBURST_ANALYSIS", SET_TEXT, 0, 0},
    {"PLEXBURST_IDLE_SECONDS", SET_NUMBER, 0, 86400},
    {"PLEXBURST_PHASE_TIMEOUT", SET_NUMBER, 1, 604800},
    {"PLEXBURST_PROGRESS_SECONDS", SET_NUMBER, 0.1, 3600},
    /* the scaleway cloud (engine/cloud/cloud_scaleway*.c, docs/scaleway.md) */
    {"PLEXBURST_SCW_TYPE", SET_TEXT, 0, 0},
    {"PLEXBURST_SCW_PROFILE", SET_TEXT, 0, 0},
    {"PLEXBURST_SCW_IMAGE", SET_TEXT, 0, 0},
    {"PLEXBURST_SCW_ROOT_GB", SET_INT, 10, 10000},
    {"PLEXBURST_SCW_SSH_PORT", SET_INT, 1, 65535},
    {"PLEXBURST_SCW_SSH_USER", SET_TEXT, 0, 0},
    {"PLEXBURST_SCW_POLL_MS", SET_INT, 10, 60000},
    {"PLEXBURST_SCW_BACKOFF_MAX_MS", SET_INT, 10, 300000},
    {"PLEXBURST_SCW_API_TIMEOUT_S", SET_INT, 1, 3600},
    {"PLEXBURST_SCW_BOOT_TIMEOUT_S", SET_INT, 1, 3600},
    {"PLEXBURST_SCW_SSH_TIMEOUT_S", SET_INT, 1, 3600},
    {"PLEXBURST_SCW_SELFDESTRUCT_APP", SET_TEXT, 0, 0},
    {"PLEXBURST_CLOUD_DIR", SET_TEXT, 0, 0},
    {"PLEXBURST_MAX_HOURS", SET_NUMBER, 0.001, 720},
    {"PLEXBURST_MAX_COST", SET_NUMBER, 0, 1000000},
    /* what a run tells the world (cli/progress.c, engine/run/notify.c; docs/cli.md) */
    {"PLEXBURST_NOTIFY_URL", SET_TEXT, 0, 0},
    {"PLEXBURST_HEARTBEAT_S", SET_NUMBER, 0.1, 86400},
};

static const struct setting *find_setting(const char *key, size_t kn)
{
    for (size_t i = 0; i < sizeof(settings) / sizeof(*settings); i++)
        if (strlen(settings[i].name) == kn && strncmp(settings[i].name, key, kn) == 0)
            return &settings[i];
    return NULL;
}

/* Edit distance of a and b (at most 63 bytes each; longer: far). */
static size_t distance(const char *a, size_t an, const char *b)
{
    size_t bn = strlen(b), row[64];
    if (an >= 64 || bn >= 64)
        return SIZE_MAX;
    for (size_t j = 0; j <= bn; j++)
        row[j] = j;
    for (size_t i = 1; i <= an; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= bn; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[bn];
}

/* The known name closest to key, or NULL when none is within 3 edits. */
static const char *closest(const char *key, size_t kn)
{
    const char *best = NULL;
    size_t bd = 4;
    for (size_t i = 0; i < sizeof(settings) / sizeof(*settings); i++) {
        size_t d = distance(key, kn, settings[i].name);
        if (d < bd) {
            bd = d;
            best = settings[i].name;
        }
    }
    return best;
}

int pb_config_number(double *out, const char *key, const char *value, pb_error *err)
{
    const struct setting *st = find_setting(key, strlen(key));
    int whole = !st || st->kind == SET_INT;
    double lo = st ? st->lo : 0, hi = st ? st->hi : INT_MAX;
    if (pb_number_parse(out, value, whole, lo, hi) < 0)
        return pb_error_set(err, PB_EINVALID, "%s: expected a decimal %s in %g..%g, not '%s'", key,
                            whole ? "whole number" : "number", lo, hi, value);
    return 0;
}

/* A key of a file: an unknown PLEXBURST_* name or a malformed number is an error. */
static int check_key(const char *path, unsigned lineno, const char *key, size_t kn, const char *val,
                     pb_error *err)
{
    if (kn < 10 || strncmp(key, "PLEXBURST_", 10) != 0)
        return 0;
    const struct setting *st = find_setting(key, kn);
    if (!st) {
        const char *near = closest(key, kn);
        return pb_error_set(err, PB_EINVALID, "config: %s:%u: unknown setting %.*s%s%s%s", path,
                            lineno, (int)kn, key, near ? " (did you mean " : "", near ? near : "",
                            near ? "?)" : "");
    }
    double v;
    pb_error e = PB_ERROR_INIT;
    if (st->kind != SET_TEXT && *val && pb_config_number(&v, st->name, val, &e) < 0)
        return pb_error_set(err, PB_EINVALID, "config: %s:%u: %s", path, lineno, e.msg);
    return 0;
}

/* One line of a file: KEY=value into c, or an error naming the file and the line. */
static int load_line(pb_config *c, char *p, char *val, pb_config_layer layer, unsigned lineno,
                     pb_error *err)
{
    const char *path = c->paths[layer];
    size_t l = strlen(p);
    while (l && (p[l - 1] == '\n' || p[l - 1] == '\r'))
        p[--l] = '\0';
    while (*p == ' ' || *p == '\t')
        p++;
    if (!*p || *p == '#')
        return 0;
    if (strncmp(p, "export ", 7) == 0)
        p += 7;
    while (*p == ' ')
        p++;
    const char *key = p;
    while (isalnum((unsigned char)*p) || *p == '_')
        p++;
    size_t kn = (size_t)(p - key);
    if (kn == 0 || isdigit((unsigned char)key[0]) || *p != '=')
        return pb_error_set(err, PB_EINVALID, "config: %s:%u: expected KEY=value", path, lineno);
    const char *why = parse_value(p + 1, val, 8192);
    if (why)
        return pb_error_set(err, PB_EINVALID, "config: %s:%u: %s", path, lineno, why);
    int error = check_key(path, lineno, key, kn, val, err);
    if (error < 0)
        return error;
    if (set(c, key, kn, val, path, lineno, layer) != 0)
        return pb_error_set(err, PB_ENOMEM, "config: out of memory");
    return 0;
}

/* Reads one layer's file (its path already in c->paths[layer]). A missing optional file
 * (system, user) is no error: its path is dropped. */
static int load_file(pb_config *c, pb_config_layer layer, int optional, pb_error *err)
{
    int error = 0;
    char *line = NULL, *val = NULL;
    size_t lcap = 0;
    const char *path = c->paths[layer];
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT && optional) {
            free(c->paths[layer]);
            c->paths[layer] = NULL;
            return 0;
        }
        if (errno == ENOENT)
            return pb_error_set(err, PB_ENOTFOUND, "config: no file %s", path);
        if (errno == EACCES) /* it holds keys: root only, or root and Plex's group */
            return pb_error_errno(err,
                                  "config: cannot read %s (let this user's group read it: chgrp "
                                  "GROUP %s && chmod 640 %s)",
                                  path, path, path);
        return pb_error_errno(err, "config: cannot read %s", path);
    }
    if (!(val = malloc(8192))) {
        error = pb_error_set(err, PB_ENOMEM, "config: out of memory");
        goto done;
    }
    unsigned lineno = 1;
    for (errno = 0; getline(&line, &lcap, f) >= 0; lineno++, errno = 0)
        if ((error = load_line(c, line, val, layer, lineno, err)) < 0)
            goto done;
    if (ferror(f)) /* a directory, an I/O error */
        error = pb_error_set(err, PB_EIO, "config: cannot read %s: %s", path,
                             strerror(errno ? errno : EIO));
done:
    free(val);
    free(line);
    fclose(f);
    return error;
}

const char *pb_config_path(pb_config_layer layer, char *buf, size_t cap)
{
    const char *dir = NULL, *sub = "";
    buf[0] = '\0';
    if (layer == PB_CONFIG_SYSTEM) {
        dir = getenv("PLEXBURST_SYSCONFDIR");
        if (!dir || !*dir)
            dir = PB_SYSCONFDIR;
    } else if (layer == PB_CONFIG_USER) {
        dir = getenv("XDG_CONFIG_HOME");
        if (!dir || dir[0] != '/') { /* unset, empty or relative: the XDG default */
            dir = getenv("HOME");
            sub = "/.config";
            if (!dir || !*dir)
                return NULL;
        }
    } else {
        return NULL;
    }
    int n = snprintf(buf, cap, "%s%s/plexburst/plexburst.env", dir, sub);
    return n > 0 && (size_t)n < cap ? buf : NULL;
}

int pb_config_load(pb_config **out, const char *path, pb_error *err)
{
    int error = 0;
    char where[PATH_MAX];
    pb_config *c = calloc(1, sizeof(*c));
    *out = NULL;
    if (!c)
        return pb_error_set(err, PB_ENOMEM, "config: out of memory");
    for (int layer = PB_CONFIG_SYSTEM; layer <= PB_CONFIG_FILE; layer++) {
        const char *p =
            layer == PB_CONFIG_FILE ? path : pb_config_path(layer, where, sizeof(where));
        if (!p || !*p)
            continue;
        if (!(c->paths[layer] = strdup(p))) {
            error = pb_error_set(err, PB_ENOMEM, "config: out of memory");
            goto done;
        }
        if ((error = load_file(c, layer, layer != PB_CONFIG_FILE, err)) < 0)
            goto done;
    }
    *out = c;
    c = NULL;
done:
    pb_config_free(c);
    return error;
}

const char *pb_config_get(const pb_config *c, const char *key)
{
    const char *e = getenv(key);
    if (e && *e)
        return e;
    for (size_t i = 0; c && i < c->n; i++)
        if (strcmp(c->v[i].key, key) == 0)
            return c->v[i].value[0] ? c->v[i].value : NULL;
    return NULL;
}

pb_config_layer pb_config_origin(const pb_config *c, const char *key, const char **file,
                                 unsigned *line)
{
    const char *e = getenv(key);
    *file = NULL;
    *line = 0;
    if (e && *e)
        return PB_CONFIG_ENV;
    for (size_t i = 0; c && i < c->n; i++)
        if (strcmp(c->v[i].key, key) == 0 && c->v[i].value[0]) {
            *file = c->v[i].file;
            *line = c->v[i].line;
            return c->v[i].layer;
        }
    return pb_config_default(key) ? PB_CONFIG_DEFAULT : PB_CONFIG_UNSET;
}

const char *pb_config_key(const pb_config *c, size_t i)
{
    return c && i < c->n ? c->v[i].key : NULL;
}

const char *pb_config_file(const pb_config *c, pb_config_layer layer)
{
    return c && layer >= PB_CONFIG_SYSTEM && layer <= PB_CONFIG_FILE ? c->paths[layer] : NULL;
}

const char *pb_config_known(size_t i)
{
    return i < sizeof(settings) / sizeof(*settings) ? settings[i].name : NULL;
}

int pb_config_check_env(pb_error *err)
{
    for (size_t i = 0; i < sizeof(settings) / sizeof(*settings); i++) {
        const char *v = getenv(settings[i].name);
        double d;
        pb_error e = PB_ERROR_INIT;
        if (settings[i].kind != SET_TEXT && v && *v &&
            pb_config_number(&d, settings[i].name, v, &e) < 0)
            return pb_error_set(err, PB_EINVALID, "environment: %s", e.msg);
    }
    return 0;
}

/* The defaults the code applies when a setting is unset (docs/cli.md lists them). */
static const struct {
    const char *name, *value;
} defaults[] = {
    {"PLEXBURST_CLOUD", "local"},
    {"PLEXBURST_ONLINE", "0"},
    {"PLEXBURST_MAX_DELETE_PCT", "5"},
    {"PLEXBURST_PLEX_URL", "http://127.0.0.1:32400"},
    {"PLEXBURST_MEDIA_MOUNT", "/mnt/plexburst-media"},
    {"PLEXBURST_MEDIA_TIMEOUT", "30"},
    {"PLEXBURST_CLOUD_PLEX_PORT", "32400"},
    {"PLEXBURST_PLEX_START_TIMEOUT", "300"},
    {"PLEXBURST_ANALYSIS", "scan,analyze,thumbnails,markers,loudness,sonic"},
    {"PLEXBURST_IDLE_SECONDS", "120"},
    {"PLEXBURST_PHASE_TIMEOUT", "21600"},
    {"PLEXBURST_PROGRESS_SECONDS", "60"},
    {"PLEXBURST_HEARTBEAT_S", "60"},
};

const char *pb_config_default(const char *key)
{
    for (size_t i = 0; i < sizeof(defaults) / sizeof(*defaults); i++)
        if (strcmp(defaults[i].name, key) == 0)
            return defaults[i].value;
    return NULL;
}

int pb_config_is_secret(const char *key)
{
    static const char *const words[] = {"SECRET",     "TOKEN", "PASSWORD", "PASSPHRASE",
                                        "ACCESS_KEY", "CLAIM", "PRIVATE"};
    for (size_t i = 0; i < sizeof(words) / sizeof(*words); i++)
        if (strstr(key, words[i]))
            return 1;
    return 0;
}

void pb_config_describe(const pb_config *c, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; c && i < c->n; i++) {
        const char *k = c->v[i].key;
        if (strncmp(k, "PLEXBURST_", 10) != 0)
            continue;
        const char *v = pb_config_is_secret(k) ? "<secret>" : pb_config_get(c, k);
        size_t kl = strlen(k);
        char cmd[1024];
        if (v && !pb_config_is_secret(k) &&
            (strcmp(k, "PLEXBURST_RUNNER") == 0 || (kl > 4 && !strcmp(k + kl - 4, "_CMD")))) {
            pb_runner_redact(cmd, sizeof(cmd), v); /* commands: as every runner line is shown */
            v = cmd;
        }
        int w = snprintf(out + n, n < cap ? cap - n : 0, "%s%s=%s", n ? ", " : "", k, v ? v : "");
        if (w < 0 || n + (size_t)w >= cap)
            break;
        n += (size_t)w;
    }
}

static int copy_str(char *dst, size_t cap, json_t *v, const char *field, size_t idx, pb_error *err)
{
    if (!v)
        return 0;
    if (!json_is_string(v) || json_string_length(v) >= cap)
        return pb_error_set(err, PB_EINVALID,
                            "plex_libraries.json: library %zu: \"%s\" must be a string of at most "
                            "%zu bytes",
                            idx, field, cap - 1);
    snprintf(dst, cap, "%s", json_string_value(v));
    return 0;
}

int pb_plex_libraries_load(pb_plex_library **out, size_t *n, const char *path, pb_error *err)
{
    int error = 0;
    json_error_t je;
    pb_plex_library *libs = NULL;
    *out = NULL;
    *n = 0;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        FILE *f = fopen(path, "r");
        if (!f)
            return pb_error_set(err, PB_ENOTFOUND, "plex_libraries.json: no file %s", path);
        fclose(f);
        return pb_error_set(err, PB_EINVALID, "plex_libraries.json: %s:%d: %s", path, je.line,
                            je.text);
    }
    json_t *arr = json_is_array(root) ? root : json_object_get(root, "libraries");
    if (!json_is_array(arr)) {
        error = pb_error_set(err, PB_EINVALID,
                             "plex_libraries.json: expected {\"libraries\": [...]} or an array");
        goto done;
    }
    size_t cnt = json_array_size(arr);
    libs = calloc(cnt ? cnt : 1, sizeof(*libs));
    if (!libs) {
        error = pb_error_set(err, PB_ENOMEM, "plex_libraries.json: out of memory");
        goto done;
    }
    for (size_t i = 0; i < cnt; i++) {
        json_t *e = json_array_get(arr, i);
        pb_plex_library *l = &libs[i];
        if (!json_is_object(e)) {
            error = pb_error_set(err, PB_EINVALID,
                                 "plex_libraries.json: library %zu is not an "
                                 "object",
                                 i);
            goto done;
        }
        /* the seed scripts' own file names it "title" */
        json_t *nm =
            json_object_get(e, "name") ? json_object_get(e, "name") : json_object_get(e, "title");
        if ((error = copy_str(l->name, sizeof(l->name), nm, "name", i, err)) < 0 ||
            (error = copy_str(l->type, sizeof(l->type), json_object_get(e, "type"), "type", i,
                              err)) < 0 ||
            (error = copy_str(l->agent, sizeof(l->agent), json_object_get(e, "agent"), "agent", i,
                              err)) < 0 ||
            (error = copy_str(l->scanner, sizeof(l->scanner), json_object_get(e, "scanner"),
                              "scanner", i, err)) < 0 ||
            (error = copy_str(l->language, sizeof(l->language), json_object_get(e, "language"),
                              "language", i, err)) < 0)
            goto done;
        if (!l->name[0] || !l->type[0]) {
            error =
                pb_error_set(err, PB_EINVALID,
                             "plex_libraries.json: library %zu needs \"name\" (or \"title\") and "
                             "\"type\"",
                             i);
            goto done;
        }
        json_t *locs = json_object_get(e, "locations");
        if (!locs)
            locs = json_object_get(e, "paths");
        json_t *one = json_object_get(e, "location");
        if (json_is_string(one)) {
            snprintf(l->locations[0], sizeof(l->locations[0]), "%s", json_string_value(one));
            l->nlocations = 1;
        } else if (json_is_array(locs)) {
            for (size_t k = 0; k < json_array_size(locs) && k < 8; k++) {
                if ((error = copy_str(l->locations[k], sizeof(l->locations[k]),
                                      json_array_get(locs, k), "locations", i, err)) < 0)
                    goto done;
                l->nlocations++;
            }
        }
        if (l->nlocations == 0) {
            error =
                pb_error_set(err, PB_EINVALID,
                             "plex_libraries.json: library %zu (%s) has no locations", i, l->name);
            goto done;
        }
    }
    *out = libs;
    *n = cnt;
    libs = NULL;
done:
    free(libs);
    json_decref(root);
    return error;
}

/* ---------------------------------------------------------------------------------------- */
/* The settings of a run                                                                      */

static const char *opt(const pb_config *cfg, const char *given, const char *key)
{
    return given ? given : pb_config_get(cfg, key);
}

/* The path map and plex_libraries.json must parse before anything starts. */
static int check_files(pb_run_settings *s, pb_error *err)
{
    int error;
    if (s->path_map) {
        pb_pathmap *pm = NULL;
        if ((error = pb_pathmap_load(&pm, s->path_map, err)) < 0)
            return error;
        pb_pathmap_free(pm);
    }
    if (s->libraries) {
        /* the parser the runner uses: both shapes, every location */
        json_t *libs = NULL;
        if ((error = pb_runner_plex_libraries_load(&libs, s->libraries, err)) < 0)
            return error;
        s->nlibraries = json_array_size(libs);
        json_decref(libs);
    }
    return 0;
}

int pb_run_settings_resolve(pb_run_settings *s, const pb_run_options *o, const pb_config *cfg,
                            pb_error *err)
{
    memset(s, 0, sizeof(*s));
    s->plex_dir = opt(cfg, o->plex_dir, "PLEXBURST_PLEX_DIR");
    if (!s->plex_dir)
        return pb_error_set(err, PB_EINVALID,
                            "no Plex data dir given (--plex-dir or PLEXBURST_PLEX_DIR)");
    s->state_dir = opt(cfg, o->state_dir, "PLEXBURST_STATE_DIR");
    s->cloud = opt(cfg, o->cloud, "PLEXBURST_CLOUD");
    s->store = opt(cfg, o->store, "PLEXBURST_STORE");
    s->runner = opt(cfg, o->runner, "PLEXBURST_RUNNER");
    if (!s->runner && s->cloud && strncmp(s->cloud, "scaleway", 8) == 0)
        s->runner = "plex"; /* the scaleway cloud runs the real Plex (docs/plex-runner.md) */
    if (!s->runner)
        return pb_error_set(err, PB_EINVALID,
                            "no analysis runner given (--runner 'CMD' or PLEXBURST_RUNNER)");
    s->stop_cmd = opt(cfg, o->plex_stop_cmd, "PLEXBURST_PLEX_STOP_CMD");
    s->start_cmd = opt(cfg, o->plex_start_cmd, "PLEXBURST_PLEX_START_CMD");
    s->path_map = opt(cfg, o->path_map, "PLEXBURST_PATH_MAP");
    s->libraries = opt(cfg, o->plex_libraries, "PLEXBURST_PLEX_LIBRARIES");
    const char *online = pb_config_get(cfg, "PLEXBURST_ONLINE");
    s->online = o->online || (online && (!strcmp(online, "1") || !strcasecmp(online, "true")));
    const char *md = pb_config_get(cfg, "PLEXBURST_MAX_DELETE_PCT");
    if (!(o->max_delete_pct >= 0 && o->max_delete_pct <= 100))
        return pb_error_set(err, PB_EINVALID, "max_delete_pct: expected 0..100, not %g",
                            o->max_delete_pct);
    if (o->zstd_level < 0 || o->zstd_level > 19)
        return pb_error_set(err, PB_EINVALID, "zstd_level: expected 1..19, not %d", o->zstd_level);
    s->max_delete_pct = 5.0;
    if (o->max_delete_pct > 0)
        s->max_delete_pct = o->max_delete_pct;
    else if (md && pb_config_number(&s->max_delete_pct, "PLEXBURST_MAX_DELETE_PCT", md, err) < 0)
        return PB_EINVALID;
    s->zstd_level = o->zstd_level > 0 ? o->zstd_level : 19;
    const char *prog = o->agent_program ? o->agent_program : getenv("PLEXBURST_AGENT");
    if (prog) {
        snprintf(s->agent_program, sizeof(s->agent_program), "%s", prog);
    } else {
        ssize_t n = readlink("/proc/self/exe", s->agent_program, sizeof(s->agent_program) - 1);
        if (n <= 0)
            return pb_error_errno(err, "cannot find this program (/proc/self/exe)");
        s->agent_program[n] = '\0';
    }
    return check_files(s, err);
}

/* ---------------------------------------------------------------------------------------- */
/* The names of the settings, for the CLI (plexburst/settings.h)                               */

int pb_settings_known(const char *name)
{
    return name && find_setting(name, strlen(name)) != NULL;
}

const char *pb_settings_name(size_t i)
{
    return i < sizeof(settings) / sizeof(*settings) ? settings[i].name : NULL;
}

/*
 * pathmap.c: prefix mapping of Plex paths between servers (plexburst/pathmap.h).
 * Role: the merge policy's map_text (cloud -> home paths in the four Plex path columns) and, with
 * pb_pathmap_invert, the sync's home -> cloud direction. Reads `path_mappings.json` (the prior
 * scripts' format, `{"mappings": {"/old": "/new"}}`) with jansson.
 * Prerequisites: none beyond libc and jansson; knows only the names of Plex's path columns.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "buf.h"
#include "fs.h"
#include "hex.h"
#include "plexburst/pathmap.h"

typedef struct pm_entry {
    char *from, *to;
    size_t flen, tlen;
} pm_entry;

struct pb_pathmap {
    pm_entry *e;
    size_t n, cap;
};

#define FILE_SCHEME       "file://"
#define FILE_SCHEME_LEN   7
#define PATHMAP_FILE_MAX  ((size_t)1 << 24) /* path_mappings.json: 16 MiB */
#define PATHMAP_VALUE_MAX ((size_t)1 << 30) /* a mapped value (bounded by the DB value) */

static int is_sep(char c)
{
    return c == '/' || c == '\\';
}

/* Length of `s` without trailing separators, keeping a lone root separator. */
static size_t norm_len(const char *s, size_t n)
{
    while (n > 1 && is_sep(s[n - 1]))
        n--;
    return n;
}

int pb_pathmap_new(pb_pathmap **out, pb_error *err)
{
    if (!out)
        return pb_error_set(err, PB_EINVALID, "path map: no output");
    *out = calloc(1, sizeof(**out));
    if (!*out)
        return pb_error_set(err, PB_ENOMEM, "path map: out of memory");
    return 0;
}

void pb_pathmap_free(pb_pathmap *pm)
{
    if (!pm)
        return;
    for (size_t i = 0; i < pm->n; i++) {
        free(pm->e[i].from);
        free(pm->e[i].to);
    }
    free(pm->e);
    free(pm);
}

size_t pb_pathmap_count(const pb_pathmap *pm)
{
    return pm ? pm->n : 0;
}

int pb_pathmap_get(const pb_pathmap *pm, size_t i, const char **from, const char **to)
{
    if (!pm || i >= pm->n)
        return -1;
    if (from)
        *from = pm->e[i].from;
    if (to)
        *to = pm->e[i].to;
    return 0;
}

int pb_pathmap_add(pb_pathmap *pm, const char *from, const char *to, pb_error *err)
{
    if (!pm || !from || !to || !*from || !*to)
        return pb_error_set(err, PB_EINVALID, "path map: empty prefix in a mapping");
    size_t flen = norm_len(from, strlen(from)), tlen = norm_len(to, strlen(to));
    for (size_t i = 0; i < pm->n; i++)
        if (pm->e[i].flen == flen && memcmp(pm->e[i].from, from, flen) == 0)
            return pb_error_set(err, PB_EINVALID, "path map: prefix '%s' mapped twice", from);
    if (pm->n == pm->cap) {
        size_t cap = pm->cap ? pm->cap * 2 : 8;
        pm_entry *e = realloc(pm->e, cap * sizeof(*e));
        if (!e)
            return pb_error_set(err, PB_ENOMEM, "path map: out of memory");
        pm->e = e;
        pm->cap = cap;
    }
    pm_entry *e = &pm->e[pm->n];
    e->from = strndup(from, flen);
    e->to = strndup(to, tlen);
    if (!e->from || !e->to) {
        free(e->from);
        free(e->to);
        return pb_error_set(err, PB_ENOMEM, "path map: out of memory");
    }
    e->flen = flen;
    e->tlen = tlen;
    pm->n++;
    return 0;
}

int pb_pathmap_parse(pb_pathmap **out, const char *json, size_t n, pb_error *err)
{
    int error = 0;
    json_error_t jerr;
    json_t *root = NULL;
    pb_pathmap *pm = NULL;

    if (!out)
        return pb_error_set(err, PB_EINVALID, "path map: no output");
    *out = NULL;
    root = json_loadb(json, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        error = pb_error_set(err, PB_EINVALID, "path map: line %d: %s", jerr.line, jerr.text);
        goto done;
    }
    json_t *maps = json_is_object(root) ? json_object_get(root, "mappings") : NULL;
    if (!json_is_object(maps)) {
        error = pb_error_set(
            err, PB_EINVALID,
            "path map: expected {\"mappings\": {\"/cloud/prefix\": \"/home/prefix\"}}");
        goto done;
    }
    if ((error = pb_pathmap_new(&pm, err)) != 0)
        goto done;
    const char *key;
    json_t *val;
    json_object_foreach(maps, key, val)
    {
        if (!json_is_string(val)) {
            error = pb_error_set(err, PB_EINVALID, "path map: the mapping of '%s' is not a string",
                                 key);
            goto done;
        }
        if ((error = pb_pathmap_add(pm, key, json_string_value(val), err)) != 0)
            goto done;
    }
    *out = pm;
    pm = NULL;
done:
    pb_pathmap_free(pm);
    json_decref(root);
    return error;
}

int pb_pathmap_load(pb_pathmap **out, const char *json_path, pb_error *err)
{
    int error = 0;
    char *buf = NULL;
    size_t len = 0;
    pb_error fe = PB_ERROR_INIT;

    if (!out || !json_path)
        return pb_error_set(err, PB_EINVALID, "path map: no file");
    *out = NULL;
    error = pb_fs_read_file(&buf, &len, json_path, PATHMAP_FILE_MAX, &fe);
    if (error == PB_ENOTFOUND)
        return pb_error_set(err, PB_ENOTFOUND, "path map: %s: no such file", json_path);
    if (error == PB_ENOMEM && pb_fs_size(json_path) > PATHMAP_FILE_MAX)
        return pb_error_set(err, PB_EINVALID, "path map: %s is larger than 16 MiB", json_path);
    if (error < 0)
        return pb_error_setd(err, error, fe.dep_code, "path map: %s", fe.msg);
    error = pb_pathmap_parse(out, buf, len, err);
    if (error && err && err->code == error && strncmp(err->msg, "path map: ", 10) == 0) {
        /* name the file in the message */
        char tail[sizeof(err->msg)];
        snprintf(tail, sizeof(tail), "%s", err->msg + 10);
        snprintf(err->msg, sizeof(err->msg), "path map: %.200s: %.280s", json_path, tail);
    }
    free(buf);
    return error;
}

int pb_pathmap_invert(pb_pathmap **out, const pb_pathmap *pm, pb_error *err)
{
    int error = 0;
    pb_pathmap *inv = NULL;

    if (!out || !pm)
        return pb_error_set(err, PB_EINVALID, "path map: nothing to invert");
    *out = NULL;
    if ((error = pb_pathmap_new(&inv, err)) != 0)
        return error;
    for (size_t i = 0; i < pm->n; i++) {
        for (size_t j = 0; j < i; j++)
            if (pm->e[j].tlen == pm->e[i].tlen &&
                memcmp(pm->e[j].to, pm->e[i].to, pm->e[i].tlen) == 0) {
                error = pb_error_set(err, PB_EINVALID,
                                     "path map: '%s' and '%s' both map to '%s': not invertible",
                                     pm->e[j].from, pm->e[i].from, pm->e[i].to);
                goto done;
            }
        if ((error = pb_pathmap_add(inv, pm->e[i].to, pm->e[i].from, err)) != 0)
            goto done;
    }
    *out = inv;
    inv = NULL;
done:
    pb_pathmap_free(inv);
    return error;
}

int pb_pathmap_kind(const char *table, const char *column)
{
    if (!table || !column)
        return PB_PATH_NONE;
    if (strcmp(table, "section_locations") == 0 && strcmp(column, "root_path") == 0)
        return PB_PATH_PLAIN;
    if (strcmp(table, "media_parts") == 0 && strcmp(column, "file") == 0)
        return PB_PATH_PLAIN;
    if (strcmp(table, "media_streams") == 0 && strcmp(column, "url") == 0)
        return PB_PATH_FILE_URL;
    if (strcmp(table, "metadata_items") == 0 && strcmp(column, "guid") == 0)
        return PB_PATH_FILE_GUID;
    return PB_PATH_NONE;
}

/* The entry whose prefix matches `s` at a component boundary, longest first; NULL when none. */
static const pm_entry *best_match(const pb_pathmap *pm, const char *s, size_t n)
{
    const pm_entry *best = NULL;
    for (size_t i = 0; i < pm->n; i++) {
        const pm_entry *e = &pm->e[i];
        if (e->flen > n || memcmp(e->from, s, e->flen) != 0)
            continue;
        if (e->flen < n && !is_sep(s[e->flen]) && !is_sep(e->from[e->flen - 1]))
            continue; /* "/data" must not match "/database" */
        if (!best || e->flen > best->flen)
            best = e;
    }
    return best;
}

/* An output buffer with a sticky out-of-memory flag, so that the encoders need not check each
 * put. */
typedef struct obuf {
    pb_buf b;
    int oom;
} obuf;

#define OBUF_INIT                                                                                  \
    {                                                                                              \
        PB_BUF_INIT(PATHMAP_VALUE_MAX), 0                                                          \
    }

static void ob_put(obuf *b, const char *s, size_t n)
{
    if (!b->oom && pb_buf_put(&b->b, s, n, NULL) < 0)
        b->oom = 1;
}

/* Appends the replacement of a matched prefix, joining it to `rest` with exactly one separator
 * where the mapping involves a root. */
static void put_replacement(obuf *b, const pm_entry *e, const char *rest, size_t rest_n,
                            int encode);

/* A %XX escape at enc[i]. */
static int is_escape(const char *enc, size_t en, size_t i)
{
    return enc[i] == '%' && i + 2 < en && pb_hex_digit(enc[i + 1]) >= 0 &&
           pb_hex_digit(enc[i + 2]) >= 0;
}

/* RFC 3986 pchar without '%', and '/': what Plex leaves literal in file:// URLs. */
static int url_literal(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c && strchr("-._~/!$&'()*+,;=:@", c) != NULL;
}

static void put_encoded(obuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (url_literal(c)) {
            ob_put(b, (const char *)&s[i], 1);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            ob_put(b, esc, 3);
        }
    }
}

static void put_replacement(obuf *b, const pm_entry *e, const char *rest, size_t rest_n, int encode)
{
    size_t tlen = e->tlen;
    int from_root = is_sep(e->from[e->flen - 1]);
    int to_root = is_sep(e->to[tlen - 1]);
    if (encode)
        put_encoded(b, e->to, tlen);
    else
        ob_put(b, e->to, tlen);
    if (rest_n == 0)
        return;
    if (from_root && !to_root) /* "/" -> "/mnt": "/a" becomes "/mnt/a" */
        ob_put(b, "/", 1);
    else if (!from_root && to_root && is_sep(rest[0])) { /* "/data" -> "/": "/data/a" -> "/a" */
        rest++;
        rest_n--;
    }
    ob_put(b, rest, rest_n);
}

static int finish(obuf *b, char **out, size_t *out_n)
{
    if (b->oom) {
        pb_buf_dispose(&b->b);
        return PB_ENOMEM;
    }
    if (out_n)
        *out_n = b->b.len;
    *out = pb_buf_detach(&b->b);
    return *out ? 1 : PB_ENOMEM;
}

static int map_plain(const pb_pathmap *pm, const char *in, size_t n, char **out, size_t *out_n)
{
    const pm_entry *e = best_match(pm, in, n);
    if (!e)
        return 0;
    obuf b = OBUF_INIT;
    put_replacement(&b, e, in + e->flen, n - e->flen, 0);
    return finish(&b, out, out_n);
}

/* `in` = "file://" + path, percent-encoded when it holds an escape or nothing that needs one. */
static int map_url(const pb_pathmap *pm, const char *in, size_t n, char **out, size_t *out_n)
{
    const char *enc = in + FILE_SCHEME_LEN;
    size_t en = n - FILE_SCHEME_LEN;
    int has_escape = 0, needs_escape = 0;
    for (size_t i = 0; i < en; i++) {
        if (is_escape(enc, en, i))
            has_escape = 1;
        else if (!url_literal((unsigned char)enc[i]) && enc[i] != '%')
            needs_escape = 1;
    }
    int encoded = has_escape || !needs_escape;
    if (!encoded) { /* a raw path after file:// (seen on Windows-made DBs): map it as is */
        const pm_entry *e = best_match(pm, enc, en);
        if (!e)
            return 0;
        obuf b = OBUF_INIT;
        ob_put(&b, FILE_SCHEME, FILE_SCHEME_LEN);
        put_replacement(&b, e, enc + e->flen, en - e->flen, 0);
        return finish(&b, out, out_n);
    }
    /* decode, remembering where each decoded byte starts in the encoded text */
    char *dec = malloc(en + 1);
    size_t *off = malloc((en + 1) * sizeof(*off));
    if (!dec || !off) {
        free(dec);
        free(off);
        return PB_ENOMEM;
    }
    size_t dn = 0;
    for (size_t i = 0; i < en;) {
        off[dn] = i;
        if (is_escape(enc, en, i)) {
            dec[dn++] = (char)(pb_hex_digit(enc[i + 1]) * 16 + pb_hex_digit(enc[i + 2]));
            i += 3;
        } else {
            dec[dn++] = enc[i++];
        }
    }
    off[dn] = en;
    int rc = 0;
    const pm_entry *e = best_match(pm, dec, dn);
    if (e) {
        obuf b = OBUF_INIT;
        size_t at = off[e->flen];
        ob_put(&b, FILE_SCHEME, FILE_SCHEME_LEN);
        put_replacement(&b, e, enc + at, en - at, 1);
        rc = finish(&b, out, out_n);
    }
    free(dec);
    free(off);
    return rc;
}

int pb_pathmap_map(const pb_pathmap *pm, int kind, const char *in, size_t n, char **out,
                   size_t *out_n)
{
    if (out)
        *out = NULL;
    if (out_n)
        *out_n = 0;
    if (!pm || pm->n == 0 || !in || !out || n == 0)
        return 0;
    switch (kind) {
    case PB_PATH_PLAIN:
        return map_plain(pm, in, n, out, out_n);
    case PB_PATH_FILE_URL:
    case PB_PATH_FILE_GUID:
        if (n <= FILE_SCHEME_LEN || strncmp(in, FILE_SCHEME, FILE_SCHEME_LEN) != 0)
            return 0;
        return map_url(pm, in, n, out, out_n);
    default:
        return 0;
    }
}

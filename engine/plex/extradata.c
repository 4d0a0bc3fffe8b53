/*
 * extradata.c: Plex `extra_data` values (extradata.h): the `url` companion key and the
 * 3-way merge per JSON key that the Plex merge policy uses when both sides changed the column.
 * Role: a cloud run adds analysis keys (ms:musicAnalysisVersion, ln:*, mi:indexes) to extra_data;
 * when the home changed the same column meanwhile, the column-level 3-way rule would keep the
 * home value and lose them. Merging per key keeps both.
 * Prerequisites: jansson. The url format follows mkplex (fixtures/db.c, mk_extra_dump): a `url`
 * key holding the same data URL-encoded.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "extradata.h"
#include "plexburst/errors.h"

#define URL_KEY       "url"
#define EXTRA_URL_MAX ((size_t)1 << 30) /* bounded by the DB value it is built from */

/* A text buffer with a sticky out-of-memory flag, so that the encoders need not check each put. */
typedef struct sbuf {
    pb_buf b;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (!b->oom && pb_buf_put(&b->b, s, n, NULL) < 0)
        b->oom = 1;
}

/* Percent-encoding as mkplex's mk_urlencode: unreserved characters literal. */
static void sb_urlencode(sbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            sb_put(b, (const char *)&c, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            sb_put(b, e, 3);
        }
    }
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

char *pb_extra_data_url(const json_t *obj)
{
    size_t n = 0, k = 0;
    const char *key;
    json_t *v;
    sbuf b = {PB_BUF_INIT(EXTRA_URL_MAX), 0};
    n = json_object_size(obj);
    const char **keys = malloc((n ? n : 1) * sizeof(*keys));
    if (!keys)
        return NULL;
    json_object_foreach((json_t *)obj, key, v)
    {
        if (strcmp(key, URL_KEY) != 0)
            keys[k++] = key;
    }
    qsort(keys, k, sizeof(*keys), cmp_key);
    sb_put(&b, "", 0);
    for (size_t i = 0; i < k; i++) {
        const json_t *val = json_object_get(obj, keys[i]);
        if (i)
            sb_put(&b, "&", 1);
        sb_urlencode(&b, keys[i], strlen(keys[i]));
        sb_put(&b, "=", 1);
        if (json_is_string(val))
            sb_urlencode(&b, json_string_value(val), json_string_length(val));
    }
    free(keys);
    if (b.oom) {
        pb_buf_dispose(&b.b);
        return NULL;
    }
    return pb_buf_detach(&b.b);
}

/* An object from text; NULL when it is not one (or out of memory). `empty_ok`: NULL or "" is an
 * empty object. */
static json_t *load_object(const char *s, size_t n, int empty_ok)
{
    if (!s || n == 0)
        return empty_ok ? json_object() : NULL;
    json_t *j = json_loadb(s, n, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* Equality of two optional values (absent = NULL). */
static int same(const json_t *a, const json_t *b)
{
    if (!a || !b)
        return a == b;
    return json_equal((json_t *)a, (json_t *)b);
}

/* Decides one key into `merged`; sets *conflict when both sides changed it differently. */
static int merge_key(json_t *merged, const char *key, json_t *b, json_t *c, json_t *l,
                     int *conflict)
{
    json_t *bv = json_object_get(b, key), *cv = json_object_get(c, key),
           *lv = json_object_get(l, key);
    int cloud_changed = !same(bv, cv), home_changed = !same(bv, lv);
    json_t *v = lv;
    if (cloud_changed && !home_changed)
        v = cv;
    else if (cloud_changed && home_changed && !same(cv, lv))
        *conflict = 1;
    return v ? json_object_set(merged, key, v) : 0;
}

int pb_extra_data_merge(const char *base, size_t nbase, const char *cloud, size_t ncloud,
                        const char *live, size_t nlive, char **out, size_t *out_n)
{
    int result = 0, conflict = 0;
    json_t *b = NULL, *c = NULL, *l = NULL, *merged = NULL, *lkeys = NULL;
    char *url = NULL, *text = NULL;
    const char *key;
    json_t *v;

    *out = NULL;
    *out_n = 0;
    if (!(b = load_object(base, nbase, 1)) || !(c = load_object(cloud, ncloud, 0)) ||
        !(l = load_object(live, nlive, 0)))
        goto done; /* not JSON objects: the caller's default rule */
    if (!(merged = json_object())) {
        result = PB_ENOMEM;
        goto done;
    }
    json_t *sides[3] = {b, c, l};
    for (int s = 0; s < 3; s++) {
        json_object_foreach(sides[s], key, v)
        {
            if (strcmp(key, URL_KEY) == 0 || json_object_get(merged, key))
                continue;
            if (merge_key(merged, key, b, c, l, &conflict) != 0) {
                result = PB_ENOMEM;
                goto done;
            }
        }
    }
    /* when nothing of the cloud's changes survives, the home value stays exactly as it is */
    if (!(lkeys = json_deep_copy(l))) {
        result = PB_ENOMEM;
        goto done;
    }
    json_object_del(lkeys, URL_KEY);
    if (json_equal(merged, lkeys))
        goto done;
    int had_url =
        json_object_get(b, URL_KEY) || json_object_get(c, URL_KEY) || json_object_get(l, URL_KEY);
    if (had_url && json_object_size(merged)) {
        if (!(url = pb_extra_data_url(merged)) ||
            json_object_set_new(merged, URL_KEY, json_string(url)) != 0) {
            result = PB_ENOMEM;
            goto done;
        }
    }
    if (!(text = json_dumps(merged, JSON_COMPACT | JSON_SORT_KEYS))) {
        result = PB_ENOMEM;
        goto done;
    }
    *out = text;
    *out_n = strlen(text);
    text = NULL;
    result = conflict ? 2 : 1;
done:
    free(text);
    free(url);
    json_decref(lkeys);
    json_decref(merged);
    json_decref(b);
    json_decref(c);
    json_decref(l);
    return result;
}

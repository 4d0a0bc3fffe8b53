/*
 * store_s3.c: the S3 store (store_s3.h): objects are keys `PREFIX/NAME` of a bucket of an
 * S3-compatible service, reached with path-style requests (`ENDPOINT/BUCKET/KEY`) over one
 * reused CURL handle. This file opens the store (URL, endpoint, region, keys, tuning, one
 * listing request to check them) and holds its vtable; the requests are store_s3_http.c's, the
 * operations store_s3_ops.c's and store_s3_put.c's, the XML store_s3_xml.c's.
 * Role: the `s3://` backend of transfer/store.h. Prerequisites: libcurl, libexpat.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store_s3_int.h"

void pb_store_s3_options_init(pb_store_s3_options *o)
{
    pb_store_s3_options init = PB_STORE_S3_OPTIONS_INIT;
    *o = init;
}

uint64_t pb_store_s3_part_size(uint64_t size, uint64_t min_part)
{
    uint64_t part = min_part > PB_STORE_S3_MIN_PART ? min_part : PB_STORE_S3_MIN_PART;
    uint64_t need = (size + S3_MAX_PARTS - 1) / S3_MAX_PARTS;
    need = (need + S3_MIB - 1) / S3_MIB * S3_MIB;
    return need > part ? need : part;
}

static void s3_free(pb_store *st)
{
    s3_store *s = (s3_store *)st;
    if (!s)
        return;
    if (s->curl)
        curl_easy_cleanup(s->curl);
    explicit_bzero(s->userpwd, sizeof(s->userpwd));
    free(s);
}

static const pb_store_ops s3_ops = {
    PB_STORE_OPS_VERSION, "s3", s3_put, s3_read, s3_stat, s3_list, s3_del, s3_free,
};

void pb_store_s3_stats_get(const pb_store *s, pb_store_s3_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (s && s->ops == &s3_ops)
        *out = ((const s3_store *)s)->stats;
}

/* Parses s3://BUCKET[/PREFIX] into s->bucket and s->prefix ("" or ending in '/'). */
static int parse_url(s3_store *s, const char *url, pb_error *err)
{
    const char *b = url + 5, *slash = strchr(b, '/');
    size_t bl = slash ? (size_t)(slash - b) : strlen(b);
    if (memchr(b, '@', bl) || memchr(b, ':', bl)) /* never echo: it may hold a secret */
        return pb_error_set(err, PB_EINVALID,
                            "store: an s3:// URL must not hold credentials (the keys are settings: "
                            "docs/s3.md)");
    if (bl < 3 || bl > 63)
        return pb_error_set(err, PB_EINVALID,
                            "store: invalid S3 bucket name '%.*s' (3 to 63 characters)", (int)bl,
                            b);
    for (size_t i = 0; i < bl; i++) {
        char c = b[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
              c == '_' || (c >= 'A' && c <= 'Z')))
            return pb_error_set(err, PB_EINVALID, "store: invalid S3 bucket name '%.*s'", (int)bl,
                                b);
    }
    memcpy(s->bucket, b, bl);
    s->bucket[bl] = '\0';
    const char *p = slash ? slash + 1 : "";
    char pre[1024];
    size_t pl = strlen(p);
    while (pl && p[pl - 1] == '/')
        pl--;
    if (pl >= sizeof(pre) - 1)
        return pb_error_set(err, PB_EINVALID, "store: S3 prefix too long in s3://%s/", s->bucket);
    memcpy(pre, p, pl);
    pre[pl] = '\0';
    if (pl && pb_store_name_check(pre, NULL) != 0) /* not echoed: it may hold a secret */
        return pb_error_set(err, PB_EINVALID,
                            "store: invalid S3 prefix in s3://%s/... (components of A-Z a-z 0-9 . "
                            "_ -, not . or ..)",
                            s->bucket);
    snprintf(s->prefix, sizeof(s->prefix), "%s%s", pre, pl ? "/" : "");
    snprintf(s->base.url, sizeof(s->base.url), "s3://%s%s%s", s->bucket, pl ? "/" : "", pre);
    return 0;
}

/* Region from an endpoint host s3.REGION.scw.cloud or s3.REGION.amazonaws.com. */
static void region_from_host(char *out, size_t cap, const char *endpoint)
{
    const char *h = strstr(endpoint, "://");
    h = h ? h + 3 : endpoint;
    if (strncmp(h, "s3.", 3) != 0)
        return;
    const char *r = h + 3, *dot = strchr(r, '.');
    if (!dot || (size_t)(dot - r) >= cap || dot == r)
        return;
    if (strncmp(dot, ".scw.cloud", 10) != 0 && strncmp(dot, ".amazonaws.com", 14) != 0)
        return;
    memcpy(out, r, (size_t)(dot - r));
    out[dot - r] = '\0';
}

/* The endpoint and the region; either may be derived from the other. */
static int set_endpoint(s3_store *s, const pb_store_s3_options *o, pb_error *err)
{
    const char *endpoint = o->endpoint && *o->endpoint ? o->endpoint : NULL;
    const char *region = o->region && *o->region ? o->region : NULL;
    if (!endpoint && !region)
        return pb_error_set(err, PB_EINVALID, "store: %s needs an S3 endpoint or region",
                            s->base.url);
    if (endpoint) {
        size_t el = strlen(endpoint);
        while (el && endpoint[el - 1] == '/')
            el--;
        const char *host = strncmp(endpoint, "https://", 8) == 0  ? endpoint + 8
                           : strncmp(endpoint, "http://", 7) == 0 ? endpoint + 7
                                                                  : NULL;
        if (!host || memchr(endpoint, '@', el)) /* never echo: it may hold credentials */
            return pb_error_set(err, PB_EINVALID,
                                "store: %s must be http(s)://HOST[:PORT] without credentials",
                                s->endpoint_name);
        size_t hl = el - (size_t)(host - endpoint);
        if (el >= sizeof(s->endpoint) || hl == 0 || memchr(host, '/', hl) || memchr(host, '?', hl))
            return pb_error_set(err, PB_EINVALID,
                                "store: %s must be http(s)://HOST[:PORT] (no path; the bucket "
                                "goes in the s3:// URL)",
                                s->endpoint_name);
        memcpy(s->endpoint, endpoint, el);
        s->endpoint[el] = '\0';
    }
    if (region) {
        if (strlen(region) >= sizeof(s->region) || strpbrk(region, ":/ \t"))
            return pb_error_set(err, PB_EINVALID, "store: invalid %s", s->region_name);
        snprintf(s->region, sizeof(s->region), "%s", region);
    } else {
        region_from_host(s->region, sizeof(s->region), s->endpoint);
        if (!s->region[0])
            snprintf(s->region, sizeof(s->region), "us-east-1");
    }
    if (!endpoint)
        snprintf(s->endpoint, sizeof(s->endpoint), "https://s3.%s.scw.cloud", s->region);
    snprintf(s->sigv4, sizeof(s->sigv4), "aws:amz:%s:s3", s->region);
    return 0;
}

/* The keys, as libcurl's "KEYID:SECRET" user and password. */
static int set_keys(s3_store *s, const pb_store_s3_options *o, pb_error *err)
{
    const char *ak = o->access_key, *sk = o->secret_key;
    if (!ak || !*ak || !sk || !*sk)
        return pb_error_set(err, PB_EINVALID, "store: %s needs S3 keys (%s and %s)", s->base.url,
                            s->key_name, s->secret_name);
    size_t akl = strlen(ak), skl = strlen(sk);
    if (strchr(ak, ':') || akl + skl + 2 > sizeof(s->userpwd))
        return pb_error_set(err, PB_EINVALID, "store: invalid %s", s->key_name);
    memcpy(s->userpwd, ak, akl);
    s->userpwd[akl] = ':';
    memcpy(s->userpwd + akl + 1, sk, skl + 1);
    snprintf(s->key_hint, sizeof(s->key_hint), "%.4s", ak);
    return 0;
}

/* Part size, threshold, attempts and page size, checked. */
static int set_tuning(s3_store *s, const pb_store_s3_options *o, pb_error *err)
{
    if (o->part_size < PB_STORE_S3_MIN_PART || o->part_size > PB_STORE_S3_MAX_PART)
        return pb_error_set(err, PB_EINVALID, "store: the S3 part size must be 5M..5G");
    if (o->retries < 1 || o->retries > 20)
        return pb_error_set(err, PB_EINVALID, "store: S3 attempts must be 1..20");
    if (o->list_max_keys < 1 || o->list_max_keys > 1000)
        return pb_error_set(err, PB_EINVALID, "store: the S3 listing page size must be 1..1000");
    s->part_size = (o->part_size + S3_MIB - 1) / S3_MIB * S3_MIB;
    s->threshold = o->multipart_threshold;
    s->attempts = o->retries;
    s->max_keys = o->list_max_keys;
    return 0;
}

/* What the caller calls each setting, for the hints of messages. */
static void set_names(s3_store *s, const pb_store_s3_options *o)
{
    snprintf(s->endpoint_name, sizeof(s->endpoint_name), "%s",
             o->endpoint_name ? o->endpoint_name : "the S3 endpoint");
    snprintf(s->region_name, sizeof(s->region_name), "%s",
             o->region_name ? o->region_name : "the S3 region");
    snprintf(s->key_name, sizeof(s->key_name), "%s",
             o->access_key_name ? o->access_key_name : "the S3 access key");
    snprintf(s->secret_name, sizeof(s->secret_name), "%s",
             o->secret_key_name ? o->secret_key_name : "the S3 secret key");
}

int pb_store_s3_new(pb_store **out, const char *url, const pb_store_s3_options *o, pb_error *err)
{
    int error = 0;
    s3_store *s = NULL;
    s3_req r;
    *out = NULL;
    if (!o || o->version != PB_STORE_S3_OPTIONS_VERSION)
        return pb_error_set(err, PB_EINVALID, "store: bad S3 options");
    if (!url || strncmp(url, "s3://", 5) != 0)
        return pb_error_set(err, PB_EINVALID, "store: not an s3:// URL");
    if (!(s = calloc(1, sizeof(*s))))
        return pb_error_set(err, PB_ENOMEM, "store: out of memory");
    s->base.ops = &s3_ops;
    s3_req_init(&r, "GET", err);
    set_names(s, o);
    if ((error = parse_url(s, url, err)) != 0 || (error = set_endpoint(s, o, err)) != 0 ||
        (error = set_keys(s, o, err)) != 0 || (error = set_tuning(s, o, err)) != 0 ||
        (error = s3_curl_init(err)) != 0)
        goto done;
    if (!(s->curl = curl_easy_init())) {
        error = pb_error_set(err, PB_ENOMEM, "S3: curl_easy_init failed");
        goto done;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    s->rng = (unsigned)now.tv_nsec ^ (unsigned)getpid() << 16;

    /* one listing request: wrong keys, region, endpoint or bucket fail here, clearly */
    if ((error = s3_list_page(s, &r, s->prefix, NULL, 1)) != 0)
        goto done;
    *out = &s->base;
    s = NULL;
done:
    s3_req_dispose(&r);
    s3_free(s ? &s->base : NULL);
    return error;
}

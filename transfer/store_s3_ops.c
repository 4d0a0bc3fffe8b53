/*
 * store_s3_ops.c: the S3 store's reading operations: stat is HEAD (a GET of one byte tells the
 * error code when HEAD is refused), read a ranged GET streamed to the sink and resumed after the
 * bytes already delivered, del DELETE, list ListObjectsV2 page by page.
 * Role: part of the S3 store (store_s3_int.h). Prerequisites: libcurl.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_s3_int.h"

/* Starts `method` on name's key and performs it with its failure told to *probe only (the
 * caller decides what reaches err); r is to be disposed in every case. */
static int perform_quiet(s3_store *s, s3_req *r, char *key, const char *method, const char *name,
                         pb_error *probe, pb_error *err)
{
    s3_req_init(r, method, err);
    *probe = (pb_error)PB_ERROR_INIT;
    int error = s3_full_key(key, S3_KEY_MAX, s, name, err);
    if (error)
        return error;
    r->key = key;
    r->err = probe;
    return s3_perform(s, r, 1, method, name);
}

/* Passes on what the quiet first attempt learnt, unless err already tells something. */
static void probe_keep(pb_error *err, const pb_error *probe)
{
    if (err && !err->code)
        *err = *probe;
}

int s3_stat(pb_store *st, const char *name, pb_store_info *out, pb_error *err)
{
    s3_store *s = (s3_store *)st;
    char key[S3_KEY_MAX];
    s3_req r;
    pb_error probe;
    int error = perform_quiet(s, &r, key, "HEAD", name, &probe, err);
    if (error && (r.status == 400 || r.status == 401 || r.status == 403)) {
        /* HEAD responses have no body: ask again with GET to learn the error code */
        s3_req_dispose(&r);
        s3_req_init(&r, "GET", err);
        r.key = key;
        r.extra[0] = "Range: bytes=0-0";
        if ((error = s3_perform(s, &r, 0, "GET", name)) == 0)
            error = pb_error_set(err, PB_EAUTH,
                                 "S3 authentication failed for bucket %s at %s: "
                                 "HEAD refused, GET allowed",
                                 s->bucket, s->endpoint);
        s3_req_dispose(&r);
        return error;
    }
    if (error) {
        probe_keep(err, &probe);
        s3_req_dispose(&r);
        return error;
    }
    curl_off_t cl = -1, ft = -1;
    curl_easy_getinfo(s->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    curl_easy_getinfo(s->curl, CURLINFO_FILETIME_T, &ft);
    s3_req_dispose(&r);
    if (cl < 0)
        return pb_error_set(err, PB_ECORRUPT, "S3 HEAD %s: no Content-Length", name);
    out->size = (uint64_t)cl;
    out->mtime_ns = ft >= 0 ? (int64_t)ft * 1000000000 : 0;
    return 0;
}

int s3_read(pb_store *st, const char *name, uint64_t offset, pb_sink_fn sink, void *sink_payload,
            pb_progress_fn progress, void *pp, pb_error *err)
{
    s3_store *s = (s3_store *)st;
    char key[S3_KEY_MAX];
    s3_req r;
    int error = s3_full_key(key, sizeof(key), s, name, err);
    if (error)
        return error;
    s3_req_init(&r, "GET", err);
    r.key = key;
    r.name = name;
    r.range_from = offset;
    r.sink = sink;
    r.sink_payload = sink_payload;
    r.progress = progress;
    r.pp = pp;
    pb_error probe = PB_ERROR_INIT;
    r.err = offset > 0 ? &probe : err;
    error = s3_perform(s, &r, 1, "GET", name);
    if (error && offset > 0) {
        if (r.status == 416) { /* nothing at or after offset: fine only at the very end */
            pb_store_info si;
            error = s3_stat(st, name, &si, err);
            if (!error && si.size != offset)
                error = pb_error_set(err, PB_EINVALID, "store: offset %llu beyond %s (%llu bytes)",
                                     (unsigned long long)offset, name, (unsigned long long)si.size);
        } else {
            probe_keep(err, &probe);
        }
    }
    s3_req_dispose(&r);
    return error;
}

int s3_del(pb_store *st, const char *name, pb_error *err)
{
    s3_store *s = (s3_store *)st;
    char key[S3_KEY_MAX];
    s3_req r;
    pb_error probe;
    int error = perform_quiet(s, &r, key, "DELETE", name, &probe, err);
    if (error == PB_ENOTFOUND && strcmp(r.code, "NoSuchBucket") != 0)
        error = 0; /* absent is not an error */
    else if (error)
        probe_keep(err, &probe);
    s3_req_dispose(&r);
    return error;
}

/* Lists one page of keys below `full` from `token` (NULL: the start). */
int s3_list_page(s3_store *s, s3_req *r, const char *full, const char *token, unsigned max_keys)
{
    char q[S3_TOKEN_MAX * 3 + 3 * 2200 + 128], etok[S3_TOKEN_MAX * 3 + 1], epre[3 * 2200 + 1];
    if (s3_enc(epre, sizeof(epre), full, strlen(full), 0) != 0 ||
        (token && s3_enc(etok, sizeof(etok), token, strlen(token), 0) != 0))
        return pb_error_set(r->err, PB_EINVALID, "S3 list: prefix or token too long");
    /* sorted by key (7.88 signs the query as given): continuation-token, list-type, max-keys,
     * prefix */
    snprintf(q, sizeof(q), "%s%s%slist-type=2&max-keys=%u&prefix=%s",
             token ? "continuation-token=" : "", token ? etok : "", token ? "&" : "", max_keys,
             epre);
    r->query = q;
    r->resp_max = S3_RESP_MAX;
    int rc = s3_perform(s, r, 1, "LIST", full[0] ? full : "/");
    r->query = NULL;
    return rc;
}

/* Checks a page read into r->xml: a ListBucketResult, well-formed, every Contents complete. */
static int page_check(const s3_store *s, const s3_xml *x, pb_error *err)
{
    if (strcmp(x->root, "ListBucketResult") != 0)
        return pb_error_set(err, PB_ECORRUPT, "S3 list of %s: not a ListBucketResult", s->bucket);
    if (x->bad)
        return pb_error_set(err, PB_ECORRUPT, "S3 list of %s: unreadable XML (%s)", s->bucket,
                            x->why ? x->why : "?");
    if (x->contents_bad == 1)
        return pb_error_set(err, PB_ECORRUPT, "S3 list of %s: malformed <Contents>", s->bucket);
    if (x->contents_bad == 2)
        return pb_error_set(err, PB_ECORRUPT, "S3 list of %s: bad <Size>", s->bucket);
    return 0;
}

/* Hands the page's store objects to fn (other keys are skipped: not ours, or not a store
 * object, like a folder marker or a foreign name). */
static int page_deliver(const s3_store *s, const s3_xml *x, pb_store_list_fn fn, void *payload,
                        pb_error *err)
{
    size_t pl = strlen(s->prefix);
    for (size_t i = 0; i < x->n; i++) {
        const char *key = x->keys.ptr + x->entries[i].key_off;
        if (strncmp(key, s->prefix, pl) != 0 || pb_store_name_check(key + pl, NULL) != 0)
            continue;
        pb_store_info si = {x->entries[i].size, x->entries[i].mtime_ns};
        int rc = fn(key + pl, &si, payload);
        if (rc > 0)
            return pb_error_set(err, PB_ECANCELLED, "store: listing stopped");
        if (rc < 0)
            return pb_error_set(err, rc, "store: listing stopped: %s", pb_strerror(rc));
    }
    return 0;
}

int s3_list(pb_store *st, const char *prefix, pb_store_list_fn fn, void *payload, pb_error *err)
{
    s3_store *s = (s3_store *)st;
    int error = 0, have_token = 0;
    char full[S3_KEY_MAX];
    char *token = NULL;
    s3_req r;
    if ((error = s3_full_key(full, sizeof(full), s, prefix, err)) != 0)
        return error;
    s3_req_init(&r, "GET", err);
    if (!(token = malloc(S3_TOKEN_MAX))) {
        error = pb_error_set(err, PB_ENOMEM, "S3: out of memory");
        goto done;
    }
    for (;;) {
        if ((error = s3_list_page(s, &r, full, have_token ? token : NULL, s->max_keys)) != 0 ||
            (error = page_check(s, &r.xml, err)) != 0 ||
            (error = page_deliver(s, &r.xml, fn, payload, err)) != 0)
            goto done;
        if (!r.xml.truncated)
            break;
        if (!r.xml.token[0] || (have_token && strcmp(token, r.xml.token) == 0)) {
            error = pb_error_set(err, PB_ECORRUPT,
                                 "S3 list of %s: truncated without a new continuation token",
                                 s->bucket);
            goto done;
        }
        snprintf(token, S3_TOKEN_MAX, "%s", r.xml.token);
        have_token = 1;
    }
done:
    s3_req_dispose(&r);
    free(token);
    return error;
}

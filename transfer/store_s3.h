/*
 * store_s3.h (internal): the S3 backend of the store interface (transfer/store.h): objects under
 * `s3://BUCKET/PREFIX` of an S3-compatible service (Scaleway Object Storage in production),
 * path-style requests signed by libcurl's CURLOPT_AWS_SIGV4. docs/s3.md has the settings the
 * engine reads into pb_store_s3_options.
 * Role: transfer/ layer; it reads no setting itself: the caller fills the options.
 * Prerequisites: libcurl (7.88.1 on Debian 12, whose SigV4 traps store_s3_http.c works
 * around), libexpat.
 */
#ifndef PB_STORE_S3_H
#define PB_STORE_S3_H

#include "store.h"

#define PB_STORE_S3_MIN_PART        (5ull << 20) /* the smallest part S3 accepts (but the last) */
#define PB_STORE_S3_MAX_PART        (5ull << 30) /* the largest part and the largest single PUT */
#define PB_STORE_S3_OPTIONS_VERSION 1

/** How to reach the bucket and how to move the bytes. Strings are copied by pb_store_s3_new. */
typedef struct pb_store_s3_options {
    unsigned version;       /* PB_STORE_S3_OPTIONS_VERSION */
    const char *endpoint;   /* http(s)://HOST[:PORT] (NULL: https://s3.REGION.scw.cloud) */
    const char *region;     /* the SigV4 region (NULL: from a Scaleway or AWS endpoint's host
                               name, else us-east-1); endpoint or region is required */
    const char *access_key; /* the key id (required; shown by its first 4 characters only) */
    const char *secret_key; /* required; never printed, wiped on free */
    /* What the caller calls each of these, for the hints of messages ("check NAME"); NULL:
     * "the S3 endpoint", ... */
    const char *endpoint_name, *region_name, *access_key_name, *secret_key_name;
    uint64_t part_size;           /* the smallest part of a multipart upload: 8 MiB (5M..5G) */
    uint64_t multipart_threshold; /* bigger files go multipart: 64 MiB */
    int retries;                  /* attempts per idempotent request: 6 (1..20) */
    unsigned list_max_keys;       /* page size of listings: 1000 (1..1000) */
} pb_store_s3_options;

#define PB_STORE_S3_OPTIONS_INIT                                                                   \
    {                                                                                              \
        PB_STORE_S3_OPTIONS_VERSION, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 8ull << 20,   \
            64ull << 20, 6, 1000                                                                   \
    }

/** Sets `o` to PB_STORE_S3_OPTIONS_INIT. */
void pb_store_s3_options_init(pb_store_s3_options *o);

/**
 * Opens the S3 store at `url` (`s3://BUCKET[/PREFIX]`) with `o`. The bucket is checked with one
 * listing request, so that wrong keys, region or bucket fail here. The store uses one
 * connection (one CURL handle): use it from one thread at a time.
 * @return 0 (*out freed with pb_store_free); PB_EINVALID (URL or options), PB_EAUTH (the
 * service refused the keys), PB_ENOTFOUND (no such bucket), PB_ENET (dep_code: CURLcode or HTTP
 * status). Messages never hold the secret key, and at most the first 4 characters of the key id.
 */
int pb_store_s3_new(pb_store **out, const char *url, const pb_store_s3_options *o, pb_error *err);

/** Counters of an S3 store since it was opened (for tests, benchmarks and run logs). */
typedef struct pb_store_s3_stats {
    uint64_t requests;  /* HTTP requests sent, retries included */
    uint64_t retries;   /* attempts repeated after a transient failure */
    uint64_t multipart; /* multipart uploads completed */
    uint64_t parts;     /* parts uploaded */
} pb_store_s3_stats;

/** Fills *out with the counters of `s`; all zero when `s` is not an S3 store. */
void pb_store_s3_stats_get(const pb_store *s, pb_store_s3_stats *out);

/**
 * The part size of a multipart upload of `size` bytes given the configured minimum `min_part`:
 * max(min_part, 5 MiB, ceil(size / 1000) rounded up to a MiB), so that no upload needs more than
 * 1000 parts (Scaleway's limit). Exposed for the tests.
 */
uint64_t pb_store_s3_part_size(uint64_t size, uint64_t min_part);

#endif

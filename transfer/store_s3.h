/*
 * store_s3.h (internal): the S3 backend of the store interface (transfer/store.h): objects under
 * `s3://BUCKET/PREFIX` of an S3-compatible service (Scaleway Object Storage in production),
 * path-style requests signed by libcurl's CURLOPT_AWS_SIGV4. docs/s3.md has the configuration.
 * Role: transfer/ layer; pb_store_open() dispatches `s3://` URLs here (settings from the
 * environment); a caller holding a run configuration passes its own lookup instead.
 * Prerequisites: libcurl (7.88.1 on Debian 12, whose SigV4 traps store_s3.c works around).
 */
#ifndef PB_STORE_S3_H
#define PB_STORE_S3_H

#include "store.h"

/** Returns the value of a setting (PLEXBURST_S3_ENDPOINT, ...) or NULL when unset. */
typedef const char *(*pb_store_s3_lookup_fn)(void *ctx, const char *key);

/**
 * Opens the S3 store at `url` (`s3://BUCKET[/PREFIX]`). Settings are read through
 * `lookup(ctx, KEY)`, or from the environment when `lookup` is NULL:
 *   PLEXBURST_S3_ENDPOINT  `https://s3.fr-par.scw.cloud`, `http://127.0.0.1:PORT` (default:
 *                          `https://s3.REGION.scw.cloud` when only the region is given)
 *   PLEXBURST_S3_REGION    the SigV4 region (default: from a Scaleway or AWS endpoint's host name,
 *                          else `us-east-1`)
 *   PLEXBURST_S3_ACCESS_KEY / AWS_ACCESS_KEY_ID, PLEXBURST_S3_SECRET_KEY / AWS_SECRET_ACCESS_KEY
 *   PLEXBURST_S3_PART_SIZE (bytes, K/M/G suffixes; default 8M, at least 5M),
 *   PLEXBURST_S3_MULTIPART_THRESHOLD (default 64M), PLEXBURST_S3_RETRIES (attempts per request,
 *   default 6), PLEXBURST_S3_LIST_MAX_KEYS (page size of listings, 1..1000, default 1000).
 * The bucket is checked with one listing request, so that wrong keys, region or bucket fail here.
 * The store uses one connection (one CURL handle): use it from one thread at a time.
 * @return 0 (*out freed with pb_store_free); PB_EINVALID (URL or settings), PB_EAUTH (the
 * service refused the keys), PB_ENOTFOUND (no such bucket), PB_ENET (dep_code: CURLcode or HTTP
 * status). Messages never hold the secret key, and at most the first 4 characters of the key id.
 */
int pb_store_s3_new(pb_store **out, const char *url, pb_store_s3_lookup_fn lookup, void *ctx,
                    pb_error *err);

/** The names of every setting above (endpoint, region, keys, tuning), NULL-terminated: what the
 * home sends to a remote agent in PREPARE's `s3_env` (docs/protocol.md). */
extern const char *const pb_store_s3_settings[];

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

/*
 * extradata.h (internal): Plex's `extra_data` column values: a JSON object of namespaced keys
 * (`at:`, `pv:`, `ma:`, `ln:`, `ms:`, `mi:`, ...) plus a `url` key that mirrors the other keys
 * URL-encoded. The Plex policy (policy.c) merges them key by key when the home
 * and the cloud both changed one, so that analysis keys the cloud added survive a home edit.
 * Prerequisites: jansson.
 */
#ifndef PB_EXTRADATA_H
#define PB_EXTRADATA_H

#include <stddef.h>
#include <jansson.h>

/**
 * The `url` companion of an extra_data object, as mkplex (fixtures/db.c) writes it: every key but
 * `url`, sorted bytewise, as `key=value` joined by `&`, keys and values percent-encoded (RFC 3986
 * unreserved characters literal, every other byte as uppercase %XX; a non-string value counts
 * as empty). malloc'd; NULL when out of memory.
 */
char *pb_extra_data_url(const json_t *obj);

/**
 * The 3-way merge of extra_data values per key (`url` aside): a key the cloud changed
 * (base -> cloud: added, removed or another value) that the home did not change takes the cloud's
 * value; every other key keeps the home's (a key both sides changed: home wins). Then `url` is
 * recomputed from the merged keys (pb_extra_data_url) when any of the three values had one. The
 * result is compact JSON with sorted keys (as mkplex writes it).
 * @param base  the base value (NULL or "" = an empty object)
 * @param cloud, live  the two changed values: JSON objects
 * @return 1 with *out (malloc'd, *out_n bytes) the merged value; 2 likewise when a key both
 *         sides changed kept the home's value; 0 when the values cannot be merged this way (one
 *         is not a JSON object) or the merge keeps nothing of the cloud's changes (the home value
 *         stands as it is); PB_ENOMEM.
 */
int pb_extra_data_merge(const char *base, size_t nbase, const char *cloud, size_t ncloud,
                        const char *live, size_t nlive, char **out, size_t *out_n);

#endif

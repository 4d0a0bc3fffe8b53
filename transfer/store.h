/*
 * store.h (internal): where the home side and the agent leave data for each other (the
 * baseline, per-run uploads, bundles, run state), as a versioned vtable so that backends slot
 * in: `local` (a directory: the embedded default and the tests, store_local.c) and `s3` (a
 * bucket prefix, store_s3.h). The layout of a store is documented in docs/store.md.
 * Role: transfer/ layer; it moves named objects and knows nothing of what they hold.
 * Prerequisites: POSIX; libxxhash for the object checksums of the helpers.
 *
 * Object names are relative, '/'-separated, made of [A-Za-z0-9._-] components that are neither
 * "." nor ".." nor start with ".pb-tmp" (pb_store_name_check). Every backend keeps:
 *   put   atomic: readers see the old object or the whole new one, never a part;
 *   read  streams an object from a byte offset (so a download resumes where it stopped);
 *   stat  size and mtime, PB_ENOTFOUND when absent;
 *   list  every object below a prefix ("" = all), in no particular order;
 *   del   removes an object (absent is not an error).
 */
#ifndef PB_STORE_H
#define PB_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "plexburst/errors.h"
#include "plexburst/io.h"

typedef struct pb_store pb_store;

typedef struct pb_store_info {
    uint64_t size;
    int64_t mtime_ns;
} pb_store_info;

/* Progress (pb_progress_fn) of a put is phase "upload", of a read "download", with bytes_done /
 * bytes_total of the object and `path` its name; a non-zero return cancels. Reads deliver the
 * object's bytes in order to a pb_sink_fn. */
/** Called per object of a listing; non-zero stops the listing (returned as is). */
typedef int (*pb_store_list_fn)(const char *name, const pb_store_info *st, void *payload);

typedef struct pb_store_ops {
    unsigned version; /* PB_STORE_OPS_VERSION */
    const char *kind; /* "local", "s3", ... */
    int (*put)(pb_store *s, const char *name, const char *local_path, pb_progress_fn progress,
               void *pp, pb_error *err);
    int (*read)(pb_store *s, const char *name, uint64_t offset, pb_sink_fn sink, void *sink_payload,
                pb_progress_fn progress, void *pp, pb_error *err);
    int (*stat)(pb_store *s, const char *name, pb_store_info *out, pb_error *err);
    int (*list)(pb_store *s, const char *prefix, pb_store_list_fn fn, void *payload, pb_error *err);
    int (*del)(pb_store *s, const char *name, pb_error *err);
    void (*free)(pb_store *s);
} pb_store_ops;

#define PB_STORE_OPS_VERSION 1

/** The common part of every store; implementations embed it first. */
struct pb_store {
    const pb_store_ops *ops;
    char url[4096];                /* as opened (no secrets) */
    uint64_t bytes_put, bytes_got; /* counted by the dispatch functions */
};

/**
 * Opens a local store from its URL: a directory path or `file://PATH` (created 0700 when
 * missing). An `s3://` URL is PB_EINVALID here: it needs its options (pb_store_s3_new).
 */
int pb_store_open(pb_store **out, const char *url, pb_error *err);
/** The local-directory store rooted at `dir` (created 0700 when missing). */
int pb_store_local_new(pb_store **out, const char *dir, pb_error *err);
void pb_store_free(pb_store *s);

/** PB_EUNSAFE when `name` is not a valid object name (see the top). */
int pb_store_name_check(const char *name, pb_error *err);

/* Dispatch (names checked, bytes counted). */
int pb_store_put(pb_store *s, const char *name, const char *local_path, pb_progress_fn progress,
                 void *pp, pb_error *err);
int pb_store_read(pb_store *s, const char *name, uint64_t offset, pb_sink_fn sink,
                  void *sink_payload, pb_progress_fn progress, void *pp, pb_error *err);
int pb_store_stat(pb_store *s, const char *name, pb_store_info *out, pb_error *err);
int pb_store_list(pb_store *s, const char *prefix, pb_store_list_fn fn, void *payload,
                  pb_error *err);
int pb_store_del(pb_store *s, const char *name, pb_error *err);
/** Deletes every object below `prefix` (must be non-empty). */
int pb_store_del_prefix(pb_store *s, const char *prefix, pb_error *err);

/**
 * Downloads `name` to `local_path`, resumably: bytes go to `local_path.part`, which a later call
 * continues from its current length (when it is not longer than the object); once complete and
 * of the object's size the part file is fsynced and renamed. *resumed_from (optional) gets the
 * offset the download started at, *fetched (optional) the bytes transferred by this call.
 */
int pb_store_get_file(pb_store *s, const char *name, const char *local_path,
                      pb_progress_fn progress, void *pp, uint64_t *resumed_from, uint64_t *fetched,
                      pb_error *err);

/** For backends: reports progress of `phase` ("upload" or "download") of object `name` to `fn`
 * (may be NULL); PB_ECANCELLED "store: put|read of NAME cancelled" when it returns non-zero. */
int pb_store__progress(pb_progress_fn fn, void *pp, const char *phase, const char *name,
                       uint64_t done, uint64_t total, pb_error *err);

/** Puts `n` bytes from memory (through a temporary file beside nothing: $TMPDIR). */
int pb_store_put_mem(pb_store *s, const char *name, const void *data, size_t n, pb_error *err);
/** Reads a whole small object (at most `max` bytes, else PB_ENOMEM) into a malloc'd,
 * NUL-terminated buffer. */
int pb_store_get_mem(pb_store *s, const char *name, char **data, size_t *n, size_t max,
                     pb_error *err);

#endif

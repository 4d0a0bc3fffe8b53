/*
 * rsync.h: librsync signatures, deltas and patches as bounded-memory streaming jobs (internal to
 * libplexburst). Files are read through fds (pread for the patch basis), streams through caller
 * callbacks; nothing is ever loaded whole except a signature (about 0.5 % of its file).
 *
 * Conventions: BLAKE2 strong sums with the RabinKarp rolling sum (RS_RK_BLAKE2_SIG_MAGIC), block
 * and strong lengths from pb_rsync_plan(). Deltas are plain librsync deltas (rdiff-compatible);
 * librsync deltas carry no checksum of the result, so pb_rsync_patch() can verify the XXH3-128
 * of what it writes against an expected hash (the engine's manifest hash of the new file).
 * transfer/ knows nothing of the engine.
 */
#ifndef PB_RSYNC_H
#define PB_RSYNC_H

#include <stddef.h>
#include <stdint.h>
#include "plexburst/errors.h"
#include "plexburst/io.h"

/** Files smaller than this are sent whole: a signature plus a delta costs more (docs/manifest.md
 * "File deltas" gives the measurement). */
#define PB_RSYNC_WHOLE_BELOW (64 * 1024)
/** Largest block length accepted in a signature (a corrupt header must not allocate GBs). */
#define PB_RSYNC_MAX_BLOCK (1u << 20)
/** Default stream buffer size of the job driver. */
#define PB_RSYNC_BUF_DEFAULT (256 * 1024)

/* Streams go out through a pb_sink_fn and come in through a pb_source_fn (plexburst/io.h). */

/** Tuning of one job; NULL or zero fields mean the defaults. */
typedef struct pb_rsync_options {
    unsigned version;
    size_t in_buf;     /* input buffer of the job driver (bytes, >= 1; 0 = default) */
    size_t out_buf;    /* output buffer of the job driver (bytes, >= 1; 0 = default) */
    size_t block_len;  /* sig: block length override (0 = pb_rsync_plan) */
    size_t strong_len; /* sig: strong sum length override (0 = pb_rsync_plan) */
    const uint8_t
        *check; /* patch: expected XXH3-128 (canonical, 16 bytes) of the output, or NULL */
} pb_rsync_options;

#define PB_RSYNC_OPTIONS_VERSION 1
#define PB_RSYNC_OPTIONS_INIT                                                                      \
    {                                                                                              \
        PB_RSYNC_OPTIONS_VERSION, 0, 0, 0, 0, NULL                                                 \
    }

/** Sets `o` to PB_RSYNC_OPTIONS_INIT. */
void pb_rsync_options_init(pb_rsync_options *o);

/** Counters of one job. */
typedef struct pb_rsync_stats {
    uint64_t in_bytes;   /* bytes consumed from the streams (sig + new file, or delta) */
    uint64_t out_bytes;  /* bytes produced */
    uint64_t lit_bytes;  /* delta/patch: literal bytes */
    uint64_t copy_bytes; /* delta/patch: bytes copied from the basis */
    size_t block_len;    /* sig/delta: block length used */
} pb_rsync_stats;

/**
 * Chooses how a file of `size` bytes is synced: *whole = 1 below PB_RSYNC_WHOLE_BELOW (send it
 * whole, block_len/strong_len then still describe a valid signature), else a block length near
 * sqrt(size) (a multiple of 128, 256..PB_RSYNC_MAX_BLOCK, from rs_sig_args) and a BLAKE2 strong
 * length 4 bytes above librsync's minimum for random collisions (< 2^-64 per delta), max 32.
 * Any out pointer may be NULL.
 */
void pb_rsync_plan(int *whole, size_t *block_len, size_t *strong_len, uint64_t size);

/**
 * Writes the signature of the basis file read from `basis_fd` (from its current offset to EOF)
 * to `out`. Block and strong length from opts or pb_rsync_plan(fstat size).
 */
int pb_rsync_sig(int basis_fd, pb_sink_fn out, void *out_payload, const pb_rsync_options *opts,
                 pb_rsync_stats *stats, pb_error *err);

/**
 * Reads a signature from `sig_in` (validated: BLAKE2 magic, block length 1..PB_RSYNC_MAX_BLOCK,
 * strong length 8..32, whole blocks; else PB_ECORRUPT), then writes the delta turning the basis
 * into the file read from `new_fd` (current offset to EOF) to `out`.
 */
int pb_rsync_delta(pb_source_fn sig_in, void *sig_payload, int new_fd, pb_sink_fn out,
                   void *out_payload, const pb_rsync_options *opts, pb_rsync_stats *stats,
                   pb_error *err);

/**
 * Applies the delta read from `delta_in` to the basis `basis_fd` (random access with pread),
 * writing the result to `out_fd` at its current offset. A corrupt or truncated delta, a copy
 * beyond the basis, trailing bytes after the end command, or (with opts->check) an output whose
 * XXH3-128 differs are PB_ECORRUPT; the output is then incomplete and the caller discards it.
 */
int pb_rsync_patch(int basis_fd, pb_source_fn delta_in, void *delta_payload, int out_fd,
                   const pb_rsync_options *opts, pb_rsync_stats *stats, pb_error *err);

/** Stream callbacks over an `int *` fd payload (read/write with EINTR and short-count handling). */
int pb_rsync_fd_read(void *payload, void *buf, size_t cap, size_t *got, pb_error *err);
int pb_rsync_fd_write(void *payload, const void *buf, size_t len, pb_error *err);

/* Convenience over paths; outputs are created 0600 (truncated) and removed on failure. */
int pb_rsync_sig_file(const char *basis, const char *sig, const pb_rsync_options *opts,
                      pb_rsync_stats *stats, pb_error *err);
int pb_rsync_delta_file(const char *sig, const char *new_file, const char *delta,
                        const pb_rsync_options *opts, pb_rsync_stats *stats, pb_error *err);
int pb_rsync_patch_file(const char *basis, const char *delta, const char *out,
                        const pb_rsync_options *opts, pb_rsync_stats *stats, pb_error *err);

/**
 * Translates a librsync result into a PB_E* code with `what` as message prefix, keeping the
 * rs_result in dep_code: RS_DONE → 0, corrupt/truncated/bad-magic input → PB_ECORRUPT,
 * RS_MEM_ERROR → PB_ENOMEM, RS_IO_ERROR → PB_EIO, RS_PARAM_ERROR → PB_EINVALID, else PB_ERROR.
 */
int pb_rsync_error(int rs_result_code, const char *what, pb_error *err);

#endif

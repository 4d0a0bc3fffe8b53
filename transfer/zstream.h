/*
 * zstream.h: streaming zstd compression between stdio streams (internal to libplexburst).
 * Memory use is bounded by zstd's recommended buffer sizes, whatever the input size.
 */
#ifndef PB_ZSTREAM_H
#define PB_ZSTREAM_H

#include <stdio.h>
#include <stdint.h>
#include "plexburst/errors.h"

/**
 * Compresses all of `in` into `out` as one zstd frame at `level` (1..19), using `threads` worker
 * threads (0 = none). Counts are returned in `*in_bytes` / `*out_bytes` when non-NULL.
 */
int pb_zstd_compress_stream(FILE *in, FILE *out, int level, int threads, uint64_t *in_bytes,
                            uint64_t *out_bytes, pb_error *err);

/** Parameters of pb_zstd_compress_stream_ex(); zero fields are pb_zstd_compress_stream()'s. */
typedef struct pb_zstd_params {
    int level;      /* 1..19 */
    int threads;    /* worker threads (0 = none) */
    int window_log; /* > 0: caps the match window at 2^window_log bytes; with size_known, zstd
                       also sizes its match tables to it, bounding the memory (level 19 otherwise
                       allocates about 85 MB whatever the input) */
    int size_known; /* `size` is the exact input size: written into the frame, and zstd sizes its
                       window and tables to the input (a mismatch fails the compression) */
    uint64_t size;
} pb_zstd_params;

/** pb_zstd_compress_stream() with the parameters above. */
int pb_zstd_compress_stream_ex(FILE *in, FILE *out, const pb_zstd_params *p, uint64_t *in_bytes,
                               uint64_t *out_bytes, pb_error *err);

/**
 * Decompresses the zstd frames of `in` into `out`, refusing more than `max_out` bytes of output
 * (0 = no limit) and truncated or corrupt input (PB_ECORRUPT).
 */
int pb_zstd_decompress_stream(FILE *in, FILE *out, uint64_t max_out, uint64_t *out_bytes,
                              pb_error *err);

#endif

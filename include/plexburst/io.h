/*
 * plexburst/io.h: the callback types every streaming API of the library shares: one byte sink,
 * one byte source and one progress report. A module never defines its own variant of these.
 */
#ifndef PLEXBURST_IO_H
#define PLEXBURST_IO_H

#include <stddef.h>
#include <stdint.h>
#include "plexburst/errors.h"

/**
 * Receives `n` bytes of a stream, in order. Returns 0, or a negative PB_E* code (with detail in
 * `err`) that stops the producer, which returns it.
 */
typedef int (*pb_sink_fn)(void *payload, const void *data, size_t n, pb_error *err);

/**
 * Supplies up to `cap` bytes of a stream into `buf`; *got = 0 at its end. Returns 0 or a
 * negative PB_E* code.
 */
typedef int (*pb_source_fn)(void *payload, void *buf, size_t cap, size_t *got, pb_error *err);

/** Progress of a long operation, handed to a pb_progress_fn. Valid during the call only. */
typedef struct pb_progress {
    const char *phase;    /* what is progressing: "scan", "hash", "upload", "download", ... */
    uint64_t bytes_done;  /* bytes processed in this phase */
    uint64_t bytes_total; /* bytes to process in this phase (0 when unknown) */
    uint64_t items_done;  /* entries processed in this phase */
    uint64_t items_total; /* entries to process (0 when unknown) */
    const char *path;     /* the current item, or NULL */
} pb_progress;

/** Progress callback: a non-zero return cancels the operation with PB_ECANCELLED. */
typedef int (*pb_progress_fn)(const pb_progress *p, void *payload);

#endif

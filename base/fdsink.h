/*
 * fdsink.h: a byte sink (the shape of plexburst/io.h's pb_sink_fn) that writes everything to a
 * file descriptor: what a download into a file hands its producer.
 * Role: base layer. Prerequisites: fs.h (pb_fs_write_all).
 */
#ifndef PB_FDSINK_H
#define PB_FDSINK_H

#include <stddef.h>
#include "fs.h"

/** The payload of pb_fdsink_write: where the bytes go, and its name for messages. */
typedef struct pb_fdsink {
    int fd;
    const char *what;
} pb_fdsink;

/** Writes all `n` bytes to the sink's fd (a pb_sink_fn; PB_EIO naming `what`). */
static inline int pb_fdsink_write(void *payload, const void *data, size_t n, pb_error *err)
{
    const pb_fdsink *s = payload;
    return pb_fs_write_all(s->fd, data, n, s->what, err);
}

#endif

/*
 * buf.h: pb_buf, a growable byte buffer with a hard maximum (like curl's dynbuf and libgit2's
 * git_str): appends fail with PB_ENOMEM past `max` instead of growing without bound, which
 * matters for anything whose size a peer, a cloud or a database decides. The content is always
 * NUL-terminated (not counted in len), so a text buffer is a C string.
 * Role: base layer, used by every module. Prerequisites: libc.
 */
#ifndef PB_BUF_H
#define PB_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include "plexburst/errors.h"

typedef struct pb_buf {
    char *ptr;  /* the bytes, NUL-terminated; NULL until the first append */
    size_t len; /* bytes held, the NUL excluded */
    size_t cap; /* bytes allocated */
    size_t max; /* the most len may reach */
} pb_buf;

#define PB_BUF_INIT(max_)                                                                          \
    {                                                                                              \
        NULL, 0, 0, (max_)                                                                         \
    }

/** Sets up an empty buffer that may hold up to `max` bytes. Release with pb_buf_dispose. */
void pb_buf_init(pb_buf *b, size_t max);
/** Makes room for `extra` more bytes (PB_ENOMEM past the maximum or when malloc fails). */
int pb_buf_grow(pb_buf *b, size_t extra, pb_error *err);
/** Appends `n` bytes. */
int pb_buf_put(pb_buf *b, const void *data, size_t n, pb_error *err);
/** Appends a C string. */
int pb_buf_puts(pb_buf *b, const char *s, pb_error *err);
/** Appends formatted text. */
int pb_buf_printf(pb_buf *b, pb_error *err, const char *fmt, ...) PB_PRINTF(3, 4);
int pb_buf_vprintf(pb_buf *b, pb_error *err, const char *fmt, va_list ap);
/** Empties the buffer, keeping its memory. */
void pb_buf_clear(pb_buf *b);
/** Hands the bytes to the caller (free() them; "" when empty) and leaves the buffer empty. */
char *pb_buf_detach(pb_buf *b);
/** Frees the memory; the buffer may be used again. Accepts NULL. */
void pb_buf_dispose(pb_buf *b);

#endif

/*
 * buf.c: the bounded growable buffer of buf.h.
 * Role: base layer. Prerequisites: libc.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void pb_buf_init(pb_buf *b, size_t max)
{
    b->ptr = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

int pb_buf_grow(pb_buf *b, size_t extra, pb_error *err)
{
    if (extra > b->max || b->len > b->max - extra)
        return pb_error_set(err, PB_ENOMEM, "buffer limit of %zu bytes reached", b->max);
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > (size_t)-1 / 2 ? need : cap * 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    char *p = realloc(b->ptr, cap);
    if (!p)
        return pb_error_set(err, PB_ENOMEM, "out of memory");
    b->ptr = p;
    b->cap = cap;
    return 0;
}

int pb_buf_put(pb_buf *b, const void *data, size_t n, pb_error *err)
{
    int error;
    if ((error = pb_buf_grow(b, n, err)) < 0)
        return error;
    if (n)
        memcpy(b->ptr + b->len, data, n);
    b->len += n;
    b->ptr[b->len] = '\0';
    return 0;
}

int pb_buf_puts(pb_buf *b, const char *s, pb_error *err)
{
    return pb_buf_put(b, s, strlen(s), err);
}

int pb_buf_vprintf(pb_buf *b, pb_error *err, const char *fmt, va_list ap)
{
    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    if (n < 0)
        return pb_error_set(err, PB_EINVALID, "bad format string");
    int error = pb_buf_grow(b, (size_t)n, err);
    if (error < 0)
        return error;
    vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int pb_buf_printf(pb_buf *b, pb_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int error = pb_buf_vprintf(b, err, fmt, ap);
    va_end(ap);
    return error;
}

void pb_buf_clear(pb_buf *b)
{
    b->len = 0;
    if (b->ptr)
        b->ptr[0] = '\0';
}

char *pb_buf_detach(pb_buf *b)
{
    char *p = b->ptr ? b->ptr : strdup("");
    b->ptr = NULL;
    b->len = b->cap = 0;
    return p;
}

void pb_buf_dispose(pb_buf *b)
{
    if (!b)
        return;
    free(b->ptr);
    b->ptr = NULL;
    b->len = b->cap = 0;
}

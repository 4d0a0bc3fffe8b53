/*
 * record.c: SQLite values in the session RECORD encoding, shared by the diff, the checksum and
 * the changeset validator; also the bounded buffers and the chunked output stream.
 * Role: the hot path of sqldiff/ (every row of both DBs goes through pb_rec__append_row).
 * Prerequisites: SQLite; the encoding is SQLite's own, not ours.
 *
 * RECORD encoding (SQLite's, see the "RECORD FORMAT" comment at the top of
 * ext/session/sqlite3session.c): each field is self-contained and starts with a type byte:
 *   0x00 undefined (only inside UPDATE records)     0x01 integer: 8 bytes, big-endian two's
 * complement 0x02 real: 8 bytes, big-endian IEEE 754 bits    0x03 text: varint length, UTF-8 bytes,
 * no NUL 0x04 blob: varint length, bytes                 0x05 NULL Varints are SQLite's: 1..9
 * bytes, 7 bits per byte big-endian with the high bit as "more", except that a 9th byte contributes
 * all 8 bits. We always write the shortest form.
 *
 * Row layout in memory (ours, never serialised): a 4-byte aligned header of ncol+1 uint32
 * offsets (native byte order) relative to the first field, off[ncol] being the record length,
 * then the fields. Comparing two rows for identity is then one memcmp of the records.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "record.h"

size_t pb_rec__varint_put(uint8_t *p, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;

    if (v <= 0x7f) {
        p[0] = (uint8_t)v;
        return 1;
    }
    if (v <= 0x3fff) {
        p[0] = (uint8_t)((v >> 7) | 0x80);
        p[1] = (uint8_t)(v & 0x7f);
        return 2;
    }
    if (v & ((uint64_t)0xff000000 << 32)) { /* needs all 9 bytes */
        p[8] = (uint8_t)v;
        v >>= 8;
        for (int i = 7; i >= 0; i--) {
            p[i] = (uint8_t)((v & 0x7f) | 0x80);
            v >>= 7;
        }
        return 9;
    }
    do {
        tmp[n++] = (uint8_t)((v & 0x7f) | 0x80);
        v >>= 7;
    } while (v != 0);
    tmp[0] &= 0x7f;
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

size_t pb_rec__varint_get(const uint8_t *p, size_t n, uint64_t *v)
{
    uint64_t x = 0;
    for (size_t i = 0; i < 8; i++) {
        if (i >= n)
            return 0;
        x = (x << 7) | (p[i] & 0x7f);
        if (!(p[i] & 0x80)) {
            *v = x;
            return i + 1;
        }
    }
    if (n < 9)
        return 0;
    *v = (x << 8) | p[8];
    return 9;
}

size_t pb_rec__field_len(const uint8_t *p)
{
    uint64_t x = 0;
    size_t k;
    switch (p[0]) {
    case PB_REC_INT:
    case PB_REC_REAL:
        return 9;
    case PB_REC_TEXT:
    case PB_REC_BLOB:
        k = pb_rec__varint_get(p + 1, PB_VARINT_MAX, &x);
        return 1 + k + (size_t)x;
    default:
        return 1;
    }
}

void pb_rec__decode(const uint8_t *p, pb_val *v)
{
    uint64_t x;
    size_t k;

    v->type = p[0];
    switch (p[0]) {
    case PB_REC_INT:
        v->i = (int64_t)pb_get_be64(p + 1);
        break;
    case PB_REC_REAL:
        x = pb_get_be64(p + 1);
        memcpy(&v->r, &x, 8);
        break;
    case PB_REC_TEXT:
    case PB_REC_BLOB:
        k = pb_rec__varint_get(p + 1, PB_VARINT_MAX, &x);
        v->z = p + 1 + k;
        v->n = (size_t)x;
        break;
    default:
        break;
    }
}

/* Exact comparison of an integer with a real, as sqlite3IntFloatCompare(). */
static int int_real_cmp(int64_t i, double r)
{
    if (isnan(r)) /* SQLite never stores NaN; order it like NULL to stay total */
        return 1;
    if (r < -9223372036854775808.0)
        return 1;
    if (r >= 9223372036854775808.0)
        return -1;
    int64_t y = (int64_t)r;
    if (i < y)
        return -1;
    if (i > y)
        return 1;
    double s = (double)i;
    return s < r ? -1 : s > r ? 1 : 0;
}

static int class_of(int type)
{
    switch (type) {
    case PB_REC_NULL:
        return 0;
    case PB_REC_INT:
    case PB_REC_REAL:
        return 1;
    case PB_REC_TEXT:
        return 2;
    default:
        return 3;
    }
}

int pb_rec__cmp(const pb_val *a, const pb_val *b)
{
    int ca = class_of(a->type), cb = class_of(b->type);
    if (ca != cb)
        return ca < cb ? -1 : 1;
    switch (ca) {
    case 0:
        return 0;
    case 1:
        if (a->type == PB_REC_INT && b->type == PB_REC_INT)
            return a->i < b->i ? -1 : a->i > b->i;
        if (a->type == PB_REC_REAL && b->type == PB_REC_REAL) {
            if (a->r < b->r)
                return -1;
            if (a->r > b->r)
                return 1;
            return 0;
        }
        if (a->type == PB_REC_INT)
            return int_real_cmp(a->i, b->r);
        return -int_real_cmp(b->i, a->r);
    default: {
        size_t n = a->n < b->n ? a->n : b->n;
        int c = n ? memcmp(a->z, b->z, n) : 0;
        if (c)
            return c < 0 ? -1 : 1;
        return a->n < b->n ? -1 : a->n > b->n;
    }
    }
}

int pb_rbuf__reserve(pb_rbuf *b, size_t extra, pb_error *err)
{
    if (b->cap - b->n >= extra)
        return 0;
    size_t max = b->max ? b->max : (size_t)1 << 31;
    if (extra > max || b->n > max - extra)
        return pb_error_set(err, PB_ENOMEM, "sqldiff: row buffer would exceed %zu bytes", max);
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->n < extra)
        cap *= 2;
    if (cap > max)
        cap = max;
    uint8_t *p = realloc(b->p, cap);
    if (!p)
        return pb_error_set(err, PB_ENOMEM, "sqldiff: out of memory (%zu bytes)", cap);
    b->p = p;
    b->cap = cap;
    return 0;
}

void pb_rbuf__dispose(pb_rbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* The encoder behind pb_rec__append_row and the row function: field i is argv[i] when argv is
 * set (the function's arguments), else the statement's column i. */
static inline int append_fields(pb_rbuf *b, sqlite3_stmt *st, sqlite3_value **argv, int ncol,
                                pb_error *err)
{
    int error;
    size_t hdr = PB_ROW_HDR(ncol), pad = (4 - (b->n & 3)) & 3;
    size_t fixed = 9 * (size_t)ncol; /* room kept for the remaining fixed-size fields */

    /* Room for the header and every fixed-size field in one go; text and blobs reserve more. */
    if (b->cap - b->n < pad + hdr + fixed &&
        (error = pb_rbuf__reserve(b, pad + hdr + fixed, err)) < 0)
        return error;
    memset(b->p + b->n, 0, pad);
    b->n += pad;
    size_t hpos = b->n, start = b->n + hdr;
    uint8_t *p = b->p + start;
    uint32_t *off = (uint32_t *)(void *)(b->p + hpos);
    for (int i = 0; i < ncol; i++) {
        sqlite3_value *v = argv ? argv[i] : sqlite3_column_value(st, i);
        int type = sqlite3_value_type(v);
        off[i] = (uint32_t)(p - (b->p + start));
        if (type == SQLITE_INTEGER) {
            p[0] = PB_REC_INT;
            pb_put_be64(p + 1, (uint64_t)sqlite3_value_int64(v));
            p += 9;
        } else if (type == SQLITE_NULL) {
            *p++ = PB_REC_NULL;
        } else if (type == SQLITE_FLOAT) {
            double d = sqlite3_value_double(v);
            uint64_t x;
            memcpy(&x, &d, 8);
            p[0] = PB_REC_REAL;
            pb_put_be64(p + 1, x);
            p += 9;
        } else { /* TEXT or BLOB */
            const void *z =
                type == SQLITE_TEXT ? (const void *)sqlite3_value_text(v) : sqlite3_value_blob(v);
            size_t n = (size_t)sqlite3_value_bytes(v);
            if (!z && n)
                return pb_error_set(err, PB_ENOMEM, "sqldiff: out of memory reading a value");
            size_t used = (size_t)(p - b->p), need = 1 + PB_VARINT_MAX + n + fixed;
            if (b->cap - used < need) {
                b->n = used;
                if ((error = pb_rbuf__reserve(b, need, err)) < 0)
                    return error;
                p = b->p + used;
                off = (uint32_t *)(void *)(b->p + hpos);
            }
            p[0] = type == SQLITE_TEXT ? PB_REC_TEXT : PB_REC_BLOB;
            if (n <= 0x7f) {
                p[1] = (uint8_t)n;
                p += 2;
            } else {
                p += 1 + pb_rec__varint_put(p + 1, n);
            }
            if (n)
                memcpy(p, z, n);
            p += n;
        }
    }
    b->n = (size_t)(p - b->p);
    off[ncol] = (uint32_t)(b->n - start);
    return 0;
}

int pb_rec__append_row(pb_rbuf *b, sqlite3_stmt *st, int ncol, int utf8_db, pb_error *err)
{
    (void)utf8_db;
    return append_fields(b, st, NULL, ncol, err);
}

int pb_rec__append_values(pb_rbuf *b, int argc, sqlite3_value **argv, pb_error *err)
{
    return append_fields(b, NULL, argv, argc, err);
}

int pb_outbuf__init(pb_outbuf *o, pb_sink_fn fn, void *payload, pb_error *err)
{
    memset(o, 0, sizeof(*o));
    o->fn = fn;
    o->payload = payload;
    o->err = err;
    o->buf = malloc(PB_SQLDIFF_CHUNK);
    if (!o->buf)
        return o->rc = pb_error_set(err, PB_ENOMEM, "sqldiff: out of memory");
    return 0;
}

int pb_outbuf__flush(pb_outbuf *o)
{
    if (o->rc || o->n == 0)
        return o->rc;
    int r = o->fn(o->payload, o->buf, o->n, o->err);
    o->n = 0;
    if (r) {
        /* The sink's own message stays (first wins); this one is for a sink that set none. */
        int code = r < 0 ? r : PB_ECANCELLED;
        o->rc = pb_error_set(o->err, code, "sqldiff: the output sink stopped the stream (%d)", r);
    }
    return o->rc;
}

int pb_outbuf__put(pb_outbuf *o, const void *data, size_t n)
{
    const uint8_t *s = data;
    while (n && !o->rc) {
        size_t take = PB_SQLDIFF_CHUNK - o->n;
        if (take > n)
            take = n;
        memcpy(o->buf + o->n, s, take);
        o->n += take;
        o->total += take;
        s += take;
        n -= take;
        if (o->n == PB_SQLDIFF_CHUNK)
            pb_outbuf__flush(o);
    }
    return o->rc;
}

int pb_outbuf__byte(pb_outbuf *o, uint8_t c)
{
    if (o->n < PB_SQLDIFF_CHUNK - 1 && !o->rc) {
        o->buf[o->n++] = c;
        o->total++;
        return 0;
    }
    return pb_outbuf__put(o, &c, 1);
}

void pb_outbuf__dispose(pb_outbuf *o)
{
    free(o->buf);
    o->buf = NULL;
}

int pb_sqldiff_write_file(void *file, const void *data, size_t n, pb_error *err)
{
    FILE *f = file;
    if (!f || fwrite(data, 1, n, f) != n)
        return pb_error_set(err, PB_EIO, "sqldiff: short write");
    return 0;
}

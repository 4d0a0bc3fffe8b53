/*
 * record.h: the session RECORD encoding of SQLite values (internal to sqldiff/): varints, field
 * encoding from a statement row, decoding, SQLite's comparison order, growable buffers with a
 * maximum, and the chunked output buffer behind every stream to a pb_sink_fn.
 * Prerequisites: SQLite headers; base/ only (the error model).
 */
#ifndef PB_SQLDIFF_RECORD_H
#define PB_SQLDIFF_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <sqlite3.h>

#include "plexburst/sqldiff.h"

/* Field type bytes of the session RECORD format (== SQLITE_INTEGER ... SQLITE_NULL). */
#define PB_REC_UNDEF 0
#define PB_REC_INT   1
#define PB_REC_REAL  2
#define PB_REC_TEXT  3
#define PB_REC_BLOB  4
#define PB_REC_NULL  5

#define PB_VARINT_MAX 9 /* bytes of the longest SQLite varint */

/** Writes `v` as a SQLite varint (1..9 bytes, big-endian 7-bit groups); returns its length. */
size_t pb_rec__varint_put(uint8_t *p, uint64_t v);

/** Reads a varint from at most `n` bytes; returns its length, 0 when `n` is too short. */
size_t pb_rec__varint_get(const uint8_t *p, size_t n, uint64_t *v);

/** A decoded field: points into the record it was decoded from. */
typedef struct pb_val {
    int type;         /* PB_REC_* */
    int64_t i;        /* PB_REC_INT */
    double r;         /* PB_REC_REAL */
    const uint8_t *z; /* PB_REC_TEXT / PB_REC_BLOB bytes */
    size_t n;         /* their length */
} pb_val;

/** Length of the (trusted, well-formed) field at `p`. */
size_t pb_rec__field_len(const uint8_t *p);

/** Decodes the (trusted, well-formed) field at `p`. */
void pb_rec__decode(const uint8_t *p, pb_val *v);

/**
 * Compares two values in SQLite's ORDER BY order with the BINARY collation: NULL < INTEGER and
 * REAL (compared numerically, exactly) < TEXT < BLOB (bytewise, then by length). Returns <0, 0
 * or >0. 1 and 1.0, or 0.0 and -0.0, compare equal, as in SQLite.
 */
int pb_rec__cmp(const pb_val *a, const pb_val *b);

/** A growable byte buffer that refuses to grow beyond `max` (PB_ENOMEM). */
typedef struct pb_rbuf {
    uint8_t *p;
    size_t n, cap, max;
} pb_rbuf;

/** Makes room for `extra` more bytes. */
int pb_rbuf__reserve(pb_rbuf *b, size_t extra, pb_error *err);
void pb_rbuf__dispose(pb_rbuf *b);

/**
 * An encoded row: `ncol` fields back to back in `rec`, field i at rec + off[i], and off[ncol] the
 * total length. Rows live in buffers owned by their producer (pb_rowsrc, group buffers).
 */
typedef struct pb_row {
    const uint8_t *rec;
    const uint32_t *off;
} pb_row;

/**
 * Appends the current row of `st` (its first `ncol` result columns) to `b` as session fields,
 * preceded by the ncol+1 offsets (uint32, native order, relative to the first field): the layout
 * pb_rowsrc batches use. Text is written as UTF-8. `utf8_db` says the DB stores UTF-8, so that
 * text is read with sqlite3_value_blob(): sqlite3_value_text() would copy every string to add a
 * NUL terminator (a malloc, which takes SQLite's global memory mutex: readers on two threads
 * then serialise on it).
 */
int pb_rec__append_row(pb_rbuf *b, sqlite3_stmt *st, int ncol, int utf8_db, pb_error *err);

/** Length of the row header that pb_rec__append_row writes for `ncol` columns. */
#define PB_ROW_HDR(ncol) (4u * ((size_t)(ncol) + 1u))

/** The same for the values `argv[0..argc)` (the arguments of an SQL function). */
int pb_rec__append_values(pb_rbuf *b, int argc, sqlite3_value **argv, pb_error *err);

/**
 * Chunked output with a sticky error: bytes are gathered into a PB_SQLDIFF_CHUNK buffer and
 * handed to `fn` when it fills; pieces larger than the buffer go out directly, in chunks.
 */
typedef struct pb_outbuf {
    pb_sink_fn fn;
    void *payload;
    uint8_t *buf; /* PB_SQLDIFF_CHUNK bytes */
    size_t n;
    uint64_t total; /* bytes accepted so far (flushed or buffered) */
    int rc;         /* sticky: first error */
    pb_error *err;
} pb_outbuf;

int pb_outbuf__init(pb_outbuf *o, pb_sink_fn fn, void *payload, pb_error *err);
/** Appends bytes; a no-op once an error is recorded. Returns o->rc. */
int pb_outbuf__put(pb_outbuf *o, const void *data, size_t n);
int pb_outbuf__byte(pb_outbuf *o, uint8_t c);
/** Hands the buffered bytes to the callback. */
int pb_outbuf__flush(pb_outbuf *o);
void pb_outbuf__dispose(pb_outbuf *o);

#endif

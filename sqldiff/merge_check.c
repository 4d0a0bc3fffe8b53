/*
 * merge_check.c: a streaming check of the framing of a changeset file before the merge hands it
 * to SQLite's iterator: table headers ('T', column count, key flags, NUL-terminated name), records
 * (op, indirect flag, one or two records of typed values), value types and lengths, all within the
 * file. Patchsets ('P') are refused.
 * Why: SQLite 3.40's streaming iterator (sqlite3changeset_start_strm) loops forever on a file that
 * ends inside a table header (sessionChangesetBufferTblhdr waits for a NUL that never comes), and
 * a framing error is better reported with its record number before anything is planned or written.
 * Role: internal to sqldiff/merge*.c (merge_internal.h). Memory: a fixed read buffer.
 * Prerequisites: none beyond libc; the format is SQLite's session CHANGESET format.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "merge_internal.h"

typedef struct rd {
    FILE *f;
    unsigned char buf[65536];
    size_t n, i;
    uint64_t off; /* offset of buf[0] in the file */
    int eof, ioerr;
} rd;

/* Makes sure a byte is buffered: 0, or -1 at the end of the file (I/O errors flagged). */
static int rd_fill(rd *r)
{
    if (r->i < r->n)
        return 0;
    if (r->eof)
        return -1;
    r->off += r->n;
    r->n = fread(r->buf, 1, sizeof(r->buf), r->f);
    r->i = 0;
    if (r->n == 0) {
        r->eof = 1;
        r->ioerr = ferror(r->f);
        return -1;
    }
    return 0;
}

/* The next byte, or -1 at the end. */
static int rd_byte(rd *r)
{
    return rd_fill(r) < 0 ? -1 : r->buf[r->i++];
}

/* Skips `n` bytes; 0, or -1 when the file ends first. */
static int rd_skip(rd *r, uint64_t n)
{
    while (n) {
        if (rd_fill(r) < 0)
            return -1;
        size_t avail = r->n - r->i;
        size_t take = avail < n ? avail : (size_t)n;
        r->i += take;
        n -= take;
    }
    return 0;
}

/* SQLite's varint (big-endian groups of 7 bits, a 9th byte of 8 bits). */
static int rd_varint(rd *r, uint64_t *out)
{
    uint64_t v = 0;
    for (int k = 0; k < 9; k++) {
        int b = rd_byte(r);
        if (b < 0)
            return -1;
        if (k == 8) {
            *out = (v << 8) | (uint64_t)b;
            return 0;
        }
        v = (v << 7) | (uint64_t)(b & 0x7f);
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

static uint64_t rd_pos(const rd *r)
{
    return r->off + r->i;
}

int merge_check_framing(mctx *c, const char *path)
{
    int error = 0;
    rd *r = calloc(1, sizeof(*r));
    if (!r)
        return pb_error_set(c->err, PB_ENOMEM, "merge: out of memory");
    r->f = fopen(path, "rb");
    if (!r->f) {
        error = errno == ENOENT
                    ? pb_error_set(c->err, PB_ENOTFOUND, "merge: changeset %s not found", path)
                    : pb_error_errno(c->err, "merge: opening changeset %s", path);
        free(r);
        return error;
    }
    uint64_t ncol = 0, rec = 0, namelen;
    const char *why = NULL;
    for (;;) {
        uint64_t at = rd_pos(r);
        int op = rd_byte(r);
        if (op < 0)
            break; /* a clean end between records */
        if (op == 'P') {
            why = "a patchset (not supported)";
        } else if (op == 'T') {
            if (rd_varint(r, &ncol) < 0 || ncol == 0 || ncol > 65536) {
                why = "bad column count in a table header";
            } else if (rd_skip(r, ncol) < 0) {
                why = "truncated table header";
            } else {
                int b;
                namelen = 0;
                while ((b = rd_byte(r)) > 0 && namelen < 4096)
                    namelen++;
                if (b != 0 || namelen == 0)
                    why = b < 0 ? "truncated table header" : "bad table name";
            }
        } else if (op == SQLITE_INSERT || op == SQLITE_DELETE || op == SQLITE_UPDATE) {
            rec++;
            if (!ncol)
                why = "a record before any table header";
            else if (rd_byte(r) < 0)
                why = "truncated record";
            for (int part = 0; !why && part < (op == SQLITE_UPDATE ? 2 : 1); part++)
                for (uint64_t i = 0; !why && i < ncol; i++) {
                    int type = rd_byte(r);
                    uint64_t len;
                    switch (type) {
                    case 0:
                        if (op != SQLITE_UPDATE)
                            why = "undefined value outside an update";
                        break;
                    case 1:
                    case 2:
                        if (rd_skip(r, 8) < 0)
                            why = "truncated value";
                        break;
                    case 3:
                    case 4:
                        if (rd_varint(r, &len) < 0 || len > 0x7fffffff || rd_skip(r, len) < 0)
                            why = "truncated value";
                        break;
                    case 5:
                        break;
                    default:
                        why = type < 0 ? "truncated record" : "bad value type";
                    }
                }
        } else {
            why = "bad record type";
        }
        if (why || r->ioerr) {
            if (r->ioerr)
                error = pb_error_errno(c->err, "merge: reading changeset %s", path);
            else
                error = pb_error_set(c->err, PB_ECORRUPT,
                                     "merge: %s: changeset corrupt at byte %llu (record %llu): %s",
                                     path, (unsigned long long)at, (unsigned long long)rec, why);
            break;
        }
    }
    if (!error && r->ioerr)
        error = pb_error_errno(c->err, "merge: reading changeset %s", path);
    fclose(r->f);
    free(r);
    return error;
}

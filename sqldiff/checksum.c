/*
 * checksum.c: pb_sqldiff_checksum(), the logical checksum of a whole DB: independent of page
 * layout and row order, sensitive to every value.
 * Role: verifies that a sync produced the intended rows (target vs. patched copy) without a
 * diff, and tells which tables differ. Prerequisites: libxxhash (XXH3-128); tables.c decides
 * which tables take part (same rules and filter as the diff).
 *
 * CANONICAL ENCODING (ours; version 1). All integers below are big-endian, varints are SQLite
 * varints, and "record" is the session RECORD encoding of record.c: per column in declaration
 * order (PRAGMA table_info, so generated columns are left out) the type byte and payload
 * (integer: 8 bytes; real: its 8 IEEE-754 bytes, so -0.0 != 0.0; text: varint length + UTF-8
 * bytes, whatever the DB's encoding; blob: varint length + bytes; NULL: 0x05).
 *   row hash     h(r)  = XXH3_128bits_withSeed(record(r), seed(T)),
 *                        seed(T) = XXH3_64bits(UTF-8 bytes of the table name T)
 *   table sum    S(T)  = sum of h(r) over the rows of T, mod 2^128 (h read as the 128-bit
 *                        number high64 * 2^64 + low64). A sum, not a XOR, so duplicate rows
 *                        count. The rowid is not hashed: rowid tables compare as multisets.
 *   table entry  E(T)  = varint(len T) T  varint(ncol)  (varint(len c) c for each column c)
 *                        u64 row count  u64 high64(S)  u64 low64(S)
 *   digest             = XXH3_128bits("plexburst-checksum-1\0" E(T1) E(T2) ...), tables in
 *                        bytewise name order, written high64 then low64 (XXH128 canonical).
 * Equal row multisets give equal digests however the rows are stored; any changed value,
 * storage class, row, row count, table or column name changes it (barring XXH3 collisions:
 * fine against accidents, no defence against an adversary who crafts rows). Because a table's
 * entry depends only on its rows, a caller that knows a table holds the same rows as in a DB
 * summed before hands its count and sum back (pb_diff_options.reuse) and the table is not read.
 */
#include <string.h>
#include <xxhash.h>

#include "hex.h"
#include "pagecmp.h"
#include "record.h"
#include "rowsrc.h"
#include "tables.h"

#define CHECKSUM_MAGIC "plexburst-checksum-1" /* hashed with its NUL */

static void put_u64(uint8_t *p, uint64_t x)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)x;
        x >>= 8;
    }
}

static void update_varint(XXH3_state_t *h, uint64_t v)
{
    uint8_t b[PB_VARINT_MAX];
    XXH3_128bits_update(h, b, pb_rec__varint_put(b, v));
}

static void update_str(XXH3_state_t *h, const char *s)
{
    size_t n = strlen(s);
    update_varint(h, n);
    XXH3_128bits_update(h, s, n);
}

static int checksum_table(XXH3_state_t *h, pb_checksum *out, sqlite3 *db, int utf8,
                          const pb_table *t, const pb_diff_options *opts, pb_error *err)
{
    int error = 0;
    sqlite3_stmt *st = NULL;
    pb_rowsrc src;
    uint64_t hi = 0, lo = 0, rows = 0;
    XXH64_hash_t seed = XXH3_64bits(t->name, strlen(t->name));
    int threaded = !(opts && (opts->flags & PB_DIFF_SINGLE_THREAD));

    memset(&src, 0, sizeof(src));
    if (opts && opts->version >= 3 && opts->reuse) {
        uint8_t sum[16];
        if (opts->reuse(t->name, &rows, sum, opts->reuse_payload) == 1) {
            for (int i = 0; i < 8; i++) {
                hi = hi << 8 | sum[i];
                lo = lo << 8 | sum[8 + i];
            }
            goto sum;
        }
    }
    /* a UTF-8 DB is read one function call per row (rowsrc.h), as the diff reads it */
    int packed = 0;
    if (utf8 && (error = pb_rowsrc__register(&src, db, err)) < 0)
        goto done;
    if ((error = utf8 ? pb_tables__select_packed(&st, &packed, db, t, PB_ORDER_NONE, err)
                      : pb_tables__select(&st, db, t, PB_ORDER_NONE, err)) < 0 ||
        (error = packed ? pb_rowsrc__open_packed(&src, st, t->ncol, threaded, err)
                        : pb_rowsrc__open(&src, st, t->ncol, utf8, threaded, err)) < 0)
        goto done;
    for (;;) {
        if ((error = pb_rowsrc__next(&src, err)) < 0)
            goto done;
        if (src.eof)
            break;
        XXH128_hash_t r = XXH3_128bits_withSeed(src.row.rec, src.row.off[t->ncol], seed);
        lo += r.low64;
        hi += r.high64 + (lo < r.low64);
    }
    rows = src.rows;
sum:;
    uint8_t tail[24];
    update_str(h, t->name);
    update_varint(h, (uint64_t)t->ncol);
    for (int i = 0; i < t->ncol; i++)
        update_str(h, t->cols[i]);
    put_u64(tail, rows);
    put_u64(tail + 8, hi);
    put_u64(tail + 16, lo);
    XXH3_128bits_update(h, tail, sizeof(tail));
    out->rows += rows;
    out->tables++;
    if (opts && opts->table_checksum) {
        pb_table_checksum tc;
        tc.table = t->name;
        tc.columns = (unsigned)t->ncol;
        tc.rows = rows;
        memcpy(tc.sum, tail + 8, 16);
        if (opts->table_checksum(&tc, opts->table_payload))
            error = pb_error_set(err, PB_ECANCELLED, "sqldiff: checksum cancelled after table %s",
                                 t->name);
    }
done:
    pb_rowsrc__close(&src);
    sqlite3_finalize(st);
    if (utf8)
        pb_rowsrc__unregister(db);
    return error;
}

int pb_sqldiff_checksum(pb_checksum *out, const char *path, const pb_diff_options *opts,
                        pb_error *err)
{
    int error = 0;
    sqlite3 *db = NULL;
    pb_tablelist l = {0};
    XXH3_state_t *h = NULL;

    if (!out || !path)
        return pb_error_set(err, PB_EINVALID, "sqldiff: checksum needs a path and an output");
    memset(out, 0, sizeof(*out));
    if (opts && (opts->version < 1 || opts->version > PB_DIFF_OPTIONS_VERSION))
        return pb_error_set(err, PB_EINVALID, "sqldiff: unknown options version %u", opts->version);
    if (!(h = XXH3_createState())) {
        error = pb_error_set(err, PB_ENOMEM, "sqldiff: out of memory");
        goto done;
    }
    XXH3_128bits_reset(h);
    XXH3_128bits_update(h, CHECKSUM_MAGIC, sizeof(CHECKSUM_MAGIC));
    int utf8 = 0;
    if ((error = pb_tables__open(&db, &utf8, path, opts, 0, err)) < 0 ||
        (error = pb_tables__list(&l, db, opts, err)) < 0)
        goto done;
    for (size_t i = 0; i < l.n && !error; i++)
        error = checksum_table(h, out, db, utf8, &l.t[i], opts, err);
    if (!error) {
        XXH128_canonical_t c;
        XXH128_canonicalFromHash(&c, XXH3_128bits_digest(h));
        memcpy(out->digest, c.digest, 16);
    }
done:
    XXH3_freeState(h);
    pb_tables__dispose(&l);
    pb_tables__close(db);
    return error;
}

const char *pb_checksum_hex(char hex[PB_CHECKSUM_HEX_SIZE], const pb_checksum *sum)
{
    pb_hex_encode(hex, sum->digest, sizeof(sum->digest));
    return hex;
}

int pb_checksum_equal(const pb_checksum *a, const pb_checksum *b)
{
    return memcmp(a->digest, b->digest, 16) == 0;
}

/* The rows of `t` with a rowid in `ranges`, summed as checksum_table sums them. */
static int sum_ranges(uint64_t *rows, uint64_t *hi_out, uint64_t *lo_out, sqlite3 *db, int utf8,
                      const pb_table *t, const pb_rowid_ranges *ranges, pb_error *err)
{
    int error = 0, rc, packed = 0;
    sqlite3_stmt *st = NULL;
    pb_rowsrc src;
    uint64_t hi = 0, lo = 0, n = 0;
    XXH64_hash_t seed = XXH3_64bits(t->name, strlen(t->name));
    sqlite3_str *s = sqlite3_str_new(db);
    char *sql = NULL;

    memset(&src, 0, sizeof(src));
    packed = utf8 && t->ncol <= sqlite3_limit(db, SQLITE_LIMIT_FUNCTION_ARG, -1);
    if (packed && (error = pb_rowsrc__register(&src, db, err)) < 0)
        goto done;
    sqlite3_str_appendall(s, packed ? "SELECT " PB_ROWSRC_FN "(" : "SELECT ");
    for (int i = 0; i < t->ncol; i++)
        sqlite3_str_appendf(s, "%s\"%w\"", i ? "," : "", t->cols[i]);
    sqlite3_str_appendf(s, "%s FROM main.\"%w\" WHERE rowid BETWEEN ?1 AND ?2", packed ? ")" : "",
                        t->name);
    if (!(sql = sqlite3_str_finish(s))) {
        error = pb_error_set(err, PB_ENOMEM, "sqldiff: out of memory");
        goto done;
    }
    if ((rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL)) != SQLITE_OK) {
        error = pb_error_setd(err, PB_ESQLITE, rc, "sqldiff: %s: %s", t->name, sqlite3_errmsg(db));
        goto done;
    }
    for (size_t k = 0; k < ranges->n && !error; k++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, ranges->r[k].lo);
        sqlite3_bind_int64(st, 2, ranges->r[k].hi);
        if ((error = packed ? pb_rowsrc__open_packed(&src, st, t->ncol, 0, err)
                            : pb_rowsrc__open(&src, st, t->ncol, utf8, 0, err)) < 0)
            break;
        for (;;) {
            if ((error = pb_rowsrc__next(&src, err)) < 0)
                break;
            if (src.eof)
                break;
            XXH128_hash_t r = XXH3_128bits_withSeed(src.row.rec, src.row.off[t->ncol], seed);
            lo += r.low64;
            hi += r.high64 + (lo < r.low64);
        }
        n += src.rows;
        pb_rowsrc__close(&src);
        memset(&src, 0, sizeof(src));
    }
    *rows = n;
    *hi_out = hi;
    *lo_out = lo;
done:
    pb_rowsrc__close(&src);
    sqlite3_finalize(st);
    sqlite3_free(sql);
    if (packed)
        pb_rowsrc__unregister(db);
    return error;
}

int pb_sqldiff_sum_ranges(uint64_t *rows, uint8_t sum[16], const char *path, const char *table,
                          const pb_rowid_ranges *ranges, const pb_diff_options *opts, pb_error *err)
{
    int error = 0, utf8 = 0;
    sqlite3 *db = NULL;
    pb_tablelist l = {0};
    uint64_t hi = 0, lo = 0;
    const pb_table *t = NULL;
    *rows = 0;
    memset(sum, 0, 16);
    if ((error = pb_tables__open(&db, &utf8, path, opts, 0, err)) < 0 ||
        (error = pb_tables__list(&l, db, opts, err)) < 0)
        goto done;
    for (size_t i = 0; i < l.n && !t; i++)
        if (strcmp(l.t[i].name, table) == 0)
            t = &l.t[i];
    if (!t) {
        error = pb_error_set(err, PB_ENOTFOUND, "sqldiff: no table %s in %s", table, path);
        goto done;
    }
    if ((error = sum_ranges(rows, &hi, &lo, db, utf8, t, ranges, err)) < 0)
        goto done;
    put_u64(sum, hi);
    put_u64(sum + 8, lo);
done:
    pb_tables__dispose(&l);
    pb_tables__close(db);
    return error;
}

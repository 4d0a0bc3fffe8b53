/*
 * diff.c: pb_sqldiff_diff(), the row diff of two SQLite DBs as an ordered merge join, streamed
 * out as a changeset in SQLite's session format.
 * Role: produces the row delta the engine ships and the merge applies. Prerequisites: both DBs
 * at the same schema (checked: PB_ESCHEMA), UTF-8; see tables.c for which tables take part.
 *
 * OUTPUT CONTRACT. The format is SQLite's CHANGESET (or, with PB_DIFF_PATCHSET, PATCHSET)
 * format, specified in the comment at the top of ext/session/sqlite3session.c and summarised in
 * record.c. What this producer guarantees on top of the format:
 *  - One table header per table that has changes, tables in bytewise name order, nothing for
 *    unchanged tables: identical DBs give an empty (zero-byte) changeset.
 *  - Header PK bytes are what sqlite3session_diff() writes (and what sqlite3changeset_apply()
 *    compares with memcmp): 0 for a non-PK column, else the column's 1-based position in the
 *    PRIMARY KEY (capped at 255). Tables are keyed like sqlite3session_diff() keys them.
 *  - Within a table, records follow ascending key order; the indirect flag is always 0.
 *  - INSERT carries the full new row, DELETE the full old row (patchset: its PK fields only),
 *    UPDATE the PK and the old values of the changed columns (others undefined), then the new
 *    values of the changed columns (PK and unchanged columns undefined); a patchset UPDATE is
 *    one record with the PK and the new values of the changed columns.
 *  - A column value is changed when its storage class or its bytes differ (reals bitwise), so
 *    applying the changeset to the base reproduces the target exactly, -0.0 and 1.0 included.
 *    sqlite3session_diff() is laxer: it skips 0.0 -> -0.0, and 1 -> 1.0 unless another column
 *    of the row changed. Two keys equal for SQLite but not identical (1 and 1.0) make a DELETE
 *    of the old row followed by an INSERT of the new one.
 *  - Tables without a PRIMARY KEY, and rowid tables holding a NULL in a PK column (which the
 *    session module cannot address and skips), are diffed as row multisets: the header flags
 *    every column as a PK column (positions 1..n in column order), and for each distinct row
 *    the surplus copies are emitted, as DELETEs (base has more) or INSERTs (target has more).
 *    No UPDATE is ever emitted for them, and all their DELETEs precede all their INSERTs, so
 *    that an applier working in stream order (DELETE: remove one identical row; INSERT: add
 *    one) never trips over a UNIQUE or PK constraint the target satisfies. The rowid is not
 *    part of the data.
 *
 * ALGORITHM. Per table, one SELECT on each DB ordered by the key with COLLATE BINARY (the PK
 * index serves it unless a PK column has another collation, when SQLite sorts), read by two
 * row sources (rowsrc.c): the target's on a reader thread, the base's on the calling thread,
 * which also merges (one hand-off between threads instead of two: the diff is judged per
 * CPU-second, and two readers plus a merger on two cores cost more CPU for no shorter wall
 * time). Rows are read through the row function (one call into SQLite per row) where the
 * plan needs no sort. The sides are merged with pb_rec__cmp(), which orders values exactly as
 * SQLite's ORDER BY does (multisets: two passes, DELETEs then INSERTs). Each side is checked
 * to be strictly ascending (a corrupt index or an ordering mismatch is PB_ECORRUPT, never a
 * wrong changeset). Memory: the output chunk, the reader's batches, and for multisets one
 * group of equal rows.
 */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "record.h"
#include "rowsrc.h"
#include "tables.h"

#define OP_INSERT 18 /* SQLITE_INSERT */
#define OP_DELETE 9  /* SQLITE_DELETE */
#define OP_UPDATE 23 /* SQLITE_UPDATE */

typedef struct side {
    pb_rowsrc src;
    sqlite3_stmt *st;
    pb_rbuf prev; /* key fields of the previous row, for the order check */
    int have_prev;
    const char *what; /* "base" / "target" */
} side;

typedef struct tdiff {
    const pb_table *t;
    pb_outbuf *o;
    int patchset;
    int has_pk;
    int ncol;
    uint8_t *flags;   /* header PK bytes */
    uint8_t *changed; /* per column, scratch */
    int header_done;
    pb_diff_table_stats ts;
    uint64_t rows_compared;
    pb_rbuf head, ga, gb; /* multiset: group head and the two groups */
    pb_error *err;
} tdiff;

static inline size_t field_len_at(const pb_row *r, int i)
{
    return r->off[i + 1] - r->off[i];
}

static inline const uint8_t *field_at(const pb_row *r, int i)
{
    return r->rec + r->off[i];
}

static inline int64_t be64_signed(const uint8_t *p)
{
    return (int64_t)pb_get_be64(p);
}

static inline int field_cmp(const uint8_t *x, const uint8_t *y)
{
    if (x[0] == PB_REC_INT && y[0] == PB_REC_INT) {
        int64_t a = be64_signed(x + 1), b = be64_signed(y + 1);
        return a < b ? -1 : a > b;
    }
    pb_val a, b;
    pb_rec__decode(x, &a);
    pb_rec__decode(y, &b);
    return pb_rec__cmp(&a, &b);
}

/* Compares the keys of two rows: the PK columns in PK order, or every column for multisets. */
static int key_cmp(const tdiff *d, const pb_row *a, const pb_row *b)
{
    if (d->has_pk) {
        for (int k = 0; k < d->t->npk; k++) {
            int c = d->t->pkcol[k];
            int r = field_cmp(field_at(a, c), field_at(b, c));
            if (r)
                return r;
        }
        return 0;
    }
    for (int i = 0; i < d->ncol; i++) {
        int r = field_cmp(field_at(a, i), field_at(b, i));
        if (r)
            return r;
    }
    return 0;
}

/* ---- output ---------------------------------------------------------------------------- */

static int emit_header(tdiff *d)
{
    uint8_t v[PB_VARINT_MAX];
    if (d->header_done)
        return d->o->rc;
    d->header_done = 1;
    pb_outbuf__byte(d->o, d->patchset ? 'P' : 'T');
    pb_outbuf__put(d->o, v, pb_rec__varint_put(v, (uint64_t)d->ncol));
    pb_outbuf__put(d->o, d->flags, (size_t)d->ncol);
    return pb_outbuf__put(d->o, d->t->name, strlen(d->t->name) + 1);
}

static int emit_insert(tdiff *d, const pb_row *r)
{
    emit_header(d);
    pb_outbuf__byte(d->o, OP_INSERT);
    pb_outbuf__byte(d->o, 0);
    d->ts.inserted++;
    return pb_outbuf__put(d->o, r->rec, r->off[d->ncol]);
}

static int emit_delete(tdiff *d, const pb_row *r)
{
    emit_header(d);
    pb_outbuf__byte(d->o, OP_DELETE);
    pb_outbuf__byte(d->o, 0);
    d->ts.deleted++;
    if (!d->patchset)
        return pb_outbuf__put(d->o, r->rec, r->off[d->ncol]);
    for (int i = 0; i < d->ncol; i++)
        if (d->flags[i])
            pb_outbuf__put(d->o, field_at(r, i), field_len_at(r, i));
    return d->o->rc;
}

static int emit_update(tdiff *d, const pb_row *a, const pb_row *b)
{
    emit_header(d);
    pb_outbuf__byte(d->o, OP_UPDATE);
    pb_outbuf__byte(d->o, 0);
    d->ts.updated++;
    if (!d->patchset) {
        for (int i = 0; i < d->ncol; i++) {
            if (d->flags[i] || d->changed[i])
                pb_outbuf__put(d->o, field_at(a, i), field_len_at(a, i));
            else
                pb_outbuf__byte(d->o, PB_REC_UNDEF);
        }
        for (int i = 0; i < d->ncol; i++) {
            if (d->changed[i])
                pb_outbuf__put(d->o, field_at(b, i), field_len_at(b, i));
            else
                pb_outbuf__byte(d->o, PB_REC_UNDEF);
        }
    } else {
        for (int i = 0; i < d->ncol; i++) {
            if (d->flags[i] || d->changed[i])
                pb_outbuf__put(d->o, field_at(b, i), field_len_at(b, i));
            else
                pb_outbuf__byte(d->o, PB_REC_UNDEF);
        }
    }
    return d->o->rc;
}

/* ---- PK tables ------------------------------------------------------------------------- */

static int order_error(tdiff *d, const side *s)
{
    return pb_error_set(d->err, PB_ECORRUPT,
                        "sqldiff: table %s: rows of the %s DB are not in strictly ascending key "
                        "order (corrupt index or collation mismatch)",
                        d->t->name, s->what);
}

/* Remembers the key fields of the current row (PK order). */
static int save_key(tdiff *d, side *s)
{
    const pb_row *r = &s->src.row;
    s->prev.n = 0;
    for (int k = 0; k < d->t->npk; k++) {
        int c = d->t->pkcol[k];
        size_t n = field_len_at(r, c);
        int error = pb_rbuf__reserve(&s->prev, n, d->err);
        if (error < 0)
            return error;
        memcpy(s->prev.p + s->prev.n, field_at(r, c), n);
        s->prev.n += n;
    }
    s->have_prev = 1;
    return 0;
}

/* Advances one side of a PK merge and checks that its keys strictly ascend. */
static int advance_pk(tdiff *d, side *s)
{
    int error;
    if (d->t->npk == 1) { /* fast path: one integer key column, the usual case */
        const uint8_t *x = field_at(&s->src.row, d->t->pkcol[0]);
        if (x[0] == PB_REC_INT) {
            int64_t prev = be64_signed(x + 1);
            if ((error = pb_rowsrc__next(&s->src, d->err)) < 0 || s->src.eof)
                return error;
            const uint8_t *y = field_at(&s->src.row, d->t->pkcol[0]);
            if (y[0] == PB_REC_INT)
                return be64_signed(y + 1) > prev ? 0 : order_error(d, s);
            pb_val a = {PB_REC_INT, prev, 0, NULL, 0}, b;
            pb_rec__decode(y, &b);
            return pb_rec__cmp(&a, &b) < 0 ? 0 : order_error(d, s);
        }
    }
    if ((error = save_key(d, s)) < 0 || (error = pb_rowsrc__next(&s->src, d->err)) < 0)
        return error;
    if (s->src.eof)
        return 0;
    const uint8_t *p = s->prev.p;
    for (int k = 0; k < d->t->npk; k++) {
        int c = field_cmp(p, field_at(&s->src.row, d->t->pkcol[k]));
        if (c < 0)
            return 0;
        if (c > 0)
            return order_error(d, s);
        p += pb_rec__field_len(p);
    }
    return order_error(d, s); /* equal keys: a duplicate primary key */
}

static int merge_pk(tdiff *d, side *a, side *b)
{
    int error = 0;
    while (!error && (!a->src.eof || !b->src.eof)) {
        int c = a->src.eof ? 1 : b->src.eof ? -1 : key_cmp(d, &a->src.row, &b->src.row);
        if (c < 0) {
            if ((error = emit_delete(d, &a->src.row)) < 0)
                break;
            error = advance_pk(d, a);
            continue;
        }
        if (c > 0) {
            if ((error = emit_insert(d, &b->src.row)) < 0)
                break;
            error = advance_pk(d, b);
            continue;
        }
        const pb_row *x = &a->src.row, *y = &b->src.row;
        d->rows_compared++;
        uint32_t len = x->off[d->ncol];
        if (len != y->off[d->ncol] || memcmp(x->rec, y->rec, len) != 0) {
            int pk_differs = 0, any = 0;
            for (int i = 0; i < d->ncol; i++) {
                size_t n = field_len_at(x, i);
                int ch = n != field_len_at(y, i) || memcmp(field_at(x, i), field_at(y, i), n);
                d->changed[i] = (uint8_t)(ch && !d->flags[i]);
                any |= d->changed[i];
                if (ch && d->flags[i])
                    pk_differs = 1;
            }
            if (pk_differs) { /* same key for SQLite (1 vs 1.0), not the same value */
                if ((error = emit_delete(d, x)) < 0 || (error = emit_insert(d, y)) < 0)
                    break;
            } else if (any && (error = emit_update(d, x, y)) < 0) {
                break;
            }
        }
        if ((error = advance_pk(d, a)) < 0)
            break;
        error = advance_pk(d, b);
    }
    return error;
}

/* ---- row multisets --------------------------------------------------------------------- */

/* Group entry layout in a pb_rbuf: u64 count, u32 record length, u32 pad, record, pad to 8. */
#define GHDR 16u

static size_t entry_size(uint32_t len)
{
    return GHDR + (((size_t)len + 7) & ~(size_t)7);
}

static int group_add(pb_rbuf *g, const pb_row *r, int ncol, pb_error *err)
{
    uint32_t len = r->off[ncol];
    for (size_t pos = 0; pos < g->n;) {
        uint64_t *cnt = (uint64_t *)(void *)(g->p + pos);
        uint32_t l = *(uint32_t *)(void *)(g->p + pos + 8);
        if (l == len && memcmp(g->p + pos + GHDR, r->rec, len) == 0) {
            (*cnt)++;
            return 0;
        }
        pos += entry_size(l);
    }
    int error = pb_rbuf__reserve(g, entry_size(len), err);
    if (error < 0)
        return error;
    uint8_t *e = g->p + g->n;
    memset(e, 0, entry_size(len));
    *(uint64_t *)(void *)e = 1;
    *(uint32_t *)(void *)(e + 8) = len;
    memcpy(e + GHDR, r->rec, len);
    g->n += entry_size(len);
    return 0;
}

static uint64_t group_count(const pb_rbuf *g, const uint8_t *rec, uint32_t len)
{
    for (size_t pos = 0; pos < g->n;) {
        uint32_t l = *(uint32_t *)(void *)(g->p + pos + 8);
        if (l == len && memcmp(g->p + pos + GHDR, rec, len) == 0)
            return *(uint64_t *)(void *)(g->p + pos);
        pos += entry_size(l);
    }
    return 0;
}

/* Offsets of a record's fields, recomputed (group entries keep only the record). */
static void row_view(pb_row *r, uint32_t *off, const uint8_t *rec, int ncol)
{
    uint32_t pos = 0;
    for (int i = 0; i < ncol; i++) {
        off[i] = pos;
        pos += (uint32_t)pb_rec__field_len(rec + pos);
    }
    off[ncol] = pos;
    r->rec = rec;
    r->off = off;
}

/* Reads from `s` every row equal (for SQLite) to the head row into group `g`. */
static int collect(tdiff *d, side *s, const pb_row *head, pb_rbuf *g)
{
    int error = 0;
    g->n = 0;
    while (!s->src.eof) {
        int c = key_cmp(d, &s->src.row, head);
        if (c > 0)
            break;
        if (c < 0)
            return order_error(d, s);
        if ((error = group_add(g, &s->src.row, d->ncol, d->err)) < 0 ||
            (error = pb_rowsrc__next(&s->src, d->err)) < 0)
            return error;
    }
    return 0;
}

/* Emits `op` for each copy of a row that `g` holds more often than `other`. */
static int emit_surplus(tdiff *d, const pb_rbuf *g, const pb_rbuf *other, int op, uint32_t *off)
{
    for (size_t pos = 0; pos < g->n && !d->o->rc;) {
        uint64_t cnt = *(uint64_t *)(void *)(g->p + pos);
        uint32_t len = *(uint32_t *)(void *)(g->p + pos + 8);
        const uint8_t *rec = g->p + pos + GHDR;
        uint64_t have = group_count(other, rec, len);
        pb_row r;
        row_view(&r, off, rec, d->ncol);
        if (op == OP_DELETE)
            d->rows_compared += cnt < have ? cnt : have;
        for (uint64_t k = have; k < cnt && !d->o->rc; k++)
            op == OP_DELETE ? emit_delete(d, &r) : emit_insert(d, &r);
        pos += entry_size(len);
    }
    return d->o->rc;
}

/* One pass over both sides: pass 0 emits the DELETEs, pass 1 the INSERTs. */
static int merge_multiset(tdiff *d, side *a, side *b, int pass)
{
    int error = 0;
    uint32_t *off = malloc(((size_t)d->ncol + 1) * sizeof(uint32_t));
    uint32_t *hoff = malloc(((size_t)d->ncol + 1) * sizeof(uint32_t));
    if (!off || !hoff) {
        error = pb_error_set(d->err, PB_ENOMEM, "sqldiff: out of memory");
        goto done;
    }
    while (!a->src.eof || !b->src.eof) {
        const pb_row *h = a->src.eof                                  ? &b->src.row
                          : b->src.eof                                ? &a->src.row
                          : key_cmp(d, &a->src.row, &b->src.row) <= 0 ? &a->src.row
                                                                      : &b->src.row;
        /* copy the head: the sources move past it */
        uint32_t len = h->off[d->ncol];
        d->head.n = 0;
        if ((error = pb_rbuf__reserve(&d->head, len, d->err)) < 0)
            goto done;
        memcpy(d->head.p, h->rec, len);
        pb_row head;
        row_view(&head, hoff, d->head.p, d->ncol);
        if ((error = collect(d, a, &head, &d->ga)) < 0 ||
            (error = collect(d, b, &head, &d->gb)) < 0)
            goto done;
        error = pass == 0 ? emit_surplus(d, &d->ga, &d->gb, OP_DELETE, off)
                          : emit_surplus(d, &d->gb, &d->ga, OP_INSERT, off);
        if (error < 0)
            goto done;
    }
done:
    free(off);
    free(hoff);
    return error;
}

/* ---- tables ---------------------------------------------------------------------------- */

/* Sets up the table's diff state: keyed or a multiset, the header's PK flags, the stats. */
static int tdiff_init(tdiff *d, pb_outbuf *o, const pb_table *t, sqlite3 *dbb, sqlite3 *dbt,
                      unsigned flags, pb_error *err)
{
    int error = 0;
    d->t = t;
    d->o = o;
    d->err = err;
    d->patchset = (flags & PB_DIFF_PATCHSET) != 0;
    d->ncol = t->ncol;
    d->has_pk = t->npk > 0;
    if (d->has_pk && t->pk_may_be_null) {
        int na = 0, nb = 0;
        if ((error = pb_tables__pk_has_null(&na, dbb, t, err)) < 0 ||
            (error = pb_tables__pk_has_null(&nb, dbt, t, err)) < 0)
            return error;
        if (na || nb)
            d->has_pk = 0;
    }
    d->flags = calloc((size_t)d->ncol, 1);
    d->changed = calloc((size_t)d->ncol, 1);
    if (!d->flags || !d->changed)
        return pb_error_set(err, PB_ENOMEM, "sqldiff: out of memory");
    for (int i = 0; i < d->ncol; i++) {
        int pos = d->has_pk ? t->pkpos[i] : i + 1;
        d->flags[i] = (uint8_t)(pos > 255 ? 255 : pos);
    }
    d->ts.table = t->name;
    d->ts.columns = (unsigned)t->ncol;
    d->ts.has_pk = d->has_pk;
    return 0;
}

/* Adds the table's figures to the totals; reports a diffed table to opts->table_done. */
static int tdiff_account(pb_diff_stats *stats, const tdiff *d, const pb_diff_options *opts,
                         int error)
{
    stats->rows_base += d->ts.rows_base;
    stats->rows_target += d->ts.rows_target;
    stats->rows_compared += d->rows_compared;
    stats->inserted += d->ts.inserted;
    stats->updated += d->ts.updated;
    stats->deleted += d->ts.deleted;
    if (error)
        return error;
    stats->tables++;
    if (d->header_done)
        stats->tables_changed++;
    if (!d->has_pk)
        stats->tables_without_pk++;
    if (opts && opts->table_done && opts->table_done(&d->ts, opts->table_payload))
        return pb_error_set(d->err, PB_ECANCELLED, "sqldiff: cancelled after table %s", d->t->name);
    return 0;
}

static int open_side(side *s, int packed, int ncol, int threaded, pb_error *err)
{
    if (packed)
        return pb_rowsrc__open_packed(&s->src, s->st, ncol, threaded, err);
    return pb_rowsrc__open(&s->src, s->st, ncol, 1, threaded, err);
}

static int diff_table(pb_diff_stats *stats, pb_outbuf *o, const pb_table *t, sqlite3 *dbb,
                      sqlite3 *dbt, unsigned flags, const pb_diff_options *opts, pb_error *err)
{
    int error = 0;
    tdiff d;
    side a, b;
    int threaded = !(flags & PB_DIFF_SINGLE_THREAD);
    uint64_t bytes0 = o->total;

    memset(&d, 0, sizeof(d));
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a.what = "base";
    b.what = "target";
    if ((error = tdiff_init(&d, o, t, dbb, dbt, flags, err)) < 0)
        goto done;
    int order = d.has_pk ? PB_ORDER_PK : PB_ORDER_ALL;
    int pa = 0, pb = 0;
    if ((error = pb_rowsrc__register(&a.src, dbb, err)) < 0 ||
        (error = pb_rowsrc__register(&b.src, dbt, err)) < 0 ||
        (error = pb_tables__select_packed(&a.st, &pa, dbb, t, order, err)) < 0 ||
        (error = pb_tables__select_packed(&b.st, &pb, dbt, t, order, err)) < 0)
        goto done;
    /* Multisets take two passes, so that all their DELETEs precede all their INSERTs. */
    for (int pass = 0; pass < (d.has_pk ? 1 : 2) && !error; pass++) {
        if (pass > 0) {
            pb_rowsrc__close(&a.src);
            pb_rowsrc__close(&b.src);
            sqlite3_reset(a.st);
            sqlite3_reset(b.st);
        }
        /* the base on this thread, the target on a reader thread (see ALGORITHM) */
        if ((error = open_side(&a, pa, d.ncol, 0, err)) < 0 ||
            (error = open_side(&b, pb, d.ncol, threaded, err)) < 0 ||
            (error = pb_rowsrc__next(&a.src, err)) < 0 ||
            (error = pb_rowsrc__next(&b.src, err)) < 0)
            goto done;
        error = d.has_pk ? merge_pk(&d, &a, &b) : merge_multiset(&d, &a, &b, pass);
        if (pass == 0) {
            d.ts.rows_base = a.src.rows;
            d.ts.rows_target = b.src.rows;
        }
    }
    if (!error)
        error = o->rc;
done:
    pb_rowsrc__close(&a.src);
    pb_rowsrc__close(&b.src);
    sqlite3_finalize(a.st);
    sqlite3_finalize(b.st);
    pb_rowsrc__unregister(dbb);
    pb_rowsrc__unregister(dbt);
    d.ts.bytes = o->total - bytes0;
    d.err = err;
    d.t = t;
    error = tdiff_account(stats, &d, opts, error);
    pb_rbuf__dispose(&a.prev);
    pb_rbuf__dispose(&b.prev);
    pb_rbuf__dispose(&d.head);
    pb_rbuf__dispose(&d.ga);
    pb_rbuf__dispose(&d.gb);
    free(d.flags);
    free(d.changed);
    return error;
}

int pb_sqldiff_diff(pb_diff_stats *stats, const char *base_path, const char *target_path,
                    const pb_diff_options *opts, pb_sink_fn out, void *out_payload, pb_error *err)
{
    int error = 0;
    sqlite3 *dbb = NULL, *dbt = NULL;
    pb_tablelist lb = {0}, lt = {0};
    pb_outbuf o;
    pb_diff_stats st;
    unsigned flags = opts ? opts->flags : 0;

    memset(&st, 0, sizeof(st));
    memset(&o, 0, sizeof(o));
    if (!base_path || !target_path || !out) {
        error = pb_error_set(err, PB_EINVALID, "sqldiff: diff needs two paths and an output");
        goto done;
    }
    if (opts && (opts->version < 1 || opts->version > PB_DIFF_OPTIONS_VERSION)) {
        error =
            pb_error_set(err, PB_EINVALID, "sqldiff: unknown options version %u", opts->version);
        goto done;
    }
    int utf8;
    if ((error = pb_tables__open(&dbb, &utf8, base_path, opts, 1, err)) < 0 ||
        (error = pb_tables__open(&dbt, &utf8, target_path, opts, 1, err)) < 0 ||
        (error = pb_tables__list(&lb, dbb, opts, err)) < 0 ||
        (error = pb_tables__list(&lt, dbt, opts, err)) < 0 ||
        (error = pb_tables__match(&lb, &lt, err)) < 0 ||
        (error = pb_outbuf__init(&o, out, out_payload, err)) < 0)
        goto done;
    st.tables_skipped = lb.skipped;
    for (size_t i = 0; i < lb.n && !error; i++)
        error = diff_table(&st, &o, &lb.t[i], dbb, dbt, flags, opts, err);
    if (!error)
        error = pb_outbuf__flush(&o);
done:
    st.bytes = o.total - o.n; /* what reached the callback */
    if (stats)
        *stats = st;
    pb_outbuf__dispose(&o);
    pb_tables__dispose(&lb);
    pb_tables__dispose(&lt);
    pb_tables__close(dbb);
    pb_tables__close(dbt);
    return error;
}

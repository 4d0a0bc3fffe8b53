/*
 * expand.c: rebuilds a CHANGESET from a PATCHSET and the base DB it was computed against.
 *
 * Role: a patchset carries only what a receiver lacks (primary keys and new values), so it is the
 * smaller thing to ship; the 3-way merge needs the old values of a changeset to see what the live
 * side changed since the base. The home holds the base (the baseline both sides agree on), so it
 * can put the old values back: this file turns patchset + base into exactly the changeset that
 * pb_sqldiff_diff() would have produced for the same change (byte for byte: same headers with 'T'
 * instead of 'P', same records in the same order).
 *
 * Per record (formats: SQLite's session CHANGESET/PATCHSET, see diff.c):
 *   INSERT  copied (a patchset INSERT already holds the whole new row);
 *   DELETE  the patchset holds the PK only: the old row is read from the base by PK;
 *   UPDATE  the patchset holds the PK and the new values of changed columns: the old record gets
 *           the PK and the base values of the changed columns, the new record the changed values.
 * Tables diffed as row multisets (every column flagged as PK) carry whole rows already.
 * A DELETE or UPDATE of a row the base lacks means the patchset was not computed against this
 * base: PB_ECORRUPT, naming the table. The input is validated first (pb_changeset_validate), so
 * the parse below only meets well-formed records; memory is one record and one base row.
 * Prerequisites: SQLite; the base opened through the caller's pb_sqldiff_open_fn (default: a plain
 * read-only open).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "plexburst/sqldiff.h"
#include "record.h"

#define MAX_FIELD (1u << 30) /* the validator bounds fields; this guards the allocation */

typedef struct expander {
    FILE *in;
    sqlite3 *base;
    pb_outbuf out;
    pb_error *err;
    /* current table */
    char *table;
    int ncol, npk;
    uint8_t *pk;       /* PK flag bytes as in the header */
    sqlite3_stmt *sel; /* SELECT * FROM table WHERE pk... */
    int *pk_col;       /* column index of the i-th PK column (by PK position) */
    pb_rbuf rec;       /* the record being read */
    uint32_t *off;     /* field offsets into rec, ncol + 1 */
} expander;

static int rd(expander *x, void *p, size_t n)
{
    if (n && fread(p, 1, n, x->in) != n)
        return pb_error_set(x->err, PB_ECORRUPT, "expand: patchset truncated");
    return 0;
}

static int rd_varint(expander *x, uint64_t *v, uint8_t *raw, size_t *rawn)
{
    size_t n = 0;
    int c;
    do {
        if ((c = fgetc(x->in)) == EOF)
            return pb_error_set(x->err, PB_ECORRUPT, "expand: patchset truncated");
        raw[n++] = (uint8_t)c;
    } while ((c & 0x80) && n < PB_VARINT_MAX);
    pb_rec__varint_get(raw, n, v);
    *rawn = n;
    return 0;
}

/* Reads `ncol` fields into x->rec (appending) and records their offsets. */
static int read_record(expander *x, size_t base_off, uint32_t *off)
{
    int error = 0;
    for (int i = 0; i < x->ncol; i++) {
        int t = fgetc(x->in);
        if (t == EOF)
            return pb_error_set(x->err, PB_ECORRUPT, "expand: patchset truncated");
        off[i] = (uint32_t)(x->rec.n - base_off);
        uint8_t hdr[1 + PB_VARINT_MAX + 8];
        size_t h = 1, body = 0;
        hdr[0] = (uint8_t)t;
        if (t == PB_REC_INT || t == PB_REC_REAL) {
            body = 8;
        } else if (t == PB_REC_TEXT || t == PB_REC_BLOB) {
            uint64_t len;
            size_t rawn;
            if ((error = rd_varint(x, &len, hdr + 1, &rawn)) < 0)
                return error;
            if (len > MAX_FIELD)
                return pb_error_set(x->err, PB_ECORRUPT, "expand: field too large");
            h += rawn;
            body = (size_t)len;
        }
        if ((error = pb_rbuf__reserve(&x->rec, h + body, x->err)) < 0)
            return error;
        memcpy(x->rec.p + x->rec.n, hdr, h);
        if ((error = rd(x, x->rec.p + x->rec.n + h, body)) < 0)
            return error;
        x->rec.n += h + body;
    }
    off[x->ncol] = (uint32_t)(x->rec.n - base_off);
    return 0;
}

static void end_table(expander *x)
{
    sqlite3_finalize(x->sel);
    x->sel = NULL;
    free(x->table);
    free(x->pk);
    free(x->pk_col);
    free(x->off);
    x->table = NULL;
    x->pk = NULL;
    x->pk_col = NULL;
    x->off = NULL;
}

static int sql_error(expander *x, const char *what)
{
    return pb_error_setd(x->err, PB_ESQLITE, sqlite3_errcode(x->base), "expand: %s %s: %s", what,
                         x->table, sqlite3_errmsg(x->base));
}

/* Reads a table header (after its 'P') and prepares the base lookup for it. */
/* Reads a table header's name (NUL-terminated) into x->table; its length in *n. */
static int read_table_name(expander *x, size_t *n)
{
    size_t cap = 0;
    *n = 0;
    for (int c; (c = fgetc(x->in)) != 0;) {
        if (c == EOF)
            return pb_error_set(x->err, PB_ECORRUPT, "expand: patchset truncated");
        if (*n + 2 > cap) {
            char *p = realloc(x->table, cap = cap ? 2 * cap : 64);
            if (!p)
                return pb_error_set(x->err, PB_ENOMEM, "expand: out of memory");
            x->table = p;
        }
        x->table[(*n)++] = (char)c;
    }
    if (!x->table)
        return pb_error_set(x->err, PB_ECORRUPT, "expand: empty table name");
    x->table[*n] = '\0';
    return 0;
}

/* The stored column names of the current table in the base, in declaration order, as the diff
 * reads them (generated columns are not part of a row); *have is their count. */
static int base_columns(expander *x, char ***names, int *have)
{
    sqlite3_stmt *cols = NULL;
    *have = 0;
    int rc = sqlite3_prepare_v2(x->base,
                                "SELECT name FROM main.pragma_table_xinfo(?1) "
                                "WHERE hidden = 0 ORDER BY cid",
                                -1, &cols, NULL);
    if (rc != SQLITE_OK)
        return sql_error(x, "cannot read the columns of");
    sqlite3_bind_text(cols, 1, x->table, -1, SQLITE_STATIC);
    *names = calloc((size_t)x->ncol, sizeof(char *));
    while (*names && sqlite3_step(cols) == SQLITE_ROW) {
        if (*have < x->ncol)
            (*names)[*have] = sqlite3_mprintf("%s", (const char *)sqlite3_column_text(cols, 0));
        (*have)++;
    }
    sqlite3_finalize(cols);
    return 0;
}

/* SELECT <columns> FROM <table> WHERE <pk1> IS ?1 AND ...; NULL when out of memory. */
static char *select_sql(const expander *x, char **names)
{
    char *list = sqlite3_mprintf("SELECT"), *sql;
    for (int i = 0; list && i < x->ncol; i++) {
        char *more = sqlite3_mprintf("%s%s \"%w\"", list, i ? "," : "", names[i]);
        sqlite3_free(list);
        list = more;
    }
    sql = list ? sqlite3_mprintf("%s FROM main.\"%w\" WHERE", list, x->table) : NULL;
    for (int k = 0; sql && k < x->npk; k++) {
        char *more =
            sqlite3_mprintf("%s%s \"%w\" IS ?%d", sql, k ? " AND" : "", names[x->pk_col[k]], k + 1);
        sqlite3_free(sql);
        sql = more;
    }
    sqlite3_free(list);
    return sql;
}

/* Prepares x->sel, the base row by PK (the header carries no column names). */
static int prepare_select(expander *x)
{
    char **names = NULL, *sql = NULL;
    int have = 0, error = base_columns(x, &names, &have);
    if (error < 0)
        return error;
    if (names && have == x->ncol)
        sql = select_sql(x, names);
    for (int i = 0; names && i < x->ncol && i < have; i++)
        sqlite3_free(names[i]);
    free(names);
    if (have == 0)
        error = pb_error_set(x->err, PB_ESCHEMA, "expand: the base lacks table %s", x->table);
    else if (have != x->ncol)
        error = pb_error_set(x->err, PB_ESCHEMA,
                             "expand: table %s has %d columns in the base, %d in the patchset",
                             x->table, have, x->ncol);
    else if (!sql)
        error = pb_error_set(x->err, PB_ENOMEM, "expand: out of memory");
    else if (sqlite3_prepare_v2(x->base, sql, -1, &x->sel, NULL) != SQLITE_OK)
        error = sql_error(x, "cannot read");
    sqlite3_free(sql);
    return error;
}

static int begin_table(expander *x)
{
    int error = 0;
    uint64_t ncol;
    uint8_t raw[PB_VARINT_MAX];
    size_t rawn, n = 0;

    end_table(x);
    if ((error = rd_varint(x, &ncol, raw, &rawn)) < 0)
        return error;
    if (ncol == 0 || ncol > 32767)
        return pb_error_set(x->err, PB_ECORRUPT, "expand: bad column count");
    x->ncol = (int)ncol;
    x->pk = malloc(ncol);
    x->pk_col = calloc(ncol, sizeof(int));
    x->off = calloc(2 * ncol + 2, sizeof(uint32_t));
    if (!x->pk || !x->pk_col || !x->off)
        return pb_error_set(x->err, PB_ENOMEM, "expand: out of memory");
    if ((error = rd(x, x->pk, ncol)) < 0 || (error = read_table_name(x, &n)) < 0)
        return error;

    x->npk = 0;
    for (int i = 0; i < x->ncol; i++)
        if (x->pk[i]) {
            if (x->pk[i] > x->ncol)
                return pb_error_set(x->err, PB_ECORRUPT, "expand: bad PK flags for %s", x->table);
            x->pk_col[x->pk[i] - 1] = i;
            x->npk++;
        }

    /* the header goes out as in a changeset */
    pb_outbuf__byte(&x->out, 'T');
    pb_outbuf__put(&x->out, raw, rawn);
    pb_outbuf__put(&x->out, x->pk, ncol);
    pb_outbuf__put(&x->out, x->table, n + 1);
    if (x->out.rc)
        return x->out.rc;
    if (x->npk == x->ncol)
        return 0; /* a multiset: records carry whole rows */
    return prepare_select(x);
}

/* Binds the PK fields of the record at x->rec.p[base_off...] and steps to the base row. */
static int lookup(expander *x, const uint32_t *off, const char *op)
{
    sqlite3_reset(x->sel);
    for (int k = 0; k < x->npk; k++) {
        pb_val v;
        pb_rec__decode(x->rec.p + off[x->pk_col[k]], &v);
        int rc;
        switch (v.type) {
        case PB_REC_INT:
            rc = sqlite3_bind_int64(x->sel, k + 1, v.i);
            break;
        case PB_REC_REAL:
            rc = sqlite3_bind_double(x->sel, k + 1, v.r);
            break;
        case PB_REC_TEXT:
            rc = sqlite3_bind_text(x->sel, k + 1, (const char *)v.z, (int)v.n, SQLITE_STATIC);
            break;
        case PB_REC_BLOB:
            rc = sqlite3_bind_blob(x->sel, k + 1, v.z, (int)v.n, SQLITE_STATIC);
            break;
        default:
            rc = sqlite3_bind_null(x->sel, k + 1);
            break;
        }
        if (rc != SQLITE_OK)
            return sql_error(x, "cannot look up");
    }
    int rc = sqlite3_step(x->sel);
    if (rc == SQLITE_DONE)
        return pb_error_set(x->err, PB_ECORRUPT,
                            "expand: the patchset %s a row of %s the base lacks (computed "
                            "against another base)",
                            op, x->table);
    if (rc != SQLITE_ROW)
        return sql_error(x, "cannot look up");
    return 0;
}

/* Writes column `i` of the current base row as a session field. */
static void put_base_field(expander *x, int i)
{
    sqlite3_value *v = sqlite3_column_value(x->sel, i);
    uint8_t buf[1 + PB_VARINT_MAX + 8];
    size_t n = 1;
    int t = sqlite3_value_type(v);
    buf[0] = (uint8_t)t;
    if (t == SQLITE_INTEGER || t == SQLITE_FLOAT) {
        uint64_t u;
        if (t == SQLITE_INTEGER) {
            u = (uint64_t)sqlite3_value_int64(v);
        } else {
            double d = sqlite3_value_double(v);
            memcpy(&u, &d, 8);
        }
        for (int k = 0; k < 8; k++)
            buf[n++] = (uint8_t)(u >> (56 - 8 * k));
        pb_outbuf__put(&x->out, buf, n);
    } else if (t == SQLITE_TEXT || t == SQLITE_BLOB) {
        /* text as UTF-8 bytes without SQLite's terminating copy (see record.h) */
        const void *z = sqlite3_value_blob(v);
        size_t len = (size_t)sqlite3_value_bytes(v);
        n += pb_rec__varint_put(buf + 1, len);
        pb_outbuf__put(&x->out, buf, n);
        pb_outbuf__put(&x->out, z, len);
    } else {
        buf[0] = PB_REC_NULL;
        pb_outbuf__put(&x->out, buf, 1);
    }
}

static void put_field(expander *x, const uint32_t *off, int i)
{
    pb_outbuf__put(&x->out, x->rec.p + off[i], off[i + 1] - off[i]);
}

static int expand_record(expander *x, int op)
{
    int error = 0;
    uint8_t indirect;
    uint32_t *off = x->off;

    if ((error = rd(x, &indirect, 1)) < 0)
        return error;
    x->rec.n = 0;
    int multiset = x->npk == x->ncol;
    /* a patchset DELETE holds the PK fields only (a multiset's PK is every column) */
    if (op == SQLITE_DELETE && !multiset) {
        int saved = x->ncol;
        x->ncol = x->npk;
        error = read_record(x, 0, off + saved + 1);
        x->ncol = saved;
        if (error < 0)
            return error;
        /* spread the PK fields (in column order) to their columns */
        for (int i = 0, k = 0; i < x->ncol; i++)
            off[i] = x->pk[i] ? off[x->ncol + 1 + k++] : 0;
    } else if ((error = read_record(x, 0, off)) < 0) {
        return error;
    }

    pb_outbuf__byte(&x->out, (uint8_t)op);
    pb_outbuf__byte(&x->out, indirect);
    if (op == SQLITE_INSERT || multiset) {
        pb_outbuf__put(&x->out, x->rec.p, x->rec.n);
        return x->out.rc;
    }
    if (op == SQLITE_DELETE) {
        if ((error = lookup(x, off, "deletes")) < 0)
            return error;
        for (int i = 0; i < x->ncol; i++)
            put_base_field(x, i);
        return x->out.rc;
    }
    /* UPDATE */
    if ((error = lookup(x, off, "updates")) < 0)
        return error;
    for (int i = 0; i < x->ncol; i++) {
        if (x->pk[i])
            put_field(x, off, i);
        else if (x->rec.p[off[i]] != PB_REC_UNDEF)
            put_base_field(x, i);
        else
            pb_outbuf__byte(&x->out, PB_REC_UNDEF);
    }
    for (int i = 0; i < x->ncol; i++) {
        if (x->pk[i])
            pb_outbuf__byte(&x->out, PB_REC_UNDEF);
        else
            put_field(x, off, i);
    }
    return x->out.rc;
}

void pb_expand_options_init(pb_expand_options *opts)
{
    const pb_expand_options init = PB_EXPAND_OPTIONS_INIT;
    *opts = init;
}

int pb_changeset_expand(pb_changeset_summary *summary, const char *patchset_path,
                        const char *base_path, const pb_expand_options *opts, pb_sink_fn out,
                        void *out_payload, pb_error *err)
{
    int error = 0;
    expander x;
    pb_changeset_summary sum;

    memset(&x, 0, sizeof(x));
    memset(&sum, 0, sizeof(sum));
    x.err = err;
    x.rec.max = (size_t)2 * MAX_FIELD;
    if (opts && opts->version != PB_EXPAND_OPTIONS_VERSION) {
        error = pb_error_set(err, PB_EINVALID, "expand: unknown options version %u", opts->version);
        goto done;
    }
    if (!(x.in = fopen(patchset_path, "rb"))) {
        error = pb_error_errno(err, "expand: cannot open %s", patchset_path);
        goto done;
    }
    if ((error = pb_changeset_validate_file(&sum, x.in, NULL, err)) < 0)
        goto done;
    if (sum.bytes && !sum.patchset) {
        error = pb_error_set(err, PB_EINVALID, "expand: %s is a changeset, not a patchset",
                             patchset_path);
        goto done;
    }
    rewind(x.in);
    pb_sqldiff_open_fn open_fn = opts && opts->open ? opts->open : pb_sqldiff_open_default;
    if ((error = open_fn(&x.base, base_path, opts ? opts->open_payload : NULL, err)) < 0 ||
        (error = pb_outbuf__init(&x.out, out, out_payload, err)) < 0)
        goto done;
    if (sqlite3_exec(x.base, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        error = pb_error_set(err, PB_ESQLITE, "expand: %s", sqlite3_errmsg(x.base));
        goto done;
    }
    for (int c; (c = fgetc(x.in)) != EOF && !error;) {
        if (c == 'P')
            error = begin_table(&x);
        else if (c == SQLITE_INSERT || c == SQLITE_DELETE || c == SQLITE_UPDATE)
            error = x.table ? expand_record(&x, c)
                            : pb_error_set(err, PB_ECORRUPT, "expand: record before a table");
        else
            error = pb_error_set(err, PB_ECORRUPT, "expand: unexpected byte 0x%02x", c);
    }
    if (!error)
        error = pb_outbuf__flush(&x.out);
done:
    if (summary)
        *summary = sum;
    end_table(&x);
    if (x.base)
        sqlite3_close(x.base);
    if (x.in)
        fclose(x.in);
    pb_outbuf__dispose(&x.out);
    pb_rbuf__dispose(&x.rec);
    return error;
}

/*
 * merge_value.c: the values of the 3-way merge (merge_internal.h): copies of changeset and live
 * values, equality as the merge defines it (SQL `IS` with binary collation), binding, and exact
 * SQL literals for script mode.
 * Role: internal to sqldiff/merge*.c. Prerequisites: SQLite 3.x.
 *
 * Literals are read back bit for bit by SQLite's parser: integers in decimal (INT64_MIN as an
 * expression), reals with %.17g (a ".0" added when the text would read as an integer), +-Inf as
 * +-9e999, NaN as NULL (SQLite stores NaN as NULL). SQLite 3.40's text-to-real conversion is not
 * correctly rounded below ~1e-290 (measured: about 1 in 500 values of that range off by one ulp),
 * so magnitudes under 1e-250 are written as an exact product (x*2^600)*2^-600, both factors in the
 * safe range. Text is quoted with '' escaping, except text holding a NUL or a control character
 * other than tab and newline (the sqlite3 shell drops a CR before a newline, and a NUL ends the
 * statement), which is written as CAST(X'..' AS TEXT). Blobs are X'..'.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "merge_internal.h"

void mval_from_value(mval *out, sqlite3_value *v)
{
    out->owned = NULL;
    out->i = 0;
    out->r = 0;
    out->p = NULL;
    out->n = 0;
    if (!v) {
        out->type = 0;
        return;
    }
    out->type = sqlite3_value_type(v);
    switch (out->type) {
    case SQLITE_INTEGER:
        out->i = sqlite3_value_int64(v);
        break;
    case SQLITE_FLOAT:
        out->r = sqlite3_value_double(v);
        break;
    case SQLITE_TEXT:
        out->p = sqlite3_value_text(v);
        out->n = sqlite3_value_bytes(v);
        if (!out->p)
            out->p = (const unsigned char *)"";
        break;
    case SQLITE_BLOB:
        out->p = sqlite3_value_blob(v);
        out->n = sqlite3_value_bytes(v);
        if (!out->p)
            out->p = (const unsigned char *)"";
        break;
    default:
        out->type = SQLITE_NULL;
    }
}

void mval_clear(mval *v)
{
    free(v->owned);
    v->owned = NULL;
    v->type = 0;
    v->p = NULL;
    v->n = 0;
}

void mval_set_int(mval *v, sqlite3_int64 i)
{
    mval_clear(v);
    v->type = SQLITE_INTEGER;
    v->i = i;
}

/* An integer and a real are equal when the real is exactly that integer (as SQLite compares). */
static int int_eq_real(sqlite3_int64 i, double r)
{
    if (!(r >= -9223372036854775808.0 && r < 9223372036854775808.0))
        return 0;
    if (r != floor(r))
        return 0;
    return (sqlite3_int64)r == i;
}

int mval_eq(const mval *a, const mval *b)
{
    if (a->type == SQLITE_INTEGER && b->type == SQLITE_FLOAT)
        return int_eq_real(a->i, b->r);
    if (a->type == SQLITE_FLOAT && b->type == SQLITE_INTEGER)
        return int_eq_real(b->i, a->r);
    if (a->type != b->type)
        return 0;
    switch (a->type) {
    case SQLITE_INTEGER:
        return a->i == b->i;
    case SQLITE_FLOAT:
        return a->r == b->r;
    case SQLITE_TEXT:
    case SQLITE_BLOB:
        return a->n == b->n && (a->n == 0 || memcmp(a->p, b->p, (size_t)a->n) == 0);
    default:
        return 1; /* NULL IS NULL; two absent values */
    }
}

int mval_eq_col(const mval *a, sqlite3_stmt *st, int col)
{
    mval b;
    mval_from_value(&b, sqlite3_column_value(st, col));
    return mval_eq(a, &b);
}

int mval_bind(sqlite3_stmt *st, int idx, const mval *v)
{
    switch (v->type) {
    case SQLITE_INTEGER:
        return sqlite3_bind_int64(st, idx, v->i);
    case SQLITE_FLOAT:
        return sqlite3_bind_double(st, idx, v->r);
    case SQLITE_TEXT:
        return sqlite3_bind_text(st, idx, (const char *)v->p, v->n, SQLITE_STATIC);
    case SQLITE_BLOB:
        if (v->n == 0)
            return sqlite3_bind_zeroblob(st, idx, 0); /* a NULL pointer would bind NULL */
        return sqlite3_bind_blob(st, idx, v->p, v->n, SQLITE_STATIC);
    default:
        return sqlite3_bind_null(st, idx);
    }
}

static int write_hex(FILE *f, const unsigned char *p, int n)
{
    static const char hex[] = "0123456789ABCDEF";
    char buf[512];
    int k = 0;
    for (int i = 0; i < n; i++) {
        buf[k++] = hex[p[i] >> 4];
        buf[k++] = hex[p[i] & 15];
        if (k == (int)sizeof(buf)) {
            if (fwrite(buf, 1, (size_t)k, f) != (size_t)k)
                return -1;
            k = 0;
        }
    }
    if (k && fwrite(buf, 1, (size_t)k, f) != (size_t)k)
        return -1;
    return 0;
}

static int write_real(FILE *f, double r)
{
    char a[64], b[64];
    if (isnan(r))
        return fputs("NULL", f) < 0 ? -1 : 0;
    if (isinf(r))
        return fputs(r > 0 ? "9e999" : "-9e999", f) < 0 ? -1 : 0;
    if (r != 0 && fabs(r) < 1e-250) {
        snprintf(a, sizeof(a), "%.17g", ldexp(r, 600));
        snprintf(b, sizeof(b), "%.17g", ldexp(1.0, -600));
        return fprintf(f, "(%s*%s)", a, b) < 0 ? -1 : 0;
    }
    snprintf(a, sizeof(a), "%.17g", r);
    if (!strpbrk(a, ".eEni"))
        strcat(a, ".0");
    return fputs(a, f) < 0 ? -1 : 0;
}

static int text_needs_hex(const unsigned char *p, int n)
{
    for (int i = 0; i < n; i++)
        if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n')
            return 1;
    return 0;
}

static int write_text(FILE *f, const unsigned char *p, int n)
{
    if (text_needs_hex(p, n)) {
        if (fputs("CAST(X'", f) < 0 || write_hex(f, p, n) < 0 || fputs("' AS TEXT)", f) < 0)
            return -1;
        return 0;
    }
    if (fputc('\'', f) == EOF)
        return -1;
    int start = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] == '\'') {
            size_t len = (size_t)(i + 1 - start); /* up to and including the quote */
            if (fwrite(p + start, 1, len, f) != len || fputc('\'', f) == EOF)
                return -1;
            start = i + 1;
        }
    }
    size_t rest = (size_t)(n - start);
    if ((rest && fwrite(p + start, 1, rest, f) != rest) || fputc('\'', f) == EOF)
        return -1;
    return 0;
}

int mval_write_literal(FILE *f, const mval *v)
{
    switch (v->type) {
    case SQLITE_INTEGER:
        if (v->i == INT64_MIN)
            return fputs("(-9223372036854775807-1)", f) < 0 ? -1 : 0;
        return fprintf(f, "%lld", (long long)v->i) < 0 ? -1 : 0;
    case SQLITE_FLOAT:
        return write_real(f, v->r);
    case SQLITE_TEXT:
        return write_text(f, v->p, v->n);
    case SQLITE_BLOB:
        if (fputs("X'", f) < 0 || write_hex(f, v->p, v->n) < 0 || fputc('\'', f) == EOF)
            return -1;
        return 0;
    default:
        return fputs("NULL", f) < 0 ? -1 : 0;
    }
}

/*
 * merge_read.c: reading the merge's inputs: a streamed iterator over one changeset file, the
 * shape check of each record against the live table, and the current record's values after the
 * policy's text mapping (sqldiff/merge.c runs the passes).
 * Role: part of the 3-way merge (include/plexburst/merge.h). Prerequisites: SQLite with the
 * session extension.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "merge_internal.h"

/* ---------------------------------------------------------------------------------------------
 * Reading changesets
 */

static int xinput(void *p, void *data, int *n)
{
    FILE *f = p;
    size_t got = fread(data, 1, (size_t)*n, f);
    if (got < (size_t)*n && ferror(f))
        return SQLITE_IOERR;
    *n = (int)got;
    return SQLITE_OK;
}

void merge_reader_close(mreader *r)
{
    if (r->it)
        sqlite3changeset_finalize(r->it);
    if (r->f)
        fclose(r->f);
    r->it = NULL;
    r->f = NULL;
}

int merge_reader_open(mctx *c, const pb_merge_input *in, mreader *r)
{
    memset(r, 0, sizeof(*r));
    c->path = in->path;
    c->recno = 0;
    r->schema = in->schema;
    r->f = fopen(in->path, "rb");
    if (!r->f)
        return errno == ENOENT
                   ? pb_error_set(c->err, PB_ENOTFOUND, "merge: changeset %s not found", in->path)
                   : pb_error_errno(c->err, "merge: opening changeset %s", in->path);
    int rc = sqlite3changeset_start_strm(&r->it, xinput, r->f);
    if (rc != SQLITE_OK) {
        merge_reader_close(r);
        return pb_error_setd(c->err, rc == SQLITE_NOMEM ? PB_ENOMEM : PB_ECORRUPT, rc,
                             "merge: %s: cannot read the changeset (%s)", in->path,
                             sqlite3_errstr(rc));
    }
    return 0;
}

/* Checks a library table's record shape against the live table. A table keyed by non-INTEGER
 * columns arrives as a multiset (every column flagged) when its key holds NULLs (our diff's
 * rule): the first record decides, and the table is merged as a multiset. */
static int check_shape(mctx *c, mtable *t, int ncol, const unsigned char *abpk, int op)
{
    if (!t->shape_seen && ncol == t->ncol && t->haspk && t->ipk < 0 && t->npk < ncol) {
        int all = 1;
        for (int i = 0; i < ncol; i++)
            all &= abpk[i] != 0;
        if (all)
            t->haspk = 0;
    }
    t->shape_seen = 1;
    if (ncol != t->ncol)
        return pb_error_set(c->err, PB_ESCHEMA,
                            "merge: %s: record %llu: %s.%s has %d columns in the changeset, %d in "
                            "the live DB",
                            c->path, c->recno, t->schema, t->name, ncol, t->ncol);
    for (int i = 0; i < ncol; i++) {
        int want = t->haspk ? t->pk[i] : 1;
        if ((abpk[i] != 0) != want)
            return pb_error_set(c->err, PB_ESCHEMA,
                                "merge: %s: record %llu: the key of %s.%s differs from the live "
                                "DB's (column %s)",
                                c->path, c->recno, t->schema, t->name, t->cols[i]);
    }
    if (!t->haspk && op == SQLITE_UPDATE)
        return pb_error_set(c->err, PB_ECORRUPT,
                            "merge: %s: record %llu: update of %s.%s, a table without key", c->path,
                            c->recno, t->schema, t->name);
    return 0;
}

/* Steps to the next record: 1 with the table, op and column count set, 0 at the end, or a
 * negative error. */
int merge_reader_next(mctx *c, mreader *r, mtable **tp, int *opp, int *ncolp)
{
    int rc = sqlite3changeset_next(r->it);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW) {
        int code = rc == SQLITE_NOMEM            ? PB_ENOMEM
                   : (rc & 0xff) == SQLITE_IOERR ? PB_EIO
                                                 : PB_ECORRUPT;
        return pb_error_setd(c->err, code, rc,
                             "merge: %s: changeset corrupt or truncated after record %llu (%s)",
                             c->path, c->recno, sqlite3_errstr(rc));
    }
    c->recno++;
    const char *ztab = NULL;
    int ncol = 0, op = 0, indirect = 0, npk = 0;
    unsigned char *abpk = NULL;
    if (sqlite3changeset_op(r->it, &ztab, &ncol, &op, &indirect) != SQLITE_OK ||
        sqlite3changeset_pk(r->it, &abpk, &npk) != SQLITE_OK || !ztab)
        return pb_error_set(c->err, PB_ECORRUPT, "merge: %s: record %llu unreadable", c->path,
                            c->recno);
    mtable *t = r->last;
    if (!t || strcmp(t->name, ztab) != 0) {
        if (!(t = mtable_get(c, r->schema, ztab)))
            return pb_error_set(c->err, PB_ENOMEM, "merge: out of memory");
        int error = mtable_load(c, t);
        if (error)
            return error;
        r->last = t;
    }
    if (t->cls == PB_CLASS_LIBRARY && !t->skip) {
        int error = check_shape(c, t, ncol, abpk, op);
        if (error)
            return error;
    }
    *tp = t;
    *opp = op;
    *ncolp = ncol;
    return 1;
}

/* Passes a text value through the policy's map_text. */
static int map_val(mctx *c, mtable *t, int col, mval *v)
{
    if (v->type != SQLITE_TEXT || !c->pol->map_text)
        return 0;
    char *out = NULL;
    size_t on = 0;
    int r = c->pol->map_text(t->schema, t->name, t->cols[col], (const char *)v->p, (size_t)v->n,
                             &out, &on, c->pol->payload);
    if (r < 0) {
        free(out);
        return pb_error_set(c->err, r, "merge: %s: record %llu: map_text failed on %s.%s.%s",
                            c->path, c->recno, t->schema, t->name, t->cols[col]);
    }
    if (r == 1) {
        if (!out || on > INT_MAX) {
            free(out);
            return pb_error_set(c->err, PB_EINVALID,
                                "merge: map_text returned no value for %s.%s.%s", t->schema,
                                t->name, t->cols[col]);
        }
        free(v->owned);
        v->owned = out;
        v->p = (const unsigned char *)out;
        v->n = (int)on;
    }
    return 0;
}

void merge_clear_record(mctx *c)
{
    for (int i = 0; i < c->vcap; i++) {
        mval_clear(&c->oldv[i]);
        mval_clear(&c->newv[i]);
    }
}

/* Loads the current record's values into c->oldv / c->newv, mapped. */
int merge_load_record(mctx *c, mreader *r, mtable *t, int op, int ncol)
{
    if (ncol > c->vcap) {
        merge_clear_record(c);
        mval *o = realloc(c->oldv, sizeof(mval) * (size_t)ncol);
        if (o)
            c->oldv = o;
        mval *n = realloc(c->newv, sizeof(mval) * (size_t)ncol);
        if (n)
            c->newv = n;
        if (!o || !n)
            return pb_error_set(c->err, PB_ENOMEM, "merge: out of memory");
        memset(c->oldv, 0, sizeof(mval) * (size_t)ncol);
        memset(c->newv, 0, sizeof(mval) * (size_t)ncol);
        c->vcap = ncol;
    }
    for (int i = 0; i < ncol; i++) {
        sqlite3_value *o = NULL, *n = NULL;
        if (op != SQLITE_INSERT && sqlite3changeset_old(r->it, i, &o) != SQLITE_OK)
            o = NULL;
        if (op != SQLITE_DELETE && sqlite3changeset_new(r->it, i, &n) != SQLITE_OK)
            n = NULL;
        mval_from_value(&c->oldv[i], o);
        mval_from_value(&c->newv[i], n);
        int error;
        if ((error = map_val(c, t, i, &c->oldv[i])) || (error = map_val(c, t, i, &c->newv[i])))
            return error;
    }
    for (int i = 0; i < ncol; i++) {
        if ((op == SQLITE_INSERT && !c->newv[i].type) || (op == SQLITE_DELETE && !c->oldv[i].type))
            return pb_error_set(c->err, PB_ECORRUPT,
                                "merge: %s: record %llu of %s.%s lacks column %s", c->path,
                                c->recno, t->schema, t->name, t->cols[i]);
        if (op == SQLITE_UPDATE &&
            ((t->pk[i] && !c->oldv[i].type) || (!t->pk[i] && c->newv[i].type && !c->oldv[i].type)))
            return pb_error_set(c->err, PB_ECORRUPT,
                                "merge: %s: record %llu of %s.%s lacks the old value of %s "
                                "(a patchset?)",
                                c->path, c->recno, t->schema, t->name, t->cols[i]);
        if (op == SQLITE_UPDATE && t->pk[i] && c->newv[i].type &&
            !mval_eq(&c->newv[i], &c->oldv[i]))
            return pb_error_set(c->err, PB_ECORRUPT,
                                "merge: %s: record %llu changes the key of %s.%s", c->path,
                                c->recno, t->schema, t->name);
    }
    return 0;
}

int merge_each_record(mctx *c, const pb_merge_input *inputs, size_t ninputs, merge_record_fn fn,
                      void *payload)
{
    int error = 0;
    mreader r = {0};
    for (size_t i = 0; i < ninputs && !error; i++) {
        if ((error = merge_reader_open(c, &inputs[i], &r)))
            break;
        mtable *t;
        int op, ncol, got;
        while (!error && (got = merge_reader_next(c, &r, &t, &op, &ncol)) == 1)
            error = fn(c, &r, t, op, ncol, payload);
        if (!error && got < 0)
            error = got;
        merge_reader_close(&r);
    }
    merge_reader_close(&r);
    return error;
}

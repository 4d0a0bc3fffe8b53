/*
 * merge_write.c: pass 2 of the 3-way merge: the decision for each record (merge.h semantics: per
 * table class, per column rule, the policy's merge_column) and its write, executed on the live
 * connection or rendered as SQL into the script; then sqlite_sequence maintenance.
 * Role: part of the 3-way merge (include/plexburst/merge.h; the passes are described atop
 * sqldiff/merge.c). Prerequisites: SQLite with the session extension.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "merge_internal.h"

/* ---------------------------------------------------------------------------------------------
 * Writing: in-process or as script
 */

static void action(mctx *c, mtable *t, int op, int64_t old_id, int64_t new_id, const char *col,
                   pb_merge_resolution res)
{
    if (!c->opt->on_action)
        return;
    pb_merge_action a = {t->schema, t->name, op, old_id, new_id, col, res};
    c->opt->on_action(&a, c->opt->action_payload);
}

int merge_script_err(mctx *c)
{
    return pb_error_errno(c->err, "merge: writing the script");
}

static void wrote(mctx *c)
{
    c->writes++;
    if (c->opt->version >= 3 && c->opt->after_write) {
        if (c->script)
            fflush(c->script);
        c->opt->after_write(c->writes, c->opt->write_payload);
    }
}

/* Runs a bound write statement. */
static int run_write(mctx *c, mtable *t, sqlite3_stmt *st, const char *what, int64_t id)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return merge_sqlerr(c, rc, "merge: %s: record %llu: %s %s.%s (id %" PRId64 ")", c->path,
                            c->recno, what, t->schema, t->name, id);
    wrote(c);
    return 0;
}

static int script_where(mctx *c, mtable *t, const mval *v, int all, const char *op)
{
    FILE *f = c->script;
    int n = 0;
    for (int i = 0; i < t->ncol; i++) {
        if (!all && !t->pk[i])
            continue;
        if (fprintf(f, "%s%s %s ", n++ ? " AND " : "", t->qcols[i], op) < 0 ||
            mval_write_literal(f, &v[i]) < 0)
            return merge_script_err(c);
    }
    return 0;
}

static int write_insert(mctx *c, mtable *t, const mval *v, int64_t id)
{
    int error;
    if (c->script) {
        FILE *f = c->script;
        if (fprintf(f, "INSERT INTO %s(", t->qname) < 0)
            return merge_script_err(c);
        for (int i = 0; i < t->ncol; i++)
            if (fprintf(f, "%s%s", i ? "," : "", t->qcols[i]) < 0)
                return merge_script_err(c);
        if (fputs(") VALUES(", f) < 0)
            return merge_script_err(c);
        for (int i = 0; i < t->ncol; i++)
            if ((i && fputc(',', f) == EOF) || mval_write_literal(f, &v[i]) < 0)
                return merge_script_err(c);
        if (fputs(");\n", f) < 0)
            return merge_script_err(c);
        wrote(c);
        return 0;
    }
    sqlite3_stmt *st;
    if ((error = mtable_stmt(c, t, 'i', &st)))
        return error;
    for (int i = 0; i < t->ncol; i++)
        mval_bind(st, i + 1, &v[i]);
    return run_write(c, t, st, "insert into", id);
}

/* UPDATE of the columns in `mask` to `nv`, for the row whose key is in `kv`. */
static int write_update(mctx *c, mtable *t, const uint64_t *mask, const mval *nv, const mval *kv,
                        int64_t id)
{
    int error;
    if (c->script) {
        FILE *f = c->script;
        if (fprintf(f, "UPDATE %s SET ", t->qname) < 0)
            return merge_script_err(c);
        int n = 0;
        for (int i = 0; i < t->ncol; i++)
            if (mask[i / 64] >> (i % 64) & 1)
                if (fprintf(f, "%s%s = ", n++ ? ", " : "", t->qcols[i]) < 0 ||
                    mval_write_literal(f, &nv[i]) < 0)
                    return merge_script_err(c);
        if (fputs(" WHERE ", f) < 0)
            return merge_script_err(c);
        if ((error = script_where(c, t, kv, 0, "=")))
            return error;
        if (fputs(";\n", f) < 0)
            return merge_script_err(c);
        wrote(c);
        return 0;
    }
    sqlite3_stmt *st;
    if ((error = mtable_upd(c, t, mask, &st)))
        return error;
    int k = 1;
    for (int i = 0; i < t->ncol; i++)
        if (mask[i / 64] >> (i % 64) & 1)
            mval_bind(st, k++, &nv[i]);
    for (int i = 0; i < t->ncol; i++)
        if (t->pk[i])
            mval_bind(st, k++, &kv[i]);
    return run_write(c, t, st, "update of", id);
}

/* DELETE of the row keyed by `v` (multiset: one row equal to `v`). */
static int write_delete(mctx *c, mtable *t, const mval *v, int64_t id)
{
    int error;
    if (c->script) {
        FILE *f = c->script;
        int ok = t->haspk ? fprintf(f, "DELETE FROM %s WHERE ", t->qname)
                          : fprintf(f, "DELETE FROM %s WHERE rowid IN (SELECT rowid FROM %s WHERE ",
                                    t->qname, t->qname);
        if (ok < 0)
            return merge_script_err(c);
        if ((error = script_where(c, t, v, !t->haspk, t->haspk ? "=" : "IS")))
            return error;
        if (fputs(t->haspk ? ";\n" : " LIMIT 1);\n", f) < 0)
            return merge_script_err(c);
        wrote(c);
        return 0;
    }
    sqlite3_stmt *st;
    if ((error = mtable_stmt(c, t, 'd', &st)))
        return error;
    int k = 1;
    for (int i = 0; i < t->ncol; i++)
        if (!t->haspk || t->pk[i])
            mval_bind(st, k++, &v[i]);
    return run_write(c, t, st, "delete from", id);
}

/* Multiset tables: how many rows equal to `v` the live DB holds (after the script's writes). */
static int multiset_count(mctx *c, mtable *t, const mval *v, int64_t *n)
{
    sqlite3_stmt *st;
    int error, rc;
    *n = 0;
    for (int pass = 0; pass < (c->script ? 2 : 1); pass++) {
        if ((error = mtable_stmt(c, t, pass ? 'S' : 's', &st)))
            return error;
        for (int i = 0; i < t->ncol; i++)
            mval_bind(st, i + 1, &v[i]);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            *n += sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        if (rc != SQLITE_ROW)
            return merge_sqlerr(c, rc, "merge: reading %s.%s", t->schema, t->name);
    }
    return 0;
}

static int shadow_add(mctx *c, mtable *t, const mval *v, int delta)
{
    sqlite3_stmt *st;
    int error;
    if (!c->script)
        return 0;
    if ((error = mtable_stmt(c, t, 'A', &st)))
        return error;
    for (int i = 0; i < t->ncol; i++)
        mval_bind(st, i + 1, &v[i]);
    sqlite3_bind_int(st, t->ncol + 1, delta);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return merge_sqlerr(c, rc, "merge: shadow of %s.%s", t->schema, t->name);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Pass 2: the decisions
 */

/* The integer key of the record for listings (0 when the key is not one integer). */
static int64_t record_id(mtable *t, const mval *v)
{
    if (t->npk != 1)
        return 0;
    for (int i = 0; i < t->ncol; i++)
        if (t->pk[i])
            return v[i].type == SQLITE_INTEGER ? v[i].i : 0;
    return 0;
}

/* Binds the key of `kv` to the select of `t` and steps: 1 found, 0 not, negative error. */
static int select_row(mctx *c, mtable *t, const mval *kv, sqlite3_stmt **out)
{
    sqlite3_stmt *st;
    int error = mtable_stmt(c, t, 's', &st);
    if (error)
        return error;
    int k = 1;
    for (int i = 0; i < t->ncol; i++)
        if (t->pk[i])
            mval_bind(st, k++, &kv[i]);
    int rc = sqlite3_step(st);
    *out = st;
    if (rc == SQLITE_ROW)
        return 1;
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return 0;
    return merge_sqlerr(c, rc, "merge: reading %s.%s", t->schema, t->name);
}

/* Both sides changed column `i` of an UPDATE: asks the policy's merge_column. 1 (or 2: with a
 * conflict inside) with c->newv[i] replaced by the merged value, 0 for the default rule, or a
 * negative error. */
static int merge_column(mctx *c, mtable *t, int i, sqlite3_stmt *live, const mval *b)
{
    int error;
    if (!c->vsel && (error = merge_prepare(c, "SELECT ?1, ?2", &c->vsel, "a value statement")))
        return error;
    if (b->type)
        mval_bind(c->vsel, 1, b);
    else
        sqlite3_bind_null(c->vsel, 1);
    mval_bind(c->vsel, 2, &c->newv[i]);
    int rc = sqlite3_step(c->vsel);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(c->vsel);
        return merge_sqlerr(c, rc, "merge: reading values of %s.%s", t->schema, t->name);
    }
    char *out = NULL;
    size_t on = 0;
    int r = c->pol->merge_column(t->schema, t->name, t->cols[i], sqlite3_column_value(c->vsel, 0),
                                 sqlite3_column_value(c->vsel, 1), sqlite3_column_value(live, i),
                                 &out, &on, c->pol->payload);
    sqlite3_reset(c->vsel);
    sqlite3_clear_bindings(c->vsel);
    if (r < 0) {
        free(out);
        return pb_error_set(c->err, r, "merge: %s: record %llu: merge_column failed on %s.%s.%s",
                            c->path, c->recno, t->schema, t->name, t->cols[i]);
    }
    if (r != 1 && r != 2) {
        free(out);
        return 0;
    }
    if (!out || on > INT_MAX) {
        free(out);
        return pb_error_set(c->err, PB_EINVALID,
                            "merge: merge_column returned no value for %s.%s.%s", t->schema,
                            t->name, t->cols[i]);
    }
    mval m = {SQLITE_TEXT, 0, 0, (const unsigned char *)out, (int)on, out};
    if (mval_eq_col(&m, live, i)) { /* nothing new: the default rule */
        free(out);
        return 0;
    }
    mval_clear(&c->newv[i]);
    c->newv[i] = m;
    return r;
}

/* Per-column decision against the live row in `live` (base in `bv`, NULL for an insert onto an
 * existing key). Fills `mask`; counts conflicts and lists them. */
static int decide_columns(mctx *c, mtable *t, int op, int64_t id, sqlite3_stmt *live,
                          const mval *bv, uint64_t *mask, int *nset, int *nconf)
{
    *nset = *nconf = 0;
    int can_merge = bv && c->pol->version >= 2 && c->pol->merge_column;
    for (int i = 0; i < t->ncol; i++) {
        const mval *cv = &c->newv[i];
        if (t->pk[i] || !cv->type || t->rules[i] == PB_COL_KEEP_LIVE)
            continue;
        if (bv && mval_eq(cv, &bv[i]))
            continue; /* the cloud did not change it */
        if (mval_eq_col(cv, live, i))
            continue; /* the live DB already holds it */
        int live_is_base = bv && mval_eq_col(&bv[i], live, i);
        if (live_is_base || t->rules[i] == PB_COL_TAKE_CLOUD) {
            mask[i / 64] |= (uint64_t)1 << (i % 64);
            (*nset)++;
            if (!live_is_base) {
                (*nconf)++;
                COUNT(c, t, conflicts);
                action(c, t, op, id, id, t->cols[i], PB_RES_CLOUD_WON);
            }
        } else {
            int m = can_merge && t->rules[i] == PB_COL_DEFAULT ? merge_column(c, t, i, live, &bv[i])
                                                               : 0;
            if (m < 0)
                return m;
            if (m) {
                mask[i / 64] |= (uint64_t)1 << (i % 64);
                (*nset)++;
                COUNT(c, t, merged);
                if (m == 2) {
                    (*nconf)++;
                    COUNT(c, t, conflicts);
                }
                action(c, t, op, id, id, t->cols[i], PB_RES_MERGED);
                continue;
            }
            (*nconf)++;
            COUNT(c, t, conflicts);
            action(c, t, op, id, id, t->cols[i], PB_RES_KEPT_LIVE);
        }
    }
    return 0;
}

static int do_columns(mctx *c, mtable *t, int op, int64_t id, const mval *bv, const mval *kv,
                      sqlite3_stmt *live)
{
    uint64_t maskbuf[8], *mask = maskbuf;
    size_t words = ((size_t)t->ncol + 63) / 64;
    int error = 0, nset, nconf;
    if (words > 8 && !(mask = calloc(words, 8)))
        return pb_error_set(c->err, PB_ENOMEM, "merge: out of memory");
    memset(mask, 0, words * 8);
    error = decide_columns(c, t, op, id, live, bv, mask, &nset, &nconf);
    sqlite3_reset(live);
    if (!error && nset) {
        if (!(error = write_update(c, t, mask, c->newv, kv, id))) {
            COUNT(c, t, updated);
            action(c, t, op, id, id, NULL, PB_RES_APPLIED);
        }
    } else if (!error && !nconf) {
        COUNT(c, t, same);
        action(c, t, op, id, id, NULL, PB_RES_SAME);
    }
    if (mask != maskbuf)
        free(mask);
    return error;
}

/* Per-column decision of an insert mapped onto a live row both sides added (KIND_SAME, merge.h):
 * the cloud's non-NULL values are written, merged with the live ones by merge_column when given. */
static int decide_same(mctx *c, mtable *t, int64_t id, sqlite3_stmt *live, uint64_t *mask,
                       int *nset)
{
    static const mval null_base = {SQLITE_NULL, 0, 0, NULL, 0, NULL};
    int can_merge = c->pol->version >= 2 && c->pol->merge_column;
    *nset = 0;
    for (int i = 0; i < t->ncol; i++) {
        const mval *cv = &c->newv[i];
        if (t->pk[i] || !cv->type || cv->type == SQLITE_NULL || t->rules[i] == PB_COL_KEEP_LIVE ||
            mval_eq_col(cv, live, i))
            continue;
        int res = PB_RES_APPLIED;
        if (sqlite3_column_type(live, i) != SQLITE_NULL) {
            int m = can_merge && t->rules[i] == PB_COL_DEFAULT
                        ? merge_column(c, t, i, live, &null_base)
                        : 0;
            if (m < 0)
                return m;
            if (m) {
                COUNT(c, t, merged);
                res = PB_RES_MERGED;
            } else {
                COUNT(c, t, conflicts);
                res = PB_RES_CLOUD_WON;
            }
            action(c, t, SQLITE_INSERT, id, id, t->cols[i], res);
        }
        mask[i / 64] |= (uint64_t)1 << (i % 64);
        (*nset)++;
    }
    return 0;
}

/* An insert mapped onto the live row `to` that both sides added: its values written into it. */
static int do_same(mctx *c, mtable *t, int64_t old, int64_t to)
{
    mval *nv = c->newv;
    sqlite3_stmt *live;
    uint64_t maskbuf[8], *mask = maskbuf;
    size_t words = ((size_t)t->ncol + 63) / 64;
    int error = 0, nset = 0;
    COUNT(c, t, natkey_mapped);
    action(c, t, SQLITE_INSERT, old, to, NULL, PB_RES_NATKEY);
    nv[t->ipk].i = to;
    if ((error = merge_apply_refs(c, t, NULL)))
        return error;
    int found = select_row(c, t, nv, &live);
    if (found <= 0)
        return found;
    if (words > 8 && !(mask = calloc(words, 8))) {
        sqlite3_reset(live);
        return pb_error_set(c->err, PB_ENOMEM, "merge: out of memory");
    }
    memset(mask, 0, words * 8);
    error = decide_same(c, t, to, live, mask, &nset);
    sqlite3_reset(live);
    if (!error && nset && !(error = write_update(c, t, mask, nv, nv, to))) {
        COUNT(c, t, updated);
        action(c, t, SQLITE_INSERT, to, to, NULL, PB_RES_APPLIED);
    }
    if (mask != maskbuf)
        free(mask);
    return error;
}

static int do_insert(mctx *c, mtable *t)
{
    mval *nv = c->newv;
    int error;
    sqlite3_stmt *live;
    if (!t->haspk) {
        int64_t n;
        if ((error = merge_apply_refs(c, t, NULL)) || (error = multiset_count(c, t, nv, &n)))
            return error;
        if (n > 0) {
            COUNT(c, t, same);
            action(c, t, SQLITE_INSERT, 0, 0, NULL, PB_RES_SAME);
            return 0;
        }
        if ((error = write_insert(c, t, nv, 0)) || (error = shadow_add(c, t, nv, 1)))
            return error;
        COUNT(c, t, inserted);
        action(c, t, SQLITE_INSERT, 0, 0, NULL, PB_RES_APPLIED);
        return 0;
    }
    if (t->ipk >= 0 && nv[t->ipk].type == SQLITE_INTEGER) {
        int64_t old = nv[t->ipk].i, to;
        int kind;
        if ((error = merge_remap_get(c, t, old, &to, &kind)))
            return error;
        if (kind == KIND_NATKEY) {
            COUNT(c, t, natkey_mapped);
            action(c, t, SQLITE_INSERT, old, to, NULL, PB_RES_NATKEY);
            return 0;
        }
        if (kind == KIND_SAME)
            return do_same(c, t, old, to);
        nv[t->ipk].i = to;
        if ((error = merge_apply_refs(c, t, NULL)) || (error = write_insert(c, t, nv, to)))
            return error;
        t->inserted = 1;
        COUNT(c, t, inserted);
        if (kind == KIND_RENUM)
            COUNT(c, t, remapped);
        action(c, t, SQLITE_INSERT, old, to, NULL,
               kind == KIND_RENUM ? PB_RES_REMAPPED : PB_RES_APPLIED);
        return 0;
    }
    /* keyed otherwise: insert, or decide per column against the row holding the key */
    int64_t id = record_id(t, nv);
    if ((error = merge_apply_refs(c, t, NULL)))
        return error;
    int found = select_row(c, t, nv, &live);
    if (found < 0)
        return found;
    if (found)
        return do_columns(c, t, SQLITE_INSERT, id, NULL, nv, live);
    if ((error = write_insert(c, t, nv, id)))
        return error;
    t->inserted = 1;
    COUNT(c, t, inserted);
    action(c, t, SQLITE_INSERT, id, id, NULL, PB_RES_APPLIED);
    return 0;
}

static int do_update(mctx *c, mtable *t)
{
    sqlite3_stmt *live;
    int64_t id = record_id(t, c->oldv);
    int found = select_row(c, t, c->oldv, &live);
    if (found < 0)
        return found;
    if (!found) {
        COUNT(c, t, notfound);
        action(c, t, SQLITE_UPDATE, id, id, NULL, PB_RES_NOTFOUND);
        return 0;
    }
    int error = merge_apply_refs(c, t, live);
    if (error) {
        sqlite3_reset(live);
        return error;
    }
    return do_columns(c, t, SQLITE_UPDATE, id, c->oldv, c->oldv, live);
}

static int do_delete(mctx *c, mtable *t)
{
    mval *ov = c->oldv;
    int error;
    if (!t->haspk) {
        int64_t n;
        if ((error = multiset_count(c, t, ov, &n)))
            return error;
        if (n <= 0) {
            COUNT(c, t, notfound);
            action(c, t, SQLITE_DELETE, 0, 0, NULL, PB_RES_NOTFOUND);
            return 0;
        }
        if ((error = write_delete(c, t, ov, 0)) || (error = shadow_add(c, t, ov, -1)))
            return error;
        COUNT(c, t, deleted);
        action(c, t, SQLITE_DELETE, 0, 0, NULL, PB_RES_APPLIED);
        return 0;
    }
    sqlite3_stmt *live;
    int64_t id = record_id(t, ov);
    int found = select_row(c, t, ov, &live);
    if (found < 0)
        return found;
    if (!found) {
        COUNT(c, t, notfound);
        action(c, t, SQLITE_DELETE, id, id, NULL, PB_RES_NOTFOUND);
        return 0;
    }
    int changed = 0;
    for (int i = 0; i < t->ncol && !changed; i++)
        changed = !mval_eq_col(&ov[i], live, i);
    sqlite3_reset(live);
    if ((error = write_delete(c, t, ov, id)))
        return error;
    COUNT(c, t, deleted);
    if (changed)
        COUNT(c, t, conflicts);
    action(c, t, SQLITE_DELETE, id, id, NULL, changed ? PB_RES_CLOUD_WON : PB_RES_APPLIED);
    return 0;
}

/* A user-state record: dropped, counted and listed (with its integer key when it has one). */
static void drop_user_record(mctx *c, mreader *r, mtable *t, int op)
{
    COUNT(c, t, user_state_dropped);
    if (!c->opt->on_action)
        return;
    int64_t id = 0;
    sqlite3_value *v = NULL;
    unsigned char *abpk;
    int npk;
    if (sqlite3changeset_pk(r->it, &abpk, &npk) == SQLITE_OK)
        for (int k = 0; k < npk; k++)
            if (abpk[k]) {
                if ((op == SQLITE_INSERT ? sqlite3changeset_new(r->it, k, &v)
                                         : sqlite3changeset_old(r->it, k, &v)) == SQLITE_OK &&
                    v && sqlite3_value_type(v) == SQLITE_INTEGER)
                    id = sqlite3_value_int64(v);
                break;
            }
    action(c, t, op, id, id, NULL, PB_RES_DROPPED_USER);
}

/* One record of pass 2. */
static int apply_record(mctx *c, mreader *r, mtable *t, int op, int ncol, void *payload)
{
    (void)payload;
    int error;
    if (t->skip)
        return 0;
    if (t->cls == PB_CLASS_USER) {
        drop_user_record(c, r, t, op);
        return 0;
    }
    if (!(error = merge_load_record(c, r, t, op, ncol))) {
        if (op == SQLITE_INSERT)
            error = do_insert(c, t);
        else if (op == SQLITE_UPDATE)
            error = do_update(c, t);
        else
            error = do_delete(c, t);
    }
    merge_clear_record(c);
    return error;
}

int merge_apply_all(mctx *c, const pb_merge_input *inputs, size_t ninputs)
{
    return merge_each_record(c, inputs, ninputs, apply_record, NULL);
}

/* sqlite_sequence.seq = max(seq, max(id)) for every AUTOINCREMENT table inserted into. The
 * max() stays a scalar subquery: SQLite reads it from the end of the table (as a subquery in
 * FROM it would scan the whole table). */
int merge_update_sequences(mctx *c)
{
    int error = 0;
    for (int i = 0; i < c->ntabs && !error; i++) {
        mtable *t = c->tabs[i];
        if (!t->inserted || !t->autoinc || t->ipk < 0)
            continue;
        char *sql = sqlite3_mprintf(
            "UPDATE \"%w\".sqlite_sequence SET seq = (SELECT max(%s) FROM %s) WHERE name = %Q "
            "COLLATE NOCASE AND seq < (SELECT max(%s) FROM %s);\n"
            "INSERT INTO \"%w\".sqlite_sequence(name, seq) SELECT %Q, (SELECT max(%s) FROM %s) "
            "WHERE (SELECT max(%s) FROM %s) IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
            "\"%w\".sqlite_sequence WHERE name = %Q COLLATE NOCASE);\n",
            t->schema, t->qcols[t->ipk], t->qname, t->name, t->qcols[t->ipk], t->qname, t->schema,
            t->name, t->qcols[t->ipk], t->qname, t->qcols[t->ipk], t->qname, t->schema, t->name);
        if (!sql)
            return pb_error_set(c->err, PB_ENOMEM, "merge: out of memory");
        if (c->script) {
            if (fputs(sql, c->script) < 0)
                error = merge_script_err(c);
        } else {
            int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
            if (rc != SQLITE_OK)
                error = merge_sqlerr(c, rc, "merge: updating sqlite_sequence of %s.%s", t->schema,
                                     t->name);
        }
        sqlite3_free(sql);
    }
    return error;
}

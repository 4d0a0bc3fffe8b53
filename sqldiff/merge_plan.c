/*
 * merge_plan.c: pass 1 of the 3-way merge, the id plan: every INSERT into a table keyed by one
 * INTEGER column gets a row in temp.pb_remap (kept, renumbered, or mapped by a natural key onto a
 * live row), and the references the records carry are rewritten through it in pass 2.
 * Role: part of the 3-way merge (include/plexburst/merge.h; the passes are described atop
 * sqldiff/merge.c). Prerequisites: SQLite with the session extension.
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
 * The id plan (temp.pb_remap)
 */

/* Binds a statement on temp.pb_remap: ?1 the schema and ?2 the name of t, ?3 an id. */
static void plan_bind(sqlite3_stmt *st, const mtable *t, int64_t id)
{
    sqlite3_bind_text(st, 1, t->schema, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, id);
}

int merge_remap_get(mctx *c, mtable *t, int64_t old, int64_t *out, int *kind)
{
    *out = old;
    *kind = KIND_IDENT;
    if (t->nremap == 0 || old < t->rmin || old > t->rmax)
        return 0;
    sqlite3_stmt *st = c->rm_get;
    plan_bind(st, t, old);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        *kind = sqlite3_column_int(st, 1);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return merge_sqlerr(c, rc, "merge: reading the id plan of %s.%s", t->schema, t->name);
    return 0;
}

static void remap_note(mtable *t, int64_t old)
{
    if (t->nremap == 0 || old < t->rmin)
        t->rmin = old;
    if (t->nremap == 0 || old > t->rmax)
        t->rmax = old;
    t->nremap++;
}

/* Whether the condition of ref `r` holds for the current record. */
static int ref_applies(mctx *c, const mref *r, sqlite3_stmt *live)
{
    if (r->when_col < 0)
        return 1;
    mval w = c->newv[r->when_col];
    if (!w.type)
        w = c->oldv[r->when_col];
    if (!w.type && live)
        mval_from_value(&w, sqlite3_column_value(live, r->when_col));
    size_t n = strlen(r->when_value);
    return w.type == SQLITE_TEXT && (size_t)w.n == n && memcmp(w.p, r->when_value, n) == 0;
}

/* Remaps the ref columns of c->newv (the record's own integer key excepted). */
int merge_apply_refs(mctx *c, mtable *t, sqlite3_stmt *live)
{
    for (int k = 0; k < t->nrefs; k++) {
        const mref *r = &t->refs[k];
        mval *v = &c->newv[r->col];
        if (r->col == t->ipk || v->type != SQLITE_INTEGER || !ref_applies(c, r, live))
            continue;
        int64_t to;
        int kind, error = merge_remap_get(c, r->target, v->i, &to, &kind);
        if (error)
            return error;
        v->i = to;
    }
    return 0;
}

/* Whether an index of `t` starts with a column of the natural key (SQLite then uses it). */
static int natkey_indexed(mctx *c, mtable *t, const mnatkey *nk, int *out)
{
    sqlite3_stmt *st = NULL;
    *out = 0;
    for (int j = 0; j < nk->ncols; j++)
        if (nk->cols[j] == t->ipk)
            *out = 1;
    int error = merge_prepare(c,
                              "SELECT ii.name FROM pragma_index_list(?1, ?2) AS il, "
                              "pragma_index_info(il.name, ?2) AS ii WHERE ii.seqno = 0",
                              &st, "an index query");
    if (error)
        return error;
    sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, t->schema, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *col = (const char *)sqlite3_column_text(st, 0);
        for (int j = 0; col && j < nk->ncols; j++)
            if (strcasecmp(col, t->cols[nk->cols[j]]) == 0)
                *out = 1;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return merge_sqlerr(c, rc, "merge: reading the indexes of %s.%s", t->schema, t->name);
    return 0;
}

/* Without a usable index every lookup would scan the table: the natural key columns of the live
 * rows (as they are before any write) are copied once into an indexed TEMP table, with the same
 * collations, named temp.pb_nk_N. Returns the FROM target (sqlite3_free). */
static int natkey_snapshot(mctx *c, mtable *t, const mnatkey *nk, char **from)
{
    int error = 0;
    int n = c->nsnap++;
    sqlite3_str *s = sqlite3_str_new(c->db);
    sqlite3_str_appendf(s, "CREATE TEMP TABLE \"pb_nk_%d\"(pb_nk_id_ INTEGER", n);
    for (int j = 0; j < nk->ncols; j++) {
        const char *coll = NULL;
        if (sqlite3_table_column_metadata(c->db, t->schema, t->name, t->cols[nk->cols[j]], NULL,
                                          &coll, NULL, NULL, NULL) != SQLITE_OK)
            coll = NULL;
        sqlite3_str_appendf(s, ", %s", t->qcols[nk->cols[j]]);
        if (coll)
            sqlite3_str_appendf(s, " COLLATE \"%w\"", coll);
    }
    sqlite3_str_appendf(s, "); INSERT INTO temp.\"pb_nk_%d\" SELECT %s", n, t->qcols[t->ipk]);
    for (int j = 0; j < nk->ncols; j++)
        sqlite3_str_appendf(s, ", %s", t->qcols[nk->cols[j]]);
    sqlite3_str_appendf(s, " FROM %s; CREATE INDEX temp.\"pb_nk_%d_i\" ON \"pb_nk_%d\"(", t->qname,
                        n, n);
    for (int j = 0; j < nk->ncols; j++)
        sqlite3_str_appendf(s, "%s%s", j ? ", " : "", t->qcols[nk->cols[j]]);
    sqlite3_str_appendall(s, ")");
    char *sql = sqlite3_str_finish(s);
    if (!sql)
        return pb_error_set(c->err, PB_ENOMEM, "merge: out of memory");
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK)
        error = merge_sqlerr(c, rc, "merge: indexing the natural key of %s.%s", t->schema, t->name);
    else if (!(*from = sqlite3_mprintf("temp.\"pb_nk_%d\"", n)))
        error = pb_error_set(c->err, PB_ENOMEM, "merge: out of memory");
    return error;
}

/* Looks the natural and same-row keys of `t` (deferred ones or the others) up in the live DB;
 * *same tells which kind matched. A same-row key never matches on a NULL, nor a live row of the
 * base: both sides number the rows they add past the base's, so a live row the home added has
 * an id at least the smallest the changesets insert (they are in id order), and a base row a
 * smaller one (the cloud's own rows of the same key stay apart, as the cloud has them). */
static int natkey_match(mctx *c, mtable *t, int deferred, int64_t *live_id, int *found, int *same)
{
    *found = *same = 0;
    for (int k = 0; k < t->nnat && !*found; k++) {
        mnatkey *nk = &t->nat[k];
        if (nk->deferred != deferred)
            continue;
        int null = 0;
        for (int j = 0; nk->same && j < nk->ncols; j++)
            null |= !c->newv[nk->cols[j]].type || c->newv[nk->cols[j]].type == SQLITE_NULL;
        if (null)
            continue;
        if (!nk->st) {
            int indexed, error;
            char *snap = NULL;
            if ((error = natkey_indexed(c, t, nk, &indexed)) ||
                (!indexed && (error = natkey_snapshot(c, t, nk, &snap))))
                return error;
            const char *id = snap ? "pb_nk_id_" : t->qcols[t->ipk];
            sqlite3_str *s = sqlite3_str_new(c->db);
            sqlite3_str_appendf(s, "SELECT %s FROM %s WHERE ", id, snap ? snap : t->qname);
            for (int j = 0; j < nk->ncols; j++)
                sqlite3_str_appendf(s, "%s%s IS ?%d", j ? " AND " : "", t->qcols[nk->cols[j]],
                                    j + 1);
            if (nk->same)
                sqlite3_str_appendf(s, " AND %s >= ?%d", id, nk->ncols + 1);
            sqlite3_str_appendf(s, " ORDER BY %s LIMIT 1", id);
            char *sql = sqlite3_str_finish(s);
            sqlite3_free(snap);
            error = merge_prepare(c, sql, &nk->st, "a natural key lookup");
            sqlite3_free(sql);
            if (error)
                return error;
        }
        for (int j = 0; j < nk->ncols; j++)
            mval_bind(nk->st, j + 1, &c->newv[nk->cols[j]]);
        if (nk->same)
            sqlite3_bind_int64(nk->st, nk->ncols + 1, t->csmin);
        int rc = sqlite3_step(nk->st);
        if (rc == SQLITE_ROW) {
            *found = 1;
            *same = nk->same;
            *live_id = sqlite3_column_int64(nk->st, 0);
        }
        sqlite3_reset(nk->st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            return merge_sqlerr(c, rc, "merge: natural key lookup in %s.%s", t->schema, t->name);
    }
    return 0;
}

/* Keeps the values of the same_refs columns of the insert `old` of `t` (temp.pb_same_src). */
static int same_sources(mctx *c, mtable *t, int64_t old)
{
    int error;
    for (int k = 0; k < t->nsrefs; k++) {
        const mval *v = &c->newv[t->srefs[k].col];
        if (v->type != SQLITE_INTEGER)
            continue;
        if (!c->ss_add &&
            (error = merge_prepare(c,
                                   "INSERT OR REPLACE INTO temp.pb_same_src VALUES(?1, ?2, ?3, "
                                   "?4, ?5)",
                                   &c->ss_add, "the same-row plan")))
            return error;
        plan_bind(c->ss_add, t, old);
        sqlite3_bind_int(c->ss_add, 4, t->srefs[k].col);
        sqlite3_bind_int64(c->ss_add, 5, v->i);
        int rc = sqlite3_step(c->ss_add);
        sqlite3_reset(c->ss_add);
        if (rc != SQLITE_DONE)
            return merge_sqlerr(c, rc, "merge: writing the same-row plan of %s.%s", t->schema,
                                t->name);
    }
    return 0;
}

static int plan_insert(mctx *c, mtable *t)
{
    mval *idv = &c->newv[t->ipk];
    if (idv->type != SQLITE_INTEGER)
        return 0; /* not an id: inserted as it is */
    int64_t old = idv->i, to = old, live_id = 0;
    int kind = KIND_IDENT, found = 0, same = 0, error;
    if (!t->has_csmax || old > t->csmax)
        t->csmax = old;
    if (!t->has_csmax || old < t->csmin)
        t->csmin = old;
    t->has_csmax = 1;
    if ((error = same_sources(c, t, old)) ||
        (error = natkey_match(c, t, 0, &live_id, &found, &same)))
        return error;
    if (found) {
        kind = same ? KIND_SAME : KIND_NATKEY;
        to = live_id;
    } else {
        sqlite3_stmt *ex;
        if ((error = mtable_stmt(c, t, 'e', &ex)))
            return error;
        sqlite3_bind_int64(ex, 1, old);
        int rc = sqlite3_step(ex);
        sqlite3_reset(ex);
        if (rc == SQLITE_ROW)
            kind = KIND_RENUM;
        else if (rc != SQLITE_DONE)
            return merge_sqlerr(c, rc, "merge: reading %s.%s", t->schema, t->name);
    }
    sqlite3_stmt *st = c->rm_add;
    plan_bind(st, t, old);
    if (kind == KIND_RENUM)
        sqlite3_bind_null(st, 4);
    else
        sqlite3_bind_int64(st, 4, to);
    sqlite3_bind_int(st, 5, kind);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        return pb_error_set(c->err, PB_ECORRUPT,
                            "merge: %s: record %llu inserts %s.%s id %" PRId64 " a second time",
                            c->path, c->recno, t->schema, t->name, old);
    if (rc != SQLITE_DONE)
        return merge_sqlerr(c, rc, "merge: writing the id plan of %s.%s", t->schema, t->name);
    if (kind != KIND_IDENT)
        remap_note(t, old);
    if (kind == KIND_RENUM)
        t->npending++;
    return 0;
}

static int query_int(mctx *c, const char *sql, int64_t *out, int *isnull)
{
    sqlite3_stmt *st = NULL;
    int error = merge_prepare(c, sql, &st, "a query");
    if (error)
        return error;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *isnull = sqlite3_column_type(st, 0) == SQLITE_NULL;
        *out = sqlite3_column_int64(st, 0);
    } else {
        *isnull = 1;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return merge_sqlerr(c, rc, "merge: query failed");
    return 0;
}

/* Hands out the renumbered ids of every table, above everything in use. */
int merge_assign_renumbers(mctx *c)
{
    int error = 0;
    sqlite3_stmt *st = NULL;
    char *sql = NULL;
    for (int i = 0; i < c->ntabs && !error; i++) {
        mtable *t = c->tabs[i];
        if (!t->npending)
            continue;
        int64_t base = t->csmax, v;
        int isnull;
        if (t->has_refmax && t->refmax > base)
            base = t->refmax;
        sql = sqlite3_mprintf("SELECT max(%s) FROM %s", t->qcols[t->ipk], t->qname);
        if ((error = query_int(c, sql, &v, &isnull)))
            goto done;
        sqlite3_free(sql);
        if (!isnull && v > base)
            base = v;
        if (t->autoinc) {
            sql = sqlite3_mprintf("SELECT seq FROM \"%w\".sqlite_sequence WHERE name = %Q "
                                  "COLLATE NOCASE",
                                  t->schema, t->name);
            if ((error = query_int(c, sql, &v, &isnull)))
                goto done;
            sqlite3_free(sql);
            if (!isnull && v > base)
                base = v;
        }
        sql = NULL;
        if (base > INT64_MAX - t->npending) {
            error = pb_error_set(c->err, PB_ECONFLICT, "merge: no free ids left in %s.%s",
                                 t->schema, t->name);
            goto done;
        }
        if (!st && (error = merge_prepare(
                        c,
                        "UPDATE temp.pb_remap SET new = ?3 + r.rn FROM (SELECT rowid AS rid, "
                        "row_number() OVER (ORDER BY old) AS rn FROM temp.pb_remap WHERE schema = "
                        "?1 AND tbl = ?2 AND kind = 1) AS r WHERE temp.pb_remap.rowid = r.rid",
                        &st, "the renumbering")))
            goto done;
        plan_bind(st, t, base);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
            error = merge_sqlerr(c, rc, "merge: renumbering %s.%s", t->schema, t->name);
    }
done:
    sqlite3_free(sql);
    sqlite3_finalize(st);
    return error;
}

static int natkey_late(mctx *c, mtable *t)
{
    mval *idv = &c->newv[t->ipk];
    if (idv->type != SQLITE_INTEGER)
        return 0;
    int64_t to, live_id;
    int kind, found, same, error;
    if ((error = merge_remap_get(c, t, idv->i, &to, &kind)) || kind == KIND_NATKEY ||
        kind == KIND_SAME)
        return error;
    if ((error = merge_apply_refs(c, t, NULL)) ||
        (error = natkey_match(c, t, 1, &live_id, &found, &same)))
        return error;
    if (!found)
        return 0;
    sqlite3_stmt *st = NULL;
    if ((error = merge_prepare(c,
                               "UPDATE temp.pb_remap SET new = ?4, kind = ?5 WHERE schema = ?1 AND "
                               "tbl = ?2 AND old = ?3",
                               &st, "the id plan")))
        return error;
    plan_bind(st, t, idv->i);
    sqlite3_bind_int64(st, 4, live_id);
    sqlite3_bind_int(st, 5, same ? KIND_SAME : KIND_NATKEY);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return merge_sqlerr(c, rc, "merge: writing the id plan of %s.%s", t->schema, t->name);
    if (kind == KIND_IDENT)
        remap_note(t, idv->i);
    return 0;
}

/* Notes the largest id each ref column of a written record (INSERT, UPDATE new values) points
 * at, whatever its condition: a renumbered id must not be one a dangling reference of the
 * changeset already names (it would attach that reference to the new row). */
static void note_ref_values(mctx *c, mreader *r, mtable *t, int op)
{
    (void)c;
    for (int k = 0; k < t->nrefs; k++) {
        const mref *ref = &t->refs[k];
        sqlite3_value *v = NULL;
        if ((op == SQLITE_INSERT && ref->col == t->ipk) ||
            sqlite3changeset_new(r->it, ref->col, &v) != SQLITE_OK || !v ||
            sqlite3_value_type(v) != SQLITE_INTEGER)
            continue;
        int64_t id = sqlite3_value_int64(v);
        mtable *target = ref->target;
        if (!target->has_refmax || id > target->refmax)
            target->refmax = id;
        target->has_refmax = 1;
    }
}

/* Pass 1 (deferred = 0) or 1b (deferred = 1) over every input. */
/* One record of pass 1 (`*deferred` 0) or 1b (1). */
static int plan_record(mctx *c, mreader *r, mtable *t, int op, int ncol, void *payload)
{
    int deferred = *(const int *)payload, error;
    if (t->cls != PB_CLASS_LIBRARY || t->skip)
        return 0;
    if (!deferred && op != SQLITE_DELETE)
        note_ref_values(c, r, t, op);
    if (op != SQLITE_INSERT || t->ipk < 0)
        return 0;
    int any = 0;
    for (int k = 0; k < t->nnat; k++)
        any |= t->nat[k].deferred;
    if (deferred && !any)
        return 0;
    if (!(error = merge_load_record(c, r, t, op, ncol)))
        error = deferred ? natkey_late(c, t) : plan_insert(c, t);
    merge_clear_record(c);
    return error;
}

int merge_plan(mctx *c, const pb_merge_input *inputs, size_t ninputs, int deferred)
{
    return merge_each_record(c, inputs, ninputs, plan_record, &deferred);
}

/* ---------------------------------------------------------------------------------------------
 * Same-row identities along the same_refs
 */

/* One round along the same ref `k` of `t`: the inserts its KIND_SAME rows name, still kept or
 * renumbered, map onto what the live rows name. *changed += rows remapped. */
static int propagate_ref(mctx *c, mtable *t, const mref *r, int *changed)
{
    sqlite3_stmt *st = NULL;
    char *sql = sqlite3_mprintf(
        "UPDATE temp.pb_remap AS d SET new = x.live, kind = %d FROM (SELECT s.target AS cloud, "
        "(SELECT l.%s FROM %s AS l WHERE l.%s = m.new) AS live FROM temp.pb_remap AS m JOIN "
        "temp.pb_same_src AS s ON s.schema = m.schema AND s.tbl = m.tbl AND s.old = m.old AND "
        "s.col = ?3 WHERE m.schema = ?1 AND m.tbl = ?2 AND m.kind = %d) AS x WHERE d.schema = ?4 "
        "AND d.tbl = ?5 AND d.old = x.cloud AND d.kind IN (%d, %d) AND typeof(x.live) = 'integer'",
        KIND_SAME, t->qcols[r->col], t->qname, t->qcols[t->ipk], KIND_SAME, KIND_IDENT, KIND_RENUM);
    if (!sql)
        return pb_error_set(c->err, PB_ENOMEM, "merge: out of memory");
    int error = merge_prepare(c, sql, &st, "the same-row propagation");
    sqlite3_free(sql);
    if (error)
        return error;
    sqlite3_bind_text(st, 1, t->schema, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, r->col);
    sqlite3_bind_text(st, 4, r->target->schema, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, r->target->name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return merge_sqlerr(c, rc, "merge: same-row propagation from %s.%s", t->schema, t->name);
    *changed += sqlite3_changes(c->db);
    return 0;
}

/* The range of non-identity remaps of `t`, re-read from the plan. */
static int remap_range(mctx *c, mtable *t)
{
    sqlite3_stmt *st = NULL;
    int error = merge_prepare(c,
                              "SELECT count(*), min(old), max(old) FROM temp.pb_remap WHERE schema "
                              "= ?1 AND tbl = ?2 AND kind <> 0",
                              &st, "the id plan");
    if (error)
        return error;
    plan_bind(st, t, 0);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        t->nremap = sqlite3_column_int64(st, 0);
        t->rmin = sqlite3_column_int64(st, 1);
        t->rmax = sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : merge_sqlerr(c, rc, "merge: reading the id plan");
}

int merge_propagate_same(mctx *c)
{
    int any = 0, error = 0;
    for (int i = 0; i < c->ntabs; i++)
        any |= c->tabs[i]->nsrefs > 0 && c->tabs[i]->has_csmax && c->tabs[i]->ipk >= 0;
    if (!any)
        return 0;
    /* a chain is as long as the same_refs allow; a round that maps nothing ends it */
    for (int round = 0; round < 64; round++) {
        int changed = 0;
        for (int i = 0; i < c->ntabs && !error; i++) {
            mtable *t = c->tabs[i];
            if (!t->has_csmax || t->ipk < 0)
                continue;
            for (int k = 0; k < t->nsrefs && !error; k++)
                error = propagate_ref(c, t, &t->srefs[k], &changed);
        }
        if (error || !changed)
            break;
    }
    for (int i = 0; i < c->ntabs && !error; i++)
        if (c->tabs[i]->has_csmax)
            error = remap_range(c, c->tabs[i]);
    return error;
}

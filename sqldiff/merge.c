/*
 * merge.c: pb_merge_apply(), the generic 3-way row merge (include/plexburst/merge.h): applies
 * changesets computed base -> cloud onto a live DB that diverged from the base, deciding per
 * record and per column with a caller's policy (table classes, column rules, refs, natural keys,
 * text mapping). It knows nothing of Plex; engine/ holds the Plex policy.
 * Role: the row half of a sync's apply step (DESIGN.md §4). Prerequisites: SQLite with the session
 * extension; the live connection opened with the compat layer (pb_compat_open) when it is a Plex
 * DB, the other DBs attached under the schema names the inputs and the policy use.
 *
 * How it runs. Inputs are SQLite session CHANGESET files, streamed (sqlite3changeset_start_strm,
 * bounded buffers), inside one transaction (BEGIN IMMEDIATE with the busy timeout):
 *   pass 0  validates every input (pb_changeset_validate, changeset.c): a truncated or malformed
 * file fails here, with its byte offset (SQLite 3.40's streaming iterator would hang on some). pass
 * 1  plans ids: every INSERT into a table keyed by one INTEGER column gets a row in
 *           temp.pb_remap(schema, tbl, old, new, kind) (unique index on schema, tbl, old): kind 0
 *           keeps its id, 2 maps it onto the live row its natural key matches, 1 renumbers it
 *           (its id is used in the live DB) to the next free id above max(live max, live
 *           sqlite_sequence.seq, largest id the changesets insert, largest id a ref column of a
 *           written value points at, condition ignored: a dangling reference of the cloud must not
 *           be attached to a renumbered row), in ascending old-id order.
 *           Natural keys that contain a ref column are matched in a second read (pass 1b), once
 *           the refs they depend on are planned. A natural key that no index of the live table
 *           serves is looked up in an indexed TEMP copy of its columns (temp.pb_nk_N, same
 *           collations), taken once, instead of scanning the table for every insert. Tables are
 * classified and checked against the live DB here, so a changeset touching a derived table or a
 * table/column the live DB lacks, or a corrupt record, fails before anything is written. pass 2
 * applies every record in changeset order (merge.h semantics), remapping ref columns through
 * temp.pb_remap (only for targets with non-identity remaps, within their id range), with statements
 * prepared once per (schema, table, shape). then    sqlite_sequence.seq = max(seq, max(id)) for
 * every AUTOINCREMENT table inserted into, DROP of the temp tables and COMMIT; ROLLBACK on any
 * error and with dry_run. Memory stays bounded: per table metadata and statements, one record's
 * values, the plan on disk.
 *
 * Script mode (opts->script): the live connection is only read (a deferred read transaction for a
 * consistent snapshot; TEMP tables hold the plan), and every write is rendered as SQL with exact
 * literals (merge_value.c) between BEGIN IMMEDIATE; and COMMIT; (preceded by the caller's
 * script_before_commit when a row was written). Decisions that depend on earlier
 * writes of the same merge (identical rows of a multiset table inserted or deleted twice) are made
 * through a TEMP shadow (temp.pb_shadow_N) of what the script has written, so the script does what
 * the in-process merge would.
 *
 * Cross-file atomicity: with other DBs attached (blobs), one COMMIT is atomic across the files only
 * in a rollback journal mode (SQLite's super-journal). In WAL mode each file commits on its own: a
 * crash between the two leaves main merged and blobs not (or the reverse). The merge never changes
 * journal modes; pb_merge_commit_is_atomic() reports the case and engine/ switches the journal
 * mode around the merge or covers it with its own journal.
 *
 * Test hook (tests only): when the environment variable PB_TEST_CRASH_AFTER is N > 0, the process
 * raises SIGKILL right after the N-th record written (insert, update or delete executed, or
 * rendered in script mode), to test crash recovery by SQLite's journal.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "merge_internal.h"
#include "plexburst/sqldiff.h"

#define KIND_IDENT  0
#define KIND_RENUM  1
#define KIND_NATKEY 2

#define COUNT(c, t, field)                                                                         \
    do {                                                                                           \
        (t)->counts->field++;                                                                      \
        (c)->stats->total.field++;                                                                 \
    } while (0)

/* ---------------------------------------------------------------------------------------------
 * Reading changesets
 */

typedef struct mreader {
    FILE *f;
    sqlite3_changeset_iter *it;
    mtable *last; /* table of the previous record */
    const char *schema;
} mreader;

static int xinput(void *p, void *data, int *n)
{
    FILE *f = p;
    size_t got = fread(data, 1, (size_t)*n, f);
    if (got < (size_t)*n && ferror(f))
        return SQLITE_IOERR;
    *n = (int)got;
    return SQLITE_OK;
}

static void reader_close(mreader *r)
{
    if (r->it)
        sqlite3changeset_finalize(r->it);
    if (r->f)
        fclose(r->f);
    r->it = NULL;
    r->f = NULL;
}

static int reader_open(mctx *c, const pb_merge_input *in, mreader *r)
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
        reader_close(r);
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
static int reader_next(mctx *c, mreader *r, mtable **tp, int *opp, int *ncolp)
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

static void clear_record(mctx *c)
{
    for (int i = 0; i < c->vcap; i++) {
        mval_clear(&c->oldv[i]);
        mval_clear(&c->newv[i]);
    }
}

/* Loads the current record's values into c->oldv / c->newv, mapped. */
static int load_record(mctx *c, mreader *r, mtable *t, int op, int ncol)
{
    if (ncol > c->vcap) {
        clear_record(c);
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

/* ---------------------------------------------------------------------------------------------
 * The id plan (temp.pb_remap)
 */

static int remap_get(mctx *c, mtable *t, int64_t old, int64_t *out, int *kind)
{
    *out = old;
    *kind = KIND_IDENT;
    if (t->nremap == 0 || old < t->rmin || old > t->rmax)
        return 0;
    sqlite3_stmt *st = c->rm_get;
    sqlite3_bind_text(st, 1, t->schema, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, old);
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
static int apply_refs(mctx *c, mtable *t, sqlite3_stmt *live)
{
    for (int k = 0; k < t->nrefs; k++) {
        const mref *r = &t->refs[k];
        mval *v = &c->newv[r->col];
        if (r->col == t->ipk || v->type != SQLITE_INTEGER || !ref_applies(c, r, live))
            continue;
        int64_t to;
        int kind, error = remap_get(c, r->target, v->i, &to, &kind);
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

/* Looks the natural keys of `t` (deferred ones or the others) up in the live DB. */
static int natkey_match(mctx *c, mtable *t, int deferred, int64_t *live_id, int *found)
{
    *found = 0;
    for (int k = 0; k < t->nnat && !*found; k++) {
        mnatkey *nk = &t->nat[k];
        if (nk->deferred != deferred)
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
        int rc = sqlite3_step(nk->st);
        if (rc == SQLITE_ROW) {
            *found = 1;
            *live_id = sqlite3_column_int64(nk->st, 0);
        }
        sqlite3_reset(nk->st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            return merge_sqlerr(c, rc, "merge: natural key lookup in %s.%s", t->schema, t->name);
    }
    return 0;
}

static int plan_insert(mctx *c, mtable *t)
{
    mval *idv = &c->newv[t->ipk];
    if (idv->type != SQLITE_INTEGER)
        return 0; /* not an id: inserted as it is */
    int64_t old = idv->i, to = old, live_id = 0;
    int kind = KIND_IDENT, found = 0, error;
    if (!t->has_csmax || old > t->csmax)
        t->csmax = old;
    t->has_csmax = 1;
    if ((error = natkey_match(c, t, 0, &live_id, &found)))
        return error;
    if (found) {
        kind = KIND_NATKEY;
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
    sqlite3_bind_text(st, 1, t->schema, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, old);
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
static int assign_renumbers(mctx *c)
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
        sqlite3_bind_text(st, 1, t->schema, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, t->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, base);
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
    int kind, found, error;
    if ((error = remap_get(c, t, idv->i, &to, &kind)) || kind == KIND_NATKEY)
        return error;
    if ((error = apply_refs(c, t, NULL)) || (error = natkey_match(c, t, 1, &live_id, &found)))
        return error;
    if (!found)
        return 0;
    sqlite3_stmt *st = NULL;
    if ((error = merge_prepare(c,
                               "UPDATE temp.pb_remap SET new = ?4, kind = 2 WHERE schema = ?1 AND "
                               "tbl = ?2 AND old = ?3",
                               &st, "the id plan")))
        return error;
    sqlite3_bind_text(st, 1, t->schema, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, idv->i);
    sqlite3_bind_int64(st, 4, live_id);
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
static int plan(mctx *c, const pb_merge_input *inputs, size_t ninputs, int deferred)
{
    int error = 0;
    mreader r = {0};
    for (size_t i = 0; i < ninputs && !error; i++) {
        if ((error = reader_open(c, &inputs[i], &r)))
            break;
        mtable *t;
        int op, ncol, got;
        while ((got = reader_next(c, &r, &t, &op, &ncol)) == 1) {
            if (t->cls != PB_CLASS_LIBRARY || t->skip)
                continue;
            if (!deferred && op != SQLITE_DELETE)
                note_ref_values(c, &r, t, op);
            if (op != SQLITE_INSERT || t->ipk < 0)
                continue;
            int any = 0;
            for (int k = 0; k < t->nnat; k++)
                any |= t->nat[k].deferred;
            if (deferred && !any)
                continue;
            if (!(error = load_record(c, &r, t, op, ncol)))
                error = deferred ? natkey_late(c, t) : plan_insert(c, t);
            clear_record(c);
            if (error)
                break;
        }
        if (got < 0)
            error = got;
        reader_close(&r);
    }
    reader_close(&r);
    return error;
}

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

static int script_err(mctx *c)
{
    return pb_error_errno(c->err, "merge: writing the script");
}

static void wrote(mctx *c)
{
    c->writes++;
    if (c->crash_after && c->writes == c->crash_after) {
        if (c->script)
            fflush(c->script);
        raise(SIGKILL);
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
            return script_err(c);
    }
    return 0;
}

static int write_insert(mctx *c, mtable *t, const mval *v, int64_t id)
{
    int error;
    if (c->script) {
        FILE *f = c->script;
        if (fprintf(f, "INSERT INTO %s(", t->qname) < 0)
            return script_err(c);
        for (int i = 0; i < t->ncol; i++)
            if (fprintf(f, "%s%s", i ? "," : "", t->qcols[i]) < 0)
                return script_err(c);
        if (fputs(") VALUES(", f) < 0)
            return script_err(c);
        for (int i = 0; i < t->ncol; i++)
            if ((i && fputc(',', f) == EOF) || mval_write_literal(f, &v[i]) < 0)
                return script_err(c);
        if (fputs(");\n", f) < 0)
            return script_err(c);
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
            return script_err(c);
        int n = 0;
        for (int i = 0; i < t->ncol; i++)
            if (mask[i / 64] >> (i % 64) & 1)
                if (fprintf(f, "%s%s = ", n++ ? ", " : "", t->qcols[i]) < 0 ||
                    mval_write_literal(f, &nv[i]) < 0)
                    return script_err(c);
        if (fputs(" WHERE ", f) < 0)
            return script_err(c);
        if ((error = script_where(c, t, kv, 0, "=")))
            return error;
        if (fputs(";\n", f) < 0)
            return script_err(c);
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
            return script_err(c);
        if ((error = script_where(c, t, v, !t->haspk, t->haspk ? "=" : "IS")))
            return error;
        if (fputs(t->haspk ? ";\n" : " LIMIT 1);\n", f) < 0)
            return script_err(c);
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
static int merge_column(mctx *c, mtable *t, int i, sqlite3_stmt *live, const mval *bv)
{
    int error;
    if (!c->vsel && (error = merge_prepare(c, "SELECT ?1, ?2", &c->vsel, "a value statement")))
        return error;
    mval_bind(c->vsel, 1, &bv[i]);
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
            int m =
                can_merge && t->rules[i] == PB_COL_DEFAULT ? merge_column(c, t, i, live, bv) : 0;
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

static int do_insert(mctx *c, mtable *t)
{
    mval *nv = c->newv;
    int error;
    sqlite3_stmt *live;
    if (!t->haspk) {
        int64_t n;
        if ((error = apply_refs(c, t, NULL)) || (error = multiset_count(c, t, nv, &n)))
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
        if ((error = remap_get(c, t, old, &to, &kind)))
            return error;
        if (kind == KIND_NATKEY) {
            COUNT(c, t, natkey_mapped);
            action(c, t, SQLITE_INSERT, old, to, NULL, PB_RES_NATKEY);
            return 0;
        }
        nv[t->ipk].i = to;
        if ((error = apply_refs(c, t, NULL)) || (error = write_insert(c, t, nv, to)))
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
    if ((error = apply_refs(c, t, NULL)))
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
    int error = apply_refs(c, t, live);
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

static int apply_all(mctx *c, const pb_merge_input *inputs, size_t ninputs)
{
    int error = 0;
    mreader r = {0};
    for (size_t i = 0; i < ninputs && !error; i++) {
        if ((error = reader_open(c, &inputs[i], &r)))
            break;
        mtable *t;
        int op, ncol, got;
        while ((got = reader_next(c, &r, &t, &op, &ncol)) == 1) {
            if (t->skip)
                continue;
            if (t->cls == PB_CLASS_USER) {
                COUNT(c, t, user_state_dropped);
                if (c->opt->on_action) {
                    int64_t id = 0;
                    sqlite3_value *v = NULL;
                    unsigned char *abpk;
                    int npk;
                    if (sqlite3changeset_pk(r.it, &abpk, &npk) == SQLITE_OK)
                        for (int k = 0; k < npk; k++)
                            if (abpk[k]) {
                                if ((op == SQLITE_INSERT
                                         ? sqlite3changeset_new(r.it, k, &v)
                                         : sqlite3changeset_old(r.it, k, &v)) == SQLITE_OK &&
                                    v && sqlite3_value_type(v) == SQLITE_INTEGER)
                                    id = sqlite3_value_int64(v);
                                break;
                            }
                    action(c, t, op, id, id, NULL, PB_RES_DROPPED_USER);
                }
                continue;
            }
            if (!(error = load_record(c, &r, t, op, ncol))) {
                if (op == SQLITE_INSERT)
                    error = do_insert(c, t);
                else if (op == SQLITE_UPDATE)
                    error = do_update(c, t);
                else
                    error = do_delete(c, t);
            }
            clear_record(c);
            if (error)
                break;
        }
        if (got < 0)
            error = got;
        reader_close(&r);
    }
    reader_close(&r);
    return error;
}

/* sqlite_sequence.seq = max(seq, max(id)) for every AUTOINCREMENT table inserted into. The
 * max() stays a scalar subquery: SQLite reads it from the end of the table (as a subquery in
 * FROM it would scan the whole table). */
static int update_sequences(mctx *c)
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
                error = script_err(c);
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

/* ---------------------------------------------------------------------------------------------
 * Entry points
 */

static int exec(mctx *c, const char *sql)
{
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return merge_sqlerr(c, rc, "merge: %.40s", sql);
    return 0;
}

static int check_inputs(mctx *c, const pb_merge_input *inputs, size_t ninputs)
{
    sqlite3_stmt *st = NULL;
    int error = merge_prepare(c, "SELECT 1 FROM pragma_database_list WHERE name = ?1", &st,
                              "the schema check");
    for (size_t i = 0; i < ninputs && !error; i++) {
        if (!inputs[i].schema || !inputs[i].path) {
            error = pb_error_set(c->err, PB_EINVALID, "merge: input %zu lacks schema or path", i);
            break;
        }
        sqlite3_bind_text(st, 1, inputs[i].schema, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc == SQLITE_DONE)
            error = pb_error_set(c->err, PB_EINVALID,
                                 "merge: schema %s of %s is not attached to the live connection",
                                 inputs[i].schema, inputs[i].path);
        else if (rc != SQLITE_ROW)
            error = merge_sqlerr(c, rc, "merge: checking schemas");
    }
    sqlite3_finalize(st);
    return error;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The strict changeset validator (changeset.c) over one input; patchsets are refused: the merge
 * needs the old values (pb_changeset_expand rebuilds them from the base). */
static int validate_input(mctx *c, const char *path)
{
    pb_changeset_summary sum;
    int error = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT
                   ? pb_error_set(c->err, PB_ENOTFOUND, "merge: changeset %s not found", path)
                   : pb_error_errno(c->err, "merge: opening changeset %s", path);
    pb_error verr = PB_ERROR_INIT;
    if ((error = pb_changeset_validate_file(&sum, f, NULL, &verr)) < 0)
        pb_error_setd(c->err, error, verr.dep_code, "merge: %s: %s", path, verr.msg);
    else if (sum.patchset)
        error = pb_error_set(c->err, PB_ECORRUPT, "merge: %s is a patchset, not a changeset", path);
    fclose(f);
    return error;
}

int pb_merge_apply(sqlite3 *live, const pb_merge_input *inputs, size_t ninputs,
                   const pb_merge_policy *policy, const pb_merge_options *opts,
                   pb_merge_stats *stats, pb_error *err)
{
    int error = 0, began = 0, old_timeout = -1, old_cache = 0, have_cache = 0;
    double t0 = now_ms();
    static const pb_merge_options defaults = PB_MERGE_OPTIONS_INIT;
    pb_merge_stats dummy;
    mctx c;
    memset(&c, 0, sizeof(c));
    if (!stats)
        stats = &dummy;
    memset(stats, 0, sizeof(*stats));
    if (!opts)
        opts = &defaults;
    if (!live || (!inputs && ninputs) || !policy || !policy->table_class || policy->version < 1 ||
        policy->version > PB_MERGE_POLICY_VERSION || opts->version < 1 ||
        opts->version > PB_MERGE_OPTIONS_VERSION)
        return pb_error_set(err, PB_EINVALID, "merge: invalid arguments or version");
    c.db = live;
    c.pol = policy;
    c.opt = opts;
    c.stats = stats;
    c.err = err;
    c.script = opts->script;
    c.path = "";
    const char *crash = getenv("PB_TEST_CRASH_AFTER");
    if (crash && *crash)
        c.crash_after = strtoull(crash, NULL, 10);

    if (!sqlite3_get_autocommit(live)) {
        error =
            pb_error_set(err, PB_EINVALID, "merge: the live connection is inside a transaction");
        goto done;
    }
    {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(live, "PRAGMA busy_timeout", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            old_timeout = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        sqlite3_busy_timeout(live, opts->busy_timeout_ms > 0 ? opts->busy_timeout_ms : 0);
        /* A page cache of 16 MiB for the transaction when the connection has SQLite's default
         * (2 MiB, which a nightly merge spills mid-transaction: about 3x the fsyncs and 40 %
         * more writes, measured on the medium fixture); a cache the caller chose is kept.
         * Restored below. */
        if (sqlite3_prepare_v2(live, "PRAGMA main.cache_size", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            old_cache = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        have_cache = old_cache == -2000 && sqlite3_exec(live, "PRAGMA main.cache_size=-16384", NULL,
                                                        NULL, NULL) == SQLITE_OK;
    }
    if ((error = check_inputs(&c, inputs, ninputs)))
        goto done;
    int rc = sqlite3_exec(live, c.script ? "BEGIN" : "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        error = merge_sqlerr(&c, rc, "merge: cannot begin the transaction on the live DB");
        goto done;
    }
    began = 1;
    for (size_t i = 0; c.script && i < ninputs; i++) { /* read snapshots of every file, now */
        char *sql = sqlite3_mprintf("SELECT count(*) FROM \"%w\".sqlite_master", inputs[i].schema);
        rc = sql ? sqlite3_exec(live, sql, NULL, NULL, NULL) : SQLITE_NOMEM;
        sqlite3_free(sql);
        if (rc != SQLITE_OK) {
            error = merge_sqlerr(&c, rc, "merge: reading the live DB");
            goto done;
        }
    }
    if ((error =
             exec(&c, "DROP TABLE IF EXISTS temp.pb_remap;"
                      "CREATE TEMP TABLE pb_remap(schema TEXT NOT NULL, tbl TEXT NOT NULL, "
                      "old INTEGER NOT NULL, new INTEGER, kind INTEGER NOT NULL);"
                      "CREATE UNIQUE INDEX temp.pb_remap_key ON pb_remap(schema, tbl, old);")) ||
        (error = merge_prepare(&c, "INSERT INTO temp.pb_remap VALUES(?1, ?2, ?3, ?4, ?5)",
                               &c.rm_add, "the id plan")) ||
        (error = merge_prepare(&c,
                               "SELECT new, kind FROM temp.pb_remap WHERE schema = ?1 AND tbl = ?2 "
                               "AND old = ?3",
                               &c.rm_get, "the id plan")))
        goto done;

    /* pass 0: validate every input (SQLite's streaming iterator hangs on some truncations) */
    for (size_t i = 0; i < ninputs; i++)
        if ((error = validate_input(&c, inputs[i].path)))
            goto done;

    /* pass 1: classify, check, plan ids */
    if ((error = plan(&c, inputs, ninputs, 0)) || (error = assign_renumbers(&c)))
        goto done;
    int deferred = 0;
    for (int i = 0; i < c.ntabs; i++)
        for (int k = 0; k < c.tabs[i]->nnat; k++)
            deferred |= c.tabs[i]->nat[k].deferred && c.tabs[i]->has_csmax;
    if (deferred && (error = plan(&c, inputs, ninputs, 1)))
        goto done;

    /* pass 2: apply */
    if (c.script && fputs("BEGIN IMMEDIATE;\n", c.script) < 0) {
        error = script_err(&c);
        goto done;
    }
    if ((error = apply_all(&c, inputs, ninputs)) || (error = update_sequences(&c)))
        goto done;
    if (c.script && c.writes && opts->version >= 2 && opts->script_before_commit &&
        fputs(opts->script_before_commit, c.script) < 0) {
        error = script_err(&c);
        goto done;
    }
    if (c.script && (fputs("COMMIT;\n", c.script) < 0 || fflush(c.script) != 0)) {
        error = script_err(&c);
        goto done;
    }

done:
    sqlite3_finalize(c.rm_add);
    sqlite3_finalize(c.rm_get);
    sqlite3_finalize(c.vsel);
    c.rm_add = c.rm_get = c.vsel = NULL;
    for (int i = 0; i < c.ntabs; i++)
        mtable_free(c.tabs[i]);
    free(c.tabs);
    clear_record(&c);
    free(c.oldv);
    free(c.newv);
    if (began) {
        if (!error && !opts->dry_run && !c.script) {
            rc = sqlite3_exec(live, "DROP TABLE IF EXISTS temp.pb_remap", NULL, NULL, NULL);
            for (int i = 0; i < c.nsnap && rc == SQLITE_OK; i++) {
                char *sql = sqlite3_mprintf("DROP TABLE IF EXISTS temp.\"pb_nk_%d\"", i);
                rc = sql ? sqlite3_exec(live, sql, NULL, NULL, NULL) : SQLITE_NOMEM;
                sqlite3_free(sql);
            }
            if (rc == SQLITE_OK)
                rc = sqlite3_exec(live, "COMMIT", NULL, NULL, NULL);
            if (rc != SQLITE_OK)
                error = merge_sqlerr(&c, rc, "merge: commit failed");
        }
        if (!sqlite3_get_autocommit(live))
            sqlite3_exec(live, "ROLLBACK", NULL, NULL, NULL);
    }
    if (old_timeout >= 0)
        sqlite3_busy_timeout(live, old_timeout);
    if (have_cache) {
        char *sql = sqlite3_mprintf("PRAGMA main.cache_size=%d", old_cache);
        if (sql)
            sqlite3_exec(live, sql, NULL, NULL, NULL);
        sqlite3_free(sql);
    }
    stats->ms = now_ms() - t0;
    return error;
}

int pb_merge_commit_is_atomic(int *out, sqlite3 *live, const pb_merge_input *inputs, size_t ninputs,
                              pb_error *err)
{
    if (!out || !live || (!inputs && ninputs))
        return pb_error_set(err, PB_EINVALID, "merge: invalid arguments");
    *out = 0;
    size_t distinct = 0;
    for (size_t i = 0; i < ninputs; i++) {
        size_t j = 0;
        while (j < i && strcasecmp(inputs[j].schema, inputs[i].schema) != 0)
            j++;
        distinct += j == i;
    }
    if (distinct <= 1) {
        *out = 1;
        return 0;
    }
    const char *mainfile = sqlite3_db_filename(live, "main");
    if (!mainfile || !*mainfile)
        return 0;
    for (size_t i = 0; i < ninputs; i++) {
        sqlite3_stmt *st = NULL;
        char *sql = sqlite3_mprintf("PRAGMA \"%w\".journal_mode", inputs[i].schema);
        int rc = sql ? sqlite3_prepare_v2(live, sql, -1, &st, NULL) : SQLITE_NOMEM;
        sqlite3_free(sql);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
            sqlite3_finalize(st);
            return pb_error_setd(err, PB_ESQLITE, rc, "merge: journal mode of %s: %s",
                                 inputs[i].schema, sqlite3_errmsg(live));
        }
        const char *mode = (const char *)sqlite3_column_text(st, 0);
        int ok = mode && (strcasecmp(mode, "delete") == 0 || strcasecmp(mode, "truncate") == 0 ||
                          strcasecmp(mode, "persist") == 0);
        sqlite3_finalize(st);
        if (!ok)
            return 0;
    }
    *out = 1;
    return 0;
}

/*
 * merge_table.c: the tables of the 3-way merge (merge_internal.h): classification through the
 * policy, the check of each library table against the live DB (columns, key), the resolution of
 * the policy's refs, natural keys and column rules, and the statements, prepared once per
 * (schema, table, shape) and cached for the whole merge.
 * Role: internal to sqldiff/merge*.c. Prerequisites: the live connection of the merge, with the
 * other DBs attached.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "merge_internal.h"

int merge_sqlerr(mctx *c, int rc, const char *fmt, ...)
{
    char head[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof(head), fmt, ap);
    va_end(ap);
    int code = PB_ESQLITE;
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
        code = PB_ECONFLICT;
        break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        code = PB_EBUSY;
        break;
    case SQLITE_NOMEM:
        code = PB_ENOMEM;
        break;
    default:
        break;
    }
    return pb_error_setd(c->err, code, sqlite3_extended_errcode(c->db), "%s: %s", head,
                         sqlite3_errmsg(c->db));
}

int merge_prepare(mctx *c, const char *sql, sqlite3_stmt **out, const char *what)
{
    if (!sql)
        return pb_error_set(c->err, PB_ENOMEM, "merge: out of memory preparing %s", what);
    int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
    if (rc != SQLITE_OK)
        return merge_sqlerr(c, rc, "merge: preparing %s", what);
    return 0;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

mtable *mtable_get(mctx *c, const char *schema, const char *name)
{
    for (int i = 0; i < c->ntabs; i++)
        if (strcasecmp(c->tabs[i]->name, name) == 0 && strcasecmp(c->tabs[i]->schema, schema) == 0)
            return c->tabs[i];
    if (c->ntabs == c->capt) {
        int cap = c->capt ? c->capt * 2 : 32;
        mtable **n = realloc(c->tabs, sizeof(*n) * (size_t)cap);
        if (!n)
            return NULL;
        c->tabs = n;
        c->capt = cap;
    }
    mtable *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->schema = xstrdup(schema);
    t->name = xstrdup(name);
    t->qname = sqlite3_mprintf("\"%w\".\"%w\"", schema, name);
    if (!t->schema || !t->name || !t->qname) {
        mtable_free(t);
        return NULL;
    }
    t->ipk = -1;
    t->counts = &c->sink;
    c->tabs[c->ntabs++] = t;
    return t;
}

void mtable_free(mtable *t)
{
    if (!t)
        return;
    sqlite3_finalize(t->sel);
    sqlite3_finalize(t->ins);
    sqlite3_finalize(t->del);
    sqlite3_finalize(t->exists);
    sqlite3_finalize(t->shsum);
    sqlite3_finalize(t->shadd);
    for (int i = 0; i < t->nupd; i++) {
        sqlite3_finalize(t->upd[i].st);
        free(t->upd[i].mask);
    }
    for (int i = 0; i < t->nnat; i++)
        sqlite3_finalize(t->nat[i].st);
    free(t->nat);
    free(t->refs);
    free(t->srefs);
    for (int i = 0; i < t->ncol; i++) {
        if (t->cols)
            free(t->cols[i]);
        if (t->qcols)
            sqlite3_free(t->qcols[i]);
    }
    free(t->cols);
    free(t->qcols);
    free(t->pk);
    free(t->rules);
    sqlite3_free(t->qname);
    free(t->schema);
    free(t->name);
    free(t);
}

static int col_index(const mtable *t, const char *name)
{
    for (int i = 0; i < t->ncol; i++)
        if (strcasecmp(t->cols[i], name) == 0)
            return i;
    return -1;
}

/* Reads the live table's columns and key; PB_ESCHEMA when the live DB lacks the table. */
static int load_columns(mctx *c, mtable *t)
{
    int error = 0;
    sqlite3_stmt *st = NULL;
    char *sql = sqlite3_mprintf("SELECT sql FROM \"%w\".sqlite_master WHERE type = 'table' AND "
                                "name = ?1 COLLATE NOCASE",
                                t->schema);
    if ((error = merge_prepare(c, sql, &st, "a schema query")))
        goto done;
    sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        error = pb_error_set(c->err, PB_ESCHEMA, "merge: table %s.%s missing in the live DB",
                             t->schema, t->name);
        goto done;
    }
    if (rc != SQLITE_ROW) {
        error = merge_sqlerr(c, rc, "merge: reading the schema of %s.%s", t->schema, t->name);
        goto done;
    }
    const char *ddl = (const char *)sqlite3_column_text(st, 0);
    t->autoinc = ddl && strcasestr(ddl, "AUTOINCREMENT") != NULL;
    sqlite3_finalize(st);
    st = NULL;
    sqlite3_free(sql);

    sql = sqlite3_mprintf("SELECT count(*) FROM pragma_table_info(?1, ?2)");
    if ((error = merge_prepare(c, sql, &st, "a schema query")))
        goto done;
    sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, t->schema, -1, SQLITE_STATIC);
    if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
        error = merge_sqlerr(c, rc, "merge: reading the columns of %s.%s", t->schema, t->name);
        goto done;
    }
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    sqlite3_free(sql);
    sql = NULL;
    if (n <= 0) {
        error = pb_error_set(c->err, PB_ESCHEMA, "merge: table %s.%s has no columns in the live DB",
                             t->schema, t->name);
        goto done;
    }
    t->cols = calloc((size_t)n, sizeof(char *));
    t->qcols = calloc((size_t)n, sizeof(char *));
    t->pk = calloc((size_t)n, 1);
    t->rules = calloc((size_t)n, sizeof(int));
    if (!t->cols || !t->qcols || !t->pk || !t->rules) {
        error = pb_error_set(c->err, PB_ENOMEM, "merge: out of memory");
        goto done;
    }
    t->ncol = n;
    sql = sqlite3_mprintf("SELECT name, type, pk FROM pragma_table_info(?1, ?2) ORDER BY cid");
    if ((error = merge_prepare(c, sql, &st, "a schema query")))
        goto done;
    sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, t->schema, -1, SQLITE_STATIC);
    int i = 0, ipk = -1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && i < n) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        const char *type = (const char *)sqlite3_column_text(st, 1);
        t->cols[i] = xstrdup(name ? name : "");
        t->qcols[i] = sqlite3_mprintf("\"%w\"", name ? name : "");
        if (!t->cols[i] || !t->qcols[i]) {
            error = pb_error_set(c->err, PB_ENOMEM, "merge: out of memory");
            goto done;
        }
        if (sqlite3_column_int(st, 2) > 0) {
            t->pk[i] = 1;
            t->npk++;
            if (type && strcasecmp(type, "INTEGER") == 0)
                ipk = i;
        }
        i++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        error = merge_sqlerr(c, rc, "merge: reading the columns of %s.%s", t->schema, t->name);
        goto done;
    }
    t->haspk = t->npk > 0;
    t->ipk = t->npk == 1 ? ipk : -1;
done:
    sqlite3_finalize(st);
    sqlite3_free(sql);
    return error;
}

/* The natural keys (same = 0) or same-row keys (1) of `t` among `keys`. */
static int add_keys(mctx *c, mtable *t, const pb_merge_natkey *keys, size_t nkeys, int same)
{
    for (size_t k = 0; k < nkeys; k++) {
        const pb_merge_natkey *nk = &keys[k];
        if (!nk->schema || !nk->table || strcasecmp(nk->schema, t->schema) != 0 ||
            strcasecmp(nk->table, t->name) != 0)
            continue;
        mnatkey m;
        memset(&m, 0, sizeof(m));
        m.same = same;
        int ok = 1;
        for (int j = 0; j < 8 && nk->columns[j]; j++) {
            int col = col_index(t, nk->columns[j]);
            if (col < 0)
                ok = 0;
            m.cols[m.ncols++] = col;
            for (int r = 0; r < t->nrefs; r++)
                if (t->refs[r].col == col)
                    m.deferred = 1;
        }
        if (!ok || m.ncols == 0)
            continue;
        mnatkey *n = realloc(t->nat, sizeof(*n) * (size_t)(t->nnat + 1));
        if (!n)
            return pb_error_set(c->err, PB_ENOMEM, "merge: out of memory");
        t->nat = n;
        n[t->nnat++] = m;
    }
    return 0;
}

/* The same_refs whose source is `t` (unconditional ones, columns the live table has). */
static int add_same_refs(mctx *c, mtable *t)
{
    const pb_merge_policy *pol = c->pol;
    for (size_t k = 0; k < pol->nsame_refs; k++) {
        const pb_merge_ref *r = &pol->same_refs[k];
        if (!r->schema || !r->table || !r->column || !r->target_schema || !r->target_table)
            return pb_error_set(c->err, PB_EINVALID, "merge: policy same ref %zu is incomplete", k);
        if (r->when_column || strcasecmp(r->schema, t->schema) != 0 ||
            strcasecmp(r->table, t->name) != 0)
            continue;
        int col = col_index(t, r->column);
        if (col < 0)
            continue;
        mtable *target = mtable_get(c, r->target_schema, r->target_table);
        mref *n = target ? realloc(t->srefs, sizeof(*n) * (size_t)(t->nsrefs + 1)) : NULL;
        if (!n)
            return pb_error_set(c->err, PB_ENOMEM, "merge: out of memory");
        t->srefs = n;
        n[t->nsrefs++] = (mref){col, -1, NULL, target};
    }
    return 0;
}

static int resolve_policy(mctx *c, mtable *t)
{
    const pb_merge_policy *pol = c->pol;
    if (pol->column_rule)
        for (int i = 0; i < t->ncol; i++) {
            int r = pol->column_rule(t->schema, t->name, t->cols[i], pol->payload);
            t->rules[i] = (r == PB_COL_KEEP_LIVE || r == PB_COL_TAKE_CLOUD) ? r : PB_COL_DEFAULT;
        }
    for (size_t k = 0; k < pol->nrefs; k++) {
        const pb_merge_ref *r = &pol->refs[k];
        if (!r->schema || !r->table || !r->column || !r->target_schema || !r->target_table)
            return pb_error_set(c->err, PB_EINVALID, "merge: policy ref %zu is incomplete", k);
        if (strcasecmp(r->schema, t->schema) != 0 || strcasecmp(r->table, t->name) != 0)
            continue;
        int col = col_index(t, r->column), wcol = -1;
        if (col < 0)
            continue; /* column absent in this schema version */
        if (r->when_column && (wcol = col_index(t, r->when_column)) < 0)
            continue;
        mref *n = realloc(t->refs, sizeof(*n) * (size_t)(t->nrefs + 1));
        if (!n)
            return pb_error_set(c->err, PB_ENOMEM, "merge: out of memory");
        t->refs = n;
        mtable *target = mtable_get(c, r->target_schema, r->target_table);
        if (!target)
            return pb_error_set(c->err, PB_ENOMEM, "merge: out of memory");
        n[t->nrefs].col = col;
        n[t->nrefs].when_col = wcol;
        n[t->nrefs].when_value = r->when_column ? (r->when_value ? r->when_value : "") : NULL;
        n[t->nrefs].target = target;
        t->nrefs++;
    }
    if (t->ipk < 0)
        return 0; /* natural keys map integer ids only */
    int error = add_keys(c, t, pol->natkeys, pol->nnatkeys, 0);
    if (!error && pol->version >= 3)
        error = add_keys(c, t, pol->same_keys, pol->nsame_keys, 1);
    if (!error && pol->version >= 3)
        error = add_same_refs(c, t);
    return error;
}

int mtable_load(mctx *c, mtable *t)
{
    int error = 0;
    if (t->loaded)
        return 0;
    if (strcasecmp(t->name, "sqlite_sequence") == 0) {
        t->skip = 1;
        t->loaded = 1;
        return 0;
    }
    int cls = c->pol->table_class(t->schema, t->name, c->pol->payload);
    if (cls == PB_CLASS_DERIVED)
        return pb_error_set(c->err, PB_ECORRUPT,
                            "merge: %s: the changeset touches derived table %s.%s", c->path,
                            t->schema, t->name);
    if (cls != PB_CLASS_LIBRARY && cls != PB_CLASS_USER)
        return pb_error_set(c->err, PB_ECORRUPT,
                            "merge: %s: the changeset touches table %s.%s, which the policy does "
                            "not classify (%d)",
                            c->path, t->schema, t->name, cls);
    t->cls = cls;
    if (c->stats->ntables < PB_MERGE_MAX_TABLES) {
        pb_merge_table_counts *e = &c->stats->tables[c->stats->ntables++];
        snprintf(e->schema, sizeof(e->schema), "%s", t->schema);
        snprintf(e->table, sizeof(e->table), "%s", t->name);
        t->counts = &e->c;
    }
    if (cls == PB_CLASS_LIBRARY) {
        if ((error = load_columns(c, t)) || (error = resolve_policy(c, t)))
            return error;
    }
    t->loaded = 1;
    return 0;
}

/* Appends "c0 <op> ?k AND c1 <op> ?k+1 ..." over the columns with flag set (all when NULL). */
static void append_where(sqlite3_str *s, const mtable *t, const unsigned char *flags,
                         const char *op, int first_param)
{
    int k = first_param, n = 0;
    for (int i = 0; i < t->ncol; i++) {
        if (flags && !flags[i])
            continue;
        sqlite3_str_appendf(s, "%s%s %s ?%d", n++ ? " AND " : "", t->qcols[i], op, k++);
    }
}

static void append_cols(sqlite3_str *s, const mtable *t)
{
    for (int i = 0; i < t->ncol; i++)
        sqlite3_str_appendf(s, "%s%s", i ? "," : "", t->qcols[i]);
}

static int create_shadow(mctx *c, mtable *t, int idx)
{
    sqlite3_str *s = sqlite3_str_new(c->db);
    sqlite3_str_appendf(s, "CREATE TEMP TABLE IF NOT EXISTS \"pb_shadow_%d\"(", idx);
    append_cols(s, t);
    sqlite3_str_appendall(s, ", pb_shadow_delta INTEGER)");
    char *sql = sqlite3_str_finish(s);
    int error = 0;
    if (!sql)
        return pb_error_set(c->err, PB_ENOMEM, "merge: out of memory");
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        error = merge_sqlerr(c, rc, "merge: creating the shadow of %s.%s", t->schema, t->name);
    sqlite3_free(sql);
    return error;
}

/* The cache slot of statement kind `which`. */
static sqlite3_stmt **stmt_slot(mtable *t, int which)
{
    switch (which) {
    case 's':
        return &t->sel;
    case 'i':
        return &t->ins;
    case 'd':
        return &t->del;
    case 'e':
        return &t->exists;
    case 'S':
        return &t->shsum;
    default:
        return &t->shadd;
    }
}

/* The SQL of statement kind `which` on `t` (`idx`: the table's shadow number). */
static void stmt_sql(sqlite3_str *s, const mtable *t, int which, int idx)
{
    switch (which) {
    case 's':
        if (t->haspk) {
            sqlite3_str_appendall(s, "SELECT ");
            append_cols(s, t);
            sqlite3_str_appendf(s, " FROM %s WHERE ", t->qname);
            append_where(s, t, t->pk, "=", 1);
        } else {
            sqlite3_str_appendf(s, "SELECT count(*) FROM %s WHERE ", t->qname);
            append_where(s, t, NULL, "IS", 1);
        }
        break;
    case 'i':
        sqlite3_str_appendf(s, "INSERT INTO %s(", t->qname);
        append_cols(s, t);
        sqlite3_str_appendall(s, ") VALUES(");
        for (int i = 0; i < t->ncol; i++)
            sqlite3_str_appendf(s, "%s?%d", i ? "," : "", i + 1);
        sqlite3_str_appendall(s, ")");
        break;
    case 'd':
        if (t->haspk) {
            sqlite3_str_appendf(s, "DELETE FROM %s WHERE ", t->qname);
            append_where(s, t, t->pk, "=", 1);
        } else {
            sqlite3_str_appendf(s, "DELETE FROM %s WHERE rowid IN (SELECT rowid FROM %s WHERE ",
                                t->qname, t->qname);
            append_where(s, t, NULL, "IS", 1);
            sqlite3_str_appendall(s, " LIMIT 1)");
        }
        break;
    case 'e':
        sqlite3_str_appendf(s, "SELECT 1 FROM %s WHERE %s = ?1", t->qname, t->qcols[t->ipk]);
        break;
    case 'S':
        sqlite3_str_appendf(s,
                            "SELECT coalesce(sum(pb_shadow_delta), 0) FROM temp.\"pb_shadow_%d\""
                            " WHERE ",
                            idx);
        append_where(s, t, NULL, "IS", 1);
        break;
    default:
        sqlite3_str_appendf(s, "INSERT INTO temp.\"pb_shadow_%d\" VALUES(", idx);
        for (int i = 0; i <= t->ncol; i++)
            sqlite3_str_appendf(s, "%s?%d", i ? "," : "", i + 1);
        sqlite3_str_appendall(s, ")");
        break;
    }
}

int mtable_stmt(mctx *c, mtable *t, int which, sqlite3_stmt **out)
{
    sqlite3_stmt **slot = stmt_slot(t, which);
    if (*slot) {
        *out = *slot;
        return 0;
    }
    int idx = 0;
    for (int i = 0; i < c->ntabs; i++)
        if (c->tabs[i] == t)
            idx = i;
    if ((which == 'S' || which == 'A')) {
        int error = create_shadow(c, t, idx);
        if (error)
            return error;
    }
    sqlite3_str *s = sqlite3_str_new(c->db);
    stmt_sql(s, t, which, idx);
    char *sql = sqlite3_str_finish(s);
    char what[256];
    snprintf(what, sizeof(what), "a statement on %s.%s", t->schema, t->name);
    int error = merge_prepare(c, sql, slot, what);
    sqlite3_free(sql);
    if (!error)
        *out = *slot;
    return error;
}

int mtable_upd(mctx *c, mtable *t, const uint64_t *mask, sqlite3_stmt **out)
{
    size_t words = ((size_t)t->ncol + 63) / 64;
    c->uses++;
    for (int i = 0; i < t->nupd; i++)
        if (memcmp(t->upd[i].mask, mask, words * 8) == 0) {
            t->upd[i].used = c->uses;
            *out = t->upd[i].st;
            return 0;
        }
    int slot = t->nupd;
    if (slot == MERGE_UPD_CACHE) { /* replace the least recently used shape */
        slot = 0;
        for (int i = 1; i < t->nupd; i++)
            if (t->upd[i].used < t->upd[slot].used)
                slot = i;
        sqlite3_finalize(t->upd[slot].st);
        free(t->upd[slot].mask);
        t->upd[slot].st = NULL;
        t->upd[slot].mask = NULL;
    }
    sqlite3_str *s = sqlite3_str_new(c->db);
    sqlite3_str_appendf(s, "UPDATE %s SET ", t->qname);
    int k = 1;
    for (int i = 0; i < t->ncol; i++)
        if (mask[i / 64] >> (i % 64) & 1) {
            sqlite3_str_appendf(s, "%s%s = ?%d", k > 1 ? ", " : "", t->qcols[i], k);
            k++;
        }
    sqlite3_str_appendall(s, " WHERE ");
    append_where(s, t, t->pk, "=", k);
    char *sql = sqlite3_str_finish(s);
    uint64_t *m = malloc(words * 8);
    char what[256];
    snprintf(what, sizeof(what), "an update of %s.%s", t->schema, t->name);
    int error = m ? merge_prepare(c, sql, &t->upd[slot].st, what)
                  : pb_error_set(c->err, PB_ENOMEM, "merge: out of memory");
    sqlite3_free(sql);
    if (error) {
        free(m);
        if (slot == t->nupd)
            t->upd[slot].st = NULL;
        else /* keep the slot consistent: drop it */
            t->upd[slot] = t->upd[--t->nupd];
        return error;
    }
    memcpy(m, mask, words * 8);
    t->upd[slot].mask = m;
    t->upd[slot].used = c->uses;
    if (slot == t->nupd)
        t->nupd++;
    *out = t->upd[slot].st;
    return 0;
}

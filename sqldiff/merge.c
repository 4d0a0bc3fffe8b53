/*
 * merge.c: pb_merge_apply(), the generic 3-way row merge (include/plexburst/merge.h): applies
 * changesets computed base -> cloud onto a live DB that diverged from the base, deciding per
 * record and per column with a caller's policy (table classes, column rules, refs, natural keys,
 * text mapping). The policy of a particular application lives with its caller.
 * Role: the row half of a sync's apply step; this file runs the passes, merge_read.c reads the
 * inputs, merge_plan.c plans ids, merge_write.c decides and writes, merge_table.c and
 * merge_value.c hold the per-table metadata and value helpers.
 * Prerequisites: SQLite with the session extension; the live connection opened by the caller
 * (with whatever collations and modules its schema needs registered), the other DBs attached
 * under the schema names the inputs and the policy use.
 *
 * How it runs. Inputs are SQLite session CHANGESET files, streamed (sqlite3changeset_start_strm,
 * bounded buffers), inside one transaction (BEGIN IMMEDIATE with the busy timeout):
 *   pass 0   validates every input (pb_changeset_validate, changeset.c): a truncated or malformed
 *            file fails here, with its byte offset (SQLite 3.40's streaming iterator would hang
 *            on some).
 *   pass 1   plans ids: every INSERT into a table keyed by one INTEGER column gets a row in
 *            temp.pb_remap(schema, tbl, old, new, kind) (unique index on schema, tbl, old): kind
 *            0 keeps its id, 2 maps it onto the live row its natural key matches, 1 renumbers it
 *            (its id is used in the live DB) to the next free id above max(live max, live
 *            sqlite_sequence.seq, largest id the changesets insert, largest id a ref column of a
 *            written value points at, condition ignored: a dangling reference of the cloud must
 *            not be attached to a renumbered row), in ascending old-id order.
 *            Same-row keys (policy version 3) map an insert like a natural key (kind 3) and are
 *            written into the live row in pass 2; the insert's same_refs values are kept in
 *            temp.pb_same_src, and once every insert is planned the identity propagates along
 *            them (the cloud's media of a same part maps onto the live part's media, ...).
 *            Natural keys that contain a ref column are matched in a second read (pass 1b), once
 *            the refs they depend on are planned. A natural key that no index of the live table
 *            serves is looked up in an indexed TEMP copy of its columns (temp.pb_nk_N, same
 *            collations), taken once, instead of scanning the table for every insert. Tables are
 *            classified and checked against the live DB here, so a changeset touching a derived
 *            table or a table/column the live DB lacks, or a corrupt record, fails before
 *            anything is written.
 *   pass 2   applies every record in changeset order (merge.h semantics), remapping ref columns
 *            through temp.pb_remap (only for targets with non-identity remaps, within their id
 *            range), with statements prepared once per (schema, table, shape).
 *   then     sqlite_sequence.seq = max(seq, max(id)) for every AUTOINCREMENT table inserted
 *            into, DROP of the temp tables and COMMIT; ROLLBACK on any error and with dry_run.
 * Memory stays bounded: per table metadata and statements, one record's values, the plan on disk.
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
 * journal modes; pb_merge_commit_is_atomic() reports the case and the caller switches the journal
 * mode around the merge or covers it with its own journal.
 * */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "merge_internal.h"
#include "plexburst/sqldiff.h"

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

/* The live connection's settings the merge changes, restored at the end. */
typedef struct saved_conn {
    int timeout;    /* the previous busy timeout, -1 when unknown */
    int cache;      /* the previous main.cache_size */
    int have_cache; /* the cache was enlarged */
} saved_conn;

static int pragma_int(sqlite3 *db, const char *sql, int *out)
{
    sqlite3_stmt *st = NULL;
    int ok =
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW;
    if (ok)
        *out = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return ok;
}

static void tune_connection(sqlite3 *live, const pb_merge_options *opts, saved_conn *s)
{
    s->timeout = -1;
    pragma_int(live, "PRAGMA busy_timeout", &s->timeout);
    sqlite3_busy_timeout(live, opts->busy_timeout_ms > 0 ? opts->busy_timeout_ms : 0);
    /* A page cache of 16 MiB for the transaction when the connection has SQLite's default
     * (2 MiB, which a nightly merge spills mid-transaction: about 3x the fsyncs and 40 % more
     * writes, measured on the medium fixture); a cache the caller chose is kept. */
    s->cache = 0;
    pragma_int(live, "PRAGMA main.cache_size", &s->cache);
    s->have_cache = s->cache == -2000 && sqlite3_exec(live, "PRAGMA main.cache_size=-16384", NULL,
                                                      NULL, NULL) == SQLITE_OK;
}

static void restore_connection(sqlite3 *live, const saved_conn *s)
{
    if (s->timeout >= 0)
        sqlite3_busy_timeout(live, s->timeout);
    if (s->have_cache) {
        char *sql = sqlite3_mprintf("PRAGMA main.cache_size=%d", s->cache);
        if (sql)
            sqlite3_exec(live, sql, NULL, NULL, NULL);
        sqlite3_free(sql);
    }
}

/* Begins the transaction (script mode: a read snapshot of every file) and creates the id plan. */
static int begin(mctx *c, const pb_merge_input *inputs, size_t ninputs, int *began)
{
    int rc = sqlite3_exec(c->db, c->script ? "BEGIN" : "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return merge_sqlerr(c, rc, "merge: cannot begin the transaction on the live DB");
    *began = 1;
    for (size_t i = 0; c->script && i < ninputs; i++) {
        char *sql = sqlite3_mprintf("SELECT count(*) FROM \"%w\".sqlite_master", inputs[i].schema);
        rc = sql ? sqlite3_exec(c->db, sql, NULL, NULL, NULL) : SQLITE_NOMEM;
        sqlite3_free(sql);
        if (rc != SQLITE_OK)
            return merge_sqlerr(c, rc, "merge: reading the live DB");
    }
    int error = exec(c, "DROP TABLE IF EXISTS temp.pb_remap;"
                        "CREATE TEMP TABLE pb_remap(schema TEXT NOT NULL, tbl TEXT NOT NULL, "
                        "old INTEGER NOT NULL, new INTEGER, kind INTEGER NOT NULL);"
                        "CREATE UNIQUE INDEX temp.pb_remap_key ON pb_remap(schema, tbl, old);"
                        "DROP TABLE IF EXISTS temp.pb_same_src;"
                        "CREATE TEMP TABLE pb_same_src(schema TEXT NOT NULL, tbl TEXT NOT NULL, "
                        "old INTEGER NOT NULL, col INTEGER NOT NULL, target INTEGER NOT NULL, "
                        "PRIMARY KEY(schema, tbl, old, col));");
    if (!error)
        error = merge_prepare(c, "INSERT INTO temp.pb_remap VALUES(?1, ?2, ?3, ?4, ?5)", &c->rm_add,
                              "the id plan");
    if (!error)
        error = merge_prepare(c,
                              "SELECT new, kind FROM temp.pb_remap WHERE schema = ?1 AND tbl = ?2 "
                              "AND old = ?3",
                              &c->rm_get, "the id plan");
    return error;
}

/* The caller's SQL inside the transaction: executed in-process, written in script mode. */
static int run_hook(mctx *c, const char *sql, const char *what)
{
    if (!sql)
        return 0;
    if (c->script)
        return fputs(sql, c->script) < 0 ? merge_script_err(c) : 0;
    char *msg = NULL;
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        return 0;
    int code = rc == SQLITE_BUSY ? PB_EBUSY : PB_ESQLITE;
    pb_error_setd(c->err, code, rc, "merge: %s: %s", what, msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return code;
}

/* Passes 0 (validate), 1 and 1b (plan) and 2 (apply), the script's BEGIN and COMMIT around 2. */
static int run_passes(mctx *c, const pb_merge_input *inputs, size_t ninputs)
{
    int error = 0;
    /* pass 0: validate every input (SQLite's streaming iterator hangs on some truncations) */
    for (size_t i = 0; i < ninputs; i++)
        if ((error = validate_input(c, inputs[i].path)))
            return error;

    /* pass 1: classify, check, plan ids; 1b: natural keys that contain a ref column */
    if ((error = merge_plan(c, inputs, ninputs, 0)) || (error = merge_assign_renumbers(c)))
        return error;
    int deferred = 0;
    for (int i = 0; i < c->ntabs; i++)
        for (int k = 0; k < c->tabs[i]->nnat; k++)
            deferred |= c->tabs[i]->nat[k].deferred && c->tabs[i]->has_csmax;
    if ((error = merge_propagate_same(c)) ||
        (deferred && (error = merge_plan(c, inputs, ninputs, 1))))
        return error;

    /* pass 2: apply */
    if (c->script && fputs("BEGIN IMMEDIATE;\n", c->script) < 0)
        return merge_script_err(c);
    if (c->opt->version >= 4 &&
        (error = run_hook(c, c->opt->sql_before_writes, "before the writes")))
        return error;
    if ((error = merge_apply_all(c, inputs, ninputs)) || (error = merge_update_sequences(c)))
        return error;
    const pb_merge_options *opts = c->opt;
    /* after sql_before_writes always (it may have started work that this one completes) */
    if ((c->writes || (opts->version >= 4 && opts->sql_before_writes)) && opts->version >= 4 &&
        (error = run_hook(c, opts->sql_before_commit, "before the commit")))
        return error;
    if (c->script && c->writes && opts->version >= 2 && opts->script_before_commit &&
        fputs(opts->script_before_commit, c->script) < 0)
        return merge_script_err(c);
    if (c->script && (fputs("COMMIT;\n", c->script) < 0 || fflush(c->script) != 0))
        return merge_script_err(c);
    return 0;
}

/* Commits (in-process, not a dry run, no error) after dropping the temp tables; else rolls back. */
static int finish(mctx *c, int error)
{
    if (!error && !c->opt->dry_run && !c->script) {
        int rc = sqlite3_exec(c->db,
                              "DROP TABLE IF EXISTS temp.pb_remap; DROP TABLE IF EXISTS "
                              "temp.pb_same_src",
                              NULL, NULL, NULL);
        for (int i = 0; i < c->nsnap && rc == SQLITE_OK; i++) {
            char *sql = sqlite3_mprintf("DROP TABLE IF EXISTS temp.\"pb_nk_%d\"", i);
            rc = sql ? sqlite3_exec(c->db, sql, NULL, NULL, NULL) : SQLITE_NOMEM;
            sqlite3_free(sql);
        }
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            error = merge_sqlerr(c, rc, "merge: commit failed");
    }
    if (!sqlite3_get_autocommit(c->db))
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    return error;
}

static void ctx_dispose(mctx *c)
{
    sqlite3_finalize(c->rm_add);
    sqlite3_finalize(c->rm_get);
    sqlite3_finalize(c->vsel);
    sqlite3_finalize(c->ss_add);
    c->rm_add = c->rm_get = c->vsel = c->ss_add = NULL;
    for (int i = 0; i < c->ntabs; i++)
        mtable_free(c->tabs[i]);
    free(c->tabs);
    merge_clear_record(c);
    free(c->oldv);
    free(c->newv);
}

void pb_merge_options_init(pb_merge_options *opts)
{
    const pb_merge_options init = PB_MERGE_OPTIONS_INIT;
    *opts = init;
}

int pb_merge_apply(sqlite3 *live, const pb_merge_input *inputs, size_t ninputs,
                   const pb_merge_policy *policy, const pb_merge_options *opts,
                   pb_merge_stats *stats, pb_error *err)
{
    int error = 0, began = 0;
    double t0 = pb_clock_ms();
    static const pb_merge_options defaults = PB_MERGE_OPTIONS_INIT;
    pb_merge_stats dummy;
    saved_conn saved = {-1, 0, 0};
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

    if (!sqlite3_get_autocommit(live)) {
        error =
            pb_error_set(err, PB_EINVALID, "merge: the live connection is inside a transaction");
        goto done;
    }
    tune_connection(live, opts, &saved);
    if ((error = check_inputs(&c, inputs, ninputs)) || (error = begin(&c, inputs, ninputs, &began)))
        goto done;
    error = run_passes(&c, inputs, ninputs);
done:
    ctx_dispose(&c);
    if (began)
        error = finish(&c, error);
    restore_connection(live, &saved);
    stats->ms = pb_clock_ms() - t0;
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

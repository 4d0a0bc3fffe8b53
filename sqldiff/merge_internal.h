/*
 * merge_internal.h: internals shared by the files of the 3-way merge (sqldiff/merge*.c): the value
 * copy `mval`, the per-table metadata and statement cache `mtable`, the merge context, and the
 * functions of each pass (merge_read.c, merge_plan.c, merge_write.c; merge.c runs them).
 * Role: private to sqldiff/; the public contract is include/plexburst/merge.h.
 * Prerequisites: SQLite with the session extension (SQLITE_ENABLE_SESSION).
 */
#ifndef PB_MERGE_INTERNAL_H
#define PB_MERGE_INTERNAL_H

#include <stdint.h>
#include <stdio.h>
#include <sqlite3.h>

#include "plexburst/merge.h"

/* ---------------------------------------------------------------------------------------------
 * Values (merge_value.c)
 */

/** A value of a changeset record or a live row. Text and blob bytes are borrowed (valid until the
 * iterator moves or the statement steps) unless `owned` holds them (a map_text result). */
typedef struct mval {
    int type; /* 0 when absent, else SQLITE_INTEGER, _FLOAT, _TEXT, _BLOB or _NULL */
    sqlite3_int64 i;
    double r;
    const unsigned char *p; /* text or blob bytes (never NULL for text/blob) */
    int n;
    char *owned; /* malloc'd bytes p points into, or NULL */
} mval;

/** Copies `v` (may be NULL: absent) into `out`, borrowing its bytes. */
void mval_from_value(mval *out, sqlite3_value *v);
/** Frees what `v` owns and marks it absent. */
void mval_clear(mval *v);
/** Sets `v` to the integer `i` (freeing what it owned). */
void mval_set_int(mval *v, sqlite3_int64 i);
/** 1 when `a` IS `b` with binary collation (1 = 1.0, text never equals blob), else 0. */
int mval_eq(const mval *a, const mval *b);
/** mval_eq against a column of a stepped statement. */
int mval_eq_col(const mval *a, sqlite3_stmt *st, int col);
/** Binds `v` (present) to parameter `idx` (bytes bound SQLITE_STATIC). */
int mval_bind(sqlite3_stmt *st, int idx, const mval *v);
/** Writes `v` as an exact SQL literal. @return 0, or -1 when the stream fails. */
int mval_write_literal(FILE *f, const mval *v);

/* ---------------------------------------------------------------------------------------------
 * Tables (merge_table.c)
 */

typedef struct mtable mtable;

typedef struct mref {
    int col;                /* the referencing column */
    int when_col;           /* the condition column, -1 when unconditional */
    const char *when_value; /* condition value (text) */
    mtable *target;         /* the referenced table (entry may be target-only) */
} mref;

typedef struct mnatkey {
    int cols[8];
    int ncols;
    int deferred;     /* contains a ref column: matched after the refs are planned */
    int same;         /* a same-row key (KIND_SAME), else a natural key */
    sqlite3_stmt *st; /* SELECT pk FROM t WHERE k1 IS ?1 AND ... ORDER BY pk LIMIT 1 */
} mnatkey;

typedef struct mupd {
    uint64_t *mask; /* columns written, ncol bits */
    sqlite3_stmt *st;
    unsigned long long used; /* last use (for replacement) */
} mupd;

#define MERGE_UPD_CACHE 32

struct mtable {
    char *schema, *name;
    int loaded;        /* 1 once classified and (for library tables) checked against the live DB */
    int cls;           /* pb_table_class; 0 for an entry known only as a ref target */
    int skip;          /* sqlite_sequence: records are skipped */
    int ncol;          /* columns of the live table (= the changeset's) */
    char **cols;       /* column names */
    char **qcols;      /* column names quoted as identifiers */
    unsigned char *pk; /* 1 for a key column */
    int npk;
    int haspk;      /* 0: merged as a row multiset (no key, or NULLs in the key) */
    int shape_seen; /* the first record has fixed the mode */
    int ipk;        /* the single INTEGER key column, -1 */
    int autoinc;    /* declared AUTOINCREMENT */
    int *rules;     /* pb_column_rule per column */
    mref *refs;
    int nrefs;
    mnatkey *nat; /* natural keys first, then same-row keys */
    int nnat;
    mref *srefs; /* same_refs of this table: identity propagates along them */
    int nsrefs;
    char *qname; /* "schema"."table" */

    /* planning */
    int64_t nremap;          /* non-identity remaps (renumbered, natural key) */
    int64_t rmin, rmax;      /* range of their old ids */
    int64_t npending;        /* inserts waiting for a renumbered id */
    int has_csmax;           /* the changesets insert into this table */
    int64_t csmax;           /* the largest id they insert */
    int64_t csmin;           /* the smallest id they insert (so far, in changeset order) */
    int has_refmax;          /* written values of the changesets reference this table */
    int64_t refmax;          /* the largest id they reference */
    int inserted;            /* rows inserted (sqlite_sequence maintenance) */
    pb_merge_counts *counts; /* this table's entry in the stats, or a sink */

    /* statements (prepared lazily) */
    sqlite3_stmt *sel;    /* live row by key; multiset: count of identical rows */
    sqlite3_stmt *ins;    /* INSERT of every column */
    sqlite3_stmt *del;    /* DELETE by key; multiset: one identical row */
    sqlite3_stmt *exists; /* SELECT 1 by the integer key */
    sqlite3_stmt *shsum;  /* script mode, multiset: delta of identical rows written so far */
    sqlite3_stmt *shadd;  /* script mode, multiset: record a delta */
    mupd upd[MERGE_UPD_CACHE];
    int nupd;
};

/* ---------------------------------------------------------------------------------------------
 * Context (merge.c)
 */

typedef struct mctx {
    sqlite3 *db;
    const pb_merge_policy *pol;
    const pb_merge_options *opt;
    pb_merge_stats *stats;
    pb_error *err;
    FILE *script;  /* script mode */
    mtable **tabs; /* every table seen or referenced */
    int ntabs, capt;
    pb_merge_counts sink;          /* counts of tables beyond PB_MERGE_MAX_TABLES */
    sqlite3_stmt *rm_add, *rm_get; /* temp.pb_remap */
    sqlite3_stmt *vsel;            /* SELECT ?1, ?2: values for the policy's merge_column */
    sqlite3_stmt *ss_add;          /* INSERT into temp.pb_same_src */
    mval *oldv, *newv;             /* the current record, mapped */
    int vcap;
    unsigned long long writes, uses;
    int nsnap;                /* natural key snapshots temp.pb_nk_N */
    const char *path;         /* the input being read */
    unsigned long long recno; /* its current record (1-based) */
} mctx;

/** Finds or creates the entry of `schema.name` (not loaded). NULL when out of memory. */
mtable *mtable_get(mctx *c, const char *schema, const char *name);
/** Classifies `t` and, for a library table, checks it against the live DB and resolves its
 * refs, natural keys and column rules; idempotent. */
int mtable_load(mctx *c, mtable *t);
/** Frees every statement and the entry. */
void mtable_free(mtable *t);
/** The statement of `t` for kind `which` ('s'elect, 'i'nsert, 'd'elete, 'e'xists, shadow 'S'um,
 * shadow 'A'dd), prepared on first use. */
int mtable_stmt(mctx *c, mtable *t, int which, sqlite3_stmt **out);
/** The cached UPDATE of `t` setting the columns in `mask`. */
int mtable_upd(mctx *c, mtable *t, const uint64_t *mask, sqlite3_stmt **out);
/** Prepares `sql` on the live connection, with an error naming `what`. */
int merge_prepare(mctx *c, const char *sql, sqlite3_stmt **out, const char *what);
/** Sets a PB_ESQLITE (or PB_ECONFLICT / PB_EBUSY by rc) error with the live connection's
 * message. */
int merge_sqlerr(mctx *c, int rc, const char *fmt, ...) PB_PRINTF(3, 4);

/* ---------------------------------------------------------------------------------------------
 * Passes (merge_read.c, merge_plan.c, merge_write.c)
 */

/* temp.pb_remap kinds */
#define KIND_IDENT  0 /* the insert keeps its id */
#define KIND_RENUM  1 /* renumbered: its id is used in the live DB */
#define KIND_NATKEY 2 /* mapped onto the live row its natural key matches */
#define KIND_SAME   3 /* mapped onto a live row both sides added, its values written into it */

/* Counts one decision in the table's and the total counts. */
#define COUNT(c, t, field)                                                                         \
    do {                                                                                           \
        (t)->counts->field++;                                                                      \
        (c)->stats->total.field++;                                                                 \
    } while (0)

/** A streamed iterator over one input. */
typedef struct mreader {
    FILE *f;
    sqlite3_changeset_iter *it;
    mtable *last; /* table of the previous record */
    const char *schema;
} mreader;

/** Opens `in` for streaming (PB_ENOTFOUND, PB_ECORRUPT). */
int merge_reader_open(mctx *c, const pb_merge_input *in, mreader *r);
void merge_reader_close(mreader *r);
/** Steps to the next record: 1 with the table, op and column count set, 0 at the end, or a
 * negative error. */
int merge_reader_next(mctx *c, mreader *r, mtable **tp, int *opp, int *ncolp);
/** Loads the current record's values into c->oldv / c->newv, mapped. */
int merge_load_record(mctx *c, mreader *r, mtable *t, int op, int ncol);
/** Frees what the current record's values own. */
void merge_clear_record(mctx *c);
/** A pass's work on one record (`r` positioned on it, `t` its table). */
typedef int (*merge_record_fn)(mctx *c, mreader *r, mtable *t, int op, int ncol, void *payload);
/** Calls `fn` for every record of every input, in order; stops at the first error. */
int merge_each_record(mctx *c, const pb_merge_input *inputs, size_t ninputs, merge_record_fn fn,
                      void *payload);

/** The planned id of the insert `old` of `t` (its kind in *kind; KIND_IDENT when unplanned). */
int merge_remap_get(mctx *c, mtable *t, int64_t old, int64_t *out, int *kind);
/** Remaps the ref columns of c->newv (the record's own integer key excepted). */
int merge_apply_refs(mctx *c, mtable *t, sqlite3_stmt *live);
/** Pass 1 (deferred = 0) or 1b (deferred = 1) over every input. */
int merge_plan(mctx *c, const pb_merge_input *inputs, size_t ninputs, int deferred);
/** Hands out the renumbered ids of every table, above everything in use. */
int merge_assign_renumbers(mctx *c);
/** Propagates same-row identities along the policy's same_refs (after pass 1). */
int merge_propagate_same(mctx *c);

/** Pass 2: decides and writes every record of every input, in order. */
int merge_apply_all(mctx *c, const pb_merge_input *inputs, size_t ninputs);
/** Raises sqlite_sequence.seq of every AUTOINCREMENT table inserted into. */
int merge_update_sequences(mctx *c);
/** PB_EIO for a failed write to the script. */
int merge_script_err(mctx *c);

#endif

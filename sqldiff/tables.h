/*
 * tables.h: which tables of a DB take part in a diff or checksum, with their columns and
 * primary key, and the read-only connections they are read through (internal to sqldiff/).
 * Prerequisites: SQLite >= 3.37 (PRAGMA table_list).
 */
#ifndef PB_SQLDIFF_TABLES_H
#define PB_SQLDIFF_TABLES_H

#include <sqlite3.h>

#include "plexburst/sqldiff.h"

/** One table as the diff sees it: its non-generated columns in declaration order. */
typedef struct pb_table {
    char *name;
    int ncol;
    char **cols;        /* column names */
    int *pkpos;         /* per column: 1-based position in the PRIMARY KEY, 0 if not part of it */
    int npk;            /* PK columns; 0 for a rowid table without PRIMARY KEY */
    int *pkcol;         /* column index of the k-th PK column (npk entries) */
    int without_rowid;  /* WITHOUT ROWID table */
    int pk_may_be_null; /* rowid table whose PK columns are not all NOT NULL */
} pb_table;

/** The candidate tables of one DB, sorted by name (bytewise). */
typedef struct pb_tablelist {
    pb_table *t;
    size_t n;
    unsigned skipped; /* internal, virtual, shadow and filtered-out tables */
} pb_tablelist;

/**
 * Opens `path` for reading through `opts->open` (default pb_sqldiff_open_default), bounds its
 * page cache and starts one read transaction so that every later statement sees the same
 * snapshot. `*utf8` tells whether the DB stores text as UTF-8; `utf8_only` refuses other DBs
 * (PB_EINVALID).
 */
int pb_tables__open(sqlite3 **out, int *utf8, const char *path, const pb_diff_options *opts,
                    int utf8_only, pb_error *err);

/** Closes a connection from pb_tables__open (NULL is fine). */
void pb_tables__close(sqlite3 *db);

/** Lists the candidate tables of `db` (see pb_diff_options.include). */
int pb_tables__list(pb_tablelist *out, sqlite3 *db, const pb_diff_options *opts, pb_error *err);
void pb_tables__dispose(pb_tablelist *l);

/** PB_ESCHEMA naming the first table that differs in presence, columns or primary key. */
int pb_tables__match(const pb_tablelist *base, const pb_tablelist *target, pb_error *err);

/* Orders for pb_tables__select. */
#define PB_ORDER_NONE 0 /* physical order (checksum) */
#define PB_ORDER_PK   1 /* by the PRIMARY KEY columns in PK order */
#define PB_ORDER_ALL  2 /* by every column in declaration order (row multisets) */

/** Prepares SELECT <columns> FROM main.<table> [ORDER BY ... COLLATE BINARY]. */
int pb_tables__select(sqlite3_stmt **out, sqlite3 *db, const pb_table *t, int order, pb_error *err);

/**
 * The same, reading each row through the row function PB_ROWSRC_FN (see rowsrc.h, registered
 * on `db` beforehand) when the table has no more columns than a function takes and the plan
 * needs no sort (`*packed` = 1), else as pb_tables__select (`*packed` = 0).
 */
int pb_tables__select_packed(sqlite3_stmt **out, int *packed, sqlite3 *db, const pb_table *t,
                             int order, pb_error *err);

/**
 * Sets `*found` to 1 when a PK column of `t` holds a NULL in `db` (such rows cannot be
 * addressed by a changeset, so the table is diffed as a row multiset).
 */
int pb_tables__pk_has_null(int *found, sqlite3 *db, const pb_table *t, pb_error *err);

#endif

/*
 * rowsrc.h: a stream of encoded rows from a prepared SELECT, read either on the calling thread
 * or by a reader thread a few batches ahead (internal to sqldiff/).
 * Prerequisites: POSIX threads; the statement's connection must not be used by anyone else
 * while the source is open.
 */
#ifndef PB_SQLDIFF_ROWSRC_H
#define PB_SQLDIFF_ROWSRC_H

#include <pthread.h>

#include "record.h"

#define PB_ROWSRC_BATCHES 4 /* batches in flight per threaded source */

typedef struct pb_batch {
    pb_rbuf b;     /* rows in the pb_rec__append_row layout */
    uint32_t rows; /* rows in b */
} pb_batch;

typedef struct pb_rowsrc {
    sqlite3_stmt *st; /* borrowed; stepped by the reader */
    int ncol;
    int threaded;
    int utf8_db; /* see pb_rec__append_row */
    int packed;  /* st's one result column is PB_ROWSRC_FN over ncol columns */
    /* the row function (packed): where it appends, its calls in this step, its error */
    pb_rbuf *fill;
    int fn_calls;
    pb_error fn_err; /* first error of the row function (zeroed at open: an error ends the read) */
    /* current row, valid until the next pb_rowsrc__next */
    pb_row row;
    int eof;
    uint64_t rows; /* rows delivered so far */

    /* reader state (threaded: shared under mu) */
    pb_batch batch[PB_ROWSRC_BATCHES];
    int head;    /* next batch the reader fills */
    int tail;    /* batch the consumer reads */
    int full;    /* published batches not yet released (the consumer's included) */
    int done;    /* the reader published its last batch */
    int stop;    /* the consumer asks the reader to stop */
    int rc;      /* reader's PB_E* error, 0 */
    int dep;     /* its SQLite code */
    int holding; /* the consumer holds batch[tail] */
    char msg[512];
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* consumer cursor in batch[tail] */
    size_t pos;
    uint32_t left;
} pb_rowsrc;

/** Starts reading `st` (`ncol` result columns) of a DB in UTF-8 (`utf8_db`) or not. */
int pb_rowsrc__open(pb_rowsrc *s, sqlite3_stmt *st, int ncol, int utf8_db, int threaded,
                    pb_error *err);

/**
 * The row function: PB_ROWSRC_FN(c1, ..., cn) appends the row of its arguments to the batch the
 * source fills, in the pb_rec__append_row layout, and returns NULL. A row then costs one call
 * into SQLite per step instead of several per column (each of which takes and leaves the
 * connection's mutex) and no copy. Used only where the plan has no sort (a sort would run it
 * for every row before the first step returns); each step is checked to run it exactly once.
 */
#define PB_ROWSRC_FN "pb_sqldiff_row"

/**
 * Registers PB_ROWSRC_FN on `db` for the source `s` (its address, which must stay put until
 * pb_rowsrc__unregister), before the statement that calls it is prepared.
 */
int pb_rowsrc__register(pb_rowsrc *s, sqlite3 *db, pb_error *err);

/** Removes PB_ROWSRC_FN from `db` once the statements that call it are finalized. */
void pb_rowsrc__unregister(sqlite3 *db);

/** Starts reading `st`, whose one result column is PB_ROWSRC_FN over `ncol` columns. */
int pb_rowsrc__open_packed(pb_rowsrc *s, sqlite3_stmt *st, int ncol, int threaded, pb_error *err);

/** Moves to the next row (s->row), or sets s->eof. */
int pb_rowsrc__next(pb_rowsrc *s, pb_error *err);

/** Stops the reader and frees the batches; the statement is left to the caller. */
void pb_rowsrc__close(pb_rowsrc *s);

#endif

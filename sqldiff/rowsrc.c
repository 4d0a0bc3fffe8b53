/*
 * rowsrc.c: streams the rows of a prepared SELECT as encoded records (record.h layout). In
 * threaded mode a reader thread steps the statement and fills up to PB_ROWSRC_BATCHES batches
 * of about PB_BATCH_TARGET bytes ahead of the consumer, so that reading a DB (SQLite's b-tree
 * walk and value decoding, the bulk of a diff's cost) runs on another core than the caller's.
 * With the row function (PB_ROWSRC_FN, rowsrc.h) SQLite appends each row straight into the
 * batch being filled: one call per row, no copy.
 * Role: the row side of the diff and the checksum. Prerequisites: POSIX threads.
 *
 * Memory: at most PB_ROWSRC_BATCHES * (PB_BATCH_TARGET + the largest row) per source; a batch
 * that had to grow for a huge row is shrunk back when it is reused.
 */
#include <stdlib.h>
#include <string.h>

#include "rowsrc.h"

#define PB_BATCH_TARGET (128u * 1024u)

static void set_reader_error(pb_rowsrc *s, int code, const char *msg)
{
    s->rc = code;
    snprintf(s->msg, sizeof(s->msg), "%s", msg);
}

static void row_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    pb_rowsrc *s = sqlite3_user_data(ctx);
    if (!s->fill || argc != s->ncol || s->fn_calls++ > 0)
        pb_error_set(&s->fn_err, PB_ECORRUPT, "sqldiff: %s called out of step", PB_ROWSRC_FN);
    else if (pb_rec__append_values(s->fill, argc, argv, &s->fn_err) >= 0)
        return;
    sqlite3_result_error(ctx, s->fn_err.msg, -1);
}

int pb_rowsrc__register(pb_rowsrc *s, sqlite3 *db, pb_error *err)
{
    int rc = sqlite3_create_function_v2(db, PB_ROWSRC_FN, -1, SQLITE_UTF8 | SQLITE_DIRECTONLY, s,
                                        row_fn, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return pb_error_setd(err, PB_ESQLITE, rc, "sqldiff: cannot register %s: %s", PB_ROWSRC_FN,
                             sqlite3_errmsg(db));
    return 0;
}

void pb_rowsrc__unregister(sqlite3 *db)
{
    if (db)
        sqlite3_create_function_v2(db, PB_ROWSRC_FN, -1, SQLITE_UTF8 | SQLITE_DIRECTONLY, NULL,
                                   NULL, NULL, NULL, NULL);
}

/* Steps the statement and appends its row to `b` (in packed mode the row function does, inside
 * the step). Returns 1 for a row, 0 at the end, or a negative PB_E* code. */
static int step_into(pb_rowsrc *s, pb_rbuf *b, pb_error *err)
{
    s->fill = b;
    s->fn_calls = 0;
    int rc = sqlite3_step(s->st);
    s->fill = NULL;
    if (rc == SQLITE_ROW) {
        if (!s->packed) {
            int error = pb_rec__append_row(b, s->st, s->ncol, s->utf8_db, err);
            return error < 0 ? error : 1;
        }
        if (s->fn_calls != 1)
            return pb_error_set(err, PB_ECORRUPT, "sqldiff: %s ran %d times for one row",
                                PB_ROWSRC_FN, s->fn_calls);
        return 1;
    }
    if (rc == SQLITE_DONE)
        return 0;
    if (s->fn_err.code)
        return pb_error_set(err, s->fn_err.code, "%s", s->fn_err.msg);
    return pb_error_setd(err, PB_ESQLITE, rc, "sqldiff: reading rows: %s",
                         sqlite3_errmsg(sqlite3_db_handle(s->st)));
}

/* Fills one batch; returns 1 when the statement is exhausted or failed. */
static int fill_batch(pb_rowsrc *s, pb_batch *bt)
{
    if (bt->b.cap > 4 * PB_BATCH_TARGET) /* grown for a huge row: give the memory back */
        pb_rbuf__dispose(&bt->b);
    bt->b.n = 0;
    bt->rows = 0;
    pb_error e = PB_ERROR_INIT; /* set at most once: an error ends the batch */
    while (bt->b.n < PB_BATCH_TARGET) {
        int r = step_into(s, &bt->b, &e);
        if (r > 0) {
            bt->rows++;
            continue;
        }
        if (r < 0) {
            set_reader_error(s, e.code, e.msg);
            s->dep = e.dep_code; /* SQLite's code, for pb_error.dep_code */
        }
        return 1;
    }
    return 0;
}

static void *reader_main(void *arg)
{
    pb_rowsrc *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (s->full == PB_ROWSRC_BATCHES && !s->stop)
            pthread_cond_wait(&s->cv, &s->mu);
        int idx = s->head, stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
        int last = fill_batch(s, &s->batch[idx]);
        pthread_mutex_lock(&s->mu);
        s->head = (idx + 1) % PB_ROWSRC_BATCHES;
        s->full++;
        if (last)
            s->done = 1;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        if (last)
            break;
    }
    return NULL;
}

static int open_src(pb_rowsrc *s, sqlite3_stmt *st, int ncol, int utf8_db, int packed, int threaded,
                    pb_error *err)
{
    memset(s, 0, sizeof(*s));
    s->st = st;
    s->ncol = ncol;
    s->utf8_db = utf8_db;
    s->packed = packed;
    s->threaded = threaded;
    if (!threaded)
        return 0;
    if (pthread_mutex_init(&s->mu, NULL) != 0)
        return pb_error_set(err, PB_ERROR, "sqldiff: cannot create a mutex");
    if (pthread_cond_init(&s->cv, NULL) != 0) {
        pthread_mutex_destroy(&s->mu);
        return pb_error_set(err, PB_ERROR, "sqldiff: cannot create a condition variable");
    }
    if (pthread_create(&s->thread, NULL, reader_main, s) != 0) {
        /* no thread: read on the calling thread instead */
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        s->threaded = 0;
        return 0;
    }
    s->started = 1;
    return 0;
}

int pb_rowsrc__open(pb_rowsrc *s, sqlite3_stmt *st, int ncol, int utf8_db, int threaded,
                    pb_error *err)
{
    return open_src(s, st, ncol, utf8_db, 0, threaded, err);
}

int pb_rowsrc__open_packed(pb_rowsrc *s, sqlite3_stmt *st, int ncol, int threaded, pb_error *err)
{
    return open_src(s, st, ncol, 1, 1, threaded, err);
}

static int reader_failed(pb_rowsrc *s, pb_error *err)
{
    if (s->dep)
        return pb_error_setd(err, s->rc, s->dep, "%s", s->msg);
    return pb_error_set(err, s->rc, "%s", s->msg);
}

static void take_row(pb_rowsrc *s, pb_batch *bt)
{
    size_t pos = (s->pos + 3) & ~(size_t)3;
    const uint32_t *off = (const uint32_t *)(const void *)(bt->b.p + pos);
    s->row.off = off;
    s->row.rec = bt->b.p + pos + PB_ROW_HDR(s->ncol);
    s->pos = pos + PB_ROW_HDR(s->ncol) + off[s->ncol];
    s->left--;
    s->rows++;
}

int pb_rowsrc__next(pb_rowsrc *s, pb_error *err)
{
    if (s->eof)
        return 0;
    if (!s->threaded) {
        pb_batch *bt = &s->batch[0];
        if (bt->b.cap > 4 * PB_BATCH_TARGET)
            pb_rbuf__dispose(&bt->b);
        bt->b.n = 0;
        int r = step_into(s, &bt->b, err);
        if (r <= 0) {
            s->eof = r == 0;
            return r;
        }
        s->pos = 0;
        s->left = 1;
        take_row(s, bt);
        return 0;
    }
    if (s->holding && s->left > 0) {
        take_row(s, &s->batch[s->tail]);
        return 0;
    }
    for (;;) {
        pthread_mutex_lock(&s->mu);
        if (s->holding) { /* release the consumed batch */
            s->holding = 0;
            s->tail = (s->tail + 1) % PB_ROWSRC_BATCHES;
            s->full--;
            pthread_cond_signal(&s->cv);
        }
        while (s->full == 0 && !s->done)
            pthread_cond_wait(&s->cv, &s->mu);
        int have = s->full > 0;
        if (have)
            s->holding = 1;
        pthread_mutex_unlock(&s->mu);
        if (!have) {
            if (s->rc)
                return reader_failed(s, err);
            s->eof = 1;
            return 0;
        }
        s->pos = 0;
        s->left = s->batch[s->tail].rows;
        if (s->left > 0) {
            take_row(s, &s->batch[s->tail]);
            return 0;
        }
    }
}

void pb_rowsrc__close(pb_rowsrc *s)
{
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stop = 1;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        s->started = 0;
    }
    for (int i = 0; i < PB_ROWSRC_BATCHES; i++)
        pb_rbuf__dispose(&s->batch[i].b);
}

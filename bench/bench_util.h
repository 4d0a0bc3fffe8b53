/*
 * bench_util.h: the measuring code bench_diff and bench_merge share: clocks, a counting output
 * sink for diffs and sessions, JSON look-ups, and a measurement run in a child process (its peak
 * RSS taken from wait4).
 * Role: bench/ only. Prerequisites: jansson, SQLite, plexburst (pb_error).
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <plexburst/plexburst.h>

/** Monotonic wall clock, ms. */
double bench_now_ms(void);
/** CPU time (user + system) of this process, all threads, ms. */
double bench_cpu_ms(void);

/** An output sink that counts bytes and writes them to f (when f is set). */
typedef struct bench_counter {
    FILE *f;
    uint64_t n;
} bench_counter;

/** The pb_sqldiff output callback over a bench_counter. */
int bench_count_out(void *payload, const void *data, size_t n, pb_error *err);
/** The sqlite3session_*_strm output callback over a bench_counter. */
int bench_sess_out(void *payload, const void *data, int n);

/** The integer at o.a (o.a.b when b is set); 0 when absent. */
json_int_t bench_jint(json_t *o, const char *a, const char *b);

/** Runs fn(arg) in a child and returns the JSON it produced, with the child's peak RSS (KiB)
 * added under rss_key. NULL when the child failed or wrote no JSON, with why[] filled. */
json_t *bench_in_child(json_t *(*fn)(void *), void *arg, const char *rss_key, char *why,
                       size_t cap);

#endif

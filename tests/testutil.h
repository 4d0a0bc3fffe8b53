/*
 * testutil.h: helpers shared by the cmocka tests: scratch directories, running the built tools,
 * skipping with a reason (exit code 77, which ctest reports as skipped, never as passed), the
 * AddressSanitizer set-up of tests that load our code into an uninstrumented program, and small
 * file, SQL, buffer and memory-stream helpers.
 */
#ifndef PB_TESTUTIL_H
#define PB_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "plexburst/errors.h"

/** Makes a fresh scratch directory under $TMPDIR (or /tmp) and returns its path (static). */
const char *tu_tmpdir(const char *tag);
/** Path of a built artifact: $PB_BUILD_DIR/name (static buffer, one per call site is fine). */
const char *tu_build_path(const char *name);
/** Path of a source file: $PB_SOURCE_DIR/name. */
const char *tu_source_path(const char *name);
/** Runs a shell command line (printf-style); returns its exit status, -1 if it did not exit. */
int tu_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/** Runs a shell command and captures up to cap-1 bytes of its stdout into out. */
int tu_sh_out(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/** Prints why and exits 77 (ctest: skipped). */
void tu_skip(const char *why) __attribute__((noreturn));
/**
 * In an AddressSanitizer build, appends verify_asan_link_order=0:detect_leaks=0 to ASAN_OPTIONS
 * (the caller's options kept) so that an instrumented plexcompat extension can be loaded into
 * the uninstrumented stock sqlite3 shell (the engine stand-in) that the test's children run,
 * and that the shell's leaks are left alone. Does nothing in other builds. Call it first in
 * main(), before any child is started.
 */
void tu_asan_allow_stock_host(void);

/** Reads a whole file into a malloc'd NUL-terminated buffer; fails the test when it cannot. */
char *tu_slurp(const char *path);
/** Prepares one statement; asserts that it compiles. */
sqlite3_stmt *tu_prepare(sqlite3 *db, const char *sql);
/** Runs SQL on db; fails the test with the SQL and SQLite's message on error. */
void tu_exec_ok(sqlite3 *db, const char *sql);

/** A growable NUL-terminated buffer (start from {0}; free p). */
typedef struct tu_buf {
    char *p;
    size_t n, cap;
} tu_buf;
/** Appends n bytes. */
void tu_buf_add(tu_buf *b, const void *d, size_t n);
/** Appends a string. */
void tu_buf_str(tu_buf *b, const char *s);

/** An in-memory input stream for the bundle reader (pb_bundle__reader_new's read callback). */
typedef struct tu_memin {
    const uint8_t *p;
    size_t n, pos, step; /* step: largest read, 0 for none (exercises buffer boundaries) */
} tu_memin;
/** The read callback of a tu_memin (payload). */
int tu_mem_in(void *payload, void *buf, size_t cap, size_t *got, pb_error *err);

#endif

/*
 * testutil.h: helpers shared by the cmocka tests: scratch directories, running the built tools,
 * skipping with a reason (exit code 77, which ctest reports as skipped, never as passed), and the
 * AddressSanitizer set-up of tests that load our code into an uninstrumented program.
 */
#ifndef PB_TESTUTIL_H
#define PB_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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

#endif

/*
 * transfer_util.h: helpers shared by the transfer and run tests (test_ssh.c, test_s3.c,
 * test_store.c, test_run_units.c): the loopback test servers (scripts/ssh-test-server,
 * scripts/s3-test-server) started and stopped, a home compared with its oracle after a sync, and
 * a cmocka group run in a scratch directory removed afterwards.
 */
#ifndef PB_TRANSFER_UTIL_H
#define PB_TRANSFER_UTIL_H

#include <stddef.h>

#include "testutil.h"

/**
 * Starts the loopback OpenSSH server of scripts/ssh-test-server in dir (its stderr in log) and
 * sets *port. Returns 0; 77 where sshd cannot run here; another status on a failure (said on
 * stderr with the log's tail).
 */
int xu_sshd_start(int *port, const char *dir, const char *log);
void xu_sshd_stop(const char *dir);
/**
 * Starts the loopback S3 server of scripts/s3-test-server in work (the package cached in the
 * build tree; the server dies with this process), its stderr in log, and sets *port. Returns as
 * xu_sshd_start (77: no S3 server can run here).
 */
int xu_s3_start(int *port, const char *work, const char *log);
void xu_s3_stop(const char *work);
/** Where a start returned 77: skips the test program (tu_skip) with "what: " and the log's tail. */
void xu_skip_if_absent(int rc, const char *what, const char *log);

/** The two SQLite databases have the same checksum (pb_sqldiff_checksum) and row count. */
int xu_same_db(const char *a, const char *b);
/** The home equals the oracle: its DB pair by checksum, Metadata/ and Media/ by `diff -r`. */
void xu_assert_same_library(const char *home, const char *oracle);

/**
 * Runs `MK CMD --dir DIR >/dev/null` on the home, then on the oracle (CMD: "stream --seed 101",
 * ...). Returns 0, or the status of the first that fails.
 */
int xu_mkplex_both(const char *mk, const char *home, const char *oracle, const char *cmd);

/**
 * Runs the cmocka group `tests` (n of them, without group fixtures) in a fresh scratch
 * directory tu_tmpdir(tag), whose path is copied into dir first, and removes it afterwards.
 * Returns the group's result.
 */
int xu_run_in_scratch(char *dir, size_t cap, const char *tag, const struct CMUnitTest *tests,
                      size_t n);
#define XU_RUN_IN_SCRATCH(dir, tag, tests)                                                         \
    xu_run_in_scratch(dir, sizeof(dir), tag, tests, sizeof(tests) / sizeof((tests)[0]))

#endif

/*
 * scw_testutil.h: the shared pieces of the scaleway cloud's end-to-end tests (scw_testutil.c):
 * the stand-in, runs against it and the checks after them.
 */
#ifndef PB_SCW_TESTUTIL_H
#define PB_SCW_TESTUTIL_H

#include <sys/types.h>
#include <jansson.h>

#include "testutil.h"

#define SCWT_OUTCAP (4 << 20)

/* the binaries, the test's scratch dir, the stand-in's dir, the home, the oracle, the API URL */
extern char scwt_pb[4096], scwt_mk[4096], scwt_dir[4096], scwt_work[4200], scwt_home[4200],
    scwt_oracle[4200], scwt_ctl[256];
extern char *scwt_out; /* the output of the last run (SCWT_OUTCAP bytes) */

/** Finds the binaries (skips without them, node or sshd) and sets up libcurl. */
void scwt_main_init(void);
/** cmocka group set-up: the stand-in started, SCW_* and PLEXBURST_SCW_* set, home and oracle
 * made; teardown stops it and removes everything. */
int scwt_setup(void **state);
int scwt_teardown(void **state);

/** A GET (post NULL) or POST of the stand-in's control endpoint; its JSON (caller decrefs). */
json_t *scwt_ctl_call(const char *path, const char *post);
/** Replaces the stand-in's faults with the JSON object `json`. */
void scwt_faults(const char *json);
/** Nothing of any run is left on the stand-in: no server, no IP, no volume. */
void scwt_assert_nothing_left(void);
int scwt_mkplex(const char *cmd, const char *d, int seed);
/** `plexburst <mode> ... --cloud scaleway --json` with `env` before it; its JSON (caller decrefs),
 * the exit status in *rc, the output in scwt_out. */
json_t *scwt_run(const char *mode, const char *runner, const char *env, int *rc);
/** A sync that must succeed with the runner `analyze --seed seed` (the oracle gets the same). */
json_t *scwt_sync_ok(int seed, const char *env);
void scwt_assert_home_is_oracle(void);
/** The run's reported cost equals the stand-in's billing of its server within a second's price. */
void scwt_assert_cost(json_t *j);
/** A sync in the background (output in <dir>/bg.log) with `env` (may be NULL) and the runner
 * `mkplex <runner>` (a shell line; NULL: analyze --seed 98); its pid. */
pid_t scwt_start_sync(const char *env, const char *runner);
/** Waits (up to 60 s) until a line of `file` holds `text`; 1 when it did. */
int scwt_wait_text(const char *file, const char *text);
/** Waits (up to 60 s) until a server of the stand-in is in state `st`, or `file` exists. */
int scwt_wait_for(const char *st, const char *file);

#endif

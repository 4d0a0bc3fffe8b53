/*
 * transfer_util.c: the loopback test servers, the home/oracle comparison and the scratch group
 * runner shared by the transfer and run tests (transfer_util.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plexburst/plex.h"
#include "plexburst/sqldiff.h"
#include "transfer_util.h"

/* Runs `SCRIPT ARGS 2>'LOG'` (ARGS already quoted) and reads the port it prints. */
static int server_start(int *port, const char *script, const char *log, const char *fmt, ...)
{
    char args[8192], out[256] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    *port = 0;
    int rc = tu_sh_out(out, sizeof(out), "'%s' %s 2>'%s'", tu_source_path(script), args, log);
    if (rc == 0) {
        *port = atoi(out);
    } else if (rc != 77) {
        char why[2048] = "";
        tu_sh_out(why, sizeof(why), "tail -5 '%s'", log);
        fprintf(stderr, "%s failed (%d):\n%s\n", script, rc, why);
    }
    return rc;
}

int xu_sshd_start(int *port, const char *dir, const char *log)
{
    return server_start(port, "scripts/ssh-test-server", log, "start '%s'", dir);
}

void xu_sshd_stop(const char *dir)
{
    tu_sh("'%s' stop '%s'", tu_source_path("scripts/ssh-test-server"), dir);
}

int xu_s3_start(int *port, const char *work, const char *log)
{
    return server_start(port, "scripts/s3-test-server", log, "start '%s' '%s' %ld",
                        tu_build_path("s3rver"), work, (long)getpid());
}

void xu_s3_stop(const char *work)
{
    tu_sh("'%s' stop '%s'", tu_source_path("scripts/s3-test-server"), work);
}

void xu_skip_if_absent(int rc, const char *what, const char *log)
{
    if (rc != 77)
        return;
    char why[2048] = "", msg[2200];
    tu_sh_out(why, sizeof(why), "tail -5 '%s'", log);
    snprintf(msg, sizeof(msg), "%s: %s", what, why);
    tu_skip(msg);
}

int xu_same_db(const char *a, const char *b)
{
    pb_checksum ca, cb;
    pb_error err = PB_ERROR_INIT;
    if (pb_sqldiff_checksum(&ca, a, NULL, &err) != 0 ||
        pb_sqldiff_checksum(&cb, b, NULL, &err) != 0)
        return 0;
    return memcmp(ca.digest, cb.digest, sizeof(ca.digest)) == 0 && ca.rows == cb.rows;
}

void xu_assert_same_library(const char *home, const char *oracle)
{
    char a[8192], b[8192];
    snprintf(a, sizeof(a), "%s/" PB_PLEX_DB_REL, home);
    snprintf(b, sizeof(b), "%s/" PB_PLEX_DB_REL, oracle);
    assert_true(xu_same_db(a, b));
    snprintf(a, sizeof(a), "%s/" PB_PLEX_BLOBS_REL, home);
    snprintf(b, sizeof(b), "%s/" PB_PLEX_BLOBS_REL, oracle);
    assert_true(xu_same_db(a, b));
    assert_int_equal(tu_sh("diff -r --no-dereference '%s/Metadata' '%s/Metadata' >&2 && diff -r "
                           "--no-dereference '%s/Media' '%s/Media' >&2",
                           home, oracle, home, oracle),
                     0);
}

int xu_mkplex_both(const char *mk, const char *home, const char *oracle, const char *cmd)
{
    int rc = tu_sh("'%s' %s --dir '%s' >/dev/null", mk, cmd, home);
    return rc ? rc : tu_sh("'%s' %s --dir '%s' >/dev/null", mk, cmd, oracle);
}

int xu_run_in_scratch(char *dir, size_t cap, const char *tag, const struct CMUnitTest *tests,
                      size_t n)
{
    snprintf(dir, cap, "%s", tu_tmpdir(tag));
    int rc = _cmocka_run_group_tests(tag, tests, n, NULL, NULL);
    tu_sh("rm -rf '%s'", dir);
    return rc;
}

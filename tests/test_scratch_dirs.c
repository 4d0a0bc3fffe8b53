/*
 * test_scratch_dirs.c: the scratch dirs of the tests (tu_tmpdir, testutil.c) do not litter: a
 * test process that passes (exit 0) or skips (77) leaves no dir behind, nor the state dir beside
 * one (<dir>.plexburst); one that fails keeps its dirs for inspection and names them on stderr;
 * a forked child that exits does not remove its parent's dirs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* A child that makes a scratch dir (and a state dir beside it, as a data dir's would be), says
 * its path through a pipe and exits with `status`; returns the path. */
static void child_dir(char *path, size_t cap, int status)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        const char *d = tu_tmpdir("scratch");
        char beside[4200];
        snprintf(beside, sizeof(beside), "%s.plexburst", d);
        if (mkdir(beside, 0700) != 0 || write(p[1], d, strlen(d)) < 0)
            _exit(99);
        close(p[1]);
        exit(status); /* exit(): the exit handlers run */
    }
    close(p[1]);
    ssize_t n = read(p[0], path, cap - 1);
    close(p[0]);
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == status);
    assert_true(n > 0);
    path[n] = '\0';
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void test_removed_after_pass_or_skip(void **state)
{
    (void)state;
    int statuses[2] = {0, 77};
    for (int i = 0; i < 2; i++) {
        char d[4200], beside[4300];
        child_dir(d, sizeof(d), statuses[i]);
        snprintf(beside, sizeof(beside), "%s.plexburst", d);
        if (exists(d) || exists(beside))
            fail_msg("exit %d left %s", statuses[i], d);
    }
}

static void test_kept_after_failure(void **state)
{
    (void)state;
    char d[4200];
    child_dir(d, sizeof(d), 1);
    assert_true(exists(d));
    assert_int_equal(tu_sh("rm -rf '%s' '%s.plexburst'", d, d), 0);
}

static void test_child_leaves_parent_dirs(void **state)
{
    (void)state;
    char d[4200];
    snprintf(d, sizeof(d), "%s", tu_tmpdir("scratch-parent"));
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        exit(0);
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(exists(d)); /* removed when this process exits */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_removed_after_pass_or_skip),
        cmocka_unit_test(test_kept_after_failure),
        cmocka_unit_test(test_child_leaves_parent_dirs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

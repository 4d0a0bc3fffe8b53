/*
 * test_errors.c: the error model: first error wins, one-line messages, errno capture.
 */
#include <errno.h>
#include <string.h>

#include "testutil.h"
#include "plexburst/errors.h"

static void test_first_error_wins(void **state)
{
    pb_error err = PB_ERROR_INIT;
    assert_int_equal(pb_error_set(&err, PB_ECORRUPT, "bad %s", "record"), PB_ECORRUPT);
    assert_int_equal(pb_error_set(&err, PB_EIO, "later"), PB_EIO);
    assert_int_equal(err.code, PB_ECORRUPT);
    assert_string_equal(err.msg, "bad record");
    pb_error_clear(&err);
    assert_int_equal(err.code, 0);
    assert_int_equal(pb_error_set(NULL, PB_EIO, "ignored"), PB_EIO);
}

static void test_one_line(void **state)
{
    pb_error err = PB_ERROR_INIT;
    pb_error_set(&err, PB_ERROR, "two\nlines");
    assert_null(strchr(err.msg, '\n'));
}

static void test_errno(void **state)
{
    pb_error err = PB_ERROR_INIT;
    errno = ENOENT;
    assert_int_equal(pb_error_errno(&err, "open %s", "x"), PB_EIO);
    assert_int_equal(err.dep_code, ENOENT);
    assert_non_null(strstr(err.msg, "open x: "));
    assert_string_equal(pb_strerror(PB_EREFUSED), "refused by a guard");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_error_wins),
        cmocka_unit_test(test_one_line),
        cmocka_unit_test(test_errno),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

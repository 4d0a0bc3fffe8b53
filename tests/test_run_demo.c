/*
 * test_run_demo.c: `plexburst demo --scale tiny --json` (what `make demo` runs, at the smallest
 * scale): it succeeds, says the analysis is simulated, and its JSON carries the bootstrap and the
 * nightly sync (a row changeset up, a bundle down, merged rows and files, phases, timings) and a
 * transfer summary in which plexburst moves fewer bytes than whole archives.
 * Prerequisites: build/plexburst and build/mkplex (skipped, not passed, when missing).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>

#include "testutil.h"

static json_int_t geti(json_t *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *v = o;
    for (char *t = strtok(buf, "."); t && v; t = strtok(NULL, "."))
        v = json_object_get(v, t);
    assert_non_null(v);
    return json_integer_value(v);
}

static void test_demo_json(void **state)
{
    (void)state;
    const char *pb = tu_build_path("plexburst");
    const char *dir = tu_tmpdir("demo");
    size_t cap = 8 << 20;
    char *out = malloc(cap);
    int rc = tu_sh_out(out, cap, "'%s' demo --scale tiny --json --workdir '%s/w' 2>'%s/err'", pb,
                       dir, dir);
    if (rc != 0)
        tu_sh("cat '%s/err' >&2", dir);
    assert_int_equal(rc, 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    if (!j)
        print_message("not JSON: %s\n%.500s\n", je.text, out);
    assert_non_null(j);
    assert_true(json_is_true(json_object_get(j, "ok")));
    assert_true(json_is_true(json_object_get(j, "simulated")));
    assert_string_equal(json_string_value(json_object_get(j, "scale")), "tiny");
    json_t *b = json_object_get(j, "bootstrap"), *s = json_object_get(j, "sync");
    assert_true(json_is_true(json_object_get(b, "ok")));
    assert_true(json_is_true(json_object_get(s, "ok")));
    assert_string_equal(json_string_value(json_object_get(s, "mode")), "sync");
    /* the sync's contract keys */
    assert_int_equal(geti(s, "bytes.baseline_full_upload"), 0);
    assert_true(geti(s, "bytes.up") > 0 && geti(s, "bytes.down") > 0);
    assert_true(geti(s, "rows.inserted") > 0);
    assert_true(geti(s, "files.new") > 0);
    assert_non_null(json_object_get(json_object_get(s, "timings_ms"), "total"));
    assert_non_null(json_object_get(json_object_get(s, "timings_ms"), "downtime"));
    json_t *ph = json_object_get(s, "phases");
    assert_int_equal(json_array_size(ph), 9);
    for (size_t i = 0; i < json_array_size(ph); i++) {
        json_t *p = json_array_get(ph, i);
        assert_true(json_is_string(json_object_get(p, "name")));
        assert_true(json_is_true(json_object_get(p, "ok")));
        assert_true(json_is_number(json_object_get(p, "ms")));
    }
    assert_non_null(json_object_get(s, "report"));
    /* home streamed during the cloud's analysis, and the merge kept it */
    assert_int_equal(geti(j, "home_stream_status"), 0);
    /* fewer bytes than whole archives */
    json_int_t ours = geti(j, "transfer.plexburst.total"),
               theirs = geti(j, "transfer.archives.total");
    print_message("demo (tiny): plexburst %lld B vs whole archives %lld B (%.1fx), %.1f s\n",
                  (long long)ours, (long long)theirs, (double)theirs / (double)ours,
                  json_number_value(json_object_get(json_object_get(j, "timings_ms"), "total")) /
                      1000);
    assert_true(ours < theirs);
    /* the human output (stderr here is the progress; stdout was only JSON) said it is simulated */
    assert_int_equal(tu_sh("grep -q SIMULATED '%s/w/demo.log'", dir), 0);
    json_decref(j);
    free(out);
    tu_sh("rm -rf '%s'", dir);
}

int main(void)
{
    if (access(tu_build_path("plexburst"), X_OK) != 0 || access(tu_build_path("mkplex"), X_OK) != 0)
        tu_skip("needs build/plexburst and build/mkplex");
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_demo_json)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

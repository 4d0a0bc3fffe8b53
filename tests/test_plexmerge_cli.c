/*
 * test_plexmerge_cli.c: the `plexburst diff` and `plexburst merge` commands: exit codes (0, 1, 2,
 * 3), the one-line message of a refusal on stderr, the numbered phases and POST-MORTEM of the
 * human output and its emoji/punctuation conventions, the --json contract keys, --dry-run and
 * --list. test_plexmerge_mkplex.c drives the same commands over mkplex data dirs.
 * Prerequisites: the built plexburst CLI (PB_BUILD_DIR), the hand-made scenario helpers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>

#include "testutil.h"
#include "test_plexmerge_util.h"

static void test_merge_json_and_human(void **state)
{
    (void)state;
    pm_scenario s;
    pm_options po = PM_OPTIONS_DEFAULT;
    char err[4096], args[16384], live2[4300];
    pm_build(&s, "pmcli-merge", &po);
    snprintf(live2, sizeof(live2), "%s/live2.db", s.dir);
    pm_copy(s.live, live2);

    snprintf(args, sizeof(args),
             "merge --base '%s' --cloud '%s' --live '%s' --in-process --json --zstd-level 3",
             s.base, s.cloud, s.live);
    assert_int_equal(pm_cli(err, sizeof(err), s.dir, args), 0);
    json_t *j = pm_json();
    pm_contract(j, 1);
    assert_true(json_is_true(pm_path(j, "ok")));
    assert_string_equal(json_string_value(pm_path(j, "engine")), "in-process compatibility layer");
    assert_int_equal(json_integer_value(pm_path(j, "rows.conflicts")), 1);
    assert_int_equal(json_integer_value(pm_path(j, "rows.user_state_dropped")), 1);
    assert_true(json_integer_value(pm_path(j, "rows.remapped")) >= 5);
    assert_int_equal(json_integer_value(pm_path(j, "analysis.sonic_tracks")), 5);
    assert_string_equal(json_string_value(pm_path(j, "guards.schema.versions.home")),
                        "500000000001.231");
    json_t *t0 = json_array_get(pm_path(j, "new_titles"), 0);
    assert_string_equal(json_string_value(json_object_get(t0, "title")), "New Cloud Movie");
    assert_string_equal(json_string_value(json_object_get(t0, "type")), "movie");
    json_decref(j);

    /* human output on a copy, with --list */
    snprintf(args, sizeof(args),
             "merge --base '%s' --cloud '%s' --live '%s' --in-process --list --keep-backups 0",
             s.base, s.cloud, live2);
    assert_int_equal(pm_cli(err, sizeof(err), s.dir, args), 0);
    const char *phases[] = {"PHASE 1: CHECK SCHEMAS", "PHASE 2: DIFF",  "PHASE 3: GUARDS",
                            "PHASE 4: BACKUP",        "PHASE 5: MERGE", NULL};
    const char *at = pm_out;
    for (int i = 0; phases[i]; i++) {
        const char *p = strstr(at, phases[i]);
        if (!p)
            fail_msg("'%s' missing or out of order in:\n%s", phases[i], pm_out);
        at = p;
    }
    assert_non_null(strstr(pm_out, "New Cloud Movie"));
    assert_non_null(strstr(pm_out, "kept_live"));
    assert_non_null(strstr(pm_out, "in-process compatibility layer"));
    assert_null(strstr(pm_out, "POST-MORTEM"));
    pm_conventions(pm_out);
    assert_string_equal(err, "");
}

static void test_guard_refusals(void **state)
{
    (void)state;
    pm_scenario s;
    pm_options po = PM_OPTIONS_DEFAULT;
    char err[4096], args[16384], before[33], after[33];
    po.cloud_changes = 0;
    pm_build(&s, "pmcli-guards", &po);
    pm_exec(s.cloud, "DELETE FROM media_parts WHERE media_item_id BETWEEN 11 AND 20;"
                     "DELETE FROM media_items WHERE id BETWEEN 11 AND 20;"
                     "DELETE FROM metadata_items WHERE id BETWEEN 11 AND 20;");
    pm_checksum(s.live, before);
    snprintf(args, sizeof(args), "merge --base '%s' --cloud '%s' --live '%s' --in-process", s.base,
             s.cloud, s.live);
    assert_int_equal(pm_cli(err, sizeof(err), s.dir, args), 3);
    assert_true(pm_one_line(err));
    assert_string_equal(err, "plexburst: deletion guard: section \"Movies\" (id 1) would lose 10 "
                             "of 20 items (50.0 % > 5 %)\n");
    assert_non_null(strstr(pm_out, "POST-MORTEM"));
    assert_non_null(strstr(pm_out, "PHASE 3 (GUARDS) failed"));
    assert_non_null(strstr(pm_out, "🚨 deletion guard"));
    assert_null(strstr(pm_out, "PHASE 4"));
    pm_conventions(pm_out);
    pm_checksum(s.live, after);
    assert_string_equal(before, after);

    /* --json: one object, ok false, exit 3 */
    snprintf(args, sizeof(args), "merge --base '%s' --cloud '%s' --live '%s' --in-process --json",
             s.base, s.cloud, s.live);
    assert_int_equal(pm_cli(err, sizeof(err), s.dir, args), 3);
    json_t *j = pm_json();
    pm_contract(j, 1);
    assert_true(json_is_false(pm_path(j, "ok")));
    assert_true(json_is_false(pm_path(j, "guards.deletion.ok")));
    assert_string_equal(json_string_value(pm_path(j, "guards.deletion.worst.section")), "Movies");
    assert_int_equal(json_integer_value(pm_path(j, "guards.deletion.worst.deleted")), 10);
    json_decref(j);

    /* diff: the verdict is reported, the diff itself succeeds */
    snprintf(args, sizeof(args), "diff --base '%s' --cloud '%s'", s.base, s.cloud);
    assert_int_equal(pm_cli(err, sizeof(err), s.dir, args), 0);
    assert_non_null(strstr(pm_out, "🚨 deletion guard"));
    pm_conventions(pm_out);

    /* allowed explicitly */
    snprintf(args, sizeof(args),
             "merge --base '%s' --cloud '%s' --live '%s' --in-process --max-delete-pct 50 "
             "--keep-backups 0",
             s.base, s.cloud, s.live);
    assert_int_equal(pm_cli(err, sizeof(err), s.dir, args), 0);

    /* schema guard */
    pm_exec(s.cloud, "INSERT INTO schema_migrations(version) VALUES ('500000000001.232')");
    pm_checksum(s.live, before);
    snprintf(args, sizeof(args), "merge --base '%s' --cloud '%s' --live '%s'", s.base, s.cloud,
             s.live);
    assert_int_equal(pm_cli(err, sizeof(err), s.dir, args), 3);
    assert_true(pm_one_line(err));
    assert_true(strncmp(err,
                        "plexburst: schema guard: cloud is at 500000000001.232, home at "
                        "500000000001.231",
                        strlen("plexburst: schema guard: cloud is at 500000000001.232, home at "
                               "500000000001.231")) == 0);
    assert_non_null(strstr(pm_out, "PHASE 1 (CHECK SCHEMAS) failed"));
    pm_checksum(s.live, after);
    assert_string_equal(before, after);
}

static void test_diff_and_usage(void **state)
{
    (void)state;
    pm_scenario s;
    pm_options po = PM_OPTIONS_DEFAULT;
    char err[4096], args[16384], before[33], after[33];
    pm_build(&s, "pmcli-diff", &po);
    pm_checksum(s.live, before);

    snprintf(args, sizeof(args), "diff --base '%s' --cloud '%s' --json", s.base, s.cloud);
    assert_int_equal(pm_cli(err, sizeof(err), s.dir, args), 0);
    json_t *j = pm_json();
    pm_contract(j, 0);
    assert_true(json_is_false(pm_path(j, "three_way")));
    /* 2-way: rows by class, user state would be dropped */
    assert_int_equal(json_integer_value(pm_path(j, "rows.user_state_dropped")), 1);
    assert_int_equal(json_integer_value(pm_path(j, "rows.conflicts")), 0);
    json_decref(j);

    snprintf(args, sizeof(args), "diff --base '%s' --cloud '%s' --live '%s' --json", s.base,
             s.cloud, s.live);
    assert_int_equal(pm_cli(err, sizeof(err), s.dir, args), 0);
    j = pm_json();
    pm_contract(j, 0);
    assert_true(json_is_true(pm_path(j, "three_way")));
    assert_true(json_is_true(pm_path(j, "dry_run")));
    assert_int_equal(json_integer_value(pm_path(j, "rows.conflicts")), 1);
    assert_true(json_array_size(pm_path(j, "conflicts")) >= 1);
    assert_true(json_array_size(pm_path(j, "remaps")) >= 1);
    json_decref(j);

    snprintf(args, sizeof(args), "diff --base '%s' --cloud '%s' --live '%s'", s.base, s.cloud,
             s.live);
    assert_int_equal(pm_cli(err, sizeof(err), s.dir, args), 0);
    assert_non_null(strstr(pm_out, "PHASE 4: 3-WAY VIEW (DRY-RUN MERGE)"));
    pm_conventions(pm_out);

    /* --dry-run writes nothing */
    snprintf(args, sizeof(args), "merge --base '%s' --cloud '%s' --live '%s' --dry-run", s.base,
             s.cloud, s.live);
    assert_int_equal(pm_cli(err, sizeof(err), s.dir, args), 0);
    assert_non_null(strstr(pm_out, "PHASE 5: MERGE (DRY RUN)"));
    assert_non_null(strstr(pm_out, "dry run: no backup taken"));
    pm_conventions(pm_out);
    pm_checksum(s.live, after);
    assert_string_equal(before, after);

    /* usage: exit 2 */
    snprintf(args, sizeof(args), "merge --base '%s' --cloud '%s'", s.base, s.cloud);
    assert_int_equal(pm_cli(err, sizeof(err), s.dir, args), 2);
    assert_true(pm_one_line(err));
    assert_int_equal(pm_cli(err, sizeof(err), s.dir, "merge --bogus"), 2);
    assert_int_equal(pm_cli(err, sizeof(err), s.dir, "diff"), 2);
    assert_int_equal(pm_cli(err, sizeof(err), s.dir, "merge --help"), 0);
    assert_non_null(strstr(pm_out, "exit codes: 0 ok, 1 error"));
    assert_non_null(strstr(pm_out, "3 refused by a guard"));
    /* errors: exit 1 with one line */
    snprintf(args, sizeof(args), "merge --base '%s/none.db' --cloud '%s' --live '%s'", s.dir,
             s.cloud, s.live);
    assert_int_equal(pm_cli(err, sizeof(err), s.dir, args), 1);
    assert_true(pm_one_line(err));
    assert_non_null(strstr(pm_out, "POST-MORTEM"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_json_and_human),
        cmocka_unit_test(test_guard_refusals),
        cmocka_unit_test(test_diff_and_usage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

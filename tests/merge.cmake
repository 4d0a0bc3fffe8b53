# sqldiff/merge*.c: the generic 3-way merge. `test_merge` runs the unit tests (hand-checked
# scenario, random seeds against an oracle, errors, dry run, crash recovery); `test_merge_script`
# checks script mode through the stock sqlite3 shell with the plexcompat extension (skipped when
# either is missing); `test_merge_bench` times a ~20k record merge against
# sqlite3changeset_apply_v2 on a 100k-item library.
pb_add_test(NAME test_merge SOURCES test_merge.c LABELS unit)
add_dependencies(test_merge plexcompat)
add_test(NAME test_merge_script COMMAND test_merge script)
set_tests_properties(test_merge_script PROPERTIES LABELS unit TIMEOUT 600 SKIP_RETURN_CODE 77
    ENVIRONMENT "PB_BUILD_DIR=${CMAKE_BINARY_DIR};PB_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
add_test(NAME test_merge_bench COMMAND test_merge bench)
set_tests_properties(test_merge_bench PROPERTIES LABELS bench TIMEOUT 600 SKIP_RETURN_CODE 77
    ENVIRONMENT "PB_BUILD_DIR=${CMAKE_BINARY_DIR};PB_SOURCE_DIR=${PROJECT_SOURCE_DIR}")

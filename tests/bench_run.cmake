# bench/run's own machinery (the anchor cache, nothing installed, the summary's figures), without
# running a benchmark: a shell test over bench/run and bench/bench_anchor.sh; skips (77) without jq.
add_test(NAME test_bench_run COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_bench_run.sh)
set_tests_properties(test_bench_run PROPERTIES LABELS "unit;cli" TIMEOUT 120 SKIP_RETURN_CODE 77
    ENVIRONMENT "PB_BUILD_DIR=${CMAKE_BINARY_DIR};PB_SOURCE_DIR=${PROJECT_SOURCE_DIR}")

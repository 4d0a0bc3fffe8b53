# Bundles, export and the journaled apply (engine/bundle/, engine/apply/): the
# format and its strict reader on hostile input (unit); export + apply round trips over mkplex
# libraries, crash safety (SIGKILL at every journal step and at random instants), hostile bundles
# against a real data dir, the CLI (integration). Run them with `ctest -R 'bundle|apply'`.
pb_add_test(NAME test_bundle SOURCES test_bundle.c LABELS unit TIMEOUT 120)
pb_add_test(NAME test_apply SOURCES test_apply.c LABELS integration TIMEOUT 900)
# libFuzzer target of the bundle reader (PB_BUILD_FUZZERS=ON with clang).
include(${CMAKE_CURRENT_LIST_DIR}/fuzz/CMakeLists.txt)

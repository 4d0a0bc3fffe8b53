# Tests of the fixture tool mkplex (fixtures/): schema, rows, hashes, references, tree with hard
# links, determinism, and the exact change accounting of analyze and stream. The unit test runs at
# tiny scale; the integration test repeats the checks on a small-scale library.
pb_add_test(NAME test_mkplex SOURCES test_mkplex.c LABELS unit TIMEOUT 120)
pb_add_test(NAME test_mkplex_small SOURCES test_mkplex.c LABELS integration TIMEOUT 900)
target_compile_definitions(test_mkplex_small PRIVATE MK_SMALL)

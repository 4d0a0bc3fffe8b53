# File deltas and fingerprints: librsync jobs (transfer/rsync.c) and the data-dir manifest
# (engine/files/fingerprint*.c). The integration test drives the fixture tool mkplex when it is built.
pb_add_test(NAME test_rsync SOURCES test_rsync.c LABELS unit TIMEOUT 120)
pb_add_test(NAME test_fingerprint SOURCES test_fingerprint.c LABELS unit TIMEOUT 120)
# The same tests' mkplex case: a data directory written by the fixture tool (skipped until built).
pb_add_test(NAME test_fingerprint_mkplex SOURCES test_fingerprint.c LABELS integration TIMEOUT 900)
target_compile_definitions(test_fingerprint_mkplex PRIVATE PB_FP_INTEGRATION)
target_compile_options(test_fingerprint_mkplex PRIVATE -Wno-unused-function)
# single paths looked up as the full fingerprint records them (the nightly sync's view of home)
pb_add_test(NAME test_fplookup SOURCES test_fplookup.c LABELS unit)

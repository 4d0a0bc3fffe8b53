# File deltas and fingerprints: librsync jobs (transfer/rsync.c) and the data-dir manifest
# (engine/fingerprint.c). The integration test drives the fixture tool mkplex when it is built.
pb_add_test(NAME test_rsync SOURCES test_rsync.c LABELS unit TIMEOUT 120)
pb_add_test(NAME test_fingerprint SOURCES test_fingerprint.c LABELS unit TIMEOUT 120)

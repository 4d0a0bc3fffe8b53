# Snapshot and backup copies of a DB written to during the copy (engine/plex/backup.c,
# engine/run/run_db.c): no restart, one committed state.
pb_add_test(NAME test_snapcopy SOURCES test_snapcopy.c LABELS unit)
# Tables whose pages moved but whose rows sum the same are left out of the upload's diff
# (engine/run/sums.c pb_sums_mark_equal).
pb_add_test(NAME test_sums_equal SOURCES test_sums_equal.c LABELS unit)
# A table's checksum share from the leaves that differ, against the full read (the oracle).
pb_add_test(NAME test_sums_ranged SOURCES test_sums_ranged.c LABELS unit)

# Snapshot and backup copies of a DB written to during the copy (engine/plex/backup.c,
# engine/run/run_db.c): no restart, one committed state.
pb_add_test(NAME test_snapcopy SOURCES test_snapcopy.c LABELS unit)

# Tests of what a broken store, a damaged baseline, a guard or a closed terminal must not cost a
# sync (issue 10: items 3, 4 and three defects of item 10), through the local cloud.
pb_add_test(NAME test_recovery SOURCES test_recovery.c LABELS integration TIMEOUT 600)

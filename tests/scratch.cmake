# The test helpers themselves: scratch dirs removed after a pass, kept after a failure.
pb_add_test(NAME test_scratch_dirs SOURCES test_scratch_dirs.c LABELS unit TIMEOUT 60)

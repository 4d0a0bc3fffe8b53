# Tests of the runs: the framed protocol and channels, the local store, the run settings and the
# detached command runner, and the agent-driven bootstrap / sync / demo through the local cloud.
pb_add_test(NAME test_frame SOURCES test_frame.c LABELS unit TIMEOUT 120)
pb_add_test(NAME test_store SOURCES test_store.c transfer_util.c LABELS unit TIMEOUT 120)
pb_add_test(NAME test_run_units SOURCES test_run_units.c transfer_util.c LABELS unit TIMEOUT 120)
pb_add_test(NAME test_run SOURCES test_run.c LABELS integration TIMEOUT 600)
pb_add_test(NAME test_run_demo SOURCES test_run_demo.c LABELS cli TIMEOUT 900)
pb_add_test(NAME test_cloud_dirs SOURCES test_cloud_dirs.c LABELS integration TIMEOUT 600)

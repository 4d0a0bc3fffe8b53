# Tests of the runs end to end (issue 5): the framed protocol and channels, the local store,
# and the agent-driven bootstrap / sync / demo through the local cloud.
pb_add_test(NAME test_frame SOURCES test_frame.c LABELS unit TIMEOUT 120)
pb_add_test(NAME test_store SOURCES test_store.c LABELS unit TIMEOUT 120)

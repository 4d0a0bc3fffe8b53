# Guards of issue 14's home-side costs through the local cloud (tests/test_perf_guards.c):
# back-to-back syncs not refused and the agent's trash emptied, no Plex stop/start on an idle
# night, the home's peak RSS of a sync within 64 MB. Run them with `ctest -R perf_guards`.
pb_add_test(NAME test_perf_guards SOURCES test_perf_guards.c LABELS integration TIMEOUT 900)

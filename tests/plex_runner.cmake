# The plex runner (docs/plex-runner.md): the stand-in Plex Media Server it is tested against
# (scripts/plex-test-server + `mkplex scan`), checked on its own and with an independent client
# from the npm registry (skips with 77 when node or the package cannot be had here).
pb_add_test(NAME test_plex_runner_standin SOURCES test_plex_runner_standin.c
            LABELS integration TIMEOUT 900)
pb_add_test(NAME test_plex_runner_client SOURCES test_plex_runner_client.c
            LABELS online integration TIMEOUT 900)
# End to end: media in the loopback S3 bucket mounted by rclone through FUSE, scanned by the
# stand-in, results home equal to an oracle; the early-stop and degraded-mount cases.
pb_add_test(NAME test_plex_runner SOURCES test_plex_runner.c transfer_util.c
            LABELS online integration TIMEOUT 900)
# The pieces that need no server: plex_libraries.json (both shapes, every location), the
# scaleway cloud's default runner, the redaction of the log tails that come home on failure.
pb_add_test(NAME test_plex_runner_units SOURCES test_plex_runner_units.c LABELS unit)

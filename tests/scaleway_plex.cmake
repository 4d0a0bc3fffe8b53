# Issue 12's acceptance over the scaleway cloud: bootstrap, then a sync with no --runner (the
# plex runner, the scaleway cloud's default) against the Scaleway API stand-in (a real sshd per
# server) and the stand-in Plex scanning media of the loopback S3 bucket mounted by the real
# rclone through FUSE; the home equals the oracle, nothing left, --json has runner and cloud.
# Skips without node, sshd, rclone, FUSE or sqlite3.
pb_add_test(NAME test_scaleway_plex SOURCES test_scaleway_plex.c scw_testutil.c transfer_util.c
    LABELS online integration TIMEOUT 900)

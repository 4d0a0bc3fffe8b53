# Tests of the scaleway cloud (docs/scaleway.md) against the Scaleway API stand-in
# (scripts/scaleway-test-server, node, replaying tests/scaleway/cassettes/), whose servers run a
# real sshd on loopback. Skips without node or sshd. Labels: online (servers on loopback) and
# integration.
pb_add_test(NAME test_scaleway SOURCES test_scaleway.c scw_testutil.c LABELS online integration TIMEOUT 900)

# The pieces without a server: the account (SCW_* over the scw config file and its profiles), the
# per-run keys (checked with ssh-keygen when present), the cloud-init user data (parsed with libyaml).
pb_add_test(NAME test_scaleway_units SOURCES test_scaleway_units.c LABELS unit TIMEOUT 120)

# The cloud's life around a run against the stand-in: --profile / --instance-type, the spend
# reaching PLEXBURST_MAX_COST mid-run, a killed home re-attaching to its instance (or destroying
# it), Ctrl-C at each lifecycle step (the stand-in's `hold` fault), a dropped link, the API down.
pb_add_test(NAME test_scaleway_life SOURCES test_scaleway_life.c scw_testutil.c
    LABELS online integration TIMEOUT 900)

# The user data against cloud-init's own schema (`cloud-init schema`); skipped without cloud-init.
pb_add_test(NAME test_scaleway_cloudinit SOURCES test_scaleway_cloudinit.c LABELS unit TIMEOUT 120)

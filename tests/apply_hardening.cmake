# The apply against a hostile environment and a careless user: ownership of what is written into
# a data dir owned by another user (run as root, else skipped), a disk-full stage, swapped or
# zero-id changeset headers, a wrong --base-db, stop/start command timeouts, signals, a stale
# Plex pid file, the sync's lock, the --json failure object. Run them with
# `ctest -R 'apply_(owner|hardening)'`.
pb_add_test(NAME test_apply_owner SOURCES test_apply_owner.c LABELS integration TIMEOUT 900)
pb_add_test(NAME test_apply_hardening SOURCES test_apply_hardening.c LABELS integration
            TIMEOUT 900)

# Tests of the configuration (docs/cli.md, "Configuration" and "check"): the layered files, the
# environment and --config FILE of every command, their provenance in `plexburst config`, secrets
# masked; `plexburst check` against the loopback S3 server and sshd with good and wrong
# credentials.
pb_add_test(NAME test_config_layers SOURCES test_config_layers.c LABELS cli TIMEOUT 900)
pb_add_test(NAME test_config_check SOURCES test_config_check.c transfer_util.c
            LABELS online integration TIMEOUT 900)

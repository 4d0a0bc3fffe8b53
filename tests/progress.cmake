# Tests of how a run shows itself and tells others: the byte formatter, --quiet, --json-stream,
# the heartbeat, the notifications and hooks (a local HTTP server), --dry-run's words, the held
# lock's exit code, the words after a stop and after a rolled-back older run.
pb_add_test(NAME test_progress_cli SOURCES test_progress_cli.c LABELS cli TIMEOUT 600)

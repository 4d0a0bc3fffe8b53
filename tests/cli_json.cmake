# The --json contract of the small commands: one object jansson parses, on success and failure.
pb_add_test(NAME test_cli_json SOURCES test_cli_json.c LABELS cli TIMEOUT 120)

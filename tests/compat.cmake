# The Plex-SQLite compatibility layer (sqldiff/plexcompat.c), Plex engine detection and the Plex
# schema helper (engine/plexengine.c, engine/plexschema.c); the integration test drives the stock
# sqlite3 shell with and without the plexcompat extension, and `plexburst check`.
pb_add_test(NAME test_compat SOURCES test_compat.c LABELS unit)
pb_add_test(NAME test_compat_shell SOURCES test_compat_shell.c LABELS integration)

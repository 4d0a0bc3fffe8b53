# The Plex-SQLite compatibility layer (engine/plex/compat.c), Plex engine detection and the Plex
# schema helper (engine/plex/plexengine.c, engine/plex/schema.c); the integration test drives the stock
# sqlite3 shell with and without the plexcompat extension, and `plexburst check`.
pb_add_test(NAME test_compat SOURCES test_compat.c LABELS unit)
pb_add_test(NAME test_compat_shell SOURCES test_compat_shell.c LABELS integration)

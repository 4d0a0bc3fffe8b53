# The merge's deferred, set-based FTS maintenance (engine/plex/ftsdefer.c) on both write paths,
# on an mkplex merge; needs mkplex and plexcompat built, /usr/bin/sqlite3 for the engine path.
pb_add_test(NAME test_ftsdefer SOURCES test_ftsdefer.c test_plexmerge_util.c LABELS integration
            TIMEOUT 300)
add_dependencies(test_ftsdefer mkplex plexcompat)

# A merge of updates that leave the indexed title columns alone does not touch the FTS index
# (engine/plex/ftsdefer.c), on both write paths; needs mkplex and plexcompat built.
pb_add_test(NAME test_ftsupdate SOURCES test_ftsupdate.c test_plexmerge_util.c LABELS integration
            TIMEOUT 300)
add_dependencies(test_ftsupdate mkplex plexcompat)

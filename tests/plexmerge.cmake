# The Plex merge (engine/plex/plexmerge.c and friends): path mapping, the Plex policy and the guards
# (unit); pb_plex_merge/pb_plex_diff over hand-made and mkplex DBs, both write paths (in-process
# and a sqlite3 stand-in engine with plexcompat), backups, bad inputs (integration); the diff and
# merge commands (cli). Run them with `ctest -R plexmerge`.
pb_add_test(NAME test_plexmerge_unit SOURCES test_plexmerge_unit.c LABELS unit)
pb_add_test(NAME test_plexmerge SOURCES test_plexmerge.c test_plexmerge_util.c LABELS integration)
pb_add_test(NAME test_plexmerge_cli SOURCES test_plexmerge_cli.c test_plexmerge_util.c
            LABELS cli integration)
pb_add_test(NAME test_plexmerge_mkplex SOURCES test_plexmerge_mkplex.c test_plexmerge_util.c
            LABELS cli integration)

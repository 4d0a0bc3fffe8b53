# Randomised Plex 3-way merges against an independent oracle, and crashes at any point of a Plex
# merge (engine/plex/plexmerge.c over sqldiff/merge*.c), on data dirs written by mkplex: base, a cloud
# analysis run, a home that streamed meanwhile. Both need mkplex, plexburst and plexcompat built.
# Run them with `ctest -R 'oracle|plexmerge_crash'`; PB_ORACLE_SEED=S reruns one oracle seed.
pb_add_test(NAME test_plexmerge_oracle SOURCES test_plexmerge_oracle.c test_plexmerge_util.c
            LABELS integration TIMEOUT 600)
add_dependencies(test_plexmerge_oracle mkplex plexcompat)
pb_add_test(NAME test_plexmerge_crash SOURCES test_plexmerge_crash.c test_plexmerge_util.c
            LABELS integration TIMEOUT 600)
add_dependencies(test_plexmerge_crash mkplex plexcompat pb_cli)

# A bootstrap over a home that already syncs: refused without --force (nothing touched), and with
# --force the home's user state and edits (plays, playlists, collections, labels, locked titles,
# uploads) carried into the rebuilt library, matched by file and guid.
pb_add_test(NAME test_bootstrap_force SOURCES test_bootstrap_force.c LABELS integration
            TIMEOUT 600)

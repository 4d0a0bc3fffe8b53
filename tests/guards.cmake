# The merge's guards over mkplex libraries: the deletion guard over every library table and
# section, and the identity of items both sides added (one item per media file). Run them with
# `ctest -R 'guards|dup_items'`.
pb_add_test(NAME test_guards_tables SOURCES test_guards_tables.c test_plexmerge_util.c
            LABELS cli integration)
pb_add_test(NAME test_dup_items SOURCES test_dup_items.c test_plexmerge_util.c
            LABELS cli integration)

# sqldiff/: the generic row diff, the logical checksum and the changeset validator.
pb_add_test(NAME test_sqldiff SOURCES test_sqldiff.c LABELS unit)

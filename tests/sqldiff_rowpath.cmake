# sqldiff/: the diff's fast row path (the row function of rowsrc.c) against the per-column encoder.
pb_add_test(NAME test_diff_rowpath SOURCES test_diff_rowpath.c LABELS unit)

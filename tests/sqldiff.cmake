# sqldiff/: the generic row diff, the logical checksum and the changeset validator.
pb_add_test(NAME test_sqldiff SOURCES test_sqldiff.c LABELS unit)
# tables unchanged by their pages (sqldiff/pagecmp.c) and the checksum's reuse of their sums
pb_add_test(NAME test_pagecmp SOURCES test_pagecmp.c LABELS unit)

/*
 * pagecmp.h (internal): the leaves of a table that differ between two DB files, as rowid
 * ranges, and the checksum share of just those rows, so that a table a night changed in a few
 * places is summed from what changed (pagecmp.c, checksum.c).
 * Role: the engine's per-table sums (engine/run/sums.c) for tables whose pages moved.
 */
#ifndef PB_SQLDIFF_PAGECMP_H
#define PB_SQLDIFF_PAGECMP_H

#include <stddef.h>
#include <stdint.h>

#include "plexburst/sqldiff.h"

/** Closed rowid intervals, ascending and disjoint. */
typedef struct pb_rowid_range {
    int64_t lo, hi;
} pb_rowid_range;

typedef struct pb_rowid_ranges {
    pb_rowid_range *r;
    size_t n, cap;
} pb_rowid_ranges;

void pb_rowid_ranges_dispose(pb_rowid_ranges *r);

/**
 * For rowid table `table`, the same schema SQL in both files at rest: the rowid ranges that hold
 * the rows of each file's leaves that are not shared. A leaf is shared when it is a leaf of the
 * table's b-tree in both files at the same page number with the same bytes and no cell spilling
 * to overflow pages: it holds the same rows in both. Every other row of `base` lies in
 * `base_out`'s ranges and nowhere else in the range is a shared row, the same for `target`: so
 * the table's rows differ only within the ranges, and its checksum share in `target` is the
 * share in `base` minus the rows of `base_out` plus the rows of `target_out`. `*found` is 0 (and
 * the ranges empty) when that cannot be told: another schema, a WITHOUT ROWID table, a file not
 * at rest, a page not read as expected.
 * @return 0, PB_ENOMEM, PB_EIO, PB_ESQLITE.
 */
int pb_sqldiff_leaf_ranges(int *found, pb_rowid_ranges *base_out, pb_rowid_ranges *target_out,
                           const char *base_path, const char *target_path, const char *table,
                           const pb_diff_options *opts, pb_error *err);

/**
 * The checksum share (pb_table_checksum's rows and sum, checksum.c) of the rows of `table` in
 * `path` whose rowid lies in `ranges`: a share of the whole table is the sum of the shares of
 * disjoint parts (mod 2^128).
 */
int pb_sqldiff_sum_ranges(uint64_t *rows, uint8_t sum[16], const char *path, const char *table,
                          const pb_rowid_ranges *ranges, const pb_diff_options *opts,
                          pb_error *err);

#endif

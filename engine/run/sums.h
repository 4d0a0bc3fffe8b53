/*
 * sums.h: the per-table checksums of a DB file, kept beside it (<db>.sums), so that the
 * checksum of a DB made from it (the next snapshot, the next baseline copy) reads only the tables
 * whose pages changed (pb_sqldiff_same_pages) and takes the others' sums from the file.
 * Role: engine/run, the home's cost of a night bounded by what changed. Prerequisites: sqldiff's
 * checksum and page comparison, the compatibility layer's reader.
 */
#ifndef PB_RUN_SUMS_H
#define PB_RUN_SUMS_H

#include <stddef.h>
#include <stdint.h>

#include "plexburst/errors.h"

/** One table's share of a checksum; `same`: its pages equal the reference DB's (or its rows,
 * pb_sums_mark_equal); `ranged`: its share was computed from the reference's and the rows of
 * the leaves that differ (pb_sqldiff_leaf_ranges), not by reading the table. */
typedef struct pb_sums_entry {
    char *table;
    uint64_t rows;
    uint8_t sum[16];
    int same, ranged;
} pb_sums_entry;

/** The tables of one DB's checksum (owned; pb_sums_dispose). */
typedef struct pb_sums {
    pb_sums_entry *e;
    size_t n, cap;
} pb_sums;

void pb_sums_dispose(pb_sums *s);

/** Loads `<db>.sums` into `s` (emptied first) when it holds the sums of checksum `digest`;
 * otherwise (absent, damaged, another digest) leaves `s` empty: nothing is reused. */
void pb_sums_load(pb_sums *s, const char *db, const uint8_t digest[16]);

/** Writes `<db>.sums` (atomically) for checksum `digest`. */
int pb_sums_save(const pb_sums *s, const char *db, const uint8_t digest[16], pb_error *err);

/** Moves `<from>.sums` to `<to>.sums` (or removes `<to>.sums` when there is none). */
int pb_sums_move(const char *from, const char *to, pb_error *err);

/** Removes `<db>.sums`. */
void pb_sums_remove(const char *db);

/**
 * The logical checksum of `db` (pb_sqldiff_checksum's digest) with each table's share in `out`.
 * With a reference (`ref`, a DB file, and `ref_sums`, its shares), the tables whose pages equal
 * the reference's are not read: their shares are taken from `ref_sums` and flagged `same`; a
 * rowid table whose pages differ is summed from the reference's share and the rows of the
 * leaves that differ (flagged `ranged`). `*reused` (optional) counts the tables not read whole.
 */
int pb_sums_checksum(uint8_t digest[16], pb_sums *out, unsigned *reused, const char *db,
                     const char *ref, const pb_sums *ref_sums, pb_error *err);

/**
 * Flags `same` the tables of `s` (the shares of `db`) that hold the same rows as in `ref_db`
 * by their shares: the same row count and sum as in `ref_sums`, and the same schema SQL in both
 * files. Such a table reads again in full in the checksum when its pages moved (a merge that
 * wrote it in another order), but the diff can leave it out. `*marked` (optional) counts them.
 * Trust: the sums' (XXH3-128 sums of row hashes, checksum.c); the cloud's rebuild check of the
 * snapshot's digest rests on the same sums, so this adds no new kind of risk.
 */
int pb_sums_mark_equal(pb_sums *s, unsigned *marked, const char *db, const char *ref_db,
                       const pb_sums *ref_sums, pb_error *err);

/** 1 when `table` is flagged the same as the reference in `s`. */
int pb_sums_same(const pb_sums *s, const char *table);

#endif

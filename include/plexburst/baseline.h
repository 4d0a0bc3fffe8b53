/*
 * plexburst/baseline.h: the baseline of a home data dir: the ids of the DB pair its last apply
 * or bootstrap left, recorded in <state dir>/baseline (format atop engine/apply/baseline.c). A
 * bundle is based on one baseline; pb_apply() checks it and records the bundle's target ids.
 */
#ifndef PLEXBURST_BASELINE_H
#define PLEXBURST_BASELINE_H

#include <stdint.h>
#include "plexburst/errors.h"

/** Ids of a DB pair: pb_sqldiff_checksum() digests (default options: every candidate table). */
typedef struct pb_baseline {
    uint8_t main[16];
    uint8_t blobs[16];
    int has_blobs;
} pb_baseline;

/** Computes the ids of `db` (and `blobs` when non-NULL). */
PB_EXTERN(int)
pb_baseline_compute(pb_baseline *out, const char *db, const char *blobs, pb_error *err);
/** Reads <state_dir>/baseline. @return 0, PB_ENOTFOUND (none recorded), PB_ECORRUPT, PB_EIO. */
PB_EXTERN(int) pb_baseline_read(pb_baseline *out, const char *state_dir, pb_error *err);
/** Replaces <state_dir>/baseline atomically (temp file, fsync, rename, fsync of the dir). */
PB_EXTERN(int) pb_baseline_write(const char *state_dir, const pb_baseline *b, pb_error *err);

#endif

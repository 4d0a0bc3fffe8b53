/*
 * plexburst/bundle.h: bundles, the one file that carries a cloud run's results home (row
 * changesets of both DBs, new files, librsync deltas, hard links), and their verification. The
 * format is specified atop engine/bundle/bundle.c (docs/bundle.md explains it). The export
 * protocol that builds bundles is plexburst/export.h; the journaled apply that installs them,
 * plexburst/apply.h; the baseline they are based on, plexburst/baseline.h.
 */
#ifndef PLEXBURST_BUNDLE_H
#define PLEXBURST_BUNDLE_H

#include <stdint.h>
#include "plexburst/errors.h"

/* ---------------------------------------------------------------------------------------------
 * Reading and verifying bundles
 */

/** Bounds the reader enforces on top of the format's own (path <= 4096 bytes, chunk <= 1 MiB). */
typedef struct pb_bundle_limits {
    uint64_t max_payload; /* compressed payload bytes of one record (default 64 GiB) */
    uint64_t max_size;    /* declared (decompressed) size of one record (default 256 GiB) */
    uint64_t max_records; /* records in a bundle (default 16 Mi) */
} pb_bundle_limits;

#define PB_BUNDLE_LIMITS_INIT                                                                      \
    {                                                                                              \
        (64ull << 30), (256ull << 30), (16ull << 20)                                               \
    }

/** What a verified bundle holds (caller-allocated; nothing to free). */
typedef struct pb_bundle_info {
    uint32_t version, flags;
    uint8_t base_main[16], base_blobs[16];     /* baseline ids: pb_sqldiff_checksum digests */
    uint8_t target_main[16], target_blobs[16]; /* the cloud DBs' ids (the next baseline) */
    uint8_t home_root[16];                     /* home manifest root hash, zero when unknown */
    int has_blobs;                             /* the baseline includes the blobs DB */
    int64_t created_ns;
    char creator[256];
    uint64_t records;                            /* records before the trailer */
    uint64_t bytes;                              /* the bundle's length */
    uint8_t checksum[16];                        /* whole-bundle XXH3-128 */
    uint64_t files_new, files_delta, files_link; /* file records by kind */
    uint64_t content_bytes;                      /* declared sizes of the file records */
    uint64_t cs_main_bytes, cs_blobs_bytes;      /* raw changeset sizes (0 when absent) */
    int has_cs_main, has_cs_blobs;
} pb_bundle_info;

/** Options of pb_bundle_verify(). */
typedef struct pb_bundle_verify_options {
    unsigned version;        /* PB_BUNDLE_VERIFY_OPTIONS_VERSION */
    pb_bundle_limits limits; /* zero fields take the defaults */
    /** Optional: write the raw changesets here while verifying (removed on failure). */
    const char *extract_main, *extract_blobs;
    /** Optional: check every file record's path against this data dir (no symlinked or
     * non-directory component, no directory at the target); nothing is written there. */
    const char *plex_dir;
} pb_bundle_verify_options;

#define PB_BUNDLE_VERIFY_OPTIONS_VERSION 1
#define PB_BUNDLE_VERIFY_OPTIONS_INIT                                                              \
    {                                                                                              \
        .version = PB_BUNDLE_VERIFY_OPTIONS_VERSION, .limits = PB_BUNDLE_LIMITS_INIT               \
    }

/** Fills the defaults (version, default limits). */
PB_EXTERN(void) pb_bundle_verify_options_init(pb_bundle_verify_options *opts);

/**
 * The verify pass: reads the whole bundle once and checks everything that can be checked
 * without the home files: header, every record's bounds, path rules, order (paths strictly
 * increasing, no duplicates), per-record checksum, decompressed sizes and hashes of changesets
 * and new files, changeset structure (pb_changeset_validate), trailer and whole-bundle
 * checksum. Writes nothing but the optional extracted changesets.
 * @param out   OUT: what the bundle holds (filled as far as read, also on failure).
 * @param opts  NULL for the defaults.
 * @return 0; PB_ECORRUPT / PB_EUNSAFE with "bundle: record N at offset O: ..." in err;
 *         PB_ENOTFOUND, PB_EIO.
 */
PB_EXTERN(int)
pb_bundle_verify(pb_bundle_info *out, const char *path, const pb_bundle_verify_options *opts,
                 pb_error *err);

/**
 * A bundle verified once, handed to pb_apply() (pb_apply_options.verified) so that the apply
 * stages it without a second verify pass: the download at home verifies, the apply trusts.
 * Owns its strings; release with pb_bundle_verified_dispose().
 */
typedef struct pb_bundle_verified {
    char *path;               /* the bundle file */
    uint64_t size;            /* its length (the apply refuses a file of another size) */
    uint8_t checksum[16];     /* its whole-bundle checksum (the stage pass compares) */
    pb_bundle_info info;      /* header, baseline ids (info.base_*), counts */
    char *cs_main, *cs_blobs; /* the changesets it carries, extracted (NULL when absent); the
                                 caller removes them */
    char *plex_dir;           /* the real path of the data dir its paths were checked against */
} pb_bundle_verified;

/**
 * pb_bundle_verify() of `path` with its changesets extracted to `cs_main` / `cs_blobs` and its
 * paths checked against the data dir `plex_dir` (required), recorded in `out` for pb_apply().
 * `opts` supplies the limits (NULL: the defaults; its extract and plex_dir fields are ignored).
 */
PB_EXTERN(int)
pb_bundle_verified_make(pb_bundle_verified *out, const char *path, const char *plex_dir,
                        const char *cs_main, const char *cs_blobs,
                        const pb_bundle_verify_options *opts, pb_error *err);
/** Releases what the token owns (not the files); accepts NULL. */
PB_EXTERN(void) pb_bundle_verified_dispose(pb_bundle_verified *v);

#endif

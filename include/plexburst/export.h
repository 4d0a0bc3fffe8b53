/*
 * plexburst/export.h: the export protocol that builds a bundle (plexburst/bundle.h) from a cloud
 * run. The agent runs it over a byte stream; every step is a function on files:
 *   (a) cloud:  pb_export_list()   -> LIST: the cloud's manifest of its synced tree (path, size,
 *                                     XXH3-128, mode, mtime, hard-link leader; docs/manifest.md)
 *   (b) home:   pb_export_answer() -> ANSWER: per listed path the home lacks or holds in another
 *                                     version: missing, or its hash + a librsync signature (or
 *                                     "send whole" for small files); unchanged paths are omitted
 *   (c) cloud:  pb_export_build()  -> BUNDLE: row changesets (baseline -> cloud DBs, derived
 *                                     tables filtered out) + new files + deltas + hard links
 * The home never sends its whole manifest; pb_export_build() also accepts one (verdicts from
 * the manifest, signatures from an optional ANSWER) or a readable home dir (local use).
 */
#ifndef PLEXBURST_EXPORT_H
#define PLEXBURST_EXPORT_H

#include <stdint.h>
#include "plexburst/errors.h"
#include "plexburst/io.h"

/** Counters of the protocol steps and of a bundle build. */
typedef struct pb_export_stats {
    uint64_t listed;              /* cloud files listed */
    uint64_t files_new;           /* N records (home lacked the file, or got it whole) */
    uint64_t files_delta;         /* D records */
    uint64_t files_link;          /* H records */
    uint64_t files_whole_changed; /* of files_new: home held another version (small files) */
    uint64_t files_unchanged;     /* listed files the home already holds */
    uint64_t answers;             /* entries of the ANSWER */
    uint64_t sig_bytes;           /* signature bytes in the ANSWER */
    uint64_t content_bytes;       /* sizes of the shipped files */
    uint64_t delta_bytes;         /* raw librsync delta bytes */
    uint64_t cs_main_bytes, cs_blobs_bytes;             /* raw changesets */
    uint64_t rows_inserted, rows_updated, rows_deleted; /* changeset records */
    uint64_t bundle_bytes;                              /* the bundle's length */
    uint64_t solid_bytes;   /* the solid form's length (pb_export_options.solid) */
    uint8_t solid_xxh3[16]; /* its XXH3-128, computed while written */
    double ms;              /* wall time */
} pb_export_stats;

/**
 * Step (a), cloud side: fingerprints the cloud data dir `cloud_dir` and writes its manifest
 * (the LIST) to `list_path`. `state_dir` holds the fingerprint cache (NULL: the default beside
 * the cloud dir).
 */
PB_EXTERN(int)
pb_export_list(pb_export_stats *out, const char *cloud_dir, const char *state_dir,
               const char *list_path, pb_error *err);

/**
 * Step (a) when the cloud holds a home manifest (e.g. uploaded with the baseline): writes only
 * the paths of the cloud's files the manifest lacks or holds with another content, one per line
 * in walk order (a "wanted" text LIST for pb_export_answer), so the exchange is proportional to
 * the change, not to the tree. out->listed counts the cloud files, out->answers the paths.
 */
PB_EXTERN(int)
pb_export_wanted(pb_export_stats *out, const char *cloud_dir, const char *state_dir,
                 const char *home_manifest, const char *wanted_path, pb_error *err);

/** Options of pb_export_answer(). */
typedef struct pb_answer_options {
    unsigned version;          /* PB_ANSWER_OPTIONS_VERSION */
    const char *home_manifest; /* optional: a fresh manifest of the home dir (else one is made) */
    const char *state_dir;     /* fingerprint cache for the home dir (NULL: its default) */
    uint64_t whole_below;      /* files below this size are sent whole (0: PB_RSYNC_WHOLE_BELOW) */
} pb_answer_options;

#define PB_ANSWER_OPTIONS_VERSION 1
#define PB_ANSWER_OPTIONS_INIT                                                                     \
    {                                                                                              \
        .version = PB_ANSWER_OPTIONS_VERSION                                                       \
    }

/** Fills the defaults (version). */
PB_EXTERN(void) pb_answer_options_init(pb_answer_options *opts);

/**
 * Step (b), home side: reads the LIST at `list_path` (a manifest, or a text file of paths, one
 * per line, sorted in walk order: the "wanted" paths) and writes the ANSWER for the home data
 * dir `home_dir`: for each listed file the home lacks ('M'), or holds with another content
 * (its size and hash, and a librsync signature unless it is small: 'S' / 'W'). Unchanged
 * files are omitted (a text list names no hashes, so every present file gets an entry).
 */
PB_EXTERN(int)
pb_export_answer(pb_export_stats *out, const char *home_dir, const char *list_path,
                 const char *answer_path, const pb_answer_options *opts, pb_error *err);

/** Options of pb_export_build(). */
typedef struct pb_export_options {
    unsigned version;        /* PB_EXPORT_OPTIONS_VERSION */
    const char *cloud_dir;   /* the cloud's Plex data dir (its files and, by default, DBs) */
    const char *cloud_db;    /* optional: the cloud main DB (default: in cloud_dir) */
    const char *cloud_blobs; /* optional: the cloud blobs DB (default: in cloud_dir if present) */
    const char *base_db;     /* the baseline main DB (required) */
    const char *base_blobs;  /* the baseline blobs DB (required when the cloud has one) */
    const char *list;        /* the cloud's LIST from step (a); NULL: made now */
    /* what the home holds, one of: */
    const char *answer;        /* an ANSWER from step (b) */
    const char *home_dir;      /* a readable home data dir: step (b) runs locally */
    const char *home_manifest; /* a home manifest; `answer` then optionally adds signatures */
    const char *work_dir;      /* temporary files (default $TMPDIR); removed unless keep_work */
    int keep_work;
    int zstd_level;       /* payload compression level (default 19) */
    const char *creator;  /* creator string of the header (default "plexburst <version>") */
    uint64_t whole_below; /* home_dir route: files below this size are sent whole (0: 64 KiB) */
    /** Optional: also write the solid transport form of the bundle here (one zstd stream over
     * every record, at solid_level, 0: 19), while the bundle is written: it is never read back. */
    const char *solid;
    int solid_level;
    /** Optional: called after each file written (phase "build", bytes_done: content so far,
     * items_done: files so far, path); non-zero cancels (PB_ECANCELLED). */
    pb_progress_fn progress;
    void *progress_payload;
} pb_export_options;

#define PB_EXPORT_OPTIONS_VERSION 1
#define PB_EXPORT_OPTIONS_INIT                                                                     \
    {                                                                                              \
        .version = PB_EXPORT_OPTIONS_VERSION, .zstd_level = 19                                     \
    }

/** Fills the defaults (version, zstd level 19). */
PB_EXTERN(void) pb_export_options_init(pb_export_options *opts);

/**
 * Step (c), cloud side: writes the bundle to `bundle_path` (a temporary name, renamed when
 * complete): header with the baseline ids, the changesets base -> cloud of both DBs filtered by
 * the Plex policy, then every file the home needs in walk order.
 * @return 0; PB_EINVALID (options), PB_ESCHEMA (DBs of different shapes), PB_ECONFLICT (a cloud
 *         file changed while it was read), PB_ECORRUPT (a bad LIST or ANSWER), PB_EIO, ...
 */
PB_EXTERN(int)
pb_export_build(pb_export_stats *out, const char *bundle_path, const pb_export_options *opts,
                pb_error *err);

#endif

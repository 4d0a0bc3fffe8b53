/*
 * plexburst/bundle.h: bundles (one file carrying a cloud run's results), the export protocol
 * that builds them, and the crash-safe journaled apply that installs them into a home Plex data
 * directory. The format is specified in docs/bundle.md (and at the top of engine/bundle.c).
 *
 * Export protocol (the agent runs it over a byte stream; every step is a function on files):
 *   (a) cloud:  pb_export_list()   -> LIST: the cloud's manifest of its synced tree (path, size,
 *                                     XXH3-128, mode, mtime, hard-link leader; docs/manifest.md)
 *   (b) home:   pb_export_answer() -> ANSWER: per listed path the home lacks or holds in another
 *                                     version: missing, or its hash + a librsync signature (or
 *                                     "send whole" for small files); unchanged paths are omitted
 *   (c) cloud:  pb_export_build()  -> BUNDLE: row changesets (baseline -> cloud DBs, derived
 *                                     tables filtered out) + new files + deltas + hard links
 * The home never sends its whole manifest; pb_export_build() also accepts one (verdicts from
 * the manifest, signatures from an optional ANSWER) or a readable home dir (local use).
 *
 * Apply (pb_apply): recover, verify the whole bundle, check its baseline, guards, stage files
 * beside their targets, stop Plex, merge the rows in one transaction (written by Plex's own
 * engine when it is found, else in-process), rename the staged files into place, start Plex;
 * every step journaled in <state dir>/apply.journal so that a crash at any instant is completed
 * or rolled back by pb_apply_recover() (engine/journal.c explains why this is all-or-nothing).
 */
#ifndef PLEXBURST_BUNDLE_H
#define PLEXBURST_BUNDLE_H

#include <stdint.h>
#include "plexburst/errors.h"
#include "plexburst/merge.h"
#include "plexburst/plexmerge.h"

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

/* ---------------------------------------------------------------------------------------------
 * The baseline record of a home data dir (<state dir>/baseline)
 */

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

/* ---------------------------------------------------------------------------------------------
 * Export
 */

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
    double ms;                                          /* wall time */
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
} pb_export_options;

#define PB_EXPORT_OPTIONS_VERSION 1

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

/* ---------------------------------------------------------------------------------------------
 * Apply and recovery
 */

/** Phases of an apply, in order (the CLI prints them as PHASE n). */
typedef enum pb_apply_phase {
    PB_APPLY_RECOVER = 1,
    PB_APPLY_VERIFY = 2,
    PB_APPLY_GUARDS = 3,
    PB_APPLY_STAGE = 4,
    PB_APPLY_STOP = 5,
    PB_APPLY_MERGE = 6,
    PB_APPLY_INSTALL = 7,
    PB_APPLY_START = 8,
    PB_APPLY_DONE = 9
} pb_apply_phase;

/** "RECOVER", "VERIFY BUNDLE", "GUARDS", "STAGE FILES", "STOP PLEX", "MERGE ROWS", ... */
PB_EXTERN(const char *) pb_apply_phase_name(int phase);

/** What a recovery did. */
typedef enum pb_recover_action {
    PB_RECOVER_NONE = 0,          /* no interrupted apply */
    PB_RECOVER_ROLLED_BACK = 1,   /* the DB commit had not happened: staged files removed */
    PB_RECOVER_ROLLED_FORWARD = 2 /* it had: the remaining files were installed */
} pb_recover_action;

typedef struct pb_recover_result {
    int action;               /* pb_recover_action */
    char run_id[40];          /* the interrupted run */
    char state[16];           /* the journal state it was found in */
    uint64_t files_removed;   /* staged files deleted (roll back) */
    uint64_t dirs_removed;    /* created directories removed (roll back) */
    uint64_t files_installed; /* staged files renamed into place (roll forward) */
    int plex_stopped;         /* the interrupted run had stopped Plex: it may need a start */
    int modes_restored;       /* journal_mode set back to the recorded modes */
    char detail[512];         /* one line: what was found and decided */
} pb_recover_result;

/**
 * Completes or rolls back an interrupted apply of `plex_dir` (state dir NULL: the default).
 * Cheap when there is none (one stat). Call it first in every command that touches a data dir.
 * @return 0; PB_EBUSY (another apply runs), PB_ECONFLICT (the journal cannot tell whether the
 *         rows were committed: manual recovery, the message says how), PB_EIO, PB_ESQLITE.
 */
PB_EXTERN(int) pb_apply_recover(const char *plex_dir, const char *state_dir, pb_error *err);
/** pb_apply_recover with a report of what was done. */
PB_EXTERN(int)
pb_apply_recover_ex(pb_recover_result *out, const char *plex_dir, const char *state_dir,
                    pb_error *err);

typedef struct pb_apply_options {
    unsigned version;           /* PB_APPLY_OPTIONS_VERSION */
    const char *plex_dir;       /* the home Plex data dir D */
    const char *bundle;         /* the bundle file */
    const char *state_dir;      /* NULL: <D>.plexburst */
    int dry_run;                /* stop after the guards: print the report, write nothing */
    int online;                 /* merge while Plex runs (no stop/start; probes in the journal) */
    const char *plex_stop_cmd;  /* shell command stopping Plex (optional) */
    const char *plex_start_cmd; /* shell command starting it again (optional) */
    double max_delete_pct;      /* deletion guard threshold (default 5) */
    const char *path_map;       /* path_mappings.json (cloud -> home) for the rows */
    const char *base_db;        /* optional: a copy of the baseline main DB (checked, and used
                                   as the base of the guards and the report) */
    const char *base_blobs;
    pb_bundle_limits limits; /* zero fields take the defaults */
    /** Optional: called when a phase starts (progress display). */
    void (*on_phase)(int phase, void *payload);
    void *phase_payload;
    /**
     * Who writes the rows (pb_plex_engine_choice, plexburst/plexmerge.h): AUTO (the default)
     * writes through Plex's own engine when pb_plex_engine_find() finds one, else in-process
     * through the compatibility layer; PATH uses the engine at plex_sqlite (a Plex SQLite, or a
     * sqlite3 stand-in with compat_extension loaded); IN_PROCESS never uses an engine. --online
     * always merges in-process (the commit probes need the merge's connection): PATH with
     * online is refused.
     */
    int engine;
    const char *plex_sqlite;
    const char *compat_extension;
} pb_apply_options;

#define PB_APPLY_OPTIONS_VERSION 1

/** Fills the defaults (version, max_delete_pct 5). */
PB_EXTERN(void) pb_apply_options_init(pb_apply_options *opts);

typedef struct pb_apply_result {
    int ok;         /* the apply completed (or the dry run passed the guards) */
    int phase;      /* pb_apply_phase: last reached, the failing one on error */
    int error_code; /* PB_E* of the failure */
    char error[512];
    int dry_run;
    char run_id[40];
    char state_dir[4096];
    pb_recover_result recovered; /* phase 1 */
    pb_bundle_info bundle;       /* phase 2 */
    pb_plex_report report;       /* phase 3 (guards, diff report); owned, see dispose */
    int have_report;
    uint64_t files_new, files_patched, files_linked, files_unchanged;
    uint64_t dirs_created;
    uint64_t bytes_bundle, bytes_written;
    pb_merge_counts rows; /* the merge's totals */
    int atomic_pair;      /* main + blobs + journal marker committed atomically */
    /* who writes (wrote) the rows: "plex-sqlite: /path", "in-process compatibility layer", or
     * "none (dry run; would write with ...)" */
    char engine[4200];
    int plex_was_running, plex_stopped, plex_started;
    struct {
        double recover, verify, guards, stage, merge, install, apply, downtime;
    } ms;
} pb_apply_result;

/**
 * Applies the bundle to the data dir (see the top of this header). On failure before the
 * commit nothing is changed (staged files and created directories are removed); a failure after
 * it is completed by the next pb_apply_recover(). `out` is zeroed first and filled in every
 * case; release with pb_apply_result_dispose().
 * @return 0; PB_EREFUSED (wrong baseline, deletion guard, Plex running); PB_ESCHEMA (schema
 *         guard); PB_ECORRUPT / PB_EUNSAFE (bundle); PB_ECONFLICT (a home file changed since
 *         the answer); PB_EBUSY; PB_EIO; PB_ESQLITE; PB_ERROR (stop/start command failed).
 */
PB_EXTERN(int) pb_apply(pb_apply_result *out, const pb_apply_options *opts, pb_error *err);

/** Releases what the result owns; accepts NULL. */
PB_EXTERN(void) pb_apply_result_dispose(pb_apply_result *r);

#endif

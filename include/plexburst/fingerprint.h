/*
 * plexburst/fingerprint.h: fingerprints of the synced part of a Plex data directory.
 *
 * A fingerprint run walks `Metadata/`, `Media/` and the non-DB parts of `Plug-in Support/` of a
 * data directory D (never `Preferences.xml`, `Cache/`, `Logs/`, the DBs, their -wal/-shm/-journal
 * or their backups; pb_fingerprint_synced() is the rule), and writes a **manifest**: every entry
 * in walk order with type, size, mtime, mode, hard-link group and the XXH3-128 of its content,
 * plus Merkle hashes of directories whose root hash identifies the whole tree. Content hashes
 * come from a persistent cache in the state directory (default `<D>.plexburst` beside D) when
 * path, size, mtime and inode are unchanged, so a nightly run re-reads only what changed.
 *
 * Manifests are streamed: neither writing, reading nor comparing them holds more than one
 * directory level per depth in memory. The format is specified in docs/manifest.md.
 */
#ifndef PLEXBURST_FINGERPRINT_H
#define PLEXBURST_FINGERPRINT_H

#include <stddef.h>
#include <stdint.h>
#include "plexburst/errors.h"
#include "plexburst/io.h"

#define PB_HASH_LEN 16 /* XXH3-128, canonical (big-endian) byte order */

/** Entry types of a manifest (the byte stored in the format). */
typedef enum pb_entry_type {
    PB_ENTRY_DIR = 'D',
    PB_ENTRY_FILE = 'F',
    PB_ENTRY_SYMLINK = 'L',
} pb_entry_type;

/** Options of pb_fingerprint_run(); start from PB_FINGERPRINT_OPTIONS_INIT. */
typedef struct pb_fingerprint_options {
    unsigned version;
    const char *state_dir;     /* NULL: pb_state_dir_default(D); created 0700 when missing */
    const char *manifest_path; /* NULL: <state_dir>/fingerprint.manifest (replaced atomically) */
    int rehash;              /* non-zero: ignore the cache and hash every file (still updates it) */
    pb_progress_fn progress; /* optional: scan and hash progress; non-zero return cancels */
    void *payload;           /* passed to progress */
} pb_fingerprint_options;

#define PB_FINGERPRINT_OPTIONS_VERSION 1
#define PB_FINGERPRINT_OPTIONS_INIT                                                                \
    {                                                                                              \
        PB_FINGERPRINT_OPTIONS_VERSION, NULL, NULL, 0, NULL, NULL                                  \
    }

/** Fills the defaults (PB_FINGERPRINT_OPTIONS_INIT). */
PB_EXTERN(void) pb_fingerprint_options_init(pb_fingerprint_options *opts);

/** Result of a fingerprint run (caller-allocated; nothing to free). */
typedef struct pb_fingerprint_result {
    uint8_t root[PB_HASH_LEN]; /* root hash: the manifest's id */
    char root_hex[2 * PB_HASH_LEN + 1];
    uint64_t files;            /* regular files (each hard-linked path counted) */
    uint64_t dirs;             /* directories below D (D itself not counted) */
    uint64_t symlinks;         /* symlinks recorded (never followed) */
    uint64_t bytes;            /* sum of the regular files' sizes */
    uint64_t hashed;           /* files whose content was read this run */
    uint64_t hashed_bytes;     /* bytes read for them */
    uint64_t cached;           /* files whose hash came from the cache or a hard-link leader */
    uint64_t skipped;          /* sockets, FIFOs and devices (not recorded) */
    uint64_t excluded;         /* entries left out by the sync rules (not descended) */
    uint64_t hard_link_groups; /* inodes with two or more paths in the tree */
    uint64_t hard_links;       /* paths recorded as members of a group other than its leader */
    uint64_t vanished;         /* files that disappeared between the scan and the hashing */
    uint64_t ms_scan, ms_hash, ms_total; /* wall times of the phases and the whole run */
    char state_dir[4096];                /* the state directory used */
    char manifest_path[4096];            /* the manifest written */
} pb_fingerprint_result;

/**
 * Fingerprints the Plex data directory `plex_dir` and writes its manifest.
 * @param out   OUT: counts, timings, root hash and paths (zeroed first).
 * @param opts  NULL for the defaults.
 * @return 0; PB_ENOTFOUND when plex_dir is missing; PB_EINVALID for a state dir inside plex_dir;
 *         PB_EBUSY when another run holds the state DB; PB_ECANCELLED from progress; PB_EIO,
 *         PB_ESQLITE, PB_ERROR (a path longer than PATH_MAX) with detail in err.
 * The cache is updated in one transaction, committed only after the manifest is in place.
 */
PB_EXTERN(int)
pb_fingerprint_run(pb_fingerprint_result *out, const char *plex_dir,
                   const pb_fingerprint_options *opts, pb_error *err);

/* ---- one path at a time: what the home holds where the cloud wrote ---- */

/** What a data dir holds at one path (pb_fingerprint_lookup_get). */
typedef struct pb_fingerprint_entry {
    int type;      /* 0: nothing synced there (absent, excluded, a directory or a special file,
                      or a symlink on the way); PB_ENTRY_FILE or PB_ENTRY_SYMLINK */
    uint32_t mode; /* permission bits */
    uint64_t size; /* file size, or the symlink target's length */
    uint8_t hash[PB_HASH_LEN]; /* as a manifest records it: content, or the target text */
} pb_fingerprint_entry;

/** Counts of a lookup session. */
typedef struct pb_fingerprint_lookup_stats {
    uint64_t looked_up, found;     /* paths asked, and found as a file or symlink */
    uint64_t hashed, hashed_bytes; /* files read because the cache did not describe them */
    uint64_t cached;               /* files whose hash came from the cache */
} pb_fingerprint_lookup_stats;

typedef struct pb_fingerprint_lookup pb_fingerprint_lookup;

/**
 * Opens a lookup session on the data dir `plex_dir` with the fingerprint cache of `state_dir`
 * (NULL: the default), in the cache's write transaction (PB_EBUSY when another run holds it).
 * A session answers for single paths what a full fingerprint would record, at the cost of the
 * paths asked instead of the whole tree: the nightly sync asks only where the cloud wrote.
 */
PB_EXTERN(int)
pb_fingerprint_lookup_open(pb_fingerprint_lookup **out, const char *plex_dir, const char *state_dir,
                           pb_error *err);

/**
 * What the data dir holds at `relpath` ('/'-separated, relative to D): a regular file's hash
 * comes from the cache when its size, mtime and inode match the cache row, else the file is read
 * (and the cache row rewritten); a symlink is recorded, never followed, and no symlink on the way
 * is followed. `out->type` 0 means nothing synced is there.
 */
PB_EXTERN(int)
pb_fingerprint_lookup_get(pb_fingerprint_lookup *l, const char *relpath, pb_fingerprint_entry *out,
                          pb_error *err);

/** The session's counts so far. */
PB_EXTERN(const pb_fingerprint_lookup_stats *)
pb_fingerprint_lookup_stats_get(const pb_fingerprint_lookup *l);

/** Commits the cache rows written and frees the session (NULL is fine). */
PB_EXTERN(int) pb_fingerprint_lookup_close(pb_fingerprint_lookup *l, pb_error *err);

/**
 * The sync rule: 1 when the entry at `relpath` (relative to D, '/'-separated, no leading '/')
 * belongs to the synced tree, 0 when it is excluded. Top level: only `Metadata`, `Media` and
 * `Plug-in Support`. Anywhere in `Plug-in Support/`: names ending in -wal, -shm, -journal.
 * Anywhere in `Plug-in Support/Databases/`: `*.db`, `*.db-*` (dated and other DB backups) and
 * the `plexburst-backups` folder. Everything else below the three is synced.
 */
PB_EXTERN(int) pb_fingerprint_synced(const char *relpath);

/**
 * The default state directory of a data directory: `dirname(D)/basename(D).plexburst` of D's
 * real path, written to `out` (cap bytes).
 * @return 0; PB_ENOTFOUND when D does not exist; PB_EINVALID for "/" or too long a path.
 */
PB_EXTERN(int) pb_state_dir_default(char *out, size_t cap, const char *plex_dir, pb_error *err);

/* ---- reading manifests ---- */

/** Reader of one manifest file (opaque). */
typedef struct pb_manifest pb_manifest;

/** One manifest entry; owned by the reader, valid until the next call on it. */
typedef struct pb_manifest_entry {
    pb_entry_type type;
    const char *path;          /* relative to D, '/'-separated */
    uint32_t mode;             /* permission bits (07777) */
    uint64_t size;             /* file size; symlink target length; dirs: records below */
    int64_t mtime_ns;          /* modification time, ns since the epoch */
    uint8_t hash[PB_HASH_LEN]; /* file content / symlink target / directory Merkle hash */
    const char *link_target;   /* symlink target, NULL otherwise */
    const char *link_leader;   /* hard-link group leader (an earlier path), NULL if none */
    int link_multi;            /* the file's inode has other paths (it may lead a group) */
    uint64_t offset;           /* byte offset of the record in the manifest */
    uint64_t subtree_end;      /* directories: offset just past their subtree */
} pb_manifest_entry;

/** Header facts of an open manifest. */
typedef struct pb_manifest_info {
    uint32_t version;
    uint8_t root[PB_HASH_LEN];
    uint64_t entries;
    uint64_t file_bytes;
} pb_manifest_info;

/**
 * Opens a manifest: verifies its trailing checksum and header first (one streamed pass), so a
 * truncated or altered file fails here with PB_ECORRUPT and the byte offset. Entries are then
 * validated as they are read (bounds, paths, order, nesting, directory hashes).
 * @param out  OUT: the reader, freed with pb_manifest_free().
 */
PB_EXTERN(int) pb_manifest_open(pb_manifest **out, const char *path, pb_error *err);

/** Header facts (root hash, counts) of `m`. */
PB_EXTERN(const pb_manifest_info *) pb_manifest_get_info(const pb_manifest *m);

/**
 * Reads the next entry in walk order into *entry.
 * @return 1 with an entry, 0 at the end (the root hash then verified), PB_ECORRUPT with the
 *         byte offset when a record is malformed.
 */
PB_EXTERN(int) pb_manifest_next(pb_manifest *m, const pb_manifest_entry **entry, pb_error *err);

/** After next() returned a directory: skips its subtree in one seek (its recorded hash is
 * trusted for the parent's check). PB_EINVALID when the last entry was not a directory. */
PB_EXTERN(int) pb_manifest_skip(pb_manifest *m, pb_error *err);

/** Frees a reader; accepts NULL. */
PB_EXTERN(void) pb_manifest_free(pb_manifest *m);

/* ---- comparing manifests ---- */

/** Verdict per path of pb_manifest_compare(). */
typedef enum pb_cmp_kind {
    PB_CMP_NEW = 1,       /* only in `other` */
    PB_CMP_CHANGED = 2,   /* in both; type, mode or content differ (directories: their subtree) */
    PB_CMP_UNCHANGED = 3, /* in both and equal (directories: the whole subtree, skipped) */
    PB_CMP_ONLY_HOME = 4, /* only in `home` */
} pb_cmp_kind;

/** Called per path; `home`/`other` are NULL on the side that lacks the path. `subtree` is 1 for
 * an equal directory whose entries are not reported. Non-zero return cancels. */
typedef int (*pb_manifest_cmp_cb)(pb_cmp_kind kind, const pb_manifest_entry *home,
                                  const pb_manifest_entry *other, int subtree, void *payload);

/** Counters of a comparison. */
typedef struct pb_manifest_cmp_stats {
    uint64_t new_entries, changed, unchanged, only_home, skipped_subtrees;
} pb_manifest_cmp_stats;

/**
 * Streams two manifests (freshly opened) in walk order and reports every path (equal
 * directories once, with their subtree skipped by hash). A file's mtime and hard-link group do
 * not count as a change; its mode does.
 * @param stats  optional OUT counters.
 * @return 0; PB_ECANCELLED when cb returned non-zero; PB_ECORRUPT from either reader.
 */
PB_EXTERN(int)
pb_manifest_compare(pb_manifest *home, pb_manifest *other, pb_manifest_cmp_cb cb, void *payload,
                    pb_manifest_cmp_stats *stats, pb_error *err);

/** Writes the 32-digit lowercase hex of a hash (plus NUL) to out. */
PB_EXTERN(void) pb_hash_hex(char out[2 * PB_HASH_LEN + 1], const uint8_t hash[PB_HASH_LEN]);

#endif

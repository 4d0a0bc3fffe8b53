/*
 * fingerprint_int.h: internals shared by fingerprint.c (the run, the cache), fingerprint_scan.c
 * (pass 1), fingerprint_emit.c (pass 2) and manifest.c (the manifest format): the path order,
 * the Merkle feed of a directory hash, the plan file and the streaming manifest writer. Not
 * installed.
 */
#ifndef PB_FINGERPRINT_INT_H
#define PB_FINGERPRINT_INT_H

#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <sqlite3.h>
#include <xxhash.h>
#include "plexburst/fingerprint.h"

/** Walk order of paths: bytewise, with '/' sorting before every other byte, which is exactly a
 * pre-order walk with each directory's names sorted by strcmp. */
int pb_fp__pathcmp(const char *a, size_t na, const char *b, size_t nb);

/** Feeds one child (name, type, mode, hash) into its directory's Merkle state. */
void pb_fp__dir_feed(XXH3_state_t *st, const char *name, size_t name_len, int type, uint32_t mode,
                     const uint8_t hash[PB_HASH_LEN]);
/** Finishes a directory's Merkle state into `out` (canonical bytes). */
void pb_fp__dir_digest(uint8_t out[PB_HASH_LEN], XXH3_state_t *st);

/* Streaming writer of a manifest: records are appended in walk order; a directory record is
 * written with a placeholder hash and patched once its subtree is done (in the write buffer when
 * still there, else with pwrite). Finishing writes the trailer and checksum, then renames the
 * temporary file over `path`. */
typedef struct pb_fp_writer pb_fp_writer;

int pb_fp__writer_open(pb_fp_writer **out, const char *path, pb_error *err);
/** Appends a record; returns its offset in *off. extra = symlink target or leader path. */
int pb_fp__writer_add(pb_fp_writer *w, uint64_t *off, int type, int flags, const char *path,
                      size_t path_len, uint32_t mode, uint64_t size, int64_t mtime_ns,
                      const uint8_t hash[PB_HASH_LEN], const char *extra, size_t extra_len,
                      pb_error *err);
/** Current end offset (where the next record goes). */
uint64_t pb_fp__writer_offset(const pb_fp_writer *w);
/** Sets the record count, hash and subtree end of the directory record at `off`. */
int pb_fp__writer_patch_dir(pb_fp_writer *w, uint64_t off, uint64_t records,
                            const uint8_t hash[PB_HASH_LEN], uint64_t subtree_end, pb_error *err);
/** Writes trailer and header (root hash, counts), the checksum, and renames into place. */
int pb_fp__writer_finish(pb_fp_writer *w, const uint8_t root[PB_HASH_LEN], uint64_t file_bytes,
                         pb_error *err);
/** Frees the writer, removing the temporary file unless finished; accepts NULL. */
void pb_fp__writer_free(pb_fp_writer *w);

/* Record flags. */
#define PB_FP_MULTI    0x1 /* the file's inode has other paths (st_nlink > 1) */
#define PB_FP_FOLLOWER 0x2 /* a member of a hard-link group; extra = the leader's path */

/* ---- the run's passes ---- */

/* One entry of the walk, written by the scan and read back by the emitter (native layout, a
 * private temporary file). Followed by path_len path bytes and extra_len extra bytes. */
typedef struct pb_fp_plan_rec {
    uint8_t kind;   /* 'D' directory, 'E' end of directory, 'F' file, 'L' symlink, 'X' stale row */
    uint8_t cached; /* hash holds the cached content hash */
    uint16_t path_len;
    uint16_t extra_len;
    uint16_t pad;
    uint32_t mode;
    uint32_t nlink;
    uint64_t size;
    int64_t mtime_ns;
    uint64_t ino, dev;
    uint8_t hash[PB_HASH_LEN];
} pb_fp_plan_rec;

/** Appends one plan record with its path and extra bytes. */
int pb_fp__plan_put(FILE *f, const pb_fp_plan_rec *r, const char *path, const char *extra,
                    pb_error *err);

/** What the scan leaves for the hashing pass, and what that pass did. */
typedef struct pb_fp_scan_out {
    uint64_t hash_bytes, hash_files; /* bytes and files to read (the progress totals) */
    uint64_t bytes_done, items_done; /* read by the hashing pass */
} pb_fp_scan_out;

/** Pass 1: walks the tree below root_fd against the cache `db` (in its open transaction),
 * writing the plan; counts into res. */
int pb_fp__scan(pb_fp_scan_out *out, sqlite3 *db, FILE *plan, int root_fd,
                const pb_fingerprint_options *opts, pb_fingerprint_result *res, pb_error *err);
/** Pass 2: reads the plan back, hashes, writes res->manifest_path and the cache rows. */
int pb_fp__emit(pb_fp_scan_out *plan_info, sqlite3 *db, FILE *plan, int root_fd,
                const pb_fingerprint_options *opts, pb_fingerprint_result *res, pb_error *err);

/** Opens the cache `<state_dir>/fingerprint.db` of the data dir whose real path is `plex_real`
 * in a write transaction (BEGIN IMMEDIATE: PB_EBUSY when another run holds it); a cache of
 * another data dir or hash format is emptied, a corrupt one removed and rebuilt. */
int pb_fp__cache_open(sqlite3 **out, const char *state_dir, const char *plex_real, pb_error *err);

/** Opens `rel` below `root_fd` read-only without following any symlink on the way (openat2
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS where the kernel has it, else O_NOFOLLOW on the last
 * component). */
int pb_fp__open_beneath(int root_fd, const char *rel);

/* A file whose mtime is less than this older than the moment it was read could change again
 * within the same timestamp tick: its cache row is stored as never matching. */
#define RACY_NS 100000000LL

/** A fingerprint cache failure ("fingerprint cache: <what>: ..."; PB_EBUSY when locked). */
int pb_fp__sql_fail(sqlite3 *db, int rc, const char *what, pb_error *err);

static inline int64_t pb_fp__now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline int64_t pb_fp__mtime_ns(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
}

#endif

/*
 * fingerprint.c: fingerprints of a Plex data directory (plexburst/fingerprint.h): the sync rule,
 * the persistent hash cache and the run; the scan is fingerprint_scan.c, the hashing and the
 * manifest writing fingerprint_emit.c (the manifest format is specified atop manifest.c and
 * explained in docs/manifest.md).
 * Role: step 1 of a nightly sync (what does home hold?) and the cloud agent's list of what Plex
 * wrote. Prerequisites: libxxhash (XXH3-128), SQLite (the cache), Linux openat2 when available.
 *
 * A run has two passes over bounded memory:
 *  1. scan: a pre-order walk with openat/fstatat(AT_SYMLINK_NOFOLLOW)/fdopendir relative to
 *     directory fds, each directory's names sorted (strcmp), excluded entries pruned by
 *     pb_fingerprint_synced(). Files are merged against the cache, read in ONE ordered scan of a
 *     WITHOUT ROWID table whose key collation (`pbpath`: bytewise, '/' first) equals the walk
 *     order. Every entry goes to a temporary plan file with its stat data and, on a cache hit
 *     (same size, mtime_ns and inode), its hash; cache rows the walk passed by are marked stale.
 *     The plan tells exactly how many bytes must be hashed, which drives the progress total.
 *  2. emit: the plan is read back; files without a cached hash are read (1 MiB reads, sequential
 *     advice for large files, opened with openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS so no path
 *     component swapped for a symlink since the scan is followed) and hashed with XXH3-128;
 *     hard links are grouped by (dev, inode), a group's later paths take the leader's hash
 *     without a read; directory Merkle hashes are computed on the way up and patched into their
 *     records; the cache rows of hashed files are upserted and stale rows deleted, all in the
 *     one transaction opened at the start (BEGIN IMMEDIATE: a concurrent run gets PB_EBUSY),
 *     committed after the manifest has been renamed into place.
 * Memory: one name list per directory level, the open hard-link groups (removed once all their
 * links are seen, at most LINK_GROUPS_MAX open: past it a multi-link file forms no group and its
 * other paths are hashed on their own), SQLite's page cache; nothing grows with the number of
 * files.
 * Racy entries: a file whose mtime is less than 100 ms older than the moment it was read could
 * change again within the same timestamp tick, so its cache row is stored as never matching.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fingerprint_int.h"
#include "plexdir.h"

#define PLAN_BUF     (1u << 20)
#define CACHE_FORMAT "pbfp1 xxh3-128"

/* ================================ the sync rule ================================ */
/* ================================ the sync rule ================================ */

static int has_suffix(const char *s, size_t n, const char *suf)
{
    size_t m = strlen(suf);
    return n >= m && memcmp(s + n - m, suf, m) == 0;
}

int pb_fingerprint_synced(const char *relpath)
{
    static const char *const top[] = {"Metadata", "Media", "Plug-in Support"};
    const char *slash = strchr(relpath, '/');
    size_t n = slash ? (size_t)(slash - relpath) : strlen(relpath);
    int t = -1;

    for (int i = 0; i < 3; i++)
        if (strlen(top[i]) == n && memcmp(relpath, top[i], n) == 0)
            t = i;
    if (t < 0)
        return 0;
    /* files an apply is staging are never part of the tree (engine/apply/stage.c) */
    for (const char *c = relpath; (c = strstr(c, ".pb-stage-")) != NULL; c++)
        if (c == relpath || c[-1] == '/')
            return 0;
    if (t != 2 || !slash)
        return 1;
    /* Plug-in Support: no plug-in HTTP caches (regenerable); no SQLite journals anywhere; no
     * DBs, DB backups or our backups in Databases/ */
    if (strcmp(slash + 1, "Caches") == 0 || strncmp(slash + 1, "Caches/", 7) == 0)
        return 0;
    int in_db = strncmp(slash + 1, "Databases/", 10) == 0;
    for (const char *c = slash + 1; *c;) {
        const char *e = strchr(c, '/');
        size_t len = e ? (size_t)(e - c) : strlen(c);
        if (has_suffix(c, len, "-wal") || has_suffix(c, len, "-shm") ||
            has_suffix(c, len, "-journal"))
            return 0;
        if (in_db && c != slash + 1) {
            if (has_suffix(c, len, ".db") || memmem(c, len, ".db-", 4))
                return 0;
            if (len == 17 && memcmp(c, "plexburst-backups", 17) == 0 && c == slash + 1 + 10)
                return 0;
        }
        if (!e)
            break;
        c = e + 1;
    }
    return 1;
}
/* ================================ small helpers ================================ */

static int pathcmp_collation(void *arg, int na, const void *a, int nb, const void *b)
{
    (void)arg;
    return pb_fp__pathcmp(a, (size_t)na, b, (size_t)nb);
}

int pb_fp__sql_fail(sqlite3 *db, int rc, const char *what, pb_error *err)
{
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
        return pb_error_setd(err, PB_EBUSY, rc,
                             "fingerprint cache: %s: another run holds the state DB", what);
    return pb_error_setd(err, PB_ESQLITE, rc, "fingerprint cache: %s: %s", what,
                         db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

/* ================================ the cache ================================ */

static int cache_open_once(sqlite3 **out, const char *path, const char *plex_real, int *rc_out,
                           pb_error *err)
{
    int rc;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int error = 0;

    *out = NULL;
    *rc_out = 0;
    if ((rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL)) !=
        SQLITE_OK)
        goto fail;
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, 500);
    if ((rc = sqlite3_create_collation_v2(db, "pbpath", SQLITE_UTF8, NULL, pathcmp_collation,
                                          NULL)) != SQLITE_OK ||
        (rc = sqlite3_exec(db,
                           "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                           "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT)"
                           " WITHOUT ROWID;"
                           "CREATE TABLE IF NOT EXISTS files(path TEXT PRIMARY KEY COLLATE pbpath,"
                           " size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
                           " ino INTEGER NOT NULL, hash BLOB NOT NULL) WITHOUT ROWID;",
                           NULL, NULL, NULL)) != SQLITE_OK)
        goto fail;
    if ((rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) != SQLITE_OK)
        goto fail;
    /* the cache belongs to one data directory and one hash format */
    if ((rc = sqlite3_prepare_v2(db,
                                 "SELECT (SELECT v FROM meta WHERE k='format') IS ?1"
                                 " AND (SELECT v FROM meta WHERE k='root') IS ?2",
                                 -1, &st, NULL)) != SQLITE_OK)
        goto fail;
    sqlite3_bind_text(st, 1, CACHE_FORMAT, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, plex_real, -1, SQLITE_STATIC);
    if ((rc = sqlite3_step(st)) != SQLITE_ROW)
        goto fail;
    int same = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (!same) {
        if ((rc = sqlite3_exec(db, "DELETE FROM files; DELETE FROM meta;", NULL, NULL, NULL)) !=
                SQLITE_OK ||
            (rc = sqlite3_prepare_v2(db, "INSERT INTO meta VALUES('format', ?1), ('root', ?2)", -1,
                                     &st, NULL)) != SQLITE_OK)
            goto fail;
        sqlite3_bind_text(st, 1, CACHE_FORMAT, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, plex_real, -1, SQLITE_STATIC);
        if ((rc = sqlite3_step(st)) != SQLITE_DONE)
            goto fail;
        sqlite3_finalize(st);
        st = NULL;
    }
    *out = db;
    return 0;
fail:
    *rc_out = rc;
    error = pb_fp__sql_fail(db, rc, "opening", err);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return error;
}

int pb_fp__cache_open(sqlite3 **out, const char *state_dir, const char *plex_real, pb_error *err)
{
    char path[PATH_MAX + 32];
    int rc = 0, error;
    pb_error first = PB_ERROR_INIT;

    snprintf(path, sizeof(path), "%s/fingerprint.db", state_dir);
    error = cache_open_once(out, path, plex_real, &rc, &first);
    if (error == 0)
        return 0;
    if ((rc & 0xff) != SQLITE_CORRUPT && (rc & 0xff) != SQLITE_NOTADB) {
        if (err && !err->code)
            *err = first;
        return error;
    }
    char side[PATH_MAX + 40];
    unlink(path);
    snprintf(side, sizeof(side), "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    unlink(side);
    return cache_open_once(out, path, plex_real, &rc, err);
}

/* ================================ the run ================================ */

void pb_fingerprint_options_init(pb_fingerprint_options *opts)
{
    pb_fingerprint_options def = PB_FINGERPRINT_OPTIONS_INIT;
    *opts = def;
}

/* The plan: a private temporary file in the state directory, unlinked at once. */
static int plan_open(FILE **out, const char *state_dir, pb_error *err)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/.plan.XXXXXX", state_dir);
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return pb_error_errno(err, "fingerprint: cannot create a plan file in %s", state_dir);
    unlink(path);
    if (!(*out = fdopen(fd, "w+b"))) {
        close(fd);
        return pb_error_errno(err, "fingerprint: fdopen failed");
    }
    setvbuf(*out, NULL, _IOFBF, PLAN_BUF);
    return 0;
}

/* Opens D and its state dir; fills the result's paths. */
static int run_open(pb_plexdir *d, int *root_fd, pb_fingerprint_result *out, const char *plex_dir,
                    const pb_fingerprint_options *opts, pb_error *err)
{
    int error;
    if ((error = pb_plexdir_open(d, plex_dir, err)) < 0)
        return error;
    if ((*root_fd = open(d->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return pb_error_errno(err, "cannot open the data directory %s", d->root);
    if ((error = pb_plexdir_state(d, opts ? opts->state_dir : NULL, 1, err)) < 0)
        return error;
    if ((size_t)snprintf(out->state_dir, sizeof(out->state_dir), "%s", d->state_dir) >=
            sizeof(out->state_dir) ||
        (size_t)snprintf(out->manifest_path, sizeof(out->manifest_path), "%s%s",
                         opts && opts->manifest_path ? opts->manifest_path : d->state_dir,
                         opts && opts->manifest_path ? "" : "/fingerprint.manifest") >=
            sizeof(out->manifest_path) - 8)
        return pb_error_set(err, PB_EINVALID, "fingerprint: manifest path too long");
    return 0;
}

int pb_fingerprint_run(pb_fingerprint_result *out, const char *plex_dir,
                       const pb_fingerprint_options *opts, pb_error *err)
{
    int error = 0, root_fd = -1, rc;
    pb_plexdir d;
    sqlite3 *db = NULL;
    FILE *plan = NULL;
    pb_fp_scan_out sc;
    int64_t t0 = pb_fp__now_ns(CLOCK_MONOTONIC), t1;

    memset(out, 0, sizeof(*out));
    memset(&d, 0, sizeof(d));
    memset(&sc, 0, sizeof(sc));
    if (opts && opts->version != PB_FINGERPRINT_OPTIONS_VERSION)
        return pb_error_set(err, PB_EINVALID, "fingerprint: options version %u unsupported",
                            opts->version);
    if ((error = run_open(&d, &root_fd, out, plex_dir, opts, err)) < 0 ||
        (error = pb_fp__cache_open(&db, d.state_dir, d.root, err)) < 0 ||
        (error = plan_open(&plan, d.state_dir, err)) < 0)
        goto done;
    /* pass 1: scan */
    if ((error = pb_fp__scan(&sc, db, plan, root_fd, opts, out, err)) < 0)
        goto done;
    if (fflush(plan) != 0 || fseeko(plan, 0, SEEK_SET) != 0) {
        error = pb_error_errno(err, "fingerprint: plan file");
        goto done;
    }
    t1 = pb_fp__now_ns(CLOCK_MONOTONIC);
    out->ms_scan = (uint64_t)((t1 - t0) / 1000000);
    /* pass 2: hash and emit; the cache is committed once the manifest is in place */
    if ((error = pb_fp__emit(&sc, db, plan, root_fd, opts, out, err)) < 0)
        goto done;
    if ((rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK) {
        error = pb_fp__sql_fail(db, rc, "committing", err);
        goto done;
    }
    int64_t t2 = pb_fp__now_ns(CLOCK_MONOTONIC);
    out->ms_hash = (uint64_t)((t2 - t1) / 1000000);
    out->ms_total = (uint64_t)((t2 - t0) / 1000000);
    if (opts && opts->progress) {
        pb_progress p = {"done", sc.bytes_done, sc.hash_bytes, sc.items_done, sc.hash_files, NULL};
        opts->progress(&p, opts->payload);
    }
done:
    if (plan)
        fclose(plan);
    if (db) {
        if (error)
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(db);
    }
    if (root_fd >= 0)
        close(root_fd);
    pb_plexdir_dispose(&d);
    return error;
}

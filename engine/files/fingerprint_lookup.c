/*
 * fingerprint_lookup.c: pb_fingerprint_lookup_*, the fingerprint of single paths of a data dir,
 * through the same cache and the same rules as a full run (fingerprint.c).
 * Role: the nightly sync's view of the home tree. The cloud lists what its Plex wrote; the home
 * looks up only those paths, so the cost of a night follows the change, not the library (a full
 * walk of a large library is over a million stat calls). Prerequisites: the cache (fingerprint.c),
 * openat2 when available.
 *
 * A path is answered as the full walk would record it: outside the synced tree, or reached
 * through a symlink, or a directory or a special file, it holds nothing; a symlink gives the hash
 * of its target text; a regular file gives its cached hash when the cache row's size, mtime_ns and
 * inode match, else it is read and hashed and its row rewritten (a racy row, modified within
 * RACY_NS of the read, is stored as never matching). Rows of files not asked about are neither
 * read nor removed: the next full run prunes them. All writes are in the one transaction the
 * session opened, committed by pb_fingerprint_lookup_close.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fingerprint_int.h"
#include "plexdir.h"

#define LOOKUP_BUF (1u << 20)

struct pb_fingerprint_lookup {
    sqlite3 *db;
    sqlite3_stmt *get, *put;
    int root_fd;
    uint8_t *buf;
    XXH3_state_t *xx;
    pb_fingerprint_lookup_stats st;
};

static void lookup_free(pb_fingerprint_lookup *l)
{
    sqlite3_finalize(l->get);
    sqlite3_finalize(l->put);
    if (l->db) {
        sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(l->db);
    }
    if (l->root_fd >= 0)
        close(l->root_fd);
    XXH3_freeState(l->xx);
    free(l->buf);
    free(l);
}

int pb_fingerprint_lookup_open(pb_fingerprint_lookup **out, const char *plex_dir,
                               const char *state_dir, pb_error *err)
{
    int error = 0, rc;
    pb_plexdir d;
    pb_fingerprint_lookup *l = calloc(1, sizeof(*l));
    memset(&d, 0, sizeof(d));
    *out = NULL;
    if (!l)
        return pb_error_set(err, PB_ENOMEM, "fingerprint: out of memory");
    l->root_fd = -1;
    if (!(l->buf = malloc(LOOKUP_BUF)) || !(l->xx = XXH3_createState())) {
        error = pb_error_set(err, PB_ENOMEM, "fingerprint: out of memory");
        goto done;
    }
    if ((error = pb_plexdir_open(&d, plex_dir, err)) < 0 ||
        (error = pb_plexdir_state(&d, state_dir, 1, err)) < 0)
        goto done;
    if ((l->root_fd = open(d.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        error = pb_error_errno(err, "cannot open the data directory %s", d.root);
        goto done;
    }
    if ((error = pb_fp__cache_open(&l->db, d.state_dir, d.root, err)) < 0)
        goto done;
    if ((rc = sqlite3_prepare_v2(l->db,
                                 "SELECT size, mtime_ns, ino, hash FROM files WHERE path = ?1", -1,
                                 &l->get, NULL)) != SQLITE_OK ||
        (rc = sqlite3_prepare_v2(l->db, "INSERT OR REPLACE INTO files VALUES(?1, ?2, ?3, ?4, ?5)",
                                 -1, &l->put, NULL)) != SQLITE_OK)
        error = pb_fp__sql_fail(l->db, rc, "preparing", err);
done:
    pb_plexdir_dispose(&d);
    if (error) {
        lookup_free(l);
        return error;
    }
    *out = l;
    return 0;
}

const pb_fingerprint_lookup_stats *pb_fingerprint_lookup_stats_get(const pb_fingerprint_lookup *l)
{
    return &l->st;
}

/* The cached hash of `rel` when its row still describes the file (1), else 0. */
static int cache_get(pb_fingerprint_lookup *l, const char *rel, const struct stat *st,
                     uint8_t hash[PB_HASH_LEN], pb_error *err)
{
    int rc, hit = 0;
    sqlite3_bind_text(l->get, 1, rel, -1, SQLITE_STATIC);
    if ((rc = sqlite3_step(l->get)) == SQLITE_ROW) {
        hit = sqlite3_column_int64(l->get, 0) == (int64_t)st->st_size &&
              sqlite3_column_int64(l->get, 1) == pb_fp__mtime_ns(st) &&
              (uint64_t)sqlite3_column_int64(l->get, 2) == (uint64_t)st->st_ino &&
              sqlite3_column_bytes(l->get, 3) == PB_HASH_LEN;
        if (hit)
            memcpy(hash, sqlite3_column_blob(l->get, 3), PB_HASH_LEN);
    }
    sqlite3_reset(l->get);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return pb_fp__sql_fail(l->db, rc, "reading", err);
    return hit;
}

/* 1 when every component of `rel` is a name (no empty, "." or ".." component, no leading '/'):
 * the walk never records another path, and a path from elsewhere must not climb out. */
static int plain_path(const char *rel)
{
    for (const char *c = rel;;) {
        const char *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return 0;
        if (!e)
            return 1;
        c = e + 1;
    }
}

/* Reads and hashes `rel`, rewriting its cache row; 1 when it is no regular file any more. */
static int hash_file(pb_fingerprint_lookup *l, const char *rel, pb_fingerprint_entry *out,
                     pb_error *err)
{
    int error = 0, rc, fd = pb_fp__open_beneath(l->root_fd, rel);
    struct stat st;
    uint64_t total = 0;
    if (fd < 0) {
        if (errno == ENOENT || errno == ELOOP || errno == ENOTDIR || errno == EXDEV)
            return 1;
        return pb_error_errno(err, "fingerprint: cannot open %s", rel);
    }
    if (fstat(fd, &st) < 0) {
        error = pb_error_errno(err, "fingerprint: cannot stat %s", rel);
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        error = 1;
        goto done;
    }
    if ((uint64_t)st.st_size > LOOKUP_BUF)
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    XXH3_128bits_reset(l->xx);
    for (;;) {
        ssize_t n = read(fd, l->buf, LOOKUP_BUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            error = pb_error_errno(err, "fingerprint: cannot read %s", rel);
            goto done;
        }
        if (n == 0)
            break;
        XXH3_128bits_update(l->xx, l->buf, (size_t)n);
        total += (uint64_t)n;
    }
    pb_fp__dir_digest(out->hash, l->xx); /* the canonical bytes of the digest */
    int64_t read_ns = pb_fp__now_ns(CLOCK_REALTIME), mtime = pb_fp__mtime_ns(&st);
    out->type = PB_ENTRY_FILE;
    out->mode = st.st_mode & 07777;
    out->size = total;
    l->st.hashed++;
    l->st.hashed_bytes += total;
    sqlite3_bind_text(l->put, 1, rel, -1, SQLITE_STATIC);
    sqlite3_bind_int64(l->put, 2,
                       mtime > read_ns - RACY_NS || total != (uint64_t)st.st_size ? -1
                                                                                  : (int64_t)total);
    sqlite3_bind_int64(l->put, 3, mtime);
    sqlite3_bind_int64(l->put, 4, (int64_t)st.st_ino);
    sqlite3_bind_blob(l->put, 5, out->hash, PB_HASH_LEN, SQLITE_STATIC);
    rc = sqlite3_step(l->put);
    sqlite3_reset(l->put);
    if (rc != SQLITE_DONE)
        error = pb_fp__sql_fail(l->db, rc, "writing", err);
done:
    close(fd);
    return error;
}

int pb_fingerprint_lookup_get(pb_fingerprint_lookup *l, const char *relpath,
                              pb_fingerprint_entry *out, pb_error *err)
{
    int error = 0, dfd = -1;
    char dir[PATH_MAX];
    const char *name = relpath;
    struct stat st;
    memset(out, 0, sizeof(*out));
    l->st.looked_up++;
    size_t n = strlen(relpath);
    if (!n || n >= sizeof(dir) || !plain_path(relpath) || !pb_fingerprint_synced(relpath))
        return 0;
    /* the parent, reached without following a symlink (the walk records a symlink on the way
     * as a symlink and never descends into it) */
    const char *slash = strrchr(relpath, '/');
    if (slash) {
        memcpy(dir, relpath, (size_t)(slash - relpath));
        dir[slash - relpath] = '\0';
        name = slash + 1;
        if ((dfd = pb_fp__open_beneath(l->root_fd, dir)) < 0) {
            if (errno == ENOENT || errno == ELOOP || errno == ENOTDIR || errno == EXDEV)
                return 0;
            return pb_error_errno(err, "fingerprint: cannot open directory %s", dir);
        }
    }
    if (fstatat(dfd >= 0 ? dfd : l->root_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno != ENOENT && errno != ENOTDIR)
            error = pb_error_errno(err, "fingerprint: cannot stat %s", relpath);
        goto done;
    }
    if (S_ISLNK(st.st_mode)) {
        ssize_t len = readlinkat(dfd >= 0 ? dfd : l->root_fd, name, (char *)l->buf, 4096);
        if (len <= 0 || len > 4095)
            goto done; /* vanished, or a target the walk refuses */
        XXH128_canonical_t c;
        XXH128_canonicalFromHash(&c, XXH3_128bits(l->buf, (size_t)len));
        memcpy(out->hash, c.digest, PB_HASH_LEN);
        out->type = PB_ENTRY_SYMLINK;
        out->mode = st.st_mode & 07777;
        out->size = (uint64_t)len;
    } else if (S_ISREG(st.st_mode)) {
        int hit = cache_get(l, relpath, &st, out->hash, err);
        if (hit < 0) {
            error = hit;
            goto done;
        }
        if (hit) {
            out->type = PB_ENTRY_FILE;
            out->mode = st.st_mode & 07777;
            out->size = (uint64_t)st.st_size;
            l->st.cached++;
        } else if ((error = hash_file(l, relpath, out, err)) == 1) {
            error = 0; /* gone or replaced since the stat: nothing there */
        }
    }
    if (out->type)
        l->st.found++;
done:
    if (dfd >= 0)
        close(dfd);
    return error;
}

int pb_fingerprint_lookup_close(pb_fingerprint_lookup *l, pb_error *err)
{
    int error = 0, rc;
    if (!l)
        return 0;
    sqlite3_finalize(l->get);
    sqlite3_finalize(l->put);
    l->get = l->put = NULL;
    if ((rc = sqlite3_exec(l->db, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK)
        error = pb_fp__sql_fail(l->db, rc, "committing", err);
    else {
        sqlite3_close(l->db);
        l->db = NULL;
    }
    lookup_free(l);
    return error;
}

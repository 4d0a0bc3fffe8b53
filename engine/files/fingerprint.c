/*
 * fingerprint.c: fingerprints of a Plex data directory: the stat walk, the persistent hash
 * cache, content hashing and the manifest (include/plexburst/fingerprint.h; the manifest format
 * is specified atop fingerprint_manifest.c and in docs/manifest.md).
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
 * links are seen), SQLite's page cache; nothing grows with the number of files.
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
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/openat2.h>
#endif

#include "fingerprint_int.h"
#include "statedir.h"

#define HASH_BUF      (1u << 20)
#define PLAN_BUF      (1u << 20)
#define CACHE_FORMAT  "pbfp1 xxh3-128"
#define RACY_NS       100000000LL
#define SCAN_PROGRESS 4096 /* entries between scan progress calls */

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
    /* files an apply is staging are never part of the tree (engine/apply.c) */
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

static int64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t st_mtime_ns(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
}

static int pathcmp_collation(void *arg, int na, const void *a, int nb, const void *b)
{
    (void)arg;
    return pb_fp__pathcmp(a, (size_t)na, b, (size_t)nb);
}

static int sql_fail(sqlite3 *db, int rc, const char *what, pb_error *err)
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
    error = sql_fail(db, rc, "opening", err);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return error;
}

/* Opens the cache in a write transaction; a corrupt cache file is a cache miss, not an error:
 * it is removed and rebuilt. */
static int cache_open(sqlite3 **out, const char *state_dir, const char *plex_real, pb_error *err)
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

/* ================================ the plan file ================================ */

/* One entry of the walk, written by the scan and read back by the emitter (native layout, a
 * private temporary file). Followed by path_len path bytes and extra_len extra bytes. */
typedef struct plan_rec {
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
} plan_rec;

static int plan_put(FILE *f, const plan_rec *r, const char *path, const char *extra, pb_error *err)
{
    if (fwrite(r, sizeof(*r), 1, f) != 1 || (r->path_len && fwrite(path, r->path_len, 1, f) != 1) ||
        (r->extra_len && fwrite(extra, r->extra_len, 1, f) != 1))
        return pb_error_errno(err, "fingerprint: writing the plan file failed");
    return 0;
}

/* ================================ pass 1: scan ================================ */

typedef struct scan {
    sqlite3 *db;
    sqlite3_stmt *cur; /* the cache in walk order */
    int cur_row;       /* cur holds a row */
    FILE *plan;
    int rehash;
    char path[PATH_MAX];
    size_t plen;
    char link[PATH_MAX];
    pb_fingerprint_result *res;
    uint64_t entries, hash_bytes, hash_files;
    const pb_fingerprint_options *opts;
    pb_error *err;
} scan;

static int cur_step(scan *s)
{
    int rc = sqlite3_step(s->cur);
    s->cur_row = rc == SQLITE_ROW;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sql_fail(s->db, rc, "reading", s->err);
    return 0;
}

/* Marks cache rows before `path` (or all remaining with path NULL) as stale. */
static int cache_pass(scan *s, const char *path, size_t n)
{
    int error;
    while (s->cur_row) {
        const char *cp = (const char *)sqlite3_column_text(s->cur, 0);
        int cn = sqlite3_column_bytes(s->cur, 0);
        if (path && pb_fp__pathcmp(cp, (size_t)cn, path, n) >= 0)
            break;
        plan_rec r;
        memset(&r, 0, sizeof(r));
        r.kind = 'X';
        if (cn > PATH_MAX - 1)
            cn = PATH_MAX - 1;
        r.path_len = (uint16_t)cn;
        if ((error = plan_put(s->plan, &r, cp, NULL, s->err)) < 0 || (error = cur_step(s)) < 0)
            return error;
    }
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int scan_progress(scan *s)
{
    if (!s->opts || !s->opts->progress || s->entries % SCAN_PROGRESS)
        return 0;
    pb_progress p = {"scan", 0, 0, s->entries, 0, s->path};
    if (s->opts->progress(&p, s->opts->payload))
        return pb_error_set(s->err, PB_ECANCELLED, "fingerprint: cancelled");
    return 0;
}

static int scan_dir(scan *s, DIR *d);

static int scan_entry(scan *s, int dfd, const char *name)
{
    int error = 0;
    struct stat st;
    plan_rec r;
    size_t nlen = strlen(name), base = s->plen;

    if (base + (base ? 1 : 0) + nlen > 4095)
        return pb_error_set(s->err, PB_ERROR,
                            "fingerprint: path longer than 4095 bytes: %.200s... (%zu + %zu bytes)",
                            s->path, base, nlen);
    if (base)
        s->path[s->plen++] = '/';
    memcpy(s->path + s->plen, name, nlen + 1);
    s->plen += nlen;
    if (!pb_fingerprint_synced(s->path)) {
        s->res->excluded++;
        goto done;
    }
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT) { /* removed since readdir */
            s->res->vanished++;
            goto done;
        }
        error = pb_error_errno(s->err, "fingerprint: cannot stat %s", s->path);
        goto done;
    }
    memset(&r, 0, sizeof(r));
    r.mode = st.st_mode & 07777;
    r.mtime_ns = st_mtime_ns(&st);
    r.path_len = (uint16_t)s->plen;
    if (S_ISDIR(st.st_mode)) {
        int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        DIR *sub;
        if (fd < 0) {
            if (errno == ENOENT) {
                s->res->vanished++;
                goto done;
            }
            error = pb_error_errno(s->err, "fingerprint: cannot open directory %s", s->path);
            goto done;
        }
        if (!(sub = fdopendir(fd))) {
            close(fd);
            error = pb_error_errno(s->err, "fingerprint: cannot read directory %s", s->path);
            goto done;
        }
        r.kind = 'D';
        s->res->dirs++;
        s->entries++;
        if ((error = plan_put(s->plan, &r, s->path, NULL, s->err)) == 0)
            error = scan_dir(s, sub);
        closedir(sub);
        if (error == 0) {
            plan_rec e;
            memset(&e, 0, sizeof(e));
            e.kind = 'E';
            error = plan_put(s->plan, &e, NULL, NULL, s->err);
        }
    } else if (S_ISREG(st.st_mode)) {
        r.kind = 'F';
        r.size = (uint64_t)st.st_size;
        r.ino = (uint64_t)st.st_ino;
        r.dev = (uint64_t)st.st_dev;
        r.nlink = (uint32_t)st.st_nlink;
        if ((error = cache_pass(s, s->path, s->plen)) < 0)
            goto done;
        if (s->cur_row) {
            const char *cp = (const char *)sqlite3_column_text(s->cur, 0);
            int cn = sqlite3_column_bytes(s->cur, 0);
            if (pb_fp__pathcmp(cp, (size_t)cn, s->path, s->plen) == 0) {
                if (!s->rehash && sqlite3_column_int64(s->cur, 1) == (int64_t)r.size &&
                    sqlite3_column_int64(s->cur, 2) == r.mtime_ns &&
                    (uint64_t)sqlite3_column_int64(s->cur, 3) == r.ino &&
                    sqlite3_column_bytes(s->cur, 4) == PB_HASH_LEN) {
                    memcpy(r.hash, sqlite3_column_blob(s->cur, 4), PB_HASH_LEN);
                    r.cached = 1;
                }
                if ((error = cur_step(s)) < 0)
                    goto done;
            }
        }
        if (!r.cached) {
            s->hash_bytes += r.size;
            s->hash_files++;
        }
        s->res->files++;
        s->res->bytes += r.size;
        s->entries++;
        error = plan_put(s->plan, &r, s->path, NULL, s->err);
    } else if (S_ISLNK(st.st_mode)) {
        ssize_t n = readlinkat(dfd, name, s->link, sizeof(s->link));
        if (n < 0) {
            if (errno == ENOENT) {
                s->res->vanished++;
                goto done;
            }
            error = pb_error_errno(s->err, "fingerprint: cannot read symlink %s", s->path);
            goto done;
        }
        if (n == 0 || n > 4095) {
            error = pb_error_set(s->err, PB_ERROR,
                                 "fingerprint: symlink target of %s is empty or longer than "
                                 "4095 bytes",
                                 s->path);
            goto done;
        }
        r.kind = 'L';
        r.size = (uint64_t)n;
        r.extra_len = (uint16_t)n;
        s->res->symlinks++;
        s->entries++;
        error = plan_put(s->plan, &r, s->path, s->link, s->err);
    } else {
        s->res->skipped++; /* socket, FIFO, device */
    }
    if (error == 0)
        error = scan_progress(s);
done:
    s->plen = base;
    s->path[base] = '\0';
    return error;
}

/* Scans the open directory `d` (its path in s->path): names sorted, then each entry. */
static int scan_dir(scan *s, DIR *d)
{
    int error = 0;
    char *arena = NULL, **names = NULL;
    size_t alen = 0, acap = 0, count = 0, ncap = 0;
    struct dirent *de;

    errno = 0;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        if (n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0')))
            continue;
        size_t len = strlen(n) + 1;
        if (alen + len > acap) {
            size_t nc = acap ? acap * 2 : 4096;
            while (nc < alen + len)
                nc *= 2;
            char *na = realloc(arena, nc);
            if (!na)
                goto nomem;
            arena = na;
            acap = nc;
        }
        memcpy(arena + alen, n, len);
        if (count == ncap) {
            size_t nc = ncap ? ncap * 2 : 64;
            char **nn = realloc(names, nc * sizeof(*nn));
            if (!nn)
                goto nomem;
            names = nn;
            ncap = nc;
        }
        names[count++] = (char *)(uintptr_t)alen; /* offsets until the arena stops moving */
        alen += len;
        errno = 0;
    }
    if (errno) {
        error = pb_error_errno(s->err, "fingerprint: cannot list %s", s->plen ? s->path : ".");
        goto done;
    }
    for (size_t i = 0; i < count; i++)
        names[i] = arena + (uintptr_t)names[i];
    if (count)
        qsort(names, count, sizeof(*names), name_cmp);
    for (size_t i = 0; i < count && error == 0; i++)
        error = scan_entry(s, dirfd(d), names[i]);
    goto done;
nomem:
    error = pb_error_set(s->err, PB_ENOMEM, "fingerprint: out of memory");
done:
    free(names);
    free(arena);
    return error;
}

/* ================================ hard-link groups ================================ */

typedef struct link_slot {
    uint64_t dev, ino;
    uint32_t remaining; /* links not seen yet; the slot is freed at 0 */
    int used, followers;
    char *leader;
    uint8_t hash[PB_HASH_LEN];
} link_slot;

typedef struct link_map {
    link_slot *slots;
    size_t cap, used; /* cap is a power of two */
} link_map;

static size_t link_home(const link_map *m, uint64_t dev, uint64_t ino)
{
    uint64_t h = (ino * 0x9E3779B97F4A7C15ull) ^ (dev * 0xC2B2AE3D27D4EB4Full);
    return (size_t)(h ^ (h >> 29)) & (m->cap - 1);
}

static link_slot *link_find(link_map *m, uint64_t dev, uint64_t ino)
{
    if (!m->cap)
        return NULL;
    for (size_t i = link_home(m, dev, ino);; i = (i + 1) & (m->cap - 1)) {
        link_slot *s = &m->slots[i];
        if (!s->used)
            return NULL;
        if (s->dev == dev && s->ino == ino)
            return s;
    }
}

static int link_grow(link_map *m)
{
    link_map n = {calloc(m->cap ? m->cap * 2 : 256, sizeof(link_slot)), m->cap ? m->cap * 2 : 256,
                  0};
    if (!n.slots)
        return -1;
    for (size_t i = 0; i < m->cap; i++) {
        link_slot *s = &m->slots[i];
        if (!s->used)
            continue;
        size_t j = link_home(&n, s->dev, s->ino);
        while (n.slots[j].used)
            j = (j + 1) & (n.cap - 1);
        n.slots[j] = *s;
        n.used++;
    }
    free(m->slots);
    *m = n;
    return 0;
}

static link_slot *link_add(link_map *m, uint64_t dev, uint64_t ino)
{
    if ((m->used + 1) * 2 > m->cap && link_grow(m) < 0)
        return NULL;
    size_t i = link_home(m, dev, ino);
    while (m->slots[i].used)
        i = (i + 1) & (m->cap - 1);
    link_slot *s = &m->slots[i];
    memset(s, 0, sizeof(*s));
    s->used = 1;
    s->dev = dev;
    s->ino = ino;
    m->used++;
    return s;
}

/* Removes a slot with backward-shift deletion (no tombstones). */
static void link_del(link_map *m, link_slot *s)
{
    size_t i = (size_t)(s - m->slots);
    free(s->leader);
    for (;;) {
        m->slots[i].used = 0;
        size_t j = i;
        for (;;) {
            j = (j + 1) & (m->cap - 1);
            if (!m->slots[j].used)
                goto out;
            size_t h = link_home(m, m->slots[j].dev, m->slots[j].ino);
            /* move j into the hole at i unless its home lies cyclically in (i, j] */
            if (i <= j ? (i < h && h <= j) : (i < h || h <= j))
                continue;
            m->slots[i] = m->slots[j];
            i = j;
            break;
        }
    }
out:
    m->used--;
}

static void link_free(link_map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].used)
            free(m->slots[i].leader);
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

/* ================================ pass 2: emit ================================ */

typedef struct emit_level {
    uint64_t off;    /* the directory's record */
    uint64_t count0; /* records written before its subtree */
    size_t path_len;
    uint32_t mode;
    XXH3_state_t *st;
} emit_level;

typedef struct emit {
    int root_fd;
    pb_fp_writer *w;
    sqlite3 *db;
    sqlite3_stmt *put, *del;
    unsigned char *buf;
    XXH3_state_t *xx;
    link_map links;
    emit_level *stack;
    int depth, cap;
    XXH3_state_t *root;
    char dir[PATH_MAX]; /* path of the innermost open directory */
    uint64_t records;
    pb_progress prog;
    const pb_fingerprint_options *opts;
    pb_fingerprint_result *res;
    pb_error *err;
} emit;

static int open_beneath(int root_fd, const char *rel)
{
#if defined(__linux__) && defined(SYS_openat2)
    static int no_openat2;
    if (!no_openat2) {
        struct open_how how;
        memset(&how, 0, sizeof(how));
        how.flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
        long fd = syscall(SYS_openat2, root_fd, rel, &how, sizeof(how));
        if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
            return (int)fd;
        no_openat2 = 1; /* old kernel or a seccomp filter: fall back */
    }
#endif
    return openat(root_fd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
}

static int hash_progress(emit *e, const char *path)
{
    if (!e->opts || !e->opts->progress)
        return 0;
    e->prog.path = path;
    if (e->opts->progress(&e->prog, e->opts->payload))
        return pb_error_set(e->err, PB_ECANCELLED, "fingerprint: cancelled");
    return 0;
}

/* Reads and hashes the file `rel`; updates r (size, mtime, ino) from the open file. Returns 1
 * when it vanished (or stopped being a regular file) since the scan. */
static int hash_file(emit *e, plan_rec *r, const char *rel)
{
    int error = 0, fd = open_beneath(e->root_fd, rel);
    struct stat st;
    uint64_t total = 0, base = e->prog.bytes_done;

    if (fd < 0) {
        if (errno == ENOENT || errno == ELOOP || errno == ENOTDIR || errno == EXDEV)
            return 1;
        return pb_error_errno(e->err, "fingerprint: cannot open %s", rel);
    }
    if (fstat(fd, &st) < 0) {
        error = pb_error_errno(e->err, "fingerprint: cannot stat %s", rel);
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        error = 1;
        goto done;
    }
    r->size = (uint64_t)st.st_size;
    r->mtime_ns = st_mtime_ns(&st);
    r->ino = (uint64_t)st.st_ino;
    r->dev = (uint64_t)st.st_dev;
    r->mode = st.st_mode & 07777;
    if (r->size > HASH_BUF)
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    int streaming = 0;
    for (;;) {
        ssize_t n = read(fd, e->buf, HASH_BUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            error = pb_error_errno(e->err, "fingerprint: cannot read %s", rel);
            goto done;
        }
        if (!streaming && total == 0 && (uint64_t)n == r->size && n < (ssize_t)HASH_BUF) {
            /* the whole file in one read: one-shot hash, no EOF probe */
            XXH128_canonical_t c;
            XXH128_canonicalFromHash(&c, XXH3_128bits(e->buf, (size_t)n));
            memcpy(r->hash, c.digest, PB_HASH_LEN);
            total = (uint64_t)n;
            break;
        }
        if (!streaming) {
            XXH3_128bits_reset(e->xx);
            streaming = 1;
        }
        if (n == 0) {
            pb_fp__dir_digest(r->hash, e->xx);
            break;
        }
        XXH3_128bits_update(e->xx, e->buf, (size_t)n);
        total += (uint64_t)n;
        if (total % (8u * HASH_BUF) == 0) {
            e->prog.bytes_done = base + (total < r->size ? total : r->size);
            if ((error = hash_progress(e, rel)) < 0)
                goto done;
        }
    }
    r->size = total; /* what was hashed */
    e->res->hashed++;
    e->res->hashed_bytes += total;
done:
    close(fd);
    return error;
}

static XXH3_state_t *parent_state(emit *e)
{
    return e->depth ? e->stack[e->depth - 1].st : e->root;
}

static const char *child_name(emit *e, const char *path, size_t *len, size_t plen)
{
    size_t parent = e->depth ? e->stack[e->depth - 1].path_len : 0;
    size_t skip = parent ? parent + 1 : 0;
    *len = plen - skip;
    return path + skip;
}

static int cache_put(emit *e, const plan_rec *r, const char *path, int64_t read_ns)
{
    int rc;
    /* racy: could change again within the same mtime tick; store it as never matching */
    int64_t size = r->mtime_ns > read_ns - RACY_NS ? -1 : (int64_t)r->size;
    sqlite3_bind_text(e->put, 1, path, r->path_len, SQLITE_STATIC);
    sqlite3_bind_int64(e->put, 2, size);
    sqlite3_bind_int64(e->put, 3, r->mtime_ns);
    sqlite3_bind_int64(e->put, 4, (int64_t)r->ino);
    sqlite3_bind_blob(e->put, 5, r->hash, PB_HASH_LEN, SQLITE_STATIC);
    rc = sqlite3_step(e->put);
    sqlite3_reset(e->put);
    if (rc != SQLITE_DONE)
        return sql_fail(e->db, rc, "writing", e->err);
    return 0;
}

static int emit_file(emit *e, plan_rec *r, const char *path)
{
    int error = 0, flags = 0;
    const char *leader = NULL;
    link_slot *ls = NULL;
    int64_t read_ns = 0;
    uint64_t planned = r->size;

    if (r->nlink > 1 && (ls = link_find(&e->links, r->dev, r->ino))) {
        /* a later path of a known inode: the leader's hash, no read */
        memcpy(r->hash, ls->hash, PB_HASH_LEN);
        flags = PB_FP_FOLLOWER | PB_FP_MULTI;
        leader = ls->leader;
        if (!ls->followers++)
            e->res->hard_link_groups++;
        e->res->hard_links++;
        e->res->cached++;
    } else if (r->cached) {
        e->res->cached++;
    } else {
        read_ns = now_ns(CLOCK_REALTIME);
        if ((error = hash_file(e, r, path)) != 0) {
            if (error == 1) { /* vanished: leave it out */
                e->res->vanished++;
                e->res->files--;
                e->res->bytes -= planned;
                e->prog.bytes_done += planned;
                return 0;
            }
            return error;
        }
        if (r->size != planned) /* changed since the scan */
            e->res->bytes += r->size - planned;
    }
    if (!r->cached) {
        if (!read_ns)
            read_ns = now_ns(CLOCK_REALTIME);
        if ((error = cache_put(e, r, path, read_ns)) < 0)
            return error;
        e->prog.items_done++;
        e->prog.bytes_done = e->prog.bytes_done + planned;
        if (e->prog.bytes_done > e->prog.bytes_total)
            e->prog.bytes_done = e->prog.bytes_total;
        if ((error = hash_progress(e, path)) < 0)
            return error;
    }
    if (r->nlink > 1 && !ls) {
        flags = PB_FP_MULTI;
        if (!(ls = link_add(&e->links, r->dev, r->ino)) ||
            !(ls->leader = strndup(path, r->path_len)))
            return pb_error_set(e->err, PB_ENOMEM, "fingerprint: out of memory");
        memcpy(ls->hash, r->hash, PB_HASH_LEN);
        ls->remaining = r->nlink - 1;
        ls = NULL; /* not a follower */
    }
    if ((error = pb_fp__writer_add(e->w, NULL, PB_ENTRY_FILE, flags, path, r->path_len, r->mode,
                                   r->size, r->mtime_ns, r->hash, leader,
                                   leader ? strlen(leader) : 0, e->err)) < 0)
        return error;
    e->records++;
    size_t nlen;
    const char *name = child_name(e, path, &nlen, r->path_len);
    pb_fp__dir_feed(parent_state(e), name, nlen, PB_ENTRY_FILE, r->mode, r->hash);
    if (ls && --ls->remaining == 0)
        link_del(&e->links, ls);
    return 0;
}

static int emit_all(emit *e, FILE *plan)
{
    int error = 0, rc;
    plan_rec r;
    char path[PATH_MAX], extra[PATH_MAX];

    while (fread(&r, sizeof(r), 1, plan) == 1) {
        if ((r.path_len && fread(path, r.path_len, 1, plan) != 1) ||
            (r.extra_len && fread(extra, r.extra_len, 1, plan) != 1))
            return pb_error_set(e->err, PB_EIO, "fingerprint: plan file truncated");
        path[r.path_len] = '\0';
        extra[r.extra_len] = '\0';
        switch (r.kind) {
        case 'X':
            sqlite3_bind_text(e->del, 1, path, r.path_len, SQLITE_STATIC);
            rc = sqlite3_step(e->del);
            sqlite3_reset(e->del);
            if (rc != SQLITE_DONE)
                return sql_fail(e->db, rc, "deleting", e->err);
            break;
        case 'F':
            if ((error = emit_file(e, &r, path)) < 0)
                return error;
            break;
        case 'L': {
            XXH128_canonical_t c;
            XXH128_canonicalFromHash(&c, XXH3_128bits(extra, r.extra_len));
            if ((error = pb_fp__writer_add(e->w, NULL, PB_ENTRY_SYMLINK, 0, path, r.path_len,
                                           r.mode, r.size, r.mtime_ns, c.digest, extra, r.extra_len,
                                           e->err)) < 0)
                return error;
            e->records++;
            size_t nlen;
            const char *name = child_name(e, path, &nlen, r.path_len);
            pb_fp__dir_feed(parent_state(e), name, nlen, PB_ENTRY_SYMLINK, r.mode, c.digest);
            break;
        }
        case 'D': {
            if (e->depth == e->cap) {
                int nc = e->cap ? e->cap * 2 : 16;
                emit_level *ns = realloc(e->stack, (size_t)nc * sizeof(*ns));
                if (!ns)
                    return pb_error_set(e->err, PB_ENOMEM, "fingerprint: out of memory");
                memset(ns + e->cap, 0, (size_t)(nc - e->cap) * sizeof(*ns));
                e->stack = ns;
                e->cap = nc;
            }
            emit_level *l = &e->stack[e->depth];
            if (!l->st && !(l->st = XXH3_createState()))
                return pb_error_set(e->err, PB_ENOMEM, "fingerprint: out of memory");
            if ((error = pb_fp__writer_add(e->w, &l->off, PB_ENTRY_DIR, 0, path, r.path_len, r.mode,
                                           0, r.mtime_ns, NULL, NULL, 0, e->err)) < 0)
                return error;
            e->records++;
            XXH3_128bits_reset(l->st);
            l->count0 = e->records;
            l->path_len = r.path_len;
            l->mode = r.mode;
            memcpy(e->dir, path, r.path_len + 1);
            e->depth++;
            break;
        }
        case 'E': {
            uint8_t h[PB_HASH_LEN];
            emit_level *l = &e->stack[--e->depth];
            pb_fp__dir_digest(h, l->st);
            if ((error = pb_fp__writer_patch_dir(e->w, l->off, e->records - l->count0, h,
                                                 pb_fp__writer_offset(e->w), e->err)) < 0)
                return error;
            size_t nlen;
            const char *name = child_name(e, e->dir, &nlen, l->path_len);
            pb_fp__dir_feed(parent_state(e), name, nlen, PB_ENTRY_DIR, l->mode, h);
            e->dir[e->depth ? e->stack[e->depth - 1].path_len : 0] = '\0';
            break;
        }
        default:
            return pb_error_set(e->err, PB_ERROR, "fingerprint: bad plan record");
        }
    }
    if (ferror(plan))
        return pb_error_errno(e->err, "fingerprint: reading the plan file failed");
    return 0;
}

/* ================================ the run ================================ */

int pb_fingerprint_run(pb_fingerprint_result *out, const char *plex_dir,
                       const pb_fingerprint_options *opts, pb_error *err)
{
    int error = 0, root_fd = -1, rc;
    char plex_real[PATH_MAX], plan_path[PATH_MAX + 32];
    sqlite3 *db = NULL;
    FILE *plan = NULL;
    DIR *top = NULL;
    scan s;
    emit e;
    int64_t t0 = now_ns(CLOCK_MONOTONIC), t1;

    memset(out, 0, sizeof(*out));
    memset(&s, 0, sizeof(s));
    memset(&e, 0, sizeof(e));
    e.root_fd = -1;
    if (opts && opts->version != PB_FINGERPRINT_OPTIONS_VERSION)
        return pb_error_set(err, PB_EINVALID, "fingerprint: options version %u unsupported",
                            opts->version);
    if (!realpath(plex_dir, plex_real)) {
        error = errno == ENOENT ? pb_error_setd(err, PB_ENOTFOUND, ENOENT,
                                                "data directory %s does not exist", plex_dir)
                                : pb_error_errno(err, "cannot resolve %s", plex_dir);
        goto done;
    }
    if ((root_fd = open(plex_real, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        error = pb_error_errno(err, "cannot open the data directory %s", plex_real);
        goto done;
    }
    if ((error = pb_statedir__ensure(out->state_dir, sizeof(out->state_dir),
                                     opts ? opts->state_dir : NULL, plex_real, err)) < 0)
        goto done;
    if ((size_t)snprintf(out->manifest_path, sizeof(out->manifest_path), "%s%s",
                         opts && opts->manifest_path ? opts->manifest_path : out->state_dir,
                         opts && opts->manifest_path ? "" : "/fingerprint.manifest") >=
        sizeof(out->manifest_path) - 8) {
        error = pb_error_set(err, PB_EINVALID, "fingerprint: manifest path too long");
        goto done;
    }
    if ((error = cache_open(&db, out->state_dir, plex_real, err)) < 0)
        goto done;

    /* the plan: a private temporary file in the state directory */
    snprintf(plan_path, sizeof(plan_path), "%s/.plan.XXXXXX", out->state_dir);
    int pfd = mkostemp(plan_path, O_CLOEXEC);
    if (pfd < 0) {
        error = pb_error_errno(err, "fingerprint: cannot create a plan file in %s", out->state_dir);
        goto done;
    }
    unlink(plan_path);
    if (!(plan = fdopen(pfd, "w+b"))) {
        close(pfd);
        error = pb_error_errno(err, "fingerprint: fdopen failed");
        goto done;
    }
    setvbuf(plan, NULL, _IOFBF, PLAN_BUF);

    /* pass 1: scan */
    s.db = db;
    s.plan = plan;
    s.rehash = opts && opts->rehash;
    s.res = out;
    s.opts = opts;
    s.err = err;
    if ((rc = sqlite3_prepare_v2(db,
                                 "SELECT path, size, mtime_ns, ino, hash FROM files"
                                 " ORDER BY path COLLATE pbpath",
                                 -1, &s.cur, NULL)) != SQLITE_OK) {
        error = sql_fail(db, rc, "preparing", err);
        goto done;
    }
    if ((error = cur_step(&s)) < 0)
        goto done;
    int dup_fd = dup(root_fd);
    if (dup_fd < 0 || !(top = fdopendir(dup_fd))) {
        if (dup_fd >= 0)
            close(dup_fd);
        error = pb_error_errno(err, "cannot read the data directory %s", plex_real);
        goto done;
    }
    if ((error = scan_dir(&s, top)) < 0 || (error = cache_pass(&s, NULL, 0)) < 0)
        goto done;
    sqlite3_finalize(s.cur);
    s.cur = NULL;
    if (fflush(plan) != 0 || fseeko(plan, 0, SEEK_SET) != 0) {
        error = pb_error_errno(err, "fingerprint: plan file");
        goto done;
    }
    t1 = now_ns(CLOCK_MONOTONIC);
    out->ms_scan = (uint64_t)((t1 - t0) / 1000000);

    /* pass 2: hash and emit */
    e.root_fd = root_fd;
    e.db = db;
    e.opts = opts;
    e.res = out;
    e.err = err;
    e.prog.phase = "hash";
    e.prog.bytes_total = s.hash_bytes;
    e.prog.items_total = s.hash_files;
    if (!(e.buf = malloc(HASH_BUF)) || !(e.xx = XXH3_createState()) ||
        !(e.root = XXH3_createState())) {
        error = pb_error_set(err, PB_ENOMEM, "fingerprint: out of memory");
        goto done;
    }
    XXH3_128bits_reset(e.root);
    if ((rc = sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO files VALUES(?1, ?2, ?3, ?4, ?5)", -1,
                                 &e.put, NULL)) != SQLITE_OK ||
        (rc = sqlite3_prepare_v2(db, "DELETE FROM files WHERE path = ?1", -1, &e.del, NULL)) !=
            SQLITE_OK) {
        error = sql_fail(db, rc, "preparing", err);
        goto done;
    }
    if ((error = hash_progress(&e, NULL)) < 0 ||
        (error = pb_fp__writer_open(&e.w, out->manifest_path, err)) < 0 ||
        (error = emit_all(&e, plan)) < 0)
        goto done;
    pb_fp__dir_digest(out->root, e.root);
    pb_hash_hex(out->root_hex, out->root);
    if ((error = pb_fp__writer_finish(e.w, out->root, out->bytes, err)) < 0)
        goto done;
    sqlite3_finalize(e.put);
    sqlite3_finalize(e.del);
    e.put = e.del = NULL;
    if ((rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK) {
        error = sql_fail(db, rc, "committing", err);
        goto done;
    }
    int64_t t2 = now_ns(CLOCK_MONOTONIC);
    out->ms_hash = (uint64_t)((t2 - t1) / 1000000);
    out->ms_total = (uint64_t)((t2 - t0) / 1000000);
    if (opts && opts->progress) {
        pb_progress p = {
            "done", e.prog.bytes_done, e.prog.bytes_total, e.prog.items_done, e.prog.items_total,
            NULL};
        opts->progress(&p, opts->payload);
    }
done:
    sqlite3_finalize(s.cur);
    sqlite3_finalize(e.put);
    sqlite3_finalize(e.del);
    pb_fp__writer_free(e.w);
    link_free(&e.links);
    for (int i = 0; i < e.cap; i++)
        XXH3_freeState(e.stack[i].st);
    free(e.stack);
    XXH3_freeState(e.root);
    XXH3_freeState(e.xx);
    free(e.buf);
    if (top)
        closedir(top);
    if (plan)
        fclose(plan);
    if (db) {
        if (error)
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(db);
    }
    if (root_fd >= 0)
        close(root_fd);
    return error;
}

/*
 * fingerprint_emit.c: pass 2 of a fingerprint run (engine/files/fingerprint_int.h): reads the plan
 * back, hashes the files the cache could not vouch for, groups hard links, computes directory
 * Merkle hashes and writes the manifest and the cache rows (the algorithm is described atop
 * fingerprint.c).
 * Role: pb_fingerprint_run. Prerequisites: libxxhash, SQLite, Linux openat2 when available.
 * Memory: the open hard-link groups and one state per directory level.
 */
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

#define HASH_BUF (1u << 20)

/* Open hard-link groups held at once (about 200 bytes each): a group whose other links lie
 * outside the tree never closes, so the map is capped; past the cap a multi-link file forms no
 * group (its other paths are read like any file: the same hashes, more reads). */
#define LINK_GROUPS_MAX 32768

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

int pb_fp__open_beneath(int root_fd, const char *rel)
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
static int hash_file(emit *e, pb_fp_plan_rec *r, const char *rel)
{
    int error = 0, fd = pb_fp__open_beneath(e->root_fd, rel);
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
    r->mtime_ns = pb_fp__mtime_ns(&st);
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

static int cache_put(emit *e, const pb_fp_plan_rec *r, const char *path, int64_t read_ns)
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
        return pb_fp__sql_fail(e->db, rc, "writing", e->err);
    return 0;
}

static int emit_file(emit *e, pb_fp_plan_rec *r, const char *path)
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
        read_ns = pb_fp__now_ns(CLOCK_REALTIME);
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
            read_ns = pb_fp__now_ns(CLOCK_REALTIME);
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
        if (e->links.used >= LINK_GROUPS_MAX)
            goto add; /* the map is full: its other paths are read and hashed on their own */
        if (!(ls = link_add(&e->links, r->dev, r->ino)) ||
            !(ls->leader = strndup(path, r->path_len)))
            return pb_error_set(e->err, PB_ENOMEM, "fingerprint: out of memory");
        memcpy(ls->hash, r->hash, PB_HASH_LEN);
        ls->remaining = r->nlink - 1;
        ls = NULL; /* not a follower */
    }
add:
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
    pb_fp_plan_rec r;
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
                return pb_fp__sql_fail(e->db, rc, "deleting", e->err);
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

/* Releases what an emit holds. */
static void emit_free(emit *e)
{
    sqlite3_finalize(e->put);
    sqlite3_finalize(e->del);
    pb_fp__writer_free(e->w);
    link_free(&e->links);
    for (int i = 0; i < e->cap; i++)
        XXH3_freeState(e->stack[i].st);
    free(e->stack);
    XXH3_freeState(e->root);
    XXH3_freeState(e->xx);
    free(e->buf);
    free(e);
}

int pb_fp__emit(pb_fp_scan_out *plan_info, sqlite3 *db, FILE *plan, int root_fd,
                const pb_fingerprint_options *opts, pb_fingerprint_result *out, pb_error *err)
{
    int error = 0, rc;
    emit *e = calloc(1, sizeof(*e));
    if (!e)
        return pb_error_set(err, PB_ENOMEM, "fingerprint: out of memory");
    e->root_fd = root_fd;
    e->db = db;
    e->opts = opts;
    e->res = out;
    e->err = err;
    e->prog.phase = "hash";
    e->prog.bytes_total = plan_info->hash_bytes;
    e->prog.items_total = plan_info->hash_files;
    if (!(e->buf = malloc(HASH_BUF)) || !(e->xx = XXH3_createState()) ||
        !(e->root = XXH3_createState())) {
        error = pb_error_set(err, PB_ENOMEM, "fingerprint: out of memory");
        goto done;
    }
    XXH3_128bits_reset(e->root);
    if ((rc = sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO files VALUES(?1, ?2, ?3, ?4, ?5)", -1,
                                 &e->put, NULL)) != SQLITE_OK ||
        (rc = sqlite3_prepare_v2(db, "DELETE FROM files WHERE path = ?1", -1, &e->del, NULL)) !=
            SQLITE_OK) {
        error = pb_fp__sql_fail(db, rc, "preparing", err);
        goto done;
    }
    if ((error = hash_progress(e, NULL)) < 0 ||
        (error = pb_fp__writer_open(&e->w, out->manifest_path, err)) < 0 ||
        (error = emit_all(e, plan)) < 0)
        goto done;
    pb_fp__dir_digest(out->root, e->root);
    pb_hash_hex(out->root_hex, out->root);
    if ((error = pb_fp__writer_finish(e->w, out->root, out->bytes, err)) < 0)
        goto done;
    plan_info->bytes_done = e->prog.bytes_done;
    plan_info->items_done = e->prog.items_done;
done:
    emit_free(e);
    return error;
}

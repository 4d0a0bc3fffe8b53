/*
 * fingerprint_scan.c: pass 1 of a fingerprint run (engine/files/fingerprint_int.h): the stat walk
 * merged against the hash cache, writing the plan file (the algorithm is described atop
 * fingerprint.c).
 * Role: pb_fingerprint_run. Prerequisites: SQLite (the cache, read in walk order).
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
#include <unistd.h>

#include "fingerprint_int.h"

#define SCAN_PROGRESS 4096 /* entries between scan progress calls */

int pb_fp__plan_put(FILE *f, const pb_fp_plan_rec *r, const char *path, const char *extra,
                    pb_error *err)
{
    if (fwrite(r, sizeof(*r), 1, f) != 1 || (r->path_len && fwrite(path, r->path_len, 1, f) != 1) ||
        (r->extra_len && fwrite(extra, r->extra_len, 1, f) != 1))
        return pb_error_errno(err, "fingerprint: writing the plan file failed");
    return 0;
}

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
        return pb_fp__sql_fail(s->db, rc, "reading", s->err);
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
        pb_fp_plan_rec r;
        memset(&r, 0, sizeof(r));
        r.kind = 'X';
        if (cn > PATH_MAX - 1)
            cn = PATH_MAX - 1;
        r.path_len = (uint16_t)cn;
        if ((error = pb_fp__plan_put(s->plan, &r, cp, NULL, s->err)) < 0 ||
            (error = cur_step(s)) < 0)
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

/* A directory: its record, its subtree, its end record. */
static int scan_subdir(scan *s, int dfd, const char *name, pb_fp_plan_rec *r)
{
    int error, fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *sub;
    if (fd < 0) {
        if (errno == ENOENT) {
            s->res->vanished++;
            return 0;
        }
        return pb_error_errno(s->err, "fingerprint: cannot open directory %s", s->path);
    }
    if (!(sub = fdopendir(fd))) {
        close(fd);
        return pb_error_errno(s->err, "fingerprint: cannot read directory %s", s->path);
    }
    r->kind = 'D';
    s->res->dirs++;
    s->entries++;
    if ((error = pb_fp__plan_put(s->plan, r, s->path, NULL, s->err)) == 0)
        error = scan_dir(s, sub);
    closedir(sub);
    if (error == 0) {
        pb_fp_plan_rec e;
        memset(&e, 0, sizeof(e));
        e.kind = 'E';
        error = pb_fp__plan_put(s->plan, &e, NULL, NULL, s->err);
    }
    return error;
}

/* A regular file: its cache row, when it still describes the file, gives its hash. */
static int scan_file(scan *s, const struct stat *st, pb_fp_plan_rec *r)
{
    int error;
    r->kind = 'F';
    r->size = (uint64_t)st->st_size;
    r->ino = (uint64_t)st->st_ino;
    r->dev = (uint64_t)st->st_dev;
    r->nlink = (uint32_t)st->st_nlink;
    if ((error = cache_pass(s, s->path, s->plen)) < 0)
        return error;
    if (s->cur_row) {
        const char *cp = (const char *)sqlite3_column_text(s->cur, 0);
        int cn = sqlite3_column_bytes(s->cur, 0);
        if (pb_fp__pathcmp(cp, (size_t)cn, s->path, s->plen) == 0) {
            if (!s->rehash && sqlite3_column_int64(s->cur, 1) == (int64_t)r->size &&
                sqlite3_column_int64(s->cur, 2) == r->mtime_ns &&
                (uint64_t)sqlite3_column_int64(s->cur, 3) == r->ino &&
                sqlite3_column_bytes(s->cur, 4) == PB_HASH_LEN) {
                memcpy(r->hash, sqlite3_column_blob(s->cur, 4), PB_HASH_LEN);
                r->cached = 1;
            }
            if ((error = cur_step(s)) < 0)
                return error;
        }
    }
    if (!r->cached) {
        s->hash_bytes += r->size;
        s->hash_files++;
    }
    s->res->files++;
    s->res->bytes += r->size;
    s->entries++;
    return pb_fp__plan_put(s->plan, r, s->path, NULL, s->err);
}

/* A symlink: recorded with its target text, never followed. */
static int scan_symlink(scan *s, int dfd, const char *name, pb_fp_plan_rec *r)
{
    ssize_t n = readlinkat(dfd, name, s->link, sizeof(s->link));
    if (n < 0) {
        if (errno == ENOENT) {
            s->res->vanished++;
            return 0;
        }
        return pb_error_errno(s->err, "fingerprint: cannot read symlink %s", s->path);
    }
    if (n == 0 || n > 4095)
        return pb_error_set(s->err, PB_ERROR,
                            "fingerprint: symlink target of %s is empty or longer than 4095 bytes",
                            s->path);
    r->kind = 'L';
    r->size = (uint64_t)n;
    r->extra_len = (uint16_t)n;
    s->res->symlinks++;
    s->entries++;
    return pb_fp__plan_put(s->plan, r, s->path, s->link, s->err);
}

static int scan_entry(scan *s, int dfd, const char *name)
{
    int error = 0;
    struct stat st;
    pb_fp_plan_rec r;
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
    r.mtime_ns = pb_fp__mtime_ns(&st);
    r.path_len = (uint16_t)s->plen;
    if (S_ISDIR(st.st_mode))
        error = scan_subdir(s, dfd, name, &r);
    else if (S_ISREG(st.st_mode))
        error = scan_file(s, &st, &r);
    else if (S_ISLNK(st.st_mode))
        error = scan_symlink(s, dfd, name, &r);
    else
        s->res->skipped++; /* socket, FIFO, device */
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

int pb_fp__scan(pb_fp_scan_out *out, sqlite3 *db, FILE *plan, int root_fd,
                const pb_fingerprint_options *opts, pb_fingerprint_result *res, pb_error *err)
{
    int error = 0, rc;
    DIR *top = NULL;
    scan *s = calloc(1, sizeof(*s));
    if (!s)
        return pb_error_set(err, PB_ENOMEM, "fingerprint: out of memory");
    s->db = db;
    s->plan = plan;
    s->rehash = opts && opts->rehash;
    s->res = res;
    s->opts = opts;
    s->err = err;
    if ((rc = sqlite3_prepare_v2(db,
                                 "SELECT path, size, mtime_ns, ino, hash FROM files"
                                 " ORDER BY path COLLATE pbpath",
                                 -1, &s->cur, NULL)) != SQLITE_OK) {
        error = pb_fp__sql_fail(db, rc, "preparing", err);
        goto done;
    }
    if ((error = cur_step(s)) < 0)
        goto done;
    int dup_fd = dup(root_fd);
    if (dup_fd < 0 || !(top = fdopendir(dup_fd))) {
        if (dup_fd >= 0)
            close(dup_fd);
        error = pb_error_errno(err, "cannot read the data directory");
        goto done;
    }
    if ((error = scan_dir(s, top)) < 0 || (error = cache_pass(s, NULL, 0)) < 0)
        goto done;
    out->hash_bytes = s->hash_bytes;
    out->hash_files = s->hash_files;
done:
    sqlite3_finalize(s->cur);
    if (top)
        closedir(top);
    free(s);
    return error;
}

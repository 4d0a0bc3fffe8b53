/*
 * store_local.c: the local-directory store: objects are files below a root directory.
 * put copies into a temporary file `.pb-tmp-*` in the target's directory, fsyncs it, renames it
 * over the name and fsyncs the directory (readers see the old or the whole new object; a crash
 * leaves at most a temporary file, which listings skip and the next put of the directory
 * cleans when older than an hour); read streams from an offset with pread-sized chunks.
 * Role: the embedded default store and the tests' store (transfer/store.h). Prerequisites: POSIX.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "store.h"

#define CHUNK (1u << 20)

typedef struct local_store {
    pb_store base;
    char root[4096];
} local_store;

static int obj_path(char *out, size_t cap, const local_store *ls, const char *name, pb_error *err)
{
    if (snprintf(out, cap, "%s/%s", ls->root, name) >= (int)cap)
        return pb_error_set(err, PB_EINVALID, "store: path too long for %s", name);
    return 0;
}

/* mkdir -p of the directories of `path` below the root (not the last component). */
static int make_parents(const local_store *ls, char *path, pb_error *err)
{
    size_t rl = strlen(ls->root);
    for (char *p = path + rl + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0700);
        int e = errno;
        *p = '/';
        if (rc != 0 && e != EEXIST) {
            errno = e;
            return pb_error_errno(err, "store: cannot create a directory for %s", path);
        }
    }
    return 0;
}

/* Removes stale temporaries (older than an hour) left by interrupted puts in `dir`. */
static void clean_stale(const char *path)
{
    char dir[4400];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return;
    *slash = '\0';
    DIR *d = opendir(dir);
    if (!d)
        return;
    time_t now = time(NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, ".pb-tmp", 7) != 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && now - st.st_mtime > 3600)
            unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

static int local_put(pb_store *s, const char *name, const char *local_path, pb_progress_fn progress,
                     void *pp, pb_error *err)
{
    local_store *ls = (local_store *)s;
    int error = 0, in = -1, out = -1;
    char dst[4200], tmp[4300];
    char *buf = NULL;
    if ((error = obj_path(dst, sizeof(dst), ls, name, err)) != 0)
        return error;
    if ((error = make_parents(ls, dst, err)) != 0)
        return error;
    clean_stale(dst);
    const char *base = strrchr(dst, '/') + 1;
    snprintf(tmp, sizeof(tmp), "%.*s.pb-tmp-%ld-%s", (int)(base - dst), dst, (long)getpid(), base);
    in = open(local_path, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        error = pb_error_errno(err, "store: cannot open %s", local_path);
        goto done;
    }
    struct stat st;
    if (fstat(in, &st) != 0) {
        error = pb_error_errno(err, "store: cannot stat %s", local_path);
        goto done;
    }
    out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        error = pb_error_errno(err, "store: cannot create %s", tmp);
        goto done;
    }
    buf = malloc(CHUNK);
    if (!buf) {
        error = pb_error_set(err, PB_ENOMEM, "store: out of memory");
        goto done;
    }
    uint64_t done_bytes = 0, total = (uint64_t)st.st_size;
    for (;;) {
        ssize_t n = read(in, buf, CHUNK);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            error = pb_error_errno(err, "store: cannot read %s", local_path);
            goto done;
        }
        if (n == 0)
            break;
        if ((error = pb_fs_write_all(out, buf, (size_t)n, tmp, err)) < 0)
            goto done;
        done_bytes += (uint64_t)n;
        if ((error = pb_store__progress(progress, pp, "upload", name, done_bytes, total, err)) < 0)
            goto done;
    }
    if (fsync(out) != 0) {
        error = pb_error_errno(err, "store: fsync %s", tmp);
        goto done;
    }
    if (close(out) != 0) {
        out = -1;
        error = pb_error_errno(err, "store: close %s", tmp);
        goto done;
    }
    out = -1;
    if (rename(tmp, dst) != 0) {
        error = pb_error_errno(err, "store: cannot rename %s", tmp);
        goto done;
    }
    char dir[4200];
    snprintf(dir, sizeof(dir), "%.*s", (int)(base - dst - 1), dst);
    pb_fs_sync_dir(dir);
done:
    free(buf);
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    if (error)
        unlink(tmp);
    return error;
}

static int local_read(pb_store *s, const char *name, uint64_t offset, pb_sink_fn sink,
                      void *sink_payload, pb_progress_fn progress, void *pp, pb_error *err)
{
    local_store *ls = (local_store *)s;
    int error = 0, fd = -1;
    char path[4200];
    char *buf = NULL;
    if ((error = obj_path(path, sizeof(path), ls, name, err)) != 0)
        return error;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return pb_error_set(err, PB_ENOTFOUND, "store: no object %s", name);
        return pb_error_errno(err, "store: cannot open %s", path);
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        error = pb_error_errno(err, "store: cannot stat %s", path);
        goto done;
    }
    uint64_t total = (uint64_t)st.st_size;
    if (offset > total) {
        error = pb_error_set(err, PB_EINVALID, "store: offset %llu beyond %s (%llu bytes)",
                             (unsigned long long)offset, name, (unsigned long long)total);
        goto done;
    }
    buf = malloc(CHUNK);
    if (!buf) {
        error = pb_error_set(err, PB_ENOMEM, "store: out of memory");
        goto done;
    }
    uint64_t pos = offset;
    while (pos < total) {
        size_t want = total - pos < CHUNK ? (size_t)(total - pos) : CHUNK;
        ssize_t n = pread(fd, buf, want, (off_t)pos);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            error = pb_error_errno(err, "store: cannot read %s", path);
            goto done;
        }
        if (n == 0) {
            error = pb_error_set(err, PB_EIO, "store: %s shrank while it was read", name);
            goto done;
        }
        if ((error = sink(sink_payload, buf, (size_t)n, err)) != 0)
            goto done;
        pos += (uint64_t)n;
        if ((error = pb_store__progress(progress, pp, "download", name, pos, total, err)) < 0)
            goto done;
    }
done:
    free(buf);
    close(fd);
    return error;
}

static int local_stat(pb_store *s, const char *name, pb_store_info *out, pb_error *err)
{
    local_store *ls = (local_store *)s;
    char path[4200];
    int rc = obj_path(path, sizeof(path), ls, name, err);
    if (rc)
        return rc;
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return pb_error_set(err, PB_ENOTFOUND, "store: no object %s", name);
        return pb_error_errno(err, "store: cannot stat %s", path);
    }
    if (!S_ISREG(st.st_mode))
        return pb_error_set(err, PB_ENOTFOUND, "store: %s is not an object", name);
    out->size = (uint64_t)st.st_size;
    out->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    return 0;
}

/* Walks `dir` (relative name `rel`, "" for the root) calling fn for every regular file. */
static int walk(const local_store *ls, const char *rel, const char *prefix, pb_store_list_fn fn,
                void *payload, pb_error *err)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s%s%s", ls->root, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    if (!d) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        return pb_error_errno(err, "store: cannot list %s", path);
    }
    int rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue; /* ".", "..", temporaries */
        char name[4200];
        if (snprintf(name, sizeof(name), "%s%s%s", rel, *rel ? "/" : "", e->d_name) >=
            (int)sizeof(name))
            continue;
        size_t pl = strlen(prefix), nl = strlen(name);
        /* descend only where the prefix can still match */
        if (strncmp(name, prefix, nl < pl ? nl : pl) != 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            rc = walk(ls, name, prefix, fn, payload, err);
        } else if (S_ISREG(st.st_mode) && nl >= pl) {
            pb_store_info ss = {(uint64_t)st.st_size,
                                (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec};
            rc = fn(name, &ss, payload);
            if (rc > 0)
                rc = pb_error_set(err, PB_ECANCELLED, "store: listing stopped");
            else if (rc < 0)
                pb_error_set(err, rc, "store: listing stopped: %s", pb_strerror(rc));
        }
    }
    closedir(d);
    return rc;
}

static int local_list(pb_store *s, const char *prefix, pb_store_list_fn fn, void *payload,
                      pb_error *err)
{
    return walk((local_store *)s, "", prefix, fn, payload, err);
}

static int local_del(pb_store *s, const char *name, pb_error *err)
{
    local_store *ls = (local_store *)s;
    char path[4200];
    int rc = obj_path(path, sizeof(path), ls, name, err);
    if (rc)
        return rc;
    if (unlink(path) != 0 && errno != ENOENT)
        return pb_error_errno(err, "store: cannot delete %s", path);
    /* remove emptied directories up to the root */
    size_t rl = strlen(ls->root);
    for (char *slash = strrchr(path, '/'); slash && (size_t)(slash - path) > rl;
         slash = strrchr(path, '/')) {
        *slash = '\0';
        if (rmdir(path) != 0)
            break;
    }
    return 0;
}

static void local_free(pb_store *s)
{
    free(s);
}

static const pb_store_ops local_ops = {
    PB_STORE_OPS_VERSION, "local",    local_put, local_read,
    local_stat,           local_list, local_del, local_free,
};

int pb_store_local_new(pb_store **out, const char *dir, pb_error *err)
{
    *out = NULL;
    if (!dir || !*dir)
        return pb_error_set(err, PB_EINVALID, "store: no directory given");
    int error = pb_fs_mkdirs(dir, 0700, err);
    if (error < 0)
        return error;
    local_store *ls = calloc(1, sizeof(*ls));
    if (!ls)
        return pb_error_set(err, PB_ENOMEM, "store: out of memory");
    if (!realpath(dir, ls->root)) {
        int e = errno;
        free(ls);
        errno = e;
        return pb_error_errno(err, "store: cannot resolve %s", dir);
    }
    struct stat st;
    if (stat(ls->root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        free(ls);
        return pb_error_set(err, PB_EINVALID, "store: %s is not a directory", dir);
    }
    ls->base.ops = &local_ops;
    snprintf(ls->base.url, sizeof(ls->base.url), "%s", ls->root);
    *out = &ls->base;
    return 0;
}

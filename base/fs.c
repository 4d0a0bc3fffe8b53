/*
 * fs.c: the file-system helpers of fs.h.
 * Role: base layer. Prerequisites: POSIX.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"

int pb_fs_write_all(int fd, const void *data, size_t n, const char *what, pb_error *err)
{
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return pb_error_errno(err, "cannot write %s", what);
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int pb_fs_mkdirs(const char *path, mode_t mode, pb_error *err)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return pb_error_set(err, PB_EINVALID, "path too long: %s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, mode) != 0 && errno != EEXIST)
                return pb_error_errno(err, "cannot create %s", buf);
            *p = c;
            if (!c)
                break;
        }
    }
    return 0;
}

int pb_fs_inherit_fd(int fd, const struct stat *ref, int ref_is_parent, const char *what,
                     pb_error *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return pb_error_errno(err, "cannot stat %s", what);
    mode_t mode = ref->st_mode & 07777;
    if (ref_is_parent && !S_ISDIR(st.st_mode))
        mode &= 0666;
    if (geteuid() == 0 && (st.st_uid != ref->st_uid || st.st_gid != ref->st_gid) &&
        fchown(fd, ref->st_uid, ref->st_gid) != 0)
        return pb_error_errno(err, "cannot give %s the owner %lu:%lu", what,
                              (unsigned long)ref->st_uid, (unsigned long)ref->st_gid);
    /* after fchown, which clears the set-id bits */
    if ((st.st_mode & 07777) != mode || (mode & 06000)) {
        if (fchmod(fd, mode) != 0)
            return pb_error_errno(err, "cannot set the mode %04o of %s", (unsigned)mode, what);
    }
    return 0;
}

int pb_fs_inherit(const char *path, const char *like, pb_error *err)
{
    struct stat ref;
    int parent = 0;
    if (!like || stat(like, &ref) != 0) {
        char dir[PATH_MAX];
        if (like && errno != ENOENT)
            return pb_error_errno(err, "cannot stat %s", like);
        if (!like)
            like = path;
        if (snprintf(dir, sizeof(dir), "%s", like) >= (int)sizeof(dir))
            return pb_error_set(err, PB_EINVALID, "path too long: %s", like);
        char *slash = strrchr(dir, '/');
        if (!slash)
            snprintf(dir, sizeof(dir), ".");
        else if (slash == dir)
            dir[1] = '\0';
        else
            *slash = '\0';
        if (stat(dir, &ref) != 0)
            return pb_error_errno(err, "cannot stat %s", dir);
        parent = 1;
    }
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return pb_error_errno(err, "cannot open %s", path);
    int error = pb_fs_inherit_fd(fd, &ref, parent, path, err);
    close(fd);
    return error;
}

int pb_fs_mkdirs_inherit(const char *path, pb_error *err)
{
    char buf[PATH_MAX];
    struct stat ref;
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return pb_error_set(err, PB_EINVALID, "path too long: %s", path);
    if (stat(buf[0] == '/' ? "/" : ".", &ref) != 0)
        return pb_error_errno(err, "cannot stat the root of %s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0700) == 0) {
                int fd = open(buf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                int error = fd < 0 ? pb_error_errno(err, "cannot open %s", buf)
                                   : pb_fs_inherit_fd(fd, &ref, 1, buf, err);
                if (fd >= 0)
                    close(fd);
                if (error < 0)
                    return error;
            } else if (errno != EEXIST) {
                return pb_error_errno(err, "cannot create %s", buf);
            }
            if (stat(buf, &ref) != 0)
                return pb_error_errno(err, "cannot stat %s", buf);
            *p = c;
            if (!c)
                break;
        }
    }
    return 0;
}

static int rm_at(int dfd, const char *name)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(dfd, name, 0) == 0 || errno == ENOENT ? 0 : -1;
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (rm_at(dirfd(d), e->d_name) != 0)
            rc = -1;
    }
    closedir(d);
    if (unlinkat(dfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
        rc = -1;
    return rc;
}

int pb_fs_rmtree(const char *path)
{
    return rm_at(AT_FDCWD, path);
}

int pb_fs_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

uint64_t pb_fs_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

void pb_fs_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

int pb_fs_atomic_open(pb_fs_atomic *a, const char *path, mode_t mode, pb_error *err)
{
    a->fd = -1;
    a->path = strdup(path);
    a->tmp = malloc(strlen(path) + sizeof(".pb-tmp"));
    if (!a->path || !a->tmp) {
        pb_fs_atomic_abort(a);
        return pb_error_set(err, PB_ENOMEM, "out of memory");
    }
    sprintf(a->tmp, "%s.pb-tmp", path);
    a->fd = open(a->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (a->fd < 0) {
        int error = pb_error_errno(err, "cannot create %s", a->tmp);
        free(a->tmp);
        a->tmp = NULL;
        pb_fs_atomic_abort(a);
        return error;
    }
    return 0;
}

int pb_fs_atomic_commit(pb_fs_atomic *a, pb_error *err)
{
    int error = 0;
    if (fsync(a->fd) != 0)
        error = pb_error_errno(err, "cannot fsync %s", a->tmp);
    if (close(a->fd) != 0 && !error)
        error = pb_error_errno(err, "cannot close %s", a->tmp);
    a->fd = -1;
    if (!error && rename(a->tmp, a->path) != 0)
        error = pb_error_errno(err, "cannot rename %s", a->tmp);
    if (error) {
        pb_fs_atomic_abort(a);
        return error;
    }
    char *slash = strrchr(a->path, '/');
    if (slash) {
        *slash = '\0';
        pb_fs_sync_dir(slash == a->path ? "/" : a->path);
    } else {
        pb_fs_sync_dir(".");
    }
    free(a->path);
    free(a->tmp);
    a->path = a->tmp = NULL;
    return 0;
}

void pb_fs_atomic_abort(pb_fs_atomic *a)
{
    if (a->fd >= 0)
        close(a->fd);
    a->fd = -1;
    if (a->tmp)
        unlink(a->tmp);
    free(a->tmp);
    free(a->path);
    a->tmp = a->path = NULL;
}

int pb_fs_write_file(const char *path, const void *data, size_t n, mode_t mode, pb_error *err)
{
    pb_fs_atomic a;
    int error = pb_fs_atomic_open(&a, path, mode, err);
    if (error < 0)
        return error;
    if ((error = pb_fs_write_all(a.fd, data, n, a.tmp, err)) < 0) {
        pb_fs_atomic_abort(&a);
        return error;
    }
    return pb_fs_atomic_commit(&a, err);
}

int pb_fs_read_file(char **out, size_t *n, const char *path, size_t max, pb_error *err)
{
    int error = 0;
    char *buf = NULL;
    size_t len = 0;
    struct stat st;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? pb_error_setd(err, PB_ENOTFOUND, ENOENT, "%s does not exist", path)
                               : pb_error_errno(err, "cannot open %s", path);
    if (fstat(fd, &st) != 0) {
        error = pb_error_errno(err, "cannot stat %s", path);
        goto done;
    }
    if ((uint64_t)st.st_size > max) {
        error = pb_error_set(err, PB_ENOMEM, "%s is larger than %zu bytes", path, max);
        goto done;
    }
    if (!(buf = malloc((size_t)st.st_size + 1))) {
        error = pb_error_set(err, PB_ENOMEM, "out of memory");
        goto done;
    }
    while (len < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + len, (size_t)st.st_size - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            error = pb_error_errno(err, "cannot read %s", path);
            goto done;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    *out = buf;
    buf = NULL;
    if (n)
        *n = len;
done:
    free(buf);
    close(fd);
    return error;
}

int pb_fs_copy(const char *src, const char *dst, pb_error *err)
{
    int error = 0;
    pb_fs_atomic a = {-1, NULL, NULL};
    char *buf = NULL;
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return errno == ENOENT ? pb_error_setd(err, PB_ENOTFOUND, ENOENT, "%s does not exist", src)
                               : pb_error_errno(err, "cannot open %s", src);
    if ((error = pb_fs_atomic_open(&a, dst, 0600, err)) < 0)
        goto done;
    /* in the kernel first (a reflink where the file system shares extents); else by hand */
    for (;;) {
        ssize_t r = copy_file_range(in, NULL, a.fd, NULL, 1 << 30, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            goto commit;
        if (r < 0)
            break;
    }
    if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP) {
        error = pb_error_errno(err, "cannot copy %s", src);
        goto done;
    }
    if (lseek(in, 0, SEEK_SET) < 0 || lseek(a.fd, 0, SEEK_SET) < 0 || ftruncate(a.fd, 0) < 0) {
        error = pb_error_errno(err, "cannot copy %s", src);
        goto done;
    }
    if (!(buf = malloc(1 << 20))) {
        error = pb_error_set(err, PB_ENOMEM, "out of memory");
        goto done;
    }
    for (;;) {
        ssize_t r = read(in, buf, 1 << 20);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            error = pb_error_errno(err, "cannot read %s", src);
            goto done;
        }
        if (r == 0)
            break;
        if ((error = pb_fs_write_all(a.fd, buf, (size_t)r, a.tmp, err)) < 0)
            goto done;
    }
commit:
    error = pb_fs_atomic_commit(&a, err);
done:
    if (error)
        pb_fs_atomic_abort(&a);
    free(buf);
    close(in);
    return error;
}

static int classify_open_error(int dirfd, const char *comp, const char *path, pb_error *err)
{
    struct stat st;
    int e = errno;
    if (fstatat(dirfd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISLNK(st.st_mode))
            return pb_error_set(err, PB_EUNSAFE, "'%s': component '%s' is a symlink", path, comp);
        if (!S_ISDIR(st.st_mode))
            return pb_error_set(err, PB_ECONFLICT, "'%s': component '%s' is not a directory", path,
                                comp);
    }
    if (e == ELOOP)
        return pb_error_set(err, PB_EUNSAFE, "'%s': component '%s' is a symlink", path, comp);
    errno = e;
    return pb_error_errno(err, "'%s': cannot open '%s'", path, comp);
}

int pb_fs_open_parent(int *out, const char **name, int root_fd, const char *path,
                      int (*mkdir_cb)(void *payload, const char *dir, pb_error *err), void *payload,
                      pb_error *err)
{
    int error = 0, fd = -1;
    char comp[NAME_MAX + 1];
    const char *p = path, *slash;

    *out = -1;
    if ((fd = fcntl(root_fd, F_DUPFD_CLOEXEC, 0)) < 0)
        return pb_error_errno(err, "'%s': cannot duplicate the root fd", path);
    while ((slash = strchr(p, '/')) != NULL) {
        size_t len = (size_t)(slash - p);
        if (len == 0 || len > NAME_MAX || (len == 1 && p[0] == '.') ||
            (len == 2 && p[0] == '.' && p[1] == '.')) {
            error = pb_error_set(err, PB_EUNSAFE, "'%s': bad path component", path);
            goto done;
        }
        memcpy(comp, p, len);
        comp[len] = '\0';
        int nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nfd < 0 && errno == ENOENT) {
            if (!mkdir_cb) {
                error = pb_error_set(err, PB_ENOTFOUND, "'%s': '%s' does not exist", path, comp);
                goto done;
            }
            char rel[PATH_MAX];
            size_t rl = (size_t)(slash - path);
            if (rl >= sizeof(rel)) {
                error = pb_error_set(err, PB_EUNSAFE, "'%s': path too long", path);
                goto done;
            }
            memcpy(rel, path, rl);
            rel[rl] = '\0';
            if ((error = mkdir_cb(payload, rel, err)) < 0)
                goto done;
            int made = mkdirat(fd, comp, 0700) == 0;
            if (!made && errno != EEXIST) {
                error = pb_error_errno(err, "'%s': cannot create directory '%s'", path, rel);
                goto done;
            }
            nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            struct stat ref;
            if (made && nfd >= 0) {
                if (fstat(fd, &ref) != 0)
                    error = pb_error_errno(err, "'%s': cannot stat the parent of '%s'", path, rel);
                else
                    error = pb_fs_inherit_fd(nfd, &ref, 1, rel, err);
                if (error < 0) {
                    close(nfd);
                    goto done;
                }
            }
        }
        if (nfd < 0) {
            error = classify_open_error(fd, comp, path, err);
            goto done;
        }
        close(fd);
        fd = nfd;
        p = slash + 1;
    }
    *out = fd;
    fd = -1;
    if (name)
        *name = p;
done:
    if (fd >= 0)
        close(fd);
    return error;
}

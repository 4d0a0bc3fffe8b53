/*
 * store.c: the store interface's dispatch (name checks, byte counting), opening a store from its
 * URL, and the helpers every backend gets for free: resumable download to a file, small objects
 * from and to memory, deleting a prefix.
 * Role: transfer/ layer under the runs and the agent of the engine.
 * Prerequisites: POSIX. Backends: store_local.c, store_s3*.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "buf.h"
#include "fdsink.h"
#include "fs.h"

int pb_store_name_check(const char *name, pb_error *err)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 1024)
        return pb_error_set(err, PB_EUNSAFE, "store: invalid object name (empty or too long)");
    const char *c = name;
    while (*c) {
        const char *e = strchr(c, '/');
        size_t len = e ? (size_t)(e - c) : strlen(c);
        if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.') ||
            strncmp(c, ".pb-tmp", 7) == 0)
            return pb_error_set(err, PB_EUNSAFE, "store: invalid object name '%s'", name);
        for (size_t i = 0; i < len; i++) {
            char ch = c[i];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
                return pb_error_set(err, PB_EUNSAFE, "store: invalid character in object name '%s'",
                                    name);
        }
        if (!e)
            break;
        c = e + 1;
        if (!*c)
            return pb_error_set(err, PB_EUNSAFE, "store: invalid object name '%s'", name);
    }
    return 0;
}

int pb_store_open(pb_store **out, const char *url, pb_error *err)
{
    *out = NULL;
    if (!url || !*url)
        return pb_error_set(err, PB_EINVALID, "store: no location given");
    if (strncmp(url, "s3://", 5) == 0)
        return pb_error_set(err, PB_EINVALID,
                            "store: an s3:// store opens with its options (pb_store_s3_new)");
    if (strstr(url, "://") && strncmp(url, "file://", 7) != 0)
        return pb_error_set(err, PB_EINVALID, "store: unknown store URL '%s'", url);
    if (strncmp(url, "file://", 7) == 0)
        url += 7;
    return pb_store_local_new(out, url, err);
}

int pb_store__progress(pb_progress_fn fn, void *pp, const char *phase, const char *name,
                       uint64_t done, uint64_t total, pb_error *err)
{
    pb_progress p = {phase, done, total, 0, 0, name};
    if (fn && fn(&p, pp))
        return pb_error_set(err, PB_ECANCELLED, "store: %s of %s cancelled",
                            strcmp(phase, "upload") == 0 ? "put" : "read", name);
    return 0;
}

void pb_store_free(pb_store *s)
{
    if (s && s->ops && s->ops->free)
        s->ops->free(s);
}

int pb_store_put(pb_store *s, const char *name, const char *local_path, pb_progress_fn progress,
                 void *pp, pb_error *err)
{
    int rc = pb_store_name_check(name, err);
    if (rc)
        return rc;
    struct stat st;
    if (stat(local_path, &st) != 0)
        return pb_error_errno(err, "store: cannot read %s", local_path);
    rc = s->ops->put(s, name, local_path, progress, pp, err);
    if (!rc)
        s->bytes_put += (uint64_t)st.st_size;
    return rc;
}

typedef struct count_sink {
    pb_sink_fn sink;
    void *payload;
    uint64_t n;
} count_sink;

static int counting(void *payload, const void *data, size_t n, pb_error *err)
{
    count_sink *c = payload;
    int rc = c->sink(c->payload, data, n, err);
    if (!rc)
        c->n += n;
    return rc;
}

int pb_store_read(pb_store *s, const char *name, uint64_t offset, pb_sink_fn sink,
                  void *sink_payload, pb_progress_fn progress, void *pp, pb_error *err)
{
    int rc = pb_store_name_check(name, err);
    if (rc)
        return rc;
    count_sink c = {sink, sink_payload, 0};
    rc = s->ops->read(s, name, offset, counting, &c, progress, pp, err);
    s->bytes_got += c.n;
    return rc;
}

int pb_store_stat(pb_store *s, const char *name, pb_store_info *out, pb_error *err)
{
    int rc = pb_store_name_check(name, err);
    return rc ? rc : s->ops->stat(s, name, out, err);
}

int pb_store_list(pb_store *s, const char *prefix, pb_store_list_fn fn, void *payload,
                  pb_error *err)
{
    return s->ops->list(s, prefix ? prefix : "", fn, payload, err);
}

int pb_store_del(pb_store *s, const char *name, pb_error *err)
{
    int rc = pb_store_name_check(name, err);
    return rc ? rc : s->ops->del(s, name, err);
}

typedef struct name_list {
    char **v;
    size_t n, cap;
} name_list;

static int collect(const char *name, const pb_store_info *st, void *payload)
{
    (void)st;
    name_list *l = payload;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **p = realloc(l->v, cap * sizeof(*p));
        if (!p)
            return PB_ENOMEM;
        l->v = p;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(name)))
        return PB_ENOMEM;
    l->n++;
    return 0;
}

int pb_store_del_prefix(pb_store *s, const char *prefix, pb_error *err)
{
    if (!prefix || !*prefix)
        return pb_error_set(err, PB_EINVALID, "store: refusing to delete everything");
    name_list l = {0};
    int rc = pb_store_list(s, prefix, collect, &l, err);
    if (rc > 0 || rc == PB_ENOMEM)
        rc = pb_error_set(err, PB_ENOMEM, "store: out of memory");
    for (size_t i = 0; i < l.n; i++) {
        if (!rc)
            rc = pb_store_del(s, l.v[i], err);
        free(l.v[i]);
    }
    free(l.v);
    return rc;
}

int pb_store_get_file(pb_store *s, const char *name, const char *local_path,
                      pb_progress_fn progress, void *pp, uint64_t *resumed_from, uint64_t *fetched,
                      pb_error *err)
{
    int error = 0, fd = -1;
    char part[4200];
    pb_store_info st;
    uint64_t before = s->bytes_got;
    if (resumed_from)
        *resumed_from = 0;
    if (fetched)
        *fetched = 0;
    if ((error = pb_store_stat(s, name, &st, err)) != 0)
        return error;
    if (snprintf(part, sizeof(part), "%s.part", local_path) >= (int)sizeof(part))
        return pb_error_set(err, PB_EINVALID, "store: path too long: %s", local_path);
    fd = open(part, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return pb_error_errno(err, "store: cannot create %s", part);
    struct stat ls;
    if (fstat(fd, &ls) != 0) {
        error = pb_error_errno(err, "store: cannot stat %s", part);
        goto done;
    }
    uint64_t offset = (uint64_t)ls.st_size;
    if (offset > st.size) { /* the object changed: start again */
        if (ftruncate(fd, 0) != 0) {
            error = pb_error_errno(err, "store: cannot truncate %s", part);
            goto done;
        }
        offset = 0;
    }
    if (lseek(fd, (off_t)offset, SEEK_SET) < 0) {
        error = pb_error_errno(err, "store: cannot seek %s", part);
        goto done;
    }
    if (resumed_from)
        *resumed_from = offset;
    if (offset < st.size || st.size == 0) {
        pb_fdsink sink = {fd, part};
        if ((error = pb_store_read(s, name, offset, pb_fdsink_write, &sink, progress, pp, err)) !=
            0)
            goto done;
    }
    if (fstat(fd, &ls) != 0 || (uint64_t)ls.st_size != st.size) {
        error =
            pb_error_set(err, PB_ECORRUPT, "store: %s: downloaded %llu bytes, the object has %llu",
                         name, (unsigned long long)ls.st_size, (unsigned long long)st.size);
        unlink(part); /* a wrong part is never resumed */
        goto done;
    }
    if (fsync(fd) != 0) {
        error = pb_error_errno(err, "store: fsync %s", part);
        goto done;
    }
    close(fd);
    fd = -1;
    if (rename(part, local_path) != 0) {
        error = pb_error_errno(err, "store: cannot rename %s", part);
        goto done;
    }
done:
    if (fetched)
        *fetched = s->bytes_got - before;
    if (fd >= 0)
        close(fd);
    return error;
}

int pb_store_put_mem(pb_store *s, const char *name, const void *data, size_t n, pb_error *err)
{
    const char *tmp = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/pb-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0)
        return pb_error_errno(err, "store: cannot create a temporary file");
    int rc = pb_fs_write_all(fd, data, n, path, err);
    close(fd);
    if (!rc)
        rc = pb_store_put(s, name, path, NULL, NULL, err);
    unlink(path);
    return rc;
}

static int write_mem(void *payload, const void *data, size_t n, pb_error *err)
{
    return pb_buf_put(payload, data, n, err);
}

int pb_store_get_mem(pb_store *s, const char *name, char **data, size_t *n, size_t max,
                     pb_error *err)
{
    pb_buf b = PB_BUF_INIT(max);
    *data = NULL;
    if (n)
        *n = 0;
    int rc = pb_store_read(s, name, 0, write_mem, &b, NULL, NULL, err);
    if (rc) {
        pb_buf_dispose(&b);
        return rc;
    }
    size_t len = b.len;
    if (!(*data = pb_buf_detach(&b)))
        return pb_error_set(err, PB_ENOMEM, "store: out of memory");
    if (n)
        *n = len;
    return 0;
}

/*
 * archive.c: pb_archive_estimate() (plexburst/run.h): what the prior scripts' whole
 * archives would weigh, for the transfer summaries of the demo and the benchmark: a tar-like
 * stream (a 512-byte header per entry, contents padded to 512 bytes, hard links stored once)
 * of the library DB pair, or of the DB pair plus Metadata/ and Media/, compressed with zstd at
 * the given level and counted, never written.
 * Role: engine/run (reporting only). Prerequisites: libzstd.
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
#include <zstd.h>

#include "plexburst/plex.h"
#include "plexburst/run.h"

typedef struct arch {
    ZSTD_CCtx *cx;
    uint8_t *in, *out;
    size_t in_n, in_cap, out_cap;
    uint64_t raw, z;
    struct {
        dev_t dev;
        ino_t ino;
    } * links;
    size_t nlinks, cap_links;
    pb_error *err;
} arch;

static int flush_in(arch *a, ZSTD_EndDirective end)
{
    ZSTD_inBuffer ib = {a->in, a->in_n, 0};
    for (;;) {
        ZSTD_outBuffer ob = {a->out, a->out_cap, 0};
        size_t left = ZSTD_compressStream2(a->cx, &ob, &ib, end);
        if (ZSTD_isError(left))
            return pb_error_set(a->err, PB_ERROR, "zstd: %s", ZSTD_getErrorName(left));
        a->z += ob.pos;
        if (end == ZSTD_e_continue ? ib.pos == ib.size : left == 0)
            break;
    }
    a->in_n = 0;
    return 0;
}

static int feed(arch *a, const void *p, size_t n)
{
    const uint8_t *s = p;
    a->raw += n;
    while (n) {
        size_t k = a->in_cap - a->in_n < n ? a->in_cap - a->in_n : n;
        memcpy(a->in + a->in_n, s, k);
        a->in_n += k;
        s += k;
        n -= k;
        if (a->in_n == a->in_cap) {
            int rc = flush_in(a, ZSTD_e_continue);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int seen_link(arch *a, const struct stat *st)
{
    for (size_t i = 0; i < a->nlinks; i++)
        if (a->links[i].dev == st->st_dev && a->links[i].ino == st->st_ino)
            return 1;
    if (a->nlinks == a->cap_links) {
        size_t cap = a->cap_links ? a->cap_links * 2 : 256;
        void *p = realloc(a->links, cap * sizeof(*a->links));
        if (!p)
            return 0;
        a->links = p;
        a->cap_links = cap;
    }
    a->links[a->nlinks].dev = st->st_dev;
    a->links[a->nlinks].ino = st->st_ino;
    a->nlinks++;
    return 0;
}

static int add_entry(arch *a, const char *path, const char *rel)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return 0;
    uint8_t head[512];
    memset(head, 0, sizeof(head));
    snprintf((char *)head, 100, "%s", rel);
    snprintf((char *)head + 124, 12, "%011llo", (unsigned long long)st.st_size);
    int rc = feed(a, head, sizeof(head));
    if (rc || !S_ISREG(st.st_mode) || (st.st_nlink > 1 && seen_link(a, &st)))
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    uint8_t buf[65536];
    uint64_t total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if ((rc = feed(a, buf, (size_t)n)) != 0)
            break;
        total += (uint64_t)n;
    }
    close(fd);
    if (!rc && total % 512) {
        memset(buf, 0, 512);
        rc = feed(a, buf, 512 - total % 512);
    }
    return rc;
}

static int walk(arch *a, const char *root, const char *rel)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    struct dirent *e;
    int rc = add_entry(a, path, rel);
    while (!rc && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char r2[PATH_MAX], p2[PATH_MAX + 16];
        if (snprintf(r2, sizeof(r2), "%s/%s", rel, e->d_name) >= (int)sizeof(r2))
            continue;
        snprintf(p2, sizeof(p2), "%s/%s", root, r2);
        struct stat st;
        if (lstat(p2, &st) != 0)
            continue;
        rc = S_ISDIR(st.st_mode) ? walk(a, root, r2) : add_entry(a, p2, r2);
    }
    closedir(d);
    return rc;
}

int pb_archive_estimate(uint64_t *zbytes, uint64_t *raw, const char *plex_dir, int what, int level,
                        pb_error *err)
{
    int error = 0;
    arch a;
    memset(&a, 0, sizeof(a));
    a.err = err;
    *zbytes = 0;
    if (raw)
        *raw = 0;
    a.cx = ZSTD_createCCtx();
    a.in_cap = ZSTD_CStreamInSize();
    a.out_cap = ZSTD_CStreamOutSize();
    a.in = malloc(a.in_cap);
    a.out = malloc(a.out_cap);
    if (!a.cx || !a.in || !a.out) {
        error = pb_error_set(err, PB_ENOMEM, "out of memory");
        goto done;
    }
    ZSTD_CCtx_setParameter(a.cx, ZSTD_c_compressionLevel, level > 0 ? level : 3);
    if ((error = add_entry(&a, plex_dir, "")) < 0)
        goto done;
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/" PB_PLEX_DB_REL, plex_dir);
    if ((error = add_entry(&a, p, PB_PLEX_DB_REL)) < 0)
        goto done;
    snprintf(p, sizeof(p), "%s/" PB_PLEX_BLOBS_REL, plex_dir);
    if ((error = add_entry(&a, p, PB_PLEX_BLOBS_REL)) < 0)
        goto done;
    if (what == PB_ARCHIVE_LIBRARY &&
        ((error = walk(&a, plex_dir, "Metadata")) < 0 || (error = walk(&a, plex_dir, "Media")) < 0))
        goto done;
    if ((error = flush_in(&a, ZSTD_e_end)) < 0)
        goto done;
    *zbytes = a.z;
    if (raw)
        *raw = a.raw;
done:
    ZSTD_freeCCtx(a.cx);
    free(a.in);
    free(a.out);
    free(a.links);
    return error;
}

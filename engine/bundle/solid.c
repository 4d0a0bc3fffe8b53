/*
 * run_solid.c: the solid transport form of a bundle (engine/run_int.h).
 * A bundle (docs/bundle.md) compresses every record on its own, so that the apply can stream and
 * check each one; for the many small files of a Plex metadata tree (Info.xml, posters' siblings)
 * that costs a third more bytes than one compression stream over all of them. Over the home link
 * the bundle therefore travels solid: the agent reads its bundle record by record (checked by the
 * strict reader) and writes one zstd stream (level 19) of the header and every record with its
 * decompressed payload; the home turns it back into a bundle with the bundle writer, which checks
 * each record's size and content hash again while it writes, and the apply verifies that bundle
 * as usual. The two bundles hold the same records; only their compressed bytes differ.
 *
 * FORMAT solid-v1, inside one zstd stream (integers little-endian):
 *   "PBSOLID1" | version u32 | flags u32 | base_main, base_blobs, target_main, target_blobs,
 *   home_root (16 each) | created_ns i64 | creator_len u16 | creator
 *   per record: type u8 | path_len u16 | link_len u16 | mode u32 | mtime_ns i64 | size u64 |
 *               hash (16) | basis (16) | path | link |
 *               payload as chunks: len u32 (1..1 MiB) | bytes, closed by a 0 u32 (no payload
 *               for hard links)
 *   end: type 0
 * Role: engine/agent.c (encode), engine/run_sync.c (decode). Memory: one 1 MiB chunk and zstd's
 * window (8 MiB at level 19) on each side. Prerequisites: libzstd, H7's bundle reader and writer.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "bytes.h"
#include "bundle.h"
#include "run_int.h"

#define MAGIC "PBSOLID1"
#define CHUNK (1u << 20)

/* ---- a zstd stream to an fd ---- */

typedef struct zout {
    ZSTD_CCtx *cx;
    int fd;
    uint8_t *out;
    size_t cap;
    uint64_t written;
} zout;

static int zo_write(zout *z, const void *data, size_t n, ZSTD_EndDirective end, pb_error *err)
{
    ZSTD_inBuffer ib = {data, n, 0};
    for (;;) {
        ZSTD_outBuffer ob = {z->out, z->cap, 0};
        size_t left = ZSTD_compressStream2(z->cx, &ob, &ib, end);
        if (ZSTD_isError(left))
            return pb_error_set(err, PB_ERROR, "solid: zstd: %s", ZSTD_getErrorName(left));
        for (size_t o = 0; o < ob.pos;) {
            ssize_t w = write(z->fd, z->out + o, ob.pos - o);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return pb_error_errno(err, "solid: write");
            o += (size_t)w;
        }
        z->written += ob.pos;
        if (end == ZSTD_e_continue ? ib.pos == ib.size : left == 0)
            return 0;
    }
}

/* ---- a zstd stream from an fd, read in exact amounts ---- */

typedef struct zin {
    ZSTD_DCtx *dx;
    int fd;
    uint8_t *in, *out;
    size_t in_cap, out_cap;
    ZSTD_inBuffer ib;
    size_t out_pos, out_len;
    int eof;
} zin;

static int zi_fill(zin *z, pb_error *err)
{
    for (;;) {
        if (z->ib.pos == z->ib.size && !z->eof) {
            ssize_t n = read(z->fd, z->in, z->in_cap);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return pb_error_errno(err, "solid: read");
            if (n == 0)
                z->eof = 1;
            z->ib.src = z->in;
            z->ib.size = (size_t)n;
            z->ib.pos = 0;
        }
        ZSTD_outBuffer ob = {z->out, z->out_cap, 0};
        size_t rc = ZSTD_decompressStream(z->dx, &ob, &z->ib);
        if (ZSTD_isError(rc))
            return pb_error_set(err, PB_ECORRUPT, "solid: zstd: %s", ZSTD_getErrorName(rc));
        if (ob.pos) {
            z->out_pos = 0;
            z->out_len = ob.pos;
            return 0;
        }
        if (z->eof && z->ib.pos == z->ib.size)
            return pb_error_set(err, PB_ECORRUPT, "solid: the stream is truncated");
    }
}

static int zi_read(zin *z, void *buf, size_t n, pb_error *err)
{
    uint8_t *p = buf;
    while (n) {
        if (z->out_pos == z->out_len) {
            int rc = zi_fill(z, err);
            if (rc)
                return rc;
        }
        size_t k = z->out_len - z->out_pos < n ? z->out_len - z->out_pos : n;
        memcpy(p, z->out + z->out_pos, k);
        z->out_pos += k;
        p += k;
        n -= k;
    }
    return 0;
}

int pb_run__solid_encode(uint64_t *out_bytes, const char *bundle, const char *solid, int level,
                         pb_error *err)
{
    int error = 0, in = -1;
    pb_bundle_reader *r = NULL;
    zout z;
    uint8_t *buf = NULL, hd[256];
    memset(&z, 0, sizeof(z));
    z.fd = -1;
    *out_bytes = 0;
    if ((in = open(bundle, O_RDONLY | O_CLOEXEC)) < 0)
        return pb_error_errno(err, "solid: cannot open %s", bundle);
    if ((z.fd = open(solid, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
        error = pb_error_errno(err, "solid: cannot create %s", solid);
        goto done;
    }
    z.cx = ZSTD_createCCtx();
    z.cap = ZSTD_CStreamOutSize();
    z.out = malloc(z.cap);
    buf = malloc(CHUNK);
    if (!z.cx || !z.out || !buf) {
        error = pb_error_set(err, PB_ENOMEM, "solid: out of memory");
        goto done;
    }
    ZSTD_CCtx_setParameter(z.cx, ZSTD_c_compressionLevel, level);
    if ((error = pb_bundle__reader_new(&r, pb_bundle__fd_in, &in, NULL, err)) < 0)
        goto done;
    const pb_bundle_header *h = pb_bundle__reader_header(r);
    size_t clen = strlen(h->creator);
    memcpy(hd, MAGIC, 8);
    pb_put_le32(hd + 8, h->version);
    pb_put_le32(hd + 12, h->flags);
    memcpy(hd + 16, h->base_main, 16);
    memcpy(hd + 32, h->base_blobs, 16);
    memcpy(hd + 48, h->target_main, 16);
    memcpy(hd + 64, h->target_blobs, 16);
    memcpy(hd + 80, h->home_root, 16);
    pb_put_le64(hd + 96, (uint64_t)h->created_ns);
    pb_put_le16(hd + 104, (uint16_t)clen);
    if ((error = zo_write(&z, hd, 106, ZSTD_e_continue, err)) < 0 ||
        (error = zo_write(&z, h->creator, clen, ZSTD_e_continue, err)) < 0)
        goto done;
    for (;;) {
        const pb_bundle_rec *rec;
        int rc = pb_bundle__reader_next(r, &rec, err);
        if (rc < 0) {
            error = rc;
            goto done;
        }
        if (rc == 0)
            break;
        hd[0] = (uint8_t)rec->type;
        pb_put_le16(hd + 1, (uint16_t)rec->path_len);
        pb_put_le16(hd + 3, (uint16_t)rec->link_len);
        pb_put_le32(hd + 5, rec->mode);
        pb_put_le64(hd + 9, (uint64_t)rec->mtime_ns);
        pb_put_le64(hd + 17, rec->size);
        memcpy(hd + 25, rec->hash, 16);
        memcpy(hd + 41, rec->basis, 16);
        if ((error = zo_write(&z, hd, 57, ZSTD_e_continue, err)) < 0 ||
            (error = zo_write(&z, rec->path, rec->path_len, ZSTD_e_continue, err)) < 0 ||
            (error = zo_write(&z, rec->link, rec->link_len, ZSTD_e_continue, err)) < 0)
            goto done;
        if (rec->type == PB_REC_LINK)
            continue;
        for (;;) {
            size_t got = 0;
            if ((error = pb_bundle__reader_read(r, buf + 4, CHUNK - 4, &got, err)) < 0)
                goto done;
            pb_put_le32(buf, (uint32_t)got);
            if ((error = zo_write(&z, buf, got + 4, ZSTD_e_continue, err)) < 0)
                goto done;
            if (!got)
                break;
        }
    }
    hd[0] = 0;
    if ((error = zo_write(&z, hd, 1, ZSTD_e_end, err)) < 0)
        goto done;
    if (fsync(z.fd) != 0) {
        error = pb_error_errno(err, "solid: fsync %s", solid);
        goto done;
    }
    *out_bytes = z.written;
done:
    pb_bundle__reader_free(r);
    ZSTD_freeCCtx(z.cx);
    free(z.out);
    free(buf);
    if (in >= 0)
        close(in);
    if (z.fd >= 0)
        close(z.fd);
    if (error)
        unlink(solid);
    return error;
}

int pb_run__solid_decode(const char *solid, const char *bundle, int level, pb_error *err)
{
    int error = 0, out = -1;
    pb_bundle_writer *w = NULL;
    zin z;
    uint8_t *buf = NULL, hd[128];
    pb_bundle_rec *rec = NULL;
    pb_bundle_header h;
    memset(&z, 0, sizeof(z));
    memset(&h, 0, sizeof(h));
    z.fd = -1;
    if ((z.fd = open(solid, O_RDONLY | O_CLOEXEC)) < 0)
        return pb_error_errno(err, "solid: cannot open %s", solid);
    if ((out = open(bundle, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
        error = pb_error_errno(err, "solid: cannot create %s", bundle);
        goto done;
    }
    z.dx = ZSTD_createDCtx();
    z.in_cap = ZSTD_DStreamInSize();
    z.out_cap = ZSTD_DStreamOutSize();
    z.in = malloc(z.in_cap);
    z.out = malloc(z.out_cap);
    buf = malloc(CHUNK);
    rec = calloc(1, sizeof(*rec));
    if (!z.dx || !z.in || !z.out || !buf || !rec) {
        error = pb_error_set(err, PB_ENOMEM, "solid: out of memory");
        goto done;
    }
    ZSTD_DCtx_setParameter(z.dx, ZSTD_d_windowLogMax, 27);
    if ((error = zi_read(&z, hd, 106, err)) < 0)
        goto done;
    if (memcmp(hd, MAGIC, 8) != 0) {
        error = pb_error_set(err, PB_ECORRUPT, "solid: %s is not a solid bundle", solid);
        goto done;
    }
    h.version = pb_get_le32(hd + 8);
    h.flags = pb_get_le32(hd + 12);
    memcpy(h.base_main, hd + 16, 16);
    memcpy(h.base_blobs, hd + 32, 16);
    memcpy(h.target_main, hd + 48, 16);
    memcpy(h.target_blobs, hd + 64, 16);
    memcpy(h.home_root, hd + 80, 16);
    h.created_ns = (int64_t)pb_get_le64(hd + 96);
    size_t clen = pb_get_le16(hd + 104);
    if (clen > PB_BUNDLE_CREATOR_MAX) {
        error = pb_error_set(err, PB_ECORRUPT, "solid: creator too long");
        goto done;
    }
    if ((error = zi_read(&z, h.creator, clen, err)) < 0)
        goto done;
    h.creator[clen] = '\0';
    if ((error = pb_bundle__writer_new(&w, &h, level, pb_bundle__fd_out, &out, err)) < 0)
        goto done;
    for (uint64_t i = 0;; i++) {
        if ((error = zi_read(&z, hd, 1, err)) < 0)
            goto done;
        if (hd[0] == 0)
            break;
        if ((error = zi_read(&z, hd + 1, 56, err)) < 0)
            goto done;
        memset(rec, 0, sizeof(*rec));
        rec->type = hd[0];
        rec->path_len = pb_get_le16(hd + 1);
        rec->link_len = pb_get_le16(hd + 3);
        rec->mode = pb_get_le32(hd + 5);
        rec->mtime_ns = (int64_t)pb_get_le64(hd + 9);
        rec->size = pb_get_le64(hd + 17);
        memcpy(rec->hash, hd + 25, 16);
        memcpy(rec->basis, hd + 41, 16);
        if (rec->path_len > PB_BUNDLE_PATH_MAX || rec->link_len > PB_BUNDLE_PATH_MAX) {
            error = pb_error_set(err, PB_ECORRUPT, "solid: record %llu: bad path lengths",
                                 (unsigned long long)i);
            goto done;
        }
        if ((error = zi_read(&z, rec->path, rec->path_len, err)) < 0 ||
            (error = zi_read(&z, rec->link, rec->link_len, err)) < 0)
            goto done;
        if ((error = pb_bundle__writer_begin(w, rec, err)) < 0)
            goto done;
        if (rec->type == PB_REC_LINK)
            continue;
        for (;;) {
            uint8_t lb[4];
            if ((error = zi_read(&z, lb, 4, err)) < 0)
                goto done;
            uint32_t n = pb_get_le32(lb);
            if (n == 0)
                break;
            if (n > CHUNK) {
                error = pb_error_set(err, PB_ECORRUPT, "solid: record %llu: chunk of %u bytes",
                                     (unsigned long long)i, n);
                goto done;
            }
            if ((error = zi_read(&z, buf, n, err)) < 0 ||
                (error = pb_bundle__writer_data(w, buf, n, err)) < 0)
                goto done;
        }
        if ((error = pb_bundle__writer_end(w, err)) < 0)
            goto done;
    }
    if ((error = pb_bundle__writer_finish(w, err)) < 0)
        goto done;
    if (fsync(out) != 0)
        error = pb_error_errno(err, "solid: fsync %s", bundle);
done:
    pb_bundle__writer_free(w);
    ZSTD_freeDCtx(z.dx);
    free(z.in);
    free(z.out);
    free(buf);
    free(rec);
    if (z.fd >= 0)
        close(z.fd);
    if (out >= 0)
        close(out);
    if (error)
        unlink(bundle);
    return error;
}

/*
 * bundle_write.c: the streaming bundle writer (engine/bundle/bundle_int.h; the format is specified
 * atop bundle.c): header, records compressed one zstd frame each and cut in chunks, record and
 * whole-bundle checksums, trailer. It checks that the bytes fed match each record's declared
 * size and hash, so a file that changed while it was read never ships.
 * Role: bundle/export_build.c writes bundles with it, solid.c rebuilds one from the solid form.
 * Memory: a 64 KiB output buffer, one 256 KiB chunk and zstd's window (8 MiB).
 * Prerequisites: libzstd, libxxhash.
 */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zstd.h>

#include "bundle_int.h"
#include "bytes.h"
#include "fingerprint_int.h"
#include "solid.h"

#define IO_BUF     (64u * 1024)
#define WCHUNK     (256u * 1024) /* chunk size the writer emits */
#define WINDOW_LOG 23            /* zstd window: 8 MiB */

struct pb_bundle_writer {
    pb_sink_fn out;
    void *out_payload;
    uint8_t *buf; /* output buffer (IO_BUF) */
    size_t len;
    uint8_t *chunk; /* compressed bytes of the current chunk (WCHUNK) */
    size_t chunk_len;
    XXH3_state_t *all, *rec, *content;
    ZSTD_CCtx *cctx;
    uint64_t bytes, records;
    int in_rec, has_payload, type;
    uint64_t fed, want_size;
    uint8_t want_hash[16];
    int failed;
    pb_solid_writer *tee; /* the solid form, written alongside (not owned) */
};

void pb_bundle__writer_tee(pb_bundle_writer *w, pb_solid_writer *solid)
{
    w->tee = solid;
}

static int w_flush(pb_bundle_writer *w, pb_error *err)
{
    if (w->len) {
        int error = w->out(w->out_payload, w->buf, w->len, err);
        if (error < 0)
            return error;
        w->len = 0;
    }
    return 0;
}

/* Emits raw bundle bytes: into the whole-bundle hash, the record hash when in a record. */
static int w_emit(pb_bundle_writer *w, const void *data, size_t n, int in_rec, pb_error *err)
{
    const uint8_t *p = data;
    XXH3_128bits_update(w->all, p, n);
    if (in_rec)
        XXH3_128bits_update(w->rec, p, n);
    w->bytes += n;
    while (n) {
        size_t room = IO_BUF - w->len, k = n < room ? n : room;
        memcpy(w->buf + w->len, p, k);
        w->len += k;
        p += k;
        n -= k;
        if (w->len == IO_BUF) {
            int error = w_flush(w, err);
            if (error < 0)
                return error;
        }
    }
    return 0;
}

static int w_chunk(pb_bundle_writer *w, pb_error *err)
{
    uint8_t lenb[4];
    int error;
    if (!w->chunk_len)
        return 0;
    pb_put_le32(lenb, (uint32_t)w->chunk_len);
    if ((error = w_emit(w, lenb, 4, 1, err)) < 0 ||
        (error = w_emit(w, w->chunk, w->chunk_len, 1, err)) < 0)
        return error;
    w->chunk_len = 0;
    return 0;
}

int pb_bundle__writer_new(pb_bundle_writer **out, const pb_bundle_header *h, int zlevel,
                          pb_sink_fn fn, void *out_payload, pb_error *err)
{
    int error = 0;
    pb_bundle_writer *w = calloc(1, sizeof(*w));
    uint8_t hd[PB_BUNDLE_HEADER_FIXED + PB_BUNDLE_CREATOR_MAX + 16];
    size_t clen = strlen(h->creator);

    *out = NULL;
    if (!w || !(w->buf = malloc(IO_BUF)) || !(w->chunk = malloc(WCHUNK)) ||
        !(w->all = XXH3_createState()) || !(w->rec = XXH3_createState()) ||
        !(w->content = XXH3_createState()) || !(w->cctx = ZSTD_createCCtx())) {
        error = pb_error_set(err, PB_ENOMEM, "bundle writer: out of memory");
        goto done;
    }
    if (clen > PB_BUNDLE_CREATOR_MAX || (h->flags & ~PB_BUNDLE_FLAGS_KNOWN)) {
        error = pb_error_set(err, PB_EINVALID, "bundle writer: bad header (creator or flags)");
        goto done;
    }
    for (size_t i = 0; i < clen; i++)
        if ((unsigned char)h->creator[i] < 0x20 || (unsigned char)h->creator[i] > 0x7e) {
            error = pb_error_set(err, PB_EINVALID, "bundle writer: creator is not printable ASCII");
            goto done;
        }
    if (zlevel < 1 || zlevel > 19)
        zlevel = 19;
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, zlevel);
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_windowLog, WINDOW_LOG);
    w->out = fn;
    w->out_payload = out_payload;
    XXH3_128bits_reset(w->all);
    {
        pb_bundle_header v = *h;
        v.version = PB_BUNDLE_VERSION;
        pb_bundle__header_put(hd, PB_BUNDLE_MAGIC, &v, clen);
    }
    memcpy(hd + PB_BUNDLE_HEADER_FIXED, h->creator, clen);
    {
        XXH128_canonical_t c;
        XXH128_canonicalFromHash(&c, XXH3_128bits(hd, PB_BUNDLE_HEADER_FIXED + clen));
        memcpy(hd + PB_BUNDLE_HEADER_FIXED + clen, c.digest, 16);
    }
    if ((error = w_emit(w, hd, PB_BUNDLE_HEADER_FIXED + clen + 16, 0, err)) < 0)
        goto done;
    *out = w;
    w = NULL;
done:
    pb_bundle__writer_free(w);
    return error;
}

int pb_bundle__writer_begin(pb_bundle_writer *w, const pb_bundle_rec *r, pb_error *err)
{
    uint8_t hd[PB_BUNDLE_REC_FIXED];
    int error;

    if (w->failed || w->in_rec)
        return pb_error_set(err, PB_EINVALID, "bundle writer: record begun out of turn");
    if (r->path_len > PB_BUNDLE_PATH_MAX || r->link_len > PB_BUNDLE_PATH_MAX)
        return pb_error_set(err, PB_EINVALID, "bundle writer: path too long");
    memset(hd, 0, sizeof(hd));
    pb_bundle__rec_put(hd, &pb_bundle__rec_wide, r);
    XXH3_128bits_reset(w->rec);
    XXH3_128bits_reset(w->content);
    w->in_rec = 1;
    w->type = r->type;
    w->fed = 0;
    w->want_size = r->size;
    memcpy(w->want_hash, r->hash, 16);
    w->has_payload = r->type != PB_REC_LINK;
    w->chunk_len = 0;
    if ((error = w_emit(w, hd, sizeof(hd), 1, err)) < 0 ||
        (error = w_emit(w, r->path, r->path_len, 1, err)) < 0 ||
        (error = w_emit(w, r->link, r->link_len, 1, err)) < 0 ||
        (w->tee && (error = pb_solid_writer_begin(w->tee, r, err)) < 0)) {
        w->failed = 1;
        return error;
    }
    if (w->has_payload)
        ZSTD_CCtx_reset(w->cctx, ZSTD_reset_session_only);
    if (!w->has_payload)
        return pb_bundle__writer_end(w, err);
    return 0;
}

static int w_compress(pb_bundle_writer *w, const void *data, size_t n, ZSTD_EndDirective mode,
                      pb_error *err)
{
    ZSTD_inBuffer ib = {data, n, 0};
    for (;;) {
        ZSTD_outBuffer ob = {w->chunk, WCHUNK, w->chunk_len};
        size_t rem = ZSTD_compressStream2(w->cctx, &ob, &ib, mode);
        if (ZSTD_isError(rem))
            return pb_error_set(err, PB_ERROR, "bundle writer: zstd: %s", ZSTD_getErrorName(rem));
        w->chunk_len = ob.pos;
        if (w->chunk_len == WCHUNK) {
            int error = w_chunk(w, err);
            if (error < 0)
                return error;
        }
        if (mode == ZSTD_e_continue ? ib.pos == ib.size : rem == 0)
            return 0;
    }
}

int pb_bundle__writer_data(pb_bundle_writer *w, const void *data, size_t n, pb_error *err)
{
    int error;
    if (w->failed || !w->in_rec || !w->has_payload)
        return pb_error_set(err, PB_EINVALID, "bundle writer: data outside a record");
    XXH3_128bits_update(w->content, data, n);
    w->fed += n;
    if ((error = w_compress(w, data, n, ZSTD_e_continue, err)) < 0 ||
        (w->tee && (error = pb_solid_writer_data(w->tee, data, n, err)) < 0))
        w->failed = 1;
    return error;
}

int pb_bundle__writer_end(pb_bundle_writer *w, pb_error *err)
{
    int error = 0;
    uint8_t zero[4] = {0, 0, 0, 0}, sum[16];

    if (w->failed || !w->in_rec)
        return pb_error_set(err, PB_EINVALID, "bundle writer: no record to end");
    if (w->has_payload) {
        if (w->type != PB_REC_DELTA) {
            uint8_t h[16];
            pb_fp__dir_digest(h, w->content);
            if (w->fed != w->want_size || memcmp(h, w->want_hash, 16) != 0) {
                w->failed = 1;
                return pb_error_set(err, PB_ECONFLICT,
                                    "bundle writer: content changed while it was read (%llu "
                                    "bytes, %llu expected, or another hash)",
                                    (unsigned long long)w->fed, (unsigned long long)w->want_size);
            }
        }
        if ((error = w_compress(w, NULL, 0, ZSTD_e_end, err)) < 0 || (error = w_chunk(w, err)) < 0)
            goto fail;
    }
    if ((error = w_emit(w, zero, 4, 1, err)) < 0)
        goto fail;
    pb_fp__dir_digest(sum, w->rec);
    if ((error = w_emit(w, sum, 16, 0, err)) < 0)
        goto fail;
    if (w->tee && (error = pb_solid_writer_end(w->tee, err)) < 0)
        goto fail;
    w->in_rec = 0;
    w->records++;
    return 0;
fail:
    w->failed = 1;
    return error;
}

int pb_bundle__writer_finish(pb_bundle_writer *w, pb_error *err)
{
    uint8_t t[PB_BUNDLE_TRAILER_SIZE];
    int error;
    if (w->failed || w->in_rec)
        return pb_error_set(err, PB_EINVALID, "bundle writer: cannot finish here");
    memset(t, 0, sizeof(t));
    t[0] = 'Z';
    pb_put_le64(t + 8, w->records);
    pb_put_le64(t + 16, w->bytes + PB_BUNDLE_TRAILER_SIZE);
    if ((error = w_emit(w, t, 24, 0, err)) < 0)
        return error;
    pb_fp__dir_digest(t + 24, w->all);
    if ((error = w_emit(w, t + 24, 16, 0, err)) < 0)
        return error;
    return w_flush(w, err);
}

uint64_t pb_bundle__writer_bytes(const pb_bundle_writer *w)
{
    return w ? w->bytes : 0;
}

void pb_bundle__writer_free(pb_bundle_writer *w)
{
    if (!w)
        return;
    ZSTD_freeCCtx(w->cctx);
    XXH3_freeState(w->all);
    XXH3_freeState(w->rec);
    XXH3_freeState(w->content);
    free(w->chunk);
    free(w->buf);
    free(w);
}

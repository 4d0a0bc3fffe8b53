/*
 * zstream.c: streaming zstd compression and decompression between stdio streams.
 * Role: compresses changesets, DB snapshots and file records for transport; never holds more
 * than zstd's streaming buffers and match tables in memory (pb_zstd_compress_stream_ex can bound
 * the tables: a capped window with a known input size). Prerequisite: libzstd.
 */
#include <stdlib.h>
#include <zstd.h>

#include "zstream.h"

int pb_zstd_compress_stream(FILE *in, FILE *out, int level, int threads, uint64_t *in_bytes,
                            uint64_t *out_bytes, pb_error *err)
{
    pb_zstd_params p = {level, threads, 0, 0, 0};
    return pb_zstd_compress_stream_ex(in, out, &p, in_bytes, out_bytes, err);
}

int pb_zstd_compress_stream_ex(FILE *in, FILE *out, const pb_zstd_params *p, uint64_t *in_bytes,
                               uint64_t *out_bytes, pb_error *err)
{
    int error = 0, level = p->level, threads = p->threads;
    size_t in_cap = ZSTD_CStreamInSize(), out_cap = ZSTD_CStreamOutSize();
    void *ibuf = malloc(in_cap), *obuf = malloc(out_cap);
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    uint64_t nin = 0, nout = 0;

    if (!ibuf || !obuf || !cctx) {
        error = pb_error_set(err, PB_ENOMEM, "zstd: out of memory");
        goto done;
    }
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
    if (threads > 0)
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_nbWorkers, threads);
    if (p->window_log > 0) {
        size_t rc = ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, p->window_log);
        if (ZSTD_isError(rc)) {
            error = pb_error_set(err, PB_EINVALID, "zstd: window log %d: %s", p->window_log,
                                 ZSTD_getErrorName(rc));
            goto done;
        }
    }
    if (p->size_known)
        ZSTD_CCtx_setPledgedSrcSize(cctx, (unsigned long long)p->size);
    for (;;) {
        size_t n = fread(ibuf, 1, in_cap, in);
        if (ferror(in)) {
            error = pb_error_errno(err, "zstd: read failed");
            goto done;
        }
        nin += n;
        int last = n < in_cap;
        ZSTD_inBuffer ib = {ibuf, n, 0};
        size_t remaining;
        do {
            ZSTD_outBuffer ob = {obuf, out_cap, 0};
            remaining = ZSTD_compressStream2(cctx, &ob, &ib, last ? ZSTD_e_end : ZSTD_e_continue);
            if (ZSTD_isError(remaining)) {
                error = pb_error_set(err, PB_ERROR, "zstd: %s", ZSTD_getErrorName(remaining));
                goto done;
            }
            if (ob.pos && fwrite(obuf, 1, ob.pos, out) != ob.pos) {
                error = pb_error_errno(err, "zstd: write failed");
                goto done;
            }
            nout += ob.pos;
        } while (last ? remaining != 0 : ib.pos < ib.size);
        if (last)
            break;
    }
done:
    if (in_bytes)
        *in_bytes = nin;
    if (out_bytes)
        *out_bytes = nout;
    ZSTD_freeCCtx(cctx);
    free(ibuf);
    free(obuf);
    return error;
}

int pb_zstd_decompress_stream(FILE *in, FILE *out, uint64_t max_out, uint64_t *out_bytes,
                              pb_error *err)
{
    int error = 0;
    size_t in_cap = ZSTD_DStreamInSize(), out_cap = ZSTD_DStreamOutSize();
    void *ibuf = malloc(in_cap), *obuf = malloc(out_cap);
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    uint64_t nout = 0;
    size_t ret = 0;
    int any = 0;

    if (!ibuf || !obuf || !dctx) {
        error = pb_error_set(err, PB_ENOMEM, "zstd: out of memory");
        goto done;
    }
    for (;;) {
        size_t n = fread(ibuf, 1, in_cap, in);
        if (ferror(in)) {
            error = pb_error_errno(err, "zstd: read failed");
            goto done;
        }
        if (n == 0)
            break;
        any = 1;
        ZSTD_inBuffer ib = {ibuf, n, 0};
        while (ib.pos < ib.size) {
            ZSTD_outBuffer ob = {obuf, out_cap, 0};
            ret = ZSTD_decompressStream(dctx, &ob, &ib);
            if (ZSTD_isError(ret)) {
                error = pb_error_set(err, PB_ECORRUPT, "zstd: corrupt stream: %s",
                                     ZSTD_getErrorName(ret));
                goto done;
            }
            nout += ob.pos;
            if (max_out && nout > max_out) {
                error = pb_error_set(err, PB_ECORRUPT, "zstd: output exceeds %llu bytes",
                                     (unsigned long long)max_out);
                goto done;
            }
            if (ob.pos && fwrite(obuf, 1, ob.pos, out) != ob.pos) {
                error = pb_error_errno(err, "zstd: write failed");
                goto done;
            }
        }
    }
    if (!any || ret != 0)
        error = pb_error_set(err, PB_ECORRUPT, "zstd: truncated stream");
done:
    if (out_bytes)
        *out_bytes = nout;
    ZSTD_freeDCtx(dctx);
    free(ibuf);
    free(obuf);
    return error;
}

/*
 * bundle_read.c: the strict streaming bundle reader (engine/bundle/bundle_int.h). It enforces every
 * reader rule of the format (atop bundle.c) while streaming: the first violation is a one-line
 * error naming the record and its byte offset.
 * Role: bundle_verify.c, apply/stage.c, solid.c (encode) and the fuzz target read bundles with it.
 * Memory: a 64 KiB input buffer, zstd's decompression window (<= 8 MiB), two path buffers.
 * Prerequisites: libzstd, libxxhash.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zstd.h>

#include "bundle_int.h"
#include "bytes.h"
#include "fingerprint_int.h"

/* libFuzzer builds (tests/fuzz) compute checksums but do not enforce them, so that mutated
 * inputs reach the checks behind them; never defined in a normal build. */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define SUM_DIFFERS(a, b) (0 && memcmp((a), (b), 16) != 0)
#else
#define SUM_DIFFERS(a, b) (memcmp((a), (b), 16) != 0)
#endif
#define IO_BUF      (64u * 1024)
#define WINDOW_LOG  23 /* zstd window: 8 MiB */
#define DELTA_SLACK (1ull << 20)

enum { R_BETWEEN = 0, R_PAYLOAD = 1, R_DONE = 2, R_FAILED = 3 };

struct pb_bundle_reader {
    pb_source_fn in;
    void *in_payload;
    uint8_t *ibuf;
    size_t ipos, ilen;
    int eof;
    uint64_t off; /* bytes consumed */
    XXH3_state_t *all, *rec, *content;
    pb_bundle_limits lim;
    pb_bundle_header h;
    pb_bundle_rec cur;
    int state;
    int ctx;         /* what errors name: 0 the header, 1 the current record, 2 the trailer */
    uint64_t ctx_at; /* offset of the trailer */
    uint64_t records;
    int stage; /* 0 nothing yet, 1 after C, 2 after B, 3 files */
    char prev[PB_BUNDLE_PATH_MAX + 1];
    size_t prev_len;
    /* payload */
    ZSTD_DCtx *dctx;
    uint8_t *zin;
    size_t zpos, zlen;
    uint32_t chunk_left;
    int payload_end, frame_done, frame_started, flush_pending;
    uint64_t payload, out_total, out_max;
    uint8_t checksum[16];
};

int pb_bundle__reader_fail(pb_bundle_reader *r, int code, pb_error *err, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (r->ctx == 1)
        pb_error_set(err, code, "bundle: record %llu at offset %llu: %s",
                     (unsigned long long)r->cur.index, (unsigned long long)r->cur.offset, msg);
    else if (r->ctx == 2)
        pb_error_set(err, code, "bundle: trailer at offset %llu: %s", (unsigned long long)r->ctx_at,
                     msg);
    else
        pb_error_set(err, code, "bundle: header at offset %llu: %s", (unsigned long long)r->off,
                     msg);
    r->state = R_FAILED;
    return code;
}

/* Reads exactly n raw bytes (hashing them into the whole-bundle hash and, when rec, the
 * record hash); EOF before n bytes is a truncation. */
static int r_raw(pb_bundle_reader *r, void *dst, size_t n, int rec, const char *what, pb_error *err)
{
    uint8_t *d = dst;
    while (n) {
        if (r->ipos == r->ilen) {
            size_t got = 0;
            int error;
            if (r->eof || (error = r->in(r->in_payload, r->ibuf, IO_BUF, &got, err)) < 0) {
                if (r->eof)
                    return pb_bundle__reader_fail(r, PB_ECORRUPT, err,
                                                  "truncated (end of file in %s)", what);
                r->state = R_FAILED;
                return error;
            }
            if (got == 0) {
                r->eof = 1;
                return pb_bundle__reader_fail(r, PB_ECORRUPT, err, "truncated (end of file in %s)",
                                              what);
            }
            r->ipos = 0;
            r->ilen = got;
        }
        size_t k = r->ilen - r->ipos;
        if (k > n)
            k = n;
        memcpy(d, r->ibuf + r->ipos, k);
        XXH3_128bits_update(r->all, d, k);
        if (rec)
            XXH3_128bits_update(r->rec, d, k);
        r->ipos += k;
        r->off += k;
        d += k;
        n -= k;
    }
    return 0;
}

/* 1 when the input is at its end (no byte left). */
static int r_at_eof(pb_bundle_reader *r, pb_error *err, int *error)
{
    *error = 0;
    if (r->ipos < r->ilen)
        return 0;
    if (r->eof)
        return 1;
    size_t got = 0;
    if ((*error = r->in(r->in_payload, r->ibuf, IO_BUF, &got, err)) < 0)
        return 0;
    r->ipos = 0;
    r->ilen = got;
    if (!got)
        r->eof = 1;
    return got == 0;
}

int pb_bundle__reader_new(pb_bundle_reader **out, pb_source_fn in, void *in_payload,
                          const pb_bundle_limits *lim, pb_error *err)
{
    int error = 0;
    pb_bundle_reader *r = calloc(1, sizeof(*r));
    uint8_t hd[PB_BUNDLE_HEADER_FIXED + PB_BUNDLE_CREATOR_MAX], sum[16], want[16];
    pb_bundle_limits def = PB_BUNDLE_LIMITS_INIT;

    *out = NULL;
    if (!r || !(r->ibuf = malloc(IO_BUF)) || !(r->zin = malloc(IO_BUF)) ||
        !(r->all = XXH3_createState()) || !(r->rec = XXH3_createState()) ||
        !(r->content = XXH3_createState()) || !(r->dctx = ZSTD_createDCtx())) {
        error = pb_error_set(err, PB_ENOMEM, "bundle reader: out of memory");
        goto done;
    }
    ZSTD_DCtx_setParameter(r->dctx, ZSTD_d_windowLogMax, WINDOW_LOG);
    r->in = in;
    r->in_payload = in_payload;
    r->lim = lim ? *lim : def;
    if (!r->lim.max_payload)
        r->lim.max_payload = def.max_payload;
    if (!r->lim.max_size)
        r->lim.max_size = def.max_size;
    if (!r->lim.max_records)
        r->lim.max_records = def.max_records;
    XXH3_128bits_reset(r->all);
    if ((error = r_raw(r, hd, PB_BUNDLE_HEADER_FIXED, 0, "the header", err)) < 0)
        goto done;
    if (memcmp(hd, PB_BUNDLE_MAGIC, 8) != 0) {
        error = pb_bundle__reader_fail(r, PB_ECORRUPT, err, "not a plexburst bundle (bad magic)");
        goto done;
    }
    size_t clen = pb_bundle__header_get(&r->h, hd);
    if (r->h.version != PB_BUNDLE_VERSION) {
        error = pb_bundle__reader_fail(r, PB_ECORRUPT, err, "unsupported format version %u",
                                       (unsigned)r->h.version);
        goto done;
    }
    if (r->h.flags & ~PB_BUNDLE_FLAGS_KNOWN) {
        error = pb_bundle__reader_fail(r, PB_ECORRUPT, err, "unknown header flags 0x%x",
                                       (unsigned)r->h.flags);
        goto done;
    }
    if (clen > PB_BUNDLE_CREATOR_MAX) {
        error = pb_bundle__reader_fail(r, PB_ECORRUPT, err, "creator string too long (%zu bytes)",
                                       clen);
        goto done;
    }
    if ((error = r_raw(r, hd + PB_BUNDLE_HEADER_FIXED, clen, 0, "the header", err)) < 0)
        goto done;
    for (size_t i = 0; i < clen; i++) {
        unsigned char c = hd[PB_BUNDLE_HEADER_FIXED + i];
        if (c < 0x20 || c > 0x7e) {
            error = pb_bundle__reader_fail(r, PB_ECORRUPT, err, "creator is not printable ASCII");
            goto done;
        }
    }
    memcpy(r->h.creator, hd + PB_BUNDLE_HEADER_FIXED, clen);
    r->h.creator[clen] = '\0';
    {
        XXH128_canonical_t c;
        XXH128_canonicalFromHash(&c, XXH3_128bits(hd, PB_BUNDLE_HEADER_FIXED + clen));
        memcpy(want, c.digest, 16);
    }
    if ((error = r_raw(r, sum, 16, 0, "the header checksum", err)) < 0)
        goto done;
    if (SUM_DIFFERS(sum, want)) {
        error = pb_bundle__reader_fail(r, PB_ECORRUPT, err, "header checksum mismatch");
        goto done;
    }
    /* a bundle always goes from one DB checksum to another: zero ids name no DB */
    int blobs = (r->h.flags & PB_BUNDLE_FLAG_BLOBS) != 0;
    if (pb_bundle__is_zero(r->h.base_main, 16) || pb_bundle__is_zero(r->h.target_main, 16) ||
        (blobs &&
         (pb_bundle__is_zero(r->h.base_blobs, 16) || pb_bundle__is_zero(r->h.target_blobs, 16)))) {
        error = pb_bundle__reader_fail(r, PB_ECORRUPT, err,
                                       "a base or target DB id is zero (no DB has it)");
        goto done;
    }
    *out = r;
    r = NULL;
done:
    pb_bundle__reader_free(r);
    return error;
}

const pb_bundle_header *pb_bundle__reader_header(const pb_bundle_reader *r)
{
    return &r->h;
}

uint64_t pb_bundle__reader_offset(const pb_bundle_reader *r)
{
    return r->off;
}

const uint8_t *pb_bundle__reader_checksum(const pb_bundle_reader *r)
{
    return r->state == R_DONE ? r->checksum : NULL;
}

/* Reads the next chunk length; 0 at the end chunk. */
static int r_chunk_len(pb_bundle_reader *r, uint32_t *len, pb_error *err)
{
    uint8_t b[4];
    int error = r_raw(r, b, 4, 1, "a payload chunk", err);
    if (error < 0)
        return error;
    *len = pb_get_le32(b);
    if (*len > PB_BUNDLE_CHUNK_MAX)
        return pb_bundle__reader_fail(r, PB_ECORRUPT, err, "chunk of %u bytes (max %u)",
                                      (unsigned)*len, PB_BUNDLE_CHUNK_MAX);
    if (r->cur.type == PB_REC_LINK && *len)
        return pb_bundle__reader_fail(r, PB_ECORRUPT, err, "hard-link record with a payload");
    if (r->payload + *len > r->lim.max_payload)
        return pb_bundle__reader_fail(r, PB_ECORRUPT, err,
                                      "payload exceeds the maximum of %llu bytes",
                                      (unsigned long long)r->lim.max_payload);
    r->payload += *len;
    return 0;
}

/* The end of a payload: size, frame, record checksum and content hash checks. */
static int r_payload_end(pb_bundle_reader *r, pb_error *err)
{
    uint8_t sum[16], want[16];
    int error;

    if (r->cur.type != PB_REC_LINK) {
        if (r->frame_started && !r->frame_done)
            return pb_bundle__reader_fail(r, PB_ECORRUPT, err, "zstd frame truncated");
        if (r->cur.type == PB_REC_DELTA) {
            if (!r->frame_started)
                return pb_bundle__reader_fail(r, PB_ECORRUPT, err, "empty delta");
        } else if (r->out_total != r->cur.size) {
            return pb_bundle__reader_fail(
                r, PB_ECORRUPT, err, "payload decompresses to %llu bytes, %llu declared",
                (unsigned long long)r->out_total, (unsigned long long)r->cur.size);
        }
    }
    pb_fp__dir_digest(want, r->rec);
    if ((error = r_raw(r, sum, 16, 0, "the record checksum", err)) < 0)
        return error;
    if (SUM_DIFFERS(sum, want))
        return pb_bundle__reader_fail(r, PB_ECORRUPT, err, "record checksum mismatch");
    if (r->cur.type != PB_REC_LINK && r->cur.type != PB_REC_DELTA) {
        pb_fp__dir_digest(want, r->content);
        if (SUM_DIFFERS(want, r->cur.hash))
            return pb_bundle__reader_fail(r, PB_ECORRUPT, err,
                                          "content does not match its XXH3-128");
    }
    r->cur.payload = r->payload;
    r->payload_end = 1;
    return 0;
}

int pb_bundle__reader_read(pb_bundle_reader *r, void *buf, size_t cap, size_t *got, pb_error *err)
{
    int error;
    *got = 0;
    if (r->state != R_PAYLOAD)
        return r->state == R_FAILED ? pb_error_set(err, PB_ECORRUPT, "bundle: reader failed") : 0;
    for (;;) {
        if (r->payload_end)
            return 0;
        if (r->zpos < r->zlen || r->flush_pending) {
            if (r->frame_done) {
                if (r->zpos < r->zlen)
                    return pb_bundle__reader_fail(r, PB_ECORRUPT, err,
                                                  "data after the end of the zstd frame");
                r->flush_pending = 0;
                continue;
            }
            ZSTD_outBuffer ob = {buf, cap, 0};
            ZSTD_inBuffer ib = {r->zin + r->zpos, r->zlen - r->zpos, 0};
            size_t ret = ZSTD_decompressStream(r->dctx, &ob, &ib);
            if (ZSTD_isError(ret))
                return pb_bundle__reader_fail(r, PB_ECORRUPT, err, "zstd: %s",
                                              ZSTD_getErrorName(ret));
            r->zpos += ib.pos;
            r->flush_pending = ob.pos == ob.size;
            if (ret == 0) {
                r->frame_done = 1;
                r->flush_pending = 0;
            }
            if (ob.pos) {
                r->out_total += ob.pos;
                if (r->out_total > r->out_max)
                    return pb_bundle__reader_fail(
                        r, PB_ECORRUPT, err, "payload decompresses beyond its bound (%llu bytes)",
                        (unsigned long long)r->out_max);
                XXH3_128bits_update(r->content, buf, ob.pos);
                *got = ob.pos;
                return 0;
            }
            if (ib.pos == 0 && r->zpos < r->zlen && !r->frame_done)
                return pb_bundle__reader_fail(r, PB_ECORRUPT, err, "zstd made no progress");
            continue;
        }
        /* need input */
        if (!r->chunk_left) {
            uint32_t len;
            if ((error = r_chunk_len(r, &len, err)) < 0)
                return error;
            if (len == 0) {
                if ((error = r_payload_end(r, err)) < 0)
                    return error;
                continue;
            }
            if (r->frame_done)
                return pb_bundle__reader_fail(r, PB_ECORRUPT, err,
                                              "data after the end of the zstd frame");
            r->chunk_left = len;
        }
        size_t k = r->chunk_left < IO_BUF ? r->chunk_left : IO_BUF;
        if ((error = r_raw(r, r->zin, k, 1, "a payload chunk", err)) < 0)
            return error;
        r->chunk_left -= (uint32_t)k;
        r->zpos = 0;
        r->zlen = k;
        r->frame_started = 1;
    }
}

static int r_finish_record(pb_bundle_reader *r, pb_error *err)
{
    char scratch[16384];
    size_t got;
    int error;
    do {
        if ((error = pb_bundle__reader_read(r, scratch, sizeof(scratch), &got, err)) < 0)
            return error;
    } while (got);
    r->state = R_BETWEEN;
    return 0;
}

static int r_trailer(pb_bundle_reader *r, const uint8_t first[1], pb_error *err)
{
    uint8_t t[PB_BUNDLE_TRAILER_SIZE], want[16];
    int error;
    uint64_t at = r->off - 1;

    t[0] = first[0];
    r->ctx = 2;
    r->ctx_at = at;
    if ((error = r_raw(r, t + 1, 23, 0, "the trailer", err)) < 0)
        return error;
    pb_fp__dir_digest(want, r->all);
    if ((error = r_raw(r, t + 24, 16, 0, "the trailer", err)) < 0)
        return error;
    if (!pb_bundle__is_zero(t + 1, 7))
        return pb_bundle__reader_fail(r, PB_ECORRUPT, err, "bad reserved bytes");
    if (pb_get_le64(t + 8) != r->records)
        return pb_bundle__reader_fail(r, PB_ECORRUPT, err, "%llu records announced, %llu read",
                                      (unsigned long long)pb_get_le64(t + 8),
                                      (unsigned long long)r->records);
    if (pb_get_le64(t + 16) != r->off)
        return pb_bundle__reader_fail(r, PB_ECORRUPT, err, "length %llu announced, %llu read",
                                      (unsigned long long)pb_get_le64(t + 16),
                                      (unsigned long long)r->off);
    if (SUM_DIFFERS(want, t + 24))
        return pb_bundle__reader_fail(r, PB_ECORRUPT, err, "whole-bundle checksum mismatch");
    if (!r_at_eof(r, err, &error)) {
        if (error < 0)
            return error;
        return pb_bundle__reader_fail(r, PB_ECORRUPT, err, "trailing bytes after the trailer");
    }
    memcpy(r->checksum, t + 24, 16);
    r->state = R_DONE;
    return 0;
}

/* The rules of a changeset record: no file fields, C before B, both before the files. */
static int check_cs_record(pb_bundle_reader *r, pb_error *err)
{
    const pb_bundle_rec *c = &r->cur;
    int st = c->type == PB_REC_MAIN_CS ? 1 : 2;
    if (c->path_len || c->link_len || c->mode || c->mtime_ns || !pb_bundle__is_zero(c->basis, 16))
        return pb_bundle__reader_fail(r, PB_ECORRUPT, err, "changeset record with file fields");
    if (r->stage >= st)
        return pb_bundle__reader_fail(r, PB_ECORRUPT, err, "changeset record out of order");
    r->stage = st;
    return 0;
}

/* The rules of a file record: its path (and link target), mode, mtime, and the walk order. */
static int check_file_record(pb_bundle_reader *r, pb_error *err)
{
    const pb_bundle_rec *c = &r->cur;
    char why[300];
    if (pb_bundle__path_check(c->path, c->path_len, why, sizeof(why)) < 0)
        return pb_bundle__reader_fail(r, PB_EUNSAFE, err, "%s", why);
    if (c->mode & ~0777u)
        return pb_bundle__reader_fail(r, PB_EUNSAFE, err, "mode 0%o has bits beyond 0777",
                                      (unsigned)c->mode);
    if (c->mtime_ns < 0)
        return pb_bundle__reader_fail(r, PB_ECORRUPT, err, "negative mtime");
    if (c->type == PB_REC_LINK) {
        if (pb_bundle__path_check(c->link, c->link_len, why, sizeof(why)) < 0)
            return pb_bundle__reader_fail(r, PB_EUNSAFE, err, "link target: %s", why);
        if (pb_bundle__pathcmp(c->link, c->link_len, c->path, c->path_len) >= 0)
            return pb_bundle__reader_fail(r, PB_ECORRUPT, err, "hard link to a later path '%s'",
                                          c->link);
    } else if (c->link_len) {
        return pb_bundle__reader_fail(r, PB_ECORRUPT, err, "link target on a non-link record");
    }
    if (r->stage == 3 && pb_bundle__pathcmp(r->prev, r->prev_len, c->path, c->path_len) >= 0)
        return pb_bundle__reader_fail(r, PB_ECORRUPT, err, "path '%s' out of order or duplicated",
                                      c->path);
    r->stage = 3;
    memcpy(r->prev, c->path, c->path_len + 1);
    r->prev_len = c->path_len;
    return 0;
}

int pb_bundle__reader_next(pb_bundle_reader *r, const pb_bundle_rec **out, pb_error *err)
{
    uint8_t hd[PB_BUNDLE_REC_FIXED];
    int error;
    pb_bundle_rec *c = &r->cur;

    *out = NULL;
    if (r->state == R_FAILED)
        return pb_error_set(err, PB_ECORRUPT, "bundle: reader failed");
    if (r->state == R_DONE)
        return 0;
    if (r->state == R_PAYLOAD && (error = r_finish_record(r, err)) < 0)
        return error;
    uint64_t at = r->off;
    XXH3_128bits_reset(r->rec);
    if ((error = r_raw(r, hd, 1, 1, "a record", err)) < 0) {
        if (r->eof && r->off == at) {
            pb_error_clear(err);
            r->state = R_FAILED;
            return pb_error_set(err, PB_ECORRUPT,
                                "bundle: truncated at offset %llu after %llu records (no trailer)",
                                (unsigned long long)at, (unsigned long long)r->records);
        }
        return error;
    }
    if (hd[0] == 'Z')
        return r_trailer(r, hd, err);
    memset(c, 0, offsetof(pb_bundle_rec, path));
    c->path[0] = c->link[0] = '\0';
    c->index = r->records;
    c->offset = at;
    c->type = hd[0];
    r->state = R_PAYLOAD;
    r->ctx = 1; /* errors now name the record */
    if (r->records >= r->lim.max_records)
        return pb_bundle__reader_fail(r, PB_ECORRUPT, err, "more than %llu records",
                                      (unsigned long long)r->lim.max_records);
    if ((error = r_raw(r, hd + 1, PB_BUNDLE_REC_FIXED - 1, 1, "a record header", err)) < 0)
        return error;
    pb_bundle__rec_get(c, &pb_bundle__rec_wide, hd);
    if (hd[1] || pb_get_le16(hd + 6) || pb_get_le32(hd + 12))
        return pb_bundle__reader_fail(r, PB_ECORRUPT, err, "non-zero reserved field");
    int is_cs = c->type == PB_REC_MAIN_CS || c->type == PB_REC_BLOBS_CS;
    int is_file = c->type == PB_REC_NEW || c->type == PB_REC_DELTA || c->type == PB_REC_LINK;
    if (!is_cs && !is_file)
        return pb_bundle__reader_fail(r, PB_ECORRUPT, err, "unknown record type 0x%02x",
                                      (unsigned)c->type);
    if (c->path_len > PB_BUNDLE_PATH_MAX || c->link_len > PB_BUNDLE_PATH_MAX)
        return pb_bundle__reader_fail(r, PB_EUNSAFE, err, "path longer than %d bytes",
                                      PB_BUNDLE_PATH_MAX);
    if (c->size > r->lim.max_size)
        return pb_bundle__reader_fail(
            r, PB_ECORRUPT, err, "declared size %llu exceeds the maximum of %llu",
            (unsigned long long)c->size, (unsigned long long)r->lim.max_size);
    if ((error = r_raw(r, c->path, c->path_len, 1, "a record path", err)) < 0 ||
        (error = r_raw(r, c->link, c->link_len, 1, "a record path", err)) < 0)
        return error;
    c->path[c->path_len] = '\0';
    c->link[c->link_len] = '\0';
    if ((error = is_cs ? check_cs_record(r, err) : check_file_record(r, err)) < 0)
        return error;
    /* payload state */
    ZSTD_DCtx_reset(r->dctx, ZSTD_reset_session_only);
    XXH3_128bits_reset(r->content);
    r->zpos = r->zlen = 0;
    r->chunk_left = 0;
    r->payload_end = r->frame_done = r->frame_started = r->flush_pending = 0;
    r->payload = r->out_total = 0;
    r->out_max = c->type == PB_REC_DELTA ? c->size + c->size / 8 + DELTA_SLACK : c->size;
    r->records++;
    *out = c;
    return 1;
}

void pb_bundle__reader_free(pb_bundle_reader *r)
{
    if (!r)
        return;
    ZSTD_freeDCtx(r->dctx);
    XXH3_freeState(r->all);
    XXH3_freeState(r->rec);
    XXH3_freeState(r->content);
    free(r->zin);
    free(r->ibuf);
    free(r);
}

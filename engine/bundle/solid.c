/*
 * solid.c: the solid transport form of a bundle (engine/bundle/solid.h).
 * A bundle (format atop bundle.c) compresses every record on its own, so that the apply can
 * stream and check each one; for the many small files of a Plex metadata tree (Info.xml,
 * posters' siblings) that costs a third more bytes than one compression stream over all of them.
 * Over the home link the bundle therefore travels solid: the agent writes one zstd stream
 * (level 19) of the header and every record with its decompressed payload, and the home turns it
 * back into a bundle with the bundle writer, which checks each record's size and content hash
 * again while it writes; the home then verifies that bundle once (pb_bundle_verified_make). The
 * two bundles hold the same records; only their compressed bytes differ. The XXH3-128 of the
 * solid file is computed while it is written and while it is read (no extra pass).
 *
 * FORMAT solid-v1, inside one zstd stream (integers little-endian):
 *   "PBSOLID1" | the bundle header's fixed fields after its magic (pb_bundle__header_put:
 *   version u32 | flags u32 | base_main, base_blobs, target_main, target_blobs, home_root (16
 *   each) | created_ns i64 | creator_len u16) | creator
 *   per record: type u8 | path_len u16 | link_len u16 | mode u32 | mtime_ns i64 | size u64 |
 *               hash (16) | basis (16) | path | link |
 *               payload as chunks: len u32 (1..1 MiB) | bytes, closed by a 0 u32 (no payload
 *               for hard links)
 *   end: type 0
 * Role: the agent encodes (run/agent.c), the sync decodes (run/sync.c). Memory: one 1 MiB chunk
 * and zstd's window (8 MiB at level 19) on each side. Prerequisites: libzstd, libxxhash, the
 * bundle reader and writer.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "buf.h"
#include "bundle_int.h"
#include "bytes.h"
#include "fingerprint_int.h"
#include "fs.h"
#include "hex.h"
#include "solid.h"

#define MAGIC     "PBSOLID1"
#define CHUNK     (1u << 20)
#define REC_FIXED 57 /* bytes of a record header before its paths */

/* ---- the writer: a zstd stream to an fd, hashed as written ---- */

struct pb_solid_writer {
    ZSTD_CCtx *cx;
    int fd;
    char *path;
    uint8_t *out;
    size_t cap;
    uint64_t written;
    XXH3_state_t *st;
    int in_payload; /* a record's payload is open (its chunks follow) */
};

static int zo_write(pb_solid_writer *z, const void *data, size_t n, ZSTD_EndDirective end,
                    pb_error *err)
{
    ZSTD_inBuffer ib = {data, n, 0};
    for (;;) {
        ZSTD_outBuffer ob = {z->out, z->cap, 0};
        size_t left = ZSTD_compressStream2(z->cx, &ob, &ib, end);
        if (ZSTD_isError(left))
            return pb_error_set(err, PB_ERROR, "solid: zstd: %s", ZSTD_getErrorName(left));
        int error = pb_fs_write_all(z->fd, z->out, ob.pos, "solid", err);
        if (error < 0)
            return error;
        XXH3_128bits_update(z->st, z->out, ob.pos);
        z->written += ob.pos;
        if (end == ZSTD_e_continue ? ib.pos == ib.size : left == 0)
            return 0;
    }
}

int pb_solid_writer_new(pb_solid_writer **out, const char *path, int level,
                        const pb_bundle_header *h, pb_error *err)
{
    int error = 0;
    uint8_t hd[PB_BUNDLE_HEADER_FIXED];
    size_t clen = strlen(h->creator);
    pb_solid_writer *z = calloc(1, sizeof(*z));
    *out = NULL;
    if (!z)
        return pb_error_set(err, PB_ENOMEM, "solid: out of memory");
    z->fd = -1;
    z->cx = ZSTD_createCCtx();
    z->cap = ZSTD_CStreamOutSize();
    z->out = malloc(z->cap);
    z->st = XXH3_createState();
    z->path = strdup(path);
    if (!z->cx || !z->out || !z->st || !z->path) {
        error = pb_error_set(err, PB_ENOMEM, "solid: out of memory");
        goto done;
    }
    XXH3_128bits_reset(z->st);
    ZSTD_CCtx_setParameter(z->cx, ZSTD_c_compressionLevel, level);
    if ((z->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
        error = pb_error_errno(err, "solid: cannot create %s", path);
        goto done;
    }
    pb_bundle__header_put(hd, MAGIC, h, clen);
    if ((error = zo_write(z, hd, sizeof(hd), ZSTD_e_continue, err)) < 0 ||
        (error = zo_write(z, h->creator, clen, ZSTD_e_continue, err)) < 0)
        goto done;
    *out = z;
    z = NULL;
done:
    pb_solid_writer_free(z);
    return error;
}

int pb_solid_writer_begin(pb_solid_writer *z, const pb_bundle_rec *rec, pb_error *err)
{
    uint8_t hd[REC_FIXED];
    int error;
    pb_bundle__rec_put(hd, &pb_bundle__rec_packed, rec);
    if ((error = zo_write(z, hd, sizeof(hd), ZSTD_e_continue, err)) < 0 ||
        (error = zo_write(z, rec->path, rec->path_len, ZSTD_e_continue, err)) < 0 ||
        (error = zo_write(z, rec->link, rec->link_len, ZSTD_e_continue, err)) < 0)
        return error;
    z->in_payload = rec->type != PB_REC_LINK;
    return 0;
}

int pb_solid_writer_data(pb_solid_writer *z, const void *data, size_t n, pb_error *err)
{
    const uint8_t *p = data;
    while (n) {
        uint8_t lb[4];
        size_t k = n < CHUNK ? n : CHUNK;
        int error;
        pb_put_le32(lb, (uint32_t)k);
        if ((error = zo_write(z, lb, 4, ZSTD_e_continue, err)) < 0 ||
            (error = zo_write(z, p, k, ZSTD_e_continue, err)) < 0)
            return error;
        p += k;
        n -= k;
    }
    return 0;
}

int pb_solid_writer_end(pb_solid_writer *z, pb_error *err)
{
    uint8_t zero[4] = {0, 0, 0, 0};
    if (!z->in_payload)
        return 0;
    z->in_payload = 0;
    return zo_write(z, zero, 4, ZSTD_e_continue, err);
}

int pb_solid_writer_finish(pb_solid_writer *z, uint64_t *bytes, uint8_t hash[16], pb_error *err)
{
    uint8_t end = 0;
    int error;
    if ((error = zo_write(z, &end, 1, ZSTD_e_end, err)) < 0)
        return error;
    if (fsync(z->fd) != 0)
        return pb_error_errno(err, "solid: fsync %s", z->path);
    if (bytes)
        *bytes = z->written;
    if (hash)
        pb_fp__dir_digest(hash, z->st);
    close(z->fd);
    z->fd = -1;
    free(z->path); /* finished: kept */
    z->path = NULL;
    return 0;
}

void pb_solid_writer_free(pb_solid_writer *z)
{
    if (!z)
        return;
    if (z->fd >= 0)
        close(z->fd);
    if (z->path)
        unlink(z->path); /* never finished */
    ZSTD_freeCCtx(z->cx);
    XXH3_freeState(z->st);
    free(z->out);
    free(z->path);
    free(z);
}

/* ---- the decoder: a zstd stream from an fd, read in exact amounts, hashed as read ---- */

typedef struct zin {
    ZSTD_DCtx *dx;
    int fd;
    uint8_t *in, *out;
    size_t in_cap, out_cap;
    ZSTD_inBuffer ib;
    size_t out_pos, out_len;
    int eof;
    XXH3_state_t *st;
} zin;

static int zi_raw(zin *z, pb_error *err)
{
    ssize_t n;
    do
        n = read(z->fd, z->in, z->in_cap);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return pb_error_errno(err, "solid: read");
    if (n == 0)
        z->eof = 1;
    XXH3_128bits_update(z->st, z->in, (size_t)n);
    z->ib.src = z->in;
    z->ib.size = (size_t)n;
    z->ib.pos = 0;
    return 0;
}

static int zi_fill(zin *z, pb_error *err)
{
    for (;;) {
        int error;
        if (z->ib.pos == z->ib.size && !z->eof && (error = zi_raw(z, err)) < 0)
            return error;
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

/* Hashes the rest of the file: the checksum covers every byte, read or not. */
static int zi_drain(zin *z, uint8_t hash[16], pb_error *err)
{
    int error;
    while (!z->eof)
        if ((error = zi_raw(z, err)) < 0)
            return error;
    pb_fp__dir_digest(hash, z->st);
    return 0;
}

/* Reads the solid header into h. */
static int decode_header(zin *z, pb_bundle_header *h, const char *solid, pb_error *err)
{
    uint8_t hd[PB_BUNDLE_HEADER_FIXED];
    int error;
    if ((error = zi_read(z, hd, sizeof(hd), err)) < 0)
        return error;
    if (memcmp(hd, MAGIC, 8) != 0)
        return pb_error_set(err, PB_ECORRUPT, "solid: %s is not a solid bundle", solid);
    size_t clen = pb_bundle__header_get(h, hd);
    if (clen > PB_BUNDLE_CREATOR_MAX)
        return pb_error_set(err, PB_ECORRUPT, "solid: creator too long");
    if ((error = zi_read(z, h->creator, clen, err)) < 0)
        return error;
    h->creator[clen] = '\0';
    return 0;
}

/* The decoder, one step at a time, so that the verify pass can pull the bundle's bytes as they
 * are written: each step writes at most one record header or one chunk through the bundle
 * writer, whose output goes to the bundle file and, when a reader pulls, to a bounded queue. */
enum { D_HEADER, D_RECORD, D_PAYLOAD, D_DONE };

typedef struct decoder {
    zin *z;
    const char *solid;
    int level, out_fd, state;
    pb_bundle_writer *w;
    pb_bundle_rec *rec;
    uint8_t *buf;
    uint64_t i;
    int queue; /* keep the output for pull_in */
    pb_buf q;
    size_t qpos;
} decoder;

static int dec_sink(void *payload, const void *data, size_t n, pb_error *err)
{
    decoder *d = payload;
    int error = pb_fs_write_all(d->out_fd, data, n, "the bundle", err);
    if (!error && d->queue)
        error = pb_buf_put(&d->q, data, n, err);
    return error;
}

/* The bundle writer's refusal of what the stream says (a header it will not write, a record
 * whose content does not match its size or hash, a record out of place) is the stream's corruption,
 * said as such; other errors (I/O, memory) pass as they are. */
static int from_writer(const decoder *d, int rc, const pb_error *mine, pb_error *err)
{
    if (rc >= 0)
        return rc;
    if ((rc == PB_ECONFLICT || rc == PB_EINVALID) && d->state == D_HEADER)
        return pb_error_set(err, PB_ECORRUPT, "solid: header: %s", mine->msg);
    if (rc == PB_ECONFLICT || rc == PB_EINVALID)
        return pb_error_set(err, PB_ECORRUPT, "solid: record %llu: %s",
                            (unsigned long long)(d->i ? d->i - 1 : 0), mine->msg);
    if (err && !err->code)
        *err = *mine;
    return rc;
}

/* A record's header and paths, handed to the writer. */
static int dec_record(decoder *d, const uint8_t type, pb_error *err)
{
    uint8_t hd[REC_FIXED];
    pb_bundle_rec *rec = d->rec;
    int error;
    if ((error = zi_read(d->z, hd + 1, REC_FIXED - 1, err)) < 0)
        return error;
    memset(rec, 0, sizeof(*rec));
    rec->type = type;
    pb_bundle__rec_get(rec, &pb_bundle__rec_packed, hd);
    if (rec->path_len > PB_BUNDLE_PATH_MAX || rec->link_len > PB_BUNDLE_PATH_MAX)
        return pb_error_set(err, PB_ECORRUPT, "solid: record %llu: bad path lengths",
                            (unsigned long long)d->i);
    pb_error mine = PB_ERROR_INIT;
    if ((error = zi_read(d->z, rec->path, rec->path_len, err)) < 0 ||
        (error = zi_read(d->z, rec->link, rec->link_len, err)) < 0 ||
        (error = from_writer(d, pb_bundle__writer_begin(d->w, rec, &mine), &mine, err)) < 0)
        return error;
    d->state = rec->type == PB_REC_LINK ? D_RECORD : D_PAYLOAD;
    d->i++;
    return 0;
}

static int dec_step(decoder *d, pb_error *err)
{
    pb_bundle_header h;
    uint8_t b[4];
    int error;
    pb_error mine = PB_ERROR_INIT;
    switch (d->state) {
    case D_HEADER:
        memset(&h, 0, sizeof(h));
        if ((error = decode_header(d->z, &h, d->solid, err)) < 0)
            return error;
        if ((error = from_writer(d, pb_bundle__writer_new(&d->w, &h, d->level, dec_sink, d, &mine),
                                 &mine, err)) < 0)
            return error;
        d->state = D_RECORD;
        return 0;
    case D_RECORD:
        if ((error = zi_read(d->z, b, 1, err)) < 0)
            return error;
        if (b[0] != 0)
            return dec_record(d, b[0], err);
        if ((error = from_writer(d, pb_bundle__writer_finish(d->w, &mine), &mine, err)) < 0)
            return error;
        d->state = D_DONE;
        return 0;
    case D_PAYLOAD: {
        if ((error = zi_read(d->z, b, 4, err)) < 0)
            return error;
        uint32_t n = pb_get_le32(b);
        if (n == 0) {
            d->state = D_RECORD;
            return from_writer(d, pb_bundle__writer_end(d->w, &mine), &mine, err);
        }
        if (n > CHUNK)
            return pb_error_set(err, PB_ECORRUPT, "solid: record %llu: chunk of %u bytes",
                                (unsigned long long)d->i - 1, n);
        if ((error = zi_read(d->z, d->buf, n, err)) < 0)
            return error;
        return from_writer(d, pb_bundle__writer_data(d->w, d->buf, n, &mine), &mine, err);
    }
    default:
        return 0;
    }
}

/* A pb_source_fn over the bundle being decoded. */
static int pull_in(void *payload, void *buf, size_t cap, size_t *got, pb_error *err)
{
    decoder *d = payload;
    int error;
    while (d->qpos == d->q.len && d->state != D_DONE) {
        pb_buf_clear(&d->q);
        d->qpos = 0;
        if ((error = dec_step(d, err)) < 0)
            return error;
    }
    size_t k = d->q.len - d->qpos < cap ? d->q.len - d->qpos : cap;
    if (k)
        memcpy(buf, d->q.ptr + d->qpos, k);
    d->qpos += k;
    *got = k;
    return 0;
}

/* Opens the solid file and the zstd stream. */
static int zin_open(zin *z, const char *solid, pb_error *err)
{
    memset(z, 0, sizeof(*z));
    if ((z->fd = open(solid, O_RDONLY | O_CLOEXEC)) < 0)
        return pb_error_errno(err, "solid: cannot open %s", solid);
    z->dx = ZSTD_createDCtx();
    z->in_cap = ZSTD_DStreamInSize();
    z->out_cap = ZSTD_DStreamOutSize();
    z->in = malloc(z->in_cap);
    z->out = malloc(z->out_cap);
    z->st = XXH3_createState();
    if (!z->dx || !z->in || !z->out || !z->st)
        return pb_error_set(err, PB_ENOMEM, "solid: out of memory");
    XXH3_128bits_reset(z->st);
    ZSTD_DCtx_setParameter(z->dx, ZSTD_d_windowLogMax, 27);
    return 0;
}

static void zin_close(zin *z)
{
    ZSTD_freeDCtx(z->dx);
    XXH3_freeState(z->st);
    free(z->in);
    free(z->out);
    if (z->fd >= 0)
        close(z->fd);
}

/* The cloud's checksum of the solid file (computed while read, the rest read now): a damaged
 * download is named as such, whatever the decoder or the verify pass said. */
static int check_download(zin *z, const char *expect_hex, int error, pb_error *err)
{
    uint8_t got[16];
    char hex[33];
    pb_error e = PB_ERROR_INIT;
    if (!expect_hex || !expect_hex[0] || zi_drain(z, got, &e) < 0)
        return error;
    pb_hex_encode(hex, got, 16);
    if (strcmp(hex, expect_hex) == 0)
        return error;
    pb_error_clear(err);
    return pb_error_set(err, PB_ECORRUPT,
                        "the downloaded bundle's checksum %s differs from the cloud's %s", hex,
                        expect_hex);
}

int pb_solid_decode(const char *solid, const char *expect_hex, const char *bundle, int level,
                    const pb_bundle_verify_options *verify, pb_bundle_info *info, pb_error *err)
{
    int error = 0;
    zin z;
    decoder d;
    memset(&d, 0, sizeof(d));
    d.out_fd = -1;
    d.solid = solid;
    d.level = level;
    d.z = &z;
    d.queue = verify != NULL;
    pb_buf_init(&d.q, 16u << 20);
    if ((error = zin_open(&z, solid, err)) < 0)
        goto done;
    d.rec = calloc(1, sizeof(*d.rec));
    d.buf = malloc(CHUNK);
    if (!d.rec || !d.buf) {
        error = pb_error_set(err, PB_ENOMEM, "solid: out of memory");
        goto done;
    }
    if ((d.out_fd = open(bundle, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
        error = pb_error_errno(err, "solid: cannot create %s", bundle);
        goto done;
    }
    if (verify) {
        /* one pass: the verify pass reads the bundle as the decoder writes it */
        error = pb_bundle__verify_source(info, pull_in, &d, verify, err);
        if (!error && d.state != D_DONE)
            error = pb_error_set(err, PB_ECORRUPT, "solid: data after the bundle's trailer");
    } else {
        while (!error && d.state != D_DONE)
            error = dec_step(&d, err);
    }
    error = check_download(&z, expect_hex, error, err);
    if (!error && fsync(d.out_fd) != 0)
        error = pb_error_errno(err, "solid: fsync %s", bundle);
done:
    pb_bundle__writer_free(d.w);
    zin_close(&z);
    free(d.rec);
    free(d.buf);
    pb_buf_dispose(&d.q);
    if (d.out_fd >= 0)
        close(d.out_fd);
    if (error) {
        unlink(bundle);
        if (verify && verify->extract_main)
            unlink(verify->extract_main);
        if (verify && verify->extract_blobs)
            unlink(verify->extract_blobs);
    }
    return error;
}

/*
 * bundle.c: the bundle format: a streaming writer, a strict streaming reader, the path rules and
 * the verify pass (pb_bundle_verify). docs/bundle.md restates this specification with examples.
 * Role: one file carries a cloud run's results home (engine/export.c writes it, engine/apply.c
 * reads it twice: verify, then stage). Prerequisites: libzstd, libxxhash.
 *
 * FORMAT (version 1). Integers are little-endian; a hash is an XXH3-128 in canonical (big-endian)
 * byte order, 16 bytes; "id" = the 16-byte digest of pb_sqldiff_checksum() of a DB.
 *
 *   bundle  = header record* trailer
 *   header  = magic "PBBUNDLE" (8) | version u32 = 1 | flags u32 (bit 0: the baseline includes
 *             the blobs DB; other bits 0) | base_main id | base_blobs id (zero without blobs) |
 *             target_main id | target_blobs id (the cloud DBs: the next baseline) | home_root
 *             (root hash of the home manifest the files were computed against, or zero) |
 *             created_ns i64 | creator_len u16 (<= 255) | creator (printable ASCII) |
 *             header checksum (XXH3-128 of all the header bytes before it)
 *   record  = type u8 | 0 u8 | path_len u16 | link_len u16 | 0 u16 | mode u32 | 0 u32 |
 *             mtime_ns i64 | size u64 | hash (16) | basis (16)       -- 64 bytes
 *             | path (path_len) | link (link_len) | chunk* | 0 u32 | record checksum (16)
 *   chunk   = len u32 (1..1 MiB) | len bytes          -- the payload, one zstd frame in pieces
 *   trailer = 'Z' | 7 zero bytes | records u64 | total length u64 (the file size) |
 *             checksum (XXH3-128 of every byte of the bundle before this field)
 *
 * Record types and fields:
 *   'C' / 'B'  row changeset of the main / blobs DB, SQLite session format (raw, before zstd);
 *              path, link, mode, mtime and basis are empty/zero; size and hash describe the raw
 *              changeset. At most one of each, C before B, both before any file record.
 *   'N'        a whole file: payload = zstd(content); size/hash of the content. basis: the
 *              home's version it replaces (zero when the home lacked the path).
 *   'D'        a file delta: payload = zstd(librsync delta); size/hash of the patched file;
 *              basis = hash of the home file the delta applies to.
 *   'H'        a hard link: path becomes a link to `link` (an earlier path of the bundle, or an
 *              existing home file); size/hash of the shared content; no payload (just the end
 *              chunk). basis as for 'N'.
 * File records come in strictly increasing walk order of their paths (bytewise with '/' first),
 * which also rules out duplicates. The record checksum covers every byte of the record before
 * it (header, paths, chunk lengths and payload).
 *
 * READER RULES (all enforced while streaming; the first violation is a one-line error naming
 * the record index and byte offset, PB_ECORRUPT or PB_EUNSAFE for paths):
 *   - magic, version, flags, creator bytes, zero reserved fields, known record types, order;
 *   - paths: pb_bundle__path_check (relative, normalised, no '.', '..', empty component, NUL,
 *     backslash or control byte, components <= 255 bytes, whole path <= 4096 bytes, within the
 *     synced part, never a stage-file name); mode <= 0777; mtime >= 0;
 *   - sizes: declared size <= limits.max_size; compressed payload <= limits.max_payload; chunk
 *     lengths 1..1 MiB; decompressed bytes exactly the declared size (C/B/N) or at most
 *     size + size/8 + 1 MiB (D); one zstd frame, nothing after it; zstd window <= 8 MiB;
 *   - checksums: header, each record, whole bundle; the trailer's count and length; nothing
 *     after the trailer; at most limits.max_records records.
 * Memory: a 64 KiB input buffer, zstd's decompression window, two path buffers.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "bytes.h"
#include "bundle.h"
#include "fingerprint_int.h"
#include "plexburst/fingerprint.h"
#include "plexburst/sqldiff.h"

/* libFuzzer builds (tests/fuzz) compute checksums but do not enforce them, so that mutated
 * inputs reach the checks behind them; never defined in a normal build. */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define SUM_DIFFERS(a, b) (0 && memcmp((a), (b), 16) != 0)
#else
#define SUM_DIFFERS(a, b) (memcmp((a), (b), 16) != 0)
#endif
#define IO_BUF      (64u * 1024)
#define WCHUNK      (256u * 1024) /* chunk size the writer emits */
#define WINDOW_LOG  23            /* zstd window: 8 MiB */
#define DELTA_SLACK (1ull << 20)

/* ---------------------------------------------------------------------------------------- */
/* little helpers                                                                            */

static void digest(uint8_t out[16], XXH3_state_t *st)
{
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
    memcpy(out, c.digest, 16);
}

static int is_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

void pb_bundle__hex(char out[33], const uint8_t h[16])
{
    static const char x[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = x[h[i] >> 4];
        out[2 * i + 1] = x[h[i] & 15];
    }
    out[32] = '\0';
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int pb_bundle__unhex(uint8_t out[16], const char *hex)
{
    for (int i = 0; i < 16; i++) {
        int a = hexval((unsigned char)hex[2 * i]),
            b = a < 0 ? -1 : hexval((unsigned char)hex[2 * i + 1]);
        if (a < 0 || b < 0)
            return PB_EINVALID;
        out[i] = (uint8_t)(a << 4 | b);
    }
    return hex[32] == '\0' || hex[32] == '\n' || hex[32] == ' ' ? 0 : PB_EINVALID;
}

int pb_bundle__fd_in(void *payload, void *buf, size_t cap, size_t *got, pb_error *err)
{
    int fd = *(int *)payload;
    ssize_t n;
    do
        n = read(fd, buf, cap);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return pb_error_errno(err, "bundle: read failed");
    *got = (size_t)n;
    return 0;
}

int pb_bundle__fd_out(void *payload, const void *data, size_t n, pb_error *err)
{
    int fd = *(int *)payload;
    const char *p = data;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return pb_error_errno(err, "bundle: write failed");
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int pb_bundle__hash_fd(uint8_t out[16], uint64_t *size, int fd, pb_error *err)
{
    int error = 0;
    XXH3_state_t *st = XXH3_createState();
    char *buf = malloc(IO_BUF * 4);
    uint64_t total = 0;
    off_t off = 0;

    if (!st || !buf || XXH3_128bits_reset(st) != XXH_OK) {
        error = pb_error_set(err, PB_ENOMEM, "hash: out of memory");
        goto done;
    }
    for (;;) {
        ssize_t n = pread(fd, buf, IO_BUF * 4, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            error = pb_error_errno(err, "hash: read failed");
            goto done;
        }
        if (n == 0)
            break;
        XXH3_128bits_update(st, buf, (size_t)n);
        off += n;
        total += (uint64_t)n;
    }
    digest(out, st);
    if (size)
        *size = total;
done:
    free(buf);
    XXH3_freeState(st);
    return error;
}

/* ---------------------------------------------------------------------------------------- */
/* paths                                                                                     */

int pb_bundle__pathcmp(const char *a, size_t na, const char *b, size_t nb)
{
    return pb_fp__pathcmp(a, na, b, nb);
}

int pb_bundle__path_check(const char *path, size_t n, char *why, size_t cap)
{
    char buf[PB_BUNDLE_PATH_MAX + 1];
#define BAD(...)                                                                                   \
    do {                                                                                           \
        snprintf(why, cap, __VA_ARGS__);                                                           \
        return PB_EUNSAFE;                                                                         \
    } while (0)
    if (n == 0)
        BAD("empty path");
    if (n > PB_BUNDLE_PATH_MAX)
        BAD("path longer than %d bytes", PB_BUNDLE_PATH_MAX);
    if (path[0] == '/')
        BAD("absolute path");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c == 0)
            BAD("NUL byte in path");
        if (c == '\\')
            BAD("backslash in path");
        if (c < 0x20 || c == 0x7f)
            BAD("control byte 0x%02x in path", c);
    }
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && path[i] != '/')
            continue;
        size_t len = i - start;
        const char *c = path + start;
        if (len == 0)
            BAD("empty path component");
        if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
            BAD("'%.*s' component in path", (int)len, c);
        if (len > PB_BUNDLE_NAME_MAX)
            BAD("path component longer than %d bytes", PB_BUNDLE_NAME_MAX);
        if (len >= strlen(PB_STAGE_PREFIX) &&
            memcmp(c, PB_STAGE_PREFIX, strlen(PB_STAGE_PREFIX)) == 0)
            BAD("stage-file name in path");
        start = i + 1;
    }
    memcpy(buf, path, n);
    buf[n] = '\0';
    if (!pb_fingerprint_synced(buf))
        BAD("'%.200s' is outside the synced part (Metadata/, Media/, Plug-in Support/ "
            "without DBs)",
            buf);
#undef BAD
    return 0;
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

int pb_bundle__open_parent(int *out, const char **name, int root_fd, const char *path,
                           int (*mkdir_cb)(void *payload, const char *dir, pb_error *err),
                           void *payload, pb_error *err)
{
    int error = 0, fd = -1;
    char comp[PB_BUNDLE_NAME_MAX + 1];
    const char *p = path, *slash;

    *out = -1;
    if ((fd = fcntl(root_fd, F_DUPFD_CLOEXEC, 0)) < 0)
        return pb_error_errno(err, "'%s': cannot duplicate the data dir fd", path);
    while ((slash = strchr(p, '/')) != NULL) {
        size_t len = (size_t)(slash - p);
        if (len == 0 || len > PB_BUNDLE_NAME_MAX) {
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
            char rel[PB_BUNDLE_PATH_MAX + 1];
            size_t rl = (size_t)(slash - path);
            memcpy(rel, path, rl);
            rel[rl] = '\0';
            if ((error = mkdir_cb(payload, rel, err)) < 0)
                goto done;
            if (mkdirat(fd, comp, 0755) < 0 && errno != EEXIST) {
                error = pb_error_errno(err, "'%s': cannot create directory '%s'", path, rel);
                goto done;
            }
            nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
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

/* ---------------------------------------------------------------------------------------- */
/* writer                                                                                    */

struct pb_bundle_writer {
    pb_bundle_out_fn out;
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
};

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
                          pb_bundle_out_fn fn, void *out_payload, pb_error *err)
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
    memcpy(hd, PB_BUNDLE_MAGIC, 8);
    pb_put_le32(hd + 8, PB_BUNDLE_VERSION);
    pb_put_le32(hd + 12, h->flags);
    memcpy(hd + 16, h->base_main, 16);
    memcpy(hd + 32, h->base_blobs, 16);
    memcpy(hd + 48, h->target_main, 16);
    memcpy(hd + 64, h->target_blobs, 16);
    memcpy(hd + 80, h->home_root, 16);
    pb_put_le64(hd + 96, (uint64_t)h->created_ns);
    pb_put_le16(hd + 104, (uint16_t)clen);
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
    hd[0] = (uint8_t)r->type;
    pb_put_le16(hd + 2, (uint16_t)r->path_len);
    pb_put_le16(hd + 4, (uint16_t)r->link_len);
    pb_put_le32(hd + 8, r->mode);
    pb_put_le64(hd + 16, (uint64_t)r->mtime_ns);
    pb_put_le64(hd + 24, r->size);
    memcpy(hd + 32, r->hash, 16);
    memcpy(hd + 48, r->basis, 16);
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
        (error = w_emit(w, r->link, r->link_len, 1, err)) < 0) {
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
    if ((error = w_compress(w, data, n, ZSTD_e_continue, err)) < 0)
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
            digest(h, w->content);
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
    digest(sum, w->rec);
    if ((error = w_emit(w, sum, 16, 0, err)) < 0)
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
    digest(t + 24, w->all);
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

/* ---------------------------------------------------------------------------------------- */
/* reader                                                                                    */

enum { R_BETWEEN = 0, R_PAYLOAD = 1, R_DONE = 2, R_FAILED = 3 };

struct pb_bundle_reader {
    pb_bundle_in_fn in;
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

int pb_bundle__reader_new(pb_bundle_reader **out, pb_bundle_in_fn in, void *in_payload,
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
    r->h.version = pb_get_le32(hd + 8);
    r->h.flags = pb_get_le32(hd + 12);
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
    memcpy(r->h.base_main, hd + 16, 16);
    memcpy(r->h.base_blobs, hd + 32, 16);
    memcpy(r->h.target_main, hd + 48, 16);
    memcpy(r->h.target_blobs, hd + 64, 16);
    memcpy(r->h.home_root, hd + 80, 16);
    r->h.created_ns = (int64_t)pb_get_le64(hd + 96);
    size_t clen = pb_get_le16(hd + 104);
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
    digest(want, r->rec);
    if ((error = r_raw(r, sum, 16, 0, "the record checksum", err)) < 0)
        return error;
    if (SUM_DIFFERS(sum, want))
        return pb_bundle__reader_fail(r, PB_ECORRUPT, err, "record checksum mismatch");
    if (r->cur.type != PB_REC_LINK && r->cur.type != PB_REC_DELTA) {
        digest(want, r->content);
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
    digest(want, r->all);
    if ((error = r_raw(r, t + 24, 16, 0, "the trailer", err)) < 0)
        return error;
    if (!is_zero(t + 1, 7))
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

int pb_bundle__reader_next(pb_bundle_reader *r, const pb_bundle_rec **out, pb_error *err)
{
    uint8_t hd[PB_BUNDLE_REC_FIXED];
    char why[300];
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
    c->path_len = pb_get_le16(hd + 2);
    c->link_len = pb_get_le16(hd + 4);
    c->mode = pb_get_le32(hd + 8);
    c->mtime_ns = (int64_t)pb_get_le64(hd + 16);
    c->size = pb_get_le64(hd + 24);
    memcpy(c->hash, hd + 32, 16);
    memcpy(c->basis, hd + 48, 16);
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
    if (is_cs) {
        int st = c->type == PB_REC_MAIN_CS ? 1 : 2;
        if (c->path_len || c->link_len || c->mode || c->mtime_ns || !is_zero(c->basis, 16))
            return pb_bundle__reader_fail(r, PB_ECORRUPT, err, "changeset record with file fields");
        if (r->stage >= st)
            return pb_bundle__reader_fail(r, PB_ECORRUPT, err, "changeset record out of order");
        r->stage = st;
    } else {
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
            return pb_bundle__reader_fail(r, PB_ECORRUPT, err,
                                          "path '%s' out of order or duplicated", c->path);
        r->stage = 3;
        memcpy(r->prev, c->path, c->path_len + 1);
        r->prev_len = c->path_len;
    }
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

/* ---------------------------------------------------------------------------------------- */
/* the verify pass                                                                           */

typedef struct cs_feed {
    pb_bundle_reader *r;
    FILE *extract;
    pb_error *err;
    int error; /* the reader's or the extract file's error, kept as the root cause */
} cs_feed;

static int cs_input(void *payload, void *data, size_t cap, size_t *n, pb_error *unused)
{
    (void)unused; /* the validator's error is its own; the reader's goes to f->err */
    cs_feed *f = payload;
    size_t got = 0;
    int error = pb_bundle__reader_read(f->r, data, cap, &got, f->err);
    if (error < 0) {
        f->error = error;
        return error;
    }
    if (got && f->extract && fwrite(data, 1, got, f->extract) != got) {
        f->error = pb_error_errno(f->err, "bundle: cannot write the extracted changeset");
        return f->error;
    }
    *n = got;
    return 0;
}

/* Checks a file record's path (and link leader) against the data dir: nothing written. */
static int check_tree(pb_bundle_reader *r, int root_fd, const char *path, pb_error *err)
{
    int fd = -1, error;
    const char *name = NULL;
    pb_error e = PB_ERROR_INIT;
    struct stat st;

    error = pb_bundle__open_parent(&fd, &name, root_fd, path, NULL, NULL, &e);
    if (error == PB_ENOTFOUND)
        return 0; /* created when staged */
    if (error < 0)
        return pb_bundle__reader_fail(r, error, err, "%s", e.msg);
    if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISLNK(st.st_mode))
            error = pb_bundle__reader_fail(r, PB_EUNSAFE, err, "'%s' is a symlink in the data dir",
                                           path);
        else if (!S_ISREG(st.st_mode))
            error = pb_bundle__reader_fail(r, PB_ECONFLICT, err,
                                           "'%s' is not a regular file in the data dir", path);
    }
    close(fd);
    return error;
}

int pb_bundle_verify(pb_bundle_info *out, const char *path, const pb_bundle_verify_options *opts,
                     pb_error *err)
{
    int error = 0, fd = -1, root_fd = -1;
    pb_bundle_reader *r = NULL;
    FILE *ex = NULL;
    const pb_bundle_rec *rec;
    pb_bundle_limits lim = PB_BUNDLE_LIMITS_INIT;
    struct stat st;

    memset(out, 0, sizeof(*out));
    if (opts)
        lim = opts->limits;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        error = errno == ENOENT
                    ? pb_error_setd(err, PB_ENOTFOUND, ENOENT, "bundle %s does not exist", path)
                    : pb_error_errno(err, "cannot open bundle %s", path);
        goto done;
    }
    if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
        error = pb_error_set(err, PB_EINVALID, "bundle %s is not a regular file", path);
        goto done;
    }
    if (opts && opts->plex_dir &&
        (root_fd = open(opts->plex_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        error = pb_error_errno(err, "cannot open the data dir %s", opts->plex_dir);
        goto done;
    }
    if ((error = pb_bundle__reader_new(&r, pb_bundle__fd_in, &fd, &lim, err)) < 0)
        goto done;
    const pb_bundle_header *h = pb_bundle__reader_header(r);
    out->version = h->version;
    out->flags = h->flags;
    out->has_blobs = (h->flags & PB_BUNDLE_FLAG_BLOBS) != 0;
    memcpy(out->base_main, h->base_main, 16);
    memcpy(out->base_blobs, h->base_blobs, 16);
    memcpy(out->target_main, h->target_main, 16);
    memcpy(out->target_blobs, h->target_blobs, 16);
    memcpy(out->home_root, h->home_root, 16);
    out->created_ns = h->created_ns;
    snprintf(out->creator, sizeof(out->creator), "%s", h->creator);
    if (!out->has_blobs && !is_zero(h->base_blobs, 16)) {
        error = pb_error_set(err, PB_ECORRUPT, "bundle: header: blobs baseline without the flag");
        goto done;
    }
    while ((error = pb_bundle__reader_next(r, &rec, err)) == 1) {
        if (rec->type == PB_REC_MAIN_CS || rec->type == PB_REC_BLOBS_CS) {
            int is_main = rec->type == PB_REC_MAIN_CS;
            const char *xp = opts ? (is_main ? opts->extract_main : opts->extract_blobs) : NULL;
            pb_changeset_summary sum;
            pb_changeset_check_options co = PB_CHANGESET_CHECK_OPTIONS_INIT;
            cs_feed f = {r, NULL, err, 0};
            pb_error ce = PB_ERROR_INIT;
            if (!is_main && !out->has_blobs) {
                error = pb_bundle__reader_fail(r, PB_ECORRUPT, err,
                                               "blobs changeset without a blobs baseline");
                goto done;
            }
            if (xp && !(f.extract = ex = fopen(xp, "wb"))) {
                error = pb_error_errno(err, "cannot create %s", xp);
                goto done;
            }
            co.expect_bytes = rec->size;
            if (rec->size == 0) {
                error = pb_bundle__reader_fail(r, PB_ECORRUPT, err, "empty changeset record");
                goto done;
            }
            error = pb_changeset_validate(&sum, cs_input, &f, &co, &ce);
            if (f.error < 0) {
                error = f.error;
                goto done;
            }
            if (error < 0) {
                error = pb_bundle__reader_fail(r, PB_ECORRUPT, err, "%s", ce.msg);
                goto done;
            }
            /* the validator stops at the declared length: drain to the record's end */
            size_t got;
            char one[1];
            if ((error = pb_bundle__reader_read(r, one, 1, &got, err)) < 0)
                goto done;
            if (got) {
                error =
                    pb_bundle__reader_fail(r, PB_ECORRUPT, err, "changeset longer than declared");
                goto done;
            }
            if (ex) {
                if (fflush(ex) != 0 || fsync(fileno(ex)) != 0) {
                    error = pb_error_errno(err, "cannot write %s", xp);
                    goto done;
                }
                fclose(ex);
                ex = NULL;
            }
            if (is_main) {
                out->has_cs_main = 1;
                out->cs_main_bytes = rec->size;
            } else {
                out->has_cs_blobs = 1;
                out->cs_blobs_bytes = rec->size;
            }
        } else {
            if (rec->type == PB_REC_NEW)
                out->files_new++;
            else if (rec->type == PB_REC_DELTA)
                out->files_delta++;
            else
                out->files_link++;
            out->content_bytes += rec->size;
            if (root_fd >= 0 && ((error = check_tree(r, root_fd, rec->path, err)) < 0 ||
                                 (rec->type == PB_REC_LINK &&
                                  (error = check_tree(r, root_fd, rec->link, err)) < 0)))
                goto done;
        }
    }
    if (error < 0)
        goto done;
    out->bytes = pb_bundle__reader_offset(r);
    memcpy(out->checksum, pb_bundle__reader_checksum(r), 16);
    out->records = out->files_new + out->files_delta + out->files_link +
                   (uint64_t)out->has_cs_main + (uint64_t)out->has_cs_blobs;
done:
    if (ex)
        fclose(ex);
    if (error < 0 && opts) {
        if (opts->extract_main)
            unlink(opts->extract_main);
        if (opts->extract_blobs)
            unlink(opts->extract_blobs);
    }
    pb_bundle__reader_free(r);
    if (root_fd >= 0)
        close(root_fd);
    if (fd >= 0)
        close(fd);
    return error;
}

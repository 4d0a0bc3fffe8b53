/*
 * bundle.c: the bundle format (this comment is its specification; docs/bundle.md explains it
 * with examples and links here), the path rules every bundle path obeys, the header encoding
 * shared by the writer (bundle_write.c), the reader (bundle_read.c) and the solid form (solid.c),
 * and small fd helpers. Role: one file carries a cloud run's results home (bundle/export_build.c
 * writes it; the home verifies it once, bundle_verify.c, and apply/stage.c stages it).
 * Prerequisites: libzstd, libxxhash.
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
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "bundle_int.h"
#include "bytes.h"
#include "fingerprint_int.h"
#include "plexburst/fingerprint.h"

#define HASH_BUF (256u * 1024)

/* ---------------------------------------------------------------------------------------- */
/* little helpers                                                                            */

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
    char *buf = malloc(HASH_BUF);
    uint64_t total = 0;
    off_t off = 0;

    if (!st || !buf || XXH3_128bits_reset(st) != XXH_OK) {
        error = pb_error_set(err, PB_ENOMEM, "hash: out of memory");
        goto done;
    }
    for (;;) {
        ssize_t n = pread(fd, buf, HASH_BUF, off);
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
    pb_fp__dir_digest(out, st);
    if (size)
        *size = total;
done:
    free(buf);
    XXH3_freeState(st);
    return error;
}

int pb_bundle__is_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

void pb_bundle__header_put(uint8_t out[PB_BUNDLE_HEADER_FIXED], const char magic[8],
                           const pb_bundle_header *h, size_t creator_len)
{
    memcpy(out, magic, 8);
    pb_put_le32(out + 8, h->version);
    pb_put_le32(out + 12, h->flags);
    memcpy(out + 16, h->base_main, 16);
    memcpy(out + 32, h->base_blobs, 16);
    memcpy(out + 48, h->target_main, 16);
    memcpy(out + 64, h->target_blobs, 16);
    memcpy(out + 80, h->home_root, 16);
    pb_put_le64(out + 96, (uint64_t)h->created_ns);
    pb_put_le16(out + 104, (uint16_t)creator_len);
}

size_t pb_bundle__header_get(pb_bundle_header *h, const uint8_t in[PB_BUNDLE_HEADER_FIXED])
{
    h->version = pb_get_le32(in + 8);
    h->flags = pb_get_le32(in + 12);
    memcpy(h->base_main, in + 16, 16);
    memcpy(h->base_blobs, in + 32, 16);
    memcpy(h->target_main, in + 48, 16);
    memcpy(h->target_blobs, in + 64, 16);
    memcpy(h->home_root, in + 80, 16);
    h->created_ns = (int64_t)pb_get_le64(in + 96);
    return pb_get_le16(in + 104);
}

const pb_bundle__rec_layout pb_bundle__rec_wide = {2, 4, 8, 16, 24, 32, 48};
const pb_bundle__rec_layout pb_bundle__rec_packed = {1, 3, 5, 9, 17, 25, 41};

void pb_bundle__rec_put(uint8_t *hd, const pb_bundle__rec_layout *l, const pb_bundle_rec *r)
{
    hd[0] = (uint8_t)r->type;
    pb_put_le16(hd + l->path_len, (uint16_t)r->path_len);
    pb_put_le16(hd + l->link_len, (uint16_t)r->link_len);
    pb_put_le32(hd + l->mode, r->mode);
    pb_put_le64(hd + l->mtime, (uint64_t)r->mtime_ns);
    pb_put_le64(hd + l->size, r->size);
    memcpy(hd + l->hash, r->hash, 16);
    memcpy(hd + l->basis, r->basis, 16);
}

void pb_bundle__rec_get(pb_bundle_rec *r, const pb_bundle__rec_layout *l, const uint8_t *hd)
{
    r->path_len = pb_get_le16(hd + l->path_len);
    r->link_len = pb_get_le16(hd + l->link_len);
    r->mode = pb_get_le32(hd + l->mode);
    r->mtime_ns = (int64_t)pb_get_le64(hd + l->mtime);
    r->size = pb_get_le64(hd + l->size);
    memcpy(r->hash, hd + l->hash, 16);
    memcpy(r->basis, hd + l->basis, 16);
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

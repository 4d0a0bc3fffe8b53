/*
 * manifest.c: the manifest format of plexburst fingerprints: streaming writer,
 * strict reader and the two-manifest comparison (include/plexburst/fingerprint.h).
 * Role: fingerprint.c writes a manifest per run; the sync plan compares home's and the cloud's.
 * Prerequisites: libxxhash (XXH3-128). Also described in docs/manifest.md.
 *
 * FORMAT (version 1). All integers little-endian; hashes are XXH3-128 in canonical (big-endian)
 * byte order. A manifest is a header, records in walk order, and a trailer:
 *
 *   header (64 bytes)
 *     0  8  magic "PBMANIF1"
 *     8  4  version (1)
 *    12  4  header length (64)
 *    16 16  root hash: the Merkle hash of D's synced top-level entries; the manifest's id
 *    32  8  number of records
 *    40  8  sum of the sizes of the file records
 *    48 16  reserved, zero
 *
 *   record (56 bytes + path + extra), one per entry, in walk order: pre-order, each directory's
 *   names sorted bytewise (equivalently: full paths in bytewise order with '/' sorting first)
 *     0  4  record length (56 + path length + extra length)
 *     4  1  type: 'D' directory, 'F' regular file, 'L' symlink
 *     5  1  flags: 0x1 the file's inode has other links, 0x2 hard-link follower (files only)
 *     6  2  path length, 1..4095
 *     8  4  mode: permission bits (<= 07777)
 *    12  4  extra length, 0..4095
 *    16  8  size: file size; symlink: target length; directory: number of records below it
 *    24  8  mtime, ns since the epoch (signed)
 *    32 16  hash: file content; symlink target text; directory: Merkle hash (below)
 *    48  8  directory: offset just past its subtree (the next record not below it); else 0
 *    56     path relative to D: '/'-separated, no leading or trailing '/', no empty, "." or ".."
 *           component, no NUL; its parent is the innermost directory whose subtree is open
 *           extra: symlink target (required, 1..4095 bytes), or for a follower the path of its
 *           group's leader (the first path of that inode in walk order, an earlier record)
 *
 *   trailer (40 bytes)
 *     0  8  magic "PBMTAIL1"
 *     8  8  number of records (equal to the header's)
 *    16  8  offset of the trailer itself
 *    24 16  checksum: XXH3-128 of every byte before it
 *
 * Directory hash: XXH3-128 over its children in walk order, each fed as u32 name length, name
 * bytes, u8 type, u32 mode, 16-byte hash. Names, types, modes and contents are covered; mtimes,
 * sizes (implied by the contents) and hard-link groups are not. The root hash is the same
 * function over D's synced top-level entries. Readers verify the checksum at open and every
 * directory hash and the root hash as they stream, so a manifest cannot lie about its subtrees.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "fingerprint_int.h"
#include "hex.h"

#define HEADER_LEN  64
#define REC_FIXED   56
#define TRAILER_LEN 40
#define MAX_NAME    4095
#define WBUF        (1u << 20)
#define RBUF        (256u * 1024)

static const char HEAD_MAGIC[8] = {'P', 'B', 'M', 'A', 'N', 'I', 'F', '1'};
static const char TAIL_MAGIC[8] = {'P', 'B', 'M', 'T', 'A', 'I', 'L', '1'};

int pb_fp__pathcmp(const char *a, size_t na, const char *b, size_t nb)
{
    size_t n = na < nb ? na : nb;
    for (size_t i = 0; i < n; i++) {
        unsigned ca = (unsigned char)a[i], cb = (unsigned char)b[i];
        if (ca != cb) {
            ca = ca == '/' ? 0 : ca;
            cb = cb == '/' ? 0 : cb;
            return ca < cb ? -1 : 1;
        }
    }
    return na < nb ? -1 : na > nb ? 1 : 0;
}

void pb_fp__dir_feed(XXH3_state_t *st, const char *name, size_t name_len, int type, uint32_t mode,
                     const uint8_t hash[PB_HASH_LEN])
{
    unsigned char head[4], tail[5 + PB_HASH_LEN];
    pb_put_le32(head, (uint32_t)name_len);
    tail[0] = (unsigned char)type;
    pb_put_le32(tail + 1, mode);
    memcpy(tail + 5, hash, PB_HASH_LEN);
    XXH3_128bits_update(st, head, sizeof(head));
    XXH3_128bits_update(st, name, name_len);
    XXH3_128bits_update(st, tail, sizeof(tail));
}

void pb_fp__dir_digest(uint8_t out[PB_HASH_LEN], XXH3_state_t *st)
{
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
    memcpy(out, c.digest, PB_HASH_LEN);
}

void pb_hash_hex(char out[2 * PB_HASH_LEN + 1], const uint8_t hash[PB_HASH_LEN])
{
    pb_hex_encode(out, hash, PB_HASH_LEN);
}

/* ================================ writer ================================ */

struct pb_fp_writer {
    int fd;
    char *path, *tmp;
    unsigned char *buf;
    size_t len;       /* bytes in buf */
    uint64_t buf_off; /* file offset of buf[0] */
    uint64_t entries;
    int finished;
};

static int write_all(int fd, const void *p, size_t n, uint64_t off, pb_error *err)
{
    const char *c = p;
    while (n) {
        ssize_t w = pwrite(fd, c, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return pb_error_errno(err, "manifest: write failed");
        c += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

static int writer_flush(pb_fp_writer *w, pb_error *err)
{
    int error = write_all(w->fd, w->buf, w->len, w->buf_off, err);
    w->buf_off += w->len;
    w->len = 0;
    return error;
}

int pb_fp__writer_open(pb_fp_writer **out, const char *path, pb_error *err)
{
    int error = 0;
    pb_fp_writer *w = calloc(1, sizeof(*w));
    size_t n = strlen(path);

    *out = NULL;
    if (!w || !(w->path = strdup(path)) || !(w->tmp = malloc(n + 8)) || !(w->buf = malloc(WBUF))) {
        error = pb_error_set(err, PB_ENOMEM, "manifest: out of memory");
        goto done;
    }
    w->fd = -1;
    snprintf(w->tmp, n + 8, "%s.XXXXXX", path);
    if ((w->fd = mkostemp(w->tmp, O_CLOEXEC)) < 0) {
        error = pb_error_errno(err, "manifest: cannot create a temporary file beside %s", path);
        w->tmp[0] = '\0';
        goto done;
    }
    memset(w->buf, 0, HEADER_LEN); /* the header is written at finish */
    w->len = HEADER_LEN;
done:
    if (error) {
        pb_fp__writer_free(w);
        return error;
    }
    *out = w;
    return 0;
}

uint64_t pb_fp__writer_offset(const pb_fp_writer *w)
{
    return w->buf_off + w->len;
}

int pb_fp__writer_add(pb_fp_writer *w, uint64_t *off, int type, int flags, const char *path,
                      size_t path_len, uint32_t mode, uint64_t size, int64_t mtime_ns,
                      const uint8_t hash[PB_HASH_LEN], const char *extra, size_t extra_len,
                      pb_error *err)
{
    int error;
    size_t rec = REC_FIXED + path_len + extra_len;

    if (path_len < 1 || path_len > MAX_NAME || extra_len > MAX_NAME)
        return pb_error_set(err, PB_ERROR, "manifest: path or link too long (%zu bytes): %.200s",
                            path_len > extra_len ? path_len : extra_len, path);
    if (w->len + rec > WBUF && (error = writer_flush(w, err)) < 0)
        return error;
    unsigned char *p = w->buf + w->len;
    pb_put_le32(p, (uint32_t)rec);
    p[4] = (unsigned char)type;
    p[5] = (unsigned char)flags;
    p[6] = (unsigned char)path_len;
    p[7] = (unsigned char)(path_len >> 8);
    pb_put_le32(p + 8, mode & 07777);
    pb_put_le32(p + 12, (uint32_t)extra_len);
    pb_put_le64(p + 16, size);
    pb_put_le64(p + 24, (uint64_t)mtime_ns);
    if (hash)
        memcpy(p + 32, hash, PB_HASH_LEN);
    else
        memset(p + 32, 0, PB_HASH_LEN);
    pb_put_le64(p + 48, 0);
    memcpy(p + REC_FIXED, path, path_len);
    if (extra_len)
        memcpy(p + REC_FIXED + path_len, extra, extra_len);
    if (off)
        *off = w->buf_off + w->len;
    w->len += rec;
    w->entries++;
    return 0;
}

int pb_fp__writer_patch_dir(pb_fp_writer *w, uint64_t off, uint64_t records,
                            const uint8_t hash[PB_HASH_LEN], uint64_t subtree_end, pb_error *err)
{
    int error;
    unsigned char count[8], patch[PB_HASH_LEN + 8];
    pb_put_le64(count, records);
    memcpy(patch, hash, PB_HASH_LEN);
    pb_put_le64(patch + PB_HASH_LEN, subtree_end);
    if (off >= w->buf_off) {
        memcpy(w->buf + (off - w->buf_off) + 16, count, sizeof(count));
        memcpy(w->buf + (off - w->buf_off) + 32, patch, sizeof(patch));
        return 0;
    }
    if ((error = write_all(w->fd, count, sizeof(count), off + 16, err)) < 0)
        return error;
    return write_all(w->fd, patch, sizeof(patch), off + 32, err);
}

int pb_fp__writer_finish(pb_fp_writer *w, const uint8_t root[PB_HASH_LEN], uint64_t file_bytes,
                         pb_error *err)
{
    int error = 0;
    unsigned char head[HEADER_LEN], tail[TRAILER_LEN];
    XXH3_state_t *xx = NULL;
    uint64_t toff;

    if ((error = writer_flush(w, err)) < 0)
        goto done;
    toff = w->buf_off;
    memset(head, 0, sizeof(head));
    memcpy(head, HEAD_MAGIC, 8);
    pb_put_le32(head + 8, 1);
    pb_put_le32(head + 12, HEADER_LEN);
    memcpy(head + 16, root, PB_HASH_LEN);
    pb_put_le64(head + 32, w->entries);
    pb_put_le64(head + 40, file_bytes);
    if ((error = write_all(w->fd, head, sizeof(head), 0, err)) < 0)
        goto done;
    memcpy(tail, TAIL_MAGIC, 8);
    pb_put_le64(tail + 8, w->entries);
    pb_put_le64(tail + 16, toff);
    /* the checksum covers the patched file: read it back (from the page cache) */
    if (!(xx = XXH3_createState()) || XXH3_128bits_reset(xx) != XXH_OK) {
        error = pb_error_set(err, PB_ENOMEM, "manifest: out of memory");
        goto done;
    }
    for (uint64_t pos = 0; pos < toff;) {
        size_t want = toff - pos < WBUF ? (size_t)(toff - pos) : WBUF;
        ssize_t n = pread(w->fd, w->buf, want, (off_t)pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            error = n < 0 ? pb_error_errno(err, "manifest: read-back failed")
                          : pb_error_set(err, PB_EIO, "manifest: read-back ended early");
            goto done;
        }
        XXH3_128bits_update(xx, w->buf, (size_t)n);
        pos += (uint64_t)n;
    }
    XXH3_128bits_update(xx, tail, 24);
    pb_fp__dir_digest(tail + 24, xx);
    if ((error = write_all(w->fd, tail, sizeof(tail), toff, err)) < 0)
        goto done;
    if (close(w->fd) < 0) {
        w->fd = -1;
        error = pb_error_errno(err, "manifest: close failed");
        goto done;
    }
    w->fd = -1;
    if (rename(w->tmp, w->path) < 0) {
        error = pb_error_errno(err, "manifest: cannot rename into %s", w->path);
        goto done;
    }
    w->finished = 1;
done:
    XXH3_freeState(xx);
    return error;
}

void pb_fp__writer_free(pb_fp_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    if (!w->finished && w->tmp && w->tmp[0])
        unlink(w->tmp);
    free(w->buf);
    free(w->tmp);
    free(w->path);
    free(w);
}

/* ================================ reader ================================ */

typedef struct level {
    uint64_t end;     /* subtree end offset */
    uint64_t records; /* recorded number of records below it */
    uint64_t count0;  /* m->count when it was read */
    size_t path_len;  /* length of this directory's path (a prefix of m->dirpath) */
    uint32_t mode;
    uint8_t hash[PB_HASH_LEN]; /* recorded hash */
    int skipped;
    XXH3_state_t *st; /* Merkle state fed by its children */
} level;

struct pb_manifest {
    FILE *f;
    char *path;
    pb_manifest_info info;
    uint64_t off, end, count;
    pb_manifest_entry e;
    char ebuf[MAX_NAME + 1], xbuf[MAX_NAME + 1];
    char prev[MAX_NAME + 1];
    size_t prev_len;
    char dirpath[MAX_NAME + 1]; /* path of the innermost open directory */
    level *stack;
    int depth, cap;
    XXH3_state_t *root;
    uint64_t file_bytes; /* sum of file sizes read (checked unless a subtree was skipped) */
    int last_dir, done, skipped_any;
};

static int corrupt(pb_manifest *m, uint64_t off, const char *what, pb_error *err)
{
    return pb_error_set(err, PB_ECORRUPT, "manifest %s: %s at byte %llu", m->path, what,
                        (unsigned long long)off);
}

static int read_at(pb_manifest *m, void *buf, size_t n, pb_error *err)
{
    if (fread(buf, 1, n, m->f) != n) {
        if (ferror(m->f))
            return pb_error_errno(err, "manifest %s: read failed", m->path);
        return corrupt(m, m->off, "unexpected end of file", err);
    }
    return 0;
}

int pb_manifest_open(pb_manifest **out, const char *path, pb_error *err)
{
    int error = 0;
    pb_manifest *m = calloc(1, sizeof(*m));
    unsigned char head[HEADER_LEN], tail[TRAILER_LEN];
    unsigned char *buf = NULL;
    XXH3_state_t *xx = NULL;
    struct stat st;

    *out = NULL;
    if (!m || !(m->path = strdup(path)) || !(buf = malloc(RBUF)) || !(xx = XXH3_createState()) ||
        !(m->root = XXH3_createState())) {
        error = pb_error_set(err, PB_ENOMEM, "manifest: out of memory");
        goto done;
    }
    if (!(m->f = fopen(path, "rbe"))) {
        error = errno == ENOENT
                    ? pb_error_setd(err, PB_ENOTFOUND, ENOENT, "manifest %s does not exist", path)
                    : pb_error_errno(err, "manifest: cannot open %s", path);
        goto done;
    }
    if (fstat(fileno(m->f), &st) < 0) {
        error = pb_error_errno(err, "manifest: cannot stat %s", path);
        goto done;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size < HEADER_LEN + TRAILER_LEN) {
        error = corrupt(m, size, "file too short for header and trailer", err);
        goto done;
    }
    /* trailer and checksum first: nothing else is believed before they hold */
    if (fseeko(m->f, (off_t)(size - TRAILER_LEN), SEEK_SET) != 0 ||
        fread(tail, 1, TRAILER_LEN, m->f) != TRAILER_LEN) {
        error = pb_error_errno(err, "manifest %s: cannot read the trailer", path);
        goto done;
    }
    if (memcmp(tail, TAIL_MAGIC, 8) != 0 || pb_get_le64(tail + 16) != size - TRAILER_LEN) {
        error = corrupt(m, size - TRAILER_LEN, "no trailer (truncated or not a manifest)", err);
        goto done;
    }
    rewind(m->f);
    XXH3_128bits_reset(xx);
    for (uint64_t pos = 0, want = size - 16; pos < want;) {
        size_t n = want - pos < RBUF ? (size_t)(want - pos) : RBUF;
        if (fread(buf, 1, n, m->f) != n) {
            error = pb_error_errno(err, "manifest %s: read failed", path);
            goto done;
        }
        XXH3_128bits_update(xx, buf, n);
        pos += n;
    }
    uint8_t sum[PB_HASH_LEN];
    pb_fp__dir_digest(sum, xx);
    if (memcmp(sum, tail + 24, PB_HASH_LEN) != 0) {
        error = corrupt(m, size - 16, "checksum mismatch (the file was altered)", err);
        goto done;
    }
    rewind(m->f);
    if ((error = read_at(m, head, HEADER_LEN, err)) < 0)
        goto done;
    if (memcmp(head, HEAD_MAGIC, 8) != 0) {
        error = corrupt(m, 0, "bad magic", err);
        goto done;
    }
    if (pb_get_le32(head + 8) != 1) {
        error = corrupt(m, 8, "unsupported version", err);
        goto done;
    }
    if (pb_get_le32(head + 12) != HEADER_LEN || pb_get_le64(head + 48) || pb_get_le64(head + 56)) {
        error = corrupt(m, 12, "bad header length or reserved bytes", err);
        goto done;
    }
    if (pb_get_le64(head + 32) != pb_get_le64(tail + 8)) {
        error = corrupt(m, 32, "header and trailer disagree on the record count", err);
        goto done;
    }
    m->info.version = 1;
    memcpy(m->info.root, head + 16, PB_HASH_LEN);
    m->info.entries = pb_get_le64(head + 32);
    m->info.file_bytes = pb_get_le64(head + 40);
    m->off = HEADER_LEN;
    m->end = size - TRAILER_LEN;
    XXH3_128bits_reset(m->root);
    setvbuf(m->f, NULL, _IOFBF, RBUF);
done:
    free(buf);
    XXH3_freeState(xx);
    if (error) {
        pb_manifest_free(m);
        return error;
    }
    *out = m;
    return 0;
}

const pb_manifest_info *pb_manifest_get_info(const pb_manifest *m)
{
    return &m->info;
}

static int valid_path(const char *p, size_t n)
{
    if (n == 0 || p[0] == '/' || p[n - 1] == '/' || memchr(p, '\0', n))
        return 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || p[i] == '/') {
            size_t len = i - start;
            if (len == 0 || (len == 1 && p[start] == '.') ||
                (len == 2 && p[start] == '.' && p[start + 1] == '.'))
                return 0;
            start = i + 1;
        }
    }
    return 1;
}

/* Closes the innermost open directory: checks its hash (unless skipped) and feeds it to its
 * parent. */
static int pop_level(pb_manifest *m, pb_error *err)
{
    level *l = &m->stack[m->depth - 1];
    size_t parent_len = m->depth > 1 ? m->stack[m->depth - 2].path_len : 0;
    const char *name = m->dirpath + (parent_len ? parent_len + 1 : 0);
    XXH3_state_t *parent = m->depth > 1 ? m->stack[m->depth - 2].st : m->root;

    if (!l->skipped) {
        uint8_t h[PB_HASH_LEN];
        if (m->count - l->count0 != l->records)
            return pb_error_set(err, PB_ECORRUPT,
                                "manifest %s: directory '%s' records %llu entries below it, "
                                "%llu found (subtree ends at byte %llu)",
                                m->path, m->dirpath, (unsigned long long)l->records,
                                (unsigned long long)(m->count - l->count0),
                                (unsigned long long)l->end);
        pb_fp__dir_digest(h, l->st);
        if (memcmp(h, l->hash, PB_HASH_LEN) != 0)
            return pb_error_set(err, PB_ECORRUPT,
                                "manifest %s: directory hash of '%s' does not match its "
                                "entries (subtree ends at byte %llu)",
                                m->path, m->dirpath, (unsigned long long)l->end);
    }
    pb_fp__dir_feed(parent, name, l->path_len - (size_t)(name - m->dirpath), PB_ENTRY_DIR, l->mode,
                    l->hash);
    m->depth--;
    m->dirpath[parent_len] = '\0';
    return 0;
}

int pb_manifest_next(pb_manifest *m, const pb_manifest_entry **entry, pb_error *err)
{
    int error = 0;
    unsigned char r[REC_FIXED];
    uint64_t off = m->off;

    *entry = NULL;
    m->last_dir = 0;
    if (m->done)
        return 0;
    while (m->depth > 0 && m->stack[m->depth - 1].end <= off) {
        if (m->stack[m->depth - 1].end != off)
            return corrupt(m, m->stack[m->depth - 1].end,
                           "a directory's subtree end is not a record boundary", err);
        if ((error = pop_level(m, err)) < 0)
            return error;
    }
    if (off == m->end) {
        uint8_t h[PB_HASH_LEN];
        if (m->count != m->info.entries)
            return corrupt(m, off, "record count differs from the header's", err);
        if (!m->skipped_any && m->file_bytes != m->info.file_bytes)
            return corrupt(m, 40, "file bytes differ from the header's", err);
        pb_fp__dir_digest(h, m->root);
        if (memcmp(h, m->info.root, PB_HASH_LEN) != 0)
            return corrupt(m, 16, "root hash does not match the top-level entries", err);
        m->done = 1;
        return 0;
    }
    if (off + REC_FIXED > m->end)
        return corrupt(m, off, "record crosses the trailer", err);
    if ((error = read_at(m, r, REC_FIXED, err)) < 0)
        return error;
    uint32_t rec = pb_get_le32(r), mode = pb_get_le32(r + 8), xlen = pb_get_le32(r + 12);
    size_t plen = (size_t)r[6] | (size_t)r[7] << 8;
    int type = r[4], flags = r[5];
    uint64_t size = pb_get_le64(r + 16), sub = pb_get_le64(r + 48);

    if (plen < 1 || plen > MAX_NAME || xlen > MAX_NAME || rec != REC_FIXED + plen + xlen)
        return corrupt(m, off, "bad record, path or extra length", err);
    if (off + rec > m->end)
        return corrupt(m, off, "record crosses the trailer", err);
    if (mode > 07777)
        return corrupt(m, off + 8, "bad mode", err);
    if ((error = read_at(m, m->ebuf, plen, err)) < 0 ||
        (error = read_at(m, m->xbuf, xlen, err)) < 0)
        return error;
    m->ebuf[plen] = '\0';
    m->xbuf[xlen] = '\0';
    if (!valid_path(m->ebuf, plen))
        return corrupt(m, off + REC_FIXED, "invalid path", err);
    if (m->count && pb_fp__pathcmp(m->prev, m->prev_len, m->ebuf, plen) >= 0)
        return corrupt(m, off + REC_FIXED, "path out of walk order", err);
    /* the parent must be the innermost open directory */
    const char *slash = memrchr(m->ebuf, '/', plen);
    size_t parent_len = slash ? (size_t)(slash - m->ebuf) : 0;
    size_t open_len = m->depth ? m->stack[m->depth - 1].path_len : 0;
    if (parent_len != open_len || memcmp(m->ebuf, m->dirpath, parent_len) != 0)
        return corrupt(m, off + REC_FIXED, "path is not inside the enclosing directory", err);
    uint64_t limit = m->depth ? m->stack[m->depth - 1].end : m->end;
    switch (type) {
    case PB_ENTRY_DIR:
        if (flags || xlen || sub < off + rec || sub > limit ||
            size > (sub - off - rec) / (REC_FIXED + 1))
            return corrupt(m, off, "bad directory record (flags, count or subtree end)", err);
        break;
    case PB_ENTRY_SYMLINK:
        if (flags || sub || xlen == 0 || size != xlen || memchr(m->xbuf, '\0', xlen))
            return corrupt(m, off, "bad symlink record", err);
        break;
    case PB_ENTRY_FILE:
        if ((flags & ~(PB_FP_MULTI | PB_FP_FOLLOWER)) || sub ||
            (!(flags & PB_FP_FOLLOWER) != !xlen))
            return corrupt(m, off, "bad file record (flags or extra)", err);
        if (xlen &&
            (!valid_path(m->xbuf, xlen) || pb_fp__pathcmp(m->xbuf, xlen, m->ebuf, plen) >= 0))
            return corrupt(m, off + REC_FIXED + plen, "bad hard-link leader path", err);
        break;
    default:
        return corrupt(m, off + 4, "unknown record type", err);
    }
    memset(&m->e, 0, sizeof(m->e));
    m->e.type = (pb_entry_type)type;
    m->e.path = m->ebuf;
    m->e.mode = mode;
    m->e.size = size;
    m->e.mtime_ns = (int64_t)pb_get_le64(r + 24);
    memcpy(m->e.hash, r + 32, PB_HASH_LEN);
    m->e.link_target = type == PB_ENTRY_SYMLINK ? m->xbuf : NULL;
    m->e.link_leader = type == PB_ENTRY_FILE && xlen ? m->xbuf : NULL;
    m->e.link_multi = (flags & PB_FP_MULTI) != 0;
    m->e.offset = off;
    m->e.subtree_end = sub;
    memcpy(m->prev, m->ebuf, plen + 1);
    m->prev_len = plen;
    m->off = off + rec;
    m->count++;
    if (type == PB_ENTRY_DIR) {
        if (m->depth == m->cap) {
            int ncap = m->cap ? m->cap * 2 : 16;
            level *ns = realloc(m->stack, (size_t)ncap * sizeof(*ns));
            if (!ns)
                return pb_error_set(err, PB_ENOMEM, "manifest: out of memory");
            memset(ns + m->cap, 0, (size_t)(ncap - m->cap) * sizeof(*ns));
            m->stack = ns;
            m->cap = ncap;
        }
        level *l = &m->stack[m->depth];
        if (!l->st && !(l->st = XXH3_createState()))
            return pb_error_set(err, PB_ENOMEM, "manifest: out of memory");
        XXH3_128bits_reset(l->st);
        l->end = sub;
        l->records = size;
        l->count0 = m->count;
        l->path_len = plen;
        l->mode = mode;
        l->skipped = 0;
        memcpy(l->hash, m->e.hash, PB_HASH_LEN);
        memcpy(m->dirpath, m->ebuf, plen + 1);
        m->depth++;
        m->last_dir = 1;
    } else {
        XXH3_state_t *st = m->depth ? m->stack[m->depth - 1].st : m->root;
        if (type == PB_ENTRY_FILE)
            m->file_bytes += size;
        const char *name = m->ebuf + (parent_len ? parent_len + 1 : 0);
        pb_fp__dir_feed(st, name, plen - (size_t)(name - m->ebuf), type, mode, m->e.hash);
    }
    *entry = &m->e;
    return 1;
}

int pb_manifest_skip(pb_manifest *m, pb_error *err)
{
    if (!m->last_dir)
        return pb_error_set(err, PB_EINVALID, "manifest: skip without a directory entry");
    level *l = &m->stack[m->depth - 1];
    if (l->end != m->off) {
        if (fseeko(m->f, (off_t)l->end, SEEK_SET) != 0)
            return pb_error_errno(err, "manifest %s: seek failed", m->path);
    }
    l->skipped = 1;
    m->skipped_any = 1;
    m->off = l->end;
    m->count += l->records;
    m->last_dir = 0;
    return 0;
}

void pb_manifest_free(pb_manifest *m)
{
    if (!m)
        return;
    if (m->f)
        fclose(m->f);
    for (int i = 0; i < m->cap; i++)
        XXH3_freeState(m->stack[i].st);
    free(m->stack);
    XXH3_freeState(m->root);
    free(m->path);
    free(m);
}

/* ================================ compare ================================ */

static int same_entry(const pb_manifest_entry *a, const pb_manifest_entry *b)
{
    return a->type == b->type && a->mode == b->mode && memcmp(a->hash, b->hash, PB_HASH_LEN) == 0;
}

int pb_manifest_compare(pb_manifest *home, pb_manifest *other, pb_manifest_cmp_cb cb, void *payload,
                        pb_manifest_cmp_stats *stats, pb_error *err)
{
    int error = 0, ra, rb;
    const pb_manifest_entry *a = NULL, *b = NULL;
    pb_manifest_cmp_stats s;

    memset(&s, 0, sizeof(s));
    if ((ra = pb_manifest_next(home, &a, err)) < 0)
        return ra;
    if ((rb = pb_manifest_next(other, &b, err)) < 0)
        return rb;
    while (a || b) {
        int c = !a   ? 1
                : !b ? -1
                     : pb_fp__pathcmp(a->path, strlen(a->path), b->path, strlen(b->path));
        int adv_a = 0, adv_b = 0;
        if (c < 0) {
            s.only_home++;
            if (cb && cb(PB_CMP_ONLY_HOME, a, NULL, 0, payload)) {
                error = pb_error_set(err, PB_ECANCELLED, "manifest compare: cancelled");
                goto done;
            }
            adv_a = 1;
        } else if (c > 0) {
            s.new_entries++;
            if (cb && cb(PB_CMP_NEW, NULL, b, 0, payload)) {
                error = pb_error_set(err, PB_ECANCELLED, "manifest compare: cancelled");
                goto done;
            }
            adv_b = 1;
        } else {
            int eq = same_entry(a, b), subtree = eq && a->type == PB_ENTRY_DIR;
            pb_cmp_kind k = eq ? PB_CMP_UNCHANGED : PB_CMP_CHANGED;
            if (eq)
                s.unchanged++;
            else
                s.changed++;
            if (cb && cb(k, a, b, subtree, payload)) {
                error = pb_error_set(err, PB_ECANCELLED, "manifest compare: cancelled");
                goto done;
            }
            if (subtree) {
                s.skipped_subtrees++;
                if ((error = pb_manifest_skip(home, err)) < 0 ||
                    (error = pb_manifest_skip(other, err)) < 0)
                    goto done;
            }
            adv_a = adv_b = 1;
        }
        if (adv_a && (ra = pb_manifest_next(home, &a, err)) < 0) {
            error = ra;
            goto done;
        }
        if (adv_b && (rb = pb_manifest_next(other, &b, err)) < 0) {
            error = rb;
            goto done;
        }
    }
done:
    if (stats)
        *stats = s;
    return error;
}

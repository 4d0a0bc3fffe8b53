/*
 * answer.c: the ANSWER file of the export protocol (engine/bundle/answer.h): what the home holds
 * of the paths the cloud listed, with librsync signatures. This comment is its specification.
 *
 * ANSWER FORMAT (version 1; little-endian, hashes XXH3-128 canonical). Home -> cloud.
 *   header  = magic "PBANSWER" | version u32 = 1 | flags u32 = 0 | home_root (16: root hash of
 *             the home manifest used, zero when none)
 *   entry   = verdict u8 | 0 u8 | path_len u16 | size u64 | hash (16) | path |
 *             [verdict 'S': signature as chunks: len u32 (1..1 MiB) | bytes, then 0 u32]
 *             verdicts: 'M' the home lacks the path (size 0, hash zero); 'W' the home holds
 *             another version (its size and hash), send the file whole; 'S' the same with a
 *             librsync signature of the home file (BLAKE2, pb_rsync_plan block size)
 *   trailer = 'Z' | 7 zero bytes | entries u64 | checksum (XXH3-128 of every byte before it)
 * Entries come in strictly increasing walk order; paths obey the bundle path rules. Paths of
 * the LIST that the answer does not name are unchanged at home.
 * Memory: streaming everywhere; librsync loads one signature while it computes a delta
 * Memory: streaming both ways; one 1 MiB signature chunk.
 * Role: pb_export_answer (export_answer.c) writes it at home, pb_export_build (export_build.c)
 * reads it on the cloud. Prerequisites: libxxhash.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "answer.h"
#include "bytes.h"
#include "fingerprint_int.h"

#define ANSWER_MAGIC   "PBANSWER"
#define ANSWER_VERSION 1
#define ANSWER_HEADER  32
#define ANSWER_ENTRY   28
#define SIG_MAX        (1ull << 30) /* a signature of a 4 TB file is < 1 GiB */

/* ---- writer ---- */

static int aw_put(pb_answer_writer *w, const void *p, size_t n, pb_error *err)
{
    XXH3_128bits_update(w->st, p, n);
    if (n && fwrite(p, 1, n, w->f) != n)
        return pb_error_errno(err, "answer: cannot write %s", w->path);
    return 0;
}

int pb_answer__writer_open(pb_answer_writer *w, const char *path, const uint8_t home_root[16],
                           pb_error *err)
{
    uint8_t h[ANSWER_HEADER];
    memset(w, 0, sizeof(*w));
    w->path = path;
    if (!(w->st = XXH3_createState()) || !(w->chunk = malloc(PB_BUNDLE_CHUNK_MAX)))
        return pb_error_set(err, PB_ENOMEM, "answer: out of memory");
    XXH3_128bits_reset(w->st);
    if (!(w->f = fopen(path, "wb")))
        return pb_error_errno(err, "answer: cannot create %s", path);
    memcpy(h, ANSWER_MAGIC, 8);
    pb_put_le32(h + 8, ANSWER_VERSION);
    pb_put_le32(h + 12, 0);
    memcpy(h + 16, home_root, 16);
    return aw_put(w, h, sizeof(h), err);
}

int pb_answer__writer_entry(pb_answer_writer *w, int verdict, const char *path, uint64_t size,
                            const uint8_t hash[16], pb_error *err)
{
    uint8_t e[ANSWER_ENTRY];
    size_t n = strlen(path);
    memset(e, 0, sizeof(e));
    e[0] = (uint8_t)verdict;
    pb_put_le16(e + 2, (uint16_t)n);
    pb_put_le64(e + 4, size);
    if (hash)
        memcpy(e + 12, hash, 16);
    w->count++;
    int error = aw_put(w, e, sizeof(e), err);
    return error ? error : aw_put(w, path, n, err);
}

static int aw_chunk_flush(pb_answer_writer *w, pb_error *err)
{
    uint8_t l[4];
    int error;
    if (!w->chunk_len)
        return 0;
    pb_put_le32(l, (uint32_t)w->chunk_len);
    if ((error = aw_put(w, l, 4, err)) < 0 || (error = aw_put(w, w->chunk, w->chunk_len, err)) < 0)
        return error;
    w->sig_bytes += w->chunk_len;
    w->chunk_len = 0;
    return 0;
}

/* pb_rsync_write_fn: signature bytes into chunks */
int pb_answer__writer_sig(void *payload, const void *buf, size_t len, pb_error *err)
{
    pb_answer_writer *w = payload;
    const uint8_t *p = buf;
    while (len) {
        size_t k = PB_BUNDLE_CHUNK_MAX - w->chunk_len;
        if (k > len)
            k = len;
        memcpy(w->chunk + w->chunk_len, p, k);
        w->chunk_len += k;
        p += k;
        len -= k;
        if (w->chunk_len == PB_BUNDLE_CHUNK_MAX) {
            int error = aw_chunk_flush(w, err);
            if (error < 0)
                return error;
        }
    }
    return 0;
}

int pb_answer__writer_sig_end(pb_answer_writer *w, pb_error *err)
{
    uint8_t z[4] = {0, 0, 0, 0};
    int error = aw_chunk_flush(w, err);
    return error ? error : aw_put(w, z, 4, err);
}

int pb_answer__writer_finish(pb_answer_writer *w, pb_error *err)
{
    uint8_t t[24], sum[16];
    int error;
    memset(t, 0, sizeof(t));
    t[0] = 'Z';
    pb_put_le64(t + 8, w->count);
    if ((error = aw_put(w, t, 16, err)) < 0)
        return error;
    pb_fp__dir_digest(sum, w->st);
    if (fwrite(sum, 1, 16, w->f) != 16 || fflush(w->f) != 0 || fsync(fileno(w->f)) != 0)
        return pb_error_errno(err, "answer: cannot write %s", w->path);
    return 0;
}

void pb_answer__writer_close(pb_answer_writer *w)
{
    if (w->f)
        fclose(w->f);
    XXH3_freeState(w->st);
    free(w->chunk);
    memset(w, 0, sizeof(*w));
}

/* ---- reader (strict, streaming) ---- */

static int ar_fail(pb_answer_reader *r, pb_error *err, const char *what)
{
    return pb_error_set(err, PB_ECORRUPT, "answer %s: entry %llu at offset %llu: %s", r->path,
                        (unsigned long long)r->count, (unsigned long long)r->entry_off, what);
}

static int ar_get(pb_answer_reader *r, void *p, size_t n, pb_error *err)
{
    if (n && fread(p, 1, n, r->f) != n)
        return ferror(r->f) ? pb_error_errno(err, "answer: cannot read %s", r->path)
                            : ar_fail(r, err, "truncated");
    XXH3_128bits_update(r->st, p, n);
    r->off += n;
    return 0;
}

int pb_answer__reader_open(pb_answer_reader *r, const char *path, pb_error *err)
{
    uint8_t h[ANSWER_HEADER];
    int error;
    memset(r, 0, sizeof(*r));
    r->path = path;
    if (!(r->st = XXH3_createState()))
        return pb_error_set(err, PB_ENOMEM, "answer: out of memory");
    XXH3_128bits_reset(r->st);
    if (!(r->f = fopen(path, "rb")))
        return errno == ENOENT
                   ? pb_error_setd(err, PB_ENOTFOUND, ENOENT, "answer %s does not exist", path)
                   : pb_error_errno(err, "answer: cannot open %s", path);
    if ((error = ar_get(r, h, sizeof(h), err)) < 0)
        return error;
    if (memcmp(h, ANSWER_MAGIC, 8) != 0 || pb_get_le32(h + 8) != ANSWER_VERSION ||
        pb_get_le32(h + 12))
        return pb_error_set(err, PB_ECORRUPT, "answer %s: bad header (magic, version or flags)",
                            path);
    memcpy(r->home_root, h + 16, 16);
    return 0;
}

/* Reads signature bytes of the current 'S' entry (pb_rsync_read_fn); *got = 0 at its end. */
int pb_answer__reader_sig(void *payload, void *buf, size_t cap, size_t *got, pb_error *err)
{
    pb_answer_reader *r = payload;
    int error;
    *got = 0;
    if (!r->sig_open)
        return 0;
    if (!r->chunk_left) {
        uint8_t l[4];
        if ((error = ar_get(r, l, 4, err)) < 0)
            return error;
        uint32_t n = pb_get_le32(l);
        if (n > PB_BUNDLE_CHUNK_MAX)
            return ar_fail(r, err, "signature chunk too long");
        if (n == 0) {
            r->sig_open = 0;
            return 0;
        }
        if ((r->sig_total += n) > SIG_MAX)
            return ar_fail(r, err, "signature too long");
        r->chunk_left = n;
    }
    size_t k = r->chunk_left < cap ? r->chunk_left : cap;
    if ((error = ar_get(r, buf, k, err)) < 0)
        return error;
    r->chunk_left -= (uint32_t)k;
    *got = k;
    return 0;
}

static int ar_skip_sig(pb_answer_reader *r, pb_error *err)
{
    char buf[8192];
    size_t got;
    int error;
    do {
        if ((error = pb_answer__reader_sig(r, buf, sizeof(buf), &got, err)) < 0)
            return error;
    } while (r->sig_open);
    return 0;
}

/* Next entry: 1 with the entry, 0 at the (checked) trailer. */
int pb_answer__reader_next(pb_answer_reader *r, pb_error *err)
{
    uint8_t e[ANSWER_ENTRY];
    char why[300];
    int error;

    if (r->done)
        return 0;
    if (r->sig_open && (error = ar_skip_sig(r, err)) < 0)
        return error;
    r->entry_off = r->off;
    if ((error = ar_get(r, e, 1, err)) < 0)
        return error;
    if (e[0] == 'Z') {
        uint8_t t[15], sum[16], want[16];
        if ((error = ar_get(r, t, 15, err)) < 0)
            return error;
        pb_fp__dir_digest(want, r->st);
        if (fread(sum, 1, 16, r->f) != 16)
            return ar_fail(r, err, "truncated trailer");
        for (int i = 0; i < 7; i++)
            if (t[i])
                return ar_fail(r, err, "bad trailer");
        if (pb_get_le64(t + 7) != r->count)
            return ar_fail(r, err, "entry count mismatch");
        if (memcmp(sum, want, 16) != 0)
            return ar_fail(r, err, "checksum mismatch");
        if (fgetc(r->f) != EOF)
            return ar_fail(r, err, "trailing bytes after the trailer");
        r->done = 1;
        r->have = 0;
        return 0;
    }
    if ((error = ar_get(r, e + 1, ANSWER_ENTRY - 1, err)) < 0)
        return error;
    r->verdict = e[0];
    if ((r->verdict != 'M' && r->verdict != 'S' && r->verdict != 'W') || e[1])
        return ar_fail(r, err, "unknown verdict");
    r->epath_len = (size_t)(e[2] | (e[3] << 8));
    r->size = pb_get_le64(e + 4);
    memcpy(r->hash, e + 12, 16);
    if (r->epath_len > PB_BUNDLE_PATH_MAX)
        return ar_fail(r, err, "path too long");
    if ((error = ar_get(r, r->epath, r->epath_len, err)) < 0)
        return error;
    r->epath[r->epath_len] = '\0';
    if (pb_bundle__path_check(r->epath, r->epath_len, why, sizeof(why)) < 0)
        return ar_fail(r, err, why);
    if (r->count && pb_bundle__pathcmp(r->prev, r->prev_len, r->epath, r->epath_len) >= 0)
        return ar_fail(r, err, "path out of order or duplicated");
    memcpy(r->prev, r->epath, r->epath_len + 1);
    r->prev_len = r->epath_len;
    r->count++;
    r->have = 1;
    r->sig_open = r->verdict == 'S';
    r->chunk_left = 0;
    r->sig_total = 0;
    return 1;
}

void pb_answer__reader_close(pb_answer_reader *r)
{
    if (r->f)
        fclose(r->f);
    XXH3_freeState(r->st);
    memset(r, 0, sizeof(*r));
}

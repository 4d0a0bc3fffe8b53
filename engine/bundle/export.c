/*
 * export.c: building a bundle on the cloud side, as the three protocol steps of
 * include/plexburst/bundle.h: (a) the cloud lists its files (pb_export_list: its manifest),
 * (b) the home answers what it lacks or holds in another version, with librsync signatures
 * (pb_export_answer), (c) the cloud writes the bundle (pb_export_build), plus the local
 * shortcut where the home data dir (or its manifest) is directly readable.
 * Role: the cloud agent runs (a) and (c), the home runs (b); the CLI's export/sigs commands.
 * Prerequisites: H6's fingerprints and manifests, H3's diff and checksum, H5's Plex policy
 * (derived tables are never shipped), librsync jobs (transfer/rsync.c), the bundle writer.
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
 * (about 0.5 % of that file's size), on the cloud side only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>
#include <xxhash.h>

#include "bytes.h"
#include "bundle.h"
#include "fs.h"
#include "hex.h"
#include "plexburst/baseline.h"
#include "plexburst/export.h"
#include "plexburst/compat.h"
#include "plexburst/fingerprint.h"
#include "plexburst/plex.h"
#include "plexburst/sqldiff.h"
#include "policy.h"
#include "rsync.h"

#define ANSWER_MAGIC   "PBANSWER"
#define ANSWER_VERSION 1
#define ANSWER_HEADER  32
#define ANSWER_ENTRY   28
#define SIG_MAX        (1ull << 30) /* a signature of a 4 TB file is < 1 GiB */
#define IOB            (256u * 1024)

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void digest(uint8_t out[16], XXH3_state_t *st)
{
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
    memcpy(out, c.digest, 16);
}

/* ---------------------------------------------------------------------------------------- */
/* ANSWER writer                                                                             */

typedef struct answer_w {
    FILE *f;
    XXH3_state_t *st;
    uint64_t count, sig_bytes;
    uint8_t *chunk;
    size_t chunk_len;
    const char *path; /* for messages */
} answer_w;

static int aw_put(answer_w *w, const void *p, size_t n, pb_error *err)
{
    XXH3_128bits_update(w->st, p, n);
    if (n && fwrite(p, 1, n, w->f) != n)
        return pb_error_errno(err, "answer: cannot write %s", w->path);
    return 0;
}

static int aw_open(answer_w *w, const char *path, const uint8_t home_root[16], pb_error *err)
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

static int aw_entry(answer_w *w, int verdict, const char *path, uint64_t size,
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

static int aw_chunk_flush(answer_w *w, pb_error *err)
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
static int aw_sig_write(void *payload, const void *buf, size_t len, pb_error *err)
{
    answer_w *w = payload;
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

static int aw_sig_end(answer_w *w, pb_error *err)
{
    uint8_t z[4] = {0, 0, 0, 0};
    int error = aw_chunk_flush(w, err);
    return error ? error : aw_put(w, z, 4, err);
}

static int aw_finish(answer_w *w, pb_error *err)
{
    uint8_t t[24], sum[16];
    int error;
    memset(t, 0, sizeof(t));
    t[0] = 'Z';
    pb_put_le64(t + 8, w->count);
    if ((error = aw_put(w, t, 16, err)) < 0)
        return error;
    digest(sum, w->st);
    if (fwrite(sum, 1, 16, w->f) != 16 || fflush(w->f) != 0 || fsync(fileno(w->f)) != 0)
        return pb_error_errno(err, "answer: cannot write %s", w->path);
    return 0;
}

static void aw_close(answer_w *w)
{
    if (w->f)
        fclose(w->f);
    XXH3_freeState(w->st);
    free(w->chunk);
    memset(w, 0, sizeof(*w));
}

/* ---------------------------------------------------------------------------------------- */
/* ANSWER reader (strict, streaming)                                                         */

typedef struct answer_r {
    FILE *f;
    const char *path;
    XXH3_state_t *st;
    uint8_t home_root[16];
    uint64_t count, off, entry_off;
    int have, done;
    /* the current entry */
    int verdict;
    char epath[PB_BUNDLE_PATH_MAX + 1];
    size_t epath_len;
    uint64_t size;
    uint8_t hash[16];
    int sig_open; /* 'S' entry whose signature is not consumed yet */
    uint32_t chunk_left;
    uint64_t sig_total;
    char prev[PB_BUNDLE_PATH_MAX + 1];
    size_t prev_len;
} answer_r;

static int ar_fail(answer_r *r, pb_error *err, const char *what)
{
    return pb_error_set(err, PB_ECORRUPT, "answer %s: entry %llu at offset %llu: %s", r->path,
                        (unsigned long long)r->count, (unsigned long long)r->entry_off, what);
}

static int ar_get(answer_r *r, void *p, size_t n, pb_error *err)
{
    if (n && fread(p, 1, n, r->f) != n)
        return ferror(r->f) ? pb_error_errno(err, "answer: cannot read %s", r->path)
                            : ar_fail(r, err, "truncated");
    XXH3_128bits_update(r->st, p, n);
    r->off += n;
    return 0;
}

static int ar_open(answer_r *r, const char *path, pb_error *err)
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
static int ar_sig_read(void *payload, void *buf, size_t cap, size_t *got, pb_error *err)
{
    answer_r *r = payload;
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

static int ar_skip_sig(answer_r *r, pb_error *err)
{
    char buf[8192];
    size_t got;
    int error;
    do {
        if ((error = ar_sig_read(r, buf, sizeof(buf), &got, err)) < 0)
            return error;
    } while (r->sig_open);
    return 0;
}

/* Next entry: 1 with the entry, 0 at the (checked) trailer. */
static int ar_next(answer_r *r, pb_error *err)
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
        digest(want, r->st);
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

static void ar_close(answer_r *r)
{
    if (r->f)
        fclose(r->f);
    XXH3_freeState(r->st);
    memset(r, 0, sizeof(*r));
}

/* ---------------------------------------------------------------------------------------- */
/* step (a)                                                                                  */

int pb_export_list(pb_export_stats *out, const char *cloud_dir, const char *state_dir,
                   const char *list_path, pb_error *err)
{
    pb_fingerprint_options fo = PB_FINGERPRINT_OPTIONS_INIT;
    pb_fingerprint_result fr;
    double t0 = now_ms();
    int error;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!cloud_dir || !list_path)
        return pb_error_set(err, PB_EINVALID, "export list: cloud dir and list path needed");
    fo.state_dir = state_dir;
    fo.manifest_path = list_path;
    if ((error = pb_fingerprint_run(&fr, cloud_dir, &fo, err)) < 0)
        return error;
    if (out) {
        out->listed = fr.files;
        out->ms = now_ms() - t0;
    }
    return 0;
}

typedef struct wanted_ctx {
    FILE *f;
    pb_export_stats *st;
} wanted_ctx;

static int wanted_cb(pb_cmp_kind kind, const pb_manifest_entry *home,
                     const pb_manifest_entry *other, int subtree, void *payload)
{
    wanted_ctx *w = payload;
    (void)subtree;
    if (!other || other->type != PB_ENTRY_FILE || kind == PB_CMP_ONLY_HOME)
        return 0;
    if (kind == PB_CMP_UNCHANGED) {
        w->st->listed++;
        return 0;
    }
    w->st->listed++;
    if (home && home->type == PB_ENTRY_FILE && memcmp(home->hash, other->hash, 16) == 0)
        return 0;
    if (strchr(other->path, '\n'))
        return 0; /* cannot be a line; the bundle path rules refuse it anyway */
    w->st->answers++;
    return fprintf(w->f, "%s\n", other->path) < 0 ? 1 : 0;
}

int pb_export_wanted(pb_export_stats *out, const char *cloud_dir, const char *state_dir,
                     const char *home_manifest, const char *wanted_path, pb_error *err)
{
    int error = 0;
    char tmp[4200], part[4200];
    pb_export_stats local;
    pb_manifest *hm = NULL, *cm = NULL;
    wanted_ctx w = {NULL, NULL};
    double t0 = now_ms();

    if (!out)
        out = &local;
    memset(out, 0, sizeof(*out));
    if (!cloud_dir || !home_manifest || !wanted_path)
        return pb_error_set(err, PB_EINVALID, "export: cloud dir, home manifest and output needed");
    snprintf(tmp, sizeof(tmp), "%s.cloud-manifest", wanted_path);
    snprintf(part, sizeof(part), "%s.part", wanted_path);
    pb_export_stats ls;
    if ((error = pb_export_list(&ls, cloud_dir, state_dir, tmp, err)) < 0)
        goto done;
    if ((error = pb_manifest_open(&hm, home_manifest, err)) < 0 ||
        (error = pb_manifest_open(&cm, tmp, err)) < 0)
        goto done;
    if (!(w.f = fopen(part, "w"))) {
        error = pb_error_errno(err, "export: cannot create %s", part);
        goto done;
    }
    w.st = out;
    if ((error = pb_manifest_compare(hm, cm, wanted_cb, &w, NULL, err)) < 0)
        goto done;
    if (fflush(w.f) != 0 || fsync(fileno(w.f)) != 0) {
        error = pb_error_errno(err, "export: cannot write %s", part);
        goto done;
    }
    fclose(w.f);
    w.f = NULL;
    if (rename(part, wanted_path) != 0) {
        error = pb_error_errno(err, "export: cannot rename %s", part);
        goto done;
    }
    out->ms = now_ms() - t0;
done:
    if (w.f)
        fclose(w.f);
    if (error < 0)
        unlink(part);
    pb_manifest_free(hm);
    pb_manifest_free(cm);
    unlink(tmp);
    return error;
}

/* ---------------------------------------------------------------------------------------- */
/* step (b)                                                                                  */

typedef struct answer_ctx {
    answer_w w;
    int root_fd;
    uint64_t whole_below;
    pb_export_stats *st;
    pb_error *err;
    int error;
} answer_ctx;

/* Answers one path the home holds in another version (or not at all when it is not a regular
 * file we may read): hash, then signature unless small. */
static int answer_file(answer_ctx *a, const char *path, pb_error *err)
{
    int error = 0, dfd = -1, fd = -1;
    const char *name;
    struct stat st;
    uint8_t hash[16];
    uint64_t size = 0;

    error = pb_fs_open_parent(&dfd, &name, a->root_fd, path, NULL, NULL, err);
    if (error == PB_ENOTFOUND || error == PB_ECONFLICT) {
        pb_error_clear(err);
        return aw_entry(&a->w, 'M', path, 0, NULL, err);
    }
    if (error < 0)
        return error;
    fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd < 0 && errno != ENOENT && errno != ELOOP) {
            error = pb_error_errno(err, "answer: cannot open home file %s", path);
            goto done;
        }
        error = aw_entry(&a->w, 'M', path, 0, NULL, err);
        goto done;
    }
    if ((error = pb_bundle__hash_fd(hash, &size, fd, err)) < 0)
        goto done;
    if (size < a->whole_below) {
        error = aw_entry(&a->w, 'W', path, size, hash, err);
        goto done;
    }
    if ((error = aw_entry(&a->w, 'S', path, size, hash, err)) < 0)
        goto done;
    if (lseek(fd, 0, SEEK_SET) < 0) {
        error = pb_error_errno(err, "answer: seek failed on %s", path);
        goto done;
    }
    if ((error = pb_rsync_sig(fd, aw_sig_write, &a->w, NULL, NULL, err)) < 0 ||
        (error = aw_sig_end(&a->w, err)) < 0)
        goto done;
done:
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    return error;
}

static int answer_cmp_cb(pb_cmp_kind kind, const pb_manifest_entry *home,
                         const pb_manifest_entry *other, int subtree, void *payload)
{
    answer_ctx *a = payload;
    (void)subtree;
    if (!other || other->type != PB_ENTRY_FILE)
        return 0;
    if (kind == PB_CMP_NEW || (kind == PB_CMP_CHANGED && (!home || home->type != PB_ENTRY_FILE)))
        a->error = aw_entry(&a->w, 'M', other->path, 0, NULL, a->err);
    else if (kind == PB_CMP_CHANGED && memcmp(home->hash, other->hash, 16) != 0)
        a->error = answer_file(a, other->path, a->err);
    return a->error < 0 ? 1 : 0;
}

/* The LIST is a manifest ("PBMANIF1") or a text list of paths. */
static int is_manifest(const char *path, int *yes, pb_error *err)
{
    char m[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT
                   ? pb_error_setd(err, PB_ENOTFOUND, ENOENT, "list %s does not exist", path)
                   : pb_error_errno(err, "cannot open list %s", path);
    size_t n = fread(m, 1, 8, f);
    fclose(f);
    *yes = n == 8 && memcmp(m, "PBMANIF1", 8) == 0;
    return 0;
}

static int answer_text(answer_ctx *a, const char *list_path, pb_error *err)
{
    int error = 0;
    FILE *f = fopen(list_path, "r");
    char line[PB_BUNDLE_PATH_MAX + 2], prev[PB_BUNDLE_PATH_MAX + 1], why[300];
    size_t prev_len = 0;
    uint64_t lineno = 0;

    if (!f)
        return pb_error_errno(err, "cannot open list %s", list_path);
    while (fgets(line, sizeof(line), f)) {
        size_t n = strlen(line);
        lineno++;
        if (n && line[n - 1] == '\n')
            line[--n] = '\0';
        else if (!feof(f)) {
            error = pb_error_set(err, PB_ECORRUPT, "list %s: line %llu too long", list_path,
                                 (unsigned long long)lineno);
            goto done;
        }
        if (n == 0)
            continue;
        if (pb_bundle__path_check(line, n, why, sizeof(why)) < 0) {
            error = pb_error_set(err, PB_EUNSAFE, "list %s: line %llu: %s", list_path,
                                 (unsigned long long)lineno, why);
            goto done;
        }
        if (prev_len && pb_bundle__pathcmp(prev, prev_len, line, n) >= 0) {
            error = pb_error_set(err, PB_ECORRUPT, "list %s: line %llu: out of walk order",
                                 list_path, (unsigned long long)lineno);
            goto done;
        }
        memcpy(prev, line, n + 1);
        prev_len = n;
        if ((error = answer_file(a, line, err)) < 0)
            goto done;
    }
    if (ferror(f))
        error = pb_error_errno(err, "cannot read list %s", list_path);
done:
    fclose(f);
    return error;
}

int pb_export_answer(pb_export_stats *out, const char *home_dir, const char *list_path,
                     const char *answer_path, const pb_answer_options *opts, pb_error *err)
{
    int error = 0, manifest = 0, made_manifest = 0;
    answer_ctx a;
    pb_manifest *hm = NULL, *cm = NULL;
    char tmp_manifest[4200] = "", part[4200];
    uint8_t root[16] = {0};
    pb_export_stats local;
    double t0 = now_ms();

    memset(&a, 0, sizeof(a));
    a.root_fd = -1;
    if (!out)
        out = &local;
    memset(out, 0, sizeof(*out));
    if (!home_dir || !list_path || !answer_path)
        return pb_error_set(err, PB_EINVALID, "answer: home dir, list and output needed");
    if ((size_t)snprintf(part, sizeof(part), "%s.part", answer_path) >= sizeof(part))
        return pb_error_set(err, PB_EINVALID, "answer: path too long");
    a.whole_below = opts && opts->whole_below ? opts->whole_below : PB_RSYNC_WHOLE_BELOW;
    a.st = out;
    a.err = err;
    if ((a.root_fd = open(home_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        error = errno == ENOENT ? pb_error_setd(err, PB_ENOTFOUND, ENOENT,
                                                "home data dir %s does not exist", home_dir)
                                : pb_error_errno(err, "cannot open the home data dir %s", home_dir);
        goto done;
    }
    if ((error = is_manifest(list_path, &manifest, err)) < 0)
        goto done;
    if (manifest) {
        const char *hpath = opts ? opts->home_manifest : NULL;
        if (!hpath) {
            pb_fingerprint_options fo = PB_FINGERPRINT_OPTIONS_INIT;
            pb_fingerprint_result fr;
            snprintf(tmp_manifest, sizeof(tmp_manifest), "%s.home-manifest", answer_path);
            fo.state_dir = opts ? opts->state_dir : NULL;
            fo.manifest_path = tmp_manifest;
            if ((error = pb_fingerprint_run(&fr, home_dir, &fo, err)) < 0)
                goto done;
            made_manifest = 1;
            hpath = tmp_manifest;
        }
        if ((error = pb_manifest_open(&hm, hpath, err)) < 0 ||
            (error = pb_manifest_open(&cm, list_path, err)) < 0)
            goto done;
        memcpy(root, pb_manifest_get_info(hm)->root, 16);
    }
    if ((error = aw_open(&a.w, part, root, err)) < 0)
        goto done;
    if (manifest) {
        error = pb_manifest_compare(hm, cm, answer_cmp_cb, &a, NULL, err);
        if (a.error < 0)
            error = a.error;
    } else {
        error = answer_text(&a, list_path, err);
    }
    if (error < 0 || (error = aw_finish(&a.w, err)) < 0)
        goto done;
    out->answers = a.w.count;
    out->sig_bytes = a.w.sig_bytes;
    aw_close(&a.w);
    if (rename(part, answer_path) != 0) {
        error = pb_error_errno(err, "answer: cannot rename %s", part);
        goto done;
    }
    out->ms = now_ms() - t0;
done:
    aw_close(&a.w);
    if (error < 0)
        unlink(part);
    pb_manifest_free(hm);
    pb_manifest_free(cm);
    if (made_manifest)
        unlink(tmp_manifest);
    if (a.root_fd >= 0)
        close(a.root_fd);
    return error;
}

/* ---------------------------------------------------------------------------------------- */
/* step (c)                                                                                  */

void pb_export_options_init(pb_export_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->version = PB_EXPORT_OPTIONS_VERSION;
    opts->zstd_level = 19;
}

typedef struct build {
    const pb_export_options *o;
    pb_export_stats *st;
    pb_bundle_writer *w;
    int cloud_fd;
    answer_r ans; /* the answer, read in lockstep (may be closed) */
    int have_ans;
    pb_error *err;
    int error;
    char *buf;
} build;

static int writer_out(void *payload, const void *data, size_t n, pb_error *err)
{
    return pb_bundle__fd_out(payload, data, n, err);
}

static int rsync_to_writer(void *payload, const void *buf, size_t len, pb_error *err)
{
    return pb_bundle__writer_data(payload, buf, len, err);
}

static int open_cloud_file(build *b, const char *path, int *fd, pb_error *err)
{
    int dfd = -1, error;
    const char *name;
    *fd = -1;
    if ((error = pb_fs_open_parent(&dfd, &name, b->cloud_fd, path, NULL, NULL, err)) < 0)
        return error;
    *fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    close(dfd);
    if (*fd < 0)
        return pb_error_errno(err, "export: cannot open cloud file %s", path);
    return 0;
}

/* One file the home needs. verdict: 'M' (lacks it), 'W' (whole), 'S' (delta; the answer's
 * signature is at hand in b->ans), with the home's size/hash for 'W'/'S'. */
static int emit_file(build *b, const pb_manifest_entry *e, int verdict, const uint8_t *home_hash,
                     pb_error *err)
{
    int error = 0, fd = -1;
    pb_bundle_rec *r = NULL;

    if (!(r = calloc(1, sizeof(*r))))
        return pb_error_set(err, PB_ENOMEM, "export: out of memory");
    r->path_len = strlen(e->path);
    if (r->path_len > PB_BUNDLE_PATH_MAX) {
        error = pb_error_set(err, PB_EINVALID, "export: path too long: %.100s", e->path);
        goto done;
    }
    memcpy(r->path, e->path, r->path_len + 1);
    r->mode = e->mode & 0777;
    r->mtime_ns = e->mtime_ns < 0 ? 0 : e->mtime_ns;
    r->size = e->size;
    memcpy(r->hash, e->hash, 16);
    if (home_hash && verdict != 'M')
        memcpy(r->basis, home_hash, 16);
    if (e->link_leader) {
        r->type = PB_REC_LINK;
        r->link_len = strlen(e->link_leader);
        memcpy(r->link, e->link_leader, r->link_len + 1);
        error = pb_bundle__writer_begin(b->w, r, err);
        b->st->files_link++;
        goto done;
    }
    if ((error = open_cloud_file(b, e->path, &fd, err)) < 0)
        goto done;
    if (verdict == 'S') {
        uint8_t h[16];
        uint64_t size;
        /* the delta must describe exactly the listed content */
        if ((error = pb_bundle__hash_fd(h, &size, fd, err)) < 0)
            goto done;
        if (size != e->size || memcmp(h, e->hash, 16) != 0) {
            error = pb_error_set(err, PB_ECONFLICT,
                                 "export: cloud file %s changed since it was listed", e->path);
            goto done;
        }
        r->type = PB_REC_DELTA;
        pb_rsync_stats rs;
        if ((error = pb_bundle__writer_begin(b->w, r, err)) < 0 ||
            (error = pb_rsync_delta(ar_sig_read, &b->ans, fd, rsync_to_writer, b->w, NULL, &rs,
                                    err)) < 0 ||
            (error = pb_bundle__writer_end(b->w, err)) < 0)
            goto done;
        b->st->files_delta++;
        b->st->delta_bytes += rs.out_bytes;
    } else {
        r->type = PB_REC_NEW;
        if ((error = pb_bundle__writer_begin(b->w, r, err)) < 0)
            goto done;
        for (;;) {
            ssize_t n = read(fd, b->buf, IOB);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                error = pb_error_errno(err, "export: cannot read %s", e->path);
                goto done;
            }
            if (n == 0)
                break;
            if ((error = pb_bundle__writer_data(b->w, b->buf, (size_t)n, err)) < 0)
                goto done;
        }
        if ((error = pb_bundle__writer_end(b->w, err)) < 0) {
            if (error == PB_ECONFLICT) {
                pb_error_clear(err);
                error = pb_error_set(err, PB_ECONFLICT,
                                     "export: cloud file %s changed since it was listed", e->path);
            }
            goto done;
        }
        b->st->files_new++;
        if (verdict == 'W')
            b->st->files_whole_changed++;
    }
    b->st->content_bytes += e->size;
done:
    if (fd >= 0)
        close(fd);
    free(r);
    return error;
}

/* Route (i): the cloud list with an ANSWER naming what the home needs. */
static int build_from_answer(build *b, const char *list, pb_error *err)
{
    int error = 0, more;
    pb_manifest *m = NULL;
    const pb_manifest_entry *e;

    if ((error = pb_manifest_open(&m, list, err)) < 0)
        return error;
    if ((more = ar_next(&b->ans, err)) < 0) {
        error = more;
        goto done;
    }
    while ((error = pb_manifest_next(m, &e, err)) == 1) {
        if (e->type != PB_ENTRY_FILE)
            continue;
        b->st->listed++;
        size_t n = strlen(e->path);
        int c = more ? pb_bundle__pathcmp(b->ans.epath, b->ans.epath_len, e->path, n) : 1;
        if (c < 0) {
            error = pb_error_set(err, PB_ECORRUPT,
                                 "export: the answer names %s, which the cloud did not list",
                                 b->ans.epath);
            goto done;
        }
        if (c > 0) {
            b->st->files_unchanged++;
            continue;
        }
        if (b->ans.verdict != 'M' && b->ans.size == e->size &&
            memcmp(b->ans.hash, e->hash, 16) == 0)
            b->st->files_unchanged++;
        else if ((error = emit_file(b, e, b->ans.verdict, b->ans.hash, err)) < 0)
            goto done;
        if ((more = ar_next(&b->ans, err)) < 0) {
            error = more;
            goto done;
        }
    }
    if (error < 0)
        goto done;
    if (more) {
        error =
            pb_error_set(err, PB_ECORRUPT,
                         "export: the answer names %s, which the cloud did not list", b->ans.epath);
        goto done;
    }
done:
    pb_manifest_free(m);
    return error;
}

/* Route (ii): compare with the home manifest; signatures from the optional answer. */
static int build_cmp_cb(pb_cmp_kind kind, const pb_manifest_entry *home,
                        const pb_manifest_entry *other, int subtree, void *payload)
{
    build *b = payload;
    (void)subtree;
    if (!other || other->type != PB_ENTRY_FILE) {
        return 0;
    }
    if (kind == PB_CMP_UNCHANGED) {
        b->st->listed++;
        b->st->files_unchanged++;
        return 0;
    }
    if (kind != PB_CMP_NEW && kind != PB_CMP_CHANGED)
        return 0;
    b->st->listed++;
    int home_file = home && home->type == PB_ENTRY_FILE;
    if (home_file && memcmp(home->hash, other->hash, 16) == 0) {
        b->st->files_unchanged++; /* mode-only change: not shipped */
        return 0;
    }
    int verdict = home_file ? 'W' : 'M';
    if (home_file && b->have_ans) {
        size_t n = strlen(other->path);
        while (b->ans.have &&
               pb_bundle__pathcmp(b->ans.epath, b->ans.epath_len, other->path, n) < 0)
            if ((b->error = ar_next(&b->ans, b->err)) < 0)
                return 1;
        if (b->ans.have && b->ans.epath_len == n && memcmp(b->ans.epath, other->path, n) == 0 &&
            b->ans.verdict == 'S' && memcmp(b->ans.hash, home->hash, 16) == 0)
            verdict = 'S';
    }
    b->error = emit_file(b, other, verdict, home_file ? home->hash : NULL, b->err);
    return b->error < 0 ? 1 : 0;
}

static int build_from_manifest(build *b, const char *list, const char *home_manifest, pb_error *err)
{
    int error;
    pb_manifest *hm = NULL, *cm = NULL;
    if ((error = pb_manifest_open(&hm, home_manifest, err)) < 0 ||
        (error = pb_manifest_open(&cm, list, err)) < 0)
        goto done;
    if (b->have_ans && (error = ar_next(&b->ans, err)) < 0)
        goto done;
    error = pb_manifest_compare(hm, cm, build_cmp_cb, b, NULL, err);
    if (b->error < 0)
        error = b->error;
done:
    pb_manifest_free(hm);
    pb_manifest_free(cm);
    return error;
}

typedef struct include_ctx {
    const pb_plex_policy *pol;
    const char *schema;
} include_ctx;

static int include_table(const char *table, void *payload)
{
    const include_ctx *c = payload;
    return pb_plex_policy_include(c->pol, c->schema, table);
}

/* Diffs base -> cloud of one DB into `raw` (filtered by the policy), returns its size/hash. */
static int diff_one(build *b, const pb_plex_policy *pol, const char *schema, const char *base,
                    const char *cloud, const char *raw, uint64_t *size, uint8_t hash[16],
                    pb_error *err)
{
    int error = 0, fd = -1;
    FILE *f = NULL;
    include_ctx ic = {pol, schema};
    pb_diff_options dopts = PB_DIFF_OPTIONS_INIT;
    pb_diff_stats ds;

    dopts.include = include_table;
    dopts.include_payload = &ic;
    if (!(f = fopen(raw, "wb")))
        return pb_error_errno(err, "export: cannot write %s", raw);
    error = pb_sqldiff_diff(&ds, base, cloud, &dopts, pb_sqldiff_write_file, f, err);
    if (fclose(f) != 0 && !error)
        error = pb_error_errno(err, "export: cannot write %s", raw);
    if (error < 0)
        return error;
    b->st->rows_inserted += ds.inserted;
    b->st->rows_updated += ds.updated;
    b->st->rows_deleted += ds.deleted;
    if ((fd = open(raw, O_RDONLY | O_CLOEXEC)) < 0)
        return pb_error_errno(err, "export: cannot read %s", raw);
    error = pb_bundle__hash_fd(hash, size, fd, err);
    close(fd);
    return error;
}

static int emit_changeset(build *b, int type, const char *raw, uint64_t size,
                          const uint8_t hash[16], pb_error *err)
{
    int error = 0, fd = -1;
    pb_bundle_rec *r;
    if (size == 0)
        return 0;
    if (!(r = calloc(1, sizeof(*r))))
        return pb_error_set(err, PB_ENOMEM, "export: out of memory");
    r->type = type;
    r->size = size;
    memcpy(r->hash, hash, 16);
    if ((fd = open(raw, O_RDONLY | O_CLOEXEC)) < 0) {
        error = pb_error_errno(err, "export: cannot read %s", raw);
        goto done;
    }
    if ((error = pb_bundle__writer_begin(b->w, r, err)) < 0)
        goto done;
    for (;;) {
        ssize_t n = read(fd, b->buf, IOB);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            error = pb_error_errno(err, "export: cannot read %s", raw);
            goto done;
        }
        if (n == 0)
            break;
        if ((error = pb_bundle__writer_data(b->w, b->buf, (size_t)n, err)) < 0)
            goto done;
    }
    error = pb_bundle__writer_end(b->w, err);
done:
    if (fd >= 0)
        close(fd);
    free(r);
    return error;
}

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

int pb_export_build(pb_export_stats *out, const char *bundle_path, const pb_export_options *o,
                    pb_error *err)
{
    int error = 0, bfd = -1, work_made = 0;
    build b;
    pb_export_stats local;
    char work[4096], list[4300], answer[4300], cs_main[4300], cs_blobs[4300], part[4300];
    char cloud_db[4300], cloud_blobs[4300];
    const char *list_used, *answer_used = NULL, *blobs_cloud = NULL;
    pb_baseline base, target;
    pb_bundle_header *h = NULL;
    sqlite3 *db = NULL;
    pb_plex_policy *pol = NULL;
    uint64_t cs_main_size = 0, cs_blobs_size = 0;
    uint8_t cs_main_hash[16], cs_blobs_hash[16];
    double t0 = now_ms();

    memset(&b, 0, sizeof(b));
    b.cloud_fd = -1;
    if (!out)
        out = &local;
    memset(out, 0, sizeof(*out));
    part[0] = '\0';
    if (!o || o->version != PB_EXPORT_OPTIONS_VERSION)
        return pb_error_set(err, PB_EINVALID, "export: options not initialised");
    if (!bundle_path || !o->cloud_dir || !o->base_db)
        return pb_error_set(err, PB_EINVALID,
                            "export: need the cloud dir, the base DB and an "
                            "output path");
    if (!o->answer && !o->home_dir && !o->home_manifest)
        return pb_error_set(
            err, PB_EINVALID,
            "export: say what the home holds (a home dir, a manifest or an answer)");
    b.o = o;
    b.st = out;
    b.err = err;
    if (!(b.buf = malloc(IOB)) || !(h = calloc(1, sizeof(*h)))) {
        error = pb_error_set(err, PB_ENOMEM, "export: out of memory");
        goto done;
    }
    const char *tmp = o->work_dir && *o->work_dir ? o->work_dir : getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    if ((size_t)snprintf(work, sizeof(work), "%s/plexburst-export-XXXXXX", tmp) >= sizeof(work) ||
        !mkdtemp(work)) {
        error = pb_error_errno(err, "export: cannot create a work directory in %s", tmp);
        goto done;
    }
    work_made = 1;
    snprintf(list, sizeof(list), "%s/cloud.manifest", work);
    snprintf(answer, sizeof(answer), "%s/home.answer", work);
    snprintf(cs_main, sizeof(cs_main), "%s/main.changeset", work);
    snprintf(cs_blobs, sizeof(cs_blobs), "%s/blobs.changeset", work);
    snprintf(part, sizeof(part), "%s.part", bundle_path);

    /* the DBs */
    if (o->cloud_db)
        snprintf(cloud_db, sizeof(cloud_db), "%s", o->cloud_db);
    else
        snprintf(cloud_db, sizeof(cloud_db), "%s/%s", o->cloud_dir, PB_PLEX_DB_REL);
    if (o->cloud_blobs)
        blobs_cloud = o->cloud_blobs;
    else {
        snprintf(cloud_blobs, sizeof(cloud_blobs), "%s/%s", o->cloud_dir, PB_PLEX_BLOBS_REL);
        if (exists(cloud_blobs))
            blobs_cloud = cloud_blobs;
    }
    if (blobs_cloud && !o->base_blobs) {
        error = pb_error_set(err, PB_EINVALID,
                             "export: the cloud has a blobs DB: give the baseline blobs DB too");
        goto done;
    }
    if (!blobs_cloud && o->base_blobs) {
        error = pb_error_set(err, PB_EINVALID, "export: a baseline blobs DB but no cloud blobs DB");
        goto done;
    }
    if ((error = pb_baseline_compute(&base, o->base_db, blobs_cloud ? o->base_blobs : NULL, err)) <
            0 ||
        (error = pb_baseline_compute(&target, cloud_db, blobs_cloud, err)) < 0)
        goto done;
    if ((error = pb_compat_open(&db, cloud_db, PB_OPEN_READONLY, err)) < 0)
        goto done;
    if (blobs_cloud) {
        char *sql = sqlite3_mprintf("ATTACH %Q AS blobs", blobs_cloud);
        int rc = sql ? sqlite3_exec(db, sql, NULL, NULL, NULL) : SQLITE_NOMEM;
        sqlite3_free(sql);
        if (rc != SQLITE_OK) {
            error = pb_error_setd(err, PB_ESQLITE, rc, "export: cannot attach %s: %s", blobs_cloud,
                                  sqlite3_errmsg(db));
            goto done;
        }
    }
    {
        const char *schemas[2] = {"main", "blobs"};
        if ((error = pb_plex_policy_new(&pol, db, schemas, blobs_cloud ? 2 : 1, NULL, err)) < 0)
            goto done;
    }
    if ((error = diff_one(&b, pol, "main", o->base_db, cloud_db, cs_main, &cs_main_size,
                          cs_main_hash, err)) < 0)
        goto done;
    if (blobs_cloud && (error = diff_one(&b, pol, "blobs", o->base_blobs, blobs_cloud, cs_blobs,
                                         &cs_blobs_size, cs_blobs_hash, err)) < 0)
        goto done;
    out->cs_main_bytes = cs_main_size;
    out->cs_blobs_bytes = cs_blobs_size;
    pb_plex_policy_free(pol);
    pol = NULL;
    sqlite3_close(db);
    db = NULL;

    /* the files: the cloud's list, and what the home holds */
    list_used = o->list;
    if (!list_used) {
        pb_export_stats ls;
        if ((error = pb_export_list(&ls, o->cloud_dir, NULL, list, err)) < 0)
            goto done;
        list_used = list;
    }
    if (o->home_dir && !o->home_manifest) {
        pb_answer_options ao = {PB_ANSWER_OPTIONS_VERSION, NULL, NULL, o->whole_below};
        char hstate[4300];
        pb_export_stats as;
        snprintf(hstate, sizeof(hstate), "%s/home-state", work);
        if (mkdir(hstate, 0700) != 0) {
            error = pb_error_errno(err, "export: cannot create %s", hstate);
            goto done;
        }
        ao.state_dir = hstate;
        if ((error = pb_export_answer(&as, o->home_dir, list_used, answer, &ao, err)) < 0)
            goto done;
        answer_used = answer;
        out->answers = as.answers;
        out->sig_bytes = as.sig_bytes;
    } else {
        answer_used = o->answer;
    }
    if (answer_used) {
        if ((error = ar_open(&b.ans, answer_used, err)) < 0)
            goto done;
        b.have_ans = 1;
    }

    /* the header */
    h->version = PB_BUNDLE_VERSION;
    h->flags = blobs_cloud ? PB_BUNDLE_FLAG_BLOBS : 0;
    memcpy(h->base_main, base.main, 16);
    memcpy(h->target_main, target.main, 16);
    if (blobs_cloud) {
        memcpy(h->base_blobs, base.blobs, 16);
        memcpy(h->target_blobs, target.blobs, 16);
    }
    if (o->home_manifest) {
        pb_manifest *hm = NULL;
        if ((error = pb_manifest_open(&hm, o->home_manifest, err)) < 0)
            goto done;
        memcpy(h->home_root, pb_manifest_get_info(hm)->root, 16);
        pb_manifest_free(hm);
    } else if (b.have_ans) {
        memcpy(h->home_root, b.ans.home_root, 16);
    }
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        h->created_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    }
    snprintf(h->creator, sizeof(h->creator), "%s",
             o->creator ? o->creator : "plexburst " PB_VERSION);
    if ((bfd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        error = pb_error_errno(err, "export: cannot create %s", part);
        goto done;
    }
    if (!(b.cloud_fd = open(o->cloud_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC))) {
        error = pb_error_errno(err, "export: cannot open %s", o->cloud_dir);
        goto done;
    }
    if (b.cloud_fd < 0) {
        error = pb_error_errno(err, "export: cannot open %s", o->cloud_dir);
        goto done;
    }
    if ((error = pb_bundle__writer_new(&b.w, h, o->zstd_level, writer_out, &bfd, err)) < 0 ||
        (error = emit_changeset(&b, PB_REC_MAIN_CS, cs_main, cs_main_size, cs_main_hash, err)) <
            0 ||
        (blobs_cloud && (error = emit_changeset(&b, PB_REC_BLOBS_CS, cs_blobs, cs_blobs_size,
                                                cs_blobs_hash, err)) < 0))
        goto done;
    if (o->home_manifest)
        error = build_from_manifest(&b, list_used, o->home_manifest, err);
    else
        error = build_from_answer(&b, list_used, err);
    if (error < 0 || (error = pb_bundle__writer_finish(b.w, err)) < 0)
        goto done;
    out->bundle_bytes = pb_bundle__writer_bytes(b.w);
    if (fsync(bfd) != 0 || close(bfd) != 0) {
        bfd = -1;
        error = pb_error_errno(err, "export: cannot write %s", part);
        goto done;
    }
    bfd = -1;
    if (rename(part, bundle_path) != 0) {
        error = pb_error_errno(err, "export: cannot rename %s", part);
        goto done;
    }
    part[0] = '\0';
    out->ms = now_ms() - t0;
done:
    if (bfd >= 0)
        close(bfd);
    if (part[0])
        unlink(part);
    pb_bundle__writer_free(b.w);
    if (b.have_ans)
        ar_close(&b.ans);
    if (b.cloud_fd >= 0)
        close(b.cloud_fd);
    pb_plex_policy_free(pol);
    if (db)
        sqlite3_close(db);
    if (work_made && !o->keep_work) {
        unlink(list);
        unlink(answer);
        unlink(cs_main);
        unlink(cs_blobs);
        char hstate[4300];
        snprintf(hstate, sizeof(hstate), "%s/home-state", work);
        /* the home-state fingerprint cache */
        char f[4400];
        const char *names[] = {"fingerprint.db", "fingerprint.db-wal", "fingerprint.db-shm",
                               "fingerprint.db-journal", "fingerprint.manifest"};
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            snprintf(f, sizeof(f), "%s/%s", hstate, names[i]);
            unlink(f);
        }
        rmdir(hstate);
        rmdir(work);
    }
    free(h);
    free(b.buf);
    return error;
}

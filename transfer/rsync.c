/*
 * rsync.c: librsync signature / delta / patch as streaming jobs (see rsync.h).
 * Role: the file-delta leg of a sync: home signs the files it holds in another version, the
 * agent computes deltas against the cloud's files, home patches them into staged copies.
 * Prerequisites: librsync 2.3 (rs_job_iter, RabinKarp + BLAKE2 signatures), libxxhash.
 *
 * One driver runs every job with caller-sized buffers: it refills the input buffer (moving the
 * unconsumed tail to the front), calls rs_job_iter() and hands what the job produced to the
 * output callback, until RS_DONE. The patch basis is read through rs_copy_cb with pread(), so
 * neither file is ever held in memory. librsync's own logging goes to a no-op sink (process-wide,
 * set once): the library never prints.
 */
#include <errno.h>
#include <fcntl.h>
#include <librsync.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "fs.h"
#include "rsync.h"

#define SIG_HEADER 12 /* magic, block length, strong length: 3 big-endian u32 */

static void quiet_trace(rs_loglevel level, char const *msg)
{
    (void)level;
    (void)msg;
}

static pthread_once_t trace_once = PTHREAD_ONCE_INIT;

static void trace_init(void)
{
    rs_trace_to(quiet_trace);
    rs_trace_set_level(RS_LOG_EMERG);
}

int pb_rsync_error(int rc, const char *what, pb_error *err)
{
    switch (rc) {
    case RS_DONE:
        return 0;
    case RS_INPUT_ENDED:
    case RS_BAD_MAGIC:
    case RS_CORRUPT:
    case RS_UNIMPLEMENTED:
        return pb_error_setd(err, PB_ECORRUPT, rc, "%s: corrupt input: %s", what,
                             rs_strerror((rs_result)rc));
    case RS_MEM_ERROR:
        return pb_error_setd(err, PB_ENOMEM, rc, "%s: out of memory", what);
    case RS_IO_ERROR:
        return pb_error_setd(err, PB_EIO, rc, "%s: I/O error", what);
    case RS_PARAM_ERROR:
        return pb_error_setd(err, PB_EINVALID, rc, "%s: invalid parameter", what);
    default:
        return pb_error_setd(err, PB_ERROR, rc, "%s: librsync: %s", what,
                             rs_strerror((rs_result)rc));
    }
}

void pb_rsync_plan(int *whole, size_t *block_len, size_t *strong_len, uint64_t size)
{
    rs_magic_number magic = RS_RK_BLAKE2_SIG_MAGIC;
    size_t bl = 0, sl = (size_t)-1;
    rs_long_t fsize = size ? (rs_long_t)size : 1;

    pthread_once(&trace_once, trace_init);
    if (rs_sig_args(fsize, &magic, &bl, &sl) != RS_DONE) { /* cannot happen with these inputs */
        bl = RS_DEFAULT_BLOCK_LEN;
        sl = 16;
    }
    if (bl < 256)
        bl = 256;
    if (bl > PB_RSYNC_MAX_BLOCK)
        bl = PB_RSYNC_MAX_BLOCK;
    sl += 4; /* random-collision chance per delta from 2^-32 (librsync's minimum) to 2^-64 */
    if (sl < 8)
        sl = 8;
    if (sl > RS_MAX_STRONG_SUM_LENGTH)
        sl = RS_MAX_STRONG_SUM_LENGTH;
    if (whole)
        *whole = size < PB_RSYNC_WHOLE_BELOW;
    if (block_len)
        *block_len = bl;
    if (strong_len)
        *strong_len = sl;
}

void pb_rsync_options_init(pb_rsync_options *o)
{
    pb_rsync_options init = PB_RSYNC_OPTIONS_INIT;
    *o = init;
}

/* ---- fd helpers ---- */

int pb_rsync_fd_read(void *payload, void *buf, size_t cap, size_t *got, pb_error *err)
{
    int fd = *(int *)payload;
    ssize_t n;
    do
        n = read(fd, buf, cap);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        *got = 0;
        return pb_error_errno(err, "rsync: read failed");
    }
    *got = (size_t)n;
    return 0;
}

int pb_rsync_fd_write(void *payload, const void *buf, size_t len, pb_error *err)
{
    return pb_fs_write_all(*(int *)payload, buf, len, "rsync output", err);
}

/* ---- the job driver ---- */

typedef struct driver {
    rs_job_t *job;
    const char *what; /* message prefix: "rsync sig", ... */
    pb_source_fn in;
    void *in_payload;
    pb_sink_fn out;
    void *out_payload;
    size_t icap, ocap;
    uint64_t nin, nout;
    int check_trailing; /* patch: input after the end command is corrupt */
} driver;

static int drive(driver *d, pb_error *err)
{
    int error = 0, stalls = 0;
    char *ibuf = malloc(d->icap), *obuf = malloc(d->ocap);
    rs_buffers_t b;

    if (!ibuf || !obuf) {
        error = pb_error_set(err, PB_ENOMEM, "%s: out of memory", d->what);
        goto done;
    }
    memset(&b, 0, sizeof(b));
    b.next_in = ibuf;
    for (;;) {
        if (!b.eof_in && b.avail_in < d->icap) {
            size_t got = 0;
            if (b.avail_in && b.next_in != ibuf)
                memmove(ibuf, b.next_in, b.avail_in);
            b.next_in = ibuf;
            if ((error = d->in(d->in_payload, ibuf + b.avail_in, d->icap - b.avail_in, &got, err)) <
                0)
                goto done;
            if (got == 0)
                b.eof_in = 1;
            b.avail_in += got;
            d->nin += got;
        }
        size_t before_in = b.avail_in;
        b.next_out = obuf;
        b.avail_out = d->ocap;
        rs_result rc = rs_job_iter(d->job, &b);
        size_t produced = d->ocap - b.avail_out;
        if (produced) {
            if ((error = d->out(d->out_payload, obuf, produced, err)) < 0)
                goto done;
            d->nout += produced;
        }
        if (rc == RS_DONE)
            break;
        if (rc != RS_BLOCKED) {
            error = pb_rsync_error(rc, d->what, err);
            goto done;
        }
        /* A blocked job that neither consumed nor produced, with no more input to give, is
         * stuck: librsync normally reports RS_INPUT_ENDED itself, this guards the loop. */
        if (!produced && before_in == b.avail_in && (b.eof_in || b.avail_in == d->icap)) {
            if (++stalls > 2) {
                error =
                    pb_error_set(err, PB_ECORRUPT, "%s: stream ended early (no progress)", d->what);
                goto done;
            }
        } else {
            stalls = 0;
        }
    }
    if (d->check_trailing) {
        size_t got = 0;
        if (b.avail_in == 0 && !b.eof_in)
            error = d->in(d->in_payload, ibuf, d->icap, &got, err);
        if (error == 0 && (b.avail_in || got))
            error =
                pb_error_set(err, PB_ECORRUPT, "%s: trailing bytes after the end command", d->what);
    }
done:
    free(ibuf);
    free(obuf);
    return error;
}

static void driver_init(driver *d, rs_job_t *job, const char *what, const pb_rsync_options *opts)
{
    memset(d, 0, sizeof(*d));
    d->job = job;
    d->what = what;
    d->icap = opts && opts->in_buf ? opts->in_buf : PB_RSYNC_BUF_DEFAULT;
    d->ocap = opts && opts->out_buf ? opts->out_buf : PB_RSYNC_BUF_DEFAULT;
}

static void fill_stats(pb_rsync_stats *stats, const driver *d)
{
    if (!stats)
        return;
    const rs_stats_t *s = rs_job_statistics(d->job);
    memset(stats, 0, sizeof(*stats));
    stats->in_bytes = d->nin;
    stats->out_bytes = d->nout;
    stats->lit_bytes = (uint64_t)s->lit_bytes;
    stats->copy_bytes = (uint64_t)s->copy_bytes;
    stats->block_len = s->block_len;
}

/* ---- signature ---- */

int pb_rsync_sig(int basis_fd, pb_sink_fn out, void *out_payload, const pb_rsync_options *opts,
                 pb_rsync_stats *stats, pb_error *err)
{
    int error = 0;
    rs_job_t *job = NULL;
    struct stat st;
    size_t bl, sl;
    driver d;

    pthread_once(&trace_once, trace_init);
    if (fstat(basis_fd, &st) < 0)
        return pb_error_errno(err, "rsync sig: fstat failed");
    pb_rsync_plan(NULL, &bl, &sl, (uint64_t)st.st_size);
    if (opts && opts->block_len)
        bl = opts->block_len;
    if (opts && opts->strong_len)
        sl = opts->strong_len;
    if (bl < 1 || bl > PB_RSYNC_MAX_BLOCK || sl < 8 || sl > RS_MAX_STRONG_SUM_LENGTH)
        return pb_error_set(err, PB_EINVALID,
                            "rsync sig: block length %zu / strong length %zu "
                            "out of range",
                            bl, sl);
    posix_fadvise(basis_fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    if (!(job = rs_sig_begin(bl, sl, RS_RK_BLAKE2_SIG_MAGIC))) {
        error = pb_error_set(err, PB_ENOMEM, "rsync sig: out of memory");
        goto done;
    }
    driver_init(&d, job, "rsync sig", opts);
    d.in = pb_rsync_fd_read;
    d.in_payload = &basis_fd;
    d.out = out;
    d.out_payload = out_payload;
    error = drive(&d, err);
    fill_stats(stats, &d);
    if (stats)
        stats->block_len = bl;
done:
    if (job)
        rs_job_free(job);
    return error;
}

/* ---- delta ---- */

/* Wraps the signature stream: validates the header before librsync sees it (a corrupt block
 * length must not make it allocate GBs or trip its asserts) and that the body holds whole
 * blocks. */
typedef struct sigcheck {
    pb_source_fn in;
    void *payload;
    uint64_t total;
    unsigned char head[SIG_HEADER];
    size_t strong_len;
} sigcheck;

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int sigcheck_read(void *payload, void *buf, size_t cap, size_t *got, pb_error *err)
{
    sigcheck *c = payload;
    int error = c->in(c->payload, buf, cap, got, err);
    if (error < 0)
        return error;
    if (*got == 0) {
        if (c->total < SIG_HEADER)
            return pb_error_set(err, PB_ECORRUPT,
                                "rsync delta: signature truncated at byte %llu "
                                "(header is %d bytes)",
                                (unsigned long long)c->total, SIG_HEADER);
        if ((c->total - SIG_HEADER) % (4 + c->strong_len))
            return pb_error_set(err, PB_ECORRUPT,
                                "rsync delta: signature truncated at byte %llu (partial block)",
                                (unsigned long long)c->total);
        return 0;
    }
    uint64_t before = c->total;
    c->total += *got;
    if (before < SIG_HEADER) {
        size_t take = *got < SIG_HEADER - before ? *got : (size_t)(SIG_HEADER - before);
        memcpy(c->head + before, buf, take);
        if (c->total >= SIG_HEADER) {
            uint32_t magic = be32(c->head), bl = be32(c->head + 4), sl = be32(c->head + 8);
            if (magic != RS_RK_BLAKE2_SIG_MAGIC && magic != RS_BLAKE2_SIG_MAGIC)
                return pb_error_set(err, PB_ECORRUPT,
                                    "rsync delta: signature magic %#x at byte 0 is not a BLAKE2 "
                                    "signature",
                                    magic);
            if (bl < 1 || bl > PB_RSYNC_MAX_BLOCK)
                return pb_error_set(err, PB_ECORRUPT,
                                    "rsync delta: signature block length %u at byte 4 out of "
                                    "range",
                                    bl);
            if (sl < 8 || sl > RS_MAX_STRONG_SUM_LENGTH)
                return pb_error_set(err, PB_ECORRUPT,
                                    "rsync delta: signature strong length %u at byte 8 out of "
                                    "range",
                                    sl);
            c->strong_len = sl;
        }
    }
    return 0;
}

static int sink_discard(void *payload, const void *buf, size_t len, pb_error *err)
{
    (void)payload;
    (void)buf;
    (void)len;
    (void)err;
    return 0;
}

int pb_rsync_delta(pb_source_fn sig_in, void *sig_payload, int new_fd, pb_sink_fn out,
                   void *out_payload, const pb_rsync_options *opts, pb_rsync_stats *stats,
                   pb_error *err)
{
    int error = 0;
    rs_job_t *job = NULL;
    rs_signature_t *sig = NULL;
    sigcheck chk = {sig_in, sig_payload, 0, {0}, 0};
    driver d;
    uint64_t sig_bytes = 0;
    rs_result rc;

    pthread_once(&trace_once, trace_init);
    if (!(job = rs_loadsig_begin(&sig))) {
        error = pb_error_set(err, PB_ENOMEM, "rsync delta: out of memory");
        goto done;
    }
    driver_init(&d, job, "rsync delta: signature", opts);
    d.in = sigcheck_read;
    d.in_payload = &chk;
    d.out = sink_discard;
    if ((error = drive(&d, err)) < 0)
        goto done;
    sig_bytes = d.nin;
    rs_job_free(job);
    job = NULL;
    if ((rc = rs_build_hash_table(sig)) != RS_DONE) {
        error = pb_rsync_error(rc, "rsync delta: hash table", err);
        goto done;
    }
    posix_fadvise(new_fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    if (!(job = rs_delta_begin(sig))) {
        error = pb_error_set(err, PB_ENOMEM, "rsync delta: out of memory");
        goto done;
    }
    driver_init(&d, job, "rsync delta", opts);
    d.in = pb_rsync_fd_read;
    d.in_payload = &new_fd;
    d.out = out;
    d.out_payload = out_payload;
    error = drive(&d, err);
    fill_stats(stats, &d);
    if (stats) {
        stats->in_bytes += sig_bytes;
        stats->block_len = be32(chk.head + 4);
    }
done:
    if (job)
        rs_job_free(job);
    if (sig)
        rs_free_sumset(sig);
    return error;
}

/* ---- patch ---- */

/* rs_copy_cb over the basis fd: librsync hands us its output buffer to pread into. */
static rs_result basis_copy(void *opaque, rs_long_t pos, size_t *len, void **buf)
{
    int fd = *(int *)opaque;
    ssize_t n;
    do
        n = pread(fd, *buf, *len, (off_t)pos);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return RS_IO_ERROR;
    if (n == 0)
        return RS_CORRUPT; /* a copy beyond the end of the basis */
    *len = (size_t)n;
    return RS_DONE;
}

typedef struct patch_out {
    int fd;
    XXH3_state_t *xx; /* NULL unless the output is checked */
} patch_out;

static int patch_write(void *payload, const void *buf, size_t len, pb_error *err)
{
    patch_out *o = payload;
    if (o->xx)
        XXH3_128bits_update(o->xx, buf, len);
    return pb_rsync_fd_write(&o->fd, buf, len, err);
}

int pb_rsync_patch(int basis_fd, pb_source_fn delta_in, void *delta_payload, int out_fd,
                   const pb_rsync_options *opts, pb_rsync_stats *stats, pb_error *err)
{
    int error = 0;
    rs_job_t *job = NULL;
    patch_out po = {out_fd, NULL};
    driver d;

    pthread_once(&trace_once, trace_init);
    if (opts && opts->check) {
        if (!(po.xx = XXH3_createState()) || XXH3_128bits_reset(po.xx) != XXH_OK) {
            error = pb_error_set(err, PB_ENOMEM, "rsync patch: out of memory");
            goto done;
        }
    }
    if (!(job = rs_patch_begin(basis_copy, &basis_fd))) {
        error = pb_error_set(err, PB_ENOMEM, "rsync patch: out of memory");
        goto done;
    }
    driver_init(&d, job, "rsync patch", opts);
    d.in = delta_in;
    d.in_payload = delta_payload;
    d.out = patch_write;
    d.out_payload = &po;
    d.check_trailing = 1;
    error = drive(&d, err);
    fill_stats(stats, &d);
    if (error == 0 && po.xx) {
        XXH128_canonical_t c;
        XXH128_canonicalFromHash(&c, XXH3_128bits_digest(po.xx));
        if (memcmp(c.digest, opts->check, sizeof(c.digest)) != 0)
            error = pb_error_set(err, PB_ECORRUPT,
                                 "rsync patch: result (%llu bytes) does not match the expected "
                                 "XXH3-128",
                                 (unsigned long long)d.nout);
    }
done:
    if (job)
        rs_job_free(job);
    if (po.xx)
        XXH3_freeState(po.xx);
    return error;
}

/* ---- over paths ---- */

static int open_in(int *fd, const char *path, const char *what, pb_error *err)
{
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return errno == ENOENT
                   ? pb_error_setd(err, PB_ENOTFOUND, ENOENT, "%s: %s does not exist", what, path)
                   : pb_error_errno(err, "%s: cannot open %s", what, path);
    return 0;
}

static int open_out(int *fd, const char *path, const char *what, pb_error *err)
{
    *fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (*fd < 0)
        return pb_error_errno(err, "%s: cannot create %s", what, path);
    return 0;
}

static int close_out(int fd, const char *path, int error, pb_error *err)
{
    if (fd < 0)
        return error;
    if (close(fd) < 0 && error == 0)
        error = pb_error_errno(err, "rsync: closing %s failed", path);
    if (error < 0)
        unlink(path);
    return error;
}

int pb_rsync_sig_file(const char *basis_path, const char *sig, const pb_rsync_options *opts,
                      pb_rsync_stats *stats, pb_error *err)
{
    int error = 0, in = -1, out = -1;
    if ((error = open_in(&in, basis_path, "rsync sig", err)) < 0 ||
        (error = open_out(&out, sig, "rsync sig", err)) < 0)
        goto done;
    error = pb_rsync_sig(in, pb_rsync_fd_write, &out, opts, stats, err);
done:
    error = close_out(out, sig, error, err);
    if (in >= 0)
        close(in);
    return error;
}

int pb_rsync_delta_file(const char *sig, const char *new_file, const char *delta,
                        const pb_rsync_options *opts, pb_rsync_stats *stats, pb_error *err)
{
    int error = 0, sfd = -1, nfd = -1, out = -1;
    if ((error = open_in(&sfd, sig, "rsync delta", err)) < 0 ||
        (error = open_in(&nfd, new_file, "rsync delta", err)) < 0 ||
        (error = open_out(&out, delta, "rsync delta", err)) < 0)
        goto done;
    error = pb_rsync_delta(pb_rsync_fd_read, &sfd, nfd, pb_rsync_fd_write, &out, opts, stats, err);
done:
    error = close_out(out, delta, error, err);
    if (nfd >= 0)
        close(nfd);
    if (sfd >= 0)
        close(sfd);
    return error;
}

int pb_rsync_patch_file(const char *basis_path, const char *delta, const char *out_path,
                        const pb_rsync_options *opts, pb_rsync_stats *stats, pb_error *err)
{
    int error = 0, bfd = -1, dfd = -1, out = -1;
    if ((error = open_in(&bfd, basis_path, "rsync patch", err)) < 0 ||
        (error = open_in(&dfd, delta, "rsync patch", err)) < 0 ||
        (error = open_out(&out, out_path, "rsync patch", err)) < 0)
        goto done;
    error = pb_rsync_patch(bfd, pb_rsync_fd_read, &dfd, out, opts, stats, err);
done:
    error = close_out(out, out_path, error, err);
    if (dfd >= 0)
        close(dfd);
    if (bfd >= 0)
        close(bfd);
    return error;
}

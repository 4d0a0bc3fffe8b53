/*
 * store_s3_put.c: the S3 store's put: a single PUT up to the threshold, else a multipart upload
 * whose parts stream from the file (at most 1000 parts, each retried alone, the upload aborted
 * on failure, a Complete found already done after a lost answer accepted).
 * Role: part of the S3 store (store_s3_int.h). Prerequisites: libcurl.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_s3_int.h"

/* One multipart upload in progress. */
typedef struct s3_upload {
    s3_store *s;
    const char *key, *name;
    int fd;
    uint64_t size, part;
    unsigned nparts;
    char id[1024];          /* the UploadId ("" once completed or never created) */
    char eid[3 * 1024 + 1]; /* the UploadId percent-encoded */
    char (*etags)[S3_ETAG_MAX];
    pb_progress_fn progress;
    void *pp;
    pb_error *err;
} s3_upload;

/* The x-amz-meta-mtime header of a file ("<seconds>.<ns>", as rclone writes and reads it). */
static void mtime_header(char *out, size_t cap, const struct stat *st)
{
    snprintf(out, cap, "x-amz-meta-mtime: %lld.%09ld", (long long)st->st_mtim.tv_sec,
             (long)st->st_mtim.tv_nsec);
}

static void abort_upload(s3_upload *u)
{
    char q[3 * 1024 + 16];
    s3_req r;
    pb_error ignore = PB_ERROR_INIT;
    snprintf(q, sizeof(q), "uploadId=%s", u->eid);
    s3_req_init(&r, "DELETE", &ignore);
    r.key = u->key;
    r.query = q;
    (void)s3_perform(u->s, &r, 0, "ABORT", u->key); /* best effort (some servers answer 405) */
    s3_req_dispose(&r);
}

/* CreateMultipartUpload: not idempotent (a retry may orphan an upload), yet safe to repeat when
 * the server refused it (429/5xx) or could not be reached. */
static int initiate(s3_upload *u, const char *mtime_hdr)
{
    s3_req r;
    s3_req_init(&r, "POST", u->err);
    r.key = u->key;
    r.query = "uploads=";
    r.mem = "";
    r.mem_len = 0;
    r.extra[0] = "Content-Type: application/octet-stream";
    r.extra[1] = mtime_hdr;
    int error = s3_perform(u->s, &r, 1, "CreateMultipartUpload", u->name);
    if (error == 0 && (r.xml.bad || !r.xml.upload_id[0]))
        error =
            pb_error_set(u->err, PB_ECORRUPT, "S3 CreateMultipartUpload %s: no UploadId", u->name);
    if (error == 0) {
        snprintf(u->id, sizeof(u->id), "%s", r.xml.upload_id);
        if (s3_enc(u->eid, sizeof(u->eid), u->id, strlen(u->id), 0) != 0)
            error = pb_error_set(u->err, PB_ECORRUPT,
                                 "S3 CreateMultipartUpload %s: UploadId too long", u->name);
    }
    s3_req_dispose(&r);
    return error;
}

/* UploadPart i (0-based), its ETag kept. */
static int upload_part(s3_upload *u, unsigned i)
{
    char q[3 * 1024 + 64], what[48];
    uint64_t off = (uint64_t)i * u->part;
    s3_req r;
    s3_req_init(&r, "PUT", u->err);
    /* sorted: partNumber < uploadId */
    snprintf(q, sizeof(q), "partNumber=%u&uploadId=%s", i + 1, u->eid);
    r.key = u->key;
    r.name = u->name;
    r.query = q;
    r.fd = u->fd;
    r.has_body = 1;
    r.body_off = off;
    r.body_len = u->size - off < u->part ? u->size - off : u->part;
    r.progress = u->progress;
    r.pp = u->pp;
    r.prog_base = off;
    r.prog_total = u->size;
    snprintf(what, sizeof(what), "UploadPart %u/%u of", i + 1, u->nparts);
    int error = s3_perform(u->s, &r, 1, what, u->name);
    if (error == 0 && !r.etag[0])
        error =
            pb_error_set(u->err, PB_ECORRUPT, "S3 UploadPart %u of %s: no ETag", i + 1, u->name);
    if (error == 0) {
        memcpy(u->etags[i], r.etag, S3_ETAG_MAX);
        u->s->stats.parts++;
    }
    s3_req_dispose(&r);
    return error;
}

/* The CompleteMultipartUpload body: every part's number and ETag. */
static int complete_body(const s3_upload *u, pb_buf *b)
{
    int error = pb_buf_puts(b, "<CompleteMultipartUpload>", u->err);
    for (unsigned i = 0; i < u->nparts && error == 0; i++) {
        if ((error = pb_buf_printf(b, u->err, "<Part><PartNumber>%u</PartNumber><ETag>", i + 1)) ==
                0 &&
            (error = s3_xml_escape(b, u->etags[i], u->err)) == 0)
            error = pb_buf_puts(b, "</ETag></Part>", u->err);
    }
    if (error == 0)
        error = pb_buf_puts(b, "</CompleteMultipartUpload>", u->err);
    return error;
}

/* CompleteMultipartUpload; a retried Complete may find the upload already completed by the lost
 * first try, which counts as done when the object has the right size. */
static int complete(s3_upload *u)
{
    char q[3 * 1024 + 16];
    pb_buf body = PB_BUF_INIT((size_t)u->nparts * (64 + 6 * S3_ETAG_MAX) + 64);
    s3_req r;
    int error = complete_body(u, &body);
    if (error != 0) {
        pb_buf_dispose(&body);
        return error;
    }
    s3_req_init(&r, "POST", u->err);
    snprintf(q, sizeof(q), "uploadId=%s", u->eid);
    r.key = u->key;
    r.query = q;
    r.mem = body.ptr;
    r.mem_len = body.len;
    r.has_body = 1;
    r.extra[0] = "Content-Type: application/xml";
    r.error_in_200 = 1;
    pb_error probe = PB_ERROR_INIT;
    r.err = &probe;
    if ((error = s3_perform(u->s, &r, 1, "CompleteMultipartUpload", u->name)) != 0) {
        pb_store_info si;
        pb_error ignore = PB_ERROR_INIT;
        if (strcmp(r.code, "NoSuchUpload") == 0 &&
            s3_stat(&u->s->base, u->name, &si, &ignore) == 0 && si.size == u->size)
            error = 0;
        else if (u->err && !u->err->code)
            *u->err = probe;
    } else {
        u->s->stats.multipart++;
    }
    if (error == 0)
        u->id[0] = '\0'; /* completed: nothing to abort */
    s3_req_dispose(&r);
    pb_buf_dispose(&body);
    return error;
}

static int put_multipart(s3_store *s, const char *key, const char *name, int fd, uint64_t size,
                         const char *mtime_hdr, pb_progress_fn progress, void *pp, pb_error *err)
{
    int error = 0;
    s3_upload u = {s,  key,  name,     fd, size, pb_store_s3_part_size(size, s->part_size), 0, "",
                   "", NULL, progress, pp, err};
    if (u.part > PB_STORE_S3_MAX_PART)
        return pb_error_set(err, PB_EINVALID, "store: %s is too large for S3 (%llu bytes)", name,
                            (unsigned long long)size);
    u.nparts = (unsigned)((size + u.part - 1) / u.part);
    if ((error = initiate(&u, mtime_hdr)) != 0)
        goto done;
    if (!(u.etags = calloc(u.nparts, sizeof(*u.etags)))) {
        error = pb_error_set(err, PB_ENOMEM, "S3: out of memory");
        goto done;
    }
    for (unsigned i = 0; i < u.nparts && error == 0; i++)
        error = upload_part(&u, i);
    if (error == 0)
        error = complete(&u);
done:
    if (error && u.id[0])
        abort_upload(&u);
    free(u.etags);
    return error;
}

int s3_put(pb_store *st, const char *name, const char *local_path, pb_progress_fn progress,
           void *pp, pb_error *err)
{
    s3_store *s = (s3_store *)st;
    int error = 0, fd = -1;
    char key[S3_KEY_MAX], mtime_hdr[80];
    s3_req r;
    if ((error = s3_full_key(key, sizeof(key), s, name, err)) != 0)
        return error;
    fd = open(local_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return pb_error_errno(err, "store: cannot open %s", local_path);
    s3_req_init(&r, "PUT", err);
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        error = pb_error_errno(err, "store: cannot stat %s", local_path);
        goto done;
    }
    if (!S_ISREG(sb.st_mode)) {
        error = pb_error_set(err, PB_EINVALID, "store: %s is not a regular file", local_path);
        goto done;
    }
    uint64_t size = (uint64_t)sb.st_size;
    mtime_header(mtime_hdr, sizeof(mtime_hdr), &sb);
    if (size > s->threshold || size > S3_MAX_SINGLE) {
        error = put_multipart(s, key, name, fd, size, mtime_hdr, progress, pp, err);
        goto done;
    }
    r.key = key;
    r.name = name;
    r.fd = fd;
    r.has_body = 1;
    r.body_len = size;
    r.progress = progress;
    r.pp = pp;
    r.prog_total = size;
    r.extra[0] = "Content-Type: application/octet-stream";
    r.extra[1] = mtime_hdr;
    error = s3_perform(s, &r, 1, "PUT", name);
done:
    s3_req_dispose(&r);
    if (fd >= 0)
        close(fd);
    return error;
}

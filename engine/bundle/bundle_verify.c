/*
 * bundle_verify.c: pb_bundle_verify(), the one verify pass over a bundle (plexburst/bundle.h):
 * every reader rule, the changesets' structure (pb_changeset_validate, optionally extracting
 * them), the records' paths against the data dir; nothing written but the extracted changesets.
 * Role: the home verifies a downloaded bundle once with it and hands pb_apply a pb_bundle_verified
 * (pb_bundle_verify_file); a standalone apply calls it itself.
 * Prerequisites: the reader (bundle_read.c), sqldiff's changeset validator.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle_int.h"
#include "fs.h"
#include "plexburst/sqldiff.h"

typedef struct cs_feed {
    pb_bundle_reader *r;
    FILE *extract;
    pb_error *err;
    int error; /* the reader's or the extract file's error, kept as the root cause */
} cs_feed;

static int cs_input(void *payload, void *data, size_t cap, size_t *n, pb_error *unused)
{
    cs_feed *f = payload;
    size_t got = 0;
    (void)unused; /* the validator's error is its own; the reader's goes to f->err */
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

    error = pb_fs_open_parent(&fd, &name, root_fd, path, NULL, NULL, &e);
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

/* The tables a changeset may name, by the DB it is for: Plex keeps its blobs in the blobs DB
 * (whose other tables are empty but for a few of Plex's own rows), never in the main DB. A main
 * changeset naming `blobs`, or a blobs changeset naming a library table, is for the other DB:
 * the two were swapped. */
static int cs_table_check(const pb_changeset_table *t, void *payload)
{
    int is_main = *(const int *)payload;
    static const char *const blobs_tables[] = {"blobs", "accounts", "preferences",
                                               "schema_migrations"};
    if (is_main)
        return strcmp(t->table, "blobs") == 0;
    for (size_t i = 0; i < sizeof(blobs_tables) / sizeof(blobs_tables[0]); i++)
        if (strcmp(t->table, blobs_tables[i]) == 0)
            return 0;
    return 1;
}

/* A changeset record: validated with pb_changeset_validate (and extracted when asked). */
static int verify_changeset(pb_bundle_reader *r, const pb_bundle_rec *rec,
                            const pb_bundle_verify_options *opts, pb_bundle_info *out,
                            pb_error *err)
{
    int error = 0;
    FILE *ex = NULL;
    int is_main = rec->type == PB_REC_MAIN_CS;
    const char *xp = opts ? (is_main ? opts->extract_main : opts->extract_blobs) : NULL;
    pb_changeset_summary sum;
    pb_changeset_check_options co = PB_CHANGESET_CHECK_OPTIONS_INIT;
    cs_feed f = {r, NULL, err, 0};
    pb_error ce = PB_ERROR_INIT;
    if (!is_main && !out->has_blobs) {
        error =
            pb_bundle__reader_fail(r, PB_ECORRUPT, err, "blobs changeset without a blobs baseline");
        goto fail;
    }
    if (xp && !(f.extract = ex = fopen(xp, "wb"))) {
        error = pb_error_errno(err, "cannot create %s", xp);
        goto fail;
    }
    co.expect_bytes = rec->size;
    co.table = cs_table_check;
    co.payload = &is_main;
    if (rec->size == 0) {
        error = pb_bundle__reader_fail(r, PB_ECORRUPT, err, "empty changeset record");
        goto fail;
    }
    error = pb_changeset_validate(&sum, cs_input, &f, &co, &ce);
    if (f.error < 0) {
        error = f.error;
        goto fail;
    }
    if (error == PB_ECANCELLED) {
        error = pb_bundle__reader_fail(
            r, PB_ECORRUPT, err, "the %s changeset holds rows of the %s DB (changesets swapped?)",
            is_main ? "main" : "blobs", is_main ? "blobs" : "main");
        goto fail;
    }
    if (error < 0) {
        error = pb_bundle__reader_fail(r, PB_ECORRUPT, err, "%s", ce.msg);
        goto fail;
    }
    /* the validator stops at the declared length: drain to the record's end */
    size_t got;
    char one[1];
    if ((error = pb_bundle__reader_read(r, one, 1, &got, err)) < 0)
        goto fail;
    if (got) {
        error = pb_bundle__reader_fail(r, PB_ECORRUPT, err, "changeset longer than declared");
        goto fail;
    }
    if (ex) {
        if (fflush(ex) != 0 || fsync(fileno(ex)) != 0) {
            error = pb_error_errno(err, "cannot write %s", xp);
            goto fail;
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
    return 0;
fail:
    if (ex)
        fclose(ex);
    return error;
}

int pb_bundle__verify_source(pb_bundle_info *out, pb_source_fn in, void *in_payload,
                             const pb_bundle_verify_options *opts, pb_error *err)
{
    int error = 0, root_fd = -1;
    pb_bundle_reader *r = NULL;
    const pb_bundle_rec *rec;
    pb_bundle_limits lim = PB_BUNDLE_LIMITS_INIT;

    memset(out, 0, sizeof(*out));
    if (opts)
        lim = opts->limits;
    if (opts && opts->plex_dir &&
        (root_fd = open(opts->plex_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        error = pb_error_errno(err, "cannot open the data dir %s", opts->plex_dir);
        goto done;
    }
    if ((error = pb_bundle__reader_new(&r, in, in_payload, &lim, err)) < 0)
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
    if (!out->has_blobs && !pb_bundle__is_zero(h->base_blobs, 16)) {
        error = pb_error_set(err, PB_ECORRUPT, "bundle: header: blobs baseline without the flag");
        goto done;
    }
    while ((error = pb_bundle__reader_next(r, &rec, err)) == 1) {
        if (rec->type == PB_REC_MAIN_CS || rec->type == PB_REC_BLOBS_CS) {
            if ((error = verify_changeset(r, rec, opts, out, err)) < 0)
                goto done;
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
    if (error < 0 && opts) {
        if (opts->extract_main)
            unlink(opts->extract_main);
        if (opts->extract_blobs)
            unlink(opts->extract_blobs);
    }
    pb_bundle__reader_free(r);
    if (root_fd >= 0)
        close(root_fd);
    return error;
}

int pb_bundle_verify(pb_bundle_info *out, const char *path, const pb_bundle_verify_options *opts,
                     pb_error *err)
{
    int error, fd;
    struct stat st;
    memset(out, 0, sizeof(*out));
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return errno == ENOENT
                   ? pb_error_setd(err, PB_ENOTFOUND, ENOENT, "bundle %s does not exist", path)
                   : pb_error_errno(err, "cannot open bundle %s", path);
    if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode))
        error = pb_error_set(err, PB_EINVALID, "bundle %s is not a regular file", path);
    else
        error = pb_bundle__verify_source(out, pb_bundle__fd_in, &fd, opts, err);
    close(fd);
    return error;
}

void pb_bundle_verify_options_init(pb_bundle_verify_options *opts)
{
    pb_bundle_verify_options def = PB_BUNDLE_VERIFY_OPTIONS_INIT;
    *opts = def;
}

void pb_bundle_verified_dispose(pb_bundle_verified *v)
{
    if (!v)
        return;
    free(v->path);
    free(v->cs_main);
    free(v->cs_blobs);
    free(v->plex_dir);
    memset(v, 0, sizeof(*v));
}

static char *dup_or_null(const char *s, int keep, int *failed)
{
    char *d = keep && s ? strdup(s) : NULL;
    if (keep && s && !d)
        *failed = 1;
    return d;
}

int pb_bundle_verified_make(pb_bundle_verified *out, const char *path, const char *plex_dir,
                            const char *cs_main, const char *cs_blobs,
                            const pb_bundle_verify_options *opts, pb_error *err)
{
    pb_bundle_verify_options vo;
    char *root = NULL;
    int error, failed = 0;
    memset(out, 0, sizeof(*out));
    pb_bundle_verify_options_init(&vo);
    if (opts)
        vo.limits = opts->limits;
    if (!path || !plex_dir || !cs_main || !cs_blobs)
        return pb_error_set(err, PB_EINVALID,
                            "bundle: verify: bundle, data dir and changeset "
                            "paths are required");
    if (!(root = realpath(plex_dir, NULL)))
        return pb_error_errno(err, "cannot resolve %s", plex_dir);
    vo.extract_main = cs_main;
    vo.extract_blobs = cs_blobs;
    vo.plex_dir = root;
    if ((error = pb_bundle_verify(&out->info, path, &vo, err)) < 0) {
        free(root);
        return error;
    }
    out->size = out->info.bytes;
    memcpy(out->checksum, out->info.checksum, 16);
    out->plex_dir = root;
    out->path = dup_or_null(path, 1, &failed);
    out->cs_main = dup_or_null(cs_main, out->info.has_cs_main, &failed);
    out->cs_blobs = dup_or_null(cs_blobs, out->info.has_cs_blobs, &failed);
    if (failed) {
        pb_bundle_verified_dispose(out);
        return pb_error_set(err, PB_ENOMEM, "bundle: out of memory");
    }
    return 0;
}

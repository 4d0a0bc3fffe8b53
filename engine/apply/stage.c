/*
 * stage.c: phase 4 of pb_apply, staging (engine/apply/apply_int.h). One pass over the verified
 * bundle: each file record's content is written (or patched, or hard-linked) to a stage file
 * .pb-stage-<run>-<n> beside its target, after checking that the home still holds the version
 * the answer described; every directory made and every stage file is journaled first, and all
 * of it is durable (syncfs) before the state becomes staged. Nothing visible to Plex changes.
 * Memory: a 256 KiB buffer; a delta is applied by a librsync job reading its basis with pread;
 * hard-link leaders are looked up in the journal DB, never kept in memory.
 * Prerequisites: the bundle reader, librsync (rsync.h), Linux syncfs().
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apply_int.h"
#include "fs.h"
#include "hex.h"
#include "rsync.h"

/* The directories of `path` that do not exist yet: journaled (not yet durable) before any is
 * created; returns how many. Errors other than a missing component are left to the real walk. */
static int journal_missing_dirs(apply_run *x, const char *path, pb_error *err)
{
    char rel[PB_BUNDLE_PATH_MAX + 1];
    const char *p = path, *slash;
    int fd = dup(x->root_fd), n = 0, error = 0, missing = 0;
    if (fd < 0)
        return pb_error_errno(err, "cannot duplicate the data dir fd");
    while ((slash = strchr(p, '/')) != NULL) {
        size_t len = (size_t)(slash - p), rl = (size_t)(slash - path);
        memcpy(rel, path, rl);
        rel[rl] = '\0';
        if (!missing) {
            char comp[PB_BUNDLE_NAME_MAX + 1];
            if (len > PB_BUNDLE_NAME_MAX)
                break;
            memcpy(comp, p, len);
            comp[len] = '\0';
            int nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (nfd < 0 && errno != ENOENT)
                break;
            if (nfd >= 0) {
                close(fd);
                fd = nfd;
            } else {
                missing = 1;
            }
        }
        if (missing) {
            if ((error = pb_journal__add_dir(x->j, rel, err)) < 0)
                break;
            n++;
        }
        p = slash + 1;
    }
    close(fd);
    return error < 0 ? error : n;
}

static int mkdir_count(void *payload, const char *dir, pb_error *err)
{
    apply_run *x = payload;
    (void)dir;
    (void)err;
    x->out->dirs_created++;
    return 0;
}

typedef struct delta_in {
    pb_bundle_reader *r;
} delta_in;

static int reader_in(void *payload, void *buf, size_t cap, size_t *got, pb_error *err)
{
    return pb_bundle__reader_read(((delta_in *)payload)->r, buf, cap, got, err);
}

/* Hash of an open regular file at dfd/name; *present = 0 when absent. */
static int current_file(int dfd, const char *name, const char *path, int *present, int *fd_out,
                        struct stat *sb, uint8_t hash[16], pb_error *err)
{
    int fd;
    *present = 0;
    *fd_out = -1;
    if (fstatat(dfd, name, sb, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT)
            return 0;
        return pb_error_errno(err, "cannot stat %s", path);
    }
    if (S_ISLNK(sb->st_mode))
        return pb_error_set(err, PB_EUNSAFE, "%s is a symlink in the data dir", path);
    if (!S_ISREG(sb->st_mode))
        return pb_error_set(err, PB_ECONFLICT, "%s is not a regular file in the data dir", path);
    if ((fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)) < 0)
        return pb_error_errno(err, "cannot open %s", path);
    int error = pb_bundle__hash_fd(hash, NULL, fd, err);
    if (error < 0) {
        close(fd);
        return error;
    }
    *present = 1;
    *fd_out = fd;
    return 0;
}

/* One record being staged: its target's directory, the home's current version, the stage file. */
typedef struct staging {
    const pb_bundle_rec *rec;
    int dfd;          /* the target's directory */
    const char *name; /* the target's name in it */
    int present;      /* the home holds a file at the path */
    int cur_fd;       /* that file, open */
    struct stat sb;   /* its stat */
    uint8_t cur[16];  /* its hash */
    int zero_basis;   /* the record names no home version */
    char stage[80];   /* the stage file's name */
    int made;         /* the stage file exists and is not journaled yet */
} staging;

static int conflict(apply_run *x, const pb_bundle_rec *rec, const char *what)
{
    return pb_error_set(x->err, PB_ECONFLICT, "bundle: record %llu at offset %llu: %s",
                        (unsigned long long)rec->index, (unsigned long long)rec->offset, what);
}

/* Journals the directories about to be made and the stage file's directory (durably), opens
 * the target's directory and reads the home's current version of the path. */
static int stage_open(apply_run *x, staging *s)
{
    const pb_bundle_rec *rec = s->rec;
    char dir[PB_BUNDLE_PATH_MAX + 1];
    int error;
    snprintf(s->stage, sizeof(s->stage), "%s%s-%llu", PB_STAGE_PREFIX, x->run_id,
             (unsigned long long)rec->index);
    const char *slash = strrchr(rec->path, '/');
    snprintf(dir, sizeof(dir), "%.*s", (int)(slash - rec->path), rec->path);
    int ndirs = journal_missing_dirs(x, rec->path, x->err), newdir = 0;
    if (ndirs < 0 || (newdir = pb_journal__add_stagedir(x->j, dir, x->err)) < 0)
        return ndirs < 0 ? ndirs : newdir;
    if (ndirs || newdir) {
        if ((error = pb_journal__flush(x->j, x->err)) < 0)
            return error;
        pb_journal__crash_point(ndirs ? "dir" : "stagedir");
    }
    if ((error = pb_fs_open_parent(&s->dfd, &s->name, x->root_fd, rec->path, mkdir_count, x,
                                   x->err)) < 0)
        return error;
    if ((error = current_file(s->dfd, s->name, rec->path, &s->present, &s->cur_fd, &s->sb, s->cur,
                              x->err)) < 0)
        return error;
    s->zero_basis = pb_bundle__is_zero(rec->basis, 16);
    return 0;
}

/* Checks the home's version against what the record expects: 1 when it already holds the
 * content (nothing to stage), 0 to stage, PB_ECONFLICT when it changed since the answer. */
static int stage_check(apply_run *x, staging *s)
{
    const pb_bundle_rec *rec = s->rec;
    char hexb[33], hexc[33], what[PB_BUNDLE_PATH_MAX + 200];
    if (rec->type != PB_REC_LINK && s->present && memcmp(s->cur, rec->hash, 16) == 0)
        return 1; /* an earlier apply, or the same change at home */
    pb_hex_encode(hexc, s->cur, 16);
    if (rec->type == PB_REC_DELTA && (!s->present || memcmp(s->cur, rec->basis, 16) != 0)) {
        pb_hex_encode(hexb, rec->basis, 16);
        snprintf(what, sizeof(what),
                 "the home file %s changed since the answer (delta basis %s, home has %s)",
                 rec->path, hexb, s->present ? hexc : "nothing");
        return conflict(x, rec, what);
    }
    if (rec->type != PB_REC_DELTA && s->present &&
        (s->zero_basis || memcmp(s->cur, rec->basis, 16) != 0)) {
        snprintf(what, sizeof(what), "the home file %s changed since the answer (home has %s)",
                 rec->path, hexc);
        return conflict(x, rec, what);
    }
    return 0;
}

/* A hard link: the stage file becomes a link to the leader (its staged inode, or the home file
 * holding the expected content). 1 when the path already is that link. */
static int stage_link(apply_run *x, staging *s)
{
    const pb_bundle_rec *rec = s->rec;
    int kind = 0, lpresent = 0, lfd = -1, src_dfd = -1, error = 0;
    char lstage[80], what[PB_BUNDLE_PATH_MAX + 100];
    const char *lname;
    uint8_t lhash[16];
    struct stat lsb;
    int found = pb_journal__lookup(x->j, rec->link, &kind, lstage, sizeof(lstage), x->err);
    if (found < 0)
        return found;
    if ((error = pb_fs_open_parent(&src_dfd, &lname, x->root_fd, rec->link, NULL, NULL, x->err)) <
        0)
        return error;
    const char *src = lname;
    if (found && kind == PB_JF_STAGED) {
        src = lstage; /* the leader's staged inode; its content was verified when staged */
    } else {
        if ((error =
                 current_file(src_dfd, lname, rec->link, &lpresent, &lfd, &lsb, lhash, x->err)) < 0)
            goto done;
        if (lfd >= 0)
            close(lfd);
        if (!lpresent || memcmp(lhash, rec->hash, 16) != 0) {
            snprintf(what, sizeof(what), "hard-link leader %s does not hold the expected content",
                     rec->link);
            error = conflict(x, rec, what);
            goto done;
        }
        if (s->present && lsb.st_dev == s->sb.st_dev && lsb.st_ino == s->sb.st_ino) {
            error = 1;
            goto done;
        }
    }
    if (s->present && !s->zero_basis && memcmp(s->cur, rec->basis, 16) != 0 &&
        memcmp(s->cur, rec->hash, 16) != 0) {
        snprintf(what, sizeof(what), "the home file %s changed since the answer", rec->path);
        error = conflict(x, rec, what);
        goto done;
    }
    if (linkat(src_dfd, src, s->dfd, s->stage, 0) != 0) {
        error = pb_error_errno(x->err, "cannot link %s to %s", rec->path, rec->link);
        goto done;
    }
    s->made = 1;
    x->out->files_linked++;
done:
    if (src_dfd >= 0)
        close(src_dfd);
    return error;
}

/* Writes the payload (a whole file, or a delta patched against the home file) to `fd`. */
static int stage_payload(apply_run *x, staging *s, pb_bundle_reader *r, int fd)
{
    const pb_bundle_rec *rec = s->rec;
    size_t got;
    int error;
    if (rec->type == PB_REC_DELTA) {
        pb_rsync_options ro = PB_RSYNC_OPTIONS_INIT;
        delta_in di = {r};
        char one[1];
        ro.check = rec->hash;
        if ((error = pb_rsync_patch(s->cur_fd, reader_in, &di, fd, &ro, NULL, x->err)) < 0)
            return error;
        /* the reader verifies the record checksum at the payload's end */
        if ((error = pb_bundle__reader_read(r, one, 1, &got, x->err)) < 0)
            return error;
        if (got)
            return pb_error_set(x->err, PB_ECORRUPT,
                                "bundle: record %llu at offset %llu: data after the delta",
                                (unsigned long long)rec->index, (unsigned long long)rec->offset);
        x->out->files_patched++;
        return 0;
    }
    for (;;) {
        if ((error = pb_bundle__reader_read(r, x->buf, 256 * 1024, &got, x->err)) < 0)
            return error;
        if (!got)
            break;
        if ((error = pb_fs_write_all(fd, x->buf, got, "the stage file", x->err)) < 0)
            return error;
    }
    x->out->files_new++;
    return 0;
}

/* A whole file or a delta: the stage file gets the content, the owner and mode of what it
 * replaces (pb_fs_inherit_fd) and the mtime. */
static int stage_content(apply_run *x, staging *s, pb_bundle_reader *r)
{
    const pb_bundle_rec *rec = s->rec;
    int error = 0;
    int fd = openat(s->dfd, s->stage, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return pb_error_errno(x->err, "cannot create the stage file for %s", rec->path);
    s->made = 1;
    if ((error = stage_payload(x, s, r, fd)) < 0)
        goto done;
    struct timespec ts[2] = {
        {0, UTIME_OMIT},
        {(time_t)(rec->mtime_ns / 1000000000), (long)(rec->mtime_ns % 1000000000)}};
    /* owner, group and mode: those of the file it replaces, else of its directory (the data
     * dir's, inherited by every directory the apply creates) */
    struct stat dsb;
    if (!s->present && fstat(s->dfd, &dsb) != 0) {
        error = pb_error_errno(x->err, "cannot stat the directory of %s", rec->path);
        goto done;
    }
    if ((error = pb_fs_inherit_fd(fd, s->present ? &s->sb : &dsb, !s->present, rec->path, x->err)) <
        0)
        goto done;
    if (futimens(fd, ts) != 0) {
        error = pb_error_errno(x->err, "cannot set the mtime of the staged %s", rec->path);
        goto done;
    }
    int rc = close(fd);
    fd = -1;
    if (rc != 0) {
        error = pb_error_errno(x->err, "cannot write the staged %s", rec->path);
        goto done;
    }
    x->out->bytes_written += rec->size;
done:
    if (fd >= 0)
        close(fd);
    return error;
}

static int stage_record(apply_run *x, pb_bundle_reader *r, const pb_bundle_rec *rec)
{
    staging s;
    int error;
    memset(&s, 0, sizeof(s));
    s.rec = rec;
    s.dfd = s.cur_fd = -1;
    if ((error = stage_open(x, &s)) < 0 || (error = stage_check(x, &s)) < 0)
        goto done;
    if (error == 0) {
        unlinkat(s.dfd, s.stage, 0); /* a leftover of this very run id cannot exist: be exact */
        error = rec->type == PB_REC_LINK ? stage_link(x, &s) : stage_content(x, &s, r);
        if (error < 0)
            goto done;
    }
    if (error == 1) { /* the home already holds it */
        error = pb_journal__add_file(x->j, rec->index, rec->path, NULL, PB_JF_UNCHANGED, rec->hash,
                                     x->err);
        x->out->files_unchanged++;
        goto done;
    }
    pb_journal__crash_point("stage");
    error =
        pb_journal__add_file(x->j, rec->index, rec->path, s.stage, PB_JF_STAGED, rec->hash, x->err);
    if (!error)
        s.made = 0; /* recorded: the journal owns it now */
done:
    if (s.made && s.dfd >= 0)
        unlinkat(s.dfd, s.stage, 0);
    if (s.cur_fd >= 0)
        close(s.cur_fd);
    if (s.dfd >= 0)
        close(s.dfd);
    return error;
}

int pb_apply__stage(apply_run *x)
{
    int error = 0, fd = -1, rc;
    pb_bundle_reader *r = NULL;
    const pb_bundle_rec *rec;

    if ((fd = open(x->bundle, O_RDONLY | O_CLOEXEC)) < 0)
        return pb_error_errno(x->err, "cannot open bundle %s", x->bundle);
    if ((error = pb_bundle__reader_new(&r, pb_bundle__fd_in, &fd, &x->o->limits, x->err)) < 0)
        goto done;
    while ((rc = pb_bundle__reader_next(r, &rec, x->err)) == 1) {
        if (rec->type == PB_REC_MAIN_CS || rec->type == PB_REC_BLOBS_CS)
            continue; /* extracted when the bundle was verified */
        if ((error = pb_apply__cancelled(x)) < 0 || (error = stage_record(x, r, rec)) < 0)
            goto done;
    }
    if (rc < 0) {
        error = rc;
        goto done;
    }
    if (memcmp(pb_bundle__reader_checksum(r), x->out->bundle.checksum, 16) != 0) {
        error =
            pb_error_set(x->err, PB_ECORRUPT, "bundle %s changed since it was verified", x->bundle);
        goto done;
    }
    if ((error = pb_journal__flush(x->j, x->err)) < 0)
        goto done;
    if (syncfs(x->root_fd) != 0) {
        error = pb_error_errno(x->err, "syncfs on %s failed", x->plex);
        goto done;
    }
    error = pb_journal__set_state(x->j, PB_JST_STAGED, x->err);
done:
    pb_bundle__reader_free(r);
    close(fd);
    return error;
}

/* ---- phase 6: merge ---- */

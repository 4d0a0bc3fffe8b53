/*
 * apply.c: pb_apply(), the crash-safe, all-or-nothing apply of a bundle to a home Plex data dir,
 * and pb_apply_recover() (include/plexburst/bundle.h).
 * Role: step 5 of a nightly sync (DESIGN.md §3): recover, verify, guards, stage, stop Plex,
 * merge rows, install files, start Plex; engine/journal.c records every step and explains why a
 * crash at any instant ends in all of the bundle or none of it.
 * Prerequisites: the bundle reader (bundle.c), H5's Plex report/guards (pb_plex_diff) and policy,
 * H4's merge (pb_merge_apply, in-process through the compatibility layer), librsync patch jobs.
 *
 * Memory: the bundle is streamed twice (verify, stage); a delta is applied by a librsync job
 * reading its basis with pread; hard-link leaders are looked up in the journal DB, never kept in
 * memory; the merge streams its changesets. Nothing grows with the bundle or the tree.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <sqlite3.h>

#include "bundle.h"
#include "journal.h"
#include "plexburst/compat.h"
#include "plexburst/fingerprint.h"
#include "plexburst/plex.h"
#include "plexburst/sqldiff.h"
#include "plexpolicy.h"
#include "rsync.h"
#include "statedir.h"

extern char **environ;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

const char *pb_apply_phase_name(int phase)
{
    static const char *const names[] = {
        "",          "RECOVER",    "VERIFY BUNDLE", "GUARDS",     "STAGE FILES",
        "STOP PLEX", "MERGE ROWS", "INSTALL FILES", "START PLEX", "DONE"};
    return phase >= 0 && phase <= PB_APPLY_DONE ? names[phase] : "";
}

void pb_apply_options_init(pb_apply_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->version = PB_APPLY_OPTIONS_VERSION;
    opts->max_delete_pct = 5;
}

void pb_apply_result_dispose(pb_apply_result *r)
{
    if (!r)
        return;
    pb_plex_report_dispose(&r->report);
    memset(r, 0, sizeof(*r));
}

int pb_baseline_compute(pb_baseline *out, const char *db, const char *blobs, pb_error *err)
{
    pb_checksum c;
    int error;
    memset(out, 0, sizeof(*out));
    if ((error = pb_sqldiff_checksum(&c, db, NULL, err)) < 0)
        return error;
    memcpy(out->main, c.digest, 16);
    if (blobs) {
        if ((error = pb_sqldiff_checksum(&c, blobs, NULL, err)) < 0)
            return error;
        memcpy(out->blobs, c.digest, 16);
        out->has_blobs = 1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Plex: detection, stop and start                                                           */

static int pid_alive(pid_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* 1 when Plex appears to be running for this data dir: a live plexmediaserver.pid in it, or a
 * process named "Plex Media Server". `why` says which. */
static int plex_running(const char *plex_dir, char *why, size_t cap)
{
    char path[PATH_MAX + 64], buf[4096];
    FILE *f;
    DIR *d;
    struct dirent *e;

    snprintf(path, sizeof(path), "%s/plexmediaserver.pid", plex_dir);
    if ((f = fopen(path, "r"))) {
        long pid = 0;
        int ok = fscanf(f, "%ld", &pid) == 1;
        fclose(f);
        if (ok && pid_alive((pid_t)pid)) {
            snprintf(why, cap, "%.200s names the live process %ld", path, pid);
            return 1;
        }
    }
    if (!(d = opendir("/proc")))
        return 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        const char *base = strrchr(buf, '/');
        base = base ? base + 1 : buf;
        if (strcmp(base, "Plex Media Server") == 0) {
            snprintf(why, cap, "process %s is \"Plex Media Server\"", e->d_name);
            closedir(d);
            return 1;
        }
    }
    closedir(d);
    return 0;
}

static int run_shell(const char *what, const char *cmd, pb_error *err)
{
    pid_t pid;
    int status = 0;
    char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
    int rc = posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ);
    if (rc != 0) {
        errno = rc;
        return pb_error_errno(err, "cannot run the %s command", what);
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return pb_error_errno(err, "waiting for the %s command failed", what);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return pb_error_set(err, PB_ERROR, "the %s command failed (%s %d)", what,
                            WIFEXITED(status) ? "exit status" : "signal",
                            WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* the run                                                                                   */

typedef struct apply_run {
    const pb_apply_options *o;
    pb_apply_result *out;
    pb_error *err;
    char plex[PATH_MAX];
    char state[PATH_MAX];
    char main_db[PATH_MAX + 80], blobs_db[PATH_MAX + 80];
    char work[PATH_MAX + 32]; /* <state>/apply-work: temporary files, wiped at each start */
    char cs_main[PATH_MAX + 128], cs_blobs[PATH_MAX + 128], cs_empty[PATH_MAX + 128];
    int has_live_blobs;
    pb_journal *j;
    int begun;     /* a run is recorded in the journal */
    int committed; /* the merge committed */
    int stopped;   /* we stopped Plex */
    double t_stop;
    int root_fd;
    char stage_dir_last[PB_BUNDLE_PATH_MAX + 1];
    uint8_t *buf;
} apply_run;

static void phase(apply_run *x, int p)
{
    x->out->phase = p;
    if (x->o->on_phase)
        x->o->on_phase(p, x->o->phase_payload);
}

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static void make_run_id(char *out, size_t cap)
{
    uint8_t r[8];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        uint64_t v = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)now_ms();
        memcpy(r, &v, 8);
    }
    snprintf(out, cap, "%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5], r[6],
             r[7]);
}

/* ---- phase 2: verify and baseline ---- */

static int phase_verify(apply_run *x)
{
    pb_bundle_verify_options vo;
    pb_baseline rec, given;
    int error, have_rec;
    char h1[33], h2[33];
    pb_bundle_info *b = &x->out->bundle;

    memset(&vo, 0, sizeof(vo));
    vo.version = PB_BUNDLE_VERIFY_OPTIONS_VERSION;
    vo.limits = x->o->limits;
    vo.extract_main = x->cs_main;
    vo.extract_blobs = x->cs_blobs;
    vo.plex_dir = x->plex;
    if ((error = pb_bundle_verify(b, x->o->bundle, &vo, x->err)) < 0)
        return error;
    x->out->bytes_bundle = b->bytes;
    if (b->has_blobs && !x->has_live_blobs)
        return pb_error_set(x->err, PB_EREFUSED, "the bundle carries the blobs DB but %s has none",
                            x->blobs_db);
    /* the baseline: recorded by the last apply or bootstrap, or given as a DB copy */
    pb_error e = PB_ERROR_INIT;
    error = pb_baseline_read(&rec, x->state, &e);
    if (error < 0 && error != PB_ENOTFOUND)
        return pb_error_set(x->err, error, "%s", e.msg);
    have_rec = error == 0;
    pb_bundle__hex(h1, b->base_main);
    if (x->o->base_db) {
        if ((error = pb_baseline_compute(&given, x->o->base_db,
                                         b->has_blobs ? x->o->base_blobs : NULL, x->err)) < 0)
            return error;
        if (b->has_blobs && !x->o->base_blobs)
            return pb_error_set(x->err, PB_EINVALID,
                                "the bundle includes the blobs DB: give "
                                "--base-blobs with --base-db");
        if (memcmp(given.main, b->base_main, 16) != 0 ||
            (b->has_blobs && memcmp(given.blobs, b->base_blobs, 16) != 0)) {
            pb_bundle__hex(h2, given.main);
            return pb_error_set(x->err, PB_EREFUSED,
                                "wrong baseline: the bundle was computed against %s, --base-db "
                                "is %s",
                                h1, h2);
        }
    }
    if (have_rec) {
        if (memcmp(rec.main, b->base_main, 16) != 0 ||
            (b->has_blobs && rec.has_blobs && memcmp(rec.blobs, b->base_blobs, 16) != 0)) {
            pb_bundle__hex(h2, rec.main);
            return pb_error_set(x->err, PB_EREFUSED,
                                "wrong baseline: the bundle was computed against %s, this home "
                                "is at %s (already applied, or from another sync?)",
                                h1, h2);
        }
    } else if (!x->o->base_db) {
        return pb_error_set(x->err, PB_EREFUSED,
                            "no baseline recorded in %s: give --base-db (the baseline DB the "
                            "bundle was computed against)",
                            x->state);
    }
    return 0;
}

/* ---- phase 3: guards and the report ---- */

static int phase_guards(apply_run *x)
{
    pb_plex_merge_options mo;
    int error, fd;
    char base_db[PATH_MAX + 80], base_blobs[PATH_MAX + 80];
    pb_bundle_info *b = &x->out->bundle;

    snprintf(x->cs_empty, sizeof(x->cs_empty), "%s/empty.changeset", x->work);
    if ((fd = open(x->cs_empty, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
        return pb_error_errno(x->err, "cannot create %s", x->cs_empty);
    close(fd);
    pb_plex_merge_options_init(&mo);
    /* the base of the report: the given baseline copy, else the state dir's, else the live DB */
    snprintf(base_db, sizeof(base_db), "%s/baseline.db", x->state);
    snprintf(base_blobs, sizeof(base_blobs), "%s/baseline.blobs.db", x->state);
    if (x->o->base_db) {
        mo.base = x->o->base_db;
        mo.blobs_base = x->o->base_blobs;
    } else if (exists(base_db)) {
        mo.base = base_db;
        mo.blobs_base = exists(base_blobs) ? base_blobs : NULL;
    } else {
        mo.base = x->main_db;
        mo.blobs_base = x->has_live_blobs ? x->blobs_db : NULL;
    }
    mo.live = x->main_db;
    mo.changeset = b->has_cs_main ? x->cs_main : x->cs_empty;
    if (b->has_blobs && x->has_live_blobs && mo.blobs_base) {
        mo.blobs_live = x->blobs_db;
        mo.blobs_changeset = b->has_cs_blobs ? x->cs_blobs : x->cs_empty;
    } else {
        mo.blobs_base = NULL;
    }
    mo.path_map = x->o->path_map;
    mo.max_delete_pct = x->o->max_delete_pct;
    mo.dry_run = 1;
    mo.engine = PB_PLEX_ENGINE_IN_PROCESS;
    mo.keep_backups = 0;
    mo.zstd_level = 1; /* only a report figure here; level 19 would cost ~90 MB of RSS */
    mo.work_dir = x->work;
    error = pb_plex_diff(&mo, &x->out->report, x->err);
    x->out->have_report = 1;
    if (error < 0)
        return error;
    if (x->out->report.schema.checked && !x->out->report.schema.ok)
        return pb_error_set(x->err, PB_ESCHEMA, "%s", x->out->report.schema.message);
    if (x->out->report.deletion.checked && !x->out->report.deletion.ok)
        return pb_error_set(x->err, PB_EREFUSED, "%s", x->out->report.deletion.message);
    return 0;
}

/* ---- phase 4: staging ---- */

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

static int stage_record(apply_run *x, pb_bundle_reader *r, const pb_bundle_rec *rec,
                        const char *run_id)
{
    pb_error *err = x->err;
    int error = 0, dfd = -1, cur_fd = -1, out_fd = -1, present = 0, src_dfd = -1;
    const char *name;
    char stage[80], hexb[33], hexc[33], dir[PB_BUNDLE_PATH_MAX + 1];
    uint8_t cur[16];
    struct stat sb;
    int made_stage = 0;

    snprintf(stage, sizeof(stage), "%s%s-%llu", PB_STAGE_PREFIX, run_id,
             (unsigned long long)rec->index);
    /* journal first, durably: the directories about to be made and the stage file's directory */
    const char *slash = strrchr(rec->path, '/');
    snprintf(dir, sizeof(dir), "%.*s", (int)(slash - rec->path), rec->path);
    int ndirs = journal_missing_dirs(x, rec->path, err), newdir = 0;
    if (ndirs < 0 || (newdir = pb_journal__add_stagedir(x->j, dir, err)) < 0) {
        error = ndirs < 0 ? ndirs : newdir;
        goto done;
    }
    if (ndirs || newdir) {
        if ((error = pb_journal__flush(x->j, err)) < 0)
            goto done;
        pb_journal__crash_point(ndirs ? "dir" : "stagedir");
    }
    if ((error = pb_bundle__open_parent(&dfd, &name, x->root_fd, rec->path, mkdir_count, x, err)) <
        0)
        goto done;
    if ((error = current_file(dfd, name, rec->path, &present, &cur_fd, &sb, cur, err)) < 0)
        goto done;
    int zero_basis = 1;
    for (int i = 0; i < 16; i++)
        zero_basis &= rec->basis[i] == 0;

    if (rec->type != PB_REC_LINK && present && memcmp(cur, rec->hash, 16) == 0) {
        /* the home already holds this content (an earlier apply, or the same change at home) */
        error = pb_journal__add_file(x->j, rec->index, rec->path, NULL, PB_JF_UNCHANGED, rec->hash,
                                     err);
        x->out->files_unchanged++;
        goto done;
    }
    if (rec->type == PB_REC_DELTA) {
        if (!present || memcmp(cur, rec->basis, 16) != 0) {
            pb_bundle__hex(hexb, rec->basis);
            pb_bundle__hex(hexc, cur);
            error = pb_error_set(err, PB_ECONFLICT,
                                 "bundle: record %llu at offset %llu: the home file %s changed "
                                 "since the answer (delta basis %s, home has %s)",
                                 (unsigned long long)rec->index, (unsigned long long)rec->offset,
                                 rec->path, hexb, present ? hexc : "nothing");
            goto done;
        }
    } else if (present && (zero_basis || memcmp(cur, rec->basis, 16) != 0)) {
        pb_bundle__hex(hexc, cur);
        error = pb_error_set(err, PB_ECONFLICT,
                             "bundle: record %llu at offset %llu: the home file %s changed since "
                             "the answer (home has %s)",
                             (unsigned long long)rec->index, (unsigned long long)rec->offset,
                             rec->path, hexc);
        goto done;
    }
    unlinkat(dfd, stage, 0); /* a leftover of this very run id cannot exist, but be exact */

    if (rec->type == PB_REC_LINK) {
        int kind = 0, lpresent = 0, lfd = -1;
        char lstage[80];
        const char *lname;
        uint8_t lhash[16];
        struct stat lsb;
        int found = pb_journal__lookup(x->j, rec->link, &kind, lstage, sizeof(lstage), err);
        if (found < 0) {
            error = found;
            goto done;
        }
        if ((error = pb_bundle__open_parent(&src_dfd, &lname, x->root_fd, rec->link, NULL, NULL,
                                            err)) < 0)
            goto done;
        const char *src = lname;
        if (found && kind == PB_JF_STAGED) {
            src = lstage; /* the leader's staged inode; its content was verified when staged */
        } else {
            if ((error = current_file(src_dfd, lname, rec->link, &lpresent, &lfd, &lsb, lhash,
                                      err)) < 0)
                goto done;
            if (lfd >= 0)
                close(lfd);
            if (!lpresent || memcmp(lhash, rec->hash, 16) != 0) {
                error = pb_error_set(err, PB_ECONFLICT,
                                     "bundle: record %llu at offset %llu: hard-link leader %s "
                                     "does not hold the expected content",
                                     (unsigned long long)rec->index,
                                     (unsigned long long)rec->offset, rec->link);
                goto done;
            }
            if (present && lsb.st_dev == sb.st_dev && lsb.st_ino == sb.st_ino) {
                error = pb_journal__add_file(x->j, rec->index, rec->path, NULL, PB_JF_UNCHANGED,
                                             rec->hash, err);
                x->out->files_unchanged++;
                goto done;
            }
        }
        if (present && !zero_basis && memcmp(cur, rec->basis, 16) != 0 &&
            memcmp(cur, rec->hash, 16) != 0) {
            error = pb_error_set(err, PB_ECONFLICT,
                                 "bundle: record %llu at offset %llu: the home file %s changed "
                                 "since the answer",
                                 (unsigned long long)rec->index, (unsigned long long)rec->offset,
                                 rec->path);
            goto done;
        }
        if (linkat(src_dfd, src, dfd, stage, 0) != 0) {
            error = pb_error_errno(err, "cannot link %s to %s", rec->path, rec->link);
            goto done;
        }
        made_stage = 1;
        x->out->files_linked++;
    } else {
        out_fd = openat(dfd, stage, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (out_fd < 0) {
            error = pb_error_errno(err, "cannot create the stage file for %s", rec->path);
            goto done;
        }
        made_stage = 1;
        if (rec->type == PB_REC_DELTA) {
            pb_rsync_options ro = PB_RSYNC_OPTIONS_INIT;
            delta_in di = {r};
            ro.check = rec->hash;
            if ((error = pb_rsync_patch(cur_fd, reader_in, &di, out_fd, &ro, NULL, err)) < 0)
                goto done;
            /* the reader verifies the record checksum at the payload's end */
            size_t got;
            char one[1];
            if ((error = pb_bundle__reader_read(r, one, 1, &got, err)) < 0)
                goto done;
            if (got) {
                error = pb_error_set(
                    err, PB_ECORRUPT, "bundle: record %llu at offset %llu: data after the delta",
                    (unsigned long long)rec->index, (unsigned long long)rec->offset);
                goto done;
            }
            x->out->files_patched++;
        } else {
            size_t got;
            for (;;) {
                if ((error = pb_bundle__reader_read(r, x->buf, 256 * 1024, &got, err)) < 0)
                    goto done;
                if (!got)
                    break;
                if ((error = pb_bundle__fd_out(&out_fd, x->buf, got, err)) < 0)
                    goto done;
            }
            x->out->files_new++;
        }
        struct timespec ts[2] = {
            {0, UTIME_OMIT},
            {(time_t)(rec->mtime_ns / 1000000000), (long)(rec->mtime_ns % 1000000000)}};
        if (fchmod(out_fd, (mode_t)rec->mode) != 0 || futimens(out_fd, ts) != 0) {
            error = pb_error_errno(err, "cannot set mode/mtime of the staged %s", rec->path);
            goto done;
        }
        if (close(out_fd) != 0) {
            out_fd = -1;
            error = pb_error_errno(err, "cannot write the staged %s", rec->path);
            goto done;
        }
        out_fd = -1;
        x->out->bytes_written += rec->size;
    }
    pb_journal__crash_point("stage");
    error = pb_journal__add_file(x->j, rec->index, rec->path, stage, PB_JF_STAGED, rec->hash, err);
    if (!error)
        made_stage = 0; /* recorded: the journal owns it now */
done:
    if (out_fd >= 0)
        close(out_fd);
    if (made_stage && dfd >= 0)
        unlinkat(dfd, stage, 0);
    if (cur_fd >= 0)
        close(cur_fd);
    if (src_dfd >= 0)
        close(src_dfd);
    if (dfd >= 0)
        close(dfd);
    return error;
}

static int phase_stage(apply_run *x, const char *run_id)
{
    int error = 0, fd = -1, rc;
    pb_bundle_reader *r = NULL;
    const pb_bundle_rec *rec;

    if ((fd = open(x->o->bundle, O_RDONLY | O_CLOEXEC)) < 0)
        return pb_error_errno(x->err, "cannot open bundle %s", x->o->bundle);
    if ((error = pb_bundle__reader_new(&r, pb_bundle__fd_in, &fd, &x->o->limits, x->err)) < 0)
        goto done;
    while ((rc = pb_bundle__reader_next(r, &rec, x->err)) == 1) {
        if (rec->type == PB_REC_MAIN_CS || rec->type == PB_REC_BLOBS_CS)
            continue; /* extracted by the verify pass */
        if ((error = stage_record(x, r, rec, run_id)) < 0)
            goto done;
    }
    if (rc < 0) {
        error = rc;
        goto done;
    }
    if (memcmp(pb_bundle__reader_checksum(r), x->out->bundle.checksum, 16) != 0) {
        error = pb_error_set(x->err, PB_ECORRUPT, "bundle %s changed between the two passes",
                             x->o->bundle);
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

static int exec_sql(sqlite3 *db, const char *sql, const char *what, pb_error *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        int code = rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? PB_EBUSY : PB_ESQLITE;
        pb_error_setd(err, code, rc, "merge: %s: %s", what, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return code;
    }
    return 0;
}

static int pragma_text(sqlite3 *db, const char *sql, char *out, size_t cap, pb_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    out[0] = '\0';
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(out, cap, "%s", t ? (const char *)t : "");
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        return pb_error_setd(err, rc == SQLITE_BUSY ? PB_EBUSY : PB_ESQLITE, rc, "merge: %s: %s",
                             sql, sqlite3_errmsg(db));
    return 0;
}

/* TEMP triggers writing the commit marker from the merge's own transaction (journal.c). */
static int marker_triggers(sqlite3 *db, const char *schema, const char *run_id, pb_error *err)
{
    sqlite3_stmt *st = NULL;
    char *q = sqlite3_mprintf("SELECT name FROM \"%w\".sqlite_master WHERE type = 'table' AND "
                              "name NOT LIKE 'sqlite\\_%%' ESCAPE '\\' AND "
                              "sql NOT LIKE 'CREATE VIRTUAL%%'",
                              schema);
    int rc = q ? sqlite3_prepare_v2(db, q, -1, &st, NULL) : SQLITE_NOMEM, n = 0;
    sqlite3_free(q);
    if (rc != SQLITE_OK)
        return pb_error_setd(err, PB_ESQLITE, rc, "merge: listing tables: %s", sqlite3_errmsg(db));
    /* names first (creating triggers while the SELECT runs would change sqlite_master) */
    char **names = NULL;
    size_t cnt = 0, cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof(*names));
            if (!nn) {
                rc = SQLITE_NOMEM;
                break;
            }
            names = nn;
        }
        names[cnt] = strdup((const char *)sqlite3_column_text(st, 0));
        if (!names[cnt]) {
            rc = SQLITE_NOMEM;
            break;
        }
        cnt++;
    }
    sqlite3_finalize(st);
    int error = rc == SQLITE_DONE ? 0 : pb_error_set(err, PB_ENOMEM, "merge: out of memory");
    static const char *const ops[3] = {"INSERT", "UPDATE", "DELETE"};
    for (size_t i = 0; !error && i < cnt; i++)
        for (int k = 0; k < 3 && !error; k++) {
            char *sql = sqlite3_mprintf(
                "CREATE TEMP TRIGGER \"pb_mark_%w_%d_%d\" AFTER %s ON \"%w\".\"%w\" BEGIN "
                "INSERT OR IGNORE INTO " PB_MARKER_TABLE "(run_id) VALUES(%Q); END",
                schema, (int)i, k, ops[k], schema, names[i], run_id);
            if (!sql) {
                error = pb_error_set(err, PB_ENOMEM, "merge: out of memory");
                break;
            }
            /* a table that refuses triggers cannot be written by the merge either */
            if (sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK)
                n++;
            sqlite3_free(sql);
        }
    for (size_t i = 0; i < cnt; i++)
        free(names[i]);
    free(names);
    return error;
}

static int crash_hook(void *payload)
{
    (void)payload;
    pb_journal__crash_point("commit");
    return 0;
}

static int phase_merge(apply_run *x, const char *run_id)
{
    pb_error *err = x->err;
    int error = 0, with_blobs = x->out->bundle.has_blobs && x->has_live_blobs;
    sqlite3 *db = NULL;
    pb_plex_policy *pol = NULL;
    pb_pathmap *pm = NULL;
    pb_probes *probes = NULL;
    pb_merge_stats *stats = NULL;
    char mode_main[16] = "", mode_blobs[16] = "", now[16];

    if (!(stats = calloc(1, sizeof(*stats))))
        return pb_error_set(err, PB_ENOMEM, "merge: out of memory");
    if ((error = pb_compat_open(&db, x->main_db, 0, err)) < 0)
        goto done;
    {
        char *sql = with_blobs ? sqlite3_mprintf("ATTACH %Q AS blobs", x->blobs_db) : NULL;
        if (with_blobs && (error = sql ? exec_sql(db, sql, "attach the blobs DB", err)
                                       : pb_error_set(err, PB_ENOMEM, "out of memory")) < 0) {
            sqlite3_free(sql);
            goto done;
        }
        sqlite3_free(sql);
        sql = sqlite3_mprintf("ATTACH %Q AS " PB_MARKER_SCHEMA, pb_journal__marker_path(x->j));
        error = sql ? exec_sql(db, sql, "attach the journal", err)
                    : pb_error_set(err, PB_ENOMEM, "out of memory");
        sqlite3_free(sql);
        if (error)
            goto done;
    }
    if (!x->o->online) {
        if ((error = pragma_text(db, "PRAGMA main.journal_mode", mode_main, sizeof(mode_main),
                                 err)) < 0 ||
            (with_blobs && (error = pragma_text(db, "PRAGMA blobs.journal_mode", mode_blobs,
                                                sizeof(mode_blobs), err)) < 0))
            goto done;
        if ((error =
                 pb_journal__set_merging(x->j, mode_main, with_blobs ? mode_blobs : NULL, err)) < 0)
            goto done;
        if ((error = pragma_text(db, "PRAGMA main.journal_mode=DELETE", now, sizeof(now), err)) < 0)
            goto done;
        if (strcasecmp(now, "delete") != 0) {
            error = pb_error_set(err, PB_EBUSY,
                                 "cannot switch %s to journal_mode=DELETE (still %s): another "
                                 "process holds it (Plex?)",
                                 x->main_db, now);
            goto done;
        }
        if (with_blobs) {
            if ((error = pragma_text(db, "PRAGMA blobs.journal_mode=DELETE", now, sizeof(now),
                                     err)) < 0)
                goto done;
            if (strcasecmp(now, "delete") != 0) {
                error = pb_error_set(err, PB_EBUSY,
                                     "cannot switch %s to journal_mode=DELETE (still %s)",
                                     x->blobs_db, now);
                goto done;
            }
        }
        if ((error = exec_sql(db,
                              with_blobs ? "PRAGMA main.synchronous=FULL; PRAGMA "
                                           "blobs.synchronous=FULL; PRAGMA pbmark.synchronous=FULL"
                                         : "PRAGMA main.synchronous=FULL; PRAGMA "
                                           "pbmark.synchronous=FULL",
                              "synchronous", err)) < 0)
            goto done;
        pb_journal__crash_point("modes");
        sqlite3_commit_hook(db, crash_hook, NULL);
        x->out->atomic_pair = 1;
    } else {
        if ((error = pb_journal__set_merging(x->j, NULL, NULL, err)) < 0 ||
            (error = pb_probes__install(&probes, db, pb_journal__probes_path(x->j), err)) < 0)
            goto done;
    }
    if ((error = marker_triggers(db, "main", run_id, err)) < 0 ||
        (with_blobs && (error = marker_triggers(db, "blobs", run_id, err)) < 0))
        goto done;
    if (x->o->path_map && (error = pb_pathmap_load(&pm, x->o->path_map, err)) < 0)
        goto done;
    {
        const char *schemas[2] = {"main", "blobs"};
        if ((error = pb_plex_policy_new(&pol, db, schemas, with_blobs ? 2 : 1, pm, err)) < 0)
            goto done;
    }
    pb_merge_input inputs[2];
    size_t n = 0;
    if (x->out->bundle.has_cs_main)
        inputs[n++] = (pb_merge_input){"main", x->cs_main};
    if (with_blobs && x->out->bundle.has_cs_blobs)
        inputs[n++] = (pb_merge_input){"blobs", x->cs_blobs};
    if (n) {
        pb_merge_options mo = PB_MERGE_OPTIONS_INIT;
        error = pb_merge_apply(db, inputs, n, pb_plex_policy_merge(pol), &mo, stats, err);
        x->out->rows = stats->total;
        if (error < 0)
            goto done;
    }
    x->committed = 1;
    pb_journal__crash_point("committed");
done:
    if (db) {
        pb_probes__free(probes, db);
        sqlite3_commit_hook(db, NULL, NULL);
        sqlite3_close(db);
    }
    pb_plex_policy_free(pol);
    pb_pathmap_free(pm);
    free(stats);
    return error;
}

/* ---------------------------------------------------------------------------------------- */

/* Empties <state>/apply-work (files, and directories of files: what a killed run left there). */
static void wipe_work(const char *work)
{
    DIR *d = opendir(work);
    struct dirent *e;
    if (!d)
        return;
    int dfd = dirfd(d);
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (unlinkat(dfd, e->d_name, 0) == 0)
            continue;
        int sub = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        DIR *sd = sub >= 0 ? fdopendir(sub) : NULL;
        struct dirent *f;
        while (sd && (f = readdir(sd)) != NULL)
            if (strcmp(f->d_name, ".") != 0 && strcmp(f->d_name, "..") != 0)
                unlinkat(sub, f->d_name, 0);
        if (sd)
            closedir(sd);
        else if (sub >= 0)
            close(sub);
        unlinkat(dfd, e->d_name, AT_REMOVEDIR);
    }
    closedir(d);
}

static void cleanup_files(apply_run *x)
{
    if (x->cs_main[0])
        unlink(x->cs_main);
    if (x->cs_blobs[0])
        unlink(x->cs_blobs);
    if (x->cs_empty[0])
        unlink(x->cs_empty);
}

static int resolve(apply_run *x, const char *plex_dir, const char *state_dir, int create,
                   pb_error *err)
{
    int error;
    if (!plex_dir)
        return pb_error_set(err, PB_EINVALID, "no data dir given");
    if (!realpath(plex_dir, x->plex))
        return errno == ENOENT ? pb_error_setd(err, PB_ENOTFOUND, ENOENT,
                                               "data directory %s does not exist", plex_dir)
                               : pb_error_errno(err, "cannot resolve %s", plex_dir);
    if (create)
        error = pb_statedir__ensure(x->state, sizeof(x->state), state_dir, x->plex, err);
    else if (state_dir)
        error = snprintf(x->state, sizeof(x->state), "%s", state_dir) >= (int)sizeof(x->state)
                    ? pb_error_set(err, PB_EINVALID, "state dir path too long")
                    : 0;
    else
        error = pb_state_dir_default(x->state, sizeof(x->state), x->plex, err);
    return error;
}

int pb_apply_recover_ex(pb_recover_result *out, const char *plex_dir, const char *state_dir,
                        pb_error *err)
{
    apply_run x;
    pb_journal *j = NULL;
    char jp[PATH_MAX + 64];
    int error;
    pb_recover_result local;

    if (!out)
        out = &local;
    memset(out, 0, sizeof(*out));
    memset(&x, 0, sizeof(x));
    if ((error = resolve(&x, plex_dir, state_dir, 0, err)) < 0)
        return error == PB_ENOTFOUND ? (pb_error_clear(err), 0) : error;
    snprintf(jp, sizeof(jp), "%s/%s", x.state, PB_JOURNAL_NAME);
    if (!exists(jp))
        return 0; /* never applied here: nothing to recover */
    if ((error = pb_journal__open(&j, x.state, x.plex, err)) < 0)
        return error;
    error = pb_journal__recover(j, out, err);
    pb_journal__close(j);
    return error;
}

int pb_apply_recover(const char *plex_dir, const char *state_dir, pb_error *err)
{
    return pb_apply_recover_ex(NULL, plex_dir, state_dir, err);
}

int pb_apply(pb_apply_result *out, const pb_apply_options *o, pb_error *err)
{
    apply_run x;
    int error = 0;
    char run_id[40];
    double t0 = now_ms(), t;

    memset(out, 0, sizeof(*out));
    memset(&x, 0, sizeof(x));
    x.o = o;
    x.out = out;
    x.err = err;
    x.root_fd = -1;
    if (!o || o->version != PB_APPLY_OPTIONS_VERSION)
        return pb_error_set(err, PB_EINVALID, "apply: options not initialised");
    out->dry_run = o->dry_run;
    if (!o->bundle) {
        error = pb_error_set(err, PB_EINVALID, "apply: no bundle given");
        goto done;
    }
    if (o->max_delete_pct < 0) {
        error = pb_error_set(err, PB_EINVALID, "apply: negative --max-delete-pct");
        goto done;
    }
    if ((error = resolve(&x, o->plex_dir, o->state_dir, 1, err)) < 0)
        goto done;
    snprintf(out->state_dir, sizeof(out->state_dir), "%s", x.state);
    pb_journal__live_paths(x.plex, x.main_db, x.blobs_db, sizeof(x.main_db));
    if (!exists(x.main_db)) {
        error = pb_error_setd(err, PB_ENOTFOUND, ENOENT, "no Plex library DB at %s", x.main_db);
        goto done;
    }
    x.has_live_blobs = exists(x.blobs_db);
    make_run_id(run_id, sizeof(run_id));
    snprintf(out->run_id, sizeof(out->run_id), "%s", run_id);
    if (!(x.buf = malloc(256 * 1024))) {
        error = pb_error_set(err, PB_ENOMEM, "apply: out of memory");
        goto done;
    }

    /* 1. recover */
    phase(&x, PB_APPLY_RECOVER);
    t = now_ms();
    if ((error = pb_journal__open(&x.j, x.state, x.plex, err)) < 0 ||
        (error = pb_journal__recover(x.j, &out->recovered, err)) < 0)
        goto done;
    /* temporary files live in <state>/apply-work, emptied first (a killed run's leftovers) */
    snprintf(x.work, sizeof(x.work), "%s/apply-work", x.state);
    if (mkdir(x.work, 0700) != 0 && errno != EEXIST) {
        error = pb_error_errno(err, "cannot create %s", x.work);
        goto done;
    }
    wipe_work(x.work);
    if (out->recovered.action && out->recovered.plex_stopped && o->plex_start_cmd && !o->online)
        run_shell("--plex-start-cmd", o->plex_start_cmd, NULL); /* back to normal first */
    out->ms.recover = now_ms() - t;

    /* 2. verify */
    phase(&x, PB_APPLY_VERIFY);
    t = now_ms();
    snprintf(x.cs_main, sizeof(x.cs_main), "%s/%s.main.changeset", x.work, run_id);
    snprintf(x.cs_blobs, sizeof(x.cs_blobs), "%s/%s.blobs.changeset", x.work, run_id);
    if ((error = phase_verify(&x)) < 0)
        goto done;
    out->ms.verify = now_ms() - t;

    /* 3. guards */
    phase(&x, PB_APPLY_GUARDS);
    t = now_ms();
    if ((error = phase_guards(&x)) < 0)
        goto done;
    out->ms.guards = now_ms() - t;
    if (o->dry_run) {
        out->ok = 1;
        goto done;
    }

    /* 4. stage */
    phase(&x, PB_APPLY_STAGE);
    t = now_ms();
    if ((x.root_fd = open(x.plex, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        error = pb_error_errno(err, "cannot open %s", x.plex);
        goto done;
    }
    if ((error = pb_journal__begin(x.j, run_id, o->bundle, o->online, &out->bundle, err)) < 0)
        goto done;
    x.begun = 1;
    if ((error = phase_stage(&x, run_id)) < 0)
        goto done;
    out->ms.stage = now_ms() - t;

    /* 5. stop Plex */
    phase(&x, PB_APPLY_STOP);
    if (!o->online) {
        char why[300];
        if (o->plex_stop_cmd) {
            if ((error = pb_journal__set_plex(x.j, 1, err)) < 0)
                goto done;
            x.stopped = 1;
            x.t_stop = now_ms();
            out->plex_was_running = plex_running(x.plex, why, sizeof(why));
            if ((error = run_shell("--plex-stop-cmd", o->plex_stop_cmd, err)) < 0)
                goto done;
            out->plex_stopped = 1;
            pb_journal__crash_point("stopped");
            if (plex_running(x.plex, why, sizeof(why))) {
                error = pb_error_set(err, PB_EREFUSED,
                                     "Plex is still running after --plex-stop-cmd (%s)", why);
                goto done;
            }
        } else if (plex_running(x.plex, why, sizeof(why))) {
            out->plex_was_running = 1;
            error = pb_error_set(err, PB_EREFUSED,
                                 "Plex appears to be running (%s): give --plex-stop-cmd and "
                                 "--plex-start-cmd, stop it first, or use --online",
                                 why);
            goto done;
        }
    }

    /* 6. merge */
    phase(&x, PB_APPLY_MERGE);
    t = now_ms();
    if ((error = phase_merge(&x, run_id)) < 0)
        goto done;
    if ((error = pb_journal__set_state(x.j, PB_JST_MERGED, err)) < 0)
        goto done;
    if (!o->online) {
        int restored;
        if ((error = pb_journal__restore_modes(x.j, &restored, err)) < 0)
            goto done;
        pb_journal__crash_point("wal");
    }
    out->ms.merge = now_ms() - t;

    /* 7. install */
    phase(&x, PB_APPLY_INSTALL);
    t = now_ms();
    {
        pb_recover_result fr;
        memset(&fr, 0, sizeof(fr));
        if ((error = pb_journal__forward(x.j, &fr, err)) < 0)
            goto done;
    }
    out->ms.install = now_ms() - t;

    /* 8. start Plex */
    phase(&x, PB_APPLY_START);
    if (x.stopped) {
        if (o->plex_start_cmd) {
            if ((error = run_shell("--plex-start-cmd", o->plex_start_cmd, err)) < 0)
                goto done;
            out->plex_started = 1;
        }
        out->ms.downtime = now_ms() - x.t_stop;
        x.stopped = 0;
        if ((error = pb_journal__set_plex(x.j, 0, err)) < 0)
            goto done;
        pb_journal__crash_point("started");
    }
    if ((error = pb_journal__finish(x.j, err)) < 0)
        goto done;
    x.begun = 0;
    out->ok = 1;
    phase(&x, PB_APPLY_DONE);

done:
    if (error < 0 && x.begun && x.j) {
        /* before the commit: roll back; after it: complete (or leave it to the next recovery) */
        pb_recover_result rr;
        pb_error e2 = PB_ERROR_INIT;
        memset(&rr, 0, sizeof(rr));
        pb_journal__recover(x.j, &rr, &e2);
    }
    if (x.stopped) {
        if (o->plex_start_cmd && run_shell("--plex-start-cmd", o->plex_start_cmd, NULL) == 0) {
            out->plex_started = 1;
            if (x.j)
                pb_journal__set_plex(x.j, 0, NULL);
        }
        out->ms.downtime = now_ms() - x.t_stop;
    }
    cleanup_files(&x);
    pb_journal__close(x.j);
    if (x.root_fd >= 0)
        close(x.root_fd);
    free(x.buf);
    out->ms.apply = now_ms() - t0;
    if (error < 0) {
        out->ok = 0;
        out->error_code = error;
        snprintf(out->error, sizeof(out->error), "%s",
                 err && err->msg[0] ? err->msg : pb_strerror(error));
    }
    return error;
}

/*
 * export_build.c: step (c) of the export protocol (plexburst/export.h): the cloud writes the
 * bundle: header with the baseline ids, the row changesets base -> cloud of both DBs filtered by
 * the Plex policy (derived tables are never shipped), then every file the home needs in walk
 * order: whole, as a librsync delta against the home's version (its signature from the ANSWER),
 * or as a hard link. Optionally the solid transport form (solid.c) is written alongside, so the
 * agent never reads its bundle back.
 * Role: the cloud agent, the CLI's export command; also the local shortcut where the home data
 * dir (or its manifest) is directly readable.
 * Prerequisites: sqldiff's diff, the Plex policy, librsync deltas (rsync.h), the bundle writer.
 * Memory: streaming; librsync loads one signature while it computes a delta (about 0.5 % of that
 * file's size).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>

#include "answer.h"
#include "bundle_int.h"
#include "clock.h"
#include "fs.h"
#include "plexburst/baseline.h"
#include "plexburst/compat.h"
#include "plexburst/export.h"
#include "plexburst/fingerprint.h"
#include "plexburst/plex.h"
#include "plexburst/sqldiff.h"
#include "policy.h"
#include "rsync.h"
#include "solid.h"

#define IOB (256u * 1024)

void pb_export_options_init(pb_export_options *opts)
{
    pb_export_options def = PB_EXPORT_OPTIONS_INIT;
    *opts = def;
}

#define P (PATH_MAX + 64)

typedef struct build {
    const pb_export_options *o;
    pb_export_stats *st;
    pb_bundle_writer *w;
    pb_solid_writer *solid; /* the solid form, written alongside (o->solid) */
    int cloud_fd;
    pb_answer_reader ans; /* the answer, read in lockstep (may be closed) */
    int have_ans;
    pb_error *err;
    int error;
    char *buf;
    /* the work dir and its files */
    char work[PATH_MAX];
    int work_made;
    char list[P], answer[P], cs_main[P], cs_blobs[P], hstate[P], part[P];
    char cloud_db[P], cloud_blobs[P];
    const char *list_used, *answer_used, *blobs_cloud;
    pb_baseline base, target;
    uint64_t cs_main_size, cs_blobs_size;
    uint8_t cs_main_hash[16], cs_blobs_hash[16];
} build;

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

/* Feeds the rest of fd (named `what` in messages) to the record begun on the writer. */
static int feed_fd(build *b, int fd, const char *what, pb_error *err)
{
    for (;;) {
        ssize_t n = read(fd, b->buf, IOB);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return pb_error_errno(err, "export: cannot read %s", what);
        if (n == 0)
            return 0;
        int error = pb_bundle__writer_data(b->w, b->buf, (size_t)n, err);
        if (error < 0)
            return error;
    }
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
            (error = pb_rsync_delta(pb_answer__reader_sig, &b->ans, fd, rsync_to_writer, b->w, NULL,
                                    &rs, err)) < 0 ||
            (error = pb_bundle__writer_end(b->w, err)) < 0)
            goto done;
        b->st->files_delta++;
        b->st->delta_bytes += rs.out_bytes;
    } else {
        r->type = PB_REC_NEW;
        if ((error = pb_bundle__writer_begin(b->w, r, err)) < 0 ||
            (error = feed_fd(b, fd, e->path, err)) < 0)
            goto done;
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
    if (!error && b->o->progress) {
        pb_progress p = {"build", b->st->content_bytes,
                         0,       b->st->files_new + b->st->files_delta + b->st->files_link,
                         0,       e->path};
        if (b->o->progress(&p, b->o->progress_payload))
            error = pb_error_set(err, PB_ECANCELLED, "export: cancelled");
    }
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
    if ((more = pb_answer__reader_next(&b->ans, err)) < 0) {
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
        if ((more = pb_answer__reader_next(&b->ans, err)) < 0) {
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
            if ((b->error = pb_answer__reader_next(&b->ans, b->err)) < 0)
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
    if (b->have_ans && (error = pb_answer__reader_next(&b->ans, err)) < 0)
        goto done;
    error = pb_manifest_compare(hm, cm, build_cmp_cb, b, NULL, err);
    if (b->error < 0)
        error = b->error;
done:
    pb_manifest_free(hm);
    pb_manifest_free(cm);
    return error;
}

/* Diffs base -> cloud of one DB into `raw` (filtered by the policy), returns its size/hash. */
static int diff_one(build *b, const pb_plex_policy *pol, const char *schema, const char *base,
                    const char *cloud, const char *raw, uint64_t *size, uint8_t hash[16],
                    pb_error *err)
{
    int error = 0, fd = -1;
    pb_diff_stats ds;

    error = pb_plex_policy_diff_file(pol, schema, base, cloud, raw, "export", &ds, err);
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
    if ((error = pb_bundle__writer_begin(b->w, r, err)) < 0 ||
        (error = feed_fd(b, fd, raw, err)) < 0)
        goto done;
    error = pb_bundle__writer_end(b->w, err);
done:
    if (fd >= 0)
        close(fd);
    free(r);
    return error;
}

/* The work dir and the names of its files. */
static int build_workdir(build *b, const char *bundle_path)
{
    const char *tmp = b->o->work_dir && *b->o->work_dir ? b->o->work_dir : getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    if ((size_t)snprintf(b->work, sizeof(b->work), "%s/plexburst-export-XXXXXX", tmp) >=
            sizeof(b->work) ||
        !mkdtemp(b->work))
        return pb_error_errno(b->err, "export: cannot create a work directory in %s", tmp);
    b->work_made = 1;
    snprintf(b->list, sizeof(b->list), "%s/cloud.manifest", b->work);
    snprintf(b->answer, sizeof(b->answer), "%s/home.answer", b->work);
    snprintf(b->cs_main, sizeof(b->cs_main), "%s/main.changeset", b->work);
    snprintf(b->cs_blobs, sizeof(b->cs_blobs), "%s/blobs.changeset", b->work);
    snprintf(b->hstate, sizeof(b->hstate), "%s/home-state", b->work);
    snprintf(b->part, sizeof(b->part), "%s.part", bundle_path);
    return 0;
}

/* The DBs: their ids, and the changesets base -> cloud filtered by the Plex policy. */
static int build_rows(build *b)
{
    const pb_export_options *o = b->o;
    pb_error *err = b->err;
    sqlite3 *db = NULL;
    pb_plex_policy *pol = NULL;
    int error;
    snprintf(b->cloud_db, sizeof(b->cloud_db), "%s", o->cloud_db ? o->cloud_db : "");
    if (!o->cloud_db)
        snprintf(b->cloud_db, sizeof(b->cloud_db), "%s/%s", o->cloud_dir, PB_PLEX_DB_REL);
    snprintf(b->cloud_blobs, sizeof(b->cloud_blobs), "%s/%s", o->cloud_dir, PB_PLEX_BLOBS_REL);
    b->blobs_cloud = o->cloud_blobs                 ? o->cloud_blobs
                     : pb_fs_exists(b->cloud_blobs) ? b->cloud_blobs
                                                    : NULL;
    if (b->blobs_cloud && !o->base_blobs)
        return pb_error_set(err, PB_EINVALID,
                            "export: the cloud has a blobs DB: give the baseline blobs DB too");
    if (!b->blobs_cloud && o->base_blobs)
        return pb_error_set(err, PB_EINVALID, "export: a baseline blobs DB but no cloud blobs DB");
    if ((error = pb_baseline_compute(&b->base, o->base_db, b->blobs_cloud ? o->base_blobs : NULL,
                                     err)) < 0 ||
        (error = pb_baseline_compute(&b->target, b->cloud_db, b->blobs_cloud, err)) < 0 ||
        (error = pb_compat_open(&db, b->cloud_db, PB_OPEN_READONLY, err)) < 0)
        goto done;
    if (b->blobs_cloud) {
        char *sql = sqlite3_mprintf("ATTACH %Q AS blobs", b->blobs_cloud);
        int rc = sql ? sqlite3_exec(db, sql, NULL, NULL, NULL) : SQLITE_NOMEM;
        sqlite3_free(sql);
        if (rc != SQLITE_OK) {
            error = pb_error_setd(err, PB_ESQLITE, rc, "export: cannot attach %s: %s",
                                  b->blobs_cloud, sqlite3_errmsg(db));
            goto done;
        }
    }
    const char *schemas[2] = {"main", "blobs"};
    if ((error = pb_plex_policy_new(&pol, db, schemas, b->blobs_cloud ? 2 : 1, NULL, err)) < 0 ||
        (error = diff_one(b, pol, "main", o->base_db, b->cloud_db, b->cs_main, &b->cs_main_size,
                          b->cs_main_hash, err)) < 0 ||
        (b->blobs_cloud &&
         (error = diff_one(b, pol, "blobs", o->base_blobs, b->blobs_cloud, b->cs_blobs,
                           &b->cs_blobs_size, b->cs_blobs_hash, err)) < 0))
        goto done;
    b->st->cs_main_bytes = b->cs_main_size;
    b->st->cs_blobs_bytes = b->cs_blobs_size;
done:
    pb_plex_policy_free(pol);
    if (db)
        sqlite3_close(db);
    return error;
}

/* The files: the cloud's list, and what the home holds (an answer, made here from a readable
 * home dir when needed). */
static int build_inputs(build *b)
{
    const pb_export_options *o = b->o;
    int error;
    b->list_used = o->list;
    if (!b->list_used) {
        pb_export_stats ls;
        if ((error = pb_export_list(&ls, o->cloud_dir, NULL, b->list, b->err)) < 0)
            return error;
        b->list_used = b->list;
    }
    b->answer_used = o->answer;
    if (o->home_dir && !o->home_manifest) {
        pb_answer_options ao = PB_ANSWER_OPTIONS_INIT;
        pb_export_stats as;
        ao.whole_below = o->whole_below;
        ao.state_dir = b->hstate;
        if (mkdir(b->hstate, 0700) != 0)
            return pb_error_errno(b->err, "export: cannot create %s", b->hstate);
        if ((error = pb_export_answer(&as, o->home_dir, b->list_used, b->answer, &ao, b->err)) < 0)
            return error;
        b->answer_used = b->answer;
        b->st->answers = as.answers;
        b->st->sig_bytes = as.sig_bytes;
    }
    if (b->answer_used) {
        if ((error = pb_answer__reader_open(&b->ans, b->answer_used, b->err)) < 0)
            return error;
        b->have_ans = 1;
    }
    return 0;
}

static int build_header(build *b, pb_bundle_header *h)
{
    const pb_export_options *o = b->o;
    int error;
    struct timespec ts;
    h->version = PB_BUNDLE_VERSION;
    h->flags = b->blobs_cloud ? PB_BUNDLE_FLAG_BLOBS : 0;
    memcpy(h->base_main, b->base.main, 16);
    memcpy(h->target_main, b->target.main, 16);
    if (b->blobs_cloud) {
        memcpy(h->base_blobs, b->base.blobs, 16);
        memcpy(h->target_blobs, b->target.blobs, 16);
    }
    if (o->home_manifest) {
        pb_manifest *hm = NULL;
        if ((error = pb_manifest_open(&hm, o->home_manifest, b->err)) < 0)
            return error;
        memcpy(h->home_root, pb_manifest_get_info(hm)->root, 16);
        pb_manifest_free(hm);
    } else if (b->have_ans) {
        memcpy(h->home_root, b->ans.home_root, 16);
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    h->created_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    snprintf(h->creator, sizeof(h->creator), "%s",
             o->creator ? o->creator : "plexburst " PB_VERSION);
    return 0;
}

/* Writes the records through the writer (and the solid writer), then the trailer. */
static int build_records(build *b, const pb_bundle_header *h, int *bfd)
{
    const pb_export_options *o = b->o;
    pb_error *err = b->err;
    int error;
    if ((*bfd = open(b->part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
        return pb_error_errno(err, "export: cannot create %s", b->part);
    if ((b->cloud_fd = open(o->cloud_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return pb_error_errno(err, "export: cannot open %s", o->cloud_dir);
    if ((error = pb_bundle__writer_new(&b->w, h, o->zstd_level, pb_bundle__fd_out, bfd, err)) < 0)
        return error;
    if (o->solid) {
        if ((error = pb_solid_writer_new(&b->solid, o->solid, o->solid_level ? o->solid_level : 19,
                                         h, err)) < 0)
            return error;
        pb_bundle__writer_tee(b->w, b->solid);
    }
    if ((error = emit_changeset(b, PB_REC_MAIN_CS, b->cs_main, b->cs_main_size, b->cs_main_hash,
                                err)) < 0 ||
        (b->blobs_cloud && (error = emit_changeset(b, PB_REC_BLOBS_CS, b->cs_blobs,
                                                   b->cs_blobs_size, b->cs_blobs_hash, err)) < 0))
        return error;
    if (o->home_manifest)
        error = build_from_manifest(b, b->list_used, o->home_manifest, err);
    else
        error = build_from_answer(b, b->list_used, err);
    if (error < 0 || (error = pb_bundle__writer_finish(b->w, err)) < 0)
        return error;
    b->st->bundle_bytes = pb_bundle__writer_bytes(b->w);
    if (b->solid &&
        (error = pb_solid_writer_finish(b->solid, &b->st->solid_bytes, b->st->solid_xxh3, err)) < 0)
        return error;
    return 0;
}

/* Removes the work dir (unless kept) and releases what the build holds. */
static void build_cleanup(build *b)
{
    pb_bundle__writer_free(b->w);
    pb_solid_writer_free(b->solid);
    if (b->have_ans)
        pb_answer__reader_close(&b->ans);
    if (b->cloud_fd >= 0)
        close(b->cloud_fd);
    if (b->part[0])
        unlink(b->part);
    if (b->work_made && !b->o->keep_work)
        pb_fs_rmtree(b->work); /* the files and the home-state fingerprint cache */
    free(b->buf);
    free(b);
}

int pb_export_build(pb_export_stats *out, const char *bundle_path, const pb_export_options *o,
                    pb_error *err)
{
    int error = 0, bfd = -1;
    build *b = NULL;
    pb_export_stats local;
    pb_bundle_header *h = NULL;
    double t0 = pb_clock_ms();

    if (!out)
        out = &local;
    memset(out, 0, sizeof(*out));
    if (!o || o->version != PB_EXPORT_OPTIONS_VERSION)
        return pb_error_set(err, PB_EINVALID, "export: options not initialised");
    if (!bundle_path || !o->cloud_dir || !o->base_db)
        return pb_error_set(err, PB_EINVALID,
                            "export: need the cloud dir, the base DB and an output path");
    if (!o->answer && !o->home_dir && !o->home_manifest)
        return pb_error_set(
            err, PB_EINVALID,
            "export: say what the home holds (a home dir, a manifest or an answer)");
    if (!(b = calloc(1, sizeof(*b))) || !(b->buf = malloc(IOB)) || !(h = calloc(1, sizeof(*h)))) {
        free(b);
        free(h);
        return pb_error_set(err, PB_ENOMEM, "export: out of memory");
    }
    b->o = o;
    b->st = out;
    b->err = err;
    b->cloud_fd = -1;
    if ((error = build_workdir(b, bundle_path)) < 0 || (error = build_rows(b)) < 0 ||
        (error = build_inputs(b)) < 0 || (error = build_header(b, h)) < 0 ||
        (error = build_records(b, h, &bfd)) < 0)
        goto done;
    int rc = fsync(bfd) != 0 ? -1 : close(bfd);
    bfd = -1;
    if (rc != 0) {
        error = pb_error_errno(err, "export: cannot write %s", b->part);
        goto done;
    }
    if (rename(b->part, bundle_path) != 0) {
        error = pb_error_errno(err, "export: cannot rename %s", b->part);
        goto done;
    }
    b->part[0] = '\0';
    out->ms = pb_clock_ms() - t0;
done:
    if (bfd >= 0)
        close(bfd);
    if (error < 0 && o->solid)
        unlink(o->solid);
    build_cleanup(b);
    free(h);
    return error;
}

/*
 * apply.c: pb_apply(), the crash-safe, all-or-nothing apply of a bundle to a home Plex data dir,
 * and pb_apply_recover() (plexburst/apply.h).
 * Role: the apply step of a nightly sync and of `plexburst apply`: recover, verify (once: or
 * take the caller's pb_bundle_verified), baseline, guards, stage (stage.c), stop Plex
 * (plexctl.c), merge rows (apply_merge.c), install files, start Plex; the journal (journal.c)
 * records every step and explains why a crash at any instant ends in all of the bundle or none.
 * Prerequisites: the bundle reader and verify pass (engine/bundle), the Plex report and guards
 * (pb_plex_diff), the journal.
 * Memory: the bundle is streamed once to verify (unless the caller did) and once to stage;
 * nothing grows with the bundle or the tree.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "apply_int.h"
#include "buf.h"
#include "clock.h"
#include "fs.h"
#include "hex.h"
#include "plexburst/compat.h"
#include "plexburst/plex.h"

const char *pb_apply_phase_name(int phase)
{
    static const char *const names[] = {
        "",          "RECOVER",    "VERIFY BUNDLE", "GUARDS",     "STAGE FILES",
        "STOP PLEX", "MERGE ROWS", "INSTALL FILES", "START PLEX", "DONE"};
    return phase >= 0 && phase <= PB_APPLY_DONE ? names[phase] : "";
}

void pb_apply_options_init(pb_apply_options *opts)
{
    pb_apply_options def = PB_APPLY_OPTIONS_INIT;
    *opts = def;
}

void pb_apply_result_dispose(pb_apply_result *r)
{
    if (!r)
        return;
    pb_plex_report_dispose(&r->report);
    free(r->state_dir);
    free(r->engine);
    memset(r, 0, sizeof(*r));
}

static void phase(apply_run *x, int p)
{
    x->out->phase = p;
    if (x->o->on_phase)
        x->o->on_phase(p, x->o->phase_payload);
}

int pb_apply__cancelled(apply_run *x)
{
    if (!x->o->cancelled || !x->o->cancelled(x->o->cancel_payload))
        return 0;
    return pb_error_set(x->err, PB_ECANCELLED,
                        "apply: stopped by a signal before the row commit: rolled back");
}

/* The lock a sync holds on the data dir all along its run (engine/run: <state dir>/sync/run.lock):
 * a standalone apply takes it too, so that it never writes beside a sync. */
#define SYNC_RUN_LOCK "sync/run.lock"

static int take_run_lock(apply_run *x)
{
    char path[PATH_MAX + 32], dir[PATH_MAX + 32];
    if (x->o->holds_run_lock)
        return 0;
    snprintf(dir, sizeof(dir), "%s/sync", x->state);
    if (!pb_fs_exists(dir))
        return 0; /* never synced: no sync can run without making it first */
    snprintf(path, sizeof(path), "%s/" SYNC_RUN_LOCK, x->state);
    if ((x->run_lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
        return pb_error_errno(x->err, "cannot open %s", path);
    if (flock(x->run_lock_fd, LOCK_EX | LOCK_NB) != 0)
        return errno == EWOULDBLOCK
                   ? pb_error_set(x->err, PB_EBUSY,
                                  "a plexburst sync is running on %s (%s held): wait for it",
                                  x->plex, path)
                   : pb_error_errno(x->err, "cannot lock %s", path);
    return 0;
}

static void make_run_id(char out[40])
{
    uint8_t r[8];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        uint64_t v = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)pb_clock_ms();
        memcpy(r, &v, 8);
    }
    pb_hex_encode(out, r, 8);
}

/* ---- phase 2: verify and baseline ---- */

/* The bundle: verified here, or the caller's verified token (checked to name this bundle and
 * this data dir). The changesets are then at x->cs_main / x->cs_blobs. */
static int verify_bundle(apply_run *x)
{
    const pb_bundle_verified *v = x->o->verified;
    pb_bundle_info *b = &x->out->bundle;
    if (!v) {
        pb_bundle_verify_options vo;
        pb_bundle_verify_options_init(&vo);
        vo.limits = x->o->limits;
        vo.extract_main = x->cs_main;
        vo.extract_blobs = x->cs_blobs;
        vo.plex_dir = x->plex;
        x->own_cs = 1;
        return pb_bundle_verify(b, x->bundle, &vo, x->err);
    }
    if (!v->path || !v->plex_dir || strcmp(v->plex_dir, x->plex) != 0)
        return pb_error_set(x->err, PB_EINVALID,
                            "apply: the bundle was verified against another data dir (%s)",
                            v->plex_dir ? v->plex_dir : "none");
    if (pb_fs_size(v->path) != v->size)
        return pb_error_set(x->err, PB_ECORRUPT, "bundle %s changed since it was verified",
                            v->path);
    *b = v->info;
    snprintf(x->cs_main, sizeof(x->cs_main), "%s", v->cs_main ? v->cs_main : "");
    snprintf(x->cs_blobs, sizeof(x->cs_blobs), "%s", v->cs_blobs ? v->cs_blobs : "");
    if ((b->has_cs_main && !v->cs_main) || (b->has_cs_blobs && !v->cs_blobs))
        return pb_error_set(x->err, PB_EINVALID,
                            "apply: the verified bundle's changesets are missing");
    return 0;
}

static int wrong_base(apply_run *x, const uint8_t have[16], const char *what, const char *why)
{
    char h1[33], h2[33];
    pb_hex_encode(h1, x->out->bundle.base_main, 16);
    pb_hex_encode(h2, have, 16);
    return pb_error_set(x->err, PB_EREFUSED,
                        "wrong baseline: the bundle was computed against %s, %s %s%s", h1, what, h2,
                        why);
}

/* With no recorded baseline, --base-db is only the user's word: the home's DB must derive from
 * it. A home keeps (nearly) every item of its baseline, same id and guid; when most of the
 * baseline's items are not in the live DB, --base-db is another library's baseline. */
#define LINEAGE_MIN_KEPT 0.5

static int check_lineage(apply_run *x, const char *base_db)
{
    static const char count_sql[] =
        "SELECT count(*), (SELECT count(*) FROM pbbase.metadata_items b WHERE EXISTS (SELECT 1 "
        "FROM main.metadata_items l WHERE l.id = b.id AND l.guid IS b.guid)) FROM "
        "pbbase.metadata_items";
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int error = 0, rc;
    double total = 0, kept = 0;
    if ((error = pb_compat_open(&db, x->main_db, PB_OPEN_READONLY, x->err)) < 0)
        return error;
    char *attach = sqlite3_mprintf("ATTACH %Q AS pbbase", base_db);
    rc = attach ? sqlite3_exec(db, attach, NULL, NULL, NULL) : SQLITE_NOMEM;
    sqlite3_free(attach);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, count_sql, -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        total = (double)sqlite3_column_int64(st, 0);
        kept = (double)sqlite3_column_int64(st, 1);
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK)
        error = pb_error_setd(x->err, PB_ESQLITE, rc, "apply: cannot compare %s with --base-db: %s",
                              x->main_db, sqlite3_errmsg(db));
    else if (total > 0 && kept < total * LINEAGE_MIN_KEPT)
        error =
            pb_error_set(x->err, PB_EREFUSED,
                         "wrong baseline: the home's DB does not derive from --base-db (%.0f of "
                         "its %.0f items are not in %s): give this home's baseline",
                         total - kept, total, x->main_db);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return error;
}

/* The bundle's base against what the home is at: the ids the caller vouches for, else the
 * recorded baseline; a given baseline DB copy is checked too (unless the caller vouches). */
static int check_baseline(apply_run *x)
{
    const pb_apply_options *o = x->o;
    pb_bundle_info *b = &x->out->bundle;
    pb_baseline rec, given;
    int error, have_rec = 0;
    if (o->base) {
        rec = *o->base;
        have_rec = 1;
    } else {
        pb_error e = PB_ERROR_INIT;
        error = pb_baseline_read(&rec, x->state, &e);
        if (error < 0 && error != PB_ENOTFOUND)
            return pb_error_set(x->err, error, "%s", e.msg);
        have_rec = error == 0;
    }
    if (o->base_db && b->has_blobs && !o->base_blobs)
        return pb_error_set(x->err, PB_EINVALID,
                            "the bundle includes the blobs DB: give --base-blobs with --base-db");
    if (o->base_db && !o->base) {
        if ((error = pb_baseline_compute(&given, o->base_db, b->has_blobs ? o->base_blobs : NULL,
                                         x->err)) < 0)
            return error;
        if (memcmp(given.main, b->base_main, 16) != 0 ||
            (b->has_blobs && memcmp(given.blobs, b->base_blobs, 16) != 0))
            return wrong_base(x, given.main, "--base-db is", "");
    }
    if (have_rec) {
        if (memcmp(rec.main, b->base_main, 16) != 0 ||
            (b->has_blobs && rec.has_blobs && memcmp(rec.blobs, b->base_blobs, 16) != 0))
            return wrong_base(x, rec.main,
                              o->base ? "the home's DB derives from" : "this home is at",
                              o->base ? "" : " (already applied, or from another sync?)");
        return 0;
    }
    if (!o->base_db)
        return pb_error_set(x->err, PB_EREFUSED,
                            "no baseline recorded in %s: give --base-db (the baseline DB the "
                            "bundle was computed against)",
                            x->state);
    return check_lineage(x, o->base_db);
}

static int phase_verify(apply_run *x)
{
    pb_bundle_info *b = &x->out->bundle;
    int error;
    if ((error = verify_bundle(x)) < 0)
        return error;
    x->out->bytes_bundle = b->bytes;
    if (b->has_blobs && !x->has_live_blobs)
        return pb_error_set(x->err, PB_EREFUSED, "the bundle carries the blobs DB but %s has none",
                            x->blobs_db);
    return check_baseline(x);
}

/* ---- phase 3: guards and the report ---- */

/* Who will write the rows: Plex's engine or the in-process compatibility layer (out->engine). */
static int resolve_writer(apply_run *x)
{
    const pb_apply_options *o = x->o;
    char desc[4200];
    x->use_engine = 0;
    if (o->online) {
        if (o->engine == PB_PLEX_ENGINE_PATH)
            return pb_error_set(x->err, PB_EINVALID,
                                "--online merges in-process (its commit probes need the merge's "
                                "own connection): drop --plex-sqlite, or stop Plex instead");
        snprintf(desc, sizeof(desc), "in-process compatibility layer (--online)");
    } else {
        int rc = pb_plex_engine_resolve(&x->engine, o->engine, o->plex_sqlite, x->err);
        if (rc < 0)
            return rc;
        x->use_engine = rc;
        if (rc)
            pb_plex_engine_describe(desc, sizeof(desc), &x->engine, o->compat_extension);
        else
            snprintf(desc, sizeof(desc), "in-process compatibility layer");
    }
    pb_buf b = PB_BUF_INIT(sizeof(desc) + 64);
    int error = o->dry_run ? pb_buf_printf(&b, x->err, "none (dry run; would write with %s)", desc)
                           : pb_buf_puts(&b, desc, x->err);
    if (error < 0)
        return error;
    free(x->out->engine);
    x->out->engine = pb_buf_detach(&b);
    return 0;
}

static int phase_guards(apply_run *x)
{
    pb_plex_merge_options mo;
    int error, fd;
    char base_db[PATH_MAX + 80], base_blobs[PATH_MAX + 80];
    pb_bundle_info *b = &x->out->bundle;

    if ((error = resolve_writer(x)) < 0)
        return error;

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
    } else if (pb_fs_exists(base_db)) {
        mo.base = base_db;
        mo.blobs_base = pb_fs_exists(base_blobs) ? base_blobs : NULL;
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
    /* the report names the writer the apply will use (the dry-run merge itself never runs it) */
    mo.engine = x->use_engine ? PB_PLEX_ENGINE_PATH : PB_PLEX_ENGINE_IN_PROCESS;
    mo.plex_sqlite = x->use_engine ? x->engine.path : NULL;
    mo.compat_extension = x->o->compat_extension;
    mo.keep_backups = 0;
    /* the changesets came compressed in the bundle: the report's zstd figure is only an
     * estimate here, at level 3 (level 19 cost the home ~25x the CPU for the same figure) */
    mo.zstd_level = 3;
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
    const char *files[] = {x->own_cs ? x->cs_main : "", x->own_cs ? x->cs_blobs : "", x->cs_empty,
                           x->script, x->errlog};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        if (files[i][0])
            unlink(files[i]);
}

/* Opens the data dir and its state dir (created when `create`). */
static int open_dir(apply_run *x, const char *plex_dir, const char *state_dir, int create,
                    pb_error *err)
{
    int error;
    if ((error = pb_plexdir_open(&x->dir, plex_dir, err)) < 0 ||
        (error = pb_plexdir_state(&x->dir, state_dir, create, err)) < 0)
        return error;
    x->plex = x->dir.root;
    x->state = x->dir.state_dir;
    x->main_db = x->dir.main_db;
    x->blobs_db = x->dir.blobs_db;
    return 0;
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
    if ((error = open_dir(&x, plex_dir, state_dir, 0, err)) < 0) {
        if (error == PB_ENOTFOUND) {
            pb_error_clear(err);
            error = 0;
        }
        goto done;
    }
    snprintf(jp, sizeof(jp), "%s/%s", x.state, PB_JOURNAL_NAME);
    if (!pb_fs_exists(jp))
        goto done; /* never applied here: nothing to recover */
    if ((error = pb_journal__open(&j, x.state, x.plex, err)) < 0)
        goto done;
    error = pb_journal__recover(j, out, err);
    pb_journal__close(j);
done:
    pb_plexdir_dispose(&x.dir);
    return error;
}

int pb_apply_recover(const char *plex_dir, const char *state_dir, pb_error *err)
{
    return pb_apply_recover_ex(NULL, plex_dir, state_dir, err);
}

/* Checks the options, opens the data dir and the state dir. */
static int apply_setup(apply_run *x)
{
    const pb_apply_options *o = x->o;
    pb_error *err = x->err;
    int error;
    x->bundle = o->bundle ? o->bundle : o->verified ? o->verified->path : NULL;
    if (!x->bundle)
        return pb_error_set(err, PB_EINVALID, "apply: no bundle given");
    if (o->bundle && o->verified && o->verified->path && strcmp(o->bundle, o->verified->path) != 0)
        return pb_error_set(err, PB_EINVALID, "apply: the verified bundle is %s, not %s",
                            o->verified->path, o->bundle);
    if (o->max_delete_pct < 0)
        return pb_error_set(err, PB_EINVALID, "apply: negative --max-delete-pct");
    if (!o->plex_dir)
        return pb_error_set(err, PB_EINVALID, "no data dir given");
    if ((error = open_dir(x, o->plex_dir, o->state_dir, 1, err)) < 0 ||
        (error = take_run_lock(x)) < 0)
        return error;
    if (!(x->out->state_dir = strdup(x->state)) || !(x->out->engine = strdup("")) ||
        !(x->buf = malloc(256 * 1024)))
        return pb_error_set(err, PB_ENOMEM, "apply: out of memory");
    if (!pb_fs_exists(x->main_db))
        return pb_error_setd(err, PB_ENOTFOUND, ENOENT, "no Plex library DB at %s", x->main_db);
    x->has_live_blobs = pb_fs_exists(x->blobs_db);
    x->m_main = x->main_db;
    x->m_blobs = x->blobs_db;
    make_run_id(x->run_id);
    snprintf(x->out->run_id, sizeof(x->out->run_id), "%s", x->run_id);
    return 0;
}

/* Phase 1: completes or rolls back an interrupted apply; empties <state>/apply-work. */
static int phase_recover(apply_run *x)
{
    const pb_apply_options *o = x->o;
    int error;
    if ((error = pb_journal__open(&x->j, x->state, x->plex, x->err)) < 0 ||
        (error = pb_journal__recover(x->j, &x->out->recovered, x->err)) < 0)
        return error;
    /* temporary files live in <state>/apply-work, emptied first (a killed run's leftovers) */
    snprintf(x->work, sizeof(x->work), "%s/apply-work", x->state);
    if (mkdir(x->work, 0700) != 0 && errno != EEXIST)
        return pb_error_errno(x->err, "cannot create %s", x->work);
    wipe_work(x->work);
    if (x->out->recovered.action && x->out->recovered.plex_stopped && o->plex_start_cmd &&
        !o->online)
        pb_apply__run_shell("--plex-start-cmd", o->plex_start_cmd, o, NULL,
                            NULL); /* back to normal */
    snprintf(x->cs_main, sizeof(x->cs_main), "%s/%s.main.changeset", x->work, x->run_id);
    snprintf(x->cs_blobs, sizeof(x->cs_blobs), "%s/%s.blobs.changeset", x->work, x->run_id);
    return 0;
}

/* Phases 6 and 7: merge the rows, then rename the staged files into place. */
static int phase_commit(apply_run *x, double *ms_merge, double *ms_install)
{
    int error;
    double t = pb_clock_ms();
    int swapped = 0;
    phase(x, PB_APPLY_MERGE);
    if ((error = pb_apply__swap(x, &swapped)) < 0 ||
        (!swapped && (error = pb_apply__merge(x)) < 0) ||
        (error = pb_journal__set_state(x->j, PB_JST_MERGED, x->err)) < 0)
        return error;
    if (!x->o->online && !x->idle) {
        int restored;
        if ((error = pb_journal__restore_modes(x->j, &restored, x->err)) < 0)
            return error;
        pb_journal__crash_point("wal");
    }
    *ms_merge = pb_clock_ms() - t;
    phase(x, PB_APPLY_INSTALL);
    t = pb_clock_ms();
    pb_recover_result fr;
    memset(&fr, 0, sizeof(fr));
    if ((error = pb_journal__forward(x->j, &fr, x->err)) < 0)
        return error;
    *ms_install = pb_clock_ms() - t;
    return 0;
}

/* Phases 4 to 8, after the guards passed. */
static int apply_run_phases(apply_run *x)
{
    pb_apply_result *out = x->out;
    int error;
    double t = pb_clock_ms();
    phase(x, PB_APPLY_STAGE);
    if ((x->root_fd = open(x->plex, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return pb_error_errno(x->err, "cannot open %s", x->plex);
    if ((error =
             pb_journal__begin(x->j, x->run_id, x->bundle, x->o->online, &out->bundle, x->err)) < 0)
        return error;
    x->begun = 1;
    if ((error = pb_apply__stage(x)) < 0)
        return error;
    out->ms.stage = pb_clock_ms() - t;
    /* a bundle that brings nothing home (no file record, no changeset record): Plex keeps
     * running, the merge writes nothing (an idle night) */
    const pb_bundle_info *b = &out->bundle;
    x->idle = b->files_new + b->files_delta + b->files_link == 0 && out->have_report &&
              out->report.cs_inserted + out->report.cs_updated + out->report.cs_deleted == 0;
    /* while Plex still runs: the new files at new paths go into place now (no row names them
     * before the merge commits; a rollback removes them), so that the downtime only installs
     * the files that replace others */
    uint64_t moved = 0;
    if (!x->idle && !x->o->online && (error = pb_journal__preinstall(x->j, &moved, x->err)) < 0)
        return error;
    out->ms.stage = pb_clock_ms() - t;
    /* and the rows, into a copy of the live pair that replaces it during the stop */
    if ((error = pb_apply__premerge(x)) < 0)
        return error;
    phase(x, PB_APPLY_STOP);
    if ((error = pb_apply__cancelled(x)) < 0 ||
        (!x->idle && (error = pb_apply__stop_plex(x)) < 0) ||
        (error = pb_apply__cancelled(x)) < 0 ||
        (error = phase_commit(x, &out->ms.merge, &out->ms.install)) < 0)
        return error;
    phase(x, PB_APPLY_START);
    if ((error = pb_apply__start_plex(x)) < 0 || (error = pb_journal__finish(x->j, x->err)) < 0)
        return error;
    x->begun = 0;
    out->ok = 1;
    phase(x, PB_APPLY_DONE);
    return 0;
}

/* After a failure or at the end: roll back or complete a begun run, start Plex if stopped. */
static void apply_finish(apply_run *x, int error)
{
    const pb_apply_options *o = x->o;
    pb_apply__premerge_free(x, 1);
    if (error < 0 && x->begun && x->j) {
        /* before the commit: roll back; after it: complete (or leave it to the next recovery) */
        pb_recover_result rr;
        pb_error e2 = PB_ERROR_INIT;
        memset(&rr, 0, sizeof(rr));
        if (pb_journal__recover(x->j, &rr, &e2) < 0 && !x->committed) {
            x->out->rollback_incomplete = 1;
            snprintf(x->out->rollback_error, sizeof(x->out->rollback_error), "%.255s", e2.msg);
        }
    }
    x->out->committed = x->committed;
    if (x->stopped) {
        if (o->plex_start_cmd &&
            pb_apply__run_shell("--plex-start-cmd", o->plex_start_cmd, o, NULL, NULL) == 0) {
            x->out->plex_started = 1;
            if (x->j)
                pb_journal__set_plex(x->j, 0, NULL);
        }
        x->out->ms.downtime = pb_clock_ms() - x->t_stop;
    }
    cleanup_files(x);
    pb_journal__close(x->j);
    if (x->root_fd >= 0)
        close(x->root_fd);
    if (x->run_lock_fd >= 0)
        close(x->run_lock_fd);
    free(x->buf);
    pb_plexdir_dispose(&x->dir);
}

int pb_apply(pb_apply_result *out, const pb_apply_options *o, pb_error *err)
{
    apply_run x;
    int error = 0;
    double t0 = pb_clock_ms(), t;

    memset(out, 0, sizeof(*out));
    memset(&x, 0, sizeof(x));
    x.o = o;
    x.out = out;
    x.err = err;
    x.root_fd = x.run_lock_fd = -1;
    if (!o || o->version != PB_APPLY_OPTIONS_VERSION)
        return pb_error_set(err, PB_EINVALID, "apply: options not initialised");
    out->dry_run = o->dry_run;
    if ((error = apply_setup(&x)) < 0)
        goto done;

    phase(&x, PB_APPLY_RECOVER);
    t = pb_clock_ms();
    if ((error = phase_recover(&x)) < 0)
        goto done;
    out->ms.recover = pb_clock_ms() - t;

    phase(&x, PB_APPLY_VERIFY);
    t = pb_clock_ms();
    if ((error = pb_apply__cancelled(&x)) < 0 || (error = phase_verify(&x)) < 0)
        goto done;
    out->ms.verify = pb_clock_ms() - t;

    phase(&x, PB_APPLY_GUARDS);
    t = pb_clock_ms();
    if ((error = pb_apply__cancelled(&x)) < 0 || (error = phase_guards(&x)) < 0 ||
        (error = pb_apply__cancelled(&x)) < 0)
        goto done;
    out->ms.guards = pb_clock_ms() - t;
    if (o->dry_run) {
        out->ok = 1;
        goto done;
    }
    error = apply_run_phases(&x);
done:
    apply_finish(&x, error);
    out->ms.apply = pb_clock_ms() - t0;
    if (error < 0) {
        out->ok = 0;
        out->error_code = error;
    }
    return error;
}

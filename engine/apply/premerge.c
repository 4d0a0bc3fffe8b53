/*
 * premerge.c: the row merge made before Plex is stopped, into a copy of the live pair, and the
 * swap of that copy into place during the stop (engine/apply/apply_int.h).
 * Role: keeps Plex's downtime flat whatever the size of the change: the stop only checks that
 * Plex wrote nothing since the copy and renames the merged copy over the live file. When Plex did
 * write (or a copy cannot be made), the apply merges in place as before (apply_merge.c).
 * Prerequisites: SQLite's backup API and PRAGMA data_version, the journal (journal.c, which
 * explains why a crash at any instant ends in all of the bundle or none), the merge.
 *
 * BEFORE THE STOP (pb_apply__premerge). For each live DB (main, and blobs when the bundle writes
 * it) a connection `watch` opens it, reads PRAGMA data_version and copies the DB with the backup
 * API in one read transaction (pb_backup_db_copy) to .pb-stage-<run>-db-main (or -db-blobs) in
 * the Databases directory (recorded as a stage dir first, so a rollback sweeps the
 * copies). The merge then runs on the copies exactly as it would on the live pair (same policy,
 * same writer: in-process or Plex's engine), with a scratch commit marker; the copies get the live
 * DBs' journal mode, owner and mode, and are made durable. `watch` stays open.
 * DURING THE STOP (pb_apply__swap). PRAGMA data_version on `watch` tells whether another
 * connection (Plex) committed since it was read before the copy (SQLite's own cache coherence
 * rests on it): when it did, the copies are removed and the caller merges in place. Else `watch`
 * closes (the last connection: the WAL is checkpointed and removed), the live pair is switched to
 * journal_mode DELETE (which fails when another process still holds it), its file identity is
 * recorded with the state "swapping" (the commit point), and the copies are renamed over the live
 * files (each replaced file linked first to <copy>-old, which the end of the run removes after Plex
 * started). RECOVERY of "swapping" (pb_journal__swap_forward): a copy still waiting is renamed when
 * its live file is still the one recorded; when the live main DB changed since (Plex started and
 * wrote before the recovery), nothing was swapped yet: the run is rolled back instead.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <sqlite3.h>

#include "apply_int.h"
#include "backup.h"
#include "clock.h"
#include "fs.h"
#include "plexburst/plex.h"
#include "seqwrite.h"

/* Room the copies need beyond their own size (the pages the merge adds, and some left over). */
#define PREMERGE_SPACE_FACTOR 1.25

struct pb_premerge {
    int n;              /* DBs copied: main, then blobs */
    sqlite3 *watch[2];  /* the live DBs, open since the copy */
    int64_t version[2]; /* their data_version when copied */
    char mode[2][16];   /* their journal modes */
    char copy[2][PATH_MAX + 128];
    char marker[PATH_MAX + 128];
    char dir[PATH_MAX + 80]; /* the Databases directory, which holds the copies */
};

static void note(apply_run *x, const char *fmt, const char *arg)
{
    snprintf(x->out->swap_note, sizeof(x->out->swap_note), fmt, arg);
}

static int sqlfail(sqlite3 *db, int rc, const char *what, const char *path, pb_error *err)
{
    return pb_error_setd(err, rc == SQLITE_BUSY ? PB_EBUSY : PB_ESQLITE, rc, "premerge: %s %s: %s",
                         what, path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

static int int_pragma(sqlite3 *db, const char *sql, int64_t *v)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        *v = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Removes a copy and whatever SQLite left beside it. */
static void remove_copy(const char *copy)
{
    static const char *const sfx[] = {"", "-journal", "-wal", "-shm"};
    char p[PATH_MAX + 160];
    for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", copy, sfx[i]);
        unlink(p);
    }
}

void pb_apply__premerge_free(apply_run *x, int remove)
{
    pb_premerge *p = x->pm;
    if (!p)
        return;
    for (int k = 0; k < 2; k++) {
        sqlite3_close(p->watch[k]);
        if (remove && p->copy[k][0])
            remove_copy(p->copy[k]);
    }
    if (p->marker[0])
        remove_copy(p->marker);
    free(p);
    x->pm = NULL;
    x->m_main = x->main_db;
    x->m_blobs = x->blobs_db;
    x->m_marker = NULL;
}

/* Whether the copy can stand in for `live`: a regular file with one link whose owner this
 * process can give the copy. Else a note says why not. */
static int swappable(apply_run *x, const char *live, struct stat *st)
{
    if (lstat(live, st) != 0 || !S_ISREG(st->st_mode) || st->st_nlink != 1) {
        note(x, "%.300s is not a plain file (a link?): merged in place", live);
        return 0;
    }
    if (geteuid() != 0 && st->st_uid != geteuid()) {
        note(x, "%.300s belongs to another user: merged in place", live);
        return 0;
    }
    return 1;
}

/* Copies live DB k to its stage copy (pb_backup_db_copy: one read transaction, gathered
 * writes), its data_version noted first: a commit that lands before the copy's read transaction
 * is in the copy but changes the version, so the swap then falls back (never the reverse). */
static int copy_one(apply_run *x, pb_premerge *p, int k, const char *live)
{
    pb_error *err = x->err;
    sqlite3 *w = NULL, *dst = NULL;
    int rc, error = 0;

    if ((rc = sqlite3_open_v2(live, &w, SQLITE_OPEN_READONLY, NULL)) != SQLITE_OK)
        return sqlfail(w, rc, "cannot open", live, err);
    p->watch[k] = w;
    sqlite3_busy_timeout(w, 30000);
    if ((rc = int_pragma(w, "PRAGMA data_version", &p->version[k])) != SQLITE_OK)
        return sqlfail(w, rc, "cannot read", live, err);
    if ((error = pb_journal__mode(live, NULL, p->mode[k], sizeof(p->mode[k]), err)) < 0)
        return error;
    remove_copy(p->copy[k]);
    rc = sqlite3_open_v2(p->copy[k], &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                         pb_seqwrite_vfs());
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(dst, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        error = sqlfail(dst, rc, "cannot create", p->copy[k], err);
    else if ((error = pb_backup_db_copy(dst, w, "premerge: cannot copy the live DB", err)) == 0 &&
             (rc = pb_seqwrite_check(dst)) != SQLITE_OK)
        error = sqlfail(NULL, rc, "cannot write", p->copy[k], err);
    sqlite3_close(dst);
    return error;
}

/* After the merge: the copy takes the live DB's journal mode, owner and mode, made durable. */
static int settle_copy(apply_run *x, pb_premerge *p, int k, const struct stat *live_st)
{
    pb_error *err = x->err;
    char now[16];
    int error, fd;
    if ((error = pb_journal__mode(p->copy[k], p->mode[k][0] ? p->mode[k] : "delete", now,
                                  sizeof(now), err)) < 0)
        return error;
    if ((fd = open(p->copy[k], O_RDWR | O_CLOEXEC | O_NOFOLLOW)) < 0)
        return pb_error_errno(err, "premerge: cannot open %s", p->copy[k]);
    if ((error = pb_fs_inherit_fd(fd, live_st, 0, p->copy[k], err)) == 0 && fsync(fd) != 0)
        error = pb_error_errno(err, "premerge: cannot sync %s", p->copy[k]);
    close(fd);
    return error;
}

int pb_apply__premerge(apply_run *x)
{
    const pb_apply_options *o = x->o;
    const char *live[2] = {x->main_db, x->blobs_db};
    struct stat st[2];
    int error = 0, n = x->out->bundle.has_blobs && x->has_live_blobs ? 2 : 1;
    double t = pb_clock_ms();
    pb_premerge *p;

    x->out->swap_note[0] = '\0';
    if (x->idle || o->online || o->merge_in_place ||
        !(x->out->bundle.has_cs_main || (n > 1 && x->out->bundle.has_cs_blobs)))
        return 0;
    for (int k = 0; k < n; k++)
        if (!swappable(x, live[k], &st[k]))
            return 0;
    if (!(p = calloc(1, sizeof(*p))))
        return pb_error_set(x->err, PB_ENOMEM, "premerge: out of memory");
    snprintf(p->dir, sizeof(p->dir), "%s", x->main_db);
    *strrchr(p->dir, '/') = '\0';
    struct statvfs vfs;
    double need = (double)(st[0].st_size + (n > 1 ? st[1].st_size : 0)) * PREMERGE_SPACE_FACTOR;
    if (statvfs(p->dir, &vfs) == 0 && (double)vfs.f_bavail * (double)vfs.f_frsize < need) {
        note(x, "no room for a copy of the library DB in %.300s: merged in place", p->dir);
        free(p);
        return 0;
    }
    x->pm = p;
    p->n = n;
    /* the copies live in the Databases dir, recorded first so that a rollback sweeps them */
    size_t rl = strlen(x->plex);
    if ((error = pb_journal__add_stagedir(x->j, p->dir[rl] == '/' ? p->dir + rl + 1 : p->dir,
                                          x->err)) < 0 ||
        (error = pb_journal__flush(x->j, x->err)) < 0)
        goto fail;
    for (int k = 0; k < n; k++) {
        pb_journal__copy_path(p->copy[k], sizeof(p->copy[k]), live[k], x->run_id, k);
        if ((error = copy_one(x, p, k, live[k])) < 0)
            goto fail;
    }
    pb_journal__crash_point("premerge");
    snprintf(p->marker, sizeof(p->marker), "%s/%s.premerge-marker.db", x->work, x->run_id);
    int unused;
    if ((error = pb_journal__marker_at(p->marker, NULL, &unused, x->err)) < 0)
        goto fail;
    x->m_main = p->copy[0];
    x->m_blobs = n > 1 ? p->copy[1] : x->blobs_db;
    x->m_marker = p->marker;
    x->pre = 1;
    error = pb_apply__merge(x);
    x->pre = 0;
    if (error < 0)
        goto fail;
    for (int k = 0; k < n; k++)
        if ((error = settle_copy(x, p, k, &st[k])) < 0)
            goto fail;
    pb_fs_sync_dir(p->dir);
    pb_journal__crash_point("premerged");
    x->out->ms.premerge = pb_clock_ms() - t;
    return 0;
fail:
    /* the copy is only an optimisation: a failure falls back to the merge in place, which
     * reports the error again if it was not the copy's own */
    note(x, "the merge into a copy failed (%.300s): merged in place", x->err->msg);
    pb_error_clear(x->err);
    pb_apply__premerge_free(x, 1);
    return pb_apply__cancelled(x);
}

int pb_apply__swap(apply_run *x, int *swapped)
{
    pb_premerge *p = x->pm;
    const char *live[2] = {x->main_db, x->blobs_db};
    int error = 0, rc;

    *swapped = 0;
    if (!p)
        return 0;
    for (int k = 0; k < p->n; k++) {
        int64_t v = -1;
        if ((rc = int_pragma(p->watch[k], "PRAGMA data_version", &v)) != SQLITE_OK ||
            v != p->version[k]) {
            note(x, "%.300s changed while the rows were merged into a copy: merged in place",
                 live[k]);
            pb_apply__premerge_free(x, 1);
            return 0;
        }
    }
    /* closed: the switch below checkpoints what Plex left in the WAL into the live files */
    for (int k = 0; k < p->n; k++) {
        sqlite3_close(p->watch[k]);
        p->watch[k] = NULL;
    }
    if ((error = pb_journal__set_merging(x->j, p->mode[0], p->n > 1 ? p->mode[1] : NULL, x->err)) <
        0)
        return error;
    /* DELETE mode: proves that no other process holds the live DB and leaves no -wal beside it
     * (a -wal left there would be replayed onto the copy renamed over it) */
    struct stat st[2];
    for (int k = 0; k < p->n; k++) {
        char now[16];
        if ((error = pb_journal__mode(live[k], "delete", now, sizeof(now), x->err)) < 0)
            return error;
        if (strcmp(now, "delete") != 0)
            return pb_error_set(x->err, PB_EBUSY,
                                "cannot switch %s to journal_mode=DELETE (still %s): another "
                                "process holds it (Plex?)",
                                live[k], now);
        if (lstat(live[k], &st[k]) != 0)
            return pb_error_errno(x->err, "cannot stat %s", live[k]);
    }
    if ((error = pb_journal__set_swapping(x->j, &st[0], p->n > 1 ? &st[1] : NULL, x->err)) < 0)
        return error;
    for (int k = 0; k < p->n; k++) {
        /* the replaced file keeps a name until the run ends (journal.c sweeps it after the
         * start): the rename then frees no blocks, which takes long for a large DB */
        char old[PATH_MAX + 160];
        snprintf(old, sizeof(old), "%s-old", p->copy[k]);
        if (link(live[k], old) != 0 && errno != EEXIST)
            return pb_error_errno(x->err, "cannot link %s to %s", live[k], old);
        if (rename(p->copy[k], live[k]) != 0)
            return pb_error_errno(x->err, "cannot rename %s onto %s", p->copy[k], live[k]);
        p->copy[k][0] = '\0';
        pb_journal__crash_point(k ? "swap-blobs" : "swap-main");
    }
    pb_fs_sync_dir(p->dir);
    x->committed = 1;
    x->out->atomic_pair = 1;
    x->out->swapped = 1;
    *swapped = 1;
    pb_apply__premerge_free(x, 1);
    return 0;
}

/*
 * recover.c: roll back or roll forward the run the apply journal holds (engine/apply/journal.h),
 * as decided by the state, the commit marker or the online probes; journal.c explains why the
 * result is all of the bundle or none of it.
 * Role: pb_apply() ends a failed run with it; pb_apply_recover() completes an interrupted one.
 * Prerequisites: the journal (journal.c), the probes (probes.c), Linux syncfs().
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plexburst/baseline.h"
#include "bundle_int.h"
#include "fs.h"
#include "journal_int.h"
#include "probes.h"

static int open_root(pb_journal *j, int *fd, pb_error *err)
{
    if ((*fd = open(j->plex_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return pb_error_errno(err, "cannot open the data dir %s", j->plex_dir);
    return 0;
}

/* The name under which the pre-install keeps the file a staged file replaces (a hard link beside
 * it, until the run ends: a rollback renames it back). */
static void backup_name(char *out, size_t cap, const char *stage)
{
    snprintf(out, cap, "%s-old", stage);
}

/* Removes stage files named .pb-stage-<run>- in the directory `rel`. */
static int sweep_stagedir(int root_fd, const char *rel, const char *run_id, uint64_t *removed,
                          pb_error *err)
{
    char probe[PB_BUNDLE_PATH_MAX + 8], prefix[80];
    int dfd = -1, error;
    const char *name;
    DIR *d;
    struct dirent *e;

    snprintf(probe, sizeof(probe), "%s/x", rel);
    error = pb_fs_open_parent(&dfd, &name, root_fd, probe, NULL, NULL, err);
    if (error == PB_ENOTFOUND) {
        pb_error_clear(err);
        return 0;
    }
    if (error < 0)
        return error;
    int lfd = dup(dfd);
    if (lfd < 0 || !(d = fdopendir(lfd))) {
        if (lfd >= 0)
            close(lfd);
        close(dfd);
        return pb_error_errno(err, "cannot list %s", rel);
    }
    snprintf(prefix, sizeof(prefix), "%s%s-", PB_STAGE_PREFIX, run_id);
    size_t pl = strlen(prefix);
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, pl) == 0 && unlinkat(dfd, e->d_name, 0) == 0) {
            (*removed)++;
            pb_journal__crash_point("recover-unlink");
        }
    }
    closedir(d);
    close(dfd);
    return 0;
}

static int target_hash(int root_fd, const char *path, uint8_t out[16], int *present, pb_error *err);

/* Undoes the installs made before the commit (pb_journal__preinstall): a file row marked done 1
 * or 2 whose stage file is gone was renamed onto its target; the file it replaced, kept as a
 * backup link, is renamed back; with no backup the target did not exist, and is removed when it
 * holds the recorded content. Runs before the stage files are deleted (a present stage file means
 * no rename happened). */
static int remove_preinstalled(pb_journal *j, int root_fd, pb_recover_result *out, pb_error *err)
{
    sqlite3_stmt *st = NULL;
    int error = 0;
    int rc = sqlite3_prepare_v2(
        j->db, "SELECT path, stage, hash FROM files WHERE done IN (1, 2) AND stage IS NOT NULL", -1,
        &st, NULL);
    while (error == 0 && (rc == SQLITE_OK || rc == SQLITE_ROW) &&
           (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *path = (const char *)sqlite3_column_text(st, 0);
        const char *stage = (const char *)sqlite3_column_text(st, 1);
        const char *slash = path ? strrchr(path, '/') : NULL;
        if (!slash || !stage || sqlite3_column_bytes(st, 2) != 16)
            continue;
        char sp[PB_BUNDLE_PATH_MAX + 80];
        snprintf(sp, sizeof(sp), "%.*s/%s", (int)(slash - path), path, stage);
        int dfd = -1;
        const char *name;
        pb_error e = PB_ERROR_INIT;
        if (pb_fs_open_parent(&dfd, &name, root_fd, sp, NULL, NULL, &e) != 0)
            continue; /* its directory is gone: nothing of it is left */
        struct stat sst;
        int staged = fstatat(dfd, name, &sst, AT_SYMLINK_NOFOLLOW) == 0;
        close(dfd);
        if (staged)
            continue; /* not renamed: remove_staged deletes it */
        /* a file it replaced: its former content comes back */
        char bk[96];
        backup_name(bk, sizeof(bk), stage);
        if (pb_fs_open_parent(&dfd, &name, root_fd, path, NULL, NULL, &e) == 0) {
            int back = renameat(dfd, bk, dfd, name) == 0;
            close(dfd);
            if (back) {
                out->files_removed++;
                pb_journal__crash_point("recover-unlink");
                continue;
            }
        }
        uint8_t h[16];
        int present = 0;
        if ((error = target_hash(root_fd, path, h, &present, err)) < 0)
            break;
        if (!present || memcmp(h, sqlite3_column_blob(st, 2), 16) != 0)
            continue;
        if (pb_fs_open_parent(&dfd, &name, root_fd, path, NULL, NULL, &e) == 0) {
            if (unlinkat(dfd, name, 0) == 0) {
                out->files_removed++;
                pb_journal__crash_point("recover-unlink");
            }
            close(dfd);
        }
    }
    sqlite3_finalize(st);
    if (error < 0)
        return error;
    return rc != SQLITE_DONE && rc != SQLITE_OK
               ? pb_journal__sqlerr(j, rc, "read the installed files", err)
               : 0;
}

/* Deletes the recorded stage files. */
static int remove_staged(pb_journal *j, int root_fd, pb_recover_result *out, pb_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(j->db, "SELECT path, stage FROM files WHERE stage IS NOT NULL", -1,
                                &st, NULL);
    while ((rc == SQLITE_OK || rc == SQLITE_ROW) && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *path = (const char *)sqlite3_column_text(st, 0);
        const char *stage = (const char *)sqlite3_column_text(st, 1);
        char sp[PB_BUNDLE_PATH_MAX + 80];
        const char *slash = strrchr(path, '/');
        int dfd = -1;
        const char *name;
        if (!slash || !stage)
            continue;
        snprintf(sp, sizeof(sp), "%.*s/%s", (int)(slash - path), path, stage);
        pb_error e = PB_ERROR_INIT;
        if (pb_fs_open_parent(&dfd, &name, root_fd, sp, NULL, NULL, &e) == 0) {
            if (unlinkat(dfd, name, 0) == 0) {
                out->files_removed++;
                pb_journal__crash_point("recover-unlink");
            }
            close(dfd);
        }
    }
    sqlite3_finalize(st);
    return rc != SQLITE_DONE && rc != SQLITE_OK
               ? pb_journal__sqlerr(j, rc, "read the staged files", err)
               : 0;
}

/* Deletes any stage file of the run not recorded yet, in the recorded stage dirs. */
static int sweep_stagedirs(pb_journal *j, int root_fd, const char *run_id, pb_recover_result *out,
                           pb_error *err)
{
    sqlite3_stmt *st = NULL;
    int error = 0, rc = sqlite3_prepare_v2(j->db, "SELECT path FROM stagedirs", -1, &st, NULL);
    while ((rc == SQLITE_OK || rc == SQLITE_ROW) && (rc = sqlite3_step(st)) == SQLITE_ROW)
        if ((error = sweep_stagedir(root_fd, (const char *)sqlite3_column_text(st, 0), run_id,
                                    &out->files_removed, err)) < 0)
            break;
    sqlite3_finalize(st);
    if (error < 0)
        return error;
    return rc != SQLITE_DONE && rc != SQLITE_OK
               ? pb_journal__sqlerr(j, rc, "read the stage dirs", err)
               : 0;
}

/* Removes the created directories, deepest (latest) first, only when empty. */
static int remove_dirs(pb_journal *j, int root_fd, pb_recover_result *out, pb_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(j->db, "SELECT path FROM dirs ORDER BY n DESC", -1, &st, NULL);
    while ((rc == SQLITE_OK || rc == SQLITE_ROW) && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *path = (const char *)sqlite3_column_text(st, 0);
        int dfd = -1;
        const char *name;
        pb_error e = PB_ERROR_INIT;
        if (pb_fs_open_parent(&dfd, &name, root_fd, path, NULL, NULL, &e) == 0) {
            if (unlinkat(dfd, name, AT_REMOVEDIR) == 0)
                out->dirs_removed++;
            close(dfd);
        }
    }
    sqlite3_finalize(st);
    return rc != SQLITE_DONE && rc != SQLITE_OK
               ? pb_journal__sqlerr(j, rc, "read the created dirs", err)
               : 0;
}

int pb_journal__rollback(pb_journal *j, pb_recover_result *out, pb_error *err)
{
    int error = 0, root_fd = -1, restored = 0;
    pb_journal_run r;

    /* A batch that cannot be committed (a full disk) is dropped: its stage files are still
     * found by the sweep of the stage dirs, each recorded durably before its first stage file,
     * and its directories were each recorded durably before being made. */
    pb_error ce = PB_ERROR_INIT;
    if (pb_journal__commit(j, &ce) < 0) {
        sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
        j->in_batch = 0;
        j->batch = 0;
    }
    if ((error = pb_journal__load_run(j, &r, err)) < 0 || !r.have)
        return error;
    if ((error = open_root(j, &root_fd, err)) < 0)
        return error;
    /* every removal is tried, even after one failed: as much as possible is undone now */
    int e0 = remove_preinstalled(j, root_fd, out, err);
    int e1 = remove_staged(j, root_fd, out, err);
    int e2 = sweep_stagedirs(j, root_fd, r.run_id, out, err);
    int e3 = remove_dirs(j, root_fd, out, err);
    if ((error = e0 < 0 ? e0 : e1 < 0 ? e1 : e2 < 0 ? e2 : e3) < 0)
        goto done;
    if (syncfs(root_fd) != 0) {
        error = pb_error_errno(err, "syncfs on %s failed", j->plex_dir);
        goto done;
    }
    if ((error = pb_journal__restore_modes(j, &restored, err)) < 0)
        goto done;
    out->modes_restored = restored;
    if ((error =
             pb_journal__jexec(j,
                               "BEGIN IMMEDIATE; DELETE FROM files; DELETE FROM dirs; "
                               "DELETE FROM stagedirs; DELETE FROM swap; DELETE FROM run; COMMIT;",
                               "clear the run", err)) < 0)
        goto done;
    unlink(j->probes);
    out->action = PB_RECOVER_ROLLED_BACK;
done:
    if (error < 0 && !sqlite3_get_autocommit(j->db))
        sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
    if (root_fd >= 0)
        close(root_fd);
    return error;
}

/* Hash of the target file `path` below root (for the idempotent forward check). */
static int target_hash(int root_fd, const char *path, uint8_t out[16], int *present, pb_error *err)
{
    int dfd = -1, fd = -1, error;
    const char *name;
    struct stat st;
    *present = 0;
    error = pb_fs_open_parent(&dfd, &name, root_fd, path, NULL, NULL, err);
    if (error == PB_ENOTFOUND) {
        pb_error_clear(err);
        return 0;
    }
    if (error < 0)
        return error;
    fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    close(dfd);
    if (fd < 0)
        return errno == ENOENT ? 0 : pb_error_errno(err, "cannot open %s", path);
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        *present = 1;
        error = pb_bundle__hash_fd(out, NULL, fd, err);
    }
    close(fd);
    return error;
}

typedef struct fwd_row {
    int64_t n;
    char path[PB_BUNDLE_PATH_MAX + 1];
    char stage[80];
    uint8_t hash[16];
} fwd_row;

/* Installs one staged file: rename, or verify that an earlier pass did. */
static int forward_one(pb_journal *j, int root_fd, const fwd_row *f, pb_recover_result *out,
                       pb_error *err)
{
    int dfd = -1, error, renamed = 0;
    const char *name;
    error = pb_fs_open_parent(&dfd, &name, root_fd, f->path, NULL, NULL, err);
    if (error < 0 && error != PB_ENOTFOUND)
        return error;
    pb_error_clear(err);
    if (dfd >= 0) {
        if (renameat(dfd, f->stage, dfd, name) == 0) {
            renamed = 1;
        } else if (errno != ENOENT) {
            error = pb_error_errno(err, "cannot rename the staged %s into place", f->path);
            close(dfd);
            return error;
        }
        close(dfd);
    }
    if (renamed) {
        out->files_installed++;
        pb_journal__crash_point("install");
        return 0;
    }
    uint8_t h[16];
    int present;
    if ((error = target_hash(root_fd, f->path, h, &present, err)) < 0)
        return error;
    if (!present || memcmp(h, f->hash, 16) != 0)
        return pb_error_set(err, PB_ECORRUPT,
                            "cannot complete the apply: the staged file for %s is gone and the "
                            "target does not hold it (the rows are committed; re-run the sync, "
                            "or remove %s to give up)",
                            f->path, j->path);
    return 0;
}

/* The next batch of staged files not installed yet, after row `after`. */
static int load_batch(pb_journal *j, sqlite3_stmt *st, fwd_row *rows, int64_t after, int *nrows,
                      pb_error *err)
{
    int rc, error = 0;
    *nrows = 0;
    sqlite3_reset(st);
    sqlite3_bind_int(st, 1, PB_JF_STAGED);
    sqlite3_bind_int64(st, 2, after);
    sqlite3_bind_int(st, 3, PB_JOURNAL_BATCH);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        fwd_row *f = &rows[*nrows];
        const char *path = (const char *)sqlite3_column_text(st, 1);
        const char *stage = (const char *)sqlite3_column_text(st, 2);
        f->n = sqlite3_column_int64(st, 0);
        if (!path || !stage || sqlite3_column_bytes(st, 3) != 16 ||
            strlen(path) > PB_BUNDLE_PATH_MAX || strlen(stage) >= sizeof(f->stage) ||
            !strchr(path, '/')) {
            error = pb_error_set(err, PB_ECORRUPT, "apply journal: malformed file row %lld",
                                 (long long)f->n);
            break;
        }
        snprintf(f->path, sizeof(f->path), "%s", path);
        snprintf(f->stage, sizeof(f->stage), "%s", stage);
        memcpy(f->hash, sqlite3_column_blob(st, 3), 16);
        (*nrows)++;
    }
    sqlite3_reset(st);
    if (error < 0)
        return error;
    return rc != SQLITE_DONE ? pb_journal__sqlerr(j, rc, "read the staged files", err) : 0;
}

/* Marks a batch installed, in one commit. */
static int mark_done(pb_journal *j, sqlite3_stmt *upd, const fwd_row *rows, int nrows,
                     pb_error *err)
{
    int error, rc;
    if ((error = pb_journal__batch_begin(j, err)) < 0)
        return error;
    for (int i = 0; i < nrows; i++) {
        sqlite3_reset(upd);
        sqlite3_bind_int64(upd, 1, rows[i].n);
        if ((rc = sqlite3_step(upd)) != SQLITE_DONE) {
            sqlite3_reset(upd);
            return pb_journal__sqlerr(j, rc, "mark installed", err);
        }
    }
    sqlite3_reset(upd);
    return pb_journal__commit(j, err);
}

int pb_journal__forward(pb_journal *j, pb_recover_result *out, pb_error *err)
{
    int error = 0, root_fd = -1, rc, restored = 0;
    sqlite3_stmt *st = NULL, *upd = NULL;
    pb_journal_run r;
    fwd_row *rows = NULL;
    int64_t after = -1;

    if ((error = pb_journal__commit(j, err)) < 0 ||
        (error = pb_journal__load_run(j, &r, err)) < 0 || !r.have)
        return error;
    if ((error = open_root(j, &root_fd, err)) < 0)
        return error;
    if (!(rows = malloc(sizeof(*rows) * PB_JOURNAL_BATCH))) {
        error = pb_error_set(err, PB_ENOMEM, "apply journal: out of memory");
        goto done;
    }
    rc = sqlite3_prepare_v2(j->db,
                            "SELECT n, path, stage, hash FROM files WHERE kind = ?1 AND done != 1 "
                            "AND n > ?2 ORDER BY n LIMIT ?3",
                            -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(j->db, "UPDATE files SET done = 1 WHERE n = ?", -1, &upd, NULL);
    if (rc != SQLITE_OK) {
        error = pb_journal__sqlerr(j, rc, "read the staged files", err);
        goto done;
    }
    for (;;) {
        int nrows = 0;
        if ((error = load_batch(j, st, rows, after, &nrows, err)) < 0)
            goto done;
        if (!nrows)
            break;
        for (int i = 0; i < nrows; i++)
            if ((error = forward_one(j, root_fd, &rows[i], out, err)) < 0)
                goto done;
        if ((error = mark_done(j, upd, rows, nrows, err)) < 0)
            goto done;
        after = rows[nrows - 1].n;
    }
    if (syncfs(root_fd) != 0) {
        error = pb_error_errno(err, "syncfs on %s failed", j->plex_dir);
        goto done;
    }
    if ((error = pb_journal__set_state(j, PB_JST_INSTALLED, err)) < 0)
        goto done;
    if ((error = pb_journal__restore_modes(j, &restored, err)) < 0)
        goto done;
    out->modes_restored = restored;
    out->action = PB_RECOVER_ROLLED_FORWARD;
done:
    sqlite3_finalize(st);
    sqlite3_finalize(upd);
    free(rows);
    if (error < 0 && j->in_batch) {
        sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
        j->in_batch = 0;
    }
    if (root_fd >= 0)
        close(root_fd);
    return error;
}

/* Marks each row of the batch by what the pre-install did: 1 when its stage file is gone (it was
 * renamed, durably: the caller synced), else 0 (left for the install after the commit). */
static int preinstall_settle(pb_journal *j, int root_fd, sqlite3_stmt *upd, const fwd_row *rows,
                             int nrows, uint64_t *moved, pb_error *err)
{
    int error, rc;
    if ((error = pb_journal__batch_begin(j, err)) < 0)
        return error;
    for (int i = 0; i < nrows; i++) {
        int dfd = -1, gone = 0;
        const char *name;
        pb_error e = PB_ERROR_INIT;
        if (pb_fs_open_parent(&dfd, &name, root_fd, rows[i].path, NULL, NULL, &e) == 0) {
            struct stat sst;
            gone = fstatat(dfd, rows[i].stage, &sst, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT;
            close(dfd);
        }
        *moved += (uint64_t)gone;
        sqlite3_reset(upd);
        sqlite3_bind_int(upd, 1, gone);
        sqlite3_bind_int64(upd, 2, rows[i].n);
        if ((rc = sqlite3_step(upd)) != SQLITE_DONE) {
            sqlite3_reset(upd);
            return pb_journal__sqlerr(j, rc, "mark pre-installed", err);
        }
    }
    sqlite3_reset(upd);
    return pb_journal__commit(j, err);
}

int pb_journal__preinstall(pb_journal *j, uint64_t *moved, pb_error *err)
{
    int error = 0, root_fd = -1, rc;
    sqlite3_stmt *st = NULL, *upd = NULL;
    fwd_row *rows = NULL;
    int64_t after = -1;

    *moved = 0;
    if ((error = pb_journal__commit(j, err)) < 0)
        return error;
    if ((error = open_root(j, &root_fd, err)) < 0)
        return error;
    /* 1. every staged file may be renamed from now on: a rollback looks at its target */
    char *sql =
        sqlite3_mprintf("UPDATE files SET done = 2 WHERE kind = %d AND done = 0", PB_JF_STAGED);
    error = sql ? pb_journal__jexec(j, sql, "mark pre-installs", err)
                : pb_error_set(err, PB_ENOMEM, "apply journal: out of memory");
    sqlite3_free(sql);
    if (error < 0)
        goto done;
    pb_journal__crash_point("preinstall-begin");
    if (!(rows = malloc(sizeof(*rows) * PB_JOURNAL_BATCH))) {
        error = pb_error_set(err, PB_ENOMEM, "apply journal: out of memory");
        goto done;
    }
    rc = sqlite3_prepare_v2(j->db,
                            "SELECT n, path, stage, hash FROM files WHERE kind = ?1 AND done = 2 "
                            "AND n > ?2 ORDER BY n LIMIT ?3",
                            -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(j->db, "UPDATE files SET done = ?1 WHERE n = ?2", -1, &upd, NULL);
    if (rc != SQLITE_OK) {
        error = pb_journal__sqlerr(j, rc, "read the staged files", err);
        goto done;
    }
    /* 2. rename onto the targets: a new path directly (RENAME_NOREPLACE), an existing file after
     * a hard link keeps it under a backup name (renamed back by a rollback, removed at the end) */
    for (;;) {
        int nrows = 0;
        if ((error = load_batch(j, st, rows, after, &nrows, err)) < 0)
            goto done;
        if (!nrows)
            break;
        for (int i = 0; i < nrows; i++) {
            int dfd = -1;
            const char *name;
            pb_error e = PB_ERROR_INIT;
            if (pb_fs_open_parent(&dfd, &name, root_fd, rows[i].path, NULL, NULL, &e) != 0)
                continue;
            int ok = renameat2(dfd, rows[i].stage, dfd, name, RENAME_NOREPLACE) == 0;
            if (!ok && errno == EEXIST) {
                char bk[96];
                backup_name(bk, sizeof(bk), rows[i].stage);
                ok = (linkat(dfd, name, dfd, bk, 0) == 0 || errno == EEXIST) &&
                     renameat(dfd, rows[i].stage, dfd, name) == 0;
            }
            if (ok)
                pb_journal__crash_point("preinstall");
            close(dfd);
        }
        after = rows[nrows - 1].n;
    }
    /* 3. the renames durable, then each row settled: 1 renamed, 0 left for the install */
    if (syncfs(root_fd) != 0) {
        error = pb_error_errno(err, "syncfs on %s failed", j->plex_dir);
        goto done;
    }
    for (after = -1;;) {
        int nrows = 0;
        if ((error = load_batch(j, st, rows, after, &nrows, err)) < 0)
            goto done;
        if (!nrows)
            break;
        if ((error = preinstall_settle(j, root_fd, upd, rows, nrows, moved, err)) < 0)
            goto done;
        after = rows[nrows - 1].n;
    }
    pb_journal__crash_point("preinstalled");
done:
    sqlite3_finalize(st);
    sqlite3_finalize(upd);
    free(rows);
    if (error < 0 && j->in_batch) {
        sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
        j->in_batch = 0;
    }
    if (root_fd >= 0)
        close(root_fd);
    return error;
}

/* Whether the live file at `path` is still the one recorded in the swap table as k. */
static int same_live(pb_journal *j, int k, const char *path, int *same, pb_error *err)
{
    sqlite3_stmt *st = NULL;
    struct stat s;
    int rc = sqlite3_prepare_v2(j->db, "SELECT ino, size, mtime_ns FROM swap WHERE k = ?", -1, &st,
                                NULL);
    *same = 0;
    if (rc == SQLITE_OK && (rc = sqlite3_bind_int(st, 1, k)) == SQLITE_OK &&
        (rc = sqlite3_step(st)) == SQLITE_ROW) {
        *same = lstat(path, &s) == 0 && (int64_t)s.st_ino == sqlite3_column_int64(st, 0) &&
                (int64_t)s.st_size == sqlite3_column_int64(st, 1) &&
                (int64_t)s.st_mtim.tv_sec * 1000000000 + s.st_mtim.tv_nsec ==
                    sqlite3_column_int64(st, 2);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : pb_journal__sqlerr(j, rc, "read the swap", err);
}

int pb_journal__swap_forward(pb_journal *j, int *committed, pb_error *err)
{
    pb_journal_run r;
    char live[2][PATH_MAX + 80], copy[2][PATH_MAX + 160], wal[PATH_MAX + 96];
    int error, same;

    *committed = 0;
    if ((error = pb_journal__load_run(j, &r, err)) < 0 || !r.have)
        return error;
    pb_journal__live_paths(r.plex_dir, live[0], live[1], sizeof(live[0]));
    for (int k = 0; k < 2; k++)
        pb_journal__copy_path(copy[k], sizeof(copy[k]), live[k], r.run_id, k);
    if (pb_fs_exists(copy[0])) {
        /* main not swapped yet: only onto the very file left at the swap, with no WAL beside */
        snprintf(wal, sizeof(wal), "%s-wal", live[0]);
        if ((error = same_live(j, 0, live[0], &same, err)) < 0)
            return error;
        if (!same || pb_fs_exists(wal))
            return 0;
        if (rename(copy[0], live[0]) != 0)
            return pb_error_errno(err, "cannot rename %s onto %s", copy[0], live[0]);
    }
    if (pb_fs_exists(copy[1]) && rename(copy[1], live[1]) != 0)
        return pb_error_errno(err, "cannot rename %s onto %s", copy[1], live[1]);
    char *slash = strrchr(live[0], '/');
    if (slash)
        *slash = '\0';
    pb_fs_sync_dir(live[0]);
    *committed = 1;
    return 0;
}

int pb_journal__finish(pb_journal *j, pb_error *err)
{
    pb_journal_run r;
    int error;
    if ((error = pb_journal__commit(j, err)) < 0 ||
        (error = pb_journal__load_run(j, &r, err)) < 0 || !r.have)
        return error;
    pb_journal__crash_point("finish");
    /* what the run replaced (backup links) and any stage file left: no longer needed */
    int root_fd = -1;
    pb_recover_result swept;
    memset(&swept, 0, sizeof(swept));
    if ((error = open_root(j, &root_fd, err)) < 0)
        return error;
    error = sweep_stagedirs(j, root_fd, r.run_id, &swept, err);
    close(root_fd);
    if (error < 0)
        return error;
    pb_baseline b;
    memset(&b, 0, sizeof(b));
    memcpy(b.main, r.target_main, 16);
    memcpy(b.blobs, r.target_blobs, 16);
    b.has_blobs = r.has_blobs;
    if ((error = pb_baseline_write(j->state_dir, &b, err)) < 0)
        return error;
    if ((error =
             pb_journal__jexec(j,
                               "BEGIN IMMEDIATE; DELETE FROM files; DELETE FROM dirs; "
                               "DELETE FROM stagedirs; DELETE FROM swap; DELETE FROM run; COMMIT;",
                               "clear the run", err)) < 0) {
        if (!sqlite3_get_autocommit(j->db))
            sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
        return error;
    }
    unlink(j->probes);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* recovery                                                                                  */

int pb_journal__recover(pb_journal *j, pb_recover_result *out, pb_error *err)
{
    pb_journal_run r;
    int error, committed = 0;

    if ((error = pb_journal__load_run(j, &r, err)) < 0)
        return error;
    if (!r.have)
        return 0;
    snprintf(out->run_id, sizeof(out->run_id), "%s", r.run_id);
    snprintf(out->state, sizeof(out->state), "%s", r.state);
    out->plex_stopped = r.plex_stopped;
    if (strcmp(r.plex_dir, j->plex_dir) != 0)
        return pb_error_set(err, PB_EINVALID, "the apply journal in %s belongs to %s, not %s",
                            j->state_dir, r.plex_dir, j->plex_dir);
    if (strcmp(r.state, PB_JST_STAGING) == 0 || strcmp(r.state, PB_JST_STAGED) == 0) {
        committed = 0;
    } else if (strcmp(r.state, PB_JST_MERGING) == 0) {
        if ((error = pb_journal__run_marker(j, r.run_id, &committed, err)) < 0)
            return error;
        if (!committed && r.online &&
            (error = pb_probes__decide(j->probes, r.plex_dir, r.has_blobs, r.run_id, j->path,
                                       &committed, err)) < 0)
            return error;
    } else if (strcmp(r.state, PB_JST_SWAPPING) == 0) {
        if ((error = pb_journal__swap_forward(j, &committed, err)) < 0)
            return error;
    } else if (strcmp(r.state, PB_JST_MERGED) == 0 || strcmp(r.state, PB_JST_INSTALLED) == 0) {
        committed = 1;
    } else {
        return pb_error_set(err, PB_ECORRUPT, "apply journal %s: unknown state '%s'", j->path,
                            r.state);
    }
    if (committed) {
        if ((error = pb_journal__forward(j, out, err)) < 0 ||
            (error = pb_journal__finish(j, err)) < 0)
            return error;
    } else if ((error = pb_journal__rollback(j, out, err)) < 0) {
        return error;
    }
    snprintf(out->detail, sizeof(out->detail),
             "run %s interrupted in state %s: rows %s, %s (%llu files installed, %llu removed, "
             "%llu dirs removed)",
             r.run_id, r.state, committed ? "committed" : "not committed",
             committed ? "rolled forward" : "rolled back", (unsigned long long)out->files_installed,
             (unsigned long long)out->files_removed, (unsigned long long)out->dirs_removed);
    return 0;
}

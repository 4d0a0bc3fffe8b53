/*
 * backup.c: backups of the live Plex DB pair with SQLite's online backup API, and their rotation
 * (see backup.h).
 * Role: taken right before the merge writes, so that the state before any plexburst write can be
 * restored. The backup API copies a consistent snapshot even while Plex runs; the copy's writes
 * are gathered into runs (seqwrite.h).
 * Prerequisites: a writable backup directory; nothing Plex-specific beyond file names.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>

#include "backup.h"
#include "fs.h"
#include "seqwrite.h"

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Removes the regular files of `dir` and the directory itself (best effort). */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[4096 + 256];
    if (d) {
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

int pb_backup_db_copy(sqlite3 *dst, sqlite3 *src, const char *what, pb_error *err)
{
    sqlite3_backup *b = NULL;
    int rc, error = 0, in_txn = 0;
    /* One read transaction on the source for the whole copy, and the copy in one step: a step
     * of N pages ends the read transaction, and a write committed before the next step (Plex
     * writes while it runs) restarts the backup from page 1, possibly forever on a busy library.
     * Held across the copy, the read transaction sees one state: in WAL mode Plex's writers go
     * on (they append to the WAL, and no checkpoint rewrites a page this reader still needs);
     * in rollback mode they wait for the copy (their busy timeout), as for any reader. */
    for (;;) {
        rc = sqlite3_exec(src, "BEGIN; SELECT count(*) FROM main.sqlite_schema", NULL, NULL, NULL);
        if (rc == SQLITE_OK) {
            in_txn = 1;
            break;
        }
        if (!sqlite3_get_autocommit(src))
            sqlite3_exec(src, "ROLLBACK", NULL, NULL, NULL);
        if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED) {
            error = pb_error_setd(err, PB_ESQLITE, rc, "%s: cannot read the source: %s", what,
                                  sqlite3_errstr(rc));
            goto done;
        }
        sqlite3_sleep(50); /* a writer holds the file (rollback mode): its commit ends soon */
    }
    if (!(b = sqlite3_backup_init(dst, "main", src, "main"))) {
        error = pb_error_setd(err, PB_ESQLITE, sqlite3_extended_errcode(dst), "%s: %s", what,
                              sqlite3_errmsg(dst));
        goto done;
    }
    do {
        rc = sqlite3_backup_step(b, -1);
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
            sqlite3_sleep(50); /* the destination is busy: no page was copied yet */
    } while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
    sqlite3_backup_finish(b);
    b = NULL;
    if (rc != SQLITE_DONE) {
        error = pb_error_setd(err, PB_ESQLITE, rc, "%s: %s", what, sqlite3_errstr(rc));
        goto done;
    }
    sqlite3_exec(src, "COMMIT", NULL, NULL, NULL);
    in_txn = 0;
    if ((rc = sqlite3_exec(dst, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL)) != SQLITE_OK)
        error =
            pb_error_setd(err, PB_ESQLITE, rc, "%s: journal mode: %s", what, sqlite3_errmsg(dst));
done:
    if (b)
        sqlite3_backup_finish(b);
    if (in_txn && !sqlite3_get_autocommit(src))
        sqlite3_exec(src, "ROLLBACK", NULL, NULL, NULL);
    return error;
}

/* One DB file copied with the backup API. */
static int copy_db(const char *src_path, const char *dst_path, pb_error *err)
{
    int error = 0, rc;
    sqlite3 *src = NULL, *dst = NULL;
    char what[PATH_MAX + 32];

    rc = sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_open_v2(dst_path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                             pb_seqwrite_vfs());
    if (rc != SQLITE_OK) {
        error = pb_error_setd(err, PB_ESQLITE, rc, "backup: cannot open %s: %s",
                              dst ? dst_path : src_path, sqlite3_errstr(rc));
        goto done;
    }
    sqlite3_busy_timeout(src, 30000);
    sqlite3_busy_timeout(dst, 30000);
    snprintf(what, sizeof(what), "backup: cannot copy %s", src_path);
    error = pb_backup_db_copy(dst, src, what, err);
done:
    sqlite3_close(dst);
    sqlite3_close(src);
    return error;
}

/* YYYYMMDDTHHMMSSZ, optionally followed by -N. */
static int is_backup_name(const char *s)
{
    static const char shape[] = "dddddddd.dddddd.";
    for (int i = 0; shape[i]; i++) {
        char c = s[i];
        if (shape[i] == 'd' ? (c < '0' || c > '9') : c != (i == 8 ? 'T' : 'Z'))
            return 0;
    }
    s += 16;
    if (!*s)
        return 1;
    if (*s++ != '-' || !*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

static int cmp_names(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    size_t lx = strlen(x), ly = strlen(y);
    int c = strncmp(x, y, 16);
    if (c)
        return c;
    /* "T" < "T-2" < "T-10" */
    if (lx != ly)
        return lx < ly ? -1 : 1;
    return strcmp(x, y);
}

static int rotate(const char *dir, int keep, unsigned *removed, pb_error *err)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int error = 0;

    if (!d)
        return pb_error_errno(err, "backup: cannot list %s", dir);
    while ((e = readdir(d)) != NULL) {
        if (!is_backup_name(e->d_name))
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **nn = realloc(names, ncap * sizeof(*nn));
            if (!nn) {
                error = pb_error_set(err, PB_ENOMEM, "backup: out of memory");
                goto done;
            }
            names = nn;
            cap = ncap;
        }
        if (!(names[n] = strdup(e->d_name))) {
            error = pb_error_set(err, PB_ENOMEM, "backup: out of memory");
            goto done;
        }
        n++;
    }
    qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; keep >= 0 && n > (size_t)keep && i < n - (size_t)keep; i++) {
        char path[4096 + 64];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        remove_dir(path);
        if (removed)
            (*removed)++;
    }
done:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return error;
}

/* 1 + the largest suffix among the backups named `stamp` or `stamp-N` in `dir` (1 when none). */
static int next_suffix(const char *dir, const char *stamp)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int max = 0;
    size_t sl = strlen(stamp);
    if (!d)
        return 1;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, stamp, sl) != 0 || !is_backup_name(e->d_name))
            continue;
        int n = e->d_name[sl] == '-' ? atoi(e->d_name + sl + 1) : 1;
        if (n > max)
            max = n;
    }
    closedir(d);
    return max + 1;
}

int pb_plex_backup(char *made, size_t cap, unsigned *removed, const char *dir, const char *live,
                   const char *blobs_live, int keep, pb_error *err)
{
    int error = 0;
    char path[4096], file[4096 + 256];
    char stamp[32];
    struct tm tm;
    time_t now = time(NULL);

    if (removed)
        *removed = 0;
    if (made && cap)
        made[0] = '\0';
    if (!dir || !live)
        return pb_error_set(err, PB_EINVALID, "backup: no directory or DB");
    /* the backup takes the owner and modes of the data dir and the live DBs */
    if ((error = pb_fs_mkdirs_inherit(dir, err)) != 0)
        return error;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    /* a name after every backup of this second, even removed ones' successors */
    int next = next_suffix(dir, stamp);
    for (int i = next;; i++) {
        int n = i == 1 ? snprintf(path, sizeof(path), "%s/%s", dir, stamp)
                       : snprintf(path, sizeof(path), "%s/%s-%d", dir, stamp, i);
        if (n < 0 || (size_t)n >= sizeof(path))
            return pb_error_set(err, PB_EINVALID, "backup: path too long: %.200s", dir);
        if (mkdir(path, 0700) == 0)
            break;
        if (errno != EEXIST || i > next + 1000)
            return pb_error_errno(err, "backup: cannot create %s", path);
    }
    if ((error = pb_fs_inherit(path, NULL, err)) != 0)
        goto done;
    snprintf(file, sizeof(file), "%s/%s", path, base_name(live));
    if ((error = copy_db(live, file, err)) != 0 || (error = pb_fs_inherit(file, live, err)) != 0)
        goto done;
    if (blobs_live) {
        snprintf(file, sizeof(file), "%s/%s", path, base_name(blobs_live));
        if ((error = copy_db(blobs_live, file, err)) != 0 ||
            (error = pb_fs_inherit(file, blobs_live, err)) != 0)
            goto done;
    }
    if (made && cap)
        snprintf(made, cap, "%s", path);
    error = rotate(dir, keep, removed, err);
done:
    if (error && made && !made[0])
        remove_dir(path);
    return error;
}

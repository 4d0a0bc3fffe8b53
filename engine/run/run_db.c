/*
 * run_db.c: DB and file helpers of the runs (run_int.h): snapshots with the online backup API,
 * baseline ids, row changesets to files, exact changeset application (the generic 3-way merge
 * with the live side equal to the base, so tables without a primary key work too), path
 * rewriting of the Plex path columns, run ids, zstd files, atomic JSON files.
 * Role: shared by the home side (run.c and its phases) and the agent (agent*.c).
 * Prerequisites: SQLite with the compatibility layer, sqldiff's diff/checksum and merge, the
 * path map, zstd streams, base/fs.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>

#include "plexburst/compat.h"
#include "plexburst/merge.h"
#include "plexburst/sqldiff.h"
#include "backup.h"
#include "fs.h"
#include "run_int.h"
#include "seqwrite.h"
#include "zstream.h"

void pb_run__new_id(char out[40])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    unsigned short r = 0;
    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
        r = (unsigned short)(getpid() ^ t);
    snprintf(out, 40, "%04d%02d%02d-%02d%02d%02d-%04x", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, r);
}

void pb_run__id_hex(char out[33], const pb_baseline *b)
{
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", b->main[i]);
    for (int i = 0; i < 8; i++)
        snprintf(out + 16 + 2 * i, 3, "%02x", b->has_blobs ? b->blobs[i] : 0);
}

#define ZSTD_WINDOW_LOG_CAP 20

/* Compresses (level > 0) or decompresses (level 0) `src` into `dst`, replaced atomically. */
static int zstd_file(const char *src, const char *dst, int level, uint64_t *out_bytes,
                     pb_error *err)
{
    int error = 0;
    pb_fs_atomic a = {-1, NULL, NULL};
    FILE *in = NULL, *out = NULL;
    if (!(in = fopen(src, "rb")))
        return pb_error_errno(err, "cannot open %s", src);
    if ((error = pb_fs_atomic_open(&a, dst, 0600, err)) < 0)
        goto done;
    int fd = dup(a.fd);
    if (fd < 0 || !(out = fdopen(fd, "wb"))) {
        if (fd >= 0)
            close(fd);
        error = pb_error_errno(err, "cannot write %s", dst);
        goto done;
    }
    if (level) {
        /* the input size pledged and, from level 10 on, the window capped at 1 MiB: zstd sizes
         * its match tables to them (about 18 MB at level 19 instead of ~85 MB unpledged) */
        struct stat st;
        pb_zstd_params zp = {level, 0, level >= 10 ? ZSTD_WINDOW_LOG_CAP : 0, 0, 0};
        if (fstat(fileno(in), &st) == 0 && S_ISREG(st.st_mode)) {
            zp.size_known = 1;
            zp.size = (uint64_t)st.st_size;
        }
        error = pb_zstd_compress_stream_ex(in, out, &zp, NULL, out_bytes, err);
    } else {
        error = pb_zstd_decompress_stream(in, out, 0, NULL, err);
    }
    if (error < 0)
        goto done;
    if (fflush(out) != 0) {
        error = pb_error_errno(err, "cannot write %s", dst);
        goto done;
    }
    error = pb_fs_atomic_commit(&a, err);
done:
    if (in)
        fclose(in);
    if (out)
        fclose(out);
    if (error)
        pb_fs_atomic_abort(&a);
    return error;
}

int pb_run__zstd(const char *src, const char *dst, int level, uint64_t *out_bytes, pb_error *err)
{
    return zstd_file(src, dst, level > 0 ? level : 3, out_bytes, err);
}

int pb_run__unzstd(const char *src, const char *dst, pb_error *err)
{
    return zstd_file(src, dst, 0, NULL, err);
}

int pb_run__write_json(const char *path, const json_t *obj, pb_error *err)
{
    char *s = json_dumps(obj, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (!s)
        return pb_error_set(err, PB_ENOMEM, "out of memory");
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return pb_error_set(err, PB_ENOMEM, "out of memory");
    }
    memcpy(t + n, "\n", 2);
    int error = pb_fs_write_file(path, t, n + 1, 0600, err);
    free(t);
    return error;
}

int pb_run__read_json(json_t **out, const char *path, pb_error *err)
{
    json_error_t je;
    *out = NULL;
    if (!pb_fs_exists(path))
        return pb_error_set(err, PB_ENOTFOUND, "no file %s", path);
    json_t *o = json_load_file(path, 0, &je);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return pb_error_set(err, PB_ECORRUPT, "%s: not a JSON object (%s)", path, je.text);
    }
    *out = o;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* DBs                                                                                        */

static int sqlfail(sqlite3 *db, int rc, const char *what, pb_error *err)
{
    return pb_error_setd(err, PB_ESQLITE, rc, "%s: %s", what, db ? sqlite3_errmsg(db) : "");
}

int pb_run__snapshot(const char *src, const char *dst, pb_error *err)
{
    int error = 0, rc;
    sqlite3 *s = NULL, *d = NULL;
    char tmp[4300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
    unlink(tmp);
    if ((error = pb_compat_open(&s, src, PB_OPEN_READONLY, err)) < 0)
        goto done;
    /* a new private file, renamed into place only once whole and synced: no journal and no sync
     * per step while it is written */
    if ((rc = sqlite3_open_v2(tmp, &d, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                              pb_seqwrite_vfs())) != SQLITE_OK ||
        (rc = sqlite3_exec(d, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF", NULL, NULL,
                           NULL)) != SQLITE_OK) {
        error = sqlfail(d, rc, "snapshot: cannot create the copy", err);
        goto done;
    }
    if ((error = pb_backup_db_copy(d, s, "snapshot: backup", err)) < 0)
        goto done;
    sqlite3_close(d);
    d = NULL;
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fdatasync(fd) != 0) {
        error = pb_error_errno(err, "snapshot: cannot sync %s", tmp);
        if (fd >= 0)
            close(fd);
        goto done;
    }
    close(fd);
    if (rename(tmp, dst) != 0)
        error = pb_error_errno(err, "snapshot: cannot rename %s", tmp);
done:
    sqlite3_close(d);
    sqlite3_close(s);
    if (error)
        unlink(tmp);
    return error;
}

int pb_run__ids(pb_baseline *out, const char *main_db, const char *blobs_db, pb_error *err)
{
    return pb_baseline_compute(out, main_db, blobs_db, err);
}

void pb_run__schema_version(const char *db, char *out, size_t cap)
{
    sqlite3 *c = NULL;
    sqlite3_stmt *st = NULL;
    pb_error e = PB_ERROR_INIT;
    out[0] = '\0';
    if (pb_compat_open(&c, db, PB_OPEN_READONLY, &e) < 0)
        return;
    if (sqlite3_prepare_v2(c, "SELECT max(version) FROM schema_migrations", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(c);
}

static int not_same(const char *table, void *payload)
{
    return !pb_sums_same(payload, table);
}

int pb_run__diff(uint64_t *bytes, uint64_t *records, const char *base, const char *target,
                 const pb_sums *same, const char *out_path, pb_error *err)
{
    pb_diff_stats st;
    FILE *f = fopen(out_path, "wb");
    if (!f)
        return pb_error_errno(err, "cannot create %s", out_path);
    pb_diff_options dopts = PB_DIFF_OPTIONS_INIT;
    dopts.open = pb_compat_open_reader;
    if (same && same->n) {
        dopts.include = not_same;
        dopts.include_payload = (void *)same;
    }
    int error = pb_sqldiff_diff(&st, base, target, &dopts, pb_sqldiff_write_file, f, err);
    if (fclose(f) != 0 && !error)
        error = pb_error_errno(err, "cannot write %s", out_path);
    if (error)
        unlink(out_path);
    if (bytes)
        *bytes = st.bytes;
    if (records)
        *records = st.inserted + st.updated + st.deleted;
    return error;
}

static int all_library(const char *schema, const char *table, void *payload)
{
    (void)schema;
    (void)table;
    (void)payload;
    return PB_CLASS_LIBRARY;
}

int pb_run__apply_changeset(const char *db, const char *cs_path, pb_error *err)
{
    sqlite3 *c = NULL;
    int error;
    if (pb_fs_size(cs_path) == 0)
        return 0;
    if ((error = pb_compat_open(&c, db, 0, err)) < 0)
        return error;
    pb_merge_policy pol;
    memset(&pol, 0, sizeof(pol));
    pol.version = PB_MERGE_POLICY_VERSION;
    pol.table_class = all_library;
    pb_merge_input in = {"main", cs_path};
    pb_merge_options mo = PB_MERGE_OPTIONS_INIT;
    pb_merge_stats *st = calloc(1, sizeof(*st));
    if (!st) {
        sqlite3_close(c);
        return pb_error_set(err, PB_ENOMEM, "out of memory");
    }
    error = pb_merge_apply(c, &in, 1, &pol, &mo, st, err);
    if (!error && (st->total.conflicts || st->total.remapped || st->total.notfound))
        error = pb_error_set(err, PB_ECONFLICT,
                             "the changeset does not fit %s exactly (%llu conflicts, %llu "
                             "renumbered, %llu rows missing)",
                             db, (unsigned long long)st->total.conflicts,
                             (unsigned long long)st->total.remapped,
                             (unsigned long long)st->total.notfound);
    free(st);
    sqlite3_close(c);
    return error;
}

typedef struct map_ctx {
    const pb_pathmap *pm;
} map_ctx;

/* SQL function pb_map_path(value, kind): the mapped value, or the value itself. */
static void map_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    map_ctx *m = sqlite3_user_data(ctx);
    if (sqlite3_value_type(argv[0]) != SQLITE_TEXT) {
        sqlite3_result_value(ctx, argv[0]);
        return;
    }
    const char *in = (const char *)sqlite3_value_text(argv[0]);
    size_t n = (size_t)sqlite3_value_bytes(argv[0]);
    char *out = NULL;
    size_t on = 0;
    int rc = pb_pathmap_map(m->pm, sqlite3_value_int(argv[1]), in, n, &out, &on);
    if (rc < 0) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    if (rc == 0) {
        sqlite3_result_value(ctx, argv[0]);
        return;
    }
    sqlite3_result_text(ctx, out, (int)on, free);
}

int pb_run__map_paths(const char *db, const pb_pathmap *pm, uint64_t *changed, pb_error *err)
{
    int error = 0, rc;
    sqlite3 *c = NULL;
    sqlite3_stmt *tabs = NULL;
    map_ctx m = {pm};
    if (changed)
        *changed = 0;
    if (!pm || pb_pathmap_count(pm) == 0)
        return 0;
    if ((error = pb_compat_open(&c, db, 0, err)) < 0)
        return error;
    if ((rc = sqlite3_create_function(c, "pb_map_path", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, &m,
                                      map_fn, NULL, NULL)) != SQLITE_OK) {
        error = sqlfail(c, rc, "path mapping", err);
        goto done;
    }
    if ((rc = sqlite3_exec(c, "BEGIN IMMEDIATE", NULL, NULL, NULL)) != SQLITE_OK) {
        error = sqlfail(c, rc, "path mapping", err);
        goto done;
    }
    if ((rc = sqlite3_prepare_v2(c,
                                 "SELECT m.name, p.name FROM sqlite_master m, "
                                 "pragma_table_info(m.name) p WHERE m.type = 'table'",
                                 -1, &tabs, NULL)) != SQLITE_OK) {
        error = sqlfail(c, rc, "path mapping", err);
        goto done;
    }
    while ((rc = sqlite3_step(tabs)) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(tabs, 0);
        const char *col = (const char *)sqlite3_column_text(tabs, 1);
        int kind = pb_pathmap_kind(t, col);
        if (kind == PB_PATH_NONE)
            continue;
        char *sql = sqlite3_mprintf("UPDATE \"%w\" SET \"%w\" = pb_map_path(\"%w\", %d) "
                                    "WHERE \"%w\" IS NOT pb_map_path(\"%w\", %d)",
                                    t, col, col, kind, col, col, kind);
        if (!sql) {
            error = pb_error_set(err, PB_ENOMEM, "out of memory");
            goto done;
        }
        rc = sqlite3_exec(c, sql, NULL, NULL, NULL);
        sqlite3_free(sql);
        if (rc != SQLITE_OK) {
            error = sqlfail(c, rc, "path mapping", err);
            goto done;
        }
        if (changed)
            *changed += (uint64_t)sqlite3_changes(c);
    }
    if (rc != SQLITE_DONE) {
        error = sqlfail(c, rc, "path mapping", err);
        goto done;
    }
    sqlite3_finalize(tabs);
    tabs = NULL;
    if ((rc = sqlite3_exec(c, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK)
        error = sqlfail(c, rc, "path mapping", err);
done:
    sqlite3_finalize(tabs);
    if (error && c && !sqlite3_get_autocommit(c))
        sqlite3_exec(c, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(c);
    return error;
}

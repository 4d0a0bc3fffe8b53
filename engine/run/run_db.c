/*
 * run_db.c: DB and file helpers of the runs (engine/run_int.h): snapshots with the online backup
 * API, baseline ids, row changesets to files, exact changeset application (the generic 3-way
 * merge with the live side equal to the base, so tables without a primary key work too), path
 * rewriting of the Plex path columns, zstd files, atomic JSON files.
 * Role: shared by the home side (run_sync.c) and the agent (agent.c).
 * Prerequisites: SQLite with the compatibility layer, H3's diff/checksum, H4's merge, H5's path
 * mapping, zstd streams.
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
#include "run_int.h"
#include "zstream.h"

double pb_run__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

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

void pb_run__hex16(char out[33], const uint8_t d[16])
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

int pb_run__unhex16(uint8_t out[16], const char *hex)
{
    if (!hex || strlen(hex) != 32)
        return PB_EINVALID;
    for (int i = 0; i < 16; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return PB_EINVALID;
        out[i] = (uint8_t)v;
    }
    return 0;
}

void pb_run__id_hex(char out[33], const pb_baseline *b)
{
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", b->main[i]);
    for (int i = 0; i < 8; i++)
        snprintf(out + 16 + 2 * i, 3, "%02x", b->has_blobs ? b->blobs[i] : 0);
}

int pb_run__exists(const char *path)
{
    struct stat st;
    return path && lstat(path, &st) == 0;
}

uint64_t pb_run__fsize(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

int pb_run__mkdirs(const char *path, pb_error *err)
{
    char buf[4200];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return pb_error_set(err, PB_EINVALID, "path too long: %s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0700) != 0 && errno != EEXIST)
                return pb_error_errno(err, "cannot create %s", buf);
            *p = c;
            if (!c)
                break;
        }
    }
    return 0;
}

static int rm_at(int dfd, const char *name)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(dfd, name, 0);
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -1;
    }
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (rm_at(dirfd(d), e->d_name) != 0)
            rc = -1;
    }
    closedir(d);
    if (unlinkat(dfd, name, AT_REMOVEDIR) != 0)
        rc = -1;
    return rc;
}

int pb_run__rmtree(const char *path)
{
    return rm_at(AT_FDCWD, path);
}

int pb_run__copy(const char *src, const char *dst, pb_error *err)
{
    int error = 0, in = -1, out = -1;
    char *buf = NULL;
    char tmp[4300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
    if ((in = open(src, O_RDONLY | O_CLOEXEC)) < 0)
        return pb_error_errno(err, "cannot open %s", src);
    if ((out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
        error = pb_error_errno(err, "cannot create %s", tmp);
        goto done;
    }
    if (!(buf = malloc(1 << 20))) {
        error = pb_error_set(err, PB_ENOMEM, "out of memory");
        goto done;
    }
    for (;;) {
        ssize_t n = read(in, buf, 1 << 20);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            error = pb_error_errno(err, "cannot read %s", src);
            goto done;
        }
        if (n == 0)
            break;
        for (ssize_t o = 0; o < n;) {
            ssize_t w = write(out, buf + o, (size_t)(n - o));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                error = pb_error_errno(err, "cannot write %s", tmp);
                goto done;
            }
            o += w;
        }
    }
    if (fsync(out) != 0) {
        error = pb_error_errno(err, "fsync %s", tmp);
        goto done;
    }
    close(out);
    out = -1;
    if (rename(tmp, dst) != 0)
        error = pb_error_errno(err, "cannot rename %s", tmp);
done:
    free(buf);
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    if (error)
        unlink(tmp);
    return error;
}

int pb_run__zstd(const char *src, const char *dst, int level, uint64_t *out_bytes, pb_error *err)
{
    int error = 0;
    char tmp[4300];
    FILE *in = NULL, *out = NULL;
    snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
    if (!(in = fopen(src, "rb")))
        return pb_error_errno(err, "cannot open %s", src);
    if (!(out = fopen(tmp, "wb"))) {
        error = pb_error_errno(err, "cannot create %s", tmp);
        goto done;
    }
    if ((error = pb_zstd_compress_stream(in, out, level, 0, NULL, out_bytes, err)) < 0)
        goto done;
    if (fflush(out) != 0 || fsync(fileno(out)) != 0) {
        error = pb_error_errno(err, "cannot write %s", tmp);
        goto done;
    }
    fclose(out);
    out = NULL;
    if (rename(tmp, dst) != 0)
        error = pb_error_errno(err, "cannot rename %s", tmp);
done:
    if (in)
        fclose(in);
    if (out)
        fclose(out);
    if (error)
        unlink(tmp);
    return error;
}

int pb_run__unzstd(const char *src, const char *dst, pb_error *err)
{
    int error = 0;
    char tmp[4300];
    FILE *in = NULL, *out = NULL;
    snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
    if (!(in = fopen(src, "rb")))
        return pb_error_errno(err, "cannot open %s", src);
    if (!(out = fopen(tmp, "wb"))) {
        error = pb_error_errno(err, "cannot create %s", tmp);
        goto done;
    }
    if ((error = pb_zstd_decompress_stream(in, out, 0, NULL, err)) < 0)
        goto done;
    if (fflush(out) != 0) {
        error = pb_error_errno(err, "cannot write %s", tmp);
        goto done;
    }
    fclose(out);
    out = NULL;
    if (rename(tmp, dst) != 0)
        error = pb_error_errno(err, "cannot rename %s", tmp);
done:
    if (in)
        fclose(in);
    if (out)
        fclose(out);
    if (error)
        unlink(tmp);
    return error;
}

int pb_run__write_json(const char *path, const json_t *obj, pb_error *err)
{
    char tmp[4300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    char *s = json_dumps(obj, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (!s)
        return pb_error_set(err, PB_ENOMEM, "out of memory");
    int error = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        error = pb_error_errno(err, "cannot create %s", tmp);
        goto done;
    }
    size_t n = strlen(s);
    if (write(fd, s, n) != (ssize_t)n || write(fd, "\n", 1) != 1 || fsync(fd) != 0) {
        error = pb_error_errno(err, "cannot write %s", tmp);
        close(fd);
        unlink(tmp);
        goto done;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        error = pb_error_errno(err, "cannot rename %s", tmp);
        unlink(tmp);
    }
done:
    free(s);
    return error;
}

int pb_run__read_json(json_t **out, const char *path, pb_error *err)
{
    json_error_t je;
    *out = NULL;
    if (!pb_run__exists(path))
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
    sqlite3_backup *b = NULL;
    char tmp[4300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
    unlink(tmp);
    if ((error = pb_compat_open(&s, src, PB_OPEN_READONLY, err)) < 0)
        goto done;
    if ((rc = sqlite3_open_v2(tmp, &d, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL)) !=
        SQLITE_OK) {
        error = sqlfail(d, rc, "snapshot: cannot create the copy", err);
        goto done;
    }
    if (!(b = sqlite3_backup_init(d, "main", s, "main"))) {
        error = sqlfail(d, sqlite3_errcode(d), "snapshot: backup", err);
        goto done;
    }
    do {
        rc = sqlite3_backup_step(b, 4096);
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
            sqlite3_sleep(50);
    } while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
    sqlite3_backup_finish(b);
    b = NULL;
    if (rc != SQLITE_DONE) {
        error = sqlfail(d, rc, "snapshot: backup", err);
        goto done;
    }
    if ((rc = sqlite3_exec(d, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL)) != SQLITE_OK) {
        error = sqlfail(d, rc, "snapshot: journal mode", err);
        goto done;
    }
    sqlite3_close(d);
    d = NULL;
    if (rename(tmp, dst) != 0)
        error = pb_error_errno(err, "snapshot: cannot rename %s", tmp);
done:
    if (b)
        sqlite3_backup_finish(b);
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

int pb_run__diff(uint64_t *bytes, uint64_t *records, const char *base, const char *target,
                 const char *out_path, pb_error *err)
{
    pb_diff_stats st;
    FILE *f = fopen(out_path, "wb");
    if (!f)
        return pb_error_errno(err, "cannot create %s", out_path);
    pb_diff_options dopts = PB_DIFF_OPTIONS_INIT;
    dopts.open = pb_compat_open_reader;
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
    if (pb_run__fsize(cs_path) == 0)
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

/* The columns of `table` present in both schemas, comma-separated and quoted, without `skip`. */
static int common_columns(sqlite3 *c, const char *table, const char *skip, char *out, size_t cap)
{
    sqlite3_stmt *st = NULL;
    size_t n = 0;
    out[0] = '\0';
    char *sql = sqlite3_mprintf("SELECT a.name FROM pragma_table_info(%Q, 'main') a "
                                "JOIN pragma_table_info(%Q, 'old') b USING (name) ORDER BY a.cid",
                                table, table);
    if (!sql)
        return -1;
    int rc = sqlite3_prepare_v2(c, sql, -1, &st, NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK)
        return -1;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (skip && strcmp(name, skip) == 0)
            continue;
        int w = snprintf(out + n, cap - n, "%s\"%s\"", n ? ", " : "", name);
        if (w < 0 || (size_t)w >= cap - n) {
            sqlite3_finalize(st);
            return -1;
        }
        n += (size_t)w;
    }
    sqlite3_finalize(st);
    return n ? 0 : 1;
}

int pb_run__carry_user_state(const char *new_db, const char *old_db, uint64_t counts[3],
                             pb_error *err)
{
    int error = 0, rc;
    sqlite3 *c = NULL;
    char cols[8192], *sql = NULL;
    counts[0] = counts[1] = counts[2] = 0;
    if ((error = pb_compat_open(&c, new_db, 0, err)) < 0)
        return error;
    sql = sqlite3_mprintf("ATTACH %Q AS old", old_db);
    rc = sql ? sqlite3_exec(c, sql, NULL, NULL, NULL) : SQLITE_NOMEM;
    sqlite3_free(sql);
    if (rc != SQLITE_OK ||
        (rc = sqlite3_exec(c, "BEGIN IMMEDIATE", NULL, NULL, NULL)) != SQLITE_OK) {
        error = sqlfail(c, rc, "carry user state", err);
        goto done;
    }
    /* accounts: the home's accounts, by id */
    if (common_columns(c, "accounts", NULL, cols, sizeof(cols)) == 0) {
        sql = sqlite3_mprintf("INSERT OR REPLACE INTO main.accounts (%s) SELECT %s FROM "
                              "old.accounts o WHERE NOT EXISTS (SELECT 1 FROM main.accounts m "
                              "WHERE m.id = o.id AND (SELECT count(*) FROM (SELECT %s FROM "
                              "main.accounts WHERE id = o.id INTERSECT SELECT %s FROM "
                              "old.accounts WHERE id = o.id)) = 1)",
                              cols, cols, cols, cols);
        rc = sql ? sqlite3_exec(c, sql, NULL, NULL, NULL) : SQLITE_NOMEM;
        sqlite3_free(sql);
        if (rc != SQLITE_OK) {
            error = sqlfail(c, rc, "carry user state (accounts)", err);
            goto done;
        }
        counts[0] = (uint64_t)sqlite3_changes(c);
    }
    /* item settings (watched state, resume position, ratings) by (account_id, guid): rows the
     * new DB has are updated in place (same id, so an identical row is no change at all), the
     * others are inserted */
    if (common_columns(c, "metadata_item_settings", "id", cols, sizeof(cols)) == 0) {
        char set[16384], diff[16384];
        size_t ns = 0, nd = 0;
        const char *p = cols;
        while (*p) { /* cols is "\"a\", \"b\", ...": build a = o.a and a IS NOT o.a lists */
            const char *q = strchr(p + 1, '"');
            if (!q)
                break;
            int len = (int)(q - p + 1);
            ns += (size_t)snprintf(set + ns, sizeof(set) - ns, "%s%.*s = o.%.*s", ns ? ", " : "",
                                   len, p, len, p);
            nd += (size_t)snprintf(diff + nd, sizeof(diff) - nd, "%sm.%.*s IS NOT o.%.*s",
                                   nd ? " OR " : "", len, p, len, p);
            p = q + 1;
            while (*p == ',' || *p == ' ')
                p++;
        }
        if (ns >= sizeof(set) || nd >= sizeof(diff)) {
            error = pb_error_set(err, PB_ENOMEM, "carry user state: too many columns");
            goto done;
        }
        sql = sqlite3_mprintf("UPDATE main.metadata_item_settings AS m SET %s FROM "
                              "old.metadata_item_settings AS o WHERE o.account_id IS m.account_id "
                              "AND o.guid IS m.guid AND (%s)",
                              set, diff);
        rc = sql ? sqlite3_exec(c, sql, NULL, NULL, NULL) : SQLITE_NOMEM;
        sqlite3_free(sql);
        counts[1] = (uint64_t)sqlite3_changes(c);
        if (rc == SQLITE_OK) {
            sql = sqlite3_mprintf("INSERT INTO main.metadata_item_settings (%s) SELECT %s FROM "
                                  "old.metadata_item_settings o WHERE NOT EXISTS (SELECT 1 FROM "
                                  "main.metadata_item_settings m WHERE m.account_id IS "
                                  "o.account_id AND m.guid IS o.guid)",
                                  cols, cols);
            rc = sql ? sqlite3_exec(c, sql, NULL, NULL, NULL) : SQLITE_NOMEM;
            sqlite3_free(sql);
            counts[1] += (uint64_t)sqlite3_changes(c);
        }
        if (rc != SQLITE_OK) {
            error = sqlfail(c, rc, "carry user state (metadata_item_settings)", err);
            goto done;
        }
    }
    /* play history: plays the new DB does not have */
    if (common_columns(c, "metadata_item_views", "id", cols, sizeof(cols)) == 0) {
        sql = sqlite3_mprintf("INSERT INTO main.metadata_item_views (%s) SELECT %s FROM "
                              "old.metadata_item_views o WHERE NOT EXISTS (SELECT 1 FROM "
                              "main.metadata_item_views m WHERE m.account_id IS o.account_id AND "
                              "m.guid IS o.guid AND m.viewed_at IS o.viewed_at)",
                              cols, cols);
        rc = sql ? sqlite3_exec(c, sql, NULL, NULL, NULL) : SQLITE_NOMEM;
        sqlite3_free(sql);
        if (rc != SQLITE_OK) {
            error = sqlfail(c, rc, "carry user state (metadata_item_views)", err);
            goto done;
        }
        counts[2] = (uint64_t)sqlite3_changes(c);
    }
    if ((rc = sqlite3_exec(c, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK)
        error = sqlfail(c, rc, "carry user state", err);
done:
    if (error && c && !sqlite3_get_autocommit(c))
        sqlite3_exec(c, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(c);
    return error;
}

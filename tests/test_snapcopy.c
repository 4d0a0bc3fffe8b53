/*
 * test_snapcopy.c: the snapshot and backup copies of a DB that another connection writes while
 * it is copied (engine/plex/backup.c pb_backup_db_copy, engine/run/run_db.c pb_run__snapshot).
 * A VFS shim, registered as the default, counts the page reads of the source file and, every
 * READ_EVERY reads, commits a transaction on the source from a second connection (the "writer":
 * one row into t and the counter in c bumped, so that a consistent copy has count(t) == c.n).
 * A copy made in steps that each end the read transaction restarts after every such commit
 * (reads grow with the commits); the copy must read each page about once, and hold one
 * committed state: integrity_check ok and count(t) == c.n. Both journal modes: WAL (Plex's; the
 * writer commits during the copy) and DELETE (the writer is refused while the copy reads).
 * The copies' writes are gathered (engine/plex/seqwrite.c): a write error met while writing a
 * gathered run must fail the snapshot.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include "backup.h"
#include "run_int.h"
#include "testutil.h"

#define PAGE_SIZE   1024
#define ROWS        6000 /* about 7000 pages of 1 KiB: more than one step of the old 4096 */
#define READ_EVERY  300
#define MAX_COMMITS 400

static sqlite3_vfs shim, *real;
static char src_path[4200];
static long reads;
static int commits, busy, in_hook;
static sqlite3 *writer;

typedef struct shim_file {
    sqlite3_file base;
    int watched;
    sqlite3_file *real; /* follows this struct */
} shim_file;

static void write_once(void)
{
    if (in_hook || !writer || commits >= MAX_COMMITS)
        return;
    in_hook = 1;
    int rc = sqlite3_exec(writer,
                          "BEGIN IMMEDIATE; INSERT INTO t(v) VALUES (randomblob(300)); "
                          "UPDATE c SET n = n + 1; COMMIT",
                          NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        commits++;
    else {
        busy++;
        if (!sqlite3_get_autocommit(writer))
            sqlite3_exec(writer, "ROLLBACK", NULL, NULL, NULL);
    }
    in_hook = 0;
}

static int s_close(sqlite3_file *f)
{
    shim_file *s = (shim_file *)f;
    int rc = s->real->pMethods ? s->real->pMethods->xClose(s->real) : SQLITE_OK;
    return rc;
}
static int s_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o)
{
    shim_file *s = (shim_file *)f;
    int rc = s->real->pMethods->xRead(s->real, b, n, o);
    if (s->watched && !in_hook && ++reads % READ_EVERY == 0)
        write_once();
    return rc;
}
#define FWD(name, sig, args)                                                                       \
    static int name sig                                                                            \
    {                                                                                              \
        shim_file *s = (shim_file *)f;                                                             \
        return s->real->pMethods->name args;                                                       \
    }
static int xWrite(sqlite3_file *f, const void *b, int n, sqlite3_int64 o);
FWD(xWrite, (sqlite3_file * f, const void *b, int n, sqlite3_int64 o), (s->real, b, n, o))
FWD(xTruncate, (sqlite3_file * f, sqlite3_int64 n), (s->real, n))
FWD(xSync, (sqlite3_file * f, int fl), (s->real, fl))
FWD(xFileSize, (sqlite3_file * f, sqlite3_int64 *n), (s->real, n))
FWD(xLock, (sqlite3_file * f, int l), (s->real, l))
FWD(xUnlock, (sqlite3_file * f, int l), (s->real, l))
FWD(xCheckReservedLock, (sqlite3_file * f, int *r), (s->real, r))
FWD(xFileControl, (sqlite3_file * f, int op, void *a), (s->real, op, a))
FWD(xSectorSize, (sqlite3_file * f), (s->real))
FWD(xDeviceCharacteristics, (sqlite3_file * f), (s->real))
FWD(xShmMap, (sqlite3_file * f, int i, int sz, int ext, void volatile **p),
    (s->real, i, sz, ext, p))
FWD(xShmLock, (sqlite3_file * f, int o, int n, int fl), (s->real, o, n, fl))
FWD(xShmUnmap, (sqlite3_file * f, int del), (s->real, del))
static void xShmBarrier(sqlite3_file *f)
{
    shim_file *s = (shim_file *)f;
    s->real->pMethods->xShmBarrier(s->real);
}

static const sqlite3_io_methods shim_io = {
    2,
    s_close,
    s_read,
    xWrite,
    xTruncate,
    xSync,
    xFileSize,
    xLock,
    xUnlock,
    xCheckReservedLock,
    xFileControl,
    xSectorSize,
    xDeviceCharacteristics,
    xShmMap,
    xShmLock,
    xShmBarrier,
    xShmUnmap,
    NULL,
    NULL,
};

static int s_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out)
{
    shim_file *s = (shim_file *)f;
    (void)v;
    memset(s, 0, sizeof(*s));
    s->real = (sqlite3_file *)(s + 1);
    int rc = real->xOpen(real, name, s->real, flags, out);
    if (rc != SQLITE_OK)
        return rc;
    s->base.pMethods = &shim_io;
    s->watched = name && (flags & SQLITE_OPEN_MAIN_DB) && strcmp(name, src_path) == 0;
    return SQLITE_OK;
}

static void shim_install(void)
{
    shim = *real;
    shim.zName = "pbtest-snapcopy";
    shim.szOsFile = (int)sizeof(shim_file) + real->szOsFile;
    shim.xOpen = s_open;
    assert_int_equal(sqlite3_vfs_register(&shim, 1), SQLITE_OK);
}

static void shim_remove(void)
{
    sqlite3_vfs_unregister(&shim);
    sqlite3_vfs_register(real, 1);
}

static void make_source(const char *dir, const char *mode)
{
    sqlite3 *db;
    char sql[512];
    snprintf(src_path, sizeof(src_path), "%s/src.db", dir);
    assert_int_equal(
        sqlite3_open_v2(src_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, real->zName),
        SQLITE_OK);
    snprintf(sql, sizeof(sql),
             "PRAGMA page_size=%d; PRAGMA journal_mode=%s; "
             "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB); CREATE TABLE c(n INTEGER); "
             "BEGIN; WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < %d) "
             "INSERT INTO t(v) SELECT randomblob(1000) FROM k; "
             "INSERT INTO c SELECT count(*) FROM t; COMMIT",
             PAGE_SIZE, mode, ROWS);
    tu_exec_ok(db, sql);
    sqlite3_close(db);
    /* the writer bypasses the shim: its own reads are not counted */
    assert_int_equal(sqlite3_open_v2(src_path, &writer, SQLITE_OPEN_READWRITE, real->zName),
                     SQLITE_OK);
    sqlite3_busy_timeout(writer, 0);
    tu_exec_ok(writer, "PRAGMA synchronous=OFF");
}

static long pages_of(const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    long n = 0;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, real->zName), SQLITE_OK);
    st = tu_prepare(db, "PRAGMA page_count");
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* The copy is one committed state of the source. */
static void check_copy(const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, real->zName), SQLITE_OK);
    st = tu_prepare(db, "PRAGMA integrity_check");
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    st = tu_prepare(db, "SELECT (SELECT count(*) FROM t), (SELECT n FROM c)");
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1));
    assert_true(sqlite3_column_int64(st, 0) >= ROWS);
    sqlite3_finalize(st);
    st = tu_prepare(db, "PRAGMA journal_mode");
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "delete");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void run_case(const char *mode, int snapshot)
{
    char dst[4300];
    const char *dir = tu_tmpdir("snapcopy");
    pb_error e = PB_ERROR_INIT;
    make_source(dir, mode);
    long pages = pages_of(src_path);
    snprintf(dst, sizeof(dst), "%s/copy.db", dir);
    reads = 0;
    commits = busy = 0;
    shim_install();
    int rc;
    if (snapshot) {
        rc = pb_run__snapshot(src_path, dst, &e);
    } else {
        char made[4000];
        char bdir[4000];
        snprintf(bdir, sizeof(bdir), "%s/backups", dir);
        rc = pb_plex_backup(made, sizeof(made), NULL, bdir, src_path, NULL, 3, &e);
        if (rc == 0)
            snprintf(dst, sizeof(dst), "%s/src.db", made);
    }
    shim_remove();
    if (rc)
        fprintf(stderr, "copy failed: %s\n", e.msg);
    assert_int_equal(rc, 0);
    fprintf(stderr, "%s %s: %ld pages, %ld reads, %d commits and %d refused during the copy\n",
            mode, snapshot ? "snapshot" : "backup", pages, reads, commits, busy);
    /* each page read about once: no restart */
    assert_true(reads <= pages + pages / 2);
    assert_true(commits + busy > 0); /* the writer did try while the copy ran */
    sqlite3_close(writer);
    writer = NULL;
    check_copy(dst);
    tu_sh("rm -rf '%s'", dir);
}

static void test_snapshot_wal(void **state)
{
    (void)state;
    run_case("wal", 1);
}
static void test_snapshot_delete(void **state)
{
    (void)state;
    run_case("delete", 1);
}
static void test_backup_wal(void **state)
{
    (void)state;
    run_case("wal", 0);
}
static void test_backup_delete(void **state)
{
    (void)state;
    run_case("delete", 0);
}

/* A write refused while the gathered runs are written out (the file size limit standing for a
 * full disk) fails the snapshot: no short copy is renamed into place. */
static void test_snapshot_write_error(void **state)
{
    (void)state;
    char dst[4300];
    const char *dir = tu_tmpdir("snapcopy");
    pb_error e = PB_ERROR_INIT;
    struct rlimit old, lim;
    make_source(dir, "wal");
    sqlite3_close(writer);
    writer = NULL;
    snprintf(dst, sizeof(dst), "%s/copy.db", dir);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 1u << 20; /* the source is about 7 MB */
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = pb_run__snapshot(src_path, dst, &e);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);
    fprintf(stderr, "snapshot over the size limit: %d %s\n", rc, e.msg);
    assert_true(rc < 0);
    assert_int_equal(access(dst, F_OK), -1);
    tu_sh("rm -rf '%s'", dir);
}

int main(void)
{
    sqlite3_initialize();
    real = sqlite3_vfs_find(NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_wal),         cmocka_unit_test(test_snapshot_delete),
        cmocka_unit_test(test_backup_wal),           cmocka_unit_test(test_backup_delete),
        cmocka_unit_test(test_snapshot_write_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

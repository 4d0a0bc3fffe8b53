/*
 * seqwrite.c: the write-gathering SQLite VFS of seqwrite.h.
 * Role: cheaper whole-file copies (pb_backup_db_copy's destinations: snapshots and backups).
 * Prerequisites: SQLite's default VFS, which it wraps (every call forwarded; only xWrite held).
 * A held run is written before any other call reaches the file, so SQLite's view of the file
 * and the order of writes and syncs are unchanged; a write error met while writing a run is
 * kept and returned by every later call (and by pb_seqwrite_check), never dropped.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "seqwrite.h"

#define RUN_CAP     (64 * 1024) /* the unix VFS writes at most 128 KiB - 1 in one call */
#define FCNTL_CHECK 0x70625701  /* ours: write out, report the first error */

typedef struct sw_file {
    sqlite3_file base;
    sqlite3_file *real; /* the default VFS's file, just after this struct */
    unsigned char *run; /* RUN_CAP bytes, NULL when writes are not held */
    sqlite3_int64 off;
    int len, error;
} sw_file;

static sqlite3_vfs sw_vfs, *sw_real;
static pthread_once_t sw_once = PTHREAD_ONCE_INIT;
static int sw_ok;

static int flush(sw_file *f)
{
    if (f->len && !f->error) {
        int rc = f->real->pMethods->xWrite(f->real, f->run, f->len, f->off);
        if (rc != SQLITE_OK)
            f->error = rc;
    }
    f->len = 0;
    return f->error;
}

#define REAL(p) (((sw_file *)(p))->real)

static int sw_close(sqlite3_file *p)
{
    sw_file *f = (sw_file *)p;
    int rc = flush(f);
    int rc2 = f->real->pMethods->xClose(f->real);
    free(f->run);
    f->run = NULL;
    return rc ? rc : rc2;
}

static int sw_read(sqlite3_file *p, void *b, int n, sqlite3_int64 o)
{
    int rc = flush((sw_file *)p);
    return rc ? rc : REAL(p)->pMethods->xRead(REAL(p), b, n, o);
}

static int sw_write(sqlite3_file *p, const void *b, int n, sqlite3_int64 o)
{
    sw_file *f = (sw_file *)p;
    if (f->error)
        return f->error;
    if (!f->run || n > RUN_CAP)
        return flush(f) ? f->error : f->real->pMethods->xWrite(f->real, b, n, o);
    if (f->len && (o != f->off + f->len || f->len + n > RUN_CAP) && flush(f))
        return f->error;
    if (!f->len)
        f->off = o;
    memcpy(f->run + f->len, b, (size_t)n);
    f->len += n;
    return SQLITE_OK;
}

static int sw_truncate(sqlite3_file *p, sqlite3_int64 n)
{
    int rc = flush((sw_file *)p);
    return rc ? rc : REAL(p)->pMethods->xTruncate(REAL(p), n);
}

static int sw_sync(sqlite3_file *p, int flags)
{
    int rc = flush((sw_file *)p);
    return rc ? rc : REAL(p)->pMethods->xSync(REAL(p), flags);
}

static int sw_size(sqlite3_file *p, sqlite3_int64 *n)
{
    int rc = flush((sw_file *)p);
    return rc ? rc : REAL(p)->pMethods->xFileSize(REAL(p), n);
}

static int sw_lock(sqlite3_file *p, int l)
{
    int rc = flush((sw_file *)p);
    return rc ? rc : REAL(p)->pMethods->xLock(REAL(p), l);
}

static int sw_unlock(sqlite3_file *p, int l)
{
    flush((sw_file *)p); /* an unlock is not refused: the error stays for the next call */
    return REAL(p)->pMethods->xUnlock(REAL(p), l);
}

static int sw_reserved(sqlite3_file *p, int *r)
{
    int rc = flush((sw_file *)p);
    return rc ? rc : REAL(p)->pMethods->xCheckReservedLock(REAL(p), r);
}

static int sw_fcntl(sqlite3_file *p, int op, void *a)
{
    int rc = flush((sw_file *)p);
    if (op == FCNTL_CHECK)
        return rc;
    return REAL(p)->pMethods->xFileControl(REAL(p), op, a);
}

static int sw_sector(sqlite3_file *p)
{
    return REAL(p)->pMethods->xSectorSize(REAL(p));
}

static int sw_chars(sqlite3_file *p)
{
    return REAL(p)->pMethods->xDeviceCharacteristics(REAL(p));
}

static int sw_shm_map(sqlite3_file *p, int i, int sz, int extend, void volatile **pp)
{
    int rc = flush((sw_file *)p);
    return rc ? rc : REAL(p)->pMethods->xShmMap(REAL(p), i, sz, extend, pp);
}

static int sw_shm_lock(sqlite3_file *p, int offset, int n, int flags)
{
    int rc = flush((sw_file *)p);
    return rc ? rc : REAL(p)->pMethods->xShmLock(REAL(p), offset, n, flags);
}

static void sw_shm_barrier(sqlite3_file *p)
{
    REAL(p)->pMethods->xShmBarrier(REAL(p));
}

static int sw_shm_unmap(sqlite3_file *p, int del)
{
    flush((sw_file *)p);
    return REAL(p)->pMethods->xShmUnmap(REAL(p), del);
}

/* Version 2 of the methods: shared memory forwarded (a copy of a WAL DB reads as WAL until its
 * journal mode is changed), no memory map. */
static const sqlite3_io_methods sw_io = {
    2,           sw_close,       sw_read,      sw_write, sw_truncate, sw_sync,  sw_size,
    sw_lock,     sw_unlock,      sw_reserved,  sw_fcntl, sw_sector,   sw_chars, sw_shm_map,
    sw_shm_lock, sw_shm_barrier, sw_shm_unmap, NULL,     NULL,
};

static int sw_open(sqlite3_vfs *v, sqlite3_filename name, sqlite3_file *p, int flags, int *out)
{
    sw_file *f = (sw_file *)p;
    (void)v;
    memset(f, 0, sizeof(*f));
    f->real = (sqlite3_file *)(f + 1);
    int rc = sw_real->xOpen(sw_real, name, f->real, flags, out);
    if (rc != SQLITE_OK)
        return rc;
    if (flags & SQLITE_OPEN_MAIN_DB)
        f->run = malloc(RUN_CAP); /* without it, writes go through one by one */
    p->pMethods = &sw_io;
    return SQLITE_OK;
}

static void sw_register(void)
{
    if (sqlite3_initialize() != SQLITE_OK || !(sw_real = sqlite3_vfs_find(NULL)))
        return;
    sw_vfs = *sw_real;
    sw_vfs.pNext = NULL;
    sw_vfs.zName = "pb-seqwrite";
    sw_vfs.szOsFile = (int)sizeof(sw_file) + sw_real->szOsFile;
    sw_vfs.xOpen = sw_open;
    sw_ok = sqlite3_vfs_register(&sw_vfs, 0) == SQLITE_OK;
}

const char *pb_seqwrite_vfs(void)
{
    pthread_once(&sw_once, sw_register);
    return sw_ok ? sw_vfs.zName : NULL;
}

int pb_seqwrite_check(sqlite3 *db)
{
    sqlite3_vfs *v = NULL;
    if (!sw_ok || sqlite3_file_control(db, "main", SQLITE_FCNTL_VFS_POINTER, &v) != SQLITE_OK ||
        v != &sw_vfs)
        return SQLITE_OK;
    return sqlite3_file_control(db, "main", FCNTL_CHECK, NULL);
}

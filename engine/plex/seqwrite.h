/*
 * seqwrite.h (internal): a SQLite VFS that gathers a connection's writes into runs of up to 64
 * KiB, for the copies that write a whole DB file page by page (snapshots, backups).
 * Role: the online backup writes every page with its own write call (230k calls for a 900 MB DB
 * of 4 KiB pages, most of a copy's CPU time); gathered, the same bytes take 16 times fewer.
 */
#ifndef PB_SEQWRITE_H
#define PB_SEQWRITE_H

#include <sqlite3.h>

/**
 * The name of the VFS (registered on first use, not as the default), for sqlite3_open_v2's
 * last argument; NULL when it cannot be registered (then open with the default VFS). Writes
 * are held until a write that does not follow the previous one, 64 KiB, or any other call on
 * the file (read, size, sync, truncate, lock change, file control, close): what SQLite sees
 * and the order of the bytes on disk are those of the default VFS.
 */
const char *pb_seqwrite_vfs(void);

/**
 * Writes out what `db`'s main file holds back and returns the first write error met on it
 * (SQLITE_OK when none, or when `db` does not use this VFS). Call it before closing a copy:
 * an error met while closing is not reported by sqlite3_close.
 */
int pb_seqwrite_check(sqlite3 *db);

#endif

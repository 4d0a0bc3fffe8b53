/*
 * journal.c: the apply journal (engine/apply/journal.h); this comment is the design of the
 * journaled apply and of the recovery of an interrupted one (recover.c, probes.c).
 * Role: makes pb_apply() all-or-nothing across a crash at any instant (kill -9, power loss):
 * the next plexburst command touching the data dir calls pb_apply_recover(), which completes or
 * rolls back what the journal describes. Prerequisites: SQLite (the journal is a small SQLite DB
 * in rollback-journal mode), Linux syncfs().
 *
 * THE JOURNAL. <state dir>/apply.journal, journal_mode=WAL, synchronous=FULL (one fsync per
 * commit), guarded by an flock on <state dir>/apply.lock (one apply or recovery per data dir at
 * a time). Tables:
 *   run(run_id, state, plex_dir, bundle, online, plex_stopped, main_mode, blobs_mode, has_blobs,
 *       target ids)     the one run in progress; state: staging -> staged -> merging -> merged
 *                       -> installed, then the run's rows are deleted (the journal is empty)
 *   dirs(n, path)       directories the run creates, each recorded BEFORE its mkdir
 *   stagedirs(path)     directories that may hold the run's stage files, each recorded BEFORE
 *                       the first stage file is created in it
 *   files(n, path, stage, kind, hash, done)   per bundle record: its stage file (or 'U': the
 *                       target already held the content), recorded in batches, all durable
 *                       before the state becomes staged
 * and beside it <state dir>/apply.marker, a one-table DB in journal_mode=DELETE holding the
 * commit marker pb_apply_marker(run_id) (below).
 * Stage files are named .pb-stage-<run>-<n> in their target's directory (same file system, so the
 * final rename is atomic); their data and directory entries are made durable with one syncfs()
 * before Plex is stopped.
 *
 * THE CRUX: DID THE ROW MERGE COMMIT? Everything before the merge's COMMIT can be undone (stage
 * files are invisible to Plex, created directories are empty but for them); everything after it
 * can be redone (renames are idempotent: a target already holding the expected hash is done). So
 * recovery needs one bit, exactly in step with the DB: was the merge transaction committed?
 *   - Plex stopped (the normal case): the live pair is switched from WAL to journal_mode=DELETE
 *     for the merge (its former modes recorded first, restored after, and by recovery), and the
 *     marker DB is ATTACHed to the merge's connection. TEMP triggers on every table of main
 *     and blobs insert the run id into pbmark.pb_apply_marker, so the marker row is written by
 *     the merge's own transaction. With every file in a rollback-journal mode, SQLite commits
 *     a multi-file transaction through a super-journal: main, blobs and the marker commit
 *     atomically (all or none, also across power loss). After a crash, opening the DBs rolls
 *     back a hot journal whose super-journal still exists, so "marker present" <=> "rows
 *     committed". A merge that writes no row writes no marker: the DB is the same either way,
 *     so rolling back the files is consistent too.
 *   - Plex stopped, rows written by Plex's own engine (apply_merge.c, merge_engine): the same
 *     guarantee without the triggers. The SQL script, decided against the live pair opened
 *     read-only, switches main and blobs to journal_mode=DELETE, attaches the marker DB, checks
 *     that all three are in DELETE mode (a CHECK constraint fails the script otherwise), and runs
 *     one transaction whose last statement before COMMIT inserts the run id into the marker (only
 *     when it writes a row); then it restores the recorded modes. The super-journal makes main,
 *     blobs and marker commit together, so "marker present <=> rows committed" holds whether the
 *     engine or plexburst dies, before, during or after the COMMIT. The engine's exit status is
 *     never trusted for this: after it ends the marker is read. The engine inherits the fd of the
 *     apply lock, so if plexburst dies while the engine runs, the lock stays held until the
 *     orphaned engine has committed or given up: no recovery can decide in between.
 *   - --online (Plex holds the DB in WAL, which cannot be switched): no super-journal; SQLite
 *     commits the files one after the other in attach order (main, blobs, then the marker DB),
 *     so a present marker still proves the commit, but an absent one does not disprove it. A
 *     preupdate hook on the merge's connection keeps up to 8 "probe" rows per DB (schema, table,
 *     rowid, hash of the row before the merge, hash after, absent = no row), and the commit hook
 *     writes them durably to <state dir>/apply.probes BEFORE SQLite commits (a failed write
 *     turns the commit into a rollback). Recovery without a marker reads each probe row: rows
 *     equal to their post-merge values mean committed, to their pre-merge values not committed;
 *     a mixed or undecidable result (Plex rewrote every probe row since) is PB_ECONFLICT with
 *     instructions, never a guess. No probe file (or no probe) means nothing was committed that
 *     changed a row. Online, main and blobs are not atomic together (merge.h says so).
 * INSTALLS BEFORE THE STOP (pb_journal__preinstall, recover.c): once staged, while Plex still
 * runs, every file row is marked done = 2 (durably: "a rename may have happened"), each stage
 * file is renamed onto its target: a new path with renameat2 RENAME_NOREPLACE (named by no row
 * of the live DB before the merge commits, so Plex cannot use it); an existing file after a hard
 * link keeps it as <stage>-old (the backup; Plex may see the new content a little before the
 * rows that go with it, never a half-written file); then syncfs, and each row settled: done = 1
 * when its stage file is gone (renamed, durable), else 0 (left for the install after the
 * commit). A roll forward installs the rows with done != 1 (a done = 2 row whose stage file is
 * gone is checked by hash, as after any crash); a roll back first puts back every done 1 or 2
 * row whose stage file is gone: its backup renamed over the target, or with no backup (a new
 * path) the target removed when it holds the recorded hash (before the commit, done = 1 is only
 * ever set here). The end of a run (pb_journal__finish, after Plex started) sweeps the backups
 * and any other .pb-stage-<run>- file from the recorded stage dirs.
 * Recovery: states staging/staged -> roll back; merging -> marker (or probes) decides; merged and
 * installed -> roll forward. Roll back = delete the run's stage files (recorded ones, and any
 * .pb-stage-<run>- file in the recorded stage dirs), remove the created directories (deepest
 * first, only when empty), restore the journal modes, syncfs, clear the run. Roll forward =
 * rename each remaining stage file over its target (or verify the target already holds the
 * hash), syncfs, restore the modes, record the baseline (the bundle's target ids), clear the run.
 * Both are idempotent: a crash during recovery is recovered by the next one.
 *
 * Test hook: PB_TEST_CRASH_AT=<step>[:k] raises SIGKILL at the k-th pass through a named step
 * (pb_journal__crash_point); the tests kill the apply at every step and check all-or-nothing
 * (tests/test_apply.c, also on the engine path, with a stand-in engine that dies on cue).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "bundle_int.h"
#include "journal.h"
#include "journal_int.h"
#include "plexburst/compat.h"
#include "plexburst/plex.h"

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS run(k INTEGER PRIMARY KEY CHECK (k = 1), run_id TEXT NOT NULL, "
    "state TEXT NOT NULL, plex_dir TEXT NOT NULL, bundle TEXT, online INTEGER NOT NULL, "
    "plex_stopped INTEGER NOT NULL DEFAULT 0, main_mode TEXT, blobs_mode TEXT, "
    "has_blobs INTEGER NOT NULL DEFAULT 0, target_main BLOB, target_blobs BLOB);"
    "CREATE TABLE IF NOT EXISTS dirs(n INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);"
    "CREATE TABLE IF NOT EXISTS stagedirs(path TEXT PRIMARY KEY) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS files(n INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, "
    "stage TEXT, kind INTEGER NOT NULL, hash BLOB NOT NULL, done INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS swap(k INTEGER PRIMARY KEY, ino INTEGER NOT NULL, "
    "size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL);";

/* ---------------------------------------------------------------------------------------- */
/* test hook                                                                                 */

void pb_journal__crash_point(const char *step)
{
    /* the spec is re-read on every call so that a forked child with a new environment works */
    static char cur[64];
    static long seen;
    const char *e = getenv("PB_TEST_CRASH_AT");
    if (!e || !*e)
        return;
    if (strncmp(cur, e, sizeof(cur) - 1) != 0) {
        snprintf(cur, sizeof(cur), "%s", e);
        seen = 0;
    }
    char want[64];
    long k = 1;
    snprintf(want, sizeof(want), "%s", cur);
    char *colon = strchr(want, ':');
    if (colon) {
        *colon = '\0';
        k = strtol(colon + 1, NULL, 10);
        if (k < 1)
            k = 1;
    }
    if (strcmp(want, step) == 0 && ++seen == k)
        raise(SIGKILL);
}

/* ---------------------------------------------------------------------------------------- */
/* small SQLite helpers                                                                      */

int pb_journal__sqlerr(pb_journal *j, int rc, const char *what, pb_error *err)
{
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
        return pb_error_setd(err, PB_EBUSY, rc, "apply journal: %s: busy", what);
    return pb_error_setd(err, PB_ESQLITE, rc, "apply journal: %s: %s", what,
                         j && j->db ? sqlite3_errmsg(j->db) : sqlite3_errstr(rc));
}

int pb_journal__jexec(pb_journal *j, const char *sql, const char *what, pb_error *err)
{
    int rc = sqlite3_exec(j->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : pb_journal__sqlerr(j, rc, what, err);
}

int pb_journal__commit(pb_journal *j, pb_error *err)
{
    if (!j->in_batch)
        return 0;
    int error = pb_journal__jexec(j, "COMMIT", "commit", err);
    if (!error) {
        j->in_batch = 0;
        j->batch = 0;
    }
    return error;
}

int pb_journal__batch_begin(pb_journal *j, pb_error *err)
{
    if (j->in_batch)
        return 0;
    int error = pb_journal__jexec(j, "BEGIN IMMEDIATE", "begin", err);
    if (!error)
        j->in_batch = 1;
    return error;
}

/* Runs one statement with text/int/blob bindings given as a format: 't' text, 'i' int64,
 * 'b' 16-byte blob (NULL pointer = SQL NULL). */
static int run1(pb_journal *j, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *st = NULL;
    va_list ap;
    int rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
    va_start(ap, fmt);
    for (int i = 0; rc == SQLITE_OK && fmt[i]; i++) {
        if (fmt[i] == 't') {
            const char *s = va_arg(ap, const char *);
            rc = s ? sqlite3_bind_text(st, i + 1, s, -1, SQLITE_TRANSIENT)
                   : sqlite3_bind_null(st, i + 1);
        } else if (fmt[i] == 'i') {
            rc = sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
        } else {
            const uint8_t *b = va_arg(ap, const uint8_t *);
            rc = b ? sqlite3_bind_blob(st, i + 1, b, 16, SQLITE_TRANSIENT)
                   : sqlite3_bind_null(st, i + 1);
        }
    }
    va_end(ap);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE || rc == SQLITE_ROW)
            rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* open / close                                                                              */

void pb_journal__live_paths(const char *plex_dir, char *main_db, char *blobs_db, size_t cap)
{
    snprintf(main_db, cap, "%s/%s", plex_dir, PB_PLEX_DB_REL);
    snprintf(blobs_db, cap, "%s/%s", plex_dir, PB_PLEX_BLOBS_REL);
}

/* Runs SQL on the marker DB through a short-lived connection (opening it lets SQLite roll back
 * or clean up what an interrupted merge left). With `run_id`, *present tells whether the
 * marker row of that run exists. */
static int marker_exec_at(const char *path, const char *sql, const char *run_id, int *present,
                          pb_error *err)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, 10000);
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK && run_id) {
        rc = sqlite3_prepare_v2(db, "SELECT 1 FROM " PB_MARKER_TABLE " WHERE run_id = ?", -1, &st,
                                NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK) {
            rc = sqlite3_step(st);
            *present = rc == SQLITE_ROW;
            rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
        }
        sqlite3_finalize(st);
    }
    int error = 0;
    if (rc != SQLITE_OK)
        error =
            pb_error_setd(err, rc == SQLITE_BUSY ? PB_EBUSY : PB_ESQLITE, rc, "apply marker %s: %s",
                          path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    return error;
}

static int marker_exec(pb_journal *j, const char *sql, const char *run_id, int *present,
                       pb_error *err)
{
    return marker_exec_at(j->marker, sql, run_id, present, err);
}

int pb_journal__marker_at(const char *path, const char *run_id, int *yes, pb_error *err)
{
    *yes = 0;
    return marker_exec_at(path,
                          "CREATE TABLE IF NOT EXISTS " PB_MARKER_TABLE "(run_id TEXT PRIMARY KEY)",
                          run_id, yes, err);
}

int pb_journal__open(pb_journal **out, const char *state_dir, const char *plex_dir, pb_error *err)
{
    int error = 0, rc;
    pb_journal *j = calloc(1, sizeof(*j));
    char lock[PATH_MAX + 32];

    *out = NULL;
    if (!j)
        return pb_error_set(err, PB_ENOMEM, "apply journal: out of memory");
    j->lock_fd = -1;
    if ((size_t)snprintf(j->state_dir, sizeof(j->state_dir), "%s", state_dir) >=
            sizeof(j->state_dir) ||
        (size_t)snprintf(j->plex_dir, sizeof(j->plex_dir), "%s", plex_dir) >= sizeof(j->plex_dir)) {
        error = pb_error_set(err, PB_EINVALID, "apply journal: path too long");
        goto done;
    }
    snprintf(j->path, sizeof(j->path), "%s/%s", state_dir, PB_JOURNAL_NAME);
    snprintf(j->marker, sizeof(j->marker), "%s/%s", state_dir, PB_MARKER_NAME);
    snprintf(j->probes, sizeof(j->probes), "%s/apply.probes", state_dir);
    snprintf(lock, sizeof(lock), "%s/%s", state_dir, PB_JOURNAL_LOCK);
    if ((j->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
        error = pb_error_errno(err, "apply journal: cannot open %s", lock);
        goto done;
    }
    if (flock(j->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        error = errno == EWOULDBLOCK
                    ? pb_error_set(err, PB_EBUSY,
                                   "another plexburst apply is running on this data dir (%s held)",
                                   lock)
                    : pb_error_errno(err, "apply journal: cannot lock %s", lock);
        goto done;
    }
    if ((rc = sqlite3_open_v2(j->path, &j->db,
                              SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                              NULL)) != SQLITE_OK) {
        error = pb_journal__sqlerr(j, rc, "open", err);
        goto done;
    }
    sqlite3_busy_timeout(j->db, 10000);
    if ((error = pb_journal__jexec(j, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
                                   "pragmas", err)) < 0 ||
        (error = pb_journal__jexec(j, SCHEMA, "schema", err)) < 0)
        goto done;
    if ((error =
             marker_exec(j,
                         "PRAGMA journal_mode=DELETE; PRAGMA synchronous=FULL; "
                         "CREATE TABLE IF NOT EXISTS " PB_MARKER_TABLE "(run_id TEXT PRIMARY KEY);",
                         NULL, NULL, err)) < 0)
        goto done;
    *out = j;
    j = NULL;
done:
    pb_journal__close(j);
    return error;
}

void pb_journal__close(pb_journal *j)
{
    if (!j)
        return;
    if (j->db) {
        if (j->in_batch)
            sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(j->db);
    }
    if (j->lock_fd >= 0)
        close(j->lock_fd);
    free(j);
}

const char *pb_journal__path(const pb_journal *j)
{
    return j->path;
}

const char *pb_journal__marker_path(const pb_journal *j)
{
    return j->marker;
}

sqlite3 *pb_journal__db(pb_journal *j)
{
    return j->db;
}

const char *pb_journal__probes_path(const pb_journal *j)
{
    return j->probes;
}

int pb_journal__lock_fd(const pb_journal *j)
{
    return j->lock_fd;
}

/* ---------------------------------------------------------------------------------------- */
/* recording                                                                                 */

int pb_journal__begin(pb_journal *j, const char *run_id, const char *bundle, int online,
                      const pb_bundle_info *info, pb_error *err)
{
    int rc;
    sqlite3_stmt *st = NULL;
    int error;
    if ((rc = sqlite3_prepare_v2(j->db, "SELECT run_id FROM run", -1, &st, NULL)) != SQLITE_OK)
        return pb_journal__sqlerr(j, rc, "read", err);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return pb_error_set(err, PB_EBUSY, "apply journal: a run is already recorded");
    unlink(j->probes);
    if ((error = marker_exec(j, "DELETE FROM " PB_MARKER_TABLE, NULL, NULL, err)) < 0)
        return error;
    if ((error = pb_journal__jexec(j,
                                   "BEGIN IMMEDIATE; DELETE FROM dirs; DELETE FROM stagedirs; "
                                   "DELETE FROM files;",
                                   "begin", err)) < 0)
        return error;
    j->in_batch = 1;
    rc = run1(j,
              "INSERT INTO run(k, run_id, state, plex_dir, bundle, online, has_blobs, "
              "target_main, target_blobs) VALUES(1, ?, ?, ?, ?, ?, ?, ?, ?)",
              "ttttiibb", run_id, PB_JST_STAGING, j->plex_dir, bundle, (int64_t)online,
              (int64_t)info->has_blobs, info->target_main,
              info->has_blobs ? info->target_blobs : NULL);
    if (rc != SQLITE_OK)
        return pb_journal__sqlerr(j, rc, "begin", err);
    snprintf(j->run_id, sizeof(j->run_id), "%s", run_id);
    j->last_stagedir[0] = '\0';
    if ((error = pb_journal__commit(j, err)) < 0)
        return error;
    pb_journal__crash_point("begin");
    return 0;
}

int pb_journal__set_state(pb_journal *j, const char *state, pb_error *err)
{
    int error = pb_journal__batch_begin(j, err), rc;
    if (error < 0)
        return error;
    if ((rc = run1(j, "UPDATE run SET state = ?", "t", state)) != SQLITE_OK)
        return pb_journal__sqlerr(j, rc, "state", err);
    if ((error = pb_journal__commit(j, err)) < 0)
        return error;
    pb_journal__crash_point(state);
    return 0;
}

int pb_journal__set_plex(pb_journal *j, int stopped, pb_error *err)
{
    int error = pb_journal__batch_begin(j, err), rc;
    if (error < 0)
        return error;
    if ((rc = run1(j, "UPDATE run SET plex_stopped = ?", "i", (int64_t)stopped)) != SQLITE_OK)
        return pb_journal__sqlerr(j, rc, "plex state", err);
    return pb_journal__commit(j, err);
}

void pb_journal__copy_path(char *out, size_t cap, const char *live, const char *run_id, int k)
{
    const char *slash = strrchr(live, '/');
    int dir = slash ? (int)(slash - live) + 1 : 0;
    snprintf(out, cap, "%.*s" PB_STAGE_PREFIX "%s-db-%s", dir, live, run_id, k ? "blobs" : "main");
}

int pb_journal__set_swapping(pb_journal *j, const struct stat *main, const struct stat *blobs,
                             pb_error *err)
{
    const struct stat *st[2] = {main, blobs};
    int error = pb_journal__batch_begin(j, err), rc = SQLITE_OK;
    if (error < 0)
        return error;
    rc = run1(j, "DELETE FROM swap", "");
    for (int k = 0; k < 2 && rc == SQLITE_OK; k++)
        if (st[k])
            rc = run1(j, "INSERT INTO swap(k, ino, size, mtime_ns) VALUES(?, ?, ?, ?)", "iiii",
                      (int64_t)k, (int64_t)st[k]->st_ino, (int64_t)st[k]->st_size,
                      (int64_t)st[k]->st_mtim.tv_sec * 1000000000 + st[k]->st_mtim.tv_nsec);
    if (rc == SQLITE_OK)
        rc = run1(j, "UPDATE run SET state = ?", "t", PB_JST_SWAPPING);
    if (rc != SQLITE_OK)
        return pb_journal__sqlerr(j, rc, "swapping", err);
    if ((error = pb_journal__commit(j, err)) < 0)
        return error;
    pb_journal__crash_point(PB_JST_SWAPPING);
    return 0;
}

int pb_journal__set_merging(pb_journal *j, const char *main_mode, const char *blobs_mode,
                            pb_error *err)
{
    int error = pb_journal__batch_begin(j, err), rc;
    if (error < 0)
        return error;
    if ((rc = run1(j, "UPDATE run SET state = ?, main_mode = ?, blobs_mode = ?", "ttt",
                   PB_JST_MERGING, main_mode, blobs_mode)) != SQLITE_OK)
        return pb_journal__sqlerr(j, rc, "merging", err);
    if ((error = pb_journal__commit(j, err)) < 0)
        return error;
    pb_journal__crash_point(PB_JST_MERGING);
    return 0;
}

int pb_journal__add_dir(pb_journal *j, const char *rel, pb_error *err)
{
    int error = pb_journal__batch_begin(j, err), rc;
    if (error < 0)
        return error;
    if ((rc = run1(j, "INSERT OR IGNORE INTO dirs(path) VALUES(?)", "t", rel)) != SQLITE_OK)
        return pb_journal__sqlerr(j, rc, "dir", err);
    return 0;
}

int pb_journal__add_stagedir(pb_journal *j, const char *rel, pb_error *err)
{
    int error, rc;
    if (strcmp(rel, j->last_stagedir) == 0)
        return 0;
    if ((error = pb_journal__batch_begin(j, err)) < 0)
        return error;
    if ((rc = run1(j, "INSERT OR IGNORE INTO stagedirs(path) VALUES(?)", "t", rel)) != SQLITE_OK)
        return pb_journal__sqlerr(j, rc, "stage dir", err);
    snprintf(j->last_stagedir, sizeof(j->last_stagedir), "%s", rel);
    return sqlite3_changes(j->db) > 0;
}

int pb_journal__add_file(pb_journal *j, uint64_t n, const char *path, const char *stage, int kind,
                         const uint8_t hash[16], pb_error *err)
{
    int error = pb_journal__batch_begin(j, err), rc;
    if (error < 0)
        return error;
    if ((rc = run1(j, "INSERT INTO files(n, path, stage, kind, hash) VALUES(?, ?, ?, ?, ?)",
                   "ittib", (int64_t)n, path, stage, (int64_t)kind, hash)) != SQLITE_OK)
        return pb_journal__sqlerr(j, rc, "file", err);
    if (++j->batch >= PB_JOURNAL_BATCH)
        return pb_journal__commit(j, err);
    return 0;
}

int pb_journal__flush(pb_journal *j, pb_error *err)
{
    return pb_journal__commit(j, err);
}

int pb_journal__lookup(pb_journal *j, const char *path, int *kind, char *stage, size_t cap,
                       pb_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(j->db, "SELECT kind, stage FROM files WHERE path = ?", -1, &st,
                                NULL),
        found = 0;
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        found = 1;
        *kind = sqlite3_column_int(st, 0);
        snprintf(stage, cap, "%s",
                 sqlite3_column_text(st, 1) ? (const char *)sqlite3_column_text(st, 1) : "");
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? found : pb_journal__sqlerr(j, rc, "lookup", err);
}

/* ---------------------------------------------------------------------------------------- */
/* the run as recorded                                                                       */

static void col_text(char *dst, size_t cap, sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

int pb_journal__load_run(pb_journal *j, pb_journal_run *r, pb_error *err)
{
    sqlite3_stmt *st = NULL;
    memset(r, 0, sizeof(*r));
    int rc = sqlite3_prepare_v2(j->db,
                                "SELECT run_id, state, plex_dir, online, plex_stopped, main_mode, "
                                "blobs_mode, has_blobs, target_main, target_blobs FROM run",
                                -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        r->have = 1;
        col_text(r->run_id, sizeof(r->run_id), st, 0);
        col_text(r->state, sizeof(r->state), st, 1);
        col_text(r->plex_dir, sizeof(r->plex_dir), st, 2);
        r->online = sqlite3_column_int(st, 3);
        r->plex_stopped = sqlite3_column_int(st, 4);
        col_text(r->main_mode, sizeof(r->main_mode), st, 5);
        col_text(r->blobs_mode, sizeof(r->blobs_mode), st, 6);
        r->has_blobs = sqlite3_column_int(st, 7);
        if (sqlite3_column_bytes(st, 8) == 16)
            memcpy(r->target_main, sqlite3_column_blob(st, 8), 16);
        if (sqlite3_column_bytes(st, 9) == 16)
            memcpy(r->target_blobs, sqlite3_column_blob(st, 9), 16);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        return pb_journal__sqlerr(j, rc, "read the run", err);
    snprintf(j->run_id, sizeof(j->run_id), "%s", r->run_id);
    return 0;
}

int pb_journal__run_marker(pb_journal *j, const char *run_id, int *yes, pb_error *err)
{
    *yes = 0;
    return marker_exec(j, "CREATE TABLE IF NOT EXISTS " PB_MARKER_TABLE "(run_id TEXT PRIMARY KEY)",
                       run_id, yes, err);
}

int pb_journal__marker_present(pb_journal *j, int *yes, pb_error *err)
{
    *yes = 0;
    if (!j->run_id[0])
        return pb_error_set(err, PB_EINVALID, "apply journal: no run recorded");
    return pb_journal__run_marker(j, j->run_id, yes, err);
}

/* ---------------------------------------------------------------------------------------- */
/* journal modes of the live pair                                                            */

int pb_journal__mode(const char *db_path, const char *want, char *now, size_t cap, pb_error *err)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int error = 0, rc;
    char sql[64];
    struct stat sb;

    now[0] = '\0';
    if (stat(db_path, &sb) != 0)
        return 0;
    if ((error = pb_compat_open(&db, db_path, 0, err)) < 0)
        return error;
    snprintf(sql, sizeof(sql), want ? "PRAGMA journal_mode=%s" : "PRAGMA journal_mode",
             want ? want : "");
    rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        col_text(now, cap, st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        error = pb_error_setd(err, rc == SQLITE_BUSY ? PB_EBUSY : PB_ESQLITE, rc,
                              "cannot set journal_mode of %s: %s", db_path, sqlite3_errmsg(db));
    sqlite3_close(db);
    return error;
}

int pb_journal__restore_modes(pb_journal *j, int *restored, pb_error *err)
{
    pb_journal_run r;
    int error;
    char main_db[PATH_MAX + 80], blobs_db[PATH_MAX + 80], now[16];
    *restored = 0;
    if ((error = pb_journal__load_run(j, &r, err)) < 0 || !r.have)
        return error;
    pb_journal__live_paths(r.plex_dir, main_db, blobs_db, sizeof(main_db));
    const char *paths[2] = {main_db, blobs_db};
    const char *modes[2] = {r.main_mode, r.blobs_mode};
    for (int i = 0; i < 2; i++) {
        if (!modes[i][0])
            continue;
        if ((error = pb_journal__mode(paths[i], NULL, now, sizeof(now), err)) < 0)
            return error;
        if (!now[0] || strcasecmp(now, modes[i]) == 0)
            continue;
        if ((error = pb_journal__mode(paths[i], modes[i], now, sizeof(now), err)) < 0)
            return error;
        if (strcasecmp(now, modes[i]) != 0)
            return pb_error_set(err, PB_EBUSY,
                                "cannot restore journal_mode=%s on %s (still %s: is Plex running?)",
                                modes[i], paths[i], now);
        (*restored)++;
    }
    return 0;
}

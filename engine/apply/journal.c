/*
 * journal.c: the apply journal and the recovery of an interrupted apply (engine/journal.h).
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
 *   - Plex stopped, rows written by Plex's own engine (apply.c, merge_engine): the same
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

#include "bundle.h"
#include "journal.h"
#include "plexburst/compat.h"
#include "plexburst/plex.h"

#define BATCH 256

struct pb_journal {
    sqlite3 *db;
    int lock_fd;
    int in_batch;
    unsigned batch;
    char state_dir[PATH_MAX];
    char path[PATH_MAX + 32];
    char marker[PATH_MAX + 32];
    char probes[PATH_MAX + 32];
    char plex_dir[PATH_MAX];
    char last_stagedir[PB_BUNDLE_PATH_MAX + 1];
    /* the run, once loaded */
    char run_id[40];
};

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS run(k INTEGER PRIMARY KEY CHECK (k = 1), run_id TEXT NOT NULL, "
    "state TEXT NOT NULL, plex_dir TEXT NOT NULL, bundle TEXT, online INTEGER NOT NULL, "
    "plex_stopped INTEGER NOT NULL DEFAULT 0, main_mode TEXT, blobs_mode TEXT, "
    "has_blobs INTEGER NOT NULL DEFAULT 0, target_main BLOB, target_blobs BLOB);"
    "CREATE TABLE IF NOT EXISTS dirs(n INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);"
    "CREATE TABLE IF NOT EXISTS stagedirs(path TEXT PRIMARY KEY) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS files(n INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, "
    "stage TEXT, kind INTEGER NOT NULL, hash BLOB NOT NULL, done INTEGER NOT NULL DEFAULT 0);";

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

static int sqlerr(pb_journal *j, int rc, const char *what, pb_error *err)
{
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
        return pb_error_setd(err, PB_EBUSY, rc, "apply journal: %s: busy", what);
    return pb_error_setd(err, PB_ESQLITE, rc, "apply journal: %s: %s", what,
                         j && j->db ? sqlite3_errmsg(j->db) : sqlite3_errstr(rc));
}

static int jexec(pb_journal *j, const char *sql, const char *what, pb_error *err)
{
    int rc = sqlite3_exec(j->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sqlerr(j, rc, what, err);
}

static int commit(pb_journal *j, pb_error *err)
{
    if (!j->in_batch)
        return 0;
    int error = jexec(j, "COMMIT", "commit", err);
    if (!error) {
        j->in_batch = 0;
        j->batch = 0;
    }
    return error;
}

static int batch_begin(pb_journal *j, pb_error *err)
{
    if (j->in_batch)
        return 0;
    int error = jexec(j, "BEGIN IMMEDIATE", "begin", err);
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
static int marker_exec(pb_journal *j, const char *sql, const char *run_id, int *present,
                       pb_error *err)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_open_v2(j->marker, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
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
                          j->marker, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    return error;
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
        error = sqlerr(j, rc, "open", err);
        goto done;
    }
    sqlite3_busy_timeout(j->db, 10000);
    if ((error = jexec(j, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", "pragmas", err)) <
            0 ||
        (error = jexec(j, SCHEMA, "schema", err)) < 0)
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
        return sqlerr(j, rc, "read", err);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return pb_error_set(err, PB_EBUSY, "apply journal: a run is already recorded");
    unlink(j->probes);
    if ((error = marker_exec(j, "DELETE FROM " PB_MARKER_TABLE, NULL, NULL, err)) < 0)
        return error;
    if ((error = jexec(j,
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
        return sqlerr(j, rc, "begin", err);
    snprintf(j->run_id, sizeof(j->run_id), "%s", run_id);
    j->last_stagedir[0] = '\0';
    if ((error = commit(j, err)) < 0)
        return error;
    pb_journal__crash_point("begin");
    return 0;
}

int pb_journal__set_state(pb_journal *j, const char *state, pb_error *err)
{
    int error = batch_begin(j, err), rc;
    if (error < 0)
        return error;
    if ((rc = run1(j, "UPDATE run SET state = ?", "t", state)) != SQLITE_OK)
        return sqlerr(j, rc, "state", err);
    if ((error = commit(j, err)) < 0)
        return error;
    pb_journal__crash_point(state);
    return 0;
}

int pb_journal__set_plex(pb_journal *j, int stopped, pb_error *err)
{
    int error = batch_begin(j, err), rc;
    if (error < 0)
        return error;
    if ((rc = run1(j, "UPDATE run SET plex_stopped = ?", "i", (int64_t)stopped)) != SQLITE_OK)
        return sqlerr(j, rc, "plex state", err);
    return commit(j, err);
}

int pb_journal__set_merging(pb_journal *j, const char *main_mode, const char *blobs_mode,
                            pb_error *err)
{
    int error = batch_begin(j, err), rc;
    if (error < 0)
        return error;
    if ((rc = run1(j, "UPDATE run SET state = ?, main_mode = ?, blobs_mode = ?", "ttt",
                   PB_JST_MERGING, main_mode, blobs_mode)) != SQLITE_OK)
        return sqlerr(j, rc, "merging", err);
    if ((error = commit(j, err)) < 0)
        return error;
    pb_journal__crash_point(PB_JST_MERGING);
    return 0;
}

int pb_journal__add_dir(pb_journal *j, const char *rel, pb_error *err)
{
    int error = batch_begin(j, err), rc;
    if (error < 0)
        return error;
    if ((rc = run1(j, "INSERT OR IGNORE INTO dirs(path) VALUES(?)", "t", rel)) != SQLITE_OK)
        return sqlerr(j, rc, "dir", err);
    return 0;
}

int pb_journal__add_stagedir(pb_journal *j, const char *rel, pb_error *err)
{
    int error, rc;
    if (strcmp(rel, j->last_stagedir) == 0)
        return 0;
    if ((error = batch_begin(j, err)) < 0)
        return error;
    if ((rc = run1(j, "INSERT OR IGNORE INTO stagedirs(path) VALUES(?)", "t", rel)) != SQLITE_OK)
        return sqlerr(j, rc, "stage dir", err);
    snprintf(j->last_stagedir, sizeof(j->last_stagedir), "%s", rel);
    return sqlite3_changes(j->db) > 0;
}

int pb_journal__add_file(pb_journal *j, uint64_t n, const char *path, const char *stage, int kind,
                         const uint8_t hash[16], pb_error *err)
{
    int error = batch_begin(j, err), rc;
    if (error < 0)
        return error;
    if ((rc = run1(j, "INSERT INTO files(n, path, stage, kind, hash) VALUES(?, ?, ?, ?, ?)",
                   "ittib", (int64_t)n, path, stage, (int64_t)kind, hash)) != SQLITE_OK)
        return sqlerr(j, rc, "file", err);
    if (++j->batch >= BATCH)
        return commit(j, err);
    return 0;
}

int pb_journal__flush(pb_journal *j, pb_error *err)
{
    return commit(j, err);
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
    return rc == SQLITE_OK ? found : sqlerr(j, rc, "lookup", err);
}

/* ---------------------------------------------------------------------------------------- */
/* the run as recorded                                                                       */

typedef struct run_row {
    int have;
    char run_id[40];
    char state[16];
    char plex_dir[PATH_MAX];
    int online, plex_stopped, has_blobs;
    char main_mode[16], blobs_mode[16];
    uint8_t target_main[16], target_blobs[16];
} run_row;

static void col_text(char *dst, size_t cap, sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

static int load_run(pb_journal *j, run_row *r, pb_error *err)
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
        return sqlerr(j, rc, "read the run", err);
    snprintf(j->run_id, sizeof(j->run_id), "%s", r->run_id);
    return 0;
}

static int marker_present(pb_journal *j, const char *run_id, int *yes, pb_error *err)
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
    return marker_present(j, j->run_id, yes, err);
}

/* ---------------------------------------------------------------------------------------- */
/* journal modes of the live pair                                                            */

static int get_set_mode(const char *db_path, const char *want, char *now, size_t cap, pb_error *err)
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
    run_row r;
    int error;
    char main_db[PATH_MAX + 80], blobs_db[PATH_MAX + 80], now[16];
    *restored = 0;
    if ((error = load_run(j, &r, err)) < 0 || !r.have)
        return error;
    pb_journal__live_paths(r.plex_dir, main_db, blobs_db, sizeof(main_db));
    const char *paths[2] = {main_db, blobs_db};
    const char *modes[2] = {r.main_mode, r.blobs_mode};
    for (int i = 0; i < 2; i++) {
        if (!modes[i][0])
            continue;
        if ((error = get_set_mode(paths[i], NULL, now, sizeof(now), err)) < 0)
            return error;
        if (!now[0] || strcasecmp(now, modes[i]) == 0)
            continue;
        if ((error = get_set_mode(paths[i], modes[i], now, sizeof(now), err)) < 0)
            return error;
        if (strcasecmp(now, modes[i]) != 0)
            return pb_error_set(err, PB_EBUSY,
                                "cannot restore journal_mode=%s on %s (still %s: is Plex running?)",
                                modes[i], paths[i], now);
        (*restored)++;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* baseline record                                                                           */

static int write_durable(const char *dir, const char *name, const char *text, pb_error *err)
{
    char tmp[PATH_MAX + 64], dst[PATH_MAX + 64];
    int fd, dfd;
    size_t n = strlen(text);
    snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name);
    snprintf(dst, sizeof(dst), "%s/%s", dir, name);
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
        return pb_error_errno(err, "cannot write %s", tmp);
    if (write(fd, text, n) != (ssize_t)n || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        errno = e;
        return pb_error_errno(err, "cannot write %s", tmp);
    }
    close(fd);
    if (rename(tmp, dst) != 0)
        return pb_error_errno(err, "cannot rename %s", tmp);
    if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

int pb_baseline_write(const char *state_dir, const pb_baseline *b, pb_error *err)
{
    char text[200], m[33], bl[33];
    pb_bundle__hex(m, b->main);
    pb_bundle__hex(bl, b->blobs);
    snprintf(text, sizeof(text), "plexburst-baseline 1\nmain %s\nblobs %s\n", m,
             b->has_blobs ? bl : "-");
    return write_durable(state_dir, "baseline", text, err);
}

int pb_baseline_read(pb_baseline *out, const char *state_dir, pb_error *err)
{
    char path[PATH_MAX + 32], line[128];
    FILE *f;
    int ok = 0;
    memset(out, 0, sizeof(*out));
    snprintf(path, sizeof(path), "%s/baseline", state_dir);
    if (!(f = fopen(path, "r")))
        return errno == ENOENT ? pb_error_setd(err, PB_ENOTFOUND, ENOENT,
                                               "no baseline recorded in %s", state_dir)
                               : pb_error_errno(err, "cannot read %s", path);
    if (fgets(line, sizeof(line), f) && strcmp(line, "plexburst-baseline 1\n") == 0 &&
        fgets(line, sizeof(line), f) && strncmp(line, "main ", 5) == 0 &&
        pb_bundle__unhex(out->main, line + 5) == 0 && fgets(line, sizeof(line), f) &&
        strncmp(line, "blobs ", 6) == 0) {
        if (strcmp(line + 6, "-\n") == 0)
            ok = 1;
        else if (pb_bundle__unhex(out->blobs, line + 6) == 0)
            ok = out->has_blobs = 1;
    }
    fclose(f);
    return ok ? 0 : pb_error_set(err, PB_ECORRUPT, "baseline record %s is malformed", path);
}

/* ---------------------------------------------------------------------------------------- */
/* roll back / forward                                                                       */

static int open_root(pb_journal *j, int *fd, pb_error *err)
{
    if ((*fd = open(j->plex_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return pb_error_errno(err, "cannot open the data dir %s", j->plex_dir);
    return 0;
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
    error = pb_bundle__open_parent(&dfd, &name, root_fd, probe, NULL, NULL, err);
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

int pb_journal__rollback(pb_journal *j, pb_recover_result *out, pb_error *err)
{
    int error = 0, root_fd = -1, rc, restored = 0;
    sqlite3_stmt *st = NULL;
    run_row r;

    if ((error = commit(j, err)) < 0 || (error = load_run(j, &r, err)) < 0 || !r.have)
        return error;
    if ((error = open_root(j, &root_fd, err)) < 0)
        return error;
    /* the recorded stage files */
    rc = sqlite3_prepare_v2(j->db, "SELECT path, stage FROM files WHERE stage IS NOT NULL", -1, &st,
                            NULL);
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
        if (pb_bundle__open_parent(&dfd, &name, root_fd, sp, NULL, NULL, &e) == 0) {
            if (unlinkat(dfd, name, 0) == 0) {
                out->files_removed++;
                pb_journal__crash_point("recover-unlink");
            }
            close(dfd);
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc != SQLITE_DONE && rc != SQLITE_OK) {
        error = sqlerr(j, rc, "read the staged files", err);
        goto done;
    }
    /* any stage file of the run not recorded yet */
    rc = sqlite3_prepare_v2(j->db, "SELECT path FROM stagedirs", -1, &st, NULL);
    while ((rc == SQLITE_OK || rc == SQLITE_ROW) && (rc = sqlite3_step(st)) == SQLITE_ROW)
        if ((error = sweep_stagedir(root_fd, (const char *)sqlite3_column_text(st, 0), r.run_id,
                                    &out->files_removed, err)) < 0)
            goto done;
    sqlite3_finalize(st);
    st = NULL;
    if (rc != SQLITE_DONE && rc != SQLITE_OK) {
        error = sqlerr(j, rc, "read the stage dirs", err);
        goto done;
    }
    /* created directories, deepest (latest) first, only when empty */
    rc = sqlite3_prepare_v2(j->db, "SELECT path FROM dirs ORDER BY n DESC", -1, &st, NULL);
    while ((rc == SQLITE_OK || rc == SQLITE_ROW) && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *path = (const char *)sqlite3_column_text(st, 0);
        int dfd = -1;
        const char *name;
        pb_error e = PB_ERROR_INIT;
        if (pb_bundle__open_parent(&dfd, &name, root_fd, path, NULL, NULL, &e) == 0) {
            if (unlinkat(dfd, name, AT_REMOVEDIR) == 0)
                out->dirs_removed++;
            close(dfd);
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc != SQLITE_DONE && rc != SQLITE_OK) {
        error = sqlerr(j, rc, "read the created dirs", err);
        goto done;
    }
    if (syncfs(root_fd) != 0) {
        error = pb_error_errno(err, "syncfs on %s failed", j->plex_dir);
        goto done;
    }
    if ((error = pb_journal__restore_modes(j, &restored, err)) < 0)
        goto done;
    out->modes_restored = restored;
    if ((error = jexec(j,
                       "BEGIN IMMEDIATE; DELETE FROM files; DELETE FROM dirs; "
                       "DELETE FROM stagedirs; DELETE FROM run; COMMIT;",
                       "clear the run", err)) < 0)
        goto done;
    unlink(j->probes);
    out->action = PB_RECOVER_ROLLED_BACK;
done:
    sqlite3_finalize(st);
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
    error = pb_bundle__open_parent(&dfd, &name, root_fd, path, NULL, NULL, err);
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
    error = pb_bundle__open_parent(&dfd, &name, root_fd, f->path, NULL, NULL, err);
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

int pb_journal__forward(pb_journal *j, pb_recover_result *out, pb_error *err)
{
    int error = 0, root_fd = -1, rc, restored = 0;
    sqlite3_stmt *st = NULL, *upd = NULL;
    run_row r;
    fwd_row *rows = NULL;
    int64_t after = -1;

    if ((error = commit(j, err)) < 0 || (error = load_run(j, &r, err)) < 0 || !r.have)
        return error;
    if ((error = open_root(j, &root_fd, err)) < 0)
        return error;
    if (!(rows = malloc(sizeof(*rows) * BATCH))) {
        error = pb_error_set(err, PB_ENOMEM, "apply journal: out of memory");
        goto done;
    }
    rc = sqlite3_prepare_v2(j->db,
                            "SELECT n, path, stage, hash FROM files WHERE kind = ?1 AND done = 0 "
                            "AND n > ?2 ORDER BY n LIMIT ?3",
                            -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(j->db, "UPDATE files SET done = 1 WHERE n = ?", -1, &upd, NULL);
    if (rc != SQLITE_OK) {
        error = sqlerr(j, rc, "read the staged files", err);
        goto done;
    }
    for (;;) {
        int nrows = 0;
        sqlite3_reset(st);
        sqlite3_bind_int(st, 1, PB_JF_STAGED);
        sqlite3_bind_int64(st, 2, after);
        sqlite3_bind_int(st, 3, BATCH);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            fwd_row *f = &rows[nrows];
            const char *path = (const char *)sqlite3_column_text(st, 1);
            const char *stage = (const char *)sqlite3_column_text(st, 2);
            f->n = sqlite3_column_int64(st, 0);
            if (!path || !stage || sqlite3_column_bytes(st, 3) != 16 ||
                strlen(path) > PB_BUNDLE_PATH_MAX || strlen(stage) >= sizeof(f->stage) ||
                !strchr(path, '/')) {
                error = pb_error_set(err, PB_ECORRUPT, "apply journal: malformed file row %lld",
                                     (long long)f->n);
                goto done;
            }
            snprintf(f->path, sizeof(f->path), "%s", path);
            snprintf(f->stage, sizeof(f->stage), "%s", stage);
            memcpy(f->hash, sqlite3_column_blob(st, 3), 16);
            nrows++;
        }
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) {
            error = sqlerr(j, rc, "read the staged files", err);
            goto done;
        }
        if (!nrows)
            break;
        for (int i = 0; i < nrows; i++)
            if ((error = forward_one(j, root_fd, &rows[i], out, err)) < 0)
                goto done;
        if ((error = batch_begin(j, err)) < 0)
            goto done;
        for (int i = 0; i < nrows; i++) {
            sqlite3_reset(upd);
            sqlite3_bind_int64(upd, 1, rows[i].n);
            if ((rc = sqlite3_step(upd)) != SQLITE_DONE) {
                error = sqlerr(j, rc, "mark installed", err);
                goto done;
            }
        }
        sqlite3_reset(upd);
        if ((error = commit(j, err)) < 0)
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

int pb_journal__finish(pb_journal *j, pb_error *err)
{
    run_row r;
    int error;
    if ((error = commit(j, err)) < 0 || (error = load_run(j, &r, err)) < 0 || !r.have)
        return error;
    pb_journal__crash_point("finish");
    pb_baseline b;
    memset(&b, 0, sizeof(b));
    memcpy(b.main, r.target_main, 16);
    memcpy(b.blobs, r.target_blobs, 16);
    b.has_blobs = r.has_blobs;
    if ((error = pb_baseline_write(j->state_dir, &b, err)) < 0)
        return error;
    if ((error = jexec(j,
                       "BEGIN IMMEDIATE; DELETE FROM files; DELETE FROM dirs; "
                       "DELETE FROM stagedirs; DELETE FROM run; COMMIT;",
                       "clear the run", err)) < 0) {
        if (!sqlite3_get_autocommit(j->db))
            sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
        return error;
    }
    unlink(j->probes);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* online probes                                                                             */

#define MAX_PROBES    16
#define PROBES_PER_DB 8

typedef struct probe {
    char schema[8];
    char *table;
    int64_t rowid;
    int pre_present, post_present;
    uint8_t pre[16], post[16];
    int valid;
} probe;

struct pb_probes {
    probe p[MAX_PROBES];
    int n, per_db[2];
    char path[PATH_MAX + 32];
    int failed;
};

static void hash_begin(XXH3_state_t *st, int ncol)
{
    uint8_t b[4] = {(uint8_t)ncol, (uint8_t)(ncol >> 8), (uint8_t)(ncol >> 16),
                    (uint8_t)(ncol >> 24)};
    XXH3_128bits_reset(st);
    XXH3_128bits_update(st, b, 4);
}

static void hash_value(XXH3_state_t *st, int type, int64_t iv, double dv, const void *data, int n)
{
    uint8_t t = (uint8_t)type, b[8];
    XXH3_128bits_update(st, &t, 1);
    if (type == SQLITE_INTEGER || type == SQLITE_FLOAT) {
        uint64_t u;
        if (type == SQLITE_INTEGER)
            u = (uint64_t)iv;
        else
            memcpy(&u, &dv, 8);
        for (int i = 0; i < 8; i++)
            b[i] = (uint8_t)(u >> (8 * i));
        XXH3_128bits_update(st, b, 8);
    } else if (type == SQLITE_TEXT || type == SQLITE_BLOB) {
        uint32_t len = (uint32_t)n;
        for (int i = 0; i < 4; i++)
            b[i] = (uint8_t)(len >> (8 * i));
        XXH3_128bits_update(st, b, 4);
        if (n)
            XXH3_128bits_update(st, data, (size_t)n);
    }
}

static void hash_sqlvalue(XXH3_state_t *st, sqlite3_value *v)
{
    int t = sqlite3_value_type(v);
    const void *d = NULL;
    if (t == SQLITE_TEXT)
        d = sqlite3_value_text(v);
    else if (t == SQLITE_BLOB)
        d = sqlite3_value_blob(v);
    hash_value(st, t, t == SQLITE_INTEGER ? sqlite3_value_int64(v) : 0,
               t == SQLITE_FLOAT ? sqlite3_value_double(v) : 0, d,
               t == SQLITE_TEXT || t == SQLITE_BLOB ? sqlite3_value_bytes(v) : 0);
}

static void preupdate_row(sqlite3 *db, int old, uint8_t out[16])
{
    XXH3_state_t *st = XXH3_createState();
    int n = sqlite3_preupdate_count(db);
    if (!st) {
        memset(out, 0, 16);
        return;
    }
    hash_begin(st, n);
    for (int i = 0; i < n; i++) {
        sqlite3_value *v = NULL;
        if ((old ? sqlite3_preupdate_old(db, i, &v) : sqlite3_preupdate_new(db, i, &v)) !=
                SQLITE_OK ||
            !v) {
            hash_value(st, 0, 0, 0, NULL, 0);
            continue;
        }
        hash_sqlvalue(st, v);
    }
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
    memcpy(out, c.digest, 16);
    XXH3_freeState(st);
}

static void on_preupdate(void *payload, sqlite3 *db, int op, const char *schema, const char *table,
                         sqlite3_int64 k1, sqlite3_int64 k2)
{
    pb_probes *p = payload;
    int si = strcmp(schema, "main") == 0 ? 0 : strcmp(schema, "blobs") == 0 ? 1 : -1;
    if (si < 0 || strncmp(table, "sqlite_", 7) == 0 || strncmp(table, "pb_", 3) == 0)
        return;
    int64_t key = op == SQLITE_INSERT ? k2 : k1;
    for (int i = 0; i < p->n; i++) {
        probe *q = &p->p[i];
        if (!q->valid || q->rowid != key || strcmp(q->schema, schema) || strcmp(q->table, table))
            continue;
        if (op == SQLITE_UPDATE && k1 != k2) {
            q->valid = 0; /* a rowid change: not a usable probe */
            return;
        }
        q->post_present = op != SQLITE_DELETE;
        if (q->post_present)
            preupdate_row(db, 0, q->post);
        return;
    }
    if (p->n >= MAX_PROBES || p->per_db[si] >= PROBES_PER_DB || (op == SQLITE_UPDATE && k1 != k2))
        return;
    probe *q = &p->p[p->n];
    memset(q, 0, sizeof(*q));
    if (!(q->table = strdup(table)))
        return;
    snprintf(q->schema, sizeof(q->schema), "%s", schema);
    q->rowid = key;
    q->valid = 1;
    q->pre_present = op != SQLITE_INSERT;
    if (q->pre_present)
        preupdate_row(db, 1, q->pre);
    q->post_present = op != SQLITE_DELETE;
    if (q->post_present)
        preupdate_row(db, 0, q->post);
    p->n++;
    p->per_db[si]++;
}

/* The commit hook: writes the probes durably before SQLite commits; non-zero = roll back. */
static int on_commit(void *payload)
{
    pb_probes *p = payload;
    char *text = NULL;
    size_t cap = 256 + (size_t)MAX_PROBES * 400, len = 0;
    char h1[33], h2[33];
    pb_error e = PB_ERROR_INIT;
    const char *slash = strrchr(p->path, '/');
    char dir[PATH_MAX + 32];

    pb_journal__crash_point("commit");
    if (!(text = malloc(cap)))
        return 1;
    len += (size_t)snprintf(text + len, cap - len, "plexburst-probes 1\n");
    for (int i = 0; i < p->n; i++) {
        probe *q = &p->p[i];
        if (!q->valid || (q->pre_present == q->post_present &&
                          (!q->pre_present || memcmp(q->pre, q->post, 16) == 0)))
            continue;
        if (strlen(q->table) > 200)
            continue;
        pb_bundle__hex(h1, q->pre);
        pb_bundle__hex(h2, q->post);
        len += (size_t)snprintf(text + len, cap - len, "%s\t%s\t%lld\t%s\t%s\n", q->schema,
                                q->table, (long long)q->rowid, q->pre_present ? h1 : "-",
                                q->post_present ? h2 : "-");
    }
    {
        XXH128_canonical_t c;
        uint8_t d[16];
        XXH128_canonicalFromHash(&c, XXH3_128bits(text, len));
        memcpy(d, c.digest, 16);
        pb_bundle__hex(h1, d);
        len += (size_t)snprintf(text + len, cap - len, "end %s\n", h1);
    }
    snprintf(dir, sizeof(dir), "%.*s", (int)(slash ? slash - p->path : 1), slash ? p->path : ".");
    int error = write_durable(dir, slash ? slash + 1 : p->path, text, &e);
    free(text);
    if (error < 0) {
        p->failed = 1;
        return 1;
    }
    pb_journal__crash_point("probes");
    return 0;
}

int pb_probes__install(pb_probes **out, sqlite3 *db, const char *path, pb_error *err)
{
    pb_probes *p = calloc(1, sizeof(*p));
    *out = NULL;
    if (!p)
        return pb_error_set(err, PB_ENOMEM, "probes: out of memory");
    snprintf(p->path, sizeof(p->path), "%s", path);
    sqlite3_preupdate_hook(db, on_preupdate, p);
    sqlite3_commit_hook(db, on_commit, p);
    *out = p;
    return 0;
}

void pb_probes__free(pb_probes *p, sqlite3 *db)
{
    if (!p)
        return;
    if (db) {
        sqlite3_preupdate_hook(db, NULL, NULL);
        sqlite3_commit_hook(db, NULL, NULL);
    }
    for (int i = 0; i < p->n; i++)
        free(p->p[i].table);
    free(p);
}

/* Reads the probe file and decides: 1 committed, 0 not, PB_ECONFLICT undecidable. */
static int probes_decide(pb_journal *j, const run_row *r, int *committed, pb_error *err)
{
    FILE *f = fopen(j->probes, "r");
    char line[600], main_db[PATH_MAX + 80], blobs_db[PATH_MAX + 80];
    int nc = 0, nr = 0, nu = 0, error = 0, ended = 0;
    sqlite3 *db = NULL;
    XXH3_state_t *st = NULL, *hs = NULL;

    *committed = 0;
    if (!f)
        return 0; /* the commit hook never wrote: nothing was committed */
    if (!(st = XXH3_createState()) || !(hs = XXH3_createState())) {
        error = pb_error_set(err, PB_ENOMEM, "probes: out of memory");
        goto done;
    }
    XXH3_128bits_reset(st);
    pb_journal__live_paths(r->plex_dir, main_db, blobs_db, sizeof(main_db));
    if ((error = pb_compat_open(&db, main_db, PB_OPEN_READONLY, err)) < 0)
        goto done;
    if (r->has_blobs) {
        char *sql = sqlite3_mprintf("ATTACH %Q AS blobs", blobs_db);
        sqlite3_exec(db, sql, NULL, NULL, NULL);
        sqlite3_free(sql);
    }
    if (!fgets(line, sizeof(line), f) || strcmp(line, "plexburst-probes 1\n") != 0) {
        error = pb_error_set(err, PB_ECORRUPT, "probe file %s is malformed", j->probes);
        goto done;
    }
    XXH3_128bits_update(st, line, strlen(line));
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "end ", 4) == 0) {
            uint8_t want[16], d[16];
            XXH128_canonical_t c;
            XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
            memcpy(d, c.digest, 16);
            if (pb_bundle__unhex(want, line + 4) == 0 && memcmp(want, d, 16) == 0)
                ended = 1;
            break;
        }
        XXH3_128bits_update(st, line, strlen(line));
        char schema[8], table[256], pre[40], post[40];
        long long rowid;
        if (sscanf(line, "%7[^\t]\t%255[^\t]\t%lld\t%39[^\t]\t%39s", schema, table, &rowid, pre,
                   post) != 5)
            continue;
        char *sql =
            sqlite3_mprintf("SELECT * FROM \"%w\".\"%w\" WHERE rowid = %lld", schema, table, rowid);
        sqlite3_stmt *q = NULL;
        int rc = sql ? sqlite3_prepare_v2(db, sql, -1, &q, NULL) : SQLITE_NOMEM;
        sqlite3_free(sql);
        int present = 0;
        uint8_t h[16];
        if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
            int n = sqlite3_column_count(q);
            hash_begin(hs, n);
            for (int i = 0; i < n; i++)
                hash_sqlvalue(hs, sqlite3_column_value(q, i));
            XXH128_canonical_t c;
            XXH128_canonicalFromHash(&c, XXH3_128bits_digest(hs));
            memcpy(h, c.digest, 16);
            present = 1;
        }
        sqlite3_finalize(q);
        uint8_t ph[16], qh[16];
        int pre_present = strcmp(pre, "-") != 0, post_present = strcmp(post, "-") != 0;
        if ((pre_present && pb_bundle__unhex(ph, pre) < 0) ||
            (post_present && pb_bundle__unhex(qh, post) < 0))
            continue;
        int is_post = present ? post_present && memcmp(h, qh, 16) == 0 : !post_present;
        int is_pre = present ? pre_present && memcmp(h, ph, 16) == 0 : !pre_present;
        if (is_post && !is_pre)
            nc++;
        else if (is_pre && !is_post)
            nr++;
        else
            nu++;
    }
    if (!ended) {
        /* a torn probe file: the commit hook did not finish, so SQLite did not commit */
        goto done;
    }
    if (nc && !nr)
        *committed = 1;
    else if (nr && !nc)
        *committed = 0;
    else if (nc || nr || nu)
        error = pb_error_set(err, PB_ECONFLICT,
                             "cannot tell whether the interrupted online merge of run %s "
                             "committed (%d probe rows say yes, %d no, %d neither): compare the "
                             "DB with the bundle, then remove %s",
                             r->run_id, nc, nr, nu, j->path);
done:
    if (db)
        sqlite3_close(db);
    XXH3_freeState(st);
    XXH3_freeState(hs);
    fclose(f);
    return error;
}

/* ---------------------------------------------------------------------------------------- */
/* recovery                                                                                  */

int pb_journal__recover(pb_journal *j, pb_recover_result *out, pb_error *err)
{
    run_row r;
    int error, committed = 0;

    if ((error = load_run(j, &r, err)) < 0)
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
        if ((error = marker_present(j, r.run_id, &committed, err)) < 0)
            return error;
        if (!committed && r.online && (error = probes_decide(j, &r, &committed, err)) < 0)
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

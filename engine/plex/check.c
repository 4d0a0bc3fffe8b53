/*
 * check.c: `plexburst check` in the library (include/plexburst/plex.h): reads a Plex data
 * dir's library DBs read-only and reports schema version, integrity, row counts, whether FTS
 * finds an item by its title, and which Plex SQLite engine is installed.
 * Role: the first thing to run on a new host; also a health check before and after a merge.
 * Prerequisites: the compatibility layer (pb_compat_open), so that integrity_check and MATCH
 * work on real Plex DBs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "plexburst/compat.h"
#include "plexburst/plex.h"
#include "plexdir.h"
#include "plexengine.h"

static const char *const count_tables[PB_PLEX_CHECK_NCOUNTS] = {
    "library_sections",
    "metadata_items",
    "media_parts",
};

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int table_exists(sqlite3 *db, const char *name)
{
    sqlite3_stmt *st = NULL;
    int found = 0;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?1", -1,
                           &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        found = sqlite3_step(st) == SQLITE_ROW;
    }
    sqlite3_finalize(st);
    return found;
}

/* Runs a one-value query; returns the integer, or -1 on error. */
static int64_t query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* PRAGMA integrity_check: "ok", or the first problems joined with "; " (bounded). */
static int integrity(sqlite3 *db, char *out, size_t cap)
{
    sqlite3_stmt *st = NULL;
    size_t n = 0;
    int rc, ok = 0;
    out[0] = '\0';
    rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check(20)", -1, &st, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *row = (const char *)sqlite3_column_text(st, 0);
        if (row && n == 0 && strcmp(row, "ok") == 0)
            ok = 1;
        if (row && n + 1 < cap)
            n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? "; " : "", row);
        if (n >= cap)
            n = cap - 1;
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE && rc != SQLITE_OK) {
        snprintf(out, cap, "error: %s", sqlite3_errmsg(db));
        ok = 0;
    }
    sqlite3_finalize(st);
    return ok;
}

/* Looks one titled item up through FTS MATCH (phrase query on its title). */
static void check_fts(sqlite3 *db, pb_plex_check_result *r)
{
    static const char *const tables[] = {"fts4_metadata_titles_icu", "fts4_metadata_titles"};
    sqlite3_stmt *st = NULL;
    char *sql = NULL, *phrase = NULL;
    int64_t id = 0;

    r->fts = PB_FTS_SKIPPED;
    for (size_t i = 0; i < sizeof(tables) / sizeof(*tables) && !r->fts_table[0]; i++)
        if (table_exists(db, tables[i]))
            snprintf(r->fts_table, sizeof(r->fts_table), "%s", tables[i]);
    if (!r->fts_table[0] || !table_exists(db, "metadata_items")) {
        snprintf(r->fts_detail, sizeof(r->fts_detail), "no FTS title table");
        return;
    }
    if (sqlite3_prepare_v2(db,
                           "SELECT id, title FROM metadata_items WHERE title GLOB "
                           "'*[A-Za-z0-9]*' ORDER BY id LIMIT 1",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        id = sqlite3_column_int64(st, 0);
        snprintf(r->fts_title, sizeof(r->fts_title), "%s", sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    st = NULL;
    if (!r->fts_title[0]) {
        snprintf(r->fts_detail, sizeof(r->fts_detail), "no titled item to search for");
        return;
    }
    /* A phrase query; FTS phrases cannot escape '"', and the tokenizers drop it anyway. */
    phrase = sqlite3_mprintf("\"%s\"", r->fts_title);
    sql = sqlite3_mprintf("SELECT count(*), coalesce(sum(docid = ?2), 0) FROM \"%w\" "
                          "WHERE \"%w\" MATCH ?1",
                          r->fts_table, r->fts_table);
    if (!phrase || !sql) {
        r->fts = PB_FTS_FAILED;
        snprintf(r->fts_detail, sizeof(r->fts_detail), "out of memory");
        goto done;
    }
    for (char *p = phrase + 1; p[1]; p++)
        if (*p == '"')
            *p = ' ';
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        r->fts = PB_FTS_FAILED;
        snprintf(r->fts_detail, sizeof(r->fts_detail), "%s", sqlite3_errmsg(db));
        goto done;
    }
    sqlite3_bind_text(st, 1, phrase, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        r->fts = PB_FTS_FAILED;
        snprintf(r->fts_detail, sizeof(r->fts_detail), "%s", sqlite3_errmsg(db));
        goto done;
    }
    r->fts_matches = sqlite3_column_int64(st, 0);
    if (sqlite3_column_int64(st, 1) > 0) {
        r->fts = PB_FTS_OK;
    } else {
        r->fts = PB_FTS_FAILED;
        snprintf(r->fts_detail, sizeof(r->fts_detail),
                 "metadata_items %lld is not found by its title", (long long)id);
    }
done:
    sqlite3_finalize(st);
    sqlite3_free(sql);
    sqlite3_free(phrase);
}

static void check_main(sqlite3 *db, pb_plex_check_result *r)
{
    sqlite3_stmt *st = NULL;
    int ok = 1;

    r->tables = (int)query_int(db, "SELECT count(*) FROM sqlite_master WHERE type='table'");
    if (r->tables <= 0)
        ok = 0;
    if (table_exists(db, "schema_migrations") &&
        sqlite3_prepare_v2(db,
                           "SELECT version FROM schema_migrations "
                           "ORDER BY length(version) DESC, version DESC LIMIT 1",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(r->schema_version, sizeof(r->schema_version), "%s", sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    if (!r->schema_version[0])
        ok = 0;
    if (!integrity(db, r->integrity_main, sizeof(r->integrity_main)))
        ok = 0;
    for (int i = 0; i < PB_PLEX_CHECK_NCOUNTS; i++) {
        char *sql = sqlite3_mprintf("SELECT count(*) FROM \"%w\"", count_tables[i]);
        r->counts[i].table = count_tables[i];
        r->counts[i].rows = sql && table_exists(db, count_tables[i]) ? query_int(db, sql) : -1;
        if (r->counts[i].rows < 0)
            ok = 0;
        sqlite3_free(sql);
    }
    check_fts(db, r);
    if (r->fts == PB_FTS_FAILED)
        ok = 0;
    r->ok = ok;
}

/* Opens the data dir once (pb_plexdir) and takes the DB paths from it. */
static int locate(pb_plex_check_result *out, const char *plex_dir, pb_error *err)
{
    pb_plexdir d = {0};
    pb_error derr = PB_ERROR_INIT;
    int error = pb_plexdir_open(&d, plex_dir, &derr);
    if (error == PB_ENOTFOUND)
        error = pb_error_set(err, PB_ENOTFOUND, "check: no Plex library DB at %s/%s", plex_dir,
                             PB_PLEX_DB_REL);
    else if (error < 0)
        error = pb_error_setd(err, error, derr.dep_code, "check: %s", derr.msg);
    else if (!(out->main_path = strdup(d.main_db)) || !(out->blobs_path = strdup(d.blobs_db)))
        error = pb_error_set(err, PB_ENOMEM, "check: out of memory");
    else if (!file_exists(out->main_path))
        error = pb_error_set(err, PB_ENOTFOUND, "check: no Plex library DB at %s", out->main_path);
    pb_plexdir_dispose(&d);
    return error;
}

int pb_plex_check(pb_plex_check_result *out, const char *plex_dir, const char *plex_sqlite,
                  pb_error *err)
{
    sqlite3 *db = NULL, *blobs = NULL;
    pb_error eng_err = PB_ERROR_INIT;
    int error = 0;

    if (!out)
        return pb_error_set(err, PB_EINVALID, "check: no result");
    memset(out, 0, sizeof(*out));
    if (!plex_dir || !*plex_dir)
        return pb_error_set(err, PB_EINVALID, "check: no Plex data dir");
    if ((error = locate(out, plex_dir, err)) < 0)
        return error;

    error = pb_compat_open(&db, out->main_path, PB_OPEN_READONLY, err);
    if (error)
        goto done;
    check_main(db, out);

    out->has_blobs = file_exists(out->blobs_path);
    if (out->has_blobs) {
        error = pb_compat_open(&blobs, out->blobs_path, PB_OPEN_READONLY, err);
        if (error)
            goto done;
        if (!integrity(blobs, out->integrity_blobs, sizeof(out->integrity_blobs)))
            out->ok = 0;
    }

    out->engine_configured =
        plex_sqlite != NULL || (getenv(PB_PLEX_ENGINE_ENV) && *getenv(PB_PLEX_ENGINE_ENV));
    if (pb_plex_engine_find(&out->engine, plex_sqlite, &eng_err) != 0) {
        memset(&out->engine, 0, sizeof(out->engine));
        if (!(out->engine_detail = strdup(eng_err.msg))) {
            error = pb_error_set(err, PB_ENOMEM, "check: out of memory");
            goto done;
        }
        if (out->engine_configured)
            out->ok = 0; /* a configured engine must exist */
    }
done:
    sqlite3_close(blobs);
    sqlite3_close(db);
    return error;
}

void pb_plex_check_result_dispose(pb_plex_check_result *r)
{
    if (!r)
        return;
    free(r->main_path);
    free(r->blobs_path);
    free(r->engine_detail);
    memset(r, 0, sizeof(*r));
}

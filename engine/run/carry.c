/*
 * carry.c: a bootstrap replaces the home's library DB with the cloud's; this carries everything
 * the home owns over from the DB being replaced (pb_run__carry_home, carry_int.h): in one
 * transaction of the new DB, the id maps and the home's playlists, collections, labels and locked
 * edits (carry_map.c), then every table the Plex policy classes as user state
 * (pb_plex_class_by_name, the merge's own "home wins" set) becomes the home's rows, references
 * to library rows mapped onto the new library's ids.
 * Role: engine/run (bootstrap.c's INSTALL). Prerequisites: SQLite with the compatibility layer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "carry_int.h"
#include "plexburst/compat.h"
#include "plexburst/merge.h"
#include "policy.h"
#include "run_int.h"

/* User tables the carry leaves as the new DB has them: the schema's own record (it must match
 * the DB's tables) and the server's transient task list. */
static const char *const keep_new[] = {"schema_migrations", "activities", NULL};

static int sqlfail(sqlite3 *db, int rc, const char *what, pb_error *err)
{
    return pb_error_setd(err, PB_ESQLITE, rc, "%s: %s", what, db ? sqlite3_errmsg(db) : "");
}

static int carried_table(const char *name)
{
    int known = 0;
    if (pb_plex_class_by_name(name, &known) != PB_CLASS_USER || !known)
        return 0;
    for (const char *const *k = keep_new; *k; k++)
        if (strcmp(*k, name) == 0)
            return 0;
    return 1;
}

/* Every user table both DBs have: the new DB's rows give way to the home's. Rows keyed by guid
 * (plays, settings) keep a stale section or item reference as NULL; others go with their item. */
static int carry_user_tables(sqlite3 *c, pb_run_carry *out, pb_error *err)
{
    sqlite3_stmt *st = NULL;
    int error = 0, rc;
    rc = sqlite3_prepare_v2(c,
                            "SELECT o.name, (SELECT count(*) FROM pragma_table_info(o.name, 'old') "
                            "WHERE name = 'guid') FROM old.sqlite_master o JOIN main.sqlite_master "
                            "m USING (name) WHERE o.type = 'table' AND m.type = 'table' AND o.sql "
                            "NOT LIKE 'CREATE VIRTUAL%' ORDER BY o.name",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sqlfail(c, rc, "carry home state (user tables)", err);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        int guid_keyed = sqlite3_column_int(st, 1) > 0;
        uint64_t rows = 0;
        if (!name || !carried_table(name))
            continue;
        char *sql = sqlite3_mprintf("DELETE FROM main.\"%w\"", name);
        int drc = sql ? sqlite3_exec(c, sql, NULL, NULL, NULL) : SQLITE_NOMEM;
        sqlite3_free(sql);
        if (drc != SQLITE_OK) {
            error = sqlfail(c, drc, "carry home state (user tables)", err);
            break;
        }
        if ((error = pb_run__carry_copy(c, name, NULL, 0, 0, guid_keyed, &rows, &out->dropped,
                                        err)) < 0)
            break;
        out->user_rows += rows;
        out->user_tables++;
        if (strcmp(name, "accounts") == 0)
            out->accounts = rows;
        else if (strcmp(name, "metadata_item_settings") == 0)
            out->settings = rows;
        else if (strcmp(name, "metadata_item_views") == 0)
            out->views = rows;
    }
    if (!error && rc != SQLITE_DONE)
        error = sqlfail(c, rc, "carry home state (user tables)", err);
    sqlite3_finalize(st);
    return error;
}

int pb_run__carry_home(pb_run_carry *out, const char *new_db, const char *old_db, pb_error *err)
{
    int error = 0, rc;
    sqlite3 *c = NULL;
    memset(out, 0, sizeof(*out));
    if ((error = pb_compat_open(&c, new_db, 0, err)) < 0)
        return error;
    char *sql = sqlite3_mprintf("ATTACH %Q AS old", old_db);
    rc = sql ? sqlite3_exec(c, sql, NULL, NULL, NULL) : SQLITE_NOMEM;
    sqlite3_free(sql);
    if (rc != SQLITE_OK || (rc = sqlite3_exec(c, "PRAGMA temp_store=FILE; BEGIN IMMEDIATE", NULL,
                                              NULL, NULL)) != SQLITE_OK) {
        error = sqlfail(c, rc, "carry home state", err);
        goto done;
    }
    if ((error = pb_run__carry_maps(c, err)) < 0 ||
        (error = pb_run__carry_library(c, out, err)) < 0 ||
        (error = carry_user_tables(c, out, err)) < 0)
        goto done;
    if ((rc = sqlite3_exec(c, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK)
        error = sqlfail(c, rc, "carry home state", err);
done:
    if (error && c && !sqlite3_get_autocommit(c))
        sqlite3_exec(c, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(c);
    return error;
}

int pb_run__carry_user_state(const char *new_db, const char *old_db, uint64_t counts[3],
                             pb_error *err)
{
    pb_run_carry k;
    int error = pb_run__carry_home(&k, new_db, old_db, err);
    counts[0] = k.accounts;
    counts[1] = k.settings;
    counts[2] = k.views;
    return error;
}

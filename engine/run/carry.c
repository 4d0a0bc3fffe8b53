/*
 * carry.c: a bootstrap replaces the home's library DB with the cloud's; this carries the home's
 * user state over from the DB being replaced (pb_run__carry_user_state, run_int.h): accounts,
 * item settings and plays, matched by account and guid.
 * Role: engine/run (bootstrap.c's INSTALL). Prerequisites: SQLite with the compatibility layer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "plexburst/compat.h"
#include "run_int.h"

/* The columns of `table` present in both schemas, comma-separated and quoted, without `skip`. */
static int sqlfail(sqlite3 *db, int rc, const char *what, pb_error *err)
{
    return pb_error_setd(err, PB_ESQLITE, rc, "%s: %s", what, db ? sqlite3_errmsg(db) : "");
}

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

/* Runs `sql` (sqlite3_mprintf'd; freed here, NULL: out of memory). */
static int exec_free(sqlite3 *c, char *sql)
{
    int rc = sql ? sqlite3_exec(c, sql, NULL, NULL, NULL) : SQLITE_NOMEM;
    sqlite3_free(sql);
    return rc;
}

/* accounts: the home's accounts, by id. */
static int carry_accounts(sqlite3 *c, uint64_t *count, pb_error *err)
{
    char cols[8192];
    if (common_columns(c, "accounts", NULL, cols, sizeof(cols)) != 0)
        return 0;
    int rc = exec_free(c, sqlite3_mprintf("INSERT OR REPLACE INTO main.accounts (%s) SELECT %s "
                                          "FROM old.accounts o WHERE NOT EXISTS (SELECT 1 FROM "
                                          "main.accounts m WHERE m.id = o.id AND (SELECT count(*) "
                                          "FROM (SELECT %s FROM main.accounts WHERE id = o.id "
                                          "INTERSECT SELECT %s FROM old.accounts WHERE id = "
                                          "o.id)) = 1)",
                                          cols, cols, cols, cols));
    if (rc != SQLITE_OK)
        return sqlfail(c, rc, "carry user state (accounts)", err);
    *count = (uint64_t)sqlite3_changes(c);
    return 0;
}

/* item settings (watched state, resume position, ratings) by (account_id, guid): rows the new DB
 * has are updated in place (same id, so an identical row is no change at all), the others are
 * inserted. */
static int carry_settings(sqlite3 *c, uint64_t *count, pb_error *err)
{
    char cols[8192], set[16384], diff[16384];
    size_t ns = 0, nd = 0;
    if (common_columns(c, "metadata_item_settings", "id", cols, sizeof(cols)) != 0)
        return 0;
    const char *p = cols;
    while (*p) { /* cols is "\"a\", \"b\", ...": build a = o.a and a IS NOT o.a lists */
        const char *q = strchr(p + 1, '"');
        if (!q)
            break;
        int len = (int)(q - p + 1);
        ns += (size_t)snprintf(set + ns, sizeof(set) - ns, "%s%.*s = o.%.*s", ns ? ", " : "", len,
                               p, len, p);
        nd += (size_t)snprintf(diff + nd, sizeof(diff) - nd, "%sm.%.*s IS NOT o.%.*s",
                               nd ? " OR " : "", len, p, len, p);
        p = q + 1;
        while (*p == ',' || *p == ' ')
            p++;
    }
    if (ns >= sizeof(set) || nd >= sizeof(diff))
        return pb_error_set(err, PB_ENOMEM, "carry user state: too many columns");
    int rc = exec_free(c, sqlite3_mprintf("UPDATE main.metadata_item_settings AS m SET %s FROM "
                                          "old.metadata_item_settings AS o WHERE o.account_id IS "
                                          "m.account_id AND o.guid IS m.guid AND (%s)",
                                          set, diff));
    *count = (uint64_t)sqlite3_changes(c);
    if (rc == SQLITE_OK) {
        rc = exec_free(c, sqlite3_mprintf("INSERT INTO main.metadata_item_settings (%s) SELECT %s "
                                          "FROM old.metadata_item_settings o WHERE NOT EXISTS "
                                          "(SELECT 1 FROM main.metadata_item_settings m WHERE "
                                          "m.account_id IS o.account_id AND m.guid IS o.guid)",
                                          cols, cols));
        *count += (uint64_t)sqlite3_changes(c);
    }
    return rc == SQLITE_OK ? 0 : sqlfail(c, rc, "carry user state (metadata_item_settings)", err);
}

/* play history: plays the new DB does not have. */
static int carry_views(sqlite3 *c, uint64_t *count, pb_error *err)
{
    char cols[8192];
    if (common_columns(c, "metadata_item_views", "id", cols, sizeof(cols)) != 0)
        return 0;
    int rc = exec_free(c, sqlite3_mprintf("INSERT INTO main.metadata_item_views (%s) SELECT %s "
                                          "FROM old.metadata_item_views o WHERE NOT EXISTS "
                                          "(SELECT 1 FROM main.metadata_item_views m WHERE "
                                          "m.account_id IS o.account_id AND m.guid IS o.guid AND "
                                          "m.viewed_at IS o.viewed_at)",
                                          cols, cols));
    if (rc != SQLITE_OK)
        return sqlfail(c, rc, "carry user state (metadata_item_views)", err);
    *count = (uint64_t)sqlite3_changes(c);
    return 0;
}

int pb_run__carry_user_state(const char *new_db, const char *old_db, uint64_t counts[3],
                             pb_error *err)
{
    int error = 0, rc;
    sqlite3 *c = NULL;
    counts[0] = counts[1] = counts[2] = 0;
    if ((error = pb_compat_open(&c, new_db, 0, err)) < 0)
        return error;
    rc = exec_free(c, sqlite3_mprintf("ATTACH %Q AS old", old_db));
    if (rc != SQLITE_OK ||
        (rc = sqlite3_exec(c, "BEGIN IMMEDIATE", NULL, NULL, NULL)) != SQLITE_OK) {
        error = sqlfail(c, rc, "carry user state", err);
        goto done;
    }
    if ((error = carry_accounts(c, &counts[0], err)) < 0 ||
        (error = carry_settings(c, &counts[1], err)) < 0 ||
        (error = carry_views(c, &counts[2], err)) < 0)
        goto done;
    if ((rc = sqlite3_exec(c, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK)
        error = sqlfail(c, rc, "carry user state", err);
done:
    if (error && c && !sqlite3_get_autocommit(c))
        sqlite3_exec(c, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(c);
    return error;
}

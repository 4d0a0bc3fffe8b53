/*
 * carry_map.c: the library side of a bootstrap's carry (carry_int.h): the maps between the home's
 * library (attached as `old`) and the cloud's new one (`main`) by stable keys, the row copier
 * that translates references through them, and the home's library-class user state: playlists
 * and collections (metadata_items types 15 and 18), their collection and label tags (types 2
 * and 11) and memberships, the members' tags_collection, and the locked edits of items.
 * The Plex policy has no per-column owner (every library column follows the 3-way rule, which a
 * bootstrap cannot apply: there is no common base), so the columns a Plex user edits are listed
 * here: those a lockedFields entry protects from the agents, and uploaded artwork.
 * Role: engine/run, called by carry.c inside its transaction. Prerequisites: temp tables allowed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "carry_int.h"
#include "policy.h"

#define MAX_SQL (1u << 20)

static int sqlfail(sqlite3 *c, int rc, const char *what, pb_error *err)
{
    return pb_error_setd(err, PB_ESQLITE, rc, "carry home state (%s): %s", what, sqlite3_errmsg(c));
}

static int exec(sqlite3 *c, const char *sql, const char *what, pb_error *err)
{
    int rc = sqlite3_exec(c, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sqlfail(c, rc, what, err);
}

/* The single integer `sql` yields (0 when none). */
static int scalar(sqlite3 *c, const char *sql, int64_t *out, pb_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c, sql, -1, &st, NULL);
    *out = 0;
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sqlfail(c, rc, "count", err);
}

/* ------------------------------------------------------------------------------------------ */
/* Maps                                                                                         */

static const char *const mapped[] = {
    "library_sections", "section_locations", "media_parts", "media_items",
    "media_streams",    "metadata_items",    "tags",        NULL};

/* Each map in dependency order: INSERT OR IGNORE keeps the first (strongest) key's answer. */
static const char *const map_sql[] = {
    "INSERT OR IGNORE INTO temp.pbm_library_sections SELECT o.id, min(m.id) FROM "
    "old.library_sections o JOIN main.library_sections m ON m.uuid = o.uuid WHERE o.uuid <> '' "
    "GROUP BY o.id",
    "INSERT OR IGNORE INTO temp.pbm_library_sections SELECT o.id, min(m.id) FROM "
    "old.library_sections o JOIN main.library_sections m ON m.name = o.name AND m.section_type IS "
    "o.section_type GROUP BY o.id",
    "INSERT OR IGNORE INTO temp.pbm_section_locations SELECT o.id, min(m.id) FROM "
    "old.section_locations o JOIN temp.pbm_library_sections s ON s.old_id = o.library_section_id "
    "JOIN main.section_locations m ON m.library_section_id = s.new_id AND m.root_path = "
    "o.root_path GROUP BY o.id",
    "INSERT OR IGNORE INTO temp.pbm_media_parts SELECT o.id, min(m.id) FROM old.media_parts o JOIN "
    "main.media_parts m ON m.file = o.file WHERE o.file <> '' GROUP BY o.id",
    "INSERT OR IGNORE INTO temp.pbm_media_items SELECT o.media_item_id, min(n.media_item_id) FROM "
    "old.media_parts o JOIN temp.pbm_media_parts p ON p.old_id = o.id JOIN main.media_parts n ON "
    "n.id = p.new_id WHERE o.media_item_id IS NOT NULL AND n.media_item_id IS NOT NULL GROUP BY "
    "o.media_item_id",
    /* a stream: by its part and what it is (external subtitles share a NULL index: their url
     * tells them apart), then by its part, type and index alone */
    "INSERT OR IGNORE INTO temp.pbm_media_streams SELECT o.id, min(n.id) FROM old.media_streams o "
    "JOIN temp.pbm_media_parts p ON p.old_id = o.media_part_id JOIN main.media_streams n ON "
    "n.media_part_id = p.new_id AND n.stream_type_id IS o.stream_type_id AND n.\"index\" IS "
    "o.\"index\" AND n.url IS o.url AND n.codec IS o.codec AND n.language IS o.language GROUP BY "
    "o.id",
    "INSERT OR IGNORE INTO temp.pbm_media_streams SELECT o.id, min(n.id) FROM old.media_streams o "
    "JOIN temp.pbm_media_parts p ON p.old_id = o.media_part_id JOIN main.media_streams n ON "
    "n.media_part_id = p.new_id AND n.stream_type_id IS o.stream_type_id AND n.\"index\" IS "
    "o.\"index\" GROUP BY o.id",
    /* an item with media: by its file; any other (or a file that moved): by guid and type */
    "INSERT OR IGNORE INTO temp.pbm_metadata_items SELECT o.metadata_item_id, "
    "min(n.metadata_item_id) FROM old.media_items o JOIN temp.pbm_media_items p ON p.old_id = o.id "
    "JOIN main.media_items n ON n.id = p.new_id WHERE o.metadata_item_id IS NOT NULL AND "
    "n.metadata_item_id IS NOT NULL GROUP BY o.metadata_item_id",
    "INSERT OR IGNORE INTO temp.pbm_metadata_items SELECT o.id, min(m.id) FROM old.metadata_items "
    "o JOIN main.metadata_items m ON m.guid = o.guid AND m.metadata_type IS o.metadata_type WHERE "
    "o.guid <> '' GROUP BY o.id",
    "INSERT OR IGNORE INTO temp.pbm_tags SELECT o.id, min(m.id) FROM old.tags o JOIN main.tags m "
    "ON "
    "m.tag_type = o.tag_type AND m.tag = o.tag AND m.\"key\" IS o.\"key\" GROUP BY o.id",
    NULL,
};

int pb_run__carry_maps(sqlite3 *c, pb_error *err)
{
    int error;
    for (const char *const *t = mapped; *t; t++) {
        char *sql = sqlite3_mprintf("DROP TABLE IF EXISTS temp.\"pbm_%w\"; CREATE TEMP TABLE "
                                    "\"pbm_%w\" (old_id INTEGER PRIMARY KEY, new_id INTEGER NOT "
                                    "NULL)",
                                    *t, *t);
        if (!sql)
            return pb_error_set(err, PB_ENOMEM, "carry home state: out of memory");
        error = exec(c, sql, "maps", err);
        sqlite3_free(sql);
        if (error)
            return error;
    }
    for (const char *const *s = map_sql; *s; s++)
        if ((error = exec(c, *s, "maps", err)) < 0)
            return error;
    return 0;
}

const char *pb_run__carry_ref(const char *table, const char *column)
{
    char stem[128];
    size_t n = strlen(column);
    const char *alias = pb_plex_ref_alias(table, column); /* the policy's, parent_id included */
    if (alias)
        column = alias, n = 0;
    if (n) {
        if (n <= 3 || n >= sizeof(stem) - 1 || strcmp(column + n - 3, "_id") != 0)
            return NULL;
        snprintf(stem, sizeof(stem), "%.*ss", (int)(n - 3), column);
        column = stem;
    }
    for (const char *const *t = mapped; *t; t++)
        if (strcmp(*t, column) == 0)
            return *t;
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* The row copier                                                                               */

/* Appends to `cols` the columns of `table` both schemas have, NUL-separated; *n their count. */
static int common_columns(sqlite3 *c, const char *table, pb_buf *cols, size_t *n, pb_error *err)
{
    sqlite3_stmt *st = NULL;
    int error = 0, rc;
    char *sql = sqlite3_mprintf("SELECT a.name FROM pragma_table_info(%Q, 'main') a JOIN "
                                "pragma_table_info(%Q, 'old') b USING (name) ORDER BY a.cid",
                                table, table);
    *n = 0;
    if (!sql)
        return pb_error_set(err, PB_ENOMEM, "carry home state: out of memory");
    rc = sqlite3_prepare_v2(c, sql, -1, &st, NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK)
        return sqlfail(c, rc, table, err);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (!name || strchr(name, '"')) {
            error = pb_error_set(err, PB_ESCHEMA, "carry home state: odd column in %s", table);
            break;
        }
        if ((error = pb_buf_put(cols, name, strlen(name) + 1, err)) < 0)
            break;
        (*n)++;
    }
    if (!error && rc != SQLITE_DONE)
        error = sqlfail(c, rc, table, err);
    sqlite3_finalize(st);
    return error;
}

int pb_run__carry_copy(sqlite3 *c, const char *table, const char *where, int self_map, int new_id,
                       int null_unmapped, uint64_t *rows, uint64_t *dropped, pb_error *err)
{
    int error = 0;
    pb_buf cols = PB_BUF_INIT(1 << 16), ins = PB_BUF_INIT(MAX_SQL), sel = PB_BUF_INIT(MAX_SQL);
    pb_buf cond = PB_BUF_INIT(MAX_SQL), cnt = PB_BUF_INIT(MAX_SQL);
    size_t n = 0, k = 0;
    int64_t candidates = 0;
    *rows = 0;
    if ((error = common_columns(c, table, &cols, &n, err)) < 0 || n == 0)
        goto done;
    if ((error = pb_buf_printf(&cond, err, "(%s)", where ? where : "1")) < 0)
        goto done;
    for (const char *col = cols.ptr; k < n; col += strlen(col) + 1, k++) {
        const char *ref =
            strcmp(col, "id") == 0 ? (self_map ? table : NULL) : pb_run__carry_ref(table, col);
        if (strcmp(col, "id") == 0 && new_id)
            continue;
        const char *sep = ins.len ? ", " : "";
        if ((error = pb_buf_printf(&ins, err, "%s\"%s\"", sep, col)) < 0)
            goto done;
        if (!ref) {
            error = pb_buf_printf(&sel, err, "%so.\"%s\"", sep, col);
        } else {
            error = pb_buf_printf(&sel, err,
                                  "%sCASE WHEN o.\"%s\" IS NULL OR o.\"%s\" = 0 THEN o.\"%s\" "
                                  "ELSE (SELECT new_id FROM temp.\"pbm_%s\" WHERE old_id = "
                                  "o.\"%s\") END",
                                  sep, col, col, col, ref, col);
            if (!error && !null_unmapped)
                error = pb_buf_printf(&cond, err,
                                      " AND (o.\"%s\" IS NULL OR o.\"%s\" = 0 OR o.\"%s\" IN "
                                      "(SELECT old_id FROM temp.\"pbm_%s\"))",
                                      col, col, col, ref);
        }
        if (error)
            goto done;
    }
    if ((error = pb_buf_printf(&cnt, err, "SELECT count(*) FROM old.\"%s\" o WHERE (%s)", table,
                               where ? where : "1")) < 0 ||
        (error = scalar(c, cnt.ptr, &candidates, err)) < 0)
        goto done;
    pb_buf_clear(&cnt);
    if ((error = pb_buf_printf(&cnt, err,
                               "INSERT INTO main.\"%s\" (%s) SELECT %s FROM old.\"%s\" o "
                               "WHERE %s",
                               table, ins.ptr, sel.ptr, table, cond.ptr)) < 0 ||
        (error = exec(c, cnt.ptr, table, err)) < 0)
        goto done;
    *rows = (uint64_t)sqlite3_changes(c);
    if (dropped && (uint64_t)candidates > *rows)
        *dropped += (uint64_t)candidates - *rows;
done:
    pb_buf_dispose(&cols);
    pb_buf_dispose(&ins);
    pb_buf_dispose(&sel);
    pb_buf_dispose(&cond);
    pb_buf_dispose(&cnt);
    return error;
}

/* ------------------------------------------------------------------------------------------ */
/* Library-class user state                                                                     */

/* New ids for the rows of temp.`pending` (old ids), above every id `table` used (AUTOINCREMENT
 * never reuses one), recorded in temp.pbm_`table`. */
static int assign_ids(sqlite3 *c, const char *table, const char *pending, pb_error *err)
{
    char *sql = sqlite3_mprintf(
        "INSERT INTO temp.\"pbm_%w\" SELECT old_id, max(coalesce((SELECT max(id) FROM "
        "main.\"%w\"), 0), coalesce((SELECT seq FROM main.sqlite_sequence WHERE name = %Q), 0)) "
        "+ row_number() OVER (ORDER BY old_id) FROM temp.\"%w\"",
        table, table, table, pending);
    if (!sql)
        return pb_error_set(err, PB_ENOMEM, "carry home state: out of memory");
    int error = exec(c, sql, table, err);
    sqlite3_free(sql);
    return error;
}

/* Forgets the map entries of `pending` rows the copy skipped (their reference was unmapped). */
static int forget_skipped(sqlite3 *c, const char *table, const char *pending, pb_error *err)
{
    char *sql = sqlite3_mprintf("DELETE FROM temp.\"pbm_%w\" WHERE old_id IN (SELECT old_id FROM "
                                "temp.\"%w\") AND new_id NOT IN (SELECT id FROM main.\"%w\")",
                                table, pending, table);
    if (!sql)
        return pb_error_set(err, PB_ENOMEM, "carry home state: out of memory");
    int error = exec(c, sql, table, err);
    sqlite3_free(sql);
    return error;
}

/* Adds the old rows of `table` selected by `pick` (a SELECT of old ids) that the maps lack, with
 * new ids; *added their count. */
static int add_missing(sqlite3 *c, const char *table, const char *pick, uint64_t *added,
                       uint64_t *dropped, pb_error *err)
{
    int error;
    char pending[64];
    snprintf(pending, sizeof(pending), "pbn_%s", table);
    char *sql = sqlite3_mprintf("DROP TABLE IF EXISTS temp.\"%w\"; CREATE TEMP TABLE \"%w\" "
                                "(old_id INTEGER PRIMARY KEY); INSERT INTO temp.\"%w\" SELECT id "
                                "FROM (%s) WHERE id NOT IN (SELECT old_id FROM temp.\"pbm_%w\")",
                                pending, pending, pending, pick, table);
    if (!sql)
        return pb_error_set(err, PB_ENOMEM, "carry home state: out of memory");
    error = exec(c, sql, table, err);
    sqlite3_free(sql);
    if (error)
        return error;
    char where[128];
    snprintf(where, sizeof(where), "o.id IN (SELECT old_id FROM temp.\"%s\")", pending);
    if ((error = assign_ids(c, table, pending, err)) < 0 ||
        (error = pb_run__carry_copy(c, table, where, 1, 0, 0, added, dropped, err)) < 0)
        return error;
    return forget_skipped(c, table, pending, err);
}

/* The columns a user edits and locks (lockedFields), kept from the home for a locked item. */
static const char *const edited_cols[] = {
    "user_fields",   "title",   "title_sort",     "original_title",          "studio",
    "tagline",       "summary", "content_rating", "originally_available_at", "year",
    "edition_title", NULL};
/* Artwork the user uploaded (upload://), kept from the home whether locked or not. */
static const char *const upload_cols[] = {"user_thumb_url",      "user_art_url",
                                          "user_banner_url",     "user_music_url",
                                          "user_clear_logo_url", NULL};

static int has_column(sqlite3 *c, const char *table, const char *col)
{
    int64_t v = 0;
    pb_error e = PB_ERROR_INIT;
    char *sql = sqlite3_mprintf("SELECT (SELECT count(*) FROM pragma_table_info(%Q, 'main') WHERE "
                                "name = %Q) AND (SELECT count(*) FROM pragma_table_info(%Q, "
                                "'old') WHERE name = %Q)",
                                table, col, table, col);
    if (sql)
        scalar(c, sql, &v, &e);
    sqlite3_free(sql);
    return v != 0;
}

static int carry_edits(sqlite3 *c, uint64_t *edited, pb_error *err)
{
    int error = 0;
    pb_buf set = PB_BUF_INIT(1 << 16), diff = PB_BUF_INIT(1 << 16), sql = PB_BUF_INIT(1 << 17);
    *edited = 0;
    for (const char *const *p = edited_cols; *p && !error; p++)
        if (has_column(c, "metadata_items", *p)) {
            const char *sep = set.len ? ", " : "";
            if ((error = pb_buf_printf(&set, err, "%s\"%s\" = o.\"%s\"", sep, *p, *p)) == 0)
                error = pb_buf_printf(&diff, err, "%sm.\"%s\" IS NOT o.\"%s\"",
                                      diff.len ? " OR " : "", *p, *p);
        }
    if (error || !set.len)
        goto done;
    if ((error =
             pb_buf_printf(&sql, err,
                           "UPDATE main.metadata_items AS m SET %s FROM temp.pbm_metadata_items "
                           "p JOIN old.metadata_items o ON o.id = p.old_id WHERE m.id = "
                           "p.new_id AND o.user_fields LIKE '%%lockedFields=%%' AND (%s)",
                           set.ptr, diff.ptr)) < 0 ||
        (error = exec(c, sql.ptr, "edits", err)) < 0)
        goto done;
    *edited += (uint64_t)sqlite3_changes(c);
    for (const char *const *p = upload_cols; *p; p++) {
        if (!has_column(c, "metadata_items", *p))
            continue;
        pb_buf_clear(&sql);
        if ((error = pb_buf_printf(&sql, err,
                                   "UPDATE main.metadata_items AS m SET \"%s\" = o.\"%s\" FROM "
                                   "temp.pbm_metadata_items p JOIN old.metadata_items o ON o.id = "
                                   "p.old_id WHERE m.id = p.new_id AND o.\"%s\" LIKE 'upload://%%' "
                                   "AND m.\"%s\" IS NOT o.\"%s\"",
                                   *p, *p, *p, *p, *p)) < 0 ||
            (error = exec(c, sql.ptr, "uploads", err)) < 0)
            goto done;
        *edited += (uint64_t)sqlite3_changes(c);
    }
done:
    pb_buf_dispose(&set);
    pb_buf_dispose(&diff);
    pb_buf_dispose(&sql);
    return error;
}

/* Plex's types: playlist 15, collection 18 (metadata_items); collection 2, label 11 (tags). */
#define USER_ITEMS "SELECT id FROM old.metadata_items WHERE metadata_type IN (15, 18)"
#define USER_TAGS  "old.tags t WHERE t.tag_type IN (2, 11)"

int pb_run__carry_library(sqlite3 *c, pb_run_carry *out, pb_error *err)
{
    int error;
    uint64_t n = 0;
    if ((error = add_missing(c, "metadata_items", USER_ITEMS, &out->lists, &out->dropped, err)) <
            0 ||
        (error = add_missing(c, "tags",
                             "SELECT t.id FROM " USER_TAGS
                             " AND t.id IN (SELECT tag_id FROM old.taggings)",
                             &out->tags, &out->dropped, err)) < 0)
        return error;
    /* memberships the new library lacks (a new id each) */
    if ((error = pb_run__carry_copy(
             c, "taggings",
             "o.tag_id IN (SELECT t.id FROM " USER_TAGS
             ") AND NOT EXISTS (SELECT 1 FROM main.taggings m WHERE m.metadata_item_id = (SELECT "
             "new_id FROM temp.pbm_metadata_items WHERE old_id = o.metadata_item_id) AND m.tag_id "
             "= (SELECT new_id FROM temp.pbm_tags WHERE old_id = o.tag_id))",
             0, 1, 0, &out->taggings, &out->dropped, err)) < 0)
        return error;
    if (has_column(c, "metadata_items", "tags_collection") &&
        (error = exec(c,
                      "UPDATE main.metadata_items AS m SET tags_collection = o.tags_collection "
                      "FROM temp.pbm_metadata_items p JOIN old.metadata_items o ON o.id = "
                      "p.old_id WHERE m.id = p.new_id AND o.tags_collection <> '' AND "
                      "m.tags_collection IS NOT o.tags_collection",
                      "tags_collection", err)) < 0)
        return error;
    if ((error = carry_edits(c, &n, err)) < 0)
        return error;
    out->edited += n;
    return 0;
}

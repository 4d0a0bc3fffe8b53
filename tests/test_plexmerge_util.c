/*
 * test_plexmerge_util.c: hand-made Plex DB scenarios for the merge tests (see the header).
 * Also the merge options the Plex merge tests share (in-process or through the engine stand-in).
 * Prerequisites: fixtures/plex-schema.sql (PB_SOURCE_DIR), the compatibility layer, the logical
 * checksum of sqldiff/.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <unistd.h>

#include "testutil.h"
#include "plexburst/compat.h"
#include "plexburst/sqldiff.h"
#include "schema.h"
#include "test_plexmerge_util.h"

void pm_merge_options(pb_plex_merge_options *o, const char *base, const char *cloud,
                      const char *live, const char *bbase, const char *bcloud, const char *blive)
{
    pb_plex_merge_options_init(o);
    o->base = base;
    o->cloud = cloud;
    o->live = live;
    if (bbase && bbase[0]) {
        o->blobs_base = bbase;
        o->blobs_cloud = bcloud;
        o->blobs_live = blive;
    }
    o->engine = PB_PLEX_ENGINE_IN_PROCESS;
}

void pm_use_stand_in(pb_plex_merge_options *o)
{
    static char ext[4096];
    if (access(PM_STAND_IN, X_OK) != 0)
        tu_skip(PM_STAND_IN " not installed: cannot test the engine path");
    snprintf(ext, sizeof(ext), "%s", tu_build_path("plexcompat"));
    o->engine = PB_PLEX_ENGINE_PATH;
    o->plex_sqlite = PM_STAND_IN;
    o->compat_extension = ext;
}

void pm_stress_options(pb_plex_merge_options *o, const char *work_dir, int engine)
{
    o->keep_backups = 0;
    o->zstd_level = 1;
    o->work_dir = work_dir;
    o->max_delete_pct = 100;
    if (engine)
        pm_use_stand_in(o);
}

char *pm_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        buf[n] = '\0';
    fclose(f);
    return buf;
}

static sqlite3 *pm_open(const char *path, int create)
{
    sqlite3 *db = NULL;
    pb_error err = PB_ERROR_INIT;
    if (pb_compat_open(&db, path, create ? PB_OPEN_CREATE : 0, &err) != 0)
        fail_msg("open %s: %s", path, err.msg);
    return db;
}

void pm_exec(const char *path, const char *sql)
{
    sqlite3 *db = pm_open(path, 1);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s in: %.300s", path, msg, sql);
    sqlite3_close(db);
}

int64_t pm_int(const char *path, const char *sql)
{
    sqlite3 *db = pm_open(path, 0);
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s in: %s", path, sqlite3_errmsg(db), sql);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

void pm_text(const char *path, const char *sql, char *out, size_t cap)
{
    sqlite3 *db = pm_open(path, 0);
    sqlite3_stmt *st = NULL;
    out[0] = '\0';
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s in: %s", path, sqlite3_errmsg(db), sql);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

void pm_checksum(const char *path, char hex[33])
{
    pb_checksum sum;
    pb_error err = PB_ERROR_INIT;
    if (pb_sqldiff_checksum(&sum, path, NULL, &err) != 0)
        fail_msg("checksum %s: %s", path, err.msg);
    pb_checksum_hex(hex, &sum);
}

void pm_copy(const char *src, const char *dst)
{
    if (tu_sh("cp '%s' '%s'", src, dst) != 0)
        fail_msg("cp %s %s", src, dst);
}

/* Replaces every "@KEY@" of `sql` by its value; returns a malloc'd string. */
static char *subst(const char *sql, const char *const *kv)
{
    size_t cap = strlen(sql) * 2 + 4096, n = 0;
    char *out = malloc(cap);
    for (const char *p = sql; *p;) {
        int done = 0;
        for (int i = 0; kv[i]; i += 2) {
            size_t kl = strlen(kv[i]);
            if (strncmp(p, kv[i], kl) == 0) {
                size_t vl = strlen(kv[i + 1]);
                if (n + vl + 1 >= cap)
                    out = realloc(out, cap = (n + vl) * 2 + 64);
                memcpy(out + n, kv[i + 1], vl);
                n += vl;
                p += kl;
                done = 1;
                break;
            }
        }
        if (!done) {
            if (n + 2 >= cap)
                out = realloc(out, cap *= 2);
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
    return out;
}

static void make_plex_db(const char *path)
{
    static char *schema;
    pb_error err = PB_ERROR_INIT;
    if (!schema && !(schema = pm_slurp(tu_source_path("fixtures/plex-schema.sql"))))
        tu_skip("fixtures/plex-schema.sql not found (PB_SOURCE_DIR)");
    sqlite3 *db = pm_open(path, 1);
    if (pb_plex_schema_apply(db, schema, &err) != 0)
        fail_msg("schema: %s", err.msg);
    if (sqlite3_exec(db,
                     "INSERT INTO schema_migrations(version) VALUES ('500000000001.229'), "
                     "('500000000001.230'), ('500000000001.231');"
                     "INSERT INTO accounts(id, name) VALUES (1, 'owner');",
                     NULL, NULL, NULL) != SQLITE_OK)
        fail_msg("migrations: %s", sqlite3_errmsg(db));
    sqlite3_close(db);
}

static const char base_sql[] =
    "INSERT INTO library_sections(id, name, section_type, language, agent, scanner, uuid, "
    "created_at, updated_at) VALUES (1, 'Movies', 1, 'en-US', 'tv.plex.agents.movie', "
    "'Plex Movie', 'uuid-movies', 1600000000, 1600000000), (2, 'Music', 8, 'en-US', "
    "'tv.plex.agents.music', 'Plex Music', 'uuid-music', 1600000000, 1600000000);"
    "INSERT INTO section_locations(id, library_section_id, root_path, available) VALUES "
    "(1, 1, '@ROOT@/Movies', 1), (2, 2, '@ROOT@/Music', 1);"
    "INSERT INTO directories(id, library_section_id, parent_directory_id, path) VALUES "
    "(1, 1, NULL, ''), (2, 2, NULL, '');"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20) "
    "INSERT INTO metadata_items(id, library_section_id, metadata_type, guid, title, title_sort, "
    "year, added_at, created_at, updated_at, extra_data) SELECT i, 1, 1, 'plex://movie/' || i, "
    "'Movie ' || i, 'Movie ' || i, 2000 + i, 1600000000 + i, 1600000000, 1600000000, '{}' FROM n;"
    "INSERT INTO metadata_items(id, library_section_id, parent_id, metadata_type, guid, title, "
    "title_sort, \"index\", added_at, created_at, updated_at, extra_data) VALUES "
    "(21, 2, NULL, 8, 'plex://artist/1', 'The Artist', 'Artist', NULL, 1600000000, 1600000000, "
    "1600000000, '{}'), (22, 2, 21, 9, 'plex://album/1', 'The Album', 'Album', 1, 1600000000, "
    "1600000000, 1600000000, '{}');"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) "
    "INSERT INTO metadata_items(id, library_section_id, parent_id, metadata_type, guid, title, "
    "title_sort, \"index\", added_at, created_at, updated_at, extra_data) SELECT 22 + i, 2, 22, "
    "10, 'plex://track/' || i, 'Track ' || i, 'Track ' || i, i, 1600000000, 1600000000, "
    "1600000000, '{}' FROM n;"
    "INSERT INTO media_items(id, library_section_id, section_location_id, metadata_item_id, "
    "type_id, size, duration, container, created_at, updated_at, media_analysis_version) "
    "SELECT CASE WHEN id <= 20 THEN id ELSE id - 2 END, library_section_id, library_section_id, "
    "id, 1, 1000000, 5400000, CASE WHEN metadata_type = 1 THEN 'mkv' ELSE 'flac' END, "
    "1600000000, 1600000000, 0 FROM metadata_items WHERE metadata_type IN (1, 10);"
    "INSERT INTO media_parts(id, media_item_id, directory_id, hash, file, size, duration, "
    "created_at, updated_at, extra_data) SELECT mi.id, mi.id, mi.library_section_id, "
    "printf('%040d', mi.id), CASE WHEN m.metadata_type = 1 THEN '@ROOT@/Movies/' || m.title || "
    "' (' || m.year || ')/' || m.title || '.mkv' ELSE '@ROOT@/Music/The Artist/The Album/' || "
    "m.title || '.flac' END, 1000000, 5400000, 1600000000, 1600000000, '{}' FROM media_items mi "
    "JOIN metadata_items m ON m.id = mi.metadata_item_id;"
    "INSERT INTO media_streams(id, stream_type_id, media_item_id, media_part_id, codec, "
    "\"index\", url, extra_data, created_at, updated_at) SELECT p.id, CASE WHEN p.id <= 20 THEN "
    "1 ELSE 2 END, p.media_item_id, p.id, CASE WHEN p.id <= 20 THEN 'h264' ELSE 'flac' END, 0, "
    "NULL, '{}', 1600000000, 1600000000 FROM media_parts p;"
    "INSERT INTO media_streams(id, stream_type_id, media_item_id, media_part_id, codec, url, "
    "extra_data) VALUES (26, 3, 1, 1, 'srt', "
    "'file://@URLROOT@/Movies/Movie%201%20(2001)/Movie%201.en.srt', '{}');"
    "INSERT INTO tags(id, tag, tag_type, created_at, updated_at) VALUES (1, 'Drama', 1, "
    "1600000000, 1600000000), (2, 'intro', 12, 1600000000, 1600000000);"
    "INSERT INTO taggings(id, metadata_item_id, tag_id, \"index\", created_at) SELECT id, id, 1, "
    "0, 1600000000 FROM metadata_items WHERE metadata_type = 1;"
    "INSERT INTO metadata_item_settings(id, account_id, guid, view_count, view_offset, "
    "last_viewed_at, created_at, updated_at) VALUES (1, 1, 'plex://movie/1', 1, 0, 1600000000, "
    "1600000000, 1600000000);";

static const char cloud_sql[] =
    "UPDATE metadata_items SET extra_data = '{\"ln:loudnessAnalysisVersion\":\"1\"}' WHERE id IN "
    "(1, 2);"
    "UPDATE metadata_items SET extra_data = '{\"ms:musicAnalysisVersion\":\"1\"}', updated_at = "
    "1700000000 WHERE metadata_type = 10;"
    "UPDATE media_parts SET extra_data = '{\"mi:indexes\":\"sd\"}' WHERE id IN (1, 2, 3);"
    "UPDATE media_parts SET file = '@ROOT@/Movies/Movie 7 (2007)/Movie 7 - remux.mkv' WHERE id = "
    "7;"
    "UPDATE media_streams SET extra_data = '{\"ln:peak\":\"0.9\"}' WHERE id IN (21, 22);"
    "UPDATE media_items SET media_analysis_version = 6 WHERE id <= 20;"
    "UPDATE metadata_items SET summary = 'Cloud summary' WHERE id = 5;"
    "UPDATE metadata_items SET title = 'Movie 6 (cloud)' WHERE id = 6;"
    "INSERT INTO section_locations(id, library_section_id, root_path, available) VALUES "
    "(3, 1, '@ROOT@/Movies 4K', 1);"
    "INSERT INTO tags(id, tag, tag_type, created_at) VALUES (3, 'Thriller', 1, 1700000000), "
    "(4, 'Sci-Fi', 1, 1700000000);"
    "INSERT INTO metadata_items(id, library_section_id, metadata_type, guid, title, title_sort, "
    "year, added_at, created_at, updated_at, extra_data) VALUES (28, 1, 1, 'plex://movie/28', "
    "'New Cloud Movie', 'New Cloud Movie', 2024, 1700000000, 1700000000, 1700000000, '{}'), "
    "(29, 1, 1, 'plex://movie/29', 'Another Cloud Movie', 'Another Cloud Movie', 2024, "
    "1700000000, 1700000000, 1700000000, '{}'), (30, 1, 12, "
    "'file://@URLROOT@/Movies/New%20Cloud%20Movie%20(2024)/Trailer.mkv', 'Trailer', 'Trailer', "
    "2024, 1700000000, 1700000000, 1700000000, '{}');"
    "INSERT INTO metadata_relations(id, metadata_item_id, related_metadata_item_id, "
    "relation_type) VALUES (1, 28, 30, 0);"
    "INSERT INTO media_items(id, library_section_id, section_location_id, metadata_item_id, "
    "type_id, size, duration, container, created_at, updated_at, media_analysis_version) VALUES "
    "(26, 1, 1, 28, 1, 2000000, 6000000, 'mkv', 1700000000, 1700000000, 6), (27, 1, 3, 29, 1, "
    "2000000, 6000000, 'mkv', 1700000000, 1700000000, 6);"
    "INSERT INTO media_parts(id, media_item_id, directory_id, hash, file, size, duration, "
    "created_at, updated_at, extra_data) VALUES (26, 26, 1, 'hash26', '@ROOT@/Movies/New Cloud "
    "Movie (2024)/New Cloud Movie.mkv', 2000000, 6000000, 1700000000, 1700000000, "
    "'{\"mi:indexes\":\"sd\"}'), (27, 27, 1, 'hash27', '@ROOT@/Movies 4K/Another Cloud Movie "
    "(2024)/Another Cloud Movie.mkv', 2000000, 6000000, 1700000000, 1700000000, '{}');"
    "INSERT INTO media_streams(id, stream_type_id, media_item_id, media_part_id, codec, url, "
    "extra_data) VALUES (27, 1, 26, 26, 'hevc', NULL, '{}'), (28, 3, 26, 26, 'srt', "
    "'file://@URLROOT@/Movies/New%20Cloud%20Movie%20(2024)/New%20Cloud%20Movie.en.srt', '{}'), "
    "(29, 1, 27, 27, 'hevc', NULL, '{}');"
    "INSERT INTO taggings(id, metadata_item_id, tag_id, \"index\", text, time_offset, "
    "end_time_offset, created_at) VALUES (21, 28, 3, 0, NULL, NULL, NULL, 1700000000), (22, 29, "
    "4, 0, NULL, NULL, NULL, 1700000000), (23, 1, 2, 0, 'intro', 10000, 40000, 1700000000);"
    "UPDATE metadata_item_settings SET view_count = 5 WHERE id = 1;";

static const char home_sql[] =
    "INSERT INTO metadata_items(id, library_section_id, metadata_type, guid, title, title_sort, "
    "added_at, created_at, updated_at) VALUES (28, 1, 1, 'local://28', 'Home Video', 'Home "
    "Video', 1700000100, 1700000100, 1700000100), (29, NULL, 15, NULL, 'Home playlist', 'Home "
    "playlist', 1700000100, 1700000100, 1700000100);"
    "INSERT INTO media_items(id, library_section_id, section_location_id, metadata_item_id, "
    "type_id, container, created_at, updated_at) VALUES (26, 1, 1, 28, 1, 'mp4', 1700000100, "
    "1700000100);"
    "INSERT INTO media_parts(id, media_item_id, directory_id, hash, file, created_at, "
    "updated_at) VALUES (26, 26, 1, 'home26', '@HOME@/Movies/Home Video.mp4', 1700000100, "
    "1700000100);"
    "INSERT INTO tags(id, tag, tag_type, created_at) VALUES (3, 'Thriller', 1, 1700000100), "
    "(4, 'Favourites', 11, 1700000100);"
    "INSERT INTO taggings(id, metadata_item_id, tag_id, \"index\", created_at) VALUES (21, 3, 4, "
    "0, 1700000100);"
    "UPDATE metadata_items SET title = 'Movie 6 (home edit)' WHERE id = 6;"
    "UPDATE metadata_item_settings SET view_count = 2, view_offset = 1000 WHERE id = 1;"
    "INSERT INTO metadata_item_settings(id, account_id, guid, view_count) VALUES (2, 1, "
    "'plex://movie/2', 1);";

/* The live copy's paths at home: the four path columns rewritten. */
static const char to_home_sql[] =
    "UPDATE section_locations SET root_path = replace(root_path, '/cloud/My Media', "
    "'/home/Media');"
    "UPDATE media_parts SET file = replace(file, '/cloud/My Media', '/home/Media');"
    "UPDATE media_streams SET url = replace(url, 'file:///cloud/My%20Media', "
    "'file:///home/Media');";

static const char blobs_base_sql[] =
    "INSERT INTO blobs(id, blob, linked_type, linked_id, linked_guid, created_at, blob_type) "
    "VALUES (1, x'1f8b0800', 'media_part', 1, 'guid-part-1', 1600000000, 5);";
static const char blobs_cloud_sql[] =
    "INSERT INTO blobs(id, blob, linked_type, linked_id, linked_guid, created_at, blob_type) "
    "VALUES (2, x'1f8b0801', 'media_part', 26, 'guid-part-26', 1700000000, 5), (3, x'1f8b0802', "
    "'media_stream', 28, 'guid-stream-28', 1700000000, 3);";
static const char blobs_home_sql[] =
    "INSERT INTO blobs(id, blob, linked_type, linked_id, linked_guid, created_at, blob_type) "
    "VALUES (2, x'1f8b0803', 'media_part', 26, 'guid-home-26', 1700000100, 5);";

static void run_sql(const char *path, const char *sql, const char *root, const char *home)
{
    char urlroot[256];
    /* the URL form of the root: spaces as %20 */
    size_t k = 0;
    for (const char *p = root; *p && k + 4 < sizeof(urlroot); p++) {
        if (*p == ' ') {
            memcpy(urlroot + k, "%20", 3);
            k += 3;
        } else {
            urlroot[k++] = *p;
        }
    }
    urlroot[k] = '\0';
    const char *kv[] = {"@ROOT@", root, "@URLROOT@", urlroot, "@HOME@", home, NULL};
    char *s = subst(sql, kv);
    pm_exec(path, s);
    free(s);
}

void pm_build(pm_scenario *s, const char *tag, const pm_options *o)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "%s", tu_tmpdir(tag));
    snprintf(s->base, sizeof(s->base), "%s/base.db", s->dir);
    snprintf(s->cloud, sizeof(s->cloud), "%s/cloud.db", s->dir);
    snprintf(s->live, sizeof(s->live), "%s/live.db", s->dir);
    const char *root = o->mapped ? "/cloud/My Media" : "/data/media";
    const char *home = o->mapped ? "/home/Media" : "/data/media";

    make_plex_db(s->base);
    run_sql(s->base, base_sql, root, home);
    pm_copy(s->base, s->cloud);
    pm_copy(s->base, s->live);
    if (o->cloud_changes)
        run_sql(s->cloud, cloud_sql, root, home);
    if (o->mapped) {
        pm_exec(s->live, to_home_sql);
        snprintf(s->pathmap, sizeof(s->pathmap), "%s/path_mappings.json", s->dir);
        FILE *f = fopen(s->pathmap, "w");
        assert_non_null(f);
        fputs("{\"mappings\": {\"/cloud/My Media\": \"/home/Media\"}}\n", f);
        fclose(f);
    }
    if (o->home_changes)
        run_sql(s->live, home_sql, root, home);
    if (o->blobs) {
        snprintf(s->bbase, sizeof(s->bbase), "%s/base.blobs.db", s->dir);
        snprintf(s->bcloud, sizeof(s->bcloud), "%s/cloud.blobs.db", s->dir);
        snprintf(s->blive, sizeof(s->blive), "%s/live.blobs.db", s->dir);
        make_plex_db(s->bbase);
        pm_exec(s->bbase, blobs_base_sql);
        pm_copy(s->bbase, s->bcloud);
        pm_copy(s->bbase, s->blive);
        if (o->cloud_changes)
            pm_exec(s->bcloud, blobs_cloud_sql);
        if (o->home_changes)
            pm_exec(s->blive, blobs_home_sql);
    }
    if (o->wal) {
        pm_exec(s->live, "PRAGMA journal_mode=WAL");
        if (o->blobs)
            pm_exec(s->blive, "PRAGMA journal_mode=WAL");
    }
}

/* ---------------------------------------------------------------------------------------------
 * The CLI
 */

char pm_out[1 << 20];

static const char *cli_path(void)
{
    const char *p = tu_build_path("plexburst");
    if (access(p, X_OK) != 0)
        tu_skip("the plexburst CLI is not built");
    return p;
}

/* Runs plexburst with `args`; stdout in `out`, stderr in `err` (cap bytes). */
int pm_cli(char *err, size_t cap, const char *dir, const char *args)
{
    char errfile[4300];
    snprintf(errfile, sizeof(errfile), "%s/stderr.txt", dir);
    int rc = tu_sh_out(pm_out, sizeof(pm_out), "'%s' %s 2>'%s'", cli_path(), args, errfile);
    char *e = pm_slurp(errfile);
    snprintf(err, cap, "%s", e ? e : "");
    free(e);
    return rc;
}

json_t *pm_json(void)
{
    json_error_t je;
    json_t *j = json_loads(pm_out, 0, &je);
    if (!j)
        fail_msg("stdout is not one JSON object: %s (line %d): %.300s", je.text, je.line, pm_out);
    assert_true(json_is_object(j));
    return j;
}

json_t *pm_path(json_t *j, const char *dotted)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", dotted);
    json_t *cur = j;
    for (char *tok = strtok(buf, "."); tok; tok = strtok(NULL, "."))
        if (!(cur = json_object_get(cur, tok)))
            fail_msg("key %s missing in the JSON output", dotted);
    return cur;
}

void pm_contract(json_t *j, int merge)
{
    const char *ints[] = {"rows.inserted",   "rows.updated",
                          "rows.deleted",    "rows.conflicts",
                          "rows.remapped",   "rows.user_state_dropped",
                          "bytes.changeset", "bytes.changeset_zstd",
                          "new_items",       NULL};
    for (int i = 0; ints[i]; i++)
        assert_true(json_is_integer(pm_path(j, ints[i])));
    assert_true(json_is_boolean(pm_path(j, "ok")));
    assert_true(json_is_boolean(pm_path(j, "guards.deletion.ok")));
    assert_true(json_is_boolean(pm_path(j, "guards.schema.ok")));
    assert_true(json_is_object(pm_path(j, "guards.schema.versions")));
    assert_true(json_is_array(pm_path(j, "sections")));
    assert_true(json_is_array(pm_path(j, "tables")));
    assert_true(json_is_array(pm_path(j, "new_titles")));
    assert_true(json_is_object(pm_path(j, "analysis")));
    assert_true(json_is_number(pm_path(j, "timings_ms.diff")));
    assert_true(json_is_number(pm_path(j, "timings_ms.total")));
    if (merge) {
        assert_true(json_is_number(pm_path(j, "timings_ms.merge")));
        assert_true(json_is_string(pm_path(j, "engine")) ||
                    (json_is_null(pm_path(j, "engine")) && json_is_false(pm_path(j, "ok"))));
    }
}

/* Human output: emojis only at the start of a line, no exclamation marks. */
void pm_conventions(const char *text)
{
    static const char *const emojis[] = {"✅", "❌", "⚠️", "🔍", "📦", "📊", "🚨", NULL};
    assert_null(strchr(text, '!'));
    const char *line = text;
    while (*line) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        for (int i = 0; emojis[i]; i++) {
            size_t el = strlen(emojis[i]);
            for (size_t k = 1; k + el <= n; k++)
                if (memcmp(line + k, emojis[i], el) == 0)
                    fail_msg("emoji inside a line: %.*s", (int)n, line);
        }
        line += n + (end ? 1 : 0);
    }
}

int pm_one_line(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && s[n - 1] == '\n' && strchr(s, '\n') == s + n - 1;
}

/*
 * test_plexmerge_unit.c: path mapping (engine/plex/pathmap.c), the Plex policy read from a schema
 * (engine/plex/policy.c), the per-key merge of extra_data (engine/plex/extradata.c, and through the
 * policy's merge_column) and the deletion guard's verdicts (engine/plex/guards.c).
 * Prerequisites: fixtures/plex-schema.sql (PB_SOURCE_DIR), the compatibility layer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <jansson.h>

#include "testutil.h"
#include "plexburst/compat.h"
#include "plexburst/plexmerge.h"
#include "extradata.h"
#include "guards.h"
#include "policy.h"
#include "schema.h"

static char *map(const pb_pathmap *pm, int kind, const char *in)
{
    char *out = NULL;
    size_t n = 0;
    int rc = pb_pathmap_map(pm, kind, in, strlen(in), &out, &n);
    assert_true(rc == 0 || rc == 1);
    if (rc == 1) {
        assert_non_null(out);
        assert_int_equal(n, strlen(out));
    }
    return out; /* NULL when unchanged */
}

static void expect_map(const pb_pathmap *pm, int kind, const char *in, const char *want)
{
    char *got = map(pm, kind, in);
    if (!want) {
        if (got)
            fail_msg("'%s' mapped to '%s', expected unchanged", in, got);
    } else {
        if (!got)
            fail_msg("'%s' unchanged, expected '%s'", in, want);
        assert_string_equal(got, want);
    }
    free(got);
}

static pb_pathmap *parse(const char *json)
{
    pb_pathmap *pm = NULL;
    pb_error err = PB_ERROR_INIT;
    int rc = pb_pathmap_parse(&pm, json, strlen(json), &err);
    if (rc)
        fail_msg("parse: %s", err.msg);
    return pm;
}

static void test_pathmap_plain(void **state)
{
    (void)state;
    pb_pathmap *pm = parse("{\"mappings\": {\"/cloud/media\": \"/mnt/home media\", "
                           "\"/cloud/media/Movies/\": \"/srv/movies\", \"/data\": \"/\"}}");
    assert_int_equal(pb_pathmap_count(pm), 3);
    /* longest prefix wins */
    expect_map(pm, PB_PATH_PLAIN, "/cloud/media/Movies/A (2010)/a.mkv",
               "/srv/movies/A (2010)/a.mkv");
    expect_map(pm, PB_PATH_PLAIN, "/cloud/media/Music/x.flac", "/mnt/home media/Music/x.flac");
    /* exact match, and the component boundary */
    expect_map(pm, PB_PATH_PLAIN, "/cloud/media", "/mnt/home media");
    expect_map(pm, PB_PATH_PLAIN, "/cloud/media2/x", NULL);
    expect_map(pm, PB_PATH_PLAIN, "/cloud/mediaX", NULL);
    expect_map(pm, PB_PATH_PLAIN, "/cloud/media/MoviesX/y", "/mnt/home media/MoviesX/y");
    /* a root target: no double slash */
    expect_map(pm, PB_PATH_PLAIN, "/data/x/y", "/x/y");
    expect_map(pm, PB_PATH_PLAIN, "relative/cloud/media", NULL);
    /* kinds: only file:// guids are mapped */
    expect_map(pm, PB_PATH_FILE_GUID, "plex://movie/5d776", NULL);
    expect_map(pm, PB_PATH_NONE, "/cloud/media/x", NULL);
    pb_pathmap_free(pm);

    /* a root source */
    pm = parse("{\"mappings\": {\"/\": \"/mnt\"}}");
    expect_map(pm, PB_PATH_PLAIN, "/a/b", "/mnt/a/b");
    pb_pathmap_free(pm);
}

static void test_pathmap_url(void **state)
{
    (void)state;
    pb_pathmap *pm = parse("{\"mappings\": {\"/cloud/My Media\": \"/home/Media Library\"}}");
    const char *cloud_url = "file:///cloud/My%20Media/Movies/Am%C3%A9lie%20(2001)/a%20b.en.srt";
    const char *home_url = "file:///home/Media%20Library/Movies/Am%C3%A9lie%20(2001)/a%20b.en.srt";
    expect_map(pm, PB_PATH_FILE_URL, cloud_url, home_url);
    /* the boundary is checked on the decoded path */
    expect_map(pm, PB_PATH_FILE_URL, "file:///cloud/My%20MediaX/a", NULL);
    /* guids starting with file:// are mapped like URLs */
    expect_map(pm, PB_PATH_FILE_GUID, "file:///cloud/My%20Media/Movies/trailer.mkv",
               "file:///home/Media%20Library/Movies/trailer.mkv");
    /* not a file URL */
    expect_map(pm, PB_PATH_FILE_URL, "http://cloud/My%20Media/x", NULL);

    /* the inverse maps back byte for byte */
    pb_pathmap *inv = NULL;
    pb_error err = PB_ERROR_INIT;
    assert_int_equal(pb_pathmap_invert(&inv, pm, &err), 0);
    expect_map(inv, PB_PATH_FILE_URL, home_url, cloud_url);
    expect_map(inv, PB_PATH_PLAIN, "/home/Media Library/x.mkv", "/cloud/My Media/x.mkv");
    char *there = map(pm, PB_PATH_FILE_URL, cloud_url);
    char *back = map(inv, PB_PATH_FILE_URL, there);
    assert_string_equal(back, cloud_url);
    free(there);
    free(back);
    pb_pathmap_free(inv);
    pb_pathmap_free(pm);

    /* characters Plex keeps literal stay literal; others are percent-encoded in the new prefix */
    pm = parse("{\"mappings\": {\"/c\": \"/h/a b&c%d(é)\"}}");
    expect_map(pm, PB_PATH_FILE_URL, "file:///c/x%20y", "file:///h/a%20b&c%25d(%C3%A9)/x%20y");
    /* a raw (unencoded) file:// value keeps its style */
    expect_map(pm, PB_PATH_FILE_URL, "file:///c/x y", "file:///h/a b&c%d(é)/x y");
    pb_pathmap_free(pm);
}

static void test_pathmap_errors(void **state)
{
    (void)state;
    pb_pathmap *pm = NULL;
    pb_error err = PB_ERROR_INIT;
    const char *bad[] = {"",
                         "[]",
                         "{\"mappings\": []}",
                         "{\"mappings\": {\"/a\": 1}}",
                         "{\"mappings\": {\"\": \"/b\"}}",
                         "{\"mappings\": {\"/a\": \"/b\"",
                         NULL};
    for (int i = 0; bad[i]; i++) {
        pb_error_clear(&err);
        assert_int_equal(pb_pathmap_parse(&pm, bad[i], strlen(bad[i]), &err), PB_EINVALID);
        assert_null(pm);
        assert_true(strncmp(err.msg, "path map: ", 10) == 0);
    }
    /* duplicate after normalisation */
    const char *dup = "{\"mappings\": {\"/a\": \"/b\", \"/a/\": \"/c\"}}";
    assert_int_equal(pb_pathmap_parse(&pm, dup, strlen(dup), &err), PB_EINVALID);
    /* not invertible */
    pm = parse("{\"mappings\": {\"/a\": \"/x\", \"/b\": \"/x\"}}");
    pb_pathmap *inv = NULL;
    pb_error_clear(&err);
    assert_int_equal(pb_pathmap_invert(&inv, pm, &err), PB_EINVALID);
    assert_non_null(strstr(err.msg, "not invertible"));
    pb_pathmap_free(pm);
    /* a missing file */
    pb_error_clear(&err);
    assert_int_equal(pb_pathmap_load(&pm, "/nonexistent/path_mappings.json", &err), PB_ENOTFOUND);
    /* kinds of the four Plex path columns */
    assert_int_equal(pb_pathmap_kind("section_locations", "root_path"), PB_PATH_PLAIN);
    assert_int_equal(pb_pathmap_kind("media_parts", "file"), PB_PATH_PLAIN);
    assert_int_equal(pb_pathmap_kind("media_streams", "url"), PB_PATH_FILE_URL);
    assert_int_equal(pb_pathmap_kind("metadata_items", "guid"), PB_PATH_FILE_GUID);
    assert_int_equal(pb_pathmap_kind("directories", "path"), PB_PATH_NONE);
}

static sqlite3 *schema_db(const char *extra_sql)
{
    sqlite3 *db = NULL;
    pb_error err = PB_ERROR_INIT;
    FILE *f = fopen(tu_source_path("fixtures/plex-schema.sql"), "rb");
    if (!f)
        tu_skip("fixtures/plex-schema.sql not found (PB_SOURCE_DIR)");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *sql = malloc((size_t)n + 1);
    assert_int_equal(fread(sql, 1, (size_t)n, f), (size_t)n);
    sql[n] = '\0';
    fclose(f);
    assert_int_equal(pb_compat_open(&db, ":memory:", PB_OPEN_CREATE, &err), 0);
    if (pb_plex_schema_apply(db, sql, &err) != 0)
        fail_msg("schema: %s", err.msg);
    free(sql);
    if (extra_sql)
        assert_int_equal(sqlite3_exec(db, extra_sql, NULL, NULL, NULL), SQLITE_OK);
    return db;
}

static int has_ref(const pb_merge_policy *mp, const char *schema, const char *table,
                   const char *col, const char *tschema, const char *ttable, const char *when)
{
    for (size_t i = 0; i < mp->nrefs; i++) {
        const pb_merge_ref *r = &mp->refs[i];
        if (strcmp(r->schema, schema) == 0 && strcmp(r->table, table) == 0 &&
            strcmp(r->column, col) == 0 && strcmp(r->target_schema, tschema) == 0 &&
            strcmp(r->target_table, ttable) == 0 &&
            ((!when && !r->when_value) || (when && r->when_value && !strcmp(when, r->when_value))))
            return 1;
    }
    return 0;
}

static int has_natkey(const pb_merge_policy *mp, const char *table, const char *cols)
{
    for (size_t i = 0; i < mp->nnatkeys; i++) {
        const pb_merge_natkey *k = &mp->natkeys[i];
        char buf[256] = "";
        for (int c = 0; c < 8 && k->columns[c]; c++) {
            strcat(buf, c ? "," : "");
            strcat(buf, k->columns[c]);
        }
        if (strcmp(k->table, table) == 0 && strcmp(buf, cols) == 0)
            return 1;
    }
    return 0;
}

static void test_policy(void **state)
{
    (void)state;
    pb_error err = PB_ERROR_INIT;
    pb_plex_policy *p = NULL;
    /* a newer Plex: an unknown table, and the provider groups */
    sqlite3 *db = schema_db(
        "CREATE TABLE future_things (id INTEGER PRIMARY KEY, metadata_item_id integer);"
        "CREATE TABLE metadata_agent_provider_groups (id INTEGER PRIMARY KEY AUTOINCREMENT "
        "NOT NULL, title varchar(255), primary_identifier varchar(255));"
        "ALTER TABLE metadata_items ADD COLUMN metadata_agent_provider_group_id integer;"
        "ATTACH ':memory:' AS blobs;"
        "CREATE TABLE blobs.blobs ('id' INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, 'blob' blob, "
        "'linked_type' varchar(255), 'linked_id' integer, 'linked_guid' varchar(255), "
        "'created_at' dt_integer(8), 'blob_type' integer);"
        "CREATE UNIQUE INDEX blobs.u1 ON blobs ('linked_type', 'linked_id', 'blob_type');");
    const char *schemas[] = {"main", "blobs"};
    pb_pathmap *pm = parse("{\"mappings\": {\"/cloud\": \"/home\"}}");
    if (pb_plex_policy_new(&p, db, schemas, 2, pm, &err) != 0)
        fail_msg("policy: %s", err.msg);
    const pb_merge_policy *mp = pb_plex_policy_merge(p);
    assert_int_equal(mp->version, PB_MERGE_POLICY_VERSION);

    struct {
        const char *t;
        int cls;
    } classes[] = {
        {"metadata_items", PB_CLASS_LIBRARY},
        {"media_parts", PB_CLASS_LIBRARY},
        {"taggings", PB_CLASS_LIBRARY},
        {"library_sections", PB_CLASS_LIBRARY},
        {"locatables", PB_CLASS_LIBRARY},
        {"metadata_agent_provider_groups", PB_CLASS_LIBRARY},
        {"external_metadata_items", PB_CLASS_LIBRARY},
        {"metadata_item_settings", PB_CLASS_USER},
        {"metadata_item_views", PB_CLASS_USER},
        {"play_queue_items", PB_CLASS_USER},
        {"media_stream_settings", PB_CLASS_USER},
        {"statistics_media", PB_CLASS_USER},
        {"accounts", PB_CLASS_USER},
        {"hub_templates", PB_CLASS_USER},
        {"schema_migrations", PB_CLASS_USER},
        {"future_things", PB_CLASS_USER}, /* unknown: home wins */
        {"fts4_metadata_titles_icu", PB_CLASS_DERIVED},
        {"fts4_metadata_titles_icu_segdir", PB_CLASS_DERIVED},
        {"spellfix_metadata_titles", PB_CLASS_DERIVED},
        {"spellfix_tag_titles_vocab", PB_CLASS_DERIVED},
        {"locations", PB_CLASS_DERIVED},
        {"locations_node", PB_CLASS_DERIVED},
        {"sqlite_sequence", PB_CLASS_DERIVED},
        {"sqlite_stat1", PB_CLASS_DERIVED},
    };
    for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
        if (mp->table_class("main", classes[i].t, mp->payload) != classes[i].cls)
            fail_msg("class of %s: %d, expected %d", classes[i].t,
                     mp->table_class("main", classes[i].t, mp->payload), classes[i].cls);
    assert_int_equal(mp->table_class("blobs", "blobs", mp->payload), PB_CLASS_LIBRARY);
    assert_string_equal(pb_plex_policy_unknown(p, 0), "future_things");
    assert_null(pb_plex_policy_unknown(p, 1));
    assert_int_equal(pb_plex_policy_include(p, "main", "fts4_tag_titles_icu_stat"), 0);
    assert_int_equal(pb_plex_policy_include(p, "main", "metadata_item_views"), 1);

    /* references from column names */
    assert_true(has_ref(mp, "main", "metadata_items", "parent_id", "main", "metadata_items", NULL));
    assert_true(
        has_ref(mp, "main", "media_items", "metadata_item_id", "main", "metadata_items", NULL));
    assert_true(has_ref(mp, "main", "media_parts", "directory_id", "main", "directories", NULL));
    assert_true(
        has_ref(mp, "main", "directories", "parent_directory_id", "main", "directories", NULL));
    assert_true(has_ref(mp, "main", "media_streams", "media_part_id", "main", "media_parts", NULL));
    assert_true(has_ref(mp, "main", "taggings", "tag_id", "main", "tags", NULL));
    assert_true(has_ref(mp, "main", "tags", "parent_id", "main", "tags", NULL));
    assert_true(has_ref(mp, "main", "metadata_relations", "related_metadata_item_id", "main",
                        "metadata_items", NULL));
    assert_true(has_ref(mp, "main", "media_items", "section_location_id", "main",
                        "section_locations", NULL));
    assert_true(has_ref(mp, "main", "metadata_item_clusterings", "metadata_item_cluster_id", "main",
                        "metadata_item_clusters", NULL));
    assert_true(has_ref(mp, "main", "metadata_items", "metadata_agent_provider_group_id", "main",
                        "metadata_agent_provider_groups", NULL));
    assert_true(has_ref(mp, "blobs", "blobs", "linked_id", "main", "media_parts", "media_part"));
    assert_true(
        has_ref(mp, "blobs", "blobs", "linked_id", "main", "media_streams", "media_stream"));
    /* never: plex.tv account ids, user-state sources, derived targets */
    assert_false(
        has_ref(mp, "main", "metadata_item_settings", "account_id", "main", "accounts", NULL));
    assert_false(has_ref(mp, "main", "play_queue_items", "metadata_item_id", "main",
                         "metadata_items", NULL));
    assert_false(has_ref(mp, "main", "locatables", "location_id", "main", "locations", NULL));

    /* natural keys: the fixed list and every UNIQUE index of a library table */
    assert_true(has_natkey(mp, "tags", "tag_type,tag,key"));
    assert_true(has_natkey(mp, "library_sections", "uuid"));
    assert_true(has_natkey(mp, "metadata_agent_providers", "identifier"));
    assert_true(has_natkey(mp, "blobs", "linked_type,linked_id,blob_type"));
    assert_true(has_natkey(mp, "locatables", "location_id,locatable_id,locatable_type"));
    /* UNIQUE over nullable columns: NULL = NULL would map onto an unrelated row */
    assert_false(has_natkey(mp, "location_places", "location_id,guid"));
    assert_false(has_natkey(mp, "media_provider_resources", "uuid"));
    assert_false(has_natkey(mp, "blobs", "linked_type,linked_guid,blob_type"));
    assert_false(has_natkey(mp, "preferences", "name")); /* user state */

    /* path mapping through the policy */
    char *out = NULL;
    size_t n = 0;
    assert_non_null(mp->map_text);
    assert_int_equal(
        mp->map_text("main", "media_parts", "file", "/cloud/a", 8, &out, &n, mp->payload), 1);
    assert_string_equal(out, "/home/a");
    free(out);
    assert_int_equal(
        mp->map_text("main", "media_parts", "hash", "/cloud/a", 8, &out, &n, mp->payload), 0);
    assert_int_equal(pb_plex_class_by_name("brand_new_table", NULL), PB_CLASS_USER);
    pb_plex_policy_free(p);
    pb_pathmap_free(pm);
    sqlite3_close(db);
}

static void test_deletion_guard(void **state)
{
    (void)state;
    pb_plex_section_report s[3];
    pb_plex_deletion_verdict v;
    pb_error err = PB_ERROR_INIT;
    memset(s, 0, sizeof(s));
    s[0].id = 1;
    snprintf(s[0].name, sizeof(s[0].name), "Movies");
    s[0].items = 224;
    s[0].parts = 230;
    s[0].items_deleted = 221;
    s[0].parts_deleted = 2;
    s[1].id = 2;
    snprintf(s[1].name, sizeof(s[1].name), "Music");
    s[1].items = 100;
    s[1].items_deleted = 3;
    s[2].id = 0; /* playlists: not guarded */
    s[2].items = 1;
    s[2].items_deleted = 1;
    assert_int_equal(pb_plex_guard_deletion(&v, s, 3, 5.0, &err), PB_EREFUSED);
    assert_false(v.ok);
    assert_string_equal(err.msg, "deletion guard: section \"Movies\" (id 1) would lose 221 of 224 "
                                 "items (98.7 % > 5 %)");
    assert_string_equal(v.message, err.msg);
    /* under the limit: ok, the worst section still named */
    s[0].items_deleted = 5;
    pb_error_clear(&err);
    assert_int_equal(pb_plex_guard_deletion(&v, s, 3, 5.0, &err), 0);
    assert_true(v.ok);
    assert_int_equal(v.section_id, 2);
    assert_int_equal(v.deleted, 3);
    /* exactly at the limit passes; parts count too */
    s[1].items_deleted = 0;
    s[0].items_deleted = 0;
    s[0].parts_deleted = 23; /* 10 % */
    assert_int_equal(pb_plex_guard_deletion(&v, s, 3, 10.0, &err), 0);
    assert_int_equal(pb_plex_guard_deletion(&v, s, 3, 9.9, &err), PB_EREFUSED);
    assert_string_equal(v.what, "parts");
}

/* pb_extra_data_merge on strings: its return code, and the merged text (NULL when none). */
static int xmerge(const char *base, const char *cloud, const char *live, char **out)
{
    size_t n = 0;
    int rc = pb_extra_data_merge(base, base ? strlen(base) : 0, cloud, strlen(cloud), live,
                                 strlen(live), out, &n);
    if (rc > 0) {
        assert_non_null(*out);
        assert_int_equal(n, strlen(*out));
    } else {
        assert_null(*out);
    }
    return rc;
}

static void expect_xmerge(const char *base, const char *cloud, const char *live, int want_rc,
                          const char *want)
{
    char *out = NULL;
    int rc = xmerge(base, cloud, live, &out);
    if (rc != want_rc || (want && (!out || strcmp(out, want) != 0)))
        fail_msg("merge of %s / %s / %s: %d '%s', expected %d '%s'", base ? base : "NULL", cloud,
                 live, rc, out ? out : "", want_rc, want ? want : "");
    free(out);
}

static void test_extra_data(void **state)
{
    (void)state;
    /* the url as mkplex writes it: sorted keys, unreserved characters literal */
    json_t *o = json_loads("{\"pv:version\":\"5\",\"at:ratingImage\":\"imdb://image.rating\","
                           "\"ma:title\":\"Déjà vu & co\",\"n\":3,\"url\":\"stale\"}",
                           0, NULL);
    assert_non_null(o);
    char *url = pb_extra_data_url(o);
    assert_string_equal(url, "at%3AratingImage=imdb%3A%2F%2Fimage.rating&ma%3Atitle=D%C3%A9j%C3%"
                             "A0%20vu%20%26%20co&n=&pv%3Aversion=5");
    free(url);
    json_decref(o);

    /* the cloud adds ms:musicAnalysisVersion, the home changed another key: both, url anew */
    expect_xmerge("{\"at:ratingImage\":\"imdb://image.rating\",\"url\":\"at%3AratingImage=imdb"
                  "%3A%2F%2Fimage.rating\"}",
                  "{\"at:ratingImage\":\"imdb://image.rating\",\"ms:musicAnalysisVersion\":"
                  "\"1\",\"url\":\"at%3AratingImage=imdb%3A%2F%2Fimage.rating&ms%3AmusicAnalys"
                  "isVersion=1\"}",
                  "{\"at:ratingImage\":\"themoviedb://image.rating\",\"url\":\"at%3AratingImage"
                  "=themoviedb%3A%2F%2Fimage.rating\"}",
                  1,
                  "{\"at:ratingImage\":\"themoviedb://image.rating\",\"ms:musicAnalysisVersion\":"
                  "\"1\",\"url\":\"at%3AratingImage=themoviedb%3A%2F%2Fimage.rating&ms%3AmusicAna"
                  "lysisVersion=1\"}");
    /* several analysis keys, one the cloud removed, one the home added, one the home removed */
    expect_xmerge("{\"a\":\"1\",\"gone\":\"x\",\"h\":\"y\"}",
                  "{\"a\":\"1\",\"h\":\"y\",\"ln:loudnessAnalysisVersion\":\"2\","
                  "\"ln:peak\":\"0.9\"}",
                  "{\"a\":\"1\",\"gone\":\"x\",\"home\":\"z\"}", 1,
                  "{\"a\":\"1\",\"home\":\"z\",\"ln:loudnessAnalysisVersion\":\"2\","
                  "\"ln:peak\":\"0.9\"}"); /* no url in any: none added */
    /* both change the same key: the home's value (2: a conflict inside), the rest merged */
    expect_xmerge("{\"k\":\"0\",\"url\":\"k=0\"}", "{\"k\":\"cloud\",\"c\":\"1\"}",
                  "{\"k\":\"home\",\"url\":\"k=home\"}", 2,
                  "{\"c\":\"1\",\"k\":\"home\",\"url\":\"c=1&k=home\"}");
    /* both set the same key to the same value: no conflict */
    expect_xmerge("{}", "{\"k\":\"v\",\"c\":\"1\"}", "{\"k\":\"v\"}", 1,
                  "{\"c\":\"1\",\"k\":\"v\"}");
    /* only a key both changed: nothing of the cloud survives, the home value stays as it is */
    expect_xmerge("{\"k\":\"0\"}", "{\"k\":\"cloud\"}", "{ \"k\" : \"home\" }", 0, NULL);
    /* no base value (NULL or empty): an empty object */
    expect_xmerge(NULL, "{\"c\":\"1\"}", "{\"h\":\"1\"}", 1, "{\"c\":\"1\",\"h\":\"1\"}");
    expect_xmerge("", "{\"c\":\"1\"}", "{\"h\":\"1\"}", 1, "{\"c\":\"1\",\"h\":\"1\"}");
    /* not JSON objects: the default rule */
    expect_xmerge("{}", "{\"c\":\"1\"}", "not json", 0, NULL);
    expect_xmerge("{}", "{\"c\":", "{\"h\":\"1\"}", 0, NULL);
    expect_xmerge("[1]", "{\"c\":\"1\"}", "{\"h\":\"1\"}", 0, NULL);
    expect_xmerge("{}", "[\"c\"]", "{\"h\":\"1\"}", 0, NULL);
    expect_xmerge("{}", "{\"c\":\"1\",\"c\":\"2\"}", "{\"h\":\"1\"}", 0, NULL);

    /* through the policy's merge_column: extra_data only, text values only */
    pb_error err = PB_ERROR_INIT;
    pb_plex_policy *p = NULL;
    sqlite3 *db = schema_db("");
    const char *schemas[] = {"main"};
    if (pb_plex_policy_new(&p, db, schemas, 1, NULL, &err) != 0)
        fail_msg("policy: %s", err.msg);
    const pb_merge_policy *mp = pb_plex_policy_merge(p);
    assert_non_null(mp->merge_column);
    sqlite3_stmt *st = tu_prepare(db, "SELECT NULL, '{\"ms:musicAnalysisVersion\":\"1\"}', "
                                      "'{\"h\":\"1\"}', 42, 'x'");
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    sqlite3_value *v[5];
    for (int i = 0; i < 5; i++)
        v[i] = sqlite3_column_value(st, i);
    char *out = NULL;
    size_t n = 0;
    assert_int_equal(mp->merge_column("main", "metadata_items", "extra_data", v[0], v[1], v[2],
                                      &out, &n, mp->payload),
                     1);
    assert_string_equal(out, "{\"h\":\"1\",\"ms:musicAnalysisVersion\":\"1\"}");
    free(out);
    out = NULL;
    assert_int_equal(mp->merge_column("main", "metadata_items", "title", v[0], v[1], v[2], &out, &n,
                                      mp->payload),
                     0);
    assert_int_equal(mp->merge_column("main", "media_streams", "extra_data", v[3], v[1], v[2], &out,
                                      &n, mp->payload),
                     0); /* an integer base */
    assert_int_equal(mp->merge_column("main", "media_streams", "extra_data", v[0], v[1], v[3], &out,
                                      &n, mp->payload),
                     0); /* an integer live value */
    assert_null(out);
    sqlite3_finalize(st);
    sqlite3_close(db);
    pb_plex_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pathmap_plain),  cmocka_unit_test(test_pathmap_url),
        cmocka_unit_test(test_pathmap_errors), cmocka_unit_test(test_policy),
        cmocka_unit_test(test_deletion_guard), cmocka_unit_test(test_extra_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

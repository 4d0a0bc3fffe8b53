/*
 * test_dup_items.c: an item both sides added arrives once. The home's Plex scans a new file while
 * the cloud runs (here: the cloud's new movie copied into the home DB by SQL, with a fresh id,
 * without analysis and with one basic stream), and the cloud scans and analyses the same file
 * (mkplex analyze --seed 7 over mkplex init --scale tiny --seed 1). After `plexburst merge`, the
 * file has exactly one media_part, one media item and one metadata_item, carrying the cloud's
 * analysis (media_analysis_version, the part's extra_data, every stream once, the taggings), in
 * process and through the engine stand-in when it is installed.
 * Prerequisites: mkplex and plexburst in PB_BUILD_DIR (skipped, with the reason, without them).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "test_plexmerge_util.h"

#define DB  "/Plug-in Support/Databases/com.plexapp.plugins.library.db"
#define BDB "/Plug-in Support/Databases/com.plexapp.plugins.library.blobs.db"

static char g_dir[4096];

static int teardown(void **state)
{
    (void)state;
    if (g_dir[0])
        tu_sh("rm -rf '%s'", g_dir);
    return 0;
}

/* The columns of `table` but id, comma-separated. */
static void cols_of(const char *db, const char *table, char *out, size_t cap)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT group_concat('\"' || name || '\"', ', ') FROM pragma_table_info('%s') WHERE "
             "name <> 'id'",
             table);
    pm_text(db, sql, out, cap);
}

/* Copies the cloud's movie `m` (item, media, part, the part's first stream) into the home DB under
 * fresh ids, as the home's own scan would have made it: no analysis. */
static void home_scans(const char *home, const char *cloud, int64_t m)
{
    char ci[8192], cm[4096], cp[4096], cs[4096];
    static char sql[1 << 17];
    cols_of(home, "metadata_items", ci, sizeof(ci));
    cols_of(home, "media_items", cm, sizeof(cm));
    cols_of(home, "media_parts", cp, sizeof(cp));
    cols_of(home, "media_streams", cs, sizeof(cs));
    snprintf(
        sql, sizeof(sql),
        "ATTACH '%s' AS c; CREATE TEMP TABLE v(k TEXT PRIMARY KEY, id INTEGER);"
        "INSERT INTO main.metadata_items(%s) SELECT %s FROM c.metadata_items WHERE id = %lld;"
        "INSERT INTO temp.v VALUES('item', last_insert_rowid());"
        "INSERT INTO main.media_items(%s) SELECT %s FROM c.media_items WHERE metadata_item_id = "
        "%lld ORDER BY id LIMIT 1;"
        "INSERT INTO temp.v VALUES('media', last_insert_rowid());"
        "UPDATE main.media_items SET metadata_item_id = (SELECT id FROM v WHERE k = 'item'), "
        "media_analysis_version = 0 WHERE id = (SELECT id FROM v WHERE k = 'media');"
        "INSERT INTO main.media_parts(%s) SELECT %s FROM c.media_parts WHERE media_item_id = "
        "(SELECT min(id) FROM c.media_items WHERE metadata_item_id = %lld) ORDER BY id LIMIT 1;"
        "INSERT INTO temp.v VALUES('part', last_insert_rowid());"
        "UPDATE main.media_parts SET media_item_id = (SELECT id FROM v WHERE k = 'media'), "
        "extra_data = NULL WHERE id = (SELECT id FROM v WHERE k = 'part');"
        "INSERT INTO main.media_streams(%s) SELECT %s FROM c.media_streams WHERE media_part_id = "
        "(SELECT min(p.id) FROM c.media_parts p JOIN c.media_items mi ON mi.id = p.media_item_id "
        "WHERE mi.metadata_item_id = %lld) ORDER BY id LIMIT 1;"
        "UPDATE main.media_streams SET media_item_id = (SELECT id FROM v WHERE k = 'media'), "
        "media_part_id = (SELECT id FROM v WHERE k = 'part'), extra_data = NULL WHERE id = "
        "last_insert_rowid();",
        cloud, ci, ci, (long long)m, cm, cm, (long long)m, cp, cp, (long long)m, cs, cs,
        (long long)m);
    pm_exec(home, sql);
}

/* Checks the home DB `live` after the merge: one item for the file, with the cloud's analysis. */
static void check_once(const char *live, const char *cloud, const char *file, const char *guid)
{
    char sql[2048], q[1024], want[4096], got[4096];
    snprintf(q, sizeof(q), "'%s'", file); /* mkplex paths hold no quote */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM media_parts WHERE file = %s", q);
    int64_t parts = pm_int(live, sql);
    if (parts != 1)
        fail_msg("%lld media_parts for %s after the merge, expected 1", (long long)parts, file);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM metadata_items WHERE guid = '%s'", guid);
    assert_int_equal(pm_int(live, sql), 1);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM media_items WHERE metadata_item_id = (SELECT id FROM "
             "metadata_items WHERE guid = '%s')",
             guid);
    assert_int_equal(pm_int(live, sql), pm_int(cloud, sql));
    /* the part's media and item are the ones the part hangs from */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM media_parts p JOIN media_items mi ON mi.id = p.media_item_id "
             "JOIN metadata_items m ON m.id = mi.metadata_item_id WHERE p.file = %s AND m.guid = "
             "'%s'",
             q, guid);
    assert_int_equal(pm_int(live, sql), 1);
    /* the cloud's analysis: media_analysis_version, the part's extra_data, streams, taggings */
    snprintf(
        sql, sizeof(sql),
        "SELECT mi.media_analysis_version || '|' || coalesce(p.extra_data, '') || '|' || "
        "(SELECT count(*) FROM media_streams s WHERE s.media_part_id = p.id) || '|' || "
        "(SELECT count(DISTINCT coalesce(s.stream_type_id, '') || ':' || coalesce(s.\"index\", "
        "s.id)) FROM media_streams s WHERE s.media_part_id = p.id) || '|' || (SELECT count(*) "
        "FROM taggings t WHERE t.metadata_item_id = mi.metadata_item_id) FROM media_parts p "
        "JOIN media_items mi ON mi.id = p.media_item_id WHERE p.file = %s",
        q);
    pm_text(cloud, sql, want, sizeof(want));
    pm_text(live, sql, got, sizeof(got));
    assert_string_equal(got, want);
}

static void test_both_sides_scanned(void **state)
{
    (void)state;
    char base[4400], cloud[4400], bcloud[4400], home[4400], bhome[4400], engine[4400];
    char bengine[4400], file[4096], guid[1024], sql[1024], err[4096], args[32768];
    const char *mk = tu_build_path("mkplex");
    if (access(mk, X_OK) != 0)
        tu_skip("mkplex is not built yet");
    snprintf(g_dir, sizeof(g_dir), "%s", tu_tmpdir("dup-items"));
    if (tu_sh("'%s' init --dir '%s/base' --scale tiny --seed 1 >/dev/null 2>&1", mk, g_dir) != 0)
        tu_skip("mkplex init failed (fixture tool not ready)");
    assert_int_equal(tu_sh("cp -a '%s/base' '%s/cloud' && cp -a '%s/base' '%s/home'", g_dir, g_dir,
                           g_dir, g_dir),
                     0);
    if (tu_sh("'%s' analyze --dir '%s/cloud' --seed 7 >/dev/null 2>&1", mk, g_dir) != 0)
        tu_skip("mkplex analyze failed (fixture tool not ready)");
    snprintf(base, sizeof(base), "%s/base" DB, g_dir);
    snprintf(cloud, sizeof(cloud), "%s/cloud" DB, g_dir);
    snprintf(bcloud, sizeof(bcloud), "%s/cloud" BDB, g_dir);
    snprintf(home, sizeof(home), "%s/home" DB, g_dir);
    snprintf(bhome, sizeof(bhome), "%s/home" BDB, g_dir);

    /* the cloud's first new movie, with a part and streams */
    snprintf(sql, sizeof(sql),
             "SELECT min(m.id) FROM metadata_items m JOIN media_items mi ON mi.metadata_item_id = "
             "m.id JOIN media_parts p ON p.media_item_id = mi.id WHERE m.metadata_type = 1 AND "
             "m.id > %lld AND EXISTS (SELECT 1 FROM media_streams s WHERE s.media_part_id = p.id)",
             (long long)pm_int(base, "SELECT max(id) FROM metadata_items"));
    int64_t m = pm_int(cloud, sql);
    if (m <= 0)
        fail_msg("mkplex analyze --seed 7 added no movie with streams");
    snprintf(
        sql, sizeof(sql),
        "SELECT p.file FROM media_parts p JOIN media_items mi ON mi.id = p.media_item_id WHERE "
        "mi.metadata_item_id = %lld ORDER BY mi.id, p.id LIMIT 1",
        (long long)m);
    pm_text(cloud, sql, file, sizeof(file));
    snprintf(sql, sizeof(sql), "SELECT guid FROM metadata_items WHERE id = %lld", (long long)m);
    pm_text(cloud, sql, guid, sizeof(guid));
    assert_true(file[0] && guid[0] && !strchr(file, '\'') && !strchr(guid, '\''));

    home_scans(home, cloud, m);
    snprintf(engine, sizeof(engine), "%s/engine.db", g_dir);
    snprintf(bengine, sizeof(bengine), "%s/engine.blobs.db", g_dir);
    pm_copy(home, engine);
    pm_copy(bhome, bengine);

    snprintf(args, sizeof(args),
             "merge --base '%s' --cloud '%s' --live '%s' --blobs-base '%s/base" BDB
             "' --blobs-cloud '%s' --blobs-live '%s' --in-process --keep-backups 0 --zstd-level 1",
             base, cloud, home, g_dir, bcloud, bhome);
    int rc = pm_cli(err, sizeof(err), g_dir, args);
    if (rc != 0)
        fail_msg("merge: exit %d: %s", rc, err);
    check_once(home, cloud, file, guid);

    if (access("/usr/bin/sqlite3", X_OK) == 0) {
        char h1[33], h2[33];
        snprintf(args, sizeof(args),
                 "merge --base '%s' --cloud '%s' --live '%s' --blobs-base '%s/base" BDB
                 "' --blobs-cloud '%s' --blobs-live '%s' --plex-sqlite /usr/bin/sqlite3 "
                 "--compat-extension '%s' --keep-backups 0 --zstd-level 1",
                 base, cloud, engine, g_dir, bcloud, bengine, tu_build_path("plexcompat"));
        rc = pm_cli(err, sizeof(err), g_dir, args);
        if (rc != 0)
            fail_msg("engine merge: exit %d: %s", rc, err);
        check_once(engine, cloud, file, guid);
        pm_checksum(home, h1);
        pm_checksum(engine, h2);
        assert_string_equal(h1, h2);
    }
}

int main(void)
{
    tu_asan_allow_stock_host();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_both_sides_scanned, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_plexmerge.c: pb_plex_diff() and pb_plex_merge() over hand-made Plex DBs
 * (test_plexmerge_util.c): the report's figures, both write paths (in-process, and the stock
 * sqlite3 shell with the plexcompat extension standing in for Plex SQLite) giving the same live
 * content, blobs with cross-DB remaps in WAL mode, path mapping, the guards, backups and their
 * rotation, dry runs, and bad inputs leaving the live DB unchanged.
 * Prerequisites: the build dir (plexcompat.so), /usr/bin/sqlite3 for the engine path (skipped
 * otherwise).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqlite3.h>

#include "testutil.h"
#include "plexburst/plexmerge.h"
#include "plexburst/sqldiff.h"
#include "test_plexmerge_util.h"

static void opts_for(pb_plex_merge_options *o, const pm_scenario *s)
{
    pm_merge_options(o, s->base, s->cloud, s->live, s->bbase, s->bcloud, s->blive);
    o->zstd_level = 3;
}

static int merge_ok(const pb_plex_merge_options *o, pb_plex_report *r)
{
    pb_error err = PB_ERROR_INIT;
    int rc = pb_plex_merge(o, r, &err);
    if (rc)
        fail_msg("merge failed (%d) in phase %s: %s", rc, pb_plex_phase_name(r->phase), err.msg);
    return rc;
}

static const pb_plex_table_report *table(const pb_plex_report *r, const char *schema,
                                         const char *name)
{
    for (size_t i = 0; i < r->ntables; i++)
        if (!strcmp(r->tables[i].schema, schema) && !strcmp(r->tables[i].table, name))
            return &r->tables[i];
    fail_msg("table %s.%s not in the report", schema, name);
    return NULL;
}

static const pb_plex_section_report *section(const pb_plex_report *r, int64_t id)
{
    for (size_t i = 0; i < r->nsections; i++)
        if (r->sections[i].id == id)
            return &r->sections[i];
    fail_msg("section %lld not in the report", (long long)id);
    return NULL;
}

static int count_dirs(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    int n = 0;
    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* What the scenario's changeset holds, whatever the live DB. */
static void check_diff_figures(const pb_plex_report *r)
{
    const pb_plex_table_report *t = table(r, "main", "metadata_items");
    assert_int_equal(t->table_class, PB_CLASS_LIBRARY);
    assert_int_equal(t->cs_inserted, 3);
    assert_int_equal(t->cs_updated, 9);
    assert_int_equal(t->cs_deleted, 0);
    t = table(r, "main", "media_items");
    assert_int_equal(t->cs_inserted, 2);
    assert_int_equal(t->cs_updated, 20);
    t = table(r, "main", "media_parts");
    assert_int_equal(t->cs_inserted, 2);
    assert_int_equal(t->cs_updated, 4);
    t = table(r, "main", "taggings");
    assert_int_equal(t->cs_inserted, 3);
    t = table(r, "main", "metadata_item_settings");
    assert_int_equal(t->table_class, PB_CLASS_USER);
    assert_int_equal(t->cs_updated, 1);
    assert_int_equal(r->cs_inserted, 17);
    assert_int_equal(r->cs_updated, 36);
    assert_int_equal(r->cs_deleted, 0);

    const pb_plex_section_report *s = section(r, 1);
    assert_string_equal(s->name, "Movies");
    assert_int_equal(s->items, 20);
    assert_int_equal(s->parts, 20);
    assert_int_equal(s->items_inserted, 3);
    assert_int_equal(s->items_updated, 4);
    assert_int_equal(s->parts_inserted, 2);
    assert_int_equal(s->parts_updated, 4);
    s = section(r, 2);
    assert_string_equal(s->name, "Music");
    assert_int_equal(s->items, 7);
    assert_int_equal(s->parts, 5);
    assert_int_equal(s->items_updated, 5);

    assert_int_equal(r->new_items, 3);
    assert_int_equal(r->ntitles, 3);
    assert_string_equal(r->titles[0].title, "New Cloud Movie");
    assert_string_equal(r->titles[0].type, "movie");
    assert_int_equal(r->titles[0].section_id, 1);
    assert_string_equal(r->titles[2].type, "extra");

    assert_int_equal(r->analysis.sonic_tracks, 5);
    assert_int_equal(r->analysis.loudness_items, 2);
    assert_int_equal(r->analysis.loudness_streams, 2);
    assert_int_equal(r->analysis.preview_parts, 4);
    assert_int_equal(r->analysis.markers, 1);
    assert_int_equal(r->analysis.intro_markers, 1);
    assert_int_equal(r->analysis.media_analyzed, 22);

    assert_true(r->bytes_changeset > 0);
    assert_true(r->bytes_changeset_zstd > 0);
    assert_true(r->bytes_changeset_zstd < r->bytes_changeset);
    assert_true(r->schema.ok);
    assert_string_equal(r->schema.cloud_version, "500000000001.231");
    assert_int_equal(r->schema.nversions, 3);
    assert_true(r->deletion.checked);
    assert_true(r->deletion.ok);
}

/* What the live DB must hold after merging the scenario. */
static void check_merged_live(const char *live)
{
    char buf[512];
    /* the home's rows are intact */
    assert_int_equal(pm_int(live, "SELECT count(*) FROM media_parts p JOIN media_items mi ON "
                                  "mi.id = p.media_item_id JOIN metadata_items m ON m.id = "
                                  "mi.metadata_item_id WHERE m.title = 'Home Video' AND p.file "
                                  "LIKE '%Home Video.mp4'"),
                     1);
    assert_int_equal(pm_int(live, "SELECT count(*) FROM metadata_items WHERE title = 'Home "
                                  "playlist' AND metadata_type = 15"),
                     1);
    pm_text(live, "SELECT title FROM metadata_items WHERE id = 6", buf, sizeof(buf));
    assert_string_equal(buf, "Movie 6 (home edit)"); /* conflict: the home value kept */
    assert_int_equal(pm_int(live, "SELECT view_count FROM metadata_item_settings WHERE id = 1"),
                     2); /* user state: home wins */
    assert_int_equal(pm_int(live, "SELECT count(*) FROM taggings t JOIN tags g ON g.id = t.tag_id "
                                  "WHERE t.metadata_item_id = 3 AND g.tag = 'Favourites'"),
                     1);
    /* the cloud's rows arrived, renumbered where they collided, references followed */
    pm_text(live, "SELECT summary FROM metadata_items WHERE id = 5", buf, sizeof(buf));
    assert_string_equal(buf, "Cloud summary");
    assert_int_equal(pm_int(live, "SELECT count(*) FROM metadata_items"), 27 + 2 + 3);
    assert_true(pm_int(live, "SELECT id FROM metadata_items WHERE guid = 'plex://movie/28'") > 29);
    assert_int_equal(
        pm_int(live, "SELECT count(*) FROM media_parts p JOIN media_items mi ON mi.id = "
                     "p.media_item_id JOIN metadata_items m ON m.id = mi.metadata_item_id WHERE "
                     "m.guid = 'plex://movie/28' AND p.file LIKE '%New Cloud Movie.mkv' AND "
                     "p.extra_data LIKE '%mi:indexes%'"),
        1);
    assert_int_equal(pm_int(live,
                            "SELECT count(*) FROM media_streams s JOIN media_parts p ON "
                            "p.id = s.media_part_id WHERE p.file LIKE '%New Cloud Movie.mkv'"),
                     2);
    assert_int_equal(pm_int(live, "SELECT count(*) FROM metadata_relations r JOIN metadata_items "
                                  "a ON a.id = r.metadata_item_id JOIN metadata_items b ON b.id = "
                                  "r.related_metadata_item_id WHERE a.guid = 'plex://movie/28' AND "
                                  "b.title = 'Trailer'"),
                     1);
    /* one Thriller tag (natural key), Sci-Fi renumbered and tagged on the right movie */
    assert_int_equal(pm_int(live, "SELECT count(*) FROM tags WHERE tag = 'Thriller'"), 1);
    assert_int_equal(pm_int(live, "SELECT count(*) FROM taggings t JOIN tags g ON g.id = t.tag_id "
                                  "JOIN metadata_items m ON m.id = t.metadata_item_id WHERE g.tag "
                                  "= 'Thriller' AND m.guid = 'plex://movie/28'"),
                     1);
    assert_int_equal(pm_int(live, "SELECT count(*) FROM taggings t JOIN tags g ON g.id = t.tag_id "
                                  "JOIN metadata_items m ON m.id = t.metadata_item_id WHERE g.tag "
                                  "= 'Sci-Fi' AND m.guid = 'plex://movie/29'"),
                     1);
    assert_int_equal(pm_int(live, "SELECT count(*) FROM taggings t JOIN tags g ON g.id = t.tag_id "
                                  "WHERE g.tag_type = 12 AND t.metadata_item_id = 1 AND t.text = "
                                  "'intro'"),
                     1);
    assert_int_equal(
        pm_int(live, "SELECT count(*) FROM metadata_items WHERE metadata_type = 10 AND extra_data "
                     "LIKE '%ms:musicAnalysisVersion%'"),
        5);
}

static void check_merge_counts(const pb_plex_report *r)
{
    assert_int_equal(r->merge.conflicts, 1);
    assert_int_equal(r->merge.user_state_dropped, 1);
    assert_int_equal(r->merge.natkey_mapped, 1);
    assert_true(r->merge.remapped >= 5);
    assert_true(r->nconflicts >= 1);
    assert_string_equal(r->conflicts[0].table, "metadata_items");
    assert_string_equal(r->conflicts[0].column, "title");
    assert_int_equal(r->conflicts[0].resolution, PB_RES_KEPT_LIVE);
    assert_true(r->nremaps >= 1);
    assert_int_equal(table(r, "main", "metadata_item_settings")->merge.user_state_dropped, 1);
}

static void test_merge_in_process(void **state)
{
    (void)state;
    pm_scenario s;
    pm_options po = PM_OPTIONS_DEFAULT;
    pb_plex_merge_options o;
    pb_plex_report r;
    pm_build(&s, "pm-inproc", &po);
    opts_for(&o, &s);
    merge_ok(&o, &r);
    assert_true(r.ok);
    assert_true(r.merged);
    assert_false(r.dry_run);
    assert_int_equal(r.phase, PB_PHASE_DONE);
    assert_string_equal(r.engine, "in-process compatibility layer");
    check_diff_figures(&r);
    check_merge_counts(&r);
    check_merged_live(s.live);
    /* the default backup dir: <dir of live>/plexburst-backups/<UTC stamp> */
    char expect[4300];
    snprintf(expect, sizeof(expect), "%s/plexburst-backups/", s.dir);
    assert_true(strncmp(r.backup_dir, expect, strlen(expect)) == 0);
    char bk[4400];
    snprintf(bk, sizeof(bk), "%s/live.db", r.backup_dir);
    assert_int_equal(pm_int(bk, "SELECT count(*) FROM metadata_items"), 29); /* before */
    assert_true(r.ms.total >= r.ms.diff);
    pb_plex_report_dispose(&r);
}

static void test_engine_path_same_result(void **state)
{
    (void)state;
    pm_scenario s;
    pm_options po = PM_OPTIONS_DEFAULT;
    pb_plex_merge_options o;
    pb_plex_report r1, r2;
    char live2[4300], h1[33], h2[33];
    pm_build(&s, "pm-engine", &po);
    snprintf(live2, sizeof(live2), "%s/live2.db", s.dir);
    pm_copy(s.live, live2);

    opts_for(&o, &s);
    o.keep_backups = 0;
    merge_ok(&o, &r1);
    assert_string_equal(r1.engine, "in-process compatibility layer");

    opts_for(&o, &s);
    o.live = live2;
    o.keep_backups = 0;
    pm_use_stand_in(&o);
    merge_ok(&o, &r2);
    assert_true(
        strncmp(r2.engine, "plex-sqlite: " PM_STAND_IN, strlen("plex-sqlite: " PM_STAND_IN)) == 0);
    assert_true(r2.merged);
    check_merge_counts(&r2);
    check_merged_live(live2);
    assert_memory_equal(&r1.merge, &r2.merge, sizeof(r1.merge));
    pm_checksum(s.live, h1);
    pm_checksum(live2, h2);
    assert_string_equal(h1, h2);
    /* the FTS index of the merged rows is maintained by the triggers in both cases */
    assert_int_equal(pm_int(live2, "SELECT count(*) FROM fts4_metadata_titles_icu WHERE "
                                   "fts4_metadata_titles_icu MATCH 'another'"),
                     1);
    pb_plex_report_dispose(&r1);
    pb_plex_report_dispose(&r2);
}

static void test_blobs_wal(void **state)
{
    (void)state;
    pm_scenario s;
    pm_options po = PM_OPTIONS_DEFAULT;
    pb_plex_merge_options o;
    pb_plex_report r;
    char mode[32], live2[4300], blive2[4300], h1[33], h2[33];
    po.blobs = 1;
    po.wal = 1;
    pm_build(&s, "pm-blobs", &po);
    snprintf(live2, sizeof(live2), "%s/live2.db", s.dir);
    snprintf(blive2, sizeof(blive2), "%s/live2.blobs.db", s.dir);
    pm_copy(s.live, live2);
    pm_copy(s.blive, blive2);

    for (int pass = 0; pass < 2; pass++) {
        const char *live = pass ? live2 : s.live, *blive = pass ? blive2 : s.blive;
        opts_for(&o, &s);
        o.live = live;
        o.blobs_live = blive;
        o.keep_backups = 1;
        if (pass)
            pm_use_stand_in(&o);
        merge_ok(&o, &r);
        assert_true(r.with_blobs);
        assert_true(r.atomic_pair);
        assert_int_equal(table(&r, "blobs", "blobs")->cs_inserted, 2);
        assert_int_equal(r.analysis.blobs, 2);
        /* the cloud's blobs follow the renumbered part and the stream */
        char q[4800];
        snprintf(q, sizeof(q),
                 "ATTACH '%s' AS b; SELECT count(*) FROM b.blobs x JOIN main.media_parts p ON "
                 "p.id = x.linked_id WHERE x.linked_type = 'media_part' AND p.file LIKE '%%New "
                 "Cloud Movie.mkv' AND x.linked_guid = 'guid-part-26'",
                 blive);
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open(live, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, q, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_prepare_v2(db,
                                            "SELECT (SELECT count(*) FROM b.blobs x JOIN "
                                            "main.media_parts p ON p.id = x.linked_id WHERE "
                                            "x.linked_type = 'media_part' AND p.file LIKE '%New "
                                            "Cloud Movie.mkv'), (SELECT count(*) FROM b.blobs x "
                                            "JOIN main.media_parts p ON p.id = x.linked_id WHERE "
                                            "p.file LIKE '%Home Video.mp4'), (SELECT count(*) "
                                            "FROM b.blobs x JOIN main.media_streams s ON s.id = "
                                            "x.linked_id WHERE x.linked_type = 'media_stream' AND "
                                            "s.url LIKE '%New%20Cloud%20Movie.en.srt')",
                                            -1, &st, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), 1);
        assert_int_equal(sqlite3_column_int(st, 1), 1); /* the home's blob still on its part */
        assert_int_equal(sqlite3_column_int(st, 2), 1);
        sqlite3_finalize(st);
        sqlite3_close(db);
        /* WAL again afterwards */
        pm_text(live, "PRAGMA journal_mode", mode, sizeof(mode));
        assert_string_equal(mode, "wal");
        pm_text(blive, "PRAGMA journal_mode", mode, sizeof(mode));
        assert_string_equal(mode, "wal");
        pb_plex_report_dispose(&r);
    }
    pm_checksum(s.live, h1);
    pm_checksum(live2, h2);
    assert_string_equal(h1, h2);
    pm_checksum(s.blive, h1);
    pm_checksum(blive2, h2);
    assert_string_equal(h1, h2);
}

static void test_path_mapping(void **state)
{
    (void)state;
    pm_scenario s;
    pm_options po = PM_OPTIONS_DEFAULT;
    pb_plex_merge_options o;
    pb_plex_report r;
    char buf[512];
    po.mapped = 1;
    pm_build(&s, "pm-paths", &po);
    opts_for(&o, &s);
    o.path_map = s.pathmap;
    o.keep_backups = 0;
    merge_ok(&o, &r);
    assert_int_equal(r.merge.conflicts, 1); /* only the title: mapped old paths equal home's */
    pm_text(s.live, "SELECT root_path FROM section_locations WHERE root_path LIKE '%4K'", buf,
            sizeof(buf));
    assert_string_equal(buf, "/home/Media/Movies 4K");
    pm_text(s.live, "SELECT file FROM media_parts WHERE file LIKE '%New Cloud Movie.mkv'", buf,
            sizeof(buf));
    assert_string_equal(buf, "/home/Media/Movies/New Cloud Movie (2024)/New Cloud Movie.mkv");
    pm_text(s.live, "SELECT file FROM media_parts WHERE id = 7", buf, sizeof(buf));
    assert_string_equal(buf, "/home/Media/Movies/Movie 7 (2007)/Movie 7 - remux.mkv");
    pm_text(s.live, "SELECT url FROM media_streams WHERE url LIKE '%New%20Cloud%'", buf,
            sizeof(buf));
    assert_string_equal(
        buf, "file:///home/Media/Movies/New%20Cloud%20Movie%20(2024)/New%20Cloud%20Movie.en.srt");
    pm_text(s.live, "SELECT guid FROM metadata_items WHERE title = 'Trailer'", buf, sizeof(buf));
    assert_string_equal(buf, "file:///home/Media/Movies/New%20Cloud%20Movie%20(2024)/Trailer.mkv");
    assert_int_equal(pm_int(s.live, "SELECT count(*) FROM media_parts WHERE file LIKE '/cloud/%' "
                                    "UNION ALL SELECT count(*) FROM media_streams WHERE url LIKE "
                                    "'%/cloud/%'"),
                     0);
    pb_plex_report_dispose(&r);
}

static void test_deletion_guard_refuses(void **state)
{
    (void)state;
    pm_scenario s;
    pm_options po = PM_OPTIONS_DEFAULT;
    pb_plex_merge_options o;
    pb_plex_report r;
    pb_error err = PB_ERROR_INIT;
    char before[33], after[33], bdir[4300];
    po.cloud_changes = 0;
    pm_build(&s, "pm-delguard", &po);
    /* the cloud's mount failed: half the movies gone with their media */
    pm_exec(s.cloud, "DELETE FROM media_streams WHERE media_part_id IN (SELECT id FROM "
                     "media_parts WHERE media_item_id BETWEEN 11 AND 20);"
                     "DELETE FROM media_parts WHERE media_item_id BETWEEN 11 AND 20;"
                     "DELETE FROM media_items WHERE id BETWEEN 11 AND 20;"
                     "DELETE FROM taggings WHERE metadata_item_id BETWEEN 11 AND 20;"
                     "DELETE FROM metadata_items WHERE id BETWEEN 11 AND 20;");
    pm_checksum(s.live, before);
    opts_for(&o, &s);
    assert_int_equal(pb_plex_merge(&o, &r, &err), PB_EREFUSED);
    assert_string_equal(err.msg, "deletion guard: section \"Movies\" (id 1) would lose 10 of 20 "
                                 "items (50.0 % > 5 %)");
    assert_false(r.ok);
    assert_int_equal(r.phase, PB_PHASE_GUARDS);
    assert_int_equal(r.error_code, PB_EREFUSED);
    assert_false(r.deletion.ok);
    assert_int_equal(r.deletion.section_id, 1);
    assert_int_equal(section(&r, 1)->parts_deleted, 10);
    assert_false(r.merged);
    pm_checksum(s.live, after);
    assert_string_equal(before, after);
    snprintf(bdir, sizeof(bdir), "%s/plexburst-backups", s.dir);
    assert_int_equal(count_dirs(bdir), 0);
    pb_plex_report_dispose(&r);

    /* a diff reports the verdict without failing */
    pb_error_clear(&err);
    assert_int_equal(pb_plex_diff(&o, &r, &err), 0);
    assert_false(r.deletion.ok);
    assert_true(r.ok);
    pb_plex_report_dispose(&r);

    /* allowed explicitly */
    pb_error_clear(&err);
    o.max_delete_pct = 60;
    o.keep_backups = 0;
    merge_ok(&o, &r);
    assert_true(r.deletion.ok);
    assert_int_equal(r.merge.deleted, 10 * 5); /* items, media, parts, streams, taggings */
    assert_int_equal(pm_int(s.live, "SELECT count(*) FROM metadata_items WHERE metadata_type = 1"),
                     10 + 1);
    pb_plex_report_dispose(&r);
}

static void expect_schema_refusal(const pm_scenario *s, const char *want_msg, const char *want_sub)
{
    pb_plex_merge_options o;
    pb_plex_report r;
    pb_error err = PB_ERROR_INIT;
    char before[33], after[33];
    pm_checksum(s->live, before);
    opts_for(&o, s);
    assert_int_equal(pb_plex_merge(&o, &r, &err), PB_ESCHEMA);
    if (want_msg)
        assert_string_equal(err.msg, want_msg);
    if (want_sub && !strstr(err.msg, want_sub))
        fail_msg("'%s' not in '%s'", want_sub, err.msg);
    assert_int_equal(r.phase, PB_PHASE_SCHEMA);
    assert_false(r.schema.ok);
    assert_true(r.schema.checked);
    assert_string_equal(r.schema.message, err.msg);
    pm_checksum(s->live, after);
    assert_string_equal(before, after);
    pb_plex_report_dispose(&r);
}

static void test_schema_guard(void **state)
{
    (void)state;
    pm_scenario s;
    pm_options po = PM_OPTIONS_DEFAULT;
    pm_build(&s, "pm-schema", &po);
    char cloud_orig[4300];
    snprintf(cloud_orig, sizeof(cloud_orig), "%s/cloud.orig.db", s.dir);
    pm_copy(s.cloud, cloud_orig);

    /* a newer Plex on the cloud: one more migration */
    pm_exec(s.cloud, "INSERT INTO schema_migrations(version) VALUES ('500000000001.232')");
    expect_schema_refusal(&s,
                          "schema guard: cloud is at 500000000001.232, home at 500000000001.231; "
                          "first difference: schema_migrations version 500000000001.232 only in "
                          "cloud",
                          NULL);
    /* an extra column at the same version */
    pm_copy(cloud_orig, s.cloud);
    pm_exec(s.cloud, "ALTER TABLE metadata_items ADD COLUMN is_adult integer");
    expect_schema_refusal(&s, NULL,
                          "cloud and home are both at 500000000001.231 but differ: "
                          "column metadata_items.is_adult");
    /* a table the home lacks */
    pm_copy(cloud_orig, s.cloud);
    pm_exec(s.cloud, "CREATE TABLE metadata_agent_provider_groups (id INTEGER PRIMARY KEY)");
    expect_schema_refusal(&s, NULL, "table metadata_agent_provider_groups only in cloud");
    /* an older migration set on the home at the same newest version */
    pm_copy(cloud_orig, s.cloud);
    pm_exec(s.live, "DELETE FROM schema_migrations WHERE version = '500000000001.229'");
    expect_schema_refusal(&s, NULL, "schema_migrations version 500000000001.229 only in cloud");
}

static void test_backups_rotate(void **state)
{
    (void)state;
    pm_scenario s;
    pm_options po = PM_OPTIONS_DEFAULT;
    pb_plex_merge_options o;
    pb_plex_report r;
    char bdir[4300], sub[4600];
    po.cloud_changes = 0;
    pm_build(&s, "pm-backups", &po);
    snprintf(bdir, sizeof(bdir), "%s/my backups", s.dir);
    /* something of the user's in the backup dir is never touched */
    mkdir(bdir, 0700);
    snprintf(sub, sizeof(sub), "%s/keep-me", bdir);
    mkdir(sub, 0700);
    for (int i = 0; i < 4; i++) {
        opts_for(&o, &s);
        o.backup_dir = bdir;
        o.keep_backups = 2;
        merge_ok(&o, &r);
        assert_true(strncmp(r.backup_dir, bdir, strlen(bdir)) == 0);
        assert_int_equal(r.backups_removed, i >= 2 ? 1 : 0);
        snprintf(sub, sizeof(sub), "%s/live.db", r.backup_dir);
        assert_int_equal(pm_int(sub, "SELECT count(*) FROM metadata_items"), 29);
        pb_plex_report_dispose(&r);
    }
    assert_int_equal(count_dirs(bdir), 2 + 1);
    /* --keep-backups 0: none */
    opts_for(&o, &s);
    o.backup_dir = bdir;
    o.keep_backups = 0;
    merge_ok(&o, &r);
    assert_string_equal(r.backup_dir, "");
    pb_plex_report_dispose(&r);
}

static void test_dry_run(void **state)
{
    (void)state;
    pm_scenario s;
    pm_options po = PM_OPTIONS_DEFAULT;
    pb_plex_merge_options o;
    pb_plex_report r;
    char before[33], after[33], bdir[4300];
    struct stat st1, st2;
    pm_build(&s, "pm-dry", &po);
    pm_checksum(s.live, before);
    assert_int_equal(stat(s.live, &st1), 0);
    opts_for(&o, &s);
    o.dry_run = 1;
    merge_ok(&o, &r);
    assert_true(r.dry_run);
    assert_false(r.merged);
    assert_true(strncmp(r.engine, "none (dry run", 13) == 0);
    check_merge_counts(&r);
    pm_checksum(s.live, after);
    assert_string_equal(before, after);
    assert_int_equal(stat(s.live, &st2), 0);
    assert_int_equal(st1.st_size, st2.st_size);
    assert_int_equal(st1.st_mtime, st2.st_mtime);
    snprintf(bdir, sizeof(bdir), "%s/plexburst-backups", s.dir);
    assert_int_equal(count_dirs(bdir), 0);
    pb_plex_report_dispose(&r);

    /* the 3-way diff is the same dry run */
    pb_error err = PB_ERROR_INIT;
    assert_int_equal(pb_plex_diff(&o, &r, &err), 0);
    assert_true(r.three_way);
    check_diff_figures(&r);
    check_merge_counts(&r);
    pb_plex_report_dispose(&r);

    /* the 2-way diff: no merge figures */
    o.live = NULL;
    assert_int_equal(pb_plex_diff(&o, &r, &err), 0);
    assert_false(r.three_way);
    check_diff_figures(&r);
    assert_int_equal(r.merge.inserted + r.merge.conflicts, 0);
    assert_string_equal(r.schema.live_version, "");
    pb_plex_report_dispose(&r);
}

/* A changeset file of the scenario (base -> cloud), raw. */
static void write_changeset(const pm_scenario *s, const char *path)
{
    FILE *f = fopen(path, "wb");
    pb_error err = PB_ERROR_INIT;
    assert_non_null(f);
    if (pb_sqldiff_diff(NULL, s->base, s->cloud, NULL, pb_sqldiff_write_file, f, &err) != 0)
        fail_msg("diff: %s", err.msg);
    fclose(f);
}

static void expect_failure(const pb_plex_merge_options *o, const char *live, int want_code,
                           const char *want_sub)
{
    pb_plex_report r;
    pb_error err = PB_ERROR_INIT;
    char before[33], after[33];
    pm_checksum(live, before);
    int rc = pb_plex_merge(o, &r, &err);
    if (rc != want_code)
        fail_msg("expected %d, got %d: %s", want_code, rc, err.msg);
    assert_false(r.ok);
    assert_true(strlen(err.msg) > 0);
    assert_null(strchr(err.msg, '\n'));
    if (want_sub && !strstr(err.msg, want_sub))
        fail_msg("'%s' not in '%s'", want_sub, err.msg);
    assert_false(r.merged);
    pm_checksum(live, after);
    assert_string_equal(before, after);
    pb_plex_report_dispose(&r);
}

static void test_bad_inputs(void **state)
{
    (void)state;
    pm_scenario s;
    pm_options po = PM_OPTIONS_DEFAULT;
    pb_plex_merge_options o;
    pb_plex_report r;
    char cs[4300], cut[4300], junk[4300], other[4300], other_cs[4300], nolive[4300];
    pm_build(&s, "pm-bad", &po);
    snprintf(cs, sizeof(cs), "%s/good.changeset", s.dir);
    write_changeset(&s, cs);

    /* a good changeset file merges like the cloud DB does (and zstd too) */
    char zcs[4400], live2[4300];
    snprintf(zcs, sizeof(zcs), "%s.zst", cs);
    snprintf(live2, sizeof(live2), "%s/live2.db", s.dir);
    pm_copy(s.live, live2);
    if (tu_sh("zstd -q -f '%s' -o '%s' 2>/dev/null", cs, zcs) != 0)
        snprintf(zcs, sizeof(zcs), "%s", cs);
    opts_for(&o, &s);
    o.cloud = NULL;
    o.changeset = zcs;
    o.live = live2;
    o.keep_backups = 0;
    merge_ok(&o, &r);
    check_merge_counts(&r);
    check_merged_live(live2);
    pb_plex_report_dispose(&r);

    /* truncated in the middle of a record */
    char *data = pm_slurp(cs);
    struct stat st;
    assert_int_equal(stat(cs, &st), 0);
    snprintf(cut, sizeof(cut), "%s/cut.changeset", s.dir);
    FILE *f = fopen(cut, "wb");
    fwrite(data, 1, (size_t)st.st_size / 2 + 3, f);
    fclose(f);
    opts_for(&o, &s);
    o.cloud = NULL;
    o.changeset = cut;
    expect_failure(&o, s.live, PB_ECORRUPT, NULL);
    /* garbage in the middle */
    memset(data + st.st_size / 3, 0xff, 64);
    f = fopen(cut, "wb");
    fwrite(data, 1, (size_t)st.st_size, f);
    fclose(f);
    expect_failure(&o, s.live, PB_ECORRUPT, NULL);
    free(data);

    /* a changeset of another schema (same table name, other columns) */
    snprintf(other, sizeof(other), "%s/other.db", s.dir);
    snprintf(other_cs, sizeof(other_cs), "%s/other.changeset", s.dir);
    pm_exec(other, "CREATE TABLE metadata_items (id INTEGER PRIMARY KEY, title TEXT)");
    char other2[4400];
    snprintf(other2, sizeof(other2), "%s/other2.db", s.dir);
    pm_copy(other, other2);
    pm_exec(other2, "INSERT INTO metadata_items VALUES (100, 'x')");
    {
        FILE *g = fopen(other_cs, "wb");
        pb_error err = PB_ERROR_INIT;
        assert_int_equal(pb_sqldiff_diff(NULL, other, other2, NULL, pb_sqldiff_write_file, g, &err),
                         0);
        fclose(g);
    }
    o.changeset = other_cs;
    expect_failure(&o, s.live, PB_ESCHEMA, "metadata_items has 2 columns");

    /* a cloud "DB" that is not one */
    snprintf(junk, sizeof(junk), "%s/junk.db", s.dir);
    f = fopen(junk, "wb");
    for (int i = 0; i < 4096; i++)
        fputc(i * 7, f);
    fclose(f);
    opts_for(&o, &s);
    o.cloud = junk;
    expect_failure(&o, s.live, PB_ECORRUPT, "cloud");
    /* a truncated cloud DB */
    snprintf(cut, sizeof(cut), "%s/cut.db", s.dir);
    assert_int_equal(tu_sh("head -c 8192 '%s' > '%s'", s.cloud, cut), 0);
    o.cloud = cut;
    {
        pb_plex_report rr;
        pb_error err = PB_ERROR_INIT;
        char before[33], after[33];
        pm_checksum(s.live, before);
        assert_true(pb_plex_merge(&o, &rr, &err) < 0);
        assert_false(rr.merged);
        pm_checksum(s.live, after);
        assert_string_equal(before, after);
        pb_plex_report_dispose(&rr);
    }
    /* a missing DB */
    snprintf(nolive, sizeof(nolive), "%s/nothing.db", s.dir);
    opts_for(&o, &s);
    o.base = nolive;
    expect_failure(&o, s.live, PB_ENOTFOUND, "nothing.db");
    /* a live DB missing a table */
    opts_for(&o, &s);
    pm_exec(live2, "DROP TABLE media_streams");
    o.live = live2;
    {
        pb_plex_report rr;
        pb_error err = PB_ERROR_INIT;
        assert_int_equal(pb_plex_merge(&o, &rr, &err), PB_ESCHEMA);
        assert_non_null(strstr(err.msg, "table media_streams only in"));
        pb_plex_report_dispose(&rr);
    }
    /* an engine that fails: nothing written */
    opts_for(&o, &s);
    o.engine = PB_PLEX_ENGINE_PATH;
    o.plex_sqlite = "/bin/false";
    o.keep_backups = 0;
    expect_failure(&o, s.live, PB_ERROR, "engine");
    /* options */
    opts_for(&o, &s);
    o.cloud = NULL;
    expect_failure(&o, s.live, PB_EINVALID, NULL);
}

int main(void)
{
    tu_asan_allow_stock_host();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_in_process),
        cmocka_unit_test(test_engine_path_same_result),
        cmocka_unit_test(test_blobs_wal),
        cmocka_unit_test(test_path_mapping),
        cmocka_unit_test(test_deletion_guard_refuses),
        cmocka_unit_test(test_schema_guard),
        cmocka_unit_test(test_backups_rotate),
        cmocka_unit_test(test_dry_run),
        cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_plexmerge_mkplex.c: `plexburst merge` over data dirs written by the fixture tool mkplex: a
 * cloud analysis run merged into a home that streamed meanwhile (library and blobs DBs), and a
 * cloud run whose mount failed (mkplex analyze --mass-delete-section Movies) refused by the
 * deletion guard with the live DB unchanged. extra_data: the url companion and the JSON text the
 * merge writes agree with mkplex's, and a cloud analysis (loudness, sonic keys) merged into items
 * whose extra_data the home also edited keeps both sides' keys, in-process and on the engine path.
 * Prerequisites: mkplex and plexburst in PB_BUILD_DIR (skipped, with the reason, without mkplex).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include <sqlite3.h>

#include "testutil.h"
#include "extradata.h"
#include "test_plexmerge_util.h"

/* A run's three data dirs in a fresh scratch dir: base written by `mkplex init --dir base <init>`,
 * cloud and home copies of it. Skips when mkplex is missing or fails; returns mkplex's path. */
typedef struct mk_dirs {
    char dir[4096], base[4300], cloud[4300], home[4300];
} mk_dirs;

static const char *mk_dirs_init(mk_dirs *d, const char *tag, const char *init)
{
    const char *mk = tu_build_path("mkplex");
    if (access(mk, X_OK) != 0)
        tu_skip("mkplex is not built yet");
    snprintf(d->dir, sizeof(d->dir), "%s", tu_tmpdir(tag));
    snprintf(d->base, sizeof(d->base), "%s/base", d->dir);
    snprintf(d->cloud, sizeof(d->cloud), "%s/cloud", d->dir);
    snprintf(d->home, sizeof(d->home), "%s/home", d->dir);
    if (tu_sh("'%s' init --dir '%s' %s >/dev/null 2>&1", mk, d->base, init) != 0)
        tu_skip("mkplex init failed (fixture tool not ready)");
    assert_int_equal(
        tu_sh("cp -a '%s' '%s' && cp -a '%s' '%s'", d->base, d->cloud, d->base, d->home), 0);
    return mk;
}

static void test_mkplex_merge(void **state)
{
    (void)state;
    char err[4096], args[32768], before[33], after[33];
    mk_dirs d;
    const char *mk = mk_dirs_init(&d, "pmcli-mkplex", "--scale tiny");
    const char *dir = d.dir, *base_dir = d.base, *cloud_dir = d.cloud, *home_dir = d.home;
    if (tu_sh("'%s' analyze --dir '%s' --seed 7 >/dev/null 2>&1", mk, cloud_dir) != 0 ||
        tu_sh("'%s' stream --dir '%s' --seed 8 --edit-title 2 >/dev/null 2>&1", mk, home_dir) != 0)
        tu_skip("mkplex analyze/stream failed (fixture tool not ready)");
#define DB  "/Plug-in Support/Databases/com.plexapp.plugins.library.db"
#define BDB "/Plug-in Support/Databases/com.plexapp.plugins.library.blobs.db"
    char live[4400], blive[4400], live2[4400], blive2[4400];
    snprintf(live, sizeof(live), "%s" DB, home_dir);
    snprintf(blive, sizeof(blive), "%s" BDB, home_dir);
    snprintf(live2, sizeof(live2), "%s/live2.db", dir);
    snprintf(blive2, sizeof(blive2), "%s/live2.blobs.db", dir);
    pm_copy(live, live2);
    pm_copy(blive, blive2);
    pm_checksum(live, before);
    snprintf(args, sizeof(args),
             "merge --base '%s" DB "' --cloud '%s" DB "' --live '%s' --blobs-base '%s" BDB
             "' --blobs-cloud '%s" BDB "' --blobs-live '%s' --in-process --json --zstd-level 3",
             base_dir, cloud_dir, live, base_dir, cloud_dir, blive);
    int rc = pm_cli(err, sizeof(err), dir, args);
    if (rc != 0)
        fail_msg("merge of an mkplex run: exit %d: %s", rc, err);
    json_t *j = pm_json();
    pm_contract(j, 1);
    assert_true(json_integer_value(pm_path(j, "rows.updated")) +
                    json_integer_value(pm_path(j, "rows.inserted")) >
                0);
    json_int_t inserted = json_integer_value(pm_path(j, "rows.inserted"));
    json_int_t conflicts = json_integer_value(pm_path(j, "rows.conflicts"));
    json_decref(j);
    pm_checksum(live, after);
    assert_true(strcmp(before, after) != 0);

    /* the same merge through the engine path (stock sqlite3 + plexcompat standing in for Plex
     * SQLite): the same decisions and the same rows, in both DBs */
    if (access("/usr/bin/sqlite3", X_OK) == 0) {
        char h1[33], h2[33];
        snprintf(args, sizeof(args),
                 "merge --base '%s" DB "' --cloud '%s" DB "' --live '%s' --blobs-base '%s" BDB
                 "' --blobs-cloud '%s" BDB "' --blobs-live '%s' --plex-sqlite /usr/bin/sqlite3 "
                 "--compat-extension '%s' --keep-backups 0 --json --zstd-level 3",
                 base_dir, cloud_dir, live2, base_dir, cloud_dir, blive2,
                 tu_build_path("plexcompat"));
        rc = pm_cli(err, sizeof(err), dir, args);
        if (rc != 0)
            fail_msg("engine merge of an mkplex run: exit %d: %s", rc, err);
        j = pm_json();
        assert_true(strncmp(json_string_value(pm_path(j, "engine")),
                            "plex-sqlite: /usr/bin/sqlite3", 29) == 0);
        assert_int_equal(json_integer_value(pm_path(j, "rows.inserted")), inserted);
        assert_int_equal(json_integer_value(pm_path(j, "rows.conflicts")), conflicts);
        assert_true(json_is_true(pm_path(j, "atomic_pair")));
        json_decref(j);
        pm_checksum(live, h1);
        pm_checksum(live2, h2);
        assert_string_equal(h1, h2);
        pm_checksum(blive, h1);
        pm_checksum(blive2, h2);
        assert_string_equal(h1, h2);
    }

    /* a mass deletion on the cloud is refused */
    char cloud2[4300];
    snprintf(cloud2, sizeof(cloud2), "%s/cloud2", dir);
    assert_int_equal(tu_sh("cp -a '%s' '%s'", base_dir, cloud2), 0);
    if (tu_sh("'%s' analyze --dir '%s' --seed 9 --mass-delete-section Movies >/dev/null 2>&1", mk,
              cloud2) != 0)
        tu_skip("mkplex --mass-delete-section failed (fixture tool not ready)");
    pm_checksum(live, before);
    snprintf(args, sizeof(args),
             "merge --base '%s" DB "' --cloud '%s" DB "' --live '%s' --in-process", base_dir,
             cloud2, live);
    assert_int_equal(pm_cli(err, sizeof(err), dir, args), 3);
    assert_true(pm_one_line(err));
    assert_non_null(strstr(err, "deletion guard: section \"Movies\""));
    pm_checksum(live, after);
    assert_string_equal(before, after);
#undef DB
#undef BDB
}

#define DB  "/Plug-in Support/Databases/com.plexapp.plugins.library.db"
#define BDB "/Plug-in Support/Databases/com.plexapp.plugins.library.blobs.db"

/* The url companion written independently of engine/plex/extradata.c: sorted keys, unreserved
 * characters literal, %XX otherwise, non-strings empty (fixtures/db.c writes it this way). */
static void url_of(json_t *o, char *out, size_t cap)
{
    const char *keys[128], *k;
    json_t *v;
    size_t n = 0, len = 0;
    json_object_foreach(o, k, v)
    {
        if (strcmp(k, "url") != 0 && n < 128)
            keys[n++] = k;
    }
    for (size_t i = 0; i < n; i++) /* insertion sort, bytewise */
        for (size_t j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
            const char *t = keys[j];
            keys[j] = keys[j - 1];
            keys[j - 1] = t;
        }
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        json_t *val = json_object_get(o, keys[i]);
        const char *parts[2] = {keys[i], json_is_string(val) ? json_string_value(val) : ""};
        if (i)
            len += (size_t)snprintf(out + len, cap - len, "&");
        for (int p = 0; p < 2; p++) {
            for (const unsigned char *c = (const unsigned char *)parts[p]; *c; c++)
                len += (size_t)snprintf(out + len, cap - len,
                                        strchr("-._~", *c) || (*c >= '0' && *c <= '9') ||
                                                (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')
                                            ? "%c"
                                            : "%%%02X",
                                        *c);
            if (!p)
                len += (size_t)snprintf(out + len, cap - len, "=");
        }
        assert_true(len < cap);
    }
}

/* Runs `sql` on `db` with other DBs attached; calls `row` for each row. */
static int each_row(const char *db, const char *attach_sql, const char *sql,
                    void (*row)(sqlite3_stmt *st, void *p), void *p)
{
    sqlite3 *d = NULL;
    sqlite3_stmt *st = NULL;
    int n = 0;
    assert_int_equal(sqlite3_open_v2(db, &d, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    if (attach_sql)
        assert_int_equal(sqlite3_exec(d, attach_sql, NULL, NULL, NULL), SQLITE_OK);
    if (sqlite3_prepare_v2(d, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(d));
    while (sqlite3_step(st) == SQLITE_ROW) {
        row(st, p);
        n++;
    }
    sqlite3_finalize(st);
    sqlite3_close(d);
    return n;
}

/* mkplex's extra_data: pb_extra_data_url and the merge's JSON text give back the stored value. */
static void agree_row(sqlite3_stmt *st, void *p)
{
    (void)p;
    const char *text = (const char *)sqlite3_column_text(st, 0);
    json_t *o = json_loads(text, 0, NULL);
    if (!json_is_object(o))
        fail_msg("mkplex wrote extra_data that is not a JSON object: %s", text);
    json_t *url = json_object_get(o, "url");
    if (json_object_size(o) > 1) {
        char *mine = pb_extra_data_url(o);
        if (!json_is_string(url) || strcmp(mine, json_string_value(url)) != 0)
            fail_msg("url of %s: mkplex has %s, pb_extra_data_url gives %s", text,
                     json_is_string(url) ? json_string_value(url) : "none", mine);
        free(mine);
    }
    char *dump = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    if (strcmp(dump, text) != 0)
        fail_msg("extra_data text: mkplex wrote %s, the merge would write %s", text, dump);
    free(dump);
    json_decref(o);
}

typedef struct xd_check {
    int analysed; /* items/streams the cloud changed and the home edited too */
    int conflict; /* of which the key both sides set (home wins) */
} xd_check;

/* A row the cloud's analysis changed: every key the cloud changed is there with the cloud's
 * value, except the one the home also set; the home's key is there; the url matches the keys. */
static void merged_row(sqlite3_stmt *st, void *p)
{
    xd_check *x = p;
    const char *texts[4];
    json_t *o[4]; /* base, cloud, home before, merged */
    for (int i = 0; i < 4; i++) {
        texts[i] = (const char *)sqlite3_column_text(st, i);
        o[i] = json_loads(texts[i] ? texts[i] : "{}", 0, NULL);
        if (!json_is_object(o[i]))
            fail_msg("extra_data %d not an object: %s", i, texts[i] ? texts[i] : "NULL");
    }
    if (!json_object_get(o[3], "pv:homeNote"))
        fail_msg("the home's key was lost: home %s, merged %s", texts[2], texts[3]);
    const char *k;
    json_t *v;
    int cloud_only = 0;
    json_object_foreach(o[1], k, v)
    {
        if (strcmp(k, "url") == 0 || json_equal(v, json_object_get(o[0], k)))
            continue;
        json_t *home = json_object_get(o[2], k), *got = json_object_get(o[3], k);
        if (home && !json_equal(home, json_object_get(o[0], k))) { /* both set it: home wins */
            if (!got || !json_equal(got, home))
                fail_msg("key %s both sides set: want the home's, got %s", k, texts[3]);
            x->conflict++;
        } else if (!got || !json_equal(got, v)) {
            fail_msg("the cloud's key %s was lost: cloud %s, merged %s", k, texts[1], texts[3]);
        } else {
            cloud_only++;
        }
    }
    if (!cloud_only) { /* nothing of the cloud's survives: the home value stays as it was */
        if (strcmp(texts[2], texts[3]) != 0)
            fail_msg("home value rewritten for nothing: %s -> %s", texts[2], texts[3]);
        for (int i = 0; i < 4; i++)
            json_decref(o[i]);
        return;
    }
    char want[8192];
    url_of(o[3], want, sizeof(want));
    json_t *url = json_object_get(o[3], "url");
    if (!json_is_string(url) || strcmp(json_string_value(url), want) != 0)
        fail_msg("url not recomputed: %s (want %s)", texts[3], want);
    x->analysed++;
    for (int i = 0; i < 4; i++)
        json_decref(o[i]);
}

static void test_mkplex_extra_data(void **state)
{
    (void)state;
    char err[4096], args[32768];
    mk_dirs d;
    const char *mk = mk_dirs_init(&d, "pmcli-extra", "--scale tiny --seed 3");
    const char *dir = d.dir, *base_dir = d.base, *cloud_dir = d.cloud, *home_dir = d.home;
    if (tu_sh("'%s' analyze --dir '%s' --seed 4 --analyze-pct 40 >/dev/null 2>&1", mk, cloud_dir) !=
        0)
        tu_skip("mkplex analyze failed (fixture tool not ready)");
    char base[4400], cloud[4400], live[4400], bbase[4400], bcloud[4400], blive[4400];
    snprintf(base, sizeof(base), "%s" DB, base_dir);
    snprintf(cloud, sizeof(cloud), "%s" DB, cloud_dir);
    snprintf(live, sizeof(live), "%s" DB, home_dir);
    snprintf(bbase, sizeof(bbase), "%s" BDB, base_dir);
    snprintf(bcloud, sizeof(bcloud), "%s" BDB, cloud_dir);
    snprintf(blive, sizeof(blive), "%s" BDB, home_dir);

    /* the formats agree with mkplex's, on every extra_data the cloud holds */
    int n = each_row(cloud, NULL,
                     "SELECT extra_data FROM metadata_items WHERE extra_data LIKE '{%' UNION ALL "
                     "SELECT extra_data FROM media_parts WHERE extra_data LIKE '{%' UNION ALL "
                     "SELECT extra_data FROM media_streams WHERE extra_data LIKE '{%'",
                     agree_row, NULL);
    assert_true(n > 50);

    /* the home edits the extra_data of every movie, episode, track and audio stream meanwhile
     * (its url left stale), and sets the loudness version of two items itself */
    pm_exec(live, "UPDATE metadata_items SET extra_data = json_set(coalesce(nullif(extra_data, "
                  "''), '{}'), '$.pv:homeNote', 'edited at home') WHERE metadata_type IN (1, 4, "
                  "10);"
                  "UPDATE media_streams SET extra_data = json_set(coalesce(nullif(extra_data, ''), "
                  "'{}'), '$.pv:homeNote', 'edited at home') WHERE stream_type_id = 2;"
                  "UPDATE metadata_items SET extra_data = json_set(extra_data, "
                  "'$.ln:loudnessAnalysisVersion', '9') WHERE id IN (SELECT id FROM "
                  "metadata_items WHERE metadata_type IN (1, 4, 10) ORDER BY id LIMIT 2);");
    char live2[4400], blive2[4400];
    snprintf(live2, sizeof(live2), "%s/live2.db", dir);
    snprintf(blive2, sizeof(blive2), "%s/live2.blobs.db", dir);
    pm_copy(live, live2);
    pm_copy(blive, blive2);
    char home_copy[4400];
    snprintf(home_copy, sizeof(home_copy), "%s/home-before.db", dir);
    pm_copy(live, home_copy);

    snprintf(args, sizeof(args),
             "merge --base '%s' --cloud '%s' --live '%s' --blobs-base '%s' --blobs-cloud '%s' "
             "--blobs-live '%s' --in-process --keep-backups 0 --json --zstd-level 3",
             base, cloud, live, bbase, bcloud, blive);
    int rc = pm_cli(err, sizeof(err), dir, args);
    if (rc != 0)
        fail_msg("merge: exit %d: %s", rc, err);
    json_t *j = pm_json();
    json_int_t merged = json_integer_value(pm_path(j, "rows.merged"));
    json_decref(j);

    char attach[16000];
    snprintf(attach, sizeof(attach), "ATTACH '%s' AS b; ATTACH '%s' AS c; ATTACH '%s' AS h", base,
             cloud, home_copy);
    xd_check x = {0, 0};
    static const char *const tables[2][2] = {{"metadata_items", "metadata_type IN (1, 4, 10)"},
                                             {"media_streams", "stream_type_id = 2"}};
    for (int t = 0; t < 2; t++) {
        char sql[2048];
        snprintf(sql, sizeof(sql),
                 "SELECT bt.extra_data, ct.extra_data, ht.extra_data, m.extra_data FROM main.%s m "
                 "JOIN b.%s bt ON bt.id = m.id JOIN c.%s ct ON ct.id = m.id JOIN h.%s ht ON "
                 "ht.id = m.id WHERE ct.extra_data IS NOT bt.extra_data AND m.%s ORDER BY m.id",
                 tables[t][0], tables[t][0], tables[t][0], tables[t][0], tables[t][1]);
        each_row(live, attach, sql, merged_row, &x);
    }
    printf("extra_data: %d rows analysed by the cloud and edited at home merged per key (%d keys "
           "both set, home kept); rows.merged %lld\n",
           x.analysed, x.conflict, (long long)merged);
    assert_true(x.analysed > 5);
    assert_true(merged >= x.analysed);

    /* the engine path (script mode) writes the same */
    if (access("/usr/bin/sqlite3", X_OK) == 0) {
        char h1[33], h2[33];
        snprintf(args, sizeof(args),
                 "merge --base '%s' --cloud '%s' --live '%s' --blobs-base '%s' --blobs-cloud '%s' "
                 "--blobs-live '%s' --plex-sqlite /usr/bin/sqlite3 --compat-extension '%s' "
                 "--keep-backups 0 --json --zstd-level 3",
                 base, cloud, live2, bbase, bcloud, blive2, tu_build_path("plexcompat"));
        rc = pm_cli(err, sizeof(err), dir, args);
        if (rc != 0)
            fail_msg("engine merge: exit %d: %s", rc, err);
        j = pm_json();
        assert_int_equal(json_integer_value(pm_path(j, "rows.merged")), merged);
        json_decref(j);
        pm_checksum(live, h1);
        pm_checksum(live2, h2);
        assert_string_equal(h1, h2);
    }
}

int main(void)
{
    tu_asan_allow_stock_host();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mkplex_merge),
        cmocka_unit_test(test_mkplex_extra_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_mkplex.c: tests of the fixture tool mkplex (fixtures/): both DBs have every table, index and
 * trigger of fixtures/plex-schema.sql; plausible counts; hash = sha1(guid) (checked with sha1sum)
 * and the Plex part hash of the pseudo media content; references resolve; the tree has its bundles
 * with _combined hard links and valid BIFs; init is deterministic; analyze and stream change
 * exactly what they report (checked against a row-by-row diff of the DBs), analyze on a DB-only
 * copy regenerates byte-identical files, regenerated files differ only in a small region, and a
 * mass deletion leaves ~10 % of a section. Built twice (tests/mkplex.cmake): test_mkplex (unit,
 * tiny scale) and test_mkplex_small (integration, -DMK_SMALL: a small-scale run). Prerequisites:
 * build/mkplex (skipped when missing), coreutils (sha1sum, cp, diff, cmp).
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "plexburst/compat.h"
#include "testutil.h"

#define DBREL  "Plug-in Support/Databases/com.plexapp.plugins.library.db"
#define BDBREL "Plug-in Support/Databases/com.plexapp.plugins.library.blobs.db"

#ifdef MK_SMALL
#define SCALE "small"
#else
#define SCALE "tiny"
#endif

static char g_root[1024];     /* scratch dir of this run */
static char g_base[PATH_MAX]; /* init --scale SCALE --seed 1, with its tree */
static json_t *g_init;        /* the init report */

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                      */

static const char *mk(void)
{
    return tu_build_path("mkplex");
}

/* Runs `mkplex <args> --json`; fails the test unless it exits 0 with one JSON object. */
static json_t *run_json(const char *fmt, ...)
{
    char args[4096], cmd[8192];
    static char out[1 << 20];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "'%s' %s --json", mk(), args);
    int rc = tu_sh_out(out, sizeof(out), "%s", cmd);
    if (rc != 0)
        fail_msg("%s: exit %d", cmd, rc);
    json_error_t e;
    json_t *j = json_loads(out, 0, &e);
    if (!j)
        fail_msg("%s: bad JSON: %s", cmd, e.text);
    return j;
}

static sqlite3 *open_db(const char *dir, const char *rel)
{
    char path[PATH_MAX * 2];
    sqlite3 *db = NULL;
    pb_error err = PB_ERROR_INIT;
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    if (pb_compat_open(&db, path, 0, &err) != 0)
        fail_msg("open %s: %s", path, err.msg);
    return db;
}

static int64_t q1(sqlite3 *db, const char *fmt, ...)
{
    char sql[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("prepare %s: %s", sql, sqlite3_errmsg(db));
    int64_t v = -1;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    else if (rc != SQLITE_DONE)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return v;
}

/* Rows of main.table whose extra_data holds `has` and whose base row (b) lacked `lacked`. */
static int64_t gained(sqlite3 *db, const char *table, const char *has, const char *lacked)
{
    return q1(db,
              "SELECT count(*) FROM main.%s m JOIN b.%s o ON o.id = m.id WHERE m.extra_data LIKE "
              "'%%%s%%' AND coalesce(o.extra_data, '') NOT LIKE '%%%s%%'",
              table, table, has, lacked);
}

static void attach(sqlite3 *db, const char *dir, const char *rel, const char *as)
{
    char sql[PATH_MAX * 3];
    snprintf(sql, sizeof(sql), "ATTACH '%s/%s' AS %s", dir, rel, as);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
}

static int64_t jint(json_t *j, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *cur = j;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = json_object_get(cur, tok);
    return cur ? json_integer_value(cur) : 0;
}

/* A DB-only copy of the base dir (only the two library DBs). */
static const char *copy_dbs(const char *tag)
{
    static char path[8][PATH_MAX];
    static int slot;
    char *p = path[slot++ % 8];
    snprintf(p, PATH_MAX, "%s/%s", g_root, tag);
    assert_int_equal(tu_sh("rm -rf '%s' && mkdir -p '%s/Plug-in Support/Databases' && cp "
                           "'%s/Plug-in Support/Databases/'*.db '%s/Plug-in Support/Databases/'",
                           p, p, g_base, p),
                     0);
    return p;
}

static int is_file(const char *dir, const char *rel)
{
    char path[PATH_MAX * 2];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* 1 when both files exist with the same bytes; *ndiff = bytes that differ (same size only). */
static int same_file(const char *a, const char *b, long *size_a, long *size_b, long *ndiff)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    long na = 0, nb = 0, d = 0;
    int ca = 0, cb = 0;
    while (fa && fb) {
        ca = getc(fa);
        cb = getc(fb);
        if (ca == EOF || cb == EOF)
            break;
        na++;
        nb++;
        d += ca != cb;
    }
    while (fa && ca != EOF && (ca = getc(fa)) != EOF)
        na++;
    while (fb && cb != EOF && (cb = getc(fb)) != EOF)
        nb++;
    if (ca != EOF || cb != EOF || na != nb || d)
        same = 0;
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    if (size_a)
        *size_a = na;
    if (size_b)
        *size_b = nb;
    if (ndiff)
        *ndiff = d;
    return same;
}

/* Calls fn(path, path relative to root) on each regular file below root/{Metadata,Media} (nftw:
 * one walk at a time). */
static const char *e_root;
static void (*e_fn)(const char *path, const char *rel);

static int each_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_F)
        e_fn(path, path + strlen(e_root) + 1);
    return 0;
}

static void each_media_file(const char *root, void (*fn)(const char *path, const char *rel))
{
    char sub[PATH_MAX * 2];
    e_root = root;
    e_fn = fn;
    static const char *const subs[] = {"Metadata", "Media"};
    for (int i = 0; i < 2; i++) {
        snprintf(sub, sizeof(sub), "%s/%s", root, subs[i]);
        if (access(sub, F_OK) == 0)
            assert_int_equal(nftw(sub, each_cb, 32, FTW_PHYS), 0);
    }
}

/* Walks the regular files below dir/{Metadata,Media} and compares each with the same path under
 * other1 (must be identical) and other2 (counted when identical). */
static const char *w_other1, *w_other2;
static long w_n, w_bad, w_same;

static void compare_one(const char *path, const char *rel)
{
    char o1[PATH_MAX * 2], o2[PATH_MAX * 2];
    snprintf(o1, sizeof(o1), "%s/%s", w_other1, rel);
    snprintf(o2, sizeof(o2), "%s/%s", w_other2, rel);
    w_n++;
    if (!same_file(path, o1, NULL, NULL, NULL)) {
        w_bad++;
        print_message("differs: %s\n", rel);
    }
    w_same += same_file(path, o2, NULL, NULL, NULL);
}

static void compare_trees(const char *dir, const char *other1, const char *other2, long *n,
                          long *bad, long *same)
{
    w_other1 = other1;
    w_other2 = other2;
    w_n = w_bad = w_same = 0;
    each_media_file(dir, compare_one);
    *n = w_n;
    *bad = w_bad;
    *same = w_same;
}

/* ------------------------------------------------------------------------------------------ */
/* content digests (determinism)                                                                */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* Per-table digests of every real table (virtual tables' data is in their shadow tables). */
static json_t *db_digest(const char *dir, const char *rel)
{
    sqlite3 *db = open_db(dir, rel);
    json_t *out = json_object();
    sqlite3_stmt *tl = tu_prepare(db, "SELECT name FROM sqlite_master WHERE type='table' AND"
                                      " sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name");
    while (sqlite3_step(tl) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(tl, 0);
        char sql[512];
        sqlite3_stmt *st = NULL;
        snprintf(sql, sizeof(sql), "SELECT * FROM \"%s\" ORDER BY rowid", t);
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) !=
            SQLITE_OK) { /* sqlite_stat1: no rowid order issue */
            snprintf(sql, sizeof(sql), "SELECT * FROM \"%s\"", t);
            st = tu_prepare(db, sql);
        }
        uint64_t h = 0xcbf29ce484222325ULL;
        int64_t rows = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
            rows++;
            for (int i = 0; i < sqlite3_column_count(st); i++) {
                int type = sqlite3_column_type(st, i);
                h = fnv(h, &type, sizeof(type));
                const void *b = sqlite3_column_blob(st, i);
                h = fnv(h, b ? b : "", (size_t)sqlite3_column_bytes(st, i));
            }
        }
        sqlite3_finalize(st);
        char hex[40];
        snprintf(hex, sizeof(hex), "%lld:%016llx", (long long)rows, (unsigned long long)h);
        json_object_set_new(out, t, json_string(hex));
    }
    sqlite3_finalize(tl);
    sqlite3_close(db);
    return out;
}

static void assert_same_digest(json_t *a, json_t *b, const char *what)
{
    const char *k;
    json_t *v;
    assert_int_equal(json_object_size(a), json_object_size(b));
    json_object_foreach(a, k, v)
    {
        json_t *w = json_object_get(b, k);
        if (!w || strcmp(json_string_value(v), json_string_value(w)) != 0)
            fail_msg("%s: table %s differs (%s vs %s)", what, k, json_string_value(v),
                     w ? json_string_value(w) : "missing");
    }
}

/* ------------------------------------------------------------------------------------------ */
/* exact change accounting: the report against a row-by-row diff of the DBs                     */

static void check_changes(const char *before_dir, const char *after_dir, const char *rel,
                          json_t *report)
{
    sqlite3 *db = open_db(after_dir, rel);
    attach(db, before_dir, rel, "b");
    sqlite3_stmt *tl = tu_prepare(db, "SELECT name FROM main.sqlite_master WHERE type='table'"
                                      " AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'fts4_%'"
                                      " AND name NOT LIKE 'spellfix_%' AND name NOT LIKE"
                                      " 'locations_%' AND sql NOT LIKE 'CREATE VIRTUAL%'"
                                      " ORDER BY name");
    int tables = 0;
    while (sqlite3_step(tl) == SQLITE_ROW) {
        char t[128], cols[16384] = "";
        snprintf(t, sizeof(t), "%s", (const char *)sqlite3_column_text(tl, 0));
        char sql[20000];
        snprintf(sql, sizeof(sql), "PRAGMA main.table_info(\"%s\")", t);
        sqlite3_stmt *ti = tu_prepare(db, sql);
        int has_id = 0;
        size_t len = 0;
        while (sqlite3_step(ti) == SQLITE_ROW) {
            const char *c = (const char *)sqlite3_column_text(ti, 1);
            has_id |= strcmp(c, "id") == 0;
            len += (size_t)snprintf(cols + len, sizeof(cols) - len, "%sm.\"%s\" IS o.\"%s\"",
                                    len ? " AND " : "", c, c);
        }
        sqlite3_finalize(ti);
        json_t *rep = json_object_get(report, t);
        int64_t ins, upd, del;
        if (!has_id) { /* schema_migrations and the like: never changed by the mutators */
            ins = q1(db, "SELECT count(*) FROM main.\"%s\"", t);
            del = q1(db, "SELECT count(*) FROM b.\"%s\"", t);
            assert_int_equal(ins, del);
            assert_null(rep);
            continue;
        }
        ins = q1(db, "SELECT count(*) FROM main.\"%s\" WHERE id NOT IN (SELECT id FROM b.\"%s\")",
                 t, t);
        del = q1(db, "SELECT count(*) FROM b.\"%s\" WHERE id NOT IN (SELECT id FROM main.\"%s\")",
                 t, t);
        upd = q1(db,
                 "SELECT count(*) FROM main.\"%s\" m JOIN b.\"%s\" o ON o.id = m.id WHERE NOT (%s)",
                 t, t, cols);
        int64_t rins = rep ? json_integer_value(json_object_get(rep, "inserted")) : 0;
        int64_t rupd = rep ? json_integer_value(json_object_get(rep, "updated")) : 0;
        int64_t rdel = rep ? json_integer_value(json_object_get(rep, "deleted")) : 0;
        if (ins != rins || upd != rupd || del != rdel)
            fail_msg("%s %s: diff +%lld ~%lld -%lld, report +%lld ~%lld -%lld", rel, t,
                     (long long)ins, (long long)upd, (long long)del, (long long)rins,
                     (long long)rupd, (long long)rdel);
        tables++;
    }
    sqlite3_finalize(tl);
    assert_true(tables > 40);
    /* the report names no table that does not exist */
    const char *k;
    json_t *v;
    json_object_foreach(report, k, v)
    {
        assert_int_equal(q1(db, "SELECT count(*) FROM main.sqlite_master WHERE name='%s'", k), 1);
    }
    sqlite3_close(db);
}

/* ------------------------------------------------------------------------------------------ */
/* fixtures                                                                                     */

static int group_setup(void **state)
{
    (void)state;
    if (access(mk(), X_OK) != 0)
        tu_skip("mkplex is not built (fixtures/)");
    snprintf(g_root, sizeof(g_root), "%s", tu_tmpdir("mkplex"));
    snprintf(g_base, sizeof(g_base), "%s/base", g_root);
    g_init = run_json("init --dir '%s' --scale " SCALE " --seed 1", g_base);
    print_message("init " SCALE ": %lld ms, main DB %lld bytes, %lld files\n",
                  (long long)jint(g_init, "elapsed_ms"), (long long)jint(g_init, "main_db_bytes"),
                  (long long)jint(g_init, "files.written"));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    json_decref(g_init);
    if (g_root[0] && !getenv("PB_KEEP_TMP"))
        tu_sh("rm -rf '%s'", g_root);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* schema                                                                                       */

/* The name of the object a CREATE statement line creates ("" when it is not one). */
static void created_name(const char *line, const char *kind, char *out, size_t cap)
{
    out[0] = '\0';
    const char *p = line;
    if (strncmp(p, "CREATE ", 7) != 0)
        return;
    p += 7;
    if (!strncmp(p, "UNIQUE ", 7))
        p += 7;
    if (!strncmp(p, "VIRTUAL ", 8))
        p += 8;
    size_t kl = strlen(kind);
    if (strncmp(p, kind, kl) != 0 || p[kl] != ' ')
        return;
    p += kl + 1;
    if (!strncmp(p, "IF NOT EXISTS ", 14))
        p += 14;
    size_t n = 0;
    if (*p == '"' || *p == '\'') {
        char q = *p++;
        while (*p && *p != q && n + 1 < cap)
            out[n++] = *p++;
    } else {
        while (*p && *p != ' ' && *p != '(' && n + 1 < cap)
            out[n++] = *p++;
    }
    out[n] = '\0';
}

static void test_schema(void **state)
{
    (void)state;
    FILE *f = fopen(tu_source_path("fixtures/plex-schema.sql"), "r");
    assert_non_null(f);
    sqlite3 *db = open_db(g_base, DBREL), *bdb = open_db(g_base, BDBREL);
    char line[8192], name[256];
    int tables = 0, indexes = 0, triggers = 0;
    while (fgets(line, sizeof(line), f)) {
        static const char *const kinds[] = {"TABLE", "INDEX", "TRIGGER"};
        static const char *const types[] = {"table", "index", "trigger"};
        for (int k = 0; k < 3; k++) {
            created_name(line, kinds[k], name, sizeof(name));
            if (!name[0])
                continue;
            for (int d = 0; d < 2; d++) {
                int64_t n = q1(d ? bdb : db,
                               "SELECT count(*) FROM sqlite_master WHERE type='%s' AND name='%s'",
                               types[k], name);
                if (n != 1)
                    fail_msg("%s %s missing from the %s DB", types[k], name, d ? "blobs" : "main");
            }
            tables += k == 0;
            indexes += k == 1;
            triggers += k == 2;
        }
    }
    fclose(f);
    /* the reference dump: 84 CREATE TABLE (with shadow and virtual tables), 156 indexes,
     * 8 triggers */
    assert_true(tables >= 80);
    assert_true(indexes >= 150);
    assert_int_equal(triggers, 8);
    for (int d = 0; d < 2; d++) {
        sqlite3 *x = d ? bdb : db;
        assert_int_equal(q1(x, "SELECT count(*) FROM sqlite_master WHERE name IN"
                               " ('fts4_metadata_titles_icu', 'fts4_tag_titles_icu') AND sql LIKE"
                               " '%%tokenize=collating%%'"),
                         2);
        assert_int_equal(q1(x, "SELECT count(*) FROM sqlite_master WHERE sql LIKE"
                               " 'CREATE VIRTUAL TABLE spellfix_%%USING spellfix1%%'"),
                         2);
        assert_int_equal(q1(x, "SELECT count(*) FROM sqlite_master WHERE name='locations' AND"
                               " sql LIKE '%%USING rtree%%'"),
                         1);
        assert_int_equal(q1(x, "SELECT count(*) FROM sqlite_master WHERE name="
                               "'index_title_sort_icu' AND sql LIKE '%%COLLATE icu_root%%'"),
                         1);
        assert_true(q1(x, "SELECT count(*) FROM sqlite_stat1") > 0);
        assert_int_equal(q1(x, "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode="
                               "'wal'"),
                         1);
        sqlite3_stmt *st = tu_prepare(x, "PRAGMA integrity_check");
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
        sqlite3_finalize(st);
    }
    /* FTS filled by the triggers: the first movie is found by its title */
    assert_true(q1(db,
                   "SELECT count(*) FROM fts4_metadata_titles_icu WHERE"
                   " fts4_metadata_titles_icu MATCH (SELECT '\"' || replace(title, '\"', '')"
                   " || '\"' FROM metadata_items WHERE metadata_type=1 ORDER BY id LIMIT 1)") >= 1);
    /* schema_migrations: hundreds, newest like Plex's; the blobs DB has fewer */
    int64_t mig = q1(db, "SELECT count(*) FROM schema_migrations");
    assert_true(mig >= 300);
    assert_true(q1(bdb, "SELECT count(*) FROM schema_migrations") < mig);
    assert_int_equal(q1(db, "SELECT count(*) FROM schema_migrations WHERE version ="
                            " '500000000001.231'"),
                     1);
    assert_int_equal(q1(db, "SELECT count(*) FROM schema_migrations WHERE rowid > 1 AND version"
                            " <= (SELECT version FROM schema_migrations s WHERE s.rowid ="
                            " schema_migrations.rowid - 1)"),
                     0);
    /* the blobs DB: every table empty except blobs, one accounts row, preferences, migrations */
    sqlite3_stmt *tl = tu_prepare(bdb, "SELECT name FROM sqlite_master WHERE type='table' AND"
                                       " sql NOT LIKE 'CREATE VIRTUAL%' AND name NOT LIKE"
                                       " 'sqlite_%' AND name NOT LIKE 'fts4_%' AND name NOT LIKE"
                                       " 'spellfix_%' AND name NOT LIKE 'locations_%' AND name"
                                       " NOT IN ('blobs', 'accounts', 'preferences',"
                                       " 'schema_migrations')");
    while (sqlite3_step(tl) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(tl, 0);
        if (q1(bdb, "SELECT count(*) FROM \"%s\"", t) != 0)
            fail_msg("blobs DB table %s is not empty", t);
    }
    sqlite3_finalize(tl);
    assert_int_equal(q1(bdb, "SELECT count(*) FROM accounts"), 1);
    assert_true(q1(bdb, "SELECT count(*) FROM preferences") >= 1);
    assert_true(q1(bdb, "SELECT count(*) FROM blobs") > 0);
    assert_int_equal(q1(bdb, "SELECT count(*) FROM blobs WHERE hex(substr(blob, 1, 3)) <>"
                             " '1F8B08'"),
                     0);
    sqlite3_close(db);
    sqlite3_close(bdb);
}

/* ------------------------------------------------------------------------------------------ */
/* counts and rows                                                                              */

static void test_counts(void **state)
{
    (void)state;
    sqlite3 *db = open_db(g_base, DBREL);
    static const struct {
        int type;
        const char *name;
    } types[] = {{1, "movie"}, {2, "show"},   {3, "season"}, {4, "episode"},     {8, "artist"},
                 {9, "album"}, {10, "track"}, {13, "photo"}, {14, "photoalbum"}, {15, "playlist"}};
    int64_t n[20] = {0};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        n[types[i].type] =
            q1(db, "SELECT count(*) FROM metadata_items WHERE metadata_type=%d", types[i].type);
        char path[64];
        snprintf(path, sizeof(path), "items.inserted.%s", types[i].name);
        assert_int_equal(n[types[i].type], jint(g_init, path));
        assert_true(n[types[i].type] > 0);
    }
#ifdef MK_SMALL
    assert_int_equal(n[1], 800);
    assert_int_equal(n[2], 60);
    assert_int_equal(n[13], 300);
#else
    assert_int_equal(n[1], 20);
    assert_int_equal(n[2], 3);
    assert_int_equal(n[13], 20);
#endif
    assert_true(n[3] >= n[2] && n[4] >= 2 * n[3]);
    assert_true(n[9] >= n[8] && n[10] >= 2 * n[9]);
    assert_int_equal(n[15], 2);
    /* media: one item and part per leaf (+ local extras), several streams per video part */
    int64_t leaves = n[1] + n[4] + n[10] + n[13];
    int64_t clips = q1(db, "SELECT count(*) FROM metadata_items WHERE metadata_type=12");
    assert_int_equal(q1(db, "SELECT count(*) FROM media_items"), leaves + clips);
    assert_int_equal(q1(db, "SELECT count(*) FROM media_parts"), leaves + clips);
    assert_true(q1(db, "SELECT count(*) FROM media_streams") > n[1] * 2 + n[4] * 2 + n[10]);
    assert_true(q1(db, "SELECT count(*) FROM media_streams WHERE stream_type_id=3 AND url"
                       " LIKE 'file:///%%'") > 0);
    assert_int_equal(q1(db, "SELECT count(*) FROM media_streams WHERE url <> '' AND (url NOT"
                            " LIKE 'file:///%%' OR url LIKE '%% %%')"),
                     0);
    /* tags of every kind the brief names */
    static const int tts[] = {1, 4, 5, 6, 8, 9, 12, 312, 313};
    for (size_t i = 0; i < sizeof(tts) / sizeof(tts[0]); i++)
        if (q1(db,
               "SELECT count(*) FROM taggings t JOIN tags g ON g.id = t.tag_id WHERE"
               " g.tag_type=%d",
               tts[i]) <= 0)
            fail_msg("no taggings of tag_type %d", tts[i]);
    assert_int_equal(q1(db, "SELECT count(*) FROM taggings t JOIN tags g ON g.id = t.tag_id"
                            " WHERE g.tag_type=12 AND (t.text NOT IN ('intro', 'credits') OR"
                            " t.time_offset >= t.end_time_offset)"),
                     0);
    /* guids of the real forms */
    assert_int_equal(q1(db,
                        "SELECT count(*) FROM metadata_items WHERE NOT ("
                        " (metadata_type=1 AND (guid GLOB 'plex://movie/[0-9a-f]*' AND"
                        "  length(guid)=37 OR guid LIKE 'com.plexapp.agents.imdb://tt%%?lang=en'"
                        "  OR guid GLOB 'local://[0-9]*'))"
                        " OR (metadata_type IN (2,3,4) AND (guid GLOB 'plex://show/*' OR guid"
                        "  GLOB 'plex://season/*' OR guid GLOB 'plex://episode/*' OR guid GLOB"
                        "  'com.plexapp.agents.thetvdb://*'))"
                        " OR (metadata_type IN (8,9,10) AND (guid GLOB 'plex://artist/*' OR"
                        "  guid GLOB 'plex://album/*' OR guid GLOB 'plex://track/*' OR guid"
                        "  GLOB 'local://[0-9]*'))"
                        " OR (metadata_type IN (13,14) AND guid = 'local://' || id)"
                        " OR (metadata_type=12 AND guid GLOB 'file:///*')"
                        " OR metadata_type=15)"),
                     0);
    assert_true(q1(db, "SELECT count(*) FROM metadata_items WHERE guid LIKE 'local://%%' AND"
                       " guid <> 'local://' || id") == 0);
    /* extra_data: JSON with the url-encoded mirror */
    assert_int_equal(q1(db, "SELECT count(*) FROM metadata_items WHERE coalesce(extra_data,'')"
                            " <> '' AND (json_valid(extra_data) = 0 OR json_extract(extra_data,"
                            " '$.url') IS NULL)"),
                     0);
    assert_true(q1(db, "SELECT count(*) FROM media_parts WHERE extra_data LIKE"
                       " '%%\"mi:indexes\":\"sd\"%%'") > 0);
    assert_true(q1(db, "SELECT count(*) FROM metadata_items WHERE extra_data LIKE"
                       " '%%ms:musicAnalysisVersion%%'") > 0);
    assert_true(q1(db, "SELECT count(*) FROM media_streams WHERE extra_data LIKE"
                       " '%%ln:loudness%%'") > 0);
    /* home user state */
    assert_true(q1(db, "SELECT count(*) FROM accounts WHERE id IN (0, 1)") == 2);
    assert_true(q1(db, "SELECT count(*) FROM accounts WHERE id > 1000000") >= 2);
    assert_true(q1(db, "SELECT count(*) FROM metadata_item_settings WHERE account_id=1") > 0);
    assert_true(q1(db, "SELECT count(*) FROM metadata_item_views") > 0);
    assert_true(q1(db, "SELECT count(*) FROM play_queue_items") > 0);
    assert_true(q1(db, "SELECT count(*) FROM devices") > 0);
    assert_true(q1(db, "SELECT count(*) FROM statistics_bandwidth") > 0);
    assert_int_equal(q1(db, "SELECT count(*) FROM metadata_items WHERE metadata_type=15 AND"
                            " (library_section_id IS NOT NULL OR extra_data NOT LIKE"
                            " '%%\"pv:owner\"%%')"),
                     0);
    assert_int_equal(q1(db, "SELECT count(*) FROM library_sections WHERE coalesce(uuid,'')=''"), 0);
    assert_int_equal(q1(db, "SELECT count(*) FROM library_sections WHERE (section_type=1 AND"
                            " agent='tv.plex.agents.movie') OR (section_type=2 AND agent="
                            "'tv.plex.agents.series') OR (section_type=8 AND agent="
                            "'tv.plex.agents.music') OR section_type=13"),
                     4);
    sqlite3_close(db);
}

static void test_references(void **state)
{
    (void)state;
    sqlite3 *db = open_db(g_base, DBREL);
    static const char *const dangling[] = {
        "SELECT count(*) FROM metadata_items m WHERE parent_id IS NOT NULL AND NOT EXISTS"
        " (SELECT 1 FROM metadata_items p WHERE p.id = m.parent_id)",
        "SELECT count(*) FROM metadata_items m JOIN metadata_items p ON p.id = m.parent_id WHERE"
        " NOT ((m.metadata_type=3 AND p.metadata_type=2) OR (m.metadata_type=4 AND"
        " p.metadata_type=3) OR (m.metadata_type=9 AND p.metadata_type=8) OR (m.metadata_type=10"
        " AND p.metadata_type=9) OR (m.metadata_type=13 AND p.metadata_type=14))",
        "SELECT count(*) FROM metadata_items WHERE metadata_type IN (3,4,9,10,13) AND parent_id"
        " IS NULL",
        "SELECT count(*) FROM metadata_items WHERE metadata_type NOT IN (15) AND"
        " library_section_id NOT IN (SELECT id FROM library_sections)",
        "SELECT count(*) FROM media_items WHERE metadata_item_id NOT IN (SELECT id FROM"
        " metadata_items) OR section_location_id NOT IN (SELECT id FROM section_locations)",
        "SELECT count(*) FROM media_parts WHERE media_item_id NOT IN (SELECT id FROM media_items)"
        " OR directory_id NOT IN (SELECT id FROM directories)",
        "SELECT count(*) FROM media_streams s WHERE NOT EXISTS (SELECT 1 FROM media_parts p WHERE"
        " p.id = s.media_part_id AND p.media_item_id = s.media_item_id)",
        "SELECT count(*) FROM taggings WHERE tag_id NOT IN (SELECT id FROM tags) OR"
        " metadata_item_id NOT IN (SELECT id FROM metadata_items)",
        "SELECT count(*) FROM directories d WHERE parent_directory_id IS NOT NULL AND NOT EXISTS"
        " (SELECT 1 FROM directories p WHERE p.id = d.parent_directory_id AND"
        " p.library_section_id = d.library_section_id)",
        "SELECT count(*) FROM directories WHERE path LIKE '/%'",
        "SELECT count(*) FROM media_parts mp JOIN media_items mi ON mi.id = mp.media_item_id JOIN"
        " section_locations sl ON sl.id = mi.section_location_id WHERE substr(mp.file, 1,"
        " length(sl.root_path) + 1) <> sl.root_path || '/'",
        "SELECT count(*) FROM media_parts mp JOIN directories d ON d.id = mp.directory_id JOIN"
        " media_items mi ON mi.id = mp.media_item_id JOIN section_locations sl ON sl.id ="
        " mi.section_location_id WHERE mp.file <> sl.root_path || '/' || d.path || '/' ||"
        " replace(mp.file, rtrim(mp.file, replace(mp.file, '/', '')), '')",
        "SELECT count(*) FROM metadata_relations WHERE metadata_item_id NOT IN (SELECT id FROM"
        " metadata_items) OR related_metadata_item_id NOT IN (SELECT id FROM metadata_items)",
        "SELECT count(*) FROM play_queue_generators WHERE playlist_id IS NOT NULL AND playlist_id"
        " NOT IN (SELECT id FROM metadata_items WHERE metadata_type=15)",
        "SELECT count(*) FROM play_queue_items WHERE play_queue_id NOT IN (SELECT id FROM"
        " play_queues)",
        "SELECT count(*) FROM metadata_item_views WHERE guid NOT IN (SELECT guid FROM"
        " metadata_items)",
        "SELECT count(*) FROM metadata_items WHERE length(hash) <> 40",
        "SELECT count(*) FROM media_parts WHERE length(hash) <> 40",
        "SELECT count(*) FROM locatables WHERE locatable_id NOT IN (SELECT id FROM metadata_items"
        " WHERE metadata_type=13)",
    };
    for (size_t i = 0; i < sizeof(dangling) / sizeof(dangling[0]); i++) {
        int64_t n = q1(db, "%s", dangling[i]);
        if (n != 0)
            fail_msg("%lld rows: %s", (long long)n, dangling[i]);
    }
    /* watch state keyed by guid: a few dangling rows, as in real DBs */
    int64_t dang = q1(db, "SELECT count(*) FROM metadata_item_settings WHERE guid NOT IN (SELECT"
                          " guid FROM metadata_items)");
    assert_true(dang > 0 && dang <= 10);
    /* blobs link to main-DB parts and streams */
    attach(db, g_base, BDBREL, "bl");
    assert_int_equal(q1(db, "SELECT count(*) FROM bl.blobs b WHERE NOT ((b.linked_type="
                            "'media_part' AND b.blob_type IN (5, 8) AND b.linked_id IN (SELECT id"
                            " FROM media_parts)) OR (b.linked_type='media_stream' AND b.blob_type"
                            "=3 AND b.linked_id IN (SELECT id FROM media_streams)))"),
                     0);
    assert_true(q1(db, "SELECT count(*) FROM bl.blobs WHERE blob_type=5") > 0);
    assert_true(q1(db, "SELECT count(*) FROM bl.blobs WHERE blob_type=8") > 0);
    sqlite3_close(db);
}

/* hash = sha1(guid), checked with coreutils' sha1sum (not mkplex's SHA-1) */
static void test_hashes(void **state)
{
    (void)state;
    char list[PATH_MAX], out[4096];
    snprintf(list, sizeof(list), "%s/guids.txt", g_root);
    sqlite3 *db = open_db(g_base, DBREL);
    sqlite3_stmt *st = NULL;
    FILE *f = fopen(list, "w");
    assert_non_null(f);
    /* every item at tiny scale, a sample of 300 at small scale */
    st = tu_prepare(db, "SELECT guid, hash FROM metadata_items ORDER BY"
                        " (id * 2654435761) % 1000003 LIMIT 300");
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        fprintf(f, "%s\t%s\n", sqlite3_column_text(st, 1), sqlite3_column_text(st, 0));
        n++;
    }
    sqlite3_finalize(st);
    fclose(f);
    assert_true(n > 100);
    int rc = tu_sh_out(out, sizeof(out),
                       "bad=0; while IFS='\t' read -r h g; do s=$(printf '%%s' \"$g\" | sha1sum |"
                       " cut -c1-40); [ \"$s\" = \"$h\" ] || { bad=$((bad+1)); echo \"$g\"; };"
                       " done < '%s'; echo bad=$bad",
                       list);
    assert_int_equal(rc, 0);
    if (!strstr(out, "bad=0"))
        fail_msg("hash != sha1(guid): %s", out);

    /* media_parts.hash: SHA1(size + hex SHA1(first 64 KiB) + hex SHA1(last 64 KiB)) over the
     * pseudo-content that `mkplex media` writes (sparse) */
    st = tu_prepare(db, "SELECT id, hash, size FROM media_parts WHERE id IN"
                        " ((SELECT min(id) FROM media_parts), (SELECT max(id)"
                        " FROM media_parts), (SELECT id FROM media_parts WHERE"
                        " file LIKE '%.flac' LIMIT 1))");
    int parts = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        char media[PATH_MAX + 64];
        snprintf(media, sizeof(media), "%s/part.bin", g_root);
        assert_int_equal(tu_sh("'%s' media --dir '%s' --part-id %lld --out '%s'", mk(), g_base,
                               (long long)sqlite3_column_int64(st, 0), media),
                         0);
        rc = tu_sh_out(out, sizeof(out),
                       "f='%s'; s=$(stat -c %%s \"$f\"); h1=$(head -c 65536 \"$f\" | sha1sum |"
                       " cut -c1-40); h2=$(tail -c 65536 \"$f\" | sha1sum | cut -c1-40); printf"
                       " '%%s%%s%%s' $s $h1 $h2 | sha1sum | cut -c1-40; rm -f \"$f\"",
                       media);
        assert_int_equal(rc, 0);
        out[40] = '\0';
        assert_string_equal(out, (const char *)sqlite3_column_text(st, 1));
        parts++;
    }
    sqlite3_finalize(st);
    assert_true(parts >= 2);
    sqlite3_close(db);
}

/* ------------------------------------------------------------------------------------------ */
/* tree                                                                                         */

static const char *folder_of(int type)
{
    switch (type) {
    case 2:
    case 3:
    case 4:
        return "TV Shows";
    case 8:
        return "Artists";
    case 9:
        return "Albums";
    case 13:
    case 14:
        return "Photos";
    case 15:
        return "Playlists";
    default:
        return "Movies";
    }
}

static void test_tree(void **state)
{
    (void)state;
    sqlite3 *db = open_db(g_base, DBREL);
    sqlite3_stmt *st = NULL;
    char rel[PATH_MAX], a[PATH_MAX * 2], b[PATH_MAX * 2];
    int n = 0;
    /* every bundle owner has its bundle */
    st = tu_prepare(db, "SELECT metadata_type, hash FROM metadata_items WHERE"
                        " metadata_type IN (1, 2, 8, 9, 14, 15)");
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *h = (const char *)sqlite3_column_text(st, 1);
        snprintf(rel, sizeof(rel), "Metadata/%s/%c/%s.bundle/Contents/_combined/Info.xml",
                 folder_of(sqlite3_column_int(st, 0)), h[0], h + 1);
        if (!is_file(g_base, rel))
            fail_msg("missing %s", rel);
        n++;
    }
    sqlite3_finalize(st);
    assert_true(n > 0);
    /* every image tagging: the agent file and its _combined hard link */
    assert_int_equal(
        sqlite3_prepare_v2(db,
                           "SELECT t.thumb_url, coalesce(g.metadata_type, p.metadata_type,"
                           " m.metadata_type), coalesce(g.hash, p.hash, m.hash), ls.agent"
                           " FROM taggings t JOIN tags x ON x.id = t.tag_id JOIN metadata_items m"
                           " ON m.id = t.metadata_item_id LEFT JOIN metadata_items p ON p.id ="
                           " m.parent_id AND m.metadata_type IN (3, 4) LEFT JOIN metadata_items g"
                           " ON g.id = p.parent_id AND m.metadata_type = 4 JOIN library_sections"
                           " ls ON ls.id = m.library_section_id WHERE x.tag_type IN (312, 313)",
                           -1, &st, NULL),
        SQLITE_OK);
    n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *url = (const char *)sqlite3_column_text(st, 0);
        const char *h = (const char *)sqlite3_column_text(st, 2);
        const char *agent = (const char *)sqlite3_column_text(st, 3);
        assert_true(strncmp(url, "metadata://", 11) == 0);
        const char *r = url + 11, *slash = strrchr(r, '/');
        const char *name = slash + 1;
        assert_true(strncmp(name, agent, strlen(agent)) == 0);
        snprintf(a, sizeof(a), "%s/Metadata/%s/%c/%s.bundle/Contents/_combined/%s", g_base,
                 folder_of(sqlite3_column_int(st, 1)), h[0], h + 1, r);
        snprintf(b, sizeof(b), "%s/Metadata/%s/%c/%s.bundle/Contents/%s/%.*s%s", g_base,
                 folder_of(sqlite3_column_int(st, 1)), h[0], h + 1, agent, (int)(slash - r + 1), r,
                 name + strlen(agent) + 1);
        struct stat sa, sb;
        if (stat(a, &sa) != 0 || stat(b, &sb) != 0)
            fail_msg("missing image %s", a);
        assert_true(sa.st_ino == sb.st_ino && sa.st_nlink > 1);
        assert_true(sa.st_size >= 1024);
        n++;
    }
    sqlite3_finalize(st);
    assert_true(n > 0);
    /* BIFs of parts flagged "mi:indexes":"sd": magic, frame count, index ending at the size */
    st = tu_prepare(db, "SELECT hash FROM media_parts WHERE extra_data LIKE"
                        " '%\"mi:indexes\":\"sd\"%'");
    n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *h = (const char *)sqlite3_column_text(st, 0);
        snprintf(a, sizeof(a), "%s/Media/localhost/%c/%s.bundle/Contents/Indexes/index-sd.bif",
                 g_base, h[0], h + 1);
        FILE *f = fopen(a, "rb");
        if (!f)
            fail_msg("missing %s", a);
        unsigned char head[64];
        assert_int_equal(fread(head, 1, 64, f), 64);
        static const unsigned char magic[8] = {0x89, 0x42, 0x49, 0x46, 0x0D, 0x0A, 0x1A, 0x0A};
        assert_memory_equal(head, magic, 8);
        uint32_t frames = head[12] | head[13] << 8 | head[14] << 16 | (uint32_t)head[15] << 24;
        assert_true(frames > 0);
        unsigned char end[8];
        fseek(f, 64 + (long)frames * 8, SEEK_SET);
        assert_int_equal(fread(end, 1, 8, f), 8);
        uint32_t off = end[4] | end[5] << 8 | end[6] << 16 | (uint32_t)end[7] << 24;
        assert_true(end[0] == 0xFF && end[3] == 0xFF);
        fseek(f, 0, SEEK_END);
        assert_int_equal((long)off, ftell(f));
        fclose(f);
        n++;
    }
    sqlite3_finalize(st);
    assert_true(n > 0);
    /* chapter thumbnails referenced by media:// URLs */
    st = tu_prepare(db, "SELECT thumb_url FROM taggings WHERE thumb_url LIKE"
                        " 'media://%'");
    while (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(rel, sizeof(rel), "Media/localhost/%s", sqlite3_column_text(st, 0) + 8);
        if (!is_file(g_base, rel))
            fail_msg("missing %s", rel);
    }
    sqlite3_finalize(st);
    /* custom posters: upload://posters/<sha1> and the file under the bundle's Uploads/ */
    st = tu_prepare(db, "SELECT hash, user_thumb_url FROM metadata_items WHERE"
                        " user_thumb_url LIKE 'upload://posters/%'");
    n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *h = (const char *)sqlite3_column_text(st, 0);
        snprintf(rel, sizeof(rel), "Metadata/Movies/%c/%s.bundle/Uploads/%s", h[0], h + 1,
                 sqlite3_column_text(st, 1) + 9);
        if (!is_file(g_base, rel))
            fail_msg("missing %s", rel);
        n++;
    }
    sqlite3_finalize(st);
    assert_true(n > 0);
    sqlite3_close(db);
    /* identity and the noise plexburst must ignore */
    assert_true(is_file(g_base, "Preferences.xml"));
    assert_int_equal(
        tu_sh("grep -q 'PlexOnlineToken=\"[A-Za-z0-9_-]\\{20\\}\"' '%s/Preferences.xml'", g_base),
        0);
    assert_int_equal(tu_sh("grep -q MachineIdentifier '%s/Preferences.xml'", g_base), 0);
    assert_int_equal(tu_sh("ls '%s/Logs/'*.log >/dev/null && ls -d '%s/Cache' '%s/Plug-in "
                           "Support/Data' >/dev/null",
                           g_base, g_base, g_base),
                     0);
    assert_true(jint(g_init, "files.links") > 0);
}

#ifndef MK_SMALL
/* ------------------------------------------------------------------------------------------ */
/* determinism                                                                                  */

static void test_determinism(void **state)
{
    (void)state;
    char d1[PATH_MAX], d2[PATH_MAX];
    snprintf(d1, sizeof(d1), "%s/same", g_root);
    snprintf(d2, sizeof(d2), "%s/other", g_root);
    json_decref(run_json("init --dir '%s' --scale " SCALE " --seed 1", d1));
    json_decref(run_json("init --dir '%s' --scale " SCALE " --seed 2 --no-tree", d2));
    json_t *a = db_digest(g_base, DBREL), *b = db_digest(d1, DBREL), *c = db_digest(d2, DBREL);
    assert_same_digest(a, b, "same seed, main DB");
    json_t *ba = db_digest(g_base, BDBREL), *bb = db_digest(d1, BDBREL);
    assert_same_digest(ba, bb, "same seed, blobs DB");
    assert_false(json_equal(a, c)); /* another seed, other rows */
    assert_string_equal(json_string_value(json_object_get(a, "schema_migrations")),
                        json_string_value(json_object_get(c, "schema_migrations")));
    /* identical trees, hard links included */
    assert_int_equal(tu_sh("diff -r -x Databases '%s' '%s' >/dev/null", g_base, d1), 0);
    assert_int_equal(
        tu_sh("(cd '%s' && find . -path ./Plug-in\\ Support/Databases -prune -o -printf"
              " '%%n %%s %%y %%p\\n' | sort) > '%s/l1' && (cd '%s' && find . -path"
              " ./Plug-in\\ Support/Databases -prune -o -printf '%%n %%s %%y %%p\\n' |"
              " sort) > '%s/l2' &&"
              " cmp -s '%s/l1' '%s/l2'",
              g_base, g_root, d1, g_root, g_root, g_root),
        0);
    struct stat st;
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/Metadata", d2);
    assert_int_not_equal(stat(path, &st), 0); /* --no-tree: DBs only */
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(ba);
    json_decref(bb);
}

#endif

/* ------------------------------------------------------------------------------------------ */
/* analyze                                                                                      */

static void test_analyze(void **state)
{
    (void)state;
    const char *d = copy_dbs("analyzed");
    json_t *j = run_json("analyze --dir '%s' --seed 3 --new-movies 2 --new-episodes 3"
                         " --new-tracks 5 --analyze-pct 30 --regen 3 --retitle 2 --delete 2",
                         d);
    check_changes(g_base, d, DBREL, json_object_get(j, "tables"));
    check_changes(g_base, d, BDBREL, json_object_get(j, "blobs_tables"));

    sqlite3 *db = open_db(d, DBREL);
    attach(db, g_base, DBREL, "b");
    /* items per type: the DB moved by exactly inserted - deleted */
    static const struct {
        int type;
        const char *name;
    } types[] = {{1, "movie"}, {3, "season"}, {4, "episode"}, {8, "artist"},
                 {9, "album"}, {10, "track"}, {12, "clip"},   {2, "show"}};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        char ip[64], dp[64];
        snprintf(ip, sizeof(ip), "items.inserted.%s", types[i].name);
        snprintf(dp, sizeof(dp), "items.deleted.%s", types[i].name);
        int64_t now = q1(db, "SELECT count(*) FROM main.metadata_items WHERE metadata_type=%d",
                         types[i].type);
        int64_t was =
            q1(db, "SELECT count(*) FROM b.metadata_items WHERE metadata_type=%d", types[i].type);
        assert_int_equal(now - was, jint(j, ip) - jint(j, dp));
    }
    assert_int_equal(jint(j, "items.inserted.movie"), 2);
    assert_int_equal(jint(j, "items.inserted.episode"), 3);
    assert_int_equal(jint(j, "items.inserted.track"), 5);
    assert_int_equal(jint(j, "deleted"), 2);
    /* new rows take AUTOINCREMENT ids above everything the base ever had */
    assert_int_equal(q1(db, "SELECT count(*) FROM main.metadata_items WHERE id NOT IN (SELECT id"
                            " FROM b.metadata_items) AND id <= (SELECT seq FROM b.sqlite_sequence"
                            " WHERE name='metadata_items')"),
                     0);
    /* analysis of existing items, each kind exactly as reported */
    assert_int_equal(q1(db, "SELECT count(*) FROM main.media_items m JOIN b.media_items o ON"
                            " o.id = m.id WHERE o.media_analysis_version < 6 AND"
                            " m.media_analysis_version = 6"),
                     jint(j, "analysis.deep"));
    assert_int_equal(q1(db, "SELECT count(*) FROM main.media_streams WHERE id NOT IN (SELECT id"
                            " FROM b.media_streams) AND media_part_id IN (SELECT id FROM"
                            " b.media_parts)"),
                     jint(j, "analysis.streams_added"));
    assert_int_equal(gained(db, "media_parts", "\"mi:indexes\":\"sd\"", "mi:indexes"),
                     jint(j, "analysis.bif"));
    assert_true(jint(j, "analysis.bif") > 0);
    for (int k = 0; k < 2; k++)
        assert_int_equal(q1(db,
                            "SELECT count(*) FROM main.taggings t WHERE t.text='%s' AND t.id NOT"
                            " IN (SELECT id FROM b.taggings) AND t.metadata_item_id IN (SELECT id"
                            " FROM b.metadata_items)",
                            k ? "credits" : "intro"),
                         jint(j, k ? "analysis.credits" : "analysis.intro"));
    assert_int_equal(
        gained(db, "metadata_items", "ms:musicAnalysisVersion", "ms:musicAnalysisVersion"),
        jint(j, "analysis.sonic"));
    assert_int_equal(gained(db, "metadata_items", "ln:loudnessAnalysis", "ln:loudnessAnalysis"),
                     jint(j, "analysis.loudness"));
    assert_true(jint(j, "analysis.sonic") > 0 && jint(j, "analysis.loudness") > 0);
    /* new items use new and existing tags */
    assert_true(q1(db, "SELECT count(*) FROM main.taggings WHERE id NOT IN (SELECT id FROM"
                       " b.taggings) AND tag_id IN (SELECT id FROM b.tags)") > 0);
    assert_true(jint(j, "tables.tags.inserted") > 0);
    assert_true(jint(j, "blobs_tables.blobs.inserted") > 0);
    /* --retitle: the first N movies by id */
    json_t *ids = json_object_get(j, "retitled_ids");
    assert_int_equal(json_array_size(ids), 2);
    assert_int_equal(json_integer_value(json_array_get(ids, 0)),
                     q1(db, "SELECT min(id) FROM b.metadata_items WHERE metadata_type=1"));
    assert_int_equal(q1(db,
                        "SELECT count(*) FROM main.metadata_items WHERE id IN (%lld, %lld)"
                        " AND title LIKE '%%: Remastered'",
                        (long long)json_integer_value(json_array_get(ids, 0)),
                        (long long)json_integer_value(json_array_get(ids, 1))),
                     2);
    /* files (a DB-only copy: only what analyze wrote): the BIF of every part indexed in this
     * run, bundles of new movies */
    sqlite3_stmt *st = tu_prepare(db, "SELECT m.hash FROM main.media_parts m LEFT JOIN"
                                      " b.media_parts o ON o.id = m.id WHERE m.extra_data LIKE"
                                      " '%\"mi:indexes\"%' AND coalesce(o.extra_data, '') NOT"
                                      " LIKE '%\"mi:indexes\"%'");
    while (sqlite3_step(st) == SQLITE_ROW) {
        char rel[256];
        const char *h = (const char *)sqlite3_column_text(st, 0);
        snprintf(rel, sizeof(rel), "Media/localhost/%c/%s.bundle/Contents/Indexes/index-sd.bif",
                 h[0], h + 1);
        if (!is_file(d, rel))
            fail_msg("missing %s", rel);
    }
    sqlite3_finalize(st);
    st = tu_prepare(db, "SELECT hash FROM main.metadata_items WHERE"
                        " metadata_type=1 AND id NOT IN (SELECT id FROM"
                        " b.metadata_items)");
    while (sqlite3_step(st) == SQLITE_ROW) {
        char rel[256];
        const char *h = (const char *)sqlite3_column_text(st, 0);
        snprintf(rel, sizeof(rel), "Metadata/Movies/%c/%s.bundle/Contents/_combined/Info.xml", h[0],
                 h + 1);
        assert_true(is_file(d, rel));
    }
    sqlite3_finalize(st);
    assert_true(jint(j, "files.written") > 0);
    sqlite3_close(db);

#ifndef MK_SMALL /* at tiny scale only: it costs another DB copy */
    /* same DB + seed, same run; another run differs (the DB moved on) */
    const char *d2 = copy_dbs("analyzed2");
    json_decref(run_json("analyze --dir '%s' --seed 3 --new-movies 2 --new-episodes 3"
                         " --new-tracks 5 --analyze-pct 30 --regen 3 --retitle 2 --delete 2"
                         " --no-tree",
                         d2));
    json_t *x = db_digest(d, DBREL), *y = db_digest(d2, DBREL);
    assert_same_digest(x, y, "analyze twice from the same DB");
    json_decref(x);
    json_decref(y);
    json_t *again = run_json("analyze --dir '%s' --seed 3 --new-movies 1 --no-tree", d2);
    db = open_db(d2, DBREL);
    assert_int_equal(q1(db, "SELECT count(*) FROM (SELECT guid FROM metadata_items WHERE"
                            " guid LIKE 'plex://%%' GROUP BY guid HAVING count(*) > 1)"),
                     0);
    sqlite3_close(db);
    json_decref(again);
#endif
    json_decref(j);
}

/* Copies the files below dir/{Metadata,Media} that also exist under from (same relative path)
 * into to: the pre-analysis versions of the files a run rewrites. */
static const char *c_from, *c_to;
static long c_copied;

static void mkdirs_for(const char *file)
{
    char d[PATH_MAX * 2];
    snprintf(d, sizeof(d), "%s", file);
    for (char *p = d + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        mkdir(d, 0755);
        *p = '/';
    }
}

static void copy_one(const char *path, const char *rel)
{
    (void)path;
    char src[PATH_MAX * 2], dst[PATH_MAX * 2], buf[65536];
    snprintf(src, sizeof(src), "%s/%s", c_from, rel);
    snprintf(dst, sizeof(dst), "%s/%s", c_to, rel);
    FILE *in = fopen(src, "rb");
    if (!in)
        return; /* new in this run */
    mkdirs_for(dst);
    FILE *out = fopen(dst, "wb");
    assert_non_null(out);
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
    c_copied++;
}

/* analyze on a DB-only copy writes whole files, byte-identical to a run on the full tree. Runs
 * last: it analyzes the base dir in place (copying a whole tree is what makes tests slow), after
 * saving the pre-analysis versions of the files the run rewrites. */
static void test_analyze_db_only(void **state)
{
    (void)state;
    char dbonly[PATH_MAX], orig[PATH_MAX];
    snprintf(dbonly, sizeof(dbonly), "%s", copy_dbs("dbonly"));
    snprintf(orig, sizeof(orig), "%s/orig", g_root);
    /* new movies (new bundles), analysis (new BIFs), and regenerated bundles: the only rewrites
     * of existing files come from --regen and --retitle */
    const char *args = "--seed 5 --analyze-pct 30 --regen 4 --new-movies 2 --new-episodes 0"
                       " --new-tracks 0 --delete 0";
    json_t *jd = run_json("analyze --dir '%s' %s", dbonly, args);
    assert_true(jint(jd, "files.written") > 0);
    assert_int_equal(jint(jd, "files.unchanged"), 0);
    c_from = g_base;
    c_to = orig;
    c_copied = 0;
    each_media_file(dbonly, copy_one);
    json_t *jf = run_json("analyze --dir '%s' %s", g_base, args);
    json_t *x = db_digest(g_base, DBREL), *y = db_digest(dbonly, DBREL);
    assert_same_digest(x, y, "analyze on a DB-only copy vs on the full dir");
    json_decref(x);
    json_decref(y);
    /* every file it wrote equals the full run's; some equal init's (unchanged content) */
    long n, bad, same;
    compare_trees(dbonly, g_base, orig, &n, &bad, &same);
    print_message("db-only analyze: %ld files, %ld differ from the full run, %ld identical to"
                  " init's (%ld existed before)\n",
                  n, bad, same, c_copied);
    assert_true(n > 0);
    assert_int_equal(bad, 0);
    assert_true(same > 0);
    /* the full run left unchanged files alone */
    assert_true(jint(jf, "files.unchanged") > 0);
    /* hard links in the DB-only tree too */
    assert_int_equal(tu_sh("test -n \"$(find '%s/Metadata' -type f -links +1 | head -1)\"", dbonly),
                     0);
    /* a regenerated BIF keeps its size and differs in a few frames only; a regenerated Info.xml
     * in one element */
    char list[PATH_MAX];
    snprintf(list, sizeof(list), "%s/changed.txt", g_root);
    assert_int_equal(tu_sh("cd '%s' && find Media Metadata -type f \\( -name index-sd.bif -o -name"
                           " Info.xml \\) > '%s'",
                           orig, list),
                     0);
    FILE *f = fopen(list, "r");
    assert_non_null(f);
    char rel[PATH_MAX];
    int bifs = 0, xmls = 0;
    while (fgets(rel, sizeof(rel), f)) {
        rel[strcspn(rel, "\n")] = '\0';
        char a[PATH_MAX * 2], b[PATH_MAX * 2];
        long sa, sb, nd;
        snprintf(a, sizeof(a), "%s/%s", g_base, rel);
        snprintf(b, sizeof(b), "%s/%s", orig, rel);
        if (same_file(a, b, &sa, &sb, &nd))
            continue; /* rewritten identical */
        if (strstr(rel, ".bif")) {
            assert_int_equal(sa, sb);
            if (nd * 4 > sa)
                fail_msg("regenerated BIF %s differs in %ld of %ld bytes", rel, nd, sa);
            bifs++;
        } else {
            if (labs(sa - sb) > 200)
                fail_msg("regenerated %s grew from %ld to %ld bytes", rel, sb, sa);
            xmls++;
        }
    }
    fclose(f);
    print_message("regenerated: %d BIFs, %d Info.xml\n", bifs, xmls);
    assert_true(bifs > 0 && xmls > 0);
    json_decref(jf);
    json_decref(jd);
}

static void test_mass_delete(void **state)
{
    (void)state;
    const char *d = copy_dbs("massdel");
    json_t *j = run_json("analyze --dir '%s' --seed 9 --mass-delete-section Movies --delete 0"
                         " --new-movies 0 --new-episodes 0 --new-tracks 0 --regen 0 --retitle 0"
                         " --analyze-pct 0 --no-tree",
                         d);
    check_changes(g_base, d, DBREL, json_object_get(j, "tables"));
    sqlite3 *db = open_db(d, DBREL);
    attach(db, g_base, DBREL, "b");
    int64_t was = q1(db, "SELECT count(*) FROM b.metadata_items WHERE metadata_type=1");
    int64_t now = q1(db, "SELECT count(*) FROM main.metadata_items WHERE metadata_type=1");
    int64_t pwas = q1(db, "SELECT count(*) FROM b.media_items WHERE library_section_id=1");
    int64_t pnow = q1(db, "SELECT count(*) FROM main.media_items WHERE library_section_id=1");
    print_message("mass delete: movies %lld -> %lld, media %lld -> %lld\n", (long long)was,
                  (long long)now, (long long)pwas, (long long)pnow);
    assert_true(now >= 1 && now * 100 <= was * 15);
    assert_true(pnow * 100 <= pwas * 15);
    assert_int_equal(jint(j, "mass_delete.top_level_items"), was - now);
    /* the other sections are untouched */
    assert_int_equal(q1(db, "SELECT count(*) FROM main.metadata_items WHERE library_section_id"
                            " <> 1 OR library_section_id IS NULL"),
                     q1(db, "SELECT count(*) FROM b.metadata_items WHERE library_section_id <> 1"
                            " OR library_section_id IS NULL"));
    sqlite3_close(db);
    json_decref(j);
    /* an unknown section is an error */
    assert_int_equal(
        tu_sh("'%s' analyze --dir '%s' --mass-delete-section Nope 2>/dev/null", mk(), d), 1);
}

/* ------------------------------------------------------------------------------------------ */
/* stream                                                                                       */

static void test_stream(void **state)
{
    (void)state;
    const char *d = copy_dbs("streamed");
    json_t *j = run_json("stream --dir '%s' --seed 4 --plays 30 --edit-title 2", d);
    check_changes(g_base, d, DBREL, json_object_get(j, "tables"));
    assert_int_equal(json_object_size(json_object_get(j, "blobs_tables")), 0);
    sqlite3 *db = open_db(d, DBREL);
    attach(db, g_base, DBREL, "b");
    int64_t base_max = q1(db, "SELECT max(id) FROM b.metadata_items");
    int64_t pl = jint(j, "playlist_id"), coll = jint(j, "collection_id");
    assert_true(pl > base_max && coll > base_max);
    assert_int_equal(
        q1(db, "SELECT metadata_type FROM metadata_items WHERE id=%lld", (long long)pl), 15);
    assert_int_equal(
        q1(db, "SELECT metadata_type FROM metadata_items WHERE id=%lld", (long long)coll), 18);
    assert_true(q1(db, "SELECT count(*) FROM play_queue_generators WHERE playlist_id=%lld",
                   (long long)pl) > 0);
    assert_true(q1(db, "SELECT count(*) FROM main.taggings t JOIN main.tags g ON g.id = t.tag_id"
                       " WHERE g.tag_type=2 AND t.id NOT IN (SELECT id FROM b.taggings)") >= 3);
    assert_int_equal(q1(db, "SELECT count(*) FROM main.taggings t JOIN main.tags g ON g.id ="
                            " t.tag_id WHERE g.tag_type=11 AND t.id NOT IN (SELECT id FROM"
                            " b.taggings)"),
                     1);
    /* plays: settings keyed by (account_id, guid), history rows as reported */
    assert_true(jint(j, "tables.metadata_item_settings.inserted") +
                    jint(j, "tables.metadata_item_settings.updated") >
                0);
    assert_int_equal(jint(j, "tables.metadata_item_views.inserted"), jint(j, "plays.views"));
    assert_int_equal(q1(db, "SELECT count(*) FROM (SELECT account_id, guid FROM"
                            " main.metadata_item_settings GROUP BY account_id, guid HAVING"
                            " count(*) > 1)"),
                     0);
    /* edited and locked titles on the first two movies */
    assert_int_equal(q1(db, "SELECT count(*) FROM (SELECT id, title, user_fields FROM"
                            " main.metadata_items WHERE metadata_type=1 ORDER BY id LIMIT 2)"
                            " WHERE title LIKE '%% (Home Edit)' AND ('|' || substr(user_fields,"
                            " 14) || '|') LIKE '%%|1|%%' AND user_fields LIKE 'lockedFields=%%'"),
                     2);
    /* the upload: URL and file under the bundle's Uploads/posters/ */
    const char *url = json_string_value(json_object_get(json_object_get(j, "upload"), "url"));
    assert_non_null(url);
    assert_true(strncmp(url, "upload://posters/", 17) == 0 && strlen(url) == 17 + 40);
    int64_t item = jint(j, "upload.item");
    sqlite3_stmt *st = tu_prepare(db, "SELECT hash, user_thumb_url FROM main.metadata_items"
                                      " WHERE id=?1");
    sqlite3_bind_int64(st, 1, item);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 1), url);
    const char *h = (const char *)sqlite3_column_text(st, 0);
    char rel[256];
    snprintf(rel, sizeof(rel), "Metadata/Movies/%c/%s.bundle/Uploads/posters/%s", h[0], h + 1,
             url + 17);
    assert_true(is_file(d, rel));
    sqlite3_finalize(st);
    sqlite3_close(db);
    json_decref(j);
}

#ifndef MK_SMALL
/* ------------------------------------------------------------------------------------------ */
/* command line                                                                                 */

static void test_cli(void **state)
{
    (void)state;
    char out[4096];
    assert_int_equal(tu_sh("'%s' >/dev/null 2>&1", mk()), 2);
    assert_int_equal(tu_sh("'%s' bogus >/dev/null 2>&1", mk()), 2);
    assert_int_equal(tu_sh("'%s' init >/dev/null 2>&1", mk()), 2);
    assert_int_equal(tu_sh("'%s' init --dir x --scale huge >/dev/null 2>&1", mk()), 2);
    assert_int_equal(tu_sh("'%s' stream --dir x --regen 3 >/dev/null 2>&1", mk()), 2);
    assert_int_equal(tu_sh("'%s' --help >/dev/null", mk()), 0);
    /* runtime errors: exit 1, one line "mkplex: ..." */
    assert_int_equal(tu_sh_out(out, sizeof(out), "'%s' analyze --dir '%s/none' 2>&1", mk(), g_root),
                     1);
    assert_true(strncmp(out, "mkplex: ", 8) == 0 && strchr(out, '\n') == out + strlen(out) - 1);
    assert_int_equal(
        tu_sh_out(out, sizeof(out), "'%s' init --dir '%s' --scale tiny 2>&1", mk(), g_base), 1);
    assert_non_null(strstr(out, "--force"));
    /* the human summary */
    assert_int_equal(tu_sh_out(out, sizeof(out),
                               "'%s' init --dir '%s/human' --scale tiny"
                               " --no-tree --movies 3",
                               mk(), g_root),
                     0);
    assert_non_null(strstr(out, "movie 3"));
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema),
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_references),
        cmocka_unit_test(test_hashes),
        cmocka_unit_test(test_tree),
#ifndef MK_SMALL
        cmocka_unit_test(test_determinism),
#endif
        cmocka_unit_test(test_analyze),
        cmocka_unit_test(test_mass_delete),
        cmocka_unit_test(test_stream),
#ifndef MK_SMALL
        cmocka_unit_test(test_cli),
#endif
        cmocka_unit_test(test_analyze_db_only), /* last: analyzes the base dir in place */
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

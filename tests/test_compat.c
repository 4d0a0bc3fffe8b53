/*
 * test_compat.c: the Plex-SQLite compatibility layer in-process: icu_root and naturalsort
 * ordering, the collating tokenizer through FTS4 tables and triggers exactly as in Plex's schema
 * (fixtures/plex-schema.sql, applied with pb_plex_schema_apply), the read-only spellfix1 stub,
 * integrity_check, pb_compat_open, and Plex engine detection on a fake install tree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "testutil.h"
#include "plexburst/compat.h"
#include "plexburst/plex.h"
#include "plexengine.h"
#include "schema.h"

#define PLEX_TOKENIZE "tokenize=collating 'root@colStrength=primary;colAlternate=shifted'"

/* ---- helpers ---------------------------------------------------------------------------- */

static sqlite3 *mem_db(void)
{
    sqlite3 *db = NULL;
    pb_error err = PB_ERROR_INIT;
    assert_int_equal(pb_compat_open(&db, ":memory:", PB_OPEN_CREATE, &err), 0);
    return db;
}

/* Runs sql, expecting failure; returns the message (static). */
static const char *exec_fail(sqlite3 *db, const char *sql)
{
    static char buf[512];
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        fail_msg("unexpected success: %s", sql);
    snprintf(buf, sizeof(buf), "%s", msg ? msg : "");
    sqlite3_free(msg);
    return buf;
}

/* The first column of the first row as text (static buffer), "" for NULL / no row. */
static const char *query1(sqlite3 *db, const char *sql, const char *arg)
{
    static char buf[4096];
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    if (arg)
        sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
    buf[0] = '\0';
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(buf, sizeof(buf), "%s", sqlite3_column_text(st, 0));
    else if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return buf;
}

/* Compares a and b (byte lengths given, NULs allowed) with a collation: -1, 0, 1. */
static int cmp_n(sqlite3 *db, const char *coll, const char *a, int na, const char *b, int nb)
{
    char sql[160];
    sqlite3_stmt *st = NULL;
    snprintf(sql, sizeof(sql),
             "SELECT CASE WHEN ?1 = ?2 COLLATE %s THEN 0 WHEN ?1 < ?2 COLLATE %s THEN -1 "
             "ELSE 1 END",
             coll, coll);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, a, na, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, b, nb, SQLITE_TRANSIENT);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int r = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return r;
}

static int cmp(sqlite3 *db, const char *coll, const char *a, const char *b)
{
    return cmp_n(db, coll, a, -1, b, -1);
}

/* Asserts that list is strictly increasing under coll and that the order is consistent:
 * antisymmetric and transitive on every pair and triple. */
static void assert_total_order(sqlite3 *db, const char *coll, const char *const *list, int n)
{
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            int want = (i > j) - (i < j);
            int got = cmp(db, coll, list[i], list[j]);
            if (got != want)
                fail_msg("%s: cmp('%s', '%s') = %d, want %d", coll, list[i], list[j], got, want);
        }
    }
}

/* ---- collations ------------------------------------------------------------------------- */

static void test_icu_root(void **state)
{
    sqlite3 *db = mem_db();
    assert_int_equal(cmp(db, "icu_root", "a", "B"), -1);
    assert_int_equal(cmp(db, "icu_root", "B", "c"), -1);
    assert_int_equal(cmp(db, "icu_root", "a", "A"), -1); /* lower first at tertiary level */
    /* Ä sorts with A (after it), before B; é with e: e < E < é < f (accents before case). */
    const char *const order[] = {"a", "A", "Ä", "ab", "B", "c", "e", "E", "é", "É", "f", "z"};
    assert_total_order(db, "icu_root", order, (int)(sizeof(order) / sizeof(*order)));
    assert_int_equal(cmp(db, "icu_root", "Amélie", "Amelie"), 1);
    assert_int_equal(cmp(db, "icu_root", "Zoë", "Zoe"), 1);
    assert_int_equal(cmp(db, "icu_root", "same", "same"), 0);
    /* Lengths, not NUL terminators: "a\0b" vs "a\0c" differ after the NUL (ignorable in ICU). */
    assert_int_equal(cmp_n(db, "icu_root", "a\0b", 3, "a\0c", 3), -1);
    assert_int_equal(cmp_n(db, "icu_root", "abX", 2, "abY", 2), 0);
    /* ORDER BY and an index with it. */
    tu_exec_ok(db, "CREATE TABLE t(s); CREATE INDEX i ON t(s COLLATE icu_root);"
                   "INSERT INTO t VALUES('c'),('B'),('a'),('Ä'),('é'),('e');");
    assert_string_equal(
        query1(db, "SELECT group_concat(s, ',') FROM (SELECT s FROM t ORDER BY s COLLATE icu_root)",
               NULL),
        "a,Ä,B,c,e,é");
    assert_string_equal(query1(db, "PRAGMA integrity_check", NULL), "ok");
    sqlite3_close(db);
}

static void test_naturalsort(void **state)
{
    sqlite3 *db = mem_db();
    assert_int_equal(cmp(db, "naturalsort", "Episode 2", "Episode 10"), -1);
    assert_int_equal(cmp(db, "naturalsort", "file9", "file10"), -1);
    assert_int_equal(cmp(db, "naturalsort", "file10", "File11"), -1);
    assert_int_equal(cmp(db, "naturalsort", "File9", "file10"), -1); /* case-insensitive */
    assert_int_equal(cmp(db, "naturalsort", "abc2", "ABC10"), -1);
    assert_int_equal(cmp(db, "naturalsort", "file007", "file8"), -1); /* leading zeros */
    assert_int_equal(cmp(db, "naturalsort", "file010", "file9"), 1);
    /* Ties on the natural key are broken by bytes: a total order, equal only when identical. */
    assert_int_equal(cmp(db, "naturalsort", "file007", "file7"), -1);
    assert_int_equal(cmp(db, "naturalsort", "FILE10", "file10"), -1);
    assert_int_equal(cmp(db, "naturalsort", "file10", "file10"), 0);
    /* Accents matter (secondary strength). */
    assert_int_equal(cmp(db, "naturalsort", "cafe 2", "café 1"), -1);
    /* Digit runs of any length, compared without overflow. */
    char a[128], b[128], c[128];
    snprintf(a, sizeof(a), "vol %s", "99999999999999999999999999999999999999999");
    snprintf(b, sizeof(b), "vol %s", "100000000000000000000000000000000000000000");
    snprintf(c, sizeof(c), "vol %s", "000100000000000000000000000000000000000000001");
    assert_int_equal(cmp(db, "naturalsort", a, b), -1);
    assert_int_equal(cmp(db, "naturalsort", b, c), -1);
    assert_int_equal(cmp(db, "naturalsort", c, a), 1);
    /* Embedded lengths. */
    assert_int_equal(cmp_n(db, "naturalsort", "x10Z", 3, "x9Z", 2), 1);
    const char *const order[] = {
        "",          "1",          "2",          "10",          "a",       "A1",
        "a1",        "a01b",       "a1b",        "a2",          "a10",     "Episode 2",
        "Episode 9", "Episode 10", "episode 10", "Episode 10b", "file007", "file7",
        "file8",     "FILE10",     "file10",     "File11",      "file 7",  "zz"};
    assert_total_order(db, "naturalsort", order, (int)(sizeof(order) / sizeof(*order)));
    tu_exec_ok(db, "CREATE TABLE t(s); INSERT INTO t VALUES('file10'),('File11'),('file9'),"
                   "('Episode 10'),('Episode 2');"
                   "CREATE INDEX index_title_sort_naturalsort ON t(s COLLATE naturalsort);");
    assert_string_equal(
        query1(db,
               "SELECT group_concat(s, ',') FROM (SELECT s FROM t ORDER BY s COLLATE naturalsort)",
               NULL),
        "Episode 2,Episode 10,file9,file10,File11");
    assert_string_equal(query1(db, "PRAGMA integrity_check", NULL), "ok");
    sqlite3_close(db);
}

/* ---- the collating tokenizer -------------------------------------------------------------- */

/* "token-hex start end position|..." for input, through fts3tokenize. */
static const char *tokens(sqlite3 *db, const char *input)
{
    return query1(db,
                  "SELECT group_concat(hex(token) || ' ' || start || ' ' || \"end\" || ' ' || "
                  "position, '|') FROM tok WHERE input = ?1",
                  input);
}

static const char *token_hex(sqlite3 *db, const char *word)
{
    static char buf[256];
    snprintf(buf, sizeof(buf), "%s",
             query1(db, "SELECT hex(token) FROM tok WHERE input = ?1", word));
    return buf;
}

static void test_tokenizer_direct(void **state)
{
    sqlite3 *db = mem_db();
    tu_exec_ok(db, "CREATE VIRTUAL TABLE tok USING fts3tokenize(collating, "
                   "'root@colStrength=primary;colAlternate=shifted')");
    /* Case and accents fold away at primary strength. */
    char amelie[256];
    snprintf(amelie, sizeof(amelie), "%s", token_hex(db, "amelie"));
    assert_true(amelie[0]);
    assert_string_equal(token_hex(db, "AMELIE"), amelie);
    assert_string_equal(token_hex(db, "Amélie"), amelie);
    assert_string_equal(token_hex(db, "AMÉLIE"), amelie);
    assert_string_not_equal(token_hex(db, "amelia"), amelie);
    /* A prefix's key is a byte prefix of the word's key (FTS prefix queries rely on it). */
    char ame[256];
    snprintf(ame, sizeof(ame), "%s", token_hex(db, "amé"));
    assert_true(strlen(ame) > 0 && strncmp(amelie, ame, strlen(ame)) == 0);
    /* Offsets are UTF-8 byte offsets; positions count words; punctuation is skipped. */
    char want[512];
    snprintf(want, sizeof(want), "%s 7 14 1", amelie);
    const char *got = tokens(db, "Café, Amélie!");
    assert_non_null(strstr(got, want));
    assert_non_null(strstr(got, " 0 5 0|")); /* "Café" = 5 bytes */
    /* Supplementary-plane characters: 4 UTF-8 bytes, 2 UTF-16 units. */
    got = tokens(db, "a \xF0\xA0\x80\x80 b");
    assert_non_null(strstr(got, " 0 1 0|"));
    assert_non_null(strstr(got, " 2 6 1|"));
    assert_non_null(strstr(got, " 7 8 2"));
    /* Numbers and letter-digit words. */
    got = tokens(db, "2001: A Space Odyssey");
    assert_non_null(strstr(got, " 0 4 0|"));
    assert_non_null(strstr(got, " 6 7 1|"));
    assert_non_null(strstr(got, " 14 21 3"));
    char se7en[256];
    snprintf(se7en, sizeof(se7en), "%s", token_hex(db, "se7en"));
    assert_string_equal(token_hex(db, "SE7EN"), se7en);
    /* Nothing but punctuation and spaces: no token. */
    assert_string_equal(tokens(db, " -- !? ... "), "");
    assert_string_equal(tokens(db, ""), "");
    /* Ill-formed UTF-8 does not crash and keeps offsets in range. */
    got = tokens(db, "ab\xC3 cd");
    assert_non_null(strstr(got, " 4 6 "));
    /* Tertiary strength keeps case apart. */
    tu_exec_ok(db, "CREATE VIRTUAL TABLE tok3 USING fts3tokenize(collating, "
                   "'root@colStrength=tertiary;colAlternate=non-ignorable')");
    char up[256];
    snprintf(up, sizeof(up), "%s",
             query1(db, "SELECT hex(token) FROM tok3 WHERE input = 'Amelie'", NULL));
    assert_string_not_equal(up,
                            query1(db, "SELECT hex(token) FROM tok3 WHERE input = 'amelie'", NULL));
    /* Bad arguments are refused. */
    exec_fail(db, "CREATE VIRTUAL TABLE bad1 USING fts3tokenize(collating, "
                  "'root@colStrength=bogus')");
    exec_fail(db, "CREATE VIRTUAL TABLE bad2 USING fts3tokenize(collating, 'root@colNope=on')");
    /* The default locale argument works too. */
    tu_exec_ok(db, "CREATE VIRTUAL TABLE tokd USING fts3tokenize(collating)");
    sqlite3_close(db);
    /* The ENABLE_FTS3_TOKENIZER setting is restored after registration. */
    pb_error err = PB_ERROR_INIT;
    for (int setting = 0; setting <= 1; setting++) {
        int before = -1, after = -1;
        assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
        sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, setting, &before);
        assert_int_equal(pb_compat_register(db, &err), 0);
        sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, -1, &after);
        assert_int_equal(after, setting);
        sqlite3_close(db);
    }
}

/* A DB with the full Plex schema and a few items, in memory. */
static sqlite3 *plex_db(void)
{
    sqlite3 *db = mem_db();
    pb_error err = PB_ERROR_INIT;
    char *sql = tu_slurp(tu_source_path("fixtures/plex-schema.sql"));
    int rc = pb_plex_schema_apply(db, sql, &err);
    if (rc != 0)
        fail_msg("schema: %s", err.msg);
    free(sql);
    tu_exec_ok(db,
               "INSERT INTO metadata_items(id, title, title_sort, original_title) VALUES"
               "(1, 'Amélie', 'Amelie', 'Le Fabuleux Destin d''Amélie Poulain'),"
               "(2, '2001: A Space Odyssey', '2001: A Space Odyssey', NULL),"
               "(3, 'Se7en', 'Se7en', NULL),"
               "(4, 'Star Wars: Episode IV - A New Hope', 'Star Wars 4', NULL),"
               "(5, 'Café Amélie', NULL, NULL),"
               "(6, 'Amelia', 'Amelia', NULL);"
               "INSERT INTO tags(tag, tag_type) VALUES('Jean-Pierre Jeunet', 4), ('Drama', 1);");
    return db;
}

static const char *match(sqlite3 *db, const char *table, const char *q)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT group_concat(docid, ',') FROM (SELECT docid FROM %s WHERE %s MATCH ?1 "
             "ORDER BY docid)",
             table, table);
    return query1(db, sql, q);
}

static void test_fts_like_plex(void **state)
{
    sqlite3 *db = plex_db();
    const char *t = "fts4_metadata_titles_icu";
    /* The table really is Plex's. */
    assert_non_null(
        strstr(query1(db, "SELECT sql FROM sqlite_master WHERE name = ?1", t),
               "content='metadata_items', title, title_sort, original_title, " PLEX_TOKENIZE));
    assert_string_equal(match(db, t, "amelie"), "1,5");
    assert_string_equal(match(db, t, "AMELIE"), "1,5");
    assert_string_equal(match(db, t, "Amélie"), "1,5");
    assert_string_equal(match(db, t, "amé*"), "1,5,6");
    assert_string_equal(match(db, t, "title:amelie"), "1,5");
    assert_string_equal(match(db, t, "2001"), "2");
    assert_string_equal(match(db, t, "se7en"), "3");
    assert_string_equal(match(db, t, "SE7EN"), "3");
    assert_string_equal(match(db, t, "\"space odyssey\""), "2");
    assert_string_equal(match(db, t, "\"Star Wars, Episode IV... a new hope!\""), "4");
    assert_string_equal(match(db, t, "episode iv"), "4");
    assert_string_equal(match(db, t, "poulain"), "1");
    assert_string_equal(match(db, t, "cafe"), "5");
    assert_string_equal(match(db, t, "nothing"), "");
    /* offsets(): column, term, byte offset, byte size. */
    assert_string_equal(
        query1(db,
               "SELECT offsets(fts4_metadata_titles_icu) FROM fts4_metadata_titles_icu "
               "WHERE fts4_metadata_titles_icu MATCH 'space' AND docid = 2",
               NULL),
        "0 0 8 5 1 0 8 5");
    assert_string_equal(
        query1(db,
               "SELECT offsets(fts4_metadata_titles_icu) FROM fts4_metadata_titles_icu "
               "WHERE fts4_metadata_titles_icu MATCH 'amelie' AND docid = 5",
               NULL),
        "0 0 6 7");
    assert_string_equal(
        query1(db,
               "SELECT snippet(fts4_metadata_titles_icu, '[', ']') FROM "
               "fts4_metadata_titles_icu WHERE fts4_metadata_titles_icu MATCH 'amelie' AND "
               "docid = 5",
               NULL),
        "Café [Amélie]");
    /* The triggers keep it current: update, delete. */
    tu_exec_ok(db, "UPDATE metadata_items SET title = 'Seven (1995)' WHERE id = 3");
    assert_string_equal(match(db, t, "seven"), "3");
    assert_string_equal(match(db, t, "1995"), "3");
    tu_exec_ok(db, "DELETE FROM metadata_items WHERE id = 6");
    assert_string_equal(match(db, t, "amé*"), "1,5");
    /* Tags. */
    assert_string_equal(match(db, "fts4_tag_titles_icu", "jean"), "1");
    assert_string_equal(match(db, "fts4_tag_titles_icu", "JEUNET"), "1");
    /* icu_root index, integrity. */
    assert_string_equal(query1(db,
                               "SELECT group_concat(id, ',') FROM (SELECT id FROM metadata_items "
                               "ORDER BY title_sort COLLATE icu_root, id)",
                               NULL),
                        "5,2,1,3,4");
    tu_exec_ok(db, "REINDEX index_title_sort_icu");
    assert_string_equal(query1(db, "PRAGMA integrity_check", NULL), "ok");
    /* FTS4's own consistency check. */
    tu_exec_ok(db, "INSERT INTO fts4_metadata_titles_icu(fts4_metadata_titles_icu) "
                   "VALUES('integrity-check')");
    sqlite3_close(db);
}

/* ---- spellfix1 ---------------------------------------------------------------------------- */

static void test_spellfix_stub(void **state)
{
    sqlite3 *db = plex_db();
    /* The shadow table as real spellfix1 creates it, and its index. */
    assert_string_equal(query1(db, "SELECT sql FROM sqlite_master WHERE name = ?1",
                               "spellfix_metadata_titles_vocab"),
                        "CREATE TABLE \"spellfix_metadata_titles_vocab\"(\n  id INTEGER PRIMARY "
                        "KEY,\n  rank INT,\n  langid INT,\n  word TEXT,\n  k1 TEXT,\n  k2 TEXT\n)");
    assert_string_equal(query1(db, "SELECT tbl_name FROM sqlite_master WHERE name = ?1",
                               "spellfix_metadata_titles_vocab_index_langid_k2"),
                        "spellfix_metadata_titles_vocab");
    tu_exec_ok(db, "INSERT INTO spellfix_metadata_titles_vocab(id, rank, langid, word, k1, k2) "
                   "VALUES(7, 3, 0, 'amelie', 'amelie', 'AMALY'), (9, 1, 0, 'odyssey', 'odyssey', "
                   "'ATASY')");
    assert_string_equal(query1(db,
                               "SELECT group_concat(rowid || ':' || word || ':' || rank || ':' || "
                               "langid || ':' || quote(distance) || ':' || quote(score), ',') "
                               "FROM spellfix_metadata_titles",
                               NULL),
                        "7:amelie:3:0:NULL:NULL,9:odyssey:1:0:NULL:NULL");
    assert_string_equal(
        query1(db, "SELECT word FROM spellfix_metadata_titles WHERE rank = 1", NULL), "odyssey");
    assert_string_equal(query1(db, "SELECT count(*) FROM spellfix_tag_titles", NULL), "0");
    /* Writes are refused with a clear message. */
    assert_non_null(strstr(exec_fail(db, "INSERT INTO spellfix_metadata_titles(word) "
                                         "VALUES('x')"),
                           "spellfix1 tables are read-only in plexburst"));
    assert_non_null(strstr(exec_fail(db, "DELETE FROM spellfix_metadata_titles"), "read-only"));
    /* CREATE / DROP own the vocab table. */
    tu_exec_ok(db, "CREATE VIRTUAL TABLE temp.sp USING spellfix1");
    assert_string_equal(query1(db,
                               "SELECT count(*) FROM temp.sqlite_master WHERE name IN "
                               "('sp_vocab', 'sp_vocab_index_langid_k2')",
                               NULL),
                        "2");
    tu_exec_ok(db, "DROP TABLE temp.sp");
    assert_string_equal(
        query1(db, "SELECT count(*) FROM temp.sqlite_master WHERE name = 'sp_vocab'", NULL), "0");
    assert_string_equal(query1(db, "PRAGMA integrity_check", NULL), "ok");
    sqlite3_close(db);
}

/* ---- pb_plex_schema_apply, pb_compat_open ------------------------------------------------- */

static void test_schema_apply(void **state)
{
    sqlite3 *db = plex_db();
    /* Objects SQLite creates itself were skipped, not duplicated; the rest is all there. */
    assert_string_equal(
        query1(db, "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'", NULL), "0");
    assert_string_equal(
        query1(db, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'", NULL), "8");
    assert_string_equal(query1(db,
                               "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND sql "
                               "LIKE 'CREATE VIRTUAL TABLE%'",
                               NULL),
                        "7");
    assert_string_equal(query1(db,
                               "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name "
                               "NOT LIKE 'sqlite_autoindex%'",
                               NULL),
                        "156");
    assert_string_equal(
        query1(db, "SELECT count(*) FROM sqlite_master WHERE name = 'index_title_sort_icu'", NULL),
        "1");
    assert_string_equal(query1(db, "SELECT count(*) FROM locations", NULL), "0");
    sqlite3_close(db);

    /* A failing statement: numbered message, everything rolled back. */
    db = mem_db();
    pb_error err = PB_ERROR_INIT;
    assert_int_equal(
        pb_plex_schema_apply(db,
                             "-- a comment; with a semicolon\nCREATE TABLE a(x);\n"
                             "CREATE TRIGGER tr AFTER INSERT ON a BEGIN SELECT 1; SELECT 2; END;\n"
                             "CREATE TABLE 'b' (y;\n",
                             &err),
        PB_ESQLITE);
    assert_non_null(strstr(err.msg, "statement 3"));
    assert_string_equal(query1(db, "SELECT count(*) FROM sqlite_master", NULL), "0");
    pb_error_clear(&err);
    assert_int_equal(pb_plex_schema_apply(db, NULL, &err), PB_EINVALID);
    sqlite3_close(db);
}

static void test_compat_open(void **state)
{
    const char *dir = tu_tmpdir("compat-open");
    char path[4200];
    sqlite3 *db = NULL;
    pb_error err = PB_ERROR_INIT;
    snprintf(path, sizeof(path), "%s/x.db", dir);
    assert_int_equal(pb_compat_open(&db, path, 0, &err), PB_ENOTFOUND);
    assert_null(db);
    assert_non_null(strstr(err.msg, "compat: cannot open"));
    pb_error_clear(&err);
    assert_int_equal(pb_compat_open(&db, path, PB_OPEN_READONLY | PB_OPEN_CREATE, &err),
                     PB_EINVALID);
    pb_error_clear(&err);
    assert_int_equal(pb_compat_open(&db, path, PB_OPEN_CREATE, &err), 0);
    tu_exec_ok(db, "CREATE TABLE t(s); CREATE INDEX i ON t(s COLLATE icu_root);"
                   "INSERT INTO t VALUES('x')");
    assert_string_equal(query1(db, "PRAGMA foreign_keys", NULL), "0");
    sqlite3_close(db);
    db = NULL;
    assert_int_equal(pb_compat_open(&db, path, PB_OPEN_READONLY, &err), 0);
    assert_string_equal(query1(db, "PRAGMA integrity_check", NULL), "ok");
    assert_non_null(strstr(exec_fail(db, "INSERT INTO t VALUES('y')"), "readonly"));
    sqlite3_close(db);
    /* Registering twice on one connection is fine. */
    db = mem_db();
    assert_int_equal(pb_compat_register(db, &err), 0);
    assert_int_equal(pb_compat_register(NULL, &err), PB_EINVALID);
    sqlite3_close(db);
}

/* ---- Plex engine detection ---------------------------------------------------------------- */

static void make_exec(const char *dir, const char *name, int mode)
{
    char path[4200];
    assert_int_equal(tu_sh("mkdir -p '%s'", dir), 0);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("#!/bin/sh\nexit 0\n", f);
    fclose(f);
    assert_int_equal(chmod(path, (mode_t)mode), 0);
}

static void test_engine_find(void **state)
{
    const char *tmp = tu_tmpdir("engine");
    char root[4096], dir[4200], want[4300], other[4300];
    pb_plex_engine e;
    pb_error err = PB_ERROR_INIT;
    snprintf(root, sizeof(root), "%s", tmp);
    unsetenv(PB_PLEX_ENGINE_ENV);

    /* Nothing installed. */
    assert_int_equal(pb_plex_engine_find_in(&e, root, &err), PB_ENOTFOUND);
    assert_int_equal(e.kind, PB_ENGINE_NONE);

    /* Synology: only the server binary, not executable yet. */
    snprintf(dir, sizeof(dir), "%s/var/packages/PlexMediaServer/target", root);
    make_exec(dir, "Plex Media Server", 0644);
    pb_error_clear(&err);
    assert_int_equal(pb_plex_engine_find_in(&e, root, &err), PB_ENOTFOUND);
    make_exec(dir, "Plex Media Server", 0755);
    assert_int_equal(pb_plex_engine_find_in(&e, root, &err), 0);
    assert_int_equal(e.kind, PB_ENGINE_PMS_SQLITE);
    snprintf(want, sizeof(want), "%s/Plex Media Server", dir);
    assert_string_equal(e.path, want);
    /* "Plex SQLite" next to it is preferred. */
    make_exec(dir, "Plex SQLite", 0755);
    assert_int_equal(pb_plex_engine_find_in(&e, root, &err), 0);
    assert_int_equal(e.kind, PB_ENGINE_PLEX_SQLITE);
    snprintf(want, sizeof(want), "%s/Plex SQLite", dir);
    assert_string_equal(e.path, want);
    /* The Debian/Docker location comes first. */
    snprintf(dir, sizeof(dir), "%s/usr/lib/plexmediaserver", root);
    make_exec(dir, "Plex SQLite", 0755);
    assert_int_equal(pb_plex_engine_find_in(&e, root, &err), 0);
    snprintf(want, sizeof(want), "%s/Plex SQLite", dir);
    assert_string_equal(e.path, want);

    /* Configured: a directory, a file, the environment, a wrong path. */
    assert_int_equal(pb_plex_engine_find(&e, dir, &err), 0);
    assert_int_equal(e.kind, PB_ENGINE_PLEX_SQLITE);
    assert_string_equal(e.path, want);
    snprintf(other, sizeof(other), "%s/var/packages/PlexMediaServer/target/Plex Media Server",
             root);
    assert_int_equal(pb_plex_engine_find(&e, other, &err), 0);
    assert_int_equal(e.kind, PB_ENGINE_PMS_SQLITE);
    snprintf(dir, sizeof(dir), "%s/bin", root);
    make_exec(dir, "sqlite3", 0755);
    snprintf(other, sizeof(other), "%s/sqlite3", dir);
    setenv(PB_PLEX_ENGINE_ENV, other, 1);
    assert_int_equal(pb_plex_engine_find(&e, NULL, &err), 0);
    assert_int_equal(e.kind, PB_ENGINE_SQLITE3_SHELL);
    assert_string_equal(e.path, other);
    unsetenv(PB_PLEX_ENGINE_ENV);
    assert_int_equal(pb_plex_engine_find(&e, dir, &err), PB_ENOTFOUND); /* dir without Plex */
    pb_error_clear(&err);
    snprintf(other, sizeof(other), "%s/nope/Plex SQLite", root);
    assert_int_equal(pb_plex_engine_find(&e, other, &err), PB_ENOTFOUND);
    assert_non_null(strstr(err.msg, "does not exist"));
    pb_error_clear(&err);
    make_exec(dir, "Plex SQLite", 0600);
    snprintf(other, sizeof(other), "%s/Plex SQLite", dir);
    assert_int_equal(pb_plex_engine_find(&e, other, &err), PB_ENOTFOUND);
    assert_non_null(strstr(err.msg, "not an executable"));
    assert_string_equal(pb_plex_engine_kind_name(PB_ENGINE_PMS_SQLITE), "pms_sqlite");
    assert_string_equal(pb_plex_engine_kind_name(PB_ENGINE_NONE), "none");
}

static void test_engine_argv(void **state)
{
    pb_plex_engine e = {PB_ENGINE_PLEX_SQLITE, "/usr/lib/plexmediaserver/Plex SQLite"};
    pb_plex_engine_cmd c;
    pb_error err = PB_ERROR_INIT;

    assert_int_equal(pb_plex_engine_argv(&c, &e, "/data/lib.db", "/ignored", &err), 0);
    assert_int_equal(c.argc, 2);
    assert_string_equal(c.argv[0], e.path);
    assert_string_equal(c.argv[1], "/data/lib.db");
    assert_null(c.argv[2]);

    e.kind = PB_ENGINE_PMS_SQLITE;
    snprintf(e.path, sizeof(e.path), "/usr/lib/plexmediaserver/Plex Media Server");
    assert_int_equal(pb_plex_engine_argv(&c, &e, "-odd.db", NULL, &err), 0);
    assert_int_equal(c.argc, 3);
    assert_string_equal(c.argv[1], "--sqlite");
    assert_string_equal(c.argv[2], "./-odd.db");
    assert_null(c.argv[3]);

    e.kind = PB_ENGINE_SQLITE3_SHELL;
    snprintf(e.path, sizeof(e.path), "/usr/bin/sqlite3");
    assert_int_equal(pb_plex_engine_argv(&c, &e, "a b.db", "/x y/plexcompat", &err), 0);
    assert_int_equal(c.argc, 5);
    assert_string_equal(c.argv[1], "-bail");
    assert_string_equal(c.argv[2], "-cmd");
    assert_string_equal(c.argv[3], ".load '/x y/plexcompat'");
    assert_string_equal(c.argv[4], "a b.db");
    assert_null(c.argv[5]);
    assert_int_equal(pb_plex_engine_argv(&c, &e, "d.db", "/it's/plex\"compat", &err), 0);
    assert_string_equal(c.argv[3], ".load \"/it's/plex\\\"compat\"");
    assert_int_equal(pb_plex_engine_argv(&c, &e, "d.db", NULL, &err), 0);
    assert_int_equal(c.argc, 3);

    assert_int_equal(pb_plex_engine_argv(&c, &e, "", NULL, &err), PB_EINVALID);
    e.kind = PB_ENGINE_NONE;
    assert_int_equal(pb_plex_engine_argv(&c, &e, "d.db", NULL, &err), PB_EINVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_icu_root),         cmocka_unit_test(test_naturalsort),
        cmocka_unit_test(test_tokenizer_direct), cmocka_unit_test(test_fts_like_plex),
        cmocka_unit_test(test_spellfix_stub),    cmocka_unit_test(test_schema_apply),
        cmocka_unit_test(test_compat_open),      cmocka_unit_test(test_engine_find),
        cmocka_unit_test(test_engine_argv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

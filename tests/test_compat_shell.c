/*
 * test_compat_shell.c (integration): the STOCK sqlite3 shell (/usr/bin/sqlite3) on a DB built
 * from the full Plex schema (fixtures/plex-schema.sql): without the plexcompat extension the
 * writes and checks that real Plex DBs break on fail as documented (docs/compat.md); with
 * `-cmd '.load <build>/plexcompat'` they work. Also runs SQL scripts through the command lines
 * of pb_plex_engine_argv (a sqlite3 stand-in and a fake "Plex SQLite"), and `plexburst check`.
 * Skipped when /usr/bin/sqlite3 is missing.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "testutil.h"
#include "plexburst/compat.h"
#include "plexburst/plex.h"
#include "plexengine.h"
#include "schema.h"

#define SHELL "/usr/bin/sqlite3"

static char g_dir[4096];  /* scratch dir */
static char g_plex[4200]; /* the Plex data dir */
static char g_db[4400];   /* its main library DB */
static char g_ext[4096];  /* build/plexcompat (without .so, as users type it) */
static char g_fake[4300]; /* dir holding a fake "Plex SQLite" */

/* Creates a DB at path from a schema file (in-process, compat layer), then runs extra SQL. */
static void build_db(const char *path, const char *schema_file, const char *extra)
{
    sqlite3 *db = NULL;
    pb_error err = PB_ERROR_INIT;
    char *sql = tu_slurp(tu_source_path(schema_file));
    assert_int_equal(pb_compat_open(&db, path, PB_OPEN_CREATE, &err), 0);
    if (pb_plex_schema_apply(db, sql, &err) != 0)
        fail_msg("%s: %s", schema_file, err.msg);
    tu_exec_ok(db, extra);
    sqlite3_close(db);
    free(sql);
}

static void write_file(const char *path, const char *text, int mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, (mode_t)mode), 0);
}

static int setup(void **state)
{
    char dbdir[4300], blobs[4400], script[8800], path[4400];
    snprintf(g_dir, sizeof(g_dir), "%s", tu_tmpdir("compat-shell"));
    snprintf(g_plex, sizeof(g_plex), "%s/Plex Media Server", g_dir);
    snprintf(dbdir, sizeof(dbdir), "%s/Plug-in Support/Databases", g_plex);
    assert_int_equal(tu_sh("mkdir -p '%s'", dbdir), 0);
    snprintf(g_db, sizeof(g_db), "%s/com.plexapp.plugins.library.db", dbdir);
    snprintf(blobs, sizeof(blobs), "%s/com.plexapp.plugins.library.blobs.db", dbdir);
    build_db(g_db, "fixtures/plex-schema.sql",
             "INSERT INTO schema_migrations(version) VALUES('20180501000000'),"
             "('20240919122200');"
             "INSERT INTO library_sections(id, name, section_type) VALUES(1, 'Movies', 1);"
             "INSERT INTO metadata_items(id, library_section_id, metadata_type, title, "
             "title_sort) VALUES(1, 1, 1, 'Amélie', 'Amélie'), (2, 1, 1, '2001: A Space "
             "Odyssey', '2001: A Space Odyssey'), (3, 1, 1, 'Se7en', 'Se7en');"
             "INSERT INTO media_items(id, metadata_item_id) VALUES(1, 1), (2, 2);"
             "INSERT INTO media_parts(id, media_item_id, file) VALUES(1, 1, '/m/a.mkv'), "
             "(2, 2, '/m/b.mkv');"
             "INSERT INTO tags(id, tag, tag_type) VALUES(1, 'Drama', 1);"
             "INSERT INTO spellfix_metadata_titles_vocab(id, rank, langid, word, k1, k2) "
             "VALUES(1, 1, 0, 'amelie', 'amelie', 'AMALY');");
    build_db(blobs, "fixtures/plex-blobs-schema.sql",
             "INSERT INTO blobs(blob, linked_type, linked_id, blob_type) VALUES(x'1f8b08', "
             "'media_part', 1, 5);");
    snprintf(g_ext, sizeof(g_ext), "%s", tu_build_path("plexcompat"));
    snprintf(path, sizeof(path), "%s.so", g_ext);
    if (access(path, R_OK) != 0)
        fail_msg("%s is missing: build the plexcompat target", path);
    /* A stand-in for Plex's "Plex SQLite": the stock shell with the extension. */
    snprintf(g_fake, sizeof(g_fake), "%s/usr/lib/plexmediaserver", g_dir);
    assert_int_equal(tu_sh("mkdir -p '%s'", g_fake), 0);
    snprintf(path, sizeof(path), "%s/Plex SQLite", g_fake);
    snprintf(script, sizeof(script), "#!/bin/sh\nexec " SHELL " -cmd \".load '%s'\" \"$@\"\n",
             g_ext);
    write_file(path, script, 0755);
    return 0;
}

/* Runs the stock shell on the library DB with sql on stdin (-bail), capturing stdout+stderr. */
static int shell(char *out, size_t cap, int with_ext, const char *sql)
{
    char file[4400];
    snprintf(file, sizeof(file), "%s/script.sql", g_dir);
    write_file(file, sql, 0644);
    if (with_ext)
        return tu_sh_out(out, cap, SHELL " -bail -cmd \".load '%s'\" '%s' < '%s' 2>&1", g_ext, g_db,
                         file);
    return tu_sh_out(out, cap, SHELL " -bail '%s' < '%s' 2>&1", g_db, file);
}

static void expect_fail(const char *sql, const char *msg)
{
    char out[4096];
    int rc = shell(out, sizeof(out), 0, sql);
    if (rc == 0 || !strstr(out, msg))
        fail_msg("without plexcompat, %s: rc %d, output '%s', expected '%s'", sql, rc, out, msg);
}

static void expect_ok(const char *sql, const char *want)
{
    char out[4096];
    int rc = shell(out, sizeof(out), 1, sql);
    if (rc != 0 || (want && strcmp(out, want) != 0))
        fail_msg("with plexcompat, %s: rc %d, output '%s', expected '%s'", sql, rc, out,
                 want ? want : "(any)");
}

static void test_stock_shell_fails(void **state)
{
    char out[4096];
    assert_int_equal(shell(out, sizeof(out), 0, "SELECT count(*) FROM metadata_items;"), 0);
    assert_string_equal(out, "3\n"); /* plain reads work */
    expect_fail("INSERT INTO tags(tag,tag_type) VALUES('x',1);", "unknown tokenizer: collating");
    expect_fail("UPDATE metadata_items SET title='New' WHERE id=1;",
                "unknown tokenizer: collating");
    expect_fail("PRAGMA integrity_check;", "no such collation sequence: icu_root");
    expect_fail("SELECT title FROM metadata_items ORDER BY title_sort COLLATE icu_root;",
                "no such collation sequence: icu_root");
    expect_fail("SELECT count(*) FROM spellfix_metadata_titles;", "no such module: spellfix1");
    expect_fail("SELECT docid FROM fts4_metadata_titles_icu WHERE fts4_metadata_titles_icu MATCH "
                "'amelie';",
                "unknown tokenizer: collating");
}

static void test_stock_shell_with_extension(void **state)
{
    expect_ok("PRAGMA integrity_check;", "ok\n");
    expect_ok("SELECT docid FROM fts4_metadata_titles_icu WHERE fts4_metadata_titles_icu MATCH "
              "'AMELIE';",
              "1\n");
    expect_ok("UPDATE metadata_items SET title='The Fabulous Destiny' WHERE id=1;", "");
    expect_ok("SELECT docid FROM fts4_metadata_titles_icu WHERE fts4_metadata_titles_icu MATCH "
              "'fabulous destiny';",
              "1\n");
    expect_ok("INSERT INTO tags(id,tag,tag_type) VALUES(2,'Science Fiction',1);", "");
    expect_ok("SELECT docid FROM fts4_tag_titles_icu WHERE fts4_tag_titles_icu MATCH 'science';",
              "2\n");
    expect_ok("SELECT word FROM spellfix_metadata_titles;", "amelie\n");
    expect_ok("SELECT title FROM metadata_items ORDER BY title_sort COLLATE icu_root, id;",
              "2001: A Space Odyssey\nThe Fabulous Destiny\nSe7en\n");
    expect_ok("REINDEX index_title_sort_icu; PRAGMA integrity_check;", "ok\n");
    expect_ok("INSERT INTO fts4_metadata_titles_icu(fts4_metadata_titles_icu) "
              "VALUES('integrity-check');",
              "");
    /* What the shell wrote is consistent for the in-process layer too. */
    sqlite3 *db = NULL;
    pb_error err = PB_ERROR_INIT;
    assert_int_equal(pb_compat_open(&db, g_db, PB_OPEN_READONLY, &err), 0);
    tu_exec_ok(db, "PRAGMA integrity_check");
    sqlite3_close(db);
}

/* Runs argv with stdin from a file holding `script`; captures stdout+stderr. */
static int run_argv(const char *const *argv, const char *script, char *out, size_t cap)
{
    char file[4400];
    int fds[2];
    snprintf(file, sizeof(file), "%s/engine.sql", g_dir);
    write_file(file, script, 0644);
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int in = open(file, O_RDONLY);
        if (in < 0)
            _exit(126);
        dup2(in, 0);
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t got;
    char buf[1024];
    while ((got = read(fds[0], buf, sizeof(buf))) > 0) {
        size_t take = (size_t)got < cap - 1 - n ? (size_t)got : cap - 1 - n;
        memcpy(out + n, buf, take);
        n += take;
    }
    out[n] = '\0';
    close(fds[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_engine_argv_runs(void **state)
{
    pb_plex_engine e;
    pb_plex_engine_cmd cmd;
    pb_error err = PB_ERROR_INIT;
    char out[4096];

    /* The stock shell as an explicit stand-in, with the extension loaded by -cmd. */
    assert_int_equal(pb_plex_engine_find(&e, SHELL, &err), 0);
    assert_int_equal(e.kind, PB_ENGINE_SQLITE3_SHELL);
    assert_int_equal(pb_plex_engine_argv(&cmd, &e, g_db, g_ext, &err), 0);
    assert_int_equal(
        run_argv(cmd.argv,
                 ".bail on\nUPDATE metadata_items SET title='Engine Room' WHERE id=2;\n"
                 "SELECT docid FROM fts4_metadata_titles_icu WHERE "
                 "fts4_metadata_titles_icu MATCH 'engine';\n",
                 out, sizeof(out)),
        0);
    assert_string_equal(out, "2\n");
    assert_int_not_equal(
        run_argv(cmd.argv, ".bail on\nSELECT * FROM no_such_table;\nSELECT 1;\n", out, sizeof(out)),
        0);
    assert_non_null(strstr(out, "no such table"));
    /* Without the extension the shell fails on the tokenizer. */
    assert_int_equal(pb_plex_engine_argv(&cmd, &e, g_db, NULL, &err), 0);
    assert_int_not_equal(run_argv(cmd.argv,
                                  ".bail on\nUPDATE metadata_items SET title='x' WHERE "
                                  "id=2;\n",
                                  out, sizeof(out)),
                         0);
    assert_non_null(strstr(out, "unknown tokenizer: collating"));

    /* A fake "Plex SQLite" found through its directory, run the way Plex's is. */
    assert_int_equal(pb_plex_engine_find(&e, g_fake, &err), 0);
    assert_int_equal(e.kind, PB_ENGINE_PLEX_SQLITE);
    assert_int_equal(pb_plex_engine_argv(&cmd, &e, g_db, NULL, &err), 0);
    assert_int_equal(cmd.argc, 2);
    assert_int_equal(
        run_argv(cmd.argv,
                 ".bail on\nUPDATE metadata_items SET title='Odyssey Two' WHERE id=2;\n"
                 "SELECT docid FROM fts4_metadata_titles_icu WHERE "
                 "fts4_metadata_titles_icu MATCH 'odyssey';\n"
                 "PRAGMA integrity_check;\n",
                 out, sizeof(out)),
        0);
    assert_string_equal(out, "2\nok\n");
}

static json_t *check_json(const char *extra, int *rc)
{
    char out[16384];
    json_error_t jerr;
    *rc = tu_sh_out(out, sizeof(out),
                    "env -u " PB_PLEX_ENGINE_ENV " '%s' check --plex-dir '%s' "
                    "--json %s",
                    tu_build_path("plexburst"), g_plex, extra);
    json_t *j = json_loads(out, 0, &jerr);
    if (!j)
        fail_msg("not JSON (%s): %s", jerr.text, out);
    return j;
}

static void test_check_command(void **state)
{
    int rc;
    char extra[4400], out[16384];

    json_t *j = check_json("", &rc);
    assert_int_equal(rc, 0);
    assert_true(json_is_true(json_object_get(j, "ok")));
    assert_true(json_integer_value(json_object_get(j, "tables")) >= 80);
    assert_string_equal(json_string_value(json_object_get(j, "schema_version")), "20240919122200");
    json_t *integ = json_object_get(j, "integrity");
    assert_string_equal(json_string_value(json_object_get(integ, "main")), "ok");
    assert_string_equal(json_string_value(json_object_get(integ, "blobs")), "ok");
    json_t *counts = json_object_get(j, "counts");
    assert_int_equal(json_integer_value(json_object_get(counts, "library_sections")), 1);
    assert_int_equal(json_integer_value(json_object_get(counts, "metadata_items")), 3);
    assert_int_equal(json_integer_value(json_object_get(counts, "media_parts")), 2);
    json_t *fts = json_object_get(j, "fts");
    assert_string_equal(json_string_value(json_object_get(fts, "status")), "ok");
    json_t *eng = json_object_get(j, "engine");
    assert_true(json_is_string(json_object_get(eng, "kind")));
    if (strcmp(json_string_value(json_object_get(eng, "kind")), "none") == 0)
        assert_true(json_is_null(json_object_get(eng, "path")));
    json_decref(j);

    snprintf(extra, sizeof(extra), "--plex-sqlite '%s'", g_fake);
    j = check_json(extra, &rc);
    assert_int_equal(rc, 0);
    eng = json_object_get(j, "engine");
    assert_string_equal(json_string_value(json_object_get(eng, "kind")), "plex_sqlite");
    assert_non_null(strstr(json_string_value(json_object_get(eng, "path")), "/Plex SQLite"));
    json_decref(j);

    j = check_json("--plex-sqlite /nonexistent/Plex\\ SQLite", &rc);
    assert_int_equal(rc, 1);
    assert_true(json_is_false(json_object_get(j, "ok")));
    json_decref(j);

    /* Human output: state emojis, no exclamation marks, exit 0. */
    rc = tu_sh_out(out, sizeof(out), "env -u " PB_PLEX_ENGINE_ENV " '%s' check --plex-dir '%s'",
                   tu_build_path("plexburst"), g_plex);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "✅ main DB integrity: ok"));
    assert_non_null(strstr(out, "✅ blobs DB integrity: ok"));
    assert_non_null(strstr(out, "✅ check passed"));
    assert_null(strchr(out, '!'));
    /* A dir without a Plex DB: exit 1; missing option: usage, exit 2. */
    rc = tu_sh_out(out, sizeof(out), "'%s' check --plex-dir '%s/nope' 2>&1",
                   tu_build_path("plexburst"), g_dir);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "no Plex library DB"));
    assert_int_equal(tu_sh("'%s' check >/dev/null 2>&1", tu_build_path("plexburst")), 2);
}

int main(void)
{
    if (access(SHELL, X_OK) != 0)
        tu_skip("the stock sqlite3 shell (" SHELL ") is not installed");
    tu_asan_allow_stock_host();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stock_shell_fails),
        cmocka_unit_test(test_stock_shell_with_extension),
        cmocka_unit_test(test_engine_argv_runs),
        cmocka_unit_test(test_check_command),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

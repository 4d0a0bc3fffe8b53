/*
 * test_plex_runner_units.c: the plex runner's pieces that need no server: plex_libraries.json in
 * both shapes with every location (the runner's parser and the home's check, which is the same),
 * `plex` as the scaleway cloud's default runner, and the redaction of the log tails (the cloud
 * Plex's and rclone's) that come home on failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "runner.h"
#include "runner_plex.h"
#include "testutil.h"

static char dir[4096];

static const char *write_file(const char *name, const char *text)
{
    static char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* 12 locations, in the seed's bare list and in the project's shape: all kept, both accepted. */
static void test_libraries_all_locations(void **state)
{
    (void)state;
    char seed[4096], proj[4096], paths[2048] = "";
    for (int i = 0; i < 12; i++)
        snprintf(paths + strlen(paths), sizeof(paths) - strlen(paths), "%s\"/m/films%d\"",
                 i ? ", " : "", i);
    snprintf(seed, sizeof(seed),
             "[{\"title\": \"Films\", \"type\": \"movie\", \"agent\": \"tv.plex.agents.movie\", "
             "\"scanner\": \"Plex Movie\", \"language\": \"en-US\", \"paths\": [%s]},"
             " {\"title\": \"Music\", \"type\": \"artist\", \"paths\": [\"/m/music\"]}]",
             paths);
    snprintf(proj, sizeof(proj),
             "{\"libraries\": [{\"name\": \"Films\", \"type\": \"movie\", \"locations\": [%s]}]}",
             paths);
    const char *const files[] = {"seed.json", "proj.json"};
    const char *const texts[] = {seed, proj};
    for (int k = 0; k < 2; k++) {
        const char *p = write_file(files[k], texts[k]);
        json_t *libs = NULL;
        pb_error err = PB_ERROR_INIT;
        assert_int_equal(pb_runner_plex_libraries_load(&libs, p, &err), 0);
        json_t *films = json_array_get(libs, 0);
        assert_string_equal(json_string_value(json_object_get(films, "title")), "Films");
        assert_int_equal(json_array_size(json_object_get(films, "paths")), 12);
        assert_string_equal(json_string_value(json_array_get(json_object_get(films, "paths"), 11)),
                            "/m/films11");
        json_decref(libs);
        /* the home's check takes the same file unchanged */
        pb_run_options o;
        pb_run_options_init(&o);
        o.plex_dir = dir;
        o.runner = "plex";
        o.plex_libraries = p;
        pb_run_settings s;
        assert_int_equal(pb_run_settings_resolve(&s, &o, NULL, &err), 0);
        assert_int_equal(s.nlibraries, k == 0 ? 2 : 1);
    }
}

/* No --runner: the scaleway cloud runs the real Plex; another cloud still needs one. */
static void test_scaleway_default_runner(void **state)
{
    (void)state;
    pb_run_options o;
    pb_run_options_init(&o);
    o.plex_dir = dir;
    o.cloud = "scaleway:fr-par-2";
    pb_run_settings s;
    pb_error err = PB_ERROR_INIT;
    unsetenv("PLEXBURST_RUNNER");
    assert_int_equal(pb_run_settings_resolve(&s, &o, NULL, &err), 0);
    assert_string_equal(s.runner, "plex");
    o.cloud = "local:/tmp/x";
    assert_int_equal(pb_run_settings_resolve(&s, &o, NULL, &err), PB_EINVALID);
    assert_non_null(strstr(err.msg, "no analysis runner"));
}

/* A log tail: the values of the secret settings masked wherever they appear, a token in a URL
 * or a header redacted, the lines kept otherwise; at most the last N lines. */
static void test_log_tail_redacted(void **state)
{
    (void)state;
    setenv("PLEXBURST_MEDIA_S3_SECRET_KEY", "s3cr3t-media-key", 1);
    setenv("PLEXBURST_PLEX_CLAIM", "claim-abcdef123", 1);
    const char *p = write_file(
        "pms.log", "line 1 old\n"
                   "Dec 07, 2026 18:00:00.000 [12] DEBUG - Request: GET "
                   "/library/sections?X-Plex-Token=tok-777777 from 127.0.0.1\n"
                   "Dec 07, 2026 18:00:01.000 [12] ERROR - S3 auth with s3cr3t-media-key failed\n"
                   "Dec 07, 2026 18:00:02.000 [12] INFO - claiming with claim-abcdef123\n"
                   "Dec 07, 2026 18:00:03.000 [12] INFO - token tok-888888 in use\n"
                   "Dec 07, 2026 18:00:04.000 [12] DEBUG - Authorization: Bearer bear-999999 ok "
                   "(Films 2001) 'quoted\n");
    char *buf = NULL;
    size_t n = 0;
    FILE *log = open_memstream(&buf, &n);
    assert_non_null(log);
    pb_runner_plex_log_tail(log, p, "Plex", 5, "tok-888888");
    fclose(log);
    print_message("%s", buf);
    assert_null(strstr(buf, "s3cr3t-media-key"));
    assert_null(strstr(buf, "claim-abcdef123"));
    assert_null(strstr(buf, "tok-777777"));
    assert_null(strstr(buf, "tok-888888"));
    assert_null(strstr(buf, "bear-999999"));
    assert_null(strstr(buf, "line 1 old")); /* only the last 5 */
    /* the rest as it was */
    assert_non_null(strstr(buf, "[12] DEBUG - Request: GET /library/sections?X-Plex-Token=<secret>"
                                " from 127.0.0.1\n"));
    assert_non_null(strstr(buf, "Authorization: Bearer <secret> ok (Films 2001) 'quoted\n"));
    assert_non_null(strstr(buf, "S3 auth with <secret> failed\n"));
    assert_non_null(strstr(buf, "the last lines of Plex's log"));
    assert_non_null(strstr(buf, "Plex: Dec 07, 2026 18:00:01.000"));
    assert_non_null(strstr(buf, "failed"));
    free(buf);
    /* no file: nothing */
    buf = NULL;
    log = open_memstream(&buf, &n);
    pb_runner_plex_log_tail(log, "/nonexistent/plexburst.log", "rclone", 20, NULL);
    fclose(log);
    assert_int_equal(n, 0);
    free(buf);
    unsetenv("PLEXBURST_MEDIA_S3_SECRET_KEY");
    unsetenv("PLEXBURST_PLEX_CLAIM");
}

/* `mkplex scan` (the stand-in's scanner) honours the section's type: a show section gets shows,
 * seasons and episodes, a music section artists, albums and tracks, a movie section movies. */
static void test_scan_by_type(void **state)
{
    (void)state;
    if (tu_sh("command -v sqlite3 >/dev/null") != 0) {
        print_message("sqlite3 is missing: the scan by section type is not covered\n");
        return;
    }
    const char *mk = tu_build_path("mkplex");
    assert_int_equal(
        tu_sh("cd '%s' && mkdir -p tv/'Show A'/'Season 1' tv/'Show A'/'Season 2' tv/'Show B' "
              "music/'Artist X'/'Album 1' music/'Artist X'/'Album 2' films && for f in "
              "tv/'Show A'/'Season 1'/e1.mkv tv/'Show A'/'Season 1'/e2.mkv "
              "tv/'Show A'/'Season 2'/e1.mkv tv/'Show B'/pilot.mkv "
              "music/'Artist X'/'Album 1'/01.flac music/'Artist X'/'Album 1'/02.flac "
              "music/'Artist X'/'Album 2'/01.mp3 films/f1.mkv; do head -c 1000 /dev/urandom "
              ">\"$f\"; done && '%s' scan --dir plex --create-db >/dev/null && "
              "'%s' scan --dir plex --add-section --name TV --type show --location \"$PWD/tv\" "
              ">/dev/null && '%s' scan --dir plex --add-section --name Music --type artist "
              "--location \"$PWD/music\" >/dev/null && '%s' scan --dir plex --add-section --name "
              "Films --type movie --location \"$PWD/films\" >/dev/null && for n in 1 2 3; do "
              "'%s' scan --dir plex --section $n >/dev/null || exit 1; done",
              dir, mk, mk, mk, mk, mk),
        0);
    char got[4096];
    assert_int_equal(
        tu_sh_out(
            got, sizeof(got),
            "cd '%s' && sqlite3 \"file:plex/Plug-in Support/Databases/"
            "com.plexapp.plugins.library.db?mode=ro\" \"SELECT s.name, m.metadata_type, "
            "count(*) FROM metadata_items m JOIN library_sections s ON s.id = "
            "m.library_section_id WHERE m.deleted_at IS NULL GROUP BY 1, 2 ORDER BY 1, 2;"
            " SELECT m.title || '/' || p.title || '/' || e.\\\"index\\\" FROM metadata_items e"
            " JOIN metadata_items p ON p.id = e.parent_id JOIN metadata_items m ON m.id ="
            " p.parent_id WHERE e.metadata_type IN (4, 10) ORDER BY 1\"",
            dir),
        0);
    print_message("%s", got);
    assert_string_equal(got, "Films|1|1\n"
                             "Music|8|1\n"
                             "Music|9|2\n"
                             "Music|10|3\n"
                             "TV|2|2\n"
                             "TV|3|3\n"
                             "TV|4|4\n"
                             "Artist X/Album 1/1\n"
                             "Artist X/Album 1/2\n"
                             "Artist X/Album 2/1\n"
                             "Show A/Season 1/1\n"
                             "Show A/Season 1/2\n"
                             "Show A/Season 2/1\n"
                             "Show B/Season 1/1\n");
    /* a second scan adds nothing */
    assert_int_equal(
        tu_sh("cd '%s' && '%s' scan --dir plex --section 1 | grep -q '\"added\":0'", dir, mk), 0);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("plexrunnerunits"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_libraries_all_locations),
        cmocka_unit_test(test_scaleway_default_runner),
        cmocka_unit_test(test_log_tail_redacted),
        cmocka_unit_test(test_scan_by_type),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tu_sh("rm -rf '%s'", dir);
    return rc;
}

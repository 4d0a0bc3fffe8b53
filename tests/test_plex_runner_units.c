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

int main(void)
{
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("plexrunnerunits"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_libraries_all_locations),
        cmocka_unit_test(test_scaleway_default_runner),
        cmocka_unit_test(test_log_tail_redacted),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tu_sh("rm -rf '%s'", dir);
    return rc;
}

/*
 * test_report.c: what each night brought, end to end through the real `plexburst` binary: a week
 * of nightly syncs on a tiny mkplex library (bootstrap through local:DIR, then 7 x (mkplex stream
 * on the home; sync with `mkplex analyze` as the runner), and a dry run), then
 *   - status: a date per run, --limit, dry runs marked, the summary kept by each record (rows by
 *     table, new titles with their section, analyses, files, cloud), a record written before the
 *     summary existed still read, `--run ID` in full (human and JSON);
 *   - report --html: one self-contained page (four SVG plots, nothing fetched, every string
 *     escaped: a record holding markup shows it as text);
 *   - with the argument `browser` (ctest test_report_browser), the page loaded in headless
 *     Chromium: its DOM holds the plots, and the screenshot holds each plot's bar colour (decoded
 *     here with zlib). Skipped with the reason when chromium is absent. PB_REPORT_KEEP=DIR keeps
 *     the page and the screenshot there.
 * Prerequisites: build/plexburst and build/mkplex (skipped, not passed, when missing).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include <zlib.h>

#include "testutil.h"

static char pb[4096], mk[4096], dir[4096], home[4200];
static char *outbuf;
static int browser;
#define OUTCAP (4 << 20)
#define NIGHTS 7

/* Runs `plexburst <args>` in dir; stdout into outbuf. */
static int run(const char *args)
{
    return tu_sh_out(outbuf, OUTCAP, "cd '%s' && '%s' %s 2>>'%s/stderr.log'", dir, pb, args, dir);
}

/* The same with --json, parsed (NULL when stdout is not JSON). */
static json_t *run_json(int *rc, const char *args)
{
    char line[16500];
    json_error_t je;
    snprintf(line, sizeof(line), "%s --json", args);
    *rc = run(line);
    json_t *j = json_loads(outbuf, 0, &je);
    if (!j)
        print_message("not JSON (%s): %.2000s\n", je.text, outbuf);
    return j;
}

static int mkplex(const char *cmd, int seed)
{
    return tu_sh("'%s' %s --dir '%s' --seed %d >/dev/null", mk, cmd, home, seed);
}

static json_int_t jint(json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(o, a);
    return b ? json_integer_value(json_object_get(v, b)) : json_integer_value(v);
}

/* Bootstrap, a week of nights, a dry run. */
static void build_week(void)
{
    char args[16384];
    int rc;
    snprintf(home, sizeof(home), "%s/home", dir);
    assert_int_equal(mkplex("init --scale tiny", 1), 0);
    snprintf(args, sizeof(args),
             "bootstrap --plex-dir '%s' --cloud 'local:%s/cloud' --runner \"'%s' init --dir "
             "{plex_dir} --scale tiny --seed 1\"",
             home, dir, mk);
    json_t *j = run_json(&rc, args);
    assert_int_equal(rc, 0);
    json_decref(j);
    for (int n = 0; n < NIGHTS + 1; n++) {
        int seed = 100 + n;
        assert_int_equal(mkplex("stream", seed), 0);
        snprintf(args, sizeof(args),
                 "sync --plex-dir '%s' --cloud 'local:%s/cloud' --plex-stop-cmd true "
                 "--plex-start-cmd true --runner \"'%s' analyze --dir {plex_dir} --seed %d\"%s",
                 home, dir, mk, seed, n == NIGHTS ? " --dry-run" : "");
        j = run_json(&rc, args);
        if (rc != 0)
            print_message("night %d: %.3000s\n", n, outbuf);
        assert_int_equal(rc, 0);
        assert_true(json_is_true(json_object_get(j, "ok")));
        json_decref(j);
    }
    print_message("a week of syncs and a dry run done\n");
}

/* A record as written before the summary existed, and one holding markup (the newest). */
static void plant_records(void)
{
    char path[4400];
    snprintf(path, sizeof(path), "%s.plexburst/runs/20200101-000000-0000.json", home);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"run_id\": \"20200101-000000-0000\", \"mode\": \"sync\", \"state\": \"ok\", "
          "\"phase\": \"FINALIZE\", \"error\": \"\", \"started\": 1577836800, \"pid\": 1, "
          "\"bytes\": {\"up\": 1000, \"down\": 2000, \"baseline_full_upload\": 0}, "
          "\"timings_ms\": {\"total\": 1500.0, \"downtime\": 200.0}, \"phases\": [], \"log\": "
          "\"\", \"baseline\": \"\", \"resumed_run\": \"\"}\n",
          f);
    fclose(f);
    snprintf(path, sizeof(path), "%s.plexburst/runs/20991231-235959-beef.json", home);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "{\"run_id\": \"20991231-235959-beef\", \"mode\": \"sync\", \"state\": \"failed\", "
            "\"phase\": \"ANALYSIS\", \"error\": \"runner said <b>no</b> & 'bye'\", \"started\": "
            "%lld, \"pid\": 1, \"dry_run\": false, \"bytes\": {\"up\": 10, \"down\": 0}, "
            "\"timings_ms\": {\"total\": 10.0, \"downtime\": 0.0}, \"summary\": {\"new_items\": "
            "1, \"new_titles\": [{\"type\": \"movie\", \"title\": \"<script>alert(1)</script> & "
            "\\\"q\\\"\", \"section\": \"<i>Films</i>\"}]}, \"cloud\": {\"provider\": "
            "\"scaleway\", \"zone\": \"fr-par-2\", \"type\": \"POP2-HC-16C-32G\", \"server_id\": "
            "\"11111111-2222\", \"hourly_price_eur\": 0.8, \"seconds\": 1800, \"cost_eur\": "
            "0.4}}\n",
            (long long)time(NULL));
    fclose(f);
}

static void check_status(char sync_id[64], char old_id[64])
{
    int rc;
    char args[16384];
    snprintf(args, sizeof(args), "status --plex-dir '%s' --limit 30", home);
    json_t *j = run_json(&rc, args);
    assert_int_equal(rc, 0);
    json_t *runs = json_object_get(j, "runs");
    /* bootstrap + 7 nights + dry run + the two planted records */
    assert_int_equal(json_array_size(runs), NIGHTS + 4);
    size_t dry = 0, with_titles = 0;
    for (size_t i = 0; i < json_array_size(runs); i++) {
        json_t *r = json_array_get(runs, i);
        const char *id = json_string_value(json_object_get(r, "run_id"));
        const char *date = json_string_value(json_object_get(r, "date"));
        assert_true(date && strlen(date) == 19 && date[4] == '-');
        dry += json_is_true(json_object_get(r, "dry_run"));
        if (!strcmp(id, "20200101-000000-0000")) {
            assert_false(json_is_true(json_object_get(r, "have_summary")));
            snprintf(old_id, 64, "%s", id);
            continue;
        }
        if (strcmp(json_string_value(json_object_get(r, "mode")), "sync") ||
            !strcmp(id, "20991231-235959-beef"))
            continue;
        assert_true(json_is_true(json_object_get(r, "have_summary")));
        assert_string_equal(json_string_value(json_object_get(r, "state")), "ok");
        assert_true(jint(r, "bytes_up", NULL) > 0 && jint(r, "bytes_down", NULL) > 0);
        assert_true(jint(r, "rows", "inserted") > 0);
        assert_true(jint(r, "analysis", "markers") + jint(r, "analysis", "loudness_items") > 0);
        if (!json_is_true(json_object_get(r, "dry_run")))
            assert_true(jint(r, "files", "new") + jint(r, "files", "patched") > 0);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(r, "cloud"), "provider")), "local");
        with_titles += jint(r, "new_items", NULL) > 0;
        if (!sync_id[0] && !json_is_true(json_object_get(r, "dry_run")))
            snprintf(sync_id, 64, "%s", id);
    }
    assert_int_equal(dry, 1);
    assert_int_equal(with_titles, NIGHTS + 1);
    json_decref(j);

    snprintf(args, sizeof(args), "status --plex-dir '%s' --limit 3", home);
    j = run_json(&rc, args);
    assert_int_equal(json_array_size(json_object_get(j, "runs")), 3);
    json_decref(j);
    assert_int_equal(run(args), 0);
    print_message("%s", outbuf);
    assert_non_null(strstr(outbuf, "date"));
    assert_non_null(strstr(outbuf, "older runs not shown"));
    snprintf(args, sizeof(args), "status --plex-dir '%s'", home);
    assert_int_equal(run(args), 0);
    assert_non_null(strstr(outbuf, "dry-run"));
    snprintf(args, sizeof(args), "status --plex-dir '%s' --limit 0", home);
    assert_int_equal(run(args), 2);
}

static void check_run(const char *sync_id, const char *old_id)
{
    int rc;
    char args[16384];
    snprintf(args, sizeof(args), "status --plex-dir '%s' --run %s", home, sync_id);
    json_t *j = run_json(&rc, args), *r = json_object_get(j, "run");
    assert_int_equal(rc, 0);
    assert_string_equal(json_string_value(json_object_get(r, "run_id")), sync_id);
    assert_int_equal(json_array_size(json_object_get(r, "phases")), 9);
    json_t *tables = json_object_get(r, "tables"), *titles = json_object_get(r, "new_titles");
    assert_true(json_array_size(tables) > 0);
    assert_true(json_array_size(titles) > 0);
    assert_true(strlen(json_string_value(json_object_get(json_array_get(titles, 0), "section"))));
    json_decref(j);
    assert_int_equal(run(args), 0);
    print_message("%s", outbuf);
    assert_non_null(strstr(outbuf, "WHAT IT BROUGHT"));
    assert_non_null(strstr(outbuf, "metadata_items"));
    snprintf(args, sizeof(args), "status --plex-dir '%s' --run %s", home, old_id);
    assert_int_equal(run(args), 0);
    assert_non_null(strstr(outbuf, "before runs kept their summary"));
    snprintf(args, sizeof(args), "status --plex-dir '%s' --run 20200101-000000-ffff", home);
    assert_int_equal(run(args), 1);
    snprintf(args, sizeof(args), "status --plex-dir '%s' --run ../../etc/passwd", home);
    assert_int_equal(run(args), 2);
}

/* The page: self-contained, four plots, everything escaped. */
static char *check_html(const char *html)
{
    int rc;
    char args[16384];
    snprintf(args, sizeof(args), "report --plex-dir '%s' --html '%s'", home, html);
    json_t *j = run_json(&rc, args);
    assert_int_equal(rc, 0);
    assert_int_equal(jint(j, "nights", NULL), NIGHTS + 4);
    assert_true(jint(j, "archive_library", NULL) > jint(j, "archive_db", NULL));
    json_decref(j);
    char *page = tu_slurp(html);
    const char *plots[] = {"plot-bytes", "plot-cloud", "plot-downtime", "plot-added"};
    for (int i = 0; i < 4; i++)
        assert_non_null(strstr(page, plots[i]));
    size_t rects = 0;
    for (const char *p = page; (p = strstr(p, "<rect")) != NULL; p++)
        rects++;
    print_message("page: %zu bytes, %zu bars\n", strlen(page), rects);
    assert_true(rects >= 4 * NIGHTS);
    assert_null(strstr(page, "<script"));
    assert_null(strstr(page, "http:"));
    assert_null(strstr(page, "https:"));
    assert_null(strstr(page, "src="));
    assert_null(strstr(page, "<link"));
    assert_null(strstr(page, "<b>no"));
    assert_non_null(strstr(page, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;"));
    assert_non_null(strstr(page, "&lt;i&gt;Films&lt;/i&gt;"));
    assert_non_null(strstr(page, "runner said &lt;b&gt;no&lt;/b&gt; &amp; &#39;bye&#39;"));
    assert_non_null(strstr(page, "dry run"));
    return page;
}

/* ---- the screenshot: a PNG decoded just enough to count pixels of a colour ---- */

typedef struct image {
    uint32_t w, h;
    int channels;
    unsigned char *px; /* w * h * channels */
} image;

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int paeth(int a, int b, int c)
{
    int p = a + b - c, da = abs(p - a), db = abs(p - b), dc = abs(p - c);
    return da <= db && da <= dc ? a : db <= dc ? b : c;
}

/* 8-bit RGB or RGBA, not interlaced (what Chromium writes). */
static int png_decode(image *im, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *d = malloc((size_t)n), *z = malloc((size_t)n);
    size_t zn = 0;
    int ok = d && z && fread(d, 1, (size_t)n, f) == (size_t)n && n > 8;
    fclose(f);
    for (long i = 8; ok && i + 12 <= n;) {
        uint32_t len = be32(d + i);
        const unsigned char *type = d + i + 4, *data = d + i + 8;
        if (i + 12 + (long)len > n)
            break;
        if (!memcmp(type, "IHDR", 4)) {
            im->w = be32(data);
            im->h = be32(data + 4);
            im->channels = data[9] == 6 ? 4 : data[9] == 2 ? 3 : 0;
            ok = data[8] == 8 && im->channels && data[12] == 0;
        } else if (!memcmp(type, "IDAT", 4)) {
            memcpy(z + zn, data, len);
            zn += len;
        }
        i += 12 + (long)len;
    }
    size_t stride = (size_t)im->w * im->channels, rawn = (stride + 1) * im->h;
    unsigned char *raw = ok ? malloc(rawn) : NULL;
    uLongf got = rawn;
    ok = ok && raw && uncompress(raw, &got, z, zn) == Z_OK && got == rawn;
    im->px = ok ? malloc(stride * im->h) : NULL;
    for (uint32_t y = 0; ok && im->px && y < im->h; y++) {
        unsigned char ft = raw[y * (stride + 1)], *in = raw + y * (stride + 1) + 1;
        unsigned char *o = im->px + y * stride, *up = y ? o - stride : NULL;
        for (size_t x = 0; x < stride; x++) {
            int a = x >= (size_t)im->channels ? o[x - im->channels] : 0, b = up ? up[x] : 0;
            int c = up && x >= (size_t)im->channels ? up[x - im->channels] : 0;
            int pred = ft == 1   ? a
                       : ft == 2 ? b
                       : ft == 3 ? (a + b) / 2
                       : ft == 4 ? paeth(a, b, c)
                                 : 0;
            o[x] = (unsigned char)(in[x] + pred);
        }
    }
    free(raw);
    free(z);
    free(d);
    return ok && im->px ? 0 : -1;
}

static size_t count_colour(const image *im, unsigned rgb)
{
    size_t n = 0;
    for (size_t i = 0; i < (size_t)im->w * im->h; i++) {
        const unsigned char *p = im->px + i * im->channels;
        n += p[0] == (rgb >> 16 & 255) && p[1] == (rgb >> 8 & 255) && p[2] == (rgb & 255);
    }
    return n;
}

/* Chromium loads the page: the DOM holds the plots, the picture holds their bars. */
static void check_browser(const char *html)
{
    char png[4400], dom[4400];
    snprintf(png, sizeof(png), "%s/report.png", dir);
    snprintf(dom, sizeof(dom), "%s/report.dom", dir);
    const char *flags = "--headless --no-sandbox --disable-gpu --hide-scrollbars "
                        "--no-first-run --window-size=1400,2000";
    assert_int_equal(tu_sh("cd '%s' && HOME='%s' timeout 180 chromium %s --user-data-dir='%s/cr' "
                           "--dump-dom 'file://%s' >'%s' 2>>'%s/chromium.log'",
                           dir, dir, flags, dir, html, dom, dir),
                     0);
    assert_int_equal(tu_sh("cd '%s' && HOME='%s' timeout 180 chromium %s --user-data-dir='%s/cr' "
                           "--screenshot='%s' 'file://%s' >>'%s/chromium.log' 2>&1",
                           dir, dir, flags, dir, png, html, dir),
                     0);
    char *d = tu_slurp(dom);
    size_t svgs = 0;
    for (const char *p = d; (p = strstr(p, "<svg")) != NULL; p++)
        svgs++;
    assert_int_equal(svgs, 4);
    assert_non_null(strstr(d, "id=\"plot-added\""));
    free(d);
    image im = {0};
    assert_int_equal(png_decode(&im, png), 0);
    print_message("screenshot %ux%u\n", im.w, im.h);
    /* each plot's bars in their colour, more than a legend square or a dashed line holds */
    const struct {
        const char *plot;
        unsigned rgb;
    } bars[] = {{"bytes up", 0x4e79a7},      {"bytes down", 0xf28e2b}, {"cloud minutes", 0x59a14f},
                {"Plex downtime", 0xe15759}, {"new items", 0x76b7b2},  {"markers", 0xedc948}};
    for (size_t i = 0; i < sizeof(bars) / sizeof(bars[0]); i++) {
        size_t n = count_colour(&im, bars[i].rgb);
        print_message("   %-14s #%06x: %zu pixels\n", bars[i].plot, bars[i].rgb, n);
        assert_true(n > 1500);
    }
    free(im.px);
    const char *keep = getenv("PB_REPORT_KEEP"); /* a directory to keep the page and picture */
    if (keep)
        tu_sh("cp '%s' '%s' '%s'/", html, png, keep);
}

static void test_report(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir(browser ? "report-browser" : "report"));
    char sync_id[64] = "", old_id[64] = "", html[4400];
    build_week();
    plant_records();
    check_status(sync_id, old_id);
    check_run(sync_id, old_id);
    snprintf(html, sizeof(html), "%s/nights.html", dir);
    free(check_html(html));
    if (browser)
        check_browser(html);
    tu_sh("rm -rf '%s'", dir);
}

int main(int argc, char **argv)
{
    browser = argc > 1 && !strcmp(argv[1], "browser");
    snprintf(pb, sizeof(pb), "%s", tu_build_path("plexburst"));
    snprintf(mk, sizeof(mk), "%s", tu_build_path("mkplex"));
    if (access(pb, X_OK) != 0 || access(mk, X_OK) != 0)
        tu_skip("needs build/plexburst and build/mkplex");
    if (browser && tu_sh("command -v chromium >/dev/null") != 0)
        tu_skip("chromium is not installed (scripts/install-deps installs it): the page was not "
                "loaded in a browser");
    outbuf = malloc(OUTCAP);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_report)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(outbuf);
    return rc;
}

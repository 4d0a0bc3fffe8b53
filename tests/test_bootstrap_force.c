/*
 * test_bootstrap_force.c: `plexburst bootstrap` over a home that already syncs, through the local
 * cloud with the fixture tool as the runner (the real binaries):
 *   - without --force it is refused: exit 2, one line on stderr naming --force, the home's DB
 *     pair and state byte for byte unchanged;
 *   - with --force, after the home made a playlist, a collection, a label, edited and locked
 *     titles, an uploaded poster and plays (mkplex stream), and with a cloud build whose ids
 *     differ from the home's (analyze adds items, taking the ids of the home's new rows, and
 *     retitles the locked movies), every one of them is in the new library, compared by guid
 *     (ids are not stable between two builds); a sync then runs on from the rebuilt library.
 * Prerequisites: build/plexburst and build/mkplex (skipped, not passed, when missing).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plexburst/compat.h"
#include "plexburst/plex.h"
#include "testutil.h"

static char pb[4096], mk[4096], dir[4096];
static char *outbuf;
#define OUTCAP (1 << 20)

static int mkplex(const char *cmd, const char *d, int seed)
{
    return tu_sh("'%s' %s --dir '%s' --seed %d >/dev/null", mk, cmd, d, seed);
}

/* `plexburst bootstrap` of `home` (extra options `more`); stdout in outbuf, stderr in
 * dir/stderr.txt; returns the exit status. */
static int bootstrap(const char *home, const char *runner, const char *more)
{
    return tu_sh_out(outbuf, OUTCAP,
                     "cd '%s' && '%s' bootstrap --plex-dir '%s' --runner \"%s\" %s "
                     "2>'%s/stderr.txt'",
                     dir, pb, home, runner, more, dir);
}

/* The user-owned content of a library, keyed by guid, as one string (caller frees). */
static const char *const views_sql[] = {
    /* playlists: guid, title and entries in order */
    "SELECT 'playlist ' || p.guid || ' ' || p.title || ': ' || coalesce((SELECT group_concat(g, "
    "',') FROM (SELECT m.guid AS g FROM play_queue_generators q JOIN metadata_items m ON m.id = "
    "q.metadata_item_id WHERE q.playlist_id = p.id ORDER BY q.\"order\", m.guid)), '') FROM "
    "metadata_items p WHERE p.metadata_type = 15 ORDER BY p.guid",
    /* collections: the item and its members */
    "SELECT 'collection ' || guid || ' ' || title || ' section ' || (SELECT name FROM "
    "library_sections s WHERE s.id = library_section_id) FROM metadata_items WHERE metadata_type "
    "= 18 ORDER BY guid",
    "SELECT 'tag ' || t.tag_type || ' ' || t.tag || ': ' || (SELECT group_concat(g, ',') FROM "
    "(SELECT m.guid AS g FROM taggings x JOIN metadata_items m ON m.id = x.metadata_item_id WHERE "
    "x.tag_id = t.id ORDER BY m.guid)) FROM tags t WHERE t.tag_type IN (2, 11) AND t.id IN "
    "(SELECT tag_id FROM taggings) ORDER BY t.tag_type, t.tag",
    "SELECT 'tags_collection ' || guid || ' ' || tags_collection FROM metadata_items WHERE "
    "tags_collection <> '' ORDER BY guid",
    /* locked edits and uploads */
    "SELECT 'edit ' || guid || ' ' || title || ' / ' || title_sort || ' ' || user_fields FROM "
    "metadata_items WHERE user_fields LIKE '%lockedFields=%' ORDER BY guid",
    "SELECT 'upload ' || guid || ' ' || user_thumb_url FROM metadata_items WHERE user_thumb_url "
    "LIKE 'upload://%' ORDER BY guid",
    /* play state and history, ratings, accounts */
    "SELECT 'setting ' || account_id || ' ' || guid || ' ' || coalesce(view_offset, '') || ' ' || "
    "coalesce(view_count, '') || ' ' || coalesce(rating, '') FROM metadata_item_settings ORDER BY "
    "account_id, guid",
    "SELECT 'views ' || count(*) || ' ' || coalesce(sum(viewed_at), 0) FROM metadata_item_views",
    "SELECT 'account ' || id || ' ' || name FROM accounts ORDER BY id",
    "SELECT 'owner ' || a.account_id || ' ' || m.guid FROM metadata_item_accounts a JOIN "
    "metadata_items m ON m.id = a.metadata_item_id ORDER BY 1",
    NULL,
};

static char *user_view(const char *home)
{
    char db[4300];
    sqlite3 *c = NULL;
    pb_error err = PB_ERROR_INIT;
    tu_buf b = {0};
    snprintf(db, sizeof(db), "%s/" PB_PLEX_DB_REL, home);
    assert_int_equal(pb_compat_open(&c, db, PB_OPEN_READONLY, &err), 0);
    for (const char *const *q = views_sql; *q; q++) {
        sqlite3_stmt *st = tu_prepare(c, *q);
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *t = (const char *)sqlite3_column_text(st, 0);
            tu_buf_str(&b, t ? t : "(null)");
            tu_buf_str(&b, "\n");
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(c);
    tu_buf_str(&b, "");
    return b.p;
}

/* Prints the lines of `a` that `b` lacks (what a carry lost). */
static void print_missing(const char *a, const char *b)
{
    const char *p = a;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char line[2048];
        snprintf(line, sizeof(line), "%.*s\n", (int)(n < 2000 ? n : 2000), p);
        if (!strstr(b, line))
            print_message("   lost: %s", line);
        p += n + (e ? 1 : 0);
    }
}

/* Lines of `s` starting with `prefix` ("": every line). */
static int count_lines(const char *s, const char *prefix)
{
    int n = 0;
    for (const char *p = s; *p; p++)
        if ((p == s || p[-1] == '\n') && strncmp(p, prefix, strlen(prefix)) == 0)
            n++;
    return n;
}

/* Removes the test's scratch dir, also after a failed assertion. */
static int teardown(void **state)
{
    (void)state;
    if (dir[0])
        tu_sh("rm -rf '%s'", dir);
    dir[0] = '\0';
    return 0;
}

static void setup_home(char *home, size_t cap, const char *tag)
{
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir(tag));
    snprintf(home, cap, "%s/home", dir);
    assert_int_equal(mkplex("init --scale tiny", home, 1), 0);
    char runner[4400];
    snprintf(runner, sizeof(runner), "'%s' init --dir {plex_dir} --scale tiny --seed 1", mk);
    int rc = bootstrap(home, runner, "");
    if (rc != 0)
        print_message("first bootstrap exit %d: %.3000s\n", rc, outbuf);
    assert_int_equal(rc, 0);
}

/* A home that already syncs: a second bootstrap without --force is refused, nothing touched. */
static void test_refused(void **state)
{
    (void)state;
    char home[4200], runner[4400], before[8192], after[8192];
    setup_home(home, sizeof(home), "boot-refuse");
    assert_int_equal(mkplex("stream", home, 4), 0);
    const char *sums = "cd '%s' && find . '%s.plexburst' -path '*/logs' -prune -o -path '*/runs' "
                       "-prune -o -type f -print0 | sort -z | xargs -0 sha256sum";
    assert_int_equal(tu_sh_out(before, sizeof(before), sums, home, home), 0);
    snprintf(runner, sizeof(runner), "'%s' init --dir {plex_dir} --scale tiny --seed 1", mk);
    int rc = bootstrap(home, runner, "");
    if (rc != 2)
        print_message("second bootstrap exit %d: %.3000s\n", rc, outbuf);
    assert_int_equal(rc, 2);
    /* one line, naming the way out */
    char err[4096];
    assert_int_equal(tu_sh_out(err, sizeof(err), "cat '%s/stderr.txt'", dir), 0);
    print_message("refused: %s", err);
    assert_int_equal(count_lines(err, "plexburst: "), 1);
    assert_non_null(strstr(err, "--force"));
    assert_int_equal(count_lines(err, ""), 1);
    assert_int_equal(tu_sh_out(after, sizeof(after), sums, home, home), 0);
    if (strcmp(before, after) != 0)
        print_message("before:\n%s\nafter:\n%s\n", before, after);
    assert_string_equal(before, after);
}

/* --force: everything the home owns survives the rebuild. */
static void test_force_carries(void **state)
{
    (void)state;
    char home[4200], runner[8800];
    setup_home(home, sizeof(home), "boot-force");
    /* a home that lived after its bootstrap: plays, a playlist, a collection, a label, locked
     * titles, an uploaded poster */
    assert_int_equal(tu_sh("'%s' stream --dir '%s' --seed 4 --edit-title 3 >/dev/null", mk, home),
                     0);
    char *before = user_view(home);
    assert_true(count_lines(before, "playlist ") >= 1);
    assert_true(count_lines(before, "collection ") >= 1);
    assert_true(count_lines(before, "edit ") >= 3);
    assert_true(count_lines(before, "upload ") >= 1);
    assert_non_null(strstr(before, "tag 11 Family Night"));
    /* the cloud's build is not the home's: analyze adds items whose ids are the ones the home's
     * new playlist and collection took, and retitles the movies the home locked */
    snprintf(runner, sizeof(runner),
             "'%s' init --dir {plex_dir} --scale tiny --seed 1 && '%s' analyze --dir {plex_dir} "
             "--seed 7 --delete 0 --retitle 5",
             mk, mk);
    int rc = bootstrap(home, runner, "--force");
    if (rc != 0)
        print_message("forced bootstrap exit %d: %.3000s\n", rc, outbuf);
    assert_int_equal(rc, 0);
    char *after = user_view(home);
    print_missing(before, after);
    assert_string_equal(before, after);
    /* and the home syncs on from the rebuilt library */
    rc = tu_sh_out(outbuf, OUTCAP,
                   "cd '%s' && '%s' sync --plex-dir '%s' --runner \"'%s' analyze --dir "
                   "{plex_dir} --seed 8\" 2>&1",
                   dir, pb, home, mk);
    if (rc != 0)
        print_message("sync exit %d: %.3000s\n", rc, outbuf);
    assert_int_equal(rc, 0);
    free(before);
    free(after);
}

int main(void)
{
    snprintf(pb, sizeof(pb), "%s", tu_build_path("plexburst"));
    snprintf(mk, sizeof(mk), "%s", tu_build_path("mkplex"));
    if (access(pb, X_OK) != 0 || access(mk, X_OK) != 0)
        tu_skip("needs build/plexburst and build/mkplex");
    outbuf = malloc(OUTCAP);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_refused, teardown),
        cmocka_unit_test_teardown(test_force_carries, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(outbuf);
    return rc;
}

/*
 * test_fplookup.c: pb_fingerprint_lookup_* (engine/files/fingerprint_lookup.c), the home's view
 * of single paths: it must answer every path as a full fingerprint's manifest records it, take
 * hashes from the cache only while the cache describes the file, and never look outside the data
 * dir or through a symlink.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plexburst/fingerprint.h"
#include "testutil.h"

static char dir[4096], home[4200], state[4200];

static void make_tree(void)
{
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("fplookup"));
    snprintf(home, sizeof(home), "%s/home", dir);
    snprintf(state, sizeof(state), "%s/home.plexburst", dir);
    assert_int_equal(
        tu_sh("cd '%s' && mkdir -p home/Metadata/Movies/a/b 'home/Plug-in Support/Databases' "
              "home/Media/x home/Cache outside && printf poster > home/Metadata/Movies/a/b/poster "
              "&& head -c 3000000 /dev/urandom > home/Media/x/big.bif && printf s > home/Cache/c "
              "&& printf db > 'home/Plug-in Support/Databases/com.plexapp.plugins.library.db' "
              "&& ln home/Metadata/Movies/a/b/poster home/Metadata/Movies/a/thumb "
              "&& ln -s b home/Metadata/Movies/a/link && ln -s ../../outside home/Media/x/out "
              "&& printf secret > outside/file && chmod 0640 home/Media/x/big.bif "
              "&& find home -exec touch -h -d 2020-01-01 {} +",
              dir),
        0);
}

/* Every file and symlink of the full manifest, looked up one by one, is answered alike. */
static void test_same_as_manifest(void **state_)
{
    (void)state_;
    make_tree();
    pb_fingerprint_options fo = PB_FINGERPRINT_OPTIONS_INIT;
    pb_fingerprint_result fr;
    pb_error e = PB_ERROR_INIT;
    pb_manifest *m = NULL;
    const pb_manifest_entry *me;
    pb_fingerprint_lookup *l = NULL;
    fo.state_dir = state;
    assert_int_equal(pb_fingerprint_run(&fr, home, &fo, &e), 0);
    assert_int_equal(pb_manifest_open(&m, fr.manifest_path, &e), 0);
    assert_int_equal(pb_fingerprint_lookup_open(&l, home, state, &e), 0);
    int n = 0, rc;
    while ((rc = pb_manifest_next(m, &me, &e)) > 0) {
        if (me->type == PB_ENTRY_DIR)
            continue;
        pb_fingerprint_entry got;
        assert_int_equal(pb_fingerprint_lookup_get(l, me->path, &got, &e), 0);
        assert_int_equal(got.type, me->type);
        assert_int_equal(got.mode, me->mode);
        assert_true(got.size == me->size);
        assert_memory_equal(got.hash, me->hash, PB_HASH_LEN);
        n++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(n, 5); /* poster, thumb, link, big.bif, out */
    /* what the walk does not record holds nothing */
    static const char *const none[] = {"Cache/c",
                                       "Plug-in Support/Databases/com.plexapp.plugins.library.db",
                                       "Metadata/Movies/a/link/poster",
                                       "Media/x/out/file",
                                       "../outside/file",
                                       "Metadata/../../outside/file",
                                       "Metadata/Movies/a/./b/poster",
                                       "Metadata//Movies",
                                       "/etc/passwd",
                                       "Metadata/Movies/a",
                                       "Metadata/missing",
                                       "Media/x/big.bif/no"};
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        pb_fingerprint_entry got;
        assert_int_equal(pb_fingerprint_lookup_get(l, none[i], &got, &e), 0);
        if (got.type)
            fail_msg("%s: found, expected nothing", none[i]);
    }
    const pb_fingerprint_lookup_stats *s = pb_fingerprint_lookup_stats_get(l);
    assert_true(s->cached == 3 && s->hashed == 0); /* the full run filled the cache */
    assert_int_equal(pb_fingerprint_lookup_close(l, &e), 0);
    pb_manifest_free(m);
    tu_sh("rm -rf '%s'", dir);
}

/* A file changed in place with its size kept is read again; the cache row is rewritten. */
static void test_cache_follows_the_file(void **state_)
{
    (void)state_;
    make_tree();
    pb_fingerprint_lookup *l = NULL;
    pb_error e = PB_ERROR_INIT;
    pb_fingerprint_entry a, b, c;
    const char *p = "Metadata/Movies/a/b/poster";
    assert_int_equal(pb_fingerprint_lookup_open(&l, home, state, &e), 0);
    assert_int_equal(pb_fingerprint_lookup_get(l, p, &a, &e), 0);
    assert_int_equal(pb_fingerprint_lookup_stats_get(l)->hashed, 1);
    assert_int_equal(pb_fingerprint_lookup_close(l, &e), 0);
    /* same size and inode, other bytes and another mtime, well in the past (not racy) */
    assert_int_equal(tu_sh("cd '%s' && printf POSTER > %s && touch -d '2021-01-01' %s && "
                           "touch -d '2021-01-01' Metadata/Movies/a/thumb",
                           home, p, p),
                     0);
    assert_int_equal(pb_fingerprint_lookup_open(&l, home, state, &e), 0);
    assert_int_equal(pb_fingerprint_lookup_get(l, p, &b, &e), 0);
    assert_memory_not_equal(a.hash, b.hash, PB_HASH_LEN);
    assert_int_equal(pb_fingerprint_lookup_stats_get(l)->hashed, 1);
    assert_int_equal(pb_fingerprint_lookup_close(l, &e), 0);
    /* unchanged since: from the cache */
    assert_int_equal(pb_fingerprint_lookup_open(&l, home, state, &e), 0);
    assert_int_equal(pb_fingerprint_lookup_get(l, p, &c, &e), 0);
    assert_memory_equal(b.hash, c.hash, PB_HASH_LEN);
    assert_int_equal(pb_fingerprint_lookup_stats_get(l)->cached, 1);
    assert_int_equal(pb_fingerprint_lookup_stats_get(l)->hashed, 0);
    assert_int_equal(pb_fingerprint_lookup_close(l, &e), 0);
    tu_sh("rm -rf '%s'", dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_as_manifest),
        cmocka_unit_test(test_cache_follows_the_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

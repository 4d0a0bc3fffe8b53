/*
 * test_fingerprint.c: fingerprints of Plex data directories (engine/fingerprint*.c): the sync
 * rule with every excluded kind, hard-link groups, symlinks recorded and never followed,
 * specials skipped, cache hits and misses (mtime, size, replaced inode), Merkle hashes changing
 * exactly along the changed path, determinism, the manifest reader refusing truncated, altered
 * and malformed manifests, the two-manifest comparison, cancellation and the state directory.
 * Trees are built with the shell in a scratch directory; file times are set an hour back so
 * that no entry is "racy" (modified within 100 ms of being hashed).
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fingerprint_int.h"
#include "plexburst/fingerprint.h"
#include "testutil.h"

static char g_root[1024]; /* scratch dir of the test */

static const char *at(const char *rel)
{
    static char buf[8][2048];
    static int slot;
    char *p = buf[slot++ % 8];
    snprintf(p, 2048, "%s/%s", g_root, rel);
    return p;
}

static void put(const char *rel, const char *content)
{
    assert_int_equal(tu_sh("mkdir -p \"$(dirname '%s')\" && printf '%%s' '%s' > '%s'", at(rel),
                           content, at(rel)),
                     0);
}

static void age(const char *dir)
{
    assert_int_equal(tu_sh("find '%s' -exec touch -h -d '-1 hour' {} +", dir), 0);
}

static int fp(pb_fingerprint_result *r, const char *d, const char *state, int rehash, pb_error *err)
{
    pb_fingerprint_options o = PB_FINGERPRINT_OPTIONS_INIT;
    o.state_dir = state;
    o.rehash = rehash;
    return pb_fingerprint_run(r, d, &o, err);
}

static void fp_ok(pb_fingerprint_result *r, const char *d, const char *state)
{
    pb_error err = PB_ERROR_INIT;
    int rc = fp(r, d, state, 0, &err);
    if (rc)
        print_error("fingerprint: %s\n", err.msg);
    assert_int_equal(rc, 0);
}

/* Dumps a manifest as text, one entry a line: "T path [-> target] [= leader] hash". */
static char *dump(const char *manifest)
{
    pb_error err = PB_ERROR_INIT;
    pb_manifest *m = NULL;
    const pb_manifest_entry *e;
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    int rc = pb_manifest_open(&m, manifest, &err);
    if (rc)
        print_error("open: %s\n", err.msg);
    assert_int_equal(rc, 0);
    out[0] = '\0';
    while ((rc = pb_manifest_next(m, &e, &err)) == 1) {
        char hex[33], line[8192];
        pb_hash_hex(hex, e->hash);
        snprintf(line, sizeof(line), "%c %s%s%s%s%s %o %s\n", e->type, e->path,
                 e->link_target ? " -> " : "", e->link_target ? e->link_target : "",
                 e->link_leader ? " = " : "", e->link_leader ? e->link_leader : "", e->mode, hex);
        size_t n = strlen(line);
        if (len + n + 1 > cap)
            out = realloc(out, cap = (len + n + 1) * 2);
        memcpy(out + len, line, n + 1);
        len += n;
    }
    if (rc)
        print_error("next: %s\n", err.msg);
    assert_int_equal(rc, 0);
    pb_manifest_free(m);
    return out;
}

/* The hash column of the entry `path` in a dump (static buffer). */
static const char *hash_of(const char *dumped, const char *type_path)
{
    static char h[33];
    char key[1024];
    snprintf(key, sizeof(key), "\n%s ", type_path);
    const char *p = strstr(dumped, key);
    if (!p && strncmp(dumped, key + 1, strlen(key + 1)) == 0)
        p = dumped - 1;
    if (!p)
        return NULL;
    const char *eol = strchr(p + 1, '\n');
    memcpy(h, eol - 32, 32);
    h[32] = '\0';
    return h;
}

static int setup(void **state)
{
    snprintf(g_root, sizeof(g_root), "%s", tu_tmpdir("fp"));
    return 0;
}

static int teardown(void **state)
{
    tu_sh("rm -rf '%s'", g_root);
    return 0;
}

static void test_rule(void **state)
{
    const char *in[] = {"Metadata",
                        "Metadata/Movies/a/b.bundle/Contents/Info.xml",
                        "Media/localhost/1/x.bundle/Contents/Indexes/index-sd.bif",
                        "Plug-in Support",
                        "Plug-in Support/Data/com.plexapp.agents.x/y.xml",
                        "Plug-in Support/Databases",
                        "Plug-in Support/Databases/Music Analysis 1/a.dat",
                        "Plug-in Support/Metadata Combination/x",
                        "Metadata/x.db",
                        "Metadata/y-wal",
                        "Metadata/x.pb-stage-1",
                        "Plug-in Support/Caches2/x"};
    const char *out[] = {"Preferences.xml",
                         "Cache",
                         "Cache/Transcode/x",
                         "Logs/Plex Media Server.log",
                         "Crash Reports/x",
                         "Codecs/x",
                         "Updates/x",
                         "Diagnostics/x",
                         "Drivers",
                         "Plug-ins/x",
                         "Setup Plex.html",
                         "plexmediaserver.pid",
                         "MetadataX",
                         "metadata",
                         "Plug-in Support/Databases/com.plexapp.plugins.library.db",
                         "Plug-in Support/Databases/com.plexapp.plugins.library.blobs.db",
                         "Plug-in Support/Databases/com.plexapp.plugins.library.db-wal",
                         "Plug-in Support/Databases/com.plexapp.plugins.library.db-shm",
                         "Plug-in Support/Databases/com.plexapp.plugins.library.db-journal",
                         "Plug-in Support/Databases/com.plexapp.plugins.library.db-2024-01-31",
                         "Plug-in Support/Databases/plexburst-backups",
                         "Plug-in Support/Databases/plexburst-backups/x.db.zst",
                         "Plug-in Support/Databases/Music Analysis 1/m.db",
                         "Plug-in Support/Data/x/cache.sqlite-wal",
                         "Plug-in Support/Data/x/j-journal",
                         "Plug-in Support/Caches",
                         "Plug-in Support/Caches/com.plexapp.agents.x/HTTP.system/y",
                         "Metadata/Movies/a/b.bundle/Contents/.pb-stage-7-12",
                         ".pb-stage-1-1"};
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
        assert_int_equal(pb_fingerprint_synced(in[i]), 1);
    for (size_t i = 0; i < sizeof(out) / sizeof(out[0]); i++) {
        if (pb_fingerprint_synced(out[i]))
            print_error("should be excluded: %s\n", out[i]);
        assert_int_equal(pb_fingerprint_synced(out[i]), 0);
    }
}

static void test_exclusions_tree(void **state)
{
    const char *excluded[] = {"Preferences.xml",
                              "Cache/PhotoTranscoder/a.jpg",
                              "Logs/Plex Media Server.log",
                              "Crash Reports/1.dmp",
                              "Codecs/c.so",
                              "Updates/u.deb",
                              "Diagnostics/d.zip",
                              "Drivers/d",
                              "Plug-ins/p/Info.plist",
                              "Setup Plex.html",
                              "plexmediaserver.pid",
                              "Plug-in Support/Databases/com.plexapp.plugins.library.db",
                              "Plug-in Support/Databases/com.plexapp.plugins.library.db-wal",
                              "Plug-in Support/Databases/com.plexapp.plugins.library.db-shm",
                              "Plug-in Support/Databases/com.plexapp.plugins.library.db-journal",
                              "Plug-in Support/Databases/com.plexapp.plugins.library.blobs.db",
                              "Plug-in Support/Databases/com.plexapp.plugins.library.db-2024-05-01",
                              "Plug-in Support/Databases/plexburst-backups/b1.db"};
    const char *included[] = {"Metadata/Movies/a/b.bundle/Contents/_combined/Info.xml",
                              "Media/localhost/0/c.bundle/Contents/Indexes/index-sd.bif",
                              "Plug-in Support/Data/com.plexapp.system/p.xml",
                              "Plug-in Support/Databases/Music Analysis 1/m.dat"};
    char d[1100];
    snprintf(d, sizeof(d), "%s/excl", g_root);
    for (size_t i = 0; i < sizeof(excluded) / sizeof(excluded[0]); i++) {
        char rel[512];
        snprintf(rel, sizeof(rel), "excl/%s", excluded[i]);
        put(rel, "x");
    }
    for (size_t i = 0; i < sizeof(included) / sizeof(included[0]); i++) {
        char rel[512];
        snprintf(rel, sizeof(rel), "excl/%s", included[i]);
        put(rel, "y");
    }
    age(d);
    pb_fingerprint_result r;
    fp_ok(&r, d, NULL);
    char *txt = dump(r.manifest_path);
    const char *want = "D Media\nD Media/localhost\nD Media/localhost/0\n"
                       "D Media/localhost/0/c.bundle\nD Media/localhost/0/c.bundle/Contents\n"
                       "D Media/localhost/0/c.bundle/Contents/Indexes\n"
                       "F Media/localhost/0/c.bundle/Contents/Indexes/index-sd.bif\n"
                       "D Metadata\nD Metadata/Movies\nD Metadata/Movies/a\n"
                       "D Metadata/Movies/a/b.bundle\nD Metadata/Movies/a/b.bundle/Contents\n"
                       "D Metadata/Movies/a/b.bundle/Contents/_combined\n"
                       "F Metadata/Movies/a/b.bundle/Contents/_combined/Info.xml\n"
                       "D Plug-in Support\nD Plug-in Support/Data\n"
                       "D Plug-in Support/Data/com.plexapp.system\n"
                       "F Plug-in Support/Data/com.plexapp.system/p.xml\n"
                       "D Plug-in Support/Databases\nD Plug-in Support/Databases/Music Analysis 1\n"
                       "F Plug-in Support/Databases/Music Analysis 1/m.dat\n";
    /* compare "T path" prefixes line by line */
    char got[8192] = "";
    for (char *line = txt; *line;) {
        char *eol = strchr(line, '\n');
        char *sp = strchr(line + 2, ' ');
        /* paths contain spaces: cut before " <mode> <hash>" (the last two fields) */
        char *last = eol - 33, *mode = last;
        while (mode > line && mode[-1] != ' ')
            mode--;
        (void)sp;
        strncat(got, line, (size_t)(mode - 1 - line));
        strcat(got, "\n");
        line = eol + 1;
    }
    assert_string_equal(got, want);
    assert_int_equal(r.files, 4);
    /* top level: 8 excluded names; Databases: 6 DB files and the backups folder */
    assert_int_equal(r.excluded, 11 + 7);
    free(txt);
}

static void test_links_specials(void **state)
{
    char d[1100], outside[1100];
    snprintf(d, sizeof(d), "%s/links", g_root);
    snprintf(outside, sizeof(outside), "%s/outside.txt", g_root);
    put("links/Metadata/a/1.jpg", "same");
    put("links/Media/x", "content-x");
    put("outside.txt", "out");
    assert_int_equal(tu_sh("cd '%s' && ln Metadata/a/1.jpg Metadata/a/2.jpg && mkdir -p "
                           "Metadata/b && ln Metadata/a/1.jpg Metadata/b/3.jpg && ln '%s' "
                           "Media/y && ln -s /etc/passwd Metadata/abs && ln -s ../Media "
                           "Metadata/dirlink && ln -s a/1.jpg Metadata/rel && mkfifo Metadata/fifo",
                           d, outside),
                     0);
    /* a unix socket */
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char sp[1200];
    snprintf(sp, sizeof(sp), "%s/Media/sock", d);
    if (strlen(sp) < sizeof(sa.sun_path))
        memcpy(sa.sun_path, sp, strlen(sp) + 1);
    if (strlen(sp) < sizeof(sa.sun_path))
        assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(s);
    int sockets = strlen(sp) < sizeof(sa.sun_path);
    age(d);
    pb_fingerprint_result r;
    fp_ok(&r, d, NULL);
    char *txt = dump(r.manifest_path);
    assert_int_equal(r.files, 5);
    assert_int_equal(r.hard_link_groups, 1);
    assert_int_equal(r.hard_links, 2);
    assert_int_equal(r.hashed, 3); /* 1.jpg once, x, y */
    assert_int_equal(r.symlinks, 3);
    assert_int_equal(r.skipped, 1 + sockets);
    assert_non_null(strstr(txt, "F Metadata/a/2.jpg = Metadata/a/1.jpg "));
    assert_non_null(strstr(txt, "F Metadata/b/3.jpg = Metadata/a/1.jpg "));
    assert_non_null(strstr(txt, "L Metadata/abs -> /etc/passwd "));
    assert_non_null(strstr(txt, "L Metadata/dirlink -> ../Media "));
    assert_null(strstr(txt, "Metadata/dirlink/")); /* never followed */
    assert_null(strstr(txt, "fifo"));
    assert_null(strstr(txt, "sock"));
    /* Media/y shares its inode with a file outside the tree: multi-link, no group */
    assert_non_null(strstr(txt, "F Media/y 644"));
    /* the three paths of one inode share a hash */
    char h1[33];
    snprintf(h1, sizeof(h1), "%s", hash_of(txt, "F Metadata/a/1.jpg"));
    assert_string_equal(hash_of(txt, "F Metadata/b/3.jpg = Metadata/a/1.jpg"), h1);
    /* a symlink's hash is that of its target text, not of the file it points to */
    assert_string_not_equal(hash_of(txt, "L Metadata/rel -> a/1.jpg"), h1);
    /* second run: everything cached, the groups again */
    pb_fingerprint_result r2;
    fp_ok(&r2, d, NULL);
    assert_int_equal(r2.hashed, 0);
    assert_int_equal(r2.hard_link_groups, 1);
    assert_memory_equal(r.root, r2.root, PB_HASH_LEN);
    free(txt);
}

static int coll(void *arg, int na, const void *a, int nb, const void *b)
{
    return pb_fp__pathcmp(a, (size_t)na, b, (size_t)nb);
}

/* Rows in the cache DB (it needs the pbpath collation to be read). */
static int cache_rows(const char *db_path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int n = -1;
    assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_create_collation(db, "pbpath", SQLITE_UTF8, NULL, coll);
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM files", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void test_cache(void **state)
{
    char d[1100];
    snprintf(d, sizeof(d), "%s/cache", g_root);
    put("cache/Metadata/a/f1", "one");
    put("cache/Metadata/a/f2", "two");
    put("cache/Metadata/b/f3", "three");
    put("cache/Media/f4", "four");
    age(d);
    pb_fingerprint_result r;
    fp_ok(&r, d, NULL);
    assert_int_equal(r.hashed, 4);
    assert_int_equal(r.cached, 0);
    fp_ok(&r, d, NULL);
    assert_int_equal(r.hashed, 0);
    assert_int_equal(r.cached, 4);
    uint8_t root0[PB_HASH_LEN];
    memcpy(root0, r.root, PB_HASH_LEN);

    /* mtime touched, same content: re-read, same root */
    assert_int_equal(tu_sh("touch -d '-2 hours' '%s'", at("cache/Metadata/a/f1")), 0);
    fp_ok(&r, d, NULL);
    assert_int_equal(r.hashed, 1);
    assert_memory_equal(r.root, root0, PB_HASH_LEN);
    fp_ok(&r, d, NULL);
    assert_int_equal(r.hashed, 0);

    /* size changed, mtime restored */
    assert_int_equal(tu_sh("f='%s'; touch -r \"$f\" /tmp/.pbfp_ref.$$ && printf 'three!' > \"$f\" "
                           "&& touch -r /tmp/.pbfp_ref.$$ \"$f\"; rm -f /tmp/.pbfp_ref.$$",
                           at("cache/Metadata/b/f3")),
                     0);
    fp_ok(&r, d, NULL);
    assert_int_equal(r.hashed, 1);
    assert_memory_not_equal(r.root, root0, PB_HASH_LEN);
    uint8_t root1[PB_HASH_LEN];
    memcpy(root1, r.root, PB_HASH_LEN);

    /* replaced by another inode with the same size and mtime but other content */
    assert_int_equal(tu_sh("f='%s'; printf 'TWO' > \"$f.new\" && touch -r \"$f\" \"$f.new\" && "
                           "mv \"$f.new\" \"$f\"",
                           at("cache/Metadata/a/f2")),
                     0);
    fp_ok(&r, d, NULL);
    assert_int_equal(r.hashed, 1);
    assert_memory_not_equal(r.root, root1, PB_HASH_LEN);

    /* a removed file leaves the cache; the removal is seen */
    assert_int_equal(tu_sh("rm '%s'", at("cache/Media/f4")), 0);
    fp_ok(&r, d, NULL);
    assert_int_equal(r.files, 3);
    assert_int_equal(r.hashed, 0);
    char db[1200];
    snprintf(db, sizeof(db), "%s.plexburst/fingerprint.db", d);
    assert_int_equal(cache_rows(db), 3);
    /* a fresh file is racy: hashed now and again next time, then cached */
    put("cache/Media/fresh", "new");
    fp_ok(&r, d, NULL);
    assert_int_equal(r.hashed, 1);
    /* --rehash reads everything */
    pb_error err = PB_ERROR_INIT;
    assert_int_equal(fp(&r, d, NULL, 1, &err), 0);
    assert_int_equal(r.hashed, 4);
    /* a corrupt cache file is rebuilt, not an error */
    assert_int_equal(tu_sh("head -c 8192 /dev/urandom > '%s'; rm -f '%s-wal' '%s-shm'", db, db, db),
                     0);
    fp_ok(&r, d, NULL);
    assert_int_equal(r.hashed, 4);
}

static void test_merkle_path(void **state)
{
    char d[1100];
    snprintf(d, sizeof(d), "%s/merkle", g_root);
    put("merkle/Metadata/x/y/z/leaf", "v1");
    put("merkle/Metadata/x/y/other", "o");
    put("merkle/Metadata/x/w/f", "w");
    put("merkle/Metadata/q/f", "q");
    put("merkle/Media/m/f", "m");
    age(d);
    pb_fingerprint_result r;
    fp_ok(&r, d, NULL);
    char *a = dump(r.manifest_path);
    uint8_t root_a[PB_HASH_LEN];
    memcpy(root_a, r.root, PB_HASH_LEN);
    assert_int_equal(tu_sh("printf 'v2' > '%s' && touch -d '-1 hour' '%s'",
                           at("merkle/Metadata/x/y/z/leaf"), at("merkle/Metadata/x/y/z/leaf")),
                     0);
    fp_ok(&r, d, NULL);
    char *b = dump(r.manifest_path);
    assert_memory_not_equal(root_a, r.root, PB_HASH_LEN);
    const char *changed[] = {"D Metadata", "D Metadata/x", "D Metadata/x/y", "D Metadata/x/y/z",
                             "F Metadata/x/y/z/leaf"};
    const char *same[] = {"D Media",          "D Media/m",           "F Media/m/f",
                          "D Metadata/q",     "F Metadata/q/f",      "D Metadata/x/w",
                          "F Metadata/x/w/f", "F Metadata/x/y/other"};
    for (size_t i = 0; i < 5; i++) {
        char h[33];
        snprintf(h, sizeof(h), "%s", hash_of(a, changed[i]));
        assert_string_not_equal(h, hash_of(b, changed[i]));
    }
    for (size_t i = 0; i < 8; i++) {
        char h[33];
        snprintf(h, sizeof(h), "%s", hash_of(a, same[i]));
        assert_string_equal(h, hash_of(b, same[i]));
    }
    /* a mode change counts; an mtime change alone does not */
    assert_int_equal(tu_sh("touch -d '-3 hours' '%s'", at("merkle/Metadata/q/f")), 0);
    uint8_t root_b[PB_HASH_LEN];
    memcpy(root_b, r.root, PB_HASH_LEN);
    fp_ok(&r, d, NULL);
    assert_memory_equal(root_b, r.root, PB_HASH_LEN);
    assert_int_equal(tu_sh("chmod 600 '%s'", at("merkle/Metadata/q/f")), 0);
    fp_ok(&r, d, NULL);
    assert_memory_not_equal(root_b, r.root, PB_HASH_LEN);
    free(a);
    free(b);
}

static void test_determinism(void **state)
{
    char d[1100], copy[1100], s1[1100], s2[1100], m1[4200], m2[4200];
    snprintf(d, sizeof(d), "%s/det", g_root);
    snprintf(copy, sizeof(copy), "%s/det-copy", g_root);
    snprintf(s1, sizeof(s1), "%s/state1", g_root);
    snprintf(s2, sizeof(s2), "%s/state2", g_root);
    for (int i = 0; i < 40; i++) {
        char rel[128], content[64];
        snprintf(rel, sizeof(rel), "det/Metadata/d%d/sub%d/f%02d", i % 5, i % 3, i);
        snprintf(content, sizeof(content), "content %d", i * 7);
        put(rel, content);
    }
    put("det/Media/a b/ü.jpg", "unicode");
    put("det/Media/a-b/x", "dash sorts before slash? no: after");
    put("det/Media/a/x", "plain");
    age(d);
    pb_fingerprint_result r1, r2, r3;
    fp_ok(&r1, d, s1);
    snprintf(m1, sizeof(m1), "%s", r1.manifest_path);
    pb_error err = PB_ERROR_INIT;
    assert_int_equal(fp(&r2, d, s2, 1, &err), 0);
    snprintf(m2, sizeof(m2), "%s", r2.manifest_path);
    assert_int_equal(tu_sh("cmp -s '%s' '%s'", m1, m2), 0);
    /* a copy elsewhere (other inodes and directory mtimes) has the same root */
    assert_int_equal(tu_sh("cp -a '%s' '%s'", d, copy), 0);
    fp_ok(&r3, copy, NULL);
    assert_memory_equal(r1.root, r3.root, PB_HASH_LEN);
    /* the walk order: "a" and its subtree before "a b" and "a-b" */
    char *txt = dump(m1);
    char *pa = strstr(txt, "F Media/a/x"), *pb = strstr(txt, "F Media/a b/"),
         *pc = strstr(txt, "F Media/a-b/x");
    assert_true(pa && pb && pc && pa < pb && pb < pc);
    free(txt);
}

/* ---- the reader ---- */

static int open_and_read(const char *path, pb_error *err)
{
    pb_manifest *m = NULL;
    const pb_manifest_entry *e;
    int rc = pb_manifest_open(&m, path, err);
    if (rc)
        return rc;
    while ((rc = pb_manifest_next(m, &e, err)) == 1)
        ;
    pb_manifest_free(m);
    return rc;
}

static void test_reader_damage(void **state)
{
    char d[1100], bad[1200];
    snprintf(d, sizeof(d), "%s/dmg", g_root);
    snprintf(bad, sizeof(bad), "%s/bad.manifest", g_root);
    for (int i = 0; i < 12; i++) {
        char rel[64];
        snprintf(rel, sizeof(rel), "dmg/Metadata/d%d/f%d", i % 3, i);
        put(rel, "data");
    }
    age(d);
    pb_fingerprint_result r;
    fp_ok(&r, d, NULL);
    struct stat st;
    assert_int_equal(stat(r.manifest_path, &st), 0);
    long size = (long)st.st_size;
    pb_error ok = PB_ERROR_INIT;
    assert_int_equal(open_and_read(r.manifest_path, &ok), 0);
    /* every truncation */
    for (long cut = 0; cut < size; cut += (cut < 130 ? 1 : 37)) {
        pb_error err = PB_ERROR_INIT;
        assert_int_equal(tu_sh("head -c %ld '%s' > '%s'", cut, r.manifest_path, bad), 0);
        assert_int_equal(open_and_read(bad, &err), PB_ECORRUPT);
        assert_non_null(strstr(err.msg, "byte"));
    }
    /* a flipped bit anywhere */
    for (long k = 0; k < size; k += 13) {
        pb_error err = PB_ERROR_INIT;
        assert_int_equal(tu_sh("cp '%s' '%s' && printf \"$(printf '\\\\%%03o' $(( $(od -An -tu1 "
                               "-j%ld -N1 '%s') ^ 4 )))\" | dd of='%s' bs=1 seek=%ld conv=notrunc "
                               "status=none",
                               r.manifest_path, bad, k, r.manifest_path, bad, k),
                         0);
        assert_int_equal(open_and_read(bad, &err), PB_ECORRUPT);
    }
    pb_error err = PB_ERROR_INIT;
    assert_int_equal(open_and_read("/nonexistent/m", &err), PB_ENOTFOUND);
}

/* Writes a manifest with the internal writer (valid checksum) from (type, path) pairs; dirs
 * get their subtree end set to `dir_end` records later, hashes are zero. */
static void craft(const char *path, const char *const *entries, size_t n, const char *extra)
{
    pb_error err = PB_ERROR_INIT;
    pb_fp_writer *w = NULL;
    uint8_t zero[PB_HASH_LEN] = {0};
    assert_int_equal(pb_fp__writer_open(&w, path, &err), 0);
    for (size_t i = 0; i < n; i++) {
        const char *p = entries[i];
        int type = p[0];
        uint64_t off;
        assert_int_equal(pb_fp__writer_add(w, &off, type, 0, p + 2, strlen(p + 2), 0644,
                                           type == 'L' ? strlen(extra) : 0, 0, zero,
                                           type == 'L' ? extra : NULL,
                                           type == 'L' ? strlen(extra) : 0, &err),
                         0);
        if (type == 'D')
            assert_int_equal(
                pb_fp__writer_patch_dir(w, off, 0, zero, pb_fp__writer_offset(w), &err), 0);
    }
    assert_int_equal(pb_fp__writer_finish(w, zero, 0, &err), 0);
    pb_fp__writer_free(w);
}

static void test_reader_bad_paths(void **state)
{
    char path[1200];
    snprintf(path, sizeof(path), "%s/crafted.manifest", g_root);
    const char *const bad[][2] = {
        {"F ../x", NULL}, {"F /abs", NULL}, {"F a//b", NULL}, {"F a/./b", NULL},
        {"F a/", NULL},   {"F .", NULL},    {"F b", "F a"},   {"F a", "F a"},
        {"F a/b", NULL},  {"F ..", NULL},   {"L l", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pb_error err = PB_ERROR_INIT;
        const char *entries[2] = {bad[i][0], bad[i][1]};
        craft(path, entries, entries[1] ? 2 : 1, i == 10 ? "" : "t");
        int rc = open_and_read(path, &err);
        if (rc != PB_ECORRUPT)
            print_error("case %zu (%s): rc %d %s\n", i, bad[i][0], rc, err.msg);
        assert_int_equal(rc, PB_ECORRUPT);
        assert_non_null(strstr(err.msg, "at byte"));
    }
    /* a well-formed manifest whose hashes lie: the root check catches it */
    pb_error err = PB_ERROR_INIT;
    const char *good[] = {"D a", "F b"};
    craft(path, good, 2, NULL);
    assert_int_equal(open_and_read(path, &err), PB_ECORRUPT);
    assert_non_null(strstr(err.msg, "hash"));
}

/* ---- comparison ---- */

typedef struct cmp_log {
    char text[8192];
} cmp_log;

static int on_cmp(pb_cmp_kind k, const pb_manifest_entry *home, const pb_manifest_entry *other,
                  int subtree, void *payload)
{
    cmp_log *l = payload;
    static const char *names[] = {"", "new", "changed", "unchanged", "only-home"};
    char line[600];
    snprintf(line, sizeof(line), "%s%s %s\n", names[k], subtree ? "(subtree)" : "",
             home ? home->path : other->path);
    strncat(l->text, line, sizeof(l->text) - strlen(l->text) - 1);
    return 0;
}

static int cancel_cmp(pb_cmp_kind k, const pb_manifest_entry *home, const pb_manifest_entry *other,
                      int subtree, void *payload)
{
    return 1;
}

static void test_compare(void **state)
{
    char h[1100], o[1100], mh[4200], mo[4200];
    snprintf(h, sizeof(h), "%s/home", g_root);
    snprintf(o, sizeof(o), "%s/other", g_root);
    put("home/Metadata/same/a", "1");
    put("home/Metadata/same/deep/b", "2");
    put("home/Metadata/mixed/keep", "k");
    put("home/Metadata/mixed/edit", "old");
    put("home/Metadata/mixed/gone", "g");
    put("home/Media/homeonly/x", "h");
    assert_int_equal(tu_sh("cp -a '%s' '%s'", h, o), 0);
    put("other/Metadata/mixed/edit", "new");
    put("other/Metadata/mixed/added", "a");
    put("other/Media/cloud/y", "c");
    assert_int_equal(tu_sh("rm -r '%s/Metadata/mixed/gone' '%s/Media/homeonly'", o, o), 0);
    age(h);
    age(o);
    pb_fingerprint_result r;
    fp_ok(&r, h, NULL);
    snprintf(mh, sizeof(mh), "%s", r.manifest_path);
    fp_ok(&r, o, NULL);
    snprintf(mo, sizeof(mo), "%s", r.manifest_path);

    pb_error err = PB_ERROR_INIT;
    pb_manifest *a = NULL, *b = NULL;
    cmp_log log = {""};
    pb_manifest_cmp_stats st;
    assert_int_equal(pb_manifest_open(&a, mh, &err), 0);
    assert_int_equal(pb_manifest_open(&b, mo, &err), 0);
    int rc = pb_manifest_compare(a, b, on_cmp, &log, &st, &err);
    if (rc)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_string_equal(log.text, "changed Media\n"
                                  "new Media/cloud\n"
                                  "new Media/cloud/y\n"
                                  "only-home Media/homeonly\n"
                                  "only-home Media/homeonly/x\n"
                                  "changed Metadata\n"
                                  "changed Metadata/mixed\n"
                                  "new Metadata/mixed/added\n"
                                  "changed Metadata/mixed/edit\n"
                                  "only-home Metadata/mixed/gone\n"
                                  "unchanged Metadata/mixed/keep\n"
                                  "unchanged(subtree) Metadata/same\n");
    assert_int_equal(st.skipped_subtrees, 1);
    assert_int_equal(st.new_entries, 3);
    assert_int_equal(st.only_home, 3);
    pb_manifest_free(a);
    pb_manifest_free(b);
    /* identical manifests: one step per top-level directory */
    assert_int_equal(pb_manifest_open(&a, mh, &err), 0);
    assert_int_equal(pb_manifest_open(&b, mh, &err), 0);
    assert_int_equal(pb_manifest_compare(a, b, NULL, NULL, &st, &err), 0);
    assert_int_equal(st.skipped_subtrees, 2);
    assert_int_equal(st.changed + st.new_entries + st.only_home, 0);
    pb_manifest_free(a);
    pb_manifest_free(b);
    /* cancellation */
    assert_int_equal(pb_manifest_open(&a, mh, &err), 0);
    assert_int_equal(pb_manifest_open(&b, mo, &err), 0);
    assert_int_equal(pb_manifest_compare(a, b, cancel_cmp, NULL, NULL, &err), PB_ECANCELLED);
    pb_manifest_free(a);
    pb_manifest_free(b);
}

static int cancel_progress(const pb_progress *p, void *payload)
{
    int *calls = payload;
    ++*calls;
    return strcmp(p->phase, "hash") == 0 && p->items_done >= 2;
}

static int count_progress(const pb_progress *p, void *payload)
{
    uint64_t *last = payload;
    if (strcmp(p->phase, "hash") == 0 || strcmp(p->phase, "done") == 0) {
        assert_true(p->bytes_done <= p->bytes_total);
        last[0] = p->bytes_done;
        last[1] = p->bytes_total;
    }
    return 0;
}

static void test_progress_cancel_state(void **state)
{
    char d[1100], m[1200];
    snprintf(d, sizeof(d), "%s/prog", g_root);
    for (int i = 0; i < 6; i++) {
        char rel[64];
        snprintf(rel, sizeof(rel), "prog/Media/f%d", i);
        put(rel, "0123456789");
    }
    assert_int_equal(tu_sh("head -c 3000000 /dev/zero > '%s'", at("prog/Media/big")), 0);
    age(d);
    pb_error err = PB_ERROR_INIT;
    pb_fingerprint_result r;
    pb_fingerprint_options o = PB_FINGERPRINT_OPTIONS_INIT;
    int calls = 0;
    o.progress = cancel_progress;
    o.payload = &calls;
    assert_int_equal(pb_fingerprint_run(&r, d, &o, &err), PB_ECANCELLED);
    /* nothing was committed: the next run hashes everything, with exact totals */
    uint64_t last[2] = {0, 0};
    o.progress = count_progress;
    o.payload = last;
    assert_int_equal(pb_fingerprint_run(&r, d, &o, &err), 0);
    assert_int_equal(r.hashed, 7);
    assert_int_equal(last[1], 3000060);
    assert_int_equal(last[0], last[1]);
    /* the default state dir is beside D, 0700; one inside D is refused */
    char want[1200];
    struct stat st;
    snprintf(want, sizeof(want), "%s.plexburst", d);
    assert_string_equal(r.state_dir, want);
    assert_int_equal(stat(want, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    char sd[1200];
    assert_int_equal(pb_state_dir_default(sd, sizeof(sd), d, &err), 0);
    assert_string_equal(sd, want);
    snprintf(m, sizeof(m), "%s/Media/state", d);
    pb_error e2 = PB_ERROR_INIT;
    o.progress = NULL;
    o.state_dir = m;
    assert_int_equal(pb_fingerprint_run(&r, d, &o, &e2), PB_EINVALID);
    assert_int_equal(access(m, F_OK), -1); /* refused before anything was created */
    pb_error e3 = PB_ERROR_INIT;
    assert_int_equal(pb_fingerprint_run(&r, "/nonexistent/plex", NULL, &e3), PB_ENOTFOUND);
    pb_error e4 = PB_ERROR_INIT;
    assert_int_equal(pb_state_dir_default(sd, sizeof(sd), "/", &e4), PB_EINVALID);
}

#ifdef PB_FP_INTEGRATION
/* ---- integration: a data directory written by the fixture tool ---- */

static void test_mkplex(void **state)
{
    const char *mkplex = tu_build_path("mkplex");
    if (access(mkplex, X_OK) != 0)
        tu_skip("mkplex is not built (fixtures/)");
    char d[1100], d2[1100];
    snprintf(d, sizeof(d), "%s/plex", g_root);
    snprintf(d2, sizeof(d2), "%s/plex-copy", g_root);
    if (tu_sh("'%s' init --dir '%s' --scale tiny --seed 7 >/dev/null 2>&1", mkplex, d) != 0)
        tu_skip("mkplex init failed (fixture tool not ready)");
    age(d);
    pb_fingerprint_result r, r2;
    fp_ok(&r, d, NULL);
    print_message("mkplex tiny: %llu files, %llu dirs, %llu bytes, %llu hard-link groups, "
                  "%llu excluded\n",
                  (unsigned long long)r.files, (unsigned long long)r.dirs,
                  (unsigned long long)r.bytes, (unsigned long long)r.hard_link_groups,
                  (unsigned long long)r.excluded);
    assert_true(r.files > 0);
    char *txt = dump(r.manifest_path);
    /* no DB, journal or backup of it is ever in a manifest */
    for (char *line = txt; *line;) {
        char *eol = strchr(line, '\n');
        *eol = '\0';
        assert_null(strstr(line, ".db "));
        assert_null(strstr(line, ".db-"));
        assert_null(strstr(line, "Preferences.xml"));
        line = eol + 1;
    }
    free(txt);
    fp_ok(&r2, d, NULL);
    assert_int_equal(r2.hashed, 0);
    assert_memory_equal(r.root, r2.root, PB_HASH_LEN);
    /* a copy compares equal in one step per top-level directory */
    assert_int_equal(tu_sh("cp -a '%s' '%s'", d, d2), 0);
    fp_ok(&r2, d2, NULL);
    assert_memory_equal(r.root, r2.root, PB_HASH_LEN);
    pb_error err = PB_ERROR_INIT;
    pb_manifest *a = NULL, *b = NULL;
    pb_manifest_cmp_stats st;
    assert_int_equal(pb_manifest_open(&a, r.manifest_path, &err), 0);
    assert_int_equal(pb_manifest_open(&b, r2.manifest_path, &err), 0);
    assert_int_equal(pb_manifest_compare(a, b, NULL, NULL, &st, &err), 0);
    assert_int_equal(st.changed + st.new_entries + st.only_home, 0);
    assert_true(st.skipped_subtrees >= 1 && st.skipped_subtrees <= 3);
    pb_manifest_free(a);
    pb_manifest_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_mkplex)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
#else
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule),           cmocka_unit_test(test_exclusions_tree),
        cmocka_unit_test(test_links_specials), cmocka_unit_test(test_cache),
        cmocka_unit_test(test_merkle_path),    cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_reader_damage),  cmocka_unit_test(test_reader_bad_paths),
        cmocka_unit_test(test_compare),        cmocka_unit_test(test_progress_cancel_state),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
#endif

/*
 * test_bundle.c: unit tests of the bundle format (engine/bundle/bundle_read.c): writer/reader round
 * trip, pb_bundle_verify with changeset extraction, the path rules, and hostile input: truncation
 * at every byte, a flipped bit at every byte, crafted records with valid checksums (traversal,
 * absolute and stage paths, paths outside the synced part, duplicates, bad order, hard links to
 * later paths, modes, oversized lengths, zstd output beyond the declared size, trailing bytes),
 * symlinked components in the data dir, and a random mutation loop. Every failure must be one
 * line naming the record index and byte offset (or the header/trailer), never a crash.
 * Also writes tests/fuzz seeds when PB_WRITE_FUZZ_SEEDS names a directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "bundle_int.h"
#include "plexburst/sqldiff.h"
#include "testutil.h"

/* ---- memory streams ---- */

typedef struct membuf {
    uint8_t *p;
    size_t n, cap;
} membuf;

static int mem_out(void *payload, const void *data, size_t n, pb_error *err)
{
    membuf *m = payload;
    (void)err;
    if (m->n + n > m->cap) {
        size_t cap = (m->cap ? m->cap * 2 : 4096);
        while (cap < m->n + n)
            cap *= 2;
        m->p = realloc(m->p, cap);
        m->cap = cap;
    }
    memcpy(m->p + m->n, data, n);
    m->n += n;
    return 0;
}

static void hash16(uint8_t out[16], const void *p, size_t n)
{
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits(p, n));
    memcpy(out, c.digest, 16);
}

/* A small valid changeset: base -> target of a two-table DB. */
static membuf g_cs;

/* scratch dirs, removed at the end */
static char g_dirs[4][4200];
static int g_ndirs;

static const char *scratch(const char *tag)
{
    const char *d = tu_tmpdir(tag);
    if (g_ndirs < 4)
        snprintf(g_dirs[g_ndirs++], sizeof(g_dirs[0]), "%s", d);
    return d;
}

static int cs_out(void *payload, const void *data, size_t n, pb_error *err)
{
    return mem_out(payload, data, n, err);
}

static void make_changeset(void)
{
    const char *dir = scratch("bundle-cs");
    char a[4200], b[4200];
    sqlite3 *db;
    snprintf(a, sizeof(a), "%s/a.db", dir);
    snprintf(b, sizeof(b), "%s/b.db", dir);
    assert_int_equal(sqlite3_open(a, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
                                  "INSERT INTO t VALUES(1,'one'),(2,'two'),(3,'three');",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(sqlite3_open(b, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
                                  "INSERT INTO t VALUES(1,'one'),(2,'TWO'),(4,'four');",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    pb_error e = PB_ERROR_INIT;
    assert_int_equal(pb_sqldiff_diff(NULL, a, b, NULL, cs_out, &g_cs, &e), 0);
    assert_true(g_cs.n > 10);
}

/* ---- building bundles ---- */

static pb_bundle_header g_head;

static void init_header(void)
{
    memset(&g_head, 0, sizeof(g_head));
    g_head.version = 1;
    for (int i = 0; i < 16; i++) {
        g_head.base_main[i] = (uint8_t)i;
        g_head.target_main[i] = (uint8_t)(0x80 + i);
    }
    g_head.created_ns = 1700000000000000000LL;
    snprintf(g_head.creator, sizeof(g_head.creator), "test_bundle");
}

static void rec_file(pb_bundle_rec *r, int type, const char *path, const void *content, size_t n)
{
    memset(r, 0, sizeof(*r));
    r->type = type;
    snprintf(r->path, sizeof(r->path), "%s", path);
    r->path_len = strlen(path);
    r->mode = 0644;
    r->mtime_ns = 1600000000123456789LL;
    r->size = n;
    hash16(r->hash, content, n);
}

static void put_rec(pb_bundle_writer *w, const pb_bundle_rec *r, const void *data, size_t n)
{
    pb_error e = PB_ERROR_INIT;
    assert_int_equal(pb_bundle__writer_begin(w, r, &e), 0);
    if (r->type == PB_REC_LINK)
        return;
    /* odd pieces, to cross chunk boundaries */
    size_t off = 0, piece = 7;
    while (off < n) {
        size_t k = n - off < piece ? n - off : piece;
        assert_int_equal(pb_bundle__writer_data(w, (const uint8_t *)data + off, k, &e), 0);
        off += k;
        piece = piece * 3 + 1;
    }
    assert_int_equal(pb_bundle__writer_end(w, &e), 0);
}

static uint8_t *g_big; /* incompressible content of a multi-chunk record */
#define BIG_SIZE (700 * 1024)

/* The standard bundle: C, N small, N big, D, H, N empty. */
static membuf build_standard(int with_big)
{
    membuf m = {0};
    pb_bundle_writer *w = NULL;
    pb_bundle_rec *r = calloc(1, sizeof(*r));
    pb_error e = PB_ERROR_INIT;
    const char *small = "small content of a poster";
    const char *delta = "not really a delta, the reader does not interpret it";

    assert_int_equal(pb_bundle__writer_new(&w, &g_head, 3, mem_out, &m, &e), 0);
    memset(r, 0, sizeof(*r));
    r->type = PB_REC_MAIN_CS;
    r->size = g_cs.n;
    hash16(r->hash, g_cs.p, g_cs.n);
    put_rec(w, r, g_cs.p, g_cs.n);
    rec_file(r, PB_REC_NEW, "Media/localhost/a/b.bundle/Contents/Indexes/index-sd.bif", small,
             strlen(small));
    put_rec(w, r, small, strlen(small));
    if (with_big) {
        rec_file(r, PB_REC_NEW, "Metadata/Movies/1/big.bundle/Contents/_combined/posters/p1", g_big,
                 BIG_SIZE);
        put_rec(w, r, g_big, BIG_SIZE);
    }
    rec_file(r, PB_REC_DELTA, "Metadata/Movies/2/x.bundle/Contents/_combined/Info.xml", small,
             strlen(small));
    r->basis[0] = 1;
    put_rec(w, r, delta, strlen(delta));
    rec_file(r, PB_REC_LINK, "Metadata/Movies/2/x.bundle/Contents/tv.plex.agents.movie/Info.xml",
             small, strlen(small));
    snprintf(r->link, sizeof(r->link), "Metadata/Movies/2/x.bundle/Contents/_combined/Info.xml");
    r->link_len = strlen(r->link);
    put_rec(w, r, NULL, 0);
    rec_file(r, PB_REC_NEW, "Plug-in Support/Data/com.plexapp.agents.none/empty", "", 0);
    put_rec(w, r, "", 0);
    assert_int_equal(pb_bundle__writer_finish(w, &e), 0);
    pb_bundle__writer_free(w);
    free(r);
    return m;
}

/* Reads a whole bundle from memory, draining payloads. Returns 0 or the error code. */
static int read_all(const uint8_t *p, size_t n, size_t step, const pb_bundle_limits *lim,
                    pb_error *e, int *nrec)
{
    tu_memin in = {p, n, 0, step};
    pb_bundle_reader *r = NULL;
    const pb_bundle_rec *rec;
    char buf[5000];
    size_t got;
    int rc, count = 0;
    if ((rc = pb_bundle__reader_new(&r, tu_mem_in, &in, lim, e)) < 0)
        return rc;
    while ((rc = pb_bundle__reader_next(r, &rec, e)) == 1) {
        count++;
        do {
            if ((rc = pb_bundle__reader_read(r, buf, sizeof(buf), &got, e)) < 0)
                goto done;
        } while (got);
    }
done:
    pb_bundle__reader_free(r);
    if (nrec)
        *nrec = count;
    return rc;
}

static int group_setup(void **state)
{
    (void)state;
    make_changeset();
    init_header();
    g_big = malloc(BIG_SIZE);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < BIG_SIZE; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        g_big[i] = (uint8_t)x;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    free(g_big);
    free(g_cs.p);
    for (int i = 0; i < g_ndirs; i++)
        tu_sh("rm -rf '%s'", g_dirs[i]);
    return 0;
}

/* ---- tests ---- */

static void test_roundtrip(void **state)
{
    (void)state;
    membuf m = build_standard(1);
    tu_memin in = {m.p, m.n, 0, 0};
    pb_bundle_reader *r = NULL;
    const pb_bundle_rec *rec;
    pb_error e = PB_ERROR_INIT;
    uint8_t *buf = malloc(BIG_SIZE + 16);
    size_t got, total;

    assert_int_equal(pb_bundle__reader_new(&r, tu_mem_in, &in, NULL, &e), 0);
    const pb_bundle_header *h = pb_bundle__reader_header(r);
    assert_memory_equal(h->base_main, g_head.base_main, 16);
    assert_memory_equal(h->target_main, g_head.target_main, 16);
    assert_string_equal(h->creator, "test_bundle");
    int types[6] = {0}, n = 0;
    while (pb_bundle__reader_next(r, &rec, &e) == 1) {
        types[n++] = rec->type;
        total = 0;
        do {
            assert_int_equal(pb_bundle__reader_read(r, buf + total, 4096, &got, &e), 0);
            total += got;
        } while (got);
        if (rec->type == PB_REC_MAIN_CS) {
            assert_int_equal(total, g_cs.n);
            assert_memory_equal(buf, g_cs.p, g_cs.n);
        }
        if (rec->type == PB_REC_NEW && rec->size == BIG_SIZE) {
            assert_int_equal(total, BIG_SIZE);
            assert_memory_equal(buf, g_big, BIG_SIZE);
            assert_true(rec->payload > BIG_SIZE); /* incompressible, several chunks */
        }
        if (rec->type == PB_REC_LINK)
            assert_string_equal(rec->link,
                                "Metadata/Movies/2/x.bundle/Contents/_combined/Info.xml");
        if (rec->type == PB_REC_NEW && rec->size)
            assert_int_equal(rec->mode, 0644);
    }
    assert_int_equal(n, 6);
    assert_int_equal(types[0], 'C');
    assert_int_equal(types[4], 'H');
    assert_non_null(pb_bundle__reader_checksum(r));
    pb_bundle__reader_free(r);

    /* the same through tiny reads */
    int nrec = 0;
    assert_int_equal(read_all(m.p, m.n, 1, NULL, &e, &nrec), 0);
    assert_int_equal(nrec, 6);

    /* pb_bundle_verify over a file, extracting the changeset */
    const char *dir = scratch("bundle-rt");
    char path[4200], cs[4200];
    snprintf(path, sizeof(path), "%s/b.bundle", dir);
    snprintf(cs, sizeof(cs), "%s/main.cs", dir);
    FILE *f = fopen(path, "wb");
    fwrite(m.p, 1, m.n, f);
    fclose(f);
    pb_bundle_info info;
    pb_bundle_verify_options vo = {PB_BUNDLE_VERIFY_OPTIONS_VERSION, {0, 0, 0}, cs, NULL, NULL};
    assert_int_equal(pb_bundle_verify(&info, path, &vo, &e), 0);
    assert_int_equal(info.records, 6);
    assert_int_equal(info.files_new, 3);
    assert_int_equal(info.files_delta, 1);
    assert_int_equal(info.files_link, 1);
    assert_int_equal(info.bytes, m.n);
    assert_int_equal(info.cs_main_bytes, g_cs.n);
    f = fopen(cs, "rb");
    assert_non_null(f);
    total = fread(buf, 1, BIG_SIZE, f);
    fclose(f);
    assert_int_equal(total, g_cs.n);
    assert_memory_equal(buf, g_cs.p, g_cs.n);
    free(buf);
    free(m.p);
}

static void test_path_rules(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        int ok;
    } cases[] = {
        {"Metadata/Movies/a/b.bundle/Contents/_combined/posters/x", 1},
        {"Media/localhost/0/abc.bundle/Contents/Indexes/index-sd.bif", 1},
        {"Plug-in Support/Data/com.plexapp.agents.none/x", 1},
        {"Metadata/Movies/caf\xc3\xa9 file.jpg", 1},
        {"", 0},
        {"/etc/passwd", 0},
        {"Metadata/../../etc/passwd", 0},
        {"Metadata/./x", 0},
        {"Metadata//x", 0},
        {"Metadata/x/", 0},
        {"Metadata/..", 0},
        {"Metadata\\..\\x", 0},
        {"Metadata/a\nb", 0},
        {"Metadata/a\x7f", 0},
        {"Metadata/.pb-stage-1234-5", 0},
        {"Preferences.xml", 0},
        {"Cache/PhotoTranscoder/x.jpg", 0},
        {"Logs/Plex Media Server.log", 0},
        {"Plug-in Support/Databases/com.plexapp.plugins.library.db", 0},
        {"Plug-in Support/Databases/com.plexapp.plugins.library.db-wal", 0},
        {"Plug-in Support/Databases/com.plexapp.plugins.library.db-2024-01-01", 0},
        {"Plug-in Support/Databases/plexburst-backups/x", 0},
        {"Plug-in Support/Preferences/x-journal", 0},
        {"Metadata", 1},
    };
    char why[300];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = pb_bundle__path_check(cases[i].path, strlen(cases[i].path), why, sizeof(why));
        if ((rc == 0) != cases[i].ok)
            fail_msg("path '%s': expected %s, got %d (%s)", cases[i].path,
                     cases[i].ok ? "ok" : "unsafe", rc, why);
        if (!cases[i].ok)
            assert_int_equal(rc, PB_EUNSAFE);
    }
    /* a NUL inside the length-delimited path */
    assert_int_equal(pb_bundle__path_check("Metadata/a\0b", 12, why, sizeof(why)), PB_EUNSAFE);
    /* too long */
    char *longp = malloc(5000);
    memset(longp, 'a', 5000);
    memcpy(longp, "Metadata/", 9);
    assert_int_equal(pb_bundle__path_check(longp, 5000, why, sizeof(why)), PB_EUNSAFE);
    for (int i = 109; i < 5000; i += 100)
        longp[i] = '/';
    assert_int_equal(pb_bundle__path_check(longp, 4096, why, sizeof(why)), 0);
    memset(longp + 9, 'b', 300); /* a 300-byte component */
    assert_int_equal(pb_bundle__path_check(longp, 4096, why, sizeof(why)), PB_EUNSAFE);
    free(longp);
}

static void check_msg(const pb_error *e, int rc)
{
    if (rc != PB_ECORRUPT && rc != PB_EUNSAFE)
        fail_msg("unexpected code %d: %s", rc, e->msg);
    if (strncmp(e->msg, "bundle: ", 8) != 0 || strchr(e->msg, '\n') || !strstr(e->msg, "offset "))
        fail_msg("bad message: '%s'", e->msg);
}

static void test_truncation_every_byte(void **state)
{
    (void)state;
    membuf m = build_standard(0);
    for (size_t n = 0; n < m.n; n++) {
        pb_error e = PB_ERROR_INIT;
        int rc = read_all(m.p, n, n % 3 ? 0 : 5, NULL, &e, NULL);
        if (rc == 0)
            fail_msg("truncated to %zu of %zu bytes, the reader accepted it", n, m.n);
        check_msg(&e, rc);
    }
    /* trailing bytes */
    membuf t = {0};
    mem_out(&t, m.p, m.n, NULL);
    mem_out(&t, "x", 1, NULL);
    pb_error e = PB_ERROR_INIT;
    int rc = read_all(t.p, t.n, 0, NULL, &e, NULL);
    assert_int_equal(rc, PB_ECORRUPT);
    assert_non_null(strstr(e.msg, "trailing bytes"));
    free(t.p);
    free(m.p);
}

static void test_flip_every_byte(void **state)
{
    (void)state;
    membuf m = build_standard(0);
    for (size_t i = 0; i < m.n; i++) {
        for (int bit = 0; bit < 8; bit += 5) {
            pb_error e = PB_ERROR_INIT;
            m.p[i] ^= (uint8_t)(1u << bit);
            int rc = read_all(m.p, m.n, 0, NULL, &e, NULL);
            m.p[i] ^= (uint8_t)(1u << bit);
            if (rc == 0)
                fail_msg("bit %d of byte %zu flipped, the reader accepted it", bit, i);
            check_msg(&e, rc);
        }
    }
    free(m.p);
}

/* One crafted single-record bundle (valid checksums) with a given file record. */
static int crafted(const pb_bundle_rec *r, const void *data, size_t n, pb_error *e)
{
    membuf m = {0};
    pb_bundle_writer *w = NULL;
    pb_error we = PB_ERROR_INIT;
    assert_int_equal(pb_bundle__writer_new(&w, &g_head, 3, mem_out, &m, &we), 0);
    put_rec(w, r, data, n);
    assert_int_equal(pb_bundle__writer_finish(w, &we), 0);
    pb_bundle__writer_free(w);
    int rc = read_all(m.p, m.n, 0, NULL, e, NULL);
    free(m.p);
    return rc;
}

static void test_crafted_records_all(void **state)
{
    (void)state;
    pb_error e = PB_ERROR_INIT;
    pb_bundle_rec *r = calloc(1, sizeof(*r));
    int rc;
#define EXPECT(code, needle)                                                                       \
    do {                                                                                           \
        if (rc != (code) || !strstr(e.msg, needle) || !strstr(e.msg, "record "))                   \
            fail_msg("line %d: got %d '%s'", __LINE__, rc, e.msg);                                 \
        pb_error_clear(&e);                                                                        \
    } while (0)
    static const struct {
        const char *path;
        const char *needle;
    } bad[] = {
        {"Metadata/../../../etc/passwd", "'..' component"},
        {"/etc/passwd", "absolute path"},
        {"Metadata\\..\\..\\x", "backslash"},
        {"Metadata/.pb-stage-abcd-1", "stage-file"},
        {"Preferences.xml", "outside the synced part"},
        {"Plug-in Support/Databases/com.plexapp.plugins.library.db", "outside the synced part"},
        {"Metadata//x", "empty path component"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rec_file(r, PB_REC_NEW, bad[i].path, "abc", 3);
        rc = crafted(r, "abc", 3, &e);
        EXPECT(PB_EUNSAFE, bad[i].needle);
    }
    /* NUL inside the path */
    rec_file(r, PB_REC_NEW, "Metadata/a", "abc", 3);
    memcpy(r->path, "Metadata/a\0b", 12);
    r->path_len = 12;
    rc = crafted(r, "abc", 3, &e);
    EXPECT(PB_EUNSAFE, "NUL byte");
    /* mode beyond 0777 */
    rec_file(r, PB_REC_NEW, "Metadata/a", "abc", 3);
    r->mode = 04755;
    rc = crafted(r, "abc", 3, &e);
    EXPECT(PB_EUNSAFE, "mode");
    /* hard link to a later path, and to a path outside */
    rec_file(r, PB_REC_LINK, "Metadata/a", "abc", 3);
    snprintf(r->link, sizeof(r->link), "Metadata/b");
    r->link_len = strlen(r->link);
    rc = crafted(r, NULL, 0, &e);
    EXPECT(PB_ECORRUPT, "later path");
    snprintf(r->link, sizeof(r->link), "../outside");
    r->link_len = strlen(r->link);
    rc = crafted(r, NULL, 0, &e);
    EXPECT(PB_EUNSAFE, "link target");

    /* duplicates and order, and changesets after files */
    {
        membuf m = {0};
        pb_bundle_writer *w = NULL;
        assert_int_equal(pb_bundle__writer_new(&w, &g_head, 3, mem_out, &m, &e), 0);
        rec_file(r, PB_REC_NEW, "Metadata/b", "abc", 3);
        put_rec(w, r, "abc", 3);
        put_rec(w, r, "abc", 3);
        assert_int_equal(pb_bundle__writer_finish(w, &e), 0);
        pb_bundle__writer_free(w);
        rc = read_all(m.p, m.n, 0, NULL, &e, NULL);
        EXPECT(PB_ECORRUPT, "out of order or duplicated");
        free(m.p);
        memset(&m, 0, sizeof(m));
        assert_int_equal(pb_bundle__writer_new(&w, &g_head, 3, mem_out, &m, &e), 0);
        put_rec(w, r, "abc", 3);
        memset(r, 0, sizeof(*r));
        r->type = PB_REC_MAIN_CS;
        r->size = g_cs.n;
        hash16(r->hash, g_cs.p, g_cs.n);
        put_rec(w, r, g_cs.p, g_cs.n);
        assert_int_equal(pb_bundle__writer_finish(w, &e), 0);
        pb_bundle__writer_free(w);
        rc = read_all(m.p, m.n, 0, NULL, &e, NULL);
        EXPECT(PB_ECORRUPT, "changeset record out of order");
        free(m.p);
    }

    /* a payload bigger than the configured maximum */
    {
        membuf m = build_standard(1);
        pb_bundle_limits lim = {64 * 1024, 0, 0};
        rc = read_all(m.p, m.n, 0, &lim, &e, NULL);
        EXPECT(PB_ECORRUPT, "payload exceeds the maximum");
        pb_bundle_limits lim2 = {0, 0, 3};
        rc = read_all(m.p, m.n, 0, &lim2, &e, NULL);
        EXPECT(PB_ECORRUPT, "more than 3 records");
        free(m.p);
    }

    /* hand-made lengths: path_len 5000, chunk of 2 MiB, a declared size smaller than the
     * content (zstd output beyond the declared size), an unknown type */
    {
        membuf m = build_standard(0);
        size_t first = PB_BUNDLE_HEADER_FIXED + strlen(g_head.creator) + 16;
        uint8_t save[80];
        memcpy(save, m.p + first, sizeof(save));

        m.p[first + 2] = 0x88; /* path_len = 0x1388 = 5000 */
        m.p[first + 3] = 0x13;
        rc = read_all(m.p, m.n, 0, NULL, &e, NULL);
        EXPECT(PB_EUNSAFE, "longer than 4096");
        memcpy(m.p + first, save, sizeof(save));

        m.p[first] = 'Q';
        rc = read_all(m.p, m.n, 0, NULL, &e, NULL);
        EXPECT(PB_ECORRUPT, "unknown record type");
        memcpy(m.p + first, save, sizeof(save));

        m.p[first + 1] = 1;
        rc = read_all(m.p, m.n, 0, NULL, &e, NULL);
        EXPECT(PB_ECORRUPT, "reserved");
        memcpy(m.p + first, save, sizeof(save));

        /* the C record's first chunk length (after the 64-byte header, no paths) */
        m.p[first + 64 + 2] = 0x20; /* 0x00200000 = 2 MiB */
        rc = read_all(m.p, m.n, 0, NULL, &e, NULL);
        EXPECT(PB_ECORRUPT, "chunk of");
        memcpy(m.p + first, save, sizeof(save));

        /* a declared size beyond the limit */
        uint8_t huge[8] = {0, 0, 0, 0, 0, 0, 4, 0}; /* 2^50 */
        memcpy(m.p + first + 24, huge, 8);
        rc = read_all(m.p, m.n, 0, NULL, &e, NULL);
        EXPECT(PB_ECORRUPT, "declared size");
        memcpy(m.p + first, save, sizeof(save));

        /* declared size 5 for a changeset of more bytes */
        uint8_t sz[8] = {5, 0, 0, 0, 0, 0, 0, 0};
        memcpy(m.p + first + 24, sz, 8);
        rc = read_all(m.p, m.n, 0, NULL, &e, NULL);
        EXPECT(PB_ECORRUPT, "beyond its bound");
        memcpy(m.p + first, save, sizeof(save));

        /* header: bad magic, version, flags */
        m.p[0] = 'X';
        rc = read_all(m.p, m.n, 0, NULL, &e, NULL);
        assert_int_equal(rc, PB_ECORRUPT);
        assert_non_null(strstr(e.msg, "bad magic"));
        pb_error_clear(&e);
        m.p[0] = 'P';
        m.p[8] = 2;
        rc = read_all(m.p, m.n, 0, NULL, &e, NULL);
        assert_int_equal(rc, PB_ECORRUPT);
        assert_non_null(strstr(e.msg, "version 2"));
        pb_error_clear(&e);
        m.p[8] = 1;
        m.p[13] = 1;
        rc = read_all(m.p, m.n, 0, NULL, &e, NULL);
        assert_int_equal(rc, PB_ECORRUPT);
        assert_non_null(strstr(e.msg, "flags"));
        pb_error_clear(&e);
        free(m.p);
    }
    free(r);
#undef EXPECT
}

static void test_verify_tree(void **state)
{
    (void)state;
    const char *dir = scratch("bundle-tree");
    char d[4200], out[4200], path[4200];
    snprintf(d, sizeof(d), "%s/D", dir);
    snprintf(out, sizeof(out), "%s/outside", dir);
    assert_int_equal(tu_sh("mkdir -p '%s/Metadata/Movies' '%s'", d, out), 0);
    assert_int_equal(tu_sh("ln -s '%s' '%s/Metadata/Movies/evil'", out, d), 0);
    assert_int_equal(tu_sh("mkdir -p '%s/Metadata/Movies/dir.jpg'", d), 0);

    pb_bundle_rec *r = calloc(1, sizeof(*r));
    pb_error e = PB_ERROR_INIT;
    pb_bundle_info info;
    pb_bundle_verify_options vo = {PB_BUNDLE_VERIFY_OPTIONS_VERSION, {0, 0, 0}, NULL, NULL, d};
    const char *paths[2] = {"Metadata/Movies/evil/pwn.jpg", "Metadata/Movies/dir.jpg"};
    int codes[2] = {PB_EUNSAFE, PB_ECONFLICT};
    for (int i = 0; i < 2; i++) {
        membuf m = {0};
        pb_bundle_writer *w = NULL;
        assert_int_equal(pb_bundle__writer_new(&w, &g_head, 3, mem_out, &m, &e), 0);
        rec_file(r, PB_REC_NEW, paths[i], "abc", 3);
        put_rec(w, r, "abc", 3);
        assert_int_equal(pb_bundle__writer_finish(w, &e), 0);
        pb_bundle__writer_free(w);
        snprintf(path, sizeof(path), "%s/b%d.bundle", dir, i);
        FILE *f = fopen(path, "wb");
        fwrite(m.p, 1, m.n, f);
        fclose(f);
        free(m.p);
        int rc = pb_bundle_verify(&info, path, &vo, &e);
        if (rc != codes[i] || !strstr(e.msg, "record 0 at offset"))
            fail_msg("%s: got %d '%s'", paths[i], rc, e.msg);
        pb_error_clear(&e);
        /* without the data dir the bundle itself is fine */
        assert_int_equal(pb_bundle_verify(&info, path, NULL, &e), 0);
    }
    char listing[256] = "";
    tu_sh_out(listing, sizeof(listing), "ls -A '%s'", out);
    assert_string_equal(listing, "");
    free(r);
}

static void test_random_mutations(void **state)
{
    (void)state;
    membuf m = build_standard(0);
    uint8_t *c = malloc(m.n + 64);
    uint64_t x = 12345;
    for (int it = 0; it < 3000; it++) {
        memcpy(c, m.p, m.n);
        size_t n = m.n;
        int k = 1 + (int)(x % 4);
        for (int i = 0; i < k; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c[x % n] = (uint8_t)(x >> 24);
        }
        if (x % 5 == 0)
            n = (size_t)(x >> 8) % n;
        pb_error e = PB_ERROR_INIT;
        int rc = read_all(c, n, 0, NULL, &e, NULL);
        assert_true(rc < 0);
        check_msg(&e, rc);
    }
    free(c);
    free(m.p);
}

/* Seeds for the fuzz target (tests/fuzz): PB_WRITE_FUZZ_SEEDS=dir. */
static void test_write_seeds(void **state)
{
    (void)state;
    const char *dir = getenv("PB_WRITE_FUZZ_SEEDS");
    if (!dir || !*dir)
        skip();
    membuf m = build_standard(0);
    char path[4200];
    snprintf(path, sizeof(path), "%s/standard.bundle", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(m.p, 1, m.n, f);
    fclose(f);
    free(m.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_path_rules),
        cmocka_unit_test(test_truncation_every_byte),
        cmocka_unit_test(test_flip_every_byte),
        cmocka_unit_test(test_crafted_records_all),
        cmocka_unit_test(test_verify_tree),
        cmocka_unit_test(test_random_mutations),
        cmocka_unit_test(test_write_seeds),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

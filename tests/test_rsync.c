/*
 * test_rsync.c: librsync jobs of transfer/rsync.c: sig/delta/patch round trips over sizes around
 * the edges, a 5 MB file with small edits (delta much smaller than the file), an empty basis,
 * the block/strong length plan, job-driver buffer sweeps down to 1-byte buffers, and corrupt or
 * truncated signatures and deltas refused with PB_ECORRUPT.
 */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "rsync.h"
#include "testutil.h"

/* ---- in-memory streams ---- */

typedef struct mem {
    unsigned char *p;
    size_t len, cap, pos;
    size_t chunk; /* reader: max bytes per read (0 = any) */
} mem;

static int mem_write(void *payload, const void *buf, size_t len, pb_error *err)
{
    mem *m = payload;
    if (m->len + len > m->cap) {
        m->cap = (m->len + len) * 2 + 64;
        m->p = realloc(m->p, m->cap);
        assert_non_null(m->p);
    }
    memcpy(m->p + m->len, buf, len);
    m->len += len;
    return 0;
}

static int mem_read(void *payload, void *buf, size_t cap, size_t *got, pb_error *err)
{
    mem *m = payload;
    size_t n = m->len - m->pos;
    if (n > cap)
        n = cap;
    if (m->chunk && n > m->chunk)
        n = m->chunk;
    memcpy(buf, m->p + m->pos, n);
    m->pos += n;
    *got = n;
    return 0;
}

static void mem_free(mem *m)
{
    free(m->p);
    memset(m, 0, sizeof(*m));
}

static unsigned char *gen(size_t n, unsigned seed)
{
    unsigned char *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (unsigned char)(seed >> 16);
    }
    return p;
}

static int memfile(const void *data, size_t n)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    int fd = dup(fileno(f));
    fclose(f);
    assert_true(write(fd, data, n) == (ssize_t)n);
    lseek(fd, 0, SEEK_SET);
    return fd;
}

/* sig(basis) → delta(new) → patch(basis) and compare with new; returns the delta size. */
static size_t round_trip(const unsigned char *old, size_t nold, const unsigned char *nw,
                         size_t nnew, const pb_rsync_options *opts, size_t sig_chunk,
                         size_t *sig_size)
{
    pb_error err = PB_ERROR_INIT;
    mem sig = {0}, delta = {0}, out = {0};
    int ofd = memfile(old, nold), nfd = memfile(nw, nnew), rfd;
    XXH128_canonical_t want;
    pb_rsync_options po = opts ? *opts : (pb_rsync_options)PB_RSYNC_OPTIONS_INIT;

    assert_int_equal(pb_rsync_sig(ofd, mem_write, &sig, opts, NULL, &err), 0);
    sig.chunk = sig_chunk;
    assert_int_equal(pb_rsync_delta(mem_read, &sig, nfd, mem_write, &delta, opts, NULL, &err), 0);
    XXH128_canonicalFromHash(&want, XXH3_128bits(nw, nnew));
    po.check = want.digest;
    delta.chunk = sig_chunk;
    FILE *rf = tmpfile();
    rfd = fileno(rf);
    if (err.code)
        print_error("%s\n", err.msg);
    assert_int_equal(pb_rsync_patch(ofd, mem_read, &delta, rfd, &po, NULL, &err), 0);
    lseek(rfd, 0, SEEK_SET);
    out.cap = nnew + 1;
    out.p = malloc(out.cap);
    out.len = (size_t)read(rfd, out.p, out.cap);
    assert_int_equal(out.len, nnew);
    assert_memory_equal(out.p, nw, nnew);
    size_t dlen = delta.len;
    if (sig_size)
        *sig_size = sig.len;
    fclose(rf);
    close(ofd);
    close(nfd);
    mem_free(&sig);
    mem_free(&delta);
    mem_free(&out);
    return dlen;
}

static void test_sizes(void **state)
{
    size_t sizes[] = {0, 1, 2, 3, 7, 15, 100, 10000, 200000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        for (size_t j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++) {
            unsigned char *a = gen(sizes[i], 1), *b = gen(sizes[j], 2);
            round_trip(a, sizes[i], b, sizes[j], NULL, 0, NULL);
            /* identical and prefix-sharing versions too */
            round_trip(a, sizes[i], a, sizes[i], NULL, 0, NULL);
            free(a);
            free(b);
        }
}

static void test_small_edits(void **state)
{
    size_t n = 5u << 20, sig_size = 0;
    unsigned char *old = gen(n, 7), *nw = malloc(n + 100);
    memcpy(nw, old, n);
    /* three in-place edits, one insertion of 100 bytes, one truncation of the tail */
    memset(nw + 1000, 'x', 64);
    memset(nw + 2500000, 'y', 300);
    memmove(nw + 4000100, nw + 4000000, n - 4000000);
    memset(nw + 4000000, 'z', 100);
    size_t nnew = n + 100 - 5000;
    size_t d = round_trip(old, n, nw, nnew, NULL, 0, &sig_size);
    size_t bl;
    pb_rsync_plan(NULL, &bl, NULL, n);
    print_message("5 MB, 4 edits: block %zu, sig %zu B, delta %zu B\n", bl, sig_size, d);
    assert_true(d < 5 * bl + 2000); /* each edit costs about one block of literals */
    assert_true(d < n / 100);
    assert_true(sig_size < n / 100);
    free(old);
    free(nw);
}

static void test_empty_basis(void **state)
{
    unsigned char *b = gen(300000, 3);
    size_t d = round_trip(NULL, 0, b, 300000, NULL, 0, NULL);
    assert_true(d >= 300000 && d < 300000 + 64); /* all literal */
    d = round_trip(b, 300000, NULL, 0, NULL, 0, NULL);
    assert_true(d < 16);
    free(b);
}

static void test_plan(void **state)
{
    int whole;
    size_t bl, sl;
    pb_rsync_plan(&whole, &bl, &sl, 0);
    assert_true(whole);
    assert_true(bl >= 256 && sl >= 8);
    pb_rsync_plan(&whole, &bl, &sl, PB_RSYNC_WHOLE_BELOW - 1);
    assert_true(whole);
    pb_rsync_plan(&whole, &bl, &sl, PB_RSYNC_WHOLE_BELOW);
    assert_false(whole);
    assert_int_equal(bl, 256);
    /* ~sqrt(size), a multiple of 128 */
    uint64_t sizes[] = {1u << 20, 30u << 20, 50000000, 1ull << 32, 1ull << 40};
    size_t prev_sl = 0;
    for (size_t i = 0; i < 5; i++) {
        pb_rsync_plan(&whole, &bl, &sl, sizes[i]);
        double r = sqrt((double)sizes[i]);
        assert_false(whole);
        assert_int_equal(bl % 128, 0);
        assert_true(bl <= r && bl + 128 > r - 1);
        assert_true(sl >= 8 && sl <= 32 && sl >= prev_sl);
        prev_sl = sl;
        print_message("size %llu: block %zu, strong %zu\n", (unsigned long long)sizes[i], bl, sl);
    }
    /* explicit block lengths are honoured, also tiny ones */
    unsigned char *a = gen(100000, 4), *b = gen(100000, 4);
    b[5000] ^= 1;
    size_t tries[] = {1, 16, 700, 4096, 65536};
    for (size_t i = 0; i < 5; i++) {
        pb_rsync_options o = PB_RSYNC_OPTIONS_INIT;
        o.block_len = tries[i];
        o.strong_len = 8;
        size_t sigsz = 0;
        size_t d = round_trip(a, 100000, b, 100000, &o, 0, &sigsz);
        assert_int_equal(sigsz, 12 + (100000 + tries[i] - 1) / tries[i] * 12);
        (void)d;
    }
    free(a);
    free(b);
}

static void test_buffer_sweep(void **state)
{
    size_t bufs[] = {1, 2, 3, 7, 15, 100, 10000, 200000};
    size_t n = 40000;
    unsigned char *old = gen(n, 5), *nw = malloc(n);
    memcpy(nw, old, n);
    memset(nw + 7000, 'q', 50);
    memcpy(nw + 20000, old + 100, 3000);
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
        pb_rsync_options o = PB_RSYNC_OPTIONS_INIT;
        o.in_buf = bufs[i];
        o.out_buf = bufs[(i + 3) % 8];
        o.block_len = 512;
        round_trip(old, n, nw, n, &o, bufs[i], NULL);
        o.out_buf = bufs[i];
        round_trip(old, n, nw, n, &o, 1, NULL);
    }
    free(old);
    free(nw);
}

static int expect_delta_fails(const mem *sig_in, int nfd)
{
    pb_error err = PB_ERROR_INIT;
    mem s = *sig_in, d = {0};
    s.pos = 0;
    lseek(nfd, 0, SEEK_SET);
    int rc = pb_rsync_delta(mem_read, &s, nfd, mem_write, &d, NULL, NULL, &err);
    if (rc)
        assert_true(err.msg[0] != '\0');
    mem_free(&d);
    return rc;
}

static int try_patch(const mem *delta_in, int bfd, const uint8_t *check)
{
    pb_error err = PB_ERROR_INIT;
    pb_rsync_options o = PB_RSYNC_OPTIONS_INIT;
    mem d = *delta_in;
    d.pos = 0;
    o.check = check;
    FILE *f = tmpfile();
    int rc = pb_rsync_patch(bfd, mem_read, &d, fileno(f), &o, NULL, &err);
    if (rc)
        assert_true(err.msg[0] != '\0');
    fclose(f);
    return rc;
}

static void test_corrupt(void **state)
{
    pb_error err = PB_ERROR_INIT;
    size_t n = 200000;
    unsigned char *old = gen(n, 8), *nw = gen(n, 8);
    nw[100] ^= 0xff;
    nw[150000] ^= 0xff;
    int ofd = memfile(old, n), nfd = memfile(nw, n);
    mem sig = {0}, delta = {0};
    pb_rsync_options o = PB_RSYNC_OPTIONS_INIT;
    o.block_len = 1024;
    assert_int_equal(pb_rsync_sig(ofd, mem_write, &sig, &o, NULL, &err), 0);
    assert_int_equal(pb_rsync_delta(mem_read, &sig, nfd, mem_write, &delta, NULL, NULL, &err), 0);
    XXH128_canonical_t want;
    XXH128_canonicalFromHash(&want, XXH3_128bits(nw, n));

    /* signatures: truncated header, partial block, bad magic, bad lengths, MD4 magic */
    size_t cuts[] = {0, 1, 11, 12 + 5, sig.len - 1};
    for (size_t i = 0; i < 5; i++) {
        mem t = sig;
        t.len = cuts[i];
        assert_int_equal(expect_delta_fails(&t, nfd), PB_ECORRUPT);
    }
    size_t offs[] = {0, 3, 4, 5, 9, 11};
    for (size_t i = 0; i < 6; i++) {
        mem t = sig;
        t.p = malloc(sig.len);
        memcpy(t.p, sig.p, sig.len);
        t.p[offs[i]] ^= 0x80;
        assert_int_equal(expect_delta_fails(&t, nfd), PB_ECORRUPT);
        free(t.p);
    }
    /* block length 0 */
    {
        mem t = sig;
        t.p = malloc(sig.len);
        memcpy(t.p, sig.p, sig.len);
        memset(t.p + 4, 0, 4);
        assert_int_equal(expect_delta_fails(&t, nfd), PB_ECORRUPT);
        free(t.p);
    }

    /* deltas: the good one passes, truncations and structural damage fail */
    assert_int_equal(try_patch(&delta, ofd, want.digest), 0);
    size_t dcuts[] = {0, 1, 3, 4, 5, delta.len / 2, delta.len - 1};
    for (size_t i = 0; i < 7; i++) {
        mem t = delta;
        t.len = dcuts[i];
        assert_int_equal(try_patch(&t, ofd, NULL), PB_ECORRUPT);
    }
    {
        mem t = delta; /* bad magic */
        t.p = malloc(delta.len + 1);
        memcpy(t.p, delta.p, delta.len);
        t.p[0] ^= 1;
        assert_int_equal(try_patch(&t, ofd, NULL), PB_ECORRUPT);
        /* trailing garbage after the end command */
        t.p[0] ^= 1;
        t.p[delta.len] = 0x42;
        t.len = delta.len + 1;
        assert_int_equal(try_patch(&t, ofd, NULL), PB_ECORRUPT);
        free(t.p);
    }
    /* a flipped byte anywhere is caught, by structure or by the output check */
    for (size_t k = 4; k < delta.len; k += delta.len / 37 + 1) {
        mem t = delta;
        t.p = malloc(delta.len);
        memcpy(t.p, delta.p, delta.len);
        t.p[k] ^= 0x10;
        assert_int_equal(try_patch(&t, ofd, want.digest), PB_ECORRUPT);
        free(t.p);
    }
    /* a copy beyond the basis: patch against a shorter basis */
    {
        int short_fd = memfile(old, 1000);
        assert_int_equal(try_patch(&delta, short_fd, NULL), PB_ECORRUPT);
        close(short_fd);
    }
    close(ofd);
    close(nfd);
    mem_free(&sig);
    mem_free(&delta);
    free(old);
    free(nw);
}

static void test_files(void **state)
{
    pb_error err = PB_ERROR_INIT;
    const char *dir = tu_tmpdir("rsync");
    char a[512], b[512], s[512], d[512], o[512];
    snprintf(a, sizeof(a), "%s/a", dir);
    snprintf(b, sizeof(b), "%s/b", dir);
    snprintf(s, sizeof(s), "%s/a.sig", dir);
    snprintf(d, sizeof(d), "%s/b.delta", dir);
    snprintf(o, sizeof(o), "%s/b.out", dir);
    unsigned char *x = gen(100000, 9);
    FILE *f = fopen(a, "wb");
    fwrite(x, 1, 100000, f);
    fclose(f);
    x[500] ^= 1;
    f = fopen(b, "wb");
    fwrite(x, 1, 100000, f);
    fclose(f);
    pb_rsync_stats st;
    assert_int_equal(pb_rsync_sig_file(a, s, NULL, &st, &err), 0);
    assert_int_equal(pb_rsync_delta_file(s, b, d, NULL, &st, &err), 0);
    assert_true(st.copy_bytes > 90000);
    assert_int_equal(pb_rsync_patch_file(a, d, o, NULL, &st, &err), 0);
    assert_int_equal(st.out_bytes, 100000);
    assert_int_equal(tu_sh("cmp -s '%s' '%s'", b, o), 0);
    /* missing input; a failing patch leaves no output behind */
    pb_error e2 = PB_ERROR_INIT;
    assert_int_equal(pb_rsync_sig_file("/nonexistent/x", s, NULL, NULL, &e2), PB_ENOTFOUND);
    pb_error e3 = PB_ERROR_INIT;
    assert_int_equal(pb_rsync_patch_file(a, s, o, NULL, NULL, &e3), PB_ECORRUPT);
    assert_int_equal(access(o, F_OK), -1);
    tu_sh("rm -rf '%s'", dir);
    free(x);
}

static void test_error_map(void **state)
{
    pb_error err = PB_ERROR_INIT;
    assert_int_equal(pb_rsync_error(0, "x", &err), 0);
    assert_int_equal(pb_rsync_error(106, "x", &err), PB_ECORRUPT);
    assert_int_equal(err.dep_code, 106);
    pb_error e2 = PB_ERROR_INIT;
    assert_int_equal(pb_rsync_error(102, "x", &e2), PB_ENOMEM);
    pb_error e3 = PB_ERROR_INIT;
    assert_int_equal(pb_rsync_error(107, "x", &e3), PB_ERROR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),        cmocka_unit_test(test_small_edits),
        cmocka_unit_test(test_empty_basis),  cmocka_unit_test(test_plan),
        cmocka_unit_test(test_buffer_sweep), cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_files),        cmocka_unit_test(test_error_map),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

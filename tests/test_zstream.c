/*
 * test_zstream.c: zstd streaming round trips over sizes around the buffer boundaries, and
 * truncated, corrupt and oversized input refused with PB_ECORRUPT; the bounded-memory
 * parameters (capped window, pledged size) of pb_zstd_compress_stream_ex.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getFrameHeader */
#include <zstd.h>

#include "testutil.h"
#include "zstream.h"

static FILE *make_input(size_t n, unsigned seed)
{
    FILE *f = tmpfile();
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        fputc((i % 7 == 0) ? (int)(seed >> 24) : 'a' + (int)(i % 13), f);
    }
    rewind(f);
    return f;
}

static int same(FILE *a, FILE *b)
{
    rewind(a);
    rewind(b);
    int ca, cb;
    do {
        ca = fgetc(a);
        cb = fgetc(b);
        if (ca != cb)
            return 0;
    } while (ca != EOF);
    return 1;
}

static void test_round_trip(void **state)
{
    size_t sizes[] = {0, 1, 2, 3, 7, 15, 100, 10000, 131072, 131073, 200000, 1 << 20};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        pb_error err = PB_ERROR_INIT;
        FILE *in = make_input(sizes[i], (unsigned)i), *z = tmpfile(), *out = tmpfile();
        uint64_t nin = 0, nz = 0, nout = 0;
        assert_int_equal(pb_zstd_compress_stream(in, z, 3, 0, &nin, &nz, &err), 0);
        assert_int_equal(nin, sizes[i]);
        rewind(z);
        assert_int_equal(pb_zstd_decompress_stream(z, out, 0, &nout, &err), 0);
        assert_int_equal(nout, sizes[i]);
        assert_true(same(in, out));
        fclose(in);
        fclose(z);
        fclose(out);
    }
}

static void test_bad_input(void **state)
{
    FILE *in = make_input(300000, 9), *z = tmpfile();
    uint64_t nz = 0;
    assert_int_equal(pb_zstd_compress_stream(in, z, 3, 0, NULL, &nz, NULL), 0);
    /* truncated at several points */
    long cuts[] = {0, 1, 4, (long)nz / 2, (long)nz - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        pb_error err = PB_ERROR_INIT;
        FILE *t = tmpfile(), *out = tmpfile();
        rewind(z);
        for (long k = 0; k < cuts[i]; k++)
            fputc(fgetc(z), t);
        rewind(t);
        assert_int_equal(pb_zstd_decompress_stream(t, out, 0, NULL, &err), PB_ECORRUPT);
        assert_true(err.msg[0] != '\0');
        fclose(t);
        fclose(out);
    }
    /* a flipped byte in the middle is caught (by the frame checksum at the latest) */
    {
        pb_error err = PB_ERROR_INIT;
        FILE *t = tmpfile(), *out = tmpfile();
        rewind(z);
        for (long k = 0; k < (long)nz; k++) {
            int c = fgetc(z);
            fputc(k == (long)nz / 2 ? c ^ 0x40 : c, t);
        }
        rewind(t);
        assert_int_equal(pb_zstd_decompress_stream(t, out, 0, NULL, &err), PB_ECORRUPT);
        fclose(t);
        fclose(out);
    }
    /* the output bound */
    {
        pb_error err = PB_ERROR_INIT;
        FILE *out = tmpfile();
        rewind(z);
        assert_int_equal(pb_zstd_decompress_stream(z, out, 1000, NULL, &err), PB_ECORRUPT);
        fclose(out);
    }
    fclose(in);
    fclose(z);
}

/* Level 19 with the window capped at 1 MiB and the size pledged (the report figure of
 * engine/plex/plexmerge.c): round trips, the frame names the content size and a window of at most
 * 1 MiB (what bounds zstd's tables), below 1 MiB the bytes equal plain level 19's but for the
 * content size field; a pledged size that is wrong fails (once the input takes several reads). */
static void test_bounded(void **state)
{
    (void)state;
    size_t sizes[] = {0, 5000, 300000, 3u << 19};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        pb_error err = PB_ERROR_INIT;
        FILE *in = make_input(sizes[i], (unsigned)i + 40), *z = tmpfile(), *out = tmpfile();
        uint64_t nin = 0, nz = 0, nout = 0, nplain = 0;
        pb_zstd_params p = {19, 0, 20, 1, sizes[i]};
        assert_int_equal(pb_zstd_compress_stream_ex(in, z, &p, &nin, &nz, &err), 0);
        assert_int_equal(nin, sizes[i]);
        unsigned char head[32];
        rewind(z);
        size_t nh = fread(head, 1, sizeof(head), z);
        ZSTD_frameHeader fh;
        assert_int_equal(ZSTD_getFrameHeader(&fh, head, nh), 0);
        assert_int_equal(fh.frameContentSize, sizes[i]);
        assert_true(fh.windowSize <= (1u << 20));
        rewind(z);
        assert_int_equal(pb_zstd_decompress_stream(z, out, 0, &nout, &err), 0);
        assert_int_equal(nout, sizes[i]);
        assert_true(same(in, out));
        rewind(in);
        FILE *plain = tmpfile();
        assert_int_equal(pb_zstd_compress_stream(in, plain, 19, 0, NULL, &nplain, &err), 0);
        if (sizes[i] && sizes[i] < (1u << 20))
            assert_true(nz <= nplain + 8 && nz + 8 >= nplain);
        fclose(plain);
        fclose(in);
        fclose(z);
        fclose(out);
    }
    pb_error err = PB_ERROR_INIT;
    FILE *in = make_input(300000, 1), *z = tmpfile(); /* more than one read */
    pb_zstd_params p = {19, 0, 20, 1, 299999};
    assert_true(pb_zstd_compress_stream_ex(in, z, &p, NULL, NULL, &err) < 0);
    assert_non_null(strstr(err.msg, "zstd"));
    fclose(in);
    fclose(z);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * fuzz_s3xml.c: libFuzzer target of the S3 XML body reader (transfer/store_s3_xml.c): any body
 * (a listing page, an error, an upload id, or anything a broken endpoint sends) fed in pieces
 * leaves a bounded result and at most a "bad" flag, never a crash, a hang, unbounded memory or
 * a read past a buffer. The first input byte picks the size of the pieces.
 * Seed corpus: tests/fuzz/corpus/s3xml (ListObjectsV2 pages, an error, an upload id).
 */
#include "fuzz_util.h"
#include "store_s3_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s3_xml x;
    size_t step = size ? (size_t)data[0] % 64 + 1 : 1;
    s3_xml_init(&x);
    for (int pass = 0; pass < 2; pass++) { /* the second after a reset: a retried request */
        for (size_t o = 0; o < size; o += step) {
            size_t n = size - o < step ? size - o : step;
            s3_xml_feed(&x, (const char *)data + o, n, o + n == size);
        }
        if (!size)
            s3_xml_feed(&x, "", 0, 1);
        if (x.n > x.cap || strnlen(x.code, sizeof(x.code)) == sizeof(x.code) ||
            strnlen(x.token, sizeof(x.token)) == sizeof(x.token))
            abort();
        for (size_t i = 0; i < x.n; i++)
            if (x.entries[i].key_off >= x.keys.len || !x.keys.ptr ||
                strlen(x.keys.ptr + x.entries[i].key_off) > x.keys.len - x.entries[i].key_off)
                abort();
        s3_xml_reset(&x);
    }
    s3_xml_dispose(&x);
    return 0;
}

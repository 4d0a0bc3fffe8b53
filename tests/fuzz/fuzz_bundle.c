/*
 * fuzz_bundle.c: libFuzzer target of the bundle reader (engine/bundle/bundle_read.c): any input
 * must end in success or a one-line PB_ECORRUPT / PB_EUNSAFE error, never a crash, a hang,
 * unbounded memory or a read past the buffer. Also feeds the path rules. Built with
 * PB_BUILD_FUZZERS=ON (clang). Seed corpus: tests/fuzz/corpus/bundle (written by test_bundle with
 * PB_WRITE_FUZZ_SEEDS=dir).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bundle_int.h"
#include "testutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tu_memin in = {data, size, 0, 4093}; /* odd read sizes exercise the buffer boundaries */
    pb_bundle_reader *r = NULL;
    const pb_bundle_rec *rec;
    pb_error e = PB_ERROR_INIT;
    pb_bundle_limits lim = {1u << 24, 1u << 24, 1u << 16};
    static char buf[65536];
    size_t got;
    int rc;
    char why[300];

    pb_bundle__path_check((const char *)data, size < 5000 ? size : 5000, why, sizeof(why));
    if (pb_bundle__reader_new(&r, tu_mem_in, &in, &lim, &e) == 0) {
        while ((rc = pb_bundle__reader_next(r, &rec, &e)) == 1) {
            do {
                if (pb_bundle__reader_read(r, buf, sizeof(buf), &got, &e) < 0)
                    goto done;
            } while (got);
        }
        if (rc < 0 && (rc != PB_ECORRUPT && rc != PB_EUNSAFE))
            abort();
    }
done:
    if (e.code && e.code != PB_ECORRUPT && e.code != PB_EUNSAFE)
        abort();
    if (e.code && (strncmp(e.msg, "bundle: ", 8) != 0 || strchr(e.msg, '\n')))
        abort();
    pb_bundle__reader_free(r);
    return 0;
}

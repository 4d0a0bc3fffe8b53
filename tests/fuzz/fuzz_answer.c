/*
 * fuzz_answer.c: libFuzzer target of the ANSWER reader (engine/bundle/answer.c), the home's
 * answer to the cloud's LIST (verdicts and librsync signatures) that the cloud reads: any input
 * ends in its entries or a one-line PB_ECORRUPT, never a crash, a hang or a read past a buffer.
 * Signatures are read through as the export does.
 * Seed corpus: tests/fuzz/corpus/answer (the answer of a mkplex home to its cloud's LIST).
 */
#include "answer.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int ok[] = {PB_ECORRUPT, 0};
    static uint8_t buf[4096];
    pb_answer_reader r;
    pb_error e = PB_ERROR_INIT;
    int rc;
    memset(&r, 0, sizeof(r));
    const char *path = fuzz_file("answer", data, size);
    if ((rc = pb_answer__reader_open(&r, path, &e)) == 0) {
        for (int i = 0; i < 100000; i++) {
            if ((rc = pb_answer__reader_next(&r, &e)) < 0 || !r.have)
                break;
            if (r.verdict == 'S') {
                size_t got;
                do {
                    if ((rc = pb_answer__reader_sig(&r, buf, sizeof(buf), &got, &e)) < 0)
                        goto done;
                } while (got);
            }
        }
    }
done:
    fuzz_check_error(rc, &e, ok);
    pb_answer__reader_close(&r);
    return 0;
}

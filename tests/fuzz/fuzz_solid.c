/*
 * fuzz_solid.c: libFuzzer target of the solid stream decoder (engine/bundle/solid.c,
 * pb_solid_decode), the form in which the bundle travels from the cloud: any input ends in a
 * bundle or a one-line PB_ECORRUPT / PB_EUNSAFE, never a crash, a hang, unbounded memory or a
 * read past a buffer; a failed decode leaves no bundle behind.
 * Seed corpus: tests/fuzz/corpus/solid (the solid form of a mkplex bundle).
 */
#include "fuzz_util.h"
#include "solid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int ok[] = {PB_ECORRUPT, PB_EUNSAFE, 0};
    pb_error e = PB_ERROR_INIT;
    const char *solid = fuzz_file("solid", data, size);
    const char *bundle = fuzz_path("bundle");
    int rc = pb_solid_decode(solid, NULL, bundle, 1, NULL, NULL, &e);
    fuzz_check_error(rc, &e, ok);
    if (rc < 0 && access(bundle, F_OK) == 0)
        abort(); /* the bundle of a failed decode is removed */
    unlink(bundle);
    return 0;
}

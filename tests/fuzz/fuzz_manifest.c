/*
 * fuzz_manifest.c: libFuzzer target of the manifest reader (engine/files/manifest.c), which
 * reads the cloud's manifest and the home's own: any input ends in its entries or a one-line
 * PB_ECORRUPT, never a crash, a hang or a read past a buffer. The trailer's magic, offset and
 * checksum are rewritten to match the input before it is read (an odd first byte turns that
 * off), so that mutations reach the header and the records behind the checksum.
 * Seed corpus: tests/fuzz/corpus/manifest (the manifest of a mkplex tiny library).
 */
#include <xxhash.h>

#include "fingerprint_int.h"
#include "fuzz_util.h"
#include "plexburst/fingerprint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TRAILER 40

static void fix_trailer(uint8_t *b, size_t n)
{
    if (n < 64 + TRAILER)
        return;
    uint8_t *t = b + n - TRAILER;
    memcpy(t, "PBMTAIL1", 8);
    uint64_t off = n - TRAILER;
    for (int i = 0; i < 8; i++)
        t[16 + i] = (uint8_t)(off >> (8 * i));
    XXH3_state_t *st = XXH3_createState();
    if (!st)
        abort();
    XXH3_128bits_reset(st);
    XXH3_128bits_update(st, b, n - 16);
    pb_fp__dir_digest(t + 24, st);
    XXH3_freeState(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int ok[] = {PB_ECORRUPT, 0};
    pb_manifest *m = NULL;
    const pb_manifest_entry *ent;
    pb_error e = PB_ERROR_INIT;
    int rc;
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    if (size && !(data[0] & 1))
        fix_trailer(copy, size);
    const char *path = fuzz_file("manifest", copy, size);
    if ((rc = pb_manifest_open(&m, path, &e)) == 0) {
        for (uint64_t i = 0; i < 1000000 && (rc = pb_manifest_next(m, &ent, &e)) == 1; i++)
            if (!ent->path) /* any file name is valid here, a newline too: the line-based */
                abort();    /* formats (the LIST) refuse what they cannot carry */
        if (rc > 0)
            rc = 0;
    }
    fuzz_check_error(rc, &e, ok);
    pb_manifest_free(m);
    free(copy);
    return 0;
}

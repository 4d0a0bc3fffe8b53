/*
 * fuzz_changeset.c: libFuzzer target of the changeset validator (sqldiff/changeset.c,
 * pb_changeset_validate_mem), which checks every changeset from the cloud before SQLite's
 * iterator sees it: any input ends in a summary or a one-line PB_ECORRUPT, never a crash, a hang
 * or a read past a buffer. An input it accepts must also be walkable by SQLite's changeset
 * iterator to the end (the validator's promise).
 * Seed corpus: tests/fuzz/corpus/changeset (the main and blobs changesets of a mkplex run).
 */
#include <sqlite3.h>

#include "fuzz_util.h"
#include "plexburst/sqldiff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int ok[] = {PB_ECORRUPT, 0};
    pb_changeset_summary s;
    pb_error e = PB_ERROR_INIT;
    int rc = pb_changeset_validate_mem(&s, data, size, NULL, &e);
    fuzz_check_error(rc, &e, ok);
    if (rc == 0 && size < (1u << 20) && !s.patchset) {
        sqlite3_changeset_iter *it = NULL;
        if (sqlite3changeset_start(&it, (int)size, (void *)data) != SQLITE_OK)
            abort();
        int r;
        while ((r = sqlite3changeset_next(it)) == SQLITE_ROW)
            ;
        if (r != SQLITE_DONE) {
            fprintf(stderr, "validated changeset, SQLite's iterator says %d\n", r);
            abort();
        }
        sqlite3changeset_finalize(it);
    }
    return 0;
}

/*
 * solid.h (internal): the solid transport form of a bundle (format and rationale atop solid.c):
 * a writer the bundle writer feeds as it writes (so a bundle is never read back to be encoded),
 * and the decoder back into a bundle, which is also the bundle's verify pass.
 * Role: the agent encodes (run/agent.c), the sync decodes (run/sync.c).
 */
#ifndef PB_SOLID_H
#define PB_SOLID_H

#include <stddef.h>
#include <stdint.h>
#include "bundle_int.h"

typedef struct pb_solid_writer pb_solid_writer;

/** Creates `path` and writes the header (zstd `level`). */
int pb_solid_writer_new(pb_solid_writer **out, const char *path, int level,
                        const pb_bundle_header *h, pb_error *err);
/** A record's header; its payload (not for hard links) follows with _data, closed by _end. */
int pb_solid_writer_begin(pb_solid_writer *z, const pb_bundle_rec *rec, pb_error *err);
/** Raw (decompressed) payload bytes of the current record. */
int pb_solid_writer_data(pb_solid_writer *z, const void *data, size_t n, pb_error *err);
/** Ends the current record. */
int pb_solid_writer_end(pb_solid_writer *z, pb_error *err);
/** Ends the stream and fsyncs; *bytes and hash (XXH3-128 of the file, both optional). */
int pb_solid_writer_finish(pb_solid_writer *z, uint64_t *bytes, uint8_t hash[16], pb_error *err);
/** Frees; removes the file unless it was finished. Accepts NULL. */
void pb_solid_writer_free(pb_solid_writer *z);

/**
 * Decodes `solid` into the bundle file `bundle` (payloads at zstd `level`), the bundle writer
 * checking every record's size and hash. With `verify`, the same pass is the bundle's verify pass
 * (pb_bundle_verify with those options: changesets extracted, paths checked against the data
 * dir), reading the bundle as it is written; `info` receives what it holds. With `expect_hex`
 * (32 hex digits), the solid file's XXH3-128, computed while it is read, must equal it
 * (PB_ECORRUPT naming both otherwise). The bundle (and the extracted changesets) are removed on
 * failure.
 */
int pb_solid_decode(const char *solid, const char *expect_hex, const char *bundle, int level,
                    const pb_bundle_verify_options *verify, pb_bundle_info *info, pb_error *err);

#endif

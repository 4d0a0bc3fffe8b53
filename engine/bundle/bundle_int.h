/*
 * bundle_int.h (internal): the bundle file format (specified atop bundle.c): the path rules every
 * bundle path obeys and the header encoding (bundle.c), a streaming writer (bundle_write.c) and
 * a strict streaming reader (bundle_read.c).
 * Role: bundle/export_build.c writes bundles, bundle_verify.c and apply/stage.c read them,
 * solid.c converts them, the fuzz target drives the reader.
 * Prerequisites: libzstd, libxxhash (XXH3-128).
 */
#ifndef PB_BUNDLE_INT_H
#define PB_BUNDLE_INT_H

#include <stddef.h>
#include <stdint.h>
#include "plexburst/bundle.h"
#include "plexburst/io.h"

#define PB_BUNDLE_MAGIC        "PBBUNDLE"
#define PB_BUNDLE_VERSION      1
#define PB_BUNDLE_PATH_MAX     4096       /* longest path, in bytes */
#define PB_BUNDLE_NAME_MAX     255        /* longest path component */
#define PB_BUNDLE_CHUNK_MAX    (1u << 20) /* largest payload chunk */
#define PB_BUNDLE_CREATOR_MAX  255
#define PB_BUNDLE_FLAG_BLOBS   0x1u /* the baseline includes the blobs DB */
#define PB_BUNDLE_FLAGS_KNOWN  PB_BUNDLE_FLAG_BLOBS
#define PB_BUNDLE_HEADER_FIXED 106 /* bytes before the creator string */
#define PB_BUNDLE_REC_FIXED    64  /* bytes of a record header before its paths */
#define PB_BUNDLE_TRAILER_SIZE 40
#define PB_STAGE_PREFIX        ".pb-stage-"

/** Record types (the byte stored in the format). */
typedef enum pb_rec_type {
    PB_REC_MAIN_CS = 'C',  /* row changeset of the main DB (zstd) */
    PB_REC_BLOBS_CS = 'B', /* row changeset of the blobs DB (zstd) */
    PB_REC_NEW = 'N',      /* a whole file (zstd) */
    PB_REC_DELTA = 'D',    /* a librsync delta against the home file (zstd) */
    PB_REC_LINK = 'H',     /* a hard link to an earlier path (no payload) */
} pb_rec_type;

/** The header of a bundle. */
typedef struct pb_bundle_header {
    uint32_t version, flags;
    uint8_t base_main[16], base_blobs[16];     /* baseline ids (logical checksum digests) */
    uint8_t target_main[16], target_blobs[16]; /* the cloud DBs' ids */
    uint8_t home_root[16];                     /* root hash of the home manifest, or zero */
    int64_t created_ns;
    char creator[PB_BUNDLE_CREATOR_MAX + 1];
} pb_bundle_header;

/** One record's header, as written or read. */
typedef struct pb_bundle_rec {
    int type;        /* pb_rec_type */
    uint64_t index;  /* 0-based record number (reader) */
    uint64_t offset; /* byte offset of the record in the bundle (reader) */
    char path[PB_BUNDLE_PATH_MAX + 1];
    size_t path_len;
    char link[PB_BUNDLE_PATH_MAX + 1]; /* PB_REC_LINK: the leader's path */
    size_t link_len;
    uint32_t mode; /* permission bits (<= 0777) */
    int64_t mtime_ns;
    uint64_t size;     /* size of the target content */
    uint8_t hash[16];  /* XXH3-128 of the target content */
    uint8_t basis[16]; /* the home version it replaces (delta: its basis); zero = none */
    uint64_t payload;  /* reader: compressed payload bytes of the record (after reading) */
} pb_bundle_rec;

/* ---------------------------------------------------------------------------------------- */
/* Paths                                                                                     */

/**
 * Checks a bundle path: relative, '/'-separated, 1..PB_BUNDLE_PATH_MAX bytes, components of
 * 1..255 bytes that are neither "." nor "..", no NUL, backslash or control byte, no stage-file
 * name, and inside the synced part (pb_fingerprint_synced()). Writes the reason to `why`.
 * @return 0, or PB_EUNSAFE.
 */
int pb_bundle__path_check(const char *path, size_t n, char *why, size_t cap);

/** The walk order of paths (bytewise with '/' first), as the manifests use. */
int pb_bundle__pathcmp(const char *a, size_t na, const char *b, size_t nb);

/** 1 when the n bytes at p are all zero. */
int pb_bundle__is_zero(const uint8_t *p, size_t n);

/** Encodes the fixed part of a header (PB_BUNDLE_HEADER_FIXED bytes: magic, version, flags, the
 * five ids, created_ns, the creator's length); the solid form uses it with its own magic. */
void pb_bundle__header_put(uint8_t out[PB_BUNDLE_HEADER_FIXED], const char magic[8],
                           const pb_bundle_header *h, size_t creator_len);
/** Decodes the fields after the magic (not checked); returns the creator's length. */
size_t pb_bundle__header_get(pb_bundle_header *h, const uint8_t in[PB_BUNDLE_HEADER_FIXED]);

/** Where the fields of a record header stand (the type is always byte 0). */
typedef struct pb_bundle__rec_layout {
    uint8_t path_len, link_len, mode, mtime, size, hash, basis;
} pb_bundle__rec_layout;
/** The bundle's record header (PB_BUNDLE_REC_FIXED bytes, aligned, reserved bytes zero). */
extern const pb_bundle__rec_layout pb_bundle__rec_wide;
/** The solid form's record header (57 bytes, packed). */
extern const pb_bundle__rec_layout pb_bundle__rec_packed;
/** Encodes r's type and fixed fields at their places in hd (other bytes untouched). */
void pb_bundle__rec_put(uint8_t *hd, const pb_bundle__rec_layout *l, const pb_bundle_rec *r);
/** Decodes the fixed fields but the type from hd into r (not checked). */
void pb_bundle__rec_get(pb_bundle_rec *r, const pb_bundle__rec_layout *l, const uint8_t *hd);

/* ---------------------------------------------------------------------------------------- */
/* Writer                                                                                    */

typedef struct pb_bundle_writer pb_bundle_writer;

/**
 * Starts a bundle: writes the header to `out`. `zlevel` is the zstd level of the payloads.
 * The writer owns nothing of the caller's; free it with pb_bundle__writer_free().
 */
int pb_bundle__writer_new(pb_bundle_writer **w, const pb_bundle_header *h, int zlevel,
                          pb_sink_fn out, void *out_payload, pb_error *err);
/** Writes a record header; for PB_REC_LINK the record is complete, else feed the payload. */
int pb_bundle__writer_begin(pb_bundle_writer *w, const pb_bundle_rec *r, pb_error *err);
/** Feeds raw payload bytes (file content, changeset, delta), compressed and chunked. */
int pb_bundle__writer_data(pb_bundle_writer *w, const void *data, size_t n, pb_error *err);
/**
 * Ends the record: flushes the zstd frame and writes the end chunk and the record checksum. For
 * N/C/B records the bytes fed must match the declared size and hash (a file that changed while
 * it was read is PB_ECONFLICT).
 */
int pb_bundle__writer_end(pb_bundle_writer *w, pb_error *err);
/** Writes the trailer (record count, total length, whole-bundle checksum). */
int pb_bundle__writer_finish(pb_bundle_writer *w, pb_error *err);
/** Mirrors every record into the solid form (solid.h) as it is written: the same header (given
 * to pb_solid_writer_new), each record's header and its raw payload. */
struct pb_solid_writer;
void pb_bundle__writer_tee(pb_bundle_writer *w, struct pb_solid_writer *solid);
/** Bytes written so far. */
uint64_t pb_bundle__writer_bytes(const pb_bundle_writer *w);
void pb_bundle__writer_free(pb_bundle_writer *w);

/* ---------------------------------------------------------------------------------------- */
/* Reader                                                                                    */

typedef struct pb_bundle_reader pb_bundle_reader;

/**
 * Opens a reader over `in` and reads and checks the header (magic, version, flags, creator,
 * header checksum). `lim` may be NULL (PB_BUNDLE_LIMITS_INIT).
 */
int pb_bundle__reader_new(pb_bundle_reader **r, pb_source_fn in, void *in_payload,
                          const pb_bundle_limits *lim, pb_error *err);
const pb_bundle_header *pb_bundle__reader_header(const pb_bundle_reader *r);
/**
 * Moves to the next record (the rest of the current one is read and checked first).
 * @return 1 with *rec set (valid until the next call), 0 at the trailer (checked: count,
 *         length, whole-bundle checksum, nothing after it), or PB_ECORRUPT / PB_EUNSAFE with
 *         "bundle: record N at offset O: ..." in err.
 */
int pb_bundle__reader_next(pb_bundle_reader *r, const pb_bundle_rec **rec, pb_error *err);
/**
 * Reads decompressed payload of the current record; *got = 0 at its end, after the record
 * checksum, the declared size (C/B/N: exact; D: bounded) and hash (C/B/N) have been checked.
 */
int pb_bundle__reader_read(pb_bundle_reader *r, void *buf, size_t cap, size_t *got, pb_error *err);
/** Sets a formatted error naming the current record and offset (PB_ECORRUPT, PB_EUNSAFE...). */
int pb_bundle__reader_fail(pb_bundle_reader *r, int code, pb_error *err, const char *fmt, ...)
    PB_PRINTF(4, 5);
/** Bytes consumed so far, and the whole-bundle checksum once the trailer was read. */
uint64_t pb_bundle__reader_offset(const pb_bundle_reader *r);
const uint8_t *pb_bundle__reader_checksum(const pb_bundle_reader *r);
void pb_bundle__reader_free(pb_bundle_reader *r);

/** pb_bundle_verify() over any byte source (the solid decoder feeds it as it decodes). */
int pb_bundle__verify_source(pb_bundle_info *out, pb_source_fn in, void *in_payload,
                             const pb_bundle_verify_options *opts, pb_error *err);

/** An input callback over an `int *` fd (read with EINTR handling). */
int pb_bundle__fd_in(void *payload, void *buf, size_t cap, size_t *got, pb_error *err);
/** An output callback over an `int *` fd (write with short-count handling). */
int pb_bundle__fd_out(void *payload, const void *data, size_t n, pb_error *err);

/** XXH3-128 of a file read from `fd` (from offset 0), canonical bytes; *size gets its size. */
int pb_bundle__hash_fd(uint8_t out[16], uint64_t *size, int fd, pb_error *err);

#endif

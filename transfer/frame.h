/*
 * frame.h (internal): framing of a conversation over a channel (channel.h): the frame format,
 * JSON payloads, the HELLO exchange and files streamed as data frames. docs/protocol.md has the
 * format in prose and the message catalogue of the sync (engine/run/protocol.h).
 *
 * Wire format of one frame (all integers big-endian):
 *
 *     offset  size  field
 *     0       2     magic "PB"
 *     2       1     type (a number of the caller's catalogue, pb_frame_types)
 *     3       4     length L of the payload (0 <= L <= the reader's limit, default 1 MiB)
 *     7       L     payload
 *     7+L     8     XXH3-64 (seed 0) of bytes 0 .. 7+L-1 (header and payload)
 *
 * Frame types are plain numbers to this layer, except the three framing itself needs: 0 (EOF,
 * never on the wire: the stream ended between two frames), 1 (HELLO, the first frame each way)
 * and 11 (ERROR, which ends a file stream and answers a refused HELLO). The caller's catalogue
 * (pb_frame_types: protocol version, highest type, names) tells the reader which types exist
 * and names them in messages.
 *
 * Control frames carry one JSON object (UTF-8); data frames carry raw bytes of a file streamed
 * in order and closed by its END frame ({"bytes": N, "xxh3": "<32 hex digits of XXH3-128>"}),
 * which the receiver checks. The first frame each way is HELLO with {"protocol": <the
 * catalogue's version>, "software": "plexburst", "version": "<x.y.z>", "role": ...}; a
 * different protocol or plexburst version is refused with a message naming both. The reader
 * is strict: a bad magic, unknown type, oversized length, short stream or checksum mismatch is
 * PB_ECORRUPT with the frame's byte offset; the end of the stream between two frames is a clean
 * end (type 0).
 * Role: transfer/ layer; it knows no message but HELLO and ERROR. Prerequisites: libxxhash,
 * jansson.
 */
#ifndef PB_FRAME_H
#define PB_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "channel.h"
#include "plexburst/io.h"

#define PB_FRAME_HEADER      7
#define PB_FRAME_TRAILER     8
#define PB_FRAME_MAX_DEFAULT (1u << 20)   /* payload limit of a reader, unless set otherwise */
#define PB_FRAME_MAX_LIMIT   (16u << 20)  /* the largest limit a reader accepts */
#define PB_FRAME_DATA_CHUNK  (256u << 10) /* payload of the data frames a sender writes */

/* The frame types framing itself knows; every other number belongs to the caller. */
#define PB_FRAME_EOF   0  /* not on the wire: the stream ended between two frames */
#define PB_FRAME_HELLO 1  /* both ways, first: protocol and software versions */
#define PB_FRAME_ERROR 11 /* either way: a step failed ({"code", "name", "message", ...}) */

/** A conversation's catalogue of frame types, set on an io before its first frame. */
typedef struct pb_frame_types {
    int version;              /* the protocol version exchanged (and required) in HELLO */
    int max;                  /* types 1..max are valid on the wire (at most 255) */
    const char *const *names; /* max + 1 names indexed by type ("EOF" first), for messages */
} pb_frame_types;

/** A frame as read: payload valid until the next read on the same io. */
typedef struct pb_frame {
    int type;            /* a type of the catalogue; PB_FRAME_EOF at a clean end */
    const char *name;    /* its name in the catalogue (NULL at the end); valid like data */
    const uint8_t *data; /* payload (NUL-terminated for convenience, not counted in len) */
    size_t len;
    uint64_t offset; /* byte offset of the frame in the stream */
} pb_frame;

/** Framing state over one channel (reading and writing). */
typedef struct pb_frame_io {
    pb_channel *ch;              /* borrowed */
    const pb_frame_types *types; /* borrowed; NULL: any type 1..255, version 0 */
    uint32_t max;                /* payload limit of the reader */
    uint64_t rd_off;             /* bytes read so far (next frame's offset) */
    uint64_t wr_off;             /* bytes written so far */
    uint64_t frames_in, frames_out;
    uint8_t *buf;   /* max + 1 bytes */
    void *xxh;      /* the frame checksum's hash state */
    char tname[16]; /* "type N" of pb_frame_type_name */
} pb_frame_io;

/** Sets up `io` over `ch` with a payload limit (0: PB_FRAME_MAX_DEFAULT; > PB_FRAME_MAX_LIMIT
 * is PB_EINVALID) and no catalogue (set io->types next). Release with pb_frame_io_dispose(). */
int pb_frame_io_init(pb_frame_io *io, pb_channel *ch, uint32_t max, pb_error *err);
void pb_frame_io_dispose(pb_frame_io *io);

/** The name of `type` in the io's catalogue ("HELLO", "ERROR", else "type N"); valid until
 * the next call on the same io. */
const char *pb_frame_type_name(pb_frame_io *io, int type);

/** Writes one frame (payload of at most the io's limit). */
int pb_frame_write(pb_frame_io *io, int type, const void *payload, size_t n, pb_error *err);
/** Writes one frame whose payload is `obj` as compact JSON (the object is not consumed). */
int pb_frame_write_json(pb_frame_io *io, int type, const json_t *obj, pb_error *err);
/** Writes an ERROR frame {"code": code, "name": pb_strerror(code), "message": msg}. */
int pb_frame_write_error(pb_frame_io *io, int code, const char *msg, pb_error *err);

/**
 * Reads the next frame strictly (see the top of this header).
 * @return 0 with *f set (type PB_FRAME_EOF at a clean end); PB_ECORRUPT "protocol: frame at
 *         offset N: ..." for a malformed frame; the channel's code (PB_ENET, PB_ECANCELLED).
 */
int pb_frame_read(pb_frame_io *io, pb_frame *f, pb_error *err);

/** Parses a frame's payload as a JSON object (PB_ECORRUPT when it is not one); caller decrefs. */
int pb_frame_json(json_t **out, const pb_frame *f, pb_error *err);

/**
 * The HELLO exchange: writes ours ({"protocol", "software", "version", "role"} plus the fields
 * of `extra`, may be NULL), reads the peer's and checks protocol and version.
 * @param peer  OUT, optional: the peer's HELLO object (caller decrefs).
 * @return 0; PB_EREFUSED when the versions differ (the message names both sides); PB_ECORRUPT
 *         when the first frame is not a HELLO; channel errors.
 */
int pb_frame_hello(pb_frame_io *io, const char *role, const char *version, const json_t *extra,
                   json_t **peer, pb_error *err);

/** Handler of the frames interleaved with a data stream (LOG, PROGRESS): 0 to go on. */
typedef int (*pb_frame_other_fn)(const pb_frame *f, void *payload, pb_error *err);

/**
 * Streams the file at `path` as `data_type` frames followed by an `end_type` frame carrying
 * {"bytes", "xxh3"} plus the fields of `end_extra` (may be NULL). `progress` (optional) gets
 * phase "send" with bytes_done / bytes_total after each data frame; non-zero cancels.
 */
int pb_frame_send_file(pb_frame_io *io, int data_type, int end_type, const char *path,
                       const json_t *end_extra, pb_progress_fn progress, void *pp, pb_error *err);

/**
 * Receives a file streamed by pb_frame_send_file into `path` (created 0600, replaced; removed
 * on failure), checking its length and hash against the END frame. Frames of other types are
 * handed to `other` (an ERROR frame from the peer ends the stream with its code and message
 * unless `other` handles it); with no handler they are PB_ECORRUPT.
 * @param end  OUT, optional: the END object (caller decrefs).
 */
int pb_frame_recv_file(pb_frame_io *io, int data_type, int end_type, const char *path, json_t **end,
                       pb_frame_other_fn other, void *op, pb_error *err);

/** Turns a received ERROR frame into an error in `err` (its code, else PB_ERROR). */
int pb_frame_error_from(const pb_frame *f, const char *who, pb_error *err);

#endif

/*
 * protocol.h (internal): the sync's message catalogue between the home side (engine/run/sync.c)
 * and the agent (engine/run/agent.c), carried as frames (transfer/frame.h) over a channel.
 * docs/protocol.md specifies each message's payload and the conversation (who sends what when).
 *
 * Types 1 (HELLO) and 11 (ERROR) are framing's own (frame.h) and keep their numbers here; the
 * others are the sync's. The numbers are the wire format: never renumber, only append (and
 * raise PB_PROTOCOL_VERSION when the conversation changes).
 * Role: engine/run/; the one place the message numbers and names live.
 * Prerequisites: transfer/frame.h.
 */
#ifndef PB_PROTOCOL_H
#define PB_PROTOCOL_H

#include "frame.h"

/** The conversation's version, exchanged in HELLO. */
#define PB_PROTOCOL_VERSION 1

typedef enum pb_protocol_msg {
    PB_MSG_EOF = PB_FRAME_EOF,     /* not on the wire: the stream ended between two frames */
    PB_MSG_HELLO = PB_FRAME_HELLO, /* both ways, first: protocol and software versions */
    PB_MSG_PREPARE = 2,            /* home -> agent: run id, mode, store, baseline, upload, map */
    PB_MSG_RUN = 3,                /* home -> agent: run the analysis runner */
    PB_MSG_LIST = 4,               /* home -> agent: send the list of the cloud's files */
    PB_MSG_LIST_DATA = 5,          /* agent -> home: a chunk of the list */
    PB_MSG_LIST_END = 6,           /* agent -> home: end of the list (bytes, hash) */
    PB_MSG_ANSWER_DATA = 7,        /* home -> agent: a chunk of the answer */
    PB_MSG_ANSWER_END = 8,         /* home -> agent: end of the answer (bytes, hash) */
    PB_MSG_BUILD = 9,              /* home -> agent: build and store the bundle and the baseline */
    PB_MSG_RESULT = 10,            /* agent -> home: a step finished (JSON) */
    PB_MSG_ERROR = PB_FRAME_ERROR, /* either way: a step failed ({"code", "message", ...}) */
    PB_MSG_LOG = 12,               /* agent -> home: a log line ({"level", "text"}) */
    PB_MSG_PROGRESS = 13,          /* agent -> home: progress of a step ({"what","done","total"}) */
    PB_MSG_BYE = 14,               /* both ways: end of the conversation */
    PB_MSG_CANCEL = 15,            /* home -> agent: stop the current step */
    PB_MSG_MAX = 15
} pb_protocol_msg;

/** The catalogue as framing takes it (version, highest type, names). */
extern const pb_frame_types pb_protocol_types;

/** "HELLO", "PREPARE", ...; "?" for a number outside the catalogue. */
const char *pb_protocol_msg_name(int type);

/** pb_frame_io_init() with the sync's catalogue: the io the home and the agent talk through. */
int pb_protocol_io_init(pb_frame_io *io, pb_channel *ch, uint32_t max, pb_error *err);

#endif

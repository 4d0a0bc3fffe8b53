/*
 * protocol.c: the names of the sync's messages (protocol.h) and the io set up with them.
 * Role: engine/run/. Prerequisites: transfer/frame.h.
 */
#include "protocol.h"

static const char *const msg_names[PB_MSG_MAX + 1] = {
    "EOF",        "HELLO", "PREPARE", "RUN",   "LIST", "LIST_DATA", "LIST_END", "ANSWER_DATA",
    "ANSWER_END", "BUILD", "RESULT",  "ERROR", "LOG",  "PROGRESS",  "BYE",      "CANCEL",
};

const pb_frame_types pb_protocol_types = {PB_PROTOCOL_VERSION, PB_MSG_MAX, msg_names};

const char *pb_protocol_msg_name(int type)
{
    if (type < 0 || type > PB_MSG_MAX)
        return "?";
    return msg_names[type];
}

int pb_protocol_io_init(pb_frame_io *io, pb_channel *ch, uint32_t max, pb_error *err)
{
    int error = pb_frame_io_init(io, ch, max, err);
    if (error == 0)
        io->types = &pb_protocol_types;
    return error;
}

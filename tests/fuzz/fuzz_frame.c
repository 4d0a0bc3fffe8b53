/*
 * fuzz_frame.c: libFuzzer target of the frame reader (transfer/frame.c), what the agent and the
 * home read from each other over SSH: any byte stream ends in frames, a clean end, or a
 * one-line PB_ECORRUPT, never a crash, a hang or a read past a buffer. Frames whose length fits
 * get their checksum recomputed before the read (an odd first input byte turns that off), so
 * that mutations reach the payloads: JSON objects (pb_frame_json) and ERROR frames
 * (pb_frame_error_from), with the sync's catalogue (engine/run/protocol.c).
 * Seed corpus: tests/fuzz/corpus/frame (a sync's conversation, test_frame with
 * PB_WRITE_FUZZ_SEEDS=dir).
 */
#include <fcntl.h>
#include <xxhash.h>

#include "frame.h"
#include "fuzz_util.h"
#include "protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Recomputes the XXH3-64 trailer of each frame that fits in the input. */
static void fix_checksums(uint8_t *b, size_t n)
{
    size_t o = 0;
    while (o + PB_FRAME_HEADER + PB_FRAME_TRAILER <= n) {
        uint32_t len = (uint32_t)b[o + 3] << 24 | (uint32_t)b[o + 4] << 16 |
                       (uint32_t)b[o + 5] << 8 | b[o + 6];
        if ((size_t)len > n - o - PB_FRAME_HEADER - PB_FRAME_TRAILER)
            return;
        uint64_t h = XXH3_64bits(b + o, PB_FRAME_HEADER + len);
        for (int i = 0; i < 8; i++)
            b[o + PB_FRAME_HEADER + len + i] = (uint8_t)(h >> (56 - 8 * i));
        o += PB_FRAME_HEADER + len + PB_FRAME_TRAILER;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int ok[] = {PB_ECORRUPT, PB_ENET, 0};
    uint8_t *copy = malloc(size ? size : 1);
    pb_channel *ch = NULL;
    pb_frame_io io;
    pb_frame f;
    pb_error e = PB_ERROR_INIT;
    int rc = 0;

    if (!copy)
        return 0;
    memcpy(copy, data, size);
    if (size && !(data[0] & 1))
        fix_checksums(copy, size);
    const char *path = fuzz_file("frames", copy, size);
    int in = open(path, O_RDONLY | O_CLOEXEC), out = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (in < 0 || out < 0 || pb_channel_fd_new(&ch, in, out, 1, &e) != 0)
        abort();
    if (pb_frame_io_init(&io, ch, 1u << 16, &e) != 0)
        abort();
    io.types = &pb_protocol_types;
    for (int i = 0; i < 1000; i++) {
        if ((rc = pb_frame_read(&io, &f, &e)) < 0 || f.type == PB_FRAME_EOF)
            break;
        if (f.data[f.len] != '\0')
            abort();
        if (f.type == PB_FRAME_ERROR) {
            pb_error fe = PB_ERROR_INIT;
            if (pb_frame_error_from(&f, "peer", &fe) >= 0 || strchr(fe.msg, '\n'))
                abort();
        } else {
            json_t *j = NULL;
            pb_error je = PB_ERROR_INIT;
            int jr = pb_frame_json(&j, &f, &je);
            fuzz_check_error(jr, &je, ok);
            json_decref(j);
        }
    }
    fuzz_check_error(rc, &e, ok);
    pb_frame_io_dispose(&io);
    pb_channel_free(ch);
    free(copy);
    return 0;
}

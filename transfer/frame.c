/*
 * frame.c: the frame format (spec at the top of frame.h and in docs/protocol.md): frame
 * writer, strict reader, JSON payloads, the HELLO exchange and files streamed as data frames
 * closed by a checked END frame.
 * Role: transfer/ layer between the channel (bytes) and a conversation whose catalogue of
 * messages the caller gives (pb_frame_types). Prerequisites: libxxhash (XXH3-64 per frame,
 * XXH3-128 per file), jansson.
 * Memory: one payload buffer per io (the reader's limit), one chunk buffer per file stream.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "bytes.h"
#include "frame.h"
#include "fs.h"
#include "hex.h"

/* The largest type of the io's catalogue (255 without one). */
static int type_max(const pb_frame_io *io)
{
    return io->types ? io->types->max : 255;
}

const char *pb_frame_type_name(pb_frame_io *io, int type)
{
    if (io->types && io->types->names && type >= 0 && type <= io->types->max)
        return io->types->names[type];
    if (type == PB_FRAME_EOF)
        return "EOF";
    if (type == PB_FRAME_HELLO)
        return "HELLO";
    if (type == PB_FRAME_ERROR)
        return "ERROR";
    snprintf(io->tname, sizeof(io->tname), "type %d", type);
    return io->tname;
}

/* XXH3-64 of the header and the payload, with the io's hash state. */
static uint64_t frame_sum(pb_frame_io *io, const uint8_t head[PB_FRAME_HEADER], const void *payload,
                          size_t n)
{
    XXH3_state_t *st = io->xxh;
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, head, PB_FRAME_HEADER);
    if (n)
        XXH3_64bits_update(st, payload, n);
    return XXH3_64bits_digest(st);
}

int pb_frame_io_init(pb_frame_io *io, pb_channel *ch, uint32_t max, pb_error *err)
{
    memset(io, 0, sizeof(*io));
    if (max == 0)
        max = PB_FRAME_MAX_DEFAULT;
    if (max > PB_FRAME_MAX_LIMIT)
        return pb_error_set(err, PB_EINVALID, "protocol: frame limit %u above %u", max,
                            PB_FRAME_MAX_LIMIT);
    io->buf = malloc((size_t)max + 1);
    io->xxh = XXH3_createState();
    if (!io->buf || !io->xxh) {
        pb_frame_io_dispose(io);
        return pb_error_set(err, PB_ENOMEM, "protocol: out of memory");
    }
    io->ch = ch;
    io->max = max;
    return 0;
}

void pb_frame_io_dispose(pb_frame_io *io)
{
    if (!io)
        return;
    free(io->buf);
    io->buf = NULL;
    XXH3_freeState(io->xxh);
    io->xxh = NULL;
}

int pb_frame_write(pb_frame_io *io, int type, const void *payload, size_t n, pb_error *err)
{
    if (type <= 0 || type > type_max(io))
        return pb_error_set(err, PB_EINVALID, "protocol: cannot send frame type %d", type);
    if (n > io->max)
        return pb_error_set(err, PB_EINVALID, "protocol: %s payload of %zu bytes above %u",
                            pb_frame_type_name(io, type), n, io->max);
    uint8_t head[PB_FRAME_HEADER], tail[PB_FRAME_TRAILER];
    head[0] = 'P';
    head[1] = 'B';
    head[2] = (uint8_t)type;
    pb_put_be32(head + 3, (uint32_t)n);
    pb_put_be64(tail, frame_sum(io, head, payload, n));
    int rc = pb_channel_write(io->ch, head, sizeof(head), err);
    if (!rc && n)
        rc = pb_channel_write(io->ch, payload, n, err);
    if (!rc)
        rc = pb_channel_write(io->ch, tail, sizeof(tail), err);
    if (!rc) {
        io->wr_off += sizeof(head) + n + sizeof(tail);
        io->frames_out++;
    }
    return rc;
}

int pb_frame_write_json(pb_frame_io *io, int type, const json_t *obj, pb_error *err)
{
    char *s = json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (!s)
        return pb_error_set(err, PB_ENOMEM, "protocol: cannot encode a %s message",
                            pb_frame_type_name(io, type));
    int rc = pb_frame_write(io, type, s, strlen(s), err);
    free(s);
    return rc;
}

int pb_frame_write_error(pb_frame_io *io, int code, const char *msg, pb_error *err)
{
    json_t *o = json_pack("{s:i, s:s, s:s}", "code", code, "name", pb_strerror(code), "message",
                          msg ? msg : pb_strerror(code));
    if (!o)
        return pb_error_set(err, PB_ENOMEM, "protocol: out of memory");
    int rc = pb_frame_write_json(io, PB_FRAME_ERROR, o, err);
    json_decref(o);
    return rc;
}

/* Reads exactly n bytes of the current frame; a short stream is a truncated frame. */
static int read_part(pb_frame_io *io, void *buf, size_t n, uint64_t frame_off, size_t before,
                     size_t frame_len, pb_error *err)
{
    size_t got = 0;
    pb_error tmp = PB_ERROR_INIT;
    int rc = pb_channel_read_full(io->ch, buf, n, &got, 0, &tmp);
    io->rd_off += got;
    if (rc == PB_ENET && tmp.dep_code == 0)
        return pb_error_set(err, PB_ECORRUPT,
                            "protocol: frame at offset %llu: truncated: the stream ended after "
                            "%zu of %zu bytes",
                            (unsigned long long)frame_off, before + got, frame_len);
    if (rc)
        return pb_error_setd(err, tmp.code, tmp.dep_code, "%s", tmp.msg);
    return 0;
}

int pb_frame_read(pb_frame_io *io, pb_frame *f, pb_error *err)
{
    uint8_t head[PB_FRAME_HEADER], tail[PB_FRAME_TRAILER];
    uint64_t off = io->rd_off;
    memset(f, 0, sizeof(*f));
    f->offset = off;

    /* first byte: a clean end of stream is allowed only here */
    size_t got = 0;
    int rc = pb_channel_read_full(io->ch, head, 1, &got, 1, err);
    if (rc)
        return rc;
    if (got == 0) {
        f->type = PB_FRAME_EOF;
        return 0;
    }
    io->rd_off += 1;
    rc = read_part(io, head + 1, sizeof(head) - 1, off, 1, sizeof(head), err);
    if (rc)
        return rc;
    if (head[0] != 'P' || head[1] != 'B') {
        char shown[8];
        for (int i = 0; i < 7; i++)
            shown[i] = head[i] >= 0x20 && head[i] < 0x7f ? (char)head[i] : '.';
        shown[7] = '\0';
        return pb_error_set(err, PB_ECORRUPT,
                            "protocol: frame at offset %llu: bad magic (got \"%s\"): not a "
                            "plexburst protocol stream (a login banner or stray output on the "
                            "agent's stdout?)",
                            (unsigned long long)off, shown);
    }
    int type = head[2];
    uint32_t len = pb_get_be32(head + 3);
    if (type == 0 || type > type_max(io))
        return pb_error_set(err, PB_ECORRUPT, "protocol: frame at offset %llu: unknown type %d",
                            (unsigned long long)off, type);
    if (len > io->max)
        return pb_error_set(err, PB_ECORRUPT,
                            "protocol: frame at offset %llu: %s payload of %u bytes exceeds the "
                            "limit of %u",
                            (unsigned long long)off, pb_frame_type_name(io, type), len, io->max);
    size_t total = sizeof(head) + len + sizeof(tail);
    if (len) {
        rc = read_part(io, io->buf, len, off, sizeof(head), total, err);
        if (rc)
            return rc;
    }
    rc = read_part(io, tail, sizeof(tail), off, sizeof(head) + len, total, err);
    if (rc)
        return rc;
    if (frame_sum(io, head, io->buf, len) != pb_get_be64(tail))
        return pb_error_set(err, PB_ECORRUPT,
                            "protocol: frame at offset %llu: %s frame fails its checksum",
                            (unsigned long long)off, pb_frame_type_name(io, type));
    io->buf[len] = '\0';
    f->type = type;
    f->name = pb_frame_type_name(io, type);
    f->data = io->buf;
    f->len = len;
    io->frames_in++;
    return 0;
}

int pb_frame_json(json_t **out, const pb_frame *f, pb_error *err)
{
    json_error_t je;
    *out = NULL;
    json_t *o = json_loadb((const char *)f->data, f->len, JSON_REJECT_DUPLICATES, &je);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return pb_error_set(err, PB_ECORRUPT,
                            "protocol: frame at offset %llu: %s payload is not a JSON object%s%s",
                            (unsigned long long)f->offset, f->name ? f->name : "frame",
                            o ? "" : ": ", o ? "" : je.text);
    }
    *out = o;
    return 0;
}

int pb_frame_error_from(const pb_frame *f, const char *who, pb_error *err)
{
    json_t *o = NULL;
    pb_error tmp = PB_ERROR_INIT;
    if (pb_frame_json(&o, f, &tmp) != 0)
        return pb_error_set(err, PB_ERROR, "%s failed (unreadable error message)", who);
    json_int_t code = json_integer_value(json_object_get(o, "code"));
    const char *msg = json_string_value(json_object_get(o, "message"));
    if (code >= 0 || code < -100)
        code = PB_ERROR;
    int rc = pb_error_set(err, (int)code, "%s: %s", who, msg ? msg : pb_strerror((int)code));
    json_decref(o);
    return rc;
}

/* The protocol version of the io's catalogue (0 without one). */
static int version_of(const pb_frame_io *io)
{
    return io->types ? io->types->version : 0;
}

int pb_frame_hello(pb_frame_io *io, const char *role, const char *version, const json_t *extra,
                   json_t **peer, pb_error *err)
{
    int error = 0;
    json_t *mine = NULL, *theirs = NULL;
    pb_frame f;
    if (peer)
        *peer = NULL;
    mine = json_pack("{s:i, s:s, s:s, s:s}", "protocol", version_of(io), "software", "plexburst",
                     "version", version, "role", role);
    if (!mine) {
        error = pb_error_set(err, PB_ENOMEM, "protocol: out of memory");
        goto done;
    }
    if (extra)
        json_object_update(mine, (json_t *)extra);
    if ((error = pb_frame_write_json(io, PB_FRAME_HELLO, mine, err)) != 0)
        goto done;
    if ((error = pb_frame_read(io, &f, err)) != 0)
        goto done;
    if (f.type == PB_FRAME_EOF) {
        error = pb_error_set(err, PB_ENET, "protocol: the peer closed the stream before HELLO");
        goto done;
    }
    if (f.type == PB_FRAME_ERROR) {
        error = pb_frame_error_from(&f, "protocol: the peer refused the conversation", err);
        goto done;
    }
    if (f.type != PB_FRAME_HELLO) {
        error =
            pb_error_set(err, PB_ECORRUPT, "protocol: frame at offset %llu: expected HELLO, got %s",
                         (unsigned long long)f.offset, pb_frame_type_name(io, f.type));
        goto done;
    }
    if ((error = pb_frame_json(&theirs, &f, err)) != 0)
        goto done;
    json_int_t proto = json_integer_value(json_object_get(theirs, "protocol"));
    const char *sw = json_string_value(json_object_get(theirs, "software"));
    const char *ver = json_string_value(json_object_get(theirs, "version"));
    const char *prole = json_string_value(json_object_get(theirs, "role"));
    if (!sw || strcmp(sw, "plexburst") != 0 || !ver) {
        error = pb_error_set(err, PB_ECORRUPT, "protocol: the peer's HELLO is not plexburst's");
        goto done;
    }
    if (proto != version_of(io) || strcmp(ver, version) != 0) {
        char msg[400];
        snprintf(msg, sizeof(msg),
                 "version mismatch: this %s is plexburst %s (protocol %d), the %s is plexburst "
                 "%s (protocol %lld); run the same build on both sides",
                 role, version, version_of(io), prole ? prole : "peer", ver, (long long)proto);
        pb_error tmp = PB_ERROR_INIT;
        pb_frame_write_error(io, PB_EREFUSED, msg, &tmp); /* best effort: tell the peer */
        error = pb_error_set(err, PB_EREFUSED, "protocol: %s", msg);
        goto done;
    }
    if (peer) {
        *peer = theirs;
        theirs = NULL;
    }
done:
    json_decref(mine);
    json_decref(theirs);
    return error;
}

static void hex128(char out[33], XXH128_hash_t h)
{
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, h);
    pb_hex_encode(out, c.digest, sizeof(c.digest));
}

int pb_frame_send_file(pb_frame_io *io, int data_type, int end_type, const char *path,
                       const json_t *end_extra, pb_progress_fn progress, void *pp, pb_error *err)
{
    int error = 0, fd = -1;
    uint8_t *chunk = NULL;
    json_t *end = NULL;
    XXH3_state_t *st = XXH3_createState();
    size_t cap = PB_FRAME_DATA_CHUNK < io->max ? PB_FRAME_DATA_CHUNK : io->max;
    uint64_t total = 0, size = 0;

    chunk = malloc(cap);
    if (!st || !chunk) {
        error = pb_error_set(err, PB_ENOMEM, "protocol: out of memory");
        goto done;
    }
    XXH3_128bits_reset(st);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        error = pb_error_errno(err, "protocol: cannot open %s", path);
        goto done;
    }
    off_t end_off = lseek(fd, 0, SEEK_END);
    if (end_off > 0)
        size = (uint64_t)end_off;
    lseek(fd, 0, SEEK_SET);
    for (;;) {
        ssize_t n = read(fd, chunk, cap);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            error = pb_error_errno(err, "protocol: cannot read %s", path);
            goto done;
        }
        if (n == 0)
            break;
        XXH3_128bits_update(st, chunk, (size_t)n);
        if ((error = pb_frame_write(io, data_type, chunk, (size_t)n, err)) != 0)
            goto done;
        total += (uint64_t)n;
        pb_progress p = {"send", total, size, 0, 0, path};
        if (progress && progress(&p, pp)) {
            error = pb_error_set(err, PB_ECANCELLED, "protocol: cancelled");
            goto done;
        }
    }
    char hex[33];
    hex128(hex, XXH3_128bits_digest(st));
    end = json_pack("{s:I, s:s}", "bytes", (json_int_t)total, "xxh3", hex);
    if (!end) {
        error = pb_error_set(err, PB_ENOMEM, "protocol: out of memory");
        goto done;
    }
    if (end_extra)
        json_object_update(end, (json_t *)end_extra);
    error = pb_frame_write_json(io, end_type, end, err);
done:
    json_decref(end);
    if (fd >= 0)
        close(fd);
    free(chunk);
    XXH3_freeState(st);
    return error;
}

/* Checks a file stream's END frame against what arrived: its length and its XXH3-128. */
static int check_end(pb_frame_io *io, const pb_frame *f, json_t **eo, uint64_t total,
                     XXH128_hash_t got, pb_error *err)
{
    int error;
    if ((error = pb_frame_json(eo, f, err)) != 0)
        return error;
    json_int_t bytes = json_integer_value(json_object_get(*eo, "bytes"));
    const char *want = json_string_value(json_object_get(*eo, "xxh3"));
    char hex[33];
    hex128(hex, got);
    if ((uint64_t)bytes != total || !want || strcmp(want, hex) != 0)
        return pb_error_set(err, PB_ECORRUPT,
                            "protocol: frame at offset %llu: %s says %lld bytes / %s, received "
                            "%llu bytes / %s",
                            (unsigned long long)f->offset, pb_frame_type_name(io, f->type),
                            (long long)bytes, want ? want : "(none)", (unsigned long long)total,
                            hex);
    return 0;
}

int pb_frame_recv_file(pb_frame_io *io, int data_type, int end_type, const char *path, json_t **end,
                       pb_frame_other_fn other, void *op, pb_error *err)
{
    int error = 0, fd = -1;
    json_t *eo = NULL;
    XXH3_state_t *st = XXH3_createState();
    uint64_t total = 0;
    pb_frame f;

    if (end)
        *end = NULL;
    if (!st) {
        error = pb_error_set(err, PB_ENOMEM, "protocol: out of memory");
        goto done;
    }
    XXH3_128bits_reset(st);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        error = pb_error_errno(err, "protocol: cannot create %s", path);
        goto done;
    }
    for (;;) {
        if ((error = pb_frame_read(io, &f, err)) != 0)
            goto done;
        if (f.type == data_type) {
            XXH3_128bits_update(st, f.data, f.len);
            if ((error = pb_fs_write_all(fd, f.data, f.len, path, err)) < 0)
                goto done;
            total += f.len;
            continue;
        }
        if (f.type == end_type)
            break;
        if (f.type == PB_FRAME_EOF) {
            error = pb_error_set(err, PB_ENET,
                                 "protocol: the stream ended in the middle of a %s stream",
                                 pb_frame_type_name(io, data_type));
            goto done;
        }
        if (other && f.type != PB_FRAME_ERROR) {
            if ((error = other(&f, op, err)) != 0)
                goto done;
            continue;
        }
        if (f.type == PB_FRAME_ERROR) {
            if (other && (error = other(&f, op, err)) != 0)
                goto done;
            error = pb_frame_error_from(&f, "the peer", err);
            goto done;
        }
        error = pb_error_set(err, PB_ECORRUPT,
                             "protocol: frame at offset %llu: unexpected %s inside a %s stream",
                             (unsigned long long)f.offset, pb_frame_type_name(io, f.type),
                             pb_frame_type_name(io, data_type));
        goto done;
    }
    if ((error = check_end(io, &f, &eo, total, XXH3_128bits_digest(st), err)) != 0)
        goto done;
    if (fsync(fd) != 0 && errno != EINVAL) {
        error = pb_error_errno(err, "protocol: fsync %s", path);
        goto done;
    }
    if (end) {
        *end = eo;
        eo = NULL;
    }
done:
    json_decref(eo);
    if (fd >= 0)
        close(fd);
    if (error)
        unlink(path);
    XXH3_freeState(st);
    return error;
}

/*
 * test_frame.c: the framed protocol (transfer/frame.h) and the channels (transfer/channel.h):
 * round trips, the strict reader on corrupt / truncated / oversized / unknown frames, the HELLO
 * version check, files streamed as data frames, and the local channel's child process.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "channel.h"
#include "protocol.h"
#include "testutil.h"

static char dir[4096];

static void path_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

/* Writes frames into a file through an fd channel. */
static void write_frames(const char *path, int n)
{
    pb_error err = PB_ERROR_INIT;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    pb_channel *ch = NULL;
    pb_frame_io io;
    assert_int_equal(pb_channel_fd_new(&ch, -1, fd, 1, &err), 0);
    assert_int_equal(pb_protocol_io_init(&io, ch, 0, &err), 0);
    for (int i = 0; i < n; i++) {
        char payload[64];
        int len = snprintf(payload, sizeof(payload), "{\"i\":%d}", i);
        assert_int_equal(pb_frame_write(&io, PB_MSG_LOG, payload, (size_t)len, &err), 0);
    }
    assert_int_equal(pb_frame_write(&io, PB_MSG_BYE, NULL, 0, &err), 0);
    pb_frame_io_dispose(&io);
    pb_channel_free(ch);
}

/* Reads every frame of a file; returns the first error code (0 at a clean end). */
static int read_all(const char *path, uint32_t max, int *frames, pb_error *err)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    pb_channel *ch = NULL;
    pb_frame_io io;
    assert_int_equal(pb_channel_fd_new(&ch, fd, -1, 1, err), 0);
    assert_int_equal(pb_protocol_io_init(&io, ch, max, err), 0);
    int rc = 0;
    *frames = 0;
    for (;;) {
        pb_frame f;
        rc = pb_frame_read(&io, &f, err);
        if (rc || f.type == PB_FRAME_EOF)
            break;
        (*frames)++;
    }
    pb_frame_io_dispose(&io);
    pb_channel_free(ch);
    return rc;
}

static void test_roundtrip(void **state)
{
    (void)state;
    char path[4200];
    path_of(path, sizeof(path), "rt.frames");
    write_frames(path, 5);

    pb_error err = PB_ERROR_INIT;
    int fd = open(path, O_RDONLY);
    pb_channel *ch = NULL;
    pb_frame_io io;
    assert_int_equal(pb_channel_fd_new(&ch, fd, -1, 1, &err), 0);
    assert_int_equal(pb_protocol_io_init(&io, ch, 0, &err), 0);
    uint64_t expect_off = 0;
    for (int i = 0; i < 5; i++) {
        pb_frame f;
        assert_int_equal(pb_frame_read(&io, &f, &err), 0);
        assert_int_equal(f.type, PB_MSG_LOG);
        assert_int_equal(f.offset, expect_off);
        json_t *o = NULL;
        assert_int_equal(pb_frame_json(&o, &f, &err), 0);
        assert_int_equal(json_integer_value(json_object_get(o, "i")), i);
        json_decref(o);
        expect_off += PB_FRAME_HEADER + f.len + PB_FRAME_TRAILER;
    }
    pb_frame f;
    assert_int_equal(pb_frame_read(&io, &f, &err), 0);
    assert_int_equal(f.type, PB_MSG_BYE);
    assert_int_equal(f.len, 0);
    assert_int_equal(pb_frame_read(&io, &f, &err), 0);
    assert_int_equal(f.type, PB_FRAME_EOF);
    assert_int_equal(io.frames_in, 6);
    pb_frame_io_dispose(&io);
    pb_channel_free(ch);
    assert_string_equal(pb_protocol_msg_name(PB_MSG_ANSWER_END), "ANSWER_END");
}

/* Rewrites byte `at` of a file. */
static void poke(const char *path, off_t at, unsigned char v)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, &v, 1, at), 1);
    close(fd);
}

static void test_corrupt(void **state)
{
    (void)state;
    char path[4200];
    pb_error err = PB_ERROR_INIT;
    int n = 0;
    path_of(path, sizeof(path), "bad.frames");

    /* a flipped payload byte in the second frame: checksum, with its offset */
    write_frames(path, 3);
    poke(path, 22 + 7 + 2, 'X'); /* each frame: 7 header + 7 payload ({"i":0}) + 8 = 22 */
    pb_error_clear(&err);
    assert_int_equal(read_all(path, 0, &n, &err), PB_ECORRUPT);
    assert_non_null(strstr(err.msg, "offset 22: LOG frame fails its checksum"));
    print_message("checksum: %s\n", err.msg);

    /* bad magic at the start */
    write_frames(path, 1);
    poke(path, 0, 'X');
    pb_error_clear(&err);
    assert_int_equal(read_all(path, 0, &n, &err), PB_ECORRUPT);
    assert_non_null(strstr(err.msg, "offset 0: bad magic"));
    assert_int_equal(n, 0);

    /* unknown type */
    write_frames(path, 1);
    poke(path, 2, 200);
    pb_error_clear(&err);
    assert_int_equal(read_all(path, 0, &n, &err), PB_ECORRUPT);
    assert_non_null(strstr(err.msg, "unknown type 200"));

    /* oversized: a length above the reader's limit is refused before any payload is read */
    write_frames(path, 1);
    poke(path, 3, 0x7f);
    pb_error_clear(&err);
    assert_int_equal(read_all(path, 0, &n, &err), PB_ECORRUPT);
    assert_non_null(strstr(err.msg, "exceeds the limit"));
    print_message("oversized: %s\n", err.msg);
    /* and a small limit refuses a legal frame too */
    write_frames(path, 1);
    pb_error_clear(&err);
    assert_int_equal(read_all(path, 4, &n, &err), PB_ECORRUPT);

    /* truncated at every length inside the stream */
    write_frames(path, 2);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    for (off_t cut = 1; cut < st.st_size; cut++) {
        assert_int_equal(truncate(path, cut), 0);
        pb_error_clear(&err);
        int rc = read_all(path, 0, &n, &err);
        /* a cut exactly between two frames is a clean (shorter) stream */
        if (rc == 0) {
            assert_true(cut == 22 || cut == 44);
            continue;
        }
        assert_int_equal(rc, PB_ECORRUPT);
        assert_non_null(strstr(err.msg, "truncated"));
        write_frames(path, 2);
    }
    /* limits of the io itself */
    pb_frame_io io;
    assert_int_equal(pb_protocol_io_init(&io, NULL, PB_FRAME_MAX_LIMIT + 1, &err), PB_EINVALID);
}

/* HELLO between two processes over a socketpair; the child claims `ver`. */
static int hello_with(const char *ver, pb_error *err, json_t **peer)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(sv[0]);
        pb_channel *ch = NULL;
        pb_frame_io io;
        pb_error e = PB_ERROR_INIT;
        pb_channel_fd_new(&ch, sv[1], sv[1], 1, &e);
        pb_protocol_io_init(&io, ch, 0, &e);
        int rc = pb_frame_hello(&io, "agent", ver, NULL, NULL, &e);
        pb_frame_io_dispose(&io);
        pb_channel_free(ch);
        _exit(rc == 0 ? 0 : 1);
    }
    close(sv[1]);
    pb_channel *ch = NULL;
    pb_frame_io io;
    assert_int_equal(pb_channel_fd_new(&ch, sv[0], sv[0], 1, err), 0);
    assert_int_equal(pb_protocol_io_init(&io, ch, 0, err), 0);
    json_t *extra = json_pack("{s:s}", "workdir", "/x");
    int rc = pb_frame_hello(&io, "home", "0.1.0", extra, peer, err);
    json_decref(extra);
    pb_frame_io_dispose(&io);
    pb_channel_free(ch);
    int st = 0;
    waitpid(pid, &st, 0);
    return rc;
}

static void test_hello(void **state)
{
    (void)state;
    pb_error err = PB_ERROR_INIT;
    json_t *peer = NULL;
    assert_int_equal(hello_with("0.1.0", &err, &peer), 0);
    assert_string_equal(json_string_value(json_object_get(peer, "role")), "agent");
    json_decref(peer);
    peer = NULL;
    pb_error_clear(&err);
    assert_int_equal(hello_with("9.9.9", &err, &peer), PB_EREFUSED);
    assert_null(peer);
    print_message("mismatch: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "9.9.9"));
    assert_non_null(strstr(err.msg, "0.1.0"));
}

static void test_files(void **state)
{
    (void)state;
    char src[4200], frames[4200], dst[4200];
    pb_error err = PB_ERROR_INIT;
    path_of(src, sizeof(src), "src.bin");
    path_of(frames, sizeof(frames), "file.frames");
    path_of(dst, sizeof(dst), "dst.bin");
    /* 1.3 MB of varied bytes: several data frames */
    FILE *f = fopen(src, "wb");
    for (int i = 0; i < 1300000; i++)
        fputc((int)(((unsigned)i * 7919u) >> 3 & 0xff), f);
    fclose(f);

    int fd = open(frames, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pb_channel *ch = NULL;
    pb_frame_io io;
    assert_int_equal(pb_channel_fd_new(&ch, -1, fd, 1, &err), 0);
    assert_int_equal(pb_protocol_io_init(&io, ch, 0, &err), 0);
    assert_int_equal(pb_frame_write(&io, PB_MSG_LOG, "{\"text\":\"before\"}", 17, &err), 0);
    json_t *extra = json_pack("{s:s}", "kind", "manifest");
    assert_int_equal(
        pb_frame_send_file(&io, PB_MSG_LIST_DATA, PB_MSG_LIST_END, src, extra, NULL, NULL, &err),
        0);
    json_decref(extra);
    pb_frame_io_dispose(&io);
    pb_channel_free(ch);

    /* the LOG in front is refused without a handler */
    fd = open(frames, O_RDONLY);
    assert_int_equal(pb_channel_fd_new(&ch, fd, -1, 1, &err), 0);
    assert_int_equal(pb_protocol_io_init(&io, ch, 0, &err), 0);
    pb_error_clear(&err);
    assert_int_equal(
        pb_frame_recv_file(&io, PB_MSG_LIST_DATA, PB_MSG_LIST_END, dst, NULL, NULL, NULL, &err),
        PB_ECORRUPT);
    assert_int_equal(access(dst, F_OK), -1);
    pb_frame_io_dispose(&io);
    pb_channel_free(ch);

    /* then read with one: the file arrives whole, the END carries the extra fields */
    fd = open(frames, O_RDONLY);
    assert_int_equal(pb_channel_fd_new(&ch, fd, -1, 1, &err), 0);
    assert_int_equal(pb_protocol_io_init(&io, ch, 0, &err), 0);
    pb_frame f0;
    assert_int_equal(pb_frame_read(&io, &f0, &err), 0);
    json_t *end = NULL;
    assert_int_equal(
        pb_frame_recv_file(&io, PB_MSG_LIST_DATA, PB_MSG_LIST_END, dst, &end, NULL, NULL, &err), 0);
    assert_string_equal(json_string_value(json_object_get(end, "kind")), "manifest");
    assert_int_equal(json_integer_value(json_object_get(end, "bytes")), 1300000);
    json_decref(end);
    pb_frame_io_dispose(&io);
    pb_channel_free(ch);
    assert_int_equal(tu_sh("cmp -s '%s' '%s'", src, dst), 0);

    /* a data frame rewritten consistently (valid frame checksum) is caught by the END hash */
    struct stat st;
    stat(frames, &st);
    int rfd = open(frames, O_RDWR);
    unsigned char head[7];
    off_t at = 7 + 17 + 8; /* the first data frame */
    assert_int_equal(pread(rfd, head, 7, at), 7);
    uint32_t len = (uint32_t)head[3] << 24 | head[4] << 16 | head[5] << 8 | head[6];
    unsigned char *buf = malloc(len + 7);
    assert_int_equal(pread(rfd, buf, len + 7, at), (ssize_t)(len + 7));
    buf[7 + 10] ^= 1;
    /* recompute the frame checksum with a throwaway io writing to a pipe-less file */
    char tmpf[4200];
    path_of(tmpf, sizeof(tmpf), "one.frame");
    int tfd = open(tmpf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pb_channel *tch = NULL;
    pb_frame_io tio;
    pb_channel_fd_new(&tch, -1, tfd, 1, &err);
    pb_protocol_io_init(&tio, tch, 0, &err);
    pb_frame_write(&tio, PB_MSG_LIST_DATA, buf + 7, len, &err);
    pb_frame_io_dispose(&tio);
    pb_channel_free(tch);
    unsigned char sum[8];
    tfd = open(tmpf, O_RDONLY);
    assert_int_equal(pread(tfd, sum, 8, 7 + len), 8);
    close(tfd);
    assert_int_equal(pwrite(rfd, buf + 7, len, at + 7), (ssize_t)len);
    assert_int_equal(pwrite(rfd, sum, 8, at + 7 + len), 8);
    close(rfd);
    free(buf);
    fd = open(frames, O_RDONLY);
    assert_int_equal(pb_channel_fd_new(&ch, fd, -1, 1, &err), 0);
    assert_int_equal(pb_protocol_io_init(&io, ch, 0, &err), 0);
    assert_int_equal(pb_frame_read(&io, &f0, &err), 0);
    pb_error_clear(&err);
    assert_int_equal(
        pb_frame_recv_file(&io, PB_MSG_LIST_DATA, PB_MSG_LIST_END, dst, NULL, NULL, NULL, &err),
        PB_ECORRUPT);
    print_message("tampered: %s\n", err.msg);
    assert_int_equal(access(dst, F_OK), -1);
    pb_frame_io_dispose(&io);
    pb_channel_free(ch);
}

static int never(void *p)
{
    return *(int *)p;
}

static void test_local_channel(void **state)
{
    (void)state;
    pb_error err = PB_ERROR_INIT;
    pb_channel *ch = NULL;
    char *argv[] = {"/bin/cat", NULL};
    assert_int_equal(pb_channel_spawn(&ch, argv, NULL, &err), 0);
    assert_true(pb_channel_pid(ch) > 0);
    pb_frame_io io;
    assert_int_equal(pb_protocol_io_init(&io, ch, 0, &err), 0);
    assert_int_equal(pb_frame_write(&io, PB_MSG_PROGRESS, "{}", 2, &err), 0);
    pb_frame f;
    assert_int_equal(pb_frame_read(&io, &f, &err), 0);
    assert_int_equal(f.type, PB_MSG_PROGRESS);
    int status = -2;
    assert_int_equal(pb_channel_close(ch, &status, &err), 0);
    assert_int_equal(status, 0);
    assert_int_equal(pb_frame_read(&io, &f, &err), 0);
    assert_int_equal(f.type, PB_FRAME_EOF);
    pb_frame_io_dispose(&io);
    pb_channel_free(ch);

    /* a missing program is reported at spawn */
    char *bad[] = {"/nonexistent/agent", NULL};
    pb_error_clear(&err);
    assert_int_equal(pb_channel_spawn(&ch, bad, NULL, &err), PB_ENOTFOUND);
    assert_null(ch);

    /* a read waiting on a silent child is cancelled by the hook; free stops the child */
    char *sleeper[] = {"/bin/sleep", "30", NULL};
    assert_int_equal(pb_channel_spawn(&ch, sleeper, NULL, &err), 0);
    int flag = 1;
    pb_channel_set_cancel(ch, never, &flag);
    char b[4];
    size_t got;
    pb_error_clear(&err);
    assert_int_equal(pb_channel_read(ch, b, sizeof(b), &got, &err), PB_ECANCELLED);
    pid_t pid = pb_channel_pid(ch);
    pb_channel_free(ch);
    assert_int_equal(kill(pid, 0), -1);

    /* writing to a child that exited is an error, not a SIGPIPE */
    char *truecmd[] = {"/bin/true", NULL};
    assert_int_equal(pb_channel_spawn(&ch, truecmd, NULL, &err), 0);
    usleep(200000);
    static char big[1 << 17];
    pb_error_clear(&err);
    assert_int_equal(pb_channel_write(ch, big, sizeof(big), &err), PB_ENET);
    pb_channel_free(ch);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("frame"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),     cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_hello),         cmocka_unit_test(test_files),
        cmocka_unit_test(test_local_channel),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tu_sh("rm -rf '%s'", dir);
    return rc;
}

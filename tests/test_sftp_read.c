/*
 * test_sftp_read.c: SFTP downloads through the session's buffered receive path, its allocator
 * and the bulk AES-CTR (docs/ssh.md, "Benchmark"), against the loopback OpenSSH server of
 * scripts/ssh-test-server: every byte of files whose sizes straddle the 16-byte cipher block,
 * the 4 KiB key-stream refill, the 30000-byte SFTP read and the 32 KiB SSH packet, read from
 * offsets up to the end (a resumed download) with the default and the smallest buffer; a
 * resumed pb_ssh_get_file; a remote file that grows during the download (the copy is a prefix
 * of the file at its end, at least as long as it was); hundreds of small request/answer round
 * trips (stat, remote command) that must not wait on bytes already read from the socket; and a
 * second session after the first was freed. Skipped (77) when sshd cannot run here.
 * Role: integration test (labels online, integration). Prerequisites: openssh-server.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ssh.h"
#include "transfer_util.h"

static char T[1024]; /* the server's directory */
static char W[1024]; /* scratch files */
static int port;

/* DIR/NAME in one of four rotating slots: valid until the fourth call after it. */
static const char *path_in(const char *dir, const char *name)
{
    static char slots[4][1200];
    static int next;
    char *p = slots[next++ % 4];
    snprintf(p, sizeof(slots[0]), "%s/%s", dir, name);
    return p;
}

static pb_ssh *session(void)
{
    pb_ssh_options o;
    pb_ssh_options_init(&o);
    o.host = "127.0.0.1";
    o.port = port;
    o.user = "root";
    o.key_file = path_in(T, "client_ed25519");
    o.known_hosts = path_in(T, "known_hosts");
    o.use_agent = -1;
    o.connect_timeout_ms = 10000;
    pb_ssh *s = NULL;
    pb_error err = PB_ERROR_INIT;
    int rc = pb_ssh_connect(&s, &o, &err);
    if (rc)
        fprintf(stderr, "connect: %s\n", err.msg);
    assert_int_equal(rc, 0);
    return s;
}

static unsigned char *make_bytes(size_t n, unsigned seed)
{
    unsigned char *p = malloc(n ? n : 1);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (unsigned char)(seed >> 16);
    }
    return p;
}

static void write_bytes(const char *path, const unsigned char *p, size_t n, const char *mode)
{
    FILE *f = fopen(path, mode);
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

typedef struct mem_sink {
    unsigned char *buf;
    size_t len, cap;
    const char *grow; /* a remote path to append `extra` bytes to at the first call */
    const unsigned char *extra;
    size_t extra_len;
} mem_sink;

static int to_mem(void *payload, const void *data, size_t n, pb_error *err)
{
    (void)err;
    mem_sink *m = payload;
    if (m->grow) {
        write_bytes(m->grow, m->extra, m->extra_len, "ab");
        m->grow = NULL;
    }
    if (m->len + n > m->cap) {
        m->cap = (m->len + n) * 2;
        m->buf = realloc(m->buf, m->cap);
        assert_non_null(m->buf);
    }
    memcpy(m->buf + m->len, data, n);
    m->len += n;
    return 0;
}

static void test_sizes_and_offsets(void **state)
{
    (void)state;
    const size_t sizes[] = {0,     1,     16,    17,    4095,  4096,   4097,
                            29999, 30000, 30001, 32768, 32781, 3145735};
    const size_t buffers[] = {0, 30000};
    pb_ssh *s = session();
    const char *remote = path_in(W, "remote");
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        unsigned char *src = make_bytes(n, (unsigned)i + 1);
        write_bytes(remote, src, n, "wb");
        size_t offs[] = {0, 1, 15, n / 2, n ? n - 1 : 0, n};
        for (size_t b = 0; b < 2; b++) {
            for (size_t k = 0; k < sizeof(offs) / sizeof(offs[0]); k++) {
                if (offs[k] > n)
                    continue;
                pb_ssh_xfer x = PB_SSH_XFER_INIT;
                x.buffer = buffers[b];
                mem_sink m = {0};
                pb_error err = PB_ERROR_INIT;
                int rc = pb_ssh_read_file(s, remote, offs[k], to_mem, &m, &x, &err);
                if (rc)
                    fprintf(stderr, "size %zu offset %zu: %s\n", n, offs[k], err.msg);
                assert_int_equal(rc, 0);
                assert_int_equal(m.len, n - offs[k]);
                assert_int_equal(x.bytes_moved, n - offs[k]);
                assert_int_equal(x.resumed_from, offs[k]);
                if (m.len)
                    assert_memory_equal(m.buf, src + offs[k], m.len);
                free(m.buf);
            }
        }
        free(src);
    }
    /* A resumed pb_ssh_get_file: the local file holds a prefix. */
    unsigned char *src = make_bytes(5000003, 99);
    write_bytes(remote, src, 5000003, "wb");
    const char *back = path_in(W, "back");
    write_bytes(back, src, 1234567, "wb");
    pb_ssh_xfer x = PB_SSH_XFER_INIT;
    x.resume = 1;
    pb_error err = PB_ERROR_INIT;
    assert_int_equal(pb_ssh_get_file(s, remote, back, &x, &err), 0);
    assert_int_equal(x.resumed_from, 1234567);
    assert_int_equal(x.bytes_moved, 5000003 - 1234567);
    assert_int_equal(tu_sh("cmp -s '%s' '%s'", remote, back), 0);
    free(src);
    assert_false(pb_ssh_lost(s));
    pb_ssh_free(s);
}

static void test_growing_file(void **state)
{
    (void)state;
    pb_ssh *s = session();
    const char *remote = path_in(W, "growing");
    const size_t n = 4u << 20, more = 1u << 20;
    unsigned char *src = make_bytes(n, 5), *extra = make_bytes(more, 6);
    write_bytes(remote, src, n, "wb");
    mem_sink m = {0};
    m.grow = remote;
    m.extra = extra;
    m.extra_len = more;
    pb_ssh_xfer x = PB_SSH_XFER_INIT;
    pb_error err = PB_ERROR_INIT;
    assert_int_equal(pb_ssh_read_file(s, remote, 0, to_mem, &m, &x, &err), 0);
    /* Whatever of the growth it saw: a prefix of the file as it ends, never a hole or a mix. */
    assert_true(m.len >= n);
    assert_true(m.len <= n + more);
    assert_memory_equal(m.buf, src, n);
    if (m.len > n)
        assert_memory_equal(m.buf + n, extra, m.len - n);
    free(m.buf);
    free(src);
    free(extra);
    pb_ssh_free(s);
}

static void test_round_trips(void **state)
{
    (void)state;
    char remote[1200];
    snprintf(remote, sizeof(remote), "%s", path_in(W, "small"));
    unsigned char *src = make_bytes(100, 7);
    write_bytes(remote, src, 100, "wb");
    for (int round = 0; round < 2; round++) { /* the second session after the first was freed */
        pb_ssh *s = session();
        for (int i = 0; i < 60; i++) {
            pb_error err = PB_ERROR_INIT;
            uint64_t size = 0;
            assert_int_equal(pb_ssh_stat_size(s, remote, &size, &err), 0);
            assert_int_equal(size, 100);
            if (i % 6 == 0) { /* a remote command: a channel of its own */
                char out[64] = "";
                int status = -1;
                int rc =
                    pb_ssh_exec(s, "echo ok", NULL, 0, out, sizeof(out), NULL, 0, &status, &err);
                if (rc)
                    fprintf(stderr, "exec: %s\n", err.msg);
                assert_int_equal(rc, 0);
                assert_int_equal(status, 0);
                assert_string_equal(out, "ok\n");
            }
            mem_sink m = {0};
            pb_ssh_xfer x = PB_SSH_XFER_INIT;
            int rc = pb_ssh_read_file(s, remote, (uint64_t)(i % 100), to_mem, &m, &x, &err);
            if (rc)
                fprintf(stderr, "read: %s\n", err.msg);
            assert_int_equal(rc, 0);
            assert_int_equal(m.len, 100 - i % 100);
            assert_memory_equal(m.buf, src + i % 100, m.len);
            free(m.buf);
        }
        pb_ssh_free(s);
    }
    free(src);
}

int main(void)
{
    snprintf(T, sizeof(T), "%s", tu_tmpdir("sftpr-sshd"));
    const char *log = path_in(T, "start.log");
    int rc = xu_sshd_start(&port, T, log);
    if (rc == 77) {
        char why[2048] = "";
        tu_sh_out(why, sizeof(why), "tail -5 '%s'", log);
        tu_sh("rm -rf '%s'", T);
        fprintf(stderr, "sshd cannot run here: %s\n", why);
        return 77;
    }
    if (rc != 0) {
        tu_sh("rm -rf '%s'", T);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes_and_offsets),
        cmocka_unit_test(test_growing_file),
        cmocka_unit_test(test_round_trips),
    };
    int failed = XU_RUN_IN_SCRATCH(W, "sftpr", tests);
    xu_sshd_stop(T);
    tu_sh("rm -rf '%s'", T);
    return failed ? 1 : 0;
}

/*
 * bench_ssh.c: bulk transfer over the SSH transport (transfer/ssh.h), driven by
 * bench/bench_ssh.sh against the loopback sshd of scripts/ssh-test-server and compared with
 * scp there. Modes: `put` / `get` (SFTP, pb_ssh_put_file / pb_ssh_get_file) and `cat-put` /
 * `cat-get` (an exec channel running `cat > FILE` / `cat FILE`, for comparison).
 * Prints one line: "MODE BYTES SECONDS MiB/s".
 * Role: benchmark only (never in CI). Prerequisites: a running sshd and its keys.
 *
 *   bench_ssh MODE PORT KEY KNOWN_HOSTS LOCAL REMOTE [BUFFER_BYTES]
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ssh.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* `cat > REMOTE` fed from LOCAL (put), or `cat REMOTE` written to LOCAL (get), over an exec
 * channel in BUFSIZE steps; the bytes moved are added to *bytes. */
static int cat_xfer(pb_ssh *s, int put, const char *local, const char *remote, size_t bufsize,
                    uint64_t *bytes, pb_error *err)
{
    char q[4200], cmd[4300];
    pb_ssh_quote(q, sizeof(q), remote);
    snprintf(cmd, sizeof(cmd), put ? "cat > %s" : "cat %s", q);
    pb_channel *ch = NULL;
    int error = pb_channel_ssh_new(&ch, s, 0, cmd, 60000, err);
    if (error < 0)
        return error;
    int fd = put ? open(local, O_RDONLY) : open(local, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    char *buf = malloc(bufsize);
    for (;;) {
        size_t got = 0;
        if (put) {
            ssize_t n = read(fd, buf, bufsize);
            if (n <= 0)
                break;
            got = (size_t)n;
            if ((error = pb_channel_write(ch, buf, got, err)) < 0)
                break;
        } else {
            if ((error = pb_channel_read(ch, buf, bufsize, &got, err)) < 0 || got == 0)
                break;
            if (write(fd, buf, got) != (ssize_t)got) {
                error = pb_error_errno(err, "write %s", local);
                break;
            }
        }
        *bytes += got;
    }
    int status = -1;
    if (error == 0)
        error = pb_channel_close(ch, &status, err);
    pb_channel_free(ch);
    free(buf);
    close(fd);
    return error;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: bench_ssh put|get|cat-put|cat-get PORT KEY KNOWN_HOSTS LOCAL "
                        "REMOTE [BUFFER_BYTES]\n");
        return 2;
    }
    const char *mode = argv[1], *local = argv[5], *remote = argv[6];
    size_t buffer = argc > 7 ? (size_t)strtoull(argv[7], NULL, 10) : 0;
    pb_ssh_options o;
    pb_ssh_options_init(&o);
    o.host = "127.0.0.1";
    o.port = atoi(argv[2]);
    o.user = "root";
    o.key_file = argv[3];
    o.known_hosts = argv[4];
    o.use_agent = -1;
    pb_error err = PB_ERROR_INIT;
    pb_ssh *s = NULL;
    if (pb_ssh_connect(&s, &o, &err) < 0) {
        fprintf(stderr, "bench_ssh: %s\n", err.msg);
        return 1;
    }
    pb_ssh_xfer x = {PB_SSH_XFER_VERSION, 0, buffer, 0, NULL, NULL, 0, 0, 0};
    uint64_t bytes = 0;
    double t0 = now_s();
    int rc;
    if (!strcmp(mode, "put"))
        rc = pb_ssh_put_file(s, local, remote, &x, &err);
    else if (!strcmp(mode, "get"))
        rc = pb_ssh_get_file(s, remote, local, &x, &err);
    else if (!strcmp(mode, "cat-put"))
        rc = cat_xfer(s, 1, local, remote, buffer ? buffer : 1 << 20, &bytes, &err);
    else if (!strcmp(mode, "cat-get"))
        rc = cat_xfer(s, 0, local, remote, buffer ? buffer : 1 << 20, &bytes, &err);
    else {
        fprintf(stderr, "bench_ssh: unknown mode %s\n", mode);
        return 2;
    }
    double dt = now_s() - t0;
    if (rc < 0) {
        fprintf(stderr, "bench_ssh: %s\n", err.msg);
        pb_ssh_free(s);
        return 1;
    }
    if (!bytes)
        bytes = x.bytes_moved;
    printf("%s %llu %.3f %.1f\n", mode, (unsigned long long)bytes, dt,
           (double)bytes / dt / 1048576.0);
    pb_ssh_free(s);
    return 0;
}

/*
 * channel.c: the channel interface's dispatch (byte counting, exact reads) and the `fd` channel
 * over two file descriptors, used by the agent for its stdin/stdout and by tests over files.
 * Role: transfer/ layer under the framed protocol (frame.c). Prerequisites: POSIX.
 * SIGPIPE: writes block it for the calling thread and consume a pending one, so a peer that
 * went away is an error (PB_ENET), never the death of the process.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"
#include "channel_int.h"

int pb_channel_read(pb_channel *ch, void *buf, size_t cap, size_t *got, pb_error *err)
{
    *got = 0;
    if (!ch || !ch->ops || !ch->ops->read)
        return pb_error_set(err, PB_EINVALID, "channel: not open");
    int rc = ch->ops->read(ch, buf, cap, got, err);
    if (rc == 0)
        ch->bytes_in += *got;
    return rc;
}

int pb_channel_read_full(pb_channel *ch, void *buf, size_t n, size_t *got, int eof_ok,
                         pb_error *err)
{
    size_t done = 0;
    if (got)
        *got = 0;
    while (done < n) {
        size_t k = 0;
        int rc = pb_channel_read(ch, (char *)buf + done, n - done, &k, err);
        if (rc)
            return rc;
        if (k == 0) {
            if (done == 0 && eof_ok)
                return 0;
            if (got)
                *got = done;
            return pb_error_set(err, PB_ENET, "channel %s: stream ended after %zu of %zu bytes",
                                ch->desc, done, n);
        }
        done += k;
    }
    if (got)
        *got = done;
    return 0;
}

int pb_channel_write(pb_channel *ch, const void *buf, size_t n, pb_error *err)
{
    if (!ch || !ch->ops || !ch->ops->write)
        return pb_error_set(err, PB_EINVALID, "channel: not open");
    int rc = ch->ops->write(ch, buf, n, err);
    if (rc == 0)
        ch->bytes_out += n;
    return rc;
}

int pb_channel_close(pb_channel *ch, int *status, pb_error *err)
{
    if (status)
        *status = -1;
    if (!ch || !ch->ops || !ch->ops->close)
        return 0;
    int st = -1;
    int rc = ch->ops->close(ch, &st, err);
    if (status)
        *status = st;
    return rc;
}

void pb_channel_free(pb_channel *ch)
{
    if (ch && ch->ops && ch->ops->free)
        ch->ops->free(ch);
}

void pb_channel_set_cancel(pb_channel *ch, int (*cancel)(void *), void *payload)
{
    if (!ch)
        return;
    ch->cancel = cancel;
    ch->cancel_payload = payload;
}

/* ---------------------------------------------------------------------------------------- */
/* Shared fd helpers (channel_int.h)                                                          */

int pb_chan__wait_read(pb_channel *ch, int fd, pb_error *err)
{
    for (;;) {
        if (ch->cancel && ch->cancel(ch->cancel_payload))
            return pb_error_set(err, PB_ECANCELLED, "channel %s: cancelled", ch->desc);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, 200);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return pb_error_errno(err, "channel %s: poll", ch->desc);
        }
        if (n > 0)
            return 0;
    }
}

int pb_chan__read_fd(pb_channel *ch, int fd, void *buf, size_t cap, size_t *got, pb_error *err)
{
    *got = 0;
    for (;;) {
        int rc = pb_chan__wait_read(ch, fd, err);
        if (rc)
            return rc;
        ssize_t n = read(fd, buf, cap);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return pb_error_setd(err, PB_ENET, errno, "channel %s: read: %s", ch->desc,
                                 strerror(errno));
        }
        *got = (size_t)n;
        return 0;
    }
}

int pb_chan__write_fd(pb_channel *ch, int fd, const void *buf, size_t n, pb_error *err)
{
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    int rc = 0;
    const char *p = buf;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                struct pollfd pf = {.fd = fd, .events = POLLOUT};
                poll(&pf, 1, 200);
                continue;
            }
            int e = errno;
            if (e == EPIPE) {
                struct timespec zero = {0, 0};
                sigtimedwait(&pipe_set, NULL, &zero);
                rc = pb_error_setd(err, PB_ENET, e, "channel %s: the peer closed the stream",
                                   ch->desc);
            } else {
                rc = pb_error_setd(err, PB_ENET, e, "channel %s: write: %s", ch->desc, strerror(e));
            }
            break;
        }
        p += k;
        n -= (size_t)k;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* The fd channel                                                                             */

typedef struct fd_channel {
    pb_channel base;
    int in_fd, out_fd, own;
} fd_channel;

static int fd_read(pb_channel *ch, void *buf, size_t cap, size_t *got, pb_error *err)
{
    fd_channel *c = (fd_channel *)ch;
    return pb_chan__read_fd(ch, c->in_fd, buf, cap, got, err);
}

static int fd_write(pb_channel *ch, const void *buf, size_t n, pb_error *err)
{
    fd_channel *c = (fd_channel *)ch;
    if (c->out_fd < 0)
        return pb_error_set(err, PB_EINVALID, "channel %s: closed for writing", ch->desc);
    return pb_chan__write_fd(ch, c->out_fd, buf, n, err);
}

static int fd_close(pb_channel *ch, int *status, pb_error *err)
{
    (void)err;
    fd_channel *c = (fd_channel *)ch;
    *status = -1;
    if (c->own && c->out_fd >= 0 && c->out_fd != c->in_fd)
        close(c->out_fd);
    c->out_fd = -1;
    return 0;
}

static void fd_free(pb_channel *ch)
{
    fd_channel *c = (fd_channel *)ch;
    if (c->own) {
        if (c->out_fd >= 0 && c->out_fd != c->in_fd)
            close(c->out_fd);
        if (c->in_fd >= 0)
            close(c->in_fd);
    }
    free(c);
}

static const pb_channel_ops fd_ops = {
    PB_CHANNEL_OPS_VERSION, "fd", fd_read, fd_write, fd_close, fd_free,
};

int pb_channel_fd_new(pb_channel **out, int in_fd, int out_fd, int own, pb_error *err)
{
    *out = NULL;
    fd_channel *c = calloc(1, sizeof(*c));
    if (!c)
        return pb_error_set(err, PB_ENOMEM, "channel: out of memory");
    c->base.ops = &fd_ops;
    c->in_fd = in_fd;
    c->out_fd = out_fd;
    c->own = own;
    snprintf(c->base.desc, sizeof(c->base.desc), "fd %d/%d", in_fd, out_fd);
    *out = &c->base;
    return 0;
}

pid_t pb_channel_pid(const pb_channel *ch)
{
    if (!ch || !ch->ops || strcmp(ch->ops->kind, "local") != 0)
        return 0;
    return pb_chan__local_pid(ch);
}

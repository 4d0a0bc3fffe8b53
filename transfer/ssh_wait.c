/*
 * ssh_wait.c: the non-blocking I/O model of ssh.h: the one wait function (poll on libssh2's
 * directions, cancel hook, keepalive, dead-peer detection, deadlines), the receive callback
 * (buffered: one system call per 256 KiB; it stamps every byte that arrives), and the one
 * translation of libssh2's errors.
 * Role: part of transfer/ssh (ssh_int.h). Prerequisites: libssh2 1.10, POSIX poll.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ssh_int.h"

int pb_ssh__is_transport(int rc)
{
    switch (rc) {
    case LIBSSH2_ERROR_SOCKET_NONE:
    case LIBSSH2_ERROR_BANNER_RECV:
    case LIBSSH2_ERROR_BANNER_SEND:
    case LIBSSH2_ERROR_INVALID_MAC:
    case LIBSSH2_ERROR_KEX_FAILURE:
    case LIBSSH2_ERROR_SOCKET_SEND:
    case LIBSSH2_ERROR_KEY_EXCHANGE_FAILURE:
    case LIBSSH2_ERROR_TIMEOUT:
    case LIBSSH2_ERROR_DECRYPT:
    case LIBSSH2_ERROR_SOCKET_DISCONNECT:
    case LIBSSH2_ERROR_PROTO:
    case LIBSSH2_ERROR_SOCKET_TIMEOUT:
    case LIBSSH2_ERROR_SOCKET_RECV:
    case LIBSSH2_ERROR_ENCRYPT:
    case LIBSSH2_ERROR_BAD_SOCKET:
        return 1;
    default:
        return 0;
    }
}

static const char *sftp_status_name(unsigned long st)
{
    static const char *names[] = {"ok",
                                  "end of file",
                                  "no such file",
                                  "permission denied",
                                  "failure",
                                  "bad message",
                                  "no connection",
                                  "connection lost",
                                  "operation unsupported",
                                  "invalid handle",
                                  "no such path",
                                  "file already exists",
                                  "write protected",
                                  "no media",
                                  "no space on file system",
                                  "quota exceeded",
                                  "unknown principal",
                                  "lock conflict",
                                  "directory not empty",
                                  "not a directory",
                                  "invalid filename",
                                  "link loop"};
    return st < sizeof(names) / sizeof(names[0]) ? names[st] : "unknown status";
}

int pb_ssh__fail(pb_ssh *s, int rc, pb_error *err, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    char *lmsg = NULL;
    if (s && s->ls)
        libssh2_session_last_error(s->ls, &lmsg, NULL, 0);
    const char *desc = s ? s->desc : "?";
    int code;
    switch (rc) {
    case LIBSSH2_ERROR_ALLOC:
        code = PB_ENOMEM;
        break;
    case LIBSSH2_ERROR_AUTHENTICATION_FAILED:
    case LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED:
    case LIBSSH2_ERROR_HOSTKEY_INIT:
    case LIBSSH2_ERROR_HOSTKEY_SIGN:
    case LIBSSH2_ERROR_KEYFILE_AUTH_FAILED:
    case LIBSSH2_ERROR_PASSWORD_EXPIRED:
    case LIBSSH2_ERROR_METHOD_NONE:
        code = PB_EAUTH;
        break;
    case LIBSSH2_ERROR_FILE:
    case LIBSSH2_ERROR_KNOWN_HOSTS:
        code = PB_EIO;
        break;
    case LIBSSH2_ERROR_INVAL:
    case LIBSSH2_ERROR_BAD_USE:
        code = PB_EINVALID;
        break;
    case LIBSSH2_ERROR_SFTP_PROTOCOL: {
        unsigned long st = s && s->sftp ? libssh2_sftp_last_error(s->sftp) : 0;
        code =
            st == LIBSSH2_FX_NO_SUCH_FILE || st == LIBSSH2_FX_NO_SUCH_PATH ? PB_ENOTFOUND : PB_EIO;
        return pb_error_setd(err, code, rc, "ssh %s: %s: %s (sftp status %lu)", desc, what,
                             sftp_status_name(st), st);
    }
    default:
        code = PB_ENET;
        break;
    }
    if (s && pb_ssh__is_transport(rc))
        s->lost = 1;
    if (lmsg && *lmsg)
        return pb_error_setd(err, code, rc, "ssh %s: %s: %s (libssh2 %d)", desc, what, lmsg, rc);
    return pb_error_setd(err, code, rc, "ssh %s: %s (libssh2 %d)", desc, what, rc);
}

/* One recv of up to PB_SSH_RBUF bytes serves libssh2's 16 KiB reads: a download then makes
 * a tenth of the system calls (and of the EAGAINs) it made with libssh2's own reads. */
LIBSSH2_RECV_FUNC(pb_ssh__stamp_recv)
{
    pb_ssh *s = *abstract;
    if (s->rpos == s->rlen && !s->rbuf && !(s->rbuf = malloc(PB_SSH_RBUF))) {
        ssize_t n = recv(socket, buffer, length, flags); /* unbuffered, as libssh2 would */
        if (n < 0)
            return errno == EWOULDBLOCK || errno == EAGAIN ? -EAGAIN : -errno;
        if (n > 0)
            s->alive_ref = pb_clock_ms();
        return n;
    }
    if (s->rpos == s->rlen) {
        ssize_t n = recv(socket, s->rbuf, PB_SSH_RBUF, flags);
        if (n < 0)
            return errno == EWOULDBLOCK || errno == EAGAIN ? -EAGAIN : -errno;
        if (n == 0)
            return 0;
        s->alive_ref = pb_clock_ms();
        s->rpos = 0;
        s->rlen = (size_t)n;
    }
    size_t k = s->rlen - s->rpos < length ? s->rlen - s->rpos : length;
    memcpy(buffer, s->rbuf + s->rpos, k);
    s->rpos += k;
    return (ssize_t)k;
}

int pb_ssh__wait(pb_ssh *s, double deadline, const char *what, pb_error *err)
{
    int ka = s->o.keepalive_s > 0 && s->generation > 0 && !s->lost;
    double now = pb_clock_ms();
    /* We were not listening for more than an interval: the silence is ours, not the peer's. */
    if (now - s->last_wait > (ka ? s->o.keepalive_s * 1000.0 : 1000.0))
        s->alive_ref = now > s->alive_ref ? now : s->alive_ref;
    for (;;) {
        if (s->o.cancel && s->o.cancel(s->o.cancel_payload))
            return pb_error_set(err, PB_ECANCELLED, "ssh %s: cancelled", s->desc);
        now = pb_clock_ms();
        if (ka) {
            int next = 0;
            int rc = libssh2_keepalive_send(s->ls, &next);
            if (rc < 0 && rc != LIBSSH2_ERROR_EAGAIN)
                return pb_ssh__fail(s, rc, err, "sending a keepalive");
            double dead = (double)s->o.keepalive_s * s->o.keepalive_count * 1000.0;
            if (now - s->alive_ref > dead) {
                s->lost = 1;
                return pb_error_setd(err, PB_ENET, LIBSSH2_ERROR_TIMEOUT,
                                     "ssh %s: no answer for %.0f s (%d keepalives unanswered): the "
                                     "connection is dead",
                                     s->desc, (now - s->alive_ref) / 1000.0, s->o.keepalive_count);
            }
        }
        if (deadline > 0 && now >= deadline) {
            s->lost = 1;
            return pb_error_setd(err, PB_ENET, LIBSSH2_ERROR_TIMEOUT,
                                 "ssh %s: %s timed out after %d ms", s->desc, what,
                                 s->o.connect_timeout_ms);
        }
        int dirs = s->ls ? libssh2_session_block_directions(s->ls) : 0;
        /* Bytes already read from the socket: libssh2 takes them without waiting. */
        if (s->rpos < s->rlen && (!dirs || (dirs & LIBSSH2_SESSION_BLOCK_INBOUND)))
            return 0;
        struct pollfd p = {.fd = s->sock, .events = 0};
        if (dirs & LIBSSH2_SESSION_BLOCK_INBOUND)
            p.events |= POLLIN;
        if (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND)
            p.events |= POLLOUT;
        if (!p.events)
            p.events = POLLIN;
        int slice = 200;
        if (deadline > 0 && deadline - now < slice)
            slice = (int)(deadline - now) + 1;
        int n = poll(&p, 1, slice);
        s->last_wait = pb_clock_ms();
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return pb_error_errno(err, "ssh %s: poll", s->desc);
        }
        if (n > 0)
            return 0;
    }
}

/*
 * ssh_exec.c: remote commands over exec channels: opening and closing one (bounded waits), and
 * pb_ssh_exec (stdin from memory, stdout captured, the tail of stderr kept).
 * Role: part of transfer/ssh (ssh_int.h). Prerequisites: libssh2 1.10.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ssh_int.h"

int pb_ssh__exec_open(pb_ssh *s, LIBSSH2_CHANNEL **out, const char *command, unsigned window,
                      pb_error *err)
{
    *out = NULL;
    if (pb_ssh_lost(s))
        return pb_error_setd(err, PB_ENET, LIBSSH2_ERROR_SOCKET_DISCONNECT,
                             "ssh %s: the connection is lost", s->desc);
    LIBSSH2_CHANNEL *c;
    double deadline = pb_ssh__deadline(s);
    int error;
    for (;;) {
        c = libssh2_channel_open_ex(s->ls, "session", 7,
                                    window ? window : LIBSSH2_CHANNEL_WINDOW_DEFAULT,
                                    LIBSSH2_CHANNEL_PACKET_DEFAULT, NULL, 0);
        if (c)
            break;
        int rc = libssh2_session_last_errno(s->ls);
        if (rc != LIBSSH2_ERROR_EAGAIN)
            return pb_ssh__fail(s, rc, err, "cannot open a channel");
        if ((error = pb_ssh__wait(s, deadline, "opening a channel", err)) < 0)
            return error;
    }
    int rc;
    while ((rc = libssh2_channel_exec(c, command)) == LIBSSH2_ERROR_EAGAIN)
        if ((error = pb_ssh__wait(s, deadline, "starting a command", err)) < 0)
            return error; /* the session is lost: the channel goes with it */
    if (rc) {
        error = pb_ssh__fail(s, rc, err, "cannot run a command");
        pb_ssh__exec_close(s, c, 2000, NULL);
        return error;
    }
    *out = c;
    return 0;
}

void pb_ssh__exec_close(pb_ssh *s, LIBSSH2_CHANNEL *c, int ms, int *status)
{
    if (status)
        *status = -1;
    if (!c || pb_ssh_lost(s))
        return; /* freed with the session */
    double deadline = pb_clock_ms() + ms;
    pb_error e = PB_ERROR_INIT;
    int rc;
    while ((rc = libssh2_channel_close(c)) == LIBSSH2_ERROR_EAGAIN)
        if (pb_ssh__wait(s, deadline, "closing a channel", &e) < 0)
            return;
    while (rc == 0 && (rc = libssh2_channel_wait_closed(c)) == LIBSSH2_ERROR_EAGAIN)
        if (pb_ssh__wait(s, deadline, "closing a channel", &e) < 0)
            return;
    if (status && rc == 0) {
        char *sig = NULL;
        libssh2_channel_get_exit_signal(c, &sig, NULL, NULL, NULL, NULL, NULL);
        *status = sig ? 128 : libssh2_channel_get_exit_status(c);
        if (sig)
            libssh2_free(s->ls, sig);
    }
    while (libssh2_channel_free(c) == LIBSSH2_ERROR_EAGAIN)
        if (pb_ssh__wait(s, deadline, "freeing a channel", &e) < 0)
            return;
}

int pb_ssh_exec(pb_ssh *s, const char *command, const void *input, size_t input_len, char *out,
                size_t cap, char *stderr_out, size_t stderr_cap, int *status, pb_error *err)
{
    int error = 0;
    LIBSSH2_CHANNEL *c = NULL;
    size_t n = 0, en = 0, sent = 0;
    int eof_sent = 0;
    char buf[16384];
    if (status)
        *status = -1;
    if (out && cap)
        out[0] = '\0';
    if (stderr_out && stderr_cap)
        stderr_out[0] = '\0';
    if ((error = pb_ssh__exec_open(s, &c, command, 0, err)) < 0)
        return error;
    for (;;) {
        int progress = 0;
        if (!eof_sent) {
            if (sent < input_len) {
                ssize_t k = libssh2_channel_write(c, (const char *)input + sent, input_len - sent);
                if (k < 0 && k != LIBSSH2_ERROR_EAGAIN) {
                    error = pb_ssh__fail(s, (int)k, err, "writing to `%.60s`", command);
                    goto done;
                }
                if (k > 0) {
                    sent += (size_t)k;
                    progress = 1;
                }
            }
            if (sent == input_len) {
                int rc = libssh2_channel_send_eof(c);
                if (rc == 0) {
                    eof_sent = 1;
                    progress = 1;
                } else if (rc != LIBSSH2_ERROR_EAGAIN) {
                    error = pb_ssh__fail(s, rc, err, "ending the input of `%.60s`", command);
                    goto done;
                }
            }
        }
        ssize_t k = libssh2_channel_read_stderr(c, buf, sizeof(buf));
        if (k > 0) {
            progress = 1;
            if (stderr_out && stderr_cap > 1) {
                /* keep the tail */
                size_t take = (size_t)k < stderr_cap - 1 ? (size_t)k : stderr_cap - 1;
                if (en + take > stderr_cap - 1) {
                    size_t drop = en + take - (stderr_cap - 1);
                    memmove(stderr_out, stderr_out + drop, en - drop);
                    en -= drop;
                }
                memcpy(stderr_out + en, buf + (size_t)k - take, take);
                en += take;
                stderr_out[en] = '\0';
            }
        } else if (k < 0 && k != LIBSSH2_ERROR_EAGAIN) {
            error = pb_ssh__fail(s, (int)k, err, "reading from `%.60s`", command);
            goto done;
        }
        k = libssh2_channel_read(c, buf, sizeof(buf));
        if (k > 0) {
            progress = 1;
            if (out) {
                if (n + (size_t)k >= cap) {
                    error = pb_error_set(err, PB_ENOMEM,
                                         "ssh %s: the output of `%.60s` exceeds %zu bytes", s->desc,
                                         command, cap);
                    goto done;
                }
                memcpy(out + n, buf, (size_t)k);
                n += (size_t)k;
                out[n] = '\0';
            }
        } else if (k < 0 && k != LIBSSH2_ERROR_EAGAIN) {
            error = pb_ssh__fail(s, (int)k, err, "reading from `%.60s`", command);
            goto done;
        }
        if (k == 0 && libssh2_channel_eof(c) && eof_sent)
            break;
        if (!progress && (error = pb_ssh__wait(s, 0, command, err)) < 0)
            goto done;
    }
done:
    if (c) {
        int st = -1;
        pb_ssh__exec_close(s, c, error < 0 ? 2000 : s->o.connect_timeout_ms, &st);
        if (status)
            *status = st;
    }
    return error;
}

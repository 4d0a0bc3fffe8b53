/*
 * channel_ssh.c: the `ssh` channel (channel.h, ssh.h): the agent (or any command) run on a
 * remote machine over an exec channel of a pb_ssh session, speaking over its stdin/stdout, so
 * that the framed protocol runs unchanged over SSH. The remote's stderr is kept (a 2 KiB tail
 * for messages) and passed line by line to the session's log hook.
 * Role: the transport of `--cloud ssh://...` (the engine's run starts the agent with it).
 * Prerequisites: ssh.c (session, wait loop), libssh2 1.10.
 *
 * A lost connection fails read/write with PB_ENET; pb_channel_ssh_reconnect() reconnects the
 * session (bounded retries) and runs the command again: the remote process is a new one, the
 * old one got EOF on its stdin (or is cut off with its sshd). libssh2 1.10 cannot send signals
 * over a channel: close() and free() end the remote command by closing its stdin (EOF) and the
 * channel; the agent is expected to exit on EOF.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ssh_int.h"

#define AGENT_WINDOW (4u * 1024 * 1024)

typedef struct ssh_channel {
    pb_channel base;
    pb_ssh *s;
    int own;
    LIBSSH2_CHANNEL *c;
    unsigned gen; /* the session's generation c belongs to */
    char *command;
    int close_timeout_ms;
    int eof;
    char tail[2048]; /* the last stderr bytes */
    size_t tail_n;
    char line[512]; /* a stderr line being assembled for the log */
    size_t line_n;
    int (*saved_cancel)(void *);
    void *saved_payload;
} ssh_channel;

static int live(const ssh_channel *c)
{
    return c->c && c->gen == c->s->generation && !pb_ssh_lost(c->s);
}

/* The session's waits also honour the channel's cancel hook while a channel call runs. */
static int both_cancel(void *p)
{
    ssh_channel *c = p;
    return (c->base.cancel && c->base.cancel(c->base.cancel_payload)) ||
           (c->saved_cancel && c->saved_cancel(c->saved_payload));
}

static void hook_cancel(ssh_channel *c)
{
    c->saved_cancel = c->s->o.cancel;
    c->saved_payload = c->s->o.cancel_payload;
    c->s->o.cancel = both_cancel;
    c->s->o.cancel_payload = c;
}

static void unhook_cancel(ssh_channel *c)
{
    c->s->o.cancel = c->saved_cancel;
    c->s->o.cancel_payload = c->saved_payload;
}

static void flush_line(ssh_channel *c)
{
    if (!c->line_n)
        return;
    c->line[c->line_n] = '\0';
    pb_ssh__log(c->s, "remote: %s", c->line);
    c->line_n = 0;
}

static void keep_stderr(ssh_channel *c, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (c->tail_n == sizeof(c->tail) - 1) {
            memmove(c->tail, c->tail + 512, c->tail_n - 512);
            c->tail_n -= 512;
        }
        c->tail[c->tail_n++] = p[i];
        if (p[i] == '\n' || c->line_n == sizeof(c->line) - 1)
            flush_line(c);
        else if (p[i] != '\r')
            c->line[c->line_n++] = p[i];
    }
    c->tail[c->tail_n] = '\0';
}

static int drain_stderr(ssh_channel *c, pb_error *err)
{
    char buf[4096];
    for (;;) {
        ssize_t n = libssh2_channel_read_stderr(c->c, buf, sizeof(buf));
        if (n > 0) {
            keep_stderr(c, buf, (size_t)n);
            continue;
        }
        if (n == 0 || n == LIBSSH2_ERROR_EAGAIN)
            return 0;
        return pb_ssh__fail(c->s, (int)n, err, "reading the stderr of %s", c->base.desc);
    }
}

static int gone(ssh_channel *c, pb_error *err)
{
    return pb_error_setd(err, PB_ENET, LIBSSH2_ERROR_SOCKET_DISCONNECT,
                         "channel %s: the connection is lost (pb_channel_ssh_reconnect)",
                         c->base.desc);
}

static int ssh_read(pb_channel *ch, void *buf, size_t cap, size_t *got, pb_error *err)
{
    ssh_channel *c = (ssh_channel *)ch;
    int error = 0;
    *got = 0;
    if (c->eof)
        return 0;
    if (!live(c))
        return gone(c, err);
    hook_cancel(c);
    for (;;) {
        if ((error = drain_stderr(c, err)) < 0)
            break;
        ssize_t n = libssh2_channel_read(c->c, buf, cap);
        if (n > 0) {
            *got = (size_t)n;
            break;
        }
        if (n < 0 && n != LIBSSH2_ERROR_EAGAIN) {
            error = pb_ssh__fail(c->s, (int)n, err, "reading from %s", ch->desc);
            break;
        }
        if (libssh2_channel_eof(c->c)) {
            if ((error = drain_stderr(c, err)) < 0)
                break;
            flush_line(c);
            c->eof = 1;
            break;
        }
        if ((error = pb_ssh__wait(c->s, 0, "reading", err)) < 0)
            break;
    }
    unhook_cancel(c);
    return error;
}

static int ssh_write(pb_channel *ch, const void *buf, size_t n, pb_error *err)
{
    ssh_channel *c = (ssh_channel *)ch;
    int error = 0;
    if (!live(c))
        return gone(c, err);
    hook_cancel(c);
    const char *p = buf;
    while (n > 0) {
        ssize_t k = libssh2_channel_write(c->c, p, n);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
            continue;
        }
        if (k != LIBSSH2_ERROR_EAGAIN) {
            error = k == 0 ? pb_error_set(err, PB_ENET, "channel %s: the peer closed the stream",
                                          ch->desc)
                           : pb_ssh__fail(c->s, (int)k, err, "writing to %s", ch->desc);
            break;
        }
        if ((error = drain_stderr(c, err)) < 0 ||
            (error = pb_ssh__wait(c->s, 0, "writing", err)) < 0)
            break;
    }
    unhook_cancel(c);
    return error;
}

static int ssh_close(pb_channel *ch, int *status, pb_error *err)
{
    ssh_channel *c = (ssh_channel *)ch;
    int error = 0, rc;
    *status = -1;
    if (!live(c)) {
        c->c = NULL;
        return gone(c, err);
    }
    hook_cancel(c);
    double deadline = pb_clock_ms() + c->close_timeout_ms;
    while ((rc = libssh2_channel_send_eof(c->c)) == LIBSSH2_ERROR_EAGAIN)
        if ((error = pb_ssh__wait(c->s, deadline, "ending the input", err)) < 0)
            goto done;
    if (rc && rc != LIBSSH2_ERROR_CHANNEL_EOF_SENT) {
        error = pb_ssh__fail(c->s, rc, err, "ending the input of %s", ch->desc);
        goto done;
    }
    /* Let the remote finish: whatever it still says is drained (and dropped). */
    char buf[16384];
    for (;;) {
        if ((error = drain_stderr(c, err)) < 0)
            goto done;
        ssize_t n = libssh2_channel_read(c->c, buf, sizeof(buf));
        if (n > 0)
            continue;
        if (n < 0 && n != LIBSSH2_ERROR_EAGAIN) {
            error = pb_ssh__fail(c->s, (int)n, err, "reading from %s", ch->desc);
            goto done;
        }
        if (libssh2_channel_eof(c->c))
            break;
        if (pb_clock_ms() >= deadline) {
            error = pb_error_setd(err, PB_ENET, LIBSSH2_ERROR_TIMEOUT,
                                  "channel %s: the remote command did not exit within %d ms "
                                  "(channel closed)",
                                  ch->desc, c->close_timeout_ms);
            break;
        }
        if ((error = pb_ssh__wait(c->s, deadline, "waiting for the remote command", err)) < 0)
            goto done;
    }
    flush_line(c);
    int left = (int)(deadline - pb_clock_ms());
    pb_ssh__exec_close(c->s, c->c, left > 2000 ? left : 2000, status);
    c->c = NULL;
done:
    unhook_cancel(c);
    return error;
}

static void ssh_free(pb_channel *ch)
{
    ssh_channel *c = (ssh_channel *)ch;
    if (live(c)) {
        /* EOF first: a remote that exits at the end of its input (the agent) goes at once */
        double deadline = pb_clock_ms() + 1000;
        pb_error e = PB_ERROR_INIT;
        while (libssh2_channel_send_eof(c->c) == LIBSSH2_ERROR_EAGAIN &&
               pb_ssh__wait(c->s, deadline, "ending the input", &e) == 0)
            ;
        if (live(c))
            pb_ssh__exec_close(c->s, c->c, 2000, NULL);
    }
    c->c = NULL;
    if (c->own)
        pb_ssh_free(c->s);
    free(c->command);
    free(c);
}

static const pb_channel_ops ssh_ops = {
    PB_CHANNEL_OPS_VERSION, "ssh", ssh_read, ssh_write, ssh_close, ssh_free,
};

static int start(ssh_channel *c, pb_error *err)
{
    hook_cancel(c);
    int error = pb_ssh__exec_open(c->s, &c->c, c->command, AGENT_WINDOW, err);
    unhook_cancel(c);
    if (error < 0)
        return error;
    c->gen = c->s->generation;
    c->eof = 0;
    return 0;
}

int pb_channel_ssh_new(pb_channel **out, pb_ssh *s, int own, const char *command,
                       int close_timeout_ms, pb_error *err)
{
    *out = NULL;
    if (!s || !command)
        return pb_error_set(err, PB_EINVALID, "channel: no session or command");
    ssh_channel *c = calloc(1, sizeof(*c));
    if (!c || !(c->command = strdup(command))) {
        free(c);
        return pb_error_set(err, PB_ENOMEM, "channel: out of memory");
    }
    c->base.ops = &ssh_ops;
    c->s = s;
    c->close_timeout_ms = close_timeout_ms > 0 ? close_timeout_ms : 30000;
    snprintf(c->base.desc, sizeof(c->base.desc), "ssh %.200s", pb_ssh_desc(s));
    int error = start(c, err);
    if (error < 0) {
        free(c->command);
        free(c);
        return error;
    }
    c->own = own;
    *out = &c->base;
    return 0;
}

int pb_channel_ssh_reconnect(pb_channel *ch, pb_error *err)
{
    if (!ch || !ch->ops || strcmp(ch->ops->kind, "ssh") != 0)
        return pb_error_set(err, PB_EINVALID, "channel: not an ssh channel");
    ssh_channel *c = (ssh_channel *)ch;
    if (live(c))
        pb_ssh__exec_close(c->s, c->c, 2000, NULL);
    c->c = NULL;
    c->tail_n = c->line_n = 0;
    c->tail[0] = '\0';
    if (pb_ssh_lost(c->s)) {
        hook_cancel(c);
        int error = pb_ssh_reconnect(c->s, err);
        unhook_cancel(c);
        if (error < 0)
            return error;
    }
    return start(c, err);
}

pb_ssh *pb_channel_ssh_session(pb_channel *ch)
{
    if (!ch || !ch->ops || strcmp(ch->ops->kind, "ssh") != 0)
        return NULL;
    return ((ssh_channel *)ch)->s;
}

const char *pb_channel_ssh_stderr(pb_channel *ch)
{
    if (!ch || !ch->ops || strcmp(ch->ops->kind, "ssh") != 0)
        return "";
    return ((ssh_channel *)ch)->tail;
}

/* ---------------------------------------------------------------------------------------- */
/* The agent over SSH in one call                                                             */

void pb_ssh_agent_opts_init(pb_ssh_agent_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->version = PB_SSH_AGENT_OPTS_VERSION;
}

/* URL, session options and the remote workdir of the agent options. */
static int agent_target(pb_ssh_agent_opts *o, pb_ssh_target *t, pb_ssh_options *so, char *dir,
                        size_t cap, pb_error *err)
{
    int error;
    if (!o || o->version != PB_SSH_AGENT_OPTS_VERSION || !o->url)
        return pb_error_set(err, PB_EINVALID, "ssh: bad agent options");
    if ((error = pb_ssh_url_parse(t, o->url, err)) < 0)
        return error;
    if (o->ssh)
        *so = *o->ssh;
    else
        pb_ssh_options_init(so);
    so->host = t->host;
    so->port = t->port;
    so->user = t->user[0] ? t->user : NULL;
    if (o->accept_new_host_key)
        so->tofu = 1;
    so->cancel = o->cancel;
    so->cancel_payload = o->cancel_payload;
    so->log = o->log;
    so->log_payload = o->log_payload;
    snprintf(dir, cap, "%s",
             o->workdir && *o->workdir ? o->workdir
             : t->dir[0]               ? t->dir
                                       : PB_SSH_DEFAULT_WORKDIR);
    return 0;
}

int pb_ssh_agent_connect(pb_ssh **out, pb_ssh_agent_opts *o, pb_error *err)
{
    pb_ssh_target t;
    pb_ssh_options so;
    char dir[4096];
    *out = NULL;
    int error = agent_target(o, &t, &so, dir, sizeof(dir), err);
    if (error < 0)
        return error;
    if ((error = pb_ssh_connect(out, &so, err)) < 0)
        return error;
    snprintf(o->host_key, sizeof(o->host_key), "%s", pb_ssh_host_key(*out));
    return 0;
}

int pb_ssh_agent_channel(pb_channel **out, pb_ssh_agent_opts *o, pb_error *err)
{
    int error = 0;
    pb_ssh *s = o ? o->session : NULL;
    pb_ssh_target t;
    pb_ssh_options so;
    char dir[4096], prog[4200], qprog[8500], qdir[8300], qstore[8300], cmd[26000];
    *out = NULL;
    if (o)
        o->session = NULL; /* ours from here on */
    if ((error = agent_target(o, &t, &so, dir, sizeof(dir), err)) < 0)
        goto done;
    snprintf(prog, sizeof(prog), "%s/bin/plexburst", dir);
    if (!s && (error = pb_ssh_connect(&s, &so, err)) < 0)
        goto done;
    snprintf(o->host_key, sizeof(o->host_key), "%s", pb_ssh_host_key(s));
    if ((error = pb_ssh_agent_install(&o->install, s, o->local_exe, prog, NULL, err)) < 0)
        goto done;
    if (pb_ssh_quote(qprog, sizeof(qprog), o->install.path) < 0 ||
        pb_ssh_quote(qdir, sizeof(qdir), dir) < 0 ||
        (o->store && pb_ssh_quote(qstore, sizeof(qstore), o->store) < 0)) {
        error = pb_error_set(err, PB_EINVALID, "ssh: remote paths too long");
        goto done;
    }
    snprintf(cmd, sizeof(cmd), "exec %s agent --workdir %s%s%s", qprog, qdir,
             o->store ? " --store " : "", o->store ? qstore : "");
    if ((error = pb_channel_ssh_new(
             out, s, 1, cmd, o->close_timeout_ms > 0 ? o->close_timeout_ms : 60000, err)) < 0)
        goto done;
    s = NULL; /* the channel owns it */
done:
    pb_ssh_free(s);
    return error;
}

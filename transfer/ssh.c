/*
 * ssh.c: SSH sessions over libssh2 1.10 (ssh.h): TCP connect, one connection attempt
 * (handshake, host key, authentication), connect and reconnect with backoff, teardown.
 * The other jobs have their files: ssh_url.c (URLs, quoting, base64), ssh_wait.c (the wait
 * loop and the one translation of libssh2 errors), ssh_hostkey.c (known_hosts, pins, trust on
 * first use), ssh_auth.c (public keys), ssh_exec.c (remote commands), ssh_sftp.c (transfers).
 * Role: transfer/ layer under the `ssh` channel (channel_ssh.c). Prerequisites: libssh2 1.10
 * with the OpenSSL backend, POSIX sockets.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ssh_int.h"

double pb_ssh__deadline(const pb_ssh *s)
{
    return pb_clock_ms() + s->o.connect_timeout_ms;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void pb_ssh__log(pb_ssh *s, const char *fmt, ...)
{
    if (!s->o.log)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    s->o.log(s->o.log_payload, line);
}

void pb_ssh_options_init(pb_ssh_options *o)
{
    memset(o, 0, sizeof(*o));
    o->version = PB_SSH_OPTIONS_VERSION;
}

static int tcp_connect(pb_ssh *s, pb_error *err)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", s->o.port);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int grc = getaddrinfo(s->host, port, &hints, &res);
    if (grc != 0)
        return pb_error_setd(err, PB_ENET, grc, "ssh %s: cannot resolve %s: %s", s->desc, s->host,
                             gai_strerror(grc));
    int last_errno = 0;
    double deadline = pb_ssh__deadline(s);
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
            last_errno = errno;
            close(fd);
            continue;
        }
        for (;;) {
            if (s->o.cancel && s->o.cancel(s->o.cancel_payload)) {
                close(fd);
                freeaddrinfo(res);
                return pb_error_set(err, PB_ECANCELLED, "ssh %s: cancelled", s->desc);
            }
            double left = deadline - pb_clock_ms();
            if (left <= 0) {
                last_errno = ETIMEDOUT;
                break;
            }
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int n = poll(&p, 1, left < 200 ? (int)left + 1 : 200);
            if (n < 0 && errno != EINTR) {
                last_errno = errno;
                break;
            }
            if (n > 0) {
                int so = 0;
                socklen_t sl = sizeof(so);
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl);
                if (so == 0) {
                    freeaddrinfo(res);
                    s->sock = fd;
                    return 0;
                }
                last_errno = so;
                break;
            }
        }
        close(fd);
    }
    freeaddrinfo(res);
    return pb_error_setd(err, PB_ENET, last_errno, "ssh %s: cannot connect: %s", s->desc,
                         strerror(last_errno ? last_errno : ECONNREFUSED));
}

/* Drops the connection: gracefully when it still works (bounded), else at once. */
static void teardown(pb_ssh *s, int graceful)
{
    if (s->ls) {
        if (!graceful || s->lost) {
            if (s->sock >= 0)
                shutdown(s->sock, SHUT_RDWR); /* every libssh2 send/recv now fails at once */
        }
        if (s->sftp) {
            double deadline = pb_clock_ms() + 2000;
            while (libssh2_sftp_shutdown(s->sftp) == LIBSSH2_ERROR_EAGAIN &&
                   pb_clock_ms() < deadline) {
                pb_error e = PB_ERROR_INIT;
                if (pb_ssh__wait(s, deadline, "closing sftp", &e) < 0)
                    break;
            }
            s->sftp = NULL;
        }
        if (graceful && !s->lost) {
            double deadline = pb_clock_ms() + 2000;
            while (libssh2_session_disconnect(s->ls, "plexburst: done") == LIBSSH2_ERROR_EAGAIN &&
                   pb_clock_ms() < deadline) {
                pb_error e = PB_ERROR_INIT;
                if (pb_ssh__wait(s, deadline, "disconnecting", &e) < 0)
                    break;
            }
        }
        shutdown(s->sock, SHUT_RDWR);
        libssh2_session_free(s->ls);
        s->ls = NULL;
    }
    pb_ssh__mem_drain(&s->mem);
    free(s->rbuf);
    s->rbuf = NULL;
    s->rpos = s->rlen = 0;
    s->sftp = NULL;
    if (s->sock >= 0)
        close(s->sock);
    s->sock = -1;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;
static void global_init(void)
{
    init_rc = libssh2_init(0);
}

/* One connection attempt: TCP, handshake, host key, authentication. */
static int open_once(pb_ssh *s, pb_error *err)
{
    int error = 0;
    pb_ssh_khfile files[2];
    memset(files, 0, sizeof(files));
    int nfiles = 0;
    s->lost = 0;
    if ((error = tcp_connect(s, err)) < 0)
        goto done;
    s->rpos = s->rlen = 0;
    s->ls = libssh2_session_init_ex(pb_ssh__mem_alloc, pb_ssh__mem_free, pb_ssh__mem_realloc, s);
    if (!s->ls) {
        error = pb_error_set(err, PB_ENOMEM, "ssh: cannot create a session");
        goto done;
    }
    libssh2_session_callback_set(s->ls, LIBSSH2_CALLBACK_RECV, (void *)pb_ssh__stamp_recv);
    libssh2_session_set_blocking(s->ls, 0);
    s->alive_ref = s->last_wait = pb_clock_ms();

    if (!s->pin) {
        if ((error = pb_ssh__kh_load(s, &files[nfiles++], s->known_hosts, err)) < 0)
            goto done;
        if (s->o.use_user_known_hosts &&
            (error = pb_ssh__kh_load(s, &files[nfiles++], s->user_known_hosts, err)) < 0)
            goto done;
    }
    char prefs[256];
    pb_ssh__hostkey_prefs(s, files, nfiles, prefs, sizeof(prefs));
    if (libssh2_session_method_pref(s->ls, LIBSSH2_METHOD_HOSTKEY, prefs) != 0) {
        error =
            pb_ssh__fail(s, LIBSSH2_ERROR_METHOD_NOT_SUPPORTED, err, "host key methods %s", prefs);
        goto done;
    }
    /* Bulk speed: AES-CTR (AES-NI) and SHA-2 MACs, no compression. */
    libssh2_session_method_pref(s->ls, LIBSSH2_METHOD_CRYPT_CS, "aes128-ctr,aes256-ctr,aes192-ctr");
    libssh2_session_method_pref(s->ls, LIBSSH2_METHOD_CRYPT_SC, "aes128-ctr,aes256-ctr,aes192-ctr");

    int rc;
    double deadline = pb_ssh__deadline(s);
    pb_ssh__ctr_offer(1); /* libssh2 sets up its ciphers during the handshake (ssh_ctr.c) */
    while ((rc = libssh2_session_handshake(s->ls, s->sock)) == LIBSSH2_ERROR_EAGAIN)
        if ((error = pb_ssh__wait(s, deadline, "the SSH handshake", err)) < 0)
            break;
    pb_ssh__ctr_offer(0);
    if (error < 0)
        goto done;
    if (rc) {
        error = pb_ssh__fail(s, rc, err, "SSH handshake");
        goto done;
    }
    if ((error = pb_ssh__verify_host_key(s, files, nfiles, err)) < 0)
        goto done;
    if ((error = pb_ssh__authenticate(s, err)) < 0)
        goto done;
    if (s->o.keepalive_s > 0)
        libssh2_keepalive_config(s->ls, 1, (unsigned)s->o.keepalive_s);
    s->generation++;
done:
    for (int i = 0; i < nfiles; i++)
        pb_ssh__kh_free(&files[i]);
    if (error < 0)
        teardown(s, 0);
    return error;
}

static char *dup_or_null(const char *v, int *fail)
{
    if (!v)
        return NULL;
    char *d = strdup(v);
    if (!d)
        *fail = 1;
    return d;
}

void pb_ssh_free(pb_ssh *s)
{
    if (!s)
        return;
    teardown(s, 1);
    if (s->passphrase) {
        volatile char *p = s->passphrase;
        while (*p)
            *p++ = 0;
    }
    free(s->host);
    free(s->user);
    free(s->key_file);
    free(s->passphrase);
    free(s->known_hosts);
    free(s->user_known_hosts);
    free(s->pin);
    free(s);
}

int pb_ssh_connect(pb_ssh **out, const pb_ssh_options *o, pb_error *err)
{
    int error = 0;
    pb_ssh *s = NULL;
    *out = NULL;
    if (!o || o->version != PB_SSH_OPTIONS_VERSION || !o->host || !*o->host)
        return pb_error_set(err, PB_EINVALID, "ssh: no host given");
    pthread_once(&init_once, global_init);
    if (init_rc != 0)
        return pb_error_setd(err, PB_ERROR, init_rc, "ssh: libssh2_init failed");
    s = calloc(1, sizeof(*s));
    if (!s)
        return pb_error_set(err, PB_ENOMEM, "ssh: out of memory");
    s->sock = -1;
    s->o = *o;
    if (s->o.port <= 0)
        s->o.port = 22;
    if (s->o.connect_timeout_ms <= 0)
        s->o.connect_timeout_ms = 20000;
    if (s->o.keepalive_s == 0)
        s->o.keepalive_s = 15;
    if (s->o.keepalive_count <= 0)
        s->o.keepalive_count = 4;
    if (s->o.reconnect_tries <= 0)
        s->o.reconnect_tries = 5;
    if (s->o.reconnect_backoff_ms <= 0)
        s->o.reconnect_backoff_ms = 500;
    const char *user = o->user;
    struct passwd *pw = NULL;
    if (!user || !*user)
        user = getenv("USER");
    if ((!user || !*user) && (pw = getpwuid(getuid())))
        user = pw->pw_name;
    if (!user || !*user) {
        error = pb_error_set(err, PB_EINVALID, "ssh: no user name (give user@host)");
        goto done;
    }
    char kh[4200], ukh[4200];
    snprintf(kh, sizeof(kh), "%s/.config/plexburst/known_hosts", pb_ssh__home_dir());
    snprintf(ukh, sizeof(ukh), "%s/.ssh/known_hosts", pb_ssh__home_dir());
    int fail = 0;
    s->host = dup_or_null(o->host, &fail);
    s->user = dup_or_null(user, &fail);
    s->key_file = dup_or_null(o->key_file && *o->key_file ? o->key_file : NULL, &fail);
    s->passphrase = dup_or_null(o->key_passphrase, &fail);
    s->known_hosts = dup_or_null(o->known_hosts && *o->known_hosts ? o->known_hosts : kh, &fail);
    s->user_known_hosts =
        dup_or_null(o->user_known_hosts && *o->user_known_hosts ? o->user_known_hosts : ukh, &fail);
    s->pin = dup_or_null(o->host_key_pin && *o->host_key_pin ? o->host_key_pin : NULL, &fail);
    if (fail) {
        error = pb_error_set(err, PB_ENOMEM, "ssh: out of memory");
        goto done;
    }
    if (s->pin && !pb_ssh_pin_valid(s->pin)) {
        error = pb_error_set(err, PB_EINVALID,
                             "ssh: the pinned host key must be SHA256:<base64 of 32 bytes>");
        goto done;
    }
    s->o.host = s->host;
    s->o.user = s->user;
    s->o.key_file = s->key_file;
    s->o.key_passphrase = NULL; /* only in s->passphrase */
    s->o.known_hosts = s->known_hosts;
    s->o.user_known_hosts = s->user_known_hosts;
    s->o.host_key_pin = s->pin;
    if (strchr(s->host, ':'))
        snprintf(s->desc, sizeof(s->desc), "%s@[%s]:%d", s->user, s->host, s->o.port);
    else
        snprintf(s->desc, sizeof(s->desc), "%s@%s:%d", s->user, s->host, s->o.port);
    if ((error = open_once(s, err)) < 0)
        goto done;
    *out = s;
    s = NULL;
done:
    pb_ssh_free(s);
    return error;
}

int pb_ssh_reconnect(pb_ssh *s, pb_error *err)
{
    if (!s)
        return pb_error_set(err, PB_EINVALID, "ssh: no session");
    teardown(s, 0);
    int pause = s->o.reconnect_backoff_ms;
    int error = 0;
    for (int attempt = 1; attempt <= s->o.reconnect_tries; attempt++) {
        pb_error e = PB_ERROR_INIT;
        error = open_once(s, &e);
        if (error == 0) {
            s->reconnects++;
            pb_ssh__log(s, "ssh %s: reconnected (attempt %d of %d)", s->desc, attempt,
                        s->o.reconnect_tries);
            return 0;
        }
        if (error == PB_EAUTH || error == PB_ECANCELLED || error == PB_EINVALID ||
            attempt == s->o.reconnect_tries) {
            if (error == PB_ENET)
                return pb_error_setd(err, error, e.dep_code, "%s (gave up after %d attempts)",
                                     e.msg, attempt);
            return pb_error_setd(err, error, e.dep_code, "%s", e.msg);
        }
        pb_ssh__log(s, "ssh %s: reconnect attempt %d of %d failed (%s); next in %d ms", s->desc,
                    attempt, s->o.reconnect_tries, e.msg, pause);
        for (int slept = 0; slept < pause; slept += 100) {
            if (s->o.cancel && s->o.cancel(s->o.cancel_payload))
                return pb_error_set(err, PB_ECANCELLED, "ssh %s: cancelled", s->desc);
            sleep_ms(100);
        }
        pause = pause * 2 > 8000 ? 8000 : pause * 2;
    }
    return error;
}

int pb_ssh_lost(const pb_ssh *s)
{
    return !s || !s->ls || s->lost;
}

unsigned pb_ssh_reconnects(const pb_ssh *s)
{
    return s ? s->reconnects : 0;
}

const char *pb_ssh_desc(const pb_ssh *s)
{
    return s ? s->desc : "";
}

const char *pb_ssh_host_key(const pb_ssh *s)
{
    return s ? s->hostkey : "";
}

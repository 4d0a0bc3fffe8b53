/*
 * ssh.c: SSH sessions over libssh2 1.10 (ssh.h): URL and configuration, TCP connect, the
 * non-blocking wait loop with keepalive and dead-peer detection, host-key verification
 * (pinned fingerprint, plexburst's and the user's known_hosts, trust on first use), public-key
 * authentication (key file, SSH agent), reconnection with backoff, remote commands, and the one
 * translation of libssh2 errors.
 * Role: transfer/ layer under the `ssh` channel (channel_ssh.c) and the SFTP transfers
 * (ssh_sftp.c). Prerequisites: libssh2 1.10 with the OpenSSL backend, POSIX sockets.
 */
#include <ctype.h>
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
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ssh_int.h"

#define RSA_NOTE "RSA keys need rsa-sha2, which libssh2 1.10 lacks: use an ed25519 key"

/* ---------------------------------------------------------------------------------------- */
/* Small helpers                                                                              */

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

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 without padding (OpenSSH's fingerprints) or with it. */
static void b64_encode(char *out, size_t cap, const unsigned char *in, size_t n, int pad)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < cap; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = b64chars[(v >> 18) & 63];
        out[o++] = b64chars[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = b64chars[(v >> 6) & 63];
        else if (pad)
            out[o++] = '=';
        if (i + 2 < n)
            out[o++] = b64chars[v & 63];
        else if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
}

/* Decodes base64 (whitespace skipped, stops at '=' or the end); returns the length or -1. */
static long b64_decode(unsigned char *out, size_t cap, const char *in, size_t n)
{
    unsigned v = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)in[i];
        if (c == '=')
            break;
        if (isspace(c))
            continue;
        const char *p = c ? strchr(b64chars, c) : NULL;
        if (!p)
            return -1;
        v = (v << 6) | (unsigned)(p - b64chars);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return -1;
            out[o++] = (unsigned char)(v >> bits);
        }
    }
    return (long)o;
}

static const char *home_dir(void)
{
    const char *h = getenv("HOME");
    if (h && *h)
        return h;
    struct passwd *pw = getpwuid(getuid());
    return pw && pw->pw_dir ? pw->pw_dir : "/";
}

int pb_ssh_quote(char *out, size_t cap, const char *arg)
{
    size_t o = 0;
    if (cap < 3)
        return PB_ENOMEM;
    out[o++] = '\'';
    for (const char *p = arg; *p; p++) {
        if (*p == '\'') {
            if (o + 5 >= cap)
                return PB_ENOMEM;
            memcpy(out + o, "'\\''", 4);
            o += 4;
        } else {
            if (o + 2 >= cap)
                return PB_ENOMEM;
            out[o++] = *p;
        }
    }
    out[o++] = '\'';
    out[o] = '\0';
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* URL and configuration                                                                      */

int pb_ssh_url_parse(pb_ssh_target *out, const char *url, pb_error *err)
{
    memset(out, 0, sizeof(*out));
    out->port = 22;
    if (!url || strncmp(url, "ssh://", 6) != 0)
        return pb_error_set(err, PB_EINVALID, "ssh: the URL must start with ssh:// (got '%s')",
                            url ? url : "");
    const char *p = url + 6;
    const char *slash = strchr(p, '/');
    size_t alen = slash ? (size_t)(slash - p) : strlen(p);
    char auth[512];
    if (alen == 0 || alen >= sizeof(auth))
        return pb_error_set(err, PB_EINVALID, "ssh: no host in '%s' (ssh://user@host[:port][/dir])",
                            url);
    memcpy(auth, p, alen);
    auth[alen] = '\0';
    char *hp = auth;
    char *at = strrchr(auth, '@');
    if (at) {
        *at = '\0';
        if (!auth[0] || strlen(auth) >= sizeof(out->user))
            return pb_error_set(err, PB_EINVALID, "ssh: bad user name in '%s'", url);
        snprintf(out->user, sizeof(out->user), "%s", auth);
        hp = at + 1;
    }
    char *portp = NULL;
    if (*hp == '[') {
        char *close = strchr(hp, ']');
        if (!close)
            return pb_error_set(err, PB_EINVALID, "ssh: unterminated [IPv6] host in '%s'", url);
        *close = '\0';
        hp++;
        if (close[1] == ':')
            portp = close + 2;
        else if (close[1])
            return pb_error_set(err, PB_EINVALID, "ssh: junk after the [host] in '%s'", url);
    } else {
        char *colon = strchr(hp, ':');
        if (colon) {
            *colon = '\0';
            portp = colon + 1;
        }
    }
    if (!*hp || strlen(hp) >= sizeof(out->host))
        return pb_error_set(err, PB_EINVALID, "ssh: no host in '%s' (ssh://user@host[:port][/dir])",
                            url);
    for (const char *c = hp; *c; c++)
        if (isspace((unsigned char)*c) || *c == '/' || *c == '@')
            return pb_error_set(err, PB_EINVALID, "ssh: bad host name in '%s'", url);
    snprintf(out->host, sizeof(out->host), "%s", hp);
    if (portp) {
        char *end = NULL;
        long port = strtol(portp, &end, 10);
        if (!*portp || *end || port < 1 || port > 65535)
            return pb_error_set(err, PB_EINVALID, "ssh: bad port in '%s'", url);
        out->port = (int)port;
    }
    if (slash && slash[1]) {
        const char *d = slash;
        if (strncmp(d, "/~/", 3) == 0)
            d += 3;
        else if (strcmp(d, "/~") == 0)
            d = ".";
        if (strlen(d) >= sizeof(out->dir))
            return pb_error_set(err, PB_EINVALID, "ssh: the directory in '%s' is too long", url);
        snprintf(out->dir, sizeof(out->dir), "%s", d);
        size_t n = strlen(out->dir);
        while (n > 1 && out->dir[n - 1] == '/')
            out->dir[--n] = '\0';
    }
    return 0;
}

void pb_ssh_options_init(pb_ssh_options *o)
{
    memset(o, 0, sizeof(*o));
    o->version = PB_SSH_OPTIONS_VERSION;
}

int pb_ssh_pin_valid(const char *pin)
{
    if (strncmp(pin, "SHA256:", 7) != 0)
        return 0;
    unsigned char d[64];
    const char *b = pin + 7;
    size_t n = strlen(b);
    while (n && b[n - 1] == '=')
        n--;
    return b64_decode(d, sizeof(d), b, n) == 32;
}

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                     */

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

/* ---------------------------------------------------------------------------------------- */
/* The wait loop                                                                              */

static LIBSSH2_RECV_FUNC(stamp_recv)
{
    pb_ssh *s = *abstract;
    ssize_t n = recv(socket, buffer, length, flags);
    if (n < 0)
        return errno == EWOULDBLOCK || errno == EAGAIN ? -EAGAIN : -errno;
    if (n > 0)
        s->alive_ref = pb_clock_ms();
    return n;
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

/* ---------------------------------------------------------------------------------------- */
/* TCP                                                                                        */

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

/* ---------------------------------------------------------------------------------------- */
/* Host keys                                                                                  */

typedef struct keytype {
    int hk;          /* LIBSSH2_HOSTKEY_TYPE_* */
    int kh;          /* LIBSSH2_KNOWNHOST_KEY_* */
    const char *alg; /* algorithm name for the preference list and known_hosts */
} keytype;

static const keytype keytypes[] = {
    {LIBSSH2_HOSTKEY_TYPE_ED25519, LIBSSH2_KNOWNHOST_KEY_ED25519, "ssh-ed25519"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_256, LIBSSH2_KNOWNHOST_KEY_ECDSA_256, "ecdsa-sha2-nistp256"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_384, LIBSSH2_KNOWNHOST_KEY_ECDSA_384, "ecdsa-sha2-nistp384"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_521, LIBSSH2_KNOWNHOST_KEY_ECDSA_521, "ecdsa-sha2-nistp521"},
    {LIBSSH2_HOSTKEY_TYPE_RSA, LIBSSH2_KNOWNHOST_KEY_SSHRSA, "ssh-rsa"},
};
#define NKEYTYPES (sizeof(keytypes) / sizeof(keytypes[0]))

typedef struct khfile {
    const char *path;
    LIBSSH2_KNOWNHOSTS *kh;
    char revoked[8][800]; /* base64 keys of @revoked lines */
    int nrevoked;
    int skipped; /* lines libssh2 could not parse */
} khfile;

/* Reads a known_hosts file line by line (a line libssh2 cannot parse, e.g. a certificate
 * authority, is skipped rather than ending the read); a missing file is empty. */
static int kh_load(pb_ssh *s, khfile *f, const char *path, pb_error *err)
{
    f->path = path;
    f->kh = libssh2_knownhost_init(s->ls);
    if (!f->kh)
        return pb_error_set(err, PB_ENOMEM, "ssh: out of memory");
    FILE *fp = fopen(path, "re");
    if (!fp) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        return pb_error_errno(err, "ssh: cannot read %s", path);
    }
    char line[16384];
    while (fgets(line, sizeof(line), fp)) {
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p || *p == '#' || *p == '\n')
            continue;
        if (strncmp(p, "@revoked", 8) == 0) {
            /* @revoked HOSTS TYPE BASE64 */
            char hosts[4096], type[64], key[800];
            if (sscanf(p + 8, "%4095s %63s %799s", hosts, type, key) == 3 && f->nrevoked < 8)
                snprintf(f->revoked[f->nrevoked++], sizeof(f->revoked[0]), "%s", key);
            continue;
        }
        if (*p == '@') {
            f->skipped++;
            continue;
        }
        if (libssh2_knownhost_readline(f->kh, p, strlen(p), LIBSSH2_KNOWNHOST_FILE_OPENSSH) != 0)
            f->skipped++;
    }
    fclose(fp);
    return 0;
}

static void kh_free(khfile *f)
{
    if (f->kh)
        libssh2_knownhost_free(f->kh);
    f->kh = NULL;
}

/* The name OpenSSH looks up: host, or [host]:port off port 22. */
static void kh_name(const pb_ssh *s, char *out, size_t cap)
{
    char h[300];
    size_t i = 0;
    for (; s->host[i] && i + 1 < sizeof(h); i++)
        h[i] = (char)tolower((unsigned char)s->host[i]);
    h[i] = '\0';
    if (s->o.port == 22)
        snprintf(out, cap, "%s", h);
    else
        snprintf(out, cap, "[%s]:%d", h, s->o.port);
}

/* Which key types the files know for this host: a check with a dummy key says MISMATCH when
 * an entry of that type exists. Builds the host-key preference list (known types first). */
static void hostkey_prefs(const pb_ssh *s, khfile *files, int nfiles, char *out, size_t cap)
{
    char name[320];
    kh_name(s, name, sizeof(name));
    out[0] = '\0';
    int known[NKEYTYPES] = {0}, any = 0;
    for (size_t t = 0; t < NKEYTYPES; t++)
        for (int i = 0; i < nfiles; i++) {
            if (!files[i].kh)
                continue;
            int r = libssh2_knownhost_checkp(
                files[i].kh, name, -1, "x", 1,
                LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | keytypes[t].kh, NULL);
            if (r == LIBSSH2_KNOWNHOST_CHECK_MISMATCH || r == LIBSSH2_KNOWNHOST_CHECK_MATCH)
                known[t] = any = 1;
        }
    for (size_t t = 0; t < NKEYTYPES; t++)
        if (!any || known[t]) {
            size_t n = strlen(out);
            snprintf(out + n, cap - n, "%s%s", n ? "," : "", keytypes[t].alg);
        }
}

static int append_known_host(pb_ssh *s, khfile *own, const char *name, const char *key,
                             size_t keylen, int kh_type, pb_error *err)
{
    int error = 0;
    int fd = -1;
    struct libssh2_knownhost *entry = NULL;
    char line[4096];
    size_t len = 0;
    if (libssh2_knownhost_addc(
            own->kh, name, NULL, key, keylen, "plexburst", 9,
            LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | kh_type, &entry) != 0 ||
        libssh2_knownhost_writeline(own->kh, entry, line, sizeof(line), &len,
                                    LIBSSH2_KNOWNHOST_FILE_OPENSSH) != 0)
        return pb_ssh__fail(s, LIBSSH2_ERROR_KNOWN_HOSTS, err,
                            "cannot format the known_hosts line");
    /* mkdir -p of the parent, 0700 */
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", own->path);
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(dir, 0700) != 0 && errno != EEXIST)
                return pb_error_errno(err, "ssh: cannot create %s", dir);
            *p = '/';
        }
    fd = open(own->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return pb_error_errno(err, "ssh: cannot open %s", own->path);
    if (len == 0 || line[len - 1] != '\n')
        line[len++] = '\n';
    if (write(fd, line, len) != (ssize_t)len)
        error = pb_error_errno(err, "ssh: cannot write %s", own->path);
    if (close(fd) != 0 && !error)
        error = pb_error_errno(err, "ssh: cannot write %s", own->path);
    return error;
}

static int verify_host_key(pb_ssh *s, khfile *files, int nfiles, pb_error *err)
{
    size_t len = 0;
    int type = 0;
    const char *key = libssh2_session_hostkey(s->ls, &len, &type);
    if (!key)
        return pb_ssh__fail(s, LIBSSH2_ERROR_HOSTKEY_INIT, err, "no host key");
    const keytype *kt = NULL;
    for (size_t t = 0; t < NKEYTYPES; t++)
        if (keytypes[t].hk == type)
            kt = &keytypes[t];
    const unsigned char *h =
        (const unsigned char *)libssh2_hostkey_hash(s->ls, LIBSSH2_HOSTKEY_HASH_SHA256);
    char fp[64] = "SHA256:";
    if (h)
        b64_encode(fp + 7, sizeof(fp) - 7, h, 32, 0);
    snprintf(s->hostkey, sizeof(s->hostkey), "%s %s", kt ? kt->alg : "unknown-key-type", fp);
    char name[320];
    kh_name(s, name, sizeof(name));

    if (s->pin) {
        const char *a = fp + 7, *b = s->pin + 7;
        size_t an = strlen(a), bn = strlen(b);
        while (bn && b[bn - 1] == '=')
            bn--;
        if (h && an == bn && memcmp(a, b, an) == 0)
            return 0;
        return pb_error_setd(err, PB_EAUTH, LIBSSH2_ERROR_HOSTKEY_SIGN,
                             "ssh %s: the host key does not match the pinned one: the server "
                             "offers %s, PLEXBURST_SSH_HOST_KEY pins %s",
                             s->desc, s->hostkey, s->pin);
    }
    if (!kt)
        return pb_error_setd(err, PB_EAUTH, LIBSSH2_ERROR_HOSTKEY_INIT,
                             "ssh %s: unsupported host key type %d", s->desc, type);
    char keyb64[800];
    b64_encode(keyb64, sizeof(keyb64), (const unsigned char *)key, len, 1);
    const char *mismatch_in = NULL;
    for (int i = 0; i < nfiles; i++) {
        for (int r = 0; r < files[i].nrevoked; r++)
            if (strcmp(files[i].revoked[r], keyb64) == 0)
                return pb_error_setd(err, PB_EAUTH, LIBSSH2_ERROR_HOSTKEY_SIGN,
                                     "ssh %s: the host key %s is marked @revoked in %s", s->desc,
                                     s->hostkey, files[i].path);
    }
    for (int i = 0; i < nfiles; i++) {
        if (!files[i].kh)
            continue;
        int r = libssh2_knownhost_checkp(
            files[i].kh, name, -1, key, len,
            LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | kt->kh, NULL);
        if (r == LIBSSH2_KNOWNHOST_CHECK_MATCH)
            return 0;
        if (r == LIBSSH2_KNOWNHOST_CHECK_MISMATCH && !mismatch_in)
            mismatch_in = files[i].path;
    }
    if (mismatch_in)
        return pb_error_setd(err, PB_EAUTH, LIBSSH2_ERROR_HOSTKEY_SIGN,
                             "ssh %s: the host key has CHANGED: the server offers %s but %s "
                             "holds another %s key for %s (the server was reinstalled, or "
                             "someone is intercepting the connection); refusing: if the new "
                             "key is right, remove the old line",
                             s->desc, s->hostkey, mismatch_in, kt->alg, name);
    if (s->o.tofu) {
        int error = append_known_host(s, &files[0], name, key, len, kt->kh, err);
        if (error < 0)
            return error;
        pb_ssh__log(s, "ssh %s: new host key %s accepted (trust on first use) and added to %s",
                    s->desc, s->hostkey, files[0].path);
        return 0;
    }
    char where[8300];
    snprintf(where, sizeof(where), "%s%s%s", files[0].path, nfiles > 1 ? " nor " : "",
             nfiles > 1 ? files[1].path : "");
    return pb_error_setd(err, PB_EAUTH, LIBSSH2_ERROR_HOSTKEY_SIGN,
                         "ssh %s: unknown host key %s (not in %s): verify the fingerprint, then "
                         "accept it once with PLEXBURST_SSH_TOFU=1 (--accept-new-host-key) or pin "
                         "it with PLEXBURST_SSH_HOST_KEY",
                         s->desc, s->hostkey, where);
}

/* ---------------------------------------------------------------------------------------- */
/* Authentication                                                                             */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The algorithm of a public key blob ("ssh-rsa", ...) into out. */
static void blob_type(const unsigned char *blob, size_t n, char *out, size_t cap)
{
    out[0] = '\0';
    if (n < 4)
        return;
    uint32_t l = be32(blob);
    if (l > n - 4 || l >= cap)
        return;
    memcpy(out, blob + 4, l);
    out[l] = '\0';
}

/* The type of a private key file, without decrypting it: the .pub beside it, the PEM header,
 * or the public key inside an OpenSSH-format container (never encrypted). "" when unknown. */
static void keyfile_type(const char *path, char *out, size_t cap)
{
    out[0] = '\0';
    char pub[4200];
    snprintf(pub, sizeof(pub), "%s.pub", path);
    FILE *fp = fopen(pub, "re");
    if (fp) {
        char t[64];
        if (fscanf(fp, "%63s", t) == 1)
            snprintf(out, cap, "%s", t);
        fclose(fp);
        if (out[0])
            return;
    }
    enum { TEXT = 65536, BIN = 49152 };
    char *text = malloc(TEXT);
    unsigned char *bin = malloc(BIN);
    fp = text && bin ? fopen(path, "re") : NULL;
    if (!fp)
        goto done;
    size_t n = fread(text, 1, TEXT - 1, fp);
    fclose(fp);
    text[n] = '\0';
    if (strstr(text, "BEGIN RSA PRIVATE KEY")) {
        snprintf(out, cap, "ssh-rsa");
        goto done;
    }
    if (strstr(text, "BEGIN EC PRIVATE KEY")) {
        snprintf(out, cap, "ecdsa");
        goto done;
    }
    const char *b = strstr(text, "-----BEGIN OPENSSH PRIVATE KEY-----");
    const char *e = b ? strstr(b, "-----END") : NULL;
    if (!e)
        goto done;
    b += 35;
    long bl = b64_decode(bin, BIN, b, (size_t)(e - b));
    const char magic[] = "openssh-key-v1";
    if (bl < (long)sizeof(magic) || memcmp(bin, magic, sizeof(magic)) != 0)
        goto done;
    size_t off = sizeof(magic);
    for (int i = 0; i < 3; i++) { /* cipher, kdf, kdf options */
        if (off + 4 > (size_t)bl)
            goto done;
        off += 4 + be32(bin + off);
    }
    off += 4; /* number of keys */
    if (off + 4 > (size_t)bl)
        goto done;
    uint32_t pl = be32(bin + off);
    off += 4;
    if (off + pl <= (size_t)bl)
        blob_type(bin + off, pl, out, cap);
done:
    free(text);
    free(bin);
}

typedef struct auth_log {
    char tried[600];
    int rsa;
} auth_log;

static void tried(auth_log *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tried(auth_log *a, const char *fmt, ...)
{
    size_t n = strlen(a->tried);
    if (n + 3 >= sizeof(a->tried))
        return;
    if (n) {
        strcpy(a->tried + n, "; ");
        n += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->tried + n, sizeof(a->tried) - n, fmt, ap);
    va_end(ap);
}

/* 1 authenticated, 0 refused (go on), < 0 a failure that ends the attempt. */
static int auth_keyfile(pb_ssh *s, const char *path, const char *pass, auth_log *a, pb_error *err)
{
    char type[64];
    if (access(path, R_OK) != 0)
        return pb_error_setd(err, PB_EAUTH, errno, "ssh %s: cannot read the key file %s: %s",
                             s->desc, path, strerror(errno));
    keyfile_type(path, type, sizeof(type));
    int rc;
    double deadline = pb_ssh__deadline(s);
    while ((rc = libssh2_userauth_publickey_fromfile_ex(s->ls, s->user, (unsigned)strlen(s->user),
                                                        NULL, path, pass ? pass : "")) ==
           LIBSSH2_ERROR_EAGAIN) {
        int e = pb_ssh__wait(s, deadline, "authentication", err);
        if (e < 0)
            return e;
    }
    if (rc == 0)
        return 1;
    int is_rsa = strcmp(type, "ssh-rsa") == 0;
    if (rc == LIBSSH2_ERROR_FILE || rc == LIBSSH2_ERROR_KEYFILE_AUTH_FAILED ||
        rc == LIBSSH2_ERROR_METHOD_NOT_SUPPORTED) {
        return pb_error_setd(err, PB_EAUTH, rc,
                             "ssh %s: cannot use the key %s%s%s: %s (a wrong or missing "
                             "passphrase in PLEXBURST_SSH_KEY_PASSPHRASE, or a key format "
                             "libssh2 1.10 cannot read)%s%s",
                             s->desc, path, type[0] ? " " : "", type[0] ? type : "",
                             pass && *pass ? "the passphrase given does not decrypt it"
                                           : "it may be encrypted",
                             is_rsa ? "; " : "", is_rsa ? RSA_NOTE : "");
    }
    if (rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED || rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED) {
        tried(a, "key %s (%s) refused", path, type[0] ? type : "unknown type");
        a->rsa |= is_rsa;
        return 0;
    }
    return pb_ssh__fail(s, rc, err, "public key authentication with %s", path);
}

static int auth_agent(pb_ssh *s, auth_log *a, pb_error *err)
{
    int result = 0;
    LIBSSH2_AGENT *ag = libssh2_agent_init(s->ls);
    if (!ag)
        return 0;
    if (libssh2_agent_connect(ag) != 0) {
        tried(a, "SSH agent unreachable");
        goto done;
    }
    if (libssh2_agent_list_identities(ag) != 0) {
        tried(a, "SSH agent: no identities");
        goto done;
    }
    struct libssh2_agent_publickey *id = NULL, *prev = NULL;
    int n = 0, nrsa = 0;
    while (libssh2_agent_get_identity(ag, &id, prev) == 0) {
        prev = id;
        char type[64];
        blob_type(id->blob, id->blob_len, type, sizeof(type));
        n++;
        int rc;
        double deadline = pb_ssh__deadline(s);
        while ((rc = libssh2_agent_userauth(ag, s->user, id)) == LIBSSH2_ERROR_EAGAIN) {
            int e = pb_ssh__wait(s, deadline, "authentication", err);
            if (e < 0) {
                result = e;
                goto done;
            }
        }
        if (rc == 0) {
            result = 1;
            goto done;
        }
        if (strcmp(type, "ssh-rsa") == 0)
            nrsa++;
        if (pb_ssh__is_transport(rc)) {
            result = pb_ssh__fail(s, rc, err, "authentication with the SSH agent");
            goto done;
        }
    }
    tried(a, "%d SSH agent key%s refused%s", n, n == 1 ? "" : "s", nrsa ? " (RSA among them)" : "");
    a->rsa |= nrsa > 0;
done:
    libssh2_agent_disconnect(ag);
    libssh2_agent_free(ag);
    return result;
}

static int authenticate(pb_ssh *s, pb_error *err)
{
    auth_log a = {{0}, 0};
    double deadline = pb_ssh__deadline(s);
    char *methods;
    for (;;) {
        methods = libssh2_userauth_list(s->ls, s->user, (unsigned)strlen(s->user));
        if (methods || libssh2_userauth_authenticated(s->ls))
            break;
        int rc = libssh2_session_last_errno(s->ls);
        if (rc != LIBSSH2_ERROR_EAGAIN)
            return pb_ssh__fail(s, rc, err, "asking for the authentication methods");
        int e = pb_ssh__wait(s, deadline, "authentication", err);
        if (e < 0)
            return e;
    }
    if (!methods)
        return 0; /* "none" was accepted */
    if (!strstr(methods, "publickey"))
        return pb_error_setd(err, PB_EAUTH, LIBSSH2_ERROR_METHOD_NONE,
                             "ssh %s: the server does not accept public keys (it offers: %s)",
                             s->desc, methods);
    int r;
    if (s->key_file && (r = auth_keyfile(s, s->key_file, s->passphrase, &a, err)) != 0)
        return r < 0 ? r : 0;
    if (s->o.use_agent >= 0 && getenv("SSH_AUTH_SOCK") && *getenv("SSH_AUTH_SOCK") &&
        (r = auth_agent(s, &a, err)) != 0)
        return r < 0 ? r : 0;
    if (!s->key_file) {
        char def[4200];
        snprintf(def, sizeof(def), "%s/.ssh/id_ed25519", home_dir());
        if (access(def, R_OK) == 0 && (r = auth_keyfile(s, def, s->passphrase, &a, err)) != 0)
            return r < 0 ? r : 0;
        snprintf(def, sizeof(def), "%s/.ssh/id_rsa", home_dir());
        if (!a.tried[0] && access(def, R_OK) == 0) {
            tried(&a, "only %s found", def);
            a.rsa = 1;
        }
    }
    if (!a.tried[0])
        return pb_error_setd(err, PB_EAUTH, LIBSSH2_ERROR_AUTHENTICATION_FAILED,
                             "ssh %s: no key to offer: set PLEXBURST_SSH_KEY to an ed25519 "
                             "private key, or load one into an SSH agent",
                             s->desc);
    return pb_error_setd(err, PB_EAUTH, LIBSSH2_ERROR_AUTHENTICATION_FAILED,
                         "ssh %s: public key authentication failed (%s)%s%s", s->desc, a.tried,
                         a.rsa ? ": " : "", a.rsa ? RSA_NOTE : "");
}

/* ---------------------------------------------------------------------------------------- */
/* Sessions                                                                                   */

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
    khfile files[2];
    memset(files, 0, sizeof(files));
    int nfiles = 0;
    s->lost = 0;
    if ((error = tcp_connect(s, err)) < 0)
        goto done;
    s->ls = libssh2_session_init_ex(NULL, NULL, NULL, s);
    if (!s->ls) {
        error = pb_error_set(err, PB_ENOMEM, "ssh: cannot create a session");
        goto done;
    }
    libssh2_session_callback_set(s->ls, LIBSSH2_CALLBACK_RECV, (void *)stamp_recv);
    libssh2_session_set_blocking(s->ls, 0);
    s->alive_ref = s->last_wait = pb_clock_ms();

    if (!s->pin) {
        if ((error = kh_load(s, &files[nfiles++], s->known_hosts, err)) < 0)
            goto done;
        if (s->o.use_user_known_hosts &&
            (error = kh_load(s, &files[nfiles++], s->user_known_hosts, err)) < 0)
            goto done;
    }
    char prefs[256];
    hostkey_prefs(s, files, nfiles, prefs, sizeof(prefs));
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
    while ((rc = libssh2_session_handshake(s->ls, s->sock)) == LIBSSH2_ERROR_EAGAIN)
        if ((error = pb_ssh__wait(s, deadline, "the SSH handshake", err)) < 0)
            goto done;
    if (rc) {
        error = pb_ssh__fail(s, rc, err, "SSH handshake");
        goto done;
    }
    if ((error = verify_host_key(s, files, nfiles, err)) < 0)
        goto done;
    if ((error = authenticate(s, err)) < 0)
        goto done;
    if (s->o.keepalive_s > 0)
        libssh2_keepalive_config(s->ls, 1, (unsigned)s->o.keepalive_s);
    s->generation++;
done:
    for (int i = 0; i < nfiles; i++)
        kh_free(&files[i]);
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
    snprintf(kh, sizeof(kh), "%s/.config/plexburst/known_hosts", home_dir());
    snprintf(ukh, sizeof(ukh), "%s/.ssh/known_hosts", home_dir());
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

/* ---------------------------------------------------------------------------------------- */
/* Remote commands                                                                            */

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

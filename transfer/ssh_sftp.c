/*
 * ssh_sftp.c: bulk data over SFTP (ssh.h): uploads and downloads that keep up to `buffer`
 * bytes in flight, resume from an offset, and reconnect and continue by themselves when the
 * connection drops; remote stat; the agent binary's installation (version check, upload to a
 * temporary name, chmod, atomic rename).
 * Role: transfer/ layer; used by the runs for the agent install and by a store over SSH.
 * Prerequisites: libssh2 1.10 (sftp), the session of ssh.c.
 *
 * THROUGHPUT: libssh2_sftp_write() cuts what it is given into 30000-byte WRITE requests, sends
 * them all and returns at the first acknowledgement, so the bytes in flight are what the call
 * was given. The upload reads the file into 4 x buffer bytes of memory and passes at most
 * `buffer` of them: the unacknowledged bytes plus fresh ones (libssh2 skips what it already sent
 * and only requires that the bytes at the front are the unacknowledged ones, wherever they lie
 * in memory); what is left is moved to the front once `buffer` bytes were acknowledged (at most
 * a third of the bytes are copied twice). The default buffer, 2.4 MB (80 requests), covers
 * OpenSSH's 2 MiB channel window, which caps the bytes in flight anyway. Downloads pass the
 * buffer to libssh2_sftp_read(), which then keeps up to 4 x buffer (at most 8 MiB) of READ
 * requests outstanding. Either way the link, not the round trip, limits the rate; on loopback
 * the CPU does: the session's cipher, socket reads and packet memory are made cheap in ssh_ctr.c,
 * ssh_wait.c and ssh_mem.c (docs/ssh.md, "Benchmark").
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "fdsink.h"
#include "fs.h"
#include "ssh_int.h"

#define DEFAULT_BUFFER (80u * 30000)

int pb_ssh__sftp(pb_ssh *s, LIBSSH2_SFTP **out, pb_error *err)
{
    *out = NULL;
    if (pb_ssh_lost(s))
        return pb_error_setd(err, PB_ENET, LIBSSH2_ERROR_SOCKET_DISCONNECT,
                             "ssh %s: the connection is lost", s->desc);
    if (!s->sftp) {
        double deadline = pb_ssh__deadline(s);
        for (;;) {
            s->sftp = libssh2_sftp_init(s->ls);
            if (s->sftp)
                break;
            int rc = libssh2_session_last_errno(s->ls);
            if (rc != LIBSSH2_ERROR_EAGAIN)
                return pb_ssh__fail(s, rc, err, "cannot start sftp");
            int error = pb_ssh__wait(s, deadline, "starting sftp", err);
            if (error < 0)
                return error;
        }
    }
    *out = s->sftp;
    return 0;
}

static int sftp_open(pb_ssh *s, LIBSSH2_SFTP_HANDLE **out, const char *path, unsigned long flags,
                     long mode, pb_error *err)
{
    LIBSSH2_SFTP *sftp;
    int error = pb_ssh__sftp(s, &sftp, err);
    *out = NULL;
    if (error < 0)
        return error;
    double deadline = pb_ssh__deadline(s);
    for (;;) {
        *out = libssh2_sftp_open_ex(sftp, path, (unsigned)strlen(path), flags, mode,
                                    LIBSSH2_SFTP_OPENFILE);
        if (*out)
            return 0;
        int rc = libssh2_session_last_errno(s->ls);
        if (rc != LIBSSH2_ERROR_EAGAIN)
            return pb_ssh__fail(s, rc, err, "cannot open %s", path);
        if ((error = pb_ssh__wait(s, deadline, "opening a remote file", err)) < 0)
            return error;
    }
}

/* Closes a handle; with `check`, a failure (e.g. the server's late write error) is reported. */
static int sftp_close(pb_ssh *s, LIBSSH2_SFTP_HANDLE *h, int check, const char *path, pb_error *err)
{
    if (!h || pb_ssh_lost(s))
        return 0; /* freed with the session */
    pb_error e = PB_ERROR_INIT;
    pb_error *ep = check ? err : &e;
    double deadline = pb_ssh__deadline(s);
    int rc, error;
    while ((rc = libssh2_sftp_close_handle(h)) == LIBSSH2_ERROR_EAGAIN)
        if ((error = pb_ssh__wait(s, deadline, "closing a remote file", ep)) < 0)
            return check ? error : 0;
    if (rc && check)
        return pb_ssh__fail(s, rc, err, "closing %s", path);
    return 0;
}

static int sftp_stat(pb_ssh *s, const char *path, LIBSSH2_SFTP_ATTRIBUTES *a, pb_error *err)
{
    LIBSSH2_SFTP *sftp;
    int error = pb_ssh__sftp(s, &sftp, err);
    if (error < 0)
        return error;
    double deadline = pb_ssh__deadline(s);
    int rc;
    while ((rc = libssh2_sftp_stat_ex(sftp, path, (unsigned)strlen(path), LIBSSH2_SFTP_STAT, a)) ==
           LIBSSH2_ERROR_EAGAIN)
        if ((error = pb_ssh__wait(s, deadline, "stat of a remote file", err)) < 0)
            return error;
    if (rc)
        return pb_ssh__fail(s, rc, err, "stat %s", path);
    return 0;
}

int pb_ssh_stat_size(pb_ssh *s, const char *remote, uint64_t *size, pb_error *err)
{
    LIBSSH2_SFTP_ATTRIBUTES a;
    memset(&a, 0, sizeof(a));
    *size = 0;
    int error = sftp_stat(s, remote, &a, err);
    if (error < 0)
        return error;
    *size = a.filesize;
    return 0;
}

/* After a lost connection during a transfer: reconnect (bounded) unless this transfer has
 * already used up its reconnections. `cause` is the error that stopped the transfer. */
static int recover(pb_ssh *s, pb_ssh_xfer *x, const pb_error *cause, const char *what,
                   pb_error *err)
{
    if (cause->code != PB_ENET || x->reconnects >= (unsigned)s->o.reconnect_tries)
        return pb_error_setd(err, cause->code, cause->dep_code, "%s", cause->msg);
    s->lost = 1; /* whatever broke the stream, a fresh connection is the way on */
    pb_ssh__log(s, "ssh %s: %s interrupted (%s); reconnecting", s->desc, what, cause->msg);
    pb_error e = PB_ERROR_INIT;
    int error = pb_ssh_reconnect(s, &e);
    if (error < 0)
        return pb_error_setd(err, error, e.dep_code, "%s; reconnecting failed: %s", cause->msg,
                             e.msg);
    x->reconnects++;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Upload                                                                                     */

typedef struct put_job {
    pb_ssh *s;
    pb_ssh_xfer *x;
    int fd;
    uint64_t size;
    const char *local, *remote;
    unsigned char *buf;
    size_t window; /* bytes passed to libssh2 at most (in flight) */
    size_t cap;    /* 2 x window */
} put_job;

static int put_attempt(put_job *j, int resume, int first, pb_error *err)
{
    pb_ssh *s = j->s;
    pb_ssh_xfer *x = j->x;
    LIBSSH2_SFTP_HANDLE *h = NULL;
    int error = 0;
    uint64_t start = 0;
    if (resume) {
        LIBSSH2_SFTP_ATTRIBUTES a;
        memset(&a, 0, sizeof(a));
        pb_error e = PB_ERROR_INIT;
        error = sftp_stat(s, j->remote, &a, &e);
        if (error == 0 && (a.flags & LIBSSH2_SFTP_ATTR_SIZE) && a.filesize <= j->size)
            start = a.filesize;
        else if (error < 0 && error != PB_ENOTFOUND)
            return pb_error_setd(err, e.code, e.dep_code, "%s", e.msg);
        error = 0;
    }
    if (first)
        x->resumed_from = start;
    unsigned long flags = LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | (start ? 0 : LIBSSH2_FXF_TRUNC);
    if ((error = sftp_open(s, &h, j->remote, flags, x->mode ? x->mode : 0600, err)) < 0)
        return error;
    if (start)
        libssh2_sftp_seek64(h, start);
    size_t head = 0, tail = 0;
    uint64_t pos = start, acked = start;
    while (acked < j->size) {
        if (tail < j->cap && pos < j->size) {
            size_t want = j->cap - tail;
            if ((uint64_t)want > j->size - pos)
                want = (size_t)(j->size - pos);
            ssize_t n = pread(j->fd, j->buf + tail, want, (off_t)pos);
            if (n < 0 && errno != EINTR) {
                error = pb_error_errno(err, "ssh: cannot read %s", j->local);
                goto done;
            }
            if (n == 0) {
                error = pb_error_set(err, PB_EIO, "ssh: %s shrank during the upload", j->local);
                goto done;
            }
            if (n > 0) {
                tail += (size_t)n;
                pos += (uint64_t)n;
            }
        }
        size_t give = tail - head < j->window ? tail - head : j->window;
        ssize_t w = libssh2_sftp_write(h, (const char *)j->buf + head, give);
        if (w == LIBSSH2_ERROR_EAGAIN) {
            if ((error = pb_ssh__wait(s, 0, "an upload", err)) < 0)
                goto done;
            continue;
        }
        if (w < 0) {
            error = pb_ssh__fail(s, (int)w, err, "writing %s", j->remote);
            goto done;
        }
        head += (size_t)w;
        acked += (uint64_t)w;
        x->bytes_moved += (uint64_t)w;
        pb_progress p = {"upload", acked, j->size, 0, 0, j->remote};
        if (x->progress && x->progress(&p, x->progress_payload)) {
            error = pb_error_set(err, PB_ECANCELLED, "ssh %s: upload of %s cancelled", s->desc,
                                 j->local);
            goto done;
        }
        if (head >= j->window && head >= j->cap - j->window) {
            memmove(j->buf, j->buf + head, tail - head);
            tail -= head;
            head = 0;
        }
    }
    error = sftp_close(s, h, 1, j->remote, err);
    h = NULL;
done:
    if (h)
        sftp_close(s, h, 0, j->remote, NULL);
    return error;
}

static size_t window_of(const pb_ssh_xfer *x)
{
    size_t b = x->buffer ? x->buffer : DEFAULT_BUFFER;
    return b < 30000 ? 30000 : b;
}

void pb_ssh_xfer_init(pb_ssh_xfer *x)
{
    memset(x, 0, sizeof(*x));
    x->version = PB_SSH_XFER_VERSION;
}

int pb_ssh_put_file(pb_ssh *s, const char *local, const char *remote, pb_ssh_xfer *x, pb_error *err)
{
    int error = 0;
    pb_ssh_xfer xd = PB_SSH_XFER_INIT;
    put_job j;
    memset(&j, 0, sizeof(j));
    j.fd = -1;
    if (!x)
        x = &xd;
    x->resumed_from = x->bytes_moved = 0;
    x->reconnects = 0;
    j.s = s;
    j.x = x;
    j.local = local;
    j.remote = remote;
    j.window = window_of(x);
    j.cap = 4 * j.window;
    j.fd = open(local, O_RDONLY | O_CLOEXEC);
    if (j.fd < 0) {
        error = errno == ENOENT ? pb_error_setd(err, PB_ENOTFOUND, errno, "ssh: no file %s", local)
                                : pb_error_errno(err, "ssh: cannot open %s", local);
        goto done;
    }
    struct stat st;
    if (fstat(j.fd, &st) != 0) {
        error = pb_error_errno(err, "ssh: cannot stat %s", local);
        goto done;
    }
    j.size = (uint64_t)st.st_size;
    j.buf = malloc(j.cap);
    if (!j.buf) {
        error = pb_error_set(err, PB_ENOMEM, "ssh: out of memory (%zu bytes)", j.cap);
        goto done;
    }
    for (int first = 1;; first = 0) {
        pb_error e = PB_ERROR_INIT;
        error = put_attempt(&j, first ? x->resume : 1, first, &e);
        if (error == 0)
            break;
        char what[300];
        snprintf(what, sizeof(what), "upload of %.240s", remote);
        if ((error = recover(s, x, &e, what, err)) < 0)
            goto done;
    }
done:
    free(j.buf);
    if (j.fd >= 0)
        close(j.fd);
    return error;
}

/* ---------------------------------------------------------------------------------------- */
/* Download                                                                                   */

typedef struct get_job {
    pb_ssh *s;
    pb_ssh_xfer *x;
    const char *remote;
    pb_sink_fn sink;
    void *sink_payload;
    char *buf;
    size_t bufsize;
    uint64_t pos; /* next byte to deliver */
} get_job;

static int get_attempt(get_job *j, pb_error *err)
{
    pb_ssh *s = j->s;
    LIBSSH2_SFTP_HANDLE *h = NULL;
    int error;
    if ((error = sftp_open(s, &h, j->remote, LIBSSH2_FXF_READ, 0, err)) < 0)
        return error;
    uint64_t total = 0;
    LIBSSH2_SFTP_ATTRIBUTES a;
    memset(&a, 0, sizeof(a));
    double deadline = pb_ssh__deadline(s);
    int rc;
    while ((rc = libssh2_sftp_fstat_ex(h, &a, 0)) == LIBSSH2_ERROR_EAGAIN)
        if ((error = pb_ssh__wait(s, deadline, "stat of a remote file", err)) < 0)
            goto done;
    if (rc == 0 && (a.flags & LIBSSH2_SFTP_ATTR_SIZE))
        total = a.filesize;
    if (j->pos)
        libssh2_sftp_seek64(h, j->pos);
    for (;;) {
        ssize_t n = libssh2_sftp_read(h, j->buf, j->bufsize);
        if (n == LIBSSH2_ERROR_EAGAIN) {
            if ((error = pb_ssh__wait(s, 0, "a download", err)) < 0)
                goto done;
            continue;
        }
        if (n < 0) {
            error = pb_ssh__fail(s, (int)n, err, "reading %s", j->remote);
            goto done;
        }
        if (n == 0)
            break;
        if ((error = j->sink(j->sink_payload, j->buf, (size_t)n, err)) < 0)
            goto done;
        j->pos += (uint64_t)n;
        j->x->bytes_moved += (uint64_t)n;
        pb_progress p = {"download", j->pos, total, 0, 0, j->remote};
        if (j->x->progress && j->x->progress(&p, j->x->progress_payload)) {
            error = pb_error_set(err, PB_ECANCELLED, "ssh %s: download of %s cancelled", s->desc,
                                 j->remote);
            goto done;
        }
    }
done:
    sftp_close(s, h, 0, j->remote, NULL);
    return error;
}

static int read_stream(pb_ssh *s, const char *remote, uint64_t offset, pb_sink_fn sink,
                       void *payload, pb_ssh_xfer *x, pb_error *err)
{
    int error = 0;
    get_job j;
    memset(&j, 0, sizeof(j));
    j.s = s;
    j.x = x;
    j.remote = remote;
    j.sink = sink;
    j.sink_payload = payload;
    j.pos = offset;
    j.bufsize = window_of(x);
    j.buf = malloc(j.bufsize);
    if (!j.buf)
        return pb_error_set(err, PB_ENOMEM, "ssh: out of memory (%zu bytes)", j.bufsize);
    for (;;) {
        pb_error e = PB_ERROR_INIT;
        error = get_attempt(&j, &e);
        if (error == 0)
            break;
        char what[300];
        snprintf(what, sizeof(what), "download of %.240s", remote);
        if ((error = recover(s, x, &e, what, err)) < 0)
            break;
    }
    free(j.buf);
    return error;
}

int pb_ssh_read_file(pb_ssh *s, const char *remote, uint64_t offset, pb_sink_fn sink,
                     void *sink_payload, pb_ssh_xfer *x, pb_error *err)
{
    pb_ssh_xfer xd = PB_SSH_XFER_INIT;
    if (!x)
        x = &xd;
    x->resumed_from = offset;
    x->bytes_moved = 0;
    x->reconnects = 0;
    return read_stream(s, remote, offset, sink, sink_payload, x, err);
}

int pb_ssh_get_file(pb_ssh *s, const char *remote, const char *local, pb_ssh_xfer *x, pb_error *err)
{
    int error = 0;
    pb_ssh_xfer xd = PB_SSH_XFER_INIT;
    if (!x)
        x = &xd;
    x->resumed_from = x->bytes_moved = 0;
    x->reconnects = 0;
    /* The remote file first: a missing one leaves the local file untouched. */
    uint64_t rsize = 0;
    pb_error e = PB_ERROR_INIT;
    error = pb_ssh_stat_size(s, remote, &rsize, &e);
    if (error < 0 && (error = recover(s, x, &e, "a download", err)) == 0)
        error = pb_ssh_stat_size(s, remote, &rsize, err);
    if (error < 0)
        return error;
    int fd = open(local, O_WRONLY | O_CREAT | O_CLOEXEC | (x->resume ? 0 : O_TRUNC), 0600);
    if (fd < 0)
        return pb_error_errno(err, "ssh: cannot create %s", local);
    uint64_t start = 0;
    if (x->resume) {
        struct stat st;
        if (fstat(fd, &st) != 0) {
            error = pb_error_errno(err, "ssh: cannot stat %s", local);
            goto done;
        }
        start = (uint64_t)st.st_size;
        if (start > rsize) { /* not a prefix of the remote file: start over */
            start = 0;
            if (ftruncate(fd, 0) != 0) {
                error = pb_error_errno(err, "ssh: cannot truncate %s", local);
                goto done;
            }
        }
    }
    if (lseek(fd, (off_t)start, SEEK_SET) < 0) {
        error = pb_error_errno(err, "ssh: cannot seek in %s", local);
        goto done;
    }
    x->resumed_from = start;
    pb_fdsink f = {fd, local};
    error = read_stream(s, remote, start, pb_fdsink_write, &f, x, err);
    if (error == 0 && close(fd) != 0)
        error = pb_error_errno(err, "ssh: cannot write %s", local);
    fd = -1;
done:
    if (fd >= 0)
        close(fd);
    return error;
}

/* ---------------------------------------------------------------------------------------- */
/* The agent binary                                                                           */

/* The first line of `text` into out (without the newline); returns the rest. */
static const char *line(const char *text, char *out, size_t cap)
{
    size_t n = strcspn(text, "\n");
    size_t k = n < cap - 1 ? n : cap - 1;
    memcpy(out, text, k);
    out[k] = '\0';
    return text[n] ? text + n + 1 : text + n;
}

/* What the remote has at `q` (quoted path): its OS and architecture (refused when they are not
 * this build's), the first line of `--version` and the size. *current = 1 when it is `want`
 * and as large as the local build. */
static int install_probe(pb_ssh *s, const char *q, const struct stat *st, const char *want,
                         pb_ssh_install *out, int *current, pb_error *err)
{
    char cmd[13000], text[4096], errtext[2048], here[200], there[200], found[128], size[64];
    struct utsname u;
    int status = -1, error;
    *current = 0;
    uname(&u);
    snprintf(here, sizeof(here), "%s %s", u.sysname, u.machine);
    snprintf(cmd, sizeof(cmd),
             "uname -sm; if [ -x %s ]; then %s --version 2>&1 | head -n 1; wc -c < %s; fi", q, q,
             q);
    if ((error = pb_ssh_exec(s, cmd, NULL, 0, text, sizeof(text), errtext, sizeof(errtext), &status,
                             err)) < 0)
        return error;
    const char *rest = line(text, there, sizeof(there));
    rest = line(rest, found, sizeof(found));
    line(rest, size, sizeof(size));
    snprintf(out->found, sizeof(out->found), "%s", found);
    if (strcmp(there, here) != 0)
        return pb_error_set(err, PB_EREFUSED,
                            "ssh %s: the remote is %s but this build is for %s: install "
                            "plexburst there by hand",
                            s->desc, there[0] ? there : "unknown", here);
    *current =
        strcmp(found, want) == 0 && strtoull(size, NULL, 10) == (unsigned long long)st->st_size;
    return 0;
}

/* Uploads `local_exe` to `tmp` beside `path` (its directory `dir` created), then chmod and
 * rename into place (atomic) and checks that `--version` there says `want`. */
static int install_upload(pb_ssh_install *out, pb_ssh *s, const char *local_exe, const char *path,
                          const char *dir, const char *tmp, const char *want, pb_error *err)
{
    char q[4200], qtmp[4400], qdir[4200], cmd[20000], text[4096], errtext[2048], found[128];
    int status = -1, error;
    if (pb_ssh_quote(q, sizeof(q), path) < 0 || pb_ssh_quote(qdir, sizeof(qdir), dir) < 0 ||
        pb_ssh_quote(qtmp, sizeof(qtmp), tmp) < 0)
        return pb_error_set(err, PB_EINVALID, "ssh: the remote path is too long");
    snprintf(cmd, sizeof(cmd), "mkdir -p -- %s", qdir);
    if ((error = pb_ssh_exec(s, cmd, NULL, 0, NULL, 0, errtext, sizeof(errtext), &status, err)) < 0)
        return error;
    if (status != 0)
        return pb_error_set(err, PB_EIO, "ssh %s: cannot create %s: %s", s->desc, dir, errtext);
    pb_ssh__log(s, "ssh %s: installing %s as %s (remote had: %s)", s->desc, want, path,
                out->found[0] ? out->found : "none");
    pb_ssh_xfer x = PB_SSH_XFER_INIT;
    x.mode = 0700;
    if ((error = pb_ssh_put_file(s, local_exe, tmp, &x, err)) < 0)
        goto cleanup;
    out->bytes_sent = x.bytes_moved;
    snprintf(cmd, sizeof(cmd), "chmod 0755 %s && mv -f -- %s %s && %s --version", qtmp, qtmp, q, q);
    if ((error = pb_ssh_exec(s, cmd, NULL, 0, text, sizeof(text), errtext, sizeof(errtext), &status,
                             err)) < 0)
        goto cleanup;
    line(text, found, sizeof(found));
    if (status != 0 || strcmp(found, want) != 0) {
        error = pb_error_set(err, PB_EREFUSED,
                             "ssh %s: the uploaded %s does not run there (exit %d: %s%s): are "
                             "its shared libraries installed (docs/ssh.md)?",
                             s->desc, path, status, errtext[0] ? errtext : "", found);
        goto cleanup;
    }
    out->installed = 1;
    return 0;
cleanup:
    if (!pb_ssh_lost(s)) {
        snprintf(cmd, sizeof(cmd), "rm -f -- %s", qtmp);
        pb_error e = PB_ERROR_INIT;
        pb_ssh_exec(s, cmd, NULL, 0, NULL, 0, NULL, 0, NULL, &e);
    }
    return error;
}

int pb_ssh_agent_install(pb_ssh_install *out, pb_ssh *s, const char *local_exe,
                         const char *remote_path, const char *version, pb_error *err)
{
    int error = 0, current = 0;
    char path[2048], q[4200], dir[2048], tmp[2200], want[160];
    memset(out, 0, sizeof(*out));
    if (!local_exe)
        local_exe = "/proc/self/exe";
    if (!remote_path || !*remote_path)
        remote_path = ".local/bin/plexburst";
    if (!version)
        version = pb_version();
    snprintf(path, sizeof(path), "%s%s", strchr(remote_path, '/') ? "" : "./", remote_path);
    snprintf(out->path, sizeof(out->path), "%s", path);
    if (pb_ssh_quote(q, sizeof(q), path) < 0)
        return pb_error_set(err, PB_EINVALID, "ssh: the remote path is too long");
    struct stat st;
    if (stat(local_exe, &st) != 0)
        return pb_error_errno(err, "ssh: cannot stat %s", local_exe);
    snprintf(want, sizeof(want), "plexburst %s", version);
    if ((error = install_probe(s, q, &st, want, out, &current, err)) < 0 || current)
        return error;

    /* Upload beside the target, then chmod and rename into place (atomic). */
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    snprintf(tmp, sizeof(tmp), "%s/.plexburst.upload.%ld", dir, (long)getpid());
    return install_upload(out, s, local_exe, path, dir, tmp, want, err);
}

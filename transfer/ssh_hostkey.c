/*
 * ssh_hostkey.c: host-key verification before any authentication (ssh.h, HOST KEYS): a pinned
 * fingerprint alone, else plexburst's and optionally the user's known_hosts with OpenSSH's host
 * names (plain, hashed, @revoked), the host-key algorithms to offer, and trust on first use.
 * Role: part of transfer/ssh (ssh_int.h). Prerequisites: libssh2 1.10.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ssh_int.h"

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

/* Reads a known_hosts file line by line (a line libssh2 cannot parse, e.g. a certificate
 * authority, is skipped rather than ending the read); a missing file is empty. */
int pb_ssh__kh_load(pb_ssh *s, pb_ssh_khfile *f, const char *path, pb_error *err)
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

void pb_ssh__kh_free(pb_ssh_khfile *f)
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
void pb_ssh__hostkey_prefs(const pb_ssh *s, pb_ssh_khfile *files, int nfiles, char *out, size_t cap)
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

static int append_known_host(pb_ssh *s, pb_ssh_khfile *own, const char *name, const char *key,
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

int pb_ssh__verify_host_key(pb_ssh *s, pb_ssh_khfile *files, int nfiles, pb_error *err)
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
        pb_ssh__b64_encode(fp + 7, sizeof(fp) - 7, h, 32, 0);
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
                             "offers %s, %s pins %s",
                             s->desc, s->hostkey,
                             pb_ssh__name(s->o.host_key_pin_name, "host_key_pin"), s->pin);
    }
    if (!kt)
        return pb_error_setd(err, PB_EAUTH, LIBSSH2_ERROR_HOSTKEY_INIT,
                             "ssh %s: unsupported host key type %d", s->desc, type);
    char keyb64[800];
    pb_ssh__b64_encode(keyb64, sizeof(keyb64), (const unsigned char *)key, len, 1);
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
                         "accept it once with %s or pin it with %s",
                         s->desc, s->hostkey, where, pb_ssh__name(s->o.tofu_name, "tofu"),
                         pb_ssh__name(s->o.host_key_pin_name, "host_key_pin"));
}

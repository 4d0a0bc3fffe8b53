/*
 * ssh_auth.c: public-key authentication (ssh.h, AUTHENTICATION): the key file, the SSH agent's
 * identities, the default key, and a message that says what was tried (never a passphrase).
 * Role: part of transfer/ssh (ssh_int.h). Prerequisites: libssh2 1.10.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ssh_int.h"

#define RSA_NOTE "RSA keys need rsa-sha2, which libssh2 1.10 lacks: use an ed25519 key"

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
    long bl = pb_ssh__b64_decode(bin, BIN, b, (size_t)(e - b));
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
                             "passphrase in %s, or a key format "
                             "libssh2 1.10 cannot read)%s%s",
                             s->desc, path, type[0] ? " " : "", type[0] ? type : "",
                             pass && *pass ? "the passphrase given does not decrypt it"
                                           : "it may be encrypted",
                             pb_ssh__name(s->o.key_passphrase_name, "key_passphrase"),
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

int pb_ssh__authenticate(pb_ssh *s, pb_error *err)
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
        snprintf(def, sizeof(def), "%s/.ssh/id_ed25519", pb_ssh__home_dir());
        if (access(def, R_OK) == 0 && (r = auth_keyfile(s, def, s->passphrase, &a, err)) != 0)
            return r < 0 ? r : 0;
        snprintf(def, sizeof(def), "%s/.ssh/id_rsa", pb_ssh__home_dir());
        if (!a.tried[0] && access(def, R_OK) == 0) {
            tried(&a, "only %s found", def);
            a.rsa = 1;
        }
    }
    if (!a.tried[0])
        return pb_error_setd(err, PB_EAUTH, LIBSSH2_ERROR_AUTHENTICATION_FAILED,
                             "ssh %s: no key to offer: set %s to an ed25519 "
                             "private key, or load one into an SSH agent",
                             s->desc, pb_ssh__name(s->o.key_file_name, "key_file"));
    return pb_error_setd(err, PB_EAUTH, LIBSSH2_ERROR_AUTHENTICATION_FAILED,
                         "ssh %s: public key authentication failed (%s)%s%s", s->desc, a.tried,
                         a.rsa ? ": " : "", a.rsa ? RSA_NOTE : "");
}

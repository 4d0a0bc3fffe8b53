/*
 * ssh_url.c: the text of SSH: `ssh://` URLs, POSIX shell quoting, base64 (OpenSSH's
 * fingerprints and keys), pinned fingerprints, the home directory.
 * Role: part of transfer/ssh (ssh_int.h). Prerequisites: POSIX.
 */
#include <ctype.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ssh_int.h"

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 without padding (OpenSSH's fingerprints) or with it. */
void pb_ssh__b64_encode(char *out, size_t cap, const unsigned char *in, size_t n, int pad)
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
long pb_ssh__b64_decode(unsigned char *out, size_t cap, const char *in, size_t n)
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

const char *pb_ssh__name(const char *name, const char *option)
{
    return name && *name ? name : option;
}

const char *pb_ssh__home_dir(void)
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

int pb_ssh_pin_valid(const char *pin)
{
    if (strncmp(pin, "SHA256:", 7) != 0)
        return 0;
    unsigned char d[64];
    const char *b = pin + 7;
    size_t n = strlen(b);
    while (n && b[n - 1] == '=')
        n--;
    return pb_ssh__b64_decode(d, sizeof(d), b, n) == 32;
}

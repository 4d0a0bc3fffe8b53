/*
 * error.c: the library's error model (include/plexburst/errors.h): first-wins error detail in a
 * caller-owned pb_error, and the static descriptions of the PB_E* codes.
 * Role: used by every module; depends on nothing but libc.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "plexburst/errors.h"

const char *pb_version(void)
{
    return PB_VERSION;
}

void pb_error_clear(pb_error *err)
{
    if (err) {
        err->code = 0;
        err->dep_code = 0;
        err->msg[0] = '\0';
    }
}

static int error_vset(pb_error *err, int code, int dep_code, const char *fmt, va_list ap)
{
    if (!err || err->code != 0)
        return code;
    err->code = code;
    err->dep_code = dep_code;
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    for (char *p = err->msg; *p; p++) /* keep it one line */
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return code;
}

int pb_error_set(pb_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_vset(err, code, 0, fmt, ap);
    va_end(ap);
    return code;
}

int pb_error_setd(pb_error *err, int code, int dep_code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_vset(err, code, dep_code, fmt, ap);
    va_end(ap);
    return code;
}

int pb_error_errno(pb_error *err, const char *fmt, ...)
{
    int saved = errno;
    char head[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof(head), fmt, ap);
    va_end(ap);
    pb_error_setd(err, PB_EIO, saved, "%s: %s", head, strerror(saved));
    errno = saved;
    return PB_EIO;
}

const char *pb_strerror(int code)
{
    switch (code) {
    case PB_OK:
        return "success";
    case PB_ERROR:
        return "error";
    case PB_EINVALID:
        return "invalid argument";
    case PB_ENOMEM:
        return "out of memory";
    case PB_EIO:
        return "I/O error";
    case PB_ENOTFOUND:
        return "not found";
    case PB_ECORRUPT:
        return "corrupt input";
    case PB_ESCHEMA:
        return "schema mismatch";
    case PB_EREFUSED:
        return "refused by a guard";
    case PB_ECONFLICT:
        return "unresolved conflict";
    case PB_ECANCELLED:
        return "cancelled";
    case PB_EAUTH:
        return "authentication failed";
    case PB_ESQLITE:
        return "SQLite error";
    case PB_EUNSAFE:
        return "unsafe path";
    case PB_EBUSY:
        return "busy";
    case PB_ENET:
        return "network error";
    default:
        return "unknown error";
    }
}

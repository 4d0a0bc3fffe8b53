/*
 * plexburst/errors.h: the one error model of the library.
 *
 * Fallible functions return int: 0 (PB_OK) on success, a negative PB_E* code on failure. The
 * numbers are stable and never reused; docs/errors.md gives cause and remedy for each. Detail goes
 * into a caller-owned pb_error: the first error set wins, later ones are ignored, so the message
 * names the root cause. Messages are one line, without a trailing period.
 */
#ifndef PLEXBURST_ERRORS_H
#define PLEXBURST_ERRORS_H

#include <stdarg.h>
#include "plexburst/common.h"

typedef enum pb_code {
    PB_OK = 0,
    PB_ERROR = -1,       /* generic runtime failure */
    PB_EINVALID = -2,    /* invalid argument or usage */
    PB_ENOMEM = -3,      /* out of memory, or a bounded buffer's maximum reached */
    PB_EIO = -4,         /* file system or stream I/O failed (dep_code = errno) */
    PB_ENOTFOUND = -5,   /* a file, table, object or program does not exist */
    PB_ECORRUPT = -6,    /* input is truncated, malformed or fails its checksum */
    PB_ESCHEMA = -7,     /* two databases are not at the same Plex schema */
    PB_EREFUSED = -8,    /* a guard refused the operation (deletion guard, running Plex, ...) */
    PB_ECONFLICT = -9,   /* a conflict the policy cannot resolve */
    PB_ECANCELLED = -10, /* cancelled by the caller (callback or signal) */
    PB_EAUTH = -11,      /* authentication or host-key verification failed */
    PB_ESQLITE = -12,    /* SQLite failed (dep_code = extended result code) */
    PB_EUNSAFE = -13,    /* a path escapes its root or goes through a symlink */
    PB_EBUSY = -14,      /* a lock is held by another process */
    PB_ENET = -15,       /* network or transport failure (dep_code = transport code) */
} pb_code;

/** Error detail, owned by the caller (usually on the stack or in a handle). */
typedef struct pb_error {
    int code;      /* the PB_E* code, 0 when no error was set */
    int dep_code;  /* the dependency's code: errno, SQLite rc, CURLcode, LIBSSH2_ERROR_* */
    char msg[512]; /* one line, no trailing newline */
} pb_error;

#define PB_ERROR_INIT                                                                              \
    {                                                                                              \
        0, 0,                                                                                      \
        {                                                                                          \
            0                                                                                      \
        }                                                                                          \
    }

/** Clears an error so that it can be reused. */
PB_EXTERN(void) pb_error_clear(pb_error *err);

/**
 * Records an error unless one is already recorded (first wins) and returns `code`, so that
 * `return pb_error_set(err, PB_EIO, "...")` reads naturally. `err` may be NULL.
 */
PB_EXTERN(int) pb_error_set(pb_error *err, int code, const char *fmt, ...) PB_PRINTF(3, 4);

/** Like pb_error_set, also keeping the dependency's code. */
PB_EXTERN(int)
pb_error_setd(pb_error *err, int code, int dep_code, const char *fmt, ...) PB_PRINTF(4, 5);

/** Like pb_error_set with PB_EIO, appending ": strerror(errno)" and keeping errno. */
PB_EXTERN(int) pb_error_errno(pb_error *err, const char *fmt, ...) PB_PRINTF(2, 3);

/** A short static description of a PB_E* code ("corrupt input", ...). */
PB_EXTERN(const char *) pb_strerror(int code);

#endif

/*
 * ssh_int.h (internal to transfer/ssh*.c and channel_ssh.c): the session structure and the
 * helpers the SSH files share: the wait loop of the non-blocking I/O model (ssh.h), the one
 * libssh2-to-PB_E* translation, the lazily opened SFTP subsystem, and what the session's
 * connection step takes from the host-key, authentication and text files.
 * Prerequisites: libssh2 1.10.
 */
#ifndef PB_SSH_INT_H
#define PB_SSH_INT_H

#include <libssh2.h>
#include <libssh2_sftp.h>

#include "clock.h"
#include "ssh.h"

/* ssh_mem.c: freed blocks of 4 to 64 KiB kept for the session's next packets. */
#define PB_SSH_MEM_CLASSES 16
#define PB_SSH_MEM_CAP     (2u << 20) /* bytes cached at most */
typedef struct pb_ssh_mem {
    struct free_block *free[PB_SSH_MEM_CLASSES]; /* class i: (i + 1) x 4 KiB */
    size_t cached;                               /* bytes in the lists */
} pb_ssh_mem;

/* ssh_wait.c: what the socket gave and libssh2 has not taken yet. */
#define PB_SSH_RBUF (256u * 1024)

struct pb_ssh {
    pb_ssh_options o; /* the strings point to the copies below */
    char *host, *user, *key_file, *passphrase, *known_hosts, *user_known_hosts, *pin;
    int sock;
    LIBSSH2_SESSION *ls;
    LIBSSH2_SFTP *sftp;
    int lost;            /* a transport error was seen: everything must be reopened */
    unsigned generation; /* +1 per connection: channels of an older one are gone */
    unsigned reconnects;
    double alive_ref;    /* ms: the last byte received, or when we started listening again */
    double last_wait;    /* ms: the end of the last wait slice */
    char desc[420];      /* user@host:port */
    char hostkey[160];   /* "ssh-ed25519 SHA256:..." */
    pb_ssh_mem mem;      /* libssh2's allocations (ssh_mem.c) */
    unsigned char *rbuf; /* PB_SSH_RBUF bytes, allocated on first use; rbuf[rpos..rlen) unread */
    size_t rpos, rlen;
};

/**
 * Waits until the socket is ready in the directions libssh2 is blocked on (see the I/O model
 * in ssh.h): cancel hook, keepalive, dead-peer detection, and `deadline` (monotonic ms, 0 =
 * none; passing it is PB_ENET "timed out" naming `what`). Marks the session lost on PB_ENET.
 */
int pb_ssh__wait(pb_ssh *s, double deadline, const char *what, pb_error *err);

/** Deadline for one request: now + connect_timeout_ms. */
double pb_ssh__deadline(const pb_ssh *s);

/**
 * THE translation of a libssh2 failure: PB_E* from `rc` (a LIBSSH2_ERROR_*, kept in dep_code),
 * the message "ssh DESC: <what>: <libssh2's message>", SFTP statuses (when rc is
 * LIBSSH2_ERROR_SFTP_PROTOCOL) as PB_ENOTFOUND / PB_EIO with the status name. A transport-level
 * failure marks the session lost.
 */
int pb_ssh__fail(pb_ssh *s, int rc, pb_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/** 1 when a libssh2 code means the connection itself is gone (retry after reconnecting). */
int pb_ssh__is_transport(int rc);

/** The SFTP subsystem of the current connection, opened on first use. */
int pb_ssh__sftp(pb_ssh *s, LIBSSH2_SFTP **out, pb_error *err);

/** Sends a line to the log hook (printf-style). */
void pb_ssh__log(pb_ssh *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Opens a session channel (window `window` bytes, 0: libssh2's default) and runs `command`. */
int pb_ssh__exec_open(pb_ssh *s, LIBSSH2_CHANNEL **out, const char *command, unsigned window,
                      pb_error *err);

/** Closes and frees a channel of the current connection, waiting at most `ms`; *status gets
 * the exit status (-1 unknown). Skips the network when the session is lost. */
void pb_ssh__exec_close(pb_ssh *s, LIBSSH2_CHANNEL *c, int ms, int *status);

/* ssh_url.c */

/** `name` when given, else `option` (the hint of a message: what the user sets). */
const char *pb_ssh__name(const char *name, const char *option);

/** Base64 of `in` into out: without padding (OpenSSH's fingerprints) or with it. */
void pb_ssh__b64_encode(char *out, size_t cap, const unsigned char *in, size_t n, int pad);
/** Decodes base64 (whitespace skipped, stops at '=' or the end); the length or -1. */
long pb_ssh__b64_decode(unsigned char *out, size_t cap, const char *in, size_t n);
/** $HOME, else the password database's home directory, else "/". */
const char *pb_ssh__home_dir(void);

/* ssh_wait.c */

/** The session's receive callback: reads the socket PB_SSH_RBUF bytes at a time (libssh2 1.10
 * asks for 16 KiB, and for more after each EAGAIN) and stamps the arrival of every byte
 * (dead-peer detection). pb_ssh__wait does not wait while bytes are buffered. */
LIBSSH2_RECV_FUNC(pb_ssh__stamp_recv);

/* ssh_mem.c */

/** The session's allocator (libssh2_session_init_ex; the abstract is the pb_ssh). */
LIBSSH2_ALLOC_FUNC(pb_ssh__mem_alloc);
LIBSSH2_FREE_FUNC(pb_ssh__mem_free);
LIBSSH2_REALLOC_FUNC(pb_ssh__mem_realloc);
/** Frees the cached blocks (after libssh2_session_free). */
void pb_ssh__mem_drain(pb_ssh_mem *m);

/* ssh_ctr.c */

/** on = 1: offers OpenSSL the bulk AES-CTR engine (for the key exchange that follows); on = 0:
 * withdraws it (counted: the last withdrawal removes it). Contexts already set up keep it. */
void pb_ssh__ctr_offer(int on);

/* ssh_hostkey.c */

/** One known_hosts file as read. */
typedef struct pb_ssh_khfile {
    const char *path;
    LIBSSH2_KNOWNHOSTS *kh;
    char revoked[8][800]; /* base64 keys of @revoked lines */
    int nrevoked;
    int skipped; /* lines libssh2 could not parse */
} pb_ssh_khfile;

/** Reads a known_hosts file (a line libssh2 cannot parse is skipped; a missing file is
 * empty). Release with pb_ssh__kh_free. */
int pb_ssh__kh_load(pb_ssh *s, pb_ssh_khfile *f, const char *path, pb_error *err);
void pb_ssh__kh_free(pb_ssh_khfile *f);
/** The host-key algorithms to offer: those the files know for this host first, ed25519 first. */
void pb_ssh__hostkey_prefs(const pb_ssh *s, pb_ssh_khfile *files, int nfiles, char *out,
                           size_t cap);
/** Checks the server's key after the handshake (see HOST KEYS in ssh.h). */
int pb_ssh__verify_host_key(pb_ssh *s, pb_ssh_khfile *files, int nfiles, pb_error *err);

/* ssh_auth.c */

/** Public-key authentication (see AUTHENTICATION in ssh.h). */
int pb_ssh__authenticate(pb_ssh *s, pb_error *err);

#endif

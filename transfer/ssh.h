/*
 * ssh.h (internal): SSH sessions over libssh2 1.10 for `--cloud ssh://user@host[:port][/dir]`
 * (docs/ssh.md): connection with strict host-key checking, public-key authentication,
 * keepalive and reconnection; remote commands; SFTP uploads and downloads that resume from an
 * offset; the agent binary's installation; and the `ssh` channel (channel.h) that runs the agent
 * over an exec channel.
 * Role: transfer/ layer; knows no workflow and reads no settings: the caller fills
 * pb_ssh_options (docs/ssh.md names the settings the engine reads into it).
 * Prerequisites: libssh2 1.10 (OpenSSL backend), POSIX sockets.
 *
 * I/O MODEL: one non-blocking libssh2 session per pb_ssh, driven by a single wait function:
 * every libssh2 call that says EAGAIN waits in poll() on the directions libssh2 reports
 * (libssh2_session_block_directions), 200 ms at a time, and between two waits it checks the
 * cancel hook, sends the keepalive when it is due (libssh2_keepalive_send) and gives up on a
 * peer that has sent nothing for keepalive_s * keepalive_count seconds (ServerAliveCountMax
 * semantics: every keepalive asks for a reply, and a custom recv callback stamps each byte
 * that arrives). Blocking libssh2 would sit in recv() without keepalives, cancellation or
 * dead-peer detection while the agent analyses for an hour; the non-blocking loop gives all
 * three with one code path. A pb_ssh and its channels are used by one thread at a time.
 *
 * HOST KEYS (checked before any authentication): a pinned fingerprint (`SHA256:<base64>`,
 * host_key_pin) is checked exactly and alone. Otherwise plexburst's own known_hosts
 * (known_hosts, default ~/.config/plexburst/known_hosts), plus ~/.ssh/known_hosts
 * when use_user_known_hosts, are consulted with OpenSSH's host names (`host`, or `[host]:port`
 * when the port is not 22; plain and hashed `|1|` entries). A changed key (a known entry for
 * the host with another key of the same type) and an unknown key stop the connection with
 * PB_EAUTH and the server key's SHA256 fingerprint in OpenSSH's format; an unknown key is
 * accepted only with tofu, which appends it to
 * plexburst's known_hosts (created 0600). The host-key algorithms offered are those known for
 * the host, ed25519 first (as OpenSSH orders them).
 *
 * AUTHENTICATION: public keys only. In order: the key file (key_file, its passphrase
 * never printed or logged), then the SSH agent's identities
 * (SSH_AUTH_SOCK, unless use_agent = 0), then ~/.ssh/id_ed25519 when no key file was given.
 * libssh2 1.10 signs with RSA only as ssh-rsa (SHA-1), which OpenSSH >= 8.8 refuses: when an
 * RSA key was offered and refused the error says "RSA keys need rsa-sha2, which libssh2 1.10
 * lacks: use an ed25519 key".
 *
 * ERRORS: libssh2's codes are translated in one place (ssh.c: pb_ssh__fail) and kept in
 * dep_code: a lost connection, a timeout or a dead peer is PB_ENET, refused host keys and
 * credentials PB_EAUTH, SFTP "no such file" PB_ENOTFOUND, other SFTP failures PB_EIO.
 *
 * RECONNECTION: pb_ssh_reconnect() reconnects with bounded retries and backoff (host key and
 * credentials checked again; a refusal is final, not retried). Everything opened on the old
 * connection (channels, SFTP handles) is gone with it: the SFTP transfers below reconnect and
 * resume by themselves; an `ssh` channel is re-executed by pb_channel_ssh_reconnect(), after
 * which the conversation starts afresh (a new remote process: new HELLO, then the run logic
 * resumes from the store's run state; docs/ssh.md).
 */
#ifndef PB_SSH_H
#define PB_SSH_H

#include <stddef.h>
#include <stdint.h>
#include "channel.h"
#include "plexburst/errors.h"
#include "plexburst/io.h"

typedef struct pb_ssh pb_ssh;

/** Where to connect: from an `ssh://user@host[:port][/dir]` URL. */
typedef struct pb_ssh_target {
    char user[128]; /* "" when the URL names none (then $USER) */
    char host[256]; /* a name, an IPv4 address or an IPv6 address (given in brackets) */
    int port;       /* 22 when the URL names none */
    char dir[4096]; /* the path after the authority: "/srv/pb" absolute, "" when none; "/~/x"
                       is home-relative ("x") */
} pb_ssh_target;

/**
 * Parses `ssh://[user@]host[:port][/dir]` (IPv6 as `[addr]`). Percent escapes are not decoded.
 * @return 0; PB_EINVALID naming what is wrong.
 */
int pb_ssh_url_parse(pb_ssh_target *out, const char *url, pb_error *err);

typedef struct pb_ssh_options {
    unsigned version; /* PB_SSH_OPTIONS_VERSION */
    const char *host; /* required */
    int port;         /* 0: 22 */
    const char *user; /* NULL: $USER, else the login name of the process */
    /* Authentication */
    const char *key_file;       /* a private key file (NULL: none given) */
    const char *key_passphrase; /* its passphrase: never printed or logged */
    int use_agent;              /* -1: no; otherwise the SSH agent when SSH_AUTH_SOCK is set */
    /* Host keys */
    const char *known_hosts;      /* plexburst's own (NULL: ~/.config/plexburst/known_hosts) */
    int use_user_known_hosts;     /* also consult user_known_hosts */
    const char *user_known_hosts; /* NULL: ~/.ssh/known_hosts */
    const char *host_key_pin;     /* "SHA256:<base64>" (pb_ssh_pin_valid), checked alone */
    int tofu;                     /* accept and record an unknown host key */
    /* How the caller's user sets key_file, key_passphrase, host_key_pin and tofu, for the
     * hints of messages ("set NAME to ..."); string literals, kept by pointer (NULL: the
     * option's own name). */
    const char *key_file_name, *key_passphrase_name, *host_key_pin_name, *tofu_name;
    /* Timing (0: the default) */
    int connect_timeout_ms;   /* TCP connect, handshake, authentication, each request: 20000 */
    int keepalive_s;          /* seconds between keepalives: 15 (-1: off, no dead-peer check) */
    int keepalive_count;      /* unanswered intervals before the peer is dead: 4 */
    int reconnect_tries;      /* attempts per reconnect: 5 */
    int reconnect_backoff_ms; /* first pause between attempts, doubled up to 8 s: 500 */
    /* Hooks (optional) */
    int (*cancel)(void *payload); /* non-zero stops any wait (PB_ECANCELLED) */
    void *cancel_payload;
    /** Notes worth a log line ("reconnected after 2 attempts", "host key added to ..."), never
     * secrets. */
    void (*log)(void *payload, const char *line);
    void *log_payload;
} pb_ssh_options;

#define PB_SSH_OPTIONS_VERSION 1

#define PB_SSH_OPTIONS_INIT                                                                        \
    {                                                                                              \
        .version = PB_SSH_OPTIONS_VERSION                                                          \
    }

/** Zeroes `o` and sets the version (the same as PB_SSH_OPTIONS_INIT). */
void pb_ssh_options_init(pb_ssh_options *o);

/** 1 when `pin` is a host key fingerprint "SHA256:<base64 of 32 bytes>" (as `ssh-keygen -lf`
 * prints it), else 0. */
int pb_ssh_pin_valid(const char *pin);

/**
 * Connects, verifies the host key and authenticates (see the top). The options are copied
 * (the passphrase is wiped from memory on free).
 * @return 0; PB_EAUTH (host key refused: the message has the fingerprint; credentials
 *         refused); PB_ENET (unreachable, timeout, handshake); PB_EINVALID; PB_ECANCELLED.
 */
int pb_ssh_connect(pb_ssh **out, const pb_ssh_options *o, pb_error *err);
/** Disconnects and frees; accepts NULL. Channels made by pb_channel_ssh_new on this session
 * must be freed first (unless they own it). */
void pb_ssh_free(pb_ssh *s);

/**
 * Drops the current connection (if any) and connects again: up to reconnect_tries attempts,
 * pausing reconnect_backoff_ms, doubled each time up to 8 s. PB_EAUTH and PB_ECANCELLED end
 * the attempts at once. Channels and SFTP handles of the old connection are invalid afterwards.
 */
int pb_ssh_reconnect(pb_ssh *s, pb_error *err);
/** 1 when the connection is known to be lost (a transport error was seen). */
int pb_ssh_lost(const pb_ssh *s);
/** How many times the session reconnected so far. */
unsigned pb_ssh_reconnects(const pb_ssh *s);
/** "user@host:port" for messages. */
const char *pb_ssh_desc(const pb_ssh *s);
/** The server's host key as "ssh-ed25519 SHA256:<base64>" (empty before connecting). */
const char *pb_ssh_host_key(const pb_ssh *s);

/**
 * Runs `command` (a shell command line on the remote; quote arguments with pb_ssh_quote),
 * sending `input` (may be NULL) to its stdin, capturing at most cap-1 bytes of its stdout into
 * out (NUL-terminated; may be NULL) and the tail of its stderr into stderr_out (may be NULL).
 * @param status OUT: the exit status (-1 when the server did not report one).
 * @return 0 whatever the exit status; PB_ENET; PB_ECANCELLED; PB_ENOMEM when stdout did not fit.
 */
int pb_ssh_exec(pb_ssh *s, const char *command, const void *input, size_t input_len, char *out,
                size_t cap, char *stderr_out, size_t stderr_cap, int *status, pb_error *err);

/** Shell-quotes `arg` for a POSIX shell ('...' with '\'' for quotes) into out.
 * @return 0; PB_ENOMEM when it does not fit. */
int pb_ssh_quote(char *out, size_t cap, const char *arg);

/* ---------------------------------------------------------------------------------------- */
/* SFTP transfers                                                                             */

/* A transfer's progress (pb_progress_fn) is phase "upload" or "download" with bytes_done /
 * bytes_total of the file and `path` the remote name; non-zero cancels. Downloaded bytes go in
 * order to a pb_sink_fn. */

typedef struct pb_ssh_xfer {
    unsigned version; /* PB_SSH_XFER_VERSION */
    /* put: 1 = continue after the bytes the remote file already has (a prefix, as OpenSSH's
     * sequential sftp-server leaves it), 0 = write it whole (truncated first).
     * get: 1 = append to the local file after the bytes it already has, 0 = start over. */
    int resume;
    size_t buffer; /* bytes in flight (0: 2.4 MB; a multiple of 30000 works best) */
    int mode;      /* put: permissions of a created remote file (0: 0600) */
    pb_progress_fn progress;
    void *progress_payload;
    /* OUT (optional): where the transfer started (bytes skipped by resuming) and bytes moved
     * over the network, counting every reconnection. */
    uint64_t resumed_from, bytes_moved;
    unsigned reconnects; /* OUT: reconnections during this transfer */
} pb_ssh_xfer;

#define PB_SSH_XFER_VERSION 1
#define PB_SSH_XFER_INIT                                                                           \
    {                                                                                              \
        .version = PB_SSH_XFER_VERSION                                                             \
    }

/** Zeroes `x` and sets the version (the same as PB_SSH_XFER_INIT). */
void pb_ssh_xfer_init(pb_ssh_xfer *x);

/**
 * Uploads the local file to `remote` (SFTP; relative paths are relative to the login
 * directory). A lost connection is reconnected (pb_ssh_reconnect) and the upload continues
 * where the remote file ends. The remote file is written in place: for atomicity upload to a
 * temporary name and rename (as pb_ssh_agent_install does).
 * @param x  options and statistics (NULL: defaults, no resume).
 * @return 0; PB_ENOTFOUND / PB_EIO (local file); PB_EIO (remote refusal, with the SFTP status);
 *         PB_ENET (reconnection failed); PB_ECANCELLED.
 */
int pb_ssh_put_file(pb_ssh *s, const char *local, const char *remote, pb_ssh_xfer *x,
                    pb_error *err);

/**
 * Downloads `remote` into the local file (created 0600), resuming after the bytes it already
 * has when x->resume; reconnects and continues on a lost connection like pb_ssh_put_file.
 * @return 0; PB_ENOTFOUND (remote file missing); PB_EIO; PB_ENET; PB_ECANCELLED.
 */
int pb_ssh_get_file(pb_ssh *s, const char *remote, const char *local, pb_ssh_xfer *x,
                    pb_error *err);

/**
 * Streams `remote` from byte `offset` to `sink` (for a store backend's read). Reconnects and
 * continues from the last byte delivered. x->resume is ignored.
 */
int pb_ssh_read_file(pb_ssh *s, const char *remote, uint64_t offset, pb_sink_fn sink,
                     void *sink_payload, pb_ssh_xfer *x, pb_error *err);

/** Size of a remote file (SFTP stat): 0; PB_ENOTFOUND; PB_EIO; PB_ENET. */
int pb_ssh_stat_size(pb_ssh *s, const char *remote, uint64_t *size, pb_error *err);

/* ---------------------------------------------------------------------------------------- */
/* The agent binary                                                                           */

typedef struct pb_ssh_install {
    char path[4096];     /* the program to run remotely */
    char found[128];     /* what `path --version` printed before ("" when missing) */
    int installed;       /* 1 when uploaded by this call */
    uint64_t bytes_sent; /* bytes uploaded */
} pb_ssh_install;

/**
 * Puts this build on the remote when it is missing or another version: runs
 * `remote_path --version` there and compares it with "plexburst <version>" and the file size;
 * otherwise uploads `local_exe` over SFTP to a temporary name beside remote_path (directories
 * created), chmod 0755, renames it into place (atomic) and checks `--version` again (a build
 * whose shared libraries are missing there fails here, with the remote's message). Refuses a
 * remote of another OS/architecture (uname -sm).
 * @param local_exe    NULL: /proc/self/exe.
 * @param remote_path  NULL: ".local/bin/plexburst" (home-relative).
 * @param version      NULL: pb_version().
 * @return 0; PB_EREFUSED (another architecture; the uploaded binary does not run there);
 *         PB_EIO; PB_ENET.
 */
int pb_ssh_agent_install(pb_ssh_install *out, pb_ssh *s, const char *local_exe,
                         const char *remote_path, const char *version, pb_error *err);

/* ---------------------------------------------------------------------------------------- */
/* The `ssh` channel (channel.h)                                                              */

/**
 * The `ssh` channel: runs `command` on the remote over an exec channel of `s` and speaks over
 * its stdin/stdout (the vtable's semantics in channel.h). The remote's stderr is kept (its
 * last 2 KiB) and quoted when the stream ends early or the command fails; it is also passed
 * line by line to the session's log hook.
 * @param own  the channel frees the session with itself.
 * @param close_timeout_ms  close(): wait for the remote's exit (0: 30000).
 * @return 0; PB_ENET; PB_ECANCELLED.
 */
int pb_channel_ssh_new(pb_channel **out, pb_ssh *s, int own, const char *command,
                       int close_timeout_ms, pb_error *err);

/**
 * After a PB_ENET from the channel: reconnects the session when it is lost (pb_ssh_reconnect)
 * and runs the command again on a fresh exec channel; the byte counters go on. The remote
 * process is a new one: the caller starts its conversation again (HELLO, ...).
 */
int pb_channel_ssh_reconnect(pb_channel *ch, pb_error *err);

/** The session of an `ssh` channel (for SFTP transfers on the same connection); NULL for
 * other kinds. */
pb_ssh *pb_channel_ssh_session(pb_channel *ch);

/** The remote's last stderr bytes of an `ssh` channel ("" when none or another kind). */
const char *pb_channel_ssh_stderr(pb_channel *ch);

/* ---------------------------------------------------------------------------------------- */
/* The agent over SSH in one call                                                             */

/** The remote --workdir when the URL names no directory (home-relative). */
#define PB_SSH_DEFAULT_WORKDIR ".local/share/plexburst/cloud"

typedef struct pb_ssh_agent_opts {
    unsigned version;      /* PB_SSH_AGENT_OPTS_VERSION */
    const char *url;       /* ssh://user@host[:port][/dir] (required) */
    const char *workdir;   /* the remote --workdir (NULL: the URL's dir, else the default) */
    const char *store;     /* the agent's --store as the remote sees it (NULL: none) */
    const char *local_exe; /* the build to install there (NULL: /proc/self/exe) */
    /* Keys, host keys and timing of the connection (NULL: the defaults); its host, port and
     * user are the URL's. The engine fills it from its configuration. */
    const pb_ssh_options *ssh;
    int accept_new_host_key; /* TOFU for this connection, whatever ssh->tofu says */
    int close_timeout_ms;    /* the channel's close() (0: 60000) */
    int (*cancel)(void *);   /* optional */
    void *cancel_payload;
    void (*log)(void *payload, const char *line); /* optional: install, reconnects, stderr */
    void *log_payload;
    /* A session from pb_ssh_agent_connect() to use (it then belongs to the channel, even when
     * pb_ssh_agent_channel fails); NULL: connect now. */
    pb_ssh *session;
    /* OUT */
    pb_ssh_install install; /* where the agent is and whether it was uploaded */
    char host_key[160];     /* "ssh-ed25519 SHA256:..." */
} pb_ssh_agent_opts;

#define PB_SSH_AGENT_OPTS_VERSION 1

#define PB_SSH_AGENT_OPTS_INIT                                                                     \
    {                                                                                              \
        .version = PB_SSH_AGENT_OPTS_VERSION                                                       \
    }

/** Zeroes `o` and sets the version (the same as PB_SSH_AGENT_OPTS_INIT). */
void pb_ssh_agent_opts_init(pb_ssh_agent_opts *o);

/**
 * Connects to the URL's host (with o->ssh's keys and host keys), installs this build as
 * `<workdir>/bin/plexburst` when it is missing or another version (pb_ssh_agent_install), and
 * starts `plexburst agent --workdir <workdir> [--store <store>]` there on an `ssh` channel that
 * owns its session. After a PB_ENET from the channel, pb_channel_ssh_reconnect() starts a new
 * agent on a new connection (the caller then says HELLO again and resumes; docs/ssh.md).
 * @return 0; PB_EINVALID (URL, options); PB_EAUTH (host key, credentials); PB_ENET;
 *         PB_EREFUSED (the build does not run there); PB_ECANCELLED.
 */
int pb_ssh_agent_channel(pb_channel **out, pb_ssh_agent_opts *o, pb_error *err);

/**
 * The connection step of pb_ssh_agent_channel() alone (URL, options, host key,
 * authentication), so that a run can fail fast on a refused host key before its long local
 * phases, and hand the session over later in o->session.
 */
int pb_ssh_agent_connect(pb_ssh **out, pb_ssh_agent_opts *o, pb_error *err);

#endif

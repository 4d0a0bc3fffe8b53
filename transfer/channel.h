/*
 * channel.h (internal): a bidirectional byte stream between the home side and the agent, as a
 * versioned vtable so that transports slot in: `fd` (two file descriptors: the agent's own
 * stdin/stdout, tests), `local` (the agent started as a child process on this machine, over
 * pipes) and `ssh` (an exec channel, channel_ssh.c). The framed protocol (frame.h) runs on top.
 * Role: transfer/ layer; knows neither the engine nor the protocol's messages.
 * Prerequisites: POSIX (fork/exec, pipes, poll).
 *
 * Semantics every implementation keeps: read() blocks until at least one byte or the end of the
 * stream (*got = 0) and returns PB_ECANCELLED when the channel's cancel hook says so (checked a
 * few times a second while waiting); write() writes everything or fails (PB_ENET when the peer
 * is gone); close() ends the conversation (closes the write side, then waits a bounded time for
 * the peer to finish; the peer's exit status in *status, -1 when unknown); free() releases
 * everything and stops a peer that still runs. Bytes moved are counted in bytes_in/bytes_out.
 */
#ifndef PB_CHANNEL_H
#define PB_CHANNEL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "plexburst/errors.h"

typedef struct pb_channel pb_channel;

typedef struct pb_channel_ops {
    unsigned version; /* PB_CHANNEL_OPS_VERSION */
    const char *kind; /* "fd", "local", "ssh", ... */
    int (*read)(pb_channel *ch, void *buf, size_t cap, size_t *got, pb_error *err);
    int (*write)(pb_channel *ch, const void *buf, size_t n, pb_error *err);
    int (*close)(pb_channel *ch, int *status, pb_error *err);
    void (*free)(pb_channel *ch);
} pb_channel_ops;

#define PB_CHANNEL_OPS_VERSION 1

/** The common part of every channel; implementations embed it as their first member. */
struct pb_channel {
    const pb_channel_ops *ops;
    int (*cancel)(void *payload); /* optional: non-zero stops a waiting read (PB_ECANCELLED) */
    void *cancel_payload;
    uint64_t bytes_in, bytes_out; /* counted by pb_channel_read / pb_channel_write */
    char desc[256];               /* "agent pid 1234 (local)", for messages */
};

/* Dispatch with byte counting; every function accepts the vtable's contract above. */
int pb_channel_read(pb_channel *ch, void *buf, size_t cap, size_t *got, pb_error *err);
/** Reads exactly n bytes; *got (optional) receives what was read before an early end, which
 * is reported as PB_ENET unless nothing was read and `eof_ok` (then 0 with *got = 0). */
int pb_channel_read_full(pb_channel *ch, void *buf, size_t n, size_t *got, int eof_ok,
                         pb_error *err);
int pb_channel_write(pb_channel *ch, const void *buf, size_t n, pb_error *err);
int pb_channel_close(pb_channel *ch, int *status, pb_error *err);
/** Frees the channel; accepts NULL. */
void pb_channel_free(pb_channel *ch);
/** Sets the cancel hook. */
void pb_channel_set_cancel(pb_channel *ch, int (*cancel)(void *), void *payload);

/**
 * A channel over two file descriptors (the agent's stdin and stdout; a file in tests).
 * @param own  close the descriptors on free.
 */
int pb_channel_fd_new(pb_channel **out, int in_fd, int out_fd, int own, pb_error *err);

/** Options of pb_channel_spawn(). */
typedef struct pb_spawn_options {
    unsigned version;     /* PB_SPAWN_OPTIONS_VERSION */
    int stderr_fd;        /* the child's stderr (-1: inherited) */
    const char *cwd;      /* working directory of the child (NULL: inherited) */
    int close_timeout_ms; /* close(): how long to wait for the child's exit (default 30000) */
} pb_spawn_options;

#define PB_SPAWN_OPTIONS_VERSION 1
#define PB_SPAWN_OPTIONS_INIT                                                                      \
    {                                                                                              \
        PB_SPAWN_OPTIONS_VERSION, -1, NULL, 0                                                      \
    }

/** Sets `o` to PB_SPAWN_OPTIONS_INIT (stderr inherited, the default timeout). */
void pb_spawn_options_init(pb_spawn_options *o);

/**
 * The `local` channel: starts argv[0] (an absolute path; argv NULL-terminated) as a child in
 * its own process group (so a Ctrl-C of the terminal reaches only the home side, which stops
 * the child itself) speaking over its stdin/stdout. A failed exec is reported here
 * (PB_ENOTFOUND / PB_EIO with the program and errno), not as a later end of stream.
 */
int pb_channel_spawn(pb_channel **out, char *const argv[], const pb_spawn_options *opts,
                     pb_error *err);

/** The child's pid of a `local` channel, 0 for other kinds. */
pid_t pb_channel_pid(const pb_channel *ch);

#endif

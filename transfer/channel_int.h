/*
 * channel_int.h (internal to transfer/): fd helpers shared by the channel implementations
 * (cancellable poll-based reads, SIGPIPE-safe writes).
 */
#ifndef PB_CHANNEL_INT_H
#define PB_CHANNEL_INT_H

#include "channel.h"

/** Waits until fd is readable, checking the cancel hook every 200 ms. */
int pb_chan__wait_read(pb_channel *ch, int fd, pb_error *err);
/** One read of up to cap bytes after waiting; *got = 0 at the end of the stream. */
int pb_chan__read_fd(pb_channel *ch, int fd, void *buf, size_t cap, size_t *got, pb_error *err);
/** Writes everything; EPIPE (peer gone) is PB_ENET without a SIGPIPE. */
int pb_chan__write_fd(pb_channel *ch, int fd, const void *buf, size_t n, pb_error *err);
/** The child's pid of a local channel. */
pid_t pb_chan__local_pid(const pb_channel *ch);

#endif

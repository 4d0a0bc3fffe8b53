/*
 * plexburst/notify.h: telling someone how a run went, for runs nobody watches (a nightly timer):
 * a ping to a URL (healthchecks.io style: URL/start at the start, URL on success, URL/fail with
 * the first lines of the POST-MORTEM on failure; or an ntfy topic: one message with a Title at
 * the end), the URL kept out of every message (it holds a token), and a hook: a shell command
 * given the run's JSON on its stdin. A notification that fails is the caller's warning, never
 * the run's failure. docs/cli.md, "Notifications", is the contract.
 */
#ifndef PLEXBURST_NOTIFY_H
#define PLEXBURST_NOTIFY_H

#include <stddef.h>
#include "plexburst/common.h"
#include "plexburst/errors.h"

/** What a notification says (pb_notify_send's `event`). */
enum { PB_NOTIFY_START = 1, PB_NOTIFY_SUCCESS = 2, PB_NOTIFY_FAILURE = 3 };

/**
 * Sends `event` to `url`: an http(s) URL in the healthchecks.io style (a POST with `body` as
 * text/plain and `title` as a Title header to URL/start, URL or URL/fail, the suffix put before a
 * query string), or `ntfy+https://host/topic` / any URL on ntfy.sh (a POST of `body` to the topic
 * with Title, Tags and, on failure, Priority high; the start is not sent). `body` may be NULL.
 * Waits at most `timeout_s` (0: 10 s). Error messages show the URL masked (pb_notify_mask).
 * @return 0, PB_EINVALID (not such a URL), PB_ENET (no answer, or an HTTP status >= 400).
 */
PB_EXTERN(int)
pb_notify_send(const char *url, int event, const char *title, const char *body, double timeout_s,
               pb_error *err);

/**
 * `url` as it may be shown: scheme and host only, user, password, path and query replaced by
 * "***" (https://hc-ping.com/ plus stars). Returns buf (cap >= 16; truncated when smaller than
 * needed).
 */
PB_EXTERN(const char *) pb_notify_mask(char *buf, size_t cap, const char *url);

/**
 * Runs the shell command `cmd` with `input` (may be NULL: empty) on its stdin and this process's
 * environment, for at most `timeout_s` (0: 120 s); *status gets its exit status (128+N when
 * killed by signal N).
 * @return 0 when it ran to its end (whatever its status), PB_EIO when it could not start,
 * PB_ERROR on the timeout (the command's group is killed).
 */
PB_EXTERN(int)
pb_notify_hook(int *status, const char *cmd, const char *input, double timeout_s, pb_error *err);

#endif

/*
 * run_notify.c: what follows a run of bootstrap or sync for those not watching it: the
 * notification to PLEXBURST_NOTIFY_URL (start, success, failure with the POST-MORTEM's first
 * lines) and the --on-success / --on-failure hooks given the run's JSON; a failure of either is
 * one warning, never the run's failure (docs/cli.md, "Notifications").
 * Role: called by progress.c (rv_run, rv_finish); the sending is plexburst/notify.h's.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "plexburst/notify.h"
#include "progress.h"

typedef unsigned long long ull;

/* A warning after the run (a notification or a hook that failed): stderr and the log, never
 * the exit code. */
static void after_warn(runview *v, const char *fmt, ...) PB_PRINTF(2, 3);
static void after_warn(runview *v, const char *fmt, ...)
{
    char line[1200];
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(line, sizeof(line), "⚠️ ");
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    rv_bar_clear(v);
    fprintf(stderr, "%s\n", line);
    fflush(stderr);
    rv_log_line(v, line);
    rv_stream_event(v, "log", json_pack("{s:s, s:s}", "level", "warn", "text", line + n));
}

/* PLEXBURST_NOTIFY_URL: the run's start (`rc` 1), its success or its failure. */
void rv_notify(runview *v, int rc, const pb_error *err, const pb_run_result *r)
{
    if (!v->notify_url || !*v->notify_url)
        return;
    char title[160], body[1400], masked[128];
    pb_error e = PB_ERROR_INIT;
    int event = rc > 0 ? PB_NOTIFY_START : rc == 0 ? PB_NOTIFY_SUCCESS : PB_NOTIFY_FAILURE;
    if (event == PB_NOTIFY_START) {
        snprintf(title, sizeof(title), "plexburst %s started", v->command);
        snprintf(body, sizeof(body), "plexburst %s started", v->command);
    } else if (event == PB_NOTIFY_SUCCESS) {
        char b1[32], b2[32];
        snprintf(title, sizeof(title), "plexburst %s ok", v->command);
        snprintf(body, sizeof(body),
                 "%s %s finished%s in %.1f s: up %s, down %s, %llu rows, Plex down %.2f s\n",
                 r->mode_name, r->run_id, r->dry_run ? " (dry run)" : "", r->ms.total / 1000,
                 cli_bytes(b1, sizeof(b1), r->bytes.up), cli_bytes(b2, sizeof(b2), r->bytes.down),
                 (ull)(r->apply.rows.inserted + r->apply.rows.updated + r->apply.rows.deleted),
                 r->ms.downtime / 1000);
    } else {
        snprintf(title, sizeof(title), "plexburst %s %s", v->command,
                 rv_stopped(rc) ? "stopped" : "failed");
        snprintf(body, sizeof(body), "%s",
                 v->pm[0]             ? v->pm
                 : err && err->msg[0] ? err->msg
                                      : pb_strerror(rc));
    }
    if (pb_notify_send(v->notify_url, event, title, body, 10, &e) < 0)
        after_warn(v, "notification to %s not sent: %s (the run's outcome stands)",
                   pb_notify_mask(masked, sizeof(masked), v->notify_url), e.msg);
}

/* --on-success / --on-failure: the hook with the run's JSON on stdin. */
void rv_hook(runview *v, int rc, const pb_error *err, const pb_run_result *r)
{
    const char *cmd = rc < 0 ? v->on_failure : v->on_success;
    if (!cmd || !*cmd)
        return;
    json_t *o = rv_result_json(r, rc, err);
    char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    pb_error e = PB_ERROR_INIT;
    int status = -1;
    const char *which = rc < 0 ? "--on-failure" : "--on-success";
    if (pb_notify_hook(&status, cmd, s, 120, &e) < 0)
        after_warn(v, "the %s hook did not run to its end: %s", which, e.msg);
    else if (status != 0)
        after_warn(v, "the %s hook exited with status %d", which, status);
    free(s);
}

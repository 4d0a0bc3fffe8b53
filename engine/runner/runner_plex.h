/*
 * runner_plex.h (internal to engine/runner): the pieces of the `plex` runner (runner_plex*.c),
 * which makes the cloud's real Plex Media Server do the night's work over its HTTP API:
 *   runner_plex.c        the pb_runner_ops (a detached monitor like the command runner's, same
 *                        files) and the night: settings, Plex started, prefs, sections, phases,
 *                        Plex stopped;
 *   runner_plex_http.c   the HTTP client (libcurl, JSON through jansson), token, readiness;
 *   runner_plex_libs.c   plex_libraries.json (both formats) and the sections made to match;
 *   runner_plex_idle.c   "done means done": several signals held for a stability window, the
 *                        phase cap, progress lines;
 *   runner_plex_media.c  the media mount health guard and the VFS warm-up.
 * Role: engine/runner. Prerequisites: libcurl, jansson, SQLite (the compat layer).
 */
#ifndef PB_RUNNER_PLEX_H
#define PB_RUNNER_PLEX_H

#include <stdio.h>
#include <jansson.h>

#include "plexburst/errors.h"
#include "runner.h"

extern const pb_runner_ops pb_runner_plex_ops;

/** The settings of a night (environment, see docs/plex-runner.md). */
typedef struct pb_runner_plex_cfg {
    char plex_dir[4096];
    char start_cmd[4096], stop_cmd[2048];
    char version[128];
    char libraries[4096]; /* path of plex_libraries.json, "" = the existing sections */
    char analysis[256];   /* scan,analyze,thumbnails,markers,loudness,sonic */
    char media_mount[1024];
    char sentinel[256];
    char scanner_cmd[2048]; /* sonic through the scanner CLI, {section} substituted; "" = butler */
    char media[1024];  /* PLEXBURST_MEDIA: s3://BUCKET/PREFIX or an rclone NAME:PATH; "" = none */
    char remote[1100]; /* the rclone remote mounted (pbmedia:BUCKET/PREFIX or NAME:PATH) */
    char state_dir[4096], run_id[128];
    int mounted;
    int port;
    double idle_s, phase_timeout_s, poll_s, progress_s, mount_timeout_s, start_timeout_s;
    int claimed;
} pb_runner_plex_cfg;

/** A connection to the cloud's Plex. */
typedef struct pb_runner_plex_http {
    char base[128];
    char token[256]; /* "" = none (unclaimed, loopback) */
    void *curl;
} pb_runner_plex_http;

/** Output of the night (the runner's log, relayed home line by line). */
void pb_runner_plex_say(FILE *log, const char *fmt, ...) PB_PRINTF(2, 3);

int pb_runner_plex_http_init(pb_runner_plex_http *h, int port, pb_error *err);
void pb_runner_plex_http_dispose(pb_runner_plex_http *h);
/**
 * One call: `method` on `path` (with its query, already encoded). *code gets the HTTP status;
 * *out (may be NULL) the parsed JSON body (NULL when empty or not JSON).
 * @return 0 when an answer came (whatever its status), PB_ENET otherwise.
 */
int pb_runner_plex_call(pb_runner_plex_http *h, const char *method, const char *path, long *code,
                        json_t **out, pb_error *err);
/** Percent-encodes s into out. */
void pb_runner_plex_escape(char *out, size_t cap, const char *s);
/** Waits for /identity (retrying while Plex answers 503 "starting up" or not at all) up to
 * timeout_s; *version (may be NULL) gets what it says. */
int pb_runner_plex_ready(pb_runner_plex_http *h, double timeout_s, char *version, size_t cap,
                         FILE *log, pb_error *err);
/** The X-Plex-Token from <plex_dir>/Preferences.xml (PlexOnlineToken), retried while it
 * appears (after a claim) up to timeout_s. */
int pb_runner_plex_token(pb_runner_plex_http *h, const char *plex_dir, double timeout_s,
                         pb_error *err);

/** One section of the cloud's Plex. */
typedef struct pb_runner_plex_section {
    long id;
    char title[256], type[32];
    int nloc;
    char loc[32][1024];
} pb_runner_plex_section;

/** The sections the night works on: those of the libraries file (missing ones created), or
 * every existing section when there is no file. *out is malloc'd. */
int pb_runner_plex_sections(pb_runner_plex_http *h, const pb_runner_plex_cfg *c,
                            pb_runner_plex_section **out, int *n, FILE *log, pb_error *err);

/** What a phase waits for. */
typedef struct pb_runner_plex_phase {
    const char *name;
    long section; /* 0: every section */
    const char *section_title;
} pb_runner_plex_phase;

/** Waits until the phase is done: no activity (of the section), no section refreshing, the DB
 * counters still and no scanner process, all held for idle_s; PB_EREFUSED past the cap. */
int pb_runner_plex_wait(pb_runner_plex_http *h, const pb_runner_plex_cfg *c,
                        const pb_runner_plex_phase *p, json_t *counts_out, FILE *log,
                        pb_error *err);

/** The media health guard: every location listed and not empty, a sample of files readable
 * within the timeout, the sentinel at each root when named. PB_EREFUSED when degraded. */
int pb_runner_plex_media_guard(const pb_runner_plex_cfg *c, const pb_runner_plex_section *s, int n,
                               FILE *log, pb_error *err);
/** Mounts PLEXBURST_MEDIA read-only at media_mount with rclone (configured through its
 * environment variables, never a key file), and waits until the mount is there. Nothing when
 * PLEXBURST_MEDIA is unset (the media are already where the sections point). */
int pb_runner_plex_media_mount(pb_runner_plex_cfg *c, FILE *log, pb_error *err);
/** Unmounts what pb_runner_plex_media_mount mounted (a no-op otherwise); on failure of the
 * night, the tail of rclone's log goes to the runner's log first. */
void pb_runner_plex_media_unmount(pb_runner_plex_cfg *c, int failed, FILE *log);

/** The last `lines` (at most 40) of the log at `path` into the runner's log, each line prefixed
 * with `label`, secrets redacted: the values of the secret settings in the environment and
 * `secret` (may be NULL) masked, then pb_runner_redact_text(). Nothing when the file is
 * missing. */
void pb_runner_plex_log_tail(FILE *log, const char *path, const char *label, int lines,
                             const char *secret);

/** Reads the first 64 KiB of every media file of the sections (the VFS cache warmed). */
int pb_runner_plex_media_warm(const pb_runner_plex_cfg *c, const pb_runner_plex_section *s, int n,
                              FILE *log, pb_error *err);

#endif

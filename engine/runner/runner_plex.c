/*
 * runner_plex.c: the `plex` runner (runner.h): the cloud's real Plex Media Server does the
 * night's work, driven over its HTTP API. Like the command runner it is a detached monitor in
 * its own session holding <state>/runner-<run>.lock, its output in runner-<run>.log, its exit
 * status in runner-<run>.json, its process group in runner-<run>.pid — the same files, so the
 * command runner's state, follow, stop and forget serve it unchanged; only the start differs.
 * The monitor runs the night in-process:
 *   1. Plex started by PLEXBURST_CLOUD_PLEX_START ({plex_dir} {media} {version} {port} {mkplex}
 *      substituted, shell-quoted) at the home's version (PLEXBURST_PLEX_VERSION, else the home
 *      server's /identity at PLEXBURST_PLEX_URL, else refused);
 *   2. readiness (/identity, retried while "starting up"), the token from Preferences.xml when
 *      claimed, the version checked;
 *   3. preferences first: autoEmptyTrash=0 (checked back), scheduled and filesystem-event
 *      library updates off, the analysis preferences of the chosen tasks;
 *   4. the sections of plex_libraries.json (both formats; existing reused, missing created);
 *   5. the media guard before any scan, and again after each phase;
 *   6. the phases of PLEXBURST_ANALYSIS (scan, analyze, thumbnails, markers, loudness, sonic),
 *      each waited for with several idle signals (runner_plex_idle.c); never a forced refresh;
 *   7. Plex stopped by PLEXBURST_CLOUD_PLEX_STOP on every path out, before EXPORT.
 * Role: engine/runner. Prerequisites: POSIX, libcurl, jansson.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include <curl/curl.h>
#include <jansson.h>

#include "plexburst/number.h"
#include "proc.h"
#include "runner_plex.h"

/* Default start: the official image, /config on the cloud's data dir, the mount at the same path
 * inside, host network, unauthenticated access for loopback only, PLEX_CLAIM passed by name. */
#define DEFAULT_START                                                                              \
    "docker run -d --name plexburst-plex --network=host -e TZ=UTC "                                \
    "-e ALLOWED_NETWORKS=127.0.0.1/255.255.255.255 -e PLEX_CLAIM "                                 \
    "-v {plex_dir}:'/config/Library/Application Support/Plex Media Server' "                       \
    "-v {media}:{media}:ro,rslave plexinc/pms-docker:{version}"
#define DEFAULT_STOP "docker stop -t 120 plexburst-plex && docker rm plexburst-plex"

static volatile sig_atomic_t cancelled;

static void on_term(int sig)
{
    (void)sig;
    cancelled = 1;
}

static const char *env(const char *k, const char *def)
{
    const char *v = getenv(k);
    return v && *v ? v : def;
}

/* A number setting: `def` when unset; a malformed or out-of-range value is remembered in
 * bad_key (the first) and refused by load_cfg. */
static const char *bad_key;

static double env_num(const char *k, double def, int whole, double lo, double hi)
{
    const char *v = getenv(k);
    double d;
    if (!v || !*v)
        return def;
    if (pb_number_parse(&d, v, whole, lo, hi) < 0) {
        if (!bad_key)
            bad_key = k;
        return def;
    }
    return d;
}

/* Appends s single-quoted for /bin/sh. 0 or -1 (no room). */
static int put_quoted(char *out, size_t cap, size_t *n, const char *s)
{
    if (*n + 2 >= cap)
        return -1;
    out[(*n)++] = '\'';
    for (; *s; s++) {
        if (*n + 6 >= cap)
            return -1;
        if (*s == '\'') {
            memcpy(out + *n, "'\\''", 4);
            *n += 4;
        } else {
            out[(*n)++] = *s;
        }
    }
    out[(*n)++] = '\'';
    out[*n] = '\0';
    return 0;
}

/* {plex_dir} {media} {version} {port} {mkplex} {section} substituted, shell-quoted. */
static int expand(char *out, size_t cap, const char *line, const pb_runner_plex_cfg *c,
                  const char *mkplex, const char *section, pb_error *err)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", c->port);
    const char *keys[] = {"{plex_dir}", "{media}", "{version}", "{port}", "{mkplex}", "{section}"};
    const char *vals[] = {c->plex_dir, c->media_mount, c->version, port, mkplex, section};
    size_t n = 0;
    out[0] = '\0';
    for (const char *p = line; *p;) {
        int hit = 0;
        for (int k = 0; k < 6 && !hit; k++) {
            size_t kl = strlen(keys[k]);
            if (strncmp(p, keys[k], kl) == 0) {
                if (!vals[k] || put_quoted(out, cap, &n, vals[k]) != 0)
                    return pb_error_set(err, PB_EINVALID, "plex: cannot substitute %s in a command",
                                        keys[k]);
                p += kl;
                hit = 1;
            }
        }
        if (hit)
            continue;
        if (n + 2 >= cap)
            return pb_error_set(err, PB_EINVALID, "plex: command too long");
        out[n++] = *p++;
        out[n] = '\0';
    }
    return 0;
}

/* Runs a command line of the night, shown redacted; PB_ERROR when it fails. */
static int run_cmd(const char *what, const char *line, FILE *log, pb_error *err)
{
    char shown[4096];
    int st = -1;
    pb_runner_redact(shown, sizeof(shown), line);
    pb_runner_plex_say(log, "🔄 %s: %s", what, shown);
    fflush(NULL);
    if (pb_proc_shell(&st, line, err) != 0)
        return PB_ERROR;
    if (st != 0)
        return pb_error_set(err, PB_ERROR, "plex: %s exited with status %d", what, st);
    return 0;
}

const char *const pb_runner_plex_settings[] = {
    "PLEXBURST_MEDIA",
    "PLEXBURST_MEDIA_MOUNT",
    "PLEXBURST_MEDIA_SENTINEL",
    "PLEXBURST_MEDIA_S3_ENDPOINT",
    "PLEXBURST_MEDIA_S3_REGION",
    "PLEXBURST_MEDIA_S3_ACCESS_KEY",
    "PLEXBURST_MEDIA_S3_SECRET_KEY",
    "PLEXBURST_MEDIA_S3_PROVIDER",
    "PLEXBURST_MEDIA_CACHE_DIR",
    "PLEXBURST_MEDIA_UID",
    "PLEXBURST_MEDIA_GID",
    "PLEXBURST_MEDIA_RCLONE_FLAGS",
    "PLEXBURST_MEDIA_TIMEOUT",
    "PLEXBURST_CLOUD_PLEX_START",
    "PLEXBURST_CLOUD_PLEX_STOP",
    "PLEXBURST_CLOUD_PLEX_PORT",
    "PLEXBURST_PLEX_VERSION",
    "PLEXBURST_PLEX_CLAIM",
    "PLEXBURST_PLEX_SCANNER_CMD",
    "PLEXBURST_PLEX_START_TIMEOUT",
    "PLEXBURST_ANALYSIS",
    "PLEXBURST_IDLE_SECONDS",
    "PLEXBURST_PHASE_TIMEOUT",
    "PLEXBURST_PROGRESS_SECONDS",
    NULL,
};

int pb_runner_plex_version_of(char *out, size_t cap, const char *url, pb_error *err)
{
    pb_runner_plex_http h;
    out[0] = '\0';
    if (!url || !*url)
        url = "http://127.0.0.1:32400";
    int error = pb_runner_plex_http_init(&h, 0, err);
    if (error)
        return error;
    snprintf(h.base, sizeof(h.base), "%s", url);
    long code = 0;
    json_t *o = NULL;
    pb_error e = PB_ERROR_INIT;
    if (pb_runner_plex_call(&h, "GET", "/identity", &code, &o, &e) == 0 && code == 200) {
        const char *s =
            json_string_value(json_object_get(json_object_get(o, "MediaContainer"), "version"));
        if (s && *s)
            snprintf(out, cap, "%s", s);
    }
    json_decref(o);
    pb_runner_plex_http_dispose(&h);
    if (!out[0])
        return pb_error_set(err, PB_ENET, "plex: no version from %s/identity", url);
    return 0;
}

/* The home's Plex version: PLEXBURST_PLEX_VERSION (the home sends the one it resolved), else
 * the home server's /identity (a local cloud on the home machine). */
static int home_version(pb_runner_plex_cfg *c, pb_error *err)
{
    const char *v = getenv("PLEXBURST_PLEX_VERSION");
    if (v && *v) {
        snprintf(c->version, sizeof(c->version), "%s", v);
        return 0;
    }
    pb_error e = PB_ERROR_INIT;
    if (pb_runner_plex_version_of(c->version, sizeof(c->version), getenv("PLEXBURST_PLEX_URL"),
                                  &e) != 0)
        return pb_error_set(err, PB_EINVALID,
                            "plex: the home's Plex version is unknown (set PLEXBURST_PLEX_VERSION, "
                            "or PLEXBURST_PLEX_URL to the home server)");
    return 0;
}

static int load_cfg(pb_runner_plex_cfg *c, pb_runner *r, pb_error *err)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->plex_dir, sizeof(c->plex_dir), "%s", r->plex_dir);
    snprintf(c->state_dir, sizeof(c->state_dir), "%s", r->state_dir);
    snprintf(c->run_id, sizeof(c->run_id), "%s", r->run_id);
    snprintf(c->start_cmd, sizeof(c->start_cmd), "%s",
             env("PLEXBURST_CLOUD_PLEX_START", DEFAULT_START));
    snprintf(c->stop_cmd, sizeof(c->stop_cmd), "%s",
             env("PLEXBURST_CLOUD_PLEX_STOP", DEFAULT_STOP));
    snprintf(c->libraries, sizeof(c->libraries), "%s", env("PLEXBURST_PLEX_LIBRARIES", ""));
    snprintf(c->analysis, sizeof(c->analysis), "%s",
             env("PLEXBURST_ANALYSIS", "scan,analyze,thumbnails,markers,loudness,sonic"));
    snprintf(c->media_mount, sizeof(c->media_mount), "%s",
             env("PLEXBURST_MEDIA_MOUNT", "/mnt/plexburst-media"));
    snprintf(c->sentinel, sizeof(c->sentinel), "%s", env("PLEXBURST_MEDIA_SENTINEL", ""));
    snprintf(c->scanner_cmd, sizeof(c->scanner_cmd), "%s", env("PLEXBURST_PLEX_SCANNER_CMD", ""));
    bad_key = NULL;
    c->port = (int)env_num("PLEXBURST_CLOUD_PLEX_PORT", 32400, 1, 1, 65535);
    c->idle_s = env_num("PLEXBURST_IDLE_SECONDS", 120, 0, 0, 86400);
    c->phase_timeout_s = env_num("PLEXBURST_PHASE_TIMEOUT", 6 * 3600, 0, 1, 604800);
    c->poll_s = c->idle_s >= 20 ? 5 : c->idle_s / 4 > 0.2 ? c->idle_s / 4 : 0.2;
    c->progress_s = env_num("PLEXBURST_PROGRESS_SECONDS", 60, 0, 0.1, 3600);
    c->mount_timeout_s = env_num("PLEXBURST_MEDIA_TIMEOUT", 30, 0, 1, 3600);
    c->start_timeout_s = env_num("PLEXBURST_PLEX_START_TIMEOUT", 300, 0, 1, 86400);
    if (bad_key)
        return pb_error_set(err, PB_EINVALID, "plex: %s: not a number in its range ('%s')", bad_key,
                            getenv(bad_key));
    c->claimed = getenv("PLEXBURST_PLEX_CLAIM") && *getenv("PLEXBURST_PLEX_CLAIM");
    /* every task named must be known */
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s", c->analysis);
    for (char *s = NULL, *t = strtok_r(tmp, ",", &s); t; t = strtok_r(NULL, ",", &s))
        if (strcmp(t, "scan") && strcmp(t, "analyze") && strcmp(t, "thumbnails") &&
            strcmp(t, "markers") && strcmp(t, "loudness") && strcmp(t, "sonic"))
            return pb_error_set(err, PB_EINVALID,
                                "plex: unknown task '%s' in PLEXBURST_ANALYSIS (scan, analyze, "
                                "thumbnails, markers, loudness, sonic)",
                                t);
    return home_version(c, err);
}

static int wants(const pb_runner_plex_cfg *c, const char *task)
{
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s", c->analysis);
    for (char *s = NULL, *t = strtok_r(tmp, ",", &s); t; t = strtok_r(NULL, ",", &s))
        if (strcmp(t, task) == 0)
            return 1;
    return 0;
}

/* PUT /:/prefs?id=value; `must`: a refusal fails the night. */
static int set_pref(pb_runner_plex_http *h, const char *id, const char *value, int must, FILE *log,
                    pb_error *err)
{
    char q[512];
    long code;
    snprintf(q, sizeof(q), "/:/prefs?%s=%s", id, value);
    int error = pb_runner_plex_call(h, "PUT", q, &code, NULL, err);
    if (error)
        return error;
    if (code == 200)
        return 0;
    if (must)
        return pb_error_set(err, PB_EREFUSED, "plex: setting %s=%s answered %ld", id, value, code);
    pb_runner_plex_say(log, "⚠️ Plex refused the preference %s=%s (%ld); going on", id, value,
                       code);
    return 0;
}

static int prefs_first(pb_runner_plex_http *h, const pb_runner_plex_cfg *c, FILE *log,
                       pb_error *err)
{
    int error = 0;
    if ((error = set_pref(h, "autoEmptyTrash", "0", 1, log, err)) < 0)
        return error;
    /* checked back: a cloud Plex that could empty the trash must not scan */
    long code;
    json_t *o = NULL;
    if ((error = pb_runner_plex_call(h, "GET", "/:/prefs", &code, &o, err)) < 0)
        return error;
    int off = 0;
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(json_object_get(o, "MediaContainer"), "Setting"), i, s)
    {
        if (strcmp(json_string_value(json_object_get(s, "id"))
                       ? json_string_value(json_object_get(s, "id"))
                       : "",
                   "autoEmptyTrash") != 0)
            continue;
        json_t *v = json_object_get(s, "value");
        off = json_is_false(v) || (json_is_integer(v) && json_integer_value(v) == 0) ||
              (json_is_string(v) &&
               (!strcmp(json_string_value(v), "0") || !strcmp(json_string_value(v), "false")));
    }
    json_decref(o);
    if (!off)
        return pb_error_set(err, PB_EREFUSED,
                            "plex: autoEmptyTrash is still on after setting it off; no scan");
    pb_runner_plex_say(log, "✅ autoEmptyTrash off (the cloud never empties the trash)");
    if ((error = set_pref(h, "ScheduledLibraryUpdatesEnabled", "0", 0, log, err)) < 0 ||
        (error = set_pref(h, "FSEventLibraryUpdatesEnabled", "0", 0, log, err)) < 0)
        return error;
    if (wants(c, "thumbnails") &&
        ((error = set_pref(h, "GenerateBIFBehavior", "asap", 0, log, err)) < 0 ||
         (error = set_pref(h, "GenerateChapterThumbBehavior", "asap", 0, log, err)) < 0))
        return error;
    if (wants(c, "markers") &&
        ((error = set_pref(h, "GenerateIntroMarkerBehavior", "asap", 0, log, err)) < 0 ||
         (error = set_pref(h, "GenerateCreditsMarkerBehavior", "asap", 0, log, err)) < 0))
        return error;
    if (wants(c, "loudness") &&
        (error = set_pref(h, "LoudnessAnalysisBehavior", "asap", 0, log, err)) < 0)
        return error;
    if (wants(c, "analyze") &&
        (error = set_pref(h, "ButlerTaskDeepMediaAnalysis", "1", 0, log, err)) < 0)
        return error;
    return 0;
}

/* One call that starts work, then its wait. */
static int phase(pb_runner_plex_http *h, const pb_runner_plex_cfg *c, const char *name,
                 const char *method, const char *path, const pb_runner_plex_section *s,
                 json_t *result, FILE *log, pb_error *err)
{
    long code;
    int error;
    if (cancelled)
        return pb_error_set(err, PB_ECANCELLED, "plex: stopped");
    pb_runner_plex_say(log, "⏳ %s%s%s", name, s ? " " : "", s ? s->title : "");
    if (path && (error = pb_runner_plex_call(h, method, path, &code, NULL, err)) < 0)
        return error;
    if (path && code != 200 && code != 201 && code != 202)
        return pb_error_set(err, PB_EREFUSED, "plex: %s %s answered %ld", method, path, code);
    pb_runner_plex_phase p = {name, s ? s->id : 0, s ? s->title : NULL};
    json_t *counts = json_object();
    error = pb_runner_plex_wait(h, c, &p, counts, log, err);
    if (!error && result) {
        char key[300];
        snprintf(key, sizeof(key), "%s%s%s", name, s ? ":" : "", s ? s->title : "");
        json_object_set(result, key, counts);
    }
    json_decref(counts);
    return error;
}

static int night(pb_runner *r, FILE *log, pb_error *err)
{
    int error = 0, started = 0, n = 0;
    pb_runner_plex_cfg c;
    pb_runner_plex_http h;
    pb_runner_plex_section *secs = NULL;
    json_t *result = json_object();
    char line[8192];
    memset(&h, 0, sizeof(h));
    memset(&c, 0, sizeof(c));
    if ((error = load_cfg(&c, r, err)) < 0)
        goto done;
    pb_runner_plex_say(log, "🔄 plex runner: Plex %s on 127.0.0.1:%d, tasks %s", c.version, c.port,
                       c.analysis);
    if (c.claimed)
        setenv("PLEX_CLAIM", getenv("PLEXBURST_PLEX_CLAIM"), 1); /* by name, never on a line */
    /* the mount first, so that Plex (a container's bind mount too) sees it */
    if ((error = pb_runner_plex_media_mount(&c, log, err)) < 0)
        goto done;
    if ((error = expand(line, sizeof(line), c.start_cmd, &c, r->mkplex, "", err)) < 0)
        goto done;
    started = 1;
    if ((error = run_cmd("starting Plex", line, log, err)) < 0)
        goto done;
    if ((error = pb_runner_plex_http_init(&h, c.port, err)) < 0)
        goto done;
    char seen[128] = "";
    if ((error = pb_runner_plex_ready(&h, c.start_timeout_s, seen, sizeof(seen), log, err)) < 0)
        goto done;
    char prefs[4200];
    snprintf(prefs, sizeof(prefs), "%s/Preferences.xml", c.plex_dir);
    {
        pb_error e = PB_ERROR_INIT;
        if ((c.claimed || access(prefs, R_OK) == 0) &&
            pb_runner_plex_token(&h, c.plex_dir, c.claimed ? 60 : 0, &e) != 0 && c.claimed) {
            error = pb_error_set(err, e.code, "%s", e.msg);
            goto done;
        }
    }
    if (strcmp(seen, c.version) != 0) {
        error = pb_error_set(err, PB_EREFUSED,
                             "plex: the cloud's Plex is %s, the home's %s; refusing to let another "
                             "version write the library",
                             seen, c.version);
        goto done;
    }
    pb_runner_plex_say(log, "✅ Plex %s ready%s", seen, h.token[0] ? " (claimed)" : "");
    if ((error = prefs_first(&h, &c, log, err)) < 0)
        goto done;
    if ((error = pb_runner_plex_sections(&h, &c, &secs, &n, log, err)) < 0)
        goto done;
    if (!n) {
        error = pb_error_set(err, PB_EINVALID, "plex: no section to work on");
        goto done;
    }
    if ((error = pb_runner_plex_media_guard(&c, secs, n, log, err)) < 0)
        goto done;
    if (wants(&c, "scan")) {
        for (int i = 0; i < n && !error; i++) {
            char q[64];
            snprintf(q, sizeof(q), "/library/sections/%ld/refresh", secs[i].id);
            error = phase(&h, &c, "scan", "GET", q, &secs[i], result, log, err);
        }
        if (error || (error = pb_runner_plex_media_guard(&c, secs, n, log, err)) < 0)
            goto done;
    }
    if (wants(&c, "analyze")) {
        if ((error = pb_runner_plex_media_warm(&c, secs, n, log, err)) < 0)
            goto done;
        for (int i = 0; i < n && !error; i++) {
            char q[64];
            snprintf(q, sizeof(q), "/library/sections/%ld/analyze", secs[i].id);
            error = phase(&h, &c, "analyze", "PUT", q, &secs[i], result, log, err);
        }
        if (error || (error = phase(&h, &c, "deep analysis", "POST", "/butler/DeepMediaAnalysis",
                                    NULL, result, log, err)) < 0)
            goto done;
    }
    if (wants(&c, "thumbnails") &&
        (error = phase(&h, &c, "thumbnails", "POST", "/butler/GenerateMediaIndexFiles", NULL,
                       result, log, err)) < 0)
        goto done;
    if (wants(&c, "markers") &&
        ((error = phase(&h, &c, "intro markers", "POST", "/butler/ButlerTaskGenerateIntroMarkers",
                        NULL, result, log, err)) < 0 ||
         (error = phase(&h, &c, "credits markers", "POST",
                        "/butler/ButlerTaskGenerateCreditsMarkers", NULL, result, log, err)) < 0))
        goto done;
    if (wants(&c, "loudness") &&
        (error = phase(&h, &c, "loudness", "POST", "/butler/LoudnessAnalysis", NULL, result, log,
                       err)) < 0)
        goto done;
    if (wants(&c, "sonic")) {
        if (c.scanner_cmd[0]) {
            /* the scanner CLI, never with --force (a full metadata refresh first) */
            for (int i = 0; i < n && !error; i++) {
                char id[32];
                if (strcmp(secs[i].type, "artist") != 0)
                    continue;
                snprintf(id, sizeof(id), "%ld", secs[i].id);
                if ((error = expand(line, sizeof(line), c.scanner_cmd, &c, r->mkplex, id, err)) <
                        0 ||
                    (error = run_cmd("sonic analysis", line, log, err)) < 0 ||
                    (error = phase(&h, &c, "sonic", "GET", NULL, &secs[i], result, log, err)) < 0)
                    goto done;
            }
        } else if ((error = phase(&h, &c, "sonic", "POST", "/butler/MusicAnalysis", NULL, result,
                                  log, err)) < 0) {
            goto done;
        }
    }
    if ((error = pb_runner_plex_media_guard(&c, secs, n, log, err)) < 0)
        goto done;
    char *txt = json_dumps(result, JSON_COMPACT | JSON_SORT_KEYS);
    pb_runner_plex_say(log, "📊 phases: %s", txt ? txt : "{}");
    free(txt);
done:
    if (error && started) {
        /* the cloud Plex's own log comes home with the run log (redacted) */
        char plog[4200];
        snprintf(plog, sizeof(plog), "%s/Logs/Plex Media Server.log", c.plex_dir);
        pb_runner_plex_log_tail(log, plog, "Plex", 30, h.token);
    }
    pb_runner_plex_http_dispose(&h);
    if (started) {
        /* stopped cleanly on every path out: its DB quiescent before EXPORT */
        pb_error e = PB_ERROR_INIT;
        if (expand(line, sizeof(line), c.stop_cmd, &c, r->mkplex, "", &e) < 0 ||
            run_cmd("stopping Plex", line, log, &e) < 0) {
            pb_runner_plex_say(log, "❌ %s", e.msg);
            if (!error)
                error = pb_error_set(err, e.code ? e.code : PB_ERROR, "%s", e.msg);
        }
    }
    pb_runner_plex_media_unmount(&c, error != 0, log);
    free(secs);
    json_decref(result);
    return error;
}

/* The plex runner's work, in the detached monitor (pb_runner__spawn): one night, its lines in
 * the log; 0, 1, or 128+SIGTERM when stopped. */
static int plex_work(pb_runner *r, int logfd, void *arg)
{
    (void)arg;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    dup2(logfd, 1);
    dup2(logfd, 2);
    FILE *log = fdopen(logfd, "a");
    if (!log || chdir(r->plex_dir) != 0)
        return 1;
    pb_error err = PB_ERROR_INIT;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int error = night(r, log, &err);
    if (error)
        pb_runner_plex_say(log, "❌ %s", err.msg[0] ? err.msg : pb_strerror(error));
    fflush(log);
    return error ? (cancelled ? 128 + SIGTERM : 1) : 0;
}

static int plex_start(pb_runner *r, const char *spec, char *shown, size_t cap, pb_error *err)
{
    (void)spec;
    snprintf(shown, cap, "plex (the cloud's Plex Media Server over HTTP)");
    return pb_runner__spawn(r, plex_work, NULL, err);
}

static int plex_state(pb_runner *r, int *status)
{
    return pb_runner_command_ops.state(r, status);
}

static int plex_follow(pb_runner *r, const pb_runner_io *io, int *status, pb_error *err)
{
    return pb_runner_command_ops.follow(r, io, status, err);
}

static void plex_stop(pb_runner *r)
{
    pb_runner_command_ops.stop(r);
}

/* forget: the command runner's (same files) covers it. */
const pb_runner_ops pb_runner_plex_ops = {
    PB_RUNNER_OPS_VERSION, "plex", plex_state, plex_start, plex_follow, plex_stop, NULL, NULL,
};

/*
 * runner_home.c: the home's side of the runner in the protocol (runner_home.h). sshd forwards no
 * environment and a remote command line is visible to `ps`, so the plex runner's settings
 * (docs/plex-runner.md) travel in RUN, over the encrypted channel: each name of
 * pb_runner_plex_settings as the home resolves it (environment, then the config file), the
 * media's S3 settings completed from the store's, the home Plex's version, and the content of
 * plex_libraries.json (the cloud has no copy of the home's file). The agent makes them its own
 * (engine/run/agent.c). Values are never logged. Back come the runner's progress records: a
 * progress event for the bar, and per finished phase its counts in the result (`--json`
 * "runner", docs/cli.md).
 * Role: engine/run, the home side. Prerequisites: jansson, the runner seam (names, parser).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"
#include "runner_home.h"

/* The media's S3 setting: its own, else the store's (PLEXBURST_S3_*), else `aws` (AWS_*). */
static const char *media_s3(rx *x, const char *own, const char *store, const char *aws)
{
    const char *v = pb_config_get(x->cfg, own);
    if (!v)
        v = pb_config_get(x->cfg, store);
    if (!v && aws)
        v = pb_config_get(x->cfg, aws);
    return v;
}

/* The settings object of RUN for the plex runner. NULL: out of memory. */
static json_t *plex_settings(rx *x)
{
    json_t *set = json_object();
    for (const char *const *k = pb_runner_plex_settings; set && *k; k++) {
        const char *v = pb_config_get(x->cfg, *k);
        if (v)
            json_object_set_new(set, *k, json_string(v));
    }
    if (!set)
        return NULL;
    const char *media = pb_config_get(x->cfg, "PLEXBURST_MEDIA");
    if (media && strncmp(media, "s3://", 5) == 0) {
        static const char *const m[][3] = {
            {"PLEXBURST_MEDIA_S3_ENDPOINT", "PLEXBURST_S3_ENDPOINT", NULL},
            {"PLEXBURST_MEDIA_S3_REGION", "PLEXBURST_S3_REGION", NULL},
            {"PLEXBURST_MEDIA_S3_ACCESS_KEY", "PLEXBURST_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID"},
            {"PLEXBURST_MEDIA_S3_SECRET_KEY", "PLEXBURST_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"},
        };
        for (size_t i = 0; i < sizeof(m) / sizeof(*m); i++) {
            const char *v = media_s3(x, m[i][0], m[i][1], m[i][2]);
            if (v)
                json_object_set_new(set, m[i][0], json_string(v));
        }
    }
    if (!json_object_get(set, "PLEXBURST_PLEX_VERSION")) {
        /* the home server is here: ask it now (the cloud cannot reach it) */
        char v[128];
        pb_error e = PB_ERROR_INIT;
        const char *url = pb_config_get(x->cfg, "PLEXBURST_PLEX_URL");
        if (pb_runner_plex_version_of(v, sizeof(v), url, &e) == 0) {
            json_object_set_new(set, "PLEXBURST_PLEX_VERSION", json_string(v));
            pb_run__log(x, "info", "the home's Plex is %s (its /identity)", v);
        } else {
            pb_run__log(x, "warn",
                        "the home's Plex version is unknown (%s): set PLEXBURST_PLEX_VERSION, or "
                        "PLEXBURST_PLEX_URL to the home server",
                        e.msg);
        }
    }
    return set;
}

int pb_run__send_run(rx *x)
{
    int error = 0;
    json_t *libs = NULL;
    json_t *o = json_pack("{s:s, s:s}", "runner", "command", "command", x->runner);
    if (!o)
        return pb_error_set(x->err, PB_ENOMEM, "out of memory");
    if (strcmp(x->runner, "plex") == 0) {
        json_t *set = plex_settings(x);
        if (!set) {
            error = pb_error_set(x->err, PB_ENOMEM, "out of memory");
            goto done;
        }
        json_object_set_new(o, "settings", set);
        if (x->set.libraries) {
            if ((error = pb_runner_plex_libraries_load(&libs, x->set.libraries, x->err)) < 0)
                goto done;
            json_object_set(o, "libraries", libs);
        } else {
            json_object_set_new(o, "libraries", json_null());
        }
        pb_run__log(x, "detail", "RUN carries %zu runner settings%s", json_object_size(set),
                    libs ? " and plex_libraries.json" : "");
    }
    error = pb_frame_write_json(&x->io, PB_MSG_RUN, o, x->err);
done:
    json_decref(libs);
    json_decref(o);
    return error;
}

static void hms(char *out, size_t cap, double s)
{
    long t = s > 0 ? (long)s : 0;
    snprintf(out, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
}

/* Appends a finished phase to the result's runner JSON. */
static void keep_phase(rx *x, json_t *o)
{
    json_t *root = x->r->runner_json ? json_loads(x->r->runner_json, 0, NULL) : NULL;
    if (!json_is_object(root)) {
        json_decref(root);
        root = json_pack("{s:s, s:[]}", "kind", "plex", "phases");
    }
    json_t *ph = json_object();
    json_object_set(ph, "phase", json_object_get(o, "phase"));
    json_object_set(ph, "section", json_object_get(o, "section"));
    json_object_set(ph, "seconds", json_object_get(o, "elapsed_s"));
    json_object_update(ph, json_object_get(o, "counts"));
    json_array_append_new(json_object_get(root, "phases"), ph);
    char *txt = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (txt) {
        free(x->r->runner_json);
        x->r->runner_json = txt;
    }
}

int pb_run__runner_progress(rx *x, json_t *o)
{
    const char *what = json_string_value(json_object_get(o, "what"));
    if (!what || strcmp(what, "runner") != 0)
        return 0;
    const char *phase = json_string_value(json_object_get(o, "phase"));
    const char *sec = json_string_value(json_object_get(o, "section"));
    const char *unit = json_string_value(json_object_get(o, "unit"));
    json_int_t done = json_integer_value(json_object_get(o, "done"));
    json_int_t total = json_integer_value(json_object_get(o, "total"));
    double eta = json_number_value(json_object_get(o, "eta_s"));
    char name[160], el[32], e2[32], path[200];
    snprintf(name, sizeof(name), "runner: %s%s%s", phase ? phase : "work", sec && *sec ? " " : "",
             sec ? sec : "");
    hms(el, sizeof(el), json_number_value(json_object_get(o, "elapsed_s")));
    if (eta >= 0)
        hms(e2, sizeof(e2), eta);
    snprintf(path, sizeof(path), "%s, elapsed %s, ETA %s", unit ? unit : "done", el,
             eta >= 0 ? e2 : "--");
    pb_progress p = {name, 0, 0, done > 0 ? (uint64_t)done : 0, total > 0 ? (uint64_t)total : 0,
                     path};
    pb_run_event ev = {0};
    ev.kind = PB_EV_PROGRESS;
    ev.progress = &p;
    pb_run__emit(x, &ev);
    if (json_is_true(json_object_get(o, "final")))
        keep_phase(x, o);
    return 1;
}

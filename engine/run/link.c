/*
 * link.c: the home's conversation with the agent (framed protocol, docs/protocol.md): the agent
 * started in the cloud (the cloud seam) and greeted, the PREPARE message, the steps' results read
 * (LOG and PROGRESS frames become events on the way), the reconnection after a dropped link (a
 * new agent, HELLO, PREPARE again, RUN again to re-attach to the runner that went on in the
 * cloud; the run continues at the same step with the same run id), and the goodbye.
 * Role: engine/run, the home side (run_ctx.h). Prerequisites: the cloud seam, transfer/frame.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hex.h"
#include "run_ctx.h"
#include "runner_home.h"
#include "transport_config.h"

/* Reads frames until the step's RESULT: LOG and PROGRESS become events; an ERROR becomes the
 * error (need_full, when given, gets its flag). */
int pb_run__await(rx *x, const char *step, json_t **res, int *need_full)
{
    pb_frame f;
    int error;
    *res = NULL;
    if (need_full)
        *need_full = 0;
    for (;;) {
        if ((error = pb_frame_read(&x->io, &f, x->err)) < 0)
            return error;
        switch (f.type) {
        case PB_MSG_LOG:
        case PB_MSG_PROGRESS:
            if ((error = pb_run__on_frame(&f, x, x->err)) < 0)
                return error;
            continue;
        case PB_MSG_RESULT:
            return pb_frame_json(res, &f, x->err);
        case PB_FRAME_ERROR: {
            json_t *o = NULL;
            pb_error e = PB_ERROR_INIT;
            if (need_full && pb_frame_json(&o, &f, &e) == 0 &&
                json_is_true(json_object_get(o, "need_full"))) {
                *need_full = 1;
                const char *m = json_string_value(json_object_get(o, "message"));
                snprintf(x->r->full_upload_reason, sizeof(x->r->full_upload_reason), "%s",
                         m ? m : "the cloud asked for it");
                json_decref(o);
                return 0;
            }
            json_decref(o);
            char who[64];
            snprintf(who, sizeof(who), "agent (%s)", step);
            return pb_frame_error_from(&f, who, x->err);
        }
        case PB_FRAME_EOF: {
            int st = -1;
            pb_error e = PB_ERROR_INIT;
            pb_channel_close(x->ch, &st, &e);
            return pb_error_set(x->err, PB_ENET,
                                "the agent exited during %s (exit status %d); its messages are "
                                "in the log",
                                step, st);
        }
        default:
            return pb_error_set(x->err, PB_ECORRUPT, "protocol: unexpected %s during %s",
                                pb_protocol_msg_name(f.type), step);
        }
    }
}

int pb_run__on_frame(const pb_frame *f, void *payload, pb_error *err)
{
    rx *x = payload;
    json_t *o = NULL;
    int error = pb_frame_json(&o, f, err);
    if (error < 0)
        return error;
    if (f->type == PB_MSG_LOG) {
        const char *lvl = json_string_value(json_object_get(o, "level"));
        const char *text = json_string_value(json_object_get(o, "text"));
        pb_run_event ev = {0};
        ev.kind = PB_EV_LOG;
        ev.level = lvl && strcmp(lvl, "runner") == 0 ? "runner" : "agent";
        ev.text = text ? text : "";
        pb_run__emit(x, &ev);
    } else if (f->type == PB_MSG_PROGRESS && pb_run__runner_progress(x, o)) {
        ; /* the runner's progress record (runner_home.c) */
    } else if (f->type == PB_MSG_PROGRESS) {
        const char *what = json_string_value(json_object_get(o, "what"));
        char phase[48];
        snprintf(phase, sizeof(phase), "cloud %s", what ? what : "work");
        pb_run__progress(x, phase, (uint64_t)json_integer_value(json_object_get(o, "done")),
                         (uint64_t)json_integer_value(json_object_get(o, "total")), NULL);
    } else {
        error = pb_error_set(err, PB_ECORRUPT, "protocol: unexpected %s",
                             pb_protocol_msg_name(f->type));
    }
    json_decref(o);
    return error;
}

/* A new agent in the cloud (pb_cloud_connect) and the HELLO. */
int pb_run__start_agent(rx *x)
{
    int error = pb_cloud_connect(x->cloud, x->store_url, &x->ch, x->err);
    if (error < 0)
        return error;
    pb_channel_set_cancel(x->ch, pb_run__chan_cancel, x);
    if ((error = pb_protocol_io_init(&x->io, x->ch, 0, x->err)) < 0)
        return error;
    x->io_ok = 1;
    json_t *peer = NULL;
    if ((error = pb_frame_hello(&x->io, "home", pb_version(), NULL, &peer, x->err)) < 0)
        return error;
    pb_run__log(x, "detail", "agent plexburst %s, pid %lld, workdir %s",
                json_string_value(json_object_get(peer, "version")),
                (long long)json_integer_value(json_object_get(peer, "pid")),
                json_string_value(json_object_get(peer, "workdir")));
    json_decref(peer);
    return 0;
}

/* Reconnections of the agent's link per step (each one with the cloud's own retries). */
#define PB_RUN_REJOIN_TRIES 3

/* After a dropped link (PB_ENET) while the agent works, when the cloud can reconnect: a new
 * connection and a new agent (pb_cloud_reconnect; ssh: bounded retries with backoff), HELLO,
 * PREPARE again (the agent keeps the cloud DB of a run prepared there), and RUN again when `ran`
 * (the runner finished: its recorded status comes back). 0 when the conversation is back at the
 * same step; else the original error (not an SSH link, cancelled, too many tries) or the
 * reconnection's. */
int pb_run__rejoin(rx *x, int error, int ran)
{
    int tries = 0;
    while (error == PB_ENET && pb_cloud_can_reconnect(x->cloud) && x->ch && x->agent_mode &&
           !pb_run__cancelled(x) && tries < PB_RUN_REJOIN_TRIES &&
           x->rejoins < 4 * PB_RUN_REJOIN_TRIES) {
        tries++;
        x->rejoins++;
        pb_run__log(
            x, "warn", "🔄 the link to the agent dropped during %s (%s): reconnecting (%d/%d)",
            x->phase_name ? x->phase_name : "the run", x->err->msg, tries, PB_RUN_REJOIN_TRIES);
        struct timespec ts = {tries, 0};
        nanosleep(&ts, NULL);
        *x->err = (pb_error)PB_ERROR_INIT;
        if (x->io_ok)
            pb_frame_io_dispose(&x->io);
        x->io_ok = 0;
        json_t *peer = NULL, *res = NULL;
        if ((error = pb_cloud_reconnect(x->cloud, x->ch, x->err)) < 0)
            continue;
        pb_channel_set_cancel(x->ch, pb_run__chan_cancel, x);
        if ((error = pb_protocol_io_init(&x->io, x->ch, 0, x->err)) < 0)
            continue;
        x->io_ok = 1;
        if ((error = pb_frame_hello(&x->io, "home", pb_version(), NULL, &peer, x->err)) < 0)
            continue;
        pb_run__log(x, "info", "🔄 reconnected: agent pid %lld; resuming run %s",
                    (long long)json_integer_value(json_object_get(peer, "pid")), x->run_id);
        json_decref(peer);
        if ((error = pb_run__send_prepare(x, x->agent_mode)) < 0 ||
            (error = pb_run__await(x, "prepare", &res, NULL)) < 0)
            continue;
        json_decref(res);
        res = NULL;
        if (ran) {
            error = pb_run__send_run(x);
            if (error < 0 || (error = pb_run__await(x, "the analysis", &res, NULL)) < 0)
                continue;
            json_decref(res);
        }
        pb_run__log(x, "info", "🔄 run %s resumed at %s", x->run_id,
                    x->phase_name ? x->phase_name : "the same step");
        return 0;
    }
    return error;
}

void pb_run__stop_agent(rx *x, int polite)
{
    if (!x->ch)
        return;
    if (polite && x->io_ok) {
        pb_error e = PB_ERROR_INIT;
        pb_frame f;
        if (pb_frame_write(&x->io, PB_MSG_BYE, NULL, 0, &e) == 0) {
            while (pb_frame_read(&x->io, &f, &e) == 0 && f.type != PB_FRAME_EOF &&
                   f.type != PB_MSG_BYE)
                ;
        }
        int st = -1;
        pb_channel_close(x->ch, &st, &e);
    }
    x->r->bytes.up += x->ch->bytes_out;
    x->r->bytes.down += x->ch->bytes_in;
    x->r->bytes.control += x->ch->bytes_in + x->ch->bytes_out;
    if (x->io_ok)
        pb_frame_io_dispose(&x->io);
    x->io_ok = 0;
    pb_channel_free(x->ch);
    x->ch = NULL;
}

static json_t *pathmap_json(rx *x, int *error)
{
    *error = 0;
    if (!x->path_map)
        return json_null();
    json_error_t je;
    json_t *o = json_load_file(x->path_map, 0, &je);
    if (!o)
        *error = pb_error_set(x->err, PB_EINVALID, "path map %s: %s", x->path_map, je.text);
    return o;
}

int pb_run__send_prepare(rx *x, const char *mode)
{
    int error;
    char m[33], b[33], um[256], ub[256];
    pb_hex_encode(m, x->snap_ids.main, 16);
    pb_hex_encode(b, x->snap_ids.blobs, 16);
    int full = strcmp(x->r->upload_kind, "full") == 0;
    snprintf(um, sizeof(um), PB_ST_RUN_FMT "upload/%s", x->run_id,
             full ? PB_ST_MAIN_DB : PB_ST_MAIN_CS);
    snprintf(ub, sizeof(ub), PB_ST_RUN_FMT "upload/%s", x->run_id,
             full ? PB_ST_BLOBS_DB : PB_ST_BLOBS_CS);
    json_t *pm = pathmap_json(x, &error);
    if (error < 0)
        return error;
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:o}", "run_id", x->run_id, "mode", mode, "store",
                          x->store_url, "zstd_level", x->zlevel, "path_map", pm);
    if (!o)
        return pb_error_set(x->err, PB_ENOMEM, "out of memory");
    if (strcmp(mode, "sync") == 0) {
        json_object_set_new(o, "upload",
                            json_pack("{s:s, s:s, s:s?, s:{s:s, s:s?, s:s}}", "kind",
                                      x->r->upload_kind, "main", um, "blobs",
                                      x->has_blobs ? ub : NULL, "snapshot", "main", m, "blobs",
                                      x->has_blobs ? b : NULL, "id", x->r->snapshot_id));
        json_object_set_new(o, "baseline",
                            full ? json_null() : json_pack("{s:s}", "id", x->base_id));
    }
    /* the agent gets the home's S3 settings here (the environment, then the configuration
     * files: sshd forwards no environment, and a local agent does not read the files; never on
     * its command line) */
    if (strncmp(x->store_url, "s3://", 5) == 0) {
        json_t *env = json_object();
        for (const char *const *k = pb_transport_config_s3_keys; env && *k; k++) {
            const char *v = pb_config_get(x->cfg, *k);
            if (v && *v)
                json_object_set_new(env, *k, json_string(v));
        }
        if (!env) {
            json_decref(o);
            return pb_error_set(x->err, PB_ENOMEM, "out of memory");
        }
        json_object_set_new(o, "s3_env", env);
    }
    error = pb_frame_write_json(&x->io, PB_MSG_PREPARE, o, x->err);
    json_decref(o);
    return error;
}

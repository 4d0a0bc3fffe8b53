/*
 * run_sync.c: the home side of the runs (pb_run, plexburst/run.h): `sync` (DESIGN.md §3 steps
 * 1-6) and `bootstrap`, driving the agent over the framed protocol and moving bulk data through
 * the store.
 *
 * sync phases: 1 RECOVER (an interrupted apply is completed or rolled back by the journal; an
 * interrupted run is resumed when its bundle is ready, else rolled back), 2 FINGERPRINT (stat
 * walk of the home tree, hashes only for changed files), 3 SNAPSHOT (online backup of the live
 * pair, logical checksums), 4 UPLOAD DELTA (row changeset baseline -> snapshot, zstd; the whole
 * snapshot the first time), 5 INJECT DB (agent started, snapshot rebuilt and verified in the
 * cloud; a mismatch falls back to a full upload), 6 ANALYSIS (the runner), 7 EXPORT (the cloud's
 * list, the home's answer with signatures, the bundle built and stored with the new baseline),
 * 8 DOWNLOAD (bundle fetched resumably and verified; the next baseline copy reproduced as
 * snapshot + the bundle's rows), 9 APPLY (pb_apply: guards, stage, stop Plex, merge, install,
 * start; --dry-run stops after the report), 10 FINALIZE (the baseline recorded, work cleaned,
 * old runs pruned from the store).
 * bootstrap phases: RECOVER, START AGENT, BUILD LIBRARY, FINGERPRINT, EXPORT, DOWNLOAD (the DB
 * pair whole + a bundle of the files the home lacks), INSTALL (Plex stopped, home user state
 * carried over by (account_id, guid), DBs installed, files applied), FINALIZE.
 *
 * State (docs/store.md): <state>/sync/current.json names the run in flight and how far it got,
 * so the next run knows whether to resume (bundle stored: download and apply it) or roll back
 * (drop its work and store objects). <state>/baseline.db(+.blobs.db) is the home's copy of the
 * baseline, <state>/sync/baseline.json its ids.
 * A dropped SSH link to the agent during PREPARE, the analysis or the export is reconnected
 * (rejoin_agent: a new agent, HELLO, PREPARE again, RUN again to re-attach to the runner that
 * went on in the cloud) and the run continues at the same step with the same run id.
 * Fault injection for tests: PLEXBURST_FAULT=kill:<PHASE_NAME> (or kill:after_apply) raises
 * SIGKILL when that phase starts.
 * Role: engine/. Prerequisites: H6 fingerprints, H3 diff/checksum, H4 merge, H5 Plex policy and
 * path map, H7 export/bundle/apply, the store and channel interfaces.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backup.h"
#include "bundle_int.h"
#include "channel.h"
#include "config.h"
#include "frame.h"
#include "plexburst/plex.h"
#include "run_int.h"
#include "solid.h"
#include "ssh.h"
#include "statedir.h"
#include "store.h"
#include "store_s3.h"

typedef struct rx {
    const pb_run_options *o;
    pb_run_result *r;
    pb_error *err;
    pb_config *cfg;
    char plex[PATH_MAX], state[PATH_MAX], sync[PATH_MAX + 16], work[PATH_MAX + 100];
    char cloud_dir[PATH_MAX + 16], store_url[PATH_MAX + 8], agent_prog[PATH_MAX];
    char ssh_url[1024]; /* --cloud ssh://...: cloud_dir is then the remote workdir */
    const char *runner, *stop_cmd, *start_cmd, *path_map, *libraries;
    double max_del;
    int online, zlevel;
    char main_db[PATH_MAX + 128], blobs_db[PATH_MAX + 128];
    int has_blobs;
    pb_store *store;
    pb_channel *ch;
    pb_frame_io io;
    int io_ok;
    const char *agent_mode; /* the PREPARE's mode ("sync", "bootstrap") for a reconnection */
    int rejoins;            /* reconnections of the agent's link during this run */
    double t0, pt0;
    const char *phase_name;
    int lock_fd;
    char manifest[PATH_MAX + 160], snap_main[PATH_MAX + 160], snap_blobs[PATH_MAX + 160];
    char list[PATH_MAX + 160], answer[PATH_MAX + 160], bundle[PATH_MAX + 160];
    char cs_main[PATH_MAX + 160], cs_blobs[PATH_MAX + 160];
    char next_main[PATH_MAX + 160], next_blobs[PATH_MAX + 160];
    pb_baseline snap_ids;
    pb_baseline base_ids;
    int have_base;
    char base_id[33];
    json_t *build_res;
    char bundle_name[256];
    char bundle_xxh3[33]; /* of the solid form, from the agent (or current.json) */
    pb_bundle_info binfo;
    int next_ok;
    uint64_t list_bytes, answer_bytes;
    char run_id[40]; /* the run whose work is in `work` (the resumed one on a resume) */
} rx;

/* ---------------------------------------------------------------------------------------- */
/* Events                                                                                     */

static void emit(rx *x, pb_run_event *ev)
{
    ev->result = x->r;
    ev->phase = (int)x->r->nphases;
    if (x->o->on_event)
        x->o->on_event(ev, x->o->event_payload);
}

static void xlog(rx *x, const char *level, const char *fmt, ...) PB_PRINTF(3, 4);

static void xlog(rx *x, const char *level, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    pb_run_event ev = {0};
    ev.kind = PB_EV_LOG;
    ev.level = level;
    ev.text = text;
    emit(x, &ev);
}

static int cancelled(rx *x)
{
    return x->o->cancelled && x->o->cancelled(x->o->cancel_payload);
}

static int chan_cancel(void *p)
{
    return cancelled(p);
}

static void progress(rx *x, const char *phase, uint64_t done, uint64_t total, const char *path)
{
    pb_progress p = {phase, done, total, 0, 0, path};
    pb_run_event ev = {0};
    ev.kind = PB_EV_PROGRESS;
    ev.progress = &p;
    emit(x, &ev);
}

typedef struct xfer {
    rx *x;
    const char *what;
} xfer;

static int on_xfer(uint64_t done, uint64_t total, void *payload)
{
    xfer *t = payload;
    progress(t->x, t->what, done, total, NULL);
    return cancelled(t->x);
}

static int on_fp_progress(const pb_progress *p, void *payload)
{
    rx *x = payload;
    pb_run_event ev = {0};
    ev.kind = PB_EV_PROGRESS;
    ev.progress = p;
    emit(x, &ev);
    return cancelled(x);
}

/* ---------------------------------------------------------------------------------------- */
/* Phases                                                                                     */

static void fault_point(const char *name)
{
    const char *f = getenv("PLEXBURST_FAULT");
    if (!f || strncmp(f, "kill:", 5) != 0)
        return;
    f += 5;
    size_t n = strlen(name);
    if (strlen(f) != n)
        return;
    for (size_t i = 0; i < n; i++) {
        char a = name[i] == ' ' ? '_' : name[i], b = f[i] == ' ' ? '_' : f[i];
        if ((a | 0x20) != (b | 0x20))
            return;
    }
    raise(SIGKILL);
}

static void tally(rx *x)
{
    x->r->ms.total = pb_run__now_ms() - x->t0;
}

static void phase_begin(rx *x, const char *name)
{
    pb_run_result *r = x->r;
    if (r->nphases < PB_RUN_MAX_PHASES) {
        snprintf(r->phases[r->nphases].name, sizeof(r->phases[0].name), "%s", name);
        r->nphases++;
    }
    x->phase_name = name;
    x->pt0 = pb_run__now_ms();
    pb_run_event ev = {0};
    ev.kind = PB_EV_PHASE;
    ev.name = name;
    emit(x, &ev);
    pb_error e = PB_ERROR_INIT;
    pb_run__record(x->state, r, "running", &e);
    fault_point(name);
}

static int phase_end(rx *x, int rc)
{
    pb_run_result *r = x->r;
    double ms = pb_run__now_ms() - x->pt0;
    if (r->nphases) {
        r->phases[r->nphases - 1].ok = rc >= 0;
        r->phases[r->nphases - 1].ms = ms;
    }
    if (rc < 0 && !r->failed_phase) {
        r->failed_phase = (int)r->nphases;
        snprintf(r->failed_phase_name, sizeof(r->failed_phase_name), "%s", x->phase_name);
    }
    tally(x);
    pb_run_event ev = {0};
    ev.kind = PB_EV_PHASE_END;
    ev.name = x->phase_name;
    ev.ok = rc >= 0;
    ev.ms = ms;
    emit(x, &ev);
    return rc < 0 ? rc : 0;
}

/* A cancellation is honoured between phases (and inside the transfers and the agent's steps,
 * through the hooks); an APPLY that started runs to its end, and FINALIZE after it. */
static int may_start(rx *x, const char *name)
{
    if (strcmp(name, "FINALIZE") != 0 && cancelled(x))
        return pb_error_set(x->err, PB_ECANCELLED, "cancelled (Ctrl-C) before %s", name);
    return 0;
}

#define PHASE(x, name, call)                                                                       \
    do {                                                                                           \
        phase_begin((x), (name));                                                                  \
        int phase_rc_ = may_start((x), (name));                                                    \
        if (phase_rc_ == 0)                                                                        \
            phase_rc_ = (call);                                                                    \
        if ((error = phase_end((x), phase_rc_)) < 0)                                               \
            goto done;                                                                             \
    } while (0)

/* ---------------------------------------------------------------------------------------- */
/* current.json: the run in flight                                                           */

static int cur_write(rx *x, const char *state, pb_error *err)
{
    char path[PATH_MAX + 64], sm[33], sb[33], tm[33] = "", tb[33] = "";
    snprintf(path, sizeof(path), "%s/current.json", x->sync);
    pb_run__hex16(sm, x->snap_ids.main);
    pb_run__hex16(sb, x->snap_ids.blobs);
    if (x->bundle_name[0]) {
        pb_run__hex16(tm, x->binfo.target_main);
        pb_run__hex16(tb, x->binfo.target_blobs);
    }
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:I, s:s, s:{s:s, s:s?}, s:b, s:s, s:s, s:s, s:b}", "run_id", x->run_id,
        "mode", x->r->mode_name, "state", state, "pid", (json_int_t)getpid(), "store", x->store_url,
        "snapshot", "main", sm, "blobs", x->has_blobs ? sb : NULL, "has_blobs", x->has_blobs,
        "bundle", x->bundle_name, "target_main", tm, "target_blobs", tb, "next_ok", x->next_ok);
    if (!o)
        return pb_error_set(err, PB_ENOMEM, "out of memory");
    json_object_set_new(o, "bundle_xxh3", json_string(x->bundle_xxh3));
    int rc = pb_run__write_json(path, o, err);
    json_decref(o);
    return rc;
}

static void cur_clear(rx *x)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/current.json", x->sync);
    unlink(path);
}

static void set_work_paths(rx *x)
{
    snprintf(x->work, sizeof(x->work), "%s/work/%s", x->sync, x->run_id);
    snprintf(x->manifest, sizeof(x->manifest), "%s/home.manifest", x->work);
    snprintf(x->snap_main, sizeof(x->snap_main), "%s/snapshot.db", x->work);
    snprintf(x->snap_blobs, sizeof(x->snap_blobs), "%s/snapshot.blobs.db", x->work);
    snprintf(x->list, sizeof(x->list), "%s/list", x->work);
    snprintf(x->answer, sizeof(x->answer), "%s/answer", x->work);
    snprintf(x->bundle, sizeof(x->bundle), "%s/bundle.pbb", x->work);
    snprintf(x->cs_main, sizeof(x->cs_main), "%s/bundle.main.changeset", x->work);
    snprintf(x->cs_blobs, sizeof(x->cs_blobs), "%s/bundle.blobs.changeset", x->work);
    snprintf(x->next_main, sizeof(x->next_main), "%s/next.db", x->work);
    snprintf(x->next_blobs, sizeof(x->next_blobs), "%s/next.blobs.db", x->work);
}

/* ---------------------------------------------------------------------------------------- */
/* The agent                                                                                  */

static int on_other(const pb_frame *f, void *payload, pb_error *err);
static int send_prepare(rx *x, const char *mode);

/* Reads frames until the step's RESULT: LOG and PROGRESS become events; an ERROR becomes the
 * error (need_full, when given, gets its flag). */
static int await_result(rx *x, const char *step, json_t **res, int *need_full)
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
        case PB_FRAME_LOG:
        case PB_FRAME_PROGRESS:
            if ((error = on_other(&f, x, x->err)) < 0)
                return error;
            continue;
        case PB_FRAME_RESULT:
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
                                pb_frame_type_name(f.type), step);
        }
    }
}

static int on_other(const pb_frame *f, void *payload, pb_error *err)
{
    rx *x = payload;
    json_t *o = NULL;
    int error = pb_frame_json(&o, f, err);
    if (error < 0)
        return error;
    if (f->type == PB_FRAME_LOG) {
        const char *lvl = json_string_value(json_object_get(o, "level"));
        const char *text = json_string_value(json_object_get(o, "text"));
        pb_run_event ev = {0};
        ev.kind = PB_EV_LOG;
        ev.level = lvl && strcmp(lvl, "runner") == 0 ? "runner" : "agent";
        ev.text = text ? text : "";
        emit(x, &ev);
    } else if (f->type == PB_FRAME_PROGRESS) {
        const char *what = json_string_value(json_object_get(o, "what"));
        char phase[48];
        snprintf(phase, sizeof(phase), "cloud %s", what ? what : "work");
        progress(x, phase, (uint64_t)json_integer_value(json_object_get(o, "done")),
                 (uint64_t)json_integer_value(json_object_get(o, "total")), NULL);
    } else {
        error =
            pb_error_set(err, PB_ECORRUPT, "protocol: unexpected %s", pb_frame_type_name(f->type));
    }
    json_decref(o);
    return error;
}

/* `--cloud ssh://...` (transfer/ssh.h, docs/ssh.md): configuration, log lines. */
static const char *ssh_config(void *payload, const char *key)
{
    return pb_config_get(payload, key);
}

static void ssh_log(void *payload, const char *line)
{
    xlog(payload, "detail", "%s", line);
}

static int start_agent_ssh(rx *x)
{
    pb_ssh_agent_opts ao;
    pb_ssh_agent_opts_init(&ao);
    ao.url = x->ssh_url;
    ao.workdir = x->cloud_dir;
    ao.store = x->store_url;
    ao.local_exe = x->agent_prog;
    ao.get = ssh_config;
    ao.get_payload = x->cfg;
    ao.cancel = chan_cancel;
    ao.cancel_payload = x;
    ao.log = ssh_log;
    ao.log_payload = x;
    xlog(x, "info", "starting the agent over SSH: %s", x->ssh_url);
    int error = pb_ssh_agent_channel(&x->ch, &ao, x->err);
    if (error == 0)
        xlog(x, "detail", "host key %s; agent %s%s", ao.host_key, ao.install.path,
             ao.install.installed ? " (installed)" : "");
    return error;
}

static int start_agent_local(rx *x)
{
    int error;
    char *argv[] = {x->agent_prog, "agent",      "--workdir", x->cloud_dir,
                    "--store",     x->store_url, NULL};
    pb_spawn_options so = {PB_SPAWN_OPTIONS_VERSION, -1, NULL, 60000};
    if ((error = pb_run__mkdirs(x->cloud_dir, x->err)) < 0)
        return error;
    xlog(x, "info", "starting the agent: local cloud in %s", x->cloud_dir);
    return pb_channel_spawn(&x->ch, argv, &so, x->err);
}

static int start_agent(rx *x)
{
    int error = x->ssh_url[0] ? start_agent_ssh(x) : start_agent_local(x);
    if (error < 0)
        return error;
    pb_channel_set_cancel(x->ch, chan_cancel, x);
    if ((error = pb_frame_io_init(&x->io, x->ch, 0, x->err)) < 0)
        return error;
    x->io_ok = 1;
    json_t *peer = NULL;
    if ((error = pb_frame_hello(&x->io, "home", pb_version(), NULL, &peer, x->err)) < 0)
        return error;
    xlog(x, "detail", "agent plexburst %s, pid %lld, workdir %s",
         json_string_value(json_object_get(peer, "version")),
         (long long)json_integer_value(json_object_get(peer, "pid")),
         json_string_value(json_object_get(peer, "workdir")));
    json_decref(peer);
    return 0;
}

/* Reconnections of the agent's link per step (each one with pb_ssh_reconnect's own retries). */
#define PB_RUN_REJOIN_TRIES 3

/* After a dropped SSH link (PB_ENET) while the agent works: a new connection and a new agent
 * (pb_channel_ssh_reconnect: bounded retries with backoff), HELLO, PREPARE again (the agent
 * keeps the cloud DB of a run prepared there), and RUN again when `ran` (the runner finished:
 * its recorded status comes back). 0 when the conversation is back at the same step; else the
 * original error (not an SSH link, cancelled, too many tries) or the reconnection's. */
static int rejoin_agent(rx *x, int error, int ran)
{
    int tries = 0;
    while (error == PB_ENET && x->ssh_url[0] && x->ch && x->agent_mode && !cancelled(x) &&
           tries < PB_RUN_REJOIN_TRIES && x->rejoins < 4 * PB_RUN_REJOIN_TRIES) {
        tries++;
        x->rejoins++;
        xlog(x, "warn", "🔄 the link to the agent dropped during %s (%s): reconnecting (%d/%d)",
             x->phase_name ? x->phase_name : "the run", x->err->msg, tries, PB_RUN_REJOIN_TRIES);
        struct timespec ts = {tries, 0};
        nanosleep(&ts, NULL);
        *x->err = (pb_error)PB_ERROR_INIT;
        if (x->io_ok)
            pb_frame_io_dispose(&x->io);
        x->io_ok = 0;
        json_t *peer = NULL, *res = NULL;
        if ((error = pb_channel_ssh_reconnect(x->ch, x->err)) < 0)
            continue;
        pb_channel_set_cancel(x->ch, chan_cancel, x);
        if ((error = pb_frame_io_init(&x->io, x->ch, 0, x->err)) < 0)
            continue;
        x->io_ok = 1;
        if ((error = pb_frame_hello(&x->io, "home", pb_version(), NULL, &peer, x->err)) < 0)
            continue;
        xlog(x, "info", "🔄 reconnected: agent pid %lld; resuming run %s",
             (long long)json_integer_value(json_object_get(peer, "pid")), x->run_id);
        json_decref(peer);
        if ((error = send_prepare(x, x->agent_mode)) < 0 ||
            (error = await_result(x, "prepare", &res, NULL)) < 0)
            continue;
        json_decref(res);
        res = NULL;
        if (ran) {
            json_t *o = json_pack("{s:s, s:s}", "runner", "command", "command", x->runner);
            error = o ? pb_frame_write_json(&x->io, PB_FRAME_RUN, o, x->err)
                      : pb_error_set(x->err, PB_ENOMEM, "out of memory");
            json_decref(o);
            if (error < 0 || (error = await_result(x, "the analysis", &res, NULL)) < 0)
                continue;
            json_decref(res);
        }
        xlog(x, "info", "🔄 run %s resumed at %s", x->run_id,
             x->phase_name ? x->phase_name : "the same step");
        return 0;
    }
    return error;
}

static void stop_agent(rx *x, int polite)
{
    if (!x->ch)
        return;
    if (polite && x->io_ok) {
        pb_error e = PB_ERROR_INIT;
        pb_frame f;
        if (pb_frame_write(&x->io, PB_FRAME_BYE, NULL, 0, &e) == 0) {
            while (pb_frame_read(&x->io, &f, &e) == 0 && f.type != PB_FRAME_EOF &&
                   f.type != PB_FRAME_BYE)
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

/* ---------------------------------------------------------------------------------------- */
/* Store helpers                                                                              */

static int put_file(rx *x, const char *name, const char *path, const char *what)
{
    xfer t = {x, what};
    return pb_store_put(x->store, name, path, on_xfer, &t, x->err);
}

static int get_file(rx *x, const char *name, const char *path, const char *what)
{
    xfer t = {x, what};
    uint64_t from = 0, got = 0;
    int error = pb_store_get_file(x->store, name, path, on_xfer, &t, &from, &got, x->err);
    if (!error && from)
        xlog(x, "info", "resumed the download of %s at %llu bytes", name, (unsigned long long)from);
    return error;
}

/* Deletes what a run left in the store (best effort). */
static void store_drop_run(rx *x, const char *run_id)
{
    char prefix[128];
    pb_error e = PB_ERROR_INIT;
    snprintf(prefix, sizeof(prefix), PB_ST_RUN_FMT, run_id);
    if (x->store)
        pb_store_del_prefix(x->store, prefix, &e);
}

typedef struct idlist {
    char ids[64][48];
    int64_t mtime[64];
    size_t n;
} idlist;

static int collect_ids(const char *name, const pb_store_info *st, void *payload)
{
    idlist *l = payload;
    const char *p = strchr(name, '/');
    if (!p)
        return 0;
    const char *q = strchr(p + 1, '/');
    if (!q || (size_t)(q - p - 1) >= sizeof(l->ids[0]))
        return 0;
    size_t n = (size_t)(q - p - 1);
    for (size_t i = 0; i < l->n; i++)
        if (strlen(l->ids[i]) == n && strncmp(l->ids[i], p + 1, n) == 0) {
            if (st->mtime_ns > l->mtime[i])
                l->mtime[i] = st->mtime_ns;
            return 0;
        }
    if (l->n < 64) {
        snprintf(l->ids[l->n], sizeof(l->ids[0]), "%.*s", (int)n, p + 1);
        l->mtime[l->n++] = st->mtime_ns;
    }
    return 0;
}

/* Keeps the newest runs and baselines (and always the one the home records). */
static void store_prune(rx *x)
{
    pb_error e = PB_ERROR_INIT;
    for (int pass = 0; pass < 2; pass++) {
        idlist *l = calloc(1, sizeof(*l));
        if (!l)
            return;
        const char *top = pass == 0 ? "runs/" : "baseline/";
        pb_store_list(x->store, top, collect_ids, l, &e);
        size_t keep = pass == 0 ? PB_ST_KEEP_RUNS : PB_ST_KEEP_BASELINES;
        for (size_t kept = 0; kept < l->n; kept++) {
            /* selection: move the newest to the front */
            size_t best = kept;
            for (size_t i = kept + 1; i < l->n; i++)
                if (l->mtime[i] > l->mtime[best])
                    best = i;
            char tid[48];
            int64_t tm = l->mtime[kept];
            memcpy(tid, l->ids[kept], sizeof(tid));
            memcpy(l->ids[kept], l->ids[best], sizeof(tid));
            l->mtime[kept] = l->mtime[best];
            memcpy(l->ids[best], tid, sizeof(tid));
            l->mtime[best] = tm;
        }
        for (size_t i = keep; i < l->n; i++) {
            if (pass == 1 && strcmp(l->ids[i], x->r->baseline_id) == 0)
                continue;
            if (pass == 0 && strcmp(l->ids[i], x->run_id) == 0)
                continue;
            char prefix[128];
            snprintf(prefix, sizeof(prefix), "%s%s/", top, l->ids[i]);
            pb_store_del_prefix(x->store, prefix, &e);
        }
        free(l);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* sync phases                                                                                */

static int read_home_baseline(rx *x)
{
    char path[PATH_MAX + 64], bmain[PATH_MAX + 64], bblobs[PATH_MAX + 64];
    json_t *o = NULL;
    pb_error e = PB_ERROR_INIT;
    x->have_base = 0;
    snprintf(path, sizeof(path), "%s/baseline.json", x->sync);
    snprintf(bmain, sizeof(bmain), "%s/" PB_HOME_BASE_MAIN, x->state);
    snprintf(bblobs, sizeof(bblobs), "%s/" PB_HOME_BASE_BLOBS, x->state);
    if (pb_run__read_json(&o, path, &e) != 0)
        return 0;
    const char *id = json_string_value(json_object_get(o, "id"));
    const char *m = json_string_value(json_object_get(o, "main"));
    const char *b = json_string_value(json_object_get(o, "blobs"));
    memset(&x->base_ids, 0, sizeof(x->base_ids));
    if (id && m && strlen(id) == 32 && pb_run__unhex16(x->base_ids.main, m) == 0 &&
        pb_run__exists(bmain) &&
        (!b || (pb_run__unhex16(x->base_ids.blobs, b) == 0 && pb_run__exists(bblobs)))) {
        x->base_ids.has_blobs = b != NULL;
        snprintf(x->base_id, sizeof(x->base_id), "%s", id);
        x->have_base = 1;
    }
    json_decref(o);
    return 0;
}

static int write_home_baseline(rx *x, const pb_baseline *ids)
{
    char path[PATH_MAX + 64], id[33], m[33], b[33];
    snprintf(path, sizeof(path), "%s/baseline.json", x->sync);
    pb_run__id_hex(id, ids);
    pb_run__hex16(m, ids->main);
    pb_run__hex16(b, ids->blobs);
    json_t *o = json_pack("{s:s, s:s, s:s?, s:s, s:I}", "id", id, "main", m, "blobs",
                          ids->has_blobs ? b : NULL, "run_id", x->r->run_id, "recorded",
                          (json_int_t)time(NULL));
    int rc = o ? pb_run__write_json(path, o, x->err) : pb_error_set(x->err, PB_ENOMEM, "oom");
    json_decref(o);
    if (!rc)
        snprintf(x->r->baseline_id, sizeof(x->r->baseline_id), "%s", id);
    return rc;
}

static void forget_home_baseline(rx *x)
{
    char p[PATH_MAX + 64];
    snprintf(p, sizeof(p), "%s/baseline.json", x->sync);
    unlink(p);
}

static int do_fingerprint(rx *x)
{
    pb_fingerprint_options fo = PB_FINGERPRINT_OPTIONS_INIT;
    pb_fingerprint_result *fr = calloc(1, sizeof(*fr));
    if (!fr)
        return pb_error_set(x->err, PB_ENOMEM, "out of memory");
    fo.state_dir = x->state;
    fo.manifest_path = x->manifest;
    fo.progress = on_fp_progress;
    fo.payload = x;
    int error = pb_fingerprint_run(fr, x->plex, &fo, x->err);
    if (!error)
        xlog(x, "info",
             "home tree: %llu files, %.1f MB; %llu hashed (%.1f MB), %llu from the cache",
             (unsigned long long)fr->files, fr->bytes / 1e6, (unsigned long long)fr->hashed,
             fr->hashed_bytes / 1e6, (unsigned long long)fr->cached);
    free(fr);
    return error;
}

static int do_snapshot(rx *x)
{
    int error;
    if ((error = pb_run__snapshot(x->main_db, x->snap_main, x->err)) < 0)
        return error;
    if (x->has_blobs && (error = pb_run__snapshot(x->blobs_db, x->snap_blobs, x->err)) < 0)
        return error;
    if ((error = pb_run__ids(&x->snap_ids, x->snap_main, x->has_blobs ? x->snap_blobs : NULL,
                             x->err)) < 0)
        return error;
    pb_run__id_hex(x->r->snapshot_id, &x->snap_ids);
    x->r->bytes.snapshot_raw =
        pb_run__fsize(x->snap_main) + (x->has_blobs ? pb_run__fsize(x->snap_blobs) : 0);
    xlog(x, "info", "snapshot of the live DB pair: %.1f MB, id %.16s",
         x->r->bytes.snapshot_raw / 1e6, x->r->snapshot_id);
    return 0;
}

static int upload_full(rx *x)
{
    int error;
    char zst[PATH_MAX + 200], name[256];
    uint64_t z = 0;
    snprintf(zst, sizeof(zst), "%s/upload.zst", x->work);
    const char *src[2] = {x->snap_main, x->snap_blobs};
    const char *obj[2] = {PB_ST_MAIN_DB, PB_ST_BLOBS_DB};
    for (int i = 0; i < 1 + x->has_blobs; i++) {
        if ((error = pb_run__zstd(src[i], zst, x->zlevel, &z, x->err)) < 0)
            return error;
        snprintf(name, sizeof(name), PB_ST_RUN_FMT "upload/%s", x->run_id, obj[i]);
        error = put_file(x, name, zst, "upload");
        unlink(zst);
        if (error < 0)
            return error;
        x->r->bytes.baseline_full_upload += z;
    }
    snprintf(x->r->upload_kind, sizeof(x->r->upload_kind), "full");
    xlog(x, "info", "uploaded the whole snapshot: %.2f MB zstd (%s)",
         x->r->bytes.baseline_full_upload / 1e6,
         x->r->full_upload_reason[0] ? x->r->full_upload_reason : "no baseline yet");
    return 0;
}

static int do_upload(rx *x)
{
    int error;
    read_home_baseline(x);
    if (x->have_base && x->base_ids.has_blobs != x->has_blobs) {
        snprintf(x->r->full_upload_reason, sizeof(x->r->full_upload_reason),
                 "the blobs DB appeared or went since the baseline");
        x->have_base = 0;
    }
    if (!x->have_base || x->o->full_upload) {
        if (x->o->full_upload && !x->r->full_upload_reason[0])
            snprintf(x->r->full_upload_reason, sizeof(x->r->full_upload_reason),
                     "asked for (--full-upload)");
        if (!x->have_base && !x->r->full_upload_reason[0])
            snprintf(x->r->full_upload_reason, sizeof(x->r->full_upload_reason),
                     "first run: no baseline recorded yet");
        if ((error = upload_full(x)) < 0)
            return error;
        return cur_write(x, "uploaded", x->err);
    }
    char bmain[PATH_MAX + 64], bblobs[PATH_MAX + 64], raw[PATH_MAX + 200], zst[PATH_MAX + 200];
    char name[256];
    snprintf(bmain, sizeof(bmain), "%s/" PB_HOME_BASE_MAIN, x->state);
    snprintf(bblobs, sizeof(bblobs), "%s/" PB_HOME_BASE_BLOBS, x->state);
    snprintf(raw, sizeof(raw), "%s/upload.changeset", x->work);
    snprintf(zst, sizeof(zst), "%s/upload.changeset.zst", x->work);
    const char *base[2] = {bmain, bblobs}, *snap[2] = {x->snap_main, x->snap_blobs};
    const char *obj[2] = {PB_ST_MAIN_CS, PB_ST_BLOBS_CS};
    for (int i = 0; i < 1 + x->has_blobs; i++) {
        uint64_t bytes = 0, records = 0, z = 0;
        if ((error = pb_run__diff(&bytes, &records, base[i], snap[i], raw, x->err)) < 0)
            return error;
        if ((error = pb_run__zstd(raw, zst, x->zlevel, &z, x->err)) < 0)
            return error;
        unlink(raw);
        snprintf(name, sizeof(name), PB_ST_RUN_FMT "upload/%s", x->run_id, obj[i]);
        error = put_file(x, name, zst, "upload");
        unlink(zst);
        if (error < 0)
            return error;
        x->r->bytes.changeset_raw += bytes;
        x->r->bytes.changeset_up += z;
        x->r->up.changeset_rows += records;
    }
    snprintf(x->r->upload_kind, sizeof(x->r->upload_kind), "changeset");
    xlog(x, "info",
         "uploaded the row changeset against baseline %.16s: %llu rows, %llu bytes "
         "(%llu raw)",
         x->base_id, (unsigned long long)x->r->up.changeset_rows,
         (unsigned long long)x->r->bytes.changeset_up,
         (unsigned long long)x->r->bytes.changeset_raw);
    return cur_write(x, "uploaded", x->err);
}

static int send_prepare(rx *x, const char *mode)
{
    int error;
    char m[33], b[33], um[256], ub[256];
    pb_run__hex16(m, x->snap_ids.main);
    pb_run__hex16(b, x->snap_ids.blobs);
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
    /* a remote agent gets the home's S3 settings here (sshd forwards no environment; never on
     * its command line); a local one inherits them */
    if (x->ssh_url[0] && strncmp(x->store_url, "s3://", 5) == 0) {
        json_t *env = json_object();
        for (const char *const *k = pb_store_s3_settings; env && *k; k++) {
            const char *v = getenv(*k);
            if (v && *v)
                json_object_set_new(env, *k, json_string(v));
        }
        if (!env) {
            json_decref(o);
            return pb_error_set(x->err, PB_ENOMEM, "out of memory");
        }
        json_object_set_new(o, "s3_env", env);
    }
    error = pb_frame_write_json(&x->io, PB_FRAME_PREPARE, o, x->err);
    json_decref(o);
    return error;
}

static int do_inject(rx *x)
{
    int error, need_full = 0;
    json_t *res = NULL;
    if ((error = start_agent(x)) < 0)
        return error;
    x->agent_mode = "sync";
    if ((error = send_prepare(x, "sync")) < 0 ||
        (error = await_result(x, "prepare", &res, &need_full)) < 0) {
        if ((error = rejoin_agent(x, error, 0)) < 0)
            return error;
        res = json_pack("{s:s}", "rebuilt", "before the reconnection");
    }
    if (need_full) {
        xlog(x, "warn",
             "the cloud cannot rebuild the snapshot from the changeset (%s): "
             "uploading it whole",
             x->r->full_upload_reason);
        if ((error = upload_full(x)) < 0 || (error = send_prepare(x, "sync")) < 0 ||
            (error = await_result(x, "prepare", &res, NULL)) < 0)
            return error;
        /* the home's baseline copy is not the store's: rebuild it from this run on */
        forget_home_baseline(x);
    }
    xlog(x, "info", "the cloud rebuilt the home snapshot (%s) and injected the DB pair",
         json_string_value(json_object_get(res, "rebuilt")));
    json_decref(res);
    return cur_write(x, "injected", x->err);
}

static int do_analysis(rx *x)
{
    int error;
    json_t *res = NULL;
    x->r->runner_status = -1;
    for (;;) {
        json_t *o = json_pack("{s:s, s:s}", "runner", "command", "command", x->runner);
        if (!o)
            return pb_error_set(x->err, PB_ENOMEM, "out of memory");
        error = pb_frame_write_json(&x->io, PB_FRAME_RUN, o, x->err);
        json_decref(o);
        if (error == 0 && (error = await_result(x, "the analysis", &res, NULL)) == 0)
            break;
        /* a dropped link: a new agent re-attaches to the runner (RUN again) */
        if ((error = rejoin_agent(x, error, 0)) < 0)
            break;
    }
    if (error < 0) {
        if (strstr(x->err->msg, "runner exited with status")) {
            const char *s = strstr(x->err->msg, "status ");
            x->r->runner_status = s ? atoi(s + 7) : -1;
        }
        return error;
    }
    x->r->runner_status = (int)json_integer_value(json_object_get(res, "status"));
    xlog(x, "info", "the runner finished in %.1f s",
         json_number_value(json_object_get(res, "ms")) / 1000);
    json_decref(res);
    return 0;
}

static int send_answer_progress(uint64_t done, uint64_t total, void *payload)
{
    rx *x = payload;
    progress(x, "answer", done, total, NULL);
    return cancelled(x);
}

static int export_once(rx *x, int bootstrap);

/* The export, again from LIST after a dropped link (the agent's LIST and BUILD are
 * idempotent: the bundle and the baseline are stored again under the same names). */
static int do_export(rx *x, int bootstrap)
{
    int error;
    while ((error = export_once(x, bootstrap)) == PB_ENET)
        if ((error = rejoin_agent(x, error, 1)) < 0)
            break;
    return error;
}

static int export_once(rx *x, int bootstrap)
{
    int error;
    json_t *end = NULL;
    char zst[PATH_MAX + 200];
    snprintf(zst, sizeof(zst), "%s.zst", x->list);
    /* (a) the cloud's list (zstd on the wire) */
    if ((error = pb_frame_write(&x->io, PB_FRAME_LIST, NULL, 0, x->err)) < 0 ||
        (error = pb_frame_recv_file(&x->io, PB_FRAME_LIST_DATA, PB_FRAME_LIST_END, zst, &end,
                                    on_other, x, x->err)) < 0)
        return error;
    x->list_bytes = pb_run__fsize(zst);
    x->r->bytes.list_down = x->list_bytes;
    const char *enc = json_string_value(json_object_get(end, "encoding"));
    if (enc && strcmp(enc, "zstd") == 0)
        error = pb_run__unzstd(zst, x->list, x->err);
    else if (!enc)
        error = rename(zst, x->list) == 0 ? 0 : pb_error_errno(x->err, "cannot rename %s", zst);
    else
        error = pb_error_set(x->err, PB_ECORRUPT, "LIST_END: unknown encoding '%s'", enc);
    unlink(zst);
    if (error < 0) {
        json_decref(end);
        return error;
    }
    /* a compact list: the home keeps only the paths it lacks or holds in another version, and
     * the answer names just those (a manifest list is answered as it is) */
    const char *fmt = json_string_value(json_object_get(end, "format"));
    const char *answer_list = x->list;
    char wanted_path[PATH_MAX + 200];
    uint64_t listed = 0, wanted = 0;
    if (fmt && strcmp(fmt, "compact1") == 0) {
        snprintf(wanted_path, sizeof(wanted_path), "%s.wanted", x->list);
        if ((error = pb_run__list_wanted(&listed, &wanted, x->list, x->manifest, wanted_path,
                                         x->err)) < 0) {
            json_decref(end);
            return error;
        }
        answer_list = wanted_path;
    } else if (fmt) {
        json_decref(end);
        return pb_error_set(x->err, PB_ECORRUPT, "LIST_END: unknown list format '%s'", fmt);
    }
    xlog(x, "info",
         "the cloud lists %lld files (%llu bytes of list); home lacks or holds another "
         "version of %llu",
         (long long)json_integer_value(json_object_get(end, "files")),
         (unsigned long long)x->list_bytes, (unsigned long long)wanted);
    json_decref(end);
    /* (b) the home's answer */
    pb_answer_options ao;
    memset(&ao, 0, sizeof(ao));
    ao.version = PB_ANSWER_OPTIONS_VERSION;
    ao.home_manifest = x->manifest;
    ao.state_dir = x->state;
    pb_export_stats ast;
    memset(&ast, 0, sizeof(ast));
    if ((error = pb_export_answer(&ast, x->plex, answer_list, x->answer, &ao, x->err)) < 0)
        return error;
    xlog(x, "info",
         "home answer: %llu files wanted (%llu bytes of rsync signatures for the ones home holds "
         "in another version)",
         (unsigned long long)ast.answers, (unsigned long long)ast.sig_bytes);
    /* (c) the bundle */
    json_t *o = json_pack("{s:i}", "zstd_level", x->zlevel);
    error = o ? pb_frame_write_json(&x->io, PB_FRAME_BUILD, o, x->err)
              : pb_error_set(x->err, PB_ENOMEM, "out of memory");
    json_decref(o);
    snprintf(zst, sizeof(zst), "%s.zst", x->answer);
    json_t *extra = json_pack("{s:s, s:I}", "encoding", "zstd", "raw_bytes",
                              (json_int_t)pb_run__fsize(x->answer));
    if (error < 0 ||
        (error = pb_run__zstd(x->answer, zst, x->zlevel < 12 ? x->zlevel : 12, NULL, x->err)) < 0 ||
        (error = pb_frame_send_file(&x->io, PB_FRAME_ANSWER_DATA, PB_FRAME_ANSWER_END, zst, extra,
                                    send_answer_progress, x, x->err)) < 0) {
        json_decref(extra);
        unlink(zst);
        return error;
    }
    json_decref(extra);
    x->answer_bytes = pb_run__fsize(zst);
    unlink(zst);
    x->r->bytes.answer_up = x->answer_bytes;
    if ((error = await_result(x, "the bundle build", &x->build_res, NULL)) < 0)
        return error;
    json_t *b = json_object_get(x->build_res, "bundle");
    json_t *e = json_object_get(x->build_res, "export");
    snprintf(x->bundle_xxh3, sizeof(x->bundle_xxh3), "%s",
             json_string_value(json_object_get(b, "xxh3"))
                 ? json_string_value(json_object_get(b, "xxh3"))
                 : "");
    snprintf(x->bundle_name, sizeof(x->bundle_name), "%s",
             json_string_value(json_object_get(b, "name"))
                 ? json_string_value(json_object_get(b, "name"))
                 : "");
    pb_export_stats *s = &x->r->exported;
    s->listed = (uint64_t)json_integer_value(json_object_get(e, "listed"));
    s->files_new = (uint64_t)json_integer_value(json_object_get(e, "files_new"));
    s->files_delta = (uint64_t)json_integer_value(json_object_get(e, "files_delta"));
    s->files_link = (uint64_t)json_integer_value(json_object_get(e, "files_link"));
    s->files_whole_changed =
        (uint64_t)json_integer_value(json_object_get(e, "files_whole_changed"));
    s->files_unchanged = (uint64_t)json_integer_value(json_object_get(e, "files_unchanged"));
    s->answers = (uint64_t)json_integer_value(json_object_get(e, "answers"));
    s->sig_bytes = (uint64_t)json_integer_value(json_object_get(e, "sig_bytes"));
    s->content_bytes = (uint64_t)json_integer_value(json_object_get(e, "content_bytes"));
    s->delta_bytes = (uint64_t)json_integer_value(json_object_get(e, "delta_bytes"));
    s->cs_main_bytes = (uint64_t)json_integer_value(json_object_get(e, "cs_main_bytes"));
    s->cs_blobs_bytes = (uint64_t)json_integer_value(json_object_get(e, "cs_blobs_bytes"));
    s->rows_inserted = (uint64_t)json_integer_value(json_object_get(e, "rows_inserted"));
    s->rows_updated = (uint64_t)json_integer_value(json_object_get(e, "rows_updated"));
    s->rows_deleted = (uint64_t)json_integer_value(json_object_get(e, "rows_deleted"));
    s->bundle_bytes = (uint64_t)json_integer_value(json_object_get(b, "bytes"));
    s->ms = json_number_value(json_object_get(e, "ms"));
    xlog(x, "info",
         "the cloud stored a bundle of %.2f MB: %llu rows changed, %llu new files, "
         "%llu file deltas",
         s->bundle_bytes / 1e6,
         (unsigned long long)(s->rows_inserted + s->rows_updated + s->rows_deleted),
         (unsigned long long)s->files_new, (unsigned long long)s->files_delta);
    stop_agent(x, 1);
    if (!bootstrap)
        return cur_write(x, "bundle_ready", x->err);
    return 0;
}

/* Downloads the bundle (resumably) into x->bundle. The solid form is turned back into a bundle
 * (bundle/solid.c) in one pass that also checks the agent's checksum of the download and is the
 * bundle's one verify pass (x->binfo filled, changesets extracted); verify_bundle then only
 * verifies a bundle that did not come that way (a plain bundle, or one left by a former run). */
static int fetch_bundle(rx *x)
{
    int error;
    size_t n = strlen(x->bundle_name), sl = strlen(PB_ST_BUNDLE_SOLID);
    memset(&x->binfo, 0, sizeof(x->binfo)); /* nothing verified yet */
    if (pb_run__exists(x->bundle))
        return 0;
    if (n < sl || strcmp(x->bundle_name + n - sl, PB_ST_BUNDLE_SOLID) != 0) {
        if ((error = get_file(x, x->bundle_name, x->bundle, "download")) < 0)
            return error;
        x->r->bytes.bundle_down += pb_run__fsize(x->bundle);
        return 0;
    }
    char solid[PATH_MAX + 200];
    snprintf(solid, sizeof(solid), "%s.solid", x->bundle);
    if ((error = get_file(x, x->bundle_name, solid, "download")) < 0)
        return error;
    x->r->bytes.bundle_down += pb_run__fsize(solid);
    pb_bundle_verify_options vo;
    pb_bundle_verify_options_init(&vo);
    vo.extract_main = x->cs_main;
    vo.extract_blobs = x->cs_blobs;
    vo.plex_dir = x->plex;
    error = pb_solid_decode(solid, x->bundle_xxh3, x->bundle, 1, &vo, &x->binfo, x->err);
    unlink(solid);
    if (error < 0)
        memset(&x->binfo, 0, sizeof(x->binfo));
    return error;
}

/* The one verify pass at home (unless fetch_bundle's decode was it): the bundle's records,
 * checksums and changesets (extracted for the next baseline and the apply) and its paths against
 * the data dir; the apply then trusts it (run_apply). With make_next, reproduces the next
 * baseline copy. */
static int verify_bundle(rx *x, int make_next)
{
    int error;
    if (x->binfo.bytes == 0 || x->binfo.bytes != pb_run__fsize(x->bundle)) {
        pb_bundle_verify_options vo;
        pb_bundle_verify_options_init(&vo);
        vo.extract_main = x->cs_main;
        vo.extract_blobs = x->cs_blobs;
        vo.plex_dir = x->plex;
        if ((error = pb_bundle_verify(&x->binfo, x->bundle, &vo, x->err)) < 0)
            return error;
    }
    xlog(x, "info", "bundle verified: %llu records, %.2f MB of content",
         (unsigned long long)x->binfo.records, x->binfo.content_bytes / 1e6);
    if (!make_next)
        return 0;
    /* the next baseline = the snapshot + the bundle's rows, exactly what the cloud recorded */
    x->next_ok = 0;
    pb_error e = PB_ERROR_INIT;
    pb_baseline got;
    if (pb_run__copy(x->snap_main, x->next_main, &e) == 0 &&
        (!x->has_blobs || pb_run__copy(x->snap_blobs, x->next_blobs, &e) == 0) &&
        (!x->binfo.has_cs_main || pb_run__apply_changeset(x->next_main, x->cs_main, &e) == 0) &&
        (!x->has_blobs || !x->binfo.has_cs_blobs ||
         pb_run__apply_changeset(x->next_blobs, x->cs_blobs, &e) == 0) &&
        pb_run__ids(&got, x->next_main, x->has_blobs ? x->next_blobs : NULL, &e) == 0) {
        if (memcmp(got.main, x->binfo.target_main, 16) == 0 &&
            (!x->has_blobs || memcmp(got.blobs, x->binfo.target_blobs, 16) == 0))
            x->next_ok = 1;
        else
            pb_error_set(&e, PB_ECONFLICT, "its checksum differs from the cloud's");
    }
    if (!x->next_ok)
        xlog(x, "warn",
             "could not reproduce the cloud's baseline at home (%s): the next sync "
             "uploads the whole snapshot",
             e.msg);
    return 0;
}

static int do_download(rx *x, int resumed)
{
    int error;
    if ((error = fetch_bundle(x)) < 0)
        return error;
    if ((error = verify_bundle(x, 1)) < 0)
        return error;
    (void)resumed;
    return cur_write(x, "downloaded", x->err);
}

static void on_apply_phase(int phase, void *payload)
{
    rx *x = payload;
    xlog(x, "detail", "apply: %s", pb_apply_phase_name(phase));
    if (phase == PB_APPLY_STAGE && x->r->apply.have_report) {
        pb_run_event ev = {0};
        ev.kind = PB_EV_REPORT;
        emit(x, &ev);
    }
}

/* Applies the bundle verify_bundle verified (handed over, not verified again) to a home whose
 * DB pair derives from `base` (the snapshot's ids) and `base_main`/`base_blobs` (its copy). */
static int run_apply(rx *x, const char *base_main, const char *base_blobs, int online, int dry_run)
{
    pb_apply_options ao;
    pb_bundle_verified v; /* a view of x's verify_bundle results (nothing to dispose) */
    memset(&v, 0, sizeof(v));
    v.path = x->bundle;
    v.size = x->binfo.bytes;
    memcpy(v.checksum, x->binfo.checksum, 16);
    v.info = x->binfo;
    v.cs_main = x->binfo.has_cs_main ? x->cs_main : NULL;
    v.cs_blobs = x->binfo.has_cs_blobs ? x->cs_blobs : NULL;
    v.plex_dir = x->plex;
    pb_apply_options_init(&ao);
    ao.plex_dir = x->plex;
    ao.bundle = x->bundle;
    ao.verified = &v;
    ao.base = &x->snap_ids;
    ao.state_dir = x->state;
    ao.dry_run = dry_run;
    ao.online = online;
    ao.plex_stop_cmd = online ? NULL : x->stop_cmd;
    ao.plex_start_cmd = online ? NULL : x->start_cmd;
    ao.max_delete_pct = x->max_del;
    ao.base_db = base_main;
    ao.base_blobs = x->has_blobs ? base_blobs : NULL;
    ao.on_phase = on_apply_phase;
    ao.phase_payload = x;
    x->r->have_apply = 1;
    int error = pb_apply(&x->r->apply, &ao, x->err);
    x->r->ms.downtime += x->r->apply.ms.downtime;
    if (dry_run && x->r->apply.have_report) {
        pb_run_event ev = {0};
        ev.kind = PB_EV_REPORT;
        emit(x, &ev);
    }
    return error;
}

static int do_apply(rx *x)
{
    int error;
    /* the bundle is based on the snapshot: pb_apply takes its ids (ao.base), the baseline record
     * is left alone (an interrupted dry run is rolled back, never resumed) */
    if ((error = cur_write(x, x->o->dry_run ? "dry_run" : "applying", x->err)) < 0)
        return error;
    fault_point("after_record");
    error = run_apply(x, x->snap_main, x->snap_blobs, x->online, x->o->dry_run);
    if (error < 0)
        return error;
    if (x->o->dry_run) {
        xlog(x, "info", "dry run: the bundle was checked and the report made; nothing applied");
        return 0;
    }
    const pb_apply_result *a = &x->r->apply;
    xlog(x, "info",
         "applied: %llu rows inserted, %llu updated, %llu deleted; %llu files new, "
         "%llu patched; Plex down %.1f s",
         (unsigned long long)a->rows.inserted, (unsigned long long)a->rows.updated,
         (unsigned long long)a->rows.deleted, (unsigned long long)a->files_new,
         (unsigned long long)a->files_patched, a->ms.downtime / 1000);
    fault_point("after_apply");
    return cur_write(x, "applied", x->err);
}

static int do_finalize(rx *x, int dry_run)
{
    int error = 0;
    char bmain[PATH_MAX + 64], bblobs[PATH_MAX + 64];
    snprintf(bmain, sizeof(bmain), "%s/" PB_HOME_BASE_MAIN, x->state);
    snprintf(bblobs, sizeof(bblobs), "%s/" PB_HOME_BASE_BLOBS, x->state);
    if (!dry_run) {
        pb_baseline target;
        memset(&target, 0, sizeof(target));
        memcpy(target.main, x->binfo.target_main, 16);
        memcpy(target.blobs, x->binfo.target_blobs, 16);
        target.has_blobs = x->has_blobs;
        if (x->next_ok) {
            forget_home_baseline(x); /* never a record naming files being replaced */
            if (rename(x->next_main, bmain) != 0)
                return pb_error_errno(x->err, "cannot install the baseline copy %s", bmain);
            if (x->has_blobs && rename(x->next_blobs, bblobs) != 0)
                return pb_error_errno(x->err, "cannot install the baseline copy %s", bblobs);
            if (!x->has_blobs)
                unlink(bblobs);
            if ((error = write_home_baseline(x, &target)) < 0)
                return error;
            xlog(x, "info", "baseline %.16s recorded on both sides", x->r->baseline_id);
        } else {
            forget_home_baseline(x);
            unlink(bmain);
            unlink(bblobs);
        }
        store_prune(x);
    }
    cur_clear(x);
    if (!x->o->keep_work)
        pb_run__rmtree(x->work);
    pb_run__prune_records(x->state, 30);
    return error;
}

/* RECOVER: the apply journal first, then an interrupted run. Sets *resume when the interrupted
 * run's bundle is ready to be applied (x then describes that run). */
static int do_recover(rx *x, int *resume)
{
    int error;
    pb_recover_result rr;
    *resume = 0;
    memset(&rr, 0, sizeof(rr));
    if ((error = pb_apply_recover_ex(&rr, x->plex, x->state, x->err)) < 0)
        return error;
    if (rr.action != PB_RECOVER_NONE)
        xlog(x, "warn", "an interrupted apply (run %s) was %s: %s", rr.run_id,
             rr.action == PB_RECOVER_ROLLED_BACK ? "rolled back" : "completed", rr.detail);
    char path[PATH_MAX + 64];
    json_t *c = NULL;
    pb_error e = PB_ERROR_INIT;
    snprintf(path, sizeof(path), "%s/current.json", x->sync);
    if (pb_run__read_json(&c, path, &e) != 0) {
        xlog(x, "info", "nothing to recover");
        return 0;
    }
    const char *old = json_string_value(json_object_get(c, "run_id"));
    const char *st = json_string_value(json_object_get(c, "state"));
    const char *mode = json_string_value(json_object_get(c, "mode"));
    /* we hold the run lock: whatever current.json names was interrupted */
    snprintf(x->r->resumed_run, sizeof(x->r->resumed_run), "%s", old ? old : "");
    int ready = st && mode && strcmp(mode, "sync") == 0 &&
                (!strcmp(st, "bundle_ready") || !strcmp(st, "downloaded") ||
                 !strcmp(st, "applying") || !strcmp(st, "applied"));
    snprintf(x->run_id, sizeof(x->run_id), "%s", old ? old : "");
    set_work_paths(x);
    const char *sm = json_string_value(json_object_get(json_object_get(c, "snapshot"), "main"));
    const char *sb = json_string_value(json_object_get(json_object_get(c, "snapshot"), "blobs"));
    const char *bn = json_string_value(json_object_get(c, "bundle"));
    const char *bx = json_string_value(json_object_get(c, "bundle_xxh3"));
    snprintf(x->bundle_xxh3, sizeof(x->bundle_xxh3), "%s", bx ? bx : "");
    const char *su = json_string_value(json_object_get(c, "store"));
    memset(&x->snap_ids, 0, sizeof(x->snap_ids));
    if (ready && (!sm || pb_run__unhex16(x->snap_ids.main, sm) != 0 || !bn || !*bn ||
                  !pb_run__exists(x->snap_main) ||
                  (x->has_blobs && (!sb || !pb_run__exists(x->snap_blobs)))))
        ready = 0;
    if (sb)
        pb_run__unhex16(x->snap_ids.blobs, sb);
    x->snap_ids.has_blobs = x->has_blobs;
    if (ready) {
        snprintf(x->bundle_name, sizeof(x->bundle_name), "%s", bn);
        if (su && strcmp(su, x->store_url) != 0)
            xlog(x, "warn", "the interrupted run used the store %s", su);
        snprintf(x->r->resume_action, sizeof(x->r->resume_action), "resumed");
        xlog(x, "warn", "run %s was interrupted (%s) with its bundle stored: completing it", old,
             st);
        *resume = 1;
    } else {
        snprintf(x->r->resume_action, sizeof(x->r->resume_action), "rolled_back");
        xlog(x, "warn",
             "run %s was interrupted (%s) before its bundle was ready: rolled back, "
             "home unchanged",
             old ? old : "?", st ? st : "?");
        store_drop_run(x, x->run_id);
        pb_run__rmtree(x->work);
        cur_clear(x);
        /* the apply record follows the home's own baseline again */
        read_home_baseline(x);
        if (x->have_base)
            pb_baseline_write(x->state, &x->base_ids, &e);
    }
    json_decref(c);
    return 0;
}

/* A fresh work dir for this run (whatever older runs left goes) and its current.json. */
static int begin_work(rx *x)
{
    char wroot[PATH_MAX + 32];
    snprintf(x->run_id, sizeof(x->run_id), "%s", x->r->run_id);
    snprintf(wroot, sizeof(wroot), "%s/work", x->sync);
    pb_run__rmtree(wroot);
    set_work_paths(x);
    int error = pb_run__mkdirs(x->work, x->err);
    return error < 0 ? error : cur_write(x, "started", x->err);
}

/* Completes an interrupted sync whose bundle is stored. */
static int resume_sync(rx *x)
{
    int error = 0;
    snprintf(x->r->mode_name, sizeof(x->r->mode_name), "resume");
    pb_baseline rec;
    pb_error e = PB_ERROR_INIT;
    PHASE(x, "DOWNLOAD", do_download(x, 1));
    /* was it applied already (the journal rolled it forward, or it ended before FINALIZE)? */
    if (pb_baseline_read(&rec, x->state, &e) == 0 &&
        memcmp(rec.main, x->binfo.target_main, 16) == 0 &&
        memcmp(rec.main, x->snap_ids.main, 16) != 0) {
        xlog(x, "info", "the bundle of run %s was applied before the interruption", x->run_id);
    } else {
        PHASE(x, "APPLY", do_apply(x));
    }
    PHASE(x, "FINALIZE", do_finalize(x, 0));
done:
    return error;
}

static int run_sync(rx *x)
{
    int error = 0, resume = 0;
    PHASE(x, "RECOVER", do_recover(x, &resume));
    if (resume)
        return resume_sync(x);
    if ((error = begin_work(x)) < 0)
        return error;
    PHASE(x, "FINGERPRINT", do_fingerprint(x));
    PHASE(x, "SNAPSHOT", do_snapshot(x));
    PHASE(x, "UPLOAD DELTA", do_upload(x));
    PHASE(x, "INJECT DB", do_inject(x));
    PHASE(x, "ANALYSIS", do_analysis(x));
    PHASE(x, "EXPORT", do_export(x, 0));
    PHASE(x, "DOWNLOAD", do_download(x, 0));
    PHASE(x, "APPLY", do_apply(x));
    PHASE(x, "FINALIZE", do_finalize(x, x->o->dry_run));
done:
    return error;
}

/* ---------------------------------------------------------------------------------------- */
/* bootstrap                                                                                  */

static int bs_start(rx *x)
{
    int error;
    json_t *res = NULL;
    if ((error = start_agent(x)) < 0)
        return error;
    x->agent_mode = "bootstrap";
    if ((error = send_prepare(x, "bootstrap")) < 0 ||
        (error = await_result(x, "prepare", &res, NULL)) < 0)
        return rejoin_agent(x, error, 0);
    json_decref(res);
    return 0;
}

static int bs_download(rx *x)
{
    int error;
    json_t *b = json_object_get(x->build_res, "baseline");
    const char *mo = json_string_value(json_object_get(b, "main_object"));
    const char *bo = json_string_value(json_object_get(b, "blobs_object"));
    const char *hm = json_string_value(json_object_get(b, "main"));
    const char *hb = json_string_value(json_object_get(b, "blobs"));
    char zst[PATH_MAX + 200];
    if (!mo || !hm)
        return pb_error_set(x->err, PB_ECORRUPT, "the agent named no baseline objects");
    x->has_blobs = bo != NULL;
    snprintf(zst, sizeof(zst), "%s/baseline.zst", x->work);
    /* the whole DB pair comes home (zstd, resumable), then the bundle of files */
    if ((error = get_file(x, mo, zst, "download")) < 0)
        return error;
    x->r->bytes.bundle_down += pb_run__fsize(zst);
    if ((error = pb_run__unzstd(zst, x->snap_main, x->err)) < 0)
        return error;
    unlink(zst);
    if (bo) {
        if ((error = get_file(x, bo, zst, "download")) < 0)
            return error;
        x->r->bytes.bundle_down += pb_run__fsize(zst);
        if ((error = pb_run__unzstd(zst, x->snap_blobs, x->err)) < 0)
            return error;
        unlink(zst);
    }
    if ((error = pb_run__ids(&x->snap_ids, x->snap_main, bo ? x->snap_blobs : NULL, x->err)) < 0)
        return error;
    char gm[33], gb[33];
    pb_run__hex16(gm, x->snap_ids.main);
    pb_run__hex16(gb, x->snap_ids.blobs);
    if (strcmp(gm, hm) != 0 || (hb && strcmp(gb, hb) != 0))
        return pb_error_set(x->err, PB_ECORRUPT,
                            "the downloaded DB's checksum %s differs from the cloud's %s", gm, hm);
    xlog(x, "info", "the library DB pair arrived and matches the cloud's checksum (%.16s)", gm);
    if ((error = fetch_bundle(x)) < 0)
        return error;
    return verify_bundle(x, 0);
}

static int run_cmd(rx *x, const char *what, const char *cmd)
{
    if (!cmd)
        return 0;
    xlog(x, "info", "%s: %s", what, cmd);
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return pb_error_set(x->err, PB_ERROR, "%s failed (status %d): %s", what,
                            WIFEXITED(st) ? WEXITSTATUS(st) : -1, cmd);
    return 0;
}

static int bs_install(rx *x)
{
    int error = 0;
    char stage_main[PATH_MAX + 200], stage_blobs[PATH_MAX + 200], dbdir[PATH_MAX + 64];
    char backup[PATH_MAX + 128], made[PATH_MAX + 200];
    int had_main = pb_run__exists(x->main_db), had_blobs = pb_run__exists(x->blobs_db);
    snprintf(dbdir, sizeof(dbdir), "%s/Plug-in Support/Databases", x->plex);
    if ((error = pb_run__mkdirs(dbdir, x->err)) < 0)
        return error;
    snprintf(stage_main, sizeof(stage_main), "%s/.pb-bootstrap-%s.db", dbdir, x->run_id);
    snprintf(stage_blobs, sizeof(stage_blobs), "%s/.pb-bootstrap-%s.blobs.db", dbdir, x->run_id);
    if ((error = pb_run__copy(x->snap_main, stage_main, x->err)) < 0 ||
        (x->has_blobs && (error = pb_run__copy(x->snap_blobs, stage_blobs, x->err)) < 0))
        goto done;
    /* Plex stopped around the install (a whole DB cannot be merged online) */
    double t_stop = pb_run__now_ms();
    if (!x->online && (error = run_cmd(x, "stopping Plex", x->stop_cmd)) < 0)
        goto done;
    if (had_main) {
        uint64_t c[3] = {0, 0, 0};
        if ((error = pb_run__carry_user_state(stage_main, x->main_db, c, x->err)) < 0)
            goto restart;
        x->r->carried.accounts = c[0];
        x->r->carried.settings = c[1];
        x->r->carried.views = c[2];
        xlog(x, "info",
             "home user state carried over: %llu accounts, %llu item settings, %llu "
             "plays (by account and guid)",
             (unsigned long long)c[0], (unsigned long long)c[1], (unsigned long long)c[2]);
        snprintf(backup, sizeof(backup), "%s/plexburst-backups", dbdir);
        if ((error = pb_plex_backup(made, sizeof(made), NULL, backup, x->main_db,
                                    had_blobs ? x->blobs_db : NULL, 3, x->err)) < 0)
            goto restart;
        xlog(x, "info", "the former DBs are backed up in %s", made);
    }
    const char *suffix[] = {"-wal", "-shm", "-journal"};
    for (int i = 0; i < 3; i++) {
        char p[PATH_MAX + 160];
        snprintf(p, sizeof(p), "%s%s", x->main_db, suffix[i]);
        unlink(p);
        snprintf(p, sizeof(p), "%s%s", x->blobs_db, suffix[i]);
        unlink(p);
    }
    if (rename(stage_main, x->main_db) != 0) {
        error = pb_error_errno(x->err, "cannot install %s", x->main_db);
        goto restart;
    }
    if (x->has_blobs && rename(stage_blobs, x->blobs_db) != 0) {
        error = pb_error_errno(x->err, "cannot install %s", x->blobs_db);
        goto restart;
    }
    xlog(x, "info", "library DB pair installed (Preferences.xml untouched)");
    /* the files: a bundle based on the installed baseline, applied by the journaled apply */
    if ((error = pb_baseline_write(x->state, &x->snap_ids, x->err)) < 0)
        goto restart;
    error = run_apply(x, x->snap_main, x->snap_blobs, 1, 0);
restart:;
    int rc2 = x->online ? 0 : run_cmd(x, "starting Plex", x->start_cmd);
    x->r->ms.downtime += pb_run__now_ms() - t_stop;
    if (!error && rc2 < 0)
        error = rc2;
done:
    unlink(stage_main);
    unlink(stage_blobs);
    return error;
}

static int bs_finalize(rx *x)
{
    int error;
    char bmain[PATH_MAX + 64], bblobs[PATH_MAX + 64];
    snprintf(bmain, sizeof(bmain), "%s/" PB_HOME_BASE_MAIN, x->state);
    snprintf(bblobs, sizeof(bblobs), "%s/" PB_HOME_BASE_BLOBS, x->state);
    forget_home_baseline(x);
    if (rename(x->snap_main, bmain) != 0)
        return pb_error_errno(x->err, "cannot keep the baseline copy %s", bmain);
    if (x->has_blobs && rename(x->snap_blobs, bblobs) != 0)
        return pb_error_errno(x->err, "cannot keep the baseline copy %s", bblobs);
    if (!x->has_blobs)
        unlink(bblobs);
    if ((error = write_home_baseline(x, &x->snap_ids)) < 0)
        return error;
    xlog(x, "info", "baseline %.16s recorded on both sides", x->r->baseline_id);
    store_prune(x);
    cur_clear(x);
    if (!x->o->keep_work)
        pb_run__rmtree(x->work);
    pb_run__prune_records(x->state, 30);
    return 0;
}

static int run_bootstrap(rx *x)
{
    int error = 0, resume = 0;
    PHASE(x, "RECOVER", do_recover(x, &resume));
    if ((error = begin_work(x)) < 0)
        return error;
    snprintf(x->r->upload_kind, sizeof(x->r->upload_kind), "none");
    PHASE(x, "START AGENT", bs_start(x));
    PHASE(x, "BUILD LIBRARY", do_analysis(x));
    PHASE(x, "FINGERPRINT", do_fingerprint(x));
    PHASE(x, "EXPORT", do_export(x, 1));
    PHASE(x, "DOWNLOAD", bs_download(x));
    PHASE(x, "INSTALL", bs_install(x));
    PHASE(x, "FINALIZE", bs_finalize(x));
done:
    return error;
}

/* ---------------------------------------------------------------------------------------- */
/* Options and the entry point                                                                */

void pb_run_options_init(pb_run_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->version = PB_RUN_OPTIONS_VERSION;
}

void pb_run_result_dispose(pb_run_result *r)
{
    if (!r)
        return;
    if (r->have_apply)
        pb_apply_result_dispose(&r->apply);
    memset(r, 0, sizeof(*r));
}

static const char *opt(rx *x, const char *given, const char *key)
{
    return given ? given : pb_config_get(x->cfg, key);
}

static int resolve(rx *x)
{
    const pb_run_options *o = x->o;
    pb_run_result *r = x->r;
    int error;
    const char *cfile = o->config_file ? o->config_file : getenv("PLEXBURST_CONFIG");
    if ((error = pb_config_load(&x->cfg, cfile, x->err)) < 0)
        return error;
    const char *plex = opt(x, o->plex_dir, "PLEXBURST_PLEX_DIR");
    if (!plex)
        return pb_error_set(x->err, PB_EINVALID,
                            "no Plex data dir given (--plex-dir or "
                            "PLEXBURST_PLEX_DIR)");
    if (o->mode == PB_RUN_BOOTSTRAP && (error = pb_run__mkdirs(plex, x->err)) < 0)
        return error;
    if (!realpath(plex, x->plex))
        return pb_error_set(x->err, PB_ENOTFOUND, "the Plex data dir %s does not exist", plex);
    snprintf(x->main_db, sizeof(x->main_db), "%s/" PB_PLEX_DB_REL, x->plex);
    snprintf(x->blobs_db, sizeof(x->blobs_db), "%s/" PB_PLEX_BLOBS_REL, x->plex);
    if (o->mode == PB_RUN_SYNC && !pb_run__exists(x->main_db))
        return pb_error_set(x->err, PB_ENOTFOUND,
                            "no library DB in %s (run plexburst bootstrap first)", x->plex);
    x->has_blobs = pb_run__exists(x->blobs_db);
    if ((error =
             pb_statedir__ensure(x->state, sizeof(x->state),
                                 opt(x, o->state_dir, "PLEXBURST_STATE_DIR"), x->plex, x->err)) < 0)
        return error;
    snprintf(x->sync, sizeof(x->sync), "%s/" PB_HOME_SYNC_DIR, x->state);
    if ((error = pb_run__mkdirs(x->sync, x->err)) < 0)
        return error;

    const char *cloud = opt(x, o->cloud, "PLEXBURST_CLOUD");
    if (!cloud || strcmp(cloud, "local") == 0) {
        snprintf(x->cloud_dir, sizeof(x->cloud_dir), "%s/cloud", x->state);
    } else if (strncmp(cloud, "local:", 6) == 0 && cloud[6]) {
        if ((error = pb_run__mkdirs(cloud + 6, x->err)) < 0)
            return error;
        if (!realpath(cloud + 6, x->cloud_dir))
            return pb_error_errno(x->err, "cannot resolve the cloud dir %s", cloud + 6);
    } else if (strncmp(cloud, "ssh://", 6) == 0) {
        pb_ssh_target t;
        if ((error = pb_ssh_url_parse(&t, cloud, x->err)) < 0)
            return error;
        snprintf(x->ssh_url, sizeof(x->ssh_url), "%s", cloud);
        snprintf(x->cloud_dir, sizeof(x->cloud_dir), "%s",
                 t.dir[0] ? t.dir : PB_SSH_DEFAULT_WORKDIR);
        if (!opt(x, o->store, "PLEXBURST_STORE"))
            return pb_error_set(x->err, PB_EINVALID,
                                "--cloud %s needs a store both sides reach (--store s3://... or "
                                "PLEXBURST_STORE)",
                                cloud);
    } else if (strcmp(cloud, "scaleway") == 0) {
        return pb_error_set(x->err, PB_EINVALID,
                            "--cloud %s is not supported by this build yet (use local[:DIR])",
                            cloud);
    } else {
        return pb_error_set(x->err, PB_EINVALID, "unknown --cloud '%s' (local or local:DIR)",
                            cloud);
    }
    size_t pl = strlen(x->plex);
    if (!x->ssh_url[0] && strncmp(x->cloud_dir, x->plex, pl) == 0 &&
        (x->cloud_dir[pl] == '/' || !x->cloud_dir[pl]))
        return pb_error_set(x->err, PB_EINVALID, "the cloud dir %s is inside the Plex data dir",
                            x->cloud_dir);
    const char *store = opt(x, o->store, "PLEXBURST_STORE");
    if (store)
        snprintf(x->store_url, sizeof(x->store_url), "%s", store);
    else
        snprintf(x->store_url, sizeof(x->store_url), "%.4090s/store", x->cloud_dir);
    if ((error = pb_store_open(&x->store, x->store_url, x->err)) < 0)
        return error;
    snprintf(x->store_url, sizeof(x->store_url), "%s", x->store->url);

    x->runner = opt(x, o->runner, "PLEXBURST_RUNNER");
    if (!x->runner)
        return pb_error_set(x->err, PB_EINVALID,
                            "no analysis runner given (--runner 'CMD' or "
                            "PLEXBURST_RUNNER)");
    x->stop_cmd = opt(x, o->plex_stop_cmd, "PLEXBURST_PLEX_STOP_CMD");
    x->start_cmd = opt(x, o->plex_start_cmd, "PLEXBURST_PLEX_START_CMD");
    x->path_map = opt(x, o->path_map, "PLEXBURST_PATH_MAP");
    x->libraries = opt(x, o->plex_libraries, "PLEXBURST_PLEX_LIBRARIES");
    const char *online = pb_config_get(x->cfg, "PLEXBURST_ONLINE");
    x->online = o->online || (online && (!strcmp(online, "1") || !strcasecmp(online, "true")));
    const char *md = pb_config_get(x->cfg, "PLEXBURST_MAX_DELETE_PCT");
    x->max_del = o->max_delete_pct > 0 ? o->max_delete_pct : md ? atof(md) : 5.0;
    x->zlevel = o->zstd_level > 0 ? o->zstd_level : 19;
    if (x->path_map) {
        pb_pathmap *pm = NULL;
        if ((error = pb_pathmap_load(&pm, x->path_map, x->err)) < 0)
            return error;
        pb_pathmap_free(pm);
    }
    if (x->libraries) {
        pb_plex_library *libs = NULL;
        size_t n = 0;
        if ((error = pb_plex_libraries_load(&libs, &n, x->libraries, x->err)) < 0)
            return error;
        free(libs);
        xlog(x, "detail", "plex_libraries.json: %zu sections (used by the plex runner)", n);
    }
    const char *prog = o->agent_program ? o->agent_program : getenv("PLEXBURST_AGENT");
    if (prog) {
        snprintf(x->agent_prog, sizeof(x->agent_prog), "%s", prog);
    } else {
        ssize_t n = readlink("/proc/self/exe", x->agent_prog, sizeof(x->agent_prog) - 1);
        if (n <= 0)
            return pb_error_errno(x->err, "cannot find this program (/proc/self/exe)");
        x->agent_prog[n] = '\0';
    }
    snprintf(r->state_dir, sizeof(r->state_dir), "%s", x->state);
    snprintf(r->cloud_dir, sizeof(r->cloud_dir), "%.4095s", x->cloud_dir);
    snprintf(r->store, sizeof(r->store), "%.4095s", x->store_url);
    return 0;
}

static int take_lock(rx *x)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/run.lock", x->sync);
    x->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (x->lock_fd < 0)
        return pb_error_errno(x->err, "cannot open %s", path);
    if (flock(x->lock_fd, LOCK_EX | LOCK_NB) != 0)
        return pb_error_set(x->err, PB_EBUSY, "another plexburst run works on %s", x->plex);
    return 0;
}

int pb_run(pb_run_result *out, const pb_run_options *opts, pb_error *err)
{
    int error = 0;
    rx *x = calloc(1, sizeof(*x));
    memset(out, 0, sizeof(*out));
    out->runner_status = -1;
    if (!x)
        return pb_error_set(err, PB_ENOMEM, "out of memory");
    x->o = opts;
    x->r = out;
    x->err = err;
    x->lock_fd = -1;
    x->t0 = pb_run__now_ms();
    if (!opts || opts->version != PB_RUN_OPTIONS_VERSION ||
        (opts->mode != PB_RUN_SYNC && opts->mode != PB_RUN_BOOTSTRAP)) {
        error = pb_error_set(err, PB_EINVALID, "run: bad options");
        goto done;
    }
    out->mode = opts->mode;
    out->dry_run = opts->dry_run;
    snprintf(out->mode_name, sizeof(out->mode_name), "%s",
             opts->mode == PB_RUN_SYNC ? "sync" : "bootstrap");
    pb_run__new_id(out->run_id);
    if ((error = resolve(x)) < 0 || (error = take_lock(x)) < 0)
        goto done;
    snprintf(out->log_path, sizeof(out->log_path), "%s/" PB_HOME_LOGS_DIR "/%s.log", x->state,
             out->run_id);
    char logs[PATH_MAX + 16];
    snprintf(logs, sizeof(logs), "%s/" PB_HOME_LOGS_DIR, x->state);
    pb_run__mkdirs(logs, err);
    pb_run_event ev = {0};
    ev.kind = PB_EV_START;
    ev.run_id = out->run_id;
    ev.log_path = out->log_path;
    ev.state_dir = x->state;
    emit(x, &ev);
    char cfgline[2048];
    pb_config_describe(x->cfg, cfgline, sizeof(cfgline));
    xlog(x, "detail", "plexburst %s %s of %s; cloud local:%s; store %s", pb_version(),
         out->mode_name, x->plex, x->cloud_dir, x->store_url);
    if (cfgline[0])
        xlog(x, "detail", "configuration: %s", cfgline);
    error = opts->mode == PB_RUN_SYNC ? run_sync(x) : run_bootstrap(x);
done:
    /* cancelled: the agent stops its runner on CANCEL (it outlives a mere end of stream) */
    if (x->ch && x->io_ok && error == PB_ECANCELLED) {
        pb_error e = PB_ERROR_INIT;
        pb_channel_set_cancel(x->ch, NULL, NULL);
        pb_frame_write(&x->io, PB_FRAME_CANCEL, NULL, 0, &e);
    }
    /* a step that failed in the cloud leaves a healthy conversation: say goodbye */
    if (x->ch)
        stop_agent(x, error != PB_ECANCELLED && error != PB_ENET && error != PB_ECORRUPT);
    if (x->store) {
        out->bytes.up += x->store->bytes_put;
        out->bytes.down += x->store->bytes_got;
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        out->home.cpu_user_ms = (double)ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3;
        out->home.cpu_sys_ms = (double)ru.ru_stime.tv_sec * 1e3 + ru.ru_stime.tv_usec / 1e3;
        out->home.max_rss_kb = (uint64_t)ru.ru_maxrss;
    }
    tally(x);
    out->bytes.control -= out->bytes.control >= x->list_bytes + x->answer_bytes
                              ? x->list_bytes + x->answer_bytes
                              : out->bytes.control;
    out->ok = error >= 0;
    if (error < 0) {
        out->error_code = error;
        snprintf(out->error, sizeof(out->error), "%s",
                 err && err->msg[0] ? err->msg : pb_strerror(error));
        if (!out->failed_phase && out->nphases) {
            out->failed_phase = (int)out->nphases;
            snprintf(out->failed_phase_name, sizeof(out->failed_phase_name), "%s",
                     out->phases[out->nphases - 1].name);
        }
    }
    if (x->state[0] && out->log_path[0]) {
        pb_error e = PB_ERROR_INIT;
        pb_run__record(x->state, out,
                       error >= 0               ? "ok"
                       : error == PB_ECANCELLED ? "cancelled"
                                                : "failed",
                       &e);
    }
    json_decref(x->build_res);
    pb_store_free(x->store);
    pb_config_free(x->cfg);
    if (x->lock_fd >= 0)
        close(x->lock_fd);
    free(x);
    return error;
}

/*
 * agent.c: `plexburst agent`, the cloud side of bootstrap and sync (pb_agent_serve, run.h).
 * It serves one conversation of the framed protocol (transfer/frame.h, docs/protocol.md) on its
 * stdin/stdout; the home drives, step by step:
 *   HELLO     versions checked both ways;
 *   PREPARE   sync: rebuilds the home's snapshot from the stored baseline plus the uploaded row
 *             changeset (or takes the full snapshot), verifies its logical checksum against the
 *             home's (a mismatch asks for a full upload), and injects ONLY the DB pair into the
 *             cloud's Plex data dir DIR/plex with paths mapped home -> cloud; bootstrap: an empty
 *             DIR/plex;
 *   RUN       the runner's settings from the home made the agent's own (plex runner), then
 *             the analysis runner on DIR/plex, detached from the agent (its own session; output
 *             in DIR/agent/runner-<run>.log, relayed as LOG frames, its progress records as
 *             PROGRESS frames; exit status written
 *             atomically to DIR/agent/runner-<run>.json): a CANCEL stops it, a home that goes
 *             away (EOF) does not, so a new agent's RUN for the same run re-attaches to it (or
 *             reports the status it recorded); PREPARE for a run prepared here already keeps
 *             the cloud DB (reconnection after a dropped link, docs/ssh.md);
 *   LIST      copies the analysed DBs with paths mapped back (cloud -> home), lists the files the
 *             cloud holds (pb_export_list) and streams the list;
 *   BUILD     receives the home's ANSWER (what it lacks, with signatures), builds the bundle
 *             (pb_export_build: base = the snapshot, rows filtered by the Plex policy), stores it,
 *             and records the analysed DB pair as the new baseline in the store;
 *   BYE       the end.
 * It never needs the home's whole manifest. Its own state lives in
 * DIR/agent (baseline cache, work files of the current run, the cloud tree's fingerprint cache,
 * a lock so that two agents never share DIR; a new agent waits for an interrupted one to exit).
 * The steps live in agent_prepare.c (PREPARE), here (RUN through the runner seam, LIST) and
 * agent_build.c (BUILD).
 * Role: engine/run, the cloud side (knows Plex). Prerequisites: the store and channel
 * interfaces, the runner seam (engine/runner), the bundle writer.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "agent_int.h"
#include "clock.h"
#include "fs.h"
#include "plexburst/plex.h"
#include "runner.h"

void pb_agent__log(agent *a, const char *level, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    json_t *o = json_pack("{s:s, s:s}", "level", level, "text", text);
    pb_error e = PB_ERROR_INIT;
    if (o)
        pb_frame_write_json(&a->io, PB_MSG_LOG, o, &e); /* best effort */
    json_decref(o);
}

int pb_agent__result(agent *a, json_t *o, pb_error *err)
{
    int rc = o ? pb_frame_write_json(&a->io, PB_MSG_RESULT, o, err)
               : pb_error_set(err, PB_ENOMEM, "out of memory");
    json_decref(o);
    return rc;
}

/* The runner's output lines as LOG frames ("runner"), its progress records (runner.h,
 * PB_RUNNER_PROGRESS_PREFIX) as PROGRESS frames ({"what": "runner", ...}); -1 when the home
 * cannot be written to. */
static int on_runner_line(const char *text, void *payload)
{
    agent *a = payload;
    size_t pl = strlen(PB_RUNNER_PROGRESS_PREFIX);
    if (strncmp(text, PB_RUNNER_PROGRESS_PREFIX, pl) == 0) {
        json_t *rec = json_loads(text + pl, 0, NULL);
        if (!json_is_object(rec)) {
            json_decref(rec);
            return 0; /* not ours to understand: dropped */
        }
        json_object_set_new(rec, "what", json_string("runner"));
        pb_error e = PB_ERROR_INIT;
        int rc = pb_frame_write_json(&a->io, PB_MSG_PROGRESS, rec, &e) < 0 ? -1 : 0;
        json_decref(rec);
        return rc;
    }
    json_t *o = json_pack("{s:s, s:s}", "level", "runner", "text", text);
    pb_error e = PB_ERROR_INIT;
    int rc = o && pb_frame_write_json(&a->io, PB_MSG_LOG, o, &e) < 0 ? -1 : 0;
    json_decref(o);
    return rc;
}

/* The home spoke while the runner works: CANCEL stops the runner, EOF leaves it running (a new
 * agent re-attaches), anything else (a stray LOG) is ignored. */
static int on_home_word(void *payload)
{
    agent *a = payload;
    pb_frame f;
    pb_error e = PB_ERROR_INIT;
    if (pb_frame_read(&a->io, &f, &e) != 0 || f.type == PB_FRAME_EOF)
        return PB_ENET;
    return f.type == PB_MSG_CANCEL ? PB_ECANCELLED : 0;
}

/* Starts the runner of this run, or re-attaches to it, and follows it to its status (a CANCEL
 * stops it: a->stop; a home that goes away does not: a->gone). */
static int run_runner(agent *a, const char *kind, const char *cmd, int *status, pb_error *err)
{
    pb_runner *r = NULL;
    pb_runner_options ro = PB_RUNNER_OPTIONS_INIT;
    ro.kind = kind;
    ro.plex_dir = a->plex;
    ro.state_dir = a->state;
    ro.run_id = a->run_id;
    ro.mkplex = a->mkplex;
    int error = pb_runner_open(&r, &ro, err);
    if (error < 0)
        return error;
    int st = pb_runner_state(r, status);
    if (st == PB_RUNNER_DONE) {
        pb_agent__log(a, "info", "the runner of run %s finished already (status %d)", a->run_id,
                      *status);
        goto done;
    }
    if (st == PB_RUNNER_WORKING) {
        pb_agent__log(a, "info", "re-attaching to the runner of run %s, still working", a->run_id);
    } else {
        char shown[2048];
        if ((error = pb_runner_start(r, cmd, shown, sizeof(shown), err)) < 0)
            goto done;
        pb_agent__log(a, "info", "runner: %s", shown);
    }
    pb_runner_io io = {on_runner_line, a->o->in_fd, on_home_word, a};
    error = pb_runner_follow(r, &io, status, err);
    if (error == PB_ENET)
        a->gone = 1;
    else if (error == PB_ECANCELLED)
        a->stop = 1;
done:
    pb_runner_free(r);
    return error;
}

/* RUN's `settings` and `libraries` (docs/protocol.md): the runner's settings as the home
 * resolved them become exactly the agent's (a name of pb_runner_plex_settings present is set,
 * absent unset; other names are ignored), so that the runner started next inherits them; the
 * libraries' content is written to DIR/agent/runner-<run>.libraries.json (0600) and
 * PLEXBURST_PLEX_LIBRARIES names it. A RUN without `settings` leaves the environment alone.
 * Values are never logged. */
static int apply_settings(agent *a, json_t *msg, pb_error *err)
{
    json_t *set = json_object_get(msg, "settings"), *libs = json_object_get(msg, "libraries");
    if (!set)
        return 0;
    if (!json_is_object(set) || (libs && !json_is_array(libs) && !json_is_null(libs)))
        return pb_error_set(err, PB_ECORRUPT,
                            "RUN: settings must be an object and libraries a list");
    int n = 0;
    for (const char *const *k = pb_runner_plex_settings; *k; k++) {
        const char *v = json_string_value(json_object_get(set, *k));
        if (v && *v) {
            setenv(*k, v, 1);
            n++;
        } else {
            unsetenv(*k);
        }
    }
    if (json_is_array(libs)) {
        char path[PATH_MAX + 200];
        snprintf(path, sizeof(path), "%s/runner-%s.libraries.json", a->state, a->run_id);
        char *txt = json_dumps(libs, JSON_INDENT(1));
        int error = txt ? pb_fs_write_file(path, txt, strlen(txt), 0600, err)
                        : pb_error_set(err, PB_ENOMEM, "out of memory");
        free(txt);
        if (error < 0)
            return error;
        setenv("PLEXBURST_PLEX_LIBRARIES", path, 1);
        pb_agent__log(a, "info", "runner settings from the home: %d set, %zu libraries", n,
                      json_array_size(libs));
    } else {
        unsetenv("PLEXBURST_PLEX_LIBRARIES");
        pb_agent__log(a, "info", "runner settings from the home: %d set", n);
    }
    return 0;
}

static int do_run(agent *a, json_t *msg, pb_error *err)
{
    int error, status = -1;
    double t0 = pb_clock_ms();
    const char *kind = json_string_value(json_object_get(msg, "runner"));
    const char *cmd = json_string_value(json_object_get(msg, "command"));
    if (!a->prepared)
        return pb_error_set(err, PB_EINVALID, "RUN before PREPARE");
    if (!cmd || !*cmd)
        return pb_error_set(err, PB_EINVALID, "RUN: no runner command");
    if ((error = apply_settings(a, msg, err)) < 0)
        return error;
    if ((error = run_runner(a, kind, cmd, &status, err)) < 0)
        return error;
    double ms = pb_clock_ms() - t0;
    if (status != 0) {
        char txt[200];
        snprintf(txt, sizeof(txt), "the runner exited with status %d after %.1f s", status,
                 ms / 1000);
        json_t *o = json_pack("{s:i, s:s, s:s, s:i}", "code", PB_ERROR, "name",
                              pb_strerror(PB_ERROR), "message", txt, "status", status);
        pb_frame_write_json(&a->io, PB_FRAME_ERROR, o, err);
        json_decref(o);
        return 1;
    }
    char m[PATH_MAX + 128];
    snprintf(m, sizeof(m), "%s/" PB_PLEX_DB_REL, a->plex);
    if (!pb_fs_exists(m))
        return pb_error_set(err, PB_ENOTFOUND, "the runner left no library DB in %s", a->plex);
    char b[PATH_MAX + 128];
    snprintf(b, sizeof(b), "%s/" PB_PLEX_BLOBS_REL, a->plex);
    if (a->mode == PB_RUN_BOOTSTRAP)
        a->has_blobs = pb_fs_exists(b);
    a->ran = 1;
    return pb_agent__result(
        a, json_pack("{s:s, s:b, s:i, s:f}", "step", "run", "ok", 1, "status", status, "ms", ms),
        err);
}

static int do_list(agent *a, pb_error *err)
{
    int error;
    double t0 = pb_clock_ms();
    char m[PATH_MAX + 128], b[PATH_MAX + 128];
    if (!a->ran)
        return pb_error_set(err, PB_EINVALID, "LIST before RUN");
    snprintf(m, sizeof(m), "%s/" PB_PLEX_DB_REL, a->plex);
    snprintf(b, sizeof(b), "%s/" PB_PLEX_BLOBS_REL, a->plex);
    /* the analysed DBs, consistent copies with the paths the home uses */
    if ((error = pb_run__snapshot(m, a->cloud_main, err)) < 0 ||
        (a->has_blobs && (error = pb_run__snapshot(b, a->cloud_blobs, err)) < 0))
        return error;
    uint64_t mapped = 0;
    if ((error = pb_run__map_paths(a->cloud_main, a->to_home, &mapped, err)) < 0)
        return error;
    if (mapped)
        pb_agent__log(a, "info", "%llu path values mapped back cloud -> home",
                      (unsigned long long)mapped);
    pb_export_stats st;
    if ((error = pb_export_list(&st, a->plex, a->fp, a->list, err)) < 0)
        return error;
    pb_agent__log(a, "info", "the cloud holds %llu files in its synced tree",
                  (unsigned long long)st.listed);
    /* the home gets the compact list (path, type, mode, size, hash per file), zstd */
    char compact[PATH_MAX + 200], zst[PATH_MAX + 210];
    uint64_t n = 0;
    snprintf(compact, sizeof(compact), "%s.compact", a->list);
    snprintf(zst, sizeof(zst), "%s.zst", compact);
    if ((error = pb_run__list_compact(&n, a->list, compact, err)) < 0 ||
        (error = pb_run__zstd(compact, zst, 19, NULL, err)) < 0)
        return error;
    json_t *extra = json_pack("{s:I, s:f, s:s, s:s, s:I}", "files", (json_int_t)n, "ms",
                              pb_clock_ms() - t0, "encoding", "zstd", "format", "compact1",
                              "raw_bytes", (json_int_t)pb_fs_size(compact));
    error =
        pb_frame_send_file(&a->io, PB_MSG_LIST_DATA, PB_MSG_LIST_END, zst, extra, NULL, NULL, err);
    json_decref(extra);
    unlink(zst);
    unlink(compact);
    if (!error)
        a->listed = 1;
    return error;
}

/* Takes DIR/agent/agent.lock, waiting up to 15 s for an agent of an interrupted run to exit. */
static int take_lock(agent *a, pb_error *err)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/" PB_AGENT_LOCK, a->state);
    a->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (a->lock_fd < 0)
        return pb_error_errno(err, "cannot open %s", path);
    for (int i = 0; i < 150; i++) {
        if (flock(a->lock_fd, LOCK_EX | LOCK_NB) == 0)
            return 0;
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
    }
    return pb_error_set(err, PB_EBUSY, "another agent works in %s", a->dir);
}

/* DIR (created), DIR/plex, DIR/agent and the mkplex of runner lines. */
static int open_workdir(agent *a, const pb_agent_options *o, pb_error *err)
{
    int error;
    if (!o || !o->workdir || !*o->workdir)
        return pb_error_set(err, PB_EINVALID, "agent: --workdir is required");
    if ((error = pb_fs_mkdirs(o->workdir, 0700, err)) < 0)
        return error;
    if (!realpath(o->workdir, a->dir))
        return pb_error_errno(err, "agent: cannot resolve %s", o->workdir);
    snprintf(a->plex, sizeof(a->plex), "%s/plex", a->dir);
    snprintf(a->state, sizeof(a->state), "%s/agent", a->dir);
    snprintf(a->cache, sizeof(a->cache), "%s/baseline", a->state);
    snprintf(a->fp, sizeof(a->fp), "%s/fp", a->state);
    if (o->mkplex && !realpath(o->mkplex, a->mkplex))
        snprintf(a->mkplex, sizeof(a->mkplex), "%s", o->mkplex);
    else if (o->mkplex)
        ; /* resolved: the runner works in another directory */
    else if (pb_runner_default_mkplex(a->mkplex, sizeof(a->mkplex)) != 0)
        a->mkplex[0] = '\0';
    if ((error = pb_fs_mkdirs(a->state, 0700, err)) < 0)
        return error;
    return pb_fs_mkdirs(a->fp, 0700, err);
}

/* One step of the conversation: the frame's handler. */
static int serve_step(agent *a, const pb_frame *f, json_t *msg, pb_error *err)
{
    switch (f->type) {
    case PB_MSG_PREPARE:
        return pb_agent__prepare(a, msg, err);
    case PB_MSG_RUN:
        return do_run(a, msg, err);
    case PB_MSG_LIST:
        return do_list(a, err);
    case PB_MSG_BUILD:
        return pb_agent__build(a, msg, err);
    default:
        return pb_error_set(err, PB_ECORRUPT, "unexpected %s frame", pb_protocol_msg_name(f->type));
    }
}

void pb_agent_options_init(pb_agent_options *opts)
{
    *opts = (pb_agent_options)PB_AGENT_OPTIONS_INIT;
}

int pb_agent_find_mkplex(char *out, size_t cap, const char *given)
{
    char real[PATH_MAX];
    if (given)
        snprintf(out, cap, "%s", given);
    else if (pb_runner_default_mkplex(out, cap) != 0)
        return -1;
    if (access(out, X_OK) != 0)
        return -1;
    if (realpath(out, real))
        snprintf(out, cap, "%s", real);
    return 0;
}

int pb_agent_serve(const pb_agent_options *o, pb_error *err)
{
    int error = 0;
    agent *a = calloc(1, sizeof(*a));
    json_t *msg = NULL, *extra = NULL;
    if (!a)
        return pb_error_set(err, PB_ENOMEM, "out of memory");
    a->o = o;
    a->lock_fd = -1;
    if ((error = open_workdir(a, o, err)) < 0)
        goto done;
    if ((error = pb_channel_fd_new(&a->ch, o->in_fd, o->out_fd, 0, err)) < 0 ||
        (error = pb_protocol_io_init(&a->io, a->ch, 0, err)) < 0)
        goto done;
    extra = json_pack("{s:s, s:I}", "workdir", a->dir, "pid", (json_int_t)getpid());
    if ((error = pb_frame_hello(&a->io, "agent", pb_version(), extra, NULL, err)) < 0)
        goto done;
    pb_error lerr = PB_ERROR_INIT;
    if (take_lock(a, &lerr) < 0) {
        pb_frame_write_error(&a->io, lerr.code, lerr.msg, err);
        error = pb_error_set(err, lerr.code, "%s", lerr.msg);
        goto done;
    }
    pb_agent__discard(a, NULL); /* what earlier runs left in the trash, in the background */
    for (;;) {
        pb_frame f;
        json_decref(msg);
        msg = NULL;
        if ((error = pb_frame_read(&a->io, &f, err)) < 0)
            goto done;
        if (f.type == PB_FRAME_EOF) {
            error = pb_error_set(err, PB_ENET, "agent: the home closed the stream without BYE");
            goto done;
        }
        if (f.type == PB_MSG_BYE) {
            pb_frame_write(&a->io, PB_MSG_BYE, NULL, 0, err);
            break;
        }
        if (f.type == PB_MSG_CANCEL || f.type == PB_MSG_LOG)
            continue;
        if (f.type != PB_MSG_LIST && (error = pb_frame_json(&msg, &f, err)) < 0)
            goto done;
        pb_error serr = PB_ERROR_INIT;
        int rc = serve_step(a, &f, msg, &serr);
        if (a->stop) {
            error = pb_error_set(err, PB_ECANCELLED, "agent: stopped by the home");
            goto done;
        }
        if (a->gone) {
            error = pb_error_set(err, PB_ENET, "agent: the home went away (the runner goes on)");
            goto done;
        }
        if (rc < 0) {
            /* the step failed: say why and wait for the home's next word (usually BYE) */
            if ((error = pb_frame_write_error(&a->io, rc, serr.msg, err)) < 0)
                goto done;
            if (rc == PB_ENET || rc == PB_ECORRUPT) {
                error = pb_error_set(err, rc, "%s", serr.msg);
                goto done;
            }
        }
    }
done:
    json_decref(msg);
    json_decref(extra);
    if (a->work[0] && error == 0) {
        char keep[PATH_MAX + 160];
        snprintf(keep, sizeof(keep), "%s/tmp", a->work);
        pb_agent__discard(a, keep); /* in the background: the next run never waits for it */
    }
    pb_pathmap_free(a->to_home);
    pb_pathmap_free(a->to_cloud);
    pb_store_free(a->store);
    pb_frame_io_dispose(&a->io);
    pb_channel_free(a->ch);
    if (a->lock_fd >= 0)
        close(a->lock_fd);
    free(a);
    return error;
}

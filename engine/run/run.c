/*
 * run.c: pb_run (plexburst/run.h), the home side of a run from its options to its result: the
 * settings resolved (config.c), the home data dir opened once (pb_plexdir), the cloud chosen
 * (engine/cloud), the store opened, the run lock taken, then the sync's (sync.c) or the
 * bootstrap's (bootstrap.c) numbered phases, each announced as events and recorded in
 * <state>/runs/<id>.json; whatever happens the agent is stopped and the cloud released.
 * Fault injection for tests: PLEXBURST_FAULT=kill:<PHASE_NAME> (or kill:after_record,
 * kill:after_apply) raises SIGKILL when that point is reached.
 * Role: engine/run, the home side (run_ctx.h). Prerequisites: the cloud seam, the store, the
 * framed protocol, the phases' files.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>

#include "clock.h"
#include "fs.h"
#include "run_ctx.h"
#include "transport_config.h"

void pb_run__emit(rx *x, pb_run_event *ev)
{
    ev->result = x->r;
    ev->phase = (int)x->r->nphases;
    if (x->o->on_event)
        x->o->on_event(ev, x->o->event_payload);
}

void pb_run__log(rx *x, const char *level, const char *fmt, ...)
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
    pb_run__emit(x, &ev);
}

int pb_run__cancelled(rx *x)
{
    if (x->o->cancelled && x->o->cancelled(x->o->cancel_payload))
        return 1;
    char why[512];
    if (!x->budget_stop && !pb_cloud_over_budget(x->cloud, why, sizeof(why)))
        return 0;
    if (!x->budget_stop) { /* the cloud's budget: a clean stop, as a Ctrl-C, saying why */
        x->budget_stop = 1;
        pb_error_set(x->err, PB_ECANCELLED, "%s", why);
        pb_run__log(x, "warn", "%s", why);
    }
    return 1;
}

int pb_run__chan_cancel(void *p)
{
    return pb_run__cancelled(p);
}

void pb_run__progress(rx *x, const char *phase, uint64_t done, uint64_t total, const char *path)
{
    pb_progress p = {phase, done, total, 0, 0, path};
    pb_run_event ev = {0};
    ev.kind = PB_EV_PROGRESS;
    ev.progress = &p;
    pb_run__emit(x, &ev);
}

void pb_run__fault_point(const char *name)
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

void pb_run__tally(rx *x)
{
    x->r->ms.total = pb_clock_ms() - x->t0;
}

static double cpu_now_ms(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

void pb_run__phase_begin(rx *x, const char *name)
{
    pb_run_result *r = x->r;
    if (r->nphases < PB_RUN_MAX_PHASES) {
        snprintf(r->phases[r->nphases].name, sizeof(r->phases[0].name), "%s", name);
        r->nphases++;
    }
    x->phase_name = name;
    x->pt0 = pb_clock_ms();
    x->pcpu0 = cpu_now_ms();
    pb_run_event ev = {0};
    ev.kind = PB_EV_PHASE;
    ev.name = name;
    pb_run__emit(x, &ev);
    pb_error e = PB_ERROR_INIT;
    pb_run__record(x->state, r, "running", &e);
    pb_run__fault_point(name);
}

int pb_run__phase_end(rx *x, int rc)
{
    pb_run_result *r = x->r;
    double ms = pb_clock_ms() - x->pt0;
    if (r->nphases) {
        r->phases[r->nphases - 1].ok = rc >= 0;
        r->phases[r->nphases - 1].ms = ms;
        r->phases[r->nphases - 1].cpu_ms = cpu_now_ms() - x->pcpu0;
    }
    if (rc < 0 && !r->failed_phase) {
        r->failed_phase = (int)r->nphases;
        snprintf(r->failed_phase_name, sizeof(r->failed_phase_name), "%s", x->phase_name);
    }
    pb_run__tally(x);
    pb_run_event ev = {0};
    ev.kind = PB_EV_PHASE_END;
    ev.name = x->phase_name;
    ev.ok = rc >= 0;
    ev.ms = ms;
    pb_run__emit(x, &ev);
    return rc < 0 ? rc : 0;
}

/* A cancellation is honoured between phases (and inside the transfers and the agent's steps,
 * through the hooks); an APPLY that started runs to its end, and FINALIZE after it. */
int pb_run__may_start(rx *x, const char *name)
{
    if (strcmp(name, "FINALIZE") != 0 && pb_run__cancelled(x))
        return pb_error_set(x->err, PB_ECANCELLED, "cancelled (Ctrl-C) before %s", name);
    return 0;
}

void pb_run_options_init(pb_run_options *opts)
{
    *opts = (pb_run_options)PB_RUN_OPTIONS_INIT;
}

/* Replaces an owned string of the result (kept when out of memory). */
static void set_str(char **dst, const char *s)
{
    char *d = strdup(s ? s : "");
    if (d) {
        free(*dst);
        *dst = d;
    }
}

void pb_run_result_dispose(pb_run_result *r)
{
    if (!r)
        return;
    if (r->have_apply)
        pb_apply_result_dispose(&r->apply);
    free(r->state_dir);
    free(r->log_path);
    free(r->cloud_dir);
    free(r->store);
    free(r->error);
    free(r->runner_json);
    memset(r, 0, sizeof(*r));
}

/* The cloud's lines go to the run's log. */
static void cloud_log(void *payload, const char *level, const char *line)
{
    pb_run__log(payload, level, "%s", line);
}

/* The home data dir (created for a bootstrap), opened once: its DB pair and state dir. */
static int open_home(rx *x)
{
    int error;
    if (x->o->mode == PB_RUN_BOOTSTRAP && (error = pb_fs_mkdirs(x->set.plex_dir, 0700, x->err)) < 0)
        return error;
    if ((error = pb_plexdir_open(&x->pd, x->set.plex_dir, x->err)) < 0)
        return error;
    x->plex = x->pd.root;
    x->main_db = x->pd.main_db;
    x->blobs_db = x->pd.blobs_db;
    if (x->o->mode == PB_RUN_SYNC && !pb_fs_exists(x->main_db))
        return pb_error_set(x->err, PB_ENOTFOUND,
                            "no library DB in %s (run plexburst bootstrap first)", x->plex);
    x->has_blobs = pb_plexdir_has_blobs(&x->pd);
    if ((error = pb_plexdir_state(&x->pd, x->set.state_dir, 1, x->err)) < 0)
        return error;
    x->state = x->pd.state_dir;
    snprintf(x->sync, sizeof(x->sync), "%s/" PB_HOME_SYNC_DIR, x->state);
    return pb_fs_mkdirs(x->sync, 0700, x->err);
}

/* The cloud of --cloud (the cloud seam's table). */
static int open_cloud(rx *x)
{
    pb_cloud_options co = PB_CLOUD_OPTIONS_INIT;
    co.url = x->set.cloud;
    co.home_state = x->state;
    co.home_plex = x->plex;
    co.store = x->set.store;
    co.agent_program = x->set.agent_program;
    co.cfg = x->cfg;
    co.log = cloud_log;
    co.log_payload = x;
    co.cancel = pb_run__chan_cancel;
    co.cancel_payload = x;
    co.run_id = x->r->run_id;
    co.instance_type = x->o->instance_type;
    co.profile = x->o->profile;
    co.runner = x->set.runner;
    return pb_cloud_open(&x->cloud, &co, x->err);
}

/* The store both sides use: the one given, else the cloud's default. */
static int open_store(rx *x)
{
    int error;
    snprintf(x->store_url, sizeof(x->store_url), "%s", x->cloud->store);
    if ((error = pb_transport_config_store_open_with(
             &x->store, x->store_url, pb_transport_config_cfg_get, x->cfg, x->err)) < 0)
        return error;
    snprintf(x->store_url, sizeof(x->store_url), "%s", x->store->url);
    return 0;
}

/* The settings (config.c), the home, the cloud and the store. */
static int resolve(rx *x)
{
    const pb_run_options *o = x->o;
    pb_run_result *r = x->r;
    int error;
    const char *cfile = o->config_file ? o->config_file : getenv("PLEXBURST_CONFIG");
    if ((error = pb_config_load(&x->cfg, cfile, x->err)) < 0)
        return error;
    /* A value the files set and the environment does not is put into this process's
     * environment (never over one it has), so that the modules that read the environment (the
     * scaleway account, the plex runner's settings sent to the agent) see the files too, as
     * systemd's EnvironmentFile would have them. */
    for (size_t i = 0; pb_config_key(x->cfg, i); i++) {
        const char *k = pb_config_key(x->cfg, i), *v = pb_config_get(x->cfg, k);
        if (v && !getenv(k))
            setenv(k, v, 0);
    }
    if ((error = pb_run_settings_resolve(&x->set, o, x->cfg, x->err)) < 0 ||
        (error = open_home(x)) < 0 || (error = open_cloud(x)) < 0 || (error = open_store(x)) < 0)
        return error;
    x->runner = x->set.runner;
    x->stop_cmd = x->set.stop_cmd;
    x->start_cmd = x->set.start_cmd;
    x->path_map = x->set.path_map;
    x->online = x->set.online;
    x->max_del = x->set.max_delete_pct;
    x->zlevel = x->set.zstd_level;
    set_str(&r->state_dir, x->state);
    set_str(&r->cloud_dir, x->cloud->workdir);
    /* the cloud as known before it starts (the record and events show it during the run) */
    snprintf(r->cloud.provider, sizeof(r->cloud.provider), "%s", x->cloud->result.provider);
    snprintf(r->cloud.zone, sizeof(r->cloud.zone), "%s", x->cloud->result.zone);
    snprintf(r->cloud.type, sizeof(r->cloud.type), "%s", x->cloud->result.type);
    r->cloud.hourly_price = x->cloud->result.hourly_price;
    set_str(&r->store, x->store_url);
    return 0;
}

/* The program and command of process `pid` ("plexburst sync", not the options: they may name
 * secrets) into cmd; "" when it is gone. */
static void proc_command(char *cmd, size_t cap, long pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(cmd, 1, cap - 1, f) : 0;
    if (f)
        fclose(f);
    cmd[n] = '\0';
    size_t first = strlen(cmd);
    if (first + 1 < n)
        cmd[first] = ' ';
    cmd[strcspn(cmd, "\n")] = '\0';
}

/* Writes "<pid> <program> <command>" into the lock file just taken, for a run that finds it
 * held. */
static void lock_name_holder(int fd)
{
    char line[256], cmd[200];
    proc_command(cmd, sizeof(cmd), (long)getpid());
    int len = snprintf(line, sizeof(line), "%ld %s\n", (long)getpid(), cmd[0] ? cmd : "plexburst");
    if (len > (int)sizeof(line) - 1)
        len = (int)sizeof(line) - 1;
    if (ftruncate(fd, 0) == 0 && pwrite(fd, line, (size_t)len, 0) < 0)
        return; /* only a name for the message of another run */
}

static int take_lock(rx *x)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/run.lock", x->sync);
    x->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (x->lock_fd < 0)
        return pb_error_errno(x->err, "cannot open %s", path);
    if (flock(x->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        /* the holder wrote "<pid> <program> <command>" into the lock file */
        char who[256] = "";
        ssize_t n = pread(x->lock_fd, who, sizeof(who) - 1, 0);
        who[n > 0 ? n : 0] = '\0';
        who[strcspn(who, "\n")] = '\0';
        long pid = strtol(who, NULL, 10);
        const char *cmd = strchr(who, ' ');
        char now[200] = "";
        if (pid > 0)
            proc_command(now, sizeof(now), pid);
        /* the name is the holder's only while that process still runs that command (an apply
         * takes the same lock without naming itself) */
        if (pid > 0 && cmd && !strcmp(now, cmd + 1))
            return pb_error_set(x->err, PB_EBUSY,
                                "another plexburst run works on %s: pid %ld (%s); lock %s", x->plex,
                                pid, now, path);
        return pb_error_set(x->err, PB_EBUSY, "another plexburst run works on %s; lock %s", x->plex,
                            path);
    }
    lock_name_holder(x->lock_fd);
    return 0;
}

/* After the lock: the log path, the START event and the first lines of the log. */
static void announce(rx *x)
{
    pb_run_result *out = x->r;
    char *path = NULL;
    if (asprintf(&path, "%s/" PB_HOME_LOGS_DIR "/%s.log", x->state, out->run_id) >= 0) {
        free(out->log_path);
        out->log_path = path;
    }
    char logs[PATH_MAX + 16];
    pb_error e = PB_ERROR_INIT;
    snprintf(logs, sizeof(logs), "%s/" PB_HOME_LOGS_DIR, x->state);
    pb_fs_mkdirs(logs, 0700, &e);
    pb_run_event ev = {0};
    ev.kind = PB_EV_START;
    ev.run_id = out->run_id;
    ev.log_path = out->log_path;
    ev.state_dir = x->state;
    pb_run__emit(x, &ev);
    char cfgline[2048], where[1200];
    pb_config_describe(x->cfg, cfgline, sizeof(cfgline));
    pb_cloud_describe(x->cloud, where, sizeof(where));
    pb_run__log(x, "detail", "plexburst %s %s of %s; cloud %s; store %s", pb_version(),
                out->mode_name, x->plex, where, x->store_url);
    if (cfgline[0])
        pb_run__log(x, "detail", "configuration: %s", cfgline);
    if (x->set.libraries)
        pb_run__log(x, "detail", "plex_libraries.json: %zu sections (used by the plex runner)",
                    x->set.nlibraries);
}

/* Whatever happened: the agent stopped (told to cancel its runner when the run was cancelled;
 * a goodbye when the conversation is healthy) and the cloud released. */
static void leave_cloud(rx *x, int error)
{
    pb_run_result *out = x->r;
    if (x->ch && x->io_ok && error == PB_ECANCELLED) {
        pb_error e = PB_ERROR_INIT;
        pb_channel_set_cancel(x->ch, NULL, NULL);
        pb_frame_write(&x->io, PB_MSG_CANCEL, NULL, 0, &e);
    }
    if (x->ch)
        pb_run__stop_agent(x, error != PB_ECANCELLED && error != PB_ENET && error != PB_ECORRUPT);
    if (x->cloud) {
        pb_cloud_result cr;
        pb_cloud_release(x->cloud, &cr);
        snprintf(out->cloud.provider, sizeof(out->cloud.provider), "%s", cr.provider);
        snprintf(out->cloud.zone, sizeof(out->cloud.zone), "%s", cr.zone);
        snprintf(out->cloud.type, sizeof(out->cloud.type), "%s", cr.type);
        snprintf(out->cloud.server_id, sizeof(out->cloud.server_id), "%s", cr.server_id);
        out->cloud.hourly_price = cr.hourly_price;
        out->cloud.seconds = cr.seconds;
        out->cloud.cost = cr.cost;
    }
}

/* The result's last numbers, the error, and the run's record. */
static void finish(rx *x, int error)
{
    pb_run_result *out = x->r;
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
    pb_run__tally(x);
    out->bytes.control -= out->bytes.control >= x->list_bytes + x->answer_bytes
                              ? x->list_bytes + x->answer_bytes
                              : out->bytes.control;
    out->ok = error >= 0;
    if (error < 0) {
        out->error_code = error;
        set_str(&out->error, x->err && x->err->msg[0] ? x->err->msg : pb_strerror(error));
        if (!out->failed_phase && out->nphases) {
            out->failed_phase = (int)out->nphases;
            snprintf(out->failed_phase_name, sizeof(out->failed_phase_name), "%s",
                     out->phases[out->nphases - 1].name);
        }
    }
    if (x->state && out->log_path[0]) {
        pb_error e = PB_ERROR_INIT;
        pb_run__record(x->state, out,
                       error >= 0               ? "ok"
                       : error == PB_ECANCELLED ? "cancelled"
                                                : "failed",
                       &e);
    }
}

int pb_run(pb_run_result *out, const pb_run_options *opts, pb_error *err)
{
    int error = 0;
    memset(out, 0, sizeof(*out));
    out->runner_status = -1;
    set_str(&out->state_dir, "");
    set_str(&out->log_path, "");
    set_str(&out->cloud_dir, "");
    set_str(&out->store, "");
    set_str(&out->error, "");
    rx *x = calloc(1, sizeof(*x));
    if (!x || !out->state_dir || !out->log_path || !out->cloud_dir || !out->store || !out->error) {
        free(x);
        pb_run_result_dispose(out);
        return pb_error_set(err, PB_ENOMEM, "out of memory");
    }
    x->o = opts;
    x->r = out;
    x->err = err;
    x->lock_fd = -1;
    x->t0 = pb_clock_ms();
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
    announce(x);
    error = opts->mode == PB_RUN_SYNC ? pb_run__sync(x) : pb_run__bootstrap(x);
done:
    leave_cloud(x, error);
    finish(x, error);
    json_decref(x->build_res);
    pb_sums_dispose(&x->snap_sums[0]);
    pb_sums_dispose(&x->snap_sums[1]);
    pb_store_free(x->store);
    pb_cloud_free(x->cloud);
    pb_plexdir_dispose(&x->pd);
    pb_config_free(x->cfg);
    if (x->lock_fd >= 0)
        close(x->lock_fd);
    free(x);
    return error;
}

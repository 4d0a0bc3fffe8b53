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
 *   RUN       the analysis runner on DIR/plex, detached from the agent (its own session; output
 *             in DIR/agent/runner-<run>.log, relayed as LOG frames; exit status written
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
 * It never needs the home's whole manifest (DESIGN.md §3 step 4). Its own state lives in
 * DIR/agent (baseline cache, work files of the current run, the cloud tree's fingerprint cache,
 * a lock so that two agents never share DIR; a new agent waits for an interrupted one to exit).
 * Role: engine/ (knows Plex). Prerequisites: the store and channel interfaces, H3/H4/H5/H6/H7.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bundle_int.h"
#include "channel.h"
#include "frame.h"
#include "plexburst/plex.h"
#include "run_int.h"
#include "runner.h"
#include "store.h"
#include "store_s3.h"

typedef struct agent {
    const pb_agent_options *o;
    pb_channel *ch;
    pb_frame_io io;
    char dir[PATH_MAX], plex[PATH_MAX + 8], state[PATH_MAX + 8];
    char work[PATH_MAX + 100], cache[PATH_MAX + 32], fp[PATH_MAX + 16];
    char mkplex[PATH_MAX];
    char run_id[40];
    int mode; /* PB_RUN_SYNC / PB_RUN_BOOTSTRAP, 0 before PREPARE */
    int zlevel;
    pb_store *store;
    pb_pathmap *to_home, *to_cloud;
    int has_blobs;
    char snap_main[PATH_MAX + 160], snap_blobs[PATH_MAX + 160];
    char cloud_main[PATH_MAX + 160], cloud_blobs[PATH_MAX + 160];
    char list[PATH_MAX + 160], answer[PATH_MAX + 160], bundle[PATH_MAX + 160];
    int prepared, ran, listed;
    int lock_fd;
    int stop; /* the home cancelled */
    int gone; /* the home went away (EOF): the runner goes on */
} agent;

static void alog(agent *a, const char *level, const char *fmt, ...) PB_PRINTF(3, 4);

static void alog(agent *a, const char *level, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    json_t *o = json_pack("{s:s, s:s}", "level", level, "text", text);
    pb_error e = PB_ERROR_INIT;
    if (o)
        pb_frame_write_json(&a->io, PB_FRAME_LOG, o, &e); /* best effort */
    json_decref(o);
}

static int send_result(agent *a, json_t *o, pb_error *err)
{
    int rc = o ? pb_frame_write_json(&a->io, PB_FRAME_RESULT, o, err)
               : pb_error_set(err, PB_ENOMEM, "out of memory");
    json_decref(o);
    return rc;
}

/* The store's put progress as PROGRESS frames, a few per second. */
typedef struct put_prog {
    agent *a;
    const char *what;
    double last;
} put_prog;

static int on_put(uint64_t done, uint64_t total, void *payload)
{
    put_prog *p = payload;
    double now = pb_run__now_ms();
    if (now - p->last < 250 && done < total)
        return 0;
    p->last = now;
    json_t *o = json_pack("{s:s, s:I, s:I}", "what", p->what, "done", (json_int_t)done, "total",
                          (json_int_t)total);
    pb_error e = PB_ERROR_INIT;
    if (o)
        pb_frame_write_json(&p->a->io, PB_FRAME_PROGRESS, o, &e);
    json_decref(o);
    return 0;
}

static int fetch(agent *a, const char *name, const char *zst, const char *out, pb_error *err)
{
    int error = pb_store_get_file(a->store, name, zst, NULL, NULL, NULL, NULL, err);
    if (!error)
        error = pb_run__unzstd(zst, out, err);
    unlink(zst);
    return error;
}

/* Makes the baseline `id` available in DIR/agent/baseline (cache) and copies it to the
 * snapshot paths. PB_ENOTFOUND when the store does not hold it. */
static int baseline_to_snapshot(agent *a, const char *id, int blobs, pb_error *err)
{
    int error = 0;
    char idfile[PATH_MAX + 64], cmain[PATH_MAX + 64], cblobs[PATH_MAX + 64], have[64] = "";
    char name[256], zst[PATH_MAX + 200];
    snprintf(idfile, sizeof(idfile), "%s/id", a->cache);
    snprintf(cmain, sizeof(cmain), "%s/main.db", a->cache);
    snprintf(cblobs, sizeof(cblobs), "%s/blobs.db", a->cache);
    FILE *f = fopen(idfile, "r");
    if (f) {
        if (!fgets(have, sizeof(have), f))
            have[0] = '\0';
        fclose(f);
        have[strcspn(have, "\n")] = '\0';
    }
    if (strcmp(have, id) != 0 || !pb_run__exists(cmain) || (blobs && !pb_run__exists(cblobs))) {
        alog(a, "info", "fetching baseline %.16s from the store", id);
        pb_run__rmtree(a->cache);
        if ((error = pb_run__mkdirs(a->cache, err)) < 0)
            return error;
        snprintf(name, sizeof(name), PB_ST_BASELINE_FMT PB_ST_MAIN_DB, id);
        snprintf(zst, sizeof(zst), "%s/main.db.zst", a->work);
        if ((error = fetch(a, name, zst, cmain, err)) < 0)
            return error;
        if (blobs) {
            snprintf(name, sizeof(name), PB_ST_BASELINE_FMT PB_ST_BLOBS_DB, id);
            if ((error = fetch(a, name, zst, cblobs, err)) < 0)
                return error;
        }
        if (!(f = fopen(idfile, "w")))
            return pb_error_errno(err, "cannot write %s", idfile);
        fprintf(f, "%s\n", id);
        fclose(f);
    } else {
        alog(a, "info", "baseline %.16s is cached here", id);
    }
    if ((error = pb_run__copy(cmain, a->snap_main, err)) < 0)
        return error;
    if (blobs && (error = pb_run__copy(cblobs, a->snap_blobs, err)) < 0)
        return error;
    return 0;
}

static int load_pathmaps(agent *a, json_t *pm, pb_error *err)
{
    int error = 0;
    pb_pathmap_free(a->to_home);
    pb_pathmap_free(a->to_cloud);
    a->to_home = a->to_cloud = NULL;
    if (!pm || json_is_null(pm))
        return 0;
    char *s = json_dumps(pm, JSON_COMPACT);
    if (!s)
        return pb_error_set(err, PB_ENOMEM, "out of memory");
    error = pb_pathmap_parse(&a->to_home, s, strlen(s), err);
    free(s);
    if (!error)
        error = pb_pathmap_invert(&a->to_cloud, a->to_home, err);
    return error;
}

/* Moves `path` out of the way at once (into DIR/agent/trash) and deletes it in a detached
 * background process: a whole tree takes seconds to delete and nothing waits for it. */
static void discard_dir(agent *a, const char *path)
{
    char trash[PATH_MAX + 32], dst[PATH_MAX + 96];
    static unsigned seq;
    snprintf(trash, sizeof(trash), "%s/trash", a->state);
    if (!pb_run__exists(path))
        return;
    pb_error e = PB_ERROR_INIT;
    if (pb_run__mkdirs(trash, &e) < 0) {
        pb_run__rmtree(path);
        return;
    }
    snprintf(dst, sizeof(dst), "%s/%ld-%u-%ld", trash, (long)getpid(), seq++, (long)time(NULL));
    if (rename(path, dst) != 0) {
        pb_run__rmtree(path);
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        if (fork() == 0) {
            pb_run__rmtree(dst);
            rmdir(trash); /* when nothing else waits there */
            _exit(0);
        }
        _exit(0);
    }
    if (pid > 0)
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
    else
        pb_run__rmtree(dst);
}

/* Injects the snapshot DB pair into an emptied DIR/plex, paths mapped home -> cloud. */
static int inject(agent *a, uint64_t *mapped, pb_error *err)
{
    int error;
    char dbdir[PATH_MAX + 64], m[PATH_MAX + 128], b[PATH_MAX + 128];
    discard_dir(a, a->plex);
    snprintf(dbdir, sizeof(dbdir), "%s/Plug-in Support/Databases", a->plex);
    if ((error = pb_run__mkdirs(dbdir, err)) < 0)
        return error;
    snprintf(m, sizeof(m), "%s/" PB_PLEX_DB_REL, a->plex);
    snprintf(b, sizeof(b), "%s/" PB_PLEX_BLOBS_REL, a->plex);
    if ((error = pb_run__copy(a->snap_main, m, err)) < 0)
        return error;
    if (a->has_blobs && (error = pb_run__copy(a->snap_blobs, b, err)) < 0)
        return error;
    return pb_run__map_paths(m, a->to_cloud, mapped, err);
}

/* ---------------------------------------------------------------------------------------- */
/* Run state that outlives the agent (a dropped link ends the agent, not the run)              */

/* DIR/agent/work/<run>/prepared.json: the PREPARE of this run is done (mode, has_blobs, the
 * RESULT sent), so that a new agent's PREPARE for the same run keeps the cloud DB. */
static const char *prepared_path(agent *a)
{
    static char path[PATH_MAX + 200];
    snprintf(path, sizeof(path), "%s/prepared.json", a->work);
    return path;
}

/* Writes `text` to `path` through a temporary file and a rename (no allocation: also used by
 * the runner's monitor process after fork). 0 or -1. */
static int write_atomic(const char *path, const char *text)
{
    char tmp[PATH_MAX + 220];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    size_t n = strlen(text);
    int ok = write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Records the PREPARE as done and sends its RESULT (`res` is consumed). */
static int prepared(agent *a, const char *mode, json_t *res, pb_error *err)
{
    if (!res)
        return pb_error_set(err, PB_ENOMEM, "out of memory");
    json_t *rec =
        json_pack("{s:s, s:b, s:O}", "mode", mode, "has_blobs", a->has_blobs, "result", res);
    char *s = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    if (!s || write_atomic(prepared_path(a), s) != 0) {
        free(s);
        json_decref(res);
        return pb_error_errno(err, "cannot write %s", prepared_path(a));
    }
    free(s);
    a->prepared = 1;
    return send_result(a, res, err);
}

/* DIR/agent/runner-<run>.<ext>: log (its output), json (its exit status, written when it
 * ends), lock (held by its monitor while it runs), pid (its process group). */
static void runner_path(agent *a, char *out, size_t cap, const char *ext)
{
    snprintf(out, cap, "%s/runner-%s.%s", a->state, a->run_id, ext);
}

/* Before a fresh PREPARE: the runner of an abandoned run that still works is stopped (it
 * would write into DIR/plex) and the runner files of every run go. */
static void runner_forget(agent *a)
{
    char p[PATH_MAX + 300], id[256];
    DIR *d = opendir(a->state);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "runner-", 7) != 0 || n < 12 || n - 12 >= sizeof(id) ||
            strcmp(e->d_name + n - 5, ".lock") != 0)
            continue;
        snprintf(id, sizeof(id), "%.*s", (int)(n - 12), e->d_name + 7);
        snprintf(p, sizeof(p), "%s/%s", a->state, e->d_name);
        int fd = open(p, O_RDWR | O_CLOEXEC);
        if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) {
            char pidf[PATH_MAX + 300], buf[32] = "";
            snprintf(pidf, sizeof(pidf), "%s/runner-%s.pid", a->state, id);
            FILE *f = fopen(pidf, "r");
            if (f && fgets(buf, sizeof(buf), f) && atol(buf) > 0) {
                alog(a, "warn", "stopping the runner of the abandoned run %s", id);
                kill(-(pid_t)atol(buf), SIGTERM);
            }
            if (f)
                fclose(f);
        }
        if (fd >= 0)
            close(fd);
    }
    if (d)
        rewinddir(d);
    while (d && (e = readdir(d)))
        if (strncmp(e->d_name, "runner-", 7) == 0) {
            snprintf(p, sizeof(p), "%s/%s", a->state, e->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
}

/* 0 and *status when the runner of this run recorded its exit status; -1 otherwise. */
static int runner_status(agent *a, int *status)
{
    char p[PATH_MAX + 96];
    runner_path(a, p, sizeof(p), "json");
    json_t *o = json_load_file(p, 0, NULL);
    json_t *st = json_object_get(o, "status");
    int rc = json_is_integer(st) ? 0 : -1;
    if (!rc)
        *status = (int)json_integer_value(st);
    json_decref(o);
    return rc;
}

/* 1 while a monitor holds the runner's lock (the runner works), else 0. */
static int runner_alive(agent *a)
{
    char p[PATH_MAX + 96];
    runner_path(a, p, sizeof(p), "lock");
    int fd = open(p, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int alive = flock(fd, LOCK_EX | LOCK_NB) != 0;
    close(fd);
    return alive;
}

static pid_t runner_pid(agent *a)
{
    char p[PATH_MAX + 96], buf[32] = "";
    runner_path(a, p, sizeof(p), "pid");
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    if (!fgets(buf, sizeof(buf), f))
        buf[0] = '\0';
    fclose(f);
    return (pid_t)atol(buf);
}

/* Starts the runner detached: a monitor process in its own session holds runner-<run>.lock,
 * runs /bin/sh -c `expanded` in DIR/plex with its output appended to runner-<run>.log, and
 * writes its exit status (128+N when killed by signal N) to runner-<run>.json. *pid: the
 * monitor (the runner's process group). */
static int runner_start(agent *a, pid_t *pid, const char *expanded, pb_error *err)
{
    int error = 0, lfd = -1, logfd = -1;
    char lock[PATH_MAX + 96], log[PATH_MAX + 96], stf[PATH_MAX + 96], pidf[PATH_MAX + 96];
    runner_path(a, lock, sizeof(lock), "lock");
    runner_path(a, log, sizeof(log), "log");
    runner_path(a, stf, sizeof(stf), "json");
    runner_path(a, pidf, sizeof(pidf), "pid");
    unlink(stf);
    if ((lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
        error = pb_error_errno(err, "runner: cannot open %s", lock);
        goto done;
    }
    if (flock(lfd, LOCK_EX | LOCK_NB) != 0) {
        error =
            pb_error_set(err, PB_EBUSY, "runner: the runner of run %s works already", a->run_id);
        goto done;
    }
    if ((logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
        error = pb_error_errno(err, "runner: cannot open %s", log);
        goto done;
    }
    *pid = fork();
    if (*pid < 0) {
        error = pb_error_errno(err, "runner: fork");
        goto done;
    }
    if (*pid == 0) {
        /* the monitor: its own session, nothing of the agent's (stdio, locks) kept */
        setsid();
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGHUP, SIG_IGN);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int dn = open("/dev/null", O_RDWR);
        if (dn >= 0) {
            dup2(dn, 0);
            dup2(dn, 1);
            dup2(dn, 2);
        }
        for (int fd = 3; fd < 1024; fd++)
            if (fd != lfd && fd != logfd)
                close(fd);
        pid_t c = fork();
        if (c == 0) {
            signal(SIGHUP, SIG_DFL);
            dup2(logfd, 1);
            dup2(logfd, 2);
            setenv("PLEX_DIR", a->plex, 1);
            setenv("PLEXBURST_PLEX_DIR", a->plex, 1);
            if (chdir(a->plex) != 0)
                _exit(126);
            execl("/bin/sh", "sh", "-c", expanded, (char *)NULL);
            _exit(127);
        }
        int ws = 0, status = 127;
        if (c > 0) {
            while (waitpid(c, &ws, 0) < 0 && errno == EINTR)
                ;
            status = WIFEXITED(ws) ? WEXITSTATUS(ws) : WIFSIGNALED(ws) ? 128 + WTERMSIG(ws) : -1;
        }
        char text[64];
        snprintf(text, sizeof(text), "{\"status\": %d}\n", status);
        write_atomic(stf, text);
        _exit(0);
    }
    char text[32];
    snprintf(text, sizeof(text), "%ld\n", (long)*pid);
    write_atomic(pidf, text);
done:
    if (logfd >= 0)
        close(logfd);
    if (lfd >= 0)
        close(lfd); /* the monitor holds the lock now */
    return error;
}

/* Relays complete lines of buf[0..*n) as LOG frames ("runner"); `flush` sends the tail too.
 * -1 when the home cannot be written to. */
static int relay_lines(agent *a, char *buf, size_t *n, int flush)
{
    size_t start = 0;
    int rc = 0;
    for (size_t i = 0; i <= *n; i++) {
        int cut = i < *n ? buf[i] == '\n' : (flush || i - start >= 4096) && i > start;
        if (!cut)
            continue;
        char save = buf[i];
        buf[i] = '\0';
        if (i > start && buf[i - 1] == '\r')
            buf[i - 1] = '\0';
        json_t *o = json_pack("{s:s, s:s}", "level", "runner", "text", buf + start);
        pb_error e = PB_ERROR_INIT;
        if (o && rc == 0 && pb_frame_write_json(&a->io, PB_FRAME_LOG, o, &e) < 0)
            rc = -1;
        json_decref(o);
        buf[i] = save;
        start = i + 1;
    }
    if (start > *n)
        start = *n;
    memmove(buf, buf + start, *n - start);
    *n -= start;
    return rc;
}

/* Follows the runner of this run until it records its status: its log relayed from the start,
 * the home watched (CANCEL stops the runner: PB_ECANCELLED; EOF leaves it running: PB_ENET,
 * a->gone). `child`: the monitor when this agent started it (reaped here), else 0. */
static int runner_follow(agent *a, pid_t child, int *status, pb_error *err)
{
    int error = 0, lfd = -1, finished = 0;
    char log[PATH_MAX + 96], buf[8193];
    size_t n = 0;
    runner_path(a, log, sizeof(log), "log");
    for (;;) {
        if (lfd < 0)
            lfd = open(log, O_RDONLY | O_CLOEXEC);
        while (lfd >= 0) {
            ssize_t r = read(lfd, buf + n, sizeof(buf) - 1 - n);
            if (r <= 0)
                break;
            n += (size_t)r;
            if (relay_lines(a, buf, &n, n == sizeof(buf) - 1) < 0) {
                a->gone = 1;
                error = pb_error_set(err, PB_ENET, "the home went away; the runner goes on");
                goto done;
            }
        }
        if (finished) {
            relay_lines(a, buf, &n, 1);
            break;
        }
        if (child > 0 && waitpid(child, NULL, WNOHANG) == child)
            child = 0;
        if (runner_status(a, status) == 0) {
            finished = 1; /* one more pass for the log's last lines */
            continue;
        }
        if (!runner_alive(a) && runner_status(a, status) != 0) {
            error = pb_error_set(err, PB_ERROR, "the runner of run %s stopped without a status",
                                 a->run_id);
            goto done;
        }
        struct pollfd pfd = {a->o->in_fd, POLLIN, 0};
        if (poll(&pfd, 1, 200) > 0) {
            pb_frame f;
            pb_error e = PB_ERROR_INIT;
            if (pb_frame_read(&a->io, &f, &e) != 0 || f.type == PB_FRAME_EOF) {
                a->gone = 1;
                error = pb_error_set(err, PB_ENET, "the home went away; the runner goes on");
                goto done;
            }
            if (f.type == PB_FRAME_CANCEL) {
                pid_t pg = runner_pid(a);
                if (pg > 0)
                    kill(-pg, SIGTERM);
                a->stop = 1;
                error = pb_error_set(err, PB_ECANCELLED, "the home cancelled the runner");
                goto done;
            }
            /* anything else (a stray LOG) is ignored while the runner works */
        }
    }
done:
    if (child > 0 && error != PB_ECANCELLED)
        waitpid(child, NULL, WNOHANG);
    else if (child > 0)
        while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
            ;
    if (lfd >= 0)
        close(lfd);
    return error;
}

/* PREPARE's `s3_env` (a remote agent: sshd forwards no environment): the home's S3 settings
 * become exactly this process's before the store opens. Only the names of
 * pb_store_s3_settings are taken; values are never logged or echoed. */
static int apply_s3_env(json_t *env, pb_error *err)
{
    if (!env || json_is_null(env))
        return 0;
    if (!json_is_object(env))
        return pb_error_set(err, PB_ECORRUPT, "PREPARE: s3_env must be an object");
    for (const char *const *k = pb_store_s3_settings; *k; k++) {
        json_t *v = json_object_get(env, *k);
        if (json_is_string(v) && json_string_value(v)[0]) {
            if (setenv(*k, json_string_value(v), 1) != 0)
                return pb_error_errno(err, "PREPARE: cannot set %s", *k);
        } else {
            unsetenv(*k);
        }
    }
    return 0;
}

static int do_prepare(agent *a, json_t *msg, pb_error *err)
{
    int error = 0;
    double t0 = pb_run__now_ms();
    const char *run_id = json_string_value(json_object_get(msg, "run_id"));
    const char *mode = json_string_value(json_object_get(msg, "mode"));
    const char *store = json_string_value(json_object_get(msg, "store"));
    json_int_t zl = json_integer_value(json_object_get(msg, "zstd_level"));
    if (!run_id || strlen(run_id) >= sizeof(a->run_id) || strchr(run_id, '/') || !mode)
        return pb_error_set(err, PB_ECORRUPT, "PREPARE: run_id and mode are required");
    snprintf(a->run_id, sizeof(a->run_id), "%s", run_id);
    a->mode = strcmp(mode, "bootstrap") == 0 ? PB_RUN_BOOTSTRAP : PB_RUN_SYNC;
    a->zlevel = zl >= 1 && zl <= 19 ? (int)zl : 19;
    a->prepared = a->ran = a->listed = 0;
    if (!store)
        store = a->o->store;
    if (!store)
        return pb_error_set(err, PB_EINVALID, "PREPARE: no store given");
    pb_store_free(a->store);
    a->store = NULL;
    if ((error = apply_s3_env(json_object_get(msg, "s3_env"), err)) < 0 ||
        (error = pb_store_open(&a->store, store, err)) < 0)
        return error;
    if ((error = load_pathmaps(a, json_object_get(msg, "path_map"), err)) < 0)
        return error;

    char wroot[PATH_MAX + 16];
    snprintf(wroot, sizeof(wroot), "%s/work", a->state);
    snprintf(a->work, sizeof(a->work), "%s/%s", wroot, a->run_id);
    snprintf(a->snap_main, sizeof(a->snap_main), "%s/snapshot.db", a->work);
    snprintf(a->snap_blobs, sizeof(a->snap_blobs), "%s/snapshot.blobs.db", a->work);
    snprintf(a->cloud_main, sizeof(a->cloud_main), "%s/cloud.db", a->work);
    snprintf(a->cloud_blobs, sizeof(a->cloud_blobs), "%s/cloud.blobs.db", a->work);
    snprintf(a->list, sizeof(a->list), "%s/list", a->work);
    snprintf(a->answer, sizeof(a->answer), "%s/answer", a->work);
    snprintf(a->bundle, sizeof(a->bundle), "%s/bundle.pbb", a->work);

    /* the same run prepared here already (a new agent after a dropped link): keep the cloud DB,
     * the runner may have worked on it */
    json_t *done = json_load_file(prepared_path(a), 0, NULL);
    const char *dmode = json_string_value(json_object_get(done, "mode"));
    if (dmode && strcmp(dmode, mode) == 0 && json_is_object(json_object_get(done, "result"))) {
        a->has_blobs = json_is_true(json_object_get(done, "has_blobs"));
        a->prepared = 1;
        alog(a, "info", "run %s is prepared here already: the cloud DB is kept", a->run_id);
        json_t *res = json_deep_copy(json_object_get(done, "result"));
        json_decref(done);
        if (res)
            json_object_set_new(res, "again", json_true());
        return send_result(a, res, err);
    }
    json_decref(done);

    /* a fresh work dir for this run (older ones go) */
    discard_dir(a, wroot);
    if ((error = pb_run__mkdirs(a->work, err)) < 0)
        return error;
    runner_forget(a);

    if (a->mode == PB_RUN_BOOTSTRAP) {
        discard_dir(a, a->plex);
        if ((error = pb_run__mkdirs(a->plex, err)) < 0)
            return error;
        alog(a, "info", "cloud Plex data dir %s is empty: the runner builds the library", a->plex);
        return prepared(a, mode,
                        json_pack("{s:s, s:b, s:s, s:f}", "step", "prepare", "ok", 1, "rebuilt",
                                  "empty", "ms", pb_run__now_ms() - t0),
                        err);
    }

    json_t *up = json_object_get(msg, "upload");
    const char *kind = json_string_value(json_object_get(up, "kind"));
    const char *umain = json_string_value(json_object_get(up, "main"));
    const char *ublobs = json_string_value(json_object_get(up, "blobs"));
    json_t *snap = json_object_get(up, "snapshot");
    const char *want_main = json_string_value(json_object_get(snap, "main"));
    const char *want_blobs = json_string_value(json_object_get(snap, "blobs"));
    if (!kind || !umain || !want_main)
        return pb_error_set(err, PB_ECORRUPT,
                            "PREPARE: upload.kind, .main and .snapshot.main "
                            "are required");
    a->has_blobs = ublobs != NULL;
    char zst[PATH_MAX + 200], raw[PATH_MAX + 200];
    snprintf(zst, sizeof(zst), "%s/upload.zst", a->work);
    if (strcmp(kind, "full") == 0) {
        alog(a, "info", "rebuilding the snapshot from the full upload");
        if ((error = fetch(a, umain, zst, a->snap_main, err)) < 0 ||
            (ublobs && (error = fetch(a, ublobs, zst, a->snap_blobs, err)) < 0))
            return error;
    } else if (strcmp(kind, "changeset") == 0) {
        const char *bid =
            json_string_value(json_object_get(json_object_get(msg, "baseline"), "id"));
        if (!bid)
            return pb_error_set(err, PB_ECORRUPT, "PREPARE: a changeset upload needs baseline.id");
        pb_error e = PB_ERROR_INIT;
        error = baseline_to_snapshot(a, bid, a->has_blobs, &e);
        if (error == PB_ENOTFOUND) {
            json_t *o = json_pack("{s:i, s:s, s:s, s:b}", "code", PB_ENOTFOUND, "name",
                                  pb_strerror(PB_ENOTFOUND), "message",
                                  "the store does not hold the home's baseline", "need_full", 1);
            pb_frame_write_json(&a->io, PB_FRAME_ERROR, o, err);
            json_decref(o);
            return 1; /* answered */
        }
        if (error < 0)
            return pb_error_set(err, error, "%s", e.msg);
        alog(a, "info", "applying the home's row changeset to the baseline");
        snprintf(raw, sizeof(raw), "%s/upload.changeset", a->work);
        if ((error = fetch(a, umain, zst, raw, err)) < 0 ||
            (error = pb_run__apply_changeset(a->snap_main, raw, err)) < 0)
            return error;
        if (ublobs && ((error = fetch(a, ublobs, zst, raw, err)) < 0 ||
                       (error = pb_run__apply_changeset(a->snap_blobs, raw, err)) < 0))
            return error;
        unlink(raw);
    } else {
        return pb_error_set(err, PB_ECORRUPT, "PREPARE: unknown upload kind '%s'", kind);
    }

    /* the rebuilt snapshot must be the home's, row for row */
    pb_baseline got;
    if ((error = pb_run__ids(&got, a->snap_main, a->has_blobs ? a->snap_blobs : NULL, err)) < 0)
        return error;
    char hm[33], hb[33];
    pb_run__hex16(hm, got.main);
    pb_run__hex16(hb, got.blobs);
    if (strcmp(hm, want_main) != 0 || (want_blobs && strcmp(hb, want_blobs) != 0)) {
        char msgtxt[300];
        snprintf(msgtxt, sizeof(msgtxt),
                 "the rebuilt snapshot's checksum %s differs from the home's %s", hm, want_main);
        json_t *o = json_pack("{s:i, s:s, s:s, s:b}", "code", PB_ECONFLICT, "name",
                              pb_strerror(PB_ECONFLICT), "message", msgtxt, "need_full", 1);
        pb_frame_write_json(&a->io, PB_FRAME_ERROR, o, err);
        json_decref(o);
        return 1;
    }
    alog(a, "info", "snapshot rebuilt and verified (checksum %.16s)", hm);
    uint64_t mapped = 0;
    if ((error = inject(a, &mapped, err)) < 0)
        return error;
    alog(a, "info", "injected the DB pair into %s (%llu path values mapped home -> cloud)", a->plex,
         (unsigned long long)mapped);
    return prepared(a, mode,
                    json_pack("{s:s, s:b, s:s, s:s, s:I, s:f}", "step", "prepare", "ok", 1,
                              "rebuilt", kind, "snapshot", hm, "mapped", (json_int_t)mapped, "ms",
                              pb_run__now_ms() - t0),
                    err);
}

static int do_run(agent *a, json_t *msg, pb_error *err)
{
    int error, status = -1;
    char *expanded = NULL;
    pid_t child = 0;
    double t0 = pb_run__now_ms();
    const char *cmd = json_string_value(json_object_get(msg, "command"));
    if (!a->prepared)
        return pb_error_set(err, PB_EINVALID, "RUN before PREPARE");
    if (!cmd || !*cmd)
        return pb_error_set(err, PB_EINVALID, "RUN: no runner command");
    if (runner_status(a, &status) == 0) {
        alog(a, "info", "the runner of run %s finished already (status %d)", a->run_id, status);
    } else {
        if (runner_alive(a)) {
            alog(a, "info", "re-attaching to the runner of run %s, still working", a->run_id);
        } else {
            if ((error = pb_runner_expand(&expanded, cmd, a->plex, a->mkplex, err)) < 0)
                return error;
            char shown[2048];
            pb_runner_redact(shown, sizeof(shown), expanded);
            alog(a, "info", "runner: %s", shown);
            error = runner_start(a, &child, expanded, err);
            free(expanded);
            if (error < 0)
                return error;
        }
        if ((error = runner_follow(a, child, &status, err)) < 0)
            return error;
    }
    double ms = pb_run__now_ms() - t0;
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
    if (!pb_run__exists(m))
        return pb_error_set(err, PB_ENOTFOUND, "the runner left no library DB in %s", a->plex);
    char b[PATH_MAX + 128];
    snprintf(b, sizeof(b), "%s/" PB_PLEX_BLOBS_REL, a->plex);
    if (a->mode == PB_RUN_BOOTSTRAP)
        a->has_blobs = pb_run__exists(b);
    a->ran = 1;
    return send_result(
        a, json_pack("{s:s, s:b, s:i, s:f}", "step", "run", "ok", 1, "status", status, "ms", ms),
        err);
}

static int do_list(agent *a, pb_error *err)
{
    int error;
    double t0 = pb_run__now_ms();
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
        alog(a, "info", "%llu path values mapped back cloud -> home", (unsigned long long)mapped);
    pb_export_stats st;
    if ((error = pb_export_list(&st, a->plex, a->fp, a->list, err)) < 0)
        return error;
    alog(a, "info", "the cloud holds %llu files in its synced tree", (unsigned long long)st.listed);
    /* the home gets the compact list (path, type, mode, size, hash per file), zstd */
    char compact[PATH_MAX + 200], zst[PATH_MAX + 210];
    uint64_t n = 0;
    snprintf(compact, sizeof(compact), "%s.compact", a->list);
    snprintf(zst, sizeof(zst), "%s.zst", compact);
    if ((error = pb_run__list_compact(&n, a->list, compact, err)) < 0 ||
        (error = pb_run__zstd(compact, zst, 19, NULL, err)) < 0)
        return error;
    json_t *extra = json_pack("{s:I, s:f, s:s, s:s, s:I}", "files", (json_int_t)n, "ms",
                              pb_run__now_ms() - t0, "encoding", "zstd", "format", "compact1",
                              "raw_bytes", (json_int_t)pb_run__fsize(compact));
    error = pb_frame_send_file(&a->io, PB_FRAME_LIST_DATA, PB_FRAME_LIST_END, zst, extra, NULL,
                               NULL, err);
    json_decref(extra);
    unlink(zst);
    unlink(compact);
    if (!error)
        a->listed = 1;
    return error;
}

static int other_frame(const pb_frame *f, void *payload, pb_error *err)
{
    (void)payload;
    if (f->type == PB_FRAME_LOG || f->type == PB_FRAME_PROGRESS)
        return 0;
    return pb_error_set(err, PB_ECORRUPT, "unexpected %s during the ANSWER stream",
                        pb_frame_type_name(f->type));
}

static int put_zstd(agent *a, const char *src, const char *name, uint64_t *zbytes, pb_error *err)
{
    char zst[PATH_MAX + 200];
    snprintf(zst, sizeof(zst), "%s/put.zst", a->work);
    int error = pb_run__zstd(src, zst, a->zlevel < 9 ? a->zlevel : 9, zbytes, err);
    if (!error) {
        put_prog pp = {a, "baseline", 0};
        error = pb_store_put(a->store, name, zst, on_put, &pp, err);
    }
    unlink(zst);
    return error;
}

/* Records the analysed DB pair as the new baseline in the store and in the cache. */
static int store_baseline(agent *a, const pb_baseline *ids, const char *id, json_t **info,
                          pb_error *err)
{
    int error;
    char name[256], hm[33], hb[33];
    uint64_t zm = 0, zb = 0;
    pb_run__hex16(hm, ids->main);
    pb_run__hex16(hb, ids->blobs);
    snprintf(name, sizeof(name), PB_ST_BASELINE_FMT PB_ST_INFO, id);
    pb_store_info si;
    pb_error e = PB_ERROR_INIT;
    if (pb_store_stat(a->store, name, &si, &e) == 0) {
        alog(a, "info", "the store already holds baseline %.16s", id);
        char *old = NULL;
        if (pb_store_get_mem(a->store, name, &old, NULL, 65536, &e) == 0) {
            json_error_t je;
            *info = json_loads(old, 0, &je);
            free(old);
        }
    } else {
        snprintf(name, sizeof(name), PB_ST_BASELINE_FMT PB_ST_MAIN_DB, id);
        if ((error = put_zstd(a, a->cloud_main, name, &zm, err)) < 0)
            return error;
        if (a->has_blobs) {
            snprintf(name, sizeof(name), PB_ST_BASELINE_FMT PB_ST_BLOBS_DB, id);
            if ((error = put_zstd(a, a->cloud_blobs, name, &zb, err)) < 0)
                return error;
        }
        char schema[64] = "";
        pb_run__schema_version(a->cloud_main, schema, sizeof(schema));
        time_t now = time(NULL);
        *info = json_pack("{s:s, s:s, s:s?, s:s, s:I, s:I, s:I, s:I, s:I, s:s}", "id", id, "main",
                          hm, "blobs", a->has_blobs ? hb : NULL, "run_id", a->run_id, "main_bytes",
                          (json_int_t)pb_run__fsize(a->cloud_main), "blobs_bytes",
                          (json_int_t)(a->has_blobs ? pb_run__fsize(a->cloud_blobs) : 0),
                          "main_zst_bytes", (json_int_t)zm, "blobs_zst_bytes", (json_int_t)zb,
                          "created", (json_int_t)now, "schema_version", schema);
        if (!*info)
            return pb_error_set(err, PB_ENOMEM, "out of memory");
        char *s = json_dumps(*info, JSON_INDENT(2) | JSON_SORT_KEYS);
        snprintf(name, sizeof(name), PB_ST_BASELINE_FMT PB_ST_INFO, id);
        error = s ? pb_store_put_mem(a->store, name, s, strlen(s), err)
                  : pb_error_set(err, PB_ENOMEM, "out of memory");
        free(s);
        if (error < 0)
            return error;
    }
    json_t *cur = json_pack("{s:s, s:s}", "id", id, "run_id", a->run_id);
    char *s = cur ? json_dumps(cur, JSON_COMPACT) : NULL;
    json_decref(cur);
    error = s ? pb_store_put_mem(a->store, PB_ST_BASELINE_CURRENT, s, strlen(s), err)
              : pb_error_set(err, PB_ENOMEM, "out of memory");
    free(s);
    if (error < 0)
        return error;

    /* the cache follows: the next sync starts from here without a download */
    char idfile[PATH_MAX + 64], cmain[PATH_MAX + 64], cblobs[PATH_MAX + 64];
    snprintf(idfile, sizeof(idfile), "%s/id", a->cache);
    snprintf(cmain, sizeof(cmain), "%s/main.db", a->cache);
    snprintf(cblobs, sizeof(cblobs), "%s/blobs.db", a->cache);
    unlink(idfile);
    if ((error = pb_run__mkdirs(a->cache, err)) < 0 ||
        (error = pb_run__copy(a->cloud_main, cmain, err)) < 0 ||
        (a->has_blobs && (error = pb_run__copy(a->cloud_blobs, cblobs, err)) < 0))
        return error;
    FILE *f = fopen(idfile, "w");
    if (!f)
        return pb_error_errno(err, "cannot write %s", idfile);
    fprintf(f, "%s\n", id);
    fclose(f);
    return 0;
}

static int do_build(agent *a, json_t *msg, pb_error *err)
{
    int error;
    double t0 = pb_run__now_ms();
    json_t *binfo = NULL;
    if (!a->listed)
        return pb_error_set(err, PB_EINVALID, "BUILD before LIST");
    json_int_t zl = json_integer_value(json_object_get(msg, "zstd_level"));
    char zst[PATH_MAX + 200];
    json_t *end = NULL;
    snprintf(zst, sizeof(zst), "%s.zst", a->answer);
    if ((error = pb_frame_recv_file(&a->io, PB_FRAME_ANSWER_DATA, PB_FRAME_ANSWER_END, zst, &end,
                                    other_frame, a, err)) < 0)
        return error;
    const char *enc = json_string_value(json_object_get(end, "encoding"));
    if (enc && strcmp(enc, "zstd") == 0)
        error = pb_run__unzstd(zst, a->answer, err);
    else if (!enc)
        error = rename(zst, a->answer) == 0 ? 0 : pb_error_errno(err, "cannot rename %s", zst);
    else
        error = pb_error_set(err, PB_ECORRUPT, "ANSWER_END: unknown encoding '%s'", enc);
    json_decref(end);
    unlink(zst);
    if (error < 0)
        return error;
    alog(a, "info", "received the home's answer (%llu bytes); building the bundle",
         (unsigned long long)pb_run__fsize(a->answer));

    char tmp[PATH_MAX + 160], creator[64];
    snprintf(tmp, sizeof(tmp), "%s/tmp", a->work);
    if ((error = pb_run__mkdirs(tmp, err)) < 0)
        return error;
    snprintf(creator, sizeof(creator), "plexburst %s agent", pb_version());
    pb_export_options eo;
    pb_export_options_init(&eo);
    eo.cloud_dir = a->plex;
    eo.cloud_db = a->cloud_main;
    eo.cloud_blobs = a->has_blobs ? a->cloud_blobs : NULL;
    /* sync: rows against the home's snapshot; bootstrap: no rows (the DBs travel whole) */
    eo.base_db = a->mode == PB_RUN_SYNC ? a->snap_main : a->cloud_main;
    eo.base_blobs = a->has_blobs ? (a->mode == PB_RUN_SYNC ? a->snap_blobs : a->cloud_blobs) : NULL;
    eo.list = a->list;
    eo.answer = a->answer;
    eo.work_dir = tmp;
    /* the records are recompressed solid for the trip: a fast level here */
    (void)zl;
    eo.zstd_level = 3;
    eo.creator = creator;
    /* over the home link the bundle travels solid (one zstd stream over all records), written
     * while the bundle is built */
    char name[256], solid[PATH_MAX + 200], sh[33];
    snprintf(solid, sizeof(solid), "%s.solid", a->bundle);
    eo.solid = solid;
    eo.solid_level = 19;
    pb_export_stats st;
    memset(&st, 0, sizeof(st));
    if ((error = pb_export_build(&st, a->bundle, &eo, err)) < 0)
        return error;
    alog(a, "info",
         "bundle: %llu bytes (%llu rows, %llu new files, %llu deltas, %llu links, %llu unchanged)",
         (unsigned long long)st.bundle_bytes,
         (unsigned long long)(st.rows_inserted + st.rows_updated + st.rows_deleted),
         (unsigned long long)st.files_new, (unsigned long long)st.files_delta,
         (unsigned long long)st.files_link, (unsigned long long)st.files_unchanged);
    uint64_t solid_bytes = st.solid_bytes;
    pb_run__hex16(sh, st.solid_xxh3);
    alog(a, "info", "bundle for the home link: %llu bytes solid (%llu as stored records)",
         (unsigned long long)solid_bytes, (unsigned long long)st.bundle_bytes);
    snprintf(name, sizeof(name), PB_ST_RUN_FMT PB_ST_BUNDLE_SOLID, a->run_id);
    put_prog pp = {a, "bundle", 0};
    error = pb_store_put(a->store, name, solid, on_put, &pp, err);
    unlink(solid);
    if (error < 0)
        return error;

    /* the analysed pair becomes the baseline both sides agree on */
    pb_baseline ids;
    char id[33], hm[33], hb[33];
    if ((error = pb_run__ids(&ids, a->cloud_main, a->has_blobs ? a->cloud_blobs : NULL, err)) < 0)
        return error;
    pb_run__id_hex(id, &ids);
    pb_run__hex16(hm, ids.main);
    pb_run__hex16(hb, ids.blobs);
    if ((error = store_baseline(a, &ids, id, &binfo, err)) < 0) {
        json_decref(binfo);
        return error;
    }
    char bmain[256], bblobs[256];
    snprintf(bmain, sizeof(bmain), PB_ST_BASELINE_FMT PB_ST_MAIN_DB, id);
    snprintf(bblobs, sizeof(bblobs), PB_ST_BASELINE_FMT PB_ST_BLOBS_DB, id);
    json_t *res = json_pack(
        "{s:s, s:b, s:{s:s, s:I, s:s, s:s, s:I}, s:{s:s, s:s, s:s?, s:s, s:s?, s:I, s:I}, "
        "s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f}, "
        "s:f}",
        "step", "build", "ok", 1, "bundle", "name", name, "bytes", (json_int_t)solid_bytes,
        "format", "solid1", "xxh3", sh, "bundle_bytes", (json_int_t)st.bundle_bytes, "baseline",
        "id", id, "main", hm, "blobs", a->has_blobs ? hb : NULL, "main_object", bmain,
        "blobs_object", a->has_blobs ? bblobs : NULL, "main_zst_bytes",
        (json_int_t)json_integer_value(json_object_get(binfo, "main_zst_bytes")), "blobs_zst_bytes",
        (json_int_t)json_integer_value(json_object_get(binfo, "blobs_zst_bytes")), "export",
        "listed", (json_int_t)st.listed, "files_new", (json_int_t)st.files_new, "files_delta",
        (json_int_t)st.files_delta, "files_link", (json_int_t)st.files_link, "files_whole_changed",
        (json_int_t)st.files_whole_changed, "files_unchanged", (json_int_t)st.files_unchanged,
        "answers", (json_int_t)st.answers, "sig_bytes", (json_int_t)st.sig_bytes, "content_bytes",
        (json_int_t)st.content_bytes, "delta_bytes", (json_int_t)st.delta_bytes, "cs_main_bytes",
        (json_int_t)st.cs_main_bytes, "cs_blobs_bytes", (json_int_t)st.cs_blobs_bytes,
        "rows_inserted", (json_int_t)st.rows_inserted, "rows_updated", (json_int_t)st.rows_updated,
        "rows_deleted", (json_int_t)st.rows_deleted, "ms", st.ms, "ms", pb_run__now_ms() - t0);
    json_decref(binfo);
    return send_result(a, res, err);
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

int pb_agent_serve(const pb_agent_options *o, pb_error *err)
{
    int error = 0;
    agent *a = calloc(1, sizeof(*a));
    json_t *msg = NULL, *extra = NULL;
    if (!a)
        return pb_error_set(err, PB_ENOMEM, "out of memory");
    a->o = o;
    a->lock_fd = -1;
    if (!o || !o->workdir || !*o->workdir) {
        error = pb_error_set(err, PB_EINVALID, "agent: --workdir is required");
        goto done;
    }
    if ((error = pb_run__mkdirs(o->workdir, err)) < 0)
        goto done;
    if (!realpath(o->workdir, a->dir)) {
        error = pb_error_errno(err, "agent: cannot resolve %s", o->workdir);
        goto done;
    }
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
    if ((error = pb_run__mkdirs(a->state, err)) < 0 || (error = pb_run__mkdirs(a->fp, err)) < 0)
        goto done;
    if ((error = pb_channel_fd_new(&a->ch, o->in_fd, o->out_fd, 0, err)) < 0 ||
        (error = pb_frame_io_init(&a->io, a->ch, 0, err)) < 0)
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
        if (f.type == PB_FRAME_BYE) {
            pb_frame_write(&a->io, PB_FRAME_BYE, NULL, 0, err);
            break;
        }
        if (f.type == PB_FRAME_CANCEL || f.type == PB_FRAME_LOG)
            continue;
        if (f.type != PB_FRAME_LIST && (error = pb_frame_json(&msg, &f, err)) < 0)
            goto done;
        pb_error serr = PB_ERROR_INIT;
        int rc;
        switch (f.type) {
        case PB_FRAME_PREPARE:
            rc = do_prepare(a, msg, &serr);
            break;
        case PB_FRAME_RUN:
            rc = do_run(a, msg, &serr);
            break;
        case PB_FRAME_LIST:
            rc = do_list(a, &serr);
            break;
        case PB_FRAME_BUILD:
            rc = do_build(a, msg, &serr);
            break;
        default:
            rc =
                pb_error_set(&serr, PB_ECORRUPT, "unexpected %s frame", pb_frame_type_name(f.type));
            break;
        }
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
        pb_run__rmtree(keep);
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

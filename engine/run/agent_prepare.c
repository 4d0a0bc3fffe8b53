/*
 * agent_prepare.c: the agent's PREPARE (agent.c has the conversation): sync: the home's snapshot
 * rebuilt from the stored baseline (cached in DIR/agent/baseline) plus the uploaded row changeset,
 * or taken from a full upload, verified against the home's logical checksum (a mismatch asks for a
 * full upload), and ONLY the DB pair injected into an emptied DIR/plex with paths mapped home ->
 * cloud; bootstrap: an empty DIR/plex. A PREPARE for a run prepared here already (a new agent
 * after a dropped link) keeps the cloud DB: DIR/agent/work/<run>/prepared.json says so.
 * DIR/plex is emptied only when it is ours: missing, empty, or holding the marker
 * DIR/plex/.plexburst-cloud written when the agent made it (outside the sync rule: never sent);
 * a cloud dir made before the marker existed is recognised by its agent's baseline cache
 * (DIR/agent/baseline/id), so that an upgrade does not refuse the user's own default cloud.
 * Role: engine/run, the cloud side. Prerequisites: the store, the DB helpers (run_db.c).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent_int.h"
#include "fs.h"
#include "clock.h"
#include "hex.h"
#include "plexburst/plex.h"
#include "proc.h"
#include "runner.h"
#include "transport_config.h"

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
    if (strcmp(have, id) != 0 || !pb_fs_exists(cmain) || (blobs && !pb_fs_exists(cblobs))) {
        pb_agent__log(a, "info", "fetching baseline %.16s from the store", id);
        pb_fs_rmtree(a->cache);
        if ((error = pb_fs_mkdirs(a->cache, 0700, err)) < 0)
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
        pb_agent__log(a, "info", "baseline %.16s is cached here", id);
    }
    if ((error = pb_fs_copy(cmain, a->snap_main, err)) < 0)
        return error;
    if (blobs && (error = pb_fs_copy(cblobs, a->snap_blobs, err)) < 0)
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

/* Deletes every entry of `trash` (what this run and any earlier one left there: a deleter
 * killed by a reboot leaves its tree behind), then the dir itself when it is empty. */
static void empty_trash(const char *trash)
{
    DIR *d = opendir(trash);
    struct dirent *e;
    char p[PATH_MAX + 300];
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", trash, e->d_name);
        pb_fs_rmtree(p);
    }
    if (d)
        closedir(d);
    rmdir(trash); /* when nothing else waits there */
}

/* Moves `path` (when given and present) out of the way at once, into DIR/agent/trash, and empties
 * the trash in a detached background process that holds none of the agent's descriptors (the
 * agent lock among them): a whole tree takes minutes to delete and no run waits for it. */
void pb_agent__discard(agent *a, const char *path)
{
    char trash[PATH_MAX + 32], dst[PATH_MAX + 96];
    static unsigned seq;
    snprintf(trash, sizeof(trash), "%s/trash", a->state);
    int have = path && pb_fs_exists(path);
    if (!have && !pb_fs_exists(trash))
        return;
    if (have) {
        pb_error e = PB_ERROR_INIT;
        if (pb_fs_mkdirs(trash, 0700, &e) < 0) {
            pb_fs_rmtree(path);
            return;
        }
        snprintf(dst, sizeof(dst), "%s/%ld-%u-%ld", trash, (long)getpid(), seq++, (long)time(NULL));
        if (rename(path, dst) != 0) {
            pb_fs_rmtree(path);
            return;
        }
    }
    pid_t pid = fork();
    if (pid == 0) {
        if (fork() == 0) {
            pb_proc_detach(NULL, 0); /* holds none of the agent's pipes nor its lock */
            empty_trash(trash);
            _exit(0);
        }
        _exit(0);
    }
    if (pid > 0)
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
    else
        empty_trash(trash);
}

/* 1 when `path` is a directory with no entries. */
static int empty_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    int n = 0;
    if (!d)
        return 0;
    while (!n && (e = readdir(d)) != NULL)
        n = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return !n;
}

/* Makes DIR/plex an empty dir carrying the marker. What is there goes only when the agent made
 * it (the marker) or it holds nothing; anything else at DIR/plex is refused, nothing deleted. */
static int fresh_plex(agent *a, pb_error *err)
{
    int error;
    struct stat st;
    char marker[PATH_MAX + 40];
    static const char note[] = "plexburst: the cloud agent made this dir and empties it each run\n";
    snprintf(marker, sizeof(marker), "%s/" PB_AGENT_PLEX_MARKER, a->plex);
    if (lstat(a->plex, &st) == 0) {
        struct stat ms;
        char legacy[PATH_MAX + 160];
        /* a cloud dir an older agent made (before the marker) has its baseline cache */
        snprintf(legacy, sizeof(legacy), "%s/id", a->cache);
        int ours = S_ISDIR(st.st_mode) && ((lstat(marker, &ms) == 0 && S_ISREG(ms.st_mode)) ||
                                           (lstat(legacy, &ms) == 0 && S_ISREG(ms.st_mode)));
        if (!ours && !(S_ISDIR(st.st_mode) && empty_dir(a->plex)))
            return pb_error_set(err, PB_EINVALID,
                                "%s is not the agent's (no " PB_AGENT_PLEX_MARKER
                                " marker): move it away or use another cloud dir",
                                a->plex);
        pb_agent__discard(a, a->plex);
    }
    if ((error = pb_fs_mkdirs(a->plex, 0700, err)) < 0)
        return error;
    return pb_fs_write_file(marker, note, sizeof(note) - 1, 0600, err);
}

/* Injects the snapshot DB pair into an emptied DIR/plex, paths mapped home -> cloud. */
static int inject(agent *a, uint64_t *mapped, pb_error *err)
{
    int error;
    char dbdir[PATH_MAX + 64], m[PATH_MAX + 128], b[PATH_MAX + 128];
    if ((error = fresh_plex(a, err)) < 0)
        return error;
    snprintf(dbdir, sizeof(dbdir), "%s/Plug-in Support/Databases", a->plex);
    if ((error = pb_fs_mkdirs(dbdir, 0700, err)) < 0)
        return error;
    snprintf(m, sizeof(m), "%s/" PB_PLEX_DB_REL, a->plex);
    snprintf(b, sizeof(b), "%s/" PB_PLEX_BLOBS_REL, a->plex);
    if ((error = pb_fs_copy(a->snap_main, m, err)) < 0)
        return error;
    if (a->has_blobs && (error = pb_fs_copy(a->snap_blobs, b, err)) < 0)
        return error;
    return pb_run__map_paths(m, a->to_cloud, mapped, err);
}

/* DIR/agent/work/<run>/prepared.json: the PREPARE of this run is done (mode, has_blobs, the
 * RESULT sent), so that a new agent's PREPARE for the same run keeps the cloud DB. */
static const char *prepared_path(agent *a)
{
    static char path[PATH_MAX + 200];
    snprintf(path, sizeof(path), "%s/prepared.json", a->work);
    return path;
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
    int error = s ? pb_fs_write_file(prepared_path(a), s, strlen(s), 0600, err)
                  : pb_error_set(err, PB_ENOMEM, "out of memory");
    free(s);
    if (error < 0) {
        json_decref(res);
        return error;
    }
    a->prepared = 1;
    return pb_agent__result(a, res, err);
}

/* PREPARE's `s3_env` (a remote agent: sshd forwards no environment): the home's S3 settings
 * become exactly this process's before the store opens. Only the names of
 * pb_transport_config_s3_keys are taken; values are never logged or echoed. */
static int apply_s3_env(json_t *env, pb_error *err)
{
    if (!env || json_is_null(env))
        return 0;
    if (!json_is_object(env))
        return pb_error_set(err, PB_ECORRUPT, "PREPARE: s3_env must be an object");
    for (const char *const *k = pb_transport_config_s3_keys; *k; k++) {
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

/* The runner of an abandoned run that still works is stopped before a fresh PREPARE. */
static void on_stopping(const char *run_id, void *payload)
{
    pb_agent__log(payload, "warn", "stopping the runner of the abandoned run %s", run_id);
}

/* The work paths of this run (DIR/agent/work/<run>/). */
static void work_paths(agent *a, char *wroot, size_t cap)
{
    snprintf(wroot, cap, "%s/work", a->state);
    snprintf(a->work, sizeof(a->work), "%s/%s", wroot, a->run_id);
    snprintf(a->snap_main, sizeof(a->snap_main), "%s/snapshot.db", a->work);
    snprintf(a->snap_blobs, sizeof(a->snap_blobs), "%s/snapshot.blobs.db", a->work);
    snprintf(a->cloud_main, sizeof(a->cloud_main), "%s/cloud.db", a->work);
    snprintf(a->cloud_blobs, sizeof(a->cloud_blobs), "%s/cloud.blobs.db", a->work);
    snprintf(a->list, sizeof(a->list), "%s/list", a->work);
    snprintf(a->answer, sizeof(a->answer), "%s/answer", a->work);
    snprintf(a->bundle, sizeof(a->bundle), "%s/bundle.pbb", a->work);
}

/* The same run prepared here already (a new agent after a dropped link): the cloud DB is kept,
 * the runner may have worked on it; the former RESULT is sent again. 1 when so. */
static int prepared_again(agent *a, const char *mode, int *error, pb_error *err)
{
    json_t *done = json_load_file(prepared_path(a), 0, NULL);
    const char *dmode = json_string_value(json_object_get(done, "mode"));
    if (!dmode || strcmp(dmode, mode) != 0 || !json_is_object(json_object_get(done, "result"))) {
        json_decref(done);
        return 0;
    }
    a->has_blobs = json_is_true(json_object_get(done, "has_blobs"));
    a->prepared = 1;
    pb_agent__log(a, "info", "run %s is prepared here already: the cloud DB is kept", a->run_id);
    json_t *res = json_deep_copy(json_object_get(done, "result"));
    json_decref(done);
    if (res)
        json_object_set_new(res, "again", json_true());
    *error = pb_agent__result(a, res, err);
    return 1;
}

/* Answers the PREPARE with an ERROR asking for a full upload. 1 (answered). */
static int need_full(agent *a, int code, const char *message, pb_error *err)
{
    json_t *o = json_pack("{s:i, s:s, s:s, s:b}", "code", code, "name", pb_strerror(code),
                          "message", message, "need_full", 1);
    pb_frame_write_json(&a->io, PB_FRAME_ERROR, o, err);
    json_decref(o);
    return 1;
}

/* A changeset upload: the stored baseline `bid` + the home's row changesets. 1 when the store
 * lacks the baseline (answered: a full upload is needed). */
static int rebuild_from_changeset(agent *a, const char *bid, const char *umain, const char *ublobs,
                                  const char *zst, pb_error *err)
{
    char raw[PATH_MAX + 200];
    pb_error e = PB_ERROR_INIT;
    int error = baseline_to_snapshot(a, bid, a->has_blobs, &e);
    if (error == PB_ENOTFOUND)
        return need_full(a, PB_ENOTFOUND, "the store does not hold the home's baseline", err);
    if (error < 0)
        return pb_error_set(err, error, "%s", e.msg);
    pb_agent__log(a, "info", "applying the home's row changeset to the baseline");
    snprintf(raw, sizeof(raw), "%s/upload.changeset", a->work);
    if ((error = fetch(a, umain, zst, raw, err)) < 0 ||
        (error = pb_run__apply_changeset(a->snap_main, raw, err)) < 0)
        return error;
    if (ublobs && ((error = fetch(a, ublobs, zst, raw, err)) < 0 ||
                   (error = pb_run__apply_changeset(a->snap_blobs, raw, err)) < 0))
        return error;
    unlink(raw);
    return 0;
}

/* The sync's PREPARE: the home's snapshot rebuilt from the upload, verified row for row against
 * the home's checksum, and injected. 1 when answered with an ERROR (need_full). */
static int prepare_sync(agent *a, json_t *msg, const char *mode, double t0, pb_error *err)
{
    int error;
    json_t *up = json_object_get(msg, "upload");
    const char *kind = json_string_value(json_object_get(up, "kind"));
    const char *umain = json_string_value(json_object_get(up, "main"));
    const char *ublobs = json_string_value(json_object_get(up, "blobs"));
    json_t *snap = json_object_get(up, "snapshot");
    const char *want_main = json_string_value(json_object_get(snap, "main"));
    const char *want_blobs = json_string_value(json_object_get(snap, "blobs"));
    const char *bid = json_string_value(json_object_get(json_object_get(msg, "baseline"), "id"));
    if (!kind || !umain || !want_main)
        return pb_error_set(err, PB_ECORRUPT,
                            "PREPARE: upload.kind, .main and .snapshot.main are required");
    a->has_blobs = ublobs != NULL;
    char zst[PATH_MAX + 200];
    snprintf(zst, sizeof(zst), "%s/upload.zst", a->work);
    if (strcmp(kind, "full") == 0) {
        pb_agent__log(a, "info", "rebuilding the snapshot from the full upload");
        if ((error = fetch(a, umain, zst, a->snap_main, err)) < 0 ||
            (ublobs && (error = fetch(a, ublobs, zst, a->snap_blobs, err)) < 0))
            return error;
    } else if (strcmp(kind, "changeset") == 0) {
        if (!bid)
            return pb_error_set(err, PB_ECORRUPT, "PREPARE: a changeset upload needs baseline.id");
        if ((error = rebuild_from_changeset(a, bid, umain, ublobs, zst, err)) != 0)
            return error;
    } else {
        return pb_error_set(err, PB_ECORRUPT, "PREPARE: unknown upload kind '%s'", kind);
    }
    pb_baseline got;
    if ((error = pb_run__ids(&got, a->snap_main, a->has_blobs ? a->snap_blobs : NULL, err)) < 0)
        return error;
    char hm[33], hb[33], msgtxt[300];
    pb_hex_encode(hm, got.main, 16);
    pb_hex_encode(hb, got.blobs, 16);
    if (strcmp(hm, want_main) != 0 || (want_blobs && strcmp(hb, want_blobs) != 0)) {
        snprintf(msgtxt, sizeof(msgtxt),
                 "the rebuilt snapshot's checksum %s differs from the home's %s", hm, want_main);
        return need_full(a, PB_ECONFLICT, msgtxt, err);
    }
    pb_agent__log(a, "info", "snapshot rebuilt and verified (checksum %.16s)", hm);
    uint64_t mapped = 0;
    if ((error = inject(a, &mapped, err)) < 0)
        return error;
    pb_agent__log(a, "info", "injected the DB pair into %s (%llu path values mapped home -> cloud)",
                  a->plex, (unsigned long long)mapped);
    return prepared(a, mode,
                    json_pack("{s:s, s:b, s:s, s:s, s:I, s:f}", "step", "prepare", "ok", 1,
                              "rebuilt", kind, "snapshot", hm, "mapped", (json_int_t)mapped, "ms",
                              pb_clock_ms() - t0),
                    err);
}

int pb_agent__prepare(agent *a, json_t *msg, pb_error *err)
{
    int error = 0;
    double t0 = pb_clock_ms();
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
        (error = pb_transport_config_store_open(&a->store, store, err)) < 0)
        return error;
    if ((error = load_pathmaps(a, json_object_get(msg, "path_map"), err)) < 0)
        return error;

    char wroot[PATH_MAX + 16];
    work_paths(a, wroot, sizeof(wroot));
    if (prepared_again(a, mode, &error, err))
        return error;

    /* a fresh work dir for this run (older ones go) */
    pb_agent__discard(a, wroot);
    if ((error = pb_fs_mkdirs(a->work, 0700, err)) < 0)
        return error;
    pb_runner_forget(a->state, on_stopping, a);

    if (a->mode == PB_RUN_BOOTSTRAP) {
        if ((error = fresh_plex(a, err)) < 0)
            return error;
        pb_agent__log(a, "info", "cloud Plex data dir %s is empty: the runner builds the library",
                      a->plex);
        return prepared(a, mode,
                        json_pack("{s:s, s:b, s:s, s:f}", "step", "prepare", "ok", 1, "rebuilt",
                                  "empty", "ms", pb_clock_ms() - t0),
                        err);
    }

    return prepare_sync(a, msg, mode, t0, err);
}

/*
 * bootstrap.c: the bootstrap's phases (pb_run with PB_RUN_BOOTSTRAP; run.c drives them): RECOVER,
 * START AGENT, BUILD LIBRARY (the runner builds the library in an empty cloud data dir),
 * EXPORT (the cloud lists its whole tree; each path is looked up in the home's), DOWNLOAD (the DB
 * pair whole + a bundle of the files the home lacks), INSTALL (Plex stopped, the home's user state
 * and edits carried over (carry.c), the former DBs backed up, the DBs installed, the files applied
 * by the journaled apply), FINALIZE. A home that already syncs is refused (PB_EINVALID, nothing
 * touched) unless the options say force. Role: engine/run, the home side (run_ctx.h).
 * Prerequisites: carry.c, the Plex backup, pb_apply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup.h"
#include "carry_int.h"
#include "clock.h"
#include "fs.h"
#include "hex.h"
#include "proc.h"
#include "run_ctx.h"

typedef unsigned long long ull;

/* A home that already syncs (a baseline both sides recorded) keeps its library unless the user
 * asks for a rebuild: nothing is touched before this check. */
static int bs_allowed(rx *x)
{
    if (x->o->force)
        return 0;
    pb_run__home_base(x);
    if (!x->have_base)
        return 0;
    return pb_error_set(x->err, PB_EINVALID,
                        "%s already syncs (baseline %.16s): bootstrap would rebuild its library; "
                        "add --force to rebuild it, keeping the home's user state and edits",
                        x->plex, x->base_id);
}

static int bs_start(rx *x)
{
    int error;
    json_t *res = NULL;
    if ((error = pb_run__start_agent(x)) < 0)
        return error;
    x->agent_mode = "bootstrap";
    if ((error = pb_run__send_prepare(x, "bootstrap")) < 0 ||
        (error = pb_run__await(x, "prepare", &res, NULL)) < 0)
        return pb_run__rejoin(x, error, 0);
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
    if ((error = pb_run__get_file(x, mo, zst, "download")) < 0)
        return error;
    x->r->bytes.bundle_down += pb_fs_size(zst);
    if ((error = pb_run__unzstd(zst, x->snap_main, x->err)) < 0)
        return error;
    unlink(zst);
    if (bo) {
        if ((error = pb_run__get_file(x, bo, zst, "download")) < 0)
            return error;
        x->r->bytes.bundle_down += pb_fs_size(zst);
        if ((error = pb_run__unzstd(zst, x->snap_blobs, x->err)) < 0)
            return error;
        unlink(zst);
    }
    if ((error = pb_run__ids(&x->snap_ids, x->snap_main, bo ? x->snap_blobs : NULL, x->err)) < 0)
        return error;
    char gm[33], gb[33];
    pb_hex_encode(gm, x->snap_ids.main, 16);
    pb_hex_encode(gb, x->snap_ids.blobs, 16);
    if (strcmp(gm, hm) != 0 || (hb && strcmp(gb, hb) != 0))
        return pb_error_set(x->err, PB_ECORRUPT,
                            "the downloaded DB's checksum %s differs from the cloud's %s", gm, hm);
    pb_run__log(x, "info", "the library DB pair arrived and matches the cloud's checksum (%.16s)",
                gm);
    if ((error = pb_run__fetch_bundle(x)) < 0)
        return error;
    return pb_run__verify_bundle(x, 0);
}

/* The stop and start commands, bounded as the apply bounds them (PB_APPLY_PLEX_CMD_TIMEOUT). */
static int run_cmd(rx *x, const char *what, const char *cmd)
{
    if (!cmd)
        return 0;
    pb_run__log(x, "info", "%s: %s", what, cmd);
    pb_proc_limits limits = {PB_APPLY_PLEX_CMD_TIMEOUT, x->o->cancelled, x->o->cancel_payload};
    int st = -1, error = pb_proc_shell_for(&st, cmd, &limits, x->err);
    if (error < 0)
        return error;
    if (st != 0)
        return pb_error_set(x->err, PB_ERROR, "%s failed (status %d): %s", what, st, cmd);
    return 0;
}

static int bs_install(rx *x)
{
    int error = 0;
    char stage_main[PATH_MAX + 200], stage_blobs[PATH_MAX + 200];
    char backup[PATH_MAX + 128], made[PATH_MAX + 200];
    const char *dbdir = x->pd.db_dir;
    int had_main = pb_fs_exists(x->main_db), had_blobs = pb_fs_exists(x->blobs_db);
    /* from here the apply's record follows the new DBs: the former copy goes */
    if ((error = pb_run__cur_write(x, "installing", x->err)) < 0)
        return error;
    pb_run__forget_home_base(x);
    if ((error = pb_fs_mkdirs_inherit(dbdir, x->err)) < 0)
        return error;
    snprintf(stage_main, sizeof(stage_main), "%s/.pb-bootstrap-%s.db", dbdir, x->run_id);
    snprintf(stage_blobs, sizeof(stage_blobs), "%s/.pb-bootstrap-%s.blobs.db", dbdir, x->run_id);
    /* the installed pair takes the owner and mode of the DBs it replaces (or of their dir) */
    if ((error = pb_fs_copy(x->snap_main, stage_main, x->err)) < 0 ||
        (error = pb_fs_inherit(stage_main, x->main_db, x->err)) < 0 ||
        (x->has_blobs && ((error = pb_fs_copy(x->snap_blobs, stage_blobs, x->err)) < 0 ||
                          (error = pb_fs_inherit(stage_blobs, x->blobs_db, x->err)) < 0)))
        goto done;
    /* Plex stopped around the install (a whole DB cannot be merged online) */
    double t_stop = pb_clock_ms();
    if (!x->online && (error = run_cmd(x, "stopping Plex", x->stop_cmd)) < 0)
        goto done;
    if (had_main) {
        pb_run_carry k;
        if ((error = pb_run__carry_home(&k, stage_main, x->main_db, x->err)) < 0)
            goto restart;
        x->r->carried.accounts = k.accounts;
        x->r->carried.settings = k.settings;
        x->r->carried.views = k.views;
        pb_run__log(x, "info",
                    "home user state carried over: %llu rows of %llu user tables (%llu accounts, "
                    "%llu item settings, %llu plays)",
                    (ull)k.user_rows, (ull)k.user_tables, (ull)k.accounts, (ull)k.settings,
                    (ull)k.views);
        pb_run__log(x, "info",
                    "home library edits carried over: %llu playlists and collections, %llu tags, "
                    "%llu memberships, %llu items with locked edits or uploads (matched by file "
                    "and guid)",
                    (ull)k.lists, (ull)k.tags, (ull)k.taggings, (ull)k.edited);
        if (k.dropped)
            pb_run__log(x, "warn",
                        "%llu home rows were about items no longer in the library and were left "
                        "out (the former DBs are in the backup)",
                        (ull)k.dropped);
        snprintf(backup, sizeof(backup), "%s/plexburst-backups", dbdir);
        if ((error = pb_plex_backup(made, sizeof(made), NULL, backup, x->main_db,
                                    had_blobs ? x->blobs_db : NULL, 3, x->err)) < 0)
            goto restart;
        pb_run__log(x, "info", "the former DBs are backed up in %s", made);
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
    pb_run__log(x, "info", "library DB pair installed (Preferences.xml untouched)");
    /* the files: a bundle based on the installed baseline, applied by the journaled apply */
    if ((error = pb_baseline_write(x->state, &x->snap_ids, x->err)) < 0)
        goto restart;
    error = pb_run__apply_bundle(x, x->snap_main, x->snap_blobs, 1, 0);
restart:;
    int rc2 = x->online ? 0 : run_cmd(x, "starting Plex", x->start_cmd);
    x->r->ms.downtime += pb_clock_ms() - t_stop;
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
    if ((error = pb_run__keep_home_base(x, x->snap_main, x->snap_blobs, &x->snap_ids)) < 0)
        return error;
    pb_run__store_prune(x);
    pb_run__end_work(x);
    return 0;
}

int pb_run__bootstrap(rx *x)
{
    int error = 0, resume = 0;
    if ((error = bs_allowed(x)) < 0)
        return error;
    PHASE(x, "RECOVER", pb_run__recover(x, &resume));
    if ((error = pb_run__begin_work(x)) < 0)
        return error;
    snprintf(x->r->upload_kind, sizeof(x->r->upload_kind), "none");
    PHASE(x, "START AGENT", bs_start(x));
    PHASE(x, "BUILD LIBRARY", pb_run__analysis(x));
    PHASE(x, "EXPORT", pb_run__export(x, 1));
    PHASE(x, "DOWNLOAD", bs_download(x));
    PHASE(x, "INSTALL", bs_install(x));
    PHASE(x, "FINALIZE", bs_finalize(x));
done:
    return error;
}

/*
 * resume.c: the run in flight and what survives it. <state>/sync/current.json names the run in
 * flight and how far it got (started, uploaded, injected, bundle_ready, downloaded, applying,
 * dry_run, applied; a bootstrap: started, installing), so that the next run's RECOVER knows
 * whether to resume it (its bundle is stored: download and apply it) or roll it back (drop its
 * work and store objects). An interrupted apply is first completed or rolled back by its journal.
 * Also the home's copy of the baseline (below).
 * Role: engine/run, the home side (run_ctx.h). Prerequisites: pb_apply_recover_ex, the store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"
#include "hex.h"
#include "run_ctx.h"

int pb_run__cur_write(rx *x, const char *state, pb_error *err)
{
    char path[PATH_MAX + 64], sm[33], sb[33], tm[33] = "", tb[33] = "";
    snprintf(path, sizeof(path), "%s/current.json", x->sync);
    pb_hex_encode(sm, x->snap_ids.main, 16);
    pb_hex_encode(sb, x->snap_ids.blobs, 16);
    if (x->bundle_name[0]) {
        pb_hex_encode(tm, x->binfo.target_main, 16);
        pb_hex_encode(tb, x->binfo.target_blobs, 16);
    }
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:I, s:s, s:{s:s, s:s?}, s:b, s:s, s:s, s:s, s:b}", "run_id", x->run_id,
        "mode", x->r->mode_name, "state", state, "pid", (json_int_t)getpid(), "store", x->store_url,
        "snapshot", "main", sm, "blobs", x->has_blobs ? sb : NULL, "has_blobs", x->has_blobs,
        "bundle", x->bundle_name, "target_main", tm, "target_blobs", tb, "next_ok", x->next_ok);
    if (!o)
        return pb_error_set(err, PB_ENOMEM, "out of memory");
    json_object_set_new(o, "bundle_xxh3", json_string(x->bundle_xxh3));
    if (!strcmp(state, "refused"))
        json_object_set_new(o, "refused", json_string(x->refused));
    int rc = pb_run__write_json(path, o, err);
    json_decref(o);
    return rc;
}

void pb_run__cur_clear(rx *x)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/current.json", x->sync);
    unlink(path);
}

void pb_run__set_work_paths(rx *x)
{
    snprintf(x->work, sizeof(x->work), "%s/work/%s", x->sync, x->run_id);
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

/* A fresh work dir for this run (whatever older runs left goes) and its current.json. */
int pb_run__begin_work(rx *x)
{
    char wroot[PATH_MAX + 32];
    snprintf(x->run_id, sizeof(x->run_id), "%s", x->r->run_id);
    snprintf(wroot, sizeof(wroot), "%s/work", x->sync);
    pb_fs_rmtree(wroot);
    pb_run__set_work_paths(x);
    int error = pb_fs_mkdirs(x->work, 0700, x->err);
    return error < 0 ? error : pb_run__cur_write(x, "started", x->err);
}

/* Rolls the interrupted run `old` (current.json's state `st`) back: its store objects and work
 * dropped, current.json cleared. */
static void roll_back(rx *x, const char *st)
{
    snprintf(x->r->resume_action, sizeof(x->r->resume_action), "rolled_back");
    pb_run__store_drop_run(x, x->run_id);
    pb_fs_rmtree(x->work);
    /* past these steps the apply's record may not name the home's copy any more */
    if (st && (!strcmp(st, "dry_run") || !strcmp(st, "applying") || !strcmp(st, "applied") ||
               !strcmp(st, "installing")))
        pb_run__forget_home_base(x);
    pb_run__cur_clear(x);
}

/* Errors that say nothing about the stored bundle itself (the run is kept for the next try). */
static int transient(int error)
{
    return error == PB_ECANCELLED || error == PB_ENET || error == PB_ENOMEM || error == PB_EBUSY ||
           error == PB_EAUTH || error == PB_EIO;
}

/* What a resume would apply: the stored bundle (or the one already downloaded) exists and
 * verifies. 0 when it does; 1 when it is lost or corrupt (why in `why`); else a transient error
 * (x->err). */
static int check_bundle(rx *x, char *why, size_t cap)
{
    pb_error e = PB_ERROR_INIT;
    pb_error *keep = x->err;
    x->err = &e;
    int error = pb_run__fetch_bundle(x);
    if (error == 0)
        error = pb_run__verify_bundle(x, 0);
    x->err = keep;
    if (error == 0)
        return 0;
    if (transient(error))
        return pb_error_set(x->err, error, "%s", e.msg);
    snprintf(why, cap, "%s", e.msg[0] ? e.msg : pb_strerror(error));
    unlink(x->bundle);
    return 1;
}

/* A run a guard refused (state "refused"): kept until the user decides. Without a decision the
 * sync stops here (PB_EREFUSED); --retry-refused resumes it (its bundle applied again, under this
 * command's guards), --discard-refused rolls it back. *resume as pb_run__recover. */
static int decide_refused(rx *x, json_t *c, const char *old, int ready, int *resume)
{
    const char *why = json_string_value(json_object_get(c, "refused"));
    if (x->o->refused_action == PB_RUN_REFUSED_DISCARD) {
        pb_run__log(x, "warn",
                    "run %s, refused by a guard, is discarded (--discard-refused): "
                    "rolled back, home unchanged; starting a new run",
                    old);
        roll_back(x, "refused");
        return 0;
    }
    if (x->o->refused_action == PB_RUN_REFUSED_RETRY && ready) {
        snprintf(x->r->resume_action, sizeof(x->r->resume_action), "resumed");
        pb_run__log(x, "warn",
                    "run %s was refused by a guard; applying its bundle again "
                    "(--retry-refused)",
                    old);
        *resume = 1;
        return 0;
    }
    if (x->o->refused_action == PB_RUN_REFUSED_RETRY) {
        pb_run__log(x, "warn",
                    "run %s was refused by a guard and its work is gone: rolled back, "
                    "home unchanged; starting a new run",
                    old);
        roll_back(x, "refused");
        return 0;
    }
    return pb_error_set(x->err, PB_EREFUSED,
                        "run %s was refused by a guard (%s); it is kept until you decide", old,
                        why && *why ? why : "no reason recorded");
}

/* RECOVER: the apply journal first, then an interrupted run. Sets *resume when the interrupted
 * run's bundle is ready to be applied (x then describes that run); the bundle is fetched and
 * verified here, and a run whose stored bundle is lost or corrupt is rolled back instead. */
int pb_run__recover(rx *x, int *resume)
{
    int error;
    pb_recover_result rr;
    *resume = 0;
    memset(&rr, 0, sizeof(rr));
    if ((error = pb_apply_recover_ex(&rr, x->plex, x->state, x->err)) < 0)
        return error;
    if (rr.action != PB_RECOVER_NONE)
        pb_run__log(x, "warn", "an interrupted apply (run %s) was %s: %s", rr.run_id,
                    rr.action == PB_RECOVER_ROLLED_BACK ? "rolled back" : "completed", rr.detail);
    char path[PATH_MAX + 64];
    json_t *c = NULL;
    pb_error e = PB_ERROR_INIT;
    snprintf(path, sizeof(path), "%s/current.json", x->sync);
    if (pb_run__read_json(&c, path, &e) != 0) {
        if (x->o->refused_action)
            pb_run__log(x, "info", "no refused run to %s",
                        x->o->refused_action == PB_RUN_REFUSED_RETRY ? "retry" : "discard");
        pb_run__log(x, "info", "nothing to recover");
        return 0;
    }
    const char *old = json_string_value(json_object_get(c, "run_id"));
    const char *st = json_string_value(json_object_get(c, "state"));
    const char *mode = json_string_value(json_object_get(c, "mode"));
    /* we hold the run lock: whatever current.json names was interrupted */
    snprintf(x->r->resumed_run, sizeof(x->r->resumed_run), "%s", old ? old : "");
    int refused = st && !strcmp(st, "refused");
    int ready = st && mode && (!strcmp(mode, "sync") || !strcmp(mode, "resume")) &&
                (!strcmp(st, "bundle_ready") || !strcmp(st, "downloaded") ||
                 !strcmp(st, "applying") || !strcmp(st, "applied") || refused);
    snprintf(x->run_id, sizeof(x->run_id), "%s", old ? old : "");
    snprintf(x->resumed_state, sizeof(x->resumed_state), "%s", st ? st : "");
    pb_run__set_work_paths(x);
    const char *sm = json_string_value(json_object_get(json_object_get(c, "snapshot"), "main"));
    const char *sb = json_string_value(json_object_get(json_object_get(c, "snapshot"), "blobs"));
    const char *bn = json_string_value(json_object_get(c, "bundle"));
    const char *bx = json_string_value(json_object_get(c, "bundle_xxh3"));
    const char *rf = json_string_value(json_object_get(c, "refused"));
    snprintf(x->bundle_xxh3, sizeof(x->bundle_xxh3), "%s", bx ? bx : "");
    snprintf(x->refused, sizeof(x->refused), "%s", rf ? rf : "");
    const char *su = json_string_value(json_object_get(c, "store"));
    memset(&x->snap_ids, 0, sizeof(x->snap_ids));
    if (ready &&
        (!sm || pb_hex_decode(x->snap_ids.main, 16, sm) != 0 || !bn || !*bn ||
         !pb_fs_exists(x->snap_main) || (x->has_blobs && (!sb || !pb_fs_exists(x->snap_blobs)))))
        ready = 0;
    if (sb)
        pb_hex_decode(x->snap_ids.blobs, 16, sb);
    x->snap_ids.has_blobs = x->has_blobs;
    if (ready)
        snprintf(x->bundle_name, sizeof(x->bundle_name), "%s", bn);
    if (refused) {
        error = decide_refused(x, c, old ? old : "?", ready, resume);
        if (error < 0 || !*resume) {
            json_decref(c);
            return error;
        }
    } else if (x->o->refused_action) {
        pb_run__log(x, "info", "no refused run to %s",
                    x->o->refused_action == PB_RUN_REFUSED_RETRY ? "retry" : "discard");
    }
    char why[600] = "";
    if (ready && (error = check_bundle(x, why, sizeof(why))) < 0) {
        json_decref(c);
        return error;
    }
    if (ready && error == 0) {
        if (su && strcmp(su, x->store_url) != 0)
            pb_run__log(x, "warn", "the interrupted run used the store %s", su);
        snprintf(x->r->resume_action, sizeof(x->r->resume_action), "resumed");
        if (!refused)
            pb_run__log(x, "warn",
                        "run %s was interrupted (%s) with its bundle stored: completing it", old,
                        st);
        *resume = 1;
    } else if (ready) {
        *resume = 0;
        pb_run__log(x, "warn",
                    "run %s was interrupted (%s) but its stored bundle is lost or corrupt (%s): "
                    "rolled back, home unchanged; starting a new run",
                    old ? old : "?", st ? st : "?", why);
        roll_back(x, st);
    } else {
        pb_run__log(x, "warn",
                    "run %s was interrupted (%s) before its bundle was ready: rolled back, "
                    "home unchanged",
                    old ? old : "?", st ? st : "?");
        roll_back(x, st);
    }
    json_decref(c);
    return 0;
}

void pb_run__end_work(rx *x)
{
    pb_run__cur_clear(x);
    if (!x->o->keep_work)
        pb_fs_rmtree(x->work);
    pb_run__prune_records(x->state, PB_STATUS_MAX_RUNS);
}

/* ---------------------------------------------------------------------------------------- */
/* The home's copy of the baseline                                                            */

/* <state>/baseline.db (+ .blobs.db) is the baseline the home and the store agree on; its ids are
 * the apply's record <state>/baseline (pb_baseline_read), the one record of it. Whenever no run is
 * in flight the record names the copy; a run that gets past the apply rewrites both (FINALIZE),
 * and recovery drops the copy when an interrupted run may have left them apart. */

static void home_base_paths(rx *x, char *bmain, char *bblobs, size_t cap)
{
    snprintf(bmain, cap, "%s/" PB_HOME_BASE_MAIN, x->state);
    snprintf(bblobs, cap, "%s/" PB_HOME_BASE_BLOBS, x->state);
}

void pb_run__home_base(rx *x)
{
    char bmain[PATH_MAX + 64], bblobs[PATH_MAX + 64];
    pb_error e = PB_ERROR_INIT;
    home_base_paths(x, bmain, bblobs, sizeof(bmain));
    x->have_base = 0;
    memset(&x->base_ids, 0, sizeof(x->base_ids));
    if (pb_baseline_read(&x->base_ids, x->state, &e) != 0 || !pb_fs_exists(bmain) ||
        (x->base_ids.has_blobs && !pb_fs_exists(bblobs)))
        return;
    pb_run__id_hex(x->base_id, &x->base_ids);
    x->have_base = 1;
}

void pb_run__forget_home_base(rx *x)
{
    char bmain[PATH_MAX + 64], bblobs[PATH_MAX + 64];
    home_base_paths(x, bmain, bblobs, sizeof(bmain));
    unlink(bmain);
    unlink(bblobs);
    pb_sums_remove(bmain);
    pb_sums_remove(bblobs);
    pb_fs_sync_dir(x->state);
}

int pb_run__keep_home_base(rx *x, const char *main, const char *blobs, const pb_baseline *ids)
{
    char bmain[PATH_MAX + 64], bblobs[PATH_MAX + 64];
    int error;
    home_base_paths(x, bmain, bblobs, sizeof(bmain));
    if ((error = pb_baseline_write(x->state, ids, x->err)) < 0)
        return error;
    if (rename(main, bmain) != 0)
        return pb_error_errno(x->err, "cannot install the baseline copy %s", bmain);
    if (ids->has_blobs && rename(blobs, bblobs) != 0)
        return pb_error_errno(x->err, "cannot install the baseline copy %s", bblobs);
    if (!ids->has_blobs) {
        unlink(bblobs);
        pb_sums_remove(bblobs);
    }
    /* after the copies: sums that name another digest than their DB's are ignored */
    if ((error = pb_sums_move(main, bmain, x->err)) < 0 ||
        (ids->has_blobs && (error = pb_sums_move(blobs, bblobs, x->err)) < 0))
        return error;
    pb_fs_sync_dir(x->state);
    pb_run__id_hex(x->r->baseline_id, ids);
    pb_run__log(x, "info", "baseline %.16s recorded on both sides", x->r->baseline_id);
    return 0;
}

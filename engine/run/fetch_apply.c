/*
 * fetch_apply.c: the bundle at home: downloaded from the store (resumably, in its solid form,
 * checked against the hash the agent gave), verified with its changesets extracted, the next
 * baseline copy reproduced (snapshot + the bundle's rows), and applied by the journaled apply
 * (pb_apply: guards, stage, stop Plex, merge, install, start; --dry-run stops after the report).
 * Role: engine/run, the home side (run_ctx.h). Prerequisites: the bundle reader, pb_apply.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"
#include "hex.h"
#include "plexburst/units.h"
#include "run_ctx.h"
#include "solid.h"

/* Downloads the bundle (resumably) into x->bundle. The solid form is turned back into a bundle
 * (bundle/solid.c) in one pass that also checks the agent's checksum of the download and is the
 * bundle's one verify pass (x->binfo filled, changesets extracted); pb_run__verify_bundle then
 * only verifies a bundle that did not come that way (a plain bundle, or one left by a former
 * run). */
int pb_run__fetch_bundle(rx *x)
{
    int error;
    size_t n = strlen(x->bundle_name), sl = strlen(PB_ST_BUNDLE_SOLID);
    if (pb_fs_exists(x->bundle))
        return 0; /* verified already when RECOVER fetched it (bundle_verified) */
    x->bundle_verified = 0;
    if (n < sl || strcmp(x->bundle_name + n - sl, PB_ST_BUNDLE_SOLID) != 0) {
        if ((error = pb_run__get_file(x, x->bundle_name, x->bundle, "download")) < 0)
            return error;
        x->r->bytes.bundle_down += pb_fs_size(x->bundle);
        return 0;
    }
    char solid[PATH_MAX + 200];
    snprintf(solid, sizeof(solid), "%s.solid", x->bundle);
    if ((error = pb_run__get_file(x, x->bundle_name, solid, "download")) < 0)
        return error;
    x->r->bytes.bundle_down += pb_fs_size(solid);
    pb_bundle_verify_options vo;
    pb_bundle_verify_options_init(&vo);
    vo.extract_main = x->cs_main;
    vo.extract_blobs = x->cs_blobs;
    vo.plex_dir = x->plex;
    error = pb_solid_decode(solid, x->bundle_xxh3, x->bundle, 1, &vo, &x->binfo, x->err);
    unlink(solid);
    x->bundle_verified = error == 0;
    return error;
}

/* The snapshot as the start of the next baseline copy: a hard link when the bundle brings no
 * rows for that DB (neither name is written again: the apply only reads the snapshot), else a
 * copy the rows are applied to. */
static int next_start(const char *snap, const char *next, int has_rows, pb_error *e)
{
    unlink(next);
    if (!has_rows && link(snap, next) == 0)
        return 0;
    return pb_fs_copy(snap, next, e);
}

/* The next baseline copy's ids: only the tables the bundle's rows changed are read (their pages
 * differ from the snapshot's), the others' sums come from the snapshot's (sums.c); its sums are
 * kept beside it, to travel with it into the state dir. */
static int next_ids(rx *x, pb_baseline *got, pb_error *e)
{
    const char *snap[2] = {x->snap_main, x->snap_blobs}, *next[2] = {x->next_main, x->next_blobs};
    const uint8_t *snap_id[2] = {x->snap_ids.main, x->snap_ids.blobs};
    uint8_t *id[2] = {got->main, got->blobs};
    for (int i = 0; i < 1 + x->has_blobs; i++) {
        pb_sums ref = {0}, out = {0};
        if (!x->snap_sums[i].n) /* a resumed run: the snapshot's sums from its file */
            pb_sums_load(&ref, snap[i], snap_id[i]);
        int error = pb_sums_checksum(id[i], &out, NULL, next[i], snap[i],
                                     x->snap_sums[i].n ? &x->snap_sums[i] : &ref, e);
        if (!error)
            error = pb_sums_save(&out, next[i], id[i], e);
        pb_sums_dispose(&ref);
        pb_sums_dispose(&out);
        if (error < 0)
            return error;
    }
    got->has_blobs = x->has_blobs;
    return 0;
}

/* The one verify pass at home (unless pb_run__fetch_bundle's decode was it): the bundle's records,
 * checksums and changesets (extracted for the next baseline and the apply) and its paths against
 * the data dir; the apply then trusts it (pb_run__apply_bundle). With make_next, reproduces the
 * next baseline copy. */
int pb_run__verify_bundle(rx *x, int make_next)
{
    int error;
    if (!x->bundle_verified || x->binfo.bytes != pb_fs_size(x->bundle)) {
        pb_bundle_verify_options vo;
        pb_bundle_verify_options_init(&vo);
        vo.extract_main = x->cs_main;
        vo.extract_blobs = x->cs_blobs;
        vo.plex_dir = x->plex;
        x->bundle_verified = 0;
        if ((error = pb_bundle_verify(&x->binfo, x->bundle, &vo, x->err)) < 0)
            return error;
        x->bundle_verified = 1;
    }
    char b1[PB_UNITS_BYTES_MAX];
    pb_run__log(x, "info", "bundle verified: %llu records, %s of content",
                (unsigned long long)x->binfo.records,
                pb_units_bytes(b1, sizeof(b1), x->binfo.content_bytes));
    if (!make_next)
        return 0;
    /* the next baseline = the snapshot + the bundle's rows, exactly what the cloud recorded */
    x->next_ok = 0;
    pb_error e = PB_ERROR_INIT;
    pb_baseline got;
    memset(&got, 0, sizeof(got));
    if (next_start(x->snap_main, x->next_main, x->binfo.has_cs_main, &e) == 0 &&
        (!x->has_blobs ||
         next_start(x->snap_blobs, x->next_blobs, x->binfo.has_cs_blobs, &e) == 0) &&
        (!x->binfo.has_cs_main || pb_run__apply_changeset(x->next_main, x->cs_main, &e) == 0) &&
        (!x->has_blobs || !x->binfo.has_cs_blobs ||
         pb_run__apply_changeset(x->next_blobs, x->cs_blobs, &e) == 0) &&
        next_ids(x, &got, &e) == 0) {
        if (memcmp(got.main, x->binfo.target_main, 16) == 0 &&
            (!x->has_blobs || memcmp(got.blobs, x->binfo.target_blobs, 16) == 0))
            x->next_ok = 1;
        else
            pb_error_set(&e, PB_ECONFLICT, "its checksum differs from the cloud's");
    }
    if (!x->next_ok)
        pb_run__log(x, "warn",
                    "could not reproduce the cloud's baseline at home (%s): the next sync "
                    "uploads the whole snapshot",
                    e.msg);
    return 0;
}

int pb_run__download(rx *x, int resumed)
{
    int error;
    if ((error = pb_run__fetch_bundle(x)) < 0)
        return error;
    if ((error = pb_run__verify_bundle(x, 1)) < 0)
        return error;
    (void)resumed;
    return pb_run__cur_write(x, "downloaded", x->err);
}

static void on_apply_phase(int phase, void *payload)
{
    rx *x = payload;
    pb_run__log(x, "detail", "apply: %s", pb_apply_phase_name(phase));
    if (phase == PB_APPLY_STAGE && x->r->apply.have_report) {
        pb_run_event ev = {0};
        ev.kind = PB_EV_REPORT;
        pb_run__emit(x, &ev);
    }
}

/* Applies the bundle pb_run__verify_bundle verified (handed over, not verified again) to a home
 * whose DB pair derives from the snapshot (its ids, and base_main/base_blobs: its copy). */
int pb_run__apply_bundle(rx *x, const char *base_main, const char *base_blobs, int online,
                         int dry_run)
{
    pb_apply_options ao;
    pb_bundle_verified v; /* a view of x's verify results (nothing to dispose) */
    memset(&v, 0, sizeof(v));
    v.path = x->bundle;
    v.size = x->binfo.bytes;
    memcpy(v.checksum, x->binfo.checksum, 16);
    v.info = x->binfo;
    v.cs_main = x->binfo.has_cs_main ? x->cs_main : NULL;
    v.cs_blobs = x->binfo.has_cs_blobs ? x->cs_blobs : NULL;
    v.plex_dir = (char *)x->plex; /* borrowed: v is never disposed */
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
    ao.holds_run_lock = 1; /* take_lock: this run holds it */
    ao.cancelled = x->o->cancelled;
    ao.cancel_payload = x->o->cancel_payload;
    x->r->have_apply = 1;
    int error = pb_apply(&x->r->apply, &ao, x->err);
    x->r->ms.downtime += x->r->apply.ms.downtime;
    if (dry_run && x->r->apply.have_report) {
        pb_run_event ev = {0};
        ev.kind = PB_EV_REPORT;
        pb_run__emit(x, &ev);
    }
    return error;
}

int pb_run__apply_phase(rx *x)
{
    int error;
    /* the bundle is based on the snapshot: pb_apply takes its ids (ao.base), the baseline record
     * is left alone (an interrupted dry run is rolled back, never resumed) */
    /* (a dry run of a resumed run leaves its state alone: the run stays in flight) */
    if (!(x->o->dry_run && x->resuming) &&
        (error = pb_run__cur_write(x, x->o->dry_run ? "dry_run" : "applying", x->err)) < 0)
        return error;
    pb_run__fault_point("after_record");
    error = pb_run__apply_bundle(x, x->snap_main, x->snap_blobs, x->online, x->o->dry_run);
    if (error == PB_EREFUSED && !x->o->dry_run) {
        /* kept refused until the user decides (pb_run__recover): the next night does not simply
         * fetch it again to be refused again */
        pb_error e = PB_ERROR_INIT;
        snprintf(x->refused, sizeof(x->refused), "%s", x->err->msg);
        if (pb_run__cur_write(x, "refused", &e) == 0)
            pb_run__log(x, "warn",
                        "run %s is kept refused until you decide: `plexburst sync "
                        "--retry-refused` (with a higher --max-delete-pct, or --plex-stop-cmd) "
                        "applies it, `plexburst sync --discard-refused` drops it",
                        x->run_id);
    }
    if (error < 0)
        return error;
    if (x->o->dry_run) {
        pb_run__log(x, "info",
                    "dry run: the bundle was checked and the report made; nothing applied");
        return 0;
    }
    const pb_apply_result *a = &x->r->apply;
    pb_run__log(x, "info",
                "applied: %llu rows inserted, %llu updated, %llu deleted; %llu files new, "
                "%llu patched; Plex down %.1f s",
                (unsigned long long)a->rows.inserted, (unsigned long long)a->rows.updated,
                (unsigned long long)a->rows.deleted, (unsigned long long)a->files_new,
                (unsigned long long)a->files_patched, a->ms.downtime / 1000);
    if (a->swapped)
        pb_run__log(
            x, "info",
            "the rows were merged into a copy while Plex ran (%.1f s); the stop swapped it in",
            a->ms.premerge / 1000);
    else if (a->swap_note[0])
        pb_run__log(x, "warn", "%s", a->swap_note);
    pb_run__fault_point("after_apply");
    return pb_run__cur_write(x, "applied", x->err);
}

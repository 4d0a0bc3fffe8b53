/*
 * sync.c: the nightly sync's phases (pb_run with PB_RUN_SYNC; run.c drives them):
 * 1 RECOVER (resume.c), 2 SNAPSHOT (online backup of the live pair in one read transaction;
 * logical checksums that read only the rows of the leaves that changed since the baseline copy:
 * sums.c), 3 UPLOAD DELTA (row changeset baseline -> snapshot over the tables whose rows
 * changed, zstd; the whole snapshot the first time), 4 INJECT DB (agent started, snapshot
 * rebuilt and verified in the cloud; a mismatch falls back to a full upload), 5 ANALYSIS (the
 * runner), 6 EXPORT (the cloud's list of what it wrote, those paths looked up in the home's tree
 * through the fingerprint cache, the home's answer with signatures, the bundle built and stored
 * with the new baseline), 7 DOWNLOAD and 8 APPLY (fetch_apply.c), 9 FINALIZE (the baseline
 * recorded, work cleaned, old runs pruned from the store).
 * An interrupted sync whose bundle is stored is completed (resume_sync).
 * ANALYSIS and EXPORT serve the bootstrap too (bootstrap.c).
 * Role: engine/run, the home side (run_ctx.h). Prerequisites: the fingerprint lookup, sqldiff's
 * page comparison, diff and checksum,
 * the bundle's answer, the store and the agent link.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"
#include "hex.h"
#include "plexburst/units.h"
#include "run_ctx.h"
#include "runner_home.h"

/* The snapshot's ids: only the tables whose pages differ from the home's baseline copy are read
 * (sums.c); the others' sums come from the copy's, and those tables are flagged for the diff to
 * leave out, as are the tables read whose rows sum as in the copy (pb_sums_mark_equal). The
 * snapshot's sums are kept beside it for the next baseline copy. */
static int snapshot_ids(rx *x)
{
    char base[2][PATH_MAX + 64];
    const char *snap[2] = {x->snap_main, x->snap_blobs};
    const uint8_t *base_id[2] = {x->base_ids.main, x->base_ids.blobs};
    uint8_t *id[2] = {x->snap_ids.main, x->snap_ids.blobs};
    unsigned reused = 0, tables = 0, equal = 0;
    memset(&x->snap_ids, 0, sizeof(x->snap_ids));
    pb_run__home_base(x);
    snprintf(base[0], sizeof(base[0]), "%s/" PB_HOME_BASE_MAIN, x->state);
    snprintf(base[1], sizeof(base[1]), "%s/" PB_HOME_BASE_BLOBS, x->state);
    for (int i = 0; i < 1 + x->has_blobs; i++) {
        pb_sums ref = {0};
        unsigned r = 0;
        pb_error e = PB_ERROR_INIT;
        int use = x->have_base && !x->o->full_upload && (i == 0 || x->base_ids.has_blobs);
        if (use)
            pb_sums_load(&ref, base[i], base_id[i]);
        int error = pb_sums_checksum(id[i], &x->snap_sums[i], &r, snap[i], use ? base[i] : NULL,
                                     &ref, x->err);
        unsigned eq = 0;
        if (error == 0 && use)
            error = pb_sums_mark_equal(&x->snap_sums[i], &eq, snap[i], base[i], &ref, x->err);
        pb_sums_dispose(&ref);
        if (error < 0)
            return error;
        equal += eq;
        if (pb_sums_save(&x->snap_sums[i], snap[i], id[i], &e) < 0)
            pb_run__log(x, "warn", "%s", e.msg);
        reused += r;
        tables += (unsigned)x->snap_sums[i].n;
    }
    x->snap_ids.has_blobs = x->has_blobs;
    unsigned ranged = 0;
    for (int i = 0; i < 1 + x->has_blobs; i++)
        for (size_t k = 0; k < x->snap_sums[i].n; k++)
            ranged += x->snap_sums[i].e[k].ranged != 0;
    pb_run__log(x, "detail",
                "snapshot checksum: %u of %u tables unchanged since the baseline copy (same "
                "pages), %u summed from their changed leaves, %u read whole; %u with the same "
                "rows as the copy (left out of the diff)",
                reused - ranged, tables, ranged, tables - reused, equal);
    return 0;
}

static int do_snapshot(rx *x)
{
    int error;
    if ((error = pb_run__snapshot(x->main_db, x->snap_main, x->err)) < 0)
        return error;
    if (x->has_blobs && (error = pb_run__snapshot(x->blobs_db, x->snap_blobs, x->err)) < 0)
        return error;
    if ((error = snapshot_ids(x)) < 0)
        return error;
    pb_run__id_hex(x->r->snapshot_id, &x->snap_ids);
    x->r->bytes.snapshot_raw =
        pb_fs_size(x->snap_main) + (x->has_blobs ? pb_fs_size(x->snap_blobs) : 0);
    char b1[PB_UNITS_BYTES_MAX];
    pb_run__log(x, "info", "snapshot of the live DB pair: %s, id %.16s",
                pb_units_bytes(b1, sizeof(b1), x->r->bytes.snapshot_raw), x->r->snapshot_id);
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
        error = pb_run__put_file(x, name, zst, "upload");
        unlink(zst);
        if (error < 0)
            return error;
        x->r->bytes.baseline_full_upload += z;
    }
    snprintf(x->r->upload_kind, sizeof(x->r->upload_kind), "full");
    char b1[PB_UNITS_BYTES_MAX];
    pb_run__log(x, "info", "uploaded the whole snapshot: %s zstd (%s)",
                pb_units_bytes(b1, sizeof(b1), x->r->bytes.baseline_full_upload),
                x->r->full_upload_reason[0] ? x->r->full_upload_reason : "no baseline yet");
    return 0;
}

/* The row changeset could not be made from the home's baseline copy (unreadable, damaged): the
 * whole snapshot goes up instead, and the copy is dropped (rebuilt by this run). */
static int diff_failed(rx *x, int error)
{
    if (error == PB_ECANCELLED || error == PB_ENOMEM)
        return error;
    snprintf(x->r->full_upload_reason, sizeof(x->r->full_upload_reason),
             "the home's baseline copy is unreadable: %.100s", x->err->msg);
    pb_run__log(x, "warn", "%s: uploading the whole snapshot", x->r->full_upload_reason);
    *x->err = (pb_error)PB_ERROR_INIT;
    x->r->bytes.changeset_raw = x->r->bytes.changeset_up = x->r->up.changeset_rows = 0;
    pb_run__forget_home_base(x);
    x->have_base = 0;
    if ((error = upload_full(x)) < 0)
        return error;
    return pb_run__cur_write(x, "uploaded", x->err);
}

static int do_upload(rx *x)
{
    int error;
    pb_run__home_base(x);
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
        return pb_run__cur_write(x, "uploaded", x->err);
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
        if ((error = pb_run__diff(&bytes, &records, base[i], snap[i], &x->snap_sums[i], raw,
                                  x->err)) < 0)
            return diff_failed(x, error);
        if ((error = pb_run__zstd(raw, zst, x->zlevel, &z, x->err)) < 0)
            return error;
        unlink(raw);
        snprintf(name, sizeof(name), PB_ST_RUN_FMT "upload/%s", x->run_id, obj[i]);
        error = pb_run__put_file(x, name, zst, "upload");
        unlink(zst);
        if (error < 0)
            return error;
        x->r->bytes.changeset_raw += bytes;
        x->r->bytes.changeset_up += z;
        x->r->up.changeset_rows += records;
    }
    snprintf(x->r->upload_kind, sizeof(x->r->upload_kind), "changeset");
    char b1[PB_UNITS_BYTES_MAX], b2[PB_UNITS_BYTES_MAX];
    pb_run__log(x, "info",
                "uploaded the row changeset against baseline %.16s: %llu rows, %s (%s raw)",
                x->base_id, (unsigned long long)x->r->up.changeset_rows,
                pb_units_bytes(b1, sizeof(b1), x->r->bytes.changeset_up),
                pb_units_bytes(b2, sizeof(b2), x->r->bytes.changeset_raw));
    return pb_run__cur_write(x, "uploaded", x->err);
}

/* The cloud failed to rebuild the snapshot from the stored baseline and a row changeset (the
 * baseline damaged in the store, or a home copy that is not the store's): a full upload mends it
 * (the design's rule: a checksum mismatch means a full upload). */
static int rebuild_failed(rx *x, int error)
{
    return strcmp(x->r->upload_kind, "changeset") == 0 && error != PB_ECANCELLED &&
           error != PB_ENET && error != PB_ENOMEM && error != PB_EBUSY && error != PB_EAUTH &&
           error != PB_ESCHEMA && error != PB_EINVALID;
}

static int do_inject(rx *x)
{
    int error, need_full = 0;
    json_t *res = NULL;
    if ((error = pb_run__start_agent(x)) < 0)
        return error;
    x->agent_mode = "sync";
    if ((error = pb_run__send_prepare(x, "sync")) < 0 ||
        (error = pb_run__await(x, "prepare", &res, &need_full)) < 0) {
        if ((error = pb_run__rejoin(x, error, 0)) < 0 && !rebuild_failed(x, error))
            return error;
        if (error < 0) {
            /* the stored baseline or the changeset is damaged: a full upload, a new agent */
            snprintf(x->r->full_upload_reason, sizeof(x->r->full_upload_reason),
                     "the stored baseline is damaged or not the home's copy: %.100s", x->err->msg);
            *x->err = (pb_error)PB_ERROR_INIT;
            pb_run__stop_agent(x, 1);
            if ((error = pb_run__start_agent(x)) < 0)
                return error;
            need_full = 1;
        } else {
            res = json_pack("{s:s}", "rebuilt", "before the reconnection");
        }
    }
    if (need_full) {
        pb_run__log(x, "warn",
                    "the cloud cannot rebuild the snapshot from the changeset (%s): "
                    "uploading it whole",
                    x->r->full_upload_reason);
        if ((error = upload_full(x)) < 0 || (error = pb_run__send_prepare(x, "sync")) < 0 ||
            (error = pb_run__await(x, "prepare", &res, NULL)) < 0)
            return error;
        /* the home's baseline copy is not the store's: rebuild it from this run on */
        pb_run__forget_home_base(x);
    }
    pb_run__log(x, "info", "the cloud rebuilt the home snapshot (%s) and injected the DB pair",
                json_string_value(json_object_get(res, "rebuilt")));
    json_decref(res);
    return pb_run__cur_write(x, "injected", x->err);
}

int pb_run__analysis(rx *x)
{
    int error;
    json_t *res = NULL;
    x->r->runner_status = -1;
    for (;;) {
        error = pb_run__send_run(x);
        if (error == 0 && (error = pb_run__await(x, "the analysis", &res, NULL)) == 0)
            break;
        /* a dropped link: a new agent re-attaches to the runner (RUN again) */
        if ((error = pb_run__rejoin(x, error, 0)) < 0)
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
    pb_run__log(x, "info", "the runner finished in %.1f s",
                json_number_value(json_object_get(res, "ms")) / 1000);
    json_decref(res);
    return 0;
}

static int send_answer_progress(const pb_progress *p, void *payload)
{
    rx *x = payload;
    pb_run__progress(x, "answer", p->bytes_done, p->bytes_total, NULL);
    return pb_run__cancelled(x);
}

static int export_once(rx *x, int bootstrap);

/* The export, again from LIST after a dropped link (the agent's LIST and BUILD are
 * idempotent: the bundle and the baseline are stored again under the same names). */
int pb_run__export(rx *x, int bootstrap)
{
    int error;
    while ((error = export_once(x, bootstrap)) == PB_ENET)
        if ((error = pb_run__rejoin(x, error, 1)) < 0)
            break;
    return error;
}

/* The listed paths the home lacks or holds in another version, into `wanted_path`: each listed
 * path looked up in the home's tree through the fingerprint cache (only those: the home's walk
 * follows what the cloud wrote, not the library). */
static int home_wanted(rx *x, uint64_t *listed, uint64_t *wanted, uint64_t *links,
                       const char *wanted_path)
{
    pb_fingerprint_lookup *home = NULL;
    int error = pb_fingerprint_lookup_open(&home, x->plex, x->state, x->err);
    if (error < 0)
        return error;
    error = pb_run__list_wanted(listed, wanted, links, x->list, home, wanted_path, x->err);
    const pb_fingerprint_lookup_stats *s = pb_fingerprint_lookup_stats_get(home);
    char b1[PB_UNITS_BYTES_MAX];
    pb_run__log(x, "info",
                "home tree: the %llu listed paths looked up: %llu held, %llu hashed (%s), %llu "
                "from the cache",
                (unsigned long long)s->looked_up, (unsigned long long)s->found,
                (unsigned long long)s->hashed, pb_units_bytes(b1, sizeof(b1), s->hashed_bytes),
                (unsigned long long)s->cached);
    int closed = pb_fingerprint_lookup_close(home, x->err);
    return error < 0 ? error : closed;
}

/* The cloud's list (zstd on the wire). For a compact list the home keeps only the listed paths
 * it lacks or holds in another version (home_wanted), and the answer names just those (a
 * manifest list is answered as it is). `answer_list` gets the list to answer. */
static int fetch_list(rx *x, char *answer_list, size_t cap)
{
    int error;
    json_t *end = NULL;
    char zst[PATH_MAX + 200];
    snprintf(zst, sizeof(zst), "%s.zst", x->list);
    snprintf(answer_list, cap, "%s", x->list);
    if ((error = pb_frame_write(&x->io, PB_MSG_LIST, NULL, 0, x->err)) < 0 ||
        (error = pb_frame_recv_file(&x->io, PB_MSG_LIST_DATA, PB_MSG_LIST_END, zst, &end,
                                    pb_run__on_frame, x, x->err)) < 0)
        return error;
    x->list_bytes = pb_fs_size(zst);
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
    char wanted_path[PATH_MAX + 200];
    uint64_t listed = 0, wanted = 0, links = 0;
    if (fmt && strcmp(fmt, "compact1") == 0) {
        snprintf(wanted_path, sizeof(wanted_path), "%s.wanted", x->list);
        if ((error = home_wanted(x, &listed, &wanted, &links, wanted_path)) < 0) {
            json_decref(end);
            return error;
        }
        snprintf(answer_list, cap, "%s", wanted_path);
    } else if (fmt) {
        json_decref(end);
        return pb_error_set(x->err, PB_ECORRUPT, "LIST_END: unknown list format '%s'", fmt);
    }
    char b1[PB_UNITS_BYTES_MAX];
    pb_run__log(x, "info",
                "the cloud lists %lld files (%s of list); home lacks or holds another version of "
                "%llu",
                (long long)json_integer_value(json_object_get(end, "files")),
                pb_units_bytes(b1, sizeof(b1), x->list_bytes), (unsigned long long)wanted);
    if (links)
        pb_run__log(x, "warn",
                    "the cloud's tree holds %llu symlink%s the home lacks: skipped (a bundle "
                    "carries regular files only)",
                    (unsigned long long)links, links == 1 ? "" : "s");
    json_decref(end);
    return 0;
}

/* The home's answer (what it lacks, with signatures), the BUILD asked and its result awaited. */
static int send_answer(rx *x, const char *answer_list)
{
    int error;
    char zst[PATH_MAX + 200];
    pb_answer_options ao;
    memset(&ao, 0, sizeof(ao));
    ao.version = PB_ANSWER_OPTIONS_VERSION;
    ao.home_manifest = NULL; /* a manifest list (older agents): a full fingerprint answers it */
    ao.state_dir = x->state;
    pb_export_stats ast;
    memset(&ast, 0, sizeof(ast));
    if ((error = pb_export_answer(&ast, x->plex, answer_list, x->answer, &ao, x->err)) < 0)
        return error;
    char b1[PB_UNITS_BYTES_MAX];
    pb_run__log(x, "info",
                "home answer: %llu files wanted (%s of rsync signatures for the ones home holds "
                "in another version)",
                (unsigned long long)ast.answers, pb_units_bytes(b1, sizeof(b1), ast.sig_bytes));
    /* the bundle built in the cloud */
    json_t *o = json_pack("{s:i}", "zstd_level", x->zlevel);
    error = o ? pb_frame_write_json(&x->io, PB_MSG_BUILD, o, x->err)
              : pb_error_set(x->err, PB_ENOMEM, "out of memory");
    json_decref(o);
    snprintf(zst, sizeof(zst), "%s.zst", x->answer);
    json_t *extra =
        json_pack("{s:s, s:I}", "encoding", "zstd", "raw_bytes", (json_int_t)pb_fs_size(x->answer));
    if (error < 0 ||
        (error = pb_run__zstd(x->answer, zst, x->zlevel < 12 ? x->zlevel : 12, NULL, x->err)) < 0 ||
        (error = pb_frame_send_file(&x->io, PB_MSG_ANSWER_DATA, PB_MSG_ANSWER_END, zst, extra,
                                    send_answer_progress, x, x->err)) < 0) {
        json_decref(extra);
        unlink(zst);
        return error;
    }
    json_decref(extra);
    x->answer_bytes = pb_fs_size(zst);
    unlink(zst);
    x->r->bytes.answer_up = x->answer_bytes;
    if ((error = pb_run__await(x, "the bundle build", &x->build_res, NULL)) < 0)
        return error;
    return 0;
}

/* The bundle's name, hash and the export's numbers from the BUILD's result. */
static void read_build(rx *x)
{
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
    char b1[PB_UNITS_BYTES_MAX];
    pb_run__log(x, "info",
                "the cloud stored a bundle of %s: %llu rows changed, %llu new files, "
                "%llu file deltas",
                pb_units_bytes(b1, sizeof(b1), s->bundle_bytes),
                (unsigned long long)(s->rows_inserted + s->rows_updated + s->rows_deleted),
                (unsigned long long)s->files_new, (unsigned long long)s->files_delta);
}

static int export_once(rx *x, int bootstrap)
{
    int error;
    char answer_list[PATH_MAX + 200];
    if ((error = fetch_list(x, answer_list, sizeof(answer_list))) < 0 ||
        (error = send_answer(x, answer_list)) < 0)
        return error;
    read_build(x);
    pb_run__stop_agent(x, 1);
    if (!bootstrap)
        return pb_run__cur_write(x, "bundle_ready", x->err);
    return 0;
}

/* FINALIZE: the baseline recorded on both sides (the home's copy is the next baseline the
 * download reproduced, or none), the work cleaned, old runs pruned from the store. */
static int do_finalize(rx *x, int dry_run)
{
    int error = 0;
    if (!dry_run) {
        pb_baseline target;
        memset(&target, 0, sizeof(target));
        memcpy(target.main, x->binfo.target_main, 16);
        memcpy(target.blobs, x->binfo.target_blobs, 16);
        target.has_blobs = x->has_blobs;
        if (x->next_ok) {
            if ((error = pb_run__keep_home_base(x, x->next_main, x->next_blobs, &target)) < 0)
                return error;
        } else {
            pb_run__forget_home_base(x);
            if ((error = pb_baseline_write(x->state, &target, x->err)) < 0)
                return error;
        }
        pb_run__store_prune(x);
    }
    pb_run__end_work(x);
    return error;
}

/* A dry run that met a run in flight: the report made, the run left as it was for the next
 * real sync. */
static int keep_in_flight(rx *x)
{
    pb_run__log(x, "info", "dry run: run %s stays in flight; the next sync completes it",
                x->run_id);
    return pb_run__cur_write(x, x->resumed_state, x->err);
}

/* Completes an interrupted sync whose bundle is stored (a dry run only reports it). */
static int resume_sync(rx *x)
{
    int error = 0;
    snprintf(x->r->mode_name, sizeof(x->r->mode_name), "resume");
    x->resuming = 1;
    pb_baseline rec;
    pb_error e = PB_ERROR_INIT;
    PHASE(x, "DOWNLOAD", pb_run__download(x, 1));
    if (x->o->dry_run) {
        if (strcmp(x->resumed_state, "applied") != 0)
            PHASE(x, "APPLY", pb_run__apply_phase(x));
        PHASE(x, "FINALIZE", keep_in_flight(x));
        goto done;
    }
    /* was it applied already (the journal rolled it forward, or it ended before FINALIZE)? */
    if (pb_baseline_read(&rec, x->state, &e) == 0 &&
        memcmp(rec.main, x->binfo.target_main, 16) == 0 &&
        memcmp(rec.main, x->snap_ids.main, 16) != 0) {
        pb_run__log(x, "info", "the bundle of run %s was applied before the interruption",
                    x->run_id);
    } else {
        PHASE(x, "APPLY", pb_run__apply_phase(x));
    }
    PHASE(x, "FINALIZE", do_finalize(x, 0));
done:
    return error;
}

int pb_run__sync(rx *x)
{
    int error = 0, resume = 0;
    PHASE(x, "RECOVER", pb_run__recover(x, &resume));
    if (resume)
        return resume_sync(x);
    if ((error = pb_run__begin_work(x)) < 0)
        return error;
    PHASE(x, "SNAPSHOT", do_snapshot(x));
    PHASE(x, "UPLOAD DELTA", do_upload(x));
    PHASE(x, "INJECT DB", do_inject(x));
    PHASE(x, "ANALYSIS", pb_run__analysis(x));
    PHASE(x, "EXPORT", pb_run__export(x, 0));
    PHASE(x, "DOWNLOAD", pb_run__download(x, 0));
    PHASE(x, "APPLY", pb_run__apply_phase(x));
    PHASE(x, "FINALIZE", do_finalize(x, x->o->dry_run));
done:
    return error;
}

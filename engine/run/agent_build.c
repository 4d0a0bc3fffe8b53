/*
 * agent_build.c: the agent's BUILD (agent.c has the conversation): receives the home's ANSWER
 * (what it lacks, with signatures), builds the bundle (pb_export_build: base = the snapshot, rows
 * filtered by the Plex policy), stores it in its solid form for the home link, and records the
 * analysed DB pair as the new baseline in the store (baseline/<id>/, baseline/current.json) and
 * in the agent's cache.
 * Role: engine/run, the cloud side. Prerequisites: the store, the bundle writer.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent_int.h"
#include "bundle_int.h"
#include "clock.h"
#include "fs.h"
#include "hex.h"
#include "plexburst/units.h"

/* The store's put progress as PROGRESS frames, a few per second. */
typedef struct put_prog {
    agent *a;
    const char *what;
    double last;
} put_prog;

static int on_put(const pb_progress *pr, void *payload)
{
    put_prog *p = payload;
    double now = pb_clock_ms();
    if (now - p->last < 250 && pr->bytes_done < pr->bytes_total)
        return 0;
    p->last = now;
    json_t *o = json_pack("{s:s, s:I, s:I}", "what", p->what, "done", (json_int_t)pr->bytes_done,
                          "total", (json_int_t)pr->bytes_total);
    pb_error e = PB_ERROR_INIT;
    if (o)
        pb_frame_write_json(&p->a->io, PB_MSG_PROGRESS, o, &e);
    json_decref(o);
    return 0;
}

/* The bundle build's progress (content bytes written, no total) as PROGRESS frames, a few per
 * second. */
static int on_build(const pb_progress *pr, void *payload)
{
    put_prog *p = payload;
    if (pb_clock_ms() - p->last < 250)
        return 0;
    return on_put(pr, payload); /* without a total on_put sends it */
}

static int other_frame(const pb_frame *f, void *payload, pb_error *err)
{
    (void)payload;
    if (f->type == PB_MSG_LOG || f->type == PB_MSG_PROGRESS)
        return 0;
    return pb_error_set(err, PB_ECORRUPT, "unexpected %s during the ANSWER stream",
                        pb_protocol_msg_name(f->type));
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
    pb_hex_encode(hm, ids->main, 16);
    pb_hex_encode(hb, ids->blobs, 16);
    snprintf(name, sizeof(name), PB_ST_BASELINE_FMT PB_ST_INFO, id);
    pb_store_info si;
    pb_error e = PB_ERROR_INIT;
    if (pb_store_stat(a->store, name, &si, &e) == 0) {
        pb_agent__log(a, "info", "the store already holds baseline %.16s", id);
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
                          (json_int_t)pb_fs_size(a->cloud_main), "blobs_bytes",
                          (json_int_t)(a->has_blobs ? pb_fs_size(a->cloud_blobs) : 0),
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
    if ((error = pb_fs_mkdirs(a->cache, 0700, err)) < 0 ||
        (error = pb_fs_copy(a->cloud_main, cmain, err)) < 0 ||
        (a->has_blobs && (error = pb_fs_copy(a->cloud_blobs, cblobs, err)) < 0))
        return error;
    FILE *f = fopen(idfile, "w");
    if (!f)
        return pb_error_errno(err, "cannot write %s", idfile);
    fprintf(f, "%s\n", id);
    fclose(f);
    return 0;
}

int pb_agent__build(agent *a, json_t *msg, pb_error *err)
{
    int error;
    double t0 = pb_clock_ms();
    json_t *binfo = NULL;
    if (!a->listed)
        return pb_error_set(err, PB_EINVALID, "BUILD before LIST");
    json_int_t zl = json_integer_value(json_object_get(msg, "zstd_level"));
    char zst[PATH_MAX + 200];
    json_t *end = NULL;
    snprintf(zst, sizeof(zst), "%s.zst", a->answer);
    if ((error = pb_frame_recv_file(&a->io, PB_MSG_ANSWER_DATA, PB_MSG_ANSWER_END, zst, &end,
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
    char b1[PB_UNITS_BYTES_MAX], b2[PB_UNITS_BYTES_MAX];
    pb_agent__log(a, "info", "received the home's answer (%s); building the bundle",
                  pb_units_bytes(b1, sizeof(b1), pb_fs_size(a->answer)));

    char tmp[PATH_MAX + 160], creator[64];
    snprintf(tmp, sizeof(tmp), "%s/tmp", a->work);
    if ((error = pb_fs_mkdirs(tmp, 0700, err)) < 0)
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
    put_prog bp = {a, "build", 0};
    eo.progress = on_build;
    eo.progress_payload = &bp;
    pb_export_stats st;
    memset(&st, 0, sizeof(st));
    if ((error = pb_export_build(&st, a->bundle, &eo, err)) < 0)
        return error;
    pb_agent__log(a, "info",
                  "bundle: %s (%llu rows, %llu new files, %llu deltas, %llu links, %llu unchanged)",
                  pb_units_bytes(b1, sizeof(b1), st.bundle_bytes),
                  (unsigned long long)(st.rows_inserted + st.rows_updated + st.rows_deleted),
                  (unsigned long long)st.files_new, (unsigned long long)st.files_delta,
                  (unsigned long long)st.files_link, (unsigned long long)st.files_unchanged);
    uint64_t solid_bytes = st.solid_bytes;
    pb_hex_encode(sh, st.solid_xxh3, 16);
    pb_agent__log(a, "info", "bundle for the home link: %s solid (%s as stored records)",
                  pb_units_bytes(b2, sizeof(b2), solid_bytes),
                  pb_units_bytes(b1, sizeof(b1), st.bundle_bytes));
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
    pb_hex_encode(hm, ids.main, 16);
    pb_hex_encode(hb, ids.blobs, 16);
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
        "rows_deleted", (json_int_t)st.rows_deleted, "ms", st.ms, "ms", pb_clock_ms() - t0);
    json_decref(binfo);
    return pb_agent__result(a, res, err);
}

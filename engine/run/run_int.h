/*
 * run_int.h (internal): what the home side of the runs (run.c and the files it drives), the
 * agent (agent*.c) and the run records (records.c) share: the store layout (docs/store.md), the
 * home state dir layout, DB helpers (snapshots, ids, changeset application, path rewriting:
 * run_db.c; user state carried over by a bootstrap: carry.c) and JSON / zstd file helpers.
 */
#ifndef PB_RUN_INT_H
#define PB_RUN_INT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "plexburst/bundle.h"
#include "plexburst/errors.h"
#include "plexburst/fingerprint.h"
#include "plexburst/plexmerge.h"
#include "plexburst/run.h"
#include "sums.h"

/* ---- the store layout (docs/store.md) ---- */
#define PB_ST_BASELINE_CURRENT "baseline/current.json" /* {"id": the latest baseline} */
#define PB_ST_BASELINE_FMT     "baseline/%s/" /* + main.db.zst, blobs.db.zst, baseline.json */
#define PB_ST_RUN_FMT          "runs/%s/" /* + upload.json, upload/..., bundle.pbb, state.json */
#define PB_ST_MAIN_DB          "main.db.zst"
#define PB_ST_BLOBS_DB         "blobs.db.zst"
#define PB_ST_MAIN_CS          "main.changeset.zst"
#define PB_ST_BLOBS_CS         "blobs.changeset.zst"
#define PB_ST_BUNDLE           "bundle.pbb"
#define PB_ST_BUNDLE_SOLID     "bundle.solid.zst" /* what travels: bundle/solid.c */
#define PB_ST_STATE            "state.json"
#define PB_ST_INFO             "baseline.json"
#define PB_ST_KEEP_RUNS        3 /* runs kept in the store */
#define PB_ST_KEEP_BASELINES   2 /* baselines kept (besides the one the home records) */

/* ---- home state dir layout ---- */
#define PB_HOME_BASE_MAIN                                                                          \
    "baseline.db" /* the home's copy of the baseline (its ids: the                                 \
                    apply's record <state>/baseline) */
#define PB_HOME_BASE_BLOBS "baseline.blobs.db"
#define PB_HOME_SYNC_DIR   "sync" /* current.json, work/<run-id>/ */
#define PB_HOME_RUNS_DIR   "runs" /* <run-id>.json: the run records */
#define PB_HOME_LOGS_DIR   "logs" /* <run-id>.log, written by the CLI */

/* ---- DB helpers (run_db.c) ---- */

/** A snapshot of `src` written to `dst` with SQLite's online backup API (consistent while Plex
 * writes; journal_mode DELETE in the copy). `dst` is replaced. */
int pb_run__snapshot(const char *src, const char *dst, pb_error *err);
/** Baseline ids of a DB pair (blobs may be NULL). */
int pb_run__ids(pb_baseline *out, const char *main_db, const char *blobs_db, pb_error *err);
/** The 32-hex id of a pair: 16 hex digits of the main digest, 16 of the blobs digest. */
void pb_run__id_hex(char out[33], const pb_baseline *b);
/** Raw changeset base -> target into `out_path`: every candidate table but those `same` flags
 * (optional: tables whose pages equal the base's, sums.h). */
int pb_run__diff(uint64_t *bytes, uint64_t *records, const char *base, const char *target,
                 const pb_sums *same, const char *out_path, pb_error *err);
/** Applies a raw changeset to `db` exactly (a 3-way merge whose live side is the base). */
int pb_run__apply_changeset(const char *db, const char *cs_path, pb_error *err);
/** Rewrites the Plex path columns of `db` with `pm` (prefix mapping); *changed gets the rows. */
int pb_run__map_paths(const char *db, const pb_pathmap *pm, uint64_t *changed, pb_error *err);

/**
 * Bootstrap: carries the home's user state from `old_db` (the DB being replaced) into `new_db`:
 * accounts (by id), metadata_item_settings (by account_id + guid: the home's row wins) and
 * metadata_item_views (plays the new DB lacks, by account_id + guid + viewed_at), over the
 * columns both DBs have. counts: accounts, settings, views written.
 */
int pb_run__carry_user_state(const char *new_db, const char *old_db, uint64_t counts[3],
                             pb_error *err);
/** The newest schema_migrations.version of `db` ("" when unknown). */
void pb_run__schema_version(const char *db, char *out, size_t cap);

/* ---- the compact LIST (bundle/list.c) ---- */
/** Agent: the compact list of the files and symlinks of `manifest` (format in bundle/list.c). */
int pb_run__list_compact(uint64_t *entries, const char *manifest, const char *out, pb_error *err);
/** Home: looks up each path of a compact list in the home's tree (`home`) and writes the text
 * list (one path per line, walk order) of the listed paths the home lacks or holds in another
 * version; the cloud's symlinks are never asked for (*links: how many the home lacks). */
int pb_run__list_wanted(uint64_t *listed, uint64_t *wanted, uint64_t *links, const char *compact,
                        pb_fingerprint_lookup *home, const char *out, pb_error *err);

/* ---- file helpers (run_db.c; the general ones are base/fs.h) ---- */
/** zstd of `src` at `level` into `dst` (replaced atomically); *out_bytes (optional): its size. */
int pb_run__zstd(const char *src, const char *dst, int level, uint64_t *out_bytes, pb_error *err);
/** The reverse (dst replaced atomically). */
int pb_run__unzstd(const char *src, const char *dst, pb_error *err);
/** Writes `obj` as JSON to `path` atomically (temp, fsync, rename). */
int pb_run__write_json(const char *path, const json_t *obj, pb_error *err);
/** Reads a JSON object from `path` (PB_ENOTFOUND when absent, PB_ECORRUPT when malformed). */
int pb_run__read_json(json_t **out, const char *path, pb_error *err);
/** A run id: UTC YYYYMMDD-HHMMSS-xxxx (random hex). */
void pb_run__new_id(char out[40]);

/* ---- run records (records.c) ---- */
/** Writes <state>/runs/<id>.json from the result so far (state: "running", "ok", ...). */
int pb_run__record(const char *state_dir, const pb_run_result *r, const char *state, pb_error *err);
/** Removes old records and logs beyond the newest `keep`. */
void pb_run__prune_records(const char *state_dir, size_t keep);

/* ---- the agent's lock in DIR/agent ---- */
#define PB_AGENT_LOCK "agent.lock"

#endif

/*
 * run_ctx.h (internal): the home side of one run (pb_run), shared by the files that make it:
 * run.c (options, settings, lock, events, phases, the result), link.c (the conversation with the
 * agent), sync.c (the sync's phases), bootstrap.c, resume.c (the run in flight, recovery, the
 * home's baseline copy), fetch_apply.c (the bundle downloaded, verified and applied), store_gc.c
 * (store transfers and pruning).
 */
#ifndef PB_RUN_CTX_H
#define PB_RUN_CTX_H

#include <limits.h>
#include <jansson.h>
#include "bundle_int.h"
#include "channel.h"
#include "cloud.h"
#include "config.h"
#include "protocol.h"
#include "plexdir.h"
#include "run_int.h"
#include "store.h"

typedef struct rx {
    const pb_run_options *o;
    pb_run_result *r;
    pb_error *err;
    pb_config *cfg;
    pb_run_settings set;
    pb_plexdir pd;
    const char *plex, *state;       /* pd.root, pd.state_dir */
    const char *main_db, *blobs_db; /* pd.main_db, pd.blobs_db */
    char sync[PATH_MAX + 16], work[PATH_MAX + 100];
    char store_url[PATH_MAX + 8];
    const char *runner, *stop_cmd, *start_cmd, *path_map; /* set.* */
    double max_del;
    int online, zlevel;
    int has_blobs;
    pb_cloud *cloud;
    pb_store *store;
    pb_channel *ch;
    pb_frame_io io;
    int io_ok;
    const char *agent_mode; /* the PREPARE's mode ("sync", "bootstrap") for a reconnection */
    int rejoins;            /* reconnections of the agent's link during this run */
    double t0, pt0, pcpu0;  /* the run's and the phase's start; the phase's start in CPU ms */
    const char *phase_name;
    int lock_fd;
    char snap_main[PATH_MAX + 160], snap_blobs[PATH_MAX + 160];
    char list[PATH_MAX + 160], answer[PATH_MAX + 160], bundle[PATH_MAX + 160];
    char cs_main[PATH_MAX + 160], cs_blobs[PATH_MAX + 160];
    char next_main[PATH_MAX + 160], next_blobs[PATH_MAX + 160];
    pb_baseline snap_ids;
    pb_sums snap_sums[2]; /* the snapshot's per-table sums (main, blobs), `same` vs the base copy */
    pb_baseline base_ids;
    int have_base;
    char base_id[33];
    json_t *build_res;
    char bundle_name[256];
    char bundle_xxh3[33]; /* of the solid form, from the agent (or current.json) */
    pb_bundle_info binfo;
    int bundle_verified; /* binfo is the verify of x->bundle (done by the solid decode) */
    int next_ok;
    uint64_t list_bytes, answer_bytes;
    char run_id[40];        /* the run whose work is in `work` (the resumed one on a resume) */
    char resumed_state[24]; /* current.json's state of the run RECOVER resumes */
    int resuming;           /* this run completes an interrupted one (resume_sync) */
    char refused[512];      /* why a guard refused the run's bundle (state "refused") */
    int budget_stop;        /* the cloud's budget stopped the run (pb_cloud_over_budget) */
} rx;

/* ---- events and phases (run.c) ---- */
void pb_run__emit(rx *x, pb_run_event *ev);
void pb_run__log(rx *x, const char *level, const char *fmt, ...) PB_PRINTF(3, 4);
int pb_run__cancelled(rx *x);
int pb_run__chan_cancel(void *x);
void pb_run__progress(rx *x, const char *phase, uint64_t done, uint64_t total, const char *path);
/** PLEXBURST_FAULT=kill:<NAME> (tests): SIGKILL when `name` is reached. */
void pb_run__fault_point(const char *name);
void pb_run__tally(rx *x);
void pb_run__phase_begin(rx *x, const char *name);
int pb_run__phase_end(rx *x, int rc);
int pb_run__may_start(rx *x, const char *name);

/* Runs one numbered phase; a failure ends the caller at its `done:` label with `error` set. */
#define PHASE(x, name, call)                                                                       \
    do {                                                                                           \
        pb_run__phase_begin((x), (name));                                                          \
        int phase_rc_ = pb_run__may_start((x), (name));                                            \
        if (phase_rc_ == 0)                                                                        \
            phase_rc_ = (call);                                                                    \
        if ((error = pb_run__phase_end((x), phase_rc_)) < 0)                                       \
            goto done;                                                                             \
    } while (0)

/* ---- the conversation with the agent (link.c) ---- */
int pb_run__start_agent(rx *x);
/** Reads frames until the step's RESULT (need_full, when given: the cloud asked for a full
 * upload). */
int pb_run__await(rx *x, const char *step, json_t **res, int *need_full);
/** LOG and PROGRESS frames become events. */
int pb_run__on_frame(const pb_frame *f, void *payload, pb_error *err);
int pb_run__send_prepare(rx *x, const char *mode);
/** After a dropped link: 0 when the conversation is back at the same step, else the error. */
int pb_run__rejoin(rx *x, int error, int ran);
void pb_run__stop_agent(rx *x, int polite);

/* ---- the run in flight, recovery, the home's baseline copy (resume.c) ---- */
int pb_run__cur_write(rx *x, const char *state, pb_error *err);
void pb_run__cur_clear(rx *x);
void pb_run__set_work_paths(rx *x);
/** A fresh work dir for this run and its current.json. */
int pb_run__begin_work(rx *x);
/** The run is over: current.json cleared, its work removed (unless kept), old records pruned. */
void pb_run__end_work(rx *x);
/** RECOVER; *resume when the interrupted run's bundle is ready to be applied. */
int pb_run__recover(rx *x, int *resume);
/** x->have_base, base_ids, base_id: the apply's record when the home's copy of it is there. */
void pb_run__home_base(rx *x);
/** Drops the home's copy of the baseline (the next sync uploads the whole snapshot). */
void pb_run__forget_home_base(rx *x);
/** Installs `main` (and `blobs`) as the home's copy of the baseline `ids` and records it. */
int pb_run__keep_home_base(rx *x, const char *main, const char *blobs, const pb_baseline *ids);

/* ---- the phases shared by sync and bootstrap (sync.c) ---- */
int pb_run__analysis(rx *x);
int pb_run__export(rx *x, int bootstrap);
int pb_run__sync(rx *x);
int pb_run__bootstrap(rx *x); /* bootstrap.c */

/* ---- the bundle at home (fetch_apply.c) ---- */
int pb_run__fetch_bundle(rx *x);
int pb_run__verify_bundle(rx *x, int make_next);
int pb_run__download(rx *x, int resumed);
int pb_run__apply_bundle(rx *x, const char *base_main, const char *base_blobs, int online,
                         int dry_run);
int pb_run__apply_phase(rx *x);

/* ---- the store (store_gc.c) ---- */
int pb_run__put_file(rx *x, const char *name, const char *path, const char *what);
int pb_run__get_file(rx *x, const char *name, const char *path, const char *what);
/** Deletes what a run left in the store (best effort). */
void pb_run__store_drop_run(rx *x, const char *run_id);
/** Keeps the newest runs and baselines (and always the one the home records). */
void pb_run__store_prune(rx *x);

#endif

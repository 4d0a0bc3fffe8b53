/*
 * apply_int.h (private to engine/apply/apply*.c, stage.c, plexctl.c): the state of one pb_apply()
 * run and the phases the files implement.
 */
#ifndef PB_APPLY_INT_H
#define PB_APPLY_INT_H

#include <limits.h>
#include <stdint.h>
#include "bundle_int.h"
#include "journal.h"
#include "plexburst/apply.h"
#include "plexdir.h"
#include "plexengine.h"

typedef struct pb_premerge pb_premerge;

typedef struct apply_run {
    const pb_apply_options *o;
    pb_apply_result *out;
    pb_error *err;
    pb_plexdir dir;                 /* the data dir D and its state dir */
    const char *plex, *state;       /* dir.root, dir.state_dir */
    const char *main_db, *blobs_db; /* the live pair */
    const char *bundle;             /* the bundle file */
    char work[PATH_MAX + 32];       /* <state>/apply-work: temporary files, wiped at each start */
    char cs_main[PATH_MAX + 128], cs_blobs[PATH_MAX + 128], cs_empty[PATH_MAX + 128];
    int own_cs;                                          /* cs_main/cs_blobs are ours to remove */
    char script[PATH_MAX + 128], errlog[PATH_MAX + 128]; /* the engine's script and stderr */
    char run_id[40];
    int has_live_blobs;
    int use_engine;        /* the rows are written by Plex's engine (else in-process) */
    pb_plex_engine engine; /* that engine */
    pb_journal *j;
    int begun;     /* a run is recorded in the journal */
    int committed; /* the merge committed */
    int idle;      /* the bundle brings nothing home: no stop, no merge */
    int stopped;   /* we stopped Plex */
    double t_stop;
    int root_fd;
    int run_lock_fd; /* the sync's run lock, taken by a standalone apply (-1: not held) */
    uint8_t *buf;
    /* what the merge writes: the live pair (m_marker NULL: the journal's marker), or, while
     * `pre`, the copies made before the stop and a scratch marker (premerge.c) */
    const char *m_main, *m_blobs, *m_marker;
    int pre;
    pb_premerge *pm; /* the copies merged before the stop, until swapped or dropped */
} apply_run;

/** PB_ECANCELLED (message in x->err) when the caller's cancelled() says so, else 0. */
int pb_apply__cancelled(apply_run *x);

/** Phase 4 (stage.c): stages every file record beside its target, journaled; state staged. */
int pb_apply__stage(apply_run *x);
/** Phase 6 (apply_merge.c): merges the rows (Plex's engine or in-process); sets x->committed. */
int pb_apply__merge(apply_run *x);
/** Phase 5 (plexctl.c): stops Plex with --plex-stop-cmd, or refuses when it runs. */
/* premerge.c: before the stop, the merge into copies of the live pair (0 with a note in
 * out->swap_note when it is not possible: the merge then happens in place); during the stop,
 * the swap (*swapped = 0: Plex wrote since the copy, the copies are dropped); the copies
 * dropped (`remove`) and the connections closed. */
int pb_apply__premerge(apply_run *x);
int pb_apply__swap(apply_run *x, int *swapped);
void pb_apply__premerge_free(apply_run *x, int remove);
int pb_apply__stop_plex(apply_run *x);
/** Phase 8 (plexctl.c): starts Plex again when this run stopped it. */
int pb_apply__start_plex(apply_run *x);
/** Runs a shell command in a process group of its own (`what` names it in errors), ending the
 * group after o->plex_cmd_timeout seconds (0: PB_APPLY_PLEX_CMD_TIMEOUT), or when `x` is given
 * and its caller cancels (PB_ECANCELLED); err may be NULL. */
int pb_apply__run_shell(const char *what, const char *cmd, const pb_apply_options *o, apply_run *x,
                        pb_error *err);

#endif

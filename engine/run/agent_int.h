/*
 * agent_int.h (internal): what the files of the agent share: its state for one conversation and
 * the steps (agent.c: the loop, RUN, LIST; agent_prepare.c: PREPARE; agent_build.c: BUILD).
 */
#ifndef PB_AGENT_INT_H
#define PB_AGENT_INT_H

#include <limits.h>
#include <jansson.h>
#include "channel.h"
#include "protocol.h"
#include "plexburst/plexmerge.h"
#include "run_int.h"
#include "store.h"

/* In DIR/plex, written when the agent makes that dir: only a marked (or empty) DIR/plex is
 * emptied. Top level, so the sync rule (fingerprint.c) never lists or sends it. */
#define PB_AGENT_PLEX_MARKER ".plexburst-cloud"

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

/** A LOG frame to the home (best effort). */
void pb_agent__log(agent *a, const char *level, const char *fmt, ...) PB_PRINTF(3, 4);
/* Moves `path` (NULL: none) into DIR/agent/trash and empties the trash in the background
 * (agent_prepare.c): no run waits for a deletion. */
void pb_agent__discard(agent *a, const char *path);
/** Sends the step's RESULT (`o` is consumed; NULL: out of memory). */
int pb_agent__result(agent *a, json_t *o, pb_error *err);
/** PREPARE (agent_prepare.c): 0, 1 when answered with an ERROR frame, or a failure. */
int pb_agent__prepare(agent *a, json_t *msg, pb_error *err);
/** BUILD (agent_build.c). */
int pb_agent__build(agent *a, json_t *msg, pb_error *err);

#endif

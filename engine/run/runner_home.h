/*
 * runner_home.h (internal): the home's side of the runner in the protocol (runner_home.c): the
 * RUN message with the plex runner's settings as the home resolved them, and the runner's
 * progress records that come back as PROGRESS frames (a bar, per-phase counts in the result).
 * Role: engine/run, the home side (run_ctx.h). Prerequisites: the runner seam's names.
 */
#ifndef PB_RUNNER_HOME_H
#define PB_RUNNER_HOME_H

#include <jansson.h>
#include "run_ctx.h"

/**
 * Sends RUN: `{"runner": "command", "command": x->runner}`, and for the plex runner (the command
 * "plex") its `settings` (every name of pb_runner_plex_settings set at home: environment, then
 * the config file; the media's S3 settings completed from the store's; PLEXBURST_PLEX_VERSION
 * resolved at home from the home server's /identity when not set) and `libraries` (the content
 * of PLEXBURST_PLEX_LIBRARIES, normalised, every location). docs/protocol.md.
 */
int pb_run__send_run(rx *x);

/**
 * A PROGRESS frame's object with "what": "runner" (a progress record of the runner): a progress
 * event (phase "runner: PHASE [SECTION]", items done/total, path = "elapsed H:MM:SS, ETA ..."),
 * and, when it closes a phase (`final`), that phase's counts appended to the result's `runner`
 * JSON (x->r->runner_json). 1 when it was one (handled), 0 otherwise.
 */
int pb_run__runner_progress(rx *x, json_t *o);

#endif

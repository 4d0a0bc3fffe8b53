/*
 * plexburst/setup.h: is this host ready to sync (`plexburst check`, docs/cli.md)? Beyond the
 * Plex DBs (plexburst/plex.h): the store and the cloud answer with their credentials (one
 * harmless call each: a listing of the store's prefix; for ssh a connection running `true`; for
 * scaleway a listing of the servers tagged plexburst), the runner is usable, the Plex stop and
 * start commands exist (never run), the data dir belongs to the user Plex runs as, and the state
 * dir has room for a baseline. The settings come from the configuration (plexburst/settings.h);
 * no message holds a secret.
 */
#ifndef PLEXBURST_SETUP_H
#define PLEXBURST_SETUP_H

#include <stddef.h>
#include <stdint.h>

#include "plexburst/common.h"
#include "plexburst/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { PB_SETUP_OK = 0, PB_SETUP_WARN, PB_SETUP_FAIL } pb_setup_status;

/** One check: one line for the user. */
typedef struct pb_setup_item {
    pb_setup_status status;
    char name[32]; /* "store", "cloud", "runner", "plex stop", "plex start", "data dir", "disk" */
    char message[768]; /* no secret */
} pb_setup_item;

typedef struct pb_setup_report {
    pb_setup_item *items;
    size_t n;
    int failed;             /* 1 when an item is PB_SETUP_FAIL */
    uint64_t disk_free;     /* bytes free for the state dir */
    uint64_t baseline_need; /* bytes a baseline needs there (the DB pair and a margin) */
} pb_setup_report;

typedef struct pb_setup_options {
    unsigned version;        /* PB_SETUP_OPTIONS_VERSION */
    const char *plex_dir;    /* the home data dir (NULL: PLEXBURST_PLEX_DIR) */
    const char *state_dir;   /* NULL: PLEXBURST_STATE_DIR, else <plex dir>.plexburst */
    const char *config_file; /* NULL: PLEXBURST_CONFIG, else only the system and user files */
    int offline;             /* 1: no network call (store, cloud said "not checked") */
} pb_setup_options;

#define PB_SETUP_OPTIONS_VERSION 1
#define PB_SETUP_OPTIONS_INIT                                                                      \
    {                                                                                              \
        PB_SETUP_OPTIONS_VERSION, NULL, NULL, NULL, 0                                              \
    }

/** Sets the version and clears the rest (the same as PB_SETUP_OPTIONS_INIT). */
PB_EXTERN(void) pb_setup_options_init(pb_setup_options *o);

/**
 * Runs the checks into *out (released with pb_setup_report_dispose). A failed check is an item,
 * not an error.
 * @return 0; PB_EINVALID for a configuration that does not load (as pb_settings_load); PB_ENOMEM.
 */
PB_EXTERN(int)
pb_setup_check(pb_setup_report *out, const pb_setup_options *o, pb_error *err);
PB_EXTERN(void) pb_setup_report_dispose(pb_setup_report *r);

/** "✅", "⚠️" or "❌". */
PB_EXTERN(const char *) pb_setup_status_mark(pb_setup_status s);

#ifdef __cplusplus
}
#endif

#endif

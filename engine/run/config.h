/*
 * config.h (internal): run configuration from a `.env`-style file and the environment
 * (PLEXBURST_*), and the prior scripts' JSON files (`plex_libraries.json`; `path_mappings.json`
 * is parsed by engine/pathmap.c).
 * Role: fills the options of a run that the command line left unset (engine/run_sync.c).
 * Precedence: the command line, then the environment, then the file, then the defaults.
 * Secrets: values of keys naming a secret (…SECRET…, …TOKEN…, …PASSWORD…, …PASSPHRASE…,
 * …ACCESS_KEY…) are never returned by pb_config_describe().
 */
#ifndef PB_CONFIG_H
#define PB_CONFIG_H

#include <stddef.h>
#include "plexburst/errors.h"

typedef struct pb_config pb_config;

/**
 * Loads `path` (NULL: none; only the environment is consulted). Lines are `KEY=value`, with
 * optional `export `, blank lines and `#` comments; values may be single- or double-quoted
 * (double quotes understand \n, \t, \\ and \"), unquoted values end at ` #`.
 * @return 0; PB_ENOTFOUND (the file is missing); PB_EINVALID "FILE:LINE: ..." for a bad line.
 */
int pb_config_load(pb_config **out, const char *path, pb_error *err);
void pb_config_free(pb_config *c);

/** The value of `key`: the environment first, then the file; NULL when unset or empty. */
const char *pb_config_get(const pb_config *c, const char *key);

/** 1 when `key` names a secret (its value is never shown). */
int pb_config_is_secret(const char *key);

/** One line "KEY=value, KEY=<secret>, ..." of the PLEXBURST_* keys in effect (for the log). */
void pb_config_describe(const pb_config *c, char *out, size_t cap);

/** A section of plex_libraries.json. */
typedef struct pb_plex_library {
    char name[128];
    char type[32]; /* movie, show, artist, photo */
    char agent[128], scanner[128], language[32];
    size_t nlocations;
    char locations[8][1024];
} pb_plex_library;

/**
 * Reads plex_libraries.json: `{"libraries": [{"name", "type", "locations": [...] | "location",
 * "agent", "scanner", "language"}, ...]}` or the bare array. *out is malloc'd (caller frees).
 * @return 0; PB_ENOTFOUND; PB_EINVALID naming the entry and the field.
 */
int pb_plex_libraries_load(pb_plex_library **out, size_t *n, const char *path, pb_error *err);

#endif

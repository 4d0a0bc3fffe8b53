/*
 * config.h (internal): run configuration from a `.env`-style file and the environment
 * (PLEXBURST_*), the settings of a run resolved from them in one place (pb_run_settings), and the
 * prior scripts' JSON files (`plex_libraries.json`; `path_mappings.json` is parsed by
 * engine/plex/pathmap.c).
 * Role: fills the options of a run that the command line left unset (engine/run/run.c).
 * Precedence: the command line, then the environment, then the files (a later file over an
 * earlier one), then the defaults. The files, in this order: the system file
 * $PLEXBURST_SYSCONFDIR/plexburst/plexburst.env (the variable is for tests; default
 * PB_SYSCONFDIR, /etc), the user file $XDG_CONFIG_HOME/plexburst/plexburst.env (default
 * ~/.config/...), then the file given (--config FILE or PLEXBURST_CONFIG).
 * Secrets: values of keys naming a secret (…SECRET…, …TOKEN…, …PASSWORD…, …PASSPHRASE…,
 * …ACCESS_KEY…) are never returned by pb_config_describe().
 */
#ifndef PB_CONFIG_H
#define PB_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include "plexburst/errors.h"
#include "plexburst/run.h"

typedef struct pb_config pb_config;

/** Where a value comes from; the files' layers in the order they are read. */
typedef enum {
    PB_CONFIG_SYSTEM = 0, /* the system file */
    PB_CONFIG_USER = 1,   /* the user file */
    PB_CONFIG_FILE = 2,   /* --config FILE / PLEXBURST_CONFIG */
    PB_CONFIG_ENV,        /* the environment */
    PB_CONFIG_DEFAULT,    /* unset: the code's default (pb_config_default) */
    PB_CONFIG_UNSET,      /* unset, no default */
} pb_config_layer;

/**
 * Loads the system file and the user file when they exist, then `path` (NULL: none), a value of
 * a later file replacing an earlier one. Lines are `KEY=value`, with
 * optional `export `, blank lines and `#` comments; values may be single- or double-quoted
 * (double quotes understand \n, \t, \\ and \"), unquoted values end at ` #`.
 * A `PLEXBURST_*` key must be a known setting (the table in config.c), and a numeric one must
 * hold a valid number (pb_config_number()); other keys are kept as they are.
 * @return 0; PB_ENOTFOUND (`path` is missing); an errno code (a file exists but cannot be read);
 * PB_EINVALID "config: FILE:LINE: ..." for a bad line, an unknown setting ("unknown setting KEY
 * (did you mean ...?)") or a bad number ("KEY: expected ...").
 */
int pb_config_load(pb_config **out, const char *path, pb_error *err);
void pb_config_free(pb_config *c);

/**
 * The number `value` of the setting `key`, strictly: decimal digits (a fraction only for a
 * fractional setting), the whole string, finite, within the setting's range (the table of known
 * settings in config.c; an unknown key: a whole number >= 0). Else PB_EINVALID naming key and
 * value.
 */
int pb_config_number(double *out, const char *key, const char *value, pb_error *err);

/** The value of `key`: the environment first, then the file; NULL when unset or empty. */
const char *pb_config_get(const pb_config *c, const char *key);

/** Where the value pb_config_get() returns comes from; for a file, *file (the config's copy of
 * its path) and *line are set, else NULL and 0. */
pb_config_layer pb_config_origin(const pb_config *c, const char *key, const char **file,
                                 unsigned *line);

/** The path of the system or user file into buf (whether it exists or not); NULL when there
 * is none (no HOME) or for another layer. */
const char *pb_config_path(pb_config_layer layer, char *buf, size_t cap);

/** The path of the layer's file when it was read, else NULL. */
const char *pb_config_file(const pb_config *c, pb_config_layer layer);

/** The i-th key set by the files (in the order first set); NULL past the end. */
const char *pb_config_key(const pb_config *c, size_t i);

/** The i-th known setting's name (the table in config.c); NULL past the end. */
const char *pb_config_known(size_t i);

/** The default of a setting as text, NULL when it has none. */
const char *pb_config_default(const char *key);

/** The numeric known settings of the environment are valid numbers; else PB_EINVALID
 * "environment: KEY: ...". */
int pb_config_check_env(pb_error *err);

/** 1 when `key` names a secret (its value is never shown). */
int pb_config_is_secret(const char *key);

/**
 * One line "KEY=value, KEY=<secret>, ..." of the PLEXBURST_* keys in effect (for the log); the
 * commands (PLEXBURST_RUNNER, PLEXBURST_*_CMD) redacted by pb_runner_redact().
 */
void pb_config_describe(const pb_config *c, char *out, size_t cap);

/** The settings of a run: each option the command line left unset comes from the environment,
 * then the file, then the default. Strings point into the options or the config. */
typedef struct pb_run_settings {
    const char *plex_dir;  /* required: --plex-dir, PLEXBURST_PLEX_DIR */
    const char *state_dir; /* NULL: <plex_dir>.plexburst */
    const char *cloud;     /* NULL: local */
    const char *store;     /* NULL: the cloud's default */
    const char *runner;    /* required: --runner, PLEXBURST_RUNNER */
    const char *stop_cmd, *start_cmd, *path_map, *libraries;
    int online;
    double max_delete_pct;        /* default 5 */
    int zstd_level;               /* default 19 */
    size_t nlibraries;            /* sections of plex_libraries.json (checked) */
    char agent_program[PATH_MAX]; /* --agent-program, PLEXBURST_AGENT, else this program */
} pb_run_settings;

/**
 * Resolves the settings of a run from `o` and `cfg`, and checks the files they name (the path map
 * and plex_libraries.json parse).
 * @return 0; PB_EINVALID naming what is missing or malformed.
 */
int pb_run_settings_resolve(pb_run_settings *s, const pb_run_options *o, const pb_config *cfg,
                            pb_error *err);

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

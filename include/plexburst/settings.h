/*
 * plexburst/settings.h: the effective configuration (`plexburst config`, and `--config FILE` of
 * every command): each setting, its value as shown (secrets masked) and where it came from: the
 * system file (/etc/plexburst/plexburst.env), the user file
 * ($XDG_CONFIG_HOME/plexburst/plexburst.env), the file given (--config FILE or PLEXBURST_CONFIG),
 * the environment, or the default. Later files override earlier ones; the environment overrides
 * every file; a command-line option overrides all of them. docs/cli.md, "Configuration".
 * PLEXBURST_SYSCONFDIR replaces /etc in the system file's path (for tests).
 * The names of the known settings (pb_settings_known, pb_settings_name) serve --help, the man
 * page and the example configuration.
 */
#ifndef PLEXBURST_SETTINGS_H
#define PLEXBURST_SETTINGS_H

#include <stddef.h>

#include "plexburst/common.h"
#include "plexburst/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Where a value comes from. */
typedef enum {
    PB_SETTINGS_FROM_SYSTEM = 0, /* the system file */
    PB_SETTINGS_FROM_USER = 1,   /* the user file */
    PB_SETTINGS_FROM_FILE = 2,   /* --config FILE (or PLEXBURST_CONFIG) */
    PB_SETTINGS_FROM_ENV,        /* the environment */
    PB_SETTINGS_FROM_DEFAULT,    /* the code's default */
    PB_SETTINGS_FROM_UNSET,      /* unset, no default */
} pb_settings_source;

/** One setting. */
typedef struct pb_settings_item {
    char *key;
    char *value; /* as shown: a secret masked, credentials in URLs and commands redacted; NULL
                    when unset */
    int secret;  /* 1: the value is a secret (value is a mask) */
    int unknown; /* 1: a PLEXBURST_* name of the environment that is no setting (a typo) */
    pb_settings_source source;
    char *file;    /* the file of a file source, else NULL */
    unsigned line; /* its line */
} pb_settings_item;

/** Every known setting, then the other keys the files set and the cloud's and store's
 * credentials of the environment (SCW_*, AWS_*), then unknown PLEXBURST_* names of the
 * environment. */
typedef struct pb_settings_list {
    pb_settings_item *items;
    size_t n;
    char *paths[3]; /* the files looked for, by source (system, user, file); NULL: none */
    int read[3];    /* 1: that file exists and was read */
} pb_settings_list;

/**
 * Loads the configuration (the files, then the environment) and lists it into *out (the caller
 * releases it with pb_settings_list_dispose). `config_file` NULL: PLEXBURST_CONFIG, else none.
 * @return 0; PB_ENOTFOUND (the given file is missing); PB_EINVALID with one line naming the
 * file and the line (a malformed line, an unknown setting, a bad number) or the environment's
 * setting and its value; an errno code for a file that cannot be read.
 */
PB_EXTERN(int)
pb_settings_load(pb_settings_list *out, const char *config_file, pb_error *err);
PB_EXTERN(void) pb_settings_list_dispose(pb_settings_list *l);

/** Loads the configuration as pb_settings_load() to check it, keeping nothing. */
PB_EXTERN(int) pb_settings_check(const char *config_file, pb_error *err);

/** The effective value of `key` (malloc'd into *out, NULL when unset; never masked: for the
 * program's own use, never to print a secret). */
PB_EXTERN(int)
pb_settings_get(char **out, const char *key, const char *config_file, pb_error *err);

/** "system", "user", "--config", "environment", "default", "unset". */
PB_EXTERN(const char *) pb_settings_source_name(pb_settings_source s);

/** 1 if `name` (e.g. "PLEXBURST_PLEX_DIR") is a known setting, else 0. */
PB_EXTERN(int) pb_settings_known(const char *name);

/** The i-th known setting's name (table order), or NULL past the last. */
PB_EXTERN(const char *) pb_settings_name(size_t i);

#ifdef __cplusplus
}
#endif

#endif

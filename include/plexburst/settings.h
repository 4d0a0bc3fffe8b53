/*
 * plexburst/settings.h: the names of the known settings (PLEXBURST_* in the environment or a
 * configuration file), as the engine's table of settings knows them: the CLI asks here which of
 * its options a setting also sets, for --help, the man page and the example configuration.
 */
#ifndef PLEXBURST_SETTINGS_H
#define PLEXBURST_SETTINGS_H

#include "plexburst/common.h"

/** 1 if `name` (e.g. "PLEXBURST_PLEX_DIR") is a known setting, else 0. */
PB_EXTERN(int) pb_settings_known(const char *name);

/** The i-th known setting's name (table order), or NULL past the last. */
PB_EXTERN(const char *) pb_settings_name(size_t i);

#endif

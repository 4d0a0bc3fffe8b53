/*
 * statedir.h: the per-data-directory state folder of plexburst (internal): default location
 * `<D>.plexburst` beside D (pb_state_dir_default in plexburst/fingerprint.h) and its creation.
 */
#ifndef PB_STATEDIR_H
#define PB_STATEDIR_H

#include <stddef.h>
#include "plexburst/errors.h"

/**
 * Resolves the state directory: `configured` when non-NULL, else the default for `plex_real`
 * (D's real path). Creates it 0700 when missing (its parent must exist) and refuses one inside
 * D (PB_EINVALID), whose fingerprint it would change. Writes its real path to out.
 */
int pb_statedir__ensure(char *out, size_t cap, const char *configured, const char *plex_real,
                        pb_error *err);

#endif

/*
 * plexdir.h (internal): pb_plexdir, the one owner of a home Plex data directory D: its real path,
 * its library DB pair and its state directory (`<D>.plexburst` unless configured). Each entry
 * point (a run, an apply, a fingerprint, a check) opens it once and passes it down, so that D is
 * resolved once and its paths are built in one place.
 * Role: engine/plex. Prerequisites: POSIX realpath.
 */
#ifndef PB_PLEXDIR_H
#define PB_PLEXDIR_H

#include "plexburst/errors.h"

typedef struct pb_plexdir {
    char *root;      /* the real path of D */
    char *db_dir;    /* D/Plug-in Support/Databases */
    char *main_db;   /* D/PB_PLEX_DB_REL */
    char *blobs_db;  /* D/PB_PLEX_BLOBS_REL */
    char *state_dir; /* the real path of the state directory; NULL until pb_plexdir_state */
} pb_plexdir;

/**
 * Resolves `path` (it must be an existing directory other than /) and builds the DB paths.
 * Release with pb_plexdir_dispose (also after a failure).
 * @return 0; PB_ENOTFOUND when D does not exist; PB_EINVALID when it is not a directory or is /.
 */
int pb_plexdir_open(pb_plexdir *d, const char *path, pb_error *err);

/**
 * Resolves the state directory: `configured` when non-NULL, else `<D>.plexburst`. With
 * `create`, makes it 0700 when missing (pb_statedir__ensure: never inside D); without, only
 * resolves the name (the directory may not exist).
 */
int pb_plexdir_state(pb_plexdir *d, const char *configured, int create, pb_error *err);

/** 1 when the blobs DB exists. */
int pb_plexdir_has_blobs(const pb_plexdir *d);

/** Frees the paths; accepts NULL and a zeroed struct. */
void pb_plexdir_dispose(pb_plexdir *d);

#endif

/*
 * plexdir.c: the home Plex data directory model of plexdir.h.
 * Role: engine/plex; every entry point that takes a data dir opens one. Prerequisites: POSIX.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plexburst/fingerprint.h"
#include "plexburst/plex.h"
#include "plexdir.h"
#include "statedir.h"

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", a, b);
    return s;
}

int pb_plexdir_open(pb_plexdir *d, const char *path, pb_error *err)
{
    struct stat st;
    memset(d, 0, sizeof(*d));
    if (!path || !*path)
        return pb_error_set(err, PB_EINVALID, "no Plex data directory given");
    if (!(d->root = realpath(path, NULL)))
        return errno == ENOENT ? pb_error_setd(err, PB_ENOTFOUND, ENOENT,
                                               "data directory %s does not exist", path)
                               : pb_error_errno(err, "cannot resolve %s", path);
    if (stat(d->root, &st) != 0 || !S_ISDIR(st.st_mode))
        return pb_error_set(err, PB_EINVALID, "%s is not a directory", path);
    if (strcmp(d->root, "/") == 0)
        return pb_error_set(err, PB_EINVALID, "the data directory cannot be /");
    d->db_dir = join(d->root, "Plug-in Support/Databases");
    d->main_db = join(d->root, PB_PLEX_DB_REL);
    d->blobs_db = join(d->root, PB_PLEX_BLOBS_REL);
    if (!d->db_dir || !d->main_db || !d->blobs_db)
        return pb_error_set(err, PB_ENOMEM, "out of memory");
    return 0;
}

int pb_plexdir_state(pb_plexdir *d, const char *configured, int create, pb_error *err)
{
    char buf[PATH_MAX];
    int error;
    free(d->state_dir);
    d->state_dir = NULL;
    if (create)
        error = pb_statedir__ensure(buf, sizeof(buf), configured, d->root, err);
    else if (configured)
        error = (size_t)snprintf(buf, sizeof(buf), "%s", configured) >= sizeof(buf)
                    ? pb_error_set(err, PB_EINVALID, "state directory path too long")
                    : 0;
    else
        error = pb_state_dir_default(buf, sizeof(buf), d->root, err);
    if (error < 0)
        return error;
    if (!(d->state_dir = strdup(buf)))
        return pb_error_set(err, PB_ENOMEM, "out of memory");
    return 0;
}

int pb_plexdir_has_blobs(const pb_plexdir *d)
{
    return d->blobs_db && access(d->blobs_db, F_OK) == 0;
}

void pb_plexdir_dispose(pb_plexdir *d)
{
    if (!d)
        return;
    free(d->root);
    free(d->db_dir);
    free(d->main_db);
    free(d->blobs_db);
    free(d->state_dir);
    memset(d, 0, sizeof(*d));
}

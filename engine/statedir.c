/*
 * statedir.c: where plexburst keeps its state for a Plex data directory D: by default the
 * folder `<D>.plexburst` beside D (so it is never part of D's synced tree), created 0700.
 * Role: home of the fingerprint cache and manifests, later of run journals.
 * Prerequisites: none beyond libc.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plexburst/fingerprint.h"
#include "statedir.h"

int pb_state_dir_default(char *out, size_t cap, const char *plex_dir, pb_error *err)
{
    char real[PATH_MAX];
    if (!realpath(plex_dir, real))
        return errno == ENOENT ? pb_error_setd(err, PB_ENOTFOUND, ENOENT,
                                               "data directory %s does not exist", plex_dir)
                               : pb_error_errno(err, "cannot resolve %s", plex_dir);
    if (strcmp(real, "/") == 0)
        return pb_error_set(err, PB_EINVALID, "the data directory cannot be /");
    if ((size_t)snprintf(out, cap, "%s.plexburst", real) >= cap)
        return pb_error_set(err, PB_EINVALID, "state directory path too long for %s", real);
    return 0;
}

int pb_statedir__ensure(char *out, size_t cap, const char *configured, const char *plex_real,
                        pb_error *err)
{
    int error;
    char want[PATH_MAX], real[PATH_MAX];
    struct stat st;

    if (configured) {
        if ((size_t)snprintf(want, sizeof(want), "%s", configured) >= sizeof(want))
            return pb_error_set(err, PB_EINVALID, "state directory path too long");
    } else if ((error = pb_state_dir_default(want, sizeof(want), plex_real, err)) < 0) {
        return error;
    }
    if (mkdir(want, 0700) < 0 && errno != EEXIST)
        return pb_error_errno(err, "cannot create the state directory %s", want);
    if (stat(want, &st) < 0 || !S_ISDIR(st.st_mode))
        return pb_error_set(err, PB_EINVALID, "state directory %s is not a directory", want);
    if (!realpath(want, real))
        return pb_error_errno(err, "cannot resolve %s", want);
    size_t n = strlen(plex_real);
    if (strncmp(real, plex_real, n) == 0 && (real[n] == '\0' || real[n] == '/'))
        return pb_error_set(err, PB_EINVALID,
                            "state directory %s lies inside the data directory %s", real,
                            plex_real);
    if ((size_t)snprintf(out, cap, "%s", real) >= cap)
        return pb_error_set(err, PB_EINVALID, "state directory path too long");
    return 0;
}

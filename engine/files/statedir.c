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
    /* resolve the parent first: the check must come before anything is created */
    char parent[PATH_MAX], *slash;
    size_t wl = strlen(want);
    while (wl > 1 && want[wl - 1] == '/')
        want[--wl] = '\0';
    slash = strrchr(want, '/');
    if (slash == want)
        snprintf(parent, sizeof(parent), "/");
    else if (slash)
        snprintf(parent, sizeof(parent), "%.*s", (int)(slash - want), want);
    else
        snprintf(parent, sizeof(parent), ".");
    if (!realpath(parent, real))
        return errno == ENOENT
                   ? pb_error_setd(err, PB_ENOTFOUND, ENOENT,
                                   "the parent of the state directory %s does not exist", want)
                   : pb_error_errno(err, "cannot resolve %s", parent);
    size_t rl = strlen(real);
    if ((size_t)snprintf(real + rl, sizeof(real) - rl, "%s%s", rl > 1 ? "/" : "",
                         slash ? slash + 1 : want) >= sizeof(real) - rl)
        return pb_error_set(err, PB_EINVALID, "state directory path too long");
    size_t n = strlen(plex_real);
    if (strncmp(real, plex_real, n) == 0 && (real[n] == '\0' || real[n] == '/'))
        return pb_error_set(err, PB_EINVALID,
                            "state directory %s lies inside the data directory %s", real,
                            plex_real);
    if (mkdir(real, 0700) < 0 && errno != EEXIST)
        return pb_error_errno(err, "cannot create the state directory %s", real);
    if (stat(real, &st) < 0 || !S_ISDIR(st.st_mode))
        return pb_error_set(err, PB_EINVALID, "state directory %s is not a directory", real);
    /* an existing state directory may be a symlink: check where it really is */
    char target[PATH_MAX];
    if (!realpath(real, target))
        return pb_error_errno(err, "cannot resolve %s", real);
    if (strncmp(target, plex_real, n) == 0 && (target[n] == '\0' || target[n] == '/'))
        return pb_error_set(err, PB_EINVALID,
                            "state directory %s lies inside the data directory %s", target,
                            plex_real);
    memcpy(real, target, strlen(target) + 1);
    if ((size_t)snprintf(out, cap, "%s", real) >= cap)
        return pb_error_set(err, PB_EINVALID, "state directory path too long");
    return 0;
}

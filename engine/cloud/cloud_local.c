/*
 * cloud_local.c: the `local[:DIR]` cloud (cloud.h): the agent as a child process of the run,
 * working in DIR (default <home state dir>/cloud, created), the store defaulting to DIR/store.
 * Any other DIR may not equal, contain or lie inside the home data dir or state dir (real paths,
 * checked before anything is created). Nothing to release.
 * Role: engine/cloud. Prerequisites: the channel interface (pb_channel_spawn).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloud.h"
#include "fs.h"

/* The real path of `dir`, which may not exist yet: its deepest existing ancestor resolved, the
 * rest appended as written (no "." or ".." there). */
static int resolve(const char *dir, char *out, size_t cap, pb_error *err)
{
    char path[PATH_MAX], buf[PATH_MAX], real[PATH_MAX];
    const char *tail = "";
    if ((size_t)snprintf(path, sizeof(path), "%s%s", *dir == '/' ? "" : "./", dir) >= sizeof(path))
        return pb_error_set(err, PB_EINVALID, "the cloud dir %.200s... is too long", dir);
    strcpy(buf, path);
    while (!realpath(buf, real)) {
        char *slash = strrchr(buf, '/');
        if (errno != ENOENT || !slash)
            return pb_error_errno(err, "cannot resolve the cloud dir %s", dir);
        *slash = '\0';
        tail = path + (slash - buf);
        if (slash == buf) /* "/" */
            strcpy(buf, "/");
    }
    for (const char *c = tail; (c = strstr(c, "/.")) != NULL; c++)
        if (c[2] == '/' || !c[2] || (c[2] == '.' && (c[3] == '/' || !c[3])))
            return pb_error_set(err, PB_EINVALID, "the cloud dir %s has . or .. parts", dir);
    if ((size_t)snprintf(out, cap, "%s%s", strcmp(real, "/") ? real : "", tail) >= cap)
        return pb_error_set(err, PB_EINVALID, "the cloud dir %.200s... is too long", dir);
    return 0;
}

/* 1 when `a` is `b` or lies inside it. */
static int within(const char *a, const char *b)
{
    size_t n = strlen(b);
    return strncmp(a, b, n) == 0 && (a[n] == '/' || !a[n]);
}

/* Refuses a cloud dir that is, holds or lies inside the home's `what` (real path `home`). */
static int apart(const char *dir, const char *what, const char *home, pb_error *err)
{
    char real[PATH_MAX];
    if (!home || !*home || !realpath(home, real))
        return 0;
    if (within(dir, real) || within(real, dir))
        return pb_error_set(err, PB_EINVALID, "the cloud dir %s %s the home %s %s", dir,
                            strcmp(dir, real) == 0 ? "is"
                            : within(dir, real)    ? "lies inside"
                                                   : "contains",
                            what, real);
    return 0;
}

static int local_prepare(pb_cloud *c, pb_error *err)
{
    int error;
    char def[PATH_MAX + 8];
    const char *dir = c->url[5] == ':' ? c->url + 6 : NULL;
    if (c->url[5] == ':' && !*dir)
        return pb_error_set(err, PB_EINVALID, "--cloud local: names no directory");
    snprintf(c->workdir, sizeof(c->workdir), "%s/cloud", c->o.home_state);
    if (dir) {
        if ((error = resolve(dir, c->workdir, sizeof(c->workdir), err)) < 0)
            return error;
        /* the default, <state dir>/cloud, is plexburst's own; any other may touch no home dir */
        int is_default = c->o.home_state && realpath(c->o.home_state, def) &&
                         strcmp(strcat(def, "/cloud"), c->workdir) == 0;
        if (!is_default && ((error = apart(c->workdir, "Plex data dir", c->o.home_plex, err)) < 0 ||
                            (error = apart(c->workdir, "state dir", c->o.home_state, err)) < 0))
            return error;
        if ((error = pb_fs_mkdirs(c->workdir, 0700, err)) < 0)
            return error;
    }
    if (!c->store[0])
        snprintf(c->store, sizeof(c->store), "%.4090s/store", c->workdir);
    return 0;
}

static int local_connect(pb_cloud *c, const char *store_url, pb_channel **ch, pb_error *err)
{
    int error;
    char *argv[] = {(char *)c->o.agent_program, "agent", "--workdir", c->workdir, "--store",
                    (char *)store_url,          NULL};
    pb_spawn_options so = {PB_SPAWN_OPTIONS_VERSION, -1, NULL, 60000};
    if ((error = pb_fs_mkdirs(c->workdir, 0700, err)) < 0)
        return error;
    pb_cloud__log(c, "info", "starting the agent: local cloud in %s", c->workdir);
    return pb_channel_spawn(ch, argv, &so, err);
}

static void local_describe(const pb_cloud *c, char *out, size_t cap)
{
    snprintf(out, cap, "local cloud in %s", c->workdir);
}

const pb_cloud_ops pb_cloud_local_ops = {
    PB_CLOUD_OPS_VERSION, "local", NULL, 0, local_prepare, local_connect, NULL,
    local_describe,       NULL,    NULL, 0,
};

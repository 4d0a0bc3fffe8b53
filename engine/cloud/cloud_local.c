/*
 * cloud_local.c: the `local[:DIR]` cloud (cloud.h): the agent as a child process of the run,
 * working in DIR (default <home state dir>/cloud, created; never inside the home data dir), the
 * store defaulting to DIR/store. Nothing to release.
 * Role: engine/cloud. Prerequisites: the channel interface (pb_channel_spawn).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloud.h"
#include "fs.h"

static int local_prepare(pb_cloud *c, pb_error *err)
{
    int error;
    const char *dir = c->url[5] == ':' ? c->url + 6 : NULL;
    if (c->url[5] == ':' && !*dir)
        return pb_error_set(err, PB_EINVALID, "--cloud local: names no directory");
    if (!dir) {
        snprintf(c->workdir, sizeof(c->workdir), "%s/cloud", c->o.home_state);
    } else {
        if ((error = pb_fs_mkdirs(dir, 0700, err)) < 0)
            return error;
        if (!realpath(dir, c->workdir))
            return pb_error_errno(err, "cannot resolve the cloud dir %s", dir);
    }
    const char *plex = c->o.home_plex ? c->o.home_plex : "";
    size_t pl = strlen(plex);
    if (pl && strncmp(c->workdir, plex, pl) == 0 && (c->workdir[pl] == '/' || !c->workdir[pl]))
        return pb_error_set(err, PB_EINVALID, "the cloud dir %s is inside the Plex data dir",
                            c->workdir);
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
    PB_CLOUD_OPS_VERSION, "local", NULL,           0,    local_prepare,
    local_connect,        NULL,    local_describe, NULL,
};

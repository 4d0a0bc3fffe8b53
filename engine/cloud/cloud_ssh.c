/*
 * cloud_ssh.c: the `ssh://[user@]host[:port][/dir]` cloud (cloud.h): the agent started over SSH
 * in the URL's dir (default PB_SSH_DEFAULT_WORKDIR), installed there when missing or another
 * version; a dropped link is reconnected (a new agent on a new connection). The store must be
 * one both sides reach (s3://...). Settings (keys, known_hosts, ...) come from the run's
 * configuration (docs/ssh.md). Nothing to release.
 * Role: engine/cloud. Prerequisites: transfer/ssh.h.
 */
#include <stdio.h>
#include <string.h>

#include "cloud.h"
#include "ssh.h"
#include "transport_config.h"

static int ssh_prepare(pb_cloud *c, pb_error *err)
{
    pb_ssh_target t;
    int error;
    if ((error = pb_ssh_url_parse(&t, c->url, err)) < 0)
        return error;
    snprintf(c->workdir, sizeof(c->workdir), "%s", t.dir[0] ? t.dir : PB_SSH_DEFAULT_WORKDIR);
    if (!c->store[0])
        return pb_error_set(err, PB_EINVALID,
                            "--cloud %s needs a store both sides reach (--store s3://... or "
                            "PLEXBURST_STORE)",
                            c->url);
    return 0;
}

static const char *ssh_config(void *payload, const char *key)
{
    return pb_config_get(payload, key);
}

static void ssh_log(void *payload, const char *line)
{
    pb_cloud__log(payload, "detail", "%s", line);
}

int pb_cloud__ssh_start(pb_cloud *c, const char *url, const char *store_url,
                        const char *(*get)(void *payload, const char *key), void *payload,
                        pb_channel **ch, pb_error *err)
{
    pb_ssh_agent_opts ao = PB_SSH_AGENT_OPTS_INIT;
    pb_ssh_options so = PB_SSH_OPTIONS_INIT;
    pb_ssh_target t;
    int error;
    if (!get) {
        get = ssh_config;
        payload = (void *)c->o.cfg;
    }
    if ((error = pb_ssh_url_parse(&t, url, err)) < 0 ||
        (error = pb_transport_config_ssh(&so, &t, get, payload, err)) < 0)
        return error;
    ao.url = url;
    ao.workdir = c->workdir;
    ao.store = store_url;
    ao.local_exe = c->o.agent_program;
    ao.ssh = &so;
    ao.cancel = c->o.cancel;
    ao.cancel_payload = c->o.cancel_payload;
    ao.log = ssh_log;
    ao.log_payload = c;
    pb_cloud__log(c, "info", "starting the agent over SSH: %s", url);
    error = pb_ssh_agent_channel(ch, &ao, err);
    if (error == 0)
        pb_cloud__log(c, "detail", "host key %s; agent %s%s", ao.host_key, ao.install.path,
                      ao.install.installed ? " (installed)" : "");
    return error;
}

static int ssh_connect(pb_cloud *c, const char *store_url, pb_channel **ch, pb_error *err)
{
    return pb_cloud__ssh_start(c, c->url, store_url, NULL, NULL, ch, err);
}

static int ssh_reconnect(pb_cloud *c, pb_channel *ch, pb_error *err)
{
    (void)c;
    return pb_channel_ssh_reconnect(ch, err);
}

static void ssh_describe(const pb_cloud *c, char *out, size_t cap)
{
    snprintf(out, cap, "%s (workdir %s)", c->url, c->workdir);
}

const pb_cloud_ops pb_cloud_ssh_ops = {
    PB_CLOUD_OPS_VERSION, "ssh",        NULL, 1,    ssh_prepare, ssh_connect,
    ssh_reconnect,        ssh_describe, NULL, NULL, 0,
};

/*
 * cloud.c: the cloud seam (cloud.h): the table of clouds selected by the scheme of `--cloud`,
 * and the calls that dispatch to them (release exactly once, its time measured).
 * Role: engine/cloud. Prerequisites: base/clock.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "cloud.h"

static const pb_cloud_ops *const clouds[] = {&pb_cloud_local_ops, &pb_cloud_ssh_ops,
                                             &pb_cloud_scaleway_ops};

void pb_cloud_options_init(pb_cloud_options *o)
{
    *o = (pb_cloud_options)PB_CLOUD_OPTIONS_INIT;
}

/* The cloud whose scheme starts `url` and ends at '\0', ':' (local, scaleway) or "://". */
static const pb_cloud_ops *select_cloud(const char *url)
{
    for (size_t i = 0; i < sizeof(clouds) / sizeof(*clouds); i++) {
        size_t n = strlen(clouds[i]->scheme);
        if (strncmp(url, clouds[i]->scheme, n) == 0 && (url[n] == '\0' || url[n] == ':'))
            return clouds[i];
    }
    return NULL;
}

void pb_cloud__log(const pb_cloud *c, const char *level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    if (!c->o.log)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    c->o.log(c->o.log_payload, level, line);
}

int pb_cloud_open(pb_cloud **out, const pb_cloud_options *o, pb_error *err)
{
    *out = NULL;
    if (!o || o->version != PB_CLOUD_OPTIONS_VERSION)
        return pb_error_set(err, PB_EINVALID, "cloud: bad options");
    const char *url = o->url ? o->url : "local";
    const pb_cloud_ops *ops = select_cloud(url);
    if (!ops)
        return pb_error_set(err, PB_EINVALID,
                            "unknown --cloud '%s' (local, local:DIR, ssh://[user@]host[/dir] or "
                            "scaleway[:ZONE])",
                            url);
    if (ops->not_built)
        return pb_error_set(err, PB_EINVALID, "--cloud %s %s", url, ops->not_built);
    if ((o->instance_type || o->profile) && !ops->instance_choice)
        return pb_error_set(err, PB_EINVALID,
                            "--instance-type and --profile choose the instance of --cloud "
                            "scaleway, not of --cloud %s",
                            url);
    if (ops->version != PB_CLOUD_OPS_VERSION)
        return pb_error_set(err, PB_EINVALID, "cloud %s: ops version %u", ops->scheme,
                            ops->version);
    pb_cloud *c = calloc(1, sizeof(*c));
    if (!c)
        return pb_error_set(err, PB_ENOMEM, "out of memory");
    c->ops = ops;
    c->o = *o;
    c->t0 = pb_clock_ms();
    snprintf(c->url, sizeof(c->url), "%s", url);
    snprintf(c->result.provider, sizeof(c->result.provider), "%s", ops->scheme);
    if (o->store)
        snprintf(c->store, sizeof(c->store), "%s", o->store);
    *out = c;
    return ops->prepare(c, err);
}

int pb_cloud_connect(pb_cloud *c, const char *store_url, pb_channel **ch, pb_error *err)
{
    return c->ops->connect(c, store_url, ch, err);
}

int pb_cloud_is_remote(const pb_cloud *c)
{
    return c && c->ops->remote;
}

int pb_cloud_can_reconnect(const pb_cloud *c)
{
    return c && c->ops->reconnect != NULL;
}

int pb_cloud_reconnect(pb_cloud *c, pb_channel *ch, pb_error *err)
{
    if (!c->ops->reconnect)
        return pb_error_set(err, PB_ENET, "the %s cloud cannot reconnect its agent",
                            c->ops->scheme);
    return c->ops->reconnect(c, ch, err);
}

int pb_cloud_over_budget(pb_cloud *c, char *why, size_t cap)
{
    if (!c || c->released || !c->ops->over_budget)
        return 0;
    return c->ops->over_budget(c, why, cap);
}

void pb_cloud_describe(const pb_cloud *c, char *out, size_t cap)
{
    c->ops->describe(c, out, cap);
}

void pb_cloud_release(pb_cloud *c, pb_cloud_result *out)
{
    if (!c)
        return;
    if (!c->released) {
        c->released = 1;
        if (c->ops->release)
            c->ops->release(c);
        if (!c->billed)
            c->result.seconds = (pb_clock_ms() - c->t0) / 1000;
        if (!c->billed && c->result.hourly_price > 0)
            c->result.cost = c->result.hourly_price * c->result.seconds / 3600;
    }
    if (out)
        *out = c->result;
}

void pb_cloud_free(pb_cloud *c)
{
    if (!c)
        return;
    pb_cloud_release(c, NULL);
    free(c);
}

/*
 * cloud.h (internal): the cloud seam: where the agent runs. A cloud is chosen by the scheme of
 * the run's `--cloud` (a table in cloud.c, versioned pb_cloud_ops like the store's):
 *   `local[:DIR]`   the agent as a child process working in DIR (default <state dir>/cloud; never
 *                   inside the home data dir), the store defaulting to DIR/store (cloud_local.c);
 *   `ssh://[user@]host[:port][/dir]`  the agent over SSH, installed there when missing, the link
 *                   reconnected after a drop (cloud_ssh.c, docs/ssh.md); the store must be one
 *                   both sides reach (s3://...);
 *   `scaleway[:ZONE]` an instance created for the run and destroyed after it (cloud_scaleway*.c,
 *                   docs/scaleway.md): the agent over SSH as for ssh:// (cloud_ssh.c's path).
 * Life: pb_cloud_open (selects and prepares: resolves what is needed, later creates the instance),
 * pb_cloud_connect (a channel to a new agent; pb_cloud_reconnect after a dropped link when the
 * cloud can), pb_cloud_release (always, on every path out: destroys what prepare created and
 * fills the result: provider, resource ids, cost).
 * Role: engine/cloud, used by the home side of the runs (engine/run). Prerequisites: the channel
 * interface (transfer/channel.h), the run configuration (engine/run/config.h).
 */
#ifndef PB_CLOUD_H
#define PB_CLOUD_H

#include <limits.h>
#include <stddef.h>
#include "channel.h"
#include "config.h"
#include "plexburst/errors.h"

typedef struct pb_cloud pb_cloud;

typedef struct pb_cloud_options {
    unsigned version;          /* PB_CLOUD_OPTIONS_VERSION */
    const char *url;           /* see above (NULL: "local") */
    const char *home_state;    /* the home state dir (local: DIR defaults to <it>/cloud) */
    const char *home_plex;     /* the home data dir (local: DIR must not be inside it) */
    const char *store;         /* the store the run was given (NULL: the cloud's default) */
    const char *agent_program; /* the plexburst binary run as agent (this one) */
    const pb_config *cfg;      /* settings (ssh: PLEXBURST_SSH_*) */
    /** Optional: one line for the run's log (level "info", "detail", "warn"). */
    void (*log)(void *payload, const char *level, const char *line);
    void *log_payload;
    /** Optional: polled while connecting; non-zero gives up (PB_ECANCELLED). */
    int (*cancel)(void *payload);
    void *cancel_payload;
    const char *run_id; /* the run's id (scaleway: tags and records; NULL: one is made up) */
    /* the instance of a cloud that creates one (scaleway: --instance-type, --profile; NULL: the
     * settings PLEXBURST_SCW_TYPE, PLEXBURST_SCW_PROFILE); refused by the other clouds */
    const char *instance_type, *profile;
    /* the run's runner (NULL: unknown); scaleway: "plex" with the default start pre-pulls the
     * Plex image at the home's version in the user data */
    const char *runner;
} pb_cloud_options;

#define PB_CLOUD_OPTIONS_VERSION 1
#define PB_CLOUD_OPTIONS_INIT                                                                      \
    {                                                                                              \
        PB_CLOUD_OPTIONS_VERSION, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,      \
            NULL, NULL, NULL, NULL                                                                 \
    }
void pb_cloud_options_init(pb_cloud_options *o);

/** What a cloud cost and which resources it used ("" and 0 for local and ssh). */
typedef struct pb_cloud_result {
    char provider[32]; /* "local", "ssh", "scaleway" */
    char zone[32], type[32];
    char server_id[64];
    double hourly_price; /* in the provider's currency */
    double seconds;      /* from prepare to release */
    double cost;
} pb_cloud_result;

#define PB_CLOUD_OPS_VERSION 1

/** One kind of cloud. */
typedef struct pb_cloud_ops {
    unsigned version;      /* PB_CLOUD_OPS_VERSION */
    const char *scheme;    /* "local", "ssh", "scaleway" */
    const char *not_built; /* non-NULL: selecting this cloud fails with this text */
    int remote;            /* the agent does not inherit this process's environment */
    /** Resolves what the cloud needs (workdir, default store), creates what it must. */
    int (*prepare)(pb_cloud *c, pb_error *err);
    /** A channel to a new agent working in c->workdir with the store `store_url`. */
    int (*connect)(pb_cloud *c, const char *store_url, pb_channel **ch, pb_error *err);
    /** Optional: the same channel to a new agent after a dropped link (PB_ENET). */
    int (*reconnect)(pb_cloud *c, pb_channel *ch, pb_error *err);
    /** One line for logs: "local cloud in DIR", "ssh://...". */
    void (*describe)(const pb_cloud *c, char *out, size_t cap);
    /** Optional: destroys what prepare created; fills c->result. */
    void (*release)(pb_cloud *c);
    /** Optional: polled while the run goes (a few times a second); non-zero when the run must
     * stop (scaleway: the spend reached PLEXBURST_MAX_COST, or the lifetime cap is near), with
     * the reason in `why`. */
    int (*over_budget)(pb_cloud *c, char *why, size_t cap);
    int instance_choice; /* takes pb_cloud_options.instance_type and .profile */
} pb_cloud_ops;

struct pb_cloud {
    const pb_cloud_ops *ops;
    pb_cloud_options o;
    char url[1024];
    char workdir[PATH_MAX + 16]; /* the agent's DIR (local: its real path; ssh: remote) */
    char store[PATH_MAX + 8];    /* the store given, else the cloud's default ("" if none) */
    pb_cloud_result result;
    double t0;
    int released;
    int billed; /* release set result.seconds and .cost itself (scaleway: the billed time) */
    void *impl;
};

extern const pb_cloud_ops pb_cloud_local_ops, pb_cloud_ssh_ops, pb_cloud_scaleway_ops;

/**
 * The ssh cloud's start of an agent (cloud_ssh.c), for the clouds that reach their machine over
 * SSH: `url` is ssh://user@host:port/dir, the SSH settings come through `get` (NULL: the run's
 * configuration), so that a cloud can give its own key, pinned host key and known_hosts.
 */
int pb_cloud__ssh_start(pb_cloud *c, const char *url, const char *store_url,
                        const char *(*get)(void *payload, const char *key), void *payload,
                        pb_channel **ch, pb_error *err);

/** Selects the cloud of o->url and prepares it. Release with pb_cloud_free (also on failure). */
int pb_cloud_open(pb_cloud **out, const pb_cloud_options *o, pb_error *err);
int pb_cloud_connect(pb_cloud *c, const char *store_url, pb_channel **ch, pb_error *err);
/** 1 when the agent runs elsewhere (it inherits nothing of this process's environment). */
int pb_cloud_is_remote(const pb_cloud *c);
/** 1 when a dropped link can be reconnected (pb_cloud_reconnect). */
int pb_cloud_can_reconnect(const pb_cloud *c);
int pb_cloud_reconnect(pb_cloud *c, pb_channel *ch, pb_error *err);
void pb_cloud_describe(const pb_cloud *c, char *out, size_t cap);
/** 1 when the run must stop for the cloud's budget (cost or lifetime cap), `why` saying so. */
int pb_cloud_over_budget(pb_cloud *c, char *why, size_t cap);
/** Releases what the cloud holds (once; pb_cloud_free calls it too) and copies its result. */
void pb_cloud_release(pb_cloud *c, pb_cloud_result *out);
/** Accepts NULL. */
void pb_cloud_free(pb_cloud *c);

/** A log line through o->log (for the kinds). */
void pb_cloud__log(const pb_cloud *c, const char *level, const char *fmt, ...) PB_PRINTF(3, 4);

#endif

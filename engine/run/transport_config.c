/*
 * transport_config.c: the settings of the transports read into their option structs
 * (transport_config.h): SSH (docs/ssh.md) and S3 (docs/s3.md), with the names, defaults and
 * messages they have always had. Values that are secrets are copied by pointer, never printed.
 * Role: engine/run/, between the run's configuration and transfer/.
 * Prerequisites: transfer/ssh.h, transfer/store_s3.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "transport_config.h"
#include "config.h"

#define MIB (1024ull * 1024ull)

static const char *env_get(void *payload, const char *key)
{
    (void)payload;
    const char *v = getenv(key);
    return v && *v ? v : NULL;
}

/* The getter's value, NULL when unset or empty. */
static const char *setting(pb_transport_config_get_fn get, void *payload, const char *key)
{
    const char *v = (get ? get : env_get)(payload, key);
    return v && *v ? v : NULL;
}

/* 1/0 from a boolean setting; -1 when malformed. */
static int parse_bool(const char *v)
{
    if (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"))
        return 1;
    if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off"))
        return 0;
    return -1;
}

/* ---- SSH ---- */

/* PLEXBURST_SSH_TOFU, _USE_USER_KNOWN_HOSTS and _AGENT. */
static int ssh_bools(pb_ssh_options *o, pb_transport_config_get_fn get, void *payload,
                     pb_error *err)
{
    static const char *const keys[] = {"PLEXBURST_SSH_TOFU", "PLEXBURST_SSH_USE_USER_KNOWN_HOSTS",
                                       "PLEXBURST_SSH_AGENT"};
    for (size_t i = 0; i < 3; i++) {
        const char *v = setting(get, payload, keys[i]);
        if (!v)
            continue;
        int b = parse_bool(v);
        if (b < 0)
            return pb_error_set(err, PB_EINVALID, "%s: expected 0 or 1, got '%s'", keys[i], v);
        if (i == 0)
            o->tofu = b;
        else if (i == 1)
            o->use_user_known_hosts = b;
        else
            o->use_agent = b ? 0 : -1;
    }
    return 0;
}

/* PLEXBURST_SSH_KEEPALIVE and _RECONNECT_TRIES. */
static int ssh_ints(pb_ssh_options *o, pb_transport_config_get_fn get, void *payload, pb_error *err)
{
    static const char *const keys[] = {"PLEXBURST_SSH_KEEPALIVE", "PLEXBURST_SSH_RECONNECT_TRIES"};
    for (size_t i = 0; i < 2; i++) {
        const char *v = setting(get, payload, keys[i]);
        if (!v)
            continue;
        double d;
        int error = pb_config_number(&d, keys[i], v, err);
        if (error < 0)
            return error;
        long n = (long)d;
        if (i == 0)
            o->keepalive_s = n == 0 ? -1 : (int)n;
        else
            o->reconnect_tries = n == 0 ? 1 : (int)n;
    }
    return 0;
}

int pb_transport_config_ssh(pb_ssh_options *o, const pb_ssh_target *t,
                            pb_transport_config_get_fn get, void *payload, pb_error *err)
{
    int error;
    o->key_file_name = "PLEXBURST_SSH_KEY";
    o->key_passphrase_name = "PLEXBURST_SSH_KEY_PASSPHRASE";
    o->host_key_pin_name = "PLEXBURST_SSH_HOST_KEY";
    o->tofu_name = "PLEXBURST_SSH_TOFU=1 (--accept-new-host-key)";
    if (t) {
        o->host = t->host;
        o->port = t->port;
        o->user = t->user[0] ? t->user : NULL;
    }
    const char *v;
    if ((v = setting(get, payload, "PLEXBURST_SSH_KEY")))
        o->key_file = v;
    if ((v = setting(get, payload, "PLEXBURST_SSH_KEY_PASSPHRASE")))
        o->key_passphrase = v;
    if ((v = setting(get, payload, "PLEXBURST_KNOWN_HOSTS")))
        o->known_hosts = v;
    if ((v = setting(get, payload, "PLEXBURST_SSH_HOST_KEY"))) {
        if (!pb_ssh_pin_valid(v))
            return pb_error_set(err, PB_EINVALID,
                                "PLEXBURST_SSH_HOST_KEY: expected SHA256:<base64 of 32 bytes> "
                                "(as `ssh-keygen -lf KEY.pub` prints it)");
        o->host_key_pin = v;
    }
    if ((error = ssh_bools(o, get, payload, err)) < 0 ||
        (error = ssh_ints(o, get, payload, err)) < 0)
        return error;
    return 0;
}

/* ---- S3 ---- */

/* The URL for a message: not when it may hold credentials (`s3://KEY:SECRET@...`). */
static const char *shown(const char *url)
{
    return url && !strpbrk(url, "@") && !strchr(url + strcspn(url, ":") + 1, ':') ? url
                                                                                  : "the S3 store";
}

const char *const pb_transport_config_s3_keys[] = {"PLEXBURST_S3_ENDPOINT",
                                                   "PLEXBURST_S3_REGION",
                                                   "PLEXBURST_S3_ACCESS_KEY",
                                                   "PLEXBURST_S3_SECRET_KEY",
                                                   "AWS_ACCESS_KEY_ID",
                                                   "AWS_SECRET_ACCESS_KEY",
                                                   "PLEXBURST_S3_PART_SIZE",
                                                   "PLEXBURST_S3_MULTIPART_THRESHOLD",
                                                   "PLEXBURST_S3_RETRIES",
                                                   "PLEXBURST_S3_LIST_MAX_KEYS",
                                                   NULL};

/* "8M", "5242880", "1G": bytes; 0 when malformed. */
static uint64_t parse_size(const char *v)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || end == v)
        return 0;
    uint64_t mul = 1;
    if (*end == 'k' || *end == 'K')
        mul = 1024;
    else if (*end == 'm' || *end == 'M')
        mul = MIB;
    else if (*end == 'g' || *end == 'G')
        mul = 1024 * MIB;
    else if (*end)
        return 0;
    if (mul > 1 && end[1] && strcmp(end + 1, "iB") != 0 && strcmp(end + 1, "B") != 0)
        return 0;
    if (n > UINT64_MAX / mul)
        return 0;
    return (uint64_t)n * mul;
}

/* An integer setting in [lo, hi]; `*out` untouched when unset. */
static int s3_int(long *out, pb_transport_config_get_fn get, void *payload, const char *key,
                  long lo, long hi, pb_error *err)
{
    const char *v = setting(get, payload, key);
    if (!v)
        return 0;
    double d;
    int error = pb_config_number(&d, key, v, err);
    if (error < 0)
        return error;
    if (d < lo || d > hi)
        return pb_error_set(err, PB_EINVALID, "store: %s must be %ld..%ld, not '%s'", key, lo, hi,
                            v);
    *out = (long)d;
    return 0;
}

/* The part size and the multipart threshold. */
static int s3_sizes(pb_store_s3_options *o, pb_transport_config_get_fn get, void *payload,
                    pb_error *err)
{
    const char *v;
    if ((v = setting(get, payload, "PLEXBURST_S3_PART_SIZE")) != NULL) {
        uint64_t n = parse_size(v);
        if (n < PB_STORE_S3_MIN_PART || n > PB_STORE_S3_MAX_PART)
            return pb_error_set(err, PB_EINVALID,
                                "store: PLEXBURST_S3_PART_SIZE must be 5M..5G, not '%s'", v);
        o->part_size = n;
    }
    if ((v = setting(get, payload, "PLEXBURST_S3_MULTIPART_THRESHOLD")) != NULL) {
        uint64_t n = parse_size(v);
        if (n == 0 && strcmp(v, "0") != 0)
            return pb_error_set(err, PB_EINVALID,
                                "store: invalid PLEXBURST_S3_MULTIPART_THRESHOLD '%s'", v);
        o->multipart_threshold = n;
    }
    return 0;
}

/* The keys: PLEXBURST_S3_* before AWS_*, each named in later messages by where it came from. */
static int s3_keys(pb_store_s3_options *o, const char *url, pb_transport_config_get_fn get,
                   void *payload, pb_error *err)
{
    o->access_key_name = "PLEXBURST_S3_ACCESS_KEY";
    o->access_key = setting(get, payload, o->access_key_name);
    if (!o->access_key) {
        o->access_key_name = "AWS_ACCESS_KEY_ID";
        o->access_key = setting(get, payload, o->access_key_name);
    }
    o->secret_key_name = "PLEXBURST_S3_SECRET_KEY";
    o->secret_key = setting(get, payload, o->secret_key_name);
    if (!o->secret_key) {
        o->secret_key_name = "AWS_SECRET_ACCESS_KEY";
        o->secret_key = setting(get, payload, o->secret_key_name);
    }
    if (!o->access_key || !o->secret_key)
        return pb_error_set(err, PB_EINVALID,
                            "store: %s needs S3 keys: set AWS_ACCESS_KEY_ID and "
                            "AWS_SECRET_ACCESS_KEY (or PLEXBURST_S3_ACCESS_KEY/_SECRET_KEY)",
                            shown(url));
    return 0;
}

int pb_transport_config_s3(pb_store_s3_options *o, const char *url, pb_transport_config_get_fn get,
                           void *payload, pb_error *err)
{
    int error;
    long retries = o->retries, max_keys = (long)o->list_max_keys;
    o->endpoint = setting(get, payload, "PLEXBURST_S3_ENDPOINT");
    o->region = setting(get, payload, "PLEXBURST_S3_REGION");
    o->endpoint_name = "PLEXBURST_S3_ENDPOINT";
    o->region_name = "PLEXBURST_S3_REGION";
    if (!o->endpoint && !o->region)
        return pb_error_set(err, PB_EINVALID,
                            "store: %s needs PLEXBURST_S3_ENDPOINT (e.g. "
                            "https://s3.fr-par.scw.cloud) or PLEXBURST_S3_REGION",
                            shown(url));
    if ((error = s3_keys(o, url, get, payload, err)) < 0 ||
        (error = s3_sizes(o, get, payload, err)) < 0 ||
        (error = s3_int(&retries, get, payload, "PLEXBURST_S3_RETRIES", 1, 20, err)) < 0 ||
        (error = s3_int(&max_keys, get, payload, "PLEXBURST_S3_LIST_MAX_KEYS", 1, 1000, err)) < 0)
        return error;
    o->retries = (int)retries;
    o->list_max_keys = (unsigned)max_keys;
    return 0;
}

const char *pb_transport_config_cfg_get(void *payload, const char *key)
{
    return pb_config_get(payload, key);
}

int pb_transport_config_store_open(pb_store **out, const char *url, pb_error *err)
{
    return pb_transport_config_store_open_with(out, url, NULL, NULL, err);
}

int pb_transport_config_store_open_with(pb_store **out, const char *url,
                                        pb_transport_config_get_fn get, void *payload,
                                        pb_error *err)
{
    *out = NULL;
    if (!url || strncmp(url, "s3://", 5) != 0)
        return pb_store_open(out, url, err);
    pb_store_s3_options o = PB_STORE_S3_OPTIONS_INIT;
    int error = pb_transport_config_s3(&o, url, get, payload, err);
    if (error < 0)
        return error;
    return pb_store_s3_new(out, url, &o, err);
}

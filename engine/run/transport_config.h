/*
 * transport_config.h (internal): the engine's configuration layer of the transports: fills the
 * option structs of transfer/ (pb_ssh_options, pb_store_s3_options) from the run's settings,
 * so that transfer/ reads no setting itself. The names and their precedence are docs/ssh.md's
 * and docs/s3.md's: SSH settings come through a getter (a run's pb_config_get: the environment
 * first, then the configuration file); S3 settings through a getter too, by default the
 * environment alone.
 * Secrets (the key passphrase, the S3 secret key) are copied into the options, never logged,
 * never echoed in a message.
 * Role: engine/run/. Prerequisites: transfer/ssh.h, transfer/store_s3.h.
 */
#ifndef PB_TRANSPORT_CONFIG_H
#define PB_TRANSPORT_CONFIG_H

#include "ssh.h"
#include "store.h"
#include "store_s3.h"

/** Returns the value of a setting, or NULL when unset or empty. */
typedef const char *(*pb_transport_config_get_fn)(void *payload, const char *key);

/**
 * Fills `o` from a target (host, port, user; may be NULL) and the SSH settings:
 * PLEXBURST_SSH_KEY, PLEXBURST_SSH_KEY_PASSPHRASE, PLEXBURST_KNOWN_HOSTS,
 * PLEXBURST_SSH_HOST_KEY, PLEXBURST_SSH_TOFU, PLEXBURST_SSH_USE_USER_KNOWN_HOSTS,
 * PLEXBURST_SSH_AGENT=0, PLEXBURST_SSH_KEEPALIVE, PLEXBURST_SSH_RECONNECT_TRIES.
 * It also names the settings for the hints of transfer/'s messages. The strings stay the
 * target's and the getter's: keep them alive until pb_ssh_connect().
 * @param get  NULL: the environment.
 * @return 0; PB_EINVALID for a malformed value (naming the key, never a secret's value).
 */
int pb_transport_config_ssh(pb_ssh_options *o, const pb_ssh_target *t,
                            pb_transport_config_get_fn get, void *payload, pb_error *err);

/**
 * Fills `o` from the S3 settings: PLEXBURST_S3_ENDPOINT, PLEXBURST_S3_REGION, the keys
 * (PLEXBURST_S3_ACCESS_KEY / _SECRET_KEY before AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY),
 * PLEXBURST_S3_PART_SIZE (K/M/G suffixes), PLEXBURST_S3_MULTIPART_THRESHOLD,
 * PLEXBURST_S3_RETRIES, PLEXBURST_S3_LIST_MAX_KEYS. `url` (may be NULL) is named in messages.
 * @param get  NULL: the environment.
 * @return 0; PB_EINVALID naming the missing or malformed setting (never a secret's value).
 */
int pb_transport_config_s3(pb_store_s3_options *o, const char *url, pb_transport_config_get_fn get,
                           void *payload, pb_error *err);

/** The names of every S3 setting above, NULL-terminated: what the home sends to a remote agent
 * in PREPARE's `s3_env` (docs/protocol.md). */
extern const char *const pb_transport_config_s3_keys[];

/**
 * Opens the store at `url`: `s3://` with the S3 settings of the environment
 * (pb_transport_config_s3), anything else with pb_store_open().
 */
int pb_transport_config_store_open(pb_store **out, const char *url, pb_error *err);

/** A getter reading a pb_config (config.h: the environment, then the files); payload: the
 * pb_config. */
const char *pb_transport_config_cfg_get(void *payload, const char *key);

/** pb_transport_config_store_open() with the S3 settings taken through `get` (NULL: the
 * environment), e.g. a run's configuration (the environment, then the files). */
int pb_transport_config_store_open_with(pb_store **out, const char *url,
                                        pb_transport_config_get_fn get, void *payload,
                                        pb_error *err);

#endif

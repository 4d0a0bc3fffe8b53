/*
 * cloud_scaleway.h (internal): the pieces of the `scaleway[:ZONE]` cloud (docs/scaleway.md),
 * one file per job:
 *   cloud_scaleway_config.c  the account: SCW_* environment over the scw CLI's YAML config file
 *                            (profiles), as Scaleway's own tools read them;
 *   cloud_scaleway_api.c     the HTTP client of the Instance, Block and marketplace APIs
 *                            (libcurl + jansson), with jittered backoff on 429 / 5xx / network;
 *   cloud_scaleway_keys.c    the per-run ed25519 keys (host key and client key, OpenSSH format)
 *                            and the instance's #cloud-config user data;
 *   cloud_scaleway_res.c     the resources of a run: record in the state dir, teardown
 *                            (terminate or delete, IPs, volumes by id), verification, sweep;
 *   cloud_scaleway.c         the cloud seam's ops: prepare (account, price, guard, sweep),
 *                            connect (create stopped, user data, poweron, wait, SSH through
 *                            cloud_ssh.c), release (always tears down);
 *   cloud_scaleway_admin.c   `plexburst cloud status|reap|prices` (include/plexburst/scaleway.h).
 * The secret key is never printed, logged or written anywhere.
 * Role: engine/cloud. Prerequisites: libcurl, jansson, libyaml, OpenSSL's libcrypto.
 */
#ifndef PB_CLOUD_SCALEWAY_H
#define PB_CLOUD_SCALEWAY_H

#include <jansson.h>
#include <limits.h>
#include <stddef.h>
#include "config.h"
#include "plexburst/errors.h"

#define PB_SCW_DEFAULT_API   "https://api.scaleway.com"
#define PB_SCW_DEFAULT_ZONE  "fr-par-1"
#define PB_SCW_DEFAULT_IMAGE "debian_bookworm"
#define PB_SCW_DEFAULT_DIR   "/var/lib/plexburst"
#define PB_SCW_TAG           "plexburst"
#define PB_SCW_RUN_TAG       "plexburst-run="
#define PB_SCW_OWNER_TAG     "plexburst-owner="
#define PB_SCW_UNTIL_TAG     "plexburst-until="
#define PB_SCW_MAX_RESOURCES 16

/* ---- the account (cloud_scaleway_config.c) */

typedef struct pb_scw_account {
    char access_key[128];
    char secret_key[256]; /* never printed */
    char project[128];
    char zone[32];
    char api_url[512];
    char profile[128];          /* the profile used ("" : the file's top level or none) */
    char source[PATH_MAX + 32]; /* "environment", or the config file's path */
} pb_scw_account;

/** The account from SCW_* (environment, which wins) over $SCW_CONFIG_PATH,
 * $XDG_CONFIG_HOME/scw/config.yaml or ~/.config/scw/config.yaml (profile SCW_PROFILE, else the
 * file's active_profile). `zone` (may be NULL or "") overrides the default zone.
 * @return 0; PB_EINVALID naming the missing setting or the malformed file. */
int pb_scw_account_load(pb_scw_account *a, const char *zone, pb_error *err);

/** The zones of `zone`'s region, `zone` first (at most 8, NUL-terminated names). */
size_t pb_scw_region_zones(const char *zone, char out[][32], size_t cap);

/* ---- the API client (cloud_scaleway_api.c) */

typedef struct pb_scw_api {
    const pb_scw_account *acct;
    int backoff_max_ms;           /* cap of the jittered backoff (default 30000) */
    int budget_s;                 /* give up retrying after this long (default 300) */
    int (*cancel)(void *payload); /* optional: stops waiting (PB_ECANCELLED); NULL in teardown */
    void *cancel_payload;
    void (*log)(void *payload, const char *level, const char *line);
    void *log_payload;
    unsigned retries; /* OUT: retried requests so far */
    void *curl;
} pb_scw_api;

/** An answer: the HTTP status, the JSON body (NULL when none), the error `type` if any. */
typedef struct pb_scw_resp {
    long status;
    json_t *json;
    char type[64];
    char message[256];
} pb_scw_resp;

void pb_scw_resp_dispose(pb_scw_resp *r);

int pb_scw_api_init(pb_scw_api *api, const pb_scw_account *acct, pb_error *err);
void pb_scw_api_dispose(pb_scw_api *api);
/** A line through the account's log hook (none: nothing), `level` "info", "warn", ... */
void pb_scw_say(pb_scw_api *api, const char *level, const char *fmt, ...) PB_PRINTF(3, 4);

/**
 * One request to `<api_url><path>` with the X-Auth-Token, a JSON body (`json`, may be NULL) or a
 * text body (`text`, Content-Type text/plain). 429, 5xx and network errors are retried with
 * full-jitter backoff (1 s doubling up to backoff_max_ms) within budget_s; any other answer is
 * returned in `r` (4xx included: the caller decides).
 * @return 0 with r filled; PB_ENET when the API stayed unreachable; PB_ECANCELLED.
 */
int pb_scw_api_call(pb_scw_api *api, const char *method, const char *path, json_t *json,
                    const char *text, pb_scw_resp *r, pb_error *err);

/** A request whose answer must be 2xx: anything else is an error naming `what`, the status and
 * the API's type and message (PB_EAUTH for 401/403 except quotas, PB_EREFUSED for quotas and
 * out_of_stock, PB_ENOTFOUND for 404, PB_ERROR else). `r` may be NULL; on an error it holds no
 * JSON (nothing to dispose). */
int pb_scw_api_ok(pb_scw_api *api, const char *method, const char *path, json_t *json,
                  const char *text, pb_scw_resp *r, const char *what, pb_error *err);

/** The hourly price (EUR) of `type` in `zone` from products/servers (every page).
 * @return 0; PB_ENOTFOUND when the zone has no such type. */
int pb_scw_price(pb_scw_api *api, const char *zone, const char *type, double *hourly,
                 pb_error *err);

/** "available", "scarce", "shortage" or "" for `type` in `zone`. */
int pb_scw_availability(pb_scw_api *api, const char *zone, const char *type, char *out, size_t cap,
                        pb_error *err);

/* ---- keys and user data (cloud_scaleway_keys.c) */

typedef struct pb_scw_keys {
    char host_private[1024]; /* OpenSSH format, for the instance only (user data) */
    char host_public[256];   /* "ssh-ed25519 AAAA... plexburst-host" */
    char host_pin[64];       /* "SHA256:<base64>", what the SSH transport pins */
    char client_public[256];
    char client_key_path[PATH_MAX]; /* the client's private key file (0600), per run */
} pb_scw_keys;

/** Two fresh ed25519 key pairs; the client's private key written to `client_key_path` (0600). */
int pb_scw_keys_generate(pb_scw_keys *k, const char *client_key_path, const char *comment,
                         pb_error *err);
/** Wipes the private parts from memory. */
void pb_scw_keys_wipe(pb_scw_keys *k);

typedef struct pb_scw_userdata {
    const pb_scw_keys *keys;
    const char *run_id;
    const char *workdir;
    double max_hours;
    const char *selfdestruct_secret; /* NULL: no API self-destruct */
    const char *api_url, *zone;
    const char *plex_version; /* NULL: no Plex image pre-pulled (else it must pass the check) */
} pb_scw_userdata;

/** Non-zero when `v` may go into the user data as an image tag: [0-9A-Za-z.-]+, at most 64. */
int pb_scw_version_ok(const char *v);

/** The #cloud-config text (malloc'd; holds private keys: the caller wipes and frees it). */
char *pb_scw_userdata_build(const pb_scw_userdata *u);

/* ---- the resources of a run (cloud_scaleway_res.c) */

typedef struct pb_scw_run {
    char run_id[64];
    char zone[32];
    char server_id[64];
    char type[32];
    double hourly_price;
    int nvol;
    struct {
        char id[64];
        int block; /* sbs_volume: deleted through the Block API */
    } vol[PB_SCW_MAX_RESOURCES];
    int nip;
    char ip[PB_SCW_MAX_RESOURCES][64];
    char address[64];      /* the public address once running ("" before) */
    char host_public[256]; /* "ssh-ed25519 AAAA..." the instance's pinned host key */
    char host_pin[64];     /* its SHA256 fingerprint */
    double started;        /* wall clock (s) of the poweron accepted, 0: never */
    double stopped;        /* wall clock (s) of the terminate accepted */
    char record[PATH_MAX]; /* the state dir file recording it ("" : none) */
} pb_scw_run;

/** Writes `run` to its record file (atomic, 0600). */
int pb_scw_run_save(const pb_scw_run *run, pb_error *err);
/** Reads a record file. */
int pb_scw_run_load(pb_scw_run *run, const char *path, pb_error *err);

/**
 * A home that died mid-run: the newest record in `dir` of a dead process of this host whose
 * server still runs with the address, host key and client key file (`client_key` is
 * <dir>/<run id>.client_ed25519) it recorded. Adopted: the server's owner tag and the record now
 * name this process. The others are left to the sweep.
 * @return 1 with `run` filled (its record path set); 0 when none; < 0 on an API error.
 */
int pb_scw_adopt(pb_scw_api *api, const char *dir, pb_scw_run *run, pb_error *err);

/** Reads the server's volumes and IPs from a server object into `run` (deduplicated). */
void pb_scw_run_note(pb_scw_run *run, json_t *server);

/**
 * Tears down everything of `run`: the server terminated (running) or deleted (stopped; 412 on
 * terminate), its IPs and every recorded volume deleted by id (block volumes through the Block
 * API, retried while detaching), then verified by reading each back (404) and listing what is
 * tagged with the run id. Sets run->stopped. The record file is removed when all is verified.
 * @return 0 when nothing is left; PB_ENET / PB_ERROR naming what is left otherwise.
 */
int pb_scw_run_teardown(pb_scw_api *api, pb_scw_run *run, int poll_ms, pb_error *err);

/**
 * The sweep: every record file in `dir` (earlier runs of this home) torn down, then servers,
 * IPs and block volumes tagged `plexburst` in `zones` whose owner tag is this host and whose
 * process is gone, or whose until tag is past. `dry_run`: only listed. `found` counts them.
 */
int pb_scw_sweep(pb_scw_api *api, const char *dir, char zones[][32], size_t nzones, int dry_run,
                 int poll_ms, unsigned *found, pb_error *err);

/** "host:pid" identifying this process in owner tags. */
void pb_scw_owner(char *out, size_t cap);

/** Seconds since the epoch (wall clock, sub-second). */
double pb_scw_now(void);

/** Sleeps `ms` with ±25% jitter, polling `cancel` (may be NULL); PB_ECANCELLED when it fires. */
int pb_scw_sleep(int ms, int (*cancel)(void *), void *payload, pb_error *err);

#endif

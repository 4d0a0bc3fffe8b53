/*
 * plexburst/scaleway.h: the Scaleway account seen from the command line (`plexburst cloud
 * status|reap|prices`, docs/scaleway.md): what exists now tagged plexburst, the removal of what
 * runs left behind, and the live price table of the instance profiles. The account comes from
 * SCW_* and the scw CLI's config file, as for `--cloud scaleway`; the secret key is never shown.
 */
#ifndef PLEXBURST_SCALEWAY_H
#define PLEXBURST_SCALEWAY_H

#include "plexburst/common.h"
#include "plexburst/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pb_scaleway_options {
    unsigned version;      /* PB_SCALEWAY_OPTIONS_VERSION */
    const char *zone;      /* NULL: SCW_DEFAULT_ZONE / the config file / fr-par-1 */
    const char *state_dir; /* reap: also the records of this home's runs (NULL: tags only) */
    int dry_run;           /* reap: list only */
    /** One line for the user (level "info", "detail", "warn"); optional. */
    void (*log)(void *payload, const char *level, const char *line);
    void *log_payload;
} pb_scaleway_options;

#define PB_SCALEWAY_OPTIONS_VERSION 1
#define PB_SCALEWAY_OPTIONS_INIT                                                                   \
    {                                                                                              \
        PB_SCALEWAY_OPTIONS_VERSION, NULL, NULL, 0, NULL, NULL                                     \
    }

/** One server tagged plexburst (status). */
typedef struct pb_scaleway_server {
    const char *zone, *id, *name, *state, *type, *run_id, *created;
    double hourly_price, hours, cost; /* since its creation: an upper bound of what it cost */
} pb_scaleway_server;

/** One row of the price table (prices). */
typedef struct pb_scaleway_price {
    const char *profile, *type, *availability;
    int root_gb;
    double hourly_price;
} pb_scaleway_price;

/** Every server tagged plexburst in the zone's region; `n` gets their count. */
PB_EXTERN(int)
pb_scaleway_status(const pb_scaleway_options *o,
                   int (*each)(const pb_scaleway_server *s, void *payload), void *payload,
                   unsigned *n, pb_error *err);

/** Removes (or lists, dry_run) what earlier runs left; `found` counts the leftovers. */
PB_EXTERN(int)
pb_scaleway_reap(const pb_scaleway_options *o, unsigned *found, pb_error *err);

/** The live price and availability of the profiles' types in the zone. */
PB_EXTERN(int)
pb_scaleway_prices(const pb_scaleway_options *o,
                   int (*each)(const pb_scaleway_price *p, void *payload), void *payload,
                   pb_error *err);

#ifdef __cplusplus
}
#endif

#endif

/*
 * cloud_scaleway_admin.c: plexburst/scaleway.h, the Scaleway account from the command line:
 * `cloud status` (servers tagged plexburst in the region, with what they cost so far), `cloud
 * reap` (the sweep of cloud_scaleway_res.c on demand: this home's records and the tagged
 * leftovers of dead or expired runs) and `cloud prices` (the profiles' live price table).
 * Role: engine/cloud, for cli/cmd_cloud.c. Prerequisites: cloud_scaleway_*.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cloud_scaleway.h"
#include "plexburst/scaleway.h"

typedef struct admin {
    pb_scw_account acct;
    pb_scw_api api;
    char zones[8][32];
    size_t nzones;
} admin;

static int open_admin(admin *a, const pb_scaleway_options *o, pb_error *err)
{
    int error;
    memset(a, 0, sizeof(*a));
    if (!o || o->version != PB_SCALEWAY_OPTIONS_VERSION)
        return pb_error_set(err, PB_EINVALID, "scaleway: bad options");
    if ((error = pb_scw_account_load(&a->acct, o->zone, err)) < 0 ||
        (error = pb_scw_api_init(&a->api, &a->acct, err)) < 0)
        return error;
    a->api.log = o->log;
    a->api.log_payload = o->log_payload;
    a->api.budget_s = 60;
    a->nzones = pb_scw_region_zones(a->acct.zone, a->zones, 8);
    return 0;
}

static void close_admin(admin *a)
{
    pb_scw_api_dispose(&a->api);
    memset(a->acct.secret_key, 0, sizeof(a->acct.secret_key));
}

/* Seconds since the epoch of an RFC 3339 date ("2025-11-04T10:18:39.714572+00:00"), 0 if not. */
static double parse_date(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (!s || sscanf(s, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                     &tm.tm_min, &tm.tm_sec) != 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (double)timegm(&tm);
}

int pb_scaleway_status(const pb_scaleway_options *o,
                       int (*each)(const pb_scaleway_server *s, void *payload), void *payload,
                       unsigned *n, pb_error *err)
{
    admin a;
    int error = 0;
    *n = 0;
    if ((error = open_admin(&a, o, err)) < 0)
        goto done;
    for (size_t z = 0; z < a.nzones && error == 0; z++) {
        char path[256];
        pb_scw_resp r;
        snprintf(path, sizeof(path),
                 "/instance/v1/zones/%s/servers?tags=" PB_SCW_TAG "&per_page=100", a.zones[z]);
        if ((error = pb_scw_api_ok(&a.api, "GET", path, NULL, NULL, &r, "listing servers", err)) <
            0)
            break;
        size_t i;
        json_t *s, *t;
        json_array_foreach(json_object_get(r.json, "servers"), i, s)
        {
            pb_scaleway_server v;
            memset(&v, 0, sizeof(v));
            size_t k;
            v.run_id = "";
            json_array_foreach(json_object_get(s, "tags"), k, t)
            {
                const char *tag = json_string_value(t);
                if (tag && !strncmp(tag, PB_SCW_RUN_TAG, strlen(PB_SCW_RUN_TAG)))
                    v.run_id = tag + strlen(PB_SCW_RUN_TAG);
            }
            v.zone = a.zones[z];
            v.id = json_string_value(json_object_get(s, "id"));
            v.name = json_string_value(json_object_get(s, "name"));
            v.state = json_string_value(json_object_get(s, "state"));
            v.type = json_string_value(json_object_get(s, "commercial_type"));
            v.created = json_string_value(json_object_get(s, "creation_date"));
            pb_error pe = PB_ERROR_INIT;
            if (v.type)
                pb_scw_price(&a.api, a.zones[z], v.type, &v.hourly_price, &pe);
            double c0 = parse_date(v.created);
            v.hours = c0 > 0 ? (pb_scw_now() - c0) / 3600 : 0;
            v.cost = v.hours * v.hourly_price;
            (*n)++;
            if (each && each(&v, payload) != 0)
                break;
        }
        pb_scw_resp_dispose(&r);
    }
done:
    close_admin(&a);
    return error;
}

int pb_scaleway_reap(const pb_scaleway_options *o, unsigned *found, pb_error *err)
{
    admin a;
    int error;
    *found = 0;
    if ((error = open_admin(&a, o, err)) == 0) {
        char dir[PATH_MAX + 16] = "";
        if (o->state_dir)
            snprintf(dir, sizeof(dir), "%s/scaleway", o->state_dir);
        error = pb_scw_sweep(&a.api, dir[0] ? dir : NULL, a.zones, a.nzones, o->dry_run, 2000,
                             found, err);
    }
    close_admin(&a);
    return error;
}

int pb_scaleway_prices(const pb_scaleway_options *o,
                       int (*each)(const pb_scaleway_price *p, void *payload), void *payload,
                       pb_error *err)
{
    static const struct {
        const char *profile, *type;
        int root_gb;
    } rows[] = {{"lite", "DEV1-S", 20},
                {"standard", "DEV1-M", 40},
                {"power", "GP1-S", 100},
                {"superpower", "GP1-M", 100}};
    admin a;
    int error;
    if ((error = open_admin(&a, o, err)) == 0) {
        for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
            pb_scaleway_price p = {rows[i].profile, rows[i].type, "", rows[i].root_gb, 0};
            char avail[32];
            if ((error = pb_scw_price(&a.api, a.acct.zone, rows[i].type, &p.hourly_price, err)) <
                    0 ||
                (error = pb_scw_availability(&a.api, a.acct.zone, rows[i].type, avail,
                                             sizeof(avail), err)) < 0)
                break;
            p.availability = avail;
            if (each && each(&p, payload) != 0)
                break;
        }
    }
    close_admin(&a);
    return error;
}

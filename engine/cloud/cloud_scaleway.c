/*
 * cloud_scaleway.c: the `scaleway[:ZONE]` cloud (cloud.h, docs/scaleway.md): an instance created
 * for the run and always destroyed after it.
 *   prepare  the account (SCW_*, scw config), the instance type (PLEXBURST_SCW_TYPE or the
 *            profile lite|standard|power|superpower), the sweep of what earlier runs left, the
 *            zone (availability, the region's other zones on a shortage), the live hourly price
 *            and the guard PLEXBURST_MAX_COST against PLEXBURST_MAX_HOURS;
 *   connect  (first time) per-run keys, the image by label, the server created STOPPED with the
 *            run's tags (out_of_stock: the next zone), recorded in the state dir, the cloud-init
 *            user data, poweron, polled until running with a public IP, TCP to SSH; then the
 *            agent through the ssh cloud's path with the client key and the pinned host key;
 *   release  on every path out (success, failure, refusal, Ctrl-C, SIGTERM, a lost link, an API
 *            error): the teardown of cloud_scaleway_res.c and the billed time and cost;
 *   over_budget  polled while the run goes: the spend against PLEXBURST_MAX_COST.
 * A home that died mid-run left its record (<state>/scaleway/<run>.json): prepare re-attaches to
 * that instance when it still runs (the record's keys and address), and the sweep destroys it
 * otherwise. Each lifecycle step is a numbered line ("Scaleway step N/10: ...").
 * Role: engine/cloud. Prerequisites: cloud_scaleway_*.c, cloud_ssh.c (pb_cloud__ssh_start).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cloud.h"
#include "cloud_scaleway.h"
#include "fs.h"
#include "runner.h"

typedef struct scw {
    pb_scw_account acct;
    pb_scw_api api;
    int have_api;
    char type[32], image[64], ssh_user[64];
    int root_gb, ssh_port, poll_ms, boot_timeout_s, ssh_timeout_s;
    double max_hours, max_cost;
    char zones[8][32];
    size_t nzones;
    char dir[PATH_MAX];
    pb_scw_run run;
    pb_scw_keys keys;
    int have_keys, ready;
    char known_hosts[PATH_MAX + 32];
    char address[64];
    char ssh_url[PATH_MAX + 200];
    char sd_access[64], sd_secret[128]; /* the self-destruct's IAM API key ("": none) */
} scw;

static const struct {
    const char *name, *type;
    int root_gb;
} profiles[] = {
    {"lite", "DEV1-S", 20},
    {"standard", "DEV1-M", 40},
    {"power", "GP1-S", 100},
    {"superpower", "GP1-M", 100},
};

/* The lifecycle's numbered steps, as the user follows them. */
enum {
    ST_SWEEP = 1,
    ST_ESTIMATE,
    ST_KEYS,
    ST_CREATE,
    ST_USERDATA,
    ST_POWERON,
    ST_RUNNING,
    ST_SSH,
    ST_AGENT,
    ST_DESTROY,
    ST_COUNT = ST_DESTROY
};
static const char *const step_names[] = {
    "",
    "sweep what earlier runs left",
    "zone, live price and cost estimate",
    "per-run SSH keys",
    "create the server (stopped)",
    "set the cloud-init user data",
    "poweron",
    "wait until running with a public IP",
    "wait for SSH",
    "install and start the agent",
    "destroy the server, its IPs and volumes, and verify",
};

static void step(pb_cloud *c, int n, const char *detail)
{
    pb_cloud__log(c, "info", "🔄 Scaleway step %d/%d: %s%s%s", n, ST_COUNT, step_names[n],
                  detail && *detail ? ": " : "", detail ? detail : "");
}

static void api_log(void *payload, const char *level, const char *line)
{
    pb_cloud__log(payload, level, "%s", line);
}

static const char *setting(pb_cloud *c, const char *key)
{
    return pb_config_get(c->o.cfg, key);
}

/* A number setting (validated by the settings table), else `def`. */
static int number(pb_cloud *c, const char *key, double def, double *out, pb_error *err)
{
    const char *v = setting(c, key);
    *out = def;
    return v ? pb_config_number(out, key, v, err) : 0;
}

static int read_settings(pb_cloud *c, scw *s, pb_error *err)
{
    int error;
    double d;
    const char *prof = c->o.profile ? c->o.profile : setting(c, "PLEXBURST_SCW_PROFILE");
    const char *type = c->o.instance_type ? c->o.instance_type : setting(c, "PLEXBURST_SCW_TYPE");
    size_t p = 1; /* standard */
    if (prof) {
        for (p = 0; p < sizeof(profiles) / sizeof(*profiles); p++)
            if (!strcmp(profiles[p].name, prof))
                break;
        if (p == sizeof(profiles) / sizeof(*profiles))
            return pb_error_set(err, PB_EINVALID,
                                "%s: expected lite, standard, power or superpower, not '%s'",
                                c->o.profile ? "--profile" : "PLEXBURST_SCW_PROFILE", prof);
    }
    if (type && (!*type || strlen(type) >= sizeof(s->type) || strpbrk(type, "/?&# "))) {
        return pb_error_set(err, PB_EINVALID, "%s: not a commercial type: '%s'",
                            c->o.instance_type ? "--instance-type" : "PLEXBURST_SCW_TYPE", type);
    }
    snprintf(s->type, sizeof(s->type), "%s", type ? type : profiles[p].type);
    snprintf(s->image, sizeof(s->image), "%s",
             setting(c, "PLEXBURST_SCW_IMAGE") ? setting(c, "PLEXBURST_SCW_IMAGE")
                                               : PB_SCW_DEFAULT_IMAGE);
    snprintf(s->ssh_user, sizeof(s->ssh_user), "%s",
             setting(c, "PLEXBURST_SCW_SSH_USER") ? setting(c, "PLEXBURST_SCW_SSH_USER") : "root");
    if ((error = number(c, "PLEXBURST_SCW_ROOT_GB", profiles[p].root_gb, &d, err)) < 0)
        return error;
    s->root_gb = (int)d;
    if ((error = number(c, "PLEXBURST_SCW_SSH_PORT", 22, &d, err)) < 0)
        return error;
    s->ssh_port = (int)d;
    if ((error = number(c, "PLEXBURST_SCW_POLL_MS", 4000, &d, err)) < 0)
        return error;
    s->poll_ms = (int)d;
    if ((error = number(c, "PLEXBURST_SCW_BOOT_TIMEOUT_S", 600, &d, err)) < 0)
        return error;
    s->boot_timeout_s = (int)d;
    if ((error = number(c, "PLEXBURST_SCW_SSH_TIMEOUT_S", 300, &d, err)) < 0)
        return error;
    s->ssh_timeout_s = (int)d;
    if ((error = number(c, "PLEXBURST_MAX_HOURS", 12, &s->max_hours, err)) < 0 ||
        (error = number(c, "PLEXBURST_MAX_COST", 0, &s->max_cost, err)) < 0)
        return error;
    if ((error = number(c, "PLEXBURST_SCW_BACKOFF_MAX_MS", 30000, &d, err)) < 0)
        return error;
    s->api.backoff_max_ms = (int)d;
    if ((error = number(c, "PLEXBURST_SCW_API_TIMEOUT_S", 300, &d, err)) < 0)
        return error;
    s->api.budget_s = (int)d;
    const char *dir = setting(c, "PLEXBURST_CLOUD_DIR");
    snprintf(c->workdir, sizeof(c->workdir), "%s", dir ? dir : PB_SCW_DEFAULT_DIR);
    if (c->workdir[0] != '/')
        return pb_error_set(err, PB_EINVALID, "PLEXBURST_CLOUD_DIR must be absolute, not '%s'",
                            c->workdir);
    return 0;
}

/* The first zone of the region where the type is not short ("" when none). */
static int pick_zone(pb_cloud *c, scw *s, size_t from, pb_error *err)
{
    int error;
    char avail[32], tried[512] = "";
    for (size_t i = from; i < s->nzones; i++) {
        if ((error =
                 pb_scw_availability(&s->api, s->zones[i], s->type, avail, sizeof(avail), err)) < 0)
            return error;
        if (strcmp(avail, "shortage") != 0) {
            snprintf(s->run.zone, sizeof(s->run.zone), "%s", s->zones[i]);
            return (int)i;
        }
        pb_cloud__log(c, "warn", "%s: shortage in %s, trying the region's other zones", s->type,
                      s->zones[i]);
        size_t n = strlen(tried);
        snprintf(tried + n, sizeof(tried) - n, "%s%s", n ? ", " : "", s->zones[i]);
    }
    return pb_error_set(err, PB_EREFUSED, "Scaleway has no %s available in %s (tried %s)", s->type,
                        s->zones[0], tried);
}

/* The cost guard: the estimate for the lifetime cap against PLEXBURST_MAX_COST. */
static int cost_guard(pb_cloud *c, scw *s, pb_error *err)
{
    double estimate = s->run.hourly_price * s->max_hours;
    char line[256];
    snprintf(line, sizeof(line),
             "%s in %s at %.4f EUR/h: at most %.2f EUR for the lifetime cap of %g h%s", s->type,
             s->run.zone, s->run.hourly_price, estimate, s->max_hours,
             s->max_cost > 0 ? "" : " (no PLEXBURST_MAX_COST set)");
    pb_cloud__log(c, "info", "📊 %s", line);
    snprintf(c->result.zone, sizeof(c->result.zone), "%s", s->run.zone);
    snprintf(c->result.type, sizeof(c->result.type), "%s", s->type);
    c->result.hourly_price = s->run.hourly_price;
    if (s->max_cost > 0 && estimate > s->max_cost)
        return pb_error_set(err, PB_EREFUSED,
                            "the estimate %.2f EUR (%s at %.4f EUR/h for PLEXBURST_MAX_HOURS=%g) "
                            "exceeds PLEXBURST_MAX_COST=%g: nothing was created",
                            estimate, s->type, s->run.hourly_price, s->max_hours, s->max_cost);
    return 0;
}

/* A home that died mid-run left an instance that still runs: the run goes on with it. */
static int reattach(pb_cloud *c, scw *s, pb_error *err)
{
    int error = 0;
    pb_scw_run run;
    memset(&run, 0, sizeof(run));
    if (!s->dir[0] || (error = pb_scw_adopt(&s->api, s->dir, &run, err)) <= 0)
        return error;
    s->run = run;
    snprintf(s->type, sizeof(s->type), "%s", run.type);
    snprintf(s->address, sizeof(s->address), "%s", run.address);
    snprintf(s->keys.client_key_path, sizeof(s->keys.client_key_path),
             "%.3900s/%.60s.client_ed25519", s->dir, run.run_id);
    snprintf(s->keys.host_pin, sizeof(s->keys.host_pin), "%s", run.host_pin);
    s->have_keys = 1;
    snprintf(c->result.server_id, sizeof(c->result.server_id), "%s", run.server_id);
    pb_cloud__log(c, "info", "🔄 re-attached to server %s (%s in %s) of run %s", run.server_id,
                  run.type, run.zone, run.run_id);
    return 1;
}

static int scw_prepare(pb_cloud *c, pb_error *err)
{
    int error;
    scw *s = calloc(1, sizeof(*s));
    if (!s)
        return pb_error_set(err, PB_ENOMEM, "out of memory");
    c->impl = s;
    const char *zone = c->url[8] == ':' ? c->url + 9 : NULL;
    if (c->url[8] == ':' && !*zone)
        return pb_error_set(err, PB_EINVALID, "--cloud scaleway: names no zone");
    if ((error = pb_scw_account_load(&s->acct, zone, err)) < 0 ||
        (error = pb_scw_api_init(&s->api, &s->acct, err)) < 0)
        return error;
    s->have_api = 1;
    s->api.log = api_log;
    s->api.log_payload = c;
    s->api.cancel = c->o.cancel;
    s->api.cancel_payload = c->o.cancel_payload;
    if ((error = read_settings(c, s, err)) < 0)
        return error;
    if (!c->store[0])
        return pb_error_set(err, PB_EINVALID,
                            "--cloud %s needs a store both sides reach (--store s3://... or "
                            "PLEXBURST_STORE)",
                            c->url);
    s->nzones = pb_scw_region_zones(s->acct.zone, s->zones, 8);
    snprintf(s->run.run_id, sizeof(s->run.run_id), "%s",
             c->o.run_id && *c->o.run_id ? c->o.run_id : "adhoc");
    snprintf(s->run.type, sizeof(s->run.type), "%s", s->type);
    if (c->o.home_state) {
        snprintf(s->dir, sizeof(s->dir), "%s/scaleway", c->o.home_state);
        if ((error = pb_fs_mkdirs(s->dir, 0700, err)) < 0)
            return error;
    }
    pb_cloud__log(c, "info", "Scaleway account from %s%s%s, project %s, zone %s", s->acct.source,
                  s->acct.profile[0] ? ", profile " : "", s->acct.profile, s->acct.project,
                  s->acct.zone);
    c->billed = 1; /* nothing billed until a poweron */
    /* an instance a home that died left running: re-attached; else swept below */
    int adopted = reattach(c, s, err);
    if (adopted < 0)
        return adopted;
    /* the sweep of what earlier runs left (records of this home, tags of dead owners) */
    unsigned found = 0;
    step(c, ST_SWEEP, NULL);
    if ((error = pb_scw_sweep(&s->api, s->dir[0] ? s->dir : NULL, s->zones, s->nzones, 0,
                              s->poll_ms, &found, err)) < 0)
        return error;
    pb_cloud__log(c, "info", "%s",
                  found ? "🔄 swept what earlier runs left" : "✅ nothing left by earlier runs");
    if (adopted) {
        s->ready = 2; /* the address and keys are known: SSH next */
        return cost_guard(c, s, err);
    }
    /* the zone and the live price; the cost guard */
    step(c, ST_ESTIMATE, NULL);
    if ((error = pick_zone(c, s, 0, err)) < 0 ||
        (error = pb_scw_price(&s->api, s->run.zone, s->type, &s->run.hourly_price, err)) < 0)
        return error;
    return cost_guard(c, s, err);
}

static int cancelled(pb_cloud *c, pb_error *err)
{
    if (c->o.cancel && c->o.cancel(c->o.cancel_payload))
        return pb_error_set(err, PB_ECANCELLED, "cancelled (Ctrl-C) while the instance starts");
    return 0;
}

/* The image id of the label for the zone and type (block-volume root). */
static int find_image(scw *s, char *out, size_t cap, pb_error *err)
{
    int error;
    char path[512];
    pb_scw_resp r;
    snprintf(path, sizeof(path),
             "/marketplace/v2/local-images?image_label=%s&zone=%s&type=instance_sbs&order_by="
             "type_asc",
             s->image, s->run.zone);
    if ((error = pb_scw_api_ok(&s->api, "GET", path, NULL, NULL, &r, "the image list", err)) < 0)
        return error;
    size_t i, j;
    json_t *img, *t;
    out[0] = '\0';
    json_array_foreach(json_object_get(r.json, "local_images"), i, img)
    {
        json_array_foreach(json_object_get(img, "compatible_commercial_types"), j, t)
        {
            if (!out[0] && json_string_value(t) && !strcmp(json_string_value(t), s->type))
                snprintf(out, cap, "%s", json_string_value(json_object_get(img, "id")));
        }
    }
    pb_scw_resp_dispose(&r);
    if (!out[0])
        return pb_error_set(err, PB_ENOTFOUND, "no image '%s' for %s in %s (PLEXBURST_SCW_IMAGE)",
                            s->image, s->type, s->run.zone);
    return 0;
}

/* Creates the server, stopped, in the chosen zone or the next ones on out_of_stock. */
static int create_server(pb_cloud *c, scw *s, pb_error *err)
{
    int error = 0;
    char image[64], path[256], owner[192], tag_run[128], tag_owner[256], tag_until[64], name[96];
    pb_scw_owner(owner, sizeof(owner));
    snprintf(tag_run, sizeof(tag_run), PB_SCW_RUN_TAG "%s", s->run.run_id);
    snprintf(tag_owner, sizeof(tag_owner), PB_SCW_OWNER_TAG "%s", owner);
    snprintf(tag_until, sizeof(tag_until), PB_SCW_UNTIL_TAG "%.0f",
             pb_scw_now() + s->max_hours * 3600 + 600);
    snprintf(name, sizeof(name), "plexburst-%s", s->run.run_id);
    size_t zi = 0;
    while (zi < s->nzones && strcmp(s->zones[zi], s->run.zone))
        zi++;
    for (;;) {
        pb_scw_resp r;
        if ((error = find_image(s, image, sizeof(image), err)) < 0)
            return error;
        json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:[s,s,s,s], s:b, s:{s:{s:I, s:s}}}", "name",
                                 name, "commercial_type", s->type, "image", image, "project",
                                 s->acct.project, "tags", PB_SCW_TAG, tag_run, tag_owner, tag_until,
                                 "dynamic_ip_required", 1, "volumes", "0", "size",
                                 (json_int_t)s->root_gb * 1000000000, "volume_type", "sbs_volume");
        snprintf(path, sizeof(path), "/instance/v1/zones/%s/servers", s->run.zone);
        error = pb_scw_api_call(&s->api, "POST", path, body, NULL, &r, err);
        json_decref(body);
        if (error < 0)
            return error;
        if (r.status == 201 || r.status == 200) {
            json_t *srv = json_object_get(r.json, "server");
            snprintf(s->run.server_id, sizeof(s->run.server_id), "%s",
                     json_string_value(json_object_get(srv, "id"))
                         ? json_string_value(json_object_get(srv, "id"))
                         : "");
            pb_scw_run_note(&s->run, srv);
            pb_scw_resp_dispose(&r);
            break;
        }
        if (!strcmp(r.type, "out_of_stock") && zi + 1 < s->nzones) {
            pb_cloud__log(c, "warn", "%s is out of stock in %s: trying %s", s->type, s->run.zone,
                          s->zones[zi + 1]);
            pb_scw_resp_dispose(&r);
            int z = pick_zone(c, s, zi + 1, err);
            if (z < 0)
                return z;
            zi = (size_t)z;
            if ((error = pb_scw_price(&s->api, s->run.zone, s->type, &s->run.hourly_price, err)) <
                    0 ||
                (error = cost_guard(c, s, err)) < 0)
                return error;
            continue;
        }
        if (!strcmp(r.type, "out_of_stock"))
            error = pb_error_set(err, PB_EREFUSED,
                                 "%s is out of stock in every zone of the region tried (up to %s)",
                                 s->type, s->run.zone);
        else if (!strcmp(r.type, "quotas_exceeded"))
            error = pb_error_set(err, PB_EREFUSED,
                                 "Scaleway quota exceeded creating a %s in %s: %s (raise the "
                                 "project's quota in the console)",
                                 s->type, s->run.zone, r.message);
        else
            error = pb_error_set(err, r.status == 401 || r.status == 403 ? PB_EAUTH : PB_ERROR,
                                 "Scaleway API: creating the server: HTTP %ld %s %s", r.status,
                                 r.type, r.message);
        pb_scw_resp_dispose(&r);
        return error;
    }
    snprintf(c->result.zone, sizeof(c->result.zone), "%s", s->run.zone);
    snprintf(c->result.server_id, sizeof(c->result.server_id), "%s", s->run.server_id);
    c->result.hourly_price = s->run.hourly_price;
    if (s->dir[0])
        snprintf(s->run.record, sizeof(s->run.record), "%.3900s/%.60s.json", s->dir, s->run.run_id);
    pb_cloud__log(c, "info", "📦 server %s created (stopped) in %s: %s, %d GB block root",
                  s->run.server_id, s->run.zone, s->type, s->root_gb);
    return pb_scw_run_save(&s->run, err);
}

/* POST an action, retried while the server is in a transient state. */
static int server_action(pb_cloud *c, scw *s, const char *action, pb_error *err)
{
    int error;
    char path[256];
    snprintf(path, sizeof(path), "/instance/v1/zones/%s/servers/%s/action", s->run.zone,
             s->run.server_id);
    for (int i = 0; i < 60; i++) {
        pb_scw_resp r;
        json_t *b = json_pack("{s:s}", "action", action);
        error = pb_scw_api_call(&s->api, "POST", path, b, NULL, &r, err);
        json_decref(b);
        if (error < 0)
            return error;
        long st = r.status;
        char type[64], msg[256];
        snprintf(type, sizeof(type), "%s", r.type);
        snprintf(msg, sizeof(msg), "%s", r.message);
        pb_scw_resp_dispose(&r);
        if (st == 202 || st == 200)
            return 0;
        if (st != 409)
            return pb_error_set(err, PB_ERROR, "Scaleway API: %s of server %s: HTTP %ld %s %s",
                                action, s->run.server_id, st, type, msg);
        if ((error = pb_scw_sleep(s->poll_ms, c->o.cancel, c->o.cancel_payload, err)) < 0)
            return error;
    }
    return pb_error_set(err, PB_ERROR, "Scaleway: the server stayed in a transient state");
}

/* Polls until running with a public IP. */
static int wait_running(pb_cloud *c, scw *s, pb_error *err)
{
    int error;
    char path[256];
    snprintf(path, sizeof(path), "/instance/v1/zones/%s/servers/%s", s->run.zone, s->run.server_id);
    double t0 = pb_scw_now();
    char last[32] = "";
    for (;;) {
        pb_scw_resp r;
        if ((error = cancelled(c, err)) < 0 ||
            (error = pb_scw_api_ok(&s->api, "GET", path, NULL, NULL, &r, "reading the server",
                                   err)) < 0)
            return error;
        json_t *srv = json_object_get(r.json, "server");
        const char *st = json_string_value(json_object_get(srv, "state"));
        const char *ip = json_string_value(
            json_object_get(json_array_get(json_object_get(srv, "public_ips"), 0), "address"));
        if (!ip)
            ip = json_string_value(json_object_get(json_object_get(srv, "public_ip"), "address"));
        int nip = s->run.nip;
        pb_scw_run_note(&s->run, srv);
        if (s->run.nip != nip)
            pb_scw_run_save(&s->run, err);
        if (st && strcmp(st, last)) {
            pb_cloud__log(c, "info", "⏳ server %s: %s", s->run.server_id, st);
            snprintf(last, sizeof(last), "%s", st);
        }
        int done = st && !strcmp(st, "running") && ip && *ip;
        if (done)
            snprintf(s->address, sizeof(s->address), "%s", ip);
        int bad = st && (!strcmp(st, "stopped") || !strcmp(st, "locked"));
        pb_scw_resp_dispose(&r);
        if (done)
            return 0;
        if (bad)
            return pb_error_set(err, PB_ERROR, "Scaleway: server %s went %s while starting",
                                s->run.server_id, last);
        if (pb_scw_now() - t0 > s->boot_timeout_s)
            return pb_error_set(err, PB_ENET,
                                "Scaleway: server %s not running with a public IP after %d s "
                                "(state %s; PLEXBURST_SCW_BOOT_TIMEOUT_S)",
                                s->run.server_id, s->boot_timeout_s, last);
        if ((error = pb_scw_sleep(s->poll_ms, c->o.cancel, c->o.cancel_payload, err)) < 0)
            return error;
    }
}

/* 1 when a TCP connection to addr:port opens within `ms`. */
static int tcp_open(const char *addr, int port, int ms)
{
    struct addrinfo hints = {0}, *ai = NULL;
    char ps[16];
    hints.ai_socktype = SOCK_STREAM;
    snprintf(ps, sizeof(ps), "%d", port);
    if (getaddrinfo(addr, ps, &hints, &ai) != 0 || !ai)
        return 0;
    int ok = 0, fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd >= 0) {
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            ok = 1;
        else if (errno == EINPROGRESS) {
            struct pollfd p = {fd, POLLOUT, 0};
            int e = 0;
            socklen_t el = sizeof(e);
            if (poll(&p, 1, ms) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) == 0 && !e)
                ok = 1;
        }
        close(fd);
    }
    freeaddrinfo(ai);
    return ok;
}

static int wait_ssh(pb_cloud *c, scw *s, pb_error *err)
{
    int error;
    double t0 = pb_scw_now();
    pb_cloud__log(c, "info", "⏳ waiting for SSH on %s port %d", s->address, s->ssh_port);
    while (!tcp_open(s->address, s->ssh_port, 3000)) {
        if (pb_scw_now() - t0 > s->ssh_timeout_s)
            return pb_error_set(err, PB_ENET,
                                "Scaleway: no SSH on %s port %d after %d s "
                                "(PLEXBURST_SCW_SSH_TIMEOUT_S)",
                                s->address, s->ssh_port, s->ssh_timeout_s);
        if ((error = pb_scw_sleep(s->poll_ms < 1000 ? s->poll_ms : 1000, c->o.cancel,
                                  c->o.cancel_payload, err)) < 0)
            return error;
    }
    return 0;
}

/* The self-destruct's credential: an IAM API key of the application PLEXBURST_SCW_SELFDESTRUCT_APP
 * (granted instance and block rights on the project only), expiring an hour after the lifetime
 * cap, deleted at release (docs/scaleway.md "Self-destruct"). Without the setting: none. */
static int selfdestruct_key(pb_cloud *c, scw *s, pb_error *err)
{
    int error;
    const char *app = setting(c, "PLEXBURST_SCW_SELFDESTRUCT_APP");
    if (!app) {
        pb_cloud__log(c, "warn",
                      "no PLEXBURST_SCW_SELFDESTRUCT_APP: at the lifetime cap the instance only "
                      "powers itself off (still billed for storage); the next run's sweep or "
                      "`plexburst cloud reap` removes it");
        return 0;
    }
    char until[64], desc[128];
    time_t t = (time_t)(pb_scw_now() + s->max_hours * 3600 + 3600);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(desc, sizeof(desc), "plexburst run %s: self-destruct of its instance", s->run.run_id);
    pb_scw_resp r;
    json_t *b = json_pack("{s:s, s:s, s:s, s:s}", "application_id", app, "description", desc,
                          "expires_at", until, "default_project_id", s->acct.project);
    error =
        pb_scw_api_ok(&s->api, "POST", "/iam/v1alpha1/api-keys", b, NULL, &r,
                      "creating the self-destruct API key (PLEXBURST_SCW_SELFDESTRUCT_APP)", err);
    json_decref(b);
    if (error < 0)
        return error;
    const char *ak = json_string_value(json_object_get(r.json, "access_key"));
    const char *sk = json_string_value(json_object_get(r.json, "secret_key"));
    if (ak && sk) {
        snprintf(s->sd_access, sizeof(s->sd_access), "%s", ak);
        snprintf(s->sd_secret, sizeof(s->sd_secret), "%s", sk);
    }
    pb_scw_resp_dispose(&r);
    if (!s->sd_secret[0])
        return pb_error_set(err, PB_ERROR, "Scaleway IAM answered no API key");
    pb_cloud__log(c, "info", "📦 self-destruct API key created (expires %s), deleted at the end",
                  until);
    return 0;
}

/* SSH open on the address; the per-run known_hosts with the pinned host key; the ssh:// URL. */
static int reach_ssh(pb_cloud *c, scw *s, pb_error *err)
{
    int error;
    char line[512], pub[256];
    step(c, ST_SSH, s->address);
    if ((error = wait_ssh(c, s, err)) < 0)
        return error;
    snprintf(s->known_hosts, sizeof(s->known_hosts), "%.3900s/%.60s.known_hosts",
             s->dir[0] ? s->dir : "/tmp", s->run.run_id);
    snprintf(pub, sizeof(pub), "%s", s->run.host_public);
    char *sp = strchr(pub, ' ');
    if (sp && (sp = strchr(sp + 1, ' ')))
        *sp = '\0'; /* "ssh-ed25519 AAAA..." */
    snprintf(line, sizeof(line), "[%s]:%d %s\n", s->address, s->ssh_port, pub);
    if ((error = pb_fs_write_file(s->known_hosts, line, strlen(line), 0600, err)) < 0)
        return error;
    snprintf(s->ssh_url, sizeof(s->ssh_url), "ssh://%s@%s:%d%s", s->ssh_user, s->address,
             s->ssh_port, c->workdir);
    s->ready = 1;
    return 0;
}

/* The Plex version whose image the user data pre-pulls: for the plex runner with the default
 * start (or one using the same image), the home's (PLEXBURST_PLEX_VERSION, else the home
 * server's /identity, as the RUN message will send it). 0 and an empty `out`: none. */
static void prepull_version(pb_cloud *c, char *out, size_t cap)
{
    out[0] = '\0';
    const char *start = setting(c, "PLEXBURST_CLOUD_PLEX_START");
    if (!c->o.runner || strcmp(c->o.runner, "plex") != 0 ||
        (start && *start && !strstr(start, "plexinc/pms-docker:{version}")))
        return;
    const char *v = setting(c, "PLEXBURST_PLEX_VERSION");
    pb_error e = PB_ERROR_INIT;
    if (v && *v)
        snprintf(out, cap, "%s", v);
    else if (pb_runner_plex_version_of(out, cap, setting(c, "PLEXBURST_PLEX_URL"), &e) != 0) {
        out[0] = '\0';
        pb_cloud__log(c, "warn", "⚠️ the Plex image is not pre-pulled: %s", e.msg);
        return;
    }
    if (!pb_scw_version_ok(out)) {
        pb_cloud__log(c, "warn",
                      "⚠️ the Plex image is not pre-pulled: the version is not a tag");
        out[0] = '\0';
        return;
    }
    /* asked once: the runner's settings sent to the agent read it from here */
    setenv("PLEXBURST_PLEX_VERSION", out, 0);
}

/* Keys -> create (stopped) -> user data -> poweron -> running with an IP. */
static int bring_up(pb_cloud *c, scw *s, pb_error *err)
{
    int error;
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%.3900s/%.60s.client_ed25519", s->dir[0] ? s->dir : "/tmp",
             s->run.run_id);
    step(c, ST_KEYS, "a host key for the instance, a client key for this run");
    if ((error = cancelled(c, err)) < 0 ||
        (error = pb_scw_keys_generate(&s->keys, path, s->run.run_id, err)) < 0)
        return error;
    s->have_keys = 1;
    snprintf(s->run.host_public, sizeof(s->run.host_public), "%s", s->keys.host_public);
    snprintf(s->run.host_pin, sizeof(s->run.host_pin), "%s", s->keys.host_pin);
    step(c, ST_CREATE, s->type);
    if ((error = create_server(c, s, err)) < 0 || (error = cancelled(c, err)) < 0)
        return error;
    if ((error = selfdestruct_key(c, s, err)) < 0)
        return error;
    pb_scw_userdata u = {&s->keys,
                         s->run.run_id,
                         c->workdir,
                         s->max_hours,
                         s->sd_secret[0] ? s->sd_secret : NULL,
                         s->acct.api_url,
                         s->run.zone,
                         NULL};
    char version[128];
    prepull_version(c, version, sizeof(version));
    u.plex_version = version[0] ? version : NULL;
    step(c, ST_USERDATA,
         version[0] ? "SSH keys, packages, the self-destruct timer, the Plex image"
                    : "SSH keys, packages, the self-destruct timer");
    char *ud = pb_scw_userdata_build(&u);
    if (!ud)
        return pb_error_set(err, PB_ENOMEM, "out of memory (user data)");
    snprintf(path, sizeof(path), "/instance/v1/zones/%s/servers/%s/user_data/cloud-init",
             s->run.zone, s->run.server_id);
    error = pb_scw_api_ok(&s->api, "PATCH", path, NULL, ud, NULL, "setting the user data", err);
    memset(ud, 0, strlen(ud));
    free(ud);
    pb_scw_keys_wipe(&s->keys);
    if (error < 0 || (error = cancelled(c, err)) < 0)
        return error;
    step(c, ST_POWERON, s->run.server_id);
    if ((error = server_action(c, s, "poweron", err)) < 0)
        return error;
    s->run.started = pb_scw_now();
    pb_scw_run_save(&s->run, err);
    step(c, ST_RUNNING, NULL);
    if ((error = wait_running(c, s, err)) < 0)
        return error;
    snprintf(s->run.address, sizeof(s->run.address), "%s", s->address);
    return pb_scw_run_save(&s->run, err);
}

/* The SSH settings of the run with this instance's key, pin and known_hosts. */
static const char *ssh_get(void *payload, const char *key)
{
    pb_cloud *c = payload;
    scw *s = c->impl;
    if (!strcmp(key, "PLEXBURST_SSH_KEY"))
        return s->keys.client_key_path;
    if (!strcmp(key, "PLEXBURST_SSH_HOST_KEY"))
        return s->keys.host_pin;
    if (!strcmp(key, "PLEXBURST_KNOWN_HOSTS"))
        return s->known_hosts;
    if (!strcmp(key, "PLEXBURST_SSH_TOFU") || !strcmp(key, "PLEXBURST_SSH_USE_USER_KNOWN_HOSTS") ||
        !strcmp(key, "PLEXBURST_SSH_AGENT"))
        return "0";
    if (!strcmp(key, "PLEXBURST_SSH_KEY_PASSPHRASE"))
        return NULL;
    return pb_config_get(c->o.cfg, key);
}

static int scw_connect(pb_cloud *c, const char *store_url, pb_channel **ch, pb_error *err)
{
    int error;
    scw *s = c->impl;
    if (!s->ready && (error = bring_up(c, s, err)) < 0)
        return error;
    if (s->ready != 1 && ((error = cancelled(c, err)) < 0 || (error = reach_ssh(c, s, err)) < 0))
        return error;
    step(c, ST_AGENT, s->ssh_url);
    return pb_cloud__ssh_start(c, s->ssh_url, store_url, ssh_get, c, ch, err);
}

static int scw_reconnect(pb_cloud *c, pb_channel *ch, pb_error *err)
{
    return pb_cloud_ssh_ops.reconnect(c, ch, err);
}

static void scw_describe(const pb_cloud *c, char *out, size_t cap)
{
    const scw *s = c->impl;
    snprintf(out, cap, "scaleway %s in %s (workdir %s)", s ? s->type : "?",
             s && s->run.zone[0] ? s->run.zone : "?", c->workdir);
}

/* The spend since the poweron against PLEXBURST_MAX_COST. */
static int scw_over_budget(pb_cloud *c, char *why, size_t cap)
{
    const scw *s = c->impl;
    if (!s || s->run.started <= 0 || s->max_cost <= 0)
        return 0;
    double seconds = pb_scw_now() - s->run.started;
    double spent = seconds * s->run.hourly_price / 3600;
    if (spent < s->max_cost)
        return 0;
    snprintf(why, cap,
             "the spend reached PLEXBURST_MAX_COST=%g EUR (%s at %.4f EUR/h for %.0f s): the run "
             "stops and the instance is destroyed",
             s->max_cost, s->type, s->run.hourly_price, seconds);
    return 1;
}

static void scw_release(pb_cloud *c)
{
    scw *s = c->impl;
    if (!s)
        return;
    if (s->have_api) {
        s->api.cancel = NULL; /* the teardown runs to its end, Ctrl-C or not */
        if (s->run.server_id[0] || s->run.nvol || s->run.nip) {
            pb_error e = PB_ERROR_INIT;
            step(c, ST_DESTROY, s->run.server_id);
            if (pb_scw_run_teardown(&s->api, &s->run, s->poll_ms, &e) < 0)
                pb_cloud__log(c, "warn", "%s", e.msg);
            else
                pb_cloud__log(c, "info", "✅ nothing of the run is left on Scaleway (verified)");
        }
        if (s->sd_access[0]) {
            char path[160];
            pb_error e = PB_ERROR_INIT;
            snprintf(path, sizeof(path), "/iam/v1alpha1/api-keys/%s", s->sd_access);
            pb_scw_resp r;
            if (pb_scw_api_call(&s->api, "DELETE", path, NULL, NULL, &r, &e) < 0 ||
                (r.status != 204 && r.status != 404))
                pb_cloud__log(c, "warn",
                              "the self-destruct API key could not be deleted (it expires by "
                              "itself): %s",
                              e.msg[0] ? e.msg : r.message);
            pb_scw_resp_dispose(&r);
        }
        pb_scw_api_dispose(&s->api);
    }
    memset(s->sd_secret, 0, sizeof(s->sd_secret));
    if (s->run.started > 0) {
        double end = s->run.stopped > 0 ? s->run.stopped : pb_scw_now();
        c->result.seconds = end - s->run.started;
        c->result.cost = c->result.seconds * s->run.hourly_price / 3600;
        pb_cloud__log(c, "info", "📊 %s in %s: %.0f s billed at %.4f EUR/h: %.4f EUR", s->type,
                      s->run.zone, c->result.seconds, s->run.hourly_price, c->result.cost);
    }
    c->billed = 1;
    if (s->have_keys)
        unlink(s->keys.client_key_path);
    if (s->known_hosts[0])
        unlink(s->known_hosts);
    pb_scw_keys_wipe(&s->keys);
    memset(s->acct.secret_key, 0, sizeof(s->acct.secret_key));
    free(s);
    c->impl = NULL;
}

const pb_cloud_ops pb_cloud_scaleway_ops = {
    PB_CLOUD_OPS_VERSION,
    "scaleway",
    NULL,
    1,
    scw_prepare,
    scw_connect,
    scw_reconnect,
    scw_describe,
    scw_release,
    scw_over_budget,
    1,
};

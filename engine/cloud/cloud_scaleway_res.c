/*
 * cloud_scaleway_res.c: the resources of a `scaleway` run (cloud_scaleway.h): the record in the
 * home's state dir (<state>/scaleway/<run id>.json: zone, server, every volume and IP by id,
 * written right after the create so that a home that dies leaves a trail), the teardown
 * (terminate a running server, DELETE a stopped one since terminate answers 412 there; its
 * dynamic IP and every recorded volume deleted by id: block volumes survive a terminate,
 * detached and untagged, and go through the Block API), the verification by reading back and
 * listing the run's tag, and the sweep of what earlier runs left.
 * Role: engine/cloud. Prerequisites: cloud_scaleway_api.c, base/fs.h.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cloud_scaleway.h"
#include "fs.h"

static const char *jstr(json_t *v, const char *def)
{
    const char *s = json_string_value(v);
    return s ? s : def;
}

void pb_scw_owner(char *out, size_t cap)
{
    char host[128] = "";
    gethostname(host, sizeof(host) - 1);
    for (char *p = host; *p; p++)
        if (*p == ':' || *p == ',' || *p == ' ')
            *p = '_';
    snprintf(out, cap, "%s:%ld", host, (long)getpid());
}

/* 1 when `owner` ("host:pid") is a live process of this host. */
static int owner_alive(const char *owner)
{
    char me[192], host[192];
    pb_scw_owner(me, sizeof(me));
    const char *colon = strrchr(owner, ':');
    if (!colon)
        return 0;
    snprintf(host, sizeof(host), "%.*s", (int)(colon - owner), owner);
    if (strncmp(me, host, strlen(host)) != 0 || me[strlen(host)] != ':')
        return -1; /* another host: unknown */
    long pid = strtol(colon + 1, NULL, 10);
    if (pid <= 0)
        return 0;
    if (pid == (long)getpid())
        return 1;
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

int pb_scw_run_save(const pb_scw_run *run, pb_error *err)
{
    int error;
    char owner[192];
    if (!run->record[0])
        return 0;
    pb_scw_owner(owner, sizeof(owner));
    json_t *vols = json_array(), *ips = json_array();
    for (int i = 0; i < run->nvol; i++)
        json_array_append_new(
            vols, json_pack("{s:s, s:b}", "id", run->vol[i].id, "block", run->vol[i].block));
    for (int i = 0; i < run->nip; i++)
        json_array_append_new(ips, json_string(run->ip[i]));
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:f, s:f, s:s, s:o, s:o, s:s, s:s, s:s}", "run_id",
                          run->run_id, "zone", run->zone, "server_id", run->server_id, "type",
                          run->type, "hourly_price", run->hourly_price, "started", run->started,
                          "owner", owner, "volumes", vols, "ips", ips, "address", run->address,
                          "host_public", run->host_public, "host_pin", run->host_pin);
    char *text = o ? json_dumps(o, JSON_INDENT(1)) : NULL;
    json_decref(o);
    if (!text)
        return pb_error_set(err, PB_ENOMEM, "out of memory (JSON)");
    error = pb_fs_write_file(run->record, text, strlen(text), 0600, err);
    free(text);
    return error;
}

int pb_scw_run_load(pb_scw_run *run, const char *path, pb_error *err)
{
    json_error_t je;
    memset(run, 0, sizeof(*run));
    json_t *o = json_load_file(path, 0, &je);
    if (!o)
        return pb_error_set(err, PB_ECORRUPT, "%s: not a plexburst Scaleway record (%s)", path,
                            je.text);
    snprintf(run->run_id, sizeof(run->run_id), "%s", jstr(json_object_get(o, "run_id"), ""));
    snprintf(run->zone, sizeof(run->zone), "%s", jstr(json_object_get(o, "zone"), ""));
    snprintf(run->server_id, sizeof(run->server_id), "%s",
             jstr(json_object_get(o, "server_id"), ""));
    snprintf(run->type, sizeof(run->type), "%s", jstr(json_object_get(o, "type"), ""));
    run->hourly_price = json_number_value(json_object_get(o, "hourly_price"));
    run->started = json_number_value(json_object_get(o, "started"));
    snprintf(run->address, sizeof(run->address), "%s", jstr(json_object_get(o, "address"), ""));
    snprintf(run->host_public, sizeof(run->host_public), "%s",
             jstr(json_object_get(o, "host_public"), ""));
    snprintf(run->host_pin, sizeof(run->host_pin), "%s", jstr(json_object_get(o, "host_pin"), ""));
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(o, "volumes"), i, v)
    {
        if (run->nvol >= PB_SCW_MAX_RESOURCES)
            break;
        snprintf(run->vol[run->nvol].id, sizeof(run->vol[0].id), "%s",
                 jstr(json_object_get(v, "id"), ""));
        run->vol[run->nvol++].block = json_is_true(json_object_get(v, "block"));
    }
    json_array_foreach(json_object_get(o, "ips"), i, v)
    {
        if (run->nip >= PB_SCW_MAX_RESOURCES || !json_string_value(v))
            break;
        snprintf(run->ip[run->nip++], sizeof(run->ip[0]), "%s", json_string_value(v));
    }
    snprintf(run->record, sizeof(run->record), "%s", path);
    json_decref(o);
    if (!run->zone[0])
        return pb_error_set(err, PB_ECORRUPT, "%s: no zone", path);
    return 0;
}

static void add_ip(pb_scw_run *run, const char *id)
{
    if (!id || !*id)
        return;
    for (int i = 0; i < run->nip; i++)
        if (!strcmp(run->ip[i], id))
            return;
    if (run->nip < PB_SCW_MAX_RESOURCES)
        snprintf(run->ip[run->nip++], sizeof(run->ip[0]), "%s", id);
}

void pb_scw_run_note(pb_scw_run *run, json_t *server)
{
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(server, "volumes"), k, v)
    {
        const char *id = json_string_value(json_object_get(v, "id"));
        const char *type = json_string_value(json_object_get(v, "volume_type"));
        int seen = 0;
        if (!id)
            continue;
        for (int i = 0; i < run->nvol; i++)
            seen |= !strcmp(run->vol[i].id, id);
        if (!seen && run->nvol < PB_SCW_MAX_RESOURCES) {
            snprintf(run->vol[run->nvol].id, sizeof(run->vol[0].id), "%s", id);
            run->vol[run->nvol++].block = type && !strcmp(type, "sbs_volume");
        }
    }
    size_t i;
    json_array_foreach(json_object_get(server, "public_ips"), i, v)
        add_ip(run, json_string_value(json_object_get(v, "id")));
    add_ip(run, json_string_value(json_object_get(json_object_get(server, "public_ip"), "id")));
}

/* The server gone: terminate when running, DELETE when stopped, polled until a 404. */
static int server_gone(pb_scw_api *api, pb_scw_run *run, int poll_ms, pb_error *err)
{
    int error = 0;
    char path[256], apath[300];
    snprintf(path, sizeof(path), "/instance/v1/zones/%s/servers/%s", run->zone, run->server_id);
    snprintf(apath, sizeof(apath), "%s/action", path);
    double t0 = pb_scw_now();
    int asked = 0;
    for (;;) {
        pb_scw_resp r;
        if ((error = pb_scw_api_call(api, "GET", path, NULL, NULL, &r, err)) < 0)
            return error;
        if (r.status == 404) {
            pb_scw_resp_dispose(&r);
            return 0;
        }
        if (r.status != 200) {
            error = pb_error_set(err, PB_ERROR, "Scaleway API: reading server %s: HTTP %ld %s",
                                 run->server_id, r.status, r.message);
            pb_scw_resp_dispose(&r);
            return error;
        }
        json_t *s = json_object_get(r.json, "server");
        pb_scw_run_note(run, s);
        char st[32];
        snprintf(st, sizeof(st), "%s", jstr(json_object_get(s, "state"), ""));
        pb_scw_resp_dispose(&r);
        if (!strcmp(st, "running") && !asked) {
            json_t *b = json_pack("{s:s}", "action", "terminate");
            error = pb_scw_api_call(api, "POST", apath, b, NULL, &r, err);
            json_decref(b);
            if (error < 0)
                return error;
            if (r.status == 202 || r.status == 200) {
                asked = 1;
                run->stopped = pb_scw_now();
                pb_scw_say(api, "detail", "server %s: terminate accepted", run->server_id);
            } else if (r.status != 409 && r.status != 412 && r.status != 404) {
                error = pb_error_set(err, PB_ERROR, "Scaleway API: terminate %s: HTTP %ld %s %s",
                                     run->server_id, r.status, r.type, r.message);
                pb_scw_resp_dispose(&r);
                return error;
            } else if (r.status == 409) {
                pb_scw_say(api, "detail", "server %s: %s on terminate, retrying", run->server_id,
                           r.type);
            }
            pb_scw_resp_dispose(&r);
        } else if (!strcmp(st, "stopped") || !strcmp(st, "stopped in place")) {
            /* a stopped server cannot be terminated (412): deleted instead */
            if ((error = pb_scw_api_call(api, "DELETE", path, NULL, NULL, &r, err)) < 0)
                return error;
            long status = r.status;
            pb_scw_resp_dispose(&r);
            if (status == 204 || status == 404) {
                if (!run->stopped)
                    run->stopped = pb_scw_now();
                pb_scw_say(api, "detail", "server %s (stopped): deleted", run->server_id);
                return 0;
            }
        }
        if (pb_scw_now() - t0 > api->budget_s)
            return pb_error_set(err, PB_ERROR, "server %s in %s is still there (%s) after %d s",
                                run->server_id, run->zone, st, api->budget_s);
        if ((error = pb_scw_sleep(poll_ms, NULL, NULL, err)) < 0)
            return error;
    }
}

/* DELETE `path` until 204 or 404 (412 / 400 / 409: in use or detaching, retried). */
static int delete_until_gone(pb_scw_api *api, const char *path, const char *what, int poll_ms,
                             pb_error *err)
{
    int error;
    double t0 = pb_scw_now();
    for (;;) {
        pb_scw_resp r;
        if ((error = pb_scw_api_call(api, "DELETE", path, NULL, NULL, &r, err)) < 0)
            return error;
        long st = r.status;
        char msg[400];
        snprintf(msg, sizeof(msg), "%s %s", r.type, r.message);
        pb_scw_resp_dispose(&r);
        if (st == 204 || st == 200 || st == 404)
            return 0;
        if (st != 412 && st != 409 && st != 400)
            return pb_error_set(err, PB_ERROR, "Scaleway API: deleting %s: HTTP %ld %s", what, st,
                                msg);
        if (pb_scw_now() - t0 > api->budget_s)
            return pb_error_set(err, PB_ERROR, "%s could not be deleted in %d s (HTTP %ld %s)",
                                what, api->budget_s, st, msg);
        if ((error = pb_scw_sleep(poll_ms, NULL, NULL, err)) < 0)
            return error;
    }
}

/* 1 when GET `path` answers 404. */
static int gone(pb_scw_api *api, const char *path, pb_error *err)
{
    pb_scw_resp r;
    if (pb_scw_api_call(api, "GET", path, NULL, NULL, &r, err) < 0)
        return 0;
    int g = r.status == 404;
    pb_scw_resp_dispose(&r);
    return g;
}

/* How many entries of `key` a list answers (-1 when it could not be read). */
static int count_listed(pb_scw_api *api, const char *path, const char *key, pb_error *err)
{
    pb_scw_resp r;
    if (pb_scw_api_call(api, "GET", path, NULL, NULL, &r, err) < 0 || r.status != 200) {
        pb_scw_resp_dispose(&r);
        return -1;
    }
    int n = (int)json_array_size(json_object_get(r.json, key));
    pb_scw_resp_dispose(&r);
    return n;
}

static void other_tagged(pb_scw_api *api, pb_scw_run *run, int poll_ms);

int pb_scw_run_teardown(pb_scw_api *api, pb_scw_run *run, int poll_ms, pb_error *err)
{
    int error = 0, first = 0, left = 0;
    char path[512], what[160];
    pb_error e = PB_ERROR_INIT;
    if (run->server_id[0] && (first = server_gone(api, run, poll_ms, &e)) < 0)
        pb_scw_say(api, "warn", "%s", e.msg);
    if (run->run_id[0])
        other_tagged(api, run, poll_ms);
    for (int i = 0; i < run->nip; i++) {
        pb_error e2 = PB_ERROR_INIT;
        snprintf(path, sizeof(path), "/instance/v1/zones/%s/ips/%s", run->zone, run->ip[i]);
        snprintf(what, sizeof(what), "IP %s", run->ip[i]);
        if (delete_until_gone(api, path, what, poll_ms, &e2) < 0)
            pb_scw_say(api, "warn", "%s", e2.msg);
    }
    for (int i = 0; i < run->nvol; i++) {
        pb_error e2 = PB_ERROR_INIT;
        if (run->vol[i].block)
            snprintf(path, sizeof(path), "/block/v1alpha1/zones/%s/volumes/%s", run->zone,
                     run->vol[i].id);
        else
            snprintf(path, sizeof(path), "/instance/v1/zones/%s/volumes/%s", run->zone,
                     run->vol[i].id);
        snprintf(what, sizeof(what), "%s volume %s", run->vol[i].block ? "block" : "local",
                 run->vol[i].id);
        if (delete_until_gone(api, path, what, poll_ms, &e2) < 0)
            pb_scw_say(api, "warn", "%s", e2.msg);
    }
    /* verification: each one read back, and nothing listed under the run's tag */
    pb_error ev = PB_ERROR_INIT;
    if (run->server_id[0]) {
        snprintf(path, sizeof(path), "/instance/v1/zones/%s/servers/%s", run->zone, run->server_id);
        left += !gone(api, path, &ev);
    }
    for (int i = 0; i < run->nip; i++) {
        snprintf(path, sizeof(path), "/instance/v1/zones/%s/ips/%s", run->zone, run->ip[i]);
        left += !gone(api, path, &ev);
    }
    for (int i = 0; i < run->nvol; i++) {
        if (run->vol[i].block)
            snprintf(path, sizeof(path), "/block/v1alpha1/zones/%s/volumes/%s", run->zone,
                     run->vol[i].id);
        else
            snprintf(path, sizeof(path), "/instance/v1/zones/%s/volumes/%s", run->zone,
                     run->vol[i].id);
        left += !gone(api, path, &ev);
    }
    if (run->run_id[0]) {
        snprintf(path, sizeof(path), "/instance/v1/zones/%s/servers?tags=" PB_SCW_RUN_TAG "%s",
                 run->zone, run->run_id);
        int n = count_listed(api, path, "servers", &ev);
        left += n != 0;
        snprintf(path, sizeof(path), "/instance/v1/zones/%s/ips?tags=" PB_SCW_RUN_TAG "%s",
                 run->zone, run->run_id);
        n = count_listed(api, path, "ips", &ev);
        left += n != 0;
    }
    if (left) {
        error = pb_error_set(err, PB_ERROR,
                             "Scaleway: %d resource(s) of run %s may be left in %s (server %s); "
                             "`plexburst cloud reap` removes them%s%s",
                             left, run->run_id, run->zone, run->server_id[0] ? run->server_id : "-",
                             e.msg[0] ? ": " : "", e.msg);
    } else {
        if (run->record[0])
            unlink(run->record);
        pb_scw_say(api, "detail", "Scaleway: nothing of run %s is left in %s (verified)",
                   run->run_id, run->zone);
    }
    (void)first;
    return error;
}

/* The newest record in `dir` of a dead process of this host with what a re-attach needs. */
static int adoptable(const char *dir, pb_scw_run *best, pb_error *err)
{
    char path[PATH_MAX + 300];
    int found = 0;
    DIR *d = dir ? opendir(dir) : NULL;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 6 || strcmp(de->d_name + n - 5, ".json") != 0)
            continue;
        pb_scw_run run;
        pb_error e = PB_ERROR_INIT;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (pb_scw_run_load(&run, path, &e) < 0)
            continue;
        json_t *o = json_load_file(path, 0, NULL);
        int alive = owner_alive(jstr(json_object_get(o, "owner"), ""));
        json_decref(o);
        snprintf(path, sizeof(path), "%s/%.60s.client_ed25519", dir, run.run_id);
        if (alive != 0 || !run.server_id[0] || !run.address[0] || !run.host_public[0] ||
            !run.host_pin[0] || access(path, R_OK) != 0)
            continue;
        if (!found || run.started > best->started)
            *best = run;
        found = 1;
    }
    if (d)
        closedir(d);
    (void)err;
    return found;
}

int pb_scw_adopt(pb_scw_api *api, const char *dir, pb_scw_run *run, pb_error *err)
{
    int error, ok = 0;
    char path[512], owner[192], tag[256];
    pb_scw_resp r;
    if (!adoptable(dir, run, err))
        return 0;
    snprintf(path, sizeof(path), "/instance/v1/zones/%s/servers/%s", run->zone, run->server_id);
    if ((error = pb_scw_api_call(api, "GET", path, NULL, NULL, &r, err)) < 0)
        return error;
    json_t *srv = json_object_get(r.json, "server");
    const char *st = jstr(json_object_get(srv, "state"), "");
    const char *ip = json_string_value(
        json_object_get(json_array_get(json_object_get(srv, "public_ips"), 0), "address"));
    if (!ip)
        ip = json_string_value(json_object_get(json_object_get(srv, "public_ip"), "address"));
    ok = r.status == 200 && !strcmp(st, "running") && ip && !strcmp(ip, run->address);
    if (!ok) {
        pb_scw_say(api, "info", "server %s of run %s is %s: not re-attached (swept)",
                   run->server_id, run->run_id, r.status == 404 ? "gone" : st);
        pb_scw_resp_dispose(&r);
        return 0;
    }
    /* the owner tag names this process now, so that no sweep takes the server */
    pb_scw_owner(owner, sizeof(owner));
    snprintf(tag, sizeof(tag), PB_SCW_OWNER_TAG "%s", owner);
    json_t *tags = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(srv, "tags"), i, t)
    {
        const char *v = json_string_value(t);
        if (v && strncmp(v, PB_SCW_OWNER_TAG, strlen(PB_SCW_OWNER_TAG)) != 0)
            json_array_append_new(tags, json_string(v));
    }
    json_array_append_new(tags, json_string(tag));
    pb_scw_run_note(run, srv);
    pb_scw_resp_dispose(&r);
    json_t *body = json_pack("{s:o}", "tags", tags);
    error = pb_scw_api_ok(api, "PATCH", path, body, NULL, NULL, "re-tagging the server", err);
    json_decref(body);
    if (error < 0)
        return error;
    if ((error = pb_scw_run_save(run, err)) < 0)
        return error;
    return 1;
}

/* Servers tagged with the run's id that the record does not name (a create whose answer was
 * lost): torn down with the recorded one, their volumes and IPs noted. */
static void other_tagged(pb_scw_api *api, pb_scw_run *run, int poll_ms)
{
    char path[512];
    pb_scw_resp r;
    pb_error e = PB_ERROR_INIT;
    snprintf(path, sizeof(path), "/instance/v1/zones/%s/servers?tags=" PB_SCW_RUN_TAG "%s",
             run->zone, run->run_id);
    if (pb_scw_api_call(api, "GET", path, NULL, NULL, &r, &e) < 0)
        return;
    size_t i;
    json_t *srv;
    json_array_foreach(json_object_get(r.json, "servers"), i, srv)
    {
        const char *id = jstr(json_object_get(srv, "id"), "");
        if (!*id || !strcmp(id, run->server_id))
            continue;
        pb_scw_run other = *run;
        snprintf(other.server_id, sizeof(other.server_id), "%s", id);
        pb_scw_run_note(run, srv);
        pb_scw_say(api, "info", "🔄 server %s is tagged with run %s too: destroying it", id,
                   run->run_id);
        pb_error e2 = PB_ERROR_INIT;
        if (server_gone(api, &other, poll_ms, &e2) < 0)
            pb_scw_say(api, "warn", "%s", e2.msg);
    }
    pb_scw_resp_dispose(&r);
}

/* One tagged server of an earlier run: torn down when its owner is gone or its cap is past. */
static int sweep_server(pb_scw_api *api, json_t *s, const char *zone, int dry_run, int poll_ms,
                        unsigned *found, pb_error *err)
{
    pb_scw_run run;
    memset(&run, 0, sizeof(run));
    const char *owner = "";
    double until = 0;
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(s, "tags"), i, t)
    {
        const char *v = json_string_value(t);
        if (!v)
            continue;
        if (!strncmp(v, PB_SCW_RUN_TAG, strlen(PB_SCW_RUN_TAG)))
            snprintf(run.run_id, sizeof(run.run_id), "%s", v + strlen(PB_SCW_RUN_TAG));
        else if (!strncmp(v, PB_SCW_OWNER_TAG, strlen(PB_SCW_OWNER_TAG)))
            owner = v + strlen(PB_SCW_OWNER_TAG);
        else if (!strncmp(v, PB_SCW_UNTIL_TAG, strlen(PB_SCW_UNTIL_TAG)))
            until = strtod(v + strlen(PB_SCW_UNTIL_TAG), NULL);
    }
    int alive = owner_alive(owner);
    int past = until > 0 && pb_scw_now() > until;
    if (alive == 1 || (alive < 0 && !past))
        return 0;
    snprintf(run.zone, sizeof(run.zone), "%s", zone);
    snprintf(run.server_id, sizeof(run.server_id), "%s", jstr(json_object_get(s, "id"), ""));
    pb_scw_run_note(&run, s);
    (*found)++;
    pb_scw_say(api, "info", "%s server %s (run %s, %s) in %s%s",
               dry_run ? "🔍 would remove" : "🔄 removing", run.server_id,
               run.run_id[0] ? run.run_id : "?", jstr(json_object_get(s, "state"), "?"), zone,
               past ? ", past its lifetime cap" : "");
    if (dry_run)
        return 0;
    return pb_scw_run_teardown(api, &run, poll_ms, err);
}

int pb_scw_sweep(pb_scw_api *api, const char *dir, char zones[][32], size_t nzones, int dry_run,
                 int poll_ms, unsigned *found, pb_error *err)
{
    int error = 0;
    char path[PATH_MAX + 300];
    *found = 0;
    DIR *d = dir ? opendir(dir) : NULL;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 6 || strcmp(de->d_name + n - 5, ".json") != 0)
            continue;
        pb_scw_run run;
        pb_error e = PB_ERROR_INIT;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (pb_scw_run_load(&run, path, &e) < 0) {
            pb_scw_say(api, "warn", "%s", e.msg);
            continue;
        }
        json_t *o = json_load_file(path, 0, NULL);
        int alive = owner_alive(jstr(json_object_get(o, "owner"), ""));
        json_decref(o);
        if (alive == 1)
            continue;
        (*found)++;
        pb_scw_say(api, "info",
                   "%s what run %s left in %s (recorded: server %s, %d volume(s), %d IP(s))",
                   dry_run ? "🔍 would remove" : "🔄 removing", run.run_id, run.zone,
                   run.server_id[0] ? run.server_id : "-", run.nvol, run.nip);
        if (!dry_run && (error = pb_scw_run_teardown(api, &run, poll_ms, err)) < 0)
            break;
        if (!dry_run) { /* the dead run's keys never outlive it */
            snprintf(path, sizeof(path), "%s/%.60s.client_ed25519", dir, run.run_id);
            unlink(path);
            snprintf(path, sizeof(path), "%s/%.60s.known_hosts", dir, run.run_id);
            unlink(path);
        }
    }
    if (d)
        closedir(d);
    for (size_t z = 0; error == 0 && z < nzones; z++) {
        pb_scw_resp r;
        snprintf(path, sizeof(path),
                 "/instance/v1/zones/%s/servers?tags=" PB_SCW_TAG "&per_page=100", zones[z]);
        if ((error = pb_scw_api_ok(api, "GET", path, NULL, NULL, &r, "listing servers", err)) < 0)
            break;
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(r.json, "servers"), i, s)
        {
            if ((error = sweep_server(api, s, zones[z], dry_run, poll_ms, found, err)) < 0)
                break;
        }
        pb_scw_resp_dispose(&r);
        /* flexible IPs tagged ours and attached to nothing */
        snprintf(path, sizeof(path), "/instance/v1/zones/%s/ips?tags=" PB_SCW_TAG "&per_page=100",
                 zones[z]);
        if (error == 0 &&
            (error = pb_scw_api_ok(api, "GET", path, NULL, NULL, &r, "listing IPs", err)) == 0) {
            json_t *ip;
            json_array_foreach(json_object_get(r.json, "ips"), i, ip)
            {
                if (json_object_get(ip, "server") && !json_is_null(json_object_get(ip, "server")))
                    continue;
                const char *id = json_string_value(json_object_get(ip, "id"));
                (*found)++;
                pb_scw_say(api, "info", "%s IP %s in %s", dry_run ? "🔍 would remove" : "🔄 removing",
                           id ? id : "?", zones[z]);
                if (!dry_run && id) {
                    snprintf(path, sizeof(path), "/instance/v1/zones/%s/ips/%s", zones[z], id);
                    pb_scw_resp r2;
                    if (pb_scw_api_call(api, "DELETE", path, NULL, NULL, &r2, err) == 0)
                        pb_scw_resp_dispose(&r2);
                }
            }
            pb_scw_resp_dispose(&r);
        }
    }
    return error;
}

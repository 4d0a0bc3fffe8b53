/*
 * cloud_scaleway_api.c: the HTTP client of the `scaleway` cloud (cloud_scaleway.h) for the
 * Instance API (/instance/v1/zones/Z/...), the Block API (/block/v1alpha1/zones/Z/volumes) and the
 * marketplace (/marketplace/v2/local-images): libcurl requests with the X-Auth-Token header and
 * JSON bodies through jansson. 429 (Scaleway's gateway sends no Retry-After), 5xx and network
 * failures are retried with full-jitter exponential backoff (1 s doubling, capped) within a time
 * budget; every other answer goes back to the caller. The secret key is only ever a header.
 * Also the products/servers price table and the availability of a type.
 * Role: engine/cloud. Prerequisites: libcurl, jansson, base/buf.h.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cloud_scaleway.h"

#define BODY_MAX (16u << 20)

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_rc = CURLE_OK;

static void curl_init_once(void)
{
    curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

double pb_scw_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned rnd(void)
{
    static unsigned seed;
    if (!seed)
        seed = (unsigned)getpid() ^ (unsigned)(pb_scw_now() * 1000);
    return (unsigned)rand_r(&seed);
}

/* Sleeps exactly `ms` in slices, polling `cancel`. */
static int nap(int ms, int (*cancel)(void *), void *payload, pb_error *err)
{
    while (ms > 0) {
        if (cancel && cancel(payload))
            return pb_error_set(err, PB_ECANCELLED, "cancelled (Ctrl-C)");
        int step = ms < 100 ? ms : 100;
        struct timespec ts = {0, step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
    return 0;
}

int pb_scw_sleep(int ms, int (*cancel)(void *), void *payload, pb_error *err)
{
    int j = ms / 4;
    if (j > 0)
        ms += (int)(rnd() % (unsigned)(2 * j + 1)) - j;
    return nap(ms, cancel, payload, err);
}

void pb_scw_resp_dispose(pb_scw_resp *r)
{
    if (!r)
        return;
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

int pb_scw_api_init(pb_scw_api *api, const pb_scw_account *acct, pb_error *err)
{
    memset(api, 0, sizeof(*api));
    pthread_once(&curl_once, curl_init_once);
    if (curl_rc != CURLE_OK)
        return pb_error_set(err, PB_ENET, "curl_global_init failed: %s",
                            curl_easy_strerror(curl_rc));
    api->acct = acct;
    api->backoff_max_ms = 30000;
    api->budget_s = 300;
    if (!(api->curl = curl_easy_init()))
        return pb_error_set(err, PB_ENOMEM, "out of memory (curl)");
    return 0;
}

void pb_scw_api_dispose(pb_scw_api *api)
{
    if (!api)
        return;
    if (api->curl)
        curl_easy_cleanup(api->curl);
    api->curl = NULL;
}

static size_t on_body(char *p, size_t size, size_t n, void *payload)
{
    pb_error e = PB_ERROR_INIT;
    return pb_buf_put(payload, p, size * n, &e) < 0 ? 0 : size * n;
}

void pb_scw_say(pb_scw_api *api, const char *level, const char *fmt, ...)
{
    char line[768];
    va_list ap;
    if (!api->log)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    api->log(api->log_payload, level, line);
}

/* One attempt: fills *status (0 on a network failure, with `why`) and `out`. */
static void attempt(pb_scw_api *api, const char *method, const char *url, const char *body,
                    int is_json, pb_buf *out, long *status, char *why, size_t whycap)
{
    CURL *c = api->curl;
    char auth[300], errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *h = NULL;
    snprintf(auth, sizeof(auth), "X-Auth-Token: %s", api->acct->secret_key);
    h = curl_slist_append(h, auth);
    h = curl_slist_append(h,
                          is_json ? "Content-Type: application/json" : "Content-Type: text/plain");
    h = curl_slist_append(h, "Accept: application/json");
    h = curl_slist_append(h, "Expect:");
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 15L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "plexburst");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    }
    CURLcode rc = curl_easy_perform(c);
    *status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    else
        snprintf(why, whycap, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    curl_slist_free_all(h);
}

int pb_scw_api_call(pb_scw_api *api, const char *method, const char *path, json_t *json,
                    const char *text, pb_scw_resp *r, pb_error *err)
{
    int error = 0;
    char url[2048], why[CURL_ERROR_SIZE + 32];
    char *body = NULL;
    pb_buf out = PB_BUF_INIT(BODY_MAX);
    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "%s%s", api->acct->api_url, path);
    if (json && !(body = json_dumps(json, JSON_COMPACT))) {
        error = pb_error_set(err, PB_ENOMEM, "out of memory (JSON)");
        goto done;
    }
    if (!json && text && !(body = strdup(text))) {
        error = pb_error_set(err, PB_ENOMEM, "out of memory");
        goto done;
    }
    double t0 = pb_scw_now();
    for (int n = 0;; n++) {
        pb_buf_clear(&out);
        attempt(api, method, url, body, !text || json, &out, &r->status, why, sizeof(why));
        if (r->status != 0 && r->status != 429 && r->status < 500)
            break;
        if (r->status)
            snprintf(why, sizeof(why), "HTTP %ld", r->status);
        if (pb_scw_now() - t0 > api->budget_s) {
            error = pb_error_set(err, PB_ENET,
                                 "the Scaleway API did not answer %s %s for %d s (last: %s)",
                                 method, path, api->budget_s, why);
            goto done;
        }
        long cap = 1000L << (n < 10 ? n : 10);
        if (cap > api->backoff_max_ms)
            cap = api->backoff_max_ms;
        int ms = 50 + (int)(rnd() % (unsigned)cap);
        api->retries++;
        pb_scw_say(api, "detail", "Scaleway API %s %s: %s, retrying in %d ms", method, path, why,
                   ms);
        if ((error = nap(ms, api->cancel, api->cancel_payload, err)) < 0)
            goto done;
    }
    if (out.len > 0 && out.ptr[0] == '{') {
        json_error_t je;
        r->json = json_loadb(out.ptr, out.len, 0, &je);
    }
    if (r->status >= 400 && r->json) {
        const char *t = json_string_value(json_object_get(r->json, "type"));
        const char *m = json_string_value(json_object_get(r->json, "message"));
        snprintf(r->type, sizeof(r->type), "%s", t ? t : "");
        snprintf(r->message, sizeof(r->message), "%s", m ? m : "");
    }
done:
    free(body);
    pb_buf_dispose(&out);
    return error;
}

int pb_scw_api_ok(pb_scw_api *api, const char *method, const char *path, json_t *json,
                  const char *text, pb_scw_resp *r, const char *what, pb_error *err)
{
    pb_scw_resp local;
    pb_scw_resp *rr = r ? r : &local;
    int error = pb_scw_api_call(api, method, path, json, text, rr, err);
    if (error == 0 && (rr->status < 200 || rr->status >= 300)) {
        int code = rr->status == 404                        ? PB_ENOTFOUND
                   : !strcmp(rr->type, "quotas_exceeded")   ? PB_EREFUSED
                   : !strcmp(rr->type, "out_of_stock")      ? PB_EREFUSED
                   : rr->status == 401 || rr->status == 403 ? PB_EAUTH
                                                            : PB_ERROR;
        error =
            pb_error_set(err, code, "Scaleway API: %s: HTTP %ld%s%s%s%s", what, rr->status,
                         rr->type[0] ? " " : "", rr->type, rr->message[0] ? ": " : "", rr->message);
    }
    if (!r)
        pb_scw_resp_dispose(&local);
    else if (error < 0) { /* the status, type and message stay for the caller */
        json_decref(r->json);
        r->json = NULL;
    }
    return error;
}

int pb_scw_price(pb_scw_api *api, const char *zone, const char *type, double *hourly, pb_error *err)
{
    int error = 0;
    char path[256];
    *hourly = 0;
    for (int page = 1; page <= 20; page++) {
        pb_scw_resp r;
        snprintf(path, sizeof(path), "/instance/v1/zones/%s/products/servers?per_page=100&page=%d",
                 zone, page);
        if ((error = pb_scw_api_ok(api, "GET", path, NULL, NULL, &r, "the price list", err)) < 0)
            return error;
        json_t *servers = json_object_get(r.json, "servers");
        json_t *t = json_object_get(servers, type);
        size_t n = json_object_size(servers);
        if (t) {
            *hourly = json_number_value(json_object_get(t, "hourly_price"));
            pb_scw_resp_dispose(&r);
            return 0;
        }
        pb_scw_resp_dispose(&r);
        if (n < 100)
            break;
    }
    return pb_error_set(err, PB_ENOTFOUND, "Scaleway has no instance type %s in %s", type, zone);
}

int pb_scw_availability(pb_scw_api *api, const char *zone, const char *type, char *out, size_t cap,
                        pb_error *err)
{
    int error;
    char path[256];
    pb_scw_resp r;
    snprintf(path, sizeof(path), "/instance/v1/zones/%s/products/servers/availability?per_page=100",
             zone);
    out[0] = '\0';
    if ((error = pb_scw_api_ok(api, "GET", path, NULL, NULL, &r, "the availability", err)) < 0)
        return error;
    const char *a = json_string_value(
        json_object_get(json_object_get(json_object_get(r.json, "servers"), type), "availability"));
    snprintf(out, cap, "%s", a ? a : "");
    pb_scw_resp_dispose(&r);
    return 0;
}

/*
 * runner_plex_http.c: the plex runner's HTTP client for the cloud's Plex on 127.0.0.1 (libcurl,
 * `Accept: application/json`, bodies parsed with jansson), the X-Plex-Token read from
 * Preferences.xml when the server is claimed, and readiness (/identity, retried while Plex
 * answers 503 "starting up" or does not answer yet).
 * Role: engine/runner (runner_plex.h). Prerequisites: libcurl, jansson.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>

#include "runner_plex.h"

void pb_runner_plex_say(FILE *log, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(log, fmt, ap);
    va_end(ap);
    fputc('\n', log);
    fflush(log);
}

int pb_runner_plex_http_init(pb_runner_plex_http *h, int port, pb_error *err)
{
    memset(h, 0, sizeof(*h));
    snprintf(h->base, sizeof(h->base), "http://127.0.0.1:%d", port);
    h->curl = curl_easy_init();
    if (!h->curl)
        return pb_error_set(err, PB_ENOMEM, "plex: curl_easy_init failed");
    return 0;
}

void pb_runner_plex_http_dispose(pb_runner_plex_http *h)
{
    if (h && h->curl)
        curl_easy_cleanup(h->curl);
    if (h)
        h->curl = NULL;
}

void pb_runner_plex_escape(char *out, size_t cap, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *s && n + 4 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            strchr("-_.~", ch)) {
            out[n++] = (char)ch;
        } else {
            out[n++] = '%';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 15];
        }
    }
    out[n] = '\0';
}

typedef struct {
    char *p;
    size_t n;
} body;

static size_t on_body(char *data, size_t sz, size_t nm, void *payload)
{
    body *b = payload;
    size_t k = sz * nm;
    if (b->n + k > 64u * 1024 * 1024)
        return 0;
    char *q = realloc(b->p, b->n + k + 1);
    if (!q)
        return 0;
    memcpy(q + b->n, data, k);
    b->p = q;
    b->n += k;
    b->p[b->n] = '\0';
    return k;
}

int pb_runner_plex_call(pb_runner_plex_http *h, const char *method, const char *path, long *code,
                        json_t **out, pb_error *err)
{
    CURL *c = h->curl;
    char url[8192], tok[300];
    body b = {NULL, 0};
    struct curl_slist *hd = NULL;
    if (out)
        *out = NULL;
    *code = 0;
    snprintf(url, sizeof(url), "%s%s", h->base, path);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "GET") != 0)
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    hd = curl_slist_append(hd, "Accept: application/json");
    hd = curl_slist_append(hd, "X-Plex-Client-Identifier: plexburst");
    hd = curl_slist_append(hd, "X-Plex-Product: plexburst");
    if (h->token[0]) {
        snprintf(tok, sizeof(tok), "X-Plex-Token: %s", h->token);
        hd = curl_slist_append(hd, tok);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(hd);
    if (rc != CURLE_OK) {
        free(b.p);
        /* the path alone: a token never goes into a message */
        return pb_error_setd(err, PB_ENET, (int)rc, "plex: %s %.200s: %s", method, path,
                             curl_easy_strerror(rc));
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, code);
    if (out && b.n)
        *out = json_loadb(b.p, b.n, 0, NULL);
    free(b.p);
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int pb_runner_plex_ready(pb_runner_plex_http *h, double timeout_s, char *version, size_t cap,
                         FILE *log, pb_error *err)
{
    double t0 = now_s();
    long code = 0;
    int said = 0;
    for (;;) {
        json_t *o = NULL;
        pb_error e = PB_ERROR_INIT;
        if (pb_runner_plex_call(h, "GET", "/identity", &code, &o, &e) == 0 && code == 200) {
            const char *v =
                json_string_value(json_object_get(json_object_get(o, "MediaContainer"), "version"));
            if (version && cap)
                snprintf(version, cap, "%s", v ? v : "");
            json_decref(o);
            return 0;
        }
        json_decref(o);
        if (!said) {
            pb_runner_plex_say(log, "⏳ waiting for Plex to start (%s)",
                               code == 503 ? "starting up" : "not answering yet");
            said = 1;
        }
        if (now_s() - t0 > timeout_s)
            return pb_error_set(err, PB_ENET, "plex: not ready after %.0f s (last answer %ld)",
                                timeout_s, code);
        usleep(500 * 1000);
    }
}

int pb_runner_plex_token(pb_runner_plex_http *h, const char *plex_dir, double timeout_s,
                         pb_error *err)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/Preferences.xml", plex_dir);
    double t0 = now_s();
    for (;;) {
        FILE *f = fopen(path, "r");
        char buf[65536];
        size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
        if (f)
            fclose(f);
        buf[n] = '\0';
        const char *p = strstr(buf, " PlexOnlineToken=\"");
        if (p) {
            p += 18;
            size_t l = strcspn(p, "\"");
            if (l && l < sizeof(h->token)) {
                memcpy(h->token, p, l);
                h->token[l] = '\0';
                return 0;
            }
        }
        if (now_s() - t0 > timeout_s)
            return pb_error_set(err, PB_EAUTH,
                                "plex: claimed, but no PlexOnlineToken in %s after %.0f s", path,
                                timeout_s);
        usleep(500 * 1000);
    }
}

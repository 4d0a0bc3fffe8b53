/*
 * store_s3_http.c: one S3 request over the store's reused CURL handle, signed by libcurl
 * (CURLOPT_AWS_SIGV4 + CURLOPT_USERPWD; no signing code here): URL and headers, the body from a
 * file range or memory, the response streamed to a sink or read as XML (store_s3_xml.c),
 * retries with jittered exponential backoff on connection failures, timeouts, 408, 429 and 5xx,
 * and the one translation of a failure into a PB_E* code and a message that never holds a
 * secret.
 * libcurl 7.88 SigV4 traps handled: x-amz-content-sha256 always sent (7.88 signs the header's
 * value as the payload hash but never adds it), query strings sorted and RFC 3986-encoded with
 * `k=` for valueless keys, keys percent-encoded, no header-removal entries, all four provider
 * fields given.
 * Role: part of the S3 store (store_s3_int.h). Prerequisites: libcurl, POSIX threads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "store_s3_int.h"

#define EMPTY_SHA256      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define BACKOFF_BASE_MS   250
#define BACKOFF_CAP_MS    16000
#define CONNECT_TIMEOUT_S 20L
#define LOW_SPEED_TIME_S  60L
#define TRANSFER_BUFFER   (512L * 1024L)

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;

static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int s3_curl_init(pb_error *err)
{
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK)
        return pb_error_setd(err, PB_ENET, (int)curl_init_rc, "S3: curl_global_init failed: %s",
                             curl_easy_strerror(curl_init_rc));
    return 0;
}

/* RFC 3986 percent-encoding of s (len bytes): everything but A-Za-z0-9-._~ (and '/' when
 * keep_slash), uppercase hex. Returns 0, or -1 when it does not fit in cap. */
int s3_enc(char *out, size_t cap, const char *s, size_t len, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/');
        if (o + (plain ? 1 : 3) >= cap)
            return -1;
        if (plain) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (o >= cap)
        return -1;
    out[o] = '\0';
    return 0;
}

/* Keeps printable ASCII of a server-provided string (for messages). */
static void printable(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            *s = '?';
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
    s3_req *r = ud;
    size_t n = sz * nm;
    if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) { /* a new response (after 100 Continue) */
        r->etag[0] = '\0';
        return n;
    }
    if (n > 5 && strncasecmp(p, "etag:", 5) == 0) {
        const char *v = p + 5;
        size_t vl = n - 5;
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        if (vl < S3_ETAG_MAX) {
            memcpy(r->etag, v, vl);
            r->etag[vl] = '\0';
        }
    }
    return n;
}

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
    s3_req *r = ud;
    size_t n = sz * nm;
    if (!r->status_seen) {
        r->status_seen = 1;
        curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &r->status);
        if (r->sink && r->status >= 200 && r->status < 300) {
            curl_off_t cl = -1;
            curl_easy_getinfo(r->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
            uint64_t at = r->range_from + r->delivered;
            if (r->status == 200 && at > 0) /* the server sent everything: drop what we have */
                r->skip = at;
            if (cl >= 0 && !r->prog_total)
                r->prog_total = (r->status == 206 ? at : 0) + (uint64_t)cl;
        }
    }
    if (r->sink && r->status >= 200 && r->status < 300) {
        if (r->skip) {
            size_t drop = r->skip < n ? (size_t)r->skip : n;
            r->skip -= drop;
            p += drop;
            n -= drop;
            if (n == 0)
                return sz * nm;
        }
        int rc = r->sink(r->sink_payload, p, n, r->err);
        if (rc) {
            r->stop = rc;
            return 0;
        }
        r->delivered += n;
        if ((rc = pb_store__progress(r->progress, r->pp, "download", r->name ? r->name : "",
                                     r->prog_base + r->range_from + r->delivered, r->prog_total,
                                     r->err)) < 0) {
            r->stop = rc;
            return 0;
        }
        return sz * nm;
    }
    /* other bodies (XML results, errors) are read as they come, bounded */
    if (r->resp_n + n > r->resp_max) {
        if (r->status >= 200 && r->status < 300) {
            r->stop = pb_error_set(r->err, PB_ECORRUPT, "S3: response larger than %zu bytes",
                                   r->resp_max);
            return 0;
        }
        return n; /* an error body: its start is enough */
    }
    s3_xml_feed(&r->xml, p, n, 0);
    r->resp_n += n;
    return n;
}

static size_t on_read(char *buf, size_t sz, size_t nm, void *ud)
{
    s3_req *r = ud;
    size_t want = sz * nm;
    uint64_t left = (r->fd >= 0 ? r->body_len : r->mem_len) - r->sent;
    if (want > left)
        want = (size_t)left;
    if (want == 0)
        return 0;
    size_t got = 0;
    if (r->fd < 0) {
        memcpy(buf, r->mem + r->sent, want);
        got = want;
    } else {
        while (got < want) {
            ssize_t k = pread(r->fd, buf + got, want - got, (off_t)(r->body_off + r->sent + got));
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                if (k == 0)
                    r->stop = pb_error_set(r->err, PB_EIO, "store: %s shrank while it was sent",
                                           r->key ? r->key : "");
                else
                    r->stop = pb_error_errno(r->err, "store: cannot read the file for %s",
                                             r->key ? r->key : "");
                return CURL_READFUNC_ABORT;
            }
            got += (size_t)k;
        }
    }
    r->sent += got;
    int rc = pb_store__progress(r->progress, r->pp, "upload", r->name ? r->name : "",
                                r->prog_base + r->sent, r->prog_total, r->err);
    if (rc < 0) {
        r->stop = rc;
        return CURL_READFUNC_ABORT;
    }
    return got;
}

static int on_seek(void *ud, curl_off_t offset, int origin)
{
    s3_req *r = ud;
    uint64_t len = r->fd >= 0 ? r->body_len : r->mem_len;
    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > len)
        return CURL_SEEKFUNC_CANTSEEK;
    r->sent = (uint64_t)offset;
    return CURL_SEEKFUNC_OK;
}

static int build_url(s3_store *s, const s3_req *r)
{
    int n = snprintf(s->url, sizeof(s->url), "%s/%s", s->endpoint, s->bucket);
    if (n < 0 || (size_t)n >= sizeof(s->url))
        return -1;
    if (r->key) {
        s->url[n++] = '/';
        if (s3_enc(s->url + n, sizeof(s->url) - (size_t)n, r->key, strlen(r->key), 1) != 0)
            return -1;
        n += (int)strlen(s->url + n);
    }
    if (r->query) {
        int k = snprintf(s->url + n, sizeof(s->url) - (size_t)n, "?%s", r->query);
        if (k < 0 || (size_t)k >= sizeof(s->url) - (size_t)n)
            return -1;
    }
    return 0;
}

/* The request's headers: the payload hash, the range to resume from, the extras. NULL when
 * out of memory. */
static struct curl_slist *headers(const s3_req *r, int *fail)
{
    struct curl_slist *h = NULL, *t;
    char range[64];
    const char *lines[2 + sizeof(r->extra) / sizeof(r->extra[0])];
    size_t n = 0;
    /* 7.88 signs this header's value as the payload hash but never adds it */
    lines[n++] = r->has_body ? "x-amz-content-sha256: UNSIGNED-PAYLOAD"
                             : "x-amz-content-sha256: " EMPTY_SHA256;
    uint64_t from = r->range_from + r->delivered;
    if (from > 0) {
        snprintf(range, sizeof(range), "Range: bytes=%llu-", (unsigned long long)from);
        lines[n++] = range;
    }
    for (size_t i = 0; i < sizeof(r->extra) / sizeof(r->extra[0]); i++)
        if (r->extra[i])
            lines[n++] = r->extra[i];
    for (size_t i = 0; i < n; i++) {
        if (!(t = curl_slist_append(h, lines[i]))) {
            curl_slist_free_all(h);
            *fail = 1;
            return NULL;
        }
        h = t;
    }
    return h;
}

/* The body goes up through on_read, rewound by on_seek on a retry. */
static void set_body_reader(CURL *c, s3_req *r)
{
    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, r);
    curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(c, CURLOPT_SEEKDATA, r);
}

/* The method and how the body goes up. */
static void set_method(CURL *c, s3_req *r)
{
    if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "PUT") == 0) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
        set_body_reader(c, r);
    } else if (strcmp(r->method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->mem_len);
        set_body_reader(c, r);
    } else if (strcmp(r->method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
    }
}

/* One attempt: configures the handle from scratch (keeping its connections) and performs. */
static CURLcode attempt(s3_store *s, s3_req *r)
{
    CURL *c = s->curl;
    int fail = 0;
    curl_easy_reset(c);
    r->curl = c;
    r->status = 0;
    r->status_seen = 0;
    r->skip = 0;
    r->resp_n = 0;
    s3_xml_reset(&r->xml);
    r->etag[0] = '\0';
    r->sent = 0;
    s->errbuf[0] = '\0';
    struct curl_slist *h = headers(r, &fail);
    if (fail)
        return CURLE_OUT_OF_MEMORY;
    curl_easy_setopt(c, CURLOPT_URL, s->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    /* HTTP/1.1 as S3 clients use it: one stream per connection, no HTTP/2 flow-control windows
     * capping a large transfer */
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, s->sigv4);
    curl_easy_setopt(c, CURLOPT_USERPWD, s->userpwd);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, s->errbuf);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, LOW_SPEED_TIME_S);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, TRANSFER_BUFFER);
    curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, TRANSFER_BUFFER);
    curl_easy_setopt(c, CURLOPT_FILETIME, 1L);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    set_method(c, r);
    CURLcode cc = curl_easy_perform(c);
    if (!r->status_seen)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    if (cc == CURLE_OK && r->resp_n)
        s3_xml_feed(&r->xml, NULL, 0, 1);
    curl_slist_free_all(h);
    return cc;
}

static int transient_cc(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
        return 1;
    default:
        return 0;
    }
}

static int transient_status(long st)
{
    return st == 408 || st == 429 || st >= 500;
}

static void backoff(s3_store *s, int attempt_no)
{
    unsigned cap = BACKOFF_BASE_MS;
    for (int i = 0; i < attempt_no && cap < BACKOFF_CAP_MS; i++)
        cap *= 2;
    if (cap > BACKOFF_CAP_MS)
        cap = BACKOFF_CAP_MS;
    s->rng = s->rng * 1103515245u + 12345u;
    unsigned ms = cap / 2 + (s->rng >> 8) % (cap / 2 + 1); /* jitter in [cap/2, cap] */
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A refused signature or key: PB_EAUTH with a hint naming the setting to check. */
static int auth_fail(s3_store *s, pb_error *err, long st, const char *code)
{
    char hint[192];
    if (strcmp(code, "SignatureDoesNotMatch") == 0)
        snprintf(hint, sizeof(hint), "check %s", s->secret_name);
    else if (strcmp(code, "InvalidAccessKeyId") == 0)
        snprintf(hint, sizeof(hint), "check %s, key id %s...", s->key_name, s->key_hint);
    else if (strcmp(code, "AuthorizationHeaderMalformed") == 0)
        snprintf(hint, sizeof(hint), "check %s (%s)", s->region_name, s->region);
    else if (strcmp(code, "RequestTimeTooSkewed") == 0)
        snprintf(hint, sizeof(hint), "check the system clock");
    else if (strcmp(code, "AccessDenied") == 0)
        snprintf(hint, sizeof(hint), "key id %s... lacks permission for this bucket", s->key_hint);
    else
        snprintf(hint, sizeof(hint), "check %s and %s", s->key_name, s->secret_name);
    return pb_error_setd(err, PB_EAUTH, (int)st,
                         "S3 authentication failed for bucket %s at %s: %s (%s)", s->bucket,
                         s->endpoint,
                         code[0]     ? code
                         : st == 401 ? "HTTP 401"
                                     : "HTTP 403",
                         hint);
}

/* Turns a failed request into a PB_E* code and a one-line message (never a secret). */
static int fail(s3_store *s, s3_req *r, CURLcode cc, int tries, const char *what, const char *name)
{
    pb_error *err = r->err;
    if (cc != CURLE_OK) {
        const char *why = s->errbuf[0] ? s->errbuf : curl_easy_strerror(cc);
        return pb_error_setd(err, PB_ENET, (int)cc, "S3 %s %s at %s failed: %s (after %d %s)", what,
                             name, s->endpoint, why, tries, tries == 1 ? "attempt" : "attempts");
    }
    char code[128] = "", msg[256] = "";
    if (r->resp_n) {
        snprintf(code, sizeof(code), "%s", r->xml.code);
        snprintf(msg, sizeof(msg), "%s", r->xml.message);
        printable(code);
        printable(msg);
    }
    snprintf(r->code, sizeof(r->code), "%s", code);
    long st = r->status;
    if (st == 401 || st == 403 || strcmp(code, "SignatureDoesNotMatch") == 0 ||
        strcmp(code, "InvalidAccessKeyId") == 0 ||
        strcmp(code, "AuthorizationHeaderMalformed") == 0 ||
        strcmp(code, "RequestTimeTooSkewed") == 0)
        return auth_fail(s, err, st, code);
    if (st == 404) {
        if (strcmp(code, "NoSuchBucket") == 0)
            return pb_error_setd(err, PB_ENOTFOUND, 404, "S3 bucket %s not found at %s", s->bucket,
                                 s->endpoint);
        if (strcmp(code, "NoSuchUpload") == 0)
            return pb_error_setd(err, PB_ENET, 404, "S3 %s %s: the multipart upload vanished", what,
                                 name);
        return pb_error_setd(err, PB_ENOTFOUND, 404, "store: no object %s", name);
    }
    if (st == 301 || st == 307 || strcmp(code, "PermanentRedirect") == 0)
        return pb_error_setd(err, PB_ENET, (int)st,
                             "S3 %s %s at %s: HTTP %ld %s (the bucket is in another region: check "
                             "%s and %s)",
                             what, name, s->endpoint, st, code, s->endpoint_name, s->region_name);
    return pb_error_setd(err, PB_ENET, (int)st, "S3 %s %s at %s: HTTP %ld%s%s%s%s (after %d %s)",
                         what, name, s->endpoint, st, code[0] ? " " : "", code, msg[0] ? ": " : "",
                         msg, tries, tries == 1 ? "attempt" : "attempts");
}

/* Performs r with retries when `retry` (idempotent requests); 0 on a 2xx. `name` is the object
 * name for messages. */
int s3_perform(s3_store *s, s3_req *r, int retry, const char *what, const char *name)
{
    if (build_url(s, r) != 0)
        return pb_error_set(r->err, PB_EINVALID, "S3 %s %s: URL too long", what, name);
    int tries = 0;
    CURLcode cc = CURLE_OK;
    for (;;) {
        uint64_t before = r->delivered;
        cc = attempt(s, r);
        tries++;
        s->stats.requests++;
        if (r->stop)
            return r->stop;
        int again = 0;
        if (cc != CURLE_OK) {
            again = transient_cc(cc);
        } else if (r->status >= 200 && r->status < 300) {
            if (!(r->error_in_200 && strcmp(r->xml.root, "Error") == 0))
                return 0;
            r->status = 500; /* a failure reported in a 200 (CompleteMultipartUpload) */
            again = 1;
        } else {
            again = transient_status(r->status);
        }
        if (!again || !retry || tries >= s->attempts)
            break;
        if (r->delivered > before)
            tries = 0; /* a download that progressed gets its attempts back */
        s->stats.retries++;
        backoff(s, tries);
    }
    return fail(s, r, cc, tries, what, name);
}

void s3_req_init(s3_req *r, const char *method, pb_error *err)
{
    memset(r, 0, sizeof(*r));
    r->method = method;
    r->fd = -1;
    r->resp_max = S3_ERR_RESP_MAX;
    r->err = err;
    s3_xml_init(&r->xml);
}

void s3_req_dispose(s3_req *r)
{
    s3_xml_dispose(&r->xml);
}

int s3_full_key(char *out, size_t cap, const s3_store *s, const char *name, pb_error *err)
{
    if (snprintf(out, cap, "%s%s", s->prefix, name) >= (int)cap)
        return pb_error_set(err, PB_EINVALID, "store: key too long for %s", name);
    return 0;
}

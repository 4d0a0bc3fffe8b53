/*
 * store_s3.c: the S3 store: objects are keys `PREFIX/NAME` of a bucket of an S3-compatible
 * service, reached with path-style requests (`ENDPOINT/BUCKET/KEY`) over one reused CURL handle and
 * signed by libcurl (CURLOPT_AWS_SIGV4 + CURLOPT_USERPWD; no signing code here). put is a single
 * PUT up to a threshold, else a multipart upload whose parts stream from the file (at most 1000
 * parts, each retried alone, the upload aborted on failure); read is a ranged GET streamed to the
 * sink; stat is HEAD; list is ListObjectsV2 page by page, its XML read by a small bounded scanner;
 * del is DELETE. Idempotent requests are retried with jittered exponential backoff on connection
 * failures, timeouts, 429 and 5xx.
 * libcurl 7.88 SigV4 traps (CLOUD-TRANSPORT §2.2) handled: x-amz-content-sha256 always sent,
 * query strings sorted and RFC 3986-encoded with `k=` for valueless keys, keys percent-encoded,
 * no header-removal entries, all four provider fields given.
 * Role: the `s3://` backend of transfer/store.h. Prerequisites: libcurl, POSIX threads.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "store_s3.h"

#define MIB               (1024ull * 1024ull)
#define S3_MAX_PARTS      1000u
#define S3_MIN_PART       (5 * MIB)
#define S3_MAX_PART       (5ull * 1024 * MIB)
#define S3_MAX_SINGLE     (5ull * 1024 * MIB)
#define RESP_MAX          (8 * MIB) /* a listing page of 1000 long keys fits */
#define ERR_RESP_MAX      (64 * 1024)
#define ETAG_MAX          128
#define EMPTY_SHA256      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define URL_MAX           16384
#define TOKEN_MAX         4096
#define BACKOFF_BASE_MS   250
#define BACKOFF_CAP_MS    16000
#define CONNECT_TIMEOUT_S 20L
#define LOW_SPEED_TIME_S  60L
#define TRANSFER_BUFFER   (512L * 1024L)
#define DEFAULT_PART      (8 * MIB)
#define DEFAULT_THRESHOLD (64 * MIB)
#define DEFAULT_ATTEMPTS  6
#define DEFAULT_MAX_KEYS  1000u

typedef struct s3_store {
    pb_store base;
    CURL *curl;
    char endpoint[512]; /* scheme://host[:port], no trailing slash */
    char region[64];
    char bucket[64];
    char prefix[1040]; /* "" or "a/b/" */
    char sigv4[128];   /* "aws:amz:REGION:s3" */
    char userpwd[512]; /* "KEYID:SECRET": never printed, wiped on free */
    char key_hint[8];  /* the key id's first 4 characters */
    const char *key_var, *secret_var;
    uint64_t part_size, threshold;
    int attempts;
    unsigned max_keys;
    unsigned rng;
    pb_store_s3_stats stats;
    char url[URL_MAX];
    char errbuf[CURL_ERROR_SIZE];
} s3_store;

/* One request and what came back. */
typedef struct s3_req {
    /* in */
    const char *method; /* GET, HEAD, PUT, POST, DELETE */
    const char *key;    /* the full key, NULL for the bucket itself */
    const char *query;  /* sorted and encoded, or NULL */
    const char *extra[3];
    int fd; /* a body from a file: [body_off, body_off + body_len) */
    uint64_t body_off, body_len;
    const char *mem; /* or from memory (POST) */
    size_t mem_len;
    int has_body;
    uint64_t range_from; /* GET from this offset (ranged when > 0) */
    pb_store_sink_fn sink;
    void *sink_payload;
    pb_store_progress_fn progress;
    void *pp;
    uint64_t prog_base, prog_total;
    size_t resp_max;
    int error_in_200; /* CompleteMultipartUpload: a 200 may carry an <Error> */
    pb_error *err;
    /* out, per attempt */
    CURL *curl;
    long status;
    int status_seen;
    uint64_t skip; /* bytes to drop when a server ignored the Range */
    char *resp;
    size_t resp_n, resp_cap;
    char etag[ETAG_MAX];
    char code[64];      /* the S3 error code of a failure, "" when none */
    uint64_t sent;      /* body bytes handed to libcurl */
    uint64_t delivered; /* response bytes given to the sink (all attempts) */
    int stop;           /* a PB_E* code: the transfer was stopped by us */
} s3_req;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;

static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- encoding ---- */

/* RFC 3986 percent-encoding of s (len bytes): everything but A-Za-z0-9-._~ (and '/' when
 * keep_slash), uppercase hex. Returns 0, or -1 when it does not fit in cap. */
static int enc(char *out, size_t cap, const char *s, size_t len, int keep_slash)
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

/* ---- a bounded XML scanner for the few tags of S3 responses ---- */

/* Finds the next element <tag>...</tag> (or <tag attr...>...</tag>, or <tag/>) in [*p, end);
 * sets *content / *clen and moves *p past it. Returns 0 when found, -1 when not. */
static int xml_next(const char **p, const char *end, const char *tag, const char **content,
                    size_t *clen)
{
    size_t tl = strlen(tag);
    const char *s = *p;
    while (s < end) {
        const char *lt = memchr(s, '<', (size_t)(end - s));
        if (!lt || (size_t)(end - lt) < tl + 2)
            return -1;
        if (memcmp(lt + 1, tag, tl) == 0 &&
            (lt[1 + tl] == '>' || lt[1 + tl] == ' ' || lt[1 + tl] == '/')) {
            const char *gt = memchr(lt + 1 + tl, '>', (size_t)(end - (lt + 1 + tl)));
            if (!gt)
                return -1;
            if (gt[-1] == '/') { /* <tag/> */
                *content = gt + 1;
                *clen = 0;
                *p = gt + 1;
                return 0;
            }
            const char *c = gt + 1;
            const char *q = c;
            while (q < end) {
                const char *close = memchr(q, '<', (size_t)(end - q));
                if (!close || (size_t)(end - close) < tl + 3)
                    return -1;
                if (close[1] == '/' && memcmp(close + 2, tag, tl) == 0 && close[2 + tl] == '>') {
                    *content = c;
                    *clen = (size_t)(close - c);
                    *p = close + 3 + tl;
                    return 0;
                }
                q = close + 1;
            }
            return -1;
        }
        s = lt + 1;
    }
    return -1;
}

/* Decodes the five XML entities and numeric references (one byte, or UTF-8) of [in, in+n) into
 * out (NUL-terminated). Returns the length, or -1 (too long, malformed, NUL, markup). */
static long xml_text(char *out, size_t cap, const char *in, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        char c = in[i];
        char buf[4];
        size_t bl = 0;
        if (c == '<')
            return -1;
        if (c != '&') {
            buf[bl++] = c;
            i++;
        } else {
            const char *semi = memchr(in + i, ';', n - i < 12 ? n - i : 12);
            if (!semi)
                return -1;
            size_t el = (size_t)(semi - (in + i)) + 1;
            const char *e = in + i;
            if (el == 5 && memcmp(e, "&amp;", 5) == 0)
                buf[bl++] = '&';
            else if (el == 4 && memcmp(e, "&lt;", 4) == 0)
                buf[bl++] = '<';
            else if (el == 4 && memcmp(e, "&gt;", 4) == 0)
                buf[bl++] = '>';
            else if (el == 6 && memcmp(e, "&quot;", 6) == 0)
                buf[bl++] = '"';
            else if (el == 6 && memcmp(e, "&apos;", 6) == 0)
                buf[bl++] = '\'';
            else if (el > 3 && e[1] == '#') {
                char num[12];
                int hexa = e[2] == 'x' || e[2] == 'X';
                size_t dl = el - 3 - (size_t)hexa;
                if (dl == 0 || dl >= sizeof(num))
                    return -1;
                memcpy(num, e + 2 + hexa, dl);
                num[dl] = '\0';
                char *endp;
                unsigned long cp = strtoul(num, &endp, hexa ? 16 : 10);
                if (*endp || cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                    return -1;
                if (cp < 0x80) {
                    buf[bl++] = (char)cp;
                } else if (cp < 0x800) {
                    buf[bl++] = (char)(0xC0 | (cp >> 6));
                    buf[bl++] = (char)(0x80 | (cp & 0x3F));
                } else if (cp < 0x10000) {
                    buf[bl++] = (char)(0xE0 | (cp >> 12));
                    buf[bl++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                    buf[bl++] = (char)(0x80 | (cp & 0x3F));
                } else {
                    buf[bl++] = (char)(0xF0 | (cp >> 18));
                    buf[bl++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                    buf[bl++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                    buf[bl++] = (char)(0x80 | (cp & 0x3F));
                }
            } else {
                return -1;
            }
            i += el;
        }
        if (o + bl >= cap)
            return -1;
        memcpy(out + o, buf, bl);
        o += bl;
    }
    out[o] = '\0';
    return (long)o;
}

/* The text of the first <tag> in [p, end) into out; 0, or -1 when absent or malformed. */
static int xml_get(char *out, size_t cap, const char *p, const char *end, const char *tag)
{
    const char *c;
    size_t n;
    if (xml_next(&p, end, tag, &c, &n) != 0)
        return -1;
    return xml_text(out, cap, c, n) < 0 ? -1 : 0;
}

/* Writes s escaped as XML text into out (cap > 6 * strlen(s)); returns the length. */
static size_t xml_escape(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        const char *e = *s == '&'   ? "&amp;"
                        : *s == '<' ? "&lt;"
                        : *s == '>' ? "&gt;"
                        : *s == '"' ? "&quot;"
                                    : NULL;
        if (e) {
            memcpy(out + o, e, strlen(e));
            o += strlen(e);
        } else {
            out[o++] = *s;
        }
    }
    out[o] = '\0';
    return o;
}

/* Keeps printable ASCII of a server-provided string (for messages). */
static void printable(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            *s = '?';
}

/* ISO 8601 "YYYY-MM-DDTHH:MM:SS[.fff]Z" to ns since the epoch; 0 when malformed. */
static int64_t iso8601_ns(const char *s)
{
    struct tm tm = {0};
    int y, mo, d, h, mi, sec, used = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6)
        return 0;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    int64_t ns = (int64_t)timegm(&tm) * 1000000000;
    const char *f = s + used;
    if (*f == '.') {
        int64_t scale = 100000000;
        for (f++; *f >= '0' && *f <= '9'; f++, scale /= 10)
            ns += (*f - '0') * scale;
    }
    return ns;
}

/* ---- settings ---- */

const char *const pb_store_s3_settings[] = {"PLEXBURST_S3_ENDPOINT",
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

static const char *setting(pb_store_s3_lookup_fn lookup, void *ctx, const char *key)
{
    const char *v = lookup ? lookup(ctx, key) : getenv(key);
    return v && *v ? v : NULL;
}

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

uint64_t pb_store_s3_part_size(uint64_t size, uint64_t min_part)
{
    uint64_t part = min_part > S3_MIN_PART ? min_part : S3_MIN_PART;
    uint64_t need = (size + S3_MAX_PARTS - 1) / S3_MAX_PARTS;
    need = (need + MIB - 1) / MIB * MIB;
    return need > part ? need : part;
}

/* ---- one request ---- */

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
        if (vl < ETAG_MAX) {
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
        if (r->progress &&
            r->progress(r->prog_base + r->range_from + r->delivered, r->prog_total, r->pp)) {
            r->stop = pb_error_set(r->err, PB_ECANCELLED, "store: read of %s cancelled",
                                   r->key ? r->key : "");
            return 0;
        }
        return sz * nm;
    }
    /* other bodies (XML results, errors) are kept, bounded */
    if (r->resp_n + n > r->resp_max) {
        if (r->status >= 200 && r->status < 300) {
            r->stop = pb_error_set(r->err, PB_ECORRUPT, "S3: response larger than %zu bytes",
                                   r->resp_max);
            return 0;
        }
        return n; /* an error body: its start is enough */
    }
    if (r->resp_n + n + 1 > r->resp_cap) {
        size_t cap = r->resp_cap ? r->resp_cap : 16384;
        while (cap < r->resp_n + n + 1)
            cap *= 2;
        char *q = realloc(r->resp, cap);
        if (!q) {
            r->stop = pb_error_set(r->err, PB_ENOMEM, "S3: out of memory");
            return 0;
        }
        r->resp = q;
        r->resp_cap = cap;
    }
    memcpy(r->resp + r->resp_n, p, n);
    r->resp_n += n;
    r->resp[r->resp_n] = '\0';
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
    if (r->progress && r->progress(r->prog_base + r->sent, r->prog_total, r->pp)) {
        r->stop =
            pb_error_set(r->err, PB_ECANCELLED, "store: put of %s cancelled", r->key ? r->key : "");
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
        if (enc(s->url + n, sizeof(s->url) - (size_t)n, r->key, strlen(r->key), 1) != 0)
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

/* One attempt: configures the handle from scratch (keeping its connections) and performs. */
static CURLcode attempt(s3_store *s, s3_req *r)
{
    CURL *c = s->curl;
    struct curl_slist *h = NULL, *t;
    char range[64];
    CURLcode cc = CURLE_OK;
    curl_easy_reset(c);
    r->curl = c;
    r->status = 0;
    r->status_seen = 0;
    r->skip = 0;
    r->resp_n = 0;
    r->etag[0] = '\0';
    r->sent = 0;
    s->errbuf[0] = '\0';

#define ADD(line)                                                                                  \
    do {                                                                                           \
        if (!(t = curl_slist_append(h, (line)))) {                                                 \
            cc = CURLE_OUT_OF_MEMORY;                                                              \
            goto done;                                                                             \
        }                                                                                          \
        h = t;                                                                                     \
    } while (0)
    /* 7.88 signs this header's value as the payload hash but never adds it (§2.2 trap 1) */
    ADD(r->has_body ? "x-amz-content-sha256: UNSIGNED-PAYLOAD"
                    : "x-amz-content-sha256: " EMPTY_SHA256);
    uint64_t from = r->range_from + r->delivered;
    if (from > 0) {
        snprintf(range, sizeof(range), "Range: bytes=%llu-", (unsigned long long)from);
        ADD(range);
    }
    for (size_t i = 0; i < sizeof(r->extra) / sizeof(r->extra[0]); i++)
        if (r->extra[i])
            ADD(r->extra[i]);
#undef ADD

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
    if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "PUT") == 0) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, r);
        curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(c, CURLOPT_SEEKDATA, r);
    } else if (strcmp(r->method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->mem_len);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, r);
        curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(c, CURLOPT_SEEKDATA, r);
    } else if (strcmp(r->method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
    }
    cc = curl_easy_perform(c);
    if (!r->status_seen)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
done:
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
    if (r->resp && r->resp_n) {
        const char *b = r->resp, *e = r->resp + r->resp_n;
        if (xml_get(code, sizeof(code), b, e, "Code") != 0)
            code[0] = '\0';
        if (xml_get(msg, sizeof(msg), b, e, "Message") != 0)
            msg[0] = '\0';
        printable(code);
        printable(msg);
    }
    snprintf(r->code, sizeof(r->code), "%s", code);
    long st = r->status;
    if (st == 401 || st == 403 || strcmp(code, "SignatureDoesNotMatch") == 0 ||
        strcmp(code, "InvalidAccessKeyId") == 0 ||
        strcmp(code, "AuthorizationHeaderMalformed") == 0 ||
        strcmp(code, "RequestTimeTooSkewed") == 0) {
        char hint[192];
        if (strcmp(code, "SignatureDoesNotMatch") == 0)
            snprintf(hint, sizeof(hint), "check %s", s->secret_var);
        else if (strcmp(code, "InvalidAccessKeyId") == 0)
            snprintf(hint, sizeof(hint), "check %s, key id %s...", s->key_var, s->key_hint);
        else if (strcmp(code, "AuthorizationHeaderMalformed") == 0)
            snprintf(hint, sizeof(hint), "check PLEXBURST_S3_REGION (%s)", s->region);
        else if (strcmp(code, "RequestTimeTooSkewed") == 0)
            snprintf(hint, sizeof(hint), "check the system clock");
        else if (strcmp(code, "AccessDenied") == 0)
            snprintf(hint, sizeof(hint), "key id %s... lacks permission for this bucket",
                     s->key_hint);
        else
            snprintf(hint, sizeof(hint), "check %s and %s", s->key_var, s->secret_var);
        return pb_error_setd(err, PB_EAUTH, (int)st,
                             "S3 authentication failed for bucket %s at %s: %s (%s)", s->bucket,
                             s->endpoint,
                             code[0]     ? code
                             : st == 401 ? "HTTP 401"
                                         : "HTTP 403",
                             hint);
    }
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
                             "PLEXBURST_S3_ENDPOINT and PLEXBURST_S3_REGION)",
                             what, name, s->endpoint, st, code);
    return pb_error_setd(err, PB_ENET, (int)st, "S3 %s %s at %s: HTTP %ld%s%s%s%s (after %d %s)",
                         what, name, s->endpoint, st, code[0] ? " " : "", code, msg[0] ? ": " : "",
                         msg, tries, tries == 1 ? "attempt" : "attempts");
}

/* Performs r with retries when `retry` (idempotent requests); 0 on a 2xx. `name` is the object
 * name for messages. */
static int perform(s3_store *s, s3_req *r, int retry, const char *what, const char *name)
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
            if (!(r->error_in_200 && r->resp && strstr(r->resp, "<Error>")))
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

static void req_init(s3_req *r, const char *method, pb_error *err)
{
    memset(r, 0, sizeof(*r));
    r->method = method;
    r->fd = -1;
    r->resp_max = ERR_RESP_MAX;
    r->err = err;
}

static void req_dispose(s3_req *r)
{
    free(r->resp);
    r->resp = NULL;
}

static int full_key(char *out, size_t cap, const s3_store *s, const char *name, pb_error *err)
{
    if (snprintf(out, cap, "%s%s", s->prefix, name) >= (int)cap)
        return pb_error_set(err, PB_EINVALID, "store: key too long for %s", name);
    return 0;
}

/* ---- operations ---- */

static int s3_stat(pb_store *st, const char *name, pb_store_info *out, pb_error *err)
{
    s3_store *s = (s3_store *)st;
    char key[2200];
    s3_req r;
    int error = full_key(key, sizeof(key), s, name, err);
    if (error)
        return error;
    req_init(&r, "HEAD", err);
    r.key = key;
    pb_error probe = PB_ERROR_INIT;
    r.err = &probe;
    error = perform(s, &r, 1, "HEAD", name);
    if (error && (r.status == 400 || r.status == 401 || r.status == 403)) {
        /* HEAD responses have no body: ask again with GET to learn the error code */
        req_dispose(&r);
        req_init(&r, "GET", err);
        r.key = key;
        r.extra[0] = "Range: bytes=0-0";
        if ((error = perform(s, &r, 0, "GET", name)) == 0)
            error = pb_error_set(err, PB_EAUTH,
                                 "S3 authentication failed for bucket %s at %s: "
                                 "HEAD refused, GET allowed",
                                 s->bucket, s->endpoint);
        req_dispose(&r);
        return error;
    }
    if (error) {
        if (err && !err->code)
            *err = probe;
        req_dispose(&r);
        return error;
    }
    curl_off_t cl = -1, ft = -1;
    curl_easy_getinfo(s->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    curl_easy_getinfo(s->curl, CURLINFO_FILETIME_T, &ft);
    req_dispose(&r);
    if (cl < 0)
        return pb_error_set(err, PB_ECORRUPT, "S3 HEAD %s: no Content-Length", name);
    out->size = (uint64_t)cl;
    out->mtime_ns = ft >= 0 ? (int64_t)ft * 1000000000 : 0;
    return 0;
}

static int s3_read(pb_store *st, const char *name, uint64_t offset, pb_store_sink_fn sink,
                   void *sink_payload, pb_store_progress_fn progress, void *pp, pb_error *err)
{
    s3_store *s = (s3_store *)st;
    char key[2200];
    s3_req r;
    int error = full_key(key, sizeof(key), s, name, err);
    if (error)
        return error;
    req_init(&r, "GET", err);
    r.key = key;
    r.range_from = offset;
    r.sink = sink;
    r.sink_payload = sink_payload;
    r.progress = progress;
    r.pp = pp;
    pb_error probe = PB_ERROR_INIT;
    r.err = offset > 0 ? &probe : err;
    error = perform(s, &r, 1, "GET", name);
    if (error && offset > 0) {
        if (r.status == 416) { /* nothing at or after offset: fine only at the very end */
            pb_store_info si;
            error = s3_stat(st, name, &si, err);
            if (!error && si.size != offset)
                error = pb_error_set(err, PB_EINVALID, "store: offset %llu beyond %s (%llu bytes)",
                                     (unsigned long long)offset, name, (unsigned long long)si.size);
        } else if (err && !err->code) {
            *err = probe;
        }
    }
    req_dispose(&r);
    return error;
}

static int s3_del(pb_store *st, const char *name, pb_error *err)
{
    s3_store *s = (s3_store *)st;
    char key[2200];
    s3_req r;
    int error = full_key(key, sizeof(key), s, name, err);
    if (error)
        return error;
    req_init(&r, "DELETE", err);
    r.key = key;
    pb_error probe = PB_ERROR_INIT;
    r.err = &probe;
    error = perform(s, &r, 1, "DELETE", name);
    if (error == PB_ENOTFOUND && strcmp(r.code, "NoSuchBucket") != 0)
        error = 0; /* absent is not an error */
    else if (error && err && !err->code)
        *err = probe;
    req_dispose(&r);
    return error;
}

/* Lists one page of keys below `full` from `token` (NULL: the start). */
static int list_page(s3_store *s, s3_req *r, const char *full, const char *token, unsigned max_keys)
{
    char q[TOKEN_MAX * 3 + 3 * 2200 + 128], etok[TOKEN_MAX * 3 + 1], epre[3 * 2200 + 1];
    if (enc(epre, sizeof(epre), full, strlen(full), 0) != 0 ||
        (token && enc(etok, sizeof(etok), token, strlen(token), 0) != 0))
        return pb_error_set(r->err, PB_EINVALID, "S3 list: prefix or token too long");
    /* sorted by key (7.88 signs the query as given): continuation-token, list-type, max-keys,
     * prefix */
    snprintf(q, sizeof(q), "%s%s%slist-type=2&max-keys=%u&prefix=%s",
             token ? "continuation-token=" : "", token ? etok : "", token ? "&" : "", max_keys,
             epre);
    r->query = q;
    r->resp_max = RESP_MAX;
    int rc = perform(s, r, 1, "LIST", full[0] ? full : "/");
    r->query = NULL;
    return rc;
}

static int s3_list(pb_store *st, const char *prefix, pb_store_list_fn fn, void *payload,
                   pb_error *err)
{
    s3_store *s = (s3_store *)st;
    int error = 0;
    char full[2200];
    char *token = NULL, *key = NULL, *prev = NULL;
    s3_req r;
    req_init(&r, "GET", err);
    if ((error = full_key(full, sizeof(full), s, prefix, err)) != 0)
        return error;
    size_t pl = strlen(s->prefix);
    if (!(token = malloc(TOKEN_MAX)) || !(key = malloc(4096))) {
        error = pb_error_set(err, PB_ENOMEM, "S3: out of memory");
        goto done;
    }
    int have_token = 0;
    for (;;) {
        if ((error = list_page(s, &r, full, have_token ? token : NULL, s->max_keys)) != 0)
            goto done;
        const char *b = r.resp ? r.resp : "", *e = b + r.resp_n;
        if (!strstr(b, "<ListBucketResult")) {
            error =
                pb_error_set(err, PB_ECORRUPT, "S3 list of %s: not a ListBucketResult", s->bucket);
            goto done;
        }
        const char *p = b, *c;
        size_t cl;
        while (xml_next(&p, e, "Contents", &c, &cl) == 0) {
            const char *ce = c + cl;
            char size_s[32], lm[64];
            if (xml_get(key, 4096, c, ce, "Key") != 0 ||
                xml_get(size_s, sizeof(size_s), c, ce, "Size") != 0) {
                error = pb_error_set(err, PB_ECORRUPT, "S3 list of %s: malformed <Contents>",
                                     s->bucket);
                goto done;
            }
            char *endp;
            errno = 0;
            unsigned long long sz = strtoull(size_s, &endp, 10);
            if (errno || endp == size_s || *endp || size_s[0] == '-') {
                error = pb_error_set(err, PB_ECORRUPT, "S3 list of %s: bad <Size>", s->bucket);
                goto done;
            }
            if (strncmp(key, s->prefix, pl) != 0 || pb_store_name_check(key + pl, NULL) != 0)
                continue; /* not ours, or not a store object (a folder marker, a foreign name) */
            pb_store_info si = {(uint64_t)sz, 0};
            if (xml_get(lm, sizeof(lm), c, ce, "LastModified") == 0)
                si.mtime_ns = iso8601_ns(lm);
            int rc = fn(key + pl, &si, payload);
            if (rc > 0) {
                error = pb_error_set(err, PB_ECANCELLED, "store: listing stopped");
                goto done;
            }
            if (rc < 0) {
                error = pb_error_set(err, rc, "store: listing stopped: %s", pb_strerror(rc));
                goto done;
            }
        }
        char trunc[16];
        if (xml_get(trunc, sizeof(trunc), b, e, "IsTruncated") != 0 || strcmp(trunc, "true") != 0)
            break;
        if (have_token && !(prev = strdup(token))) {
            error = pb_error_set(err, PB_ENOMEM, "S3: out of memory");
            goto done;
        }
        if (xml_get(token, TOKEN_MAX, b, e, "NextContinuationToken") != 0 || !token[0] ||
            (prev && strcmp(prev, token) == 0)) {
            error = pb_error_set(err, PB_ECORRUPT,
                                 "S3 list of %s: truncated without a new continuation token",
                                 s->bucket);
            goto done;
        }
        free(prev);
        prev = NULL;
        have_token = 1;
    }
done:
    req_dispose(&r);
    free(prev);
    free(key);
    free(token);
    return error;
}

/* The x-amz-meta-mtime header of a file ("<seconds>.<ns>", as rclone writes and reads it). */
static void mtime_header(char *out, size_t cap, const struct stat *st)
{
    snprintf(out, cap, "x-amz-meta-mtime: %lld.%09ld", (long long)st->st_mtim.tv_sec,
             (long)st->st_mtim.tv_nsec);
}

static void abort_upload(s3_store *s, const char *key, const char *upload_id)
{
    char q[1200], eid[1100];
    s3_req r;
    pb_error ignore = PB_ERROR_INIT;
    if (enc(eid, sizeof(eid), upload_id, strlen(upload_id), 0) != 0)
        return;
    snprintf(q, sizeof(q), "uploadId=%s", eid);
    req_init(&r, "DELETE", &ignore);
    r.key = key;
    r.query = q;
    (void)perform(s, &r, 0, "ABORT", key); /* best effort (some servers answer 405) */
    req_dispose(&r);
}

static int put_multipart(s3_store *s, const char *key, const char *name, int fd, uint64_t size,
                         const char *mtime_hdr, pb_store_progress_fn progress, void *pp,
                         pb_error *err)
{
    int error = 0;
    char upload_id[1024] = "", eid[3 * 1024 + 1], q[3 * 1024 + 64];
    char(*etags)[ETAG_MAX] = NULL;
    char *xml = NULL;
    s3_req r;
    req_init(&r, "POST", err);
    uint64_t part = pb_store_s3_part_size(size, s->part_size);
    if (part > S3_MAX_PART)
        return pb_error_set(err, PB_EINVALID, "store: %s is too large for S3 (%llu bytes)", name,
                            (unsigned long long)size);
    unsigned nparts = (unsigned)((size + part - 1) / part);

    /* initiate: not idempotent (a retry may orphan an upload), yet safe to repeat when the
     * server refused it (429/5xx) or could not be reached */
    r.key = key;
    r.query = "uploads=";
    r.mem = "";
    r.mem_len = 0;
    r.extra[0] = "Content-Type: application/octet-stream";
    r.extra[1] = mtime_hdr;
    r.resp_max = ERR_RESP_MAX;
    if ((error = perform(s, &r, 1, "CreateMultipartUpload", name)) != 0)
        goto done;
    if (!r.resp ||
        xml_get(upload_id, sizeof(upload_id), r.resp, r.resp + r.resp_n, "UploadId") != 0 ||
        !upload_id[0]) {
        error = pb_error_set(err, PB_ECORRUPT, "S3 CreateMultipartUpload %s: no UploadId", name);
        goto done;
    }
    if (enc(eid, sizeof(eid), upload_id, strlen(upload_id), 0) != 0) {
        error =
            pb_error_set(err, PB_ECORRUPT, "S3 CreateMultipartUpload %s: UploadId too long", name);
        goto done;
    }
    if (!(etags = calloc(nparts, sizeof(*etags)))) {
        error = pb_error_set(err, PB_ENOMEM, "S3: out of memory");
        goto done;
    }
    for (unsigned i = 0; i < nparts; i++) {
        uint64_t off = (uint64_t)i * part;
        req_dispose(&r);
        req_init(&r, "PUT", err);
        /* sorted: partNumber < uploadId */
        snprintf(q, sizeof(q), "partNumber=%u&uploadId=%s", i + 1, eid);
        r.key = key;
        r.query = q;
        r.fd = fd;
        r.has_body = 1;
        r.body_off = off;
        r.body_len = size - off < part ? size - off : part;
        r.progress = progress;
        r.pp = pp;
        r.prog_base = off;
        r.prog_total = size;
        char what[48];
        snprintf(what, sizeof(what), "UploadPart %u/%u of", i + 1, nparts);
        if ((error = perform(s, &r, 1, what, name)) != 0)
            goto done;
        if (!r.etag[0]) {
            error = pb_error_set(err, PB_ECORRUPT, "S3 UploadPart %u of %s: no ETag", i + 1, name);
            goto done;
        }
        memcpy(etags[i], r.etag, ETAG_MAX);
        s->stats.parts++;
    }

    size_t cap = 64 + (size_t)nparts * (64 + 6 * ETAG_MAX), n = 0;
    if (!(xml = malloc(cap))) {
        error = pb_error_set(err, PB_ENOMEM, "S3: out of memory");
        goto done;
    }
    n += (size_t)snprintf(xml + n, cap - n, "<CompleteMultipartUpload>");
    for (unsigned i = 0; i < nparts; i++) {
        n += (size_t)snprintf(xml + n, cap - n, "<Part><PartNumber>%u</PartNumber><ETag>", i + 1);
        n += xml_escape(xml + n, cap - n, etags[i]);
        n += (size_t)snprintf(xml + n, cap - n, "</ETag></Part>");
    }
    n += (size_t)snprintf(xml + n, cap - n, "</CompleteMultipartUpload>");
    req_dispose(&r);
    req_init(&r, "POST", err);
    snprintf(q, sizeof(q), "uploadId=%s", eid);
    r.key = key;
    r.query = q;
    r.mem = xml;
    r.mem_len = n;
    r.has_body = 1;
    r.extra[0] = "Content-Type: application/xml";
    r.error_in_200 = 1;
    pb_error probe = PB_ERROR_INIT;
    r.err = &probe;
    if ((error = perform(s, &r, 1, "CompleteMultipartUpload", name)) != 0) {
        /* a retried Complete may find the upload already completed by the lost first try */
        pb_store_info si;
        pb_error ignore = PB_ERROR_INIT;
        if (strcmp(r.code, "NoSuchUpload") == 0 && s3_stat(&s->base, name, &si, &ignore) == 0 &&
            si.size == size) {
            error = 0;
            upload_id[0] = '\0';
            goto done;
        }
        if (err && !err->code)
            *err = probe;
        goto done;
    }
    upload_id[0] = '\0'; /* completed: nothing to abort */
    s->stats.multipart++;
done:
    if (error && upload_id[0])
        abort_upload(s, key, upload_id);
    req_dispose(&r);
    free(xml);
    free(etags);
    return error;
}

static int s3_put(pb_store *st, const char *name, const char *local_path,
                  pb_store_progress_fn progress, void *pp, pb_error *err)
{
    s3_store *s = (s3_store *)st;
    int error = 0, fd = -1;
    char key[2200], mtime_hdr[80];
    s3_req r;
    req_init(&r, "PUT", err);
    if ((error = full_key(key, sizeof(key), s, name, err)) != 0)
        return error;
    fd = open(local_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return pb_error_errno(err, "store: cannot open %s", local_path);
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        error = pb_error_errno(err, "store: cannot stat %s", local_path);
        goto done;
    }
    if (!S_ISREG(sb.st_mode)) {
        error = pb_error_set(err, PB_EINVALID, "store: %s is not a regular file", local_path);
        goto done;
    }
    uint64_t size = (uint64_t)sb.st_size;
    mtime_header(mtime_hdr, sizeof(mtime_hdr), &sb);
    if (size > s->threshold || size > S3_MAX_SINGLE) {
        error = put_multipart(s, key, name, fd, size, mtime_hdr, progress, pp, err);
        goto done;
    }
    r.key = key;
    r.fd = fd;
    r.has_body = 1;
    r.body_len = size;
    r.progress = progress;
    r.pp = pp;
    r.prog_total = size;
    r.extra[0] = "Content-Type: application/octet-stream";
    r.extra[1] = mtime_hdr;
    error = perform(s, &r, 1, "PUT", name);
done:
    req_dispose(&r);
    if (fd >= 0)
        close(fd);
    return error;
}

static void s3_free(pb_store *st)
{
    s3_store *s = (s3_store *)st;
    if (!s)
        return;
    if (s->curl)
        curl_easy_cleanup(s->curl);
    explicit_bzero(s->userpwd, sizeof(s->userpwd));
    free(s);
}

static const pb_store_ops s3_ops = {
    PB_STORE_OPS_VERSION, "s3", s3_put, s3_read, s3_stat, s3_list, s3_del, s3_free,
};

void pb_store_s3_stats_get(const pb_store *s, pb_store_s3_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (s && s->ops == &s3_ops)
        *out = ((const s3_store *)s)->stats;
}

/* ---- opening ---- */

/* Parses s3://BUCKET[/PREFIX] into s->bucket and s->prefix ("" or ending in '/'). */
static int parse_url(s3_store *s, const char *url, pb_error *err)
{
    const char *b = url + 5, *slash = strchr(b, '/');
    size_t bl = slash ? (size_t)(slash - b) : strlen(b);
    if (memchr(b, '@', bl) || memchr(b, ':', bl)) /* never echo: it may hold a secret */
        return pb_error_set(err, PB_EINVALID,
                            "store: an s3:// URL must not hold credentials (use AWS_ACCESS_KEY_ID "
                            "and AWS_SECRET_ACCESS_KEY)");
    if (bl < 3 || bl > 63)
        return pb_error_set(err, PB_EINVALID,
                            "store: invalid S3 bucket name '%.*s' (3 to 63 characters)", (int)bl,
                            b);
    for (size_t i = 0; i < bl; i++) {
        char c = b[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
              c == '_' || (c >= 'A' && c <= 'Z')))
            return pb_error_set(err, PB_EINVALID, "store: invalid S3 bucket name '%.*s'", (int)bl,
                                b);
    }
    memcpy(s->bucket, b, bl);
    s->bucket[bl] = '\0';
    const char *p = slash ? slash + 1 : "";
    char pre[1024];
    size_t pl = strlen(p);
    while (pl && p[pl - 1] == '/')
        pl--;
    if (pl >= sizeof(pre) - 1)
        return pb_error_set(err, PB_EINVALID, "store: S3 prefix too long in s3://%s/", s->bucket);
    memcpy(pre, p, pl);
    pre[pl] = '\0';
    if (pl && pb_store_name_check(pre, NULL) != 0) /* not echoed: it may hold a secret */
        return pb_error_set(err, PB_EINVALID,
                            "store: invalid S3 prefix in s3://%s/... (components of A-Z a-z 0-9 . "
                            "_ -, not . or ..)",
                            s->bucket);
    snprintf(s->prefix, sizeof(s->prefix), "%s%s", pre, pl ? "/" : "");
    snprintf(s->base.url, sizeof(s->base.url), "s3://%s%s%s", s->bucket, pl ? "/" : "", pre);
    return 0;
}

/* Region from an endpoint host s3.REGION.scw.cloud or s3.REGION.amazonaws.com. */
static void region_from_host(char *out, size_t cap, const char *endpoint)
{
    const char *h = strstr(endpoint, "://");
    h = h ? h + 3 : endpoint;
    if (strncmp(h, "s3.", 3) != 0)
        return;
    const char *r = h + 3, *dot = strchr(r, '.');
    if (!dot || (size_t)(dot - r) >= cap || dot == r)
        return;
    if (strncmp(dot, ".scw.cloud", 10) != 0 && strncmp(dot, ".amazonaws.com", 14) != 0)
        return;
    memcpy(out, r, (size_t)(dot - r));
    out[dot - r] = '\0';
}

int pb_store_s3_new(pb_store **out, const char *url, pb_store_s3_lookup_fn lookup, void *ctx,
                    pb_error *err)
{
    int error = 0;
    s3_store *s = NULL;
    s3_req r;
    req_init(&r, "GET", err);
    *out = NULL;
    if (!url || strncmp(url, "s3://", 5) != 0)
        return pb_error_set(err, PB_EINVALID, "store: not an s3:// URL");
    if (!(s = calloc(1, sizeof(*s))))
        return pb_error_set(err, PB_ENOMEM, "store: out of memory");
    s->base.ops = &s3_ops;
    if ((error = parse_url(s, url, err)) != 0)
        goto done;

    const char *endpoint = setting(lookup, ctx, "PLEXBURST_S3_ENDPOINT");
    const char *region = setting(lookup, ctx, "PLEXBURST_S3_REGION");
    if (!endpoint && !region) {
        error =
            pb_error_set(err, PB_EINVALID,
                         "store: %s needs PLEXBURST_S3_ENDPOINT (e.g. https://s3.fr-par.scw.cloud) "
                         "or PLEXBURST_S3_REGION",
                         s->base.url);
        goto done;
    }
    if (endpoint) {
        size_t el = strlen(endpoint);
        while (el && endpoint[el - 1] == '/')
            el--;
        const char *host = strncmp(endpoint, "https://", 8) == 0  ? endpoint + 8
                           : strncmp(endpoint, "http://", 7) == 0 ? endpoint + 7
                                                                  : NULL;
        if (!host || memchr(endpoint, '@', el)) { /* never echo: it may hold credentials */
            error = pb_error_set(err, PB_EINVALID,
                                 "store: PLEXBURST_S3_ENDPOINT must be http(s)://HOST[:PORT] "
                                 "without credentials");
            goto done;
        }
        if (el >= sizeof(s->endpoint) || (size_t)(host - endpoint) >= el ||
            memchr(host, '/', el - (size_t)(host - endpoint)) ||
            memchr(host, '?', el - (size_t)(host - endpoint))) {
            error =
                pb_error_set(err, PB_EINVALID,
                             "store: PLEXBURST_S3_ENDPOINT must be http(s)://HOST[:PORT] (no path; "
                             "the bucket goes in the s3:// URL)");
            goto done;
        }
        memcpy(s->endpoint, endpoint, el);
        s->endpoint[el] = '\0';
    }
    if (region) {
        if (strlen(region) >= sizeof(s->region) || strpbrk(region, ":/ \t")) {
            error = pb_error_set(err, PB_EINVALID, "store: invalid PLEXBURST_S3_REGION");
            goto done;
        }
        snprintf(s->region, sizeof(s->region), "%s", region);
    } else {
        region_from_host(s->region, sizeof(s->region), s->endpoint);
        if (!s->region[0])
            snprintf(s->region, sizeof(s->region), "us-east-1");
    }
    if (!endpoint)
        snprintf(s->endpoint, sizeof(s->endpoint), "https://s3.%s.scw.cloud", s->region);
    snprintf(s->sigv4, sizeof(s->sigv4), "aws:amz:%s:s3", s->region);

    s->key_var = "PLEXBURST_S3_ACCESS_KEY";
    const char *ak = setting(lookup, ctx, s->key_var);
    if (!ak) {
        s->key_var = "AWS_ACCESS_KEY_ID";
        ak = setting(lookup, ctx, s->key_var);
    }
    s->secret_var = "PLEXBURST_S3_SECRET_KEY";
    const char *sk = setting(lookup, ctx, s->secret_var);
    if (!sk) {
        s->secret_var = "AWS_SECRET_ACCESS_KEY";
        sk = setting(lookup, ctx, s->secret_var);
    }
    if (!ak || !sk) {
        error = pb_error_set(err, PB_EINVALID,
                             "store: %s needs S3 keys: set AWS_ACCESS_KEY_ID and "
                             "AWS_SECRET_ACCESS_KEY (or PLEXBURST_S3_ACCESS_KEY/_SECRET_KEY)",
                             s->base.url);
        goto done;
    }
    if (strchr(ak, ':') || strlen(ak) + strlen(sk) + 2 > sizeof(s->userpwd)) {
        error = pb_error_set(err, PB_EINVALID, "store: invalid %s", s->key_var);
        goto done;
    }
    size_t akl = strlen(ak), skl = strlen(sk);
    memcpy(s->userpwd, ak, akl);
    s->userpwd[akl] = ':';
    memcpy(s->userpwd + akl + 1, sk, skl + 1);
    snprintf(s->key_hint, sizeof(s->key_hint), "%.4s", ak);

    s->part_size = DEFAULT_PART;
    s->threshold = DEFAULT_THRESHOLD;
    s->attempts = DEFAULT_ATTEMPTS;
    s->max_keys = DEFAULT_MAX_KEYS;
    const char *v;
    if ((v = setting(lookup, ctx, "PLEXBURST_S3_PART_SIZE")) != NULL) {
        uint64_t n = parse_size(v);
        if (n < S3_MIN_PART || n > S3_MAX_PART) {
            error = pb_error_set(err, PB_EINVALID,
                                 "store: PLEXBURST_S3_PART_SIZE must be 5M..5G, not '%s'", v);
            goto done;
        }
        s->part_size = (n + MIB - 1) / MIB * MIB;
    }
    if ((v = setting(lookup, ctx, "PLEXBURST_S3_MULTIPART_THRESHOLD")) != NULL) {
        uint64_t n = parse_size(v);
        if (n == 0 && strcmp(v, "0") != 0) {
            error = pb_error_set(err, PB_EINVALID,
                                 "store: invalid PLEXBURST_S3_MULTIPART_THRESHOLD '%s'", v);
            goto done;
        }
        s->threshold = n;
    }
    if ((v = setting(lookup, ctx, "PLEXBURST_S3_RETRIES")) != NULL) {
        char *end;
        long n = strtol(v, &end, 10);
        if (*end || n < 1 || n > 20) {
            error = pb_error_set(err, PB_EINVALID,
                                 "store: PLEXBURST_S3_RETRIES must be 1..20, not '%s'", v);
            goto done;
        }
        s->attempts = (int)n;
    }
    if ((v = setting(lookup, ctx, "PLEXBURST_S3_LIST_MAX_KEYS")) != NULL) {
        char *end;
        long n = strtol(v, &end, 10);
        if (*end || n < 1 || n > 1000) {
            error = pb_error_set(err, PB_EINVALID,
                                 "store: PLEXBURST_S3_LIST_MAX_KEYS must be 1..1000, not '%s'", v);
            goto done;
        }
        s->max_keys = (unsigned)n;
    }

    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK) {
        error = pb_error_setd(err, PB_ENET, (int)curl_init_rc, "S3: curl_global_init failed: %s",
                              curl_easy_strerror(curl_init_rc));
        goto done;
    }
    if (!(s->curl = curl_easy_init())) {
        error = pb_error_set(err, PB_ENOMEM, "S3: curl_easy_init failed");
        goto done;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    s->rng = (unsigned)now.tv_nsec ^ (unsigned)getpid() << 16;

    /* one listing request: wrong keys, region, endpoint or bucket fail here, clearly */
    if ((error = list_page(s, &r, s->prefix, NULL, 1)) != 0)
        goto done;
    *out = &s->base;
    s = NULL;
done:
    req_dispose(&r);
    s3_free(s ? &s->base : NULL);
    return error;
}

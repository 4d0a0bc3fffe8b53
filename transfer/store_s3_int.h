/*
 * store_s3_int.h (internal to transfer/store_s3*.c): the S3 store's state, one HTTP request and
 * what the files of the backend share: the request engine (store_s3_http.c), the reading of
 * S3's XML bodies (store_s3_xml.c), the operations (store_s3_ops.c, store_s3_put.c) and the
 * opening (store_s3.c).
 * Prerequisites: libcurl, libexpat.
 */
#ifndef PB_STORE_S3_INT_H
#define PB_STORE_S3_INT_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "store.h"
#include "store_s3.h"

#define S3_MIB          (1024ull * 1024ull)
#define S3_MAX_PARTS    1000u
#define S3_MAX_SINGLE   (5ull * 1024 * S3_MIB)
#define S3_RESP_MAX     (8 * S3_MIB) /* a listing page of 1000 long keys fits */
#define S3_ERR_RESP_MAX (64 * 1024)
#define S3_ETAG_MAX     128
#define S3_URL_MAX      16384
#define S3_TOKEN_MAX    4096
#define S3_KEY_MAX      2200 /* a full key: the prefix and an object name */

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
    /* what the caller calls the settings, for hints */
    char endpoint_name[64], region_name[64], key_name[64], secret_name[64];
    uint64_t part_size, threshold;
    int attempts;
    unsigned max_keys;
    unsigned rng;
    pb_store_s3_stats stats;
    char url[S3_URL_MAX];
    char errbuf[CURL_ERROR_SIZE];
} s3_store;

/* One entry of a listing page. */
typedef struct s3_entry {
    uint64_t size;
    int64_t mtime_ns;
    size_t key_off; /* the key: at this offset of the page's `keys` buffer */
} s3_entry;

/*
 * What the store needs of an S3 XML body, read by expat as the bytes arrive (store_s3_xml.c):
 * the root element's name, an error's Code and Message, an UploadId, and a ListBucketResult's
 * IsTruncated, NextContinuationToken and Contents (Key, Size, LastModified). Memory is bounded:
 * leaf texts by S3_TOKEN_MAX, the page's entries by S3_RESP_MAX.
 */
typedef struct s3_xml {
    void *parser; /* XML_Parser */
    int depth;
    int bad;         /* malformed XML (or too big): what was read before stays */
    const char *why; /* the first problem, for messages */
    char root[64];   /* the root element's name */
    char leaf[64];   /* the element whose text is being collected */
    pb_buf text;     /* its text (bounded: text_over when it did not fit) */
    int text_over;
    int in_contents;   /* inside a ListBucketResult's <Contents> */
    char code[128];    /* Error/Code */
    char message[256]; /* Error/Message */
    char upload_id[1024];
    char token[S3_TOKEN_MAX]; /* NextContinuationToken */
    int truncated;            /* IsTruncated is "true" */
    /* the Contents of a page: entries, and their keys in one buffer */
    s3_entry *entries;
    size_t n, cap;
    pb_buf keys;
    char key[S3_TOKEN_MAX], size_s[32], lm[64]; /* the current Contents */
    int has_key, has_size;
    int contents_bad; /* 1: a Contents without Key or Size; 2: a bad Size */
} s3_xml;

/** Sets up an empty reader (no memory held until the first bytes). */
void s3_xml_init(s3_xml *x);
/** Forgets what was read (a new attempt of the request). */
void s3_xml_reset(s3_xml *x);
/** Feeds `n` bytes of the body; `last` at its end. Problems are kept in x->bad, never fatal
 * here (an error body may be cut or not XML at all). */
void s3_xml_feed(s3_xml *x, const char *data, size_t n, int last);
void s3_xml_dispose(s3_xml *x);
/** Writes `s` escaped as XML text into `b`. */
int s3_xml_escape(pb_buf *b, const char *s, pb_error *err);

/* One request and what came back. */
typedef struct s3_req {
    /* in */
    const char *method; /* GET, HEAD, PUT, POST, DELETE */
    const char *key;    /* the full key, NULL for the bucket itself */
    const char *name;   /* the object's name, for progress */
    const char *query;  /* sorted and encoded, or NULL */
    const char *extra[3];
    int fd; /* a body from a file: [body_off, body_off + body_len) */
    uint64_t body_off, body_len;
    const char *mem; /* or from memory (POST) */
    size_t mem_len;
    int has_body;
    uint64_t range_from; /* GET from this offset (ranged when > 0) */
    pb_sink_fn sink;
    void *sink_payload;
    pb_progress_fn progress;
    void *pp;
    uint64_t prog_base, prog_total;
    size_t resp_max;  /* the most body bytes read into `xml` */
    int error_in_200; /* CompleteMultipartUpload: a 200 may carry an <Error> */
    pb_error *err;
    /* out, per attempt */
    CURL *curl;
    long status;
    int status_seen;
    uint64_t skip; /* bytes to drop when a server ignored the Range */
    s3_xml xml;    /* the body when there is no sink (results, errors) */
    size_t resp_n; /* body bytes fed to xml */
    char etag[S3_ETAG_MAX];
    char code[64];      /* the S3 error code of a failure, "" when none */
    uint64_t sent;      /* body bytes handed to libcurl */
    uint64_t delivered; /* response bytes given to the sink (all attempts) */
    int stop;           /* a PB_E* code: the transfer was stopped by us */
} s3_req;

/* store_s3_http.c */
int s3_curl_init(pb_error *err);
/** RFC 3986 percent-encoding of s (len bytes): everything but A-Za-z0-9-._~ (and '/' when
 * keep_slash), uppercase hex. Returns 0, or -1 when it does not fit in cap. */
int s3_enc(char *out, size_t cap, const char *s, size_t len, int keep_slash);
/** Sets up a request (no memory held until it is performed); release with s3_req_dispose. */
void s3_req_init(s3_req *r, const char *method, pb_error *err);
void s3_req_dispose(s3_req *r);
/** Performs r with retries when `retry` (idempotent requests); 0 on a 2xx. `name` is the
 * object name for messages. */
int s3_perform(s3_store *s, s3_req *r, int retry, const char *what, const char *name);
/** The full key of an object: the prefix and `name`. */
int s3_full_key(char *out, size_t cap, const s3_store *s, const char *name, pb_error *err);

/* store_s3_ops.c and store_s3_put.c */
int s3_stat(pb_store *st, const char *name, pb_store_info *out, pb_error *err);
int s3_read(pb_store *st, const char *name, uint64_t offset, pb_sink_fn sink, void *sink_payload,
            pb_progress_fn progress, void *pp, pb_error *err);
int s3_del(pb_store *st, const char *name, pb_error *err);
int s3_list(pb_store *st, const char *prefix, pb_store_list_fn fn, void *payload, pb_error *err);
/** Lists one page of keys below `full` from `token` (NULL: the start) into r->xml. */
int s3_list_page(s3_store *s, s3_req *r, const char *full, const char *token, unsigned max_keys);
int s3_put(pb_store *st, const char *name, const char *local_path, pb_progress_fn progress,
           void *pp, pb_error *err);

#endif

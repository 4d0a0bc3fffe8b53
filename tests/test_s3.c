/*
 * test_s3.c: the S3 store (transfer/store_s3.c) against a real signature-checking S3 server on
 * 127.0.0.1 (@20minutes/s3rver, installed from the npm registry and started by
 * scripts/s3-test-server, stopped at the end): put/get/stat/list/delete, pagination, wrong keys
 * (clear PB_EAUTH, no secret in the message), a missing bucket, a multipart upload of 7 parts,
 * an interrupted download resumed, connection failures and a proxy failing every request once
 * (503, or a GET cut midway) retried, and rclone as an independent
 * client reading what plexburst wrote (and the reverse), byte for byte; and `plexburst bootstrap`
 * + `sync --store s3://...` end to end (mkplex libraries; home ends equal to an oracle), with a
 * wrong secret failing the sync clearly.
 * Skips (exit 77) only when node/npm cannot run here; rclone missing skips its case alone.
 */
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "plexburst/plex.h"
#include "store.h"
#include "store_s3.h"
#include "transport_config.h"
#include "testutil.h"
#include "transfer_util.h"

#define BUCKET "plexburst-test"
#define AK     "PBTESTKEY0001"
#define SK     "pbtest-secret-0001"
#define MIB    (1024u * 1024u)

static char dir[4096], work[4200], endpoint[128];
static int port;

static void make_file(const char *path, size_t n, unsigned seed)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint32_t x = seed * 2654435761u + 1;
    char buf[65536];
    while (n > 0) {
        size_t k = n < sizeof(buf) ? n : sizeof(buf);
        for (size_t i = 0; i < k; i++) {
            x = x * 1103515245u + 12345u;
            buf[i] = (char)(x >> 16);
        }
        assert_int_equal(fwrite(buf, 1, k, f), k);
        n -= k;
    }
    fclose(f);
}

static int files_equal(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    char ba[65536], bb[65536];
    while (same) {
        size_t na = fread(ba, 1, sizeof(ba), fa), nb = fread(bb, 1, sizeof(bb), fb);
        if (na != nb || memcmp(ba, bb, na) != 0)
            same = 0;
        if (na == 0)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

static void path_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

/* A case's files: the source dir/NAME made of SIZE bytes, and dir/NAME.back to fetch it into. */
typedef struct src_dst {
    char src[4300], dst[4400];
} src_dst;

static void make_src_dst(src_dst *f, const char *name, size_t size, unsigned seed)
{
    path_of(f->src, sizeof(f->src), name);
    snprintf(f->dst, sizeof(f->dst), "%s.back", f->src);
    make_file(f->src, size, seed);
}

/* Environment of the stores opened by the tests (a test may change it and calls this again). */
static void default_env(void)
{
    setenv("PLEXBURST_S3_ENDPOINT", endpoint, 1);
    setenv("PLEXBURST_S3_REGION", "fr-par", 1);
    setenv("AWS_ACCESS_KEY_ID", AK, 1);
    setenv("AWS_SECRET_ACCESS_KEY", SK, 1);
    unsetenv("PLEXBURST_S3_ACCESS_KEY");
    unsetenv("PLEXBURST_S3_SECRET_KEY");
    unsetenv("PLEXBURST_S3_PART_SIZE");
    unsetenv("PLEXBURST_S3_MULTIPART_THRESHOLD");
    unsetenv("PLEXBURST_S3_RETRIES");
    unsetenv("PLEXBURST_S3_LIST_MAX_KEYS");
}

/* Parts of 5 MiB from 5 MiB on: a few MiB make a multipart upload. */
static void small_parts_env(void)
{
    setenv("PLEXBURST_S3_PART_SIZE", "5M", 1);
    setenv("PLEXBURST_S3_MULTIPART_THRESHOLD", "5M", 1);
}

static pb_store *open_store(const char *url)
{
    pb_store *s = NULL;
    pb_error err = PB_ERROR_INIT;
    int rc = pb_transport_config_store_open(&s, url, &err);
    if (rc)
        fprintf(stderr, "open %s: %s\n", url, err.msg);
    assert_int_equal(rc, 0);
    assert_non_null(s);
    assert_string_equal(s->ops->kind, "s3");
    return s;
}

static void no_secret(const pb_error *err)
{
    assert_null(strstr(err->msg, SK));
    assert_null(strstr(err->msg, "wrong-secret"));
    assert_null(strstr(err->msg, AK)); /* the key id is shown by its first characters only */
}

typedef struct listing {
    int n;
    char names[64][128];
    uint64_t sizes[64];
} listing;

static int on_list(const char *name, const pb_store_info *st, void *payload)
{
    listing *l = payload;
    if (l->n < 64) {
        snprintf(l->names[l->n], 128, "%s", name);
        l->sizes[l->n++] = st->size;
    }
    return 0;
}

static int has_name(const listing *l, const char *name)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->names[i], name) == 0)
            return 1;
    return 0;
}

/* ---- set-up: the server ---- */

static int group_setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("s3"));
    snprintf(work, sizeof(work), "%s/server", dir);
    char log[4400];
    snprintf(log, sizeof(log), "%s/setup.log", dir);
    int rc = xu_s3_start(&port, work, log);
    xu_skip_if_absent(rc, "no S3 test server", log);
    if (rc != 0 || port <= 0)
        return -1;
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", port);
    unsetenv("AWS_CA_BUNDLE");
    default_env();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    xu_s3_stop(work);
    tu_sh("rm -rf '%s'", dir);
    return 0;
}

/* ---- cases ---- */

static void test_part_size(void **state)
{
    (void)state;
    assert_int_equal(pb_store_s3_part_size(1, 8 * MIB), 8 * MIB);
    assert_int_equal(pb_store_s3_part_size(100ull * MIB, 0), 5 * MIB);
    assert_int_equal(pb_store_s3_part_size(8000ull * MIB, 8 * MIB), 8 * MIB);
    /* 10 GiB: 10.24 MiB per part rounded up to 11 MiB; never more than 1000 parts */
    uint64_t big = 10ull * 1024 * MIB;
    uint64_t p = pb_store_s3_part_size(big, 8 * MIB);
    assert_int_equal(p, 11 * MIB);
    assert_true((big + p - 1) / p <= 1000);
    uint64_t huge = 4ull * 1024 * 1024 * MIB + 12345;
    p = pb_store_s3_part_size(huge, 5 * MIB);
    assert_true((huge + p - 1) / p <= 1000);
    assert_int_equal(p % MIB, 0);
}

typedef struct kv {
    const char *k[8], *v[8];
} kv;

static const char *lookup(void *ctx, const char *key)
{
    kv *m = ctx;
    for (int i = 0; i < 8 && m->k[i]; i++)
        if (strcmp(m->k[i], key) == 0)
            return m->v[i];
    return NULL;
}

/* What a run does: the settings into the options (transport_config.c), then the store. */
static int s3_new(pb_store **s, const char *url, kv *m, pb_error *err)
{
    pb_store_s3_options o = PB_STORE_S3_OPTIONS_INIT;
    int rc = pb_transport_config_s3(&o, url, lookup, m, err);
    *s = NULL;
    return rc < 0 ? rc : pb_store_s3_new(s, url, &o, err);
}

static void test_settings(void **state)
{
    (void)state;
    pb_store *s = NULL;
    pb_error err = PB_ERROR_INIT;
    /* nothing configured: a clear PB_EINVALID before any request */
    kv none = {{NULL}, {NULL}};
    assert_int_equal(s3_new(&s, "s3://" BUCKET "/x", &none, &err), PB_EINVALID);
    assert_non_null(strstr(err.msg, "PLEXBURST_S3_ENDPOINT"));
    assert_null(s);
    /* no keys */
    pb_error_clear(&err);
    kv nokeys = {{"PLEXBURST_S3_ENDPOINT"}, {endpoint}};
    assert_int_equal(s3_new(&s, "s3://" BUCKET, &nokeys, &err), PB_EINVALID);
    assert_non_null(strstr(err.msg, "AWS_SECRET_ACCESS_KEY"));
    /* credentials in the URL or the endpoint are refused without being echoed */
    pb_error_clear(&err);
    kv ok = {{"PLEXBURST_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"},
             {endpoint, AK, SK}};
    assert_int_equal(s3_new(&s, "s3://" AK ":wrong-secret@" BUCKET, &ok, &err), PB_EINVALID);
    no_secret(&err);
    pb_error_clear(&err);
    assert_int_equal(s3_new(&s, "s3://" BUCKET "/" AK ":wrong-secret@x", &ok, &err), PB_EINVALID);
    no_secret(&err);
    pb_error_clear(&err);
    kv inend = {{"PLEXBURST_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"},
                {"http://" AK ":wrong-secret@127.0.0.1:1", AK, SK}};
    assert_int_equal(s3_new(&s, "s3://" BUCKET, &inend, &err), PB_EINVALID);
    no_secret(&err);
    /* bad bucket, bad prefix, bad tunables */
    pb_error_clear(&err);
    assert_int_equal(s3_new(&s, "s3://ab", &ok, &err), PB_EINVALID);
    pb_error_clear(&err);
    assert_int_equal(s3_new(&s, "s3://" BUCKET "/a/../b", &ok, &err), PB_EINVALID);
    pb_error_clear(&err);
    kv badpart = {{"PLEXBURST_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                   "PLEXBURST_S3_PART_SIZE"},
                  {endpoint, AK, SK, "1M"}};
    assert_int_equal(s3_new(&s, "s3://" BUCKET, &badpart, &err), PB_EINVALID);
    /* the lookup's PLEXBURST_S3_* keys win over AWS_* */
    pb_error_clear(&err);
    kv own = {{"PLEXBURST_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
               "PLEXBURST_S3_ACCESS_KEY", "PLEXBURST_S3_SECRET_KEY"},
              {endpoint, "nobody", "wrong-secret", AK, SK}};
    assert_int_equal(s3_new(&s, "s3://" BUCKET "/own/", &own, &err), 0);
    assert_string_equal(s->url, "s3://" BUCKET "/own");
    pb_store_free(s);
}

static void test_basic(void **state)
{
    (void)state;
    default_env();
    pb_error err = PB_ERROR_INIT;
    src_dst f;
    make_src_dst(&f, "src1", 300000, 1);
    pb_store *s = open_store("s3://" BUCKET "/basic");
    assert_string_equal(s->url, "s3://" BUCKET "/basic");

    assert_int_equal(pb_store_put(s, "runs/r1/upload.zst", f.src, NULL, NULL, &err), 0);
    assert_int_equal(pb_store_put_mem(s, "runs/r1/state.json", "{\"a\":1}", 7, &err), 0);
    assert_int_equal(pb_store_put_mem(s, "baseline/current.json", "{}", 2, &err), 0);
    assert_int_equal(pb_store_put_mem(s, "empty", "", 0, &err), 0);
    pb_store_info st;
    assert_int_equal(pb_store_stat(s, "runs/r1/upload.zst", &st, &err), 0);
    assert_int_equal(st.size, 300000);
    assert_true(st.mtime_ns > (int64_t)(time(NULL) - 3600) * 1000000000);
    assert_int_equal(pb_store_stat(s, "empty", &st, &err), 0);
    assert_int_equal(st.size, 0);
    assert_int_equal(pb_store_stat(s, "runs/r1/nothing", &st, &err), PB_ENOTFOUND);
    assert_non_null(strstr(err.msg, "runs/r1/nothing"));
    pb_error_clear(&err);

    listing l = {0};
    assert_int_equal(pb_store_list(s, "runs/", on_list, &l, &err), 0);
    assert_int_equal(l.n, 2);
    assert_true(has_name(&l, "runs/r1/upload.zst"));
    memset(&l, 0, sizeof(l));
    assert_int_equal(pb_store_list(s, "", on_list, &l, &err), 0);
    assert_int_equal(l.n, 4);
    memset(&l, 0, sizeof(l));
    assert_int_equal(pb_store_list(s, "runs/r1/st", on_list, &l, &err), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.names[0], "runs/r1/state.json");
    assert_int_equal(l.sizes[0], 7);

    uint64_t from = 99, got = 0;
    assert_int_equal(
        pb_store_get_file(s, "runs/r1/upload.zst", f.dst, NULL, NULL, &from, &got, &err), 0);
    assert_int_equal(from, 0);
    assert_int_equal(got, 300000);
    assert_true(files_equal(f.src, f.dst));
    char *data = NULL;
    size_t n = 0;
    assert_int_equal(pb_store_get_mem(s, "runs/r1/state.json", &data, &n, 100, &err), 0);
    assert_int_equal(n, 7);
    assert_string_equal(data, "{\"a\":1}");
    free(data);
    assert_int_equal(pb_store_get_mem(s, "empty", &data, &n, 100, &err), 0);
    assert_int_equal(n, 0);
    free(data);
    assert_int_equal(pb_store_get_mem(s, "runs/r1/upload.zst", &data, &n, 1000, &err), PB_ENOMEM);
    pb_error_clear(&err);
    assert_int_equal(pb_store_get_mem(s, "nothing", &data, &n, 100, &err), PB_ENOTFOUND);
    pb_error_clear(&err);

    /* overwrite is whole */
    assert_int_equal(pb_store_put_mem(s, "runs/r1/state.json", "{\"a\":22}", 8, &err), 0);
    assert_int_equal(pb_store_get_mem(s, "runs/r1/state.json", &data, &n, 100, &err), 0);
    assert_string_equal(data, "{\"a\":22}");
    free(data);

    /* delete; deleting the absent is not an error */
    assert_int_equal(pb_store_del(s, "runs/r1/state.json", &err), 0);
    assert_int_equal(pb_store_stat(s, "runs/r1/state.json", &st, &err), PB_ENOTFOUND);
    pb_error_clear(&err);
    assert_int_equal(pb_store_del(s, "runs/r1/state.json", &err), 0);
    assert_int_equal(pb_store_del_prefix(s, "runs/", &err), 0);
    memset(&l, 0, sizeof(l));
    assert_int_equal(pb_store_list(s, "runs/", on_list, &l, &err), 0);
    assert_int_equal(l.n, 0);
    /* names are checked before any request */
    assert_int_equal(pb_store_put_mem(s, "../x", "a", 1, &err), PB_EUNSAFE);
    pb_store_free(s);
}

static void test_pagination(void **state)
{
    (void)state;
    default_env();
    setenv("PLEXBURST_S3_LIST_MAX_KEYS", "7", 1);
    pb_error err = PB_ERROR_INIT;
    pb_store *s = open_store("s3://" BUCKET "/pages");
    char name[64], body[64];
    for (int i = 0; i < 23; i++) {
        snprintf(name, sizeof(name), "d/%02d/obj-%d.txt", i % 3, i);
        int len = snprintf(body, sizeof(body), "object %d", i);
        assert_int_equal(pb_store_put_mem(s, name, body, (size_t)len, &err), 0);
    }
    assert_int_equal(pb_store_put_mem(s, "other", "x", 1, &err), 0);
    pb_store_s3_stats before, after;
    pb_store_s3_stats_get(s, &before);
    listing l = {0};
    int rc = pb_store_list(s, "d/", on_list, &l, &err);
    if (rc)
        fprintf(stderr, "list: %s\n", err.msg);
    assert_int_equal(rc, 0);
    pb_store_s3_stats_get(s, &after);
    assert_int_equal(l.n, 23);
    assert_true(after.requests - before.requests >= 4); /* 23 keys, 7 per page */
    for (int i = 0; i < 23; i++) {
        snprintf(name, sizeof(name), "d/%02d/obj-%d.txt", i % 3, i);
        assert_true(has_name(&l, name));
    }
    for (int i = 0; i < l.n; i++)
        assert_int_equal(l.sizes[i], strlen("object ") + (l.names[i][10] == '.' ? 1 : 2));
    memset(&l, 0, sizeof(l));
    assert_int_equal(pb_store_list(s, "d/01/", on_list, &l, &err), 0);
    assert_int_equal(l.n, 8);
    /* a callback stopping the listing */
    assert_int_equal(pb_store_del_prefix(s, "d/", &err), 0);
    memset(&l, 0, sizeof(l));
    assert_int_equal(pb_store_list(s, "", on_list, &l, &err), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.names[0], "other");
    pb_store_free(s);
    /* another prefix of the same bucket does not see these */
    s = open_store("s3://" BUCKET "/pages2");
    memset(&l, 0, sizeof(l));
    assert_int_equal(pb_store_list(s, "", on_list, &l, &err), 0);
    assert_int_equal(l.n, 0);
    pb_store_free(s);
    default_env();
}

static void test_wrong_keys(void **state)
{
    (void)state;
    default_env();
    pb_store *s = NULL;
    pb_error err = PB_ERROR_INIT;
    char want[512];

    setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-0001", 1);
    assert_int_equal(pb_transport_config_store_open(&s, "s3://" BUCKET "/auth", &err), PB_EAUTH);
    assert_null(s);
    snprintf(want, sizeof(want),
             "S3 authentication failed for bucket " BUCKET
             " at %s: SignatureDoesNotMatch (check AWS_SECRET_ACCESS_KEY)",
             endpoint);
    assert_string_equal(err.msg, want);
    assert_int_equal(err.dep_code, 403);
    no_secret(&err);

    pb_error_clear(&err);
    setenv("PLEXBURST_S3_SECRET_KEY", "wrong-secret-0002", 1);
    assert_int_equal(pb_transport_config_store_open(&s, "s3://" BUCKET "/auth", &err), PB_EAUTH);
    assert_non_null(strstr(err.msg, "check PLEXBURST_S3_SECRET_KEY"));
    no_secret(&err);

    pb_error_clear(&err);
    default_env();
    setenv("AWS_ACCESS_KEY_ID", "WRONGKEYID42", 1);
    assert_int_equal(pb_transport_config_store_open(&s, "s3://" BUCKET "/auth", &err), PB_EAUTH);
    assert_non_null(strstr(err.msg, "InvalidAccessKeyId"));
    assert_non_null(strstr(err.msg, "WRON..."));
    assert_null(strstr(err.msg, "WRONGKEYID42"));
    no_secret(&err);

    /* a bucket that does not exist */
    pb_error_clear(&err);
    default_env();
    assert_int_equal(pb_transport_config_store_open(&s, "s3://no-such-bucket-here/x", &err),
                     PB_ENOTFOUND);
    assert_non_null(strstr(err.msg, "no-such-bucket-here"));
    default_env();
}

static void test_connect_error(void **state)
{
    (void)state;
    default_env();
    setenv("PLEXBURST_S3_ENDPOINT", "http://127.0.0.1:1", 1);
    setenv("PLEXBURST_S3_RETRIES", "3", 1);
    pb_store *s = NULL;
    pb_error err = PB_ERROR_INIT;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(pb_transport_config_store_open(&s, "s3://" BUCKET, &err), PB_ENET);
    clock_gettime(CLOCK_MONOTONIC, &b);
    assert_int_equal(err.dep_code, CURLE_COULDNT_CONNECT);
    assert_non_null(strstr(err.msg, "after 3 attempts"));
    no_secret(&err);
    /* two backoffs: at least 125 + 250 ms (jitter keeps half of each) */
    double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    assert_true(ms >= 370);
    default_env();
}

typedef struct prog {
    uint64_t last, total, cancel_at;
    int calls, backwards;
} prog;

static int on_progress(const pb_progress *pr, void *payload)
{
    prog *p = payload;
    uint64_t done = pr->bytes_done, total = pr->bytes_total;
    p->calls++;
    if (done < p->last)
        p->backwards++;
    p->last = done;
    p->total = total;
    return p->cancel_at && done >= p->cancel_at;
}

static void test_multipart(void **state)
{
    (void)state;
    default_env();
    small_parts_env();
    pb_error err = PB_ERROR_INIT;
    const size_t size = 6 * 5 * MIB + 123457; /* 7 parts */
    src_dst f;
    make_src_dst(&f, "big", size, 7);
    pb_store *s = open_store("s3://" BUCKET "/mp");
    prog p = {0};
    int rc = pb_store_put(s, "bundles/big.bin", f.src, on_progress, &p, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
    pb_store_s3_stats st;
    pb_store_s3_stats_get(s, &st);
    assert_int_equal(st.multipart, 1);
    assert_int_equal(st.parts, 7);
    assert_int_equal(p.last, size);
    assert_int_equal(p.total, size);
    assert_int_equal(p.backwards, 0);
    pb_store_info si;
    assert_int_equal(pb_store_stat(s, "bundles/big.bin", &si, &err), 0);
    assert_int_equal(si.size, size);
    assert_int_equal(pb_store_get_file(s, "bundles/big.bin", f.dst, NULL, NULL, NULL, NULL, &err),
                     0);
    assert_true(files_equal(f.src, f.dst));

    /* a cancelled multipart upload leaves no object */
    memset(&p, 0, sizeof(p));
    p.cancel_at = 12 * MIB;
    assert_int_equal(pb_store_put(s, "bundles/cancelled.bin", f.src, on_progress, &p, &err),
                     PB_ECANCELLED);
    pb_error_clear(&err);
    assert_int_equal(pb_store_stat(s, "bundles/cancelled.bin", &si, &err), PB_ENOTFOUND);
    pb_store_free(s);
    default_env();
}

static int count_sink(void *payload, const void *data, size_t n, pb_error *err)
{
    (void)data;
    (void)err;
    *(uint64_t *)payload += n;
    return 0;
}

static void test_resume(void **state)
{
    (void)state;
    default_env();
    char part[4420];
    pb_error err = PB_ERROR_INIT;
    const size_t size = 6 * MIB + 777;
    src_dst f;
    make_src_dst(&f, "resume", size, 3);
    snprintf(part, sizeof(part), "%s.part", f.dst);
    pb_store *s = open_store("s3://" BUCKET "/resume");
    assert_int_equal(pb_store_put(s, "f.bin", f.src, NULL, NULL, &err), 0);

    prog p = {0};
    p.cancel_at = 2 * MIB;
    uint64_t from = 0, got = 0;
    assert_int_equal(pb_store_get_file(s, "f.bin", f.dst, on_progress, &p, &from, &got, &err),
                     PB_ECANCELLED);
    assert_int_equal(p.total, size);
    pb_error_clear(&err);
    struct stat ps;
    assert_int_equal(stat(part, &ps), 0);
    assert_true((uint64_t)ps.st_size >= 2 * MIB && (uint64_t)ps.st_size < size);
    assert_int_not_equal(access(f.dst, F_OK), 0);

    memset(&p, 0, sizeof(p));
    assert_int_equal(pb_store_get_file(s, "f.bin", f.dst, on_progress, &p, &from, &got, &err), 0);
    assert_int_equal(from, (uint64_t)ps.st_size);
    assert_int_equal(got, size - (uint64_t)ps.st_size);
    assert_int_equal(p.last, size);
    assert_int_equal(p.total, size);
    assert_true(files_equal(f.src, f.dst));

    /* reading from the very end gives nothing; beyond it is refused */
    uint64_t n = 0;
    assert_int_equal(pb_store_read(s, "f.bin", size, count_sink, &n, NULL, NULL, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(pb_store_read(s, "f.bin", size - 10, count_sink, &n, NULL, NULL, &err), 0);
    assert_int_equal(n, 10);
    assert_int_equal(pb_store_read(s, "f.bin", size + 1, count_sink, &n, NULL, NULL, &err),
                     PB_EINVALID);
    pb_store_free(s);
}

/* rclone as an independent client: reads what plexburst wrote, writes what plexburst reads */
static void test_rclone(void **state)
{
    (void)state;
    default_env();
    char why[1024] = "";
    int rc =
        tu_sh_out(why, sizeof(why), "'%s' rclone 2>&1", tu_source_path("scripts/s3-test-server"));
    if (rc == 77) {
        printf("SKIPPED (rclone): %s\n", why);
        skip();
    }
    assert_int_equal(rc, 0);
    char env[1024];
    snprintf(env, sizeof(env),
             "env -u AWS_CA_BUNDLE RCLONE_CONFIG_S3T_TYPE=s3 RCLONE_CONFIG_S3T_PROVIDER=Other "
             "RCLONE_CONFIG_S3T_ACCESS_KEY_ID=%s RCLONE_CONFIG_S3T_SECRET_ACCESS_KEY=%s "
             "RCLONE_CONFIG_S3T_ENDPOINT=%s RCLONE_CONFIG_S3T_REGION=fr-par "
             "RCLONE_CONFIG_S3T_FORCE_PATH_STYLE=true "
             "rclone --config /dev/null --retries 1 --low-level-retries 1",
             AK, SK, endpoint);

    small_parts_env();
    char small[4300], big[4300], local[4300], back[4300];
    pb_error err = PB_ERROR_INIT;
    path_of(small, sizeof(small), "x/small.bin");
    path_of(big, sizeof(big), "x/big.bin");
    path_of(local, sizeof(local), "x");
    path_of(back, sizeof(back), "back.bin");
    assert_int_equal(tu_sh("mkdir -p '%s'", local), 0);
    make_file(small, 1000003, 11);
    make_file(big, 11 * MIB + 5, 12); /* 3 parts */
    /* the home mtime travels as x-amz-meta-mtime, which rclone reads */
    struct timespec times[2] = {{1262304000, 500000000}, {1262304000, 500000000}};
    assert_int_equal(utimensat(AT_FDCWD, small, times, 0), 0);
    pb_store *s = open_store("s3://" BUCKET "/rc");
    assert_int_equal(pb_store_put(s, "x/small.bin", small, NULL, NULL, &err), 0);
    assert_int_equal(pb_store_put(s, "x/big.bin", big, NULL, NULL, &err), 0);

    char out[4096];
    assert_int_equal(tu_sh("%s cat s3t:" BUCKET "/rc/x/big.bin | cmp - '%s'", env, big), 0);
    assert_int_equal(tu_sh("%s cat s3t:" BUCKET "/rc/x/small.bin | cmp - '%s'", env, small), 0);
    assert_int_equal(tu_sh_out(out, sizeof(out),
                               "%s check --download '%s' s3t:" BUCKET "/rc/x 2>&1", env, local),
                     0);
    assert_non_null(strstr(out, "0 differences found"));
    assert_int_equal(tu_sh_out(out, sizeof(out), "%s lsl s3t:" BUCKET "/rc/x/small.bin", env), 0);
    assert_non_null(strstr(out, "2010-01-01 00:00:00.5"));

    /* the reverse: an object rclone wrote (multipart, 5 MiB chunks) read by plexburst */
    assert_int_equal(tu_sh("%s copyto '%s' s3t:" BUCKET "/rc/from-rclone.bin --s3-chunk-size 5M "
                           "--s3-upload-cutoff 5M",
                           env, big),
                     0);
    assert_int_equal(pb_store_get_file(s, "from-rclone.bin", back, NULL, NULL, NULL, NULL, &err),
                     0);
    assert_true(files_equal(big, back));
    pb_store_free(s);
    default_env();
}

/* every request failing once (503 SlowDown, or a GET cut after 1 MiB) through a proxy: each
 * operation retries alone, downloads continue from where the cut left them */
static void test_retries(void **state)
{
    (void)state;
    default_env();
    char out[64];
    int rc = tu_sh_out(out, sizeof(out), "'%s' flaky '%s' '%s' %d %ld",
                       tu_source_path("scripts/s3-test-server"), tu_build_path("s3rver"), work,
                       port, (long)getpid());
    assert_int_equal(rc, 0);
    char flaky[128];
    snprintf(flaky, sizeof(flaky), "http://127.0.0.1:%d", atoi(out));
    setenv("PLEXBURST_S3_ENDPOINT", flaky, 1);
    small_parts_env();
    pb_error err = PB_ERROR_INIT;
    const size_t size = 11 * MIB + 99; /* 3 parts */
    src_dst f;
    make_src_dst(&f, "flaky", size, 21);

    pb_store *s = open_store("s3://" BUCKET "/flaky");
    assert_int_equal(pb_store_put_mem(s, "small", "hello", 5, &err), 0);
    rc = pb_store_put(s, "big.bin", f.src, NULL, NULL, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
    pb_store_info si;
    assert_int_equal(pb_store_stat(s, "big.bin", &si, &err), 0);
    assert_int_equal(si.size, size);
    prog p = {0};
    rc = pb_store_get_file(s, "big.bin", f.dst, on_progress, &p, NULL, NULL, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_true(files_equal(f.src, f.dst));
    assert_int_equal(p.last, size);
    assert_int_equal(p.backwards, 0);
    assert_int_equal(pb_store_del(s, "small", &err), 0);
    pb_store_s3_stats st;
    pb_store_s3_stats_get(s, &st);
    /* put 1, initiate 1, parts 3, complete 1, HEAD 1, GET cut 11 times, DELETE 1 */
    print_message("flaky proxy: %llu requests, %llu retries\n", (unsigned long long)st.requests,
                  (unsigned long long)st.retries);
    assert_true(st.retries >= 19);
    assert_int_equal(st.parts, 3);
    pb_store_free(s);

    /* with one attempt, the 503 is the answer: PB_ENET, the status in dep_code */
    setenv("PLEXBURST_S3_RETRIES", "1", 1);
    s = open_store("s3://" BUCKET "/flaky");
    pb_error_clear(&err);
    assert_int_equal(pb_store_put_mem(s, "small2", "hello", 5, &err), PB_ENET);
    assert_int_equal(err.dep_code, 503);
    assert_non_null(strstr(err.msg, "SlowDown"));
    pb_store_free(s);
    default_env();
}

/* ---- plexburst bootstrap + sync through the S3 store ---- */

static json_t *run_pb(const char *pb, const char *args, int expect_rc)
{
    static char out[1 << 20];
    int rc = tu_sh_out(out, sizeof(out), "cd '%s' && '%s' %s --json 2>>'%s/e2e.log'", dir, pb, args,
                       dir);
    if (rc != expect_rc) {
        char tail[4096] = "";
        tu_sh_out(tail, sizeof(tail), "tail -20 '%s/e2e.log'", dir);
        print_message("plexburst %s: exit %d, expected %d\n%.2000s\n%s\n", args, rc, expect_rc, out,
                      tail);
    }
    assert_int_equal(rc, expect_rc);
    json_error_t je;
    return json_loads(out, 0, &je);
}

static void test_sync_e2e(void **state)
{
    (void)state;
    default_env();
    char pb[4096], mk[4096], home[4300], oracle[4300], args[16384];
    snprintf(pb, sizeof(pb), "%s", tu_build_path("plexburst"));
    snprintf(mk, sizeof(mk), "%s", tu_build_path("mkplex"));
    if (access(pb, X_OK) != 0 || access(mk, X_OK) != 0) {
        printf("SKIPPED (sync end to end): build plexburst and mkplex first\n");
        skip();
    }
    path_of(home, sizeof(home), "home");
    path_of(oracle, sizeof(oracle), "oracle");
    const char *store = "s3://" BUCKET "/e2e";
    assert_int_equal(xu_mkplex_both(mk, home, oracle, "init --scale tiny --seed 1"), 0);

    snprintf(args, sizeof(args),
             "bootstrap --plex-dir '%s' --store %s --runner \"'%s' init --dir {plex_dir} --scale "
             "tiny --seed 1\"",
             home, store, mk);
    json_t *j = run_pb(pb, args, 0);
    assert_non_null(j);
    assert_true(json_is_true(json_object_get(j, "ok")));
    json_decref(j);

    assert_int_equal(xu_mkplex_both(mk, home, oracle, "stream --seed 101"), 0);
    snprintf(
        args, sizeof(args),
        "sync --plex-dir '%s' --store %s --runner \"'%s' analyze --dir {plex_dir} --seed 201\"",
        home, store, mk);
    j = run_pb(pb, args, 0);
    assert_non_null(j);
    assert_true(json_is_true(json_object_get(j, "ok")));
    assert_string_equal(json_string_value(json_object_get(j, "mode")), "sync");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "upload"), "kind")),
                        "changeset");
    json_int_t down = json_integer_value(json_object_get(json_object_get(j, "bytes"), "down"));
    assert_true(down > 0);
    json_decref(j);
    assert_int_equal(tu_sh("'%s' analyze --dir '%s' --seed 201 >/dev/null", mk, oracle), 0);
    xu_assert_same_library(home, oracle);

    /* the run's objects are in the bucket, under the prefix */
    pb_store *s = open_store(store);
    listing l = {0};
    pb_error err = PB_ERROR_INIT;
    assert_int_equal(pb_store_list(s, "", on_list, &l, &err), 0);
    int runs = 0, baseline = 0;
    for (int i = 0; i < l.n; i++) {
        runs += strncmp(l.names[i], "runs/", 5) == 0;
        baseline += strncmp(l.names[i], "baseline/", 9) == 0;
    }
    assert_true(runs > 0 && baseline > 0);
    pb_store_free(s);

    /* a wrong secret stops the next sync with the clear message, and no secret in the output */
    char out[8192];
    snprintf(args, sizeof(args),
             "cd '%s' && AWS_SECRET_ACCESS_KEY=wrong-secret-0003 '%s' sync --plex-dir '%s' --store "
             "%s --runner true 2>&1",
             dir, pb, home, store);
    assert_int_not_equal(tu_sh_out(out, sizeof(out), "%s", args), 0);
    assert_non_null(strstr(out, "S3 authentication failed for bucket " BUCKET));
    assert_non_null(strstr(out, "SignatureDoesNotMatch"));
    assert_null(strstr(out, "wrong-secret"));
    assert_null(strstr(out, SK));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_part_size),  cmocka_unit_test(test_settings),
        cmocka_unit_test(test_basic),      cmocka_unit_test(test_pagination),
        cmocka_unit_test(test_wrong_keys), cmocka_unit_test(test_connect_error),
        cmocka_unit_test(test_multipart),  cmocka_unit_test(test_resume),
        cmocka_unit_test(test_rclone),     cmocka_unit_test(test_retries),
        cmocka_unit_test(test_sync_e2e),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

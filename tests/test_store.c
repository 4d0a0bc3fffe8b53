/*
 * test_store.c: the local-directory store (transfer/store.h): put/get/stat/list/delete, object
 * name rules, atomic put (an interrupted put leaves the old object, no visible part), resumable
 * get (an interrupted download continues from its part file), small objects in memory.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "testutil.h"
#include "transfer_util.h"

static char dir[4096];

static void make_file(const char *path, size_t n, unsigned seed)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        fputc((int)(x >> 16) & 0xff, f);
    }
    fclose(f);
}

/* The path dir/NAME into out; with SIZE > 0, a file of SIZE random bytes (SEED) made there. */
static void scratch_file(char *out, size_t cap, const char *name, size_t size, unsigned seed)
{
    snprintf(out, cap, "%s/%s", dir, name);
    if (size > 0)
        make_file(out, size, seed);
}

typedef struct listing {
    int n;
    char names[16][256];
} listing;

static int on_list(const char *name, const pb_store_info *st, void *payload)
{
    (void)st;
    listing *l = payload;
    if (l->n < 16)
        snprintf(l->names[l->n++], 256, "%s", name);
    return 0;
}

static void test_basic(void **state)
{
    (void)state;
    char root[4200], src[4200], dst[4200];
    pb_error err = PB_ERROR_INIT;
    scratch_file(root, sizeof(root), "store1", 0, 0);
    scratch_file(src, sizeof(src), "src1", 300000, 1);
    scratch_file(dst, sizeof(dst), "dst1", 0, 0);

    pb_store *s = NULL;
    assert_int_equal(pb_store_open(&s, root, &err), 0);
    assert_string_equal(s->ops->kind, "local");
    assert_int_equal(pb_store_put(s, "runs/r1/upload.zst", src, NULL, NULL, &err), 0);
    assert_int_equal(pb_store_put_mem(s, "runs/r1/state.json", "{\"a\":1}", 7, &err), 0);
    assert_int_equal(pb_store_put_mem(s, "baseline/current.json", "{}", 2, &err), 0);
    pb_store_info st;
    assert_int_equal(pb_store_stat(s, "runs/r1/upload.zst", &st, &err), 0);
    assert_int_equal(st.size, 300000);
    assert_int_equal(pb_store_stat(s, "runs/r1/nothing", &st, &err), PB_ENOTFOUND);

    listing l = {0};
    assert_int_equal(pb_store_list(s, "runs/", on_list, &l, &err), 0);
    assert_int_equal(l.n, 2);
    memset(&l, 0, sizeof(l));
    assert_int_equal(pb_store_list(s, "", on_list, &l, &err), 0);
    assert_int_equal(l.n, 3);
    memset(&l, 0, sizeof(l));
    assert_int_equal(pb_store_list(s, "runs/r1/st", on_list, &l, &err), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.names[0], "runs/r1/state.json");

    uint64_t from = 99, got = 0;
    assert_int_equal(pb_store_get_file(s, "runs/r1/upload.zst", dst, NULL, NULL, &from, &got, &err),
                     0);
    assert_int_equal(from, 0);
    assert_int_equal(got, 300000);
    assert_int_equal(tu_sh("cmp -s '%s' '%s'", src, dst), 0);

    char *mem = NULL;
    size_t n = 0;
    assert_int_equal(pb_store_get_mem(s, "runs/r1/state.json", &mem, &n, 100, &err), 0);
    assert_string_equal(mem, "{\"a\":1}");
    free(mem);
    pb_error_clear(&err);
    assert_int_equal(pb_store_get_mem(s, "runs/r1/upload.zst", &mem, &n, 1000, &err), PB_ENOMEM);
    assert_null(mem);

    /* names */
    const char *bad[] = {"/abs", "a/../b", "..", "a//b", "a/", "sp ace", "x/.pb-tmp-1", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        pb_error_clear(&err);
        assert_int_equal(pb_store_put_mem(s, bad[i], "x", 1, &err), PB_EUNSAFE);
    }

    assert_int_equal(pb_store_del_prefix(s, "runs/r1/", &err), 0);
    assert_int_equal(pb_store_stat(s, "runs/r1/state.json", &st, &err), PB_ENOTFOUND);
    struct stat ds;
    char rdir[4300];
    snprintf(rdir, sizeof(rdir), "%s/runs", root);
    assert_int_equal(stat(rdir, &ds), -1);                            /* emptied directories go */
    assert_int_equal(pb_store_del(s, "runs/r1/state.json", &err), 0); /* absent: fine */
    assert_true(s->bytes_put >= 300000);
    pb_store_free(s);

    pb_error_clear(&err);
    assert_int_equal(pb_store_open(&s, "s3://bucket/prefix", &err), PB_EINVALID);
    assert_int_equal(pb_store_open(&s, "ftp://x", &err), PB_EINVALID);
}

/* A local store in dir/ROOT (its path into root) holding the file SRC as KEY. */
static pb_store *store_holding(char *root, size_t cap, const char *name, const char *key,
                               const char *src)
{
    pb_store *s = NULL;
    pb_error err = PB_ERROR_INIT;
    scratch_file(root, cap, name, 0, 0);
    assert_int_equal(pb_store_local_new(&s, root, &err), 0);
    assert_int_equal(pb_store_put(s, key, src, NULL, NULL, &err), 0);
    return s;
}

static int stop_at(const pb_progress *p, void *payload)
{
    return p->bytes_done >= *(uint64_t *)payload;
}

static void test_atomic_put(void **state)
{
    (void)state;
    char root[4200], v1[4200], v2[4200], dst[4200];
    pb_error err = PB_ERROR_INIT;
    scratch_file(v1, sizeof(v1), "v1", 3000000, 2);
    scratch_file(v2, sizeof(v2), "v2", 5000000, 3);
    scratch_file(dst, sizeof(dst), "dst2", 0, 0);
    pb_store *s = store_holding(root, sizeof(root), "store2", "baseline/main.db.zst", v1);

    /* a put interrupted half way: the old object stays whole, nothing else is visible */
    uint64_t limit = 2000000;
    pb_error_clear(&err);
    assert_int_equal(pb_store_put(s, "baseline/main.db.zst", v2, stop_at, &limit, &err),
                     PB_ECANCELLED);
    listing l = {0};
    assert_int_equal(pb_store_list(s, "", on_list, &l, &err), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(
        pb_store_get_file(s, "baseline/main.db.zst", dst, NULL, NULL, NULL, NULL, &err), 0);
    assert_int_equal(tu_sh("cmp -s '%s' '%s'", v1, dst), 0);
    assert_int_equal(tu_sh("ls -A '%s/baseline' | grep -c pb-tmp", root), 1); /* none left */

    /* the put completes: the new version replaces it */
    assert_int_equal(pb_store_put(s, "baseline/main.db.zst", v2, NULL, NULL, &err), 0);
    unlink(dst);
    assert_int_equal(
        pb_store_get_file(s, "baseline/main.db.zst", dst, NULL, NULL, NULL, NULL, &err), 0);
    assert_int_equal(tu_sh("cmp -s '%s' '%s'", v2, dst), 0);
    pb_store_free(s);
}

static void test_resumable_get(void **state)
{
    (void)state;
    char root[4200], src[4200], dst[4200], part[4300];
    pb_error err = PB_ERROR_INIT;
    scratch_file(src, sizeof(src), "src3", 6 * 1024 * 1024 + 123, 4);
    scratch_file(dst, sizeof(dst), "dst3", 0, 0);
    snprintf(part, sizeof(part), "%s.part", dst);
    pb_store *s = store_holding(root, sizeof(root), "store3", "runs/x/bundle.pbb", src);

    /* interrupted after ~2 MiB: the part file holds what came */
    uint64_t limit = 2 * 1024 * 1024, from = 0, got = 0;
    pb_error_clear(&err);
    assert_int_equal(
        pb_store_get_file(s, "runs/x/bundle.pbb", dst, stop_at, &limit, &from, &got, &err),
        PB_ECANCELLED);
    struct stat st;
    assert_int_equal(stat(part, &st), 0);
    assert_true(st.st_size >= (off_t)limit);
    assert_int_equal(access(dst, F_OK), -1);
    uint64_t had = (uint64_t)st.st_size;

    /* the next call continues from there and moves only the rest */
    assert_int_equal(pb_store_get_file(s, "runs/x/bundle.pbb", dst, NULL, NULL, &from, &got, &err),
                     0);
    assert_int_equal(from, had);
    assert_int_equal(got, 6 * 1024 * 1024 + 123 - had);
    assert_int_equal(access(part, F_OK), -1);
    assert_int_equal(tu_sh("cmp -s '%s' '%s'", src, dst), 0);
    print_message("resumed at %llu, fetched %llu more bytes\n", (unsigned long long)from,
                  (unsigned long long)got);

    /* a part file longer than the object (the object was replaced) starts over */
    unlink(dst);
    make_file(part, 7 * 1024 * 1024, 9);
    assert_int_equal(pb_store_get_file(s, "runs/x/bundle.pbb", dst, NULL, NULL, &from, &got, &err),
                     0);
    assert_int_equal(from, 0);
    assert_int_equal(tu_sh("cmp -s '%s' '%s'", src, dst), 0);

    /* a missing object */
    pb_error_clear(&err);
    assert_int_equal(pb_store_get_file(s, "runs/x/none", dst, NULL, NULL, NULL, NULL, &err),
                     PB_ENOTFOUND);
    pb_store_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_atomic_put),
        cmocka_unit_test(test_resumable_get),
    };
    return XU_RUN_IN_SCRATCH(dir, "store", tests);
}

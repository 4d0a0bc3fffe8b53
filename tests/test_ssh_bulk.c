/*
 * test_ssh_bulk.c: the two helpers of the SSH transport's bulk speed, without a server.
 * transfer/ssh_ctr.c: the AES-CTR offered to libssh2 during the key exchange gives exactly
 * OpenSSL's AES-CTR: 128/192/256-bit keys, the 16-byte calls libssh2 makes and odd-sized ones
 * across the key-stream refills, a counter that wraps over 2^128, a new counter with the same
 * key (init with the IV only), a copied context; a context set up before the engine was
 * withdrawn goes on, one set up after is OpenSSL's own again.
 * transfer/ssh_mem.c: libssh2's allocator keeps freed 4-64 KiB blocks for reuse, keeps the
 * contents through realloc across size classes, caps what it caches and frees it all at the end.
 * Role: unit tests (label unit). Prerequisites: OpenSSL 3, libssh2 headers.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/engine.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ssh_int.h"
#include "testutil.h"

#define N (3 * 4096 + 777)

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (unsigned char)(seed >> 16);
    }
}

static const EVP_CIPHER *ctr_of(int bits)
{
    return bits == 128 ? EVP_aes_128_ctr() : bits == 192 ? EVP_aes_192_ctr() : EVP_aes_256_ctr();
}

/* OpenSSL's AES-CTR (provider) over the whole buffer at once. */
static void reference(int bits, const unsigned char *key, const unsigned char *iv,
                      const unsigned char *in, unsigned char *out, size_t n)
{
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL,
                                     bits == 128   ? "AES-128-CTR"
                                     : bits == 192 ? "AES-192-CTR"
                                                   : "AES-256-CTR",
                                     NULL);
    assert_non_null(c);
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    assert_int_equal(EVP_EncryptInit_ex2(x, c, key, iv, NULL), 1);
    int outl = 0;
    assert_int_equal(EVP_EncryptUpdate(x, out, &outl, in, (int)n), 1);
    assert_int_equal(outl, (int)n);
    EVP_CIPHER_CTX_free(x);
    EVP_CIPHER_free(c);
}

/* What libssh2 1.10 does: EVP_CipherInit with the legacy object, then EVP_Cipher per block. */
static EVP_CIPHER_CTX *libssh2_like(int bits, const unsigned char *key, const unsigned char *iv)
{
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    assert_non_null(x);
    assert_int_equal(EVP_CipherInit(x, ctr_of(bits), key, iv, 1), 1);
    return x;
}

static void run_in_steps(EVP_CIPHER_CTX *x, const unsigned char *in, unsigned char *out, size_t n,
                         const size_t *steps, size_t nsteps)
{
    size_t off = 0;
    for (size_t i = 0; off < n; i++) {
        size_t k = steps[i % nsteps];
        if (k > n - off)
            k = n - off;
        int rc = EVP_Cipher(x, out + off, in + off, (unsigned)k);
        assert_true(rc == 1 || rc == (int)k); /* legacy method: 1; provider: the length */
        off += k;
    }
}

static void test_same_as_openssl(void **state)
{
    (void)state;
    unsigned char *in = malloc(N), *want = malloc(N), *got = malloc(N);
    unsigned char key[32], iv[16];
    const size_t blocks[] = {16}, odd[] = {1, 15, 16, 4095, 33, 4096, 7};
    for (int bits = 128; bits <= 256; bits += 64) {
        for (int wrap = 0; wrap < 2; wrap++) {
            fill(in, N, (unsigned)bits + 1);
            fill(key, sizeof(key), (unsigned)bits + 2);
            fill(iv, sizeof(iv), (unsigned)bits + 3);
            if (wrap) /* 2^128 - 5 blocks: the counter wraps within the first refill */
                memset(iv, 0xff, sizeof(iv)), iv[15] = 0xfb;
            /* OpenSSL's, computed while the engine is not offered (it would be chosen even
             * for a fetched cipher). */
            reference(bits, key, iv, in, want, N);
            pb_ssh__ctr_offer(1);
            EVP_CIPHER_CTX *x = libssh2_like(bits, key, iv);
            assert_non_null(EVP_CIPHER_CTX_get0_cipher(x));
            /* The engine's, not the provider's: the context holds a legacy method. */
            assert_null(EVP_CIPHER_get0_provider(EVP_CIPHER_CTX_get0_cipher(x)));
            run_in_steps(x, in, got, N, blocks, 1);
            assert_memory_equal(got, want, N);
            EVP_CIPHER_CTX_free(x);

            x = libssh2_like(bits, key, iv);
            run_in_steps(x, in, got, N, odd, sizeof(odd) / sizeof(odd[0]));
            assert_memory_equal(got, want, N);
            /* A new counter with the same key. */
            assert_int_equal(EVP_CipherInit(x, NULL, NULL, iv, 1), 1);
            run_in_steps(x, in, got, N, odd, sizeof(odd) / sizeof(odd[0]));
            assert_memory_equal(got, want, N);
            /* A copy made midway goes on from the same point, independently. */
            assert_int_equal(EVP_CipherInit(x, NULL, NULL, iv, 1), 1);
            run_in_steps(x, in, got, 100, blocks, 1);
            EVP_CIPHER_CTX *y = EVP_CIPHER_CTX_new();
            assert_int_equal(EVP_CIPHER_CTX_copy(y, x), 1);
            run_in_steps(y, in + 100, got + 100, N - 100, odd, 2);
            assert_memory_equal(got, want, N);
            memset(got + 100, 0, N - 100);
            run_in_steps(x, in + 100, got + 100, N - 100, blocks, 1);
            assert_memory_equal(got, want, N);
            EVP_CIPHER_CTX_free(y);
            pb_ssh__ctr_offer(0);
            /* Withdrawn: a context set up earlier goes on; a new one is OpenSSL's own. */
            assert_int_equal(EVP_CipherInit(x, NULL, NULL, iv, 1), 1);
            run_in_steps(x, in, got, N, odd, sizeof(odd) / sizeof(odd[0]));
            assert_memory_equal(got, want, N);
            EVP_CIPHER_CTX_free(x);
        }
    }
    EVP_CIPHER_CTX *x = libssh2_like(256, key, iv);
    assert_non_null(EVP_CIPHER_get0_provider(EVP_CIPHER_CTX_get0_cipher(x)));
    run_in_steps(x, in, got, N, blocks, 1);
    assert_memory_equal(got, want, N);
    EVP_CIPHER_CTX_free(x);
    free(in);
    free(want);
    free(got);
}

static void test_allocator(void **state)
{
    (void)state;
    pb_ssh s;
    memset(&s, 0, sizeof(s));
    void *abstract = &s;
    /* Small and large blocks are malloc's; 4-64 KiB ones are cached when freed. */
    unsigned char *small = pb_ssh__mem_alloc(100, &abstract);
    unsigned char *big = pb_ssh__mem_alloc(200000, &abstract);
    assert_non_null(small);
    assert_non_null(big);
    memset(small, 1, 100);
    memset(big, 2, 200000);
    pb_ssh__mem_free(small, &abstract);
    pb_ssh__mem_free(big, &abstract);
    assert_int_equal(s.mem.cached, 0);
    unsigned char *a = pb_ssh__mem_alloc(30013, &abstract);
    assert_non_null(a);
    assert_int_equal((uintptr_t)a % 16, 0);
    fill(a, 30013, 7);
    pb_ssh__mem_free(a, &abstract);
    assert_int_equal(s.mem.cached, 32768);
    unsigned char *b = pb_ssh__mem_alloc(29000, &abstract); /* the same class: the same block */
    assert_ptr_equal(a, b);
    assert_int_equal(s.mem.cached, 0);
    /* realloc keeps the bytes: within the class, to a larger class, to malloc's, and back. */
    fill(b, 29000, 8);
    unsigned char want[29000];
    memcpy(want, b, sizeof(want));
    b = pb_ssh__mem_realloc(b, 29500, &abstract);
    assert_memory_equal(b, want, sizeof(want));
    b = pb_ssh__mem_realloc(b, 60000, &abstract);
    assert_memory_equal(b, want, sizeof(want));
    b = pb_ssh__mem_realloc(b, 300000, &abstract);
    assert_memory_equal(b, want, sizeof(want));
    b = pb_ssh__mem_realloc(b, 400000, &abstract);
    assert_memory_equal(b, want, sizeof(want));
    b = pb_ssh__mem_realloc(b, 5000, &abstract);
    assert_memory_equal(b, want, 5000);
    b = pb_ssh__mem_realloc(b, 100, &abstract);
    assert_memory_equal(b, want, 100);
    pb_ssh__mem_free(b, &abstract);
    pb_ssh__mem_free(NULL, &abstract);
    unsigned char *n = pb_ssh__mem_realloc(NULL, 40000, &abstract);
    assert_non_null(n);
    pb_ssh__mem_free(n, &abstract);
    /* The cache is capped: 400 blocks of 64 KiB freed, at most PB_SSH_MEM_CAP kept. */
    void *many[400];
    for (int i = 0; i < 400; i++)
        assert_non_null(many[i] = pb_ssh__mem_alloc(65536, &abstract));
    for (int i = 0; i < 400; i++)
        pb_ssh__mem_free(many[i], &abstract);
    assert_true(s.mem.cached <= PB_SSH_MEM_CAP);
    assert_true(s.mem.cached >= PB_SSH_MEM_CAP - 65536);
    pb_ssh__mem_drain(&s.mem);
    assert_int_equal(s.mem.cached, 0);
    for (int i = 0; i < PB_SSH_MEM_CLASSES; i++)
        assert_null(s.mem.free[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_as_openssl),
        cmocka_unit_test(test_allocator),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

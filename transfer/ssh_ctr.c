/*
 * ssh_ctr.c: AES-CTR for libssh2 in bulk. libssh2 1.10 encrypts and decrypts every SSH packet
 * one 16-byte block per EVP_Cipher() call; through OpenSSL 3's provider layer each call costs
 * about 25 ns, so the cipher alone took ~1.6 s of CPU per GiB (a third of a download's client
 * CPU), where AES-NI needs ~0.15 s. While a session does its key exchange (libssh2 sets up its
 * ciphers there), this file offers OpenSSL an ENGINE with aes128-ctr, aes192-ctr and aes256-ctr
 * whose block call only XORs: the key stream is made KS bytes at a time, counter blocks
 * encrypted by OpenSSL's AES-ECB in one call. The result is AES-CTR exactly (SSH's 128-bit
 * big-endian counter, RFC 4344), so whichever implementation a context gets, the bytes are
 * the same: a context set up outside the key exchange (e.g. a rekey, or another user of
 * AES-CTR in the process while the engine is offered) still works, at OpenSSL's speed or ours.
 * Role: part of transfer/ssh (ssh_int.h). Prerequisites: OpenSSL 3 with engines (Debian 12),
 * libssh2 1.10 on OpenSSL.
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* the ENGINE and EVP_CIPHER_meth_* API (OpenSSL 3) */
#include <openssl/engine.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "ssh_int.h"

#define KS 4096 /* key stream bytes made at once */

typedef struct ctr_ctx {
    EVP_CIPHER_CTX *ecb;   /* AES-ECB with the key: counter blocks -> key stream */
    unsigned char ctr[16]; /* the counter of ks[0] (or of the next block when len == 0) */
    unsigned char ks[KS];  /* key stream; ks[pos..len) unused */
    unsigned char blk[KS]; /* counter blocks being encrypted */
    size_t pos, len;
} ctr_ctx;

static void ctr_add(unsigned char c[16], size_t n)
{
    for (int i = 15; i >= 0 && n; i--) {
        n += c[i];
        c[i] = (unsigned char)n;
        n >>= 8;
    }
}

static uint64_t load_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void store_be64(unsigned char *p, uint64_t v)
{
    v = __builtin_bswap64(v);
    memcpy(p, &v, 8);
}

/* The next KS bytes of key stream, from the counter after the current ones. */
static int refill(ctr_ctx *c)
{
    ctr_add(c->ctr, c->len / 16);
    uint64_t hi = load_be64(c->ctr), lo = load_be64(c->ctr + 8);
    for (size_t i = 0; i < KS; i += 16) {
        store_be64(c->blk + i, hi);
        store_be64(c->blk + i + 8, lo);
        if (++lo == 0)
            hi++;
    }
    int out = 0;
    if (!EVP_EncryptUpdate(c->ecb, c->ks, &out, c->blk, KS) || out != KS)
        return 0;
    c->pos = 0;
    c->len = KS;
    return 1;
}

static void xor_bytes(unsigned char *out, const unsigned char *in, const unsigned char *ks,
                      size_t k)
{
    size_t i = 0;
    for (; i + 8 <= k; i += 8) {
        uint64_t a, b;
        memcpy(&a, in + i, 8);
        memcpy(&b, ks + i, 8);
        a ^= b;
        memcpy(out + i, &a, 8);
    }
    for (; i < k; i++)
        out[i] = in[i] ^ ks[i];
}

static const EVP_CIPHER *ecb_of(int key_len)
{
    return key_len == 16   ? EVP_aes_128_ecb()
           : key_len == 24 ? EVP_aes_192_ecb()
                           : EVP_aes_256_ecb();
}

/* (key, iv): a new key and counter; (NULL, iv): a new counter; (key, NULL): a new key, going on
 * from the block after the current one, as OpenSSL's own CTR does. */
static int ctr_init(EVP_CIPHER_CTX *ctx, const unsigned char *key, const unsigned char *iv, int enc)
{
    (void)enc; /* CTR: the same both ways */
    ctr_ctx *c = EVP_CIPHER_CTX_get_cipher_data(ctx);
    if (key) {
        if (!iv) {
            if (c->ecb) /* the counter after the last block used */
                ctr_add(c->ctr, (c->pos + 15) / 16);
            else
                memcpy(c->ctr, EVP_CIPHER_CTX_iv(ctx), 16);
        }
        if (!c->ecb && !(c->ecb = EVP_CIPHER_CTX_new()))
            return 0;
        if (!EVP_EncryptInit_ex(c->ecb, ecb_of(EVP_CIPHER_CTX_get_key_length(ctx)), NULL, key,
                                NULL))
            return 0;
        EVP_CIPHER_CTX_set_padding(c->ecb, 0);
    }
    if (iv)
        memcpy(c->ctr, iv, sizeof(c->ctr));
    c->pos = c->len = 0;
    return 1;
}

static int ctr_cipher(EVP_CIPHER_CTX *ctx, unsigned char *out, const unsigned char *in, size_t n)
{
    ctr_ctx *c = EVP_CIPHER_CTX_get_cipher_data(ctx);
    if (!c->ecb)
        return 0;
    if (n == 16 && c->len - c->pos >= 16) { /* libssh2's call: one block */
        xor_bytes(out, in, c->ks + c->pos, 16);
        c->pos += 16;
        return 1;
    }
    while (n > 0) {
        if (c->pos == c->len && !refill(c))
            return 0;
        size_t k = c->len - c->pos < n ? c->len - c->pos : n;
        xor_bytes(out, in, c->ks + c->pos, k);
        c->pos += k;
        in += k;
        out += k;
        n -= k;
    }
    return 1;
}

static int ctr_cleanup(EVP_CIPHER_CTX *ctx)
{
    ctr_ctx *c = EVP_CIPHER_CTX_get_cipher_data(ctx);
    if (c) {
        EVP_CIPHER_CTX_free(c->ecb);
        OPENSSL_cleanse(c, sizeof(*c)); /* key stream and counter */
    }
    return 1;
}

/* EVP_CIPHER_CTX_copy: the copy gets its own ECB context. */
static int ctr_ctrl(EVP_CIPHER_CTX *ctx, int type, int arg, void *ptr)
{
    (void)ctx;
    (void)arg;
    if (type != EVP_CTRL_COPY)
        return -1;
    ctr_ctx *d = EVP_CIPHER_CTX_get_cipher_data(ptr);
    if (!d->ecb)
        return 1;
    EVP_CIPHER_CTX *e = EVP_CIPHER_CTX_new();
    if (!e || !EVP_CIPHER_CTX_copy(e, d->ecb)) {
        EVP_CIPHER_CTX_free(e);
        d->ecb = NULL;
        return 0;
    }
    d->ecb = e;
    return 1;
}

static const int nids[3] = {NID_aes_128_ctr, NID_aes_192_ctr, NID_aes_256_ctr};
static EVP_CIPHER *meths[3];
static ENGINE *engine;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned holds;

static int ciphers(ENGINE *e, const EVP_CIPHER **cipher, const int **list, int nid)
{
    (void)e;
    if (!cipher) {
        *list = nids;
        return 3;
    }
    for (int i = 0; i < 3; i++)
        if (nid == nids[i] && meths[i]) {
            *cipher = meths[i];
            return 1;
        }
    *cipher = NULL;
    return 0;
}

static int make_engine(void)
{
    for (int i = 0; i < 3; i++) {
        EVP_CIPHER *m = EVP_CIPHER_meth_new(nids[i], 1, 16 + 8 * i);
        if (!m || !EVP_CIPHER_meth_set_iv_length(m, 16) ||
            !EVP_CIPHER_meth_set_flags(m, EVP_CIPH_CTR_MODE | EVP_CIPH_ALWAYS_CALL_INIT |
                                              EVP_CIPH_CUSTOM_COPY) ||
            !EVP_CIPHER_meth_set_init(m, ctr_init) ||
            !EVP_CIPHER_meth_set_do_cipher(m, ctr_cipher) ||
            !EVP_CIPHER_meth_set_cleanup(m, ctr_cleanup) ||
            !EVP_CIPHER_meth_set_ctrl(m, ctr_ctrl) ||
            !EVP_CIPHER_meth_set_impl_ctx_size(m, sizeof(ctr_ctx))) {
            EVP_CIPHER_meth_free(m);
            return 0;
        }
        meths[i] = m;
    }
    ENGINE *e = ENGINE_new();
    if (!e || !ENGINE_set_id(e, "plexburst-ssh-ctr") ||
        !ENGINE_set_name(e, "plexburst: AES-CTR with the key stream made in bulk") ||
        !ENGINE_set_ciphers(e, ciphers)) {
        ENGINE_free(e);
        return 0;
    }
    engine = e; /* lives as long as the process: contexts keep using it */
    return 1;
}

void pb_ssh__ctr_offer(int on)
{
    if (on) { /* the process's random generators set up with OpenSSL's AES-CTR, not ours */
        unsigned char b;
        RAND_bytes(&b, 1);
        RAND_priv_bytes(&b, 1);
    }
    pthread_mutex_lock(&lock);
    if (on) {
        if (holds++ == 0 && (engine || make_engine()))
            ENGINE_set_default_ciphers(engine);
    } else if (holds > 0 && --holds == 0 && engine) {
        ENGINE_unregister_ciphers(engine);
    }
    pthread_mutex_unlock(&lock);
}

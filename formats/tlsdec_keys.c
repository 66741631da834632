/* SPDX-License-Identifier: MIT */
#include "tlsdec_int.h"

#include <stdbool.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

/* Cipher suites, the TLS 1.3 and 1.2 key schedules, and AEAD record protection. */

#define TAG_LEN 16

static const struct suite suites[] = {
    {0x1301, TLSDEC_VERSION_TLS13, AES128GCM, 16, 32, "SHA256", "TLS_AES_128_GCM_SHA256"},
    {0x1302, TLSDEC_VERSION_TLS13, AES256GCM, 32, 48, "SHA384", "TLS_AES_256_GCM_SHA384"},
    {0x1303, TLSDEC_VERSION_TLS13, CHACHA, 32, 32, "SHA256", "TLS_CHACHA20_POLY1305_SHA256"},
    {0xc02b, TLSDEC_VERSION_TLS12, AES128GCM, 16, 32, "SHA256",
     "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"},
    {0xc02c, TLSDEC_VERSION_TLS12, AES256GCM, 32, 48, "SHA384",
     "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"},
    {0xc02f, TLSDEC_VERSION_TLS12, AES128GCM, 16, 32, "SHA256",
     "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"},
    {0xc030, TLSDEC_VERSION_TLS12, AES256GCM, 32, 48, "SHA384",
     "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"},
    {0xcca8, TLSDEC_VERSION_TLS12, CHACHA, 32, 32, "SHA256",
     "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"},
    {0xcca9, TLSDEC_VERSION_TLS12, CHACHA, 32, 32, "SHA256",
     "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"},
    {0xccaa, TLSDEC_VERSION_TLS12, CHACHA, 32, 32, "SHA256",
     "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256"},
    {0x009c, TLSDEC_VERSION_TLS12, AES128GCM, 16, 32, "SHA256", "TLS_RSA_WITH_AES_128_GCM_SHA256"},
    {0x009d, TLSDEC_VERSION_TLS12, AES256GCM, 32, 48, "SHA384", "TLS_RSA_WITH_AES_256_GCM_SHA384"},
    {0x009e, TLSDEC_VERSION_TLS12, AES128GCM, 16, 32, "SHA256",
     "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"},
    {0x009f, TLSDEC_VERSION_TLS12, AES256GCM, 32, 48, "SHA384",
     "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"},
};

const struct suite *tlsdec_keys_find_suite(uint16_t id, uint16_t version)
{
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++) {
        if (suites[i].id == id && suites[i].version == version)
            return &suites[i];
    }
    return NULL;
}

/* ---- key derivation ---- */

static EVP_KDF *kdf_get(EVP_KDF **slot, const char *name)
{
    if (!*slot)
        *slot = EVP_KDF_fetch(NULL, name, NULL);
    return *slot;
}

/* HKDF-Expand-Label(secret, label, "", outlen) of RFC 8446, 7.1. */
static bool expand_label(tlsdec_t *t, const uint8_t *secret, size_t slen, const char *label,
                         uint8_t *out, size_t outlen)
{
    uint8_t info[2 + 1 + 255 + 1];
    size_t llen = strlen(label), n = 0;
    info[n++] = (uint8_t)(outlen >> 8);
    info[n++] = (uint8_t)outlen;
    info[n++] = (uint8_t)(6 + llen);
    memcpy(info + n, "tls13 ", 6);
    memcpy(info + n + 6, label, llen);
    n += 6 + llen;
    info[n++] = 0; /* empty context */

    EVP_KDF *kdf = kdf_get(&t->hkdf, "HKDF");
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    if (!kctx)
        return false;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MODE, (char *)"EXPAND_ONLY", 0),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)t->suite->md, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, slen),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n),
        OSSL_PARAM_construct_end(),
    };
    bool ok = EVP_KDF_derive(kctx, out, outlen, params) == 1;
    EVP_KDF_CTX_free(kctx);
    return ok;
}

/* The TLS 1.2 key block: PRF(master, "key expansion", server_random + client_random). */
static bool key_block(tlsdec_t *t, const uint8_t *master, size_t mlen, size_t outlen)
{
    uint8_t seed[13 + 64];
    memcpy(seed, "key expansion", 13);
    memcpy(seed + 13, t->server_random, 32);
    memcpy(seed + 45, t->client_random, 32);
    EVP_KDF *kdf = kdf_get(&t->prf, "TLS1-PRF");
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    if (!kctx)
        return false;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)t->suite->md, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET, (void *)master, mlen),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, seed, sizeof seed),
        OSSL_PARAM_construct_end(),
    };
    bool ok = EVP_KDF_derive(kctx, t->key_block, outlen, params) == 1;
    EVP_KDF_CTX_free(kctx);
    return ok;
}

static const EVP_CIPHER *aead_cipher(int aead)
{
    switch (aead) {
    case AES128GCM:
        return EVP_aes_128_gcm();
    case AES256GCM:
        return EVP_aes_256_gcm();
    default:
        return EVP_chacha20_poly1305();
    }
}

/* Keys k with key and iv; the cipher context is made once and re-keyed after. */
static bool keys_set(tlsdec_t *t, struct keys *k, const uint8_t *key, const uint8_t *iv,
                     size_t ivlen)
{
    if (!k->ctx && !(k->ctx = EVP_CIPHER_CTX_new()))
        return false;
    if (EVP_DecryptInit_ex(k->ctx, aead_cipher(t->suite->aead), NULL, key, NULL) != 1)
        return false;
    memcpy(k->iv, iv, ivlen);
    k->seq = 0;
    k->ready = true;
    return true;
}

/* Keys k from a TLS 1.3 traffic secret. */
static bool keys_set13(tlsdec_t *t, struct keys *k, const uint8_t *secret)
{
    uint8_t key[32], iv[NONCE_LEN];
    size_t hl = t->suite->hashlen;
    if (!expand_label(t, secret, hl, "key", key, t->suite->keylen) ||
        !expand_label(t, secret, hl, "iv", iv, sizeof iv) || !keys_set(t, k, key, iv, sizeof iv))
        return false;
    memmove(k->secret, secret, hl);
    return true;
}

static keylog_label_t label13(int dir, enum phase ph)
{
    if (dir == TLSDEC_DIR_CLIENT) {
        return ph == PH_EARLY       ? KEYLOG_CLIENT_EARLY_TRAFFIC_SECRET
               : ph == PH_HANDSHAKE ? KEYLOG_CLIENT_HANDSHAKE_TRAFFIC_SECRET
                                    : KEYLOG_CLIENT_TRAFFIC_SECRET_0;
    }
    return ph == PH_HANDSHAKE ? KEYLOG_SERVER_HANDSHAKE_TRAFFIC_SECRET
                              : KEYLOG_SERVER_TRAFFIC_SECRET_0;
}

int tlsdec_keys_install13(tlsdec_t *t, int dir, struct keys *k, enum phase ph, bool quiet)
{
    keylog_label_t label = label13(dir, ph);
    uint8_t secret[KEYLOG_SECRET_MAX];
    size_t slen = sizeof secret;
    if (!t->kl || keylog_find(t->kl, label, t->client_random, secret, &slen) != 0)
        return quiet ? R_HOLD : tlsdec_no_secrets(t, dir, label);
    if (slen != t->suite->hashlen)
        return tlsdec_fail(t, dir, "%s has %zu bytes, %s needs %u", keylog_label_name(label), slen,
                           t->suite->name, t->suite->hashlen);
    if (!keys_set13(t, k, secret))
        return tlsdec_fail_crypto(t, dir, "TLS 1.3 key derivation");
    return R_OK;
}

/* Installs the TLS 1.2 keys of a direction, computing the key block once. */
int tlsdec_keys_install12(tlsdec_t *t, int dir)
{
    const struct suite *s = t->suite;
    size_t ivlen = s->aead == CHACHA ? NONCE_LEN : 4;
    if (!t->kb_ready) {
        uint8_t master[KEYLOG_SECRET_MAX];
        size_t mlen = sizeof master;
        if (!t->kl ||
            keylog_find(t->kl, KEYLOG_CLIENT_RANDOM, t->client_random, master, &mlen) != 0)
            return tlsdec_no_secrets(t, dir, KEYLOG_CLIENT_RANDOM);
        if (mlen != 48)
            return tlsdec_fail(t, dir, "CLIENT_RANDOM has %zu bytes, a master secret has 48", mlen);
        if (!key_block(t, master, mlen, 2 * (s->keylen + ivlen)))
            return tlsdec_fail_crypto(t, dir, "TLS 1.2 key expansion");
        t->kb_ready = true;
    }
    const uint8_t *key = t->key_block + (dir == TLSDEC_DIR_CLIENT ? 0 : s->keylen);
    const uint8_t *iv = t->key_block + 2 * s->keylen + (dir == TLSDEC_DIR_CLIENT ? 0 : ivlen);
    if (!keys_set(t, &t->d[dir].cur, key, iv, ivlen))
        return tlsdec_fail_crypto(t, dir, "TLS 1.2 key setup");
    return R_OK;
}

/* Applies a key change announced in the record just processed (TLS 1.3). */
int tlsdec_keys_apply_pending(tlsdec_t *t, int dir)
{
    struct dir *d = &t->d[dir];
    enum pending p = d->pending;
    d->pending = PEND_NONE;
    if (p != PEND_NONE && d->hs_hdr_len > 0)
        return tlsdec_fail(t, dir, "handshake message spans a key change");
    switch (p) {
    case PEND_NONE:
        break;
    case PEND_APP:
        d->phase = PH_APP;
        d->cur.ready = false; /* the secret is looked up when the next record needs it */
        break;
    case PEND_UPDATE: {
        uint8_t next[HASH_MAX];
        if (!expand_label(t, d->cur.secret, t->suite->hashlen, "traffic upd", next,
                          t->suite->hashlen) ||
            !keys_set13(t, &d->cur, next))
            return tlsdec_fail_crypto(t, dir, "KeyUpdate");
        break;
    }
    case PEND_HANDSHAKE: {
        d->phase = PH_HANDSHAKE;
        struct keys k = d->cur;
        d->cur = d->alt;
        d->alt = k;
        break;
    }
    }
    return R_OK;
}

/* ---- record protection ---- */

static void nonce_xor(uint8_t *nonce, const uint8_t *iv, uint64_t seq)
{
    memcpy(nonce, iv, NONCE_LEN);
    for (int i = 0; i < 8; i++)
        nonce[NONCE_LEN - 1 - i] ^= (uint8_t)(seq >> (8 * i));
}

/* Decrypts and authenticates in (ciphertext then tag) into out. */
static int aead_open(EVP_CIPHER_CTX *ctx, const uint8_t *nonce, const uint8_t *aad, size_t aadlen,
                     const uint8_t *in, size_t inlen, uint8_t *out, size_t *outlen)
{
    if (inlen < TAG_LEN)
        return DEC_MALFORMED;
    size_t ctlen = inlen - TAG_LEN;
    uint8_t tag[TAG_LEN];
    int n = 0, m = 0;
    memcpy(tag, in + ctlen, TAG_LEN);
    if (EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1 ||
        EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1 ||
        EVP_DecryptUpdate(ctx, out, &n, in, (int)ctlen) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, tag) != 1)
        return DEC_CRYPTO;
    if (EVP_DecryptFinal_ex(ctx, out + n, &m) != 1) {
        ERR_clear_error();
        return DEC_BADTAG;
    }
    *outlen = (size_t)n + (size_t)m;
    return DEC_OK;
}

/* TLS 1.3: opens a record and strips the padding; *type is the inner content type. */
int tlsdec_keys_open13(struct keys *k, const uint8_t *hdr, const uint8_t *body, size_t len,
                       uint8_t *out, size_t *outlen, int *type)
{
    uint8_t nonce[NONCE_LEN];
    nonce_xor(nonce, k->iv, k->seq);
    size_t n;
    int r = aead_open(k->ctx, nonce, hdr, HDR_LEN, body, len, out, &n);
    if (r != DEC_OK)
        return r;
    k->seq++;
    while (n > 0 && out[n - 1] == 0)
        n--;
    if (n == 0)
        return DEC_MALFORMED;
    *type = out[n - 1];
    *outlen = n - 1;
    return DEC_OK;
}

/* TLS 1.2 AEAD (RFC 5288 GCM with explicit nonce, RFC 7905 ChaCha20-Poly1305). */
int tlsdec_keys_open12(tlsdec_t *t, struct keys *k, const uint8_t *hdr, const uint8_t *body,
                       size_t len, uint8_t *out, size_t *outlen)
{
    uint8_t nonce[NONCE_LEN], aad[13];
    if (t->suite->aead == CHACHA) {
        nonce_xor(nonce, k->iv, k->seq);
    } else {
        if (len < 8)
            return DEC_MALFORMED;
        memcpy(nonce, k->iv, 4);
        memcpy(nonce + 4, body, 8);
        body += 8;
        len -= 8;
    }
    if (len < TAG_LEN)
        return DEC_MALFORMED;
    size_t plen = len - TAG_LEN;
    for (int i = 0; i < 8; i++)
        aad[i] = (uint8_t)(k->seq >> (56 - 8 * i));
    memcpy(aad + 8, hdr, 3);
    aad[11] = (uint8_t)(plen >> 8);
    aad[12] = (uint8_t)plen;
    int r = aead_open(k->ctx, nonce, aad, sizeof aad, body, len, out, outlen);
    if (r == DEC_OK)
        k->seq++;
    return r;
}

int tlsdec_keys_open_failed(tlsdec_t *t, int dir, int r)
{
    if (r == DEC_BADTAG)
        return tlsdec_fail(t, dir, "decryption failed (bad record MAC)");
    if (r == DEC_MALFORMED)
        return tlsdec_fail(t, dir, "malformed encrypted record");
    return tlsdec_fail_crypto(t, dir, "record decryption");
}

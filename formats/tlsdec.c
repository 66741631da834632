/* SPDX-License-Identifier: MIT */
#include "tlsdec.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#define CT_CHANGE_CIPHER_SPEC 20
#define CT_ALERT 21
#define CT_HANDSHAKE 22
#define CT_APPLICATION_DATA 23
#define CT_HEARTBEAT 24

#define HS_HELLO_REQUEST 0
#define HS_CLIENT_HELLO 1
#define HS_SERVER_HELLO 2
#define HS_END_OF_EARLY_DATA 5
#define HS_ENCRYPTED_EXTENSIONS 8
#define HS_FINISHED 20
#define HS_KEY_UPDATE 24

#define EXT_SERVER_NAME 0
#define EXT_ALPN 16
#define EXT_EARLY_DATA 42
#define EXT_SUPPORTED_VERSIONS 43

#define HDR_LEN 5
#define TAG_LEN 16
#define NONCE_LEN 12
#define HASH_MAX 48
#define HS_MAX (64 * 1024) /* longest handshake message we keep (hellos, EE) */
#define ALPN_LIST_MAX 512

/* The ServerHello random that marks a HelloRetryRequest (RFC 8446, 4.1.3). */
static const uint8_t hrr_random[32] = {
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
};

enum aead { AES128GCM, AES256GCM, CHACHA };

struct suite {
    uint16_t id;
    uint16_t version;
    uint8_t aead;
    uint8_t keylen;
    uint8_t hashlen;
    const char *md;
    const char *name;
};

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

/*
 * Key epochs of a direction. TLS 1.3 moves PLAIN -> (EARLY) -> HANDSHAKE ->
 * APP; TLS 1.2 moves PLAIN -> TLS12 at ChangeCipherSpec.
 */
enum phase { PH_PLAIN, PH_EARLY, PH_HANDSHAKE, PH_APP, PH_TLS12 };

/* Key changes that take effect after the record that announced them. */
enum pending { PEND_NONE, PEND_APP, PEND_UPDATE, PEND_HANDSHAKE };

/* on_record results. */
enum { R_OK, R_HOLD, R_FAIL };

/* aead_open results. */
enum { DEC_OK, DEC_BADTAG, DEC_MALFORMED, DEC_CRYPTO };

struct keys {
    EVP_CIPHER_CTX *ctx;   /* created once, re-keyed in place */
    uint8_t iv[NONCE_LEN]; /* TLS 1.3 and ChaCha: the full IV; TLS 1.2 GCM: 4-byte salt */
    uint64_t seq;
    uint8_t secret[HASH_MAX]; /* TLS 1.3 traffic secret, for KeyUpdate */
    bool ready;
    bool missing; /* looked up and not found (0-RTT trial only) */
};

struct dir {
    uint8_t *buf; /* a partial record, or everything held */
    size_t len, cap;
    uint8_t *plain; /* TLSDEC_RECORD_MAX bytes, once decrypting */
    bool failed, held;
    enum phase phase;
    enum pending pending;
    struct keys cur;
    struct keys alt;   /* handshake keys tried while 0-RTT data may come */
    uint8_t hs_hdr[4]; /* handshake message reassembly */
    size_t hs_hdr_len;
    uint32_t hs_len, hs_got;
    uint8_t *hs;
    size_t hs_cap;
};

struct tlsdec {
    const keylog_t *kl;
    tlsdec_callbacks_t cb;
    void *opaque;
    struct dir d[2];
    EVP_KDF *hkdf, *prf; /* fetched when first needed */
    const struct suite *suite;
    uint16_t version, suite_id;
    bool ch_seen, sh_seen, hrr_seen, ee_seen;
    bool info_sent, secrets_reported, nomem;
    bool early_offered;
    int early_accepted; /* -1 unknown, 0 no, 1 yes */
    bool kb_ready;
    uint8_t key_block[2 * (32 + NONCE_LEN)];
    uint8_t client_random[32], server_random[32];
    char sni[256], alpn[256];
    uint8_t alpn_offered[ALPN_LIST_MAX];
    size_t alpn_offered_len;
};

/* ---- errors ---- */

static int fail(tlsdec_t *t, int dir, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void emit_info(tlsdec_t *t, bool force);

/* Stops decrypting a direction; the server's end also ends the wait for its hello info. */
static void stop(tlsdec_t *t, int dir)
{
    struct dir *d = &t->d[dir];
    d->failed = true;
    d->held = false;
    d->len = 0;
    if (dir == TLSDEC_DIR_SERVER)
        emit_info(t, true);
}

static int fail(tlsdec_t *t, int dir, const char *fmt, ...)
{
    if (t->d[dir].failed)
        return R_FAIL;
    stop(t, dir);
    if (t->cb.on_error) {
        char msg[200];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        t->cb.on_error(t->opaque, dir, msg);
    }
    return R_FAIL;
}

/* Stops both directions: what the connection needs can't be had. */
static int fail_conn(tlsdec_t *t, int dir, const char *msg)
{
    fail(t, dir, "%s", msg);
    stop(t, 1 - dir);
    return R_FAIL;
}

/*
 * The one place that reads OpenSSL's error queue. It is emptied, so that no
 * error of ours reaches SSL_get_error() elsewhere in the thread.
 */
static int fail_crypto(tlsdec_t *t, int dir, const char *what)
{
    unsigned long e, last = 0;
    while ((e = ERR_get_error()) != 0)
        last = e;
    char reason[128] = "unknown error";
    if (last)
        ERR_error_string_n(last, reason, sizeof reason);
    return fail(t, dir, "%s failed: %s", what, reason);
}

static int fail_nomem(tlsdec_t *t, int dir)
{
    t->nomem = true;
    stop(t, dir);
    return R_FAIL;
}

static int no_secrets(tlsdec_t *t, int dir, keylog_label_t label)
{
    if (t->secrets_reported) {
        stop(t, dir);
        return R_FAIL;
    }
    t->secrets_reported = true;
    return fail(t, dir, "no secrets for this connection (%s missing)", keylog_label_name(label));
}

/* ---- buffers ---- */

static bool grow(uint8_t **buf, size_t *cap, size_t need, size_t limit)
{
    if (need <= *cap)
        return true;
    if (need > limit)
        return false;
    size_t ncap = *cap ? *cap * 2 : 1024;
    if (ncap < need)
        ncap = need;
    if (ncap > limit)
        ncap = limit;
    uint8_t *n = realloc(*buf, ncap);
    if (!n)
        return false;
    *buf = n;
    *cap = ncap;
    return true;
}

/* ---- info ---- */

static void emit_info(tlsdec_t *t, bool force)
{
    if (t->info_sent || !t->sh_seen)
        return;
    if (!force && (!t->ch_seen || (t->version == TLSDEC_VERSION_TLS13 && !t->ee_seen)))
        return;
    t->info_sent = true;
    if (!t->cb.on_handshake_info)
        return;
    tlsdec_info_t info = {
        .version = t->version,
        .cipher_suite = t->suite_id,
        .cipher_name = t->suite ? t->suite->name : NULL,
        .sni = t->sni[0] ? t->sni : NULL,
        .alpn = t->alpn[0] ? t->alpn : NULL,
        .alpn_offered = t->alpn_offered_len ? t->alpn_offered : NULL,
        .alpn_offered_len = t->alpn_offered_len,
    };
    t->cb.on_handshake_info(t->opaque, &info);
}

static void deliver(tlsdec_t *t, int dir, int type, const uint8_t *p, size_t n)
{
    if (t->cb.on_plaintext)
        t->cb.on_plaintext(t->opaque, dir, type, p, n);
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

/*
 * Installs the TLS 1.3 keys of epoch ph into k from the key log. Returns
 * R_OK, R_FAIL (reported), or R_HOLD when the secret is missing and
 * quiet is set (then nothing is reported).
 */
static int install13(tlsdec_t *t, int dir, struct keys *k, enum phase ph, bool quiet)
{
    keylog_label_t label = label13(dir, ph);
    uint8_t secret[KEYLOG_SECRET_MAX];
    size_t slen = sizeof secret;
    if (!t->kl || keylog_find(t->kl, label, t->client_random, secret, &slen) != 0)
        return quiet ? R_HOLD : no_secrets(t, dir, label);
    if (slen != t->suite->hashlen)
        return fail(t, dir, "%s has %zu bytes, %s needs %u", keylog_label_name(label), slen,
                    t->suite->name, t->suite->hashlen);
    if (!keys_set13(t, k, secret))
        return fail_crypto(t, dir, "TLS 1.3 key derivation");
    return R_OK;
}

/* Installs the TLS 1.2 keys of a direction, computing the key block once. */
static int install12(tlsdec_t *t, int dir)
{
    const struct suite *s = t->suite;
    size_t ivlen = s->aead == CHACHA ? NONCE_LEN : 4;
    if (!t->kb_ready) {
        uint8_t master[KEYLOG_SECRET_MAX];
        size_t mlen = sizeof master;
        if (!t->kl ||
            keylog_find(t->kl, KEYLOG_CLIENT_RANDOM, t->client_random, master, &mlen) != 0)
            return no_secrets(t, dir, KEYLOG_CLIENT_RANDOM);
        if (mlen != 48)
            return fail(t, dir, "CLIENT_RANDOM has %zu bytes, a master secret has 48", mlen);
        if (!key_block(t, master, mlen, 2 * (s->keylen + ivlen)))
            return fail_crypto(t, dir, "TLS 1.2 key expansion");
        t->kb_ready = true;
    }
    const uint8_t *key = t->key_block + (dir == TLSDEC_DIR_CLIENT ? 0 : s->keylen);
    const uint8_t *iv = t->key_block + 2 * s->keylen + (dir == TLSDEC_DIR_CLIENT ? 0 : ivlen);
    if (!keys_set(t, &t->d[dir].cur, key, iv, ivlen))
        return fail_crypto(t, dir, "TLS 1.2 key setup");
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
static int open13(struct keys *k, const uint8_t *hdr, const uint8_t *body, size_t len, uint8_t *out,
                  size_t *outlen, int *type)
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
static int open12(tlsdec_t *t, struct keys *k, const uint8_t *hdr, const uint8_t *body, size_t len,
                  uint8_t *out, size_t *outlen)
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

static int open_failed(tlsdec_t *t, int dir, int r)
{
    if (r == DEC_BADTAG)
        return fail(t, dir, "decryption failed (bad record MAC)");
    if (r == DEC_MALFORMED)
        return fail(t, dir, "malformed encrypted record");
    return fail_crypto(t, dir, "record decryption");
}

/* ---- hello parsing ---- */

struct rd {
    const uint8_t *p;
    size_t n;
    bool bad;
};

static const uint8_t *rd_bytes(struct rd *r, size_t k)
{
    if (r->bad || r->n < k) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += k;
    r->n -= k;
    return p;
}

static unsigned rd8(struct rd *r)
{
    const uint8_t *p = rd_bytes(r, 1);
    return p ? p[0] : 0;
}

static unsigned rd16(struct rd *r)
{
    const uint8_t *p = rd_bytes(r, 2);
    return p ? (unsigned)(p[0] << 8 | p[1]) : 0;
}

/* A reader over the next k bytes of r. */
static struct rd rd_sub(struct rd *r, size_t k)
{
    struct rd s = {rd_bytes(r, k), k, false};
    if (!s.p) {
        s.n = 0;
        s.bad = true;
    }
    return s;
}

/* Copies a name into a C string unless it is empty, too long or holds a NUL. */
static void set_name(char *dst, size_t cap, const uint8_t *p, size_t n)
{
    if (p && n > 0 && n < cap && !memchr(p, 0, n)) {
        memcpy(dst, p, n);
        dst[n] = 0;
    }
}

/* The ALPN extension of a ServerHello or EncryptedExtensions: exactly one name. */
static void parse_alpn_selected(tlsdec_t *t, struct rd *e)
{
    struct rd list = rd_sub(e, rd16(e));
    size_t n = rd8(&list);
    set_name(t->alpn, sizeof t->alpn, rd_bytes(&list, n), n);
}

static int parse_client_hello(tlsdec_t *t, const uint8_t *body, size_t len)
{
    struct rd r = {body, len, false};
    rd_bytes(&r, 2);
    const uint8_t *random = rd_bytes(&r, 32);
    rd_bytes(&r, rd8(&r));  /* session id */
    rd_bytes(&r, rd16(&r)); /* cipher suites */
    rd_bytes(&r, rd8(&r));  /* compression methods */
    struct rd exts = r.n ? rd_sub(&r, rd16(&r)) : r;
    if (r.bad)
        return fail(t, TLSDEC_DIR_CLIENT, "malformed ClientHello");
    if (t->ch_seen) {
        /* The second ClientHello after a HelloRetryRequest: same random. */
        if (memcmp(t->client_random, random, 32) != 0)
            return fail_conn(t, TLSDEC_DIR_CLIENT, "second ClientHello with another random");
        return R_OK;
    }
    char sni[sizeof t->sni] = "";
    uint8_t alpn[ALPN_LIST_MAX];
    size_t alpn_len = 0;
    bool early = false;
    while (exts.n > 0 && !exts.bad) {
        unsigned type = rd16(&exts);
        struct rd e = rd_sub(&exts, rd16(&exts));
        if (type == EXT_SERVER_NAME) {
            struct rd list = rd_sub(&e, rd16(&e));
            while (list.n > 0 && !list.bad && !sni[0]) {
                unsigned nt = rd8(&list);
                size_t n = rd16(&list);
                const uint8_t *name = rd_bytes(&list, n);
                if (nt == 0)
                    set_name(sni, sizeof sni, name, n);
            }
        } else if (type == EXT_ALPN) {
            struct rd list = rd_sub(&e, rd16(&e));
            while (list.n > 0 && !list.bad) {
                size_t n = rd8(&list);
                const uint8_t *name = rd_bytes(&list, n);
                if (!name || n == 0 || alpn_len + 1 + n > sizeof alpn)
                    break;
                alpn[alpn_len] = (uint8_t)n;
                memcpy(alpn + alpn_len + 1, name, n);
                alpn_len += 1 + n;
            }
        } else if (type == EXT_EARLY_DATA) {
            early = true;
        }
    }
    if (exts.bad)
        return fail(t, TLSDEC_DIR_CLIENT, "malformed ClientHello extensions");
    memcpy(t->client_random, random, 32);
    memcpy(t->sni, sni, sizeof sni);
    memcpy(t->alpn_offered, alpn, alpn_len);
    t->alpn_offered_len = alpn_len;
    t->early_offered = early;
    t->ch_seen = true;
    emit_info(t, false);
    return R_OK;
}

static const struct suite *find_suite(uint16_t id, uint16_t version)
{
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++) {
        if (suites[i].id == id && suites[i].version == version)
            return &suites[i];
    }
    return NULL;
}

static int parse_server_hello(tlsdec_t *t, const uint8_t *body, size_t len)
{
    int dir = TLSDEC_DIR_SERVER;
    struct rd r = {body, len, false};
    unsigned version = rd16(&r);
    const uint8_t *random = rd_bytes(&r, 32);
    rd_bytes(&r, rd8(&r)); /* session id */
    unsigned suite = rd16(&r);
    rd8(&r); /* compression method */
    struct rd exts = r.n ? rd_sub(&r, rd16(&r)) : r;
    while (!r.bad && exts.n > 0 && !exts.bad) {
        unsigned type = rd16(&exts);
        struct rd e = rd_sub(&exts, rd16(&exts));
        if (type == EXT_SUPPORTED_VERSIONS)
            version = rd16(&e);
        else if (type == EXT_ALPN)
            parse_alpn_selected(t, &e);
    }
    if (r.bad || exts.bad)
        return fail(t, dir, "malformed ServerHello");
    if (memcmp(random, hrr_random, 32) == 0) {
        /* HelloRetryRequest: the real ServerHello follows the second ClientHello. */
        t->hrr_seen = true;
        return R_OK;
    }
    memcpy(t->server_random, random, 32);
    t->version = (uint16_t)version;
    t->suite_id = (uint16_t)suite;
    t->sh_seen = true;
    char msg[64];
    if (version != TLSDEC_VERSION_TLS12 && version != TLSDEC_VERSION_TLS13) {
        snprintf(msg, sizeof msg, "TLS version 0x%04x not supported", version);
        return fail_conn(t, dir, msg);
    }
    t->suite = find_suite((uint16_t)suite, (uint16_t)version);
    if (!t->suite) {
        snprintf(msg, sizeof msg, "cipher suite 0x%04x not supported", suite);
        return fail_conn(t, dir, msg);
    }
    if (version == TLSDEC_VERSION_TLS13) {
        t->alpn[0] = 0; /* TLS 1.3 says it in EncryptedExtensions */
        t->d[TLSDEC_DIR_SERVER].phase = PH_HANDSHAKE;
        t->d[TLSDEC_DIR_CLIENT].phase = t->early_offered ? PH_EARLY : PH_HANDSHAKE;
        if (t->hrr_seen)
            t->early_accepted = 0;
    }
    emit_info(t, false);
    return R_OK;
}

static int parse_encrypted_extensions(tlsdec_t *t, const uint8_t *body, size_t len)
{
    struct rd r = {body, len, false};
    struct rd exts = rd_sub(&r, rd16(&r));
    while (exts.n > 0 && !exts.bad) {
        unsigned type = rd16(&exts);
        struct rd e = rd_sub(&exts, rd16(&exts));
        if (type == EXT_ALPN)
            parse_alpn_selected(t, &e);
        else if (type == EXT_EARLY_DATA)
            t->early_accepted = 1;
    }
    if (r.bad || exts.bad)
        return fail(t, TLSDEC_DIR_SERVER, "malformed EncryptedExtensions");
    if (t->early_accepted < 0)
        t->early_accepted = 0;
    t->ee_seen = true;
    emit_info(t, false);
    return R_OK;
}

/* ---- handshake messages ---- */

static bool hs_keep(unsigned type)
{
    return type == HS_CLIENT_HELLO || type == HS_SERVER_HELLO || type == HS_ENCRYPTED_EXTENSIONS ||
           type == HS_KEY_UPDATE;
}

/* One complete handshake message; body is NULL for those we don't keep. */
static int on_hs_msg(tlsdec_t *t, int dir, unsigned type, const uint8_t *body, size_t len,
                     bool encrypted)
{
    struct dir *d = &t->d[dir];
    bool tls13 = t->sh_seen && t->version == TLSDEC_VERSION_TLS13;
    bool client = dir == TLSDEC_DIR_CLIENT;
    switch (type) {
    case HS_CLIENT_HELLO:
        if (!client)
            break;
        if (encrypted)
            return fail_conn(t, dir, "TLS renegotiation not supported");
        return parse_client_hello(t, body, len);
    case HS_SERVER_HELLO:
        if (client)
            break;
        if (encrypted)
            return fail_conn(t, dir, "TLS renegotiation not supported");
        if (t->sh_seen)
            return fail(t, dir, "unexpected second ServerHello");
        return parse_server_hello(t, body, len);
    case HS_HELLO_REQUEST:
        if (!client && encrypted && !tls13)
            return fail_conn(t, dir, "TLS renegotiation not supported");
        break;
    case HS_ENCRYPTED_EXTENSIONS:
        if (!client && encrypted && tls13 && !t->ee_seen)
            return parse_encrypted_extensions(t, body, len);
        break;
    case HS_END_OF_EARLY_DATA:
        if (client && d->phase == PH_EARLY)
            d->pending = PEND_HANDSHAKE;
        break;
    case HS_FINISHED:
        if (tls13 && d->phase == PH_HANDSHAKE)
            d->pending = PEND_APP;
        break;
    case HS_KEY_UPDATE:
        if (tls13 && d->phase == PH_APP) {
            if (len != 1 || body[0] > 1)
                return fail(t, dir, "malformed KeyUpdate");
            d->pending = PEND_UPDATE;
        }
        break;
    }
    return R_OK;
}

/* Reassembles handshake messages across records. */
static int hs_feed(tlsdec_t *t, int dir, const uint8_t *p, size_t n, bool encrypted)
{
    struct dir *d = &t->d[dir];
    while (n > 0) {
        if (d->hs_hdr_len < 4) {
            size_t take = 4 - d->hs_hdr_len < n ? 4 - d->hs_hdr_len : n;
            memcpy(d->hs_hdr + d->hs_hdr_len, p, take);
            d->hs_hdr_len += take;
            p += take;
            n -= take;
            if (d->hs_hdr_len < 4)
                break;
            d->hs_len = (uint32_t)d->hs_hdr[1] << 16 | (uint32_t)d->hs_hdr[2] << 8 | d->hs_hdr[3];
            d->hs_got = 0;
            if (hs_keep(d->hs_hdr[0])) {
                if (d->hs_len > HS_MAX)
                    return fail(t, dir, "handshake message of %u bytes too long", d->hs_len);
                if (!grow(&d->hs, &d->hs_cap, d->hs_len, HS_MAX))
                    return fail_nomem(t, dir);
            }
        }
        bool keep = hs_keep(d->hs_hdr[0]);
        size_t take = d->hs_len - d->hs_got < n ? d->hs_len - d->hs_got : n;
        if (keep && take)
            memcpy(d->hs + d->hs_got, p, take);
        d->hs_got += (uint32_t)take;
        p += take;
        n -= take;
        if (d->hs_got == d->hs_len) {
            d->hs_hdr_len = 0;
            int r = on_hs_msg(t, dir, d->hs_hdr[0], keep ? d->hs : NULL, d->hs_len, encrypted);
            if (r != R_OK)
                return r;
        }
    }
    return R_OK;
}

/* ---- records ---- */

/* Applies a key change announced in the record just processed (TLS 1.3). */
static int apply_pending(tlsdec_t *t, int dir)
{
    struct dir *d = &t->d[dir];
    enum pending p = d->pending;
    d->pending = PEND_NONE;
    if (p != PEND_NONE && d->hs_hdr_len > 0)
        return fail(t, dir, "handshake message spans a key change");
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
            return fail_crypto(t, dir, "KeyUpdate");
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

static int on_inner(tlsdec_t *t, int dir, int type, const uint8_t *p, size_t n)
{
    switch (type) {
    case CT_HANDSHAKE:
        return hs_feed(t, dir, p, n, true);
    case CT_ALERT:
    case CT_APPLICATION_DATA:
        deliver(t, dir, type, p, n);
        return R_OK;
    case CT_HEARTBEAT:
        return R_OK;
    default:
        return fail(t, dir, "malformed record (inner content type %d)", type);
    }
}

/*
 * 0-RTT: the client's records are early data (early keys) until
 * EndOfEarlyData, or, when the server rejected them, the first record that
 * opens with the handshake keys. Records that open with neither are early
 * data the server skipped too.
 */
static int record13_early(tlsdec_t *t, int dir, const uint8_t *hdr, const uint8_t *body, size_t len)
{
    struct dir *d = &t->d[dir];
    size_t n;
    int type, r;
    if (t->early_accepted != 0 && !d->cur.ready && !d->cur.missing) {
        r = install13(t, dir, &d->cur, PH_EARLY, true);
        if (r == R_FAIL)
            return r;
        d->cur.missing = r == R_HOLD;
    }
    if (t->early_accepted != 0 && d->cur.ready) {
        r = open13(&d->cur, hdr, body, len, d->plain, &n, &type);
        if (r == DEC_OK)
            return on_inner(t, dir, type, d->plain, n);
        if (r != DEC_BADTAG)
            return open_failed(t, dir, r);
    }
    if (!d->alt.ready && (r = install13(t, dir, &d->alt, PH_HANDSHAKE, false)) != R_OK)
        return r;
    r = open13(&d->alt, hdr, body, len, d->plain, &n, &type);
    if (r == DEC_BADTAG)
        return R_OK;
    if (r != DEC_OK)
        return open_failed(t, dir, r);
    struct keys k = d->cur;
    d->cur = d->alt;
    d->alt = k;
    d->phase = PH_HANDSHAKE;
    return on_inner(t, dir, type, d->plain, n);
}

static int record13(tlsdec_t *t, int dir, const uint8_t *hdr, const uint8_t *body, size_t len)
{
    struct dir *d = &t->d[dir];
    size_t n;
    int type, r;
    if (d->phase == PH_PLAIN)
        return fail(t, dir, "encrypted record before the keys are known");
    if (d->phase == PH_EARLY) {
        r = record13_early(t, dir, hdr, body, len);
    } else {
        if (!d->cur.ready && (r = install13(t, dir, &d->cur, d->phase, false)) != R_OK)
            return r;
        r = open13(&d->cur, hdr, body, len, d->plain, &n, &type);
        if (r != DEC_OK)
            return open_failed(t, dir, r);
        r = on_inner(t, dir, type, d->plain, n);
    }
    return r == R_OK ? apply_pending(t, dir) : r;
}

static int record12(tlsdec_t *t, int dir, const uint8_t *hdr, const uint8_t *body, size_t len)
{
    struct dir *d = &t->d[dir];
    int type = hdr[0];
    if (type == CT_CHANGE_CIPHER_SPEC) {
        if (d->phase == PH_TLS12)
            return fail_conn(t, dir, "TLS renegotiation not supported");
        d->phase = PH_TLS12;
        d->cur.ready = false;
        return R_OK;
    }
    if (d->phase == PH_PLAIN) {
        if (type == CT_HANDSHAKE)
            return hs_feed(t, dir, body, len, false);
        if (type == CT_ALERT)
            deliver(t, dir, type, body, len);
        else if (type == CT_APPLICATION_DATA)
            return fail(t, dir, "application data before ChangeCipherSpec");
        return R_OK;
    }
    int r;
    if (!d->cur.ready && (r = install12(t, dir)) != R_OK)
        return r;
    size_t n;
    r = open12(t, &d->cur, hdr, body, len, d->plain, &n);
    if (r != DEC_OK)
        return open_failed(t, dir, r);
    return on_inner(t, dir, type, d->plain, n);
}

/*
 * Whether a direction's records that may need keys must wait for the other
 * direction: for the hellos, and 0-RTT data for the EncryptedExtensions that
 * say whether the server took it (data it refused is not delivered).
 */
static bool must_wait(const tlsdec_t *t, int dir)
{
    if (!t->ch_seen || !t->sh_seen)
        return true;
    return dir == TLSDEC_DIR_CLIENT && t->d[dir].phase == PH_EARLY && t->early_accepted < 0 &&
           !t->d[TLSDEC_DIR_SERVER].failed;
}

static int on_record(tlsdec_t *t, int dir, const uint8_t *hdr, const uint8_t *body, size_t len)
{
    struct dir *d = &t->d[dir];
    int type = hdr[0];
    bool client = dir == TLSDEC_DIR_CLIENT;
    if (type != CT_HANDSHAKE && type != CT_ALERT) {
        /* Records that may need keys wait for both hellos. */
        if (client && !t->ch_seen)
            return fail(t, dir, "no ClientHello seen (capture started mid-connection?)");
        if (!client && !t->sh_seen) {
            if (type == CT_CHANGE_CIPHER_SPEC && t->hrr_seen)
                return R_OK;
            return fail(t, dir, "no ServerHello seen (capture started mid-connection?)");
        }
        if (must_wait(t, dir))
            return R_HOLD;
    }
    if (!t->sh_seen || (t->version == TLSDEC_VERSION_TLS13 && type != CT_APPLICATION_DATA)) {
        /* Hellos, unencrypted alerts, and TLS 1.3's compatibility ChangeCipherSpec. */
        if (type == CT_HANDSHAKE)
            return hs_feed(t, dir, body, len, false);
        if (type == CT_ALERT)
            deliver(t, dir, type, body, len);
        return R_OK;
    }
    if (!d->plain && !(d->plain = malloc(TLSDEC_RECORD_MAX)))
        return fail_nomem(t, dir);
    if (t->version == TLSDEC_VERSION_TLS13)
        return record13(t, dir, hdr, body, len);
    return record12(t, dir, hdr, body, len);
}

static size_t record_len(const uint8_t *h)
{
    return (size_t)h[3] << 8 | h[4];
}

/* Checks a record header; false after reporting. */
static bool header_ok(tlsdec_t *t, int dir, const uint8_t *h)
{
    if (h[0] < CT_CHANGE_CIPHER_SPEC || h[0] > CT_HEARTBEAT || h[1] != 3) {
        fail(t, dir, "malformed record (not TLS?)");
        return false;
    }
    if (record_len(h) > TLSDEC_RECORD_MAX) {
        fail(t, dir, "malformed record (%zu bytes, more than TLS allows)", record_len(h));
        return false;
    }
    return true;
}

/* Processes the whole records at the start of p; returns the bytes they took. */
static size_t consume(tlsdec_t *t, int dir, const uint8_t *p, size_t n)
{
    struct dir *d = &t->d[dir];
    size_t off = 0;
    while (!d->failed && !d->held && n - off >= HDR_LEN) {
        const uint8_t *h = p + off;
        if (!header_ok(t, dir, h))
            break;
        size_t rl = record_len(h);
        if (n - off < HDR_LEN + rl)
            break;
        if (on_record(t, dir, h, h + HDR_LEN, rl) == R_HOLD) {
            d->held = true;
            break;
        }
        off += HDR_LEN + rl;
    }
    return off;
}

static bool buf_append(tlsdec_t *t, int dir, const uint8_t *p, size_t n)
{
    struct dir *d = &t->d[dir];
    if (!grow(&d->buf, &d->cap, d->len + n, TLSDEC_HOLD_MAX)) {
        fail_nomem(t, dir);
        return false;
    }
    memcpy(d->buf + d->len, p, n);
    d->len += n;
    return true;
}

static void dir_feed(tlsdec_t *t, int dir, const uint8_t *p, size_t n)
{
    struct dir *d = &t->d[dir];
    while (n > 0 && !d->failed) {
        if (!d->held && d->len == 0) {
            /* Whole records are read where they are; only a tail is copied. */
            size_t c = consume(t, dir, p, n);
            p += c;
            n -= c;
            if (d->failed || n == 0)
                return;
        }
        if (d->held) {
            if (d->len + n > TLSDEC_HOLD_MAX) {
                fail(t, dir, "more than %d bytes while waiting for the other direction",
                     TLSDEC_HOLD_MAX);
                return;
            }
            buf_append(t, dir, p, n);
            return;
        }
        /* Complete the buffered record, then process it. */
        size_t need = d->len < HDR_LEN ? HDR_LEN - d->len : HDR_LEN + record_len(d->buf) - d->len;
        size_t take = need < n ? need : n;
        if (!buf_append(t, dir, p, take))
            return;
        p += take;
        n -= take;
        if (d->len < HDR_LEN)
            continue;
        if (!header_ok(t, dir, d->buf))
            return;
        if (d->len == HDR_LEN + record_len(d->buf) && consume(t, dir, d->buf, d->len) == d->len)
            d->len = 0;
    }
}

/* Processes what a direction held once the other direction's hello is known. */
static void dir_resume(tlsdec_t *t, int dir)
{
    struct dir *d = &t->d[dir];
    d->held = false;
    size_t c = consume(t, dir, d->buf, d->len);
    if (d->failed)
        return;
    memmove(d->buf, d->buf + c, d->len - c);
    d->len -= c;
}

tlsdec_t *tlsdec_new(const keylog_t *keylog, const tlsdec_callbacks_t *cb, void *opaque)
{
    tlsdec_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->kl = keylog;
    if (cb)
        t->cb = *cb;
    t->opaque = opaque;
    t->early_accepted = -1;
    return t;
}

void tlsdec_free(tlsdec_t *t)
{
    if (!t)
        return;
    for (int i = 0; i < 2; i++) {
        struct dir *d = &t->d[i];
        free(d->buf);
        free(d->plain);
        free(d->hs);
        EVP_CIPHER_CTX_free(d->cur.ctx);
        EVP_CIPHER_CTX_free(d->alt.ctx);
    }
    EVP_KDF_free(t->hkdf);
    EVP_KDF_free(t->prf);
    OPENSSL_cleanse(t, sizeof *t);
    free(t);
}

int tlsdec_feed(tlsdec_t *t, int dir, const void *data, size_t len)
{
    if (!t || (dir != TLSDEC_DIR_CLIENT && dir != TLSDEC_DIR_SERVER) || (!data && len))
        return -EINVAL;
    dir_feed(t, dir, data, len);
    int other = 1 - dir;
    if (t->d[other].held && !must_wait(t, other))
        dir_resume(t, other);
    if (t->nomem) {
        t->nomem = false;
        return -ENOMEM;
    }
    return 0;
}

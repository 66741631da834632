/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_FORMATS_TLSDEC_INT_H
#define MITMREC_FORMATS_TLSDEC_INT_H

/*
 * Private to the TLS decoder: the state that tlsdec.c (record layer,
 * handshake tracking, errors) and tlsdec_keys.c (cipher suites, key schedule,
 * record protection) share, and the functions each gives the other.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "keylog.h"
#include "tlsdec.h"

#define HDR_LEN 5
#define NONCE_LEN 12
#define HASH_MAX 48
#define ALPN_LIST_MAX 512

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

/* ---- tlsdec.c: errors ---- */

/*
 * Reports an error of direction dir through on_error, unless the direction
 * has already failed, and stops decrypting it. Returns R_FAIL.
 */
int tlsdec_fail(tlsdec_t *t, int dir, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* tlsdec_fail with the reason from OpenSSL's error queue, which it empties. */
int tlsdec_fail_crypto(tlsdec_t *t, int dir, const char *what);

/* A secret is missing from the key log: reported once per connection. Returns R_FAIL. */
int tlsdec_no_secrets(tlsdec_t *t, int dir, keylog_label_t label);

/* ---- tlsdec_keys.c: suites, keys, record protection ---- */

/* The suite we decrypt for IANA number id in version, or NULL. */
const struct suite *tlsdec_keys_find_suite(uint16_t id, uint16_t version);

/*
 * Installs the TLS 1.3 keys of epoch ph into k from the key log. Returns
 * R_OK, R_FAIL (reported), or R_HOLD when the secret is missing and
 * quiet is set (then nothing is reported).
 */
int tlsdec_keys_install13(tlsdec_t *t, int dir, struct keys *k, enum phase ph, bool quiet);

/* Installs the TLS 1.2 keys of a direction. Returns R_OK or R_FAIL (reported). */
int tlsdec_keys_install12(tlsdec_t *t, int dir);

/* Applies a key change announced in the record just processed (TLS 1.3). R_OK or R_FAIL. */
int tlsdec_keys_apply_pending(tlsdec_t *t, int dir);

/*
 * TLS 1.3: opens a record (hdr, then len bytes of body) into out, which has
 * room for TLSDEC_RECORD_MAX bytes, and strips the padding; *type is the
 * inner content type. Returns DEC_*.
 */
int tlsdec_keys_open13(struct keys *k, const uint8_t *hdr, const uint8_t *body, size_t len,
                       uint8_t *out, size_t *outlen, int *type);

/* TLS 1.2 AEAD: opens a record into out as tlsdec_keys_open13 does. Returns DEC_*. */
int tlsdec_keys_open12(tlsdec_t *t, struct keys *k, const uint8_t *hdr, const uint8_t *body,
                       size_t len, uint8_t *out, size_t *outlen);

/* Reports a DEC_* failure of tlsdec_keys_open13 / open12. Returns R_FAIL. */
int tlsdec_keys_open_failed(tlsdec_t *t, int dir, int r);

#endif

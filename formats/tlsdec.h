/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_FORMATS_TLSDEC_H
#define MITMREC_FORMATS_TLSDEC_H

#include <stddef.h>
#include <stdint.h>

#include "keylog.h"

/*
 * TLS record decryption for one TCP connection, given the bytes each
 * direction carried (in any split) and a key log. Reads the ClientHello and
 * ServerHello, finds the connection's secrets by client random, and decrypts
 * TLS 1.3 (TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384,
 * TLS_CHACHA20_POLY1305_SHA256, with KeyUpdate and 0-RTT data) and TLS 1.2
 * AEAD suites (AES-GCM and ChaCha20-Poly1305 with ECDHE, DHE or RSA key
 * exchange). Pure: no sockets, no files; libcrypto does the cryptography.
 *
 * Directions feed independently. A direction that needs the other's hello
 * (the client's encrypted records need the ServerHello) keeps its bytes, up
 * to TLSDEC_HOLD_MAX, until the other direction has supplied it.
 *
 * After an error in a direction (reported once through on_error) that
 * direction is no longer decrypted: its later bytes are dropped.
 */

#define TLSDEC_DIR_CLIENT 0 /* client -> server */
#define TLSDEC_DIR_SERVER 1 /* server -> client */

#define TLSDEC_CT_ALERT 21
#define TLSDEC_CT_APPLICATION_DATA 23

#define TLSDEC_VERSION_TLS12 0x0303
#define TLSDEC_VERSION_TLS13 0x0304

#define TLSDEC_RECORD_MAX (16384 + 2048) /* longest record body accepted */
#define TLSDEC_HOLD_MAX (128 * 1024)     /* bytes a direction keeps while it waits */

typedef struct tlsdec tlsdec_t;

/* What the hellos (and for TLS 1.3 the EncryptedExtensions) said. */
typedef struct tlsdec_info {
    uint16_t version;            /* TLSDEC_VERSION_*, from supported_versions if present */
    uint16_t cipher_suite;       /* IANA number */
    const char *cipher_name;     /* IANA name, or NULL for a suite we don't decrypt */
    const char *sni;             /* server_name, or NULL */
    const char *alpn;            /* the protocol the server chose, or NULL */
    const uint8_t *alpn_offered; /* the client's list in wire format (length-prefixed
                                    names), or NULL; may be cut at 512 bytes */
    size_t alpn_offered_len;
} tlsdec_info_t;

/*
 * Callbacks run from within tlsdec_feed, in the order the bytes require; any
 * may be NULL. Pointers they receive are borrowed for the call only. They
 * must not call tlsdec_feed or tlsdec_free on the same object.
 *  on_plaintext: the content of one decrypted application_data record
 *      (content_type 23; 0-RTT data included) or alert (21, also unencrypted
 *      alerts); len may be 0.
 *  on_handshake_info: once per connection, when the version, suite and
 *      selected ALPN are known: TLS 1.2 after both hellos, TLS 1.3 after the
 *      EncryptedExtensions (or, when those can't be decrypted, at that
 *      failure, with alpn NULL).
 *  on_error: one line for a user, e.g. "decryption failed (bad record MAC)",
 *      "cipher suite 0x1304 not supported", "no secrets for this connection
 *      (CLIENT_RANDOM missing)", "malformed record". "no secrets" is reported
 *      once per connection; other errors once per direction they stop.
 */
typedef struct tlsdec_callbacks {
    void (*on_plaintext)(void *opaque, int dir, int content_type, const uint8_t *data, size_t len);
    void (*on_handshake_info)(void *opaque, const tlsdec_info_t *info);
    void (*on_error)(void *opaque, int dir, const char *message);
} tlsdec_callbacks_t;

/*
 * Creates a decoder. keylog is borrowed, must outlive the decoder and may
 * gain secrets between feeds: they are looked up when first needed. cb is
 * copied; opaque is passed to the callbacks. NULL when out of memory.
 */
tlsdec_t *tlsdec_new(const keylog_t *keylog, const tlsdec_callbacks_t *cb, void *opaque);

/* Frees the decoder and any bytes it holds. tlsdec_free(NULL) is a no-op. */
void tlsdec_free(tlsdec_t *t);

/*
 * Feeds len bytes (borrowed) that direction dir (TLSDEC_DIR_*) carried next.
 * Problems in the data go to on_error and are not failures.
 * Returns 0, -EINVAL for a bad argument (no callback runs), or -ENOMEM (the
 * direction stops; callbacks for earlier records may have run).
 */
int tlsdec_feed(tlsdec_t *t, int dir, const void *data, size_t len);

#endif

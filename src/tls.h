/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_TLS_H
#define MITMREC_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

/*
 * OpenSSL contexts for both sides of an interception, and the hooks through
 * which each SSL object reports to its flow. Contexts are made once per run.
 */

/* Per-SSL hooks, attached with tls_set_hooks (borrowed; must outlive the SSL). */
typedef struct tls_hooks {
    void (*keylog)(void *opaque, const char *line);
    /* Server side: the ClientHello arrived. Returns SSL_CLIENT_HELLO_SUCCESS,
       _RETRY (pause the handshake; call SSL_do_handshake again later) or _ERROR
       (then *al is the alert to send). */
    int (*client_hello)(void *opaque, SSL *ssl, int *al);
    /* Server side: choose the ALPN protocol (wire format in/out as in
       SSL_CTX_set_alpn_select_cb). */
    int (*alpn_select)(void *opaque, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen);
    void *opaque;
} tls_hooks_t;

void tls_set_hooks(SSL *ssl, tls_hooks_t *hooks);

/*
 * Handshake steps may run on a worker thread, where the keylog hook (which
 * records) must not be called: between tls_keylog_defer(b) and
 * tls_keylog_defer(NULL) on a thread, its keylog lines are kept in b instead,
 * and tls_keylog_replay gives them to the SSL's hook on the loop's thread
 * (returning -ENOMEM if one was lost for want of memory).
 */
typedef struct tls_keylog_buf {
    char *data;
    size_t len, cap;
    int lost;
} tls_keylog_buf_t;

void tls_keylog_defer(tls_keylog_buf_t *b);
int tls_keylog_replay(SSL *ssl, tls_keylog_buf_t *b);
void tls_keylog_buf_free(tls_keylog_buf_t *b);

/* The client-facing context (mitmrec is the server). */
int tls_server_ctx_new(SSL_CTX **out, char *err, size_t errlen);

/* The upstream context (mitmrec is the client): verifies against the system
   store plus cacerts, unless insecure. */
int tls_client_ctx_new(const char *const *cacerts, size_t ncacerts, int insecure, SSL_CTX **out,
                       char *err, size_t errlen);

/* For a context whose secrets nobody keeps: no keylog hook, so OpenSSL does not format its
   lines (two sprintf(3)s per secret byte, 3% of a new flow's CPU for the upstream leg). */
void tls_ctx_keylog_off(SSL_CTX *ctx);

/*
 * Upstream session resumption: names ssl's session key (the origin and the name it
 * is checked against) and, if a session under that key is cached, sets it. Returns
 * 1 when a session was set. The sessions ssl then receives are cached under key
 * once its handshake verified (TLS 1.3 tickets are taken by one SSL each). tls_client_sessions_free
 * empties the cache (exit).
 */
int tls_client_session_use(SSL *ssl, const char *key);
/* After ssl's handshake succeeded: if it offered a session the server did not take,
   sessions are neither offered nor kept for its key for a minute. */
void tls_client_session_done(SSL *ssl);
void tls_client_sessions_free(void);

/*
 * From inside the client_hello hook: the SNI host name (into sni, "" when
 * absent) and the client's ALPN list in wire format (*alpn borrowed, valid
 * during the hook; *alpn_len 0 when absent).
 */
void tls_client_hello_info(SSL *ssl, char *sni, size_t snilen, const unsigned char **alpn,
                           size_t *alpn_len);

/* From inside the client_hello hook: 1 when the ClientHello had a server_name
   that tls_client_hello_info refused (not a host name), else 0. */
int tls_client_hello_bad_sni(SSL *ssl);

#endif

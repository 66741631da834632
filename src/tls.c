/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "tls.h"

/*
 * Only suites that formats/tlsdec.c decrypts are offered, on both sides, so
 * every recording can be read back by mitmrec itself (-r, mitmreplay): TLS 1.3
 * AES-GCM and ChaCha20-Poly1305, TLS 1.2 AEAD suites. TLS 1.0 and 1.1 have
 * none, so they are not offered at all.
 */
#define TLS13_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS12_SUITES "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:RSA+AESGCM:!aNULL"

static int decryptable_only(SSL_CTX *ctx)
{
    return SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1 &&
           SSL_CTX_set_ciphersuites(ctx, TLS13_SUITES) == 1 &&
           SSL_CTX_set_cipher_list(ctx, TLS12_SUITES) == 1;
}

void tls_set_hooks(SSL *ssl, tls_hooks_t *hooks)
{
    SSL_set_app_data(ssl, hooks);
}

static void keylog_cb(const SSL *ssl, const char *line)
{
    tls_hooks_t *h = SSL_get_app_data(ssl);
    if (h && h->keylog)
        h->keylog(h->opaque, line);
}

static int client_hello_cb(SSL *ssl, int *al, void *arg)
{
    tls_hooks_t *h = SSL_get_app_data(ssl);
    if (!h || !h->client_hello)
        return SSL_CLIENT_HELLO_SUCCESS;
    return h->client_hello(h->opaque, ssl, al);
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    tls_hooks_t *h = SSL_get_app_data(ssl);
    if (!h || !h->alpn_select)
        return SSL_TLSEXT_ERR_NOACK;
    return h->alpn_select(h->opaque, out, outlen, in, inlen);
}

int tls_server_ctx_new(SSL_CTX **out, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    char buf[256];

    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context: %s", log_ssl_errors(buf, sizeof(buf)));
        return -ENOMEM;
    }
    if (!decryptable_only(ctx)) {
        snprintf(err, errlen, "cannot set the TLS suites: %s", log_ssl_errors(buf, sizeof(buf)));
        SSL_CTX_free(ctx);
        return -EINVAL;
    }
    SSL_CTX_set_keylog_callback(ctx, keylog_cb);
    SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, NULL);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
    /* Each flow's secrets go into the recording; resumed sessions would need
       secrets from an earlier flow, so every handshake is a full one. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    *out = ctx;
    return 0;
}

int tls_client_ctx_new(const char *const *cacerts, size_t ncacerts, int insecure,
                       SSL_CTX **out, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char buf[256];

    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context: %s", log_ssl_errors(buf, sizeof(buf)));
        return -ENOMEM;
    }
    if (!decryptable_only(ctx)) {
        snprintf(err, errlen, "cannot set the TLS suites: %s", log_ssl_errors(buf, sizeof(buf)));
        SSL_CTX_free(ctx);
        return -EINVAL;
    }
    SSL_CTX_set_keylog_callback(ctx, keylog_cb);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (!SSL_CTX_set_default_verify_paths(ctx))
        ERR_clear_error();
    for (size_t i = 0; i < ncacerts; i++) {
        if (!SSL_CTX_load_verify_locations(ctx, cacerts[i], NULL)) {
            snprintf(err, errlen, "cannot load --cacert %s: %s", cacerts[i],
                     log_ssl_errors(buf, sizeof(buf)));
            SSL_CTX_free(ctx);
            return -EINVAL;
        }
    }
    SSL_CTX_set_verify(ctx, insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    *out = ctx;
    return 0;
}

void tls_client_hello_info(SSL *ssl, char *sni, size_t snilen, const unsigned char **alpn,
                           size_t *alpn_len)
{
    const unsigned char *p;
    size_t len;

    sni[0] = '\0';
    *alpn = NULL;
    *alpn_len = 0;
    /* server_name: list length (2), then entries of type (1), length (2), name. */
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) && len > 5) {
        size_t list = ((size_t)p[0] << 8) | p[1];
        const unsigned char *q = p + 2, *end = p + 2 + (list < len - 2 ? list : len - 2);
        while (q + 3 <= end) {
            size_t n = ((size_t)q[1] << 8) | q[2];
            if (q + 3 + n > end)
                break;
            if (q[0] == TLSEXT_NAMETYPE_host_name && n < snilen) {
                int ok = 1;
                for (size_t i = 0; i < n; i++)
                    if (q[3 + i] <= 0x20 || q[3 + i] >= 0x7f)
                        ok = 0;
                if (ok) {
                    memcpy(sni, q + 3, n);
                    sni[n] = '\0';
                }
                break;
            }
            q += 3 + n;
        }
    }
    /* ALPN: list length (2), then the protocol list in wire format. */
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &p,
                                  &len) &&
        len > 2) {
        size_t list = ((size_t)p[0] << 8) | p[1];
        if (list <= len - 2) {
            *alpn = p + 2;
            *alpn_len = list;
        }
    }
}

int tls_client_hello_bad_sni(SSL *ssl)
{
    const unsigned char *p;
    size_t len;
    char sni[256];
    const unsigned char *alpn;
    size_t alpn_len;

    if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len))
        return 0;
    tls_client_hello_info(ssl, sni, sizeof(sni), &alpn, &alpn_len);
    return sni[0] == '\0';
}

/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "errors.h"
#include "flow_int.h"
#include "log.h"

/* A flow's TLS interception: both handshakes, the forged certificate, ALPN (flow_int.h). */

/* ---- TLS hooks ---------------------------------------------------------- */

static void keylog_client(void *opaque, const char *line)
{
    flow_t *f = opaque;
    rec_flow_keylog(f->rec, REC_CLIENT, line);
}

static void keylog_up(void *opaque, const char *line)
{
    flow_t *f = opaque;
    rec_flow_keylog(f->rec, REC_UPSTREAM, line);
}

static int is_ip_literal(const char *s)
{
    unsigned char b[16];
    return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

static int start_upstream_tls(flow_t *f)
{
    SSL *ssl = SSL_new(f->p->client_ctx);
    const char *name = f->sni[0] ? f->sni : f->host;

    if (!ssl)
        return -ENOMEM;
    f->hooks_up.keylog = keylog_up;
    f->hooks_up.opaque = f;
    tls_set_hooks(ssl, &f->hooks_up);
    if (f->sni[0])
        SSL_set_tlsext_host_name(ssl, f->sni);
    else if (!is_ip_literal(f->host))
        SSL_set_tlsext_host_name(ssl, f->host);
    if (f->client_alpn_len)
        SSL_set_alpn_protos(ssl, f->client_alpn, (unsigned)f->client_alpn_len);
    if (!f->p->insecure) {
        if (is_ip_literal(name))
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
        else
            SSL_set1_host(ssl, name);
    }
    {
        char key[600];
        const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
        snprintf(key, sizeof(key), "%s|%u|%s|%s", f->host, f->port, sni ? sni : "",
                 f->p->insecure ? "" : name);
        tls_client_session_use(ssl, key);
    }
    f->t_tls0 = rec_now();
    /* Its hooks (keylog) are safe on a worker from the start. */
    conn_set_offload(&f->up, 1);
    return conn_start_tls(&f->up, ssl, 0, NULL, 0);
}

static int client_hello(void *opaque, SSL *ssl, int *al)
{
    flow_t *f = opaque;
    const unsigned char *alpn;
    size_t alpn_len;

    if (!f->up_done && !f->up_failed) {
        if (f->t_tls0)
            return SSL_CLIENT_HELLO_RETRY; /* still waiting for the upstream */
        tls_client_hello_info(ssl, f->sni, sizeof(f->sni), &alpn, &alpn_len);
        if (tls_client_hello_bad_sni(ssl))
            log_warn("flow %llu: the ClientHello's server name is not a host name: ignored, "
                     "%s is used",
                     (unsigned long long)f->id, f->host);
        /* Transparent flows learn the name only now; URLs use it. */
        if (f->mode == M_TRANSPARENT)
            rec_flow_set_target(f->rec, "https", f->sni[0] ? f->sni : f->host, f->port);
        if (alpn_len && alpn_len <= sizeof(f->client_alpn)) {
            memcpy(f->client_alpn, alpn, alpn_len);
            f->client_alpn_len = alpn_len;
        }
        if (start_upstream_tls(f) < 0) {
            *al = SSL_AD_INTERNAL_ERROR;
            return SSL_CLIENT_HELLO_ERROR;
        }
        return f->up_done || f->up_failed ? client_hello(opaque, ssl, al) : SSL_CLIENT_HELLO_RETRY;
    }
    if (f->up_failed) {
        /* Never hide a failed verification behind a forged certificate. */
        *al = SSL_AD_HANDSHAKE_FAILURE;
        return SSL_CLIENT_HELLO_ERROR;
    }
    /* From here on this may run on a worker (conn_set_offload): only the SSL is touched. */
    if (!f->leaf || SSL_use_certificate(ssl, f->leaf) != 1 ||
        SSL_use_PrivateKey(ssl, ca_leaf_key(f->p->ca)) != 1) {
        ERR_clear_error();
        f->leaf_failed = 1; /* client_handshake says so */
        *al = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

/* The upstream handshake is over: forge the client's certificate from the
   origin's, then let the client's handshake go on, off the loop if it may. */
void flow_resume_client_tls(flow_t *f)
{
    if (f->up_done) {
        const char *name = f->sni[0] ? f->sni : f->host;
        X509 *peer = SSL_get1_peer_certificate(f->up.ssl);
        const unsigned char *sel = NULL;
        unsigned int sel_len = 0;
        int rc = ca_forge(f->p->ca, name, peer, &f->leaf);

        SSL_get0_alpn_selected(f->up.ssl, &sel, &sel_len);
        if (sel_len && sel_len <= sizeof(f->up_alpn)) {
            memcpy(f->up_alpn, sel, sel_len);
            f->up_alpn_len = sel_len;
        }

        X509_free(peer);
        if (rc < 0) {
            X509_free(f->leaf);
            f->leaf = NULL;
            ERR_clear_error();
        }
    }
    /* A refusal (an alert) is quick and must go out before the flow ends: here. */
    conn_set_offload(&f->client, f->leaf != NULL);
    conn_continue_handshake(&f->client);
}

/* Gives the client the protocol the server chose, if the client offered it. */
static int alpn_select(void *opaque, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen)
{
    flow_t *f = opaque;
    /* A copy made on the loop's thread: this may run on a worker, while the loop may be
       freeing the upstream's SSL. */
    const unsigned char *sel = f->up_alpn;
    unsigned int sel_len = f->up_alpn_len;

    if (!sel_len)
        return SSL_TLSEXT_ERR_NOACK;
    for (unsigned int i = 0; i < inlen;) {
        unsigned int n = in[i];
        if (i + 1 + n > inlen)
            break;
        if (n == sel_len && memcmp(in + i + 1, sel, n) == 0) {
            *out = in + i + 1;
            *outlen = (unsigned char)n;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/*
 * The first bytes inside a CONNECT tunnel decide: TLS is intercepted, the rest relayed.
 * Returns 0 or flow_relay_to_up's error.
 */
int flow_start_tunnel_data(flow_t *f, const uint8_t *buf, size_t len, uint64_t ts)
{
    f->recording = 1;
    if (len >= 1 && buf[0] == 0x16 && (len < 2 || buf[1] == 0x03)) {
        SSL *ssl = SSL_new(f->p->server_ctx);
        if (!ssl) {
            flow_close(f, 1);
            return 0;
        }
        f->tls = 1;
        f->state = F_TLS;
        flow_timer(f, HANDSHAKE_TIMEOUT_MS);
        f->hooks_client.keylog = keylog_client;
        f->hooks_client.client_hello = client_hello;
        f->hooks_client.alpn_select = alpn_select;
        f->hooks_client.opaque = f;
        tls_set_hooks(ssl, &f->hooks_client);
        conn_start_tls(&f->client, ssl, 1, buf, len);
        return 0;
    }
    rec_flow_set_target(f->rec, "http", f->host, f->port);
    f->state = F_RELAY;
    conn_start(&f->up);
    return flow_relay_to_up(f, buf, len, ts);
}

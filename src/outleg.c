/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "outleg.h"

void outleg_connected(outleg_t *o, conn_t *c, recorder_t *rec, const char *scheme, const char *host,
                      uint16_t port)
{
    struct sockaddr_storage local, peer;
    int len = sizeof(local);

    uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&local, &len);
    len = sizeof(peer);
    uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &len);
    if (rec && (o->flow = rec_flow_new(rec, (struct sockaddr *)&local, (struct sockaddr *)&peer,
                                       rec_now())))
        rec_flow_set_target(o->flow, scheme, host, port);
}

static void keylog_line(void *opaque, const char *line)
{
    outleg_t *o = opaque;
    if (o->flow)
        rec_flow_keylog(o->flow, REC_CLIENT, line);
}

int outleg_start_tls(outleg_t *o, conn_t *c, SSL_CTX *ctx, const char *host, int verify,
                     const unsigned char *alpn, unsigned alpn_len, const char **why)
{
    SSL *ssl = SSL_new(ctx);

    if (!ssl) {
        *why = "cannot create a TLS session";
        return -1;
    }
    o->hooks.keylog = keylog_line;
    o->hooks.opaque = o;
    tls_set_hooks(ssl, &o->hooks);
    SSL_set_tlsext_host_name(ssl, host);
    if (verify)
        SSL_set1_host(ssl, host);
    SSL_set_alpn_protos(ssl, alpn, alpn_len);
    if (conn_start_tls(c, ssl, 0, NULL, 0) < 0) {
        *why = "cannot start TLS";
        return -1;
    }
    return 0;
}

void outleg_handshake_done(outleg_t *o, conn_t *c, char *alpn, size_t len)
{
    const unsigned char *sel = NULL;
    unsigned int n = 0;

    alpn[0] = '\0';
    SSL_get0_alpn_selected(c->ssl, &sel, &n);
    if (n && n < len) {
        memcpy(alpn, sel, n);
        alpn[n] = '\0';
    }
    if (o->flow && alpn[0])
        rec_flow_set_alpn(o->flow, alpn);
}

int outleg_decode(outleg_t *o, const httpconv_callbacks_t *cb, void *opaque, const char *protocol)
{
    o->conv = httpconv_new(cb, opaque, protocol, 64u << 20);
    return o->conv ? 0 : -ENOMEM;
}

int outleg_send(outleg_t *o, conn_t *c, const uint8_t *p, size_t len)
{
    uint64_t ts = rec_now();

    if (o->flow)
        rec_flow_plain(o->flow, REC_C2S, p, len, ts);
    if (o->conv)
        httpconv_feed(o->conv, HTTPCONV_C2S, p, len, ts);
    return conn_write(c, p, len);
}

void outleg_data(outleg_t *o, const uint8_t *buf, size_t len)
{
    uint64_t ts = rec_now();

    if (o->flow)
        rec_flow_plain(o->flow, REC_S2C, buf, len, ts);
    if (o->conv)
        httpconv_feed(o->conv, HTTPCONV_S2C, buf, len, ts);
}

void outleg_wire(outleg_t *o, int out, const uint8_t *buf, size_t len)
{
    if (o->flow)
        rec_flow_wire(o->flow, REC_CLIENT, out ? REC_C2S : REC_S2C, buf, len, rec_now());
}

void outleg_eof(outleg_t *o)
{
    if (o->conv)
        httpconv_eof(o->conv, HTTPCONV_S2C, rec_now());
}

void outleg_end(outleg_t *o, conn_t *c, const char *err)
{
    uint64_t ts = rec_now();

    if (o->conv)
        httpconv_finish(o->conv, err, ts);
    if (o->flow) {
        if (c->eof) /* the server's FIN came first */
            rec_flow_end(o->flow, REC_CLIENT, REC_S2C, 0, ts);
        rec_flow_end(o->flow, REC_CLIENT, REC_C2S, 0, ts);
        rec_flow_free(o->flow, ts);
        o->flow = NULL;
    }
}

void outleg_free(outleg_t *o)
{
    httpconv_free(o->conv);
    o->conv = NULL;
}

int outleg_skip_header(const char *n)
{
    return !strcasecmp(n, "connection") || !strcasecmp(n, "keep-alive") ||
           !strcasecmp(n, "proxy-connection") || !strcasecmp(n, "transfer-encoding") ||
           !strcasecmp(n, "content-length") || !strcasecmp(n, "upgrade") || !strcasecmp(n, "te") ||
           !strcasecmp(n, "host") || n[0] == ':';
}

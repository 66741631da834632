/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "dnsmsg.h"
#include "errors.h"
#include "log.h"
#include "replay_conn.h"
#include "replay_dns.h"
#include "replay_pass.h"
#include "replay_server.h"
#include "replay_server_int.h"
#include "rewrite.h"
#include "tls.h"

/* ---- detection and TLS ------------------------------------------------------------------- */

static int looks_http1(const uint8_t *d, size_t len)
{
    static const char *const methods[] = {"GET ",     "POST ",  "PUT ",   "HEAD ",   "DELETE ",
                                          "OPTIONS ", "PATCH ", "TRACE ", "CONNECT "};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        size_t n = strlen(methods[i]);
        if (!memcmp(d, methods[i], len < n ? len : n))
            return 1;
    }
    return 0;
}

static void start_plain(rconn_t *c, const uint8_t *data, size_t len)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n";

    if (!memcmp(data, preface, len < 16 ? len : 16)) {
        c->proto = P_H2;
        c->h2 = rh2_new(c);
    } else if (looks_http1(data, len)) {
        c->proto = P_H1;
        if (!(c->h1 = rh1_new(c)))
            c->proto = P_DONE;
    } else {
        rconn_raw_start(c, data, len);
    }
}

/* Choose HTTP/2 when the client offers it and the recording spoke it to this server. */
static int alpn_select(void *opaque, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen)
{
    rconn_t *c = opaque;
    replaydb_t *db = c->srv->cfg.db;
    int want_h2 = 0;
    const unsigned char *h2 = NULL, *h1 = NULL;

    for (size_t i = 0; i < db->nentries; i++) {
        const replay_entry_t *e = &db->entries[i];
        if (e->h2 && e->port == c->orig_port &&
            (!strcasecmp(e->host, c->sni) || !strcmp(e->server_ip, c->orig_ip)))
            want_h2 = 1;
    }
    for (unsigned int i = 0; i < inlen && i + 1 + in[i] <= inlen; i += 1u + in[i]) {
        if (in[i] == 2 && !memcmp(in + i + 1, "h2", 2))
            h2 = in + i;
        else if (in[i] == 8 && !memcmp(in + i + 1, "http/1.1", 8))
            h1 = in + i;
    }
    if (h2 && (want_h2 || !h1)) {
        *out = h2 + 1;
        *outlen = 2;
    } else if (h1) {
        *out = h1 + 1;
        *outlen = 8;
    } else {
        return SSL_TLSEXT_ERR_NOACK;
    }
    return SSL_TLSEXT_ERR_OK;
}

static int client_hello(void *opaque, SSL *ssl, int *al)
{
    rconn_t *c = opaque;
    const unsigned char *alpn;
    size_t alpn_len;
    X509 *cert = NULL;
    int rc;

    tls_client_hello_info(ssl, c->sni, sizeof(c->sni), &alpn, &alpn_len);
    rc = ca_forge(c->srv->cfg.ca, c->sni[0] ? c->sni : c->orig_ip, NULL, &cert);
    if (rc < 0 || SSL_use_certificate(ssl, cert) != 1 ||
        SSL_use_PrivateKey(ssl, ca_leaf_key(c->srv->cfg.ca)) != 1) {
        X509_free(cert);
        log_error("cannot make a certificate for %s", c->sni[0] ? c->sni : c->orig_ip);
        *al = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    X509_free(cert);
    return SSL_CLIENT_HELLO_SUCCESS;
}

static void on_handshake(conn_t *cn, int status)
{
    rconn_t *c = cn->data;
    const unsigned char *alpn = NULL;
    unsigned int alen = 0;

    if (status < 0) {
        log_info("TLS handshake with a client of %s failed (does it trust the CA?)", c->orig_at);
        rconn_finish(c);
        conn_close(&c->c, 0);
        return;
    }
    SSL_get0_alpn_selected(c->c.ssl, &alpn, &alen);
    if (alen == 2 && !memcmp(alpn, "h2", 2)) {
        c->proto = P_H2;
        c->h2 = rh2_new(c);
    } else {
        c->proto = P_DETECT;
    }
}

/* ---- connection life ---------------------------------------------------------------------- */

static void rconn_free_mem(rconn_t *c)
{
    while (c->pq) {
        pending_t *p = c->pq;
        c->pq = p->next;
        rconn_pending_free(p);
    }
    rh2_free(c->h2);
    rh1_free(c->h1);
    rws_free(c->ws);
    free(c->chead);
    free(c);
}

static void maybe_idle(replay_server_t *s)
{
    if (s->stopping && !s->conns && s->handles == 0 && s->cfg.on_idle)
        s->cfg.on_idle(s->cfg.idle_opaque);
}

static void handle_closed(uv_handle_t *h)
{
    rconn_t *c = h->data;
    replay_server_t *s = c->srv;

    if (--c->handles > 0)
        return;
    rconn_free_mem(c);
    maybe_idle(s);
}

static void on_close(conn_t *cn)
{
    rconn_t *c = cn->data;
    replay_server_t *s = c->srv;

    if (--c->handles > 0)
        return;
    rconn_free_mem(c);
    maybe_idle(s);
}

/* Unlinks the connection and closes its timer; conn_close follows by the caller. */
void rconn_finish(rconn_t *c)
{
    replay_server_t *s = c->srv;

    if (c->closing)
        return;
    c->closing = 1;
    if (c->proto == P_RAW)
        rconn_raw_report(c);
    replay_pass_cancel(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    uv_close((uv_handle_t *)&c->timer, handle_closed);
}

static void on_data(conn_t *cn, const uint8_t *data, size_t len);

#define CONNECT_HEAD_MAX (64 * 1024)

/* A program that speaks to an HTTP proxy (HTTPS_PROXY) sends "CONNECT host:port" first. No
   proxy is needed to replay: the CONNECT is answered here, and what follows is replayed as a
   connection to host:port. 1 when data was taken (the head may be incomplete), 0 when it is
   not a CONNECT after all (data is at the end of c->chead), -1 when data would pass the
   bound (it is not in c->chead): the caller goes on with c->chead's bytes, then data. */
static int proxy_connect(rconn_t *c, const uint8_t *data, size_t len)
{
    static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    char host[256];
    uint8_t *h, *rest;
    size_t nrest;
    ssize_t hlen;
    uint16_t port;

    if (c->chead_len + len > CONNECT_HEAD_MAX || !(h = realloc(c->chead, c->chead_len + len)))
        return -1;
    c->chead = h;
    memcpy(c->chead + c->chead_len, data, len);
    c->chead_len += len;
    if ((hlen = rewrite_connect_head(c->chead, c->chead_len, host, sizeof(host), &port)) < 0)
        return 0;
    if (hlen == 0)
        return 1;
    c->via_proxy = 1;
    snprintf(c->orig_ip, sizeof(c->orig_ip), "%s", host);
    c->orig_port = port;
    log_debug("connection to %s: CONNECT %s:%u, answered", c->orig_at, host, port);
    mr_hostport(c->orig_at, sizeof(c->orig_at), c->orig_ip, c->orig_port);
    rest = c->chead;
    nrest = c->chead_len - (size_t)hlen;
    c->chead = NULL;
    c->chead_len = 0;
    if (conn_write(&c->c, ok, sizeof(ok) - 1) < 0) {
        free(rest);
        rconn_finish(c);
        conn_close(&c->c, 1);
        return 1;
    }
    if (nrest)
        on_data(&c->c, rest + hlen, nrest);
    free(rest);
    return 1;
}

static void on_data(conn_t *cn, const uint8_t *data, size_t len)
{
    rconn_t *c = cn->data;
    char host[256];
    uint16_t port;

    if (c->closing)
        return;
    if (c->proto == P_DETECT && !c->tls && !c->via_proxy &&
        (c->chead_len || rewrite_connect_head(data, len, host, sizeof(host), &port) >= 0)) {
        uint8_t *held;
        size_t n;

        int taken = proxy_connect(c, data, len);

        if (taken > 0)
            return;
        /* Not a CONNECT: what was held (and data, unless it was past the bound) is the
           connection's start. */
        held = c->chead;
        n = c->chead_len;
        c->chead = NULL;
        c->chead_len = 0;
        c->via_proxy = -1;
        if (n)
            on_data(cn, held, n);
        free(held);
        if (taken < 0)
            on_data(cn, data, len);
        return;
    }
    if (c->proto == P_DETECT && !c->tls && data[0] == 0x16) {
        SSL *ssl = SSL_new(c->srv->cfg.server_ctx);
        c->tls = 1;
        c->proto = P_TLS;
        if (!ssl) {
            rconn_finish(c);
            conn_close(&c->c, 1);
            return;
        }
        c->hooks.client_hello = client_hello;
        c->hooks.alpn_select = alpn_select;
        c->hooks.opaque = c;
        tls_set_hooks(ssl, &c->hooks);
        if (conn_start_tls(&c->c, ssl, 1, data, len) < 0) {
            rconn_finish(c);
            conn_close(&c->c, 1);
        }
        return;
    }
    if (c->proto == P_DETECT)
        start_plain(c, data, len);
    switch (c->proto) {
    case P_H1:
        if (rh1_feed(c->h1, data, len) < 0) {
            /* Not HTTP/1 any more: answer what was asked, then close. */
            pending_t *p = calloc(1, sizeof(*p));
            log_info("connection to %s: not HTTP/1 any more; closing it", c->orig_at);
            if (p) {
                p->shut = 1;
                rconn_pq_add(c, p, 0);
            }
            c->proto = P_DONE;
        }
        break;
    case P_H2:
        if (!c->h2 || rh2_feed(c->h2, data, len) < 0 || rh2_done(c->h2)) {
            rconn_finish(c);
            conn_close(&c->c, 0);
        }
        break;
    case P_RAW:
        rconn_raw_feed(c, data, len);
        break;
    case P_WS:
        rconn_ws_feed(c, data, len);
        break;
    case P_TUNNEL:
        if (c->tunnel)
            replay_pass_tunnel_feed(c->tunnel, data, len);
        break;
    default:
        break;
    }
}

/* The client's bytes after its upgrade request (replay_h1.c): WebSocket frames when the
   upgrade was answered with a recorded 101, otherwise not ours to answer. */
void rconn_upgraded(rconn_t *c, const uint8_t *data, size_t len)
{
    if (c->proto == P_WS && len)
        rconn_ws_feed(c, data, len);
    else if (c->proto == P_TUNNEL && c->tunnel)
        replay_pass_tunnel_feed(c->tunnel, data, len);
}

void rconn_ws_feed(rconn_t *c, const uint8_t *data, size_t len)
{
    if (rws_feed(c->ws, data, len) < 0) {
        /* A close (ours went back), or frames we cannot take: end after what is queued. */
        pending_t *p = calloc(1, sizeof(*p));
        c->proto = P_DONE;
        if (p) {
            p->shut = 1;
            rconn_pq_add(c, p, 0);
        }
    }
}

static void on_eof(conn_t *cn)
{
    rconn_t *c = cn->data;

    if (c->closing)
        return;
    if (c->proto == P_TUNNEL && c->tunnel) {
        /* A passed-through WebSocket: the upstream hears of it, and its end ends ours. */
        replay_pass_tunnel_eof(c->tunnel);
        return;
    }
    /* The client is done: finish what is queued, then close. */
    if (!c->pq) {
        rconn_finish(c);
        conn_close(&c->c, 0);
    } else {
        pending_t *p = calloc(1, sizeof(*p));
        if (p) {
            p->shut = 1;
            rconn_pq_add(c, p, 0);
        }
    }
}

static void on_error(conn_t *cn, int err)
{
    rconn_t *c = cn->data;

    log_debug("connection to %s: %s", c->orig_at, mr_strerror(err));
    rconn_finish(c);
    conn_close(&c->c, 1);
}

static const conn_cb_t conn_cbs = {
    .on_handshake = on_handshake,
    .on_data = on_data,
    .on_eof = on_eof,
    .on_error = on_error,
    .on_close = on_close,
};

static void on_accept(uv_stream_t *l, int status)
{
    replay_server_t *s = l->data;
    rconn_t *c;
    struct sockaddr_storage peer;
    int len = sizeof(peer);

    if (status < 0 || !(c = calloc(1, sizeof(*c))))
        return;
    c->srv = s;
    if (conn_init(&c->c, &s->env, &conn_cbs, c) < 0) {
        free(c);
        return;
    }
    c->handles = 2;
    uv_timer_init(s->cfg.loop, &c->timer);
    c->timer.data = c;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    if (uv_accept(l, (uv_stream_t *)&c->c.tcp) < 0 ||
        uv_tcp_getpeername(&c->c.tcp, (struct sockaddr *)&peer, &len) < 0 || !s->cfg.lookup_tcp ||
        s->cfg.lookup_tcp(s->cfg.lookup_opaque, (struct sockaddr *)&peer, &c->orig, &c->pi) < 0) {
        log_debug("a connection that was not redirected: closed");
        rconn_finish(c);
        conn_close(&c->c, 1);
        return;
    }
    if (c->orig.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&c->orig)->sin6_addr, c->orig_ip,
                  sizeof(c->orig_ip));
        c->orig_port = ntohs(((struct sockaddr_in6 *)&c->orig)->sin6_port);
    } else {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&c->orig)->sin_addr, c->orig_ip,
                  sizeof(c->orig_ip));
        c->orig_port = ntohs(((struct sockaddr_in *)&c->orig)->sin_port);
    }
    mr_hostport(c->orig_at, sizeof(c->orig_at), c->orig_ip, c->orig_port);
    log_debug("connection from %s (pid %u) to %s", c->pi.name, c->pi.pid, c->orig_at);
    c->proto = P_DETECT;
    conn_start(&c->c);
    /* A protocol where the server speaks first was recorded: start it now. */
    if (!rconn_has_http_for(s, c)) {
        replay_conv_t *cv = rconn_pick_conv(s, c, NULL, 0);
        if (cv && cv->chunks[0].dir == 1)
            rconn_raw_start(c, NULL, 0);
    }
}

/* ---- DNS ----------------------------------------------------------------------------------- */

static void dns_send_cb(uv_udp_send_t *req, int status)
{
    free(req);
}

static void on_udp(uv_udp_t *h, ssize_t n, const uv_buf_t *buf, const struct sockaddr *from,
                   unsigned flags)
{
    replay_server_t *s = h->data;
    struct sockaddr_storage orig;
    procinfo_t pi;
    dnsmsg_question_t q;
    uint8_t *out;
    int len, answered = 0;
    uv_udp_send_t *req;
    uv_buf_t b;
    uint16_t port;

    if (n <= 0 || !from || s->stopping || !s->cfg.lookup_udp)
        return;
    if (s->cfg.lookup_udp(s->cfg.lookup_opaque, from, &orig, &pi) < 0)
        return;
    port = ntohs(orig.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&orig)->sin6_port
                                            : ((struct sockaddr_in *)&orig)->sin_port);
    if (port != 53 || dnsmsg_parse_question((uint8_t *)buf->base, (size_t)n, &q) < 0 ||
        q.response) {
        log_debug("udp datagram to port %u dropped: only DNS is replayed", port);
        return;
    }
    if (!(req = malloc(sizeof(*req) + 4096)))
        return;
    out = (uint8_t *)(req + 1);
    len = replay_dns_answer(s->cfg.db, (uint8_t *)buf->base, (size_t)n, &q, out, 4096, &answered);
    replay_report_dns(s->cfg.report, q.name, answered);
    log_verbose("dns %s type %u: %s", q.name, q.qtype, answered ? "answered" : "NXDOMAIN");
    if (len < 0) {
        free(req);
        return;
    }
    b = uv_buf_init((char *)out, (unsigned)len);
    if (uv_udp_send(req, h, &b, 1, from, dns_send_cb) < 0)
        free(req);
}

static void alloc_udp(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    replay_server_t *s = h->data;
    b->base = (char *)s->ubuf;
    b->len = sizeof(s->ubuf);
}

/* ---- the server ----------------------------------------------------------------------------- */

static void listener_closed(uv_handle_t *h)
{
    replay_server_t *s = h->data;
    s->handles--;
    maybe_idle(s);
}

int replay_server_start(const replay_server_cfg_t *cfg, int *tport, int *uport, int *v6,
                        replay_server_t **out, char *err, size_t errlen)
{
    replay_server_t *s = calloc(1, sizeof(*s));
    struct sockaddr_storage ss;
    int rc = 0, len, port = 0;

    if (!s)
        return -ENOMEM;
    s->cfg = *cfg;
    s->env.loop = cfg->loop;
    *v6 = 0;
    for (int i = 0; i < 2; i++) {
        memset(&ss, 0, sizeof(ss));
        if (i == 0)
            uv_ip4_addr("127.0.0.1", 0, (struct sockaddr_in *)&ss);
        else
            uv_ip6_addr("::1", port, (struct sockaddr_in6 *)&ss);
        uv_tcp_init(cfg->loop, &s->tl[i]);
        s->tl[i].data = s;
        s->handles++;
        s->ntl++;
        rc = uv_tcp_bind(&s->tl[i], (struct sockaddr *)&ss, i ? UV_TCP_IPV6ONLY : 0);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&s->tl[i], 511, on_accept);
        if (rc < 0) {
            if (i == 1)
                break;
            snprintf(err, errlen, "cannot listen on 127.0.0.1: %s", mr_strerror(rc));
            goto fail;
        }
        if (i == 0) {
            len = sizeof(ss);
            uv_tcp_getsockname(&s->tl[0], (struct sockaddr *)&ss, &len);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else {
            *v6 = 1;
        }
    }
    *tport = port;
    port = 0;
    for (int i = 0; i < 2; i++) {
        memset(&ss, 0, sizeof(ss));
        if (i == 0)
            uv_ip4_addr("127.0.0.1", 0, (struct sockaddr_in *)&ss);
        else
            uv_ip6_addr("::1", port, (struct sockaddr_in6 *)&ss);
        uv_udp_init(cfg->loop, &s->ul[i]);
        s->ul[i].data = s;
        s->handles++;
        s->nul++;
        rc = uv_udp_bind(&s->ul[i], (struct sockaddr *)&ss, i ? UV_UDP_IPV6ONLY : 0);
        if (rc == 0)
            rc = uv_udp_recv_start(&s->ul[i], alloc_udp, on_udp);
        if (rc < 0) {
            if (i == 1)
                break;
            snprintf(err, errlen, "cannot listen for UDP on 127.0.0.1: %s", mr_strerror(rc));
            goto fail;
        }
        if (i == 0) {
            len = sizeof(ss);
            uv_udp_getsockname(&s->ul[0], (struct sockaddr *)&ss, &len);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    *uport = port;
    *out = s;
    return 0;
fail:
    s->stopping = 1;
    s->cfg.on_idle = NULL;
    for (int i = 0; i < s->ntl; i++)
        uv_close((uv_handle_t *)&s->tl[i], listener_closed);
    for (int i = 0; i < s->nul; i++)
        uv_close((uv_handle_t *)&s->ul[i], listener_closed);
    *out = s; /* freed by the caller after the loop ran the close callbacks */
    return rc;
}

void replay_server_set_lookup(replay_server_t *s, void *opaque)
{
    s->cfg.lookup_opaque = opaque;
}

void replay_server_stop(replay_server_t *s, int force)
{
    if (!s)
        return;
    if (!s->stopping) {
        s->stopping = 1;
        for (int i = 0; i < s->ntl; i++)
            uv_close((uv_handle_t *)&s->tl[i], listener_closed);
        for (int i = 0; i < s->nul; i++)
            uv_close((uv_handle_t *)&s->ul[i], listener_closed);
    }
    if (force)
        while (s->conns) {
            rconn_t *c = s->conns;
            rconn_finish(c);
            conn_close(&c->c, 1);
        }
    maybe_idle(s);
}

void replay_server_free(replay_server_t *s)
{
    free(s);
}

/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "conn.h"
#include "errors.h"
#include "http1.h"
#include "httpconv.h"
#include "log.h"
#include "outleg.h"
#include "replay_pass.h"
#include "replay_ws.h"
#include "tls.h"

#define PASS_TIMEOUT_MS 30000

typedef struct pass {
    struct pass *next;
    rconn_t *rc; /* NULL once the client connection went away */
    int32_t stream;
    char method[32];
    char host[256];
    char scheme[8];
    uint16_t port;
    int tls;
    uint8_t *req; /* the request, serialized */
    size_t req_len;
    SSL_CTX *ctx;
    recorder_t *rec;
    conn_t c;
    conn_env_t *env;
    outleg_t leg; /* its recording and decoding */
    http_exchange_t *got;
    uv_timer_t timer;
    int handles, closing;
    char err[256];
    /* A WebSocket upgrade passed through (replay_pass_tunnel): the bytes both ways. */
    int tunnel;
    int up_ready;   /* the request is sent: the client's bytes go straight on */
    int client_eof; /* the client finished: our FIN follows what it sent */
    uint8_t *early; /* the client's bytes before that */
    size_t early_len;
    size_t up_bytes; /* what the upstream sent */
    /* An HTTP/2 client's (RFC 8441): the upstream's answer is ours to read (formats/http1.c),
       and the stream opens once it is a 101 whose accept key is that of the key we sent. */
    char accept[RWS_ACCEPT_LEN + 1];
    http1_conn_t *h1;
    int opened;
} pass_t;

#define TUNNEL_REFUSAL_MAX (64u * 1024) /* of the body of an answer that is not a 101 */

#define TUNNEL_EARLY_MAX (1u << 20) /* client bytes kept until the upstream is ready */

static void pass_closed(pass_t *p)
{
    if (--p->handles > 0)
        return;
    outleg_free(&p->leg);
    http_exchange_free(p->got);
    free(p->early);
    http1_conn_free(p->h1);
    free(p->req);
    free(p->env);
    free(p);
}

static void timer_closed(uv_handle_t *h)
{
    pass_closed(h->data);
}

static void conn_closed(conn_t *c)
{
    pass_closed(c->data);
}

static void pass_end(pass_t *p)
{
    pass_t **pp;

    if (p->closing)
        return;
    p->closing = 1;
    outleg_end(&p->leg, &p->c, p->err[0] ? p->err : NULL);
    if (p->rc) {
        for (pp = (pass_t **)rconn_pass_list(p->rc); *pp; pp = &(*pp)->next)
            if (*pp == p) {
                *pp = p->next;
                break;
            }
        if (p->tunnel) {
            /* The client gets the end after what the upstream sent, or a 502 when nothing
               went to it. */
            char hp[300];
            int none = p->stream ? !p->opened : !p->up_bytes;

            if (p->err[0])
                log_info("passthrough to %s://%s: %s", p->scheme,
                         mr_hostport(hp, sizeof(hp), p->host, (unsigned)p->port), p->err);
            rconn_tunnel_end(p->rc, p->stream,
                             !none       ? NULL
                             : p->err[0] ? p->err
                                         : "no response from upstream");
        } else if (p->got && p->got->status) {
            replay_entry_t e;
            memset(&e, 0, sizeof(e));
            e.ex = p->got;
            snprintf(e.scheme, sizeof(e.scheme), "%s", p->scheme);
            snprintf(e.host, sizeof(e.host), "%s", p->host);
            e.port = p->port;
            rconn_pass_done(p->rc, p->stream, &e, p->method, NULL);
        } else {
            rconn_pass_done(p->rc, p->stream, NULL, p->method,
                            p->err[0] ? p->err : "no response from upstream");
        }
    }
    uv_close((uv_handle_t *)&p->timer, timer_closed);
    conn_close(&p->c, 0);
}

static void end_cb(uv_timer_t *t)
{
    pass_t *p = t->data;

    if (!p->got && !p->err[0] && !(p->tunnel && p->up_bytes))
        snprintf(p->err, sizeof(p->err), "no response within %d s", PASS_TIMEOUT_MS / 1000);
    pass_end(p);
}

/* After the current read: its bytes still go to the recorder through on_wire. */
static void end_soon(pass_t *p, const char *err)
{
    if (err && !p->err[0])
        snprintf(p->err, sizeof(p->err), "%s", err);
    if (!p->closing)
        uv_timer_start(&p->timer, end_cb, 0, 0);
}

static void on_exchange(void *opaque, http_exchange_t *ex)
{
    pass_t *p = opaque;

    if (p->got) {
        http_exchange_free(ex);
        return;
    }
    p->got = ex;
    end_soon(p, NULL);
}

/* For an HTTP/2 client, the upstream's answer as formats/http1.c decodes it. A 101 with our
   key's accept key opens the stream, whose frames are the bytes after it. */
static void tunnel_upgrade(void *opaque, http_exchange_t *ex)
{
    pass_t *p = opaque;
    const char *accept = http_msg_header(&ex->resp, "sec-websocket-accept");

    if (ex->status != 101 || !accept || strcmp(accept, p->accept) != 0) {
        snprintf(p->err, sizeof(p->err),
                 ex->status != 101 ? "the upstream answered the WebSocket upgrade with %d"
                                   : "the upstream's Sec-WebSocket-Accept is not that of our key",
                 ex->status);
        return;
    }
    if (rconn_tunnel_open(p->rc, p->stream, http_msg_header(&ex->resp, "sec-websocket-protocol"),
                          http_msg_header(&ex->resp, "sec-websocket-extensions")) < 0) {
        snprintf(p->err, sizeof(p->err), "the client's stream is gone");
        return;
    }
    p->opened = 1;
}

static void tunnel_upgrade_data(void *opaque, int dir, const uint8_t *data, size_t len,
                                uint64_t ts_usec)
{
    pass_t *p = opaque;

    (void)ts_usec;
    if (dir == HTTP1_RESP && p->opened && rconn_tunnel_data(p->rc, p->stream, data, len) < 0)
        snprintf(p->err, sizeof(p->err), "the client's side is gone");
}

/* Any answer: the 101's exchange (after tunnel_upgrade), or one that refused the upgrade. */
static void tunnel_exchange(void *opaque, http_exchange_t *ex)
{
    pass_t *p = opaque;

    if (!p->opened && !p->err[0] && ex->status)
        snprintf(p->err, sizeof(p->err), "the upstream answered the WebSocket upgrade with %d",
                 ex->status);
    http_exchange_free(ex);
}

static void send_request(pass_t *p)
{
    httpconv_callbacks_t cb = {NULL, on_exchange, NULL};

    if (p->tunnel) {
        /* For an HTTP/1.1 client nothing to decode: the upstream's bytes go to it as they
           are. For an HTTP/2 client the answer is read first. */
        if (p->stream) {
            static const http1_callbacks_t tcb = {NULL, NULL, tunnel_exchange, tunnel_upgrade,
                                                  tunnel_upgrade_data};
            if (!(p->h1 = http1_conn_new(&tcb, p, TUNNEL_REFUSAL_MAX)) ||
                http1_conn_feed(p->h1, HTTP1_REQ, p->req, p->req_len, rec_now()) < 0) {
                end_soon(p, "out of memory");
                return;
            }
        }
        if (outleg_send(&p->leg, &p->c, p->req, p->req_len) < 0 ||
            (p->early_len && outleg_send(&p->leg, &p->c, p->early, p->early_len) < 0)) {
            end_soon(p, "cannot send the request upstream");
            return;
        }
        free(p->early);
        p->early = NULL;
        p->early_len = 0;
        p->up_ready = 1;
        if (p->client_eof)
            conn_shutdown(&p->c);
        return;
    }
    if (outleg_decode(&p->leg, &cb, p, NULL) < 0) {
        end_soon(p, "out of memory");
        return;
    }
    if (outleg_send(&p->leg, &p->c, p->req, p->req_len) < 0)
        end_soon(p, "cannot send the request upstream");
}

static void on_handshake(conn_t *c, int status)
{
    pass_t *p = c->data;
    char alpn[32];

    if (status < 0) {
        long v = SSL_get_verify_result(c->ssl);
        snprintf(p->err, sizeof(p->err), "TLS handshake with the upstream server failed%s%s",
                 v != X509_V_OK ? ": " : "",
                 v != X509_V_OK ? X509_verify_cert_error_string(v) : "");
        end_soon(p, NULL);
        return;
    }
    outleg_handshake_done(&p->leg, c, alpn, sizeof(alpn));
    send_request(p);
}

static void on_connect(conn_t *c, int status)
{
    pass_t *p = c->data;

    if (status < 0) {
        snprintf(p->err, sizeof(p->err), "cannot connect upstream: %s", mr_strerror(status));
        end_soon(p, NULL);
        return;
    }
    outleg_connected(&p->leg, c, p->rec, p->scheme, p->host, p->port);
    conn_start(c);
    if (p->tls) {
        const char *why;
        if (outleg_start_tls(&p->leg, c, p->ctx, p->host, 1, (const unsigned char *)"\x08http/1.1",
                             9, &why) < 0)
            end_soon(p, why);
        return;
    }
    send_request(p);
}

static void on_data(conn_t *c, const uint8_t *buf, size_t len)
{
    pass_t *p = c->data;

    outleg_data(&p->leg, buf, len);
    if (!p->tunnel || p->closing)
        return;
    /* The answer has begun: from here on the connection lives as long as both ends want
       it. */
    uv_timer_stop(&p->timer);
    p->up_bytes += len;
    if (!p->rc)
        return;
    if (p->stream && !p->opened) {
        /* (the bytes after the 101 reach the client through tunnel_upgrade_data) */
        if (http1_conn_feed(p->h1, HTTP1_RESP, buf, len, rec_now()) < 0 && !p->err[0])
            snprintf(p->err, sizeof(p->err), "the upstream's answer is not HTTP/1.1");
        if (p->err[0])
            end_soon(p, NULL);
        return;
    }
    if (rconn_tunnel_data(p->rc, p->stream, buf, len) < 0)
        end_soon(p, "the client's side is gone");
}

static void on_wire(conn_t *c, int out, const uint8_t *buf, size_t len)
{
    pass_t *p = c->data;
    outleg_wire(&p->leg, out, buf, len);
}

static void on_eof(conn_t *c)
{
    pass_t *p = c->data;

    outleg_eof(&p->leg);
    if (p->tunnel && p->h1 && !p->opened) {
        /* an answer whose body the close ends: its status for the 502 */
        uint64_t ts = rec_now();

        http1_conn_eof(p->h1, HTTP1_RESP, ts);
        http1_conn_finish(p->h1, NULL, ts);
    }
    if (p->tunnel) {
        end_soon(p, p->up_bytes ? NULL : "upstream closed the connection before the response");
        return;
    }
    end_soon(p, p->got ? NULL : "upstream closed the connection before the response");
}

static void on_error(conn_t *c, int err)
{
    pass_t *p = c->data;
    char buf[128];

    snprintf(buf, sizeof(buf), "upstream connection error: %s", mr_strerror(err));
    end_soon(p, buf);
}

static const conn_cb_t pass_cbs = {
    .on_connect = on_connect,
    .on_handshake = on_handshake,
    .on_data = on_data,
    .on_wire = on_wire,
    .on_eof = on_eof,
    .on_error = on_error,
    .on_close = conn_closed,
};

/* A fetch of rq to to (not started). upgrade: the request keeps its Upgrade header and asks
   for it (Connection: Upgrade), else it asks for the connection to close after one answer. */
static pass_t *pass_new(uv_loop_t *loop, SSL_CTX *cctx, recorder_t *rec,
                        const struct sockaddr_storage *to, const char *host, int tls,
                        const rreq_t *rq, rconn_t *c, int32_t stream, const char *upgrade,
                        const char *extra)
{
    pass_t *p;
    const http_msg_t *m = rq->msg;
    size_t cap = 256 + strlen(rq->target) + strlen(host) + m->body_len, off = 0;
    uint16_t port = ntohs(to->ss_family == AF_INET6 ? ((struct sockaddr_in6 *)to)->sin6_port
                                                    : ((struct sockaddr_in *)to)->sin_port);
    int n;

    if (!cctx || !(p = calloc(1, sizeof(*p))))
        return NULL;
    if (upgrade)
        cap += strlen(upgrade) + (extra ? strlen(extra) : 0);
    for (size_t i = 0; i < m->nheaders; i++)
        cap += strlen(m->headers[i].name) + strlen(m->headers[i].value) + 4;
    if (!(p->req = malloc(cap)) || !(p->env = calloc(1, sizeof(*p->env)))) {
        free(p->req);
        free(p);
        return NULL;
    }
    /* One request per connection, HTTP/1.1 whatever the client spoke: the answer comes back
       decoded and is served in the client's protocol. */
    n = snprintf((char *)p->req, cap, "%s %s HTTP/1.1\r\nHost: %s\r\n", rq->method, rq->target,
                 rq->authority ? rq->authority : host);
    off = (size_t)n;
    for (size_t i = 0; i < m->nheaders; i++)
        if (!outleg_skip_header(m->headers[i].name))
            off += (size_t)snprintf((char *)p->req + off, cap - off, "%s: %s\r\n",
                                    m->headers[i].name, m->headers[i].value);
    if (m->body_len)
        off += (size_t)snprintf((char *)p->req + off, cap - off, "Content-Length: %zu\r\n",
                                m->body_len);
    if (upgrade)
        off += (size_t)snprintf((char *)p->req + off, cap - off,
                                "%sUpgrade: %s\r\nConnection: Upgrade\r\n\r\n", extra ? extra : "",
                                upgrade);
    else
        off += (size_t)snprintf((char *)p->req + off, cap - off, "Connection: close\r\n\r\n");
    if (m->body_len) {
        memcpy(p->req + off, m->body, m->body_len);
        off += m->body_len;
    }
    p->req_len = off;
    p->rc = c;
    p->stream = stream;
    p->ctx = cctx;
    p->rec = rec;
    p->tls = tls;
    p->port = port;
    snprintf(p->method, sizeof(p->method), "%s", rq->method);
    snprintf(p->host, sizeof(p->host), "%s", host);
    snprintf(p->scheme, sizeof(p->scheme), "%s", tls ? "https" : "http");
    p->env->loop = loop;
    if (conn_init(&p->c, p->env, &pass_cbs, p) < 0) {
        free(p->req);
        free(p->env);
        free(p);
        return NULL;
    }
    return p;
}

/* Starts p: its timer, its place in the client connection's list, the connect. */
static void pass_go(pass_t *p, uv_loop_t *loop, const rreq_t *rq, const struct sockaddr_storage *to)
{
    char hp[300];

    p->handles = 2;
    uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, end_cb, PASS_TIMEOUT_MS, 0);
    p->next = *(pass_t **)rconn_pass_list(p->rc);
    *(pass_t **)rconn_pass_list(p->rc) = p;
    log_info("passthrough: %s %s://%s%s%s", rq->method, p->scheme,
             mr_hostport(hp, sizeof(hp), p->host, (unsigned)p->port), rq->target,
             p->tunnel ? " (WebSocket)" : "");
    if (conn_connect(&p->c, (const struct sockaddr *)to) < 0) {
        snprintf(p->err, sizeof(p->err), "cannot connect upstream");
        end_soon(p, NULL);
    }
}

int replay_pass_start(uv_loop_t *loop, SSL_CTX *cctx, recorder_t *rec,
                      const struct sockaddr_storage *to, const char *host, int tls,
                      const rreq_t *rq, rconn_t *c, int32_t stream)
{
    pass_t *p = pass_new(loop, cctx, rec, to, host, tls, rq, c, stream, NULL, NULL);

    if (!p)
        return -ENOMEM;
    pass_go(p, loop, rq, to);
    return 0;
}

struct pass *replay_pass_tunnel(uv_loop_t *loop, SSL_CTX *cctx, recorder_t *rec,
                                const struct sockaddr_storage *to, const char *host, int tls,
                                const rreq_t *rq, rconn_t *c, int32_t stream)
{
    pass_t *p;
    const char *up = stream ? "websocket" : http_msg_header(rq->msg, "upgrade");
    char extra[128] = "", accept[RWS_ACCEPT_LEN + 1] = "";

    if (!up)
        return NULL;
    if (stream) {
        /* An extended CONNECT has no key: ours, and the answer must carry its accept key. */
        unsigned char r[16], key[25];

        if (RAND_bytes(r, sizeof(r)) != 1)
            return NULL;
        EVP_EncodeBlock(key, r, sizeof(r));
        if (rws_accept_key((const char *)key, accept) < 0)
            return NULL;
        snprintf(extra, sizeof(extra), "Sec-WebSocket-Key: %s\r\n", key);
    }
    if (!(p = pass_new(loop, cctx, rec, to, host, tls, rq, c, stream, up, extra[0] ? extra : NULL)))
        return NULL;
    memcpy(p->accept, accept, sizeof(accept));
    p->tunnel = 1;
    pass_go(p, loop, rq, to);
    return p;
}

void replay_pass_tunnel_feed(struct pass *p, const uint8_t *data, size_t len)
{
    uint8_t *d;

    if (p->closing || !len)
        return;
    if (p->up_ready) {
        if (outleg_send(&p->leg, &p->c, data, len) < 0)
            end_soon(p, "cannot write upstream");
        return;
    }
    if (p->early_len + len > TUNNEL_EARLY_MAX || !(d = realloc(p->early, p->early_len + len))) {
        end_soon(p, "too much from the client before the upstream was ready");
        return;
    }
    memcpy(d + p->early_len, data, len);
    p->early = d;
    p->early_len += len;
}

void replay_pass_tunnel_eof(struct pass *p)
{
    if (p->closing || p->client_eof)
        return;
    p->client_eof = 1;
    if (p->up_ready)
        conn_shutdown(&p->c);
}

void replay_pass_tunnel_drop(struct pass *p)
{
    pass_t **pp;

    if (p->rc)
        for (pp = (pass_t **)rconn_pass_list(p->rc); *pp; pp = &(*pp)->next)
            if (*pp == p) {
                *pp = p->next;
                break;
            }
    p->rc = NULL;
    end_soon(p, NULL);
}

void replay_pass_cancel(rconn_t *c)
{
    pass_t **list = (pass_t **)rconn_pass_list(c), *p;

    while ((p = *list)) {
        *list = p->next;
        if (p->tunnel)
            rconn_tunnel_forget(c, p->stream);
        p->rc = NULL;
        end_soon(p, "the client went away");
    }
}

/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http1.h"
#include "http2.h"
#include "httpconv.h"
#include "websocket.h"

#define PREFACE_LEN 24
#define HELD_MAX (64u * 1024) /* server bytes kept until the client's first decide */

struct httpconv {
    httpconv_callbacks_t cb;
    void *opaque;
    size_t max_body;
    enum httpconv_kind kind;
    http1_conn_t *h1;
    http2_conn_t *h2;
    websocket_conn_t *ws;
    http_exchange_t *ws_ex;     /* the upgrade exchange, ours while its messages come */
    http_exchange_t *switching; /* the exchange whose response switched protocols */
    int drop_switching;         /* h2c: stream 1 of HTTP/2 stands for it ... */
    http_exchange_t *dropped;   /* ... so it is not delivered; kept until the end, as the
                                   consumer may still hold it (a packet's note) */
    uint8_t pre[PREFACE_LEN];   /* client bytes kept until HTTP/2 or not is known */
    size_t pre_len;
    uint64_t pre_ts;
    uint8_t *held;   /* server bytes that came before the client's first (an HTTP/2 server */
    size_t held_len; /* may send its SETTINGS on accept) */
    uint64_t held_ts;
};

/* ---- decoders' callbacks -------------------------------------------------- */

static void on_request_head(void *opaque, http_exchange_t *ex)
{
    httpconv_t *c = opaque;
    if (c->cb.on_request_head)
        c->cb.on_request_head(c->opaque, ex);
}

static void deliver(httpconv_t *c, http_exchange_t *ex)
{
    if (c->cb.on_exchange)
        c->cb.on_exchange(c->opaque, ex);
    else
        http_exchange_free(ex);
}

static void h1_exchange(void *opaque, http_exchange_t *ex)
{
    httpconv_t *c = opaque;

    if (ex == c->switching) {
        c->switching = NULL;
        if (c->kind == HTTPCONV_WEBSOCKET && c->ws) {
            /* Delivered when the connection ends, with its messages. */
            c->ws_ex = ex;
            return;
        }
        if (c->drop_switching) {
            http_exchange_free(c->dropped);
            c->dropped = ex;
            return;
        }
    }
    deliver(c, ex);
}

static void h2_exchange(void *opaque, http_exchange_t *ex)
{
    deliver(opaque, ex);
}

static void h2_error(void *opaque, const char *message)
{
    httpconv_t *c = opaque;
    char buf[300];

    if (c->cb.on_error) {
        snprintf(buf, sizeof(buf), "HTTP/2: %s", message);
        c->cb.on_error(c->opaque, buf);
    }
}

static void ws_error(void *opaque, int dir, const char *message)
{
    httpconv_t *c = opaque;
    char buf[300];

    if (c->cb.on_error) {
        snprintf(buf, sizeof(buf), "WebSocket (%s): %s", dir ? "server" : "client", message);
        c->cb.on_error(c->opaque, buf);
    }
}

/* The response switched protocols: choose the decoder for what follows. */
static void h1_upgrade(void *opaque, http_exchange_t *ex)
{
    httpconv_t *c = opaque;
    const char *up = http_msg_header(&ex->resp, "Upgrade");

    c->switching = ex;
    if (http_exchange_websocket(ex)) {
        websocket_callbacks_t wcb = {NULL, ws_error};
        c->ws = websocket_conn_new(http_msg_header(&ex->resp, "Sec-WebSocket-Extensions"), ex, &wcb,
                                   c, c->max_body, 0);
        c->kind = c->ws ? HTTPCONV_WEBSOCKET : HTTPCONV_NOT_HTTP;
        return;
    }
    if (ex->status == 101 && http_header_has_token(up, "h2c")) {
        http2_callbacks_t cb = {NULL, on_request_head, h2_exchange, h2_error};
        c->h2 = http2_conn_new_upgrade(&cb, c, c->max_body, ex);
        c->kind = c->h2 ? HTTPCONV_HTTP2 : HTTPCONV_NOT_HTTP;
        c->drop_switching = 1;
        return;
    }
    /* CONNECT's tunnel, or a protocol we do not know. */
    c->kind = HTTPCONV_NOT_HTTP;
}

static void feed_next(httpconv_t *c, int dir, const uint8_t *data, size_t len, uint64_t ts)
{
    if (c->kind == HTTPCONV_WEBSOCKET)
        websocket_conn_feed(c->ws, dir, data, len, ts);
    else if (c->kind == HTTPCONV_HTTP2)
        http2_conn_feed(c->h2, dir, data, len, ts);
}

static void h1_upgrade_data(void *opaque, int dir, const uint8_t *data, size_t len, uint64_t ts)
{
    feed_next(opaque, dir, data, len, ts);
}

/* ---- choosing ----------------------------------------------------------------- */

static int start_h1(httpconv_t *c)
{
    http1_callbacks_t cb = {NULL, on_request_head, h1_exchange, h1_upgrade, h1_upgrade_data};

    c->h1 = http1_conn_new(&cb, c, c->max_body);
    if (!c->h1)
        return -ENOMEM;
    c->kind = HTTPCONV_HTTP1;
    return 0;
}

static int start_h2(httpconv_t *c)
{
    http2_callbacks_t cb = {NULL, on_request_head, h2_exchange, h2_error};

    c->h2 = http2_conn_new(&cb, c, c->max_body);
    if (!c->h2)
        return -ENOMEM;
    c->kind = HTTPCONV_HTTP2;
    return 0;
}

httpconv_t *httpconv_new(const httpconv_callbacks_t *cb, void *opaque, const char *alpn,
                         size_t max_body)
{
    httpconv_t *c = calloc(1, sizeof(*c));
    int rc = 0;

    if (!c)
        return NULL;
    c->cb = *cb;
    c->opaque = opaque;
    c->max_body = max_body ? max_body : 16u << 20;
    if (alpn && strcmp(alpn, "h2") == 0)
        rc = start_h2(c);
    else if (alpn && strncmp(alpn, "http/1", 6) == 0)
        rc = start_h1(c);
    if (rc < 0) {
        free(c);
        return NULL;
    }
    return c;
}

void httpconv_free(httpconv_t *c)
{
    if (!c)
        return;
    http1_conn_free(c->h1);
    http2_conn_free(c->h2);
    websocket_conn_free(c->ws);
    http_exchange_free(c->ws_ex);
    http_exchange_free(c->dropped);
    free(c->held);
    free(c);
}

/* Before the first bytes decide: HTTP/2 with prior knowledge starts with the preface. The
   client's first bytes decide: the server's that come first are kept meanwhile (up to
   HELD_MAX, past which HTTP/1 decides, as for any server that speaks first). */
static int decide(httpconv_t *c, int dir, const uint8_t **data, size_t *len, uint64_t ts)
{
    size_t take;
    int p;

    if (dir != HTTPCONV_C2S) {
        uint8_t *n;

        if (c->held_len + *len > HELD_MAX || !(n = realloc(c->held, c->held_len + *len)))
            return start_h1(c);
        memcpy(n + c->held_len, *data, *len);
        if (!c->held_len)
            c->held_ts = ts;
        c->held = n;
        c->held_len += *len;
        *len = 0;
        return 1;
    }
    take = PREFACE_LEN - c->pre_len < *len ? PREFACE_LEN - c->pre_len : *len;
    memcpy(c->pre + c->pre_len, *data, take);
    if (c->pre_len == 0)
        c->pre_ts = ts;
    c->pre_len += take;
    *data += take;
    *len -= take;
    p = http2_is_preface(c->pre, c->pre_len);
    if (p == -EAGAIN && *len == 0)
        return 1; /* not enough yet */
    return p == 1 ? start_h2(c) : start_h1(c);
}

int httpconv_feed(httpconv_t *c, int dir, const void *data, size_t len, uint64_t ts_usec)
{
    const uint8_t *p = data;
    int rc;

    if (len == 0)
        return 0;
    if (c->kind == HTTPCONV_UNKNOWN) {
        rc = decide(c, dir, &p, &len, ts_usec);
        if (rc < 0)
            return rc;
        if (rc == 1)
            return 0;
        if (c->pre_len) {
            size_t n = c->pre_len;
            c->pre_len = 0;
            httpconv_feed(c, HTTPCONV_C2S, c->pre, n, c->pre_ts);
        }
        if (c->held_len) {
            uint8_t *h = c->held;
            size_t n = c->held_len;
            c->held = NULL;
            c->held_len = 0;
            httpconv_feed(c, HTTPCONV_S2C, h, n, c->held_ts);
            free(h);
        }
        if (len == 0)
            return 0;
    }
    switch (c->kind) {
    case HTTPCONV_HTTP1:
        rc = http1_conn_feed(c->h1, dir, p, len, ts_usec);
        return rc == -ENOMEM ? rc : 0;
    case HTTPCONV_HTTP2:
    case HTTPCONV_WEBSOCKET:
        feed_next(c, dir, p, len, ts_usec);
        return 0;
    default:
        return 0;
    }
}

int httpconv_eof(httpconv_t *c, int dir, uint64_t ts_usec)
{
    if (c->kind == HTTPCONV_HTTP1)
        http1_conn_eof(c->h1, dir, ts_usec);
    return 0;
}

void httpconv_finish(httpconv_t *c, const char *error, uint64_t ts_usec)
{
    if (c->kind == HTTPCONV_UNKNOWN && (c->pre_len || c->held_len)) {
        /* A short conversation that never reached 24 bytes, or where only the server
           spoke: HTTP/1 decides. */
        size_t n = c->pre_len;
        c->pre_len = 0;
        if (start_h1(c) == 0) {
            if (n)
                http1_conn_feed(c->h1, HTTPCONV_C2S, c->pre, n, c->pre_ts);
            if (c->held_len)
                http1_conn_feed(c->h1, HTTPCONV_S2C, c->held, c->held_len, c->held_ts);
        }
        free(c->held);
        c->held = NULL;
        c->held_len = 0;
    }
    if (c->h1)
        http1_conn_finish(c->h1, error, ts_usec);
    if (c->h2)
        http2_conn_finish(c->h2, error, ts_usec);
    if (c->ws && c->cb.on_error)
        for (int dir = 0; dir < 2; dir++)
            if (websocket_conn_pending(c->ws, dir))
                ws_error(c, dir, "the connection ended inside a frame");
    if (c->ws_ex) {
        http_exchange_t *ex = c->ws_ex;
        c->ws_ex = NULL;
        websocket_conn_free(c->ws);
        c->ws = NULL;
        deliver(c, ex);
    }
}

enum httpconv_kind httpconv_kind(const httpconv_t *c)
{
    return c->kind;
}

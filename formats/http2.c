/* SPDX-License-Identifier: MIT */
#include "http2.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http2_int.h"
#include "websocket.h"

#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24
#define H2_DEFAULT_TABLE 4096
#define H2_DEFAULT_MAX_BODY (16 * 1024 * 1024)
#define H2_BODY_BUDGET ((size_t)256 * 1024 * 1024)

const char *const h2_side_name[2] = {"client", "server"};

const char *http2_error_name(uint32_t code)
{
    static const char *const names[] = {
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    };

    return code < sizeof(names) / sizeof(names[0]) ? names[code] : NULL;
}

void h2_error_text(char *buf, size_t size, uint32_t code)
{
    const char *n = http2_error_name(code);

    if (n)
        snprintf(buf, size, "%s", n);
    else
        snprintf(buf, size, "error 0x%x", (unsigned)code);
}

int http2_is_preface(const void *data, size_t len)
{
    size_t n = len < H2_PREFACE_LEN ? len : H2_PREFACE_LEN;

    if (memcmp(data, H2_PREFACE, n) != 0)
        return 0;
    return len < H2_PREFACE_LEN ? -EAGAIN : 1;
}

/* A connection error: reported once, then the decoder reads nothing more. */
int h2_fail(struct http2_conn *c, int err, const char *fmt, ...)
{
    va_list ap;

    if (c->stopped)
        return c->err ? c->err : -EBADMSG;
    c->stopped = 1;
    c->err = err;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof(c->why), fmt, ap);
    va_end(ap);
    if (c->cb.on_error)
        c->cb.on_error(c->opaque, c->why);
    return err;
}

int h2_oom(struct http2_conn *c)
{
    return h2_fail(c, -ENOMEM, "HTTP/2 decoder out of memory");
}

/* ---- the connection ---- */

static struct http2_conn *conn_new(const http2_callbacks_t *cb, void *opaque, size_t max_body)
{
    struct http2_conn *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    if (cb)
        c->cb = *cb;
    c->opaque = opaque;
    c->max_body = max_body ? max_body : H2_DEFAULT_MAX_BODY;
    c->body_budget = c->max_body > H2_BODY_BUDGET ? c->max_body : H2_BODY_BUDGET;
    for (int i = 0; i < 2; i++) {
        h2_dir_t *d = &c->d[i];

        d->dir = i;
        d->max_frame = H2_MIN_FRAME;
        d->table_applied = d->table_wanted = H2_DEFAULT_TABLE;
        if (nghttp2_hd_inflate_new(&d->inf) != 0) {
            http2_conn_free(c);
            return NULL;
        }
    }
    /* The server sends no preface magic, only its SETTINGS. */
    c->d[HTTP2_RESP].preface_got = H2_PREFACE_LEN;
    return c;
}

http2_conn_t *http2_conn_new(const http2_callbacks_t *cb, void *opaque, size_t max_body)
{
    return conn_new(cb, opaque, max_body);
}

static int b64url_value(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '-' || ch == '+')
        return 62;
    if (ch == '_' || ch == '/')
        return 63;
    return -1;
}

/* HTTP2-Settings (RFC 7540, section 3.2.1): a base64url SETTINGS payload that
   the 101 acknowledged. Anything undecodable is ignored. */
static void upgrade_settings(struct http2_conn *c, const char *v)
{
    h2_dir_t *d = &c->d[HTTP2_REQ];
    uint8_t out[512];
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;

    for (; *v && *v != '='; v++) {
        int x = b64url_value(*v);

        if (x < 0 || n >= sizeof(out))
            return;
        acc = acc << 6 | (uint32_t)x;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    for (size_t i = 0; i + 6 <= n; i += 6) {
        uint32_t id = (uint32_t)out[i] << 8 | out[i + 1], val = h2_be32(out + i + 2);

        if (id == SET_MAX_FRAME_SIZE && (val < H2_MIN_FRAME || val > H2_MAX_FRAME))
            continue;
        memcpy(d->small, out + i, 6);
        h2_settings_entry(c, d);
    }
}

static int copy_fields(const http_header_t *h, size_t n, http_msg_t *m, int trailers)
{
    for (size_t i = 0; i < n; i++) {
        int r = trailers ? http_msg_add_trailer(m, h[i].name, strlen(h[i].name), h[i].value,
                                                strlen(h[i].value))
                         : http_msg_add_header(m, h[i].name, strlen(h[i].name), h[i].value,
                                               strlen(h[i].value));

        if (r < 0)
            return r;
    }
    return 0;
}

http2_conn_t *http2_conn_new_upgrade(const http2_callbacks_t *cb, void *opaque, size_t max_body,
                                     const http_exchange_t *req)
{
    /* No callbacks while stream 1 is built: a constructor reports only NULL. */
    struct http2_conn *c = conn_new(NULL, opaque, max_body);
    const char *settings;
    const uint8_t *body;
    uint8_t *owned = NULL;
    size_t body_len;
    http_exchange_t *ex;
    h2_stream_t *s;

    if (!c)
        return NULL;
    c->seq = req->seq + 1;
    s = h2_stream_open(c, 1, req->t_req_start);
    if (!s) {
        http2_conn_free(c);
        return NULL;
    }
    ex = s->ex;
    ex->req_major = req->req_major;
    ex->req_minor = req->req_minor;
    ex->t_req_end = req->t_req_end;
    ex->req.headers_size = req->req.headers_size;
    ex->req.wire_body_size = req->req.wire_body_size;
    ex->req.complete = 1;
    if (http_strset(&ex->method, req->method ? req->method : "",
                    req->method ? strlen(req->method) : 0) < 0 ||
        http_strset(&ex->target, req->target ? req->target : "",
                    req->target ? strlen(req->target) : 0) < 0 ||
        copy_fields(req->req.headers, req->req.nheaders, &ex->req, 0) < 0 ||
        copy_fields(req->req.trailers, req->req.ntrailers, &ex->req, 1) < 0 ||
        http_msg_body(&req->req, &body, &body_len, &owned) < 0 ||
        h2_add_body(c, &ex->req, body, body_len) < 0) {
        free(owned);
        http2_conn_free(c);
        return NULL;
    }
    free(owned);
    ex->req.body_total = req->req.body_total;
    ex->req.body_truncated = ex->req.body_total > http_msg_kept(&ex->req);
    s->req_state = ST_ENDED;
    c->d[HTTP2_REQ].last_sid = 1;
    settings = http_msg_header(&req->req, "HTTP2-Settings");
    if (settings)
        upgrade_settings(c, settings);
    if (c->stopped) {
        http2_conn_free(c);
        return NULL;
    }
    if (cb)
        c->cb = *cb;
    /* Stream 1 is the request req was: once announced, it keeps what the consumer gave it
       then (its HAR index, its frame) and is not announced a second time. */
    if (req->announced) {
        ex->announced = 1;
        ex->user = req->user;
        ex->user_frame = req->user_frame;
    } else {
        c->announce = 1;
    }
    return c;
}

void http2_conn_free(http2_conn_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nstreams; i++) {
        websocket_conn_free(c->streams[i]->ws);
        http_exchange_free(c->streams[i]->ex);
        free(c->streams[i]);
    }
    free(c->streams);
    for (int i = 0; i < 2; i++) {
        h2_blk_reset(&c->d[i]);
        if (c->d[i].inf)
            nghttp2_hd_inflate_del(c->d[i].inf);
    }
    free(c);
}

static void announce(struct http2_conn *c)
{
    h2_stream_t *s;

    if (!c->announce)
        return;
    c->announce = 0;
    s = h2_stream_find(c, 1);
    if (!s)
        return;
    if (c->cb.on_request_begin)
        c->cb.on_request_begin(c->opaque, s->ex);
    s->ex->announced = 1;
    if (c->cb.on_request_head)
        c->cb.on_request_head(c->opaque, s->ex);
}

int http2_conn_feed(http2_conn_t *c, int dir, const void *data, size_t len, uint64_t ts_usec)
{
    const uint8_t *p = data;
    h2_dir_t *d;
    int r;

    if (dir != HTTP2_REQ && dir != HTTP2_RESP)
        return -EINVAL;
    if (c->stopped)
        return c->err ? c->err : -EBADMSG;
    d = &c->d[dir];
    c->ts = ts_usec;
    announce(c);
    while (len && !c->stopped) {
        size_t k;

        if (d->preface_got < H2_PREFACE_LEN) {
            k = H2_PREFACE_LEN - d->preface_got < len ? H2_PREFACE_LEN - d->preface_got : len;
            if (memcmp(p, &H2_PREFACE[d->preface_got], k) != 0)
                return h2_fail(c, -EBADMSG,
                               "HTTP/2 client did not start with the connection preface");
            d->preface_got += k;
            p += k;
            len -= k;
            continue;
        }
        if (d->fh_got < sizeof(d->fh)) {
            if (d->fh_got == 0)
                d->frame_ts = ts_usec;
            k = sizeof(d->fh) - d->fh_got < len ? sizeof(d->fh) - d->fh_got : len;
            memcpy(d->fh + d->fh_got, p, k);
            d->fh_got += k;
            p += k;
            len -= k;
            if (d->fh_got < sizeof(d->fh))
                continue;
            r = h2_frame_begin(c, d);
        } else {
            k = d->flen - d->fpos < len ? d->flen - d->fpos : len;
            r = h2_frame_payload(c, d, p, k);
            p += k;
            len -= k;
        }
        if (r < 0)
            return r;
        if (d->fpos == d->flen) {
            d->fh_got = 0;
            r = h2_frame_end(c, d);
            if (r < 0)
                return r;
        }
    }
    return c->stopped ? c->err : 0;
}

void http2_conn_finish(http2_conn_t *c, const char *error, uint64_t ts_usec)
{
    const h2_dir_t *srv = &c->d[HTTP2_RESP], *cli = &c->d[HTTP2_REQ];
    char buf[sizeof(c->why) + 64], name[32];
    const char *why = error;
    size_t n;

    (void)ts_usec;
    if (c->finished)
        return;
    announce(c);
    c->finished = 1;
    if (!why && c->stopped) {
        why = c->why;
    } else if (!why && ((srv->goaway && srv->goaway_code) || (cli->goaway && cli->goaway_code))) {
        const h2_dir_t *g = srv->goaway && srv->goaway_code ? srv : cli;

        h2_error_text(name, sizeof(name), g->goaway_code);
        snprintf(buf, sizeof(buf), "connection closed after GOAWAY from %s: %s%s%s%s",
                 h2_side_name[g->dir], name, g->goaway_dbg[0] ? " (" : "", g->goaway_dbg,
                 g->goaway_dbg[0] ? ")" : "");
        why = buf;
    }
    if (!c->stopped) {
        c->stopped = 1;
        c->err = -EBADMSG;
    }
    /* The table is emptied first: on_exchange must find a consistent decoder. */
    n = c->nstreams;
    c->nstreams = 0;
    for (size_t i = 0; i < n; i++) {
        h2_stream_t *s = c->streams[i];

        if (!s->ex->resp.complete)
            h2_set_error(s->ex, why ? why : "connection closed before the response");
        else if (!s->ex->req.complete)
            h2_set_error(s->ex, why ? why : "connection closed before the request ended");
        c->streams[i] = NULL;
        h2_stream_release(c, s);
    }
}

int http2_conn_stopped(const http2_conn_t *c)
{
    return c->stopped;
}

/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <nghttp2/nghttp2.h>

#include "grow.h"
#include "log.h"
#include "replay_conn.h"
#include "replay_pass.h"
#include "replay_ws.h"

#define H2_BODY_MAX (16u << 20)
#define H2_STREAMS_MAX 100

/* A stream's request as it arrives, then its response while it is sent. */
typedef struct h2s {
    struct h2s *next;
    int32_t id;
    http_msg_t req;
    char *method, *path, *authority, *protocol;
    rresp_t *resp;
    size_t sent;
    /* WebSocket (RFC 8441): the conversation, and our frames not yet in DATA frames */
    rws_t *ws;
    uint8_t *wsout; /* bytes wsout_off..wsout_len are still to go */
    size_t wsout_off, wsout_len, wsout_cap;
    int ws_end; /* the client closed, or sent what we do not take */
    /* A WebSocket passed through to the live server (replay_pass.c), and whether our 200
       went out */
    struct pass *tunnel;
    int tunneled; /* it was: whatever else the client sends on it is not a request */
    int tunnel_open;
} h2s_t;

struct rh2 {
    rconn_t *c;
    nghttp2_session *s;
    h2s_t *streams;
    int failed;
};

static h2s_t *find(rh2_t *h, int32_t id)
{
    for (h2s_t *s = h->streams; s; s = s->next)
        if (s->id == id)
            return s;
    return NULL;
}

static void stream_free(h2s_t *s)
{
    http_headers_free(s->req.headers, s->req.nheaders);
    http_msg_body_free(&s->req);
    free(s->method);
    free(s->path);
    free(s->authority);
    free(s->protocol);
    rresp_free(s->resp);
    rws_free(s->ws);
    free(s->wsout);
    free(s);
}

static int flush(rh2_t *h)
{
    const uint8_t *p;
    ssize_t n;

    while ((n = nghttp2_session_mem_send(h->s, &p)) > 0)
        if (rconn_write(h->c, p, (size_t)n) < 0)
            return -1;
    return n < 0 ? -1 : 0;
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    rh2_t *h = ud;
    h2s_t *s;

    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (!(s = calloc(1, sizeof(*s))))
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    s->id = frame->hd.stream_id;
    s->next = h->streams;
    h->streams = s;
    return 0;
}

static int setstr(char **dst, const uint8_t *v, size_t len)
{
    free(*dst);
    if (!(*dst = malloc(len + 1)))
        return -1;
    memcpy(*dst, v, len);
    (*dst)[len] = '\0';
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    h2s_t *s = find(ud, frame->hd.stream_id);
    int rc = 0;

    if (!s)
        return 0;
    if (namelen == 7 && !memcmp(name, ":method", 7))
        rc = setstr(&s->method, value, valuelen);
    else if (namelen == 5 && !memcmp(name, ":path", 5))
        rc = setstr(&s->path, value, valuelen);
    else if (namelen == 10 && !memcmp(name, ":authority", 10))
        rc = setstr(&s->authority, value, valuelen);
    else if (namelen == 9 && !memcmp(name, ":protocol", 9))
        rc = setstr(&s->protocol, value, valuelen);
    else if (namelen && name[0] != ':')
        rc = http_msg_add_header(&s->req, (const char *)name, namelen, (const char *)value,
                                 valuelen);
    return rc < 0 ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE : 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
    rh2_t *h = ud;
    h2s_t *s = find(h, id);

    if (s && s->tunneled) {
        if (s->tunnel)
            replay_pass_tunnel_feed(s->tunnel, data, len);
    } else if (s && s->ws) {
        if (!s->ws_end && rws_feed(s->ws, data, len) < 0) {
            /* A close (ours is queued), or frames we do not take: our side ends after it. */
            s->ws_end = 1;
            nghttp2_session_resume_data(h->s, id);
        }
    } else if (s) {
        http_msg_add_body(&s->req, data, len, H2_BODY_MAX);
    }
    return 0;
}

/* An extended CONNECT for a WebSocket (RFC 8441): its request is whole with its HEADERS. */
static int is_ws_connect(const h2s_t *s)
{
    return s->method && !strcmp(s->method, "CONNECT") && s->protocol &&
           !strcasecmp(s->protocol, "websocket");
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    rh2_t *h = ud;
    h2s_t *s;
    rreq_t rq;

    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        !(s = find(h, frame->hd.stream_id)) || s->resp || s->ws)
        return 0;
    if (s->tunneled) {
        if (s->tunnel && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
            replay_pass_tunnel_eof(s->tunnel);
        return 0;
    }
    memset(&rq, 0, sizeof(rq));
    if (frame->hd.type == NGHTTP2_HEADERS && is_ws_connect(s)) {
        rq.ws = 1;
    } else if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        return 0;
    }
    if (!s->authority) {
        const char *host = http_msg_header(&s->req, "host");
        if (host)
            setstr(&s->authority, (const uint8_t *)host, strlen(host));
    }
    rq.method = s->method && !rq.ws ? s->method : "GET";
    rq.target = s->path ? s->path : "/";
    rq.authority = s->authority;
    rq.msg = &s->req;
    rq.http2 = 1;
    rconn_request(h->c, &rq, s->id);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t err, void *ud)
{
    rh2_t *h = ud;

    for (h2s_t **pp = &h->streams; *pp; pp = &(*pp)->next)
        if ((*pp)->id == id) {
            h2s_t *s = *pp;
            *pp = s->next;
            if (s->tunnel)
                replay_pass_tunnel_drop(s->tunnel);
            stream_free(s);
            break;
        }
    return 0;
}

rh2_t *rh2_new(rconn_t *c)
{
    rh2_t *h = calloc(1, sizeof(*h));
    nghttp2_session_callbacks *cb;
    nghttp2_settings_entry iv[2] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_STREAMS_MAX},
                                    {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1}};

    if (!h || nghttp2_session_callbacks_new(&cb) != 0) {
        free(h);
        return NULL;
    }
    h->c = c;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    if (nghttp2_session_server_new(&h->s, cb, h) != 0) {
        nghttp2_session_callbacks_del(cb);
        free(h);
        return NULL;
    }
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, 2);
    flush(h);
    return h;
}

int rh2_feed(rh2_t *h, const uint8_t *data, size_t len)
{
    ssize_t n = nghttp2_session_mem_recv(h->s, data, len);

    if (n < 0) {
        log_debug("HTTP/2 client error: %s", nghttp2_strerror((int)n));
        h->failed = 1;
        return -1;
    }
    return flush(h);
}

/* HTTP/2 field names are lower case; nghttp2 sends them as given. */
static void lower_name(char *name)
{
    for (char *p = name; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p + 32);
}

/* The recorded trailers as a HEADERS frame that ends the stream (names in lower case, as
   HTTP/2 wants them; a recorded HTTP/1.1 trailer may have capitals). 0, or -1 when they could
   not be submitted (the body then ends the stream). */
static int submit_trailers(nghttp2_session *session, int32_t id, const rresp_t *r)
{
    nghttp2_nv *nv = calloc(r->ntrailers, sizeof(*nv));
    char **names = calloc(r->ntrailers, sizeof(*names));
    size_t n = 0;
    int rc = -1;

    if (nv && names) {
        for (size_t i = 0; i < r->ntrailers; i++) {
            const http_header_t *t = &r->trailers[i];
            if (t->name[0] == ':' || !(names[n] = strdup(t->name)))
                continue;
            lower_name(names[n]);
            nv[n] = (nghttp2_nv){(uint8_t *)names[n], (uint8_t *)t->value, strlen(names[n]),
                                 strlen(t->value), NGHTTP2_NV_FLAG_NONE};
            n++;
        }
        /* (nghttp2 copies the fields) */
        if (n && nghttp2_submit_trailer(session, id, nv, n) == 0)
            rc = 0;
    }
    for (size_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
    free(nv);
    return rc;
}

static ssize_t read_body(nghttp2_session *session, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    h2s_t *s = src->ptr;
    size_t left = s->resp->len - s->sent;
    size_t n = left < len ? left : len;

    (void)ud;
    if (n)
        memcpy(buf, s->resp->body + s->sent, n);
    s->sent += n;
    if (s->sent == s->resp->len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (s->resp->ntrailers && submit_trailers(session, id, s->resp) == 0)
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
    return (ssize_t)n;
}

void rh2_respond(rh2_t *h, int32_t id, rresp_t *resp)
{
    h2s_t *s = find(h, id);
    nghttp2_nv *nv;
    char status[8];
    size_t n = 0;
    nghttp2_data_provider dp;

    if (!s || !resp || !(nv = calloc(resp->nheaders + 1, sizeof(*nv)))) {
        rresp_free(resp);
        if (s)
            nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
        flush(h);
        return;
    }
    s->resp = resp;
    snprintf(status, sizeof(status), "%d", resp->status);
    nv[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status, 7, strlen(status),
                           NGHTTP2_NV_FLAG_NONE};
    for (size_t i = 0; i < resp->nheaders; i++) {
        lower_name(resp->headers[i].name);
        nv[n++] = (nghttp2_nv){(uint8_t *)resp->headers[i].name, (uint8_t *)resp->headers[i].value,
                               strlen(resp->headers[i].name), strlen(resp->headers[i].value),
                               NGHTTP2_NV_FLAG_NONE};
    }
    dp.source.ptr = s;
    dp.read_callback = read_body;
    nghttp2_submit_response(h->s, id, nv, n,
                            resp->no_body || (!resp->len && !resp->ntrailers) ? NULL : &dp);
    free(nv);
    flush(h);
}

/* Our WebSocket frames, as DATA; the stream ends once the conversation has (our close went
   out, or the client's close or bad frames ended it) and everything queued is sent. */
static ssize_t read_ws(nghttp2_session *session, int32_t id, uint8_t *buf, size_t len,
                       uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    h2s_t *s = src->ptr;
    size_t left = s->wsout_len - s->wsout_off, n = left < len ? left : len;

    (void)session;
    (void)id;
    (void)ud;
    if (n) {
        memcpy(buf, s->wsout + s->wsout_off, n);
        s->wsout_off += n;
        if (s->wsout_off == s->wsout_len)
            s->wsout_off = s->wsout_len = 0;
    }
    if (!s->wsout_len && (s->ws_end || (s->ws && rws_closed(s->ws))))
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    else if (!n)
        return NGHTTP2_ERR_DEFERRED;
    return (ssize_t)n;
}

int rh2_ws_send(rh2_t *h, int32_t id, const uint8_t *bytes, size_t len)
{
    h2s_t *s = find(h, id);

    if (!s)
        return -1;
    if (s->wsout_off && s->wsout_len + len > s->wsout_cap) {
        /* what went out makes room, once */
        memmove(s->wsout, s->wsout + s->wsout_off, s->wsout_len - s->wsout_off);
        s->wsout_len -= s->wsout_off;
        s->wsout_off = 0;
    }
    if (mr_grow(&s->wsout, &s->wsout_cap, s->wsout_len + len, 4096, 0) < 0)
        return -1;
    memcpy(s->wsout + s->wsout_len, bytes, len);
    s->wsout_len += len;
    /* (flushed by whoever called: rh2_feed after the client's frame, rh2_websocket) */
    nghttp2_session_resume_data(h->s, id);
    return 0;
}

int rh2_websocket(rh2_t *h, int32_t id, const replay_entry_t *e)
{
    h2s_t *s = find(h, id);
    const char *proto = http_msg_header(&e->ex->resp, "sec-websocket-protocol");
    nghttp2_nv nv[2] = {{(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE}};
    nghttp2_data_provider dp;
    size_t n = 1;

    if (!s || s->ws || !(s->ws = rws_new(h->c, id, e->ex)))
        return -1;
    /* The recorded subprotocol; no extension is taken up (messages go uncompressed). */
    if (proto)
        nv[n++] = (nghttp2_nv){(uint8_t *)"sec-websocket-protocol", (uint8_t *)proto, 22,
                               strlen(proto), NGHTTP2_NV_FLAG_NONE};
    dp.source.ptr = s;
    dp.read_callback = read_ws;
    if (nghttp2_submit_response(h->s, id, nv, n, &dp) != 0) {
        rws_free(s->ws);
        s->ws = NULL;
        return -1;
    }
    rws_start(s->ws); /* (sent by rh2_feed, which is where this is called from) */
    return 0;
}

int rh2_tunnel_attach(rh2_t *h, int32_t id, struct pass *p)
{
    h2s_t *s = find(h, id);

    if (!s || s->ws || s->tunneled)
        return -1;
    s->tunnel = p;
    s->tunneled = 1;
    return 0;
}

int rh2_tunnel_open(rh2_t *h, int32_t id, const char *proto, const char *ext)
{
    h2s_t *s = find(h, id);
    nghttp2_nv nv[3] = {{(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE}};
    nghttp2_data_provider dp;
    size_t n = 1;

    if (!s || !s->tunnel || s->tunnel_open)
        return -1;
    /* What the upstream agreed to, so that the client frames as it does. */
    if (proto)
        nv[n++] = (nghttp2_nv){(uint8_t *)"sec-websocket-protocol", (uint8_t *)proto, 22,
                               strlen(proto), NGHTTP2_NV_FLAG_NONE};
    if (ext)
        nv[n++] = (nghttp2_nv){(uint8_t *)"sec-websocket-extensions", (uint8_t *)ext, 24,
                               strlen(ext), NGHTTP2_NV_FLAG_NONE};
    dp.source.ptr = s;
    dp.read_callback = read_ws;
    if (nghttp2_submit_response(h->s, id, nv, n, &dp) != 0)
        return -1;
    s->tunnel_open = 1;
    flush(h);
    return 0;
}

void rh2_tunnel_end(rh2_t *h, int32_t id, rresp_t *resp)
{
    h2s_t *s = find(h, id);

    if (!s) {
        rresp_free(resp);
        return;
    }
    s->tunnel = NULL;
    if (!s->tunnel_open) {
        rh2_respond(h, id, resp);
        return;
    }
    rresp_free(resp);
    s->ws_end = 1;
    nghttp2_session_resume_data(h->s, id);
    flush(h);
}

void rh2_tunnel_forget(rh2_t *h, int32_t id)
{
    h2s_t *s = find(h, id);

    if (s)
        s->tunnel = NULL;
}

void rh2_flush(rh2_t *h)
{
    flush(h);
}

void rh2_reset(rh2_t *h, int32_t id)
{
    nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    flush(h);
}

int rh2_done(const rh2_t *h)
{
    return h->failed || (!nghttp2_session_want_read(h->s) && !nghttp2_session_want_write(h->s));
}

void rh2_free(rh2_t *h)
{
    if (!h)
        return;
    nghttp2_session_del(h->s);
    while (h->streams) {
        h2s_t *s = h->streams;
        h->streams = s->next;
        stream_free(s);
    }
    free(h);
}

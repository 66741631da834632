/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http2_int.h"
#include "websocket.h"

#define H2_MAX_BLOCK (256 * 1024)
#define H2_MAX_HEADER_LIST (1024 * 1024)
/* Decoded headers of the open streams, together (each block is at most 1 MiB). */
#define H2_HEAD_BUDGET ((size_t)64 * 1024 * 1024)

void h2_set_error(http_exchange_t *ex, const char *what)
{
    if (!ex->error)
        http_strset(&ex->error, what, strlen(what));
}

/* ---- the stream table: open streams sorted by id ---- */

size_t h2_stream_pos(const struct http2_conn *c, uint32_t id)
{
    size_t lo = 0, hi = c->nstreams;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (c->streams[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

h2_stream_t *h2_stream_find(const struct http2_conn *c, uint32_t id)
{
    size_t i = h2_stream_pos(c, id);

    return i < c->nstreams && c->streams[i]->id == id ? c->streams[i] : NULL;
}

/* Opens stream id with a new exchange; NULL after h2_fail() (limit or ENOMEM). */
h2_stream_t *h2_stream_open(struct http2_conn *c, uint32_t id, uint64_t ts)
{
    h2_stream_t *s;
    size_t i;

    if (c->nstreams >= HTTP2_MAX_STREAMS) {
        h2_fail(c, -EBADMSG, "HTTP/2 connection with more than %d open streams", HTTP2_MAX_STREAMS);
        return NULL;
    }
    if (c->nstreams == c->streams_cap) {
        size_t cap = c->streams_cap ? c->streams_cap * 2 : 16;
        h2_stream_t **v = realloc(c->streams, cap * sizeof(*v));

        if (!v) {
            h2_oom(c);
            return NULL;
        }
        c->streams = v;
        c->streams_cap = cap;
    }
    s = calloc(1, sizeof(*s));
    if (!s || !(s->ex = http_exchange_new())) {
        free(s);
        h2_oom(c);
        return NULL;
    }
    s->id = id;
    s->ex->seq = c->seq++;
    s->ex->stream_id = id;
    s->ex->req_major = 2;
    s->ex->resp_major = 2;
    s->ex->t_req_start = ts;
    s->ex->t_req_end = ts;
    if (http_strset(&s->ex->reason, "", 0) < 0) {
        http_exchange_free(s->ex);
        free(s);
        h2_oom(c);
        return NULL;
    }
    i = h2_stream_pos(c, id);
    memmove(c->streams + i + 1, c->streams + i, (c->nstreams - i) * sizeof(*c->streams));
    c->streams[i] = s;
    c->nstreams++;
    return s;
}

/* Hands the exchange over and frees the stream; it must be out of the table. */
void h2_stream_release(struct http2_conn *c, h2_stream_t *s)
{
    http_exchange_t *ex = s->ex;
    size_t kept = http_msg_kept(&ex->req) + http_msg_kept(&ex->resp);

    websocket_conn_free(s->ws);
    c->body_kept -= kept < c->body_kept ? kept : c->body_kept;
    c->head_kept -= s->head_bytes < c->head_kept ? s->head_bytes : c->head_kept;
    free(s);
    if (c->cb.on_exchange)
        c->cb.on_exchange(c->opaque, ex);
    else
        http_exchange_free(ex);
}

void h2_stream_close(struct http2_conn *c, h2_stream_t *s)
{
    size_t i = h2_stream_pos(c, s->id);

    memmove(c->streams + i, c->streams + i + 1, (c->nstreams - i - 1) * sizeof(*c->streams));
    c->nstreams--;
    h2_stream_release(c, s);
}

/* Bodies share one budget; once a body lost bytes it keeps no more, so what
   is kept is always a prefix of the body. */
int h2_add_body(struct http2_conn *c, http_msg_t *m, const uint8_t *p, size_t n)
{
    size_t before = http_msg_kept(m), limit = c->max_body;
    int r;

    if (m->body_truncated) {
        limit = before;
    } else {
        size_t room = c->body_budget - c->body_kept;

        if (limit > before + room)
            limit = before + room;
    }
    r = http_msg_add_body(m, p, n, limit);
    if (r < 0)
        return h2_oom(c);
    c->body_kept += http_msg_kept(m) - before;
    return 0;
}

void h2_side_end(struct http2_conn *c, h2_stream_t *s, int dir)
{
    if (dir == HTTP2_REQ) {
        s->req_state = ST_ENDED;
        s->ex->req.complete = 1;
        s->ex->t_req_end = c->ts;
    } else {
        s->resp_state = ST_ENDED;
        s->ex->resp.complete = 1;
        s->ex->t_resp_end = c->ts;
    }
    if (s->req_state == ST_ENDED && s->resp_state == ST_ENDED)
        h2_stream_close(c, s);
}

/* ---- header blocks ---- */

void h2_blk_reset(struct http2_conn *c)
{
    http_headers_free(c->blk.headers, c->blk.nheaders);
    memset(&c->blk, 0, sizeof(c->blk));
}

/* Moves the decoded fields to the end of *dst (headers or trailers). */
static int take_fields(struct http2_conn *c, http_header_t **dst, size_t *n, size_t *cap)
{
    http_msg_t *b = &c->blk;

    if (*n == 0 && b->nheaders) {
        free(*dst);
        *dst = b->headers;
        *n = b->nheaders;
        *cap = b->headers_cap;
        b->headers = NULL;
        b->nheaders = b->headers_cap = 0;
        return 0;
    }
    if (*n + b->nheaders > *cap) {
        http_header_t *h = realloc(*dst, (*n + b->nheaders) * sizeof(*h));

        if (!h)
            return h2_oom(c);
        *dst = h;
        *cap = *n + b->nheaders;
    }
    if (b->nheaders)
        memcpy(*dst + *n, b->headers, b->nheaders * sizeof(*b->headers));
    *n += b->nheaders;
    b->nheaders = 0;
    return 0;
}

static const char *blk_get(const struct http2_conn *c, const char *name)
{
    return http_msg_header(&c->blk, name);
}

/* Decodes the whole block into c->blk; *bytes is its size as counted for limits. */
static int inflate_block(struct http2_conn *c, h2_dir_t *d, size_t *bytes)
{
    static const uint8_t empty[1];
    const uint8_t *in = d->block ? d->block : empty;
    size_t inlen = d->block_len, total = 0;

    /* Between blocks, so the inflater accepts a new limit now. */
    if (d->table_applied != d->table_wanted) {
        if (nghttp2_hd_inflate_change_table_size(d->inf, d->table_wanted) != 0)
            return h2_oom(c);
        d->table_applied = d->table_wanted;
    }
    h2_blk_reset(c);
    for (;;) {
        nghttp2_nv nv;
        int fl = 0;
        ssize_t rv = nghttp2_hd_inflate_hd2(d->inf, &nv, &fl, in, inlen, 1);

        if (rv == NGHTTP2_ERR_NOMEM)
            return h2_oom(c);
        if (rv < 0)
            return h2_fail(c, -EBADMSG, "HTTP/2 HPACK decoding failed (%s header block, stream %u)",
                           h2_side_name[d->dir], (unsigned)d->block_sid);
        in += rv;
        inlen -= (size_t)rv;
        if (fl & NGHTTP2_HD_INFLATE_EMIT) {
            total += nv.namelen + nv.valuelen + 32;
            if (total > H2_MAX_HEADER_LIST)
                return h2_fail(c, -EBADMSG,
                               "HTTP/2 header list of stream %u decodes to more than 1 MiB",
                               (unsigned)d->block_sid);
            if (http_msg_add_header(&c->blk, (const char *)nv.name, nv.namelen,
                                    (const char *)nv.value, nv.valuelen) < 0)
                return h2_oom(c);
        }
        if (fl & NGHTTP2_HD_INFLATE_FINAL) {
            nghttp2_hd_inflate_end_headers(d->inf);
            break;
        }
        if (!(fl & NGHTTP2_HD_INFLATE_EMIT) && inlen == 0)
            return h2_fail(c, -EBADMSG, "HTTP/2 HPACK header block of stream %u is truncated",
                           (unsigned)d->block_sid);
    }
    if (c->head_kept + total > H2_HEAD_BUDGET)
        return h2_fail(c, -EBADMSG, "HTTP/2 headers of the open streams exceed 64 MiB");
    *bytes = total;
    return 0;
}

/* method and target from the pseudo-headers of a request (or a promise),
   once they are in ex->req. */
static int request_line(struct http2_conn *c, h2_stream_t *s)
{
    const http_msg_t *req = &s->ex->req;
    const char *m = http_msg_header(req, ":method"), *path = http_msg_header(req, ":path");
    const char *proto = http_msg_header(req, ":protocol");

    if (!path)
        path = http_msg_header(req, ":authority");
    if (http_strset(&s->ex->method, m ? m : "", m ? strlen(m) : 0) < 0 ||
        http_strset(&s->ex->target, path ? path : "", path ? strlen(path) : 0) < 0)
        return h2_oom(c);
    s->ws_connect = m && strcmp(m, "CONNECT") == 0 && proto && strcasecmp(proto, "websocket") == 0;
    return 0;
}

static void ws_error(void *opaque, int dir, const char *message)
{
    h2_stream_t *s = opaque;

    (void)dir;
    h2_set_error(s->ex, message);
}

static int response_head(struct http2_conn *c, h2_stream_t *s, size_t bytes)
{
    http_exchange_t *ex = s->ex;
    const char *st = blk_get(c, ":status");
    int status = 0;

    if (st && strlen(st) == 3 && st[0] >= '1' && st[0] <= '9' && st[1] >= '0' && st[1] <= '9' &&
        st[2] >= '0' && st[2] <= '9')
        status = atoi(st);
    if (status >= 100 && status < 200 && !c->d[HTTP2_RESP].block_end_stream)
        return 0; /* interim response: skipped */
    if (take_fields(c, &ex->resp.headers, &ex->resp.nheaders, &ex->resp.headers_cap) < 0)
        return c->err;
    s->head_bytes += bytes;
    c->head_kept += bytes;
    ex->status = status;
    ex->t_resp_start = c->d[HTTP2_RESP].block_ts;
    ex->t_resp_end = c->ts;
    s->resp_state = ST_OPEN;
    if (s->ws_connect && status == 200) {
        websocket_callbacks_t wcb = {.on_error = ws_error};

        s->ws = websocket_conn_new(http_msg_header(&ex->resp, "sec-websocket-extensions"), ex, &wcb,
                                   s, c->max_body, c->max_body);
        if (!s->ws)
            return h2_oom(c);
    }
    return 0;
}

static int headers_done(struct http2_conn *c, h2_dir_t *d, size_t bytes)
{
    h2_stream_t *s = h2_stream_find(c, d->block_sid);
    http_exchange_t *ex;
    int *state;

    if (!s)
        return 0; /* a stream already closed: the block only fed HPACK */
    ex = s->ex;
    state = d->dir == HTTP2_REQ ? &s->req_state : &s->resp_state;
    if (*state == ST_ENDED)
        return 0;
    if (*state == ST_OPEN) {
        http_msg_t *m = d->dir == HTTP2_REQ ? &ex->req : &ex->resp;

        if (take_fields(c, &m->trailers, &m->ntrailers, &m->trailers_cap) < 0)
            return c->err;
        s->head_bytes += bytes;
        c->head_kept += bytes;
    } else if (d->dir == HTTP2_REQ) {
        if (take_fields(c, &ex->req.headers, &ex->req.nheaders, &ex->req.headers_cap) < 0 ||
            request_line(c, s) < 0)
            return c->err;
        s->head_bytes += bytes;
        c->head_kept += bytes;
        s->req_state = ST_OPEN;
        ex->announced = 1;
        if (c->cb.on_request_head)
            c->cb.on_request_head(c->opaque, ex);
    } else if (response_head(c, s, bytes) < 0) {
        return c->err;
    }
    if (d->block_end_stream && *state == ST_OPEN)
        h2_side_end(c, s, d->dir);
    return 0;
}

static int promise_done(struct http2_conn *c, h2_dir_t *d, size_t bytes)
{
    uint32_t id = d->promised;
    h2_stream_t *s;

    if (id == 0 || (id & 1) || id <= d->last_sid)
        return h2_fail(c, -EBADMSG, "HTTP/2 PUSH_PROMISE with invalid promised stream %u",
                       (unsigned)id);
    d->last_sid = id;
    s = h2_stream_open(c, id, d->block_ts);
    if (!s)
        return c->err;
    s->ex->pushed = 1;
    s->ex->t_req_end = d->block_ts;
    s->ex->req.complete = 1;
    s->req_state = ST_ENDED;
    if (take_fields(c, &s->ex->req.headers, &s->ex->req.nheaders, &s->ex->req.headers_cap) < 0 ||
        request_line(c, s) < 0)
        return c->err;
    s->head_bytes += bytes;
    c->head_kept += bytes;
    if (c->cb.on_request_begin)
        c->cb.on_request_begin(c->opaque, s->ex);
    s->ex->announced = 1;
    if (c->cb.on_request_head)
        c->cb.on_request_head(c->opaque, s->ex);
    return 0;
}

int h2_block_done(struct http2_conn *c, h2_dir_t *d)
{
    size_t bytes = 0;
    int r;

    d->in_block = 0;
    r = inflate_block(c, d, &bytes);
    if (r == 0)
        r = d->block_type == F_PUSH_PROMISE ? promise_done(c, d, bytes) : headers_done(c, d, bytes);
    h2_blk_reset(c);
    if (d->block_cap > 64 * 1024) {
        free(d->block);
        d->block = NULL;
        d->block_cap = 0;
    }
    d->block_len = 0;
    return r;
}

int h2_block_append(struct http2_conn *c, h2_dir_t *d, const uint8_t *p, size_t n)
{
    if (d->block_len + n > H2_MAX_BLOCK)
        return h2_fail(c, -EBADMSG, "HTTP/2 header block of stream %u larger than 256 KiB",
                       (unsigned)d->block_sid);
    if (d->block_len + n > d->block_cap) {
        size_t cap = d->block_cap ? d->block_cap : 4096;
        uint8_t *b;

        while (cap < d->block_len + n)
            cap *= 2;
        b = realloc(d->block, cap);
        if (!b)
            return h2_oom(c);
        d->block = b;
        d->block_cap = cap;
    }
    memcpy(d->block + d->block_len, p, n);
    d->block_len += n;
    return 0;
}

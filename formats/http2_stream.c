/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http2_int.h"
#include "websocket.h"

#define H2_MAX_HEADER_LIST (1024 * 1024)
/* Decoded headers of the open streams, together (each block keeps at most 1 MiB). */
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

void h2_blk_reset(h2_dir_t *d)
{
    http_headers_free(d->blk.headers, d->blk.nheaders);
    memset(&d->blk, 0, sizeof(d->blk));
}

/* Moves the decoded fields of d's block to the end of *dst (headers or trailers). */
static int take_fields(struct http2_conn *c, h2_dir_t *d, http_header_t **dst, size_t *n,
                       size_t *cap)
{
    http_msg_t *b = &d->blk;

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

static const char *blk_get(const h2_dir_t *d, const char *name)
{
    return http_msg_header(&d->blk, name);
}

int h2_block_begin(struct http2_conn *c, h2_dir_t *d)
{
    h2_blk_reset(d);
    d->blk_bytes = d->blk_kept = 0;
    /* Between blocks, so the inflater accepts a new limit now. */
    if (d->table_applied != d->table_wanted) {
        if (nghttp2_hd_inflate_change_table_size(d->inf, d->table_wanted) != 0)
            return h2_oom(c);
        d->table_applied = d->table_wanted;
    }
    return 0;
}

/*
 * Decodes what HPACK can of in into d->blk; final: in ends the block. Fields
 * past 1 MiB (decoded) are decoded and dropped, not kept: the dynamic table
 * stays right for the blocks that follow, and the exchange says what was cut.
 */
static int inflate(struct http2_conn *c, h2_dir_t *d, const uint8_t *in, size_t inlen, int final)
{
    static const uint8_t empty[1];

    if (!in)
        in = empty;
    for (;;) {
        nghttp2_nv nv;
        int fl = 0;
        ssize_t rv = nghttp2_hd_inflate_hd2(d->inf, &nv, &fl, in, inlen, final);

        if (rv == NGHTTP2_ERR_NOMEM)
            return h2_oom(c);
        if (rv < 0)
            return h2_fail(c, -EBADMSG, "HTTP/2 HPACK decoding failed (%s header block, stream %u)",
                           h2_side_name[d->dir], (unsigned)d->block_sid);
        in += rv;
        inlen -= (size_t)rv;
        if (fl & NGHTTP2_HD_INFLATE_EMIT) {
            size_t size = nv.namelen + nv.valuelen + 32;

            d->blk_bytes += size;
            if (d->blk_bytes <= H2_MAX_HEADER_LIST) {
                if (http_msg_add_header(&d->blk, (const char *)nv.name, nv.namelen,
                                        (const char *)nv.value, nv.valuelen) < 0)
                    return h2_oom(c);
                d->blk_kept += size;
            }
        }
        if (fl & NGHTTP2_HD_INFLATE_FINAL) {
            nghttp2_hd_inflate_end_headers(d->inf);
            return 0;
        }
        if (!(fl & NGHTTP2_HD_INFLATE_EMIT) && inlen == 0) {
            if (final)
                return h2_fail(c, -EBADMSG, "HTTP/2 HPACK header block of stream %u is truncated",
                               (unsigned)d->block_sid);
            return 0;
        }
    }
}

/* The exchange of a block whose fields were cut says so. */
static void note_cut(const h2_dir_t *d, http_exchange_t *ex)
{
    if (d->blk_bytes > d->blk_kept)
        h2_set_error(ex, "HTTP/2 header list decodes to more than 1 MiB: the fields past it "
                         "are left out");
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
    h2_dir_t *d = &c->d[HTTP2_RESP];
    const char *st = blk_get(d, ":status");
    int status = 0;

    if (st && strlen(st) == 3 && st[0] >= '1' && st[0] <= '9' && st[1] >= '0' && st[1] <= '9' &&
        st[2] >= '0' && st[2] <= '9')
        status = atoi(st);
    if (status >= 100 && status < 200 && !d->block_end_stream)
        return 0; /* interim response: skipped */
    if (take_fields(c, d, &ex->resp.headers, &ex->resp.nheaders, &ex->resp.headers_cap) < 0)
        return c->err;
    s->head_bytes += bytes;
    c->head_kept += bytes;
    ex->status = status;
    ex->t_resp_start = d->block_ts;
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
    note_cut(d, ex);
    state = d->dir == HTTP2_REQ ? &s->req_state : &s->resp_state;
    if (*state == ST_ENDED)
        return 0;
    if (*state == ST_OPEN) {
        http_msg_t *m = d->dir == HTTP2_REQ ? &ex->req : &ex->resp;

        if (take_fields(c, d, &m->trailers, &m->ntrailers, &m->trailers_cap) < 0)
            return c->err;
        s->head_bytes += bytes;
        c->head_kept += bytes;
    } else if (d->dir == HTTP2_REQ) {
        if (take_fields(c, d, &ex->req.headers, &ex->req.nheaders, &ex->req.headers_cap) < 0 ||
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
    note_cut(d, s->ex);
    if (take_fields(c, d, &s->ex->req.headers, &s->ex->req.nheaders, &s->ex->req.headers_cap) < 0 ||
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
    int r;

    d->in_block = 0;
    r = inflate(c, d, NULL, 0, 1);
    if (r == 0 && c->head_kept + d->blk_kept > H2_HEAD_BUDGET)
        r = h2_fail(c, -EBADMSG, "HTTP/2 headers of the open streams exceed 64 MiB");
    if (r == 0)
        r = d->block_type == F_PUSH_PROMISE ? promise_done(c, d, d->blk_kept)
                                            : headers_done(c, d, d->blk_kept);
    h2_blk_reset(d);
    return r;
}

int h2_block_append(struct http2_conn *c, h2_dir_t *d, const uint8_t *p, size_t n)
{
    return inflate(c, d, p, n, 0);
}

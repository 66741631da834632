/* SPDX-License-Identifier: MIT */
#include "http2.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "websocket.h"

#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24
#define H2_MAX_BLOCK (256 * 1024)
#define H2_MAX_HEADER_LIST (1024 * 1024)
#define H2_MAX_TABLE (1024 * 1024)
#define H2_DEFAULT_TABLE 4096
#define H2_DEFAULT_MAX_BODY (16 * 1024 * 1024)
#define H2_BODY_BUDGET ((size_t)256 * 1024 * 1024)
/* Decoded headers of the open streams, together (each block is at most 1 MiB). */
#define H2_HEAD_BUDGET ((size_t)64 * 1024 * 1024)
#define H2_MIN_FRAME 16384
#define H2_MAX_FRAME 16777215

enum {
    F_DATA = 0,
    F_HEADERS = 1,
    F_PRIORITY = 2,
    F_RST_STREAM = 3,
    F_SETTINGS = 4,
    F_PUSH_PROMISE = 5,
    F_PING = 6,
    F_GOAWAY = 7,
    F_WINDOW_UPDATE = 8,
    F_CONTINUATION = 9,
};

#define FL_END_STREAM 0x01
#define FL_ACK 0x01
#define FL_END_HEADERS 0x04
#define FL_PADDED 0x08
#define FL_PRIORITY 0x20

#define SET_HEADER_TABLE_SIZE 0x1
#define SET_MAX_FRAME_SIZE 0x5

/* Per side of a stream: its head not yet decoded, decoded (body follows), ended. */
enum { ST_NONE, ST_OPEN, ST_ENDED };

typedef struct h2_stream {
    uint32_t id;
    http_exchange_t *ex;
    int req_state, resp_state;
    int ws_connect;       /* :method CONNECT with :protocol websocket (RFC 8441) */
    websocket_conn_t *ws; /* once the extended CONNECT got its 200 */
    size_t head_bytes;    /* decoded header bytes it holds, against H2_HEAD_BUDGET */
} h2_stream_t;

typedef struct h2_dir {
    int dir;
    size_t preface_got; /* client: bytes of the preface matched so far */
    int seen_settings;  /* the first frame, which must be SETTINGS, was read */
    uint8_t fh[9];      /* frame header being read */
    size_t fh_got;
    uint32_t flen, fpos, sid;
    uint8_t type, flags;
    uint32_t pre_len;     /* pad length, priority, promised id: before the content */
    uint32_t content_end; /* where padding starts, known once the prefix is read */
    uint8_t pre[6];
    uint8_t small[8]; /* payload of a small control frame, or a SETTINGS entry */
    size_t small_got;
    char dbg[64]; /* start of a GOAWAY's debug data */
    size_t dbg_len;
    uint64_t frame_ts;
    /* A header block (HEADERS or PUSH_PROMISE, then CONTINUATION frames). */
    int in_block, block_end_stream;
    uint8_t block_type;
    uint32_t block_sid, promised;
    uint64_t block_ts;
    uint8_t *block;
    size_t block_len, block_cap;
    nghttp2_hd_inflater *inf;
    size_t table_applied, table_wanted; /* HPACK table limit, from the other side */
    uint32_t max_frame;                 /* largest frame it may send, from the other side */
    uint32_t last_sid;                  /* highest stream id it opened or promised */
    int goaway;
    uint32_t goaway_last, goaway_code;
    char goaway_dbg[64];
} h2_dir_t;

struct http2_conn {
    http2_callbacks_t cb;
    void *opaque;
    size_t max_body, body_budget, body_kept, head_kept;
    h2_dir_t d[2];
    h2_stream_t **streams; /* open streams, sorted by id */
    size_t nstreams, streams_cap;
    http_msg_t blk; /* the header block being decoded */
    uint64_t seq, ts;
    int stopped, finished, err;
    int announce; /* upgrade: stream 1 not yet shown to on_request_* */
    char why[256];
};

static const char *const side_name[2] = {"client", "server"};

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

static void error_text(char *buf, size_t size, uint32_t code)
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

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int fail(struct http2_conn *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A connection error: reported once, then the decoder reads nothing more. */
static int fail(struct http2_conn *c, int err, const char *fmt, ...)
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

static int oom(struct http2_conn *c)
{
    return fail(c, -ENOMEM, "HTTP/2 decoder out of memory");
}

static void set_error(http_exchange_t *ex, const char *what)
{
    if (!ex->error)
        http_strset(&ex->error, what, strlen(what));
}

/* ---- the stream table: open streams sorted by id ---- */

static size_t stream_pos(const struct http2_conn *c, uint32_t id)
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

static h2_stream_t *stream_find(const struct http2_conn *c, uint32_t id)
{
    size_t i = stream_pos(c, id);

    return i < c->nstreams && c->streams[i]->id == id ? c->streams[i] : NULL;
}

/* Opens stream id with a new exchange; NULL after fail() (limit or ENOMEM). */
static h2_stream_t *stream_open(struct http2_conn *c, uint32_t id, uint64_t ts)
{
    h2_stream_t *s;
    size_t i;

    if (c->nstreams >= HTTP2_MAX_STREAMS) {
        fail(c, -EBADMSG, "HTTP/2 connection with more than %d open streams", HTTP2_MAX_STREAMS);
        return NULL;
    }
    if (c->nstreams == c->streams_cap) {
        size_t cap = c->streams_cap ? c->streams_cap * 2 : 16;
        h2_stream_t **v = realloc(c->streams, cap * sizeof(*v));

        if (!v) {
            oom(c);
            return NULL;
        }
        c->streams = v;
        c->streams_cap = cap;
    }
    s = calloc(1, sizeof(*s));
    if (!s || !(s->ex = http_exchange_new())) {
        free(s);
        oom(c);
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
        oom(c);
        return NULL;
    }
    i = stream_pos(c, id);
    memmove(c->streams + i + 1, c->streams + i, (c->nstreams - i) * sizeof(*c->streams));
    c->streams[i] = s;
    c->nstreams++;
    return s;
}

/* Hands the exchange over and frees the stream; it must be out of the table. */
static void stream_release(struct http2_conn *c, h2_stream_t *s)
{
    http_exchange_t *ex = s->ex;
    size_t kept = ex->req.body_len + ex->resp.body_len;

    websocket_conn_free(s->ws);
    c->body_kept -= kept < c->body_kept ? kept : c->body_kept;
    c->head_kept -= s->head_bytes < c->head_kept ? s->head_bytes : c->head_kept;
    free(s);
    if (c->cb.on_exchange)
        c->cb.on_exchange(c->opaque, ex);
    else
        http_exchange_free(ex);
}

static void stream_close(struct http2_conn *c, h2_stream_t *s)
{
    size_t i = stream_pos(c, s->id);

    memmove(c->streams + i, c->streams + i + 1, (c->nstreams - i - 1) * sizeof(*c->streams));
    c->nstreams--;
    stream_release(c, s);
}

/* Bodies share one budget; once a body lost bytes it keeps no more, so what
   is kept is always a prefix of the body. */
static int add_body(struct http2_conn *c, http_msg_t *m, const uint8_t *p, size_t n)
{
    size_t limit = c->max_body, before = m->body_len;
    int r;

    if (m->body_truncated) {
        limit = m->body_len;
    } else {
        size_t room = c->body_budget - c->body_kept;

        if (limit > m->body_len + room)
            limit = m->body_len + room;
    }
    r = http_msg_add_body(m, p, n, limit);
    if (r < 0)
        return oom(c);
    c->body_kept += m->body_len - before;
    return 0;
}

static void side_end(struct http2_conn *c, h2_stream_t *s, int dir)
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
        stream_close(c, s);
}

/* ---- header blocks ---- */

static void fields_free(http_header_t *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(h[i].name);
        free(h[i].value);
    }
    free(h);
}

static void blk_reset(struct http2_conn *c)
{
    fields_free(c->blk.headers, c->blk.nheaders);
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
            return oom(c);
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
            return oom(c);
        d->table_applied = d->table_wanted;
    }
    blk_reset(c);
    for (;;) {
        nghttp2_nv nv;
        int fl = 0;
        ssize_t rv = nghttp2_hd_inflate_hd2(d->inf, &nv, &fl, in, inlen, 1);

        if (rv == NGHTTP2_ERR_NOMEM)
            return oom(c);
        if (rv < 0)
            return fail(c, -EBADMSG, "HTTP/2 HPACK decoding failed (%s header block, stream %u)",
                        side_name[d->dir], (unsigned)d->block_sid);
        in += rv;
        inlen -= (size_t)rv;
        if (fl & NGHTTP2_HD_INFLATE_EMIT) {
            total += nv.namelen + nv.valuelen + 32;
            if (total > H2_MAX_HEADER_LIST)
                return fail(c, -EBADMSG,
                            "HTTP/2 header list of stream %u decodes to more than 1 MiB",
                            (unsigned)d->block_sid);
            if (http_msg_add_header(&c->blk, (const char *)nv.name, nv.namelen,
                                    (const char *)nv.value, nv.valuelen) < 0)
                return oom(c);
        }
        if (fl & NGHTTP2_HD_INFLATE_FINAL) {
            nghttp2_hd_inflate_end_headers(d->inf);
            break;
        }
        if (!(fl & NGHTTP2_HD_INFLATE_EMIT) && inlen == 0)
            return fail(c, -EBADMSG, "HTTP/2 HPACK header block of stream %u is truncated",
                        (unsigned)d->block_sid);
    }
    if (c->head_kept + total > H2_HEAD_BUDGET)
        return fail(c, -EBADMSG, "HTTP/2 headers of the open streams exceed 64 MiB");
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
        return oom(c);
    s->ws_connect = m && strcmp(m, "CONNECT") == 0 && proto && strcasecmp(proto, "websocket") == 0;
    return 0;
}

static void ws_error(void *opaque, int dir, const char *message)
{
    h2_stream_t *s = opaque;

    (void)dir;
    set_error(s->ex, message);
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
            return oom(c);
    }
    return 0;
}

static int headers_done(struct http2_conn *c, h2_dir_t *d, size_t bytes)
{
    h2_stream_t *s = stream_find(c, d->block_sid);
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
        if (c->cb.on_request_head)
            c->cb.on_request_head(c->opaque, ex);
    } else if (response_head(c, s, bytes) < 0) {
        return c->err;
    }
    if (d->block_end_stream && *state == ST_OPEN)
        side_end(c, s, d->dir);
    return 0;
}

static int promise_done(struct http2_conn *c, h2_dir_t *d, size_t bytes)
{
    uint32_t id = d->promised;
    h2_stream_t *s;

    if (id == 0 || (id & 1) || id <= d->last_sid)
        return fail(c, -EBADMSG, "HTTP/2 PUSH_PROMISE with invalid promised stream %u",
                    (unsigned)id);
    d->last_sid = id;
    s = stream_open(c, id, d->block_ts);
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
    if (c->cb.on_request_head)
        c->cb.on_request_head(c->opaque, s->ex);
    return 0;
}

static int block_done(struct http2_conn *c, h2_dir_t *d)
{
    size_t bytes = 0;
    int r;

    d->in_block = 0;
    r = inflate_block(c, d, &bytes);
    if (r == 0)
        r = d->block_type == F_PUSH_PROMISE ? promise_done(c, d, bytes) : headers_done(c, d, bytes);
    blk_reset(c);
    if (d->block_cap > 64 * 1024) {
        free(d->block);
        d->block = NULL;
        d->block_cap = 0;
    }
    d->block_len = 0;
    return r;
}

static int block_append(struct http2_conn *c, h2_dir_t *d, const uint8_t *p, size_t n)
{
    if (d->block_len + n > H2_MAX_BLOCK)
        return fail(c, -EBADMSG, "HTTP/2 header block of stream %u larger than 256 KiB",
                    (unsigned)d->block_sid);
    if (d->block_len + n > d->block_cap) {
        size_t cap = d->block_cap ? d->block_cap : 4096;
        uint8_t *b;

        while (cap < d->block_len + n)
            cap *= 2;
        b = realloc(d->block, cap);
        if (!b)
            return oom(c);
        d->block = b;
        d->block_cap = cap;
    }
    memcpy(d->block + d->block_len, p, n);
    d->block_len += n;
    return 0;
}

/* ---- frames ---- */

/* A SETTINGS value from side d governs what the other side may send. */
static int settings_entry(struct http2_conn *c, h2_dir_t *d)
{
    h2_dir_t *o = &c->d[!d->dir];
    uint32_t id = (uint32_t)d->small[0] << 8 | d->small[1], v = be32(d->small + 2);

    if (id == SET_HEADER_TABLE_SIZE) {
        size_t t = v < H2_MAX_TABLE ? v : H2_MAX_TABLE;

        if (t > o->table_wanted)
            o->table_wanted = t;
    } else if (id == SET_MAX_FRAME_SIZE) {
        if (v < H2_MIN_FRAME || v > H2_MAX_FRAME)
            return fail(c, -EBADMSG, "HTTP/2 SETTINGS_MAX_FRAME_SIZE %u from the %s out of range",
                        (unsigned)v, side_name[d->dir]);
        if (v > o->max_frame)
            o->max_frame = v;
    }
    return 0;
}

/* The HEADERS frame of a request opens its stream as soon as its header is read. */
static int request_headers_begin(struct http2_conn *c, h2_dir_t *d)
{
    h2_stream_t *s;

    if (stream_find(c, d->sid) || d->sid <= d->last_sid)
        return 0; /* trailers, or a stream already closed */
    if (!(d->sid & 1))
        return fail(c, -EBADMSG, "HTTP/2 client opened stream %u with an even id",
                    (unsigned)d->sid);
    d->last_sid = d->sid;
    s = stream_open(c, d->sid, d->frame_ts);
    if (!s)
        return c->err;
    if (c->cb.on_request_begin)
        c->cb.on_request_begin(c->opaque, s->ex);
    return 0;
}

static int frame_begin(struct http2_conn *c, h2_dir_t *d)
{
    const char *who = side_name[d->dir];
    int padded;

    d->flen = (uint32_t)d->fh[0] << 16 | (uint32_t)d->fh[1] << 8 | d->fh[2];
    d->type = d->fh[3];
    d->flags = d->fh[4];
    d->sid = be32(d->fh + 5) & 0x7fffffff;
    d->fpos = 0;
    d->pre_len = 0;
    d->content_end = d->flen;
    d->small_got = 0;
    d->dbg_len = 0;
    padded = (d->flags & FL_PADDED) != 0;
    if (!d->seen_settings) {
        if (d->type != F_SETTINGS || (d->flags & FL_ACK))
            return fail(c, -EBADMSG, "HTTP/2 %s preface: the first frame is not SETTINGS", who);
        d->seen_settings = 1;
    }
    if (d->flen > d->max_frame)
        return fail(c, -EBADMSG,
                    "HTTP/2 frame of %u bytes from the %s exceeds "
                    "SETTINGS_MAX_FRAME_SIZE %u",
                    (unsigned)d->flen, who, (unsigned)d->max_frame);
    if (d->in_block && (d->type != F_CONTINUATION || d->sid != d->block_sid))
        return fail(c, -EBADMSG,
                    "HTTP/2 header block of stream %u interrupted by a frame "
                    "of type %u",
                    (unsigned)d->block_sid, d->type);
    switch (d->type) {
    case F_DATA:
    case F_HEADERS:
    case F_PRIORITY:
    case F_RST_STREAM:
    case F_PUSH_PROMISE:
    case F_CONTINUATION:
        if (d->sid == 0)
            return fail(c, -EBADMSG, "HTTP/2 frame of type %u from the %s on stream 0", d->type,
                        who);
        break;
    case F_SETTINGS:
    case F_PING:
    case F_GOAWAY:
        if (d->sid != 0)
            return fail(c, -EBADMSG, "HTTP/2 frame of type %u from the %s on stream %u", d->type,
                        who, (unsigned)d->sid);
        break;
    }
    switch (d->type) {
    case F_DATA:
        d->pre_len = padded;
        break;
    case F_HEADERS:
        d->pre_len = padded + (d->flags & FL_PRIORITY ? 5 : 0);
        break;
    case F_PUSH_PROMISE:
        if (d->dir == HTTP2_REQ)
            return fail(c, -EBADMSG, "HTTP/2 PUSH_PROMISE from the client");
        d->pre_len = padded + 4;
        break;
    case F_PRIORITY:
        if (d->flen != 5)
            return fail(c, -EBADMSG, "HTTP/2 PRIORITY frame of %u bytes", (unsigned)d->flen);
        break;
    case F_RST_STREAM:
    case F_WINDOW_UPDATE:
        if (d->flen != 4)
            return fail(c, -EBADMSG, "HTTP/2 frame of type %u with %u bytes", d->type,
                        (unsigned)d->flen);
        break;
    case F_PING:
        if (d->flen != 8)
            return fail(c, -EBADMSG, "HTTP/2 PING frame of %u bytes", (unsigned)d->flen);
        break;
    case F_SETTINGS:
        if ((d->flags & FL_ACK) ? d->flen != 0 : d->flen % 6 != 0)
            return fail(c, -EBADMSG, "HTTP/2 SETTINGS frame of %u bytes", (unsigned)d->flen);
        break;
    case F_GOAWAY:
        if (d->flen < 8)
            return fail(c, -EBADMSG, "HTTP/2 GOAWAY frame of %u bytes", (unsigned)d->flen);
        break;
    case F_CONTINUATION:
        if (!d->in_block)
            return fail(c, -EBADMSG, "HTTP/2 CONTINUATION frame without a header block");
        break;
    }
    if (d->flen < d->pre_len)
        return fail(c, -EBADMSG, "HTTP/2 frame of type %u too short for its fields", d->type);
    if (d->type == F_HEADERS || d->type == F_PUSH_PROMISE) {
        d->in_block = 1;
        d->block_type = d->type;
        d->block_sid = d->sid;
        d->block_end_stream = d->type == F_HEADERS && (d->flags & FL_END_STREAM);
        d->block_ts = d->frame_ts;
        d->block_len = 0;
        if (d->type == F_HEADERS && d->dir == HTTP2_REQ)
            return request_headers_begin(c, d);
    }
    return 0;
}

static int prefix_done(struct http2_conn *c, h2_dir_t *d)
{
    uint32_t pad = (d->flags & FL_PADDED) ? d->pre[0] : 0;

    if ((uint64_t)d->pre_len + pad > d->flen)
        return fail(c, -EBADMSG, "HTTP/2 frame of type %u with more padding than payload", d->type);
    d->content_end = d->flen - pad;
    if (d->type == F_PUSH_PROMISE)
        d->promised = be32(d->pre + ((d->flags & FL_PADDED) ? 1 : 0)) & 0x7fffffff;
    return 0;
}

static int data_content(struct http2_conn *c, h2_dir_t *d, const uint8_t *p, size_t n)
{
    h2_stream_t *s = stream_find(c, d->sid);
    http_msg_t *m;

    if (!s || (d->dir == HTTP2_REQ ? s->req_state : s->resp_state) != ST_OPEN)
        return 0;
    if (s->ws) {
        /* Its errors land in ex->error through ws_error; the stream goes on. */
        int r = websocket_conn_feed(
            s->ws, d->dir == HTTP2_REQ ? WEBSOCKET_CLIENT : WEBSOCKET_SERVER, p, n, c->ts);
        return r == -ENOMEM ? oom(c) : 0;
    }
    m = d->dir == HTTP2_REQ ? &s->ex->req : &s->ex->resp;
    return add_body(c, m, p, n);
}

static int content(struct http2_conn *c, h2_dir_t *d, const uint8_t *p, size_t n)
{
    switch (d->type) {
    case F_DATA:
        return data_content(c, d, p, n);
    case F_HEADERS:
    case F_PUSH_PROMISE:
    case F_CONTINUATION:
        return block_append(c, d, p, n);
    case F_SETTINGS:
        for (size_t i = 0; i < n; i++) {
            d->small[d->small_got++] = p[i];
            if (d->small_got == 6) {
                int r = settings_entry(c, d);

                if (r < 0)
                    return r;
                d->small_got = 0;
            }
        }
        return 0;
    case F_PRIORITY:
    case F_RST_STREAM:
    case F_PING:
    case F_WINDOW_UPDATE:
    case F_GOAWAY:
        while (n && d->small_got < sizeof(d->small)) {
            d->small[d->small_got++] = *p++;
            n--;
        }
        if (d->type == F_GOAWAY)
            while (n && d->dbg_len + 1 < sizeof(d->dbg)) {
                char ch = (char)*p++;

                d->dbg[d->dbg_len++] = ch >= 0x20 && ch < 0x7f ? ch : '.';
                n--;
            }
        return 0;
    default:
        return 0; /* unknown frame types are ignored */
    }
}

static int frame_payload(struct http2_conn *c, h2_dir_t *d, const uint8_t *p, size_t n)
{
    while (n) {
        size_t k;
        int r = 0;

        if (d->fpos < d->pre_len) {
            k = d->pre_len - d->fpos < n ? d->pre_len - d->fpos : n;
            memcpy(d->pre + d->fpos, p, k);
            d->fpos += (uint32_t)k;
            if (d->fpos == d->pre_len)
                r = prefix_done(c, d);
        } else if (d->fpos < d->content_end) {
            k = d->content_end - d->fpos < n ? d->content_end - d->fpos : n;
            r = content(c, d, p, k);
            d->fpos += (uint32_t)k;
        } else {
            k = d->flen - d->fpos < n ? d->flen - d->fpos : n; /* padding */
            d->fpos += (uint32_t)k;
        }
        if (r < 0)
            return r;
        p += k;
        n -= k;
    }
    return 0;
}

static int rst_stream(struct http2_conn *c, h2_dir_t *d)
{
    h2_stream_t *s = stream_find(c, d->sid);
    uint32_t code = be32(d->small);
    char name[32], msg[96];

    if (!s)
        return 0;
    if (code != 0 || !s->ex->resp.complete) {
        error_text(name, sizeof(name), code);
        snprintf(msg, sizeof(msg), "stream reset by %s: %s", side_name[d->dir], name);
        set_error(s->ex, msg);
    }
    stream_close(c, s);
    return 0;
}

/* Streams the sender of the GOAWAY never processed: the peer's, above last. */
static int goaway(struct http2_conn *c, h2_dir_t *d)
{
    uint32_t last = be32(d->small) & 0x7fffffff, code = be32(d->small + 4);
    uint32_t peer_parity = d->dir == HTTP2_RESP ? 1 : 0;
    char name[32], msg[160];
    size_t i;

    d->goaway = 1;
    d->goaway_last = last;
    d->goaway_code = code;
    memcpy(d->goaway_dbg, d->dbg, d->dbg_len);
    d->goaway_dbg[d->dbg_len] = '\0';
    error_text(name, sizeof(name), code);
    snprintf(msg, sizeof(msg), "stream not processed: GOAWAY from %s (%s, last stream %u)",
             side_name[d->dir], name, (unsigned)last);
    i = stream_pos(c, last + 1);
    while (i < c->nstreams) {
        h2_stream_t *s = c->streams[i];

        if ((s->id & 1) != peer_parity) {
            i++;
            continue;
        }
        set_error(s->ex, msg);
        stream_close(c, s);
    }
    return 0;
}

static int frame_end(struct http2_conn *c, h2_dir_t *d)
{
    h2_stream_t *s;

    switch (d->type) {
    case F_DATA:
        s = stream_find(c, d->sid);
        if (!s || (d->dir == HTTP2_REQ ? s->req_state : s->resp_state) != ST_OPEN)
            return 0;
        (d->dir == HTTP2_REQ ? &s->ex->req : &s->ex->resp)->wire_body_size += d->flen;
        if (d->flags & FL_END_STREAM)
            side_end(c, s, d->dir);
        return 0;
    case F_HEADERS:
    case F_PUSH_PROMISE:
    case F_CONTINUATION:
        return (d->flags & FL_END_HEADERS) ? block_done(c, d) : 0;
    case F_RST_STREAM:
        return rst_stream(c, d);
    case F_GOAWAY:
        return goaway(c, d);
    default:
        return 0;
    }
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
        uint32_t id = (uint32_t)out[i] << 8 | out[i + 1], val = be32(out + i + 2);

        if (id == SET_MAX_FRAME_SIZE && (val < H2_MIN_FRAME || val > H2_MAX_FRAME))
            continue;
        memcpy(d->small, out + i, 6);
        settings_entry(c, d);
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
    http_exchange_t *ex;
    h2_stream_t *s;

    if (!c)
        return NULL;
    c->seq = req->seq + 1;
    s = stream_open(c, 1, req->t_req_start);
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
        add_body(c, &ex->req, req->req.body, req->req.body_len) < 0) {
        http2_conn_free(c);
        return NULL;
    }
    ex->req.body_total = req->req.body_total;
    ex->req.body_truncated = ex->req.body_total > ex->req.body_len;
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
    c->announce = 1;
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
    blk_reset(c);
    for (int i = 0; i < 2; i++) {
        free(c->d[i].block);
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
    s = stream_find(c, 1);
    if (!s)
        return;
    if (c->cb.on_request_begin)
        c->cb.on_request_begin(c->opaque, s->ex);
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
                return fail(c, -EBADMSG, "HTTP/2 client did not start with the connection preface");
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
            r = frame_begin(c, d);
        } else {
            k = d->flen - d->fpos < len ? d->flen - d->fpos : len;
            r = frame_payload(c, d, p, k);
            p += k;
            len -= k;
        }
        if (r < 0)
            return r;
        if (d->fpos == d->flen) {
            d->fh_got = 0;
            r = frame_end(c, d);
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

        error_text(name, sizeof(name), g->goaway_code);
        snprintf(buf, sizeof(buf), "connection closed after GOAWAY from %s: %s%s%s%s",
                 side_name[g->dir], name, g->goaway_dbg[0] ? " (" : "", g->goaway_dbg,
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
            set_error(s->ex, why ? why : "connection closed before the response");
        else if (!s->ex->req.complete)
            set_error(s->ex, why ? why : "connection closed before the request ended");
        c->streams[i] = NULL;
        stream_release(c, s);
    }
}

int http2_conn_stopped(const http2_conn_t *c)
{
    return c->stopped;
}

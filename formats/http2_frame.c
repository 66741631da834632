/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "http2_int.h"
#include "websocket.h"

#define H2_MAX_TABLE (1024 * 1024)

/* ---- frames ---- */

/* A SETTINGS value from side d governs what the other side may send. */
int h2_settings_entry(struct http2_conn *c, h2_dir_t *d)
{
    h2_dir_t *o = &c->d[!d->dir];
    uint32_t id = (uint32_t)d->small[0] << 8 | d->small[1], v = h2_be32(d->small + 2);

    if (id == SET_HEADER_TABLE_SIZE) {
        size_t t = v < H2_MAX_TABLE ? v : H2_MAX_TABLE;

        if (t > o->table_wanted)
            o->table_wanted = t;
    } else if (id == SET_MAX_FRAME_SIZE) {
        if (v < H2_MIN_FRAME || v > H2_MAX_FRAME)
            return h2_fail(c, -EBADMSG,
                           "HTTP/2 SETTINGS_MAX_FRAME_SIZE %u from the %s out of range",
                           (unsigned)v, h2_side_name[d->dir]);
        if (v > o->max_frame)
            o->max_frame = v;
    }
    return 0;
}

/* The HEADERS frame of a request opens its stream as soon as its header is read. */
static int request_headers_begin(struct http2_conn *c, h2_dir_t *d)
{
    h2_stream_t *s;

    if (h2_stream_find(c, d->sid) || d->sid <= d->last_sid)
        return 0; /* trailers, or a stream already closed */
    if (!(d->sid & 1))
        return h2_fail(c, -EBADMSG, "HTTP/2 client opened stream %u with an even id",
                       (unsigned)d->sid);
    d->last_sid = d->sid;
    s = h2_stream_open(c, d->sid, d->frame_ts);
    if (!s)
        return c->err;
    if (c->cb.on_request_begin)
        c->cb.on_request_begin(c->opaque, s->ex);
    return 0;
}

int h2_frame_begin(struct http2_conn *c, h2_dir_t *d)
{
    const char *who = h2_side_name[d->dir];
    int padded;

    d->flen = (uint32_t)d->fh[0] << 16 | (uint32_t)d->fh[1] << 8 | d->fh[2];
    d->type = d->fh[3];
    d->flags = d->fh[4];
    d->sid = h2_be32(d->fh + 5) & 0x7fffffff;
    d->fpos = 0;
    d->pre_len = 0;
    d->content_end = d->flen;
    d->small_got = 0;
    d->dbg_len = 0;
    padded = (d->flags & FL_PADDED) != 0;
    if (!d->seen_settings) {
        if (d->type != F_SETTINGS || (d->flags & FL_ACK))
            return h2_fail(c, -EBADMSG, "HTTP/2 %s preface: the first frame is not SETTINGS", who);
        d->seen_settings = 1;
    }
    if (d->flen > d->max_frame)
        return h2_fail(c, -EBADMSG,
                       "HTTP/2 frame of %u bytes from the %s exceeds "
                       "SETTINGS_MAX_FRAME_SIZE %u",
                       (unsigned)d->flen, who, (unsigned)d->max_frame);
    if (d->in_block && (d->type != F_CONTINUATION || d->sid != d->block_sid))
        return h2_fail(c, -EBADMSG,
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
            return h2_fail(c, -EBADMSG, "HTTP/2 frame of type %u from the %s on stream 0", d->type,
                           who);
        break;
    case F_SETTINGS:
    case F_PING:
    case F_GOAWAY:
        if (d->sid != 0)
            return h2_fail(c, -EBADMSG, "HTTP/2 frame of type %u from the %s on stream %u", d->type,
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
            return h2_fail(c, -EBADMSG, "HTTP/2 PUSH_PROMISE from the client");
        d->pre_len = padded + 4;
        break;
    case F_PRIORITY:
        if (d->flen != 5)
            return h2_fail(c, -EBADMSG, "HTTP/2 PRIORITY frame of %u bytes", (unsigned)d->flen);
        break;
    case F_RST_STREAM:
    case F_WINDOW_UPDATE:
        if (d->flen != 4)
            return h2_fail(c, -EBADMSG, "HTTP/2 frame of type %u with %u bytes", d->type,
                           (unsigned)d->flen);
        break;
    case F_PING:
        if (d->flen != 8)
            return h2_fail(c, -EBADMSG, "HTTP/2 PING frame of %u bytes", (unsigned)d->flen);
        break;
    case F_SETTINGS:
        if ((d->flags & FL_ACK) ? d->flen != 0 : d->flen % 6 != 0)
            return h2_fail(c, -EBADMSG, "HTTP/2 SETTINGS frame of %u bytes", (unsigned)d->flen);
        break;
    case F_GOAWAY:
        if (d->flen < 8)
            return h2_fail(c, -EBADMSG, "HTTP/2 GOAWAY frame of %u bytes", (unsigned)d->flen);
        break;
    case F_CONTINUATION:
        if (!d->in_block)
            return h2_fail(c, -EBADMSG, "HTTP/2 CONTINUATION frame without a header block");
        break;
    }
    if (d->flen < d->pre_len)
        return h2_fail(c, -EBADMSG, "HTTP/2 frame of type %u too short for its fields", d->type);
    if (d->type == F_HEADERS || d->type == F_PUSH_PROMISE) {
        d->in_block = 1;
        d->block_type = d->type;
        d->block_sid = d->sid;
        d->block_end_stream = d->type == F_HEADERS && (d->flags & FL_END_STREAM);
        d->block_ts = d->frame_ts;
        if (h2_block_begin(c, d) < 0)
            return c->err;
        if (d->type == F_HEADERS && d->dir == HTTP2_REQ)
            return request_headers_begin(c, d);
    }
    return 0;
}

static int prefix_done(struct http2_conn *c, h2_dir_t *d)
{
    uint32_t pad = (d->flags & FL_PADDED) ? d->pre[0] : 0;

    if ((uint64_t)d->pre_len + pad > d->flen)
        return h2_fail(c, -EBADMSG, "HTTP/2 frame of type %u with more padding than payload",
                       d->type);
    d->content_end = d->flen - pad;
    if (d->type == F_PUSH_PROMISE)
        d->promised = h2_be32(d->pre + ((d->flags & FL_PADDED) ? 1 : 0)) & 0x7fffffff;
    return 0;
}

static int data_content(struct http2_conn *c, h2_dir_t *d, const uint8_t *p, size_t n)
{
    h2_stream_t *s = h2_stream_find(c, d->sid);
    http_msg_t *m;

    if (!s || (d->dir == HTTP2_REQ ? s->req_state : s->resp_state) != ST_OPEN)
        return 0;
    if (s->ws) {
        /* Its errors land in ex->error through ws_error; the stream goes on. */
        int r = websocket_conn_feed(
            s->ws, d->dir == HTTP2_REQ ? WEBSOCKET_CLIENT : WEBSOCKET_SERVER, p, n, c->ts);
        return r == -ENOMEM ? h2_oom(c) : 0;
    }
    m = d->dir == HTTP2_REQ ? &s->ex->req : &s->ex->resp;
    return h2_add_body(c, m, p, n);
}

static int content(struct http2_conn *c, h2_dir_t *d, const uint8_t *p, size_t n)
{
    switch (d->type) {
    case F_DATA:
        return data_content(c, d, p, n);
    case F_HEADERS:
    case F_PUSH_PROMISE:
    case F_CONTINUATION:
        return h2_block_append(c, d, p, n);
    case F_SETTINGS:
        for (size_t i = 0; i < n; i++) {
            d->small[d->small_got++] = p[i];
            if (d->small_got == 6) {
                int r = h2_settings_entry(c, d);

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

int h2_frame_payload(struct http2_conn *c, h2_dir_t *d, const uint8_t *p, size_t n)
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
    h2_stream_t *s = h2_stream_find(c, d->sid);
    uint32_t code = h2_be32(d->small);
    char name[32], msg[96];

    if (!s)
        return 0;
    if (code != 0 || !s->ex->resp.complete) {
        h2_error_text(name, sizeof(name), code);
        snprintf(msg, sizeof(msg), "stream reset by %s: %s", h2_side_name[d->dir], name);
        h2_set_error(s->ex, msg);
    }
    h2_stream_close(c, s);
    return 0;
}

/* Streams the sender of the GOAWAY never processed: the peer's, above last. */
static int goaway(struct http2_conn *c, h2_dir_t *d)
{
    uint32_t last = h2_be32(d->small) & 0x7fffffff, code = h2_be32(d->small + 4);
    uint32_t peer_parity = d->dir == HTTP2_RESP ? 1 : 0;
    char name[32], msg[160];
    size_t i;

    d->goaway = 1;
    d->goaway_last = last;
    d->goaway_code = code;
    memcpy(d->goaway_dbg, d->dbg, d->dbg_len);
    d->goaway_dbg[d->dbg_len] = '\0';
    h2_error_text(name, sizeof(name), code);
    snprintf(msg, sizeof(msg), "stream not processed: GOAWAY from %s (%s, last stream %u)",
             h2_side_name[d->dir], name, (unsigned)last);
    i = h2_stream_pos(c, last + 1);
    while (i < c->nstreams) {
        h2_stream_t *s = c->streams[i];

        if ((s->id & 1) != peer_parity) {
            i++;
            continue;
        }
        h2_set_error(s->ex, msg);
        h2_stream_close(c, s);
    }
    return 0;
}

int h2_frame_end(struct http2_conn *c, h2_dir_t *d)
{
    h2_stream_t *s;

    switch (d->type) {
    case F_DATA:
        s = h2_stream_find(c, d->sid);
        if (!s || (d->dir == HTTP2_REQ ? s->req_state : s->resp_state) != ST_OPEN)
            return 0;
        (d->dir == HTTP2_REQ ? &s->ex->req : &s->ex->resp)->wire_body_size += d->flen;
        if (d->flags & FL_END_STREAM)
            h2_side_end(c, s, d->dir);
        return 0;
    case F_HEADERS:
    case F_PUSH_PROMISE:
    case F_CONTINUATION:
        return (d->flags & FL_END_HEADERS) ? h2_block_done(c, d) : 0;
    case F_RST_STREAM:
        return rst_stream(c, d);
    case F_GOAWAY:
        return goaway(c, d);
    default:
        return 0;
    }
}

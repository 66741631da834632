/* SPDX-License-Identifier: MIT */
#include "websocket.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#define WS_DEFAULT_MAX_MESSAGE (16 * 1024 * 1024)
#define WS_DEFAULT_MAX_KEPT (64 * 1024 * 1024)
/* A compressed message is inflated in full even past max_message, so that the
   shared window stays right for the next one; this caps the work one message
   can cause (deflate expands at most about 1000 times). */
#define WS_MAX_INFLATED ((uint64_t)1 << 30)
/* A reassembly buffer larger than this is released after its message. */
#define WS_KEEP_BUF (64 * 1024)

typedef struct ws_dir {
    int failed, err, closed;
    /* Frame header: 2 bytes, then 0/2/8 length bytes and 0/4 mask bytes. */
    uint8_t hdr[14];
    size_t hdr_got, hdr_need;
    int in_payload;
    int fin, rsv1, opcode, masked;
    uint8_t mask[4];
    uint64_t plen, ppos;
    /* The data message being assembled from its frames. */
    int msg_active, msg_opcode, msg_deflate, z_ended;
    uint64_t msg_zin; /* compressed bytes of the message so far */
    uint8_t *buf;
    size_t buf_len, buf_cap;
    uint64_t msg_total;
    /* A control frame (at most 125 bytes, never fragmented). */
    uint8_t ctl[126];
    size_t ctl_len;
    z_stream z;
    int z_ready;
} ws_dir_t;

struct websocket_conn {
    websocket_callbacks_t cb;
    void *opaque;
    http_exchange_t *ex;
    size_t max_message, max_kept, kept;
    int deflate;
    int no_context[2];  /* the sender of that direction resets its compressor per message */
    int masks_required; /* websocket_conn_require_masks: an unmasked client frame is an error */
    websocket_stats_t st;
    ws_dir_t d[2];
};

/* ---- Sec-WebSocket-Extensions ---- */

static const char *skip_ows(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

static int is_token_char(char ch)
{
    return ch && !strchr(" \t,;=\"", ch);
}

/* Reads a token or a quoted string into out (truncated to outsz - 1). */
static const char *read_word(const char *s, char *out, size_t outsz)
{
    size_t n = 0;

    if (*s == '"') {
        s++;
        while (*s && *s != '"') {
            if (*s == '\\' && s[1])
                s++;
            if (n + 1 < outsz)
                out[n++] = *s;
            s++;
        }
        if (*s == '"')
            s++;
    } else {
        while (is_token_char(*s)) {
            if (n + 1 < outsz)
                out[n++] = *s;
            s++;
        }
    }
    out[n] = '\0';
    return s;
}

/* Only the first permessage-deflate counts: a server accepts at most one offer. */
static void parse_extensions(struct websocket_conn *c, const char *s)
{
    char name[64], pname[64], pval[64];

    while (*s) {
        int pmd;

        s = skip_ows(s);
        if (*s == ',') {
            s++;
            continue;
        }
        if (!*s)
            break;
        s = read_word(s, name, sizeof(name));
        pmd = !c->deflate && strcasecmp(name, "permessage-deflate") == 0;
        if (pmd)
            c->deflate = 1;
        s = skip_ows(s);
        while (*s == ';') {
            s = skip_ows(s + 1);
            s = read_word(s, pname, sizeof(pname));
            pval[0] = '\0';
            s = skip_ows(s);
            if (*s == '=') {
                s = skip_ows(s + 1);
                s = read_word(s, pval, sizeof(pval));
                s = skip_ows(s);
            }
            if (!pmd)
                continue;
            if (strcasecmp(pname, "client_no_context_takeover") == 0)
                c->no_context[WEBSOCKET_CLIENT] = 1;
            else if (strcasecmp(pname, "server_no_context_takeover") == 0)
                c->no_context[WEBSOCKET_SERVER] = 1;
            /* *_max_window_bits need nothing: the inflater's 32 KiB window
               decodes what any smaller window made. */
        }
        /* Anything unexpected: skip to the next extension. */
        while (*s && *s != ',') {
            if (*s == '"') {
                s = read_word(s, pval, sizeof(pval));
                continue;
            }
            s++;
        }
    }
}

/* ---- the decoder ---- */

websocket_conn_t *websocket_conn_new(const char *extensions, http_exchange_t *ex,
                                     const websocket_callbacks_t *cb, void *opaque,
                                     size_t max_message, size_t max_kept)
{
    struct websocket_conn *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    if (cb)
        c->cb = *cb;
    c->opaque = opaque;
    c->ex = ex;
    c->max_message = max_message ? max_message : WS_DEFAULT_MAX_MESSAGE;
    c->max_kept = max_kept ? max_kept : WS_DEFAULT_MAX_KEPT;
    if (extensions)
        parse_extensions(c, extensions);
    for (int i = 0; i < 2; i++)
        c->d[i].hdr_need = 2;
    return c;
}

void websocket_conn_free(websocket_conn_t *c)
{
    if (!c)
        return;
    for (int i = 0; i < 2; i++) {
        free(c->d[i].buf);
        if (c->d[i].z_ready)
            inflateEnd(&c->d[i].z);
    }
    free(c);
}

static int dir_fail(struct websocket_conn *c, int dir, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int dir_fail(struct websocket_conn *c, int dir, int err, const char *fmt, ...)
{
    ws_dir_t *d = &c->d[dir];
    char msg[160];
    va_list ap;

    if (d->failed)
        return d->err;
    d->failed = 1;
    d->err = err;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->cb.on_error)
        c->cb.on_error(c->opaque, dir, msg);
    return err;
}

static int deliver(struct websocket_conn *c, int dir, int opcode, const uint8_t *data, size_t len,
                   uint64_t total, uint64_t ts)
{
    static const uint8_t empty[1];

    if (!data)
        data = empty;
    c->st.messages++;
    if (total > len)
        c->st.truncated++;
    if (c->cb.on_message)
        c->cb.on_message(c->opaque, dir, opcode, data, len, total, ts);
    if (c->ex) {
        if (len > c->max_kept - c->kept || c->ex->nws >= WEBSOCKET_MAX_MESSAGES) {
            c->st.dropped++;
        } else {
            if (http_exchange_add_ws(c->ex, dir == WEBSOCKET_CLIENT, ts, opcode, data, len) < 0)
                return -ENOMEM;
            c->kept += len;
        }
    }
    return 0;
}

/* Keeps at most max_message bytes of the message (plus room for a NUL). */
static int msg_append(struct websocket_conn *c, ws_dir_t *d, const uint8_t *p, size_t n)
{
    size_t keep = 0;

    d->msg_total += n;
    if (d->buf_len < c->max_message)
        keep = c->max_message - d->buf_len < n ? c->max_message - d->buf_len : n;
    if (!keep)
        return 0;
    if (d->buf_len + keep + 1 > d->buf_cap) {
        size_t cap = d->buf_cap ? d->buf_cap : 1024;
        uint8_t *b;

        while (cap < d->buf_len + keep + 1)
            cap = cap > c->max_message / 2 ? c->max_message + 1 : cap * 2;
        if (cap > c->max_message + 1)
            cap = c->max_message + 1;
        b = realloc(d->buf, cap);
        if (!b)
            return -ENOMEM;
        d->buf = b;
        d->buf_cap = cap;
    }
    memcpy(d->buf + d->buf_len, p, keep);
    d->buf_len += keep;
    return 0;
}

static int inflate_some(struct websocket_conn *c, int dir, const uint8_t *in, size_t n)
{
    ws_dir_t *d = &c->d[dir];
    uint8_t out[16384];

    if (d->z_ended)
        return 0; /* after a final block, the rest is the empty-block filler */
    if (!d->z_ready) {
        /* A 32 KiB window decodes anything made with a smaller one. */
        memset(&d->z, 0, sizeof(d->z));
        if (inflateInit2(&d->z, -15) != Z_OK)
            return dir_fail(c, dir, -ENOMEM, "out of memory");
        d->z_ready = 1;
    }
    d->z.next_in = (Bytef *)in;
    d->z.avail_in = (uInt)n;
    do {
        int zr;

        d->z.next_out = out;
        d->z.avail_out = sizeof(out);
        zr = inflate(&d->z, Z_SYNC_FLUSH);
        if (zr == Z_MEM_ERROR)
            return dir_fail(c, dir, -ENOMEM, "out of memory");
        if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR)
            return dir_fail(c, dir, -EBADMSG, "permessage-deflate: %s",
                            d->z.msg ? d->z.msg : "invalid compressed data");
        if (msg_append(c, d, out, sizeof(out) - d->z.avail_out) < 0)
            return dir_fail(c, dir, -ENOMEM, "out of memory");
        if (d->msg_total > WS_MAX_INFLATED)
            return dir_fail(c, dir, -EBADMSG, "permessage-deflate: message inflates past 1 GiB");
        if (zr == Z_STREAM_END) {
            d->z_ended = 1;
            break;
        }
        if (zr == Z_BUF_ERROR)
            break; /* nothing more to do until more input comes */
    } while (d->z.avail_in > 0 || d->z.avail_out == 0);
    return 0;
}

/* Validates a complete frame header and sets up the frame and its message. */
static int frame_begin(struct websocket_conn *c, int dir)
{
    ws_dir_t *d = &c->d[dir];
    const uint8_t *h = d->hdr;
    int len7 = h[1] & 0x7f;
    size_t at = 2;

    d->fin = (h[0] & 0x80) != 0;
    d->rsv1 = (h[0] & 0x40) != 0;
    d->opcode = h[0] & 0x0f;
    d->masked = (h[1] & 0x80) != 0;
    if (h[0] & 0x30)
        return dir_fail(c, dir, -EBADMSG, "WebSocket frame with reserved bits RSV2/RSV3 set");
    if (c->masks_required && dir == WEBSOCKET_CLIENT && !d->masked)
        return dir_fail(c, dir, -EBADMSG, "WebSocket client frame not masked");
    if (len7 == 126) {
        d->plen = (uint64_t)h[2] << 8 | h[3];
        at = 4;
        if (d->plen < 126)
            return dir_fail(c, dir, -EBADMSG, "WebSocket frame length not minimally encoded");
    } else if (len7 == 127) {
        d->plen = 0;
        for (int i = 0; i < 8; i++)
            d->plen = d->plen << 8 | h[2 + i];
        at = 10;
        if (d->plen >> 63)
            return dir_fail(c, dir, -EBADMSG, "WebSocket frame length with the high bit set");
        /* Legal in form, but no peer sends a terabyte in one frame: a corrupt or
           hostile length, better said at once than waited for. */
        if (d->plen >> WEBSOCKET_MAX_FRAME_LOG2)
            return dir_fail(c, dir, -EBADMSG, "WebSocket frame length beyond 1 TiB");
        if (d->plen < 65536)
            return dir_fail(c, dir, -EBADMSG, "WebSocket frame length not minimally encoded");
    } else {
        d->plen = (uint64_t)len7;
    }
    if (d->masked)
        memcpy(d->mask, h + at, 4);
    d->ppos = 0;
    switch (d->opcode) {
    case 0:
        if (!d->msg_active)
            return dir_fail(c, dir, -EBADMSG, "WebSocket continuation frame without a message");
        if (d->rsv1)
            return dir_fail(c, dir, -EBADMSG, "WebSocket continuation frame with RSV1 set");
        break;
    case 1:
    case 2:
        if (d->msg_active)
            return dir_fail(c, dir, -EBADMSG,
                            "WebSocket data frame before the previous message ended");
        if (d->rsv1 && !c->deflate)
            return dir_fail(c, dir, -EBADMSG,
                            "WebSocket frame with RSV1 set but no permessage-deflate");
        d->msg_active = 1;
        d->msg_opcode = d->opcode;
        d->msg_deflate = d->rsv1;
        d->z_ended = 0;
        d->msg_zin = 0;
        d->buf_len = 0;
        d->msg_total = 0;
        break;
    case 8:
    case 9:
    case 10:
        if (!d->fin)
            return dir_fail(c, dir, -EBADMSG, "fragmented WebSocket control frame");
        if (d->plen > 125)
            return dir_fail(c, dir, -EBADMSG, "WebSocket control frame longer than 125 bytes");
        if (d->rsv1)
            return dir_fail(c, dir, -EBADMSG, "WebSocket control frame with RSV1 set");
        d->ctl_len = 0;
        break;
    default:
        return dir_fail(c, dir, -EBADMSG, "WebSocket frame with reserved opcode %d", d->opcode);
    }
    return 0;
}

static int frame_payload(struct websocket_conn *c, int dir, const uint8_t *p, size_t n)
{
    ws_dir_t *d = &c->d[dir];
    uint8_t tmp[4096];

    while (n) {
        size_t k = n < sizeof(tmp) ? n : sizeof(tmp);
        int r;

        memcpy(tmp, p, k);
        if (d->masked)
            for (size_t i = 0; i < k; i++)
                tmp[i] ^= d->mask[(d->ppos + i) & 3];
        if (d->opcode & 8) {
            memcpy(d->ctl + d->ctl_len, tmp, k); /* k fits: plen <= 125 */
            d->ctl_len += k;
        } else if (d->msg_deflate) {
            d->msg_zin += k;
            r = inflate_some(c, dir, tmp, k);
            if (r < 0)
                return r;
        } else if (msg_append(c, d, tmp, k) < 0) {
            return dir_fail(c, dir, -ENOMEM, "out of memory");
        }
        d->ppos += k;
        p += k;
        n -= k;
    }
    return 0;
}

static int frame_end(struct websocket_conn *c, int dir, uint64_t ts)
{
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    ws_dir_t *d = &c->d[dir];
    int r;

    d->in_payload = 0;
    d->hdr_got = 0;
    d->hdr_need = 2;
    if (d->opcode & 8) {
        size_t keep = d->ctl_len < c->max_message ? d->ctl_len : c->max_message;

        d->ctl[keep] = '\0';
        if (deliver(c, dir, d->opcode, d->ctl, keep, d->ctl_len, ts) < 0)
            return dir_fail(c, dir, -ENOMEM, "out of memory");
        if (d->opcode == 8)
            d->closed = 1;
        return 0;
    }
    if (!d->fin)
        return 0;
    /* RFC 7692 senders send an empty message as one 0x00 byte; an empty
       payload, which some send instead, must not reach the inflater: the tail
       alone would start a stored block. */
    if (d->msg_deflate && d->msg_zin) {
        r = inflate_some(c, dir, tail, sizeof(tail));
        if (r < 0)
            return r;
        if (c->no_context[dir] || d->z_ended)
            inflateReset(&d->z);
    }
    if (d->buf)
        d->buf[d->buf_len] = '\0';
    d->msg_active = 0;
    if (deliver(c, dir, d->msg_opcode, d->buf, d->buf_len, d->msg_total, ts) < 0)
        return dir_fail(c, dir, -ENOMEM, "out of memory");
    if (d->buf_cap > WS_KEEP_BUF) {
        free(d->buf);
        d->buf = NULL;
        d->buf_cap = 0;
    }
    d->buf_len = 0;
    return 0;
}

int websocket_conn_feed(websocket_conn_t *c, int dir, const void *data, size_t len,
                        uint64_t ts_usec)
{
    const uint8_t *p = data;
    ws_dir_t *d;
    int r;

    if (dir != WEBSOCKET_CLIENT && dir != WEBSOCKET_SERVER)
        return -EINVAL;
    d = &c->d[dir];
    if (d->failed)
        return d->err;
    while (len && !d->closed) {
        if (!d->in_payload) {
            size_t k = d->hdr_need - d->hdr_got;

            if (k > len)
                k = len;
            memcpy(d->hdr + d->hdr_got, p, k);
            d->hdr_got += k;
            p += k;
            len -= k;
            if (d->hdr_got == 2) {
                int len7 = d->hdr[1] & 0x7f;

                d->hdr_need = 2 +
                              (len7 == 126   ? 2
                               : len7 == 127 ? 8
                                             : 0) +
                              (d->hdr[1] & 0x80 ? 4 : 0);
            }
            if (d->hdr_got < d->hdr_need)
                continue;
            r = frame_begin(c, dir);
            if (r < 0)
                return r;
            d->in_payload = 1;
        } else {
            uint64_t left = d->plen - d->ppos;
            size_t k = left < len ? (size_t)left : len;

            r = frame_payload(c, dir, p, k);
            if (r < 0)
                return r;
            p += k;
            len -= k;
        }
        if (d->ppos == d->plen) {
            r = frame_end(c, dir, ts_usec);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

int websocket_conn_failed(const websocket_conn_t *c, int dir)
{
    return (dir == WEBSOCKET_CLIENT || dir == WEBSOCKET_SERVER) && c->d[dir].failed;
}

int websocket_conn_pending(const websocket_conn_t *c, int dir)
{
    const ws_dir_t *d;

    if (dir != WEBSOCKET_CLIENT && dir != WEBSOCKET_SERVER)
        return 0;
    d = &c->d[dir];
    return !d->failed && (d->in_payload || d->msg_active || d->hdr_got > 0);
}

int websocket_conn_closed(const websocket_conn_t *c, int dir)
{
    return (dir == WEBSOCKET_CLIENT || dir == WEBSOCKET_SERVER) && c->d[dir].closed;
}

void websocket_conn_require_masks(websocket_conn_t *c)
{
    c->masks_required = 1;
}

int websocket_conn_deflate(const websocket_conn_t *c)
{
    return c->deflate;
}

void websocket_conn_stats(const websocket_conn_t *c, websocket_stats_t *st)
{
    *st = c->st;
}

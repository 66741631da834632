/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_FORMATS_HTTP2_INT_H
#define MITMREC_FORMATS_HTTP2_INT_H

/*
 * Private to the HTTP/2 decoder (http2.c: the connection and the public API;
 * http2_frame.c: frames; http2_stream.c: the stream table and header blocks).
 * http2.h says what the decoder does; this is what its pieces share.
 */

#include <nghttp2/nghttp2.h>
#include <stddef.h>
#include <stdint.h>

#include "http2.h"
#include "httpmsg.h"
#include "websocket.h"

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
    http_msg_t blk;   /* its fields decoded so far (HPACK decodes each fragment as it comes) */
    size_t blk_bytes; /* their size as SETTINGS_MAX_HEADER_LIST_SIZE counts it, all of them */
    size_t blk_kept;  /* ... and of those kept in blk (the rest, past 1 MiB, are cut) */
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
    uint64_t seq, ts;
    int stopped, finished, err;
    int announce; /* upgrade: stream 1 not yet shown to on_request_* */
    char why[256];
};

/* "client", "server": indexed by HTTP2_REQ / HTTP2_RESP. */
extern const char *const h2_side_name[2];

static inline uint32_t h2_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* http2.c */

/* A connection error: reported once (on_error), then the decoder reads nothing
   more. Returns err, or the first error when the decoder had stopped already. */
int h2_fail(struct http2_conn *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* h2_fail with -ENOMEM. */
int h2_oom(struct http2_conn *c);
/* The RFC 9113 name of code, or "error 0x..." when unknown, into buf. */
void h2_error_text(char *buf, size_t size, uint32_t code);

/* http2_stream.c: the stream table (open streams sorted by id) and bodies.
   Functions that return int give 0 or the error of h2_fail. */

/* Sets ex->error to a copy of what, unless it has one. */
void h2_set_error(http_exchange_t *ex, const char *what);
/* Where stream id is, or would go, in c->streams. */
size_t h2_stream_pos(const struct http2_conn *c, uint32_t id);
/* The open stream id, or NULL. */
h2_stream_t *h2_stream_find(const struct http2_conn *c, uint32_t id);
/* Opens stream id with a new exchange started at ts; NULL after h2_fail. */
h2_stream_t *h2_stream_open(struct http2_conn *c, uint32_t id, uint64_t ts);
/* Delivers s's exchange (on_exchange) and frees s, which is out of the table. */
void h2_stream_release(struct http2_conn *c, h2_stream_t *s);
/* Takes s out of the table, then h2_stream_release. */
void h2_stream_close(struct http2_conn *c, h2_stream_t *s);
/* Adds n body bytes to m within max_body and the connection's body budget. */
int h2_add_body(struct http2_conn *c, http_msg_t *m, const uint8_t *p, size_t n);
/* Side dir of s ended now; closes s when both have. */
void h2_side_end(struct http2_conn *c, h2_stream_t *s, int dir);

/* http2_stream.c: header blocks, decoded with d->inf into exchanges. */

/* Frees the fields of d's block being decoded (d->blk). */
void h2_blk_reset(h2_dir_t *d);
/* A HEADERS or PUSH_PROMISE frame starts a block of side d. */
int h2_block_begin(struct http2_conn *c, h2_dir_t *d);
/* Decodes n bytes of a HEADERS, PUSH_PROMISE or CONTINUATION payload into d's block. */
int h2_block_append(struct http2_conn *c, h2_dir_t *d, const uint8_t *p, size_t n);
/* d's block ended (END_HEADERS): decodes it into its stream's exchange. */
int h2_block_done(struct http2_conn *c, h2_dir_t *d);

/* http2_frame.c: frames, fed by http2_conn_feed once the preface is past. */

/* Applies the SETTINGS entry in d->small (6 bytes) sent by side d. */
int h2_settings_entry(struct http2_conn *c, h2_dir_t *d);
/* The 9-byte frame header d->fh is complete: checks it, sets up the frame. */
int h2_frame_begin(struct http2_conn *c, h2_dir_t *d);
/* n bytes of the current frame's payload, at most what is left of it. */
int h2_frame_payload(struct http2_conn *c, h2_dir_t *d, const uint8_t *p, size_t n);
/* The whole payload of the current frame was read. */
int h2_frame_end(struct http2_conn *c, h2_dir_t *d);

#endif

/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_FORMATS_HTTP2_H
#define MITMREC_FORMATS_HTTP2_H

#include <stddef.h>
#include <stdint.h>

#include "httpmsg.h"

/*
 * Passive HTTP/2 (RFC 9113) conversation decoder. It watches both directions
 * of one connection (the client's bytes start with the connection preface; any
 * split) and turns streams into exchanges. It grants nothing and enforces no
 * flow control: it only reads frames, decodes header blocks with one HPACK
 * inflater per direction (nghttp2's), and follows each side's
 * SETTINGS_HEADER_TABLE_SIZE and SETTINGS_MAX_FRAME_SIZE, which bound what the
 * OTHER side may send. As an observer cannot tell exactly when a peer applied a
 * smaller value, the largest value advertised so far is the one checked; HPACK
 * table size updates in the header blocks do the actual shrinking.
 *
 * Exchanges: req_major 2 (1.1 for stream 1 of an Upgrade: h2c), resp_major 2,
 * reason "". Request headers keep the pseudo-headers (:method, :scheme,
 * :authority, :path, :protocol) in wire order; method and target come from
 * :method and :path (:authority for CONNECT without :path). Response headers
 * start with :status; 1xx interim responses are skipped. headers_size is -1.
 * Bodies are DATA payloads (at most max_body kept each); wire_body_size counts
 * whole DATA payloads, padding included. A second header block becomes the
 * trailers. A PUSH_PROMISE makes an exchange with pushed = 1 whose request is
 * the promise. An RFC 8441 extended CONNECT (:protocol websocket) answered
 * with 200 carries WebSocket frames: they become ex->ws messages (at most
 * max_body bytes of them, see websocket.h), not a body; a WebSocket protocol
 * error sets ex->error and stops that direction of the stream's WebSocket.
 * RST_STREAM sets ex->error ("stream reset by server: CANCEL"; not for NO_ERROR
 * after a complete response), as does a GOAWAY for the streams above its last
 * stream id.
 *
 * Timestamps: t_req_start is the time of the bytes holding the request's first
 * frame header (the PUSH_PROMISE for a push), t_req_end of the last byte of
 * the frame that ended it; likewise t_resp_start (final HEADERS) and t_resp_end.
 *
 * Limits: a header block is decoded fragment by fragment as its frames come
 * (any length on the wire), and keeps at most 1 MiB of fields (names + values
 * + 32 per field, as SETTINGS_MAX_HEADER_LIST_SIZE counts): the fields past
 * it are decoded, so HPACK's table stays right, and dropped, and the
 * exchange's error says so;
 * HPACK dynamic tables at most 1 MiB; at most HTTP2_MAX_STREAMS streams open at
 * once; bodies kept by all open streams together at most 256 MiB (or max_body,
 * if larger), later bytes are counted as truncated. Closed streams, SETTINGS,
 * PING, PRIORITY and WINDOW_UPDATE frames cost no memory.
 *
 * Callbacks run only from inside http2_conn_feed and http2_conn_finish, and
 * must not free the decoder.
 */

#define HTTP2_REQ 0  /* client to server */
#define HTTP2_RESP 1 /* server to client */

#define HTTP2_MAX_STREAMS 10000

typedef struct http2_conn http2_conn_t;

typedef struct http2_callbacks {
    /* A stream opened: the first frame header of its request HEADERS (for a
       push: its PUSH_PROMISE) was read; ex->stream_id and t_req_start are set,
       the rest is not yet. Borrowed: valid until on_exchange hands it over.
       May be NULL. */
    void (*on_request_begin)(void *opaque, http_exchange_t *ex);
    /* The request head is decoded: method, target, headers. May be NULL. */
    void (*on_request_head)(void *opaque, http_exchange_t *ex);
    /* The stream is over: both sides ended it, it was reset, a GOAWAY left it
       unprocessed, or the connection ended first (http2_conn_finish; ex->error
       says why). Takes ownership: the callee frees ex with http_exchange_free.
       Exchanges come in the order their streams end. May be NULL. */
    void (*on_exchange)(void *opaque, http_exchange_t *ex);
    /* A connection error (bad preface, bad frame, HPACK failure, a limit, out
       of memory): message says why in one line, borrowed for the call. The
       decoder then stops reading both directions; open streams are delivered
       by http2_conn_finish. Called at most once. May be NULL. */
    void (*on_error)(void *opaque, const char *message);
} http2_callbacks_t;

/*
 * Creates a decoder for a connection that starts with the HTTP/2 preface (TLS
 * with ALPN h2, or h2c with prior knowledge). cb is copied; opaque is borrowed.
 * Bodies keep at most max_body bytes each (0 = 16 MiB). NULL on ENOMEM.
 */
http2_conn_t *http2_conn_new(const http2_callbacks_t *cb, void *opaque, size_t max_body);

/*
 * Creates a decoder for a connection upgraded from HTTP/1.1 (Upgrade: h2c,
 * answered with 101). req (borrowed, only read here) is that HTTP/1.1 request:
 * a copy of its request side becomes stream 1's request, whose response comes
 * in HTTP/2; its HTTP2-Settings header counts as the client's first SETTINGS.
 * The exchange numbers (seq) continue after req->seq. Feed the bytes after the
 * request (client: the preface) and after the 101 (server: SETTINGS). When req
 * was announced (req->announced: its decoder called on_request_head), stream 1
 * stands for it: it takes req's user and user_frame and is not announced again;
 * otherwise the first feed or finish calls on_request_begin and on_request_head
 * for stream 1.
 * NULL on ENOMEM.
 */
http2_conn_t *http2_conn_new_upgrade(const http2_callbacks_t *cb, void *opaque, size_t max_body,
                                     const http_exchange_t *req);

/* Frees the decoder and any exchange not yet delivered. NULL is a no-op. */
void http2_conn_free(http2_conn_t *c);

/*
 * Feeds len bytes seen in direction dir (HTTP2_REQ / HTTP2_RESP) at time
 * ts_usec. Bytes must be fed in the order they were seen across both
 * directions (a SETTINGS from one side governs the other's later frames).
 * Returns 0; -EBADMSG after a connection error (on_error ran, now or before);
 * -ENOMEM (the decoder stops as after an error); -EINVAL for a bad dir.
 */
int http2_conn_feed(http2_conn_t *c, int dir, const void *data, size_t len, uint64_t ts_usec);

/*
 * The connection is over: delivers every stream still open, in stream order,
 * with ex->error = error (copied) unless its response completed. When error is
 * NULL the reason is the connection error, the peer's GOAWAY error, or
 * "connection closed before the response". Later feeds return -EBADMSG.
 */
void http2_conn_finish(http2_conn_t *c, const char *error, uint64_t ts_usec);

/* True once the decoder stopped (a connection error, or finish). */
int http2_conn_stopped(const http2_conn_t *c);

/*
 * Tells whether data starts with the client connection preface
 * "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n": 1 yes, 0 no, -EAGAIN when the len bytes
 * given match but are fewer than the preface's 24.
 */
int http2_is_preface(const void *data, size_t len);

/* The RFC 9113 name of an error code ("CANCEL"), or NULL when unknown. */
const char *http2_error_name(uint32_t code);

#endif

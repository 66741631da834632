/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_REPLAY_CONN_H
#define MITMREC_REPLAY_CONN_H

/*
 * Private to the replay server (replay_server.c, replay_h2.c): one replayed
 * client connection and the request / response values its protocols share.
 */

#include <stddef.h>
#include <stdint.h>

#include "httpmsg.h"
#include "replaydb.h"

typedef struct rconn rconn_t;

/* A request as a protocol decoded it; everything borrowed for the call. */
typedef struct rreq {
    const char *method;
    const char *target;    /* origin-form */
    const char *authority; /* Host or :authority, NULL when absent */
    const http_msg_t *msg; /* headers (no pseudo-headers) and body */
    int http2;
    int ws; /* HTTP/2: an extended CONNECT for a WebSocket (RFC 8441), method "GET" here */
} rreq_t;

/* A response to send; owns its headers and owned_body. */
typedef struct rresp {
    int status;
    char reason[64];
    http_header_t *headers;
    size_t nheaders, cap;
    const uint8_t *body; /* borrowed from the recording, or owned_body */
    size_t len;
    uint8_t *owned_body;
    int no_body; /* HEAD, 204, 304 */
    int chunked; /* HTTP/1: recorded with chunked transfer coding, or with trailers */
    const http_header_t *trailers; /* recorded trailers (borrowed), sent after the body */
    size_t ntrailers;
} rresp_t;

void rresp_free(rresp_t *r);

/*
 * The recorded response of entry e (borrowed: the body points into it) to a
 * request with method: hop-by-hop headers and the recorded framing dropped,
 * Content-Length computed, Content-Encoding dropped for a decoded (HAR) body,
 * dates moved to now when refresh. NULL on ENOMEM.
 */
rresp_t *rresp_from_entry(const replay_entry_t *e, const char *method, int refresh);

/* A text/plain response of our own (status 404, 502...). NULL on ENOMEM. */
rresp_t *rresp_text(int status, const char *text, int head);

/* The response as HTTP/1.1 bytes (malloc'd, *len long); close adds Connection: close. To an
   HTTP/1.0 request (http10) a body goes with Content-Length, never chunked, and trailers are
   left out (RFC 9112 6.1: no transfer coding unless the request is HTTP/1.1). */
uint8_t *rresp_h1(const rresp_t *r, int close, int http10, size_t *len);

/* The server side of HTTP/1.x on a connection (replay_h1.c). */
typedef struct rh1 rh1_t;

/* A parser for c's requests. NULL on ENOMEM. */
rh1_t *rh1_new(rconn_t *c);
/* Bytes from the client; each complete request goes to rconn_request. 0, or -EBADMSG once
   they are not HTTP/1 (the connection should end after its answers). */
int rh1_feed(rh1_t *h, const uint8_t *data, size_t len);
/* The last request asked for the connection to end after its response. */
int rh1_close(const rh1_t *h);
/* The last request was HTTP/1.0. */
int rh1_http10(const rh1_t *h);
void rh1_free(rh1_t *h);

/* The server side of HTTP/2 on a connection (replay_h2.c). */
typedef struct rh2 rh2_t;

/* A session on c that has received nothing yet; sends our SETTINGS. NULL on ENOMEM. */
rh2_t *rh2_new(rconn_t *c);
/* Bytes from the client. Returns 0, or a negative value when the connection must close. */
int rh2_feed(rh2_t *h, const uint8_t *data, size_t len);
/* Responds on stream (takes resp). */
void rh2_respond(rh2_t *h, int32_t stream, rresp_t *resp);
/* Resets the stream (--unmatched kill). */
void rh2_reset(rh2_t *h, int32_t stream);
/* Answers the extended CONNECT on stream with a 200 and plays WebSocket entry e on it
   (replay_ws.c). 0, or -1 when it could not (the caller answers otherwise). */
int rh2_websocket(rh2_t *h, int32_t stream, const replay_entry_t *e);
/* A WebSocket frame of ours for stream (copied). 0, or -1 when the stream is gone. */
int rh2_ws_send(rh2_t *h, int32_t stream, const uint8_t *bytes, size_t len);
/* A passed-through WebSocket on stream (replay_pass.c's tunnel): the client's DATA go to it,
   and its END_STREAM, and a stream that closes drops it. 0, or -1 when the stream is gone. */
struct pass;
int rh2_tunnel_attach(rh2_t *h, int32_t stream, struct pass *p);
/* The upstream said 101: a 200 with proto and ext (NULL when absent), and the stream carries
   its frames (rh2_ws_send, then rh2_flush). 0, or -1 when the stream is gone. */
int rh2_tunnel_open(rh2_t *h, int32_t stream, const char *proto, const char *ext);
/* The tunnel on stream ended: the stream ends after what is queued; when it was never
   opened, resp (taken; a 502) answers it. The tunnel is forgotten either way. */
void rh2_tunnel_end(rh2_t *h, int32_t stream, rresp_t *resp);
/* The tunnel on stream is forgotten (the connection closes). */
void rh2_tunnel_forget(rh2_t *h, int32_t stream);
/* Sends what the session has to send. */
void rh2_flush(rh2_t *h);
/* True when the session has nothing more to do (both sides said GOAWAY or failed). */
int rh2_done(const rh2_t *h);
void rh2_free(rh2_t *h);

/* From replay_h2.c into the server: a complete request on stream, bytes to write. */
void rconn_request(rconn_t *c, const rreq_t *req, int32_t stream);
/* From replay_h1.c: the bytes that followed an upgrade request in the same read. */
void rconn_upgraded(rconn_t *c, const uint8_t *data, size_t len);
int rconn_write(rconn_t *c, const uint8_t *data, size_t len);

#endif

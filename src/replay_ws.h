/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_REPLAY_WS_H
#define MITMREC_REPLAY_WS_H

/*
 * WebSocket replay (replay_ws.c): after a recorded WebSocket answered a client's upgrade
 * (HTTP/1.1) or extended CONNECT (HTTP/2), the recorded messages are played back in turns
 * (see the file).
 */

#include <stddef.h>
#include <stdint.h>

#include "httpmsg.h"

typedef struct rconn rconn_t;
typedef struct rws rws_t;

#define RWS_ACCEPT_LEN 28

/* Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (base64 of SHA-1, RFC 6455 4.2.2).
   0, or -EINVAL for a key too long to be one. */
int rws_accept_key(const char *key, char out[RWS_ACCEPT_LEN + 1]);

/* The conversation of recorded exchange ex (borrowed) on c: on the connection itself after
   an HTTP/1.1 upgrade (stream 0), or on an HTTP/2 stream (RFC 8441). NULL on ENOMEM. */
rws_t *rws_new(rconn_t *c, int32_t stream, const http_exchange_t *ex);
/* Queues the server's messages that came before the client's first. */
void rws_start(rws_t *w);
/* Bytes from the client. 0, or -1 when the connection is to end (a close, a protocol error). */
int rws_feed(rws_t *w, const uint8_t *data, size_t len);
/* We sent our close frame. */
int rws_closed(const rws_t *w);
void rws_free(rws_t *w);

#endif

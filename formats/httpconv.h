/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_FORMATS_HTTPCONV_H
#define MITMREC_FORMATS_HTTPCONV_H

#include <stddef.h>
#include <stdint.h>

#include "httpmsg.h"

/*
 * One HTTP conversation, whatever it speaks: the one decoder that both the
 * live recorder and read mode (-r) use, so a HAR made from a pcapng equals the
 * HAR written live. It starts as HTTP/1.x, or HTTP/2 when the ALPN says "h2"
 * or the client begins with the connection preface (h2c prior knowledge),
 * follows an HTTP/1.1 Upgrade to h2c or to WebSocket, and WebSocket over
 * HTTP/2 (RFC 8441). Bytes that are not HTTP stop it quietly (raw TCP).
 *
 * Callbacks have the contract of http1.h: on_request_head (borrowed exchange;
 * the consumer may set ex->user / ex->user_frame), on_exchange (takes
 * ownership). A WebSocket exchange is delivered when the connection ends,
 * with its messages.
 */

#define HTTPCONV_C2S 0
#define HTTPCONV_S2C 1

enum httpconv_kind {
    HTTPCONV_UNKNOWN = 0, /* nothing decided yet */
    HTTPCONV_HTTP1,
    HTTPCONV_HTTP2,
    HTTPCONV_WEBSOCKET, /* after an upgrade */
    HTTPCONV_NOT_HTTP,  /* gave up: raw TCP */
};

typedef struct httpconv httpconv_t;

typedef struct httpconv_callbacks {
    void (*on_request_head)(void *opaque, http_exchange_t *ex);
    void (*on_exchange)(void *opaque, http_exchange_t *ex);
    /* A protocol error stopped HTTP/2 or a WebSocket direction (one line,
       borrowed). May be NULL. */
    void (*on_error)(void *opaque, const char *message);
} httpconv_callbacks_t;

/*
 * alpn: the protocol TLS selected ("h2", "http/1.1"), or NULL. max_body: bytes
 * kept per body (0 = 16 MiB). cb is copied, opaque borrowed. NULL on ENOMEM.
 */
httpconv_t *httpconv_new(const httpconv_callbacks_t *cb, void *opaque, const char *alpn,
                         size_t max_body);

/* Frees it and every exchange not delivered. NULL is a no-op. */
void httpconv_free(httpconv_t *c);

/* Bytes of direction dir (HTTPCONV_*) at ts_usec. Returns 0 or -ENOMEM. */
int httpconv_feed(httpconv_t *c, int dir, const void *data, size_t len, uint64_t ts_usec);

/* The direction ended (FIN). */
int httpconv_eof(httpconv_t *c, int dir, uint64_t ts_usec);

/* The connection is over: delivers every pending exchange (error: why, or NULL). */
void httpconv_finish(httpconv_t *c, const char *error, uint64_t ts_usec);

enum httpconv_kind httpconv_kind(const httpconv_t *c);

#endif

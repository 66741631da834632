/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_FORMATS_HTTP1_H
#define MITMREC_FORMATS_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#include "httpmsg.h"

/*
 * HTTP/1.x conversation decoder over Debian's http-parser. It watches both
 * directions of one connection (bytes as the client sent them and as the
 * server sent them, any split) and pairs requests with responses: keep-alive,
 * pipelining, chunked bodies, HEAD, 1xx interim responses (skipped), 204/304,
 * bodies delimited by connection close, Connection: close.
 *
 * Callbacks run only from inside http1_conn_feed / _eof / _finish.
 */

#define HTTP1_REQ 0  /* client to server */
#define HTTP1_RESP 1 /* server to client */

typedef struct http1_conn http1_conn_t;

typedef struct http1_callbacks {
    /* The first byte of a request was seen; ex->t_req_start is set, the rest
       is not yet. Borrowed: valid until on_exchange hands it over. May be NULL. */
    void (*on_request_begin)(void *opaque, http_exchange_t *ex);
    /* The request head is complete: method, target, version, headers. May be NULL. */
    void (*on_request_head)(void *opaque, http_exchange_t *ex);
    /* The exchange is over (response complete, or the connection ended first, in
       which case ex->error says why). Takes ownership: the callee frees ex with
       http_exchange_free. Exchanges complete in request order. */
    void (*on_exchange)(void *opaque, http_exchange_t *ex);
    /* A 101 Switching Protocols or a 2xx answer to CONNECT: the bytes after it
       in both directions are no longer HTTP/1 and are ignored by the decoder.
       May be NULL. The exchange itself is still delivered through on_exchange. */
    void (*on_upgrade)(void *opaque, http_exchange_t *ex);
    /* Right after on_upgrade: the bytes that followed the switch and reached
       the decoder (client bytes it held back after the request, the rest of
       the feed that carried the 101 / 2xx), with the time they were seen, so
       the next protocol's decoder can start from them. Later bytes are not
       given to this decoder's feed by the caller. May be NULL. */
    void (*on_upgrade_data)(void *opaque, int dir, const uint8_t *data, size_t len,
                            uint64_t ts_usec);
} http1_callbacks_t;

/*
 * Creates a decoder. cb is copied; opaque is borrowed. Bodies keep at most
 * max_body bytes each (0 = 16 MiB). NULL on ENOMEM.
 */
http1_conn_t *http1_conn_new(const http1_callbacks_t *cb, void *opaque, size_t max_body);

/* Frees the decoder and any exchange not yet delivered. NULL is a no-op. */
void http1_conn_free(http1_conn_t *c);

/*
 * Feeds len bytes seen in direction dir (HTTP1_REQ / HTTP1_RESP) at time
 * ts_usec. Returns 0, or -EBADMSG once a direction is not valid HTTP/1 (the
 * decoder then ignores further bytes in that direction; pending exchanges are
 * delivered with an error by http1_conn_finish).
 */
int http1_conn_feed(http1_conn_t *c, int dir, const void *data, size_t len, uint64_t ts_usec);

/* The direction ended (FIN). Completes a body delimited by close. Returns 0 or -EBADMSG. */
int http1_conn_eof(http1_conn_t *c, int dir, uint64_t ts_usec);

/*
 * The connection is over: delivers every exchange still pending, with
 * ex->error = error (copied; "connection closed before the response" when
 * NULL) unless it completed.
 */
void http1_conn_finish(http1_conn_t *c, const char *error, uint64_t ts_usec);

/* True once the decoder has given up on a direction or passed an upgrade. */
int http1_conn_stopped(const http1_conn_t *c);

#endif

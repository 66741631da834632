/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_FORMATS_WEBSOCKET_H
#define MITMREC_FORMATS_WEBSOCKET_H

#include <stddef.h>
#include <stdint.h>

#include "httpmsg.h"

/*
 * WebSocket (RFC 6455) frame decoder for one connection after the upgrade
 * (HTTP/1.1 101, or an RFC 8441 extended CONNECT stream of HTTP/2). It watches
 * both directions, any split, and turns frames into messages: fragmented data
 * messages are reassembled (control frames in between come out on their own),
 * masked frames are unmasked, and permessage-deflate (RFC 7692) messages are
 * inflated. Control frames (close, ping, pong) are messages too.
 *
 * A protocol error (reserved opcode or bits, bad length encoding, fragmented or
 * oversized control frame, stray continuation, undecodable compressed data)
 * stops that direction only; the other one goes on.
 *
 * Limits: a message keeps at most max_message bytes (longer ones are truncated
 * and counted); the messages appended to the exchange keep at most max_kept
 * bytes and WEBSOCKET_MAX_MESSAGES entries in all (later ones are counted as
 * dropped, and still reach on_message).
 *
 * Callbacks run only from inside websocket_conn_feed.
 */

#define WEBSOCKET_CLIENT 0 /* bytes the client sent (masked frames) */
#define WEBSOCKET_SERVER 1 /* bytes the server sent */

#define WEBSOCKET_MAX_MESSAGES 100000

typedef struct websocket_conn websocket_conn_t;

typedef struct websocket_callbacks {
    /* A message is complete. dir: WEBSOCKET_CLIENT / _SERVER. data (len bytes,
       unmasked and inflated, followed by a NUL not counted in len) is borrowed
       for the call; total is the full size, more than len when it was
       truncated. ts_usec is the time of the bytes that completed it. May be NULL. */
    void (*on_message)(void *opaque, int dir, int opcode, const uint8_t *data, size_t len,
                       uint64_t total, uint64_t ts_usec);
    /* Direction dir stopped on a protocol error; message says why, in one
       line (borrowed for the call). Called once per direction. May be NULL. */
    void (*on_error)(void *opaque, int dir, const char *message);
} websocket_callbacks_t;

typedef struct websocket_stats {
    uint64_t messages;  /* messages completed, both directions */
    uint64_t truncated; /* of them, longer than max_message */
    uint64_t dropped;   /* not appended to the exchange: past max_kept or the count limit */
} websocket_stats_t;

/*
 * Creates a decoder. extensions is the negotiated Sec-WebSocket-Extensions
 * value (the server's answer), or NULL: permessage-deflate with its
 * client_no_context_takeover, server_no_context_takeover and *_max_window_bits
 * parameters is understood, other extensions are not (their RSV bits are then
 * errors). It is parsed here and not kept.
 *
 * ex, when not NULL, receives every message through http_exchange_add_ws; it is
 * borrowed and must outlive the decoder (or the last feed). cb is copied (may
 * be NULL), opaque borrowed. max_message: bytes kept per message, 0 = 16 MiB.
 * max_kept: bytes appended to ex in all, 0 = 64 MiB.
 *
 * Returns NULL on ENOMEM.
 */
websocket_conn_t *websocket_conn_new(const char *extensions, http_exchange_t *ex,
                                     const websocket_callbacks_t *cb, void *opaque,
                                     size_t max_message, size_t max_kept);

/* Frees the decoder; a message still being assembled is dropped. NULL is a no-op. */
void websocket_conn_free(websocket_conn_t *c);

/*
 * Feeds len bytes the client (WEBSOCKET_CLIENT) or the server sent, seen at
 * ts_usec. Returns 0; -EBADMSG when that direction has stopped on a protocol
 * error (now or before; on_error ran once); -ENOMEM (the direction stops too);
 * -EINVAL for a bad dir. Bytes after a close frame are ignored.
 */
int websocket_conn_feed(websocket_conn_t *c, int dir, const void *data, size_t len,
                        uint64_t ts_usec);

/* True once direction dir stopped on an error. */
int websocket_conn_failed(const websocket_conn_t *c, int dir);

/* Frames declaring more than 2^40 bytes are refused as corrupt. */
#define WEBSOCKET_MAX_FRAME_LOG2 40

/* True when direction dir stopped inside a frame or a fragmented message. */
int websocket_conn_pending(const websocket_conn_t *c, int dir);

/* True once direction dir sent a close frame. */
int websocket_conn_closed(const websocket_conn_t *c, int dir);

/* From now on an unmasked client frame stops the client direction, as a server must take
   it (RFC 6455 5.1); a recorder takes what was sent, and does not call this. */
void websocket_conn_require_masks(websocket_conn_t *c);

/* True when permessage-deflate was negotiated. */
int websocket_conn_deflate(const websocket_conn_t *c);

/* Copies the counters into *st. */
void websocket_conn_stats(const websocket_conn_t *c, websocket_stats_t *st);

#endif

/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_REPLAY_PASS_H
#define MITMREC_REPLAY_PASS_H

#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "recorder.h"
#include "replay_conn.h"
#include "replaydb.h"

/*
 * --unmatched passthrough: one unmatched request sent to where it was going
 * (HTTP/1.1 over a connection of its own, TLS with SNI host when the client
 * used TLS), its response decoded and served to the client as if recorded;
 * with --record-new the upstream conversation goes to the recorder.
 */

/*
 * Starts the fetch for the request rq of connection c (stream: its HTTP/2
 * stream, 0 for HTTP/1). Everything is copied. When the response is there (or
 * the fetch failed), rconn_pass_done is called. Returns 0, or a negative
 * errno without calling back.
 */
int replay_pass_start(uv_loop_t *loop, SSL_CTX *cctx, recorder_t *rec,
                      const struct sockaddr_storage *to, const char *host, int tls,
                      const rreq_t *rq, rconn_t *c, int32_t stream);

/*
 * --unmatched passthrough for a WebSocket: rq goes upstream as an HTTP/1.1 upgrade (with its
 * Upgrade header and Connection: Upgrade; from an HTTP/2 client's extended CONNECT on
 * stream, with a Sec-WebSocket-Key of ours), and from then on the connection (or the stream)
 * is a tunnel. What the upstream sends goes to the client through rconn_tunnel_data as it
 * comes: for HTTP/1.1 all of it, its answer too; for HTTP/2 the frames after a 101 whose
 * Sec-WebSocket-Accept is our key's, rconn_tunnel_open first. What the client sends goes
 * upstream through replay_pass_tunnel_feed. The upstream's end, or a failure, ends it with
 * rconn_tunnel_end. Returns the fetch (owned by c's list), or NULL on ENOMEM without
 * calling back.
 */
struct pass *replay_pass_tunnel(uv_loop_t *loop, SSL_CTX *cctx, recorder_t *rec,
                                const struct sockaddr_storage *to, const char *host, int tls,
                                const rreq_t *rq, rconn_t *c, int32_t stream);
/* The client's bytes (copied). */
void replay_pass_tunnel_feed(struct pass *p, const uint8_t *data, size_t len);
/* The client finished sending: the upstream gets our FIN after its bytes. */
void replay_pass_tunnel_eof(struct pass *p);
/* The client's side (an HTTP/2 stream) is gone: the tunnel ends without calling back. */
void replay_pass_tunnel_drop(struct pass *p);

/* The connection c is closing: its fetches finish without calling back. */
void replay_pass_cancel(rconn_t *c);

/* In replay_answer.c: the list head of c's fetches (owned by replay_pass.c). */
struct pass;
struct pass **rconn_pass_list(rconn_t *c);

/* In replay_answer.c, for c's tunnel on stream (0: the connection itself): the upstream's
   101 for an HTTP/2 stream, with its subprotocol and extensions (NULL when absent), answered
   with a 200 (0, or -1 when the stream is gone); the upstream's bytes for the client (0, or
   -1); the end: the client's FIN or the stream's end after them, or when nothing went to
   the client yet, a 502 saying err; and the tunnel forgotten, as c closes. */
int rconn_tunnel_open(rconn_t *c, int32_t stream, const char *proto, const char *ext);
int rconn_tunnel_data(rconn_t *c, int32_t stream, const uint8_t *data, size_t len);
void rconn_tunnel_end(rconn_t *c, int32_t stream, const char *err);
void rconn_tunnel_forget(rconn_t *c, int32_t stream);

/* In replay_answer.c: a fetch for c ended with entry e (borrowed for the call) or err. */
void rconn_pass_done(rconn_t *c, int32_t stream, const replay_entry_t *e, const char *method,
                     const char *err);

#endif

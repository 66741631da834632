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
 * --unmatched passthrough for a WebSocket upgrade over HTTP/1.1: rq goes upstream with its
 * Upgrade header (and Connection: Upgrade), and from then on the connection is a tunnel.
 * What the upstream sends (its answer, then its frames) goes to the client through
 * rconn_tunnel_data as it comes; what the client sends goes upstream through
 * replay_pass_tunnel_feed. The upstream's end, or a failure, ends it with
 * rconn_tunnel_end. Returns the fetch (owned by c's list), or NULL on ENOMEM without
 * calling back.
 */
struct pass *replay_pass_tunnel(uv_loop_t *loop, SSL_CTX *cctx, recorder_t *rec,
                                const struct sockaddr_storage *to, const char *host, int tls,
                                const rreq_t *rq, rconn_t *c);
/* The client's bytes after its upgrade request (copied). */
void replay_pass_tunnel_feed(struct pass *p, const uint8_t *data, size_t len);
/* The client finished sending: the upstream gets our FIN after its bytes. */
void replay_pass_tunnel_eof(struct pass *p);

/* The connection c is closing: its fetches finish without calling back. */
void replay_pass_cancel(rconn_t *c);

/* In replay_answer.c: the list head of c's fetches (owned by replay_pass.c). */
struct pass;
struct pass **rconn_pass_list(rconn_t *c);

/* In replay_answer.c: the upstream's bytes of c's tunnel, queued for the client (0, or
   -ENOMEM); and its end: our FIN after them, or when the upstream sent nothing, a 502
   saying err. */
int rconn_tunnel_data(rconn_t *c, const uint8_t *data, size_t len);
void rconn_tunnel_end(rconn_t *c, const char *err);

/* In replay_answer.c: a fetch for c ended with entry e (borrowed for the call) or err. */
void rconn_pass_done(rconn_t *c, int32_t stream, const replay_entry_t *e, const char *method,
                     const char *err);

#endif

/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_REPLAY_SERVER_INT_H
#define MITMREC_REPLAY_SERVER_INT_H

/*
 * Private to the replay server: replay_server.c listens, accepts, detects the protocol,
 * does TLS, answers DNS and runs each connection's life; replay_answer.c answers a
 * connection from the recording (HTTP requests, raw TCP conversations) through its send
 * queue.
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "conn.h"
#include "procinfo.h"
#include "replay_conn.h"
#include "replay_server.h"
#include "replay_ws.h"
#include "replaydb.h"
#include "tls.h"

enum { P_DETECT, P_TLS, P_H1, P_H2, P_RAW, P_WS, P_TUNNEL, P_DONE };

/* Something to send once its time has come (--realtime), in order. */
typedef struct pending {
    struct pending *next;
    uint64_t due;   /* uv_now() milliseconds */
    uint8_t *bytes; /* HTTP/1 or raw bytes */
    size_t len;
    int32_t stream; /* HTTP/2: respond on it with resp */
    rresp_t *resp;
    int shut;  /* then send our FIN */
    int reset; /* then reset the connection */
    int ws;    /* HTTP/2: bytes is a WebSocket frame for stream */
} pending_t;

struct rconn {
    conn_t c;
    replay_server_t *srv;
    rconn_t *next, *prev;
    struct sockaddr_storage orig;
    char orig_ip[256]; /* the address, or the host a CONNECT named */
    uint16_t orig_port;
    char orig_at[300]; /* "ip:port", "[ip]:port" for IPv6, for messages */
    procinfo_t pi;
    int proto;
    int tls;
    char sni[256];
    tls_hooks_t hooks;
    uv_timer_t timer;
    int handles;
    int closing;
    pending_t *pq, *pq_tail;
    rh1_t *h1;
    /* HTTP/2 */
    rh2_t *h2;
    /* WebSocket, after a recorded 101 (replay_ws.c) */
    rws_t *ws;
    struct pass *passes; /* --unmatched passthrough fetches (replay_pass.c) */
    struct pass *tunnel; /* P_TUNNEL: the passthrough of a WebSocket upgrade, until it ends */
    /* raw */
    replay_conv_t *conv;
    size_t idx, got;
    int raw_reported;
    uint64_t raw_due;
    /* A program that speaks to an HTTP proxy: its CONNECT, until complete (replay_server.c) */
    uint8_t *chead;
    size_t chead_len;
    int via_proxy; /* answered: orig_ip and orig_port are the tunnel's end */
};

struct replay_server {
    replay_server_cfg_t cfg;
    conn_env_t env;
    uv_tcp_t tl[2];
    int ntl;
    uv_udp_t ul[2];
    int nul;
    int handles;
    int stopping;
    rconn_t *conns;
    uint8_t ubuf[65536];
};

/* replay_server.c: client bytes of a WebSocket conversation. */
void rconn_ws_feed(rconn_t *c, const uint8_t *data, size_t len);

/* replay_answer.c: a WebSocket frame of ours (takes bytes), to go delay_ms from now (never
   ahead of what is queued): on the connection (stream 0, after an HTTP/1.1 upgrade) or on an
   HTTP/2 stream. 0, or -ENOMEM. */
int rconn_ws_send(rconn_t *c, int32_t stream, uint8_t *bytes, size_t len, uint64_t delay_ms);

/* replay_server.c: unlinks the connection and closes its timer; conn_close follows by the
   caller. */
void rconn_finish(rconn_t *c);

/* replay_answer.c: frees a queued item (and its bytes and response). */
void rconn_pending_free(pending_t *p);

/* replay_answer.c: queues p (takes it) to go delay_ms from now (at most a minute), never
   ahead of what is queued before it, and sends what is due. */
void rconn_pq_add(rconn_t *c, pending_t *p, uint64_t delay_ms);

/* replay_answer.c: whether the recording has HTTP entries for c's original port. */
int rconn_has_http_for(replay_server_t *s, const rconn_t *c);

/* replay_answer.c: the recorded conversation for c (same port, unused, the best match for
   data, its first client bytes, NULL for a server-first start), else the last one again
   unless --no-reuse; NULL when there is none. */
replay_conv_t *rconn_pick_conv(replay_server_t *s, const rconn_t *c, const uint8_t *data,
                               size_t len);

/* replay_answer.c: reports c's raw conversation, once. */
void rconn_raw_report(rconn_t *c);

/* replay_answer.c: c is a raw TCP conversation, starting with data (may be NULL, len 0). */
void rconn_raw_start(rconn_t *c, const uint8_t *data, size_t len);

/* replay_answer.c: client bytes of a raw conversation. */
void rconn_raw_feed(rconn_t *c, const uint8_t *data, size_t len);

#endif

/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_FLOW_INT_H
#define MITMREC_FLOW_INT_H

#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "flow.h"
#include "rewrite.h"
#include "tls.h"

/*
 * What the three pieces of a flow share, and nothing else includes:
 *   flow.c      its life and end, errors, the client side, the relay, accepting;
 *   flow_tls.c  TLS interception: both handshakes' hooks, the forged certificate, ALPN;
 *   flow_up.c   the upstream side: resolving, connecting, its events.
 */

#define HEAD_MAX (64 * 1024)
#define HANDSHAKE_TIMEOUT_MS 10000
/* How long a flow whose both sides ended waits for a peer to read what is queued for it. */
#define FINISH_TIMEOUT_MS 300000

enum flow_state {
    F_HEAD, /* reading the proxy request */
    F_RESOLVING,
    F_CONNECTING,
    F_SNIFF, /* tunnel open, first bytes not seen yet */
    F_PROXY, /* transparent: the client's CONNECT went on to its proxy, whose answer is due */
    F_TLS,   /* handshakes in progress */
    F_RELAY,
    F_FAILED, /* answered with an error; what the client still sends is ignored */
    F_CLOSING,
};

enum flow_mode { M_NONE, M_CONNECT, M_PLAIN, M_TRANSPARENT };

/* Client-leg bytes of one write to the client, kept until their plaintext is recorded. */
typedef struct held_wire {
    struct held_wire *next;
    uint64_t ts;
    size_t len;
    size_t cap; /* room in data */
    uint8_t data[];
} held_wire_t;

struct flow {
    proxy_t *p;
    flow_t *next, *prev;
    uint64_t id;
    enum flow_state state;
    enum flow_mode mode;
    conn_t client, up;
    int up_inited;
    int handles; /* open handles; the flow is freed when 0 */
    rec_flow_t *rec;
    int recording;     /* client-leg wire bytes go to the recorder */
    int wire_in_done;  /* the read being handled was recorded already */
    int hold_wire_out; /* client_wire keeps what goes out in wire_held */
    held_wire_t *wire_held, **wire_held_tail;
    int client_fin_done; /* the client's FIN is recorded (up_eof found it waiting) */
    int tls;
    uint8_t *head;
    size_t head_len;
    uint64_t head_ts;
    char host[256];
    uint16_t port;
    char sni[256];
    unsigned char client_alpn[256];
    size_t client_alpn_len;
    int up_done; /* upstream handshake over */
    int up_failed;
    int finishing;              /* both sides ended: closes once the queues are sent */
    X509 *leaf;                 /* the forged certificate, made on the loop's thread */
    unsigned char up_alpn[256]; /* the protocol the server chose (alpn_select's copy) */
    unsigned int up_alpn_len;
    int leaf_failed;
    char error[300];
    struct sockaddr_storage client_addr, up_addr;
    uv_getaddrinfo_t gai;
    int gai_pending;
    uint64_t t_dns0, t_dns1, t_conn0, t_conn1, t_tls0, t_tls1;
    tls_hooks_t hooks_client, hooks_up;
    rewrite_t *rw;
    uint8_t *rwbuf;
    size_t rwcap;
    uint8_t *early; /* server bytes that came before the client handshake ended */
    size_t early_len;
    uv_timer_t linger; /* bounds the wait for a peer after a failure */
    int linger_on;
    /* Transparent flows to an HTTP proxy: the client's CONNECT (in head until complete) went
       on to the proxy; its answer collects in phead. Once it is a 2xx, host and port are the
       tunnel's, and what goes through it is intercepted like any flow. */
    int via_proxy; /* 1: CONNECT sent, 2: the tunnel is open */
    char proxy_host[256];
    uint16_t proxy_port;
    size_t proxy_req_len; /* the CONNECT's head, at the start of head */
    uint8_t *phead;
    size_t phead_len;
};

static inline double flow_ms_between(uint64_t a, uint64_t b)
{
    return a && b >= a ? (double)(b - a) / 1000.0 : -1;
}

/* flow.c */
/* Appends buf to f->head (its first bytes stamp head_ts): 0, -E2BIG past HEAD_MAX (nothing
   appended), or -ENOMEM. */
int flow_head_add(flow_t *f, const uint8_t *buf, size_t len, uint64_t ts);
void flow_client_error(conn_t *c, int err);
void flow_leg_shut(conn_t *c);
void flow_on_conn_close(conn_t *c);
int flow_relay_to_client(flow_t *f, const uint8_t *buf, size_t len);
int flow_relay_to_up(flow_t *f, const uint8_t *buf, size_t len, uint64_t ts);
void flow_send_status(flow_t *f, int status, const char *reason, const char *body);
void flow_close(flow_t *f, int reset);
void flow_fail(flow_t *f, const char *method, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void flow_finish(flow_t *f);
void flow_linger(flow_t *f, int ms);
void flow_timer(flow_t *f, int ms);

/* flow_tls.c */
void flow_resume_client_tls(flow_t *f);
int flow_start_tunnel_data(flow_t *f, const uint8_t *buf, size_t len, uint64_t ts);

/* flow_up.c */
extern const conn_cb_t flow_up_cb;
/* Whether the first bytes of a transparent flow may be a CONNECT to an HTTP proxy. */
int flow_proxy_connect_start(const flow_t *f, const uint8_t *buf, size_t len);
/* The client's bytes while its CONNECT is not complete: 0, or a negative errno. */
int flow_proxy_connect(flow_t *f, const uint8_t *buf, size_t len, uint64_t ts);
/* The bytes kept for a CONNECT that was not one go on as an ordinary flow's first bytes. */
int flow_proxy_not_connect(flow_t *f, uint64_t ts);
int flow_connect_up(flow_t *f);
int flow_resolve_and_connect(flow_t *f);
void flow_up_data(conn_t *c, const uint8_t *buf, size_t len);
void flow_up_error(conn_t *c, int err);

#endif

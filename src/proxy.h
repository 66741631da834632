/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_PROXY_H
#define MITMREC_PROXY_H

#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "ca.h"
#include "conn.h"
#include "procinfo.h"
#include "recorder.h"

/*
 * Transparent mode: where an accepted connection was going and which process
 * made it. Returns 0, or a negative errno when the connection was not
 * redirected to us (it is then closed).
 */
typedef int (*proxy_lookup_fn)(void *opaque, const struct sockaddr *peer,
                               struct sockaddr_storage *orig_dst, procinfo_t *pi);

/*
 * The explicit proxy: a listener and the state its flows share. The caller
 * fills the borrowed pointers, then proxy_start; proxy_stop stops accepting
 * and closes flows once they are done (or at once with force).
 */

typedef struct flow flow_t;

typedef struct proxy {
    uv_loop_t *loop;     /* borrowed */
    recorder_t *rec;     /* borrowed */
    ca_t *ca;            /* borrowed */
    SSL_CTX *server_ctx; /* borrowed: client-facing TLS */
    SSL_CTX *client_ctx; /* borrowed: upstream TLS */
    int insecure;
    void (*on_idle)(struct proxy *p); /* stopping and the last flow closed */
    proxy_lookup_fn lookup;           /* transparent listeners only */
    void *lookup_opaque;
    /* private */
    conn_env_t _env;
    uv_tcp_t _listener;
    int _listening;
    uv_tcp_t _tlisteners[2]; /* transparent: 127.0.0.1 and ::1 */
    int _ntlisteners;
    int _stopping;
    flow_t *_flows; /* doubly linked list of live flows */
    uint64_t _nflows;
    uint64_t _next_id;
    struct held_wire *_held_spare; /* one block for flow.c to reuse (freed with no flows) */
} proxy_t;

/* Listens on host:port (port 0 = any); the port bound goes into *bound. */
int proxy_start(proxy_t *p, const char *host, int port, int *bound, char *err, size_t errlen);

/*
 * Transparent listeners on 127.0.0.1 and ::1 with one port (0 = any): where
 * the redirector sends intercepted connections. *bound gets the port; *v6 is
 * set when ::1 is listened on too. Needs p->lookup.
 */
int proxy_start_transparent(proxy_t *p, int port, int *bound, int *v6, char *err, size_t errlen);

/* Stops accepting. Flows finish on their own; force closes them now. */
void proxy_stop(proxy_t *p, int force);

/* Live flows. */
uint64_t proxy_flows(const proxy_t *p);

#endif

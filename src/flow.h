/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_FLOW_H
#define MITMREC_FLOW_H

#include <uv.h>

#include "proxy.h"

/*
 * A flow: one client connection to the proxy and its upstream connection.
 * It reads the proxy request (CONNECT or absolute-form), connects upstream,
 * intercepts TLS in tunnels, relays both ways with back-pressure, and tells
 * the recorder everything. It frees itself once both connections closed.
 */

/*
 * Accepts one pending connection from the listener and starts its flow.
 * transparent: the connection was redirected to us (p->lookup tells where it
 * was going); otherwise it is a proxy client. -ENOENT: not redirected, closed.
 */
int flow_accept(proxy_t *p, uv_stream_t *listener, int transparent);

/* Closes the flow now (shutdown of the proxy). */
void flow_abort(flow_t *f);

/* The list link of the proxy's flows. */
flow_t *flow_next(const flow_t *f);

#endif

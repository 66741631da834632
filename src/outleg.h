/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_OUTLEG_H
#define MITMREC_OUTLEG_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "conn.h"
#include "httpconv.h"
#include "recorder.h"
#include "tls.h"

/*
 * A connection mitmreplay opens itself to send one recorded request again (--client, and
 * passthrough of unrecorded requests), recorded as a flow whose client leg is ours, and
 * decoded (httpconv) into the exchange the caller compares or serves. Embedded in the
 * caller's job, whose conn callbacks call these; the conn's data stays the caller's.
 */
typedef struct outleg {
    rec_flow_t *flow; /* NULL when not recording */
    httpconv_t *conv; /* set by outleg_decode */
    tls_hooks_t hooks;
} outleg_t;

/* From on_connect, connected: the flow to scheme://host:port starts (when rec). */
void outleg_connected(outleg_t *o, conn_t *c, recorder_t *rec, const char *scheme, const char *host,
                      uint16_t port);

/* Starts TLS on c: SNI host, the certificate checked for host when verify, ALPN alpn (wire
   format). 0, or -1 with *why. */
int outleg_start_tls(outleg_t *o, conn_t *c, SSL_CTX *ctx, const char *host, int verify,
                     const unsigned char *alpn, unsigned alpn_len, const char **why);

/* From on_handshake, succeeded: the protocol the server chose into alpn ("" for none). */
void outleg_handshake_done(outleg_t *o, conn_t *c, char *alpn, size_t len);

/* The decoder of the exchange (protocol "h2" or NULL), calling cb with opaque. -ENOMEM. */
int outleg_decode(outleg_t *o, const httpconv_callbacks_t *cb, void *opaque, const char *protocol);

/* Plaintext we send: recorded and decoded first, then written. conn_write's result. */
int outleg_send(outleg_t *o, conn_t *c, const uint8_t *p, size_t len);

/* From on_data: the server's plaintext, recorded and decoded. */
void outleg_data(outleg_t *o, const uint8_t *buf, size_t len);

/* From on_wire and on_eof. */
void outleg_wire(outleg_t *o, int out, const uint8_t *buf, size_t len);
void outleg_eof(outleg_t *o);

/* The end: the exchange decoded so far is finished (err: why it is cut short), then the
   flow ends with our FIN, after the server's if it sent one. */
void outleg_end(outleg_t *o, conn_t *c, const char *err);

/* Frees the decoder (after outleg_end, when the job is freed). */
void outleg_free(outleg_t *o);

/* 1 for a request header not to send again as recorded: hop-by-hop, framing, Host and
   HTTP/2 pseudo-headers. */
int outleg_skip_header(const char *name);

#endif

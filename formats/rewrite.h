/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_REWRITE_H
#define MITMREC_REWRITE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * The request stream a proxy client sends, rewritten for the origin server:
 * each request line's absolute-form target ("http://host:port/path?q")
 * becomes origin-form ("/path?q"); every other byte passes unchanged, across
 * keep-alive and pipelined requests and any split of the input.
 */

typedef struct rewrite rewrite_t;

rewrite_t *rewrite_new(void);
void rewrite_free(rewrite_t *rw);

/*
 * Feeds client bytes; appends the bytes to send upstream to *out (realloc'd,
 * caller frees) at *outlen. Returns 0, -EBADMSG when the stream is not HTTP
 * (the rest then passes through unchanged), -ENOMEM.
 */
int rewrite_feed(rewrite_t *rw, const uint8_t *in, size_t len, uint8_t **out, size_t *outlen,
                 size_t *outcap);

/*
 * The client's stream ended (FIN): appends to *out what rw still held, a request target
 * whose line did not end (rewritten if the parser had gone past it, else as it came), so
 * that no byte the client sent is lost. Further feeds pass bytes unchanged. Returns 0 or
 * -ENOMEM.
 */
int rewrite_finish(rewrite_t *rw, uint8_t **out, size_t *outlen, size_t *outcap);

/*
 * Splits an absolute-form http:// URL into host (bracketless for IPv6, into
 * host/hostlen) and port (80 by default). Returns 0 or -EINVAL.
 */
int rewrite_parse_http_url(const char *url, char *host, size_t hostlen, uint16_t *port);

/* Splits a CONNECT authority "host:port" or "[v6]:port". Returns 0 or -EINVAL. */
int rewrite_parse_authority(const char *auth, char *host, size_t hostlen, uint16_t *port);

/*
 * The first bytes a client sent on a connection, when it may be speaking to an HTTP proxy:
 * "CONNECT host:port HTTP/1.x", header lines, an empty line. Returns the head's length (with
 * host and port filled in) once it is all there, 0 while it may still become one (more bytes
 * needed), or -EINVAL when it is not one (other bytes, a bad target, a request line longer
 * than 599 bytes).
 */
ssize_t rewrite_connect_head(const uint8_t *p, size_t len, char *host, size_t hostlen,
                             uint16_t *port);

/*
 * A proxy's answer to a CONNECT: "HTTP/1.x STATUS ...", headers, an empty line. Returns the
 * head's length (with *status, 0 when the status line is not one) once it is all there, or 0
 * while it is not.
 */
size_t rewrite_answer_head(const uint8_t *p, size_t len, int *status);

#endif

/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_MATCH_H
#define MITMREC_MATCH_H

#include <stddef.h>
#include <stdint.h>

#include "httpmsg.h"

/*
 * Server replay's request matching, as mitmproxy's server replay does it: a
 * request matches a recorded one when scheme, method, host, port, path, the
 * query parameters (in order) and a hash of the body are equal, minus what
 * the options leave out; headers count only when named by --use-header.
 * Identical recorded requests answer in recording order, then the last one
 * answers again (or, with no_reuse, nothing does). Pure: no sockets, no loop.
 */

typedef struct match_opts {
    const char *const *ignore_params; /* query parameter names left out */
    size_t nignore_params;
    const char *const *ignore_payload_params; /* form body parameter names left out */
    size_t nignore_payload_params;
    const char *const *use_headers; /* header names that count */
    size_t nuse_headers;
    int ignore_body, ignore_host, ignore_port;
    int no_reuse;
} match_opts_t;

/* A request as matching sees it. Everything is borrowed for the call. */
typedef struct match_req {
    const char *scheme; /* "http" / "https" */
    const char *method;
    const char *host; /* without port; compared case-insensitively */
    uint16_t port;
    const char *target;           /* path and query, e.g. "/a/b?x=1" (origin-form) */
    const http_header_t *headers; /* for --use-header and the body's content type */
    size_t nheaders;
    const uint8_t *body;
    size_t body_len;
} match_req_t;

typedef struct match match_t;

/* Creates an empty table; o is copied (its arrays are borrowed and must outlive it). */
match_t *match_new(const match_opts_t *o);

/* Frees it. NULL is a no-op. */
void match_free(match_t *m);

/* Adds a recorded request with the caller's id (recording order). Returns 0 or -ENOMEM. */
int match_add(match_t *m, const match_req_t *r, size_t id);

/*
 * Finds the recorded request for r: *id gets the caller's id and the request
 * is counted as used. Returns 0, or -ENOENT with one line into why saying what
 * failed to match (the closest recorded request and the parts that differ, or
 * that every response for it was used with no_reuse).
 */
int match_find(match_t *m, const match_req_t *r, size_t *id, char *why, size_t whylen);

/* A short description of a request, "GET https://host:port/path?q", into buf. */
void match_describe(const match_req_t *r, char *buf, size_t len);

#endif

/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "refresh.h"
#include "replay_conn.h"

/* Responses of the replay server: from a recorded entry (refreshed to now), or a text of
   our own; and their HTTP/1.1 bytes. */

void rresp_free(rresp_t *r)
{
    if (!r)
        return;
    http_headers_free(r->headers, r->nheaders);
    free(r->owned_body);
    free(r);
}

static int resp_add(rresp_t *r, const char *name, const char *value)
{
    if (r->nheaders == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        http_header_t *n = realloc(r->headers, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        r->headers = n;
        r->cap = cap;
    }
    if (http_header_set(&r->headers[r->nheaders], name, strlen(name), value, strlen(value)) < 0)
        return -ENOMEM;
    r->nheaders++;
    return 0;
}

static const char *reason_of(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    default:
        return "";
    }
}

/* Headers that belong to one connection, or that we compute. */
static int hop_header(const char *n)
{
    return !strcasecmp(n, "connection") || !strcasecmp(n, "keep-alive") ||
           !strcasecmp(n, "proxy-connection") || !strcasecmp(n, "transfer-encoding") ||
           !strcasecmp(n, "upgrade") || !strcasecmp(n, "content-length") || n[0] == ':';
}

rresp_t *rresp_from_entry(const replay_entry_t *e, const char *method, int refresh)
{
    const http_exchange_t *ex = e->ex;
    rresp_t *r = calloc(1, sizeof(*r));
    int64_t delta = 0;
    const char *cl = http_msg_header(&ex->resp, "content-length");
    char buf[64], shifted[4096];

    if (!r)
        return NULL;
    r->status = ex->status;
    snprintf(r->reason, sizeof(r->reason), "%s",
             ex->reason && *ex->reason ? ex->reason : reason_of(ex->status));
    r->body = ex->resp.body;
    r->len = ex->resp.body_len;
    r->no_body =
        !strcmp(method, "HEAD") || ex->status == 204 || ex->status == 304 || ex->status < 200;
    if (refresh) {
        uint64_t rec = ex->t_resp_start ? ex->t_resp_start : ex->t_req_start;
        if (rec)
            delta = (int64_t)time(NULL) - (int64_t)(rec / 1000000);
    }
    for (size_t i = 0; i < ex->resp.nheaders; i++) {
        const http_header_t *h = &ex->resp.headers[i];
        const char *v = h->value;
        if (hop_header(h->name) || (e->body_decoded && !strcasecmp(h->name, "content-encoding")))
            continue;
        if (delta && refresh_header(h->name, v, delta, shifted, sizeof(shifted)))
            v = shifted;
        if (resp_add(r, h->name, v) < 0)
            goto oom;
    }
    /* Trailers (gRPC's grpc-status, for one) follow the body, over HTTP/2 or, for an
       HTTP/1.1 client, in the chunked coding. */
    if (!r->no_body) {
        r->trailers = ex->resp.trailers;
        r->ntrailers = ex->resp.ntrailers;
    }
    /* HTTP/1 keeps the recorded framing: chunked stays chunked (one chunk). */
    const char *te = http_msg_header(&ex->resp, "transfer-encoding");
    r->chunked = (te && strcasestr(te, "chunked") && !r->no_body && !e->h2) || r->ntrailers;
    if (r->chunked)
        return r;
    if (!strcmp(method, "HEAD") && cl) {
        if (resp_add(r, "Content-Length", cl) < 0)
            goto oom;
    } else if (!r->no_body || ex->status == 304) {
        if (ex->status != 304) {
            snprintf(buf, sizeof(buf), "%zu", r->len);
            if (resp_add(r, "Content-Length", buf) < 0)
                goto oom;
        }
    }
    return r;
oom:
    rresp_free(r);
    return NULL;
}

rresp_t *rresp_text(int status, const char *text, int head)
{
    rresp_t *r = calloc(1, sizeof(*r));
    char buf[32];

    if (!r)
        return NULL;
    r->status = status;
    snprintf(r->reason, sizeof(r->reason), "%s", reason_of(status));
    r->owned_body = (uint8_t *)strdup(text);
    r->body = r->owned_body;
    r->len = r->owned_body ? strlen(text) : 0;
    r->no_body = head;
    snprintf(buf, sizeof(buf), "%zu", r->len);
    if (!r->owned_body || resp_add(r, "Content-Type", "text/plain; charset=utf-8") < 0 ||
        resp_add(r, "Content-Length", buf) < 0 || resp_add(r, "X-Mitmreplay", "unmatched") < 0) {
        rresp_free(r);
        return NULL;
    }
    return r;
}

uint8_t *rresp_h1(const rresp_t *r, int close, int http10, size_t *len)
{
    size_t cap = 64 + sizeof(r->reason) + (r->no_body ? 0 : r->len);
    int chunked = r->chunked && !http10;
    uint8_t *b;
    size_t off;

    for (size_t i = 0; i < r->nheaders; i++)
        cap += strlen(r->headers[i].name) + strlen(r->headers[i].value) + 4;
    for (size_t i = 0; i < r->ntrailers; i++)
        cap += strlen(r->trailers[i].name) + strlen(r->trailers[i].value) + 4;
    cap += 96;
    if (!(b = malloc(cap)))
        return NULL;
    off = (size_t)snprintf((char *)b, cap, "HTTP/1.1 %d %s\r\n", r->status, r->reason);
    for (size_t i = 0; i < r->nheaders; i++)
        off += (size_t)snprintf((char *)b + off, cap - off, "%s: %s\r\n", r->headers[i].name,
                                r->headers[i].value);
    if (close)
        off += (size_t)snprintf((char *)b + off, cap - off, "Connection: close\r\n");
    if (chunked)
        off += (size_t)snprintf((char *)b + off, cap - off, "Transfer-Encoding: chunked\r\n");
    else if (r->chunked) /* recorded chunked, asked in HTTP/1.0: the length instead */
        off += (size_t)snprintf((char *)b + off, cap - off, "Content-Length: %zu\r\n", r->len);
    off += (size_t)snprintf((char *)b + off, cap - off, "\r\n");
    if (chunked && r->len)
        off += (size_t)snprintf((char *)b + off, cap - off, "%zx\r\n", r->len);
    if (!r->no_body && r->len) {
        memcpy(b + off, r->body, r->len);
        off += r->len;
    }
    if (chunked) {
        off += (size_t)snprintf((char *)b + off, cap - off, "%s0\r\n", r->len ? "\r\n" : "");
        for (size_t i = 0; i < r->ntrailers; i++)
            off += (size_t)snprintf((char *)b + off, cap - off, "%s: %s\r\n", r->trailers[i].name,
                                    r->trailers[i].value);
        off += (size_t)snprintf((char *)b + off, cap - off, "\r\n");
    }
    *len = off;
    return b;
}

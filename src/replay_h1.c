/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <http_parser.h>

#include "harread.h"
#include "replay_conn.h"
#include "replaydb.h"

/* The server side of HTTP/1.x on a replayed connection, over http-parser. */

#define REQ_BODY_MAX (16u << 20)  /* request bodies kept for matching */
#define HDR_PART_MAX (64u * 1024) /* one header name or value, or the target */

struct rh1 {
    rconn_t *c;
    http_parser hp;
    http_msg_t req;
    char *url;
    size_t url_len;
    char *hf, *hv;
    size_t hf_len, hv_len;
    int in_value;
    int close; /* the last request asked for the connection to end */
};

static void req_clear(http_msg_t *m)
{
    http_headers_free(m->headers, m->nheaders);
    http_msg_body_free(m);
    memset(m, 0, sizeof(*m));
}

static int grow_str(char **s, size_t *len, const char *at, size_t n, size_t max)
{
    char *p;

    if (*len + n > max)
        return -1;
    if (!(p = realloc(*s, *len + n + 1)))
        return -1;
    memcpy(p + *len, at, n);
    *len += n;
    p[*len] = '\0';
    *s = p;
    return 0;
}

static int flush_header(rh1_t *c)
{
    int rc = 0;

    if (c->hf_len)
        rc = http_msg_add_header(&c->req, c->hf, c->hf_len, c->hv ? c->hv : "", c->hv_len);
    c->hf_len = c->hv_len = 0;
    c->in_value = 0;
    return rc < 0 ? -1 : 0;
}

static int h1_begin(http_parser *hp)
{
    rh1_t *c = hp->data;

    req_clear(&c->req);
    c->url_len = c->hf_len = c->hv_len = 0;
    c->in_value = 0;
    return 0;
}

static int h1_url(http_parser *hp, const char *at, size_t n)
{
    rh1_t *c = hp->data;
    return grow_str(&c->url, &c->url_len, at, n, HDR_PART_MAX);
}

static int h1_field(http_parser *hp, const char *at, size_t n)
{
    rh1_t *c = hp->data;

    if (c->in_value && flush_header(c) < 0)
        return -1;
    return grow_str(&c->hf, &c->hf_len, at, n, HDR_PART_MAX);
}

static int h1_value(http_parser *hp, const char *at, size_t n)
{
    rh1_t *c = hp->data;

    c->in_value = 1;
    return grow_str(&c->hv, &c->hv_len, at, n, HDR_PART_MAX);
}

static int h1_headers_done(http_parser *hp)
{
    rh1_t *c = hp->data;
    return flush_header(c);
}

static int h1_body(http_parser *hp, const char *at, size_t n)
{
    rh1_t *c = hp->data;
    return http_msg_add_body(&c->req, at, n, REQ_BODY_MAX) < 0 ? -1 : 0;
}

static int h1_complete(http_parser *hp)
{
    rh1_t *c = hp->data;
    rreq_t rq;
    char scheme[16], host[256];
    uint16_t port;
    const char *path = c->url ? c->url : "/";

    memset(&rq, 0, sizeof(rq));
    rq.method = http_method_str((enum http_method)hp->method);
    rq.authority = http_msg_header(&c->req, "host");
    /* absolute-form: its path, and its host when there is no Host header */
    if (c->url &&
        har_url_split(c->url, scheme, sizeof(scheme), host, sizeof(host), &port, &path) == 0 &&
        !rq.authority)
        rq.authority = host;
    rq.target = path;
    rq.msg = &c->req;
    c->close = !http_should_keep_alive(hp);
    rconn_request(c->c, &rq, 0);
    return 0;
}

static const http_parser_settings *h1_settings(void)
{
    static const http_parser_settings st = {
        .on_message_begin = h1_begin,
        .on_url = h1_url,
        .on_header_field = h1_field,
        .on_header_value = h1_value,
        .on_headers_complete = h1_headers_done,
        .on_body = h1_body,
        .on_message_complete = h1_complete,
    };
    return &st;
}

rh1_t *rh1_new(rconn_t *c)
{
    rh1_t *h = calloc(1, sizeof(*h));

    if (!h)
        return NULL;
    h->c = c;
    http_parser_init(&h->hp, HTTP_REQUEST);
    h->hp.data = h;
    return h;
}

int rh1_feed(rh1_t *h, const uint8_t *data, size_t len)
{
    size_t n = http_parser_execute(&h->hp, h1_settings(), (const char *)data, len);

    if (h->hp.upgrade) {
        /* The bytes after an upgrade request: WebSocket frames, when it was answered with a
           recorded 101; otherwise not ours to answer. */
        if (n < len)
            rconn_upgraded(h->c, data + n, len - n);
        return 0;
    }
    if (n != len || HTTP_PARSER_ERRNO(&h->hp) != HPE_OK)
        return -EBADMSG;
    return 0;
}

int rh1_http10(const rh1_t *h)
{
    return h && h->hp.http_major == 1 && h->hp.http_minor == 0;
}

int rh1_close(const rh1_t *h)
{
    return h ? h->close : 0;
}

void rh1_free(rh1_t *h)
{
    if (!h)
        return;
    req_clear(&h->req);
    free(h->url);
    free(h->hf);
    free(h->hv);
    free(h);
}

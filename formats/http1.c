/* SPDX-License-Identifier: MIT */
#include "http1.h"
#include "grow.h"

#include <errno.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The whole head of one message (start line, headers, blank line). */
#define HTTP1_MAX_HEAD (256 * 1024)
#define HTTP1_DEFAULT_MAX_BODY (16 * 1024 * 1024)
/* Requests sent ahead of their responses; real pipelines are a handful deep. */
#define HTTP1_MAX_PENDING 256
/* Client bytes kept while a protocol switch is pending (see held_*). */
#define HTTP1_MAX_HELD (256 * 1024)

typedef struct h1_node {
    http_exchange_t *ex;
    struct h1_node *next;
    int upgrade_req; /* the request asked to switch protocols (CONNECT, Upgrade) */
} h1_node_t;

typedef struct strbuf {
    char *p;
    size_t len, cap;
} strbuf_t;

typedef struct held_seg {
    struct held_seg *next;
    uint64_t ts;
    size_t len;
    uint8_t data[];
} held_seg_t;

/* What a parser callback paused on; handled once http_parser_execute returns,
   where the stream offset of the event is known. */
enum h1_event { EV_NONE, EV_BEGIN, EV_HEADERS, EV_COMPLETE };
enum h1_hstate { HS_NONE, HS_FIELD, HS_VALUE };

typedef struct h1_dir {
    http_parser p;
    struct http1_conn *c;
    int dir;
    uint64_t off;        /* bytes handed to the parser so far in this direction */
    uint64_t head_start; /* stream offset of the current message's first byte */
    uint64_t body_start; /* stream offset of the byte after its blank line */
    h1_node_t *cur;      /* exchange of the message being parsed, or NULL */
    enum h1_event ev;
    int in_head; /* header callbacks are the head's, not chunked trailers' */
    int interim; /* response: a 1xx to skip */
    int upgrade; /* response: switches protocols */
    enum h1_hstate hs;
    strbuf_t line; /* request target or status text */
    strbuf_t name, value;
    size_t head_bytes;
    int failed, eof;
    int err;         /* negative errno from a callback */
    const char *why; /* why a callback stopped the parser */
} h1_dir_t;

struct http1_conn {
    http1_callbacks_t cb;
    void *opaque;
    size_t max_body;
    h1_dir_t d[2];
    h1_node_t *head, *tail;
    size_t npending;
    uint64_t seq;
    uint64_t ts; /* time of the bytes being parsed */
    int upgraded, finished;
    int upgrade_rest_given;
    /*
     * After a request that asks to switch protocols, the client's next bytes
     * are HTTP/1 only if the server declines. They wait here (bounded) until
     * the response says which.
     */
    int held;
    held_seg_t *held_head, *held_tail;
    size_t held_bytes;
    int held_lost, held_eof;
    uint64_t held_eof_ts;
};

static int sb_append(strbuf_t *b, const char *at, size_t len)
{
    if (!len)
        return 0;
    if (mr_grow(&b->p, &b->cap, b->len + len, 256, 0) < 0)
        return -ENOMEM;
    memcpy(b->p + b->len, at, len);
    b->len += len;
    return 0;
}

static http_msg_t *dir_msg(h1_dir_t *d)
{
    return d->dir == HTTP1_REQ ? &d->cur->ex->req : &d->cur->ex->resp;
}

static h1_node_t *node_new(struct http1_conn *c)
{
    h1_node_t *n = calloc(1, sizeof(*n));

    if (!n)
        return NULL;
    n->ex = http_exchange_new();
    if (!n->ex) {
        free(n);
        return NULL;
    }
    n->ex->seq = c->seq++;
    n->ex->t_req_start = c->ts;
    n->ex->t_req_end = c->ts;
    if (c->tail)
        c->tail->next = n;
    else
        c->head = n;
    c->tail = n;
    c->npending++;
    return n;
}

/* The oldest exchange still waiting for its (final) response. */
static h1_node_t *node_awaiting_response(struct http1_conn *c)
{
    for (h1_node_t *n = c->head; n; n = n->next)
        if (!n->ex->resp.complete)
            return n;
    return NULL;
}

static void deliver(struct http1_conn *c, h1_node_t *n)
{
    http_exchange_t *ex = n->ex;

    free(n);
    c->npending--;
    if (c->cb.on_exchange)
        c->cb.on_exchange(c->opaque, ex);
    else
        http_exchange_free(ex);
}

static int node_done(const struct http1_conn *c, const h1_node_t *n)
{
    if (!n->ex->resp.complete)
        return 0;
    return n->ex->req.complete || c->d[HTTP1_REQ].failed || c->upgraded;
}

/* Hands over finished exchanges from the front, so they leave in request order. */
static void drain(struct http1_conn *c)
{
    while (c->head && node_done(c, c->head)) {
        h1_node_t *n = c->head;

        c->head = n->next;
        if (!c->head)
            c->tail = NULL;
        if (c->d[HTTP1_REQ].cur == n)
            c->d[HTTP1_REQ].cur = NULL;
        if (c->d[HTTP1_RESP].cur == n)
            c->d[HTTP1_RESP].cur = NULL;
        deliver(c, n);
    }
}

static void msg_reset(http_msg_t *m)
{
    http_headers_free(m->headers, m->nheaders);
    http_headers_free(m->trailers, m->ntrailers);
    http_msg_body_free(m);
    memset(m, 0, sizeof(*m));
    m->headers_size = -1;
}

static void set_error(http_exchange_t *ex, const char *what)
{
    if (!ex->error)
        http_strset(&ex->error, what, strlen(what));
}

/* ---- http_parser callbacks: capture data, pause on the events ---- */

static int count_head(h1_dir_t *d, size_t len)
{
    d->head_bytes += len;
    if (d->head_bytes > HTTP1_MAX_HEAD) {
        d->why = "headers larger than 256 KiB";
        return -1;
    }
    return 0;
}

static int cb_message_begin(http_parser *p)
{
    h1_dir_t *d = p->data;
    struct http1_conn *c = d->c;

    d->head_bytes = 0;
    d->hs = HS_NONE;
    d->line.len = 0;
    d->in_head = 1;
    d->interim = 0;
    d->upgrade = 0;
    if (d->dir == HTTP1_REQ) {
        if (c->npending >= HTTP1_MAX_PENDING) {
            d->why = "too many pipelined requests";
            return -1;
        }
        d->cur = node_new(c);
        if (!d->cur) {
            d->err = -ENOMEM;
            return -1;
        }
    } else {
        d->cur = node_awaiting_response(c);
        if (!d->cur) {
            d->why = "response without a request";
            return -1;
        }
        d->cur->ex->t_resp_start = c->ts;
        d->cur->ex->t_resp_end = c->ts;
    }
    d->ev = EV_BEGIN;
    http_parser_pause(p, 1);
    return 0;
}

static int cb_line(http_parser *p, const char *at, size_t len)
{
    h1_dir_t *d = p->data;

    if (count_head(d, len) < 0)
        return -1;
    if (sb_append(&d->line, at, len) < 0) {
        d->err = -ENOMEM;
        return -1;
    }
    return 0;
}

/* Headers before the body, trailers after a chunked one. */
static int commit_header(h1_dir_t *d)
{
    const char *name = d->name.p ? d->name.p : "", *value = d->value.p ? d->value.p : "";
    size_t vlen = d->hs == HS_VALUE ? d->value.len : 0;
    int r = d->in_head ? http_msg_add_header(dir_msg(d), name, d->name.len, value, vlen)
                       : http_msg_add_trailer(dir_msg(d), name, d->name.len, value, vlen);

    d->hs = HS_NONE;
    if (r < 0) {
        d->err = r;
        return -1;
    }
    return 0;
}

/* Names and values may come in several pieces: a name is complete when its
   value starts, a value when the next name (or the end of the head) comes. */
static int cb_header_field(http_parser *p, const char *at, size_t len)
{
    h1_dir_t *d = p->data;

    /* Trailers count against the same limit as the head. */
    if (count_head(d, len) < 0)
        return -1;
    if (d->hs == HS_VALUE && commit_header(d) < 0)
        return -1;
    if (d->hs != HS_FIELD) {
        d->name.len = 0;
        d->hs = HS_FIELD;
    }
    if (sb_append(&d->name, at, len) < 0) {
        d->err = -ENOMEM;
        return -1;
    }
    return 0;
}

static int cb_header_value(http_parser *p, const char *at, size_t len)
{
    h1_dir_t *d = p->data;

    if (count_head(d, len) < 0)
        return -1;
    if (d->hs != HS_VALUE) {
        d->value.len = 0;
        d->hs = HS_VALUE;
    }
    if (sb_append(&d->value, at, len) < 0) {
        d->err = -ENOMEM;
        return -1;
    }
    return 0;
}

static int cb_headers_complete(http_parser *p)
{
    h1_dir_t *d = p->data;
    http_exchange_t *ex = d->cur->ex;
    int ret = 0;

    if (d->hs != HS_NONE && commit_header(d) < 0)
        return -1;
    d->in_head = 0;
    if (d->dir == HTTP1_REQ) {
        const char *m = http_method_str((enum http_method)p->method);

        if (http_strset(&ex->method, m, strlen(m)) < 0 ||
            http_strset(&ex->target, d->line.p ? d->line.p : "", d->line.len) < 0) {
            d->err = -ENOMEM;
            return -1;
        }
        ex->req_major = p->http_major;
        ex->req_minor = p->http_minor;
    } else {
        int st = p->status_code;
        int head = ex->method && strcmp(ex->method, "HEAD") == 0;
        int connect = ex->method && strcmp(ex->method, "CONNECT") == 0;

        if (http_strset(&ex->reason, d->line.p ? d->line.p : "", d->line.len) < 0) {
            d->err = -ENOMEM;
            return -1;
        }
        ex->status = st;
        ex->resp_major = p->http_major;
        ex->resp_minor = p->http_minor;
        /* 1 tells http_parser "no body", 2 "no body and no HTTP/1 after it". */
        if (st == 101 || (connect && st / 100 == 2)) {
            d->upgrade = 1;
            ret = 2;
        } else if (st / 100 == 1) {
            d->interim = 1;
            ret = 1;
        } else if (head || st == 204 || st == 304) {
            ret = 1;
        }
    }
    d->ev = EV_HEADERS;
    http_parser_pause(p, 1);
    return ret;
}

static int cb_body(http_parser *p, const char *at, size_t len)
{
    h1_dir_t *d = p->data;
    int r = http_msg_add_body(dir_msg(d), at, len, d->c->max_body);

    if (r < 0) {
        d->err = r;
        return -1;
    }
    return 0;
}

static int cb_message_complete(http_parser *p)
{
    h1_dir_t *d = p->data;

    if (d->hs != HS_NONE && commit_header(d) < 0)
        return -1;
    d->ev = EV_COMPLETE;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings h1_settings = {
    .on_message_begin = cb_message_begin,
    .on_url = cb_line,
    .on_status = cb_line,
    .on_header_field = cb_header_field,
    .on_header_value = cb_header_value,
    .on_headers_complete = cb_headers_complete,
    .on_body = cb_body,
    .on_message_complete = cb_message_complete,
};

/* ---- driving the parsers ---- */

static int dir_feed(struct http1_conn *c, h1_dir_t *d, const uint8_t *data, size_t len,
                    uint64_t ts);
static int dir_eof(struct http1_conn *c, h1_dir_t *d, uint64_t ts);

static void held_free(struct http1_conn *c)
{
    while (c->held_head) {
        held_seg_t *s = c->held_head;

        c->held_head = s->next;
        free(s);
    }
    c->held_tail = NULL;
    c->held_bytes = 0;
}

static int hold(struct http1_conn *c, const uint8_t *data, size_t len, uint64_t ts)
{
    held_seg_t *s;

    if (c->held_lost || c->held_bytes + len > HTTP1_MAX_HELD) {
        /* Harmless if the switch happens; fails the direction if it does not. */
        c->held_lost = 1;
        held_free(c);
        return 0;
    }
    s = malloc(sizeof(*s) + len);
    if (!s)
        return -ENOMEM;
    s->next = NULL;
    s->ts = ts;
    s->len = len;
    memcpy(s->data, data, len);
    if (c->held_tail)
        c->held_tail->next = s;
    else
        c->held_head = s;
    c->held_tail = s;
    c->held_bytes += len;
    return 0;
}

static int dir_fail(struct http1_conn *c, h1_dir_t *d, enum http_errno e)
{
    const char *side = d->dir == HTTP1_REQ ? "request" : "response";
    char msg[160];
    h1_node_t *n = d->cur;
    int rc = d->err ? d->err : -EBADMSG;

    d->failed = 1;
    if (d->err == -ENOMEM)
        snprintf(msg, sizeof(msg), "out of memory decoding the HTTP %s", side);
    else if (e == HPE_HEADER_OVERFLOW)
        snprintf(msg, sizeof(msg), "HTTP %s: headers larger than 256 KiB", side);
    else if (d->why)
        snprintf(msg, sizeof(msg), "HTTP %s: %s", side, d->why);
    else
        snprintf(msg, sizeof(msg), "invalid HTTP %s: %s", side, http_errno_description(e));
    if (n && d->dir == HTTP1_REQ && !n->ex->method && d->hs != HS_NONE) {
        /* A head cut short (too big, or closed) past its request line: keep the line, so the
           exchange says what was asked. The method is set last: without it, no line. */
        const char *m = http_method_str((enum http_method)d->p.method);

        if (http_strset(&n->ex->target, d->line.p ? d->line.p : "", d->line.len) == 0 &&
            http_strset(&n->ex->method, m, strlen(m)) == 0) {
            n->ex->req_major = d->p.http_major;
            n->ex->req_minor = d->p.http_minor;
        }
    }
    if (!n) {
        if (d->dir == HTTP1_REQ) {
            /* Keep a record of the garbage so a response to it has a home. */
            n = c->npending < HTTP1_MAX_PENDING ? node_new(c) : NULL;
        } else {
            n = node_awaiting_response(c);
        }
    }
    if (n)
        set_error(n->ex, msg);
    d->cur = NULL;
    drain(c);
    return rc;
}

static void release_held(struct http1_conn *c)
{
    h1_dir_t *d = &c->d[HTTP1_REQ];
    held_seg_t *s = c->held_head;
    int lost = c->held_lost, eof = c->held_eof;
    uint64_t eof_ts = c->held_eof_ts;

    c->held = 0;
    c->held_head = c->held_tail = NULL;
    c->held_bytes = 0;
    c->held_lost = 0;
    c->held_eof = 0;
    /* The parser stopped at the switch request; start it afresh. */
    http_parser_init(&d->p, HTTP_REQUEST);
    d->p.data = d;
    if (lost) {
        while (s) {
            held_seg_t *next = s->next;

            free(s);
            s = next;
        }
        d->why = "client data lost while a protocol switch was pending";
        dir_fail(c, d, HPE_UNKNOWN);
        return;
    }
    while (s) {
        held_seg_t *next = s->next;

        /* Errors land on the exchanges; the response side is not at fault. */
        dir_feed(c, d, s->data, s->len, s->ts);
        free(s);
        s = next;
    }
    if (eof)
        dir_eof(c, d, eof_ts);
}

static void handle_event(struct http1_conn *c, h1_dir_t *d)
{
    enum h1_event ev = d->ev;
    h1_node_t *n = d->cur;
    http_exchange_t *ex;
    http_msg_t *m;
    int release = 0;

    d->ev = EV_NONE;
    if (!n)
        return;
    ex = n->ex;
    m = dir_msg(d);
    switch (ev) {
    case EV_BEGIN:
        /* The parser consumed the message's first byte before pausing. */
        d->head_start = d->off - 1;
        if (d->dir == HTTP1_REQ && c->cb.on_request_begin)
            c->cb.on_request_begin(c->opaque, ex);
        break;
    case EV_HEADERS:
        /* It paused on the blank line's LF, which it reads again on resume. */
        d->body_start = d->off + 1;
        m->headers_size = (int64_t)(d->body_start - d->head_start);
        if (d->dir == HTTP1_REQ) {
            ex->announced = 1;
            if (c->cb.on_request_head)
                c->cb.on_request_head(c->opaque, ex);
        }
        break;
    case EV_COMPLETE:
        m->wire_body_size = d->off - d->body_start;
        d->cur = NULL;
        if (d->dir == HTTP1_REQ) {
            ex->t_req_end = c->ts;
            m->complete = 1;
            if (d->p.upgrade) {
                n->upgrade_req = 1;
                c->held = 1;
            }
            drain(c);
            break;
        }
        if (d->interim) {
            msg_reset(m);
            free(ex->reason);
            ex->reason = NULL;
            ex->status = 0;
            ex->resp_major = ex->resp_minor = 0;
            ex->t_resp_start = ex->t_resp_end = 0;
            break;
        }
        ex->t_resp_end = c->ts;
        m->complete = 1;
        if (d->upgrade) {
            c->upgraded = 1;
            c->held = 0;
            c->d[HTTP1_REQ].cur = NULL;
            if (c->cb.on_upgrade)
                c->cb.on_upgrade(c->opaque, ex);
            /* What the client sent after its request belongs to the new protocol. */
            if (c->cb.on_upgrade_data)
                for (held_seg_t *h = c->held_head; h; h = h->next)
                    c->cb.on_upgrade_data(c->opaque, HTTP1_REQ, h->data, h->len, h->ts);
            held_free(c);
        } else if (n->upgrade_req && c->held) {
            release = 1;
        }
        drain(c);
        if (release)
            release_held(c);
        break;
    default:
        break;
    }
}

/* Keeps end times and wire sizes current, for messages the connection cuts short. */
static void progress(struct http1_conn *c, h1_dir_t *d)
{
    http_exchange_t *ex;

    if (!d->cur)
        return;
    ex = d->cur->ex;
    if (d->dir == HTTP1_REQ)
        ex->t_req_end = c->ts;
    else
        ex->t_resp_end = c->ts;
    if (!d->in_head && d->off >= d->body_start)
        dir_msg(d)->wire_body_size = d->off - d->body_start;
}

static int dir_feed(struct http1_conn *c, h1_dir_t *d, const uint8_t *data, size_t len, uint64_t ts)
{
    size_t pos = 0;

    while (pos < len) {
        size_t n;
        enum http_errno e;

        if (c->upgraded && !c->upgrade_rest_given && pos > 0) {
            /* The switch happened inside this feed: the rest is the new protocol's. */
            c->upgrade_rest_given = 1;
            if (c->cb.on_upgrade_data)
                c->cb.on_upgrade_data(c->opaque, d->dir, data + pos, len - pos, ts);
            return 0;
        }
        if (c->upgraded || c->finished || d->failed || d->eof)
            return 0;
        if (d->dir == HTTP1_REQ && c->held)
            return hold(c, data + pos, len - pos, ts);
        c->ts = ts;
        n = http_parser_execute(&d->p, &h1_settings, (const char *)data + pos, len - pos);
        pos += n;
        d->off += n;
        e = HTTP_PARSER_ERRNO(&d->p);
        if (e == HPE_PAUSED) {
            http_parser_pause(&d->p, 0);
            handle_event(c, d);
            c->ts = ts; /* a released hold may have replayed older bytes */
            progress(c, d);
            continue;
        }
        if (e != HPE_OK)
            return dir_fail(c, d, e);
        progress(c, d);
        if (n == 0)
            break; /* cannot happen without an event; never spin */
    }
    return 0;
}

static int dir_eof(struct http1_conn *c, h1_dir_t *d, uint64_t ts)
{
    enum http_errno e;

    if (c->upgraded || c->finished || d->failed || d->eof)
        return 0;
    if (d->dir == HTTP1_REQ && c->held) {
        c->held_eof = 1;
        c->held_eof_ts = ts;
        return 0;
    }
    c->ts = ts;
    http_parser_execute(&d->p, &h1_settings, NULL, 0);
    e = HTTP_PARSER_ERRNO(&d->p);
    if (e == HPE_PAUSED) {
        /* A body delimited by the close just ended. */
        http_parser_pause(&d->p, 0);
        handle_event(c, d);
        e = HPE_OK;
    }
    if (e != HPE_OK) {
        d->why = "connection closed in the middle of the message";
        d->eof = 1;
        return dir_fail(c, d, e);
    }
    d->eof = 1;
    return 0;
}

http1_conn_t *http1_conn_new(const http1_callbacks_t *cb, void *opaque, size_t max_body)
{
    struct http1_conn *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    if (cb)
        c->cb = *cb;
    c->opaque = opaque;
    c->max_body = max_body ? max_body : HTTP1_DEFAULT_MAX_BODY;
    /* http_parser's own head limit (80 KiB by default) is process-wide; every
       decoder sets the same value, so the calls agree. */
    http_parser_set_max_header_size(HTTP1_MAX_HEAD);
    for (int i = 0; i < 2; i++) {
        h1_dir_t *d = &c->d[i];

        http_parser_init(&d->p, i == HTTP1_REQ ? HTTP_REQUEST : HTTP_RESPONSE);
        d->p.data = d;
        d->c = c;
        d->dir = i;
    }
    return c;
}

void http1_conn_free(http1_conn_t *c)
{
    if (!c)
        return;
    while (c->head) {
        h1_node_t *n = c->head;

        c->head = n->next;
        http_exchange_free(n->ex);
        free(n);
    }
    held_free(c);
    for (int i = 0; i < 2; i++) {
        free(c->d[i].line.p);
        free(c->d[i].name.p);
        free(c->d[i].value.p);
    }
    free(c);
}

int http1_conn_feed(http1_conn_t *c, int dir, const void *data, size_t len, uint64_t ts_usec)
{
    if (dir != HTTP1_REQ && dir != HTTP1_RESP)
        return -EINVAL;
    if (len == 0)
        return 0; /* an empty read is not an end of stream here */
    return dir_feed(c, &c->d[dir], data, len, ts_usec);
}

int http1_conn_eof(http1_conn_t *c, int dir, uint64_t ts_usec)
{
    if (dir != HTTP1_REQ && dir != HTTP1_RESP)
        return -EINVAL;
    return dir_eof(c, &c->d[dir], ts_usec);
}

void http1_conn_finish(http1_conn_t *c, const char *error, uint64_t ts_usec)
{
    (void)ts_usec;
    if (c->finished)
        return;
    c->finished = 1;
    c->d[HTTP1_REQ].cur = NULL;
    c->d[HTTP1_RESP].cur = NULL;
    held_free(c);
    while (c->head) {
        h1_node_t *n = c->head;
        http_exchange_t *ex = n->ex;

        c->head = n->next;
        if (!ex->resp.complete)
            set_error(ex, error ? error : "connection closed before the response");
        else if (!ex->req.complete)
            set_error(ex, error ? error : "connection closed before the request ended");
        deliver(c, n);
    }
    c->tail = NULL;
}

int http1_conn_stopped(const http1_conn_t *c)
{
    return c->upgraded || c->d[HTTP1_REQ].failed || c->d[HTTP1_RESP].failed;
}

/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the HTTP/1 conversation decoder. Each scripted conversation
 * is fed whole, byte by byte and in random splits (fixed seed); expectations
 * (head sizes, timestamps) are computed from the script itself.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "http1.h"

#define MAX_GOT 32

enum role { R_NONE, R_REQ, R_RESP, R_EOF };
enum mode { MODE_WHOLE, MODE_BYTES, MODE_RANDOM, MODE_COUNT };

typedef struct step {
    int dir;  /* HTTP1_REQ / HTTP1_RESP */
    int role; /* part of exchange ex's request or response; R_NONE: other bytes */
    int ex;
    const char *data; /* NUL-terminated unless len is given */
    size_t len;
} step_t;

typedef struct expect {
    const char *method, *target;
    int status;
    const char *reason;
    const char *req_headers, *resp_headers; /* "Name: value|Name: value" in wire order */
    const char *req_trailers, *resp_trailers;
    const char *req_body, *resp_body;
    long resp_total; /* body_total when it differs from the body kept; 0 = same */
    int resp_eof;    /* the response ends with the server's EOF */
    int error;       /* ex->error is set */
    int upgrade;     /* on_upgrade is called for it */
    int no_resp;     /* no (final) response */
} expect_t;

typedef struct tcase {
    const char *name;
    const step_t *steps;
    size_t nsteps;
    const expect_t *exp;
    size_t nexp;
    size_t max_body;
    int stopped;    /* http1_conn_stopped at the end */
    int expect_err; /* exactly one feed/eof call returns an error */
} tcase_t;

typedef struct run {
    http_exchange_t *got[MAX_GOT];
    size_t ngot;
    int upgrades;
    uint64_t upgrade_seq;
    int begins, heads;
    int begin_ts_ok, head_ok;
    uint64_t *ts[2]; /* time each stream byte was fed at */
    size_t tslen[2];
    uint64_t eof_ts[2];
    uint64_t clock;
    uint32_t rng;
    int nerr;
} run_t;

static void cb_begin(void *opaque, http_exchange_t *ex)
{
    run_t *r = opaque;

    r->begins++;
    if (!(ex->t_req_start != 0 && ex->method == NULL))
        r->begin_ts_ok = 0;
}

static void cb_head(void *opaque, http_exchange_t *ex)
{
    run_t *r = opaque;

    r->heads++;
    if (!(ex->method && ex->target && ex->req.headers_size > 0))
        r->head_ok = 0;
}

static void cb_exchange(void *opaque, http_exchange_t *ex)
{
    run_t *r = opaque;

    if (r->ngot < MAX_GOT)
        r->got[r->ngot++] = ex;
    else
        http_exchange_free(ex);
}

static void cb_upgrade(void *opaque, http_exchange_t *ex)
{
    run_t *r = opaque;

    r->upgrades++;
    r->upgrade_seq = ex->seq;
}

static const http1_callbacks_t callbacks = {
    .on_request_begin = cb_begin,
    .on_request_head = cb_head,
    .on_exchange = cb_exchange,
    .on_upgrade = cb_upgrade,
};

static size_t step_len(const step_t *s)
{
    return s->len ? s->len : strlen(s->data);
}

static uint32_t rnd(run_t *r)
{
    r->rng = r->rng * 1103515245u + 12345u;
    return r->rng >> 16;
}

static void feed(run_t *r, http1_conn_t *c, int dir, const char *p, size_t len)
{
    uint64_t ts = 1000000000000ull + ++r->clock * 1000;
    int rc;

    r->ts[dir] = realloc(r->ts[dir], (r->tslen[dir] + len) * sizeof(uint64_t));
    for (size_t i = 0; i < len; i++)
        r->ts[dir][r->tslen[dir]++] = ts;
    rc = http1_conn_feed(c, dir, p, len, ts);
    if (rc < 0)
        r->nerr++;
}

/* Feeds a run of same-direction bytes as the mode says. */
static void feed_segment(run_t *r, http1_conn_t *c, int dir, const char *p, size_t len, int mode)
{
    size_t pos = 0;

    while (pos < len) {
        size_t n = len - pos;

        if (mode == MODE_BYTES)
            n = 1;
        else if (mode == MODE_RANDOM)
            n = 1 + rnd(r) % 23;
        if (n > len - pos)
            n = len - pos;
        feed(r, c, dir, p + pos, n);
        pos += n;
    }
}

static void join_pairs(const http_header_t *h, size_t n, char *out, size_t cap)
{
    size_t o = 0;

    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(out + o, o < cap ? cap - o : 0, "%s%s: %s", i ? "|" : "", h[i].name,
                              h[i].value);
}

static void join_headers(const http_msg_t *m, char *out, size_t cap)
{
    join_pairs(m->headers, m->nheaders, out, cap);
}

/* Where the message (role, ex) lies in its direction's stream, and its bytes. */
static int message_span(const tcase_t *t, int role, int ex, size_t *start, size_t *end,
                        char **bytes, size_t *blen)
{
    size_t off[2] = {0, 0};
    int found = 0;

    *bytes = NULL;
    *blen = 0;
    for (size_t i = 0; i < t->nsteps; i++) {
        const step_t *s = &t->steps[i];
        size_t len;

        if (s->role == R_EOF)
            continue;
        len = step_len(s);
        if (s->role == role && s->ex == ex) {
            if (!found)
                *start = off[s->dir];
            found = 1;
            *end = off[s->dir] + len;
            *bytes = realloc(*bytes, *blen + len + 1);
            memcpy(*bytes + *blen, s->data, len);
            *blen += len;
            (*bytes)[*blen] = '\0';
        }
        off[s->dir] += len;
    }
    return found;
}

static int64_t head_size(const char *m, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (m[i] == '\n' && m[i + 1] == '\n')
            return (int64_t)i + 2;
        if (i + 3 < len && memcmp(m + i, "\r\n\r\n", 4) == 0)
            return (int64_t)i + 4;
    }
    return -1;
}

static void check_case(const tcase_t *t, int mode)
{
    run_t r;
    http1_conn_t *c;
    size_t i = 0;
    char buf[4096];

    memset(&r, 0, sizeof(r));
    r.rng = 0x5eed0000u + (uint32_t)strlen(t->name) * 7919u;
    r.begin_ts_ok = r.head_ok = 1;
    c = http1_conn_new(&callbacks, &r, t->max_body);
    CHECK(c != NULL);
    if (!c)
        return;
    while (i < t->nsteps) {
        const step_t *s = &t->steps[i];

        if (s->role == R_EOF) {
            uint64_t ts = 1000000000000ull + ++r.clock * 1000;

            r.eof_ts[s->dir] = ts;
            if (http1_conn_eof(c, s->dir, ts) < 0)
                r.nerr++;
            i++;
            continue;
        }
        /* Consecutive steps in one direction go in as one run of bytes, so splits
           fall anywhere, across message boundaries too. */
        {
            size_t j = i, len = 0;
            char *seg;

            while (j < t->nsteps && t->steps[j].role != R_EOF && t->steps[j].dir == s->dir)
                len += step_len(&t->steps[j++]);
            seg = malloc(len);
            len = 0;
            for (size_t k = i; k < j; k++) {
                memcpy(seg + len, t->steps[k].data, step_len(&t->steps[k]));
                len += step_len(&t->steps[k]);
            }
            feed_segment(&r, c, s->dir, seg, len, mode);
            free(seg);
            i = j;
        }
    }
    CHECK_EQ_INT(http1_conn_stopped(c), t->stopped);
    http1_conn_finish(c, NULL, 1000000000000ull + ++r.clock * 1000);
    http1_conn_free(c);

    if (r.nerr != (t->expect_err ? 1 : 0))
        fprintf(stderr, "case %s mode %d: %d errors\n", t->name, mode, r.nerr);
    CHECK_EQ_INT(r.nerr, t->expect_err ? 1 : 0);
    if (r.ngot != t->nexp)
        fprintf(stderr, "case %s mode %d: %zu exchanges\n", t->name, mode, r.ngot);
    CHECK_EQ_INT(r.ngot, t->nexp);
    CHECK(r.begin_ts_ok);
    CHECK(r.head_ok);
    for (size_t k = 0; k < r.ngot && k < t->nexp; k++) {
        const expect_t *e = &t->exp[k];
        http_exchange_t *ex = r.got[k];
        size_t start = 0, end = 0;
        char *msg;
        size_t mlen;
        int nfail = check_failed_;

        CHECK_EQ_INT(ex->seq, k);
        CHECK_EQ_STR(ex->method, e->method);
        CHECK_EQ_STR(ex->target, e->target);
        join_headers(&ex->req, buf, sizeof(buf));
        if (e->req_headers)
            CHECK_EQ_STR(buf, e->req_headers);
        join_pairs(ex->req.trailers, ex->req.ntrailers, buf, sizeof(buf));
        CHECK_EQ_STR(buf, e->req_trailers ? e->req_trailers : "");
        CHECK_EQ_INT(ex->req.body_len, e->req_body ? strlen(e->req_body) : 0);
        if (e->req_body)
            CHECK(ex->req.body && memcmp(ex->req.body, e->req_body, strlen(e->req_body)) == 0);
        CHECK(ex->req.complete);
        if (message_span(t, R_REQ, (int)k, &start, &end, &msg, &mlen)) {
            int64_t hs = head_size(msg, mlen);

            CHECK_EQ_INT(ex->req.headers_size, hs);
            CHECK_EQ_INT(ex->req.wire_body_size, (int64_t)mlen - hs);
            CHECK_EQ_INT(ex->t_req_start, r.ts[HTTP1_REQ][start]);
            CHECK_EQ_INT(ex->t_req_end, r.ts[HTTP1_REQ][end - 1]);
        }
        free(msg);
        CHECK_EQ_INT(ex->error != NULL, e->error);
        if (e->no_resp) {
            CHECK_EQ_INT(ex->status, 0);
            CHECK(!ex->resp.complete);
        } else {
            CHECK_EQ_INT(ex->status, e->status);
            CHECK_EQ_STR(ex->reason, e->reason);
            join_headers(&ex->resp, buf, sizeof(buf));
            if (e->resp_headers)
                CHECK_EQ_STR(buf, e->resp_headers);
            join_pairs(ex->resp.trailers, ex->resp.ntrailers, buf, sizeof(buf));
            CHECK_EQ_STR(buf, e->resp_trailers ? e->resp_trailers : "");
            CHECK_EQ_INT(ex->resp.body_len, e->resp_body ? strlen(e->resp_body) : 0);
            if (e->resp_body)
                CHECK(ex->resp.body &&
                      memcmp(ex->resp.body, e->resp_body, strlen(e->resp_body)) == 0);
            CHECK_EQ_INT(ex->resp.body_total,
                         e->resp_total ? e->resp_total
                                       : (long)(e->resp_body ? strlen(e->resp_body) : 0));
            CHECK_EQ_INT(ex->resp.body_truncated, e->resp_total != 0);
            CHECK_EQ_INT(ex->resp.complete, !e->error);
            if (message_span(t, R_RESP, (int)k, &start, &end, &msg, &mlen)) {
                int64_t hs = head_size(msg, mlen);

                CHECK_EQ_INT(ex->resp.headers_size, hs);
                CHECK_EQ_INT(ex->resp.wire_body_size, (int64_t)mlen - hs);
                CHECK_EQ_INT(ex->t_resp_start, r.ts[HTTP1_RESP][start]);
                CHECK_EQ_INT(ex->t_resp_end,
                             e->resp_eof ? r.eof_ts[HTTP1_RESP] : r.ts[HTTP1_RESP][end - 1]);
            }
            free(msg);
        }
        if (e->upgrade) {
            CHECK_EQ_INT(r.upgrades, 1);
            CHECK_EQ_INT(r.upgrade_seq, k);
        }
        if (check_failed_ != nfail)
            fprintf(stderr, "  ^ case %s, mode %d, exchange %zu\n", t->name, mode, k);
    }
    {
        int nup = 0;

        for (size_t k = 0; k < t->nexp; k++)
            nup += t->exp[k].upgrade;
        CHECK_EQ_INT(r.upgrades, nup);
    }
    for (size_t k = 0; k < r.ngot; k++)
        http_exchange_free(r.got[k]);
    free(r.ts[0]);
    free(r.ts[1]);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define CASE(name, steps, exp, ...)                                                                \
    {                                                                                              \
        name, steps, N(steps), exp, N(exp), __VA_ARGS__                                            \
    }

/* ---- the conversations ---- */

static const step_t keepalive_steps[] = {
    {HTTP1_REQ, R_REQ, 0,
     "GET /a?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\nAccept: */*\r\n\r\n", 0},
    {HTTP1_RESP, R_RESP, 0,
     "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello", 0},
    {HTTP1_REQ, R_REQ, 1,
     "POST /b HTTP/1.1\r\nHost: example.com\r\nContent-Length: 7\r\n\r\nabc=def", 0},
    {HTTP1_RESP, R_RESP, 1, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", 0},
};
static const expect_t keepalive_exp[] = {
    {.method = "GET",
     .target = "/a?x=1",
     .status = 200,
     .reason = "OK",
     .req_headers = "Host: example.com|User-Agent: t/1|Accept: */*",
     .resp_headers = "Content-Type: text/plain|Content-Length: 5",
     .resp_body = "hello"},
    {.method = "POST",
     .target = "/b",
     .status = 201,
     .reason = "Created",
     .req_body = "abc=def",
     .resp_headers = "Content-Length: 0"},
};

static const step_t pipeline_steps[] = {
    {HTTP1_REQ, R_REQ, 0, "GET /1 HTTP/1.1\r\nX-First-Empty:\r\nHost: h\r\n\r\n", 0},
    {HTTP1_REQ, R_REQ, 1, "HEAD /2 HTTP/1.1\r\nHost: h\r\n\r\n", 0},
    {HTTP1_REQ, R_REQ, 2, "DELETE /3 HTTP/1.1\r\nHost: h\r\n\r\n", 0},
    {HTTP1_REQ, R_REQ, 3, "GET /4 HTTP/1.1\r\nHost: h\r\n\r\n", 0},
    {HTTP1_RESP, R_RESP, 0,
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\none\r\n0\r\n\r\n", 0},
    /* A stray CRLF after a body, as some servers send. */
    {HTTP1_RESP, R_NONE, 0, "\r\n", 0},
    {HTTP1_RESP, R_RESP, 1, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", 0},
    {HTTP1_RESP, R_RESP, 2, "HTTP/1.1 204 No Content\r\n\r\n", 0},
    {HTTP1_RESP, R_RESP, 3, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfour", 0},
};
static const expect_t pipeline_exp[] = {
    {.method = "GET",
     .target = "/1",
     .status = 200,
     .reason = "OK",
     .req_headers = "X-First-Empty: |Host: h",
     .resp_body = "one"},
    {.method = "HEAD",
     .target = "/2",
     .status = 200,
     .reason = "OK",
     .resp_headers = "Content-Length: 1234"},
    {.method = "DELETE", .target = "/3", .status = 204, .reason = "No Content"},
    {.method = "GET", .target = "/4", .status = 200, .reason = "OK", .resp_body = "four"},
};

static const step_t chunked_steps[] = {
    {HTTP1_REQ, R_REQ, 0,
     "POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
     "4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\n",
     0},
    {HTTP1_RESP, R_RESP, 0,
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
     "A\r\n0123456789\r\n1\r\n!\r\n0\r\nServer-Timing: db;dur=53\r\nX-Sum: 7\r\n\r\n",
     0},
};
static const expect_t chunked_exp[] = {
    {.method = "POST",
     .target = "/upload",
     .status = 200,
     .reason = "OK",
     .req_headers = "Host: h|Transfer-Encoding: chunked",
     .req_body = "Wikipedia",
     .req_trailers = "X-Trailer: t",
     .resp_body = "0123456789!",
     .resp_headers = "Transfer-Encoding: chunked|Content-Type: text/plain",
     .resp_trailers = "Server-Timing: db;dur=53|X-Sum: 7"},
};

static const step_t continue_steps[] = {
    {HTTP1_REQ, R_REQ, 0,
     "PUT /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n", 0},
    {HTTP1_RESP, R_NONE, 0, "HTTP/1.1 100 Continue\r\n\r\n", 0},
    {HTTP1_REQ, R_REQ, 0, "data", 0},
    {HTTP1_RESP, R_NONE, 0, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n", 0},
    {HTTP1_RESP, R_RESP, 0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0},
};
static const expect_t continue_exp[] = {
    {.method = "PUT",
     .target = "/up",
     .status = 200,
     .reason = "OK",
     .req_body = "data",
     .resp_headers = "Content-Length: 2",
     .resp_body = "ok"},
};

static const step_t nobody_steps[] = {
    {HTTP1_REQ, R_REQ, 0, "GET /a HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"x\"\r\n\r\n", 0},
    {HTTP1_RESP, R_RESP, 0,
     "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\nETag: \"x\"\r\n\r\n", 0},
    {HTTP1_REQ, R_REQ, 1, "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", 0},
    {HTTP1_RESP, R_RESP, 1, "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", 0},
    {HTTP1_REQ, R_REQ, 2, "GET /c HTTP/1.1\r\nHost: h\r\n\r\n", 0},
    {HTTP1_RESP, R_RESP, 2, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc", 0},
};
static const expect_t nobody_exp[] = {
    {.method = "GET", .target = "/a", .status = 304, .reason = "Not Modified"},
    {.method = "POST", .target = "/b", .status = 204, .reason = "No Content"},
    {.method = "GET", .target = "/c", .status = 200, .reason = "OK", .resp_body = "c"},
};

static const step_t untilclose_steps[] = {
    {HTTP1_REQ, R_REQ, 0, "GET / HTTP/1.0\r\n\r\n", 0},
    {HTTP1_RESP, R_RESP, 0, "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>body</html>",
     0},
    {HTTP1_RESP, R_EOF, 0, NULL, 0},
    {HTTP1_REQ, R_EOF, 0, NULL, 0},
};
static const expect_t untilclose_exp[] = {
    {.method = "GET",
     .target = "/",
     .status = 200,
     .reason = "OK",
     .resp_body = "<html>body</html>",
     .resp_eof = 1},
};

static const step_t close_steps[] = {
    {HTTP1_REQ, R_REQ, 0, "GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", 0},
    {HTTP1_RESP, R_RESP, 0, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye",
     0},
    {HTTP1_RESP, R_EOF, 0, NULL, 0},
    {HTTP1_REQ, R_EOF, 0, NULL, 0},
};
static const expect_t close_exp[] = {
    {.method = "GET", .target = "/c", .status = 200, .reason = "OK", .resp_body = "bye"},
};

static const step_t connect_steps[] = {
    {HTTP1_REQ, R_REQ, 0, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 0},
    /* Some clients send the ClientHello before the proxy's answer. */
    {HTTP1_REQ, R_NONE, 0, "\x16\x03\x01\x00\x05hello", 10},
    {HTTP1_RESP, R_RESP, 0, "HTTP/1.1 200 Connection established\r\n\r\n", 0},
    {HTTP1_RESP, R_NONE, 0, "\x16\x03\x03\x00\x02hi", 7},
    {HTTP1_REQ, R_NONE, 0, "\x17\x03\x03\x00\x01x", 6},
    {HTTP1_RESP, R_EOF, 0, NULL, 0},
};
static const expect_t connect_exp[] = {
    {.method = "CONNECT",
     .target = "example.com:443",
     .status = 200,
     .reason = "Connection established",
     .upgrade = 1},
};

static const step_t ws_steps[] = {
    {HTTP1_REQ, R_REQ, 0,
     "GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
     0},
    {HTTP1_RESP, R_RESP, 0,
     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
     0},
    {HTTP1_RESP, R_NONE, 0, "\x81\x05Hello", 7},
    {HTTP1_REQ, R_NONE, 0, "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11},
};
static const expect_t ws_exp[] = {
    {.method = "GET",
     .target = "/chat",
     .status = 101,
     .reason = "Switching Protocols",
     .upgrade = 1},
};

static const step_t declined_steps[] = {
    {HTTP1_REQ, R_REQ, 0,
     "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 0},
    /* Sent before the answer: HTTP/1 again only because the server declines. */
    {HTTP1_REQ, R_REQ, 1, "GET /next HTTP/1.1\r\nHost: h\r\n\r\n", 0},
    {HTTP1_RESP, R_RESP, 0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno", 0},
    {HTTP1_RESP, R_RESP, 1, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes", 0},
};
static const expect_t declined_exp[] = {
    {.method = "GET", .target = "/ws", .status = 200, .reason = "OK", .resp_body = "no"},
    {.method = "GET", .target = "/next", .status = 200, .reason = "OK", .resp_body = "yes"},
};

static const step_t proxyauth_steps[] = {
    {HTTP1_REQ, R_REQ, 0, "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", 0},
    {HTTP1_RESP, R_RESP, 0,
     "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n"
     "Content-Length: 6\r\n\r\ndenied",
     0},
    {HTTP1_REQ, R_REQ, 1,
     "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\nProxy-Authorization: Basic dTpw\r\n\r\n", 0},
    {HTTP1_RESP, R_RESP, 1, "HTTP/1.1 200 OK\r\n\r\n", 0},
    {HTTP1_REQ, R_NONE, 0, "\x16\x03\x01", 3},
};
static const expect_t proxyauth_exp[] = {
    {.method = "CONNECT",
     .target = "h:443",
     .status = 407,
     .reason = "Proxy Authentication Required",
     .resp_body = "denied"},
    {.method = "CONNECT",
     .target = "h:443",
     .status = 200,
     .reason = "OK",
     .upgrade = 1,
     .req_headers = "Host: h:443|Proxy-Authorization: Basic dTpw"},
};

static const step_t absolute_steps[] = {
    {HTTP1_REQ, R_REQ, 0,
     "GET http://example.com/x?y=1 HTTP/1.1\r\nHost: example.com\r\n"
     "Proxy-Connection: keep-alive\r\n\r\n",
     0},
    {HTTP1_RESP, R_RESP, 0, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 0},
};
static const expect_t absolute_exp[] = {
    {.method = "GET", .target = "http://example.com/x?y=1", .status = 404, .reason = "Not Found"},
};

static const step_t truncated_steps[] = {
    {HTTP1_REQ, R_REQ, 0, "POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n012345", 0},
    {HTTP1_REQ, R_REQ, 0, "6789", 0},
    {HTTP1_RESP, R_RESP, 0,
     "HTTP/1.1 200 OK\r\nContent-Length: 26\r\n\r\nabcdefghijklmnopqrstuvwxyz", 0},
};
static const expect_t truncated_exp[] = {
    {.method = "POST",
     .target = "/big",
     .status = 200,
     .reason = "OK",
     .req_body = "0123456789",
     .resp_body = "abcdefghij",
     .resp_total = 26},
};

static const step_t barelf_steps[] = {
    {HTTP1_REQ, R_REQ, 0, "GET /lf HTTP/1.1\nHost: x\n\n", 0},
    {HTTP1_RESP, R_RESP, 0, "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", 0},
};
static const expect_t barelf_exp[] = {
    {.method = "GET",
     .target = "/lf",
     .status = 200,
     .reason = "OK",
     .req_headers = "Host: x",
     .resp_body = "ok"},
};

static const step_t headers_steps[] = {
    {HTTP1_REQ, R_NONE, 0, "\r\n", 0},
    {HTTP1_REQ, R_REQ, 0,
     "GET / HTTP/1.1\r\nX-A: 1\r\nX-Empty:\r\nx-a: 2\r\nCookie: a=b; c=d\r\n"
     "X-Long: a fairly long value, with commas, spaces  and : colons\r\n\r\n",
     0},
    {HTTP1_RESP, R_RESP, 0,
     "HTTP/1.1 200 Fine Thanks\r\nSet-Cookie: s=1; Path=/\r\nSet-Cookie: t=2\r\n"
     "Content-Length: 0\r\n\r\n",
     0},
};
static const expect_t headers_exp[] = {
    {.method = "GET",
     .target = "/",
     .status = 200,
     .reason = "Fine Thanks",
     .req_headers = "X-A: 1|X-Empty: |x-a: 2|Cookie: a=b; c=d|"
                    "X-Long: a fairly long value, with commas, spaces  and : colons",
     .resp_headers = "Set-Cookie: s=1; Path=/|Set-Cookie: t=2|Content-Length: 0"},
};

static const step_t noresp_steps[] = {
    {HTTP1_REQ, R_REQ, 0, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n", 0},
    {HTTP1_RESP, R_RESP, 0, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1", 0},
    {HTTP1_REQ, R_REQ, 1, "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n", 0},
};
static const expect_t noresp_exp[] = {
    {.method = "GET", .target = "/1", .status = 200, .reason = "OK", .resp_body = "1"},
    {.method = "GET", .target = "/2", .no_resp = 1, .error = 1},
};

static const step_t cut_steps[] = {
    {HTTP1_REQ, R_REQ, 0, "GET /cut HTTP/1.1\r\nHost: h\r\n\r\n", 0},
    {HTTP1_RESP, R_RESP, 0, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0},
    {HTTP1_RESP, R_EOF, 0, NULL, 0},
};
static const expect_t cut_exp[] = {
    {.method = "GET",
     .target = "/cut",
     .status = 200,
     .reason = "OK",
     .resp_body = "abc",
     .error = 1},
};

static const step_t garbage_steps[] = {
    {HTTP1_REQ, R_REQ, 0, "GET /g HTTP/1.1\r\nHost: h\r\n\r\n", 0},
    {HTTP1_RESP, R_NONE, 0, "SSH-2.0-OpenSSH_9.2\r\n", 0},
};
static const expect_t garbage_exp[] = {
    {.method = "GET", .target = "/g", .no_resp = 1, .error = 1},
};

static const tcase_t cases[] = {
    CASE("keepalive", keepalive_steps, keepalive_exp, 0, 0, 0),
    CASE("pipeline", pipeline_steps, pipeline_exp, 0, 0, 0),
    CASE("chunked", chunked_steps, chunked_exp, 0, 0, 0),
    CASE("100-continue", continue_steps, continue_exp, 0, 0, 0),
    CASE("204-304", nobody_steps, nobody_exp, 0, 0, 0),
    CASE("until-close", untilclose_steps, untilclose_exp, 0, 0, 0),
    CASE("connection-close", close_steps, close_exp, 0, 0, 0),
    CASE("connect", connect_steps, connect_exp, 0, 1, 0),
    CASE("websocket", ws_steps, ws_exp, 0, 1, 0),
    CASE("upgrade-declined", declined_steps, declined_exp, 0, 0, 0),
    CASE("connect-407", proxyauth_steps, proxyauth_exp, 0, 1, 0),
    CASE("absolute-form", absolute_steps, absolute_exp, 0, 0, 0),
    CASE("max-body", truncated_steps, truncated_exp, 10, 0, 0),
    CASE("bare-lf", barelf_steps, barelf_exp, 0, 0, 0),
    CASE("headers", headers_steps, headers_exp, 0, 0, 0),
    CASE("no-response", noresp_steps, noresp_exp, 0, 0, 0),
    CASE("response-cut", cut_steps, cut_exp, 0, 1, 1),
    CASE("garbage-response", garbage_steps, garbage_exp, 0, 1, 1),
};

/* ---- cases outside the script harness ---- */

static char *big_request(size_t value_len)
{
    static const char pre[] = "GET /big HTTP/1.1\r\nHost: h\r\nX-Big: ";
    char *s = malloc(sizeof(pre) + value_len + 16);

    memcpy(s, pre, sizeof(pre) - 1);
    memset(s + sizeof(pre) - 1, 'v', value_len);
    strcpy(s + sizeof(pre) - 1 + value_len, "\r\n\r\n");
    return s;
}

static void test_big_headers(void)
{
    http1_callbacks_t cb = {.on_exchange = cb_exchange};
    run_t r;
    http1_conn_t *c;
    char *req;
    const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

    /* 200 KiB of headers: past http_parser's default 80 KiB, within ours. */
    memset(&r, 0, sizeof(r));
    c = http1_conn_new(&cb, &r, 0);
    req = big_request(200 * 1024);
    for (size_t off = 0, len = strlen(req); off < len; off += 1000)
        CHECK_EQ_INT(
            http1_conn_feed(c, HTTP1_REQ, req + off, len - off < 1000 ? len - off : 1000, 1), 0);
    CHECK_EQ_INT(http1_conn_feed(c, HTTP1_RESP, resp, strlen(resp), 2), 0);
    CHECK_EQ_INT(r.ngot, 1);
    if (r.ngot == 1) {
        CHECK_EQ_INT(r.got[0]->req.nheaders, 2);
        CHECK_EQ_INT(strlen(http_msg_header(&r.got[0]->req, "x-big")), 200 * 1024);
        CHECK_EQ_INT(r.got[0]->req.headers_size, (int64_t)strlen(req));
        CHECK(r.got[0]->error == NULL);
    }
    free(req);
    http1_conn_finish(c, NULL, 3);
    http1_conn_free(c);
    for (size_t k = 0; k < r.ngot; k++)
        http_exchange_free(r.got[k]);

    /* Past 256 KiB: the request direction gives up, the exchange says why. */
    memset(&r, 0, sizeof(r));
    c = http1_conn_new(&cb, &r, 0);
    req = big_request(300 * 1024);
    {
        int rc = 0, nerr = 0;

        for (size_t off = 0, len = strlen(req); off < len; off += 4096) {
            rc = http1_conn_feed(c, HTTP1_REQ, req + off, len - off < 4096 ? len - off : 4096, 1);
            if (rc < 0) {
                nerr++;
                CHECK_EQ_INT(rc, -EBADMSG);
            }
        }
        CHECK_EQ_INT(nerr, 1);
    }
    CHECK(http1_conn_stopped(c));
    http1_conn_finish(c, NULL, 3);
    CHECK_EQ_INT(r.ngot, 1);
    if (r.ngot == 1) {
        CHECK(r.got[0]->error && strstr(r.got[0]->error, "256 KiB"));
        CHECK_EQ_INT(r.got[0]->status, 0);
        /* past the request line: what was asked is kept */
        CHECK_EQ_STR(r.got[0]->method, "GET");
        CHECK_EQ_STR(r.got[0]->target, "/big");
    }
    free(req);
    http1_conn_free(c);
    for (size_t k = 0; k < r.ngot; k++)
        http_exchange_free(r.got[k]);
}

/* nginx answers a request whose head is too big for it (large_client_header_buffers) with a
   400 and closes before the head has all arrived; the client stops sending. The exchange is
   the request's start and that 400. */
static void test_head_cut_by_answer(void)
{
    http1_callbacks_t cb = {.on_exchange = cb_exchange};
    run_t r;
    http1_conn_t *c;
    char *req = big_request(100 * 1024);
    const char *resp = "HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"
                       "bad";

    memset(&r, 0, sizeof(r));
    c = http1_conn_new(&cb, &r, 0);
    for (size_t off = 0; off < 64 * 1024; off += 16384)
        CHECK_EQ_INT(http1_conn_feed(c, HTTP1_REQ, req + off, 16384, 1), 0);
    CHECK_EQ_INT(http1_conn_feed(c, HTTP1_RESP, resp, strlen(resp), 2), 0);
    http1_conn_eof(c, HTTP1_RESP, 3);
    http1_conn_eof(c, HTTP1_REQ, 3);
    http1_conn_finish(c, NULL, 4);
    CHECK_EQ_INT(r.ngot, 1);
    if (r.ngot == 1) {
        CHECK_EQ_STR(r.got[0]->method, "GET");
        CHECK_EQ_STR(r.got[0]->target, "/big");
        CHECK_EQ_INT(r.got[0]->status, 400);
        CHECK(r.got[0]->error != NULL);
    }
    free(req);
    http1_conn_free(c);
    for (size_t k = 0; k < r.ngot; k++)
        http_exchange_free(r.got[k]);
}

static void test_bad_request(void)
{
    http1_callbacks_t cb = {.on_exchange = cb_exchange};
    run_t r;
    http1_conn_t *c;
    const char *resp = "HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad";

    memset(&r, 0, sizeof(r));
    c = http1_conn_new(&cb, &r, 0);
    CHECK_EQ_INT(http1_conn_feed(c, HTTP1_REQ, "\x01\x02 nonsense\r\n\r\n", 15, 5), -EBADMSG);
    CHECK_EQ_INT(http1_conn_feed(c, HTTP1_REQ, "more", 4, 6), 0); /* ignored */
    CHECK(http1_conn_stopped(c));
    CHECK_EQ_INT(http1_conn_feed(c, HTTP1_RESP, resp, strlen(resp), 7), 0);
    /* The answer to the garbage completes it: delivered without waiting. */
    CHECK_EQ_INT(r.ngot, 1);
    if (r.ngot == 1) {
        CHECK(r.got[0]->method == NULL);
        CHECK(r.got[0]->error && strstr(r.got[0]->error, "invalid HTTP request"));
        CHECK_EQ_INT(r.got[0]->status, 400);
        CHECK_EQ_INT(r.got[0]->t_req_start, 5);
        CHECK_EQ_INT(r.got[0]->t_resp_end, 7);
    }
    http1_conn_finish(c, "reset", 8);
    CHECK_EQ_INT(r.ngot, 1);
    http1_conn_free(c);
    for (size_t k = 0; k < r.ngot; k++)
        http_exchange_free(r.got[k]);

    /* A request cut by the client's FIN. */
    memset(&r, 0, sizeof(r));
    c = http1_conn_new(&cb, &r, 0);
    {
        const char *req = "POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nab";

        CHECK_EQ_INT(http1_conn_feed(c, HTTP1_REQ, req, strlen(req), 1), 0);
    }
    CHECK_EQ_INT(http1_conn_eof(c, HTTP1_REQ, 2), -EBADMSG);
    http1_conn_finish(c, "connection reset by peer", 3);
    CHECK_EQ_INT(r.ngot, 1);
    if (r.ngot == 1) {
        CHECK(r.got[0]->error != NULL);
        CHECK(!r.got[0]->req.complete);
        CHECK_EQ_INT(r.got[0]->req.body_len, 2);
    }
    http1_conn_free(c);
    for (size_t k = 0; k < r.ngot; k++)
        http_exchange_free(r.got[k]);

    /* The error given to finish is the one recorded. */
    memset(&r, 0, sizeof(r));
    c = http1_conn_new(&cb, &r, 0);
    CHECK_EQ_INT(http1_conn_feed(c, HTTP1_REQ, "GET / HTTP/1.1\r\n\r\n", 18, 1), 0);
    http1_conn_finish(c, "upstream TLS handshake failed", 2);
    CHECK_EQ_INT(r.ngot, 1);
    if (r.ngot == 1)
        CHECK_EQ_STR(r.got[0]->error, "upstream TLS handshake failed");
    http1_conn_free(c);
    for (size_t k = 0; k < r.ngot; k++)
        http_exchange_free(r.got[k]);
}

static void test_free_pending(void)
{
    /* Freed with exchanges in flight and held bytes: nothing leaks (ASan). */
    http1_conn_t *c = http1_conn_new(NULL, NULL, 0);
    const char *req = "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                      "GET /after HTTP/1.1\r\n\r\n";

    CHECK(c != NULL);
    CHECK_EQ_INT(http1_conn_feed(c, HTTP1_REQ, req, strlen(req), 1), 0);
    CHECK_EQ_INT(http1_conn_feed(c, HTTP1_REQ, "GET /1 HTTP/1.1\r\n", 17, 2), 0);
    CHECK_EQ_INT(http1_conn_feed(c, HTTP1_RESP, "HTTP/1.1 200 OK\r\nContent-Le", 27, 3), 0);
    http1_conn_free(c);
    http1_conn_free(NULL);
    http_exchange_free(NULL);
}

static void test_msg_helpers(void)
{
    http_exchange_t *ex = http_exchange_new();
    char *s = NULL;

    CHECK(ex != NULL);
    CHECK_EQ_INT(ex->req.headers_size, -1);
    CHECK_EQ_INT(http_msg_add_header(&ex->req, "Host", 4, "a.example", 9), 0);
    CHECK_EQ_INT(http_msg_add_header(&ex->req, "Accept", 6, "*/*xx", 3), 0);
    CHECK_EQ_STR(http_msg_header(&ex->req, "host"), "a.example");
    CHECK_EQ_STR(http_msg_header(&ex->req, "ACCEPT"), "*/*");
    CHECK(http_msg_header(&ex->req, "Cookie") == NULL);
    for (int i = 0; i < 100; i++)
        CHECK_EQ_INT(http_msg_add_body(&ex->resp, "0123456789", 10, 256), 0);
    CHECK_EQ_INT(ex->resp.body_len, 256);
    CHECK_EQ_INT(ex->resp.body_total, 1000);
    CHECK(ex->resp.body_truncated);
    CHECK(ex->resp.body_cap <= 256);
    CHECK(memcmp(ex->resp.body + 250, "012345", 6) == 0);
    /* A header is one block: the value right after the name's NUL, so freeing the name
       frees both (http_headers_free; valgrind and ASan runs see any leak). */
    {
        http_header_t h[3];

        CHECK_EQ_INT(http_header_set(&h[0], "X-Abcdef", 5, "value:tail", 5), 0);
        CHECK_EQ_STR(h[0].name, "X-Abc");
        CHECK_EQ_STR(h[0].value, "value");
        CHECK(h[0].value == h[0].name + 6);
        CHECK_EQ_INT(http_header_set(&h[1], "", 0, "", 0), 0);
        CHECK_EQ_STR(h[1].name, "");
        CHECK_EQ_STR(h[1].value, "");
        CHECK_EQ_INT(http_header_set(&h[2], "N", 1, "a\0b", 3), 0);
        CHECK(memcmp(h[2].value, "a\0b", 4) == 0);
        http_header_t *arr = malloc(sizeof(h));
        CHECK(arr != NULL);
        memcpy(arr, h, sizeof(h));
        http_headers_free(arr, 3);
    }
    CHECK_EQ_STR(ex->req.headers[1].name, "Accept");
    CHECK(ex->req.headers[1].value == ex->req.headers[1].name + 7);
    CHECK_EQ_INT(http_strset(&s, "abcdef", 3), 0);
    CHECK_EQ_STR(s, "abc");
    CHECK_EQ_INT(http_strset(&s, "", 0), 0);
    CHECK_EQ_STR(s, "");
    free(s);
    http_exchange_free(ex);
}

int main(void)
{
    for (size_t i = 0; i < N(cases); i++)
        for (int mode = 0; mode < MODE_COUNT; mode++)
            check_case(&cases[i], mode);
    test_big_headers();
    test_head_cut_by_answer();
    test_bad_request();
    test_free_pending();
    test_msg_helpers();
    return check_done();
}

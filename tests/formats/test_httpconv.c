/* SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "httpconv.h"
#include "httpmsg.h"

/* The conversation decoder's choice of protocol when the server speaks first. */

typedef struct got {
    http_exchange_t *ex[4];
    int n;
} got_t;

static void on_exchange(void *opaque, http_exchange_t *ex)
{
    got_t *g = opaque;

    if (g->n < 4)
        g->ex[g->n++] = ex;
    else
        http_exchange_free(ex);
}

/* Frames by hand: a 9-byte header, then the payload. */
static size_t frame(uint8_t *out, int type, int flags, int stream, const void *p, size_t len)
{
    out[0] = (uint8_t)(len >> 16);
    out[1] = (uint8_t)(len >> 8);
    out[2] = (uint8_t)len;
    out[3] = (uint8_t)type;
    out[4] = (uint8_t)flags;
    out[5] = (uint8_t)(stream >> 24);
    out[6] = (uint8_t)(stream >> 16);
    out[7] = (uint8_t)(stream >> 8);
    out[8] = (uint8_t)stream;
    memcpy(out + 9, p, len);
    return 9 + len;
}

/* An HTTP/2 server may send its SETTINGS as soon as it accepts (gRPC's does), before the
   client's preface arrives: the client's first bytes still decide. */
static void test_h2c_server_first(void)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    /* HPACK: :method GET (2), :path / (4), :scheme http (6), :authority "x" (1, literal) */
    static const uint8_t req[] = {0x82, 0x84, 0x86, 0x41, 0x01, 'x'};
    static const uint8_t resp[] = {0x88}; /* :status 200 (8) */
    httpconv_callbacks_t cb = {NULL, on_exchange, NULL};
    got_t g = {0};
    httpconv_t *c = httpconv_new(&cb, &g, NULL, 0);
    uint8_t buf[256];
    size_t n;

    CHECK(c != NULL);
    if (!c)
        return;
    n = frame(buf, 4, 0, 0, "", 0); /* the server's SETTINGS, first */
    CHECK_EQ_INT(httpconv_feed(c, HTTPCONV_S2C, buf, n, 1), 0);
    CHECK_EQ_INT(httpconv_kind(c), HTTPCONV_UNKNOWN);
    memcpy(buf, preface, 24);
    n = 24 + frame(buf + 24, 4, 0, 0, "", 0);
    n += frame(buf + n, 1, 0x05, 1, req, sizeof(req)); /* HEADERS, END_STREAM|END_HEADERS */
    CHECK_EQ_INT(httpconv_feed(c, HTTPCONV_C2S, buf, n, 2), 0);
    CHECK_EQ_INT(httpconv_kind(c), HTTPCONV_HTTP2);
    n = frame(buf, 4, 0x01, 0, "", 0); /* SETTINGS ACK */
    n += frame(buf + n, 1, 0x05, 1, resp, sizeof(resp));
    CHECK_EQ_INT(httpconv_feed(c, HTTPCONV_S2C, buf, n, 3), 0);
    httpconv_finish(c, NULL, 4);
    CHECK_EQ_INT(g.n, 1);
    if (g.n == 1) {
        CHECK_EQ_STR(g.ex[0]->method, "GET");
        CHECK_EQ_INT(g.ex[0]->status, 200);
        CHECK_EQ_INT(g.ex[0]->resp_major, 2);
    }
    for (int i = 0; i < g.n; i++)
        http_exchange_free(g.ex[i]);
    httpconv_free(c);
}

/* Names each request as the recorder does (its HAR index in ex->user), once. */
static int announced;
static void on_request_head(void *opaque, http_exchange_t *ex)
{
    (void)opaque;
    CHECK(ex->announced);
    CHECK(ex->user == NULL);
    ex->user = (void *)(uintptr_t)++announced;
    ex->user_frame = 40 + announced;
}

/* Upgrade: h2c. Stream 1 of HTTP/2 carries the answer to the HTTP/1.1 request: it is the
   same request, under the name and frame the consumer gave it, not announced again (found
   by fuzz_httpconv: the recorder gave it a second HAR index, and the first led nowhere). */
static void test_h2c_upgrade(void)
{
    static const char req[] = "GET /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, "
                              "HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: "
                              "AAMAAABkAAQAAP__\r\n\r\n";
    static const char resp101[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: "
                                  "Upgrade\r\nUpgrade: h2c\r\n\r\n";
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    static const uint8_t resp[] = {0x88};
    httpconv_callbacks_t cb = {on_request_head, on_exchange, NULL};
    got_t g = {0};
    httpconv_t *c = httpconv_new(&cb, &g, NULL, 0);
    uint8_t buf[256];
    size_t n;

    CHECK(c != NULL);
    if (!c)
        return;
    announced = 0;
    CHECK_EQ_INT(httpconv_feed(c, HTTPCONV_C2S, req, strlen(req), 1), 0);
    CHECK_EQ_INT(announced, 1);
    memcpy(buf, resp101, strlen(resp101));
    n = strlen(resp101) + frame(buf + strlen(resp101), 4, 0, 0, "", 0);
    n += frame(buf + n, 1, 0x04, 1, resp, sizeof(resp)); /* HEADERS :status 200 */
    n += frame(buf + n, 0, 0x01, 1, "ok", 2);            /* DATA, END_STREAM */
    CHECK_EQ_INT(httpconv_feed(c, HTTPCONV_S2C, buf, n, 2), 0);
    CHECK_EQ_INT(httpconv_kind(c), HTTPCONV_HTTP2);
    memcpy(buf, preface, 24);
    n = 24 + frame(buf + 24, 4, 0, 0, "", 0);
    CHECK_EQ_INT(httpconv_feed(c, HTTPCONV_C2S, buf, n, 3), 0);
    httpconv_finish(c, NULL, 4);
    CHECK_EQ_INT(announced, 1);
    CHECK_EQ_INT(g.n, 1);
    if (g.n == 1) {
        CHECK_EQ_STR(g.ex[0]->method, "GET");
        CHECK_EQ_STR(g.ex[0]->target, "/up");
        CHECK_EQ_INT(g.ex[0]->status, 200);
        CHECK_EQ_INT(g.ex[0]->resp_major, 2);
        CHECK_EQ_INT(g.ex[0]->stream_id, 1);
        CHECK(g.ex[0]->user == (void *)(uintptr_t)1);
        CHECK_EQ_INT(g.ex[0]->user_frame, 41);
    }
    for (int i = 0; i < g.n; i++)
        http_exchange_free(g.ex[i]);
    httpconv_free(c);
}

/* A head cut short past its request line is an exchange the consumers record; a whole one
   is announced instead, and bytes with no request line are not one. */
static void test_head_cut(void)
{
    static const struct {
        const char *bytes;
        int cut;
    } t[] = {
        {"GET /x HTTP/1.1\r\nHost: a\r\nX-Long: aaaa", 1},      /* the client's FIN, here */
        {"POST /y HTTP/1.1\r\nHost: a\r\nNo colon\r\n\r\n", 1}, /* a parse error */
        {"GET /x HTTP/1.1\r\nHost: a\r\n\r\n", 0},
        {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 0},
    };

    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        httpconv_callbacks_t cb = {on_request_head, on_exchange, NULL};
        got_t g = {0};
        httpconv_t *c = httpconv_new(&cb, &g, NULL, 0);
        int cut = 0;

        CHECK(c != NULL);
        if (!c)
            return;
        httpconv_feed(c, HTTPCONV_C2S, t[i].bytes, strlen(t[i].bytes), 1);
        httpconv_eof(c, HTTPCONV_C2S, 2);
        httpconv_finish(c, "connection reset", 3);
        for (int k = 0; k < g.n; k++) {
            cut += http_exchange_head_cut(g.ex[k]);
            http_exchange_free(g.ex[k]);
        }
        CHECK_EQ_INT(cut, t[i].cut);
        httpconv_free(c);
    }
}

/* No request in it: what the decoder hands over has no method (the consumers drop it). */
static void no_request(got_t *g)
{
    for (int i = 0; i < g->n; i++) {
        CHECK(g->ex[i]->method == NULL || !g->ex[i]->method[0]);
        http_exchange_free(g->ex[i]);
    }
    g->n = 0;
}

/* A server that speaks first and a client that is no HTTP (SMTP): HTTP/1 decides, and gives
   up, as it did when the server's bytes decided. */
static void test_smtp(void)
{
    static const char banner[] = "220 mail.test ESMTP\r\n", helo[] = "EHLO client.test\r\n";
    httpconv_callbacks_t cb = {NULL, on_exchange, NULL};
    got_t g = {0};
    httpconv_t *c = httpconv_new(&cb, &g, NULL, 0);

    CHECK(c != NULL);
    if (!c)
        return;
    CHECK_EQ_INT(httpconv_feed(c, HTTPCONV_S2C, banner, strlen(banner), 1), 0);
    CHECK_EQ_INT(httpconv_feed(c, HTTPCONV_C2S, helo, strlen(helo), 2), 0);
    CHECK_EQ_INT(httpconv_kind(c), HTTPCONV_HTTP1);
    httpconv_finish(c, NULL, 3);
    no_request(&g);
    httpconv_free(c);

    /* only the server spoke */
    memset(&g, 0, sizeof(g));
    c = httpconv_new(&cb, &g, NULL, 0);
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK_EQ_INT(httpconv_feed(c, HTTPCONV_S2C, banner, strlen(banner), 1), 0);
    httpconv_finish(c, NULL, 2);
    CHECK_EQ_INT(httpconv_kind(c), HTTPCONV_HTTP1);
    no_request(&g);
    httpconv_free(c);
}

/* The one test of "switched to WebSocket", which the recorder (here) and mitmreplay's
   loader and server all use: a token of Upgrade, any case, not a substring. */
static void test_websocket_token(void)
{
    http_exchange_t *ex = http_exchange_new();

    CHECK(http_header_has_token("websocket", "websocket"));
    CHECK(http_header_has_token("h2c, WebSocket", "websocket"));
    CHECK(http_header_has_token("websocket;q=1", "websocket"));
    CHECK(!http_header_has_token("websockets", "websocket"));
    CHECK(!http_header_has_token("x-websocket", "websocket"));
    CHECK(!http_header_has_token(NULL, "websocket"));
    CHECK(ex != NULL);
    if (!ex)
        return;
    ex->status = 101;
    CHECK(!http_exchange_websocket(ex)); /* no Upgrade */
    CHECK_EQ_INT(http_msg_add_header(&ex->resp, "upgrade", 7, "WebSocket", 9), 0);
    CHECK(http_exchange_websocket(ex));
    ex->status = 200;
    CHECK(!http_exchange_websocket(ex));
    http_exchange_free(ex);
}

int main(void)
{
    test_websocket_token();
    test_h2c_server_first();
    test_h2c_upgrade();
    test_head_cut();
    test_smtp();
    return check_done();
}

/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer driver for the passive HTTP/2 decoder (formats/http2*.c).
 *
 * Input: one flags byte, then records. Flags: bit 0, the connection is an h2c
 * upgrade of a fixed HTTP/1.1 request (the one tests/formats/test_http2.c
 * uses); bit 1, bodies keep at most 100 bytes; bit 2, the client preface is
 * fed first (so mutations need not keep it); bit 3, finish with an error
 * text; bit 4, bodies past 40 bytes go to the spill file (formats/spill.h),
 * and the upgrade request of bit 0 has a body of 40,000 bytes. A record is a byte with the
 * direction in bit 7 (1: server to client) and a length in bits 0-6 (127: a 16-bit big-endian
 * length follows), then that many bytes (fewer at the end of the input). Seeds:
 * fixtures/fuzz/http2/.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Iformats
 *        formats/http2.c formats/http2_frame.c formats/http2_stream.c
 *        formats/websocket.c formats/httpmsg.c tests/fuzz/fuzz_http2.c -lnghttp2 -lz
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "http2.h"
#include "spill.h"

typedef struct state {
    size_t max_body;
    uint64_t n;
} state_t;

/* Reads everything an exchange holds, so ASan sees any bad pointer. */
static void check_exchange(const state_t *st, http_exchange_t *ex)
{
    const http_msg_t *m[2] = {&ex->req, &ex->resp};
    size_t sum = 0;

    for (int i = 0; i < 2; i++) {
        for (size_t j = 0; j < m[i]->nheaders; j++)
            sum += strlen(m[i]->headers[j].name) + strlen(m[i]->headers[j].value);
        for (size_t j = 0; j < m[i]->ntrailers; j++)
            sum += strlen(m[i]->trailers[j].name) + strlen(m[i]->trailers[j].value);
        size_t kept = http_msg_kept(m[i]), len;
        const uint8_t *body;
        uint8_t *owned;

        if (kept > st->max_body || m[i]->body_total < kept || (m[i]->body_len && !m[i]->body) ||
            (m[i]->spill && m[i]->body_len > HTTP_SPILL_TAIL))
            abort();
        if (http_msg_body(m[i], &body, &len, &owned) < 0 || len != kept)
            abort();
        for (size_t j = 0; j < len; j++)
            sum += body[j];
        free(owned);
    }
    for (size_t j = 0; j < ex->nws; j++) {
        if (!ex->ws[j].data || ex->ws[j].data[ex->ws[j].len] != 0)
            abort();
        sum += ex->ws[j].len;
    }
    if (ex->method)
        sum += strlen(ex->method);
    if (ex->target)
        sum += strlen(ex->target);
    if (ex->error)
        sum += strlen(ex->error);
    if (!ex->reason || ex->stream_id == 0)
        abort();
    (void)sum;
}

static void on_exchange(void *opaque, http_exchange_t *ex)
{
    state_t *st = opaque;

    check_exchange(st, ex);
    st->n++;
    http_exchange_free(ex);
}

static void on_error(void *opaque, const char *message)
{
    (void)opaque;
    if (!message || !message[0])
        abort();
}

static http_exchange_t *upgrade_request(int with_body)
{
    static uint8_t body[40000];
    static const char settings[] = "AAUAAIAAAAEAACAA"; /* MAX_FRAME_SIZE 32768, table 8192 */
    http_exchange_t *r = http_exchange_new();

    if (!r)
        return NULL;
    r->seq = 7;
    r->req_major = 1;
    r->req_minor = 1;
    r->t_req_start = r->t_req_end = 500;
    if (http_strset(&r->method, "GET", 3) < 0 || http_strset(&r->target, "/", 1) < 0 ||
        http_msg_add_header(&r->req, "Host", 4, "example.com", 11) < 0 ||
        http_msg_add_header(&r->req, "Connection", 10, "Upgrade, HTTP2-Settings", 23) < 0 ||
        http_msg_add_header(&r->req, "Upgrade", 7, "h2c", 3) < 0 ||
        http_msg_add_header(&r->req, "HTTP2-Settings", 14, settings, sizeof(settings) - 1) < 0) {
        http_exchange_free(r);
        return NULL;
    }
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (uint8_t)i;
    if (with_body && http_msg_add_body(&r->req, body, sizeof(body), 16u << 20) < 0) {
        http_exchange_free(r);
        return NULL;
    }
    r->req.complete = 1;
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const http2_callbacks_t cb = {NULL, NULL, on_exchange, on_error};
    state_t st = {0};
    http_exchange_t *req = NULL;
    http2_conn_t *c;
    uint8_t flags;
    const uint8_t *p;
    size_t len;
    int server;
    uint64_t ts = 1000;

    if (size < 1)
        return 0;
    flags = data[0];
    data++;
    size--;
    st.max_body = flags & 2 ? 100 : 16 * 1024 * 1024;
    if ((flags & 16) && spill_enable(getenv("TMPDIR"), 40, NULL, NULL) < 0)
        return 0;
    if (flags & 1) {
        req = upgrade_request(flags & 16);
        c = req ? http2_conn_new_upgrade(&cb, &st, st.max_body, req) : NULL;
    } else {
        c = http2_conn_new(&cb, &st, st.max_body);
    }
    if (!c) {
        http_exchange_free(req);
        spill_disable();
        return 0;
    }
    if (flags & 4)
        http2_conn_feed(c, HTTP2_REQ, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24, ts);
    while (fuzz_record(&data, &size, &server, &p, &len))
        http2_conn_feed(c, server ? HTTP2_RESP : HTTP2_REQ, p, len, ts++);
    http2_conn_finish(c, flags & 8 ? "fuzz: connection reset" : NULL, ts);
    if (!http2_conn_stopped(c))
        abort();
    http2_conn_free(c);
    http_exchange_free(req);
    if (spill_live() != 0)
        abort();
    spill_disable();
    return 0;
}

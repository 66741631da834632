/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer driver for the WebSocket decoder (formats/websocket.c).
 *
 * Input: one flags byte, then records. Flags: bits 0-2 select the negotiated
 * Sec-WebSocket-Extensions (the table below, the same as in
 * tests/formats/test_websocket.c); bit 3, small limits (100-byte messages,
 * 64 bytes kept in the exchange); bit 4, no exchange (callbacks only); bit
 * 5, the first record is the Sec-WebSocket-Extensions value instead. A
 * record is a byte with the direction in bit 7 (1: server) and a length in
 * bits 0-6 (127: a 16-bit big-endian length follows), then that many bytes.
 * Seeds: fixtures/fuzz/websocket/.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Iformats
 *        formats/websocket.c formats/httpmsg.c tests/fuzz/fuzz_websocket.c -lz
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "websocket.h"

static const char *const EXT[8] = {
    NULL,
    "permessage-deflate",
    "permessage-deflate; client_no_context_takeover; server_no_context_takeover",
    "permessage-deflate; server_no_context_takeover",
    "permessage-deflate; client_max_window_bits=10; server_max_window_bits=12",
    "x-webkit-deflate-frame",
    "permessage-deflate; client_no_context_takeover",
    "permessage-deflate; client_no_context_takeover; server_no_context_takeover; "
    "client_max_window_bits=10; server_max_window_bits=\"12\"",
};

typedef struct state {
    size_t max_message;
    int errors[2];
} state_t;

static void on_message(void *opaque, int dir, int opcode, const uint8_t *data, size_t len,
                       uint64_t total, uint64_t ts)
{
    state_t *st = opaque;
    unsigned sum = 0;

    (void)ts;
    if ((dir != WEBSOCKET_CLIENT && dir != WEBSOCKET_SERVER) || len > st->max_message ||
        total < len || data[len] != 0)
        abort();
    if (opcode != 1 && opcode != 2 && opcode != 8 && opcode != 9 && opcode != 10)
        abort();
    for (size_t i = 0; i < len; i++)
        sum += data[i];
    (void)sum;
}

static void on_error(void *opaque, int dir, const char *message)
{
    state_t *st = opaque;

    if (++st->errors[dir] > 1 || !message[0])
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const websocket_callbacks_t cb = {on_message, on_error};
    state_t st = {0};
    http_exchange_t *ex = NULL;
    websocket_conn_t *c;
    const char *ext;
    char ext_buf[256];
    const uint8_t *p;
    size_t len;
    uint8_t flags;
    uint64_t ts = 1;
    int server;

    if (size < 1)
        return 0;
    flags = data[0];
    data++;
    size--;
    st.max_message = flags & 8 ? 100 : 16 * 1024 * 1024;
    if (!(flags & 16)) {
        ex = http_exchange_new();
        if (!ex)
            return 0;
    }
    ext = EXT[flags & 7];
    if (flags & 32) {
        if (!fuzz_record(&data, &size, &server, &p, &len))
            len = 0;
        if (len >= sizeof(ext_buf))
            len = sizeof(ext_buf) - 1;
        if (len)
            memcpy(ext_buf, p, len);
        ext_buf[len] = '\0';
        ext = ext_buf;
    }
    c = websocket_conn_new(ext, ex, &cb, &st, flags & 8 ? 100 : 0, flags & 8 ? 64 : 0);
    if (!c) {
        http_exchange_free(ex);
        return 0;
    }
    while (fuzz_record(&data, &size, &server, &p, &len)) {
        int dir = server ? WEBSOCKET_SERVER : WEBSOCKET_CLIENT;
        int r = websocket_conn_feed(c, dir, p, len, ts++);

        if (r < 0 && (r != -EBADMSG || !websocket_conn_failed(c, dir)))
            abort();
    }
    if (ex) {
        size_t kept = 0;

        for (size_t i = 0; i < ex->nws; i++) {
            if (ex->ws[i].data[ex->ws[i].len] != 0)
                abort();
            kept += ex->ws[i].len;
        }
        if (flags & 8 && kept > 64)
            abort();
    }
    websocket_conn_free(c);
    http_exchange_free(ex);
    return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer driver for the conversation decoder that the recorder and read mode share
 * (formats/httpconv.c): it picks HTTP/1.x or HTTP/2 from the ALPN or the client's first
 * bytes, holds a server's early bytes until then, and follows Upgrade to h2c and to
 * WebSocket. fuzz_http1 and fuzz_http2 reach each decoder alone; this one reaches the
 * switching between them.
 *
 * Input: one flags byte, then records. Flags: bits 0-1, the ALPN (none, "h2", "http/1.1",
 * "h2c"); bit 2, bodies keep at most 100 bytes; bit 3, both directions end (httpconv_eof)
 * before the finish, bit 5 says which first (set: the server's); bit 4, finish with an error
 * text. A record is a byte with the direction in bit 7 (1: server to client) and a length in
 * bits 0-6 (127: a 16-bit big-endian length follows), then that many bytes (fewer at the
 * end of the input): the record format of fuzz_http1 and fuzz_http2, so their seeds serve
 * here too. Seeds: fixtures/fuzz/httpconv/.
 *
 * Contract checked: feed and eof return 0 (or -ENOMEM); every request announced
 * (on_request_head, where the consumer names it in ex->user, as the recorder gives it its
 * HAR index) is delivered exactly once by the time the connection is finished, an h2c
 * upgrade's stream 1 under the name of the HTTP/1.1 request it continues; an exchange is
 * announced at most once; each delivered exchange has readable strings, a status in
 * 0-999 and bodies within max_body, each WebSocket message readable; an error is one
 * non-empty line; the kind, once decided, is never undecided again.
 *
 * Build (tests/slow/fuzz.sh does it): clang -g -O1 -fsanitize=fuzzer,address,undefined
 *   -Iformats tests/fuzz/fuzz_httpconv.c (every .c of formats/) $(pkg-config --cflags
 *   --libs ...) -lhttp_parser
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "httpconv.h"

#define MAXLIVE 512

typedef struct state {
    size_t max_body;
    uintptr_t live[MAXLIVE]; /* the names (ex->user) announced, not yet delivered */
    size_t nlive;
    int overflow; /* more than MAXLIVE announced at once: not tracked */
    uintptr_t next_name;
    unsigned sum;
} state_t;

static void on_request_head(void *opaque, http_exchange_t *ex)
{
    state_t *st = opaque;

    if (!ex || ex->user || !ex->announced)
        abort(); /* announced twice, or not marked */
    fuzz_sum_str(&st->sum, ex->method);
    fuzz_sum_str(&st->sum, ex->target);
    ex->user = (void *)++st->next_name;
    if (st->nlive < MAXLIVE)
        st->live[st->nlive++] = (uintptr_t)ex->user;
    else
        st->overflow = 1;
}

static void on_exchange(void *opaque, http_exchange_t *ex)
{
    state_t *st = opaque;

    if (!ex)
        abort();
    if (ex->user) {
        size_t i;

        for (i = 0; i < st->nlive && st->live[i] != (uintptr_t)ex->user; i++)
            ;
        if (i < st->nlive)
            st->live[i] = st->live[--st->nlive];
        else if (!st->overflow)
            abort(); /* a name delivered twice */
    }
    fuzz_check_exchange(ex, st->max_body, &st->sum);
    http_exchange_free(ex);
}

static void on_error(void *opaque, const char *message)
{
    state_t *st = opaque;

    if (!message || !message[0] || strchr(message, '\n'))
        abort();
    fuzz_sum_str(&st->sum, message);
}

static void check_kind(const httpconv_t *c, enum httpconv_kind *last)
{
    enum httpconv_kind k = httpconv_kind(c);

    if (k < HTTPCONV_UNKNOWN || k > HTTPCONV_NOT_HTTP)
        abort();
    if (*last != HTTPCONV_UNKNOWN && k == HTTPCONV_UNKNOWN)
        abort();
    *last = k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const httpconv_callbacks_t cb = {on_request_head, on_exchange, on_error};
    static const char *const ALPN[4] = {NULL, "h2", "http/1.1", "h2c"};
    enum httpconv_kind kind = HTTPCONV_UNKNOWN;
    state_t st;
    httpconv_t *c;
    uint8_t flags;
    const uint8_t *p;
    size_t len;
    uint64_t ts = 1700000000000000ull;
    int rc, server;

    if (size < 1)
        return 0;
    flags = data[0];
    data++;
    size--;
    memset(&st, 0, sizeof(st));
    st.max_body = flags & 4 ? 100 : 16 * 1024 * 1024;
    if (!(c = httpconv_new(&cb, &st, ALPN[flags & 3], flags & 4 ? 100 : 0)))
        return 0;
    while (fuzz_record(&data, &size, &server, &p, &len)) {
        rc = httpconv_feed(c, server ? HTTPCONV_S2C : HTTPCONV_C2S, p, len, ts);
        if (rc != 0 && rc != -ENOMEM)
            abort();
        check_kind(c, &kind);
        ts += 1000;
    }
    if (flags & 8) {
        int first = flags & 32 ? HTTPCONV_S2C : HTTPCONV_C2S;

        rc = httpconv_eof(c, first, ts);
        if (rc != 0 && rc != -ENOMEM)
            abort();
        rc = httpconv_eof(c, !first, ts + 1);
        if (rc != 0 && rc != -ENOMEM)
            abort();
        check_kind(c, &kind);
    }
    httpconv_finish(c, flags & 16 ? "connection reset by peer" : NULL, ts + 2);
    check_kind(c, &kind);
    if (st.nlive && !st.overflow)
        abort(); /* an announced request never delivered */
    httpconv_free(c);
    return st.sum == 0xdeadbeef; /* keeps the sums from being optimized away */
}

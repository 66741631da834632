/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer driver for the HTTP/1 conversation decoder (formats/http1.c).
 *
 * Input: one flags byte, then records. Flags: bit 0, bodies keep at most 100
 * bytes; bit 1, both directions end (http1_conn_eof) before the finish; bit 2,
 * finish with an error text; bit 3, the server direction ends first; bit 4,
 * bodies past 40 bytes go to the spill file (formats/spill.h). A record
 * is a byte with the direction in bit 7 (1: server to client) and a length in
 * bits 0-6 (127: a 16-bit big-endian length follows), then that many bytes
 * (fewer at the end of the input). Seeds: fixtures/fuzz/http1/.
 *
 * Contract checked: every exchange begun is delivered, in request order (seq
 * 0, 1, ...; ASan catches a double delivery as a double free); on_upgrade_data
 * only after on_upgrade; bodies keep at most max_body bytes and
 * body_total >= what is kept, a spilled body reads back whole; every string is
 * readable; feed returns 0 or -EBADMSG; once all is freed, the spill file holds
 * nothing.
 *
 * Build (tests/slow/fuzz.sh does it): clang -g -O1
 *   -fsanitize=fuzzer,address,undefined -Iformats tests/fuzz/fuzz_http1.c
 *   (every .c of formats/) $(pkg-config --cflags --libs ...) -lhttp_parser
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "http1.h"
#include "spill.h"

#define MAXLIVE 512

typedef struct state {
    size_t max_body;
    uint64_t begun, delivered, next_seq;
    http_exchange_t *live[MAXLIVE]; /* begun, not yet delivered */
    size_t nlive;
    int upgraded;
    size_t upgrade_bytes;
    unsigned sum;
} state_t;

static int is_live(const state_t *st, const http_exchange_t *ex)
{
    for (size_t i = 0; i < st->nlive; i++)
        if (st->live[i] == ex)
            return 1;
    return 0;
}

static void on_request_begin(void *opaque, http_exchange_t *ex)
{
    state_t *st = opaque;

    if (!ex || is_live(st, ex))
        abort();
    if (st->nlive < MAXLIVE)
        st->live[st->nlive++] = ex;
    st->begun++;
}

static void on_request_head(void *opaque, http_exchange_t *ex)
{
    state_t *st = opaque;

    if (!ex)
        abort();
    fuzz_sum_str(&st->sum, ex->method);
    fuzz_sum_str(&st->sum, ex->target);
    fuzz_check_msg(&ex->req, st->max_body, &st->sum);
}

static void on_exchange(void *opaque, http_exchange_t *ex)
{
    state_t *st = opaque;
    size_t i;

    if (ex->seq != st->next_seq++)
        abort(); /* exchanges complete in request order */
    for (i = 0; i < st->nlive; i++)
        if (st->live[i] == ex)
            break;
    /* An exchange may also be delivered without on_request_begin (a record of garbage
       the decoder keeps so that a response to it has a home). */
    if (i < st->nlive) {
        memmove(&st->live[i], &st->live[i + 1], (st->nlive - i - 1) * sizeof(st->live[0]));
        st->nlive--;
    }
    fuzz_check_exchange(ex, st->max_body, &st->sum);
    st->delivered++;
    http_exchange_free(ex);
}

/* The exchange may be one that never had on_request_begin (the decoder's record of
   request bytes it could not parse, answered by a 101). */
static void on_upgrade(void *opaque, http_exchange_t *ex)
{
    state_t *st = opaque;

    if (!ex)
        abort();
    fuzz_sum_str(&st->sum, ex->method);
    st->upgraded++;
}

static void on_upgrade_data(void *opaque, int dir, const uint8_t *data, size_t len, uint64_t ts)
{
    state_t *st = opaque;

    if ((dir != HTTP1_REQ && dir != HTTP1_RESP) || !st->upgraded || (len && !data))
        abort();
    for (size_t i = 0; i < len; i++)
        st->sum += data[i];
    st->upgrade_bytes += len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const http1_callbacks_t cb = {on_request_begin, on_request_head, on_exchange, on_upgrade,
                                         on_upgrade_data};
    state_t st;
    http1_conn_t *c;
    uint8_t flags;
    const uint8_t *p;
    size_t len;
    int server;
    uint64_t ts = 1700000000000000ull;

    if (size < 1)
        return 0;
    flags = data[0];
    data++;
    size--;
    memset(&st, 0, sizeof(st));
    st.max_body = flags & 1 ? 100 : 16 * 1024 * 1024;
    if ((flags & 16) && spill_enable(getenv("TMPDIR"), 40, NULL, NULL) < 0)
        return 0;
    c = http1_conn_new(&cb, &st, st.max_body);
    if (!c) {
        spill_disable();
        return 0;
    }
    while (fuzz_record(&data, &size, &server, &p, &len)) {
        int rc = http1_conn_feed(c, server ? HTTP1_RESP : HTTP1_REQ, p, len, ts);

        if (rc != 0 && rc != -EBADMSG)
            abort();
        ts += 1000;
    }
    if (flags & 2) {
        int first = flags & 8 ? HTTP1_RESP : HTTP1_REQ;
        int rc = http1_conn_eof(c, first, ts);
        if (rc != 0 && rc != -EBADMSG)
            abort();
        rc = http1_conn_eof(c, first == HTTP1_REQ ? HTTP1_RESP : HTTP1_REQ, ts + 1);
        if (rc != 0 && rc != -EBADMSG)
            abort();
    }
    (void)http1_conn_stopped(c);
    http1_conn_finish(c, flags & 4 ? "fuzz: connection reset" : NULL, ts + 2);
    /* Every exchange begun has been delivered. */
    if (st.delivered < st.begun || st.nlive != 0)
        abort();
    http1_conn_free(c);
    if (spill_live() != 0)
        abort();
    spill_disable();
    return 0;
}

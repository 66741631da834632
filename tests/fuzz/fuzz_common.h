/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_FUZZ_COMMON_H
#define MITMREC_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpmsg.h"

/* What the fuzz drivers share: the record format of those that feed a conversation, and the
   checks of a decoded HTTP message. */

/*
 * The record format of the fuzz drivers that feed a conversation (fuzz_http1, fuzz_http2,
 * fuzz_httpconv, fuzz_websocket), so their seeds serve one another: a byte with the
 * direction in bit 7 (1: server to client) and a length in bits 0-6 (127: a 16-bit big-endian
 * length follows), then that many bytes (fewer at the end of the input).
 *
 * Reads the record at *data (*size bytes left) and moves past it: *server, *p and *len say
 * what it holds. Returns 0 at the end of the input (or in a cut length).
 */
static inline int fuzz_record(const uint8_t **data, size_t *size, int *server, const uint8_t **p,
                              size_t *len)
{
    size_t hdr = 1;

    if (*size == 0)
        return 0;
    *server = ((*data)[0] & 0x80) != 0;
    *len = (*data)[0] & 0x7f;
    if (*len == 127) {
        if (*size < 3)
            return 0;
        *len = (size_t)(*data)[1] << 8 | (*data)[2];
        hdr = 3;
    }
    *data += hdr;
    *size -= hdr;
    if (*len > *size)
        *len = *size;
    *p = *data;
    *data += *len;
    *size -= *len;
    return 1;
}

static inline void fuzz_sum_str(unsigned *sum, const char *s)
{
    if (s)
        *sum += (unsigned)strlen(s);
}

/*
 * Aborts unless m is whole: every header and trailer has a name and a value, the body
 * keeps at most max_body bytes, body_total counts at least those and more exactly when
 * body_truncated says so, a spilled body keeps only its tail in memory, and the body reads
 * back at its kept length. Sums what it reads into *sum (so that all of it is read).
 */
static inline void fuzz_check_msg(const http_msg_t *m, size_t max_body, unsigned *sum)
{
    size_t kept = http_msg_kept(m), len;
    const uint8_t *body;
    uint8_t *owned;

    for (size_t j = 0; j < m->nheaders; j++) {
        if (!m->headers[j].name || !m->headers[j].value)
            abort();
        fuzz_sum_str(sum, m->headers[j].name);
        fuzz_sum_str(sum, m->headers[j].value);
    }
    for (size_t j = 0; j < m->ntrailers; j++) {
        if (!m->trailers[j].name || !m->trailers[j].value)
            abort();
        fuzz_sum_str(sum, m->trailers[j].name);
        fuzz_sum_str(sum, m->trailers[j].value);
    }
    if (kept > max_body || m->body_total < kept || (m->body_len && !m->body) ||
        (m->body_truncated && m->body_total <= kept) ||
        (!m->body_truncated && m->body_total != kept) ||
        (m->spill && m->body_len > HTTP_SPILL_TAIL))
        abort();
    if (http_msg_body(m, &body, &len, &owned) < 0 || len != kept)
        abort();
    for (size_t j = 0; j < len; j++)
        *sum += body[j];
    free(owned);
}

/* Aborts unless a delivered exchange is whole: its strings readable, both messages whole
   (fuzz_check_msg), a status of 0-999, each WebSocket message readable. */
static inline void fuzz_check_exchange(const http_exchange_t *ex, size_t max_body, unsigned *sum)
{
    fuzz_sum_str(sum, ex->method);
    fuzz_sum_str(sum, ex->target);
    fuzz_sum_str(sum, ex->reason);
    fuzz_sum_str(sum, ex->error);
    fuzz_check_msg(&ex->req, max_body, sum);
    fuzz_check_msg(&ex->resp, max_body, sum);
    if (ex->status < 0 || ex->status > 999)
        abort();
    for (size_t i = 0; i < ex->nws; i++) {
        const http_ws_message_t *w = &ex->ws[i];

        if (w->len && !w->data)
            abort();
        for (size_t j = 0; j < w->len; j++)
            *sum += w->data[j];
    }
}

#endif

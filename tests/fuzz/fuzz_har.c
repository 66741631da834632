/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer driver for the HAR writer (formats/har.c, with formats/content.c
 * undoing Content-Encoding on the way).
 *
 * One to three exchanges are built from the input and written with
 * har_writer_add to a memory sink, then har_writer_close; the result must
 * parse with cJSON and hold log.entries with one object per entry written.
 * With the flag for a seekable sink (write_tail), the bytes as they stand
 * after every entry must parse too (the writer promises a complete file after
 * every call).
 *
 * Input: byte 0 flags (bit 0: seekable sink; bits 1-2: number of exchanges - 1,
 * at most 3; bit 3: entries in index order, har_writer_order, with a wait and a
 * memory bound from the next two bytes, bits 4-5 more exchanges, indexes from
 * -1 to 6 (out of order even past the input's end), and har_writer_release at a time from the input
 * after each entry; the file then holds what har_writer_entries counts), then for each exchange a
 * sequence of fields read in a fixed order, each field taken by a reader that never fails (past the
 * end it yields zeros and empty strings): str(n) = 1 length byte (n = byte & mask) then that many
 * bytes, any value (NUL included: the writer copies bytes, the HAR shows what it can). Fields:
 * method, target, req version byte, status (2 bytes), reason, resp version byte, header counts,
 * headers (name, value) for request and response (a content-encoding and content-type from a small
 * table, so the decoders run), request body, response body (16-bit lengths), trailers, WebSocket
 * messages, error, timestamps, then the har_entry_t fields: scheme, host,
 * port, server_ip, connection, timings, pcapng, index, pid, process, exe,
 * cmdline. Seeds: fixtures/fuzz/har/.
 *
 * Build (tests/slow/fuzz.sh does it): clang -g -O1
 *   -fsanitize=fuzzer,address,undefined -Iformats tests/fuzz/fuzz_har.c
 *   (every .c of formats/) $(pkg-config --cflags --libs libcjson zlib libbrotlidec
 *   libzstd ...) -lhttp_parser
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "har.h"

/* ---- input reader ---------------------------------------------------------- */

typedef struct rd {
    const uint8_t *p;
    size_t n;
} rd_t;

static uint8_t u8(rd_t *r)
{
    uint8_t v;

    if (!r->n)
        return 0;
    v = *r->p++;
    r->n--;
    return v;
}

static uint16_t u16(rd_t *r)
{
    uint16_t hi = u8(r);

    return (uint16_t)(hi << 8 | u8(r));
}

/* A 64-bit value shifted right by 0-63 bits (so small values are common too). */
static uint64_t u64s(rd_t *r);

static uint64_t u64(rd_t *r)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | u8(r);
    return v;
}

static uint64_t u64s(rd_t *r)
{
    uint64_t v = u64(r);

    return v >> (u8(r) & 63);
}

/* Bytes (borrowed from the input), length from one byte masked, or a 16-bit length. */
static const uint8_t *bytes(rd_t *r, size_t *len, int wide, size_t mask)
{
    size_t l = wide ? u16(r) : (size_t)(u8(r) & mask);
    const uint8_t *p = r->p;

    if (l > r->n)
        l = r->n;
    r->p += l;
    r->n -= l;
    *len = l;
    return p;
}

/* A NUL-terminated copy (freed by the caller), or NULL when the flag byte says so. */
static char *opt_str(rd_t *r, int may_be_null)
{
    size_t l;
    const uint8_t *p;
    char *s;

    if (may_be_null && (u8(r) & 3) == 0)
        return NULL;
    p = bytes(r, &l, 0, 0x3f);
    if (!(s = malloc(l + 1)))
        abort();
    memcpy(s, p, l);
    s[l] = '\0';
    return s;
}

static const char *const ENCODINGS[8] = {"gzip",     "deflate",  "br",        "zstd",
                                         "identity", "gzip, br", "x-unknown", "GZIP"};
static const char *const TYPES[8] = {"text/plain",
                                     "application/json; charset=utf-8",
                                     "application/x-www-form-urlencoded",
                                     "text/html; charset=latin1",
                                     "multipart/form-data; boundary=x",
                                     "image/png",
                                     "application/octet-stream",
                                     ""};

static void add_headers(rd_t *r, http_msg_t *m, int trailers)
{
    int n = u8(r) & 7;

    for (int i = 0; i < n; i++) {
        uint8_t kind = u8(r);
        const char *name, *value;
        size_t nl, vl;
        const uint8_t *np, *vp;
        int rc;

        if (kind < 0x20) { /* one of the headers the writer looks at */
            name = (kind & 8) ? "Content-Type" : (kind & 16) ? "Cookie" : "Content-Encoding";
            value = (kind & 8)    ? TYPES[kind & 7]
                    : (kind & 16) ? "a=1; b=2; c"
                                  : ENCODINGS[kind & 7];
            if (!trailers && !(kind & 16) && kind >= 0x18)
                name = "Set-Cookie",
                value = "id=x; Path=/; HttpOnly; Expires=Wed, 21 Oct 2015 07:28:00 GMT";
            rc = trailers ? http_msg_add_trailer(m, name, strlen(name), value, strlen(value))
                          : http_msg_add_header(m, name, strlen(name), value, strlen(value));
        } else {
            np = bytes(r, &nl, 0, 0x1f);
            vp = bytes(r, &vl, 0, 0x3f);
            rc = trailers ? http_msg_add_trailer(m, (const char *)np, nl, (const char *)vp, vl)
                          : http_msg_add_header(m, (const char *)np, nl, (const char *)vp, vl);
        }
        if (rc < 0)
            abort();
    }
}

static void add_body(rd_t *r, http_msg_t *m)
{
    size_t l;
    const uint8_t *p = bytes(r, &l, 1, 0);
    size_t max = u8(r) & 1 ? 64 : 1 << 20;

    if (l && http_msg_add_body(m, p, l, max) < 0)
        abort();
    m->complete = u8(r) & 1;
}

/* ---- memory sink ----------------------------------------------------------- */

typedef struct mem {
    char *buf;
    size_t len, cap; /* len: where the next write goes */
    size_t end;      /* bytes valid in buf (len, or more after a tail) */
} mem_t;

static int mem_write(void *o, const void *b, size_t n)
{
    mem_t *m = o;

    if (m->len + n + 1 > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < m->len + n + 1)
            cap *= 2;
        if (!(m->buf = realloc(m->buf, cap)))
            abort();
        m->cap = cap;
    }
    memcpy(m->buf + m->len, b, n);
    m->len += n;
    m->end = m->len;
    return 0;
}

static int mem_tail(void *o, const void *b, size_t n)
{
    mem_t *m = o;
    size_t at = m->len;

    mem_write(o, b, n);
    m->len = at; /* the next write replaces the tail */
    return 0;
}

/* The sink's bytes as they stand must be one JSON document with n entries. */
static void check_json(const mem_t *m, int n)
{
    cJSON *doc = cJSON_ParseWithLength(m->buf, m->end);
    const cJSON *log, *entries;

    if (!doc)
        abort();
    log = cJSON_GetObjectItemCaseSensitive(doc, "log");
    entries = cJSON_GetObjectItemCaseSensitive(log, "entries");
    if (!cJSON_IsArray(entries) || cJSON_GetArraySize(entries) != n)
        abort();
    for (const cJSON *e = entries->child; e; e = e->next) {
        const cJSON *req = cJSON_GetObjectItemCaseSensitive(e, "request");
        const cJSON *resp = cJSON_GetObjectItemCaseSensitive(e, "response");
        if (!cJSON_IsObject(req) || !cJSON_IsObject(resp) ||
            !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(req, "url")) ||
            !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(resp, "status")))
            abort();
    }
    cJSON_Delete(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rd_t r = {data, size};
    uint8_t flags = u8(&r);
    int seekable = flags & 1, n = ((flags >> 1) & 3) % 3 + 1, written = 0, rc;
    int ordered = flags >> 3 & 1;
    mem_t m = {0};
    sink_t sink = {mem_write, seekable ? mem_tail : NULL, &m};
    har_writer_t *w;

    w = har_writer_new(&sink, "fuzz", "0", &rc);
    if (!w)
        abort();
    if (seekable)
        check_json(&m, 0);
    if (ordered) {
        uint64_t hold = u8(&r);
        size_t bytes = (size_t)u8(&r) << 4;

        har_writer_order(w, hold, bytes);
        n += flags >> 4 & 3;
    }
    for (int k = 0; k < n; k++) {
        http_exchange_t *ex = http_exchange_new();
        har_entry_t e;
        char *s[12] = {0};
        size_t ns = 0;
        uint8_t v;

        if (!ex)
            abort();
        memset(&e, 0, sizeof(e));
        s[ns] = opt_str(&r, 1), ex->method = s[ns] ? strdup(s[ns]) : NULL, ns++;
        s[ns] = opt_str(&r, 1), ex->target = s[ns] ? strdup(s[ns]) : NULL, ns++;
        v = u8(&r);
        ex->req_major = v >> 4, ex->req_minor = v & 15;
        ex->status = u16(&r) % 1000;
        s[ns] = opt_str(&r, 1), ex->reason = s[ns] ? strdup(s[ns]) : NULL, ns++;
        v = u8(&r);
        ex->resp_major = v >> 4, ex->resp_minor = v & 15;
        add_headers(&r, &ex->req, 0);
        add_headers(&r, &ex->resp, 0);
        add_body(&r, &ex->req);
        add_body(&r, &ex->resp);
        if (u8(&r) & 1)
            add_headers(&r, &ex->resp, 1);
        ex->req.headers_size = (int8_t)u8(&r);
        ex->resp.headers_size = (int8_t)u8(&r);
        for (int i = u8(&r) & 3; i > 0; i--) {
            size_t l;
            const uint8_t *p;
            uint64_t ts;
            v = u8(&r);
            p = bytes(&r, &l, 0, 0xff);
            ts = u64(&r);
            if (http_exchange_add_ws(ex, v & 1, ts, v >> 1 & 15, p, l) < 0)
                abort();
        }
        s[ns] = opt_str(&r, 1), ex->error = s[ns] ? strdup(s[ns]) : NULL, ns++;
        ex->t_req_start = u64s(&r);
        ex->t_req_end = ex->t_req_start + u64s(&r);
        ex->t_resp_start = u64s(&r);
        ex->t_resp_end = u64s(&r);
        ex->stream_id = u8(&r);
        ex->pushed = u8(&r) & 1;
        if ((ex->method && !s[0]) || (ex->target && !s[1]))
            abort();

        e.ex = ex;
        v = u8(&r);
        e.scheme = v & 1 ? "https" : v & 2 ? "http" : (s[ns++] = opt_str(&r, 0));
        e.host = s[ns] = opt_str(&r, 1), ns++;
        e.port = u16(&r);
        e.server_ip = s[ns] = opt_str(&r, 1), ns++;
        e.connection = s[ns] = opt_str(&r, 1), ns++;
        e.started_usec = u8(&r) & 1 ? u64(&r) : 0;
        e.blocked = (double)(int16_t)u16(&r);
        e.dns = (double)(int16_t)u16(&r) / 7.0;
        e.connect = (double)(int16_t)u16(&r);
        e.ssl = u8(&r) & 1 ? -1 : (double)u16(&r) / 3.0;
        e.has_pcapng = u8(&r) & 1;
        e.pcapng_interface = u8(&r);
        e.pcapng_frame = (int64_t)u64(&r);
        e.pcapng_stream = (int64_t)u64(&r);
        e.error = s[ns] = opt_str(&r, 1), ns++;
        /* Ordered: past the input's end (zeros) still out of order: -1, 4, 1, 6, 3, 0. */
        e.index = ordered ? (int64_t)((u8(&r) ^ k * 5) % 8) - 1 : (int64_t)u64(&r);
        {
            uint32_t hi = u16(&r);
            e.pid = (int64_t)(int32_t)(hi << 16 | u16(&r));
        }
        e.process = s[ns] = opt_str(&r, 1), ns++;
        e.exe = s[ns] = opt_str(&r, 1), ns++;
        e.cmdline = s[ns] = opt_str(&r, 1), ns++;

        /* Nothing in an exchange is a reason to fail (the sink never does); out of
           memory is the only excuse. */
        rc = har_writer_add(w, &e);
        if (rc == 0)
            written++;
        else if (rc != -ENOMEM)
            abort();
        if (ordered && har_writer_release(w, u64s(&r)) != 0)
            abort();
        if (seekable)
            check_json(&m, (int)har_writer_entries(w));
        http_exchange_free(ex);
        for (size_t i = 0; i < ns; i++)
            free(s[i]);
    }
    if (har_writer_entries(w) + har_writer_held(w) != (uint64_t)written)
        abort();
    if (har_writer_close(w) != 0 || har_writer_held(w) != 0 ||
        har_writer_entries(w) != (uint64_t)written)
        abort();
    check_json(&m, written);
#ifdef FUZZ_HAR_DUMP
    /* -DFUZZ_HAR_DUMP: print what an input makes (to check a new seed). */
    fwrite(m.buf, 1, m.end, stdout);
    fputc('\n', stdout);
#endif
    har_writer_free(w);
    free(m.buf);
    return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the passive HTTP/2 decoder.
 *
 * Real traffic: an nghttp2 client session and server session talk to each
 * other in memory (nghttp2_session_mem_send / mem_recv). Every byte either
 * side sends is captured in order; that capture is then fed to the decoder
 * in chunks as sent, merged per direction, byte by byte and in random splits
 * (fixed seeds), and every exchange must equal what the sessions were told
 * to send: method, path, status, headers in wire order, bodies, trailers,
 * errors, pushes, WebSocket messages (RFC 8441). Exchanges must come out in
 * the order the streams ended, which is the order in which the receiving
 * session closed them.
 *
 * Hand-built frames cover what well-behaved sessions never send: protocol
 * errors, limits (HPACK bomb, 256 KiB blocks, 10,000 streams) and floods.
 *
 * "test_http2 --write-seeds DIR" also writes the small conversations to DIR
 * as fuzz seeds in the format of tests/fuzz/fuzz_http2.c (fixtures/fuzz/http2/).
 */
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Under ASan the heap can be measured (sanitizer/allocator_interface.h, which
   gcc does not ship). */
#if defined(__SANITIZE_ADDRESS__)
size_t __sanitizer_get_current_allocated_bytes(void);
#define HAVE_HEAP_STATS 1
#endif

#include "check.h"
#include "http2.h"
#include "websocket.h"
#include "bytes.h"

/* Where --write-seeds puts fuzz seeds, or NULL. */
static const char *seed_dir;

#define REQ HTTP2_REQ
#define RESP HTTP2_RESP
#define MAX_IDS 256
#define MAX_GOT 20000
#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, 0                            \
    }

static void die(const char *what)
{
    fprintf(stderr, "test setup failed: %s\n", what);
    exit(2);
}

static uint32_t rng_state;

static uint32_t rng(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}

static void pattern(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((i * 131 + seed * 7 + (i >> 9)) & 0xff);
}

/* ---- the two sessions ---- */

typedef struct chunk {
    int dir;
    uint8_t *p;
    size_t len;
} chunk_t;

typedef struct src {
    uint8_t *p;
    size_t len, off;
    const nghttp2_nv *tr; /* trailers sent after the data, or NULL */
    size_t ntr;
} src_t;

typedef struct sstream {
    char method[16], path[64];
} sstream_t;

typedef struct world {
    const char *name;
    nghttp2_session *cli, *srv;
    chunk_t *ch;
    size_t nch, capch, delivered;
    http_exchange_t *exp[MAX_IDS]; /* what each stream must decode to */
    uint64_t closed_at[MAX_IDS], events;
    sstream_t ss[MAX_IDS];
    src_t *srcs[256];
    size_t nsrcs;
    int padding, big_frames;
    http_exchange_t *upgrade_req; /* the HTTP/1.1 request of an h2c upgrade */
} world_t;

static http_exchange_t *exp_get(world_t *w, int32_t id)
{
    if (id <= 0 || id >= MAX_IDS)
        die("stream id out of the test's range");
    if (!w->exp[id]) {
        w->exp[id] = http_exchange_new();
        w->exp[id]->stream_id = (uint32_t)id;
        w->exp[id]->req_major = 2;
    }
    return w->exp[id];
}

static void exp_fields(http_msg_t *m, const nghttp2_nv *nv, size_t n, int trailers)
{
    for (size_t i = 0; i < n; i++) {
        int r = trailers ? http_msg_add_trailer(m, (const char *)nv[i].name, nv[i].namelen,
                                                (const char *)nv[i].value, nv[i].valuelen)
                         : http_msg_add_header(m, (const char *)nv[i].name, nv[i].namelen,
                                               (const char *)nv[i].value, nv[i].valuelen);

        if (r < 0)
            die("out of memory");
    }
}

static void exp_error(world_t *w, int32_t id, const char *text)
{
    http_strset(&exp_get(w, id)->error, text, strlen(text));
}

static const char *nv_get(const nghttp2_nv *nv, size_t n, const char *name)
{
    static char v[256];

    for (size_t i = 0; i < n; i++)
        if (nv[i].namelen == strlen(name) && memcmp(nv[i].name, name, nv[i].namelen) == 0) {
            size_t k = nv[i].valuelen < sizeof(v) - 1 ? nv[i].valuelen : sizeof(v) - 1;

            memcpy(v, nv[i].value, k);
            v[k] = '\0';
            return v;
        }
    return NULL;
}

static ssize_t src_read(nghttp2_session *s, int32_t id, uint8_t *out, size_t length,
                        uint32_t *flags, nghttp2_data_source *source, void *ud)
{
    src_t *x = source->ptr;
    size_t n = x->len - x->off < length ? x->len - x->off : length;

    (void)ud;
    memcpy(out, x->p + x->off, n);
    x->off += n;
    if (x->off == x->len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (x->ntr) {
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            if (nghttp2_submit_trailer(s, id, x->tr, x->ntr) != 0)
                die("nghttp2_submit_trailer");
        }
    }
    return (ssize_t)n;
}

static nghttp2_data_provider provider(world_t *w, const void *p, size_t len, const nghttp2_nv *tr,
                                      size_t ntr)
{
    src_t *x = calloc(1, sizeof(*x));
    nghttp2_data_provider prd;

    if (!x || w->nsrcs == sizeof(w->srcs) / sizeof(w->srcs[0]))
        die("too many data sources");
    x->p = malloc(len + 1);
    if (len)
        memcpy(x->p, p, len);
    x->len = len;
    x->tr = tr;
    x->ntr = ntr;
    w->srcs[w->nsrcs++] = x;
    prd.source.ptr = x;
    prd.read_callback = src_read;
    return prd;
}

/* Sends a request; what it sends is what its exchange must hold. */
static int32_t request(world_t *w, const nghttp2_nv *h, size_t nh, const void *body, size_t len,
                       const nghttp2_nv *tr, size_t ntr, const nghttp2_priority_spec *pri)
{
    nghttp2_data_provider prd;
    http_exchange_t *e;
    int32_t id;

    if (body)
        prd = provider(w, body, len, tr, ntr);
    id = nghttp2_submit_request(w->cli, pri, h, nh, body ? &prd : NULL, NULL);
    if (id < 0)
        die("nghttp2_submit_request");
    e = exp_get(w, id);
    http_strset(&e->method, nv_get(h, nh, ":method"), strlen(nv_get(h, nh, ":method")));
    http_strset(&e->target, nv_get(h, nh, ":path"), strlen(nv_get(h, nh, ":path")));
    exp_fields(&e->req, h, nh, 0);
    if (body)
        http_msg_add_body(&e->req, body, len, SIZE_MAX);
    exp_fields(&e->req, tr, ntr, 1);
    e->req.complete = 1;
    return id;
}

static void respond(world_t *w, int32_t id, const nghttp2_nv *h, size_t nh, const void *body,
                    size_t len, const nghttp2_nv *tr, size_t ntr)
{
    http_exchange_t *e = exp_get(w, id);
    nghttp2_data_provider prd;

    if (body)
        prd = provider(w, body, len, tr, ntr);
    if (nghttp2_submit_response(w->srv, id, h, nh, body ? &prd : NULL) != 0)
        die("nghttp2_submit_response");
    e->status = atoi(nv_get(h, nh, ":status"));
    exp_fields(&e->resp, h, nh, 0);
    if (body)
        http_msg_add_body(&e->resp, body, len, SIZE_MAX);
    exp_fields(&e->resp, tr, ntr, 1);
    e->resp.complete = 1;
}

/* ---- what the server does with each request ---- */

static const char SMALL_BODY[] = "small body";

static void serve(world_t *w, int32_t id)
{
    sstream_t *ss = &w->ss[id];
    const char *p = ss->path;

    if (strcmp(ss->method, "CONNECT") == 0) {
        static const nghttp2_nv h[] = {NV(":status", "200"),
                                       NV("sec-websocket-extensions", "permessage-deflate")};
        http_exchange_t *e = exp_get(w, id);

        if (nghttp2_submit_headers(w->srv, NGHTTP2_FLAG_NONE, id, NULL, h, 2, NULL) < 0)
            die("nghttp2_submit_headers");
        e->status = 200;
        exp_fields(&e->resp, h, 2, 0);
        e->resp.complete = 1;
    } else if (strcmp(ss->method, "HEAD") == 0) {
        static const nghttp2_nv h[] = {NV(":status", "200"), NV("content-length", "10")};

        respond(w, id, h, 2, NULL, 0, NULL, 0);
    } else if (strcmp(p, "/small") == 0 || strncmp(p, "/after", 6) == 0) {
        static const nghttp2_nv h[] = {NV(":status", "200"), NV("content-type", "text/plain"),
                                       NV("x-test", "1"), NV("cache-control", "no-store")};

        respond(w, id, h, 4, SMALL_BODY, strlen(SMALL_BODY), NULL, 0);
    } else if (strcmp(p, "/big") == 0 || strcmp(p, "/big2") == 0) {
        static const nghttp2_nv h[] = {NV(":status", "200"),
                                       NV("content-type", "application/octet-stream")};
        size_t n = strcmp(p, "/big") == 0 ? 300000 : 200000;
        uint8_t *b = malloc(n);

        pattern(b, n, (unsigned)id);
        respond(w, id, h, 2, b, n, NULL, 0);
        free(b);
    } else if (strcmp(p, "/upload") == 0 || strcmp(p, "/") == 0) {
        static const nghttp2_nv h[] = {NV(":status", "201"), NV("location", "/uploaded")};
        char msg[80];

        snprintf(msg, sizeof(msg), "stored %s", p);
        respond(w, id, h, 2, msg, strlen(msg), NULL, 0);
    } else if (strcmp(p, "/trailers") == 0) {
        static const nghttp2_nv h[] = {NV(":status", "200"),
                                       NV("content-type", "application/grpc")};
        static const nghttp2_nv tr[] = {NV("grpc-status", "0"), NV("x-trailer", "yes")};

        respond(w, id, h, 2, "trailer body", 12, tr, 2);
    } else if (strcmp(p, "/reset") == 0) {
        nghttp2_submit_rst_stream(w->srv, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
        exp_error(w, id, "stream reset by server: CANCEL");
    } else if (strcmp(p, "/push") == 0) {
        static const nghttp2_nv pr[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                        NV(":authority", "example.com"),
                                        NV(":path", "/pushed.css")};
        static const nghttp2_nv ph[] = {NV(":status", "200"), NV("content-type", "text/css")};
        static const nghttp2_nv h[] = {NV(":status", "200"), NV("content-type", "text/html")};
        int32_t pid = nghttp2_submit_push_promise(w->srv, NGHTTP2_FLAG_NONE, id, pr, 4, NULL);
        http_exchange_t *e;

        if (pid < 0)
            die("nghttp2_submit_push_promise");
        e = exp_get(w, pid);
        e->pushed = 1;
        http_strset(&e->method, "GET", 3);
        http_strset(&e->target, "/pushed.css", 11);
        exp_fields(&e->req, pr, 4, 0);
        e->req.complete = 1;
        respond(w, pid, ph, 2, "body{color:red}", 15, NULL, 0);
        respond(w, id, h, 2, "<link rel=stylesheet href=/pushed.css>", 38, NULL, 0);
    } else if (strcmp(p, "/interim") == 0) {
        static const nghttp2_nv hints[] = {NV(":status", "103"),
                                           NV("link", "</style.css>; rel=preload")};
        static const nghttp2_nv h[] = {NV(":status", "200")};

        if (nghttp2_submit_headers(w->srv, NGHTTP2_FLAG_NONE, id, NULL, hints, 2, NULL) < 0)
            die("nghttp2_submit_headers 103");
        respond(w, id, h, 1, "after hints", 11, NULL, 0);
    } else if (strcmp(p, "/bighdr") == 0) {
        static char big[40001];
        nghttp2_nv h[] = {NV(":status", "200"), NV("x-big-response", "")};

        memset(big, 'b', sizeof(big) - 1);
        h[1].value = (uint8_t *)big;
        h[1].valuelen = sizeof(big) - 1;
        respond(w, id, h, 2, "big header", 10, NULL, 0);
    } else if (strcmp(p, "/empty") == 0) {
        static const nghttp2_nv h[] = {NV(":status", "204")};

        respond(w, id, h, 1, NULL, 0, NULL, 0);
    }
    /* /slow, /late*: no answer */
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    world_t *w = ud;

    (void)s;
    if (f->hd.stream_id > 0 && f->hd.stream_id < MAX_IDS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
        memset(&w->ss[f->hd.stream_id], 0, sizeof(w->ss[0]));
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    world_t *w = ud;
    sstream_t *ss;

    (void)s;
    (void)flags;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    ss = &w->ss[f->hd.stream_id];
    if (namelen == 7 && memcmp(name, ":method", 7) == 0 && valuelen < sizeof(ss->method))
        memcpy(ss->method, value, valuelen);
    if (namelen == 5 && memcmp(name, ":path", 5) == 0 && valuelen < sizeof(ss->path))
        memcpy(ss->path, value, valuelen);
    return 0;
}

static int on_frame_recv_srv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    world_t *w = ud;
    int32_t id = f->hd.stream_id;

    (void)s;
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
        return 0;
    /* A CONNECT is answered at once, anything else when its request ended. */
    if (strcmp(w->ss[id].method, "CONNECT") == 0) {
        if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
            serve(w, id);
    } else if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        serve(w, id);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    world_t *w = ud;

    (void)s;
    (void)code;
    if (id > 0 && id < MAX_IDS)
        w->closed_at[id] = ++w->events;
    return 0;
}

static ssize_t select_padding(nghttp2_session *s, const nghttp2_frame *f, size_t max, void *ud)
{
    world_t *w = ud;
    size_t want = f->hd.length + (w->padding ? 1 + (size_t)f->hd.stream_id % 40 : 0);

    (void)s;
    return (ssize_t)(want < max ? want : max);
}

static ssize_t read_length(nghttp2_session *s, uint8_t type, int32_t id, int32_t sw, int32_t stw,
                           uint32_t remote_max, void *ud)
{
    world_t *w = ud;

    (void)s;
    (void)type;
    (void)id;
    (void)sw;
    (void)stw;
    return w->big_frames ? (ssize_t)remote_max : 16384;
}

static void world_init(world_t *w, const char *name, int padding, int big_frames)
{
    nghttp2_session_callbacks *cb;
    nghttp2_option *opt;

    memset(w, 0, sizeof(*w));
    w->name = name;
    w->padding = padding;
    w->big_frames = big_frames;
    if (nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0)
        die("nghttp2 callbacks");
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_select_padding_callback(cb, select_padding);
    nghttp2_session_callbacks_set_data_source_read_length_callback(cb, read_length);
    /* Bigger HPACK tables than the 4096 default when the peer allows them. */
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 65536);
    if (nghttp2_session_client_new2(&w->cli, cb, w, opt) != 0)
        die("client session");
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv_srv);
    if (nghttp2_session_server_new2(&w->srv, cb, w, opt) != 0)
        die("server session");
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
}

static void world_free(world_t *w)
{
    nghttp2_session_del(w->cli);
    nghttp2_session_del(w->srv);
    for (size_t i = 0; i < w->nch; i++)
        free(w->ch[i].p);
    free(w->ch);
    for (int i = 0; i < MAX_IDS; i++)
        http_exchange_free(w->exp[i]);
    for (size_t i = 0; i < w->nsrcs; i++) {
        free(w->srcs[i]->p);
        free(w->srcs[i]);
    }
    http_exchange_free(w->upgrade_req);
}

/* Captures what one side has to send, without delivering it yet. */
static size_t flush(world_t *w, int dir)
{
    nghttp2_session *s = dir == REQ ? w->cli : w->srv;
    size_t before = w->nch;

    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(s, &data);

        if (n < 0)
            die("nghttp2_session_mem_send");
        if (n == 0)
            break;
        if (w->nch == w->capch) {
            w->capch = w->capch ? w->capch * 2 : 256;
            w->ch = realloc(w->ch, w->capch * sizeof(*w->ch));
            if (!w->ch)
                die("out of memory");
        }
        w->ch[w->nch].dir = dir;
        w->ch[w->nch].len = (size_t)n;
        w->ch[w->nch].p = malloc((size_t)n);
        memcpy(w->ch[w->nch].p, data, (size_t)n);
        w->nch++;
    }
    return w->nch - before;
}

/* Delivers the captured bytes in the order they were captured. */
static void deliver(world_t *w)
{
    for (; w->delivered < w->nch; w->delivered++) {
        chunk_t *c = &w->ch[w->delivered];
        nghttp2_session *to = c->dir == REQ ? w->srv : w->cli;
        ssize_t n = nghttp2_session_mem_recv(to, c->p, c->len);

        if (n != (ssize_t)c->len) {
            fprintf(stderr, "%s: mem_recv: %s\n", w->name, nghttp2_strerror((int)n));
            die("nghttp2_session_mem_recv");
        }
    }
}

static void pump(world_t *w)
{
    for (;;) {
        size_t n = flush(w, REQ) + flush(w, RESP);

        deliver(w);
        if (n == 0)
            break;
    }
}

static void settings(nghttp2_session *s, const nghttp2_settings_entry *iv, size_t n)
{
    if (nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, n) != 0)
        die("nghttp2_submit_settings");
}

/* ---- running the decoder over the capture ---- */

enum mode { MODE_CHUNKS, MODE_MERGED, MODE_BYTES, MODE_RANDOM };

typedef struct got {
    http_exchange_t **ex;
    size_t n;
    int errors, begins, heads, bad_order;
    char error[256];
} got_t;

static void g_begin(void *opaque, http_exchange_t *ex)
{
    got_t *g = opaque;

    g->begins++;
    if (ex->user || ex->stream_id == 0 || ex->t_req_start == 0)
        g->bad_order++;
    ex->user = (void *)1;
}

static void g_head(void *opaque, http_exchange_t *ex)
{
    got_t *g = opaque;

    g->heads++;
    if (ex->user != (void *)1 || !ex->method || !ex->target)
        g->bad_order++;
    ex->user = (void *)2;
}

static void g_exchange(void *opaque, http_exchange_t *ex)
{
    got_t *g = opaque;

    if (ex->user != (void *)2)
        g->bad_order++;
    if (g->n < MAX_GOT)
        g->ex[g->n++] = ex;
    else
        http_exchange_free(ex);
}

static void g_error(void *opaque, const char *message)
{
    got_t *g = opaque;

    g->errors++;
    snprintf(g->error, sizeof(g->error), "%s", message);
}

static const http2_callbacks_t g_cb = {g_begin, g_head, g_exchange, g_error};

static void got_init(got_t *g)
{
    memset(g, 0, sizeof(*g));
    g->ex = calloc(MAX_GOT, sizeof(*g->ex));
}

static void got_free(got_t *g)
{
    for (size_t i = 0; i < g->n; i++)
        http_exchange_free(g->ex[i]);
    free(g->ex);
}

static http2_conn_t *decoder_for(const world_t *w, got_t *g, size_t max_body)
{
    http2_conn_t *c = w->upgrade_req ? http2_conn_new_upgrade(&g_cb, g, max_body, w->upgrade_req)
                                     : http2_conn_new(&g_cb, g, max_body);

    if (!c)
        die("http2_conn_new");
    return c;
}

/* Feeds the capture; returns the first error a feed returned (0 if none). */
static int feed_world(const world_t *w, http2_conn_t *c, int mode, uint32_t seed)
{
    int first = 0;

    rng_state = seed;
    for (size_t i = 0; i < w->nch; i++) {
        const chunk_t *ch = &w->ch[i];
        const uint8_t *p = ch->p;
        size_t left = ch->len;
        uint64_t ts = 1000000 + (uint64_t)i * 1000;

        if (mode == MODE_MERGED) {
            /* All chunks of a run in one direction at once. */
            bytes_t b = {0};
            size_t j;
            int r;

            for (j = i; j < w->nch && w->ch[j].dir == ch->dir; j++)
                b_add(&b, w->ch[j].p, w->ch[j].len);
            r = http2_conn_feed(c, ch->dir, b.p, b.len, ts);
            if (r < 0 && !first)
                first = r;
            free(b.p);
            i = j - 1;
            continue;
        }
        while (left) {
            size_t k = mode == MODE_CHUNKS  ? left
                       : mode == MODE_BYTES ? 1
                                            : 1 + rng() % (rng() % 4 == 0 ? 20 : 3000);
            int r;

            if (k > left)
                k = left;
            r = http2_conn_feed(c, ch->dir, p, k, ts);
            if (r < 0 && !first)
                first = r;
            if (ts % 1000 < 999)
                ts++;
            p += k;
            left -= k;
        }
    }
    return first;
}

static int same_fields(const http_header_t *a, size_t na, const http_header_t *b, size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i].name, b[i].name) != 0 || strcmp(a[i].value, b[i].value) != 0)
            return 0;
    return 1;
}

static void show_fields(const char *what, const http_header_t *h, size_t n)
{
    fprintf(stderr, "  %s (%zu):", what, n);
    for (size_t i = 0; i < n && i < 12; i++)
        fprintf(stderr, " [%s: %.40s]", h[i].name, h[i].value);
    fprintf(stderr, "\n");
}

static void compare(const char *name, int mode, const http_exchange_t *g, const http_exchange_t *e)
{
    int before = check_failed_;

    CHECK_EQ_INT(g->stream_id, e->stream_id);
    CHECK_EQ_INT(g->pushed, e->pushed);
    CHECK_EQ_STR(g->method, e->method ? e->method : "");
    CHECK_EQ_STR(g->target, e->target ? e->target : "");
    CHECK_EQ_INT(g->req_major, e->req_major);
    CHECK_EQ_INT(g->req_minor, e->req_minor);
    CHECK_EQ_INT(g->resp_major, 2);
    CHECK_EQ_INT(g->status, e->status);
    CHECK_EQ_STR(g->reason, "");
    CHECK(same_fields(g->req.headers, g->req.nheaders, e->req.headers, e->req.nheaders));
    CHECK(same_fields(g->resp.headers, g->resp.nheaders, e->resp.headers, e->resp.nheaders));
    CHECK(same_fields(g->req.trailers, g->req.ntrailers, e->req.trailers, e->req.ntrailers));
    CHECK(same_fields(g->resp.trailers, g->resp.ntrailers, e->resp.trailers, e->resp.ntrailers));
    CHECK_EQ_INT(g->req.body_len, e->req.body_len);
    CHECK(g->req.body_len == e->req.body_len &&
          (!e->req.body_len || memcmp(g->req.body, e->req.body, e->req.body_len) == 0));
    CHECK_EQ_INT(g->resp.body_len, e->resp.body_len);
    CHECK(g->resp.body_len == e->resp.body_len &&
          (!e->resp.body_len || memcmp(g->resp.body, e->resp.body, e->resp.body_len) == 0));
    CHECK_EQ_INT(g->req.body_total, g->req.body_len);
    CHECK_EQ_INT(g->resp.body_total, g->resp.body_len);
    CHECK(g->req.wire_body_size >= g->req.body_total);
    CHECK(g->resp.wire_body_size >= g->resp.body_total);
    CHECK_EQ_INT(g->req.complete, e->req.complete);
    CHECK_EQ_INT(g->resp.complete, e->resp.complete);
    if (e->error)
        CHECK(g->error && strstr(g->error, e->error));
    else
        CHECK(g->error == NULL);
    CHECK_EQ_INT(g->nws, e->nws);
    for (size_t i = 0; i < g->nws && i < e->nws; i++) {
        CHECK_EQ_INT(g->ws[i].send, e->ws[i].send);
        CHECK_EQ_INT(g->ws[i].opcode, e->ws[i].opcode);
        CHECK(g->ws[i].len == e->ws[i].len &&
              memcmp(g->ws[i].data, e->ws[i].data, e->ws[i].len) == 0);
    }
    /* Times: the request starts first; a response starts after it. */
    CHECK(g->t_req_start >= 1000000 || (e->req_major == 1 && g->t_req_start == 500));
    CHECK(g->t_req_end >= g->t_req_start);
    if (g->resp.complete) {
        CHECK(g->t_resp_start >= g->t_req_start);
        CHECK(g->t_resp_end >= g->t_resp_start);
    }
    if (check_failed_ != before) {
        fprintf(stderr, "%s mode %d: stream %u (%s %s) differs; error \"%s\"\n", name, mode,
                (unsigned)e->stream_id, e->method, e->target, g->error ? g->error : "");
        show_fields("got req", g->req.headers, g->req.nheaders);
        show_fields("exp req", e->req.headers, e->req.nheaders);
        show_fields("got resp", g->resp.headers, g->resp.nheaders);
        show_fields("exp resp", e->resp.headers, e->resp.nheaders);
    }
}

/* Streams in the order they ended: when the last session closed them, or at
   the end (finish) in id order for the ones never closed. */
static size_t expected_order(const world_t *w, uint32_t *ids)
{
    size_t n = 0;

    for (uint32_t id = 1; id < MAX_IDS; id++)
        if (w->exp[id])
            ids[n++] = id;
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0; j--) {
            uint64_t a = w->closed_at[ids[j - 1]], b = w->closed_at[ids[j]];

            if ((a ? a : UINT64_MAX) <= (b ? b : UINT64_MAX))
                break;
            uint32_t t = ids[j];

            ids[j] = ids[j - 1];
            ids[j - 1] = t;
        }
    return n;
}

static void check_world(const world_t *w, int modes_mask, int check_order)
{
    static const char *const mode_name[] = {"chunks", "merged", "bytes", "random"};
    uint32_t ids[MAX_IDS];
    size_t nexp = expected_order(w, ids);

    for (int mode = 0; mode <= MODE_RANDOM; mode++) {
        if (!(modes_mask & (1 << mode)))
            continue;
        for (uint32_t seed = 1; seed <= (mode == MODE_RANDOM ? 4u : 1u); seed++) {
            got_t g;
            http2_conn_t *c;
            int r;

            got_init(&g);
            c = decoder_for(w, &g, 0);
            r = feed_world(w, c, mode, seed);
            CHECK_EQ_INT(r, 0);
            CHECK_EQ_INT(g.errors, 0);
            if (g.errors)
                fprintf(stderr, "%s %s: on_error \"%s\"\n", w->name, mode_name[mode], g.error);
            CHECK_EQ_INT(http2_conn_stopped(c), 0);
            http2_conn_finish(c, NULL, 99999999);
            CHECK_EQ_INT(http2_conn_stopped(c), 1);
            CHECK_EQ_INT(http2_conn_feed(c, REQ, "x", 1, 1), -EBADMSG);
            http2_conn_free(c);
            CHECK_EQ_INT(g.n, nexp);
            CHECK_EQ_INT(g.bad_order, 0);
            CHECK_EQ_INT(g.begins, (int)nexp);
            CHECK_EQ_INT(g.heads, (int)nexp);
            for (size_t i = 0; i < g.n; i++) {
                uint32_t id = g.ex[i]->stream_id;

                if (id >= MAX_IDS || !w->exp[id]) {
                    CHECK(!"unexpected stream");
                    continue;
                }
                compare(w->name, mode, g.ex[i], w->exp[id]);
                if (check_order && i < nexp && id != ids[i]) {
                    fprintf(stderr, "%s %s: exchange %zu is stream %u, expected %u\n", w->name,
                            mode_name[mode], i, (unsigned)id, (unsigned)ids[i]);
                    CHECK(!"order of exchanges");
                }
            }
            /* seq numbers are unique and dense. */
            for (size_t i = 0; i < g.n; i++)
                for (size_t j = i + 1; j < g.n; j++)
                    CHECK(g.ex[i]->seq != g.ex[j]->seq);
            got_free(&g);
        }
    }
}

/* The fuzz seed format (tests/fuzz/fuzz_http2.c): one flags byte, then
   records: a byte with the direction in bit 7 and the length in bits 0-6
   (127: a 16-bit big-endian length follows), then the bytes. */
static void write_seed(const world_t *w, const char *file, uint8_t flags)
{
    const char *dir = seed_dir;
    char path[512];
    FILE *f;

    if (!dir)
        return;
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    f = fopen(path, "wb");
    if (!f)
        die("cannot write a seed");
    fputc(flags, f);
    for (size_t i = 0; i < w->nch; i++)
        for (size_t off = 0; off < w->ch[i].len;) {
            size_t k = w->ch[i].len - off < 65535 ? w->ch[i].len - off : 65535;
            uint8_t d = w->ch[i].dir == RESP ? 0x80 : 0;

            if (k < 127) {
                fputc(d | (uint8_t)k, f);
            } else {
                fputc(d | 127, f);
                fputc((int)(k >> 8), f);
                fputc((int)(k & 0xff), f);
            }
            fwrite(w->ch[i].p + off, 1, k, f);
            off += k;
        }
    fclose(f);
}

/* ---- scenarios over real sessions ---- */

static void scenario_main(void)
{
    static const nghttp2_settings_entry civ[] = {
        {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 65536},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 262144},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 1},
    };
    static const nghttp2_settings_entry siv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
        {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, 20000},
        {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 8192},
    };
    static const nghttp2_nv small[] = {
        NV(":method", "GET"),  NV(":scheme", "https"),       NV(":authority", "example.com"),
        NV(":path", "/small"), NV("user-agent", "test/1.0"), NV("accept", "*/*"),
        NV("cookie", "a=1"),   NV("cookie", "b=2"),
    };
    static const nghttp2_nv head[] = {NV(":method", "HEAD"), NV(":scheme", "https"),
                                      NV(":authority", "example.com"), NV(":path", "/small")};
    static const nghttp2_nv upload[] = {
        NV(":method", "POST"),
        NV(":scheme", "https"),
        NV(":authority", "example.com"),
        NV(":path", "/upload"),
        NV("content-type", "application/octet-stream"),
        NV("content-length", "100000"),
    };
    static const nghttp2_nv trh[] = {NV(":method", "POST"), NV(":scheme", "https"),
                                     NV(":authority", "example.com"), NV(":path", "/trailers"),
                                     NV("te", "trailers")};
    static const nghttp2_nv trt[] = {NV("x-checksum", "abc123")};
    nghttp2_nv get[] = {NV(":method", "GET"), NV(":scheme", "https"),
                        NV(":authority", "example.com"), NV(":path", "")};
    static char bigval[40001];
    nghttp2_nv bighdr[] = {NV(":method", "GET"), NV(":scheme", "https"),
                           NV(":authority", "example.com"), NV(":path", "/bighdr"),
                           NV("x-big", "")};
    static const char *const paths[] = {"/reset", "/push", "/interim", "/empty"};
    static const nghttp2_settings_entry shrink_c[] = {{NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 1024},
                                                      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, 65536}};
    static const nghttp2_settings_entry shrink_s[] = {{NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 0}};
    static const nghttp2_settings_entry grow_c[] = {{NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 65536}};
    static const nghttp2_settings_entry grow_s[] = {{NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 4096}};
    nghttp2_priority_spec pri;
    world_t w;
    uint8_t *body = malloc(100000);
    int32_t slow, late1, late2;

    world_init(&w, "main", 1, 1);
    settings(w.cli, civ, 3);
    settings(w.srv, siv, 3);
    pump(&w);

    pattern(body, 100000, 5);
    request(&w, small, 8, NULL, 0, NULL, 0, NULL);
    nghttp2_priority_spec_init(&pri, 0, 32, 0);
    get[3].value = (uint8_t *)"/big";
    get[3].valuelen = 4;
    int32_t big = request(&w, get, 4, NULL, 0, NULL, 0, &pri);
    request(&w, upload, 6, body, 100000, NULL, 0, NULL);
    request(&w, trh, 5, "hello trailers", 14, trt, 1, NULL);
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        get[3].value = (uint8_t *)paths[i];
        get[3].valuelen = strlen(paths[i]);
        request(&w, get, 4, NULL, 0, NULL, 0, NULL);
    }
    memset(bigval, 'a', sizeof(bigval) - 1);
    bighdr[4].value = (uint8_t *)bigval;
    bighdr[4].valuelen = sizeof(bigval) - 1;
    request(&w, bighdr, 5, NULL, 0, NULL, 0, NULL);
    request(&w, head, 4, NULL, 0, NULL, 0, NULL);
    get[3].value = (uint8_t *)"/slow";
    get[3].valuelen = 5;
    slow = request(&w, get, 4, NULL, 0, NULL, 0, NULL);
    nghttp2_submit_ping(w.cli, NGHTTP2_FLAG_NONE, (const uint8_t *)"pingpong");
    nghttp2_priority_spec_init(&pri, 0, 200, 0);
    nghttp2_submit_priority(w.cli, NGHTTP2_FLAG_NONE, big, &pri);
    pump(&w);

    /* The client gives up on /slow. */
    nghttp2_submit_rst_stream(w.cli, NGHTTP2_FLAG_NONE, slow, NGHTTP2_CANCEL);
    exp_error(&w, slow, "stream reset by client: CANCEL");
    pump(&w);

    /* HPACK tables shrink (the server's to 0: no indexing) and grow again;
       the client now takes frames up to 64 KiB. */
    settings(w.cli, shrink_c, 2);
    settings(w.srv, shrink_s, 1);
    pump(&w);
    request(&w, small, 8, NULL, 0, NULL, 0, NULL);
    get[3].value = (uint8_t *)"/big2";
    get[3].valuelen = 5;
    request(&w, get, 4, NULL, 0, NULL, 0, NULL);
    pump(&w);
    settings(w.cli, grow_c, 1);
    settings(w.srv, grow_s, 1);
    pump(&w);
    get[3].value = (uint8_t *)"/after3";
    get[3].valuelen = 7;
    request(&w, get, 4, NULL, 0, NULL, 0, NULL);
    request(&w, small, 8, NULL, 0, NULL, 0, NULL);
    pump(&w);

    /* Two requests cross the server's GOAWAY: never processed. */
    get[3].value = (uint8_t *)"/late1";
    get[3].valuelen = 6;
    late1 = request(&w, get, 4, NULL, 0, NULL, 0, NULL);
    get[3].value = (uint8_t *)"/late2";
    late2 = request(&w, get, 4, NULL, 0, NULL, 0, NULL);
    flush(&w, REQ);
    nghttp2_submit_goaway(w.srv, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(w.srv),
                          NGHTTP2_NO_ERROR, (const uint8_t *)"bye", 3);
    flush(&w, RESP);
    deliver(&w);
    pump(&w);
    exp_error(&w, late1, "stream not processed: GOAWAY from server (NO_ERROR");
    exp_error(&w, late2, "stream not processed: GOAWAY from server (NO_ERROR");
    CHECK(w.closed_at[late1] && w.closed_at[late2]);
    /* One frame ended both: the client closed them in its own order, the
       decoder goes by stream id. */
    if (w.closed_at[late1] > w.closed_at[late2]) {
        uint64_t t = w.closed_at[late1];

        w.closed_at[late1] = w.closed_at[late2];
        w.closed_at[late2] = t;
    }

    check_world(&w, 0xf, 1);
    free(body);
    world_free(&w);
}

/* A small conversation, also the main fuzz seed. */
static void scenario_tiny(void)
{
    static const nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 256}};
    static const char *const paths[] = {"/small", "/push", "/reset", "/interim", "/empty"};
    static const nghttp2_nv trh[] = {NV(":method", "POST"), NV(":scheme", "http"),
                                     NV(":authority", "a"), NV(":path", "/trailers")};
    static const nghttp2_nv trt[] = {NV("x-sum", "1")};
    nghttp2_nv get[] = {NV(":method", "GET"), NV(":scheme", "http"), NV(":authority", "a"),
                        NV(":path", "")};
    world_t w;

    world_init(&w, "tiny", 1, 0);
    settings(w.cli, iv, 1);
    settings(w.srv, NULL, 0);
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        get[3].value = (uint8_t *)paths[i];
        get[3].valuelen = strlen(paths[i]);
        request(&w, get, 4, NULL, 0, NULL, 0, NULL);
    }
    request(&w, trh, 4, "data", 4, trt, 1, NULL);
    pump(&w);
    check_world(&w, 0xf, 1);
    write_seed(&w, "tiny.bin", 0);
    world_free(&w);
}

static void ws_send(world_t *w, int dir, int32_t id, const bytes_t *frames, int end)
{
    nghttp2_data_provider prd = provider(w, frames->p, frames->len, NULL, 0);

    int r = nghttp2_submit_data(dir == REQ ? w->cli : w->srv,
                                end ? NGHTTP2_FLAG_END_STREAM : NGHTTP2_FLAG_NONE, id, &prd);

    if (r != 0) {
        fprintf(stderr, "nghttp2_submit_data: %s\n", nghttp2_strerror(r));
        die("nghttp2_submit_data");
    }
    pump(w);
}

static void ws_frame(bytes_t *b, int opcode, int rsv1, int masked, const void *p, size_t n)
{
    static const uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
    uint8_t h[8] = {(uint8_t)(0x80 | (rsv1 ? 0x40 : 0) | opcode)};
    size_t hl = 2;

    if (n < 126) {
        h[1] = (uint8_t)n;
    } else {
        h[1] = 126;
        h[2] = (uint8_t)(n >> 8);
        h[3] = (uint8_t)n;
        hl = 4;
    }
    if (masked)
        h[1] |= 0x80;
    b_add(b, h, hl);
    if (masked)
        b_add(b, mask, 4);
    for (size_t i = 0; i < n; i++) {
        uint8_t x = ((const uint8_t *)p)[i] ^ (masked ? mask[i & 3] : 0);

        b_add(b, &x, 1);
    }
}

/* permessage-deflate payload: raw deflate, sync flush, 00 00 ff ff removed. */
static void ws_deflate(z_stream *z, const char *text, bytes_t *out)
{
    uint8_t tmp[1024];

    z->next_in = (Bytef *)text;
    z->avail_in = (uInt)strlen(text);
    z->next_out = tmp;
    z->avail_out = sizeof(tmp);
    deflate(z, Z_SYNC_FLUSH);
    b_add(out, tmp, sizeof(tmp) - z->avail_out - 4);
}

/* RFC 8441: WebSocket over an extended CONNECT stream, next to a plain GET. */
static void scenario_ws(int bad)
{
    static const nghttp2_settings_entry siv[] = {{NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1}};
    static const nghttp2_nv connect[] = {
        NV(":method", "CONNECT"),
        NV(":protocol", "websocket"),
        NV(":scheme", "https"),
        NV(":path", "/chat"),
        NV(":authority", "example.com"),
        NV("sec-websocket-version", "13"),
        NV("sec-websocket-extensions", "permessage-deflate"),
    };
    static const nghttp2_nv get[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                     NV(":authority", "example.com"), NV(":path", "/small")};
    static const char text1[] = "compressed hello, compressed hello, compressed hello";
    world_t w;
    http_exchange_t *e;
    z_stream zc, zs;
    bytes_t f = {0}, z = {0};
    int32_t id;

    world_init(&w, bad ? "ws-bad" : "ws", 0, 0);
    settings(w.cli, NULL, 0);
    settings(w.srv, siv, 1);
    pump(&w);
    id = nghttp2_submit_headers(w.cli, NGHTTP2_FLAG_NONE, -1, NULL, connect, 7, NULL);
    if (id < 0)
        die("CONNECT");
    e = exp_get(&w, id);
    http_strset(&e->method, "CONNECT", 7);
    http_strset(&e->target, "/chat", 5);
    exp_fields(&e->req, connect, 7, 0);
    e->req.complete = 1;
    request(&w, get, 4, NULL, 0, NULL, 0, NULL);
    pump(&w);
    CHECK_EQ_INT(w.exp[id]->status, 200);

    memset(&zc, 0, sizeof(zc));
    memset(&zs, 0, sizeof(zs));
    if (deflateInit2(&zc, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK ||
        deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        die("deflateInit2");
    /* Client: a text, a compressed text, a ping (masked, as clients must). */
    ws_frame(&f, 1, 0, 1, "hello", 5);
    http_exchange_add_ws(e, 1, 0, 1, "hello", 5);
    ws_deflate(&zc, text1, &z);
    ws_frame(&f, 1, 1, 1, z.p, z.len);
    http_exchange_add_ws(e, 1, 0, 1, text1, strlen(text1));
    if (bad) {
        ws_frame(&f, 3, 0, 1, "?", 1); /* reserved opcode: the client side stops */
        exp_error(&w, id, "WebSocket frame with reserved opcode 3");
    }
    ws_frame(&f, 9, 0, 1, "p", 1);
    if (!bad)
        http_exchange_add_ws(e, 1, 0, 9, "p", 1);
    ws_send(&w, REQ, id, &f, 0);
    /* Server: a text, the same compressed text twice (context takeover), a pong. */
    f.len = 0;
    ws_frame(&f, 1, 0, 0, "welcome", 7);
    http_exchange_add_ws(e, 0, 0, 1, "welcome", 7);
    for (int i = 0; i < 2; i++) {
        z.len = 0;
        ws_deflate(&zs, text1, &z);
        ws_frame(&f, 2, 1, 0, z.p, z.len);
        http_exchange_add_ws(e, 0, 0, 2, text1, strlen(text1));
    }
    ws_frame(&f, 10, 0, 0, "p", 1);
    http_exchange_add_ws(e, 0, 0, 10, "p", 1);
    ws_send(&w, RESP, id, &f, 0);
    /* Both close, and end the stream. */
    f.len = 0;
    ws_frame(&f, 8, 0, 1, "\x03\xe8", 2);
    if (!bad)
        http_exchange_add_ws(e, 1, 0, 8, "\x03\xe8", 2);
    ws_send(&w, REQ, id, &f, 1);
    f.len = 0;
    ws_frame(&f, 8, 0, 0, "\x03\xe8", 2);
    http_exchange_add_ws(e, 0, 0, 8, "\x03\xe8", 2);
    ws_send(&w, RESP, id, &f, 1);
    CHECK(w.closed_at[id] != 0);

    check_world(&w, 0xf, 1);
    if (!bad)
        write_seed(&w, "websocket-rfc8441.bin", 0);
    deflateEnd(&zc);
    deflateEnd(&zs);
    free(f.p);
    free(z.p);
    world_free(&w);
}

static void b64url(const uint8_t *p, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;

    for (size_t i = 0; i < n; i++) {
        acc = acc << 8 | p[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = a[(acc >> bits) & 63];
        }
    }
    if (bits)
        out[o++] = a[(acc << (6 - bits)) & 63];
    out[o] = '\0';
}

/* The HTTP/1.1 request of the h2c upgrade; the fuzz driver builds the same. */
static http_exchange_t *upgrade_request(const char *settings64)
{
    http_exchange_t *r = http_exchange_new();

    r->seq = 7;
    r->req_major = 1;
    r->req_minor = 1;
    r->t_req_start = 500;
    r->t_req_end = 500;
    http_strset(&r->method, "GET", 3);
    http_strset(&r->target, "/", 1);
    http_msg_add_header(&r->req, "Host", 4, "example.com", 11);
    http_msg_add_header(&r->req, "Connection", 10, "Upgrade, HTTP2-Settings", 23);
    http_msg_add_header(&r->req, "Upgrade", 7, "h2c", 3);
    http_msg_add_header(&r->req, "HTTP2-Settings", 14, settings64, strlen(settings64));
    r->req.complete = 1;
    return r;
}

/* h2c by Upgrade: stream 1 is the HTTP/1.1 request. The server speaks
   first, with an HPACK table of 8 KiB that only HTTP2-Settings allowed so
   far. (Its 32 KiB frames would be allowed too, but nghttp2's client only
   takes them once its SETTINGS is acknowledged: see test_upgrade_frames.) */
static void scenario_upgrade(void)
{
    static const nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_FRAME_SIZE, 32768},
                                                {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 8192}};
    static const nghttp2_nv h[] = {NV(":status", "200"), NV("content-type", "text/plain")};
    static const nghttp2_nv get[] = {NV(":method", "GET"), NV(":scheme", "http"),
                                     NV(":authority", "example.com"), NV(":path", "/small")};
    uint8_t payload[64], *body = malloc(5000);
    char s64[128];
    ssize_t plen = nghttp2_pack_settings_payload(payload, sizeof(payload), iv, 2);
    world_t w;
    http_exchange_t *e;

    if (plen < 0)
        die("nghttp2_pack_settings_payload");
    b64url(payload, (size_t)plen, s64);
    CHECK_EQ_STR(s64, "AAUAAIAAAAEAACAA");
    world_init(&w, "upgrade", 0, 0);
    w.upgrade_req = upgrade_request(s64);
    if (nghttp2_session_upgrade2(w.cli, payload, (size_t)plen, 0, NULL) != 0 ||
        nghttp2_session_upgrade2(w.srv, payload, (size_t)plen, 0, NULL) != 0)
        die("nghttp2_session_upgrade2");
    settings(w.srv, NULL, 0);
    e = exp_get(&w, 1);
    e->seq = 8;
    e->req_major = 1;
    e->req_minor = 1;
    http_strset(&e->method, "GET", 3);
    http_strset(&e->target, "/", 1);
    for (size_t i = 0; i < w.upgrade_req->req.nheaders; i++)
        http_msg_add_header(
            &e->req, w.upgrade_req->req.headers[i].name, strlen(w.upgrade_req->req.headers[i].name),
            w.upgrade_req->req.headers[i].value, strlen(w.upgrade_req->req.headers[i].value));
    e->req.complete = 1;
    pattern(body, 5000, 9);
    respond(&w, 1, h, 2, body, 5000, NULL, 0);
    /* The server speaks first. */
    flush(&w, RESP);
    request(&w, get, 4, NULL, 0, NULL, 0, NULL);
    pump(&w);
    check_world(&w, 0xf, 1);
    write_seed(&w, "upgrade.bin", 1);
    free(body);
    world_free(&w);
}

/* A GOAWAY with an error: the stream still open when the connection ends
   says so. */
static void scenario_goaway_error(void)
{
    nghttp2_nv get[] = {NV(":method", "GET"), NV(":scheme", "https"),
                        NV(":authority", "example.com"), NV(":path", "/slow")};
    world_t w;
    int32_t slow;

    world_init(&w, "goaway-error", 0, 0);
    settings(w.cli, NULL, 0);
    settings(w.srv, NULL, 0);
    slow = request(&w, get, 4, NULL, 0, NULL, 0, NULL);
    get[3].value = (uint8_t *)"/small";
    get[3].valuelen = 6;
    request(&w, get, 4, NULL, 0, NULL, 0, NULL);
    pump(&w);
    nghttp2_submit_goaway(w.srv, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(w.srv),
                          NGHTTP2_ENHANCE_YOUR_CALM, (const uint8_t *)"calm\ndown", 9);
    pump(&w);
    exp_error(&w, slow,
              "connection closed after GOAWAY from server: ENHANCE_YOUR_CALM (calm.down)");
    check_world(&w, 0xf, 1);
    write_seed(&w, "goaway-error.bin", 0);

    /* The caller's reason wins. */
    {
        got_t g;
        http2_conn_t *c;

        got_init(&g);
        c = decoder_for(&w, &g, 0);
        CHECK_EQ_INT(feed_world(&w, c, MODE_CHUNKS, 1), 0);
        http2_conn_finish(c, "TLS alert: bad record mac", 5);
        http2_conn_finish(c, "twice", 6);
        CHECK_EQ_INT(g.n, 2);
        CHECK(g.n == 2 && g.ex[1]->stream_id == (uint32_t)slow && g.ex[1]->error &&
              strcmp(g.ex[1]->error, "TLS alert: bad record mac") == 0);
        CHECK(g.n == 2 && g.ex[0]->error == NULL);
        http2_conn_free(c);
        got_free(&g);
    }
    world_free(&w);
}

/* Bodies beyond max_body are counted, not kept. */
static void scenario_max_body(void)
{
    static const nghttp2_nv get[] = {NV(":method", "GET"), NV(":scheme", "https"),
                                     NV(":authority", "example.com"), NV(":path", "/big")};
    world_t w;
    got_t g;
    http2_conn_t *c;

    world_init(&w, "max-body", 1, 0);
    settings(w.cli, NULL, 0);
    settings(w.srv, NULL, 0);
    request(&w, get, 4, NULL, 0, NULL, 0, NULL);
    pump(&w);
    got_init(&g);
    c = decoder_for(&w, &g, 1000);
    CHECK_EQ_INT(feed_world(&w, c, MODE_RANDOM, 3), 0);
    http2_conn_finish(c, NULL, 0);
    CHECK_EQ_INT(g.n, 1);
    if (g.n == 1) {
        CHECK_EQ_INT(g.ex[0]->resp.body_len, 1000);
        CHECK_EQ_INT(g.ex[0]->resp.body_total, 300000);
        CHECK_EQ_INT(g.ex[0]->resp.body_truncated, 1);
        CHECK(memcmp(g.ex[0]->resp.body, w.exp[1]->resp.body, 1000) == 0);
        CHECK(g.ex[0]->resp.wire_body_size > 300000); /* padding counts on the wire */
    }
    http2_conn_free(c);
    got_free(&g);
    world_free(&w);
}

/* ---- hand-built frames ---- */

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static void frame(bytes_t *b, int type, int flags, uint32_t sid, const void *p, size_t n)
{
    uint8_t h[9] = {(uint8_t)(n >> 16),   (uint8_t)(n >> 8),   (uint8_t)n,
                    (uint8_t)type,        (uint8_t)flags,      (uint8_t)(sid >> 24),
                    (uint8_t)(sid >> 16), (uint8_t)(sid >> 8), (uint8_t)sid};

    b_add(b, h, 9);
    b_add(b, p, n);
}

static void settings_frame(bytes_t *b, uint16_t id, uint32_t v)
{
    uint8_t e[6] = {(uint8_t)(id >> 8), (uint8_t)id,       (uint8_t)(v >> 24),
                    (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

    frame(b, 4, 0, 0, e, id ? 6 : 0);
}

/* :method GET, :path /, :scheme http as static-table indexes. */
static const uint8_t GET_BLOCK[] = {0x82, 0x84, 0x86};
/* :status 200 */
static const uint8_t S200_BLOCK[] = {0x88};

typedef struct raw {
    int dir[64];
    bytes_t b[64];
    uint64_t ts[64];
    int n;
} raw_t;

static bytes_t *raw_step(raw_t *r, int dir, uint64_t ts)
{
    r->dir[r->n] = dir;
    r->ts[r->n] = ts;
    memset(&r->b[r->n], 0, sizeof(bytes_t));
    return &r->b[r->n++];
}

/* Client preface + SETTINGS, server SETTINGS. */
static void raw_start(raw_t *r)
{
    bytes_t *b;

    r->n = 0;
    b = raw_step(r, REQ, 10);
    b_add(b, PREFACE, 24);
    settings_frame(b, 0, 0);
    settings_frame(raw_step(r, RESP, 20), 0, 0);
}

/* Feeds every step (then finish); returns the first feed error. */
static int raw_run(raw_t *r, got_t *g, const char *finish_error)
{
    http2_conn_t *c = http2_conn_new(&g_cb, g, 0);
    int first = 0;

    for (int i = 0; i < r->n; i++) {
        int ret = http2_conn_feed(c, r->dir[i], r->b[i].p, r->b[i].len, r->ts[i]);

        if (ret < 0 && !first)
            first = ret;
    }
    http2_conn_finish(c, finish_error, 1);
    http2_conn_free(c);
    for (int i = 0; i < r->n; i++)
        free(r->b[i].p);
    r->n = 0;
    return first;
}

/* One protocol error: the feed fails with -EBADMSG, on_error once with text. */
static void expect_fail(raw_t *r, const char *name, const char *text)
{
    got_t g;
    int ret;

    got_init(&g);
    ret = raw_run(r, &g, NULL);
    CHECK_EQ_INT(ret, -EBADMSG);
    CHECK_EQ_INT(g.errors, 1);
    if (!strstr(g.error, text))
        fprintf(stderr, "%s: error \"%s\" lacks \"%s\"\n", name, g.error, text);
    CHECK(strstr(g.error, text) != NULL);
    got_free(&g);
}

static void test_errors(void)
{
    raw_t *r = calloc(1, sizeof(*r));
    bytes_t *b;
    uint8_t big[16385] = {0};

    /* Not the preface. */
    b_add(raw_step(r, REQ, 1), "GET / HTTP/1.1\r\n\r\n", 18);
    expect_fail(r, "preface", "preface");

    /* Client's first frame is not SETTINGS. */
    b = raw_step(r, REQ, 1);
    b_add(b, PREFACE, 24);
    frame(b, 6, 0, 0, "12345678", 8);
    expect_fail(r, "client-first", "client preface");

    /* Server's first frame is not SETTINGS. */
    raw_step(r, REQ, 1);
    b_add(&r->b[0], PREFACE, 24);
    frame(raw_step(r, RESP, 2), 6, 0, 0, "12345678", 8);
    expect_fail(r, "server-first", "server preface");

    /* Too large for the peer's SETTINGS_MAX_FRAME_SIZE; fine once it allows it. */
    raw_start(r);
    frame(raw_step(r, RESP, 30), 0, 0, 1, big, 16385);
    expect_fail(r, "frame-size", "exceeds SETTINGS_MAX_FRAME_SIZE 16384");
    raw_start(r);
    settings_frame(raw_step(r, REQ, 25), 5, 16385);
    frame(raw_step(r, RESP, 30), 0, 0, 1, big, 16385);
    {
        got_t g;

        got_init(&g);
        CHECK_EQ_INT(raw_run(r, &g, NULL), 0);
        CHECK_EQ_INT(g.errors, 0);
        got_free(&g);
    }

    /* SETTINGS_MAX_FRAME_SIZE out of range, a SETTINGS of 5 bytes. */
    raw_start(r);
    settings_frame(raw_step(r, REQ, 25), 5, 100);
    expect_fail(r, "max-frame-range", "out of range");
    raw_start(r);
    frame(raw_step(r, REQ, 25), 4, 0, 0, "12345", 5);
    expect_fail(r, "settings-len", "SETTINGS frame of 5 bytes");

    /* Frames on the wrong stream, of the wrong size. */
    raw_start(r);
    frame(raw_step(r, REQ, 25), 0, 0, 0, "x", 1);
    expect_fail(r, "data-0", "on stream 0");
    raw_start(r);
    frame(raw_step(r, REQ, 25), 6, 0, 1, "12345678", 8);
    expect_fail(r, "ping-1", "on stream 1");
    raw_start(r);
    frame(raw_step(r, REQ, 25), 3, 0, 1, "123", 3);
    expect_fail(r, "rst-len", "with 3 bytes");

    /* A header block interrupted, a CONTINUATION out of nowhere. */
    raw_start(r);
    b = raw_step(r, REQ, 25);
    frame(b, 1, 0, 1, GET_BLOCK, 2);
    frame(b, 6, 0, 0, "12345678", 8);
    expect_fail(r, "interrupted", "interrupted");
    raw_start(r);
    frame(raw_step(r, REQ, 25), 9, 4, 1, GET_BLOCK, 3);
    expect_fail(r, "continuation", "CONTINUATION frame without a header block");

    /* Padding longer than the frame. */
    raw_start(r);
    b = raw_step(r, REQ, 25);
    frame(b, 1, 4, 1, GET_BLOCK, 3);
    frame(b, 0, 8, 1,
          "\x05"
          "ab",
          3);
    expect_fail(r, "padding", "more padding than payload");

    /* PUSH_PROMISE from the client; a client stream with an even id. */
    raw_start(r);
    frame(raw_step(r, REQ, 25), 5, 4, 1, "\x00\x00\x00\x02\x82", 5);
    expect_fail(r, "client-push", "PUSH_PROMISE from the client");
    raw_start(r);
    frame(raw_step(r, REQ, 25), 1, 5, 2, GET_BLOCK, 3);
    expect_fail(r, "even", "even id");

    /* HPACK garbage; an invalid promised stream. */
    raw_start(r);
    frame(raw_step(r, REQ, 25), 1, 5, 1, "\xff\xff\xff\xff\xff", 5);
    expect_fail(r, "hpack", "HPACK decoding failed");
    raw_start(r);
    frame(raw_step(r, REQ, 25), 1, 5, 1, GET_BLOCK, 3);
    frame(raw_step(r, RESP, 26), 5, 4, 1, "\x00\x00\x00\x03\x82", 5);
    expect_fail(r, "promise-odd", "invalid promised stream 3");
    free(r);
}

/* No connection error, n exchanges out (in g, for the caller to check and free). */
static void expect_clean(raw_t *r, got_t *g, size_t n)
{
    got_init(g);
    CHECK_EQ_INT(raw_run(r, g, NULL), 0);
    CHECK_EQ_INT(g->errors, 0);
    CHECK_EQ_INT(g->n, n);
}

static void test_limits(void)
{
    raw_t *r = calloc(1, sizeof(*r));
    bytes_t *b, blk = {0};
    uint8_t *junk = calloc(1, 16384);
    got_t g;

    /* HPACK bomb: one 4 KiB table entry referenced 300 times. The fields past 1 MiB
       (decoded) are dropped and the exchange says so; the connection goes on, and stream
       3's reference to the same entry shows the dynamic table stayed right. */
    raw_start(r);
    b_add(&blk, GET_BLOCK, 3);
    b_add(&blk, "\x40\x06x-bomb\x7f\xa1\x1e", 11);
    for (int i = 0; i < 4000; i++)
        b_add(&blk, "a", 1);
    for (int i = 0; i < 300; i++)
        b_add(&blk, "\xbe", 1);
    b = raw_step(r, REQ, 25);
    frame(b, 1, 5, 1, blk.p, blk.len);
    frame(b, 1, 5, 3, "\x82\x84\x86\xbe", 4);
    expect_clean(r, &g, 2);
    for (size_t i = 0; i < g.n; i++) {
        http_exchange_t *ex = g.ex[i];
        size_t bytes = 0;

        for (size_t k = 0; k < ex->req.nheaders; k++)
            bytes += strlen(ex->req.headers[k].name) + strlen(ex->req.headers[k].value) + 32;
        if (ex->stream_id == 1) {
            CHECK(ex->error && strstr(ex->error, "more than 1 MiB"));
            /* as many whole fields as 1 MiB holds: the 3 of GET_BLOCK take 123 bytes,
               each x-bomb 6 + 4000 + 32 */
            CHECK_EQ_INT(ex->req.nheaders, 3 + (1024 * 1024 - 123) / 4038);
            CHECK(bytes <= 1024 * 1024 && bytes + 4038 > 1024 * 1024);
        } else {
            CHECK_EQ_INT(ex->stream_id, 3);
            CHECK(!ex->error || !strstr(ex->error, "1 MiB"));
            CHECK_EQ_INT(ex->req.nheaders, 4);
            CHECK(ex->req.nheaders == 4 && strcmp(ex->req.headers[3].name, "x-bomb") == 0 &&
                  strlen(ex->req.headers[3].value) == 4000);
        }
    }
    got_free(&g);
    /* ... and 200 references are fine. */
    raw_start(r);
    frame(raw_step(r, REQ, 25), 1, 5, 1, blk.p, blk.len - 100);
    got_init(&g);
    CHECK_EQ_INT(raw_run(r, &g, NULL), 0);
    CHECK_EQ_INT(g.n, 1);
    CHECK(g.n == 1 && g.ex[0]->req.nheaders == 3 + 201 &&
          (!g.ex[0]->error || !strstr(g.ex[0]->error, "1 MiB")));
    got_free(&g);

    /* A header block of 300 KB on the wire (HEADERS and 18 CONTINUATION frames, a field
       cut across each boundary): decoded as it comes, kept whole (it is under 1 MiB), and
       stream 3 after it is read too. */
    raw_start(r);
    blk.len = 0;
    b_add(&blk, GET_BLOCK, 3);
    for (int i = 0; i < 20; i++) {
        char name[8];

        snprintf(name, sizeof(name), "x-%02d", i);
        b_add(&blk, "\x00\x04", 2);
        b_add(&blk, name, 4);
        b_add(&blk, "\x7f\x99\x74", 3); /* 127 + 0x19 + (0x74 << 7) = 15,000 */
        for (int k = 0; k < 15000; k++)
            b_add(&blk, "v", 1);
    }
    CHECK(blk.len > 256 * 1024);
    b = raw_step(r, REQ, 25);
    for (size_t off = 0; off < blk.len; off += 16384) {
        size_t n = blk.len - off < 16384 ? blk.len - off : 16384;
        int last = off + n == blk.len;

        frame(b, off == 0 ? 1 : 9, (off == 0 ? 1 : 0) | (last ? 4 : 0), 1, blk.p + off, n);
    }
    frame(b, 1, 5, 3, GET_BLOCK, 3);
    expect_clean(r, &g, 2);
    for (size_t i = 0; i < g.n; i++) {
        http_exchange_t *ex = g.ex[i];

        CHECK(!ex->error || !strstr(ex->error, "1 MiB"));
        CHECK_EQ_INT(ex->req.nheaders, ex->stream_id == 1 ? 23 : 3);
        if (ex->stream_id == 1 && ex->req.nheaders == 23)
            CHECK(strcmp(ex->req.headers[22].name, "x-19") == 0 &&
                  strlen(ex->req.headers[22].value) == 15000);
    }
    got_free(&g);

    /* 10,000 open streams are tracked; the 10,001st is a connection error,
       and the 10,000 come out with finish. */
    raw_start(r);
    b = raw_step(r, REQ, 25);
    for (uint32_t i = 0; i <= HTTP2_MAX_STREAMS; i++)
        frame(b, 1, 4, 2 * i + 1, GET_BLOCK, 3);
    got_init(&g);
    CHECK_EQ_INT(raw_run(r, &g, NULL), -EBADMSG);
    CHECK_EQ_INT(g.errors, 1);
    CHECK(strstr(g.error, "more than 10000 open streams") != NULL);
    CHECK_EQ_INT(g.n, HTTP2_MAX_STREAMS);
    CHECK(g.n > 0 && g.ex[0]->error && strstr(g.ex[0]->error, "10000 open streams"));
    got_free(&g);
    free(junk);
    free(blk.p);
    free(r);
}

/* Control frame floods cost nothing; a request still works afterwards. */
static void test_floods(void)
{
    bytes_t b = {0}, s = {0};
    got_t g;
    http2_conn_t *c;
    uint8_t e[6] = {0, 1, 0, 0, 0x10, 0};
#ifdef HAVE_HEAP_STATS
    size_t before, after;
#endif

    got_init(&g);
    c = http2_conn_new(&g_cb, &g, 0);
    b_add(&b, PREFACE, 24);
    settings_frame(&b, 0, 0);
    settings_frame(&s, 0, 0);
    CHECK_EQ_INT(http2_conn_feed(c, REQ, b.p, b.len, 1), 0);
    CHECK_EQ_INT(http2_conn_feed(c, RESP, s.p, s.len, 2), 0);
    b.len = s.len = 0;
    /* Warm up: one exchange, so lazily allocated buffers exist. */
    frame(&b, 1, 5, 1, GET_BLOCK, 3);
    frame(&s, 1, 5, 1, S200_BLOCK, 1);
    CHECK_EQ_INT(http2_conn_feed(c, REQ, b.p, b.len, 3), 0);
    CHECK_EQ_INT(http2_conn_feed(c, RESP, s.p, s.len, 4), 0);
    b.len = s.len = 0;
    for (uint32_t i = 0; i < 10000; i++) {
        uint8_t rst[4] = {0, 0, 0, 8}, wu[4] = {0, 0, 1, 0}, pri[5] = {0, 0, 0, 1, 16};
        uint32_t sid = 2 * i + 1001;

        frame(&b, 6, 0, 0, "pingping", 8);
        frame(&s, 6, 1, 0, "pingping", 8);
        frame(&b, 4, 0, 0, e, 6);
        frame(&s, 4, 1, 0, NULL, 0);
        frame(&b, 3, 0, sid, rst, 4);
        frame(&s, 3, 0, sid, rst, 4);
        frame(&b, 8, 0, 0, wu, 4);
        frame(&b, 8, 0, sid, wu, 4);
        frame(&b, 2, 0, sid, pri, 5);
        frame(&b, 0xfa, 0, sid, "unknown frame type", 18);
    }
    /* The test's own buffers are built before the heap is measured. */
#ifdef HAVE_HEAP_STATS
    before = __sanitizer_get_current_allocated_bytes();
#endif
    for (int round = 0; round < 10; round++) {
        CHECK_EQ_INT(http2_conn_feed(c, REQ, b.p, b.len, 10 + round), 0);
        CHECK_EQ_INT(http2_conn_feed(c, RESP, s.p, s.len, 10 + round), 0);
    }
#ifdef HAVE_HEAP_STATS
    after = __sanitizer_get_current_allocated_bytes();
    if (after > before + 4096)
        fprintf(stderr, "floods: heap grew from %zu to %zu\n", before, after);
    CHECK(after <= before + 4096);
#endif
    b.len = s.len = 0;
    frame(&b, 1, 5, 3, GET_BLOCK, 3);
    frame(&s, 1, 5, 3, S200_BLOCK, 1);
    CHECK_EQ_INT(http2_conn_feed(c, REQ, b.p, b.len, 100), 0);
    CHECK_EQ_INT(http2_conn_feed(c, RESP, s.p, s.len, 101), 0);
    CHECK_EQ_INT(g.errors, 0);
    CHECK_EQ_INT(g.n, 2);
    CHECK(g.n == 2 && g.ex[1]->stream_id == 3 && g.ex[1]->status == 200 && !g.ex[1]->error);
    http2_conn_finish(c, NULL, 200);
    http2_conn_free(c);
    got_free(&g);
    free(b.p);
    free(s.p);
}

/* Exact times, resets and the corner cases of stream state. */
static void test_streams(void)
{
    raw_t *r = calloc(1, sizeof(*r));
    bytes_t *b;
    got_t g;

    /* A HEADERS frame split over two feeds, a response over two more. */
    raw_start(r);
    b = raw_step(r, REQ, 100);
    frame(b, 1, 5, 1, GET_BLOCK, 3);
    r->b[r->n - 1].len = 5;
    b_add(raw_step(r, REQ, 150), "\x00\x00\x00\x01\x82\x84\x86", 7);
    b = raw_step(r, RESP, 200);
    frame(b, 1, 4, 1, S200_BLOCK, 1);
    frame(raw_step(r, RESP, 300), 0, 1, 1, "body", 4);
    /* Stream 3: the server answers before the request ends, then resets it
       with NO_ERROR: complete, no error. Stream 5: reset by the server with
       REFUSED_STREAM. Stream 7: open at the end. */
    b = raw_step(r, REQ, 400);
    frame(b, 1, 4, 3, GET_BLOCK, 3);
    frame(b, 0, 0, 3, "part", 4);
    frame(b, 1, 4, 5, GET_BLOCK, 3);
    frame(b, 1, 4, 7, GET_BLOCK, 3);
    b = raw_step(r, RESP, 500);
    frame(b, 1, 5, 3, S200_BLOCK, 1);
    frame(b, 3, 0, 3, "\x00\x00\x00\x00", 4);
    frame(b, 3, 0, 5, "\x00\x00\x00\x07", 4);
    frame(b, 3, 0, 99, "\x00\x00\x00\x08", 4); /* unknown stream: ignored */
    /* Stream 9: an empty header block; stream 11: DATA after END_STREAM is ignored. */
    b = raw_step(r, REQ, 600);
    frame(b, 1, 5, 9, NULL, 0);
    frame(b, 1, 5, 11, GET_BLOCK, 3);
    frame(b, 0, 1, 11, "late", 4);
    frame(raw_step(r, RESP, 700), 1, 5, 9, S200_BLOCK, 1);
    got_init(&g);
    CHECK_EQ_INT(raw_run(r, &g, NULL), 0);
    CHECK_EQ_INT(g.errors, 0);
    CHECK_EQ_INT(g.n, 6);
    if (g.n == 6) {
        http_exchange_t *x = g.ex[0];

        CHECK_EQ_INT(x->stream_id, 1);
        CHECK_EQ_INT(x->t_req_start, 100);
        CHECK_EQ_INT(x->t_req_end, 150);
        CHECK_EQ_INT(x->t_resp_start, 200);
        CHECK_EQ_INT(x->t_resp_end, 300);
        CHECK_EQ_STR(x->method, "GET");
        CHECK_EQ_STR(x->target, "/");
        CHECK_EQ_INT(x->req.nheaders, 3);
        CHECK(x->req.nheaders == 3 && strcmp(x->req.headers[2].name, ":scheme") == 0);
        CHECK_EQ_INT(x->resp.body_len, 4);
        CHECK_EQ_INT(x->req.headers_size, -1);
        x = g.ex[1];
        CHECK_EQ_INT(x->stream_id, 3);
        CHECK(x->error == NULL);
        CHECK_EQ_INT(x->resp.complete, 1);
        CHECK_EQ_INT(x->req.complete, 0);
        CHECK_EQ_INT(x->req.body_len, 4);
        x = g.ex[2];
        CHECK_EQ_INT(x->stream_id, 5);
        CHECK_EQ_STR(x->error, "stream reset by server: REFUSED_STREAM");
        x = g.ex[3];
        CHECK_EQ_INT(x->stream_id, 9);
        CHECK_EQ_STR(x->method, "");
        CHECK_EQ_INT(x->req.nheaders, 0);
        CHECK_EQ_INT(x->status, 200);
        x = g.ex[4];
        CHECK_EQ_INT(x->stream_id, 7);
        CHECK_EQ_STR(x->error, "connection closed before the response");
        x = g.ex[5];
        CHECK_EQ_INT(x->stream_id, 11);
        CHECK_EQ_INT(x->req.body_len, 0);
        CHECK_EQ_INT(x->req.complete, 1);
        CHECK_EQ_STR(x->error, "connection closed before the response");
    }
    got_free(&g);

    /* The server answers a stream the client has reset: the block is decoded
       all the same, as the next one refers to its HPACK table entry. Stream
       3 then gets HEADERS after its end (ignored); stream 5 has its response
       but not the end of its request when the connection ends. */
    {
        nghttp2_hd_deflater *def;
        uint8_t blk1[128], blk2[128];
        nghttp2_nv nv[] = {NV(":status", "200"), NV("x-custom", "hello hpack")};
        ssize_t n1, n2;

        if (nghttp2_hd_deflate_new(&def, 4096) != 0)
            die("nghttp2_hd_deflate_new");
        n1 = nghttp2_hd_deflate_hd(def, blk1, sizeof(blk1), nv, 2);
        n2 = nghttp2_hd_deflate_hd(def, blk2, sizeof(blk2), nv, 2);
        nghttp2_hd_deflate_del(def);
        CHECK(n1 > 0 && n2 > 0 && n2 < n1);
        raw_start(r);
        b = raw_step(r, REQ, 25);
        frame(b, 1, 5, 1, GET_BLOCK, 3);
        frame(b, 3, 0, 1, "\x00\x00\x00\x08", 4);
        frame(b, 1, 5, 3, GET_BLOCK, 3);
        frame(b, 1, 4, 5, GET_BLOCK, 3);
        b = raw_step(r, RESP, 30);
        frame(b, 1, 5, 1, blk1, (size_t)n1);
        frame(b, 1, 5, 3, blk2, (size_t)n2);
        frame(b, 1, 5, 3, S200_BLOCK, 1);
        frame(b, 1, 5, 5, S200_BLOCK, 1);
        got_init(&g);
        CHECK_EQ_INT(raw_run(r, &g, NULL), 0);
        CHECK_EQ_INT(g.errors, 0);
        CHECK_EQ_INT(g.n, 3);
        if (g.n == 3) {
            CHECK_EQ_INT(g.ex[0]->stream_id, 1);
            CHECK_EQ_STR(g.ex[0]->error, "stream reset by client: CANCEL");
            CHECK_EQ_INT(g.ex[1]->stream_id, 3);
            CHECK_EQ_INT(g.ex[1]->resp.nheaders, 2);
            CHECK(g.ex[1]->resp.nheaders == 2 &&
                  strcmp(g.ex[1]->resp.headers[1].value, "hello hpack") == 0);
            CHECK_EQ_INT(g.ex[1]->resp.ntrailers, 0);
            CHECK_EQ_INT(g.ex[2]->stream_id, 5);
            CHECK_EQ_STR(g.ex[2]->error, "connection closed before the request ended");
        }
        got_free(&g);
    }

    /* A connection error: the open streams carry its text. */
    raw_start(r);
    frame(raw_step(r, REQ, 25), 1, 4, 1, GET_BLOCK, 3);
    frame(raw_step(r, REQ, 26), 0, 0, 0, "x", 1);
    got_init(&g);
    CHECK_EQ_INT(raw_run(r, &g, NULL), -EBADMSG);
    CHECK_EQ_INT(g.n, 1);
    CHECK(g.n == 1 && g.ex[0]->error && strstr(g.ex[0]->error, "stream 0"));
    got_free(&g);

    /* A GOAWAY from the client leaves pushed streams above its last unprocessed. */
    raw_start(r);
    frame(raw_step(r, REQ, 25), 1, 5, 1, GET_BLOCK, 3);
    b = raw_step(r, RESP, 30);
    frame(b, 5, 4, 1, "\x00\x00\x00\x02\x82\x84\x86", 7);
    frame(b, 5, 4, 1, "\x00\x00\x00\x04\x82\x84\x86", 7);
    frame(b, 1, 4, 2, S200_BLOCK, 1);
    frame(raw_step(r, REQ, 40), 7, 0, 0, "\x00\x00\x00\x02\x00\x00\x00\x00", 8);
    frame(raw_step(r, RESP, 50), 0, 1, 2, "css", 3);
    got_init(&g);
    CHECK_EQ_INT(raw_run(r, &g, NULL), 0);
    CHECK_EQ_INT(g.n, 3);
    if (g.n == 3) {
        CHECK_EQ_INT(g.ex[0]->stream_id, 4);
        CHECK_EQ_INT(g.ex[0]->pushed, 1);
        CHECK_EQ_STR(g.ex[0]->error, "stream not processed: GOAWAY from client (NO_ERROR, "
                                     "last stream 2)");
        CHECK_EQ_INT(g.ex[0]->t_req_start, 30);
        CHECK_EQ_INT(g.ex[1]->stream_id, 2);
        CHECK(g.ex[1]->error == NULL);
        CHECK_EQ_INT(g.ex[1]->resp.body_len, 3);
        CHECK_EQ_INT(g.ex[2]->stream_id, 1);
    }
    got_free(&g);
    free(r);
}

/* HTTP2-Settings counts as the client's first SETTINGS: MAX_FRAME_SIZE. */
static void test_upgrade_frames(void)
{
    static uint8_t data[20000];

    for (int with = 0; with < 2; with++) {
        /* MAX_FRAME_SIZE 20000 and HEADER_TABLE_SIZE 65534; or 8192 only. */
        http_exchange_t *req = upgrade_request(with ? "AAUAAE4gAAEAAP_-" : "AAEAACAA");
        got_t g;
        http2_conn_t *c;
        bytes_t b = {0};

        got_init(&g);
        c = http2_conn_new_upgrade(&g_cb, &g, 0, req);
        settings_frame(&b, 0, 0);
        frame(&b, 1, 4, 1, S200_BLOCK, 1);
        frame(&b, 0, 1, 1, data, sizeof(data));
        CHECK_EQ_INT(http2_conn_feed(c, RESP, b.p, b.len, 600), with ? 0 : -EBADMSG);
        CHECK_EQ_INT(g.errors, with ? 0 : 1);
        CHECK_EQ_INT(g.n, with ? 1 : 0);
        if (with && g.n == 1) {
            CHECK_EQ_INT(g.ex[0]->resp.body_len, sizeof(data));
            CHECK_EQ_INT(g.ex[0]->t_resp_end, 600);
            CHECK_EQ_INT(g.ex[0]->t_req_start, 500);
        }
        http2_conn_finish(c, NULL, 700);
        CHECK_EQ_INT(g.n, 1);
        http2_conn_free(c);
        got_free(&g);
        http_exchange_free(req);
        free(b.p);
    }
}

static void test_api(void)
{
    http2_conn_t *c;
    bytes_t b = {0};

    CHECK_EQ_INT(http2_is_preface(PREFACE, 24), 1);
    CHECK_EQ_INT(http2_is_preface("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nxyz", 27), 1);
    CHECK_EQ_INT(http2_is_preface("PRI *", 5), -EAGAIN);
    CHECK_EQ_INT(http2_is_preface("", 0), -EAGAIN);
    CHECK_EQ_INT(http2_is_preface("GET / HTTP/1.1", 14), 0);
    CHECK_EQ_STR(http2_error_name(8), "CANCEL");
    CHECK_EQ_STR(http2_error_name(0xd), "HTTP_1_1_REQUIRED");
    CHECK(http2_error_name(0xe) == NULL);
    http2_conn_free(NULL);

    /* No callbacks at all: exchanges are freed by the decoder. */
    c = http2_conn_new(NULL, NULL, 0);
    CHECK(c != NULL);
    CHECK_EQ_INT(http2_conn_feed(c, 2, "x", 1, 0), -EINVAL);
    b_add(&b, PREFACE, 24);
    settings_frame(&b, 0, 0);
    frame(&b, 1, 5, 1, GET_BLOCK, 3);
    frame(&b, 1, 4, 3, GET_BLOCK, 3);
    CHECK_EQ_INT(http2_conn_feed(c, REQ, b.p, b.len, 1), 0);
    b.len = 0;
    settings_frame(&b, 0, 0);
    frame(&b, 1, 5, 1, S200_BLOCK, 1);
    CHECK_EQ_INT(http2_conn_feed(c, RESP, b.p, b.len, 2), 0);
    CHECK_EQ_INT(http2_conn_feed(c, RESP, "", 0, 3), 0);
    http2_conn_free(c); /* stream 3 still open: freed here */

    /* An upgrade whose HTTP2-Settings is garbage still works. */
    {
        http_exchange_t *req = upgrade_request("!!not base64!!");
        got_t g;

        got_init(&g);
        c = http2_conn_new_upgrade(&g_cb, &g, 0, req);
        CHECK(c != NULL);
        CHECK_EQ_INT(g.begins, 0); /* not before the first feed */
        http2_conn_finish(c, NULL, 1);
        CHECK_EQ_INT(g.begins, 1);
        CHECK_EQ_INT(g.heads, 1);
        CHECK_EQ_INT(g.n, 1);
        CHECK(g.n == 1 && g.ex[0]->seq == 8 && g.ex[0]->stream_id == 1 && g.ex[0]->req_major == 1 &&
              g.ex[0]->req.complete && g.ex[0]->error);
        http2_conn_free(c);
        got_free(&g);
        http_exchange_free(req);
    }
    free(b.p);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write-seeds") == 0)
        seed_dir = argv[2];
    test_api();
    test_errors();
    test_limits();
    test_floods();
    test_streams();
    test_upgrade_frames();
    scenario_tiny();
    scenario_main();
    scenario_ws(0);
    scenario_ws(1);
    scenario_upgrade();
    scenario_goaway_error();
    scenario_max_body();
    return check_done();
}

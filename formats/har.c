/* SPDX-License-Identifier: MIT */
#include "har.h"

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "harjson.h"
#include "harmsg.h"

/* Escaped or base64 text goes to the sink in pieces of this size. */
#define HAR_CHUNK 65536
#define HAR_TAIL "]}}\n"

/* An entry printed while one before it is still missing (har_writer_order). */
typedef struct held {
    int64_t index;
    uint64_t complete;          /* usec: when its exchange ended */
    struct held *older, *newer; /* in the order they were held */
    char *data;                 /* the printed entry (owned) */
    size_t len;
} held_t;

struct har_writer {
    sink_t sink;
    uint64_t entries;
    int closed;
    int err; /* a failed write leaves the file broken: keep refusing */
    char *buf;
    jctx_t j; /* its buffer is kept from entry to entry */
    /* har_writer_order */
    int ordered;
    uint64_t hold_usec, now;
    size_t held_max, held_bytes;
    int64_t next;  /* the index the file waits for */
    held_t **heap; /* by index, lowest first */
    size_t nheld, heap_cap;
    held_t *oldest, *newest;
};

/* Bodies larger than this are not held in memory (harmsg_body_view keeps them in place). */
#define HAR_HOLD_BODY_MAX (1u << 20)

/* ---- writing ---- */

static int sink_write(har_writer_t *w, const void *buf, size_t len)
{
    int r;

    if (w->err)
        return w->err;
    if (!len)
        return 0;
    r = w->sink.write(w->sink.opaque, buf, len);
    if (r < 0)
        w->err = r;
    return r;
}

static int stream_escaped(har_writer_t *w, const uint8_t *p, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char *b = w->buf;
    size_t o = 0;
    int r;

    for (size_t i = 0; i < len; i++) {
        uint8_t c = p[i];

        if (o > HAR_CHUNK - 8) {
            if ((r = sink_write(w, b, o)) < 0)
                return r;
            o = 0;
        }
        if (c == '"' || c == '\\') {
            b[o++] = '\\';
            b[o++] = (char)c;
        } else if (c >= 0x20) {
            b[o++] = (char)c;
        } else if (c == '\n') {
            b[o++] = '\\';
            b[o++] = 'n';
        } else if (c == '\r') {
            b[o++] = '\\';
            b[o++] = 'r';
        } else if (c == '\t') {
            b[o++] = '\\';
            b[o++] = 't';
        } else {
            memcpy(b + o, "\\u00", 4);
            b[o + 4] = hex[c >> 4];
            b[o + 5] = hex[c & 15];
            o += 6;
        }
    }
    return sink_write(w, b, o);
}

static const char b64_tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Every 12 bits as their two base64 characters: half the lookups per triple (bodies of
   binary downloads are most of a HAR's bytes). Made once, by the first writer. */
static char b64_pairs[4096][2];
static pthread_once_t b64_once = PTHREAD_ONCE_INIT;

static void b64_pairs_init(void)
{
    for (int i = 0; i < 4096; i++) {
        b64_pairs[i][0] = b64_tab[i >> 6];
        b64_pairs[i][1] = b64_tab[i & 63];
    }
}

/* Encodes up to 3 bytes as 4 base64 characters. */
static void b64_quad(const uint8_t *p, size_t n, char *out)
{
    const char *tab = b64_tab;
    uint32_t v = (uint32_t)p[0] << 16;

    if (n > 1)
        v |= (uint32_t)p[1] << 8;
    if (n > 2)
        v |= p[2];
    out[0] = tab[v >> 18 & 63];
    out[1] = tab[v >> 12 & 63];
    out[2] = n > 1 ? tab[v >> 6 & 63] : '=';
    out[3] = n > 2 ? tab[v & 63] : '=';
}

/* Encodes the whole triples of p[0..len) into out; returns how many bytes it took. */
static size_t b64_triples(const uint8_t *p, size_t len, char *out)
{
    size_t i = 0;

    pthread_once(&b64_once, b64_pairs_init);
    /* Two triples per 8-byte load, while 8 bytes are there to load. */
    for (; i + 8 <= len; i += 6, out += 8) {
        uint64_t v;

        memcpy(&v, p + i, 8);
        v = be64toh(v);
        memcpy(out, b64_pairs[v >> 52], 2);
        memcpy(out + 2, b64_pairs[v >> 40 & 4095], 2);
        memcpy(out + 4, b64_pairs[v >> 28 & 4095], 2);
        memcpy(out + 6, b64_pairs[v >> 16 & 4095], 2);
    }
    for (; i + 3 <= len; i += 3, out += 4) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

        memcpy(out, b64_pairs[v >> 12], 2);
        memcpy(out + 2, b64_pairs[v & 4095], 2);
    }
    return i;
}

static int stream_base64(har_writer_t *w, const uint8_t *p, size_t len)
{
    /* Whole triples, a chunk's worth at a time, then the 1 or 2 bytes left. */
    const size_t per = HAR_CHUNK / 4 * 3;
    int r;

    while (len >= 3) {
        size_t n = b64_triples(p, len < per ? len : per, w->buf);

        if ((r = sink_write(w, w->buf, n / 3 * 4)) < 0)
            return r;
        p += n;
        len -= n;
    }
    if (len) {
        b64_quad(p, len, w->buf);
        return sink_write(w, w->buf, 4);
    }
    return 0;
}

/* A malloc'd base64 string of p. */
static char *base64_dup(const uint8_t *p, size_t len)
{
    char *out = malloc(len / 3 * 4 + 5), *o = out;

    if (!out)
        return NULL;
    size_t n = b64_triples(p, len, o);

    o += n / 3 * 4;
    if (n < len) {
        b64_quad(p + n, len - n, o);
        o += 4;
    }
    *o = '\0';
    return out;
}

/* Chrome's _webSocketMessages: text frames as text, the others base64. */
static void add_ws_messages(jctx_t *j, jnode_t entry, const http_exchange_t *ex)
{
    jnode_t arr;

    if (!ex->nws)
        return;
    arr = jarr(j, entry, "_webSocketMessages");
    for (size_t i = 0; i < ex->nws; i++) {
        const http_ws_message_t *m = &ex->ws[i];
        jnode_t o = jobj(j, arr, NULL);

        jstr(j, o, "type", m->send ? "send" : "receive");
        jnum(j, o, "time", (double)m->ts_usec / 1e6);
        jnum(j, o, "opcode", m->opcode);
        if (m->opcode == 1) {
            jstrn(j, o, "data", (const char *)m->data, m->len);
        } else {
            char *b64 = base64_dup(m->data, m->len);

            jstr(j, o, "data", b64 ? b64 : "");
            if (!b64)
                j->oom = 1;
            free(b64);
        }
    }
}

static int stream_text(har_writer_t *w, const har_text_t *t)
{
    int r;

    if ((r = sink_write(w, "\"", 1)) < 0)
        return r;
    r = t->base64 ? stream_base64(w, t->data, t->len) : stream_escaped(w, t->data, t->len);
    if (r < 0)
        return r;
    return sink_write(w, "\"", 1);
}

/* Writes the printed entry, streaming the bodies in where jbody marked them. */
static int emit(har_writer_t *w, const har_text_t *req, const har_text_t *resp)
{
    const jctx_t *j = &w->j;
    size_t at = 0;
    int r;

    for (int k = 0; k < 2; k++) {
        size_t ph = j->ph[k];

        if (!ph)
            continue;
        if ((r = sink_write(w, j->buf + at, ph - at)) < 0)
            return r;
        if ((r = stream_text(w, k ? resp : req)) < 0)
            return r;
        at = ph;
    }
    return sink_write(w, j->buf + at, j->len - at);
}

static double ms_span(uint64_t from, uint64_t to)
{
    return from && to > from ? (double)(to - from) / 1000.0 : 0;
}

static double opt_ms(double v)
{
    return isfinite(v) && v >= 0 ? v : -1;
}

/* serverIPAddress must be an address (the schema checks), without brackets or zone. */
static void add_server_ip(jctx_t *j, jnode_t entry, const char *ip)
{
    char buf[64];
    size_t len;
    unsigned char bin[16];

    if (ip[0] == '[')
        ip++;
    len = strcspn(ip, "]%");
    if (len >= sizeof(buf))
        return;
    memcpy(buf, ip, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET, buf, bin) == 1 || inet_pton(AF_INET6, buf, bin) == 1)
        jstr(j, entry, "serverIPAddress", buf);
}

/* Whole microseconds, so sums print as 1.234 and not 1.2340000000000002. Done by
   hand: the formats library links no libm. */
static double round_us(double ms)
{
    if (!(ms > 0) || ms > 1e12)
        return ms > 0 ? ms : 0;
    return (double)(int64_t)(ms * 1000.0 + 0.5) / 1000.0;
}

/* Prints e into w->j, its bodies to be streamed from reqt and respt (see emit). */
static int print_entry(har_writer_t *w, const har_entry_t *e, const body_view_t *reqv,
                       const body_view_t *respv, har_text_t *reqt, har_text_t *respt)
{
    const http_exchange_t *ex = e->ex;
    jctx_t *j = &w->j;
    jnode_t entry, t;
    char iso[96], *url;
    uint64_t started = e->started_usec ? e->started_usec : ex->t_req_start;
    const char *error = e->error ? e->error : ex->error;
    double send, wait = 0, receive = 0, total;

    jreset(j);
    url = harmsg_url(e);
    if (!url)
        return -ENOMEM;

    send = ms_span(ex->t_req_start, ex->t_req_end);
    if (ex->status) {
        wait = ms_span(ex->t_req_end, ex->t_resp_start);
        receive = ms_span(ex->t_resp_start, ex->t_resp_end);
    }
    /* ssl is part of connect already (HAR 1.2): not added again. */
    total = send + wait + receive;
    if (opt_ms(e->blocked) > 0)
        total += e->blocked;
    if (opt_ms(e->dns) > 0)
        total += e->dns;
    if (opt_ms(e->connect) > 0)
        total += e->connect;

    if (harmsg_iso_time(iso, (int64_t)(started / 1000000), (unsigned)(started / 1000 % 1000)) < 0)
        snprintf(iso, sizeof(iso), "1970-01-01T00:00:00.000Z");
    entry = jroot(j);
    jstr(j, entry, "startedDateTime", iso);
    jnum(j, entry, "time", round_us(total));
    harmsg_request(j, entry, e, url, reqv, reqt);
    harmsg_response(j, entry, e, respv, respt);
    jobj(j, entry, "cache");
    t = jobj(j, entry, "timings");
    jnum(j, t, "blocked", opt_ms(e->blocked));
    jnum(j, t, "dns", opt_ms(e->dns));
    jnum(j, t, "connect", opt_ms(e->connect));
    jnum(j, t, "ssl", opt_ms(e->ssl));
    jnum(j, t, "send", round_us(send));
    jnum(j, t, "wait", round_us(wait));
    jnum(j, t, "receive", round_us(receive));
    if (e->server_ip)
        add_server_ip(j, entry, e->server_ip);
    if (e->connection)
        jstr(j, entry, "connection", e->connection);
    add_ws_messages(j, entry, ex);
    if (e->index >= 0)
        jnum(j, entry, "_index", (double)e->index);
    if (e->has_pcapng) {
        jnode_t pc = jobj(j, entry, "_pcapng");

        jnum(j, pc, "interface", e->pcapng_interface);
        jnum(j, pc, "frame", (double)e->pcapng_frame);
        jnum(j, pc, "stream", (double)e->pcapng_stream);
    }
    if (error)
        jstr(j, entry, "_error", error);
    if (reqv->truncated || respv->truncated)
        jbool(j, entry, "_truncated", 1);
    if (e->pid > 0)
        jnum(j, entry, "_pid", (double)e->pid);
    if (e->process)
        jstr(j, entry, "_process", e->process);
    if (e->exe)
        jstr(j, entry, "_exe", e->exe);
    if (e->cmdline)
        jstr(j, entry, "_cmdline", e->cmdline);
    jend(j);
    free(url);
    return j->oom ? -ENOMEM : j->bad ? -EINVAL : 0;
}

/* After an entry's bytes: the closing bytes that keep the file whole, and the count. */
static int entry_written(har_writer_t *w)
{
    int r;

    if (w->sink.write_tail && (r = w->sink.write_tail(w->sink.opaque, HAR_TAIL, 4)) < 0) {
        w->err = r;
        return r;
    }
    w->entries++;
    return 0;
}

/* ---- order (har_writer_order) ---- */

static void heap_swap(held_t **h, size_t a, size_t b)
{
    held_t *t = h[a];

    h[a] = h[b];
    h[b] = t;
}

static int heap_push(har_writer_t *w, held_t *e)
{
    size_t i;

    if (w->nheld == w->heap_cap) {
        size_t cap = w->heap_cap ? w->heap_cap * 2 : 64;
        held_t **n = realloc(w->heap, cap * sizeof(*n));

        if (!n)
            return -ENOMEM;
        w->heap = n;
        w->heap_cap = cap;
    }
    i = w->nheld++;
    w->heap[i] = e;
    while (i > 0 && w->heap[(i - 1) / 2]->index > w->heap[i]->index) {
        heap_swap(w->heap, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    return 0;
}

static held_t *heap_pop(har_writer_t *w)
{
    held_t *top = w->heap[0];
    size_t i = 0;

    w->heap[0] = w->heap[--w->nheld];
    for (;;) {
        size_t l = 2 * i + 1, m = i;

        if (l < w->nheld && w->heap[l]->index < w->heap[m]->index)
            m = l;
        if (l + 1 < w->nheld && w->heap[l + 1]->index < w->heap[m]->index)
            m = l + 1;
        if (m == i)
            break;
        heap_swap(w->heap, i, m);
        i = m;
    }
    return top;
}

/* Writes the lowest held entry. Returns 0 or a negative errno. */
static int write_lowest(har_writer_t *w)
{
    held_t *h = heap_pop(w);
    int r = 0;

    if (h->older)
        h->older->newer = h->newer;
    else
        w->oldest = h->newer;
    if (h->newer)
        h->newer->older = h->older;
    else
        w->newest = h->older;
    w->held_bytes -= h->len;
    if (h->index >= w->next)
        w->next = h->index + 1;
    if (w->entries > 0)
        r = sink_write(w, ",", 1);
    if (r >= 0 && (r = sink_write(w, h->data, h->len)) >= 0)
        r = entry_written(w);
    free(h->data);
    free(h);
    return r < 0 ? r : 0;
}

/* Writes what no longer waits: the entries that are next in order, and those that
   waited too long or past the memory allowed, with every entry before them. */
static int drain(har_writer_t *w)
{
    int r;

    for (;;) {
        while (w->nheld && w->heap[0]->index <= w->next)
            if ((r = write_lowest(w)) < 0)
                return r;
        if (!w->oldest ||
            (w->oldest->complete + w->hold_usec > w->now && w->held_bytes <= w->held_max))
            return 0;
        for (int64_t upto = w->oldest->index; w->nheld && w->heap[0]->index <= upto;)
            if ((r = write_lowest(w)) < 0)
                return r;
    }
}

typedef struct membuf {
    char *p;
    size_t len, cap;
    int oom;
} membuf_t;

static int mem_write(void *opaque, const void *buf, size_t len)
{
    membuf_t *m = opaque;

    if (m->oom || mr_grow(&m->p, &m->cap, m->len + len, 4096, 0) < 0) {
        m->oom = 1;
        return 0;
    }
    memcpy(m->p + m->len, buf, len);
    m->len += len;
    return 0;
}

/* Keeps the printed entry until the ones before it are written. 0, or 1 when it
   could not be kept (no memory): the caller writes it now. */
static int hold(har_writer_t *w, const har_entry_t *e, const har_text_t *reqt,
                const har_text_t *respt)
{
    const http_exchange_t *ex = e->ex;
    membuf_t m = {0};
    sink_t saved = w->sink;
    uint64_t done = ex->t_req_start;
    held_t *h;

    w->sink = (sink_t){mem_write, NULL, &m};
    emit(w, reqt, respt); /* mem_write cannot fail */
    w->sink = saved;
    if (m.oom || !(h = malloc(sizeof(*h)))) {
        free(m.p);
        return 1;
    }
    h->data = m.p;
    h->len = m.len;
    h->index = e->index;
    if (ex->t_req_end > done)
        done = ex->t_req_end;
    if (ex->t_resp_end > done)
        done = ex->t_resp_end;
    h->complete = done;
    if (heap_push(w, h) < 0) {
        free(h->data);
        free(h);
        return 1;
    }
    h->newer = NULL;
    h->older = w->newest;
    if (w->newest)
        w->newest->newer = h;
    else
        w->oldest = h;
    w->newest = h;
    w->held_bytes += h->len;
    if (done > w->now)
        w->now = done;
    return 0;
}

int har_writer_add(har_writer_t *w, const har_entry_t *e)
{
    const http_exchange_t *ex = e->ex;
    body_view_t reqv, respv;
    har_text_t reqt = {0}, respt = {0};
    int r;

    if (w->err)
        return w->err;
    if (w->closed)
        return -EINVAL;
    if ((r = harmsg_body_view(&ex->req, &reqv)) < 0)
        return r;
    if ((r = harmsg_body_view(&ex->resp, &respv)) < 0) {
        harmsg_body_view_free(&reqv);
        return r;
    }
    if ((r = print_entry(w, e, &reqv, &respv, &reqt, &respt)) < 0)
        goto out;
    if (w->ordered && e->index > w->next) {
        if (reqv.len + respv.len <= HAR_HOLD_BODY_MAX && hold(w, e, &reqt, &respt) == 0) {
            r = drain(w);
            goto out;
        }
        /* Too big to keep in memory: written now, after every entry before it. */
        while (w->nheld && w->heap[0]->index < e->index)
            if ((r = write_lowest(w)) < 0)
                goto out;
    }
    if (w->entries > 0 && (r = sink_write(w, ",", 1)) < 0)
        goto out;
    if ((r = emit(w, &reqt, &respt)) < 0 || (r = entry_written(w)) < 0)
        goto out;
    if (w->ordered && e->index >= w->next) {
        w->next = e->index + 1;
        r = drain(w);
    }
out:
    harmsg_body_view_free(&reqv);
    harmsg_body_view_free(&respv);
    return r;
}

void har_writer_order(har_writer_t *w, uint64_t hold_usec, size_t max_bytes)
{
    w->ordered = 1;
    w->hold_usec = hold_usec;
    w->held_max = max_bytes;
}

int har_writer_release(har_writer_t *w, uint64_t now_usec)
{
    if (w->err)
        return w->err;
    if (now_usec > w->now)
        w->now = now_usec;
    return w->oldest ? drain(w) : 0;
}

size_t har_writer_held(const har_writer_t *w)
{
    return w->nheld;
}

har_writer_t *har_writer_new(const sink_t *sink, const char *creator_name,
                             const char *creator_version, int *err)
{
    har_writer_t *w = calloc(1, sizeof(*w));
    jctx_t *j;
    jnode_t log, creator;
    int r = -ENOMEM;

    if (!w)
        goto fail;
    j = &w->j;
    w->sink = *sink;
    w->buf = malloc(HAR_CHUNK);
    if (!w->buf)
        goto fail;
    /* The log up to its entries array, left open. */
    log = jobj(j, jroot(j), "log");
    jstr(j, log, "version", "1.2");
    creator = jobj(j, log, "creator");
    jstr(j, creator, "name", creator_name ? creator_name : "");
    jstr(j, creator, "version", creator_version ? creator_version : "");
    jarr(j, log, "pages");
    jarr(j, log, "entries");
    if (j->oom || j->bad)
        goto fail;
    if ((r = sink_write(w, j->buf, j->len)) < 0)
        goto fail;
    /* Even an empty recording is a complete HAR file. */
    if (w->sink.write_tail && (r = w->sink.write_tail(w->sink.opaque, HAR_TAIL, 4)) < 0)
        goto fail;
    return w;
fail:
    if (err)
        *err = r;
    har_writer_free(w);
    return NULL;
}

uint64_t har_writer_entries(const har_writer_t *w)
{
    return w->entries;
}

int har_writer_close(har_writer_t *w)
{
    int r;

    if (w->closed)
        return 0;
    while (w->nheld)
        if ((r = write_lowest(w)) < 0)
            return r;
    if ((r = sink_write(w, HAR_TAIL, 4)) < 0)
        return r;
    w->closed = 1;
    return 0;
}

void har_writer_free(har_writer_t *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->nheld; i++) {
        free(w->heap[i]->data);
        free(w->heap[i]);
    }
    free(w->heap);
    free(w->j.buf);
    free(w->buf);
    free(w);
}

/* SPDX-License-Identifier: MIT */
/* Unit tests for formats/tcpreasm.c: conversations made with tcpsynth (and
   hand-built segments) are fed in order, shuffled, duplicated, overlapping,
   without handshake, across sequence wrap-around, over every link type; RST,
   port reuse, gaps, limits. When tshark is installed, a capture written with
   our writer is read through pcapread + tcpreasm and compared with tshark's
   tcp.stream numbers and "follow,tcp,raw" bytes. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pcapng.h"
#include "pcapread.h"
#include "tcpreasm.h"
#include "tcpsynth.h"

#include "../check.h"
#include "bytes.h"

static void b_printf(bytes_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void b_printf(bytes_t *b, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    b_add(b, line, n < (int)sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* ---- packet lists ---- */

typedef struct pkt {
    uint32_t lt;
    uint8_t *d;
    size_t len;
} pkt_t;

typedef struct plist {
    pkt_t *v;
    size_t n, cap;
} plist_t;

static void pl_add2(plist_t *l, uint32_t lt, const void *a, size_t alen, const void *b, size_t blen)
{
    pkt_t *p;

    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = realloc(l->v, l->cap * sizeof(*l->v));
        if (!l->v)
            exit(2);
    }
    p = &l->v[l->n++];
    p->lt = lt;
    p->len = alen + blen;
    p->d = malloc(p->len ? p->len : 1);
    if (!p->d)
        exit(2);
    if (alen)
        memcpy(p->d, a, alen);
    if (blen)
        memcpy(p->d + alen, b, blen);
}

static void pl_add(plist_t *l, uint32_t lt, const void *a, size_t alen)
{
    pl_add2(l, lt, a, alen, NULL, 0);
}

static void pl_free(plist_t *l)
{
    size_t i;

    for (i = 0; i < l->n; i++)
        free(l->v[i].d);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

static int synth_emit(void *opaque, int dir, const uint8_t *hdr, size_t hdrlen,
                      const uint8_t *payload, size_t plen)
{
    pl_add2(opaque, TCPREASM_LINKTYPE_RAW, hdr, hdrlen, payload, plen);
    return 0;
}

static tcpsynth_endpoint_t ep4(uint8_t last, uint16_t port)
{
    tcpsynth_endpoint_t e = {AF_INET, {10, 0, 0, last}, port};

    return e;
}

static tcpsynth_endpoint_t ep6(uint8_t last, uint16_t port)
{
    tcpsynth_endpoint_t e = {AF_INET6, {0x20, 0x01, 0x0d, 0xb8}, port};

    e.addr[15] = last;
    return e;
}

/* Deterministic test data. */
static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    size_t i;

    for (i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

static uint8_t req[700], resp[5000];

/*
 * A whole conversation: handshake, request (mss-sized), response, FINs.
 * Packets: 3 handshake, then per segment data + ACK, then FIN, ACK, FIN, ACK.
 */
static void conversation(plist_t *l, tcpsynth_endpoint_t c, tcpsynth_endpoint_t s, uint32_t isn_c,
                         uint32_t isn_s, uint32_t mss, int fin)
{
    tcpsynth_t t;

    CHECK_EQ_INT(tcpsynth_init(&t, &c, &s, isn_c, isn_s, mss, synth_emit, l), 0);
    tcpsynth_handshake(&t);
    data_acked(&t, TCPSYNTH_C2S, req, sizeof(req));
    data_acked(&t, TCPSYNTH_S2C, resp, sizeof(resp));
    if (fin) {
        tcpsynth_fin(&t, TCPSYNTH_C2S);
        tcpsynth_fin(&t, TCPSYNTH_S2C);
    }
}

/* ---- hand-built segments ---- */

#define F_FIN 0x01
#define F_SYN 0x02
#define F_RST 0x04
#define F_PSH 0x08
#define F_ACK 0x10

static size_t mk_tcp(uint8_t *out, const tcpsynth_endpoint_t *s, const tcpsynth_endpoint_t *d,
                     uint32_t seq, uint32_t ack, uint8_t flags, const void *pl, size_t plen)
{
    size_t ip = s->family == AF_INET ? 20 : 40, tcp = 20;
    uint8_t *t = out + ip;

    memset(out, 0, ip + tcp);
    if (s->family == AF_INET) {
        out[0] = 0x45;
        out[2] = (uint8_t)((ip + tcp + plen) >> 8);
        out[3] = (uint8_t)(ip + tcp + plen);
        out[6] = 0x40; /* DF */
        out[8] = 64;
        out[9] = 6;
        memcpy(out + 12, s->addr, 4);
        memcpy(out + 16, d->addr, 4);
    } else {
        out[0] = 0x60;
        out[4] = (uint8_t)((tcp + plen) >> 8);
        out[5] = (uint8_t)(tcp + plen);
        out[6] = 6;
        out[7] = 64;
        memcpy(out + 8, s->addr, 16);
        memcpy(out + 24, d->addr, 16);
    }
    t[0] = (uint8_t)(s->port >> 8);
    t[1] = (uint8_t)s->port;
    t[2] = (uint8_t)(d->port >> 8);
    t[3] = (uint8_t)d->port;
    t[4] = (uint8_t)(seq >> 24);
    t[5] = (uint8_t)(seq >> 16);
    t[6] = (uint8_t)(seq >> 8);
    t[7] = (uint8_t)seq;
    t[8] = (uint8_t)(ack >> 24);
    t[9] = (uint8_t)(ack >> 16);
    t[10] = (uint8_t)(ack >> 8);
    t[11] = (uint8_t)ack;
    t[12] = 0x50;
    t[13] = flags;
    t[14] = 0xff;
    t[15] = 0xff;
    if (plen)
        memcpy(t + tcp, pl, plen);
    return ip + tcp + plen;
}

static void seg(plist_t *l, const tcpsynth_endpoint_t *s, const tcpsynth_endpoint_t *d,
                uint32_t seq, uint32_t ack, uint8_t flags, const void *pl, size_t plen)
{
    uint8_t buf[2048];
    size_t n = mk_tcp(buf, s, d, seq, ack, flags, pl, plen);

    pl_add(l, TCPREASM_LINKTYPE_RAW, buf, n);
}

/* ---- the collector ---- */

#define MAXC 64

typedef struct cconn {
    tcpreasm_conn_info_t info;
    bytes_t data[2];
    uint64_t gap[2];
    int ngaps[2];
    int closed, how;
    uint64_t first_frame[2];
    int fins[2];
} cconn_t;

typedef struct coll {
    cconn_t c[MAXC];
    int n;
    bytes_t log;
    bytes_t finlog; /* on_fin, apart: the other tests' logs stay as they were */
    int bad_user;
    int udp;
    tcpreasm_endpoint_t udp_src, udp_dst;
    bytes_t udp_data;
    uint64_t udp_frame;
    int fail_call; /* return -EIO from the Nth callback */
    int calls;
} coll_t;

static int fail_now(coll_t *k)
{
    return k->fail_call && ++k->calls == k->fail_call ? -EIO : 0;
}

static int c_open(void *o, const tcpreasm_conn_info_t *info, void **user)
{
    coll_t *k = o;
    cconn_t *c;

    if (info->id != (uint64_t)k->n || k->n >= MAXC) {
        k->bad_user++;
        return -ERANGE;
    }
    c = &k->c[k->n++];
    c->info = *info;
    *user = c;
    b_printf(&k->log, "O%" PRIu64 " f%" PRIu64 " %u>%u hs=%d\n", info->id, info->frame,
             info->client.port, info->server.port, info->handshake);
    return fail_now(k);
}

static int c_data(void *o, uint64_t conn, void *user, int dir, const uint8_t *d, size_t len,
                  uint64_t ts, uint64_t frame)
{
    coll_t *k = o;
    cconn_t *c = &k->c[conn];

    if (conn >= (uint64_t)k->n || user != c || c->closed || len == 0) {
        k->bad_user++;
        return -ERANGE;
    }
    if (c->data[dir].len == 0)
        c->first_frame[dir] = frame;
    b_add(&c->data[dir], d, len);
    b_printf(&k->log, "D%" PRIu64 " %d %zu f%" PRIu64 "\n", conn, dir, len, frame);
    return fail_now(k);
}

static int c_gap(void *o, uint64_t conn, void *user, int dir, uint64_t missing)
{
    coll_t *k = o;
    cconn_t *c = &k->c[conn];

    if (conn >= (uint64_t)k->n || user != c || c->closed || missing == 0) {
        k->bad_user++;
        return -ERANGE;
    }
    c->gap[dir] += missing;
    c->ngaps[dir]++;
    b_printf(&k->log, "G%" PRIu64 " %d %" PRIu64 "\n", conn, dir, missing);
    return fail_now(k);
}

static int c_close(void *o, uint64_t conn, void *user, int how)
{
    coll_t *k = o;
    cconn_t *c = &k->c[conn];

    if (conn >= (uint64_t)k->n || user != c || c->closed) {
        k->bad_user++;
        return -ERANGE;
    }
    c->closed = 1;
    c->how = how;
    b_printf(&k->log, "C%" PRIu64 " %d\n", conn, how);
    return fail_now(k);
}

static int c_udp(void *o, const tcpreasm_endpoint_t *src, const tcpreasm_endpoint_t *dst,
                 const uint8_t *d, size_t len, uint64_t ts, uint64_t frame)
{
    coll_t *k = o;

    k->udp++;
    k->udp_src = *src;
    k->udp_dst = *dst;
    k->udp_data.len = 0;
    b_add(&k->udp_data, d, len);
    k->udp_frame = frame;
    b_printf(&k->log, "U %zu f%" PRIu64 "\n", len, frame);
    return fail_now(k);
}

static int c_fin(void *o, uint64_t conn, void *user, int dir)
{
    coll_t *k = o;
    cconn_t *c = &k->c[conn];

    if (conn >= (uint64_t)k->n || user != c || c->closed || (dir != 0 && dir != 1)) {
        k->bad_user++;
        return -ERANGE;
    }
    c->fins[dir]++;
    b_printf(&k->finlog, "F%" PRIu64 " %d after %zu\n", conn, dir, c->data[dir].len);
    return fail_now(k);
}

static const tcpreasm_callbacks_t ccb = {c_open, c_data, c_gap, c_close, c_udp, c_fin};

static void coll_free(coll_t *k)
{
    int i;

    for (i = 0; i < MAXC; i++) {
        b_free(&k->c[i].data[0]);
        b_free(&k->c[i].data[1]);
    }
    b_free(&k->log);
    b_free(&k->finlog);
    b_free(&k->udp_data);
}

/*
 * Feeds the packets in the given order (NULL: as listed); the frame number is
 * the position in the list + 1 (so frames say which packet carried bytes).
 */
static int run(coll_t *k, const plist_t *l, const size_t *order, const tcpreasm_options_t *opts,
               tcpreasm_stats_t *st)
{
    tcpreasm_t *r;
    int err, rc = 0;
    size_t i, j;

    memset(k, 0, sizeof(*k));
    r = tcpreasm_new(&ccb, k, opts, &err);
    CHECK(r != NULL);
    if (!r)
        return err;
    for (i = 0; i < l->n && rc == 0; i++) {
        j = order ? order[i] : i;
        rc = tcpreasm_packet(r, l->v[j].lt, 1000 + j, l->v[j].d, l->v[j].len, j + 1);
    }
    if (rc == 0)
        rc = tcpreasm_finish(r);
    if (st)
        tcpreasm_get_stats(r, st);
    tcpreasm_free(r);
    CHECK_EQ_INT(k->bad_user, 0);
    return rc;
}

static int data_is(const bytes_t *b, const void *want, size_t len)
{
    return b->len == len && memcmp(b->p, want, len) == 0;
}

/* ---- tests ---- */

static void test_in_order(void)
{
    tcpsynth_endpoint_t c = ep4(1, 40000), s = ep4(2, 80);
    plist_t l = {0};
    coll_t k;
    tcpreasm_stats_t st;
    cconn_t *x = &k.c[0];

    conversation(&l, c, s, 1000, 5000, 100, 1);
    CHECK_EQ_INT(run(&k, &l, NULL, NULL, &st), 0);
    CHECK_EQ_INT(k.n, 1);
    CHECK_EQ_INT(x->info.id, 0);
    CHECK_EQ_INT(x->info.client.family, AF_INET);
    CHECK(memcmp(x->info.client.addr, c.addr, 16) == 0);
    CHECK_EQ_INT(x->info.client.port, 40000);
    CHECK(memcmp(x->info.server.addr, s.addr, 16) == 0);
    CHECK_EQ_INT(x->info.server.port, 80);
    CHECK_EQ_INT(x->info.handshake, 1);
    CHECK_EQ_INT(x->info.frame, 1);
    CHECK_EQ_INT(x->info.ts_ns, 1000);
    CHECK(data_is(&x->data[0], req, sizeof(req)));
    CHECK(data_is(&x->data[1], resp, sizeof(resp)));
    CHECK_EQ_INT(x->first_frame[0], 4);
    CHECK_EQ_INT(x->first_frame[1], 4 + 7 + 1); /* 7 request segments, then an ACK */
    CHECK_EQ_INT(x->ngaps[0] + x->ngaps[1], 0);
    CHECK_EQ_INT(x->closed, 1);
    CHECK_EQ_INT(x->how, TCPREASM_CLOSE_FIN);
    CHECK_EQ_INT(st.tcp, l.n);
    CHECK_EQ_INT(st.conns, 1);
    CHECK_EQ_INT(st.dup_bytes, 0);
    CHECK_EQ_INT(st.ooo_segments, 0);
    /* The close comes with the second FIN, before the last ACK (which is absorbed). */
    CHECK(strstr((char *)k.log.p, "C0 1\n") == (char *)k.log.p + k.log.len - 5);
    coll_free(&k);
    pl_free(&l);
}

static uint32_t rnd(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

/* Data segments shuffled (or reversed) within each burst; the ACK that
   follows a burst stays after it, as it must in a real capture. */
static void test_out_of_order(void)
{
    tcpsynth_endpoint_t c = ep4(1, 40000), s = ep4(2, 80);
    plist_t l = {0};
    coll_t k;
    tcpreasm_stats_t st;
    size_t *order, i, j, t, run0;
    uint32_t seed;
    int bad = 0;

    conversation(&l, c, s, 77, 99, 100, 1);
    order = calloc(l.n, sizeof(*order));
    for (seed = 1; seed <= 40; seed++) {
        uint32_t rs = seed;

        for (i = 0; i < l.n; i++)
            order[i] = i;
        for (run0 = 0; run0 < l.n; run0 = i + 1) {
            /* [run0, i): consecutive packets with payload (longer than 40 bytes). */
            for (i = run0; i < l.n && l.v[i].len > 40; i++)
                ;
            for (j = run0; seed == 40 && i > run0 && j < run0 + (i - run0) / 2; j++) {
                t = order[j];
                order[j] = order[i - 1 - (j - run0)];
                order[i - 1 - (j - run0)] = t;
            }
            for (j = i; seed != 40 && j > run0 + 1; j--) {
                size_t a = j - 1, b = run0 + rnd(&rs) % (j - run0);

                t = order[a];
                order[a] = order[b];
                order[b] = t;
            }
        }
        CHECK_EQ_INT(run(&k, &l, order, NULL, &st), 0);
        if (k.n != 1 || !data_is(&k.c[0].data[0], req, sizeof(req)) ||
            !data_is(&k.c[0].data[1], resp, sizeof(resp)) || k.c[0].how != TCPREASM_CLOSE_FIN ||
            k.c[0].ngaps[0] + k.c[0].ngaps[1] != 0) {
            if (bad++ < 2)
                fprintf(stderr, "order seed %u:\n%s", seed, (char *)k.log.p);
        }
        if (seed == 40)
            CHECK_EQ_INT(st.ooo_segments, 6 + 49); /* all but the last of each burst */
        coll_free(&k);
    }
    CHECK_EQ_INT(bad, 0);
    free(order);
    pl_free(&l);
}

/* The peer acknowledged bytes the capture does not have: that hole is given
   up at once (the U marker shows when), whichever comes first. */
static void test_ack_gap(void)
{
    tcpsynth_endpoint_t c = ep4(1, 40012), s = ep4(2, 80);
    plist_t l = {0};
    coll_t k;
    uint8_t udp[28] = {0x45, 0, 0,  28, 0, 0, 0x40, 0,  64, 17, 0, 0, 10, 0,
                       0,    7, 10, 0,  0, 8, 0,    53, 0,  53, 0, 8, 0,  0};

    seg(&l, &c, &s, 100, 0, F_SYN, NULL, 0);
    seg(&l, &s, &c, 900, 101, F_SYN | F_ACK, NULL, 0);
    seg(&l, &c, &s, 101, 901, F_ACK, "abc", 3);
    seg(&l, &c, &s, 114, 901, F_ACK, "xyz", 3); /* 10 bytes missing before */
    pl_add(&l, 101, udp, sizeof(udp));
    seg(&l, &s, &c, 901, 117, F_ACK, NULL, 0); /* acknowledges all of it */
    pl_add(&l, 101, udp, sizeof(udp));
    seg(&l, &s, &c, 901, 121, F_ACK, NULL, 0);   /* acknowledges 4 more */
    seg(&l, &c, &s, 127, 901, F_ACK, "late", 4); /* after a hole, partly acked */
    pl_add(&l, 101, udp, sizeof(udp));
    seg(&l, &c, &s, 121, 901, F_ACK, "123456", 6); /* the unacked part of that hole */
    seg(&l, &c, &s, 131, 901, F_ACK | F_FIN, NULL, 0);
    seg(&l, &s, &c, 901, 132, F_ACK | F_FIN, NULL, 0);
    seg(&l, &s, &c, 901, 132, F_ACK | F_FIN, NULL, 0);
    seg(&l, &c, &s, 132, 902, F_ACK, NULL, 0); /* the FIN's ACK: no false gap */
    CHECK_EQ_INT(run(&k, &l, NULL, NULL, NULL), 0);
    CHECK_EQ_STR((char *)k.log.p, "O0 f1 40012>80 hs=1\n"
                                  "D0 0 3 f3\n"
                                  "U 0 f5\n"
                                  "G0 0 10\n"
                                  "D0 0 3 f4\n"
                                  "U 0 f7\n"
                                  "G0 0 4\n"
                                  "U 0 f10\n"
                                  "D0 0 6 f11\n"
                                  "D0 0 4 f9\n"
                                  "C0 1\n");
    coll_free(&k);
    pl_free(&l);

    /* A hole before a FIN: the FIN's ACK gives it up and the close follows
       at once, not at the end. */
    seg(&l, &c, &s, 100, 0, F_SYN, NULL, 0);
    seg(&l, &s, &c, 900, 101, F_SYN | F_ACK, NULL, 0);
    seg(&l, &c, &s, 101, 901, F_ACK, "abc", 3);
    seg(&l, &c, &s, 110, 901, F_ACK | F_FIN, NULL, 0); /* 6 bytes missing before */
    seg(&l, &s, &c, 901, 111, F_ACK | F_FIN, NULL, 0);
    pl_add(&l, 101, udp, sizeof(udp));
    CHECK_EQ_INT(run(&k, &l, NULL, NULL, NULL), 0);
    CHECK_EQ_STR((char *)k.log.p, "O0 f1 40012>80 hs=1\n"
                                  "D0 0 3 f3\n"
                                  "G0 0 6\n"
                                  "C0 1\n"
                                  "U 0 f6\n");
    coll_free(&k);
    pl_free(&l);
}

/* Every packet twice, and a stale retransmission at the end. */
static void test_duplicates(void)
{
    tcpsynth_endpoint_t c = ep6(1, 50000), s = ep6(2, 443);
    plist_t l = {0};
    coll_t k;
    tcpreasm_stats_t st;
    size_t *order, i, n;

    conversation(&l, c, s, 1, 2, 333, 0);
    n = l.n;
    order = calloc(2 * n + 1, sizeof(*order));
    for (i = 0; i < n; i++)
        order[2 * i] = order[2 * i + 1] = i;
    order[2 * n] = 3; /* and a stale copy of the first request segment */
    {
        tcpreasm_t *r;

        memset(&k, 0, sizeof(k));
        r = tcpreasm_new(&ccb, &k, NULL, NULL);
        for (i = 0; i < 2 * n + 1; i++)
            CHECK_EQ_INT(
                tcpreasm_packet(r, l.v[order[i]].lt, i, l.v[order[i]].d, l.v[order[i]].len, i + 1),
                0);
        CHECK_EQ_INT(tcpreasm_finish(r), 0);
        tcpreasm_get_stats(r, &st);
        tcpreasm_free(r);
    }
    CHECK_EQ_INT(k.n, 1);
    CHECK_EQ_INT(k.c[0].info.client.family, AF_INET6);
    CHECK_EQ_INT(k.c[0].info.client.port, 50000);
    CHECK(data_is(&k.c[0].data[0], req, sizeof(req)));
    CHECK(data_is(&k.c[0].data[1], resp, sizeof(resp)));
    CHECK_EQ_INT(st.dup_bytes, sizeof(req) + sizeof(resp) + 333);
    CHECK_EQ_INT(k.c[0].how, TCPREASM_CLOSE_END);
    CHECK_EQ_INT(k.bad_user, 0);
    coll_free(&k);
    free(order);
    pl_free(&l);
}

/* Overlapping segments with different bytes: the copy captured first wins. */
static void test_overlap(void)
{
    tcpsynth_endpoint_t c = ep4(1, 40001), s = ep4(2, 80);
    const uint32_t isn = 5000, b = isn + 1;
    plist_t l = {0};
    coll_t k;
    char want[128];

    seg(&l, &c, &s, isn, 0, F_SYN, NULL, 0);                            /* f1 */
    seg(&l, &c, &s, b + 0, 1, F_ACK, "AAAAAAAAAA", 10);                 /* f2 [0,10) */
    seg(&l, &c, &s, b + 5, 1, F_ACK, "BBBBBBBBBB", 10);                 /* f3 [5,15) */
    seg(&l, &c, &s, b + 20, 1, F_ACK, "CCCCCCCCCC", 10);                /* f4 [20,30) */
    seg(&l, &c, &s, b + 15, 1, F_ACK, "DDDDDDDDDD", 10);                /* f5 [15,25) */
    seg(&l, &c, &s, b + 25, 1, F_ACK, "EEEEEEEEEE", 10);                /* f6 [25,35) */
    seg(&l, &c, &s, b + 50, 1, F_ACK, "XXXXX", 5);                      /* f7 [50,55) */
    seg(&l, &c, &s, b + 60, 1, F_ACK, "YYYYY", 5);                      /* f8 [60,65) */
    seg(&l, &c, &s, b + 45, 1, F_ACK, "ZZZZZZZZZZZZZZZZZZZZZZZZZ", 25); /* f9 [45,70) */
    seg(&l, &c, &s, b + 35, 1, F_ACK, "WWWWWWWWWWWWWWW", 15);           /* f10 [35,50) */
    seg(&l, &c, &s, b + 52, 1, F_ACK, "QQQQQQQQQQQQQQQQQQQQQQQQQ", 25); /* f11 [52,77) */
    CHECK_EQ_INT(run(&k, &l, NULL, NULL, NULL), 0);
    /* Z (f9) was captured before W (f10), so Z's copy of [45,50) wins. */
    snprintf(want, sizeof(want), "%s%s%s%s%s%s%s%s%s%s%s", "AAAAAAAAAA", "BBBBB", "DDDDD",
             "CCCCCCCCCC", "EEEEE", "WWWWWWWWWW", "ZZZZZ", "XXXXX", "ZZZZZ", "YYYYY",
             "ZZZZZQQQQQQQ");
    CHECK_EQ_STR((char *)k.c[0].data[0].p, want);
    /* Frames say which packet carried each chunk. */
    CHECK(strstr((char *)k.log.p, "D0 0 5 f5\nD0 0 10 f4\nD0 0 5 f6\n") != NULL);
    CHECK(strstr((char *)k.log.p, "D0 0 10 f10\nD0 0 5 f9\nD0 0 5 f7\nD0 0 5 f9\nD0 0 5 f8\n"
                                  "D0 0 5 f9\nD0 0 7 f11\n") != NULL);
    CHECK_EQ_INT(k.c[0].ngaps[0], 0);
    coll_free(&k);
    pl_free(&l);
}

/* No handshake: the higher port is the client; equal ports: the first sender. */
static void test_no_handshake(void)
{
    tcpsynth_endpoint_t c = ep4(1, 40002), s = ep4(2, 8080), a = ep4(3, 5000), b = ep4(4, 5000);
    plist_t l = {0}, m = {0};
    coll_t k;
    size_t *order, i;

    conversation(&l, c, s, 1, 2, 100, 1);
    order = calloc(l.n, sizeof(*order));
    /* Drop the handshake: start with the server's first data segment. */
    for (i = 0; i + 3 < l.n; i++)
        order[i] = i + 3;
    {
        plist_t v = l;

        v.n = l.n - 3;
        CHECK_EQ_INT(run(&k, &v, order, NULL, NULL), 0);
    }
    CHECK_EQ_INT(k.n, 1);
    CHECK_EQ_INT(k.c[0].info.handshake, 0);
    CHECK_EQ_INT(k.c[0].info.client.port, 40002);
    CHECK_EQ_INT(k.c[0].info.frame, 4);
    CHECK(data_is(&k.c[0].data[0], req, sizeof(req)));
    CHECK(data_is(&k.c[0].data[1], resp, sizeof(resp)));
    CHECK_EQ_INT(k.c[0].how, TCPREASM_CLOSE_FIN);
    coll_free(&k);

    /* Only the SYN/ACK and on: the SYN/ACK's receiver is the client. */
    for (i = 0; i + 1 < l.n; i++)
        order[i] = i + 1;
    {
        plist_t v = l;

        v.n = l.n - 1;
        CHECK_EQ_INT(run(&k, &v, order, NULL, NULL), 0);
    }
    CHECK_EQ_INT(k.c[0].info.handshake, 1);
    CHECK_EQ_INT(k.c[0].info.client.port, 40002);
    CHECK(data_is(&k.c[0].data[0], req, sizeof(req)));
    coll_free(&k);

    /* Equal ports; a keep-alive (seq - 1, no data) first does not shift the stream. */
    seg(&m, &b, &a, 999, 500, F_ACK, NULL, 0);
    seg(&m, &b, &a, 1000, 500, F_ACK | F_PSH, "hello", 5);
    seg(&m, &a, &b, 500, 1005, F_ACK | F_PSH, "world", 5);
    CHECK_EQ_INT(run(&k, &m, NULL, NULL, NULL), 0);
    CHECK_EQ_INT(k.c[0].info.client.addr[3], 4);
    CHECK_EQ_STR((char *)k.c[0].data[0].p, "hello");
    CHECK_EQ_STR((char *)k.c[0].data[1].p, "world");
    CHECK_EQ_INT(k.c[0].how, TCPREASM_CLOSE_END);
    CHECK_EQ_INT(k.c[0].ngaps[0], 0);
    coll_free(&k);
    free(order);
    pl_free(&l);
    pl_free(&m);
}

/* Sequence numbers that wrap past 2^32, with reordering around the wrap. */
static void test_wrap(void)
{
    tcpsynth_endpoint_t c = ep4(1, 40003), s = ep4(2, 80);
    plist_t l = {0};
    coll_t k;
    size_t *order, i, t;

    conversation(&l, c, s, 0xffffff00u, 0xfffffff0u, 64, 1);
    order = calloc(l.n, sizeof(*order));
    for (i = 0; i < l.n; i++)
        order[i] = i;
    for (i = 5; i + 4 < l.n; i += 6) { /* swap pairs of data segments */
        t = order[i];
        order[i] = order[i + 2];
        order[i + 2] = t;
    }
    CHECK_EQ_INT(run(&k, &l, order, NULL, NULL), 0);
    CHECK(data_is(&k.c[0].data[0], req, sizeof(req)));
    CHECK(data_is(&k.c[0].data[1], resp, sizeof(resp)));
    CHECK_EQ_INT(k.c[0].how, TCPREASM_CLOSE_FIN);
    CHECK_EQ_INT(k.c[0].ngaps[0] + k.c[0].ngaps[1], 0);
    coll_free(&k);
    free(order);
    pl_free(&l);
}

/* IPv6 with extension headers before TCP, and a fragment that is skipped. */
static void test_ipv6_ext(void)
{
    tcpsynth_endpoint_t c = ep6(1, 40004), s = ep6(2, 443);
    plist_t l = {0}, x = {0};
    coll_t k;
    tcpreasm_stats_t st;
    size_t i;

    conversation(&l, c, s, 10, 20, 500, 1);
    for (i = 0; i < l.n; i++) {
        const pkt_t *p = &l.v[i];
        uint8_t buf[2048], *e = buf + 40;
        size_t plen = p->len - 40 + 24;

        memcpy(buf, p->d, 40);
        buf[4] = (uint8_t)(plen >> 8);
        buf[5] = (uint8_t)plen;
        buf[6] = 0; /* hop-by-hop */
        memset(e, 0, 24);
        e[0] = 60; /* then destination options */
        e[1] = 0;  /* 8 bytes */
        e[2] = 1;  /* PadN */
        e[3] = 4;
        e[8] = 6; /* then TCP */
        e[9] = 1; /* 16 bytes */
        e[10] = 1;
        e[11] = 12;
        memcpy(buf + 64, p->d + 40, p->len - 40);
        pl_add(&x, TCPREASM_LINKTYPE_RAW, buf, p->len + 24);
        if (i == 5) {
            /* A fragment of something else. */
            buf[6] = 44;
            memset(e, 0, 8);
            e[0] = 6;
            e[3] = 1; /* more fragments */
            pl_add(&x, TCPREASM_LINKTYPE_RAW, buf, 64);
        }
    }
    CHECK_EQ_INT(run(&k, &x, NULL, NULL, &st), 0);
    CHECK_EQ_INT(k.n, 1);
    CHECK_EQ_INT(k.c[0].info.client.family, AF_INET6);
    CHECK(memcmp(k.c[0].info.server.addr, s.addr, 16) == 0);
    CHECK(data_is(&k.c[0].data[0], req, sizeof(req)));
    CHECK(data_is(&k.c[0].data[1], resp, sizeof(resp)));
    CHECK_EQ_INT(st.fragments, 1);
    CHECK_EQ_INT(k.c[0].how, TCPREASM_CLOSE_FIN);
    coll_free(&k);
    pl_free(&l);
    pl_free(&x);
}

/* The same conversation behind every link layer we know. */
static void wrap(plist_t *out, const plist_t *in, uint32_t lt, const uint8_t *hdr, size_t hlen,
                 size_t pad_to)
{
    size_t i;

    memset(out, 0, sizeof(*out));
    for (i = 0; i < in->n; i++) {
        uint8_t buf[4096];
        size_t n = hlen + in->v[i].len;

        if (hlen)
            memcpy(buf, hdr, hlen);
        memcpy(buf + hlen, in->v[i].d, in->v[i].len);
        if (n < pad_to) {
            memset(buf + n, 0xee, pad_to - n); /* Ethernet padding must be ignored */
            n = pad_to;
        }
        pl_add(out, lt, buf, n);
    }
}

static void check_links(const plist_t *l, int v6)
{
    static const uint8_t eth4[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00};
    static const uint8_t eth6[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x86, 0xdd};
    static const uint8_t qinq4[] = {1,  2,    3,    4, 5, 6,    7,    8, 9, 10,   11,
                                    12, 0x88, 0xa8, 0, 5, 0x81, 0x00, 0, 7, 0x08, 0x00};
    static const uint8_t vlan6[] = {1,  2,  3,  4,    5,    6, 7, 8,    9,
                                    10, 11, 12, 0x81, 0x00, 0, 9, 0x86, 0xdd};
    static const uint8_t sll4[] = {0, 4, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00};
    static const uint8_t sll6[] = {0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x86, 0xdd};
    static const uint8_t sll2_4[] = {0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1,
                                     4,    6,    1, 2, 3, 4, 5, 6, 0, 0};
    static const uint8_t sll2_6[] = {0x86, 0xdd, 0, 0, 0, 0, 0, 3, 0, 1,
                                     0,    6,    1, 2, 3, 4, 5, 6, 0, 0};
    static const uint8_t null4_le[] = {2, 0, 0, 0};
    static const uint8_t null6_le[] = {30, 0, 0, 0}; /* macOS AF_INET6 */
    static const uint8_t loop4[] = {0, 0, 0, 2};
    static const uint8_t loop6[] = {0, 0, 0, 24}; /* OpenBSD AF_INET6 */
    const struct {
        uint32_t lt;
        const uint8_t *h;
        size_t hlen;
        size_t pad;
    } cases[] = {
        {1, v6 ? eth6 : eth4, 14, 60},
        {1, v6 ? vlan6 : qinq4, v6 ? sizeof(vlan6) : sizeof(qinq4), 64},
        {113, v6 ? sll6 : sll4, 16, 0},
        {276, v6 ? sll2_6 : sll2_4, 20, 0},
        {0, v6 ? null6_le : null4_le, 4, 0},
        {108, v6 ? loop6 : loop4, 4, 0},
        {12, NULL, 0, 0},
        {14, NULL, 0, 0},
        {v6 ? 229u : 228u, NULL, 0, 0},
        {101, NULL, 0, 0},
    };
    size_t i;
    plist_t w;
    coll_t k;
    tcpreasm_stats_t st;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        wrap(&w, l, cases[i].lt, cases[i].h, cases[i].hlen, cases[i].pad);
        CHECK_EQ_INT(run(&k, &w, NULL, NULL, &st), 0);
        if (k.n != 1 || !data_is(&k.c[0].data[0], req, sizeof(req)) ||
            !data_is(&k.c[0].data[1], resp, sizeof(resp)))
            fprintf(stderr, "link type %u (case %zu, v6 %d) failed\n", cases[i].lt, i, v6);
        CHECK_EQ_INT(k.n, 1);
        CHECK(data_is(&k.c[0].data[0], req, sizeof(req)));
        CHECK(data_is(&k.c[0].data[1], resp, sizeof(resp)));
        CHECK_EQ_INT(k.c[0].how, TCPREASM_CLOSE_FIN);
        CHECK_EQ_INT(st.not_ip + st.malformed, 0);
        coll_free(&k);
        pl_free(&w);
    }
}

static void test_link_types(void)
{
    plist_t l = {0};
    coll_t k;
    tcpreasm_stats_t st;
    static const uint8_t arp[42] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x06};

    conversation(&l, ep4(1, 40005), ep4(2, 80), 3, 4, 300, 1);
    check_links(&l, 0);
    pl_free(&l);
    conversation(&l, ep6(1, 40005), ep6(2, 80), 3, 4, 300, 1);
    check_links(&l, 1);
    pl_free(&l);

    /* Things that are not TCP or UDP over IP are counted, not errors. */
    pl_add(&l, 1, arp, sizeof(arp));
    pl_add(&l, 147, arp, sizeof(arp));  /* a link type we do not know */
    pl_add(&l, 0, "\x07\0\0\0\x45", 5); /* NULL with an unknown family */
    pl_add(&l, 101, "", 0);
    pl_add(&l, 101, "\x45\0\0\x14", 4); /* IPv4 header cut short */
    CHECK_EQ_INT(run(&k, &l, NULL, NULL, &st), 0);
    CHECK_EQ_INT(st.packets, 5);
    CHECK_EQ_INT(st.not_ip, 4);
    CHECK_EQ_INT(st.malformed, 1);
    CHECK_EQ_INT(k.n, 0);
    coll_free(&k);
    pl_free(&l);
}

/* RST: what is buffered comes out (with its hole declared), then the close;
   later packets of the tuple are absorbed. */
static void test_rst(void)
{
    tcpsynth_endpoint_t c = ep4(1, 40006), s = ep4(2, 80);
    plist_t l = {0};
    coll_t k;

    seg(&l, &c, &s, 100, 0, F_SYN, NULL, 0);
    seg(&l, &s, &c, 900, 101, F_SYN | F_ACK, NULL, 0);
    seg(&l, &c, &s, 101, 901, F_ACK, "hello", 5);
    seg(&l, &s, &c, 911, 106, F_ACK, "later", 5); /* 10 bytes missing before it */
    seg(&l, &c, &s, 106, 901, F_RST | F_ACK, NULL, 0);
    seg(&l, &s, &c, 901, 106, F_ACK, "0123456789", 10); /* too late */
    seg(&l, &c, &s, 106, 901, F_ACK, "more", 4);
    CHECK_EQ_INT(run(&k, &l, NULL, NULL, NULL), 0);
    CHECK_EQ_INT(k.n, 1);
    CHECK_EQ_STR((char *)k.c[0].data[0].p, "hello");
    CHECK_EQ_STR((char *)k.c[0].data[1].p, "later");
    CHECK_EQ_INT(k.c[0].gap[1], 10);
    CHECK_EQ_INT(k.c[0].how, TCPREASM_CLOSE_RST);
    CHECK_EQ_STR((char *)k.log.p, "O0 f1 40006>80 hs=1\n"
                                  "D0 0 5 f3\n"
                                  "G0 1 10\n"
                                  "D0 1 5 f4\n"
                                  "C0 2\n");
    coll_free(&k);
    pl_free(&l);
}

/* on_fin: once per direction, when the stream reaches its FIN (after every byte before it,
   however the packets came), before on_close; a direction whose FIN came before the other
   side's reset still gets it. */
static void test_fin(void)
{
    tcpsynth_endpoint_t c = ep4(1, 40008), s = ep4(2, 80);
    plist_t l = {0};
    coll_t k;

    /* The server ends its answer with a FIN; the client then resets. */
    seg(&l, &c, &s, 100, 0, F_SYN, NULL, 0);
    seg(&l, &s, &c, 900, 101, F_SYN | F_ACK, NULL, 0);
    seg(&l, &c, &s, 101, 901, F_ACK, "GET /", 5);
    seg(&l, &s, &c, 901, 106, F_ACK, "HTTP/1.0 200", 12);
    seg(&l, &s, &c, 913, 106, F_ACK | F_FIN, NULL, 0);
    seg(&l, &s, &c, 914, 106, F_ACK | F_FIN, NULL, 0); /* a retransmission */
    seg(&l, &c, &s, 106, 914, F_RST | F_ACK, NULL, 0);
    CHECK_EQ_INT(run(&k, &l, NULL, NULL, NULL), 0);
    CHECK_EQ_STR((char *)k.finlog.p, "F0 1 after 12\n");
    CHECK_EQ_INT(k.c[0].fins[1], 1);
    CHECK_EQ_INT(k.c[0].how, TCPREASM_CLOSE_RST);
    coll_free(&k);
    pl_free(&l);

    /* Both FINs, the client's before its last bytes arrive: each after its data, then the
       close. */
    seg(&l, &c, &s, 100, 0, F_SYN, NULL, 0);
    seg(&l, &s, &c, 900, 101, F_SYN | F_ACK, NULL, 0);
    seg(&l, &c, &s, 101, 901, F_ACK, "abc", 3);
    seg(&l, &c, &s, 107, 901, F_ACK | F_FIN, NULL, 0); /* 3 bytes missing before it */
    seg(&l, &s, &c, 901, 104, F_ACK, "xy", 2);
    seg(&l, &c, &s, 104, 903, F_ACK, "def", 3); /* the missing bytes */
    seg(&l, &s, &c, 903, 108, F_ACK | F_FIN, NULL, 0);
    seg(&l, &c, &s, 108, 904, F_ACK, NULL, 0);
    CHECK_EQ_INT(run(&k, &l, NULL, NULL, NULL), 0);
    CHECK_EQ_STR((char *)k.finlog.p, "F0 0 after 6\nF0 1 after 2\n");
    CHECK_EQ_STR((char *)k.log.p + k.log.len - 5, "C0 1\n");
    CHECK_EQ_INT(k.c[0].fins[0], 1);
    CHECK_EQ_INT(k.c[0].fins[1], 1);
    coll_free(&k);
    pl_free(&l);
}

/* A new SYN on a closed tuple is a new connection; stale packets are not. */
static void test_port_reuse(void)
{
    tcpsynth_endpoint_t c = ep4(1, 40007), s = ep4(2, 80);
    plist_t l = {0};
    coll_t k;
    tcpreasm_stats_t st;
    tcpsynth_t t;

    conversation(&l, c, s, 1000, 2000, 0, 1); /* ends with the last ACK: absorbed */
    seg(&l, &c, &s, 1000, 0, F_SYN, NULL, 0); /* stale SYN, same ISN: after a FIN, new */
    seg(&l, &s, &c, 7000, 1001, F_RST | F_ACK, NULL, 0);
    tcpsynth_init(&t, &c, &s, 555555, 666666, 0, synth_emit, &l); /* new ISN */
    tcpsynth_handshake(&t);
    seg(&l, &c, &s, 555555, 0, F_SYN, NULL, 0); /* retransmitted SYN: same connection */
    data_acked(&t, TCPSYNTH_C2S, "second", 6);
    tcpsynth_rst(&t, TCPSYNTH_S2C);
    CHECK_EQ_INT(run(&k, &l, NULL, NULL, &st), 0);
    CHECK_EQ_INT(k.n, 3);
    CHECK(data_is(&k.c[0].data[0], req, sizeof(req)));
    CHECK(data_is(&k.c[0].data[1], resp, sizeof(resp)));
    CHECK_EQ_INT(k.c[0].how, TCPREASM_CLOSE_FIN);
    CHECK_EQ_INT(k.c[1].data[0].len + k.c[1].data[1].len, 0);
    CHECK_EQ_INT(k.c[1].how, TCPREASM_CLOSE_RST);
    CHECK_EQ_INT(k.c[2].info.handshake, 1);
    CHECK_EQ_STR((char *)k.c[2].data[0].p, "second");
    CHECK_EQ_INT(k.c[2].how, TCPREASM_CLOSE_RST);
    CHECK_EQ_INT(st.conns, 3);

    /* A different ISN while the first connection is still open: it ends (END). */
    coll_free(&k);
    pl_free(&l);
    seg(&l, &c, &s, 1, 0, F_SYN, NULL, 0);
    seg(&l, &c, &s, 2, 0, F_ACK, "one", 3);
    seg(&l, &c, &s, 50, 0, F_SYN, NULL, 0);
    seg(&l, &c, &s, 51, 0, F_ACK, "two", 3);
    CHECK_EQ_INT(run(&k, &l, NULL, NULL, NULL), 0);
    CHECK_EQ_STR((char *)k.log.p, "O0 f1 40007>80 hs=1\nD0 0 3 f2\nC0 3\n"
                                  "O1 f3 40007>80 hs=1\nD1 0 3 f4\nC1 3\n");
    coll_free(&k);
    pl_free(&l);
}

/* Holes: declared when the peer's ACK covers them, or when the buffer limit is
   reached; or at the end. */
static void test_gap(void)
{
    tcpsynth_endpoint_t c = ep4(1, 40008), s = ep4(2, 80);
    plist_t l = {0}, v = {0}, noack = {0};
    coll_t k;
    tcpreasm_options_t o = {0};
    tcpreasm_stats_t st;
    /* Handshake 0-2, request 3-4, ACK 5, response 6-15, ACK 16: the third
       response segment. */
    size_t i, drop = 3 + 2 + 1 + 2;
    bytes_t want = {0};

    conversation(&l, c, s, 1, 2, 500, 1);
    for (i = 0; i < l.n; i++) {
        if (i != drop)
            pl_add(&v, l.v[i].lt, l.v[i].d, l.v[i].len);
        if (i != drop && i != 16)
            pl_add(&noack, l.v[i].lt, l.v[i].d, l.v[i].len);
    }
    b_add(&want, resp, 1000);
    b_add(&want, resp + 1500, sizeof(resp) - 1500);

    /* The client's ACK after the response gives the hole up. */
    CHECK_EQ_INT(run(&k, &v, NULL, NULL, &st), 0);
    CHECK(data_is(&k.c[0].data[0], req, sizeof(req)));
    CHECK(data_is(&k.c[0].data[1], want.p, want.len));
    CHECK_EQ_INT(k.c[0].gap[1], 500);
    CHECK_EQ_INT(k.c[0].ngaps[1], 1);
    CHECK_EQ_INT(k.c[0].how, TCPREASM_CLOSE_FIN);
    CHECK_EQ_INT(st.gaps, 1);
    CHECK_EQ_INT(st.gap_bytes, 500);
    CHECK_EQ_INT(st.ooo_segments, 7);
    CHECK(strstr((char *)k.log.p, "D0 1 500 f8\nG0 1 500\nD0 1 500 f9\n") != NULL);
    coll_free(&k);

    /* Without that ACK, the FINs' ACKs cover it too; without any ACK, the
       end does. */
    CHECK_EQ_INT(run(&k, &noack, NULL, NULL, &st), 0);
    CHECK(data_is(&k.c[0].data[1], want.p, want.len));
    CHECK_EQ_INT(k.c[0].gap[1], 500);
    CHECK_EQ_INT(k.c[0].how, TCPREASM_CLOSE_FIN);
    coll_free(&k);
    i = noack.n;
    noack.n = 15; /* up to the last response segment: no ACK, no FIN */
    CHECK_EQ_INT(run(&k, &noack, NULL, NULL, &st), 0);
    CHECK(data_is(&k.c[0].data[1], want.p, want.len));
    CHECK_EQ_INT(k.c[0].gap[1], 500);
    CHECK_EQ_INT(k.c[0].how, TCPREASM_CLOSE_END);
    CHECK(strstr((char *)k.log.p, "G0 1 500\n") > strstr((char *)k.log.p, "D0 0 200 f5\n"));
    coll_free(&k);
    noack.n = i;

    /* With room for 2 out-of-order segments only, the hole goes earlier. */
    o.max_buffer = 2 * (500 + 64);
    CHECK_EQ_INT(run(&k, &v, NULL, &o, &st), 0);
    CHECK(data_is(&k.c[0].data[1], want.p, want.len));
    CHECK_EQ_INT(k.c[0].gap[1], 500);
    CHECK_EQ_INT(st.ooo_segments, 2);
    coll_free(&k);

    /* A limit below one segment: every hole is given up at once. */
    o.max_buffer = 1;
    CHECK_EQ_INT(run(&k, &v, NULL, &o, &st), 0);
    CHECK(data_is(&k.c[0].data[1], want.p, want.len));
    CHECK_EQ_INT(st.ooo_segments, 0);
    coll_free(&k);
    o.max_buffer = 0;
    o.max_buffer_total = 1;
    CHECK_EQ_INT(run(&k, &v, NULL, &o, &st), 0);
    CHECK(data_is(&k.c[0].data[1], want.p, want.len));
    CHECK_EQ_INT(st.ooo_segments, 0);
    coll_free(&k);
    b_free(&want);
    pl_free(&l);
    pl_free(&v);
    pl_free(&noack);

    /* At most 4096 pieces per direction: one-byte segments after a hole. */
    {
        tcpsynth_endpoint_t a = ep4(1, 40013), b = ep4(2, 80);
        char ch;

        seg(&l, &a, &b, 0, 0, F_SYN, NULL, 0);
        for (i = 1; i <= 5000; i++) {
            ch = (char)('a' + i % 26);
            seg(&l, &a, &b, (uint32_t)i + 1, 0, F_ACK, &ch, 1); /* byte 0 is missing */
        }
        CHECK_EQ_INT(run(&k, &l, NULL, NULL, &st), 0);
        CHECK_EQ_INT(k.c[0].data[0].len, 5000);
        CHECK_EQ_INT(k.c[0].gap[0], 1);
        CHECK_EQ_INT(st.ooo_segments, 4096);
        CHECK(strstr((char *)k.log.p, "G0 0 1\nD0 0 1 f2\n") != NULL);
        coll_free(&k);
        pl_free(&l);
    }
}

/* A snap length cut the payload: the cut part is declared lost at once. */
static void test_truncated(void)
{
    tcpsynth_endpoint_t c = ep4(1, 40009), s = ep4(2, 80);
    plist_t l = {0};
    coll_t k;
    tcpreasm_stats_t st;
    size_t i;
    bytes_t want = {0};

    conversation(&l, c, s, 1, 2, 1000, 1);
    for (i = 0; i < l.n; i++)
        if (l.v[i].len > 96)
            l.v[i].len = 96; /* tcpdump -s 96 */
    CHECK_EQ_INT(run(&k, &l, NULL, NULL, &st), 0);
    for (i = 0; i < sizeof(resp); i += 1000)
        b_add(&want, resp + i, 56);
    CHECK(data_is(&k.c[0].data[1], want.p, want.len));
    CHECK_EQ_INT(k.c[0].gap[1], sizeof(resp) - want.len);
    CHECK_EQ_INT(k.c[0].ngaps[1], 5);
    CHECK_EQ_INT(k.c[0].gap[0], sizeof(req) - 56);
    CHECK_EQ_INT(st.truncated, 6);
    CHECK_EQ_INT(k.c[0].how, TCPREASM_CLOSE_FIN);
    coll_free(&k);
    b_free(&want);
    pl_free(&l);
}

static void test_udp_and_junk(void)
{
    tcpsynth_endpoint_t c = ep4(1, 40010), s = ep4(2, 80);
    plist_t l = {0};
    coll_t k;
    tcpreasm_stats_t st;
    uint8_t p[128];

    /* UDP over IPv4 in Ethernet with padding: the UDP length rules. */
    memset(p, 0, sizeof(p));
    memcpy(p, "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x08\x00", 14);
    memcpy(p + 14,
           "\x45\x00\x00\x1f\x00\x00\x40\x00\x40\x11\x00\x00\x0a\x00\x00\x01"
           "\x0a\x00\x00\x35",
           20);
    memcpy(p + 34,
           "\x9c\x40\x00\x35\x00\x0b\x00\x00"
           "abc",
           11);
    pl_add(&l, 1, p, 60);
    /* UDP over IPv6. */
    memset(p, 0, sizeof(p));
    p[0] = 0x60;
    p[5] = 12;
    p[6] = 17;
    p[23] = 1;
    p[39] = 2;
    memcpy(p + 40,
           "\x13\x88\x01\xbb\x00\x0c\x00\x00"
           "quic",
           12);
    pl_add(&l, 101, p, 52);
    /* An IPv4 fragment (offset != 0) and a first fragment (MF). */
    memset(p, 0, sizeof(p));
    mk_tcp(p, &c, &s, 1, 0, F_SYN, NULL, 0);
    p[6] = 0x00;
    p[7] = 0x10;
    pl_add(&l, 101, p, 40);
    p[6] = 0x20;
    p[7] = 0;
    pl_add(&l, 101, p, 40);
    /* Bad IHL, TCP data offset below 5 and beyond the packet, ICMP. */
    mk_tcp(p, &c, &s, 1, 0, F_SYN, NULL, 0);
    p[0] = 0x43;
    pl_add(&l, 101, p, 40);
    mk_tcp(p, &c, &s, 1, 0, F_SYN, NULL, 0);
    p[32] = 0x40;
    pl_add(&l, 101, p, 40);
    p[32] = 0xf0;
    pl_add(&l, 101, p, 40);
    mk_tcp(p, &c, &s, 1, 0, F_SYN, NULL, 0);
    p[9] = 1;
    pl_add(&l, 101, p, 40);
    CHECK_EQ_INT(run(&k, &l, NULL, NULL, &st), 0);
    CHECK_EQ_INT(k.udp, 2);
    CHECK_EQ_STR((char *)k.log.p, "U 3 f1\nU 4 f2\n");
    CHECK_EQ_STR((char *)k.udp_data.p, "quic");
    CHECK_EQ_INT(k.udp_src.family, AF_INET6);
    CHECK_EQ_INT(k.udp_src.port, 5000);
    CHECK_EQ_INT(k.udp_dst.port, 443);
    CHECK_EQ_INT(k.udp_dst.addr[15], 2);
    CHECK_EQ_INT(k.udp_frame, 2);
    CHECK_EQ_INT(st.udp, 2);
    CHECK_EQ_INT(st.fragments, 2);
    CHECK_EQ_INT(st.malformed, 3);
    CHECK_EQ_INT(st.not_ip, 1);
    CHECK_EQ_INT(k.n, 0);
    coll_free(&k);
    pl_free(&l);
}

/* At most max_conns: tombstones go first, then the idlest connection. */
static void test_eviction(void)
{
    tcpsynth_endpoint_t s = ep4(2, 80), c[4];
    plist_t l = {0};
    coll_t k;
    tcpreasm_options_t o = {0};
    tcpreasm_stats_t st;
    int i;

    for (i = 0; i < 4; i++)
        c[i] = ep4((uint8_t)(10 + i), (uint16_t)(41000 + i));
    seg(&l, &c[0], &s, 1, 0, F_SYN, NULL, 0);
    seg(&l, &c[0], &s, 2, 0, F_ACK | F_FIN, "a", 1);
    seg(&l, &s, &c[0], 9, 3, F_ACK | F_FIN, NULL, 0); /* conn 0 closes: a tombstone */
    seg(&l, &c[1], &s, 1, 0, F_SYN, NULL, 0);
    seg(&l, &c[2], &s, 1, 0, F_SYN, NULL, 0); /* replaces the tombstone */
    seg(&l, &c[1], &s, 2, 0, F_ACK, "b", 1);  /* conn 1 was used last */
    seg(&l, &c[3], &s, 1, 0, F_SYN, NULL, 0); /* evicts conn 2 */
    seg(&l, &c[2], &s, 2, 0, F_ACK, "c", 1);  /* a new conn 4, evicts 1 */
    o.max_conns = 2;
    CHECK_EQ_INT(run(&k, &l, NULL, &o, &st), 0);
    CHECK_EQ_STR((char *)k.log.p, "O0 f1 41000>80 hs=1\nD0 0 1 f2\nC0 1\n"
                                  "O1 f4 41001>80 hs=1\n"
                                  "O2 f5 41002>80 hs=1\n"
                                  "D1 0 1 f6\n"
                                  "C2 4\nO3 f7 41003>80 hs=1\n"
                                  "C1 4\nO4 f8 41002>80 hs=0\nD4 0 1 f8\n"
                                  "C3 3\nC4 3\n");
    CHECK_EQ_INT(st.evicted, 2);
    CHECK_EQ_INT(st.conns, 5);
    coll_free(&k);
    pl_free(&l);
}

/* A callback's error stops the call and sticks; nothing leaks (ASan). */
static void test_callback_error(void)
{
    plist_t l = {0};
    coll_t k;
    tcpreasm_t *r;
    size_t i;
    int rc = 0, n, err;

    conversation(&l, ep4(1, 40011), ep4(2, 80), 1, 2, 100, 1);
    /* Fail at every possible callback in turn. */
    for (n = 1; n < 200; n++) {
        memset(&k, 0, sizeof(k));
        k.fail_call = n;
        r = tcpreasm_new(&ccb, &k, NULL, &err);
        rc = 0;
        for (i = 0; i < l.n && rc == 0; i++) {
            /* Swap neighbours so that buffered data is pending at the failure. */
            size_t j = (i >= 3 && i + 1 < l.n) ? (i % 2 ? i + 1 : i - 1) : i;

            rc = tcpreasm_packet(r, l.v[j].lt, 0, l.v[j].d, l.v[j].len, j + 1);
        }
        if (rc == 0)
            rc = tcpreasm_finish(r);
        if (k.calls < n) {
            CHECK_EQ_INT(rc, 0);
            tcpreasm_free(r);
            coll_free(&k);
            break;
        }
        CHECK_EQ_INT(rc, -EIO);
        CHECK_EQ_INT(tcpreasm_packet(r, l.v[0].lt, 0, l.v[0].d, l.v[0].len, 1), -EIO);
        CHECK_EQ_INT(tcpreasm_finish(r), -EIO);
        tcpreasm_free(r);
        coll_free(&k);
    }
    CHECK(n > 20);
    /* Without callbacks at all. */
    {
        tcpreasm_callbacks_t none = {0};

        r = tcpreasm_new(&none, NULL, NULL, &err);
        for (i = 0; i < l.n; i++)
            CHECK_EQ_INT(tcpreasm_packet(r, l.v[i].lt, 0, l.v[i].d, l.v[i].len, i + 1), 0);
        tcpreasm_free(r); /* without finish */
    }
    CHECK(tcpreasm_new(NULL, NULL, NULL, &err) == NULL);
    CHECK_EQ_INT(err, -EINVAL);
    tcpreasm_free(NULL);
    pl_free(&l);
}

/* Many connections at once, interleaved; finish closes them in id order. */
static void test_many(void)
{
    plist_t all = {0};
    coll_t k;
    tcpreasm_stats_t st;
    size_t idx[40], i;
    int c, left = 1, bad = 0;

    /* Round robin over the conversations. */
    {
        plist_t conv[40];

        for (c = 0; c < 40; c++) {
            memset(&conv[c], 0, sizeof(conv[c]));
            conversation(&conv[c], ep4((uint8_t)c, (uint16_t)(30000 + c)), ep4(200, 80),
                         (uint32_t)c * 7, (uint32_t)c * 13, 250, c % 3);
            idx[c] = 0;
        }
        while (left) {
            left = 0;
            for (c = 0; c < 40; c++) {
                if (idx[c] < conv[c].n) {
                    pkt_t *p = &conv[c].v[idx[c]++];

                    pl_add(&all, p->lt, p->d, p->len);
                    left = 1;
                }
            }
        }
        for (c = 0; c < 40; c++)
            pl_free(&conv[c]);
    }
    CHECK_EQ_INT(run(&k, &all, NULL, NULL, &st), 0);
    CHECK_EQ_INT(k.n, 40);
    for (i = 0; i < 40; i++) {
        if (k.c[i].info.client.port != 30000 + i || !data_is(&k.c[i].data[0], req, sizeof(req)) ||
            !data_is(&k.c[i].data[1], resp, sizeof(resp)) ||
            k.c[i].how != (i % 3 ? TCPREASM_CLOSE_FIN : TCPREASM_CLOSE_END))
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    /* The END closes come last, in id order. */
    CHECK(strstr((char *)k.log.p, "C0 3\nC3 3\nC6 3\n") != NULL);
    coll_free(&k);
    pl_free(&all);
}

/* ---- against tshark ---- */

static int have_program(const char *name)
{
    char cmd[256];

    snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

typedef struct pipeline {
    tcpreasm_t *ra;
    coll_t *k;
} pipeline_t;

static int pl_packet(void *o, const pcapread_packet_t *p)
{
    pipeline_t *pp = o;

    return tcpreasm_packet(pp->ra, p->linktype, p->ts_ns, p->data, p->caplen, p->frame);
}

static int run_file(coll_t *k, const uint8_t *buf, size_t len)
{
    pcapread_callbacks_t cb = {0};
    pipeline_t pp;
    pcapread_t *r;
    int err, rc;

    memset(k, 0, sizeof(*k));
    memset(&pp, 0, sizeof(pp));
    pp.k = k;
    pp.ra = tcpreasm_new(&ccb, k, NULL, &err);
    cb.on_packet = pl_packet;
    r = pcapread_new(&cb, &pp, &err);
    rc = pcapread_feed(r, buf, len);
    if (rc == 0)
        rc = pcapread_finish(r);
    if (rc == 0)
        rc = tcpreasm_finish(pp.ra);
    pcapread_free(r);
    tcpreasm_free(pp.ra);
    return rc;
}

typedef struct wctx {
    pcapng_writer_t *w;
    pcapng_writer_t *w2; /* interface 0's packets only, for a classic pcap */
    uint32_t ifid;
    const uint8_t *link;
    size_t linklen;
    uint64_t ts;
    plist_t hold; /* packets held back to reorder */
} wctx_t;

static int w_emit(void *opaque, int dir, const uint8_t *hdr, size_t hdrlen, const uint8_t *payload,
                  size_t plen)
{
    wctx_t *x = opaque;
    uint8_t buf[70000];
    size_t n = 0;

    if (x->linklen)
        memcpy(buf, x->link, x->linklen);
    n = x->linklen;
    memcpy(buf + n, hdr, hdrlen);
    n += hdrlen;
    if (plen)
        memcpy(buf + n, payload, plen);
    n += plen;
    pl_add(&x->hold, x->ifid, buf, n);
    return 0;
}

static void w_flush(wctx_t *x, const size_t *order)
{
    size_t i, j;

    for (i = 0; i < x->hold.n; i++) {
        j = order ? order[i] : i;
        pcapng_writer_add_packet(x->w, x->hold.v[j].lt, x->ts += 1000, x->hold.v[j].d,
                                 (uint32_t)x->hold.v[j].len, (uint32_t)x->hold.v[j].len, NULL);
        if (x->hold.v[j].lt == 0)
            pcapng_writer_add_packet(x->w2, 0, x->ts, x->hold.v[j].d, (uint32_t)x->hold.v[j].len,
                                     (uint32_t)x->hold.v[j].len, NULL);
    }
    pl_free(&x->hold);
}

/*
 * Follow output: the bytes of node 0 and node 1, node 0's "addr:port", and
 * the bytes tshark reported missing (a "[N bytes missing in capture]" line,
 * which the raw output gives as hex like the data).
 */
static int tshark_follow(const char *path, int stream, bytes_t *n0, bytes_t *n1, char *node0,
                         size_t node0len, uint64_t missing[2])
{
    char cmd[512], line[70000];
    bytes_t chunk = {0};
    FILE *f;
    int in_data = 0;

    memset(n0, 0, sizeof(*n0));
    memset(n1, 0, sizeof(*n1));
    b_add(n0, "", 0);
    b_add(n1, "", 0);
    missing[0] = missing[1] = 0;
    snprintf(cmd, sizeof(cmd), "tshark -r %s -q -z follow,tcp,raw,%d 2>/dev/null", path, stream);
    f = popen(cmd, "r");
    if (!f)
        return -1;
    node0[0] = 0;
    while (fgets(line, sizeof(line), f)) {
        char *p = line;
        int side = 0;
        size_t i;
        unsigned long long n;
        char tail[1];

        line[strcspn(line, "\r\n")] = 0;
        if (strncmp(line, "Node 0: ", 8) == 0) {
            size_t n = strlen(line + 8) < node0len ? strlen(line + 8) : node0len - 1;

            memcpy(node0, line + 8, n);
            node0[n] = 0;
            continue;
        }
        if (strncmp(line, "Node 1: ", 8) == 0) {
            in_data = 1;
            continue;
        }
        if (!in_data || line[0] == '=' || !line[0])
            continue;
        if (*p == '\t') {
            side = 1;
            p++;
        }
        chunk.len = 0;
        for (i = 0; p[i] && p[i + 1]; i += 2) {
            unsigned v;
            uint8_t byte;

            if (sscanf(p + i, "%2x", &v) != 1)
                break;
            byte = (uint8_t)v;
            b_add(&chunk, &byte, 1);
        }
        /* "[800 bytes missing in capture file]", NUL-terminated. */
        if (chunk.len < 64 &&
            sscanf((char *)chunk.p, "[%llu bytes missing in captur%c", &n, tail) == 2 &&
            strchr((char *)chunk.p, ']') != NULL)
            missing[side] += n;
        else
            b_add(side ? n1 : n0, chunk.p, chunk.len);
    }
    b_free(&chunk);
    return pclose(f);
}

static void test_tshark(void)
{
    static const uint8_t eth_vlan[18] = {2, 0, 0, 0,    0, 2, 2,  0,    0,
                                         0, 0, 1, 0x81, 0, 0, 42, 0x86, 0xdd};
    static const uint8_t sll2[20] = {0x08, 0x00, 0, 0, 0, 0, 0, 7, 0, 1,
                                     4,    6,    2, 0, 0, 0, 0, 1, 0, 0};
    char path[] = "/tmp/test_tcpreasm.XXXXXX.pcapng", cmd[512], node0[128], want0[128];
    sink_t sink, sink2;
    bytes_t file = {0}, file2 = {0}, n0, n1, want_a = {0};
    pcapng_writer_t *w;
    wctx_t x;
    tcpsynth_t t;
    tcpsynth_endpoint_t a_c = ep4(1, 40100), a_s = ep4(2, 80), b_c = ep6(1, 40200),
                        b_s = ep6(2, 443), c_c = ep4(5, 40300), c_s = ep4(6, 8080);
    size_t order[64], i;
    coll_t k;
    FILE *f;
    int fd, stream, nstreams = 0, bad = 0;
    char line[256];
    int tshark_stream_of[512];
    uint64_t missing[2];
    char ipbuf[64];

    if (!have_program("tshark")) {
        printf("note: tshark not found, skipping the tshark comparison\n");
        return;
    }
    sink.write = b_sink_write;
    sink.write_tail = NULL;
    sink.opaque = &file;
    w = pcapng_writer_new(&sink, "test_tcpreasm", NULL, &fd);
    pcapng_writer_add_interface(w, PCAPNG_LINKTYPE_RAW, 65535, "raw", NULL);
    pcapng_writer_add_interface(w, 1, 65535, "eth", NULL);
    pcapng_writer_add_interface(w, 276, 65535, "any", NULL);
    sink2 = sink;
    sink2.opaque = &file2;
    memset(&x, 0, sizeof(x));
    x.w = w;
    x.w2 = pcapng_writer_new(&sink2, "test_tcpreasm", NULL, &fd);
    pcapng_writer_add_interface(x.w2, PCAPNG_LINKTYPE_RAW, 65535, "raw", NULL);

    /* A (IPv4, RAW): handshake; request; response with a swap and a retransmission. */
    x.ifid = 0;
    tcpsynth_init(&t, &a_c, &a_s, 0xfffff000u, 424242, 400, w_emit, &x);
    tcpsynth_handshake(&t);
    data_acked(&t, TCPSYNTH_C2S, req, sizeof(req));
    w_flush(&x, NULL);
    /* B (IPv6 over Ethernet + VLAN) starts in between. */
    x.ifid = 1;
    x.link = eth_vlan;
    x.linklen = sizeof(eth_vlan);
    {
        tcpsynth_t tb;

        tcpsynth_init(&tb, &b_c, &b_s, 7, 8, 1000, w_emit, &x);
        tcpsynth_handshake(&tb);
        data_acked(&tb, TCPSYNTH_C2S, "GET /b HTTP/1.1\r\n\r\n", 19);
        w_flush(&x, NULL);
        x.ifid = 0;
        x.link = NULL;
        x.linklen = 0;
        /* 5 segments and an ACK, captured as S0 S1 S4 ACK S2 S3: the ACK
           covers bytes not seen yet, so they count as lost (as in tshark),
           and S2 S3 as retransmissions. */
        data_acked(&t, TCPSYNTH_S2C, resp, 2000);
        order[0] = 0;
        order[1] = 1;
        order[2] = 4;
        order[3] = 5;
        order[4] = 2;
        order[5] = 3;
        w_flush(&x, order);
        data_acked(&t, TCPSYNTH_S2C, resp + 2000, 400);
        pl_add(&x.hold, 0, x.hold.v[0].d, x.hold.v[0].len); /* retransmitted */
        w_flush(&x, NULL);
        x.ifid = 1;
        x.link = eth_vlan;
        x.linklen = sizeof(eth_vlan);
        /* 3 segments, the last first, then the ACK: plain reordering. */
        data_acked(&tb, TCPSYNTH_S2C, resp, 3000);
        order[0] = 2;
        order[1] = 0;
        order[2] = 1;
        order[3] = 3;
        w_flush(&x, order);
        tcpsynth_fin(&tb, TCPSYNTH_S2C);
        tcpsynth_fin(&tb, TCPSYNTH_C2S);
        w_flush(&x, NULL);
    }
    x.ifid = 0;
    x.link = NULL;
    x.linklen = 0;
    tcpsynth_fin(&t, TCPSYNTH_C2S);
    tcpsynth_fin(&t, TCPSYNTH_S2C);
    w_flush(&x, NULL);
    /* C (IPv4 over SLL2), no handshake captured. */
    x.ifid = 2;
    x.link = sll2;
    x.linklen = sizeof(sll2);
    tcpsynth_init(&t, &c_c, &c_s, 1, 2, 0, w_emit, &x);
    tcpsynth_handshake(&t);
    pl_free(&x.hold);
    data_acked(&t, TCPSYNTH_C2S, "ping", 4);
    data_acked(&t, TCPSYNTH_S2C, "pong", 4);
    tcpsynth_rst(&t, TCPSYNTH_C2S);
    w_flush(&x, NULL);
    /* A's tuple again with a new ISN: port reuse. */
    x.ifid = 0;
    x.link = NULL;
    x.linklen = 0;
    tcpsynth_init(&t, &a_c, &a_s, 99, 100, 0, w_emit, &x);
    tcpsynth_handshake(&t);
    data_acked(&t, TCPSYNTH_C2S, "again", 5);
    data_acked(&t, TCPSYNTH_S2C, "and again", 9);
    tcpsynth_fin(&t, TCPSYNTH_C2S);
    tcpsynth_fin(&t, TCPSYNTH_S2C);
    w_flush(&x, NULL);
    pcapng_writer_free(w);
    pcapng_writer_free(x.w2);

    fd = mkstemps(path, 7);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    f = fdopen(fd, "wb");
    CHECK(fwrite(file.p, 1, file.len, f) == file.len);
    fclose(f);

    /* Our view. */
    CHECK_EQ_INT(run_file(&k, file.p, file.len), 0);
    CHECK_EQ_INT(k.n, 4);

    /* tshark's stream of every frame. */
    for (i = 0; i < 512; i++)
        tshark_stream_of[i] = -1;
    snprintf(cmd, sizeof(cmd), "tshark -r %s -T fields -e frame.number -e tcp.stream 2>/dev/null",
             path);
    f = popen(cmd, "r");
    while (f && fgets(line, sizeof(line), f)) {
        unsigned fr;
        int st;

        if (sscanf(line, "%u\t%d", &fr, &st) == 2 && fr < 512) {
            tshark_stream_of[fr] = st;
            if (st + 1 > nstreams)
                nstreams = st + 1;
        }
    }
    if (f)
        pclose(f);
    CHECK_EQ_INT(nstreams, k.n);
    /* Every frame we opened a connection with or took bytes from is in that stream. */
    {
        const char *p = (const char *)k.log.p;

        while (p && *p) {
            uint64_t id, fr;

            if ((sscanf(p, "O%" SCNu64 " f%" SCNu64, &id, &fr) == 2 ||
                 sscanf(p, "D%" SCNu64 " %*d %*u f%" SCNu64, &id, &fr) == 2) &&
                fr < 512 && tshark_stream_of[fr] != (int)id) {
                if (bad++ < 5)
                    fprintf(stderr, "frame %" PRIu64 ": ours %" PRIu64 ", tshark %d\n", fr, id,
                            tshark_stream_of[fr]);
            }
            p = strchr(p, '\n');
            if (p)
                p++;
        }
    }
    CHECK_EQ_INT(bad, 0);

    /* Each stream's bytes, per side. */
    for (stream = 0; stream < k.n; stream++) {
        const cconn_t *c = &k.c[stream];
        int fam = c->info.client.family;

        CHECK_EQ_INT(tshark_follow(path, stream, &n0, &n1, node0, sizeof(node0), missing), 0);
        CHECK_EQ_INT(c->gap[0], missing[0]);
        CHECK_EQ_INT(c->gap[1], missing[1]);
        inet_ntop(fam, c->info.client.addr, ipbuf, sizeof(ipbuf));
        snprintf(want0, sizeof(want0), fam == AF_INET6 ? "[%s]:%u" : "%s:%u", ipbuf,
                 c->info.client.port);
        /* Node 0 is the first packet's sender: the client, except when the
           capture begins with the server (not the case here). */
        if (strcmp(node0, want0) != 0)
            fprintf(stderr, "stream %d: tshark node 0 \"%s\", our client \"%s\"\n", stream, node0,
                    want0);
        CHECK_EQ_STR(node0, want0);
        CHECK_EQ_INT(c->data[0].len, n0.len);
        CHECK_EQ_INT(c->data[1].len, n1.len);
        CHECK(n0.len == c->data[0].len && memcmp(n0.p, c->data[0].p, n0.len) == 0);
        CHECK(n1.len == c->data[1].len && memcmp(n1.p, c->data[1].p, n1.len) == 0);
        b_free(&n0);
        b_free(&n1);
    }
    b_add(&want_a, resp, 800);
    b_add(&want_a, resp + 1600, 800);
    CHECK(data_is(&k.c[0].data[0], req, sizeof(req)));
    CHECK(data_is(&k.c[0].data[1], want_a.p, want_a.len));
    CHECK_EQ_INT(k.c[0].gap[1], 800);
    CHECK(data_is(&k.c[1].data[1], resp, 3000));
    CHECK_EQ_STR((char *)k.c[2].data[1].p, "pong");
    CHECK_EQ_INT(k.c[2].info.handshake, 0);
    CHECK_EQ_INT(k.c[2].how, TCPREASM_CLOSE_RST);
    CHECK_EQ_STR((char *)k.c[3].data[1].p, "and again");
    coll_free(&k);

    /* Interface 0's packets, rewritten by editcap as classic pcap (both
       resolutions): the same result. */
    if (have_program("editcap")) {
        static const char *fmts[] = {"pcap", "nsecpcap"};
        char out[64];
        bytes_t g = {0};
        coll_t k2;
        uint8_t buf[65536];
        size_t n, fi;

        snprintf(out, sizeof(out), "%s.raw", path);
        f = fopen(out, "wb");
        CHECK(f && fwrite(file2.p, 1, file2.len, f) == file2.len);
        if (f)
            fclose(f);
        for (fi = 0; fi < 2; fi++) {
            snprintf(cmd, sizeof(cmd), "editcap -F %s %s %s.pcap >/dev/null 2>&1", fmts[fi], out,
                     path);
            CHECK_EQ_INT(system(cmd), 0);
            snprintf(cmd, sizeof(cmd), "%s.pcap", path);
            f = fopen(cmd, "rb");
            g.len = 0;
            while (f && (n = fread(buf, 1, sizeof(buf), f)) > 0)
                b_add(&g, buf, n);
            if (f)
                fclose(f);
            CHECK(g.len > 24 && (g.p[0] == 0xd4 || g.p[0] == 0x4d));
            CHECK_EQ_INT(run_file(&k2, g.p, g.len), 0);
            CHECK_EQ_INT(k2.n, 2);
            CHECK(data_is(&k2.c[0].data[1], want_a.p, want_a.len));
            CHECK_EQ_STR((char *)k2.c[1].data[0].p, "again");
            coll_free(&k2);
            unlink(cmd);
        }
        b_free(&g);
        unlink(out);
    } else {
        printf("note: editcap not found, skipping the classic pcap rewrite\n");
    }
    unlink(path);
    b_free(&file);
    b_free(&file2);
    b_free(&want_a);
}

int main(void)
{
    fill(req, sizeof(req), 1);
    fill(resp, sizeof(resp), 2);
    test_in_order();
    test_out_of_order();
    test_duplicates();
    test_ack_gap();
    test_overlap();
    test_no_handshake();
    test_wrap();
    test_ipv6_ext();
    test_link_types();
    test_rst();
    test_fin();
    test_port_reuse();
    test_gap();
    test_truncated();
    test_udp_and_junk();
    test_eviction();
    test_callback_error();
    test_many();
    test_tshark();
    return check_done();
}

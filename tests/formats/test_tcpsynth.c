/* SPDX-License-Identifier: MIT */
/* Unit tests for formats/tcpsynth.c: every emitted packet is parsed back and
   its checksums recomputed with a plain reference implementation; when tshark
   is installed it judges a pcapng of an IPv4 and an IPv6 conversation. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pcapng.h"
#include "tcpsynth.h"

#include "../check.h"

#define FIN 0x01
#define SYN 0x02
#define RST 0x04
#define PSH 0x08
#define ACK 0x10

#define MAXPKT 4096

/* Emitted packets, copied (header and payload joined) for inspection. */
typedef struct cap {
    int n;
    struct {
        int dir;
        uint8_t *b;
        size_t len, hdrlen, plen;
        const uint8_t *payload; /* the pointer the callback got */
    } p[MAXPKT];
    int fail_at; /* 1-based emission that returns fail_rc */
    int fail_rc;
    int calls;
} cap_t;

static int cap_emit(void *opaque, int dir, const uint8_t *hdr, size_t hdrlen,
                    const uint8_t *payload, size_t plen)
{
    cap_t *c = opaque;

    c->calls++;
    if (c->fail_at && c->calls == c->fail_at)
        return c->fail_rc;
    if (c->n == MAXPKT)
        return -ENOSPC;
    c->p[c->n].dir = dir;
    c->p[c->n].len = hdrlen + plen;
    c->p[c->n].hdrlen = hdrlen;
    c->p[c->n].plen = plen;
    c->p[c->n].payload = payload;
    c->p[c->n].b = malloc(hdrlen + plen + 1);
    memcpy(c->p[c->n].b, hdr, hdrlen);
    if (plen)
        memcpy(c->p[c->n].b + hdrlen, payload, plen);
    c->n++;
    return 0;
}

static void cap_reset(cap_t *c)
{
    for (int i = 0; i < c->n; i++)
        free(c->p[i].b);
    memset(c, 0, sizeof(*c));
}

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* RFC 1071 done the slow, obvious way: big-endian 16-bit words. */
static uint32_t ref_sum(uint32_t sum, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (len & 1)
        sum += (uint32_t)p[len - 1] << 8;
    return sum;
}

/* A checksummed area including its checksum field sums to 0xffff. */
static int ref_ok(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return sum == 0xffff;
}

typedef struct seg {
    int v6;
    uint8_t src[16], dst[16];
    uint16_t sport, dport, win, ipid, mss;
    uint8_t ttl, flags;
    int df;
    uint32_t seq, ack;
    size_t tcphlen;
    const uint8_t *payload;
    size_t plen;
} seg_t;

/*
 * Parses a raw IPv4 or IPv6 TCP packet and checks its lengths and checksums.
 * Returns 0, or the line of the first failed check (and counts a failure).
 */
static int parse(const uint8_t *b, size_t len, seg_t *s)
{
    const uint8_t *tcp;
    size_t iphlen, tcplen;
    uint32_t sum;
    uint8_t ph[8];

    memset(s, 0, sizeof(*s));
#define P(cond)                                                                                    \
    do {                                                                                           \
        CHECK(cond);                                                                               \
        if (!(cond))                                                                               \
            return __LINE__;                                                                       \
    } while (0)
    P(len >= 20);
    if ((b[0] >> 4) == 4) {
        iphlen = 20;
        P(b[0] == 0x45);
        P(be16(b + 2) == len);
        P(b[9] == 6);
        P(ref_ok(ref_sum(0, b, 20)));
        s->ipid = be16(b + 4);
        s->df = be16(b + 6) == 0x4000;
        s->ttl = b[8];
        memcpy(s->src, b + 12, 4);
        memcpy(s->dst, b + 16, 4);
        tcplen = len - 20;
        ph[0] = 0;
        ph[1] = 6;
        ph[2] = (uint8_t)(tcplen >> 8);
        ph[3] = (uint8_t)tcplen;
        sum = ref_sum(ref_sum(0, b + 12, 8), ph, 4);
    } else {
        P((b[0] >> 4) == 6);
        P(len >= 40);
        iphlen = 40;
        s->v6 = 1;
        P(be32(b) == 0x60000000u);
        P(be16(b + 4) == len - 40);
        P(b[6] == 6);
        s->ttl = b[7];
        memcpy(s->src, b + 8, 16);
        memcpy(s->dst, b + 24, 16);
        tcplen = len - 40;
        memset(ph, 0, sizeof(ph));
        ph[2] = (uint8_t)(tcplen >> 8);
        ph[3] = (uint8_t)tcplen;
        ph[7] = 6;
        sum = ref_sum(ref_sum(0, b + 8, 32), ph, 8);
    }
    P(tcplen >= 20);
    tcp = b + iphlen;
    s->sport = be16(tcp);
    s->dport = be16(tcp + 2);
    s->seq = be32(tcp + 4);
    s->ack = be32(tcp + 8);
    s->tcphlen = (size_t)(tcp[12] >> 4) * 4;
    P((tcp[12] & 0x0f) == 0);
    s->flags = tcp[13];
    s->win = be16(tcp + 14);
    P(be16(tcp + 18) == 0);
    P(s->tcphlen >= 20 && s->tcphlen <= tcplen);
    if (s->tcphlen == 24) {
        P(tcp[20] == 2 && tcp[21] == 4);
        s->mss = be16(tcp + 22);
    }
    P(ref_ok(ref_sum(sum, tcp, tcplen)));
    s->payload = tcp + s->tcphlen;
    s->plen = tcplen - s->tcphlen;
#undef P
    return 0;
}

/*
 * Replays a whole capture as a receiver would: every packet parses with good
 * checksums, goes between the two endpoints, and carries the next sequence
 * number of its direction and an ACK of everything the peer sent; IP ids
 * count up per direction; bytes in flight stay below the window. The data of
 * each direction is appended to got[dir] (if not NULL).
 */
static void replay(const cap_t *c, const tcpsynth_t *t, uint8_t *got[2], size_t gotlen[2])
{
    uint32_t next[2] = {0, 0}, acked[2] = {0, 0};
    int syn[2] = {0, 0}, ipid[2] = {-1, -1};
    size_t alen = t->ep[0].family == AF_INET ? 4 : 16;

    for (int i = 0; i < c->n; i++) {
        int d = c->p[i].dir;
        seg_t s;

        if (parse(c->p[i].b, c->p[i].len, &s)) {
            fprintf(stderr, "  in packet %d\n", i);
            continue;
        }
        CHECK_EQ_INT(s.v6, t->ep[0].family == AF_INET6);
        CHECK(memcmp(s.src, t->ep[d].addr, alen) == 0);
        CHECK(memcmp(s.dst, t->ep[!d].addr, alen) == 0);
        CHECK_EQ_INT(s.sport, t->ep[d].port);
        CHECK_EQ_INT(s.dport, t->ep[!d].port);
        CHECK_EQ_INT(s.ttl, 64);
        CHECK_EQ_INT(s.win, 65535);
        CHECK_EQ_INT(c->p[i].hdrlen, c->p[i].len - s.plen);
        if (!s.v6) {
            CHECK(s.df);
            if (ipid[d] >= 0)
                CHECK_EQ_INT(s.ipid, (uint16_t)(ipid[d] + 1));
            ipid[d] = s.ipid;
        }
        if (s.flags & SYN) {
            CHECK(!syn[d]);
            CHECK_EQ_INT(s.tcphlen, 24);
            CHECK_EQ_INT(s.mss, t->mss);
            syn[d] = 1;
            next[d] = s.seq;
        } else {
            CHECK_EQ_INT(s.tcphlen, 20);
        }
        CHECK(syn[d]);
        CHECK_EQ_INT(s.seq, next[d]);
        if (d == TCPSYNTH_C2S && (s.flags & SYN))
            CHECK_EQ_INT(s.flags, SYN);
        else
            CHECK(s.flags & ACK);
        if (s.flags & ACK) {
            CHECK_EQ_INT(s.ack, next[!d]);
            acked[!d] = s.ack;
        }
        if (s.plen) {
            CHECK_EQ_INT(s.flags, PSH | ACK);
            CHECK(s.plen <= t->mss);
            /* In flight from the sender's view: below the peer's window. */
            CHECK((uint32_t)(s.seq + s.plen - acked[d]) < 65535u);
            CHECK(c->p[i].payload != NULL);
            if (got && got[d]) {
                memcpy(got[d] + gotlen[d], s.payload, s.plen);
                gotlen[d] += s.plen;
            }
        } else {
            CHECK(c->p[i].payload == NULL);
        }
        next[d] += (uint32_t)s.plen + !!(s.flags & SYN) + !!(s.flags & FIN);
    }
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

static const tcpsynth_endpoint_t cli4 = {AF_INET, {192, 0, 2, 1}, 50000};
static const tcpsynth_endpoint_t srv4 = {AF_INET, {198, 51, 100, 7}, 42424};
static const tcpsynth_endpoint_t cli6 = {
    AF_INET6, {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01}, 50001};
static const tcpsynth_endpoint_t srv6 = {
    AF_INET6, {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0xfe, 0xdc, 0xba, 0x98}, 42425};

static void test_init(void)
{
    tcpsynth_t t;
    cap_t *c = calloc(1, sizeof(*c));
    tcpsynth_endpoint_t bad = cli4;

    bad.family = AF_UNIX;
    CHECK_EQ_INT(tcpsynth_init(&t, &cli4, &srv6, 1, 2, 0, cap_emit, c), -EINVAL);
    CHECK_EQ_INT(tcpsynth_init(&t, &bad, &bad, 1, 2, 0, cap_emit, c), -EINVAL);
    CHECK_EQ_INT(tcpsynth_init(&t, &cli4, &srv4, 1, 2, 0, NULL, c), -EINVAL);
    CHECK_EQ_INT(tcpsynth_init(&t, &cli4, &srv4, 1, 2, 65535 - 39, cap_emit, c), -EINVAL);
    CHECK_EQ_INT(tcpsynth_init(&t, &cli4, &srv4, 1, 2, 65535 - 40, cap_emit, c), 0);
    CHECK_EQ_INT(tcpsynth_init(&t, &cli6, &srv6, 1, 2, 65535 - 19, cap_emit, c), -EINVAL);
    CHECK_EQ_INT(tcpsynth_init(&t, &cli6, &srv6, 1, 2, 65535 - 20, cap_emit, c), 0);
    CHECK_EQ_INT(tcpsynth_header_len(&t), 60);
    CHECK_EQ_INT(tcpsynth_init(&t, &cli4, &srv4, 1, 2, 0, cap_emit, c), 0);
    CHECK_EQ_INT(t.mss, 32768);
    CHECK_EQ_INT(tcpsynth_header_len(&t), 40);
    CHECK_EQ_INT(t.open, 0);
    CHECK_EQ_INT(c->n, 0); /* init emits nothing */
    free(c);
}

static void test_handshake(void)
{
    cap_t *c = calloc(1, sizeof(*c));
    tcpsynth_t t;
    seg_t s;

    tcpsynth_init(&t, &cli4, &srv4, 1000, 5000, 1400, cap_emit, c);
    CHECK_EQ_INT(tcpsynth_handshake(&t), 0);
    CHECK_EQ_INT(c->n, 3);
    CHECK_EQ_INT(tcpsynth_handshake(&t), 0); /* once only */
    CHECK_EQ_INT(c->n, 3);

    CHECK_EQ_INT(c->p[0].dir, TCPSYNTH_C2S);
    CHECK_EQ_INT(c->p[0].len, 44);
    CHECK_EQ_INT(parse(c->p[0].b, c->p[0].len, &s), 0);
    CHECK_EQ_INT(s.flags, SYN);
    CHECK_EQ_INT(s.seq, 1000);
    CHECK_EQ_INT(s.ack, 0);
    CHECK_EQ_INT(s.mss, 1400);
    CHECK_EQ_INT(s.ipid, 0);

    CHECK_EQ_INT(c->p[1].dir, TCPSYNTH_S2C);
    CHECK_EQ_INT(parse(c->p[1].b, c->p[1].len, &s), 0);
    CHECK_EQ_INT(s.flags, SYN | ACK);
    CHECK_EQ_INT(s.seq, 5000);
    CHECK_EQ_INT(s.ack, 1001);
    CHECK_EQ_INT(s.mss, 1400);
    CHECK_EQ_INT(s.ipid, 0);
    CHECK_EQ_INT(s.sport, 42424);
    CHECK_EQ_INT(s.dport, 50000);

    CHECK_EQ_INT(c->p[2].dir, TCPSYNTH_C2S);
    CHECK_EQ_INT(c->p[2].len, 40);
    CHECK_EQ_INT(parse(c->p[2].b, c->p[2].len, &s), 0);
    CHECK_EQ_INT(s.flags, ACK);
    CHECK_EQ_INT(s.seq, 1001);
    CHECK_EQ_INT(s.ack, 5001);
    CHECK_EQ_INT(s.ipid, 1);

    CHECK_EQ_INT(t.seq[0], 1001);
    CHECK_EQ_INT(t.seq[1], 5001);
    CHECK_EQ_INT(t.open, 1);
    replay(c, &t, NULL, NULL);
    cap_reset(c);
    free(c);
}

/* A fixed packet, its bytes written out by hand (checksums computed apart). */
static void test_golden(void)
{
    static const uint8_t syn[44] = {
        0x45, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00,
        10,   0,    0,    1,    10,   0,    0,    2, /* IPv4 */
        0x30, 0x39, 0x01, 0xbb, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x60, 0x02, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, /* TCP */
    };
    tcpsynth_endpoint_t a = {AF_INET, {10, 0, 0, 1}, 12345}, b = {AF_INET, {10, 0, 0, 2}, 443};
    cap_t *c = calloc(1, sizeof(*c));
    tcpsynth_t t;
    uint8_t want[44];
    uint16_t ip, tcp;

    /* IP: ~(4500+002c+0000+4000+4006+0a00+0001+0a00+0002) = ~d935 = 26ca.
       TCP: pseudo-header 0a00+0001+0a00+0002+0006+0018, then the header
       3039+01bb+0000+0001+0000+0000+6002+ffff+0000+0000+0204+05b4; the sum
       folds to adcf+1 -> ~add0 = 522f (checked with a separate script). */
    memcpy(want, syn, sizeof(want));
    ip = 0x26ca;
    tcp = 0x522f;
    want[10] = (uint8_t)(ip >> 8);
    want[11] = (uint8_t)ip;
    want[36] = (uint8_t)(tcp >> 8);
    want[37] = (uint8_t)tcp;
    tcpsynth_init(&t, &a, &b, 1, 7, 1460, cap_emit, c);
    tcpsynth_handshake(&t);
    CHECK_EQ_INT(c->p[0].len, 44);
    CHECK(memcmp(c->p[0].b, want, 44) == 0);
    cap_reset(c);
    free(c);
}

static void test_data(void)
{
    cap_t *c = calloc(1, sizeof(*c));
    uint8_t req[2500], resp[1000], *got[2];
    size_t gotlen[2] = {0, 0};
    tcpsynth_t t;
    seg_t s;

    fill(req, sizeof(req), 1);
    fill(resp, sizeof(resp), 2);
    got[0] = malloc(sizeof(req));
    got[1] = malloc(sizeof(resp) + 1);
    tcpsynth_init(&t, &cli4, &srv4, 0x10000000, 0x20000000, 1000, cap_emit, c);
    tcpsynth_handshake(&t);
    CHECK_EQ_INT(tcpsynth_data(&t, TCPSYNTH_C2S, req, 0), 0);
    CHECK_EQ_INT(c->n, 3);
    CHECK_EQ_INT(tcpsynth_data(&t, TCPSYNTH_C2S, req, sizeof(req)), 0);
    /* 1000 + 1000 + 500, and no ACK yet: the server's response will carry it. */
    CHECK_EQ_INT(c->n, 3 + 3);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(c->p[3 + i].dir, TCPSYNTH_C2S);
        CHECK_EQ_INT(c->p[3 + i].hdrlen, 40);
        CHECK_EQ_INT(c->p[3 + i].plen, i < 2 ? 1000 : 500);
        /* The payload is the caller's buffer, not a copy. */
        CHECK(c->p[3 + i].payload == req + 1000 * i);
        CHECK_EQ_INT(parse(c->p[3 + i].b, c->p[3 + i].len, &s), 0);
        CHECK_EQ_INT(s.flags, PSH | ACK);
        CHECK_EQ_INT(s.seq, 0x10000001 + 1000 * i);
        CHECK_EQ_INT(s.ack, 0x20000001);
    }
    CHECK_EQ_INT(t.owed[TCPSYNTH_C2S], 1);

    CHECK_EQ_INT(tcpsynth_data(&t, TCPSYNTH_S2C, resp, sizeof(resp)), 0);
    CHECK_EQ_INT(c->n, 7); /* exactly mss: one segment, the request's ACK on it */
    CHECK_EQ_INT(c->p[6].dir, TCPSYNTH_S2C);
    CHECK_EQ_INT(parse(c->p[6].b, c->p[6].len, &s), 0);
    CHECK_EQ_INT(s.flags, PSH | ACK);
    CHECK_EQ_INT(s.seq, 0x20000001);
    CHECK_EQ_INT(s.ack, 0x10000001 + 2500);
    CHECK_EQ_INT(s.plen, 1000);
    CHECK_EQ_INT(t.owed[TCPSYNTH_C2S], 0);
    CHECK_EQ_INT(t.owed[TCPSYNTH_S2C], 1);

    /* The server writes again before the client says anything: the client's delayed ACK of
       the first write goes before the second. */
    CHECK_EQ_INT(tcpsynth_data(&t, TCPSYNTH_S2C, resp, 1), 0);
    CHECK_EQ_INT(c->n, 9);
    CHECK_EQ_INT(c->p[7].dir, TCPSYNTH_C2S);
    CHECK_EQ_INT(parse(c->p[7].b, c->p[7].len, &s), 0);
    CHECK_EQ_INT(s.flags, ACK);
    CHECK_EQ_INT(s.seq, 0x10000001 + 2500);
    CHECK_EQ_INT(s.ack, 0x20000001 + 1000);
    CHECK_EQ_INT(s.plen, 0);
    CHECK_EQ_INT(parse(c->p[8].b, c->p[8].len, &s), 0);
    CHECK_EQ_INT(s.seq, 0x20000001 + 1000);
    CHECK_EQ_INT(s.plen, 1);
    CHECK_EQ_INT(t.seq[0], 0x10000001 + 2500);
    CHECK_EQ_INT(t.seq[1], 0x20000001 + 1001);

    /* tcpsynth_ack emits the owed ACK alone, once; nothing when none is owed. */
    CHECK_EQ_INT(tcpsynth_ack(&t, TCPSYNTH_C2S), 0);
    CHECK_EQ_INT(c->n, 9);
    CHECK_EQ_INT(tcpsynth_ack(&t, TCPSYNTH_S2C), 0);
    CHECK_EQ_INT(c->n, 10);
    CHECK_EQ_INT(c->p[9].dir, TCPSYNTH_C2S);
    CHECK_EQ_INT(parse(c->p[9].b, c->p[9].len, &s), 0);
    CHECK_EQ_INT(s.flags, ACK);
    CHECK_EQ_INT(s.ack, 0x20000001 + 1001);
    CHECK_EQ_INT(tcpsynth_ack(&t, TCPSYNTH_S2C), 0);
    CHECK_EQ_INT(c->n, 10);
    CHECK_EQ_INT(tcpsynth_ack(&t, 2), -EINVAL);

    CHECK_EQ_INT(tcpsynth_data(&t, 2, req, 1), -EINVAL);
    CHECK_EQ_INT(tcpsynth_data(&t, -1, req, 1), -EINVAL);
    CHECK_EQ_INT(tcpsynth_data(&t, 0, NULL, 1), -EINVAL);
    CHECK_EQ_INT(c->n, 10);

    replay(c, &t, got, gotlen);
    CHECK_EQ_INT(gotlen[0], sizeof(req));
    CHECK_EQ_INT(gotlen[1], sizeof(resp) + 1);
    CHECK(memcmp(got[0], req, sizeof(req)) == 0);
    CHECK(memcmp(got[1], resp, sizeof(resp)) == 0);
    CHECK_EQ_INT(got[1][sizeof(resp)], resp[0]);
    free(got[0]);
    free(got[1]);
    cap_reset(c);
    free(c);
}

/* A long transfer: the receiver acknowledges before the window fills. */
static void test_window(void)
{
    size_t len = 1000000;
    uint8_t *data = malloc(len), *got[2];
    size_t gotlen[2] = {0, 0};
    cap_t *c = calloc(1, sizeof(*c));
    tcpsynth_t t;
    int data_pkts = 0, acks = 0;

    fill(data, len, 3);
    got[0] = NULL;
    got[1] = malloc(len);
    /* 30000: two segments fit below 65535, a third would not. */
    tcpsynth_init(&t, &cli4, &srv4, 1, 0xfffff000u, 30000, cap_emit, c); /* seq wraps */
    CHECK_EQ_INT(tcpsynth_data(&t, TCPSYNTH_S2C, data, len), 0);
    for (int i = 3; i < c->n; i++) {
        if (c->p[i].dir == TCPSYNTH_S2C)
            data_pkts++;
        else
            acks++;
    }
    CHECK_EQ_INT(data_pkts, (len + 29999) / 30000);
    CHECK_EQ_INT(acks, (data_pkts - 1) / 2); /* before every third segment; the last is owed */
    replay(c, &t, got, gotlen);
    CHECK_EQ_INT(gotlen[1], len);
    CHECK(memcmp(got[1], data, len) == 0);
    CHECK_EQ_INT(t.seq[1], (uint32_t)(0xfffff001u + len));
    free(got[1]);
    free(data);
    cap_reset(c);
    free(c);
}

static void test_fin_rst(void)
{
    cap_t *c = calloc(1, sizeof(*c));
    tcpsynth_t t;
    seg_t s;

    tcpsynth_init(&t, &cli4, &srv4, 100, 200, 0, cap_emit, c);
    tcpsynth_handshake(&t);
    tcpsynth_data(&t, TCPSYNTH_C2S, "GET", 3);
    CHECK_EQ_INT(c->n, 4);
    CHECK_EQ_INT(tcpsynth_fin(&t, TCPSYNTH_C2S), 0);
    CHECK_EQ_INT(c->n, 6);
    CHECK_EQ_INT(parse(c->p[4].b, c->p[4].len, &s), 0);
    CHECK_EQ_INT(c->p[4].dir, TCPSYNTH_C2S);
    CHECK_EQ_INT(s.flags, FIN | ACK);
    CHECK_EQ_INT(s.seq, 104);
    CHECK_EQ_INT(s.ack, 201);
    CHECK_EQ_INT(parse(c->p[5].b, c->p[5].len, &s), 0);
    CHECK_EQ_INT(c->p[5].dir, TCPSYNTH_S2C);
    CHECK_EQ_INT(s.flags, ACK);
    CHECK_EQ_INT(s.seq, 201);
    CHECK_EQ_INT(s.ack, 105); /* the FIN takes a sequence number; the data is acked with it */
    CHECK_EQ_INT(t.fin[0], 1);
    CHECK_EQ_INT(t.owed[0], 0);

    CHECK_EQ_INT(tcpsynth_fin(&t, TCPSYNTH_C2S), 0); /* once only */
    CHECK_EQ_INT(c->n, 6);
    CHECK_EQ_INT(tcpsynth_data(&t, TCPSYNTH_C2S, "x", 1), -EPIPE);
    CHECK_EQ_INT(c->n, 6);

    /* Half-closed: the server can still send, then closes; one ACK covers both. */
    CHECK_EQ_INT(tcpsynth_data(&t, TCPSYNTH_S2C, "200 OK", 6), 0);
    CHECK_EQ_INT(c->n, 7);
    CHECK_EQ_INT(parse(c->p[6].b, c->p[6].len, &s), 0);
    CHECK_EQ_INT(s.seq, 201);
    CHECK_EQ_INT(s.ack, 105);
    CHECK_EQ_INT(tcpsynth_fin(&t, TCPSYNTH_S2C), 0);
    CHECK_EQ_INT(c->n, 9);
    CHECK_EQ_INT(parse(c->p[7].b, c->p[7].len, &s), 0);
    CHECK_EQ_INT(s.flags, FIN | ACK);
    CHECK_EQ_INT(s.seq, 207);
    CHECK_EQ_INT(s.ack, 105);
    CHECK_EQ_INT(parse(c->p[8].b, c->p[8].len, &s), 0);
    CHECK_EQ_INT(s.flags, ACK);
    CHECK_EQ_INT(s.seq, 105);
    CHECK_EQ_INT(s.ack, 208);
    replay(c, &t, NULL, NULL);
    cap_reset(c);

    /* RST carries the current numbers and changes nothing. */
    tcpsynth_init(&t, &cli4, &srv4, 100, 200, 0, cap_emit, c);
    tcpsynth_handshake(&t);
    tcpsynth_data(&t, TCPSYNTH_S2C, "hello", 5);
    CHECK_EQ_INT(tcpsynth_rst(&t, TCPSYNTH_C2S), 0);
    CHECK_EQ_INT(c->n, 5);
    CHECK_EQ_INT(parse(c->p[4].b, c->p[4].len, &s), 0);
    CHECK_EQ_INT(c->p[4].dir, TCPSYNTH_C2S);
    CHECK_EQ_INT(s.flags, RST | ACK);
    CHECK_EQ_INT(s.seq, 101);
    CHECK_EQ_INT(s.ack, 206);
    CHECK_EQ_INT(t.seq[0], 101);
    CHECK_EQ_INT(tcpsynth_rst(&t, 5), -EINVAL);
    CHECK_EQ_INT(tcpsynth_fin(&t, 5), -EINVAL);
    cap_reset(c);
    free(c);
}

/* tcpsynth_pure_ack tells the ACKs alone from everything else, both families. */
static void test_pure_ack(void)
{
    cap_t *c = calloc(1, sizeof(*c));
    tcpsynth_t t;
    seg_t s;

    for (int v6 = 0; v6 < 2; v6++) {
        tcpsynth_init(&t, v6 ? &cli6 : &cli4, v6 ? &srv6 : &srv4, 1, 1, 0, cap_emit, c);
        tcpsynth_handshake(&t);                    /* SYN, SYN/ACK, ACK: 2 */
        tcpsynth_data(&t, TCPSYNTH_C2S, "GET", 3); /* 3 */
        tcpsynth_data(&t, TCPSYNTH_C2S, " /", 2);  /* the owed ACK 4, then 5 */
        tcpsynth_fin(&t, TCPSYNTH_C2S);            /* FIN/ACK 6, ACK 7 */
        tcpsynth_rst(&t, TCPSYNTH_S2C);            /* RST/ACK 8 */
        CHECK_EQ_INT(c->n, 9);
        for (int i = 0; i < c->n; i++) {
            int want = i == 2 || i == 4 || i == 7;

            CHECK_EQ_INT(parse(c->p[i].b, c->p[i].len, &s), 0);
            CHECK_EQ_INT(want, s.flags == ACK && s.plen == 0);
            CHECK_EQ_INT(tcpsynth_pure_ack(c->p[i].b, c->p[i].hdrlen, c->p[i].plen), want);
        }
        cap_reset(c);
    }
    CHECK_EQ_INT(tcpsynth_pure_ack(NULL, 40, 0), 0);
    CHECK_EQ_INT(tcpsynth_pure_ack((const uint8_t *)"E", 0, 0), 0);
    free(c);
}

/* Data, FIN or RST before the handshake bring the handshake with them. */
static void test_implicit_handshake(void)
{
    cap_t *c = calloc(1, sizeof(*c));
    tcpsynth_t t;
    seg_t s;

    tcpsynth_init(&t, &cli6, &srv6, 7, 9, 0, cap_emit, c);
    CHECK_EQ_INT(tcpsynth_data(&t, TCPSYNTH_S2C, "220 ready", 9), 0);
    CHECK_EQ_INT(c->n, 4);
    CHECK_EQ_INT(parse(c->p[0].b, c->p[0].len, &s), 0);
    CHECK_EQ_INT(s.flags, SYN);
    CHECK_EQ_INT(t.open, 1);
    replay(c, &t, NULL, NULL);
    cap_reset(c);

    tcpsynth_init(&t, &cli4, &srv4, 7, 9, 0, cap_emit, c);
    CHECK_EQ_INT(tcpsynth_fin(&t, TCPSYNTH_C2S), 0);
    CHECK_EQ_INT(c->n, 5);
    replay(c, &t, NULL, NULL);
    cap_reset(c);

    tcpsynth_init(&t, &cli4, &srv4, 7, 9, 0, cap_emit, c);
    CHECK_EQ_INT(tcpsynth_rst(&t, TCPSYNTH_S2C), 0);
    CHECK_EQ_INT(c->n, 4);
    cap_reset(c);
    free(c);
}

static void test_ipv6(void)
{
    cap_t *c = calloc(1, sizeof(*c));
    uint8_t data[3001], *got[2];
    size_t gotlen[2] = {0, 0};
    tcpsynth_t t;
    seg_t s;

    fill(data, sizeof(data), 4);
    got[0] = malloc(sizeof(data));
    got[1] = malloc(sizeof(data));
    tcpsynth_init(&t, &cli6, &srv6, 0xfffffffe, 42, 1220, cap_emit, c);
    CHECK_EQ_INT(tcpsynth_header_len(&t), 60);
    tcpsynth_handshake(&t);
    CHECK_EQ_INT(c->p[0].len, 64);
    CHECK_EQ_INT(parse(c->p[0].b, c->p[0].len, &s), 0);
    CHECK_EQ_INT(s.v6, 1);
    CHECK_EQ_INT(s.mss, 1220);
    CHECK(memcmp(s.src, cli6.addr, 16) == 0);
    CHECK(memcmp(s.dst, srv6.addr, 16) == 0);
    CHECK_EQ_INT(tcpsynth_data(&t, TCPSYNTH_C2S, data, sizeof(data)), 0);
    CHECK_EQ_INT(tcpsynth_data(&t, TCPSYNTH_S2C, data, sizeof(data)), 0);
    CHECK_EQ_INT(c->n, 3 + 3 + 3);
    CHECK_EQ_INT(c->p[3].len, 60 + 1220);
    CHECK_EQ_INT(c->p[5].len, 60 + 561);
    CHECK_EQ_INT(parse(c->p[3].b, c->p[3].len, &s), 0);
    CHECK_EQ_INT(s.seq, 0xffffffff);
    CHECK_EQ_INT(parse(c->p[4].b, c->p[4].len, &s), 0);
    CHECK_EQ_INT(s.seq, 1220 - 1); /* wrapped */
    CHECK_EQ_INT(tcpsynth_fin(&t, TCPSYNTH_S2C), 0);
    CHECK_EQ_INT(tcpsynth_fin(&t, TCPSYNTH_C2S), 0);
    replay(c, &t, got, gotlen);
    CHECK_EQ_INT(gotlen[0], sizeof(data));
    CHECK_EQ_INT(gotlen[1], sizeof(data));
    CHECK(memcmp(got[0], data, sizeof(data)) == 0);
    CHECK(memcmp(got[1], data, sizeof(data)) == 0);
    free(got[0]);
    free(got[1]);
    cap_reset(c);
    free(c);
}

/* Checksums for every payload length and alignment, against the reference. */
static void test_checksums(void)
{
    cap_t *c = calloc(1, sizeof(*c));
    uint8_t buf[600];
    tcpsynth_t t;
    seg_t s;
    int bad = 0, n = 0;

    fill(buf, sizeof(buf), 5);
    buf[0] = buf[1] = 0xff; /* words of all ones and zeros are edge cases */
    buf[2] = buf[3] = 0;
    for (int fam = 0; fam < 2; fam++) {
        for (size_t off = 0; off < 4; off++) {
            for (size_t len = 1; len < 300; len += 1) {
                tcpsynth_init(&t, fam ? &cli6 : &cli4, fam ? &srv6 : &srv4, (uint32_t)len,
                              (uint32_t)off, 0, cap_emit, c);
                t.open = 1;
                tcpsynth_data(&t, (int)(len & 1), buf + off, len);
                for (int i = 0; i < c->n; i++) {
                    n++;
                    if (parse(c->p[i].b, c->p[i].len, &s))
                        bad++;
                }
                cap_reset(c);
            }
        }
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(n, 2 * 4 * 299);

    /* All-ones payload, a checksum that folds more than once. */
    memset(buf, 0xff, sizeof(buf));
    tcpsynth_init(&t, &cli4, &srv4, 0xffffffff, 0xffffffff, 0, cap_emit, c);
    t.open = 1;
    tcpsynth_data(&t, 0, buf, sizeof(buf));
    CHECK_EQ_INT(parse(c->p[0].b, c->p[0].len, &s), 0);
    cap_reset(c);
    free(c);
}

/* An emit error stops the call, is returned, and leaves the state before it. */
static void test_emit_error(void)
{
    cap_t *c = calloc(1, sizeof(*c));
    uint8_t data[5000] = {0};
    tcpsynth_t t;

    tcpsynth_init(&t, &cli4, &srv4, 1, 1, 1000, cap_emit, c);
    c->fail_at = 2;
    c->fail_rc = -ENOSPC;
    CHECK_EQ_INT(tcpsynth_handshake(&t), -ENOSPC);
    CHECK_EQ_INT(t.open, 0);
    CHECK_EQ_INT(t.seq[0], 1);
    c->fail_at = 0;
    CHECK_EQ_INT(tcpsynth_handshake(&t), 0);
    cap_reset(c);

    tcpsynth_init(&t, &cli4, &srv4, 1, 1, 1000, cap_emit, c);
    tcpsynth_handshake(&t);
    c->fail_at = c->calls + 3; /* the third segment */
    c->fail_rc = 7;
    CHECK_EQ_INT(tcpsynth_data(&t, 0, data, sizeof(data)), 7);
    CHECK_EQ_INT(c->n, 5);
    CHECK_EQ_INT(t.seq[0], 2 + 2000);
    c->fail_at = 0;
    CHECK_EQ_INT(tcpsynth_data(&t, 0, data, 1000), 0);
    replay(c, &t, NULL, NULL);
    cap_reset(c);
    free(c);
}

/* ---- tshark ---- */

static char *run(const char *cmd, int *status)
{
    FILE *f = popen(cmd, "r");
    char *out = NULL, chunk[65536];
    size_t len = 0, cap = 0, n;

    *status = -1;
    if (!f)
        return strdup("");
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (len + n + 1 > cap) {
            char *nb;

            cap = (len + n + 1) * 2;
            nb = realloc(out, cap);
            if (!nb)
                break;
            out = nb;
        }
        memcpy(out + len, chunk, n);
        len += n;
    }
    if (out)
        out[len] = 0;
    else
        out = strdup("");
    *status = pclose(f);
    return out;
}

static int have_tshark(void)
{
    int st;
    char *out = run("command -v tshark >/dev/null 2>&1 && echo yes", &st);
    int yes = strcmp(out, "yes\n") == 0;

    free(out);
    return yes;
}

static int count_lines(const char *s)
{
    int n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

typedef struct rec {
    pcapng_writer_t *w;
    uint64_t *ts; /* shared by the conversations of one file */
    pcapng_pkt_opts_t o;
    int packets;
    int corrupt; /* 1: flip a payload byte, 2: change the TTL, after checksumming;
                    3: drop the next data segment */
} rec_t;

static int rec_emit(void *opaque, int dir, const uint8_t *hdr, size_t hdrlen,
                    const uint8_t *payload, size_t plen)
{
    rec_t *r = opaque;
    pcapng_pkt_opts_t o = r->o;
    uint8_t h[64], p[64];
    int64_t fr;

    o.direction = dir == TCPSYNTH_C2S ? PCAPNG_DIR_OUTBOUND : PCAPNG_DIR_INBOUND;
    *r->ts += 10;
    if (r->corrupt == 3 && plen) {
        r->corrupt = 0;
        return 0;
    }
    if (r->corrupt == 1 && plen && plen <= sizeof(p)) {
        memcpy(p, payload, plen);
        p[0] ^= 0x01;
        fr = pcapng_writer_add_packet2(r->w, 0, *r->ts, hdr, (uint32_t)hdrlen, p, (uint32_t)plen,
                                       &o);
        r->corrupt = 0;
    } else if (r->corrupt == 2 && hdrlen <= sizeof(h) && hdr[0] == 0x45) {
        memcpy(h, hdr, hdrlen);
        h[8] = 63;
        fr = pcapng_writer_add_packet2(r->w, 0, *r->ts, h, (uint32_t)hdrlen, payload,
                                       (uint32_t)plen, &o);
        r->corrupt = 0;
    } else {
        fr = pcapng_writer_add_packet2(r->w, 0, *r->ts, hdr, (uint32_t)hdrlen, payload,
                                       (uint32_t)plen, &o);
    }
    if (fr < 0)
        return (int)fr;
    r->packets++;
    CHECK_EQ_INT(fr, (int64_t)pcapng_writer_packets(r->w));
    return 0;
}

typedef struct filesink {
    FILE *f;
} filesink_t;

static int file_write(void *opaque, const void *p, size_t n)
{
    filesink_t *fs = opaque;

    return fwrite(p, 1, n, fs->f) == n ? 0 : -EIO;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/*
 * Parses `tshark -z follow,tcp,raw,N` output: lines of hex, those of the
 * second node (the server) indented with a tab. Returns 0 if well formed.
 */
static int parse_follow(const char *out, uint8_t *got[2], size_t gotlen[2], size_t max)
{
    const char *l = out, *nl;
    int in_data = 0;

    for (; *l; l = nl + 1) {
        int d = 0;

        nl = strchr(l, '\n');
        if (!nl)
            break;
        if (strncmp(l, "Node 1:", 7) == 0) {
            in_data = 1;
            continue;
        }
        if (!in_data || *l == '=')
            continue;
        if (*l == '\t') {
            d = 1;
            l++;
        }
        for (; l + 1 < nl; l += 2) {
            int hi = hexval(l[0]), lo = hexval(l[1]);

            if (hi < 0 || lo < 0 || gotlen[d] >= max)
                return -1;
            got[d][gotlen[d]++] = (uint8_t)(hi << 4 | lo);
        }
        if (l != nl)
            return -1;
    }
    return in_data ? 0 : -1;
}

static void test_tshark(void)
{
    char path[] = "/tmp/test_tcpsynth_XXXXXX.pcapng";
    char bad[] = "/tmp/test_tcpsynth_bad_XXXXXX.pcapng";
    char cmd[1024], *out;
    size_t c2s4 = 3000, s2c4 = 150000, c2s6 = 2500, s2c6 = 70001, max = 200000;
    uint8_t *d[4], *got[2];
    size_t gotlen[2];
    filesink_t fs;
    sink_t sink = {file_write, NULL, &fs};
    rec_t r4 = {0}, r6 = {0};
    tcpsynth_t t4, t6;
    uint64_t ts = 1700000000000000ull;
    int st, fd, total, v4pkts;

    if (!have_tshark()) {
        printf("note: tshark not found, skipping the tshark checks\n");
        return;
    }
    d[0] = malloc(c2s4);
    d[1] = malloc(s2c4);
    d[2] = malloc(c2s6);
    d[3] = malloc(s2c6);
    fill(d[0], c2s4, 10);
    fill(d[1], s2c4, 11);
    fill(d[2], c2s6, 12);
    fill(d[3], s2c6, 13);
    got[0] = malloc(max);
    got[1] = malloc(max);

    fd = mkstemps(path, 7);
    CHECK(fd >= 0);
    fs.f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    CHECK(fs.f != NULL);
    if (!fs.f)
        goto out;
    r4.w = pcapng_writer_new(&sink, "test_tcpsynth", NULL, NULL);
    CHECK(r4.w != NULL);
    CHECK_EQ_INT(pcapng_writer_add_interface(r4.w, PCAPNG_LINKTYPE_RAW, 262144, "mitm", NULL), 0);
    CHECK_EQ_INT(pcapng_writer_add_darwin_process(r4.w, 1234, "curl"), 0);
    CHECK_EQ_INT(pcapng_writer_add_darwin_process(r4.w, 99, "wget"), 1);
    r6.w = r4.w;
    r4.ts = r6.ts = &ts;
    r4.o = (pcapng_pkt_opts_t){.comment = "pid=1234 comm=curl", .darwin_process = 0};
    r6.o = (pcapng_pkt_opts_t){.comment = "pid=99 comm=wget", .darwin_process = 1};
    tcpsynth_init(&t4, &cli4, &srv4, 0x12345678, 0x9abcdef0, 1400, rec_emit, &r4);
    tcpsynth_init(&t6, &cli6, &srv6, 1, 0xffffff00u, 1220, rec_emit, &r6);

    /* Interleaved, as a recorder writes two connections at once. */
    CHECK_EQ_INT(tcpsynth_handshake(&t4), 0);
    CHECK_EQ_INT(tcpsynth_handshake(&t6), 0);
    CHECK_EQ_INT(tcpsynth_data(&t4, TCPSYNTH_C2S, d[0], c2s4), 0);
    CHECK_EQ_INT(tcpsynth_data(&t6, TCPSYNTH_C2S, d[2], c2s6), 0);
    CHECK_EQ_INT(tcpsynth_data(&t4, TCPSYNTH_S2C, d[1], s2c4 / 2), 0);
    CHECK_EQ_INT(tcpsynth_data(&t6, TCPSYNTH_S2C, d[3], s2c6), 0);
    CHECK_EQ_INT(tcpsynth_data(&t4, TCPSYNTH_S2C, d[1] + s2c4 / 2, s2c4 - s2c4 / 2), 0);
    CHECK_EQ_INT(tcpsynth_fin(&t6, TCPSYNTH_S2C), 0);
    CHECK_EQ_INT(tcpsynth_fin(&t4, TCPSYNTH_C2S), 0);
    CHECK_EQ_INT(tcpsynth_fin(&t6, TCPSYNTH_C2S), 0);
    CHECK_EQ_INT(tcpsynth_fin(&t4, TCPSYNTH_S2C), 0);
    total = r4.packets + r6.packets;
    v4pkts = r4.packets;
    CHECK_EQ_INT((int64_t)pcapng_writer_packets(r4.w), total);
    pcapng_writer_free(r4.w);
    fclose(fs.f);

    /* Every packet is read. */
    snprintf(cmd, sizeof(cmd), "tshark -r %s 2>/dev/null | wc -l", path);
    out = run(cmd, &st);
    CHECK_EQ_INT(atoi(out), total);
    free(out);

    /* Checksums: 1 is Good, 0 Bad (tshark -G values); all must be Good. */
    snprintf(cmd, sizeof(cmd),
             "tshark -r %s -o tcp.check_checksum:TRUE -o ip.check_checksum:TRUE "
             "-Y 'tcp.checksum.status==0 || ip.checksum.status==0' 2>/dev/null",
             path);
    out = run(cmd, &st);
    CHECK_EQ_INT(st, 0);
    CHECK_EQ_STR(out, "");
    free(out);
    snprintf(cmd, sizeof(cmd),
             "tshark -r %s -o tcp.check_checksum:TRUE -o ip.check_checksum:TRUE "
             "-Y 'tcp.checksum.status==1 && (ipv6 || ip.checksum.status==1)' 2>/dev/null | wc -l",
             path);
    out = run(cmd, &st);
    CHECK_EQ_INT(atoi(out), total);
    free(out);

    /* No analysis complaints (lost segments, ACKed unseen, duplicate ACKs,
       window full, retransmissions, ...) and no warnings or errors at all. */
    snprintf(cmd, sizeof(cmd), "tshark -r %s -Y 'tcp.analysis.flags' 2>/dev/null", path);
    out = run(cmd, &st);
    CHECK_EQ_INT(st, 0);
    CHECK_EQ_STR(out, "");
    free(out);
    snprintf(cmd, sizeof(cmd),
             "tshark -r %s -Y '_ws.expert.severity >= warning || _ws.malformed' 2>/dev/null", path);
    out = run(cmd, &st);
    CHECK_EQ_INT(st, 0);
    CHECK_EQ_STR(out, "");
    free(out);

    /* Streams: 0 is the IPv4 conversation, 1 the IPv6 one. */
    snprintf(cmd, sizeof(cmd),
             "tshark -r %s -T fields -e tcp.stream -e ip.version -e ipv6.version 2>/dev/null "
             "| sort | uniq -c | awk '{print $1, $2, $3}'",
             path);
    out = run(cmd, &st);
    {
        char want[64];

        snprintf(want, sizeof(want), "%d 0 4\n%d 1 6\n", v4pkts, total - v4pkts);
        CHECK_EQ_STR(out, want);
    }
    free(out);

    /* Comments select each application's packets. */
    snprintf(cmd, sizeof(cmd),
             "tshark -r %s -Y 'frame.comment contains \"curl\" && tcp.stream==0' 2>/dev/null "
             "| wc -l",
             path);
    out = run(cmd, &st);
    CHECK_EQ_INT(atoi(out), v4pkts);
    free(out);
    snprintf(cmd, sizeof(cmd),
             "tshark -r %s -Y 'frame.comment contains \"wget\"' -T fields -e tcp.stream "
             "2>/dev/null | sort -u",
             path);
    out = run(cmd, &st);
    CHECK_EQ_STR(out, "1\n");
    free(out);
    snprintf(cmd, sizeof(cmd),
             "tshark -r %s -Y 'frame.packet_flags_direction == 2' -T fields -e tcp.srcport "
             "2>/dev/null | sort -u",
             path);
    out = run(cmd, &st);
    CHECK_EQ_STR(out, "50000\n50001\n");
    free(out);

    /* Reassembly gives back exactly the bytes, both ways, both families. */
    for (int sn = 0; sn < 2; sn++) {
        size_t want0 = sn ? c2s6 : c2s4, want1 = sn ? s2c6 : s2c4;

        snprintf(cmd, sizeof(cmd), "tshark -r %s -q -z follow,tcp,raw,%d 2>/dev/null", path, sn);
        out = run(cmd, &st);
        gotlen[0] = gotlen[1] = 0;
        CHECK_EQ_INT(parse_follow(out, got, gotlen, max), 0);
        CHECK_EQ_INT(gotlen[0], want0);
        CHECK_EQ_INT(gotlen[1], want1);
        CHECK(gotlen[0] == want0 && memcmp(got[0], d[sn * 2], want0) == 0);
        CHECK(gotlen[1] == want1 && memcmp(got[1], d[sn * 2 + 1], want1) == 0);
        free(out);
    }
    unlink(path);

    /* The negative controls: tshark does flag a bad TCP and a bad IP checksum,
       and a missing segment. */
    fd = mkstemps(bad, 7);
    CHECK(fd >= 0);
    fs.f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!fs.f)
        goto out;
    memset(&r4, 0, sizeof(r4));
    r4.ts = &ts;
    r4.w = pcapng_writer_new(&sink, NULL, NULL, NULL);
    pcapng_writer_add_interface(r4.w, PCAPNG_LINKTYPE_RAW, 0, NULL, NULL);
    tcpsynth_init(&t4, &cli4, &srv4, 1, 1, 0, rec_emit, &r4);
    r4.corrupt = 2; /* the SYN */
    tcpsynth_handshake(&t4);
    r4.corrupt = 1; /* the data segment */
    tcpsynth_data(&t4, TCPSYNTH_C2S, "abc", 3);
    r4.corrupt = 3; /* frame 6 would be "def" */
    tcpsynth_data(&t4, TCPSYNTH_C2S, "def", 3);
    tcpsynth_data(&t4, TCPSYNTH_C2S, "ghi", 3);
    pcapng_writer_free(r4.w);
    fclose(fs.f);
    snprintf(cmd, sizeof(cmd),
             "tshark -r %s -o tcp.check_checksum:TRUE -o ip.check_checksum:TRUE -T fields "
             "-e frame.number -e ip.checksum.status -e tcp.checksum.status "
             "-Y 'tcp.checksum.status==0 || ip.checksum.status==0' 2>/dev/null",
             bad);
    out = run(cmd, &st);
    /* The TTL change breaks the IP checksum; the TCP one does not cover it. */
    CHECK_EQ_STR(out, "1\t0\t1\n4\t1\t0\n");
    CHECK_EQ_INT(count_lines(out), 2);
    free(out);
    snprintf(cmd, sizeof(cmd),
             "tshark -r %s -Y 'tcp.analysis.flags' -T fields -e frame.number "
             "-e tcp.analysis.ack_lost_segment -e tcp.analysis.lost_segment 2>/dev/null",
             bad);
    out = run(cmd, &st);
    /* The ACK beyond the gap, and the segment after it (its own ACK is still owed). */
    CHECK_EQ_STR(out, "6\t1\t\n7\t\t1\n");
    free(out);
    unlink(bad);
out:
    for (int i = 0; i < 4; i++)
        free(d[i]);
    free(got[0]);
    free(got[1]);
}

/* ---- UDP datagrams ---- */

static uint8_t udp_pkt[70000];
static size_t udp_len;

static int udp_collect(void *opaque, int dir, const uint8_t *hdr, size_t hdrlen,
                       const uint8_t *payload, size_t plen)
{
    memcpy(udp_pkt, hdr, hdrlen);
    if (plen)
        memcpy(udp_pkt + hdrlen, payload, plen);
    udp_len = hdrlen + plen;
    *(int *)opaque = dir;
    return 0;
}

/* Ones' complement sum of 16-bit big-endian words, for verification. */
static uint32_t sum16(const uint8_t *p, size_t n, uint32_t s)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        s += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1)
        s += (uint32_t)(p[n - 1] << 8);
    return s;
}

static uint16_t fold16(uint32_t s)
{
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)s;
}

static void test_udp(void)
{
    tcpsynth_endpoint_t a = {AF_INET, {127, 0, 0, 1}, 40000}, b = {AF_INET, {127, 0, 0, 53}, 53};
    tcpsynth_endpoint_t a6 = {AF_INET6, {0}, 40001}, b6 = {AF_INET6, {0}, 53};
    uint8_t dns[33] = {0x12, 0x34, 1,   0,   0,   1,   0, 0, 0, 0, 0,
                       0,    4,    't', 'e', 's', 't', 0, 0, 1, 0, 1};
    uint8_t ph[40];
    int dir = -1;

    CHECK_EQ_INT(tcpsynth_udp(&a, &b, 7, dns, 22, 1, udp_collect, &dir), 0);
    CHECK_EQ_INT(dir, 1);
    CHECK_EQ_INT(udp_len, 20 + 8 + 22);
    CHECK_EQ_INT(udp_pkt[9], 17);
    CHECK_EQ_INT(fold16(sum16(udp_pkt, 20, 0)), 0xffff);
    memcpy(ph, udp_pkt + 12, 8);
    ph[8] = 0;
    ph[9] = 17;
    ph[10] = 0;
    ph[11] = 30;
    CHECK_EQ_INT(fold16(sum16(udp_pkt + 20, 30, sum16(ph, 12, 0))), 0xffff);
    CHECK(memcmp(udp_pkt + 28, dns, 22) == 0);

    a6.addr[15] = 1;
    b6.addr[15] = 1;
    CHECK_EQ_INT(tcpsynth_udp(&a6, &b6, 0, dns, 33, 0, udp_collect, &dir), 0);
    CHECK_EQ_INT(udp_len, 40 + 8 + 33);
    memcpy(ph, udp_pkt + 8, 32);
    uint8_t ph2[8] = {0, 0, 0, 41, 0, 0, 0, 17};
    CHECK_EQ_INT(fold16(sum16(udp_pkt + 40, 41, sum16(ph2, 8, sum16(ph, 32, 0)))), 0xffff);
    CHECK_EQ_INT(tcpsynth_udp(&a, &b6, 0, dns, 22, 0, udp_collect, &dir), -EINVAL);
}

int main(void)
{
    test_init();
    test_handshake();
    test_golden();
    test_data();
    test_window();
    test_fin_rst();
    test_implicit_handshake();
    test_pure_ack();
    test_ipv6();
    test_checksums();
    test_emit_error();
    test_tshark();
    test_udp();
    return check_done();
}

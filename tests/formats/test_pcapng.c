/* SPDX-License-Identifier: MIT */
/* Unit tests for formats/pcapng.c: the blocks are parsed back byte by byte;
   when tshark and capinfos are installed they read a file written here too. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pcapng.h"
#include "tcpsynth.h"

#include "../check.h"

/* A sink into memory; fail_call (1-based) makes that write call fail. */
typedef struct memsink {
    uint8_t *buf;
    size_t len, cap;
    int calls;
    int fail_call;
    int fail_err;
} memsink_t;

static int mem_write(void *opaque, const void *p, size_t n)
{
    memsink_t *m = opaque;

    m->calls++;
    if (m->fail_call && m->calls == m->fail_call)
        return m->fail_err;
    if (m->len + n > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        uint8_t *nb;

        while (cap < m->len + n)
            cap *= 2;
        nb = realloc(m->buf, cap);
        if (!nb)
            return -ENOMEM;
        m->buf = nb;
        m->cap = cap;
    }
    memcpy(m->buf + m->len, p, n);
    m->len += n;
    return 0;
}

static sink_t mem_sink(memsink_t *m)
{
    sink_t s = {mem_write, NULL, m};

    memset(m, 0, sizeof(*m));
    return s;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return get32(p) | (uint64_t)get32(p + 4) << 32;
}

typedef struct blk {
    uint32_t type, len;
    const uint8_t *p; /* the whole block */
} blk_t;

/*
 * Splits buf into blocks. Returns the number of blocks, or -1 when the bytes
 * are not a sequence of whole, well-formed blocks (lengths multiple of 4,
 * equal at both ends, nothing left over).
 */
static int walk(const uint8_t *buf, size_t len, blk_t *out, int max)
{
    size_t off = 0;
    int n = 0;

    while (off < len) {
        uint32_t bl;

        if (len - off < 12)
            return -1;
        bl = get32(buf + off + 4);
        if (bl < 12 || bl % 4 || bl > len - off || get32(buf + off + bl - 4) != bl)
            return -1;
        if (n < max) {
            out[n].type = get32(buf + off);
            out[n].len = bl;
            out[n].p = buf + off;
        }
        n++;
        off += bl;
    }
    return n;
}

/*
 * Checks an options area [p, p + len): each option padded with zeros to 32
 * bits, ending with opt_endofopt exactly at the end. Returns the number of
 * options before the end marker, or -1.
 */
static int opts_check(const uint8_t *p, size_t len)
{
    size_t off = 0;
    int n = 0;

    while (off + 4 <= len) {
        uint16_t code = get16(p + off), olen = get16(p + off + 2);
        size_t padded = (olen + 3u) & ~3u;

        if (code == 0)
            return (olen == 0 && off + 4 == len) ? n : -1;
        if (off + 4 + padded > len)
            return -1;
        for (size_t i = olen; i < padded; i++)
            if (p[off + 4 + i] != 0)
                return -1;
        off += 4 + padded;
        n++;
    }
    return -1;
}

/* The nth (0-based) option with this code, or NULL; *olen gets its length. */
static const uint8_t *opt_find(const uint8_t *p, size_t len, uint16_t code, int nth, uint16_t *olen)
{
    size_t off = 0;

    while (off + 4 <= len) {
        uint16_t c = get16(p + off), l = get16(p + off + 2);

        if (c == 0)
            break;
        if (c == code && nth-- == 0) {
            *olen = l;
            return p + off + 4;
        }
        off += 4 + ((l + 3u) & ~3u);
    }
    return NULL;
}

static int opt_is_str(const uint8_t *p, size_t len, uint16_t code, int nth, const char *s)
{
    uint16_t l = 0;
    const uint8_t *v = opt_find(p, len, code, nth, &l);

    return v && l == strlen(s) && memcmp(v, s, l) == 0;
}

static void test_shb(void)
{
    memsink_t m;
    sink_t s = mem_sink(&m);
    blk_t b[4];
    int err = 1;
    pcapng_writer_t *w = pcapng_writer_new(&s, "mitmrec 0.1.0", "Linux", &err);

    CHECK(w != NULL);
    CHECK_EQ_INT(err, 0);
    CHECK_EQ_INT(walk(m.buf, m.len, b, 4), 1);
    CHECK_EQ_INT(b[0].type, 0x0a0d0d0a);
    /* Linux (5 -> 8), mitmrec 0.1.0 (13 -> 16), each plus a 4-byte header. */
    CHECK_EQ_INT(b[0].len, 28 + 12 + 20 + 4);
    CHECK_EQ_INT(get32(b[0].p + 8), 0x1a2b3c4d);
    CHECK(memcmp(b[0].p + 8, "\x4d\x3c\x2b\x1a", 4) == 0); /* little endian */
    CHECK_EQ_INT(get16(b[0].p + 12), 1);
    CHECK_EQ_INT(get16(b[0].p + 14), 0);
    CHECK(get64(b[0].p + 16) == UINT64_MAX);
    CHECK_EQ_INT(opts_check(b[0].p + 24, b[0].len - 28), 2);
    CHECK(opt_is_str(b[0].p + 24, b[0].len - 28, 3, 0, "Linux"));
    CHECK(opt_is_str(b[0].p + 24, b[0].len - 28, 4, 0, "mitmrec 0.1.0"));
    CHECK_EQ_INT(pcapng_writer_packets(w), 0);
    pcapng_writer_free(w);
    free(m.buf);

    /* No options at all: no end-of-options marker either. */
    s = mem_sink(&m);
    w = pcapng_writer_new(&s, NULL, "", NULL);
    CHECK(w != NULL);
    CHECK_EQ_INT(walk(m.buf, m.len, b, 4), 1);
    CHECK_EQ_INT(b[0].len, 28);
    CHECK_EQ_INT(m.calls, 1); /* a block reaches the sink in one write */
    pcapng_writer_free(w);
    free(m.buf);
}

static void test_idb(void)
{
    memsink_t m;
    sink_t s = mem_sink(&m);
    blk_t b[4];
    pcapng_writer_t *w = pcapng_writer_new(&s, NULL, NULL, NULL);
    uint16_t l = 0;
    const uint8_t *v, *o;

    CHECK_EQ_INT(
        pcapng_writer_add_interface(w, PCAPNG_LINKTYPE_RAW, 262144, "mitm0", "decrypted TLS"), 0);
    CHECK_EQ_INT(pcapng_writer_add_interface(w, 1, 65535, NULL, NULL), 1);
    CHECK_EQ_INT(walk(m.buf, m.len, b, 4), 3);

    CHECK_EQ_INT(b[1].type, 1);
    CHECK_EQ_INT(get16(b[1].p + 8), 101);
    CHECK_EQ_INT(get16(b[1].p + 10), 0);
    CHECK_EQ_INT(get32(b[1].p + 12), 262144);
    o = b[1].p + 16;
    CHECK_EQ_INT(opts_check(o, b[1].len - 20), 3);
    CHECK(opt_is_str(o, b[1].len - 20, 2, 0, "mitm0"));
    CHECK(opt_is_str(o, b[1].len - 20, 3, 0, "decrypted TLS"));
    v = opt_find(o, b[1].len - 20, 9, 0, &l);
    CHECK(v && l == 1 && v[0] == 6);
    /* 16 fixed + mitm0 (4+8) + description (4+16) + tsresol (4+4) + end 4 + 4 */
    CHECK_EQ_INT(b[1].len, 16 + 12 + 20 + 8 + 4 + 4);

    CHECK_EQ_INT(get16(b[2].p + 8), 1);
    CHECK_EQ_INT(get32(b[2].p + 12), 65535);
    CHECK_EQ_INT(opts_check(b[2].p + 16, b[2].len - 20), 1);
    v = opt_find(b[2].p + 16, b[2].len - 20, 9, 0, &l);
    CHECK(v && l == 1 && v[0] == 6);
    CHECK_EQ_INT(b[2].len, 32);
    pcapng_writer_free(w);
    free(m.buf);
}

static void test_dsb(void)
{
    static const char keys[] = "CLIENT_TRAFFIC_SECRET_0 "
                               "0011223344556677889900112233445566778899001122334455667788990011 "
                               "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
    size_t n = strlen(keys);
    memsink_t m;
    sink_t s = mem_sink(&m);
    blk_t b[4];
    pcapng_writer_t *w = pcapng_writer_new(&s, NULL, NULL, NULL);

    CHECK(n % 4 != 0); /* so the padding is exercised */
    CHECK_EQ_INT(pcapng_writer_add_secrets(w, PCAPNG_SECRETS_TLS, keys, n), 0);
    CHECK_EQ_INT(pcapng_writer_add_secrets(w, PCAPNG_SECRETS_TLS, NULL, 0), 0);
    CHECK_EQ_INT(walk(m.buf, m.len, b, 4), 3);
    CHECK_EQ_INT(b[1].type, 0x0a);
    CHECK_EQ_INT(b[1].len, 20 + ((n + 3) & ~(size_t)3));
    CHECK_EQ_INT(get32(b[1].p + 8), 0x544c534b);
    CHECK(memcmp(b[1].p + 8, "KSLT", 4) == 0);
    CHECK_EQ_INT(get32(b[1].p + 12), n);
    CHECK(memcmp(b[1].p + 16, keys, n) == 0);
    for (size_t i = 16 + n; i < b[1].len - 4; i++)
        CHECK_EQ_INT(b[1].p[i], 0);
    CHECK_EQ_INT(b[2].len, 20);
    CHECK_EQ_INT(get32(b[2].p + 12), 0);
    pcapng_writer_free(w);
    free(m.buf);
}

static void test_darwin(void)
{
    memsink_t m;
    sink_t s = mem_sink(&m);
    blk_t b[4];
    pcapng_writer_t *w = pcapng_writer_new(&s, NULL, NULL, NULL);

    CHECK_EQ_INT(pcapng_writer_add_darwin_process(w, 4242, "curl"), 0);
    CHECK_EQ_INT(pcapng_writer_add_darwin_process(w, 7, NULL), 1);
    CHECK_EQ_INT(walk(m.buf, m.len, b, 4), 3);
    CHECK_EQ_INT(b[1].type, 0x80000001u);
    CHECK_EQ_INT(get32(b[1].p + 8), 4242);
    CHECK_EQ_INT(opts_check(b[1].p + 12, b[1].len - 16), 1);
    CHECK(opt_is_str(b[1].p + 12, b[1].len - 16, 2, 0, "curl"));
    CHECK_EQ_INT(b[1].len, 12 + 8 + 4 + 4);
    CHECK_EQ_INT(b[2].len, 16);
    CHECK_EQ_INT(get32(b[2].p + 8), 7);
    pcapng_writer_free(w);
    free(m.buf);
}

static void test_epb(void)
{
    static const uint8_t pkt[7] = {0x45, 1, 2, 3, 4, 5, 6};
    memsink_t m;
    sink_t s = mem_sink(&m);
    blk_t b[16];
    pcapng_writer_t *w = pcapng_writer_new(&s, NULL, NULL, NULL);
    pcapng_pkt_opts_t o = {0};
    const uint8_t *e, *v;
    uint16_t l = 0;
    uint64_t ts = 1700000000123456ull;
    int base;

    pcapng_writer_add_interface(w, PCAPNG_LINKTYPE_RAW, 0, NULL, NULL);
    pcapng_writer_add_interface(w, PCAPNG_LINKTYPE_RAW, 0, NULL, NULL);
    base = walk(m.buf, m.len, b, 16);

    /* No options: NULL and an all-absent struct write the same bare block. */
    CHECK_EQ_INT(pcapng_writer_add_packet(w, 0, ts, pkt, 7, 7, NULL), 1);
    o.darwin_process = -1;
    CHECK_EQ_INT(pcapng_writer_add_packet(w, 1, ts, pkt, 5, 7, &o), 2);
    CHECK_EQ_INT(walk(m.buf, m.len, b, 16), base + 2);
    e = b[base].p;
    CHECK_EQ_INT(b[base].type, 6);
    CHECK_EQ_INT(b[base].len, 32 + 8);
    CHECK_EQ_INT(get32(e + 8), 0);
    CHECK_EQ_INT(((uint64_t)get32(e + 12) << 32 | get32(e + 16)), ts);
    CHECK_EQ_INT(get32(e + 20), 7);
    CHECK_EQ_INT(get32(e + 24), 7);
    CHECK(memcmp(e + 28, pkt, 7) == 0);
    CHECK_EQ_INT(e[35], 0);
    e = b[base + 1].p;
    CHECK_EQ_INT(b[base + 1].len, 32 + 8);
    CHECK_EQ_INT(get32(e + 8), 1);
    CHECK_EQ_INT(get32(e + 20), 5);
    CHECK_EQ_INT(get32(e + 24), 7);

    /* Every option. */
    pcapng_writer_add_darwin_process(w, 100, "firefox");
    pcapng_writer_add_darwin_process(w, 200, "curl");
    o.comment = "pid=200 comm=curl";
    o.comment2 = "flow 1";
    o.direction = PCAPNG_DIR_OUTBOUND;
    o.packet_id = 0x0102030405060708ull;
    o.darwin_process = 1;
    CHECK_EQ_INT(pcapng_writer_add_packet(w, 0, ts + 1, pkt, 4, 4, &o), 3);
    CHECK_EQ_INT(walk(m.buf, m.len, b, 16), base + 5);
    e = b[base + 4].p;
    CHECK_EQ_INT(b[base + 4].type, 6);
    CHECK_EQ_INT(get32(e + 16), (uint32_t)(ts + 1));
    {
        const uint8_t *op = e + 28 + 4;
        size_t ol = b[base + 4].len - 28 - 4 - 4;

        CHECK_EQ_INT(opts_check(op, ol), 5);
        CHECK(opt_is_str(op, ol, 1, 0, "pid=200 comm=curl"));
        CHECK(opt_is_str(op, ol, 1, 1, "flow 1"));
        v = opt_find(op, ol, 2, 0, &l);
        CHECK(v && l == 4 && get32(v) == 2);
        v = opt_find(op, ol, 5, 0, &l);
        CHECK(v && l == 8 && get64(v) == 0x0102030405060708ull);
        CHECK(v && memcmp(v, "\x08\x07\x06\x05\x04\x03\x02\x01", 8) == 0);
        v = opt_find(op, ol, 32769, 0, &l);
        CHECK(v && l == 4 && get32(v) == 1);
        /* comment 4+20, comment 4+8, flags 4+4, id 4+8, process 4+4, end 4 */
        CHECK_EQ_INT(ol, 24 + 12 + 8 + 12 + 8 + 4);
    }

    /* Inbound; a process index that names no block is left out. */
    memset(&o, 0, sizeof(o));
    o.direction = PCAPNG_DIR_INBOUND;
    o.darwin_process = 2;
    CHECK_EQ_INT(pcapng_writer_add_packet(w, 1, ts, pkt, 0, 0, &o), 4);
    CHECK_EQ_INT(walk(m.buf, m.len, b, 16), base + 6);
    e = b[base + 5].p;
    CHECK_EQ_INT(b[base + 5].len, 28 + 8 + 4 + 4);
    CHECK_EQ_INT(opts_check(e + 28, 12), 1);
    v = opt_find(e + 28, 12, 2, 0, &l);
    CHECK(v && get32(v) == 1);
    CHECK(opt_find(e + 28, 12, 32769, 0, &l) == NULL);

    /* A zeroed struct after process blocks exist names process 0. */
    memset(&o, 0, sizeof(o));
    CHECK_EQ_INT(pcapng_writer_add_packet(w, 1, ts, pkt, 0, 0, &o), 5);
    CHECK_EQ_INT(walk(m.buf, m.len, b, 16), base + 7);
    v = opt_find(b[base + 6].p + 28, 12, 32769, 0, &l);
    CHECK(v && get32(v) == 0);

    CHECK_EQ_INT(pcapng_writer_packets(w), 5);
    pcapng_writer_free(w);
    free(m.buf);
}

/* A packet in two parts is the same block as the packet in one. */
static void test_packet2(void)
{
    uint8_t pkt[61];
    memsink_t m1, m2;
    sink_t s1 = mem_sink(&m1), s2 = mem_sink(&m2);
    pcapng_writer_t *w1 = pcapng_writer_new(&s1, "a", NULL, NULL);
    pcapng_writer_t *w2 = pcapng_writer_new(&s2, "a", NULL, NULL);
    pcapng_pkt_opts_t o = {.comment = "c", .direction = 1, .darwin_process = -1};

    for (size_t i = 0; i < sizeof(pkt); i++)
        pkt[i] = (uint8_t)(i * 7 + 1);
    pcapng_writer_add_interface(w1, PCAPNG_LINKTYPE_RAW, 0, NULL, NULL);
    pcapng_writer_add_interface(w2, PCAPNG_LINKTYPE_RAW, 0, NULL, NULL);
    for (uint32_t h = 0; h <= 61; h += 20) {
        CHECK_EQ_INT(pcapng_writer_add_packet(w1, 0, 99, pkt, 61, 61, &o),
                     pcapng_writer_add_packet2(w2, 0, 99, pkt, h, pkt + h, 61 - h, &o));
    }
    CHECK_EQ_INT(pcapng_writer_add_packet2(w2, 0, 99, NULL, 0, NULL, 0, NULL), 5);
    CHECK_EQ_INT(pcapng_writer_add_packet(w1, 0, 99, NULL, 0, 0, NULL), 5);
    CHECK_EQ_INT(m1.len, m2.len);
    CHECK(m1.len == m2.len && memcmp(m1.buf, m2.buf, m1.len) == 0);
    pcapng_writer_free(w1);
    pcapng_writer_free(w2);
    free(m1.buf);
    free(m2.buf);
}

/* Blocks larger than the writer's gather buffer, and over-long options. */
static void test_big(void)
{
    size_t plen = 300 * 1024 + 3, clen = 70000;
    uint8_t *pkt = malloc(plen);
    char *comment = malloc(clen + 1);
    memsink_t m;
    sink_t s = mem_sink(&m);
    blk_t b[8];
    pcapng_writer_t *w = pcapng_writer_new(&s, NULL, NULL, NULL);
    pcapng_pkt_opts_t o = {.darwin_process = -1};
    const uint8_t *v;
    uint16_t l = 0;

    for (size_t i = 0; i < plen; i++)
        pkt[i] = (uint8_t)(i ^ (i >> 8));
    /* "é" is two bytes: the 65535-byte limit falls inside a character. */
    for (size_t i = 0; i < clen; i += 2)
        memcpy(comment + i, "\xc3\xa9", 2);
    comment[clen] = 0;
    o.comment = comment;
    o.comment2 = "after";
    o.packet_id = 9;

    pcapng_writer_add_interface(w, PCAPNG_LINKTYPE_RAW, 0, NULL, NULL);
    CHECK_EQ_INT(pcapng_writer_add_packet2(w, 0, 1, pkt, 40, pkt + 40, (uint32_t)plen - 40, &o), 1);
    CHECK_EQ_INT(walk(m.buf, m.len, b, 8), 3);
    CHECK_EQ_INT(get32(b[2].p + 20), plen);
    CHECK(memcmp(b[2].p + 28, pkt, plen) == 0);
    {
        const uint8_t *op = b[2].p + 28 + ((plen + 3) & ~(size_t)3);
        size_t ol = b[2].len - (size_t)(op - b[2].p) - 4;

        CHECK_EQ_INT(opts_check(op, ol), 3);
        v = opt_find(op, ol, 1, 0, &l);
        CHECK(v && l == 65534 && memcmp(v, comment, l) == 0);
        CHECK(opt_is_str(op, ol, 1, 1, "after"));
        v = opt_find(op, ol, 5, 0, &l);
        CHECK(v && get64(v) == 9);
    }
    /* A big DSB, too. */
    CHECK_EQ_INT(pcapng_writer_add_secrets(w, PCAPNG_SECRETS_TLS, pkt, plen), 0);
    CHECK_EQ_INT(walk(m.buf, m.len, b, 8), 4);
    CHECK_EQ_INT(get32(b[3].p + 12), plen);
    CHECK(memcmp(b[3].p + 16, pkt, plen) == 0);
    pcapng_writer_free(w);
    free(m.buf);
    free(pkt);
    free(comment);
}

static void test_errors(void)
{
    static const uint8_t pkt[4] = {1, 2, 3, 4};
    memsink_t m;
    sink_t s = mem_sink(&m), bad = {NULL, NULL, NULL};
    pcapng_writer_t *w;
    pcapng_pkt_opts_t o = {.direction = 3, .darwin_process = -1};
    int err = 0;
    size_t len;

    pcapng_writer_free(NULL);
    CHECK(pcapng_writer_new(NULL, NULL, NULL, &err) == NULL);
    CHECK_EQ_INT(err, -EINVAL);
    CHECK(pcapng_writer_new(&bad, NULL, NULL, &err) == NULL);
    CHECK_EQ_INT(err, -EINVAL);

    /* A sink error on the section header fails the writer's creation. */
    s = mem_sink(&m);
    m.fail_call = 1;
    m.fail_err = -ENOSPC;
    err = 0;
    CHECK(pcapng_writer_new(&s, "x", "y", &err) == NULL);
    CHECK_EQ_INT(err, -ENOSPC);

    s = mem_sink(&m);
    w = pcapng_writer_new(&s, NULL, NULL, NULL);
    CHECK_EQ_INT(pcapng_writer_add_packet(w, 0, 0, pkt, 4, 4, NULL), -EINVAL); /* no IDB */
    pcapng_writer_add_interface(w, PCAPNG_LINKTYPE_RAW, 0, NULL, NULL);
    len = m.len;
    CHECK_EQ_INT(pcapng_writer_add_packet(w, 1, 0, pkt, 4, 4, NULL), -EINVAL);
    CHECK_EQ_INT(pcapng_writer_add_packet(w, 0, 0, pkt, 4, 3, NULL), -EINVAL);
    CHECK_EQ_INT(pcapng_writer_add_packet(w, 0, 0, NULL, 4, 4, NULL), -EINVAL);
    CHECK_EQ_INT(pcapng_writer_add_packet(w, 0, 0, pkt, 4, 4, &o), -EINVAL);
    CHECK_EQ_INT(pcapng_writer_add_packet2(w, 0, 0, pkt, 4, NULL, 1, NULL), -EINVAL);
    CHECK_EQ_INT(pcapng_writer_add_secrets(w, PCAPNG_SECRETS_TLS, NULL, 1), -EINVAL);
    CHECK_EQ_INT(m.len, len); /* refused calls write nothing */
    CHECK_EQ_INT(pcapng_writer_packets(w), 0);

    /* A sink error is passed through and the packet is not counted. */
    m.fail_call = m.calls + 1;
    m.fail_err = -EIO;
    CHECK_EQ_INT(pcapng_writer_add_packet(w, 0, 0, pkt, 4, 4, NULL), -EIO);
    CHECK_EQ_INT(pcapng_writer_packets(w), 0);
    CHECK_EQ_INT(pcapng_writer_add_packet(w, 0, 0, pkt, 4, 4, NULL), 1);
    m.fail_call = m.calls + 1;
    CHECK_EQ_INT(pcapng_writer_add_interface(w, 1, 0, NULL, NULL), -EIO);
    CHECK_EQ_INT(pcapng_writer_add_interface(w, 1, 0, NULL, NULL), 1);
    m.fail_call = m.calls + 1;
    CHECK_EQ_INT(pcapng_writer_add_darwin_process(w, 1, "a"), -EIO);
    CHECK_EQ_INT(pcapng_writer_add_darwin_process(w, 1, "a"), 0);
    m.fail_call = m.calls + 1;
    CHECK_EQ_INT(pcapng_writer_add_secrets(w, PCAPNG_SECRETS_TLS, "k\n", 2), -EIO);
    CHECK_EQ_INT(pcapng_writer_packets(w), 1);
    CHECK_EQ_INT(pcapng_writer_packets(NULL), 0);
    pcapng_writer_free(w);
    free(m.buf);
}

/* The output is whole blocks after every call. */
static void test_valid_after_each_call(void)
{
    memsink_t m;
    sink_t s = mem_sink(&m);
    blk_t b[64];
    pcapng_writer_t *w = pcapng_writer_new(&s, "app", "os", NULL);
    pcapng_pkt_opts_t o = {.comment = "x", .darwin_process = 0};
    uint8_t pkt[100] = {0x45};
    int n = 1;

    CHECK_EQ_INT(walk(m.buf, m.len, b, 64), n);
    for (int i = 0; i < 40; i++) {
        switch (i % 4) {
        case 0:
            pcapng_writer_add_interface(w, PCAPNG_LINKTYPE_RAW, 0, "if", NULL);
            break;
        case 1:
            pcapng_writer_add_darwin_process(w, (uint32_t)i, "p");
            break;
        case 2:
            pcapng_writer_add_secrets(w, PCAPNG_SECRETS_TLS, pkt, (size_t)i);
            break;
        default:
            pcapng_writer_add_packet(w, 0, (uint64_t)i, pkt, (uint32_t)i, 100, &o);
            break;
        }
        n++;
        CHECK_EQ_INT(walk(m.buf, m.len, b, 64), n);
        CHECK_EQ_INT(m.calls, n); /* one sink write per block */
    }
    CHECK_EQ_INT(pcapng_writer_packets(w), 10);
    pcapng_writer_free(w);
    free(m.buf);
}

/* Runs a shell command; returns its output (caller frees) and exit status. */
static char *run(const char *cmd, int *status)
{
    FILE *f = popen(cmd, "r");
    char *out = NULL;
    size_t len = 0, cap = 0, n;
    char chunk[4096];

    *status = -1;
    if (!f)
        return NULL;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            out = realloc(out, cap);
            if (!out)
                break;
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

static int have_program(const char *name)
{
    char cmd[256];
    int st;
    char *out;

    snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1 && echo yes", name);
    out = run(cmd, &st);
    st = out && strcmp(out, "yes\n") == 0;
    free(out);
    return st;
}

typedef struct synth_ctx {
    pcapng_writer_t *w;
    uint64_t ts;
    const pcapng_pkt_opts_t *o;
} synth_ctx_t;

static int to_pcapng(void *opaque, int dir, const uint8_t *hdr, size_t hdrlen,
                     const uint8_t *payload, size_t plen)
{
    synth_ctx_t *c = opaque;
    int64_t r = pcapng_writer_add_packet2(c->w, 0, c->ts += 1000, hdr, (uint32_t)hdrlen, payload,
                                          (uint32_t)plen, c->o);

    return r < 0 ? (int)r : 0;
}

/* What tshark and capinfos make of the metadata blocks and options. */
static void test_tshark(void)
{
    static const char keys[] =
        "CLIENT_RANDOM 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff "
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
        "00112233445566778899aabbccddeeff\n";
    char path[] = "/tmp/test_pcapng_XXXXXX.pcapng", cmd[1024];
    memsink_t m;
    sink_t s = mem_sink(&m);
    pcapng_writer_t *w;
    tcpsynth_t t;
    tcpsynth_endpoint_t cli = {AF_INET, {127, 0, 0, 1}, 40000};
    tcpsynth_endpoint_t srv = {AF_INET, {127, 0, 0, 2}, 40001};
    pcapng_pkt_opts_t o = {.comment = "pid=4242 comm=curl",
                           .comment2 = "second",
                           .direction = PCAPNG_DIR_OUTBOUND,
                           .packet_id = 77,
                           .darwin_process = 0};
    synth_ctx_t ctx = {NULL, 1700000000000000ull, &o};
    char *out;
    int st, fd;
    FILE *f;

    if (!have_program("tshark") || !have_program("capinfos")) {
        printf("note: tshark or capinfos not found, skipping the tshark checks\n");
        return;
    }
    w = pcapng_writer_new(&s, "test_pcapng", "Linux", NULL);
    ctx.w = w;
    CHECK_EQ_INT(pcapng_writer_add_interface(w, PCAPNG_LINKTYPE_RAW, 262144, "mitm0", "test"), 0);
    CHECK_EQ_INT(pcapng_writer_add_secrets(w, PCAPNG_SECRETS_TLS, keys, strlen(keys)), 0);
    CHECK_EQ_INT(pcapng_writer_add_darwin_process(w, 4242, "curl"), 0);
    CHECK_EQ_INT(tcpsynth_init(&t, &cli, &srv, 1000, 2000, 0, to_pcapng, &ctx), 0);
    CHECK_EQ_INT(tcpsynth_handshake(&t), 0);
    CHECK_EQ_INT(pcapng_writer_packets(w), 3);

    fd = mkstemps(path, 7);
    CHECK(fd >= 0);
    if (fd < 0)
        goto out;
    f = fdopen(fd, "wb");
    CHECK(f && fwrite(m.buf, 1, m.len, f) == m.len);
    if (f)
        fclose(f);

    snprintf(cmd, sizeof(cmd), "capinfos -c -D -M %s 2>&1", path);
    out = run(cmd, &st);
    CHECK_EQ_INT(st, 0);
    CHECK(out && strstr(out, "Number of packets:   3") != NULL);
    CHECK(out && strstr(out, "Number of decryption secrets in file: 1") != NULL);
    if (st != 0 || !strstr(out, "decryption secrets in file: 1"))
        fprintf(stderr, "capinfos said:\n%s", out);
    free(out);

    snprintf(cmd, sizeof(cmd),
             "tshark -r %s -T fields -E separator='|' -e frame.number -e frame.interface_name "
             "-e frame.time_epoch -e frame.packet_flags_direction -e frame.packet_id "
             "-e frame.comment 2>/dev/null",
             path);
    out = run(cmd, &st);
    CHECK_EQ_INT(st, 0);
    /* Direction 2 is outbound; the two comments are listed comma-separated. */
    CHECK_EQ_STR(out, "1|mitm0|1700000000.001000000|0x00000002|77|pid=4242 comm=curl,second\n"
                      "2|mitm0|1700000000.002000000|0x00000002|77|pid=4242 comm=curl,second\n"
                      "3|mitm0|1700000000.003000000|0x00000002|77|pid=4242 comm=curl,second\n");
    free(out);

    /* Reading gives no errors or warnings (the Darwin block and option 32769
       are unknown to 4.0 and must be skipped silently). */
    snprintf(cmd, sizeof(cmd), "tshark -r %s 2>&1 >/dev/null | grep -v '^Running as user'", path);
    out = run(cmd, &st);
    CHECK_EQ_STR(out, "");
    free(out);

    snprintf(cmd, sizeof(cmd),
             "tshark -r %s -Y 'frame.comment contains \"curl\"' 2>/dev/null "
             "| wc -l",
             path);
    out = run(cmd, &st);
    CHECK_EQ_STR(out, "3\n");
    free(out);
    unlink(path);
out:
    pcapng_writer_free(w);
    free(m.buf);
}

int main(void)
{
    test_shb();
    test_idb();
    test_dsb();
    test_darwin();
    test_epb();
    test_packet2();
    test_big();
    test_errors();
    test_valid_after_each_call();
    test_tshark();
    return check_done();
}

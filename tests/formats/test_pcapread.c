/* SPDX-License-Identifier: MIT */
/* Unit tests for formats/pcapread.c: files from our writer and hand-built
   blocks (both byte orders, several sections and interfaces, SPB, obsolete PB,
   DSB, corrupt and truncated input), classic pcap in its four flavours, every
   split of the input; editcap's rewrites of our file when it is installed. */
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
#include "tcpsynth.h"

#include "../check.h"
#include "bytes.h"

static void b_u8(bytes_t *b, uint8_t v)
{
    b_add(b, &v, 1);
}

static void b_u16(bytes_t *b, int be, uint16_t v)
{
    uint8_t x[2];

    x[be ? 0 : 1] = (uint8_t)(v >> 8);
    x[be ? 1 : 0] = (uint8_t)v;
    b_add(b, x, 2);
}

static void b_u32(bytes_t *b, int be, uint32_t v)
{
    b_u16(b, be, (uint16_t)(be ? v >> 16 : v));
    b_u16(b, be, (uint16_t)(be ? v : v >> 16));
}

static void b_u64(bytes_t *b, int be, uint64_t v)
{
    b_u32(b, be, (uint32_t)(be ? v >> 32 : v));
    b_u32(b, be, (uint32_t)(be ? v : v >> 32));
}

static void b_pad(bytes_t *b)
{
    while (b->len % 4)
        b_u8(b, 0);
}

static void set32(uint8_t *p, int be, uint32_t v)
{
    bytes_t t = {0};

    b_u32(&t, be, v);
    memcpy(p, t.p, 4);
    b_free(&t);
}

/* Hand-built pcapng blocks: blk_begin, body, blk_end fills in both lengths. */
static size_t blk_begin(bytes_t *b, int be, uint32_t type)
{
    size_t at = b->len;

    b_u32(b, be, type);
    b_u32(b, be, 0);
    return at;
}

static void blk_end(bytes_t *b, int be, size_t at)
{
    uint32_t total;

    b_pad(b);
    total = (uint32_t)(b->len - at + 4);
    b_u32(b, be, total);
    set32(b->p + at + 4, be, total);
}

static void opt(bytes_t *b, int be, uint16_t code, const void *v, size_t n)
{
    b_u16(b, be, code);
    b_u16(b, be, (uint16_t)n);
    b_add(b, v, n);
    b_pad(b);
}

static void opt_end(bytes_t *b, int be)
{
    b_u32(b, be, 0);
}

static void shb(bytes_t *b, int be)
{
    size_t at = blk_begin(b, be, 0x0a0d0d0a);

    b_u32(b, be, 0x1a2b3c4d);
    b_u16(b, be, 1);
    b_u16(b, be, 0);
    b_u64(b, be, UINT64_MAX);
    opt(b, be, 4, "hand", 4);
    opt_end(b, be);
    blk_end(b, be, at);
}

/* tsresol < 0: no option; tsoffset: seconds, 0 for none. */
static void idb(bytes_t *b, int be, uint16_t linktype, uint32_t snaplen, const char *name,
                int tsresol, int64_t tsoffset)
{
    size_t at = blk_begin(b, be, 1);
    uint8_t r = (uint8_t)tsresol;

    b_u16(b, be, linktype);
    b_u16(b, be, 0);
    b_u32(b, be, snaplen);
    if (name)
        opt(b, be, 2, name, strlen(name));
    if (tsresol >= 0)
        opt(b, be, 9, &r, 1);
    if (tsoffset) {
        bytes_t v = {0};

        b_u64(&v, be, (uint64_t)tsoffset);
        opt(b, be, 14, v.p, 8);
        b_free(&v);
    }
    opt_end(b, be);
    blk_end(b, be, at);
}

static void epb(bytes_t *b, int be, uint32_t ifid, uint64_t ts, const void *data, uint32_t len,
                const char *comment)
{
    size_t at = blk_begin(b, be, 6);

    b_u32(b, be, ifid);
    b_u32(b, be, (uint32_t)(ts >> 32));
    b_u32(b, be, (uint32_t)ts);
    b_u32(b, be, len);
    b_u32(b, be, len + 10);
    b_add(b, data, len);
    b_pad(b);
    if (comment) {
        uint8_t fl[4];

        set32(fl, be, 2);
        opt(b, be, 2, fl, 4);
        opt(b, be, 1, comment, strlen(comment));
        opt(b, be, 1, "second", 6);
        opt_end(b, be);
    }
    blk_end(b, be, at);
}

static void spb(bytes_t *b, int be, const void *data, uint32_t len, uint32_t origlen)
{
    size_t at = blk_begin(b, be, 3);

    b_u32(b, be, origlen);
    b_add(b, data, len);
    blk_end(b, be, at);
}

static void pb(bytes_t *b, int be, uint16_t ifid, uint64_t ts, const void *data, uint32_t len)
{
    size_t at = blk_begin(b, be, 2);

    b_u16(b, be, ifid);
    b_u16(b, be, 0);
    b_u32(b, be, (uint32_t)(ts >> 32));
    b_u32(b, be, (uint32_t)ts);
    b_u32(b, be, len);
    b_u32(b, be, len);
    b_add(b, data, len);
    blk_end(b, be, at);
}

static void dsb(bytes_t *b, int be, uint32_t type, const char *s)
{
    size_t at = blk_begin(b, be, 10);

    b_u32(b, be, type);
    b_u32(b, be, (uint32_t)strlen(s));
    b_add(b, s, strlen(s));
    blk_end(b, be, at);
}

static void unknown_block(bytes_t *b, int be, uint32_t type, size_t n)
{
    size_t at = blk_begin(b, be, type);

    while (n--)
        b_u8(b, 0x5a);
    blk_end(b, be, at);
}

/* ---- a recorder of callbacks: one text line per event ---- */

typedef struct rec {
    bytes_t log;
    int errors;
    uint64_t err_off;
    char err_msg[256];
    int stop_at_frame; /* on_packet returns -ECANCELED at this frame */
    uint64_t last_frame;
    uint64_t packets;
} rec_t;

static void logf_(rec_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void logf_(rec_t *r, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    b_add(&r->log, line, n < (int)sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static uint32_t fnv(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;

    while (n--)
        h = (h ^ *p++) * 16777619u;
    return h;
}

static int on_section(void *o, const pcapread_section_t *s)
{
    logf_(o, "S%u classic=%d be=%d v%u.%u @%" PRIu64 "\n", s->index, s->classic, s->big_endian,
          s->major, s->minor, s->offset);
    return 0;
}

static int on_interface(void *o, const pcapread_interface_t *i)
{
    logf_(o, "I%u/%u sec=%u lt=%u snap=%u res=%u off=%" PRId64 " name=%s desc=%s\n", i->id,
          i->section_id, i->section, i->linktype, i->snaplen, i->tsresol, i->tsoffset,
          i->name ? i->name : "-", i->description ? i->description : "-");
    return 0;
}

static int on_packet(void *o, const pcapread_packet_t *p)
{
    rec_t *r = o;

    logf_(r,
          "P%" PRIu64 " if=%u lt=%u ts=%" PRIu64 " cap=%u orig=%u h=%08x c=%s fl=%u @%" PRIu64 "\n",
          p->frame, p->ifid, p->linktype, p->ts_ns, p->caplen, p->origlen, fnv(p->data, p->caplen),
          p->comment ? p->comment : "-", p->flags, p->offset);
    r->last_frame = p->frame;
    r->packets++;
    if (r->stop_at_frame && p->frame == (uint64_t)r->stop_at_frame)
        return -ECANCELED;
    return 0;
}

static int on_secrets(void *o, uint32_t type, const uint8_t *data, size_t len)
{
    logf_(o, "D%08x %zu %.*s\n", type, len, (int)len, (const char *)data);
    return 0;
}

static void on_error(void *o, uint64_t off, const char *msg)
{
    rec_t *r = o;

    r->errors++;
    r->err_off = off;
    snprintf(r->err_msg, sizeof(r->err_msg), "%s", msg);
    logf_(r, "E@%" PRIu64 " %s\n", off, msg);
}

static const pcapread_callbacks_t cbs = {on_section, on_interface, on_packet, on_secrets, on_error};

/* The log's text, NUL-terminated (the log stays usable). */
static const char *log_str(rec_t *r)
{
    b_add(&r->log, "", 1);
    r->log.len--;
    return (const char *)r->log.p;
}

/* Reads buf in pieces of step bytes (0: one piece); returns feed's or finish's error. */
static int read_all(rec_t *r, const uint8_t *buf, size_t len, size_t step, int *feed_rc)
{
    pcapread_t *pr;
    int err, rc = 0;
    size_t i, n;

    memset(r, 0, sizeof(*r));
    pr = pcapread_new(&cbs, r, &err);
    if (!pr)
        return err;
    for (i = 0; i < len && rc == 0; i += n) {
        n = step && step < len - i ? step : len - i;
        rc = pcapread_feed(pr, buf + i, n);
    }
    if (len == 0)
        rc = pcapread_feed(pr, buf, 0);
    if (feed_rc)
        *feed_rc = rc;
    if (rc == 0)
        rc = pcapread_finish(pr);
    pcapread_free(pr);
    return rc;
}

/* Reads buf split at one offset. */
static int read_split(rec_t *r, const uint8_t *buf, size_t len, size_t at)
{
    pcapread_t *pr;
    int err, rc;

    memset(r, 0, sizeof(*r));
    pr = pcapread_new(&cbs, r, &err);
    if (!pr)
        return err;
    rc = pcapread_feed(pr, buf, at);
    if (rc == 0)
        rc = pcapread_feed(pr, buf + at, len - at);
    if (rc == 0)
        rc = pcapread_finish(pr);
    pcapread_free(pr);
    return rc;
}

/* The same events whatever the split: byte by byte, every 2-split, odd steps. */
static void check_splits(const uint8_t *buf, size_t len, int want_rc, const char *what)
{
    rec_t whole, part;
    size_t at, step;
    int rc, bad = 0;

    rc = read_all(&whole, buf, len, 0, NULL);
    CHECK_EQ_INT(rc, want_rc);
    for (step = 1; step <= 13; step += (step < 4 ? 1 : 3)) {
        rc = read_all(&part, buf, len, step, NULL);
        if (rc != want_rc || part.log.len != whole.log.len ||
            memcmp(part.log.p, whole.log.p, whole.log.len) != 0) {
            fprintf(stderr, "%s: step %zu differs (rc %d)\n%s", what, step, rc, log_str(&part));
            bad++;
        }
        b_free(&part.log);
    }
    for (at = 0; at <= len; at++) {
        rc = read_split(&part, buf, len, at);
        if (rc != want_rc || part.log.len != whole.log.len ||
            memcmp(part.log.p, whole.log.p, whole.log.len) != 0) {
            if (bad++ < 3)
                fprintf(stderr, "%s: split at %zu differs (rc %d)\n", what, at, rc);
        }
        b_free(&part.log);
    }
    CHECK_EQ_INT(bad, 0);
    b_free(&whole.log);
}

/* ---- tests ---- */

/* A file from our writer, with tcpsynth packets, a DSB and comments. */
static int synth_emit(void *opaque, int dir, const uint8_t *hdr, size_t hdrlen,
                      const uint8_t *payload, size_t plen)
{
    pcapng_writer_t *w = opaque;
    pcapng_pkt_opts_t o = {0};

    o.comment = dir == TCPSYNTH_C2S ? "pid=42 curl" : NULL;
    o.direction = dir == TCPSYNTH_C2S ? PCAPNG_DIR_OUTBOUND : PCAPNG_DIR_INBOUND;
    o.darwin_process = -1;
    return pcapng_writer_add_packet2(w, 0, 1700000000123456ull + pcapng_writer_packets(w), hdr,
                                     (uint32_t)hdrlen, payload, (uint32_t)plen, &o) < 0;
}

static void make_writer_file(bytes_t *out, int npackets_extra)
{
    sink_t s = {b_sink_write, NULL, out};
    tcpsynth_endpoint_t c = {AF_INET, {10, 0, 0, 1}, 40000}, sv = {AF_INET, {10, 0, 0, 2}, 443};
    pcapng_writer_t *w;
    tcpsynth_t t;
    int err, i;

    memset(out, 0, sizeof(*out));
    w = pcapng_writer_new(&s, "mitmrec test", "Linux", &err);
    pcapng_writer_add_interface(w, PCAPNG_LINKTYPE_RAW, 65535, "mitm0", "recorded");
    pcapng_writer_add_secrets(w, PCAPNG_SECRETS_TLS, "CLIENT_RANDOM 00 11\n", 20);
    tcpsynth_init(&t, &c, &sv, 1000, 2000, 0, synth_emit, w);
    tcpsynth_handshake(&t);
    data_acked(&t, TCPSYNTH_C2S, "GET / HTTP/1.1\r\n\r\n", 18);
    for (i = 0; i < npackets_extra; i++)
        data_acked(&t, TCPSYNTH_S2C, "xyz", 3);
    tcpsynth_fin(&t, TCPSYNTH_C2S);
    pcapng_writer_free(w);
}

static void test_writer_file(void)
{
    bytes_t f;
    rec_t r;
    int rc;
    const char *log;

    make_writer_file(&f, 1);
    rc = read_all(&r, f.p, f.len, 0, NULL);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(r.errors, 0);
    CHECK_EQ_INT(r.packets, 9); /* handshake, 2 x (data, ACK), FIN, ACK */
    log = log_str(&r);
    CHECK(strstr(log, "S0 classic=0 be=0 v1.0 @0\n") != NULL);
    CHECK(strstr(log, "I0/0 sec=0 lt=101 snap=65535 res=6 off=0 name=mitm0 desc=recorded\n") !=
          NULL);
    CHECK(strstr(log, "D544c534b 20 CLIENT_RANDOM 00 11\n") != NULL);
    /* First packet: microseconds become nanoseconds; comment and epb_flags. */
    CHECK(strstr(log, "P1 if=0 lt=101 ts=1700000000123456000 cap=44 orig=44 ") != NULL);
    CHECK(strstr(log, "c=pid=42 curl fl=2 @") != NULL);
    CHECK(strstr(log, "P2 if=0 lt=101 ts=1700000000123457000 cap=44 orig=44 ") != NULL);
    CHECK(strstr(log, "c=- fl=1 @") != NULL);
    CHECK_EQ_INT(r.last_frame, 9);
    b_free(&r.log);
    check_splits(f.p, f.len, 0, "writer file");
    b_free(&f);
}

/* Data of the packets delivered, checked against what was written. */
typedef struct pkt_copy {
    uint8_t data[256];
    uint32_t len;
    uint64_t ts, frame;
    char comment[64];
} pkt_copy_t;

static pkt_copy_t copies[8];
static int ncopies;

static int copy_packet(void *o, const pcapread_packet_t *p)
{
    if (ncopies < 8 && p->caplen <= sizeof(copies[0].data)) {
        pkt_copy_t *c = &copies[ncopies++];

        memcpy(c->data, p->data, p->caplen);
        c->len = p->caplen;
        c->ts = p->ts_ns;
        c->frame = p->frame;
        snprintf(c->comment, sizeof(c->comment), "%s", p->comment ? p->comment : "");
    }
    return 0;
}

static void test_packet_bytes(void)
{
    pcapread_callbacks_t cb = {0};
    bytes_t b = {0};
    pcapread_t *r;
    int err;

    shb(&b, 0);
    idb(&b, 0, 1, 0, NULL, -1, 0);
    epb(&b, 0, 0, 5, "abcdefg", 7, "hello world");
    epb(&b, 0, 0, 6, "", 0, NULL);
    cb.on_packet = copy_packet;
    ncopies = 0;
    r = pcapread_new(&cb, NULL, &err);
    CHECK(r != NULL);
    CHECK_EQ_INT(err, 0);
    CHECK_EQ_INT(pcapread_feed(r, b.p, b.len), 0);
    CHECK_EQ_INT(pcapread_finish(r), 0);
    CHECK_EQ_INT(pcapread_frames(r), 2);
    CHECK_EQ_INT(pcapread_offset(r), b.len);
    CHECK_EQ_INT(pcapread_feed(r, b.p, 4), -EINVAL); /* after finish */
    pcapread_free(r);
    CHECK_EQ_INT(ncopies, 2);
    CHECK_EQ_INT(copies[0].len, 7);
    CHECK(memcmp(copies[0].data, "abcdefg", 7) == 0);
    CHECK_EQ_INT(copies[0].ts, 5000); /* default resolution: microseconds */
    CHECK_EQ_STR(copies[0].comment, "hello world");
    CHECK_EQ_INT(copies[1].len, 0);
    CHECK_EQ_INT(copies[1].frame, 2);
    b_free(&b);

    CHECK(pcapread_new(NULL, NULL, &err) == NULL);
    CHECK_EQ_INT(err, -EINVAL);
    pcapread_free(NULL);
}

/* Two sections (little then big endian), interfaces with different
   resolutions, SPB, obsolete PB, DSB and blocks to skip. */
static void build_multi(bytes_t *b)
{
    static const uint8_t pkt[] = {0x45, 0, 0, 20, 1, 2, 3, 4, 5, 6, 7, 8, 9};

    memset(b, 0, sizeof(*b));
    shb(b, 0);
    idb(b, 0, 101, 0, "lo", 9, 0);      /* nanoseconds */
    idb(b, 0, 1, 0, "eth0", 3, 0);      /* milliseconds */
    epb(b, 0, 1, 1234, pkt, 13, "c1");  /* 1.234 s */
    epb(b, 0, 0, 1234, pkt, 5, NULL);   /* 1234 ns */
    unknown_block(b, 0, 0x00000bad, 7); /* custom: skipped */
    unknown_block(b, 0, 5, 20);         /* ISB: skipped */
    dsb(b, 0, 0x544c534b, "CLIENT_RANDOM a b\n");
    shb(b, 1);
    idb(b, 1, 276, 96, "any", 0x80 | 20, 0);                      /* 2^-20 s */
    idb(b, 1, 0, 0, NULL, 0, -3);                                 /* seconds, offset -3 s */
    idb(b, 1, 113, 0, NULL, 12, 10);                              /* picoseconds, +10 s */
    spb(b, 1, pkt, 13, 13);                                       /* interface 0, snaplen 96 */
    epb(b, 1, 0, (1ull << 20) * 3 + (1ull << 19), pkt, 13, NULL); /* 3.5 s */
    epb(b, 1, 1, 100, pkt, 4, NULL);                              /* 97 s */
    epb(b, 1, 2, 2500, pkt, 4, NULL);                             /* 2.5 ns + 10 s */
    pb(b, 1, 1, 7, pkt, 2);                                       /* obsolete PB: 4 s */
    dsb(b, 1, 0x12345678, "xy");
}

static void test_multi_section(void)
{
    bytes_t b;
    rec_t r;
    const char *log;
    const char *want;

    build_multi(&b);
    CHECK_EQ_INT(read_all(&r, b.p, b.len, 0, NULL), 0);
    log = log_str(&r);
    want = "S0 classic=0 be=0 v1.0 @0\n"
           "I0/0 sec=0 lt=101 snap=0 res=9 off=0 name=lo desc=-\n"
           "I1/1 sec=0 lt=1 snap=0 res=3 off=0 name=eth0 desc=-\n";
    CHECK(strncmp(log, want, strlen(want)) == 0);
    CHECK(strstr(log, "P1 if=1 lt=1 ts=1234000000 cap=13 orig=23 ") != NULL);
    CHECK(strstr(log, "c=c1 fl=2 ") != NULL);
    CHECK(strstr(log, "P2 if=0 lt=101 ts=1234 cap=5 orig=15 ") != NULL);
    CHECK(strstr(log, "D544c534b 18 CLIENT_RANDOM a b\n") != NULL);
    CHECK(strstr(log, "\nS1 classic=0 be=1 v1.0 @") != NULL);
    CHECK(strstr(log, "I2/0 sec=1 lt=276 snap=96 res=148 off=0 name=any desc=-\n") != NULL);
    CHECK(strstr(log, "I3/1 sec=1 lt=0 snap=0 res=0 off=-3 name=- desc=-\n") != NULL);
    CHECK(strstr(log, "I4/2 sec=1 lt=113 snap=0 res=12 off=10 name=- desc=-\n") != NULL);
    CHECK(strstr(log, "P3 if=2 lt=276 ts=0 cap=13 orig=13 ") != NULL); /* SPB */
    CHECK(strstr(log, "P4 if=2 lt=276 ts=3500000000 cap=13 ") != NULL);
    CHECK(strstr(log, "P5 if=3 lt=0 ts=97000000000 cap=4 ") != NULL);
    CHECK(strstr(log, "P6 if=4 lt=113 ts=10000000002 cap=4 ") != NULL);
    CHECK(strstr(log, "P7 if=3 lt=0 ts=4000000000 cap=2 orig=2 ") != NULL); /* PB */
    CHECK(strstr(log, "D12345678 2 xy\n") != NULL);
    CHECK_EQ_INT(r.packets, 7);
    CHECK_EQ_INT(r.errors, 0);
    b_free(&r.log);
    check_splits(b.p, b.len, 0, "multi-section");
    b_free(&b);
}

/* SPB cut to the snap length, and to the original length. */
static void test_spb_lengths(void)
{
    static const uint8_t pkt[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    bytes_t b = {0};
    rec_t r;
    const char *log;

    shb(&b, 0);
    idb(&b, 0, 101, 6, NULL, -1, 0);
    spb(&b, 0, pkt, 16, 100); /* snaplen 6 wins */
    shb(&b, 0);
    idb(&b, 0, 101, 0, NULL, -1, 0);
    spb(&b, 0, pkt, 16, 3); /* original length 3: the rest is padding */
    CHECK_EQ_INT(read_all(&r, b.p, b.len, 0, NULL), 0);
    log = log_str(&r);
    CHECK(strstr(log, "P1 if=0 lt=101 ts=0 cap=6 orig=100 ") != NULL);
    CHECK(strstr(log, "P2 if=1 lt=101 ts=0 cap=3 orig=3 ") != NULL);
    b_free(&r.log);
    b_free(&b);
}

/* Timestamp extremes: saturation instead of wrapping, binary resolutions. */
static void test_timestamps(void)
{
    bytes_t b = {0};
    rec_t r;
    const char *log;

    shb(&b, 0);
    idb(&b, 0, 101, 0, NULL, 0, 0);             /* seconds */
    idb(&b, 0, 101, 0, NULL, 0x80 | 0, 0);      /* 2^0: seconds */
    idb(&b, 0, 101, 0, NULL, 0x80 | 40, 0);     /* 2^-40 */
    idb(&b, 0, 101, 0, NULL, 127, 0);           /* 10^-127 */
    idb(&b, 0, 101, 0, NULL, 0x80 | 127, 0);    /* 2^-127 */
    idb(&b, 0, 101, 0, NULL, 6, INT64_MIN);     /* saturates at 0 */
    epb(&b, 0, 0, UINT64_MAX / 2, "", 0, NULL); /* saturates */
    epb(&b, 0, 1, 5, "", 0, NULL);
    epb(&b, 0, 2, (5ull << 40) + (1ull << 39), "", 0, NULL);
    epb(&b, 0, 3, UINT64_MAX, "", 0, NULL);
    epb(&b, 0, 4, UINT64_MAX, "", 0, NULL);
    epb(&b, 0, 5, 1000, "", 0, NULL);
    CHECK_EQ_INT(read_all(&r, b.p, b.len, 0, NULL), 0);
    log = log_str(&r);
    CHECK(strstr(log, "P1 if=0 lt=101 ts=18446744073709551615 ") != NULL);
    CHECK(strstr(log, "P2 if=1 lt=101 ts=5000000000 ") != NULL);
    CHECK(strstr(log, "P3 if=2 lt=101 ts=5500000000 ") != NULL);
    CHECK(strstr(log, "P4 if=3 lt=101 ts=0 ") != NULL);
    CHECK(strstr(log, "P5 if=4 lt=101 ts=0 ") != NULL);
    CHECK(strstr(log, "P6 if=5 lt=101 ts=0 ") != NULL);
    b_free(&r.log);
    b_free(&b);
}

/* Corrupt blocks: the error names the block's offset, earlier packets arrived. */
static void corrupt_case(const char *name, bytes_t *b, size_t bad_off, const char *msg_part,
                         uint64_t packets_before)
{
    rec_t r;
    int rc, feed_rc = 0;

    rc = read_all(&r, b->p, b->len, 0, &feed_rc);
    CHECK_EQ_INT(rc, -EBADMSG);
    CHECK_EQ_INT(feed_rc, -EBADMSG);
    CHECK_EQ_INT(r.errors, 1);
    CHECK_EQ_INT(r.err_off, bad_off);
    CHECK_EQ_INT(r.packets, packets_before);
    if (!strstr(r.err_msg, msg_part))
        fprintf(stderr, "%s: message \"%s\" lacks \"%s\"\n", name, r.err_msg, msg_part);
    CHECK(strstr(r.err_msg, msg_part) != NULL);
    CHECK(strchr(r.err_msg, '\n') == NULL);
    b_free(&r.log);
    check_splits(b->p, b->len, -EBADMSG, name);
}

static void test_corrupt(void)
{
    static const uint8_t pkt[8] = {0x45, 0, 0, 8};
    bytes_t b;
    size_t at;

    /* Length not a multiple of 4. */
    memset(&b, 0, sizeof(b));
    shb(&b, 0);
    idb(&b, 0, 101, 0, NULL, -1, 0);
    epb(&b, 0, 0, 1, pkt, 8, NULL);
    at = b.len;
    epb(&b, 0, 0, 2, pkt, 8, NULL);
    set32(b.p + at + 4, 0, 46);
    corrupt_case("length %4", &b, at, "bad block length 46", 1);
    b_free(&b);

    /* Length below 12 (big endian). */
    memset(&b, 0, sizeof(b));
    shb(&b, 1);
    idb(&b, 1, 101, 0, NULL, -1, 0);
    epb(&b, 1, 0, 1, pkt, 8, NULL);
    epb(&b, 1, 0, 1, pkt, 8, NULL);
    at = b.len;
    epb(&b, 1, 0, 2, pkt, 8, NULL);
    set32(b.p + at + 4, 1, 8);
    corrupt_case("length < 12", &b, at, "bad block length 8", 2);
    b_free(&b);

    /* Trailing length mismatch. */
    memset(&b, 0, sizeof(b));
    shb(&b, 0);
    idb(&b, 0, 101, 0, NULL, -1, 0);
    epb(&b, 0, 0, 1, pkt, 8, NULL);
    at = b.len;
    epb(&b, 0, 0, 2, pkt, 8, NULL);
    set32(b.p + b.len - 4, 0, 36);
    epb(&b, 0, 0, 3, pkt, 8, NULL);
    corrupt_case("trailer", &b, at, "trailing block length 36 does not match 40", 1);
    b_free(&b);

    /* Larger than the limit. */
    memset(&b, 0, sizeof(b));
    shb(&b, 0);
    idb(&b, 0, 101, 0, NULL, -1, 0);
    at = b.len;
    epb(&b, 0, 0, 2, pkt, 8, NULL);
    set32(b.p + at + 4, 0, PCAPREAD_MAX_BLOCK + 4);
    corrupt_case("too large", &b, at, "exceeds the 16 MiB limit", 0);
    b_free(&b);

    /* Bad byte-order magic in a second section. */
    memset(&b, 0, sizeof(b));
    shb(&b, 0);
    idb(&b, 0, 101, 0, NULL, -1, 0);
    epb(&b, 0, 0, 1, pkt, 8, NULL);
    at = b.len;
    shb(&b, 0);
    b.p[at + 8] = 0x4e;
    corrupt_case("shb magic", &b, at, "bad byte-order magic", 1);
    b_free(&b);

    /* Bad magic at the start of the file. */
    memset(&b, 0, sizeof(b));
    b_add(&b, "GET / HTTP/1.1\r\n", 16);
    corrupt_case("not pcap", &b, 0, "not a pcap or pcapng file", 0);
    b_free(&b);

    /* Unknown interface; the interfaces of an earlier section do not count. */
    memset(&b, 0, sizeof(b));
    shb(&b, 0);
    idb(&b, 0, 101, 0, NULL, -1, 0);
    idb(&b, 0, 101, 0, NULL, -1, 0);
    epb(&b, 0, 1, 1, pkt, 8, NULL);
    shb(&b, 0);
    idb(&b, 0, 101, 0, NULL, -1, 0);
    epb(&b, 0, 0, 1, pkt, 8, NULL);
    at = b.len;
    epb(&b, 0, 1, 1, pkt, 8, NULL);
    corrupt_case("unknown interface", &b, at, "interface 1, but the section has 1", 2);
    b_free(&b);

    /* SPB without an interface. */
    memset(&b, 0, sizeof(b));
    shb(&b, 0);
    at = b.len;
    spb(&b, 0, pkt, 8, 8);
    corrupt_case("spb", &b, at, "simple packet block before any interface", 0);
    b_free(&b);

    /* Captured length beyond the block. */
    memset(&b, 0, sizeof(b));
    shb(&b, 0);
    idb(&b, 0, 101, 0, NULL, -1, 0);
    at = b.len;
    epb(&b, 0, 0, 1, pkt, 8, NULL);
    set32(b.p + at + 20, 0, 9);
    corrupt_case("caplen", &b, at, "captured length 9 exceeds the block", 0);
    b_free(&b);

    /* Secrets length beyond the block. */
    memset(&b, 0, sizeof(b));
    shb(&b, 0);
    at = b.len;
    dsb(&b, 0, 0x544c534b, "abc");
    set32(b.p + at + 12, 0, 5);
    corrupt_case("dsb", &b, at, "secrets length 5 exceeds the block", 0);
    b_free(&b);

    /* Unsupported version; too-short SHB. */
    memset(&b, 0, sizeof(b));
    shb(&b, 0);
    b.p[12] = 2;
    corrupt_case("version", &b, 0, "unsupported pcapng version 2.0", 0);
    b_free(&b);
    memset(&b, 0, sizeof(b));
    at = blk_begin(&b, 0, 0x0a0d0d0a);
    b_u32(&b, 0, 0x1a2b3c4d);
    blk_end(&b, 0, at);
    corrupt_case("short shb", &b, 0, "too short", 0);
    b_free(&b);
}

/* A block of exactly the limit is fine, and is read through the buffer. */
static void test_max_block(void)
{
    bytes_t b = {0};
    uint8_t *big;
    rec_t r;
    uint32_t caplen = PCAPREAD_MAX_BLOCK - 32;

    big = calloc(1, caplen);
    CHECK(big != NULL);
    if (!big)
        return;
    shb(&b, 0);
    idb(&b, 0, 101, 0, NULL, -1, 0);
    epb(&b, 0, 0, 1, big, caplen, NULL);
    epb(&b, 0, 0, 2, big, 4, NULL);
    CHECK_EQ_INT(b.len, 40 + 24 + PCAPREAD_MAX_BLOCK + 36);
    CHECK_EQ_INT(read_all(&r, b.p, b.len, 0, NULL), 0);
    CHECK_EQ_INT(r.packets, 2);
    b_free(&r.log);
    CHECK_EQ_INT(read_all(&r, b.p, b.len, 1000003, NULL), 0);
    CHECK_EQ_INT(r.packets, 2);
    CHECK_EQ_INT(r.errors, 0);
    b_free(&r.log);
    free(big);
    b_free(&b);
}

static void test_truncated(void)
{
    bytes_t f;
    rec_t r;
    size_t cut, last_start;
    int rc, feed_rc;

    make_writer_file(&f, 0);
    /* Offset of the last block: its trailer says its length. */
    last_start = f.len - (f.p[f.len - 4] | f.p[f.len - 3] << 8);
    for (cut = last_start + 1; cut < f.len; cut++) {
        rc = read_all(&r, f.p, cut, 0, &feed_rc);
        CHECK_EQ_INT(feed_rc, 0);
        CHECK_EQ_INT(rc, -EBADMSG);
        CHECK_EQ_INT(r.err_off, last_start);
        CHECK_EQ_INT(r.packets, 6);
        CHECK(strstr(r.err_msg, "ends inside a block") != NULL);
        b_free(&r.log);
    }
    /* On a block boundary there is nothing to complain about. */
    CHECK_EQ_INT(read_all(&r, f.p, last_start, 0, NULL), 0);
    CHECK_EQ_INT(r.packets, 6);
    b_free(&r.log);
    /* Empty input, and 3 bytes. */
    CHECK_EQ_INT(read_all(&r, f.p, 0, 0, NULL), -EBADMSG);
    CHECK(strstr(r.err_msg, "empty") != NULL);
    b_free(&r.log);
    CHECK_EQ_INT(read_all(&r, f.p, 3, 0, NULL), -EBADMSG);
    CHECK_EQ_INT(r.err_off, 0);
    CHECK(strstr(r.err_msg, "block header") != NULL);
    b_free(&r.log);
    b_free(&f);
}

/* A callback's error stops the reader and sticks. */
static void test_callback_stop(void)
{
    bytes_t f;
    rec_t r;
    pcapread_t *pr;
    int err;

    make_writer_file(&f, 2);
    memset(&r, 0, sizeof(r));
    r.stop_at_frame = 3;
    pr = pcapread_new(&cbs, &r, &err);
    CHECK_EQ_INT(pcapread_feed(pr, f.p, f.len), -ECANCELED);
    CHECK_EQ_INT(r.packets, 3);
    CHECK_EQ_INT(pcapread_feed(pr, f.p, 1), -ECANCELED);
    CHECK_EQ_INT(pcapread_finish(pr), -ECANCELED);
    CHECK_EQ_INT(r.packets, 3);
    CHECK_EQ_INT(r.errors, 0);
    pcapread_free(pr);
    b_free(&r.log);
    b_free(&f);
}

/* Classic pcap: magic a1b2c3d4 (us) or a1b23c4d (ns), either byte order. */
static void classic(bytes_t *b, int be, int nano, uint32_t linktype)
{
    memset(b, 0, sizeof(*b));
    b_u32(b, be, nano ? 0xa1b23c4d : 0xa1b2c3d4);
    b_u16(b, be, 2);
    b_u16(b, be, 4);
    b_u32(b, be, 0);
    b_u32(b, be, 0);
    b_u32(b, be, 262144);
    b_u32(b, be, linktype);
}

static void classic_rec(bytes_t *b, int be, uint32_t sec, uint32_t frac, const void *d,
                        uint32_t len, uint32_t orig)
{
    b_u32(b, be, sec);
    b_u32(b, be, frac);
    b_u32(b, be, len);
    b_u32(b, be, orig);
    b_add(b, d, len);
}

static void test_classic(void)
{
    static const uint8_t pkt[5] = {0x60, 1, 2, 3, 4};
    int be, nano;
    bytes_t b;
    rec_t r;
    const char *log;
    char want[256];
    size_t at;

    for (be = 0; be <= 1; be++) {
        for (nano = 0; nano <= 1; nano++) {
            classic(&b, be, nano, 1);
            classic_rec(&b, be, 1700000000, 999, pkt, 5, 60);
            classic_rec(&b, be, 1700000001, 0, pkt, 3, 3);
            classic_rec(&b, be, 7, 1, pkt, 0, 0);
            CHECK_EQ_INT(read_all(&r, b.p, b.len, 0, NULL), 0);
            log = log_str(&r);
            snprintf(want, sizeof(want),
                     "S0 classic=1 be=%d v2.4 @0\n"
                     "I0/0 sec=0 lt=1 snap=262144 res=%d off=0 name=- desc=-\n",
                     be, nano ? 9 : 6);
            CHECK(strncmp(log, want, strlen(want)) == 0);
            snprintf(want, sizeof(want), "P1 if=0 lt=1 ts=1700000000%09u cap=5 orig=60 h=%08x",
                     nano ? 999 : 999000, fnv(pkt, 5));
            CHECK(strstr(log, want) != NULL);
            CHECK(strstr(log, "P2 if=0 lt=1 ts=1700000001000000000 cap=3 orig=3 ") != NULL);
            snprintf(want, sizeof(want),
                     "P3 if=0 lt=1 ts=700000%s cap=0 orig=0 h=811c9dc5 c=- "
                     "fl=0 @%zu\n",
                     nano ? "0001" : "1000", b.len - 16);
            CHECK(strstr(log, want) != NULL);
            CHECK_EQ_INT(r.packets, 3);
            b_free(&r.log);
            check_splits(b.p, b.len, 0, "classic");

            /* Truncated record, and an impossible length. */
            CHECK_EQ_INT(read_all(&r, b.p, b.len - 17, 0, NULL), -EBADMSG);
            CHECK_EQ_INT(r.err_off, 24 + 21);
            CHECK_EQ_INT(r.packets, 1);
            b_free(&r.log);
            at = b.len;
            classic_rec(&b, be, 1, 2, pkt, 1, 1);
            set32(b.p + at + 8, be, PCAPREAD_MAX_BLOCK);
            corrupt_case("classic huge", &b, at, "exceeds the 16 MiB limit", 3);
            b_free(&b);
        }
    }
    /* A header alone is a valid, empty capture; part of one is not. */
    classic(&b, 0, 0, 101);
    CHECK_EQ_INT(read_all(&r, b.p, b.len, 0, NULL), 0);
    CHECK_EQ_INT(r.packets, 0);
    b_free(&r.log);
    CHECK_EQ_INT(read_all(&r, b.p, 20, 0, NULL), -EBADMSG);
    CHECK(strstr(r.err_msg, "20 of 24 bytes") != NULL);
    b_free(&r.log);
    b_free(&b);
}

/* ---- editcap (Wireshark's) rewrites of our file ---- */

static int have_program(const char *name)
{
    char cmd[256];

    snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

static int read_file(const char *path, bytes_t *out)
{
    FILE *f = fopen(path, "rb");
    uint8_t buf[65536];
    size_t n;

    memset(out, 0, sizeof(*out));
    if (!f)
        return -errno;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        b_add(out, buf, n);
    fclose(f);
    return 0;
}

/* The packet lines of a log without offsets and comments, for comparing formats. */
static void packet_lines(const char *log, bytes_t *out)
{
    const char *p = log, *e, *c;

    memset(out, 0, sizeof(*out));
    while ((e = strchr(p, '\n')) != NULL) {
        if (*p == 'P' && (c = strstr(p, " c=")) != NULL && c < e) {
            b_add(out, p, (size_t)(c - p));
            b_add(out, "\n", 1);
        }
        p = e + 1;
    }
    b_add(out, "", 1);
}

static void test_editcap(void)
{
    char dir[] = "/tmp/test_pcapread.XXXXXX", cmd[1024], in[256], out[256];
    static const char *formats[] = {"pcapng", "pcap", "nsecpcap"};
    bytes_t f, g, want, got;
    rec_t r;
    size_t i;
    FILE *fp;

    if (!have_program("editcap")) {
        printf("note: editcap not found, skipping the editcap checks\n");
        return;
    }
    if (!mkdtemp(dir)) {
        CHECK(0);
        return;
    }
    make_writer_file(&f, 3);
    snprintf(in, sizeof(in), "%s/in.pcapng", dir);
    fp = fopen(in, "wb");
    CHECK(fp && fwrite(f.p, 1, f.len, fp) == f.len);
    if (fp)
        fclose(fp);
    CHECK_EQ_INT(read_all(&r, f.p, f.len, 0, NULL), 0);
    packet_lines(log_str(&r), &want);
    b_free(&r.log);
    for (i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        snprintf(out, sizeof(out), "%s/out.%s", dir, formats[i]);
        snprintf(cmd, sizeof(cmd), "editcap -F %s %s %s 2>&1", formats[i], in, out);
        CHECK_EQ_INT(system(cmd), 0);
        CHECK_EQ_INT(read_file(out, &g), 0);
        CHECK_EQ_INT(read_all(&r, g.p, g.len, 0, NULL), 0);
        CHECK_EQ_INT(r.packets, 13);
        packet_lines(log_str(&r), &got);
        if (strcmp((char *)got.p, (char *)want.p) != 0)
            fprintf(stderr, "editcap -F %s:\n%s\nexpected:\n%s\n", formats[i], got.p, want.p);
        CHECK_EQ_STR((char *)got.p, (char *)want.p);
        if (i == 0)
            CHECK(strstr(log_str(&r), "c=pid=42 curl") != NULL);
        b_free(&got);
        b_free(&r.log);
        b_free(&g);
        unlink(out);
    }
    /* editcap --inject-secrets puts a DSB after the SHB. */
    snprintf(cmd, sizeof(cmd),
             "printf 'CLIENT_RANDOM aa bb\\n' > %s/keys.log && "
             "editcap --inject-secrets tls,%s/keys.log %s %s/sec.pcapng 2>&1",
             dir, dir, in, dir);
    CHECK_EQ_INT(system(cmd), 0);
    snprintf(out, sizeof(out), "%s/sec.pcapng", dir);
    CHECK_EQ_INT(read_file(out, &g), 0);
    CHECK_EQ_INT(read_all(&r, g.p, g.len, 0, NULL), 0);
    CHECK(strstr(log_str(&r), "D544c534b 20 CLIENT_RANDOM aa bb\n") != NULL);
    CHECK_EQ_INT(r.packets, 13);
    b_free(&r.log);
    b_free(&g);
    unlink(out);
    snprintf(cmd, sizeof(cmd), "%s/keys.log", dir);
    unlink(cmd);
    unlink(in);
    rmdir(dir);
    b_free(&want);
    b_free(&f);
}

int main(void)
{
    test_writer_file();
    test_packet_bytes();
    test_multi_section();
    test_spb_lengths();
    test_timestamps();
    test_corrupt();
    test_max_block();
    test_truncated();
    test_callback_stop();
    test_classic();
    test_editcap();
    return check_done();
}

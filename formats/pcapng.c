/* SPDX-License-Identifier: MIT */
#include "pcapng.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* Block types and option codes (pcapng draft, and Apple's for the Darwin ones). */
#define BT_SHB 0x0a0d0d0au
#define BT_IDB 0x00000001u
#define BT_EPB 0x00000006u
#define BT_DSB 0x0000000au
#define BT_DARWIN_PROCESS 0x80000001u
#define BYTE_ORDER_MAGIC 0x1a2b3c4du

#define OPT_ENDOFOPT 0
#define OPT_COMMENT 1
#define OPT_SHB_HARDWARE 2
#define OPT_SHB_OS 3
#define OPT_SHB_USERAPPL 4
#define OPT_IF_NAME 2
#define OPT_IF_DESCRIPTION 3
#define OPT_IF_TSRESOL 9
#define OPT_EPB_FLAGS 2
#define OPT_EPB_PACKETID 5
#define OPT_DARWIN_NAME 2
#define OPT_EPB_DARWIN_PIB_INDEX 0x8001

/* An option's value is at most 65535 bytes (the length field is 16 bits). */
#define OPT_VALUE_MAX 0xffffu

/*
 * Blocks are gathered here so that a typical block reaches the sink in one
 * write (one syscall for an unbuffered file sink). A block that does not fit
 * is passed on in pieces, so the buffer never grows: large packets cost no
 * copy and no allocation. 128 KiB holds a full 64 KiB IP packet plus options.
 */
#define GATHER_CAP (128u * 1024u)

struct pcapng_writer {
    sink_t sink;
    uint64_t packets;    /* EPBs written */
    uint32_t interfaces; /* IDBs written */
    uint32_t processes;  /* Darwin process blocks written */
    size_t used;         /* bytes pending in buf */
    int err;             /* first sink error in the current block */
    uint8_t buf[];       /* GATHER_CAP bytes */
};

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static size_t pad4(size_t n)
{
    return (4 - (n & 3)) & 3;
}

static void gather_flush(pcapng_writer_t *w)
{
    if (w->used && !w->err)
        w->err = w->sink.write(w->sink.opaque, w->buf, w->used);
    w->used = 0;
}

/* What does not fit: the buffer goes out first, then len bytes are kept or passed on. */
static void gather_slow(pcapng_writer_t *w, const void *p, size_t len)
{
    gather_flush(w);
    if (len > GATHER_CAP) {
        if (!w->err)
            w->err = w->sink.write(w->sink.opaque, p, len);
        return;
    }
    memcpy(w->buf, p, len);
    w->used = len;
}

/*
 * Appends to the block being written; an error is kept for block_end (bytes
 * gathered after it are dropped by gather_flush). Inline: a packet block is a
 * dozen small pieces.
 */
static inline void gather(pcapng_writer_t *w, const void *p, size_t len)
{
    if (len == 0)
        return; /* p may then be NULL (a packet with no payload) */
    if (len <= GATHER_CAP - w->used) {
        memcpy(w->buf + w->used, p, len);
        w->used += len;
        return;
    }
    gather_slow(w, p, len);
}

static void gather_zeros(pcapng_writer_t *w, size_t n)
{
    static const uint8_t zeros[8];

    gather(w, zeros, n);
}

static void block_begin(pcapng_writer_t *w, uint32_t type, uint32_t total)
{
    uint8_t h[8];

    w->used = 0;
    w->err = 0;
    put32(h, type);
    put32(h + 4, total);
    gather(w, h, sizeof(h));
}

static int block_end(pcapng_writer_t *w, uint32_t total)
{
    uint8_t t[4];

    put32(t, total);
    gather(w, t, sizeof(t));
    gather_flush(w);
    return w->err;
}

/*
 * Option values longer than 65535 bytes cannot be encoded; strings are cut at
 * a UTF-8 character boundary so the result stays valid text. Losing the tail
 * of an over-long comment is better than losing the packet.
 */
static size_t str_optlen(const char *s)
{
    size_t n;

    if (!s)
        return 0;
    n = strlen(s);
    if (n <= OPT_VALUE_MAX)
        return n;
    n = OPT_VALUE_MAX;
    while (n > 0 && ((uint8_t)s[n] & 0xc0) == 0x80)
        n--;
    return n;
}

/* Bytes an option with a value of len bytes takes (header, value, padding). */
static size_t opt_size(size_t len)
{
    return 4 + len + pad4(len);
}

static void put_opt(pcapng_writer_t *w, uint16_t code, const void *val, size_t len)
{
    uint8_t h[4];

    put16(h, code);
    put16(h + 2, (uint16_t)len);
    gather(w, h, sizeof(h));
    gather(w, val, len);
    gather_zeros(w, pad4(len));
}

/* A string option, or nothing for NULL / "" (empty options say nothing). */
static void put_str_opt(pcapng_writer_t *w, uint16_t code, const char *s)
{
    size_t n = str_optlen(s);

    if (n)
        put_opt(w, code, s, n);
}

static size_t str_opt_size(const char *s)
{
    size_t n = str_optlen(s);

    return n ? opt_size(n) : 0;
}

static void put_endofopt(pcapng_writer_t *w)
{
    gather_zeros(w, 4);
}

pcapng_writer_t *pcapng_writer_new(const sink_t *sink, const char *appl, const char *os, int *err)
{
    pcapng_writer_t *w;
    size_t opts, total;
    uint8_t body[16];
    int rc;

    if (!sink || !sink->write) {
        if (err)
            *err = -EINVAL;
        return NULL;
    }
    w = malloc(sizeof(*w) + GATHER_CAP);
    if (!w) {
        if (err)
            *err = -ENOMEM;
        return NULL;
    }
    memset(w, 0, sizeof(*w));
    w->sink = *sink;

    opts = str_opt_size(os) + str_opt_size(appl);
    if (opts)
        opts += 4;
    total = 8 + sizeof(body) + opts + 4;

    put32(body, BYTE_ORDER_MAGIC);
    put16(body + 4, 1);          /* major version */
    put16(body + 6, 0);          /* minor version */
    put64(body + 8, UINT64_MAX); /* section length: not known (-1) */
    block_begin(w, BT_SHB, (uint32_t)total);
    gather(w, body, sizeof(body));
    if (opts) {
        put_str_opt(w, OPT_SHB_OS, os);
        put_str_opt(w, OPT_SHB_USERAPPL, appl);
        put_endofopt(w);
    }
    rc = block_end(w, (uint32_t)total);
    if (rc < 0) {
        free(w);
        if (err)
            *err = rc;
        return NULL;
    }
    if (err)
        *err = 0;
    return w;
}

void pcapng_writer_free(pcapng_writer_t *w)
{
    free(w);
}

int pcapng_writer_add_interface(pcapng_writer_t *w, uint16_t linktype, uint32_t snaplen,
                                const char *name, const char *description)
{
    static const uint8_t tsresol[1] = {6}; /* 10^-6 s */
    size_t total;
    uint8_t body[8];
    int rc;

    if (!w)
        return -EINVAL;
    if (w->interfaces >= INT_MAX)
        return -ERANGE;
    total = 8 + sizeof(body) + str_opt_size(name) + str_opt_size(description) +
            opt_size(sizeof(tsresol)) + 4 + 4;

    put16(body, linktype);
    put16(body + 2, 0);
    put32(body + 4, snaplen);
    block_begin(w, BT_IDB, (uint32_t)total);
    gather(w, body, sizeof(body));
    put_str_opt(w, OPT_IF_NAME, name);
    put_str_opt(w, OPT_IF_DESCRIPTION, description);
    put_opt(w, OPT_IF_TSRESOL, tsresol, sizeof(tsresol));
    put_endofopt(w);
    rc = block_end(w, (uint32_t)total);
    if (rc < 0)
        return rc;
    return (int)w->interfaces++;
}

int pcapng_writer_add_secrets(pcapng_writer_t *w, uint32_t secrets_type, const void *data,
                              size_t len)
{
    uint8_t body[8];
    size_t total;

    if (!w || (!data && len))
        return -EINVAL;
    /* 8 header + 8 body + data + padding + 4 trailer must fit the u32 length. */
    if (len > UINT32_MAX - 24)
        return -EMSGSIZE;
    total = 8 + sizeof(body) + len + pad4(len) + 4;

    put32(body, secrets_type);
    put32(body + 4, (uint32_t)len);
    block_begin(w, BT_DSB, (uint32_t)total);
    gather(w, body, sizeof(body));
    gather(w, data, len);
    gather_zeros(w, pad4(len));
    return block_end(w, (uint32_t)total);
}

int pcapng_writer_add_darwin_process(pcapng_writer_t *w, uint32_t pid, const char *name)
{
    uint8_t body[4];
    size_t opts, total;
    int rc;

    if (!w)
        return -EINVAL;
    if (w->processes >= INT_MAX)
        return -ERANGE;
    opts = str_opt_size(name);
    if (opts)
        opts += 4;
    total = 8 + sizeof(body) + opts + 4;

    put32(body, pid);
    block_begin(w, BT_DARWIN_PROCESS, (uint32_t)total);
    gather(w, body, sizeof(body));
    if (opts) {
        put_str_opt(w, OPT_DARWIN_NAME, name);
        put_endofopt(w);
    }
    rc = block_end(w, (uint32_t)total);
    if (rc < 0)
        return rc;
    return (int)w->processes++;
}

/* The EPB for a packet given as up to two pieces (a and b, concatenated). */
static int64_t add_epb(pcapng_writer_t *w, uint32_t ifid, uint64_t ts_usec, const void *a,
                       uint32_t alen, const void *b, uint32_t blen, uint32_t origlen,
                       const pcapng_pkt_opts_t *o)
{
    uint8_t body[20], val[8];
    size_t caplen, opts = 0, total, clen = 0, clen2 = 0;
    int rc;

    if (!w || ifid >= w->interfaces || (!a && alen) || (!b && blen))
        return -EINVAL;
    caplen = (size_t)alen + blen;
    if (caplen > origlen)
        return -EINVAL;
    if (o) {
        if (o->direction < PCAPNG_DIR_UNKNOWN || o->direction > PCAPNG_DIR_OUTBOUND)
            return -EINVAL;
        /* Measured once: every packet of a flow names its process in a comment. */
        clen = str_optlen(o->comment);
        clen2 = str_optlen(o->comment2);
        opts += (clen ? opt_size(clen) : 0) + (clen2 ? opt_size(clen2) : 0);
        if (o->direction)
            opts += opt_size(4);
        if (o->packet_id)
            opts += opt_size(8);
        /*
         * The index must name a process block already written: a reader
         * resolves it against the blocks before the packet. Out of range
         * (including 0 from a zeroed struct before any process block) means
         * no process.
         */
        if (o->darwin_process >= 0 && (uint32_t)o->darwin_process < w->processes)
            opts += opt_size(4);
        if (opts)
            opts += 4;
    }
    /* 8 header + 20 body + data + padding + options + 4 trailer. */
    if (caplen > UINT32_MAX - 32 - opts - 3)
        return -EMSGSIZE;
    total = 8 + sizeof(body) + caplen + pad4(caplen) + opts + 4;

    put32(body, ifid);
    put32(body + 4, (uint32_t)(ts_usec >> 32));
    put32(body + 8, (uint32_t)ts_usec);
    put32(body + 12, (uint32_t)caplen);
    put32(body + 16, origlen);
    block_begin(w, BT_EPB, (uint32_t)total);
    gather(w, body, sizeof(body));
    gather(w, a, alen);
    gather(w, b, blen);
    gather_zeros(w, pad4(caplen));
    if (opts) {
        if (clen)
            put_opt(w, OPT_COMMENT, o->comment, clen);
        if (clen2)
            put_opt(w, OPT_COMMENT, o->comment2, clen2);
        if (o->direction) {
            put32(val, (uint32_t)o->direction);
            put_opt(w, OPT_EPB_FLAGS, val, 4);
        }
        if (o->packet_id) {
            put64(val, o->packet_id);
            put_opt(w, OPT_EPB_PACKETID, val, 8);
        }
        if (o->darwin_process >= 0 && (uint32_t)o->darwin_process < w->processes) {
            put32(val, (uint32_t)o->darwin_process);
            put_opt(w, OPT_EPB_DARWIN_PIB_INDEX, val, 4);
        }
        put_endofopt(w);
    }
    rc = block_end(w, (uint32_t)total);
    if (rc < 0)
        return rc;
    return (int64_t)++w->packets;
}

int64_t pcapng_writer_add_packet(pcapng_writer_t *w, uint32_t ifid, uint64_t ts_usec,
                                 const void *data, uint32_t caplen, uint32_t origlen,
                                 const pcapng_pkt_opts_t *opts)
{
    return add_epb(w, ifid, ts_usec, data, caplen, NULL, 0, origlen, opts);
}

int64_t pcapng_writer_add_packet2(pcapng_writer_t *w, uint32_t ifid, uint64_t ts_usec,
                                  const void *hdr, uint32_t hdrlen, const void *payload,
                                  uint32_t plen, const pcapng_pkt_opts_t *opts)
{
    uint32_t len;

    if (hdrlen > UINT32_MAX - plen)
        return -EMSGSIZE;
    len = hdrlen + plen;
    return add_epb(w, ifid, ts_usec, hdr, hdrlen, payload, plen, len, opts);
}

uint64_t pcapng_writer_packets(const pcapng_writer_t *w)
{
    return w ? w->packets : 0;
}

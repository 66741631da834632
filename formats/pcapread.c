/* SPDX-License-Identifier: MIT */
#include "pcapread.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* pcapng block types and option codes. */
#define BT_SHB 0x0a0d0d0au
#define BT_IDB 0x00000001u
#define BT_PB 0x00000002u /* obsolete Packet Block */
#define BT_SPB 0x00000003u
#define BT_EPB 0x00000006u
#define BT_DSB 0x0000000au
#define BYTE_ORDER_MAGIC 0x1a2b3c4du

#define OPT_ENDOFOPT 0
#define OPT_COMMENT 1
#define OPT_EPB_FLAGS 2
#define OPT_IF_NAME 2
#define OPT_IF_DESCRIPTION 3
#define OPT_IF_TSRESOL 9
#define OPT_IF_TSOFFSET 14

/* Classic pcap. */
#define PCAP_HDR_LEN 24
#define PCAP_REC_HDR 16

#define NS_PER_SEC 1000000000ull

/* Room for two option values (each at most 65535 bytes) plus their NULs. */
#define SCRATCH_HALF 65536u

enum mode {
    MODE_DETECT, /* nothing read yet: the first 4 bytes say what follows */
    MODE_PCAPNG,
    MODE_PCAP_HDR, /* classic pcap, file header next */
    MODE_PCAP_REC, /* classic pcap, records */
};

/* How raw timestamps of an interface become nanoseconds. */
enum ts_kind {
    TS_MUL, /* ts * factor (resolution of 1 ns or coarser, decimal) */
    TS_DIV, /* ts / factor (finer than 1 ns, decimal); factor 0: always 0 */
    TS_BIN, /* ts / 2^shift seconds */
};

struct iface {
    uint32_t id; /* file-wide */
    uint32_t snaplen;
    uint16_t linktype;
    uint8_t kind;
    uint8_t shift;
    uint64_t factor;
    int64_t tsoffset; /* seconds */
};

struct pcapread {
    pcapread_callbacks_t cb;
    void *opaque;
    int mode;
    int failed; /* sticky error, 0 while healthy */
    int finished;
    int be;       /* byte order of the current section */
    int nano;     /* classic pcap with nanosecond timestamps */
    uint64_t off; /* file offset of the next unit (or of the buffered partial one) */
    uint64_t frames;
    uint32_t sections;
    uint32_t if_total; /* interfaces over the whole file */
    struct iface *ifs; /* interfaces of the current section */
    uint32_t n_if, cap_if;
    uint8_t *buf; /* a partial unit that straddles feeds */
    size_t blen, bcap;
    char *scratch; /* NUL-terminated copies of option strings */
};

static uint16_t get16(const uint8_t *p, int be)
{
    return be ? (uint16_t)(p[0] << 8 | p[1]) : (uint16_t)(p[1] << 8 | p[0]);
}

static uint32_t get32(const uint8_t *p, int be)
{
    if (be)
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static uint64_t get64(const uint8_t *p, int be)
{
    if (be)
        return (uint64_t)get32(p, 1) << 32 | get32(p + 4, 1);
    return (uint64_t)get32(p + 4, 0) << 32 | get32(p, 0);
}

static size_t pad4(size_t n)
{
    return (4 - (n & 3)) & 3;
}

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
    if (b && a > UINT64_MAX / b)
        return UINT64_MAX;
    return a * b;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Reports malformed input once and makes the reader fail from now on. */
static int bad(pcapread_t *r, uint64_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(pcapread_t *r, uint64_t off, const char *fmt, ...)
{
    char msg[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (r->cb.on_error)
        r->cb.on_error(r->opaque, off, msg);
    return -EBADMSG;
}

/*
 * Sets up the timestamp conversion for an if_tsresol value: bit 7 clear means
 * 10^-n seconds per unit, set means 2^-n. Precomputed so that a packet costs
 * one multiplication or division.
 */
static void iface_tsresol(struct iface *f, uint8_t v)
{
    unsigned n = v & 0x7f;
    uint64_t p = 1;
    unsigned i;

    if (v & 0x80) {
        f->kind = TS_BIN;
        f->shift = (uint8_t)n;
        return;
    }
    if (n <= 9) {
        for (i = n; i < 9; i++)
            p *= 10;
        f->kind = TS_MUL;
        f->factor = p;
        return;
    }
    f->kind = TS_DIV;
    if (n - 9 > 19) { /* 10^20 does not fit: every timestamp is below 1 ns */
        f->factor = 0;
        return;
    }
    for (i = 9; i < n; i++)
        p *= 10;
    f->factor = p;
}

static uint64_t iface_ns(const struct iface *f, uint64_t ts)
{
    uint64_t ns, sec, frac, off;
    unsigned s = f->shift;

    switch (f->kind) {
    case TS_MUL:
        ns = sat_mul(ts, f->factor);
        break;
    case TS_DIV:
        ns = f->factor ? ts / f->factor : 0;
        break;
    default:
        /* Whole seconds, then the fraction with as many bits as keep the
           product below 2^64 (2^34 * 10^9 < 2^64). */
        sec = s >= 64 ? 0 : ts >> s;
        frac = s >= 64 ? ts : ts & ((1ull << s) - 1);
        if (s > 34) {
            frac = (s - 34) >= 64 ? 0 : frac >> (s - 34);
            s = 34;
        }
        ns = sat_add(sat_mul(sec, NS_PER_SEC), (frac * NS_PER_SEC) >> s);
        break;
    }
    if (f->tsoffset > 0) {
        ns = sat_add(ns, sat_mul((uint64_t)f->tsoffset, NS_PER_SEC));
    } else if (f->tsoffset < 0) {
        off = sat_mul((uint64_t)(-(f->tsoffset + 1)) + 1, NS_PER_SEC);
        ns = ns > off ? ns - off : 0;
    }
    return ns;
}

pcapread_t *pcapread_new(const pcapread_callbacks_t *cb, void *opaque, int *err)
{
    pcapread_t *r;

    if (!cb) {
        if (err)
            *err = -EINVAL;
        return NULL;
    }
    r = calloc(1, sizeof(*r));
    if (!r) {
        if (err)
            *err = -ENOMEM;
        return NULL;
    }
    r->cb = *cb;
    r->opaque = opaque;
    if (err)
        *err = 0;
    return r;
}

void pcapread_free(pcapread_t *r)
{
    if (!r)
        return;
    free(r->ifs);
    free(r->buf);
    free(r->scratch);
    free(r);
}

uint64_t pcapread_frames(const pcapread_t *r)
{
    return r ? r->frames : 0;
}

uint64_t pcapread_offset(const pcapread_t *r)
{
    return r ? r->off + r->blen : 0;
}

/* The scratch area is allocated with the first block that has options. */
static int scratch_reserve(pcapread_t *r)
{
    if (!r->scratch && !(r->scratch = malloc(2 * SCRATCH_HALF)))
        return -ENOMEM;
    return 0;
}

/* A NUL-terminated copy of an option value in one half of the scratch area. */
static const char *scratch_str(pcapread_t *r, int half, const uint8_t *p, size_t n)
{
    char *s = r->scratch + (half ? SCRATCH_HALF : 0);

    memcpy(s, p, n); /* n <= 65535: the option length is 16 bits */
    s[n] = '\0';
    return s;
}

/*
 * Walks the options in [p, p + len), handing each to fn. A malformed option
 * list ends the walk (returning -1): for a packet the block in front of them
 * is still fine; an interface whose options are corrupt is an error (its
 * time resolution may be among them).
 */
static int has_options(const uint8_t *p, size_t len, int be)
{
    return len >= 4 && get16(p, be) != OPT_ENDOFOPT;
}

typedef void (*opt_fn)(void *ctx, uint16_t code, const uint8_t *val, uint16_t len);

static int walk_options(const uint8_t *p, size_t len, int be, opt_fn fn, void *ctx)
{
    while (len >= 4) {
        uint16_t code = get16(p, be), olen = get16(p + 2, be);
        size_t step;

        if (code == OPT_ENDOFOPT)
            return 0;
        if (olen > len - 4)
            return -1;
        fn(ctx, code, p + 4, olen);
        step = 4 + (size_t)olen + pad4(olen);
        if (step >= len)
            return 0;
        p += step;
        len -= step;
    }
    return 0;
}

struct pkt_opts {
    pcapread_t *r;
    int be;
    pcapread_packet_t *pkt;
};

static void pkt_opt(void *ctx, uint16_t code, const uint8_t *val, uint16_t len)
{
    struct pkt_opts *o = ctx;

    if (code == OPT_COMMENT && !o->pkt->comment) {
        o->pkt->comment = scratch_str(o->r, 0, val, len);
        o->pkt->comment_len = len;
    } else if (code == OPT_EPB_FLAGS && len == 4) {
        o->pkt->flags = get32(val, o->be);
    }
}

struct if_opts {
    pcapread_t *r;
    int be;
    pcapread_interface_t *ifc;
    struct iface *f;
};

static void if_opt(void *ctx, uint16_t code, const uint8_t *val, uint16_t len)
{
    struct if_opts *o = ctx;

    if (code == OPT_IF_NAME && !o->ifc->name)
        o->ifc->name = scratch_str(o->r, 0, val, len);
    else if (code == OPT_IF_DESCRIPTION && !o->ifc->description)
        o->ifc->description = scratch_str(o->r, 1, val, len);
    else if (code == OPT_IF_TSRESOL && len >= 1)
        o->ifc->tsresol = val[0];
    else if (code == OPT_IF_TSOFFSET && len == 8)
        o->ifc->tsoffset = (int64_t)get64(val, o->be);
}

/* Adds an interface to the current section and reports it. */
static int add_interface(pcapread_t *r, uint16_t linktype, uint32_t snaplen,
                         pcapread_interface_t *ifc)
{
    struct iface *f;

    if (r->n_if == r->cap_if) {
        uint32_t cap = r->cap_if ? r->cap_if * 2 : 8;
        struct iface *n = realloc(r->ifs, (size_t)cap * sizeof(*n));

        if (!n)
            return -ENOMEM;
        r->ifs = n;
        r->cap_if = cap;
    }
    f = &r->ifs[r->n_if];
    memset(f, 0, sizeof(*f));
    f->id = r->if_total;
    f->snaplen = snaplen;
    f->linktype = linktype;
    f->tsoffset = ifc->tsoffset;
    iface_tsresol(f, ifc->tsresol);
    ifc->id = r->if_total;
    ifc->section_id = r->n_if;
    ifc->section = r->sections - 1;
    ifc->linktype = linktype;
    ifc->snaplen = snaplen;
    r->n_if++;
    r->if_total++;
    return r->cb.on_interface ? r->cb.on_interface(r->opaque, ifc) : 0;
}

static int deliver(pcapread_t *r, pcapread_packet_t *pkt)
{
    pkt->frame = ++r->frames;
    return r->cb.on_packet ? r->cb.on_packet(r->opaque, pkt) : 0;
}

static int do_shb(pcapread_t *r, const uint8_t *p, size_t sz, int be)
{
    pcapread_section_t s;

    if (sz < 28)
        return bad(r, r->off, "section header block of %zu bytes is too short", sz);
    memset(&s, 0, sizeof(s));
    s.major = get16(p + 12, be);
    s.minor = get16(p + 14, be);
    if (s.major != 1)
        return bad(r, r->off, "unsupported pcapng version %u.%u", s.major, s.minor);
    r->be = be;
    r->n_if = 0; /* interface ids start again in every section */
    s.index = r->sections++;
    s.big_endian = be;
    s.offset = r->off;
    return r->cb.on_section ? r->cb.on_section(r->opaque, &s) : 0;
}

static int do_idb(pcapread_t *r, const uint8_t *b, size_t blen)
{
    pcapread_interface_t ifc;
    struct if_opts o = {r, r->be, &ifc, NULL};

    if (blen < 8)
        return bad(r, r->off, "interface description block is too short");
    if (r->n_if >= PCAPREAD_MAX_INTERFACES)
        return bad(r, r->off, "more than %u interfaces in one section", PCAPREAD_MAX_INTERFACES);
    memset(&ifc, 0, sizeof(ifc));
    ifc.tsresol = 6;
    if (has_options(b + 8, blen - 8, r->be) && scratch_reserve(r) < 0)
        return -ENOMEM;
    if (walk_options(b + 8, blen - 8, r->be, if_opt, &o) < 0)
        return bad(r, r->off, "interface description block: an option runs past the block");
    return add_interface(r, get16(b, r->be), get32(b + 4, r->be), &ifc);
}

/* EPB and the obsolete PB share a 20-byte header shape after the interface id. */
static int do_epb(pcapread_t *r, const uint8_t *b, size_t blen, int obsolete)
{
    pcapread_packet_t pkt;
    struct pkt_opts o = {r, r->be, &pkt};
    const struct iface *f;
    uint32_t ifid;
    size_t used;

    if (blen < 20)
        return bad(r, r->off, "%s block is too short", obsolete ? "packet" : "enhanced packet");
    ifid = obsolete ? get16(b, r->be) : get32(b, r->be);
    if (ifid >= r->n_if)
        return bad(r, r->off,
                   "packet refers to interface %" PRIu32 ", but the section has %" PRIu32, ifid,
                   r->n_if);
    f = &r->ifs[ifid];
    memset(&pkt, 0, sizeof(pkt));
    pkt.caplen = get32(b + 12, r->be);
    pkt.origlen = get32(b + 16, r->be);
    if (pkt.caplen > blen - 20)
        return bad(r, r->off, "captured length %" PRIu32 " exceeds the block", pkt.caplen);
    pkt.ifid = f->id;
    pkt.linktype = f->linktype;
    pkt.ts_ns = iface_ns(f, (uint64_t)get32(b + 4, r->be) << 32 | get32(b + 8, r->be));
    pkt.data = b + 20;
    pkt.offset = r->off;
    used = 20 + (size_t)pkt.caplen + pad4(pkt.caplen);
    if (used < blen && has_options(b + used, blen - used, r->be)) {
        if (scratch_reserve(r) < 0)
            return -ENOMEM;
        walk_options(b + used, blen - used, r->be, pkt_opt, &o);
    }
    return deliver(r, &pkt);
}

static int do_spb(pcapread_t *r, const uint8_t *b, size_t blen)
{
    pcapread_packet_t pkt;
    const struct iface *f;
    size_t cap;

    if (blen < 4)
        return bad(r, r->off, "simple packet block is too short");
    if (r->n_if == 0)
        return bad(r, r->off, "simple packet block before any interface description");
    f = &r->ifs[0];
    memset(&pkt, 0, sizeof(pkt));
    pkt.origlen = get32(b, r->be);
    /* The captured length is implied: the original length cut to the snap
       length and to the block. */
    cap = blen - 4;
    if (pkt.origlen < cap)
        cap = pkt.origlen;
    if (f->snaplen && f->snaplen < cap)
        cap = f->snaplen;
    pkt.caplen = (uint32_t)cap;
    pkt.ifid = f->id;
    pkt.linktype = f->linktype;
    pkt.data = b + 4;
    pkt.offset = r->off;
    return deliver(r, &pkt);
}

static int do_dsb(pcapread_t *r, const uint8_t *b, size_t blen)
{
    uint32_t type, len;

    if (blen < 8)
        return bad(r, r->off, "decryption secrets block is too short");
    type = get32(b, r->be);
    len = get32(b + 4, r->be);
    if (len > blen - 8)
        return bad(r, r->off, "secrets length %" PRIu32 " exceeds the block", len);
    return r->cb.on_secrets ? r->cb.on_secrets(r->opaque, type, b + 8, len) : 0;
}

static int do_pcapng(pcapread_t *r, const uint8_t *p, size_t sz)
{
    uint32_t type = get32(p, r->be), trail;
    int be = r->be;

    if (type == BT_SHB)
        be = get32(p + 8, 0) == BYTE_ORDER_MAGIC ? 0 : 1;
    trail = get32(p + sz - 4, be);
    if (trail != sz)
        return bad(r, r->off, "trailing block length %" PRIu32 " does not match %zu", trail, sz);
    switch (type) {
    case BT_SHB:
        return do_shb(r, p, sz, be);
    case BT_IDB:
        return do_idb(r, p + 8, sz - 12);
    case BT_PB:
        return do_epb(r, p + 8, sz - 12, 1);
    case BT_SPB:
        return do_spb(r, p + 8, sz - 12);
    case BT_EPB:
        return do_epb(r, p + 8, sz - 12, 0);
    case BT_DSB:
        return do_dsb(r, p + 8, sz - 12);
    default:
        return 0; /* unknown and uninteresting blocks are skipped */
    }
}

static int do_pcap_hdr(pcapread_t *r, const uint8_t *p)
{
    pcapread_section_t s;
    pcapread_interface_t ifc;
    uint32_t magic = get32(p, 1);
    int rc;

    r->be = magic == 0xa1b2c3d4u || magic == 0xa1b23c4du;
    r->nano = magic == 0xa1b23c4du || magic == 0x4d3cb2a1u;
    memset(&s, 0, sizeof(s));
    s.classic = 1;
    s.big_endian = r->be;
    s.major = get16(p + 4, r->be);
    s.minor = get16(p + 6, r->be);
    s.index = r->sections++;
    if (r->cb.on_section && (rc = r->cb.on_section(r->opaque, &s)) != 0)
        return rc;
    memset(&ifc, 0, sizeof(ifc));
    ifc.tsresol = r->nano ? 9 : 6;
    /* The upper bits of the link type field carry FCS information. */
    rc = add_interface(r, (uint16_t)get32(p + 20, r->be), get32(p + 16, r->be), &ifc);
    r->mode = MODE_PCAP_REC;
    return rc;
}

static int do_pcap_rec(pcapread_t *r, const uint8_t *p, size_t sz)
{
    pcapread_packet_t pkt;
    uint64_t frac = get32(p + 4, r->be);

    memset(&pkt, 0, sizeof(pkt));
    pkt.ifid = r->ifs[0].id;
    pkt.linktype = r->ifs[0].linktype;
    pkt.ts_ns = sat_add(sat_mul(get32(p, r->be), NS_PER_SEC), r->nano ? frac : frac * 1000);
    pkt.caplen = (uint32_t)(sz - PCAP_REC_HDR);
    pkt.origlen = get32(p + 12, r->be);
    pkt.data = p + PCAP_REC_HDR;
    pkt.offset = r->off;
    return deliver(r, &pkt);
}

/*
 * The size of the unit (block, file header or record) starting at p, from
 * its first avail bytes. Returns the size; or 0 and sets *need to the number
 * of bytes required to tell; or -EBADMSG (reported) when the size is invalid.
 */
static long long unit_size(pcapread_t *r, const uint8_t *p, size_t avail, size_t *need)
{
    uint32_t magic, len;
    int be;

    switch (r->mode) {
    case MODE_DETECT:
        if (avail < 4) {
            *need = 4;
            return 0;
        }
        magic = get32(p, 1);
        if (magic == BT_SHB) {
            r->mode = MODE_PCAPNG;
        } else if (magic == 0xa1b2c3d4u || magic == 0xd4c3b2a1u || magic == 0xa1b23c4du ||
                   magic == 0x4d3cb2a1u) {
            r->mode = MODE_PCAP_HDR;
        } else {
            return bad(r, r->off, "not a pcap or pcapng file (magic %08" PRIx32 ")", magic);
        }
        return unit_size(r, p, avail, need);
    case MODE_PCAP_HDR:
        return PCAP_HDR_LEN;
    case MODE_PCAP_REC:
        if (avail < PCAP_REC_HDR) {
            *need = PCAP_REC_HDR;
            return 0;
        }
        len = get32(p + 8, r->be);
        if (len > PCAPREAD_MAX_BLOCK - PCAP_REC_HDR)
            return bad(r, r->off, "record of %" PRIu32 " bytes exceeds the %u MiB limit", len,
                       PCAPREAD_MAX_BLOCK >> 20);
        return PCAP_REC_HDR + (long long)len;
    default:
        if (avail < 8) {
            *need = 8;
            return 0;
        }
        be = r->be;
        if (get32(p, 0) == BT_SHB) {
            /* A new section may change the byte order, so its own length is
               read in the order its magic gives. */
            if (avail < 12) {
                *need = 12;
                return 0;
            }
            if (get32(p + 8, 0) == BYTE_ORDER_MAGIC)
                be = 0;
            else if (get32(p + 8, 1) == BYTE_ORDER_MAGIC)
                be = 1;
            else
                return bad(r, r->off, "bad byte-order magic %08" PRIx32 " in section header",
                           get32(p + 8, 1));
        }
        len = get32(p + 4, be);
        if (len < 12 || len % 4)
            return bad(r, r->off, "bad block length %" PRIu32 " (block type %08" PRIx32 ")", len,
                       get32(p, be));
        if (len > PCAPREAD_MAX_BLOCK)
            return bad(r, r->off, "block of %" PRIu32 " bytes exceeds the %u MiB limit", len,
                       PCAPREAD_MAX_BLOCK >> 20);
        return len;
    }
}

static int process(pcapread_t *r, const uint8_t *p, size_t sz)
{
    switch (r->mode) {
    case MODE_PCAP_HDR:
        return do_pcap_hdr(r, p);
    case MODE_PCAP_REC:
        return do_pcap_rec(r, p, sz);
    default:
        return do_pcapng(r, p, sz);
    }
}

static int buf_reserve(pcapread_t *r, size_t want)
{
    size_t cap;
    uint8_t *n;

    if (want <= r->bcap)
        return 0;
    cap = r->bcap ? r->bcap : 4096;
    while (cap < want)
        cap *= 2;
    if (cap > PCAPREAD_MAX_BLOCK)
        cap = PCAPREAD_MAX_BLOCK;
    n = realloc(r->buf, cap);
    if (!n)
        return -ENOMEM;
    r->buf = n;
    r->bcap = cap;
    return 0;
}

static int fail(pcapread_t *r, int rc)
{
    r->failed = rc;
    return rc;
}

int pcapread_feed(pcapread_t *r, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    long long sz;
    size_t need, take;
    int rc;

    if (!r || (!buf && len))
        return -EINVAL;
    if (r->failed)
        return r->failed;
    if (r->finished)
        return -EINVAL;

    /* First complete the unit left over from the previous feeds, if any. */
    while (r->blen) {
        need = 0;
        sz = unit_size(r, r->buf, r->blen, &need);
        if (sz < 0)
            return fail(r, (int)sz);
        if (sz > 0)
            need = (size_t)sz;
        if ((rc = buf_reserve(r, need)) < 0)
            return fail(r, rc);
        take = need - r->blen < len ? need - r->blen : len;
        memcpy(r->buf + r->blen, p, take);
        r->blen += take;
        p += take;
        len -= take;
        if (r->blen < need)
            return 0; /* all input used */
        if (sz == 0)
            continue; /* the header is complete: now the size is known */
        rc = process(r, r->buf, (size_t)sz);
        r->blen = 0;
        if (rc)
            return fail(r, rc);
        r->off += (uint64_t)sz;
    }

    /* Then whole units straight from the caller's buffer. */
    while (len) {
        need = 0;
        sz = unit_size(r, p, len, &need);
        if (sz < 0)
            return fail(r, (int)sz);
        if (sz == 0 || (size_t)sz > len) {
            if ((rc = buf_reserve(r, sz ? (size_t)sz : need)) < 0)
                return fail(r, rc);
            memcpy(r->buf, p, len);
            r->blen = len;
            return 0;
        }
        rc = process(r, p, (size_t)sz);
        if (rc)
            return fail(r, rc);
        r->off += (uint64_t)sz;
        p += sz;
        len -= (size_t)sz;
    }
    return 0;
}

int pcapread_finish(pcapread_t *r)
{
    long long sz;
    size_t need = 0;
    int rc = 0;

    if (!r)
        return -EINVAL;
    if (r->failed)
        return r->failed;
    if (r->finished)
        return 0;
    r->finished = 1;
    if (r->blen) {
        sz = unit_size(r, r->buf, r->blen, &need);
        if (sz > 0)
            rc = bad(r, r->off, "the file ends inside a block (%zu of %lld bytes)", r->blen, sz);
        else if (sz == 0)
            rc = bad(r, r->off, "the file ends inside a block header (%zu bytes)", r->blen);
        else
            rc = (int)sz;
    } else if (r->mode == MODE_DETECT) {
        rc = bad(r, 0, "empty input: not a pcap or pcapng file");
    }
    if (rc)
        r->failed = rc;
    return rc;
}

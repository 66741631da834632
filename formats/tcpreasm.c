/* SPDX-License-Identifier: MIT */
#include "tcpreasm.h"
#include "tcpreasm_int.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define DEFAULT_MAX_CONNS 65536u
#define DEFAULT_MAX_BUFFER (4u * 1024u * 1024u)
#define DEFAULT_MAX_TOTAL (256u * 1024u * 1024u)
#define MIN_BUCKETS 256u

#define ETH_IPV4 0x0800
#define ETH_IPV6 0x86dd

#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17

/* Link types that are other names for RAW: DLT_RAW on various BSDs, IPV4, IPV6. */
#define LINKTYPE_RAW_BSD12 12
#define LINKTYPE_RAW_BSD14 14
#define LINKTYPE_IPV4 228
#define LINKTYPE_IPV6 229

/* A decoded TCP segment or UDP datagram. */
struct l4 {
    tcpreasm_endpoint_t src, dst;
    const uint8_t *hdr; /* the TCP / UDP header */
    size_t have;        /* captured bytes from hdr on, within the IP packet */
    size_t claimed;     /* bytes from hdr on, as the IP header says */
    uint8_t proto;
};

#define container_of(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

static void dlist_push(struct dlist *l, struct dlink *n)
{
    n->next = NULL;
    n->prev = l->tail;
    if (l->tail)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
}

static void dlist_del(struct dlist *l, struct dlink *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
}

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* ---- connection table ---------------------------------------------------------------- */

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v;
    h *= 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}

static uint64_t ep_hash(uint64_t h, const tcpreasm_endpoint_t *e)
{
    uint64_t a, b;

    memcpy(&a, e->addr, 8);
    memcpy(&b, e->addr + 8, 8);
    return mix(mix(mix(h, a), b), e->port);
}

static int ep_cmp(const tcpreasm_endpoint_t *a, const tcpreasm_endpoint_t *b)
{
    int c = memcmp(a->addr, b->addr, 16);

    if (c)
        return c;
    return (int)a->port - (int)b->port;
}

static int ep_eq(const tcpreasm_endpoint_t *a, const tcpreasm_endpoint_t *b)
{
    return a->port == b->port && memcmp(a->addr, b->addr, 16) == 0;
}

/* The same for both directions: the endpoints are hashed in a fixed order. */
static uint64_t tuple_hash(const tcpreasm_t *r, const tcpreasm_endpoint_t *a,
                           const tcpreasm_endpoint_t *b)
{
    uint64_t h = mix(r->seed, (uint64_t)a->family);

    if (ep_cmp(a, b) > 0) {
        const tcpreasm_endpoint_t *t = a;

        a = b;
        b = t;
    }
    return mix(ep_hash(ep_hash(h, a), b), 0);
}

static struct conn *conn_find(tcpreasm_t *r, const struct l4 *p, uint64_t hash)
{
    struct conn *c;

    for (c = r->buckets[hash & (r->nbuckets - 1)]; c; c = c->hnext) {
        if (c->hash != hash || c->ep[0].family != p->src.family)
            continue;
        if ((ep_eq(&c->ep[0], &p->src) && ep_eq(&c->ep[1], &p->dst)) ||
            (ep_eq(&c->ep[0], &p->dst) && ep_eq(&c->ep[1], &p->src)))
            return c;
    }
    return NULL;
}

/* Doubles the bucket array; on allocation failure the chains just get longer. */
static void table_grow(tcpreasm_t *r)
{
    size_t n = r->nbuckets * 2, i;
    struct conn **b, *c, *next;

    b = calloc(n, sizeof(*b));
    if (!b)
        return;
    for (i = 0; i < r->nbuckets; i++) {
        for (c = r->buckets[i]; c; c = next) {
            next = c->hnext;
            c->hnext = b[c->hash & (n - 1)];
            b[c->hash & (n - 1)] = c;
        }
    }
    free(r->buckets);
    r->buckets = b;
    r->nbuckets = n;
}

/* Unlinks a connection from every list and frees it; calls nothing. */
static void conn_remove(tcpreasm_t *r, struct conn *c)
{
    struct conn **pp = &r->buckets[c->hash & (r->nbuckets - 1)];

    while (*pp != c)
        pp = &(*pp)->hnext;
    *pp = c->hnext;
    dlist_del(c->closed ? &r->dead : &r->live, &c->lru);
    dlist_del(&r->order, &c->ord);
    tcpreasm_stream_free_segs(r, &c->h[0]);
    tcpreasm_stream_free_segs(r, &c->h[1]);
    r->count--;
    free(c);
}

/*
 * Closes a connection: buffered bytes out, on_close, and it stays in the
 * table as a tombstone that absorbs late packets.
 */
static int conn_close(tcpreasm_t *r, struct conn *c, int how)
{
    void *user = c->user;
    int rc;

    if ((rc = tcpreasm_stream_flush(r, c, 0)) != 0 || (rc = tcpreasm_stream_flush(r, c, 1)) != 0)
        return rc;
    if (how == TCPREASM_CLOSE_END && c->h[0].fin_done && c->h[1].fin_done)
        how = TCPREASM_CLOSE_FIN;
    dlist_del(&r->live, &c->lru);
    dlist_push(&r->dead, &c->lru);
    c->closed = 1;
    c->user = NULL;
    tcpreasm_stream_free_segs(r, &c->h[0]);
    tcpreasm_stream_free_segs(r, &c->h[1]);
    if (!r->cb.on_close)
        return 0;
    return r->cb.on_close(r->opaque, c->id, user, how);
}

/* Closes (if open) and forgets a connection. */
static int conn_retire(tcpreasm_t *r, struct conn *c, int how)
{
    int rc = 0;

    if (!c->closed)
        rc = conn_close(r, c, how);
    conn_remove(r, c);
    return rc;
}

/* Makes room for one more connection: the oldest tombstone, else the idlest. */
static int make_room(tcpreasm_t *r)
{
    struct dlink *l;
    struct conn *c;
    int rc;

    while (r->count >= r->max_conns) {
        l = r->dead.head ? r->dead.head : r->live.head;
        if (!l)
            return -ENOSPC; /* cannot happen: count > 0 means a list is non-empty */
        c = container_of(l, struct conn, lru);
        if (!c->closed)
            r->st.evicted++;
        if ((rc = conn_retire(r, c, TCPREASM_CLOSE_EVICTED)) != 0)
            return rc;
    }
    return 0;
}

static int conn_open(tcpreasm_t *r, const struct l4 *p, uint64_t hash, uint8_t flags,
                     uint64_t ts_ns, uint64_t frame, struct conn **out)
{
    tcpreasm_conn_info_t info;
    struct conn *c;
    int client_is_src, rc;

    if ((rc = make_room(r)) != 0)
        return rc;
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    if ((flags & (TH_SYN | TH_ACK)) == TH_SYN)
        client_is_src = 1;
    else if (flags & TH_SYN)
        client_is_src = 0; /* SYN/ACK: the server speaks */
    else
        client_is_src = p->src.port >= p->dst.port;
    c->ep[TCPREASM_C2S] = client_is_src ? p->src : p->dst;
    c->ep[TCPREASM_S2C] = client_is_src ? p->dst : p->src;
    c->hash = hash;
    c->id = r->next_id++;
    c->hnext = r->buckets[hash & (r->nbuckets - 1)];
    r->buckets[hash & (r->nbuckets - 1)] = c;
    dlist_push(&r->live, &c->lru);
    dlist_push(&r->order, &c->ord);
    r->count++;
    r->st.conns++;
    if (r->count > r->nbuckets)
        table_grow(r);
    *out = c;

    memset(&info, 0, sizeof(info));
    info.id = c->id;
    info.client = c->ep[TCPREASM_C2S];
    info.server = c->ep[TCPREASM_S2C];
    info.ts_ns = ts_ns;
    info.frame = frame;
    info.handshake = (flags & TH_SYN) != 0;
    return r->cb.on_open ? r->cb.on_open(r->opaque, &info, &c->user) : 0;
}

static int tcp_segment(tcpreasm_t *r, const struct l4 *p, uint64_t ts_ns, uint64_t frame)
{
    const uint8_t *t = p->hdr;
    size_t doff, have, claimed;
    uint32_t seq, ack;
    uint8_t flags;
    uint64_t hash;
    struct conn *c;
    struct half *h, *o;
    int d, rc;

    if (p->have < 20) {
        r->st.malformed++;
        return 0;
    }
    doff = (size_t)(t[12] >> 4) * 4;
    if (doff < 20 || doff > p->have) {
        r->st.malformed++;
        return 0;
    }
    r->st.tcp++;
    seq = be32(t + 4);
    ack = be32(t + 8);
    flags = t[13];
    have = p->have - doff;
    claimed = p->claimed >= doff ? p->claimed - doff : have;
    if (claimed < have)
        claimed = have;

    hash = tuple_hash(r, &p->src, &p->dst);
    c = conn_find(r, p, hash);
    if (c && (flags & (TH_SYN | TH_ACK)) == TH_SYN) {
        /* Wireshark's rule for a new stream on a known tuple: a SYN whose
           sequence number is not the sender's base, or after a FIN or RST. */
        h = &c->h[ep_eq(&c->ep[0], &p->src) ? 0 : 1];
        if (h->seen && (seq != h->base || c->fin_any || c->rst_any)) {
            if ((rc = conn_retire(r, c, TCPREASM_CLOSE_END)) != 0)
                return rc;
            c = NULL;
        }
    }
    if (!c) {
        if ((rc = conn_open(r, p, hash, flags, ts_ns, frame, &c)) != 0)
            return rc;
    } else if (!c->closed) {
        dlist_del(&r->live, &c->lru);
        dlist_push(&r->live, &c->lru);
    }
    /* (A connection from an address and port to itself is all C2S.) */
    d = ep_eq(&c->ep[TCPREASM_C2S], &p->src) ? TCPREASM_C2S : TCPREASM_S2C;
    h = &c->h[d];
    o = &c->h[!d];
    /* Base sequence numbers as Wireshark sets them: the ISN of a SYN, else
       one before the first sequence number; the peer's from an ACK. */
    if (!h->seen) {
        h->seen = 1;
        h->base = (flags & TH_SYN) ? seq : seq - 1;
    }
    if ((flags & TH_ACK) && !o->seen) {
        o->seen = 1;
        o->base = ack - 1;
    }
    if (flags & TH_FIN)
        c->fin_any = 1;
    if (flags & TH_RST)
        c->rst_any = 1;
    if (c->closed)
        return 0;
    if (flags & TH_RST)
        return conn_close(r, c, TCPREASM_CLOSE_RST);
    rc = tcpreasm_stream_segment(r, c, d, seq, flags, t + doff, have, claimed, ts_ns, frame);
    if (rc == 0 && (flags & TH_ACK))
        rc = tcpreasm_stream_ack(r, c, !d, ack);
    if (rc)
        return rc;
    if (c->h[0].fin_done && c->h[1].fin_done)
        return conn_close(r, c, TCPREASM_CLOSE_FIN);
    return 0;
}

static int udp_datagram(tcpreasm_t *r, const struct l4 *p, uint64_t ts_ns, uint64_t frame)
{
    size_t ulen, len;

    if (p->have < 8) {
        r->st.malformed++;
        return 0;
    }
    r->st.udp++;
    ulen = be16(p->hdr + 4);
    len = p->have;
    if (ulen >= 8 && ulen < len)
        len = ulen;
    if (!r->cb.on_udp)
        return 0;
    return r->cb.on_udp(r->opaque, &p->src, &p->dst, p->hdr + 8, len - 8, ts_ns, frame);
}

/* ---- decoding ------------------------------------------------------------------------ */

/* Fills p from an IPv4 packet; returns 0 to go on, 1 when skipped (counted). */
static int ipv4(tcpreasm_t *r, const uint8_t *ip, size_t len, struct l4 *p)
{
    size_t ihl, tot;

    if (len < 20 || (ip[0] >> 4) != 4) {
        r->st.malformed++;
        return 1;
    }
    ihl = (size_t)(ip[0] & 15) * 4;
    tot = be16(ip + 2);
    if (tot == 0)
        tot = len; /* TSO: the capture was taken before the NIC filled it in */
    if (ihl < 20 || ihl > len || tot < ihl) {
        r->st.malformed++;
        return 1;
    }
    if (be16(ip + 6) & 0x3fff) { /* more fragments, or an offset */
        r->st.fragments++;
        return 1;
    }
    p->proto = ip[9];
    p->src.family = p->dst.family = AF_INET;
    memcpy(p->src.addr, ip + 12, 4);
    memcpy(p->dst.addr, ip + 16, 4);
    p->hdr = ip + ihl;
    p->have = (len < tot ? len : tot) - ihl;
    p->claimed = tot - ihl;
    return 0;
}

static int ipv6(tcpreasm_t *r, const uint8_t *ip, size_t len, struct l4 *p)
{
    size_t off = 40, tot, end, hl;
    uint8_t nh;
    int i;

    if (len < 40 || (ip[0] >> 4) != 6) {
        r->st.malformed++;
        return 1;
    }
    tot = 40 + (size_t)be16(ip + 4);
    if (tot == 40)
        tot = len; /* a jumbogram or TSO: take what was captured */
    end = len < tot ? len : tot;
    nh = ip[6];
    for (i = 0; i < 16; i++) {
        if (nh == 0 || nh == 43 || nh == 60) { /* hop-by-hop, routing, destination */
            if (off + 8 > end) {
                r->st.malformed++;
                return 1;
            }
            hl = ((size_t)ip[off + 1] + 1) * 8;
            nh = ip[off];
            off += hl;
            if (off > end) {
                r->st.malformed++;
                return 1;
            }
        } else if (nh == 44) {
            r->st.fragments++;
            return 1;
        } else {
            break;
        }
    }
    p->proto = nh;
    p->src.family = p->dst.family = AF_INET6;
    memcpy(p->src.addr, ip + 8, 16);
    memcpy(p->dst.addr, ip + 24, 16);
    p->hdr = ip + off;
    p->have = end - off;
    p->claimed = tot - off;
    return 0;
}

/* Skips 802.1Q / 802.1ad tags after an ethertype at p[*off - 2]. */
static uint16_t skip_vlans(const uint8_t *p, size_t len, size_t *off, uint16_t type)
{
    while ((type == 0x8100 || type == 0x88a8 || type == 0x9100) && *off + 4 <= len) {
        type = be16(p + *off + 2);
        *off += 4;
    }
    return type;
}

int tcpreasm_packet(tcpreasm_t *r, uint32_t linktype, uint64_t ts_ns, const uint8_t *data,
                    size_t len, uint64_t frame)
{
    struct l4 p;
    size_t off = 0;
    uint16_t type = 0;
    uint32_t fam_le, fam_be;
    int skip, rc;

    if (!r || (!data && len))
        return -EINVAL;
    if (r->failed)
        return r->failed;
    r->st.packets++;

    switch (linktype) {
    case TCPREASM_LINKTYPE_RAW:
    case LINKTYPE_RAW_BSD12:
    case LINKTYPE_RAW_BSD14:
        if (len >= 1)
            type = (data[0] >> 4) == 4 ? ETH_IPV4 : (data[0] >> 4) == 6 ? ETH_IPV6 : 0;
        break;
    case LINKTYPE_IPV4:
        type = ETH_IPV4;
        break;
    case LINKTYPE_IPV6:
        type = ETH_IPV6;
        break;
    case TCPREASM_LINKTYPE_ETHERNET:
        if (len >= 14) {
            off = 14;
            type = skip_vlans(data, len, &off, be16(data + 12));
        }
        break;
    case TCPREASM_LINKTYPE_LINUX_SLL:
        if (len >= 16) {
            off = 16;
            type = skip_vlans(data, len, &off, be16(data + 14));
        }
        break;
    case TCPREASM_LINKTYPE_LINUX_SLL2:
        if (len >= 20) {
            off = 20;
            type = skip_vlans(data, len, &off, be16(data));
        }
        break;
    case TCPREASM_LINKTYPE_NULL:
    case TCPREASM_LINKTYPE_LOOP:
        /* The address family, in the byte order of the capturing host (NULL)
           or of the network (LOOP); AF_INET6 differs between systems. */
        if (len >= 4) {
            off = 4;
            fam_le = le32(data);
            fam_be = be32(data);
            if (fam_le == 2 || fam_be == 2)
                type = ETH_IPV4;
            else if (fam_le == 10 || fam_le == 24 || fam_le == 28 || fam_le == 30 || fam_be == 10 ||
                     fam_be == 24 || fam_be == 28 || fam_be == 30)
                type = ETH_IPV6;
        }
        break;
    default:
        break;
    }

    memset(&p, 0, sizeof(p));
    if (type == ETH_IPV4) {
        skip = ipv4(r, data + off, len - off, &p);
    } else if (type == ETH_IPV6) {
        skip = ipv6(r, data + off, len - off, &p);
    } else {
        r->st.not_ip++;
        return 0;
    }
    if (skip)
        return 0;
    if (p.proto == IPPROTO_TCP_ || p.proto == IPPROTO_UDP_) {
        if (p.have < 4) {
            r->st.malformed++;
            return 0;
        }
        p.src.port = be16(p.hdr);
        p.dst.port = be16(p.hdr + 2);
    }
    if (p.proto == IPPROTO_TCP_)
        rc = tcp_segment(r, &p, ts_ns, frame);
    else if (p.proto == IPPROTO_UDP_)
        rc = udp_datagram(r, &p, ts_ns, frame);
    else {
        r->st.not_ip++;
        rc = 0;
    }
    if (rc)
        r->failed = rc;
    return rc;
}

/* ---- life cycle ---------------------------------------------------------------------- */

tcpreasm_t *tcpreasm_new(const tcpreasm_callbacks_t *cb, void *opaque,
                         const tcpreasm_options_t *opts, int *err)
{
    tcpreasm_t *r;

    if (!cb) {
        if (err)
            *err = -EINVAL;
        return NULL;
    }
    r = calloc(1, sizeof(*r));
    if (r) {
        r->nbuckets = MIN_BUCKETS;
        r->buckets = calloc(r->nbuckets, sizeof(*r->buckets));
    }
    if (!r || !r->buckets) {
        free(r);
        if (err)
            *err = -ENOMEM;
        return NULL;
    }
    r->cb = *cb;
    r->opaque = opaque;
    r->max_conns = opts && opts->max_conns ? opts->max_conns : DEFAULT_MAX_CONNS;
    r->max_buffer = opts && opts->max_buffer ? opts->max_buffer : DEFAULT_MAX_BUFFER;
    r->max_total = opts && opts->max_buffer_total ? opts->max_buffer_total : DEFAULT_MAX_TOTAL;
    /* Chains are per instance: the table's address varies from run to run, so
       a crafted capture cannot aim all its tuples at one bucket in advance. */
    r->seed = mix((uint64_t)(uintptr_t)r, (uint64_t)(uintptr_t)r->buckets);
    if (err)
        *err = 0;
    return r;
}

void tcpreasm_free(tcpreasm_t *r)
{
    if (!r)
        return;
    while (r->order.head)
        conn_remove(r, container_of(r->order.head, struct conn, ord));
    free(r->buckets);
    free(r);
}

int tcpreasm_finish(tcpreasm_t *r)
{
    struct dlink *l;
    int rc;

    if (!r)
        return -EINVAL;
    if (r->failed)
        return r->failed;
    while ((l = r->order.head) != NULL) {
        rc = conn_retire(r, container_of(l, struct conn, ord), TCPREASM_CLOSE_END);
        if (rc) {
            r->failed = rc;
            return rc;
        }
    }
    return 0;
}

void tcpreasm_get_stats(const tcpreasm_t *r, tcpreasm_stats_t *st)
{
    if (!st)
        return;
    if (r)
        *st = r->st;
    else
        memset(st, 0, sizeof(*st));
}

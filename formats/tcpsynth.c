/* SPDX-License-Identifier: MIT */
#include "tcpsynth.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#define IP4_HDR 20
#define IP6_HDR 40
#define TCP_HDR 20
#define TCP_HDR_SYN 24 /* with the 4-byte MSS option */
#define HDR_MAX (IP6_HDR + TCP_HDR_SYN)

#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10

#define IPPROTO_TCP_ 6
#define TTL 64
#define MSS_DEFAULT 32768u

/*
 * No window scaling: the advertised window is the 16-bit field itself. The
 * peer acknowledges before the bytes in flight would reach it, so Wireshark
 * never sees a full window, which it would flag as a problem.
 */
#define WINDOW 65535u

static void put16be(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32be(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/*
 * Ones' complement sum (RFC 1071) of len bytes starting at an even offset of
 * the summed data. Words are loaded in host order: the ones' complement sum
 * is byte-order independent as long as the result is stored back in host
 * order too (csum_fold + memcpy). 32-bit loads into a 64-bit accumulator
 * cannot overflow for any IP packet, so the carries are folded once at the end.
 */
static uint64_t csum_add(uint64_t sum, const uint8_t *p, size_t len)
{
    uint32_t a, b, c, d;
    uint16_t h;

    while (len >= 16) {
        memcpy(&a, p, 4);
        memcpy(&b, p + 4, 4);
        memcpy(&c, p + 8, 4);
        memcpy(&d, p + 12, 4);
        sum += (uint64_t)a + b + c + d;
        p += 16;
        len -= 16;
    }
    while (len >= 4) {
        memcpy(&a, p, 4);
        sum += a;
        p += 4;
        len -= 4;
    }
    if (len >= 2) {
        memcpy(&h, p, 2);
        sum += h;
        p += 2;
        len -= 2;
    }
    if (len) {
        /* The odd byte is the first byte of a word whose second byte is 0. */
        uint8_t last[2] = {p[0], 0};

        memcpy(&h, last, 2);
        sum += h;
    }
    return sum;
}

static uint16_t csum_fold(uint64_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

int tcpsynth_init(tcpsynth_t *t, const tcpsynth_endpoint_t *client,
                  const tcpsynth_endpoint_t *server, uint32_t isn_client, uint32_t isn_server,
                  uint32_t mss, tcpsynth_emit_fn emit, void *opaque)
{
    size_t hdr;

    if (!t || !client || !server || !emit || client->family != server->family)
        return -EINVAL;
    if (client->family == AF_INET)
        hdr = IP4_HDR + TCP_HDR;
    else if (client->family == AF_INET6)
        hdr = TCP_HDR; /* the IPv6 payload length excludes the IPv6 header */
    else
        return -EINVAL;
    if (mss == 0)
        mss = MSS_DEFAULT;
    if (mss > 65535 - hdr)
        return -EINVAL;

    memset(t, 0, sizeof(*t));
    t->ep[TCPSYNTH_C2S] = *client;
    t->ep[TCPSYNTH_S2C] = *server;
    t->seq[TCPSYNTH_C2S] = isn_client;
    t->seq[TCPSYNTH_S2C] = isn_server;
    t->mss = mss;
    t->emit = emit;
    t->opaque = opaque;
    return 0;
}

size_t tcpsynth_header_len(const tcpsynth_t *t)
{
    return (t->ep[0].family == AF_INET ? IP4_HDR : IP6_HDR) + TCP_HDR;
}

int tcpsynth_pure_ack(const uint8_t *hdr, size_t hdrlen, size_t plen)
{
    size_t iphl;

    if (!hdr || !hdrlen || plen)
        return 0;
    iphl = (hdr[0] >> 4) == 4 ? IP4_HDR : IP6_HDR;
    return hdrlen == iphl + TCP_HDR && hdr[iphl + 13] == TH_ACK;
}

/*
 * Builds the IP and TCP headers of one segment from dir and emits it. The
 * state is not changed here except for the IP id, so callers advance seq only
 * for segments that were emitted.
 */
static int segment(tcpsynth_t *t, int dir, uint32_t seq, uint32_t ack, uint8_t flags,
                   const uint8_t *payload, size_t plen)
{
    const tcpsynth_endpoint_t *src = &t->ep[dir], *dst = &t->ep[!dir];
    uint8_t h[HDR_MAX], *tcp;
    size_t iphlen, tcphlen = (flags & TH_SYN) ? TCP_HDR_SYN : TCP_HDR;
    size_t tcplen = tcphlen + plen;
    uint64_t sum;
    uint16_t ck;
    int rc;

    if (src->family == AF_INET) {
        iphlen = IP4_HDR;
        h[0] = 0x45; /* version 4, 5 words */
        h[1] = 0;
        put16be(h + 2, (uint16_t)(iphlen + tcplen));
        put16be(h + 4, t->ip_id[dir]);
        put16be(h + 6, 0x4000); /* DF, fragment offset 0 */
        h[8] = TTL;
        h[9] = IPPROTO_TCP_;
        h[10] = h[11] = 0;
        memcpy(h + 12, src->addr, 4);
        memcpy(h + 16, dst->addr, 4);
        ck = csum_fold(csum_add(0, h, IP4_HDR));
        memcpy(h + 10, &ck, 2);

        /* Pseudo-header: addresses, zero, protocol, TCP length. */
        uint8_t ph[4] = {0, IPPROTO_TCP_, (uint8_t)(tcplen >> 8), (uint8_t)tcplen};
        sum = csum_add(csum_add(0, h + 12, 8), ph, sizeof(ph));
    } else {
        iphlen = IP6_HDR;
        put32be(h, 0x60000000u); /* version 6, class 0, flow 0 */
        put16be(h + 4, (uint16_t)tcplen);
        h[6] = IPPROTO_TCP_;
        h[7] = TTL; /* hop limit */
        memcpy(h + 8, src->addr, 16);
        memcpy(h + 24, dst->addr, 16);

        /* Pseudo-header: addresses, 32-bit length, 3 zeros, next header. */
        uint8_t ph[8] = {0, 0, (uint8_t)(tcplen >> 8), (uint8_t)tcplen, 0, 0, 0, IPPROTO_TCP_};
        sum = csum_add(csum_add(0, h + 8, 32), ph, sizeof(ph));
    }

    tcp = h + iphlen;
    put16be(tcp, src->port);
    put16be(tcp + 2, dst->port);
    put32be(tcp + 4, seq);
    put32be(tcp + 8, ack);
    tcp[12] = (uint8_t)((tcphlen / 4) << 4);
    tcp[13] = flags;
    put16be(tcp + 14, WINDOW);
    tcp[16] = tcp[17] = 0; /* checksum, filled below */
    tcp[18] = tcp[19] = 0; /* urgent pointer */
    if (flags & TH_SYN) {
        tcp[20] = 2; /* kind MSS */
        tcp[21] = 4;
        put16be(tcp + 22, (uint16_t)t->mss);
    }
    /* tcphlen is a multiple of 4, so the payload starts on an even offset. */
    sum = csum_add(sum, tcp, tcphlen);
    if (plen)
        sum = csum_add(sum, payload, plen);
    ck = csum_fold(sum);
    memcpy(tcp + 16, &ck, 2);

    rc = t->emit(t->opaque, dir, h, iphlen + tcphlen, plen ? payload : NULL, plen);
    if (rc)
        return rc;
    t->ip_id[dir]++;
    if ((flags & TH_ACK) && ack == t->seq[!dir])
        t->owed[!dir] = 0; /* this segment acknowledges all the peer sent */
    return 0;
}

int tcpsynth_handshake(tcpsynth_t *t)
{
    const int c = TCPSYNTH_C2S, s = TCPSYNTH_S2C;
    uint32_t isc, iss;
    int rc;

    if (!t)
        return -EINVAL;
    if (t->open)
        return 0;
    isc = t->seq[c];
    iss = t->seq[s];
    /* SYN and SYN/ACK each take one sequence number. */
    if ((rc = segment(t, c, isc, 0, TH_SYN, NULL, 0)) ||
        (rc = segment(t, s, iss, isc + 1, TH_SYN | TH_ACK, NULL, 0)) ||
        (rc = segment(t, c, isc + 1, iss + 1, TH_ACK, NULL, 0)))
        return rc;
    t->seq[c] = isc + 1;
    t->seq[s] = iss + 1;
    t->open = 1;
    return 0;
}

/* The peer's pure ACK of everything dir has sent. */
static int ack_from_peer(tcpsynth_t *t, int dir)
{
    return segment(t, !dir, t->seq[!dir], t->seq[dir], TH_ACK, NULL, 0);
}

int tcpsynth_data(tcpsynth_t *t, int dir, const void *data, size_t len)
{
    const uint8_t *p = data;
    size_t inflight = 0, n;
    int rc;

    if (!t || (dir != TCPSYNTH_C2S && dir != TCPSYNTH_S2C) || (!data && len))
        return -EINVAL;
    if (len == 0)
        return 0;
    if (t->fin[dir])
        return -EPIPE;
    /* Data on a conversation that was never opened still gets a handshake,
       so readers can follow the stream from its start. */
    if (!t->open && (rc = tcpsynth_handshake(t)))
        return rc;
    /* More from the same side with nothing in between: the peer's delayed ACK of the last
       write comes first, as a real receiver's would. */
    if (t->owed[dir] && (rc = ack_from_peer(t, dir)))
        return rc;

    while (len) {
        n = len < t->mss ? len : t->mss;
        /*
         * The peer acknowledges before the next segment would reach the
         * window (reaching it exactly is what Wireshark reports as "window
         * full"), as a real receiver would have to for the sender to go on.
         */
        if (inflight && inflight + n >= WINDOW) {
            if ((rc = ack_from_peer(t, dir)))
                return rc;
            inflight = 0;
        }
        rc = segment(t, dir, t->seq[dir], t->seq[!dir], TH_PSH | TH_ACK, p, n);
        if (rc)
            return rc;
        t->seq[dir] += (uint32_t)n;
        inflight += n;
        p += n;
        len -= n;
    }
    /* The peer owes an ACK: its next data segment carries it (a request's ACK rides on
       the response, as on the wire), or it goes out alone before dir's next write or FIN. */
    t->owed[dir] = 1;
    return 0;
}

int tcpsynth_ack(tcpsynth_t *t, int dir)
{
    if (!t || (dir != TCPSYNTH_C2S && dir != TCPSYNTH_S2C))
        return -EINVAL;
    return t->owed[dir] ? ack_from_peer(t, dir) : 0;
}

int tcpsynth_fin(tcpsynth_t *t, int dir)
{
    int rc;

    if (!t || (dir != TCPSYNTH_C2S && dir != TCPSYNTH_S2C))
        return -EINVAL;
    if (t->fin[dir])
        return 0;
    if (!t->open && (rc = tcpsynth_handshake(t)))
        return rc;
    rc = segment(t, dir, t->seq[dir], t->seq[!dir], TH_FIN | TH_ACK, NULL, 0);
    if (rc)
        return rc;
    t->seq[dir]++; /* the FIN takes one number */
    t->fin[dir] = 1;
    return ack_from_peer(t, dir);
}

int tcpsynth_rst(tcpsynth_t *t, int dir)
{
    int rc;

    if (!t || (dir != TCPSYNTH_C2S && dir != TCPSYNTH_S2C))
        return -EINVAL;
    if (!t->open && (rc = tcpsynth_handshake(t)))
        return rc;
    return segment(t, dir, t->seq[dir], t->seq[!dir], TH_RST | TH_ACK, NULL, 0);
}

int tcpsynth_udp(const tcpsynth_endpoint_t *src, const tcpsynth_endpoint_t *dst, uint16_t ip_id,
                 const void *data, size_t len, int dir, tcpsynth_emit_fn emit, void *opaque)
{
    uint8_t h[IP6_HDR + 8], *udp;
    size_t iphlen, udplen = 8 + len;
    uint64_t sum;
    uint16_t ck;

    if (!src || !dst || !emit || src->family != dst->family || (len && !data))
        return -EINVAL;
    if (udplen > 65535 - (src->family == AF_INET ? IP4_HDR : 0))
        return -EMSGSIZE;
    if (src->family == AF_INET) {
        iphlen = IP4_HDR;
        h[0] = 0x45;
        h[1] = 0;
        put16be(h + 2, (uint16_t)(iphlen + udplen));
        put16be(h + 4, ip_id);
        put16be(h + 6, 0x4000);
        h[8] = TTL;
        h[9] = 17;
        h[10] = h[11] = 0;
        memcpy(h + 12, src->addr, 4);
        memcpy(h + 16, dst->addr, 4);
        ck = csum_fold(csum_add(0, h, IP4_HDR));
        memcpy(h + 10, &ck, 2);
        uint8_t ph[4] = {0, 17, (uint8_t)(udplen >> 8), (uint8_t)udplen};
        sum = csum_add(csum_add(0, h + 12, 8), ph, sizeof(ph));
    } else if (src->family == AF_INET6) {
        iphlen = IP6_HDR;
        put32be(h, 0x60000000u);
        put16be(h + 4, (uint16_t)udplen);
        h[6] = 17;
        h[7] = TTL;
        memcpy(h + 8, src->addr, 16);
        memcpy(h + 24, dst->addr, 16);
        uint8_t ph[8] = {0, 0, (uint8_t)(udplen >> 8), (uint8_t)udplen, 0, 0, 0, 17};
        sum = csum_add(csum_add(0, h + 8, 32), ph, sizeof(ph));
    } else {
        return -EINVAL;
    }
    udp = h + iphlen;
    put16be(udp, src->port);
    put16be(udp + 2, dst->port);
    put16be(udp + 4, (uint16_t)udplen);
    udp[6] = udp[7] = 0;
    sum = csum_add(sum, udp, 8);
    if (len)
        sum = csum_add(sum, data, len);
    ck = csum_fold(sum);
    /* A computed zero is sent as all ones (RFC 768). */
    if (ck == 0)
        ck = 0xffff;
    memcpy(udp + 6, &ck, 2);
    return emit(opaque, dir, h, iphlen + 8, len ? data : NULL, len);
}

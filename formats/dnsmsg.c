/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "dnsmsg.h"

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/*
 * Reads a (possibly compressed) name at *off into name (may be NULL); *off
 * moves past it in the message. Pointers only go backwards, so loops end, to
 * a name that ends before the pointer, as names written earlier do, and never
 * into the 12-byte header, where no name can be. (fuzz_dnsmsg: a query whose
 * name ran into its header, or past its question, read differently or not at
 * all in the response built from it, whose header differs and which copies
 * only the question.)
 */
static int read_name(const uint8_t *msg, size_t len, size_t *off, char *name, size_t nlen)
{
    size_t p = *off, out = 0, lim = len;
    int jumped = 0, hops = 0;

    for (;;) {
        uint8_t l;
        if (p >= lim)
            return -EBADMSG;
        l = msg[p];
        if ((l & 0xc0) == 0xc0) {
            size_t to;
            if (p + 1 >= lim || ++hops > 64)
                return -EBADMSG;
            to = ((size_t)(l & 0x3f) << 8) | msg[p + 1];
            if (to >= p || to < 12)
                return -EBADMSG;
            if (!jumped)
                *off = p + 2;
            jumped = 1;
            lim = p;
            p = to;
            continue;
        }
        if (l & 0xc0)
            return -EBADMSG;
        if (l == 0) {
            if (!jumped)
                *off = p + 1;
            break;
        }
        if (p + 1 + l > lim)
            return -EBADMSG;
        if (name) {
            if (out + l + 2 > nlen)
                return -EBADMSG;
            if (out)
                name[out++] = '.';
            for (size_t i = 0; i < l; i++) {
                char c = (char)msg[p + 1 + i];
                name[out++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            }
        }
        p += 1 + l;
    }
    if (name)
        name[out] = '\0';
    return 0;
}

int dnsmsg_parse_question(const uint8_t *msg, size_t len, dnsmsg_question_t *q)
{
    size_t off = 12;

    memset(q, 0, sizeof(*q));
    if (len < 12 || get16(msg + 4) < 1)
        return -EBADMSG;
    q->id = get16(msg);
    q->flags = get16(msg + 2);
    q->response = (q->flags & 0x8000) != 0;
    if (read_name(msg, len, &off, q->name, sizeof(q->name)) < 0 || off + 4 > len)
        return -EBADMSG;
    q->qtype = get16(msg + off);
    q->qclass = get16(msg + off + 2);
    q->end = off + 4;
    return 0;
}

int dnsmsg_parse_answers(const uint8_t *msg, size_t len, dnsmsg_addr_t *out, size_t max)
{
    size_t off = 12, n = 0;
    uint16_t qd, an;

    if (len < 12)
        return -EBADMSG;
    qd = get16(msg + 4);
    an = get16(msg + 6);
    for (uint16_t i = 0; i < qd; i++) {
        if (read_name(msg, len, &off, NULL, 0) < 0 || off + 4 > len)
            return -EBADMSG;
        off += 4;
    }
    for (uint16_t i = 0; i < an; i++) {
        uint16_t type, rdlen;
        uint32_t ttl;
        if (read_name(msg, len, &off, NULL, 0) < 0 || off + 10 > len)
            return -EBADMSG;
        type = get16(msg + off);
        ttl = ((uint32_t)get16(msg + off + 4) << 16) | get16(msg + off + 6);
        rdlen = get16(msg + off + 8);
        off += 10;
        if (off + rdlen > len)
            return -EBADMSG;
        if (n < max && ((type == DNSMSG_A && rdlen == 4) || (type == DNSMSG_AAAA && rdlen == 16))) {
            memset(&out[n], 0, sizeof(out[n]));
            out[n].family = type == DNSMSG_A ? AF_INET : AF_INET6;
            memcpy(out[n].addr, msg + off, rdlen);
            out[n].ttl = ttl;
            n++;
        }
        off += rdlen;
    }
    return (int)n;
}

int dnsmsg_build_response(const uint8_t *query, size_t qlen, const dnsmsg_question_t *q, int rcode,
                          const dnsmsg_addr_t *addrs, size_t naddrs, uint8_t *out, size_t outlen)
{
    size_t off, nans = 0;

    if (q->end < 12 || q->end > qlen)
        return -EINVAL;
    if (outlen < q->end)
        return -ENOSPC;
    /* Header and the question as the client sent it (its case, 0x20 randomization). */
    memcpy(out, query, q->end);
    /* QR, the opcode and RD kept, AA and RA set, rcode. */
    put16(out + 2, (uint16_t)(0x8000 | (q->flags & 0x7900) | 0x0400 | 0x0080 | (rcode & 0xf)));
    put16(out + 4, 1);
    put16(out + 8, 0);
    put16(out + 10, 0);
    off = q->end;
    for (size_t i = 0; i < naddrs && rcode == DNSMSG_RCODE_NOERROR; i++) {
        int v4 = addrs[i].family == AF_INET;
        size_t alen = v4 ? 4 : 16;
        if ((v4 && q->qtype != DNSMSG_A) || (!v4 && q->qtype != DNSMSG_AAAA))
            continue;
        if (off + 12 + alen > outlen)
            return -ENOSPC;
        put16(out + off, 0xc00c); /* the name of the question */
        put16(out + off + 2, q->qtype);
        put16(out + off + 4, 1); /* IN */
        put16(out + off + 6, (uint16_t)(addrs[i].ttl >> 16));
        put16(out + off + 8, (uint16_t)addrs[i].ttl);
        put16(out + off + 10, (uint16_t)alen);
        memcpy(out + off + 12, addrs[i].addr, alen);
        off += 12 + alen;
        nans++;
    }
    put16(out + 6, (uint16_t)nans);
    return (int)off;
}

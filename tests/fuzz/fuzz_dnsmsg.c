/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer driver for the DNS messages mitmreplay reads and answers (formats/dnsmsg.c): the
 * queries of the command it runs, and the responses in a recording.
 *
 * Input: one flags byte, then a DNS message. Flags: bit 0, answer NXDOMAIN instead of the
 * addresses; bit 1, the answer has only 40 bytes past the question to go in; bits 2-3, how
 * many of the three addresses below to answer with.
 *
 * Contract checked: both parsers return a count or -EBADMSG and read within the message;
 * a question parsed is a NUL-terminated name in lower case. A response built for a parsed
 * query parses back to the same id, name, type and class, with QR set, and its answers
 * are exactly the addresses given whose family fits the type (none for NXDOMAIN), TTLs
 * included; when they do not fit, the build says -ENOSPC.
 *
 * Build (tests/slow/fuzz.sh does it): clang -g -O1 -fsanitize=fuzzer,address,undefined
 *   -Iformats tests/fuzz/fuzz_dnsmsg.c formats/dnsmsg.c
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dnsmsg.h"

static const dnsmsg_addr_t ADDRS[3] = {
    {AF_INET, {127, 0, 0, 7}, 300},
    {AF_INET6, {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 60},
    {AF_INET, {10, 1, 2, 3}, 0x12345678},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dnsmsg_question_t q, r;
    dnsmsg_addr_t got[8];
    uint8_t *msg, out[4096];
    size_t len, naddrs, room;
    int rc, n, rcode;

    if (size < 1)
        return 0;
    /* A copy of exactly its length, so ASan sees any read past it. */
    len = size - 1;
    if (!(msg = malloc(len ? len : 1)))
        return 0;
    memcpy(msg, data + 1, len);

    n = dnsmsg_parse_answers(msg, len, got, 8);
    if (n != -EBADMSG && (n < 0 || n > 8))
        abort();
    for (int i = 0; i < n; i++)
        if (got[i].family != AF_INET && got[i].family != AF_INET6)
            abort();

    rc = dnsmsg_parse_question(msg, len, &q);
    if (rc != 0 && rc != -EBADMSG)
        abort();
    if (rc < 0) {
        free(msg);
        return 0;
    }
    if (q.end < 17 || q.end > len || strnlen(q.name, sizeof(q.name)) == sizeof(q.name))
        abort();
    for (const char *c = q.name; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            abort();

    rcode = data[0] & 1 ? DNSMSG_RCODE_NXDOMAIN : DNSMSG_RCODE_NOERROR;
    naddrs = (data[0] >> 2) & 3;
    room = data[0] & 2 ? q.end + 40 : sizeof(out);
    if (room > sizeof(out))
        room = sizeof(out);
    rc = dnsmsg_build_response(msg, len, &q, rcode, ADDRS, naddrs, out, room);
    if (rc == -ENOSPC) {
        free(msg);
        return 0;
    }
    if (rc < (int)q.end || (size_t)rc > room)
        abort();
    if (dnsmsg_parse_question(out, (size_t)rc, &r) != 0 || r.id != q.id || !r.response ||
        strcmp(r.name, q.name) != 0 || r.qtype != q.qtype || r.qclass != q.qclass)
        abort(); /* the response's question is not the query's */
    n = dnsmsg_parse_answers(out, (size_t)rc, got, 8);
    {
        int want = 0;

        for (size_t i = 0; i < naddrs && rcode == DNSMSG_RCODE_NOERROR; i++) {
            int fits = (ADDRS[i].family == AF_INET && q.qtype == DNSMSG_A) ||
                       (ADDRS[i].family == AF_INET6 && q.qtype == DNSMSG_AAAA);
            if (!fits)
                continue;
            if (want >= n || got[want].family != ADDRS[i].family || got[want].ttl != ADDRS[i].ttl ||
                memcmp(got[want].addr, ADDRS[i].addr, ADDRS[i].family == AF_INET ? 4 : 16))
                abort();
            want++;
        }
        if (n != want)
            abort();
    }
    free(msg);
    return 0;
}

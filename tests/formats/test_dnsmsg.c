/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "check.h"
#include "dnsmsg.h"

/* A query for Api.Example.TEST, type A, with an EDNS OPT record (as glibc sends). */
static const uint8_t query[] = {
    0x12, 0x34, 0x01, 0x20, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 3,    'A',  'p',
    'i',  7,    'E',  'x',  'a',  'm',  'p',  'l',  'e',  4,    'T',  'E',  'S',  'T',  0,
    0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x29, 0x04, 0xd0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

static void test_question(void)
{
    dnsmsg_question_t q;

    CHECK_EQ_INT(dnsmsg_parse_question(query, sizeof(query), &q), 0);
    CHECK_EQ_INT(q.id, 0x1234);
    CHECK_EQ_INT(q.response, 0);
    CHECK_EQ_STR(q.name, "api.example.test");
    CHECK_EQ_INT(q.qtype, DNSMSG_A);
    CHECK_EQ_INT(q.qclass, 1);
    CHECK_EQ_INT(dnsmsg_parse_question(query, 20, &q), -EBADMSG);
    CHECK_EQ_INT(dnsmsg_parse_question(query, 5, &q), -EBADMSG);
    /* A name that points into the header (found by fuzz_dnsmsg): the response built from
       the query would change those bytes, and so the name its answers refer to. */
    {
        /* The name is the flags' low byte, 0: the root. In the response that byte is 0x80
           (RA), which no name can start with. */
        static const uint8_t bad[] = {0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
                                      0x00, 0x00, 0x00, 0xc0, 0x03, 0x00, 0x01, 0x00, 0x01};

        CHECK_EQ_INT(dnsmsg_parse_question(bad, sizeof(bad), &q), -EBADMSG);
        CHECK_EQ_INT(dnsmsg_parse_answers(bad, sizeof(bad), NULL, 0), -EBADMSG);
    }
    {
        /* A pointer (at 14) to a label (at 13) that runs over the pointer itself, to 16: a
           name no writer makes, and one the response, which copies the question only up to
           its end, could not hold. */
        static const uint8_t bad[] = {0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
                                      0x00, 0x00, 0x01, 0x03, 0xc0, 0x0d, 0x00, 0x00, 0x00, 0x01};

        CHECK_EQ_INT(dnsmsg_parse_question(bad, sizeof(bad), &q), -EBADMSG);
    }
}

static void test_build_and_read(void)
{
    dnsmsg_question_t q, r;
    dnsmsg_addr_t a[3], got[4];
    uint8_t out[512];
    int n;

    memset(a, 0, sizeof(a));
    a[0].family = AF_INET;
    memcpy(a[0].addr, "\x7f\x00\x00\x01", 4);
    a[0].ttl = 60;
    a[1].family = AF_INET6;
    a[1].addr[15] = 1;
    a[1].ttl = 60;
    a[2].family = AF_INET;
    memcpy(a[2].addr, "\x7f\x00\x00\x02", 4);
    a[2].ttl = 300;
    dnsmsg_parse_question(query, sizeof(query), &q);
    n = dnsmsg_build_response(query, sizeof(query), &q, DNSMSG_RCODE_NOERROR, a, 3, out,
                              sizeof(out));
    CHECK_EQ_INT(n, 34 + 2 * 16);
    CHECK_EQ_INT(dnsmsg_parse_question(out, (size_t)n, &r), 0);
    CHECK_EQ_INT(r.id, 0x1234);
    CHECK_EQ_INT(r.response, 1);
    CHECK_EQ_INT(r.flags & 0xf, 0);
    CHECK_EQ_INT(r.flags & 0x0100, 0x0100); /* RD kept */
    CHECK_EQ_STR(r.name, "api.example.test");
    CHECK_EQ_INT(dnsmsg_parse_answers(out, (size_t)n, got, 4), 2);
    CHECK_EQ_INT(got[0].family, AF_INET);
    CHECK(memcmp(got[0].addr, "\x7f\x00\x00\x01", 4) == 0);
    CHECK_EQ_INT(got[1].ttl, 300);
    /* The question keeps the client's case (0x20 randomization). */
    CHECK(memcmp(out + 12, query + 12, 18) == 0);

    /* NXDOMAIN: no answers even when addresses are given. */
    n = dnsmsg_build_response(query, sizeof(query), &q, DNSMSG_RCODE_NXDOMAIN, a, 3, out,
                              sizeof(out));
    CHECK_EQ_INT(n, 34);
    CHECK_EQ_INT(out[3] & 0xf, 3);
    CHECK_EQ_INT(dnsmsg_parse_answers(out, (size_t)n, got, 4), 0);
    /* Too small a buffer. */
    CHECK_EQ_INT(dnsmsg_build_response(query, sizeof(query), &q, 0, a, 3, out, 40), -ENOSPC);
}

/* A recorded response with a CNAME chain and a compressed A record. */
static void test_cname(void)
{
    static const uint8_t resp[] = {
        0xab, 0xcd, 0x81, 0x80, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 3,    'w',
        'w',  'w',  1,    'x',  0,    0x00, 0x01, 0x00, 0x01, 0xc0, 0x0c, 0x00, 0x05, 0x00,
        0x01, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x04, 1,    'y',  0xc0, 0x10, 0xc0, 0x23, 0x00,
        0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x04, 10,   0,    0,    7,
    };
    dnsmsg_addr_t got[2];
    dnsmsg_question_t q;

    CHECK_EQ_INT(dnsmsg_parse_question(resp, sizeof(resp), &q), 0);
    CHECK_EQ_STR(q.name, "www.x");
    CHECK_EQ_INT(q.response, 1);
    CHECK_EQ_INT(dnsmsg_parse_answers(resp, sizeof(resp), got, 2), 1);
    CHECK(memcmp(got[0].addr, "\x0a\x00\x00\x07", 4) == 0);
    /* A pointer loop is refused. */
    {
        uint8_t bad[sizeof(resp)];
        memcpy(bad, resp, sizeof(resp));
        bad[35] = 0xc0; /* the CNAME's target: a pointer to itself */
        bad[36] = 0x23;
        CHECK_EQ_INT(dnsmsg_parse_answers(bad, sizeof(bad), got, 2), -EBADMSG);
    }
}

int main(void)
{
    test_question();
    test_build_and_read();
    test_cname();
    return check_done();
}

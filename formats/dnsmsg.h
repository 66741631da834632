/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_DNSMSG_H
#define MITMREC_DNSMSG_H

#include <stddef.h>
#include <stdint.h>

/*
 * DNS messages (RFC 1035), the little replay needs: read the question of a
 * query, read the A/AAAA answers of a recorded response, and build a response
 * by hand. Pure: bytes in, bytes out.
 */

#define DNSMSG_A 1
#define DNSMSG_CNAME 5
#define DNSMSG_AAAA 28
#define DNSMSG_RCODE_NOERROR 0
#define DNSMSG_RCODE_SERVFAIL 2
#define DNSMSG_RCODE_NXDOMAIN 3
#define DNSMSG_NAME_MAX 256

typedef struct dnsmsg_question {
    uint16_t id;
    int response;               /* QR bit */
    uint16_t flags;             /* the whole flags word */
    char name[DNSMSG_NAME_MAX]; /* lower case, no trailing dot */
    uint16_t qtype, qclass;
    size_t end; /* offset just past the question */
} dnsmsg_question_t;

/* An address answer: family AF_INET (4 bytes) or AF_INET6 (16). */
typedef struct dnsmsg_addr {
    int family;
    uint8_t addr[16];
    uint32_t ttl;
} dnsmsg_addr_t;

/* Reads the header and first question of msg. Returns 0 or -EBADMSG. */
int dnsmsg_parse_question(const uint8_t *msg, size_t len, dnsmsg_question_t *q);

/*
 * The A and AAAA records of a response's answer section (any owner name: a
 * CNAME chain ends at them), up to max into out. Returns how many, or -EBADMSG.
 */
int dnsmsg_parse_answers(const uint8_t *msg, size_t len, dnsmsg_addr_t *out, size_t max);

/*
 * Builds the response to query q (from dnsmsg_parse_question of query/qlen):
 * its id and question, rcode, and one answer per address whose family fits
 * the question's type (A: AF_INET, AAAA: AF_INET6). Returns the length
 * written to out, or -ENOSPC / -EINVAL.
 */
int dnsmsg_build_response(const uint8_t *query, size_t qlen, const dnsmsg_question_t *q, int rcode,
                          const dnsmsg_addr_t *addrs, size_t naddrs, uint8_t *out, size_t outlen);

#endif

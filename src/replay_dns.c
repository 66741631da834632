/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "replay_dns.h"

#define ANSWER_TTL 60

int replay_dns_answer(const replaydb_t *db, const uint8_t *query, size_t qlen,
                      const dnsmsg_question_t *q, uint8_t *out, size_t outlen, int *answered)
{
    const replay_dns_t *rec = replaydb_find_dns(db, q->name, q->qtype);
    replay_name_t names[16];
    dnsmsg_addr_t addrs[16];
    size_t n;

    if (rec) {
        if (rec->len > outlen || rec->len < 2)
            return -ENOSPC;
        memcpy(out, rec->msg, rec->len);
        out[0] = (uint8_t)(q->id >> 8);
        out[1] = (uint8_t)q->id;
        *answered = 1;
        return (int)rec->len;
    }
    n = replaydb_find_name(db, q->name, names, 16);
    for (size_t i = 0; i < n; i++) {
        memset(&addrs[i], 0, sizeof(addrs[i]));
        addrs[i].family = names[i].family;
        memcpy(addrs[i].addr, names[i].addr, 16);
        addrs[i].ttl = ANSWER_TTL;
    }
    *answered = n > 0;
    return dnsmsg_build_response(query, qlen, q, n ? DNSMSG_RCODE_NOERROR : DNSMSG_RCODE_NXDOMAIN,
                                 addrs, n, out, outlen);
}

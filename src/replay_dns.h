/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_REPLAY_DNS_H
#define MITMREC_REPLAY_DNS_H

#include <stddef.h>
#include <stdint.h>

#include "dnsmsg.h"
#include "replaydb.h"

/*
 * The replay's answer to a DNS query (q parsed from query/qlen): the recorded
 * response for the same name and type with the query's id; else one built
 * from the addresses the recording knows for the name (NOERROR, possibly with
 * no answer of the asked family); else NXDOMAIN. *answered says whether the
 * recording knew the name. Returns the length written to out, or a negative errno.
 */
int replay_dns_answer(const replaydb_t *db, const uint8_t *query, size_t qlen,
                      const dnsmsg_question_t *q, uint8_t *out, size_t outlen, int *answered);

#endif

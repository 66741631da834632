/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_REPLAY_CLIENT_H
#define MITMREC_REPLAY_CLIENT_H

#include "replay_options.h"
#include "replaydb.h"

/*
 * Client replay (mitmreplay --client): sends the recording's requests again
 * to their servers (or --to), HTTP/1.1 or HTTP/2 as recorded, records the new
 * run through the recorder (-o, --har) and prints a difference per request:
 * status, changed headers, body hash. Returns the exit status: 0, 1 after an
 * error, or (with --strict) 1 when a response differed.
 */
int replay_client_run(const replay_options_t *o, const replaydb_t *db);

#endif

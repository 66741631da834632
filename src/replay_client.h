/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_REPLAY_CLIENT_H
#define MITMREC_REPLAY_CLIENT_H

#include "replay_options.h"
#include "replay_report.h"
#include "replaydb.h"

/*
 * Client replay (mitmreplay --client): sends the recording's requests again
 * to their servers (or --to), HTTP/1.1 or HTTP/2 as recorded, records the new
 * run through the recorder (-o, --har) and prints a difference per request:
 * status, changed headers, body hash; each result also goes to report when
 * it is not NULL (--report). Returns the exit status: 0, 1 when the new
 * recording could not be written whole, or (with --strict) 1 when a response
 * differed or a request failed; -1 when it could not start (nothing was sent).
 */
int replay_client_run(const replay_options_t *o, const replaydb_t *db, replay_report_t *report);

#endif

/* SPDX-License-Identifier: MIT */
#include "log.h"
#include "replay_client.h"

int replay_client_run(const replay_options_t *o, const replaydb_t *db)
{
    log_error("--client is not available yet");
    return 1;
}

/* SPDX-License-Identifier: MIT */
#include <errno.h>

#include "replay_pass.h"

int replay_pass_start(uv_loop_t *loop, SSL_CTX *cctx, recorder_t *rec,
                      const struct sockaddr_storage *to, const char *host, int tls,
                      const rreq_t *rq, rconn_t *c, int32_t stream)
{
    return -ENOSYS;
}

void replay_pass_cancel(rconn_t *c)
{
}

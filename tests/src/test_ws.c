/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "replay_ws.h"

/* Sec-WebSocket-Accept: RFC 6455's own example (section 1.3), and a key too long to be one. */
static void test_accept_key(void)
{
    char out[RWS_ACCEPT_LEN + 1];
    char big[200];

    CHECK_EQ_INT(rws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
    CHECK_EQ_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    CHECK_EQ_INT(rws_accept_key(big, out), -EINVAL);
}

int main(void)
{
    test_accept_key();
    return check_done();
}

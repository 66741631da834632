/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "errors.h"

const char *mr_strerror(int err)
{
    switch (err) {
    case MR_ETLS:
        return "TLS failure";
    case MR_EVERIFY:
        return "upstream certificate verification failed";
    case MR_EPROTO:
        return "client spoke neither HTTP nor TLS";
    case MR_EUPSTREAM:
        return "upstream connection failed";
    default:
        /* libuv's codes are negated errno values on Unix, so this covers both. */
        return uv_strerror(err);
    }
}

char *mr_hostport(char *buf, unsigned long len, const char *host, unsigned port)
{
    int v6 = strchr(host, ':') != NULL;

    if (port)
        snprintf(buf, len, v6 ? "[%s]:%u" : "%s:%u", host, port);
    else
        snprintf(buf, len, v6 ? "[%s]" : "%s", host);
    return buf;
}

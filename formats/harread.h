/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_HARREAD_H
#define MITMREC_HARREAD_H

#include <stddef.h>
#include <stdint.h>

#include "httpmsg.h"

/*
 * Reading a HAR 1.2 file (mitmrec's, mitmproxy's, a browser's export) back into HTTP
 * exchanges, for replay. Pure: text in, exchanges out (cJSON, OpenSSL's base64).
 */

/* An entry as har_read hands it over. */
typedef struct har_read_entry {
    http_exchange_t *ex;   /* method, origin-form target, versions, headers, bodies
                              (content.text as it is: decoded, base64 undone),
                              status, reason, times; the callee's to keep or free */
    const char *scheme;    /* "http" or "https" */
    const char *host;      /* from the URL, lower case, no brackets */
    uint16_t port;         /* from the URL, else 80 / 443 */
    const char *server_ip; /* serverIPAddress, or NULL */
} har_read_entry_t;

typedef struct har_read_stats {
    size_t entries;              /* handed over */
    size_t no_response;          /* skipped: no status (a blocked or failed request) */
    size_t unusable;             /* skipped: no request, a URL that is not http(s)://HOST,
                                    or a body that is not valid base64 */
    size_t truncated;            /* handed over with a body the HAR has only the start of
                                    ("_truncated", or content.text shorter than content.size) */
    char truncated_example[300]; /* the first of those: "METHOD URL" */
} har_read_stats_t;

/* Called for each usable entry, in file order; a negative return stops har_read with it. */
typedef int (*har_read_cb)(void *opaque, har_read_entry_t *e);

/*
 * Parses the HAR in text (len bytes) and hands each usable entry to cb. Returns 0,
 * -EBADMSG when the text is not JSON with a log.entries array, -ENOMEM, or cb's error.
 * st (may be NULL) counts what was handed over and what was skipped.
 */
int har_read(const char *text, size_t len, har_read_cb cb, void *opaque, har_read_stats_t *st);

/*
 * Splits "scheme://host[:port]/path?query" (host may be "[v6]"): scheme and host in lower
 * case, port from the URL or 80 / 443 by scheme, *path pointing into url at the path (or at
 * "/" when the URL has none). 0, or -EINVAL for something else, a port that is not 1-65535,
 * or a part too long for its buffer.
 */
int har_url_split(const char *url, char *scheme, size_t slen, char *host, size_t hlen,
                  uint16_t *port, const char **path);

#endif

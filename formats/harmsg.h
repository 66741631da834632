/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_FORMATS_HARMSG_H
#define MITMREC_FORMATS_HARMSG_H

#include <stddef.h>
#include <stdint.h>

#include "har.h"
#include "harjson.h"
#include "httpmsg.h"

/*
 * Private to the HAR writer (har.c): an entry's request and response objects
 * as the exchange gives them (URL, cookies, query and form params, headers,
 * bodies with Content-Encoding undone), and HAR's date format.
 */

/* A body to stream in place of a placeholder. */
typedef struct har_text {
    const uint8_t *data;
    size_t len;
    int base64;
} har_text_t;

/*
 * What the HAR shows of a body: Content-Encoding undone when it can be.
 * *dec is a buffer to free (NULL when the body is shown as stored).
 */
typedef struct body_view {
    const uint8_t *data;
    size_t len;
    uint8_t *dec;
    uint8_t *loaded; /* the body read back from the spill file */
    int undone;      /* a Content-Encoding was removed */
    int failed;      /* a Content-Encoding could not be removed */
    int truncated;
} body_view_t;

/*
 * Prints sec and ms (0-999) as YYYY-MM-DDTHH:MM:SS.mmmZ (UTC) into out.
 * Returns 0, or -1 when that cannot be done (a year outside 0-9999, ms over 999).
 */
int harmsg_iso_time(char out[96], int64_t sec, unsigned ms);

/* The full URL of e's request; malloc'd, the caller frees. NULL on ENOMEM. */
char *harmsg_url(const har_entry_t *e);

/*
 * Fills *v with what the HAR shows of m's body (borrowed from m, or from v->dec or
 * v->loaded). Returns 0, after which the caller calls harmsg_body_view_free(v), or
 * -ENOMEM (with nothing to free).
 */
int harmsg_body_view(const http_msg_t *m, body_view_t *v);

/* Frees what a body view holds. */
void harmsg_body_view_free(body_view_t *v);

/*
 * Adds the "request" or the "response" member to entry. Where the body goes
 * in, jbody marks the place (j->ph[0] and j->ph[1]) and *text is set to what
 * to stream there (borrowed from bv); otherwise *text is left alone.
 */
void harmsg_request(jctx_t *j, jnode_t entry, const har_entry_t *e, const char *url,
                    const body_view_t *bv, har_text_t *text);
void harmsg_response(jctx_t *j, jnode_t entry, const har_entry_t *e, const body_view_t *bv,
                     har_text_t *text);

#endif

/* SPDX-License-Identifier: MIT */
#include "httpmsg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

http_exchange_t *http_exchange_new(void)
{
    http_exchange_t *ex = calloc(1, sizeof(*ex));

    if (!ex)
        return NULL;
    /* Zero would claim an empty head was seen; -1 is the documented "unknown". */
    ex->req.headers_size = -1;
    ex->resp.headers_size = -1;
    return ex;
}

static void msg_free(http_msg_t *m)
{
    for (size_t i = 0; i < m->nheaders; i++) {
        free(m->headers[i].name);
        free(m->headers[i].value);
    }
    free(m->headers);
    free(m->body);
}

void http_exchange_free(http_exchange_t *ex)
{
    if (!ex)
        return;
    free(ex->method);
    free(ex->target);
    free(ex->reason);
    free(ex->error);
    msg_free(&ex->req);
    msg_free(&ex->resp);
    free(ex);
}

static char *dup_len(const char *s, size_t len)
{
    char *p = malloc(len + 1);

    if (!p)
        return NULL;
    if (len)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

int http_msg_add_header(http_msg_t *m, const char *name, size_t nlen, const char *value,
                        size_t vlen)
{
    char *n, *v;

    if (m->nheaders == m->headers_cap) {
        size_t cap = m->headers_cap ? m->headers_cap * 2 : 16;
        http_header_t *h = realloc(m->headers, cap * sizeof(*h));

        if (!h)
            return -ENOMEM;
        m->headers = h;
        m->headers_cap = cap;
    }
    n = dup_len(name, nlen);
    v = dup_len(value, vlen);
    if (!n || !v) {
        free(n);
        free(v);
        return -ENOMEM;
    }
    m->headers[m->nheaders].name = n;
    m->headers[m->nheaders].value = v;
    m->nheaders++;
    return 0;
}

int http_msg_add_body(http_msg_t *m, const void *data, size_t len, size_t max_body)
{
    size_t keep = 0;

    if (m->body_len < max_body)
        keep = max_body - m->body_len < len ? max_body - m->body_len : len;
    if (keep) {
        if (m->body_len + keep > m->body_cap) {
            /* Grow geometrically but never past the limit, so a capped body costs
               at most max_body bytes. */
            size_t cap = m->body_cap ? m->body_cap : 4096;
            uint8_t *b;

            while (cap < m->body_len + keep)
                cap = cap > max_body / 2 ? max_body : cap * 2;
            if (cap > max_body)
                cap = max_body;
            b = realloc(m->body, cap);
            if (!b)
                return -ENOMEM;
            m->body = b;
            m->body_cap = cap;
        }
        memcpy(m->body + m->body_len, data, keep);
        m->body_len += keep;
    }
    m->body_total += len;
    if (m->body_total > m->body_len)
        m->body_truncated = 1;
    return 0;
}

const char *http_msg_header(const http_msg_t *m, const char *name)
{
    for (size_t i = 0; i < m->nheaders; i++)
        if (strcasecmp(m->headers[i].name, name) == 0)
            return m->headers[i].value;
    return NULL;
}

int http_strset(char **dst, const char *src, size_t len)
{
    char *p = dup_len(src, len);

    if (!p)
        return -ENOMEM;
    free(*dst);
    *dst = p;
    return 0;
}

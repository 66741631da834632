/* SPDX-License-Identifier: MIT */
#include "httpmsg.h"
#include "spill.h"

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

void http_headers_free(http_header_t *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(h[i].name); /* the value shares its block (http_header_set) */
    free(h);
}

void http_msg_body_free(http_msg_t *m)
{
    free(m->body);
    m->body = NULL;
    m->body_len = m->body_cap = 0;
    if (m->spill) {
        spill_release(m->spill);
        free(m->spill);
        m->spill = NULL;
    }
}

static void msg_free(http_msg_t *m)
{
    http_headers_free(m->headers, m->nheaders);
    http_headers_free(m->trailers, m->ntrailers);
    http_msg_body_free(m);
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
    for (size_t i = 0; i < ex->nws; i++)
        free(ex->ws[i].data);
    free(ex->ws);
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

int http_header_set(http_header_t *h, const char *name, size_t nlen, const char *value, size_t vlen)
{
    char *p = malloc(nlen + vlen + 2);

    if (!p)
        return -ENOMEM;
    if (nlen)
        memcpy(p, name, nlen);
    p[nlen] = '\0';
    if (vlen)
        memcpy(p + nlen + 1, value, vlen);
    p[nlen + 1 + vlen] = '\0';
    h->name = p;
    h->value = p + nlen + 1;
    return 0;
}

/* Appends a copied name/value pair to a growable array. */
static int pair_add(http_header_t **arr, size_t *n, size_t *cap, const char *name, size_t nlen,
                    const char *value, size_t vlen)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        http_header_t *h = realloc(*arr, ncap * sizeof(*h));

        if (!h)
            return -ENOMEM;
        *arr = h;
        *cap = ncap;
    }
    if (http_header_set(&(*arr)[*n], name, nlen, value, vlen) < 0)
        return -ENOMEM;
    (*n)++;
    return 0;
}

int http_msg_add_header(http_msg_t *m, const char *name, size_t nlen, const char *value,
                        size_t vlen)
{
    return pair_add(&m->headers, &m->nheaders, &m->headers_cap, name, nlen, value, vlen);
}

int http_msg_add_trailer(http_msg_t *m, const char *name, size_t nlen, const char *value,
                         size_t vlen)
{
    return pair_add(&m->trailers, &m->ntrailers, &m->trailers_cap, name, nlen, value, vlen);
}

int http_exchange_add_ws(http_exchange_t *ex, int send, uint64_t ts_usec, int opcode,
                         const void *data, size_t len)
{
    http_ws_message_t *w;
    uint8_t *copy;

    if (ex->nws == ex->ws_cap) {
        size_t cap = ex->ws_cap ? ex->ws_cap * 2 : 16;

        w = realloc(ex->ws, cap * sizeof(*w));
        if (!w)
            return -ENOMEM;
        ex->ws = w;
        ex->ws_cap = cap;
    }
    /* One spare byte keeps text payloads usable as C strings. */
    copy = malloc(len + 1);
    if (!copy)
        return -ENOMEM;
    if (len)
        memcpy(copy, data, len);
    copy[len] = '\0';
    w = &ex->ws[ex->nws++];
    w->send = send;
    w->ts_usec = ts_usec;
    w->opcode = opcode;
    w->data = copy;
    w->len = len;
    return 0;
}

size_t http_msg_kept(const http_msg_t *m)
{
    return m->body_len + (m->spill ? (size_t)m->spill->len : 0);
}

/*
 * Takes up to n bytes of a body that goes (or now starts to go) to the spill file:
 * memory holds a tail of at most HTTP_SPILL_TAIL, written out whenever it is full.
 * Returns the bytes taken; the caller keeps the rest in memory, after them, which is
 * where a failure of the file leaves the bytes that come.
 */
static size_t spill_body(http_msg_t *m, const uint8_t *p, size_t n)
{
    size_t done = 0;

    if (!m->spill) {
        if (!(m->spill = calloc(1, sizeof(*m->spill))))
            return 0;
        /* What memory holds goes first, as one extent. */
        if (m->body_len && spill_append(m->spill, m->body, m->body_len) < 0) {
            free(m->spill);
            m->spill = NULL;
            return 0;
        }
        m->body_len = 0;
        if (m->body_cap != HTTP_SPILL_TAIL) {
            free(m->body);
            m->body = NULL;
            m->body_cap = 0;
        }
    }
    if (m->body_len > HTTP_SPILL_TAIL)
        return 0; /* a write failed before: the rest stays in memory */
    while (done < n) {
        size_t k;

        if (m->body_len == HTTP_SPILL_TAIL && spill_append(m->spill, m->body, m->body_len) < 0)
            break;
        if (m->body_len == HTTP_SPILL_TAIL)
            m->body_len = 0;
        if (!m->body) {
            if (!(m->body = malloc(HTTP_SPILL_TAIL)))
                break;
            m->body_cap = HTTP_SPILL_TAIL;
        }
        k = HTTP_SPILL_TAIL - m->body_len < n - done ? HTTP_SPILL_TAIL - m->body_len : n - done;
        memcpy(m->body + m->body_len, p + done, k);
        m->body_len += k;
        done += k;
    }
    return done;
}

int http_msg_add_body(http_msg_t *m, const void *data, size_t len, size_t max_body)
{
    const uint8_t *p = data;
    size_t kept = http_msg_kept(m), keep = 0, at = spill_threshold();

    if (kept < max_body)
        keep = max_body - kept < len ? max_body - kept : len;
    if (keep && at && (m->spill || kept + keep > at)) {
        size_t n = spill_body(m, p, keep);

        p += n;
        keep -= n;
        kept += n;
        m->body_total += n;
        len -= n;
    }
    if (keep) {
        /* Memory may hold only part of what is kept: its own limit. */
        size_t lim = max_body - (kept - m->body_len);

        if (m->body_len + keep > m->body_cap) {
            /* Grow geometrically but never past the limit, so a capped body costs
               at most max_body bytes. */
            size_t cap = m->body_cap ? m->body_cap : 4096;
            uint8_t *b;

            while (cap < m->body_len + keep)
                cap = cap > lim / 2 ? lim : cap * 2;
            if (cap > lim)
                cap = lim;
            b = realloc(m->body, cap);
            if (!b)
                return -ENOMEM;
            m->body = b;
            m->body_cap = cap;
        }
        memcpy(m->body + m->body_len, p, keep);
        m->body_len += keep;
        kept += keep;
    }
    m->body_total += len;
    if (m->body_total > kept)
        m->body_truncated = 1;
    return 0;
}

int http_msg_body(const http_msg_t *m, const uint8_t **data, size_t *len, uint8_t **owned)
{
    size_t n = http_msg_kept(m);
    uint8_t *b;
    int r;

    *owned = NULL;
    if (!m->spill || !m->spill->len) {
        *data = m->body;
        *len = m->body_len;
        return 0;
    }
    if (!(b = malloc(n)))
        return -ENOMEM;
    if ((r = spill_read(m->spill, b)) < 0) {
        free(b);
        return r;
    }
    if (m->body_len)
        memcpy(b + m->spill->len, m->body, m->body_len);
    *data = *owned = b;
    *len = n;
    return 0;
}

const char *http_msg_header(const http_msg_t *m, const char *name)
{
    for (size_t i = 0; i < m->nheaders; i++)
        if (http_name_is(m->headers[i].name, name))
            return m->headers[i].value;
    return NULL;
}

int http_header_has_token(const char *value, const char *token)
{
    size_t n = strlen(token);

    for (const char *p = value; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (strncasecmp(p, token, n) == 0 &&
            (p[n] == '\0' || p[n] == ',' || p[n] == ' ' || p[n] == '\t' || p[n] == ';'))
            return 1;
        p = strchr(p, ',');
    }
    return 0;
}

int http_exchange_websocket(const http_exchange_t *ex)
{
    return ex->status == 101 &&
           http_header_has_token(http_msg_header(&ex->resp, "Upgrade"), "websocket");
}

int http_exchange_ws_connect(const http_exchange_t *ex)
{
    const char *proto = http_msg_header(&ex->req, ":protocol");

    return ex->method && strcmp(ex->method, "CONNECT") == 0 && ex->status >= 200 &&
           ex->status < 300 && proto && strcasecmp(proto, "websocket") == 0;
}

int http_exchange_head_cut(const http_exchange_t *ex)
{
    return !ex->announced && ex->error && ex->method && ex->method[0] && ex->target;
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

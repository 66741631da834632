/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <http_parser.h>

#include "rewrite.h"

#define URL_MAX (64 * 1024)

struct rewrite {
    http_parser parser;
    http_parser_settings settings;
    int in_url;
    int url_here; /* on_url took bytes of this target in the feed in progress */
    int dead;
    char *url;
    size_t url_len;
    /* Bytes after a target that may not have ended yet: they follow it out. Usually
       " HTTP/1.1\r\n", but http_parser takes any number of spaces there (up to its
       80 KiB for a head), so it grows (fuzz_rewrite: a fixed 64 bytes dropped the rest). */
    uint8_t *tail;
    size_t tail_len, tail_cap;
    /* output of the feed in progress */
    uint8_t **out;
    size_t *outlen, *outcap;
    const uint8_t *copy_from;
    int err;
};

/* Appends n bytes to the buffer *buf (*len of *cap used), growing it from first_cap on by
   doubling. 0 or -ENOMEM. */
static int put(uint8_t **buf, size_t *len, size_t *cap, size_t first_cap, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : first_cap;
        uint8_t *b;

        while (c < *len + n)
            c *= 2;
        if (!(b = realloc(*buf, c)))
            return -ENOMEM;
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    return 0;
}

/* Appends to the output of the feed in progress; -1 (rw->err set) on ENOMEM. */
static int append(rewrite_t *rw, const void *p, size_t n)
{
    if (put(rw->out, rw->outlen, rw->outcap, 4096, p, n) < 0) {
        rw->err = -ENOMEM;
        return -1;
    }
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    rewrite_t *rw = p->data;
    char *u;

    if (!rw->in_url) {
        /* Everything up to the target (the method and its space) passes as is. */
        if (append(rw, rw->copy_from, (size_t)((const uint8_t *)at - rw->copy_from)) < 0)
            return -1;
        rw->copy_from = (const uint8_t *)at;
        rw->in_url = 1;
        rw->url_here = 0;
        rw->url_len = 0;
        rw->tail_len = 0;
    }
    /* (Refused, it passes as it came: from copy_from on.) */
    if (rw->url_len + len > URL_MAX || !(u = realloc(rw->url, rw->url_len + len + 1)))
        return -1;
    memcpy(u + rw->url_len, at, len);
    rw->url = u;
    rw->url_len += len;
    rw->url[rw->url_len] = '\0';
    rw->copy_from = (const uint8_t *)at + len;
    rw->url_here = 1;
    return 0;
}

/* The target is complete once the parser moves on: write its origin form. */
static int end_url(http_parser *p)
{
    rewrite_t *rw = p->data;
    const char *u = rw->url, *path;

    if (!rw->in_url)
        return 0;
    rw->in_url = 0;
    path = u;
    if (strncasecmp(u, "http://", 7) == 0) {
        path = strchr(u + 7, '/');
        if (!path) {
            const char *q = strchr(u + 7, '?');
            if (append(rw, "/", 1) < 0)
                return -1;
            path = q ? q : "";
        }
    }
    if (append(rw, path, strlen(path)) < 0 || append(rw, rw->tail, rw->tail_len) < 0)
        return -1;
    rw->tail_len = 0;
    return 0;
}

/* Sends the target held since its line began: rewritten when it is known whole, else as it
   came, with what followed it. 0 or -1 (rw->err set). */
static int flush_target(rewrite_t *rw, int whole)
{
    if (!rw->in_url)
        return 0;
    if (whole)
        return end_url(&rw->parser);
    if (append(rw, rw->url, rw->url_len) < 0 || append(rw, rw->tail, rw->tail_len) < 0)
        return -1;
    rw->in_url = 0;
    rw->tail_len = 0;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    return end_url(p);
}

static int on_headers_complete(http_parser *p)
{
    end_url(p);
    /* CONNECT or an upgrade: what follows is not HTTP; pass it as is. */
    return 0;
}

rewrite_t *rewrite_new(void)
{
    rewrite_t *rw = calloc(1, sizeof(*rw));

    if (!rw)
        return NULL;
    http_parser_init(&rw->parser, HTTP_REQUEST);
    rw->parser.data = rw;
    http_parser_settings_init(&rw->settings);
    rw->settings.on_url = on_url;
    rw->settings.on_header_field = on_header_field;
    rw->settings.on_headers_complete = on_headers_complete;
    return rw;
}

void rewrite_free(rewrite_t *rw)
{
    if (!rw)
        return;
    free(rw->url);
    free(rw->tail);
    free(rw);
}

int rewrite_feed(rewrite_t *rw, const uint8_t *in, size_t len, uint8_t **out, size_t *outlen,
                 size_t *outcap)
{
    size_t n;

    rw->out = out;
    rw->outlen = outlen;
    rw->outcap = outcap;
    rw->err = 0;
    if (rw->dead || rw->parser.upgrade)
        return append(rw, in, len) < 0 ? rw->err : 0;
    rw->copy_from = in;
    rw->url_here = 0;
    n = http_parser_execute(&rw->parser, &rw->settings, (const char *)in, len);
    if (rw->err)
        return rw->err;
    if (HTTP_PARSER_ERRNO(&rw->parser) != HPE_OK || (n < len && !rw->parser.upgrade)) {
        /* Not HTTP after all: from here on, relay bytes unchanged. A target the parser
           had gone past (bytes after it taken: its end was in this feed, or the tail
           holds some, or this feed began with its terminator) is rewritten first, as
           it was when the stream was split right after those bytes (fuzz_rewrite:
           what went out depended on how the client's bytes were split). */
        rw->dead = 1;
        if (flush_target(rw, rw->url_here || rw->tail_len ||
                                 (rw->url_len && n > 0 &&
                                  (in[0] == ' ' || in[0] == '\r' || in[0] == '\n'))) < 0 ||
            append(rw, rw->copy_from, (size_t)(in + len - rw->copy_from)) < 0)
            return rw->err;
        return -EBADMSG;
    }
    /* While the parser has not seen the end of the target's line, what follows the
       target waits for it (in the tail). */
    if (rw->in_url)
        return put(&rw->tail, &rw->tail_len, &rw->tail_cap, 64, rw->copy_from,
                   (size_t)(in + len - rw->copy_from));
    return append(rw, rw->copy_from, (size_t)(in + len - rw->copy_from)) < 0 ? rw->err : 0;
}

int rewrite_finish(rewrite_t *rw, uint8_t **out, size_t *outlen, size_t *outcap)
{
    rw->out = out;
    rw->outlen = outlen;
    rw->outcap = outcap;
    rw->err = 0;
    rw->dead = 1;
    /* Bytes after the target say it ended. */
    return flush_target(rw, rw->tail_len > 0) < 0 ? rw->err : 0;
}

int rewrite_parse_authority(const char *auth, char *host, size_t hostlen, uint16_t *port)
{
    const char *colon, *h = auth;
    size_t n;
    char *end;
    long p;

    if (auth[0] == '[') {
        const char *rb = strchr(auth, ']');
        if (!rb || rb[1] != ':')
            return -EINVAL;
        h = auth + 1;
        n = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(auth, ':');
        if (!colon)
            return -EINVAL;
        n = (size_t)(colon - auth);
    }
    if (n == 0 || n >= hostlen)
        return -EINVAL;
    p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || p <= 0 || p > 65535)
        return -EINVAL;
    memcpy(host, h, n);
    host[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)host[i] <= 0x20 || host[i] == '/' || host[i] == '@')
            return -EINVAL;
    *port = (uint16_t)p;
    return 0;
}

ssize_t rewrite_connect_head(const uint8_t *p, size_t len, char *host, size_t hostlen,
                             uint16_t *port)
{
    static const char word[] = "CONNECT ";
    char line[600], target[520];
    const uint8_t *end;
    size_t n;

    if (memcmp(p, word, len < 8 ? len : 8) != 0)
        return -EINVAL;
    if (!(end = memmem(p, len, "\r\n\r\n", 4)))
        return 0;
    n = strcspn((const char *)p, "\r\n"); /* (the \r\n\r\n ends the scan) */
    if (n >= sizeof(line))
        return -EINVAL;
    memcpy(line, p, n);
    line[n] = '\0';
    if (sscanf(line, "CONNECT %519s HTTP/%*d.%*d", target) != 1 ||
        rewrite_parse_authority(target, host, hostlen, port) < 0)
        return -EINVAL;
    return (ssize_t)(end + 4 - p);
}

size_t rewrite_answer_head(const uint8_t *p, size_t len, int *status)
{
    const uint8_t *end = memmem(p, len, "\r\n\r\n", 4);
    char line[128];
    size_t n;

    if (!end)
        return 0;
    n = strcspn((const char *)p, "\r\n");
    if (n >= sizeof(line))
        n = sizeof(line) - 1;
    memcpy(line, p, n);
    line[n] = '\0';
    if (sscanf(line, "HTTP/%*d.%*d %d", status) != 1)
        *status = 0;
    return (size_t)(end + 4 - p);
}

int rewrite_parse_http_url(const char *url, char *host, size_t hostlen, uint16_t *port)
{
    struct http_parser_url u;
    size_t n;

    http_parser_url_init(&u);
    if (http_parser_parse_url(url, strlen(url), 0, &u) != 0 || !(u.field_set & (1 << UF_HOST)))
        return -EINVAL;
    if ((u.field_set & (1 << UF_SCHEMA)) == 0 || u.field_data[UF_SCHEMA].len != 4 ||
        strncasecmp(url + u.field_data[UF_SCHEMA].off, "http", 4) != 0)
        return -EINVAL;
    n = u.field_data[UF_HOST].len;
    if (n == 0 || n >= hostlen)
        return -EINVAL;
    /* Port 0 is nobody's (http_parser takes it; CONNECT's authority never did). */
    if ((u.field_set & (1 << UF_PORT)) && u.port == 0)
        return -EINVAL;
    memcpy(host, url + u.field_data[UF_HOST].off, n);
    host[n] = '\0';
    *port = (u.field_set & (1 << UF_PORT)) ? u.port : 80;
    return 0;
}

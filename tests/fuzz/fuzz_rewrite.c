/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer driver for the explicit proxy's request rewriting (formats/rewrite.c): what a
 * proxy client sends for plain http:// URLs, absolute-form targets made origin-form for the
 * server; every other byte passes unchanged.
 *
 * Input: one byte, the size of the pieces the stream is fed in a second time (0: 1 byte;
 * with bit 7 set, sizes from the byte after it on, one per piece); then the client's bytes.
 * The same bytes are also split as URLs and authorities (at each NUL) for
 * rewrite_parse_http_url and rewrite_parse_authority, and read whole as a CONNECT head
 * (rewrite_connect_head) and a proxy's answer (rewrite_answer_head).
 *
 * Contract checked: feeds return 0 or -EBADMSG; the bytes out (after rewrite_finish, the
 * client's FIN) do not depend on how the stream was split (nor does whether it was
 * refused); no byte is lost: a stream with no
 * "http://" in it comes out exactly as it went in, and any stream comes out no longer than it
 * went in plus one "/" for each target with no path; the URL and authority parsers return 0
 * or -EINVAL and give a NUL-terminated host within its buffer, a port other than 0.
 *
 * Build (tests/slow/fuzz.sh does it): clang -g -O1 -fsanitize=fuzzer,address,undefined
 *   -Iformats tests/fuzz/fuzz_rewrite.c formats/rewrite.c -lhttp_parser
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rewrite.h"

typedef struct run {
    uint8_t *out;
    size_t len, cap;
    int refused;
} run_t;

/* Feeds in[0..len) in pieces: sizes from sz (nsz of them, cycled), or all of one size. */
static int feed(const uint8_t *in, size_t len, const uint8_t *sz, size_t nsz, size_t each, run_t *r)
{
    rewrite_t *rw = rewrite_new();
    size_t off = 0, k = 0;

    memset(r, 0, sizeof(*r));
    if (!rw)
        return -1;
    while (off < len) {
        size_t n = nsz ? (size_t)sz[k++ % nsz] + 1 : each;
        int rc;

        if (n > len - off)
            n = len - off;
        rc = rewrite_feed(rw, in + off, n, &r->out, &r->len, &r->cap);
        if (rc == -ENOMEM) {
            rewrite_free(rw);
            free(r->out);
            return -1;
        }
        if (rc != 0 && rc != -EBADMSG)
            abort();
        if (rc == -EBADMSG)
            r->refused = 1;
        off += n;
    }
    if (rewrite_finish(rw, &r->out, &r->len, &r->cap) < 0) {
        rewrite_free(rw);
        free(r->out);
        return -1;
    }
    rewrite_free(rw);
    return 0;
}

static void parse_parts(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1), host[256];
    size_t i = 0;

    if (!s)
        return;
    memcpy(s, data, size);
    s[size] = '\0';
    while (i <= size) {
        const char *part = s + i;
        uint16_t port = 0;
        int rc;

        memset(host, 'x', sizeof(host));
        rc = rewrite_parse_http_url(part, host, sizeof(host), &port);
        if (rc != 0 && rc != -EINVAL)
            abort();
        if (rc == 0 && (!memchr(host, '\0', sizeof(host)) || port == 0))
            abort();
        memset(host, 'x', sizeof(host));
        port = 0;
        rc = rewrite_parse_authority(part, host, sizeof(host), &port);
        if (rc != 0 && rc != -EINVAL)
            abort();
        if (rc == 0 && (!memchr(host, '\0', sizeof(host)) || port == 0))
            abort();
        i += strlen(part) + 1;
    }
    /* The whole input as a client's first bytes to a proxy, and as the proxy's answer: a
       head's length within the input (host and port then filled in), 0 or -EINVAL. */
    {
        uint16_t port = 0;
        int status = -1;
        ssize_t n;
        size_t a;

        memset(host, 'x', sizeof(host));
        n = rewrite_connect_head((const uint8_t *)s, size, host, sizeof(host), &port);
        if (n < -EINVAL || (n < 0 && n != -EINVAL) || n > (ssize_t)size)
            abort();
        if (n > 0 && (n < 12 || !memchr(host, '\0', sizeof(host)) || port == 0 ||
                      memcmp(s + n - 4, "\r\n\r\n", 4) != 0))
            abort();
        a = rewrite_answer_head((const uint8_t *)s, size, &status);
        if (a > size || (a && (a < 4 || memcmp(s + a - 4, "\r\n\r\n", 4) != 0)))
            abort();
    }
    free(s);
}

static size_t count_ci(const uint8_t *p, size_t len, const char *needle)
{
    size_t n = 0, k = strlen(needle);

    for (size_t i = 0; i + k <= len; i++)
        if (strncasecmp((const char *)p + i, needle, k) == 0)
            n++;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *in, *sz = NULL;
    size_t len, nsz = 0, each;
    run_t whole, split;

    if (size < 1)
        return 0;
    if (data[0] & 0x80) {
        nsz = data[0] & 0x7f;
        if (nsz + 1 > size)
            nsz = size - 1;
        sz = data + 1;
        each = 1;
    } else {
        each = data[0] ? data[0] : 1;
    }
    in = data + 1 + nsz;
    len = size - 1 - nsz;
    parse_parts(in, len);

    if (feed(in, len, NULL, 0, len ? len : 1, &whole) < 0)
        return 0;
    if (feed(in, len, sz, nsz, each, &split) < 0) {
        free(whole.out);
        return 0;
    }
    if (whole.len != split.len || (whole.len && memcmp(whole.out, split.out, whole.len) != 0) ||
        whole.refused != split.refused)
        abort(); /* the split changed what goes to the server */
    if (count_ci(in, len, "http://") == 0 &&
        (whole.len != len || (len && memcmp(whole.out, in, len) != 0)))
        abort(); /* bytes changed or lost with no target to rewrite */
    if (whole.len > len + count_ci(in, len, "http://"))
        abort();
    free(whole.out);
    free(split.out);
    return 0;
}

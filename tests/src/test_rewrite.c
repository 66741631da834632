/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rewrite.h"

static const char input[] =
    "GET http://127.0.0.1:8080/a/b?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
    "POST http://example.test/form HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\n\r\n"
    "hello"
    "GET http://example.test HTTP/1.1\r\nHost: example.test\r\n\r\n"
    "GET http://example.test?q=2 HTTP/1.0\r\n\r\n";

static const char expected[] =
    "GET /a/b?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
    "POST /form HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\n\r\n"
    "hello"
    "GET / HTTP/1.1\r\nHost: example.test\r\n\r\n"
    "GET /?q=2 HTTP/1.0\r\n\r\n";

/* Feeds input in pieces of size step (0: random sizes) and checks the output. */
static void run(size_t step, unsigned seed)
{
    rewrite_t *rw = rewrite_new();
    uint8_t *out = NULL;
    size_t outlen = 0, cap = 0, total = 0, len = strlen(input), off = 0;
    char *all = calloc(1, 4096);

    srand(seed);
    while (off < len) {
        size_t n = step ? step : 1 + (size_t)rand() % 17;
        if (n > len - off)
            n = len - off;
        outlen = 0;
        CHECK_EQ_INT(rewrite_feed(rw, (const uint8_t *)input + off, n, &out, &outlen, &cap), 0);
        memcpy(all + total, out, outlen);
        total += outlen;
        off += n;
    }
    CHECK_EQ_INT(total, strlen(expected));
    CHECK_EQ_STR(all, expected);
    free(all);
    free(out);
    rewrite_free(rw);
}

int main(void)
{
    char host[64];
    uint16_t port;
    rewrite_t *rw;
    uint8_t *out = NULL;
    size_t outlen = 0, cap = 0;
    static const char junk[] = "\x16\x03\x01 not http at all";

    run(strlen(input), 0);
    run(1, 0);
    for (unsigned s = 1; s < 20; s++)
        run(0, s);

    /* Not HTTP: the bytes pass unchanged and the caller learns it. */
    rw = rewrite_new();
    CHECK_EQ_INT(rewrite_feed(rw, (const uint8_t *)junk, sizeof(junk) - 1, &out, &outlen, &cap),
                 -EBADMSG);
    CHECK_EQ_INT(outlen, sizeof(junk) - 1);
    CHECK(memcmp(out, junk, outlen) == 0);
    free(out);
    rewrite_free(rw);

    CHECK_EQ_INT(rewrite_parse_authority("localhost:8443", host, sizeof(host), &port), 0);
    CHECK_EQ_STR(host, "localhost");
    CHECK_EQ_INT(port, 8443);
    CHECK_EQ_INT(rewrite_parse_authority("[::1]:443", host, sizeof(host), &port), 0);
    CHECK_EQ_STR(host, "::1");
    CHECK_EQ_INT(port, 443);
    CHECK_EQ_INT(rewrite_parse_authority("nohost", host, sizeof(host), &port), -EINVAL);
    CHECK_EQ_INT(rewrite_parse_authority("a:0", host, sizeof(host), &port), -EINVAL);
    CHECK_EQ_INT(rewrite_parse_authority("a:99999", host, sizeof(host), &port), -EINVAL);
    CHECK_EQ_INT(rewrite_parse_http_url("http://127.0.0.1:8080/x", host, sizeof(host), &port), 0);
    CHECK_EQ_STR(host, "127.0.0.1");
    CHECK_EQ_INT(port, 8080);
    CHECK_EQ_INT(rewrite_parse_http_url("http://example.test/", host, sizeof(host), &port), 0);
    CHECK_EQ_INT(port, 80);
    CHECK_EQ_INT(rewrite_parse_http_url("ftp://x/", host, sizeof(host), &port), -EINVAL);
    return check_done();
}

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

/* Feeds s in pieces of step bytes (0: all at once), then the client's FIN; returns what
   went out (malloc'd, NUL-terminated) and whether a feed said -EBADMSG. */
static char *feed_all(const char *s, size_t step, int *refused)
{
    rewrite_t *rw = rewrite_new();
    uint8_t *out = NULL;
    size_t outlen = 0, cap = 0, len = strlen(s);
    char *r;

    *refused = 0;
    for (size_t off = 0; off < len;) {
        size_t n = step && step < len - off ? step : len - off;
        int rc = rewrite_feed(rw, (const uint8_t *)s + off, n, &out, &outlen, &cap);

        CHECK(rc == 0 || rc == -EBADMSG);
        *refused |= rc == -EBADMSG;
        off += n;
    }
    CHECK_EQ_INT(rewrite_finish(rw, &out, &outlen, &cap), 0);
    r = malloc(outlen + 1);
    memcpy(r, out, outlen);
    r[outlen] = '\0';
    free(out);
    rewrite_free(rw);
    return r;
}

/* Found by fuzz_rewrite. */
static void test_fuzz_findings(void)
{
    /* A head that turns out not to be HTTP after its request line: the line goes out
       rewritten however the bytes were split (before: only when a piece ended inside the
       first header's name). */
    static const char bad_header[] = "POST http://h/c HTTP/1.1\r\nHos\x01t: h\r\n\r\n";
    /* The client's FIN in the middle of a request line: its bytes still go out. */
    static const char cut_line[] = "GET /x/y HTTP/1.1";
    static const char cut_abs[] = "GET http://h/x HTTP/1.1\r\n";
    char host[64], *a, *b;
    uint16_t port;
    int ra, rb;

    for (size_t step = 1; step <= 40; step++) {
        a = feed_all(bad_header, 0, &ra);
        b = feed_all(bad_header, step, &rb);
        CHECK_EQ_STR(b, a);
        CHECK_EQ_INT(rb, ra);
        CHECK_EQ_STR(a, "POST /c HTTP/1.1\r\nHos\x01t: h\r\n\r\n");
        free(a);
        free(b);
        a = feed_all(cut_line, step, &ra);
        CHECK_EQ_STR(a, cut_line);
        free(a);
        a = feed_all(cut_abs, step, &ra);
        CHECK_EQ_STR(a, "GET /x HTTP/1.1\r\n");
        free(a);
    }
    /* A target over 64 KiB is refused, and passes as it came, however it was split (all
       at once, its method went out twice). */
    {
        size_t n = 70000;
        char *big = malloc(n + 64);

        memcpy(big, "GET http://h/", 13);
        memset(big + 13, 'a', n);
        strcpy(big + 13 + n, " HTTP/1.1\r\nHost: h\r\n\r\n");
        for (size_t step = 0; step <= 4096; step += 1000) {
            a = feed_all(big, step, &ra);
            CHECK_EQ_INT(ra, 1);
            CHECK(strcmp(a, big) == 0);
            free(a);
        }
        free(big);
    }
    /* Port 0 is no destination. */
    CHECK_EQ_INT(rewrite_parse_http_url("http://h:0/", host, sizeof(host), &port), -EINVAL);
}

/* A client's CONNECT to its proxy, and the proxy's answer, as mitmrec, mitmrec -r and
   mitmreplay read them: whole, cut anywhere, or not one at all. */
static void test_connect_heads(void)
{
    static const char head[] = "CONNECT api.example.test:8443 HTTP/1.1\r\n"
                               "Host: api.example.test:8443\r\n"
                               "Proxy-Authorization: Basic dTpw\r\n\r\n";
    static const char answer[] = "HTTP/1.0 200 Connection established\r\n"
                                 "Proxy-agent: tinyproxy/1.11.1\r\n\r\n";
    char host[256], buf[512];
    uint16_t port = 0;
    int status = -1;
    size_t n = sizeof(head) - 1;

    /* Whole, with bytes behind it (a ClientHello): its length. */
    memcpy(buf, head, n);
    memcpy(buf + n, "\x16\x03\x01", 3);
    CHECK_EQ_INT(rewrite_connect_head((const uint8_t *)buf, n + 3, host, sizeof(host), &port),
                 (long)n);
    CHECK_EQ_STR(host, "api.example.test");
    CHECK_EQ_INT(port, 8443);
    /* Every prefix may still become one. */
    for (size_t k = 0; k < n; k++)
        CHECK_EQ_INT(rewrite_connect_head((const uint8_t *)head, k, host, sizeof(host), &port), 0);
    CHECK_EQ_INT(rewrite_connect_head((const uint8_t *)"CONNECT [::1]:443 HTTP/1.0\r\n\r\n", 30,
                                      host, sizeof(host), &port),
                 30);
    CHECK_EQ_STR(host, "::1");
    CHECK_EQ_INT(port, 443);
    /* Not one: another method, a lower-case one, a target with no port, no target. */
    CHECK_EQ_INT(rewrite_connect_head((const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18, host,
                                      sizeof(host), &port),
                 -EINVAL);
    CHECK_EQ_INT(rewrite_connect_head((const uint8_t *)"connect a:1 HTTP/1.1\r\n\r\n", 24, host,
                                      sizeof(host), &port),
                 -EINVAL);
    CHECK_EQ_INT(rewrite_connect_head((const uint8_t *)"CONNECT a HTTP/1.1\r\n\r\n", 22, host,
                                      sizeof(host), &port),
                 -EINVAL);
    CHECK_EQ_INT(
        rewrite_connect_head((const uint8_t *)"CONNECT \r\n\r\n", 12, host, sizeof(host), &port),
        -EINVAL);
    CHECK_EQ_INT(
        rewrite_connect_head((const uint8_t *)"\x16\x03\x01", 3, host, sizeof(host), &port),
        -EINVAL);
    /* A request line too long to be one. */
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "CONNECT ", 8);
    memcpy(buf + sizeof(buf) - 4, "\r\n\r\n", 4);
    CHECK_EQ_INT(rewrite_connect_head((const uint8_t *)buf, sizeof(buf), host, sizeof(host), &port),
                 -EINVAL);

    n = sizeof(answer) - 1;
    CHECK_EQ_INT(rewrite_answer_head((const uint8_t *)answer, n, &status), n);
    CHECK_EQ_INT(status, 200);
    for (size_t k = 0; k < n; k++)
        CHECK_EQ_INT(rewrite_answer_head((const uint8_t *)answer, k, &status), 0);
    {
        static const char refusal[] = "HTTP/1.1 407 Proxy Authentication Required\r\n"
                                      "Content-Length: 3\r\n\r\nabc";
        static const char other[] = "SSH-2.0-x\r\n\r\n";

        CHECK_EQ_INT(rewrite_answer_head((const uint8_t *)refusal, sizeof(refusal) - 1, &status),
                     sizeof(refusal) - 4);
        CHECK_EQ_INT(status, 407);
        CHECK_EQ_INT(rewrite_answer_head((const uint8_t *)other, sizeof(other) - 1, &status),
                     sizeof(other) - 1);
        CHECK_EQ_INT(status, 0);
    }
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
    test_connect_heads();
    test_fuzz_findings();
    return check_done();
}

/* SPDX-License-Identifier: MIT */
/* formats/harread.c: a HAR back into exchanges, and har_url_split. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "harread.h"

typedef struct got {
    http_exchange_t *ex[16];
    char host[16][64];
    char scheme[16][8];
    uint16_t port[16];
    char ip[16][64];
    size_t n;
    int fail_at; /* the callback fails on this entry (1-based), 0: never */
} got_t;

static int take(void *opaque, har_read_entry_t *e)
{
    got_t *g = opaque;

    if (g->fail_at && (int)g->n + 1 == g->fail_at) {
        http_exchange_free(e->ex);
        return -EIO;
    }
    if (g->n == 16) {
        http_exchange_free(e->ex);
        return 0;
    }
    g->ex[g->n] = e->ex;
    snprintf(g->host[g->n], sizeof(g->host[0]), "%s", e->host);
    snprintf(g->scheme[g->n], sizeof(g->scheme[0]), "%s", e->scheme);
    snprintf(g->ip[g->n], sizeof(g->ip[0]), "%s", e->server_ip ? e->server_ip : "");
    g->port[g->n] = e->port;
    g->n++;
    return 0;
}

static void release(got_t *g)
{
    for (size_t i = 0; i < g->n; i++)
        http_exchange_free(g->ex[i]);
    memset(g, 0, sizeof(*g));
}

static int read_text(const char *text, got_t *g, har_read_stats_t *st)
{
    return har_read(text, strlen(text), take, g, st);
}

/* A HAR around the given entries (JSON text, comma-separated). */
static char *har(const char *entries)
{
    static const char head[] = "{\"log\":{\"version\":\"1.2\",\"creator\":{\"name\":\"t\","
                               "\"version\":\"1\"},\"entries\":[";
    char *s = malloc(strlen(head) + strlen(entries) + 8);

    sprintf(s, "%s%s]}}", head, entries);
    return s;
}

#define ENTRY(url, extra_rq, resp_status, content)                                                 \
    "{\"startedDateTime\":\"2024-06-01T12:00:00.250+02:00\",\"time\":3,"                           \
    "\"request\":{\"method\":\"GET\",\"url\":\"" url "\",\"httpVersion\":\"HTTP/1.1\","            \
    "\"headers\":[{\"name\":\"Host\",\"value\":\"h\"}]" extra_rq "},"                              \
    "\"response\":{\"status\":" resp_status ",\"statusText\":\"OK\","                              \
    "\"httpVersion\":\"h2\",\"headers\":[{\"name\":\"a\",\"value\":\"b\"}],"                       \
    "\"content\":" content "},"                                                                    \
    "\"timings\":{\"blocked\":-1,\"dns\":-1,\"connect\":-1,\"send\":1,\"wait\":2,"                 \
    "\"receive\":1e300},\"serverIPAddress\":\"::1\"}"

static void body_is(const http_msg_t *m, const char *want, size_t wlen)
{
    const uint8_t *d;
    size_t len;
    uint8_t *owned = NULL;

    CHECK_EQ_INT(http_msg_body(m, &d, &len, &owned), 0);
    CHECK_EQ_INT(len, wlen);
    CHECK(len == wlen && memcmp(d, want, wlen) == 0);
    free(owned);
}

static void test_entries(void)
{
    got_t g = {0};
    har_read_stats_t st;
    char *t = har(
        ENTRY("https://Example.ORG:8443/a/b?x=1", "", "200",
              "{\"size\":5,\"mimeType\":\"text/plain\",\"text\":\"hello\"}") ","
        /* base64 with a line break and no padding: "hi!!!" */
        ENTRY(
            "http://[::1]/p",
            ",\"postData\":{\"mimeType\":\"x\",\"text\":\"cG9z\\ndA\",\"encoding\":\"base64\"}",
            "201",
            "{\"size\":5,\"mimeType\":\"x\",\"text\":\"aGkh\\r\\nISE\",\"encoding\":\"base64\"}") ","
        /* mitmrec's own postData: "_encoding" (HAR 1.2 has no encoding there) */
        ENTRY("http://x/q",
              ",\"postData\":{\"mimeType\":\"x\",\"text\":\"AP8K\",\"_encoding\":\"base64\"}",
              "200", "{\"size\":0,\"mimeType\":\"x\"}") ","
        /* no response: a browser's blocked request */
        ENTRY("https://x/", "", "0", "{\"size\":0,\"mimeType\":\"x\"}") ","
        /* not http(s), a bad port, a status out of range, bad base64 */
        ENTRY("ftp://x/", "", "200", "{\"size\":0,\"mimeType\":\"x\"}") "," ENTRY("http://x:99999/", "", "200", "{\"size\":0,\"mimeType\":\"x\"}") "," ENTRY(
            "http://x:8a/", "", "200",
            "{\"size\":0,\"mimeType\":\"x\"}") "," ENTRY("http://x/", "", "1000",
                                                         "{\"size\":0,\"mimeType\":"
                                                         "\"x\"}") "," ENTRY("http://x/", "", "200",
                                                                             "{\"size\":"
                                                                             "0,"
                                                                             "\"mimeType"
                                                                             "\":\"x\","
                                                                             "\"text\":"
                                                                             "\"a=b\","
                                                                             "\"encoding"
                                                                             "\":"
                                                                             "\"base64\""
                                                                             "}") "," ENTRY("http:/"
                                                                                            "/x/",
                                                                                            "",
                                                                                            "200",
                                                                                            "{\"siz"
                                                                                            "e\":0,"
                                                                                            "\"mime"
                                                                                            "Type\""
                                                                                            ":\"x\""
                                                                                            ",\"tex"
                                                                                            "t\":"
                                                                                            "\"a\","
                                                                                            "\"enco"
                                                                                            "ding\""
                                                                                            ":\"bas"
                                                                                            "e64\""
                                                                                            "}"));

    CHECK_EQ_INT(read_text(t, &g, &st), 0);
    CHECK_EQ_INT(st.entries, 3);
    CHECK_EQ_INT(st.no_response, 1);
    CHECK_EQ_INT(st.unusable, 6);
    CHECK_EQ_INT(g.n, 3);
    if (g.n == 3) {
        http_exchange_t *a = g.ex[0], *b = g.ex[1];

        CHECK_EQ_STR(g.scheme[0], "https");
        CHECK_EQ_STR(g.host[0], "example.org");
        CHECK_EQ_INT(g.port[0], 8443);
        CHECK_EQ_STR(g.ip[0], "::1");
        CHECK_EQ_STR(a->method, "GET");
        CHECK_EQ_STR(a->target, "/a/b?x=1");
        CHECK_EQ_INT(a->status, 200);
        CHECK_EQ_STR(a->reason, "OK");
        CHECK_EQ_INT(a->req_major, 1);
        CHECK_EQ_INT(a->req_minor, 1);
        CHECK_EQ_INT(a->resp_major, 2);
        CHECK_EQ_STR(http_msg_header(&a->req, "host"), "h");
        CHECK_EQ_STR(http_msg_header(&a->resp, "a"), "b");
        body_is(&a->resp, "hello", 5);
        /* 2024-06-01T10:00:00.25Z */
        CHECK_EQ_INT(a->t_req_start, 1717236000250000ull);
        CHECK_EQ_INT(a->t_req_end, a->t_req_start + 1000);
        CHECK_EQ_INT(a->t_resp_start, a->t_req_end + 2000);
        /* 1e300 ms is taken as 1e9 ms */
        CHECK_EQ_INT(a->t_resp_end, a->t_resp_start + 1000000000000ull);

        CHECK_EQ_STR(g.scheme[1], "http");
        CHECK_EQ_STR(g.host[1], "::1");
        CHECK_EQ_INT(g.port[1], 80);
        CHECK_EQ_STR(b->target, "/p");
        CHECK_EQ_INT(b->status, 201);
        body_is(&b->req, "post", 4);
        body_is(&b->resp, "hi!!!", 5);
        body_is(&g.ex[2]->req, "\0\xff\n", 3);
    }
    release(&g);
    free(t);
}

static void test_dates(void)
{
    static const struct {
        const char *date;
        unsigned long long usec;
    } cases[] = {
        {"2024-06-01T12:00:00.250+02:00", 1717236000250000ull},
        {"2024-06-01T10:00:00Z", 1717236000000000ull},
        {"2024-06-01T08:30:00-01:30", 1717236000000000ull},
        {"1969-12-31T23:59:59Z", 0},
        {"1970-01-01T00:30:00+01:00", 0},
        {"2024-13-01T00:00:00Z", 0},
        {"not a date", 0},
        {"99999-01-01T00:00:00Z", 0},
        {"2024-06-01T10:00:61Z", 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        got_t g = {0};
        char e[1024], *t;

        snprintf(e, sizeof(e),
                 "{\"startedDateTime\":\"%s\",\"request\":{\"method\":\"GET\",\"url\":"
                 "\"http://x/\"},\"response\":{\"status\":200}}",
                 cases[i].date);
        t = har(e);
        CHECK_EQ_INT(read_text(t, &g, NULL), 0);
        CHECK_EQ_INT(g.n, 1);
        if (g.n == 1 && g.ex[0]->t_req_start != cases[i].usec)
            fprintf(stderr, "date %s: %llu\n", cases[i].date,
                    (unsigned long long)g.ex[0]->t_req_start);
        CHECK(g.n == 1 && g.ex[0]->t_req_start == cases[i].usec);
        release(&g);
        free(t);
    }
}

static void test_not_har(void)
{
    static const char *const bad[] = {"",
                                      "{",
                                      "[]",
                                      "{\"log\":{}}",
                                      "{\"log\":{\"entries\":{}}}",
                                      "null",
                                      "{\"log\":{\"entries\":[1,\"x\",null,{}]"};
    got_t g = {0};
    har_read_stats_t st;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_EQ_INT(read_text(bad[i], &g, &st), -EBADMSG);
    /* Entries that are not objects are skipped, not fatal. */
    CHECK_EQ_INT(read_text("{\"log\":{\"entries\":[1,\"x\",null,{}]}}", &g, &st), 0);
    CHECK_EQ_INT(st.entries, 0);
    CHECK_EQ_INT(st.no_response, 4);
    CHECK_EQ_INT(g.n, 0);
}

static void test_callback_error(void)
{
    got_t g = {0};
    har_read_stats_t st;
    char *t = har(ENTRY("http://a/", "", "200", "{\"size\":0,\"mimeType\":\"x\"}") "," ENTRY(
        "http://b/", "", "200",
        "{\"size\":0,\"mimeType\":\"x\"}") "," ENTRY("http://c/", "", "200",
                                                     "{\"size\":0,\"mimeType\":\"x\"}"));

    g.fail_at = 2;
    CHECK_EQ_INT(read_text(t, &g, &st), -EIO);
    CHECK_EQ_INT(g.n, 1);
    release(&g);
    free(t);
}

static void test_url_split(void)
{
    static const struct {
        const char *url;
        int rc;
        const char *scheme, *host;
        int port;
        const char *path;
    } cases[] = {
        {"http://a.b/", 0, "http", "a.b", 80, "/"},
        {"HTTPS://A.B", 0, "https", "a.b", 443, "/"},
        {"https://a.b:8443/?q", 0, "https", "a.b", 8443, "/?q"},
        {"http://a.b:/x", 0, "http", "a.b", 80, "/x"},
        {"http://[::1]:81/x", 0, "http", "::1", 81, "/x"},
        {"http://[::1/x", -EINVAL, NULL, NULL, 0, NULL},
        {"http://[::1]x/", -EINVAL, NULL, NULL, 0, NULL},
        {"http://a:0/", -EINVAL, NULL, NULL, 0, NULL},
        {"http://a:65536/", -EINVAL, NULL, NULL, 0, NULL},
        {"http://a:99999999999999999999/", -EINVAL, NULL, NULL, 0, NULL},
        {"http:///x", -EINVAL, NULL, NULL, 0, NULL},
        {"://a/", -EINVAL, NULL, NULL, 0, NULL},
        {"/just/a/path", -EINVAL, NULL, NULL, 0, NULL},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char scheme[16], host[64];
        uint16_t port = 0;
        const char *path = NULL;
        int rc =
            har_url_split(cases[i].url, scheme, sizeof(scheme), host, sizeof(host), &port, &path);

        if (rc != cases[i].rc)
            fprintf(stderr, "url %s: rc %d\n", cases[i].url, rc);
        CHECK_EQ_INT(rc, cases[i].rc);
        if (rc == 0 && cases[i].rc == 0) {
            CHECK_EQ_STR(scheme, cases[i].scheme);
            CHECK_EQ_STR(host, cases[i].host);
            CHECK_EQ_INT(port, cases[i].port);
            CHECK_EQ_STR(path, cases[i].path);
        }
    }
    {
        char scheme[4], host[4];
        uint16_t port;
        const char *path;
        CHECK_EQ_INT(
            har_url_split("https://a/", scheme, sizeof(scheme), host, sizeof(host), &port, &path),
            -EINVAL);
        CHECK_EQ_INT(
            har_url_split("http://abcd/", scheme, sizeof(scheme), host, sizeof(host), &port, &path),
            -EINVAL);
    }
}

/* The Chrome export in fixtures/replay (path from argv[1] or the source tree). */
static void test_fixture(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *text;
    long n;
    got_t g = {0};
    har_read_stats_t st;

    CHECK(f != NULL);
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    text = malloc((size_t)n + 1);
    CHECK(fread(text, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    CHECK_EQ_INT(har_read(text, (size_t)n, take, &g, &st), 0);
    CHECK_EQ_INT(st.entries, 4);
    CHECK_EQ_INT(g.n, 4);
    release(&g);
    free(text);
}

/* Bodies the HAR holds only the start of: "_truncated" (mitmrec's writer), or a content
   text shorter than content.size; counted, the first named. */
#define CONTENT(size, extra) "{\"size\":" size ",\"mimeType\":\"x\",\"text\":\"hello\"" extra "}"
static const char whole[] = ENTRY("http://x/whole", "", "200", CONTENT("5", ""));
static const char short_text[] = ENTRY("http://x/short", "", "200", CONTENT("9", ""));
static const char marked[] =
    ENTRY("http://x/marked", "", "200", CONTENT("5", ",\"_truncated\":true"));
static const char post[] =
    ENTRY("http://x/post", ",\"postData\":{\"text\":\"ab\",\"_truncated\":true}", "200",
          CONTENT("5", ""));
/* no text: nothing says it is short */
static const char no_text[] = ENTRY("http://x/notext", "", "200", "{\"size\":9}");

static void test_truncated(void)
{
    got_t g = {0};
    har_read_stats_t st;
    char list[4096], *t;

    snprintf(list, sizeof(list), "%s,%s,%s,%s,%s", whole, short_text, marked, post, no_text);
    t = har(list);
    CHECK_EQ_INT(read_text(t, &g, &st), 0);
    CHECK_EQ_INT(st.entries, 5);
    CHECK_EQ_INT(st.truncated, 3);
    CHECK_EQ_STR(st.truncated_example, "GET http://x/short");
    release(&g);
    free(t);
}

int main(int argc, char **argv)
{
    const char *src = getenv("top_srcdir");
    char fixture[4096];

    snprintf(fixture, sizeof(fixture), "%s/fixtures/replay/chrome-export.har",
             argc > 1 ? argv[1]
             : src    ? src
                      : ".");
    test_entries();
    test_truncated();
    test_dates();
    test_not_har();
    test_callback_error();
    test_url_split();
    test_fixture(fixture);
    return check_done();
}

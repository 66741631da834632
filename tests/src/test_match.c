/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "match.h"
#include "refresh.h"

static match_req_t req(const char *method, const char *host, unsigned port, const char *target,
                       const char *body)
{
    match_req_t r;

    memset(&r, 0, sizeof(r));
    r.scheme = "https";
    r.method = method;
    r.host = host;
    r.port = (uint16_t)port;
    r.target = target;
    r.body = (const uint8_t *)body;
    r.body_len = body ? strlen(body) : 0;
    return r;
}

/* Builds a table from the four recorded requests below, with options o. */
static match_t *table(const match_opts_t *o)
{
    match_t *m = match_new(o);
    match_req_t r;

    r = req("GET", "api.test", 443, "/items?page=1&ts=100", NULL);
    CHECK_EQ_INT(match_add(m, &r, 10), 0);
    r = req("GET", "api.test", 443, "/items?page=1&ts=100", NULL);
    CHECK_EQ_INT(match_add(m, &r, 11), 0);
    r = req("POST", "api.test", 443, "/login", "user=a&nonce=1");
    CHECK_EQ_INT(match_add(m, &r, 12), 0);
    r = req("GET", "other.test", 8443, "/x", NULL);
    CHECK_EQ_INT(match_add(m, &r, 13), 0);
    return m;
}

static int find(match_t *m, match_req_t r, char *why, size_t len)
{
    size_t id = 0;
    int rc = match_find(m, &r, &id, why, len);
    return rc < 0 ? rc : (int)id;
}

static void test_defaults(void)
{
    match_opts_t o = {0};
    match_t *m = table(&o);
    char why[512];

    /* Identical requests: in order, then the last one again. */
    CHECK_EQ_INT(find(m, req("GET", "api.test", 443, "/items?page=1&ts=100", NULL), why, 512), 10);
    CHECK_EQ_INT(find(m, req("GET", "API.test", 443, "/items?page=1&ts=100", NULL), why, 512), 11);
    CHECK_EQ_INT(find(m, req("GET", "api.test", 443, "/items?page=1&ts=100", NULL), why, 512), 11);
    /* Each part counts. */
    CHECK_EQ_INT(find(m, req("GET", "api.test", 443, "/items?page=1&ts=200", NULL), why, 512),
                 -ENOENT);
    CHECK(strstr(why, "differs in query") != NULL);
    CHECK_EQ_INT(find(m, req("GET", "api.test", 443, "/items?ts=100&page=1", NULL), why, 512),
                 -ENOENT);
    CHECK_EQ_INT(find(m, req("HEAD", "api.test", 443, "/items?page=1&ts=100", NULL), why, 512),
                 -ENOENT);
    CHECK(strstr(why, "method") != NULL);
    CHECK_EQ_INT(find(m, req("POST", "api.test", 443, "/login", "user=a&nonce=2"), why, 512),
                 -ENOENT);
    CHECK(strstr(why, "body") != NULL);
    CHECK(strstr(why, "POST https://api.test/login") != NULL);
    CHECK_EQ_INT(find(m, req("GET", "other.test", 443, "/x", NULL), why, 512), -ENOENT);
    CHECK(strstr(why, "(differs in port)") != NULL);
    CHECK_EQ_INT(find(m, req("GET", "third.test", 8443, "/x", NULL), why, 512), -ENOENT);
    CHECK(strstr(why, "(differs in host)") != NULL);
    match_free(m);
}

static void test_options(void)
{
    const char *params[] = {"ts"}, *payload[] = {"nonce"}, *hdrs[] = {"X-Api-Key"};
    match_opts_t o = {0};
    match_t *m;
    char why[512];
    match_req_t r;
    http_header_t h[2] = {{"Content-Type", "application/x-www-form-urlencoded"},
                          {"X-Api-Key", "k1"}};

    o.ignore_params = params;
    o.nignore_params = 1;
    m = table(&o);
    CHECK_EQ_INT(find(m, req("GET", "api.test", 443, "/items?page=1&ts=999", NULL), why, 512), 10);
    CHECK_EQ_INT(find(m, req("GET", "api.test", 443, "/items?page=2&ts=999", NULL), why, 512),
                 -ENOENT);
    match_free(m);

    memset(&o, 0, sizeof(o));
    o.ignore_payload_params = payload;
    o.nignore_payload_params = 1;
    m = match_new(&o);
    r = req("POST", "api.test", 443, "/login", "user=a&nonce=1");
    r.headers = h;
    r.nheaders = 1;
    match_add(m, &r, 1);
    r.body = (const uint8_t *)"user=a&nonce=7";
    CHECK_EQ_INT(find(m, r, why, 512), 1);
    r.body = (const uint8_t *)"user=b&nonce=7";
    CHECK_EQ_INT(find(m, r, why, 512), -ENOENT);
    match_free(m);

    memset(&o, 0, sizeof(o));
    o.ignore_body = 1;
    m = table(&o);
    CHECK_EQ_INT(find(m, req("POST", "api.test", 443, "/login", "anything"), why, 512), 12);
    match_free(m);

    memset(&o, 0, sizeof(o));
    o.ignore_host = 1;
    m = table(&o);
    CHECK_EQ_INT(find(m, req("GET", "third.test", 8443, "/x", NULL), why, 512), 13);
    match_free(m);

    memset(&o, 0, sizeof(o));
    o.ignore_port = 1;
    m = table(&o);
    CHECK_EQ_INT(find(m, req("GET", "other.test", 1, "/x", NULL), why, 512), 13);
    match_free(m);

    memset(&o, 0, sizeof(o));
    o.use_headers = hdrs;
    o.nuse_headers = 1;
    m = match_new(&o);
    r = req("GET", "api.test", 443, "/me", NULL);
    r.headers = h;
    r.nheaders = 2;
    match_add(m, &r, 5);
    CHECK_EQ_INT(find(m, r, why, 512), 5);
    r.nheaders = 1; /* no X-Api-Key */
    CHECK_EQ_INT(find(m, r, why, 512), -ENOENT);
    CHECK(strstr(why, "headers") != NULL);
    match_free(m);

    memset(&o, 0, sizeof(o));
    o.no_reuse = 1;
    m = table(&o);
    CHECK_EQ_INT(find(m, req("GET", "other.test", 8443, "/x", NULL), why, 512), 13);
    CHECK_EQ_INT(find(m, req("GET", "other.test", 8443, "/x", NULL), why, 512), -ENOENT);
    CHECK(strstr(why, "--no-reuse") != NULL);
    match_free(m);
}

static void test_refresh(void)
{
    char out[256];
    time_t t;

    CHECK_EQ_INT(refresh_parse_date("Sun, 06 Nov 1994 08:49:37 GMT", &t), 0);
    CHECK_EQ_INT(t, 784111777);
    CHECK_EQ_INT(refresh_parse_date("Sunday, 06-Nov-94 08:49:37 GMT", &t), 0);
    CHECK_EQ_INT(t, 784111777);
    CHECK_EQ_INT(refresh_parse_date("Sun Nov  6 08:49:37 1994", &t), 0);
    CHECK_EQ_INT(t, 784111777);
    CHECK_EQ_INT(refresh_parse_date("0", &t), -EINVAL);
    CHECK_EQ_INT(refresh_header("Date", "Sun, 06 Nov 1994 08:49:37 GMT", 86400, out, sizeof(out)),
                 1);
    CHECK_EQ_STR(out, "Mon, 07 Nov 1994 08:49:37 GMT");
    CHECK_EQ_INT(refresh_header("expires", "0", 86400, out, sizeof(out)), 0);
    CHECK_EQ_INT(refresh_header("Content-Type", "Sun, 06 Nov 1994 08:49:37 GMT", 1, out, 256), 0);
    CHECK_EQ_INT(refresh_header("Set-Cookie",
                                "id=1; Path=/; expires=Wed, 21-Oct-2015 07:28:00 GMT; Secure", 3600,
                                out, sizeof(out)),
                 1);
    CHECK_EQ_STR(out, "id=1; Path=/; expires=Wed, 21 Oct 2015 08:28:00 GMT; Secure");
    CHECK_EQ_INT(refresh_header("Set-Cookie", "id=1; Path=/", 3600, out, sizeof(out)), 0);
}

int main(void)
{
    test_defaults();
    test_options();
    test_refresh();
    return check_done();
}

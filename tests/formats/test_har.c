/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the HAR writer and Content-Encoding decoding. Exchanges are
 * built by hand (bodies compressed here with zlib), written to a memory sink
 * and to a file, parsed back with cJSON, and checked against the HAR 1.2
 * schema with tests/har-validate.js when node and har-validator are there.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "content.h"
#include "har.h"
#include "harmsg.h"
#include "zdeflate.h"

#define T0 1795727442123456ull /* 2026-11-26T21:10:42.123456Z */
#define DEFAULT_NODE_PATH "/usr/local/lib/mitmrec-test/node_modules"

/* ---- sinks ---- */

typedef struct membuf {
    char *p;
    size_t len, cap, pos;
    int tails;
} membuf_t;

static int mem_put(membuf_t *m, const void *buf, size_t len)
{
    if (m->pos + len + 1 > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        char *p;

        while (cap < m->pos + len + 1)
            cap *= 2;
        p = realloc(m->p, cap);
        if (!p)
            return -ENOMEM;
        m->p = p;
        m->cap = cap;
    }
    memcpy(m->p + m->pos, buf, len);
    if (m->pos + len > m->len)
        m->len = m->pos + len;
    m->p[m->len] = '\0';
    return 0;
}

static int mem_write(void *opaque, const void *buf, size_t len)
{
    membuf_t *m = opaque;
    int r = mem_put(m, buf, len);

    if (r == 0)
        m->pos += len;
    return r;
}

static int mem_write_tail(void *opaque, const void *buf, size_t len)
{
    membuf_t *m = opaque;

    m->tails++;
    return mem_put(m, buf, len); /* the next write overwrites it */
}

static int file_write(void *opaque, const void *buf, size_t len)
{
    return fwrite(buf, 1, len, opaque) == len ? 0 : -EIO;
}

static int file_write_tail(void *opaque, const void *buf, size_t len)
{
    FILE *f = opaque;

    if (fwrite(buf, 1, len, f) != len || fflush(f) != 0)
        return -EIO;
    return fseek(f, -(long)len, SEEK_CUR) == 0 ? 0 : -EIO;
}

static int fail_write(void *opaque, const void *buf, size_t len)
{
    int *budget = opaque;

    if (*budget < (int)len)
        return -ENOSPC;
    *budget -= (int)len;
    return 0;
}

/* ---- building exchanges ---- */

static http_exchange_t *mk(const char *method, const char *target, int status, const char *reason)
{
    http_exchange_t *ex = http_exchange_new();

    http_strset(&ex->method, method, strlen(method));
    http_strset(&ex->target, target, strlen(target));
    ex->req_major = 1;
    ex->req_minor = 1;
    ex->req.headers_size = 100 + (int64_t)strlen(target);
    ex->req.complete = 1;
    ex->t_req_start = T0;
    ex->t_req_end = T0 + 1500;
    if (status) {
        ex->status = status;
        http_strset(&ex->reason, reason, strlen(reason));
        ex->resp_major = 1;
        ex->resp_minor = 1;
        ex->resp.headers_size = 150;
        ex->resp.complete = 1;
        ex->t_resp_start = T0 + 21500;
        ex->t_resp_end = T0 + 25250;
    }
    return ex;
}

static void hdr(http_msg_t *m, const char *name, const char *value)
{
    http_msg_add_header(m, name, strlen(name), value, strlen(value));
}

static void body(http_msg_t *m, const void *data, size_t len)
{
    http_msg_add_body(m, data, len, 16 * 1024 * 1024);
    m->wire_body_size = len;
}

/* ---- reading the HAR back ---- */

static cJSON *path(cJSON *root, const char *p)
{
    char key[64];
    cJSON *cur = root;

    while (cur && *p) {
        size_t n = strcspn(p, ".");

        memcpy(key, p, n);
        key[n] = '\0';
        if (key[0] >= '0' && key[0] <= '9')
            cur = cJSON_GetArrayItem(cur, atoi(key));
        else
            cur = cJSON_GetObjectItemCaseSensitive(cur, key);
        p += n;
        if (*p == '.')
            p++;
    }
    return cur;
}

static const char *pstr(cJSON *root, const char *p)
{
    cJSON *it = path(root, p);

    return cJSON_IsString(it) ? it->valuestring : NULL;
}

static double pnum(cJSON *root, const char *p)
{
    cJSON *it = path(root, p);

    return cJSON_IsNumber(it) ? it->valuedouble : -12345;
}

static int has(cJSON *root, const char *p)
{
    return path(root, p) != NULL;
}

/* The name/value pair called name in an array of them, or NULL. */
static const char *nv(cJSON *arr, const char *name)
{
    cJSON *it;

    cJSON_ArrayForEach(it, arr)
    {
        cJSON *n = cJSON_GetObjectItemCaseSensitive(it, "name");

        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0) {
            cJSON *v = cJSON_GetObjectItemCaseSensitive(it, "value");

            return cJSON_IsString(v) ? v->valuestring : NULL;
        }
    }
    return NULL;
}

static cJSON *nv_item(cJSON *arr, const char *name)
{
    cJSON *it;

    cJSON_ArrayForEach(it, arr)
    {
        cJSON *n = cJSON_GetObjectItemCaseSensitive(it, "name");

        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
            return it;
    }
    return NULL;
}

/* ---- the validator ---- */

static const char *validator_script(char *buf, size_t cap)
{
    const char *top = getenv("top_srcdir");

    if (top && *top) {
        snprintf(buf, cap, "%s/tests/har-validate.js", top);
    } else {
        /* __FILE__ is .../tests/formats/test_har.c */
        const char *f = __FILE__;
        const char *slash = strstr(f, "formats/test_har.c");
        int n = slash ? (int)(slash - f) : 0;

        snprintf(buf, cap, "%.*shar-validate.js", n, f);
    }
    return access(buf, R_OK) == 0 ? buf : NULL;
}

static int validator_available(void)
{
    if (!getenv("NODE_PATH"))
        setenv("NODE_PATH", DEFAULT_NODE_PATH, 1);
    return system("node -e 'require(\"har-validator\")' >/dev/null 2>&1") == 0;
}

/* 1 valid, 0 invalid, -1 could not run. */
static int validate(const char *file)
{
    static int avail = -1;
    char script[4096], cmd[8192];
    const char *s;

    if (avail < 0) {
        avail = validator_available();
        if (!avail)
            printf("note: node or har-validator not found; schema validation skipped\n");
    }
    if (!avail)
        return -1;
    s = validator_script(script, sizeof(script));
    if (!s) {
        printf("note: tests/har-validate.js not found; schema validation skipped\n");
        return -1;
    }
    snprintf(cmd, sizeof(cmd), "node '%s' '%s'", s, file);
    fflush(stdout);
    return system(cmd) == 0;
}

/* ---- content_decode ---- */

static void test_content(void)
{
    static const char text[] = "The quick brown fox jumps over the lazy dog. "
                               "The quick brown fox jumps over the lazy dog.";
    size_t tl = strlen(text), zl, zl2;
    uint8_t *z, *z2, *out;
    size_t outlen;
    int trunc;

    z = zdeflate(text, tl, 31, &zl);
    CHECK_EQ_INT(content_decode("gzip", z, zl, 1 << 20, &out, &outlen, &trunc), 0);
    CHECK(outlen == tl && memcmp(out, text, tl) == 0 && !trunc);
    free(out);
    CHECK_EQ_INT(content_decode(" X-GZIP ", z, zl, 1 << 20, &out, &outlen, &trunc), 0);
    CHECK_EQ_INT(outlen, tl);
    free(out);
    /* max_out: the first bytes, flagged. */
    CHECK_EQ_INT(content_decode("gzip", z, zl, 10, &out, &outlen, &trunc), 0);
    CHECK(outlen == 10 && memcmp(out, text, 10) == 0 && trunc);
    free(out);
    /* Exactly max_out: not truncated. */
    CHECK_EQ_INT(content_decode("gzip", z, zl, tl, &out, &outlen, &trunc), 0);
    CHECK(outlen == tl && !trunc);
    free(out);
    /* Input cut short (a body past max_body): what there is, flagged. */
    CHECK_EQ_INT(content_decode("gzip", z, zl - 12, 1 << 20, &out, &outlen, &trunc), 0);
    CHECK(trunc && outlen <= tl && memcmp(out, text, outlen) == 0);
    free(out);
    /* Two gzip members back to back, as `cat a.gz b.gz` makes. */
    {
        uint8_t *two = malloc(zl * 2);

        memcpy(two, z, zl);
        memcpy(two + zl, z, zl);
        CHECK_EQ_INT(content_decode("gzip", two, zl * 2, 1 << 20, &out, &outlen, &trunc), 0);
        CHECK(outlen == 2 * tl && memcmp(out + tl, text, tl) == 0);
        free(out);
        free(two);
    }
    /* Corrupt data. */
    z[zl / 2] ^= 0x55;
    z[zl / 2 + 1] ^= 0xaa;
    z[12] ^= 0xff;
    {
        int r = content_decode("gzip", z, zl, 1 << 20, &out, &outlen, &trunc);

        CHECK_EQ_INT(r, -EBADMSG);
        CHECK(out == NULL);
    }
    free(z);

    /* deflate: zlib-wrapped and raw. */
    z = zdeflate(text, tl, 15, &zl);
    CHECK_EQ_INT(content_decode("deflate", z, zl, 1 << 20, &out, &outlen, &trunc), 0);
    CHECK(outlen == tl && memcmp(out, text, tl) == 0);
    free(out);
    free(z);
    z = zdeflate(text, tl, -15, &zl);
    CHECK_EQ_INT(content_decode("Deflate", z, zl, 1 << 20, &out, &outlen, &trunc), 0);
    CHECK(outlen == tl && memcmp(out, text, tl) == 0);
    free(out);

    /* A list is undone last first: deflate was applied, then gzip. */
    z2 = zdeflate(z, zl, 31, &zl2);
    CHECK_EQ_INT(content_decode("deflate, gzip", z2, zl2, 1 << 20, &out, &outlen, &trunc), 0);
    CHECK(outlen == tl && memcmp(out, text, tl) == 0);
    free(out);
    CHECK(content_decode("gzip, deflate", z2, zl2, 1 << 20, &out, &outlen, &trunc) < 0);
    free(z2);
    free(z);

    CHECK_EQ_INT(content_decode("identity", (const uint8_t *)"abc", 3, 100, &out, &outlen, &trunc),
                 0);
    CHECK(outlen == 3 && memcmp(out, "abc", 3) == 0);
    free(out);
    CHECK_EQ_INT(content_decode("identity", (const uint8_t *)"abcdef", 6, 4, &out, &outlen, &trunc),
                 0);
    CHECK(outlen == 4 && trunc);
    free(out);
    CHECK_EQ_INT(content_decode("gzip", NULL, 0, 100, &out, &outlen, &trunc), 0);
    CHECK(out != NULL && outlen == 0);
    free(out);
    /* br and zstd are undone too (tests/formats/test_content.c); LZW is not. */
    CHECK_EQ_INT(content_decode("compress", (const uint8_t *)"x", 1, 100, &out, &outlen, &trunc),
                 -ENOTSUP);
    CHECK_EQ_INT(
        content_decode("gzip, compress", (const uint8_t *)"x", 1, 100, &out, &outlen, &trunc),
        -ENOTSUP);

    /* A bomb stays within max_out. */
    {
        size_t big = 32 << 20;
        uint8_t *zeros = calloc(1, big);

        z = zdeflate(zeros, big, 31, &zl);
        free(zeros);
        CHECK(zl < 100000);
        CHECK_EQ_INT(content_decode("gzip", z, zl, 1 << 20, &out, &outlen, &trunc), 0);
        CHECK(outlen == 1 << 20 && trunc);
        free(out);
        free(z);
    }
}

/* ---- the HAR ---- */

typedef struct built {
    http_exchange_t *ex[16];
    har_entry_t e[16];
    size_t n;
    char *html;
    size_t html_len;
    char *big;
    size_t big_len;
} built_t;

static const char json_body[] = "{\"a\":[1,2,3],\"b\":\"\xe2\x82\xac\"}";
static const uint8_t png[] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff};

static void build(built_t *b)
{
    http_exchange_t *ex;
    har_entry_t *e;
    uint8_t *z;
    size_t zl;

    memset(b, 0, sizeof(*b));

    /* 0: GET over https, query, cookies, gzip HTML, process identity. */
    b->html = strdup("<!doctype html><title>caf\xc3\xa9</title><p>\"quoted\" \\ back\tslash\n"
                     "<p>repeat repeat repeat repeat repeat repeat repeat repeat</p>\n");
    b->html_len = strlen(b->html);
    ex = mk("GET", "/search?q=hello+world&lang=en&empty=&flag&enc=%C3%A9t%C3%A9#frag", 200, "OK");
    hdr(&ex->req, "Host", "example.com");
    hdr(&ex->req, "User-Agent", "curl/7.88.1");
    hdr(&ex->req, "Cookie", "sid=abc123; theme=dark");
    hdr(&ex->req, "Accept-Encoding", "gzip");
    /* Every kind of byte a header string can hold: escaped, copied, cleaned. */
    hdr(&ex->req, "X-Odd", "tab\there \"q\" back\\slash \x01\x1f caf\xc3\xa9 bad\xff end");
    hdr(&ex->resp, "Content-Type", "text/html; charset=utf-8");
    hdr(&ex->resp, "Content-Encoding", "gzip");
    hdr(&ex->resp, "Set-Cookie",
        "sid=new; Path=/; Domain=example.com; Expires=Wed, 21 Oct 2037 07:28:00 GMT; HttpOnly; "
        "Secure");
    hdr(&ex->resp, "Set-Cookie", "pref=1; Max-Age=3600");
    z = zdeflate(b->html, b->html_len, 31, &zl);
    body(&ex->resp, z, zl);
    free(z);
    e = &b->e[b->n];
    e->ex = ex;
    e->scheme = "https";
    e->host = "example.com";
    e->port = 443;
    e->server_ip = "93.184.216.34";
    e->connection = "7";
    e->blocked = 0.5;
    e->dns = -1;
    e->connect = 10;
    e->ssl = 6;
    e->has_pcapng = 1;
    e->pcapng_interface = 0;
    e->pcapng_frame = 12;
    e->pcapng_stream = 3;
    http_exchange_add_ws(ex, 1, T0 + 500000, 1, "hello \"ws\"", 10);
    http_exchange_add_ws(ex, 0, T0 + 750000, 2, png, sizeof(png));
    http_msg_add_trailer(&ex->resp, "Server-Timing", 13, "db;dur=53", 9);
    e->pid = 4242;
    e->process = "curl";
    e->exe = "/usr/bin/curl";
    e->cmdline = "curl -s https://example.com/";
    b->ex[b->n++] = ex;

    /* 1: POST form over http on a non-default port, no Host header; redirect. */
    ex = mk("POST", "/login", 302, "Found");
    hdr(&ex->req, "Content-Type", "application/x-www-form-urlencoded");
    body(&ex->req, "name=J%C3%BCrgen+M&age=42&a%26b=c%3Dd", 37);
    hdr(&ex->resp, "Location", "/home");
    hdr(&ex->resp, "Content-Length", "0");
    e = &b->e[b->n];
    e->ex = ex;
    e->scheme = "http";
    e->host = "example.com";
    e->port = 8080;
    e->blocked = e->dns = e->connect = e->ssl = -1;
    b->ex[b->n++] = ex;

    /* 2: binary response: base64. */
    ex = mk("GET", "/logo.png", 200, "OK");
    hdr(&ex->req, "Host", "example.com:443");
    hdr(&ex->resp, "Content-Type", "image/png");
    body(&ex->resp, png, sizeof(png));
    e = &b->e[b->n];
    e->ex = ex;
    e->scheme = "https";
    e->host = "example.com";
    e->port = 443;
    e->server_ip = "[2001:db8::1]";
    e->blocked = e->dns = e->connect = e->ssl = -1;
    b->ex[b->n++] = ex;

    /* 3: deflate (zlib-wrapped) JSON. */
    ex = mk("GET", "/api", 200, "OK");
    hdr(&ex->resp, "Content-Type", "application/json");
    hdr(&ex->resp, "Content-Encoding", "deflate");
    z = zdeflate(json_body, strlen(json_body), 15, &zl);
    body(&ex->resp, z, zl);
    free(z);
    e = &b->e[b->n];
    e->ex = ex;
    e->scheme = "https";
    e->host = "2001:db8::1";
    e->port = 8443;
    e->blocked = e->dns = e->connect = e->ssl = -1;
    b->ex[b->n++] = ex;

    /* 4: raw deflate. */
    ex = mk("GET", "/raw", 200, "OK");
    hdr(&ex->resp, "Content-Encoding", "deflate");
    z = zdeflate("raw deflate body", 16, -15, &zl);
    body(&ex->resp, z, zl);
    free(z);
    e = &b->e[b->n];
    e->ex = ex;
    e->scheme = "http";
    e->host = "10.0.0.1";
    e->port = 80;
    e->blocked = e->dns = e->connect = e->ssl = -1;
    b->ex[b->n++] = ex;

    /* 5: failed: no response. */
    ex = mk("GET", "/timeout", 0, "");
    hdr(&ex->req, "Host", "slow.example");
    http_strset(&ex->error, "connection closed before the response", 38);
    e = &b->e[b->n];
    e->ex = ex;
    e->scheme = "https";
    e->host = "slow.example";
    e->port = 443;
    e->blocked = e->dns = e->connect = e->ssl = -1;
    b->ex[b->n++] = ex;

    /* 6: a 3 MiB text body full of characters to escape, streamed in pieces. */
    b->big_len = 3 << 20;
    b->big = malloc(b->big_len);
    for (size_t i = 0; i < b->big_len; i++) {
        static const char pat[] = "ab\"c\\d\n\x01\t\xc3\xa9z";

        b->big[i] = pat[i % (sizeof(pat) - 1)];
    }
    /* keep the UTF-8 sequence whole at the end */
    b->big_len -= b->big_len % (sizeof("ab\"c\\d\n\x01\t\xc3\xa9z") - 1);
    ex = mk("PUT", "/big", 200, "OK");
    hdr(&ex->req, "Content-Type", "text/plain");
    body(&ex->req, b->big, b->big_len);
    hdr(&ex->resp, "Content-Type", "text/plain");
    body(&ex->resp, b->big, b->big_len);
    e = &b->e[b->n];
    e->ex = ex;
    e->scheme = "http";
    e->host = "example.com";
    e->port = 80;
    e->blocked = e->dns = e->connect = e->ssl = -1;
    b->ex[b->n++] = ex;

    /* 7: truncated body; odd bytes in a header; absolute-form target; br. */
    ex = mk("GET", "http://proxy.example/p?x=%41 b", 200, "OK");
    hdr(&ex->req, "X-Latin1", "caf\xe9");
    hdr(&ex->resp, "Content-Type", "text/plain");
    http_msg_add_body(&ex->resp, "0123456789", 10, 4);
    e = &b->e[b->n];
    e->ex = ex;
    e->scheme = "http";
    e->host = "proxy.example";
    e->port = 80;
    e->blocked = e->dns = e->connect = e->ssl = -1;
    e->error = "cut short";
    b->ex[b->n++] = ex;

    ex = mk("GET", "/brotli", 200, "OK");
    hdr(&ex->resp, "Content-Encoding", "compress");
    body(&ex->resp, "\x1b\x03\x00\xf8", 4);
    e = &b->e[b->n];
    e->ex = ex;
    e->scheme = "https";
    e->host = "example.com";
    e->port = 443;
    e->blocked = e->dns = e->connect = e->ssl = -1;
    b->ex[b->n++] = ex;
}

static void built_free(built_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        http_exchange_free(b->ex[i]);
    free(b->html);
    free(b->big);
}

static void check_entries(cJSON *root, const built_t *b)
{
    cJSON *en = path(root, "log.entries");
    cJSON *x;

    CHECK_EQ_STR(pstr(root, "log.version"), "1.2");
    CHECK_EQ_STR(pstr(root, "log.creator.name"), "mitmrec");
    CHECK_EQ_STR(pstr(root, "log.creator.version"), "0.1 \"test\"");
    CHECK(cJSON_IsArray(path(root, "log.pages")));
    CHECK_EQ_INT(cJSON_GetArraySize(en), b->n);

    /* 0 */
    x = cJSON_GetArrayItem(en, 0);
    CHECK_EQ_STR(pstr(x, "startedDateTime"), "2026-11-26T21:10:42.123Z");
    CHECK(pnum(x, "time") == 0.5 + 10 + 1.5 + 20 + 3.75);
    CHECK_EQ_STR(pstr(x, "request.method"), "GET");
    CHECK_EQ_STR(
        pstr(x, "request.url"),
        "https://example.com/search?q=hello+world&lang=en&empty=&flag&enc=%C3%A9t%C3%A9#frag");
    CHECK_EQ_STR(pstr(x, "request.httpVersion"), "HTTP/1.1");
    CHECK_EQ_STR(pstr(x, "request.headers.0.name"), "Host");
    CHECK_EQ_STR(pstr(x, "request.headers.2.name"), "Cookie");
    CHECK_EQ_STR(pstr(x, "request.headers.3.value"), "gzip");
    CHECK_EQ_STR(pstr(x, "request.headers.4.value"),
                 "tab\there \"q\" back\\slash \x01\x1f caf\xc3\xa9 bad\xef\xbf\xbd end");
    CHECK_EQ_STR(nv(path(x, "request.cookies"), "sid"), "abc123");
    CHECK_EQ_STR(nv(path(x, "request.cookies"), "theme"), "dark");
    CHECK_EQ_INT(cJSON_GetArraySize(path(x, "request.queryString")), 5);
    CHECK_EQ_STR(nv(path(x, "request.queryString"), "q"), "hello world");
    CHECK_EQ_STR(nv(path(x, "request.queryString"), "empty"), "");
    CHECK_EQ_STR(nv(path(x, "request.queryString"), "flag"), "");
    CHECK_EQ_STR(nv(path(x, "request.queryString"), "enc"), "\xc3\xa9t\xc3\xa9");
    CHECK(!has(x, "request.postData"));
    CHECK(pnum(x, "request.headersSize") == 100 + strlen(b->ex[0]->target));
    CHECK(pnum(x, "request.bodySize") == 0);
    CHECK(pnum(x, "response.status") == 200);
    CHECK_EQ_STR(pstr(x, "response.statusText"), "OK");
    CHECK_EQ_STR(pstr(x, "response.httpVersion"), "HTTP/1.1");
    CHECK(pnum(x, "response.content.size") == b->html_len);
    CHECK(pnum(x, "response.content.compression") ==
          (double)b->html_len - (double)b->ex[0]->resp.body_total);
    CHECK_EQ_STR(pstr(x, "response.content.mimeType"), "text/html; charset=utf-8");
    CHECK_EQ_STR(pstr(x, "response.content.text"), b->html);
    CHECK(!has(x, "response.content.encoding"));
    CHECK(pnum(x, "response.bodySize") == b->ex[0]->resp.body_total);
    CHECK(pnum(x, "response.headersSize") == 150);
    CHECK_EQ_STR(pstr(x, "response.redirectURL"), "");
    {
        cJSON *c = nv_item(path(x, "response.cookies"), "sid");

        CHECK_EQ_STR(pstr(c, "value"), "new");
        CHECK_EQ_STR(pstr(c, "path"), "/");
        CHECK_EQ_STR(pstr(c, "domain"), "example.com");
        CHECK_EQ_STR(pstr(c, "expires"), "2037-10-21T07:28:00.000Z");
        CHECK(cJSON_IsTrue(path(c, "httpOnly")));
        CHECK(cJSON_IsTrue(path(c, "secure")));
        c = nv_item(path(x, "response.cookies"), "pref");
        CHECK_EQ_STR(pstr(c, "value"), "1");
        /* Max-Age from the response's first byte: T0 + 21.5 ms + 1 h */
        CHECK_EQ_STR(pstr(c, "expires"), "2026-11-26T22:10:42.000Z");
        CHECK(!has(c, "httpOnly"));
    }
    CHECK(cJSON_IsObject(path(x, "cache")) && cJSON_GetArraySize(path(x, "cache")) == 0);
    CHECK(pnum(x, "timings.blocked") == 0.5);
    CHECK(pnum(x, "timings.dns") == -1);
    CHECK(pnum(x, "timings.connect") == 10);
    CHECK(pnum(x, "timings.ssl") == 6);
    CHECK(pnum(x, "timings.send") == 1.5);
    CHECK(pnum(x, "timings.wait") == 20);
    CHECK(pnum(x, "timings.receive") == 3.75);
    CHECK_EQ_STR(pstr(x, "serverIPAddress"), "93.184.216.34");
    CHECK_EQ_STR(pstr(x, "connection"), "7");
    CHECK(pnum(x, "_pcapng.interface") == 0);
    CHECK(pnum(x, "_pcapng.frame") == 12);
    CHECK(pnum(x, "_pcapng.stream") == 3);
    CHECK(pnum(x, "_pid") == 4242);
    CHECK_EQ_STR(pstr(x, "_process"), "curl");
    CHECK_EQ_STR(pstr(x, "_exe"), "/usr/bin/curl");
    CHECK_EQ_STR(pstr(x, "_cmdline"), "curl -s https://example.com/");
    CHECK(!has(x, "_error"));
    CHECK(!has(x, "_truncated"));
    CHECK_EQ_STR(pstr(x, "_webSocketMessages.0.type"), "send");
    CHECK(pnum(x, "_webSocketMessages.0.time") > 1795727442.4 &&
          pnum(x, "_webSocketMessages.0.time") < 1795727442.7);
    CHECK(pnum(x, "_webSocketMessages.0.opcode") == 1);
    CHECK_EQ_STR(pstr(x, "_webSocketMessages.0.data"), "hello \"ws\"");
    CHECK_EQ_STR(pstr(x, "_webSocketMessages.1.type"), "receive");
    CHECK(pnum(x, "_webSocketMessages.1.opcode") == 2);
    CHECK_EQ_STR(pstr(x, "_webSocketMessages.1.data"), "iVBORw0KGgoA/w==");
    CHECK_EQ_STR(nv(path(x, "response._trailers"), "Server-Timing"), "db;dur=53");
    CHECK(!has(x, "request._trailers"));

    /* 1 */
    x = cJSON_GetArrayItem(en, 1);
    CHECK_EQ_STR(pstr(x, "request.url"), "http://example.com:8080/login");
    CHECK_EQ_STR(pstr(x, "request.postData.mimeType"), "application/x-www-form-urlencoded");
    CHECK_EQ_STR(pstr(x, "request.postData.text"), "name=J%C3%BCrgen+M&age=42&a%26b=c%3Dd");
    CHECK_EQ_STR(nv(path(x, "request.postData.params"), "name"), "J\xc3\xbcrgen M");
    CHECK_EQ_STR(nv(path(x, "request.postData.params"), "age"), "42");
    CHECK_EQ_STR(nv(path(x, "request.postData.params"), "a&b"), "c=d");
    CHECK(pnum(x, "request.bodySize") == 37);
    CHECK_EQ_INT(cJSON_GetArraySize(path(x, "request.queryString")), 0);
    CHECK(pnum(x, "response.status") == 302);
    CHECK_EQ_STR(pstr(x, "response.redirectURL"), "/home");
    CHECK_EQ_STR(pstr(x, "response.content.mimeType"), "x-unknown");
    CHECK(pnum(x, "response.content.size") == 0);
    CHECK(!has(x, "response.content.text"));
    CHECK(pnum(x, "time") == 1.5 + 20 + 3.75);
    CHECK(pnum(x, "timings.ssl") == -1);
    CHECK(!has(x, "serverIPAddress"));
    CHECK(!has(x, "_pcapng"));

    /* 2 */
    x = cJSON_GetArrayItem(en, 2);
    CHECK_EQ_STR(pstr(x, "request.url"), "https://example.com/logo.png");
    CHECK_EQ_STR(pstr(x, "response.content.text"), "iVBORw0KGgoA/w==");
    CHECK_EQ_STR(pstr(x, "response.content.encoding"), "base64");
    CHECK(pnum(x, "response.content.size") == sizeof(png));
    CHECK(!has(x, "response.content.compression"));
    CHECK_EQ_STR(pstr(x, "serverIPAddress"), "2001:db8::1");

    /* 3 */
    x = cJSON_GetArrayItem(en, 3);
    CHECK_EQ_STR(pstr(x, "request.url"), "https://[2001:db8::1]:8443/api");
    CHECK_EQ_STR(pstr(x, "response.content.text"), json_body);
    CHECK(pnum(x, "response.content.size") == strlen(json_body));
    CHECK(pnum(x, "response.content.compression") ==
          (double)strlen(json_body) - (double)b->ex[3]->resp.body_total);

    /* 4 */
    x = cJSON_GetArrayItem(en, 4);
    CHECK_EQ_STR(pstr(x, "request.url"), "http://10.0.0.1/raw");
    CHECK_EQ_STR(pstr(x, "response.content.text"), "raw deflate body");

    /* 5: no response */
    x = cJSON_GetArrayItem(en, 5);
    CHECK(pnum(x, "response.status") == 0);
    CHECK_EQ_STR(pstr(x, "response.statusText"), "");
    CHECK_EQ_STR(pstr(x, "response.httpVersion"), "");
    CHECK_EQ_INT(cJSON_GetArraySize(path(x, "response.headers")), 0);
    CHECK_EQ_INT(cJSON_GetArraySize(path(x, "response.cookies")), 0);
    CHECK(pnum(x, "response.content.size") == 0);
    CHECK_EQ_STR(pstr(x, "response.content.mimeType"), "x-unknown");
    CHECK_EQ_STR(pstr(x, "response.redirectURL"), "");
    CHECK(pnum(x, "response.headersSize") == -1);
    CHECK(pnum(x, "response.bodySize") == -1);
    CHECK(pnum(x, "timings.send") == 1.5);
    CHECK(pnum(x, "timings.wait") == 0);
    CHECK(pnum(x, "timings.receive") == 0);
    CHECK(pnum(x, "time") == 1.5);
    CHECK_EQ_STR(pstr(x, "_error"), "connection closed before the response");

    /* 6: big bodies, escaped and streamed */
    x = cJSON_GetArrayItem(en, 6);
    {
        const char *t = pstr(x, "response.content.text");
        const char *p = pstr(x, "request.postData.text");

        CHECK(t && strlen(t) == b->big_len && memcmp(t, b->big, b->big_len) == 0);
        CHECK(p && strlen(p) == b->big_len && memcmp(p, b->big, b->big_len) == 0);
    }
    CHECK(pnum(x, "response.content.size") == b->big_len);

    /* 7: truncated, odd header bytes, absolute-form */
    x = cJSON_GetArrayItem(en, 7);
    CHECK_EQ_STR(pstr(x, "request.url"), "http://proxy.example/p?x=%41%20b");
    CHECK_EQ_STR(nv(path(x, "request.queryString"), "x"), "A b");
    CHECK_EQ_STR(nv(path(x, "request.headers"), "X-Latin1"), "caf\xef\xbf\xbd");
    CHECK(cJSON_IsTrue(path(x, "_truncated")));
    CHECK(pnum(x, "response.content.size") == 10);
    CHECK_EQ_STR(pstr(x, "response.content.text"), "0123");
    CHECK_EQ_STR(pstr(x, "_error"), "cut short");

    /* 8: an encoding we cannot undo */
    x = cJSON_GetArrayItem(en, 8);
    CHECK(!has(x, "response.content.text"));
    CHECK(has(x, "response.content.comment"));
    CHECK(pnum(x, "response.content.size") == 4);
    CHECK(pnum(x, "response.bodySize") == 4);
}

static void write_all(har_writer_t *w, const built_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        CHECK_EQ_INT(har_writer_add(w, &b->e[i]), 0);
}

static void test_memory(const built_t *b)
{
    membuf_t m = {0};
    sink_t sink = {mem_write, mem_write_tail, &m};
    int err = 0;
    har_writer_t *w = har_writer_new(&sink, "mitmrec", "0.1 \"test\"", &err);
    cJSON *root;

    CHECK(w != NULL);
    if (!w)
        return;
    /* Complete after the header alone, and after every entry. */
    root = cJSON_Parse(m.p);
    CHECK(root && cJSON_GetArraySize(path(root, "log.entries")) == 0);
    cJSON_Delete(root);
    for (size_t i = 0; i < b->n; i++) {
        CHECK_EQ_INT(har_writer_add(w, &b->e[i]), 0);
        root = cJSON_Parse(m.p);
        CHECK(root != NULL);
        CHECK_EQ_INT(cJSON_GetArraySize(path(root, "log.entries")), i + 1);
        cJSON_Delete(root);
    }
    CHECK_EQ_INT(har_writer_entries(w), b->n);
    CHECK_EQ_INT(m.tails, b->n + 1);
    CHECK_EQ_INT(har_writer_close(w), 0);
    CHECK_EQ_INT(har_writer_close(w), 0);
    CHECK(har_writer_add(w, &b->e[0]) < 0);
    har_writer_free(w);
    CHECK(m.len > 4 && strcmp(m.p + m.len - 4, "]}}\n") == 0);
    CHECK(memcmp(m.p, "{\"log\":{\"version\":\"1.2\",\"creator\":{", 34) == 0);
    root = cJSON_Parse(m.p);
    CHECK(root != NULL);
    if (root)
        check_entries(root, b);
    cJSON_Delete(root);
    free(m.p);

    /* Without write_tail: the same bytes once closed. */
    {
        membuf_t m2 = {0};
        sink_t s2 = {mem_write, NULL, &m2};

        w = har_writer_new(&s2, "mitmrec", "0.1 \"test\"", &err);
        write_all(w, b);
        CHECK(cJSON_Parse(m2.p) == NULL); /* open until closed */
        CHECK_EQ_INT(har_writer_close(w), 0);
        har_writer_free(w);
        root = cJSON_Parse(m2.p);
        CHECK(root != NULL);
        if (root)
            check_entries(root, b);
        cJSON_Delete(root);
        free(m2.p);
    }
}

static char *slurp(const char *file, size_t *len)
{
    FILE *f = fopen(file, "rb");
    char *p;
    long n;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    p = malloc((size_t)n + 1);
    *len = fread(p, 1, (size_t)n, f);
    p[*len] = '\0';
    fclose(f);
    return p;
}

static void test_file(const built_t *b)
{
    const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char file[4096], empty[4096];
    int fd, fd2, err = 0, v;
    FILE *f;
    sink_t sink = {file_write, file_write_tail, NULL};
    har_writer_t *w;
    char *data;
    size_t len;
    cJSON *root;

    snprintf(file, sizeof(file), "%s/test_har_XXXXXX", tmp);
    snprintf(empty, sizeof(empty), "%s/test_har_empty_XXXXXX", tmp);
    fd = mkstemp(file);
    fd2 = mkstemp(empty);
    CHECK(fd >= 0 && fd2 >= 0);
    if (fd < 0 || fd2 < 0)
        return;
    f = fdopen(fd, "w+");
    sink.opaque = f;
    w = har_writer_new(&sink, "mitmrec", "0.1 \"test\"", &err);

    CHECK(w != NULL);
    for (size_t i = 0; i < b->n; i++) {
        CHECK_EQ_INT(har_writer_add(w, &b->e[i]), 0);
        /* What is on disk right now is a whole HAR. */
        data = slurp(file, &len);
        root = data ? cJSON_Parse(data) : NULL;
        CHECK(root && cJSON_GetArraySize(path(root, "log.entries")) == (int)i + 1);
        cJSON_Delete(root);
        free(data);
        if (i == 2) {
            v = validate(file);
            CHECK(v != 0);
        }
    }
    CHECK_EQ_INT(har_writer_close(w), 0);
    har_writer_free(w);
    fclose(f);
    data = slurp(file, &len);
    root = data ? cJSON_Parse(data) : NULL;
    CHECK(root != NULL);
    if (root)
        check_entries(root, b);
    cJSON_Delete(root);
    free(data);
    v = validate(file);
    if (v >= 0)
        printf("har-validator: %s\n", v ? "accepted" : "REJECTED");
    CHECK(v != 0);

    /* An empty recording is a valid HAR too. */
    f = fdopen(fd2, "w+");
    sink.opaque = f;
    w = har_writer_new(&sink, "mitmrec", "0.1", &err);
    CHECK(w != NULL);
    CHECK_EQ_INT(har_writer_close(w), 0);
    har_writer_free(w);
    fclose(f);
    CHECK(validate(empty) != 0);
    unlink(file);
    unlink(empty);
}

static void test_sink_errors(const built_t *b)
{
    int budget = 10, err = 0;
    sink_t sink = {fail_write, NULL, &budget};
    har_writer_t *w = har_writer_new(&sink, "mitmrec", "0.1", &err);

    CHECK(w == NULL);
    CHECK_EQ_INT(err, -ENOSPC);
    budget = 300;
    w = har_writer_new(&sink, "mitmrec", "0.1", &err);
    CHECK(w != NULL);
    CHECK_EQ_INT(har_writer_add(w, &b->e[0]), -ENOSPC);
    /* The file is broken now: the writer keeps saying so. */
    budget = 1 << 30;
    CHECK_EQ_INT(har_writer_add(w, &b->e[1]), -ENOSPC);
    CHECK_EQ_INT(har_writer_close(w), -ENOSPC);
    har_writer_free(w);
    har_writer_free(NULL);
}

/* A CONNECT's target is its authority; an extended CONNECT's (RFC 8441) a path, whose
   authority is :authority. */
static void test_connect_urls(void)
{
    http_exchange_t *ex = mk("CONNECT", "example.com:443", 200, "OK");
    har_entry_t e = {.ex = ex, .scheme = "https", .host = "example.com", .port = 443};
    char *u = harmsg_url(&e);

    CHECK_EQ_STR(u, "https://example.com:443");
    free(u);
    http_exchange_free(ex);
    ex = mk("CONNECT", "/chat?room=1", 200, "");
    hdr(&ex->req, ":method", "CONNECT");
    hdr(&ex->req, ":protocol", "websocket");
    hdr(&ex->req, ":authority", "ws.example:8443");
    e.ex = ex;
    e.port = 8443;
    u = harmsg_url(&e);
    CHECK_EQ_STR(u, "https://ws.example:8443/chat?room=1");
    free(u);
    http_exchange_free(ex);
}

/* Base64 the slow way, 6 bits at a time: the reference for the writer's table-driven
   encoder. */
static char *b64_ref(const uint8_t *p, size_t len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(len / 3 * 4 + 8), *o = out;
    size_t bits = len * 8;

    for (size_t b = 0; b < bits; b += 6) {
        unsigned v = 0;

        for (size_t k = b; k < b + 6; k++)
            v = v << 1 | (k < bits ? (unsigned)(p[k / 8] >> (7 - k % 8) & 1) : 0u);
        *o++ = tab[v];
    }
    while ((o - out) % 4)
        *o++ = '=';
    *o = '\0';
    return out;
}

/* One entry through a fresh writer; returns the parsed HAR. */
static cJSON *write_one(http_exchange_t *ex)
{
    membuf_t m = {0};
    sink_t sink = {mem_write, NULL, &m};
    int err = 0;
    har_writer_t *w = har_writer_new(&sink, "mitmrec", "0.1", &err);
    har_entry_t e = {.ex = ex, .scheme = "https", .host = "example.com", .port = 443};
    cJSON *root;

    e.blocked = e.dns = e.connect = e.ssl = -1;
    CHECK(w != NULL);
    if (!w)
        return NULL;
    CHECK_EQ_INT(har_writer_add(w, &e), 0);
    CHECK_EQ_INT(har_writer_close(w), 0);
    har_writer_free(w);
    root = cJSON_Parse(m.p);
    CHECK(root != NULL);
    free(m.p);
    return root;
}

/* Binary bodies of every length from 1 to 40 bytes and around 1 KiB: the whole-triple
   loop, its 6-byte steps (which load 8) and the 1 or 2 bytes left all meet the reference. */
static void test_base64_lengths(void)
{
    uint8_t data[1100];
    size_t lens[60], nl = 0;

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 167 + 13) ^ (uint8_t)(i >> 3);
    data[0] = 0; /* not text: base64 */
    for (size_t n = 1; n <= 40; n++)
        lens[nl++] = n;
    for (size_t n = 1016; n <= 1031; n++)
        lens[nl++] = n;
    for (size_t i = 0; i < nl; i++) {
        http_exchange_t *ex = mk("GET", "/b", 200, "OK");
        cJSON *root;
        char *want = b64_ref(data, lens[i]);

        body(&ex->resp, data, lens[i]);
        root = write_one(ex);
        CHECK_EQ_STR(pstr(root, "log.entries.0.response.content.encoding"), "base64");
        CHECK_EQ_STR(pstr(root, "log.entries.0.response.content.text"), want);
        CHECK_EQ_INT(pnum(root, "log.entries.0.response.content.size"), (double)lens[i]);
        cJSON_Delete(root);
        free(want);
        http_exchange_free(ex);
    }
}

/* Header and cookie values that need escaping or UTF-8 repair, beside plain ones: each comes
   back as sent (bytes that are not UTF-8 as U+FFFD), and a Set-Cookie's object still takes
   its attributes after its name and value. */
static void test_pairs_escaping(void)
{
    static const struct {
        const char *name, *value, *want;
    } h[] = {
        {"X-Plain", "abc 123 ;,=/", "abc 123 ;,=/"},
        {"X-Quote", "a \"q\" \\ b", "a \"q\" \\ b"},
        {"X-Ctl", "a\x01b\x1f", "a\x01b\x1f"},
        {"X-Tab", "a\tb", "a\tb"},
        {"X-Utf8", "caf\xc3\xa9 \xe2\x82\xac", "caf\xc3\xa9 \xe2\x82\xac"},
        {"X-Bad", "\xff\xfe!", "\xef\xbf\xbd\xef\xbf\xbd!"},
        {"X-Empty", "", ""},
        {"X-\"Odd\"", "v", "v"},
    };
    http_exchange_t *ex = mk("GET", "/h", 200, "OK");
    cJSON *root, *arr, *c;

    for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++) {
        hdr(&ex->req, h[i].name, h[i].value);
        hdr(&ex->resp, h[i].name, h[i].value);
    }
    hdr(&ex->req, "Cookie", "a=1; q=\"x\\y\"; u=\xc3\xa9");
    hdr(&ex->resp, "Set-Cookie", "sid=\"z\"; Path=/p; HttpOnly");
    root = write_one(ex);
    for (int side = 0; side < 2; side++) {
        arr = path(root, side ? "log.entries.0.response.headers" : "log.entries.0.request.headers");
        for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++)
            CHECK_EQ_STR(nv(arr, h[i].name), h[i].want);
    }
    arr = path(root, "log.entries.0.request.cookies");
    CHECK_EQ_INT(cJSON_GetArraySize(arr), 3);
    CHECK_EQ_STR(nv(arr, "a"), "1");
    CHECK_EQ_STR(nv(arr, "q"), "\"x\\y\"");
    CHECK_EQ_STR(nv(arr, "u"), "\xc3\xa9");
    c = nv_item(path(root, "log.entries.0.response.cookies"), "sid");
    CHECK_EQ_STR(pstr(c, "value"), "\"z\"");
    CHECK_EQ_STR(pstr(c, "path"), "/p");
    CHECK(cJSON_IsTrue(path(c, "httpOnly")));
    cJSON_Delete(root);
    http_exchange_free(ex);
}

/* Bytes a URL cannot hold as they are come out %-escaped, the rest as they were; a port
   that is not the scheme's default is kept. */
static void test_url_escaping(void)
{
    http_exchange_t *ex = mk("GET", "/a b\"<>\\^`{|}\x7f\x80~!$&'()*+,;=:@?q=%41#f", 200, "OK");
    har_entry_t e = {.ex = ex, .scheme = "http", .host = "example.com", .port = 8080};
    char *u = harmsg_url(&e);

    CHECK_EQ_STR(
        u, "http://example.com:8080/a%20b%22%3C%3E%5C%5E%60%7B%7C%7D%7F%80~!$&'()*+,;=:@?q=%41#f");
    free(u);
    hdr(&ex->req, "Host", "example.com:80");
    u = harmsg_url(&e);
    CHECK_EQ_STR(u,
                 "http://example.com/a%20b%22%3C%3E%5C%5E%60%7B%7C%7D%7F%80~!$&'()*+,;=:@?q=%41#f");
    free(u);
    http_exchange_free(ex);
}

/* ---- order (har_writer_order) ---- */

/* The _index of each entry in the writer's output so far, as one string "0 1 3". */
static void indexes(const membuf_t *m, char *out, size_t cap)
{
    cJSON *root = cJSON_Parse(m->p), *en = path(root, "log.entries");
    size_t n = 0;

    out[0] = '\0';
    CHECK(root != NULL);
    for (int i = 0; en && i < cJSON_GetArraySize(en); i++) {
        cJSON *x = cJSON_GetArrayItem(en, i);

        if (has(x, "_index"))
            n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%s%d", i ? " " : "",
                                  (int)pnum(x, "_index"));
        else
            n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%s-", i ? " " : "");
    }
    cJSON_Delete(root);
}

/* Adds an entry for index idx whose exchange ended done usec after T0 (bodies of blen;
   done > 1500, when mk's request ended). */
static void add_at(har_writer_t *w, int64_t idx, uint64_t done, size_t blen)
{
    http_exchange_t *ex = mk("GET", "/o", 200, "OK");
    har_entry_t e = {.ex = ex, .scheme = "https", .host = "example.com", .port = 443};

    e.blocked = e.dns = e.connect = e.ssl = -1;
    e.index = idx;
    ex->t_resp_end = T0 + done;
    if (blen) {
        uint8_t *b = malloc(blen);

        memset(b, 'x', blen);
        body(&ex->resp, b, blen);
        free(b);
    }
    CHECK_EQ_INT(har_writer_add(w, &e), 0);
    http_exchange_free(ex);
}

static har_writer_t *ordered_writer(membuf_t *m, size_t max_bytes)
{
    sink_t sink = {mem_write, mem_write_tail, m};
    int err = 0;
    har_writer_t *w = har_writer_new(&sink, "mitmrec", "0.1", &err);

    if (w)
        har_writer_order(w, 1000000, max_bytes);
    return w;
}

static void test_order(void)
{
    membuf_t m = {0};
    har_writer_t *w = ordered_writer(&m, 1 << 20);
    char got[8192];

    CHECK(w != NULL);
    if (!w)
        return;
    /* In the order of the indexes, whatever the order they end in. */
    add_at(w, 3, 1600, 0);
    add_at(w, 1, 1700, 0);
    indexes(&m, got, sizeof(got));
    CHECK_EQ_STR(got, "");
    CHECK_EQ_INT(har_writer_held(w), 2);
    add_at(w, 0, 1800, 0);
    indexes(&m, got, sizeof(got));
    CHECK_EQ_STR(got, "0 1");
    add_at(w, 2, 1900, 0);
    indexes(&m, got, sizeof(got));
    CHECK_EQ_STR(got, "0 1 2 3");
    CHECK_EQ_INT(har_writer_held(w), 0);
    /* No index: written as it comes. */
    add_at(w, -1, 1950, 0);
    CHECK_EQ_INT(har_writer_entries(w), 5);
    /* Waiting for 4: 5 goes once it has waited a second, and 4 when it comes. */
    add_at(w, 5, 2000, 0);
    CHECK_EQ_INT(har_writer_release(w, T0 + 2000 + 999999), 0);
    CHECK_EQ_INT(har_writer_held(w), 1);
    CHECK_EQ_INT(har_writer_release(w, T0 + 2000 + 1000000), 0);
    CHECK_EQ_INT(har_writer_held(w), 0);
    add_at(w, 4, 2000000, 0);
    indexes(&m, got, sizeof(got));
    CHECK_EQ_STR(got, "0 1 2 3 - 5 4");
    /* An entry that ends more than a second after one that waits lets that one go (by
       the exchanges' own clock, as in mitmrec -r), not the younger ones. */
    add_at(w, 7, 3000000, 0);
    add_at(w, 9, 3500000, 0);
    add_at(w, 10, 4000001, 0);
    indexes(&m, got, sizeof(got));
    CHECK_EQ_STR(got, "0 1 2 3 - 5 4 7");
    CHECK_EQ_INT(har_writer_held(w), 2);
    /* Bodies over 1 MiB do not wait: what is before them goes first. */
    add_at(w, 12, 4000002, (1 << 20) + 1);
    indexes(&m, got, sizeof(got));
    CHECK_EQ_STR(got, "0 1 2 3 - 5 4 7 9 10 12");
    add_at(w, 14, 4000003, 0);
    add_at(w, 11, 4000004, 0);
    add_at(w, 8, 4000005, 0);
    indexes(&m, got, sizeof(got));
    CHECK_EQ_STR(got, "0 1 2 3 - 5 4 7 9 10 12 11 8");
    CHECK_EQ_INT(har_writer_held(w), 1);
    /* Closing writes what still waits, and the file is whole. */
    CHECK_EQ_INT(har_writer_close(w), 0);
    indexes(&m, got, sizeof(got));
    CHECK_EQ_STR(got, "0 1 2 3 - 5 4 7 9 10 12 11 8 14");
    CHECK_EQ_INT(har_writer_entries(w), 14);
    har_writer_free(w);
    free(m.p);

    /* Past the memory allowed, the lowest waiting go. */
    memset(&m, 0, sizeof(m));
    w = ordered_writer(&m, 3000);
    add_at(w, 2, 1600, 0);
    add_at(w, 3, 1700, 0);
    CHECK_EQ_INT(har_writer_held(w), 2);
    add_at(w, 4, 1800, 2000);
    indexes(&m, got, sizeof(got));
    CHECK_EQ_STR(got, "2 3 4");
    /* Freed while entries wait (no leak under ASan and valgrind). */
    add_at(w, 9, 1900, 0);
    CHECK_EQ_INT(har_writer_held(w), 1);
    har_writer_free(w);
    free(m.p);

    /* 2,000 entries ending in a random order come out in order. */
    {
        int64_t perm[2000];
        char *want = malloc(16 * 2000), *big = malloc(16 * 2000);
        size_t n = 0;
        uint32_t seed = 12345;

        memset(&m, 0, sizeof(m));
        w = ordered_writer(&m, 64 << 20);
        for (int i = 0; i < 2000; i++) {
            perm[i] = i;
            n += (size_t)snprintf(want + n, 16, "%s%d", i ? " " : "", i);
        }
        for (int i = 1999; i > 0; i--) {
            int k;
            int64_t t;

            seed = seed * 1103515245u + 12345u;
            k = (int)(seed >> 8) % (i + 1);
            t = perm[i];
            perm[i] = perm[k];
            perm[k] = t;
        }
        for (int i = 0; i < 2000; i++)
            add_at(w, perm[i], 1600 + (uint64_t)i, 0);
        CHECK_EQ_INT(har_writer_held(w), 0);
        indexes(&m, big, 16 * 2000);
        CHECK_EQ_STR(big, want);
        har_writer_free(w);
        free(m.p);
        free(want);
        free(big);
    }
}

int main(void)
{
    built_t b;

    test_url_escaping();
    test_base64_lengths();
    test_pairs_escaping();
    test_connect_urls();
    test_content();
    build(&b);
    test_memory(&b);
    test_file(&b);
    test_sink_errors(&b);
    built_free(&b);
    test_order();
    return check_done();
}

/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "harread.h"

/* Bodies read from a HAR are kept whole, up to this (a larger HAR is refused by its reader). */
#define HARREAD_MAX_BODY (512u << 20)
/* A timing longer than this (ms, 11.6 days) is taken as this: no overflow further on. */
#define HARREAD_MAX_MS 1e9

int har_url_split(const char *url, char *scheme, size_t slen, char *host, size_t hlen,
                  uint16_t *port, const char **path)
{
    const char *p = strstr(url, "://"), *h, *end, *colon = NULL;
    size_t n;

    if (!p)
        return -EINVAL;
    n = (size_t)(p - url);
    if (n == 0 || n >= slen)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        scheme[i] = (char)tolower((unsigned char)url[i]);
    scheme[n] = '\0';
    h = p + 3;
    end = h + strcspn(h, "/?#");
    if (*h == '[') {
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (!rb)
            return -EINVAL;
        if (rb + 1 < end) {
            if (rb[1] != ':')
                return -EINVAL;
            colon = rb + 1;
        }
        n = (size_t)(rb - h - 1);
        if (n >= hlen)
            return -EINVAL;
        memcpy(host, h + 1, n);
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
        n = (size_t)((colon ? colon : end) - h);
        if (n >= hlen)
            return -EINVAL;
        memcpy(host, h, n);
    }
    host[n] = '\0';
    if (n == 0)
        return -EINVAL;
    for (char *c = host; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    *port = strcmp(scheme, "https") == 0 ? 443 : 80;
    if (colon && colon + 1 < end) {
        unsigned long v = 0;
        for (const char *d = colon + 1; d < end; d++) {
            if (*d < '0' || *d > '9' || v > 65535)
                return -EINVAL;
            v = v * 10 + (unsigned long)(*d - '0');
        }
        if (v == 0 || v > 65535)
            return -EINVAL;
        *port = (uint16_t)v;
    }
    *path = *end == '/' || *end == '?' ? end : "/";
    return 0;
}

static const char *jstr(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A timing in ms: 0 when absent, negative (HAR's -1: not applicable) or not finite. */
static double jms(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble <= 0)
        return 0;
    return v->valuedouble < HARREAD_MAX_MS ? v->valuedouble : HARREAD_MAX_MS;
}

/* ISO 8601 "2024-06-01T12:00:00.123+02:00" or "...Z" to microseconds since the epoch; 0 for
   anything else, or a time before 1970. */
static uint64_t iso_usec(const char *s)
{
    struct tm tm;
    int y, mo, d, h, mi, n = 0;
    double sec;
    long off = 0;
    time_t t;
    const char *p;

    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%lf%n", &y, &mo, &d, &h, &mi, &sec, &n) < 6 ||
        y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
        !(sec >= 0 && sec < 61))
        return 0;
    p = s + n;
    if (*p == '+' || *p == '-') {
        int oh = 0, om = 0;
        if (sscanf(p + 1, "%2d:%2d", &oh, &om) < 1 || oh < 0 || oh > 23 || om < 0 || om > 59)
            return 0;
        off = (oh * 3600L + om * 60L) * (*p == '-' ? -1 : 1);
    }
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    t = timegm(&tm) - off;
    if (t < 0)
        return 0;
    return (uint64_t)t * 1000000u + (uint64_t)(sec * 1e6);
}

/* Headers, or with trailers set, trailers ("_trailers", mitmrec's writer: chunked and
   HTTP/2 trailers, which HAR 1.2 has no place for). */
static int add_fields(http_msg_t *m, const cJSON *arr, int trailers)
{
    const cJSON *h;

    cJSON_ArrayForEach(h, arr)
    {
        const char *n = jstr(h, "name"), *v = jstr(h, "value");
        if (!n || !v || !*n)
            continue;
        if ((trailers ? http_msg_add_trailer : http_msg_add_header)(m, n, strlen(n), v, strlen(v)) <
            0)
            return -ENOMEM;
    }
    return 0;
}

static int add_headers(http_msg_t *m, const cJSON *arr)
{
    return add_fields(m, arr, 0);
}

/* Base64 as HAR writers emit it: with or without padding, line breaks allowed. The bytes
   (malloc'd, *olen long) into *out; 0, -EBADMSG or -ENOMEM. */
static int decode_base64(const char *text, uint8_t **out_, size_t *olen)
{
    size_t len = strlen(text), n = 0, pad = 0;
    char *clean = malloc(len + 4);
    uint8_t *out;
    int got;

    if (!clean)
        return -ENOMEM;
    for (size_t i = 0; i < len; i++)
        if (!isspace((unsigned char)text[i]))
            clean[n++] = text[i];
    while (n > 0 && clean[n - 1] == '=' && pad < 2) {
        n--;
        pad++;
    }
    if (n % 4 == 1 || memchr(clean, '=', n)) { /* no whole byte, or '=' inside */
        free(clean);
        return -EBADMSG;
    }
    pad = (4 - n % 4) % 4;
    memset(clean + n, '=', pad);
    n += pad;
    if (n > (size_t)INT32_MAX || !(out = malloc(n / 4 * 3 + 1))) {
        free(clean);
        return n > (size_t)INT32_MAX ? -EBADMSG : -ENOMEM;
    }
    got = EVP_DecodeBlock(out, (const unsigned char *)clean, (int)n);
    free(clean);
    if (got < 0 || (size_t)got < pad) {
        free(out);
        return -EBADMSG;
    }
    /* EVP_DecodeBlock counts the padding as zero bytes. */
    *out_ = out;
    *olen = (size_t)got - pad;
    return 0;
}

static int add_base64(http_msg_t *m, const char *text)
{
    uint8_t *out;
    size_t n;
    int rc = decode_base64(text, &out, &n);

    if (rc < 0)
        return rc;
    rc = http_msg_add_body(m, out, n, HARREAD_MAX_BODY);
    free(out);
    return rc;
}

/* Chrome's _webSocketMessages (mitmrec writes them too): type send / receive, time in
   seconds, opcode, data as text for opcode 1 and base64 for the others. */
static int add_ws_messages(http_exchange_t *ex, const cJSON *arr)
{
    const cJSON *m;

    cJSON_ArrayForEach(m, arr)
    {
        const char *type = jstr(m, "type"), *data = jstr(m, "data");
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(m, "opcode");
        const cJSON *tm = cJSON_GetObjectItemCaseSensitive(m, "time");
        int opcode = cJSON_IsNumber(op) ? op->valueint : 1;
        uint64_t ts = cJSON_IsNumber(tm) && tm->valuedouble > 0 && tm->valuedouble < 1e11
                          ? (uint64_t)(tm->valuedouble * 1e6)
                          : 0;
        uint8_t *bytes = NULL;
        size_t n = 0;
        int rc;

        if (!type || (strcmp(type, "send") && strcmp(type, "receive")) || opcode < 0 || opcode > 15)
            continue;
        if (data && opcode != 1) {
            if ((rc = decode_base64(data, &bytes, &n)) == -ENOMEM)
                return rc;
            if (rc < 0)
                continue;
        }
        rc = http_exchange_add_ws(ex, !strcmp(type, "send"), ts, opcode,
                                  bytes ? (const void *)bytes : (const void *)(data ? data : ""),
                                  bytes ? n : (data ? strlen(data) : 0));
        free(bytes);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int add_body(http_msg_t *m, const char *text, const char *encoding)
{
    if (!text)
        return 0;
    if (encoding && !strcasecmp(encoding, "base64"))
        return add_base64(m, text);
    return http_msg_add_body(m, text, strlen(text), HARREAD_MAX_BODY);
}

static void version(const char *v, int *major, int *minor)
{
    *major = 1;
    *minor = 1;
    if (!v)
        return;
    if (!strcasecmp(v, "h2") || !strncasecmp(v, "HTTP/2", 6)) {
        *major = 2;
        *minor = 0;
    } else if (!strcasecmp(v, "HTTP/1.0")) {
        *minor = 0;
    }
}

/* Whether a postData or content (o) holds only the start of its body: it says so
   ("_truncated", mitmrec's writer), or its text is shorter than its size (content; m is
   the message the text went into). */
static int cut_short(const cJSON *o, const http_msg_t *m)
{
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(o, "size");

    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "_truncated")))
        return 1;
    return m && jstr(o, "text") && cJSON_IsNumber(size) &&
           size->valuedouble > (double)m->body_total;
}

/* One entry: 1 handed over, 0 skipped (counted in st), or a negative errno. */
static int read_entry(const cJSON *je, har_read_cb cb, void *opaque, har_read_stats_t *st)
{
    const cJSON *rq = cJSON_GetObjectItemCaseSensitive(je, "request");
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(je, "response");
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(rs, "status");
    const cJSON *pd = NULL, *ct = NULL, *tm;
    const char *url = jstr(rq, "url"), *method = jstr(rq, "method");
    const char *reason = jstr(rs, "statusText"), *path;
    char scheme[16], host[256];
    har_read_entry_t e;
    http_exchange_t *ex;
    uint16_t port;
    uint64_t start;
    int rc;

    if (!cJSON_IsNumber(status) || status->valuedouble <= 0) {
        st->no_response++; /* a browser's blocked or failed request */
        return 0;
    }
    if (!url || !method || !*method || status->valuedouble < 100 || status->valuedouble > 999 ||
        har_url_split(url, scheme, sizeof(scheme), host, sizeof(host), &port, &path) < 0 ||
        (strcmp(scheme, "http") && strcmp(scheme, "https"))) {
        st->unusable++;
        return 0;
    }
    if (!(ex = http_exchange_new()))
        return -ENOMEM;
    if (http_strset(&ex->method, method, strlen(method)) < 0 ||
        http_strset(&ex->target, path, strlen(path)) < 0 ||
        http_strset(&ex->reason, reason ? reason : "", reason ? strlen(reason) : 0) < 0 ||
        add_headers(&ex->req, cJSON_GetObjectItemCaseSensitive(rq, "headers")) < 0 ||
        add_headers(&ex->resp, cJSON_GetObjectItemCaseSensitive(rs, "headers")) < 0 ||
        add_fields(&ex->resp, cJSON_GetObjectItemCaseSensitive(rs, "_trailers"), 1) < 0 ||
        add_ws_messages(ex, cJSON_GetObjectItemCaseSensitive(je, "_webSocketMessages")) < 0) {
        http_exchange_free(ex);
        return -ENOMEM;
    }
    ex->status = status->valueint;
    version(jstr(rq, "httpVersion"), &ex->req_major, &ex->req_minor);
    version(jstr(rs, "httpVersion"), &ex->resp_major, &ex->resp_minor);
    rc = 0;
    /* HAR 1.2 gives postData no encoding: mitmrec's writer says "_encoding" (harmsg.c);
       "encoding", as content has it, is taken too. */
    if ((pd = cJSON_GetObjectItemCaseSensitive(rq, "postData")))
        rc = add_body(&ex->req, jstr(pd, "text"),
                      jstr(pd, "_encoding") ? jstr(pd, "_encoding") : jstr(pd, "encoding"));
    if (rc == 0 && (ct = cJSON_GetObjectItemCaseSensitive(rs, "content")))
        rc = add_body(&ex->resp, jstr(ct, "text"), jstr(ct, "encoding"));
    if (rc < 0) {
        http_exchange_free(ex);
        if (rc != -EBADMSG)
            return rc;
        st->unusable++;
        return 0;
    }
    ex->req.complete = ex->resp.complete = 1;
    if (cut_short(pd, NULL) || cut_short(ct, &ex->resp)) {
        if (!st->truncated++)
            snprintf(st->truncated_example, sizeof(st->truncated_example), "%s %s", method, url);
    }
    start = iso_usec(jstr(je, "startedDateTime"));
    tm = cJSON_GetObjectItemCaseSensitive(je, "timings");
    ex->t_req_start = start;
    ex->t_req_end =
        start +
        (uint64_t)((jms(tm, "blocked") + jms(tm, "dns") + jms(tm, "connect") + jms(tm, "send")) *
                   1000);
    ex->t_resp_start = ex->t_req_end + (uint64_t)(jms(tm, "wait") * 1000);
    ex->t_resp_end = ex->t_resp_start + (uint64_t)(jms(tm, "receive") * 1000);
    e.ex = ex;
    e.scheme = scheme;
    e.host = host;
    e.port = port;
    e.server_ip = jstr(je, "serverIPAddress");
    st->entries++;
    if ((rc = cb(opaque, &e)) < 0)
        return rc;
    return 1;
}

int har_read(const char *text, size_t len, har_read_cb cb, void *opaque, har_read_stats_t *st)
{
    cJSON *root = cJSON_ParseWithLength(text, len), *entries, *je;
    har_read_stats_t mine;
    int rc = 0;

    if (!st)
        st = &mine;
    memset(st, 0, sizeof(*st));
    entries =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "log"), "entries");
    if (!root || !cJSON_IsArray(entries)) {
        cJSON_Delete(root);
        return -EBADMSG;
    }
    cJSON_ArrayForEach(je, entries)
    {
        if ((rc = read_entry(je, cb, opaque, st)) < 0)
            break;
    }
    cJSON_Delete(root);
    return rc < 0 ? rc : 0;
}

/* SPDX-License-Identifier: MIT */
#include "harmsg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "content.h"

/* Largest content.text written (after Content-Encoding is undone). */
#define HAR_MAX_TEXT (16 * 1024 * 1024)

/* ---- time ---- */

int harmsg_iso_time(char out[96], int64_t sec, unsigned ms)
{
    time_t t = (time_t)sec;
    struct tm tm;

    int f[6];
    char *o = out;

    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999 || ms > 999)
        return -1;
    /* YYYY-MM-DDTHH:MM:SS.mmmZ, by hand: snprintf costs more than the rest of it. */
    f[0] = tm.tm_year + 1900;
    f[1] = tm.tm_mon + 1;
    f[2] = tm.tm_mday;
    f[3] = tm.tm_hour;
    f[4] = tm.tm_min;
    f[5] = tm.tm_sec;
    *o++ = (char)('0' + f[0] / 1000);
    *o++ = (char)('0' + f[0] / 100 % 10);
    for (int i = 0; i < 6; i++) {
        *o++ = (char)('0' + f[i] / 10 % 10);
        *o++ = (char)('0' + f[i] % 10);
        *o++ = "--T::."[i];
    }
    *o++ = (char)('0' + ms / 100);
    *o++ = (char)('0' + ms / 10 % 10);
    *o++ = (char)('0' + ms % 10);
    *o++ = 'Z';
    *o = '\0';
    return 0;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int is_delim(char c)
{
    return c == 0x09 || (c >= 0x20 && c <= 0x2f) || (c >= 0x3b && c <= 0x40) ||
           (c >= 0x5b && c <= 0x60) || (c >= 0x7b && c <= 0x7e);
}

/* The cookie date algorithm of RFC 6265 5.1.1: locale-free and tolerant of the
   several formats servers send. Returns 0 and *out (seconds) or -1. */
static int cookie_date(const char *s, int64_t *out)
{
    static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
    int have_time = 0, have_day = 0, have_month = 0, have_year = 0;
    int hh = 0, mm = 0, ss = 0, day = 0, month = 0, year = 0;

    while (*s) {
        char tok[32];
        size_t n = 0;

        while (*s && is_delim(*s))
            s++;
        while (*s && !is_delim(*s)) {
            if (n < sizeof(tok) - 1)
                tok[n++] = *s;
            s++;
        }
        tok[n] = '\0';
        if (!n)
            continue;
        if (!have_time && sscanf(tok, "%2d:%2d:%2d", &hh, &mm, &ss) == 3) {
            have_time = 1;
        } else if (!have_day && n <= 2 && tok[0] >= '0' && tok[0] <= '9') {
            day = atoi(tok);
            have_day = 1;
        } else if (!have_month && n >= 3) {
            for (int i = 0; i < 12; i++) {
                if (strncasecmp(tok, months + i * 3, 3) == 0) {
                    month = i + 1;
                    have_month = 1;
                    break;
                }
            }
            if (!have_month && !have_year && n <= 4 && tok[0] >= '0' && tok[0] <= '9') {
                year = atoi(tok);
                have_year = 1;
            }
        } else if (!have_year && n >= 2 && n <= 4 && tok[0] >= '0' && tok[0] <= '9') {
            year = atoi(tok);
            have_year = 1;
        }
    }
    if (!have_time || !have_day || !have_month || !have_year)
        return -1;
    if (year >= 70 && year <= 99)
        year += 1900;
    else if (year >= 0 && year <= 69)
        year += 2000;
    if (day < 1 || day > 31 || year < 1601 || hh > 23 || mm > 59 || ss > 59)
        return -1;
    *out = days_from_civil(year, (unsigned)month, (unsigned)day) * 86400 + hh * 3600 + mm * 60 + ss;
    return 0;
}

/* ---- URLs and forms ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes application/x-www-form-urlencoded: %XX and '+' for space. out needs len bytes. */
static size_t form_decode(const char *s, size_t len, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[o++] = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return o;
}

/* Adds name/value pairs from "a=1&b=2" to arr, decoded. */
static void add_form_pairs(jctx_t *j, jnode_t arr, const char *s, size_t len)
{
    char *buf = malloc(len + 1);
    size_t i = 0;

    if (!buf) {
        j->oom = 1;
        return;
    }
    while (i < len) {
        size_t b = i, eq = (size_t)-1;

        while (i < len && s[i] != '&') {
            if (s[i] == '=' && eq == (size_t)-1)
                eq = i;
            i++;
        }
        if (i > b) {
            size_t nend = eq == (size_t)-1 ? i : eq;
            size_t nl = form_decode(s + b, nend - b, buf);
            jnode_t o = jobj(j, arr, NULL);

            jstrn(j, o, "name", buf, nl);
            if (eq == (size_t)-1) {
                jstr(j, o, "value", "");
            } else {
                size_t vl = form_decode(s + eq + 1, i - eq - 1, buf);

                jstrn(j, o, "value", buf, vl);
            }
        }
        i++;
    }
    free(buf);
}

static uint16_t default_port(const char *scheme)
{
    if (strcasecmp(scheme, "https") == 0 || strcasecmp(scheme, "wss") == 0)
        return 443;
    return 80;
}

/* True for "scheme://...": an absolute-form target, used as it is. */
static int is_absolute(const char *t)
{
    const char *p = t;

    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
        return 0;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
           *p == '+' || *p == '-' || *p == '.')
        p++;
    return strncmp(p, "://", 3) == 0;
}

/* Appends s, percent-encoding what may not appear in a URI (as browsers do). */
static void url_put(char **o, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '<' || c == '>' || c == '\\' || c == '^' ||
            c == '`' || c == '{' || c == '|' || c == '}') {
            *(*o)++ = '%';
            *(*o)++ = hex[c >> 4];
            *(*o)++ = hex[c & 15];
        } else {
            *(*o)++ = (char)c;
        }
    }
}

char *harmsg_url(const har_entry_t *e)
{
    const http_exchange_t *ex = e->ex;
    const char *target = ex->target ? ex->target : "/";
    const char *scheme = e->scheme && *e->scheme ? e->scheme : "http";
    const char *hosthdr = http_msg_header(&ex->req, ":authority");
    const char *host;

    if (!hosthdr)
        hosthdr = http_msg_header(&ex->req, "Host");
    host = hosthdr && *hosthdr ? hosthdr : e->host ? e->host : "";
    size_t hlen = strlen(host), tlen = strlen(target);
    /* A CONNECT's target is an authority, but an extended CONNECT's (RFC 8441) a path. */
    int connect =
        ex->method && strcmp(ex->method, "CONNECT") == 0 && !http_msg_header(&ex->req, ":protocol");
    char port[16] = "";
    char *url, *o;
    size_t cap, slen, plen;

    if (is_absolute(target)) {
        url = malloc(tlen * 3 + 1);
        if (!url)
            return NULL;
        o = url;
        url_put(&o, target, tlen);
        *o = '\0';
        return url;
    }
    if (host == hosthdr) {
        /* Host: example.com:443 on https names the default port: drop it. */
        const char *colon = strrchr(host, ':');

        if (colon && !strchr(colon, ']') && atoi(colon + 1) == default_port(scheme) &&
            strspn(colon + 1, "0123456789") == strlen(colon + 1))
            hlen = (size_t)(colon - host);
    } else if (e->port && e->port != default_port(scheme)) {
        snprintf(port, sizeof(port), ":%u", (unsigned)e->port);
    }
    slen = strlen(scheme);
    cap = slen + 3 + 2 + hlen * 3 + sizeof(port) + 1 + tlen * 3 + 1;
    url = malloc(cap);
    if (!url)
        return NULL;
    o = url;
    memcpy(o, scheme, slen);
    o += slen;
    memcpy(o, "://", 3);
    o += 3;
    if (connect) {
        /* authority-form: the target is the authority. */
        url_put(&o, target, tlen);
    } else {
        int v6 = host != hosthdr && strchr(host, ':') && host[0] != '[';

        if (v6)
            *o++ = '[';
        url_put(&o, host, hlen);
        if (v6)
            *o++ = ']';
        plen = strlen(port);
        memcpy(o, port, plen);
        o += plen;
        if (target[0] == '/')
            url_put(&o, target, tlen);
        else if (strcmp(target, "*") != 0) {
            *o++ = '/';
            url_put(&o, target, tlen);
        }
    }
    *o = '\0';
    return url;
}

/* ---- cookies ---- */

static const char *trim(const char *b, const char **e)
{
    while (b < *e && (*b == ' ' || *b == '\t'))
        b++;
    while (*e > b && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
    return b;
}

static void add_request_cookies(jctx_t *j, jnode_t arr, const http_msg_t *m)
{
    for (size_t i = 0; i < m->nheaders; i++) {
        const char *s = m->headers[i].value;

        if (!http_name_is(m->headers[i].name, "Cookie"))
            continue;
        while (*s) {
            const char *end = strchr(s, ';'), *eq, *nb, *ne, *vb, *ve;

            if (!end)
                end = s + strlen(s);
            eq = memchr(s, '=', (size_t)(end - s));
            ne = eq ? eq : end;
            nb = trim(s, &ne);
            vb = eq ? eq + 1 : end;
            ve = end;
            vb = trim(vb, &ve);
            if (ne > nb || ve > vb)
                jnv(j, arr, nb, (size_t)(ne - nb), vb, (size_t)(ve - vb));
            s = *end ? end + 1 : end;
        }
    }
}

static void add_set_cookie(jctx_t *j, jnode_t arr, const char *s, uint64_t now_usec)
{
    const char *end = strchr(s, ';'), *eq, *nb, *ne, *vb, *ve;
    jnode_t o;
    int have_maxage = 0;
    int64_t expires = 0;
    int have_expires = 0;

    if (!end)
        end = s + strlen(s);
    eq = memchr(s, '=', (size_t)(end - s));
    ne = eq ? eq : s;
    nb = trim(s, &ne);
    vb = eq ? eq + 1 : s;
    ve = end;
    vb = trim(vb, &ve);
    if (ne == nb && ve == vb)
        return;
    o = jnv(j, arr, nb, (size_t)(ne - nb), vb, (size_t)(ve - vb));
    while (*end) {
        const char *ab = end + 1, *ae, *aeq, *kb, *ke, *xb, *xe;
        size_t klen;

        end = strchr(ab, ';');
        if (!end)
            end = ab + strlen(ab);
        ae = end;
        aeq = memchr(ab, '=', (size_t)(ae - ab));
        ke = aeq ? aeq : ae;
        kb = trim(ab, &ke);
        xb = aeq ? aeq + 1 : ae;
        xe = ae;
        xb = trim(xb, &xe);
        klen = (size_t)(ke - kb);
        if (klen == 4 && strncasecmp(kb, "path", 4) == 0) {
            jstrn(j, o, "path", xb, (size_t)(xe - xb));
        } else if (klen == 6 && strncasecmp(kb, "domain", 6) == 0) {
            jstrn(j, o, "domain", xb, (size_t)(xe - xb));
        } else if (klen == 7 && strncasecmp(kb, "expires", 7) == 0 && !have_maxage) {
            char tmp[128];
            size_t l = (size_t)(xe - xb) < sizeof(tmp) - 1 ? (size_t)(xe - xb) : sizeof(tmp) - 1;

            memcpy(tmp, xb, l);
            tmp[l] = '\0';
            have_expires = cookie_date(tmp, &expires) == 0;
        } else if (klen == 7 && strncasecmp(kb, "max-age", 7) == 0 && now_usec) {
            /* Max-Age wins over Expires (RFC 6265 5.3); HAR only has expires. */
            char *endp;
            char tmp[32];
            size_t l = (size_t)(xe - xb) < sizeof(tmp) - 1 ? (size_t)(xe - xb) : sizeof(tmp) - 1;
            long long v;

            memcpy(tmp, xb, l);
            tmp[l] = '\0';
            v = strtoll(tmp, &endp, 10);
            if (l && *endp == '\0' && v > -(1LL << 40) && v < (1LL << 40)) {
                have_maxage = 1;
                have_expires = 1;
                /* Zero or less means "expired": the earliest time. */
                expires = v > 0 ? (int64_t)(now_usec / 1000000) + v : 0;
            }
        } else if (klen == 8 && strncasecmp(kb, "httponly", 8) == 0) {
            jbool(j, o, "httpOnly", 1);
        } else if (klen == 6 && strncasecmp(kb, "secure", 6) == 0) {
            jbool(j, o, "secure", 1);
        }
    }
    if (have_expires) {
        char iso[96];

        if (harmsg_iso_time(iso, expires, 0) == 0)
            jstr(j, o, "expires", iso);
    }
}

static void add_pairs(jctx_t *j, jnode_t arr, const http_header_t *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        jnv(j, arr, h[i].name, strlen(h[i].name), h[i].value, strlen(h[i].value));
}

static void add_headers(jctx_t *j, jnode_t obj, const http_msg_t *m)
{
    add_pairs(j, jarr(j, obj, "headers"), m->headers, m->nheaders);
}

/* HAR 1.2 has no trailers; keep them in a custom field rather than lose them. */
static void add_trailers(jctx_t *j, jnode_t obj, const http_msg_t *m)
{
    if (m->ntrailers)
        add_pairs(j, jarr(j, obj, "_trailers"), m->trailers, m->ntrailers);
}

/* ---- bodies ---- */

void harmsg_body_view_free(body_view_t *v)
{
    free(v->dec);
    free(v->loaded);
    v->dec = v->loaded = NULL;
}

int harmsg_body_view(const http_msg_t *m, body_view_t *v)
{
    const char *ce = http_msg_header(m, "Content-Encoding");
    const uint8_t *body;
    size_t body_len;
    int rr;

    memset(v, 0, sizeof(*v));
    if ((rr = http_msg_body(m, &body, &body_len, &v->loaded)) == -ENOMEM)
        return rr;
    if (rr < 0) {
        /* The spill file could not be read back: the body is lost to the HAR (not to the
           pcapng). */
        body = NULL;
        body_len = 0;
        v->truncated = 1;
    }
    v->data = body;
    v->len = body_len;
    v->truncated |= m->body_truncated;
    if (ce && body_len > 0 && strspn(ce, " \t") != strlen(ce) && strcasecmp(ce, "identity") != 0) {
        size_t outlen;
        int trunc, r = content_decode(ce, body, body_len, HAR_MAX_TEXT, &v->dec, &outlen, &trunc);

        if (r == -ENOMEM) {
            harmsg_body_view_free(v);
            return r;
        }
        if (r == 0) {
            v->data = v->dec;
            v->len = outlen;
            v->undone = 1;
            v->truncated |= trunc;
        } else {
            v->failed = 1;
        }
    }
    if (v->len > HAR_MAX_TEXT) {
        v->len = HAR_MAX_TEXT;
        v->truncated = 1;
    }
    return 0;
}

/* ---- request and response ---- */

/* A body the HAR holds only the start of (--max-body, or a spill file that could not be read
   back): "_truncated" for readers (harread.c, mitmreplay), a comment for people. */
static void mark_truncated(jctx_t *j, jnode_t o, size_t kept)
{
    char c[96];

    jbool(j, o, "_truncated", 1);
    snprintf(c, sizeof(c), "cut short: the first %zu bytes; the pcapng has all of it", kept);
    jstr(j, o, "comment", c);
}

static void add_version(jctx_t *j, jnode_t o, int major, int minor)
{
    char v[32];

    if (major == 0 && minor == 0)
        major = 1, minor = 1;
    /* Chrome and the HTTP/2 RFC say "HTTP/2", not "HTTP/2.0". */
    if (major == 2)
        jstr(j, o, "httpVersion", "HTTP/2");
    else if (major == 1 && (minor == 1 || minor == 0))
        jstr(j, o, "httpVersion", minor ? "HTTP/1.1" : "HTTP/1.0");
    else {
        snprintf(v, sizeof(v), "HTTP/%d.%d", major, minor);
        jstr(j, o, "httpVersion", v);
    }
}

void harmsg_request(jctx_t *j, jnode_t entry, const har_entry_t *e, const char *url,
                    const body_view_t *bv, har_text_t *text)
{
    const http_exchange_t *ex = e->ex;
    const http_msg_t *m = &ex->req;
    jnode_t req = jobj(j, entry, "request");
    const char *q = strchr(url, '?');

    jstr(j, req, "method", ex->method ? ex->method : "");
    jstr(j, req, "url", url);
    add_version(j, req, ex->req_major, ex->req_minor);
    add_request_cookies(j, jarr(j, req, "cookies"), m);
    add_headers(j, req, m);
    {
        jnode_t qs = jarr(j, req, "queryString");

        if (q) {
            size_t qlen = strcspn(q + 1, "#");

            add_form_pairs(j, qs, q + 1, qlen);
        }
    }
    if (m->body_total > 0) {
        jnode_t pd = jobj(j, req, "postData");
        const char *ct = http_msg_header(m, "Content-Type");

        jstr(j, pd, "mimeType", ct ? ct : "");
        if (!bv->failed) {
            text->data = bv->data;
            text->len = bv->len;
            text->base64 = !jis_text(bv->data, bv->len);
            jbody(j, pd, "text", 0);
            /* HAR 1.2 has no encoding for postData; say so in a custom field. */
            if (text->base64)
                jstr(j, pd, "_encoding", "base64");
            if (ct && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0 &&
                !text->base64)
                add_form_pairs(j, jarr(j, pd, "params"), (const char *)bv->data, bv->len);
            if (bv->truncated)
                mark_truncated(j, pd, bv->len);
        } else {
            jstr(j, pd, "comment", "Content-Encoding not decoded");
        }
    }
    jnum(j, req, "headersSize", m->headers_size >= 0 ? (double)m->headers_size : -1);
    jnum(j, req, "bodySize", (double)m->body_total);
    add_trailers(j, req, m);
}

void harmsg_response(jctx_t *j, jnode_t entry, const har_entry_t *e, const body_view_t *bv,
                     har_text_t *text)
{
    const http_exchange_t *ex = e->ex;
    const http_msg_t *m = &ex->resp;
    jnode_t resp = jobj(j, entry, "response");
    jnode_t content;
    const char *ct, *loc;
    uint64_t now = ex->t_resp_start ? ex->t_resp_start : ex->t_req_start;

    if (ex->status == 0) {
        /* No response: still a valid object, as the schema requires one. */
        jnum(j, resp, "status", 0);
        jstr(j, resp, "statusText", "");
        jstr(j, resp, "httpVersion", "");
        jarr(j, resp, "cookies");
        jarr(j, resp, "headers");
        content = jobj(j, resp, "content");
        jnum(j, content, "size", 0);
        jstr(j, content, "mimeType", "x-unknown");
        jstr(j, resp, "redirectURL", "");
        jnum(j, resp, "headersSize", -1);
        jnum(j, resp, "bodySize", -1);
        return;
    }
    jnum(j, resp, "status", ex->status);
    jstr(j, resp, "statusText", ex->reason ? ex->reason : "");
    add_version(j, resp, ex->resp_major, ex->resp_minor);
    {
        jnode_t cookies = jarr(j, resp, "cookies");

        for (size_t i = 0; i < m->nheaders; i++)
            if (http_name_is(m->headers[i].name, "Set-Cookie"))
                add_set_cookie(j, cookies, m->headers[i].value, now);
    }
    add_headers(j, resp, m);
    content = jobj(j, resp, "content");
    ct = http_msg_header(m, "Content-Type");
    if (bv->failed) {
        jnum(j, content, "size", (double)m->body_total);
    } else if (bv->undone) {
        jnum(j, content, "size", (double)bv->len);
        /* Bytes saved, as HAR 1.2 and Chrome define it: decoded minus encoded. */
        if (!bv->truncated)
            jnum(j, content, "compression", (double)bv->len - (double)m->body_total);
    } else {
        /* A truncated body still reports its full size. */
        jnum(j, content, "size", (double)m->body_total);
    }
    jstr(j, content, "mimeType", ct && *ct ? ct : "x-unknown");
    if (bv->failed) {
        jstr(j, content, "comment", "Content-Encoding not decoded");
    } else if (bv->len > 0) {
        text->data = bv->data;
        text->len = bv->len;
        text->base64 = !jis_text(bv->data, bv->len);
        jbody(j, content, "text", 1);
        if (text->base64)
            jstr(j, content, "encoding", "base64");
    }
    if (!bv->failed && bv->truncated)
        mark_truncated(j, content, bv->len);
    loc = http_msg_header(m, "Location");
    jstr(j, resp, "redirectURL", loc ? loc : "");
    jnum(j, resp, "headersSize", m->headers_size >= 0 ? (double)m->headers_size : -1);
    jnum(j, resp, "bodySize", (double)m->body_total);
    add_trailers(j, resp, m);
}

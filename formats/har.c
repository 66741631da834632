/* SPDX-License-Identifier: MIT */
#include "har.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "content.h"

/* Largest content.text written (after Content-Encoding is undone). */
#define HAR_MAX_TEXT (16 * 1024 * 1024)
/* Escaped or base64 text goes to the sink in pieces of this size. */
#define HAR_CHUNK 65536
#define HAR_TAIL "]}}\n"


/* A body to stream in place of a placeholder. */
typedef struct har_text {
    const uint8_t *data;
    size_t len;
    int base64;
} har_text_t;

/*
 * Each entry is printed straight into a buffer, in the order its members are
 * added; nothing is built first (building a cJSON tree and printing it took
 * most of the CPU spent per request). A container is named by a handle; adding
 * to a container closes the ones opened inside it since, so the code reads
 * like tree building as long as it never goes back into a closed container
 * (that is a bug, caught as one). The output is what cJSON_PrintUnformatted
 * printed for the same tree, byte for byte.
 */
#define J_DEPTH 16

typedef unsigned jnode_t; /* 0: none */

typedef struct jctx {
    char *buf;
    size_t len, cap;
    int oom;
    int bad; /* a member added to a closed container */
    int depth;
    struct {
        jnode_t id;
        char close;   /* '}' or ']' */
        size_t count; /* members so far */
    } st[J_DEPTH];
    jnode_t next_id;
    size_t ph[2]; /* where the request and response bodies go; 0: none */
} jctx_t;

struct har_writer {
    sink_t sink;
    uint64_t entries;
    int closed;
    int err; /* a failed write leaves the file broken: keep refusing */
    char *buf;
    jctx_t j; /* its buffer is kept from entry to entry */
};

/* ---- UTF-8 ---- */

/* Length of the valid UTF-8 sequence at p (1-4), or 0. */
static size_t utf8_seq(const uint8_t *p, size_t len)
{
    uint8_t c = p[0];
    size_t n;
    uint32_t cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    /* Overlong forms, surrogates, beyond U+10FFFF. */
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* Text for the HAR: valid UTF-8 without NUL bytes (binary data has them). */
static int utf8_text(const uint8_t *p, size_t len)
{
    size_t i = 0;

    while (i < len) {
        size_t n;

        if (p[i] >= 0x20 && p[i] < 0x80) {
            i++;
            continue;
        }
        if (p[i] == 0)
            return 0;
        n = utf8_seq(p + i, len - i);
        if (!n)
            return 0;
        i += n;
    }
    return 1;
}

/* A valid UTF-8 copy: each byte that is not part of a valid sequence (and NUL)
   becomes U+FFFD, so the HAR stays valid JSON whatever was on the wire. */
static char *utf8_clean(const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    char *out = malloc(len * 3 + 1), *o = out;
    size_t i = 0;

    if (!out)
        return NULL;
    while (i < len) {
        size_t n = p[i] ? utf8_seq(p + i, len - i) : 0;

        if (n) {
            memcpy(o, p + i, n);
            o += n;
            i += n;
        } else {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    *o = '\0';
    return out;
}

/* ---- JSON printing ---- */

static int jgrow(jctx_t *j, size_t n)
{
    size_t cap;
    char *b;

    if (j->oom)
        return -1;
    cap = j->cap ? j->cap : 1024;
    while (cap - j->len < n) {
        if (cap > ((size_t)-1) / 2) {
            j->oom = 1;
            return -1;
        }
        cap *= 2;
    }
    if (!(b = realloc(j->buf, cap))) {
        j->oom = 1;
        return -1;
    }
    j->buf = b;
    j->cap = cap;
    return 0;
}

/* Room for n more bytes (j->oom stays set once a growth failed: cap - len is then
   never enough for what follows, so nothing more is written). */
static inline int jreserve(jctx_t *j, size_t n)
{
    return j->cap - j->len >= n ? 0 : jgrow(j, n);
}

static inline void jput(jctx_t *j, const char *s, size_t n)
{
    if (jreserve(j, n) == 0) {
        memcpy(j->buf + j->len, s, n);
        j->len += n;
    }
}

static inline void jputc(jctx_t *j, char c)
{
    if (jreserve(j, 1) == 0)
        j->buf[j->len++] = c;
}

/* Starts a member of container parent: closes what was opened inside it since,
   then prints the separator and the key (keys are literals: nothing to escape). */
static inline int jmember(jctx_t *j, jnode_t parent, const char *key)
{
    int d = j->depth;
    size_t klen;
    char *o;

    while (d > 0 && j->st[d - 1].id != parent)
        d--;
    if (d == 0) {
        j->bad = 1;
        return -1;
    }
    while (j->depth > d)
        jputc(j, j->st[--j->depth].close);
    klen = key ? strlen(key) : 0;
    if (jreserve(j, klen + 4) < 0)
        return -1;
    o = j->buf + j->len;
    if (j->st[d - 1].count++)
        *o++ = ',';
    if (key) {
        *o++ = '"';
        memcpy(o, key, klen);
        o += klen;
        *o++ = '"';
        *o++ = ':';
    }
    j->len = (size_t)(o - j->buf);
    return 0;
}

static jnode_t jopen(jctx_t *j, char open, char close)
{
    if (j->depth == J_DEPTH) {
        j->bad = 1;
        return 0;
    }
    jputc(j, open);
    j->st[j->depth].id = ++j->next_id;
    j->st[j->depth].close = close;
    j->st[j->depth].count = 0;
    j->depth++;
    return j->next_id;
}

/* Empties the entry buffer (keeping its memory) for the next entry. */
static void jreset(jctx_t *j)
{
    j->len = 0;
    j->oom = j->bad = 0;
    j->depth = 0;
    j->ph[0] = j->ph[1] = 0;
}

/* The outermost object. */
static jnode_t jroot(jctx_t *j)
{
    return jopen(j, '{', '}');
}

/* Closes every open container. */
static void jend(jctx_t *j)
{
    while (j->depth > 0)
        jputc(j, j->st[--j->depth].close);
}

/* A JSON string of s, which must be valid UTF-8; escaped as cJSON escapes. */
static void jquote(jctx_t *j, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char *o;

    /* Worst case: every byte as \\u00XX, plus the quotes. */
    if (len > ((size_t)-1 - 2) / 6 || jreserve(j, len * 6 + 2) < 0) {
        j->oom = 1;
        return;
    }
    o = j->buf + j->len;
    *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"':
        case '\\':
            *o++ = (char)c;
            break;
        case '\b':
            *o++ = 'b';
            break;
        case '\f':
            *o++ = 'f';
            break;
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        default:
            memcpy(o, "u00", 3);
            o[3] = hex[c >> 4];
            o[4] = hex[c & 15];
            o += 5;
        }
    }
    *o++ = '"';
    j->len = (size_t)(o - j->buf);
}

static void jstrn(jctx_t *j, jnode_t obj, const char *key, const char *s, size_t len)
{
    char *clean;
    size_t i;

    if (jmember(j, obj, key) < 0)
        return;
    if (!s) {
        jput(j, "\"\"", 2);
        return;
    }
    /* ASCII needs no UTF-8 cleaning and no copy. */
    for (i = 0; i < len && (unsigned char)s[i] < 0x80 && s[i]; i++)
        ;
    if (i == len) {
        jquote(j, s, len);
        return;
    }
    if (!(clean = utf8_clean(s, len))) {
        j->oom = 1;
        return;
    }
    jquote(j, clean, strlen(clean));
    free(clean);
}

static void jstr(jctx_t *j, jnode_t obj, const char *key, const char *s)
{
    jstrn(j, obj, key, s, s ? strlen(s) : 0);
}

/* Prints integers and numbers with up to 3 decimals (all HAR times are rounded to the
   microsecond) without printf; other numbers the way cJSON prints them. */
static void jnum(jctx_t *j, jnode_t obj, const char *key, double v)
{
    char buf[64], *p = buf + sizeof(buf);
    int neg;
    long long whole, milli;

    if (jmember(j, obj, key) < 0)
        return;
    /* cJSON printed NaN and infinities as null; the schema wants numbers. */
    if (!isfinite(v))
        v = -1;
    neg = v < 0;
    if (neg)
        v = -v;
    if (v >= 9e15 || fabs(v * 1000 - (long long)(v * 1000 + 0.5)) > 1e-6 * (v * 1000 + 1)) {
        double test = 0;
        int n;

        if (neg)
            v = -v;
        /* cJSON: 15 significant digits when they read back as the same number, else 17. */
        n = snprintf(buf, sizeof(buf), "%1.15g", v);
        if (sscanf(buf, "%lg", &test) != 1 || test != v)
            n = snprintf(buf, sizeof(buf), "%1.17g", v);
        jput(j, buf, (size_t)n);
        return;
    }
    milli = (long long)(v * 1000 + 0.5);
    whole = milli / 1000;
    milli %= 1000;
    if (milli) {
        int digits = 3;
        while (milli % 10 == 0) {
            milli /= 10;
            digits--;
        }
        for (int i = 0; i < digits; i++) {
            *--p = (char)('0' + milli % 10);
            milli /= 10;
        }
        *--p = '.';
    }
    do {
        *--p = (char)('0' + whole % 10);
        whole /= 10;
    } while (whole);
    if (neg)
        *--p = '-';
    jput(j, p, (size_t)(buf + sizeof(buf) - p));
}

static void jbool(jctx_t *j, jnode_t obj, const char *key, int v)
{
    if (jmember(j, obj, key) == 0)
        jput(j, v ? "true" : "false", v ? 4 : 5);
}

static jnode_t jobj(jctx_t *j, jnode_t obj, const char *key)
{
    return jmember(j, obj, key) < 0 ? 0 : jopen(j, '{', '}');
}

static jnode_t jarr(jctx_t *j, jnode_t obj, const char *key)
{
    return jmember(j, obj, key) < 0 ? 0 : jopen(j, '[', ']');
}

/* Marks where body `which` (0 request, 1 response) is streamed in when written. */
static void jbody(jctx_t *j, jnode_t obj, const char *key, int which)
{
    if (jmember(j, obj, key) == 0)
        j->ph[which] = j->len;
}

static jnode_t jnv(jctx_t *j, jnode_t arr, const char *name, size_t nlen, const char *value,
                   size_t vlen)
{
    jnode_t o = jobj(j, arr, NULL);

    jstrn(j, o, "name", name, nlen);
    jstrn(j, o, "value", value, vlen);
    return o;
}

/* ---- time ---- */

static int iso_time_sec(char out[96], int64_t sec, unsigned ms)
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

        if (c <= 0x20 || c >= 0x7f || strchr("\"<>\\^`{|}", c)) {
            *(*o)++ = '%';
            *(*o)++ = hex[c >> 4];
            *(*o)++ = hex[c & 15];
        } else {
            *(*o)++ = (char)c;
        }
    }
}

static char *build_url(const har_entry_t *e)
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
    int connect = ex->method && strcmp(ex->method, "CONNECT") == 0;
    char port[16] = "";
    char *url, *o;
    size_t cap;

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
    cap = strlen(scheme) + 3 + 2 + hlen * 3 + sizeof(port) + 1 + tlen * 3 + 1;
    url = malloc(cap);
    if (!url)
        return NULL;
    o = url;
    o += sprintf(o, "%s://", scheme);
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
        o += sprintf(o, "%s", port);
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

        if (strcasecmp(m->headers[i].name, "Cookie") != 0)
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

        if (iso_time_sec(iso, expires, 0) == 0)
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

/*
 * What the HAR shows of a body: Content-Encoding undone when it can be.
 * *dec is a buffer to free (NULL when the body is shown as stored).
 */
typedef struct body_view {
    const uint8_t *data;
    size_t len;
    uint8_t *dec;
    int undone; /* a Content-Encoding was removed */
    int failed; /* a Content-Encoding could not be removed */
    int truncated;
} body_view_t;

static int body_view(const http_msg_t *m, body_view_t *v)
{
    const char *ce = http_msg_header(m, "Content-Encoding");

    memset(v, 0, sizeof(*v));
    v->data = m->body;
    v->len = m->body_len;
    v->truncated = m->body_truncated;
    if (ce && m->body_len > 0 && strspn(ce, " \t") != strlen(ce) &&
        strcasecmp(ce, "identity") != 0) {
        size_t outlen;
        int trunc,
            r = content_decode(ce, m->body, m->body_len, HAR_MAX_TEXT, &v->dec, &outlen, &trunc);

        if (r == -ENOMEM)
            return r;
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

/* ---- writing ---- */

static int sink_write(har_writer_t *w, const void *buf, size_t len)
{
    int r;

    if (w->err)
        return w->err;
    if (!len)
        return 0;
    r = w->sink.write(w->sink.opaque, buf, len);
    if (r < 0)
        w->err = r;
    return r;
}

static int stream_escaped(har_writer_t *w, const uint8_t *p, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char *b = w->buf;
    size_t o = 0;
    int r;

    for (size_t i = 0; i < len; i++) {
        uint8_t c = p[i];

        if (o > HAR_CHUNK - 8) {
            if ((r = sink_write(w, b, o)) < 0)
                return r;
            o = 0;
        }
        if (c == '"' || c == '\\') {
            b[o++] = '\\';
            b[o++] = (char)c;
        } else if (c >= 0x20) {
            b[o++] = (char)c;
        } else if (c == '\n') {
            b[o++] = '\\';
            b[o++] = 'n';
        } else if (c == '\r') {
            b[o++] = '\\';
            b[o++] = 'r';
        } else if (c == '\t') {
            b[o++] = '\\';
            b[o++] = 't';
        } else {
            memcpy(b + o, "\\u00", 4);
            b[o + 4] = hex[c >> 4];
            b[o + 5] = hex[c & 15];
            o += 6;
        }
    }
    return sink_write(w, b, o);
}

/* Encodes up to 3 bytes as 4 base64 characters. */
static void b64_quad(const uint8_t *p, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint32_t v = (uint32_t)p[0] << 16;

    if (n > 1)
        v |= (uint32_t)p[1] << 8;
    if (n > 2)
        v |= p[2];
    out[0] = tab[v >> 18 & 63];
    out[1] = tab[v >> 12 & 63];
    out[2] = n > 1 ? tab[v >> 6 & 63] : '=';
    out[3] = n > 2 ? tab[v & 63] : '=';
}

/* Encodes the whole triples of p[0..len) into out; returns how many bytes it took. */
static size_t b64_triples(const uint8_t *p, size_t len, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0;

    for (; i + 3 <= len; i += 3, out += 4) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

        out[0] = tab[v >> 18];
        out[1] = tab[v >> 12 & 63];
        out[2] = tab[v >> 6 & 63];
        out[3] = tab[v & 63];
    }
    return i;
}

static int stream_base64(har_writer_t *w, const uint8_t *p, size_t len)
{
    /* Whole triples, a chunk's worth at a time, then the 1 or 2 bytes left. */
    const size_t per = HAR_CHUNK / 4 * 3;
    int r;

    while (len >= 3) {
        size_t n = b64_triples(p, len < per ? len : per, w->buf);

        if ((r = sink_write(w, w->buf, n / 3 * 4)) < 0)
            return r;
        p += n;
        len -= n;
    }
    if (len) {
        b64_quad(p, len, w->buf);
        return sink_write(w, w->buf, 4);
    }
    return 0;
}

/* A malloc'd base64 string of p. */
static char *base64_dup(const uint8_t *p, size_t len)
{
    char *out = malloc(len / 3 * 4 + 5), *o = out;

    if (!out)
        return NULL;
    size_t n = b64_triples(p, len, o);

    o += n / 3 * 4;
    if (n < len) {
        b64_quad(p + n, len - n, o);
        o += 4;
    }
    *o = '\0';
    return out;
}

/* Chrome's _webSocketMessages: text frames as text, the others base64. */
static void add_ws_messages(jctx_t *j, jnode_t entry, const http_exchange_t *ex)
{
    jnode_t arr;

    if (!ex->nws)
        return;
    arr = jarr(j, entry, "_webSocketMessages");
    for (size_t i = 0; i < ex->nws; i++) {
        const http_ws_message_t *m = &ex->ws[i];
        jnode_t o = jobj(j, arr, NULL);

        jstr(j, o, "type", m->send ? "send" : "receive");
        jnum(j, o, "time", (double)m->ts_usec / 1e6);
        jnum(j, o, "opcode", m->opcode);
        if (m->opcode == 1) {
            jstrn(j, o, "data", (const char *)m->data, m->len);
        } else {
            char *b64 = base64_dup(m->data, m->len);

            jstr(j, o, "data", b64 ? b64 : "");
            if (!b64)
                j->oom = 1;
            free(b64);
        }
    }
}

static int stream_text(har_writer_t *w, const har_text_t *t)
{
    int r;

    if ((r = sink_write(w, "\"", 1)) < 0)
        return r;
    r = t->base64 ? stream_base64(w, t->data, t->len) : stream_escaped(w, t->data, t->len);
    if (r < 0)
        return r;
    return sink_write(w, "\"", 1);
}

/* Writes the printed entry, streaming the bodies in where jbody marked them. */
static int emit(har_writer_t *w, const har_text_t *req, const har_text_t *resp)
{
    const jctx_t *j = &w->j;
    size_t at = 0;
    int r;

    for (int k = 0; k < 2; k++) {
        size_t ph = j->ph[k];

        if (!ph)
            continue;
        if ((r = sink_write(w, j->buf + at, ph - at)) < 0)
            return r;
        if ((r = stream_text(w, k ? resp : req)) < 0)
            return r;
        at = ph;
    }
    return sink_write(w, j->buf + at, j->len - at);
}

static double ms_span(uint64_t from, uint64_t to)
{
    return from && to > from ? (double)(to - from) / 1000.0 : 0;
}

static double opt_ms(double v)
{
    return isfinite(v) && v >= 0 ? v : -1;
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

static void add_request(jctx_t *j, jnode_t entry, const har_entry_t *e, const char *url,
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
            text->base64 = !utf8_text(bv->data, bv->len);
            jbody(j, pd, "text", 0);
            /* HAR 1.2 has no encoding for postData; say so in a custom field. */
            if (text->base64)
                jstr(j, pd, "_encoding", "base64");
            if (ct && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0 &&
                !text->base64)
                add_form_pairs(j, jarr(j, pd, "params"), (const char *)bv->data, bv->len);
        } else {
            jstr(j, pd, "comment", "Content-Encoding not decoded");
        }
    }
    jnum(j, req, "headersSize", m->headers_size >= 0 ? (double)m->headers_size : -1);
    jnum(j, req, "bodySize", (double)m->body_total);
    add_trailers(j, req, m);
}

static void add_response(jctx_t *j, jnode_t entry, const har_entry_t *e, const body_view_t *bv,
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
            if (strcasecmp(m->headers[i].name, "Set-Cookie") == 0)
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
        text->base64 = !utf8_text(bv->data, bv->len);
        jbody(j, content, "text", 1);
        if (text->base64)
            jstr(j, content, "encoding", "base64");
    }
    loc = http_msg_header(m, "Location");
    jstr(j, resp, "redirectURL", loc ? loc : "");
    jnum(j, resp, "headersSize", m->headers_size >= 0 ? (double)m->headers_size : -1);
    jnum(j, resp, "bodySize", (double)m->body_total);
    add_trailers(j, resp, m);
}

/* serverIPAddress must be an address (the schema checks), without brackets or zone. */
static void add_server_ip(jctx_t *j, jnode_t entry, const char *ip)
{
    char buf[64];
    size_t len;
    unsigned char bin[16];

    if (ip[0] == '[')
        ip++;
    len = strcspn(ip, "]%");
    if (len >= sizeof(buf))
        return;
    memcpy(buf, ip, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET, buf, bin) == 1 || inet_pton(AF_INET6, buf, bin) == 1)
        jstr(j, entry, "serverIPAddress", buf);
}

/* Whole microseconds, so sums print as 1.234 and not 1.2340000000000002. Done by
   hand: the formats library links no libm. */
static double round_us(double ms)
{
    if (!(ms > 0) || ms > 1e12)
        return ms > 0 ? ms : 0;
    return (double)(int64_t)(ms * 1000.0 + 0.5) / 1000.0;
}

int har_writer_add(har_writer_t *w, const har_entry_t *e)
{
    const http_exchange_t *ex = e->ex;
    jctx_t *j = &w->j;
    body_view_t reqv, respv;
    har_text_t reqt = {0}, respt = {0};
    jnode_t entry, t;
    char iso[96], *url = NULL;
    uint64_t started = e->started_usec ? e->started_usec : ex->t_req_start;
    const char *error = e->error ? e->error : ex->error;
    double send, wait = 0, receive = 0, total;
    int r;

    if (w->err)
        return w->err;
    if (w->closed)
        return -EINVAL;
    jreset(j);
    if ((r = body_view(&ex->req, &reqv)) < 0)
        return r;
    if ((r = body_view(&ex->resp, &respv)) < 0) {
        free(reqv.dec);
        return r;
    }
    url = build_url(e);
    if (!url) {
        r = -ENOMEM;
        goto out;
    }

    send = ms_span(ex->t_req_start, ex->t_req_end);
    if (ex->status) {
        wait = ms_span(ex->t_req_end, ex->t_resp_start);
        receive = ms_span(ex->t_resp_start, ex->t_resp_end);
    }
    /* ssl is part of connect already (HAR 1.2): not added again. */
    total = send + wait + receive;
    if (opt_ms(e->blocked) > 0)
        total += e->blocked;
    if (opt_ms(e->dns) > 0)
        total += e->dns;
    if (opt_ms(e->connect) > 0)
        total += e->connect;

    if (iso_time_sec(iso, (int64_t)(started / 1000000), (unsigned)(started / 1000 % 1000)) < 0)
        snprintf(iso, sizeof(iso), "1970-01-01T00:00:00.000Z");
    entry = jroot(j);
    jstr(j, entry, "startedDateTime", iso);
    jnum(j, entry, "time", round_us(total));
    add_request(j, entry, e, url, &reqv, &reqt);
    add_response(j, entry, e, &respv, &respt);
    jobj(j, entry, "cache");
    t = jobj(j, entry, "timings");
    jnum(j, t, "blocked", opt_ms(e->blocked));
    jnum(j, t, "dns", opt_ms(e->dns));
    jnum(j, t, "connect", opt_ms(e->connect));
    jnum(j, t, "ssl", opt_ms(e->ssl));
    jnum(j, t, "send", round_us(send));
    jnum(j, t, "wait", round_us(wait));
    jnum(j, t, "receive", round_us(receive));
    if (e->server_ip)
        add_server_ip(j, entry, e->server_ip);
    if (e->connection)
        jstr(j, entry, "connection", e->connection);
    add_ws_messages(j, entry, ex);
    if (e->index >= 0)
        jnum(j, entry, "_index", (double)e->index);
    if (e->has_pcapng) {
        jnode_t pc = jobj(j, entry, "_pcapng");

        jnum(j, pc, "interface", e->pcapng_interface);
        jnum(j, pc, "frame", (double)e->pcapng_frame);
        jnum(j, pc, "stream", (double)e->pcapng_stream);
    }
    if (error)
        jstr(j, entry, "_error", error);
    if (reqv.truncated || respv.truncated)
        jbool(j, entry, "_truncated", 1);
    if (e->pid > 0)
        jnum(j, entry, "_pid", (double)e->pid);
    if (e->process)
        jstr(j, entry, "_process", e->process);
    if (e->exe)
        jstr(j, entry, "_exe", e->exe);
    if (e->cmdline)
        jstr(j, entry, "_cmdline", e->cmdline);
    jend(j);
    if (j->oom || j->bad) {
        r = j->oom ? -ENOMEM : -EINVAL;
        goto out;
    }
    if (w->entries > 0 && (r = sink_write(w, ",", 1)) < 0)
        goto out;
    if ((r = emit(w, &reqt, &respt)) < 0)
        goto out;
    if (w->sink.write_tail && (r = w->sink.write_tail(w->sink.opaque, HAR_TAIL, 4)) < 0) {
        w->err = r;
        goto out;
    }
    w->entries++;
    r = 0;
out:
    free(url);
    free(reqv.dec);
    free(respv.dec);
    return r;
}

har_writer_t *har_writer_new(const sink_t *sink, const char *creator_name,
                             const char *creator_version, int *err)
{
    har_writer_t *w = calloc(1, sizeof(*w));
    jctx_t *j;
    jnode_t log, creator;
    int r = -ENOMEM;

    if (!w)
        goto fail;
    j = &w->j;
    w->sink = *sink;
    w->buf = malloc(HAR_CHUNK);
    if (!w->buf)
        goto fail;
    /* The log up to its entries array, left open. */
    log = jobj(j, jroot(j), "log");
    jstr(j, log, "version", "1.2");
    creator = jobj(j, log, "creator");
    jstr(j, creator, "name", creator_name ? creator_name : "");
    jstr(j, creator, "version", creator_version ? creator_version : "");
    jarr(j, log, "pages");
    jarr(j, log, "entries");
    if (j->oom || j->bad)
        goto fail;
    if ((r = sink_write(w, j->buf, j->len)) < 0)
        goto fail;
    /* Even an empty recording is a complete HAR file. */
    if (w->sink.write_tail && (r = w->sink.write_tail(w->sink.opaque, HAR_TAIL, 4)) < 0)
        goto fail;
    return w;
fail:
    if (err)
        *err = r;
    har_writer_free(w);
    return NULL;
}

uint64_t har_writer_entries(const har_writer_t *w)
{
    return w->entries;
}

int har_writer_close(har_writer_t *w)
{
    int r;

    if (w->closed)
        return 0;
    if ((r = sink_write(w, HAR_TAIL, 4)) < 0)
        return r;
    w->closed = 1;
    return 0;
}

void har_writer_free(har_writer_t *w)
{
    if (!w)
        return;
    free(w->j.buf);
    free(w->buf);
    free(w);
}

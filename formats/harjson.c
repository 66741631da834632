/* SPDX-License-Identifier: MIT */
#include "harjson.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
int jis_text(const uint8_t *p, size_t len)
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

/* Records a container whose opening bracket (and count members) the caller has printed;
   the caller checked that depth < J_DEPTH. */
static jnode_t jpush(jctx_t *j, char close, size_t count)
{
    j->st[j->depth].id = ++j->next_id;
    j->st[j->depth].close = close;
    j->st[j->depth].count = count;
    j->depth++;
    return j->next_id;
}

static jnode_t jopen(jctx_t *j, char open, char close)
{
    if (j->depth == J_DEPTH) {
        j->bad = 1;
        return 0;
    }
    jputc(j, open);
    return jpush(j, close, 0);
}

/* Empties the entry buffer (keeping its memory) for the next entry. */
void jreset(jctx_t *j)
{
    j->len = 0;
    j->oom = j->bad = 0;
    j->depth = 0;
    j->ph[0] = j->ph[1] = 0;
}

/* The outermost object. */
jnode_t jroot(jctx_t *j)
{
    return jopen(j, '{', '}');
}

/* Closes every open container. */
void jend(jctx_t *j)
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

/* What jstrn does with each byte: 0 copy it, 1 escape it, 2 not ASCII (or NUL): the
   string needs UTF-8 cleaning first. */
static const uint8_t jclass[256] = {
    2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

void jstrn(jctx_t *j, jnode_t obj, const char *key, const char *s, size_t len)
{
    char *clean;
    size_t i;

    if (jmember(j, obj, key) < 0)
        return;
    if (!s) {
        jput(j, "\"\"", 2);
        return;
    }
    /* ASCII needs no UTF-8 cleaning and no copy: the usual strings (names, values, URLs
       without escapes) are copied in this one pass. */
    if (len <= ((size_t)-1 - 2) / 6 && jreserve(j, len + 2) == 0) {
        char *o = j->buf + j->len;

        *o++ = '"';
        for (i = 0; i < len && !jclass[(unsigned char)s[i]]; i++)
            o[i] = s[i];
        if (i == len) {
            o[i] = '"';
            j->len += len + 2;
            return;
        }
    }
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

void jstr(jctx_t *j, jnode_t obj, const char *key, const char *s)
{
    jstrn(j, obj, key, s, s ? strlen(s) : 0);
}

/* Prints integers and numbers with up to 3 decimals (all HAR times are rounded to the
   microsecond) without printf; other numbers the way cJSON prints them. */
void jnum(jctx_t *j, jnode_t obj, const char *key, double v)
{
    char buf[64], *p = buf + sizeof(buf);
    int neg;
    long long whole, milli;

    if (jmember(j, obj, key) < 0)
        return;
    /* Integers (sizes, status codes, -1 for absent timings) the short way. */
    if (v > -9e15 && v < 9e15 && v == (double)(long long)v) {
        long long n = (long long)v;
        unsigned long long u = n < 0 ? (unsigned long long)-n : (unsigned long long)n;

        do {
            *--p = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        if (n < 0)
            *--p = '-';
        jput(j, p, (size_t)(buf + sizeof(buf) - p));
        return;
    }
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

void jbool(jctx_t *j, jnode_t obj, const char *key, int v)
{
    if (jmember(j, obj, key) == 0)
        jput(j, v ? "true" : "false", v ? 4 : 5);
}

jnode_t jobj(jctx_t *j, jnode_t obj, const char *key)
{
    return jmember(j, obj, key) < 0 ? 0 : jopen(j, '{', '}');
}

jnode_t jarr(jctx_t *j, jnode_t obj, const char *key)
{
    return jmember(j, obj, key) < 0 ? 0 : jopen(j, '[', ']');
}

/* Marks where body `which` (0 request, 1 response) is streamed in when written. */
void jbody(jctx_t *j, jnode_t obj, const char *key, int which)
{
    if (jmember(j, obj, key) == 0)
        j->ph[which] = j->len;
}

/* True when every byte of s[0..len) prints as itself (jclass 0). */
static inline int jplain(const char *s, size_t len)
{
    unsigned char any = 0;

    for (size_t i = 0; i < len; i++)
        any |= jclass[(unsigned char)s[i]];
    return !any;
}

jnode_t jnv(jctx_t *j, jnode_t arr, const char *name, size_t nlen, const char *value, size_t vlen)
{
    static const char k1[] = "{\"name\":\"", k2[] = "\",\"value\":\"";
    jnode_t o;

    /* The usual header or parameter (ASCII, nothing to escape) in one go: the same bytes as
       the general path below, and the object stays open as jobj leaves it. */
    if (name && value && nlen <= ((size_t)-1 - 32) / 2 && vlen <= ((size_t)-1 - 32) / 2 &&
        jplain(name, nlen) && jplain(value, vlen)) {
        char *p;

        if (jmember(j, arr, NULL) < 0)
            return 0;
        if (j->depth == J_DEPTH) {
            j->bad = 1;
            return 0;
        }
        if (jreserve(j, nlen + vlen + sizeof(k1) + sizeof(k2)) < 0)
            return 0;
        p = j->buf + j->len;

        memcpy(p, k1, sizeof(k1) - 1);
        p += sizeof(k1) - 1;
        memcpy(p, name, nlen);
        p += nlen;
        memcpy(p, k2, sizeof(k2) - 1);
        p += sizeof(k2) - 1;
        memcpy(p, value, vlen);
        p += vlen;
        *p++ = '"';
        j->len = (size_t)(p - j->buf);
        return jpush(j, '}', 2);
    }
    o = jobj(j, arr, NULL);

    jstrn(j, o, "name", name, nlen);
    jstrn(j, o, "value", value, vlen);
    return o;
}

/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "grow.h"
#include "match.h"

/* The parts of a key, each a string, so that a miss can say which part differed. */
enum { P_SCHEME, P_METHOD, P_HOST, P_PORT, P_PATH, P_QUERY, P_BODY, P_HEADERS, P_COUNT };

static const char *const part_names[P_COUNT] = {"scheme", "method", "host", "port",
                                                "path",   "query",  "body", "headers"};

typedef struct rec {
    char *parts[P_COUNT];
    uint8_t digest[SHA256_DIGEST_LENGTH];
    size_t id;
    size_t group; /* index of the first record with this digest */
    size_t uses;  /* on the group's first record: answers given */
    char *desc;
} rec_t;

struct match {
    match_opts_t o;
    rec_t *recs;
    size_t n, cap;
};

/* A growable string with a hard bound: keys never exceed 1 MiB (bodies are hashed). */
typedef struct str {
    char *p;
    size_t len, cap;
    int oom;
} str_t;

#define STR_MAX (1u << 20)

static void str_add(str_t *s, const char *d, size_t n)
{
    if (s->oom)
        return;
    if (mr_grow(&s->p, &s->cap, s->len + n + 1, 64, STR_MAX) < 0) {
        s->oom = 1;
        return;
    }
    memcpy(s->p + s->len, d, n);
    s->len += n;
    s->p[s->len] = '\0';
}

static void str_adds(str_t *s, const char *d)
{
    str_add(s, d, strlen(d));
}

static char *str_take(str_t *s)
{
    if (s->oom) {
        free(s->p);
        return NULL;
    }
    if (!s->p)
        return strdup("");
    return s->p;
}

static int in_list(const char *const *list, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(list[i]) == len && memcmp(list[i], name, len) == 0)
            return 1;
    return 0;
}

/* Appends "name=value&" for every parameter of a query or form not ignored, in order. */
static void add_params(str_t *s, const char *q, size_t qlen, const char *const *ignore,
                       size_t nignore)
{
    size_t i = 0;

    while (i < qlen) {
        size_t end = i, eq;
        while (end < qlen && q[end] != '&' && q[end] != ';')
            end++;
        for (eq = i; eq < end && q[eq] != '='; eq++)
            ;
        if (end > i && !in_list(ignore, nignore, q + i, eq - i)) {
            str_add(s, q + i, end - i);
            str_add(s, "&", 1);
        }
        i = end + 1;
    }
}

static const char *header(const match_req_t *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

static void hex(const uint8_t *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static int make_parts(const match_opts_t *o, const match_req_t *r, char *parts[P_COUNT])
{
    str_t s[P_COUNT];
    const char *target = r->target ? r->target : "/";
    const char *qm = strchr(target, '?');
    size_t plen = qm ? (size_t)(qm - target) : strlen(target);
    char buf[16];

    memset(s, 0, sizeof(s));
    str_adds(&s[P_SCHEME], r->scheme ? r->scheme : "");
    str_adds(&s[P_METHOD], r->method ? r->method : "");
    if (!o->ignore_host && r->host)
        for (const char *h = r->host; *h; h++) {
            char c = (char)(*h >= 'A' && *h <= 'Z' ? *h + 32 : *h);
            str_add(&s[P_HOST], &c, 1);
        }
    if (!o->ignore_port) {
        snprintf(buf, sizeof(buf), "%u", (unsigned)r->port);
        str_adds(&s[P_PORT], buf);
    }
    str_add(&s[P_PATH], target, plen);
    if (qm)
        add_params(&s[P_QUERY], qm + 1, strlen(qm + 1), o->ignore_params, o->nignore_params);
    if (!o->ignore_body) {
        const char *ct = header(r, "content-type");
        uint8_t d[SHA256_DIGEST_LENGTH];
        char hx[2 * SHA256_DIGEST_LENGTH + 1];

        if (o->nignore_payload_params && ct &&
            strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0) {
            str_t f = {0};
            add_params(&f, (const char *)r->body, r->body_len, o->ignore_payload_params,
                       o->nignore_payload_params);
            SHA256((const uint8_t *)(f.p ? f.p : ""), f.len, d);
            free(f.p);
        } else {
            SHA256(r->body ? r->body : (const uint8_t *)"", r->body_len, d);
        }
        hex(d, 8, hx);
        str_add(&s[P_BODY], "sha256:", 7);
        str_add(&s[P_BODY], hx, 16);
    }
    for (size_t i = 0; i < o->nuse_headers; i++) {
        const char *v = header(r, o->use_headers[i]);
        str_adds(&s[P_HEADERS], o->use_headers[i]);
        str_adds(&s[P_HEADERS], v ? ": " : " absent");
        if (v)
            str_adds(&s[P_HEADERS], v);
        str_add(&s[P_HEADERS], "\n", 1);
    }
    for (int i = 0; i < P_COUNT; i++) {
        parts[i] = str_take(&s[i]);
        if (!parts[i]) {
            for (int j = 0; j < i; j++)
                free(parts[j]);
            for (int j = i + 1; j < P_COUNT; j++)
                free(s[j].p);
            return -ENOMEM;
        }
    }
    return 0;
}

static void digest_parts(char *const parts[P_COUNT], uint8_t out[SHA256_DIGEST_LENGTH])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();

    memset(out, 0, SHA256_DIGEST_LENGTH);
    if (!c)
        return;
    EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    for (int i = 0; i < P_COUNT; i++)
        EVP_DigestUpdate(c, parts[i], strlen(parts[i]) + 1); /* the NUL separates parts */
    EVP_DigestFinal_ex(c, out, NULL);
    EVP_MD_CTX_free(c);
}

static void free_parts(char *parts[P_COUNT])
{
    for (int i = 0; i < P_COUNT; i++)
        free(parts[i]);
}

match_t *match_new(const match_opts_t *o)
{
    match_t *m = calloc(1, sizeof(*m));

    if (m)
        m->o = *o;
    return m;
}

void match_free(match_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        free_parts(m->recs[i].parts);
        free(m->recs[i].desc);
    }
    free(m->recs);
    free(m);
}

void match_describe(const match_req_t *r, char *buf, size_t len)
{
    int def = r->port == 0 || (r->scheme && ((!strcmp(r->scheme, "https") && r->port == 443) ||
                                             (!strcmp(r->scheme, "http") && r->port == 80)));
    char port[8] = "";

    if (!def)
        snprintf(port, sizeof(port), ":%u", (unsigned)r->port);
    snprintf(buf, len, "%s %s://%s%s%s", r->method ? r->method : "?",
             r->scheme ? r->scheme : "http", r->host ? r->host : "", port,
             r->target ? r->target : "/");
}

int match_add(match_t *m, const match_req_t *r, size_t id)
{
    rec_t *rec;
    char desc[2048];

    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        rec_t *n = realloc(m->recs, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        m->recs = n;
        m->cap = cap;
    }
    rec = &m->recs[m->n];
    memset(rec, 0, sizeof(*rec));
    if (make_parts(&m->o, r, rec->parts) < 0)
        return -ENOMEM;
    match_describe(r, desc, sizeof(desc));
    if (!(rec->desc = strdup(desc))) {
        free_parts(rec->parts);
        return -ENOMEM;
    }
    digest_parts(rec->parts, rec->digest);
    rec->id = id;
    rec->group = m->n;
    for (size_t i = 0; i < m->n; i++)
        if (memcmp(m->recs[i].digest, rec->digest, sizeof(rec->digest)) == 0) {
            rec->group = m->recs[i].group;
            break;
        }
    m->n++;
    return 0;
}

int match_find(match_t *m, const match_req_t *r, size_t *id, char *why, size_t whylen)
{
    char *parts[P_COUNT];
    uint8_t d[SHA256_DIGEST_LENGTH];
    size_t group = (size_t)-1, count = 0, best = (size_t)-1;
    int best_diff = P_COUNT + 1;

    if (make_parts(&m->o, r, parts) < 0) {
        snprintf(why, whylen, "out of memory");
        return -ENOMEM;
    }
    digest_parts(parts, d);
    for (size_t i = 0; i < m->n; i++)
        if (memcmp(m->recs[i].digest, d, sizeof(d)) == 0) {
            group = m->recs[i].group;
            break;
        }
    if (group != (size_t)-1) {
        rec_t *g = &m->recs[group];
        size_t nth = g->uses, last = group;

        /* The nth record of the group answers; past the end, the last one again. */
        for (size_t i = group; i < m->n; i++) {
            if (m->recs[i].group != group)
                continue;
            if (count == nth) {
                *id = m->recs[i].id;
                g->uses++;
                free_parts(parts);
                return 0;
            }
            last = i;
            count++;
        }
        if (!m->o.no_reuse) {
            *id = m->recs[last].id;
            g->uses++;
            free_parts(parts);
            return 0;
        }
        snprintf(why, whylen, "all %zu recorded responses for it were used (--no-reuse)", count);
        free_parts(parts);
        return -ENOENT;
    }
    /* No match: the recorded request that differs in the fewest parts explains the miss. */
    for (size_t i = 0; i < m->n; i++) {
        int diff = 0;
        for (int p = 0; p < P_COUNT; p++)
            diff += strcmp(m->recs[i].parts[p], parts[p]) != 0;
        if (diff < best_diff) {
            best_diff = diff;
            best = i;
        }
    }
    if (best == (size_t)-1) {
        snprintf(why, whylen, "the recording has no requests");
    } else {
        char list[128] = "";
        size_t off = 0;
        for (int p = 0; p < P_COUNT; p++)
            if (strcmp(m->recs[best].parts[p], parts[p]) != 0 && off < sizeof(list))
                off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", off ? ", " : "",
                                        part_names[p]);
        snprintf(why, whylen, "no recorded request matches; closest is %s (differs in %s)",
                 m->recs[best].desc, list);
    }
    free_parts(parts);
    return -ENOENT;
}

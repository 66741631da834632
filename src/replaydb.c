/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <zlib.h>
#include <openssl/evp.h>

#include "capture.h"
#include "dnsmsg.h"
#include "replaydb.h"

#define HAR_MAX (512u << 20)       /* a larger HAR is refused */
#define DB_MAX_ITEMS (1u << 20)    /* entries, conversations, DNS answers, names */

/* Appends one zeroed element to a growable array; NULL on ENOMEM or past the bound. */
static void *grow(void **arr, size_t *n, size_t size)
{
    void *p;

    if (*n >= DB_MAX_ITEMS)
        return NULL;
    if ((*n & (*n - 1)) == 0) {   /* capacity doubles at powers of two */
        size_t cap = *n ? *n * 2 : 16;
        if (cap < 16)
            cap = 16;
        if (!(p = realloc(*arr, cap * size)))
            return NULL;
        *arr = p;
    }
    p = (char *)*arr + *n * size;
    memset(p, 0, size);
    (*n)++;
    return p;
}

int replaydb_split_url(const char *url, char *scheme, size_t slen, char *host, size_t hlen,
                       uint16_t *port, const char **path)
{
    const char *p = strstr(url, "://"), *h, *end, *colon = NULL;
    size_t n;

    if (!p)
        return -EINVAL;
    n = (size_t)(p - url);
    if (n >= slen)
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
        if (rb + 1 < end && rb[1] == ':')
            colon = rb + 1;
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
    for (char *c = host; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    *port = strcmp(scheme, "https") == 0 ? 443 : 80;
    if (colon && colon + 1 < end)
        *port = (uint16_t)strtoul(colon + 1, NULL, 10);
    *path = *end == '/' || *end == '?' ? end : "/";
    return 0;
}

/* "host:port" or "[v6]:port" of a Host header into host (lower case); the port is dropped. */
static void host_only(const char *v, char *host, size_t len)
{
    size_t n;

    if (*v == '[') {
        const char *rb = strchr(v, ']');
        n = rb ? (size_t)(rb - v - 1) : strlen(v + 1);
        v++;
    } else {
        const char *c = strchr(v, ':');
        n = c ? (size_t)(c - v) : strlen(v);
    }
    if (n >= len)
        n = len - 1;
    for (size_t i = 0; i < n; i++)
        host[i] = (char)tolower((unsigned char)v[i]);
    host[n] = '\0';
}

static void add_name(replaydb_t *db, const char *name, int family, const void *addr)
{
    replay_name_t *nm;
    unsigned char tmp[16];

    if (!name[0] || inet_pton(AF_INET, name, tmp) == 1 || inet_pton(AF_INET6, name, tmp) == 1)
        return;   /* an address literal needs no name */
    for (size_t i = 0; i < db->nnames; i++)
        if (!strcasecmp(db->names[i].name, name) && db->names[i].family == family &&
            !memcmp(db->names[i].addr, addr, family == AF_INET ? 4 : 16))
            return;
    if (!(nm = grow((void **)&db->names, &db->nnames, sizeof(*nm))))
        return;
    snprintf(nm->name, sizeof(nm->name), "%s", name);
    for (char *c = nm->name; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    nm->family = family;
    memcpy(nm->addr, addr, family == AF_INET ? 4 : 16);
}

static void add_name_text(replaydb_t *db, const char *name, const char *ip)
{
    uint8_t a[16];
    char buf[64];
    size_t n = strlen(ip);

    if (n >= 2 && ip[0] == '[' && ip[n - 1] == ']' && n - 2 < sizeof(buf)) {
        memcpy(buf, ip + 1, n - 2);
        buf[n - 2] = '\0';
        ip = buf;
    }
    if (inet_pton(AF_INET, ip, a) == 1)
        add_name(db, name, AF_INET, a);
    else if (inet_pton(AF_INET6, ip, a) == 1)
        add_name(db, name, AF_INET6, a);
}

/* Fills the entry's derived fields from its exchange; url_scheme etc. give defaults. */
static int finish_entry(replaydb_t *db, replay_entry_t *e)
{
    http_exchange_t *ex = e->ex;
    const char *t = ex->target ? ex->target : "/";
    const char *h = http_msg_header(&ex->req, ":authority");
    char scheme[16], host[256];
    uint16_t port;
    const char *path;
    char url[4096];
    int def;

    if (!h)
        h = http_msg_header(&ex->req, "host");
    if (replaydb_split_url(t, scheme, sizeof(scheme), host, sizeof(host), &port, &path) == 0) {
        /* absolute-form (an explicit proxy's plain HTTP request) */
        if (!e->host[0] || !h)
            snprintf(e->host, sizeof(e->host), "%s", host);
        if (!e->port)
            e->port = port;
        t = path;
    }
    if (h && *h)
        host_only(h, e->host, sizeof(e->host));
    if (!(e->target = strdup(*t ? t : "/")))
        return -ENOMEM;
    e->h2 = ex->req_major == 2;
    def = (!strcmp(e->scheme, "https") && e->port == 443) ||
          (!strcmp(e->scheme, "http") && e->port == 80);
    if (!def)
        snprintf(url, sizeof(url), strchr(e->host, ':') ? "%s://[%s]:%u%s" : "%s://%s:%u%s",
                 e->scheme, e->host, (unsigned)e->port, e->target);
    else
        snprintf(url, sizeof(url), strchr(e->host, ':') ? "%s://[%s]%s" : "%s://%s%s", e->scheme,
                 e->host, e->target);
    if (!(e->url = strdup(url)))
        return -ENOMEM;
    if (e->server_ip[0])
        add_name_text(db, e->host, e->server_ip);
    return 0;
}

/* ---- from a capture ---------------------------------------------------------------- */

typedef struct load {
    replaydb_t *db;
    int oom;
    /* entries arrive at the end of their exchange; the request order is in ex->user */
} load_t;

static void cap_exchange(void *opaque, const capture_conn_t *c, http_exchange_t *ex)
{
    load_t *l = opaque;
    replay_entry_t *e;

    if (!ex->method || !*ex->method || ex->status == 0 || ex->status == 101 ||
        !strcmp(ex->method, "CONNECT") ||
        !(e = grow((void **)&l->db->entries, &l->db->nentries, sizeof(*e)))) {
        http_exchange_free(ex);
        return;
    }
    e->ex = ex;
    e->index = (size_t)(uintptr_t)ex->user;   /* sorted into request order below */
    snprintf(e->scheme, sizeof(e->scheme), "%s", c->scheme);
    snprintf(e->host, sizeof(e->host), "%s", c->host);
    e->port = c->server.port;
    snprintf(e->server_ip, sizeof(e->server_ip), "%s", c->server_ip);
    if (finish_entry(l->db, e) < 0)
        l->oom = 1;
}

static void cap_raw(void *opaque, const capture_conn_t *c, const capture_chunk_t *ch, size_t n)
{
    load_t *l = opaque;
    replay_conv_t *cv = grow((void **)&l->db->convs, &l->db->nconvs, sizeof(*cv));

    if (!cv || !(cv->chunks = calloc(n, sizeof(*cv->chunks)))) {
        l->oom = 1;
        return;
    }
    snprintf(cv->server_ip, sizeof(cv->server_ip), "%s", c->server_ip);
    cv->port = c->server.port;
    cv->tls = c->tls;
    snprintf(cv->sni, sizeof(cv->sni), "%s", c->sni ? c->sni : "");
    for (size_t i = 0; i < n; i++) {
        replay_chunk_t *r = &cv->chunks[cv->nchunks];
        if (!(r->data = malloc(ch[i].len))) {
            l->oom = 1;
            return;
        }
        memcpy(r->data, ch[i].data, ch[i].len);
        r->len = ch[i].len;
        r->dir = ch[i].dir;
        r->ts_usec = ch[i].ts_usec;
        cv->nchunks++;
    }
    if (c->sni)
        add_name_text(l->db, c->sni, c->server_ip);
}

static void cap_udp(void *opaque, const tcpreasm_endpoint_t *src, const tcpreasm_endpoint_t *dst,
                    const uint8_t *data, size_t len, uint64_t ts)
{
    load_t *l = opaque;
    dnsmsg_question_t q;
    dnsmsg_addr_t a[32];
    replay_dns_t *d;
    int n;

    if (src->port != 53 || dnsmsg_parse_question(data, len, &q) < 0 || !q.response)
        return;
    if ((n = dnsmsg_parse_answers(data, len, a, 32)) > 0)
        for (int i = 0; i < n; i++)
            add_name(l->db, q.name, a[i].family, a[i].addr);
    if (replaydb_find_dns(l->db, q.name, q.qtype))
        return;
    if (!(d = grow((void **)&l->db->dns, &l->db->ndns, sizeof(*d))) || !(d->msg = malloc(len))) {
        l->oom = 1;
        return;
    }
    snprintf(d->name, sizeof(d->name), "%s", q.name);
    d->qtype = q.qtype;
    memcpy(d->msg, data, len);
    d->len = len;
}

static int by_index(const void *a, const void *b)
{
    const replay_entry_t *x = a, *y = b;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int load_capture(replaydb_t *db, const char *path, const char *keylog, char *err,
                        size_t errlen)
{
    capture_callbacks_t cb = {NULL, NULL, NULL, cap_exchange, cap_raw, cap_udp};
    capture_opts_t co;
    capture_stats_t st;
    load_t l = {db, 0};
    int rc;

    memset(&co, 0, sizeof(co));
    memset(&st, 0, sizeof(st));
    co.path = path;
    co.keylog_path = keylog;
    co.want_raw = 1;
    co.max_body = 64u << 20;
    co.used = "replaying";
    rc = capture_read(&co, &cb, &l, &st);
    if (l.oom || rc == -ENOMEM) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    /* capture_read said what went wrong. A file damaged after some packets is replayed
       as far as it goes; one that gave none is no recording. */
    if (rc < 0 && (rc != -EBADMSG || st.packets == 0)) {
        err[0] = '\0';
        return rc;
    }
    if (db->nentries)
        qsort(db->entries, db->nentries, sizeof(*db->entries), by_index);
    for (size_t i = 0; i < db->nentries; i++)
        db->entries[i].index = i;
    return 0;
}

/* ---- from a HAR --------------------------------------------------------------------- */

static const char *jstr(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ISO 8601 "2024-06-01T12:00:00.123+02:00" or "...Z" to microseconds since the epoch. */
static uint64_t iso_usec(const char *s)
{
    struct tm tm;
    int y, mo, d, h, mi, n = 0;
    double sec;
    long off = 0;
    const char *p;

    if (!s || sscanf(s, "%d-%d-%dT%d:%d:%lf%n", &y, &mo, &d, &h, &mi, &sec, &n) < 6)
        return 0;
    p = s + n;
    if (*p == '+' || *p == '-') {
        int oh = 0, om = 0;
        sscanf(p + 1, "%d:%d", &oh, &om);
        off = (oh * 3600L + om * 60L) * (*p == '-' ? -1 : 1);
    }
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    return (uint64_t)((double)(timegm(&tm) - off) * 1e6 + sec * 1e6);
}

static double jnum(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) && v->valuedouble > 0 ? v->valuedouble : 0;
}

static int har_headers(http_msg_t *m, const cJSON *arr)
{
    const cJSON *h;

    cJSON_ArrayForEach(h, arr) {
        const char *n = jstr(h, "name"), *v = jstr(h, "value");
        if (!n || !v)
            continue;
        if (http_msg_add_header(m, n, strlen(n), v, strlen(v)) < 0)
            return -ENOMEM;
    }
    return 0;
}

static int har_body(http_msg_t *m, const char *text, const char *encoding)
{
    size_t len;

    if (!text)
        return 0;
    len = strlen(text);
    if (encoding && !strcasecmp(encoding, "base64")) {
        uint8_t *out = malloc(len / 4 * 3 + 4);
        int n;
        size_t pad = 0;
        if (!out)
            return -ENOMEM;
        n = EVP_DecodeBlock(out, (const unsigned char *)text, (int)len);
        if (n < 0) {
            free(out);
            return -EBADMSG;
        }
        /* EVP_DecodeBlock counts the padding as zero bytes. */
        while (len > 0 && text[len - 1] == '=' && pad < 2) {
            len--;
            pad++;
        }
        n -= (int)pad;
        int rc = http_msg_add_body(m, out, (size_t)(n > 0 ? n : 0), 64u << 20);
        free(out);
        return rc;
    }
    return http_msg_add_body(m, text, len, 64u << 20);
}

static int har_version(const char *v, int *major, int *minor)
{
    *major = 1;
    *minor = 1;
    if (!v)
        return 0;
    if (!strcasecmp(v, "h2") || !strncasecmp(v, "HTTP/2", 6)) {
        *major = 2;
        *minor = 0;
    } else if (!strcasecmp(v, "HTTP/1.0")) {
        *minor = 0;
    }
    return 0;
}

static int har_entry(replaydb_t *db, const cJSON *je)
{
    const cJSON *rq = cJSON_GetObjectItemCaseSensitive(je, "request");
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(je, "response");
    const cJSON *pd, *ct, *tm;
    const char *url = jstr(rq, "url"), *method = jstr(rq, "method"), *ip, *path;
    char scheme[16], host[256];
    uint16_t port;
    http_exchange_t *ex;
    replay_entry_t *e;
    const cJSON *status;
    uint64_t start;

    if (!rq || !rs || !url || !method)
        return 0;
    status = cJSON_GetObjectItemCaseSensitive(rs, "status");
    if (!cJSON_IsNumber(status) || status->valueint <= 0)
        return 0;   /* a request that got no response (a browser's blocked or failed one) */
    if (replaydb_split_url(url, scheme, sizeof(scheme), host, sizeof(host), &port, &path) < 0 ||
        (strcmp(scheme, "http") && strcmp(scheme, "https")))
        return 0;
    if (!(ex = http_exchange_new()))
        return -ENOMEM;
    if (http_strset(&ex->method, method, strlen(method)) < 0 ||
        http_strset(&ex->target, path, strlen(path)) < 0 ||
        http_strset(&ex->reason, jstr(rs, "statusText") ? jstr(rs, "statusText") : "",
                    jstr(rs, "statusText") ? strlen(jstr(rs, "statusText")) : 0) < 0 ||
        har_headers(&ex->req, cJSON_GetObjectItemCaseSensitive(rq, "headers")) < 0 ||
        har_headers(&ex->resp, cJSON_GetObjectItemCaseSensitive(rs, "headers")) < 0)
        goto oom;
    ex->status = status->valueint;
    har_version(jstr(rq, "httpVersion"), &ex->req_major, &ex->req_minor);
    har_version(jstr(rs, "httpVersion"), &ex->resp_major, &ex->resp_minor);
    if ((pd = cJSON_GetObjectItemCaseSensitive(rq, "postData")) &&
        har_body(&ex->req, jstr(pd, "text"), jstr(pd, "encoding")) < 0)
        goto oom;
    if ((ct = cJSON_GetObjectItemCaseSensitive(rs, "content")) &&
        har_body(&ex->resp, jstr(ct, "text"), jstr(ct, "encoding")) < 0)
        goto oom;
    ex->req.complete = ex->resp.complete = 1;
    start = iso_usec(jstr(je, "startedDateTime"));
    tm = cJSON_GetObjectItemCaseSensitive(je, "timings");
    ex->t_req_start = start;
    ex->t_req_end = start + (uint64_t)((jnum(tm, "blocked") + jnum(tm, "dns") +
                                        jnum(tm, "connect") + jnum(tm, "send")) * 1000);
    ex->t_resp_start = ex->t_req_end + (uint64_t)(jnum(tm, "wait") * 1000);
    ex->t_resp_end = ex->t_resp_start + (uint64_t)(jnum(tm, "receive") * 1000);
    if (!(e = grow((void **)&db->entries, &db->nentries, sizeof(*e))))
        goto oom;
    e->ex = ex;
    e->index = db->nentries - 1;
    snprintf(e->scheme, sizeof(e->scheme), "%.7s", scheme);
    snprintf(e->host, sizeof(e->host), "%s", host);
    e->port = port;
    e->body_decoded = 1;
    if ((ip = jstr(je, "serverIPAddress")))
        snprintf(e->server_ip, sizeof(e->server_ip), "%s", ip);
    return finish_entry(db, e);
oom:
    http_exchange_free(ex);
    return -ENOMEM;
}

/* The whole of path, gunzipped when it is gzip (zlib passes other bytes through), at most
   HAR_MAX bytes; *text is NUL-terminated and the caller's. */
static int slurp(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
    gzFile gz = gzopen(path, "rb");
    size_t have = 0, cap = 1 << 16;
    char *buf = NULL, *nb;
    int n, zerr;

    if (!gz) {
        int e = errno ? errno : ENOMEM;
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(e));
        return -e;
    }
    gzbuffer(gz, 1 << 17);
    do {
        if (!buf || have == cap) {
            if (buf)
                cap *= 2;
            if (cap > (size_t)HAR_MAX + 1) {
                snprintf(err, errlen, "%s: larger than %u MiB", path, HAR_MAX >> 20);
                free(buf);
                gzclose_r(gz);
                return -EFBIG;
            }
            if (!(nb = realloc(buf, cap + 1))) {
                free(buf);
                gzclose_r(gz);
                return -ENOMEM;
            }
            buf = nb;
        }
        n = gzread(gz, buf + have, (unsigned)(cap - have));
        if (n > 0)
            have += (size_t)n;
    } while (n > 0);
    if (n < 0 || (gzerror(gz, &zerr), zerr != Z_OK)) {
        const char *m = gzerror(gz, &zerr);
        if (strncmp(m, "<fd:", 4) == 0 || strncmp(m, path, strlen(path)) == 0)
            m = strstr(m, ": ") ? strstr(m, ": ") + 2 : m;
        snprintf(err, errlen, "cannot read %s: %s", path, zerr == Z_ERRNO ? strerror(errno) : m);
        free(buf);
        gzclose_r(gz);
        return -EIO;
    }
    gzclose_r(gz);
    buf[have] = '\0';
    *text = buf;
    *len = have;
    return 0;
}

static int load_har(replaydb_t *db, const char *path, char *err, size_t errlen)
{
    char *text = NULL;
    cJSON *root, *entries, *je;
    size_t have = 0;
    int rc;

    if ((rc = slurp(path, &text, &have, err, errlen)) < 0)
        return rc;
    root = cJSON_ParseWithLength(text, have);
    free(text);
    entries = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "log"),
                                               "entries");
    if (!root || !cJSON_IsArray(entries)) {
        snprintf(err, errlen, "%s: not a HAR file (no log.entries)", path);
        cJSON_Delete(root);
        return -EBADMSG;
    }
    cJSON_ArrayForEach(je, entries) {
        if ((rc = har_entry(db, je)) < 0) {
            snprintf(err, errlen, "%s: out of memory", path);
            break;
        }
    }
    cJSON_Delete(root);
    db->har = 1;
    return rc;
}

/* ---- the rest --------------------------------------------------------------------------- */

int replaydb_load(const char *path, const char *keylog, replaydb_t **out, char *err,
                  size_t errlen)
{
    replaydb_t *db = calloc(1, sizeof(*db));
    char first = 0;
    gzFile gz;
    int rc;

    if (!db)
        return -ENOMEM;
    errno = 0;
    if (!(gz = gzopen(path, "rb"))) {
        rc = errno ? -errno : -ENOMEM;
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(-rc));
        free(db);
        return rc;
    }
    /* A HAR is JSON: its first byte that is not white space is '{' (in a .har.gz too). */
    for (;;) {
        int n = gzread(gz, &first, 1);
        if (n < 0) {
            int zerr;
            const char *m = gzerror(gz, &zerr);
            rc = zerr == Z_ERRNO && errno ? -errno : -EIO;
            snprintf(err, errlen, "cannot read %s: %s", path,
                     zerr == Z_ERRNO ? strerror(-rc) : m);
            gzclose_r(gz);
            free(db);
            return rc;
        }
        if (n != 1) {
            first = 0;
            break;
        }
        if (!isspace((unsigned char)first))
            break;
    }
    gzclose_r(gz);
    if (first == '{')
        rc = load_har(db, path, err, errlen);
    else
        rc = load_capture(db, path, keylog, err, errlen);
    if (rc < 0) {
        replaydb_free(db);
        return rc;
    }
    *out = db;
    return 0;
}

void replaydb_free(replaydb_t *db)
{
    if (!db)
        return;
    for (size_t i = 0; i < db->nentries; i++) {
        http_exchange_free(db->entries[i].ex);
        free(db->entries[i].target);
        free(db->entries[i].url);
    }
    for (size_t i = 0; i < db->nconvs; i++) {
        for (size_t j = 0; j < db->convs[i].nchunks; j++)
            free(db->convs[i].chunks[j].data);
        free(db->convs[i].chunks);
    }
    for (size_t i = 0; i < db->ndns; i++)
        free(db->dns[i].msg);
    free(db->entries);
    free(db->convs);
    free(db->dns);
    free(db->names);
    free(db);
}

const replay_dns_t *replaydb_find_dns(const replaydb_t *db, const char *name, uint16_t qtype)
{
    for (size_t i = 0; i < db->ndns; i++)
        if (db->dns[i].qtype == qtype && !strcasecmp(db->dns[i].name, name))
            return &db->dns[i];
    return NULL;
}

size_t replaydb_find_name(const replaydb_t *db, const char *name, replay_name_t *out, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < db->nnames && n < max; i++)
        if (!strcasecmp(db->names[i].name, name))
            out[n++] = db->names[i];
    return n;
}

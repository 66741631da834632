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
#include <unistd.h>

#include <zlib.h>

#include "capture.h"
#include "dnsmsg.h"
#include "errors.h"
#include "harread.h"
#include "log.h"
#include "replaydb.h"

#define HAR_MAX (512u << 20)    /* a larger HAR is refused */
#define DB_MAX_ITEMS (1u << 20) /* entries, conversations, DNS answers, names */

/* Appends one zeroed element to a growable array; NULL on ENOMEM or past the bound. */
static void *grow(void **arr, size_t *n, size_t size)
{
    void *p;

    if (*n >= DB_MAX_ITEMS)
        return NULL;
    if ((*n & (*n - 1)) == 0) { /* capacity doubles at powers of two */
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
        return; /* an address literal needs no name */
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
    char url[4096], hp[300];
    int def;

    if (!h)
        h = http_msg_header(&ex->req, "host");
    e->ws = http_exchange_websocket(ex) || http_exchange_ws_connect(ex);
    if (e->ws && strcmp(ex->method, "GET") != 0 && http_strset(&ex->method, "GET", 3) < 0)
        return -ENOMEM;
    if (har_url_split(t, scheme, sizeof(scheme), host, sizeof(host), &port, &path) == 0) {
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
    snprintf(url, sizeof(url), "%s://%s%s", e->scheme,
             mr_hostport(hp, sizeof(hp), e->host, def ? 0 : (unsigned)e->port), e->target);
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

    /* (Of the 101s, only WebSocket's is replayed: replay_ws.c; of the CONNECTs, only
       RFC 8441's WebSocket.) */
    if (!ex->method || !*ex->method || ex->status == 0 ||
        (ex->status == 101 && !http_exchange_websocket(ex)) ||
        (!strcmp(ex->method, "CONNECT") && !http_exchange_ws_connect(ex)) ||
        !(e = grow((void **)&l->db->entries, &l->db->nentries, sizeof(*e)))) {
        http_exchange_free(ex);
        return;
    }
    e->ex = ex;
    e->index = (size_t)(uintptr_t)ex->user; /* sorted into request order below */
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

static int har_entry(void *opaque, har_read_entry_t *he)
{
    replaydb_t *db = opaque;
    replay_entry_t *e;

    if (!(e = grow((void **)&db->entries, &db->nentries, sizeof(*e)))) {
        http_exchange_free(he->ex);
        return -ENOMEM;
    }
    e->ex = he->ex;
    e->index = db->nentries - 1;
    snprintf(e->scheme, sizeof(e->scheme), "%.7s", he->scheme);
    snprintf(e->host, sizeof(e->host), "%s", he->host);
    e->port = he->port;
    e->body_decoded = 1;
    if (he->server_ip)
        snprintf(e->server_ip, sizeof(e->server_ip), "%s", he->server_ip);
    return finish_entry(db, e);
}

/* The whole of path, gunzipped when it is gzip (zlib passes other bytes through), at most
   HAR_MAX bytes; *text is NUL-terminated and the caller's. */
static int slurp(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
    gzFile gz = gzopen(path, "rb");
    size_t have = 0, cap = 1 << 16;
    char *buf = NULL, *nb;
    const char *why;
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
    why = capture_gz_reason(gz, path, &zerr);
    if (n < 0 || zerr != Z_OK) {
        snprintf(err, errlen, "cannot read %s: %s", path, why);
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
    size_t have = 0;
    har_read_stats_t st;
    int rc;

    if ((rc = slurp(path, &text, &have, err, errlen)) < 0)
        return rc;
    rc = har_read(text, have, har_entry, db, &st);
    free(text);
    if (rc == -EBADMSG) {
        snprintf(err, errlen, "%s: not a HAR file (no log.entries)", path);
        return rc;
    }
    if (rc < 0) {
        snprintf(err, errlen, "%s: out of memory", path);
        return rc;
    }
    if (st.unusable)
        log_warn("%s: %zu of its entries cannot be replayed (not an http(s) URL, a status "
                 "outside 100-999, or a body that is not base64) and were left out",
                 path, st.unusable);
    if (st.truncated)
        log_warn("%s: %zu of its entries hold only the start of a body (recorded with "
                 "--max-body, or cut by its writer), e.g. %s; they are replayed cut short "
                 "(mitmrec's pcapng of the run has them whole)",
                 path, st.truncated, st.truncated_example);
    db->har = 1;
    return 0;
}

/* ---- the rest --------------------------------------------------------------------------- */

int replaydb_load(const char *path, const char *keylog, replaydb_t **out, char *err, size_t errlen)
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
            const char *why = capture_gz_reason(gz, path, &zerr);

            rc = zerr == Z_ERRNO && errno ? -errno : -EIO;
            snprintf(err, errlen, "cannot read %s: %s", path, why);
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

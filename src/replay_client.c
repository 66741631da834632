/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <nghttp2/nghttp2.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <uv.h>

#include "conn.h"
#include "content.h"
#include "errors.h"
#include "httpconv.h"
#include "log.h"
#include "outleg.h"
#include "recorder.h"
#include "replay_client.h"
#include "tls.h"

#define CLIENT_TIMEOUT_MS 30000

typedef struct crun crun_t;

/* One recorded request sent again on a connection of its own. */
typedef struct job {
    crun_t *run;
    const replay_entry_t *e;
    conn_t c;
    outleg_t leg; /* its recording and decoding */
    nghttp2_session *h2;
    size_t body_sent;
    http_exchange_t *got; /* the new exchange (owned) */
    char err[256];
    int done, closing, connected;
    uv_timer_t timer;
    uv_getaddrinfo_t gai; /* resolving the host (no recorded address) */
    int resolving;
    int handles;
    uint64_t t0; /* when it started (uv_hrtime) */
} job_t;

struct crun {
    const replay_options_t *o;
    const replaydb_t *db;
    uv_loop_t loop;
    conn_env_t env;
    SSL_CTX *ctx;
    recorder_t *rec;
    struct sockaddr_storage to; /* --to */
    int have_to;
    size_t next, running, finished;
    size_t same, different, failed;
    replay_report_t *report; /* --report, or NULL */
};

static void start_next(crun_t *r);

/* ---- comparing -------------------------------------------------------------------------- */

static void body_hash(const http_msg_t *m, char out[24])
{
    uint8_t d[EVP_MAX_MD_SIZE];
    unsigned n = 0;

    EVP_Digest(m->body ? m->body : (const uint8_t *)"", m->body_len, d, &n, EVP_sha256(), NULL);
    strcpy(out, "sha256:");
    for (int i = 0; i < 8; i++)
        sprintf(out + 7 + 2 * i, "%02x", d[i]);
}

/* Headers that change on every response or belong to the connection. */
static int volatile_header(const char *n)
{
    return !strcasecmp(n, "date") || !strcasecmp(n, "connection") || !strcasecmp(n, "keep-alive") ||
           !strcasecmp(n, "transfer-encoding") || !strcasecmp(n, "age") || n[0] == ':';
}

static int appendf(char *buf, size_t len, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int appendf(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*off >= len)
        return -1;
    va_start(ap, fmt);
    n = vsnprintf(buf + *off, len - *off, fmt, ap);
    va_end(ap);
    *off += n > 0 ? (size_t)n : 0;
    return 0;
}

/* The new body as the recording holds it: a HAR's bodies have their Content-Encoding undone. */
static void now_hash(const replay_entry_t *e, const http_exchange_t *now, char out[24])
{
    const char *ce = http_msg_header(&now->resp, "content-encoding");
    uint8_t *dec = NULL;
    size_t dlen = 0;
    int trunc = 0;
    http_msg_t m;

    if (e->body_decoded && ce &&
        content_decode(ce, now->resp.body, now->resp.body_len, 64u << 20, &dec, &dlen, &trunc) ==
            0) {
        memset(&m, 0, sizeof(m));
        m.body = dec;
        m.body_len = dlen;
        body_hash(&m, out);
        free(dec);
        return;
    }
    body_hash(&now->resp, out);
}

/* "status 200 -> 404; Content-Length: 35 -> 40; body sha256:.. -> sha256:.." into out. */
static int compare(const replay_entry_t *e, const http_exchange_t *now, char *out, size_t len)
{
    const http_exchange_t *was = e->ex;
    size_t off = 0;
    char h1[24], h2[24];
    int diffs = 0;

    out[0] = '\0';
    if (was->status != now->status) {
        appendf(out, len, &off, "%sstatus %d -> %d", diffs++ ? "; " : "", was->status, now->status);
    }
    for (size_t i = 0; i < was->resp.nheaders; i++) {
        const char *n = was->resp.headers[i].name, *v2;
        int seen = 0;
        if (volatile_header(n) || (e->body_decoded && !strcasecmp(n, "content-encoding")))
            continue;
        for (size_t j = 0; j < i; j++)
            if (!strcasecmp(was->resp.headers[j].name, n))
                seen = 1;
        if (seen)
            continue;
        v2 = http_msg_header(&now->resp, n);
        if (!v2 || strcmp(v2, was->resp.headers[i].value))
            appendf(out, len, &off, "%s%s: %s -> %s", diffs++ ? "; " : "", n,
                    was->resp.headers[i].value, v2 ? v2 : "(absent)");
    }
    for (size_t i = 0; i < now->resp.nheaders; i++) {
        const char *n = now->resp.headers[i].name;
        if (!volatile_header(n) && !http_msg_header(&was->resp, n) &&
            !(e->body_decoded && !strcasecmp(n, "content-encoding")))
            appendf(out, len, &off, "%s%s: (absent) -> %s", diffs++ ? "; " : "", n,
                    now->resp.headers[i].value);
    }
    body_hash(&was->resp, h1);
    now_hash(e, now, h2);
    if (strcmp(h1, h2))
        appendf(out, len, &off, "%sbody %s -> %s", diffs++ ? "; " : "", h1, h2);
    return diffs;
}

/* For --report: the result of entry e, started at t0 (0: never started). */
static void add_result(crun_t *r, const replay_entry_t *e, uint64_t t0, const char *result,
                       int status, const char *detail)
{
    report_result_t res = {
        .index = e->index,
        .method = e->ex->method,
        .url = e->url,
        .http2 = e->h2,
        .was_status = e->ex->status,
        .status = status,
        .result = result,
        .detail = detail,
        .ms = t0 ? (double)(uv_hrtime() - t0) / 1e6 : 0,
    };

    if (r->report && replay_report_result(r->report, &res) < 0)
        log_error("--report: out of memory: request %zu is left out", e->index);
}

static void report(job_t *j)
{
    crun_t *r = j->run;
    const replay_entry_t *e = j->e;
    char diff[4096], hash[24];

    if (!j->got || !j->got->status) {
        const char *why = j->err[0]                 ? j->err
                          : j->got && j->got->error ? j->got->error
                                                    : "no response";
        r->failed++;
        log_line(stdout, "[%zu] %s %s: FAILED: %s", e->index, e->ex->method, e->url, why);
        add_result(r, e, j->t0, "failed", 0, why);
    } else if (compare(e, j->got, diff, sizeof(diff))) {
        r->different++;
        log_line(stdout, "[%zu] %s %s: DIFFERENT: %s", e->index, e->ex->method, e->url, diff);
        add_result(r, e, j->t0, "different", j->got->status, diff);
    } else {
        r->same++;
        body_hash(&j->got->resp, hash);
        if (!r->o->quiet)
            log_line(stdout, "[%zu] %s %s: same (%d, body %s)", e->index, e->ex->method, e->url,
                     j->got->status, hash);
        add_result(r, e, j->t0, "same", j->got->status, NULL);
    }
    fflush(stdout);
}

/* ---- a job's life --------------------------------------------------------------------------- */

static void job_maybe_free(job_t *j)
{
    crun_t *r = j->run;

    if (--j->handles > 0)
        return;
    if (j->h2)
        nghttp2_session_del(j->h2);
    outleg_free(&j->leg);
    http_exchange_free(j->got);
    free(j);
    r->running--;
    r->finished++;
    start_next(r);
}

static void timer_closed(uv_handle_t *h)
{
    job_maybe_free(h->data);
}

static void conn_closed(conn_t *c)
{
    job_maybe_free(c->data);
}

static void job_end(job_t *j, const char *err)
{
    if (j->closing)
        return;
    j->closing = 1;
    if (err && !j->err[0])
        snprintf(j->err, sizeof(j->err), "%s", err);
    /* The decoder's last exchange (if any) comes before the report. */
    outleg_end(&j->leg, &j->c, err);
    if (!j->done) {
        j->done = 1;
        report(j);
    }
    if (j->resolving) /* gai_cb still runs, with UV_EAI_CANCELED if it was not started */
        uv_cancel((uv_req_t *)&j->gai);
    uv_close((uv_handle_t *)&j->timer, timer_closed);
    conn_close(&j->c, 0);
}

static void finish_cb(uv_timer_t *t)
{
    job_end(t->data, NULL);
}

/* Ends the job on the next turn of the loop: callbacks inside a read come before that
   read's on_wire, and its bytes still belong in the recording. */
static void job_end_soon(job_t *j, const char *err)
{
    if (err && !j->err[0])
        snprintf(j->err, sizeof(j->err), "%s", err);
    if (!j->closing)
        uv_timer_start(&j->timer, finish_cb, 0, 0);
}

static void on_exchange(void *opaque, http_exchange_t *ex)
{
    job_t *j = opaque;

    if (j->got || j->done) {
        http_exchange_free(ex);
        return;
    }
    j->got = ex;
    j->done = 1;
    report(j);
    job_end_soon(j, NULL);
}

/* Plaintext we send: the recorder and the decoder see it first, then the wire. */
static int send_plain(job_t *j, const uint8_t *p, size_t len)
{
    return outleg_send(&j->leg, &j->c, p, len);
}

static void send_h1(job_t *j)
{
    const http_exchange_t *ex = j->e->ex;
    const char *host = http_msg_header(&ex->req, "host");
    size_t cap = 512 + strlen(j->e->target) + ex->req.body_len, off = 0;
    char *b;
    char authority[300];

    if (!host) {
        int def = (!strcmp(j->e->scheme, "https") && j->e->port == 443) ||
                  (!strcmp(j->e->scheme, "http") && j->e->port == 80);
        mr_hostport(authority, sizeof(authority), j->e->host, def ? 0 : (unsigned)j->e->port);
        host = http_msg_header(&ex->req, ":authority");
        if (!host)
            host = authority;
    }
    for (size_t i = 0; i < ex->req.nheaders; i++)
        cap += strlen(ex->req.headers[i].name) + strlen(ex->req.headers[i].value) + 4;
    if (!(b = malloc(cap))) {
        job_end(j, "out of memory");
        return;
    }
    appendf(b, cap, &off, "%s %s HTTP/1.1\r\nHost: %s\r\n", ex->method, j->e->target, host);
    for (size_t i = 0; i < ex->req.nheaders; i++)
        if (!outleg_skip_header(ex->req.headers[i].name))
            appendf(b, cap, &off, "%s: %s\r\n", ex->req.headers[i].name, ex->req.headers[i].value);
    if (ex->req.body_len || !strcmp(ex->method, "POST") || !strcmp(ex->method, "PUT"))
        appendf(b, cap, &off, "Content-Length: %zu\r\n", ex->req.body_len);
    appendf(b, cap, &off, "Connection: close\r\n\r\n");
    if (ex->req.body_len) {
        memcpy(b + off, ex->req.body, ex->req.body_len);
        off += ex->req.body_len;
    }
    send_plain(j, (uint8_t *)b, off);
    free(b);
}

/* ---- HTTP/2 client ----------------------------------------------------------------------------
 */

static void h2_flush(job_t *j)
{
    const uint8_t *p;
    ssize_t n;

    while ((n = nghttp2_session_mem_send(j->h2, &p)) > 0)
        send_plain(j, p, (size_t)n);
}

static ssize_t h2_read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
                            uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    job_t *j = ud;
    const http_msg_t *m = &j->e->ex->req;
    size_t n = m->body_len - j->body_sent;

    if (n > len)
        n = len;
    memcpy(buf, m->body + j->body_sent, n);
    j->body_sent += n;
    if (j->body_sent == m->body_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static void send_h2(job_t *j)
{
    const http_exchange_t *ex = j->e->ex;
    nghttp2_session_callbacks *cb;
    nghttp2_nv *nv;
    nghttp2_data_provider dp;
    size_t n = 0;
    char authority[300];
    char **lower;
    const char *a = http_msg_header(&ex->req, ":authority");

    if (nghttp2_session_callbacks_new(&cb) != 0) {
        job_end(j, "out of memory");
        return;
    }
    if (nghttp2_session_client_new(&j->h2, cb, j) != 0) {
        nghttp2_session_callbacks_del(cb);
        job_end(j, "out of memory");
        return;
    }
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(j->h2, NGHTTP2_FLAG_NONE, NULL, 0);
    if (!a) {
        a = http_msg_header(&ex->req, "host");
        if (!a) {
            mr_hostport(authority, sizeof(authority), j->e->host, (unsigned)j->e->port);
            a = authority;
        }
    }
    nv = calloc(ex->req.nheaders + 4, sizeof(*nv));
    lower = calloc(ex->req.nheaders + 1, sizeof(*lower));
    if (!nv || !lower) {
        free(nv);
        free(lower);
        job_end(j, "out of memory");
        return;
    }
#define NV(nm, v) (nghttp2_nv){(uint8_t *)(nm), (uint8_t *)(v), strlen(nm), strlen(v), 0}
    nv[n++] = NV(":method", ex->method);
    nv[n++] = NV(":scheme", j->e->scheme);
    nv[n++] = NV(":authority", a);
    nv[n++] = NV(":path", j->e->target);
    for (size_t i = 0; i < ex->req.nheaders; i++) {
        const http_header_t *h = &ex->req.headers[i];
        if (outleg_skip_header(h->name) || !(lower[i] = strdup(h->name)))
            continue;
        for (char *p = lower[i]; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p + 32);
        nv[n++] = NV(lower[i], h->value);
    }
#undef NV
    dp.source.ptr = j;
    dp.read_callback = h2_read_body;
    if (nghttp2_submit_request(j->h2, NULL, nv, n, ex->req.body_len ? &dp : NULL, j) < 0)
        snprintf(j->err, sizeof(j->err), "cannot submit the HTTP/2 request");
    for (size_t i = 0; i < ex->req.nheaders; i++)
        free(lower[i]);
    free(lower);
    free(nv);
    h2_flush(j);
}

/* ---- connection callbacks ----------------------------------------------------------------------
 */

static void start_request(job_t *j, const char *alpn)
{
    httpconv_callbacks_t cb = {NULL, on_exchange, NULL};
    int h2 = alpn && !strcmp(alpn, "h2");

    if (outleg_decode(&j->leg, &cb, j, h2 ? "h2" : NULL) < 0) {
        job_end(j, "out of memory");
        return;
    }
    if (h2)
        send_h2(j);
    else
        send_h1(j);
}

static void on_handshake(conn_t *c, int status)
{
    job_t *j = c->data;
    char a[32];

    if (status < 0) {
        char buf[256];
        long v = SSL_get_verify_result(c->ssl);
        snprintf(j->err, sizeof(j->err), "TLS handshake failed%s%s", v != X509_V_OK ? ": " : "",
                 v != X509_V_OK ? X509_verify_cert_error_string(v)
                                : log_ssl_errors(buf, sizeof(buf)));
        job_end(j, NULL);
        return;
    }
    outleg_handshake_done(&j->leg, c, a, sizeof(a));
    start_request(j, a[0] ? a : NULL);
}

static void on_connect(conn_t *c, int status)
{
    job_t *j = c->data;
    const replay_entry_t *e = j->e;

    if (status < 0) {
        snprintf(j->err, sizeof(j->err), "cannot connect: %s", mr_strerror(status));
        job_end(j, NULL);
        return;
    }
    j->connected = 1;
    outleg_connected(&j->leg, c, j->run->rec, e->scheme, e->host, e->port);
    conn_start(c);
    if (!strcmp(e->scheme, "https")) {
        const char *why;
        if (outleg_start_tls(&j->leg, c, j->run->ctx, e->host, !j->run->o->insecure,
                             (const unsigned char *)(e->h2 ? "\x02h2" : "\x08http/1.1"),
                             e->h2 ? 3 : 9, &why) < 0)
            job_end(j, why);
        return;
    }
    start_request(j, e->h2 ? "h2" : NULL);
}

static void on_data(conn_t *c, const uint8_t *buf, size_t len)
{
    job_t *j = c->data;

    outleg_data(&j->leg, buf, len);
    if (j->h2) {
        if (nghttp2_session_mem_recv(j->h2, buf, len) < 0) {
            job_end(j, "HTTP/2 protocol error");
            return;
        }
        if (!j->closing)
            h2_flush(j);
    }
}

static void on_wire(conn_t *c, int out, const uint8_t *buf, size_t len)
{
    job_t *j = c->data;
    outleg_wire(&j->leg, out, buf, len);
}

static void on_eof(conn_t *c)
{
    job_t *j = c->data;

    outleg_eof(&j->leg);
    job_end_soon(j, j->done ? NULL : "the server closed the connection before the response");
}

static void on_error(conn_t *c, int err)
{
    job_t *j = c->data;
    char buf[128];

    snprintf(buf, sizeof(buf), "connection error: %s", mr_strerror(err));
    job_end_soon(j, buf);
}

static void timeout_cb(uv_timer_t *t)
{
    job_t *j = t->data;

    if (j->resolving)
        snprintf(j->err, sizeof(j->err), "cannot resolve %.200s: no answer within 30 s",
                 j->e->host);
    else if (!j->connected)
        snprintf(j->err, sizeof(j->err), "cannot connect: no answer within 30 s");
    job_end(j, "no response within 30 s");
}

static const conn_cb_t conn_cbs = {
    .on_connect = on_connect,
    .on_handshake = on_handshake,
    .on_data = on_data,
    .on_wire = on_wire,
    .on_eof = on_eof,
    .on_error = on_error,
    .on_close = conn_closed,
};

static void job_connect(job_t *j, const struct sockaddr *sa)
{
    int rc;

    if ((rc = conn_connect(&j->c, sa)) < 0) {
        snprintf(j->err, sizeof(j->err), "cannot connect: %s", mr_strerror(rc));
        job_end(j, NULL);
    }
}

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    job_t *j = req->data;
    struct addrinfo *pick = NULL;

    j->resolving = 0;
    /* IPv4 first, as mitmrec does upstream: most local services listen there. */
    for (struct addrinfo *ai = status < 0 ? NULL : res; ai; ai = ai->ai_next)
        if (!pick || (ai->ai_family == AF_INET && pick->ai_family != AF_INET))
            pick = ai;
    if (!j->closing) {
        if (!pick) {
            snprintf(j->err, sizeof(j->err), "cannot resolve %.200s: %s", j->e->host,
                     mr_strerror(status < 0 ? status : UV_EAI_NONAME));
            job_end(j, NULL);
        } else {
            job_connect(j, pick->ai_addr);
        }
    }
    uv_freeaddrinfo(res);
    job_maybe_free(j); /* the reference the lookup held */
}

/* Sends entry e to --to, else to its recorded server address, else to its host name, looked
   up on libuv's thread pool so that a slow resolver holds up no other request. */
static void job_start(crun_t *r, job_t *j)
{
    const replay_entry_t *e = j->e;
    struct sockaddr_storage ss;
    struct addrinfo hints;
    char port[8];
    int rc;

    if (r->have_to) {
        job_connect(j, (struct sockaddr *)&r->to);
        return;
    }
    memset(&ss, 0, sizeof(ss));
    if (uv_ip4_addr(e->server_ip, e->port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(e->server_ip, e->port, (struct sockaddr_in6 *)&ss) == 0) {
        job_connect(j, (struct sockaddr *)&ss);
        return;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%u", (unsigned)e->port);
    j->gai.data = j;
    if ((rc = uv_getaddrinfo(&r->loop, &j->gai, gai_cb, e->host, port, &hints)) < 0) {
        snprintf(j->err, sizeof(j->err), "cannot resolve %.200s: %s", e->host, mr_strerror(rc));
        job_end(j, NULL);
        return;
    }
    j->resolving = 1;
    j->handles++;
}

static void start_next(crun_t *r)
{
    while (r->running < (size_t)r->o->concurrency && r->next < r->db->nentries) {
        const replay_entry_t *e = &r->db->entries[r->next++];
        job_t *j = calloc(1, sizeof(*j));

        if (!j || conn_init(&j->c, &r->env, &conn_cbs, j) < 0) {
            free(j);
            r->failed++;
            log_line(stdout, "[%zu] %s %s: FAILED: out of memory", e->index, e->ex->method, e->url);
            add_result(r, e, 0, "failed", 0, "out of memory");
            continue;
        }
        j->run = r;
        j->e = e;
        j->handles = 2;
        j->t0 = uv_hrtime();
        uv_timer_init(&r->loop, &j->timer);
        j->timer.data = j;
        uv_timer_start(&j->timer, timeout_cb, CLIENT_TIMEOUT_MS, 0);
        r->running++;
        job_start(r, j);
    }
}

int replay_client_run(const replay_options_t *o, const replaydb_t *db, replay_report_t *report)
{
    crun_t r;
    char err[512];
    int status = -1;

    memset(&r, 0, sizeof(r));
    r.o = o;
    r.db = db;
    r.report = report;
    if (o->to) { /* (replay_options_parse checked it) */
        replay_parse_to(o->to, &r.to);
        r.have_to = 1;
    }
    if (tls_client_ctx_new(o->cacerts, o->ncacerts, o->insecure, &r.ctx, err, sizeof(err)) < 0) {
        log_error("%s", err);
        return -1;
    }
    if (o->out_path) {
        recorder_opts_t ro;
        memset(&ro, 0, sizeof(ro));
        ro.pcapng_path = o->out_path;
        ro.har_path = o->out_har;
        ro.max_body = 16u << 20;
        if (recorder_new(&ro, &r.rec, err, sizeof(err)) < 0) {
            log_error("%s", err);
            goto out;
        }
        if (recorder_start(r.rec, err, sizeof(err)) < 0) {
            log_error("%s", err);
            recorder_discard(r.rec);
            r.rec = NULL;
            goto out;
        }
    }
    uv_loop_init(&r.loop);
    r.env.loop = &r.loop;
    start_next(&r);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    uv_loop_close(&r.loop);
    status = 0;
    if (r.rec && recorder_close(r.rec) < 0) {
        log_error("could not write the new recording completely");
        status = 1;
    }
    fprintf(stderr,
            "mitmreplay: client replay of %zu %s: %zu same, %zu different, "
            "%zu failed%s%s%s%s\n",
            db->nentries, mr_plural(db->nentries, "request", "requests"), r.same, r.different,
            r.failed, r.rec ? "; wrote " : "", r.rec ? o->out_path : "", r.rec ? " and " : "",
            r.rec ? o->out_har : "");
    if (o->strict && (r.different || r.failed))
        status = 1;
out:
    recorder_free(r.rec);
    SSL_CTX_free(r.ctx);
    return status;
}

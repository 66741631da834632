/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "errors.h"
#include "flow.h"
#include "log.h"
#include "rewrite.h"
#include "tls.h"

#define HEAD_MAX (64 * 1024)
#define HANDSHAKE_TIMEOUT_MS 10000
/* How long a flow whose both sides ended waits for a peer to read what is queued for it. */
#define FINISH_TIMEOUT_MS 300000

enum flow_state {
    F_HEAD,          /* reading the proxy request */
    F_RESOLVING,
    F_CONNECTING,
    F_SNIFF,         /* tunnel open, first bytes not seen yet */
    F_TLS,           /* handshakes in progress */
    F_RELAY,
    F_FAILED,        /* answered with an error; what the client still sends is ignored */
    F_CLOSING,
};

enum flow_mode { M_NONE, M_CONNECT, M_PLAIN, M_TRANSPARENT };

/* Client-leg bytes of one write to the client, kept until their plaintext is recorded. */
typedef struct held_wire {
    struct held_wire *next;
    uint64_t ts;
    size_t len;
    uint8_t data[];
} held_wire_t;

struct flow {
    proxy_t *p;
    flow_t *next, *prev;
    uint64_t id;
    enum flow_state state;
    enum flow_mode mode;
    conn_t client, up;
    int up_inited;
    int handles;                 /* open handles; the flow is freed when 0 */
    rec_flow_t *rec;
    int recording;               /* client-leg wire bytes go to the recorder */
    int wire_in_done;            /* the read being handled was recorded already */
    int hold_wire_out;           /* client_wire keeps what goes out in wire_held */
    held_wire_t *wire_held, **wire_held_tail;
    int client_fin_done;         /* the client's FIN is recorded (up_eof found it waiting) */
    int tls;
    uint8_t *head;
    size_t head_len;
    uint64_t head_ts;
    char host[256];
    uint16_t port;
    char sni[256];
    unsigned char client_alpn[256];
    size_t client_alpn_len;
    int up_done;                 /* upstream handshake over */
    int up_failed;
    int finishing;               /* both sides ended: closes once the queues are sent */
    X509 *leaf;                  /* the forged certificate, made on the loop's thread */
    unsigned char up_alpn[256];  /* the protocol the server chose (alpn_select's copy) */
    unsigned int up_alpn_len;
    int leaf_failed;
    char error[300];
    struct sockaddr_storage client_addr, up_addr;
    uv_getaddrinfo_t gai;
    int gai_pending;
    uint64_t t_dns0, t_dns1, t_conn0, t_conn1, t_tls0, t_tls1;
    tls_hooks_t hooks_client, hooks_up;
    rewrite_t *rw;
    uint8_t *rwbuf;
    size_t rwcap;
    uint8_t *early;              /* server bytes that came before the client handshake ended */
    size_t early_len;
    uv_timer_t linger;           /* bounds the wait for a peer after a failure */
    int linger_on;
};

static const conn_cb_t client_cb;
static const conn_cb_t up_cb;
static void up_error(conn_t *c, int err);
static void client_error(conn_t *c, int err);
static void flow_fail(flow_t *f, const char *method, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static double ms_between(uint64_t a, uint64_t b)
{
    return a && b >= a ? (double)(b - a) / 1000.0 : -1;
}

/* ---- teardown ----------------------------------------------------------- */

static void flow_free(flow_t *f)
{
    proxy_t *p = f->p;

    rec_flow_free(f->rec, rec_now());
    if (f->prev)
        f->prev->next = f->next;
    else
        p->_flows = f->next;
    if (f->next)
        f->next->prev = f->prev;
    p->_nflows--;
    rewrite_free(f->rw);
    free(f->rwbuf);
    free(f->early);
    free(f->head);
    X509_free(f->leaf);
    free(f);
    if (p->_stopping && p->_nflows == 0 && p->on_idle)
        p->on_idle(p);
}

static void handle_closed(flow_t *f)
{
    if (--f->handles == 0)
        flow_free(f);
}

static void on_conn_close(conn_t *c)
{
    handle_closed(c->data);
}

static void on_linger_close(uv_handle_t *h)
{
    handle_closed(h->data);
}

static void flow_close(flow_t *f, int reset)
{
    if (f->state == F_CLOSING)
        return;
    f->state = F_CLOSING;
    if (f->gai_pending)
        uv_cancel((uv_req_t *)&f->gai);
    if (f->linger_on) {
        f->linger_on = 0;
        uv_close((uv_handle_t *)&f->linger, on_linger_close);
    }
    conn_close(&f->client, reset);
    if (f->up_inited)
        conn_close(&f->up, reset);
}

void flow_abort(flow_t *f)
{
    flow_close(f, 0);
}

flow_t *flow_next(const flow_t *f)
{
    return f->next;
}

static void linger_cb(uv_timer_t *t)
{
    flow_t *f = t->data;

    if (f->state == F_TLS) {
        flow_fail(f, NULL, "TLS handshake not finished after %d s", HANDSHAKE_TIMEOUT_MS / 1000);
        rec_flow_end(f->rec, REC_CLIENT, REC_S2C, 1, rec_now());
    }
    flow_close(f, 1);
}

/* One timer per flow bounds what may hang: a handshake, or the wait after a failure. */
static void flow_timer(flow_t *f, int ms)
{
    if (!f->linger_on) {
        if (uv_timer_init(f->p->loop, &f->linger) != 0)
            return;
        f->linger.data = f;
        f->linger_on = 1;
        f->handles++;
    }
    uv_timer_start(&f->linger, linger_cb, (uint64_t)ms, 0);
}

/*
 * Both sides have ended: the flow closes once what is queued for each peer has gone out,
 * with our FIN after it (on_shut), so a client that reads slowly still gets the whole
 * answer. One that stops reading for good is cut after FINISH_TIMEOUT_MS.
 */
static void flow_finish(flow_t *f)
{
    if (f->state == F_CLOSING)
        return;
    if ((f->client.shut && !f->client.shut_done) ||
        (f->up_inited && f->up.shut && !f->up.shut_done)) {
        if (!f->finishing) {
            f->finishing = 1;
            if (!f->linger_on)
                flow_timer(f, FINISH_TIMEOUT_MS);
        }
        return;
    }
    flow_close(f, 0);
}

static void leg_shut(conn_t *c)
{
    flow_t *f = c->data;

    if (f->finishing)
        flow_finish(f);
}

/* After a failure, let the client read what we sent (an alert, a 502), then close. */
static void flow_linger(flow_t *f, int ms)
{
    if (f->state == F_CLOSING)
        return;
    conn_shutdown(&f->client);
    if (f->up_inited)
        conn_close(&f->up, 0);
    if (f->state == F_TLS)
        f->state = F_FAILED;
    flow_timer(f, ms);
}

/* ---- errors ------------------------------------------------------------- */

static void flow_fail(flow_t *f, const char *method, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void flow_fail(flow_t *f, const char *method, const char *fmt, ...)
{
    va_list ap;
    char url[300];

    va_start(ap, fmt);
    vsnprintf(f->error, sizeof(f->error), fmt, ap);
    va_end(ap);
    if (f->mode == M_CONNECT || f->tls)
        snprintf(url, sizeof(url), strchr(f->host, ':') ? "https://[%s]:%u/" : "https://%s:%u/",
                 f->sni[0] ? f->sni : f->host, f->port);
    else
        snprintf(url, sizeof(url), strchr(f->host, ':') ? "http://[%s]:%u/" : "http://%s:%u/",
                 f->host, f->port);
    if (f->rec)
        rec_flow_error(f->rec, f->error, method, method ? url : NULL);
    log_warn("flow %llu: %s", (unsigned long long)f->id, f->error);
}

static void send_status(flow_t *f, int status, const char *reason, const char *body)
{
    char buf[1024];
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s\n",
                     status, reason, strlen(body) + 1, body);
    if (n > 0 && (size_t)n < sizeof(buf)) {
        if (f->recording && f->rec)
            rec_flow_plain(f->rec, REC_S2C, buf, (size_t)n, rec_now());
        conn_write_raw(&f->client, buf, (size_t)n);
    }
}

/* ---- TLS hooks ---------------------------------------------------------- */

static void keylog_client(void *opaque, const char *line)
{
    flow_t *f = opaque;
    rec_flow_keylog(f->rec, REC_CLIENT, line);
}

static void keylog_up(void *opaque, const char *line)
{
    flow_t *f = opaque;
    rec_flow_keylog(f->rec, REC_UPSTREAM, line);
}

static int is_ip_literal(const char *s)
{
    unsigned char b[16];
    return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

static int start_upstream_tls(flow_t *f)
{
    SSL *ssl = SSL_new(f->p->client_ctx);
    const char *name = f->sni[0] ? f->sni : f->host;

    if (!ssl)
        return -ENOMEM;
    f->hooks_up.keylog = keylog_up;
    f->hooks_up.opaque = f;
    tls_set_hooks(ssl, &f->hooks_up);
    if (f->sni[0])
        SSL_set_tlsext_host_name(ssl, f->sni);
    else if (!is_ip_literal(f->host))
        SSL_set_tlsext_host_name(ssl, f->host);
    if (f->client_alpn_len)
        SSL_set_alpn_protos(ssl, f->client_alpn, (unsigned)f->client_alpn_len);
    if (!f->p->insecure) {
        if (is_ip_literal(name))
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
        else
            SSL_set1_host(ssl, name);
    }
    {
        char key[600];
        const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
        snprintf(key, sizeof(key), "%s|%u|%s|%s", f->host, f->port, sni ? sni : "",
                 f->p->insecure ? "" : name);
        tls_client_session_use(ssl, key);
    }
    rec_flow_hold(f->rec, REC_UPSTREAM);
    f->t_tls0 = rec_now();
    /* Its hooks (keylog) are safe on a worker from the start. */
    conn_set_offload(&f->up, 1);
    return conn_start_tls(&f->up, ssl, 0, NULL, 0);
}

static int client_hello(void *opaque, SSL *ssl, int *al)
{
    flow_t *f = opaque;
    const unsigned char *alpn;
    size_t alpn_len;

    if (!f->up_done && !f->up_failed) {
        if (f->t_tls0)
            return SSL_CLIENT_HELLO_RETRY;   /* still waiting for the upstream */
        tls_client_hello_info(ssl, f->sni, sizeof(f->sni), &alpn, &alpn_len);
        if (tls_client_hello_bad_sni(ssl))
            log_warn("flow %llu: the ClientHello's server name is not a host name: ignored, "
                     "%s is used", (unsigned long long)f->id, f->host);
        /* Transparent flows learn the name only now; URLs use it. */
        if (f->mode == M_TRANSPARENT)
            rec_flow_set_target(f->rec, "https", f->sni[0] ? f->sni : f->host, f->port);
        if (alpn_len && alpn_len <= sizeof(f->client_alpn)) {
            memcpy(f->client_alpn, alpn, alpn_len);
            f->client_alpn_len = alpn_len;
        }
        if (start_upstream_tls(f) < 0) {
            *al = SSL_AD_INTERNAL_ERROR;
            return SSL_CLIENT_HELLO_ERROR;
        }
        return f->up_done || f->up_failed ? client_hello(opaque, ssl, al)
                                          : SSL_CLIENT_HELLO_RETRY;
    }
    if (f->up_failed) {
        /* Never hide a failed verification behind a forged certificate. */
        *al = SSL_AD_HANDSHAKE_FAILURE;
        return SSL_CLIENT_HELLO_ERROR;
    }
    /* From here on this may run on a worker (conn_set_offload): only the SSL is touched. */
    if (!f->leaf || SSL_use_certificate(ssl, f->leaf) != 1 ||
        SSL_use_PrivateKey(ssl, ca_leaf_key(f->p->ca)) != 1) {
        ERR_clear_error();
        f->leaf_failed = 1;   /* client_handshake says so */
        *al = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

/* The upstream handshake is over: forge the client's certificate from the
   origin's, then let the client's handshake go on, off the loop if it may. */
static void resume_client_tls(flow_t *f)
{
    if (f->up_done) {
        const char *name = f->sni[0] ? f->sni : f->host;
        X509 *peer = SSL_get1_peer_certificate(f->up.ssl);
        const unsigned char *sel = NULL;
        unsigned int sel_len = 0;
        int rc = ca_forge(f->p->ca, name, peer, &f->leaf);

        SSL_get0_alpn_selected(f->up.ssl, &sel, &sel_len);
        if (sel_len && sel_len <= sizeof(f->up_alpn)) {
            memcpy(f->up_alpn, sel, sel_len);
            f->up_alpn_len = sel_len;
        }

        X509_free(peer);
        if (rc < 0) {
            X509_free(f->leaf);
            f->leaf = NULL;
            ERR_clear_error();
        }
    }
    /* A refusal (an alert) is quick and must go out before the flow ends: here. */
    conn_set_offload(&f->client, f->leaf != NULL);
    conn_continue_handshake(&f->client);
}

/* Gives the client the protocol the server chose, if the client offered it. */
static int alpn_select(void *opaque, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen)
{
    flow_t *f = opaque;
    /* A copy made on the loop's thread: this may run on a worker, while the loop may be
       freeing the upstream's SSL. */
    const unsigned char *sel = f->up_alpn;
    unsigned int sel_len = f->up_alpn_len;

    if (!sel_len)
        return SSL_TLSEXT_ERR_NOACK;
    for (unsigned int i = 0; i < inlen;) {
        unsigned int n = in[i];
        if (i + 1 + n > inlen)
            break;
        if (n == sel_len && memcmp(in + i + 1, sel, n) == 0) {
            *out = in + i + 1;
            *outlen = (unsigned char)n;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* ---- relay -------------------------------------------------------------- */

/*
 * Sends bytes the client sent at ts to the server, then gives their plaintext to the
 * recorder: the server does not wait for the HTTP decoder (nor for a HAR entry). They are
 * recorded even when the write fails, as the client did send them. Returns 0 (also when it
 * closed the flow) or the write's error, for the caller to pass to up_error once it has
 * recorded the bytes themselves.
 */
static int relay_to_up(flow_t *f, const uint8_t *buf, size_t len, uint64_t ts)
{
    int rc;

    if (f->mode == M_PLAIN && f->rw) {
        size_t outlen = 0;
        rc = rewrite_feed(f->rw, buf, len, &f->rwbuf, &outlen, &f->rwcap);
        if (rc == -ENOMEM) {
            rec_flow_plain(f->rec, REC_C2S, buf, len, ts);
            flow_close(f, 1);
            return 0;
        }
        rc = conn_write(&f->up, f->rwbuf, outlen);
    } else {
        rc = conn_write(&f->up, buf, len);
    }
    rec_flow_plain(f->rec, REC_C2S, buf, len, ts);
    if (rc < 0)
        return rc;
    if (f->up.above_high)
        conn_pause(&f->client);
    return 0;
}

/*
 * Sends bytes from the server to the client, then records them: their plaintext, then the
 * client-leg bytes the write produced, which client_wire held meanwhile (the recorder wants
 * that order: a packet carries the notes of its plaintext). The timestamps are those from
 * before the write. Returns conn_write's result; recorded either way.
 */
static int relay_to_client(flow_t *f, const uint8_t *buf, size_t len)
{
    uint64_t ts = rec_now();
    held_wire_t *h;
    int rc;

    f->wire_held_tail = &f->wire_held;
    f->hold_wire_out = 1;
    rc = conn_write(&f->client, buf, len);
    f->hold_wire_out = 0;
    rec_flow_plain(f->rec, REC_S2C, buf, len, ts);
    while ((h = f->wire_held)) {
        f->wire_held = h->next;
        rec_flow_wire(f->rec, REC_CLIENT, REC_S2C, h->data, h->len, h->ts);
        free(h);
    }
    return rc;
}

static int start_tunnel_data(flow_t *f, const uint8_t *buf, size_t len, uint64_t ts);
static void up_data(conn_t *c, const uint8_t *buf, size_t len);

/* ---- client side -------------------------------------------------------- */

static int resolve_and_connect(flow_t *f);

/* The proxy request head is complete: CONNECT or an absolute-form request. */
static void handle_head(flow_t *f, size_t head_end)
{
    char line[8200], method[32], target[8192];
    char *eol = memchr(f->head, '\n', head_end);
    size_t n;

    if (!eol)
        goto bad;
    n = (size_t)((uint8_t *)eol - f->head);
    if (n > 0 && f->head[n - 1] == '\r')
        n--;
    if (n >= sizeof(line))
        goto bad;
    memcpy(line, f->head, n);
    line[n] = '\0';
    if (sscanf(line, "%31s %8191s HTTP/%*d.%*d", method, target) != 2)
        goto bad;
    if (strcasecmp(method, "CONNECT") == 0) {
        if (rewrite_parse_authority(target, f->host, sizeof(f->host), &f->port) < 0)
            goto bad_target;
        f->mode = M_CONNECT;
    } else if (strncasecmp(target, "http://", 7) == 0) {
        if (rewrite_parse_http_url(target, f->host, sizeof(f->host), &f->port) < 0)
            goto bad_target;
        f->mode = M_PLAIN;
        if (!(f->rw = rewrite_new())) {
            flow_close(f, 1);
            return;
        }
    } else {
        goto bad_target;
    }
    rec_flow_set_target(f->rec, f->mode == M_CONNECT ? "https" : "http", f->host, f->port);
    if (f->mode == M_CONNECT) {
        /* The CONNECT exchange is between the client and us, not part of the
           conversation it opens: drop it, keep what followed. */
        memmove(f->head, f->head + head_end, f->head_len - head_end);
        f->head_len -= head_end;
    }
    conn_pause(&f->client);
    if (resolve_and_connect(f) < 0)
        return;
    return;

bad_target:
    f->recording = 1;
    f->wire_in_done = 1;
    rec_flow_plain(f->rec, REC_C2S, f->head, f->head_len, f->head_ts);
    rec_flow_wire(f->rec, REC_CLIENT, REC_C2S, f->head, f->head_len, f->head_ts);
    flow_fail(f, NULL, "not a proxy request (need CONNECT or an absolute http:// URL): %.100s",
              line);
    send_status(f, 400, "Bad Request", "mitmrec: this is a proxy; send CONNECT or absolute-form");
    flow_linger(f, 2000);
    return;
bad:
    f->recording = 1;
    f->wire_in_done = 1;
    rec_flow_wire(f->rec, REC_CLIENT, REC_C2S, f->head, f->head_len, f->head_ts);
    flow_fail(f, NULL, "client spoke neither HTTP nor TLS");
    flow_close(f, 1);
}

static void client_data(conn_t *c, const uint8_t *buf, size_t len)
{
    flow_t *f = c->data;
    uint64_t ts = rec_now();
    int rc;

    switch (f->state) {
    case F_HEAD: {
        uint8_t *h;
        uint8_t *end;
        if (f->head_len + len > HEAD_MAX) {
            f->recording = 1;
            rec_flow_wire(f->rec, REC_CLIENT, REC_C2S, f->head, f->head_len, f->head_ts);
            flow_fail(f, NULL, "proxy request head larger than %d bytes", HEAD_MAX);
            send_status(f, 431, "Request Header Fields Too Large", "mitmrec: head too large");
            /* Read no more: the rest of the head would only repeat the failure. */
            conn_pause(&f->client);
            f->state = F_FAILED;
            flow_linger(f, 2000);
            return;
        }
        if (!(h = realloc(f->head, f->head_len + len))) {
            flow_close(f, 1);
            return;
        }
        f->head = h;
        if (!f->head_len)
            f->head_ts = ts;
        memcpy(f->head + f->head_len, buf, len);
        f->head_len += len;
        /* Neither a request line nor a TLS record can start with a control byte. */
        if (f->head[0] < 0x20 || f->head[0] >= 0x7f) {
            handle_head(f, 0);
            return;
        }
        end = memmem(f->head, f->head_len, "\r\n\r\n", 4);
        if (!end) {
            uint8_t *lf = memmem(f->head, f->head_len, "\n\n", 2);
            if (!lf)
                return;
            handle_head(f, (size_t)(lf + 2 - f->head));
            return;
        }
        handle_head(f, (size_t)(end + 4 - f->head));
        return;
    }
    case F_SNIFF:
        if ((rc = start_tunnel_data(f, buf, len, ts)) < 0)
            up_error(&f->up, rc);
        return;
    case F_RELAY:
    case F_TLS:
        if ((rc = relay_to_up(f, buf, len, ts)) < 0)
            up_error(&f->up, rc);
        return;
    default:
        return;
    }
}

static void client_wire(conn_t *c, int out, const uint8_t *buf, size_t len)
{
    flow_t *f = c->data;

    if (!out && f->wire_in_done) {
        f->wire_in_done = 0;
        return;
    }
    if (!f->recording)
        return;
    if (out && f->hold_wire_out) {
        held_wire_t *h = malloc(sizeof(*h) + len);
        if (h) {
            h->next = NULL;
            h->ts = rec_now();
            h->len = len;
            memcpy(h->data, buf, len);
            *f->wire_held_tail = h;
            f->wire_held_tail = &h->next;
            return;
        }
    }
    rec_flow_wire(f->rec, REC_CLIENT, out ? REC_S2C : REC_C2S, buf, len, rec_now());
}

static void client_handshake(conn_t *c, int status)
{
    flow_t *f = c->data;

    f->t_tls1 = rec_now();
    rec_flow_release(f->rec, REC_CLIENT);
    if (status < 0) {
        if (f->leaf_failed) {
            flow_fail(f, NULL, "cannot forge a certificate for %s", f->sni[0] ? f->sni : f->host);
        } else if (!f->up_failed) {
            char buf[200];
            log_ssl_errors(buf, sizeof(buf));
            flow_fail(f, NULL, "client TLS handshake failed%s%s (does it trust the mitmrec CA?)",
                      buf[0] ? ": " : "", buf);
        }
        ERR_clear_error();
        flow_linger(f, 1000);
        return;
    }
    {
        /* HAR: ssl is the time of both handshakes, and is included in connect. */
        double tcp = ms_between(f->t_conn0, f->t_conn1);
        double ssl = ms_between(f->t_tls0, f->t_tls1);
        rec_flow_set_timings(f->rec, ms_between(f->t_dns0, f->t_dns1),
                             tcp < 0 ? -1 : tcp + (ssl > 0 ? ssl : 0), ssl);
    }
    {
        const unsigned char *alpn = NULL;
        unsigned int alen = 0;
        char buf[32];
        SSL_get0_alpn_selected(f->client.ssl, &alpn, &alen);
        if (alen && alen < sizeof(buf)) {
            memcpy(buf, alpn, alen);
            buf[alen] = '\0';
            rec_flow_set_alpn(f->rec, buf);
        }
    }
    f->state = F_RELAY;
    if (f->linger_on)
        uv_timer_stop(&f->linger);
    conn_start(&f->up);
    if (f->early_len) {
        uint8_t *e = f->early;
        size_t n = f->early_len;
        f->early = NULL;
        f->early_len = 0;
        up_data(&f->up, e, n);
        free(e);
    }
}

static void client_eof(conn_t *c)
{
    flow_t *f = c->data;
    uint64_t ts = rec_now();

    if (f->state == F_TLS && !f->up_failed) {
        rec_flow_end(f->rec, REC_CLIENT, REC_C2S, 0, ts);
        flow_fail(f, NULL, "client closed the connection during the TLS handshake");
    }
    if (f->state == F_HEAD || f->state == F_RESOLVING || f->state == F_CONNECTING ||
        f->state == F_TLS || !f->up_inited) {
        if (f->state == F_HEAD && f->head_len) {
            f->recording = 1;
            rec_flow_wire(f->rec, REC_CLIENT, REC_C2S, f->head, f->head_len, f->head_ts);
            flow_fail(f, NULL, "client closed before a complete proxy request");
        }
        /* The client ended with a FIN: so does the record. */
        if (f->recording)
            rec_flow_end(f->rec, REC_CLIENT, REC_C2S, 0, ts);
        flow_close(f, 0);
        return;
    }
    if (f->recording && !f->client_fin_done)
        rec_flow_end(f->rec, REC_CLIENT, REC_C2S, 0, ts);
    rec_flow_end(f->rec, REC_UPSTREAM, REC_C2S, 0, ts);
    conn_shutdown(&f->up);
    if (f->up.eof || f->up.closing)
        flow_finish(f);
}

static void client_error(conn_t *c, int err)
{
    flow_t *f = c->data;
    uint64_t ts = rec_now();

    if (f->recording)
        rec_flow_end(f->rec, REC_CLIENT, REC_C2S, 1, ts);
    rec_flow_end(f->rec, REC_UPSTREAM, REC_C2S, 1, ts);
    /* A client that resets after our alert has nothing new to say. */
    if (err != UV_ECONNRESET && err != UV_EPIPE && !f->up_failed)
        flow_fail(f, NULL, "client connection: %s", mr_strerror(err));
    flow_close(f, 1);
}

static void client_drain(conn_t *c)
{
    flow_t *f = c->data;
    if (f->up_inited)
        conn_resume(&f->up);
}

static const conn_cb_t client_cb = {
    .on_handshake = client_handshake,
    .on_data = client_data,
    .on_wire = client_wire,
    .on_eof = client_eof,
    .on_error = client_error,
    .on_drain = client_drain,
    .on_shut = leg_shut,
    .on_close = on_conn_close,
};

/*
 * The first bytes inside a CONNECT tunnel decide: TLS is intercepted, the rest relayed.
 * Returns 0 or relay_to_up's error.
 */
static int start_tunnel_data(flow_t *f, const uint8_t *buf, size_t len, uint64_t ts)
{
    f->recording = 1;
    if (len >= 1 && buf[0] == 0x16 && (len < 2 || buf[1] == 0x03)) {
        SSL *ssl = SSL_new(f->p->server_ctx);
        if (!ssl) {
            flow_close(f, 1);
            return 0;
        }
        f->tls = 1;
        f->state = F_TLS;
        flow_timer(f, HANDSHAKE_TIMEOUT_MS);
        rec_flow_hold(f->rec, REC_CLIENT);
        f->hooks_client.keylog = keylog_client;
        f->hooks_client.client_hello = client_hello;
        f->hooks_client.alpn_select = alpn_select;
        f->hooks_client.opaque = f;
        tls_set_hooks(ssl, &f->hooks_client);
        conn_start_tls(&f->client, ssl, 1, buf, len);
        return 0;
    }
    rec_flow_set_target(f->rec, "http", f->host, f->port);
    f->state = F_RELAY;
    conn_start(&f->up);
    return relay_to_up(f, buf, len, ts);
}

/* ---- upstream side ------------------------------------------------------ */

static void up_connected(conn_t *c, int status)
{
    flow_t *f = c->data;
    static const char established[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    struct sockaddr_storage local;
    int len = sizeof(local);
    uint64_t ts = rec_now();
    int rc;

    f->t_conn1 = ts;
    if (status < 0 && f->mode == M_TRANSPARENT) {
        /* The application connected to us already: a reset is the nearest thing
           to the refusal it would have seen. */
        flow_fail(f, NULL, "cannot connect to %s:%u: %s", f->host, f->port, mr_strerror(status));
        flow_close(f, 1);
        return;
    }
    if (status < 0) {
        char body[400];
        flow_fail(f, f->mode == M_CONNECT ? "CONNECT" : NULL, "cannot connect to %s:%u: %s",
                  f->host, f->port, mr_strerror(status));
        if (f->mode == M_PLAIN) {
            /* The application asked for a plain HTTP URL: it gets the answer. */
            f->recording = 1;
            rec_flow_plain(f->rec, REC_C2S, f->head, f->head_len, f->head_ts);
            rec_flow_wire(f->rec, REC_CLIENT, REC_C2S, f->head, f->head_len, f->head_ts);
        }
        snprintf(body, sizeof(body), "mitmrec: %s", f->error);
        send_status(f, 502, "Bad Gateway", body);
        flow_linger(f, 2000);
        return;
    }
    if (uv_tcp_getsockname(&f->up.tcp, (struct sockaddr *)&local, &len) == 0)
        rec_flow_set_upstream(f->rec, (struct sockaddr *)&local, (struct sockaddr *)&f->up_addr,
                              f->t_conn0);
    rec_flow_set_timings(f->rec, ms_between(f->t_dns0, f->t_dns1),
                         ms_between(f->t_conn0, f->t_conn1), -1);
    conn_resume(&f->client);
    if (f->mode == M_TRANSPARENT) {
        f->state = F_SNIFF;
        conn_start(&f->client);
        conn_start(&f->up);
        return;
    }
    if (f->mode == M_CONNECT) {
        f->state = F_SNIFF;
        conn_write_raw(&f->client, established, sizeof(established) - 1);
        if (f->head_len) {
            size_t n = f->head_len;
            f->head_len = 0;
            rc = start_tunnel_data(f, f->head, n, f->head_ts);
            if (f->recording)
                rec_flow_wire(f->rec, REC_CLIENT, REC_C2S, f->head, n, f->head_ts);
            if (rc < 0) {
                up_error(&f->up, rc);
                return;
            }
        }
        conn_start(&f->up);
        return;
    }
    /* Plain HTTP: what the client sent so far is the start of the conversation. */
    f->recording = 1;
    f->state = F_RELAY;
    conn_start(&f->up);
    rc = relay_to_up(f, f->head, f->head_len, f->head_ts);
    rec_flow_wire(f->rec, REC_CLIENT, REC_C2S, f->head, f->head_len, f->head_ts);
    f->head_len = 0;
    if (rc < 0)
        up_error(&f->up, rc);
}

static void up_handshake(conn_t *c, int status)
{
    flow_t *f = c->data;
    long vr;

    f->t_tls1 = rec_now();
    rec_flow_release(f->rec, REC_UPSTREAM);
    if (status < 0) {
        char buf[200];
        vr = SSL_get_verify_result(c->ssl);
        f->up_failed = 1;
        if (vr != X509_V_OK)
            flow_fail(f, "CONNECT", "upstream certificate verification failed for %s: %s",
                      f->sni[0] ? f->sni : f->host, X509_verify_cert_error_string(vr));
        else
            flow_fail(f, "CONNECT", "upstream TLS handshake with %s:%u failed: %s", f->host,
                      f->port, log_ssl_errors(buf, sizeof(buf)));
        ERR_clear_error();
    } else {
        f->up_done = 1;
        tls_client_session_done(c->ssl);
        log_debug("flow %llu: upstream %s, %s", (unsigned long long)f->id, SSL_get_version(c->ssl),
                  SSL_session_reused(c->ssl) ? "resumed" : "full handshake");
    }
    resume_client_tls(f);
}

static void up_data(conn_t *c, const uint8_t *buf, size_t len)
{
    flow_t *f = c->data;
    int rc;

    if (f->state == F_TLS) {
        /* An HTTP/2 server sends its SETTINGS as soon as its own handshake is
           over, while the client's may still be going on: keep them until then. */
        uint8_t *n;
        if (f->early_len + len > CONN_HIGH_WATER || !(n = realloc(f->early, f->early_len + len))) {
            flow_close(f, 1);
            return;
        }
        memcpy(n + f->early_len, buf, len);
        f->early = n;
        f->early_len += len;
        return;
    }
    if (f->state == F_SNIFF) {
        /* The server speaks first: not TLS from the client, so relay as is. */
        f->recording = 1;
        f->state = F_RELAY;
        rec_flow_set_target(f->rec, "http", f->host, f->port);
    }
    if (f->state != F_RELAY)
        return;
    if ((rc = relay_to_client(f, buf, len)) < 0) {
        /* The client is gone (it reset): record its ending, not ours. */
        client_error(&f->client, rc);
        return;
    }
    if (f->client.above_high)
        conn_pause(&f->up);
}

static void up_wire(conn_t *c, int out, const uint8_t *buf, size_t len)
{
    flow_t *f = c->data;
    rec_flow_wire(f->rec, REC_UPSTREAM, out ? REC_C2S : REC_S2C, buf, len, rec_now());
}

/*
 * Whether the client's FIN is waiting in its socket, with nothing before it: it reached us,
 * but we have not read it yet.
 */
static int client_fin_waiting(flow_t *f)
{
    uv_os_fd_t fd;
    char b;

    if (f->client.eof || f->client.closing || uv_fileno((uv_handle_t *)&f->client.tcp, &fd) != 0)
        return 0;
    return recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

static void up_eof(conn_t *c)
{
    flow_t *f = c->data;
    uint64_t ts = rec_now();

    rec_flow_end(f->rec, REC_UPSTREAM, REC_S2C, 0, ts);
    if (f->state != F_RELAY) {
        if (f->state == F_TLS && !f->up_done && !f->up_failed) {
            f->up_failed = 1;
            flow_fail(f, "CONNECT", "upstream %s:%u closed during the TLS handshake", f->host,
                      f->port);
            resume_client_tls(f);
            return;
        }
        flow_close(f, 0);
        return;
    }
    if (f->recording) {
        /* Our FIN leaves for the client later (uv_shutdown, after the queued bytes), but the
           client's may be waiting already, unread: when both FINs come during one turn of the
           loop, the server's is often read first (its socket is ahead in the kernel's list of
           ready ones). On the client's connection, the client's came first: so it is recorded. */
        if (client_fin_waiting(f)) {
            f->client_fin_done = 1;
            rec_flow_end(f->rec, REC_CLIENT, REC_C2S, 0, ts);
        }
        rec_flow_end(f->rec, REC_CLIENT, REC_S2C, 0, ts);
    }
    conn_shutdown(&f->client);
    if (f->client.eof)
        flow_finish(f);
}

static void up_error(conn_t *c, int err)
{
    flow_t *f = c->data;
    uint64_t ts = rec_now();

    rec_flow_end(f->rec, REC_UPSTREAM, REC_S2C, 1, ts);
    if (f->recording)
        rec_flow_end(f->rec, REC_CLIENT, REC_S2C, 1, ts);
    flow_fail(f, NULL, "upstream %s:%u: %s", f->host, f->port, mr_strerror(err));
    flow_close(f, 1);
}

static void up_drain(conn_t *c)
{
    flow_t *f = c->data;
    conn_resume(&f->client);
}

static const conn_cb_t up_cb = {
    .on_connect = up_connected,
    .on_handshake = up_handshake,
    .on_data = up_data,
    .on_wire = up_wire,
    .on_eof = up_eof,
    .on_error = up_error,
    .on_drain = up_drain,
    .on_shut = leg_shut,
    .on_close = on_conn_close,
};

/* ---- connecting --------------------------------------------------------- */

static int connect_up(flow_t *f)
{
    int rc;

    rec_flow_set_server(f->rec, (struct sockaddr *)&f->up_addr);
    if ((rc = conn_init(&f->up, &f->p->_env, &up_cb, f)) < 0)
        goto fail;
    f->up_inited = 1;
    f->handles++;
    f->state = F_CONNECTING;
    f->t_conn0 = rec_now();
    if ((rc = conn_connect(&f->up, (struct sockaddr *)&f->up_addr)) < 0)
        goto fail;
    return 0;
fail:
    up_connected(&f->up, rc);
    return rc;
}

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    flow_t *f = req->data;
    struct addrinfo *pick = NULL;

    f->gai_pending = 0;
    f->t_dns1 = rec_now();
    if (status == UV_ECANCELED || f->state == F_CLOSING) {
        uv_freeaddrinfo(res);
        return;
    }
    /* Prefer IPv4, as most local services listen there. */
    for (struct addrinfo *a = res; a; a = a->ai_next)
        if (a->ai_family == AF_INET && (!pick || pick->ai_family != AF_INET))
            pick = a;
    if (!pick)
        pick = res;
    if (status < 0 || !pick) {
        flow_fail(f, f->mode == M_CONNECT ? "CONNECT" : NULL, "cannot resolve %s: %s", f->host,
                  mr_strerror(status < 0 ? status : UV_EAI_NONAME));
        uv_freeaddrinfo(res);
        send_status(f, 502, "Bad Gateway", "mitmrec: cannot resolve the host");
        flow_linger(f, 2000);
        return;
    }
    memcpy(&f->up_addr, pick->ai_addr, pick->ai_addrlen);
    uv_freeaddrinfo(res);
    connect_up(f);
}

static int resolve_and_connect(flow_t *f)
{
    struct sockaddr_in *s4 = (struct sockaddr_in *)&f->up_addr;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&f->up_addr;
    struct addrinfo hints;
    char port[8];
    int rc;

    memset(&f->up_addr, 0, sizeof(f->up_addr));
    if (inet_pton(AF_INET, f->host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(f->port);
        return connect_up(f);
    }
    if (inet_pton(AF_INET6, f->host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(f->port);
        return connect_up(f);
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%u", f->port);
    f->gai.data = f;
    f->state = F_RESOLVING;
    f->t_dns0 = rec_now();
    rc = uv_getaddrinfo(f->p->loop, &f->gai, gai_cb, f->host, port, &hints);
    if (rc < 0) {
        flow_fail(f, NULL, "cannot resolve %s: %s", f->host, mr_strerror(rc));
        flow_close(f, 1);
        return rc;
    }
    f->gai_pending = 1;
    return 0;
}

/* ---- accept ------------------------------------------------------------- */

static int accept_transparent(flow_t *f)
{
    proxy_t *p = f->p;
    struct sockaddr_storage orig;
    procinfo_t pi;
    int rc;

    if (!p->lookup || (rc = p->lookup(p->lookup_opaque, (struct sockaddr *)&f->client_addr,
                                      &orig, &pi)) < 0) {
        flow_close(f, 1);
        return -ENOENT;
    }
    memcpy(&f->up_addr, &orig, sizeof(orig));
    if (orig.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&orig)->sin6_addr, f->host, sizeof(f->host));
        f->port = ntohs(((struct sockaddr_in6 *)&orig)->sin6_port);
    } else {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&orig)->sin_addr, f->host, sizeof(f->host));
        f->port = ntohs(((struct sockaddr_in *)&orig)->sin_port);
    }
    f->mode = M_TRANSPARENT;
    f->recording = 1;
    f->rec = rec_flow_new(p->rec, (struct sockaddr *)&f->client_addr, (struct sockaddr *)&orig,
                          rec_now());
    if (!f->rec) {
        flow_close(f, 1);
        return -ENOMEM;
    }
    rec_flow_set_process(f->rec, &pi);
    rec_flow_set_target(f->rec, "http", f->host, f->port);
    log_debug("flow %llu: %s (pid %u) to %s:%u", (unsigned long long)f->id, pi.name, pi.pid,
              f->host, f->port);
    /* Reading the client waits for the upstream: its first bytes decide what to do. */
    return connect_up(f) < 0 ? 0 : 0;
}

int flow_accept(proxy_t *p, uv_stream_t *listener, int transparent)
{
    flow_t *f = calloc(1, sizeof(*f));
    struct sockaddr_storage local;
    int len, rc;

    if (!f)
        return -ENOMEM;
    f->p = p;
    if ((rc = conn_init(&f->client, &p->_env, &client_cb, f)) < 0) {
        free(f);
        return rc;
    }
    f->handles = 1;
    f->next = p->_flows;
    if (p->_flows)
        p->_flows->prev = f;
    p->_flows = f;
    p->_nflows++;
    f->id = ++p->_next_id;
    if ((rc = uv_accept(listener, (uv_stream_t *)&f->client.tcp)) < 0) {
        flow_close(f, 0);
        return rc;
    }
    len = sizeof(f->client_addr);
    uv_tcp_getpeername(&f->client.tcp, (struct sockaddr *)&f->client_addr, &len);
    if (transparent)
        return accept_transparent(f);
    len = sizeof(local);
    uv_tcp_getsockname(&f->client.tcp, (struct sockaddr *)&local, &len);
    /* Until the destination is known, the proxy's own address stands in. */
    f->rec = rec_flow_new(p->rec, (struct sockaddr *)&f->client_addr, (struct sockaddr *)&local,
                          rec_now());
    if (!f->rec) {
        flow_close(f, 1);
        return -ENOMEM;
    }
    f->state = F_HEAD;
    if ((rc = conn_start(&f->client)) < 0) {
        flow_close(f, 1);
        return rc;
    }
    return 0;
}

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
#include "flow_int.h"
#include "log.h"

static const conn_cb_t client_cb;

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
    free(f->phead);
    X509_free(f->leaf);
    free(f);
    if (p->_nflows == 0) {
        free(p->_held_spare);
        p->_held_spare = NULL;
    }
    if (p->_stopping && p->_nflows == 0 && p->on_idle)
        p->on_idle(p);
}

static void handle_closed(flow_t *f)
{
    if (--f->handles == 0)
        flow_free(f);
}

void flow_on_conn_close(conn_t *c)
{
    handle_closed(c->data);
}

static void on_linger_close(uv_handle_t *h)
{
    handle_closed(h->data);
}

void flow_close(flow_t *f, int reset)
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
void flow_timer(flow_t *f, int ms)
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
void flow_finish(flow_t *f)
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

void flow_leg_shut(conn_t *c)
{
    flow_t *f = c->data;

    if (f->finishing)
        flow_finish(f);
}

/* After a failure, let the client read what we sent (an alert, a 502), then close. */
void flow_linger(flow_t *f, int ms)
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

void flow_fail(flow_t *f, const char *method, const char *fmt, ...)
{
    va_list ap;
    char url[300], hp[300];
    int tls = f->mode == M_CONNECT || f->tls;

    va_start(ap, fmt);
    vsnprintf(f->error, sizeof(f->error), fmt, ap);
    va_end(ap);
    snprintf(url, sizeof(url), "%s://%s/", tls ? "https" : "http",
             mr_hostport(hp, sizeof(hp), tls && f->sni[0] ? f->sni : f->host, f->port));
    if (f->rec)
        rec_flow_error(f->rec, f->error, method, method ? url : NULL);
    log_warn("flow %llu: %s", (unsigned long long)f->id, f->error);
}

void flow_send_status(flow_t *f, int status, const char *reason, const char *body)
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

/* ---- relay -------------------------------------------------------------- */

/*
 * Sends bytes the client sent at ts to the server, then gives their plaintext to the
 * recorder: the server does not wait for the HTTP decoder (nor for a HAR entry). They are
 * recorded even when the write fails, as the client did send them. Returns 0 (also when it
 * closed the flow) or the write's error, for the caller to pass to flow_up_error once it has
 * recorded the bytes themselves.
 */
int flow_relay_to_up(flow_t *f, const uint8_t *buf, size_t len, uint64_t ts)
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

/* Blocks for client_wire: one freed block is kept for the next, so a busy flow allocates
   none per response; blocks past HELD_KEEP_MAX are not kept. */
#define HELD_KEEP_MAX (20 * 1024)

static held_wire_t *held_get(flow_t *f, size_t len)
{
    held_wire_t *h = f->p->_held_spare;

    if (h && h->cap >= len) {
        f->p->_held_spare = NULL;
        return h;
    }
    if (!(h = malloc(sizeof(*h) + len)))
        return NULL;
    h->cap = len;
    return h;
}

static void held_put(flow_t *f, held_wire_t *h)
{
    proxy_t *p = f->p;

    if (h->cap <= HELD_KEEP_MAX && (!p->_held_spare || p->_held_spare->cap < h->cap)) {
        free(p->_held_spare);
        p->_held_spare = h;
    } else {
        free(h);
    }
}

/*
 * Sends bytes from the server to the client, then records them: their plaintext, then the
 * client-leg bytes the write produced, which client_wire held meanwhile (the recorder wants
 * that order: a packet carries the notes of its plaintext). The timestamps are those from
 * before the write. Returns conn_write's result; recorded either way.
 */
int flow_relay_to_client(flow_t *f, const uint8_t *buf, size_t len)
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
        held_put(f, h);
    }
    return rc;
}

/* ---- client side -------------------------------------------------------- */

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
    if (flow_resolve_and_connect(f) < 0)
        return;
    return;

bad_target:
    f->recording = 1;
    f->wire_in_done = 1;
    rec_flow_plain(f->rec, REC_C2S, f->head, f->head_len, f->head_ts);
    rec_flow_wire(f->rec, REC_CLIENT, REC_C2S, f->head, f->head_len, f->head_ts);
    flow_fail(f, NULL, "not a proxy request (need CONNECT or an absolute http:// URL): %.100s",
              line);
    flow_send_status(f, 400, "Bad Request",
                     "mitmrec: this is a proxy; send CONNECT or absolute-form");
    /* Answered: what the client still sends is ignored, and its FIN ends the flow (in F_HEAD,
       the head would be recorded a second time as a request cut short). */
    f->state = F_FAILED;
    flow_linger(f, 2000);
    return;
bad:
    f->recording = 1;
    f->wire_in_done = 1;
    rec_flow_wire(f->rec, REC_CLIENT, REC_C2S, f->head, f->head_len, f->head_ts);
    flow_fail(f, NULL, "client spoke neither HTTP nor TLS");
    flow_close(f, 1);
}

int flow_head_add(flow_t *f, const uint8_t *buf, size_t len, uint64_t ts)
{
    uint8_t *h;

    if (f->head_len + len > HEAD_MAX)
        return -E2BIG;
    if (!(h = realloc(f->head, f->head_len + len)))
        return -ENOMEM;
    f->head = h;
    if (!f->head_len)
        f->head_ts = ts;
    memcpy(f->head + f->head_len, buf, len);
    f->head_len += len;
    return 0;
}

static void client_data(conn_t *c, const uint8_t *buf, size_t len)
{
    flow_t *f = c->data;
    uint64_t ts = rec_now();
    int rc;

    switch (f->state) {
    case F_HEAD: {
        uint8_t *end;

        if ((rc = flow_head_add(f, buf, len, ts)) == -E2BIG) {
            f->recording = 1;
            rec_flow_wire(f->rec, REC_CLIENT, REC_C2S, f->head, f->head_len, f->head_ts);
            flow_fail(f, NULL, "proxy request head larger than %d bytes", HEAD_MAX);
            flow_send_status(f, 431, "Request Header Fields Too Large", "mitmrec: head too large");
            /* Read no more: the rest of the head would only repeat the failure. */
            conn_pause(&f->client);
            f->state = F_FAILED;
            flow_linger(f, 2000);
            return;
        }
        if (rc < 0) {
            flow_close(f, 1);
            return;
        }
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
        if (flow_proxy_connect_start(f, buf, len))
            rc = flow_proxy_connect(f, buf, len, ts);
        else
            rc = flow_start_tunnel_data(f, buf, len, ts);
        if (rc < 0)
            flow_up_error(&f->up, rc);
        return;
    case F_PROXY:
        /* Sent before the proxy answered (a ClientHello right behind the CONNECT): kept. */
        if (flow_head_add(f, buf, len, ts) < 0)
            flow_close(f, 1);
        return;
    case F_RELAY:
    case F_TLS:
        if ((rc = flow_relay_to_up(f, buf, len, ts)) < 0)
            flow_up_error(&f->up, rc);
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
        held_wire_t *h = held_get(f, len);
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
        double tcp = flow_ms_between(f->t_conn0, f->t_conn1);
        double ssl = flow_ms_between(f->t_tls0, f->t_tls1);
        rec_flow_set_timings(f->rec, flow_ms_between(f->t_dns0, f->t_dns1),
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
        flow_up_data(&f->up, e, n);
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
    if (f->state == F_SNIFF && f->head_len && f->mode == M_TRANSPARENT && !f->via_proxy) {
        /* The start of a CONNECT, cut by the FIN: the bytes still go where they were sent. */
        int rc = flow_proxy_not_connect(f, ts);

        if (rc < 0) {
            flow_up_error(&f->up, rc);
            return;
        }
    }
    if (f->recording && !f->client_fin_done)
        rec_flow_end(f->rec, REC_CLIENT, REC_C2S, 0, ts);
    /* What the rewriting held back (a request line the FIN cut) goes out before the FIN. */
    if (f->mode == M_PLAIN && f->rw) {
        size_t outlen = 0;

        if (rewrite_finish(f->rw, &f->rwbuf, &outlen, &f->rwcap) == 0 && outlen)
            conn_write(&f->up, f->rwbuf, outlen);
    }
    rec_flow_end(f->rec, REC_UPSTREAM, REC_C2S, 0, ts);
    conn_shutdown(&f->up);
    if (f->up.eof || f->up.closing)
        flow_finish(f);
}

void flow_client_error(conn_t *c, int err)
{
    flow_t *f = c->data;
    uint64_t ts = rec_now();

    /* A client that resets after our alert has nothing new to say. The error first: its
       comment rides on the reset, the flow's last packet. */
    if (err != UV_ECONNRESET && err != UV_EPIPE && !f->up_failed)
        flow_fail(f, NULL, "client connection: %s", mr_strerror(err));
    if (f->recording)
        rec_flow_end(f->rec, REC_CLIENT, REC_C2S, 1, ts);
    rec_flow_end(f->rec, REC_UPSTREAM, REC_C2S, 1, ts);
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
    .on_error = flow_client_error,
    .on_drain = client_drain,
    .on_shut = flow_leg_shut,
    .on_close = flow_on_conn_close,
};

/* ---- accept ------------------------------------------------------------- */

static int accept_transparent(flow_t *f)
{
    proxy_t *p = f->p;
    struct sockaddr_storage orig;
    procinfo_t pi;
    char hp[300];
    int rc;

    if (!p->lookup ||
        (rc = p->lookup(p->lookup_opaque, (struct sockaddr *)&f->client_addr, &orig, &pi)) < 0) {
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
    rec_flow_open(f->rec);
    log_verbose("flow %llu: %s (pid %u) to %s", (unsigned long long)f->id, pi.name, pi.pid,
                mr_hostport(hp, sizeof(hp), f->host, f->port));
    /* Reading the client waits for the upstream: its first bytes decide what to do. */
    return flow_connect_up(f) < 0 ? 0 : 0;
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

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

/* A flow's upstream side: resolving, connecting, the server's events (flow_int.h). */

/* ---- upstream side ------------------------------------------------------ */

static void up_connected(conn_t *c, int status)
{
    flow_t *f = c->data;
    static const char established[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    struct sockaddr_storage local;
    char hp[300];
    int len = sizeof(local);
    uint64_t ts = rec_now();
    int rc;

    f->t_conn1 = ts;
    if (status < 0 && f->mode == M_TRANSPARENT) {
        /* The application connected to us already: a reset is the nearest thing
           to the refusal it would have seen. */
        flow_fail(f, NULL, "cannot connect to %s: %s",
                  mr_hostport(hp, sizeof(hp), f->host, f->port), mr_strerror(status));
        flow_close(f, 1);
        return;
    }
    if (status < 0) {
        char body[400];
        flow_fail(f, f->mode == M_CONNECT ? "CONNECT" : NULL, "cannot connect to %s: %s",
                  mr_hostport(hp, sizeof(hp), f->host, f->port), mr_strerror(status));
        if (f->mode == M_PLAIN) {
            /* The application asked for a plain HTTP URL: it gets the answer. */
            f->recording = 1;
            rec_flow_plain(f->rec, REC_C2S, f->head, f->head_len, f->head_ts);
            rec_flow_wire(f->rec, REC_CLIENT, REC_C2S, f->head, f->head_len, f->head_ts);
        }
        snprintf(body, sizeof(body), "mitmrec: %s", f->error);
        flow_send_status(f, 502, "Bad Gateway", body);
        flow_linger(f, 2000);
        return;
    }
    if (uv_tcp_getsockname(&f->up.tcp, (struct sockaddr *)&local, &len) == 0)
        rec_flow_set_upstream(f->rec, (struct sockaddr *)&local, (struct sockaddr *)&f->up_addr,
                              f->t_conn0);
    rec_flow_set_timings(f->rec, flow_ms_between(f->t_dns0, f->t_dns1),
                         flow_ms_between(f->t_conn0, f->t_conn1), -1);
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
            rc = flow_start_tunnel_data(f, f->head, n, f->head_ts);
            if (f->recording)
                rec_flow_wire(f->rec, REC_CLIENT, REC_C2S, f->head, n, f->head_ts);
            if (rc < 0) {
                flow_up_error(&f->up, rc);
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
    rc = flow_relay_to_up(f, f->head, f->head_len, f->head_ts);
    rec_flow_wire(f->rec, REC_CLIENT, REC_C2S, f->head, f->head_len, f->head_ts);
    f->head_len = 0;
    if (rc < 0)
        flow_up_error(&f->up, rc);
}

static void up_handshake(conn_t *c, int status)
{
    flow_t *f = c->data;
    char hp[300];
    long vr;

    f->t_tls1 = rec_now();
    if (status < 0) {
        char buf[200];
        vr = SSL_get_verify_result(c->ssl);
        f->up_failed = 1;
        if (vr != X509_V_OK)
            flow_fail(f, "CONNECT", "upstream certificate verification failed for %s: %s",
                      f->sni[0] ? f->sni : f->host, X509_verify_cert_error_string(vr));
        else
            flow_fail(f, "CONNECT", "upstream TLS handshake with %s failed: %s",
                      mr_hostport(hp, sizeof(hp), f->host, f->port),
                      log_ssl_errors(buf, sizeof(buf)));
        ERR_clear_error();
    } else {
        f->up_done = 1;
        tls_client_session_done(c->ssl);
        log_debug("flow %llu: upstream %s, %s", (unsigned long long)f->id, SSL_get_version(c->ssl),
                  SSL_session_reused(c->ssl) ? "resumed" : "full handshake");
    }
    flow_resume_client_tls(f);
}

/* ---- a client that speaks to an HTTP proxy (transparent flows) ---------- */

/* A program whose traffic goes through a proxy (HTTPS_PROXY, a corporate proxy) connects to
   the proxy and sends it "CONNECT host:port". Relayed as is, the tunnel's TLS would pass
   undecrypted: instead the CONNECT goes on to the proxy, its answer back to the program, and
   once it is a 2xx the tunnel's bytes are taken as a flow to host:port (TLS intercepted, with
   our own handshake to the server through the proxy's tunnel). The client leg of the pcapng
   holds the CONNECT and the answer before the TLS records, as on the wire. */

int flow_proxy_connect_start(const flow_t *f, const uint8_t *buf, size_t len)
{
    char host[256];
    uint16_t port;

    if (f->mode != M_TRANSPARENT || f->via_proxy)
        return 0;
    return f->head_len > 0 ||
           (len && rewrite_connect_head(buf, len, host, sizeof(host), &port) >= 0);
}

/* Not a CONNECT after all (or the client ended before it was one): what was kept is the
   start of an ordinary flow. */
int flow_proxy_not_connect(flow_t *f, uint64_t ts)
{
    uint8_t *b = f->head;
    size_t n = f->head_len;
    int rc;

    f->head = NULL;
    f->head_len = 0;
    f->via_proxy = -1;
    rc = flow_start_tunnel_data(f, b, n, ts);
    free(b);
    return rc;
}

int flow_proxy_connect(flow_t *f, const uint8_t *buf, size_t len, uint64_t ts)
{
    char host[256], at[300];
    ssize_t hlen;
    uint16_t port;
    int rc;

    f->recording = 1; /* the CONNECT is part of what the client leg shows */
    if (flow_head_add(f, buf, len, ts) < 0) {
        /* Longer than a head may be: what was kept, then buf, as an ordinary flow's bytes. */
        if ((rc = flow_proxy_not_connect(f, ts)) < 0)
            return rc;
        return flow_relay_to_up(f, buf, len, ts);
    }
    if ((hlen = rewrite_connect_head(f->head, f->head_len, host, sizeof(host), &port)) < 0)
        return flow_proxy_not_connect(f, ts);
    if (hlen == 0)
        return 0;
    /* The tunnel's end is the flow's destination from now on; the proxy is kept for a
       refusal, after which the flow is the proxy's again. */
    snprintf(f->proxy_host, sizeof(f->proxy_host), "%s", f->host);
    f->proxy_port = f->port;
    snprintf(f->host, sizeof(f->host), "%s", host);
    f->port = port;
    f->via_proxy = 1;
    f->state = F_PROXY;
    log_debug("flow %llu: CONNECT %s through the proxy at %s", (unsigned long long)f->id,
              mr_hostport(at, sizeof(at), f->host, f->port),
              mr_hostport(at + 150, sizeof(at) - 150, f->proxy_host, f->proxy_port));
    rc = conn_write_raw(&f->up, f->head, (size_t)hlen);
    /* Kept until the answer: the head, for a refusal, then what followed it. */
    f->proxy_req_len = (size_t)hlen;
    return rc < 0 ? rc : 0;
}

/* The proxy's answer to the CONNECT. */
static void proxy_answer(flow_t *f, const uint8_t *buf, size_t len)
{
    size_t chead = f->proxy_req_len, hlen;
    uint8_t *h;
    int status = 0, rc;
    uint64_t ts = rec_now();

    if (f->phead_len + len > HEAD_MAX || !(h = realloc(f->phead, f->phead_len + len))) {
        flow_close(f, 1);
        return;
    }
    f->phead = h;
    memcpy(f->phead + f->phead_len, buf, len);
    f->phead_len += len;
    if (!(hlen = rewrite_answer_head(f->phead, f->phead_len, &status)))
        return;
    if (status >= 200 && status < 300) {
        /* Open: the client's next bytes say what goes through (ours to the server go
           through the proxy's connection: f->up). */
        if ((rc = conn_write_raw(&f->client, f->phead, hlen)) < 0) {
            flow_client_error(&f->client, rc);
            return;
        }
        f->via_proxy = 2;
        f->state = F_SNIFF;
        rec_flow_set_tunneled(f->rec);
        memmove(f->head, f->head + chead, f->head_len - chead);
        f->head_len -= chead;
        if (f->phead_len > hlen) {
            /* The server spoke first: nothing to intercept. */
            f->state = F_RELAY;
            rec_flow_set_target(f->rec, "http", f->host, f->port);
            rc = flow_relay_to_client(f, f->phead + hlen, f->phead_len - hlen);
            if (rc >= 0 && f->head_len)
                rc = flow_relay_to_up(f, f->head, f->head_len, ts);
            f->head_len = 0;
        } else if (f->head_len) {
            size_t k = f->head_len;

            f->head_len = 0;
            rc = flow_start_tunnel_data(f, f->head, k, ts);
        } else {
            rc = 0;
        }
        free(f->phead);
        f->phead = NULL;
        f->phead_len = 0;
        if (rc < 0)
            flow_up_error(&f->up, rc);
        return;
    }
    /* Refused (a 407 asking for credentials, say): the conversation is the proxy's, recorded
       as plain HTTP as it would have been, the CONNECT included. */
    log_debug("flow %llu: the proxy answered the CONNECT with %d", (unsigned long long)f->id,
              status);
    snprintf(f->host, sizeof(f->host), "%s", f->proxy_host);
    f->port = f->proxy_port;
    f->via_proxy = -1;
    f->state = F_RELAY;
    rec_flow_set_target(f->rec, "http", f->host, f->port);
    rec_flow_plain(f->rec, REC_C2S, f->head, f->head_len, ts);
    /* What the client sent behind its CONNECT still goes to the proxy, as it would have. */
    rc = f->head_len > chead ? conn_write_raw(&f->up, f->head + chead, f->head_len - chead) : 0;
    f->head_len = 0;
    if (rc < 0) {
        flow_up_error(&f->up, rc);
        return;
    }
    rc = flow_relay_to_client(f, f->phead, f->phead_len);
    free(f->phead);
    f->phead = NULL;
    f->phead_len = 0;
    if (rc < 0)
        flow_client_error(&f->client, rc);
}

void flow_up_data(conn_t *c, const uint8_t *buf, size_t len)
{
    flow_t *f = c->data;
    int rc;

    if (f->state == F_PROXY) {
        proxy_answer(f, buf, len);
        return;
    }
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
    if ((rc = flow_relay_to_client(f, buf, len)) < 0) {
        /* The client is gone (it reset): record its ending, not ours. */
        flow_client_error(&f->client, rc);
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
    char hp[300];

    rec_flow_end(f->rec, REC_UPSTREAM, REC_S2C, 0, ts);
    if (f->state != F_RELAY) {
        if (f->state == F_TLS && !f->up_done && !f->up_failed) {
            f->up_failed = 1;
            flow_fail(f, "CONNECT", "upstream %s closed during the TLS handshake",
                      mr_hostport(hp, sizeof(hp), f->host, f->port));
            flow_resume_client_tls(f);
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

void flow_up_error(conn_t *c, int err)
{
    flow_t *f = c->data;
    uint64_t ts = rec_now();
    char hp[300];

    /* The error first: its comment rides on the reset, the flow's last packet. */
    flow_fail(f, NULL, "upstream %s: %s", mr_hostport(hp, sizeof(hp), f->host, f->port),
              mr_strerror(err));
    rec_flow_end(f->rec, REC_UPSTREAM, REC_S2C, 1, ts);
    if (f->recording)
        rec_flow_end(f->rec, REC_CLIENT, REC_S2C, 1, ts);
    flow_close(f, 1);
}

static void up_drain(conn_t *c)
{
    flow_t *f = c->data;
    conn_resume(&f->client);
}

const conn_cb_t flow_up_cb = {
    .on_connect = up_connected,
    .on_handshake = up_handshake,
    .on_data = flow_up_data,
    .on_wire = up_wire,
    .on_eof = up_eof,
    .on_error = flow_up_error,
    .on_drain = up_drain,
    .on_shut = flow_leg_shut,
    .on_close = flow_on_conn_close,
};

/* ---- connecting --------------------------------------------------------- */

int flow_connect_up(flow_t *f)
{
    int rc;

    rec_flow_set_server(f->rec, (struct sockaddr *)&f->up_addr);
    /* A tunnel's destination is known now: its handshake takes its place in time. (An
       absolute-form request's connection may go on to other servers: it waits for its
       first bytes.) */
    if (f->mode == M_CONNECT)
        rec_flow_open(f->rec);
    if ((rc = conn_init(&f->up, &f->p->_env, &flow_up_cb, f)) < 0)
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
        flow_send_status(f, 502, "Bad Gateway", "mitmrec: cannot resolve the host");
        flow_linger(f, 2000);
        return;
    }
    memcpy(&f->up_addr, pick->ai_addr, pick->ai_addrlen);
    uv_freeaddrinfo(res);
    flow_connect_up(f);
}

int flow_resolve_and_connect(flow_t *f)
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
        return flow_connect_up(f);
    }
    if (inet_pton(AF_INET6, f->host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(f->port);
        return flow_connect_up(f);
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

/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "log.h"
#include "replay_conn.h"
#include "replay_pass.h"
#include "replay_server.h"
#include "replay_server_int.h"

#define DELAY_MAX_MS 60000 /* --realtime never waits longer than this */

/* ---- the send queue (--realtime keeps recorded delays) ---------------------------------- */

static void pq_run(rconn_t *c);

static void timer_cb(uv_timer_t *t)
{
    pq_run(t->data);
}

void rconn_pending_free(pending_t *p)
{
    free(p->bytes);
    rresp_free(p->resp);
    free(p);
}

/* Sends every queued item whose time has come, in order; arms the timer for the next. */
static void pq_run(rconn_t *c)
{
    uint64_t now = uv_now(c->srv->cfg.loop);

    while (c->pq && !c->closing) {
        pending_t *p = c->pq;
        if (p->due > now) {
            uv_timer_start(&c->timer, timer_cb, p->due - now, 0);
            return;
        }
        c->pq = p->next;
        if (!c->pq)
            c->pq_tail = NULL;
        if (p->resp && c->h2) {
            rh2_respond(c->h2, p->stream, p->resp);
            p->resp = NULL;
        } else if (p->stream && c->h2 && p->reset) {
            rh2_reset(c->h2, p->stream);
        } else if (p->ws && c->h2) {
            /* (a stream that is gone takes nothing) */
            if (rh2_ws_send(c->h2, p->stream, p->bytes, p->len) == 0)
                rh2_flush(c->h2);
        } else {
            if (p->len)
                conn_write(&c->c, p->bytes, p->len);
            if (p->reset) {
                rconn_pending_free(p);
                rconn_finish(c);
                conn_close(&c->c, 1);
                return;
            }
            if (p->shut) {
                conn_shutdown(&c->c);
                if (c->c.eof) {
                    /* Both sides are done. */
                    rconn_pending_free(p);
                    rconn_finish(c);
                    conn_close(&c->c, 0);
                    return;
                }
            }
        }
        rconn_pending_free(p);
    }
}

void rconn_pq_add(rconn_t *c, pending_t *p, uint64_t delay_ms)
{
    uint64_t now = uv_now(c->srv->cfg.loop);

    p->due = now + (delay_ms > DELAY_MAX_MS ? DELAY_MAX_MS : delay_ms);
    /* Never ahead of what is queued before it. */
    if (c->pq_tail && p->due < c->pq_tail->due)
        p->due = c->pq_tail->due;
    if (c->pq_tail)
        c->pq_tail->next = p;
    else
        c->pq = p;
    c->pq_tail = p;
    pq_run(c);
}

/* ---- requests ------------------------------------------------------------------------------ */

static void host_of(const rconn_t *c, const char *authority, char *host, size_t len)
{
    const char *v = authority;
    size_t n;

    if (!v || !*v)
        v = c->sni[0] ? c->sni : c->orig_ip;
    if (*v == '[') {
        const char *rb = strchr(v, ']');
        v++;
        n = rb ? (size_t)(rb - v) : strlen(v);
    } else {
        const char *colon = strchr(v, ':');
        n = colon && !strchr(colon + 1, ':') ? (size_t)(colon - v) : strlen(v);
    }
    if (n >= len)
        n = len - 1;
    for (size_t i = 0; i < n; i++)
        host[i] = (char)tolower((unsigned char)v[i]);
    host[n] = '\0';
}

/* The answer of p: kept for its HTTP/2 stream, or made HTTP/1.1 bytes now (resp freed). */
static void pending_set(rconn_t *c, pending_t *p, rresp_t *resp)
{
    if (p->stream) {
        p->resp = resp;
    } else if (resp) {
        p->bytes = rresp_h1(resp, rh1_close(c->h1), rh1_http10(c->h1), &p->len);
        p->shut = rh1_close(c->h1);
        rresp_free(resp);
    }
}

/* A WebSocket upgrade (HTTP/1.1) that entry e's 101 answered: our own 101 for the client's
   key (with the recorded subprotocol, without the extensions: the recorded messages are
   replayed uncompressed) into p, and the connection turns to WebSocket. 0 when it is not
   one (the entry is then answered as any other). */
static int ws_upgrade(rconn_t *c, const replay_entry_t *e, const rreq_t *rq, pending_t *p)
{
    const char *key = http_msg_header(rq->msg, "sec-websocket-key");
    const char *proto = http_msg_header(&e->ex->resp, "sec-websocket-protocol");
    char accept[RWS_ACCEPT_LEN + 1], head[1024];
    int n;

    if (c->proto != P_H1 || !e->ws ||
        !http_header_has_token(http_msg_header(rq->msg, "upgrade"), "websocket") || !key ||
        rws_accept_key(key, accept) < 0)
        return 0;
    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%.500s%s\r\n",
                 accept, proto ? "Sec-WebSocket-Protocol: " : "", proto ? proto : "",
                 proto ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(head) || !(p->bytes = malloc((size_t)n)) ||
        !(c->ws = rws_new(c, 0, e->ex))) {
        free(p->bytes);
        p->bytes = NULL;
        return 0;
    }
    memcpy(p->bytes, head, (size_t)n);
    p->len = (size_t)n;
    c->proto = P_WS;
    return 1;
}

int rconn_ws_send(rconn_t *c, int32_t stream, uint8_t *bytes, size_t len, uint64_t delay_ms)
{
    pending_t *p;
    int rc;

    if (stream && !delay_ms && !c->pq) {
        rc = c->h2 ? rh2_ws_send(c->h2, stream, bytes, len) : -1;
        free(bytes);
        return rc < 0 ? -ENOMEM : 0;
    }
    if (!(p = calloc(1, sizeof(*p)))) {
        free(bytes);
        return -ENOMEM;
    }
    p->bytes = bytes;
    p->len = len;
    p->stream = stream;
    p->ws = stream != 0;
    rconn_pq_add(c, p, delay_ms);
    return 0;
}

void rconn_request(rconn_t *c, const rreq_t *rq, int32_t stream)
{
    replay_server_t *s = c->srv;
    const replay_options_t *o = s->cfg.o;
    match_req_t m;
    char host[256], why[1024], desc[4096];
    size_t id = 0;
    int rc, head = !strcmp(rq->method, "HEAD");
    rresp_t *resp = NULL;
    report_request_t rr;
    pending_t *p;
    uint64_t delay = 0;

    host_of(c, rq->authority, host, sizeof(host));
    memset(&m, 0, sizeof(m));
    m.scheme = c->tls ? "https" : "http";
    m.method = rq->method;
    m.host = host;
    m.port = c->orig_port;
    m.target = rq->target;
    m.headers = rq->msg->headers;
    m.nheaders = rq->msg->nheaders;
    m.body = rq->msg->body;
    m.body_len = rq->msg->body_len;
    match_describe(&m, desc, sizeof(desc));
    rc = match_find(s->cfg.match, &m, &id, why, sizeof(why));
    if (rc == 0 && rq->ws && !s->cfg.db->entries[id].ws) {
        /* A 2xx to an extended CONNECT means a WebSocket: answer no other entry with it. */
        snprintf(why, sizeof(why), "entry %zu, which matches, is not a WebSocket",
                 s->cfg.db->entries[id].index);
        rc = -1;
    }
    memset(&rr, 0, sizeof(rr));
    rr.method = rq->method;
    rr.url = strchr(desc, ' ') ? strchr(desc, ' ') + 1 : desc;
    rr.process = c->pi.name;
    rr.pid = c->pi.pid;
    rr.http2 = rq->http2;
    if (!(p = calloc(1, sizeof(*p))))
        return;
    p->stream = stream;
    if (rc == 0) {
        const replay_entry_t *e = &s->cfg.db->entries[id];
        rr.entry = (long)e->index;
        rr.action = "replayed";
        if (!stream && ws_upgrade(c, e, rq, p)) {
            log_verbose("%s -> entry %zu (101, WebSocket: %zu messages)", desc, e->index,
                        e->ex->nws);
            rr.status = 101;
            replay_report_request(s->cfg.report, &rr);
            rconn_pq_add(c, p, 0);
            rws_start(c->ws);
            return;
        }
        if (stream && rq->ws && rh2_websocket(c->h2, stream, e) == 0) {
            log_verbose("%s -> entry %zu (200, WebSocket over HTTP/2: %zu messages)", desc,
                        e->index, e->ex->nws);
            rr.status = 200;
            replay_report_request(s->cfg.report, &rr);
            free(p);
            return;
        }
        resp = rresp_from_entry(e, rq->method, !o->no_refresh);
        if (o->realtime && e->ex->t_resp_start > e->ex->t_req_end)
            delay = (e->ex->t_resp_start - e->ex->t_req_end) / 1000;
        log_verbose("%s -> entry %zu (%d)", desc, e->index, e->ex->status);
    } else {
        char text[6000];
        rr.entry = -1;
        rr.why = why;
        log_info("unmatched: %s: %s", desc, why);
        switch (o->unmatched) {
        case UNMATCHED_KILL:
            rr.action = "kill";
            p->reset = 1;
            break;
        case UNMATCHED_PASSTHROUGH:
            rr.action = "passthrough";
            if (!stream && c->proto == P_H1 &&
                http_header_has_token(http_msg_header(rq->msg, "upgrade"), "websocket")) {
                /* A WebSocket: the connection becomes a tunnel to the upstream. */
                if ((c->tunnel = replay_pass_tunnel(s->cfg.loop, s->cfg.client_ctx, s->cfg.rec_new,
                                                    &c->orig, host, c->tls, rq, c, 0))) {
                    c->proto = P_TUNNEL;
                    free(p);
                    replay_report_request(s->cfg.report, &rr);
                    return;
                }
            } else if (stream && rq->ws) {
                /* A WebSocket over HTTP/2: the stream becomes a tunnel to an HTTP/1.1 upgrade
                   of the upstream. */
                struct pass *t =
                    c->h2 ? replay_pass_tunnel(s->cfg.loop, s->cfg.client_ctx, s->cfg.rec_new,
                                               &c->orig, host, c->tls, rq, c, stream)
                          : NULL;
                if (t && rh2_tunnel_attach(c->h2, stream, t) == 0) {
                    free(p);
                    replay_report_request(s->cfg.report, &rr);
                    return;
                }
                if (t)
                    replay_pass_tunnel_drop(t);
            } else if (replay_pass_start(s->cfg.loop, s->cfg.client_ctx, s->cfg.rec_new, &c->orig,
                                         host, c->tls, rq, c, stream) == 0) {
                free(p);
                replay_report_request(s->cfg.report, &rr);
                return;
            }
            /* fall through: no upstream, a 502 says so */
            /* FALLTHROUGH */
        case UNMATCHED_502:
            if (!rr.action)
                rr.action = "502";
            snprintf(text, sizeof(text), "mitmreplay: no recorded response for %s: %s\n", desc,
                     why);
            resp = rresp_text(502, text, head);
            break;
        default:
            rr.action = "404";
            snprintf(text, sizeof(text), "mitmreplay: no recorded response for %s: %s\n", desc,
                     why);
            resp = rresp_text(404, text, head);
            break;
        }
    }
    rr.status = resp ? resp->status : 0;
    replay_report_request(s->cfg.report, &rr);
    pending_set(c, p, resp);
    rconn_pq_add(c, p, delay);
}

/* A queue item that sends a copy of data. NULL on ENOMEM. */
static pending_t *pending_copy(const uint8_t *data, size_t len)
{
    pending_t *p = calloc(1, sizeof(*p));

    if (!p || !(p->bytes = malloc(len ? len : 1))) {
        free(p);
        return NULL;
    }
    memcpy(p->bytes, data, len);
    p->len = len;
    return p;
}

/* Passthrough answered (replay_pass.c): serve its exchange like a recorded one. */
void rconn_pass_done(rconn_t *c, int32_t stream, const replay_entry_t *e, const char *method,
                     const char *err)
{
    pending_t *p = calloc(1, sizeof(*p));
    rresp_t *resp;

    if (!p)
        return;
    p->stream = stream;
    if (e) {
        resp = rresp_from_entry(e, method, !c->srv->cfg.o->no_refresh);
    } else {
        char text[600];
        snprintf(text, sizeof(text), "mitmreplay: passthrough failed: %s\n", err ? err : "");
        resp = rresp_text(502, text, !strcmp(method, "HEAD"));
    }
    pending_set(c, p, resp);
    rconn_pq_add(c, p, 0);
}

int rconn_tunnel_open(rconn_t *c, int32_t stream, const char *proto, const char *ext)
{
    return stream && c->h2 ? rh2_tunnel_open(c->h2, stream, proto, ext) : -1;
}

int rconn_tunnel_data(rconn_t *c, int32_t stream, const uint8_t *data, size_t len)
{
    pending_t *p;

    if (stream) {
        if (!c->h2 || rh2_ws_send(c->h2, stream, data, len) < 0)
            return -1;
        rh2_flush(c->h2);
        return 0;
    }
    if (!(p = pending_copy(data, len)))
        return -1;
    rconn_pq_add(c, p, 0);
    return 0;
}

void rconn_tunnel_end(rconn_t *c, int32_t stream, const char *err)
{
    char text[600];
    rresp_t *resp = NULL;
    pending_t *p;

    if (err) {
        snprintf(text, sizeof(text), "mitmreplay: passthrough failed: %s\n", err);
        resp = rresp_text(502, text, 0);
    }
    if (stream) {
        if (c->h2)
            rh2_tunnel_end(c->h2, stream, resp);
        else
            rresp_free(resp);
        return;
    }
    c->tunnel = NULL;
    c->proto = P_DONE;
    if (!(p = calloc(1, sizeof(*p)))) {
        rresp_free(resp);
        return;
    }
    if (resp) {
        p->bytes = rresp_h1(resp, 1, 0, &p->len);
        rresp_free(resp);
    }
    p->shut = 1;
    rconn_pq_add(c, p, 0);
}

void rconn_tunnel_forget(rconn_t *c, int32_t stream)
{
    if (stream && c->h2)
        rh2_tunnel_forget(c->h2, stream);
    else if (!stream)
        c->tunnel = NULL;
}

struct pass **rconn_pass_list(rconn_t *c)
{
    return &c->passes;
}

int rconn_write(rconn_t *c, const uint8_t *data, size_t len)
{
    return conn_write(&c->c, data, len);
}

/* ---- raw TCP conversations ------------------------------------------------------------- */

int rconn_has_http_for(replay_server_t *s, const rconn_t *c)
{
    for (size_t i = 0; i < s->cfg.db->nentries; i++)
        if (s->cfg.db->entries[i].port == c->orig_port)
            return 1;
    return 0;
}

/* The conversation for this connection: same port, unused, whose first client bytes agree
   best with data (NULL for a server-first start); else the last one again. */
replay_conv_t *rconn_pick_conv(replay_server_t *s, const rconn_t *c, const uint8_t *data,
                               size_t len)
{
    replaydb_t *db = s->cfg.db;
    replay_conv_t *best = NULL, *last = NULL;
    int best_score = -1;

    for (size_t i = 0; i < db->nconvs; i++) {
        replay_conv_t *cv = &db->convs[i];
        int score = 0;
        if (cv->port != c->orig_port || !cv->nchunks)
            continue;
        last = cv;
        if (cv->used)
            continue;
        if (!strcmp(cv->server_ip, c->orig_ip) || (c->sni[0] && !strcasecmp(cv->sni, c->sni)))
            score += 1;
        if (data && cv->chunks[0].dir == 0) {
            size_t n = len < cv->chunks[0].len ? len : cv->chunks[0].len;
            if (!memcmp(cv->chunks[0].data, data, n))
                score += 2;
        } else if (!data && cv->chunks[0].dir == 1) {
            score += 2;
        }
        if (score > best_score) {
            best_score = score;
            best = cv;
        }
    }
    if (!best && !s->cfg.o->no_reuse)
        best = last;
    return best;
}

void rconn_raw_report(rconn_t *c)
{
    if (c->raw_reported)
        return;
    c->raw_reported = 1;
    replay_report_conversation(c->srv->cfg.report, c->orig_at, c->conv ? c->idx : 0,
                               c->conv ? c->conv->nchunks : 0, c->conv != NULL);
}

/* Sends the recorded server bytes up to the next client turn. */
static void raw_advance(rconn_t *c)
{
    replay_conv_t *cv = c->conv;

    while (c->idx < cv->nchunks && cv->chunks[c->idx].dir == 1) {
        replay_chunk_t *ch = &cv->chunks[c->idx];
        pending_t *p = pending_copy(ch->data, ch->len);
        uint64_t delay = 0;
        if (!p)
            return;
        if (c->srv->cfg.o->realtime && c->idx > 0 && ch->ts_usec > cv->chunks[c->idx - 1].ts_usec)
            delay = (ch->ts_usec - cv->chunks[c->idx - 1].ts_usec) / 1000;
        c->idx++;
        rconn_pq_add(c, p, delay);
    }
    if (c->idx == cv->nchunks) {
        pending_t *p = calloc(1, sizeof(*p));
        rconn_raw_report(c);
        if (p) {
            p->shut = 1;
            rconn_pq_add(c, p, 0);
        }
    }
}

void rconn_raw_start(rconn_t *c, const uint8_t *data, size_t len)
{
    c->proto = P_RAW;
    if (!(c->conv = rconn_pick_conv(c->srv, c, data, len))) {
        log_info("tcp connection to %s: no recorded conversation; closing it", c->orig_at);
        rconn_raw_report(c);
        rconn_finish(c);
        conn_close(&c->c, 1);
        return;
    }
    c->conv->used = 1;
    raw_advance(c);
}

void rconn_raw_feed(rconn_t *c, const uint8_t *data, size_t len)
{
    replay_conv_t *cv = c->conv;

    if (!cv)
        return;
    c->got += len;
    while (c->idx < cv->nchunks && cv->chunks[c->idx].dir == 0 &&
           c->got >= cv->chunks[c->idx].len) {
        c->got -= cv->chunks[c->idx].len;
        c->idx++;
    }
    raw_advance(c);
}

/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "har.h"
#include "httpconv.h"
#include "log.h"
#include "outfile.h"
#include "pcapng.h"
#include "recorder.h"
#include "recorder_int.h"
#include "tcpsynth.h"

typedef struct rec_comment {
    http_exchange_t *ex; /* gets the frame number of the packet; may be NULL */
    struct rec_comment *next;
    char text[]; /* NUL-terminated */
} rec_comment_t;

typedef struct rec_leg {
    rec_flow_t *flow;
    int idx;
    int ready;        /* endpoints known */
    int opened;       /* handshake emitted */
    int in_handshake; /* emitting SYN, SYN/ACK, ACK: they carry no comments */
    int ended[2];
    char *secrets; /* key log lines not yet written: before the leg's next packet */
    size_t secrets_len;
    int64_t stream;
    uint64_t ts; /* time of the packets being emitted */
    uint64_t start_ts;
    tcpsynth_t tcp;
} rec_leg_t;

struct rec_flow {
    recorder_t *r;
    uint64_t id;
    uint64_t start_ts;
    rec_leg_t leg[2];
    httpconv_t *http; /* made at the first plaintext, once the ALPN is known */
    int http_dead;
    char alpn[32];
    int tunneled; /* 1: inside a CONNECT tunnel; 2: and its HTTP/2 took a stream number */
    char scheme[8];
    char *host;
    uint16_t port;
    char server_ip[INET6_ADDRSTRLEN];
    double dns, connect, ssl;
    int timings_used;
    rec_comment_t *comments, *comments_tail;
    char *error;
    char *err_method, *err_url;
    uint64_t exchanges;
    int64_t error_frame; /* the packet that carries the error comment */
    procinfo_t *proc;    /* NULL unless local redirect mode */
    rec_proc_t *rproc;
    char *proc_comment;
    int noted; /* a decoding note was given */
    int sel;   /* -f: 1 recorded, -1 not, 0 not decided yet */
};

/* ---- -f ----------------------------------------------------------------- */

static int sel_emit(void *opaque, int dir, const uint8_t *hdr, size_t hdrlen,
                    const uint8_t *payload, size_t plen)
{
    rec_flow_t *f = opaque;

    (void)dir;
    if (f->sel == 0 && rec_filter_match(f->r, hdr, hdrlen, payload, plen))
        f->sel = 1;
    return 0;
}

/*
 * A flow is recorded whole or not at all, so that its HAR entries stay what its packets
 * give: the filter sees the client leg's synthesized SYN, SYN/ACK and ACK, and one match
 * records the flow (so "port 443", "host H", "src port 443" all take the flows they name).
 * Decided once the leg's handshake is emitted (in explicit proxy mode its server address
 * is the proxy's own until the destination is known), or when asked with nothing emitted
 * yet but its addresses known (a flow that failed before any packet).
 */
static int decide(rec_flow_t *f)
{
    rec_leg_t *leg = &f->leg[REC_CLIENT];
    tcpsynth_t t;

    if (!f->r->has_filter)
        return 1;
    if (f->sel)
        return f->sel > 0;
    if (!leg->ready)
        return -1;
    if (tcpsynth_init(&t, &leg->tcp.ep[TCPSYNTH_C2S], &leg->tcp.ep[TCPSYNTH_S2C], leg->tcp.seq[0],
                      leg->tcp.seq[1], 0, sel_emit, f) == 0)
        tcpsynth_handshake(&t);
    if (f->sel == 0) {
        f->sel = -1;
        f->r->st.flows--;
        if (f->rproc)
            f->rproc->st.flows--;
    }
    return f->sel > 0;
}

int rec_flow_selected(rec_flow_t *f)
{
    if (f->r->has_filter && !f->sel && !f->leg[REC_CLIENT].opened)
        return -1;
    return decide(f);
}

/* ---- packets ------------------------------------------------------------ */

static void comments_free(rec_comment_t *c)
{
    while (c) {
        rec_comment_t *n = c->next;
        free(c);
        c = n;
    }
}

/*
 * The leg's key log lines not written yet, as one Decryption Secrets Block, written before
 * the leg's next packet. conn.c reports a read's bytes after the secrets OpenSSL derived from
 * them and the bytes written after the secrets they were sealed with, so every record comes
 * after the secrets that open it (tshark reads in one pass), and each packet keeps its place
 * in time among the other flows'.
 */
static void write_secrets(rec_leg_t *leg)
{
    int sel = rec_flow_selected(leg->flow);

    if (sel < 0)
        return; /* kept until the flow is decided */
    if (sel == 0) {
        free(leg->secrets);
        leg->secrets = NULL;
        leg->secrets_len = 0;
        return;
    }
    if (leg->secrets_len) {
        pcapng_writer_add_secrets(leg->flow->r->pcap, PCAPNG_SECRETS_TLS, leg->secrets,
                                  leg->secrets_len);
        free(leg->secrets);
        leg->secrets = NULL;
        leg->secrets_len = 0;
    }
}

static void write_packet(rec_leg_t *leg, int dir, uint64_t ts, const uint8_t *hdr, size_t hdrlen,
                         const uint8_t *payload, size_t plen, rec_comment_t *comments)
{
    recorder_t *r = leg->flow->r;
    pcapng_pkt_opts_t po = {0};
    char *joined = NULL;
    int64_t frame;

    if (rec_flow_selected(leg->flow) != 1) { /* (-1 cannot be: the leg is open) */
        comments_free(comments);
        return;
    }
    if (leg->secrets_len)
        write_secrets(leg);

    po.direction = dir == REC_C2S ? PCAPNG_DIR_OUTBOUND : PCAPNG_DIR_INBOUND;
    po.darwin_process = -1;
    if (leg->idx == REC_CLIENT && leg->flow->rproc) {
        po.comment2 = leg->flow->proc_comment;
        po.darwin_process = leg->flow->rproc->dpeb;
    }
    if (comments && !comments->next) {
        po.comment = comments->text;
    } else if (comments) {
        size_t n = 0;
        for (rec_comment_t *c = comments; c; c = c->next)
            n += strlen(c->text) + 2;
        if ((joined = malloc(n + 1)) != NULL) {
            joined[0] = '\0';
            for (rec_comment_t *c = comments; c; c = c->next) {
                if (joined[0])
                    strcat(joined, "; ");
                strcat(joined, c->text);
            }
            po.comment = joined;
        }
    }
    if (leg->stream < 0)
        leg->stream = r->next_stream++;
    frame = rec_write_packet(r, leg->idx, ts, hdr, hdrlen, payload, plen, &po);
    for (rec_comment_t *c = comments; c; c = c->next) {
        if (frame <= 0)
            break;
        if (c->ex)
            c->ex->user_frame = frame;
        else if (!leg->flow->error_frame)
            leg->flow->error_frame = frame;
    }
    free(joined);
    comments_free(comments);
}

/* Takes the comments waiting for the client leg's next packet. */
static rec_comment_t *take_comments(rec_leg_t *leg)
{
    rec_flow_t *f = leg->flow;
    rec_comment_t *c;

    if (leg->idx != REC_CLIENT || !f->comments || leg->in_handshake)
        return NULL;
    c = f->comments;
    f->comments = f->comments_tail = NULL;
    return c;
}

static int leg_emit(void *opaque, int dir, const uint8_t *hdr, size_t hdrlen,
                    const uint8_t *payload, size_t plen)
{
    rec_leg_t *leg = opaque;
    /* Never on a pure ACK: tcpsynth may emit the delayed ACK of the peer's last write just
       before the data a comment belongs to. */
    rec_comment_t *comments = tcpsynth_pure_ack(hdr, hdrlen, plen) ? NULL : take_comments(leg);

    write_packet(leg, dir, leg->ts, hdr, hdrlen, payload, plen, comments);
    return 0;
}

/* Writes the leg's SYN, SYN/ACK and ACK, stamped when the connection was made; or, when
   packets stamped later are in the file already (a tunnel's server is known only from its
   CONNECT), with the latest of them, so that the file stays in time order. */
static void leg_open(rec_leg_t *leg, uint64_t ts)
{
    uint64_t last = leg->flow->r->last_ts;

    if (leg->opened || !leg->ready)
        return;
    leg->opened = 1;
    leg->ts = leg->start_ts ? leg->start_ts : ts;
    if (leg->ts < last)
        leg->ts = last;
    leg->in_handshake = 1;
    tcpsynth_handshake(&leg->tcp);
    leg->in_handshake = 0;
}

void rec_flow_open(rec_flow_t *f)
{
    leg_open(&f->leg[REC_CLIENT], f->leg[REC_CLIENT].start_ts);
}

/* ---- HTTP --------------------------------------------------------------- */

static void add_comment(rec_flow_t *f, const char *text, http_exchange_t *ex)
{
    size_t n = strlen(text);
    rec_comment_t *c = malloc(sizeof(*c) + n + 1);

    if (!c)
        return;
    memcpy(c->text, text, n + 1);
    c->ex = ex;
    c->next = NULL;
    if (f->comments_tail)
        f->comments_tail->next = c;
    else
        f->comments = c;
    f->comments_tail = c;
}

/*
 * snprintf's "%s", without its cost per call, for the strings made for every
 * request: appends s to buf (len bytes, *n of them used, kept NUL-terminated),
 * cutting what does not fit.
 */
static void str_add(char *buf, size_t len, size_t *n, const char *s)
{
    size_t k = strlen(s);

    if (k > len - 1 - *n)
        k = len - 1 - *n;
    memcpy(buf + *n, s, k);
    *n += k;
    buf[*n] = '\0';
}

static void str_add_u64(char *buf, size_t len, size_t *n, uint64_t v)
{
    char d[21], *p = d + sizeof(d);

    *--p = '\0';
    do
        *--p = (char)('0' + v % 10);
    while (v /= 10);
    str_add(buf, len, n, p);
}

static void format_url(const rec_flow_t *f, const http_exchange_t *ex, char *buf, size_t len)
{
    const char *host = http_msg_header(&ex->req, ":authority");
    const char *target = ex->target ? ex->target : "";
    char hp[300];
    size_t n = 0;
    int dflt;

    if (!host)
        host = http_msg_header(&ex->req, "Host");
    if (strncmp(target, "http://", 7) == 0 || strncmp(target, "https://", 8) == 0) {
        str_add(buf, len, &n, target);
        return;
    }
    if (host) {
        str_add(buf, len, &n, f->scheme);
        str_add(buf, len, &n, "://");
        str_add(buf, len, &n, host);
        str_add(buf, len, &n, target);
        return;
    }
    dflt = (f->port == 443 && strcmp(f->scheme, "https") == 0) ||
           (f->port == 80 && strcmp(f->scheme, "http") == 0);
    snprintf(buf, len, "%s://%s%s", f->scheme,
             mr_hostport(hp, sizeof(hp), f->host ? f->host : "", dflt ? 0 : f->port), target);
}

static void on_request_head(void *opaque, http_exchange_t *ex)
{
    rec_flow_t *f = opaque;
    char url[2048], text[2200];
    uint64_t idx;
    size_t n = 0;

    if (decide(f) != 1) {
        /* -f left the flow out: a request all the same, but no index is spent on it. */
        ex->user = (void *)UINTPTR_MAX;
        return;
    }
    idx = f->r->next_index++;
    ex->user = (void *)(uintptr_t)(idx + 1);
    format_url(f, ex, url, sizeof(url));
    /* "har entry IDX: METHOD URL" */
    str_add(text, sizeof(text), &n, "har entry ");
    str_add_u64(text, sizeof(text), &n, idx);
    str_add(text, sizeof(text), &n, ": ");
    str_add(text, sizeof(text), &n, ex->method ? ex->method : "");
    str_add(text, sizeof(text), &n, " ");
    str_add(text, sizeof(text), &n, url);
    add_comment(f, text, ex);
}

/* Forgets ex in comments that have not reached a packet yet (it is about to be freed). */
static void forget_exchange(rec_flow_t *f, const http_exchange_t *ex)
{
    for (rec_comment_t *c = f->comments; c; c = c->next)
        if (c->ex == ex)
            c->ex = NULL;
}

static void write_entry(rec_flow_t *f, http_exchange_t *ex, int64_t index)
{
    recorder_t *r = f->r;
    har_entry_t e;
    char conn[32];
    size_t n = 0;
    int rc;

    if (decide(f) != 1) /* -f: not this flow (or, with no address, nothing to match) */
        return;

    memset(&e, 0, sizeof(e));
    str_add_u64(conn, sizeof(conn), &n, f->id);
    e.ex = ex;
    e.scheme = f->scheme;
    e.host = f->host;
    e.port = f->port;
    e.server_ip = f->server_ip[0] ? f->server_ip : NULL;
    e.connection = conn;
    e.blocked = e.dns = e.connect = e.ssl = -1;
    if (!f->timings_used) {
        e.dns = f->dns;
        e.connect = f->connect;
        e.ssl = f->ssl;
        f->timings_used = 1;
    }
    if (ex->user_frame > 0 && f->leg[REC_CLIENT].stream >= 0) {
        e.has_pcapng = 1;
        e.pcapng_interface = r->ifid[REC_CLIENT];
        e.pcapng_frame = ex->user_frame;
        e.pcapng_stream = f->leg[REC_CLIENT].stream;
    }
    e.index = index;
    if (f->proc) {
        e.pid = f->proc->pid;
        e.process = f->proc->name;
        e.exe = f->proc->exe[0] ? f->proc->exe : NULL;
        e.cmdline = f->proc->cmdline[0] ? f->proc->cmdline : NULL;
        f->rproc->st.requests++;
    }
    /* The flow's failure explains an unfinished exchange, and a 502 we made. */
    if (!ex->error && f->error && (!ex->resp.complete || ex->status == 502))
        e.error = f->error;
    rc = har_writer_add(r->har, &e);
    if (rc < 0 && !r->har_err_logged && !outfile_error(r->har_out)) {
        r->har_err_logged = 1;
        log_error("cannot write a HAR entry: %s", strerror(-rc));
    }
    r->st.requests++;
}

/* Once per flow: a stderr line and a comment on the flow's next packet. */
static void flow_note(rec_flow_t *f, const char *what, const char *why)
{
    char text[600];

    if (f->noted)
        return;
    f->noted = 1;
    snprintf(text, sizeof(text), "mitmrec note: %s: %s", what, why);
    add_comment(f, text, NULL);
    log_warn("flow %llu: %s: %s", (unsigned long long)f->id, what, why);
}

static void on_conv_error(void *opaque, const char *message)
{
    flow_note(opaque, "decoding stopped", message);
}

static void on_exchange(void *opaque, http_exchange_t *ex)
{
    rec_flow_t *f = opaque;

    forget_exchange(f, ex);
    if (!ex->user) {
        /* The bytes never formed a whole request head. Past its request line (the
           decoder kept method and target), the request is recorded as far as it got,
           with its answer if any (a server refusing a head too big for it) and the
           error. With no method they were not HTTP at all (raw TCP, the pcapng holds
           them), or a head over our limit: say so. */
        if (http_exchange_head_cut(ex)) {
            if (decide(f) == 1) {
                flow_note(f, "HTTP request head incomplete", ex->error);
                f->exchanges++;
                write_entry(f, ex, (int64_t)f->r->next_index++);
            }
        } else if (ex->error && strstr(ex->error, "larger than")) {
            flow_note(f, "HTTP request not decoded", ex->error);
        }
        http_exchange_free(ex);
        return;
    }
    f->exchanges++;
    write_entry(f, ex, ex->user ? (int64_t)(uintptr_t)ex->user - 1 : -1);
    http_exchange_free(ex);
}

/* ---- flows -------------------------------------------------------------- */

rec_flow_t *rec_flow_new(recorder_t *r, const struct sockaddr *client,
                         const struct sockaddr *server, uint64_t ts)
{
    rec_flow_t *f = calloc(1, sizeof(*f));

    if (!f)
        return NULL;
    f->r = r;
    f->id = ++r->next_flow;
    f->start_ts = ts;
    f->dns = f->connect = f->ssl = -1;
    strcpy(f->scheme, "http");
    for (int l = 0; l < 2; l++) {
        f->leg[l].flow = f;
        f->leg[l].idx = l;
        f->leg[l].stream = -1;
    }
    f->leg[REC_CLIENT].start_ts = ts;
    r->st.flows++;
    r->live_flows++;
    rec_flow_set_server(f, server);
    if (client && server) {
        tcpsynth_endpoint_t c, s;
        rec_to_endpoint(client, &c);
        rec_to_endpoint(server, &s);
        rec_match_family(&c, &s);
        /* Sequence numbers start from the flow id so files are reproducible. */
        tcpsynth_init(&f->leg[REC_CLIENT].tcp, &c, &s, (uint32_t)(f->id * 0x01000193u),
                      (uint32_t)(f->id * 0x9e3779b9u), 0, leg_emit, &f->leg[REC_CLIENT]);
        f->leg[REC_CLIENT].ready = 1;
    }
    return f;
}

void rec_flow_set_target(rec_flow_t *f, const char *scheme, const char *host, uint16_t port)
{
    snprintf(f->scheme, sizeof(f->scheme), "%s", scheme);
    free(f->host);
    f->host = host ? strdup(host) : NULL;
    f->port = port;
}

void rec_flow_set_server(rec_flow_t *f, const struct sockaddr *server)
{
    rec_leg_t *leg = &f->leg[REC_CLIENT];

    if (!server)
        return;
    if (server->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)server)->sin6_addr, f->server_ip,
                  sizeof(f->server_ip));
    else
        inet_ntop(AF_INET, &((const struct sockaddr_in *)server)->sin_addr, f->server_ip,
                  sizeof(f->server_ip));
    if (leg->ready && !leg->opened) {
        tcpsynth_endpoint_t c = leg->tcp.ep[TCPSYNTH_C2S], s;
        rec_to_endpoint(server, &s);
        if (c.family == AF_INET6 && s.family == AF_INET && c.addr[10] == 0xff &&
            c.addr[11] == 0xff) {
            memmove(c.addr, c.addr + 12, 4);
            c.family = AF_INET;
        }
        rec_match_family(&c, &s);
        tcpsynth_init(&leg->tcp, &c, &s, leg->tcp.seq[0], leg->tcp.seq[1], 0, leg_emit, leg);
    }
}

void rec_flow_set_upstream(rec_flow_t *f, const struct sockaddr *local,
                           const struct sockaddr *server, uint64_t ts)
{
    rec_leg_t *leg = &f->leg[REC_UPSTREAM];
    tcpsynth_endpoint_t c, s;

    if (f->r->ifid[REC_UPSTREAM] < 0 || leg->opened)
        return;
    rec_to_endpoint(local, &c);
    rec_to_endpoint(server, &s);
    rec_match_family(&c, &s);
    tcpsynth_init(&leg->tcp, &c, &s, (uint32_t)(f->id * 0x2545f491u),
                  (uint32_t)(f->id * 0x6c8e9cf5u), 0, leg_emit, leg);
    leg->ready = 1;
    leg->start_ts = ts;
}

void rec_flow_set_timings(rec_flow_t *f, double dns, double connect, double ssl)
{
    f->dns = dns;
    f->connect = connect;
    f->ssl = ssl;
}

void rec_flow_keylog(rec_flow_t *f, int l, const char *line)
{
    recorder_t *r = f->r;
    rec_leg_t *leg = &f->leg[l];
    size_t n = strlen(line);
    char *s;

    if (r->keylog && rec_flow_selected(f) != 0) {
        fprintf(r->keylog, "%s\n", line);
        fflush(r->keylog);
    }
    if (l == REC_UPSTREAM && r->ifid[REC_UPSTREAM] < 0)
        return;
    s = realloc(leg->secrets, leg->secrets_len + n + 1);
    if (!s)
        return;
    memcpy(s + leg->secrets_len, line, n);
    s[leg->secrets_len + n] = '\n';
    leg->secrets = s;
    leg->secrets_len += n + 1;
}

void rec_flow_wire(rec_flow_t *f, int l, int dir, const void *data, size_t len, uint64_t ts)
{
    rec_leg_t *leg = &f->leg[l];

    if (leg->ready && len)
        leg_open(leg, ts);
    if (l == REC_CLIENT && rec_flow_selected(f) != 0) {
        f->r->st.bytes += len;
        if (f->rproc)
            f->rproc->st.bytes += len;
    }
    if (!leg->ready || len == 0)
        return;
    leg->ts = ts;
    tcpsynth_data(&leg->tcp, dir, data, len);
}

void rec_flow_set_alpn(rec_flow_t *f, const char *alpn)
{
    snprintf(f->alpn, sizeof(f->alpn), "%s", alpn ? alpn : "");
}

void rec_flow_set_tunneled(rec_flow_t *f)
{
    f->tunneled = 1;
}

void rec_flow_plain(rec_flow_t *f, int dir, const void *data, size_t len, uint64_t ts)
{
    if (f->tunneled == 1 && len && !strcmp(f->alpn, "h2") && rec_flow_selected(f) == 1) {
        /* Where Wireshark first decodes HTTP/2 in the tunnel, it numbers a stream. */
        f->tunneled = 2;
        f->r->next_stream++;
    }
    if (f->http_dead || len == 0)
        return;
    if (!f->http) {
        httpconv_callbacks_t cb = {on_request_head, on_exchange, on_conv_error};
        f->http = httpconv_new(&cb, f, f->alpn[0] ? f->alpn : NULL, f->r->opts.max_body);
        if (!f->http) {
            f->http_dead = 1;
            return;
        }
    }
    if (httpconv_feed(f->http, dir == REC_C2S ? HTTPCONV_C2S : HTTPCONV_S2C, data, len, ts) < 0)
        f->http_dead = 1;
}

void rec_flow_end(rec_flow_t *f, int l, int dir, int rst, uint64_t ts)
{
    rec_leg_t *leg = &f->leg[l];

    if (l == REC_CLIENT && f->http && !f->http_dead)
        httpconv_eof(f->http, dir == REC_C2S ? HTTPCONV_C2S : HTTPCONV_S2C, ts);
    if (!leg->ready || leg->ended[dir] || leg->ended[!dir] == 2)
        return;
    leg_open(leg, ts);
    leg->ts = ts;
    leg->ended[dir] = rst ? 2 : 1;
    if (rst)
        tcpsynth_rst(&leg->tcp, dir);
    else
        tcpsynth_fin(&leg->tcp, dir);
}

void rec_flow_error(rec_flow_t *f, const char *msg, const char *method, const char *url)
{
    char text[1100];

    if (!f->error)
        f->error = strdup(msg);
    if (method && !f->err_method) {
        f->err_method = strdup(method);
        f->err_url = url ? strdup(url) : NULL;
    }
    snprintf(text, sizeof(text), "mitmrec error: %s", msg);
    add_comment(f, text, NULL);
}

/* A HAR entry for a flow that failed before any request (e.g. a refused TLS handshake). */
static void write_error_entry(rec_flow_t *f, uint64_t ts)
{
    http_exchange_t *ex = http_exchange_new();

    if (!ex)
        return;
    if (http_strset(&ex->method, f->err_method, strlen(f->err_method)) < 0 ||
        http_strset(&ex->target, f->err_url ? f->err_url : "",
                    f->err_url ? strlen(f->err_url) : 0) < 0 ||
        http_strset(&ex->reason, "", 0) < 0 ||
        http_strset(&ex->error, f->error ? f->error : "failed", f->error ? strlen(f->error) : 6) <
            0) {
        http_exchange_free(ex);
        return;
    }
    ex->req_major = 1;
    ex->req_minor = 1;
    ex->req.headers_size = -1;
    ex->resp.headers_size = -1;
    ex->t_req_start = f->start_ts;
    ex->t_req_end = ts;
    ex->user_frame = f->error_frame;
    if (decide(f) == 1)
        write_entry(f, ex, (int64_t)f->r->next_index++);
    http_exchange_free(ex);
}

void rec_flow_free(rec_flow_t *f, uint64_t ts)
{
    if (!f)
        return;
    if (f->http)
        httpconv_finish(f->http, f->error, ts);
    for (int l = 0; l < 2; l++) {
        rec_leg_t *leg = &f->leg[l];
        if (!leg->ready)
            continue;
        /* A failure with no packet to carry its comment still shows: the
           application's connection attempt, then its reset. */
        if (l == REC_CLIENT && f->comments && !leg->opened)
            leg_open(leg, ts);
        if (leg->opened && !leg->ended[0] && !leg->ended[1])
            rec_flow_end(f, l, REC_S2C, 1, ts);
        else if (l == REC_CLIENT && f->comments)
            rec_flow_end(f, l, leg->ended[REC_C2S] ? REC_S2C : REC_C2S, 1, ts);
        /* Secrets no packet followed (a session cut short): still in the file. */
        if (leg->opened && leg->secrets_len)
            write_secrets(leg);
        free(leg->secrets);
    }
    if (f->exchanges == 0 && f->err_method)
        write_error_entry(f, ts);
    comments_free(f->comments);
    if (f->rproc)
        f->rproc->flows_open--;
    free(f->proc);
    free(f->proc_comment);
    httpconv_free(f->http);
    f->r->live_flows--;
    free(f->host);
    free(f->error);
    free(f->err_method);
    free(f->err_url);
    free(f);
}

/* ---- processes ---------------------------------------------------------- */

void rec_flow_set_process(rec_flow_t *f, const procinfo_t *pi)
{
    char buf[128];

    free(f->proc);
    free(f->proc_comment);
    if (f->rproc)
        f->rproc->flows_open--;
    f->proc = malloc(sizeof(*f->proc));
    snprintf(buf, sizeof(buf), "process: %s, pid %u", pi->name, pi->pid);
    f->proc_comment = strdup(buf);
    f->rproc = f->proc && f->proc_comment ? rec_proc_get(f->r, pi) : NULL;
    if (!f->rproc) {
        free(f->proc);
        free(f->proc_comment);
        f->proc = NULL;
        f->proc_comment = NULL;
        return;
    }
    *f->proc = *pi;
    f->rproc->flows_open++;
    if (f->sel >= 0)
        f->rproc->st.flows++;
}

/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pcap/pcap.h>
#include <zlib.h>

#include "capture.h"
#include "grow.h"
#include "httpconv.h"
#include "keylog.h"
#include "log.h"
#include "rewrite.h"
#include "tlsdec.h"

#define IFACES_MAX 1024
#define KEYLOG_FILE_MAX (64u << 20)
#define RAW_DEFAULT_MAX (16u << 20)

typedef struct iface {
    uint16_t linktype;
    struct bpf_program prog;
    int has_prog;
} iface_t;

typedef struct cap {
    const capture_opts_t *o;
    const capture_callbacks_t *cb;
    void *opaque;
    keylog_t *keylog;
    iface_t ifaces[IFACES_MAX];
    uint32_t nifaces;
    tcpreasm_t *reasm;
    /* the packet being handled */
    uint64_t cur_ts; /* usec */
    uint32_t cur_if;
    const char *cur_comment;
    size_t cur_comment_len;
    int cur_pass;  /* the packet passed the filter */
    uint64_t kept; /* packets that passed, for renumbering */
    uint64_t next_index;
    uint64_t stream_shift; /* tcp.stream numbers Wireshark gave no TCP stream (see tunnels) */
    capture_stats_t st;
    int tls_errors;
} cap_t;

/* What an error on a damaged file says became of the part before it. */
static const char *used(const capture_opts_t *o)
{
    return o->used ? o->used : "converted";
}

typedef struct rchunk {
    int dir;
    uint64_t ts;
    size_t off, len;
} rchunk_t;

typedef struct rconn {
    cap_t *cap;
    capture_conn_t info;
    int pass; /* its first packet passed the filter: decode it */
    int decided;
    tlsdec_t *dec;
    httpconv_t *http;
    char host[256];
    char sni[256];
    char alpn[32];
    char server_ip[INET6_ADDRSTRLEN];
    char process[64];
    char *error; /* mitmrec's "mitmrec error: ..." comment on one of its packets */
    uint64_t cur_ts, cur_frame;
    uint64_t exchanges;
    /* raw bytes, for on_raw */
    uint8_t *raw;
    size_t raw_len, raw_cap;
    /* A CONNECT to an HTTP proxy: held (per direction) until the proxy's answer; once it is
       a 2xx, what follows is decoded as a stream to the tunnel's end. */
    int tunnel; /* 1: collecting the CONNECT, 2: its answer; -1: settled */
    uint8_t *tbuf[2];
    size_t tlen[2], tcap[2];
    size_t treq; /* the CONNECT's length in tbuf[C2S] */
    char thost[256];
    uint16_t tport;
    int tunneled; /* 1: the stream is a tunnel's; 2: its HTTP/2 took a stream number */
    int fin[2];   /* each direction's FIN, given to the HTTP decoder */
    rchunk_t *chunks;
    size_t nchunks, chunks_cap;
    int raw_full;
} rconn_t;

/* ---- HTTP --------------------------------------------------------------- */

static void on_request_head(void *opaque, http_exchange_t *ex)
{
    rconn_t *c = opaque;

    ex->user = (void *)(uintptr_t)(++c->cap->next_index);
    ex->user_frame = (int64_t)c->cur_frame;
}

static void on_exchange(void *opaque, http_exchange_t *ex)
{
    rconn_t *c = opaque;
    cap_t *cap = c->cap;

    /* A head cut short past its request line is an exchange too, with its error (as
       mitmrec records it live, rec_flow.c); other bytes that never made a head are not. */
    if (!ex->user && http_exchange_head_cut(ex))
        ex->user = (void *)(uintptr_t)(++cap->next_index);
    if (!ex->user || !cap->cb->on_exchange) {
        http_exchange_free(ex);
        return;
    }
    c->exchanges++;
    cap->st.exchanges++;
    c->info.host = c->host;
    c->info.sni = c->sni[0] ? c->sni : NULL;
    c->info.alpn = c->alpn[0] ? c->alpn : NULL;
    cap->cb->on_exchange(cap->opaque, &c->info, ex);
}

static void conn_http(rconn_t *c, const char *alpn)
{
    httpconv_callbacks_t cb = {on_request_head, on_exchange, NULL};

    if (!c->http)
        c->http = httpconv_new(&cb, c, alpn, c->cap->o->max_body);
}

/* Keeps a conversation's bytes until it is known whether it was HTTP. */
static void raw_add(rconn_t *c, int dir, const uint8_t *data, size_t len, uint64_t ts)
{
    size_t max = c->cap->o->max_raw ? c->cap->o->max_raw : RAW_DEFAULT_MAX;

    if (!c->cap->o->want_raw || c->raw_full || !len)
        return;
    if (c->raw_len + len > max) {
        c->raw_full = 1;
        return;
    }
    if (mr_grow(&c->raw, &c->raw_cap, c->raw_len + len, 4096, 0) < 0) {
        c->raw_full = 1;
        return;
    }
    memcpy(c->raw + c->raw_len, data, len);
    if (c->nchunks && c->chunks[c->nchunks - 1].dir == dir) {
        c->chunks[c->nchunks - 1].len += len;
    } else {
        if (c->nchunks == c->chunks_cap) {
            size_t cap = c->chunks_cap ? c->chunks_cap * 2 : 16;
            rchunk_t *n = realloc(c->chunks, cap * sizeof(*n));
            if (!n) {
                c->raw_full = 1;
                return;
            }
            c->chunks = n;
            c->chunks_cap = cap;
        }
        c->chunks[c->nchunks++] = (rchunk_t){dir, ts, c->raw_len, len};
    }
    c->raw_len += len;
}

/* ---- TLS ------------------------------------------------------------------ */

static void on_plaintext(void *opaque, int dir, int ct, const uint8_t *data, size_t len)
{
    rconn_t *c = opaque;

    if (ct != TLSDEC_CT_APPLICATION_DATA || !len)
        return;
    if (c->tunneled == 1 && !strcmp(c->alpn, "h2")) {
        /* Wireshark 4.0 numbers a tcp.stream where it first decodes HTTP/2 in a CONNECT
           tunnel, one no TCP stream has: the streams after it count it (as mitmrec's
           _pcapng.stream does, rec_flow.c). */
        c->tunneled = 2;
        c->cap->stream_shift++;
    }
    raw_add(c, dir, data, len, c->cur_ts);
    conn_http(c, NULL);
    if (c->http)
        httpconv_feed(c->http, dir, data, len, c->cur_ts);
}

static void on_tls_info(void *opaque, const tlsdec_info_t *info)
{
    rconn_t *c = opaque;

    if (info->sni) {
        snprintf(c->host, sizeof(c->host), "%s", info->sni);
        snprintf(c->sni, sizeof(c->sni), "%s", info->sni);
    }
    if (info->alpn)
        snprintf(c->alpn, sizeof(c->alpn), "%s", info->alpn);
    conn_http(c, info->alpn);
}

static void on_tls_error(void *opaque, int dir, const char *msg)
{
    rconn_t *c = opaque;

    if (c->cap->tls_errors++ < 10)
        log_warn("tcp stream %llu: %s", (unsigned long long)c->info.id, msg);
}

/* ---- TCP ------------------------------------------------------------------ */

/* Our own recordings name the process on every packet: "process: NAME, pid N". */
static void parse_process(rconn_t *c, const char *comment, size_t len)
{
    char buf[256];
    const char *p, *comma;
    unsigned long pid;

    if (!comment || len >= sizeof(buf))
        return;
    memcpy(buf, comment, len);
    buf[len] = '\0';
    p = strstr(buf, "process: ");
    if (!p)
        return;
    p += 9;
    comma = strstr(p, ", pid ");
    if (!comma || (size_t)(comma - p) >= sizeof(c->process))
        return;
    pid = strtoul(comma + 6, NULL, 10);
    memcpy(c->process, p, (size_t)(comma - p));
    c->process[comma - p] = '\0';
    c->info.pid = (int64_t)pid;
}

/* Our own recordings name a flow's failure in a comment ("mitmrec error: WHAT", joined to
   other comments with "; "): the live HAR gave its unfinished exchanges that _error, and
   so does this. The first one is kept. */
static void parse_error(rconn_t *c, const char *comment, size_t len)
{
    const char *p, *end;

    if (c->error || !comment || !(p = memmem(comment, len, "mitmrec error: ", 15)))
        return;
    p += 15;
    end = comment + len;
    for (const char *q = p; q + 1 < end; q++)
        if (q[0] == ';' && q[1] == ' ') {
            end = q;
            break;
        }
    c->error = strndup(p, (size_t)(end - p));
}

static int on_open(void *opaque, const tcpreasm_conn_info_t *info, void **user)
{
    cap_t *cap = opaque;
    rconn_t *c = calloc(1, sizeof(*c));

    if (!c)
        return -ENOMEM;
    c->cap = cap;
    c->info.id = info->id + cap->stream_shift;
    c->info.ifid = cap->cur_if;
    c->info.client = info->client;
    c->info.server = info->server;
    c->info.ts_usec = info->ts_ns / 1000;
    inet_ntop(info->server.family, info->server.addr, c->server_ip, sizeof(c->server_ip));
    snprintf(c->host, sizeof(c->host), "%s", c->server_ip);
    c->info.host = c->host;
    c->info.server_ip = c->server_ip;
    c->info.scheme = "http";
    c->info.process = c->process;
    c->pass = cap->cur_pass;
    *user = c;
    return 0;
}

static int on_data(void *opaque, uint64_t conn, void *user, int dir, const uint8_t *data,
                   size_t len, uint64_t ts_ns, uint64_t frame);

#define TUNNEL_HEAD_MAX (64 * 1024)

/* Not a tunnel after all: what was held is the start of a plain stream, each side's in
   order (the CONNECT and a refusal, say). */
static int tunnel_settle(rconn_t *c, uint64_t ts_ns, uint64_t frame)
{
    uint8_t *b[2] = {c->tbuf[0], c->tbuf[1]};
    size_t n[2] = {c->tlen[0], c->tlen[1]};
    int rc = 0;

    c->tunnel = -1;
    c->tbuf[0] = c->tbuf[1] = NULL;
    c->tlen[0] = c->tlen[1] = c->tcap[0] = c->tcap[1] = 0;
    for (int d = 0; d < 2 && rc == 0; d++)
        if (n[d])
            rc = on_data(c->cap, c->info.id, c, d ? TCPREASM_S2C : TCPREASM_C2S, b[d], n[d], ts_ns,
                         frame);
    free(b[0]);
    free(b[1]);
    return rc;
}

/* The bytes of a stream that starts with "CONNECT " (as mitmrec records a program that
   speaks to a proxy, and any capture of one). */
static int tunnel_data(rconn_t *c, int dir, const uint8_t *data, size_t len, uint64_t ts_ns,
                       uint64_t frame)
{
    int d = dir == TCPREASM_C2S ? 0 : 1;
    int status = 0;

    if (c->tlen[d] + len > TUNNEL_HEAD_MAX ||
        mr_grow(&c->tbuf[d], &c->tcap[d], c->tlen[d] + len, 1024, 0) < 0) {
        /* Too long for a head (or no memory): the lot, as it is. */
        int rc = tunnel_settle(c, ts_ns, frame);
        return rc ? rc : on_data(c->cap, c->info.id, c, dir, data, len, ts_ns, frame);
    }
    memcpy(c->tbuf[d] + c->tlen[d], data, len);
    c->tlen[d] += len;
    if (c->tunnel == 0)
        c->tunnel = 1;
    if (c->tunnel == 1) {
        ssize_t n;

        if (d == 1)
            return tunnel_settle(c, ts_ns, frame);
        n = rewrite_connect_head(c->tbuf[0], c->tlen[0], c->thost, sizeof(c->thost), &c->tport);
        if (n < 0)
            return tunnel_settle(c, ts_ns, frame);
        if (n == 0)
            return 0;
        c->treq = (size_t)n;
        c->tunnel = 2;
    }
    if (c->tunnel == 2 && c->tlen[1]) {
        size_t shead;
        uint8_t *b[2];
        size_t rest[2];
        int rc = 0;

        if (!(shead = rewrite_answer_head(c->tbuf[1], c->tlen[1], &status)))
            return 0;
        if (status < 200 || status > 299)
            return tunnel_settle(c, ts_ns, frame);
        /* Open: the stream is the tunnel's from here, its end named by the CONNECT. */
        snprintf(c->host, sizeof(c->host), "%s", c->thost);
        c->info.server.port = c->tport;
        c->tunnel = -1;
        c->tunneled = 1;
        c->decided = 0;
        b[0] = c->tbuf[0];
        b[1] = c->tbuf[1];
        rest[0] = c->tlen[0] - c->treq;
        rest[1] = c->tlen[1] - shead;
        c->tbuf[0] = c->tbuf[1] = NULL;
        c->tlen[0] = c->tlen[1] = c->tcap[0] = c->tcap[1] = 0;
        if (rest[0])
            rc =
                on_data(c->cap, c->info.id, c, TCPREASM_C2S, b[0] + c->treq, rest[0], ts_ns, frame);
        if (rc == 0 && rest[1])
            rc = on_data(c->cap, c->info.id, c, TCPREASM_S2C, b[1] + shead, rest[1], ts_ns, frame);
        free(b[0]);
        free(b[1]);
        return rc;
    }
    return 0;
}

static int on_data(void *opaque, uint64_t conn, void *user, int dir, const uint8_t *data,
                   size_t len, uint64_t ts_ns, uint64_t frame)
{
    cap_t *cap = opaque;
    rconn_t *c = user;
    tlsdec_callbacks_t tcb = {on_plaintext, on_tls_info, on_tls_error};

    if (!c->pass)
        return 0; /* seen only so that stream numbers are the input file's */
    c->cur_ts = ts_ns / 1000;
    c->cur_frame = frame;
    if (!c->info.pid)
        parse_process(c, cap->cur_comment, cap->cur_comment_len);
    parse_error(c, cap->cur_comment, cap->cur_comment_len);
    if (!c->decided && (c->tunnel > 0 || (c->tunnel == 0 && dir == TCPREASM_C2S &&
                                          rewrite_connect_head(data, len, c->thost,
                                                               sizeof(c->thost), &c->tport) >= 0)))
        return tunnel_data(c, dir, data, len, ts_ns, frame);
    if (!c->decided) {
        c->decided = 1;
        if (dir == TCPREASM_C2S && len >= 3 && data[0] == 0x16 && data[1] == 0x03) {
            c->info.tls = 1;
            c->info.scheme = "https";
            c->dec = tlsdec_new(cap->keylog, &tcb, c);
        } else {
            conn_http(c, NULL);
        }
    }
    if (c->dec) {
        tlsdec_feed(c->dec, dir, data, len);
    } else {
        raw_add(c, dir, data, len, c->cur_ts);
        if (c->http)
            httpconv_feed(c->http, dir, data, len, c->cur_ts);
    }
    return 0;
}

static void deliver_raw(rconn_t *c)
{
    cap_t *cap = c->cap;
    capture_chunk_t *ch;

    /* Not HTTP: the decoder never saw a request (it stops quietly on other bytes). */
    if (!cap->o->want_raw || !cap->cb->on_raw || !c->nchunks || c->exchanges)
        return;
    if (!(ch = calloc(c->nchunks, sizeof(*ch))))
        return;
    for (size_t i = 0; i < c->nchunks; i++)
        ch[i] = (capture_chunk_t){c->chunks[i].dir, c->chunks[i].ts, c->raw + c->chunks[i].off,
                                  c->chunks[i].len};
    c->info.host = c->host;
    c->info.sni = c->sni[0] ? c->sni : NULL;
    c->info.alpn = c->alpn[0] ? c->alpn : NULL;
    cap->cb->on_raw(cap->opaque, &c->info, ch, c->nchunks);
    free(ch);
}

/* A direction's FIN: its message may end there (a body delimited by the close), as mitmrec
   live ends it at the FIN it relays (rec_flow_end). */
static int on_fin(void *opaque, uint64_t conn, void *user, int dir)
{
    rconn_t *c = user;
    int rc = 0;

    if (!c->pass)
        return 0;
    if (c->tunnel > 0)
        rc = tunnel_settle(c, c->cur_ts * 1000, c->cur_frame);
    if (c->http && !c->fin[dir == TCPREASM_S2C]) {
        c->fin[dir == TCPREASM_S2C] = 1;
        httpconv_eof(c->http, dir == TCPREASM_C2S ? HTTPCONV_C2S : HTTPCONV_S2C,
                     c->cap->cur_ts > c->cur_ts ? c->cap->cur_ts : c->cur_ts);
    }
    return rc;
}

static int on_close(void *opaque, uint64_t conn, void *user, int how)
{
    rconn_t *c = user;
    uint64_t ts = c->cur_ts;

    parse_error(c, c->cap->cur_comment, c->cap->cur_comment_len); /* the closing packet's */
    if (c->pass && c->tunnel > 0)
        tunnel_settle(c, c->cur_ts * 1000, c->cur_frame); /* a CONNECT never answered */
    if (c->http) {
        if (how == TCPREASM_CLOSE_FIN) {
            if (!c->fin[0])
                httpconv_eof(c->http, HTTPCONV_C2S, ts);
            if (!c->fin[1])
                httpconv_eof(c->http, HTTPCONV_S2C, ts);
        }
        httpconv_finish(c->http,
                        c->error                    ? c->error
                        : how == TCPREASM_CLOSE_RST ? "connection reset"
                        : how == TCPREASM_CLOSE_FIN ? NULL
                                                    : "capture ended before the connection",
                        ts);
    }
    free(c->error);
    deliver_raw(c);
    httpconv_free(c->http);
    tlsdec_free(c->dec);
    free(c->raw);
    free(c->chunks);
    free(c->tbuf[0]);
    free(c->tbuf[1]);
    free(c);
    return 0;
}

static int on_udp(void *opaque, const tcpreasm_endpoint_t *src, const tcpreasm_endpoint_t *dst,
                  const uint8_t *data, size_t len, uint64_t ts_ns, uint64_t frame)
{
    cap_t *cap = opaque;

    if (cap->cb->on_udp && cap->cur_pass)
        cap->cb->on_udp(cap->opaque, src, dst, data, len, ts_ns / 1000);
    return 0;
}

/* ---- packets ---------------------------------------------------------------- */

/* The filter, per interface (its link type). */
static int passes(cap_t *cap, const pcapread_packet_t *pkt)
{
    struct pcap_pkthdr h;

    if (pkt->ifid >= cap->nifaces || !cap->ifaces[pkt->ifid].has_prog)
        return 1;
    h.ts.tv_sec = (time_t)(pkt->ts_ns / 1000000000u);
    h.ts.tv_usec = (suseconds_t)(pkt->ts_ns / 1000 % 1000000);
    h.caplen = pkt->caplen;
    h.len = pkt->origlen;
    return pcap_offline_filter(&cap->ifaces[pkt->ifid].prog, &h, pkt->data) != 0;
}

/* pcapng's LINKTYPE_ values are libpcap's DLT_ values, but for four below 104 that differ
   between systems (LINKTYPE_RAW, 101, is DLT_RAW, 12 or 14). Classic pcap input comes
   through pcap_datalink(), a DLT_ already. */
static int dlt_of(uint16_t linktype)
{
    switch (linktype) {
    case 100:
        return DLT_ATM_RFC1483;
    case 101:
        return DLT_RAW;
    case 102:
        return DLT_SLIP_BSDOS;
    case 103:
        return DLT_PPP_BSDOS;
    default:
        return linktype;
    }
}

int capture_filter_compile(const char *filter, uint16_t linktype, struct bpf_program *prog,
                           char *err, size_t errlen)
{
    pcap_t *dead = pcap_open_dead(dlt_of(linktype), 262144);
    int rc = 0;

    if (!dead || pcap_compile(dead, prog, filter, 1, PCAP_NETMASK_UNKNOWN) < 0) {
        snprintf(err, errlen, "invalid filter '%s': %s", filter,
                 dead ? pcap_geterr(dead) : "libpcap failed");
        rc = -EINVAL;
    }
    if (dead)
        pcap_close(dead);
    return rc;
}

int capture_filter_check(const char *filter, char *err, size_t errlen)
{
    struct bpf_program prog;
    int rc = capture_filter_compile(filter, TCPREASM_LINKTYPE_ETHERNET, &prog, err, errlen);

    if (rc == 0)
        pcap_freecode(&prog);
    return rc;
}

static int add_iface(cap_t *cap, uint16_t linktype)
{
    iface_t *ifc;

    if (cap->nifaces == IFACES_MAX) {
        log_error("%s: more than %d interfaces; %s what came before the next one", cap->o->path,
                  IFACES_MAX, used(cap->o));
        return -E2BIG;
    }
    ifc = &cap->ifaces[cap->nifaces++];
    memset(ifc, 0, sizeof(*ifc));
    ifc->linktype = linktype;
    if (cap->o->filter) {
        char err[PCAP_ERRBUF_SIZE + 512];

        if (capture_filter_compile(cap->o->filter, linktype, &ifc->prog, err, sizeof(err)) < 0) {
            log_error("%s", err);
            return -EINVAL;
        }
        ifc->has_prog = 1;
    }
    return 0;
}

static int pr_interface(void *opaque, const pcapread_interface_t *ifc)
{
    return add_iface(opaque, ifc->linktype);
}

static int pr_packet(void *opaque, const pcapread_packet_t *pkt)
{
    cap_t *cap = opaque;
    uint64_t frame = pkt->frame;
    int rc;

    cap->cur_pass = passes(cap, pkt);
    if (!cap->cur_pass) {
        cap->st.filtered++;
        /* Without renumbering, every packet still counts for tcp.stream numbers. */
        if (cap->o->renumber)
            return 0;
    } else {
        if (cap->cb->on_packet && (rc = cap->cb->on_packet(cap->opaque, pkt)) < 0)
            return rc;
        cap->st.packets++;
        cap->kept++;
        if (cap->o->renumber && cap->o->filter)
            frame = cap->kept;
    }
    cap->cur_ts = pkt->ts_ns / 1000;
    cap->cur_if = pkt->ifid;
    cap->cur_comment = pkt->comment;
    cap->cur_comment_len = pkt->comment_len;
    rc = tcpreasm_packet(cap->reasm, pkt->linktype, pkt->ts_ns, pkt->data, pkt->caplen, frame);
    cap->cur_comment = NULL;
    return rc;
}

static int pr_secrets(void *opaque, uint32_t type, const uint8_t *data, size_t len)
{
    cap_t *cap = opaque;

    if (type != PCAPREAD_SECRETS_TLS)
        return 0;
    keylog_add_text(cap->keylog, (const char *)data, len);
    if (cap->cb->on_secrets)
        cap->cb->on_secrets(cap->opaque, type, data, len);
    return 0;
}

static void pr_error(void *opaque, uint64_t offset, const char *msg)
{
    cap_t *cap = opaque;

    if (offset == 0) /* nothing came before it */
        log_error("%s: %s", cap->o->path, msg);
    else
        log_error("%s: bad block at byte offset %llu: %s; %s what came before it", cap->o->path,
                  (unsigned long long)offset, msg, used(cap->o));
}

/* Classic pcap goes through libpcap, which knows its variants. */
static int read_classic(cap_t *cap, pcap_t *p, const char *path)
{
    struct pcap_pkthdr *h;
    const u_char *data;
    uint64_t frame = 0;
    int rc, nano;

    nano = pcap_get_tstamp_precision(p) == PCAP_TSTAMP_PRECISION_NANO;
    if ((rc = add_iface(cap, (uint16_t)pcap_datalink(p))) < 0) {
        pcap_close(p);
        return rc;
    }
    while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
        pcapread_packet_t pkt;

        memset(&pkt, 0, sizeof(pkt));
        pkt.frame = ++frame;
        pkt.linktype = cap->ifaces[0].linktype;
        pkt.ts_ns =
            (uint64_t)h->ts.tv_sec * 1000000000u + (uint64_t)h->ts.tv_usec * (nano ? 1u : 1000u);
        pkt.data = data;
        pkt.caplen = h->caplen;
        pkt.origlen = h->len;
        if ((rc = pr_packet(cap, &pkt)) < 0)
            break;
    }
    if (rc == PCAP_ERROR) {
        log_error("%s: %s; %s what came before it", path, pcap_geterr(p), used(cap->o));
        rc = -EBADMSG;
    } else if (rc > 0 || rc == PCAP_ERROR_BREAK || rc == -2) {
        rc = 0;
    }
    pcap_close(p);
    return rc;
}

/*
 * A capture compressed with gzip (as "-o x.pcapng.gz" writes it), or any capture on standard
 * input, is read through zlib, which passes bytes that are not gzip through as they are.
 * libpcap gets such a classic pcap as a FILE over the gzFile, the magic number that was
 * read to tell the formats apart put back in front.
 */
typedef struct gzsrc {
    gzFile gz;
    char head[4];
    int nhead, off;
} gzsrc_t;

static ssize_t gzsrc_read(void *c, char *buf, size_t size)
{
    gzsrc_t *g = c;
    size_t n = 0;
    int r;

    while (g->off < g->nhead && n < size)
        buf[n++] = g->head[g->off++];
    if (n == size)
        return (ssize_t)n;
    r = gzread(g->gz, buf + n, (unsigned)(size - n > INT_MAX ? INT_MAX : size - n));
    if (r < 0)
        return n ? (ssize_t)n : -1;
    return (ssize_t)(n + (size_t)r);
}

static int gzsrc_close(void *c)
{
    gzsrc_t *g = c;
    int rc = gzclose_r(g->gz);

    free(g);
    return rc == Z_OK ? 0 : EOF;
}

const char *capture_gz_reason(gzFile gz, const char *path, int *zerr)
{
    const char *m = gzerror(gz, zerr);
    size_t n = strlen(path);

    if (*zerr == Z_ERRNO)
        return strerror(errno);
    /* zlib names the file first: the path gzopen had, or "<fd:N>" after gzdopen. */
    if (strncmp(m, path, n) == 0 && strncmp(m + n, ": ", 2) == 0)
        return m + n + 2;
    if (strncmp(m, "<fd:", 4) == 0 && strstr(m, ": "))
        return strstr(m, ": ") + 2;
    return m;
}

/* The key log file, whole. */
static int read_keylog_file(const char *path, char **text, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t have = 0, cap = 65536;
    char *buf = NULL, *nb;
    ssize_t n;

    if (fd < 0) {
        int e = errno;
        log_error("cannot read --keylog %s: %s", path, strerror(e));
        return -e;
    }
    do {
        if (have == cap || !buf) {
            if (buf)
                cap *= 2;
            if (cap > KEYLOG_FILE_MAX || !(nb = realloc(buf, cap))) {
                log_error("--keylog %s: larger than %u MiB", path, KEYLOG_FILE_MAX >> 20);
                free(buf);
                close(fd);
                return -EFBIG;
            }
            buf = nb;
        }
        n = read(fd, buf + have, cap - have);
        if (n > 0)
            have += (size_t)n;
    } while (n > 0);
    close(fd);
    *text = buf;
    *len = have;
    return 0;
}

int capture_read(const capture_opts_t *o, const capture_callbacks_t *cb, void *opaque,
                 capture_stats_t *st)
{
    cap_t *cap = calloc(1, sizeof(*cap));
    tcpreasm_callbacks_t tcb = {on_open, on_data, NULL, on_close, on_udp, on_fin};
    pcapread_callbacks_t pcb = {NULL, pr_interface, pr_packet, pr_secrets, pr_error};
    pcapread_t *pr = NULL;
    char magic[4], errbuf[PCAP_ERRBUF_SIZE];
    int fd = -1, rc = 0, classic = 0, zerr = Z_OK;
    gzsrc_t *gs = NULL;
    pcap_t *pc = NULL;
    char *keytext = NULL;
    size_t keylen = 0;
    ssize_t n;
    uint8_t *buf = NULL;

    if (!cap)
        return -ENOMEM;
    cap->o = o;
    cap->cb = cb;
    cap->opaque = opaque;
    if (!(cap->keylog = keylog_new()) || !(cap->reasm = tcpreasm_new(&tcb, cap, NULL, &rc)) ||
        !(buf = malloc(1 << 20))) {
        rc = -ENOMEM;
        goto out;
    }
    if (o->keylog_path) {
        if ((rc = read_keylog_file(o->keylog_path, &keytext, &keylen)) < 0)
            goto out;
        keylog_add_text(cap->keylog, keytext, keylen);
    }
    fd = strcmp(o->path, "-") == 0 ? STDIN_FILENO : open(o->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        log_error("cannot read %s: %s", o->path, strerror(-rc));
        goto out;
    }
    n = fd == STDIN_FILENO ? -1 : pread(fd, magic, 4, 0);
    if (n < 0 && fd != STDIN_FILENO) {
        rc = -errno;
        log_error("cannot read %s: %s", o->path, strerror(-rc));
        goto out;
    }
    if (fd == STDIN_FILENO || (n >= 2 && (uint8_t)magic[0] == 0x1f && (uint8_t)magic[1] == 0x8b)) {
        int gfd = fd == STDIN_FILENO ? dup(fd) : fd;

        if (gfd < 0 || !(gs = calloc(1, sizeof(*gs))) || !(gs->gz = gzdopen(gfd, "rb"))) {
            rc = gfd < 0 ? -errno : -ENOMEM;
            log_error("cannot read %s: %s", o->path, strerror(-rc));
            if (gfd >= 0 && gfd != fd)
                close(gfd);
            free(gs);
            gs = NULL;
            goto out;
        }
        if (fd != STDIN_FILENO)
            fd = -1; /* gs->gz has it now */
        gzbuffer(gs->gz, 1 << 17);
        n = gzread(gs->gz, magic, 4);
        if (n < 0) {
            log_error("cannot read %s: %s", o->path, capture_gz_reason(gs->gz, o->path, &zerr));
            rc = -EIO;
            goto out;
        }
        memcpy(gs->head, magic, (size_t)n);
        gs->nhead = (int)n;
    }
    if (n == 4) {
        uint32_t m;
        memcpy(&m, magic, 4);
        classic = m == 0xa1b2c3d4u || m == 0xd4c3b2a1u || m == 0xa1b23c4du || m == 0x4d3cb2a1u;
    }
    if (classic) {
        if (gs) {
            FILE *f =
                fopencookie(gs, "r", (cookie_io_functions_t){gzsrc_read, NULL, NULL, gzsrc_close});
            if (f) {
                gs = NULL; /* the FILE has it, and closes it */
                if (!(pc = pcap_fopen_offline(f, errbuf)))
                    fclose(f);
            } else {
                snprintf(errbuf, sizeof(errbuf), "%s", strerror(errno));
            }
        } else {
            pc = pcap_open_offline(o->path, errbuf);
        }
        if (!pc) {
            log_error("%s: %s", o->path, errbuf);
            rc = -EBADMSG;
            goto out;
        }
    }
    if (!classic) {
        /* The first bytes say whether this is a capture at all, before any output is made
           (an existing one is kept when it is not). */
        const char *head = gs ? gs->head : magic;
        size_t nh = gs ? (size_t)gs->nhead : n > 0 ? (size_t)n : 0;

        if (!(pr = pcapread_new(&pcb, cap, &rc)))
            goto out;
        if (nh && (rc = pcapread_feed(pr, (const uint8_t *)head, nh)) < 0)
            goto out;
        if (nh < 4 && (rc = pcapread_finish(pr)) < 0) /* (then it is all there is) */
            goto out;
        if (!gs && nh && lseek(fd, (off_t)nh, SEEK_SET) < 0) {
            rc = -errno;
            log_error("cannot read %s: %s", o->path, strerror(-rc));
            goto out;
        }
    }
    if (cb->on_start && (rc = cb->on_start(opaque)) < 0)
        goto out;
    /* Ahead of every packet, so one pass decrypts. */
    if (keylen && cb->on_secrets)
        cb->on_secrets(opaque, PCAPREAD_SECRETS_TLS, (const uint8_t *)keytext, keylen);
    if (classic) {
        rc = read_classic(cap, pc, o->path);
        pc = NULL;
    } else {
        if (gs) {
            while (rc == 0 && (n = gzread(gs->gz, buf, 1 << 20)) > 0)
                rc = pcapread_feed(pr, buf, (size_t)n);
            /* A stream cut short reads as its end, with Z_BUF_ERROR kept. */
            if (rc == 0) {
                const char *why = capture_gz_reason(gs->gz, o->path, &zerr);

                if (zerr != Z_OK) {
                    log_error("%s: %s; %s what came before it", o->path, why, used(o));
                    rc = -EBADMSG;
                }
            }
        } else {
            while ((n = read(fd, buf, 1 << 20)) > 0)
                if ((rc = pcapread_feed(pr, buf, (size_t)n)) < 0)
                    break;
            if (n < 0) {
                rc = -errno;
                log_error("cannot read %s: %s", o->path, strerror(-rc));
            }
        }
        if (rc == 0)
            rc = pcapread_finish(pr);
    }
    /* Whatever happened above, what was read so far is delivered. */
    tcpreasm_finish(cap->reasm);
out:
    if (st)
        *st = cap->st;
    if (fd >= 0 && fd != STDIN_FILENO)
        close(fd);
    if (gs)
        gzsrc_close(gs);
    if (pc)
        pcap_close(pc);
    pcapread_free(pr);
    tcpreasm_free(cap->reasm);
    keylog_free(cap->keylog);
    free(keytext);
    free(buf);
    for (uint32_t i = 0; i < cap->nifaces; i++)
        if (cap->ifaces[i].has_prog)
            pcap_freecode(&cap->ifaces[i].prog);
    free(cap);
    return rc;
}

/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pcap/pcap.h>

#include "config.h"
#include "har.h"
#include "httpconv.h"
#include "keylog.h"
#include "log.h"
#include "outfile.h"
#include "pcapng.h"
#include "pcapread.h"
#include "readmode.h"
#include "tcpreasm.h"
#include "tlsdec.h"

#define IFACES_MAX 1024

typedef struct iface {
    uint16_t linktype;
    int out_id;                  /* interface id in the -o copy, -1 before it is written */
    struct bpf_program prog;
    int has_prog;
} iface_t;

typedef struct rd {
    const options_t *o;
    keylog_t *keylog;
    har_writer_t *har;
    outfile_t *har_out, *pcap_out;
    pcapng_writer_t *pcap;
    iface_t ifaces[IFACES_MAX];
    uint32_t nifaces;
    tcpreasm_t *reasm;
    /* the packet being handled */
    uint32_t cur_if;
    const char *cur_comment;
    size_t cur_comment_len;
    uint64_t next_index;
    uint64_t entries, packets, filtered;
    int failed;
    int tls_errors;
} rd_t;

typedef struct rconn {
    rd_t *rd;
    uint64_t id;
    uint32_t ifid;
    tcpreasm_endpoint_t client, server;
    int decided;
    int tls;
    tlsdec_t *dec;
    httpconv_t *http;
    char host[256];
    char server_ip[INET6_ADDRSTRLEN];
    uint64_t cur_ts, cur_frame;
    int64_t pid;
    char process[64];
} rconn_t;

/* ---- HTTP to HAR --------------------------------------------------------- */

static void on_request_head(void *opaque, http_exchange_t *ex)
{
    rconn_t *c = opaque;

    ex->user = (void *)(uintptr_t)(++c->rd->next_index);
    ex->user_frame = (int64_t)c->cur_frame;
}

static void on_exchange(void *opaque, http_exchange_t *ex)
{
    rconn_t *c = opaque;
    rd_t *rd = c->rd;
    har_entry_t e;
    char conn[32];
    int rc;

    if (!ex->user) {
        http_exchange_free(ex);
        return;
    }
    memset(&e, 0, sizeof(e));
    snprintf(conn, sizeof(conn), "%llu", (unsigned long long)c->id);
    e.ex = ex;
    e.scheme = c->tls ? "https" : "http";
    e.host = c->host;
    e.port = c->server.port;
    e.server_ip = c->server_ip;
    e.connection = conn;
    e.blocked = e.dns = e.connect = e.ssl = -1;
    e.has_pcapng = ex->user_frame > 0;
    e.pcapng_interface = (int)c->ifid;
    e.pcapng_frame = ex->user_frame;
    e.pcapng_stream = (int64_t)c->id;
    e.index = (int64_t)(uintptr_t)ex->user - 1;
    if (c->pid > 0) {
        e.pid = c->pid;
        e.process = c->process;
    }
    rc = har_writer_add(rd->har, &e);
    if (rc < 0 && !rd->failed) {
        log_error("cannot write %s: %s", rd->o->har_path, strerror(-rc));
        rd->failed = 1;
    }
    rd->entries++;
    http_exchange_free(ex);
}

static void conn_http(rconn_t *c, const char *alpn)
{
    httpconv_callbacks_t cb = {on_request_head, on_exchange};

    if (!c->http)
        c->http = httpconv_new(&cb, c, alpn, c->rd->o->max_body);
}

/* ---- TLS ------------------------------------------------------------------ */

static void on_plaintext(void *opaque, int dir, int ct, const uint8_t *data, size_t len)
{
    rconn_t *c = opaque;

    if (ct != TLSDEC_CT_APPLICATION_DATA || !len)
        return;
    conn_http(c, NULL);
    if (c->http)
        httpconv_feed(c->http, dir, data, len, c->cur_ts);
}

static void on_tls_info(void *opaque, const tlsdec_info_t *info)
{
    rconn_t *c = opaque;

    if (info->sni)
        snprintf(c->host, sizeof(c->host), "%s", info->sni);
    conn_http(c, info->alpn);
}

static void on_tls_error(void *opaque, int dir, const char *msg)
{
    rconn_t *c = opaque;

    if (c->rd->tls_errors++ < 10)
        log_warn("tcp stream %llu: %s", (unsigned long long)c->id, msg);
}

/* ---- TCP ------------------------------------------------------------------ */

static void ep_string(const tcpreasm_endpoint_t *ep, char *buf, size_t len)
{
    inet_ntop(ep->family, ep->addr, buf, (socklen_t)len);
}

/* Our own recordings name the process on every packet: "process: NAME, pid N". */
static void parse_process(rconn_t *c, const char *comment, size_t len)
{
    char buf[256];
    const char *p;
    unsigned long pid;

    if (!comment || len >= sizeof(buf))
        return;
    memcpy(buf, comment, len);
    buf[len] = '\0';
    p = strstr(buf, "process: ");
    if (!p)
        return;
    p += 9;
    const char *comma = strstr(p, ", pid ");
    if (!comma || (size_t)(comma - p) >= sizeof(c->process))
        return;
    pid = strtoul(comma + 6, NULL, 10);
    memcpy(c->process, p, (size_t)(comma - p));
    c->process[comma - p] = '\0';
    c->pid = (int64_t)pid;
}

static int on_open(void *opaque, const tcpreasm_conn_info_t *info, void **user)
{
    rd_t *rd = opaque;
    rconn_t *c = calloc(1, sizeof(*c));

    if (!c)
        return -ENOMEM;
    c->rd = rd;
    c->id = info->id;
    c->ifid = rd->cur_if;
    c->client = info->client;
    c->server = info->server;
    ep_string(&info->server, c->server_ip, sizeof(c->server_ip));
    snprintf(c->host, sizeof(c->host), "%s", c->server_ip);
    *user = c;
    return 0;
}

static int on_data(void *opaque, uint64_t conn, void *user, int dir, const uint8_t *data,
                   size_t len, uint64_t ts_ns, uint64_t frame)
{
    rd_t *rd = opaque;
    rconn_t *c = user;
    tlsdec_callbacks_t tcb = {on_plaintext, on_tls_info, on_tls_error};

    c->cur_ts = ts_ns / 1000;
    c->cur_frame = frame;
    if (!c->pid)
        parse_process(c, rd->cur_comment, rd->cur_comment_len);
    if (!c->decided) {
        c->decided = 1;
        if (dir == TCPREASM_C2S && len >= 3 && data[0] == 0x16 && data[1] == 0x03) {
            c->tls = 1;
            c->dec = tlsdec_new(rd->keylog, &tcb, c);
        } else {
            conn_http(c, NULL);
        }
    }
    if (c->dec)
        tlsdec_feed(c->dec, dir, data, len);
    else if (c->http)
        httpconv_feed(c->http, dir, data, len, c->cur_ts);
    return 0;
}

static int on_close(void *opaque, uint64_t conn, void *user, int how)
{
    rconn_t *c = user;
    uint64_t ts = c->cur_ts;

    if (c->http) {
        if (how == TCPREASM_CLOSE_FIN) {
            httpconv_eof(c->http, HTTPCONV_C2S, ts);
            httpconv_eof(c->http, HTTPCONV_S2C, ts);
        }
        httpconv_finish(c->http,
                        how == TCPREASM_CLOSE_RST ? "connection reset"
                        : how == TCPREASM_CLOSE_FIN ? NULL
                                                    : "capture ended before the connection",
                        ts);
        httpconv_free(c->http);
    }
    tlsdec_free(c->dec);
    free(c);
    return 0;
}

/* ---- packets ---------------------------------------------------------------- */

static int write_copy(rd_t *rd, const pcapread_packet_t *pkt)
{
    iface_t *ifc = &rd->ifaces[pkt->ifid];
    pcapng_pkt_opts_t po = {0};
    char comment[1024];

    if (!rd->pcap)
        return 0;
    if (ifc->out_id < 0) {
        ifc->out_id = pcapng_writer_add_interface(rd->pcap, ifc->linktype, 262144, NULL, NULL);
        if (ifc->out_id < 0)
            return ifc->out_id;
    }
    po.darwin_process = -1;
    po.direction = (int)(pkt->flags & 3);
    if (pkt->comment && pkt->comment_len < sizeof(comment)) {
        memcpy(comment, pkt->comment, pkt->comment_len);
        comment[pkt->comment_len] = '\0';
        po.comment = comment;
    }
    return (int)pcapng_writer_add_packet(rd->pcap, (uint32_t)ifc->out_id, pkt->ts_ns / 1000,
                                         pkt->data, pkt->caplen, pkt->origlen, &po);
}

/* The -f filter, per interface (its link type). */
static int passes(rd_t *rd, const pcapread_packet_t *pkt)
{
    struct pcap_pkthdr h;

    if (pkt->ifid >= rd->nifaces || !rd->ifaces[pkt->ifid].has_prog)
        return 1;
    h.ts.tv_sec = (time_t)(pkt->ts_ns / 1000000000u);
    h.ts.tv_usec = (suseconds_t)(pkt->ts_ns / 1000 % 1000000);
    h.caplen = pkt->caplen;
    h.len = pkt->origlen;
    return pcap_offline_filter(&rd->ifaces[pkt->ifid].prog, &h, pkt->data) != 0;
}

static int add_iface(rd_t *rd, uint16_t linktype)
{
    iface_t *ifc;

    if (rd->nifaces == IFACES_MAX)
        return -E2BIG;
    ifc = &rd->ifaces[rd->nifaces++];
    memset(ifc, 0, sizeof(*ifc));
    ifc->linktype = linktype;
    ifc->out_id = -1;
    if (rd->o->filter) {
        pcap_t *dead = pcap_open_dead(linktype, 262144);
        if (!dead || pcap_compile(dead, &ifc->prog, rd->o->filter, 1, PCAP_NETMASK_UNKNOWN) < 0) {
            log_error("invalid filter '%s': %s", rd->o->filter,
                      dead ? pcap_geterr(dead) : "libpcap failed");
            if (dead)
                pcap_close(dead);
            return -EINVAL;
        }
        ifc->has_prog = 1;
        pcap_close(dead);
    }
    return 0;
}

static int pr_interface(void *opaque, const pcapread_interface_t *ifc)
{
    return add_iface(opaque, ifc->linktype);
}

static int pr_packet(void *opaque, const pcapread_packet_t *pkt)
{
    rd_t *rd = opaque;
    int rc;

    if (!passes(rd, pkt)) {
        rd->filtered++;
        return 0;
    }
    if ((rc = write_copy(rd, pkt)) < 0)
        return rc;
    rd->cur_if = pkt->ifid;
    rd->cur_comment = pkt->comment;
    rd->cur_comment_len = pkt->comment_len;
    rd->packets++;
    rc = tcpreasm_packet(rd->reasm, pkt->linktype, pkt->ts_ns, pkt->data, pkt->caplen,
                         pkt->frame);
    rd->cur_comment = NULL;
    return rc;
}

static int pr_secrets(void *opaque, uint32_t type, const uint8_t *data, size_t len)
{
    rd_t *rd = opaque;

    if (type != PCAPREAD_SECRETS_TLS)
        return 0;
    keylog_add_text(rd->keylog, (const char *)data, len);
    if (rd->pcap)
        pcapng_writer_add_secrets(rd->pcap, PCAPNG_SECRETS_TLS, data, len);
    return 0;
}

static void pr_error(void *opaque, uint64_t offset, const char *msg)
{
    rd_t *rd = opaque;
    log_error("%s: bad block at byte offset %llu: %s; converted what came before it",
              rd->o->read_path, (unsigned long long)offset, msg);
}

/* Classic pcap goes through libpcap, which knows its variants. */
static int read_classic(rd_t *rd, const char *path)
{
    char errbuf[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline(path, errbuf);
    struct pcap_pkthdr *h;
    const u_char *data;
    uint64_t frame = 0;
    int rc, nano;

    if (!p) {
        log_error("%s: %s", path, errbuf);
        return -EBADMSG;
    }
    nano = pcap_get_tstamp_precision(p) == PCAP_TSTAMP_PRECISION_NANO;
    if ((rc = add_iface(rd, (uint16_t)pcap_datalink(p))) < 0) {
        pcap_close(p);
        return rc;
    }
    while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
        pcapread_packet_t pkt;

        memset(&pkt, 0, sizeof(pkt));
        pkt.frame = ++frame;
        pkt.linktype = rd->ifaces[0].linktype;
        pkt.ts_ns = (uint64_t)h->ts.tv_sec * 1000000000u +
                    (uint64_t)h->ts.tv_usec * (nano ? 1u : 1000u);
        pkt.data = data;
        pkt.caplen = h->caplen;
        pkt.origlen = h->len;
        if ((rc = pr_packet(rd, &pkt)) < 0)
            break;
    }
    if (rc == PCAP_ERROR) {
        log_error("%s: %s; converted what came before it", path, pcap_geterr(p));
        rc = -EBADMSG;
    } else if (rc > 0 || rc == PCAP_ERROR_BREAK || rc == -2) {
        rc = 0;
    }
    pcap_close(p);
    return rc;
}

#define KEYLOG_FILE_MAX (64u << 20)

/* The --keylog file, whole (it also goes into the -o copy as a DSB). */
static int read_keylog_file(rd_t *rd, const char *path, char **text, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t have = 0, cap = 65536;
    char *buf = NULL, *nb;
    ssize_t n;

    if (fd < 0) {
        log_error("cannot read --keylog %s: %s", path, strerror(errno));
        return -errno;
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
    keylog_add_text(rd->keylog, buf, have);
    *text = buf;
    *len = have;
    return 0;
}

int readmode_run(const options_t *o)
{
    rd_t *rd = calloc(1, sizeof(*rd));
    tcpreasm_callbacks_t tcb = {on_open, on_data, NULL, on_close, NULL};
    pcapread_callbacks_t pcb = {NULL, pr_interface, pr_packet, pr_secrets, pr_error};
    pcapread_t *pr = NULL;
    char err[512], magic[4];
    sink_t sink;
    int fd = -1, rc = 0, status = 1, classic = 0;
    char *keytext = NULL;
    size_t keylen = 0;
    ssize_t n;
    static char buf[1 << 20];

    if (!rd)
        return 1;
    rd->o = o;
    if (!(rd->keylog = keylog_new()) || !(rd->reasm = tcpreasm_new(&tcb, rd, NULL, &rc)))
        goto out;
    if (o->keylog_path && read_keylog_file(rd, o->keylog_path, &keytext, &keylen) < 0)
        goto out;
    fd = strcmp(o->read_path, "-") == 0 ? STDIN_FILENO : open(o->read_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        log_error("cannot read %s: %s", o->read_path, strerror(errno));
        goto out;
    }
    n = pread(fd, magic, 4, 0);
    if (n == 4 && fd != STDIN_FILENO) {
        uint32_t m;
        memcpy(&m, magic, 4);
        classic = m == 0xa1b2c3d4u || m == 0xd4c3b2a1u || m == 0xa1b23c4du || m == 0x4d3cb2a1u;
    }
    if (outfile_open(o->har_path, &rd->har_out, err, sizeof(err)) < 0) {
        log_error("%s", err);
        goto out;
    }
    outfile_sink(rd->har_out, &sink);
    if (!(rd->har = har_writer_new(&sink, "mitmrec", PACKAGE_VERSION, &rc)))
        goto out;
    if (o->out_path) {
        if (outfile_open(o->out_path, &rd->pcap_out, err, sizeof(err)) < 0) {
            log_error("%s", err);
            goto out;
        }
        outfile_sink(rd->pcap_out, &sink);
        if (!(rd->pcap = pcapng_writer_new(&sink, "mitmrec " PACKAGE_VERSION, NULL, &rc)))
            goto out;
        /* Ahead of every packet, so one pass decrypts. */
        if (keylen)
            pcapng_writer_add_secrets(rd->pcap, PCAPNG_SECRETS_TLS, keytext, keylen);
    }
    if (classic) {
        close(fd);
        fd = -1;
        rc = read_classic(rd, o->read_path);
    } else {
        if (!(pr = pcapread_new(&pcb, rd, &rc)))
            goto out;
        while ((n = read(fd, buf, sizeof(buf))) > 0)
            if ((rc = pcapread_feed(pr, buf, (size_t)n)) < 0)
                break;
        if (n < 0) {
            log_error("reading %s: %s", o->read_path, strerror(errno));
            rc = -EIO;
        }
        if (rc == 0)
            rc = pcapread_finish(pr);
    }
    /* Whatever happened above, what was read so far is converted. */
    tcpreasm_finish(rd->reasm);
    if (har_writer_close(rd->har) < 0 || outfile_close(rd->har_out) < 0)
        rd->failed = 1;
    rd->har_out = NULL;
    if (rd->pcap_out && outfile_close(rd->pcap_out) < 0)
        rd->failed = 1;
    rd->pcap_out = NULL;
    if (!o->quiet)
        fprintf(stderr, "mitmrec: read %llu packets%s, wrote %llu HAR entries to %s\n",
                (unsigned long long)rd->packets,
                o->filter ? " matching the filter" : "", (unsigned long long)rd->entries,
                o->har_path);
    status = rc < 0 || rd->failed ? 1 : 0;
out:
    if (fd >= 0 && fd != STDIN_FILENO)
        close(fd);
    pcapread_free(pr);
    tcpreasm_free(rd->reasm);
    har_writer_free(rd->har);
    pcapng_writer_free(rd->pcap);
    outfile_close(rd->har_out);
    outfile_close(rd->pcap_out);
    keylog_free(rd->keylog);
    free(keytext);
    for (uint32_t i = 0; i < rd->nifaces; i++)
        if (rd->ifaces[i].has_prog)
            pcap_freecode(&rd->ifaces[i].prog);
    free(rd);
    return status;
}

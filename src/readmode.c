/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "config.h"
#include "errors.h"
#include "har.h"
#include "log.h"
#include "outfile.h"
#include "pcapng.h"
#include "readmode.h"

#define IFACES_MAX 1024

typedef struct rd {
    const options_t *o;
    har_writer_t *har;
    outfile_t *har_out, *pcap_out;
    pcapng_writer_t *pcap;
    int out_ids[IFACES_MAX]; /* interface id in the -o copy, -1 before it is written */
    uint64_t entries;
    int failed;
} rd_t;

/* ---- HTTP to HAR --------------------------------------------------------- */

static void on_exchange(void *opaque, const capture_conn_t *c, http_exchange_t *ex)
{
    rd_t *rd = opaque;
    har_entry_t e;
    char conn[32];
    int rc;

    memset(&e, 0, sizeof(e));
    snprintf(conn, sizeof(conn), "%llu", (unsigned long long)c->id);
    e.ex = ex;
    e.scheme = c->scheme;
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

/* ---- the -o copy ------------------------------------------------------------ */

static int on_packet(void *opaque, const pcapread_packet_t *pkt)
{
    rd_t *rd = opaque;
    pcapng_pkt_opts_t po = {0};
    char comment[1024];
    int *out_id;

    /* The capture's clock lets entries held for their order go (har_writer_order). */
    if (rd->har)
        har_writer_release(rd->har, pkt->ts_ns / 1000);
    if (!rd->pcap)
        return 0;
    if (pkt->ifid >= IFACES_MAX)
        return -E2BIG;
    out_id = &rd->out_ids[pkt->ifid];
    if (*out_id < 0) {
        *out_id = pcapng_writer_add_interface(rd->pcap, pkt->linktype, 262144, NULL, NULL);
        if (*out_id < 0)
            return *out_id;
    }
    po.darwin_process = -1;
    po.direction = (int)(pkt->flags & 3);
    if (pkt->comment && pkt->comment_len < sizeof(comment)) {
        memcpy(comment, pkt->comment, pkt->comment_len);
        comment[pkt->comment_len] = '\0';
        po.comment = comment;
    }
    return (int)pcapng_writer_add_packet(rd->pcap, (uint32_t)*out_id, pkt->ts_ns / 1000, pkt->data,
                                         pkt->caplen, pkt->origlen, &po);
}

static void on_secrets(void *opaque, uint32_t type, const uint8_t *data, size_t len)
{
    rd_t *rd = opaque;

    if (rd->pcap)
        pcapng_writer_add_secrets(rd->pcap, PCAPNG_SECRETS_TLS, data, len);
}

/* The inputs could be opened: create the outputs. */
static int on_start(void *opaque)
{
    rd_t *rd = opaque;
    const options_t *o = rd->o;
    char err[512];
    sink_t sink;
    int rc = 0;

    if (outfile_open(o->har_path, &rd->har_out, err, sizeof(err)) < 0) {
        log_error("%s", err);
        return -EIO;
    }
    if (o->out_path && outfile_open(o->out_path, &rd->pcap_out, err, sizeof(err)) < 0) {
        log_error("%s", err);
        outfile_discard(rd->har_out);
        rd->har_out = NULL;
        return -EIO;
    }
    /* Both could be opened: only now is an existing file emptied. */
    if ((rc = outfile_begin(rd->har_out)) < 0 ||
        (rd->pcap_out && (rc = outfile_begin(rd->pcap_out)) < 0)) {
        log_error("cannot truncate the output: %s", strerror(-rc));
        return rc;
    }
    outfile_sink(rd->har_out, &sink);
    if (!(rd->har = har_writer_new(&sink, "mitmrec", PACKAGE_VERSION, &rc)))
        return rc ? rc : -ENOMEM;
    har_writer_order(rd->har, HAR_HOLD_USEC, HAR_HOLD_BYTES);
    if (o->out_path) {
        outfile_sink(rd->pcap_out, &sink);
        if (!(rd->pcap = pcapng_writer_new(&sink, "mitmrec " PACKAGE_VERSION, NULL, &rc)))
            return rc ? rc : -ENOMEM;
    }
    return 0;
}

int readmode_run(const options_t *o)
{
    rd_t *rd = calloc(1, sizeof(*rd));
    capture_callbacks_t cb = {on_start, on_packet, on_secrets, on_exchange, NULL, NULL};
    capture_opts_t co;
    capture_stats_t st;
    int rc, status = 1;
    char err[512];

    if (!rd)
        return 1;
    /* A bad expression is said before any output is opened (an existing one is kept). */
    if (o->filter && capture_filter_check(o->filter, err, sizeof(err)) < 0) {
        log_error("%s", err);
        free(rd);
        return 1;
    }
    rd->o = o;
    for (int i = 0; i < IFACES_MAX; i++)
        rd->out_ids[i] = -1;
    memset(&co, 0, sizeof(co));
    co.path = o->read_path;
    co.keylog_path = o->keylog_path;
    co.filter = o->filter;
    co.renumber = o->out_path != NULL; /* the HAR points into the -o copy */
    co.max_body = o->max_body;
    rc = capture_read(&co, &cb, rd, &st);
    if (!rd->har)
        goto out; /* nothing was opened: the error is logged */
    if (har_writer_close(rd->har) < 0 || outfile_close(rd->har_out) < 0)
        rd->failed = 1;
    rd->har_out = NULL;
    if (rd->pcap_out && outfile_close(rd->pcap_out) < 0)
        rd->failed = 1;
    rd->pcap_out = NULL;
    if (!o->quiet)
        fprintf(stderr, "mitmrec: read %llu %s%s, wrote %llu HAR %s to %s\n",
                (unsigned long long)st.packets, mr_plural(st.packets, "packet", "packets"),
                o->filter ? " matching the filter" : "", (unsigned long long)rd->entries,
                mr_plural(rd->entries, "entry", "entries"), o->har_path);
    status = rc < 0 || rd->failed ? 1 : 0;
out:
    har_writer_free(rd->har);
    pcapng_writer_free(rd->pcap);
    outfile_close(rd->har_out);
    outfile_close(rd->pcap_out);
    free(rd);
    return status;
}

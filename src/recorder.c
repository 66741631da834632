/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "capture.h"
#include "config.h"
#include "har.h"
#include "log.h"
#include "outfile.h"
#include "pcapng.h"
#include "privs.h"
#include "recorder.h"
#include "recorder_int.h"
#include "tcpsynth.h"

uint64_t rec_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int recorder_new(const recorder_opts_t *o, recorder_t **out, char *err, size_t errlen)
{
    recorder_t *r = calloc(1, sizeof(*r));
    int rc;

    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    r->opts = *o;
    r->ifid[REC_UPSTREAM] = -1;
    if (o->filter) {
        /* The recorded packets are raw IP. */
        if (capture_filter_compile(o->filter, PCAPNG_LINKTYPE_RAW, &r->filter, err, errlen) < 0) {
            free(r);
            return -EINVAL;
        }
        r->has_filter = 1;
    }
    if ((rc = outfile_open(o->pcapng_path, &r->pcap_out, err, errlen)) < 0)
        goto fail;
    if ((rc = outfile_open(o->har_path, &r->har_out, err, errlen)) < 0)
        goto fail;
    if (o->keylog_path) {
        int fd = open(o->keylog_path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);

        if (fd >= 0)
            privs_give_file(fd); /* a new one; an existing one keeps its owner */
        else if (errno == EEXIST)
            fd = open(o->keylog_path, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (fd < 0 || !(r->keylog = fdopen(fd, "a"))) {
            rc = -errno;
            snprintf(err, errlen, "cannot write %s: %s", o->keylog_path, strerror(errno));
            if (fd >= 0)
                close(fd);
            goto fail;
        }
    }
    *out = r;
    return 0;
fail:
    recorder_discard(r);
    return rc < 0 ? rc : -EIO;
}

void recorder_discard(recorder_t *r)
{
    if (!r)
        return;
    /* Files this run created go away; existing ones were not touched. */
    outfile_discard(r->pcap_out);
    outfile_discard(r->har_out);
    r->pcap_out = r->har_out = NULL;
    recorder_free(r);
}

int recorder_start(recorder_t *r, char *err, size_t errlen)
{
    const recorder_opts_t *o = &r->opts;
    sink_t sink;
    struct utsname un;
    char os[200] = "Linux";
    int rc;

    /* Only now is an existing output emptied. */
    if ((rc = outfile_begin(r->pcap_out)) < 0 || (rc = outfile_begin(r->har_out)) < 0)
        goto fail_write;
    if (r->keylog) {
        /* An existing key log is appended to (as SSLKEYLOGFILE users expect), but the
           secrets it will hold are private: made 0600 like the other outputs. */
        struct stat st;
        int kfd = fileno(r->keylog);

        if (fstat(kfd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) &&
            fchmod(kfd, 0600) < 0)
            log_warn("cannot make %s private (mode %03o): %s", o->keylog_path,
                     (unsigned)(st.st_mode & 0777), strerror(errno));
    }
    if (uname(&un) == 0)
        snprintf(os, sizeof(os), "%s %s", un.sysname, un.release);
    outfile_sink(r->pcap_out, &sink);
    r->pcap = pcapng_writer_new(&sink, "mitmrec " PACKAGE_VERSION, os, &rc);
    if (!r->pcap)
        goto fail_write;
    r->ifid[REC_CLIENT] = pcapng_writer_add_interface(
        r->pcap, PCAPNG_LINKTYPE_RAW, 262144, "mitmrec-client",
        "intercepted flows as the applications saw them (secrets inside)");
    if (r->ifid[REC_CLIENT] < 0) {
        rc = r->ifid[REC_CLIENT];
        goto fail_write;
    }
    if (o->upstream) {
        r->ifid[REC_UPSTREAM] =
            pcapng_writer_add_interface(r->pcap, PCAPNG_LINKTYPE_RAW, 262144, "mitmrec-upstream",
                                        "mitmrec's own sessions with the servers");
        if (r->ifid[REC_UPSTREAM] < 0) {
            rc = r->ifid[REC_UPSTREAM];
            goto fail_write;
        }
    }
    outfile_sink(r->har_out, &sink);
    r->har = har_writer_new(&sink, "mitmrec", PACKAGE_VERSION, &rc);
    if (!r->har)
        goto fail_write;
    har_writer_order(r->har, HAR_HOLD_USEC, HAR_HOLD_BYTES);
    if ((rc = recorder_flush(r)) < 0)
        goto fail_write;
    return 0;
fail_write:
    snprintf(err, errlen, "cannot start the output files: %s", strerror(-rc));
    return rc < 0 ? rc : -EIO;
}

int recorder_flush(recorder_t *r)
{
    int a, b;

    /* Entries held for their order (har_writer_order) that waited long enough go first;
       its error is the HAR file's, logged where entries are added. */
    if (r->har)
        har_writer_release(r->har, rec_now());
    a = outfile_flush(r->pcap_out);
    b = outfile_flush(r->har_out);
    return a ? a : b;
}

int recorder_close(recorder_t *r)
{
    int rc = 0, e;

    if (r->har) {
        e = har_writer_close(r->har);
        if (e && !rc)
            rc = e;
    }
    e = outfile_close(r->pcap_out);
    if (e && !rc)
        rc = e;
    r->pcap_out = NULL;
    e = outfile_close(r->har_out);
    if (e && !rc)
        rc = e;
    r->har_out = NULL;
    if (r->keylog) {
        if (fclose(r->keylog) != 0 && !rc)
            rc = -errno;
        r->keylog = NULL;
    }
    return rc;
}

void recorder_free(recorder_t *r)
{
    if (!r)
        return;
    pcapng_writer_free(r->pcap);
    har_writer_free(r->har);
    for (size_t i = 0; i < r->nprocs; i++)
        free(r->procs[i]);
    free(r->procs);
    outfile_close(r->pcap_out);
    outfile_close(r->har_out);
    if (r->keylog)
        fclose(r->keylog);
    if (r->has_filter)
        pcap_freecode(&r->filter);
    free(r);
}

int rec_filter_match(const recorder_t *r, const uint8_t *hdr, size_t hdrlen, const uint8_t *payload,
                     size_t plen)
{
    struct pcap_pkthdr h;
    uint8_t small[2048], *pkt = small;
    int match;

    if (!r->has_filter)
        return 1;
    if (hdrlen + plen > sizeof(small) && !(pkt = malloc(hdrlen + plen)))
        return 1; /* (record rather than lose it) */
    memcpy(pkt, hdr, hdrlen);
    if (plen)
        memcpy(pkt + hdrlen, payload, plen);
    memset(&h, 0, sizeof(h));
    h.caplen = h.len = (bpf_u_int32)(hdrlen + plen);
    match = pcap_offline_filter(&r->filter, &h, pkt) != 0;
    if (pkt != small)
        free(pkt);
    return match;
}

void recorder_get_stats(const recorder_t *r, recorder_stats_t *st)
{
    *st = r->st;
    st->packets = r->pcap ? pcapng_writer_packets(r->pcap) : 0;
}

const char *recorder_pcapng_path(const recorder_t *r)
{
    return r->opts.pcapng_path;
}

const char *recorder_har_path(const recorder_t *r)
{
    return r->opts.har_path;
}

/* ---- addresses ---------------------------------------------------------- */

void rec_to_endpoint(const struct sockaddr *sa, tcpsynth_endpoint_t *ep)
{
    memset(ep, 0, sizeof(*ep));
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        ep->family = AF_INET6;
        memcpy(ep->addr, &s6->sin6_addr, 16);
        ep->port = ntohs(s6->sin6_port);
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        ep->family = AF_INET;
        memcpy(ep->addr, &s4->sin_addr, 4);
        ep->port = ntohs(s4->sin_port);
    }
}

/* Both ends must share a family: map an IPv4 end into IPv6 when they differ. */
void rec_match_family(tcpsynth_endpoint_t *a, tcpsynth_endpoint_t *b)
{
    tcpsynth_endpoint_t *v4;

    if (a->family == b->family)
        return;
    v4 = a->family == AF_INET ? a : b;
    memmove(v4->addr + 12, v4->addr, 4);
    memset(v4->addr, 0, 10);
    v4->addr[10] = v4->addr[11] = 0xff;
    v4->family = AF_INET6;
}

/* ---- processes ---------------------------------------------------------- */

#define REC_PROCS_MAX 4096

/* The process's entry, made (with its Darwin block) on first sight. */
rec_proc_t *rec_proc_get(recorder_t *r, const procinfo_t *pi)
{
    rec_proc_t *p;

    for (size_t i = r->nprocs; i-- > 0;)
        if (r->procs[i]->pid == pi->pid && strcmp(r->procs[i]->st.name, pi->name) == 0)
            return r->procs[i];
    if (r->nprocs >= REC_PROCS_MAX) {
        /* Past the bound, the oldest entry no open flow points at is dropped (with its
           totals); with none, the table grows: open flows bound it. */
        for (size_t i = 0; i < r->nprocs; i++)
            if (r->procs[i]->flows_open == 0) {
                free(r->procs[i]);
                memmove(r->procs + i, r->procs + i + 1, (r->nprocs - i - 1) * sizeof(*r->procs));
                r->nprocs--;
                break;
            }
    }
    if (r->nprocs % 64 == 0) {
        rec_proc_t **a = realloc(r->procs, (r->nprocs + 64) * sizeof(*a));
        if (!a)
            return NULL;
        r->procs = a;
    }
    if (!(p = calloc(1, sizeof(*p))))
        return NULL;
    r->procs[r->nprocs++] = p;
    p->pid = pi->pid;
    p->st.pid = pi->pid;
    snprintf(p->st.name, sizeof(p->st.name), "%s", pi->name);
    p->dpeb = pcapng_writer_add_darwin_process(r->pcap, pi->pid, pi->name);
    if (p->dpeb < 0)
        p->dpeb = -1;
    return p;
}

typedef struct udp_emit {
    recorder_t *r;
    uint64_t ts;
    const char *comment;
    int32_t dpeb;
} udp_emit_t;

/* -f on the datagram as it would be recorded. */
typedef struct udp_match {
    const recorder_t *r;
    int match;
} udp_match_t;

static int udp_match_cb(void *opaque, int dir, const uint8_t *hdr, size_t hdrlen,
                        const uint8_t *payload, size_t plen)
{
    udp_match_t *m = opaque;

    (void)dir;
    m->match = rec_filter_match(m->r, hdr, hdrlen, payload, plen);
    return 0;
}

int64_t rec_write_packet(recorder_t *r, int leg, uint64_t ts, const uint8_t *hdr, size_t hdrlen,
                         const uint8_t *payload, size_t plen, const pcapng_pkt_opts_t *po)
{
    if (ts > r->last_ts)
        r->last_ts = ts;
    return pcapng_writer_add_packet2(r->pcap, (uint32_t)r->ifid[leg], ts, hdr, (uint32_t)hdrlen,
                                     payload, (uint32_t)plen, po);
}

static int udp_emit_cb(void *opaque, int dir, const uint8_t *hdr, size_t hdrlen,
                       const uint8_t *payload, size_t plen)
{
    udp_emit_t *u = opaque;
    pcapng_pkt_opts_t po = {0};

    po.direction = dir == REC_C2S ? PCAPNG_DIR_OUTBOUND : PCAPNG_DIR_INBOUND;
    po.comment = u->comment;
    po.darwin_process = u->dpeb;
    rec_write_packet(u->r, REC_CLIENT, u->ts, hdr, hdrlen, payload, plen, &po);
    return 0;
}

void recorder_udp(recorder_t *r, const struct sockaddr *src, const struct sockaddr *dst, int dir,
                  const void *data, size_t len, uint64_t ts, const procinfo_t *pi)
{
    tcpsynth_endpoint_t s, d;
    udp_emit_t u = {r, ts, NULL, -1};
    char buf[128];
    rec_proc_t *p;

    rec_to_endpoint(src, &s);
    rec_to_endpoint(dst, &d);
    rec_match_family(&s, &d);
    if (r->has_filter) {
        udp_match_t m = {r, 0};
        tcpsynth_udp(&s, &d, r->udp_ip_id, data, len, dir, udp_match_cb, &m);
        if (!m.match)
            return;
    }
    p = pi ? rec_proc_get(r, pi) : NULL;
    if (p) {
        snprintf(buf, sizeof(buf), "process: %s, pid %u", pi->name, pi->pid);
        u.comment = buf;
        u.dpeb = p->dpeb;
        p->st.bytes += len;
    }
    r->st.bytes += len;
    tcpsynth_udp(&s, &d, r->udp_ip_id++, data, len, dir, udp_emit_cb, &u);
}

void recorder_each_process(const recorder_t *r, void (*fn)(void *opaque, const rec_proc_stats_t *),
                           void *opaque)
{
    for (size_t i = 0; i < r->nprocs; i++)
        fn(opaque, &r->procs[i]->st);
}

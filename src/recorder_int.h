/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_RECORDER_INT_H
#define MITMREC_RECORDER_INT_H

/*
 * Private to the recorder: recorder.c owns the output files, the processes seen and the
 * UDP datagrams; rec_flow.c turns each flow's bytes into packets and HAR entries.
 */

#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include <pcap/pcap.h>

#include "har.h"
#include "outfile.h"
#include "pcapng.h"
#include "procinfo.h"
#include "recorder.h"
#include "tcpsynth.h"

/* A process seen in the recording: its Darwin block and its totals. */
typedef struct rec_proc {
    uint32_t pid;
    int32_t dpeb;        /* Darwin process block index, -1 if none */
    unsigned flows_open; /* flows that point at it: it is not dropped meanwhile */
    rec_proc_stats_t st;
} rec_proc_t;

struct recorder {
    recorder_opts_t opts;
    outfile_t *pcap_out, *har_out;
    FILE *keylog;
    pcapng_writer_t *pcap;
    har_writer_t *har;
    int ifid[2];
    int64_t next_stream;
    uint64_t next_index;
    uint64_t next_flow;
    uint64_t live_flows;
    recorder_stats_t st;
    int har_err_logged;
    struct bpf_program filter; /* -f, compiled for raw IP, when has_filter */
    int has_filter;
    rec_proc_t **procs; /* oldest first; each entry stays where it was made */
    size_t nprocs;
    uint16_t udp_ip_id;
    uint64_t last_ts; /* the latest packet timestamp written: none goes before it */
};

/* recorder.c: writes one packet of leg (REC_CLIENT, REC_UPSTREAM) to the pcapng and keeps
   last_ts. The frame number, as pcapng_writer_add_packet2. */
int64_t rec_write_packet(recorder_t *r, int leg, uint64_t ts, const uint8_t *hdr, size_t hdrlen,
                         const uint8_t *payload, size_t plen, const pcapng_pkt_opts_t *po);

/* recorder.c: 1 when the raw IP packet hdr + payload matches -f (always without one). */
int rec_filter_match(const recorder_t *r, const uint8_t *hdr, size_t hdrlen, const uint8_t *payload,
                     size_t plen);

/* rec_flow.c: whether -f records flow f: 1 yes, 0 no, -1 not decided yet (its client leg's
   addresses are not known). Decided once. */
int rec_flow_selected(rec_flow_t *f);

/* recorder.c: the endpoint of sa (IPv4 or IPv6, filled in ep). */
void rec_to_endpoint(const struct sockaddr *sa, tcpsynth_endpoint_t *ep);

/* recorder.c: gives a and b the same family (IPv6 when they differ). */
void rec_match_family(tcpsynth_endpoint_t *a, tcpsynth_endpoint_t *b);

/* recorder.c: r's entry for the process pi (copied), made on first sight. NULL on ENOMEM.
   The entry is r's; it stays valid while its flows_open is not 0 (a flow that keeps it
   counts itself there), else until the next call. */
rec_proc_t *rec_proc_get(recorder_t *r, const procinfo_t *pi);

#endif

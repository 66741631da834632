/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_FORMATS_PCAPNG_H
#define MITMREC_FORMATS_PCAPNG_H

#include <stddef.h>
#include <stdint.h>

#include "sink.h"

/*
 * pcapng writer (little endian, one section). Every call writes whole blocks
 * to the sink, so the output is a valid pcapng after every call.
 *
 * All functions return 0 (or the documented non-negative value) on success and
 * a negative errno on failure; a sink error is passed through unchanged.
 */

#define PCAPNG_LINKTYPE_RAW 101        /* IPv4 or IPv6, no link header */
#define PCAPNG_SECRETS_TLS 0x544c534bu /* DSB type: NSS key log lines */

#define PCAPNG_DIR_UNKNOWN 0
#define PCAPNG_DIR_INBOUND 1 /* epb_flags bits 0-1 */
#define PCAPNG_DIR_OUTBOUND 2

typedef struct pcapng_writer pcapng_writer_t;

/* Per-packet options; every field is optional (NULL / 0 = absent). */
typedef struct pcapng_pkt_opts {
    const char *comment;    /* opt_comment (1), borrowed, UTF-8 */
    const char *comment2;   /* a second opt_comment, borrowed */
    int direction;          /* PCAPNG_DIR_*: epb_flags (2) */
    uint64_t packet_id;     /* epb_packetid (5) when non-zero */
    int32_t darwin_process; /* Darwin process block index for option 32769,
                               or -1 for none */
} pcapng_pkt_opts_t;

/*
 * Creates a writer and writes the Section Header Block (shb_userappl = appl,
 * shb_os = os; either may be NULL). The sink is copied; sink->opaque is
 * borrowed and must outlive the writer. Returns NULL and sets *err on failure.
 */
pcapng_writer_t *pcapng_writer_new(const sink_t *sink, const char *appl, const char *os, int *err);

/* Frees the writer; writes nothing. pcapng_writer_free(NULL) is a no-op. */
void pcapng_writer_free(pcapng_writer_t *w);

/*
 * Writes an Interface Description Block with if_tsresol = 6 (microseconds).
 * name and description are optional. Returns the interface id (0, 1, ...).
 */
int pcapng_writer_add_interface(pcapng_writer_t *w, uint16_t linktype, uint32_t snaplen,
                                const char *name, const char *description);

/* Writes a Decryption Secrets Block; data is len bytes, padded by the writer. */
int pcapng_writer_add_secrets(pcapng_writer_t *w, uint32_t secrets_type, const void *data,
                              size_t len);

/*
 * Writes a Darwin Process Event Block (type 0x80000001: u32 pid, option 2
 * process name). Returns its index within the section (0, 1, ...), which
 * packets name through pcapng_pkt_opts_t.darwin_process.
 */
int pcapng_writer_add_darwin_process(pcapng_writer_t *w, uint32_t pid, const char *name);

/*
 * Writes an Enhanced Packet Block. ts_usec is microseconds since the epoch;
 * data holds caplen bytes of a packet that was origlen bytes long.
 * Returns the packet's frame number as Wireshark counts it (1 for the first
 * EPB of the file, across all interfaces).
 */
int64_t pcapng_writer_add_packet(pcapng_writer_t *w, uint32_t ifid, uint64_t ts_usec,
                                 const void *data, uint32_t caplen, uint32_t origlen,
                                 const pcapng_pkt_opts_t *opts);

/*
 * The same, for a packet given in two parts (hdr then payload, as
 * tcpsynth emits it); caplen = origlen = hdrlen + plen.
 */
int64_t pcapng_writer_add_packet2(pcapng_writer_t *w, uint32_t ifid, uint64_t ts_usec,
                                  const void *hdr, uint32_t hdrlen, const void *payload,
                                  uint32_t plen, const pcapng_pkt_opts_t *opts);

/* Number of EPBs written so far. */
uint64_t pcapng_writer_packets(const pcapng_writer_t *w);

#endif

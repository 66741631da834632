/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_CAPTURE_H
#define MITMREC_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

#include <zlib.h>

#include "httpmsg.h"
#include "pcapread.h"
#include "tcpreasm.h"

struct bpf_program; /* <pcap/pcap.h> */

/*
 * Walks a capture file: a pcapng (ours or anyone's) or a classic pcap, with
 * TLS secrets from its Decryption Secrets Blocks and/or a key log file, through
 * pcapread -> tcpreasm -> tlsdec -> httpconv, and calls back with what it
 * finds: each HTTP exchange with its connection, TCP conversations that are
 * not HTTP (with want_raw), and UDP datagrams. Used by mitmrec -r and by
 * mitmreplay's loader. No sockets, no loop: it reads the file and returns.
 */

/* A TCP connection of the capture, as the callbacks see it (borrowed, valid during the call). */
typedef struct capture_conn {
    uint64_t id;   /* tcp.stream as Wireshark numbers it */
    uint32_t ifid; /* file-wide interface id of its first packet */
    tcpreasm_endpoint_t client, server;
    int tls;               /* the client spoke TLS */
    const char *host;      /* SNI, else the server address (never NULL) */
    const char *server_ip; /* the server address as text */
    const char *sni;       /* NULL when absent */
    const char *alpn;      /* the protocol TLS selected, or NULL */
    const char *scheme;    /* "https" or "http" */
    int64_t pid;           /* from our own packet comments, 0 when unknown */
    const char *process;   /* "" when unknown */
    uint64_t ts_usec;      /* its first packet */
} capture_conn_t;

/* One chunk of a raw conversation: bytes of one direction, in stream order. */
typedef struct capture_chunk {
    int dir; /* TCPREASM_C2S or TCPREASM_S2C */
    uint64_t ts_usec;
    const uint8_t *data;
    size_t len;
} capture_chunk_t;

/*
 * Every member may be NULL. Pointers are borrowed for the call unless noted.
 * The int-returning ones return 0 to go on or a negative errno to stop.
 * on_start: the key log and the capture could be opened; nothing read yet
 *   (a caller opens its outputs here, so a missing input creates none).
 * on_packet: each packet that passed the filter, before reassembly.
 * on_secrets: each Decryption Secrets Block (type PCAPREAD_SECRETS_TLS: key log text).
 * on_exchange: an HTTP exchange; takes ownership of ex (http_exchange_free).
 *   ex->user holds its index + 1 (in request order over the file, 0 for
 *   exchanges that never had a request head) and ex->user_frame the frame
 *   number of the packet that carried its first byte.
 * on_raw: (with want_raw) a closed TCP conversation that was not HTTP: its
 *   decrypted (TLS) or plain bytes, chunked as they arrived, both directions
 *   in arrival order.
 * on_udp: a UDP datagram.
 */
typedef struct capture_callbacks {
    int (*on_start)(void *opaque);
    int (*on_packet)(void *opaque, const pcapread_packet_t *pkt);
    void (*on_secrets)(void *opaque, uint32_t type, const uint8_t *data, size_t len);
    void (*on_exchange)(void *opaque, const capture_conn_t *conn, http_exchange_t *ex);
    void (*on_raw)(void *opaque, const capture_conn_t *conn, const capture_chunk_t *chunks,
                   size_t nchunks);
    void (*on_udp)(void *opaque, const tcpreasm_endpoint_t *src, const tcpreasm_endpoint_t *dst,
                   const uint8_t *data, size_t len, uint64_t ts_usec);
} capture_callbacks_t;

typedef struct capture_opts {
    const char *path;        /* the capture; "-" = stdin (pcapng only) */
    const char *keylog_path; /* NSS key log file, or NULL */
    const char *filter;      /* a pcap filter expression, or NULL */
    int renumber;            /* with a filter: frame numbers and streams count only the
                                packets that pass (those of a copy holding just them);
                                else they are the input file's */
    size_t max_body;         /* bytes kept per body (0 = 16 MiB) */
    int want_raw;            /* collect non-HTTP conversations for on_raw */
    size_t max_raw;          /* bytes kept per raw conversation (0 = 16 MiB) */
    const char *used;        /* what a damaged file's error says was done with the
                                part before the damage (NULL = "converted") */
} capture_opts_t;

typedef struct capture_stats {
    uint64_t packets;  /* passed the filter */
    uint64_t filtered; /* did not */
    uint64_t exchanges;
} capture_stats_t;

/*
 * zlib's reason for the last failure on gz, opened on path (gzopen) or on a descriptor
 * (gzdopen): errno's text, or zlib's message without the file name zlib puts first
 * ("unexpected end of file"). *zerr gets gzerror's code (Z_OK: no failure).
 */
const char *capture_gz_reason(gzFile gz, const char *path, int *zerr);

/*
 * Compiles a pcap filter expression for packets of a pcapng LINKTYPE_ (the few that are
 * not libpcap's DLT_ value, such as LINKTYPE_RAW, 101, are mapped). Returns 0, with prog
 * the caller's (pcap_freecode), or -EINVAL with "invalid filter 'EXPR': REASON" in err.
 */
int capture_filter_compile(const char *filter, uint16_t linktype, struct bpf_program *prog,
                           char *err, size_t errlen);

/*
 * Checks a pcap filter expression's syntax (compiled for Ethernet) before any file is
 * opened: capture_filter_compile's result. An expression that is valid but not for a link
 * type in the file (say "ether host" on raw IP) is found by capture_read.
 */
int capture_filter_check(const char *filter, char *err, size_t errlen);

/*
 * Reads the whole capture, calling back as it goes; cb is borrowed for the call.
 * The key log file's text (when given) is handed to on_secrets first, as if it
 * were a DSB at the start of the file. Errors are logged once with the file
 * name (a bad block by its byte offset: what came before it is still
 * delivered, and the call returns -EBADMSG). Returns 0 or a negative errno.
 */
int capture_read(const capture_opts_t *o, const capture_callbacks_t *cb, void *opaque,
                 capture_stats_t *st);

#endif

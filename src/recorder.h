/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_RECORDER_H
#define MITMREC_RECORDER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "procinfo.h"

/*
 * The recorder: owns the output files and turns what flows report (bytes on
 * the wire of each leg, plaintext, TLS secrets, endings) into pcapng packets
 * and HAR entries. It knows no sockets and no loop; flows call it.
 *
 * Legs: REC_CLIENT is the conversation between the application and the
 * server as the application saw it (interface 0); REC_UPSTREAM is mitmrec's
 * own session with the server (interface 1, only with --upstream).
 * Directions: REC_C2S (towards the server) and REC_S2C.
 *
 * Ordering contract for the client leg: for bytes read from the client, call
 * rec_flow_plain() with their plaintext BEFORE rec_flow_wire() with the bytes
 * themselves, so that the packet that completes a request carries its comment
 * and its frame number goes into the HAR.
 */

#define REC_CLIENT 0
#define REC_UPSTREAM 1
#define REC_C2S 0
#define REC_S2C 1

typedef struct recorder recorder_t;
typedef struct rec_flow rec_flow_t;

typedef struct recorder_opts {
    const char *pcapng_path; /* "-" = stdout */
    const char *har_path;
    const char *keylog_path; /* NULL = none */
    int upstream;            /* record REC_UPSTREAM legs */
    size_t max_body;
    const char *filter; /* -f: a pcap filter expression, or NULL. A flow is
                           recorded (packets, secrets, HAR entries) when one of
                           its client leg's synthesized handshake packets matches;
                           a UDP datagram when it matches */
} recorder_opts_t;

typedef struct recorder_stats {
    uint64_t flows;
    uint64_t requests; /* HAR entries written */
    uint64_t bytes;    /* bytes relayed, both directions, client side */
    uint64_t packets;
} recorder_stats_t;

/*
 * Opens the outputs (checking they can be written) without touching an
 * existing file; a one-line reason into err on failure.
 */
int recorder_new(const recorder_opts_t *o, recorder_t **out, char *err, size_t errlen);

/* Empties the outputs and writes their headers: the run starts. */
int recorder_start(recorder_t *r, char *err, size_t errlen);

/* Gives up before recorder_start: removes the files it created, frees r. */
void recorder_discard(recorder_t *r);

/* Pushes buffered output to the files (called at least once a second). */
int recorder_flush(recorder_t *r);

/* Finalizes both files. Every flow must be freed first. Returns 0 or the first
   output error. */
int recorder_close(recorder_t *r);

void recorder_free(recorder_t *r);
void recorder_get_stats(const recorder_t *r, recorder_stats_t *st);
const char *recorder_pcapng_path(const recorder_t *r);
const char *recorder_har_path(const recorder_t *r);

/* Microseconds since the epoch (the clock of both files). */
uint64_t rec_now(void);

/*
 * A flow: one client connection. client and server are the addresses the
 * application's packets show (copied). Returns NULL on ENOMEM.
 */
rec_flow_t *rec_flow_new(recorder_t *r, const struct sockaddr *client,
                         const struct sockaddr *server, uint64_t ts);

/* What the HAR's URLs are built from: "http"/"https", host name, port (copied). */
void rec_flow_set_target(rec_flow_t *f, const char *scheme, const char *host, uint16_t port);

/* Changes the server address of the client leg before any packet was written. */
void rec_flow_set_server(rec_flow_t *f, const struct sockaddr *server);

/* The upstream leg's endpoints (mitmrec's local address, the server's). */
void rec_flow_set_upstream(rec_flow_t *f, const struct sockaddr *local,
                           const struct sockaddr *server, uint64_t ts);

/* The client leg's handshake (SYN, SYN/ACK, ACK at the flow's start), now rather than before
   its first bytes, so that it takes its place in time among the other flows' packets: for a
   flow whose addresses and process are known when it is accepted. */
void rec_flow_open(rec_flow_t *f);

/* HAR timings of the connection (ms, -1 = not applicable), used by its first entry. */
void rec_flow_set_timings(rec_flow_t *f, double dns, double connect, double ssl);

/* One NSS key log line (no newline) of the leg's TLS session: a Decryption Secrets Block
   before the leg's next packet (and whatever the --keylog file). */
void rec_flow_keylog(rec_flow_t *f, int leg, const char *line);

/* Bytes that crossed a leg in direction dir at ts. */
void rec_flow_wire(rec_flow_t *f, int leg, int dir, const void *data, size_t len, uint64_t ts);

/* The protocol TLS selected for the client ("h2", "http/1.1"), before any plaintext. */
void rec_flow_set_alpn(rec_flow_t *f, const char *alpn);

/* The flow's client spoke to an HTTP proxy, and what is recorded is inside its CONNECT tunnel.
   (Wireshark 4.0 gives an HTTP/2 session in such a tunnel a tcp.stream number of its own, one
   that no TCP stream has: the streams numbered after it count it, so that _pcapng.stream
   stays Wireshark's.) */
void rec_flow_set_tunneled(rec_flow_t *f);

/* Application bytes (plaintext) between client and server, for the HAR. */
void rec_flow_plain(rec_flow_t *f, int dir, const void *data, size_t len, uint64_t ts);

/* A FIN from dir on the leg (rst: an RST instead). */
void rec_flow_end(rec_flow_t *f, int leg, int dir, int rst, uint64_t ts);

/*
 * Notes a failure of the flow: a comment on the next packet of the client leg
 * (or on its last one) and the HAR's _error for exchanges that did not
 * complete. When no request was seen, method and url (may be NULL) make a HAR
 * entry of their own for the failure. Copied.
 */
void rec_flow_error(rec_flow_t *f, const char *msg, const char *method, const char *url);

/*
 * The process that made the flow (local redirect mode): named on every packet
 * of the client leg (a comment "process: NAME, pid N" and a Darwin process
 * block reference) and on every HAR entry (_pid, _process, _exe, _cmdline).
 */
void rec_flow_set_process(rec_flow_t *f, const procinfo_t *pi);

/*
 * A UDP datagram as the application saw it (dir REC_C2S: from the application
 * at src to dst), e.g. a DNS query or its answer. pi may be NULL.
 */
void recorder_udp(recorder_t *r, const struct sockaddr *src, const struct sockaddr *dst, int dir,
                  const void *data, size_t len, uint64_t ts, const procinfo_t *pi);

/* Per-process totals, for the summary at exit: calls fn for each process seen. */
typedef struct rec_proc_stats {
    uint32_t pid;
    char name[64];
    uint64_t flows, requests, bytes;
} rec_proc_stats_t;
void recorder_each_process(const recorder_t *r, void (*fn)(void *opaque, const rec_proc_stats_t *),
                           void *opaque);

/* Finishes the flow (pending exchanges, held packets, closing packets) and frees it. */
void rec_flow_free(rec_flow_t *f, uint64_t ts);

#endif

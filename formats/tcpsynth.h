/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_FORMATS_TCPSYNTH_H
#define MITMREC_FORMATS_TCPSYNTH_H

#include <stddef.h>
#include <stdint.h>

/*
 * TCP/IP packet synthesis: turns a byte stream conversation into the IPv4 or
 * IPv6 packets (LINKTYPE_RAW) that would have carried it, with a three-way
 * handshake, MSS-sized data segments, correct sequence and acknowledgement
 * numbers, FIN/RST, and valid IP and TCP checksums.
 *
 * The state is a plain struct the caller embeds (tcpsynth_init, no free).
 * Each function emits zero or more packets through the callback, in order.
 * A packet is given in two parts, so payload bytes are never copied: hdr
 * (the IP and TCP headers, hdrlen bytes) followed by payload (plen bytes,
 * possibly 0 and NULL). Both are borrowed for the duration of the callback.
 * A callback that returns non-zero stops the call, which returns that value.
 */

#define TCPSYNTH_C2S 0 /* client to server */
#define TCPSYNTH_S2C 1 /* server to client */

typedef struct tcpsynth_endpoint {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network order; first 4 bytes for AF_INET */
    uint16_t port;    /* host order */
} tcpsynth_endpoint_t;

typedef int (*tcpsynth_emit_fn)(void *opaque, int dir, const uint8_t *hdr, size_t hdrlen,
                                const uint8_t *payload, size_t plen);

typedef struct tcpsynth {
    tcpsynth_endpoint_t ep[2]; /* [C2S] client, [S2C] server */
    uint32_t seq[2];           /* next sequence number sent by client / server */
    uint32_t mss;
    uint16_t ip_id[2];
    int fin[2];  /* a FIN was sent in that direction */
    int owed[2]; /* data sent that way is not acknowledged yet */
    int open;    /* handshake emitted */
    tcpsynth_emit_fn emit;
    void *opaque;
} tcpsynth_t;

/*
 * Sets up a conversation. client and server must have the same family.
 * isn_client / isn_server are the initial sequence numbers (injected, so tests
 * are reproducible). mss bounds the payload per segment (0 = 32768; at most
 * 65535 - headers). Returns 0 or -EINVAL.
 */
int tcpsynth_init(tcpsynth_t *t, const tcpsynth_endpoint_t *client,
                  const tcpsynth_endpoint_t *server, uint32_t isn_client, uint32_t isn_server,
                  uint32_t mss, tcpsynth_emit_fn emit, void *opaque);

/* Emits SYN, SYN/ACK, ACK (with the MSS option on SYN and SYN/ACK). */
int tcpsynth_handshake(tcpsynth_t *t);

/*
 * Emits len bytes sent in direction dir as PSH/ACK segments of at most mss. The peer's
 * acknowledgement is not emitted at once: the peer's next segment carries it (so a
 * request and its response are two packets, as on the wire), and when dir writes again
 * first, a pure ACK from the peer goes before that write.
 */
int tcpsynth_data(tcpsynth_t *t, int dir, const void *data, size_t len);

/* Emits the peer's pure ACK of what dir has sent, if that is still owed (else nothing). */
int tcpsynth_ack(tcpsynth_t *t, int dir);

/* Emits a FIN/ACK from dir (once; later calls emit nothing), and the peer's ACK. */
int tcpsynth_fin(tcpsynth_t *t, int dir);

/* Emits an RST/ACK from dir. */
int tcpsynth_rst(tcpsynth_t *t, int dir);

/*
 * Emits one UDP datagram from src to dst (same family) with a valid checksum;
 * dir is passed to emit as it is. Returns emit's value, -EINVAL, or -EMSGSIZE.
 */
int tcpsynth_udp(const tcpsynth_endpoint_t *src, const tcpsynth_endpoint_t *dst, uint16_t ip_id,
                 const void *data, size_t len, int dir, tcpsynth_emit_fn emit, void *opaque);

/* Bytes of IP+TCP header that precede the payload in each data packet. */
size_t tcpsynth_header_len(const tcpsynth_t *t);

/* 1 when a packet this module emitted (hdr and plen as given to the emit callback) is a pure
   ACK: no payload and no flag but ACK, as tcpsynth_data's owed ACKs are. 0 otherwise. */
int tcpsynth_pure_ack(const uint8_t *hdr, size_t hdrlen, size_t plen);

#endif

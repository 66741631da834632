/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_FORMATS_TCPREASM_H
#define MITMREC_FORMATS_TCPREASM_H

#include <stddef.h>
#include <stdint.h>

/*
 * Packet decoding and TCP stream reassembly for captured packets.
 *
 * tcpreasm_packet takes one captured frame (link type, timestamp, bytes,
 * frame number), decodes the link layer (RAW 101 and its aliases 12, 14,
 * 228, 229; ETHERNET 1 with any number of 802.1Q / 802.1ad tags; LINUX_SLL
 * 113; LINUX_SLL2 276; NULL 0 and LOOP 108), IPv4 (fragments are skipped and
 * counted) or IPv6 (hop-by-hop, routing and destination options headers are
 * skipped; fragments are skipped and counted), then TCP or UDP.
 *
 * TCP connections are keyed by the address/port 4-tuple. The client is the
 * side that sent the SYN (or received the SYN/ACK); without a handshake, the
 * side with the higher port, or for equal ports the first sender. Each
 * direction's bytes are delivered once, in sequence order: retransmissions and
 * overlaps are dropped (the copy captured first wins), out-of-order segments
 * are buffered until the hole before them fills. A hole is declared lost
 * (on_gap) and the bytes after it delivered when the peer acknowledges bytes
 * of it (the capture missed them: Wireshark's "follow" does the same), when
 * the direction's buffer would pass its limit, or at tcpreasm_finish.
 * Sequence numbers wrap.
 *
 * Connection ids are 0, 1, 2, ... in the order of the connections' first
 * packets; a SYN on a tuple whose connection has seen a FIN or RST, or whose
 * sender had another initial sequence number, starts a new connection. For
 * ordinary captures the ids equal Wireshark's tcp.stream. (Wireshark 4.0 keeps
 * a SYN that repeats the old initial sequence number in the old stream even
 * after a FIN or RST; stacks do not reuse one like that, and a new connection
 * here keeps that SYN's bytes from being absorbed by the closed one.)
 *
 * A connection is closed (on_close) when both FINs have been reached in
 * sequence, at a RST, when it is evicted to make room (the table holds at
 * most max_conns), or by tcpreasm_finish. Before closing, its buffered bytes
 * are delivered with gaps declared. After on_close the id is never used
 * again; late packets of a closed connection (the last ACK, retransmissions)
 * are absorbed without callbacks.
 *
 * Memory: one small record per connection, plus out-of-order data bounded per
 * direction (max_buffer, and at most 4096 pieces) and over all connections
 * (max_buffer_total). The
 * in-order path allocates nothing: its bytes are passed straight from the
 * caller's packet.
 *
 * Callbacks run inside tcpreasm_packet and tcpreasm_finish only, and must
 * not call into the same reassembler. Pointers they receive are borrowed for
 * the duration of the call. A callback returning non-zero stops the call,
 * which returns that value; the reassembler is then failed: every later call
 * returns the same value, and only tcpreasm_free is useful.
 */

#define TCPREASM_C2S 0 /* client to server */
#define TCPREASM_S2C 1 /* server to client */

/* on_close's how. */
#define TCPREASM_CLOSE_FIN 1     /* both FINs reached */
#define TCPREASM_CLOSE_RST 2     /* a RST from either side */
#define TCPREASM_CLOSE_END 3     /* tcpreasm_finish: the capture ended */
#define TCPREASM_CLOSE_EVICTED 4 /* the connection table was full */

/* Link types understood (LINKTYPE_* values, as in pcap and pcapng files). */
#define TCPREASM_LINKTYPE_NULL 0
#define TCPREASM_LINKTYPE_ETHERNET 1
#define TCPREASM_LINKTYPE_RAW 101
#define TCPREASM_LINKTYPE_LOOP 108
#define TCPREASM_LINKTYPE_LINUX_SLL 113
#define TCPREASM_LINKTYPE_LINUX_SLL2 276

typedef struct tcpreasm tcpreasm_t;

typedef struct tcpreasm_endpoint {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network order; first 4 bytes for AF_INET, the rest 0 */
    uint16_t port;    /* host order */
} tcpreasm_endpoint_t;

typedef struct tcpreasm_conn_info {
    uint64_t id;
    tcpreasm_endpoint_t client, server;
    uint64_t ts_ns; /* the first packet's */
    uint64_t frame; /* the first packet's frame number */
    int handshake;  /* 1 when the first packet was a SYN or SYN/ACK (roles known) */
} tcpreasm_conn_info_t;

/*
 * Every member may be NULL. The int-returning ones return 0 to go on, or
 * non-zero (a negative errno) to stop.
 * on_open: a new connection, before any other callback for it. *user starts
 *   NULL; what the callback stores there is passed to the others for this
 *   connection (it belongs to the caller, who frees it in on_close).
 * on_data: len > 0 bytes of direction dir (TCPREASM_C2S / S2C) in stream
 *   order; ts_ns and frame are those of the packet that carried the first byte.
 * on_gap: missing bytes of direction dir were given up on; the next on_data
 *   of dir continues after them.
 * on_fin: direction dir reached its FIN (every byte before it delivered or
 *   given up on), once per direction; the other may go on.
 * on_close: the last callback for the connection (how: TCPREASM_CLOSE_*).
 * on_udp: a UDP datagram (payload cut to what was captured).
 */
typedef struct tcpreasm_callbacks {
    int (*on_open)(void *opaque, const tcpreasm_conn_info_t *info, void **user);
    int (*on_data)(void *opaque, uint64_t conn, void *user, int dir, const uint8_t *data,
                   size_t len, uint64_t ts_ns, uint64_t frame);
    int (*on_gap)(void *opaque, uint64_t conn, void *user, int dir, uint64_t missing);
    int (*on_close)(void *opaque, uint64_t conn, void *user, int how);
    int (*on_udp)(void *opaque, const tcpreasm_endpoint_t *src, const tcpreasm_endpoint_t *dst,
                  const uint8_t *data, size_t len, uint64_t ts_ns, uint64_t frame);
    int (*on_fin)(void *opaque, uint64_t conn, void *user, int dir);
} tcpreasm_callbacks_t;

/* Limits; 0 in a field selects its default. */
typedef struct tcpreasm_options {
    size_t max_conns;        /* connections tracked at once (default 65536) */
    size_t max_buffer;       /* out-of-order bytes per direction (default 4 MiB) */
    size_t max_buffer_total; /* out-of-order bytes overall (default 256 MiB) */
} tcpreasm_options_t;

/* Counters, for a summary line ("3 IPv4 fragments skipped"). */
typedef struct tcpreasm_stats {
    uint64_t packets;         /* tcpreasm_packet calls */
    uint64_t tcp, udp;        /* segments / datagrams decoded */
    uint64_t not_ip;          /* unknown link type or ethertype, other IP protocols */
    uint64_t fragments;       /* IPv4 / IPv6 fragments skipped */
    uint64_t malformed;       /* headers cut short or inconsistent */
    uint64_t truncated;       /* TCP payload cut by the snap length (rest declared lost) */
    uint64_t conns;           /* connections opened */
    uint64_t evicted;         /* connections closed to make room */
    uint64_t gaps, gap_bytes; /* holes declared lost, and their bytes */
    uint64_t ooo_segments;    /* segments buffered out of order */
    uint64_t dup_bytes;       /* retransmitted / overlapping bytes dropped */
} tcpreasm_stats_t;

/*
 * Creates a reassembler. cb is copied; opaque is passed to every callback;
 * opts may be NULL. Returns NULL and sets *err (-EINVAL, -ENOMEM) on failure,
 * else sets *err = 0 (err may be NULL).
 */
tcpreasm_t *tcpreasm_new(const tcpreasm_callbacks_t *cb, void *opaque,
                         const tcpreasm_options_t *opts, int *err);

/*
 * Frees everything, calling nothing (call tcpreasm_finish first to have the
 * open connections closed through on_close). tcpreasm_free(NULL) is a no-op.
 */
void tcpreasm_free(tcpreasm_t *r);

/*
 * Processes one captured frame: len captured bytes (borrowed) of link type
 * linktype, captured at ts_ns (nanoseconds since the epoch), with frame
 * number frame (1-based, passed back in on_data / on_udp). Frames that are not
 * TCP or UDP over IP, or are malformed, are counted and skipped: that is not
 * an error. Returns 0, -ENOMEM, or a callback's non-zero value.
 */
int tcpreasm_packet(tcpreasm_t *r, uint32_t linktype, uint64_t ts_ns, const uint8_t *data,
                    size_t len, uint64_t frame);

/*
 * End of capture: every open connection, in id order, delivers its buffered
 * bytes (declaring the holes), then closes with TCPREASM_CLOSE_FIN if both
 * FINs were reached, else TCPREASM_CLOSE_END. The table is empty afterwards,
 * so the reassembler could go on with packets of another capture.
 * Returns 0 or a callback's non-zero value.
 */
int tcpreasm_finish(tcpreasm_t *r);

/* Copies the counters into *st. */
void tcpreasm_get_stats(const tcpreasm_t *r, tcpreasm_stats_t *st);

#endif

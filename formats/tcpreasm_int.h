/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_FORMATS_TCPREASM_INT_H
#define MITMREC_FORMATS_TCPREASM_INT_H

/*
 * Private to the reassembler: the state that tcpreasm.c (decoding, the
 * connection table, connection life cycle) and tcpreasm_stream.c (the bytes
 * of one direction, in order) share, and what the stream part offers.
 */

#include <stddef.h>
#include <stdint.h>

#include "tcpreasm.h"

#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_ACK 0x10

/* An intrusive doubly linked list link. */
struct dlink {
    struct dlink *prev, *next;
};

struct dlist {
    struct dlink *head, *tail;
};

struct seg; /* a buffered piece, private to tcpreasm_stream.c */

/*
 * One direction. Stream offsets (uint64) count bytes from the first data
 * byte; sequence numbers map to them relative to nxt, which is how 32-bit
 * wrap-around stops mattering.
 */
struct half {
    uint64_t nxt;    /* stream offset of the next byte to deliver */
    uint64_t fin_at; /* stream offset of the FIN, when fin_seen */
    uint64_t acked;  /* highest stream offset the peer acknowledged, when acked_set */
    uint32_t seq0;   /* sequence number of stream offset 0, when init */
    uint32_t base;   /* Wireshark's base_seq, when seen (for port reuse) */
    uint8_t seen;    /* base is set */
    uint8_t init;    /* seq0 is set: a SYN, data or a FIN was seen */
    uint8_t fin_seen, fin_done;
    uint8_t acked_set;
    struct seg *head, *tail; /* sorted, disjoint, every start > nxt */
    size_t buffered;         /* SEG_COST of the pieces */
    size_t nsegs;            /* the pieces */
};

struct conn {
    struct conn *hnext; /* hash chain */
    struct dlink lru;   /* in r->live (by last use) or r->dead (by closing time) */
    struct dlink ord;   /* in r->order (by id) */
    uint64_t id;
    uint64_t hash;
    tcpreasm_endpoint_t ep[2]; /* [C2S] client, [S2C] server */
    struct half h[2];
    void *user;
    uint8_t closed; /* on_close was called: absorbs late packets */
    uint8_t fin_any, rst_any;
};

struct tcpreasm {
    tcpreasm_callbacks_t cb;
    void *opaque;
    size_t max_conns, max_buffer, max_total;
    size_t buffered; /* over all connections */
    struct conn **buckets;
    size_t nbuckets, count;
    struct dlist live, dead, order;
    uint64_t next_id;
    uint64_t seed;
    int failed;
    tcpreasm_stats_t st;
};

/* ---- tcpreasm_stream.c ---- */

/*
 * One segment of direction d of c: have payload bytes (borrowed) captured
 * out of claimed. Delivers what is in order, buffers what is not, and
 * declares the holes it gives up on. Returns 0, or a callback's non-zero value.
 */
int tcpreasm_stream_segment(tcpreasm_t *r, struct conn *c, int d, uint32_t seq, uint8_t flags,
                            const uint8_t *payload, size_t have, size_t claimed, uint64_t ts_ns,
                            uint64_t frame);

/*
 * The peer acknowledged up to ack in direction d of c: gives up on the holes
 * the capture missed. Returns 0, or a callback's non-zero value.
 */
int tcpreasm_stream_ack(tcpreasm_t *r, struct conn *c, int d, uint32_t ack);

/*
 * Delivers everything direction d of c has buffered, holes declared, up to
 * the FIN if one was seen. Returns 0, or a callback's non-zero value.
 */
int tcpreasm_stream_flush(tcpreasm_t *r, struct conn *c, int d);

/* Frees the pieces h has buffered (calls nothing) and takes them off r's total. */
void tcpreasm_stream_free_segs(tcpreasm_t *r, struct half *h);

#endif

/* SPDX-License-Identifier: MIT */
#include "tcpreasm_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* One direction of a connection: its bytes delivered once, in stream order. */

/* An ACK further ahead than this is not believed (a bogus or stale value). */
#define ACK_WINDOW (1ll << 30)

/* An out-of-order piece of one direction's stream, waiting for the hole before it. */
struct seg {
    struct seg *next;
    uint64_t start; /* stream offset of data[0] */
    uint64_t ts_ns, frame;
    uint32_t len;
    uint8_t data[];
};

/* What a buffered piece costs against the limits: its bytes and its record. */
#define SEG_COST(n) ((size_t)(n) + sizeof(struct seg))

/*
 * Pieces per direction. Inserting walks the sorted list, so this bounds the
 * work per segment as well as the memory: a capture of tiny segments at
 * scattered offsets cannot make reassembly quadratic in the byte limit.
 */
#define MAX_SEGS 4096u

void tcpreasm_stream_free_segs(tcpreasm_t *r, struct half *h)
{
    struct seg *s, *next;

    for (s = h->head; s; s = next) {
        next = s->next;
        free(s);
    }
    r->buffered -= h->buffered;
    h->buffered = 0;
    h->nsegs = 0;
    h->head = h->tail = NULL;
}

/* ---- delivery ------------------------------------------------------------------------ */

static int emit(tcpreasm_t *r, struct conn *c, int d, const uint8_t *data, size_t len,
                uint64_t ts_ns, uint64_t frame)
{
    c->h[d].nxt += len;
    if (!r->cb.on_data)
        return 0;
    return r->cb.on_data(r->opaque, c->id, c->user, d, data, len, ts_ns, frame);
}

/* Gives up on the bytes up to stream offset to. */
static int gap_to(tcpreasm_t *r, struct conn *c, int d, uint64_t to)
{
    struct half *h = &c->h[d];
    uint64_t missing = to - h->nxt;

    h->nxt = to;
    r->st.gaps++;
    r->st.gap_bytes += missing;
    if (!r->cb.on_gap)
        return 0;
    return r->cb.on_gap(r->opaque, c->id, c->user, d, missing);
}

/* The stream reached its FIN: said once (on_fin). */
static int check_fin(tcpreasm_t *r, struct conn *c, int d)
{
    struct half *h = &c->h[d];

    if (!h->fin_seen || h->fin_done || h->nxt < h->fin_at)
        return 0;
    h->fin_done = 1;
    return r->cb.on_fin ? r->cb.on_fin(r->opaque, c->id, c->user, d) : 0;
}

/* Delivers the buffered pieces that the stream has reached. */
static int drain(tcpreasm_t *r, struct conn *c, int d)
{
    struct half *h = &c->h[d];
    struct seg *s;
    uint64_t end;
    int rc = 0;

    while ((s = h->head) != NULL && s->start <= h->nxt) {
        if (h->fin_seen && s->start >= h->fin_at) {
            /* Bytes past the FIN (kept from before it was seen) are not the stream's. */
            tcpreasm_stream_free_segs(r, h);
            break;
        }
        h->head = s->next;
        if (!h->head)
            h->tail = NULL;
        h->buffered -= SEG_COST(s->len);
        h->nsegs--;
        r->buffered -= SEG_COST(s->len);
        end = s->start + s->len;
        if (h->fin_seen && end > h->fin_at)
            end = h->fin_at;
        if (end > h->nxt) {
            size_t off = (size_t)(h->nxt - s->start);

            rc = emit(r, c, d, s->data + off, (size_t)(end - h->nxt), s->ts_ns, s->frame);
        } else {
            r->st.dup_bytes += s->len;
        }
        free(s);
        if (rc)
            return rc;
    }
    return check_fin(r, c, d);
}

/* Declares the first hole lost and delivers what follows it. */
static int skip_hole(tcpreasm_t *r, struct conn *c, int d)
{
    int rc = gap_to(r, c, d, c->h[d].head->start);

    return rc ? rc : drain(r, c, d);
}

/* Delivers everything buffered, holes declared, up to the FIN if one was seen. */
int tcpreasm_stream_flush(tcpreasm_t *r, struct conn *c, int d)
{
    struct half *h = &c->h[d];
    int rc;

    while (h->head && !(h->fin_seen && h->head->start >= h->fin_at))
        if ((rc = skip_hole(r, c, d)) != 0)
            return rc;
    tcpreasm_stream_free_segs(r, h); /* what is left lies past the FIN */
    if (h->fin_seen && h->nxt < h->fin_at && (rc = gap_to(r, c, d, h->fin_at)) != 0)
        return rc;
    return check_fin(r, c, d);
}

/*
 * Bytes at stream offset nxt: passed on from the packet, except where a piece
 * captured earlier covers them (the first copy wins).
 */
static int in_order(tcpreasm_t *r, struct conn *c, int d, const uint8_t *data, size_t len,
                    uint64_t ts_ns, uint64_t frame)
{
    struct half *h = &c->h[d];
    uint64_t before;
    size_t n;
    int rc;

    while (len) {
        n = len;
        if (h->head && h->head->start - h->nxt < n)
            n = (size_t)(h->head->start - h->nxt);
        if ((rc = emit(r, c, d, data, n, ts_ns, frame)) != 0)
            return rc;
        data += n;
        len -= n;
        if (!len)
            break;
        before = h->nxt;
        if ((rc = drain(r, c, d)) != 0)
            return rc;
        n = h->nxt - before < len ? (size_t)(h->nxt - before) : len;
        r->st.dup_bytes += n;
        data += n;
        len -= n;
    }
    return drain(r, c, d);
}

/*
 * Buffers the parts of [a, a + len) that are not buffered yet (a > nxt).
 * With dry set only adds their cost to *cost and their number to *pieces.
 * Returns 0, or -ENOMEM with
 * *stop set to the offset of the first part that could not be stored (the
 * parts before it are stored).
 */
static int ooo_walk(tcpreasm_t *r, struct half *h, uint64_t a, const uint8_t *data, size_t len,
                    uint64_t ts_ns, uint64_t frame, int dry, size_t *cost, size_t *pieces,
                    uint64_t *stop)
{
    uint64_t b = a + len, cur = a, pe;
    struct seg *prev = NULL, *s = h->head, *n;

    if (h->tail && h->tail->start + h->tail->len <= a) {
        prev = h->tail; /* the usual case: after everything buffered */
        s = NULL;
    }
    while (cur < b) {
        while (s && s->start + s->len <= cur) {
            prev = s;
            s = s->next;
        }
        pe = s && s->start < b ? s->start : b;
        if (pe > cur) {
            size_t plen = (size_t)(pe - cur);

            if (dry) {
                *cost += SEG_COST(plen);
                (*pieces)++;
            } else {
                n = malloc(sizeof(*n) + plen);
                if (!n) {
                    *stop = cur;
                    return -ENOMEM;
                }
                n->start = cur;
                n->len = (uint32_t)plen;
                n->ts_ns = ts_ns;
                n->frame = frame;
                memcpy(n->data, data + (cur - a), plen);
                n->next = s;
                if (prev)
                    prev->next = n;
                else
                    h->head = n;
                if (!s)
                    h->tail = n;
                prev = n;
                h->buffered += SEG_COST(plen);
                h->nsegs++;
                r->buffered += SEG_COST(plen);
            }
            cur = pe;
        }
        if (s && cur < b) {
            /* s covers cur: those bytes were captured first. */
            if (!dry)
                r->st.dup_bytes += (s->start + s->len < b ? s->start + s->len : b) - cur;
            cur = s->start + s->len;
            prev = s;
            s = s->next;
        }
    }
    return 0;
}

/*
 * Buffers an out-of-order piece. Returns 0 when it is stored (or was already),
 * 1 when it does not fit the limits or memory: then *start, *data and *len
 * describe what is still to be stored.
 */
static int ooo_insert(tcpreasm_t *r, struct half *h, uint64_t *start, const uint8_t **data,
                      size_t *len, uint64_t ts_ns, uint64_t frame)
{
    size_t cost = 0, pieces = 0;
    uint64_t stop = 0;

    ooo_walk(r, h, *start, *data, *len, ts_ns, frame, 1, &cost, &pieces, &stop);
    if (cost == 0) {
        r->st.dup_bytes += *len;
        return 0;
    }
    if (cost > r->max_buffer - h->buffered || cost > r->max_total - r->buffered ||
        pieces > MAX_SEGS - h->nsegs)
        return 1;
    r->st.ooo_segments++;
    if (ooo_walk(r, h, *start, *data, *len, ts_ns, frame, 0, &cost, &pieces, &stop) == 0)
        return 0;
    *data += stop - *start;
    *len -= (size_t)(stop - *start);
    *start = stop;
    return 1;
}

/* Places len bytes at stream offset start (negative: before the stream began). */
static int place(tcpreasm_t *r, struct conn *c, int d, int64_t start, const uint8_t *data,
                 size_t len, uint64_t ts_ns, uint64_t frame)
{
    struct half *h = &c->h[d];
    uint64_t skip, ustart;
    int rc;

    if (h->fin_seen) {
        /* Nothing follows a FIN. */
        if (start >= (int64_t)h->fin_at)
            return 0;
        if ((uint64_t)(h->fin_at - start) < len)
            len = (size_t)(h->fin_at - start);
    }
    for (;;) {
        if (start < (int64_t)h->nxt) {
            skip = (uint64_t)((int64_t)h->nxt - start);
            if (skip >= len) {
                r->st.dup_bytes += len;
                return 0;
            }
            r->st.dup_bytes += skip;
            data += skip;
            len -= (size_t)skip;
            start = (int64_t)h->nxt;
        }
        if ((uint64_t)start == h->nxt)
            return in_order(r, c, d, data, len, ts_ns, frame);
        if (h->acked_set && h->acked > h->nxt) {
            /* The peer has acknowledged (part of) the hole: the capture
               missed those bytes, and they will not be sent again. */
            rc = gap_to(r, c, d, h->acked < (uint64_t)start ? h->acked : (uint64_t)start);
            if (rc || (rc = drain(r, c, d)) != 0)
                return rc;
            continue;
        }
        ustart = (uint64_t)start;
        rc = ooo_insert(r, h, &ustart, &data, &len, ts_ns, frame);
        if (rc == 0)
            return 0;
        start = (int64_t)ustart;
        /* Over the limit: the oldest hole is given up, and so on until the
           piece fits or is in order. */
        rc = h->head ? skip_hole(r, c, d) : gap_to(r, c, d, ustart);
        if (rc)
            return rc;
    }
}

/* The stream offset of sequence number seq, from nxt's point of view. */
static int64_t stream_off(const struct half *h, uint32_t seq)
{
    return (int64_t)h->nxt + (int32_t)(seq - (uint32_t)(h->seq0 + (uint32_t)h->nxt));
}

/*
 * The peer acknowledged up to ack in direction d. Bytes acknowledged but not
 * captured are lost to us for good (their sender will not repeat them), so a
 * hole they fall in is given up now, as Wireshark's "follow" does, instead of
 * holding what follows it until the buffer limit or the end. Only holes with
 * buffered data (or a FIN) after them are given up here: an ACK alone cannot
 * tell a lost segment from a FIN (which takes one sequence number and no byte).
 */
int tcpreasm_stream_ack(tcpreasm_t *r, struct conn *c, int d, uint32_t ack)
{
    struct half *h = &c->h[d];
    int64_t off;
    uint64_t to;
    int rc;

    if (!h->init)
        return 0;
    off = stream_off(h, ack);
    if (off <= (int64_t)h->nxt || off - (int64_t)h->nxt > ACK_WINDOW)
        return 0;
    if (!h->acked_set || (uint64_t)off > h->acked) {
        h->acked = (uint64_t)off;
        h->acked_set = 1;
    }
    /* A FIN seen after the hole proves the bytes before it existed, as
       buffered data does. */
    while (h->acked > h->nxt && (h->head || (h->fin_seen && h->fin_at > h->nxt))) {
        to = h->head ? h->head->start : h->fin_at;
        if (h->acked < to)
            to = h->acked;
        if ((rc = gap_to(r, c, d, to)) != 0 || (rc = drain(r, c, d)) != 0)
            return rc;
    }
    return 0;
}

/*
 * One segment of direction d: have payload bytes captured out of claimed.
 * A pure ACK says nothing about the stream, so it does not set seq0: a
 * keep-alive (seq = nxt - 1) first would otherwise leave a 1-byte hole.
 */
int tcpreasm_stream_segment(tcpreasm_t *r, struct conn *c, int d, uint32_t seq, uint8_t flags,
                            const uint8_t *payload, size_t have, size_t claimed, uint64_t ts_ns,
                            uint64_t frame)
{
    struct half *h = &c->h[d];
    uint32_t dseq = seq + ((flags & TH_SYN) ? 1 : 0);
    int64_t start, end;
    int rc;

    if (!h->init) {
        if (!(flags & (TH_SYN | TH_FIN)) && claimed == 0)
            return 0;
        h->init = 1;
        h->seq0 = dseq;
        h->nxt = 0;
    }
    start = stream_off(h, dseq);
    end = start + (int64_t)claimed;
    if ((flags & TH_FIN) && !h->fin_seen) {
        h->fin_seen = 1;
        h->fin_at = end > (int64_t)h->nxt ? (uint64_t)end : h->nxt;
    }
    if (have && (rc = place(r, c, d, start, payload, have, ts_ns, frame)) != 0)
        return rc;
    if (claimed > have && start + (int64_t)have <= (int64_t)h->nxt && end > (int64_t)h->nxt) {
        /* The snap length cut the payload, and the stream has reached the
           cut: the rest of this segment is lost (up to what is buffered). */
        uint64_t to = (uint64_t)end;

        r->st.truncated++;
        if (h->head && h->head->start < to)
            to = h->head->start;
        if (h->fin_seen && h->fin_at < to)
            to = h->fin_at;
        if (to > h->nxt) {
            if ((rc = gap_to(r, c, d, to)) != 0 || (rc = drain(r, c, d)) != 0)
                return rc;
        }
    }
    return check_fin(r, c, d);
}

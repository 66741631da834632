/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer driver for formats/pcapread.c, with every packet passed on to
 * formats/tcpreasm.c (small limits, so eviction and buffer overflow happen).
 *
 * The input is a capture file as is (so the seeds under fixtures/fuzz/pcapread
 * are real files). It is read twice: in one piece, and in three pieces cut at
 * points derived from the input. Both reads must report the same events: the
 * reader must not depend on how its input is split.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iformats \
 *     tests/fuzz/fuzz_pcapread.c formats/pcapread.c formats/tcpreasm.c \
 *     formats/tcpreasm_stream.c -o fuzz_pcapread
 *   ./fuzz_pcapread fixtures/fuzz/pcapread
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pcapread.h"
#include "tcpreasm.h"

#define MAXIDS 4096

typedef struct state {
    uint64_t hash;   /* of every event, in order */
    tcpreasm_t *ra;  /* NULL for the second read */
    uint64_t opened; /* on_open count: ids are 0 .. opened - 1 */
    uint8_t closed[MAXIDS];
    int errors;
} state_t;

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v;
    h *= 0x100000001b3ull;
    return h ^ (h >> 31);
}

static uint64_t mix_bytes(uint64_t h, const uint8_t *p, size_t n)
{
    while (n--)
        h = mix(h, *p++);
    return h;
}

static int on_section(void *o, const pcapread_section_t *s)
{
    state_t *st = o;

    st->hash = mix(mix(mix(st->hash, 1), s->index), (uint64_t)s->big_endian << 1 | s->classic);
    st->hash = mix(st->hash, s->offset);
    return 0;
}

static int on_interface(void *o, const pcapread_interface_t *i)
{
    state_t *st = o;

    st->hash = mix(mix(mix(st->hash, 2), i->id), (uint64_t)i->linktype << 32 | i->snaplen);
    st->hash = mix(mix(st->hash, i->tsresol), (uint64_t)i->tsoffset);
    if (i->name)
        st->hash = mix_bytes(st->hash, (const uint8_t *)i->name, strlen(i->name));
    if (i->description)
        st->hash = mix_bytes(st->hash, (const uint8_t *)i->description, strlen(i->description));
    return 0;
}

static int on_packet(void *o, const pcapread_packet_t *p)
{
    state_t *st = o;

    st->hash = mix(mix(mix(st->hash, 3), p->frame), p->ts_ns);
    st->hash = mix(mix(st->hash, (uint64_t)p->caplen << 32 | p->origlen), p->flags);
    st->hash = mix_bytes(st->hash, p->data, p->caplen);
    if (p->comment) {
        if (strlen(p->comment) > p->comment_len)
            __builtin_trap();
        st->hash = mix_bytes(st->hash, (const uint8_t *)p->comment, p->comment_len);
    }
    if (st->ra)
        return tcpreasm_packet(st->ra, p->linktype, p->ts_ns, p->data, p->caplen, p->frame);
    return 0;
}

static int on_secrets(void *o, uint32_t type, const uint8_t *data, size_t len)
{
    state_t *st = o;

    st->hash = mix_bytes(mix(mix(st->hash, 4), type), data, len);
    return 0;
}

static void on_error(void *o, uint64_t off, const char *msg)
{
    state_t *st = o;

    if (st->errors++)
        __builtin_trap(); /* reported once */
    st->hash = mix_bytes(mix(mix(st->hash, 5), off), (const uint8_t *)msg, strlen(msg));
}

/* Reassembler callbacks check the contract: ids in order, nothing after close. */
static int r_open(void *o, const tcpreasm_conn_info_t *info, void **user)
{
    state_t *st = o;

    if (info->id != st->opened++)
        __builtin_trap();
    *user = (void *)(uintptr_t)(info->id + 1);
    return 0;
}

static void r_check(state_t *st, uint64_t conn, void *user)
{
    if (conn >= st->opened || (uintptr_t)user != conn + 1 || (conn < MAXIDS && st->closed[conn]))
        __builtin_trap();
}

static int r_data(void *o, uint64_t conn, void *user, int dir, const uint8_t *d, size_t len,
                  uint64_t ts, uint64_t frame)
{
    volatile uint8_t sink;

    r_check(o, conn, user);
    if (len == 0 || (dir != 0 && dir != 1))
        __builtin_trap();
    sink = d[0]; /* the bytes must be readable */
    sink = d[len - 1];
    (void)sink;
    return 0;
}

static int r_gap(void *o, uint64_t conn, void *user, int dir, uint64_t missing)
{
    r_check(o, conn, user);
    if (missing == 0)
        __builtin_trap();
    return 0;
}

static int r_close(void *o, uint64_t conn, void *user, int how)
{
    state_t *st = o;

    r_check(st, conn, user);
    if (how < TCPREASM_CLOSE_FIN || how > TCPREASM_CLOSE_EVICTED)
        __builtin_trap();
    if (conn < MAXIDS)
        st->closed[conn] = 1;
    return 0;
}

static int r_udp(void *o, const tcpreasm_endpoint_t *src, const tcpreasm_endpoint_t *dst,
                 const uint8_t *d, size_t len, uint64_t ts, uint64_t frame)
{
    volatile uint8_t sink;

    if (len) {
        sink = d[0];
        sink = d[len - 1];
        (void)sink;
    }
    return 0;
}

static const pcapread_callbacks_t cbs = {on_section, on_interface, on_packet, on_secrets, on_error};
static const tcpreasm_callbacks_t rcbs = {r_open, r_data, r_gap, r_close, r_udp};

static int read_pieces(state_t *st, const uint8_t *data, size_t size, size_t a, size_t b)
{
    pcapread_t *r;
    int err, rc;

    r = pcapread_new(&cbs, st, &err);
    if (!r)
        return err;
    rc = pcapread_feed(r, data, a);
    if (rc == 0)
        rc = pcapread_feed(r, data + a, b - a);
    if (rc == 0)
        rc = pcapread_feed(r, data + b, size - b);
    if (rc == 0)
        rc = pcapread_finish(r);
    /* Errors stick. */
    if (rc && (pcapread_feed(r, data, size) != rc || pcapread_finish(r) != rc))
        __builtin_trap();
    pcapread_free(r);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const tcpreasm_options_t opts = {8, 4096, 16384};
    state_t *one, *split;
    uint64_t h = mix_bytes(size, data, size < 16 ? size : 16);
    size_t a = size ? (size_t)(h % (size + 1)) : 0;
    size_t b = a + (size_t)((h >> 32) % (size - a + 1));
    int rc1, rc2, err;
    static state_t s1, s2;

    one = &s1;
    split = &s2;
    memset(one, 0, sizeof(*one));
    memset(split, 0, sizeof(*split));
    one->ra = tcpreasm_new(&rcbs, one, &opts, &err);
    if (!one->ra)
        return 0;
    rc1 = read_pieces(one, data, size, size, size);
    if (tcpreasm_finish(one->ra) != 0)
        __builtin_trap();
    tcpreasm_free(one->ra);
    for (uint64_t i = 0; i < one->opened && i < MAXIDS; i++)
        if (!one->closed[i])
            __builtin_trap(); /* finish closes everything */

    rc2 = read_pieces(split, data, size, a, b);
    if (rc1 != rc2 || one->hash != split->hash || one->errors != split->errors)
        __builtin_trap();
    return 0;
}

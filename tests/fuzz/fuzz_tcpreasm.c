/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer driver for formats/tcpreasm.c.
 *
 * Input: one byte of options, then packets, each as
 *   u8 link type selector, u16 length (big endian), that many bytes.
 * The selector picks a link type from the list below (modulo its size), so
 * the fuzzer wastes no time on unknown ones; a short last packet is cut to
 * what is left. The option byte's low bits pick small limits, so eviction
 * and buffer overflow are reached with few packets.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iformats \
 *     tests/fuzz/fuzz_tcpreasm.c formats/tcpreasm.c formats/tcpreasm_stream.c -o fuzz_tcpreasm
 *   ./fuzz_tcpreasm fixtures/fuzz/tcpreasm
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tcpreasm.h"

#define MAXIDS 4096

static const uint32_t linktypes[] = {101, 1, 276, 113, 0, 108, 12, 14, 228, 229, 147};

typedef struct state {
    uint64_t opened;
    uint8_t closed[MAXIDS];
    uint64_t bytes[MAXIDS][2]; /* delivered + declared missing, per direction */
    uint8_t fin[MAXIDS][2];    /* on_fin seen */
} state_t;

static void check(state_t *st, uint64_t conn, void *user)
{
    if (conn >= st->opened || (uintptr_t)user != conn + 1 || (conn < MAXIDS && st->closed[conn]))
        __builtin_trap();
}

static int on_open(void *o, const tcpreasm_conn_info_t *info, void **user)
{
    state_t *st = o;

    if (info->id != st->opened++)
        __builtin_trap();
    if (info->client.family != info->server.family)
        __builtin_trap();
    *user = (void *)(uintptr_t)(info->id + 1);
    return 0;
}

static int on_data(void *o, uint64_t conn, void *user, int dir, const uint8_t *d, size_t len,
                   uint64_t ts, uint64_t frame)
{
    state_t *st = o;
    volatile uint8_t sink;

    check(st, conn, user);
    if (len == 0 || len > 65536 || (dir != 0 && dir != 1))
        __builtin_trap();
    sink = d[0];
    sink = d[len - 1];
    (void)sink;
    if (conn < MAXIDS && st->fin[conn][dir])
        __builtin_trap(); /* nothing after a direction's FIN */
    if (conn < MAXIDS)
        st->bytes[conn][dir] += len;
    return 0;
}

/* Once per direction, and nothing of that direction after it. */
static int on_fin(void *o, uint64_t conn, void *user, int dir)
{
    state_t *st = o;

    check(st, conn, user);
    if (dir != 0 && dir != 1)
        __builtin_trap();
    if (conn < MAXIDS) {
        if (st->fin[conn][dir])
            __builtin_trap();
        st->fin[conn][dir] = 1;
    }
    return 0;
}

static int on_gap(void *o, uint64_t conn, void *user, int dir, uint64_t missing)
{
    state_t *st = o;

    check(st, conn, user);
    if (missing == 0 || (dir != 0 && dir != 1))
        __builtin_trap();
    if (conn < MAXIDS)
        st->bytes[conn][dir] += missing;
    return 0;
}

static int on_close(void *o, uint64_t conn, void *user, int how)
{
    state_t *st = o;

    check(st, conn, user);
    if (how < TCPREASM_CLOSE_FIN || how > TCPREASM_CLOSE_EVICTED)
        __builtin_trap();
    if (conn < MAXIDS)
        st->closed[conn] = 1;
    return 0;
}

static int on_udp(void *o, const tcpreasm_endpoint_t *src, const tcpreasm_endpoint_t *dst,
                  const uint8_t *d, size_t len, uint64_t ts, uint64_t frame)
{
    volatile uint8_t sink;

    if (src->family != dst->family)
        __builtin_trap();
    if (len) {
        sink = d[0];
        sink = d[len - 1];
        (void)sink;
    }
    return 0;
}

static const tcpreasm_callbacks_t cbs = {on_open, on_data, on_gap, on_close, on_udp, on_fin};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static state_t st;
    tcpreasm_options_t o;
    tcpreasm_stats_t stats;
    tcpreasm_t *r;
    uint64_t frame = 0;
    size_t len;
    int err;

    if (size < 1)
        return 0;
    memset(&st, 0, sizeof(st));
    memset(&o, 0, sizeof(o));
    o.max_conns = (size_t)(data[0] & 7) + 1;
    o.max_buffer = (data[0] & 8) ? 1500 : 0;
    o.max_buffer_total = (data[0] & 16) ? 3000 : 0;
    data++;
    size--;
    r = tcpreasm_new(&cbs, &st, &o, &err);
    if (!r)
        return 0;
    while (size >= 3) {
        uint32_t lt = linktypes[data[0] % (sizeof(linktypes) / sizeof(linktypes[0]))];

        len = (size_t)data[1] << 8 | data[2];
        data += 3;
        size -= 3;
        if (len > size)
            len = size;
        if (tcpreasm_packet(r, lt, frame * 1000, data, len, frame + 1) != 0)
            __builtin_trap();
        frame++;
        data += len;
        size -= len;
    }
    if (tcpreasm_finish(r) != 0)
        __builtin_trap();
    tcpreasm_get_stats(r, &stats);
    if (stats.packets != frame || stats.conns != st.opened)
        __builtin_trap();
    for (uint64_t i = 0; i < st.opened && i < MAXIDS; i++)
        if (!st.closed[i])
            __builtin_trap();
    tcpreasm_free(r);
    return 0;
}

/* SPDX-License-Identifier: MIT */
/* Helpers shared by the unit tests: a growable byte buffer (also a pcapng writer's sink),
   and tcpsynth data followed by the peer's ACK. */
#ifndef MITMREC_TESTS_BYTES_H
#define MITMREC_TESTS_BYTES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcpsynth.h"

typedef struct bytes {
    uint8_t *p;
    size_t len, cap;
} bytes_t;

/* Appends n bytes; the buffer stays NUL-terminated, so text in it is a C string too. */
static inline void b_add(bytes_t *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;

        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) {
            fprintf(stderr, "out of memory\n");
            exit(2);
        }
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
}

static inline void b_free(bytes_t *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* A sink for pcapng_writer_new (opaque: the bytes_t). */
static inline int b_sink_write(void *opaque, const void *p, size_t n)
{
    b_add(opaque, p, n);
    return 0;
}

/* Data and the peer's ACK right after it: the packet shapes these tests were written
   around (tcpsynth itself leaves the ACK to the peer's next segment). */
static inline int data_acked(tcpsynth_t *t, int dir, const void *data, size_t len)
{
    int rc = tcpsynth_data(t, dir, data, len);

    return rc ? rc : tcpsynth_ack(t, dir);
}

#endif

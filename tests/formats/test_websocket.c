/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the WebSocket frame decoder. Frames are built by hand
 * (masked and unmasked, 7/16/64-bit lengths, fragments with control frames in
 * between); permessage-deflate payloads are made with zlib here, with and
 * without context takeover. Every script is fed whole, byte by byte and in
 * random splits (fixed seed); each step's bytes carry the step number as their
 * time, so a message's time says which step completed it.
 *
 * "test_websocket --write-seeds DIR" also writes the small scripts to DIR as
 * fuzz seeds in the format of tests/fuzz/fuzz_websocket.c
 * (fixtures/fuzz/websocket/).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "check.h"
#include "websocket.h"
#include "bytes.h"

#define C WEBSOCKET_CLIENT
#define S WEBSOCKET_SERVER

/* Where --write-seeds puts fuzz seeds, or NULL. */
static const char *seed_dir;

enum mode { MODE_WHOLE, MODE_BYTES, MODE_RANDOM, MODE_COUNT };

/* One frame, with the minimal length encoding; mask NULL means unmasked. */
static void frame(bytes_t *b, int fin, int rsv1, int opcode, const uint8_t *mask, const void *data,
                  size_t len)
{
    uint8_t h[14];
    size_t n = 2;

    h[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode);
    h[1] = mask ? 0x80 : 0;
    if (len < 126) {
        h[1] |= (uint8_t)len;
    } else if (len < 65536) {
        h[1] |= 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        n = 4;
    } else {
        h[1] |= 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        memcpy(h + n, mask, 4);
        n += 4;
    }
    b_add(b, h, n);
    for (size_t i = 0; i < len; i++) {
        uint8_t x = ((const uint8_t *)data)[i] ^ (mask ? mask[i & 3] : 0);

        b_add(b, &x, 1);
    }
}

static const uint8_t MASK1[4] = {0x37, 0xfa, 0x21, 0x3d};
static const uint8_t MASK2[4] = {0x00, 0xff, 0x80, 0x01};

/* A client frame is masked, a server frame is not. */
static void wsf(bytes_t *b, int dir, int fin, int rsv1, int opcode, const void *data, size_t len)
{
    frame(b, fin, rsv1, opcode, dir == C ? (len & 1 ? MASK1 : MASK2) : NULL, data, len);
}

/* Compresses one message as RFC 7692 says: sync flush, without the final
   00 00 ff ff. finish: end with a final block instead (allowed too). */
static void deflate_msg(z_stream *z, const void *data, size_t len, bytes_t *out, int finish)
{
    uint8_t tmp[4096];
    size_t start = out->len;

    z->next_in = (Bytef *)data;
    z->avail_in = (uInt)len;
    do {
        z->next_out = tmp;
        z->avail_out = sizeof(tmp);
        deflate(z, finish ? Z_FINISH : Z_SYNC_FLUSH);
        b_add(out, tmp, sizeof(tmp) - z->avail_out);
    } while (z->avail_out == 0);
    if (!finish && out->len - start >= 4 &&
        memcmp(out->p + out->len - 4, "\x00\x00\xff\xff", 4) == 0)
        out->len -= 4;
    else if (!finish && out->len == start)
        b_add(out, "", 1); /* nothing to flush: an empty stored block, cut to 00 */
    if (finish)
        deflateReset(z);
}

static void deflate_init(z_stream *z, int bits)
{
    memset(z, 0, sizeof(*z));
    if (deflateInit2(z, Z_BEST_COMPRESSION, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        fprintf(stderr, "deflateInit2 failed\n");
        exit(2);
    }
}

/* ---- scripts ---- */

#define MAX_STEPS 64
#define MAX_MSGS 64

typedef struct expect_msg {
    int dir, opcode;
    const uint8_t *data; /* NULL: len bytes of pattern(i) */
    size_t len;
    uint64_t total; /* 0: same as len */
    int step;       /* step whose bytes complete it */
    int not_in_ex;  /* dropped from the exchange */
} expect_msg_t;

typedef struct script {
    const char *name;
    const char *ext;
    size_t max_message, max_kept;
    int nsteps;
    int dir[MAX_STEPS];
    bytes_t step[MAX_STEPS];
    int nexp;
    expect_msg_t exp[MAX_MSGS];
    int fail_step[2]; /* step at which the direction fails, -1 none */
    const char *fail_text[2];
} script_t;

static void script_init(script_t *s, const char *name, const char *ext)
{
    memset(s, 0, sizeof(*s));
    s->name = name;
    s->ext = ext;
    s->fail_step[0] = s->fail_step[1] = -1;
}

static void script_free(script_t *s)
{
    for (int i = 0; i < s->nsteps; i++)
        free(s->step[i].p);
    for (int i = 0; i < s->nexp; i++)
        if (s->exp[i].data && s->exp[i].len)
            free((void *)s->exp[i].data);
}

/* Starts a new step in direction dir and returns its buffer. */
static bytes_t *step(script_t *s, int dir)
{
    s->dir[s->nsteps] = dir;
    return &s->step[s->nsteps++];
}

/* A step holding one frame of direction dir. */
static void sf(script_t *s, int dir, int fin, int rsv1, int opcode, const void *data, size_t len)
{
    wsf(step(s, dir), dir, fin, rsv1, opcode, data, len);
}

/* Expects a message completed by the current (last) step. */
static void expect(script_t *s, int dir, int opcode, const void *data, size_t len)
{
    expect_msg_t *e = &s->exp[s->nexp++];
    uint8_t *copy = NULL;

    if (len) {
        copy = malloc(len);
        memcpy(copy, data, len);
    }
    e->dir = dir;
    e->opcode = opcode;
    e->data = copy;
    e->len = len;
    e->step = s->nsteps - 1;
}

typedef struct got_msg {
    int dir, opcode;
    uint8_t *data;
    size_t len;
    uint64_t total, ts;
} got_msg_t;

typedef struct run {
    got_msg_t got[MAX_MSGS * 2];
    int ngot;
    int errors[2];
    char error_text[2][160];
} run_t;

static void on_message(void *opaque, int dir, int opcode, const uint8_t *data, size_t len,
                       uint64_t total, uint64_t ts)
{
    run_t *r = opaque;
    got_msg_t *g;

    if (r->ngot >= MAX_MSGS * 2)
        return;
    g = &r->got[r->ngot++];
    g->dir = dir;
    g->opcode = opcode;
    g->data = malloc(len + 1);
    memcpy(g->data, data, len + 1); /* the NUL after the data is promised */
    g->len = len;
    g->total = total;
    g->ts = ts;
}

static void on_error(void *opaque, int dir, const char *message)
{
    run_t *r = opaque;

    r->errors[dir]++;
    snprintf(r->error_text[dir], sizeof(r->error_text[dir]), "%s", message);
}

static uint32_t rng_state;

static uint32_t rng(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}

/* The extension strings tests/fuzz/fuzz_websocket.c selects with the low
   three bits of its first byte. */
static const char *const FUZZ_EXT[8] = {
    NULL,
    "permessage-deflate",
    "permessage-deflate; client_no_context_takeover; server_no_context_takeover",
    "permessage-deflate; server_no_context_takeover",
    "permessage-deflate; client_max_window_bits=10; server_max_window_bits=12",
    "x-webkit-deflate-frame",
    "permessage-deflate; client_no_context_takeover",
    "permessage-deflate; client_no_context_takeover; server_no_context_takeover; "
    "client_max_window_bits=10; server_max_window_bits=\"12\"",
};

/* Seed format: a flags byte (bits 0-2 the extension, bit 3 small limits),
   then records: direction in bit 7 of a byte whose bits 0-6 are the length
   (127: a 16-bit big-endian length follows), then the bytes. */
static void write_seed(const script_t *s)
{
    const char *dir = seed_dir;
    size_t total = 0;
    int ext = -1;
    char path[512];
    FILE *f;

    if (!dir)
        return;
    for (int i = 0; i < 8; i++)
        if (s->ext == FUZZ_EXT[i] || (s->ext && FUZZ_EXT[i] && strcmp(s->ext, FUZZ_EXT[i]) == 0))
            ext = i;
    for (int i = 0; i < s->nsteps; i++)
        total += s->step[i].len;
    if (ext < 0 || total > 16384)
        return;
    snprintf(path, sizeof(path), "%s/%s.bin", dir, s->name);
    f = fopen(path, "wb");
    if (!f)
        return;
    fputc(ext | (s->max_message || s->max_kept ? 8 : 0), f);
    for (int i = 0; i < s->nsteps; i++)
        for (size_t off = 0; off < s->step[i].len;) {
            size_t k = s->step[i].len - off < 65535 ? s->step[i].len - off : 65535;
            int d = s->dir[i] == S ? 0x80 : 0;

            if (k < 127) {
                fputc(d | (int)k, f);
            } else {
                fputc(d | 127, f);
                fputc((int)(k >> 8), f);
                fputc((int)(k & 0xff), f);
            }
            fwrite(s->step[i].p + off, 1, k, f);
            off += k;
        }
    fclose(f);
}

static void run_script(script_t *s)
{
    static const websocket_callbacks_t cb = {on_message, on_error};

    write_seed(s);
    for (int mode = 0; mode < MODE_COUNT; mode++) {
        for (int rep = 0; rep < (mode == MODE_RANDOM ? 5 : 1); rep++) {
            http_exchange_t *ex = http_exchange_new();
            run_t *r = calloc(1, sizeof(*r));
            websocket_conn_t *c =
                websocket_conn_new(s->ext, ex, &cb, r, s->max_message, s->max_kept);
            int failed_at[2] = {-1, -1}, ex_i = 0, ok = 1;
            websocket_stats_t st;

            rng_state = 1234 + (uint32_t)rep;
            CHECK(c != NULL);
            for (int i = 0; i < s->nsteps; i++) {
                const uint8_t *p = s->step[i].p;
                size_t left = s->step[i].len;
                int d = s->dir[i];

                while (left) {
                    size_t k = mode == MODE_WHOLE ? left : mode == MODE_BYTES ? 1 : 1 + rng() % 700;
                    int ret;

                    if (k > left)
                        k = left;
                    ret = websocket_conn_feed(c, d, p, k, (uint64_t)i);
                    if (ret < 0 && failed_at[d] < 0)
                        failed_at[d] = i;
                    if (ret < 0 && ret != -EBADMSG)
                        ok = 0;
                    p += k;
                    left -= k;
                }
            }
            CHECK(ok);
            for (int d = 0; d < 2; d++) {
                CHECK_EQ_INT(failed_at[d], s->fail_step[d]);
                CHECK_EQ_INT(r->errors[d], s->fail_step[d] >= 0 ? 1 : 0);
                CHECK_EQ_INT(websocket_conn_failed(c, d), s->fail_step[d] >= 0);
                if (s->fail_text[d] && !strstr(r->error_text[d], s->fail_text[d]))
                    fprintf(stderr, "%s: error \"%s\" lacks \"%s\"\n", s->name, r->error_text[d],
                            s->fail_text[d]);
                if (s->fail_text[d])
                    CHECK(strstr(r->error_text[d], s->fail_text[d]) != NULL);
            }
            CHECK_EQ_INT(r->ngot, s->nexp);
            for (int i = 0; i < r->ngot && i < s->nexp; i++) {
                const expect_msg_t *e = &s->exp[i];
                const got_msg_t *g = &r->got[i];
                int same;

                CHECK_EQ_INT(g->dir, e->dir);
                CHECK_EQ_INT(g->opcode, e->opcode);
                CHECK_EQ_INT(g->len, e->len);
                CHECK_EQ_INT(g->total, e->total ? e->total : e->len);
                CHECK_EQ_INT(g->ts, e->step);
                CHECK_EQ_INT(g->data[g->len], 0);
                same = g->len == e->len && (!e->len || memcmp(g->data, e->data, e->len) == 0);
                if (!same)
                    fprintf(stderr, "%s mode %d: message %d differs\n", s->name, mode, i);
                CHECK(same);
                if (e->not_in_ex)
                    continue;
                if (ex_i < (int)ex->nws) {
                    const http_ws_message_t *m = &ex->ws[ex_i];

                    CHECK_EQ_INT(m->send, e->dir == C);
                    CHECK_EQ_INT(m->opcode, e->opcode);
                    CHECK_EQ_INT(m->ts_usec, e->step);
                    CHECK_EQ_INT(m->len, g->len);
                    CHECK(m->len == g->len && memcmp(m->data, g->data, g->len) == 0);
                    CHECK_EQ_INT(m->data[m->len], 0);
                }
                ex_i++;
            }
            CHECK_EQ_INT(ex->nws, ex_i);
            websocket_conn_stats(c, &st);
            CHECK_EQ_INT(st.messages, s->nexp);
            for (int i = 0; i < r->ngot; i++)
                free(r->got[i].data);
            websocket_conn_free(c);
            http_exchange_free(ex);
            free(r);
        }
    }
}

/* ---- the cases ---- */

static void test_basic(void)
{
    script_t s;
    uint8_t bin[256];
    const char close_c[] = "\x03\xe8"
                           "bye";

    for (int i = 0; i < 256; i++)
        bin[i] = (uint8_t)i;
    script_init(&s, "basic", NULL);
    sf(&s, C, 1, 0, 1, "Hello", 5);
    expect(&s, C, 1, "Hello", 5);
    sf(&s, S, 1, 0, 1, "World!", 6);
    expect(&s, S, 1, "World!", 6);
    sf(&s, S, 1, 0, 2, bin, sizeof(bin));
    expect(&s, S, 2, bin, sizeof(bin));
    sf(&s, C, 1, 0, 2, "", 0);
    expect(&s, C, 2, "", 0);
    sf(&s, C, 1, 0, 9, "ping!", 5);
    expect(&s, C, 9, "ping!", 5);
    sf(&s, S, 1, 0, 10, "ping!", 5);
    expect(&s, S, 10, "ping!", 5);
    /* Two frames in one step: both complete at that step. */
    {
        bytes_t *b = step(&s, C);

        wsf(b, C, 1, 0, 1, "one", 3);
        wsf(b, C, 1, 0, 1, "two", 3);
        expect(&s, C, 1, "one", 3);
        expect(&s, C, 1, "two", 3);
    }
    sf(&s, C, 1, 0, 8, close_c, 5);
    expect(&s, C, 8, close_c, 5);
    /* After a close, the rest of that direction is ignored, even garbage. */
    b_add(step(&s, C), "\xff\xff\xff\xff", 4);
    sf(&s, S, 1, 0, 1, "still here", 10);
    expect(&s, S, 1, "still here", 10);
    sf(&s, S, 1, 0, 8, "", 0);
    expect(&s, S, 8, "", 0);
    run_script(&s);
    script_free(&s);
}

static void test_fragments(void)
{
    script_t s;
    uint8_t big[5000];

    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7 + 1);
    script_init(&s, "fragments", NULL);
    sf(&s, C, 0, 0, 1, "Hel", 3);
    sf(&s, C, 1, 0, 9, "x", 1);
    expect(&s, C, 9, "x", 1);
    sf(&s, C, 0, 0, 0, "lo ", 3);
    sf(&s, C, 1, 0, 10, "", 0);
    expect(&s, C, 10, "", 0);
    sf(&s, C, 0, 0, 0, "", 0);
    sf(&s, C, 1, 0, 0, "world", 5);
    expect(&s, C, 1, "Hello world", 11);
    /* The server's binary message in five fragments, interleaved with the client's. */
    sf(&s, S, 0, 0, 2, big, 1000);
    sf(&s, C, 1, 0, 1, "between", 7);
    expect(&s, C, 1, "between", 7);
    sf(&s, S, 0, 0, 0, big + 1000, 200);
    sf(&s, S, 0, 0, 0, big + 1200, 0);
    sf(&s, S, 1, 0, 9, "p", 1);
    expect(&s, S, 9, "p", 1);
    sf(&s, S, 0, 0, 0, big + 1200, 3000);
    sf(&s, S, 1, 0, 0, big + 4200, 800);
    expect(&s, S, 2, big, sizeof(big));
    run_script(&s);
    script_free(&s);
}

static void test_lengths(void)
{
    static const size_t sizes[] = {125, 126, 127, 300, 65535, 65536, 70000};
    script_t s;
    uint8_t *p = malloc(70000);

    for (size_t i = 0; i < 70000; i++)
        p[i] = (uint8_t)(i ^ (i >> 8));
    script_init(&s, "lengths", NULL);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        sf(&s, S, 1, 0, 2, p, sizes[i]);
        expect(&s, S, 2, p, sizes[i]);
        sf(&s, C, 1, 0, 2, p + 1, sizes[i] - 1);
        expect(&s, C, 2, p + 1, sizes[i] - 1);
    }
    run_script(&s);
    script_free(&s);
    free(p);
}

static const char LOREM[] =
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud";

static void test_deflate_takeover(void)
{
    script_t s;
    z_stream zc, zs;
    bytes_t m = {0};
    char text[400];

    script_init(&s, "deflate-takeover", "permessage-deflate");
    deflate_init(&zc, 15);
    deflate_init(&zs, 15);
    /* The same text three times: the later messages reference the earlier. */
    for (int i = 0; i < 3; i++) {
        m.len = 0;
        deflate_msg(&zc, LOREM, strlen(LOREM), &m, 0);
        if (i > 0)
            CHECK(m.len < 20); /* really a back-reference into the shared window */
        sf(&s, C, 1, 1, 1, m.p, m.len);
        expect(&s, C, 1, LOREM, strlen(LOREM));
        m.len = 0;
        deflate_msg(&zs, LOREM + i, strlen(LOREM) - (size_t)i, &m, 0);
        sf(&s, S, 1, 1, 1, m.p, m.len);
        expect(&s, S, 1, LOREM + i, strlen(LOREM) - (size_t)i);
    }
    /* An uncompressed message in between (RSV1 clear) leaves the window alone. */
    sf(&s, S, 1, 0, 1, "plain", 5);
    expect(&s, S, 1, "plain", 5);
    /* A compressed message in three frames, RSV1 only on the first, and a ping between. */
    snprintf(text, sizeof(text), "%s|%s|%s", LOREM, "middle", LOREM);
    m.len = 0;
    deflate_msg(&zs, text, strlen(text), &m, 0);
    CHECK(m.len > 6);
    sf(&s, S, 0, 1, 1, m.p, 3);
    sf(&s, S, 1, 0, 9, "", 0);
    expect(&s, S, 9, "", 0);
    sf(&s, S, 0, 0, 0, m.p + 3, 2);
    sf(&s, S, 1, 0, 0, m.p + 5, m.len - 5);
    expect(&s, S, 1, text, strlen(text));
    /* An empty compressed message, as RFC 7692 says (one 00 byte), and as an
       empty payload. */
    m.len = 0;
    deflate_msg(&zc, "", 0, &m, 0);
    CHECK_EQ_INT(m.len, 1);
    sf(&s, C, 1, 1, 2, m.p, m.len);
    expect(&s, C, 2, "", 0);
    sf(&s, C, 1, 1, 1, "", 0);
    expect(&s, C, 1, "", 0);
    /* And the window still works afterwards. */
    m.len = 0;
    deflate_msg(&zc, LOREM, strlen(LOREM), &m, 0);
    sf(&s, C, 1, 1, 1, m.p, m.len);
    expect(&s, C, 1, LOREM, strlen(LOREM));
    run_script(&s);
    script_free(&s);
    deflateEnd(&zc);
    deflateEnd(&zs);
    free(m.p);
}

static void test_deflate_no_context(void)
{
    script_t s;
    z_stream zc, zs;
    bytes_t m = {0};

    script_init(&s, "deflate-no-context",
                "permessage-deflate; client_no_context_takeover; server_no_context_takeover; "
                "client_max_window_bits=10; server_max_window_bits=\"12\"");
    deflate_init(&zc, 10);
    deflate_init(&zs, 12);
    for (int i = 0; i < 3; i++) {
        m.len = 0;
        deflate_msg(&zc, LOREM, strlen(LOREM), &m, 0);
        deflateReset(&zc);
        CHECK(m.len > 40); /* no back-reference to the previous message */
        sf(&s, C, 1, 1, 1, m.p, m.len);
        expect(&s, C, 1, LOREM, strlen(LOREM));
        /* The server ends each message with a final block (BFINAL). */
        m.len = 0;
        deflate_msg(&zs, LOREM, strlen(LOREM), &m, 1);
        sf(&s, S, 1, 1, 2, m.p, m.len);
        expect(&s, S, 2, LOREM, strlen(LOREM));
    }
    run_script(&s);
    script_free(&s);

    /* The server promised no context takeover but uses its window: the second
       message refers to bytes the decoder rightly forgot. */
    script_init(&s, "deflate-broken-promise", "permessage-deflate; server_no_context_takeover");
    deflateReset(&zs);
    deflateEnd(&zs);
    deflate_init(&zs, 15);
    m.len = 0;
    deflate_msg(&zs, LOREM, strlen(LOREM), &m, 0);
    sf(&s, S, 1, 1, 1, m.p, m.len);
    expect(&s, S, 1, LOREM, strlen(LOREM));
    m.len = 0;
    deflate_msg(&zs, LOREM, strlen(LOREM), &m, 0);
    sf(&s, S, 1, 1, 1, m.p, m.len);
    s.fail_step[S] = 1;
    s.fail_text[S] = "permessage-deflate";
    run_script(&s);
    script_free(&s);
    deflateEnd(&zc);
    deflateEnd(&zs);
    free(m.p);
}

static void test_limits(void)
{
    script_t s;
    uint8_t big[1000];
    z_stream z;
    bytes_t m = {0};

    memset(big, 'a', sizeof(big));
    script_init(&s, "truncated", "permessage-deflate");
    s.max_message = 100;
    sf(&s, S, 1, 0, 2, big, sizeof(big));
    expect(&s, S, 2, big, 100);
    s.exp[s.nexp - 1].total = sizeof(big);
    deflate_init(&z, 15);
    deflate_msg(&z, big, sizeof(big), &m, 0);
    sf(&s, C, 0, 1, 1, m.p, 2);
    sf(&s, C, 1, 0, 0, m.p + 2, m.len - 2);
    expect(&s, C, 1, big, 100);
    s.exp[s.nexp - 1].total = sizeof(big);
    /* The window survives the truncation: the next message decodes. */
    m.len = 0;
    deflate_msg(&z, big, 50, &m, 0);
    sf(&s, C, 1, 1, 1, m.p, m.len);
    expect(&s, C, 1, big, 50);
    run_script(&s);
    script_free(&s);
    deflateEnd(&z);
    free(m.p);

    /* max_kept: messages past it reach on_message but not the exchange. */
    script_init(&s, "kept", NULL);
    s.max_kept = 10;
    sf(&s, S, 1, 0, 1, "12345678", 8);
    expect(&s, S, 1, "12345678", 8);
    sf(&s, S, 1, 0, 1, "abc", 3);
    expect(&s, S, 1, "abc", 3);
    s.exp[s.nexp - 1].not_in_ex = 1;
    sf(&s, C, 1, 0, 1, "xy", 2);
    expect(&s, C, 1, "xy", 2);
    run_script(&s);
    script_free(&s);
}

/* Each bad frame comes after a good message and before more bytes: the
   direction stops there, the other direction goes on. */
static void bad_case(const char *name, const char *ext, int dir, const uint8_t *bad, size_t n,
                     const char *text)
{
    script_t s;

    script_init(&s, name, ext);
    sf(&s, dir, 1, 0, 1, "good", 4);
    expect(&s, dir, 1, "good", 4);
    b_add(step(&s, dir), bad, n);
    sf(&s, dir, 1, 0, 1, "after", 5);
    sf(&s, !dir, 1, 0, 1, "other side", 10);
    expect(&s, !dir, 1, "other side", 10);
    s.fail_step[dir] = 1;
    s.fail_text[dir] = text;
    run_script(&s);
    script_free(&s);
}

static void test_bad_frames(void)
{
    bytes_t b = {0};
    static const uint8_t opcode3[] = {0x83, 0x00};
    static const uint8_t opcode11[] = {0x8b, 0x00};
    static const uint8_t rsv2[] = {0xa1, 0x01, 'x'};
    static const uint8_t rsv3[] = {0x91, 0x01, 'x'};
    static const uint8_t rsv1[] = {0xc1, 0x01, 'x'};
    static const uint8_t rsv1_ping[] = {0xc9, 0x00};
    static const uint8_t rsv1_cont[] = {0x01, 0x01, 'a', 0xc0, 0x01, 'b'};
    static const uint8_t long_ping[] = {0x89, 0x7e, 0x00, 0x7e};
    static const uint8_t frag_ping[] = {0x09, 0x00};
    static const uint8_t stray_cont[] = {0x80, 0x01, 'x'};
    static const uint8_t nested[] = {0x01, 0x01, 'a', 0x81, 0x01, 'b'};
    static const uint8_t short16[] = {0x81, 0x7e, 0x00, 0x05, 'a', 'b', 'c', 'd', 'e'};
    static const uint8_t short64[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0x00, 0xc8};
    static const uint8_t high64[] = {0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t garbage[] = {0xc1, 0x04, 0xff, 0xff, 0xff, 0xff};

    for (int dir = 0; dir < 2; dir++) {
        bad_case("opcode3", NULL, dir, opcode3, sizeof(opcode3), "reserved opcode 3");
        bad_case("opcode11", NULL, dir, opcode11, sizeof(opcode11), "reserved opcode 11");
        bad_case("rsv2", "permessage-deflate", dir, rsv2, sizeof(rsv2), "RSV2");
        bad_case("rsv3", NULL, dir, rsv3, sizeof(rsv3), "RSV2/RSV3");
        bad_case("rsv1", NULL, dir, rsv1, sizeof(rsv1), "no permessage-deflate");
        bad_case("rsv1-unknown-ext", "x-webkit-deflate-frame", dir, rsv1, sizeof(rsv1),
                 "no permessage-deflate");
        bad_case("rsv1-ping", "permessage-deflate", dir, rsv1_ping, sizeof(rsv1_ping),
                 "control frame with RSV1");
        bad_case("rsv1-cont", "permessage-deflate", dir, rsv1_cont, sizeof(rsv1_cont),
                 "continuation frame with RSV1");
        bad_case("long-ping", NULL, dir, long_ping, sizeof(long_ping), "longer than 125");
        bad_case("frag-ping", NULL, dir, frag_ping, sizeof(frag_ping), "fragmented");
        bad_case("stray-cont", NULL, dir, stray_cont, sizeof(stray_cont), "without a message");
        bad_case("nested", NULL, dir, nested, sizeof(nested), "before the previous");
        bad_case("short16", NULL, dir, short16, sizeof(short16), "minimally");
        bad_case("short64", NULL, dir, short64, sizeof(short64), "minimally");
        bad_case("high64", NULL, dir, high64, sizeof(high64), "high bit");
        bad_case("bad-deflate", "permessage-deflate", dir, garbage, sizeof(garbage),
                 "permessage-deflate");
    }
    /* A masked server frame and an unmasked client frame are read as they are. */
    b.len = 0;
    {
        script_t s;

        script_init(&s, "mask-either-way", NULL);
        frame(step(&s, S), 1, 0, 1, MASK1, "masked", 6);
        expect(&s, S, 1, "masked", 6);
        frame(step(&s, C), 1, 0, 1, NULL, "bare", 4);
        expect(&s, C, 1, "bare", 4);
        run_script(&s);
        script_free(&s);
    }
    free(b.p);
}

static void test_extensions(void)
{
    static const struct {
        const char *ext;
        int deflate;
    } cases[] = {
        {NULL, 0},
        {"", 0},
        {"permessage-deflate", 1},
        {"PerMessage-Deflate ; server_no_context_takeover", 1},
        {"x-foo; bar=\"a,permessage-deflate\", permessage-deflate; client_max_window_bits", 1},
        {"x-webkit-deflate-frame", 0},
        {"permessage-deflatex", 0},
        {"permessage-deflate; server_max_window_bits=99; junk=\"\\\"\"", 1},
        {";;;,,,=\"", 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        websocket_conn_t *c = websocket_conn_new(cases[i].ext, NULL, NULL, NULL, 0, 0);

        CHECK(c != NULL);
        CHECK_EQ_INT(websocket_conn_deflate(c), cases[i].deflate);
        websocket_conn_free(c);
    }
    websocket_conn_free(NULL);
}

static void test_api(void)
{
    http_exchange_t *ex = http_exchange_new();
    websocket_conn_t *c = websocket_conn_new(NULL, ex, NULL, NULL, 0, 0);
    bytes_t b = {0};
    websocket_stats_t st;

    CHECK_EQ_INT(http_exchange_add_ws(ex, 1, 5, 1, "abc", 3), 0);
    CHECK_EQ_INT(http_exchange_add_ws(ex, 0, 6, 2, NULL, 0), 0);
    CHECK_EQ_INT(ex->nws, 2);
    CHECK_EQ_STR((char *)ex->ws[0].data, "abc");
    CHECK_EQ_INT(ex->ws[0].send, 1);
    CHECK_EQ_INT(ex->ws[1].send, 0);
    CHECK(ex->ws[1].data != NULL && ex->ws[1].data[0] == 0);
    for (int i = 0; i < 40; i++)
        CHECK_EQ_INT(http_exchange_add_ws(ex, 1, 7, 1, "x", 1), 0);
    CHECK_EQ_INT(ex->nws, 42);
    CHECK_EQ_INT(websocket_conn_feed(c, 2, "x", 1, 0), -EINVAL);
    /* No callbacks: messages still reach the exchange; close stops the direction. */
    wsf(&b, C, 1, 0, 1, "hi", 2);
    wsf(&b, C, 1, 0, 8, "", 0);
    CHECK_EQ_INT(websocket_conn_feed(c, C, b.p, b.len, 9), 0);
    CHECK_EQ_INT(ex->nws, 44);
    CHECK_EQ_INT(websocket_conn_closed(c, C), 1);
    CHECK_EQ_INT(websocket_conn_closed(c, S), 0);
    CHECK_EQ_INT(websocket_conn_feed(c, S, "\x83\x00", 2, 10), -EBADMSG);
    CHECK_EQ_INT(websocket_conn_feed(c, S, "\x81\x00", 2, 10), -EBADMSG);
    websocket_conn_stats(c, &st);
    CHECK_EQ_INT(st.messages, 2);
    CHECK_EQ_INT(st.truncated, 0);
    CHECK_EQ_INT(st.dropped, 0);
    websocket_conn_free(c);
    http_exchange_free(ex);
    free(b.p);
}

/* websocket_conn_require_masks (mitmreplay's server side): a masked client frame passes, an
   unmasked one stops the client direction; server frames are not concerned. Without it an
   unmasked client frame is taken (the recorder's case). */
static void test_require_masks(void)
{
    websocket_conn_t *c = websocket_conn_new(NULL, NULL, NULL, NULL, 0, 0);
    bytes_t b = {0};

    CHECK(c != NULL);
    if (!c)
        return;
    CHECK_EQ_INT(websocket_conn_feed(c, C, "\x81\x01x", 3, 1), 0);
    websocket_conn_require_masks(c);
    wsf(&b, C, 1, 0, 1, "hi", 2);
    CHECK_EQ_INT(websocket_conn_feed(c, C, b.p, b.len, 2), 0);
    CHECK_EQ_INT(websocket_conn_feed(c, S, "\x81\x01y", 3, 3), 0);
    CHECK_EQ_INT(websocket_conn_feed(c, C, "\x81\x01x", 3, 4), -EBADMSG);
    CHECK_EQ_INT(websocket_conn_failed(c, C), 1);
    CHECK_EQ_INT(websocket_conn_failed(c, S), 0);
    websocket_conn_free(c);
    free(b.p);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write-seeds") == 0)
        seed_dir = argv[2];
    test_basic();
    test_fragments();
    test_lengths();
    test_deflate_takeover();
    test_deflate_no_context();
    test_limits();
    test_bad_frames();
    test_extensions();
    test_api();
    test_require_masks();
    return check_done();
}

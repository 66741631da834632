/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer driver for Content-Encoding decoding (formats/content.c): response bodies come
 * from the network, compressed as the server likes.
 *
 * Input: one flags byte, then the body. Flags: bits 0-3, the Content-Encoding (the table
 * below, which has unknown and malformed lists too); bit 4, max_out is 100 bytes instead of
 * 1 MiB; bit 5, round trip: the body is first compressed here (zlib for the gzip and deflate
 * rows, libzstd for zstd; other rows decode the body as it is), so the decoder must give it
 * back exactly; bit 6, with bit 5, the compressed body is cut in half.
 * Seeds: fixtures/fuzz/content/.
 *
 * Contract checked: the result is 0, -ENOTSUP, -EBADMSG or -ENOMEM; -ENOTSUP exactly for
 * the encodings content.c does not know; on success the output is readable, at most max_out
 * bytes, and for "identity" (or none) it is the body's first bytes, truncated when the body
 * was longer; a round trip gives back the body (its first max_out bytes, flagged truncated
 * when there were more), and a round trip cut in half gives a prefix of it.
 *
 * Build (tests/slow/fuzz.sh does it): clang -g -O1 -fsanitize=fuzzer,address,undefined
 *   -Iformats tests/fuzz/fuzz_content.c formats/content.c -lz -lbrotlidec -lzstd
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "../zdeflate.h"
#include "content.h"

enum rt { RT_NONE, RT_GZIP, RT_ZLIB, RT_RAW, RT_ZSTD };

static const struct {
    const char *enc;
    int known;  /* content_decode knows every coding listed */
    enum rt rt; /* how bit 5 compresses the body for it */
} ENC[16] = {
    {NULL, 1, RT_NONE},
    {"identity", 1, RT_NONE},
    {"gzip", 1, RT_GZIP},
    {"x-gzip", 1, RT_GZIP},
    {"deflate", 1, RT_ZLIB},
    {"Deflate", 1, RT_RAW}, /* raw deflate, which browsers take as "deflate" too */
    {"br", 1, RT_NONE},
    {"zstd", 1, RT_ZSTD},
    {"gzip, br", 1, RT_NONE},
    {" zstd ,identity, ", 1, RT_NONE},
    {"gzip,gzip", 1, RT_NONE},
    {"compress", 0, RT_NONE},
    {"gzip, sdch", 0, RT_NONE},
    {"", 1, RT_NONE},
    {",,,", 1, RT_NONE},
    {"br,br,br,br,br,br,br,br,br", 0, RT_NONE}, /* more codings than it takes */
};

/* Compresses in as rt says into a malloc'd buffer; NULL when that fails (not a finding). */
static uint8_t *compress_rt(enum rt rt, const uint8_t *in, size_t len, size_t *outlen)
{
    uint8_t *out;

    if (rt == RT_ZSTD) {
        size_t cap = ZSTD_compressBound(len), n;

        if (!(out = malloc(cap)))
            return NULL;
        n = ZSTD_compress(out, cap, in, len, 3);
        if (ZSTD_isError(n)) {
            free(out);
            return NULL;
        }
        *outlen = n;
        return out;
    }
    return zdeflate(in, len, rt == RT_GZIP ? 15 + 16 : rt == RT_RAW ? -15 : 15, outlen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t flags, *out = NULL, *packed = NULL;
    const uint8_t *body, *in;
    size_t blen, inlen, outlen = 12345, max_out;
    unsigned idx;
    int truncated = 7, r, roundtrip;
    volatile unsigned sum = 0;

    if (size < 1)
        return 0;
    flags = data[0];
    body = data + 1;
    blen = size - 1;
    idx = flags & 15;
    max_out = flags & 16 ? 100 : 1024 * 1024;
    roundtrip = (flags & 32) && ENC[idx].rt != RT_NONE;
    in = body;
    inlen = blen;
    if (roundtrip) {
        if (!(packed = compress_rt(ENC[idx].rt, body, blen, &inlen)))
            return 0;
        if (flags & 64)
            inlen /= 2;
        in = packed;
    }

    r = content_decode(ENC[idx].enc, in, inlen, max_out, &out, &outlen, &truncated);
    if (r != 0 && r != -ENOTSUP && r != -EBADMSG && r != -ENOMEM)
        abort();
    if ((r == -ENOTSUP) != !ENC[idx].known)
        abort();
    if (r < 0) {
        if (out || outlen || truncated)
            abort(); /* nothing handed out on failure */
        if (roundtrip && !(flags & 64) && r != -ENOMEM)
            abort(); /* what zlib or zstd made must decode */
        free(packed);
        return 0;
    }
    if (!out || outlen > max_out || (truncated != 0 && truncated != 1))
        abort();
    for (size_t i = 0; i < outlen; i++)
        sum += out[i];

    if (idx <= 1 || idx == 13 || idx == 14) { /* identity */
        size_t want = blen < max_out ? blen : max_out;
        if (outlen != want || memcmp(out, body, want) != 0 || truncated != (blen > max_out))
            abort();
    }
    if (roundtrip) {
        size_t want = blen < max_out ? blen : max_out;
        if (flags & 64) {
            /* Half a stream: what came out is the start of the body. */
            if (outlen > want || memcmp(out, body, outlen) != 0)
                abort();
        } else if (outlen != want || memcmp(out, body, want) != 0 ||
                   truncated != (blen > max_out)) {
            abort();
        }
    }
    free(out);
    free(packed);
    return 0;
}

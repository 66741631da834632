/* SPDX-License-Identifier: MIT */
#include "content.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <brotli/decode.h>
#include <zlib.h>
#include <zstd.h>

enum coding { CODING_IDENTITY, CODING_GZIP, CODING_DEFLATE, CODING_BR, CODING_ZSTD };

/* At most this many codings in one Content-Encoding; real ones have one. */
#define CONTENT_MAX_CODINGS 8

typedef struct outbuf {
    uint8_t *p;
    size_t len, cap, max;
    int truncated;
} outbuf_t;

static int parse_codings(const char *enc, enum coding *list, size_t *n)
{
    const char *s = enc ? enc : "";

    *n = 0;
    while (*s) {
        const char *b, *e;
        size_t len;

        while (*s == ' ' || *s == '\t' || *s == ',')
            s++;
        if (!*s)
            break;
        b = s;
        while (*s && *s != ',')
            s++;
        e = s;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        len = (size_t)(e - b);
        if (*n == CONTENT_MAX_CODINGS)
            return -ENOTSUP;
        if ((len == 4 && strncasecmp(b, "gzip", 4) == 0) ||
            (len == 6 && strncasecmp(b, "x-gzip", 6) == 0))
            list[(*n)++] = CODING_GZIP;
        else if (len == 7 && strncasecmp(b, "deflate", 7) == 0)
            list[(*n)++] = CODING_DEFLATE;
        else if (len == 8 && strncasecmp(b, "identity", 8) == 0)
            list[(*n)++] = CODING_IDENTITY;
        else if (len == 2 && strncasecmp(b, "br", 2) == 0)
            list[(*n)++] = CODING_BR;
        else if (len == 4 && strncasecmp(b, "zstd", 4) == 0)
            list[(*n)++] = CODING_ZSTD;
        else
            return -ENOTSUP;
    }
    return 0;
}

/* Makes room for at least one more byte, up to the limit; 0, 1 (full) or -ENOMEM. */
static int out_reserve(outbuf_t *o)
{
    size_t cap;
    uint8_t *p;

    if (o->len < o->cap)
        return 0;
    if (o->cap >= o->max)
        return 1;
    cap = o->cap < 4096 ? 4096 : o->cap * 2;
    if (cap > o->max || cap < o->cap)
        cap = o->max;
    p = realloc(o->p, cap ? cap : 1);
    if (!p)
        return -ENOMEM;
    o->p = p;
    o->cap = cap;
    return 0;
}

static int out_append(outbuf_t *o, const uint8_t *in, size_t len)
{
    while (len) {
        size_t n;
        int r = out_reserve(o);

        if (r < 0)
            return r;
        if (r > 0) {
            o->truncated = 1;
            return 0;
        }
        n = o->cap - o->len < len ? o->cap - o->len : len;
        memcpy(o->p + o->len, in, n);
        o->len += n;
        in += n;
        len -= n;
    }
    return 0;
}

/*
 * Inflates in into o with the given zlib windowBits. Input that ends before
 * the end of the stream (a body cut at max_body, a connection that closed
 * early) yields what was decoded, flagged truncated: partial content is more
 * useful in a recording than none. Returns 0, -EBADMSG or -ENOMEM; *produced
 * tells whether any output came out (for the raw-deflate retry).
 */
static int inflate_into(const uint8_t *in, size_t len, int wbits, outbuf_t *o, int *produced)
{
    z_stream zs;
    int zr, ret = 0;
    size_t start = o->len;

    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, wbits) != Z_OK)
        return -ENOMEM;
    for (;;) {
        uInt in_chunk = len > (1u << 30) ? (1u << 30) : (uInt)len;
        uInt out_chunk;
        size_t used;
        int full = out_reserve(o);

        if (full < 0) {
            ret = full;
            break;
        }
        zs.next_in = (Bytef *)in;
        zs.avail_in = in_chunk;
        if (full) {
            /* Out of room: peek whether more would come out, to flag truncation. */
            uint8_t probe[64];

            zs.next_out = probe;
            zs.avail_out = sizeof(probe);
            inflate(&zs, Z_NO_FLUSH);
            if (zs.avail_out < sizeof(probe))
                o->truncated = 1;
            break;
        }
        out_chunk = o->cap - o->len > (1u << 30) ? (1u << 30) : (uInt)(o->cap - o->len);
        zs.next_out = o->p + o->len;
        zs.avail_out = out_chunk;
        zr = inflate(&zs, Z_NO_FLUSH);
        o->len += out_chunk - zs.avail_out;
        used = in_chunk - zs.avail_in;
        in += used;
        len -= used;
        if (zr == Z_OK)
            continue;
        if (zr == Z_STREAM_END) {
            /* gzip allows several members back to back (gzip a; gzip b). */
            if (wbits > 15 && len >= 2 && in[0] == 0x1f && in[1] == 0x8b) {
                inflateReset(&zs);
                continue;
            }
            break;
        }
        if (zr == Z_BUF_ERROR) {
            if (zs.avail_out == 0)
                continue;
            /* The input ended before the end of the stream. */
            o->truncated = 1;
            break;
        }
        ret = zr == Z_MEM_ERROR ? -ENOMEM : -EBADMSG;
        break;
    }
    *produced = o->len > start;
    inflateEnd(&zs);
    return ret;
}

/* Brotli (RFC 7932), streamed into o; a cut stream keeps what was decoded. */
static int brotli_into(const uint8_t *in, size_t len, outbuf_t *o)
{
    BrotliDecoderState *st = BrotliDecoderCreateInstance(NULL, NULL, NULL);
    BrotliDecoderResult res;
    uint8_t chunk[16384];
    int ret = 0;

    if (!st)
        return -ENOMEM;
    do {
        uint8_t *next_out = chunk;
        size_t avail_out = sizeof(chunk);

        res = BrotliDecoderDecompressStream(st, &len, &in, &avail_out, &next_out, NULL);
        if ((ret = out_append(o, chunk, sizeof(chunk) - avail_out)) < 0 || o->truncated)
            break;
        if (res == BROTLI_DECODER_RESULT_ERROR) {
            ret = o->len ? 0 : -EBADMSG;
            o->truncated = o->len > 0;
            break;
        }
        if (res == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT) {
            o->truncated = 1;
            break;
        }
    } while (res != BROTLI_DECODER_RESULT_SUCCESS);
    BrotliDecoderDestroyInstance(st);
    return ret;
}

/* Zstandard (RFC 8878), several frames in a row allowed. */
static int zstd_into(const uint8_t *in, size_t len, outbuf_t *o)
{
    ZSTD_DStream *zs = ZSTD_createDStream();
    ZSTD_inBuffer ib = {in, len, 0};
    uint8_t chunk[16384];
    size_t r = 0;
    int ret = 0;

    if (!zs)
        return -ENOMEM;
    ZSTD_initDStream(zs);
    /* Bounded memory: no window over 8 MiB, whatever the frame asks for. */
    ZSTD_DCtx_setParameter(zs, ZSTD_d_windowLogMax, 23);
    while (ib.pos < ib.size) {
        ZSTD_outBuffer ob = {chunk, sizeof(chunk), 0};

        r = ZSTD_decompressStream(zs, &ob, &ib);
        if (ZSTD_isError(r)) {
            ret = o->len ? 0 : -EBADMSG;
            o->truncated = o->len > 0;
            break;
        }
        if ((ret = out_append(o, chunk, ob.pos)) < 0 || o->truncated)
            break;
        if (ob.pos == 0 && r != 0 && ib.pos == ib.size)
            break;
    }
    /* Output still held in the decoder once the input is used up. */
    while (ret == 0 && !o->truncated && r != 0 && !ZSTD_isError(r)) {
        ZSTD_outBuffer ob = {chunk, sizeof(chunk), 0};
        r = ZSTD_decompressStream(zs, &ob, &ib);
        if (ZSTD_isError(r) || ob.pos == 0) {
            o->truncated = 1;
            break;
        }
        ret = out_append(o, chunk, ob.pos);
    }
    ZSTD_freeDStream(zs);
    return ret;
}

static int decode_one(enum coding c, const uint8_t *in, size_t len, size_t max_out, outbuf_t *o)
{
    int produced, r;

    memset(o, 0, sizeof(*o));
    o->max = max_out;
    if (c == CODING_IDENTITY || len == 0)
        return out_append(o, in, len);
    if (c == CODING_BR)
        return brotli_into(in, len, o);
    if (c == CODING_ZSTD)
        return zstd_into(in, len, o);
    if (c == CODING_GZIP)
        return inflate_into(in, len, 15 + 16, o, &produced);
    /* "deflate" should be zlib-wrapped, but servers send raw deflate often
       enough that every browser accepts both. */
    r = inflate_into(in, len, 15, o, &produced);
    if (r == -EBADMSG && !produced) {
        o->len = 0;
        o->truncated = 0;
        r = inflate_into(in, len, -15, o, &produced);
    }
    return r;
}

int content_decode(const char *encoding, const uint8_t *in, size_t len, size_t max_out,
                   uint8_t **out, size_t *outlen, int *truncated)
{
    enum coding list[CONTENT_MAX_CODINGS];
    size_t n;
    const uint8_t *cur = in;
    size_t curlen = len;
    uint8_t *owned = NULL;
    int trunc = 0, r;

    *out = NULL;
    *outlen = 0;
    *truncated = 0;
    r = parse_codings(encoding, list, &n);
    if (r < 0)
        return r;
    if (n == 0)
        list[n++] = CODING_IDENTITY;
    /* Codings are listed in the order they were applied: undo the last first. */
    while (n--) {
        outbuf_t o;

        r = decode_one(list[n], cur, curlen, max_out, &o);
        free(owned);
        if (r < 0) {
            free(o.p);
            return r;
        }
        trunc |= o.truncated;
        owned = o.p;
        cur = o.p;
        curlen = o.len;
    }
    if (!owned) {
        owned = malloc(1);
        if (!owned)
            return -ENOMEM;
    }
    *out = owned;
    *outlen = curlen;
    *truncated = trunc;
    return 0;
}

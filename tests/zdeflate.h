/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_TESTS_ZDEFLATE_H
#define MITMREC_TESTS_ZDEFLATE_H

/* For tests and fuzz targets: compressed bodies to feed the content decoders. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Compresses in with zlib at level 6: wbits 31 gzip, 15 zlib, -15 raw deflate. A malloc'd
   buffer of *outlen bytes, or NULL. */
static inline uint8_t *zdeflate(const void *in, size_t len, int wbits, size_t *outlen)
{
    z_stream zs;
    uLong cap;
    uint8_t *out;

    memset(&zs, 0, sizeof(zs));
    if (deflateInit2(&zs, 6, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    cap = deflateBound(&zs, (uLong)len) + 32;
    if (!(out = malloc(cap))) {
        deflateEnd(&zs);
        return NULL;
    }
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END) {
        deflateEnd(&zs);
        free(out);
        return NULL;
    }
    *outlen = cap - zs.avail_out;
    deflateEnd(&zs);
    return out;
}

#endif

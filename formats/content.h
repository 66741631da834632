/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_FORMATS_CONTENT_H
#define MITMREC_FORMATS_CONTENT_H

#include <stddef.h>
#include <stdint.h>

/*
 * Content-Encoding decoding for the HAR: "gzip", "x-gzip", "deflate" (zlib or
 * raw deflate, as browsers accept both), "br" (Brotli), "zstd", "identity". A comma-separated list
 * is undone in reverse order.
 *
 * On success *out is a malloc'd buffer the caller frees, holding at most
 * max_out bytes (*truncated set when there was more). Returns 0, -ENOTSUP for
 * an encoding it does not know, -EBADMSG for corrupt data, -ENOMEM.
 */
int content_decode(const char *encoding, const uint8_t *in, size_t len, size_t max_out,
                   uint8_t **out, size_t *outlen, int *truncated);

#endif

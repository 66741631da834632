/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <brotli/encode.h>
#include <zlib.h>
#include <zstd.h>

#include "check.h"
#include "content.h"

static uint8_t plain[200000];

static void check_decodes(const char *enc, const uint8_t *data, size_t len, size_t max,
                          size_t want_len, int want_trunc)
{
    uint8_t *out = NULL;
    size_t outlen = 0;
    int trunc = -1;

    CHECK_EQ_INT(content_decode(enc, data, len, max, &out, &outlen, &trunc), 0);
    CHECK_EQ_INT(outlen, want_len);
    CHECK_EQ_INT(trunc, want_trunc);
    CHECK(out && memcmp(out, plain, outlen) == 0);
    free(out);
}

int main(void)
{
    size_t blen = BrotliEncoderMaxCompressedSize(sizeof(plain)), zlen;
    uint8_t *br = malloc(blen), *zs = malloc(ZSTD_compressBound(sizeof(plain)));
    uint8_t *out = NULL, garbage[64];
    size_t outlen;
    int trunc;

    /* Text with some variety, so the codecs have work. */
    for (size_t i = 0; i < sizeof(plain); i++)
        plain[i] = (uint8_t)("mitmrec records what programs say "[i % 34] + (i / 997) % 3);
    CHECK(BrotliEncoderCompress(5, 22, BROTLI_MODE_TEXT, sizeof(plain), plain, &blen, br));
    zlen = ZSTD_compress(zs, ZSTD_compressBound(sizeof(plain)), plain, sizeof(plain), 3);
    CHECK(!ZSTD_isError(zlen));

    check_decodes("br", br, blen, 16u << 20, sizeof(plain), 0);
    check_decodes("BR", br, blen, 16u << 20, sizeof(plain), 0);
    check_decodes("zstd", zs, zlen, 16u << 20, sizeof(plain), 0);
    /* The bound: what fits is kept, and the rest is flagged. */
    check_decodes("br", br, blen, 1000, 1000, 1);
    check_decodes("zstd", zs, zlen, 1000, 1000, 1);
    /* A cut stream gives what was decoded so far, flagged. */
    out = NULL;
    CHECK_EQ_INT(content_decode("zstd", zs, zlen / 2, 16u << 20, &out, &outlen, &trunc), 0);
    CHECK(trunc == 1 && outlen < sizeof(plain) && memcmp(out, plain, outlen) == 0);
    free(out);
    out = NULL;
    CHECK_EQ_INT(content_decode("br", br, blen / 2, 16u << 20, &out, &outlen, &trunc), 0);
    CHECK(trunc == 1 && outlen < sizeof(plain) && memcmp(out, plain, outlen) == 0);
    free(out);
    /* Garbage is an error, not a crash. */
    memset(garbage, 0xa5, sizeof(garbage));
    out = NULL;
    CHECK_EQ_INT(content_decode("zstd", garbage, sizeof(garbage), 1000, &out, &outlen, &trunc),
                 -EBADMSG);
    free(out);
    out = NULL;
    CHECK_EQ_INT(content_decode("br", garbage, sizeof(garbage), 1000, &out, &outlen, &trunc),
                 -EBADMSG);
    free(out);
    out = NULL;
    CHECK_EQ_INT(content_decode("compress", garbage, 4, 1000, &out, &outlen, &trunc), -ENOTSUP);
    free(out);
    free(br);
    free(zs);
    return check_done();
}

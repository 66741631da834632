/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer driver for tlsdec (and keylog_add_text). Input layout:
 *   byte 0      flags; bit 0: add the key log only after the first chunk
 *   bytes 1-2   key log length K, little endian
 *   K bytes     key log text
 *   chunks      u16 little endian header (bit 15: direction, bits 0-14:
 *               length), then that many bytes (fewer at the end of input)
 * Seeds from real sessions: fixtures/fuzz/tlsdec/, written by
 * "tests/formats/test_tlsdec --write-seeds DIR".
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "keylog.h"
#include "tlsdec.h"

struct state {
    size_t plain_bytes;
    unsigned sum;
    int infos;
};

static void on_plaintext(void *opaque, int dir, int type, const uint8_t *data, size_t len)
{
    struct state *st = opaque;
    if ((dir != 0 && dir != 1) || (type != TLSDEC_CT_ALERT && type != TLSDEC_CT_APPLICATION_DATA) ||
        len > TLSDEC_RECORD_MAX)
        __builtin_trap();
    for (size_t i = 0; i < len; i++) /* every byte must be readable */
        st->sum += data[i];
    st->plain_bytes += len;
}

static void on_info(void *opaque, const tlsdec_info_t *info)
{
    struct state *st = opaque;
    if (++st->infos > 1)
        __builtin_trap(); /* once per connection */
    st->sum += (unsigned)(info->sni ? strlen(info->sni) : 0);
    st->sum += (unsigned)(info->alpn ? strlen(info->alpn) : 0);
    st->sum += (unsigned)(info->cipher_name ? strlen(info->cipher_name) : 0);
    for (size_t i = 0; i < info->alpn_offered_len; i++)
        st->sum += info->alpn_offered[i];
}

static void on_error(void *opaque, int dir, const char *message)
{
    struct state *st = opaque;
    if (dir != 0 && dir != 1)
        __builtin_trap();
    st->sum += (unsigned)strlen(message);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    int flags = data[0];
    size_t klen = (size_t)data[1] | (size_t)data[2] << 8;
    const uint8_t *p = data + 3;
    size_t n = size - 3;
    if (klen > n)
        klen = n;
    const char *ktext = (const char *)p;
    p += klen;
    n -= klen;

    keylog_t *kl = keylog_new();
    if (!kl)
        return 0;
    if (!(flags & 1))
        keylog_add_text(kl, ktext, klen);
    struct state st = {0};
    static const tlsdec_callbacks_t cbs = {on_plaintext, on_info, on_error};
    tlsdec_t *t = tlsdec_new(kl, &cbs, &st);
    if (!t) {
        keylog_free(kl);
        return 0;
    }
    bool first = true;
    while (n >= 2) {
        unsigned h = (unsigned)p[0] | (unsigned)p[1] << 8;
        size_t len = h & 0x7fff;
        p += 2;
        n -= 2;
        if (len > n)
            len = n;
        if (tlsdec_feed(t, (int)(h >> 15), p, len) != 0)
            __builtin_trap();
        p += len;
        n -= len;
        if (first && (flags & 1))
            keylog_add_text(kl, ktext, klen);
        first = false;
    }
    tlsdec_free(t);
    keylog_free(kl);
    return 0;
}

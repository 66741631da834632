/* SPDX-License-Identifier: MIT */
#include "keylog.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/rand.h>

/*
 * Secrets live in one array of fixed-size entries, found through an
 * open-addressing index of entry numbers (linear probing, at most half full).
 * Client randoms come from capture files, which an attacker may write, so the
 * index hash is SipHash-2-4 with a per-store random key: colliding randoms
 * cannot be precomputed.
 */

struct kl_entry {
    uint8_t random[KEYLOG_RANDOM_LEN];
    uint8_t label;
    uint8_t len;
    uint8_t secret[KEYLOG_SECRET_MAX];
};

struct keylog {
    struct kl_entry *entries;
    size_t count, cap; /* entries used and allocated */
    size_t max;        /* bound on count */
    uint32_t *index;   /* entry number + 1; 0 = empty slot */
    size_t index_size; /* a power of two */
    uint64_t k0, k1;   /* SipHash key */
    keylog_stats_t stats;
};

static const char *const label_names[KEYLOG_LABEL_COUNT] = {
    [KEYLOG_CLIENT_RANDOM] = "CLIENT_RANDOM",
    [KEYLOG_CLIENT_EARLY_TRAFFIC_SECRET] = "CLIENT_EARLY_TRAFFIC_SECRET",
    [KEYLOG_CLIENT_HANDSHAKE_TRAFFIC_SECRET] = "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    [KEYLOG_SERVER_HANDSHAKE_TRAFFIC_SECRET] = "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    [KEYLOG_CLIENT_TRAFFIC_SECRET_0] = "CLIENT_TRAFFIC_SECRET_0",
    [KEYLOG_SERVER_TRAFFIC_SECRET_0] = "SERVER_TRAFFIC_SECRET_0",
    [KEYLOG_EXPORTER_SECRET] = "EXPORTER_SECRET",
    [KEYLOG_EARLY_EXPORTER_SECRET] = "EARLY_EXPORTER_SECRET",
};

const char *keylog_label_name(keylog_label_t label)
{
    if ((unsigned)label >= KEYLOG_LABEL_COUNT)
        return NULL;
    return label_names[label];
}

static uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static uint64_t load64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void sipround(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = rotl(v[1], 13) ^ v[0];
    v[0] = rotl(v[0], 32);
    v[2] += v[3];
    v[3] = rotl(v[3], 16) ^ v[2];
    v[0] += v[3];
    v[3] = rotl(v[3], 21) ^ v[0];
    v[2] += v[1];
    v[1] = rotl(v[1], 17) ^ v[2];
    v[2] = rotl(v[2], 32);
}

/* SipHash-2-4 of the label byte followed by the 32-byte random (33 bytes). */
static uint64_t kl_hash(const keylog_t *kl, uint8_t label, const uint8_t *random)
{
    uint8_t m[40] = {0};
    m[0] = label;
    memcpy(m + 1, random, KEYLOG_RANDOM_LEN);
    m[39] = 33; /* message length in the last byte, as SipHash pads */
    uint64_t v[4] = {kl->k0 ^ 0x736f6d6570736575ull, kl->k1 ^ 0x646f72616e646f6dull,
                     kl->k0 ^ 0x6c7967656e657261ull, kl->k1 ^ 0x7465646279746573ull};
    for (size_t i = 0; i < sizeof m; i += 8) {
        uint64_t w = load64(m + i);
        v[3] ^= w;
        sipround(v);
        sipround(v);
        v[0] ^= w;
    }
    v[2] ^= 0xff;
    for (int i = 0; i < 4; i++)
        sipround(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

keylog_t *keylog_new_max(size_t max_entries)
{
    if (max_entries == 0 || max_entries >= UINT32_MAX / 4)
        return NULL;
    keylog_t *kl = calloc(1, sizeof *kl);
    if (!kl)
        return NULL;
    kl->max = max_entries;
    uint8_t key[16];
    if (RAND_bytes(key, sizeof key) == 1) {
        kl->k0 = load64(key);
        kl->k1 = load64(key + 8);
    } else {
        /* Without randomness the table still works, only predictably. */
        ERR_clear_error();
        kl->k0 = (uint64_t)(uintptr_t)kl * 0x9e3779b97f4a7c15ull;
        kl->k1 = ~kl->k0;
    }
    return kl;
}

keylog_t *keylog_new(void)
{
    return keylog_new_max(KEYLOG_MAX_ENTRIES);
}

void keylog_free(keylog_t *kl)
{
    if (!kl)
        return;
    free(kl->entries);
    free(kl->index);
    free(kl);
}

/* The index slot holding (label, random), or the empty slot where it would go. */
static size_t kl_slot(const keylog_t *kl, uint8_t label, const uint8_t *random)
{
    size_t mask = kl->index_size - 1;
    size_t i = (size_t)kl_hash(kl, label, random) & mask;
    for (;;) {
        uint32_t e = kl->index[i];
        if (e == 0)
            return i;
        const struct kl_entry *en = &kl->entries[e - 1];
        if (en->label == label && memcmp(en->random, random, KEYLOG_RANDOM_LEN) == 0)
            return i;
        i = (i + 1) & mask;
    }
}

/* Makes room for one more entry: grows the array and keeps the index at most half full. */
static int kl_reserve(keylog_t *kl)
{
    if (kl->count == kl->cap) {
        size_t ncap = kl->cap ? kl->cap * 2 : 64;
        if (ncap > kl->max)
            ncap = kl->max;
        struct kl_entry *n = realloc(kl->entries, ncap * sizeof *n);
        if (!n)
            return -ENOMEM;
        kl->entries = n;
        kl->cap = ncap;
    }
    if ((kl->count + 1) * 2 > kl->index_size) {
        size_t nsize = kl->index_size ? kl->index_size * 2 : 128;
        uint32_t *old = kl->index;
        size_t oldsize = kl->index_size;
        kl->index = calloc(nsize, sizeof *kl->index);
        if (!kl->index) {
            kl->index = old;
            return -ENOMEM;
        }
        kl->index_size = nsize;
        for (size_t i = 0; i < oldsize; i++) {
            if (old[i]) {
                const struct kl_entry *en = &kl->entries[old[i] - 1];
                kl->index[kl_slot(kl, en->label, en->random)] = old[i];
            }
        }
        free(old);
    }
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes 2*n hex digits into n bytes; false on a non-hex digit. */
static bool unhex(const char *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Splits off the next blank-separated field of [*p, end); false when there is none. */
static bool next_field(const char **p, const char *end, const char **f, size_t *flen)
{
    const char *s = *p;
    while (s < end && is_blank(*s))
        s++;
    if (s == end)
        return false;
    const char *e = s;
    while (e < end && !is_blank(*e))
        e++;
    *f = s;
    *flen = (size_t)(e - s);
    *p = e;
    return true;
}

/* Stores one secret. Returns 1 if stored, 0 if already known, -ENOSPC, -ENOMEM. */
static int kl_store(keylog_t *kl, uint8_t label, const uint8_t *random, const uint8_t *secret,
                    size_t len)
{
    if (kl->index_size) {
        uint32_t e = kl->index[kl_slot(kl, label, random)];
        if (e) {
            const struct kl_entry *en = &kl->entries[e - 1];
            if (en->len == len && memcmp(en->secret, secret, len) == 0)
                kl->stats.duplicates++;
            else
                kl->stats.conflicts++;
            return 0;
        }
    }
    if (kl->count >= kl->max) {
        kl->stats.dropped++;
        return -ENOSPC;
    }
    int rc = kl_reserve(kl);
    if (rc < 0)
        return rc;
    struct kl_entry *en = &kl->entries[kl->count];
    memset(en, 0, sizeof *en);
    memcpy(en->random, random, KEYLOG_RANDOM_LEN);
    en->label = label;
    en->len = (uint8_t)len;
    memcpy(en->secret, secret, len);
    kl->count++;
    kl->index[kl_slot(kl, label, random)] = (uint32_t)kl->count;
    kl->stats.entries++;
    return 1;
}

/* Parses one line without its "\n". Same returns as kl_store; 0 for skipped lines. */
static int kl_line(keylog_t *kl, const char *s, const char *end)
{
    while (end > s && (end[-1] == '\r' || is_blank(end[-1])))
        end--;
    const char *p = s, *f[3];
    size_t flen[3];
    if (!next_field(&p, end, &f[0], &flen[0]) || f[0][0] == '#')
        return 0;
    int label = -1;
    for (int i = 0; i < KEYLOG_LABEL_COUNT; i++) {
        if (strlen(label_names[i]) == flen[0] && memcmp(label_names[i], f[0], flen[0]) == 0)
            label = i;
    }
    if (label < 0) {
        kl->stats.unknown++;
        return 0;
    }
    const char *extra;
    size_t extralen;
    uint8_t random[KEYLOG_RANDOM_LEN], secret[KEYLOG_SECRET_MAX];
    if (!next_field(&p, end, &f[1], &flen[1]) || !next_field(&p, end, &f[2], &flen[2]) ||
        next_field(&p, end, &extra, &extralen) || flen[1] != 2 * KEYLOG_RANDOM_LEN ||
        flen[2] == 0 || flen[2] % 2 || flen[2] > 2 * KEYLOG_SECRET_MAX ||
        !unhex(f[1], KEYLOG_RANDOM_LEN, random) || !unhex(f[2], flen[2] / 2, secret)) {
        kl->stats.malformed++;
        return 0;
    }
    return kl_store(kl, (uint8_t)label, random, secret, flen[2] / 2);
}

int keylog_add_text(keylog_t *kl, const char *text, size_t len)
{
    if (!kl || (!text && len))
        return -EINVAL;
    const char *p = text, *end = text + len;
    int stored = 0;
    bool full = false;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        kl->stats.lines++;
        int rc = kl_line(kl, p, le);
        if (rc == -ENOMEM)
            return rc;
        if (rc == -ENOSPC)
            full = true;
        else if (rc > 0 && stored < INT32_MAX)
            stored++;
        p = nl ? nl + 1 : end;
    }
    return full ? -ENOSPC : stored;
}

int keylog_find(const keylog_t *kl, keylog_label_t label,
                const uint8_t client_random[KEYLOG_RANDOM_LEN], uint8_t *out, size_t *outlen)
{
    if (!kl || (unsigned)label >= KEYLOG_LABEL_COUNT || !client_random || !outlen)
        return -EINVAL;
    if (!kl->index_size)
        return -ENOENT;
    uint32_t e = kl->index[kl_slot(kl, (uint8_t)label, client_random)];
    if (!e)
        return -ENOENT;
    const struct kl_entry *en = &kl->entries[e - 1];
    if (*outlen < en->len || (!out && en->len)) {
        *outlen = en->len;
        return -ENOBUFS;
    }
    memcpy(out, en->secret, en->len);
    *outlen = en->len;
    return 0;
}

void keylog_get_stats(const keylog_t *kl, keylog_stats_t *stats)
{
    if (kl && stats)
        *stats = kl->stats;
}

/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_FORMATS_KEYLOG_H
#define MITMREC_FORMATS_KEYLOG_H

#include <stddef.h>
#include <stdint.h>

/*
 * A store of TLS secrets read from NSS key log lines ("LABEL <client random
 * hex> <secret hex>"), as OpenSSL's keylog callback and pcapng Decryption
 * Secrets Blocks carry them. Secrets are found by label and 32-byte client
 * random. Pure memory: no file I/O.
 *
 * Functions that return int return 0 (or the documented non-negative value)
 * on success and a negative errno on failure.
 */

#define KEYLOG_RANDOM_LEN 32          /* client random, bytes */
#define KEYLOG_SECRET_MAX 64          /* longest secret kept, bytes */
#define KEYLOG_MAX_ENTRIES (1u << 20) /* default bound on stored secrets */

typedef enum keylog_label {
    KEYLOG_CLIENT_RANDOM = 0, /* TLS 1.2 master secret */
    KEYLOG_CLIENT_EARLY_TRAFFIC_SECRET,
    KEYLOG_CLIENT_HANDSHAKE_TRAFFIC_SECRET,
    KEYLOG_SERVER_HANDSHAKE_TRAFFIC_SECRET,
    KEYLOG_CLIENT_TRAFFIC_SECRET_0,
    KEYLOG_SERVER_TRAFFIC_SECRET_0,
    KEYLOG_EXPORTER_SECRET,
    KEYLOG_EARLY_EXPORTER_SECRET,
    KEYLOG_LABEL_COUNT
} keylog_label_t;

/* What keylog_add_text has seen so far; counters only grow. */
typedef struct keylog_stats {
    size_t entries;    /* secrets stored */
    size_t lines;      /* lines read, blank lines and comments included */
    size_t malformed;  /* known label, but bad fields or hex: line ignored */
    size_t unknown;    /* unknown label (e.g. "RSA"): line ignored */
    size_t duplicates; /* the same secret again: ignored */
    size_t conflicts;  /* another secret for a stored label and random: the first wins */
    size_t dropped;    /* not stored because the store was full */
} keylog_stats_t;

typedef struct keylog keylog_t;

/* Creates an empty store bounded to KEYLOG_MAX_ENTRIES secrets; NULL when out of memory. */
keylog_t *keylog_new(void);

/* The same with another bound (at least 1). NULL when out of memory or max_entries is 0. */
keylog_t *keylog_new_max(size_t max_entries);

/* Frees the store. keylog_free(NULL) is a no-op. */
void keylog_free(keylog_t *kl);

/*
 * Parses len bytes of key log text (text is borrowed, need not be
 * NUL-terminated) and stores the secrets of known labels. Lines end in "\n"
 * or "\r\n"; the text should hold whole lines: a last line without "\n" is
 * taken as complete. Blank lines, '#' comments and unknown labels are skipped;
 * malformed lines are skipped and counted (see keylog_get_stats), they are
 * not a failure.
 * Returns the number of new secrets stored, -ENOSPC when some secret was
 * dropped because the store is full (the others were stored), or -ENOMEM
 * (lines before the failing one were stored).
 */
int keylog_add_text(keylog_t *kl, const char *text, size_t len);

/*
 * Copies the secret stored for (label, client_random) to out. *outlen is the
 * size of out on entry and the secret's length on return.
 * Returns 0, -ENOENT when there is none, -ENOBUFS when out is too small
 * (*outlen is then set to the length needed), -EINVAL for a bad label.
 */
int keylog_find(const keylog_t *kl, keylog_label_t label,
                const uint8_t client_random[KEYLOG_RANDOM_LEN], uint8_t *out, size_t *outlen);

/* Fills *stats with the counters. */
void keylog_get_stats(const keylog_t *kl, keylog_stats_t *stats);

/* The label as it is written in key log lines, or NULL for a bad value. Static storage. */
const char *keylog_label_name(keylog_label_t label);

#endif

/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_FORMATS_HARREPAIR_H
#define MITMREC_FORMATS_HARREPAIR_H

#include <stddef.h>
#include <stdint.h>

/*
 * Finds how much of a HAR that was cut short (a recorder killed while
 * writing) can be kept: the bytes up to the end of its last complete entry,
 * to which "]}}" makes a valid file again. A streaming scan of the JSON
 * structure (strings and escapes understood), fed in chunks.
 */

typedef struct har_scan {
    uint64_t off; /* bytes seen */
    int depth;
    int in_string, escape;
    int entries_depth;      /* depth inside the entries array, 0 before it */
    int64_t entries_start;  /* offset just after "entries":[ */
    int64_t last_entry_end; /* offset just after the last complete entry */
    int64_t doc_end;        /* offset just after the closing brace, or -1 */
    int after_entries_key;  /* 1: "entries" seen, 2: and its colon */
    char key[16];           /* the string just closed at depth 2 (cut) */
    size_t key_len;
    int key_at_depth2;
    int bad;          /* not JSON as a HAR writer makes it */
    uint64_t entries; /* complete entries seen */
} har_scan_t;

void har_scan_init(har_scan_t *s);
void har_scan_feed(har_scan_t *s, const uint8_t *buf, size_t len);

/*
 * After the last feed: 1 when the document is complete (nothing to repair),
 * 0 when it can be repaired by keeping *keep bytes and appending "]}}",
 * -EBADMSG when no entries array was found (not a HAR we can repair).
 */
int har_scan_result(const har_scan_t *s, uint64_t *keep);

#endif

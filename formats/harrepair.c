/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "harrepair.h"

void har_scan_init(har_scan_t *s)
{
    memset(s, 0, sizeof(*s));
    s->entries_start = -1;
    s->last_entry_end = -1;
    s->doc_end = -1;
}

void har_scan_feed(har_scan_t *s, const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len && !s->bad; i++, s->off++) {
        uint8_t c = buf[i];

        if (s->in_string) {
            if (s->escape) {
                s->escape = 0;
            } else if (c == '\\') {
                s->escape = 1;
            } else if (c == '"') {
                s->in_string = 0;
                s->key_at_depth2 = s->depth == 2;
            } else if (s->depth == 2 && s->key_len < sizeof(s->key) - 1) {
                s->key[s->key_len++] = (char)c;
            }
            continue;
        }
        /* A HAR is one object: outside it, only white space. ("]}}" closes nothing else:
           fuzz_harrepair had a cut [{"entries":[... and a "0,{..." "repaired" into text
           that is not JSON.) */
        if (s->depth == 0 && c != ' ' && c != '\n' && c != '\r' && c != '\t' &&
            (c != '{' || s->doc_end >= 0)) {
            s->bad = 1;
            continue;
        }
        switch (c) {
        case '"':
            s->in_string = 1;
            s->key_len = 0;
            s->key_at_depth2 = 0;
            if (s->after_entries_key)
                s->after_entries_key = 0;
            break;
        case ':':
            if (s->key_at_depth2 && s->key_len == 7 && memcmp(s->key, "entries", 7) == 0)
                s->after_entries_key = 2;
            s->key_at_depth2 = 0;
            break;
        case '{':
        case '[':
            s->depth++;
            if (c == '[' && s->after_entries_key == 2 && s->depth == 3) {
                s->entries_depth = 3;
                s->entries_start = (int64_t)s->off + 1;
            }
            s->after_entries_key = 0;
            break;
        case '}':
        case ']':
            if (s->depth == 0) {
                s->bad = 1;
                break;
            }
            s->depth--;
            if (c == '}' && s->entries_depth && s->depth == s->entries_depth) {
                s->entries++;
                s->last_entry_end = (int64_t)s->off + 1;
            }
            if (c == ']' && s->entries_depth && s->depth == s->entries_depth - 1)
                s->entries_depth = 0;
            if (s->depth == 0)
                s->doc_end = (int64_t)s->off + 1;
            break;
        default:
            if (c != ' ' && c != '\n' && c != '\r' && c != '\t' && c != ',')
                s->after_entries_key = 0;
            break;
        }
    }
}

int har_scan_result(const har_scan_t *s, uint64_t *keep)
{
    if (s->doc_end > 0 && s->entries_start > 0 && !s->in_string && s->depth == 0)
        return 1;
    if (s->entries_start < 0)
        return -EBADMSG;
    *keep = (uint64_t)(s->last_entry_end > 0 ? s->last_entry_end : s->entries_start);
    return 0;
}

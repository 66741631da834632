/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer driver for the scan that repairs a HAR cut short (formats/harrepair.c), which
 * `mitmrec --repair` runs over whatever file it is given.
 *
 * Input: two bytes, where to cut (big-endian, modulo the document's length + 1); one byte,
 * the chunk size the scan is fed in (0: all at once); then the document.
 *
 * Contract checked: the scan's result does not depend on how it is fed; it is 1, 0 or
 * -EBADMSG, and a kept length is within what was seen. When the whole document is JSON
 * (cJSON parses it), its repair is JSON too: whatever the cut, the kept bytes with "]}}"
 * after them parse, and hold as many entries as the scan counted complete.
 *
 * Build (tests/slow/fuzz.sh does it): clang -g -O1 -fsanitize=fuzzer,address,undefined
 *   -Iformats tests/fuzz/fuzz_harrepair.c formats/harrepair.c -lcjson
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harrepair.h"

static int scan(const uint8_t *p, size_t len, size_t chunk, har_scan_t *s, uint64_t *keep)
{
    har_scan_init(s);
    if (!chunk)
        chunk = len ? len : 1;
    for (size_t off = 0; off < len; off += chunk)
        har_scan_feed(s, p + off, len - off < chunk ? len - off : chunk);
    *keep = UINT64_MAX;
    return har_scan_result(s, keep);
}

/* The entries of a repaired document: the objects in every "entries" array at depth 3, as
   the scan counts them. */
static int count_entries(const cJSON *root)
{
    int n = 0;
    const cJSON *o, *e;

    cJSON_ArrayForEach(o, root)
    {
        if (!cJSON_IsObject(o))
            continue;
        cJSON_ArrayForEach(e, o)
        {
            const cJSON *x;

            if (!e->string || strcmp(e->string, "entries") != 0 || !cJSON_IsArray(e))
                continue;
            cJSON_ArrayForEach(x, e)
            {
                n += cJSON_IsObject(x);
            }
        }
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *doc;
    size_t len, cut, chunk;
    har_scan_t a, b;
    uint64_t ka, kb;
    int ra, rb;
    cJSON *whole;

    if (size < 3)
        return 0;
    doc = data + 3;
    len = size - 3;
    cut = ((size_t)data[0] << 8 | data[1]) % (len + 1);
    chunk = data[2];

    ra = scan(doc, cut, 0, &a, &ka);
    rb = scan(doc, cut, chunk, &b, &kb);
    if (ra != rb || a.entries != b.entries || (ra == 0 && ka != kb))
        abort(); /* fed differently, found differently */
    if (ra != 1 && ra != 0 && ra != -EBADMSG)
        abort();
    if (ra == 0 && ka > cut)
        abort();

    /* The whole document is one JSON value, with nothing but white space after it. (cJSON
       takes any control character for white space, and in strings: JSON takes neither.) */
    for (size_t i = 0; i < len; i++)
        if (doc[i] < 0x20 && doc[i] != '\t' && doc[i] != '\n' && doc[i] != '\r')
            return 0;
    {
        const char *end = NULL;

        if (ra != 0 || !(whole = cJSON_ParseWithLengthOpts((const char *)doc, len, &end, 0)))
            return 0;
        cJSON_Delete(whole);
        while (end < (const char *)doc + len && strchr(" \t\r\n", *end) && *end)
            end++;
        if (end != (const char *)doc + len)
            return 0;
    }
    {
        char *fixed = malloc(ka + 4);
        cJSON *rep;

        if (!fixed)
            return 0;
        memcpy(fixed, doc, ka);
        memcpy(fixed + ka, "]}}", 4);
        rep = cJSON_ParseWithLength(fixed, ka + 3);
        if (!rep)
            abort(); /* a JSON document cut and repaired is no longer JSON */
        if (count_entries(rep) != (int)a.entries)
            abort();
        cJSON_Delete(rep);
        free(fixed);
    }
    return 0;
}

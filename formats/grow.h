/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_GROW_H
#define MITMREC_GROW_H

#include <stdlib.h>
#include <string.h>

/*
 * Makes the malloc'd buffer whose pointer is at bufp (a uint8_t ** or char **) hold at least
 * need bytes: its capacity *cap doubles, from first when it is 0, until it does. Returns 0,
 * or -1 with the buffer and *cap as they were when that would pass max (0: no limit) or
 * realloc fails. The pointer is read and written with memcpy, so any object pointer type
 * will do.
 */
static inline int mr_grow(void *bufp, size_t *cap, size_t need, size_t first, size_t max)
{
    void *p, *n;
    size_t c;

    if (need <= *cap)
        return 0;
    c = *cap ? *cap : first;
    while (c < need)
        c *= 2;
    if (max && c > max)
        return -1;
    memcpy(&p, bufp, sizeof(p));
    if (!(n = realloc(p, c)))
        return -1;
    memcpy(bufp, &n, sizeof(n));
    *cap = c;
    return 0;
}

#endif

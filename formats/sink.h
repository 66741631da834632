/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_FORMATS_SINK_H
#define MITMREC_FORMATS_SINK_H

#include <stddef.h>

/*
 * Where the writers in formats/ put their bytes. formats/ knows no files and
 * no sockets: the caller supplies this small vtable.
 *
 * write: append len bytes; returns 0 or a negative errno. The buffer is
 *   borrowed for the duration of the call only.
 * write_tail: optional (NULL when the sink cannot seek). Writes len bytes that
 *   keep the file valid as it stands (e.g. the closing "]}}" of a HAR), then
 *   positions the sink so that the next write overwrites them.
 */
typedef struct sink {
    int (*write)(void *opaque, const void *buf, size_t len);
    int (*write_tail)(void *opaque, const void *buf, size_t len);
    void *opaque;
} sink_t;

#endif

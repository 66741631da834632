/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_OUTFILE_H
#define MITMREC_OUTFILE_H

#include <stddef.h>

#include "sink.h"

/*
 * A buffered output file for the writers: created with mode 0600 (recordings
 * hold TLS secrets), "-" is stdout, a name ending in ".gz" is written through
 * zlib. Errors are sticky: after the first failed write (a full disk, say)
 * further writes are dropped and outfile_error() returns the error, so the
 * relay goes on and every byte already written stays valid.
 */

typedef struct outfile outfile_t;

/* Opens path for writing; on failure a one-line reason naming path goes into err. */
int outfile_open(const char *path, outfile_t **out, char *err, size_t errlen);

/* Empties the file (an existing one keeps its bytes until then). */
int outfile_begin(outfile_t *f);

/* Closes a file that will not be used, removing it when outfile_open created it. */
void outfile_discard(outfile_t *f);

/* Fills *s with this file as a sink (write_tail only for seekable plain files). */
void outfile_sink(outfile_t *f, sink_t *s);

/* Writes out the buffer (and a zlib sync flush). Returns 0 or the sticky error. */
int outfile_flush(outfile_t *f);

/* Flushes and closes; frees f. Returns 0 or the first error seen. */
int outfile_close(outfile_t *f);

/* 0, or the first write error (negative errno). */
int outfile_error(const outfile_t *f);

/* Bytes accepted so far, and the path (borrowed). */
unsigned long long outfile_bytes(const outfile_t *f);
const char *outfile_path(const outfile_t *f);

#endif

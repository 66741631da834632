/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_FORMATS_SPILL_H
#define MITMREC_FORMATS_SPILL_H

#include <stddef.h>
#include <stdint.h>

/*
 * The spill file: where the bytes of large bodies wait while their messages are
 * still being received, so that many concurrent large downloads do not hold their
 * bodies in memory (httpmsg.c uses it once spill_enable() was called).
 *
 * One unlinked file in a directory (O_TMPFILE, or a name removed at once where that is
 * not supported), opened at the first body that needs it. Each body's bytes are a list of
 * extents in it, each starting on a 4 KiB boundary, so that releasing a body frees its
 * blocks (FALLOC_FL_PUNCH_HOLE) and the file holds only what live bodies kept; when none
 * is left it is truncated to nothing.
 *
 * Process-wide and not thread-safe: call it from one thread.
 */

typedef struct spill_ext {
    uint64_t off;
    uint64_t len;
} spill_ext_t;

typedef struct spill_list {
    spill_ext_t *ext;
    size_t n, cap;
    uint64_t len; /* bytes in all extents */
} spill_list_t;

/*
 * Turns spilling on: bodies whose kept bytes would pass `at` go to a file in dir
 * (copied; NULL or "" is /tmp, so getenv("TMPDIR") can be passed as it is). on_error,
 * if not NULL, is called once, on the first failure to create or write the file;
 * spilling is then off for good and bodies stay in memory (nothing is lost). Returns 0,
 * or -ENOMEM. at = 0 turns spilling off.
 */
int spill_enable(const char *dir, size_t at,
                 void (*on_error)(int err, const char *dir, void *opaque), void *opaque);

/* Closes the file and forgets the settings. Lists still holding extents read nothing. */
void spill_disable(void);

/* The size past which bodies spill; 0 when spilling is off. */
size_t spill_threshold(void);

/*
 * Appends n bytes to l in the file. 0; -ENOMEM (l unchanged, spilling stays on); or
 * another -errno: the file failed, l is unchanged and spilling is off.
 */
int spill_append(spill_list_t *l, const void *p, size_t n);

/* Reads l's l->len bytes into out. 0 or -errno. */
int spill_read(const spill_list_t *l, uint8_t *out);

/* Frees l's extents in the file and its array; l is empty after. */
void spill_release(spill_list_t *l);

/* Bytes the file holds for live lists (each extent rounded up to 4 KiB). */
uint64_t spill_live(void);

#endif

/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_PATHS_H
#define MITMREC_PATHS_H

#include <stddef.h>

/* A file named on the command line, and the flag that named it. */
typedef struct path_use {
    const char *flag;
    const char *path; /* "-": standard input or output, no file */
} path_use_t;

/*
 * Checks that no output names a file that is an input (opening it for writing would empty
 * it before it is read) or another output, and that at most one output is standard output.
 * Files are the same when they are one inode, or, not existing yet, one name in the same
 * directory. Returns 0, or -EINVAL with a one-line reason in err.
 */
int paths_check(const path_use_t *out, int nout, const path_use_t *in, int nin, char *err,
                size_t errlen);

/* 1 when the two paths name one file: the same inode, or for files that do not exist yet
   the same name in the same directory. "-" (stdin, stdout) and NULL are no file. */
int paths_same_file(const char *x, const char *y);

/* The HAR that goes with a pcapng: OUT minus ".gz" and ".pcapng" (or ".pcap"), plus ".har".
   malloc'd; NULL when out of memory. */
char *paths_har_for(const char *pcapng);

/* 1 when path names an existing file that is neither a regular file nor a directory (a
   device such as /dev/null, a pipe, a socket): there is no place beside it for a HAR. */
int paths_is_special(const char *path);

#endif

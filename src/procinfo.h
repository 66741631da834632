/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_PROCINFO_H
#define MITMREC_PROCINFO_H

#include <stddef.h>
#include <stdint.h>

/* What a flow records of the process that made it, read from /proc/PID. */
typedef struct procinfo {
    uint32_t pid;
    char name[64];      /* /proc/PID/comm, or the executable's basename when longer */
    char exe[512];      /* /proc/PID/exe target; "" when unreadable */
    char cmdline[1024]; /* arguments joined by spaces, cut at the buffer size */
} procinfo_t;

/*
 * Fills pi for pid. comm is what the kernel kept (15 characters at most) and is
 * used as a fallback; a process that has exited keeps only what is given.
 * Returns 0, or -ESRCH when /proc/PID is gone (pi still holds pid and comm).
 */
int procinfo_read(uint32_t pid, const char *comm, procinfo_t *pi);

#endif

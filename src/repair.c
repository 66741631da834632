/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harrepair.h"
#include "log.h"
#include "repair.h"

int repair_har_file(const char *path, int quiet)
{
    static const char tail[] = "]}}\n";
    unsigned char buf[1 << 16];
    har_scan_t s;
    uint64_t keep = 0;
    ssize_t n;
    int fd = open(path, O_RDWR | O_CLOEXEC), rc;

    if (fd < 0) {
        log_error("cannot open %s: %s", path, strerror(errno));
        return 1;
    }
    har_scan_init(&s);
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        har_scan_feed(&s, buf, (size_t)n);
    if (n < 0) {
        log_error("reading %s: %s", path, strerror(errno));
        close(fd);
        return 1;
    }
    rc = har_scan_result(&s, &keep);
    if (rc == 1) {
        if (!quiet)
            fprintf(stderr, "mitmrec: %s is complete (%llu entries): nothing to repair\n", path,
                    (unsigned long long)s.entries);
        close(fd);
        return 0;
    }
    if (rc < 0) {
        log_error("%s: no HAR entries array found: not a HAR mitmrec can repair", path);
        close(fd);
        return 1;
    }
    if (ftruncate(fd, (off_t)keep) < 0 || pwrite(fd, tail, sizeof(tail) - 1, (off_t)keep) !=
                                              (ssize_t)(sizeof(tail) - 1) || fsync(fd) < 0) {
        log_error("repairing %s: %s", path, strerror(errno));
        close(fd);
        return 1;
    }
    close(fd);
    if (!quiet)
        fprintf(stderr, "mitmrec: repaired %s: kept %llu complete entries (%llu bytes)\n", path,
                (unsigned long long)(s.entries), (unsigned long long)keep);
    return 0;
}

/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "harrepair.h"
#include "log.h"
#include "repair.h"

static const char *entries(uint64_t n)
{
    return n == 1 ? "entry" : "entries";
}

/* What the scan of path found: 0 when *keep bytes are to be kept and closed, 1 when the HAR
   is complete (said unless quiet), -1 when it is none we can repair (said). */
static int verdict(const har_scan_t *s, const char *path, int quiet, uint64_t *keep)
{
    int rc = har_scan_result(s, keep);

    if (rc == 1) {
        if (!quiet)
            fprintf(stderr, "mitmrec: %s is complete (%llu %s): nothing to repair\n", path,
                    (unsigned long long)s->entries, entries(s->entries));
        return 1;
    }
    if (rc < 0) {
        log_error("%s: no HAR entries array found: not a HAR mitmrec can repair", path);
        return -1;
    }
    return 0;
}

/*
 * A gzipped HAR (--har x.har.gz) that a crash cut short: what decompresses (up to the last
 * flush) is scanned, then the kept bytes and the closing ones go to a new .gz beside it,
 * which replaces it. Returns as repair_har_file.
 */
static int repair_gz(const char *path, int quiet)
{
    static const char tail[] = "]}}\n";
    unsigned char buf[1 << 16];
    char tmp[4096];
    har_scan_t s;
    uint64_t keep = 0, left;
    struct stat sb;
    gzFile in = NULL, out = NULL;
    int n, rc, fd = -1, ok = 0, made = 0;

    if (stat(path, &sb) < 0 || !(in = gzopen(path, "rb"))) {
        log_error("cannot open %s: %s", path, strerror(errno ? errno : ENOMEM));
        return 1;
    }
    har_scan_init(&s);
    while ((n = gzread(in, buf, sizeof(buf))) > 0)
        har_scan_feed(&s, buf, (size_t)n);
    /* (a stream cut short reads as its end: that is the point) */
    if ((rc = verdict(&s, path, quiet, &keep)) != 0) {
        gzclose_r(in);
        return rc > 0 ? 0 : 1;
    }
    snprintf(tmp, sizeof(tmp), "%s.repair-XXXXXX", path);
    if ((fd = mkostemp(tmp, O_CLOEXEC)) >= 0) {
        made = 1;
        /* The repaired file takes the place of the original: its owner too, when we may
           (root, as under sudo). */
        if (fchown(fd, sb.st_uid, sb.st_gid) < 0 && errno != EPERM)
            log_warn("repairing %s: cannot keep its owner: %s", path, strerror(errno));
    }
    if (fd < 0 || fchmod(fd, sb.st_mode & 0777) < 0 || !(out = gzdopen(fd, "wb"))) {
        log_error("repairing %s: cannot write %s: %s", path, tmp, strerror(errno));
        goto done;
    }
    fd = -1; /* out has it */
    gzrewind(in);
    for (left = keep; left > 0;) {
        n = gzread(in, buf, left < sizeof(buf) ? (unsigned)left : (unsigned)sizeof(buf));
        if (n <= 0 || gzwrite(out, buf, (unsigned)n) != n)
            break;
        left -= (uint64_t)n;
    }
    if (left > 0 || gzwrite(out, tail, sizeof(tail) - 1) != (int)(sizeof(tail) - 1)) {
        log_error("repairing %s: cannot write %s", path, tmp);
        goto done;
    }
    rc = gzclose_w(out);
    out = NULL;
    if (rc != Z_OK || rename(tmp, path) < 0) {
        log_error("repairing %s: cannot write %s: %s", path, tmp,
                  rc != Z_OK ? "write error" : strerror(errno));
        goto done;
    }
    made = 0;
    ok = 1;
    if (!quiet)
        fprintf(stderr, "mitmrec: repaired %s: kept %llu complete %s (%llu bytes uncompressed)\n",
                path, (unsigned long long)s.entries, entries(s.entries), (unsigned long long)keep);
done:
    if (out)
        gzclose_w(out);
    if (fd >= 0)
        close(fd);
    if (made)
        unlink(tmp);
    gzclose_r(in);
    return ok ? 0 : 1;
}

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
    if (pread(fd, buf, 2, 0) == 2 && buf[0] == 0x1f && buf[1] == 0x8b) {
        close(fd);
        return repair_gz(path, quiet);
    }
    har_scan_init(&s);
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        har_scan_feed(&s, buf, (size_t)n);
    if (n < 0) {
        log_error("reading %s: %s", path, strerror(errno));
        close(fd);
        return 1;
    }
    if ((rc = verdict(&s, path, quiet, &keep)) != 0) {
        close(fd);
        return rc > 0 ? 0 : 1;
    }
    if (ftruncate(fd, (off_t)keep) < 0 ||
        pwrite(fd, tail, sizeof(tail) - 1, (off_t)keep) != (ssize_t)(sizeof(tail) - 1) ||
        fsync(fd) < 0) {
        log_error("repairing %s: %s", path, strerror(errno));
        close(fd);
        return 1;
    }
    close(fd);
    if (!quiet)
        fprintf(stderr, "mitmrec: repaired %s: kept %llu complete %s (%llu bytes)\n", path,
                (unsigned long long)s.entries, entries(s.entries), (unsigned long long)keep);
    return 0;
}

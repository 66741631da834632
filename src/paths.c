/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "paths.h"

/* "dir/name" with dir resolved, or the path as given when dir does not resolve. */
static void canonical(const char *path, char *out, size_t outlen)
{
    char a[PATH_MAX], b[PATH_MAX], dir[PATH_MAX];

    snprintf(a, sizeof(a), "%s", path);
    snprintf(b, sizeof(b), "%s", path);
    if (realpath(dirname(a), dir))
        snprintf(out, outlen, "%s/%s", dir, basename(b));
    else
        snprintf(out, outlen, "%s", path);
}

int paths_same_file(const char *x, const char *y)
{
    struct stat sx, sy;
    char cx[2 * PATH_MAX], cy[2 * PATH_MAX];

    if (!x || !y || strcmp(x, "-") == 0 || strcmp(y, "-") == 0)
        return 0;
    if (stat(x, &sx) == 0 && stat(y, &sy) == 0)
        return sx.st_dev == sy.st_dev && sx.st_ino == sy.st_ino;
    canonical(x, cx, sizeof(cx));
    canonical(y, cy, sizeof(cy));
    return strcmp(cx, cy) == 0;
}

int paths_check(const path_use_t *out, int nout, const path_use_t *in, int nin, char *err,
                size_t errlen)
{
    for (int i = 0; i < nout; i++) {
        for (int j = 0; j < nin; j++)
            if (paths_same_file(out[i].path, in[j].path)) {
                snprintf(err, errlen, "%s %s would overwrite %s %s", out[i].flag, out[i].path,
                         in[j].flag, in[j].path);
                return -EINVAL;
            }
        for (int j = i + 1; j < nout; j++)
            if (strcmp(out[i].path, "-") == 0 && strcmp(out[j].path, "-") == 0) {
                snprintf(err, errlen, "%s and %s both write to standard output", out[i].flag,
                         out[j].flag);
                return -EINVAL;
            } else if (paths_same_file(out[i].path, out[j].path)) {
                snprintf(err, errlen, "%s and %s name the same file (%s)", out[i].flag, out[j].flag,
                         out[j].path);
                return -EINVAL;
            }
    }
    return 0;
}

char *paths_har_for(const char *out)
{
    size_t n = strlen(out);
    char *p;

    if (n > 3 && strcmp(out + n - 3, ".gz") == 0)
        n -= 3;
    if (n > 7 && strncmp(out + n - 7, ".pcapng", 7) == 0)
        n -= 7;
    else if (n > 5 && strncmp(out + n - 5, ".pcap", 5) == 0)
        n -= 5;
    p = malloc(n + 5);
    if (p) {
        memcpy(p, out, n);
        memcpy(p + n, ".har", 5);
    }
    return p;
}

int paths_is_special(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode);
}

/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "procinfo.h"

static ssize_t read_file(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -errno;
    n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    return n;
}

int procinfo_read(uint32_t pid, const char *comm, procinfo_t *pi)
{
    char path[64], buf[1024];
    ssize_t n;
    const char *base;

    memset(pi, 0, sizeof(*pi));
    pi->pid = pid;
    if (comm)
        snprintf(pi->name, sizeof(pi->name), "%s", comm);
    snprintf(path, sizeof(path), "/proc/%u/comm", pid);
    if ((n = read_file(path, buf, sizeof(buf))) < 0)
        return -ESRCH;
    buf[strcspn(buf, "\n")] = '\0';
    snprintf(pi->name, sizeof(pi->name), "%.63s", buf);
    snprintf(path, sizeof(path), "/proc/%u/exe", pid);
    n = readlink(path, pi->exe, sizeof(pi->exe) - 1);
    if (n > 0) {
        pi->exe[n] = '\0';
        /* comm is cut at 15 characters; the executable's name is the full one. */
        base = strrchr(pi->exe, '/');
        base = base ? base + 1 : pi->exe;
        if (strlen(pi->name) == 15 && strncmp(base, pi->name, 15) == 0)
            snprintf(pi->name, sizeof(pi->name), "%.63s", base);
    } else {
        pi->exe[0] = '\0';
    }
    snprintf(path, sizeof(path), "/proc/%u/cmdline", pid);
    n = read_file(path, pi->cmdline, sizeof(pi->cmdline));
    if (n > 0) {
        for (ssize_t i = 0; i < n - 1; i++)
            if (pi->cmdline[i] == '\0')
                pi->cmdline[i] = ' ';
    }
    return 0;
}

/* SPDX-License-Identifier: MIT */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* O_TMPFILE, fallocate, mkostemp */
#endif
#include "spill.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SPILL_ALIGN 4096u

static struct {
    char *dir;
    size_t at;     /* 0: off */
    int fd;        /* -1 until the first spill */
    uint64_t end;  /* where the next extent goes (aligned) */
    uint64_t live; /* aligned bytes of live extents */
    void (*on_error)(int err, const char *dir, void *opaque);
    void *opaque;
} st = {.fd = -1};

static uint64_t aligned(uint64_t n)
{
    return (n + SPILL_ALIGN - 1) & ~(uint64_t)(SPILL_ALIGN - 1);
}

int spill_enable(const char *dir, size_t at,
                 void (*on_error)(int err, const char *dir, void *opaque), void *opaque)
{
    char *d = NULL;

    if (at && !(d = strdup(dir && *dir ? dir : "/tmp")))
        return -ENOMEM;
    spill_disable();
    st.dir = d;
    st.at = d ? at : 0;
    st.on_error = on_error;
    st.opaque = opaque;
    return 0;
}

void spill_disable(void)
{
    if (st.fd >= 0)
        close(st.fd);
    free(st.dir);
    st.dir = NULL;
    st.fd = -1;
    st.at = 0;
    st.end = st.live = 0;
    st.on_error = NULL;
    st.opaque = NULL;
}

size_t spill_threshold(void)
{
    return st.at;
}

uint64_t spill_live(void)
{
    return st.live;
}

static int open_file(void)
{
    int fd = open(st.dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

    /* Filesystems without O_TMPFILE: a name, removed at once. */
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        size_t n = strlen(st.dir) + sizeof("/.mitmrec-spill-XXXXXX");
        char *path = malloc(n);

        if (!path)
            return -ENOMEM;
        snprintf(path, n, "%s/.mitmrec-spill-XXXXXX", st.dir);
        fd = mkostemp(path, O_CLOEXEC);
        if (fd >= 0)
            unlink(path);
        free(path);
    }
    return fd < 0 ? -errno : fd;
}

/* The file failed: no more spilling; what was written stays readable. */
static int fail(int err)
{
    st.at = 0;
    if (st.on_error)
        st.on_error(-err, st.dir, st.opaque);
    st.on_error = NULL;
    return err;
}

int spill_append(spill_list_t *l, const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t off;
    size_t done = 0;

    if (!st.at)
        return -ENOSPC;
    if (st.fd < 0) {
        int fd = open_file();

        if (fd == -ENOMEM)
            return fd;
        if (fd < 0)
            return fail(fd);
        st.fd = fd;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        spill_ext_t *e = realloc(l->ext, cap * sizeof(*e));

        if (!e)
            return -ENOMEM;
        l->ext = e;
        l->cap = cap;
    }
    off = st.end;
    while (done < n) {
        ssize_t w = pwrite(st.fd, b + done, n - done, (off_t)(off + done));

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return fail(w < 0 ? -errno : -EIO);
        done += (size_t)w;
    }
    st.end = off + aligned(n);
    st.live += aligned(n);
    /* Whole blocks written right after the list's last extent extend it. */
    if (l->n && l->ext[l->n - 1].len % SPILL_ALIGN == 0 &&
        l->ext[l->n - 1].off + l->ext[l->n - 1].len == off) {
        l->ext[l->n - 1].len += n;
    } else {
        l->ext[l->n].off = off;
        l->ext[l->n].len = n;
        l->n++;
    }
    l->len += n;
    return 0;
}

int spill_read(const spill_list_t *l, uint8_t *out)
{
    for (size_t i = 0; i < l->n; i++) {
        uint64_t done = 0;

        while (done < l->ext[i].len) {
            ssize_t r = st.fd < 0 ? -1
                                  : pread(st.fd, out + done, l->ext[i].len - done,
                                          (off_t)(l->ext[i].off + done));

            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                return r < 0 && st.fd >= 0 ? -errno : -EIO;
            done += (uint64_t)r;
        }
        out += l->ext[i].len;
    }
    return 0;
}

void spill_release(spill_list_t *l)
{
    for (size_t i = 0; i < l->n && st.fd >= 0; i++) {
        uint64_t len = aligned(l->ext[i].len);

        /* Where holes cannot be punched, the blocks come back when the file is emptied. */
        (void)fallocate(st.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)l->ext[i].off,
                        (off_t)len);
        st.live -= len < st.live ? len : st.live;
    }
    if (st.fd >= 0 && l->n && st.live == 0 && ftruncate(st.fd, 0) == 0)
        st.end = 0;
    free(l->ext);
    memset(l, 0, sizeof(*l));
}

/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdint.h>

#include <zlib.h>

#include "log.h"
#include "outfile.h"

#define OUTFILE_BUF (256 * 1024)

struct outfile {
    int fd;
    int is_stdout;
    int seekable;
    int created;                  /* outfile_open made the file */
    uint64_t pos;                 /* file offset of the next write */
    uint64_t good;                /* the file is valid up to here (plus tail) */
    int tail_mode;                /* write_tail in use: only it moves good */
    unsigned char tail[16];       /* what makes the file valid at good */
    size_t tail_len;
    int tail_pending;             /* written at the next flush, at the end of the data */
    gzFile gz;
    int err;
    unsigned long long bytes;
    size_t len;
    char *path;
    unsigned char buf[OUTFILE_BUF];
};

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int outfile_open(const char *path, outfile_t **out, char *err, size_t errlen)
{
    outfile_t *f = calloc(1, sizeof(*f));
    struct stat st;

    if (!f || !(f->path = strdup(path))) {
        free(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    if (strcmp(path, "-") == 0) {
        f->fd = STDOUT_FILENO;
        f->is_stdout = 1;
    } else {
        f->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (f->fd >= 0)
            f->created = 1;
        else if (errno == EEXIST)
            f->fd = open(path, O_WRONLY | O_CLOEXEC);
        if (f->fd < 0) {
            int e = errno;
            snprintf(err, errlen, "cannot write %s: %s", path, strerror(e));
            free(f->path);
            free(f);
            return -e;
        }
    }
    if (ends_with(path, ".gz")) {
        f->gz = gzdopen(dup(f->fd), "wb");
        if (!f->gz) {
            snprintf(err, errlen, "%s: cannot start gzip stream", path);
            if (!f->is_stdout)
                close(f->fd);
            free(f->path);
            free(f);
            return -ENOMEM;
        }
    } else if (!f->is_stdout && fstat(f->fd, &st) == 0 && S_ISREG(st.st_mode)) {
        f->seekable = 1;
    }
    *out = f;
    return 0;
}

static void set_error(outfile_t *f, int e)
{
    if (f->err)
        return;
    f->err = e;
    /* Keep what is whole: cut back to the last good point, and put back the
       closing bytes that make the file complete there. */
    if (f->seekable && ftruncate(f->fd, (off_t)f->good) == 0 && f->tail_len &&
        pwrite(f->fd, f->tail, f->tail_len, (off_t)f->good) != (ssize_t)f->tail_len)
        ftruncate(f->fd, (off_t)f->good);
    log_error("writing %s failed: %s; recording stops, traffic still flows",
              f->is_stdout ? "stdout" : f->path, strerror(-e));
}

static int raw_write(outfile_t *f, const void *buf, size_t len)
{
    const unsigned char *p = buf;

    if (f->err)
        return f->err;
    if (f->gz) {
        while (len > 0) {
            unsigned n = len > (1u << 30) ? (1u << 30) : (unsigned)len;
            if (gzwrite(f->gz, p, n) != (int)n) {
                int e = errno ? -errno : -EIO;
                set_error(f, e);
                return e;
            }
            p += n;
            len -= n;
        }
        return 0;
    }
    while (len > 0) {
        ssize_t w = write(f->fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            set_error(f, -errno);
            return f->err;
        }
        p += w;
        len -= (size_t)w;
        f->pos += (uint64_t)w;
    }
    /* Callers write whole blocks per call: the end of a write is a boundary. */
    if (!f->tail_mode)
        f->good = f->pos;
    return 0;
}

static int drain(outfile_t *f)
{
    int rc = 0;

    if (f->len) {
        rc = raw_write(f, f->buf, f->len);
        f->len = 0;
    }
    return rc;
}

static int outfile_write(void *opaque, const void *buf, size_t len)
{
    outfile_t *f = opaque;

    if (f->err)
        return f->err;
    /* New data: a pending tail belongs to what is now followed by more. */
    f->tail_pending = 0;
    f->bytes += len;
    if (f->len + len > OUTFILE_BUF) {
        int rc = drain(f);
        if (rc)
            return rc;
        if (len >= OUTFILE_BUF / 2)
            return raw_write(f, buf, len);
    }
    memcpy(f->buf + f->len, buf, len);
    f->len += len;
    return 0;
}

/* Notes the closing bytes that make the file complete where the data now ends.
   They are written at the next flush (at least once a second), after the data
   and without moving the file offset, so the next write replaces them: one
   pwrite a second instead of two system calls per HAR entry. */
static int outfile_write_tail(void *opaque, const void *buf, size_t len)
{
    outfile_t *f = opaque;

    if (len > sizeof(f->tail))
        return -EINVAL;
    if (f->err)
        return f->err;
    f->tail_mode = 1;
    memcpy(f->tail, buf, len);
    f->tail_len = len;
    f->tail_pending = 1;
    return 0;
}

static int put_tail(outfile_t *f)
{
    int rc;

    if (!f->tail_pending)
        return 0;
    f->tail_pending = 0;
    if ((rc = drain(f)) != 0)
        return rc;
    if (pwrite(f->fd, f->tail, f->tail_len, (off_t)f->pos) != (ssize_t)f->tail_len) {
        set_error(f, errno ? -errno : -EIO);
        return f->err;
    }
    f->good = f->pos;
    return 0;
}

int outfile_begin(outfile_t *f)
{
    struct stat st;

    if (f->is_stdout || f->created)
        return 0;
    if (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode))
        return 0;   /* a device or a pipe: written to, its mode left alone (/dev/null!) */
    if (ftruncate(f->fd, 0) < 0)
        return -errno;
    /* An existing file keeps its mode: make it private, as a new one is. */
    fchmod(f->fd, 0600);
    return 0;
}

void outfile_discard(outfile_t *f)
{
    if (!f)
        return;
    if (f->created)
        unlink(f->path);
    if (f->gz)
        gzclose(f->gz);
    if (!f->is_stdout)
        close(f->fd);
    free(f->path);
    free(f);
}

void outfile_sink(outfile_t *f, sink_t *s)
{
    s->write = outfile_write;
    s->write_tail = f->seekable ? outfile_write_tail : NULL;
    s->opaque = f;
}

int outfile_flush(outfile_t *f)
{
    int rc = f->tail_pending ? put_tail(f) : drain(f);

    if (rc == 0 && f->gz && gzflush(f->gz, Z_SYNC_FLUSH) != Z_OK)
        set_error(f, -EIO);
    return f->err;
}

int outfile_close(outfile_t *f)
{
    int rc;

    if (!f)
        return 0;
    if (f->tail_pending)
        put_tail(f);
    else
        drain(f);
    if (f->gz && gzclose(f->gz) != Z_OK)
        set_error(f, -EIO);
    if (!f->is_stdout && close(f->fd) < 0)
        set_error(f, -errno);
    rc = f->err;
    free(f->path);
    free(f);
    return rc;
}

int outfile_error(const outfile_t *f)
{
    return f->err;
}

unsigned long long outfile_bytes(const outfile_t *f)
{
    return f->bytes;
}

const char *outfile_path(const outfile_t *f)
{
    return f->path;
}

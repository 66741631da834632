/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdint.h>

#include <uv.h>
#include <zlib.h>

#include "log.h"
#include "outfile.h"
#include "privs.h"

#define OUTFILE_BUF (256 * 1024)

/*
 * A ".gz" file is compressed on a thread of its own: deflate costs more than everything
 * else the recorder does per byte (zlib took 48 us of a 78 us keep-alive request on the
 * loop's thread), and on a second core it no longer holds up the relay. Full buffers are
 * handed over whole; at most GZ_QUEUE_MAX bytes wait, then the writer waits for the thread
 * (a disk or a deflate slower than the traffic slows the traffic down, nothing is lost).
 */
#define GZ_QUEUE_MAX (4 * OUTFILE_BUF)

typedef struct gzjob {
    struct gzjob *next;
    unsigned char *data; /* owned; NULL for a flush alone */
    size_t len;
    int flush; /* a Z_SYNC_FLUSH after the data */
} gzjob_t;

struct outfile {
    int fd;
    int is_stdout;
    int seekable;
    int created;            /* outfile_open made the file */
    uint64_t pos;           /* file offset of the next write */
    uint64_t good;          /* the file is valid up to here (plus tail) */
    int tail_mode;          /* write_tail in use: only it moves good */
    unsigned char tail[16]; /* what makes the file valid at good */
    size_t tail_len;
    int tail_pending; /* written at the next flush, at the end of the data */
    gzFile gz;
    int err;
    unsigned long long bytes;
    size_t len;
    char *path;
    unsigned char *buf; /* OUTFILE_BUF bytes */
    /* the compressing thread (gz only); the fields under gz_mu are shared with it */
    int gz_thread_on;
    uv_thread_t gz_thread;
    uv_mutex_t gz_mu;
    uv_cond_t gz_work, gz_room;
    gzjob_t *gz_head, *gz_tail; /* under gz_mu */
    size_t gz_queued;           /* under gz_mu: bytes handed over and not yet compressed */
    int gz_stop;                /* under gz_mu: no more jobs will come */
    int gz_err;                 /* under gz_mu: the thread's first error */
};

/* Compresses len bytes (and flushes); 0 or a negative errno. On the compressing thread. */
static int gz_put(gzFile gz, const unsigned char *p, size_t len, int flush)
{
    while (len > 0) {
        unsigned n = len > (1u << 30) ? (1u << 30) : (unsigned)len;
        errno = 0;
        if (gzwrite(gz, p, n) != (int)n)
            return errno ? -errno : -EIO;
        p += n;
        len -= n;
    }
    errno = 0;
    if (flush && gzflush(gz, Z_SYNC_FLUSH) != Z_OK)
        return errno ? -errno : -EIO;
    return 0;
}

static void gz_main(void *arg)
{
    outfile_t *f = arg;
    sigset_t all;
    gzjob_t *j;
    int e;

    /* Signals are the loop thread's (SIGINT, SIGCHLD, ...): none interrupts a write here. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    /* capset(2) changes only the calling thread, and this one may start before mitmrec drops
       its capabilities (a flush at start-up): it drops all of them itself. */
    privs_drop(0);
    uv_mutex_lock(&f->gz_mu);
    for (;;) {
        while (!f->gz_head && !f->gz_stop)
            uv_cond_wait(&f->gz_work, &f->gz_mu);
        if (!(j = f->gz_head))
            break;
        f->gz_head = j->next;
        if (!f->gz_head)
            f->gz_tail = NULL;
        e = f->gz_err;
        uv_mutex_unlock(&f->gz_mu);
        if (!e)
            e = gz_put(f->gz, j->data, j->len, j->flush);
        uv_mutex_lock(&f->gz_mu);
        if (e && !f->gz_err)
            f->gz_err = e;
        f->gz_queued -= j->len;
        uv_cond_signal(&f->gz_room);
        free(j->data);
        free(j);
    }
    uv_mutex_unlock(&f->gz_mu);
}

static int gz_start(outfile_t *f)
{
    int e = -ENOMEM;

    if (uv_mutex_init(&f->gz_mu) < 0)
        return e;
    if (uv_cond_init(&f->gz_work) < 0)
        goto no_work;
    if (uv_cond_init(&f->gz_room) < 0)
        goto no_room;
    e = -EAGAIN;
    if (uv_thread_create(&f->gz_thread, gz_main, f) < 0)
        goto no_thread;
    f->gz_thread_on = 1;
    return 0;

no_thread:
    uv_cond_destroy(&f->gz_room);
no_room:
    uv_cond_destroy(&f->gz_work);
no_work:
    uv_mutex_destroy(&f->gz_mu);
    return e;
}

/* Lets the thread finish what it was given and joins it; returns its error (0 if none). */
static int gz_finish(outfile_t *f)
{
    int e;

    if (!f->gz_thread_on)
        return 0;
    uv_mutex_lock(&f->gz_mu);
    f->gz_stop = 1;
    uv_cond_signal(&f->gz_work);
    uv_mutex_unlock(&f->gz_mu);
    uv_thread_join(&f->gz_thread);
    f->gz_thread_on = 0;
    e = f->gz_err;
    uv_cond_destroy(&f->gz_room);
    uv_cond_destroy(&f->gz_work);
    uv_mutex_destroy(&f->gz_mu);
    return e;
}

static void set_error(outfile_t *f, int e);

/* Hands data (owned from now on; NULL for a flush alone) to the thread. */
static int gz_enqueue(outfile_t *f, unsigned char *data, size_t len, int flush)
{
    gzjob_t *j;
    int e = 0;

    /* Started with the first job rather than at open (files that get none need no thread). */
    if (!f->gz_thread_on)
        e = gz_start(f);
    if (e < 0 || !(j = malloc(sizeof(*j)))) {
        free(data);
        set_error(f, e < 0 ? e : -ENOMEM);
        return f->err;
    }
    j->next = NULL;
    j->data = data;
    j->len = len;
    j->flush = flush;
    uv_mutex_lock(&f->gz_mu);
    while (f->gz_queued > GZ_QUEUE_MAX && !f->gz_err)
        uv_cond_wait(&f->gz_room, &f->gz_mu);
    if (!(e = f->gz_err)) {
        if (f->gz_tail)
            f->gz_tail->next = j;
        else
            f->gz_head = j;
        f->gz_tail = j;
        f->gz_queued += len;
        uv_cond_signal(&f->gz_work);
    }
    uv_mutex_unlock(&f->gz_mu);
    if (e) {
        free(j->data);
        free(j);
        set_error(f, e);
    }
    return f->err;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int outfile_open(const char *path, outfile_t **out, char *err, size_t errlen)
{
    outfile_t *f = calloc(1, sizeof(*f));
    struct stat st;

    if (!f || !(f->path = strdup(path)) || !(f->buf = malloc(OUTFILE_BUF))) {
        if (f)
            free(f->path);
        free(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    if (strcmp(path, "-") == 0) {
        f->fd = STDOUT_FILENO;
        f->is_stdout = 1;
    } else {
        f->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (f->fd >= 0) {
            f->created = 1;
            /* (an existing file keeps its owner) */
            if (privs_give_file(f->fd) < 0)
                log_warn("cannot give %s to the user who ran sudo: %s", path, strerror(errno));
        } else if (errno == EEXIST)
            f->fd = open(path, O_WRONLY | O_CLOEXEC);
        if (f->fd < 0) {
            int e = errno;
            snprintf(err, errlen, "cannot write %s: %s", path, strerror(e));
            free(f->buf);
            free(f->path);
            free(f);
            return -e;
        }
    }
    if (ends_with(path, ".gz")) {
        int gzfd = dup(f->fd);

        f->gz = gzfd >= 0 ? gzdopen(gzfd, "wb") : NULL;
        if (!f->gz) {
            snprintf(err, errlen, "%s: cannot start gzip stream", path);
            if (gzfd >= 0)
                close(gzfd); /* gzdopen leaves it open when it fails */
            if (f->created)
                unlink(path);
            if (!f->is_stdout)
                close(f->fd);
            free(f->buf);
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
        unsigned char *copy = malloc(len);

        if (!copy) {
            set_error(f, -ENOMEM);
            return f->err;
        }
        memcpy(copy, p, len);
        return gz_enqueue(f, copy, len, 0);
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

    if (f->len && f->gz && !f->err) {
        /* The full buffer goes to the thread as it is; a new one takes its place. */
        unsigned char *next = malloc(OUTFILE_BUF);

        if (!next) {
            set_error(f, -ENOMEM);
            f->len = 0;
            return f->err;
        }
        rc = gz_enqueue(f, f->buf, f->len, 0);
        f->buf = next;
        f->len = 0;
        return rc;
    }
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
        return 0; /* a device or a pipe: written to, its mode left alone (/dev/null!) */
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
    gz_finish(f);
    if (f->created)
        unlink(f->path);
    if (f->gz)
        gzclose(f->gz);
    if (!f->is_stdout)
        close(f->fd);
    free(f->buf);
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

    if (rc == 0 && f->gz)
        gz_enqueue(f, NULL, 0, 1);
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
    if ((rc = gz_finish(f)) != 0)
        set_error(f, rc);
    if (f->gz && gzclose(f->gz) != Z_OK)
        set_error(f, -EIO);
    if (!f->is_stdout && close(f->fd) < 0)
        set_error(f, -errno);
    rc = f->err;
    free(f->buf);
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

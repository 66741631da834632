/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "conn.h"
#include "errors.h"
#include "grow.h"
#include "log.h"

typedef struct wreq {
    uv_write_t req;
    conn_t *c;
    size_t len;
    uint8_t data[];
} wreq_t;

static void write_cb(uv_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)req;
    conn_t *c = w->c;

    c->queued -= w->len;
    free(w);
    if (status < 0) {
        if (!c->closing && status != UV_ECANCELED)
            c->cb->on_error(c, status);
        return;
    }
    if (c->above_high && c->queued < CONN_LOW_WATER) {
        c->above_high = 0;
        if (!c->closing && c->cb->on_drain)
            c->cb->on_drain(c);
    }
}

/*
 * Hands bytes to the kernel: directly when nothing is queued (the common case,
 * no copy), the rest through uv_write from a copy.
 */
static int send_bytes(conn_t *c, const uint8_t *buf, size_t len)
{
    uv_buf_t b;
    wreq_t *w;
    int rc;

    if (c->closing || c->shut)
        return UV_EPIPE;
    if (c->cb->on_wire) {
        if (c->in_read) {
            if (mr_grow(&c->_defer, &c->_defer_cap, c->_defer_len + len, 4096, 0) < 0)
                return -ENOMEM;
            memcpy(c->_defer + c->_defer_len, buf, len);
            c->_defer_len += len;
        } else {
            c->cb->on_wire(c, 1, buf, len);
        }
    }
    if (c->queued == 0) {
        b = uv_buf_init((char *)buf, (unsigned)len);
        rc = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (rc > 0) {
            buf += rc;
            len -= (size_t)rc;
        } else if (rc < 0 && rc != UV_EAGAIN) {
            return rc;
        }
        if (len == 0)
            return 0;
    }
    w = malloc(sizeof(*w) + len);
    if (!w)
        return -ENOMEM;
    memcpy(w->data, buf, len);
    w->c = c;
    w->len = len;
    b = uv_buf_init((char *)w->data, (unsigned)len);
    rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
    if (rc < 0) {
        free(w);
        return rc;
    }
    c->queued += len;
    if (c->queued > CONN_HIGH_WATER)
        c->above_high = 1;
    return 0;
}

/* Frees the conn's own record buffer (only a worker's step or a taken wbuf fills it, so
   none is kept between uses). */
static void out_free(conn_t *c)
{
    free(c->_out);
    c->_out = NULL;
    c->_out_len = c->_out_cap = 0;
}

/* Gives the loop's wbuf back if c's records are in it; returns how many bytes they are
   (still there until the next BIO write). */
static size_t wbuf_release(conn_t *c)
{
    size_t n = 0;

    if (c->env->_wown == c) {
        n = c->env->_wlen;
        c->env->_wown = NULL;
        c->env->_wlen = 0;
    }
    return n;
}

/*
 * Sends the records OpenSSL wrote: first those in the loop's wbuf, then any
 * that had to wait in the conn's own _out (written after them). What the
 * socket takes at once costs no allocation; only what it leaves is copied
 * (send_bytes).
 */
static int flush_tls(conn_t *c)
{
    size_t n = wbuf_release(c);
    int rc = n ? send_bytes(c, c->env->wbuf, n) : 0;

    if (c->_out_len) {
        if (rc == 0)
            rc = send_bytes(c, c->_out, c->_out_len);
        out_free(c);
    }
    return rc;
}

/* After a failed SSL_read or SSL_write: what OpenSSL wrote meanwhile (an alert) is not
   sent, and the wbuf is free for the other conns at once. */
static void drop_tls_out(conn_t *c)
{
    wbuf_release(c);
    out_free(c);
}

/* ---- the BIO between OpenSSL and the conn ----
 *
 * OpenSSL reads the TLS bytes of the read being handled where libuv put them (the loop's
 * rbuf, borrowed as _in for the call), and writes its records into the loop's wbuf, from
 * where flush_tls hands them to the socket. A memory BIO would copy both once more, into
 * buffers of each conn's own that stay allocated at their largest size. Bytes that
 * OpenSSL leaves in a read (it stopped early) move to the conn's _inbuf; records written
 * by a handshake step on a worker, or while wbuf holds another conn's, go to its _out. */

static int bio_write_cb(BIO *b, const char *data, int len)
{
    conn_t *c = BIO_get_data(b);
    conn_env_t *env;
    size_t n = len > 0 ? (size_t)len : 0;

    BIO_clear_retry_flags(b);
    if (n == 0)
        return 0;
    /* c->busy first: on a worker, the env is the loop's. */
    if (!c->busy && c->_out_len == 0) {
        env = c->env;
        if ((env->_wown == c || env->_wlen == 0) && n <= sizeof(env->wbuf) - env->_wlen) {
            memcpy(env->wbuf + env->_wlen, data, n);
            env->_wlen += n;
            env->_wown = c;
            return len;
        }
    }
    if (mr_grow(&c->_out, &c->_out_cap, c->_out_len + n, 16 * 1024, 0) < 0)
        return -1;
    memcpy(c->_out + c->_out_len, data, n);
    c->_out_len += n;
    return len;
}

static int bio_read_cb(BIO *b, char *out, int len)
{
    conn_t *c = BIO_get_data(b);
    size_t want = len > 0 ? (size_t)len : 0, got = 0, n;

    BIO_clear_retry_flags(b);
    if (c->_inbuf_off < c->_inbuf_len) {
        n = c->_inbuf_len - c->_inbuf_off;
        if (n > want)
            n = want;
        memcpy(out, c->_inbuf + c->_inbuf_off, n);
        c->_inbuf_off += n;
        got = n;
    }
    if (got < want && c->_in_len) {
        n = c->_in_len;
        if (n > want - got)
            n = want - got;
        memcpy(out + got, c->_in, n);
        c->_in += n;
        c->_in_len -= n;
        got += n;
    }
    if (got == 0 && want) {
        BIO_set_retry_read(b); /* nothing yet: "try again", not end of file */
        return -1;
    }
    return (int)got;
}

static long bio_ctrl_cb(BIO *b, int cmd, long num, void *ptr)
{
    conn_t *c = BIO_get_data(b);

    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_PENDING:
        return (long)(c->_inbuf_len - c->_inbuf_off + c->_in_len);
    case BIO_CTRL_WPENDING:
        return (long)(c->_out_len + (!c->busy && c->env->_wown == c ? c->env->_wlen : 0));
    case BIO_CTRL_FLUSH:
        return 1;
    default:
        return 0;
    }
}

static int bio_create_cb(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *bio_method;

static void bio_method_free(void)
{
    BIO_meth_free(bio_method);
}

static void bio_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "mitmrec conn");

    if (m && BIO_meth_set_write(m, bio_write_cb) && BIO_meth_set_read(m, bio_read_cb) &&
        BIO_meth_set_ctrl(m, bio_ctrl_cb) && BIO_meth_set_create(m, bio_create_cb)) {
        bio_method = m;
        atexit(bio_method_free);
    } else {
        BIO_meth_free(m);
    }
}

static BIO *conn_bio_new(conn_t *c)
{
    static uv_once_t once = UV_ONCE_INIT;
    BIO *b;

    uv_once(&once, bio_method_init);
    if (!bio_method || !(b = BIO_new(bio_method)))
        return NULL;
    BIO_set_data(b, c);
    return b;
}

/*
 * After a read was handled: what OpenSSL left of it moves to _inbuf (libuv's buffer is
 * the loop's), and an _inbuf read to the end goes. -ENOMEM when the bytes could not be
 * kept.
 */
static int keep_input(conn_t *c)
{
    size_t have = c->_inbuf_len - c->_inbuf_off;
    uint8_t *d;

    if (c->_in_len == 0) {
        if (have == 0 && c->_inbuf) {
            free(c->_inbuf);
            c->_inbuf = NULL;
            c->_inbuf_off = c->_inbuf_len = 0;
        }
        c->_in = NULL;
        return 0;
    }
    d = malloc(have + c->_in_len);
    if (d) {
        if (have)
            memcpy(d, c->_inbuf + c->_inbuf_off, have);
        memcpy(d + have, c->_in, c->_in_len);
    }
    free(c->_inbuf);
    c->_inbuf = d;
    c->_inbuf_off = 0;
    c->_inbuf_len = d ? have + c->_in_len : 0;
    c->_in = NULL;
    c->_in_len = 0;
    return d ? 0 : -ENOMEM;
}

/*
 * OpenSSL's record buffers (about 17 KiB each way) are freed after every
 * record (SSL_MODE_RELEASE_BUFFERS, set on the contexts), so idle conns cost
 * little; a busy one would allocate both again for each record. After
 * CONN_KEEP_AFTER reads and writes a conn keeps them, until a tick of its
 * _idle timer finds it unused since the previous tick. At most CONN_KEEP_MAX
 * conns of a loop keep theirs, which bounds the memory this takes.
 */
#define CONN_KEEP_AFTER 16
#define CONN_KEEP_MAX 64
#define CONN_IDLE_MS 250

static void idle_cb(uv_timer_t *t)
{
    conn_t *c = t->data;

    if (c->_used) {
        c->_used = 0;
        return;
    }
    uv_timer_stop(t);
    c->_keep = 0;
    c->_uses = 0;
    c->env->_keeping--;
    SSL_set_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
    SSL_free_buffers(c->ssl);
}

/* Counts a TLS read or write of application data. */
static void tls_used(conn_t *c)
{
    if (c->_keep) {
        c->_used = 1;
        return;
    }
    if (++c->_uses < CONN_KEEP_AFTER || c->env->_keeping >= CONN_KEEP_MAX)
        return;
    if (!c->_idle_init) {
        if (uv_timer_init(c->env->loop, &c->_idle) < 0)
            return;
        c->_idle.data = c;
        c->_idle_init = 1;
        c->_handles++;
    }
    uv_timer_start(&c->_idle, idle_cb, CONN_IDLE_MS, CONN_IDLE_MS);
    c->_keep = 1;
    c->env->_keeping++;
    SSL_clear_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn_t *c = h->data;
    buf->base = (char *)c->env->rbuf;
    buf->len = sizeof(c->env->rbuf);
}

static void release(conn_t *c);
static void read_plain(conn_t *c);
static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* Starts reading; while a handshake step runs on a worker, once it is back. */
static int start_reads(conn_t *c)
{
    int rc;

    if (c->busy) {
        c->_hs_stopped = 1;
        return 0;
    }
    rc = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    if (rc == 0)
        c->reading = 1;
    return rc;
}

/* What a handshake step did: its output is sent, then the owner told. */
static void handshake_step_done(conn_t *c, int rc, int e)
{
    flush_tls(c);
    if (c->closing)
        return;
    if (rc == 1) {
        c->handshaking = 0;
        c->cb->on_handshake(c, 0);
        return;
    }
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_CLIENT_HELLO_CB ||
        e == SSL_ERROR_WANT_WRITE)
        return;
    c->handshaking = 0;
    c->cb->on_handshake(c, MR_ETLS);
}

/* After a read was handled: its bytes, then what the conn wrote meanwhile. */
static void report_wire(conn_t *c, const uint8_t *p, size_t n)
{
    if (c->cb->on_wire) {
        if (n)
            c->cb->on_wire(c, 0, p, n);
        if (c->_defer_len) {
            size_t m = c->_defer_len;
            c->_defer_len = 0;
            c->cb->on_wire(c, 1, c->_defer, m);
        }
    }
    /* Writes during a read are handshake answers: once the handshake is over, keep
       no buffer for them (4 KiB per idle conn otherwise). */
    if (c->_defer_cap && !c->handshaking) {
        free(c->_defer);
        c->_defer = NULL;
        c->_defer_cap = 0;
    }
    /* The end the read brought, now that its bytes (the last records with it) are told. */
    if (c->_after && !c->closing) {
        int what = c->_after;

        c->_after = 0;
        if (what == 1)
            c->cb->on_eof(c);
        else
            c->cb->on_error(c, MR_ETLS);
    }
}

/* ---- handshake steps on the thread pool ---- */

static int stash_wire_in(conn_t *c, const uint8_t *p, size_t n)
{
    uint8_t *d = realloc(c->_inwire, c->_inwire_len + n);

    if (!d)
        return -1;
    memcpy(d + c->_inwire_len, p, n);
    c->_inwire = d;
    c->_inwire_len += n;
    return 0;
}

static void hs_work(uv_work_t *w)
{
    conn_t *c = w->data;
    unsigned long e;

    tls_keylog_defer(&c->_klog);
    ERR_clear_error();
    c->_hs_rc = SSL_do_handshake(c->ssl);
    c->_hs_err = c->_hs_rc == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, c->_hs_rc);
    /* The error queue is per thread: keep the last few for the loop's. */
    c->_nerrs = 0;
    while ((e = ERR_get_error()) != 0) {
        if (c->_nerrs == (int)(sizeof(c->_errs) / sizeof(c->_errs[0]))) {
            memmove(c->_errs, c->_errs + 1, sizeof(c->_errs) - sizeof(c->_errs[0]));
            c->_nerrs--;
        }
        c->_errs[c->_nerrs++] = e;
    }
    tls_keylog_defer(NULL);
}

static void hs_after(uv_work_t *w, int status)
{
    conn_t *c = w->data;
    uint8_t *in;
    size_t n;

    c->busy = 0;
    if (c->closing) {
        release(c);
        return;
    }
    c->_handles--;
    if (status < 0) {
        /* Cancelled (the pool never ran it): a failed handshake. */
        c->_hs_rc = -1;
        c->_hs_err = SSL_ERROR_SSL;
    }
    for (int i = 0; i < c->_nerrs; i++) {
        ERR_new();
        ERR_set_debug(OPENSSL_FILE, OPENSSL_LINE, OPENSSL_FUNC);
        ERR_set_error(ERR_GET_LIB(c->_errs[i]), ERR_GET_REASON(c->_errs[i]), NULL);
    }
    c->_nerrs = 0;
    if (c->_hs_stopped) {
        c->_hs_stopped = 0;
        if (!c->eof)
            start_reads(c);
    }
    /* The rest of the read that started the step, as read_cb would have done it: the
       secrets first, then what the step's output and any data after it mean, then the
       bytes read, then those written. */
    c->in_read = 1;
    if (tls_keylog_replay(c->ssl, &c->_klog) < 0)
        c->cb->on_error(c, -ENOMEM);
    if (!c->closing)
        handshake_step_done(c, c->_hs_rc, c->_hs_err);
    /* Bytes that came with the last handshake flight (early application data). */
    if (!c->handshaking && !c->closing && !c->eof)
        read_plain(c);
    if (keep_input(c) < 0 && !c->closing)
        c->cb->on_error(c, -ENOMEM);
    c->in_read = 0;
    in = c->_inwire;
    n = c->_inwire_len;
    c->_inwire = NULL;
    c->_inwire_len = 0;
    report_wire(c, in, n);
    free(in);
}

static int hs_offload(conn_t *c)
{
    /* The worker reads only the conn's own buffer, and writes only to it. */
    if (keep_input(c) < 0)
        return -1;
    flush_tls(c);
    c->_work.data = c;
    c->busy = 1; /* before the worker can start: it makes the BIO write to _out */
    if (uv_queue_work(c->env->loop, &c->_work, hs_work, hs_after) < 0) {
        c->busy = 0;
        return -1;
    }
    c->_handles++;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
        c->_hs_stopped = 1;
    }
    return 0;
}

void conn_set_offload(conn_t *c, int on)
{
    c->offload = on;
}

/*
 * A hand-off to a worker and back costs futex and eventfd wake-ups and moves the SSL's state
 * between cores. On 2 CPUs that also run the client and the origin it buys no parallelism:
 * with 10 connections at a time it cost about 210 us of mitmrec CPU per new connection
 * (1,180 -> 970 us; 805 -> 1,005 connections/s with bench/connrate, 3 A/B rounds). But a
 * burst of new connections done on the loop one after another holds up every established
 * flow: wrk -c100 keep-alive, whose 100 handshakes come at once, had a p99 of 13.4 ms
 * against 9.3 with every step on a worker. So on 2 CPUs (2) steps run on the loop until
 * CONN_HS_INLINE_US of them were done in the current loop turn (turns within the same
 * millisecond of loop time count as one), and the rest of a burst goes to the workers:
 * about 1,010 connections/s at 10 (2.5% under the loop alone) and p99 8.8 ms at 100. With
 * more CPUs (1) a handshake's crypto runs beside the relay instead of in its way.
 */
int conn_offload_default(void)
{
    static int v = -1;

    if (v < 0) {
        const char *e = getenv("MITMREC_OFFLOAD");
        cpu_set_t set;
        int cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 0;
        static const char *const where[] = {
            "the event loop's thread", "libuv's worker threads",
            "the event loop's thread, bursts on libuv's worker threads"};

        if (e && e[0] >= '0' && e[0] <= '2' && !e[1])
            v = e[0] - '0';
        else
            v = cpus == 0 || cpus > 2 ? 1 : 2;
        log_debug("TLS handshakes on %s (%d CPUs%s)", where[v], cpus,
                  e ? ", MITMREC_OFFLOAD set" : "");
    }
    return v;
}

/* The us of handshake steps run on the loop in this loop turn (0 when a new turn began). */
static uint64_t *turn_spent(conn_env_t *env)
{
    uint64_t now = uv_now(env->loop);

    if (now != env->_hs_turn) {
        env->_hs_turn = now;
        env->_hs_spent = 0;
    }
    return &env->_hs_spent;
}

/* Offload 2: 1 while this loop turn's handshake work on the loop is under its budget. */
static int inline_step(conn_env_t *env)
{
    return env->offload == 2 && *turn_spent(env) < CONN_HS_INLINE_US;
}

/* 1 when the step to come only checks the peer's Finished, ours being sent: cheaper than
   the hand-off to a worker and back. A TLS 1.3 server waits in TLS_ST_EARLY_DATA after its
   Finished; TLS 1.2 peers wait in the state of the Finished they wrote. */
static int last_step(conn_t *c)
{
    OSSL_HANDSHAKE_STATE st = SSL_get_state(c->ssl);

    if (SSL_is_server(c->ssl))
        return st == TLS_ST_EARLY_DATA || st == TLS_ST_SW_FINISHED;
    return st == TLS_ST_CW_FINISHED;
}

static void do_handshake(conn_t *c)
{
    uint64_t t0;
    int rc;

    if (c->busy)
        return;
    if (c->offload && c->env->offload && !last_step(c) && !inline_step(c->env) &&
        hs_offload(c) == 0)
        return;
    t0 = c->env->offload == 2 ? uv_hrtime() : 0;
    rc = SSL_do_handshake(c->ssl);
    if (t0) /* (also steps that must stay on the loop count) */
        *turn_spent(c->env) += (uv_hrtime() - t0) / 1000;
    handshake_step_done(c, rc, rc == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, rc));
}

static void read_plain(conn_t *c)
{
    for (;;) {
        int n = SSL_read(c->ssl, c->env->pbuf, sizeof(c->env->pbuf));
        if (n > 0) {
            tls_used(c);
            c->cb->on_data(c, c->env->pbuf, (size_t)n);
            if (c->closing)
                return;
            /* Nothing left to decrypt, not even a partial record: the SSL_read that would
               only say so is skipped (one per record otherwise). */
            if (!SSL_has_pending(c->ssl) && c->_in_len == 0 && c->_inbuf_off == c->_inbuf_len) {
                flush_tls(c);
                return;
            }
            continue;
        }
        switch (SSL_get_error(c->ssl, n)) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            flush_tls(c);
            return;
        case SSL_ERROR_ZERO_RETURN:
            flush_tls(c);
            SSL_free_buffers(c->ssl); /* the peer's close_notify: nothing more to read */
            if (!c->eof) {
                c->eof = 1;
                /* Data and close_notify often come in one segment: the data's records
                   are reported (recorded) first, the end after them. */
                if (c->in_read)
                    c->_after = 1;
                else
                    c->cb->on_eof(c);
            }
            return;
        default:
            ERR_clear_error();
            drop_tls_out(c);
            if (c->in_read)
                c->_after = 2; /* the record that failed is reported (recorded) first */
            else
                c->cb->on_error(c, MR_ETLS);
            return;
        }
    }
}

/* Hands OpenSSL the TLS bytes of a read (buf, valid for the call), then does what they
   allow: the handshake's next step, or reading application data. */
static void feed_tls(conn_t *c, const uint8_t *buf, size_t len)
{
    if (c->busy)
        return;
    if (len) {
        c->_in = buf;
        c->_in_len = len;
    }
    if (c->handshaking)
        do_handshake(c);
    if (!c->handshaking && !c->closing && !c->eof)
        read_plain(c);
    /* (A step gone to a worker has kept the bytes already.) */
    if (!c->busy && keep_input(c) < 0 && !c->closing)
        c->cb->on_error(c, -ENOMEM);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = s->data;
    const uint8_t *p = (const uint8_t *)buf->base;

    if (c->closing)
        return;
    if (nread > 0) {
        c->in_read = 1;
        if (c->ssl)
            feed_tls(c, p, (size_t)nread);
        else
            c->cb->on_data(c, p, (size_t)nread);
        if (c->busy) {
            /* The read started a handshake step on a worker: what it means is known
               only when the step is back, so the bytes are reported then (and the read
               is still being handled until then: in_read stays set). */
            if (c->cb->on_wire && stash_wire_in(c, p, (size_t)nread) < 0)
                c->cb->on_error(c, -ENOMEM);
            return;
        }
        c->in_read = 0;
        report_wire(c, p, (size_t)nread);
        return;
    }
    if (nread == UV_EOF) {
        uv_read_stop(s);
        c->reading = 0;
        if (!c->eof) {
            c->eof = 1;
            c->cb->on_eof(c);
        }
        return;
    }
    if (nread < 0) {
        uv_read_stop(s);
        c->reading = 0;
        c->cb->on_error(c, (int)nread);
    }
}

int conn_init(conn_t *c, conn_env_t *env, const conn_cb_t *cb, void *data)
{
    int rc;

    memset(c, 0, sizeof(*c));
    c->env = env;
    c->cb = cb;
    c->data = data;
    if ((rc = uv_tcp_init(env->loop, &c->tcp)) < 0)
        return rc;
    c->tcp.data = c;
    c->opened = 1;
    c->_handles = 1;
    return 0;
}

int conn_start(conn_t *c)
{
    /* Both legs carry request/response traffic: Nagle only adds latency here. Once:
       conn_start is called again after each handshake step. */
    if (!c->_nodelay)
        c->_nodelay = uv_tcp_nodelay(&c->tcp, 1) == 0;
    if (c->reading || c->paused)
        return 0;
    return start_reads(c);
}

static void connect_cb(uv_connect_t *req, int status)
{
    conn_t *c = req->data;

    free(req);
    if (c->closing)
        return;
    c->cb->on_connect(c, status);
}

int conn_connect(conn_t *c, const struct sockaddr *addr)
{
    uv_connect_t *req = malloc(sizeof(*req));
    int rc;

    if (!req)
        return -ENOMEM;
    req->data = c;
    rc = uv_tcp_connect(req, &c->tcp, addr, connect_cb);
    if (rc < 0)
        free(req);
    return rc;
}

int conn_start_tls(conn_t *c, SSL *ssl, int server, const uint8_t *initial, size_t len)
{
    if (!(c->bio = conn_bio_new(c))) {
        SSL_free(ssl);
        return -ENOMEM;
    }
    SSL_set_bio(ssl, c->bio, c->bio); /* (one reference for both) */
    c->ssl = ssl;
    c->handshaking = 1;
    if (server)
        SSL_set_accept_state(ssl);
    else
        SSL_set_connect_state(ssl);
    feed_tls(c, initial, len);
    return 0;
}

void conn_continue_handshake(conn_t *c)
{
    if (!c->closing && c->handshaking)
        feed_tls(c, NULL, 0);
}

int conn_write(conn_t *c, const void *buf, size_t len)
{
    int n;

    if (c->closing)
        return UV_EPIPE;
    if (!c->ssl)
        return send_bytes(c, buf, len);
    if (c->busy)
        return MR_ETLS; /* no application data before the handshake is over */
    if (len == 0)
        return 0;
    tls_used(c);
    n = SSL_write(c->ssl, buf, (int)len);
    if (n <= 0) {
        ERR_clear_error();
        drop_tls_out(c);
        return MR_ETLS;
    }
    return flush_tls(c);
}

int conn_write_raw(conn_t *c, const void *buf, size_t len)
{
    return send_bytes(c, buf, len);
}

void conn_pause(conn_t *c)
{
    if (c->_hs_stopped) {
        /* Stopped for a handshake step: stay stopped after it. */
        c->_hs_stopped = 0;
        c->paused = 1;
    }
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
        c->paused = 1;
    }
}

void conn_resume(conn_t *c)
{
    if (c->paused && !c->closing && !c->eof) {
        c->paused = 0;
        start_reads(c);
    }
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    conn_t *c = req->data;

    free(req);
    c->shut_done = 1;
    if (!c->closing && c->cb->on_shut)
        c->cb->on_shut(c);
}

void conn_shutdown(conn_t *c)
{
    uv_shutdown_t *req;

    if (c->shut || c->closing)
        return;
    /* (A conn whose handshake step is on a worker is not finished: only the FIN.) */
    if (c->ssl && !c->busy && SSL_is_init_finished(c->ssl)) {
        SSL_shutdown(c->ssl);
        flush_tls(c);
        /* Nothing more will be written: the record buffers SSL_shutdown set up go now, not
           when the flow closes (1,000 flows ending at once held 20 KiB each). */
        SSL_free_buffers(c->ssl);
    }
    c->shut = 1;
    req = malloc(sizeof(*req));
    if (!req) {
        c->shut_done = 1;
        return;
    }
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, shutdown_cb) < 0) {
        free(req);
        c->shut_done = 1;
    }
}

/* One of the conn's handles closed, or its handshake step came back after
   conn_close: the last one frees the rest and tells the owner. */
static void release(conn_t *c)
{
    if (--c->_handles > 0)
        return;
    SSL_free(c->ssl);
    c->ssl = NULL;
    tls_keylog_buf_free(&c->_klog);
    free(c->_inwire);
    c->_inwire = NULL;
    free(c->_defer);
    c->_defer = NULL;
    free(c->_inbuf);
    c->_inbuf = NULL;
    c->_inbuf_off = c->_inbuf_len = 0;
    out_free(c);
    if (c->cb->on_close)
        c->cb->on_close(c);
}

static void close_cb(uv_handle_t *h)
{
    release(h->data);
}

void conn_close(conn_t *c, int reset)
{
    if (c->closing || !c->opened)
        return;
    c->closing = 1;
    /* Free the TLS state now rather than in close_cb: when many peers close at once, one
       loop turn would otherwise hold every flow's buffers (SSL_shutdown re-allocates the
       write buffer that SSL_MODE_RELEASE_BUFFERS had freed). A handshake step on a
       worker still has it: then it is freed when the step is back. */
    if (!c->busy) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    /* Records not sent by now are not sent. */
    if (!c->busy)
        drop_tls_out(c);
    if (c->_keep) {
        c->_keep = 0;
        c->env->_keeping--;
    }
    if (c->_idle_init)
        uv_close((uv_handle_t *)&c->_idle, close_cb);
    if (reset && !c->shut && uv_tcp_close_reset(&c->tcp, close_cb) == 0)
        return;
    uv_close((uv_handle_t *)&c->tcp, close_cb);
}

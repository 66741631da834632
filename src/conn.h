/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_CONN_H
#define MITMREC_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "tls.h"

/*
 * One leg of a flow: a TCP connection, optionally with TLS driven from the
 * event loop through a BIO of conn.c's own (OpenSSL reads and writes the
 * loop's buffers). conn_t is embedded in its flow (conn_init / conn_close);
 * its memory may be released only after on_close.
 *
 * Callbacks for one read arrive in this order: on_handshake (if the handshake
 * finished), on_data (plaintext) for every chunk, then on_wire(in) for the raw
 * bytes of the read, so a recorder sees the meaning of bytes before the bytes.
 * Bytes the conn itself writes while handling a read (a TLS handshake answer)
 * are reported through on_wire(out) after that read's on_wire(in), so the
 * record keeps cause before effect.
 * A conn never calls back from inside conn_write/conn_shutdown except on_wire.
 */

#define CONN_HIGH_WATER (512 * 1024) /* bytes queued before the source should pause */
#define CONN_LOW_WATER (128 * 1024)
#define CONN_HS_INLINE_US 3000 /* offload 2: handshake work (us) per loop turn on the loop */

typedef struct conn conn_t;

typedef struct conn_cb {
    void (*on_connect)(conn_t *c, int status);
    void (*on_handshake)(conn_t *c, int status); /* TLS finished (0) or failed (<0) */
    void (*on_data)(conn_t *c, const uint8_t *buf, size_t len);
    void (*on_wire)(conn_t *c, int out, const uint8_t *buf, size_t len);
    void (*on_eof)(conn_t *c);            /* FIN or close_notify */
    void (*on_error)(conn_t *c, int err); /* reset, TLS error, ... */
    void (*on_drain)(conn_t *c);          /* queued bytes fell below low water */
    void (*on_shut)(conn_t *c);           /* our FIN left, after all queued bytes */
    void (*on_close)(conn_t *c);          /* handle closed */
} conn_cb_t;

/*
 * The TLS records of one 64 KiB write: four full records, each framed by at most 29 bytes
 * (TLS 1.2 AES-GCM: 5-byte header, 8-byte explicit nonce, 16-byte tag; TLS 1.3 takes 22).
 */
#define CONN_WBUF (64 * 1024 + 4 * 29)

/*
 * Shared by all conns of a loop: the read buffers (reads are handled at once), and where
 * TLS records wait between OpenSSL and the socket (they are handed over at once, so one
 * conn at a time has records there: _wown). The owner zeroes it, then sets loop.
 */
typedef struct conn_env {
    uv_loop_t *loop;
    uint8_t rbuf[64 * 1024];
    uint8_t pbuf[64 * 1024];
    uint8_t wbuf[CONN_WBUF];
    size_t _wlen;       /* bytes of records in wbuf ... */
    struct conn *_wown; /* ... and the conn they are for */
    unsigned _keeping;  /* conns keeping their TLS buffers (see conn.c) */
    int offload;        /* where the handshake steps of conns marked offload run:
                           0 on the loop's thread, 1 on libuv's thread pool, 2 on
                           the loop up to CONN_HS_INLINE_US of them per loop turn,
                           the rest on the pool */
    uint64_t _hs_turn;  /* the loop time (ms) of the turn _hs_spent counts */
    uint64_t _hs_spent; /* us of handshake steps run on the loop in it */
} conn_env_t;

struct conn {
    uv_tcp_t tcp;
    conn_env_t *env;
    const conn_cb_t *cb;
    void *data;         /* the owner's */
    SSL *ssl;           /* owned, NULL for plain TCP */
    BIO *bio;           /* owned by ssl: reads _in, writes env->wbuf or _out */
    const uint8_t *_in; /* the TLS bytes of the read being handled (borrowed) */
    size_t _in_len;
    uint8_t *_inbuf; /* TLS bytes OpenSSL has not taken yet, kept past a read */
    size_t _inbuf_off, _inbuf_len;
    uint8_t *_out; /* records to send that could not wait in env->wbuf */
    size_t _out_len, _out_cap;
    int handshaking;
    size_t queued; /* bytes handed to uv_write and not yet written */
    int paused;    /* reads stopped by back-pressure */
    int reading;
    int eof;       /* peer finished */
    int shut;      /* our FIN asked for (conn_shutdown) */
    int shut_done; /* ... and gone, or never to go (on_shut) */
    int closing;
    int opened;   /* tcp handle initialized */
    int _nodelay; /* TCP_NODELAY is set */
    int above_high;
    int in_read;     /* handling a read: our own writes are reported after it, and so
                        are the peer's close_notify and a record that fails (_after) */
    int _after;      /* 1: on_eof, 2: on_error(MR_ETLS), once the read's bytes are reported */
    uint8_t *_defer; /* bytes written during the read, reported after on_wire(in) */
    size_t _defer_len, _defer_cap;
    int _handles;     /* open handles (tcp, _idle): on_close once none is left */
    unsigned _uses;   /* TLS reads and writes since the buffers were last freed */
    int _keep;        /* busy: OpenSSL keeps its buffers between records */
    int _used;        /* used since the last tick of _idle */
    int _idle_init;   /* _idle is a handle to close */
    uv_timer_t _idle; /* while _keep: frees the buffers once the conn is quiet */
    /* Handshake steps on the thread pool (conn_set_offload). */
    int offload;         /* allowed for this conn */
    int busy;            /* a step is running: ssl belongs to the worker */
    int _hs_rc, _hs_err; /* its SSL_do_handshake result and SSL_get_error */
    int _hs_stopped;     /* reads were stopped for it */
    int _nerrs;
    unsigned long _errs[4]; /* its OpenSSL errors, raised again on the loop's thread */
    uv_work_t _work;
    tls_keylog_buf_t _klog; /* its keylog lines, reported on the loop's thread */
    uint8_t *_inwire;       /* the read that started it, reported when it is back */
    size_t _inwire_len;
};

/* Initializes the handle (tcp) for an accept or a connect. Returns 0 or a uv error. */
int conn_init(conn_t *c, conn_env_t *env, const conn_cb_t *cb, void *data);

/* Starts reading. */
int conn_start(conn_t *c);

/* Connects to addr; on_connect follows (unless this returns an error). */
int conn_connect(conn_t *c, const struct sockaddr *addr);

/*
 * Makes the conn a TLS endpoint with ssl (takes ownership). server: accept
 * side. initial: bytes already read that belong to the TLS stream (fed
 * first). Starts the handshake. Returns 0 or a negative error.
 */
int conn_start_tls(conn_t *c, SSL *ssl, int server, const uint8_t *initial, size_t len);

/*
 * Lets this conn's next TLS handshake steps run on libuv's thread pool when
 * its env has offload set, so the loop goes on with other flows meanwhile
 * (the crypto of a handshake is most of a new connection's CPU). While a step
 * runs, reads are stopped and ssl must not be touched; its callbacks run on
 * the worker, so the owner's hooks must be safe there: keylog lines are kept
 * and reported on the loop's thread, before the bytes the step wrote. A
 * server conn's first step (the client_hello hook) should stay on the loop:
 * set this once that hook has done what needs the loop.
 */
void conn_set_offload(conn_t *c, int on);

/*
 * What conn_env_t.offload should be: 1 when this process may use more than 2 CPUs, else 2;
 * the environment variable MITMREC_OFFLOAD=0, 1 or 2 decides instead.
 */
int conn_offload_default(void);

/* Drives a paused handshake on (after a client_hello hook said retry). */
void conn_continue_handshake(conn_t *c);

/* Sends application bytes (encrypted when TLS). Returns 0 or a negative error. */
int conn_write(conn_t *c, const void *buf, size_t len);

/* Sends raw bytes, bypassing TLS (used before a tunnel starts). */
int conn_write_raw(conn_t *c, const void *buf, size_t len);

/* Back-pressure: stop / resume reads. */
void conn_pause(conn_t *c);
void conn_resume(conn_t *c);

/* Finishes our direction: close_notify for TLS, then a FIN. */
void conn_shutdown(conn_t *c);

/* Closes the handle (on_close follows). reset: send an RST. Idempotent. */
void conn_close(conn_t *c, int reset);

#endif

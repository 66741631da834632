/* SPDX-License-Identifier: MIT */
/*
 * conn.c's TLS path, one conn against another over loopback TCP: what one end writes must
 * arrive whole and in order at the other, through the BIO that hands OpenSSL the loop's
 * buffers. Each case drives one of its paths:
 *   - writes larger than the loop's wbuf (the rest waits in the conn's _out);
 *   - handshakes whose steps run on libuv's workers (their records go to _out);
 *   - a conn writing while another's records are in wbuf;
 *   - bytes OpenSSL leaves in a read (a handshake paused by a client_hello hook).
 * Needs fixtures/tls (top_srcdir); 127.0.0.1 only.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "check.h"
#include "conn.h"

typedef struct end {
    conn_t c;
    int server;
    int offload;   /* conn_set_offload for its handshake */
    int raw;       /* no TLS in the conn: the test drives an SSL of its own */
    int handshake; /* 1 done, -1 failed */
    int closed;
    uint8_t *got;
    size_t got_len, got_cap;
    int echo;            /* write back what arrives */
    struct end *forward; /* write what arrives on that end instead */
    int wbuf_was_ours;   /* when data arrived, its own records were in the wbuf */
    SSL *own;            /* raw: the test's SSL, through memory BIOs */
} end_t;

static uv_loop_t loop;
static conn_env_t env; /* large; zeroed as conn.h asks */
static uv_tcp_t listener;
static int listen_port;
static SSL_CTX *sctx, *cctx;
static end_t *accept_into; /* the server end the next connection goes to */
static int pause_hello;    /* the server's client_hello hook says retry this many times */

static void got(end_t *e, const uint8_t *p, size_t n)
{
    if (e->got_len + n > e->got_cap) {
        size_t cap = e->got_cap ? e->got_cap : 4096;
        while (cap < e->got_len + n)
            cap *= 2;
        e->got = realloc(e->got, cap);
        e->got_cap = cap;
    }
    memcpy(e->got + e->got_len, p, n);
    e->got_len += n;
}

/* raw: bytes the test's SSL wrote go out on the plain conn. */
static void raw_flush(end_t *e)
{
    uint8_t buf[16384];
    int n;

    while ((n = BIO_read(SSL_get_wbio(e->own), buf, sizeof(buf))) > 0)
        CHECK_EQ_INT(conn_write(&e->c, buf, (size_t)n), 0);
}

static void on_handshake(conn_t *c, int status)
{
    end_t *e = c->data;
    e->handshake = status == 0 ? 1 : -1;
}

static void on_data(conn_t *c, const uint8_t *buf, size_t len)
{
    end_t *e = c->data;
    uint8_t plain[16384];
    int n;

    if (e->raw) {
        BIO_write(SSL_get_rbio(e->own), buf, (int)len);
        if (!e->handshake && SSL_do_handshake(e->own) == 1)
            e->handshake = 1;
        while ((n = SSL_read(e->own, plain, sizeof(plain))) > 0)
            got(e, plain, (size_t)n);
        raw_flush(e);
        return;
    }
    got(e, buf, len);
    if (e->echo)
        CHECK_EQ_INT(conn_write(c, buf, len), 0);
    if (e->forward) {
        /* A record written straight into this conn's SSL waits in the wbuf until the read
           is over (read_plain flushes then), as an answer OpenSSL writes while reading would. */
        CHECK_EQ_INT(SSL_write(c->ssl, "x", 1), 1);
        e->wbuf_was_ours = env._wown == c;
        CHECK_EQ_INT(conn_write(&e->forward->c, buf, len), 0);
        CHECK(env._wown == c);
    }
}

static void on_eof(conn_t *c)
{
    (void)c;
}
static int conn_errors; /* none is expected in any case */

static void on_error(conn_t *c, int err)
{
    fprintf(stderr, "conn error %d\n", err);
    conn_errors++;
    conn_close(c, 1);
}
static void on_close(conn_t *c)
{
    end_t *e = c->data;
    e->closed = 1;
}

static void on_connect(conn_t *c, int status);

static const conn_cb_t cbs = {
    .on_connect = on_connect,
    .on_handshake = on_handshake,
    .on_data = on_data,
    .on_eof = on_eof,
    .on_error = on_error,
    .on_close = on_close,
};

static void on_connect(conn_t *c, int status)
{
    end_t *e = c->data;

    CHECK_EQ_INT(status, 0);
    if (status < 0)
        return;
    if (e->raw) {
        conn_start(c);
        SSL_do_handshake(e->own); /* its ClientHello, and a CCS after it (see paused_hello) */
        BIO_write(SSL_get_wbio(e->own), "\x14\x03\x03\x00\x01\x01", 6);
        raw_flush(e);
        return;
    }
    conn_set_offload(c, e->offload);
    CHECK_EQ_INT(conn_start_tls(c, SSL_new(cctx), 0, NULL, 0), 0);
    conn_start(c);
}

static void on_accept(uv_stream_t *l, int status)
{
    end_t *e = accept_into;

    CHECK(status == 0 && e != NULL);
    if (status < 0 || !e)
        return;
    accept_into = NULL;
    conn_init(&e->c, &env, &cbs, e);
    CHECK_EQ_INT(uv_accept(l, (uv_stream_t *)&e->c.tcp), 0);
    conn_set_offload(&e->c, e->offload);
    CHECK_EQ_INT(conn_start_tls(&e->c, SSL_new(sctx), 1, NULL, 0), 0);
    conn_start(&e->c);
}

static int hello_cb(SSL *ssl, int *al, void *arg)
{
    (void)ssl, (void)al, (void)arg;
    if (pause_hello > 0) {
        pause_hello--;
        return SSL_CLIENT_HELLO_RETRY;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

static void tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until *flag (or a 10 s limit); 0 when it came. */
static int run_until(const int *flag)
{
    uint64_t t0 = uv_now(&loop);

    while (!*flag) {
        if (uv_now(&loop) - t0 > 10000)
            return -1;
        uv_run(&loop, UV_RUN_ONCE);
    }
    return 0;
}

static int run_until_len(end_t *e, size_t n)
{
    uint64_t t0 = uv_now(&loop);

    while (e->got_len < n) {
        if (uv_now(&loop) - t0 > 10000)
            return -1;
        uv_run(&loop, UV_RUN_ONCE);
    }
    return 0;
}

/* A client end connected to a server end; 0 once both handshakes are done. */
static int pair(end_t *cl, end_t *sv)
{
    struct sockaddr_in a;

    cl->server = 0;
    sv->server = 1;
    accept_into = sv;
    uv_ip4_addr("127.0.0.1", listen_port, &a);
    conn_init(&cl->c, &env, &cbs, cl);
    CHECK_EQ_INT(conn_connect(&cl->c, (struct sockaddr *)&a), 0);
    if (cl->raw)
        return run_until(&sv->c.reading);
    if (run_until(&cl->handshake) < 0 || run_until(&sv->handshake) < 0)
        return -1;
    CHECK_EQ_INT(cl->handshake, 1);
    CHECK_EQ_INT(sv->handshake, 1);
    return cl->handshake == 1 && sv->handshake == 1 ? 0 : -1;
}

static void unpair(end_t *a, end_t *b)
{
    conn_close(&a->c, 0);
    conn_close(&b->c, 0);
    if (a->c.opened)
        run_until(&a->closed);
    if (b->c.opened)
        run_until(&b->closed);
    SSL_free(a->own);
    free(a->got);
    free(b->got);
}

static void pattern(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((i * 131 + seed) ^ (i >> 9));
}

/* Writes of 1 B to 200 KB echoed back: past 64 KiB, records wait in the conn's _out. */
static void test_echo(int offload)
{
    static const size_t sizes[] = {1, 100, 16384, 16385, 65536, 70000, 200000};
    end_t cl = {0}, sv = {0};
    size_t total = 0, i;
    uint8_t *sent;

    env.offload = offload;
    cl.offload = sv.offload = offload;
    sv.echo = 1;
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        total += sizes[i];
    sent = malloc(total);
    pattern(sent, total, (unsigned)offload);
    if (pair(&cl, &sv) == 0) {
        size_t off = 0;
        for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            CHECK_EQ_INT(conn_write(&cl.c, sent + off, sizes[i]), 0);
            off += sizes[i];
        }
        CHECK_EQ_INT(run_until_len(&cl, total), 0);
        CHECK_EQ_INT(cl.got_len, total);
        CHECK_EQ_INT(sv.got_len, total);
        CHECK(cl.got_len == total && memcmp(cl.got, sent, total) == 0);
        CHECK(sv.got_len == total && memcmp(sv.got, sent, total) == 0);
        CHECK(env._wown == NULL && env._wlen == 0);
        CHECK(cl.c._out == NULL && sv.c._out == NULL);
    }
    unpair(&cl, &sv);
    free(sent);
    env.offload = 0;
}

/*
 * A conn writing while another conn's records are in the wbuf (they wait there while that
 * conn's read is handled): its own records must not mix with them. They wait in its _out
 * and are sent at once; the other conn's go when its read is over. Both must arrive.
 */
static void test_wbuf_taken(void)
{
    end_t c1 = {0}, s1 = {0}, c2 = {0}, s2 = {0};

    if (pair(&c1, &s1) < 0 || pair(&c2, &s2) < 0)
        goto out;
    c1.forward = &c2;
    CHECK_EQ_INT(conn_write(&s1.c, "ping", 4), 0);
    CHECK_EQ_INT(run_until_len(&s2, 4), 0);
    CHECK(s2.got_len == 4 && memcmp(s2.got, "ping", 4) == 0);
    CHECK_EQ_INT(c1.wbuf_was_ours, 1); /* the case happened */
    CHECK(c2.c._out == NULL);
    CHECK_EQ_INT(run_until_len(&s1, 1), 0);
    CHECK(s1.got_len == 1 && s1.got[0] == 'x');
    c1.forward = NULL;
    CHECK_EQ_INT(conn_write(&c1.c, "and after", 9), 0);
    CHECK_EQ_INT(run_until_len(&s1, 10), 0);
    CHECK(s1.got_len == 10 && memcmp(s1.got, "xand after", 10) == 0);
    CHECK(env._wown == NULL && env._wlen == 0);
out:
    unpair(&c1, &s1);
    unpair(&c2, &s2);
}

/*
 * A ClientHello and a ChangeCipherSpec record in one read, the server's client_hello hook
 * pausing the handshake after the first: OpenSSL has not read the CCS, which must be kept
 * past the read (libuv's buffer is reused) and read when the handshake goes on.
 */
static void test_paused_hello(void)
{
    end_t cl = {0}, sv = {0};

    cl.raw = 1;
    cl.own = SSL_new(cctx);
    SSL_set_bio(cl.own, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_connect_state(cl.own);
    /* (no CCS of its own: the one the test sends is the only one) */
    SSL_clear_options(cl.own, SSL_OP_ENABLE_MIDDLEBOX_COMPAT);
    pause_hello = 1;
    if (pair(&cl, &sv) < 0)
        goto out;
    /* Until the ClientHello is in and the hook said retry. */
    for (int i = 0; i < 200 && pause_hello; i++)
        uv_run(&loop, UV_RUN_ONCE);
    CHECK_EQ_INT(pause_hello, 0);
    CHECK_EQ_INT(sv.c._inbuf_len - sv.c._inbuf_off, 6);
    CHECK(sv.c._in == NULL && sv.c._in_len == 0);
    conn_continue_handshake(&sv.c);
    CHECK(sv.c._inbuf == NULL);
    CHECK_EQ_INT(run_until(&sv.handshake), 0);
    CHECK_EQ_INT(sv.handshake, 1);
    CHECK_EQ_INT(run_until(&cl.handshake), 0);
    CHECK_EQ_INT(conn_write(&sv.c, "hello", 5), 0);
    CHECK_EQ_INT(run_until_len(&cl, 5), 0);
    CHECK(cl.got_len == 5 && memcmp(cl.got, "hello", 5) == 0);
out:
    pause_hello = 0;
    unpair(&cl, &sv);
}

int main(void)
{
    const char *top = getenv("top_srcdir");
    char cert[1024], key[1024];
    struct sockaddr_in a;
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    uv_timer_t timer;

    snprintf(cert, sizeof cert, "%s/fixtures/tls/origin.pem", top ? top : ".");
    snprintf(key, sizeof key, "%s/fixtures/tls/origin-key.pem", top ? top : ".");
    sctx = SSL_CTX_new(TLS_server_method());
    cctx = SSL_CTX_new(TLS_client_method());
    if (SSL_CTX_use_certificate_chain_file(sctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(sctx, key, SSL_FILETYPE_PEM) != 1) {
        printf("fixtures/tls not found (set top_srcdir), skipping\n");
        return 77;
    }
    SSL_CTX_set_min_proto_version(sctx, TLS1_3_VERSION);
    SSL_CTX_set_mode(sctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_mode(cctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_num_tickets(sctx, 0);
    SSL_CTX_set_client_hello_cb(sctx, hello_cb, NULL);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);

    uv_loop_init(&loop);
    env.loop = &loop;
    uv_timer_init(&loop, &timer);
    uv_timer_start(&timer, tick, 50, 50);
    uv_tcp_init(&loop, &listener);
    uv_ip4_addr("127.0.0.1", 0, &a);
    CHECK_EQ_INT(uv_tcp_bind(&listener, (struct sockaddr *)&a, 0), 0);
    CHECK_EQ_INT(uv_listen((uv_stream_t *)&listener, 16, on_accept), 0);
    uv_tcp_getsockname(&listener, (struct sockaddr *)&bound, &len);
    listen_port = ntohs(((struct sockaddr_in *)&bound)->sin_port);

    test_echo(0);
    test_echo(1);
    test_wbuf_taken();
    test_paused_hello();
    CHECK_EQ_INT(conn_errors, 0);

    uv_close((uv_handle_t *)&listener, NULL);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    uv_library_shutdown();
    return check_done();
}

/*
 * connrate: new TLS connections per second, N in parallel, each one full handshake and
 * one "Connection: close" GET. Like wrk -H 'Connection: close', but it waits in epoll
 * while a handshake is in flight: wrk keeps its socket registered for writability during
 * SSL_connect and spins until the server answers, burning CPU in proportion to how long
 * the system under test takes to answer, CPU taken from that system on a small machine.
 *
 *   connrate [-c CONNS] [-d SECS] https://HOST:PORT/PATH
 *
 * Prints what wrk prints for these figures ("C requests in Ss", "Requests/sec: R",
 * "Socket errors: connect E, ...", E counting every connection that failed or did not end
 * in a 200 answer), then its own CPU per
 * connection. Certificates are not checked (wrk does not either). -d takes 10 or 10s.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ST_CONNECT, ST_HANDSHAKE, ST_SEND, ST_RECV };

typedef struct {
    int fd;
    int state;
    SSL *ssl;
    size_t sent;
    size_t got;
    char head[16];
} cconn_t;

static SSL_CTX *ctx;
static struct sockaddr_storage addr;
static socklen_t addrlen;
static char host[256];
static char req[1024];
static size_t reqlen;
static int epfd;
static unsigned long done_ok, errors;
static double deadline;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void watch(cconn_t *c, uint32_t ev, int op)
{
    struct epoll_event e = {.events = ev, .data.ptr = c};

    if (epoll_ctl(epfd, op, c->fd, &e) < 0) {
        perror("connrate: epoll_ctl");
        exit(1);
    }
}

static void start(cconn_t *c)
{
    int one = 1;

    c->fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        perror("connrate: socket");
        exit(1);
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->state = ST_CONNECT;
    c->sent = c->got = 0;
    c->ssl = NULL;
    if (connect(c->fd, (struct sockaddr *)&addr, addrlen) < 0 && errno != EINPROGRESS) {
        perror("connrate: connect");
        exit(1);
    }
    watch(c, EPOLLOUT, EPOLL_CTL_ADD);
}

static void finish(cconn_t *c, int ok)
{
    if (ok)
        done_ok++;
    else
        errors++;
    if (c->ssl)
        SSL_free(c->ssl);
    c->ssl = NULL;
    close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
    if (now_s() < deadline)
        start(c);
}

/* Waits for what OpenSSL asked for; returns 0, or -1 on a real error. */
static int want(cconn_t *c, int r)
{
    int e = SSL_get_error(c->ssl, r);

    if (e == SSL_ERROR_WANT_READ) {
        watch(c, EPOLLIN, EPOLL_CTL_MOD);
        return 0;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        watch(c, EPOLLOUT, EPOLL_CTL_MOD);
        return 0;
    }
    ERR_clear_error();
    return -1;
}

static void step(cconn_t *c)
{
    char buf[16384];
    int r, err;
    socklen_t l = sizeof(err);

    switch (c->state) {
    case ST_CONNECT:
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0 || err) {
            finish(c, 0);
            return;
        }
        c->ssl = SSL_new(ctx);
        if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) {
            fprintf(stderr, "connrate: SSL_new failed\n");
            exit(1);
        }
        SSL_set_tlsext_host_name(c->ssl, host);
        c->state = ST_HANDSHAKE;
        /* fall through */
    case ST_HANDSHAKE:
        r = SSL_connect(c->ssl);
        if (r != 1) {
            if (want(c, r) < 0)
                finish(c, 0);
            return;
        }
        c->state = ST_SEND;
        /* fall through */
    case ST_SEND:
        while (c->sent < reqlen) {
            r = SSL_write(c->ssl, req + c->sent, (int)(reqlen - c->sent));
            if (r <= 0) {
                if (want(c, r) < 0)
                    finish(c, 0);
                return;
            }
            c->sent += (size_t)r;
        }
        c->state = ST_RECV;
        watch(c, EPOLLIN, EPOLL_CTL_MOD);
        /* fall through */
    case ST_RECV:
        for (;;) {
            r = SSL_read(c->ssl, buf, sizeof(buf));
            if (r > 0) {
                if (c->got < sizeof(c->head)) {
                    size_t n = sizeof(c->head) - c->got;
                    memcpy(c->head + c->got, buf, (size_t)r < n ? (size_t)r : n);
                }
                c->got += (size_t)r;
                continue;
            }
            err = SSL_get_error(c->ssl, r);
            if (err == SSL_ERROR_ZERO_RETURN || err == SSL_ERROR_SYSCALL) {
                /* The end of the answer: the server closed, as asked. */
                ERR_clear_error();
                finish(c, c->got >= 12 && memcmp(c->head, "HTTP/1.1 200", 12) == 0);
                return;
            }
            if (want(c, r) < 0)
                finish(c, 0);
            return;
        }
    }
}

static int parse_url(const char *url, char *path, size_t pathlen)
{
    const char *p, *slash, *colon;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&addr;
    int port;

    if (strncmp(url, "https://", 8) != 0)
        return -1;
    p = url + 8;
    slash = strchr(p, '/');
    if (!slash)
        slash = p + strlen(p);
    colon = memchr(p, ':', (size_t)(slash - p));
    if (!colon || (size_t)(colon - p) >= sizeof(host))
        return -1;
    memcpy(host, p, (size_t)(colon - p));
    host[colon - p] = 0;
    port = atoi(colon + 1);
    if (port <= 0 || port > 65535)
        return -1;
    snprintf(path, pathlen, "%s", *slash ? slash : "/");
    memset(&addr, 0, sizeof(addr));
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
        return -1;
    addrlen = sizeof(*a4);
    return 0;
}

int main(int argc, char **argv)
{
    int conns = 10, opt, i, n;
    double secs = 10, t0, t1, c0;
    char path[512];
    cconn_t *cs;
    struct epoll_event ev[64];

    while ((opt = getopt(argc, argv, "c:d:")) != -1) {
        if (opt == 'c')
            conns = atoi(optarg);
        else if (opt == 'd')
            secs = atof(optarg);
        else
            goto usage;
    }
    if (optind != argc - 1 || conns < 1 || secs <= 0 ||
        parse_url(argv[optind], path, sizeof(path)) < 0)
        goto usage;
    reqlen = (size_t)snprintf(req, sizeof(req),
                              "GET %s HTTP/1.1\r\nHost: %s:%u\r\nConnection: close\r\n\r\n", path,
                              host, ntohs(((struct sockaddr_in *)&addr)->sin_port));
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return 1;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    /* No session cache: each connection is a full handshake, as with wrk. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* A server that closes without close_notify (mitmdump does) still ended its answer. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    cs = calloc((size_t)conns, sizeof(*cs));
    if (epfd < 0 || !cs)
        return 1;
    t0 = now_s();
    c0 = cpu_s();
    deadline = t0 + secs;
    for (i = 0; i < conns; i++)
        start(&cs[i]);
    for (;;) {
        double t = now_s();

        if (t >= deadline)
            break;
        n = epoll_wait(epfd, ev, 64, (int)((deadline - t) * 1000) + 1);
        if (n < 0 && errno != EINTR) {
            perror("connrate: epoll_wait");
            return 1;
        }
        for (i = 0; i < n; i++)
            step(ev[i].data.ptr);
    }
    t1 = now_s();
    printf("  %lu requests in %.2fs, one connection each\n", done_ok, t1 - t0);
    if (errors)
        printf("  Socket errors: connect %lu, read 0, write 0, timeout 0\n", errors);
    printf("Requests/sec: %10.2f\n", (double)done_ok / (t1 - t0));
    printf("CPU/conn of connrate: %.0f us\n",
           done_ok ? (cpu_s() - c0) * 1e6 / (double)done_ok : 0.0);
    return done_ok ? 0 : 1;

usage:
    fprintf(stderr, "usage: connrate [-c CONNS] [-d SECS] https://IPV4:PORT/PATH\n");
    return 2;
}

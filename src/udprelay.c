/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "udprelay.h"

#define SESSIONS_MAX 4096
#define BUCKETS 8192 /* a power of 2, twice SESSIONS_MAX: chains of one or two */
#define IDLE_MS 30000

typedef struct session {
    struct session *next, *prev; /* newest first */
    struct session *hnext;       /* the next in its bucket */
    uint32_t hash;
    udprelay_t *u;
    uv_udp_t up; /* ours, connected to orig */
    struct sockaddr_storage client, orig;
    procinfo_t pi;                              /* the sender's, read by session_who */
    char comm[sizeof(((procinfo_t *)0)->name)]; /* the name (comm) pi was read for */
    uint64_t last;
    int closing;
} session_t;

struct udprelay {
    uv_loop_t *loop;
    recorder_t *rec;
    udprelay_lookup_fn lookup;
    void *opaque;
    uv_udp_t listener[2];
    int nlisteners;
    uv_timer_t sweep;
    session_t *sessions, *oldest;
    size_t nsessions;
    session_t *bucket[BUCKETS]; /* by client and original destination */
    int handles;
    int stopping;
    uint8_t buf[65536];
};

typedef struct send_req {
    uv_udp_send_t req;
    size_t len;
    uint8_t data[];
} send_req_t;

static void maybe_free(udprelay_t *u)
{
    if (u->stopping && u->handles == 0)
        free(u);
}

static void handle_closed(uv_handle_t *h)
{
    udprelay_t *u = h->data;
    u->handles--;
    maybe_free(u);
}

static void session_closed(uv_handle_t *h)
{
    session_t *s = h->data;
    udprelay_t *u = s->u;

    free(s);
    u->handles--;
    maybe_free(u);
}

static void session_close(session_t *s)
{
    udprelay_t *u = s->u;

    if (s->closing)
        return;
    s->closing = 1;
    if (s->prev)
        s->prev->next = s->next;
    else
        u->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        u->oldest = s->prev;
    for (session_t **pp = &u->bucket[s->hash & (BUCKETS - 1)]; *pp; pp = &(*pp)->hnext)
        if (*pp == s) {
            *pp = s->hnext;
            break;
        }
    u->nsessions--;
    uv_close((uv_handle_t *)&s->up, session_closed);
}

/* One buffer serves every socket: a datagram is handled before the next read. */
static void alloc_listener(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    udprelay_t *u = h->data;
    b->base = (char *)u->buf;
    b->len = sizeof(u->buf);
}

static void alloc_session(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    udprelay_t *u = ((session_t *)h->data)->u;
    b->base = (char *)u->buf;
    b->len = sizeof(u->buf);
}

static void send_cb(uv_udp_send_t *req, int status)
{
    free(req);
}

static void send_copy(uv_udp_t *h, const void *data, size_t len, const struct sockaddr *to)
{
    send_req_t *r;
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);

    /* Most datagrams go out at once; only a full socket buffer needs a copy. */
    if (uv_udp_try_send(h, &b, 1, to) == (int)len)
        return;
    if (!(r = malloc(sizeof(*r) + len)))
        return;
    memcpy(r->data, data, len);
    r->len = len;
    b = uv_buf_init((char *)r->data, (unsigned)len);
    if (uv_udp_send(&r->req, h, &b, 1, to, send_cb) < 0)
        free(r);
}

static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET)
        return memcmp(&((struct sockaddr_in *)a)->sin_addr, &((struct sockaddr_in *)b)->sin_addr,
                      4) == 0 &&
               ((struct sockaddr_in *)a)->sin_port == ((struct sockaddr_in *)b)->sin_port;
    return memcmp(&((struct sockaddr_in6 *)a)->sin6_addr, &((struct sockaddr_in6 *)b)->sin6_addr,
                  16) == 0 &&
           ((struct sockaddr_in6 *)a)->sin6_port == ((struct sockaddr_in6 *)b)->sin6_port;
}

/* An answer from the server: back to the application, from the listener. */
static void up_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *buf, const struct sockaddr *from,
                    unsigned flags)
{
    session_t *s = h->data;
    udprelay_t *u = s->u;
    uv_udp_t *l;

    if (n <= 0 || s->closing)
        return;
    s->last = uv_now(u->loop);
    recorder_udp(u->rec, (struct sockaddr *)&s->orig, (struct sockaddr *)&s->client, REC_S2C,
                 buf->base, (size_t)n, rec_now(), &s->pi);
    l = &u->listener[s->client.ss_family == AF_INET6 && u->nlisteners > 1 ? 1 : 0];
    send_copy(l, buf->base, (size_t)n, (struct sockaddr *)&s->client);
}

/* FNV-1a over an address and port (network order, as they are in the sockaddr). */
static uint32_t hash_addr(uint32_t h, const struct sockaddr_storage *a)
{
    const uint8_t *p;
    size_t n;
    uint16_t port;

    if (a->ss_family == AF_INET6) {
        p = (const uint8_t *)&((const struct sockaddr_in6 *)a)->sin6_addr;
        n = 16;
        port = ((const struct sockaddr_in6 *)a)->sin6_port;
    } else {
        p = (const uint8_t *)&((const struct sockaddr_in *)a)->sin_addr;
        n = 4;
        port = ((const struct sockaddr_in *)a)->sin_port;
    }
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    h = (h ^ (port & 0xff)) * 16777619u;
    return (h ^ (port >> 8)) * 16777619u;
}

/* The session of a client socket and its original destination: found through the hash
   table, so a datagram costs the same with 10 sessions or 4,096 (each new DNS query of a
   stub resolver is a socket, and so a session, of its own). */
static session_t *session_get(udprelay_t *u, const struct sockaddr_storage *client,
                              const struct sockaddr_storage *orig)
{
    uint32_t h = hash_addr(hash_addr(2166136261u, client), orig);
    session_t *s;

    for (s = u->bucket[h & (BUCKETS - 1)]; s; s = s->hnext)
        if (s->hash == h && same_addr(&s->client, client) && same_addr(&s->orig, orig))
            return s;
    /* Past the bound, the least recently added goes: DNS exchanges are short. */
    if (u->nsessions >= SESSIONS_MAX && u->oldest)
        session_close(u->oldest);
    if (!(s = calloc(1, sizeof(*s))))
        return NULL;
    s->u = u;
    s->hash = h;
    s->client = *client;
    s->orig = *orig;
    if (uv_udp_init(u->loop, &s->up) < 0) {
        free(s);
        return NULL;
    }
    s->up.data = s;
    u->handles++;
    if (uv_udp_connect(&s->up, (struct sockaddr *)orig) < 0 ||
        uv_udp_recv_start(&s->up, alloc_session, up_recv) < 0) {
        s->closing = 1;
        uv_close((uv_handle_t *)&s->up, session_closed);
        return NULL;
    }
    s->next = u->sessions;
    if (u->sessions)
        u->sessions->prev = s;
    else
        u->oldest = s;
    u->sessions = s;
    s->hnext = u->bucket[h & (BUCKETS - 1)];
    u->bucket[h & (BUCKETS - 1)] = s;
    u->nsessions++;
    return s;
}

/* The session's process, from the lookup's pid and comm (pi): read from /proc (procinfo_read)
   once a session, and again only when the sender is another (a port closed and bound again by
   another process, a socket shared after fork). Compared with the comm it was read for, not
   with pi.name, which procinfo_read lengthens for a name cut at 15 characters. */
static void session_who(session_t *s, const procinfo_t *pi)
{
    if (s->comm[0] && s->pi.pid == pi->pid && strcmp(s->comm, pi->name) == 0)
        return;
    snprintf(s->comm, sizeof(s->comm), "%s", pi->name);
    procinfo_read(pi->pid, pi->name, &s->pi);
}

/* A datagram from an application, redirected to us. */
static void listener_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *buf, const struct sockaddr *from,
                          unsigned flags)
{
    udprelay_t *u = h->data;
    struct sockaddr_storage client, orig;
    procinfo_t pi;
    session_t *s;
    uv_buf_t b;

    if (n < 0 || !from || u->stopping)
        return;
    memset(&client, 0, sizeof(client));
    memcpy(&client, from,
           from->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    if (u->lookup(u->opaque, from, &orig, &pi) < 0) {
        log_debug("udp datagram from a socket that was not redirected: dropped");
        return;
    }
    if (!(s = session_get(u, &client, &orig)))
        return;
    session_who(s, &pi);
    s->last = uv_now(u->loop);
    recorder_udp(u->rec, (struct sockaddr *)&client, (struct sockaddr *)&orig, REC_C2S, buf->base,
                 (size_t)n, rec_now(), &s->pi);
    b = uv_buf_init(buf->base, (unsigned)n);
    if (uv_udp_try_send(&s->up, &b, 1, NULL) != n)
        send_copy(&s->up, buf->base, (size_t)n, NULL);
}

static void sweep_cb(uv_timer_t *t)
{
    udprelay_t *u = t->data;
    uint64_t now = uv_now(u->loop);
    session_t *s = u->sessions;

    while (s) {
        session_t *n = s->next;
        if (now - s->last > IDLE_MS)
            session_close(s);
        s = n;
    }
}

int udprelay_start(uv_loop_t *loop, recorder_t *rec, udprelay_lookup_fn lookup, void *opaque,
                   int port, int *bound, udprelay_t **out, char *err, size_t errlen)
{
    udprelay_t *u = calloc(1, sizeof(*u));
    struct sockaddr_storage ss;
    int len, rc = 0;

    if (!u) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    u->loop = loop;
    u->rec = rec;
    u->lookup = lookup;
    u->opaque = opaque;
    for (int i = 0; i < 2; i++) {
        uv_udp_t *l = &u->listener[i];
        memset(&ss, 0, sizeof(ss));
        if (i == 0)
            uv_ip4_addr("127.0.0.1", port, (struct sockaddr_in *)&ss);
        else
            uv_ip6_addr("::1", port, (struct sockaddr_in6 *)&ss);
        if ((rc = uv_udp_init(loop, l)) < 0)
            goto fail;
        l->data = u;
        u->handles++;
        u->nlisteners++;
        rc = uv_udp_bind(l, (struct sockaddr *)&ss, i == 1 ? UV_UDP_IPV6ONLY : 0);
        if (rc == 0)
            rc = uv_udp_recv_start(l, alloc_listener, listener_recv);
        if (rc < 0) {
            if (i == 1) {
                u->nlisteners--;
                uv_close((uv_handle_t *)l, handle_closed);
                break;
            }
            goto fail;
        }
        if (i == 0) {
            len = sizeof(ss);
            uv_udp_getsockname(l, (struct sockaddr *)&ss, &len);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    uv_timer_init(loop, &u->sweep);
    u->sweep.data = u;
    u->handles++;
    uv_timer_start(&u->sweep, sweep_cb, 5000, 5000);
    *bound = port;
    *out = u;
    return 0;
fail:
    snprintf(err, errlen, "cannot listen for UDP on loopback port %d: %s", port, mr_strerror(rc));
    u->stopping = 1;
    for (int i = 0; i < u->nlisteners; i++)
        uv_close((uv_handle_t *)&u->listener[i], handle_closed);
    return rc;
}

void udprelay_stop(udprelay_t *u)
{
    if (!u || u->stopping)
        return;
    u->stopping = 1;
    while (u->sessions)
        session_close(u->sessions);
    for (int i = 0; i < u->nlisteners; i++)
        uv_close((uv_handle_t *)&u->listener[i], handle_closed);
    uv_close((uv_handle_t *)&u->sweep, handle_closed);
}

void udprelay_set_lookup_opaque(udprelay_t *u, void *opaque)
{
    u->opaque = opaque;
}

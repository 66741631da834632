/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "log.h"
#include "replay_server_int.h"
#include "replay_ws.h"

/*
 * A WebSocket conversation of the replay server (RFC 6455 over an HTTP/1.1 upgrade): the
 * recorded messages of the entry, in turns. The server's messages before the client's
 * first go out at once; each data message from the client then brings the server's
 * messages that followed the client's next recorded one. Pings get pongs, a close gets its
 * close back and ends the connection; the recording's own control frames are not replayed.
 */

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_MSG_MAX (16u << 20) /* a client message we assemble, at most */

struct rws {
    rconn_t *c;
    const http_exchange_t *ex; /* borrowed from the recording */
    size_t next;               /* the first recorded message not yet played */
    uint8_t *buf;              /* client bytes not yet a whole frame */
    size_t len, cap;
    size_t msg_len; /* a fragmented message being received (its bytes are not kept) */
    int msg_op;
    int closed; /* we sent our close */
};

int rws_accept_key(const char *key, char out[RWS_ACCEPT_LEN + 1])
{
    unsigned char d[SHA_DIGEST_LENGTH];
    char in[128];
    int n;

    n = snprintf(in, sizeof(in), "%s%s", key, WS_GUID);
    if (n < 0 || (size_t)n >= sizeof(in))
        return -EINVAL;
    SHA1((const unsigned char *)in, (size_t)n, d);
    EVP_EncodeBlock((unsigned char *)out, d, SHA_DIGEST_LENGTH);
    return 0;
}

/* One unmasked frame from us, FIN set, queued after what is queued. */
static int send_frame(rws_t *w, int opcode, const uint8_t *data, size_t len)
{
    pending_t *p = calloc(1, sizeof(*p));
    size_t h = 2;

    if (!p || !(p->bytes = malloc(len + 10))) {
        free(p);
        return -ENOMEM;
    }
    p->bytes[0] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        p->bytes[1] = (uint8_t)len;
    } else if (len <= 0xffff) {
        p->bytes[1] = 126;
        p->bytes[2] = (uint8_t)(len >> 8);
        p->bytes[3] = (uint8_t)len;
        h = 4;
    } else {
        p->bytes[1] = 127;
        for (int i = 0; i < 8; i++)
            p->bytes[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        h = 10;
    }
    if (len)
        memcpy(p->bytes + h, data, len);
    p->len = h + len;
    rconn_pq_add(w->c, p, 0);
    return 0;
}

static int is_data(int opcode)
{
    return opcode == 1 || opcode == 2;
}

/* Plays the server's recorded messages from w->next up to the client's next data message. */
static void play_server_turn(rws_t *w)
{
    const http_exchange_t *ex = w->ex;

    while (w->next < ex->nws && !w->closed) {
        const http_ws_message_t *m = &ex->ws[w->next];

        /* The client's next message, or its close (our close answers its close: a server
           close after it in the recording is that answer). */
        if (m->send && (is_data(m->opcode) || m->opcode == 8))
            return;
        w->next++;
        if (m->send)
            continue;
        if (is_data(m->opcode)) {
            send_frame(w, m->opcode, m->data, m->len);
        } else if (m->opcode == 8) {
            /* the server closed first in the recording */
            send_frame(w, 8, m->data, m->len > 125 ? 125 : m->len);
            w->closed = 1;
        }
    }
}

rws_t *rws_new(rconn_t *c, const http_exchange_t *ex)
{
    rws_t *w = calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    w->c = c;
    w->ex = ex;
    w->msg_op = -1;
    return w;
}

void rws_start(rws_t *w)
{
    play_server_turn(w);
}

/* A whole message from the client. */
static void client_message(rws_t *w, int opcode)
{
    const http_exchange_t *ex = w->ex;

    (void)opcode;
    /* Its recorded counterpart: the next data message the client sent (not past its close:
       more messages than recorded get no answer). */
    while (w->next < ex->nws && !(ex->ws[w->next].send && is_data(ex->ws[w->next].opcode))) {
        if (ex->ws[w->next].send && ex->ws[w->next].opcode == 8)
            return;
        w->next++;
    }
    if (w->next < ex->nws)
        w->next++;
    play_server_turn(w);
}

/* One frame from the client (unmasked in place). 0, or -1 to end the connection. */
static int client_frame(rws_t *w, int fin, int opcode, const uint8_t *data, size_t len)
{
    if (opcode >= 8) {
        if (opcode == 9)
            return send_frame(w, 10, data, len) < 0 ? -1 : 0;
        if (opcode == 8) {
            if (!w->closed)
                send_frame(w, 8, data, len >= 2 ? 2 : 0);
            w->closed = 1;
            return -1;
        }
        return 0; /* pong */
    }
    if (opcode != 0) {
        if (w->msg_op >= 0)
            return -1; /* a new message inside a fragmented one */
        w->msg_op = opcode;
        w->msg_len = 0;
    } else if (w->msg_op < 0) {
        return -1; /* a continuation of nothing */
    }
    if (w->msg_len + len > WS_MSG_MAX)
        return -1;
    w->msg_len += len;
    if (!fin)
        return 0;
    client_message(w, w->msg_op);
    w->msg_op = -1;
    w->msg_len = 0;
    return 0;
}

int rws_feed(rws_t *w, const uint8_t *data, size_t len)
{
    size_t off = 0;

    if (w->len + len > WS_MSG_MAX + 14)
        return -1;
    if (w->len + len > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        uint8_t *n;
        while (cap < w->len + len)
            cap *= 2;
        if (!(n = realloc(w->buf, cap)))
            return -1;
        w->buf = n;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, data, len);
    w->len += len;
    for (;;) {
        uint8_t *b = w->buf + off;
        size_t have = w->len - off, h = 2;
        uint64_t plen;

        if (have < 2)
            break;
        plen = b[1] & 0x7f;
        if (plen == 126)
            h = 4;
        else if (plen == 127)
            h = 10;
        if (!(b[1] & 0x80))
            return -1; /* a client's frames are masked (RFC 6455 5.1) */
        if (have < h + 4)
            break;
        if (plen == 126) {
            plen = ((uint64_t)b[2] << 8) | b[3];
        } else if (plen == 127) {
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = (plen << 8) | b[2 + i];
        }
        if (plen > WS_MSG_MAX)
            return -1;
        if (have < h + 4 + plen)
            break;
        {
            const uint8_t *mask = b + h;
            uint8_t *p = b + h + 4;

            for (uint64_t i = 0; i < plen; i++)
                p[i] ^= mask[i & 3];
            if (client_frame(w, b[0] & 0x80, b[0] & 0x0f, p, (size_t)plen) < 0)
                return -1;
        }
        off += h + 4 + (size_t)plen;
    }
    memmove(w->buf, w->buf + off, w->len - off);
    w->len -= off;
    return 0;
}

int rws_closed(const rws_t *w)
{
    return w->closed;
}

void rws_free(rws_t *w)
{
    if (!w)
        return;
    free(w->buf);
    free(w);
}

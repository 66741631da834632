/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "replay_server_int.h"
#include "replay_ws.h"
#include "websocket.h"

/*
 * A WebSocket conversation of the replay server (RFC 6455 over an HTTP/1.1 upgrade, or over
 * an HTTP/2 stream, RFC 8441): the recorded messages of the entry, in turns. The server's messages
 * before the client's first go out at once; each data message from the client then brings the
 * server's messages that followed the client's next recorded one. Pings get pongs, a close gets its
 * close back and ends the connection; the recording's own control frames are not replayed.
 * The client's frames are read by the recorder's decoder (formats/websocket.c), which here
 * also requires them masked.
 */

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_MSG_MAX (16u << 20) /* a client message, at most */

struct rws {
    rconn_t *c;
    int32_t stream;            /* HTTP/2: the extended CONNECT's; 0 after an upgrade */
    const http_exchange_t *ex; /* borrowed from the recording */
    size_t next;               /* the first recorded message not yet played */
    websocket_conn_t *dec;     /* the client's frames (formats/websocket.c) */
    int closed;                /* we sent our close */
    int end;                   /* the client closed, or sent what we do not take */
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

/* One unmasked frame from us, FIN set, queued after what is queued (delay_ms from now). */
static int send_frame(rws_t *w, int opcode, const uint8_t *data, size_t len, uint64_t delay_ms)
{
    uint8_t *b = malloc(len + 10);
    size_t h = 2;

    if (!b)
        return -ENOMEM;
    b[0] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        b[1] = (uint8_t)len;
    } else if (len <= 0xffff) {
        b[1] = 126;
        b[2] = (uint8_t)(len >> 8);
        b[3] = (uint8_t)len;
        h = 4;
    } else {
        b[1] = 127;
        for (int i = 0; i < 8; i++)
            b[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        h = 10;
    }
    if (len)
        memcpy(b + h, data, len);
    return rconn_ws_send(w->c, w->stream, b, h + len, delay_ms);
}

static int is_data(int opcode)
{
    return opcode == 1 || opcode == 2;
}

/* Plays the server's recorded messages from w->next up to the client's next data message. With
   --realtime each goes as long after now as it came after since_usec (the recorded time of
   what began the turn) in the recording. */
static void play_server_turn(rws_t *w, uint64_t since_usec)
{
    const http_exchange_t *ex = w->ex;

    while (w->next < ex->nws && !w->closed) {
        const http_ws_message_t *m = &ex->ws[w->next];
        uint64_t delay = w->c->srv->cfg.o->realtime && since_usec && m->ts_usec > since_usec
                             ? (m->ts_usec - since_usec) / 1000
                             : 0;

        /* The client's next message, or its close (our close answers its close: a server
           close after it in the recording is that answer). */
        if (m->send && (is_data(m->opcode) || m->opcode == 8))
            return;
        w->next++;
        if (m->send)
            continue;
        if (is_data(m->opcode)) {
            send_frame(w, m->opcode, m->data, m->len, delay);
        } else if (m->opcode == 8) {
            /* the server closed first in the recording */
            send_frame(w, 8, m->data, m->len > 125 ? 125 : m->len, delay);
            w->closed = 1;
        }
    }
}

/* A whole message from the client: its recorded counterpart is the next data message the
   client sent (not past its close: more messages than recorded get no answer). */
static void client_message(rws_t *w)
{
    const http_exchange_t *ex = w->ex;
    uint64_t since = 0;

    while (w->next < ex->nws && !(ex->ws[w->next].send && is_data(ex->ws[w->next].opcode))) {
        if (ex->ws[w->next].send && ex->ws[w->next].opcode == 8)
            return;
        w->next++;
    }
    if (w->next < ex->nws)
        since = ex->ws[w->next++].ts_usec;
    play_server_turn(w, since);
}

/* The decoder's message (control frames are messages too; the data is kept only up to 125
   bytes, all a ping's or a close's can have). */
static void on_message(void *opaque, int dir, int opcode, const uint8_t *data, size_t len,
                       uint64_t total, uint64_t ts_usec)
{
    rws_t *w = opaque;

    (void)ts_usec;
    if (dir != WEBSOCKET_CLIENT || w->end)
        return;
    switch (opcode) {
    case 1:
    case 2:
        if (total > WS_MSG_MAX)
            w->end = 1;
        else
            client_message(w);
        break;
    case 8:
        if (!w->closed)
            send_frame(w, 8, data, len >= 2 ? 2 : 0, 0);
        w->closed = 1;
        w->end = 1;
        break;
    case 9:
        if (send_frame(w, 10, data, len, 0) < 0)
            w->end = 1;
        break;
    default: /* a pong */
        break;
    }
}

rws_t *rws_new(rconn_t *c, int32_t stream, const http_exchange_t *ex)
{
    static const websocket_callbacks_t cb = {on_message, NULL};
    rws_t *w = calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    /* No extension was taken up: a compressed frame is an error, as it should be. */
    if (!(w->dec = websocket_conn_new(NULL, NULL, &cb, w, 125, 0))) {
        free(w);
        return NULL;
    }
    websocket_conn_require_masks(w->dec);
    w->c = c;
    w->stream = stream;
    w->ex = ex;
    return w;
}

void rws_start(rws_t *w)
{
    /* The first turn's delays count from the recorded answer to the upgrade. */
    play_server_turn(w, w->ex->t_resp_start);
}

int rws_feed(rws_t *w, const uint8_t *data, size_t len)
{
    if (websocket_conn_feed(w->dec, WEBSOCKET_CLIENT, data, len, 0) < 0 || w->end)
        return -1;
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
    websocket_conn_free(w->dec);
    free(w);
}

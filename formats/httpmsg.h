/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_FORMATS_HTTPMSG_H
#define MITMREC_FORMATS_HTTPMSG_H

#include <stddef.h>
#include <stdint.h>
#include <strings.h>

/*
 * The HTTP exchange model shared by the decoders (http1, later http2) and the
 * HAR writer. Plain structs; everything a struct points to is owned by it and
 * released by http_exchange_free().
 */

typedef struct http_header {
    char *name;  /* as on the wire, NUL-terminated */
    char *value; /* in name's allocation, after its NUL: free name only */
} http_header_t;

typedef struct http_msg {
    http_header_t *headers; /* wire order */
    size_t nheaders;
    size_t headers_cap;
    int64_t headers_size; /* bytes from the first byte of the start line through the
                             blank line; -1 if unknown */
    uint8_t *body;        /* decoded from chunked transfer coding, NOT from
                             Content-Encoding; at most max_body bytes kept. When
                             spill is set, only the last body_len of them: read the
                             whole with http_msg_body() */
    size_t body_len;
    size_t body_cap;
    struct spill_list *spill; /* NULL, or the kept bytes before those in body, in the
                                 spill file (spill.h) */
    uint64_t body_total;      /* full body size, even past max_body */
    int body_truncated;       /* body_total > http_msg_kept() */
    uint64_t wire_body_size;  /* body bytes on the wire (chunk framing included) */
    int complete;             /* the message ended normally */
    http_header_t *trailers;  /* HTTP/2 trailers or chunked trailers, wire order */
    size_t ntrailers;
    size_t trailers_cap;
} http_msg_t;

/* One WebSocket message, as Chrome's HAR writes it in _webSocketMessages. */
typedef struct http_ws_message {
    int send;         /* 1: client to server ("send"), 0: "receive" */
    uint64_t ts_usec; /* when its last frame was seen */
    int opcode;       /* 1 text, 2 binary, 8 close, 9 ping, 10 pong */
    uint8_t *data;    /* payload after unmasking and permessage-deflate */
    size_t len;
} http_ws_message_t;

typedef struct http_exchange {
    uint64_t seq;             /* 0, 1, ... within its connection */
    char *method;             /* e.g. "GET" */
    char *target;             /* request target as sent: origin-form, absolute-form, ... */
    int req_major, req_minor; /* request HTTP version */
    int status;               /* 0 when there is no response */
    char *reason;             /* status text, "" when none */
    int resp_major, resp_minor;
    http_msg_t req;
    http_msg_t resp;
    uint64_t t_req_start;  /* usec since the epoch: first byte of the request */
    uint64_t t_req_end;    /* last byte of the request */
    uint64_t t_resp_start; /* first byte of the (final) response, 0 if none */
    uint64_t t_resp_end;   /* last byte of the response */
    char *error;           /* why the exchange is incomplete, or NULL */
    uint32_t stream_id;    /* HTTP/2 stream, 0 for HTTP/1 */
    int pushed;            /* an HTTP/2 server push (PUSH_PROMISE) */
    http_ws_message_t *ws; /* WebSocket messages after an upgrade (RFC 6455 / 8441) */
    size_t nws;
    size_t ws_cap;
    int announced;      /* on_request_head was called for it (the decoders set it) */
    void *user;         /* free for the consumer; formats/ only moves it (h2c upgrade) */
    int64_t user_frame; /* free for the consumer (pcapng frame number) */
} http_exchange_t;

/* Allocates a zeroed exchange; NULL on ENOMEM. */
http_exchange_t *http_exchange_new(void);

/* Frees the exchange and all it owns. NULL is a no-op. */
void http_exchange_free(http_exchange_t *ex);

/* Sets *h to a copy of name and value, both in one allocation (h->name). 0 or -ENOMEM. */
int http_header_set(http_header_t *h, const char *name, size_t nlen, const char *value,
                    size_t vlen);

/* Frees n headers (their names and values) and the array h. */
void http_headers_free(http_header_t *h, size_t n);

/* Appends a header (copies name and value). Returns 0 or -ENOMEM. */
int http_msg_add_header(http_msg_t *m, const char *name, size_t nlen, const char *value,
                        size_t vlen);

/*
 * Appends body bytes; keeps at most max_body, counts all in body_total and sets
 * body_truncated past the limit. Once spill_enable() was called, a body whose kept bytes
 * pass its threshold goes on in the spill file and memory keeps at most HTTP_SPILL_TAIL
 * of it. Returns 0 or -ENOMEM.
 */
int http_msg_add_body(http_msg_t *m, const void *data, size_t len, size_t max_body);

#define HTTP_SPILL_TAIL (16u << 10)

/* The bytes of the body kept, in memory and in the spill file. */
size_t http_msg_kept(const http_msg_t *m);

/*
 * The kept body: m->body itself when nothing of it is in the spill file (*owned = NULL);
 * otherwise a malloc'd copy, also in *owned, that the caller frees. 0, -ENOMEM, or the
 * -errno of reading the spill file back.
 */
int http_msg_body(const http_msg_t *m, const uint8_t **data, size_t *len, uint8_t **owned);

/* Frees the body, in memory and in the spill file; the message keeps no body bytes. */
void http_msg_body_free(http_msg_t *m);

/* Appends a trailer (copies). Returns 0 or -ENOMEM. */
int http_msg_add_trailer(http_msg_t *m, const char *name, size_t nlen, const char *value,
                         size_t vlen);

/* Appends a WebSocket message (copies data). Returns 0 or -ENOMEM. */
int http_exchange_add_ws(http_exchange_t *ex, int send, uint64_t ts_usec, int opcode,
                         const void *data, size_t len);

/* 1 when header name a is b, case-insensitively. Names whose first letters differ (case
   folded) are told apart without calling strcasecmp: most names in a lookup differ there. */
static inline int http_name_is(const char *a, const char *b)
{
    return (((unsigned char)a[0] | 0x20) == ((unsigned char)b[0] | 0x20)) && strcasecmp(a, b) == 0;
}

/* First header with that name (case-insensitive), or NULL. */
const char *http_msg_header(const http_msg_t *m, const char *name);

/* Whether a comma-separated header value (Upgrade, Connection) lists token (any case). */
int http_header_has_token(const char *value, const char *token);

/* Whether ex's 101 switched to WebSocket (its Upgrade lists "websocket"). */
int http_exchange_websocket(const http_exchange_t *ex);
/* Whether ex is an HTTP/2 WebSocket (RFC 8441): an extended CONNECT with :protocol
   websocket that got a 2xx. */
int http_exchange_ws_connect(const http_exchange_t *ex);

/*
 * Whether ex is a request whose head was cut short past its request line (the decoder kept
 * its method and target, and says why in error): never announced, but a request all the
 * same, which the recorder and read mode both record as far as it got.
 */
int http_exchange_head_cut(const http_exchange_t *ex);

/* Sets *dst to a NUL-terminated copy of len bytes of src (replacing any old value). */
int http_strset(char **dst, const char *src, size_t len);

#endif

/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_REPLAYDB_H
#define MITMREC_REPLAYDB_H

#include <stddef.h>
#include <stdint.h>

#include "httpmsg.h"

/*
 * A recording loaded for replay: its HTTP entries, its TCP conversations that
 * were not HTTP, the DNS answers it holds and the addresses of its names.
 * Loaded from a pcapng or pcap (with its DSBs and/or a key log, through
 * capture.h) or from a HAR 1.2 (mitmrec's, mitmproxy's, a browser's export).
 * Read-only once loaded, except the use counters of conversations.
 */

typedef struct replay_entry {
    size_t index;        /* 0, 1, ... in recording order */
    http_exchange_t *ex; /* request and response; owned */
    char scheme[8];      /* "http" / "https" */
    char host[256];      /* Host / :authority without port, else SNI, else address */
    uint16_t port;
    char server_ip[64]; /* "" when unknown */
    char *target;       /* origin-form path and query; owned */
    char *url;          /* for reports; owned */
    int h2;             /* it went over HTTP/2 */
    int ws;             /* a WebSocket: an HTTP/1.1 upgrade's 101 or an HTTP/2 extended
                           CONNECT's 200 (RFC 8441, whose method is then kept as GET, so
                           either answers either) */
    int body_decoded;   /* the body had its Content-Encoding undone (HAR) */
} replay_entry_t;

typedef struct replay_chunk {
    int dir; /* 0: client to server, 1: server to client */
    uint64_t ts_usec;
    uint8_t *data; /* owned */
    size_t len;
} replay_chunk_t;

/* A TCP conversation that was not HTTP (plain, or decrypted TLS). */
typedef struct replay_conv {
    char server_ip[64];
    uint16_t port;
    int tls;
    char sni[256];          /* "" when none */
    replay_chunk_t *chunks; /* owned */
    size_t nchunks;
    int used; /* set by the server once a connection took it */
} replay_conv_t;

/* A recorded DNS response (whole message). */
typedef struct replay_dns {
    char name[256];
    uint16_t qtype;
    uint8_t *msg; /* owned */
    size_t len;
} replay_dns_t;

/* A name and an address it had in the recording (from DNS or from the connections). */
typedef struct replay_name {
    char name[256];
    int family;
    uint8_t addr[16];
} replay_name_t;

typedef struct replaydb {
    replay_entry_t *entries;
    size_t nentries;
    replay_conv_t *convs;
    size_t nconvs;
    replay_dns_t *dns;
    size_t ndns;
    replay_name_t *names;
    size_t nnames;
    int har; /* loaded from a HAR */
} replaydb_t;

/*
 * Loads path: a HAR when it starts with '{', else a pcapng or pcap; keylog
 * (may be NULL) adds TLS secrets. A capture damaged after its first packet is
 * loaded as far as it goes (the reader logs the damage). On failure returns a
 * negative errno with a one-line reason in err, or an empty err when the
 * capture reader has logged it. *out is the caller's (replaydb_free).
 */
int replaydb_load(const char *path, const char *keylog, replaydb_t **out, char *err, size_t errlen);

void replaydb_free(replaydb_t *db);

/* The first recorded DNS response for (name, qtype), or NULL. */
const replay_dns_t *replaydb_find_dns(const replaydb_t *db, const char *name, uint16_t qtype);

/* Up to max addresses the recording knows for name, of any family. Returns how many. */
size_t replaydb_find_name(const replaydb_t *db, const char *name, replay_name_t *out, size_t max);

#endif

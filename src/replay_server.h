/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_REPLAY_SERVER_H
#define MITMREC_REPLAY_SERVER_H

#include <openssl/ssl.h>
#include <uv.h>

#include "ca.h"
#include "match.h"
#include "procinfo.h"
#include "recorder.h"
#include "replay_options.h"
#include "replay_report.h"
#include "replaydb.h"

/*
 * Server replay: TCP listeners on 127.0.0.1 and ::1 (one port) and a UDP
 * listener for DNS, where the redirector sends the replayed programs'
 * connections and datagrams. Each connection is answered from the
 * recording: TLS with a forged certificate for its SNI, then HTTP/1.1 or
 * HTTP/2 (ALPN, or the h2 preface) from matched entries, or a raw TCP
 * conversation. Nothing connects anywhere, unless --unmatched passthrough.
 */

typedef struct replay_server replay_server_t;

/* Where an accepted connection or a datagram was going; 0 or a negative errno. */
typedef int (*replay_lookup_fn)(void *opaque, const struct sockaddr *peer,
                                struct sockaddr_storage *orig, procinfo_t *pi);

typedef struct replay_server_cfg {
    uv_loop_t *loop;
    const replay_options_t *o;
    replaydb_t *db; /* the conversations' use marks change */
    match_t *match;
    ca_t *ca;
    SSL_CTX *server_ctx; /* client-facing TLS */
    SSL_CTX *client_ctx; /* passthrough upstream TLS, NULL without passthrough */
    recorder_t *rec_new; /* --record-new, or NULL */
    replay_report_t *report;
    replay_lookup_fn lookup_tcp, lookup_udp;
    void *lookup_opaque;           /* may be set later with replay_server_set_lookup */
    void (*on_idle)(void *opaque); /* stopping and every connection closed */
    void *idle_opaque;
} replay_server_cfg_t;

/*
 * Starts the listeners (ports picked by the system) and fills *tport, *uport
 * and *v6 (::1 listened on). cfg is copied; its pointers are borrowed and
 * must outlive the server. 0 or a negative errno with a reason in err.
 */
int replay_server_start(const replay_server_cfg_t *cfg, int *tport, int *uport, int *v6,
                        replay_server_t **out, char *err, size_t errlen);

void replay_server_set_lookup(replay_server_t *s, void *opaque);

/* Stops accepting; connections end now (force) or at their clients' pace.
   on_idle follows once all is closed; then free with replay_server_free. */
void replay_server_stop(replay_server_t *s, int force);

void replay_server_free(replay_server_t *s);

#endif

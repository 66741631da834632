/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_UDPRELAY_H
#define MITMREC_UDPRELAY_H

#include <uv.h>

#include "procinfo.h"
#include "recorder.h"

/*
 * The UDP side of local redirect mode: datagrams the redirector sends to our
 * loopback port (DNS, mostly) are forwarded from mitmrec's own sockets to
 * where they were going, answers go back to the application, and both are
 * recorded as UDP packets between the application and the server.
 */

typedef struct udprelay udprelay_t;

/* Where a datagram from peer was going, and who sent it: pi's pid and name at least (the
   relay reads the rest of pi with procinfo_read when a session begins, not per datagram).
   0 or a negative errno. */
typedef int (*udprelay_lookup_fn)(void *opaque, const struct sockaddr *peer,
                                  struct sockaddr_storage *orig_dst, procinfo_t *pi);

/*
 * Listens on 127.0.0.1 and ::1 (when there is one) with one port (0 = any),
 * into *bound. rec and loop are borrowed. Returns 0 or a negative errno with
 * a reason in err.
 */
int udprelay_start(uv_loop_t *loop, recorder_t *rec, udprelay_lookup_fn lookup, void *opaque,
                   int port, int *bound, udprelay_t **out, char *err, size_t errlen);

/* Sets the opaque pointer given to lookup. */
void udprelay_set_lookup_opaque(udprelay_t *u, void *opaque);

/* Closes every socket; the relay frees itself once they are closed. NULL is a no-op. */
void udprelay_stop(udprelay_t *u);

#endif

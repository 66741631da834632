/* SPDX-License-Identifier: MIT */
/* test_redirect's client: the code that runs in the copies of the test program that the test
   starts under chosen names, plus the address helpers both sides use.

   Commands, one per line on stdin: "tcp ADDR PORT", "udp ADDR PORT" (unconnected sendto),
   "udpc ADDR PORT" (connect, send), "thread NAME CMD" (CMD from a thread named NAME, "_" for a
   space), "fork CMD" (CMD from a forked child that does not exec). Each answers one line on
   stdout: "ok PID PEER-ADDR PEER-PORT TAG", PID being the process that ran CMD, PEER the address
   the application saw (getpeername; recvfrom's source for UDP, which for "udpc" must also equal
   getpeername), TAG the first byte the server answered; or "err WHAT". */
#ifndef MITMREC_TESTS_EXTENSION_RDCLIENT_H
#define MITMREC_TESTS_EXTENSION_RDCLIENT_H

#include <stddef.h>
#include <sys/socket.h>

#define RDCLIENT_WAIT_MS 3000 /* how long anyone waits for a peer */

/* Serves commands until stdin closes; returns the exit status. */
int rdclient_main(void);

/* host (IPv4, or IPv6 when it has a ':') and port to a sockaddr; -EINVAL if host is neither. */
int rdclient_addr_make(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len);

/* A sockaddr as text and a port, host order. */
void rdclient_addr_text(const struct sockaddr *sa, char *host, size_t hl, int *port);

/* 1 when fd becomes readable within ms. */
int rdclient_wait_readable(int fd, int ms);

#endif

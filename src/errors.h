/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_ERRORS_H
#define MITMREC_ERRORS_H

/*
 * Functions return 0 or a negative errno; codes of our own, below -4096 so
 * they never collide with errno or libuv's UV_E* values, live here.
 */
#define MR_ETLS (-5001)      /* TLS handshake or record failure */
#define MR_EVERIFY (-5002)   /* upstream certificate verification failed */
#define MR_EPROTO (-5003)    /* the client spoke neither HTTP nor TLS */
#define MR_EUPSTREAM (-5004) /* upstream connection failed */

/* A short description of a negative errno, libuv code or MR_E* code. */
const char *mr_strerror(int err);

/* "host:port" into buf, "[host]:port" for an IPv6 address, as messages and URLs write
   them ("host" and "[host]" for port 0); returns buf. */
char *mr_hostport(char *buf, unsigned long len, const char *host, unsigned port);

/* one or many, by n: "1 flow", "0 flows", "2 flows" (tcpdump's PLURAL_SUFFIX). */
static inline const char *mr_plural(unsigned long long n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

#endif

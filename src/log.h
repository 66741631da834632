/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_LOG_H
#define MITMREC_LOG_H

/*
 * One-line messages on stderr, each prefixed "mitmrec: ". Errors are logged
 * once, by the code that can explain them.
 */

enum { LOG_QUIET = 0, LOG_NORMAL = 1, LOG_VERBOSE = 2, LOG_DEBUG = 3 };

void log_set_level(int level);
/* The prefix instead of "mitmrec" (a static string; mitmreplay sets its own). */
void log_set_name(const char *name);
int log_level(void);
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Pops OpenSSL's error queue into one line (buf, len); returns buf. */
char *log_ssl_errors(char *buf, unsigned long len);

#endif

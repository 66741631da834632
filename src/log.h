/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_LOG_H
#define MITMREC_LOG_H

#include <stddef.h>
#include <stdio.h>

/*
 * One-line messages on stderr, each prefixed "mitmrec: ". Errors are logged
 * once, by the code that can explain them. What a terminal would act on in a
 * message (control characters: a process name, a URL or a header the recorded
 * programs chose) is written escaped, as \xNN.
 */

enum { LOG_QUIET = 0, LOG_NORMAL = 1, LOG_VERBOSE = 2, LOG_DEBUG = 3 };

void log_set_level(int level);
/* The prefix instead of "mitmrec" (a static string; mitmreplay sets its own). */
void log_set_name(const char *name);
int log_level(void);
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* -v: one line per flow (mitmrec) or request (mitmreplay). */
void log_verbose(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A line of fmt and a newline on f, escaped as the log's are (for reports on stdout and
   the summary). */
void log_line(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* s into out (outlen > 0, cut to fit), with C0 controls but tab, DEL and the C1
   controls (U+0080-U+009F in UTF-8) written as \xNN. Returns out. */
char *log_printable(char *out, size_t outlen, const char *s);

/* The live status line (status.c) is on the terminal (1) or not: while it is, a
   message first clears it; status.c draws it again. */
void log_status_shown(int shown);

/* Pops OpenSSL's error queue into one line (buf, len); returns buf. */
char *log_ssl_errors(char *buf, unsigned long len);

#endif

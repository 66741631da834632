/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "log.h"

/* The one piece of process-wide state besides the loop: how chatty to be. */
static int log_level_ = LOG_NORMAL;
/* ... and the program's name, set once at start-up (mitmreplay shares this code). */
static const char *log_name_ = "mitmrec";

void log_set_name(const char *name)
{
    log_name_ = name;
}

void log_set_level(int level)
{
    log_level_ = level;
}

int log_level(void)
{
    return log_level_;
}

/* 1 while status.c's line is on the terminal. */
static int status_shown_;

void log_status_shown(int shown)
{
    status_shown_ = shown;
}

char *log_printable(char *out, size_t outlen, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;

    for (; *p; p++) {
        /* Two bytes for a C1 control in UTF-8 (0xc2 0x80-0x9f), else one. */
        size_t n = *p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f ? 2
                   : (*p < 0x20 && *p != '\t') || *p == 0x7f  ? 1
                                                              : 0;

        if (n == 0) {
            if (o + 1 >= outlen)
                break;
            out[o++] = (char)*p;
            continue;
        }
        if (o + 4 * n >= outlen)
            break;
        for (size_t k = 0; k < n; k++) {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[p[k] >> 4];
            out[o++] = hex[p[k] & 15];
        }
        p += n - 1;
    }
    out[o] = '\0';
    return out;
}

static void log_v(int level, const char *kind, const char *fmt, va_list ap)
{
    char line[1024], clean[4 * sizeof(line)];

    if (level > log_level_)
        return;
    vsnprintf(line, sizeof(line), fmt, ap);
    fprintf(stderr, "%s%s: %s%s\n", status_shown_ ? "\r\033[K" : "", log_name_, kind,
            log_printable(clean, sizeof(clean), line));
    status_shown_ = 0; /* (until status.c draws it again, under this line) */
}

void log_line(FILE *f, const char *fmt, ...)
{
    char line[8192], clean[4 * sizeof(line)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(f, "%s\n", log_printable(clean, sizeof(clean), line));
}

#define LOG_FN(fn, level, kind)                                                                    \
    void fn(const char *fmt, ...)                                                                  \
    {                                                                                              \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        log_v(level, kind, fmt, ap);                                                               \
        va_end(ap);                                                                                \
    }

/* Errors show even with -q: quiet silences chatter, not failures. */
LOG_FN(log_error, LOG_QUIET, "error: ")
LOG_FN(log_warn, LOG_NORMAL, "warning: ")
LOG_FN(log_info, LOG_NORMAL, "")
LOG_FN(log_verbose, LOG_VERBOSE, "")
LOG_FN(log_debug, LOG_DEBUG, "")

char *log_ssl_errors(char *buf, unsigned long len)
{
    unsigned long e, last = 0;
    const char *reason;

    buf[0] = '\0';
    while ((e = ERR_get_error()) != 0)
        last = e;
    if (last != 0) {
        reason = ERR_reason_error_string(last);
        if (reason)
            snprintf(buf, len, "%s", reason);
        else
            ERR_error_string_n(last, buf, len);
    }
    return buf;
}

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

static void log_v(int level, const char *kind, const char *fmt, va_list ap)
{
    char line[1024];

    if (level > log_level_)
        return;
    vsnprintf(line, sizeof(line), fmt, ap);
    fprintf(stderr, "%s: %s%s\n", log_name_, kind, line);
}

#define LOG_FN(fn, level, kind)                                                          \
    void fn(const char *fmt, ...)                                                        \
    {                                                                                    \
        va_list ap;                                                                      \
        va_start(ap, fmt);                                                               \
        log_v(level, kind, fmt, ap);                                                     \
        va_end(ap);                                                                      \
    }

/* Errors show even with -q: quiet silences chatter, not failures. */
LOG_FN(log_error, LOG_QUIET, "error: ")
LOG_FN(log_warn, LOG_NORMAL, "warning: ")
LOG_FN(log_info, LOG_NORMAL, "")
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

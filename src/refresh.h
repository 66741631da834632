/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_REFRESH_H
#define MITMREC_REFRESH_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/*
 * Replayed responses are moved in time, as mitmproxy's refresh does: Date,
 * Expires and Last-Modified headers and the expires attribute of Set-Cookie
 * are shifted by the time between the recording and the replay, so caches
 * and cookies behave as they did. Pure functions.
 */

/* Parses an HTTP date (IMF-fixdate, RFC 850 or asctime; cookie dates with '-'). -EINVAL if not. */
int refresh_parse_date(const char *s, time_t *out);

/* Formats t as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") into buf (at least 30 bytes). */
void refresh_format_date(time_t t, char *buf, size_t len);

/*
 * The header value shifted by delta seconds into out, when name is Date,
 * Expires, Last-Modified or Set-Cookie (its expires=); returns 1 when out was
 * written, 0 when the value stays as it is (another header, or a value that
 * is not a date, like "Expires: 0").
 */
int refresh_header(const char *name, const char *value, int64_t delta, char *out, size_t outlen);

#endif

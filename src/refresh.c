/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "refresh.h"

/* Our own names: strftime would follow the locale. */
static const char *const months[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const days[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};

/*
 * Tolerant of the three formats of RFC 9110 and of cookie dates: the tokens
 * are read in any order as day, month name, year and hh:mm:ss, which is what
 * RFC 6265's cookie date algorithm does.
 */
int refresh_parse_date(const char *s, time_t *out)
{
    int day = -1, mon = -1, year = -1, hh = -1, mm = -1, ss = -1;
    const char *p = s;
    struct tm tm;

    while (*p) {
        char tok[32];
        size_t n = 0;
        while (*p && !isalnum((unsigned char)*p) && *p != ':')
            p++;
        while (*p && (isalnum((unsigned char)*p) || *p == ':') && n < sizeof(tok) - 1)
            tok[n++] = *p++;
        tok[n] = '\0';
        if (!n)
            break;
        if (strchr(tok, ':')) {
            if (sscanf(tok, "%d:%d:%d", &hh, &mm, &ss) != 3)
                return -EINVAL;
        } else if (isdigit((unsigned char)tok[0])) {
            int v = atoi(tok);
            if (n <= 2 && day < 0)
                day = v;
            else if (year < 0)
                year = n <= 2 ? (v < 70 ? 2000 + v : 1900 + v) : v;
        } else {
            for (int i = 0; i < 12; i++)
                if (strncasecmp(tok, months[i], 3) == 0 && mon < 0)
                    mon = i;
        }
    }
    if (day < 1 || day > 31 || mon < 0 || year < 1970 || hh < 0 || hh > 23 || mm < 0 || mm > 59 ||
        ss < 0 || ss > 60)
        return -EINVAL;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = year - 1900;
    tm.tm_mon = mon;
    tm.tm_mday = day;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    *out = timegm(&tm);
    return 0;
}

void refresh_format_date(time_t t, char *buf, size_t len)
{
    struct tm tm;

    gmtime_r(&t, &tm);
    snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int shift(const char *s, int64_t delta, char *out, size_t len)
{
    time_t t;

    if (refresh_parse_date(s, &t) < 0)
        return 0;
    refresh_format_date((time_t)(t + delta), out, len);
    return 1;
}

int refresh_header(const char *name, const char *value, int64_t delta, char *out, size_t outlen)
{
    if (!strcasecmp(name, "date") || !strcasecmp(name, "expires") ||
        !strcasecmp(name, "last-modified"))
        return shift(value, delta, out, outlen);
    if (!strcasecmp(name, "set-cookie")) {
        const char *p = value;
        /* Find the expires attribute: after a ';', any case. */
        while ((p = strchr(p, ';'))) {
            const char *a = p + 1, *end;
            char date[128], nd[64];
            while (*a == ' ')
                a++;
            p = a;
            if (strncasecmp(a, "expires=", 8) != 0)
                continue;
            a += 8;
            end = strchr(a, ';');
            if (!end)
                end = a + strlen(a);
            if ((size_t)(end - a) >= sizeof(date))
                return 0;
            memcpy(date, a, (size_t)(end - a));
            date[end - a] = '\0';
            if (!shift(date, delta, nd, sizeof(nd)))
                return 0;
            if (snprintf(out, outlen, "%.*s%s%s", (int)(a - value), value, nd, end) >= (int)outlen)
                return 0;
            return 1;
        }
    }
    return 0;
}

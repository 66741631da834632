/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "errors.h"
#include "log.h"
#include "status.h"

#define TOP 3

struct status {
    uv_timer_t timer;
    recorder_t *rec;
    proxy_t *proxy;
    rec_proc_stats_t top[TOP];
    int ntop;
};

static void human(char *buf, size_t len, unsigned long long v)
{
    static const char units[] = "BKMGT";
    double d = (double)v;
    int u = 0;

    while (d >= 1024 && u < 4) {
        d /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%llu B", v);
    else
        snprintf(buf, len, "%.1f %ciB", d, units[u]);
}

/* Keeps the TOP processes with the most bytes. */
static void consider(void *opaque, const rec_proc_stats_t *st)
{
    status_t *s = opaque;
    int i = s->ntop < TOP ? s->ntop++ : TOP - 1;

    if (i == TOP - 1 && s->ntop == TOP && s->top[i].bytes >= st->bytes)
        return;
    s->top[i] = *st;
    while (i > 0 && s->top[i].bytes > s->top[i - 1].bytes) {
        rec_proc_stats_t t = s->top[i];
        s->top[i] = s->top[i - 1];
        s->top[i - 1] = t;
        i--;
    }
}

/* The terminal's width less one (a line as wide as the terminal would wrap on some), or 0
   when unknown. */
static size_t width(void)
{
    struct winsize ws;

    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) < 0 || ws.ws_col < 2)
        return 0;
    return (size_t)ws.ws_col - 1;
}

/* The line, cut to the terminal's width: \r and \033[K redraw one row only, so a line
   that wrapped would leave its first rows behind at every draw. Cut on a UTF-8 character
   boundary (bytes count as columns: a name in UTF-8 makes the line shorter, never wider). */
static void fit(char *line)
{
    size_t w = width(), n = strlen(line);

    if (w == 0 || n <= w)
        return;
    while (w > 0 && ((unsigned char)line[w] & 0xc0) == 0x80)
        w--;
    line[w] = '\0';
}

static void draw(uv_timer_t *t)
{
    status_t *s = t->data;
    recorder_stats_t st;
    char line[1024], bytes[32], name[4 * sizeof(s->top[0].name)];
    int n;

    recorder_get_stats(s->rec, &st);
    s->ntop = 0;
    recorder_each_process(s->rec, consider, s);
    human(bytes, sizeof(bytes), (unsigned long long)st.bytes);
    n = snprintf(line, sizeof(line), "mitmrec: %llu %s (%llu open), %llu %s, %s",
                 (unsigned long long)st.flows, mr_plural(st.flows, "flow", "flows"),
                 (unsigned long long)proxy_flows(s->proxy), (unsigned long long)st.requests,
                 mr_plural(st.requests, "request", "requests"), bytes);
    /* (Process names are the processes' own choice: escaped, as in the log.) */
    for (int i = 0; i < s->ntop && n > 0 && (size_t)n < sizeof(line); i++)
        n += snprintf(line + n, sizeof(line) - (size_t)n, "%s%s %llu", i ? ", " : " | ",
                      log_printable(name, sizeof(name), s->top[i].name),
                      (unsigned long long)s->top[i].requests);
    fit(line);
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
    log_status_shown(1);
}

status_t *status_start(uv_loop_t *loop, recorder_t *rec, proxy_t *p)
{
    status_t *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    s->rec = rec;
    s->proxy = p;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    uv_timer_start(&s->timer, draw, 250, 250);
    return s;
}

static void closed(uv_handle_t *h)
{
    free(h->data);
}

void status_stop(status_t *s)
{
    if (!s)
        return;
    fprintf(stderr, "\r\033[K");
    fflush(stderr);
    log_status_shown(0);
    uv_close((uv_handle_t *)&s->timer, closed);
}

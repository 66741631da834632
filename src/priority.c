/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "log.h"
#include "priority.h"

static int start_nice;
static int start_known;

static int get_nice(int *out)
{
    int v;

    /* -1 is a niceness too: only errno tells a failure from it. */
    errno = 0;
    v = getpriority(PRIO_PROCESS, 0);
    if (v == -1 && errno != 0)
        return -errno;
    *out = v;
    return 0;
}

/* The niceness the program started with (read at the first call), and the calling thread's. */
static int priority_start(void)
{
    int v = 0;

    if (!start_known && get_nice(&v) == 0) {
        start_nice = v;
        start_known = 1;
    }
    return start_nice;
}

static int priority_now(void)
{
    int v = 0;

    get_nice(&v);
    return v;
}

/* The calling thread's niceness to the start one plus adjust, clamped to -20..19. Returns 0,
   or a negative errno (-EACCES or -EPERM when not allowed), the niceness left as it was. */
static int priority_raise(int adjust)
{
    int want = priority_start() + adjust;

    if (want < -20)
        want = -20;
    if (want > 19)
        want = 19;
    if (want == priority_now())
        return 0;
    if (setpriority(PRIO_PROCESS, 0, want) < 0)
        return -errno;
    return 0;
}

int priority_option(const char *arg, int *adjust, int *given, char *err, size_t errlen)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(arg, &end, 10);
    if (errno != 0 || end == arg || *end != '\0' || v < -40 || v > 40) {
        snprintf(err, errlen, "invalid --nice '%s': expected a niceness adjustment from -40 to 40",
                 arg);
        return -EINVAL;
    }
    *adjust = (int)v;
    *given = 1;
    return 0;
}

void priority_restore(void)
{
    if (start_known && priority_now() != start_nice)
        setpriority(PRIO_PROCESS, 0, start_nice);
}

void priority_apply(int adjust, int given)
{
    int rc = priority_raise(adjust);

    if (rc == 0) {
        if (priority_now() != priority_start())
            log_debug("relay at niceness %d (started at %d)", priority_now(), priority_start());
        return;
    }
    if (given)
        log_warn("--nice %d: cannot change the relay's priority: %s (raising it needs root, "
                 "CAP_SYS_NICE or RLIMIT_NICE)",
                 adjust, strerror(-rc));
    else
        log_debug("the relay stays at niceness %d: raising it by %d: %s", priority_now(), -adjust,
                  strerror(-rc));
}

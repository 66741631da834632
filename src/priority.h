/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_PRIORITY_H
#define MITMREC_PRIORITY_H

#include <stddef.h>

/*
 * The relay's scheduling priority.
 *
 * Every byte of an intercepted flow waits for the relay twice, so when the machine's CPUs are
 * all busy, the programs on either side of it (the recorded client, a local server) run
 * faster if the relay is scheduled first. Measured with wrk -c10 keep-alive through mitmrec
 * to a local nginx on 2 cores (bench/README.md, "Niceness"): at niceness 0 the scheduler
 * preempted mitmrec about 10,000 times a second to run the processes it had just woken, and
 * both CPUs were idle 16-21% of the time; 5 steps up, 24,000 -> 28,500 requests/s.
 *
 * The niceness is per thread on Linux and threads inherit it when they start, so
 * priority_apply is called before the first thread (libuv's workers, the gzip writers).
 */

/* The adjustment used when none is given (--nice). */
#define PRIORITY_DEFAULT_ADJUST (-5)

/* Both programs' --nice N: an integer from -40 to 40 (the result is clamped as nice(1)
   does). Sets *adjust and *given, or returns -EINVAL with the one-line reason in err. */
int priority_option(const char *arg, int *adjust, int *given, char *err, size_t errlen);

/* In a child that is about to run a command: the niceness the program started with. */
void priority_restore(void);

/*
 * What both programs do with --nice: sets the calling thread's niceness to the one the
 * program started with plus adjust (clamped to -20..19), remembering the start for
 * priority_restore. Going up (a negative adjust) needs CAP_SYS_NICE or an RLIMIT_NICE that
 * allows it; a failure leaves the niceness as it was and is a warning when the adjustment
 * was asked for (given), a debug line when it is the default.
 */
void priority_apply(int adjust, int given);

#endif

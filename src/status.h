/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_STATUS_H
#define MITMREC_STATUS_H

#include <uv.h>

#include "proxy.h"
#include "recorder.h"

/*
 * The live status line on a terminal: flows, requests, bytes and the busiest
 * processes, redrawn at most four times a second on stderr.
 */

typedef struct status status_t;

/* Starts redrawing; rec and p are borrowed. NULL on ENOMEM. */
status_t *status_start(uv_loop_t *loop, recorder_t *rec, proxy_t *p);

/* Erases the line and stops; frees itself once its timer closed. NULL is a no-op. */
void status_stop(status_t *s);

#endif

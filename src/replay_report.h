/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_REPLAY_REPORT_H
#define MITMREC_REPLAY_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * What a replay run did, for the summary on stderr, --report FILE.xml (JUnit:
 * a test case per request, a failure for each unmatched one) and
 * --report FILE.json. Requests are kept in the order they arrived.
 *
 * A client replay (--client) adds results instead (replay_report_result): a
 * test case per request sent again, a failure for each response that differs
 * from the recorded one, an error for each request that got none.
 */

typedef struct replay_report replay_report_t;

/* One request as the report keeps it; strings are copied. */
typedef struct report_request {
    const char *method;
    const char *url;
    const char *process; /* "" when unknown */
    uint32_t pid;
    int http2;
    long entry;         /* the recorded entry that answered, -1 when unmatched */
    int status;         /* what was sent (0: the connection was reset) */
    const char *why;    /* unmatched: what failed to match; else NULL */
    const char *action; /* "replayed", "404", "502", "kill", "passthrough" */
    double ms;          /* from the request's end to the response */
} report_request_t;

replay_report_t *replay_report_new(void);
void replay_report_free(replay_report_t *r);

/* Adds a request. Returns 0 or -ENOMEM. */
int replay_report_request(replay_report_t *r, const report_request_t *rq);

/* Client replay: one recorded request sent again and how its response compares. */
typedef struct report_result {
    size_t index; /* the entry's place in the recording, from 0 */
    const char *method;
    const char *url;
    int http2;
    int was_status;     /* the recorded status */
    int status;         /* the new one; 0 when there was none */
    const char *result; /* "same", "different" or "failed" */
    const char *detail; /* different: what changed; failed: why; else NULL */
    double ms;          /* from its start to its response (or failure) */
} report_result_t;

/* Adds a client replay result (the report is then a client replay's); the report keeps them
   in the order of index. 0 or -ENOMEM. */
int replay_report_result(replay_report_t *r, const report_result_t *res);

/* A TCP conversation that was not HTTP: to (text), chunks replayed of total, complete. */
int replay_report_conversation(replay_report_t *r, const char *to, size_t done, size_t total,
                               int matched);

/* A DNS question and whether the recording answered it. */
void replay_report_dns(replay_report_t *r, const char *name, int answered);

size_t replay_report_unmatched(const replay_report_t *r);
size_t replay_report_requests(const replay_report_t *r);

/* The summary (and each unmatched request) on f, lines prefixed "mitmreplay: ". */
void replay_report_summary(const replay_report_t *r, FILE *f, int strict);

/* Opens (creates, empties) the --report file path, before the replay, so that a path that
   cannot be written fails before the command runs. NULL with a reason in err. */
FILE *replay_report_open(const char *path, char *err, size_t errlen);

/* Writes the JUnit XML / JSON report to f (from replay_report_open; path names it in
   errors) and closes f. 0 or a negative errno with a reason in err. */
int replay_report_write_junit(const replay_report_t *r, FILE *f, const char *path,
                              const char *recording, char *err, size_t errlen);
int replay_report_write_json(const replay_report_t *r, FILE *f, const char *path,
                             const char *recording, char *err, size_t errlen);

#endif

/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_REPLAY_OPTIONS_H
#define MITMREC_REPLAY_OPTIONS_H

#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>

#include "redirect.h"

enum replay_mode {
    REPLAY_SPAWN,  /* RECORDING -- COMMAND: server replay for a command */
    REPLAY_ATTACH, /* RECORDING -p SPEC: server replay for running processes */
    REPLAY_CLIENT, /* --client RECORDING: send the recorded requests again */
};

enum replay_unmatched {
    UNMATCHED_404,
    UNMATCHED_502,
    UNMATCHED_KILL,
    UNMATCHED_PASSTHROUGH,
};

#define REPLAY_MAX_LIST 64 /* names per repeatable option */

/* mitmreplay's command line. Strings point into argv (borrowed) unless noted. */
typedef struct replay_options {
    enum replay_mode mode;
    const char *recording;
    const char *keylog_path; /* --keylog: secrets for a foreign capture */
    char **command;          /* after "--" */
    redirect_rule_t *rules;  /* -p; owned */
    size_t nrules;
    const char *cgroup;
    /* matching */
    const char *ignore_params[REPLAY_MAX_LIST];
    size_t nignore_params;
    const char *ignore_payload_params[REPLAY_MAX_LIST];
    size_t nignore_payload_params;
    const char *use_headers[REPLAY_MAX_LIST];
    size_t nuse_headers;
    int ignore_body, ignore_host, ignore_port, no_reuse;
    enum replay_unmatched unmatched;
    const char *record_new; /* --record-new FILE.pcapng (passthrough flows) */
    char *record_new_har;   /* and the HAR beside it (paths_har_for) */
    int no_refresh;
    int realtime;
    int strict;
    const char *report_xml, *report_json; /* --report FILE.xml / FILE.json */
    /* TLS */
    const char *ca_file;                  /* --ca */
    const char *cacerts[REPLAY_MAX_LIST]; /* --cacert: upstream trust (client, passthrough) */
    size_t ncacerts;
    int insecure;
    /* client replay */
    const char *out_path; /* -o NEW.pcapng */
    const char *har_path; /* --har NEW.har */
    char *out_har;        /* the HAR -o writes: har_path, or one beside it */
    const char *to;       /* --to HOST:PORT */
    int concurrency;
    int quiet, verbose;
    int nice, nice_given; /* --nice */
} replay_options_t;

/*
 * Parses argv. Returns 0 to run, 1 when --help or --version was printed (exit
 * 0), or -EINVAL with a one-line reason in err.
 */
int replay_options_parse(replay_options_t *o, int argc, char **argv, char *err, size_t errlen);

/* --to's "ADDRESS:PORT" (an IPv4 or IPv6 literal, "[v6]:port", or localhost; no name is
   resolved) into out. 0 or -EINVAL. */
int replay_parse_to(const char *to, struct sockaddr_storage *out);

void replay_options_free(replay_options_t *o);

void replay_options_usage(FILE *f);

#endif

/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_OPTIONS_H
#define MITMREC_OPTIONS_H

#include <stddef.h>
#include <stdio.h>

#include "redirect.h"

enum options_mode {
    MODE_LISTEN, /* --listen: explicit proxy */
    MODE_ATTACH, /* -p SPEC: running processes, through the eBPF redirector */
    MODE_SPAWN,  /* -- COMMAND: a command and its children */
    MODE_READ,   /* -r FILE: a capture with secrets to a HAR */
    MODE_REPAIR, /* --repair-har FILE */
};

/* mitmrec's command line, parsed. Strings point into argv (borrowed) unless noted. */
typedef struct options {
    char listen_host[64];  /* "127.0.0.1" unless given */
    int listen_port;       /* 0 = any free port */
    int listen_given;      /* --listen was given */
    int listen_host_given; /* an address was given explicitly */
    const char *out_path;  /* -o; "-" = stdout */
    char *har_path;        /* --har or derived from -o; owned */
    const char **cacerts;  /* --cacert, repeatable; array owned */
    size_t ncacerts;
    int insecure;
    const char *ca_file;     /* --ca */
    const char *keylog_path; /* --keylog */
    int upstream;            /* --upstream: record the server-side session too */
    int quiet;
    int verbose;
    size_t max_body; /* --max-body, bytes kept per HAR body */
    enum options_mode mode;
    redirect_rule_t *rules; /* -p, in order; owned */
    size_t nrules;
    const char *cgroup;  /* --cgroup */
    const char **ignore; /* --ignore-hosts, CIDRs; array owned */
    size_t nignore;
    int allow_quic;          /* --allow-quic: relay UDP to port 443, do not refuse it */
    char **command;          /* after "--"; points into argv */
    int status_line;         /* -1 auto (a terminal), 0 off, 1 on */
    const char *read_path;   /* -r */
    const char *filter;      /* -f: a pcap filter expression */
    const char *repair_path; /* --repair-har */
    int nice;                /* --nice: the relay's niceness from the start one */
    int nice_given;
} options_t;

/*
 * Parses argv. Returns 0 to run, 1 when --help or --version was printed (exit 0),
 * or -EINVAL with a one-line reason in err.
 */
int options_parse(options_t *o, int argc, char **argv, char *err, size_t errlen);

/*
 * After getopt_long returned c, ':' (a value missing; the option string starts with ':')
 * or '?' (an option it does not know, or a value given to one that takes none), with
 * opterr 0: the one-line reason, as both programs say it, into err.
 */
void options_getopt_error(int c, char *const *argv, char *err, size_t errlen);

/* -p's value ("curl,!wget,1234") appended to *rules (*nrules of them), in order; for both
   programs. All digits is a PID (1 to Linux's limit). 0, -EINVAL with the reason in err, or
   -ENOMEM. */
int options_parse_process_specs(redirect_rule_t **rules, size_t *nrules, const char *arg, char *err,
                                size_t errlen);

/* Releases what options_parse allocated. */
void options_free(options_t *o);

void options_usage(FILE *f);

#endif

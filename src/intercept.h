/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_INTERCEPT_H
#define MITMREC_INTERCEPT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "procinfo.h"
#include "redirect.h"

/*
 * Local redirect mode's set-up, shared by mitmrec and mitmreplay: the cgroup
 * (its own one for a command), the eBPF redirector sending the chosen
 * processes' TCP and UDP to our loopback listeners, and the command itself,
 * started in that cgroup trusting our CA (spawn.h). The listeners are the
 * caller's: it passes their ports.
 */

typedef struct intercept_opts {
    const char *cgroup;           /* --cgroup, or NULL for the cgroup v2 root */
    const redirect_rule_t *rules; /* -p rules (attach mode); borrowed */
    size_t nrules;
    const char *const *ignore; /* destinations left alone; borrowed */
    size_t nignore;
    uint16_t tcp_port, udp_port; /* our listeners on 127.0.0.1 (and ::1) */
    int v6;                      /* ::1 is listened on too */
    int loopback_listening;      /* redirect_opts_t's: loopback ports must listen */
    int refuse_quic;             /* redirect_opts_t's: UDP to port 443 gets EPERM */
    char **command;              /* spawn mode: the command; NULL in attach mode */
    int stdout_taken;            /* a recording goes to our stdout: the command's to stderr */
} intercept_opts_t;

typedef struct intercept {
    redirect_t *redirect; /* owned */
    pid_t child;          /* spawn mode, until reaped */
    char cgroup[4096];    /* the cgroup we made, "" if none */
    char workdir[4096];
    int reaper_fd;       /* closing it has the reaper remove the cgroup */
    pid_t reaper;        /* 0 when there is none */
    char attached[4096]; /* the cgroup the redirector watches */
} intercept_t;

/* Where intercept_attach failed, so each program can add its own advice. */
enum intercept_stage {
    INTERCEPT_NO_CGROUP_FS = 1, /* no cgroup v2 mount */
    INTERCEPT_CGROUP_ARG,       /* --cgroup names no cgroup v2 directory */
    INTERCEPT_CGROUP,           /* the command's cgroup could not be made */
    INTERCEPT_REDIRECT,         /* redirect_open failed */
};

/*
 * Creates the command's cgroup (spawn mode) and opens the redirector on it.
 * On failure returns a negative errno, *stage says where and err holds the
 * reason (no advice). Call intercept_close even after a failure.
 */
int intercept_attach(intercept_t *it, const intercept_opts_t *o, enum intercept_stage *stage,
                     char *err, size_t errlen);

/* Spawn mode, after intercept_attach: starts the command trusting ca_cert. 0 or -errno + err. */
int intercept_spawn(intercept_t *it, const intercept_opts_t *o, const char *ca_cert, char *err,
                    size_t errlen);

/* proxy_lookup_fn / udprelay_lookup_fn over a redirect_t (opaque). */
int intercept_lookup_tcp(void *opaque, const struct sockaddr *peer, struct sockaddr_storage *orig,
                         procinfo_t *pi);
int intercept_lookup_udp(void *opaque, const struct sockaddr *peer, struct sockaddr_storage *orig,
                         procinfo_t *pi);
/* The same with only pi's pid and name (the kernel's comm) filled in: no /proc read, for the
   UDP relay's every datagram (it reads the rest once per session). */
int intercept_lookup_udp_dst(void *opaque, const struct sockaddr *peer,
                             struct sockaddr_storage *orig, procinfo_t *pi);

/* Detaches the redirector, removes the cgroup and the work directory. The child must be gone. */
void intercept_close(intercept_t *it);

#endif

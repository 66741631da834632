/* SPDX-License-Identifier: MIT */
/* Local redirect mode, Linux: an eBPF redirector that sends the TCP and UDP flows of chosen
   processes in a cgroup v2 directory to mitmrec's listeners on loopback, and tells mitmrec where
   each flow was going and which process opened it. The only header src/ needs from extension/:
   no BPF types. See extension/README.md for the design.

   Everything here returns 0 or a negative errno (libbpf's codes pass through). Functions that take
   a redirect_t may be called from any thread, concurrently; redirect_close must be the last. */
#ifndef MITMREC_EXTENSION_REDIRECT_H
#define MITMREC_EXTENSION_REDIRECT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define REDIRECT_MAX_RULES 16
#define REDIRECT_MAX_IGNORE 256

typedef struct redirect redirect_t;

/* One selection rule. Rules are evaluated left to right and the last one that matches a process
   decides, as in mitmproxy's local mode; when none matches, a list that starts with an exclude
   selects the process and a list that starts with an include does not. So "curl,!wget" is curl
   only and "!wget" is everything but wget. A NAME matches a process whose name (comm, at most
   15 characters) or executable file's basename (as /proc/PID/exe shows it, any length) equals
   it; a PID matches that thread group id, in the initial PID namespace. */
typedef struct redirect_rule {
    int exclude;    /* 0: include, 1: exclude */
    uint32_t pid;   /* a process id; 0: match by name */
    char name[256]; /* with pid == 0: a process name or executable basename, no '/' */
} redirect_rule_t;

typedef struct redirect_opts {
    /* The cgroup v2 directory to attach to (borrowed, read during redirect_open only). Only
       sockets created by processes in it or below are seen. NULL: the cgroup v2 root, i.e. the
       whole system. */
    const char *cgroup_path;
    /* mitmrec's listeners, host order, 0 = leave that protocol alone. mitmrec listens on
       127.0.0.1 and on ::1 with the same port: IPv4 destinations (and v4-mapped ones of
       dual-stack sockets) are sent to 127.0.0.1, IPv6 destinations to ::1. */
    uint16_t tcp_port, udp_port;
    /* Send connect()s to IPv6 destinations to v4-mapped 127.0.0.1 instead of ::1, for when
       mitmrec cannot listen on ::1. Such sockets then fail if they are IPV6_V6ONLY, and
       unconnected IPv6 UDP still goes to ::1 (the kernel refuses anything else there). */
    int ipv6_via_v4mapped;
    /* Leave alone a TCP connect() to a loopback address and port on which nothing listens (in
       the connecting socket's network namespace): the application gets ECONNREFUSED at once,
       as without mitmrec, and can try its next address. For recording; a replayer, which
       answers for servers that are gone, leaves this 0. */
    int loopback_listening;
    /* Refuse (EPERM) a selected process's UDP to port 443, QUIC, instead of redirecting it:
       HTTP/3 cannot be decrypted, and browsers whose QUIC fails at once use TCP and TLS, which
       can. Counted (redirect_quic_refused). */
    int refuse_quic;
    /* mitmrec's own process id (getpid()): its sockets are never redirected. */
    uint32_t self_pid;
    /* Up to REDIRECT_MAX_RULES rules (borrowed, copied). nrules == 0: every process in the
       cgroup but self_pid (spawn mode). */
    const redirect_rule_t *rules;
    size_t nrules;
    /* Destinations left alone (borrowed, copied): up to REDIRECT_MAX_IGNORE "ADDR" or
       "ADDR/PREFIX" strings, IPv4 or IPv6 (e.g. "10.0.0.0/8", "::1", "fe80::/10"). */
    const char *const *ignore_cidrs;
    size_t nignore;
} redirect_opts_t;

/* Checks the system, loads the BPF programs, fills their maps (rules, ignore list, and the
   decision for every running process, from /proc) and attaches them to the cgroup through BPF
   links: nothing is pinned, so they go away with the last file descriptor, even when the process
   is killed with SIGKILL. On success *out is owned by the caller (redirect_close). On failure
   returns a negative errno and writes a one-line reason to err (if errlen > 0) naming what is
   missing: -EPERM not root (needs CAP_SYS_ADMIN, or CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN and
   CAP_SYS_PTRACE), -ENOENT no cgroup v2 mount or no such directory, -ENOTDIR not a cgroup v2
   directory, -EOPNOTSUPP no kernel BTF or a kernel too old, -EINVAL bad options. While it runs,
   libbpf's print callback is redirected to collect the reason (libbpf_set_print is global). */
int redirect_open(const redirect_opts_t *o, redirect_t **out, char *err, size_t errlen);

typedef struct redirect_info {
    /* The destination the application asked for: AF_INET for IPv4, also when a dual-stack
       AF_INET6 socket gave it v4-mapped; AF_INET6 otherwise. */
    struct sockaddr_storage orig_dst;
    uint32_t pid;  /* thread group id of the process that connected or sent */
    char comm[16]; /* its name (comm at exec or at start-up), NUL-terminated */
} redirect_info_t;

/* The flow behind a connection mitmrec accepted on its TCP listener: client_addr (borrowed) is
   the accepted socket's peer (getpeername, or accept's address), AF_INET or AF_INET6 (v4-mapped
   accepted). Fills *info. Each entry is handed out once: a second lookup of the same connection
   returns -ENOENT, as does a connection that was not redirected. */
int redirect_lookup_tcp(redirect_t *r, const struct sockaddr *client_addr, redirect_info_t *info);

/* The same for a datagram on mitmrec's UDP listener: client_addr is its source. Not consumed:
   every datagram of the flow finds it. The entry holds the destination of the client socket's
   latest redirected datagram. Replies sent from the UDP listener to client_addr appear to the
   client to come from info->orig_dst. */
int redirect_lookup_udp(redirect_t *r, const struct sockaddr *client_addr, redirect_info_t *info);

/* Whether path is a cgroup v2 directory redirect_open could attach to: 0, or a negative errno
   with the reason in err ("PATH: No such file or directory", "PATH: not a cgroup v2 directory
   (the cgroup2 mount is ...)"). */
int redirect_cgroup_check(const char *path, char *err, size_t errlen);

/* Writes the cgroup v2 mount point from /proc/self/mountinfo to path (len bytes): /sys/fs/cgroup,
   or /sys/fs/cgroup/unified on hybrid systems. -ENOENT when there is none, -ENAMETOOLONG. */
int redirect_cgroup_root(char *path, size_t len);

/* 0 when s is what redirect_opts_t.ignore_cidrs takes: an IPv4 or IPv6 address, with an
   optional /PREFIX. -EINVAL otherwise. */
int redirect_cidr_check(const char *s);

/* How many connects and datagrams refuse_quic refused so far. */
uint64_t redirect_quic_refused(const redirect_t *r);

/* Detaches everything and frees r. NULL is a no-op. */
void redirect_close(redirect_t *r);

#endif

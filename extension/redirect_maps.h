/* SPDX-License-Identifier: MIT */
/* The layouts shared by redirect.bpf.c (kernel side) and redirect.c (its loader): map keys,
   map values, per-socket state and limits. Only fixed-width kernel types: the BPF side gets them
   from vmlinux.h, user space from <linux/types.h>. Nothing here is part of the API for src/:
   that is redirect.h. */
#ifndef MITMREC_EXTENSION_REDIRECT_MAPS_H
#define MITMREC_EXTENSION_REDIRECT_MAPS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define RD_MAX_RULES 16    /* selection rules; a rule's bit in a 32-bit mask is its index */
#define RD_NAME_LEN 256    /* NAME_MAX + 1: an executable's basename and its NUL */
#define RD_COMM_LEN 16     /* TASK_COMM_LEN */
#define RD_MAX_IGNORE 256  /* CIDRs in the ignore list */
#define RD_PROCS_MAX 65536 /* processes with a decision: every live process may have one */
#define RD_FLOWS_MAX 16384 /* LRU size of each of the TCP and UDP flow tables */

/* Addresses are 16 bytes everywhere: IPv6 as is and IPv4 as v4-mapped (::ffff:a.b.c.d), so one
   key type serves both families, and a v4 client of a dual-stack socket needs no translation. */

/* Key of the flow tables (tcp_flows, udp_flows): the redirected client's own address and port,
   as mitmrec sees them as the peer of an accepted socket or the source of a datagram. */
struct rd_key {
    __u8 addr[16];
    __u16 port; /* host order */
    __u16 _pad; /* always zero: keys are compared byte by byte */
};

/* Value of the flow tables, and what each redirected socket remembers. */
struct rd_info {
    __u8 addr[16]; /* original destination (v4-mapped when IPv4) */
    __u16 port;    /* original destination port, network order */
    __u8 v4;       /* 1: the destination is IPv4 (also when an AF_INET6 socket gave it v4-mapped) */
    __u8 _pad;
    __u32 pid;              /* thread group id of the process that connected or sent */
    char comm[RD_COMM_LEN]; /* that process's name (its main thread's comm at exec or scan) */
};

/* Value of the procs map, keyed by tgid: the decision for one process. */
struct rd_proc {
    __u8 selected; /* 1: redirect this process's sockets */
    __u8 _pad[3];
    char comm[RD_COMM_LEN];
};

/* Key of the names map (value: a mask of the rules naming it); zero-padded. */
struct rd_name {
    char s[RD_NAME_LEN];
};

/* Key of the ignore LPM trie (value: a byte, unused). IPv4 CIDRs are stored v4-mapped with 96
   added to their prefix length. */
struct rd_cidr {
    __u32 prefixlen;
    __u8 addr[16];
};

/* Per-socket state (BPF_MAP_TYPE_SK_STORAGE): freed with the socket by the kernel. */
struct rd_sock {
    struct rd_info info; /* where the socket meant to go, and who it belongs to */
    __u32 flags;
};
#define RD_SOCK_REDIRECTED 0x1u /* the peer was rewritten: getpeername and recvmsg show info */
#define RD_SOCK_V4TARGET 0x2u   /* sent to 127.0.0.1 (maybe v4-mapped), not to ::1 */
#define RD_SOCK_UDP_CONN 0x4u   /* connected UDP: publish the source at the first datagram */

#endif

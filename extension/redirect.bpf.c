/* SPDX-License-Identifier: MIT */
/* Kernel side of local redirect mode. The design, the maps and the races are described in
   extension/README.md; the comments here say why each program does what it does.

   Everything fails open: when a decision cannot be made or remembered (no entry, no memory), the
   socket is left alone and goes where the application sent it. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

#include "redirect_maps.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Macros vmlinux.h cannot carry. */
#define AF_INET 2
#define AF_INET6 10
#define PF_KTHREAD 0x00200000
#define LOOPBACK4 0x7f000001 /* 127.0.0.1, host order */

/* Settings, written by the loader before load and constant afterwards, so the verifier prunes
   what they switch off. */
const volatile __u32 self_tgid = 0;         /* mitmrec itself: never redirected */
const volatile __u16 tcp_port = 0;          /* mitmrec's TCP listener on loopback, 0 = no TCP */
const volatile __u16 udp_port = 0;          /* mitmrec's UDP listener on loopback, 0 = no UDP */
const volatile __u32 nrules = 0;            /* 0: every process (spawn mode) */
const volatile __u32 exclude_mask = 0;      /* bit i set: rule i excludes */
const volatile __u8 v6_via_v4mapped = 0;    /* connect6: 127.0.0.1 v4-mapped instead of ::1 */
const volatile __u8 loopback_listening = 0; /* TCP to a loopback port with no listener: untouched */
const volatile __u8 refuse_quic = 0;        /* UDP to port 443 (QUIC): EPERM, not redirected */
/* Datagrams and connects refused for refuse_quic; read by the loader. */
__u64 quic_refused = 0;
/* Rule i matches the process with this tgid; 0: rule i matches by name. */
const volatile __u32 rule_pid[RD_MAX_RULES] = {};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, RD_PROCS_MAX);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, __u32);
    __type(value, struct rd_proc);
} procs SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, RD_MAX_RULES);
    __type(key, struct rd_name);
    __type(value, __u32);
} names SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, RD_MAX_IGNORE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct rd_cidr);
    __type(value, __u8);
} ignore SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, RD_FLOWS_MAX);
    __type(key, struct rd_key);
    __type(value, struct rd_info);
} tcp_flows SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, RD_FLOWS_MAX);
    __type(key, struct rd_key);
    __type(value, struct rd_info);
} udp_flows SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_SK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct rd_sock);
} socks SEC(".maps");

/* ---- Which processes: rules, evaluated at exec and fork ---- */

/* mitmproxy's semantics (last matching rule wins; with no match, a list that starts with an
   exclude selects, one that starts with an include does not): "curl,!wget" is curl only, "!wget"
   is everything but wget. mask holds the rules that matched. */
static __always_inline __u8 rules_decide(__u32 mask)
{
    __u8 sel;

    if (nrules == 0)
        return 1;
    sel = exclude_mask & 1;
    for (int i = 0; i < RD_MAX_RULES; i++) {
        if (i >= nrules)
            break;
        if (mask & (1u << i))
            sel = !(exclude_mask & (1u << i));
    }
    return sel;
}

static __always_inline __u32 rules_pid_mask(__u32 tgid)
{
    __u32 mask = 0;

    for (int i = 0; i < RD_MAX_RULES; i++)
        if (rule_pid[i] && rule_pid[i] == tgid)
            mask |= 1u << i;
    return mask;
}

/* The rules naming buf->s; buf must be zero-padded since the whole key is compared. */
static __always_inline __u32 rules_name_mask(const struct rd_name *buf)
{
    __u32 *m = bpf_map_lookup_elem(&names, buf);

    return m ? *m : 0;
}

/* Decides for a process from its tgid, its comm and the basename of its executable file (the
   dentry, which is what /proc/PID/exe shows, so the loader's /proc scan agrees). */
static __always_inline void proc_evaluate(struct rd_proc *out, __u32 tgid, const char *comm,
                                          const unsigned char *exe_name)
{
    struct rd_name buf;
    __u32 mask = rules_pid_mask(tgid);

    __builtin_memset(out, 0, sizeof(*out));
    bpf_probe_read_kernel_str(out->comm, sizeof(out->comm), comm);
    if (nrules) {
        __builtin_memset(&buf, 0, sizeof(buf));
        __builtin_memcpy(buf.s, out->comm, RD_COMM_LEN);
        mask |= rules_name_mask(&buf);
        if (exe_name) {
            __builtin_memset(&buf, 0, sizeof(buf));
            if (bpf_probe_read_kernel_str(buf.s, sizeof(buf.s), exe_name) > 0)
                mask |= rules_name_mask(&buf);
        }
    }
    out->selected = rules_decide(mask);
}

/* After exec the process has a new name and a new file: decide again. Overwrites whatever the
   /proc scan or fork wrote, which described the old image. comm has already been set to the new
   name when this tracepoint runs. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(rd_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
    struct rd_proc val;
    __u32 tgid = BPF_CORE_READ(p, tgid);
    const unsigned char *exe = BPF_CORE_READ(bprm, file, f_path.dentry, d_name.name);

    proc_evaluate(&val, tgid, p->comm, exe);
    bpf_map_update_elem(&procs, &tgid, &val, BPF_ANY);
    return 0;
}

/* A new process runs its parent's image until it execs, so it inherits the parent's decision.
   Runs before the child is first scheduled, so the child can't connect before this. A parent
   the /proc scan hasn't reached yet is evaluated here (and recorded without overwriting). */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(rd_fork, struct task_struct *parent, struct task_struct *child)
{
    struct rd_proc val, *pv;
    __u32 ptgid = BPF_CORE_READ(parent, tgid);
    __u32 ctgid = BPF_CORE_READ(child, tgid);

    /* A new thread is the same process; kernel threads open no user sockets. */
    if (ptgid == ctgid || (BPF_CORE_READ(child, flags) & PF_KTHREAD))
        return 0;
    pv = bpf_map_lookup_elem(&procs, &ptgid);
    if (pv) {
        val = *pv;
    } else {
        /* The forking thread may be any thread: the process's name is its leader's comm, as
           /proc/PID/comm shows it to the scan. */
        struct task_struct *leader = BPF_CORE_READ(parent, group_leader);

        proc_evaluate(&val, ptgid, leader->comm,
                      BPF_CORE_READ(parent, mm, exe_file, f_path.dentry, d_name.name));
        bpf_map_update_elem(&procs, &ptgid, &val, BPF_NOEXIST);
    }
    bpf_map_update_elem(&procs, &ctgid, &val, BPF_ANY);
    return 0;
}

/* The tracepoint runs for every exiting thread; the process is gone when the last one leaves
   (signal->live has dropped to zero before the tracepoint on every kernel we support, which also
   works where the tracepoint lacks the group_dead argument added in 6.16). */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(rd_exit, struct task_struct *p)
{
    __u32 tgid = BPF_CORE_READ(p, tgid);

    if (BPF_CORE_READ(p, signal, live.counter) != 0)
        return 0;
    bpf_map_delete_elem(&procs, &tgid);
    return 0;
}

/* ---- Which sockets: the current process, the destination ---- */

/* Whether the calling process is selected; fills info->pid and info->comm. A process without a
   decision (the procs map was full) gets one from its pid and the rules' default alone: its
   thread's comm is not its name (a browser's network thread is "Socket Thread"). */
static __always_inline int current_selected(struct rd_info *info)
{
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    struct rd_proc *pv;

    if (tgid == 0 || tgid == self_tgid)
        return 0;
    pv = bpf_map_lookup_elem(&procs, &tgid);
    if (pv) {
        if (!pv->selected)
            return 0;
        __builtin_memcpy(info->comm, pv->comm, RD_COMM_LEN);
    } else {
        if (!rules_decide(rules_pid_mask(tgid)))
            return 0;
        bpf_get_current_comm(info->comm, sizeof(info->comm));
    }
    info->pid = tgid;
    return 1;
}

static __always_inline void addr_set4(__u8 addr[16], __u32 ip4_be)
{
    __builtin_memset(addr, 0, 10);
    addr[10] = 0xff;
    addr[11] = 0xff;
    __builtin_memcpy(addr + 12, &ip4_be, 4);
}

static __always_inline int addr_is_mapped(const __u32 w[4])
{
    return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0xffff);
}

static __always_inline int ignored(const __u8 addr[16])
{
    struct rd_cidr key = {.prefixlen = 128};

    __builtin_memcpy(key.addr, addr, 16);
    return bpf_map_lookup_elem(&ignore, &key) != NULL;
}

/* The loopback listener for this socket type, or 0 when that protocol is not redirected. Only
   plain TCP and UDP: MPTCP, SCTP, ping sockets and the rest pass untouched. */
static __always_inline __u16 listener_port(__u32 type, __u32 protocol, int *udp)
{
    *udp = 0;
    if (type == SOCK_STREAM && protocol == IPPROTO_TCP)
        return tcp_port;
    if (type == SOCK_DGRAM && protocol == IPPROTO_UDP) {
        *udp = 1;
        return udp_port;
    }
    return 0;
}

/* A socket that is not redirected now forgets an earlier redirection (a UDP socket connected
   again elsewhere), so getpeername and recvmsg leave it alone. */
static __always_inline void sock_forget(struct bpf_sock *sk)
{
    struct rd_sock *st;

    if (!sk)
        return;
    st = bpf_sk_storage_get(&socks, sk, 0, 0);
    if (st)
        st->flags = 0;
}

/* Records what a socket is being redirected from. Returns 0 when it must not be redirected:
   nothing to record it in means mitmrec could never learn the destination, so fail open. */
static __always_inline int sock_remember(struct bpf_sock *sk, const struct rd_info *info,
                                         __u32 flags)
{
    struct rd_sock *st;

    if (!sk)
        return 0;
    st = bpf_sk_storage_get(&socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
    if (!st)
        return 0;
    st->info = *info;
    st->flags = flags;
    return 1;
}

/* Whether a 16-byte address is one of the listener addresses: 127.0.0.1 (v4-mapped) or ::1. */
static __always_inline int addr_is_listener(const __u32 w[4])
{
    return w[0] == 0 && w[1] == 0 &&
           ((w[2] == bpf_htonl(0xffff) && w[3] == bpf_htonl(LOOPBACK4)) ||
            (w[2] == 0 && w[3] == bpf_htonl(1)));
}

/* Whether a destination (v4-mapped or IPv6, port in network order) is selectable at all: not
   mitmrec's own listener (it would loop), not multicast or broadcast for UDP (those are not
   conversations), not in the ignore list. */
/* 1 when addr (v4-mapped or IPv6) is a loopback address and port_be no TCP socket listens on
   there, in the connecting socket's network namespace. Such a connect is left alone: the
   application gets its ECONNREFUSED at once and tries its next address ("localhost" is ::1 and
   127.0.0.1, and a server often listens on one of them only), where a redirected one would
   connect to mitmrec and be reset once mitmrec's own connect was refused. A destination
   elsewhere cannot be checked from here. */
static __always_inline int loopback_unheard(struct bpf_sock_addr *ctx, const __u8 addr[16],
                                            __u16 port_be)
{
    struct bpf_sock_tuple t = {};
    struct bpf_sock *sk;
    __u32 w[4];

    __builtin_memcpy(w, addr, 16);
    if (addr_is_mapped(w)) {
        if (addr[12] != 127)
            return 0;
        t.ipv4.daddr = w[3];
        t.ipv4.dport = port_be;
        sk = bpf_sk_lookup_tcp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
    } else {
        if (w[0] || w[1] || w[2] || w[3] != bpf_htonl(1))
            return 0;
        __builtin_memcpy(t.ipv6.daddr, w, 16);
        t.ipv6.dport = port_be;
        sk = bpf_sk_lookup_tcp(ctx, &t, sizeof(t.ipv6), BPF_F_CURRENT_NETNS, 0);
    }
    if (!sk)
        return 1;
    bpf_sk_release(sk);
    return 0;
}

static __always_inline int dst_redirectable(const __u8 addr[16], __u16 port_be, __u16 lport,
                                            int udp)
{
    __u32 w[4];

    __builtin_memcpy(w, addr, 16);
    if (port_be == bpf_htons(lport) && addr_is_listener(w))
        return 0;
    if (udp && (addr_is_mapped(w) ? addr[12] >= 224 : addr[0] == 0xff))
        return 0;
    return !ignored(addr);
}

/* Whether a selected UDP socket's connect or datagram to port_be is refused as QUIC (port 443):
   HTTP/3 cannot be decrypted here, and a browser whose QUIC gets EPERM uses HTTP/2 or 1.1 over
   TCP at once, which can. Counted. */
static __always_inline int quic_refuse(__u16 port_be)
{
    if (!refuse_quic || port_be != bpf_htons(443))
        return 0;
    __sync_fetch_and_add(&quic_refused, 1);
    return 1;
}

/* ---- connect: TCP and connected UDP ---- */

SEC("cgroup/connect4")
int rd_connect4(struct bpf_sock_addr *ctx)
{
    struct rd_info info = {};
    int udp;
    __u16 lport = listener_port(ctx->type, ctx->protocol, &udp);
    __u32 flags;

    if (!lport)
        return 1;
    addr_set4(info.addr, ctx->user_ip4);
    info.port = (__u16)ctx->user_port;
    info.v4 = 1;
    if (!dst_redirectable(info.addr, info.port, lport, udp) || !current_selected(&info) ||
        (loopback_listening && !udp && loopback_unheard(ctx, info.addr, info.port))) {
        sock_forget(ctx->sk);
        return 1;
    }
    if (udp && quic_refuse(info.port))
        return 0;
    flags = RD_SOCK_REDIRECTED | RD_SOCK_V4TARGET | (udp ? RD_SOCK_UDP_CONN : 0);
    if (!sock_remember(ctx->sk, &info, flags))
        return 1;
    ctx->user_ip4 = bpf_htonl(LOOPBACK4);
    ctx->user_port = bpf_htons(lport);
    return 1;
}

/* IPv6 destinations go to ::1 (or to v4-mapped 127.0.0.1 if the loader says mitmrec has no ::1
   listener); v4-mapped destinations of dual-stack sockets go to v4-mapped 127.0.0.1. */
SEC("cgroup/connect6")
int rd_connect6(struct bpf_sock_addr *ctx)
{
    struct rd_info info = {};
    __u32 w[4];
    int udp, to_v4;
    __u16 lport = listener_port(ctx->type, ctx->protocol, &udp);
    __u32 flags;

    if (!lport)
        return 1;
    w[0] = ctx->user_ip6[0];
    w[1] = ctx->user_ip6[1];
    w[2] = ctx->user_ip6[2];
    w[3] = ctx->user_ip6[3];
    __builtin_memcpy(info.addr, w, 16);
    info.port = (__u16)ctx->user_port;
    info.v4 = addr_is_mapped(w);
    if (!dst_redirectable(info.addr, info.port, lport, udp) || !current_selected(&info) ||
        (loopback_listening && !udp && loopback_unheard(ctx, info.addr, info.port))) {
        sock_forget(ctx->sk);
        return 1;
    }
    if (udp && quic_refuse(info.port))
        return 0;
    to_v4 = info.v4 || v6_via_v4mapped;
    flags = RD_SOCK_REDIRECTED | (to_v4 ? RD_SOCK_V4TARGET : 0) | (udp ? RD_SOCK_UDP_CONN : 0);
    if (!sock_remember(ctx->sk, &info, flags))
        return 1;
    ctx->user_ip6[0] = 0;
    ctx->user_ip6[1] = 0;
    ctx->user_ip6[2] = to_v4 ? bpf_htonl(0xffff) : 0;
    ctx->user_ip6[3] = to_v4 ? bpf_htonl(LOOPBACK4) : bpf_htonl(1);
    ctx->user_port = bpf_htons(lport);
    return 1;
}

/* The client's own address as mitmrec will see it, once the socket has a port. */
static __always_inline void key_from_sock(struct rd_key *key, struct bpf_sock *sk, __u32 flags)
{
    __builtin_memset(key, 0, sizeof(*key));
    if (flags & RD_SOCK_V4TARGET) {
        addr_set4(key->addr, sk->src_ip4);
    } else {
        __u32 w[4] = {sk->src_ip6[0], sk->src_ip6[1], sk->src_ip6[2], sk->src_ip6[3]};

        __builtin_memcpy(key->addr, w, 16);
    }
    key->port = sk->src_port;
}

/* TCP: the source port is known once connect() has hashed the socket, and TCP_CONNECT_CB runs
   right after that and before the SYN leaves, so the entry exists before mitmrec can accept. */
SEC("sockops")
int rd_sockops(struct bpf_sock_ops *skops)
{
    struct rd_sock *st;
    struct rd_key key = {};
    struct bpf_sock *sk;

    if (skops->op != BPF_SOCK_OPS_TCP_CONNECT_CB)
        return 1;
    sk = skops->sk;
    if (!sk)
        return 1;
    st = bpf_sk_storage_get(&socks, sk, 0, 0);
    if (!st || !(st->flags & RD_SOCK_REDIRECTED))
        return 1;
    /* Read from skops, not sk: for a v4-mapped connect the socket's IPv6 source is only filled
       in after tcp_v4_connect returns, while local_ip4 is already set here. */
    if (st->flags & RD_SOCK_V4TARGET) {
        addr_set4(key.addr, skops->local_ip4);
    } else {
        __u32 w[4] = {skops->local_ip6[0], skops->local_ip6[1], skops->local_ip6[2],
                      skops->local_ip6[3]};

        __builtin_memcpy(key.addr, w, 16);
    }
    key.port = skops->local_port;
    bpf_map_update_elem(&tcp_flows, &key, &st->info, BPF_ANY);
    return 1;
}

/* Connected UDP: connect() binds the port only after the connect hook, and connected sends
   have no cgroup hook, so the first datagram out publishes the mapping, before it is delivered
   to mitmrec. Every other packet costs one protocol check or one storage lookup. */
SEC("cgroup_skb/egress")
int rd_egress(struct __sk_buff *skb)
{
    struct bpf_sock *sk = skb->sk;
    struct rd_sock *st;
    struct rd_key key;

    if (!sk)
        return 1;
    sk = bpf_sk_fullsock(sk);
    if (!sk || sk->protocol != IPPROTO_UDP)
        return 1;
    st = bpf_sk_storage_get(&socks, sk, 0, 0);
    if (!st || !(st->flags & RD_SOCK_UDP_CONN))
        return 1;
    key_from_sock(&key, sk, st->flags);
    if (!key.port)
        return 1;
    bpf_map_update_elem(&udp_flows, &key, &st->info, BPF_ANY);
    st->flags &= ~RD_SOCK_UDP_CONN;
    return 1;
}

/* ---- sendmsg: unconnected UDP (DNS resolvers, QUIC) ---- */

/* The socket is bound by now (inet_send_prepare autobinds before udp_sendmsg), so the port is
   known; an unbound address becomes the loopback address the datagram is routed from. The
   mapping is per client address and port: a socket that talks to several destinations at once
   is seen by mitmrec with the latest one (see README). */
static __always_inline void udp_publish(const struct rd_key *key, const struct rd_info *info)
{
    bpf_map_update_elem(&udp_flows, key, info, BPF_ANY);
}

SEC("cgroup/sendmsg4")
int rd_sendmsg4(struct bpf_sock_addr *ctx)
{
    struct rd_info info = {};
    struct rd_key key = {};
    struct bpf_sock *sk = ctx->sk;
    __u32 src;

    if (!udp_port || !sk || ctx->type != SOCK_DGRAM || ctx->protocol != IPPROTO_UDP)
        return 1;
    addr_set4(info.addr, ctx->user_ip4);
    info.port = (__u16)ctx->user_port;
    info.v4 = 1;
    if (!dst_redirectable(info.addr, info.port, udp_port, 1) || !current_selected(&info))
        return 1;
    if (quic_refuse(info.port))
        return 0;
    if (!sock_remember(sk, &info, RD_SOCK_REDIRECTED | RD_SOCK_V4TARGET))
        return 1;
    src = sk->src_ip4;
    if (!src)
        src = ctx->msg_src_ip4;
    if (!src)
        src = bpf_htonl(LOOPBACK4);
    addr_set4(key.addr, src);
    key.port = sk->src_port;
    udp_publish(&key, &info);
    ctx->user_ip4 = bpf_htonl(LOOPBACK4);
    ctx->user_port = bpf_htons(udp_port);
    return 1;
}

/* Only real IPv6 destinations reach here: udpv6_sendmsg hands v4-mapped ones to udp_sendmsg,
   which runs sendmsg4. The target is always ::1: the kernel refuses (ENOTSUPP) a sendmsg6
   program that rewrites to a v4-mapped address. */
SEC("cgroup/sendmsg6")
int rd_sendmsg6(struct bpf_sock_addr *ctx)
{
    struct rd_info info = {};
    struct rd_key key = {};
    struct bpf_sock *sk = ctx->sk;
    __u32 w[4];

    if (!udp_port || !sk || ctx->type != SOCK_DGRAM || ctx->protocol != IPPROTO_UDP)
        return 1;
    w[0] = ctx->user_ip6[0];
    w[1] = ctx->user_ip6[1];
    w[2] = ctx->user_ip6[2];
    w[3] = ctx->user_ip6[3];
    if (addr_is_mapped(w))
        return 1;
    __builtin_memcpy(info.addr, w, 16);
    info.port = (__u16)ctx->user_port;
    if (!dst_redirectable(info.addr, info.port, udp_port, 1) || !current_selected(&info))
        return 1;
    if (quic_refuse(info.port))
        return 0;
    if (!sock_remember(sk, &info, RD_SOCK_REDIRECTED))
        return 1;
    w[0] = sk->src_ip6[0];
    w[1] = sk->src_ip6[1];
    w[2] = sk->src_ip6[2];
    w[3] = sk->src_ip6[3];
    if (!(w[0] | w[1] | w[2] | w[3])) {
        w[0] = ctx->msg_src_ip6[0];
        w[1] = ctx->msg_src_ip6[1];
        w[2] = ctx->msg_src_ip6[2];
        w[3] = ctx->msg_src_ip6[3];
    }
    if (!(w[0] | w[1] | w[2] | w[3]))
        w[3] = bpf_htonl(1);
    __builtin_memcpy(key.addr, w, 16);
    key.port = sk->src_port;
    udp_publish(&key, &info);
    ctx->user_ip6[0] = 0;
    ctx->user_ip6[1] = 0;
    ctx->user_ip6[2] = 0;
    ctx->user_ip6[3] = bpf_htonl(1);
    ctx->user_port = bpf_htons(udp_port);
    return 1;
}

/* ---- recvmsg and getpeername: show the application the address it asked for ---- */

/* The state of a redirected socket whose current peer (or datagram source) is the listener,
   given as v4-mapped or IPv6 words; NULL when there is nothing to rewrite. */
static __always_inline struct rd_sock *peer_redirected(struct bpf_sock *sk, const __u32 w[4],
                                                       __u32 port_be, __u16 lport)
{
    struct rd_sock *st;

    if (!lport || !sk || (__u16)port_be != bpf_htons(lport) || !addr_is_listener(w))
        return NULL;
    st = bpf_sk_storage_get(&socks, sk, 0, 0);
    if (!st || !(st->flags & RD_SOCK_REDIRECTED))
        return NULL;
    return st;
}

static __always_inline struct rd_sock *peer_redirected4(struct bpf_sock_addr *ctx, __u16 lport)
{
    __u32 w[4] = {0, 0, bpf_htonl(0xffff), ctx->user_ip4};

    return peer_redirected(ctx->sk, w, ctx->user_port, lport);
}

static __always_inline struct rd_sock *peer_redirected6(struct bpf_sock_addr *ctx, __u16 lport)
{
    __u32 w[4] = {ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3]};

    return peer_redirected(ctx->sk, w, ctx->user_port, lport);
}

static __always_inline void set_peer4(struct bpf_sock_addr *ctx, const struct rd_info *info)
{
    __u32 ip;

    __builtin_memcpy(&ip, info->addr + 12, 4);
    ctx->user_ip4 = ip;
    ctx->user_port = info->port;
}

static __always_inline void set_peer6(struct bpf_sock_addr *ctx, const struct rd_info *info)
{
    __u32 w[4];

    __builtin_memcpy(w, info->addr, 16);
    ctx->user_ip6[0] = w[0];
    ctx->user_ip6[1] = w[1];
    ctx->user_ip6[2] = w[2];
    ctx->user_ip6[3] = w[3];
    ctx->user_port = info->port;
}

/* A reply from mitmrec's UDP listener appears to come from the destination the socket last
   sent to (or is connected to). */
SEC("cgroup/recvmsg4")
int rd_recvmsg4(struct bpf_sock_addr *ctx)
{
    struct rd_sock *st = peer_redirected4(ctx, udp_port);

    if (st && st->info.v4)
        set_peer4(ctx, &st->info);
    return 1;
}

SEC("cgroup/recvmsg6")
int rd_recvmsg6(struct bpf_sock_addr *ctx)
{
    struct rd_sock *st = peer_redirected6(ctx, udp_port);

    if (st)
        set_peer6(ctx, &st->info);
    return 1;
}

SEC("cgroup/getpeername4")
int rd_getpeername4(struct bpf_sock_addr *ctx)
{
    int udp;
    struct rd_sock *st = peer_redirected4(ctx, listener_port(ctx->type, ctx->protocol, &udp));

    if (st && st->info.v4)
        set_peer4(ctx, &st->info);
    return 1;
}

SEC("cgroup/getpeername6")
int rd_getpeername6(struct bpf_sock_addr *ctx)
{
    int udp;
    struct rd_sock *st = peer_redirected6(ctx, listener_port(ctx->type, ctx->protocol, &udp));

    if (st)
        set_peer6(ctx, &st->info);
    return 1;
}

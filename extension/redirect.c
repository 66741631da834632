/* SPDX-License-Identifier: MIT */
/* User side of local redirect mode: checks the system, loads redirect.bpf.c through its
   skeleton, fills the maps and attaches, in an order that leaves no process undecided (see
   README.md, "Start-up order"); answers mitmrec's lookups. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "redirect.h"
#include "redirect_maps.h"
#include "redirect_select.h"
#include "redirect.skel.h"

/* Oldest kernel with every hook used here (getpeername/recvmsg programs: 5.8); helpers may
   still be missing on early 5.x, which the verifier reports and open() names. */
#define KERNEL_MIN_MAJOR 5
#define KERNEL_MIN_MINOR 8

struct redirect {
    struct redirect_bpf *_skel; /* owns the programs, the maps and the links */
    int _cgroup_fd;
};

/* ---- libbpf's messages, translated in this one place ---- */

/* What libbpf said while redirect_open ran: its first warning (e.g. which program failed to
   load) and the verifier's last word (why). libbpf's print callback is process-wide, so it is
   installed only for the duration of redirect_open and points at that call's state. */
struct bpf_log {
    char first[200];
    char verifier[200];
    int in_log;
};
static __thread struct bpf_log *bpf_log_current;

static void bpf_log_line(struct bpf_log *log, const char *line)
{
    if (strncmp(line, "libbpf: ", 8) == 0)
        line += 8;
    if (strstr(line, "-- BEGIN PROG LOAD LOG --")) {
        log->in_log = 1;
        return;
    }
    if (strstr(line, "-- END PROG LOAD LOG --")) {
        log->in_log = 0;
        return;
    }
    if (!*line)
        return;
    if (log->in_log) {
        /* A later "processed N insns" line is bookkeeping, not the reason. */
        if (strncmp(line, "processed ", 10) != 0 && strncmp(line, "verification time", 17) != 0)
            snprintf(log->verifier, sizeof(log->verifier), "%s", line);
    } else if (!log->first[0]) {
        snprintf(log->first, sizeof(log->first), "%s", line);
    }
}

static int bpf_log_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    struct bpf_log *log = bpf_log_current;
    char *text, *line, *save = NULL;

    if (!log || level == LIBBPF_DEBUG)
        return 0;
    if (vasprintf(&text, fmt, ap) < 0)
        return 0;
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        bpf_log_line(log, line);
    free(text);
    return 0;
}

/* ---- checks with a message a user understands ---- */

static int has_capabilities(void)
{
    char line[256];
    unsigned long long eff = 0;
    FILE *f = fopen("/proc/self/status", "re");

    if (!f)
        return geteuid() == 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "CapEff: %llx", &eff) == 1)
            break;
    fclose(f);
    /* CAP_SYS_ADMIN (21) covers all; otherwise CAP_BPF (39), CAP_PERFMON (38) for the tracing
       programs, CAP_NET_ADMIN (12) for cgroup attachment, CAP_SYS_PTRACE (19) for /proc/PID/exe
       of other users' processes. */
    if (eff & (1ull << 21))
        return 1;
    return (eff & (1ull << 39)) && (eff & (1ull << 38)) && (eff & (1ull << 12)) &&
           (eff & (1ull << 19));
}

static int kernel_too_old(char *release, size_t len)
{
    struct utsname u;
    int major = 0, minor = 0;

    if (uname(&u) < 0)
        return 0;
    snprintf(release, len, "%s", u.release);
    if (sscanf(u.release, "%d.%d", &major, &minor) != 2)
        return 0;
    return major < KERNEL_MIN_MAJOR || (major == KERNEL_MIN_MAJOR && minor < KERNEL_MIN_MINOR);
}

/* Undoes mountinfo's octal escapes (\040 for a space) in place. */
static void unescape_octal(char *s)
{
    char *out = s;

    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
            s[3] >= '0' && s[3] <= '7') {
            *out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 3;
        } else {
            *out++ = *s;
        }
    }
    *out = 0;
}

int redirect_cgroup_root(char *path, size_t len)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char *line = NULL;
    size_t cap = 0;
    int rc = -ENOENT;

    if (!f)
        return -errno;
    while (getline(&line, &cap, f) > 0) {
        /* "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER" */
        char *sep = strstr(line, " - "), *save = NULL, *mnt;
        int i;

        if (!sep || strncmp(sep + 3, "cgroup2 ", 8) != 0)
            continue;
        *sep = 0;
        mnt = strtok_r(line, " ", &save);
        for (i = 0; i < 4 && mnt; i++)
            mnt = strtok_r(NULL, " ", &save);
        if (!mnt)
            continue;
        unescape_octal(mnt);
        rc = strlen(mnt) < len ? 0 : -ENAMETOOLONG;
        if (rc == 0)
            strcpy(path, mnt);
        break;
    }
    free(line);
    fclose(f);
    return rc;
}

/* Opens path as a cgroup v2 directory (root: the cgroup2 mount, "" when there is none, for
   the message). The fd, or a negative errno with "PATH: reason" in err. */
static int cgroup_dir_open(const char *path, const char *root, char *err, size_t errlen)
{
    struct statfs sfs;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    if (fstatfs(fd, &sfs) < 0 || sfs.f_type != CGROUP2_SUPER_MAGIC) {
        if (root[0])
            snprintf(err, errlen, "%s: not a cgroup v2 directory (the cgroup2 mount is %s)", path,
                     root);
        else
            snprintf(err, errlen, "%s: not a cgroup v2 directory (none is mounted)", path);
        close(fd);
        return -ENOTDIR;
    }
    return fd;
}

/* Opens the cgroup v2 directory, defaulting to the root of the hierarchy. */
static int cgroup_open(const char *path, char *err, size_t errlen)
{
    char root[4096], why[4400];
    int fd, rc;

    rc = redirect_cgroup_root(root, sizeof(root));
    if (rc < 0) {
        snprintf(err, errlen, "no cgroup v2 mount (cgroup2 in /proc/self/mountinfo): %s",
                 strerror(-rc));
        return rc;
    }
    if ((fd = cgroup_dir_open(path ? path : root, root, why, sizeof(why))) < 0)
        snprintf(err, errlen, "cgroup %s", why);
    return fd;
}

int redirect_cgroup_check(const char *path, char *err, size_t errlen)
{
    char root[4096] = "";
    int fd;

    if (redirect_cgroup_root(root, sizeof(root)) < 0)
        root[0] = '\0';
    if ((fd = cgroup_dir_open(path, root, err, errlen)) < 0)
        return fd;
    close(fd);
    return 0;
}

/* "ADDR" or "ADDR/PREFIX", IPv4 or IPv6, as an LPM key (IPv4 v4-mapped). */
static int cidr_parse(const char *s, struct rd_cidr *key)
{
    char addr[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    unsigned long prefix;
    struct in_addr a4;
    char *end;
    int max;

    if (alen == 0 || alen >= sizeof(addr))
        return -EINVAL;
    memcpy(addr, s, alen);
    addr[alen] = 0;
    memset(key, 0, sizeof(*key));
    if (inet_pton(AF_INET, addr, &a4) == 1) {
        key->addr[10] = key->addr[11] = 0xff;
        memcpy(key->addr + 12, &a4, 4);
        max = 32;
    } else if (inet_pton(AF_INET6, addr, key->addr) == 1) {
        max = 128;
    } else {
        return -EINVAL;
    }
    prefix = (unsigned long)max;
    if (slash) {
        errno = 0;
        prefix = strtoul(slash + 1, &end, 10);
        if (errno || end == slash + 1 || *end || prefix > (unsigned long)max)
            return -EINVAL;
    }
    key->prefixlen = (uint32_t)prefix + (max == 32 ? 96 : 0);
    return 0;
}

int redirect_cidr_check(const char *s)
{
    struct rd_cidr key;

    return s && cidr_parse(s, &key) == 0 ? 0 : -EINVAL;
}

static int ignore_load(int fd, const redirect_opts_t *o, char *err, size_t errlen)
{
    uint8_t one = 1;

    if (o->nignore > REDIRECT_MAX_IGNORE || o->nignore > RD_MAX_IGNORE) {
        snprintf(err, errlen, "too many ignored networks: %zu, at most %d", o->nignore,
                 RD_MAX_IGNORE);
        return -EINVAL;
    }
    for (size_t i = 0; i < o->nignore; i++) {
        struct rd_cidr key;
        int rc;

        if (!o->ignore_cidrs || !o->ignore_cidrs[i] || cidr_parse(o->ignore_cidrs[i], &key)) {
            snprintf(err, errlen, "ignored network \"%s\": not an IPv4 or IPv6 address or CIDR",
                     o->ignore_cidrs && o->ignore_cidrs[i] ? o->ignore_cidrs[i] : "(null)");
            return -EINVAL;
        }
        rc = bpf_map_update_elem(fd, &key, &one, BPF_ANY);
        if (rc < 0) {
            snprintf(err, errlen, "ignored network \"%s\": %s", o->ignore_cidrs[i], strerror(-rc));
            return rc;
        }
    }
    return 0;
}

/* ---- loading and attaching ---- */

static int load(redirect_t *r, const redirect_opts_t *o, struct bpf_log *log, char *err,
                size_t errlen)
{
    struct redirect_bpf *skel;
    char release[128] = "?";
    int rc;

    skel = redirect_bpf__open();
    if (!skel) {
        rc = -errno;
        snprintf(err, errlen, "opening the BPF object failed: %s", strerror(-rc));
        return rc ? rc : -ENOMEM;
    }
    r->_skel = skel;
    skel->rodata->self_tgid = o->self_pid;
    skel->rodata->tcp_port = o->tcp_port;
    skel->rodata->udp_port = o->udp_port;
    skel->rodata->nrules = (uint32_t)o->nrules;
    skel->rodata->v6_via_v4mapped = o->ipv6_via_v4mapped ? 1 : 0;
    skel->rodata->loopback_listening = o->loopback_listening ? 1 : 0;
    skel->rodata->refuse_quic = o->refuse_quic ? 1 : 0;
    redirect_select_settings(o->rules, o->nrules, &skel->rodata->exclude_mask,
                             skel->rodata->rule_pid);
    rc = redirect_bpf__load(skel);
    if (rc < 0) {
        char why[440] = "";

        if (log->first[0] && log->verifier[0])
            snprintf(why, sizeof(why), " (%s; verifier: %s)", log->first, log->verifier);
        else if (log->first[0] || log->verifier[0])
            snprintf(why, sizeof(why), " (%s)", log->first[0] ? log->first : log->verifier);
        kernel_too_old(release, sizeof(release));
        snprintf(err, errlen,
                 "loading the BPF programs failed%s: %s; kernel %s may lack a hook "
                 "or helper (developed on 6.18)",
                 why, strerror(-rc), release);
        return rc == -ENOTSUP ? -EOPNOTSUPP : rc;
    }
    return 0;
}

static int attach_cgroup(struct bpf_program *prog, struct bpf_link **link, int cgroup_fd,
                         const char *what, char *err, size_t errlen)
{
    *link = bpf_program__attach_cgroup(prog, cgroup_fd);
    if (!*link) {
        int rc = -errno;

        snprintf(err, errlen, "attaching the %s program to the cgroup failed: %s", what,
                 strerror(-rc));
        return rc ? rc : -EINVAL;
    }
    return 0;
}

static int attach_trace(struct bpf_program *prog, struct bpf_link **link, const char *what,
                        char *err, size_t errlen)
{
    *link = bpf_program__attach(prog);
    if (!*link) {
        int rc = -errno;

        snprintf(err, errlen, "attaching to the %s tracepoint failed: %s", what, strerror(-rc));
        return rc ? rc : -EINVAL;
    }
    return 0;
}

/* Order matters: the names map is full before anything runs; fork/exec/exit are watched before
   /proc is scanned, so a process is either scanned or seen by the kernel (or both: the scan
   never overwrites); sockets are touched last, when every process has its decision. */
static int attach(redirect_t *r, const redirect_opts_t *o, char *err, size_t errlen)
{
    struct redirect_bpf *s = r->_skel;
    struct {
        struct bpf_program *prog;
        struct bpf_link **link;
        const char *what;
    } cg[] = {
        {s->progs.rd_sockops, &s->links.rd_sockops, "sockops"},
        {s->progs.rd_egress, &s->links.rd_egress, "cgroup_skb/egress"},
        {s->progs.rd_getpeername4, &s->links.rd_getpeername4, "getpeername4"},
        {s->progs.rd_getpeername6, &s->links.rd_getpeername6, "getpeername6"},
        {s->progs.rd_recvmsg4, &s->links.rd_recvmsg4, "recvmsg4"},
        {s->progs.rd_recvmsg6, &s->links.rd_recvmsg6, "recvmsg6"},
        {s->progs.rd_sendmsg4, &s->links.rd_sendmsg4, "sendmsg4"},
        {s->progs.rd_sendmsg6, &s->links.rd_sendmsg6, "sendmsg6"},
        {s->progs.rd_connect4, &s->links.rd_connect4, "connect4"},
        {s->progs.rd_connect6, &s->links.rd_connect6, "connect6"},
    };
    int rc;

    rc = redirect_select_load_names(bpf_map__fd(s->maps.names), o->rules, o->nrules);
    if (rc < 0) {
        snprintf(err, errlen, "filling the process names map failed: %s", strerror(-rc));
        return rc;
    }
    rc = ignore_load(bpf_map__fd(s->maps.ignore), o, err, errlen);
    if (rc < 0)
        return rc;
    if ((rc = attach_trace(s->progs.rd_exit, &s->links.rd_exit, "sched_process_exit", err,
                           errlen)) < 0 ||
        (rc = attach_trace(s->progs.rd_fork, &s->links.rd_fork, "sched_process_fork", err,
                           errlen)) < 0 ||
        (rc = attach_trace(s->progs.rd_exec, &s->links.rd_exec, "sched_process_exec", err,
                           errlen)) < 0)
        return rc;
    rc = redirect_select_scan(bpf_map__fd(s->maps.procs), o->rules, o->nrules);
    if (rc < 0) {
        snprintf(err, errlen, "reading /proc failed: %s", strerror(-rc));
        return rc;
    }
    /* The peer-rewriting and publishing programs go first, so a socket redirected by connect
       already finds them. */
    for (size_t i = 0; i < sizeof(cg) / sizeof(cg[0]); i++) {
        rc = attach_cgroup(cg[i].prog, cg[i].link, r->_cgroup_fd, cg[i].what, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int redirect_open(const redirect_opts_t *o, redirect_t **out, char *err, size_t errlen)
{
    char scratch[1], release[128] = "?";
    struct bpf_log log = {{0}, {0}, 0};
    libbpf_print_fn_t old_print;
    redirect_t *r;
    int rc;

    if (!err || errlen == 0) {
        err = scratch;
        errlen = sizeof(scratch);
    }
    err[0] = 0;
    *out = NULL;
    if (!o) {
        snprintf(err, errlen, "no redirect options");
        return -EINVAL;
    }
    rc = redirect_select_check(o->rules, o->nrules, err, errlen);
    if (rc < 0)
        return rc;
    if (!has_capabilities()) {
        snprintf(err, errlen,
                 "local redirect mode needs root (CAP_SYS_ADMIN, or CAP_BPF, "
                 "CAP_PERFMON, CAP_NET_ADMIN and CAP_SYS_PTRACE)");
        return -EPERM;
    }
    if (kernel_too_old(release, sizeof(release))) {
        snprintf(err, errlen, "kernel %s is too old for local redirect mode (needs %d.%d or newer)",
                 release, KERNEL_MIN_MAJOR, KERNEL_MIN_MINOR);
        return -EOPNOTSUPP;
    }
    if (access("/sys/kernel/btf/vmlinux", R_OK) < 0) {
        snprintf(err, errlen,
                 "the kernel has no BTF (/sys/kernel/btf/vmlinux: %s): it needs "
                 "CONFIG_DEBUG_INFO_BTF=y",
                 strerror(errno));
        return -EOPNOTSUPP;
    }
    r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    r->_cgroup_fd = cgroup_open(o->cgroup_path, err, errlen);
    if (r->_cgroup_fd < 0) {
        rc = r->_cgroup_fd;
        free(r);
        return rc;
    }

    bpf_log_current = &log;
    old_print = libbpf_set_print(bpf_log_print);
    rc = load(r, o, &log, err, errlen);
    if (rc == 0)
        rc = attach(r, o, err, errlen);
    libbpf_set_print(old_print);
    bpf_log_current = NULL;

    if (rc < 0) {
        redirect_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

uint64_t redirect_quic_refused(const redirect_t *r)
{
    return r && r->_skel && r->_skel->bss
               ? __atomic_load_n(&r->_skel->bss->quic_refused, __ATOMIC_RELAXED)
               : 0;
}

void redirect_close(redirect_t *r)
{
    if (!r)
        return;
    /* Destroying the skeleton closes the link fds: the kernel detaches the programs then. */
    redirect_bpf__destroy(r->_skel);
    if (r->_cgroup_fd >= 0)
        close(r->_cgroup_fd);
    free(r);
}

/* ---- lookups ---- */

static int key_from_sockaddr(const struct sockaddr *sa, struct rd_key *key)
{
    memset(key, 0, sizeof(*key));
    if (!sa)
        return -EINVAL;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

        key->addr[10] = key->addr[11] = 0xff;
        memcpy(key->addr + 12, &sin->sin_addr, 4);
        key->port = ntohs(sin->sin_port);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

        memcpy(key->addr, &sin6->sin6_addr, 16);
        key->port = ntohs(sin6->sin6_port);
        return 0;
    }
    return -EAFNOSUPPORT;
}

static void info_from(const struct rd_info *v, redirect_info_t *info)
{
    memset(info, 0, sizeof(*info));
    if (v->v4) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&info->orig_dst;

        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, v->addr + 12, 4);
        sin->sin_port = v->port;
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&info->orig_dst;

        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, v->addr, 16);
        sin6->sin6_port = v->port;
    }
    info->pid = v->pid;
    memcpy(info->comm, v->comm, sizeof(info->comm) - 1);
}

static int lookup(redirect_t *r, struct bpf_map *map, const struct sockaddr *client,
                  redirect_info_t *info, int consume)
{
    struct rd_key key;
    struct rd_info v;
    int fd, rc;

    if (!r || !info)
        return -EINVAL;
    rc = key_from_sockaddr(client, &key);
    if (rc < 0)
        return rc;
    fd = bpf_map__fd(map);
    rc = bpf_map_lookup_elem(fd, &key, &v);
    if (rc < 0)
        return rc;
    /* A failed delete only leaves the entry to the LRU: the answer is still right. */
    if (consume)
        bpf_map_delete_elem(fd, &key);
    info_from(&v, info);
    return 0;
}

int redirect_lookup_tcp(redirect_t *r, const struct sockaddr *client_addr, redirect_info_t *info)
{
    return lookup(r, r ? r->_skel->maps.tcp_flows : NULL, client_addr, info, 1);
}

int redirect_lookup_udp(redirect_t *r, const struct sockaddr *client_addr, redirect_info_t *info)
{
    return lookup(r, r ? r->_skel->maps.udp_flows : NULL, client_addr, info, 0);
}

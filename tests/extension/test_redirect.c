/* SPDX-License-Identifier: MIT */
/* The eBPF redirector against the running kernel. Needs root and BPF: exits 77 (skipped) without
   them. It makes its own cgroup v2 directory (<cgroup2 root>/mitmrec-test-PID), attaches only
   there, runs its own clients in it, talks only to 127.0.0.0/8 and ::1, stops only the processes
   it started (by PID) and removes the directory at the end.

   The clients are copies of this program under chosen file names (so their comm and executable
   basename are what the rules look at), started with "client" (rdclient.c). The test serves
   their connections on its "origin" listeners (answering O) and on its stand-in for mitmrec's
   listeners (answering M, after looking the flow up). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "rdclient.h"
#include "redirect.h"

#ifndef BPFTOOL
#define BPFTOOL "bpftool"
#endif

#define LONG_NAME "rdt-long-client-name-0123" /* 25 characters: comm is "rdt-long-client" */

/* ---- the test's side ---- */

struct client {
    pid_t pid;
    int in, out; /* its stdin (we write), its stdout (we read) */
    char name[64];
};

static char cgroup_dir[2048], orig_cgroup[4096], tmp_dir[2048];
static int moved_self;
static struct client *clients[32];
static size_t nclients;

/* Listeners: the origins a client means to reach, and the stand-in for mitmrec. */
static int o4, o4b, o6, m4, m6, u4, u6, uo4;
static int port_o4, port_o4b, port_o6, port_m, port_u, port_uo4;

static int cgroup_write_pid(const char *dir, pid_t pid)
{
    char path[4200], buf[32];
    int fd, n, rc = 0;

    snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    n = snprintf(buf, sizeof(buf), "%d\n", (int)pid);
    if (write(fd, buf, (size_t)n) != n)
        rc = -errno;
    close(fd);
    return rc;
}

static int copy_file(const char *from, const char *to)
{
    char buf[65536];
    int in = open(from, O_RDONLY | O_CLOEXEC), out;
    ssize_t got;

    if (in < 0)
        return -errno;
    out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    if (out < 0) {
        close(in);
        return -errno;
    }
    while ((got = read(in, buf, sizeof(buf))) > 0)
        if (write(out, buf, (size_t)got) != got) {
            got = -1;
            break;
        }
    close(in);
    close(out);
    return got < 0 ? -EIO : 0;
}

/* Starts a copy of this program named name, inside the test cgroup. */
static struct client *client_start(const char *name)
{
    char path[4200];
    int to[2], from[2];
    struct client *c;

    snprintf(path, sizeof(path), "%s/%s", tmp_dir, name);
    if (access(path, X_OK) != 0 && copy_file("/proc/self/exe", path) < 0)
        return NULL;
    if (nclients == sizeof(clients) / sizeof(clients[0]) || pipe2(to, O_CLOEXEC) < 0)
        return NULL;
    if (pipe2(from, O_CLOEXEC) < 0) {
        close(to[0]);
        close(to[1]);
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->pid = fork();
    if (c->pid == 0) {
        char *argv[] = {c->name, "client", NULL};

        /* Nothing outlives the test, even when it dies. */
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        dup2(to[0], 0);
        dup2(from[1], 1);
        if (cgroup_write_pid(cgroup_dir, getpid()) < 0)
            _exit(126);
        execv(path, argv);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    c->in = to[1];
    c->out = from[0];
    clients[nclients++] = c;
    return c;
}

static void client_stop(struct client *c)
{
    int i;

    close(c->in);
    close(c->out);
    for (i = 0; i < 100 && waitpid(c->pid, NULL, WNOHANG) == 0; i++)
        usleep(20000);
    if (i == 100) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, NULL, 0);
    }
}

static int read_line(int fd, char *line, size_t len)
{
    size_t n = 0;

    while (n + 1 < len) {
        char ch;

        if (!rdclient_wait_readable(fd, RDCLIENT_WAIT_MS + 2000) || read(fd, &ch, 1) != 1)
            break;
        if (ch == '\n') {
            line[n] = 0;
            return 0;
        }
        line[n++] = ch;
    }
    line[n] = 0;
    return -ETIMEDOUT;
}

/* What one client command did, seen from both ends. */
struct result {
    char who;             /* 'O' origin, 'M' mitmrec's stand-in, 0 nobody */
    int lookup_rc;        /* of redirect_lookup_tcp/udp, when who == 'M' and r was given */
    redirect_info_t info; /* its answer */
    char line[256];       /* the client's line */
    int pid;              /* from the line */
    char peer[64];        /* the address the application saw */
    int peer_port;
    char tag;                       /* who the application heard from */
    int listener;                   /* index of the listener that answered, in serve()'s table */
    struct sockaddr_storage client; /* the client's address as that listener saw it */
};

/* Serves one TCP connection or one datagram on whichever listener gets it. */
static void serve(redirect_t *r, struct result *res)
{
    struct pollfd p[] = {{o4, POLLIN, 0}, {o4b, POLLIN, 0}, {o6, POLLIN, 0}, {m4, POLLIN, 0},
                         {m6, POLLIN, 0}, {u4, POLLIN, 0},  {u6, POLLIN, 0}, {uo4, POLLIN, 0}};
    struct sockaddr_storage peer;
    socklen_t pl = sizeof(peer);
    char buf[512];

    res->who = 0;
    res->lookup_rc = -ENODATA;
    if (poll(p, 8, RDCLIENT_WAIT_MS) <= 0)
        return;
    for (int i = 0; i < 8; i++) {
        if (!(p[i].revents & POLLIN))
            continue;
        res->listener = i;
        res->who = (i == 3 || i == 4 || i == 5 || i == 6) ? 'M' : 'O';
        if (i < 5) {
            int fd = accept4(p[i].fd, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);

            if (fd < 0)
                return;
            res->client = peer;
            if (res->who == 'M' && r)
                res->lookup_rc = redirect_lookup_tcp(r, (struct sockaddr *)&peer, &res->info);
            if (write(fd, &res->who, 1) != 1)
                res->who = 'x';
            close(fd);
        } else {
            ssize_t got = recvfrom(p[i].fd, buf, sizeof(buf), 0, (struct sockaddr *)&peer, &pl);

            if (got < 0)
                return;
            res->client = peer;
            if (res->who == 'M' && r)
                res->lookup_rc = redirect_lookup_udp(r, (struct sockaddr *)&peer, &res->info);
            buf[0] = res->who;
            sendto(p[i].fd, buf, (size_t)got, 0, (struct sockaddr *)&peer, pl);
        }
        return;
    }
}

static void run(struct client *c, redirect_t *r, const char *cmd, struct result *res)
{
    char line[300];

    memset(res, 0, sizeof(*res));
    snprintf(line, sizeof(line), "%s\n", cmd);
    if (write(c->in, line, strlen(line)) < 0)
        return;
    serve(r, res);
    read_line(c->out, res->line, sizeof(res->line));
    if (sscanf(res->line, "ok %d %63s %d %c", &res->pid, res->peer, &res->peer_port, &res->tag) !=
        4)
        res->tag = 0;
}

static int sockaddr_is(const struct sockaddr_storage *ss, const char *host, int port)
{
    char h[64];
    int p;

    rdclient_addr_text((const struct sockaddr *)ss, h, sizeof(h), &p);
    return strcmp(h, host) == 0 && p == port;
}

/* The command reached mitmrec's stand-in; the lookup gave the original destination and the
   process; the application saw the original destination. */
#define CHECK_REDIRECTED(res, host, port, want_comm)                                               \
    do {                                                                                           \
        if ((res).who != 'M' || (res).tag != 'M')                                                  \
            fprintf(stderr, "  redirect expected: who=%c line=\"%s\"\n",                           \
                    (res).who ? (res).who : '-', (res).line);                                      \
        CHECK((res).who == 'M');                                                                   \
        CHECK((res).tag == 'M');                                                                   \
        CHECK_EQ_INT((res).lookup_rc, 0);                                                          \
        CHECK(sockaddr_is(&(res).info.orig_dst, host, port));                                      \
        CHECK_EQ_INT((res).info.pid, (res).pid);                                                   \
        CHECK_EQ_STR((res).info.comm, want_comm);                                                  \
        CHECK_EQ_STR((res).peer, host);                                                            \
        CHECK_EQ_INT((res).peer_port, port);                                                       \
    } while (0)

/* The command went where the application sent it. */
#define CHECK_DIRECT(res, host, port)                                                              \
    do {                                                                                           \
        if ((res).who != 'O' || (res).tag != 'O')                                                  \
            fprintf(stderr, "  direct expected: who=%c line=\"%s\"\n",                             \
                    (res).who ? (res).who : '-', (res).line);                                      \
        CHECK((res).who == 'O');                                                                   \
        CHECK((res).tag == 'O');                                                                   \
        CHECK_EQ_STR((res).peer, host);                                                            \
        CHECK_EQ_INT((res).peer_port, port);                                                       \
    } while (0)

/* A TCP connection from the test process itself (self_pid), served here too. */
static void self_tcp(const char *host, int port, struct result *res)
{
    struct sockaddr_storage ss, peer;
    socklen_t sl, pl = sizeof(peer);
    int fd;

    memset(res, 0, sizeof(*res));
    rdclient_addr_make(host, port, &ss, &sl);
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&ss, sl) < 0) {
        if (fd >= 0)
            close(fd);
        return;
    }
    getpeername(fd, (struct sockaddr *)&peer, &pl);
    rdclient_addr_text((struct sockaddr *)&peer, res->peer, sizeof(res->peer), &res->peer_port);
    serve(NULL, res);
    if (!rdclient_wait_readable(fd, RDCLIENT_WAIT_MS) || read(fd, &res->tag, 1) != 1)
        res->tag = 0;
    close(fd);
}

static int listen_on(int type, const char *host, int port, int *out_port)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int fd, one = 1;

    rdclient_addr_make(host, port, &ss, &sl);
    fd = socket(ss.ss_family, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || (type == SOCK_STREAM && listen(fd, 16) < 0)) {
        close(fd);
        return -1;
    }
    sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    if (out_port) {
        char h[64];

        rdclient_addr_text((struct sockaddr *)&ss, h, sizeof(h), out_port);
    }
    return fd;
}

/* The same free port on 127.0.0.1 and ::1, as mitmrec listens. */
static int listen_pair(int type, int *fd4, int *fd6)
{
    for (int tries = 0; tries < 20; tries++) {
        int port;

        *fd4 = listen_on(type, "127.0.0.1", 0, &port);
        if (*fd4 < 0)
            return -1;
        *fd6 = listen_on(type, "::1", port, NULL);
        if (*fd6 >= 0)
            return port;
        close(*fd4);
    }
    return -1;
}

/* What `bpftool cgroup show` lists for the test cgroup, as a count of non-blank lines. */
static int bpftool_lines(void)
{
    char cmd[4300], line[512];
    const char *tool = access(BPFTOOL, X_OK) == 0 ? BPFTOOL : "bpftool";
    FILE *f;
    int n = 0;

    snprintf(cmd, sizeof(cmd), "%s cgroup show '%s' 2>&1", tool, cgroup_dir);
    f = popen(cmd, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (line[strspn(line, " \t\n")])
            n++;
    pclose(f);
    return n;
}

/* Links are released when their last fd closes; allow the kernel a moment after a kill. */
static int wait_detached(void)
{
    for (int i = 0; i < 150; i++) {
        if (bpftool_lines() == 0)
            return 1;
        usleep(20000);
    }
    return 0;
}

static void cleanup(void)
{
    char path[4200];

    for (size_t i = 0; i < nclients; i++) {
        client_stop(clients[i]);
        snprintf(path, sizeof(path), "%s/%s", tmp_dir, clients[i]->name);
        unlink(path);
        free(clients[i]);
    }
    nclients = 0;
    if (moved_self && cgroup_write_pid(orig_cgroup, getpid()) == 0)
        moved_self = 0;
    if (cgroup_dir[0]) {
        for (int i = 0; i < 50 && rmdir(cgroup_dir) < 0 && errno == EBUSY; i++)
            usleep(20000);
        cgroup_dir[0] = 0;
    }
    if (tmp_dir[0]) {
        rmdir(tmp_dir);
        tmp_dir[0] = 0;
    }
}

/* The test process's own cgroup v2 directory, to come back to. */
static int self_cgroup(const char *root, char *out, size_t len)
{
    char line[2048];
    FILE *f = fopen("/proc/self/cgroup", "re");
    int rc = -ENOENT;

    if (!f)
        return -errno;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "0::", 3) == 0) {
            line[strcspn(line, "\n")] = 0;
            snprintf(out, len, "%s%s", root, strcmp(line + 3, "/") == 0 ? "" : line + 3);
            rc = 0;
            break;
        }
    }
    fclose(f);
    return rc;
}

static int open_or_skip(const redirect_opts_t *o, redirect_t **r)
{
    char err[512];
    int rc = redirect_open(o, r, err, sizeof(err));

    if (rc == -EPERM || rc == -EOPNOTSUPP || rc == -ENOTDIR) {
        printf("SKIP: %s\n", err);
        cleanup();
        exit(77);
    }
    if (rc < 0)
        fprintf(stderr, "redirect_open: %d %s\n", rc, err);
    CHECK_EQ_INT(rc, 0);
    return rc;
}

/* An opts with the test's listeners and self. */
static redirect_opts_t opts_base(void)
{
    redirect_opts_t o;

    memset(&o, 0, sizeof(o));
    o.cgroup_path = cgroup_dir;
    o.tcp_port = (uint16_t)port_m;
    o.udp_port = (uint16_t)port_u;
    o.self_pid = (uint32_t)getpid();
    return o;
}

static void test_rules(void)
{
    struct client *a_client, *a_long, *a_bypid, *a_other, *a_excl;
    struct client *b_client, *b_long, *b_threads, *b_excl;
    redirect_rule_t rules[6];
    const char *ignore[] = {"127.0.0.2/32", "fd00::/8"};
    redirect_opts_t o = opts_base();
    redirect_t *r = NULL;
    struct result res;

    /* Running before the redirector: decided by the /proc scan. */
    a_client = client_start("rdtclient");
    a_long = client_start(LONG_NAME);
    a_bypid = client_start("rdtbypid");
    a_other = client_start("rdtother");
    a_excl = client_start("rdtexcl");
    CHECK(a_client && a_long && a_bypid && a_other && a_excl);
    if (!a_client || !a_long || !a_bypid || !a_other || !a_excl)
        return;
    /* Let them exec, so the scan sees their own names. */
    usleep(200000);

    memset(rules, 0, sizeof(rules));
    snprintf(rules[0].name, sizeof(rules[0].name), "rdtclient");
    snprintf(rules[1].name, sizeof(rules[1].name), LONG_NAME);
    snprintf(rules[2].name, sizeof(rules[2].name), "rdtthreads");
    rules[3].pid = (uint32_t)a_bypid->pid;
    snprintf(rules[4].name, sizeof(rules[4].name), "rdtexcl");
    snprintf(rules[5].name, sizeof(rules[5].name), "rdtexcl");
    rules[5].exclude = 1; /* last match wins: rdtexcl is out */
    o.rules = rules;
    o.nrules = 6;
    o.ignore_cidrs = ignore;
    o.nignore = 2;
    if (open_or_skip(&o, &r) < 0)
        return;
    CHECK(bpftool_lines() > 0);

    /* Started afterwards: decided at exec. */
    b_client = client_start("rdtclient");
    b_long = client_start(LONG_NAME);
    b_threads = client_start("rdtthreads");
    b_excl = client_start("rdtexcl");
    CHECK(b_client && b_long && b_threads && b_excl);
    if (!b_client || !b_long || !b_threads || !b_excl) {
        redirect_close(r);
        return;
    }

    {
        char cmd[64];

#define RUN(c, fmt, ...) (snprintf(cmd, sizeof(cmd), fmt, __VA_ARGS__), run((c), r, cmd, &res))
        printf("name, running before: redirected, original destination kept\n");
        RUN(a_client, "tcp 127.0.0.1 %d", port_o4);
        CHECK_REDIRECTED(res, "127.0.0.1", port_o4, "rdtclient");

        printf("name longer than 15 characters, running before\n");
        RUN(a_long, "tcp 127.0.0.1 %d", port_o4);
        CHECK_REDIRECTED(res, "127.0.0.1", port_o4, "rdt-long-client");

        printf("PID rule\n");
        RUN(a_bypid, "tcp 127.0.0.1 %d", port_o4);
        CHECK_REDIRECTED(res, "127.0.0.1", port_o4, "rdtbypid");

        printf("not selected: direct, even from a thread named like a selected process\n");
        RUN(a_other, "tcp 127.0.0.1 %d", port_o4);
        CHECK_DIRECT(res, "127.0.0.1", port_o4);
        RUN(a_other, "thread rdtclient tcp 127.0.0.1 %d", port_o4);
        CHECK_DIRECT(res, "127.0.0.1", port_o4);

        printf("excluded by a later rule, running before and started after\n");
        RUN(a_excl, "tcp 127.0.0.1 %d", port_o4);
        CHECK_DIRECT(res, "127.0.0.1", port_o4);
        RUN(b_excl, "tcp 127.0.0.1 %d", port_o4);
        CHECK_DIRECT(res, "127.0.0.1", port_o4);

        printf("name, started after (exec)\n");
        RUN(b_client, "tcp 127.0.0.1 %d", port_o4);
        CHECK_REDIRECTED(res, "127.0.0.1", port_o4, "rdtclient");
        CHECK_EQ_INT(res.pid, b_client->pid);

        printf("name longer than 15 characters, started after\n");
        RUN(b_long, "tcp 127.0.0.1 %d", port_o4);
        CHECK_REDIRECTED(res, "127.0.0.1", port_o4, "rdt-long-client");

        printf("thread renamed \"Socket Thread\": matched by its process\n");
        RUN(b_threads, "thread Socket%cThread tcp 127.0.0.1 %d", '_', port_o4);
        CHECK_REDIRECTED(res, "127.0.0.1", port_o4, "rdtthreads");
        CHECK_EQ_INT(res.pid, b_threads->pid);

        printf("forked child inherits its parent's decision\n");
        RUN(b_client, "fork tcp 127.0.0.1 %d", port_o4);
        CHECK_REDIRECTED(res, "127.0.0.1", port_o4, "rdtclient");
        CHECK(res.pid != b_client->pid);

        printf("a connection is looked up once; a datagram flow many times\n");
        CHECK_EQ_INT(redirect_lookup_tcp(r, (struct sockaddr *)&res.client, &res.info), -ENOENT);
        RUN(a_client, "udp 127.0.0.53 %d", 53);
        CHECK_EQ_INT(res.lookup_rc, 0);
        CHECK_EQ_INT(redirect_lookup_udp(r, (struct sockaddr *)&res.client, &res.info), 0);
        CHECK(sockaddr_is(&res.info.orig_dst, "127.0.0.53", 53));

        printf("ignored network: direct\n");
        RUN(a_client, "tcp 127.0.0.2 %d", port_o4b);
        CHECK_DIRECT(res, "127.0.0.2", port_o4b);

        printf("IPv6 to ::1 goes to [::1]:mitmrec\n");
        RUN(a_client, "tcp ::1 %d", port_o6);
        CHECK_REDIRECTED(res, "::1", port_o6, "rdtclient");

        printf("v4-mapped from a dual-stack socket goes to 127.0.0.1:mitmrec\n");
        RUN(a_client, "tcp ::ffff:127.0.0.1 %d", port_o4);
        CHECK(res.who == 'M');
        CHECK_EQ_INT(res.lookup_rc, 0);
        CHECK(sockaddr_is(&res.info.orig_dst, "127.0.0.1", port_o4));
        CHECK_EQ_STR(res.peer, "::ffff:127.0.0.1");
        CHECK_EQ_INT(res.peer_port, port_o4);

        printf("UDP sendto 127.0.0.53:53: redirected, the reply comes from 127.0.0.53:53\n");
        RUN(a_client, "udp 127.0.0.53 %d", 53);
        CHECK_REDIRECTED(res, "127.0.0.53", 53, "rdtclient");

        printf("connected UDP to 127.0.0.53:53, also from a process started after\n");
        RUN(a_client, "udpc 127.0.0.53 %d", 53);
        CHECK_REDIRECTED(res, "127.0.0.53", 53, "rdtclient");
        RUN(b_client, "udpc 127.0.0.53 %d", 53);
        CHECK_REDIRECTED(res, "127.0.0.53", 53, "rdtclient");

        printf("UDP over IPv6 and v4-mapped\n");
        RUN(a_client, "udp ::1 %d", 5353);
        CHECK_REDIRECTED(res, "::1", 5353, "rdtclient");
        RUN(a_client, "udpc ::1 %d", 5353);
        CHECK_REDIRECTED(res, "::1", 5353, "rdtclient");
        RUN(a_client, "udp ::ffff:127.0.0.53 %d", 53);
        CHECK(res.who == 'M' && res.lookup_rc == 0);
        CHECK(sockaddr_is(&res.info.orig_dst, "127.0.0.53", 53));
        CHECK_EQ_STR(res.peer, "::ffff:127.0.0.53");
        RUN(a_client, "udpc ::ffff:127.0.0.53 %d", 53);
        CHECK(res.who == 'M' && res.lookup_rc == 0);
        CHECK_EQ_STR(res.peer, "::ffff:127.0.0.53");

        printf("UDP from a process not selected: direct\n");
        RUN(a_other, "udp 127.0.0.1 %d", port_uo4);
        CHECK_DIRECT(res, "127.0.0.1", port_uo4);

        printf("closed: nothing attached, connections go direct again\n");
        redirect_close(r);
        r = NULL;
        CHECK_EQ_INT(bpftool_lines(), 0);
        RUN(a_client, "tcp 127.0.0.1 %d", port_o4);
        CHECK_DIRECT(res, "127.0.0.1", port_o4);
        RUN(b_client, "udp 127.0.0.1 %d", port_uo4);
        CHECK_DIRECT(res, "127.0.0.1", port_uo4);
#undef RUN
    }
}

static void test_spawn_mode_and_self(void)
{
    redirect_opts_t o = opts_base();
    redirect_rule_t rule;
    struct client *c, *x;
    redirect_t *r = NULL;
    struct result res;
    char cmd[64];

    printf("no rules: every process in the cgroup but self\n");
    c = client_start("rdtother");
    CHECK(c != NULL);
    if (!c || open_or_skip(&o, &r) < 0)
        return;
    snprintf(cmd, sizeof(cmd), "tcp ::1 %d", port_o6);
    run(c, r, cmd, &res);
    CHECK_REDIRECTED(res, "::1", port_o6, "rdtother");
    CHECK_EQ_INT(res.listener, 4); /* [::1]:mitmrec */
    snprintf(cmd, sizeof(cmd), "tcp 127.0.0.1 %d", port_o4);
    run(c, r, cmd, &res);
    CHECK_REDIRECTED(res, "127.0.0.1", port_o4, "rdtother");

    /* The test process joins the cgroup: everything there is selected, but it is self_pid. */
    CHECK_EQ_INT(cgroup_write_pid(cgroup_dir, getpid()), 0);
    moved_self = 1;
    self_tcp("127.0.0.1", port_o4, &res);
    CHECK_DIRECT(res, "127.0.0.1", port_o4);
    CHECK_EQ_INT(cgroup_write_pid(orig_cgroup, getpid()), 0);
    moved_self = 0;
    redirect_close(r);
    CHECK_EQ_INT(bpftool_lines(), 0);

    printf("ipv6_via_v4mapped: IPv6 destinations go to 127.0.0.1:mitmrec\n");
    o.ipv6_via_v4mapped = 1;
    if (open_or_skip(&o, &r) < 0)
        return;
    snprintf(cmd, sizeof(cmd), "tcp ::1 %d", port_o6);
    run(c, r, cmd, &res);
    CHECK_REDIRECTED(res, "::1", port_o6, "rdtother");
    CHECK_EQ_INT(res.listener, 3); /* 127.0.0.1:mitmrec */
    redirect_close(r);
    o.ipv6_via_v4mapped = 0;
    snprintf(cmd, sizeof(cmd), "tcp 127.0.0.1 %d", port_o4);

    printf("only an exclude (\"!rdtexcl\"): everything but rdtexcl\n");
    memset(&rule, 0, sizeof(rule));
    rule.exclude = 1;
    snprintf(rule.name, sizeof(rule.name), "rdtexcl");
    o.rules = &rule;
    o.nrules = 1;
    x = client_start("rdtexcl");
    CHECK(x != NULL);
    if (!x || open_or_skip(&o, &r) < 0)
        return;
    run(c, r, cmd, &res);
    CHECK_REDIRECTED(res, "127.0.0.1", port_o4, "rdtother");
    run(x, r, cmd, &res);
    CHECK_DIRECT(res, "127.0.0.1", port_o4);
    redirect_close(r);
    CHECK_EQ_INT(bpftool_lines(), 0);
}

/* Errors name what is wrong, and nothing stays attached. */
static void test_errors(void)
{
    redirect_opts_t o = opts_base();
    redirect_rule_t rules[REDIRECT_MAX_RULES + 1];
    const char *bad_cidr[] = {"10.0.0.0/33"};
    redirect_t *r = (redirect_t *)&o;
    char err[512];
    int sync[2], status;
    pid_t pid;

    printf("errors: bad options, not a cgroup v2 directory, not root\n");
    memset(rules, 0, sizeof(rules));
    for (int i = 0; i <= REDIRECT_MAX_RULES; i++)
        snprintf(rules[i].name, sizeof(rules[i].name), "n%d", i);
    o.rules = rules;
    o.nrules = REDIRECT_MAX_RULES + 1;
    CHECK_EQ_INT(redirect_open(&o, &r, err, sizeof(err)), -EINVAL);
    CHECK(r == NULL);
    CHECK(strstr(err, "too many") != NULL);
    o.nrules = 1;
    snprintf(rules[0].name, sizeof(rules[0].name), "/usr/bin/curl");
    CHECK_EQ_INT(redirect_open(&o, &r, err, sizeof(err)), -EINVAL);
    o.nrules = 0;
    o.ignore_cidrs = bad_cidr;
    o.nignore = 1;
    CHECK_EQ_INT(redirect_open(&o, &r, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "10.0.0.0/33") != NULL);
    CHECK_EQ_INT(bpftool_lines(), 0);
    o.nignore = 0;
    o.cgroup_path = "/proc";
    CHECK_EQ_INT(redirect_open(&o, &r, err, sizeof(err)), -ENOTDIR);
    CHECK(strstr(err, "not a cgroup v2 directory") != NULL);
    o.cgroup_path = "/nonexistent/cgroup";
    CHECK_EQ_INT(redirect_open(&o, &r, err, sizeof(err)), -ENOENT);
    o.cgroup_path = cgroup_dir;

    if (pipe2(sync, O_CLOEXEC) < 0)
        return;
    pid = fork();
    if (pid == 0) {
        int rc = -1;

        if (setgid(65534) == 0 && setuid(65534) == 0)
            rc = redirect_open(&o, &r, err, sizeof(err));
        dprintf(sync[1], "%d %s\n", rc, err);
        _exit(0);
    }
    close(sync[1]);
    if (read_line(sync[0], err, sizeof(err)) == 0)
        printf("  as nobody: %s\n", err);
    close(sync[0]);
    waitpid(pid, &status, 0);
    CHECK_EQ_INT(atoi(err), -EPERM);
    CHECK(strstr(err, "needs root") != NULL);
}

/* A process that attached is killed: its links go with its file descriptors. */
static void test_sigkill(void)
{
    struct client *c = client_start("rdtother");
    struct result res;
    char cmd[64], line[600];
    int sync[2];
    pid_t pid;

    printf("SIGKILL of the process that attached detaches everything\n");
    CHECK(c != NULL);
    if (!c || pipe2(sync, O_CLOEXEC) < 0)
        return;
    pid = fork();
    if (pid == 0) {
        redirect_opts_t o = opts_base();
        char err[512];
        redirect_t *r;
        int rc;

        o.self_pid = (uint32_t)getpid();
        rc = redirect_open(&o, &r, err, sizeof(err));
        dprintf(sync[1], "%s %s\n", rc == 0 ? "ready" : "error", err);
        for (;;)
            pause();
    }
    close(sync[1]);
    CHECK(pid > 0);
    if (pid < 0 || read_line(sync[0], line, sizeof(line)) < 0 || strncmp(line, "ready", 5)) {
        fprintf(stderr, "attaching child: %s\n", line);
        CHECK(0);
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
        close(sync[0]);
        return;
    }
    close(sync[0]);
    CHECK(bpftool_lines() > 0);
    snprintf(cmd, sizeof(cmd), "tcp 127.0.0.1 %d", port_o4);
    run(c, NULL, cmd, &res);
    CHECK(res.who == 'M' && res.tag == 'M');
    CHECK_EQ_STR(res.peer, "127.0.0.1");

    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CHECK(wait_detached());
    run(c, NULL, cmd, &res);
    CHECK_DIRECT(res, "127.0.0.1", port_o4);
}

int main(int argc, char **argv)
{
    char root[1024], exe[1024], made[2048];
    ssize_t n;

    if (argc >= 2 && strcmp(argv[1], "client") == 0)
        return rdclient_main();

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (geteuid() != 0) {
        printf("SKIP: needs root\n");
        return 77;
    }
    if (redirect_cgroup_root(root, sizeof(root)) < 0) {
        printf("SKIP: no cgroup v2 mount\n");
        return 77;
    }
    if (self_cgroup(root, orig_cgroup, sizeof(orig_cgroup)) < 0) {
        printf("SKIP: not in a cgroup v2 hierarchy\n");
        return 77;
    }
    /* Never the root: a directory of our own. */
    snprintf(cgroup_dir, sizeof(cgroup_dir), "%s/mitmrec-test-%d", root, (int)getpid());
    if (mkdir(cgroup_dir, 0755) < 0) {
        printf("SKIP: cannot create %s: %s\n", cgroup_dir, strerror(errno));
        cgroup_dir[0] = 0;
        return 77;
    }
    /* Client copies live beside this program: /tmp may be noexec. */
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = 0;
    snprintf(tmp_dir, sizeof(tmp_dir), "%s/test_redirect.XXXXXX", dirname(exe));
    if (!mkdtemp(tmp_dir)) {
        fprintf(stderr, "mkdtemp %s: %s\n", tmp_dir, strerror(errno));
        tmp_dir[0] = 0;
        cleanup();
        return 1;
    }
    alarm(300); /* a last resort; every wait below has its own timeout */
    signal(SIGPIPE, SIG_IGN);

    o4 = listen_on(SOCK_STREAM, "127.0.0.1", 0, &port_o4);
    o4b = listen_on(SOCK_STREAM, "127.0.0.2", 0, &port_o4b);
    o6 = listen_on(SOCK_STREAM, "::1", 0, &port_o6);
    port_m = listen_pair(SOCK_STREAM, &m4, &m6);
    port_u = listen_pair(SOCK_DGRAM, &u4, &u6);
    uo4 = listen_on(SOCK_DGRAM, "127.0.0.1", 0, &port_uo4);
    if (o4 < 0 || o4b < 0 || o6 < 0 || port_m < 0 || port_u < 0 || uo4 < 0) {
        printf("SKIP: cannot listen on 127.0.0.1, 127.0.0.2 and ::1\n");
        cleanup();
        return 77;
    }
    printf("cgroup %s; origin 127.0.0.1:%d, 127.0.0.2:%d, [::1]:%d; mitmrec tcp %d, udp %d\n",
           cgroup_dir, port_o4, port_o4b, port_o6, port_m, port_u);

    test_rules();
    test_errors();
    test_spawn_mode_and_self();
    test_sigkill();

    snprintf(made, sizeof(made), "%s", cgroup_dir);
    cleanup();
    CHECK(access(made, F_OK) != 0);
    return check_done();
}

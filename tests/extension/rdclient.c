/* SPDX-License-Identifier: MIT */
/* The client half of test_redirect: what runs in the renamed copies of the test program. Commands
   come one per line on stdin, answers go one per line to stdout (see rdclient.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rdclient.h"

int rdclient_addr_make(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    if (strchr(host, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*s6);
        return inet_pton(AF_INET6, host, &s6->sin6_addr) == 1 ? 0 : -EINVAL;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    *len = sizeof(*s4);
    return inet_pton(AF_INET, host, &s4->sin_addr) == 1 ? 0 : -EINVAL;
}

void rdclient_addr_text(const struct sockaddr *sa, char *host, size_t hl, int *port)
{
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

        inet_ntop(AF_INET6, &s6->sin6_addr, host, (socklen_t)hl);
        *port = ntohs(s6->sin6_port);
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &s4->sin_addr, host, (socklen_t)hl);
        *port = ntohs(s4->sin_port);
    } else {
        snprintf(host, hl, "family%d", sa->sa_family);
        *port = 0;
    }
}

int rdclient_wait_readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return poll(&p, 1, ms) == 1;
}

static const uint8_t dns_query[] = {0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00,
                                    0x00, 0x00, 0x00, 0x00, 7,    'e',  'x',  'a',
                                    'm',  'p',  'l',  'e',  4,    't',  'e',  's',
                                    't',  0,    0x00, 0x01, 0x00, 0x01}; /* example.test, A, IN */

static void client_tcp(const char *host, int port, char *out, size_t len)
{
    struct sockaddr_storage ss, peer;
    socklen_t sl, pl = sizeof(peer);
    char ph[64], tag = '?';
    int fd, pp;

    if (rdclient_addr_make(host, port, &ss, &sl) < 0) {
        snprintf(out, len, "err address");
        return;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&ss, sl) < 0) {
        snprintf(out, len, "err connect %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    if (getpeername(fd, (struct sockaddr *)&peer, &pl) < 0) {
        snprintf(out, len, "err getpeername %s", strerror(errno));
        close(fd);
        return;
    }
    rdclient_addr_text((struct sockaddr *)&peer, ph, sizeof(ph), &pp);
    if (!rdclient_wait_readable(fd, RDCLIENT_WAIT_MS) || read(fd, &tag, 1) != 1)
        tag = '?';
    close(fd);
    snprintf(out, len, "ok %d %s %d %c", getpid(), ph, pp, tag);
}

static void client_udp(const char *host, int port, int connected, char *out, size_t len)
{
    struct sockaddr_storage ss, from, peer;
    socklen_t sl, fl = sizeof(from), pl = sizeof(peer);
    char fh[64], ph[64], buf[512];
    int fd, fp, pp;
    ssize_t got;

    if (rdclient_addr_make(host, port, &ss, &sl) < 0) {
        snprintf(out, len, "err address");
        return;
    }
    fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(out, len, "err socket %s", strerror(errno));
        return;
    }
    if (connected ? (connect(fd, (struct sockaddr *)&ss, sl) < 0 ||
                     send(fd, dns_query, sizeof(dns_query), 0) < 0)
                  : sendto(fd, dns_query, sizeof(dns_query), 0, (struct sockaddr *)&ss, sl) < 0) {
        snprintf(out, len, "err send %s", strerror(errno));
        close(fd);
        return;
    }
    if (!rdclient_wait_readable(fd, RDCLIENT_WAIT_MS)) {
        snprintf(out, len, "err no reply");
        close(fd);
        return;
    }
    got = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
    if (got <= 0) {
        snprintf(out, len, "err recvfrom %s", got < 0 ? strerror(errno) : "empty");
        close(fd);
        return;
    }
    rdclient_addr_text((struct sockaddr *)&from, fh, sizeof(fh), &fp);
    if (connected) {
        /* A connected socket must see the same peer both ways. */
        if (getpeername(fd, (struct sockaddr *)&peer, &pl) < 0) {
            snprintf(out, len, "err getpeername %s", strerror(errno));
            close(fd);
            return;
        }
        rdclient_addr_text((struct sockaddr *)&peer, ph, sizeof(ph), &pp);
        if (strcmp(ph, fh) != 0 || pp != fp) {
            snprintf(out, len, "err getpeername %s %d, recvfrom %s %d", ph, pp, fh, fp);
            close(fd);
            return;
        }
    }
    close(fd);
    snprintf(out, len, "ok %d %s %d %c", getpid(), fh, fp, buf[0]);
}

static void client_do(char *cmd, char *out, size_t len);

struct client_thread {
    char name[16];
    char *cmd;
    char *out;
    size_t len;
};

/* A thread with its own name makes the connection, as a browser's "Socket Thread" does. */
static void *client_thread_main(void *arg)
{
    struct client_thread *t = arg;

    prctl(PR_SET_NAME, t->name, 0, 0, 0);
    client_do(t->cmd, t->out, t->len);
    return NULL;
}

static void client_do(char *cmd, char *out, size_t len)
{
    char host[64], name[16];
    int port, off = 0;

    /* "udpc" before "udp", which would match it too. */
    if (sscanf(cmd, "tcp %63s %d", host, &port) == 2) {
        client_tcp(host, port, out, len);
    } else if (sscanf(cmd, "udpc %63s %d", host, &port) == 2) {
        client_udp(host, port, 1, out, len);
    } else if (sscanf(cmd, "udp %63s %d", host, &port) == 2) {
        client_udp(host, port, 0, out, len);
    } else if (sscanf(cmd, "thread %15s %n", name, &off) == 1 && off > 0) {
        struct client_thread t = {.cmd = cmd + off, .out = out, .len = len};
        pthread_t th;

        /* "_" stands for a space, which the command line can't carry. */
        for (char *u = name; *u; u++)
            if (*u == '_')
                *u = ' ';
        snprintf(t.name, sizeof(t.name), "%s", name);
        if (pthread_create(&th, NULL, client_thread_main, &t) != 0)
            snprintf(out, len, "err pthread_create");
        else
            pthread_join(th, NULL);
    } else {
        snprintf(out, len, "err unknown command");
    }
}

int rdclient_main(void)
{
    char cmd[256], out[256];
    FILE *in = fdopen(0, "r");

    while (in && fgets(cmd, sizeof(cmd), in)) {
        cmd[strcspn(cmd, "\n")] = 0;
        if (strncmp(cmd, "fork ", 5) == 0) {
            /* The child runs its parent's image: it inherits the parent's decision. */
            pid_t pid = fork();

            if (pid == 0) {
                client_do(cmd + 5, out, sizeof(out));
                dprintf(1, "%s\n", out);
                _exit(0);
            }
            if (pid < 0)
                dprintf(1, "err fork\n");
            else
                waitpid(pid, NULL, 0);
            continue;
        }
        client_do(cmd, out, sizeof(out));
        dprintf(1, "%s\n", out);
    }
    return 0;
}

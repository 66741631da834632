/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "flow.h"
#include "log.h"
#include "proxy.h"

static void on_connection(uv_stream_t *server, int status)
{
    proxy_t *p = server->data;
    int rc;

    if (status < 0) {
        log_warn("accept failed: %s", mr_strerror(status));
        return;
    }
    if ((rc = flow_accept(p, server, 0)) < 0)
        log_warn("cannot start a flow: %s", mr_strerror(rc));
}

int proxy_start(proxy_t *p, const char *host, int port, int *bound, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    char hp[300];
    int len = sizeof(ss);
    int rc;

    p->_env.loop = p->loop;
    p->_env.offload = conn_offload_default();
    memset(&ss, 0, sizeof(ss));
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
        snprintf(err, errlen, "invalid listen address '%s': give an IPv4 or IPv6 address", host);
        return -EINVAL;
    }
    if ((rc = uv_tcp_init(p->loop, &p->_listener)) < 0)
        goto fail;
    p->_listener.data = p;
    p->_listening = 1;
    if ((rc = uv_tcp_bind(&p->_listener, (struct sockaddr *)&ss, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&p->_listener, 511, on_connection)) < 0)
        goto fail;
    if (uv_tcp_getsockname(&p->_listener, (struct sockaddr *)&ss, &len) == 0)
        *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
fail:
    snprintf(err, errlen, "cannot listen on %s: %s", mr_hostport(hp, sizeof(hp), host, port),
             mr_strerror(rc));
    return rc;
}

static void on_transparent(uv_stream_t *server, int status)
{
    proxy_t *p = server->data;
    int rc;

    if (status < 0) {
        log_warn("accept failed: %s", mr_strerror(status));
        return;
    }
    if ((rc = flow_accept(p, server, 1)) < 0 && rc != -ENOENT)
        log_warn("cannot start a flow: %s", mr_strerror(rc));
}

int proxy_start_transparent(proxy_t *p, int port, int *bound, int *v6, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss), rc;
    uv_tcp_t *l;

    p->_env.loop = p->loop;
    p->_env.offload = conn_offload_default();
    *v6 = 0;
    for (int i = 0; i < 2; i++) {
        l = &p->_tlisteners[i];
        memset(&ss, 0, sizeof(ss));
        if (i == 0)
            uv_ip4_addr("127.0.0.1", port, (struct sockaddr_in *)&ss);
        else
            uv_ip6_addr("::1", port, (struct sockaddr_in6 *)&ss);
        if ((rc = uv_tcp_init(p->loop, l)) < 0)
            goto fail;
        l->data = p;
        p->_ntlisteners++;
        rc = uv_tcp_bind(l, (struct sockaddr *)&ss, i == 1 ? UV_TCP_IPV6ONLY : 0);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)l, 511, on_transparent);
        if (rc < 0) {
            if (i == 1) {
                /* No IPv6 loopback here: the redirector maps IPv6 to 127.0.0.1. */
                uv_close((uv_handle_t *)l, NULL);
                p->_ntlisteners--;
                break;
            }
            goto fail;
        }
        if (i == 0) {
            len = sizeof(ss);
            uv_tcp_getsockname(l, (struct sockaddr *)&ss, &len);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else {
            *v6 = 1;
        }
    }
    *bound = port;
    return 0;
fail:
    snprintf(err, errlen, "cannot listen on loopback port %d: %s", port, mr_strerror(rc));
    return rc;
}

void proxy_stop(proxy_t *p, int force)
{
    p->_stopping = 1;
    if (p->_listening) {
        p->_listening = 0;
        uv_close((uv_handle_t *)&p->_listener, NULL);
    }
    while (p->_ntlisteners > 0)
        uv_close((uv_handle_t *)&p->_tlisteners[--p->_ntlisteners], NULL);
    if (force) {
        flow_t *f = p->_flows;
        while (f) {
            flow_t *n = flow_next(f);
            flow_abort(f);
            f = n;
        }
    }
    if (p->_nflows == 0 && p->on_idle)
        p->on_idle(p);
}

uint64_t proxy_flows(const proxy_t *p)
{
    return p->_nflows;
}

/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "ca.h"
#include "log.h"
#include "options.h"
#include "proxy.h"
#include "recorder.h"
#include "tls.h"

/* How long flows may take to finish after SIGINT/SIGTERM before they are cut. */
#define STOP_GRACE_MS 3000

typedef struct app {
    uv_loop_t loop;
    options_t opts;
    proxy_t proxy;
    recorder_t *rec;
    uv_signal_t sigint, sigterm;
    uv_timer_t flush_timer, grace_timer;
    int stopping;
    int done;
} app_t;

static void close_all(app_t *a)
{
    if (a->done)
        return;
    a->done = 1;
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    uv_close((uv_handle_t *)&a->flush_timer, NULL);
    uv_close((uv_handle_t *)&a->grace_timer, NULL);
}

static void on_idle(proxy_t *p)
{
    close_all((app_t *)((char *)p - offsetof(app_t, proxy)));
}

static void grace_cb(uv_timer_t *t)
{
    app_t *a = t->data;
    log_info("cutting %llu flows still open", (unsigned long long)proxy_flows(&a->proxy));
    proxy_stop(&a->proxy, 1);
}

static void signal_cb(uv_signal_t *s, int signum)
{
    app_t *a = s->data;

    if (a->stopping) {
        proxy_stop(&a->proxy, 1);
        return;
    }
    a->stopping = 1;
    uv_timer_start(&a->grace_timer, grace_cb, STOP_GRACE_MS, 0);
    proxy_stop(&a->proxy, 0);
}

static void flush_cb(uv_timer_t *t)
{
    app_t *a = t->data;
    recorder_flush(a->rec);
}

static int is_loopback(const char *host)
{
    struct in_addr a4;
    return strcmp(host, "::1") == 0 ||
           (inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127);
}

int main(int argc, char **argv)
{
    app_t a;
    char err[512];
    ca_t *ca = NULL;
    SSL_CTX *sctx = NULL, *cctx = NULL;
    recorder_opts_t ro;
    recorder_stats_t st;
    int rc, port = 0, status = 1;

    memset(&a, 0, sizeof(a));
    signal(SIGPIPE, SIG_IGN);
    rc = options_parse(&a.opts, argc, argv, err, sizeof(err));
    if (rc == 1)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "mitmrec: %s\n", err);
        options_free(&a.opts);
        return 2;
    }
    log_set_level(a.opts.quiet ? LOG_QUIET : a.opts.verbose > 1 ? LOG_DEBUG
                                           : a.opts.verbose ? LOG_VERBOSE : LOG_NORMAL);

    /* Start-up in stages; each failure exits before anything is intercepted. */
    if ((rc = ca_open(a.opts.ca_file, &ca, err, sizeof(err))) < 0) {
        log_error("%s", err);
        goto out;
    }
    if (tls_server_ctx_new(&sctx, err, sizeof(err)) < 0 ||
        tls_client_ctx_new(a.opts.cacerts, a.opts.ncacerts, a.opts.insecure, &cctx, err,
                           sizeof(err)) < 0) {
        log_error("%s", err);
        goto out;
    }
    memset(&ro, 0, sizeof(ro));
    ro.pcapng_path = a.opts.out_path;
    ro.har_path = a.opts.har_path;
    ro.keylog_path = a.opts.keylog_path;
    ro.upstream = a.opts.upstream;
    ro.max_body = a.opts.max_body;
    if (recorder_new(&ro, &a.rec, err, sizeof(err)) < 0) {
        log_error("%s", err);
        goto out;
    }
    uv_loop_init(&a.loop);
    a.proxy.loop = &a.loop;
    a.proxy.rec = a.rec;
    a.proxy.ca = ca;
    a.proxy.server_ctx = sctx;
    a.proxy.client_ctx = cctx;
    a.proxy.insecure = a.opts.insecure;
    if (proxy_start(&a.proxy, a.opts.listen_host, a.opts.listen_port, &port, err,
                    sizeof(err)) < 0) {
        log_error("%s", err);
        proxy_stop(&a.proxy, 1);
        uv_run(&a.loop, UV_RUN_DEFAULT);
        uv_loop_close(&a.loop);
        recorder_close(a.rec);
        goto out;
    }
    a.proxy.on_idle = on_idle;
    if (!is_loopback(a.opts.listen_host))
        log_warn("listening on %s: any host that reaches it can use this proxy",
                 a.opts.listen_host);
    uv_signal_init(&a.loop, &a.sigint);
    uv_signal_init(&a.loop, &a.sigterm);
    a.sigint.data = a.sigterm.data = &a;
    uv_signal_start(&a.sigint, signal_cb, SIGINT);
    uv_signal_start(&a.sigterm, signal_cb, SIGTERM);
    uv_timer_init(&a.loop, &a.flush_timer);
    uv_timer_init(&a.loop, &a.grace_timer);
    a.flush_timer.data = a.grace_timer.data = &a;
    uv_timer_start(&a.flush_timer, flush_cb, 1000, 1000);
    if (a.opts.insecure)
        log_warn("--insecure: upstream certificates are not verified");
    fprintf(stderr, strchr(a.opts.listen_host, ':') ? "mitmrec: proxy listening on [%s]:%d\n"
                                                    : "mitmrec: proxy listening on %s:%d\n",
            a.opts.listen_host, port);
    fflush(stderr);

    uv_run(&a.loop, UV_RUN_DEFAULT);
    uv_loop_close(&a.loop);

    recorder_get_stats(a.rec, &st);
    rc = recorder_close(a.rec);
    if (!a.opts.quiet || rc < 0)
        fprintf(stderr,
                "mitmrec: %llu flows, %llu requests, %llu bytes; wrote %s (%llu packets) and %s%s\n",
                (unsigned long long)st.flows, (unsigned long long)st.requests,
                (unsigned long long)st.bytes, a.opts.out_path, (unsigned long long)st.packets,
                a.opts.har_path, rc < 0 ? " (INCOMPLETE: write errors)" : "");
    status = rc < 0 ? 1 : 0;
out:
    recorder_free(a.rec);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    ca_free(ca);
    options_free(&a.opts);
    return status;
}

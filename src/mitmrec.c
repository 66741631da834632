/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "ca.h"
#include "errors.h"
#include "log.h"
#include "options.h"
#include "privs.h"
#include "intercept.h"
#include "procinfo.h"
#include "proxy.h"
#include "priority.h"
#include "readmode.h"
#include "repair.h"
#include "recorder.h"
#include "redirect.h"
#include "spawn.h"
#include "spill.h"
#include "status.h"
#include "tls.h"
#include "udprelay.h"

/* How long flows may take to finish after SIGINT/SIGTERM before they are cut. */
#define STOP_GRACE_MS 3000

typedef struct app {
    uv_loop_t loop;
    options_t opts;
    proxy_t proxy;
    recorder_t *rec;
    intercept_t it; /* local redirect mode */
    udprelay_t *udp;
    status_t *status;
    uv_signal_t sigint, sigterm, sigchld;
    uv_timer_t flush_timer, grace_timer;
    int signals_on;
    int stopping;
    int done;
    int child_status; /* spawn mode: its exit status once it ended, else -1 */
} app_t;

static void close_all(app_t *a)
{
    if (a->done)
        return;
    a->done = 1;
    udprelay_stop(a->udp);
    a->udp = NULL;
    status_stop(a->status);
    if (a->signals_on) {
        uv_close((uv_handle_t *)&a->sigint, NULL);
        uv_close((uv_handle_t *)&a->sigterm, NULL);
        uv_close((uv_handle_t *)&a->sigchld, NULL);
        uv_close((uv_handle_t *)&a->flush_timer, NULL);
        uv_close((uv_handle_t *)&a->grace_timer, NULL);
        /* Closing the watchers gave SIGINT and SIGTERM their default action back: one more
           (a second Ctrl-C, or timeout(1) signalling its process group after the process)
           would kill us while the files get their last bytes, leaving a .gz cut short.
           The flows are gone by now; what is left is writing, and it is quick. */
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
    }
}

static void on_idle(proxy_t *p)
{
    close_all((app_t *)((char *)p - offsetof(app_t, proxy)));
}

static void grace_cb(uv_timer_t *t)
{
    app_t *a = t->data;
    unsigned long long n = proxy_flows(&a->proxy);

    log_info("cutting %llu %s still open", n, mr_plural(n, "flow", "flows"));
    proxy_stop(&a->proxy, 1);
}

static void app_stop(app_t *a)
{
    if (a->stopping) {
        proxy_stop(&a->proxy, 1);
        return;
    }
    a->stopping = 1;
    uv_timer_start(&a->grace_timer, grace_cb, STOP_GRACE_MS, 0);
    proxy_stop(&a->proxy, 0);
}

static void signal_cb(uv_signal_t *s, int signum)
{
    app_stop(s->data);
}

/* Spawn mode: the command ended; its status becomes ours. */
static void sigchld_cb(uv_signal_t *s, int signum)
{
    app_t *a = s->data;

    if (spawn_reap(&a->it.child, &a->child_status))
        app_stop(a);
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

/* Local redirect mode: listeners, the eBPF redirector, and in spawn mode the command.
   Returns 0, or the exit status after a one-line error. */
static int start_redirect(app_t *a, ca_t *ca)
{
    char err[512];
    intercept_opts_t io;
    enum intercept_stage stage = 0;
    int tport = 0, uport = 0, v6 = 0, rc;

    if ((rc = proxy_start_transparent(&a->proxy, 0, &tport, &v6, err, sizeof(err))) < 0) {
        log_error("%s", err);
        return 1;
    }
    if ((rc = udprelay_start(&a->loop, a->rec, intercept_lookup_udp_dst, NULL, 0, &uport, &a->udp,
                             err, sizeof(err))) < 0) {
        log_error("%s", err);
        return 1;
    }
    memset(&io, 0, sizeof(io));
    io.cgroup = a->opts.cgroup;
    io.rules = a->opts.rules;
    io.nrules = a->opts.nrules;
    io.ignore = a->opts.ignore;
    io.nignore = a->opts.nignore;
    io.tcp_port = (uint16_t)tport;
    io.udp_port = (uint16_t)uport;
    io.v6 = v6;
    /* Recording: a loopback port nothing listens on refuses the application itself. */
    io.loopback_listening = 1;
    io.refuse_quic = !a->opts.allow_quic;
    io.command = a->opts.mode == MODE_SPAWN ? a->opts.command : NULL;
    /* -o - (or --har -): the pcapng on stdout must not take the command's output in. */
    io.stdout_taken = !strcmp(a->opts.out_path, "-") || !strcmp(a->opts.har_path, "-");
    if ((rc = intercept_attach(&a->it, &io, &stage, err, sizeof(err))) < 0) {
        if (stage == INTERCEPT_CGROUP_ARG)
            log_error("%s", err);
        else
            log_error("%s; without it, use --listen mode (an explicit proxy needs no privileges)",
                      err);
        return 2;
    }
    a->proxy.lookup = intercept_lookup_tcp;
    a->proxy.lookup_opaque = a->it.redirect;
    /* The UDP relay was started before the redirector existed: give it the handle now. */
    udprelay_set_lookup_opaque(a->udp, a->it.redirect);
    if (a->opts.mode == MODE_SPAWN) {
        if (intercept_spawn(&a->it, &io, ca_cert_path(ca), err, sizeof(err)) < 0) {
            log_error("%s", err);
            return 1;
        }
        log_debug("started %s (pid %d) in %s", a->opts.command[0], (int)a->it.child, a->it.cgroup);
    } else {
        log_info("recording processes matching the -p rules in %s", a->it.attached);
    }
    return 0;
}

/* A row of the summary's process table; the header before the first (opaque: its flag). */
static void print_proc(void *opaque, const rec_proc_stats_t *st)
{
    unsigned long long f = st->flows, r = st->requests, b = st->bytes;
    int *header_done = opaque;

    if (!*header_done) {
        fprintf(stderr, "mitmrec:   %-20s %8s\n", "process", "pid");
        *header_done = 1;
    }
    log_line(stderr, "mitmrec:   %-20s %8u %6llu %-5s %6llu %-8s %12llu %s", st->name, st->pid, f,
             mr_plural(f, "flow", "flows"), r, mr_plural(r, "request", "requests"), b,
             mr_plural(b, "byte", "bytes"));
}

static void spill_failed(int err, const char *dir, void *opaque)
{
    (void)opaque;
    log_warn("cannot keep large bodies in a file in %s (%s): they stay in memory", dir,
             strerror(err));
}

/*
 * Bodies being received past 64 KiB wait in an unlinked file in $TMPDIR (or /tmp), as
 * sort(1) keeps its runs, not in memory: 1,000 concurrent downloads of 1 MiB held
 * 450 MiB of them (formats/spill.h). The page cache still holds them while there is room.
 */
static void spill_start(void)
{
    if (spill_enable(getenv("TMPDIR"), 64u << 10, spill_failed, NULL) < 0)
        log_warn("cannot keep large bodies in a file: out of memory");
}

int main(int argc, char **argv)
{
    app_t a;
    char err[512];
    ca_t *ca = NULL;
    SSL_CTX *sctx = NULL, *cctx = NULL;
    recorder_opts_t ro;
    recorder_stats_t st;
    int rc, port = 0, status = 1, loop_on = 0;

    memset(&a, 0, sizeof(a));
    a.child_status = -1;
    spawn_ignore_sigpipe();
    /* TLS handshakes run on libuv's worker threads (src/conn.c): one malloc arena for them
       all besides the loop's, rather than one each, keeps idle flows smaller (1,000 idle
       intercepted connections: 32.0 -> 30.0 MiB) at no measured cost in speed. */
    mallopt(M_ARENA_MAX, 2);
    rc = options_parse(&a.opts, argc, argv, err, sizeof(err));
    if (rc == 1)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "mitmrec: %s\n", err);
        options_free(&a.opts);
        return 2;
    }
    log_set_level(a.opts.quiet         ? LOG_QUIET
                  : a.opts.verbose > 1 ? LOG_DEBUG
                  : a.opts.verbose     ? LOG_VERBOSE
                                       : LOG_NORMAL);
    spill_start();
    if (a.opts.mode == MODE_READ || a.opts.mode == MODE_REPAIR) {
        status = a.opts.mode == MODE_READ ? readmode_run(&a.opts)
                                          : repair_har_file(a.opts.repair_path, a.opts.quiet);
        options_free(&a.opts);
        spill_disable();
        return status;
    }

    /* A command that cannot be run is said before any output is made (an existing one is
       kept), with the status a shell would give. The child still says it if this passed
       and its exec fails all the same. */
    if (a.opts.mode == MODE_SPAWN &&
        (rc = spawn_check_command(a.opts.command[0], err, sizeof(err))) != 0) {
        log_error("%s", err);
        options_free(&a.opts);
        spill_disable();
        return rc;
    }
    /* Before any thread starts: they take the niceness of the thread that starts them. */
    priority_apply(a.opts.nice, a.opts.nice_given);
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
    /* The upstream leg's secrets go only to --upstream's interface and to --keylog. */
    if (!a.opts.upstream && !a.opts.keylog_path)
        tls_ctx_keylog_off(cctx);
    memset(&ro, 0, sizeof(ro));
    ro.pcapng_path = a.opts.out_path;
    ro.har_path = a.opts.har_path;
    ro.keylog_path = a.opts.keylog_path;
    ro.upstream = a.opts.upstream;
    ro.max_body = a.opts.max_body;
    ro.filter = a.opts.filter;
    if (recorder_new(&ro, &a.rec, err, sizeof(err)) < 0) {
        log_error("%s", err);
        goto out;
    }
    uv_loop_init(&a.loop);
    loop_on = 1;
    a.proxy.loop = &a.loop;
    a.proxy.rec = a.rec;
    a.proxy.ca = ca;
    a.proxy.server_ctx = sctx;
    a.proxy.client_ctx = cctx;
    a.proxy.insecure = a.opts.insecure;
    if (a.opts.mode == MODE_LISTEN) {
        if (proxy_start(&a.proxy, a.opts.listen_host, a.opts.listen_port, &port, err, sizeof(err)) <
            0) {
            log_error("%s", err);
            goto stop_early;
        }
    } else if ((status = start_redirect(&a, ca)) != 0) {
        goto stop_early;
    }
    if (recorder_start(a.rec, err, sizeof(err)) < 0) {
        log_error("%s", err);
        status = 1;
        goto stop_early;
    }
    status = 1;
    /* Start-up is over: the programs are attached, sockets bound, files open.
       Reading other processes' /proc/PID/exe is all that needs privileges now. */
    if (geteuid() == 0 && (rc = privs_drop(a.opts.mode != MODE_LISTEN)) < 0)
        log_warn("cannot drop capabilities: %s", strerror(-rc));
    a.proxy.on_idle = on_idle;
    uv_timer_init(&a.loop, &a.flush_timer);
    uv_timer_init(&a.loop, &a.grace_timer);
    a.flush_timer.data = a.grace_timer.data = &a;
    uv_signal_init(&a.loop, &a.sigint);
    uv_signal_init(&a.loop, &a.sigterm);
    uv_signal_init(&a.loop, &a.sigchld);
    a.sigint.data = a.sigterm.data = a.sigchld.data = &a;
    a.signals_on = 1;
    uv_signal_start(&a.sigint, signal_cb, SIGINT);
    uv_signal_start(&a.sigterm, signal_cb, SIGTERM);
    if (a.opts.mode == MODE_SPAWN)
        uv_signal_start(&a.sigchld, sigchld_cb, SIGCHLD);
    uv_timer_start(&a.flush_timer, flush_cb, 1000, 1000);
    if (!a.opts.quiet &&
        (a.opts.status_line == 1 || (a.opts.status_line == -1 && isatty(STDERR_FILENO))))
        a.status = status_start(&a.loop, a.rec, &a.proxy);
    if (a.opts.insecure)
        log_warn("--insecure: upstream certificates are not verified");
    if (a.opts.mode == MODE_LISTEN) {
        if (!is_loopback(a.opts.listen_host))
            log_warn("listening on %s: any host that reaches it can use this proxy",
                     a.opts.listen_host);
        fprintf(stderr,
                strchr(a.opts.listen_host, ':') ? "mitmrec: proxy listening on [%s]:%d\n"
                                                : "mitmrec: proxy listening on %s:%d\n",
                a.opts.listen_host, port);
        fflush(stderr);
    }
    /* The command may have ended before the handler was in place: looked at once every
       handle is set up, since with no flow open stopping closes them all at once (a command
       as quick as true(1) ended here about one run in fifty, and app_stop then started a
       grace timer not yet initialized). */
    if (a.opts.mode == MODE_SPAWN)
        sigchld_cb(&a.sigchld, SIGCHLD);

    uv_run(&a.loop, UV_RUN_DEFAULT);
    uv_loop_close(&a.loop);
    loop_on = 0;

    recorder_get_stats(a.rec, &st);
    rc = recorder_close(a.rec);
    if (!a.opts.quiet || rc < 0) {
        unsigned long long f = st.flows, r = st.requests, b = st.bytes, p = st.packets;

        fprintf(stderr, "mitmrec: %llu %s, %llu %s, %llu %s; wrote %s (%llu %s) and %s%s\n", f,
                mr_plural(f, "flow", "flows"), r, mr_plural(r, "request", "requests"), b,
                mr_plural(b, "byte", "bytes"), a.opts.out_path, p,
                mr_plural(p, "packet", "packets"), a.opts.har_path,
                rc < 0 ? " (INCOMPLETE: write errors)" : "");
        if (a.opts.mode != MODE_LISTEN && !a.opts.quiet) {
            int header_done = 0;
            unsigned long long q = redirect_quic_refused(a.it.redirect);

            recorder_each_process(a.rec, print_proc, &header_done);
            if (q)
                fprintf(stderr,
                        "mitmrec: refused %llu QUIC %s (UDP port 443): browsers fall back to "
                        "TLS over TCP, which is recorded (--allow-quic relays QUIC "
                        "undecrypted)\n",
                        q, mr_plural(q, "attempt", "attempts"));
        }
    }
    status = rc < 0 ? 1 : 0;
    if (a.opts.mode == MODE_SPAWN && a.child_status >= 0 && status == 0)
        status = a.child_status;
    goto out;

stop_early:
    proxy_stop(&a.proxy, 1);
    udprelay_stop(a.udp);
    a.udp = NULL;
    if (a.it.child > 0) {
        kill(a.it.child, SIGTERM);
        waitpid(a.it.child, NULL, 0);
    }
    uv_run(&a.loop, UV_RUN_DEFAULT);
    uv_loop_close(&a.loop);
    loop_on = 0;
    /* Nothing was recorded: files made for a run that never started go away. */
    recorder_discard(a.rec);
    a.rec = NULL;
out:
    if (loop_on)
        uv_loop_close(&a.loop);
    intercept_close(&a.it);
    recorder_free(a.rec);
    tls_client_sessions_free();
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    ca_free(ca);
    options_free(&a.opts);
    spill_disable();
    /* Joins libuv's worker threads now, while OpenSSL can still free what each of them
       holds (it does so when a thread ends, but its own clean-up at exit comes before
       libuv's, and would leave that memory behind). */
    uv_library_shutdown();
    return status;
}

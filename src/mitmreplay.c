/* SPDX-License-Identifier: MIT */
#include <errno.h>
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
#include "intercept.h"
#include "log.h"
#include "match.h"
#include "priority.h"
#include "privs.h"
#include "recorder.h"
#include "replay_client.h"
#include "replay_options.h"
#include "replay_report.h"
#include "replay_server.h"
#include "replaydb.h"
#include "spawn.h"
#include "tls.h"

/* After the command ended (or SIGINT), how long connections may take to finish. */
#define STOP_GRACE_MS 1000

typedef struct app {
    uv_loop_t loop;
    replay_options_t o;
    replay_server_t *srv;
    intercept_t it;
    uv_signal_t sigint, sigterm, sigchld;
    uv_timer_t grace;
    int handles_on;
    int stopping;
    int child_status;
    FILE *reports[2]; /* --report files, opened before anything else runs */
} app_t;

static void close_handles(app_t *a)
{
    if (!a->handles_on)
        return;
    a->handles_on = 0;
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    uv_close((uv_handle_t *)&a->sigchld, NULL);
    uv_close((uv_handle_t *)&a->grace, NULL);
    /* As in mitmrec: with the watchers closed, one more SIGINT or SIGTERM (a second Ctrl-C,
       timeout(1) signalling its group) would kill us before the reports are written. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
}

static void on_idle(void *opaque)
{
    close_handles(opaque);
}

static void grace_cb(uv_timer_t *t)
{
    app_t *a = t->data;
    replay_server_stop(a->srv, 1);
}

static void app_stop(app_t *a)
{
    if (a->stopping) {
        replay_server_stop(a->srv, 1);
        return;
    }
    a->stopping = 1;
    uv_timer_start(&a->grace, grace_cb, STOP_GRACE_MS, 0);
    replay_server_stop(a->srv, 0);
}

static void signal_cb(uv_signal_t *s, int signum)
{
    app_stop(s->data);
}

static void sigchld_cb(uv_signal_t *s, int signum)
{
    app_t *a = s->data;

    if (spawn_reap(&a->it.child, &a->child_status))
        app_stop(a);
}

/* The recorded requests, in order, into the match table. */
static int fill_match(match_t *m, const replaydb_t *db)
{
    for (size_t i = 0; i < db->nentries; i++) {
        const replay_entry_t *e = &db->entries[i];
        match_req_t r;
        int rc;

        memset(&r, 0, sizeof(r));
        r.scheme = e->scheme;
        r.method = e->ex->method;
        r.host = e->host;
        r.port = e->port;
        r.target = e->target;
        r.headers = e->ex->req.headers;
        r.nheaders = e->ex->req.nheaders;
        r.body = e->ex->req.body;
        r.body_len = e->ex->req.body_len;
        if ((rc = match_add(m, &r, i)) < 0)
            return rc;
    }
    return 0;
}

/* The --report files, opened before the command runs: [0] JUnit XML, [1] JSON. */
static int open_reports(const replay_options_t *o, FILE *rf[2])
{
    const char *path[2] = {o->report_xml, o->report_json};
    char err[512];

    for (int i = 0; i < 2; i++)
        if (path[i] && !(rf[i] = replay_report_open(path[i], err, sizeof(err)))) {
            log_error("%s", err);
            return -1;
        }
    return 0;
}

/* A run that ends before its reports are written leaves no empty file behind. */
static void drop_reports(const replay_options_t *o, FILE *rf[2])
{
    const char *path[2] = {o->report_xml, o->report_json};

    for (int i = 0; i < 2; i++)
        if (rf[i]) {
            fclose(rf[i]);
            unlink(path[i]);
            rf[i] = NULL;
        }
}

static int write_reports(const replay_options_t *o, replay_report_t *rep, FILE *rf[2])
{
    char err[512];
    int failed = 0;

    if (rf[0] &&
        replay_report_write_junit(rep, rf[0], o->report_xml, o->recording, err, sizeof(err)) < 0) {
        log_error("%s", err);
        failed = 1;
    }
    if (rf[1] &&
        replay_report_write_json(rep, rf[1], o->report_json, o->recording, err, sizeof(err)) < 0) {
        log_error("%s", err);
        failed = 1;
    }
    rf[0] = rf[1] = NULL;
    return failed;
}

static int client_replay(app_t *a, replaydb_t *db)
{
    replay_report_t *rep = NULL;
    int status;

    if ((a->reports[0] || a->reports[1]) && !(rep = replay_report_new())) {
        log_error("out of memory");
        drop_reports(&a->o, a->reports);
        return 1;
    }
    status = replay_client_run(&a->o, db, rep);
    if (status < 0) {
        drop_reports(&a->o, a->reports);
        status = 1;
    } else if (rep && write_reports(&a->o, rep, a->reports)) {
        status = 1;
    }
    replay_report_free(rep);
    return status;
}

static int server_replay(app_t *a, replaydb_t *db)
{
    const replay_options_t *o = &a->o;
    char err[512];
    ca_t *ca = NULL;
    SSL_CTX *sctx = NULL, *cctx = NULL;
    recorder_t *rec = NULL;
    match_t *match = NULL;
    replay_report_t *rep = NULL;
    FILE **rf = a->reports;
    match_opts_t mo;
    replay_server_cfg_t cfg;
    intercept_opts_t io;
    enum intercept_stage stage = 0;
    int tport, uport, v6, rc, status = 1, loop_on = 0;

    /* Before any thread starts: they take the niceness of the thread that starts them. */
    priority_apply(o->nice, o->nice_given);
    memset(&mo, 0, sizeof(mo));
    mo.ignore_params = o->ignore_params;
    mo.nignore_params = o->nignore_params;
    mo.ignore_payload_params = o->ignore_payload_params;
    mo.nignore_payload_params = o->nignore_payload_params;
    mo.use_headers = o->use_headers;
    mo.nuse_headers = o->nuse_headers;
    mo.ignore_body = o->ignore_body;
    mo.ignore_host = o->ignore_host;
    mo.ignore_port = o->ignore_port;
    mo.no_reuse = o->no_reuse;
    if (!(match = match_new(&mo)) || fill_match(match, db) < 0 || !(rep = replay_report_new())) {
        log_error("out of memory");
        goto out;
    }
    if (ca_open(o->ca_file, &ca, err, sizeof(err)) < 0 ||
        tls_server_ctx_new(&sctx, err, sizeof(err)) < 0 ||
        (o->unmatched == UNMATCHED_PASSTHROUGH &&
         tls_client_ctx_new(o->cacerts, o->ncacerts, o->insecure, &cctx, err, sizeof(err)) < 0)) {
        log_error("%s", err);
        goto out;
    }
    if (o->record_new) {
        recorder_opts_t ro;
        memset(&ro, 0, sizeof(ro));
        ro.pcapng_path = o->record_new;
        ro.har_path = o->record_new_har;
        ro.max_body = 16u << 20;
        rc = recorder_new(&ro, &rec, err, sizeof(err));
        if (rc == 0 && (rc = recorder_start(rec, err, sizeof(err))) < 0) {
            recorder_discard(rec);
            rec = NULL;
        }
        if (rc < 0) {
            log_error("%s", err);
            goto out;
        }
    }
    uv_loop_init(&a->loop);
    loop_on = 1;
    memset(&cfg, 0, sizeof(cfg));
    cfg.loop = &a->loop;
    cfg.o = o;
    cfg.db = db;
    cfg.match = match;
    cfg.ca = ca;
    cfg.server_ctx = sctx;
    cfg.client_ctx = cctx;
    cfg.rec_new = rec;
    cfg.report = rep;
    cfg.lookup_tcp = intercept_lookup_tcp;
    cfg.lookup_udp = intercept_lookup_udp;
    cfg.on_idle = on_idle;
    cfg.idle_opaque = a;
    if (replay_server_start(&cfg, &tport, &uport, &v6, &a->srv, err, sizeof(err)) < 0) {
        log_error("%s", err);
        goto stop_early;
    }
    memset(&io, 0, sizeof(io));
    io.cgroup = o->cgroup;
    io.rules = o->rules;
    io.nrules = o->nrules;
    io.tcp_port = (uint16_t)tport;
    io.udp_port = (uint16_t)uport;
    io.v6 = v6;
    /* A recording holds QUIC only undecrypted, which cannot be answered: refused, so that a
       browser asks over TCP, where the recorded answers are. */
    io.refuse_quic = 1;
    io.command = o->mode == REPLAY_SPAWN ? o->command : NULL;
    /* --record-new - : the recording on stdout must not take the command's output in. */
    io.stdout_taken = (o->record_new && !strcmp(o->record_new, "-")) ||
                      (o->record_new_har && !strcmp(o->record_new_har, "-"));
    if (intercept_attach(&a->it, &io, &stage, err, sizeof(err)) < 0) {
        if (stage == INTERCEPT_CGROUP_ARG)
            log_error("%s", err);
        else
            log_error("%s; mitmreplay needs root and eBPF (local redirect mode)", err);
        status = 2;
        goto stop_early;
    }
    replay_server_set_lookup(a->srv, a->it.redirect);
    if (o->mode == REPLAY_SPAWN) {
        if (intercept_spawn(&a->it, &io, ca_cert_path(ca), err, sizeof(err)) < 0) {
            log_error("%s", err);
            goto stop_early;
        }
        log_debug("started %s (pid %d) in %s", o->command[0], (int)a->it.child, a->it.cgroup);
    } else if (!o->quiet) {
        fprintf(stderr,
                "mitmreplay: replaying %s for processes matching the -p rules in %s "
                "(SIGINT stops)\n",
                o->recording, a->it.attached);
        fflush(stderr);
    }
    /* Start-up is over; reading /proc/PID/exe of clients is all that needs privileges. */
    if (geteuid() == 0 && (rc = privs_drop(1)) < 0)
        log_warn("cannot drop capabilities: %s", strerror(-rc));
    uv_signal_init(&a->loop, &a->sigint);
    uv_signal_init(&a->loop, &a->sigterm);
    uv_signal_init(&a->loop, &a->sigchld);
    uv_timer_init(&a->loop, &a->grace);
    a->sigint.data = a->sigterm.data = a->sigchld.data = a->grace.data = a;
    a->handles_on = 1;
    uv_signal_start(&a->sigint, signal_cb, SIGINT);
    uv_signal_start(&a->sigterm, signal_cb, SIGTERM);
    if (o->mode == REPLAY_SPAWN) {
        uv_signal_start(&a->sigchld, sigchld_cb, SIGCHLD);
        sigchld_cb(&a->sigchld, SIGCHLD);
    }
    uv_run(&a->loop, UV_RUN_DEFAULT);

    if (!o->quiet || replay_report_unmatched(rep))
        replay_report_summary(rep, stderr, o->strict);
    status = write_reports(o, rep, rf);
    if (o->mode == REPLAY_SPAWN && a->child_status >= 0)
        status = a->child_status ? a->child_status : status;
    if (o->strict && replay_report_unmatched(rep) && status == 0) {
        size_t n = replay_report_unmatched(rep);

        log_error("--strict: %zu %s no recorded response", n,
                  mr_plural(n, "request had", "requests had"));
        status = 1;
    }
    goto out;

stop_early:
    replay_server_stop(a->srv, 1);
    if (a->it.child > 0) {
        kill(a->it.child, SIGTERM);
        waitpid(a->it.child, NULL, 0);
        a->it.child = 0;
    }
    uv_run(&a->loop, UV_RUN_DEFAULT);
out:
    drop_reports(o, rf);
    if (loop_on)
        uv_loop_close(&a->loop);
    intercept_close(&a->it);
    replay_server_free(a->srv);
    if (rec) {
        recorder_close(rec);
        recorder_free(rec);
    }
    replay_report_free(rep);
    match_free(match);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    ca_free(ca);
    return status;
}

int main(int argc, char **argv)
{
    app_t a;
    char err[512];
    replaydb_t *db = NULL;
    int rc, status;

    memset(&a, 0, sizeof(a));
    a.child_status = -1;
    log_set_name("mitmreplay");
    spawn_ignore_sigpipe();
    rc = replay_options_parse(&a.o, argc, argv, err, sizeof(err));
    if (rc == 1)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "mitmreplay: %s\n", err);
        replay_options_free(&a.o);
        return 2;
    }
    log_set_level(a.o.quiet         ? LOG_QUIET
                  : a.o.verbose > 1 ? LOG_DEBUG
                  : a.o.verbose     ? LOG_VERBOSE
                                    : LOG_NORMAL);
    /* A command that cannot be run: said before anything is opened or loaded, with the
       status a shell would give (the child says it too if its exec fails all the same). */
    if (a.o.mode == REPLAY_SPAWN &&
        (rc = spawn_check_command(a.o.command[0], err, sizeof(err))) != 0) {
        log_error("%s", err);
        replay_options_free(&a.o);
        return rc;
    }
    if (open_reports(&a.o, a.reports) < 0) {
        drop_reports(&a.o, a.reports);
        replay_options_free(&a.o);
        return 1;
    }
    if ((rc = replaydb_load(a.o.recording, a.o.keylog_path, &db, err, sizeof(err))) < 0) {
        if (err[0]) /* (else the reader has said it) */
            log_error("%s", err);
        drop_reports(&a.o, a.reports);
        replay_options_free(&a.o);
        return 1;
    }
    log_info("%s: %zu HTTP %s, %zu TCP %s, %zu DNS %s, %zu %s", a.o.recording, db->nentries,
             mr_plural(db->nentries, "entry", "entries"), db->nconvs,
             mr_plural(db->nconvs, "conversation", "conversations"), db->ndns,
             mr_plural(db->ndns, "answer", "answers"), db->nnames,
             mr_plural(db->nnames, "name", "names"));
    if (a.o.mode == REPLAY_CLIENT)
        status = client_replay(&a, db);
    else
        status = server_replay(&a, db);
    replaydb_free(db);
    replay_options_free(&a.o);
    return status;
}

/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "intercept.h"
#include "log.h"
#include "spawn.h"

int intercept_attach(intercept_t *it, const intercept_opts_t *o, enum intercept_stage *stage,
                     char *err, size_t errlen)
{
    const char *cg = o->cgroup;
    char root[4096];
    redirect_opts_t ro;
    int rc;

    if (cg && (rc = redirect_cgroup_check(cg, root, sizeof(root))) < 0) {
        *stage = INTERCEPT_CGROUP_ARG;
        snprintf(err, errlen, "--cgroup %s", root);
        return rc;
    }
    if (!cg) {
        if ((rc = redirect_cgroup_root(root, sizeof(root))) < 0) {
            *stage = INTERCEPT_NO_CGROUP_FS;
            snprintf(err, errlen, "no cgroup v2 file system is mounted");
            return rc;
        }
        cg = root;
    }
    if (o->command) {
        if ((rc = spawn_cgroup_create(cg, it->cgroup, sizeof(it->cgroup), err, errlen)) < 0) {
            it->cgroup[0] = '\0';
            *stage = INTERCEPT_CGROUP;
            return rc;
        }
        cg = it->cgroup;
        if ((rc = spawn_workdir(it->workdir, sizeof(it->workdir), err, errlen)) < 0) {
            it->workdir[0] = '\0';
            *stage = INTERCEPT_CGROUP;
            return rc;
        }
        /* Removes the cgroup and the work directory even when we are killed;
           we may drop privileges after start-up. */
        if (spawn_cgroup_reaper(it->cgroup, it->workdir, &it->reaper_fd, &it->reaper) < 0)
            it->reaper = 0;
    }
    snprintf(it->attached, sizeof(it->attached), "%s", cg);
    memset(&ro, 0, sizeof(ro));
    ro.cgroup_path = cg;
    ro.tcp_port = o->tcp_port;
    ro.udp_port = o->udp_port;
    ro.ipv6_via_v4mapped = !o->v6;
    ro.loopback_listening = o->loopback_listening;
    ro.refuse_quic = o->refuse_quic;
    ro.self_pid = (uint32_t)getpid();
    ro.rules = o->rules;
    ro.nrules = o->nrules;
    ro.ignore_cidrs = o->ignore;
    ro.nignore = o->nignore;
    if ((rc = redirect_open(&ro, &it->redirect, err, errlen)) < 0) {
        *stage = INTERCEPT_REDIRECT;
        return rc;
    }
    return 0;
}

int intercept_spawn(intercept_t *it, const intercept_opts_t *o, const char *ca_cert, char *err,
                    size_t errlen)
{
    spawn_opts_t so;
    int rc;

    if (!it->workdir[0] &&
        (rc = spawn_workdir(it->workdir, sizeof(it->workdir), err, errlen)) < 0) {
        it->workdir[0] = '\0';
        return rc;
    }
    memset(&so, 0, sizeof(so));
    so.argv = o->command;
    so.cgroup_dir = it->cgroup;
    so.ca_cert = ca_cert;
    so.workdir = it->workdir;
    so.stdout_to_stderr = o->stdout_taken;
    return spawn_start(&so, &it->child, err, errlen);
}

/* The redirector's record of peer's socket: where it was going, and its process (all of
   procinfo with full, else only the pid and the kernel's comm, no /proc read). */
static int lookup(int (*find)(redirect_t *, const struct sockaddr *, redirect_info_t *),
                  void *opaque, const struct sockaddr *peer, struct sockaddr_storage *orig,
                  procinfo_t *pi, int full)
{
    redirect_info_t info;
    int rc = find(opaque, peer, &info);

    if (rc < 0)
        return rc;
    *orig = info.orig_dst;
    if (full) {
        procinfo_read(info.pid, info.comm, pi);
        return 0;
    }
    pi->pid = info.pid;
    snprintf(pi->name, sizeof(pi->name), "%s", info.comm);
    pi->exe[0] = pi->cmdline[0] = '\0';
    return 0;
}

int intercept_lookup_tcp(void *opaque, const struct sockaddr *peer, struct sockaddr_storage *orig,
                         procinfo_t *pi)
{
    return lookup(redirect_lookup_tcp, opaque, peer, orig, pi, 1);
}

int intercept_lookup_udp(void *opaque, const struct sockaddr *peer, struct sockaddr_storage *orig,
                         procinfo_t *pi)
{
    return lookup(redirect_lookup_udp, opaque, peer, orig, pi, 1);
}

int intercept_lookup_udp_dst(void *opaque, const struct sockaddr *peer,
                             struct sockaddr_storage *orig, procinfo_t *pi)
{
    return lookup(redirect_lookup_udp, opaque, peer, orig, pi, 0);
}

void intercept_close(intercept_t *it)
{
    redirect_close(it->redirect);
    it->redirect = NULL;
    if (it->reaper > 0) {
        close(it->reaper_fd);
        waitpid(it->reaper, NULL, 0);
        it->reaper = 0;
    } else if (it->cgroup[0] && spawn_cgroup_remove(it->cgroup) < 0) {
        log_debug("cgroup %s not removed: %s", it->cgroup, strerror(errno));
    }
    it->cgroup[0] = '\0';
    /* With a reaper the directory is gone already; this is a no-op then. */
    if (it->workdir[0])
        spawn_workdir_remove(it->workdir);
    it->workdir[0] = '\0';
}

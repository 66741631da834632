/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_SPAWN_H
#define MITMREC_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Spawn mode: a command started in a cgroup of its own, trusting the mitmrec
 * CA with no change to the system: a bundle of the system roots plus our CA
 * is named by SSL_CERT_FILE, CURL_CA_BUNDLE, REQUESTS_CA_BUNDLE,
 * NODE_EXTRA_CA_CERTS and the like, and bind-mounted over the system bundle in
 * a private mount namespace. Under sudo the command runs as the invoking user.
 */

#define SPAWN_SYSTEM_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

typedef struct spawn_opts {
    char *const *argv;      /* the command; borrowed */
    const char *cgroup_dir; /* cgroup v2 directory to start it in (must exist) */
    const char *ca_cert;    /* our CA certificate, PEM */
    const char *workdir;    /* a private directory for the bundle (made by spawn_workdir) */
    int stdout_to_stderr;   /* the command's stdout is our stderr (ours carries a recording) */
} spawn_opts_t;

/*
 * Whether execvp(3) would find file (searching PATH when it has no '/') and may run it:
 * 0, or the status a shell gives, 127 (not found) or 126 (found, not runnable), with
 * "cannot run 'file': reason" in err.
 */
int spawn_check_command(const char *file, char *err, size_t errlen);

/* Makes a directory for the run's files (0755, under $TMPDIR or /tmp) into dir. */
int spawn_workdir(char *dir, size_t len, char *err, size_t errlen);

/*
 * Ignores SIGPIPE in this process (a peer gone is an error return, not death), first keeping
 * its disposition and the signal mask as they were, which the command spawn_start runs gets
 * back: it must see the signals it would have seen without us (SIGPIPE ignored only when it
 * was so for us, as under nohup-like wrappers). Call it once, early in main.
 */
void spawn_ignore_sigpipe(void);

/* Removes what spawn_workdir and spawn_start left in dir, then dir. */
void spawn_workdir_remove(const char *dir);

/* Creates parent/mitmrec-PID-N as a new cgroup; its path goes into out. */
int spawn_cgroup_create(const char *parent, char *out, size_t outlen, char *err, size_t errlen);

/* Removes a cgroup made by spawn_cgroup_create (its processes must be gone). */
int spawn_cgroup_remove(const char *dir);

/*
 * Starts a small process that keeps this one's privileges and, once *fd is
 * closed (at exit, or when mitmrec dies, even by SIGKILL), ends what is left in
 * the cgroup and removes it. mitmrec can then drop its capabilities: the
 * cgroup file system's root directory is writable only with them. workdir
 * (made by spawn_workdir, or NULL) is removed too. *pid gets
 * the helper (wait for it after closing *fd). Returns 0 or a negative errno.
 */
int spawn_cgroup_reaper(const char *dir, const char *workdir, int *fd, pid_t *pid);

/*
 * Forks and execs the command as described above; *pid gets the child.
 * Errors after the fork (a missing command, say) show as exit status 127 with
 * a one-line message from the child. Returns 0 or a negative errno.
 */
int spawn_start(const spawn_opts_t *o, pid_t *pid, char *err, size_t errlen);

/*
 * On SIGCHLD: 1 when the command *child ended, then *child is 0 and *status its
 * exit status as a shell gives it (128 + signal for a killed one); else 0.
 */
int spawn_reap(pid_t *child, int *status);

#endif

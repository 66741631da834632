/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "priority.h"
#include "privs.h"
#include "spawn.h"

/* SIGPIPE's disposition and the signal mask when the program started (spawn_ignore_sigpipe). */
static int sigpipe_was_ignored;
static sigset_t start_mask;
static int start_saved;

void spawn_ignore_sigpipe(void)
{
    struct sigaction ign, old;

    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    if (sigaction(SIGPIPE, &ign, &old) == 0)
        sigpipe_was_ignored = old.sa_handler == SIG_IGN;
    if (sigprocmask(SIG_SETMASK, NULL, &start_mask) == 0)
        start_saved = 1;
}

int spawn_workdir(char *dir, size_t len, char *err, size_t errlen)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(dir, len, "%s/mitmrec-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        int e = errno;
        snprintf(err, errlen, "cannot create a directory in %s: %s", tmp ? tmp : "/tmp",
                 strerror(e));
        return -e;
    }
    /* The command may run as another user: it must read the bundle. */
    chmod(dir, 0755);
    return 0;
}

void spawn_workdir_remove(const char *dir)
{
    char path[4200];

    snprintf(path, sizeof(path), "%s/ca-bundle.pem", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/mitmrec-ca-cert.pem", dir);
    unlink(path);
    rmdir(dir);
}

int spawn_cgroup_create(const char *parent, char *out, size_t outlen, char *err, size_t errlen)
{
    for (int i = 0; i < 100; i++) {
        snprintf(out, outlen, "%s/mitmrec-%d-%d", parent, (int)getpid(), i);
        if (mkdir(out, 0755) == 0)
            return 0;
        if (errno != EEXIST) {
            int e = errno;
            snprintf(err, errlen, "cannot create cgroup %s: %s", out, strerror(e));
            return -e;
        }
    }
    snprintf(err, errlen, "cannot create a cgroup under %s", parent);
    return -EEXIST;
}

int spawn_cgroup_remove(const char *dir)
{
    return rmdir(dir) == 0 ? 0 : -errno;
}

static void reaper(const char *dir, const char *workdir, int fd)
{
    char path[4200], c;
    int k;

    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    /* Wait for the end: EOF when mitmrec closes the pipe or dies. */
    while (read(fd, &c, 1) > 0)
        ;
    snprintf(path, sizeof(path), "%s/cgroup.kill", dir);
    /* What the command left running would keep the cgroup alive. */
    if ((k = open(path, O_WRONLY | O_CLOEXEC)) >= 0) {
        if (write(k, "1", 1) < 0) {
            /* An older kernel: the cgroup stays if anything is left in it. */
        }
        close(k);
    }
    for (int i = 0; i < 200; i++) {
        if (rmdir(dir) == 0 || errno != EBUSY)
            break;
        usleep(10000);
    }
    if (workdir && *workdir)
        spawn_workdir_remove(workdir);
    _exit(0);
}

int spawn_cgroup_reaper(const char *dir, const char *workdir, int *fd, pid_t *pid)
{
    int p[2];
    pid_t r;

    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    fflush(NULL);
    r = fork();
    if (r < 0) {
        int e = -errno;
        close(p[0]);
        close(p[1]);
        return e;
    }
    if (r == 0) {
        close(p[1]);
        /* Nothing of mitmrec's stays open here: no socket, no BPF link. */
        for (int i = 3; i < 1024; i++)
            if (i != p[0])
                close(i);
        reaper(dir, workdir, p[0]);
    }
    close(p[0]);
    *fd = p[1];
    *pid = r;
    return 0;
}

static int append_file(int out, const char *path)
{
    char buf[65536];
    int in = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (in < 0)
        return -errno;
    while ((n = read(in, buf, sizeof(buf))) > 0) {
        if (write(out, buf, (size_t)n) != n) {
            close(in);
            return -EIO;
        }
    }
    close(in);
    return n < 0 ? -errno : 0;
}

/* System roots (when there are any) followed by our CA. */
/* A file the command can read whatever the umask and whoever it runs as. */
static int open_public(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(e));
        return -e;
    }
    fchmod(fd, 0644);
    return fd;
}

/* System roots (when there are any) followed by our CA; and our CA alone, for
   NODE_EXTRA_CA_CERTS (the one in ~/.mitmrec may be out of the command's reach). */
static int make_bundle(const spawn_opts_t *o, char *bundle, size_t len, char *ca, size_t calen,
                       char *err, size_t errlen)
{
    int fd, rc;

    snprintf(ca, calen, "%s/mitmrec-ca-cert.pem", o->workdir);
    if ((fd = open_public(ca, err, errlen)) < 0)
        return fd;
    rc = append_file(fd, o->ca_cert);
    close(fd);
    if (rc < 0) {
        snprintf(err, errlen, "cannot copy %s: %s", o->ca_cert, strerror(-rc));
        return rc;
    }
    snprintf(bundle, len, "%s/ca-bundle.pem", o->workdir);
    if ((fd = open_public(bundle, err, errlen)) < 0)
        return fd;
    append_file(fd, SPAWN_SYSTEM_BUNDLE);
    if (write(fd, "\n", 1) != 1 || (rc = append_file(fd, o->ca_cert)) < 0) {
        snprintf(err, errlen, "cannot add %s to the CA bundle", o->ca_cert);
        close(fd);
        return -EIO;
    }
    close(fd);
    return 0;
}

/* In the child: runs as the user who called sudo, if that is how we were started. */
static void drop_to_sudo_user(void)
{
    const char *user = getenv("SUDO_USER");
    uid_t uid;
    gid_t gid;

    if (!privs_sudo_user(&uid, &gid))
        return;
    if ((user ? initgroups(user, gid) : setgroups(0, NULL)) != 0 || setgid(gid) != 0 ||
        setuid(uid) != 0) {
        log_error("cannot switch to user %s (uid %u): %s", user ? user : "?", (unsigned)uid,
                  strerror(errno));
        _exit(126);
    }
}

static void child(const spawn_opts_t *o, const char *bundle, const char *ca, const char *procs)
{
    int fd = open(procs, O_WRONLY | O_CLOEXEC), rc;

    if (fd < 0 || write(fd, "0", 1) != 1) {
        log_error("cannot join cgroup %s: %s", o->cgroup_dir, strerror(errno));
        _exit(126);
    }
    close(fd);
    /* Our own view of the file system, where the system bundle is ours; the
       environment variables below cover programs that carry their own roots. */
    if (unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0)
        mount(bundle, SPAWN_SYSTEM_BUNDLE, NULL, MS_BIND, NULL);
    setenv("SSL_CERT_FILE", bundle, 1);
    setenv("CURL_CA_BUNDLE", bundle, 1);
    setenv("REQUESTS_CA_BUNDLE", bundle, 1);
    setenv("GIT_SSL_CAINFO", bundle, 1);
    setenv("AWS_CA_BUNDLE", bundle, 1);
    setenv("NODE_EXTRA_CA_CERTS", ca, 1);
    setenv("MITMREC", "1", 1);
    /* The relay may run at a higher priority than it started with; the command does not. */
    priority_restore();
    drop_to_sudo_user();
    /* Handlers are reset by exec, but an ignored signal stays ignored: SIGPIPE as it was. */
    if (!sigpipe_was_ignored)
        signal(SIGPIPE, SIG_DFL);
    if (start_saved)
        sigprocmask(SIG_SETMASK, &start_mask, NULL);
    if (o->stdout_to_stderr && dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
        log_error("cannot point the command's output at stderr: %s", strerror(errno));
        _exit(126);
    }
    execvp(o->argv[0], o->argv);
    /* As a shell, env(1) and timeout(1) say it: 127 not found, 126 found but not run. */
    rc = errno;
    log_error("cannot run '%s': %s", o->argv[0], strerror(rc));
    _exit(rc == ENOENT || rc == ENOTDIR ? 127 : 126);
}

/* 0 when path is a file we may execute, else the errno execve(2) would give (nearly). */
static int runnable(const char *path)
{
    struct stat st;

    if (stat(path, &st) < 0)
        return errno;
    if (!S_ISREG(st.st_mode) || access(path, X_OK) < 0)
        return EACCES;
    return 0;
}

int spawn_check_command(const char *file, char *err, size_t errlen)
{
    const char *path = getenv("PATH"), *p, *end;
    char buf[4096];
    int e = ENOENT, denied = 0;

    if (!file[0]) {
        e = ENOENT;
    } else if (strchr(file, '/')) {
        e = runnable(file);
    } else {
        /* execvp's search: PATH's entries in order (an empty one is the current directory),
           the first runnable file wins, a file found but not runnable makes EACCES. */
        if (!path)
            path = "/bin:/usr/bin";
        for (p = path;; p = end + 1) {
            size_t n;

            end = strchr(p, ':');
            if (!end)
                end = p + strlen(p);
            n = (size_t)(end - p);
            if (n + strlen(file) + 2 <= sizeof(buf)) {
                snprintf(buf, sizeof(buf), "%.*s%s%s", (int)n, n ? p : "", n ? "/" : "", file);
                if ((e = runnable(buf)) == 0)
                    break;
                if (e == EACCES)
                    denied = 1;
            }
            if (!*end)
                break;
        }
        if (e && denied)
            e = EACCES;
        else if (e)
            e = ENOENT;
    }
    if (e == 0)
        return 0;
    snprintf(err, errlen, "cannot run '%s': %s", file, strerror(e));
    return e == ENOENT || e == ENOTDIR ? 127 : 126;
}

int spawn_start(const spawn_opts_t *o, pid_t *pid, char *err, size_t errlen)
{
    char bundle[4200], ca[4200], procs[4200];
    pid_t p;
    int rc;

    if ((rc = make_bundle(o, bundle, sizeof(bundle), ca, sizeof(ca), err, errlen)) < 0)
        return rc;
    snprintf(procs, sizeof(procs), "%s/cgroup.procs", o->cgroup_dir);
    fflush(NULL);
    p = fork();
    if (p < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot start %s: %s", o->argv[0], strerror(-rc));
        return rc;
    }
    if (p == 0)
        child(o, bundle, ca, procs);
    *pid = p;
    return 0;
}

int spawn_reap(pid_t *child, int *status)
{
    int st;

    if (*child <= 0 || waitpid(*child, &st, WNOHANG) != *child)
        return 0;
    *child = 0;
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return 1;
}

/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "redirect_maps.h"
#include "redirect_select.h"

int redirect_select_check(const redirect_rule_t *rules, size_t n, char *err, size_t errlen)
{
    if (n > REDIRECT_MAX_RULES || n > RD_MAX_RULES) {
        snprintf(err, errlen, "too many process rules: %zu, at most %d", n, RD_MAX_RULES);
        return -EINVAL;
    }
    if (n && !rules) {
        snprintf(err, errlen, "%zu process rules but no rule array", n);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        const char *name = rules[i].name;
        size_t len = strnlen(name, sizeof(rules[i].name));

        if (rules[i].pid)
            continue;
        if (len == 0 || len >= RD_NAME_LEN || len == sizeof(rules[i].name)) {
            snprintf(err, errlen, "process rule %zu: a name must have 1 to %d characters", i + 1,
                     RD_NAME_LEN - 1);
            return -EINVAL;
        }
        if (memchr(name, '/', len)) {
            snprintf(err, errlen, "process rule %zu: \"%s\" is a path, give the name only", i + 1,
                     name);
            return -EINVAL;
        }
    }
    return 0;
}

void redirect_select_settings(const redirect_rule_t *rules, size_t n, uint32_t *exclude_mask,
                              uint32_t *pids)
{
    *exclude_mask = 0;
    memset(pids, 0, REDIRECT_MAX_RULES * sizeof(*pids));
    for (size_t i = 0; i < n && i < RD_MAX_RULES; i++) {
        if (rules[i].exclude)
            *exclude_mask |= 1u << i;
        pids[i] = rules[i].pid;
    }
}

int redirect_select_load_names(int names_fd, const redirect_rule_t *rules, size_t n)
{
    for (size_t i = 0; i < n && i < RD_MAX_RULES; i++) {
        struct rd_name key;
        uint32_t mask = 0;
        int rc;

        if (rules[i].pid)
            continue;
        memset(&key, 0, sizeof(key));
        memcpy(key.s, rules[i].name, strnlen(rules[i].name, sizeof(key.s) - 1));
        /* The same name may appear in several rules ("curl,!curl"): one key, all their bits. */
        for (size_t j = 0; j < n && j < RD_MAX_RULES; j++)
            if (!rules[j].pid && strcmp(rules[j].name, key.s) == 0)
                mask |= 1u << j;
        rc = bpf_map_update_elem(names_fd, &key, &mask, BPF_ANY);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Same evaluation as rules_decide() in redirect.bpf.c: keep the two in step. */
int redirect_select_decide(const redirect_rule_t *rules, size_t n, uint32_t tgid, const char *comm,
                           const char *exe)
{
    int sel;

    if (n == 0)
        return 1;
    sel = rules[0].exclude != 0;
    for (size_t i = 0; i < n && i < RD_MAX_RULES; i++) {
        int match;

        if (rules[i].pid)
            match = rules[i].pid == tgid;
        else
            match = (comm && strcmp(rules[i].name, comm) == 0) ||
                    (exe && strcmp(rules[i].name, exe) == 0);
        if (match)
            sel = !rules[i].exclude;
    }
    return sel;
}

/* Reads a small /proc file into buf, without the trailing newline. */
static int read_small(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t got;

    if (fd < 0)
        return -errno;
    got = read(fd, buf, len - 1);
    close(fd);
    if (got < 0)
        return -errno;
    buf[got] = 0;
    if (got > 0 && buf[got - 1] == '\n')
        buf[got - 1] = 0;
    return 0;
}

/* The basename of /proc/PID/exe, as the kernel's d_name of the executable file: a deleted
   file's " (deleted)" suffix is not part of its name. Kernel threads have none. */
static int read_exe_name(const char *dir, char *name, size_t len)
{
    char path[64], target[4096];
    const char *base;
    ssize_t got;
    size_t tl;

    snprintf(path, sizeof(path), "%s/exe", dir);
    got = readlink(path, target, sizeof(target) - 1);
    if (got <= 0)
        return -errno;
    target[got] = 0;
    tl = (size_t)got;
    if (tl > 10 && strcmp(target + tl - 10, " (deleted)") == 0)
        target[tl - 10] = 0;
    base = strrchr(target, '/');
    base = base ? base + 1 : target;
    if (strlen(base) >= len)
        return -ENAMETOOLONG;
    strcpy(name, base);
    return 0;
}

/* Reads what the rules look at for one process. -ENOENT when it has gone meanwhile. */
static int proc_read(unsigned long pid, struct rd_proc *val, char *exe, size_t exelen)
{
    char dir[64], path[80], comm[64];
    int rc;

    snprintf(dir, sizeof(dir), "/proc/%lu", pid);
    snprintf(path, sizeof(path), "%s/comm", dir);
    rc = read_small(path, comm, sizeof(comm));
    if (rc < 0)
        return rc;
    memset(val, 0, sizeof(*val));
    memcpy(val->comm, comm, strnlen(comm, sizeof(val->comm) - 1));
    if (read_exe_name(dir, exe, exelen) < 0)
        exe[0] = 0;
    return 0;
}

int redirect_select_scan(int procs_fd, const redirect_rule_t *rules, size_t n)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int count = 0;

    if (!d)
        return -errno;
    while ((de = readdir(d)) != NULL) {
        char exe[RD_NAME_LEN], *end;
        struct rd_proc val;
        unsigned long pid;
        uint32_t key;

        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        pid = strtoul(de->d_name, &end, 10);
        if (*end || pid == 0 || pid > UINT32_MAX || proc_read(pid, &val, exe, sizeof(exe)) < 0)
            continue;
        key = (uint32_t)pid;
        val.selected = (uint8_t)redirect_select_decide(rules, n, key, val.comm, exe);
        /* BPF_NOEXIST: if the process forked or exec'd since the kernel programs were attached,
           their decision is newer than what was just read, so it stands (-EEXIST). A full map
           (-E2BIG) leaves the rest undecided: the kernel then falls back to PID rules only. */
        if (bpf_map_update_elem(procs_fd, &key, &val, BPF_NOEXIST) == 0)
            count++;
    }
    closedir(d);
    return count;
}

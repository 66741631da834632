/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <linux/capability.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "privs.h"

/* glibc has no capset wrapper and libcap is not worth a dependency for one call. */
static int capget_(struct __user_cap_header_struct *h, struct __user_cap_data_struct *d)
{
    return (int)syscall(SYS_capget, h, d);
}

static int capset_(struct __user_cap_header_struct *h, struct __user_cap_data_struct *d)
{
    return (int)syscall(SYS_capset, h, d);
}

int privs_drop(int keep_ptrace)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2] = {{0, 0, 0}, {0, 0, 0}};
    uint32_t keep = keep_ptrace ? (1u << CAP_SYS_PTRACE) : 0;

    if (capget_(&h, d) < 0)
        return -errno;
    /* Only what we hold can be kept. */
    keep &= d[0].permitted;
    d[0].effective = d[0].permitted = keep;
    d[0].inheritable = 0;
    d[1].effective = d[1].permitted = d[1].inheritable = 0;
    if (capset_(&h, d) < 0)
        return -errno;
    /* Keep them from coming back through exec of a set-uid helper. */
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    return 0;
}

unsigned long long privs_effective(void)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2] = {{0, 0, 0}, {0, 0, 0}};

    if (capget_(&h, d) < 0)
        return 0;
    return (unsigned long long)d[0].effective | ((unsigned long long)d[1].effective << 32);
}

int privs_sudo_user(uid_t *uid, gid_t *gid)
{
    const char *uid_s = getenv("SUDO_UID"), *gid_s = getenv("SUDO_GID");

    if (getuid() != 0 || !uid_s || !gid_s)
        return 0;
    *uid = (uid_t)strtoul(uid_s, NULL, 10);
    *gid = (gid_t)strtoul(gid_s, NULL, 10);
    return *uid != 0;
}

int privs_give_file(int fd)
{
    uid_t uid;
    gid_t gid;

    if (!privs_sudo_user(&uid, &gid))
        return 0;
    return fchown(fd, uid, gid) < 0 ? -errno : 0;
}

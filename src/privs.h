/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_PRIVS_H
#define MITMREC_PRIVS_H

#include <sys/types.h>

/*
 * Capabilities, once start-up is over: the BPF programs are attached, the
 * listeners bound and the files open, so nothing but reading other
 * processes' /proc/PID/exe (CAP_SYS_PTRACE, for the process identity of
 * flows) is needed any more.
 */

/* Keeps only CAP_SYS_PTRACE when keep_ptrace, else nothing, in the effective,
   permitted and inheritable sets. Returns 0 or a negative errno. */
int privs_drop(int keep_ptrace);

/* The user who ran sudo (SUDO_UID, SUDO_GID), when this process is root under sudo and that
   user is not root: 1 and *uid, *gid; else 0. */
int privs_sudo_user(uid_t *uid, gid_t *gid);

/* A file this process just created (fd), under sudo: it goes to the user who called sudo
   (SUDO_UID, SUDO_GID), its mode left as it is, so that they can open their recording or
   report without sudo. Nothing when not root or not under sudo. 0 or a negative errno. */
int privs_give_file(int fd);

/* The effective capability mask of this process (for tests and logs). */
unsigned long long privs_effective(void);

#endif

/* SPDX-License-Identifier: MIT */
/* Process selection for the redirector, user-space half: checks the rules, loads them into the
   kernel's names map, and decides for the processes that were running before the BPF programs
   (the kernel decides for later ones at fork and exec, with the same semantics: see
   redirect.h for the rules, README.md for the races). Internal to extension/. */
#ifndef MITMREC_EXTENSION_REDIRECT_SELECT_H
#define MITMREC_EXTENSION_REDIRECT_SELECT_H

#include <stddef.h>
#include <stdint.h>

#include "redirect.h"

/* 0, or -EINVAL with a one-line reason in err: too many rules, a PID of 0 with an empty name, a
   name with '/' or longer than 255 bytes. */
int redirect_select_check(const redirect_rule_t *rules, size_t n, char *err, size_t errlen);

/* The kernel-side settings derived from the rules: bit i of *exclude_mask is set when rule i
   excludes, pids[i] is rule i's PID or 0 (pids has REDIRECT_MAX_RULES entries). */
void redirect_select_settings(const redirect_rule_t *rules, size_t n, uint32_t *exclude_mask,
                              uint32_t *pids);

/* Fills the names map (fd borrowed): each distinct name, zero-padded, with the mask of the
   rules that name it. 0 or a negative errno. */
int redirect_select_load_names(int names_fd, const redirect_rule_t *rules, size_t n);

/* The decision for one process: 1 selected, 0 not. comm and exe (basename of the executable
   file) may be NULL or empty when unknown. */
int redirect_select_decide(const redirect_rule_t *rules, size_t n, uint32_t tgid, const char *comm,
                           const char *exe);

/* Decides for every process in /proc and records it in the procs map (fd borrowed) without
   overwriting what the kernel's fork and exec programs, attached before, have already decided.
   Returns the number of processes recorded, or a negative errno when /proc can't be read. */
int redirect_select_scan(int procs_fd, const redirect_rule_t *rules, size_t n);

#endif

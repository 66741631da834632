/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_READMODE_H
#define MITMREC_READMODE_H

#include "options.h"

/*
 * mitmrec -r: a pcapng (ours or anyone's) or classic pcap, plus TLS secrets
 * from its Decryption Secrets Blocks and/or --keylog, to a HAR (and with -o a
 * pcapng copy carrying the secrets). Returns the exit status: 0, or 1 after a
 * one-line error (a bad block is named by its byte offset; everything before
 * it is still converted).
 */
int readmode_run(const options_t *o);

#endif

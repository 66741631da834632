/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_REPAIR_H
#define MITMREC_REPAIR_H

/*
 * mitmrec --repair-har FILE: a HAR cut short (a recorder killed mid-write)
 * keeps its complete entries and is closed again, in place. Returns the exit
 * status: 0 (repaired, or nothing to do), 1 after a one-line error.
 */
int repair_har_file(const char *path, int quiet);

#endif

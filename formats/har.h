/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_FORMATS_HAR_H
#define MITMREC_FORMATS_HAR_H

#include <stddef.h>
#include <stdint.h>

#include "httpmsg.h"
#include "sink.h"

/*
 * Streaming HAR 1.2 writer (each entry printed straight to JSON, as
 * cJSON_PrintUnformatted prints it). The log header is written
 * by har_writer_new, each entry as it is added, and the closing "]}}" by
 * har_writer_close. When the sink has write_tail, the closing bytes are also
 * written (and then overwritten) after every entry, so the file on disk is a
 * complete HAR after every call.
 */

typedef struct har_writer har_writer_t;

/* Everything the writer needs beyond the exchange. Pointers are borrowed. */
typedef struct har_entry {
    const http_exchange_t *ex;
    const char *scheme;                /* "http" or "https" */
    const char *host;                  /* authority for origin-form targets (Host header wins) */
    uint16_t port;                     /* default port of the scheme is left out of the URL */
    const char *server_ip;             /* serverIPAddress, without IPv6 brackets; NULL = absent */
    const char *connection;            /* "connection" field, e.g. "3"; NULL = absent */
    uint64_t started_usec;             /* startedDateTime (defaults to ex->t_req_start when 0) */
    double blocked, dns, connect, ssl; /* ms, -1 = not applicable */
    /* send / wait / receive are computed from the exchange's timestamps */
    int has_pcapng; /* write the _pcapng object */
    int pcapng_interface;
    int64_t pcapng_frame;  /* frame number of the request's first packet */
    int64_t pcapng_stream; /* tcp.stream index as Wireshark numbers it */
    const char *error;     /* _error; NULL = take ex->error */
    int64_t index;         /* _index: the number the pcapng comment names; -1 = absent */
    /* process identity (local redirect mode); NULL / 0 = absent */
    int64_t pid;
    const char *process;
    const char *exe;
    const char *cmdline;
} har_entry_t;

/*
 * Creates a writer and writes the log header (version 1.2, creator).
 * The sink is copied; its opaque is borrowed. NULL and *err on failure.
 */
har_writer_t *har_writer_new(const sink_t *sink, const char *creator_name,
                             const char *creator_version, int *err);

/*
 * Writes one entry. Request: method, url, httpVersion, headers (wire order),
 * cookies, queryString, postData (with params for form bodies), headersSize,
 * bodySize. Response: status, statusText, httpVersion, headers, cookies,
 * content {size, mimeType, text (base64 with encoding "base64" when not
 * UTF-8 text), compression when Content-Encoding was undone},
 * redirectURL, headersSize, bodySize. Returns 0 or a negative errno.
 */
int har_writer_add(har_writer_t *w, const har_entry_t *e);

/*
 * Writes the entries in the order of their index (har_entry_t.index: 0, 1, 2, ...
 * in the order their requests began; -1 is written as it comes), as HAR 1.2
 * prefers: an entry whose predecessors are not all written is printed into
 * memory and waits for them. None waits longer than hold_usec after its
 * exchange ended (by the exchanges' clock, or the time har_writer_release was
 * last given), nor while more than max_bytes wait: then the entries up to it
 * are written, and the ones still missing are written when they come. An entry
 * with more than 1 MiB of bodies does not wait: what is before it is written
 * first. har_writer_close writes whatever still waits.
 */
void har_writer_order(har_writer_t *w, uint64_t hold_usec, size_t max_bytes);

/* What mitmrec uses: a second, 8 MiB. */
#define HAR_HOLD_USEC 1000000u
#define HAR_HOLD_BYTES (8u << 20)

/* The time is now_usec: writes the entries that waited long enough. Returns 0 or
   a negative errno. */
int har_writer_release(har_writer_t *w, uint64_t now_usec);

/* Number of entries waiting (har_writer_order). */
size_t har_writer_held(const har_writer_t *w);

/* Number of entries written. */
uint64_t har_writer_entries(const har_writer_t *w);

/* Writes the closing bytes. Returns 0 or a negative errno. */
int har_writer_close(har_writer_t *w);

/* Frees the writer (does not close it). NULL is a no-op. */
void har_writer_free(har_writer_t *w);

#endif

/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "recorder.h"

/*
 * The per-process totals while many processes have flows open: the table of processes
 * grows (and, past 4,096 entries, drops its oldest) while flows still point into it.
 * Each flow's bytes must land on its own process; under ASan, a flow left pointing at a
 * moved or dropped entry is a heap-use-after-free.
 */

#define NPROC 4100 /* past the recorder's bound of 4,096 processes */

typedef struct seen {
    uint64_t bytes[NPROC + 2];
    uint64_t flows[NPROC + 2];
    size_t n;
} seen_t;

static void collect(void *opaque, const rec_proc_stats_t *st)
{
    seen_t *s = opaque;
    unsigned i = st->pid - 1000;

    s->n++;
    if (i < NPROC + 2) {
        s->bytes[i] += st->bytes;
        s->flows[i] += st->flows;
    }
}

static rec_flow_t *flow_of(recorder_t *r, unsigned i)
{
    struct sockaddr_in c = {0}, s = {0};
    procinfo_t pi;
    rec_flow_t *f;

    c.sin_family = s.sin_family = AF_INET;
    c.sin_addr.s_addr = htonl(0x7f000001);
    s.sin_addr.s_addr = htonl(0x7f000002);
    c.sin_port = htons((uint16_t)(10000 + i % 50000));
    s.sin_port = htons(443);
    f = rec_flow_new(r, (struct sockaddr *)&c, (struct sockaddr *)&s, rec_now());
    CHECK(f != NULL);
    memset(&pi, 0, sizeof(pi));
    pi.pid = 1000 + i;
    snprintf(pi.name, sizeof(pi.name), "proc%u", i);
    rec_flow_set_process(f, &pi);
    return f;
}

static void test_processes_while_flows_are_open(void)
{
    char dir[] = "/tmp/test_recorder.XXXXXX", pcap[64], har[64], err[256];
    recorder_opts_t o = {0};
    recorder_t *r;
    rec_flow_t **f = calloc(NPROC + 2, sizeof(*f));
    uint8_t data[64];
    seen_t *s = calloc(1, sizeof(*s));

    CHECK(mkdtemp(dir) != NULL);
    snprintf(pcap, sizeof(pcap), "%s/x.pcapng", dir);
    snprintf(har, sizeof(har), "%s/x.har", dir);
    o.pcapng_path = pcap;
    o.har_path = har;
    o.max_body = 1 << 20;
    CHECK_EQ_INT(recorder_new(&o, &r, err, sizeof(err)), 0);
    CHECK_EQ_INT(recorder_start(r, err, sizeof(err)), 0);
    memset(data, 'x', sizeof(data));

    /* 4,096 processes, each with a flow kept open: the table grows 64 at a time. */
    for (unsigned i = 0; i < 4096; i++)
        f[i] = flow_of(r, i);
    /* Every flow's bytes, after all the growth. */
    for (unsigned i = 0; i < 4096; i++)
        rec_flow_wire(f[i], REC_CLIENT, REC_C2S, data, 1 + i % 60, rec_now());
    /* One more process with all 4,096 still open: nothing may be dropped. */
    f[4096] = flow_of(r, 4096);
    /* Process 0's flow ends; the next new process takes its place. */
    rec_flow_free(f[0], rec_now());
    f[0] = NULL;
    f[4097] = flow_of(r, 4097);
    for (unsigned i = 1; i < 4098; i++)
        rec_flow_wire(f[i], REC_CLIENT, REC_S2C, data, 2, rec_now());

    recorder_each_process(r, collect, s);
    CHECK_EQ_INT((long)s->n, 4097); /* 4,098 seen, process 0 dropped */
    CHECK_EQ_INT((long)s->flows[0], 0);
    for (unsigned i = 1; i < 4098; i++) {
        uint64_t want = (i < 4096 ? 1 + i % 60 : 0) + 2;
        if (s->bytes[i] != want || s->flows[i] != 1) {
            fprintf(stderr, "process %u: %llu bytes, %llu flows; expected %llu, 1\n", i,
                    (unsigned long long)s->bytes[i], (unsigned long long)s->flows[i],
                    (unsigned long long)want);
            CHECK(0);
            break;
        }
    }
    for (unsigned i = 1; i < 4098; i++)
        rec_flow_free(f[i], rec_now());
    CHECK_EQ_INT(recorder_close(r), 0);
    recorder_free(r);
    unlink(pcap);
    unlink(har);
    rmdir(dir);
    free(f);
    free(s);
}

int main(void)
{
    test_processes_while_flows_are_open();
    return check_done();
}

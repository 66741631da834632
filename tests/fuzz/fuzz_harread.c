/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer driver for formats/harread.c: the input is a HAR file as is (the seeds under
 * fixtures/fuzz/harread are real HARs: a browser's export, mitmrec's, hand-made edge cases).
 *
 * Checked for every entry handed over: a method, a target, a status of 100-999, a scheme of
 * http or https, a host, a port; a body that reads back with the length the message says it
 * kept; the four times in order. Checked for the whole: har_read returns 0 or -EBADMSG (or
 * -ENOMEM), the entries handed over are the ones counted, and when it returns 0 every element
 * of log.entries was counted once (handed over, no response, or unusable). har_url_split is
 * also run on the input's first line, whose outputs must fit their buffers and whose port,
 * when it succeeds, is 1-65535.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iformats tests/fuzz/fuzz_harread.c \
 *     (every .c of formats/) $(pkg-config --cflags --libs libcjson openssl ...) -lhttp_parser
 *   ./fuzz_harread fixtures/fuzz/harread
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "harread.h"

static size_t handed;

static int on_entry(void *opaque, har_read_entry_t *e)
{
    http_exchange_t *ex = e->ex;
    const uint8_t *d;
    size_t len;
    uint8_t *owned = NULL;

    (void)opaque;
    if (!ex || !ex->method || !*ex->method || !ex->target || !*ex->target || !ex->reason ||
        ex->status < 100 || ex->status > 999 || !e->scheme || !e->host || !*e->host ||
        e->port == 0 || (strcmp(e->scheme, "http") && strcmp(e->scheme, "https")))
        abort();
    if (ex->t_req_start > ex->t_req_end || ex->t_req_end > ex->t_resp_start ||
        ex->t_resp_start > ex->t_resp_end)
        abort();
    for (int m = 0; m < 2; m++) {
        http_msg_t *msg = m ? &ex->resp : &ex->req;
        if (http_msg_body(msg, &d, &len, &owned) < 0)
            abort();
        if (len != http_msg_kept(msg) || (len && !d))
            abort();
        free(owned);
        owned = NULL;
    }
    handed++;
    http_exchange_free(ex);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    har_read_stats_t st;
    char *text = malloc(size + 1);
    int rc;

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    handed = 0;
    rc = har_read(text, size, on_entry, NULL, &st);
    if (rc != 0 && rc != -EBADMSG && rc != -ENOMEM)
        abort();
    if (handed != st.entries)
        abort();
    if (rc == 0) {
        /* Every element of log.entries was counted once. */
        cJSON *root = cJSON_ParseWithLength(text, size);
        const cJSON *entries = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(root, "log"), "entries");
        if (root &&
            (size_t)cJSON_GetArraySize(entries) != st.entries + st.no_response + st.unusable)
            abort();
        cJSON_Delete(root);
    }

    {
        char scheme[16], host[256], *nl = strchr(text, '\n');
        uint16_t port = 0;
        const char *path = NULL;

        if (nl)
            *nl = '\0';
        if (har_url_split(text, scheme, sizeof(scheme), host, sizeof(host), &port, &path) == 0 &&
            (port == 0 || strlen(scheme) >= sizeof(scheme) || strlen(host) >= sizeof(host) ||
             !*host || !path || !*path))
            abort();
    }
    free(text);
    return 0;
}

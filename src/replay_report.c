/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "replay_report.h"

#include "errors.h"
#include "privs.h"

#define REPORT_MAX (1u << 20) /* requests kept; later ones are only counted */

typedef struct item {
    char *method, *url, *process, *why, *action;
    uint32_t pid;
    int http2, status;
    long entry; /* client replay: the entry sent again */
    double ms;
    /* client replay */
    char *result, *detail;
    int was_status;
} item_t;

typedef struct conv {
    char *to;
    size_t done, total;
    int matched;
} conv_t;

struct replay_report {
    item_t *items;
    size_t n, cap, dropped, unmatched;
    conv_t *convs;
    size_t nconvs, convs_cap;
    size_t dns_answered, dns_unknown;
    int client;                     /* a client replay's results */
    size_t same, different, failed; /* (client replay) */
};

replay_report_t *replay_report_new(void)
{
    return calloc(1, sizeof(replay_report_t));
}

static char *dup0(const char *s)
{
    return strdup(s ? s : "");
}

void replay_report_free(replay_report_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->items[i].method);
        free(r->items[i].url);
        free(r->items[i].process);
        free(r->items[i].why);
        free(r->items[i].action);
        free(r->items[i].result);
        free(r->items[i].detail);
    }
    for (size_t i = 0; i < r->nconvs; i++)
        free(r->convs[i].to);
    free(r->items);
    free(r->convs);
    free(r);
}

/* A new item at the end, zeroed; NULL when full (counted in dropped) or out of memory
   (*rc = -ENOMEM). */
static item_t *add_item(replay_report_t *r, int *rc)
{
    item_t *it;

    *rc = 0;
    if (r->n == REPORT_MAX) {
        r->dropped++;
        return NULL;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        item_t *n = realloc(r->items, cap * sizeof(*n));
        if (!n) {
            *rc = -ENOMEM;
            return NULL;
        }
        r->items = n;
        r->cap = cap;
    }
    it = &r->items[r->n];
    memset(it, 0, sizeof(*it));
    return it;
}

int replay_report_request(replay_report_t *r, const report_request_t *rq)
{
    item_t *it;
    int rc;

    if (rq->entry < 0)
        r->unmatched++;
    if (!(it = add_item(r, &rc)))
        return rc;
    it->method = dup0(rq->method);
    it->url = dup0(rq->url);
    it->process = dup0(rq->process);
    it->why = rq->why ? strdup(rq->why) : NULL;
    it->action = dup0(rq->action);
    it->pid = rq->pid;
    it->http2 = rq->http2;
    it->status = rq->status;
    it->entry = rq->entry;
    it->ms = rq->ms;
    r->n++;
    return 0;
}

int replay_report_result(replay_report_t *r, const report_result_t *res)
{
    item_t *it;
    int rc;

    r->client = 1;
    if (!strcmp(res->result, "same"))
        r->same++;
    else if (!strcmp(res->result, "different"))
        r->different++;
    else
        r->failed++;
    if (!(it = add_item(r, &rc)))
        return rc;
    it->method = dup0(res->method);
    it->url = dup0(res->url);
    it->result = dup0(res->result);
    it->detail = res->detail ? strdup(res->detail) : NULL;
    it->http2 = res->http2;
    it->was_status = res->was_status;
    it->status = res->status;
    it->entry = (long)res->index;
    it->ms = res->ms;
    /* In the recording's order, whatever order --concurrency finished them in: each arrives
       at most a few places late, so it moves back that far. */
    for (size_t i = r->n; i > 0 && r->items[i - 1].entry > r->items[i].entry; i--) {
        item_t t = r->items[i - 1];
        r->items[i - 1] = r->items[i];
        r->items[i] = t;
    }
    r->n++;
    return 0;
}

int replay_report_conversation(replay_report_t *r, const char *to, size_t done, size_t total,
                               int matched)
{
    conv_t *c;

    if (r->nconvs == r->convs_cap) {
        size_t cap = r->convs_cap ? r->convs_cap * 2 : 16;
        conv_t *n;
        if (cap > REPORT_MAX || !(n = realloc(r->convs, cap * sizeof(*n))))
            return -ENOMEM;
        r->convs = n;
        r->convs_cap = cap;
    }
    c = &r->convs[r->nconvs++];
    c->to = dup0(to);
    c->done = done;
    c->total = total;
    c->matched = matched;
    return 0;
}

void replay_report_dns(replay_report_t *r, const char *name, int answered)
{
    if (answered)
        r->dns_answered++;
    else
        r->dns_unknown++;
}

size_t replay_report_unmatched(const replay_report_t *r)
{
    return r->unmatched;
}

size_t replay_report_requests(const replay_report_t *r)
{
    return r->n + r->dropped;
}

void replay_report_summary(const replay_report_t *r, FILE *f, int strict)
{
    size_t total = r->n + r->dropped;

    fprintf(f,
            "mitmreplay: %zu %s, %zu replayed, %zu unmatched; %zu TCP %s; %zu DNS %s "
            "(%zu %s unknown)\n",
            total, mr_plural(total, "request", "requests"), total - r->unmatched, r->unmatched,
            r->nconvs, mr_plural(r->nconvs, "conversation", "conversations"), r->dns_answered,
            mr_plural(r->dns_answered, "answer", "answers"), r->dns_unknown,
            mr_plural(r->dns_unknown, "name", "names"));
    for (size_t i = 0; i < r->n; i++)
        if (r->items[i].entry < 0)
            fprintf(f, "mitmreplay: %s: %s %s: %s\n", strict ? "error: unmatched" : "unmatched",
                    r->items[i].method, r->items[i].url, r->items[i].why ? r->items[i].why : "");
    for (size_t i = 0; i < r->nconvs; i++)
        if (!r->convs[i].matched || r->convs[i].done < r->convs[i].total)
            fprintf(f, "mitmreplay: tcp conversation with %s: %s (%zu of %zu recorded chunks)\n",
                    r->convs[i].to, r->convs[i].matched ? "ended early" : "not in the recording",
                    r->convs[i].done, r->convs[i].total);
}

static void xml_escape(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\t' || *s == '\n')
                fputc(*s, f);
        }
    }
}

FILE *replay_report_open(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    FILE *f;

    if (fd >= 0)
        privs_give_file(fd); /* a new one; an existing one keeps its owner */
    else if (errno == EEXIST)
        fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0 || !(f = fdopen(fd, "w"))) {
        snprintf(err, errlen, "cannot write --report %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    return f;
}

static int close_report(FILE *f, const char *path, char *err, size_t errlen)
{
    if (ferror(f) | (fclose(f) != 0)) {
        snprintf(err, errlen, "cannot write --report %s: %s", path, strerror(errno));
        return -EIO;
    }
    return 0;
}

/* "    <testcase classname=... name=... time=..." of a request, left open for "/>" or ">"
   (index: the entry's, in front of its name, for a client replay). */
static void junit_case(FILE *f, const item_t *it, int index)
{
    fprintf(f, "    <testcase classname=\"%s\" name=\"", it->http2 ? "http2" : "http");
    if (index)
        fprintf(f, "[%ld] ", it->entry);
    xml_escape(f, it->method);
    fputc(' ', f);
    xml_escape(f, it->url);
    fprintf(f, "\" time=\"%.3f\"", it->ms / 1000.0);
}

/* A client replay's test suite: a test case per request, a failure when its response
   differs, an error when it got none. */
static void junit_client(const replay_report_t *r, FILE *f, const char *recording)
{
    fprintf(f, "  <testsuite name=\"mitmreplay --client ");
    xml_escape(f, recording);
    fprintf(f, "\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"0\">\n",
            r->same + r->different + r->failed, r->different, r->failed);
    for (size_t i = 0; i < r->n; i++) {
        const item_t *it = &r->items[i];
        int differs = !strcmp(it->result, "different");

        junit_case(f, it, 1);
        if (!strcmp(it->result, "same")) {
            fprintf(f, "/>\n");
            continue;
        }
        fprintf(f, ">\n      <%s type=\"%s\" message=\"", differs ? "failure" : "error",
                it->result);
        xml_escape(f, it->detail);
        if (differs)
            fprintf(f, "\">recorded status %d, now %d</failure>\n    </testcase>\n", it->was_status,
                    it->status);
        else
            fprintf(f, "\"/>\n    </testcase>\n");
    }
}

/* A server replay's test suite: a test case per request and per TCP conversation, a failure
   for each one the recording did not answer. */
static void junit_server(const replay_report_t *r, FILE *f, const char *recording)
{
    size_t failures = r->unmatched;

    for (size_t i = 0; i < r->nconvs; i++)
        failures += !r->convs[i].matched;
    fprintf(f, "  <testsuite name=\"mitmreplay ");
    xml_escape(f, recording);
    fprintf(f, "\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" skipped=\"0\">\n", r->n + r->nconvs,
            failures);
    for (size_t i = 0; i < r->n; i++) {
        const item_t *it = &r->items[i];

        junit_case(f, it, 0);
        if (it->entry >= 0) {
            fprintf(f, "/>\n");
            continue;
        }
        fprintf(f, ">\n      <failure type=\"unmatched\" message=\"");
        xml_escape(f, it->why);
        fprintf(f, "\">answered with %s</failure>\n    </testcase>\n", it->action);
    }
    for (size_t i = 0; i < r->nconvs; i++) {
        fprintf(f, "    <testcase classname=\"tcp\" name=\"conversation with ");
        xml_escape(f, r->convs[i].to);
        fprintf(f, "\"");
        if (r->convs[i].matched)
            fprintf(f, "/>\n");
        else
            fprintf(f, ">\n      <failure type=\"unmatched\" message=\"no recorded conversation"
                       "\"/>\n    </testcase>\n");
    }
}

int replay_report_write_junit(const replay_report_t *r, FILE *f, const char *path,
                              const char *recording, char *err, size_t errlen)
{
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    if (r->client)
        junit_client(r, f, recording);
    else
        junit_server(r, f, recording);
    fprintf(f, "  </testsuite>\n</testsuites>\n");
    return close_report(f, path, err, errlen);
}

/* A request's object in the array reqs, with what both kinds of report give first. */
static cJSON *json_request(cJSON *reqs, const item_t *it)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddItemToArray(reqs, o);
    cJSON_AddStringToObject(o, "method", it->method);
    cJSON_AddStringToObject(o, "url", it->url);
    cJSON_AddStringToObject(o, "httpVersion", it->http2 ? "HTTP/2" : "HTTP/1.1");
    return o;
}

/* A client replay's summary and requests, into root. */
static void json_client(const replay_report_t *r, cJSON *root)
{
    cJSON *sum = cJSON_AddObjectToObject(root, "summary"), *reqs;

    cJSON_AddNumberToObject(sum, "requests", (double)(r->same + r->different + r->failed));
    cJSON_AddNumberToObject(sum, "same", (double)r->same);
    cJSON_AddNumberToObject(sum, "different", (double)r->different);
    cJSON_AddNumberToObject(sum, "failed", (double)r->failed);
    reqs = cJSON_AddArrayToObject(root, "requests");
    for (size_t i = 0; i < r->n; i++) {
        const item_t *it = &r->items[i];
        cJSON *o = json_request(reqs, it);

        cJSON_AddNumberToObject(o, "entry", (double)it->entry);
        cJSON_AddStringToObject(o, "result", it->result);
        cJSON_AddNumberToObject(o, "recordedStatus", it->was_status);
        cJSON_AddNumberToObject(o, "status", it->status);
        if (it->detail)
            cJSON_AddStringToObject(o, !strcmp(it->result, "different") ? "differences" : "error",
                                    it->detail);
        cJSON_AddNumberToObject(o, "ms", it->ms);
    }
}

/* A server replay's summary, requests and conversations, into root. */
static void json_server(const replay_report_t *r, cJSON *root)
{
    cJSON *sum = cJSON_AddObjectToObject(root, "summary"), *reqs, *convs;

    cJSON_AddNumberToObject(sum, "requests", (double)(r->n + r->dropped));
    cJSON_AddNumberToObject(sum, "replayed", (double)(r->n + r->dropped - r->unmatched));
    cJSON_AddNumberToObject(sum, "unmatched", (double)r->unmatched);
    cJSON_AddNumberToObject(sum, "conversations", (double)r->nconvs);
    cJSON_AddNumberToObject(sum, "dns_answered", (double)r->dns_answered);
    cJSON_AddNumberToObject(sum, "dns_unknown", (double)r->dns_unknown);
    reqs = cJSON_AddArrayToObject(root, "requests");
    for (size_t i = 0; i < r->n; i++) {
        const item_t *it = &r->items[i];
        cJSON *o = json_request(reqs, it);

        cJSON_AddBoolToObject(o, "matched", it->entry >= 0);
        if (it->entry >= 0)
            cJSON_AddNumberToObject(o, "entry", (double)it->entry);
        cJSON_AddNumberToObject(o, "status", it->status);
        cJSON_AddStringToObject(o, "action", it->action);
        if (it->why)
            cJSON_AddStringToObject(o, "why", it->why);
        if (it->pid) {
            cJSON_AddNumberToObject(o, "pid", it->pid);
            cJSON_AddStringToObject(o, "process", it->process);
        }
        cJSON_AddNumberToObject(o, "ms", it->ms);
    }
    convs = cJSON_AddArrayToObject(root, "conversations");
    for (size_t i = 0; i < r->nconvs; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(convs, o);
        cJSON_AddStringToObject(o, "to", r->convs[i].to);
        cJSON_AddBoolToObject(o, "matched", r->convs[i].matched);
        cJSON_AddNumberToObject(o, "chunks", (double)r->convs[i].done);
        cJSON_AddNumberToObject(o, "recorded_chunks", (double)r->convs[i].total);
    }
}

int replay_report_write_json(const replay_report_t *r, FILE *f, const char *path,
                             const char *recording, char *err, size_t errlen)
{
    cJSON *root = cJSON_CreateObject();
    char *text;

    if (!root) {
        fclose(f);
        snprintf(err, errlen, "cannot write --report %s: out of memory", path);
        return -ENOMEM;
    }
    cJSON_AddStringToObject(root, "recording", recording);
    cJSON_AddStringToObject(root, "mode", r->client ? "client" : "server");
    if (r->client)
        json_client(r, root);
    else
        json_server(r, root);
    text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) {
        fclose(f);
        snprintf(err, errlen, "cannot write --report %s: out of memory", path);
        return -ENOMEM;
    }
    fputs(text, f);
    fputc('\n', f);
    free(text);
    return close_report(f, path, err, errlen);
}

/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "harrepair.h"

static const char doc[] =
    "{\"log\":{\"version\":\"1.2\",\"creator\":{\"name\":\"mitmrec\",\"version\":\"0\"},"
    "\"pages\":[],\"entries\":["
    "{\"request\":{\"url\":\"http://x/\\\"}]\",\"headers\":[{\"name\":\"a\",\"value\":\"}\"}]}},"
    "{\"request\":{\"url\":\"http://y/\",\"headers\":[]},\"_error\":\"a [ b\"}"
    "]}}\n";

/* Feeds the first n bytes of doc in pieces of step. */
static int scan(size_t n, size_t step, uint64_t *keep)
{
    har_scan_t s;

    har_scan_init(&s);
    for (size_t i = 0; i < n; i += step)
        har_scan_feed(&s, (const uint8_t *)doc + i, i + step <= n ? step : n - i);
    return har_scan_result(&s, keep);
}

int main(void)
{
    size_t len = strlen(doc);
    const char *second = strstr(doc, ",{\"request\":{\"url\":\"http://y/");
    size_t first_end = (size_t)(second - doc), second_end = len - 4;
    uint64_t keep = 0;

    CHECK_EQ_INT(scan(len, len, &keep), 1);
    CHECK_EQ_INT(scan(len, 1, &keep), 1);
    /* Every cut point: the repaired file parses and keeps the complete entries. */
    for (size_t cut = 0; cut < len - 1; cut++) {
        int rc = scan(cut, 3, &keep);
        const char *p = strstr(doc, "\"entries\":[");
        size_t start = (size_t)(p - doc) + 11;

        if (cut < start) {
            CHECK_EQ_INT(rc, -EBADMSG);
            continue;
        }
        CHECK_EQ_INT(rc, 0);
        if (cut >= second_end)
            CHECK_EQ_INT(keep, second_end);
        else if (cut >= first_end)
            CHECK_EQ_INT(keep, first_end);
        else
            CHECK_EQ_INT(keep, start);
        {
            char buf[2048];
            memcpy(buf, doc, (size_t)keep);
            strcpy(buf + keep, "]}}");
            cJSON *j = cJSON_Parse(buf);
            CHECK(j != NULL);
            cJSON *e = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "log"), "entries");
            CHECK_EQ_INT(cJSON_GetArraySize(e), cut >= second_end ? 2 : cut >= first_end ? 1 : 0);
            cJSON_Delete(j);
        }
    }
    /* Not an object at the top: no HAR, nothing to repair (fuzz_harrepair found that "]}}"
       made a cut array of this shape into text that is not JSON). */
    {
        static const char *const notobj[] = {
            "[{\"entries\":[{\"a\":1},{\"b\":",
            "0,{\"log\":{\"entries\":[{\"a\":1},{\"b\":",
            "\"x\" {\"log\":{\"entries\":[{\"a\":1},{",
        };

        for (size_t i = 0; i < sizeof(notobj) / sizeof(notobj[0]); i++) {
            har_scan_t s;

            har_scan_init(&s);
            har_scan_feed(&s, (const uint8_t *)notobj[i], strlen(notobj[i]));
            CHECK_EQ_INT(har_scan_result(&s, &keep), -EBADMSG);
        }
    }
    return check_done();
}

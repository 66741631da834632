/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "log.h"

/* What a terminal acts on is escaped; text, UTF-8 included, is not. */
static void test_printable(void)
{
    char out[64];

    CHECK_EQ_STR(log_printable(out, sizeof(out), "curl"), "curl");
    CHECK_EQ_STR(log_printable(out, sizeof(out), ""), "");
    /* C0 controls (ESC, BEL, CR, LF) and DEL; a tab stays. */
    CHECK_EQ_STR(log_printable(out, sizeof(out), "ev\x1b[31mil\x07"), "ev\\x1b[31mil\\x07");
    CHECK_EQ_STR(log_printable(out, sizeof(out),
                               "a\r\nb\x7f"
                               "c\td"),
                 "a\\x0d\\x0ab\\x7fc\td");
    /* C1 controls in UTF-8 (U+009B, CSI) go as their two bytes; other UTF-8 stays. */
    CHECK_EQ_STR(log_printable(out, sizeof(out),
                               "x\xc2\x9b"
                               "1m"),
                 "x\\xc2\\x9b1m");
    CHECK_EQ_STR(log_printable(out, sizeof(out), "caf\xc3\xa9 \xe6\x97\xa5 \xc2\xa0"),
                 "caf\xc3\xa9 \xe6\x97\xa5 \xc2\xa0");
    /* Cut to fit, never inside an escape. */
    CHECK_EQ_STR(log_printable(out, 6, "abcdefgh"), "abcde");
    CHECK_EQ_STR(log_printable(out, 6,
                               "ab\x1b"
                               "cd"),
                 "ab");
    CHECK_EQ_STR(log_printable(out, 7,
                               "ab\x1b"
                               "cd"),
                 "ab\\x1b");
    CHECK_EQ_STR(log_printable(out, 1, "abc"), "");
}

/* log_line: one line, escaped, on the stream given. */
static void test_line(void)
{
    char buf[256];
    FILE *f = tmpfile();
    size_t n;

    CHECK(f != NULL);
    if (!f)
        return;
    log_line(f, "[%d] %s %s", 3,
             "G\x1b"
             "ET",
             "http://x/\x07");
    log_line(f, "second");
    rewind(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    CHECK_EQ_STR(buf, "[3] G\\x1bET http://x/\\x07\nsecond\n");
    fclose(f);
}

int main(void)
{
    test_printable();
    test_line();
    return check_done();
}

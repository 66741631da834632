/* SPDX-License-Identifier: MIT */
/* Bodies kept in the spill file (formats/spill.c) through http_msg_add_body: the bytes read
   back are the bytes given, memory holds a bounded tail, the file gives its blocks back, and
   a file that fails leaves the bodies whole in memory. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../check.h"
#include "../../formats/httpmsg.h"
#include "../../formats/spill.h"

#define AT (64u << 10)

static int errors, last_err;

static void on_error(int err, const char *dir, void *opaque)
{
    (void)dir;
    (void)opaque;
    errors++;
    last_err = err;
}

static uint8_t *pattern(size_t n, unsigned seed)
{
    uint8_t *p = malloc(n);

    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
    return p;
}

/* Feeds src in chunks of varying sizes (1 byte to 20 KiB). */
static int feed(http_msg_t *m, const uint8_t *src, size_t n, size_t max_body, unsigned seed)
{
    size_t off = 0;

    while (off < n) {
        size_t k;

        seed = seed * 1103515245u + 12345u;
        k = 1 + (seed >> 8) % (20u << 10);
        if (k > n - off)
            k = n - off;
        if (http_msg_add_body(m, src + off, k, max_body) < 0)
            return -1;
        off += k;
    }
    return 0;
}

/* 1 when m's kept body is exactly want[0..n). */
static int body_is(const http_msg_t *m, const uint8_t *want, size_t n)
{
    const uint8_t *d;
    size_t len;
    uint8_t *owned;
    int ok;

    if (http_msg_body(m, &d, &len, &owned) < 0)
        return 0;
    ok = len == n && (n == 0 || memcmp(d, want, n) == 0);
    free(owned);
    return ok;
}

static void test_small_stays_in_memory(void)
{
    http_msg_t m = {0};
    uint8_t *src = pattern(AT, 1);

    CHECK(feed(&m, src, AT, 16u << 20, 7) == 0);
    CHECK(m.spill == NULL);
    CHECK_EQ_INT(m.body_len, AT);
    CHECK_EQ_INT(spill_live(), 0);
    CHECK(body_is(&m, src, AT));
    http_msg_body_free(&m);
    free(src);
}

static void test_large_spills(void)
{
    size_t n = (3u << 20) + 12345;
    http_msg_t m = {0};
    uint8_t *src = pattern(n, 2);

    CHECK(feed(&m, src, n, 16u << 20, 9) == 0);
    CHECK(m.spill != NULL);
    CHECK(m.body_len <= HTTP_SPILL_TAIL);
    CHECK(m.body_cap <= HTTP_SPILL_TAIL);
    CHECK_EQ_INT(http_msg_kept(&m), n);
    CHECK_EQ_INT(m.body_total, n);
    CHECK(!m.body_truncated);
    CHECK(spill_live() >= n - HTTP_SPILL_TAIL);
    /* Whole 16 KiB blocks in a row make one extent. */
    CHECK(m.spill && m.spill->n <= 2);
    CHECK(body_is(&m, src, n));
    http_msg_body_free(&m);
    CHECK_EQ_INT(spill_live(), 0);
    CHECK(m.spill == NULL && m.body == NULL && m.body_len == 0);
    free(src);
}

static void test_max_body(void)
{
    size_t n = 1u << 20, max = 200000;
    http_msg_t m = {0};
    uint8_t *src = pattern(n, 3);

    CHECK(feed(&m, src, n, max, 11) == 0);
    CHECK(m.spill != NULL);
    CHECK_EQ_INT(http_msg_kept(&m), max);
    CHECK_EQ_INT(m.body_total, n);
    CHECK(m.body_truncated);
    CHECK(body_is(&m, src, max));
    http_msg_body_free(&m);
    free(src);
}

/* Two bodies received at once: their extents interleave in the file. */
static void test_interleaved(void)
{
    size_t n = 1u << 20, step = 5000;
    http_msg_t a = {0}, b = {0};
    uint8_t *sa = pattern(n, 4), *sb = pattern(n + 777, 5);
    uint64_t live;

    for (size_t off = 0; off < n + 777; off += step) {
        if (off < n)
            CHECK(http_msg_add_body(&a, sa + off, off + step > n ? n - off : step, 16u << 20) == 0);
        CHECK(http_msg_add_body(&b, sb + off, off + step > n + 777 ? n + 777 - off : step,
                                16u << 20) == 0);
    }
    CHECK(a.spill && b.spill && a.spill->n > 10 && b.spill->n > 10);
    CHECK(body_is(&a, sa, n));
    CHECK(body_is(&b, sb, n + 777));
    live = spill_live();
    http_msg_body_free(&a);
    CHECK(spill_live() < live && spill_live() > 0);
    CHECK(body_is(&b, sb, n + 777));
    http_msg_body_free(&b);
    CHECK_EQ_INT(spill_live(), 0);
    free(sa);
    free(sb);
}

/* An exchange freed with a spilled body gives its blocks back too. */
static void test_exchange_free(void)
{
    http_exchange_t *ex = http_exchange_new();
    uint8_t *src = pattern(300000, 6);

    CHECK(ex != NULL);
    CHECK(feed(&ex->resp, src, 300000, 16u << 20, 13) == 0);
    CHECK(feed(&ex->req, src, 100000, 16u << 20, 17) == 0);
    CHECK(ex->resp.spill && ex->req.spill);
    CHECK(spill_live() > 0);
    http_exchange_free(ex);
    CHECK_EQ_INT(spill_live(), 0);
    free(src);
}

/* The file cannot be made: one error, and the body stays whole in memory. */
static void test_no_dir(void)
{
    size_t n = 500000;
    http_msg_t m = {0};
    uint8_t *src = pattern(n, 8);

    errors = 0;
    CHECK(spill_enable("/nonexistent-mitmrec-dir", AT, on_error, NULL) == 0);
    CHECK(feed(&m, src, n, 16u << 20, 19) == 0);
    CHECK_EQ_INT(errors, 1);
    CHECK_EQ_INT(last_err, ENOENT);
    CHECK_EQ_INT(spill_threshold(), 0);
    CHECK(m.spill == NULL);
    CHECK_EQ_INT(m.body_len, n);
    CHECK(body_is(&m, src, n));
    http_msg_body_free(&m);
    free(src);
}

/* The file fails in the middle of a body (its size limit, as a full disk would): what was
   written is read back, the rest comes from memory, nothing is lost. */
static void test_write_fails(const char *dir)
{
    size_t n = 2u << 20;
    http_msg_t m = {0}, m2 = {0};
    uint8_t *src = pattern(n, 9);
    struct rlimit old, lim;

    errors = 0;
    CHECK(spill_enable(dir, AT, on_error, NULL) == 0);
    signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 600000;
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    CHECK(feed(&m, src, n, 16u << 20, 23) == 0);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK_EQ_INT(errors, 1);
    CHECK_EQ_INT(last_err, EFBIG);
    CHECK_EQ_INT(spill_threshold(), 0);
    CHECK(m.spill != NULL && m.spill->len > 0 && m.spill->len < 600000);
    CHECK_EQ_INT(http_msg_kept(&m), n);
    CHECK(body_is(&m, src, n));
    /* Later bodies stay in memory. */
    CHECK(feed(&m2, src, 300000, 16u << 20, 29) == 0);
    CHECK(m2.spill == NULL);
    CHECK(body_is(&m2, src, 300000));
    http_msg_body_free(&m);
    http_msg_body_free(&m2);
    CHECK_EQ_INT(errors, 1);
    free(src);
}

int main(void)
{
    char dir[] = "/tmp/test_spill.XXXXXX";

    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 99;
    }
    CHECK(spill_enable(dir, AT, on_error, NULL) == 0);
    CHECK_EQ_INT(spill_threshold(), AT);
    test_small_stays_in_memory();
    test_large_spills();
    test_max_body();
    test_interleaved();
    test_exchange_free();
    CHECK_EQ_INT(errors, 0);
    test_no_dir();
    test_write_fails(dir);
    spill_disable();
    CHECK_EQ_INT(spill_threshold(), 0);
    rmdir(dir); /* empty: the file never had a name there */
    CHECK(access(dir, F_OK) != 0);
    return check_done();
}

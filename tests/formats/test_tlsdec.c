/* SPDX-License-Identifier: MIT */
/*
 * Tests of keylog and tlsdec. Real TLS sessions are made in process: an
 * OpenSSL client and server joined by memory BIOs, with certificates made
 * here. The bytes each side writes and the key log lines are captured, then
 * fed to tlsdec in random splits; the plaintext must come out byte for byte.
 *
 * "test_tlsdec --write-seeds DIR" writes fuzzing seeds (see
 * tests/fuzz/fuzz_tlsdec.c for their layout) instead of testing.
 */
#include "check.h"
#include "keylog.h"
#include "tlsdec.h"
#include "bytes.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* ---- small helpers ---- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* ---- in-process TLS sessions ---- */

struct chunk {
    int dir;
    size_t off, len;
};

/* What a session put on the wire, its secrets and the plaintext each side sent. */
struct capture {
    bytes_t stream[2];
    struct chunk *chunks;
    size_t nchunks;
    bytes_t keylog;
    bytes_t sent[2];
    int version;
    uint16_t suite;
    SSL_SESSION *session; /* the client's, for resumption */
};

struct sess_opts {
    int version;         /* TLS1_2_VERSION or TLS1_3_VERSION */
    const char *ciphers; /* TLS 1.3 ciphersuites or TLS 1.2 cipher list */
    bool rsa;            /* RSA certificate instead of ECDSA */
    const char *alpn;    /* what the server picks */
    const char *sni;
    bool big;                  /* a 100 KB message */
    bool key_update;           /* TLS 1.3 KeyUpdates */
    bool small;                /* few short messages only */
    const char *client_groups; /* for a HelloRetryRequest */
    const char *server_groups;
    SSL_SESSION *resume; /* resume this session */
    const char *early;   /* 0-RTT data to send */
    bool server_rejects_early;
    bool log_both; /* key log lines from both sides (duplicates) */
};

static EVP_PKEY *ec_key, *rsa_key;
static X509 *ec_cert, *rsa_cert;

static X509 *make_cert(EVP_PKEY *key)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"test.example", -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    X509_sign(x, key, EVP_sha256());
    return x;
}

static void keylog_cb(const SSL *ssl, const char *line)
{
    struct capture *cap = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    b_add(&cap->keylog, line, strlen(line));
    b_add(&cap->keylog, "\n", 1);
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    const char *want = arg;
    for (unsigned i = 0; i < inlen; i += 1u + in[i]) {
        if (in[i] == strlen(want) && i + 1 + in[i] <= inlen &&
            memcmp(in + i + 1, want, in[i]) == 0) {
            *out = in + i + 1;
            *outlen = in[i];
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

struct sess {
    SSL *c, *s;
    BIO *c_out, *s_out; /* what each side wrote */
    BIO *c_in, *s_in;
    struct capture *cap;
};

/* Moves what each side wrote to the other, recording it. Returns bytes moved. */
static size_t pump(struct sess *ss)
{
    size_t moved = 0;
    uint8_t buf[8192];
    for (int dir = 0; dir < 2; dir++) {
        BIO *from = dir == 0 ? ss->c_out : ss->s_out, *to = dir == 0 ? ss->s_in : ss->c_in;
        struct capture *cap = ss->cap;
        size_t start = cap->stream[dir].len;
        int n;
        while ((n = BIO_read(from, buf, sizeof buf)) > 0) {
            b_add(&cap->stream[dir], buf, (size_t)n);
            BIO_write(to, buf, n);
            moved += (size_t)n;
        }
        if (cap->stream[dir].len > start) {
            cap->chunks = realloc(cap->chunks, (cap->nchunks + 1) * sizeof *cap->chunks);
            cap->chunks[cap->nchunks++] = (struct chunk){dir, start, cap->stream[dir].len - start};
        }
    }
    return moved;
}

/* Writes len bytes from side dir (0 = client) and reads them on the other side. */
static bool transfer(struct sess *ss, int dir, const uint8_t *data, size_t len)
{
    SSL *from = dir == 0 ? ss->c : ss->s, *to = dir == 0 ? ss->s : ss->c;
    if (SSL_write(from, data, (int)len) != (int)len)
        return false;
    b_add(&ss->cap->sent[dir], data, len);
    size_t got = 0;
    uint8_t buf[16384];
    for (int spins = 0; got < len && spins < 1000; spins++) {
        pump(ss);
        int n = SSL_read(to, buf, sizeof buf);
        if (n > 0) {
            if (memcmp(buf, data + got, (size_t)n) != 0)
                return false;
            got += (size_t)n;
        } else if (SSL_get_error(to, n) != SSL_ERROR_WANT_READ) {
            return false;
        }
    }
    pump(ss);
    return got == len;
}

static bool handshake(struct sess *ss)
{
    for (int i = 0; i < 100; i++) {
        int rc = SSL_do_handshake(ss->c);
        int rs = SSL_do_handshake(ss->s);
        size_t moved = pump(ss);
        if (rc == 1 && rs == 1)
            return true;
        if (!moved && i > 2)
            break;
    }
    return false;
}

static bool early_exchange(struct sess *ss, const struct sess_opts *o)
{
    size_t written = 0;
    size_t len = strlen(o->early);
    if (!SSL_write_early_data(ss->c, o->early, len, &written) || written != len)
        return false;
    pump(ss);
    uint8_t buf[1024];
    size_t got = 0, n;
    for (int i = 0; i < 10; i++) {
        int r = SSL_read_early_data(ss->s, buf + got, sizeof buf - got, &n);
        if (r == SSL_READ_EARLY_DATA_SUCCESS)
            got += n;
        pump(ss);
        SSL_do_handshake(ss->c); /* EndOfEarlyData and Finished once the server answered */
        pump(ss);
        if (r == SSL_READ_EARLY_DATA_FINISH)
            break;
        if (r == SSL_READ_EARLY_DATA_ERROR)
            return false;
    }
    bool accepted = SSL_get_early_data_status(ss->s) == SSL_EARLY_DATA_ACCEPTED;
    if (accepted != !o->server_rejects_early)
        return false;
    if (accepted) {
        if (got != len || memcmp(buf, o->early, len) != 0)
            return false;
        b_add(&ss->cap->sent[0], o->early, len);
    }
    return true;
}

/* Runs one session as o says and fills cap. Returns false (after a message) on failure. */
static bool make_session(const struct sess_opts *o, struct capture *cap)
{
    memset(cap, 0, sizeof *cap);
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method()), *cctx = SSL_CTX_new(TLS_client_method());
    struct sess ss = {.cap = cap};
    bool ok = false;
    SSL_CTX *ctxs[2] = {cctx, sctx};
    for (int i = 0; i < 2; i++) {
        SSL_CTX_set_min_proto_version(ctxs[i], o->version);
        SSL_CTX_set_max_proto_version(ctxs[i], o->version);
        if (o->version == TLS1_3_VERSION)
            SSL_CTX_set_ciphersuites(ctxs[i], o->ciphers);
        else if (!SSL_CTX_set_cipher_list(ctxs[i], o->ciphers))
            goto out;
        SSL_CTX_set_app_data(ctxs[i], cap);
    }
    SSL_CTX_set_keylog_callback(cctx, keylog_cb);
    if (o->log_both)
        SSL_CTX_set_keylog_callback(sctx, keylog_cb);
    SSL_CTX_use_certificate(sctx, o->rsa ? rsa_cert : ec_cert);
    SSL_CTX_use_PrivateKey(sctx, o->rsa ? rsa_key : ec_key);
    SSL_CTX_set_dh_auto(sctx, 1);
    SSL_CTX_set_alpn_select_cb(sctx, alpn_select, (void *)(o->alpn ? o->alpn : "none"));
    SSL_CTX_set_alpn_protos(cctx, (const unsigned char *)"\x02h2\x08http/1.1", 12);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
    if (o->client_groups)
        SSL_CTX_set1_groups_list(cctx, o->client_groups);
    if (o->server_groups)
        SSL_CTX_set1_groups_list(sctx, o->server_groups);
    if (o->early && !o->server_rejects_early)
        SSL_CTX_set_max_early_data(sctx, 16384);
    /* Every server takes every ticket, so a later session can resume an earlier one. */
    uint8_t ticket_keys[80];
    memset(ticket_keys, 0x5a, sizeof ticket_keys);
    SSL_CTX_set_tlsext_ticket_keys(sctx, ticket_keys, sizeof ticket_keys);
    SSL_CTX_set_options(sctx, SSL_OP_NO_ANTI_REPLAY);

    ss.c = SSL_new(cctx);
    ss.s = SSL_new(sctx);
    ss.c_in = BIO_new(BIO_s_mem());
    ss.c_out = BIO_new(BIO_s_mem());
    ss.s_in = BIO_new(BIO_s_mem());
    ss.s_out = BIO_new(BIO_s_mem());
    SSL_set_bio(ss.c, ss.c_in, ss.c_out);
    SSL_set_bio(ss.s, ss.s_in, ss.s_out);
    SSL_set_connect_state(ss.c);
    SSL_set_accept_state(ss.s);
    if (o->sni)
        SSL_set_tlsext_host_name(ss.c, o->sni);
    if (o->resume)
        SSL_set_session(ss.c, o->resume);
    if (o->early && o->resume && !early_exchange(&ss, o)) {
        fprintf(stderr, "early data exchange failed\n");
        goto out;
    }
    if (!handshake(&ss)) {
        fprintf(stderr, "handshake failed for %s\n", o->ciphers);
        ERR_print_errors_fp(stderr);
        goto out;
    }
    if (o->resume && !SSL_session_reused(ss.c)) {
        fprintf(stderr, "session not resumed\n");
        goto out;
    }
    cap->version = SSL_version(ss.c);
    cap->suite = SSL_CIPHER_get_protocol_id(SSL_get_current_cipher(ss.c));

    static const char *msgs[] = {"GET / HTTP/1.1\r\nHost: test.example\r\n\r\n",
                                 "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "x"};
    if (!transfer(&ss, 0, (const uint8_t *)msgs[0], strlen(msgs[0])) ||
        !transfer(&ss, 1, (const uint8_t *)msgs[1], strlen(msgs[1])))
        goto out;
    if (!o->small) {
        if (!transfer(&ss, 0, (const uint8_t *)msgs[2], 1) ||
            !transfer(&ss, 1, (const uint8_t *)msgs[2], 1))
            goto out;
    }
    if (o->key_update) {
        SSL_key_update(ss.c, SSL_KEY_UPDATE_REQUESTED);
        if (!transfer(&ss, 0, (const uint8_t *)"after client key update", 23) ||
            !transfer(&ss, 1, (const uint8_t *)"server answers with its own", 27))
            goto out;
        SSL_key_update(ss.s, SSL_KEY_UPDATE_NOT_REQUESTED);
        if (!transfer(&ss, 1, (const uint8_t *)"after server key update", 23) ||
            !transfer(&ss, 0, (const uint8_t *)"client still on its keys", 24))
            goto out;
    }
    if (o->big) {
        size_t n = 100 * 1024;
        uint8_t *big = malloc(n);
        for (size_t i = 0; i < n; i++)
            big[i] = (uint8_t)(i * 7 + i / 251);
        bool t1 = transfer(&ss, 1, big, n), t0 = transfer(&ss, 0, big + 1, n - 1);
        free(big);
        if (!t1 || !t0)
            goto out;
    }
    /* close_notify both ways */
    SSL_shutdown(ss.c);
    pump(&ss);
    uint8_t b[16];
    SSL_read(ss.s, b, sizeof b);
    SSL_shutdown(ss.s);
    pump(&ss);
    cap->session = SSL_get1_session(ss.c);
    ok = true;
out:
    SSL_free(ss.c);
    SSL_free(ss.s);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    ERR_clear_error();
    return ok;
}

static void capture_free(struct capture *cap)
{
    for (int i = 0; i < 2; i++) {
        b_free(&cap->stream[i]);
        b_free(&cap->sent[i]);
    }
    b_free(&cap->keylog);
    free(cap->chunks);
    SSL_SESSION_free(cap->session);
    memset(cap, 0, sizeof *cap);
}

/* ---- decoding ---- */

struct result {
    bytes_t plain[2];
    bytes_t alerts[2];
    int errors[2];
    char error[2][256];
    int infos;
    uint16_t version, suite;
    bool have_name;
    char sni[256], alpn[256];
    size_t alpn_offered_len;
};

static void on_plaintext(void *opaque, int dir, int type, const uint8_t *data, size_t len)
{
    struct result *r = opaque;
    if (type == TLSDEC_CT_APPLICATION_DATA)
        b_add(&r->plain[dir], data, len);
    else
        b_add(&r->alerts[dir], data, len);
}

static void on_info(void *opaque, const tlsdec_info_t *info)
{
    struct result *r = opaque;
    r->infos++;
    r->version = info->version;
    r->suite = info->cipher_suite;
    r->have_name = info->cipher_name != NULL;
    snprintf(r->sni, sizeof r->sni, "%s", info->sni ? info->sni : "(null)");
    snprintf(r->alpn, sizeof r->alpn, "%s", info->alpn ? info->alpn : "(null)");
    r->alpn_offered_len = info->alpn_offered_len;
}

static void on_error(void *opaque, int dir, const char *msg)
{
    struct result *r = opaque;
    r->errors[dir]++;
    snprintf(r->error[dir], sizeof r->error[dir], "%s", msg);
}

static const tlsdec_callbacks_t cbs = {on_plaintext, on_info, on_error};

static void result_free(struct result *r)
{
    for (int i = 0; i < 2; i++) {
        b_free(&r->plain[i]);
        b_free(&r->alerts[i]);
    }
}

/* Feeds p in pieces of 1..maxpiece bytes (maxpiece 0: in one call). */
static void feed_split(tlsdec_t *t, int dir, const uint8_t *p, size_t n, size_t maxpiece,
                       uint64_t *rng)
{
    while (n > 0) {
        size_t k = maxpiece ? 1 + rng_next(rng) % maxpiece : n;
        if (k > n)
            k = n;
        CHECK_EQ_INT(tlsdec_feed(t, dir, p, k), 0);
        p += k;
        n -= k;
    }
}

enum order { IN_ORDER, CLIENT_FIRST, SERVER_FIRST };

/* Feeds a capture (streams possibly replaced by s0/s1) in the given order. */
static void decode(const struct capture *cap, const uint8_t *streams[2], const keylog_t *kl,
                   enum order order, size_t maxpiece, uint64_t seed, struct result *r)
{
    memset(r, 0, sizeof *r);
    tlsdec_t *t = tlsdec_new(kl, &cbs, r);
    uint64_t rng = seed;
    if (order == IN_ORDER) {
        for (size_t i = 0; i < cap->nchunks; i++) {
            const struct chunk *c = &cap->chunks[i];
            feed_split(t, c->dir, streams[c->dir] + c->off, c->len, maxpiece, &rng);
        }
    } else {
        int first = order == CLIENT_FIRST ? 0 : 1;
        feed_split(t, first, streams[first], cap->stream[first].len, maxpiece, &rng);
        feed_split(t, 1 - first, streams[1 - first], cap->stream[1 - first].len, maxpiece, &rng);
    }
    tlsdec_free(t);
}

static bool bytes_eq(const bytes_t *a, const bytes_t *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

static bool is_prefix(const bytes_t *a, const bytes_t *b)
{
    return a->len <= b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

static const char close_notify[2] = {1, 0};

/* Checks a clean decode of a whole session. */
static void check_full(const struct capture *cap, const struct result *r, const char *sni,
                       const char *alpn)
{
    CHECK_EQ_INT(r->errors[0], 0);
    CHECK_EQ_INT(r->errors[1], 0);
    if (r->errors[0] || r->errors[1])
        fprintf(stderr, "  errors: \"%s\" / \"%s\"\n", r->error[0], r->error[1]);
    CHECK(bytes_eq(&r->plain[0], &cap->sent[0]));
    CHECK(bytes_eq(&r->plain[1], &cap->sent[1]));
    for (int d = 0; d < 2; d++)
        CHECK(r->alerts[d].len == 2 && memcmp(r->alerts[d].p, close_notify, 2) == 0);
    CHECK_EQ_INT(r->infos, 1);
    CHECK_EQ_INT(r->version, cap->version);
    CHECK_EQ_INT(r->suite, cap->suite);
    CHECK(r->have_name);
    CHECK_EQ_STR(r->sni, sni);
    CHECK_EQ_STR(r->alpn, alpn);
    CHECK_EQ_INT(r->alpn_offered_len, 12);
}

static const uint8_t **streams_of(const struct capture *cap, const uint8_t *s[2])
{
    s[0] = cap->stream[0].p;
    s[1] = cap->stream[1].p;
    return s;
}

static keylog_t *keylog_of(const struct capture *cap)
{
    keylog_t *kl = keylog_new();
    int n = keylog_add_text(kl, (const char *)cap->keylog.p, cap->keylog.len);
    CHECK(n >= 1);
    return kl;
}

/* Decodes a session in several splittings and checks each. */
static void check_session(const struct capture *cap, const char *sni, const char *alpn)
{
    static const size_t pieces[] = {0, 1, 7, 100, 3000, 20000};
    const uint8_t *s[2];
    streams_of(cap, s);
    keylog_t *kl = keylog_of(cap);
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        struct result r;
        decode(cap, s, kl, IN_ORDER, pieces[i], 0x9e3779b97f4a7c15ull + i, &r);
        check_full(cap, &r, sni, alpn);
        result_free(&r);
    }
    keylog_free(kl);
}

static void test_suite(int version, const char *ciphers, bool rsa, const char *alpn)
{
    struct sess_opts o = {.version = version,
                          .ciphers = ciphers,
                          .rsa = rsa,
                          .alpn = alpn,
                          .sni = "test.example",
                          .big = true,
                          .key_update = version == TLS1_3_VERSION,
                          .log_both = true};
    struct capture cap;
    fprintf(stderr, "session %s %s\n", ciphers, rsa ? "RSA" : "ECDSA");
    CHECK(make_session(&o, &cap));
    CHECK_EQ_INT(cap.version, version);
    if (cap.session)
        check_session(&cap, "test.example", alpn);
    capture_free(&cap);
}

/* ---- failure cases ---- */

/* The offset of the n-th record (0-based) of a stream whose type is ct. */
static size_t find_record(const bytes_t *s, int ct, int n)
{
    for (size_t off = 0; off + 5 <= s->len;
         off += 5 + ((size_t)s->p[off + 3] << 8 | s->p[off + 4])) {
        if (s->p[off] == ct && n-- == 0)
            return off;
    }
    return SIZE_MAX;
}

static void test_failures(int version, const char *ciphers)
{
    struct sess_opts o = {.version = version,
                          .ciphers = ciphers,
                          .alpn = "http/1.1",
                          .sni = "fail.example",
                          .key_update = version == TLS1_3_VERSION};
    struct capture cap;
    fprintf(stderr, "failures %s\n", ciphers);
    if (!make_session(&o, &cap)) {
        CHECK(!"session");
        capture_free(&cap);
        return;
    }
    const uint8_t *s[2];
    streams_of(&cap, s);
    keylog_t *kl = keylog_of(&cap);
    keylog_t *empty = keylog_new();
    struct result r;

    /* No secrets: one error, no plaintext, the hello information still. */
    decode(&cap, s, empty, IN_ORDER, 50, 1, &r);
    CHECK_EQ_INT(r.errors[0] + r.errors[1], 1);
    CHECK(strstr(r.error[0], "no secrets for this connection") ||
          strstr(r.error[1], "no secrets for this connection"));
    CHECK_EQ_INT(r.plain[0].len + r.plain[1].len, 0);
    CHECK_EQ_INT(r.infos, 1);
    CHECK_EQ_STR(r.sni, "fail.example");
    CHECK_EQ_STR(r.alpn, version == TLS1_3_VERSION ? "(null)" : "http/1.1");
    result_free(&r);

    /* Secrets that arrive after the ClientHello, before they are needed. */
    {
        memset(&r, 0, sizeof r);
        keylog_t *late = keylog_new();
        tlsdec_t *t = tlsdec_new(late, &cbs, &r);
        CHECK_EQ_INT(cap.chunks[0].dir, 0);
        for (size_t i = 0; i < cap.nchunks; i++) {
            const struct chunk *c = &cap.chunks[i];
            CHECK_EQ_INT(tlsdec_feed(t, c->dir, s[c->dir] + c->off, c->len), 0);
            if (i == 0)
                keylog_add_text(late, (const char *)cap.keylog.p, cap.keylog.len);
        }
        tlsdec_free(t);
        keylog_free(late);
        check_full(&cap, &r, "fail.example", "http/1.1");
        result_free(&r);
    }

    /* Client stream first, then the server's: the client waits for the ServerHello. */
    decode(&cap, s, kl, CLIENT_FIRST, 333, 2, &r);
    check_full(&cap, &r, "fail.example", "http/1.1");
    result_free(&r);
    decode(&cap, s, kl, SERVER_FIRST, 0, 3, &r);
    check_full(&cap, &r, "fail.example", "http/1.1");
    result_free(&r);

    /* A corrupted tag in the server's third record of application data from the end. */
    {
        uint8_t *bad = malloc(cap.stream[1].len);
        memcpy(bad, s[1], cap.stream[1].len);
        int count = 0;
        while (find_record(&cap.stream[1], 23, count) != SIZE_MAX)
            count++;
        size_t off = find_record(&cap.stream[1], 23, count >= 3 ? count - 3 : 0);
        CHECK(off != SIZE_MAX);
        if (off != SIZE_MAX) {
            size_t len = (size_t)bad[off + 3] << 8 | bad[off + 4];
            bad[off + 5 + len - 1] ^= 0x01;
        }
        const uint8_t *s2[2] = {s[0], bad};
        decode(&cap, s2, kl, IN_ORDER, 9, 4, &r);
        CHECK_EQ_INT(r.errors[0], 0);
        CHECK_EQ_INT(r.errors[1], 1);
        CHECK(strstr(r.error[1], "bad record MAC") != NULL);
        CHECK(bytes_eq(&r.plain[0], &cap.sent[0]));
        CHECK(is_prefix(&r.plain[1], &cap.sent[1]));
        CHECK(r.plain[1].len < cap.sent[1].len);
        result_free(&r);
        free(bad);
    }

    /* A stream cut in the middle of the last record: what came before, no error. */
    {
        struct capture cut = cap;
        struct chunk *chunks = malloc(cap.nchunks * sizeof *chunks);
        memcpy(chunks, cap.chunks, cap.nchunks * sizeof *chunks);
        cut.chunks = chunks;
        size_t last = 0;
        for (size_t i = 0; i < cap.nchunks; i++) {
            if (chunks[i].dir == 1)
                last = i;
        }
        chunks[last].len -= 20; /* into close_notify's record */
        decode(&cut, s, kl, IN_ORDER, 5, 5, &r);
        CHECK_EQ_INT(r.errors[0] + r.errors[1], 0);
        CHECK(bytes_eq(&r.plain[1], &cap.sent[1]));
        CHECK_EQ_INT(r.alerts[1].len, 0);
        result_free(&r);
        free(chunks);
    }

    /* A record longer than TLS allows. */
    {
        uint8_t *bad = malloc(cap.stream[0].len);
        memcpy(bad, s[0], cap.stream[0].len);
        size_t off = find_record(&cap.stream[0], 23, 1);
        CHECK(off != SIZE_MAX);
        if (off != SIZE_MAX) {
            bad[off + 3] = 0x48;
            bad[off + 4] = 0x01;
        }
        const uint8_t *s2[2] = {bad, s[1]};
        decode(&cap, s2, kl, IN_ORDER, 0, 6, &r);
        CHECK_EQ_INT(r.errors[0], 1);
        CHECK(strstr(r.error[0], "malformed record") != NULL);
        CHECK(is_prefix(&r.plain[0], &cap.sent[0]));
        CHECK(bytes_eq(&r.plain[1], &cap.sent[1]));
        result_free(&r);
        free(bad);
    }

    /* Encrypted client records while the server says nothing: held up to a limit. */
    {
        memset(&r, 0, sizeof r);
        tlsdec_t *t = tlsdec_new(kl, &cbs, &r);
        CHECK_EQ_INT(tlsdec_feed(t, 0, s[0], cap.chunks[0].len), 0);
        uint8_t *rec = calloc(1, 5 + 16384);
        memcpy(rec, "\x17\x03\x03\x40\x00", 5);
        size_t fed = 0;
        while (fed <= TLSDEC_HOLD_MAX && r.errors[0] == 0) {
            CHECK_EQ_INT(tlsdec_feed(t, 0, rec, 5 + 16384), 0);
            fed += 5 + 16384;
        }
        CHECK_EQ_INT(r.errors[0], 1);
        CHECK(fed > TLSDEC_HOLD_MAX - 5 - 16384);
        CHECK(strstr(r.error[0], "while waiting for the other direction") != NULL);
        tlsdec_free(t);
        free(rec);
        result_free(&r);
    }

    /* The server refuses the ClientHello with an unencrypted alert. */
    {
        static const uint8_t alert[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28};
        memset(&r, 0, sizeof r);
        tlsdec_t *t = tlsdec_new(kl, &cbs, &r);
        CHECK_EQ_INT(tlsdec_feed(t, 0, s[0], cap.chunks[0].len), 0);
        CHECK_EQ_INT(tlsdec_feed(t, 1, alert, sizeof alert), 0);
        tlsdec_free(t);
        CHECK_EQ_INT(r.errors[0] + r.errors[1], 0);
        CHECK(r.alerts[1].len == 2 && r.alerts[1].p[0] == 2 && r.alerts[1].p[1] == 40);
        CHECK_EQ_INT(r.infos, 0);
        result_free(&r);
    }

    /* A capture that starts after the handshake. */
    {
        size_t off = find_record(&cap.stream[0], 23, version == TLS1_3_VERSION ? 2 : 0);
        memset(&r, 0, sizeof r);
        tlsdec_t *t = tlsdec_new(kl, &cbs, &r);
        CHECK_EQ_INT(tlsdec_feed(t, 0, s[0] + off, cap.stream[0].len - off), 0);
        CHECK_EQ_INT(tlsdec_feed(t, 0, s[0], 10), 0); /* dropped after the error */
        tlsdec_free(t);
        CHECK_EQ_INT(r.errors[0], 1);
        CHECK(strstr(r.error[0], "no ClientHello") != NULL);
        CHECK_EQ_INT(r.plain[0].len, 0);
        result_free(&r);
    }

    keylog_free(kl);
    keylog_free(empty);
    capture_free(&cap);
}

static void test_unsupported(int version, const char *ciphers, const char *expect)
{
    struct sess_opts o = {.version = version, .ciphers = ciphers, .alpn = "h2", .small = true};
    struct capture cap;
    if (!make_session(&o, &cap)) {
        CHECK(!"session");
        capture_free(&cap);
        return;
    }
    const uint8_t *s[2];
    keylog_t *kl = keylog_of(&cap);
    struct result r;
    decode(&cap, streams_of(&cap, s), kl, IN_ORDER, 0, 7, &r);
    CHECK_EQ_INT(r.errors[0], 0);
    CHECK_EQ_INT(r.errors[1], 1);
    CHECK_EQ_STR(r.error[1], expect);
    CHECK_EQ_INT(r.plain[0].len + r.plain[1].len, 0);
    CHECK_EQ_INT(r.infos, 1);
    CHECK_EQ_INT(r.suite, cap.suite);
    CHECK(!r.have_name);
    CHECK_EQ_STR(r.sni, "(null)");
    result_free(&r);
    keylog_free(kl);
    capture_free(&cap);
}

static void test_not_tls(void)
{
    struct result r;
    memset(&r, 0, sizeof r);
    tlsdec_t *t = tlsdec_new(NULL, &cbs, &r);
    const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK_EQ_INT(tlsdec_feed(t, 0, http, strlen(http)), 0);
    CHECK_EQ_INT(tlsdec_feed(t, 1, "\x16\x03", 2), 0);
    CHECK_EQ_INT(tlsdec_feed(t, 2, "x", 1), -EINVAL);
    CHECK_EQ_INT(tlsdec_feed(NULL, 0, "x", 1), -EINVAL);
    CHECK_EQ_INT(tlsdec_feed(t, 0, NULL, 1), -EINVAL);
    CHECK_EQ_INT(tlsdec_feed(t, 0, NULL, 0), 0);
    CHECK_EQ_INT(r.errors[0], 1);
    CHECK_EQ_STR(r.error[0], "malformed record (not TLS?)");
    CHECK_EQ_INT(r.errors[1], 0);
    /* A truncated ClientHello record, then a malformed one. */
    static const uint8_t ch[] = {0x16, 0x03, 0x01, 0x00, 0x06, 0x01, 0x00, 0x00, 0x02, 0x03, 0x03};
    CHECK_EQ_INT(tlsdec_feed(t, 1, ch, 3), 0);
    CHECK_EQ_INT(r.errors[1], 0);
    tlsdec_free(t);
    tlsdec_free(NULL);

    memset(&r, 0, sizeof r);
    t = tlsdec_new(NULL, &cbs, &r);
    CHECK_EQ_INT(tlsdec_feed(t, 0, ch, sizeof ch), 0);
    CHECK_EQ_INT(r.errors[0], 1);
    CHECK_EQ_STR(r.error[0], "malformed ClientHello");
    tlsdec_free(t);

    /* An empty ClientHello (a fuzzing find: no buffer behind an empty message). */
    static const uint8_t empty_ch[] = {0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00};
    memset(&r, 0, sizeof r);
    t = tlsdec_new(NULL, &cbs, &r);
    CHECK_EQ_INT(tlsdec_feed(t, 0, empty_ch, sizeof empty_ch), 0);
    CHECK_EQ_INT(r.errors[0], 1);
    CHECK_EQ_STR(r.error[0], "malformed ClientHello");
    tlsdec_free(t);
}

/* HelloRetryRequest: the client's first key share is for a group the server doesn't take. */
static void test_hrr(void)
{
    struct sess_opts o = {.version = TLS1_3_VERSION,
                          .ciphers = "TLS_AES_128_GCM_SHA256",
                          .alpn = "h2",
                          .sni = "hrr.example",
                          .client_groups = "P-256:X25519",
                          .server_groups = "X25519",
                          .key_update = true};
    struct capture cap;
    fprintf(stderr, "HelloRetryRequest\n");
    if (!make_session(&o, &cap)) {
        CHECK(!"session");
        capture_free(&cap);
        return;
    }
    /* The server's first record is a ServerHello carrying the HRR random. */
    CHECK(cap.stream[1].len > 43 && cap.stream[1].p[11] == 0xcf && cap.stream[1].p[12] == 0x21);
    check_session(&cap, "hrr.example", "h2");
    const uint8_t *s[2];
    keylog_t *kl = keylog_of(&cap);
    struct result r;
    decode(&cap, streams_of(&cap, s), kl, CLIENT_FIRST, 64, 8, &r);
    check_full(&cap, &r, "hrr.example", "h2");
    result_free(&r);
    keylog_free(kl);
    capture_free(&cap);
}

/* Resumption: TLS 1.2 abbreviated handshake, TLS 1.3 PSK with and without 0-RTT. */
static void test_resumption(void)
{
    fprintf(stderr, "resumption\n");
    struct sess_opts o = {.version = TLS1_2_VERSION,
                          .ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256",
                          .alpn = "h2",
                          .sni = "resume.example",
                          .small = true};
    struct capture first, second;
    CHECK(make_session(&o, &first));
    o.resume = first.session;
    CHECK(make_session(&o, &second));
    if (second.session) {
        CHECK_EQ_INT(second.stream[1].p[5], 2); /* ServerHello, no Certificate: */
        CHECK(!memmem(second.stream[1].p, second.stream[1].len, "test.example", 12));
        check_session(&second, "resume.example", "h2");
    }
    capture_free(&first);
    capture_free(&second);

    o = (struct sess_opts){.version = TLS1_3_VERSION,
                           .ciphers = "TLS_AES_256_GCM_SHA384",
                           .alpn = "http/1.1",
                           .sni = "early.example",
                           .small = true,
                           .early = "GET /early HTTP/1.1\r\n\r\n"};
    CHECK(make_session(&o, &first));
    struct sess_opts o2 = o;
    o2.resume = first.session;
    CHECK(make_session(&o2, &second));
    if (second.session) {
        CHECK(memmem(second.keylog.p, second.keylog.len, "CLIENT_EARLY_TRAFFIC_SECRET", 27));
        CHECK(second.sent[0].len > strlen(o.early) &&
              memcmp(second.sent[0].p, o.early, strlen(o.early)) == 0);
        check_session(&second, "early.example", "http/1.1");
    }
    capture_free(&second);

    o2.server_rejects_early = true;
    CHECK(make_session(&o2, &second));
    if (second.session) {
        CHECK(second.sent[0].len > 0 && memcmp(second.sent[0].p, "GET / ", 6) == 0);
        check_session(&second, "early.example", "http/1.1");
    }
    capture_free(&second);
    capture_free(&first);
}

/* ---- keylog ---- */

static const char cr_hex[] = "0102030405060708091011121314151617181920212223242526272829303132";

static void test_keylog(void)
{
    uint8_t cr[32], out[64];
    for (int i = 0; i < 32; i++)
        cr[i] = (uint8_t)((i + 1) / 10 * 16 + (i + 1) % 10);
    keylog_t *kl = keylog_new();
    const char text[] =
        "# a comment\r\n"
        "\n"
        "   \t\r\n"
        "CLIENT_RANDOM 0102030405060708091011121314151617181920212223242526272829303132 "
        "aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff001122334455"
        "66778899\r\n"
        "SERVER_HANDSHAKE_TRAFFIC_SECRET\t010203040506070809101112131415161718192021222324252627"
        "2829303132\tABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789  \n"
        "RSA 0011 2233\n"
        "CLIENT_TRAFFIC_SECRET_0 01020304 aabb\n" /* short random */
        "CLIENT_TRAFFIC_SECRET_0 0102030405060708091011121314151617181920212223242526272829303"
        "1zz aabb\n" /* not hex */
        "SERVER_TRAFFIC_SECRET_0 0102030405060708091011121314151617181920212223242526272829303"
        "132 abc\n" /* odd length */
        "EXPORTER_SECRET 0102030405060708091011121314151617181920212223242526272829303132\n"
        "EXPORTER_SECRET 0102030405060708091011121314151617181920212223242526272829303132 aa bb\n"
        "CLIENT_TRAFFIC_SECRET_0 0102030405060708091011121314151617181920212223242526272829303132 "
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899aabbc"
        "cddeeff00112233445566778899aabbccddeeff00\n" /* 65 bytes: too long */
        "CLIENT_RANDOM 0102030405060708091011121314151617181920212223242526272829303132 "
        "aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff001122334455"
        "66778899\n" /* duplicate */
        "CLIENT_RANDOM 0102030405060708091011121314151617181920212223242526272829303132 00\n"
        "EARLY_EXPORTER_SECRET 0102030405060708091011121314151617181920212223242526272829303132 "
        "77"; /* no final newline */
    CHECK_EQ_INT(keylog_add_text(kl, text, strlen(text)), 3);
    keylog_stats_t st;
    keylog_get_stats(kl, &st);
    CHECK_EQ_INT(st.entries, 3);
    CHECK_EQ_INT(st.lines, 15);
    CHECK_EQ_INT(st.unknown, 1);
    CHECK_EQ_INT(st.malformed, 6);
    CHECK_EQ_INT(st.duplicates, 1);
    CHECK_EQ_INT(st.conflicts, 1);
    CHECK_EQ_INT(st.dropped, 0);

    size_t len = sizeof out;
    CHECK_EQ_INT(keylog_find(kl, KEYLOG_CLIENT_RANDOM, cr, out, &len), 0);
    CHECK_EQ_INT(len, 48);
    CHECK(out[0] == 0xaa && out[47] == 0x99);
    len = sizeof out;
    CHECK_EQ_INT(keylog_find(kl, KEYLOG_SERVER_HANDSHAKE_TRAFFIC_SECRET, cr, out, &len), 0);
    CHECK_EQ_INT(len, 32);
    CHECK(out[0] == 0xab && out[31] == 0x89);
    len = sizeof out;
    CHECK_EQ_INT(keylog_find(kl, KEYLOG_EARLY_EXPORTER_SECRET, cr, out, &len), 0);
    CHECK(len == 1 && out[0] == 0x77);
    len = sizeof out;
    CHECK_EQ_INT(keylog_find(kl, KEYLOG_CLIENT_TRAFFIC_SECRET_0, cr, out, &len), -ENOENT);
    len = 10;
    CHECK_EQ_INT(keylog_find(kl, KEYLOG_CLIENT_RANDOM, cr, out, &len), -ENOBUFS);
    CHECK_EQ_INT(len, 48);
    CHECK_EQ_INT(keylog_find(kl, KEYLOG_LABEL_COUNT, cr, out, &len), -EINVAL);
    cr[5] ^= 1;
    len = sizeof out;
    CHECK_EQ_INT(keylog_find(kl, KEYLOG_CLIENT_RANDOM, cr, out, &len), -ENOENT);
    CHECK_EQ_INT(keylog_add_text(kl, "", 0), 0);
    CHECK_EQ_INT(keylog_add_text(kl, NULL, 1), -EINVAL);
    CHECK_EQ_STR(keylog_label_name(KEYLOG_CLIENT_TRAFFIC_SECRET_0), "CLIENT_TRAFFIC_SECRET_0");
    CHECK(keylog_label_name(KEYLOG_LABEL_COUNT) == NULL);
    keylog_free(kl);
    keylog_free(NULL);

    /* Many entries (the index grows), then a full store. */
    kl = keylog_new_max(5000);
    CHECK(keylog_new_max(0) == NULL);
    bytes_t b = {0};
    char line[200];
    for (int i = 0; i < 5001; i++) {
        int n = snprintf(line, sizeof line, "CLIENT_RANDOM %08x%s %064x\n", (unsigned)i, cr_hex + 8,
                         (unsigned)i);
        b_add(&b, line, (size_t)n);
    }
    CHECK_EQ_INT(keylog_add_text(kl, (const char *)b.p, b.len), -ENOSPC);
    keylog_get_stats(kl, &st);
    CHECK_EQ_INT(st.entries, 5000);
    CHECK_EQ_INT(st.dropped, 1);
    bool all = true;
    for (int i = 0; i < 5001; i++) {
        uint8_t r[32];
        for (int k = 0; k < 32; k++)
            r[k] = (uint8_t)((k + 1) / 10 * 16 + (k + 1) % 10);
        r[0] = (uint8_t)(i >> 24);
        r[1] = (uint8_t)(i >> 16);
        r[2] = (uint8_t)(i >> 8);
        r[3] = (uint8_t)i;
        len = sizeof out;
        int rc = keylog_find(kl, KEYLOG_CLIENT_RANDOM, r, out, &len);
        if (i < 5000)
            all = all && rc == 0 && len == 32 && out[31] == (uint8_t)i &&
                  out[30] == (uint8_t)(i >> 8);
        else
            all = all && rc == -ENOENT;
    }
    CHECK(all);
    b_free(&b);
    keylog_free(kl);
}

/* ---- fuzzing seeds ---- */

/*
 * Seed layout (see tests/fuzz/fuzz_tlsdec.c): flags byte, u16 LE key log
 * length, the key log, then chunks of u16 LE header (bit 15 = direction,
 * bits 0-14 = length) and data.
 */
static void write_seed(const char *dirname, const char *name, const struct capture *cap, int flags,
                       size_t maxpiece)
{
    bytes_t b = {0};
    uint8_t hdr[3] = {(uint8_t)flags, (uint8_t)cap->keylog.len, (uint8_t)(cap->keylog.len >> 8)};
    b_add(&b, hdr, 3);
    b_add(&b, cap->keylog.p, cap->keylog.len);
    uint64_t rng = 42;
    for (size_t i = 0; i < cap->nchunks; i++) {
        const struct chunk *c = &cap->chunks[i];
        for (size_t off = 0; off < c->len;) {
            size_t k = 1 + rng_next(&rng) % maxpiece;
            if (k > c->len - off)
                k = c->len - off;
            uint16_t h = (uint16_t)(k | (size_t)c->dir << 15);
            uint8_t hb[2] = {(uint8_t)h, (uint8_t)(h >> 8)};
            b_add(&b, hb, 2);
            b_add(&b, cap->stream[c->dir].p + c->off + off, k);
            off += k;
        }
    }
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dirname, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b.p, 1, b.len, f) != b.len || fclose(f) != 0)
        fprintf(stderr, "can't write %s\n", path);
    else
        printf("%s: %zu bytes\n", path, b.len);
    b_free(&b);
}

static int write_seeds(const char *dirname)
{
    static const struct {
        const char *name;
        int version;
        const char *ciphers;
        bool rsa;
    } seeds[] = {
        {"tls13-aes128gcm", TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256", false},
        {"tls13-aes256gcm", TLS1_3_VERSION, "TLS_AES_256_GCM_SHA384", false},
        {"tls13-chacha20", TLS1_3_VERSION, "TLS_CHACHA20_POLY1305_SHA256", false},
        {"tls12-ecdsa-aes128gcm", TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256", false},
        {"tls12-rsa-aes256gcm", TLS1_2_VERSION, "ECDHE-RSA-AES256-GCM-SHA384", true},
        {"tls12-ecdsa-chacha20", TLS1_2_VERSION, "ECDHE-ECDSA-CHACHA20-POLY1305", false},
    };
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        struct sess_opts o = {.version = seeds[i].version,
                              .ciphers = seeds[i].ciphers,
                              .rsa = seeds[i].rsa,
                              .alpn = "h2",
                              .sni = "seed.example",
                              .key_update = seeds[i].version == TLS1_3_VERSION};
        struct capture cap;
        if (!make_session(&o, &cap))
            return 1;
        char name[128];
        snprintf(name, sizeof name, "%s.bin", seeds[i].name);
        write_seed(dirname, name, &cap, 0, 4000);
        snprintf(name, sizeof name, "%s-late-split.bin", seeds[i].name);
        write_seed(dirname, name, &cap, 1, 300);
        capture_free(&cap);
    }
    struct sess_opts o = {.version = TLS1_3_VERSION,
                          .ciphers = "TLS_AES_128_GCM_SHA256",
                          .alpn = "http/1.1",
                          .sni = "hrr.example",
                          .client_groups = "P-256:X25519",
                          .server_groups = "X25519",
                          .small = true};
    struct capture cap, cap2;
    if (!make_session(&o, &cap))
        return 1;
    write_seed(dirname, "tls13-hrr.bin", &cap, 0, 4000);
    capture_free(&cap);
    o = (struct sess_opts){.version = TLS1_3_VERSION,
                           .ciphers = "TLS_AES_128_GCM_SHA256",
                           .alpn = "h2",
                           .small = true,
                           .early = "early data"};
    if (!make_session(&o, &cap))
        return 1;
    o.resume = cap.session;
    if (!make_session(&o, &cap2))
        return 1;
    write_seed(dirname, "tls13-early.bin", &cap2, 0, 4000);
    capture_free(&cap2);
    capture_free(&cap);
    return 0;
}

int main(int argc, char **argv)
{
    ec_key = EVP_EC_gen("P-256");
    rsa_key = EVP_RSA_gen(2048);
    ec_cert = make_cert(ec_key);
    rsa_cert = make_cert(rsa_key);
    int rc = 0;
    if (argc == 3 && strcmp(argv[1], "--write-seeds") == 0) {
        rc = write_seeds(argv[2]);
    } else {
        test_keylog();
        test_not_tls();
        test_suite(TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256", false, "h2");
        test_suite(TLS1_3_VERSION, "TLS_AES_256_GCM_SHA384", true, "http/1.1");
        test_suite(TLS1_3_VERSION, "TLS_CHACHA20_POLY1305_SHA256", false, "h2");
        test_suite(TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256", false, "h2");
        test_suite(TLS1_2_VERSION, "ECDHE-ECDSA-AES256-GCM-SHA384", false, "http/1.1");
        test_suite(TLS1_2_VERSION, "ECDHE-ECDSA-CHACHA20-POLY1305", false, "h2");
        test_suite(TLS1_2_VERSION, "ECDHE-RSA-AES128-GCM-SHA256", true, "http/1.1");
        test_suite(TLS1_2_VERSION, "ECDHE-RSA-AES256-GCM-SHA384", true, "h2");
        test_suite(TLS1_2_VERSION, "ECDHE-RSA-CHACHA20-POLY1305", true, "http/1.1");
        test_suite(TLS1_2_VERSION, "DHE-RSA-AES256-GCM-SHA384", true, "h2");
        test_suite(TLS1_2_VERSION, "DHE-RSA-CHACHA20-POLY1305", true, "h2");
        test_suite(TLS1_2_VERSION, "AES128-GCM-SHA256", true, "http/1.1");
        test_failures(TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256");
        test_failures(TLS1_2_VERSION, "ECDHE-ECDSA-AES256-GCM-SHA384");
        test_unsupported(TLS1_3_VERSION, "TLS_AES_128_CCM_SHA256",
                         "cipher suite 0x1304 not supported");
        test_unsupported(TLS1_2_VERSION, "ECDHE-ECDSA-AES128-SHA256",
                         "cipher suite 0xc023 not supported");
        test_hrr();
        test_resumption();
        rc = check_done();
    }
    X509_free(ec_cert);
    X509_free(rsa_cert);
    EVP_PKEY_free(ec_key);
    EVP_PKEY_free(rsa_key);
    return rc;
}

/* SPDX-License-Identifier: MIT */
#include "tlsdec.h"
#include "tlsdec_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#define CT_CHANGE_CIPHER_SPEC 20
#define CT_ALERT 21
#define CT_HANDSHAKE 22
#define CT_APPLICATION_DATA 23
#define CT_HEARTBEAT 24

#define HS_HELLO_REQUEST 0
#define HS_CLIENT_HELLO 1
#define HS_SERVER_HELLO 2
#define HS_END_OF_EARLY_DATA 5
#define HS_ENCRYPTED_EXTENSIONS 8
#define HS_FINISHED 20
#define HS_KEY_UPDATE 24

#define EXT_SERVER_NAME 0
#define EXT_ALPN 16
#define EXT_EARLY_DATA 42
#define EXT_SUPPORTED_VERSIONS 43

#define HS_MAX (64 * 1024) /* longest handshake message we keep (hellos, EE) */

/* The ServerHello random that marks a HelloRetryRequest (RFC 8446, 4.1.3). */
static const uint8_t hrr_random[32] = {
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
};

/* ---- errors ---- */

static void emit_info(tlsdec_t *t, bool force);

/* Stops decrypting a direction; the server's end also ends the wait for its hello info. */
static void stop(tlsdec_t *t, int dir)
{
    struct dir *d = &t->d[dir];
    d->failed = true;
    d->held = false;
    d->len = 0;
    if (dir == TLSDEC_DIR_SERVER)
        emit_info(t, true);
}

int tlsdec_fail(tlsdec_t *t, int dir, const char *fmt, ...)
{
    if (t->d[dir].failed)
        return R_FAIL;
    stop(t, dir);
    if (t->cb.on_error) {
        char msg[200];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        t->cb.on_error(t->opaque, dir, msg);
    }
    return R_FAIL;
}

/* Stops both directions: what the connection needs can't be had. */
static int fail_conn(tlsdec_t *t, int dir, const char *msg)
{
    tlsdec_fail(t, dir, "%s", msg);
    stop(t, 1 - dir);
    return R_FAIL;
}

/*
 * The one place that reads OpenSSL's error queue. It is emptied, so that no
 * error of ours reaches SSL_get_error() elsewhere in the thread.
 */
int tlsdec_fail_crypto(tlsdec_t *t, int dir, const char *what)
{
    unsigned long e, last = 0;
    while ((e = ERR_get_error()) != 0)
        last = e;
    char reason[128] = "unknown error";
    if (last)
        ERR_error_string_n(last, reason, sizeof reason);
    return tlsdec_fail(t, dir, "%s failed: %s", what, reason);
}

static int fail_nomem(tlsdec_t *t, int dir)
{
    t->nomem = true;
    stop(t, dir);
    return R_FAIL;
}

int tlsdec_no_secrets(tlsdec_t *t, int dir, keylog_label_t label)
{
    if (t->secrets_reported) {
        stop(t, dir);
        return R_FAIL;
    }
    t->secrets_reported = true;
    return tlsdec_fail(t, dir, "no secrets for this connection (%s missing)",
                       keylog_label_name(label));
}

/* ---- buffers ---- */

static bool grow(uint8_t **buf, size_t *cap, size_t need, size_t limit)
{
    if (need <= *cap)
        return true;
    if (need > limit)
        return false;
    size_t ncap = *cap ? *cap * 2 : 1024;
    if (ncap < need)
        ncap = need;
    if (ncap > limit)
        ncap = limit;
    uint8_t *n = realloc(*buf, ncap);
    if (!n)
        return false;
    *buf = n;
    *cap = ncap;
    return true;
}

/* ---- info ---- */

static void emit_info(tlsdec_t *t, bool force)
{
    if (t->info_sent || !t->sh_seen)
        return;
    if (!force && (!t->ch_seen || (t->version == TLSDEC_VERSION_TLS13 && !t->ee_seen)))
        return;
    t->info_sent = true;
    if (!t->cb.on_handshake_info)
        return;
    tlsdec_info_t info = {
        .version = t->version,
        .cipher_suite = t->suite_id,
        .cipher_name = t->suite ? t->suite->name : NULL,
        .sni = t->sni[0] ? t->sni : NULL,
        .alpn = t->alpn[0] ? t->alpn : NULL,
        .alpn_offered = t->alpn_offered_len ? t->alpn_offered : NULL,
        .alpn_offered_len = t->alpn_offered_len,
    };
    t->cb.on_handshake_info(t->opaque, &info);
}

static void deliver(tlsdec_t *t, int dir, int type, const uint8_t *p, size_t n)
{
    if (t->cb.on_plaintext)
        t->cb.on_plaintext(t->opaque, dir, type, p, n);
}

/* ---- hello parsing ---- */

struct rd {
    const uint8_t *p;
    size_t n;
    bool bad;
};

static const uint8_t *rd_bytes(struct rd *r, size_t k)
{
    if (r->bad || r->n < k) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += k;
    r->n -= k;
    return p;
}

static unsigned rd8(struct rd *r)
{
    const uint8_t *p = rd_bytes(r, 1);
    return p ? p[0] : 0;
}

static unsigned rd16(struct rd *r)
{
    const uint8_t *p = rd_bytes(r, 2);
    return p ? (unsigned)(p[0] << 8 | p[1]) : 0;
}

/* A reader over the next k bytes of r. */
static struct rd rd_sub(struct rd *r, size_t k)
{
    struct rd s = {rd_bytes(r, k), k, false};
    if (!s.p) {
        s.n = 0;
        s.bad = true;
    }
    return s;
}

/* Copies a name into a C string unless it is empty, too long or holds a NUL. */
static void set_name(char *dst, size_t cap, const uint8_t *p, size_t n)
{
    if (p && n > 0 && n < cap && !memchr(p, 0, n)) {
        memcpy(dst, p, n);
        dst[n] = 0;
    }
}

/* The ALPN extension of a ServerHello or EncryptedExtensions: exactly one name. */
static void parse_alpn_selected(tlsdec_t *t, struct rd *e)
{
    struct rd list = rd_sub(e, rd16(e));
    size_t n = rd8(&list);
    set_name(t->alpn, sizeof t->alpn, rd_bytes(&list, n), n);
}

static int parse_client_hello(tlsdec_t *t, const uint8_t *body, size_t len)
{
    struct rd r = {body, len, false};
    rd_bytes(&r, 2);
    const uint8_t *random = rd_bytes(&r, 32);
    rd_bytes(&r, rd8(&r));  /* session id */
    rd_bytes(&r, rd16(&r)); /* cipher suites */
    rd_bytes(&r, rd8(&r));  /* compression methods */
    struct rd exts = r.n ? rd_sub(&r, rd16(&r)) : r;
    if (r.bad)
        return tlsdec_fail(t, TLSDEC_DIR_CLIENT, "malformed ClientHello");
    if (t->ch_seen) {
        /* The second ClientHello after a HelloRetryRequest: same random. */
        if (memcmp(t->client_random, random, 32) != 0)
            return fail_conn(t, TLSDEC_DIR_CLIENT, "second ClientHello with another random");
        return R_OK;
    }
    char sni[sizeof t->sni] = "";
    uint8_t alpn[ALPN_LIST_MAX];
    size_t alpn_len = 0;
    bool early = false;
    while (exts.n > 0 && !exts.bad) {
        unsigned type = rd16(&exts);
        struct rd e = rd_sub(&exts, rd16(&exts));
        if (type == EXT_SERVER_NAME) {
            struct rd list = rd_sub(&e, rd16(&e));
            while (list.n > 0 && !list.bad && !sni[0]) {
                unsigned nt = rd8(&list);
                size_t n = rd16(&list);
                const uint8_t *name = rd_bytes(&list, n);
                if (nt == 0)
                    set_name(sni, sizeof sni, name, n);
            }
        } else if (type == EXT_ALPN) {
            struct rd list = rd_sub(&e, rd16(&e));
            while (list.n > 0 && !list.bad) {
                size_t n = rd8(&list);
                const uint8_t *name = rd_bytes(&list, n);
                if (!name || n == 0 || alpn_len + 1 + n > sizeof alpn)
                    break;
                alpn[alpn_len] = (uint8_t)n;
                memcpy(alpn + alpn_len + 1, name, n);
                alpn_len += 1 + n;
            }
        } else if (type == EXT_EARLY_DATA) {
            early = true;
        }
    }
    if (exts.bad)
        return tlsdec_fail(t, TLSDEC_DIR_CLIENT, "malformed ClientHello extensions");
    memcpy(t->client_random, random, 32);
    memcpy(t->sni, sni, sizeof sni);
    memcpy(t->alpn_offered, alpn, alpn_len);
    t->alpn_offered_len = alpn_len;
    t->early_offered = early;
    t->ch_seen = true;
    emit_info(t, false);
    return R_OK;
}

static int parse_server_hello(tlsdec_t *t, const uint8_t *body, size_t len)
{
    int dir = TLSDEC_DIR_SERVER;
    struct rd r = {body, len, false};
    unsigned version = rd16(&r);
    const uint8_t *random = rd_bytes(&r, 32);
    rd_bytes(&r, rd8(&r)); /* session id */
    unsigned suite = rd16(&r);
    rd8(&r); /* compression method */
    struct rd exts = r.n ? rd_sub(&r, rd16(&r)) : r;
    while (!r.bad && exts.n > 0 && !exts.bad) {
        unsigned type = rd16(&exts);
        struct rd e = rd_sub(&exts, rd16(&exts));
        if (type == EXT_SUPPORTED_VERSIONS)
            version = rd16(&e);
        else if (type == EXT_ALPN)
            parse_alpn_selected(t, &e);
    }
    if (r.bad || exts.bad)
        return tlsdec_fail(t, dir, "malformed ServerHello");
    if (memcmp(random, hrr_random, 32) == 0) {
        /* HelloRetryRequest: the real ServerHello follows the second ClientHello. */
        t->hrr_seen = true;
        return R_OK;
    }
    memcpy(t->server_random, random, 32);
    t->version = (uint16_t)version;
    t->suite_id = (uint16_t)suite;
    t->sh_seen = true;
    char msg[64];
    if (version != TLSDEC_VERSION_TLS12 && version != TLSDEC_VERSION_TLS13) {
        snprintf(msg, sizeof msg, "TLS version 0x%04x not supported", version);
        return fail_conn(t, dir, msg);
    }
    t->suite = tlsdec_keys_find_suite((uint16_t)suite, (uint16_t)version);
    if (!t->suite) {
        snprintf(msg, sizeof msg, "cipher suite 0x%04x not supported", suite);
        return fail_conn(t, dir, msg);
    }
    if (version == TLSDEC_VERSION_TLS13) {
        t->alpn[0] = 0; /* TLS 1.3 says it in EncryptedExtensions */
        t->d[TLSDEC_DIR_SERVER].phase = PH_HANDSHAKE;
        t->d[TLSDEC_DIR_CLIENT].phase = t->early_offered ? PH_EARLY : PH_HANDSHAKE;
        if (t->hrr_seen)
            t->early_accepted = 0;
    }
    emit_info(t, false);
    return R_OK;
}

static int parse_encrypted_extensions(tlsdec_t *t, const uint8_t *body, size_t len)
{
    struct rd r = {body, len, false};
    struct rd exts = rd_sub(&r, rd16(&r));
    while (exts.n > 0 && !exts.bad) {
        unsigned type = rd16(&exts);
        struct rd e = rd_sub(&exts, rd16(&exts));
        if (type == EXT_ALPN)
            parse_alpn_selected(t, &e);
        else if (type == EXT_EARLY_DATA)
            t->early_accepted = 1;
    }
    if (r.bad || exts.bad)
        return tlsdec_fail(t, TLSDEC_DIR_SERVER, "malformed EncryptedExtensions");
    if (t->early_accepted < 0)
        t->early_accepted = 0;
    t->ee_seen = true;
    emit_info(t, false);
    return R_OK;
}

/* ---- handshake messages ---- */

static bool hs_keep(unsigned type)
{
    return type == HS_CLIENT_HELLO || type == HS_SERVER_HELLO || type == HS_ENCRYPTED_EXTENSIONS ||
           type == HS_KEY_UPDATE;
}

/* One complete handshake message; body is NULL for those we don't keep. */
static int on_hs_msg(tlsdec_t *t, int dir, unsigned type, const uint8_t *body, size_t len,
                     bool encrypted)
{
    struct dir *d = &t->d[dir];
    bool tls13 = t->sh_seen && t->version == TLSDEC_VERSION_TLS13;
    bool client = dir == TLSDEC_DIR_CLIENT;
    switch (type) {
    case HS_CLIENT_HELLO:
        if (!client)
            break;
        if (encrypted)
            return fail_conn(t, dir, "TLS renegotiation not supported");
        return parse_client_hello(t, body, len);
    case HS_SERVER_HELLO:
        if (client)
            break;
        if (encrypted)
            return fail_conn(t, dir, "TLS renegotiation not supported");
        if (t->sh_seen)
            return tlsdec_fail(t, dir, "unexpected second ServerHello");
        return parse_server_hello(t, body, len);
    case HS_HELLO_REQUEST:
        if (!client && encrypted && !tls13)
            return fail_conn(t, dir, "TLS renegotiation not supported");
        break;
    case HS_ENCRYPTED_EXTENSIONS:
        if (!client && encrypted && tls13 && !t->ee_seen)
            return parse_encrypted_extensions(t, body, len);
        break;
    case HS_END_OF_EARLY_DATA:
        if (client && d->phase == PH_EARLY)
            d->pending = PEND_HANDSHAKE;
        break;
    case HS_FINISHED:
        if (tls13 && d->phase == PH_HANDSHAKE)
            d->pending = PEND_APP;
        break;
    case HS_KEY_UPDATE:
        if (tls13 && d->phase == PH_APP) {
            if (len != 1 || body[0] > 1)
                return tlsdec_fail(t, dir, "malformed KeyUpdate");
            d->pending = PEND_UPDATE;
        }
        break;
    }
    return R_OK;
}

/* Reassembles handshake messages across records. */
static int hs_feed(tlsdec_t *t, int dir, const uint8_t *p, size_t n, bool encrypted)
{
    struct dir *d = &t->d[dir];
    while (n > 0) {
        if (d->hs_hdr_len < 4) {
            size_t take = 4 - d->hs_hdr_len < n ? 4 - d->hs_hdr_len : n;
            memcpy(d->hs_hdr + d->hs_hdr_len, p, take);
            d->hs_hdr_len += take;
            p += take;
            n -= take;
            if (d->hs_hdr_len < 4)
                break;
            d->hs_len = (uint32_t)d->hs_hdr[1] << 16 | (uint32_t)d->hs_hdr[2] << 8 | d->hs_hdr[3];
            d->hs_got = 0;
            if (hs_keep(d->hs_hdr[0])) {
                if (d->hs_len > HS_MAX)
                    return tlsdec_fail(t, dir, "handshake message of %u bytes too long", d->hs_len);
                if (!grow(&d->hs, &d->hs_cap, d->hs_len, HS_MAX))
                    return fail_nomem(t, dir);
            }
        }
        bool keep = hs_keep(d->hs_hdr[0]);
        size_t take = d->hs_len - d->hs_got < n ? d->hs_len - d->hs_got : n;
        if (keep && take)
            memcpy(d->hs + d->hs_got, p, take);
        d->hs_got += (uint32_t)take;
        p += take;
        n -= take;
        if (d->hs_got == d->hs_len) {
            d->hs_hdr_len = 0;
            int r = on_hs_msg(t, dir, d->hs_hdr[0], keep ? d->hs : NULL, d->hs_len, encrypted);
            if (r != R_OK)
                return r;
        }
    }
    return R_OK;
}

/* ---- records ---- */

static int on_inner(tlsdec_t *t, int dir, int type, const uint8_t *p, size_t n)
{
    switch (type) {
    case CT_HANDSHAKE:
        return hs_feed(t, dir, p, n, true);
    case CT_ALERT:
    case CT_APPLICATION_DATA:
        deliver(t, dir, type, p, n);
        return R_OK;
    case CT_HEARTBEAT:
        return R_OK;
    default:
        return tlsdec_fail(t, dir, "malformed record (inner content type %d)", type);
    }
}

/*
 * 0-RTT: the client's records are early data (early keys) until
 * EndOfEarlyData, or, when the server rejected them, the first record that
 * opens with the handshake keys. Records that open with neither are early
 * data the server skipped too.
 */
static int record13_early(tlsdec_t *t, int dir, const uint8_t *hdr, const uint8_t *body, size_t len)
{
    struct dir *d = &t->d[dir];
    size_t n;
    int type, r;
    if (t->early_accepted != 0 && !d->cur.ready && !d->cur.missing) {
        r = tlsdec_keys_install13(t, dir, &d->cur, PH_EARLY, true);
        if (r == R_FAIL)
            return r;
        d->cur.missing = r == R_HOLD;
    }
    if (t->early_accepted != 0 && d->cur.ready) {
        r = tlsdec_keys_open13(&d->cur, hdr, body, len, d->plain, &n, &type);
        if (r == DEC_OK)
            return on_inner(t, dir, type, d->plain, n);
        if (r != DEC_BADTAG)
            return tlsdec_keys_open_failed(t, dir, r);
    }
    if (!d->alt.ready && (r = tlsdec_keys_install13(t, dir, &d->alt, PH_HANDSHAKE, false)) != R_OK)
        return r;
    r = tlsdec_keys_open13(&d->alt, hdr, body, len, d->plain, &n, &type);
    if (r == DEC_BADTAG)
        return R_OK;
    if (r != DEC_OK)
        return tlsdec_keys_open_failed(t, dir, r);
    struct keys k = d->cur;
    d->cur = d->alt;
    d->alt = k;
    d->phase = PH_HANDSHAKE;
    return on_inner(t, dir, type, d->plain, n);
}

static int record13(tlsdec_t *t, int dir, const uint8_t *hdr, const uint8_t *body, size_t len)
{
    struct dir *d = &t->d[dir];
    size_t n;
    int type, r;
    if (d->phase == PH_PLAIN)
        return tlsdec_fail(t, dir, "encrypted record before the keys are known");
    if (d->phase == PH_EARLY) {
        r = record13_early(t, dir, hdr, body, len);
    } else {
        if (!d->cur.ready && (r = tlsdec_keys_install13(t, dir, &d->cur, d->phase, false)) != R_OK)
            return r;
        r = tlsdec_keys_open13(&d->cur, hdr, body, len, d->plain, &n, &type);
        if (r != DEC_OK)
            return tlsdec_keys_open_failed(t, dir, r);
        r = on_inner(t, dir, type, d->plain, n);
    }
    return r == R_OK ? tlsdec_keys_apply_pending(t, dir) : r;
}

static int record12(tlsdec_t *t, int dir, const uint8_t *hdr, const uint8_t *body, size_t len)
{
    struct dir *d = &t->d[dir];
    int type = hdr[0];
    if (type == CT_CHANGE_CIPHER_SPEC) {
        if (d->phase == PH_TLS12)
            return fail_conn(t, dir, "TLS renegotiation not supported");
        d->phase = PH_TLS12;
        d->cur.ready = false;
        return R_OK;
    }
    if (d->phase == PH_PLAIN) {
        if (type == CT_HANDSHAKE)
            return hs_feed(t, dir, body, len, false);
        if (type == CT_ALERT)
            deliver(t, dir, type, body, len);
        else if (type == CT_APPLICATION_DATA)
            return tlsdec_fail(t, dir, "application data before ChangeCipherSpec");
        return R_OK;
    }
    int r;
    if (!d->cur.ready && (r = tlsdec_keys_install12(t, dir)) != R_OK)
        return r;
    size_t n;
    r = tlsdec_keys_open12(t, &d->cur, hdr, body, len, d->plain, &n);
    if (r != DEC_OK)
        return tlsdec_keys_open_failed(t, dir, r);
    return on_inner(t, dir, type, d->plain, n);
}

/*
 * Whether a direction's records that may need keys must wait for the other
 * direction: for the hellos, and 0-RTT data for the EncryptedExtensions that
 * say whether the server took it (data it refused is not delivered).
 */
static bool must_wait(const tlsdec_t *t, int dir)
{
    if (!t->ch_seen || !t->sh_seen)
        return true;
    return dir == TLSDEC_DIR_CLIENT && t->d[dir].phase == PH_EARLY && t->early_accepted < 0 &&
           !t->d[TLSDEC_DIR_SERVER].failed;
}

static int on_record(tlsdec_t *t, int dir, const uint8_t *hdr, const uint8_t *body, size_t len)
{
    struct dir *d = &t->d[dir];
    int type = hdr[0];
    bool client = dir == TLSDEC_DIR_CLIENT;
    if (type != CT_HANDSHAKE && type != CT_ALERT) {
        /* Records that may need keys wait for both hellos. */
        if (client && !t->ch_seen)
            return tlsdec_fail(t, dir, "no ClientHello seen (capture started mid-connection?)");
        if (!client && !t->sh_seen) {
            if (type == CT_CHANGE_CIPHER_SPEC && t->hrr_seen)
                return R_OK;
            return tlsdec_fail(t, dir, "no ServerHello seen (capture started mid-connection?)");
        }
        if (must_wait(t, dir))
            return R_HOLD;
    }
    if (!t->sh_seen || (t->version == TLSDEC_VERSION_TLS13 && type != CT_APPLICATION_DATA)) {
        /* Hellos, unencrypted alerts, and TLS 1.3's compatibility ChangeCipherSpec. */
        if (type == CT_HANDSHAKE)
            return hs_feed(t, dir, body, len, false);
        if (type == CT_ALERT)
            deliver(t, dir, type, body, len);
        return R_OK;
    }
    if (!d->plain && !(d->plain = malloc(TLSDEC_RECORD_MAX)))
        return fail_nomem(t, dir);
    if (t->version == TLSDEC_VERSION_TLS13)
        return record13(t, dir, hdr, body, len);
    return record12(t, dir, hdr, body, len);
}

static size_t record_len(const uint8_t *h)
{
    return (size_t)h[3] << 8 | h[4];
}

/* Checks a record header; false after reporting. */
static bool header_ok(tlsdec_t *t, int dir, const uint8_t *h)
{
    if (h[0] < CT_CHANGE_CIPHER_SPEC || h[0] > CT_HEARTBEAT || h[1] != 3) {
        tlsdec_fail(t, dir, "malformed record (not TLS?)");
        return false;
    }
    if (record_len(h) > TLSDEC_RECORD_MAX) {
        tlsdec_fail(t, dir, "malformed record (%zu bytes, more than TLS allows)", record_len(h));
        return false;
    }
    return true;
}

/* Processes the whole records at the start of p; returns the bytes they took. */
static size_t consume(tlsdec_t *t, int dir, const uint8_t *p, size_t n)
{
    struct dir *d = &t->d[dir];
    size_t off = 0;
    while (!d->failed && !d->held && n - off >= HDR_LEN) {
        const uint8_t *h = p + off;
        if (!header_ok(t, dir, h))
            break;
        size_t rl = record_len(h);
        if (n - off < HDR_LEN + rl)
            break;
        if (on_record(t, dir, h, h + HDR_LEN, rl) == R_HOLD) {
            d->held = true;
            break;
        }
        off += HDR_LEN + rl;
    }
    return off;
}

static bool buf_append(tlsdec_t *t, int dir, const uint8_t *p, size_t n)
{
    struct dir *d = &t->d[dir];
    if (!grow(&d->buf, &d->cap, d->len + n, TLSDEC_HOLD_MAX)) {
        fail_nomem(t, dir);
        return false;
    }
    memcpy(d->buf + d->len, p, n);
    d->len += n;
    return true;
}

static void dir_feed(tlsdec_t *t, int dir, const uint8_t *p, size_t n)
{
    struct dir *d = &t->d[dir];
    while (n > 0 && !d->failed) {
        if (!d->held && d->len == 0) {
            /* Whole records are read where they are; only a tail is copied. */
            size_t c = consume(t, dir, p, n);
            p += c;
            n -= c;
            if (d->failed || n == 0)
                return;
        }
        if (d->held) {
            if (d->len + n > TLSDEC_HOLD_MAX) {
                tlsdec_fail(t, dir, "more than %d bytes while waiting for the other direction",
                            TLSDEC_HOLD_MAX);
                return;
            }
            buf_append(t, dir, p, n);
            return;
        }
        /* Complete the buffered record, then process it. */
        size_t need = d->len < HDR_LEN ? HDR_LEN - d->len : HDR_LEN + record_len(d->buf) - d->len;
        size_t take = need < n ? need : n;
        if (!buf_append(t, dir, p, take))
            return;
        p += take;
        n -= take;
        if (d->len < HDR_LEN)
            continue;
        if (!header_ok(t, dir, d->buf))
            return;
        if (d->len == HDR_LEN + record_len(d->buf) && consume(t, dir, d->buf, d->len) == d->len)
            d->len = 0;
    }
}

/* Processes what a direction held once the other direction's hello is known. */
static void dir_resume(tlsdec_t *t, int dir)
{
    struct dir *d = &t->d[dir];
    d->held = false;
    size_t c = consume(t, dir, d->buf, d->len);
    if (d->failed)
        return;
    memmove(d->buf, d->buf + c, d->len - c);
    d->len -= c;
}

tlsdec_t *tlsdec_new(const keylog_t *keylog, const tlsdec_callbacks_t *cb, void *opaque)
{
    tlsdec_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->kl = keylog;
    if (cb)
        t->cb = *cb;
    t->opaque = opaque;
    t->early_accepted = -1;
    return t;
}

void tlsdec_free(tlsdec_t *t)
{
    if (!t)
        return;
    for (int i = 0; i < 2; i++) {
        struct dir *d = &t->d[i];
        free(d->buf);
        free(d->plain);
        free(d->hs);
        EVP_CIPHER_CTX_free(d->cur.ctx);
        EVP_CIPHER_CTX_free(d->alt.ctx);
    }
    EVP_KDF_free(t->hkdf);
    EVP_KDF_free(t->prf);
    OPENSSL_cleanse(t, sizeof *t);
    free(t);
}

int tlsdec_feed(tlsdec_t *t, int dir, const void *data, size_t len)
{
    if (!t || (dir != TLSDEC_DIR_CLIENT && dir != TLSDEC_DIR_SERVER) || (!data && len))
        return -EINVAL;
    dir_feed(t, dir, data, len);
    int other = 1 - dir;
    if (t->d[other].held && !must_wait(t, other))
        dir_resume(t, other);
    if (t->nomem) {
        t->nomem = false;
        return -ENOMEM;
    }
    return 0;
}

/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "grow.h"
#include "log.h"
#include "paths.h"
#include "tls.h"

/*
 * Only suites that formats/tlsdec.c decrypts are offered, on both sides, so
 * every recording can be read back by mitmrec itself (-r, mitmreplay): TLS 1.3
 * AES-GCM and ChaCha20-Poly1305, TLS 1.2 AEAD suites. TLS 1.0 and 1.1 have
 * none, so they are not offered at all.
 */
#define TLS13_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS12_SUITES "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:RSA+AESGCM:!aNULL"

static int decryptable_only(SSL_CTX *ctx)
{
    return SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1 &&
           SSL_CTX_set_ciphersuites(ctx, TLS13_SUITES) == 1 &&
           SSL_CTX_set_cipher_list(ctx, TLS12_SUITES) == 1;
}

void tls_set_hooks(SSL *ssl, tls_hooks_t *hooks)
{
    SSL_set_app_data(ssl, hooks);
}

/* The keylog lines of a handshake step run away from the loop (tls_keylog_defer). */
static __thread tls_keylog_buf_t *deferred;

void tls_keylog_defer(tls_keylog_buf_t *b)
{
    deferred = b;
}

static void keylog_cb(const SSL *ssl, const char *line)
{
    tls_hooks_t *h = SSL_get_app_data(ssl);
    size_t n;

    if (!h || !h->keylog)
        return;
    if (!deferred) {
        h->keylog(h->opaque, line);
        return;
    }
    /* Kept with their NUL, one after the other. */
    n = strlen(line) + 1;
    if (mr_grow(&deferred->data, &deferred->cap, deferred->len + n, 512, 0) < 0) {
        deferred->lost = 1;
        return;
    }
    memcpy(deferred->data + deferred->len, line, n);
    deferred->len += n;
}

int tls_keylog_replay(SSL *ssl, tls_keylog_buf_t *b)
{
    tls_hooks_t *h = SSL_get_app_data(ssl);
    int lost = b->lost;

    for (size_t i = 0; h && h->keylog && i < b->len; i += strlen(b->data + i) + 1)
        h->keylog(h->opaque, b->data + i);
    b->len = 0;
    b->lost = 0;
    return lost ? -ENOMEM : 0;
}

void tls_keylog_buf_free(tls_keylog_buf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

/*
 * Upstream verification results, kept for VCACHE_TTL seconds: the same origin
 * sends the same chain on every connection, and building and checking it
 * (X509_verify_cert) is a good part of a handshake's CPU with OpenSSL 3. The
 * key is a SHA-256 over each certificate's own SHA-256 and the name checked,
 * so only an identical chain for the same name is taken as verified; the leaf
 * must also still be within its validity. Only successes are kept: a failure
 * is checked again, and reported with its reason. The handshake itself (the
 * server's signature with the leaf's key) is checked by OpenSSL every time.
 * Handshakes may run on worker threads, hence the lock.
 */
#define VCACHE_SLOTS 256
#define VCACHE_TTL 300

typedef struct vcache_slot {
    unsigned char key[32];
    time_t expires;
} vcache_slot_t;

static vcache_slot_t vcache[VCACHE_SLOTS];
static pthread_mutex_t vcache_lock = PTHREAD_MUTEX_INITIALIZER;

static time_t mono_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

/* The cache key of what xs is about to verify; 0 or -1. */
static int vcache_key(X509_STORE_CTX *xs, unsigned char key[32])
{
    X509 *leaf = X509_STORE_CTX_get0_cert(xs);
    STACK_OF(X509) *chain = X509_STORE_CTX_get0_untrusted(xs);
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(xs);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dlen, klen;
    const char *host = X509_VERIFY_PARAM_get0_host(param, 0);
    char *ip = X509_VERIFY_PARAM_get1_ip_asc(param);
    int ok = md && leaf && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;

    for (int i = -1; ok && i < (chain ? sk_X509_num(chain) : 0); i++) {
        X509 *x = i < 0 ? leaf : sk_X509_value(chain, i);
        ok = X509_digest(x, EVP_sha256(), d, &dlen) == 1 && EVP_DigestUpdate(md, d, dlen) == 1;
    }
    /* The names, each with its NUL, so "a" + "bc" is not "ab" + "c". */
    ok = ok && EVP_DigestUpdate(md, host ? host : "", host ? strlen(host) + 1 : 1) == 1 &&
         EVP_DigestUpdate(md, ip ? ip : "", ip ? strlen(ip) + 1 : 1) == 1 &&
         EVP_DigestFinal_ex(md, key, &klen) == 1 && klen == 32;
    OPENSSL_free(ip);
    EVP_MD_CTX_free(md);
    return ok ? 0 : -1;
}

static int verify_cb(X509_STORE_CTX *xs, void *arg)
{
    unsigned char key[32];
    X509 *leaf = X509_STORE_CTX_get0_cert(xs);
    int have = vcache_key(xs, key) == 0, rc;
    vcache_slot_t *slot = &vcache[have ? key[0] % VCACHE_SLOTS : 0];
    time_t now = mono_sec();

    (void)arg;
    if (have && leaf && X509_cmp_current_time(X509_get0_notBefore(leaf)) < 0 &&
        X509_cmp_current_time(X509_get0_notAfter(leaf)) > 0) {
        int hit;

        pthread_mutex_lock(&vcache_lock);
        hit = slot->expires > now && memcmp(slot->key, key, 32) == 0;
        pthread_mutex_unlock(&vcache_lock);
        if (hit)
            return 1;
    }
    ERR_clear_error();
    rc = X509_verify_cert(xs);
    if (rc == 1 && have) {
        pthread_mutex_lock(&vcache_lock);
        memcpy(slot->key, key, 32);
        slot->expires = now + VCACHE_TTL;
        pthread_mutex_unlock(&vcache_lock);
    }
    return rc;
}

/*
 * Upstream sessions. A later flow to the same origin resumes the session of an
 * earlier one: no certificate to send, parse and check again (parsing the chain
 * was the largest single cost of a new flow under OpenSSL 3.0), and the origin
 * signs nothing. Each resumed handshake still logs all its own secrets, so the
 * recording decrypts flow by flow as before. A session is kept only after its
 * chain verified, under a key naming the origin and the name checked; TLS 1.3
 * tickets are used once (RFC 8446, C.4), TLS 1.2 sessions until they expire.
 */
#define SCACHE_SLOTS 64
#define SCACHE_PER_KEY 16 /* flows start in bursts; each TLS 1.3 ticket is used once */
#define SCACHE_BACKOFF 60 /* seconds without offering sessions to an origin that refused one */

typedef struct scache_slot {
    char *key;
    SSL_SESSION *sess[SCACHE_PER_KEY]; /* oldest first */
    int n;
    time_t refused_until; /* mono_sec() */
} scache_slot_t;

/* An SSL's ex_data: the key its sessions go under, and whether it offered one. */
typedef struct scache_ref {
    int offered;
    char key[];
} scache_ref_t;

static scache_slot_t scache[SCACHE_SLOTS];
static pthread_mutex_t scache_lock = PTHREAD_MUTEX_INITIALIZER;
static int scache_idx = -1; /* the SSL's ex_data index (a scache_ref_t, malloc'd) */

static void scache_key_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                            void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    free(ptr);
}

static scache_slot_t *scache_slot(const char *key)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *k = key; *k; k++)
        h = (h ^ (unsigned char)*k) * 16777619u;
    return &scache[h % SCACHE_SLOTS];
}

static void scache_slot_clear(scache_slot_t *sl)
{
    for (int i = 0; i < sl->n; i++)
        SSL_SESSION_free(sl->sess[i]);
    sl->n = 0;
    sl->refused_until = 0;
    free(sl->key);
    sl->key = NULL;
}

/* Under scache_lock: 1 when sl is key's and key's origin refused a session lately. */
static int scache_refused(const scache_slot_t *sl, const char *key)
{
    return sl->key && strcmp(sl->key, key) == 0 && sl->refused_until > mono_sec();
}

static int session_fresh(SSL_SESSION *s)
{
    return SSL_SESSION_is_resumable(s) &&
           (long)time(NULL) < SSL_SESSION_get_time(s) + SSL_SESSION_get_timeout(s);
}

/* OpenSSL's new-session callback: keeps sess (returning 1) if its SSL has a key. */
static int scache_add(SSL *ssl, SSL_SESSION *sess)
{
    const scache_ref_t *ref = scache_idx >= 0 ? SSL_get_ex_data(ssl, scache_idx) : NULL;
    const char *key = ref ? ref->key : NULL;
    scache_slot_t *sl;

    if (!key ||
        (SSL_get_verify_mode(ssl) != SSL_VERIFY_NONE && SSL_get_verify_result(ssl) != X509_V_OK))
        return 0;
    sl = scache_slot(key);
    pthread_mutex_lock(&scache_lock);
    if (scache_refused(sl, key)) {
        pthread_mutex_unlock(&scache_lock);
        return 0;
    }
    if (!sl->key || strcmp(sl->key, key) != 0) {
        char *k = strdup(key);
        if (!k) {
            pthread_mutex_unlock(&scache_lock);
            return 0;
        }
        scache_slot_clear(sl);
        sl->key = k;
    }
    if (sl->n == SCACHE_PER_KEY) {
        SSL_SESSION_free(sl->sess[0]);
        memmove(sl->sess, sl->sess + 1, sizeof(sl->sess[0]) * (SCACHE_PER_KEY - 1));
        sl->n--;
    }
    sl->sess[sl->n++] = sess;
    pthread_mutex_unlock(&scache_lock);
    return 1;
}

int tls_client_session_use(SSL *ssl, const char *key)
{
    scache_slot_t *sl = scache_slot(key);
    SSL_SESSION *s = NULL;
    size_t klen = strlen(key);
    scache_ref_t *ref;

    if (scache_idx < 0)
        return 0;
    pthread_mutex_lock(&scache_lock);
    if (scache_refused(sl, key)) {
        /* No key on the SSL: its sessions are not kept either. */
        pthread_mutex_unlock(&scache_lock);
        return 0;
    }
    pthread_mutex_unlock(&scache_lock);
    if (!(ref = malloc(sizeof(*ref) + klen + 1)))
        return 0;
    ref->offered = 0;
    memcpy(ref->key, key, klen + 1);
    if (!SSL_set_ex_data(ssl, scache_idx, ref)) {
        free(ref);
        return 0;
    }
    pthread_mutex_lock(&scache_lock);
    if (sl->key && strcmp(sl->key, key) == 0) {
        while (sl->n && !s) {
            SSL_SESSION *c = sl->sess[--sl->n]; /* the newest */
            if (!session_fresh(c)) {
                SSL_SESSION_free(c);
                continue;
            }
            if (SSL_SESSION_get_protocol_version(c) == TLS1_3_VERSION) {
                s = c; /* taken: used once */
            } else {
                SSL_SESSION_up_ref(c);
                s = c;
                sl->n++; /* kept */
            }
        }
    }
    pthread_mutex_unlock(&scache_lock);
    if (!s)
        return 0;
    if (SSL_set_session(ssl, s) != 1) {
        ERR_clear_error();
        SSL_SESSION_free(s);
        return 0;
    }
    SSL_SESSION_free(s); /* the SSL holds its own reference */
    ref->offered = 1;
    return 1;
}

void tls_client_session_done(SSL *ssl)
{
    scache_ref_t *ref = scache_idx >= 0 ? SSL_get_ex_data(ssl, scache_idx) : NULL;
    scache_slot_t *sl;

    if (!ref || !ref->offered || SSL_session_reused(ssl))
        return;
    /* A server without resumption (or that lost its ticket keys) would make every
       offer a wasted PSK binder and every ticket kept a wasted copy: stop for a while. */
    sl = scache_slot(ref->key);
    pthread_mutex_lock(&scache_lock);
    if (sl->key && strcmp(sl->key, ref->key) == 0) {
        for (int i = 0; i < sl->n; i++)
            SSL_SESSION_free(sl->sess[i]);
        sl->n = 0;
        sl->refused_until = mono_sec() + SCACHE_BACKOFF;
    }
    pthread_mutex_unlock(&scache_lock);
}

void tls_client_sessions_free(void)
{
    pthread_mutex_lock(&scache_lock);
    for (int i = 0; i < SCACHE_SLOTS; i++)
        scache_slot_clear(&scache[i]);
    pthread_mutex_unlock(&scache_lock);
}

static int client_hello_cb(SSL *ssl, int *al, void *arg)
{
    tls_hooks_t *h = SSL_get_app_data(ssl);
    if (!h || !h->client_hello)
        return SSL_CLIENT_HELLO_SUCCESS;
    return h->client_hello(h->opaque, ssl, al);
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    tls_hooks_t *h = SSL_get_app_data(ssl);
    if (!h || !h->alpn_select)
        return SSL_TLSEXT_ERR_NOACK;
    return h->alpn_select(h->opaque, out, outlen, in, inlen);
}

/* A context of either side with the suites and the keylog hook; 0 or -errno with err. */
static int ctx_new(const SSL_METHOD *method, SSL_CTX **out, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(method);
    char buf[256];

    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context: %s", log_ssl_errors(buf, sizeof(buf)));
        return -ENOMEM;
    }
    if (!decryptable_only(ctx)) {
        snprintf(err, errlen, "cannot set the TLS suites: %s", log_ssl_errors(buf, sizeof(buf)));
        SSL_CTX_free(ctx);
        return -EINVAL;
    }
    SSL_CTX_set_keylog_callback(ctx, keylog_cb);
    *out = ctx;
    return 0;
}

void tls_ctx_keylog_off(SSL_CTX *ctx)
{
    SSL_CTX_set_keylog_callback(ctx, NULL);
}

int tls_server_ctx_new(SSL_CTX **out, char *err, size_t errlen)
{
    SSL_CTX *ctx;
    int rc = ctx_new(TLS_server_method(), &ctx, err, errlen);

    if (rc < 0)
        return rc;
    SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, NULL);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
    /* Clients get no tickets: every client handshake is a full one, so each flow's
       recording shows the certificate its client was given. Offering TLS 1.3 tickets
       measured no faster (wrk -c10, new connections): the key exchange, the costly part
       on this side, happens on resumption too. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_num_tickets(ctx, 0);
    /* The forged leaf goes alone (clients trust the mitmrec CA itself); without
       NO_AUTO_CHAIN, OpenSSL would try to build a chain for it from the empty
       store on every handshake, a whole X509_verify_cert each time. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);
    *out = ctx;
    return 0;
}

/* Whether one of the directories in list (separated by ':') holds an OpenSSL hash link
   (8 hex digits, '.', a number), as c_rehash and update-ca-certificates write them. */
static int has_hash_links(const char *list)
{
    char path[4096];
    const char *p = list;

    while (*p) {
        size_t n = strcspn(p, ":");
        DIR *d;

        if (n > 0 && n < sizeof(path)) {
            memcpy(path, p, n);
            path[n] = '\0';
            if ((d = opendir(path))) {
                struct dirent *e;
                int found = 0;

                while (!found && (e = readdir(d))) {
                    const char *nm = e->d_name;
                    size_t i = 0;

                    while (i < 8 && isxdigit((unsigned char)nm[i]))
                        i++;
                    found = i == 8 && nm[8] == '.' && isdigit((unsigned char)nm[9]);
                }
                closedir(d);
                if (found)
                    return 1;
            }
        }
        p += n;
        if (*p == ':')
            p++;
    }
    return 0;
}

/*
 * The system's trust store. OpenSSL's default paths load the whole bundle file
 * (/usr/lib/ssl/cert.pem, about 140 certificates: 235 million instructions
 * under OpenSSL 3.0's decoders, some 50 ms at every start) and add the hashed
 * directory, which holds the same certificates on Debian (update-ca-certificates
 * writes both). The directory alone is read per issuer, when a chain needs it,
 * and what it gives stays in the store. A bundle named by SSL_CERT_FILE other
 * than the system's own, or a directory without hash links, is loaded the
 * default way.
 */
static void load_system_trust(SSL_CTX *ctx)
{
    const char *dir = getenv(X509_get_default_cert_dir_env());
    const char *file = getenv(X509_get_default_cert_file_env());

    if (!dir || !*dir)
        dir = X509_get_default_cert_dir();
    if ((!file || !*file || paths_same_file(file, X509_get_default_cert_file())) &&
        has_hash_links(dir) && SSL_CTX_load_verify_dir(ctx, dir))
        return;
    ERR_clear_error();
    if (!SSL_CTX_set_default_verify_paths(ctx))
        ERR_clear_error();
}

int tls_client_ctx_new(const char *const *cacerts, size_t ncacerts, int insecure, SSL_CTX **out,
                       char *err, size_t errlen)
{
    SSL_CTX *ctx;
    char buf[256];
    int rc = ctx_new(TLS_client_method(), &ctx, err, errlen);

    if (rc < 0)
        return rc;
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (scache_idx < 0)
        scache_idx = SSL_get_ex_new_index(0, "mitmrec session key", NULL, NULL, scache_key_free);
    /* Sessions are kept only by tls_client_session_use's cache. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, scache_add);
    load_system_trust(ctx);
    for (size_t i = 0; i < ncacerts; i++) {
        /* The system's reason when the file cannot be read (OpenSSL's would be "system lib"),
           OpenSSL's when what is in it is no certificate. */
        struct stat st;
        int e = 0;

        if (stat(cacerts[i], &st) < 0 || access(cacerts[i], R_OK) < 0)
            e = errno;
        else if (S_ISDIR(st.st_mode))
            e = EISDIR;
        if (e || !SSL_CTX_load_verify_locations(ctx, cacerts[i], NULL)) {
            snprintf(err, errlen, "cannot load --cacert %s: %s", cacerts[i],
                     e ? strerror(e) : log_ssl_errors(buf, sizeof(buf)));
            SSL_CTX_free(ctx);
            return -EINVAL;
        }
    }
    SSL_CTX_set_verify(ctx, insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    if (!insecure)
        SSL_CTX_set_cert_verify_callback(ctx, verify_cb, NULL);
    *out = ctx;
    return 0;
}

void tls_client_hello_info(SSL *ssl, char *sni, size_t snilen, const unsigned char **alpn,
                           size_t *alpn_len)
{
    const unsigned char *p;
    size_t len;

    sni[0] = '\0';
    *alpn = NULL;
    *alpn_len = 0;
    /* server_name: list length (2), then entries of type (1), length (2), name. */
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) && len > 5) {
        size_t list = ((size_t)p[0] << 8) | p[1];
        const unsigned char *q = p + 2, *end = p + 2 + (list < len - 2 ? list : len - 2);
        while (q + 3 <= end) {
            size_t n = ((size_t)q[1] << 8) | q[2];
            if (q + 3 + n > end)
                break;
            if (q[0] == TLSEXT_NAMETYPE_host_name && n < snilen) {
                int ok = 1;
                for (size_t i = 0; i < n; i++)
                    if (q[3 + i] <= 0x20 || q[3 + i] >= 0x7f)
                        ok = 0;
                if (ok) {
                    memcpy(sni, q + 3, n);
                    sni[n] = '\0';
                }
                break;
            }
            q += 3 + n;
        }
    }
    /* ALPN: list length (2), then the protocol list in wire format. */
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &p,
                                  &len) &&
        len > 2) {
        size_t list = ((size_t)p[0] << 8) | p[1];
        if (list <= len - 2) {
            *alpn = p + 2;
            *alpn_len = list;
        }
    }
}

int tls_client_hello_bad_sni(SSL *ssl)
{
    const unsigned char *p;
    size_t len;
    char sni[256];
    const unsigned char *alpn;
    size_t alpn_len;

    if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len))
        return 0;
    tls_client_hello_info(ssl, sni, sizeof(sni), &alpn, &alpn_len);
    return sni[0] == '\0';
}

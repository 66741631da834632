/* SPDX-License-Identifier: MIT */
#include "ca.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#define CA_DIR ".mitmrec"
#define CA_KEY_FILE "mitmrec-ca.pem"
#define CA_CERT_PEM "mitmrec-ca-cert.pem"
#define CA_CERT_DER "mitmrec-ca-cert.cer"

/* A CA file is a few KiB; anything past this is not one, and is not read into memory. */
#define CA_FILE_MAX (1024 * 1024)
#define CA_VALID_DAYS 3652
/* Browsers reject leaves valid for more than 398 days; a year stays clear of that. */
#define LEAF_VALID_DAYS 365
/* RFC 5280's upper bound for a commonName; longer names go in subjectAltName only. */
#define CN_MAX 64
#define DNS_NAME_MAX 253

/*
 * The leaf cache holds at most CACHE_MAX certificates and drops the least recently used.
 * Twice as many buckets as entries keeps chains short. An entry is also re-forged once it
 * is CACHE_MAX_AGE old, so a long run never hands out a leaf near its notAfter.
 */
#define CACHE_MAX 4096
#define CACHE_BUCKETS 8192
#define CACHE_MAX_AGE (7 * 86400)

/* Extensions every leaf carries, made once per CA rather than once per leaf. */
enum { EXT_BC, EXT_KU, EXT_EKU, EXT_SKI, EXT_AKI, EXT_COUNT };

struct leaf {
    struct leaf *hnext;       /* bucket chain */
    struct leaf *prev, *next; /* use order, most recent first */
    uint64_t hash;
    time_t born;
    X509 *cert; /* one reference owned by the cache */
    unsigned char digest[32]; /* SHA-256 of the upstream DER, zeros without one */
    bool has_upstream;
    size_t namelen;
    char name[]; /* "" when the client sent no name */
};

/* Not thread-safe: one CA belongs to one event loop. */
struct ca {
    EVP_PKEY *key;
    X509 *cert;
    char *file;
    char *cert_path;
    EVP_PKEY *leaf_key;
    EVP_MD *sha256;
    const EVP_MD *sign_md; /* NULL for EdDSA keys, which take no separate digest */
    X509_EXTENSION *leaf_ext[EXT_COUNT];
    struct leaf **buckets;
    struct leaf *newest, *oldest;
    size_t count, hits;
    uint64_t seed;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/*
 * The one place where OpenSSL's error queue becomes a message and an errno. The oldest entry
 * is the root cause; the later ones only say how it travelled up, so they are dropped, and
 * the queue is left empty so no later call gets blamed for this failure.
 */
static int ossl_error(char *err, size_t errlen, const char *file, const char *what)
{
    unsigned long e = ERR_get_error();
    char reason[256] = "unknown OpenSSL error";
    int rc = -EIO;

    if (e) {
        if (ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE)
            rc = -ENOMEM;
        ERR_error_string_n(e, reason, sizeof reason);
    }
    ERR_clear_error();
    set_err(err, errlen, "%s: %s: %s", file ? file : "mitmrec CA", what ? what : "error", reason);
    return rc;
}

static int errno_error(int rc, char *err, size_t errlen, const char *file, const char *what)
{
    set_err(err, errlen, "%s: %s: %s", file, what, strerror(-rc));
    return rc;
}

static int path_join(char *buf, size_t len, const char *dir, const char *name)
{
    int n = snprintf(buf, len, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Reads a whole regular file of at most max bytes; *out gets a NUL after the data. */
static int read_fd(int fd, size_t max, char **out, size_t *outlen)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    if (st.st_size < 0 || (uintmax_t)st.st_size > max)
        return -EFBIG;

    size_t cap = (size_t)st.st_size, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf)
        return -ENOMEM;
    /* Stop at the size fstat saw: a file growing meanwhile is cut, never overruns. */
    while (len < cap) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int rc = -errno;
            free(buf);
            return rc;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
}

static void free_secret(char *buf, size_t len)
{
    if (buf) {
        OPENSSL_cleanse(buf, len);
        free(buf);
    }
}

/* Whether path holds exactly data; a missing or unreadable file just doesn't. */
static bool file_equals(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return false;
    char *buf = NULL;
    size_t n = 0;
    bool same = read_fd(fd, CA_FILE_MAX, &buf, &n) == 0 && n == len && memcmp(buf, data, n) == 0;
    close(fd);
    free(buf);
    return same;
}

/* Makes a rename or link in dir survive a crash; a failure here loses nothing but durability. */
static void sync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t len = slash ? (size_t)(slash - path) : 0;

    if (len == 0 || len >= sizeof dir)
        return;
    memcpy(dir, path, len);
    dir[len] = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/*
 * Writes a whole file so that a crash leaves either the old state or the complete new file:
 * the data goes to a new temporary file beside it (O_EXCL, final mode from the start, so the
 * key is never readable by others even for a moment), is flushed, and only then takes the
 * final name. exclusive: fail with -EEXIST instead of replacing a file that appeared
 * meanwhile, so two mitmrec starting at once can't end up with different CA keys.
 */
static int write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                        bool exclusive, char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    unsigned char rnd[6];
    int rc = 0;

    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return ossl_error(err, errlen, path, "cannot make a temporary name");
    int n = snprintf(tmp, sizeof tmp, "%s.tmp-%02x%02x%02x%02x%02x%02x", path, rnd[0], rnd[1],
                     rnd[2], rnd[3], rnd[4], rnd[5]);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return errno_error(-ENAMETOOLONG, err, errlen, path, "cannot create");

    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return errno_error(-errno, err, errlen, tmp, "cannot create");
    /* The umask may have taken bits away; the modes are part of the documented layout. */
    if (fchmod(fd, mode) < 0)
        rc = -errno;
    for (size_t off = 0; rc == 0 && off < len;) {
        ssize_t w = write(fd, (const char *)data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            rc = -errno;
        else
            off += (size_t)w;
    }
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc < 0) {
        unlink(tmp);
        return errno_error(rc, err, errlen, tmp, "cannot write");
    }

    if (!exclusive) {
        if (rename(tmp, path) < 0)
            rc = -errno;
    } else if (link(tmp, path) < 0 && (rc = -errno) != -EEXIST) {
        /* Some file systems (FAT, some FUSE) have no hard links: fall back to a rename, which
           can only race with another mitmrec creating the same CA in the same instant. */
        struct stat st;
        if (lstat(path, &st) == 0)
            rc = -EEXIST;
        else if (errno == ENOENT)
            rc = rename(tmp, path) < 0 ? -errno : 0;
    }
    unlink(tmp);
    if (rc == -EEXIST)
        return rc;
    if (rc < 0)
        return errno_error(rc, err, errlen, path, "cannot create");
    sync_dir_of(path);
    return 0;
}

/* Refuses to prompt for a passphrase (a proxy runs unattended) and notes that one was asked. */
static int no_passphrase(char *buf, int size, int rwflag, void *asked)
{
    *(bool *)asked = true;
    return -1;
}

/*
 * Loads the key and the certificate from one PEM file, in either order: each PEM reader
 * skips the blocks of other types. The file is checked on the descriptor it is read from,
 * so it can't be swapped between the check and the read.
 */
static int ca_load(ca_t *ca, const char *file, char *err, size_t errlen)
{
    /* O_NONBLOCK: a FIFO in the CA's place must fail below, not hang the start. */
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return errno_error(-errno, err, errlen, file, "cannot open the CA file");

    struct stat st;
    if (fstat(fd, &st) < 0) {
        int rc = -errno;
        close(fd);
        return errno_error(rc, err, errlen, file, "cannot open the CA file");
    }
    if (S_ISREG(st.st_mode) && (st.st_mode & (S_IRGRP | S_IROTH))) {
        close(fd);
        set_err(err, errlen,
                "%s: the CA private key is readable by group or others (mode %04o); "
                "run chmod 600 %s",
                file, (unsigned)(st.st_mode & 07777), file);
        return -EPERM;
    }

    char *buf = NULL;
    size_t len = 0;
    int rc = read_fd(fd, CA_FILE_MAX, &buf, &len);
    close(fd);
    if (rc == -EINVAL)
        set_err(err, errlen, "%s: not a regular file", file);
    else if (rc == -EFBIG)
        set_err(err, errlen, "%s: too large for a CA file (over %d bytes)", file, CA_FILE_MAX);
    else if (rc < 0)
        errno_error(rc, err, errlen, file, "cannot read the CA file");
    if (rc < 0)
        return rc;

    bool asked = false;
    BIO *kbio = NULL, *cbio = NULL; /* one reader each: both start at the top of the file */
    if (!memmem(buf, len, "PRIVATE KEY-----", 16)) {
        set_err(err, errlen, "%s: no private key in the file (expected a PEM key and certificate)",
                file);
        rc = -EINVAL;
    } else if (!memmem(buf, len, "CERTIFICATE-----", 16)) {
        set_err(err, errlen, "%s: no certificate in the file (expected a PEM key and certificate)",
                file);
        rc = -EINVAL;
    } else if (!(kbio = BIO_new_mem_buf(buf, (int)len)) ||
               !(cbio = BIO_new_mem_buf(buf, (int)len))) {
        rc = ossl_error(err, errlen, file, "cannot read the CA file");
    } else if (!(ca->key = PEM_read_bio_PrivateKey(kbio, NULL, no_passphrase, &asked))) {
        if (asked) {
            ERR_clear_error();
            set_err(err, errlen, "%s: the private key is encrypted; mitmrec needs it unencrypted",
                    file);
            rc = -EINVAL;
        } else {
            rc = ossl_error(err, errlen, file, "cannot parse the private key");
        }
    } else if (!(ca->cert = PEM_read_bio_X509(cbio, NULL, no_passphrase, &asked))) {
        rc = ossl_error(err, errlen, file, "cannot parse the certificate");
    } else if (X509_check_private_key(ca->cert, ca->key) != 1) {
        ERR_clear_error();
        set_err(err, errlen, "%s: the private key does not match the certificate", file);
        rc = -EINVAL;
    } else if (X509_check_ca(ca->cert) == 0) {
        set_err(err, errlen, "%s: the certificate is not a CA certificate", file);
        rc = -EINVAL;
    }
    BIO_free(kbio);
    BIO_free(cbio);
    free_secret(buf, len);
    /* The decoders may leave entries for the formats they tried; a stale entry would later
       be blamed on an unrelated TLS call. */
    ERR_clear_error();
    if (rc < 0) {
        EVP_PKEY_free(ca->key);
        X509_free(ca->cert);
        ca->key = NULL;
        ca->cert = NULL;
    }
    return rc;
}

static int set_random_serial(X509 *x)
{
    BIGNUM *bn = BN_new();
    /* 128 random bits with the top one set: never zero, always the same length. */
    int ok = bn && BN_rand(bn, 128, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) &&
             BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    return ok ? 0 : -1;
}

static int add_conf_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int ok = ext && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

/* Makes a new self-signed CA into ca->key and ca->cert. */
static int ca_generate(ca_t *ca, const char *file, char *err, size_t errlen)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    X509V3_CTX ctx;
    bool ok = key && x && name && X509_set_version(x, X509_VERSION_3) &&
              set_random_serial(x) == 0 &&
              X509_NAME_add_entry_by_NID(name, NID_organizationName, MBSTRING_ASC,
                                         (const unsigned char *)"mitmrec", -1, -1, 0) &&
              X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_ASC,
                                         (const unsigned char *)"mitmrec CA", -1, -1, 0) &&
              X509_set_subject_name(x, name) && X509_set_issuer_name(x, name) &&
              /* A day of slack for clients whose clock is behind. */
              X509_gmtime_adj(X509_getm_notBefore(x), -86400) &&
              X509_time_adj_ex(X509_getm_notAfter(x), CA_VALID_DAYS - 1, 0, NULL) &&
              X509_set_pubkey(x, key);
    if (ok) {
        X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
        ok = add_conf_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE") == 0 &&
             add_conf_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") == 0 &&
             add_conf_ext(x, &ctx, NID_subject_key_identifier, "hash") == 0 &&
             X509_sign(x, key, ca->sha256);
    }
    X509_NAME_free(name);
    if (!ok) {
        EVP_PKEY_free(key);
        X509_free(x);
        return ossl_error(err, errlen, file, "cannot create a CA");
    }
    ca->key = key;
    ca->cert = x;
    return 0;
}

/* Serializes the key (PKCS#8, when with_key) then the certificate, mitmproxy's order. Caller
   frees *out with free_secret. */
static int ca_pem(const ca_t *ca, bool with_key, char **out, size_t *outlen, const char *file,
                  char *err, size_t errlen)
{
    /* Secure memory when the application set it up; either way it is wiped when freed. */
    BIO *bio = BIO_new(with_key ? BIO_s_secmem() : BIO_s_mem());
    char *data;
    long len;
    int rc = 0;

    if (!bio || (with_key && !PEM_write_bio_PrivateKey(bio, ca->key, NULL, NULL, 0, NULL, NULL)) ||
        !PEM_write_bio_X509(bio, ca->cert) || (len = BIO_get_mem_data(bio, &data)) <= 0) {
        rc = ossl_error(err, errlen, file, "cannot encode the CA");
    } else if (!(*out = malloc((size_t)len))) {
        rc = errno_error(-ENOMEM, err, errlen, file, "cannot encode the CA");
    } else {
        memcpy(*out, data, (size_t)len);
        *outlen = (size_t)len;
    }
    BIO_free(bio);
    return rc;
}

/* Finds the home directory: $HOME, else the passwd entry. */
static int home_dir(char *buf, size_t len, char *err, size_t errlen)
{
    const char *home = getenv("HOME");
    struct passwd pw, *res = NULL;
    char pwbuf[16384];

    if (!home || !*home) {
        int e = getpwuid_r(getuid(), &pw, pwbuf, sizeof pwbuf, &res);
        if (e || !res || !res->pw_dir || !*res->pw_dir) {
            set_err(err, errlen, "cannot find the home directory for the CA: $HOME is not set "
                                 "and there is no passwd entry");
            return e ? -e : -ENOENT;
        }
        home = res->pw_dir;
    }
    int n = snprintf(buf, len, "%s", home);
    if (n < 0 || (size_t)n >= len) {
        set_err(err, errlen, "%s: home directory path too long", home);
        return -ENAMETOOLONG;
    }
    return 0;
}

/*
 * The default CA in ~/.mitmrec. The key file is the source of truth and is written first and
 * exclusively; the two certificate-only files are derived from it and rewritten whenever they
 * are missing or differ, which also repairs a crash between the writes.
 */
static int ca_open_default(ca_t *ca, char *err, size_t errlen)
{
    char home[PATH_MAX], dir[PATH_MAX], file[PATH_MAX], pem[PATH_MAX], der[PATH_MAX];
    int rc = home_dir(home, sizeof home, err, errlen);
    if (rc < 0)
        return rc;
    if (path_join(dir, sizeof dir, home, CA_DIR) < 0 || path_join(file, sizeof file, dir,
                                                                  CA_KEY_FILE) < 0 ||
        path_join(pem, sizeof pem, dir, CA_CERT_PEM) < 0 ||
        path_join(der, sizeof der, dir, CA_CERT_DER) < 0)
        return errno_error(-ENAMETOOLONG, err, errlen, home, "cannot use for the CA");

    struct stat st;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return errno_error(-errno, err, errlen, dir, "cannot create the CA directory");
    if (stat(dir, &st) < 0)
        return errno_error(-errno, err, errlen, dir, "cannot use the CA directory");
    if (!S_ISDIR(st.st_mode))
        return errno_error(-ENOTDIR, err, errlen, dir, "cannot use the CA directory");
    /* Whoever can write the directory can put their own CA there for users to install. */
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        set_err(err, errlen, "%s: the CA directory is writable by group or others (mode %04o); "
                             "run chmod 700 %s",
                dir, (unsigned)(st.st_mode & 07777), dir);
        return -EPERM;
    }

    if (!(ca->file = strdup(file)) || !(ca->cert_path = strdup(pem)))
        return errno_error(-ENOMEM, err, errlen, file, "cannot open the CA file");

    rc = ca_load(ca, file, err, errlen);
    if (rc == -ENOENT) {
        char *data = NULL;
        size_t len = 0;
        rc = ca_generate(ca, file, err, errlen);
        if (rc == 0)
            rc = ca_pem(ca, true, &data, &len, file, err, errlen);
        if (rc == 0)
            rc = write_atomic(file, data, len, 0600, true, err, errlen);
        free_secret(data, len);
        if (rc == -EEXIST) {
            /* Another mitmrec created it first: use theirs, so both sign with one CA. */
            EVP_PKEY_free(ca->key);
            X509_free(ca->cert);
            ca->key = NULL;
            ca->cert = NULL;
            rc = ca_load(ca, file, err, errlen);
        }
    }
    if (rc < 0)
        return rc;

    char *data = NULL;
    unsigned char *dder = NULL;
    size_t len = 0;
    int dlen = i2d_X509(ca->cert, &dder);
    if (dlen <= 0)
        return ossl_error(err, errlen, der, "cannot encode the CA certificate");
    rc = ca_pem(ca, false, &data, &len, pem, err, errlen);
    if (rc == 0 && !file_equals(pem, data, len))
        rc = write_atomic(pem, data, len, 0644, false, err, errlen);
    if (rc == 0 && !file_equals(der, dder, (size_t)dlen))
        rc = write_atomic(der, dder, (size_t)dlen, 0644, false, err, errlen);
    free(data);
    OPENSSL_free(dder);
    return rc;
}

/* Whether path holds the certificate cert (PEM), as mitmproxy's X-ca-cert.pem beside X-ca.pem. */
static bool cert_file_matches(const char *path, X509 *cert)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return false;
    char *buf = NULL;
    size_t len = 0;
    int rc = read_fd(fd, CA_FILE_MAX, &buf, &len);
    close(fd);
    if (rc < 0)
        return false;

    bool same = false;
    BIO *bio = BIO_new_mem_buf(buf, (int)len);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    /* A file that also holds a key is no certificate to hand out. */
    same = x && X509_cmp(x, cert) == 0 && !memmem(buf, len, "PRIVATE KEY-----", 16);
    ERR_clear_error();
    X509_free(x);
    BIO_free(bio);
    free(buf);
    return same;
}

static int ca_open_file(ca_t *ca, const char *file, char *err, size_t errlen)
{
    if (!(ca->file = strdup(file)))
        return errno_error(-ENOMEM, err, errlen, file, "cannot open the CA file");
    int rc = ca_load(ca, file, err, errlen);
    if (rc < 0)
        return rc;

    /* X.pem comes with X-cert.pem in mitmproxy's layout (and ours). */
    size_t len = strlen(file);
    char sibling[PATH_MAX];
    if (len > 4 && strcmp(file + len - 4, ".pem") == 0 && len + 5 < sizeof sibling) {
        snprintf(sibling, sizeof sibling, "%.*s-cert.pem", (int)(len - 4), file);
        if (cert_file_matches(sibling, ca->cert))
            ca->cert_path = strdup(sibling);
    }
    if (!ca->cert_path)
        ca->cert_path = strdup(file);
    if (!ca->cert_path)
        return errno_error(-ENOMEM, err, errlen, file, "cannot open the CA file");
    return 0;
}

/* SHA-1 of the public key bits: RFC 5280's first method for key identifiers. */
static ASN1_OCTET_STRING *key_id(const unsigned char *bits, int len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    ASN1_OCTET_STRING *os = NULL;

    if (EVP_Digest(bits, (size_t)len, md, &mdlen, EVP_sha1(), NULL) &&
        (os = ASN1_OCTET_STRING_new()) && !ASN1_OCTET_STRING_set(os, md, (int)mdlen)) {
        ASN1_OCTET_STRING_free(os);
        os = NULL;
    }
    return os;
}

/* The per-run leaf key, the digests, and the extensions that are the same in every leaf. */
static int ca_prepare_leaves(ca_t *ca, char *err, size_t errlen)
{
    X509V3_CTX ctx;
    X509_PUBKEY *pub = NULL;
    const unsigned char *bits;
    int bitslen;
    ASN1_OCTET_STRING *ski = NULL, *caski = NULL;
    AUTHORITY_KEYID *akid = NULL;
    bool ok;

    if (!(ca->buckets = calloc(CACHE_BUCKETS, sizeof *ca->buckets)))
        return errno_error(-ENOMEM, err, errlen, ca->file, "cannot set up the CA");
    /* EdDSA signs the message itself; every other key type gets SHA-256. */
    ca->sign_md = EVP_PKEY_is_a(ca->key, "ED25519") || EVP_PKEY_is_a(ca->key, "ED448")
                      ? NULL
                      : ca->sha256;
    X509V3_set_ctx(&ctx, NULL, NULL, NULL, NULL, 0);
    const ASN1_OCTET_STRING *have = X509_get0_subject_key_id(ca->cert);
    const ASN1_BIT_STRING *cabits = X509_get0_pubkey_bitstr(ca->cert);

    ok = RAND_bytes((unsigned char *)&ca->seed, sizeof ca->seed) == 1 &&
         (ca->leaf_key = EVP_EC_gen("P-256")) && X509_PUBKEY_set(&pub, ca->leaf_key) &&
         X509_PUBKEY_get0_param(NULL, &bits, &bitslen, NULL, pub) &&
         (ski = key_id(bits, bitslen)) &&
         /* A CA without its own key identifier gets the one RFC 5280 would compute. */
         (caski = have ? ASN1_OCTET_STRING_dup(have)
                       : cabits ? key_id(cabits->data, cabits->length) : NULL) &&
         (akid = AUTHORITY_KEYID_new()) &&
         (ca->leaf_ext[EXT_BC] =
              X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:FALSE")) &&
         (ca->leaf_ext[EXT_KU] =
              X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, "critical,digitalSignature")) &&
         (ca->leaf_ext[EXT_EKU] =
              X509V3_EXT_conf_nid(NULL, &ctx, NID_ext_key_usage, "serverAuth")) &&
         (ca->leaf_ext[EXT_SKI] = X509V3_EXT_i2d(NID_subject_key_identifier, 0, ski));
    if (ok) {
        akid->keyid = caski;
        caski = NULL;
        ca->leaf_ext[EXT_AKI] = X509V3_EXT_i2d(NID_authority_key_identifier, 0, akid);
        ok = ca->leaf_ext[EXT_AKI] != NULL;
    }
    X509_PUBKEY_free(pub);
    ASN1_OCTET_STRING_free(ski);
    ASN1_OCTET_STRING_free(caski);
    AUTHORITY_KEYID_free(akid);
    return ok ? 0 : ossl_error(err, errlen, ca->file, "cannot set up leaf certificates");
}

int ca_open(const char *file, ca_t **out, char *err, size_t errlen)
{
    set_err(err, errlen, "%s", "");
    if (!out)
        return -EINVAL;
    *out = NULL;

    ca_t *ca = calloc(1, sizeof *ca);
    if (!ca) {
        set_err(err, errlen, "%s: out of memory", file ? file : "mitmrec CA");
        return -ENOMEM;
    }
    int rc = 0;
    if (!(ca->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)))
        rc = ossl_error(err, errlen, file, "cannot set up the CA");
    if (rc == 0)
        rc = file ? ca_open_file(ca, file, err, errlen) : ca_open_default(ca, err, errlen);
    if (rc == 0)
        rc = ca_prepare_leaves(ca, err, errlen);
    if (rc < 0) {
        ca_free(ca);
        return rc;
    }
    *out = ca;
    return 0;
}

static void lru_unlink(ca_t *ca, struct leaf *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        ca->newest = l->next;
    if (l->next)
        l->next->prev = l->prev;
    else
        ca->oldest = l->prev;
}

static void lru_push_newest(ca_t *ca, struct leaf *l)
{
    l->prev = NULL;
    l->next = ca->newest;
    if (ca->newest)
        ca->newest->prev = l;
    ca->newest = l;
    if (!ca->oldest)
        ca->oldest = l;
}

static void cache_remove(ca_t *ca, struct leaf *l)
{
    struct leaf **pp = &ca->buckets[l->hash & (CACHE_BUCKETS - 1)];
    while (*pp != l)
        pp = &(*pp)->hnext;
    *pp = l->hnext;
    lru_unlink(ca, l);
    ca->count--;
    X509_free(l->cert);
    free(l);
}

void ca_free(ca_t *ca)
{
    if (!ca)
        return;
    for (struct leaf *l = ca->newest, *next; l; l = next) {
        next = l->next;
        X509_free(l->cert);
        free(l);
    }
    free(ca->buckets);
    for (int i = 0; i < EXT_COUNT; i++)
        X509_EXTENSION_free(ca->leaf_ext[i]);
    EVP_PKEY_free(ca->leaf_key);
    EVP_PKEY_free(ca->key);
    X509_free(ca->cert);
    EVP_MD_free(ca->sha256);
    free(ca->file);
    free(ca->cert_path);
    free(ca);
}

X509 *ca_cert(const ca_t *ca)
{
    return ca ? ca->cert : NULL;
}

const char *ca_cert_path(const ca_t *ca)
{
    return ca ? ca->cert_path : NULL;
}

EVP_PKEY *ca_leaf_key(const ca_t *ca)
{
    return ca ? ca->leaf_key : NULL;
}

size_t ca_cache_size(const ca_t *ca)
{
    return ca ? ca->count : 0;
}

size_t ca_cache_hits(const ca_t *ca)
{
    return ca ? ca->hits : 0;
}

/*
 * Names become IA5String SAN entries and a CN, so only the characters of host names (and a
 * wildcard's star) are let through; anything else from a client's SNI is refused.
 */
static bool valid_host_name(const char *name, size_t len)
{
    if (len == 0 || len > DNS_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_' || c == '*'))
            return false;
    }
    return true;
}

/* Parses an IPv4 or IPv6 literal into ip; returns its length, or 0 for a host name. */
static size_t parse_ip(const char *name, unsigned char ip[16])
{
    if (inet_pton(AF_INET, name, ip) == 1)
        return 4;
    if (inet_pton(AF_INET6, name, ip) == 1)
        return 16;
    return 0;
}

/* Whether a client would already accept name (or ip) with the SAN entries in gens. */
static bool san_covers(const GENERAL_NAMES *gens, const char *name, const unsigned char *ip,
                       size_t iplen)
{
    size_t namelen = strlen(name);
    const char *dot = strchr(name, '.');

    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (iplen && g->type == GEN_IPADD) {
            if ((size_t)g->d.iPAddress->length == iplen &&
                memcmp(g->d.iPAddress->data, ip, iplen) == 0)
                return true;
        } else if (!iplen && g->type == GEN_DNS) {
            const char *d = (const char *)g->d.dNSName->data;
            size_t dlen = (size_t)g->d.dNSName->length;
            if (dlen == namelen && strncasecmp(d, name, dlen) == 0)
                return true;
            /* "*.example.com" covers exactly one more label. */
            if (dlen > 2 && d[0] == '*' && d[1] == '.' && dot && dot != name &&
                strlen(dot) == dlen - 1 && strncasecmp(dot, d + 1, dlen - 1) == 0)
                return true;
        }
    }
    return false;
}

static int san_push(GENERAL_NAMES *gens, const char *name, const unsigned char *ip, size_t iplen)
{
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_STRING *s = iplen ? ASN1_OCTET_STRING_new() : ASN1_IA5STRING_new();
    int ok = g && s &&
             (iplen ? ASN1_STRING_set(s, ip, (int)iplen) : ASN1_STRING_set(s, name, -1));
    if (ok) {
        GENERAL_NAME_set0_value(g, iplen ? GEN_IPADD : GEN_DNS, s);
        s = NULL;
        ok = sk_GENERAL_NAME_push(gens, g) > 0;
    }
    if (!ok) {
        ASN1_STRING_free(s);
        GENERAL_NAME_free(g);
        return -1;
    }
    return 0;
}

/* Adds name to gens unless it is covered already. */
static int san_add_name(GENERAL_NAMES *gens, const char *name)
{
    unsigned char ip[16];
    size_t iplen = parse_ip(name, ip);
    if (!iplen && !valid_host_name(name, strlen(name)))
        return 0;
    return san_covers(gens, name, ip, iplen) ? 0 : san_push(gens, name, ip, iplen);
}

/* The most specific (last) commonName of a certificate, as UTF-8; caller OPENSSL_frees. */
static char *subject_cn(X509 *x)
{
    const X509_NAME *subj = X509_get_subject_name(x);
    int idx = -1;
    for (int i; (i = X509_NAME_get_index_by_NID(subj, NID_commonName, idx)) >= 0;)
        idx = i;
    if (idx < 0)
        return NULL;
    unsigned char *utf8 = NULL;
    int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx)));
    /* A CN with an embedded NUL is an attack on C strings, not a name. */
    if (len <= 0 || memchr(utf8, '\0', (size_t)len)) {
        OPENSSL_free(utf8);
        ERR_clear_error();
        return NULL;
    }
    return (char *)utf8;
}

/* The names the leaf carries: the upstream's DNS and IP entries, then name if needed. */
static int leaf_names(X509 *upstream, const char *name, const char *up_cn, GENERAL_NAMES *gens)
{
    if (upstream) {
        GENERAL_NAMES *up = X509_get_ext_d2i(upstream, NID_subject_alt_name, NULL, NULL);
        for (int i = 0; i < sk_GENERAL_NAME_num(up); i++) {
            GENERAL_NAME *g = sk_GENERAL_NAME_value(up, i), *copy;
            if (g->type != GEN_DNS && g->type != GEN_IPADD)
                continue;
            if (!(copy = GENERAL_NAME_dup(g)) || sk_GENERAL_NAME_push(gens, copy) <= 0) {
                GENERAL_NAME_free(copy);
                GENERAL_NAMES_free(up);
                return -1;
            }
        }
        GENERAL_NAMES_free(up);
        ERR_clear_error(); /* an upstream without subjectAltName is no error */
        /* Clients only fall back to the CN when there is no subjectAltName: keep that name. */
        if (sk_GENERAL_NAME_num(gens) == 0 && up_cn && san_add_name(gens, up_cn) < 0)
            return -1;
    }
    return name ? san_add_name(gens, name) : 0;
}

/* Builds and signs a leaf; *out gets the only reference. */
static int leaf_build(ca_t *ca, const char *name, X509 *upstream, X509 **out)
{
    char *up_cn = upstream ? subject_cn(upstream) : NULL;
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    X509_NAME *subj = X509_NAME_new();
    X509 *x = X509_new();
    int rc = -ENOMEM;

    if (!gens || !subj || !x || leaf_names(upstream, name, up_cn, gens) < 0)
        goto fail;
    if (sk_GENERAL_NAME_num(gens) == 0) {
        rc = -EINVAL; /* nothing a client could check the certificate against */
        goto fail;
    }
    /* The upstream's CN is mirrored (per the header); clients match on subjectAltName. */
    const char *cn = up_cn ? up_cn : name;
    if (cn && strlen(cn) <= CN_MAX &&
        !X509_NAME_add_entry_by_NID(subj, NID_commonName, MBSTRING_UTF8, (const unsigned char *)cn,
                                    -1, -1, 0))
        goto fail;

    const ASN1_TIME *ca_end = X509_get0_notAfter(ca->cert);
    bool ok = X509_set_version(x, X509_VERSION_3) && set_random_serial(x) == 0 &&
              X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) &&
              X509_set_subject_name(x, subj) && X509_gmtime_adj(X509_getm_notBefore(x), -86400) &&
              X509_time_adj_ex(X509_getm_notAfter(x), LEAF_VALID_DAYS, 0, NULL) &&
              X509_set_pubkey(x, ca->leaf_key);
    /* No leaf outlives its CA: clients would reject it at that point anyway. */
    if (ok && ASN1_TIME_compare(X509_get0_notAfter(x), ca_end) > 0)
        ok = X509_set1_notAfter(x, ca_end);
    for (int i = 0; ok && i < EXT_COUNT; i++)
        ok = X509_add_ext(x, ca->leaf_ext[i], -1);
    /* RFC 5280: with an empty subject, subjectAltName must be critical. */
    ok = ok &&
         X509_add1_ext_i2d(x, NID_subject_alt_name, gens, X509_NAME_entry_count(subj) == 0,
                           X509V3_ADD_DEFAULT) == 1 &&
         X509_sign(x, ca->key, ca->sign_md) > 0;
    if (!ok) {
        rc = ossl_error(NULL, 0, NULL, "cannot forge a leaf certificate");
        goto fail;
    }
    *out = x;
    x = NULL;
    rc = 0;
fail:
    X509_free(x);
    X509_NAME_free(subj);
    GENERAL_NAMES_free(gens);
    OPENSSL_free(up_cn);
    return rc;
}

/* FNV-1a, started from a per-CA random seed so names can't be picked to share a bucket. */
static uint64_t cache_hash(const ca_t *ca, const char *name, size_t namelen,
                           const unsigned char digest[32], bool has_upstream)
{
    uint64_t h = 14695981039346656037ULL ^ ca->seed;
    for (size_t i = 0; i < 32; i++)
        h = (h ^ digest[i]) * 1099511628211ULL;
    h = (h ^ (has_upstream ? 1 : 2)) * 1099511628211ULL;
    for (size_t i = 0; i < namelen; i++)
        h = (h ^ (unsigned char)name[i]) * 1099511628211ULL;
    return h ^ (h >> 29);
}

int ca_forge(ca_t *ca, const char *name, X509 *upstream, X509 **cert_out)
{
    if (!cert_out)
        return -EINVAL;
    *cert_out = NULL;
    if (!ca)
        return -EINVAL;
    if (name && !*name)
        name = NULL;

    unsigned char ip[16];
    size_t namelen = name ? strlen(name) : 0;
    if (name && !parse_ip(name, ip) && !valid_host_name(name, namelen))
        return -EINVAL;
    if (!name && !upstream)
        return -EINVAL;

    unsigned char digest[32] = { 0 };
    unsigned int dlen = 0;
    if (upstream && (!X509_digest(upstream, ca->sha256, digest, &dlen) || dlen != sizeof digest))
        return ossl_error(NULL, 0, NULL, "cannot hash the upstream certificate");

    uint64_t h = cache_hash(ca, name, namelen, digest, upstream != NULL);
    time_t now = time(NULL);
    for (struct leaf *l = ca->buckets[h & (CACHE_BUCKETS - 1)]; l; l = l->hnext) {
        if (l->hash != h || l->has_upstream != (upstream != NULL) || l->namelen != namelen ||
            memcmp(l->digest, digest, sizeof digest) != 0 ||
            (namelen && memcmp(l->name, name, namelen) != 0))
            continue;
        if (now - l->born >= CACHE_MAX_AGE || now < l->born) {
            cache_remove(ca, l);
            break;
        }
        if (!X509_up_ref(l->cert))
            return -ENOMEM;
        lru_unlink(ca, l);
        lru_push_newest(ca, l);
        ca->hits++;
        *cert_out = l->cert;
        return 0;
    }

    X509 *x = NULL;
    int rc = leaf_build(ca, name, upstream, &x);
    if (rc < 0)
        return rc;
    /* The cache only saves work: without memory for an entry the leaf is still good. */
    struct leaf *l = malloc(sizeof *l + namelen + 1);
    if (!l || !X509_up_ref(x)) {
        free(l);
        *cert_out = x;
        return 0;
    }
    if (ca->count >= CACHE_MAX)
        cache_remove(ca, ca->oldest);
    l->hash = h;
    l->born = now;
    l->cert = x;
    memcpy(l->digest, digest, sizeof digest);
    l->has_upstream = upstream != NULL;
    l->namelen = namelen;
    if (namelen)
        memcpy(l->name, name, namelen);
    l->name[namelen] = '\0';
    l->hnext = ca->buckets[h & (CACHE_BUCKETS - 1)];
    ca->buckets[h & (CACHE_BUCKETS - 1)] = l;
    lru_push_newest(ca, l);
    ca->count++;
    *cert_out = x;
    return 0;
}

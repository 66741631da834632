/* SPDX-License-Identifier: MIT */
#include "ca.h"

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
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "ca_int.h"

#define CA_DIR ".mitmrec"
#define CA_KEY_FILE "mitmrec-ca.pem"
#define CA_CERT_PEM "mitmrec-ca-cert.pem"
#define CA_CERT_DER "mitmrec-ca-cert.cer"

/* A CA file is a few KiB; anything past this is not one, and is not read into memory. */
#define CA_FILE_MAX (1024 * 1024)
#define CA_VALID_DAYS 3652

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
int ca_ossl_error(char *err, size_t errlen, const char *file, const char *what)
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

int ca_errno_error(int rc, char *err, size_t errlen, const char *file, const char *what)
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
static int write_atomic(const char *path, const void *data, size_t len, mode_t mode, bool exclusive,
                        char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    unsigned char rnd[6];
    int rc = 0;

    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return ca_ossl_error(err, errlen, path, "cannot make a temporary name");
    int n = snprintf(tmp, sizeof tmp, "%s.tmp-%02x%02x%02x%02x%02x%02x", path, rnd[0], rnd[1],
                     rnd[2], rnd[3], rnd[4], rnd[5]);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return ca_errno_error(-ENAMETOOLONG, err, errlen, path, "cannot create");

    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return ca_errno_error(-errno, err, errlen, tmp, "cannot create");
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
        return ca_errno_error(rc, err, errlen, tmp, "cannot write");
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
        return ca_errno_error(rc, err, errlen, path, "cannot create");
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
        return ca_errno_error(-errno, err, errlen, file, "cannot open the CA file");

    struct stat st;
    if (fstat(fd, &st) < 0) {
        int rc = -errno;
        close(fd);
        return ca_errno_error(rc, err, errlen, file, "cannot open the CA file");
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
        ca_errno_error(rc, err, errlen, file, "cannot read the CA file");
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
        rc = ca_ossl_error(err, errlen, file, "cannot read the CA file");
    } else if (!(ca->key = PEM_read_bio_PrivateKey(kbio, NULL, no_passphrase, &asked))) {
        if (asked) {
            ERR_clear_error();
            set_err(err, errlen, "%s: the private key is encrypted; mitmrec needs it unencrypted",
                    file);
            rc = -EINVAL;
        } else {
            rc = ca_ossl_error(err, errlen, file, "cannot parse the private key");
        }
    } else if (!(ca->cert = PEM_read_bio_X509(cbio, NULL, no_passphrase, &asked))) {
        rc = ca_ossl_error(err, errlen, file, "cannot parse the certificate");
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

int ca_set_random_serial(X509 *x)
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
              ca_set_random_serial(x) == 0 &&
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
        return ca_ossl_error(err, errlen, file, "cannot create a CA");
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
        rc = ca_ossl_error(err, errlen, file, "cannot encode the CA");
    } else if (!(*out = malloc((size_t)len))) {
        rc = ca_errno_error(-ENOMEM, err, errlen, file, "cannot encode the CA");
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
            set_err(err, errlen,
                    "cannot find the home directory for the CA: $HOME is not set "
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
    if (path_join(dir, sizeof dir, home, CA_DIR) < 0 ||
        path_join(file, sizeof file, dir, CA_KEY_FILE) < 0 ||
        path_join(pem, sizeof pem, dir, CA_CERT_PEM) < 0 ||
        path_join(der, sizeof der, dir, CA_CERT_DER) < 0)
        return ca_errno_error(-ENAMETOOLONG, err, errlen, home, "cannot use for the CA");

    struct stat st;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return ca_errno_error(-errno, err, errlen, dir, "cannot create the CA directory");
    if (stat(dir, &st) < 0)
        return ca_errno_error(-errno, err, errlen, dir, "cannot use the CA directory");
    if (!S_ISDIR(st.st_mode))
        return ca_errno_error(-ENOTDIR, err, errlen, dir, "cannot use the CA directory");
    /* Whoever can write the directory can put their own CA there for users to install. */
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        set_err(err, errlen,
                "%s: the CA directory is writable by group or others (mode %04o); "
                "run chmod 700 %s",
                dir, (unsigned)(st.st_mode & 07777), dir);
        return -EPERM;
    }

    if (!(ca->file = strdup(file)) || !(ca->cert_path = strdup(pem)))
        return ca_errno_error(-ENOMEM, err, errlen, file, "cannot open the CA file");

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
        return ca_ossl_error(err, errlen, der, "cannot encode the CA certificate");
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
        return ca_errno_error(-ENOMEM, err, errlen, file, "cannot open the CA file");
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
        return ca_errno_error(-ENOMEM, err, errlen, file, "cannot open the CA file");
    return 0;
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
        rc = ca_ossl_error(err, errlen, file, "cannot set up the CA");
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

void ca_free(ca_t *ca)
{
    if (!ca)
        return;
    ca_free_leaves(ca);
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

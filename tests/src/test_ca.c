/* SPDX-License-Identifier: MIT */
/* Tests for src/ca.c. Runs with HOME pointed at a temporary directory, so the real
   ~/.mitmrec is never touched. */
#include "ca.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "check.h"

static char tmpdir[512];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_mode & 07777 : (mode_t)-1;
}

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* dst = tmpdir/name; dst has PATH_MAX bytes. */
static const char *tpath(char *dst, const char *name)
{
    snprintf(dst, PATH_MAX, "%s/%s", tmpdir, name);
    return dst;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    int ok = ext && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

/* A self-signed certificate: a CA when sans is NULL, else a server certificate. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, const char *sans)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_get_subject_name(x);
    bool ok = X509_set_version(x, X509_VERSION_3) &&
              ASN1_INTEGER_set(X509_get_serialNumber(x), (long)time(NULL)) &&
              X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_ASC,
                                         (const unsigned char *)cn, -1, -1, 0) &&
              X509_set_issuer_name(x, name) && X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
              X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 3650) && X509_set_pubkey(x, key);
    if (ok && !sans)
        ok = add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") == 0 &&
             add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") == 0 &&
             add_ext(x, x, NID_subject_key_identifier, "hash") == 0;
    if (ok && sans && *sans)
        ok = add_ext(x, x, NID_subject_alt_name, sans) == 0;
    if (!ok || !X509_sign(x, key, EVP_sha256())) {
        ERR_print_errors_fp(stderr);
        X509_free(x);
        return NULL;
    }
    return x;
}

/* Writes key and/or cert as PEM, in the order asked, with mode. The key is written in the
   traditional format ("RSA PRIVATE KEY"), as mitmproxy does, unless pkcs8. */
static int write_pem(const char *path, EVP_PKEY *key, X509 *cert, bool key_first, mode_t mode,
                     const char *pass)
{
    BIO *bio = BIO_new_file(path, "w");
    if (!bio)
        return -1;
    bool ok = true;
    for (int i = 0; i < 2; i++) {
        bool do_key = (i == 0) == key_first;
        if (do_key && key)
            ok = ok &&
                 (pass ? PEM_write_bio_PrivateKey(bio, key, EVP_aes_128_cbc(), NULL, 0, NULL,
                                                  (void *)pass)
                       : PEM_write_bio_PrivateKey_traditional(bio, key, NULL, NULL, 0, NULL, NULL));
        if (!do_key && cert)
            ok = ok && PEM_write_bio_X509(bio, cert);
    }
    ok = BIO_free(bio) == 1 && ok;
    return ok && chmod(path, mode) == 0 ? 0 : -1;
}

static bool verifies(X509 *ca_cert, X509 *leaf)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    bool ok = store && ctx && X509_STORE_add_cert(store, ca_cert) &&
              X509_STORE_CTX_init(ctx, store, leaf, NULL) &&
              X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
    if (ok && X509_verify_cert(ctx) != 1) {
        fprintf(stderr, "verify: %s\n",
                X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
        ok = false;
    }
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return ok;
}

static int count_sans(X509 *x, int type, int *critical)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, critical, NULL);
    int n = 0;
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++)
        n += type < 0 || sk_GENERAL_NAME_value(gens, i)->type == type;
    GENERAL_NAMES_free(gens);
    return n;
}

static const char *subject_cn(X509 *x, char *buf, size_t len)
{
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, (int)len) < 0)
        return NULL;
    return buf;
}

/* The properties every forged leaf must have. */
static void check_leaf(ca_t *ca, X509 *leaf)
{
    CHECK(leaf != NULL);
    if (!leaf)
        return;
    CHECK(verifies(ca_cert(ca), leaf));
    CHECK_EQ_INT(X509_get_version(leaf), X509_VERSION_3);
    CHECK_EQ_INT(X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(ca_cert(ca))), 0);
    CHECK_EQ_INT(X509_check_private_key(leaf, ca_leaf_key(ca)), 1);
    CHECK_EQ_INT(X509_check_ca(leaf), 0);
    CHECK_EQ_INT(X509_check_purpose(leaf, X509_PURPOSE_SSL_SERVER, 0), 1);
    CHECK(X509_get_extended_key_usage(leaf) & XKU_SSL_SERVER);
    CHECK(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE);
    CHECK(X509_get0_subject_key_id(leaf) != NULL);
    CHECK(X509_get0_authority_key_id(leaf) != NULL);
    CHECK_EQ_INT(
        ASN1_STRING_cmp(X509_get0_authority_key_id(leaf), X509_get0_subject_key_id(ca_cert(ca))),
        0);
    CHECK(ASN1_STRING_length(X509_get0_serialNumber(leaf)) >= 16);
    CHECK_EQ_INT(X509_get_signature_nid(leaf) == NID_ecdsa_with_SHA256 ||
                     X509_get_signature_nid(leaf) == NID_sha256WithRSAEncryption,
                 1);

    int days = 0, secs = 0;
    CHECK(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(leaf), X509_get0_notAfter(leaf)));
    CHECK(days < 397);
    CHECK(days >= 360);
    CHECK(X509_cmp_current_time(X509_get0_notBefore(leaf)) < 0);
    CHECK(X509_cmp_current_time(X509_get0_notAfter(leaf)) > 0);
}

static bool have_openssl(void)
{
    return system("command -v openssl >/dev/null 2>&1") == 0;
}

/* `openssl verify` as a second opinion, when the command is there. */
static void check_openssl_verify(const char *ca_file, X509 *leaf, const char *host)
{
    if (!have_openssl()) {
        printf("openssl not on PATH, skipping openssl verify\n");
        return;
    }
    char leaf_file[PATH_MAX];
    tpath(leaf_file, "leaf.pem");
    CHECK_EQ_INT(write_pem(leaf_file, NULL, leaf, false, 0644, NULL), 0);
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd,
             "openssl verify -CAfile '%s' -purpose sslserver -verify_hostname '%s' '%s' "
             ">/dev/null",
             ca_file, host, leaf_file);
    int st = system(cmd);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_default_ca(void)
{
    char err[512], dir[1024], file[PATH_MAX], pem[PATH_MAX], der[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/.mitmrec", tmpdir);
    snprintf(file, sizeof file, "%s/mitmrec-ca.pem", dir);
    snprintf(pem, sizeof pem, "%s/mitmrec-ca-cert.pem", dir);
    snprintf(der, sizeof der, "%s/mitmrec-ca-cert.cer", dir);

    /* First use creates the directory and the three files. */
    ca_t *ca = NULL;
    CHECK_EQ_INT(ca_open(NULL, &ca, err, sizeof err), 0);
    CHECK(ca != NULL);
    if (!ca) {
        fprintf(stderr, "ca_open: %s\n", err);
        return;
    }
    CHECK_EQ_INT(mode_of(dir), 0700);
    CHECK_EQ_INT(mode_of(file), 0600);
    CHECK_EQ_INT(mode_of(pem), 0644);
    CHECK_EQ_INT(mode_of(der), 0644);
    CHECK_EQ_STR(ca_cert_path(ca), pem);
    CHECK_EQ_INT(ERR_peek_error(), 0);

    /* Nothing else in the directory: no temporary file was left behind. */
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 3", dir);
    CHECK_EQ_INT(system(cmd), 0);

    /* The CA certificate is what the layout promises. */
    X509 *cert = ca_cert(ca);
    char cn[256];
    CHECK_EQ_STR(subject_cn(cert, cn, sizeof cn), "mitmrec CA");
    CHECK(X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_organizationName, cn,
                                    sizeof cn) > 0 &&
          strcmp(cn, "mitmrec") == 0);
    CHECK_EQ_INT(X509_check_ca(cert), 1);
    CHECK(X509_get_extension_flags(cert) & EXFLAG_SS);
    CHECK(X509_get_key_usage(cert) & KU_KEY_CERT_SIGN);
    CHECK(X509_get_key_usage(cert) & KU_CRL_SIGN);
    CHECK(X509_get0_subject_key_id(cert) != NULL);
    CHECK_EQ_INT(X509_get_ext_by_NID(cert, NID_basic_constraints, -1) >= 0 &&
                     X509_EXTENSION_get_critical(
                         X509_get_ext(cert, X509_get_ext_by_NID(cert, NID_basic_constraints, -1))),
                 1);
    CHECK(ASN1_STRING_length(X509_get0_serialNumber(cert)) >= 16);
    int days = 0, secs = 0;
    CHECK(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(cert), X509_get0_notAfter(cert)));
    CHECK(days >= 3650 && days <= 3653);
    CHECK(X509_cmp_current_time(X509_get0_notBefore(cert)) < 0);
    CHECK(EVP_PKEY_is_a(X509_get0_pubkey(cert), "EC"));
    CHECK(X509_verify(cert, X509_get0_pubkey(cert)) == 1);

    /* The certificate-only files hold the same certificate. */
    FILE *f = fopen(pem, "r");
    X509 *from_pem = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    CHECK(from_pem && X509_cmp(from_pem, cert) == 0);
    X509_free(from_pem);
    f = fopen(der, "rb");
    X509 *from_der = f ? d2i_X509_fp(f, NULL) : NULL;
    if (f)
        fclose(f);
    CHECK(from_der && X509_cmp(from_der, cert) == 0);
    X509_free(from_der);

    /* A second open loads the same CA, with a leaf key of its own run. */
    ca_t *again = NULL;
    CHECK_EQ_INT(ca_open(NULL, &again, err, sizeof err), 0);
    CHECK(again && X509_cmp(ca_cert(again), cert) == 0);
    CHECK(again && EVP_PKEY_eq(ca_leaf_key(again), ca_leaf_key(ca)) != 1);
    ca_free(again);

    /* Missing or altered certificate-only files are put back from the key file. */
    CHECK_EQ_INT(unlink(der), 0);
    f = fopen(pem, "w");
    if (f) {
        fputs("not a certificate\n", f);
        fclose(f);
    }
    again = NULL;
    CHECK_EQ_INT(ca_open(NULL, &again, err, sizeof err), 0);
    CHECK(exists(der));
    CHECK_EQ_INT(mode_of(der), 0644);
    f = fopen(pem, "r");
    from_pem = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    CHECK(from_pem && X509_cmp(from_pem, cert) == 0);
    X509_free(from_pem);
    ca_free(again);

    /* A key file that group or others can read is refused, naming the file. */
    CHECK_EQ_INT(chmod(file, 0644), 0);
    again = NULL;
    err[0] = '\0';
    CHECK_EQ_INT(ca_open(NULL, &again, err, sizeof err), -EPERM);
    CHECK(again == NULL);
    CHECK(strstr(err, file) != NULL);
    CHECK(strstr(err, "chmod 600") != NULL);
    CHECK(strchr(err, '\n') == NULL);
    printf("refused: %s\n", err);
    CHECK_EQ_INT(chmod(file, 0640), 0);
    CHECK_EQ_INT(ca_open(NULL, &again, err, sizeof err), -EPERM);
    CHECK_EQ_INT(chmod(file, 0600), 0);

    /* So is a CA directory others could plant their own CA in. */
    CHECK_EQ_INT(chmod(dir, 0770), 0);
    CHECK_EQ_INT(ca_open(NULL, &again, err, sizeof err), -EPERM);
    CHECK(strstr(err, dir) != NULL);
    CHECK_EQ_INT(chmod(dir, 0700), 0);

    /* Leaves for a name and for IP literals, with no upstream certificate. */
    X509 *leaf = NULL;
    CHECK_EQ_INT(ca_forge(ca, "www.example.com", NULL, &leaf), 0);
    check_leaf(ca, leaf);
    CHECK_EQ_INT(X509_check_host(leaf, "www.example.com", 0, 0, NULL), 1);
    CHECK(X509_check_host(leaf, "other.example.com", 0, 0, NULL) != 1);
    CHECK_EQ_STR(subject_cn(leaf, cn, sizeof cn), "www.example.com");
    CHECK_EQ_INT(count_sans(leaf, -1, NULL), 1);
    CHECK(EVP_PKEY_is_a(X509_get0_pubkey(leaf), "EC"));
    check_openssl_verify(pem, leaf, "www.example.com");

    /* The cache answers the same request with the same certificate. */
    size_t size = ca_cache_size(ca), hits = ca_cache_hits(ca);
    X509 *same = NULL;
    CHECK_EQ_INT(ca_forge(ca, "www.example.com", NULL, &same), 0);
    CHECK(same == leaf);
    CHECK_EQ_INT(ca_cache_hits(ca), hits + 1);
    CHECK_EQ_INT(ca_cache_size(ca), size);
    X509_free(same);
    X509_free(leaf);

    const char *ips[] = {"127.0.0.1", "::1"};
    for (size_t i = 0; i < 2; i++) {
        leaf = NULL;
        CHECK_EQ_INT(ca_forge(ca, ips[i], NULL, &leaf), 0);
        check_leaf(ca, leaf);
        CHECK_EQ_INT(X509_check_ip_asc(leaf, ips[i], 0), 1);
        CHECK_EQ_INT(count_sans(leaf, GEN_IPADD, NULL), 1);
        CHECK_EQ_INT(count_sans(leaf, GEN_DNS, NULL), 0);
        CHECK(X509_check_ip_asc(leaf, "127.0.0.2", 0) != 1);
        X509_free(leaf);
    }
    /* openssl verify with -verify_ip for the IPv4 leaf. */
    leaf = NULL;
    CHECK_EQ_INT(ca_forge(ca, "127.0.0.1", NULL, &leaf), 0);
    if (leaf && have_openssl()) {
        char leaf_file[PATH_MAX];
        tpath(leaf_file, "leaf-ip.pem");
        CHECK_EQ_INT(write_pem(leaf_file, NULL, leaf, false, 0644, NULL), 0);
        char vcmd[3 * PATH_MAX];
        snprintf(vcmd, sizeof vcmd,
                 "openssl verify -CAfile '%s' -purpose sslserver -verify_ip 127.0.0.1 '%s' "
                 ">/dev/null",
                 pem, leaf_file);
        CHECK_EQ_INT(system(vcmd), 0);
    }
    X509_free(leaf);

    /* Mirroring a made-up upstream certificate with several names. */
    EVP_PKEY *upkey = EVP_EC_gen("P-256");
    X509 *up = make_cert(upkey, "a.example",
                         "DNS:a.example,DNS:b.example,DNS:*.c.example,IP:10.1.2.3,"
                         "email:someone@a.example");
    X509 *up2 = make_cert(upkey, "a.example", "DNS:a.example,DNS:b.example");
    X509 *legacy = make_cert(upkey, "legacy.example", "");
    CHECK(up && up2 && legacy);

    leaf = NULL;
    CHECK_EQ_INT(ca_forge(ca, "x.c.example", up, &leaf), 0);
    check_leaf(ca, leaf);
    CHECK_EQ_STR(subject_cn(leaf, cn, sizeof cn), "a.example");
    CHECK_EQ_INT(count_sans(leaf, -1, NULL), 4); /* the wildcard covers x.c.example */
    CHECK_EQ_INT(count_sans(leaf, GEN_EMAIL, NULL), 0);
    const char *hosts[] = {"a.example", "b.example", "x.c.example", "y.c.example"};
    for (size_t i = 0; i < 4; i++)
        CHECK_EQ_INT(X509_check_host(leaf, hosts[i], 0, 0, NULL), 1);
    CHECK_EQ_INT(X509_check_ip_asc(leaf, "10.1.2.3", 0), 1);
    CHECK(X509_check_host(leaf, "c.example", 0, 0, NULL) != 1);
    check_openssl_verify(pem, leaf, "b.example");
    X509_free(leaf);

    leaf = NULL;
    CHECK_EQ_INT(ca_forge(ca, "d.example", up, &leaf), 0);
    check_leaf(ca, leaf);
    CHECK_EQ_INT(count_sans(leaf, -1, NULL), 5);
    CHECK_EQ_INT(X509_check_host(leaf, "d.example", 0, 0, NULL), 1);
    CHECK_EQ_INT(X509_check_host(leaf, "a.example", 0, 0, NULL), 1);

    /* Hit for the identical request; miss for another upstream with the same name. */
    size = ca_cache_size(ca);
    hits = ca_cache_hits(ca);
    same = NULL;
    CHECK_EQ_INT(ca_forge(ca, "d.example", up, &same), 0);
    CHECK(same == leaf);
    CHECK_EQ_INT(ca_cache_hits(ca), hits + 1);
    X509_free(same);
    same = NULL;
    CHECK_EQ_INT(ca_forge(ca, "d.example", up2, &same), 0);
    CHECK(same != NULL && same != leaf);
    CHECK_EQ_INT(ca_cache_hits(ca), hits + 1);
    CHECK_EQ_INT(ca_cache_size(ca), size + 1);
    CHECK(same && X509_check_host(same, "d.example", 0, 0, NULL) == 1);
    CHECK_EQ_INT(count_sans(same, -1, NULL), 3);
    X509_free(same);
    /* And for the same upstream with no name. */
    same = NULL;
    CHECK_EQ_INT(ca_forge(ca, NULL, up, &same), 0);
    CHECK(same != NULL && same != leaf);
    check_leaf(ca, same);
    CHECK_EQ_INT(count_sans(same, -1, NULL), 4);
    CHECK_EQ_INT(ca_cache_size(ca), size + 2);
    X509_free(same);
    X509_free(leaf);

    /* An upstream with only a CN: its CN becomes the subjectAltName clients need. */
    leaf = NULL;
    CHECK_EQ_INT(ca_forge(ca, NULL, legacy, &leaf), 0);
    check_leaf(ca, leaf);
    CHECK_EQ_INT(count_sans(leaf, GEN_DNS, NULL), 1);
    CHECK_EQ_INT(X509_check_host(leaf, "legacy.example", 0, 0, NULL), 1);
    X509_free(leaf);

    /* A name too long for a CN goes in a critical subjectAltName under an empty subject. */
    char longname[128];
    memset(longname, 'a', 60);
    snprintf(longname + 60, sizeof longname - 60, ".bbbbbbbbbbbbbbbbbbbb.example");
    leaf = NULL;
    CHECK_EQ_INT(ca_forge(ca, longname, NULL, &leaf), 0);
    check_leaf(ca, leaf);
    int crit = 0;
    CHECK_EQ_INT(count_sans(leaf, GEN_DNS, &crit), 1);
    CHECK_EQ_INT(crit, 1);
    CHECK(leaf && X509_NAME_entry_count(X509_get_subject_name(leaf)) == 0);
    CHECK_EQ_INT(X509_check_host(leaf, longname, 0, 0, NULL), 1);
    X509_free(leaf);

    /* Bad requests. */
    leaf = (X509 *)1;
    CHECK_EQ_INT(ca_forge(ca, NULL, NULL, &leaf), -EINVAL);
    CHECK(leaf == NULL);
    CHECK_EQ_INT(ca_forge(ca, "", NULL, &leaf), -EINVAL);
    CHECK_EQ_INT(ca_forge(ca, "bad name,DNS:evil.example", NULL, &leaf), -EINVAL);
    CHECK_EQ_INT(ca_forge(ca, "a\x01.example", NULL, &leaf), -EINVAL);
    CHECK(leaf == NULL);

    /* The cache is bounded and drops the least recently used. */
    char name[64];
    leaf = NULL;
    CHECK_EQ_INT(ca_forge(ca, "keep.example", NULL, &leaf), 0);
    X509 *keep = leaf;
    for (int i = 0; i < 4200; i++) {
        snprintf(name, sizeof name, "n%d.example", i);
        leaf = NULL;
        if (ca_forge(ca, name, NULL, &leaf) != 0) {
            CHECK(!"forge in the fill loop");
            break;
        }
        X509_free(leaf);
        if (i % 1000 == 0) {
            /* Using it keeps it in. */
            CHECK_EQ_INT(ca_forge(ca, "keep.example", NULL, &leaf), 0);
            X509_free(leaf);
        }
    }
    CHECK_EQ_INT(ca_cache_size(ca), 4096);
    hits = ca_cache_hits(ca);
    leaf = NULL;
    CHECK_EQ_INT(ca_forge(ca, "n4199.example", NULL, &leaf), 0);
    CHECK_EQ_INT(ca_cache_hits(ca), hits + 1);
    X509_free(leaf);
    leaf = NULL;
    CHECK_EQ_INT(ca_forge(ca, "n0.example", NULL, &leaf), 0);
    CHECK_EQ_INT(ca_cache_hits(ca), hits + 1);
    X509_free(leaf);
    leaf = NULL;
    CHECK_EQ_INT(ca_forge(ca, "keep.example", NULL, &leaf), 0);
    CHECK(leaf == keep);
    CHECK_EQ_INT(ca_cache_hits(ca), hits + 2);
    CHECK_EQ_INT(ca_cache_size(ca), 4096);
    X509_free(leaf);
    X509_free(keep);

    X509_free(up);
    X509_free(up2);
    X509_free(legacy);
    EVP_PKEY_free(upkey);
    ca_free(ca);
}

/* mitmproxy's layout: an RSA key in the traditional format, then the certificate. */
static void test_mitmproxy_file(void)
{
    char err[512], file[PATH_MAX], ca_pem[PATH_MAX], sibling[PATH_MAX], missing[PATH_MAX];
    tpath(file, "mitmproxy-ca.pem");
    tpath(ca_pem, "mitmproxy-ca-only.pem");
    tpath(sibling, "mitmproxy-ca-cert.pem");
    tpath(missing, "missing.pem");
    EVP_PKEY *key = EVP_RSA_gen(2048);
    X509 *cert = key ? make_cert(key, "mitmproxy", NULL) : NULL;
    CHECK(cert != NULL);
    if (!cert) {
        EVP_PKEY_free(key);
        return;
    }
    CHECK_EQ_INT(write_pem(file, key, cert, true, 0600, NULL), 0);
    FILE *f = fopen(file, "r");
    char line[128] = "";
    if (f) {
        CHECK(fgets(line, sizeof line, f) != NULL);
        fclose(f);
    }
    CHECK_EQ_STR(line, "-----BEGIN RSA PRIVATE KEY-----\n");

    ca_t *ca = NULL;
    CHECK_EQ_INT(ca_open(file, &ca, err, sizeof err), 0);
    if (!ca) {
        fprintf(stderr, "ca_open: %s\n", err);
        goto out;
    }
    CHECK_EQ_INT(X509_cmp(ca_cert(ca), cert), 0);
    CHECK_EQ_STR(ca_cert_path(ca), file);
    CHECK_EQ_INT(ERR_peek_error(), 0);

    X509 *leaf = NULL;
    CHECK_EQ_INT(ca_forge(ca, "www.example.org", NULL, &leaf), 0);
    check_leaf(ca, leaf);
    CHECK_EQ_INT(X509_get_signature_nid(leaf), NID_sha256WithRSAEncryption);
    CHECK_EQ_INT(X509_check_host(leaf, "www.example.org", 0, 0, NULL), 1);
    CHECK_EQ_INT(write_pem(ca_pem, NULL, cert, false, 0644, NULL), 0);
    check_openssl_verify(ca_pem, leaf, "www.example.org");
    X509_free(leaf);
    ca_free(ca);

    /* With mitmproxy's certificate-only file beside it, that is the one to hand out. */
    CHECK_EQ_INT(write_pem(sibling, NULL, cert, false, 0644, NULL), 0);
    ca = NULL;
    CHECK_EQ_INT(ca_open(file, &ca, err, sizeof err), 0);
    CHECK_EQ_STR(ca_cert_path(ca), sibling);
    ca_free(ca);

    /* The other order loads too. */
    CHECK_EQ_INT(write_pem(file, key, cert, false, 0600, NULL), 0);
    ca = NULL;
    CHECK_EQ_INT(ca_open(file, &ca, err, sizeof err), 0);
    CHECK(ca && X509_cmp(ca_cert(ca), cert) == 0);
    CHECK_EQ_INT(ERR_peek_error(), 0);
    ca_free(ca);

    /* A given file is never created. */
    ca = NULL;
    CHECK_EQ_INT(ca_open(missing, &ca, err, sizeof err), -ENOENT);
    CHECK(strstr(err, missing) != NULL);
    CHECK(!exists(missing));

    /* Key and certificate that don't belong together. */
    EVP_PKEY *other = EVP_EC_gen("P-256");
    CHECK_EQ_INT(write_pem(file, other, cert, true, 0600, NULL), 0);
    err[0] = '\0';
    CHECK_EQ_INT(ca_open(file, &ca, err, sizeof err), -EINVAL);
    CHECK(ca == NULL);
    CHECK(strstr(err, file) != NULL);
    CHECK(strstr(err, "does not match") != NULL);
    printf("refused: %s\n", err);

    /* A key without a certificate, a certificate without a key. */
    CHECK_EQ_INT(write_pem(file, key, NULL, true, 0600, NULL), 0);
    CHECK_EQ_INT(ca_open(file, &ca, err, sizeof err), -EINVAL);
    CHECK(strstr(err, file) != NULL && strstr(err, "no certificate") != NULL);
    CHECK_EQ_INT(write_pem(file, NULL, cert, true, 0600, NULL), 0);
    CHECK_EQ_INT(ca_open(file, &ca, err, sizeof err), -EINVAL);
    CHECK(strstr(err, file) != NULL && strstr(err, "no private key") != NULL);

    /* An encrypted key is refused, without a passphrase prompt. */
    CHECK_EQ_INT(write_pem(file, key, cert, true, 0600, "secret"), 0);
    CHECK_EQ_INT(ca_open(file, &ca, err, sizeof err), -EINVAL);
    CHECK(strstr(err, file) != NULL && strstr(err, "encrypted") != NULL);

    /* Garbage between the PEM lines is reported with OpenSSL's reason. */
    f = fopen(file, "w");
    if (f) {
        fputs("-----BEGIN PRIVATE KEY-----\n@@@@\n-----END PRIVATE KEY-----\n"
              "-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n",
              f);
        fclose(f);
    }
    CHECK(ca_open(file, &ca, err, sizeof err) < 0);
    CHECK(strstr(err, file) != NULL);
    printf("refused: %s\n", err);
    CHECK_EQ_INT(ERR_peek_error(), 0);

    /* A server certificate is no CA. */
    X509 *server = make_cert(other, "server.example", "DNS:server.example");
    CHECK_EQ_INT(write_pem(file, other, server, true, 0600, NULL), 0);
    CHECK_EQ_INT(ca_open(file, &ca, err, sizeof err), -EINVAL);
    CHECK(strstr(err, "not a CA") != NULL);
    X509_free(server);

    /* A FIFO in its place fails rather than blocking. */
    char fifo[PATH_MAX];
    tpath(fifo, "fifo.pem");
    CHECK_EQ_INT(mkfifo(fifo, 0600), 0);
    CHECK(ca_open(fifo, &ca, err, sizeof err) < 0);
    CHECK(strstr(err, "not a regular file") != NULL);

    /* A directory is no CA file. */
    CHECK(ca_open(tmpdir, &ca, err, sizeof err) < 0);
    CHECK(strstr(err, tmpdir) != NULL);
    EVP_PKEY_free(other);
out:
    X509_free(cert);
    EVP_PKEY_free(key);
}

/* The committed fixtures: origin verifies against test-ca, untrusted does not. */
static void test_fixtures(void)
{
    const char *top = getenv("top_srcdir");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/fixtures/tls/test-ca.pem", top ? top : ".");
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("fixtures/tls not found (set top_srcdir), skipping the fixture checks\n");
        return;
    }
    X509 *ca = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    snprintf(path, sizeof path, "%s/fixtures/tls/origin.pem", top ? top : ".");
    f = fopen(path, "r");
    X509 *origin = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    snprintf(path, sizeof path, "%s/fixtures/tls/untrusted.pem", top ? top : ".");
    f = fopen(path, "r");
    X509 *untrusted = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    CHECK(ca && origin && untrusted);
    if (ca && origin && untrusted) {
        CHECK(verifies(ca, origin));
        CHECK_EQ_INT(X509_check_host(origin, "origin.test", 0, 0, NULL), 1);
        CHECK_EQ_INT(X509_check_host(origin, "www.origin.test", 0, 0, NULL), 1);
        CHECK_EQ_INT(X509_check_host(origin, "localhost", 0, 0, NULL), 1);
        CHECK_EQ_INT(X509_check_ip_asc(origin, "127.0.0.1", 0), 1);
        CHECK_EQ_INT(X509_check_ip_asc(origin, "::1", 0), 1);
        fprintf(stderr, "(an untrusted-certificate error is expected next)\n");
        CHECK(!verifies(ca, untrusted));
        CHECK_EQ_INT(X509_check_ip_asc(untrusted, "127.0.0.1", 0), 1);

        /* A leaf forged from the fixture origin mirrors its names. */
        char err[512];
        ca_t *mitm = NULL;
        CHECK_EQ_INT(ca_open(NULL, &mitm, err, sizeof err), 0);
        X509 *leaf = NULL;
        CHECK_EQ_INT(ca_forge(mitm, "127.0.0.1", origin, &leaf), 0);
        check_leaf(mitm, leaf);
        CHECK_EQ_INT(count_sans(leaf, -1, NULL), 5);
        CHECK_EQ_INT(X509_check_host(leaf, "x.origin.test", 0, 0, NULL), 1);
        CHECK_EQ_INT(X509_check_ip_asc(leaf, "::1", 0), 1);
        X509_free(leaf);
        ca_free(mitm);
    }
    X509_free(ca);
    X509_free(origin);
    X509_free(untrusted);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s/test_ca.XXXXXX",
             getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    /* Never the real ~/.mitmrec; and a umask that doesn't hide the modes under test. */
    setenv("HOME", tmpdir, 1);
    umask(022);

    test_default_ca();
    test_mitmproxy_file();
    test_fixtures();

    nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return check_done();
}
